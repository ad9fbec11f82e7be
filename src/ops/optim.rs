//! Optimiser updates on parameter tensors, in place (PyTorch semantics), on any device: per
//! tensor, and over tensor lists (one launch per list on a GPU, with the scalars a step needs,
//! the gradient norm, the clip coefficient and the architect's r = 0.01 / ‖v‖, kept in a small
//! device tensor that the kernels read; on the CPU the same ops in plain loops, rounded as the
//! PyTorch reference's tensor expressions).

use std::sync::Arc;

use super::{buf, gpu_rt, same_shape};
use crate::backend::cpu::{self, Real as _};
use crate::backend::gpu::launch::optim as gopt;
use crate::backend::gpu::{Gpu, GpuBuf};
use crate::tensor::{gpu_ok, Tensor};
use crate::with_dtype;

/// SGD with momentum and coupled weight decay: d = g + wd w; buf = first ? d : m buf + d;
/// w -= lr buf.
pub fn sgd_step(w: &mut Tensor, g: &Tensor, mom: &mut Tensor, lr: f64, momentum: f64, wd: f64, first: bool) {
    same_shape("sgd_step", w, g);
    same_shape("sgd_step", w, mom);
    if w.is_gpu() {
        let (lr, m, wd) = (lr as f32, momentum as f32, wd as f32);
        gpu_ok(gopt::sgd_step(w.gpu_buf_mut(), buf(g), mom.gpu_buf_mut(), lr, m, wd, first));
        return;
    }
    with_dtype!(w.dtype(), T => cpu::optim::sgd_step(
        w.data_mut::<T>(),
        g.data::<T>(),
        mom.data_mut::<T>(),
        T::from_f64(lr),
        T::from_f64(momentum),
        T::from_f64(wd),
        first,
    ))
}

/// Adam with coupled weight decay (PyTorch's `Adam(weight_decay=...)`); `step` counts from 1.
///
/// `bias_at`: a tensor on the op's device and an index where the bias corrections
/// [1 − β1^t, 1 − β2^t] of this `step` are stored ([`step_hyper`]); a GPU kernel then reads them
/// when it runs, so a replayed graph uses the current step's. The CPU computes them from `step`.
#[allow(clippy::too_many_arguments)]
pub fn adam_step(
    w: &mut Tensor,
    g: &Tensor,
    m: &mut Tensor,
    v: &mut Tensor,
    lr: f64,
    betas: (f64, f64),
    eps: f64,
    wd: f64,
    step: u32,
    bias_at: Option<(&Tensor, usize)>,
) {
    same_shape("adam_step", w, g);
    same_shape("adam_step", w, m);
    same_shape("adam_step", w, v);
    if w.is_gpu() {
        gpu_ok(gopt::adam_step(
            w.gpu_buf_mut(),
            buf(g),
            m.gpu_buf_mut(),
            v.gpu_buf_mut(),
            lr as f32,
            betas.0,
            betas.1,
            eps as f32,
            wd as f32,
            step,
            bias_at.map(|(t, i)| dev_scalar(t, i)),
        ));
        return;
    }
    with_dtype!(w.dtype(), T => cpu::optim::adam_step(
        w.data_mut::<T>(),
        g.data::<T>(),
        m.data_mut::<T>(),
        v.data_mut::<T>(),
        T::from_f64(lr),
        T::from_f64(betas.0),
        T::from_f64(betas.1),
        T::from_f64(eps),
        T::from_f64(wd),
        step,
    ))
}

// ---------------------------------------------------------------------------------------------
// Tensor lists: one launch per list on a GPU, scalars kept on the device.

/// A step hyperparameter of a list op (the learning rate, ξ): a value fixed when the op is
/// issued, or element `index` of a small tensor on the op's device, which a GPU kernel reads when
/// it runs (so a replayed graph follows the schedule; see [`step_hyper`]).
#[derive(Clone, Copy, Debug)]
pub enum Hyper<'a> {
    /// Fixed at issue.
    Value(f64),
    /// Element `.1` of tensor `.0`.
    At(&'a Tensor, usize),
}

impl From<f64> for Hyper<'_> {
    fn from(v: f64) -> Self {
        Hyper::Value(v)
    }
}

