//! CPU half of the sep-conv stages: the normalise-ReLU pre-op, applied by the depthwise
//! convolution as it copies each input plane into its padded buffer (`backend::cpu::conv::
//! depthwise_*_pre`), so the normalised input `a` is never materialised; and the ReLU mask of the
//! data gradient, recomputed from the saved BN input in place.

use rayon::prelude::*;

use crate::backend::cpu::{conv, Real};
use crate::backend::geom::Conv2dGeom;

/// `max((v - mean[c]) * rstd[c], 0)` for a value `v` of channel `c`, with the rounding of the CPU
/// batch norm's `(x - mean) * invstd` followed by a ReLU.
#[inline(always)]
pub fn norm_relu<T: Real>(v: T, m: T, r: T) -> T {
    let a = (v - m) * r;
    if a < T::ZERO {
        T::ZERO
    } else {
        a
    }
}

/// Normalise → ReLU → depthwise: the pre-op applied as each plane is loaded into the
/// convolution's padded buffer, so `a` is never materialised.
pub fn bnrelu_dw<T: Real>(g: &Conv2dGeom, x: &[T], mean: &[T], rstd: &[T], w: &[T], y: &mut [T]) {
    conv::depthwise_fwd_pre(g, x, w, y, |c, v| norm_relu(v, mean[c], rstd[c]));
}

/// The weight gradient of [`bnrelu_dw`], `a` recomputed plane by plane.
pub fn bnrelu_dw_bwd_weight<T: Real>(
    g: &Conv2dGeom,
    x: &[T],
    mean: &[T],
    rstd: &[T],
    dy: &[T],
    dw: &mut [T],
) {
    conv::depthwise_bwd_weight_pre(g, x, dy, dw, |c, v| norm_relu(v, mean[c], rstd[c]));
}

/// Zeroes `da` where `(x - mean[c]) * rstd[c] <= 0` (the ReLU backward with its mask recomputed
/// from the saved BN input `x`).
pub fn norm_relu_mask<T: Real>(g: &Conv2dGeom, x: &[T], mean: &[T], rstd: &[T], da: &mut [T]) {
    let hw = g.h * g.w;
    da.par_chunks_mut(hw.max(1)).zip(x.par_chunks(hw.max(1))).enumerate().for_each(|(plane, (da, x))| {
        let ci = plane % g.c_in;
        let (m, r) = (mean[ci], rstd[ci]);
        for (di, &xi) in da.iter_mut().zip(x) {
            if (xi - m) * r <= T::ZERO {
                *di = T::ZERO;
            }
        }
    });
}

/// `1 / sqrt(var + eps)` per channel, in f64 then rounded (as the CPU batch norm).
pub fn invstd<T: Real>(var: &[T], eps: f64) -> Vec<T> {
    var.iter().map(|&v| T::from_f64(1.0 / (v.to_f64() + eps).sqrt())).collect()
}
