//! Softmax cross-entropy (mean over the batch) and top-1 accuracy.

use super::{buf, gpu_rt};
use crate::backend::cpu::{self, Real as _};
use crate::backend::gpu::launch::head as ghead;
use crate::tensor::gpu_ok;
use crate::tensor::{fmt_shape, Tensor};
use crate::with_dtype;

fn dims(op: &str, logits: &Tensor, labels: &[u32]) -> (usize, usize) {
    match *logits.shape() {
        [n, k] if n == labels.len() => (n, k),
        _ => panic!(
            "{op}: logits {} do not match {} labels (want [n, classes])",
            fmt_shape(logits.shape()),
            labels.len()
        ),
    }
}

/// Mean cross-entropy as a 0-d tensor, and the softmax probabilities (saved for backward).
pub fn softmax_xent(logits: &Tensor, labels: &[u32]) -> (Tensor, Tensor) {
    let (n, k) = dims("softmax_xent", logits, labels);
    if let Some(rt) = gpu_rt("softmax_xent", &[logits]) {
        let lab = gpu_ok(ghead::upload_labels(&rt, labels));
        let mut probs = Tensor::empty_gpu(&[n, k], &rt);
        let mut loss = Tensor::empty_gpu(&[], &rt);
        gpu_ok(ghead::softmax_xent_fwd(n, k, buf(logits), &lab, probs.gpu_buf_mut(), loss.gpu_buf_mut()));
        return (loss, probs);
    }
    with_dtype!(logits.dtype(), T => {
        let mut probs = vec![T::ZERO; n * k];
        let loss = cpu::loss::softmax_xent_fwd(n, k, logits.data::<T>(), labels, &mut probs);
        (Tensor::from_vec(&[], vec![loss]), Tensor::from_vec(&[n, k], probs))
    })
}

/// Gradient w.r.t. the logits, given the probabilities and d(loss) (a one-element tensor on the
/// same device, so a GPU backward never reads it back to the host).
pub fn softmax_xent_bwd(probs: &Tensor, labels: &[u32], dloss: &Tensor) -> Tensor {
    let (n, k) = dims("softmax_xent_bwd", probs, labels);
    if let Some(rt) = gpu_rt("softmax_xent_bwd", &[probs, dloss]) {
        let lab = gpu_ok(ghead::upload_labels(&rt, labels));
        return super::gpu_out(&rt, &[n, k], |d| {
            ghead::softmax_xent_bwd(n, k, buf(probs), &lab, buf(dloss), d)
        });
    }
    with_dtype!(probs.dtype(), T => {
        let mut d = vec![T::ZERO; n * k];
        let dl = dloss.data::<T>()[0];
        cpu::loss::softmax_xent_bwd(n, k, probs.data::<T>(), labels, dl, &mut d);
        Tensor::from_vec(&[n, k], d)
    })
}

/// Number of rows whose argmax equals the label, as a one-element tensor on the logits' device
/// (nothing read back: see [`super::optim::read_scalars`]).
pub fn top1_correct_count(logits: &Tensor, labels: &[u32]) -> Tensor {
    let (n, k) = dims("top1_correct", logits, labels);
    if let Some(rt) = gpu_rt("top1_correct", &[logits]) {
        let lab = gpu_ok(ghead::upload_labels(&rt, labels));
        let mut c = Tensor::empty_gpu(&[1], &rt);
        gpu_ok(ghead::top1_correct(n, k, buf(logits), &lab, c.gpu_buf_mut()));
        return c;
    }
    let count = with_dtype!(logits.dtype(), T => cpu::loss::top1_correct(n, k, logits.data::<T>(), labels));
    Tensor::scalar(count as f64, logits.dtype()).reshape(&[1])
}

/// Number of rows whose argmax equals the label.
pub fn top1_correct(logits: &Tensor, labels: &[u32]) -> usize {
    let (n, k) = dims("top1_correct", logits, labels);
    if let Some(rt) = gpu_rt("top1_correct", &[logits]) {
        let lab = gpu_ok(ghead::upload_labels(&rt, labels));
        let mut c = gpu_ok(crate::backend::gpu::GpuBuf::alloc(&rt, 1));
        gpu_ok(ghead::top1_correct(n, k, buf(logits), &lab, &mut c));
        // The count is a scalar the caller asked for: the one device-to-host copy here.
        return gpu_ok(c.to_host())[0] as usize;
    }
    with_dtype!(logits.dtype(), T => cpu::loss::top1_correct(n, k, logits.data::<T>(), labels))
}
