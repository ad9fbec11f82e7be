//! Shared helpers of the tests against the PyTorch reference's fixtures (`tests/fixtures/`):
//! reading them, their batches, our state after a step as named arrays, and the per-tensor
//! comparison.
#![allow(dead_code)]

use std::path::Path;

use darts::autograd::check::rel_err;
use darts::checkpoint::{self, Arrays};
use darts::search::state_io::state_arrays;
use darts::search::SearchState;
use darts::{DType, Tensor};

/// A fixture file, `rel` under `tests/fixtures/`.
pub fn fixture(rel: &str) -> Arrays {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(rel);
    checkpoint::read(&path).unwrap_or_else(|e| panic!("{e}")).0
}

/// Batch `i` of kind `train` or `val` of a `batches.safetensors` fixture: images and labels.
pub fn batch(b: &Arrays, kind: &str, i: usize, dtype: DType) -> (Tensor, Vec<u32>) {
    let x = &b[&format!("x_{kind}.{i}")];
    let labels = b[&format!("y_{kind}.{i}")].data.to_f64().iter().map(|&v| v as u32).collect();
    (Tensor::from_f64(&x.shape, &x.data.to_f64(), dtype), labels)
}

/// Our state after a step under the reference's names, with the step's gradients (`grad.*`).
pub fn step_arrays(s: &SearchState) -> Arrays {
    let mut arrays = state_arrays(s);
    for (id, g) in s.last_grads.as_ref().expect("a step was taken").iter() {
        arrays.insert(format!("grad.{}", s.store.params[id.0].name), checkpoint::tensor_array(g));
    }
    arrays
}

/// Compares every reference tensor (except `loss.*`) by name within `tol` relative; panics
/// listing the failures, naming `what`. Returns how many tensors were compared.
pub fn compare(ours: &Arrays, reference: &Arrays, tol: f64, what: &str) -> usize {
    let mut failures = Vec::new();
    let mut checked = 0;
    for (name, want) in reference {
        if name.starts_with("loss.") {
            continue;
        }
        let Some(got) = ours.get(name) else {
            failures.push(format!("{name}: missing from our state"));
            continue;
        };
        assert_eq!(got.shape, want.shape, "{name}");
        let e = rel_err(&got.data.to_f64(), &want.data.to_f64());
        if e.is_nan() || e > tol {
            failures.push(format!("{name}: relative error {e:e}"));
        }
        checked += 1;
    }
    assert!(
        failures.is_empty(),
        "{what}: {} of {checked} tensors differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
    checked
}

/// The reference's training and validation losses of step `i` of a step fixture.
pub fn losses(reference: &Arrays, i: usize) -> (f64, f64) {
    (reference["loss.train"].data.to_f64()[i], reference["loss.val"].data.to_f64()[i])
}
