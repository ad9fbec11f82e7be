//! Softmax cross-entropy (mean over the batch, optionally with label smoothing), top-1 /
//! top-k accuracy, and FairDARTS' zero-one loss.

use super::{buf, gpu_rt};
use crate::backend::cpu::{self, Real as _};
use crate::backend::gpu::launch::head as ghead;
use crate::backend::gpu::launch::zero_one as gzo;
use crate::backend::gpu::{Gpu, GpuBuf};
use crate::tensor::gpu_ok;
use crate::tensor::{fmt_shape, Tensor};
use crate::with_dtype;

/// A batch's labels: on the host, and on a GPU as the f32 device tensor `[n]` the loss kernels
/// read (uploaded with the images, so a step needs no host-to-device copy of its own: a graph
/// can record it). Without the device copy, a GPU op uploads the host labels itself.
#[derive(Clone, Copy, Debug)]
pub struct Labels<'a> {
    /// The class of each row.
    pub host: &'a [u32],
    /// The same as f32 on the logits' device ([`device_labels`]), if uploaded.
    pub dev: Option<&'a Tensor>,
}

impl<'a> Labels<'a> {
    /// Labels on the host only.
    pub fn host(host: &'a [u32]) -> Labels<'a> {
        Labels { host, dev: None }
    }

    /// Number of labels.
    pub fn len(&self) -> usize {
        self.host.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.host.is_empty()
    }

    /// The device buffer the kernels read: the uploaded tensor, or a fresh upload in `up`.
    fn gpu<'b>(&'b self, rt: &Gpu, up: &'b mut Option<GpuBuf>) -> &'b GpuBuf {
        match self.dev {
            Some(t) => {
                assert_eq!(
                    t.shape(),
                    [self.host.len()],
                    "labels: device tensor {} for {} labels",
                    fmt_shape(t.shape()),
                    self.host.len()
                );
                buf(t)
            }
            None => up.insert(gpu_ok(ghead::upload_labels(rt, self.host))),
        }
    }
}

impl<'a> From<&'a [u32]> for Labels<'a> {
    fn from(host: &'a [u32]) -> Self {
        Labels::host(host)
    }
}

impl<'a> From<&'a Vec<u32>> for Labels<'a> {
    fn from(host: &'a Vec<u32>) -> Self {
        Labels::host(host)
    }
}

impl<'a, const N: usize> From<&'a [u32; N]> for Labels<'a> {
    fn from(host: &'a [u32; N]) -> Self {
        Labels::host(host)
    }
}

/// Labels as the f32 tensor `[n]` the loss kernels read on a GPU (each exact: `c < 2^24`).
pub fn labels_f32(labels: &[u32]) -> Vec<f32> {
    labels
        .iter()
        .map(|&l| {
            assert!(l < 1 << 24, "labels: {l} is not exact as f32");
            l as f32
        })
        .collect()
}

