//! A network's [`Store`] as named arrays under the reference state-dict names, and back.

use std::path::Path;

use super::arrays::{Array, ArrayData, Arrays, CheckpointError};
use crate::nn::Store;
use crate::tensor::{DType, Tensor};

/// The array of a tensor in its own dtype (GPU tensors are copied to the host).
pub fn tensor_array(t: &Tensor) -> Array {
    let t = t.to_cpu();
    let data = match t.dtype() {
        DType::F32 => ArrayData::F32(t.data::<f32>().to_vec()),
        DType::F64 => ArrayData::F64(t.data::<f64>().to_vec()),
    };
    Array { shape: t.shape().to_vec(), data }
}

/// Weights, alphas and BN buffers under the reference names.
pub fn store_arrays(store: &Store) -> Arrays {
    let mut out = Arrays::new();
    for p in &store.params {
        out.insert(p.name.clone(), tensor_array(&p.value));
    }
    for b in &store.bns {
        out.insert(format!("{}.running_mean", b.prefix), tensor_array(&b.state.running_mean));
        out.insert(format!("{}.running_var", b.prefix), tensor_array(&b.state.running_var));
        out.insert(
            format!("{}.num_batches_tracked", b.prefix),
            Array { shape: vec![], data: ArrayData::I64(vec![b.num_batches_tracked]) },
        );
    }
    out
}

/// Replaces the store's weights, alphas and BN buffers with those in `arrays` (cast to the
/// store's dtype, kept on each tensor's device). Every store tensor must be present with its
/// exact shape; with `strict`, any other array not under one of `ignore_prefixes` is an error
/// too. All problems are reported at once.
pub fn load_store(
    store: &mut Store,
    arrays: &Arrays,
    path: &Path,
    strict: bool,
    ignore_prefixes: &[&str],
) -> Result<(), CheckpointError> {
    let mut problems = Vec::new();
    let mut used = std::collections::HashSet::new();
    let dtype = store.dtype;
    let take = |name: &str,
                like: &Tensor,
                problems: &mut Vec<String>,
                used: &mut std::collections::HashSet<String>|
     -> Option<Tensor> {
        let Some(a) = arrays.get(name) else {
            problems.push(format!("missing {name}"));
            return None;
        };
        used.insert(name.to_string());
        if a.shape != like.shape() {
            problems.push(format!(
                "{name}: shape {:?} in the file, {:?} in the network",
                a.shape,
                like.shape()
            ));
            return None;
        }
        if matches!(a.data, ArrayData::I64(_)) {
            problems.push(format!("{name}: integer data where floats are expected"));
            return None;
        }
        Some(Tensor::from_f64(&a.shape, &a.data.to_f64(), dtype).to_device(&like.device()))
    };
    let mut new_params = Vec::new();
    for p in &store.params {
        new_params.push(take(&p.name, &p.value, &mut problems, &mut used));
    }
    let mut new_bns = Vec::new();
    for b in &store.bns {
        let m = take(&format!("{}.running_mean", b.prefix), &b.state.running_mean, &mut problems, &mut used);
        let v = take(&format!("{}.running_var", b.prefix), &b.state.running_var, &mut problems, &mut used);
        let name = format!("{}.num_batches_tracked", b.prefix);
        let n = match arrays.get(&name) {
            Some(Array { data: ArrayData::I64(v), .. }) if v.len() == 1 => Some(v[0]),
            Some(Array { data, .. }) if data.len() == 1 => Some(data.to_f64()[0] as i64),
            Some(_) => {
                problems.push(format!("{name}: expected one value"));
                None
            }
            None => {
                problems.push(format!("missing {name}"));
                None
            }
        };
        used.insert(name);
        new_bns.push((m, v, n));
    }
    if strict {
        for name in arrays.keys() {
            if !used.contains(name) && !ignore_prefixes.iter().any(|p| name.starts_with(p)) {
                problems.push(format!("unexpected {name}"));
            }
        }
    }
    if !problems.is_empty() {
        return Err(CheckpointError::Mismatch { path: path.into(), problems });
    }
    for (p, v) in store.params.iter_mut().zip(new_params) {
        p.value = v.expect("checked");
    }
    for (b, (m, v, n)) in store.bns.iter_mut().zip(new_bns) {
        b.state.running_mean = m.expect("checked");
        b.state.running_var = v.expect("checked");
        b.num_batches_tracked = n.expect("checked");
    }
    Ok(())
}
