//! A [`SearchState`] as named arrays: the network under the reference names (see
//! [`crate::checkpoint`]) plus the optimiser state under `optim.*`, the names the PyTorch
//! reference's `step` command reads and writes.

use std::path::Path;

use super::step::SearchState;
use crate::checkpoint::{self, Array, ArrayData, Arrays, CheckpointError};
use crate::tensor::{DType, Tensor};

/// Prefixes of non-network state in a checkpoint.
pub const STATE_PREFIXES: [&str; 5] = ["optim.", "grad.", "loss.", "run.", "rng."];

/// Network and optimiser state.
pub fn state_arrays(s: &SearchState) -> Arrays {
    let mut out = checkpoint::store_arrays(&s.store);
    for (p, buf) in s.store.params.iter().zip(&s.sgd.bufs) {
        if let Some(b) = buf {
            out.insert(format!("optim.sgd.momentum.{}", p.name), checkpoint::tensor_array(b));
        }
    }
    for ((p, m), v) in s.store.params.iter().zip(&s.adam.m).zip(&s.adam.v) {
        if let (Some(m), Some(v)) = (m, v) {
            out.insert(format!("optim.adam.exp_avg.{}", p.name), checkpoint::tensor_array(m));
            out.insert(format!("optim.adam.exp_avg_sq.{}", p.name), checkpoint::tensor_array(v));
        }
    }
    if s.adam.step > 0 {
        out.insert(
            "optim.adam.step".into(),
            Array { shape: vec![1], data: ArrayData::I64(vec![s.adam.step as i64]) },
        );
    }
    out
}

fn tensor_of(a: &Array, dtype: DType, like: &Tensor) -> Tensor {
    Tensor::from_f64(&a.shape, &a.data.to_f64(), dtype).to_device(&like.device())
}

/// Loads the network strictly (other arrays only under [`STATE_PREFIXES`]) and whatever
/// optimiser state the arrays carry (each optimiser all or nothing, as the reference).
pub fn load_state(s: &mut SearchState, arrays: &Arrays, path: &Path) -> Result<(), CheckpointError> {
    checkpoint::load_store(&mut s.store, arrays, path, true, &STATE_PREFIXES)?;
    let dtype = s.store.dtype;
    let mut problems = Vec::new();
    for (i, p) in s.store.params.iter().enumerate() {
        let v = &p.value;
        let mut get = |key: String| match arrays.get(&key) {
            Some(a) if a.shape == v.shape() => Some(tensor_of(a, dtype, v)),
            Some(a) => {
                problems.push(format!("{key}: shape {:?}, expected {:?}", a.shape, v.shape()));
                None
            }
            None => None,
        };
        s.sgd.bufs[i] = get(format!("optim.sgd.momentum.{}", p.name));
        s.adam.m[i] = get(format!("optim.adam.exp_avg.{}", p.name));
        s.adam.v[i] = get(format!("optim.adam.exp_avg_sq.{}", p.name));
    }
    s.adam.step = match arrays.get("optim.adam.step") {
        Some(a) => a.data.to_f64().first().copied().unwrap_or(0.0) as u32,
        None => 0,
    };
    if problems.is_empty() {
        Ok(())
    } else {
        Err(CheckpointError::Mismatch { path: path.into(), problems })
    }
}