impl Hyper<'_> {
    /// The value, on the host (a CPU op; reads a host tensor).
    fn host(&self) -> f64 {
        match *self {
            Hyper::Value(v) => v,
            Hyper::At(t, i) => host_scalar(t, i),
        }
    }

    /// The launch argument (a GPU op).
    fn dev(&self) -> gopt::Hyper<'_> {
        match *self {
            Hyper::Value(v) => gopt::Hyper::Value(v as f32),
            Hyper::At(t, i) => gopt::Hyper::At(dev_scalar(t, i)),
        }
    }
}

/// Positions in a step's hyperparameter tensor ([`step_hyper`]).
pub mod hyper {
    /// The weights' learning rate (ξ of the unrolled step).
    pub const LR: usize = 0;
    /// Adam's bias corrections 1 − β1^t and 1 − β2^t (two values from here).
    pub const ADAM_BIAS: usize = 1;
    /// Length.
    pub const LEN: usize = 3;
}

/// The host values of a step's hyperparameter tensor: the learning rate, and Adam's bias
/// corrections for its step `adam_t` (counted from 1), computed in f64 as the kernels' host
/// path does.
pub fn step_hyper(lr: f64, betas: (f64, f64), adam_t: u32) -> [f64; hyper::LEN] {
    let t = adam_t.min(i32::MAX as u32) as i32;
    [lr, 1.0 - betas.0.powi(t), 1.0 - betas.1.powi(t)]
}

/// Positions in a norm-scalars tensor ([`clip_scalars`], [`ratio_scalars`]).
pub use gopt::scalar;

fn same_shapes(op: &str, a: &[&Tensor], b: &[&Tensor]) {
    assert_eq!(a.len(), b.len(), "{op}: lists of {} and {} tensors", a.len(), b.len());
    for (x, y) in a.iter().zip(b) {
        same_shape(op, x, y);
    }
}

/// The runtime of a list of tensors (all on one device), or `None` on the CPU or when empty.
fn list_rt(op: &str, ts: &[&Tensor]) -> Option<Gpu> {
    gpu_rt(op, ts)
}

/// A norm-scalars tensor: on a GPU the device buffer of [`gopt::norm_scalars`]; on the CPU an f64
/// tensor of [`cpu::optim::norm_scalars`] (f64 whatever the dtype, so the coefficient an f32
/// step uses is rounded from the f64 value as before).
fn norm_scalars(
    op: &str,
    xs: &[&Tensor],
    max_norm: f64,
    num: f64,
    cpu_norm: impl Fn(&[&Tensor]) -> f64,
) -> Tensor {
    if let Some(rt) = list_rt(op, xs) {
        let bufs: Vec<&GpuBuf> = xs.iter().map(|x| buf(x)).collect();
        let out = gpu_ok(gopt::norm_scalars(&bufs, max_norm as f32, num as f32));
        debug_assert!(Arc::ptr_eq(out.runtime(), &rt));
        return Tensor::from_gpu(&[scalar::LEN], out);
    }
    let s = cpu::optim::norm_scalars(cpu_norm(xs), max_norm, num);
    Tensor::from_vec(&[scalar::LEN], s.to_vec())
}

/// The gradient norm and the clip coefficient of PyTorch's `clip_grad_norm_(grads, max_norm)`,
/// without touching the gradients: [‖g‖, min(1, max_norm / (‖g‖ + 1e-6)), 1/‖g‖, ‖g‖] on the
/// gradients' device (two launches on a GPU; nothing is read back). On the CPU ‖g‖ is the norm
/// of the per-tensor norms, as PyTorch takes it; on a GPU one f32 reduction over the list.
pub fn clip_scalars(grads: &[&Tensor], max_norm: f64) -> Tensor {
    norm_scalars(
        "clip_scalars",
        grads,
        max_norm,
        1.0,
        |xs| with_dtype!(xs[0].dtype(), T => cpu::optim::norm_of_norms(&xs.iter().map(|x| x.data::<T>()).collect::<Vec<_>>())),
    )
}

