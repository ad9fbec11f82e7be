//! CPU half of the sep-conv stages: the normalise-ReLU pre-op and its mask, as plain loops over
//! NCHW planes. The convolutions themselves are the existing CPU ops (`backend::cpu::conv`); the
//! normalised input `a` is materialised transiently inside one call and dropped at its end.

use rayon::prelude::*;

use crate::backend::cpu::Real;
use crate::backend::geom::Conv2dGeom;

/// `a = max((x - mean[c]) * rstd[c], 0)` over the planes of `x` (`g` gives `n, c, h, w`), with
/// the rounding of the CPU batch norm's `(x - mean) * invstd` followed by a ReLU.
pub fn norm_relu<T: Real>(g: &Conv2dGeom, x: &[T], mean: &[T], rstd: &[T]) -> Vec<T> {
    let hw = g.h * g.w;
    let mut a = vec![T::ZERO; g.x_len()];
    a.par_chunks_mut(hw.max(1)).zip(x.par_chunks(hw.max(1))).enumerate().for_each(|(plane, (a, x))| {
        let ci = plane % g.c_in;
        let (m, r) = (mean[ci], rstd[ci]);
        for (ai, &xi) in a.iter_mut().zip(x) {
            let v = (xi - m) * r;
            *ai = if v < T::ZERO { T::ZERO } else { v };
        }
    });
    a
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