fn dims(op: &str, logits: &Tensor, labels: &Labels) -> (usize, usize) {
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
pub fn softmax_xent(logits: &Tensor, labels: Labels) -> (Tensor, Tensor) {
    softmax_xent_smooth(logits, labels, 0.0)
}

/// Mean cross-entropy against the targets `(1 - eps) onehot(label) + eps / classes` (label
/// smoothing, `eps` in `[0, 1]`; 0 is [`softmax_xent`] bit for bit) as a 0-d tensor, and the
/// softmax probabilities (saved for backward).
pub fn softmax_xent_smooth(logits: &Tensor, labels: Labels, eps: f64) -> (Tensor, Tensor) {
    let (n, k) = dims("softmax_xent", logits, &labels);
    check_eps("softmax_xent", eps);
    if let Some(rt) = gpu_rt("softmax_xent", &[logits]) {
        let mut up = None;
        let lab = labels.gpu(&rt, &mut up);
        let mut probs = Tensor::empty_gpu(&[n, k], &rt);
        let mut loss = Tensor::empty_gpu(&[], &rt);
        gpu_ok(ghead::softmax_xent_fwd(
            n,
            k,
            buf(logits),
            lab,
            eps as f32,
            probs.gpu_buf_mut(),
            loss.gpu_buf_mut(),
        ));
        return (loss, probs);
    }
    with_dtype!(logits.dtype(), T => {
        let mut probs = vec![T::ZERO; n * k];
        let e = T::from_f64(eps);
        let loss = cpu::loss::softmax_xent_fwd(n, k, logits.data::<T>(), labels.host, e, &mut probs);
        (Tensor::from_vec(&[], vec![loss]), Tensor::from_vec(&[n, k], probs))
    })
}

/// Gradient w.r.t. the logits, given the probabilities and d(loss) (a one-element tensor on the
/// same device, so a GPU backward never reads it back to the host).
pub fn softmax_xent_bwd(probs: &Tensor, labels: Labels, dloss: &Tensor) -> Tensor {
    softmax_xent_smooth_bwd(probs, labels, 0.0, dloss)
}

/// [`softmax_xent_bwd`] of [`softmax_xent_smooth`] with the same `eps`: `dloss (probs - q) / n`.
pub fn softmax_xent_smooth_bwd(probs: &Tensor, labels: Labels, eps: f64, dloss: &Tensor) -> Tensor {
    let (n, k) = dims("softmax_xent_bwd", probs, &labels);
    check_eps("softmax_xent_bwd", eps);
    if let Some(rt) = gpu_rt("softmax_xent_bwd", &[probs, dloss]) {
        let mut up = None;
        let lab = labels.gpu(&rt, &mut up);
        return super::gpu_out(&rt, &[n, k], |d| {
            ghead::softmax_xent_bwd(n, k, buf(probs), lab, eps as f32, buf(dloss), d)
        });
    }
    with_dtype!(probs.dtype(), T => {
        let mut d = vec![T::ZERO; n * k];
        let dl = dloss.data::<T>()[0];
        cpu::loss::softmax_xent_bwd(n, k, probs.data::<T>(), labels.host, T::from_f64(eps), dl, &mut d);
        Tensor::from_vec(&[n, k], d)
    })
}

/// FairDARTS' zero-one loss part of architecture weights `s` = σ(α): `−scale Σ_i (s_i − ½)²`
/// as a 0-d tensor on `s`'s device (scale = 1 / the count over all parts: the loss of both cell
/// types is the sum of their parts, −mean((s − ½)²) over their concatenation).
pub fn zero_one(s: &Tensor, scale: f64) -> Tensor {
    if let Some(rt) = gpu_rt("zero_one", &[s]) {
        let mut out = Tensor::empty_gpu(&[], &rt);
        gpu_ok(gzo::zero_one_fwd(buf(s), scale as f32, out.gpu_buf_mut()));
        return out;
    }
    with_dtype!(s.dtype(), T => Tensor::from_vec(&[], vec![cpu::loss::zero_one_fwd(s.data::<T>(), scale)]))
}

/// The gradient of [`zero_one`]: `ds = −2 scale (s − ½) dloss`, `dloss` a one-element tensor on
/// `s`'s device (never read back on a GPU).
pub fn zero_one_bwd(s: &Tensor, scale: f64, dloss: &Tensor) -> Tensor {
    assert_eq!(dloss.numel(), 1, "zero_one_bwd: dloss {} is not one element", fmt_shape(dloss.shape()));
    if let Some(rt) = gpu_rt("zero_one_bwd", &[s, dloss]) {
        return super::gpu_out(&rt, s.shape(), |ds| gzo::zero_one_bwd(buf(s), buf(dloss), scale as f32, ds));
    }
    with_dtype!(s.dtype(), T => {
        let mut ds = vec![T::ZERO; s.numel()];
        cpu::loss::zero_one_bwd(s.data::<T>(), scale, dloss.data::<T>()[0], &mut ds);
        Tensor::from_vec(s.shape(), ds)
    })
}

fn check_eps(op: &str, eps: f64) {
    assert!((0.0..=1.0).contains(&eps), "{op}: label smoothing {eps} is outside [0, 1]");
}

/// Number of rows whose argmax equals the label, as a one-element tensor on the logits' device
/// (nothing read back: see [`super::optim::read_scalars`]).
pub fn top1_correct_count(logits: &Tensor, labels: Labels) -> Tensor {
    let (n, k) = dims("top1_correct", logits, &labels);
    if let Some(rt) = gpu_rt("top1_correct", &[logits]) {
        let mut up = None;
        let lab = labels.gpu(&rt, &mut up);
        let mut c = Tensor::empty_gpu(&[1], &rt);
        gpu_ok(ghead::top1_correct(n, k, buf(logits), lab, c.gpu_buf_mut()));
        return c;
    }
    let count =
        with_dtype!(logits.dtype(), T => cpu::loss::top1_correct(n, k, logits.data::<T>(), labels.host));
    Tensor::scalar(count as f64, logits.dtype()).reshape(&[1])
}

/// Number of rows whose argmax equals the label.
pub fn top1_correct(logits: &Tensor, labels: &[u32]) -> usize {
    let (n, k) = dims("top1_correct", logits, &Labels::host(labels));
    if let Some(rt) = gpu_rt("top1_correct", &[logits]) {
        let lab = gpu_ok(ghead::upload_labels(&rt, labels));
        let mut c = gpu_ok(crate::backend::gpu::GpuBuf::alloc(&rt, 1));
        gpu_ok(ghead::top1_correct(n, k, buf(logits), &lab, &mut c));
        // The count is a scalar the caller asked for: the one device-to-host copy here.
        return gpu_ok(c.to_host())[0] as usize;
    }
    with_dtype!(logits.dtype(), T => cpu::loss::top1_correct(n, k, logits.data::<T>(), labels))
}

/// Number of rows whose label is among the `top` largest logits (ties to the lower index, as
/// top-1). Evaluation only: on a GPU the logits are copied to the host.
pub fn topk_correct(logits: &Tensor, labels: &[u32], top: usize) -> usize {
    let (n, k) = dims("topk_correct", logits, &Labels::host(labels));
    let host = logits.to_device(&crate::tensor::Device::Cpu);
    with_dtype!(host.dtype(), T => cpu::loss::topk_correct(n, k, top, host.data::<T>(), labels))
}