/// ‖xs‖ over the concatenation of the list, with r = num / ‖xs‖ and 1 / r, on the tensors'
/// device: [‖x‖, 1, num / ‖x‖, ‖x‖ / num] (the second-order architect's r = 0.01 / ‖v‖).
pub fn ratio_scalars(xs: &[&Tensor], num: f64) -> Tensor {
    norm_scalars(
        "ratio_scalars",
        xs,
        f64::INFINITY,
        num,
        |xs| with_dtype!(xs[0].dtype(), T => cpu::optim::norm_concat(&xs.iter().map(|x| x.data::<T>()).collect::<Vec<_>>())),
    )
}

/// Element `index` of a scalars tensor, on the host (a device read on a GPU: call it once per
/// step, for the log).
pub fn read_scalar(scalars: &Tensor, index: usize) -> f64 {
    if scalars.is_gpu() {
        let b = buf(scalars);
        let mut v = [0f32];
        gpu_ok(b.runtime().dtoh(b.ptr() + 4 * index as u64, bytemuck::cast_slice_mut(&mut v)));
        return v[0] as f64;
    }
    scalars.to_f64_vec()[index]
}

/// Element `index` of each tensor, read back together: on a GPU the values are first gathered
/// on the device ([`gather_scalars`]) and come back in one device-to-host copy, so a step's
/// scalars cost one host wait, not one each. All on one device.
pub fn read_scalars(items: &[(&Tensor, usize)]) -> Vec<f64> {
    gather_scalars(items).to_f64_vec()
}

/// Element `index` of each tensor, gathered into one `[items.len()]` tensor on their device (a
/// device-to-device copy each on a GPU, which a graph records): what a step hands back for one
/// read.
pub fn gather_scalars(items: &[(&Tensor, usize)]) -> Tensor {
    let Some(rt) = items.iter().find_map(|(t, _)| t.is_gpu().then(|| buf(t).runtime().clone())) else {
        let v: Vec<f64> = items.iter().map(|(t, i)| t.to_f64_vec()[*i]).collect();
        return Tensor::from_vec(&[items.len()], v);
    };
    let mut all = Tensor::empty_gpu(&[items.len()], &rt);
    let dst = all.gpu_buf_mut().ptr();
    for (k, (t, i)) in items.iter().enumerate() {
        let b = buf(t);
        assert!(*i < b.len(), "gather_scalars: element {i} of a tensor of {}", b.len());
        gpu_ok(rt.dtod(b.ptr() + 4 * *i as u64, dst + 4 * k as u64, 4));
    }
    all
}

fn bufs_of<'a>(ts: &[&'a Tensor]) -> Vec<&'a GpuBuf> {
    ts.iter().map(|t| buf(t)).collect()
}

/// A device scalar argument from a scalars tensor on the GPU.
fn dev_scalar(scalars: &Tensor, index: usize) -> gopt::DevScalar<'_> {
    assert!(scalars.is_gpu(), "a scalars tensor on the CPU for a GPU op");
    gopt::DevScalar { buf: buf(scalars), index }
}

/// A CPU scalar from a scalars tensor.
fn host_scalar(scalars: &Tensor, index: usize) -> f64 {
    assert!(!scalars.is_gpu(), "a scalars tensor on the GPU for a CPU op");
    scalars.to_f64_vec()[index]
}

/// Momentum buffers for SGD, one per tensor of `like` (same shape, dtype and device), in one
/// call: on a GPU plain allocations, uninitialised, because the first SGD step writes a buffer
/// without reading it (no fill launches); on the CPU zeros.
pub fn momentum_buffers(like: &[&Tensor]) -> Vec<Tensor> {
    match list_rt("momentum_buffers", like) {
        Some(rt) => like.iter().map(|t| Tensor::empty_gpu(t.shape(), &rt)).collect(),
        None => like.iter().map(|t| Tensor::zeros(t.shape(), t.dtype())).collect(),
    }
}

