//! Optimiser updates on parameter tensors, in place (PyTorch semantics), on any device.

use super::{buf, same_shape};
use crate::backend::cpu::{self, Real as _};
use crate::backend::gpu::launch::optim as gopt;
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
