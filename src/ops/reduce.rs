//! Per-channel reductions: global average pooling `[n, c, h, w]` -> `[n, c]`, and channel sums.

use super::{buf, gpu_out, gpu_rt, nchw};
use crate::backend::cpu::{self, Real as _};
use crate::backend::gpu::launch::{head as ghead, reduce as gred};
use crate::tensor::{fmt_shape, gpu_ok, Tensor};
use crate::with_dtype;

/// Mean over each channel plane.
pub fn global_avg_pool(x: &Tensor) -> Tensor {
    let [n, c, h, w] = nchw("global_avg_pool", "x", x);
    if let Some(rt) = gpu_rt("global_avg_pool", &[x]) {
        return gpu_out(&rt, &[n, c], |y| ghead::global_avg_pool_fwd(n, c, h * w, buf(x), y));
    }
    with_dtype!(x.dtype(), T => {
        let mut y = vec![T::ZERO; n * c];
        cpu::reduce::global_avg_pool_fwd(n, c, h * w, x.data::<T>(), &mut y);
        Tensor::from_vec(&[n, c], y)
    })
}

/// Backward of [`global_avg_pool`]: dy / (h w) broadcast over each plane.
pub fn global_avg_pool_bwd(dy: &Tensor, x_shape: &[usize]) -> Tensor {
    let &[n, c, h, w] = x_shape else {
        panic!("global_avg_pool_bwd: x must be 4-D, got {}", fmt_shape(x_shape))
    };
    assert_eq!(dy.shape(), &[n, c], "global_avg_pool_bwd: dy {} vs output [{n}, {c}]", fmt_shape(dy.shape()));
    if let Some(rt) = gpu_rt("global_avg_pool_bwd", &[dy]) {
        return gpu_out(&rt, x_shape, |dx| ghead::global_avg_pool_bwd(n, c, h * w, buf(dy), dx));
    }
    with_dtype!(dy.dtype(), T => {
        let mut dx = vec![T::ZERO; n * c * h * w];
        cpu::reduce::global_avg_pool_bwd(n, c, h * w, dy.data::<T>(), &mut dx);
        Tensor::from_vec(x_shape, dx)
    })
}

/// Per-channel Σx and Σx² of `x` `[n, c, h, w]` (or `[n, c]`), each `[c]`.
pub fn channel_sums(x: &Tensor) -> (Tensor, Tensor) {
    let g = super::norm::bn_geom("channel_sums", x.shape());
    if let Some(rt) = gpu_rt("channel_sums", &[x]) {
        let (mut sum, mut sumsq) = (Tensor::empty_gpu(&[g.c], &rt), Tensor::empty_gpu(&[g.c], &rt));
        gpu_ok(gred::channel_sums(buf(x), g.n, g.c, g.hw, sum.gpu_buf_mut(), sumsq.gpu_buf_mut()));
        return (sum, sumsq);
    }
    with_dtype!(x.dtype(), T => {
        let (mut sum, mut sumsq) = (vec![T::ZERO; g.c], vec![T::ZERO; g.c]);
        cpu::reduce::channel_sums(&g, x.data::<T>(), &mut sum, &mut sumsq);
        (Tensor::from_vec(&[g.c], sum), Tensor::from_vec(&[g.c], sumsq))
    })
}