/// [`sgd_step`] on every tensor of a list, on the clipped gradients c·g with c the
/// [`scalar::CLIP_COEF`] of `clip` (a [`clip_scalars`] tensor; c = 1 without), in one launch on a
/// GPU. `first` is the first step of every buffer in the list.
#[allow(clippy::too_many_arguments)]
pub fn sgd_step_many<'a>(
    ws: &mut [&mut Tensor],
    gs: &[&Tensor],
    bufs: &mut [&mut Tensor],
    clip: Option<&Tensor>,
    lr: impl Into<Hyper<'a>>,
    momentum: f64,
    wd: f64,
    first: bool,
) {
    let op = "sgd_step_many";
    assert!(ws.len() == gs.len() && ws.len() == bufs.len(), "{op}: list lengths differ");
    for ((w, g), b) in ws.iter().zip(gs).zip(bufs.iter()) {
        same_shape(op, w, g);
        same_shape(op, w, b);
    }
    if gs.is_empty() {
        return;
    }
    let lr = lr.into();
    if list_rt(op, gs).is_some() {
        let coef = clip.map(|c| dev_scalar(c, scalar::CLIP_COEF));
        let (lr, m, wd) = (lr.dev(), momentum as f32, wd as f32);
        let mut wb: Vec<&mut GpuBuf> = ws.iter_mut().map(|w| w.gpu_buf_mut()).collect();
        let mut bb: Vec<&mut GpuBuf> = bufs.iter_mut().map(|b| b.gpu_buf_mut()).collect();
        let gb: Vec<&GpuBuf> = gs.iter().map(|g| buf(g)).collect();
        gpu_ok(gopt::sgd_step_many(&mut wb, &gb, &mut bb, coef, lr, m, wd, first));
        return;
    }
    let coef = clip.map_or(1.0, |c| host_scalar(c, scalar::CLIP_COEF));
    with_dtype!(gs[0].dtype(), T => {
        let mut wd_: Vec<&mut [T]> = ws.iter_mut().map(|w| w.data_mut::<T>()).collect();
        let mut bd: Vec<&mut [T]> = bufs.iter_mut().map(|b| b.data_mut::<T>()).collect();
        let gd: Vec<&[T]> = gs.iter().map(|g| g.data::<T>()).collect();
        cpu::optim::sgd_step_many(
            &mut wd_,
            &gd,
            &mut bd,
            T::from_f64(coef),
            T::from_f64(lr.host()),
            T::from_f64(momentum),
            T::from_f64(wd),
            first,
        )
    })
}

/// ys[k] += (mult · s) xs[k] for every k, with s element `index` of a scalars tensor (the
/// second-order architect's w ± r v: [`scalar::RATIO`] of [`ratio_scalars`]); one launch on a GPU.
pub fn axpy_many(ys: &mut [&mut Tensor], xs: &[&Tensor], scalars: &Tensor, index: usize, mult: f64) {
    let op = "axpy_many";
    assert_eq!(ys.len(), xs.len(), "{op}: list lengths differ");
    for (y, x) in ys.iter().zip(xs) {
        same_shape(op, y, x);
    }
    if xs.is_empty() {
        return;
    }
    if list_rt(op, xs).is_some() {
        let s = dev_scalar(scalars, index);
        let mut yb: Vec<&mut GpuBuf> = ys.iter_mut().map(|y| y.gpu_buf_mut()).collect();
        let xb: Vec<&GpuBuf> = xs.iter().map(|x| buf(x)).collect();
        gpu_ok(gopt::axpy_many(&mut yb, &xb, Some(s), mult as f32));
        return;
    }
    // mult · s in f64, then rounded once: for mult = ±1, −2 this is exactly ±s, −2s.
    let alpha = mult * host_scalar(scalars, index);
    with_dtype!(xs[0].dtype(), T => {
        for (y, x) in ys.iter_mut().zip(xs) {
            cpu::elementwise::axpy(T::from_f64(alpha), x.data::<T>(), y.data_mut::<T>());
        }
    })
}

/// The second-order α gradient from the finite differences of the architect:
/// out[k] = d[k] − ξ (p[k] − m[k]) / (2r) with r the [`scalar::RATIO`] of a [`ratio_scalars`]
/// tensor. On a GPU one launch reading 1/r from the device; on the CPU the reference's rounding.
pub fn hvp_combine<'a>(
    ds: &[&Tensor],
    ps: &[&Tensor],
    ms: &[&Tensor],
    scalars: &Tensor,
    xi: impl Into<Hyper<'a>>,
) -> Vec<Tensor> {
    let op = "hvp_combine";
    let xi = xi.into();
    same_shapes(op, ds, ps);
    same_shapes(op, ds, ms);
    if ds.is_empty() {
        return Vec::new();
    }
    if let Some(rt) = list_rt(op, ds) {
        let mut outs: Vec<Tensor> = ds.iter().map(|d| Tensor::empty_gpu(d.shape(), &rt)).collect();
        let s = dev_scalar(scalars, scalar::INV_RATIO);
        let mut ob: Vec<&mut GpuBuf> = outs.iter_mut().map(|o| o.gpu_buf_mut()).collect();
        // −ξ/2 as one factor, or −1/2 times ξ read on the device: the same bits (halving is exact).
        let (mult, scale) = match xi {
            Hyper::Value(v) => ((-v / 2.0) as f32, None),
            Hyper::At(t, i) => (-0.5, Some(dev_scalar(t, i))),
        };
        gpu_ok(gopt::axpy_diff_many(&mut ob, &bufs_of(ds), &bufs_of(ps), &bufs_of(ms), Some(s), mult, scale));
        return outs;
    }
    let xi = xi.host();
    let inv_2r = 1.0 / (2.0 * host_scalar(scalars, scalar::RATIO));
    with_dtype!(ds[0].dtype(), T => ds
        .iter()
        .zip(ps.iter().zip(ms))
        .map(|(d, (p, m))| {
            let mut out = vec![T::ZERO; d.numel()];
            cpu::optim::hvp_combine(&mut out, d.data::<T>(), p.data::<T>(), m.data::<T>(), T::from_f64(inv_2r), T::from_f64(xi));
            Tensor::from_vec(d.shape(), out)
        })
        .collect())
}

/// The unrolled weights of the second-order architect, w' = w − ξ (momentum·buf + g + wd·w) for
/// every tensor of the list (no momentum term where `bufs[k]` is `None`, i.e. before the first
/// SGD step); one launch on a GPU.
pub fn unrolled_weights<'a>(
    ws: &[&Tensor],
    gs: &[&Tensor],
    bufs: &[Option<&Tensor>],
    xi: impl Into<Hyper<'a>>,
    momentum: f64,
    wd: f64,
) -> Vec<Tensor> {
    let op = "unrolled_weights";
    let xi = xi.into();
    same_shapes(op, ws, gs);
    assert_eq!(ws.len(), bufs.len(), "{op}: list lengths differ");
    for (w, b) in ws.iter().zip(bufs) {
        if let Some(b) = b {
            same_shape(op, w, b);
        }
    }
    if ws.is_empty() {
        return Vec::new();
    }
    if let Some(rt) = list_rt(op, ws) {
        let mut outs: Vec<Tensor> = ws.iter().map(|w| Tensor::empty_gpu(w.shape(), &rt)).collect();
        let mut ob: Vec<&mut GpuBuf> = outs.iter_mut().map(|o| o.gpu_buf_mut()).collect();
        let wb: Vec<&GpuBuf> = ws.iter().map(|w| buf(w)).collect();
        let gb: Vec<&GpuBuf> = gs.iter().map(|g| buf(g)).collect();
        let bb: Vec<Option<&GpuBuf>> = bufs.iter().map(|b| b.map(buf)).collect();
        gpu_ok(gopt::unroll_many(&mut ob, &wb, &gb, &bb, xi.dev(), momentum as f32, wd as f32));
        return outs;
    }
    with_dtype!(ws[0].dtype(), T => ws
        .iter()
        .zip(gs.iter().zip(bufs))
        .map(|(w, (g, b))| {
            let mut out = vec![T::ZERO; w.numel()];
            cpu::optim::unroll(
                &mut out,
                w.data::<T>(),
                g.data::<T>(),
                b.map(|b| b.data::<T>()),
                T::from_f64(xi.host()),
                T::from_f64(momentum),
                T::from_f64(wd),
            );
            Tensor::from_vec(w.shape(), out)
        })
        .collect())
}
