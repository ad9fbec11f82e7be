//! Global average pooling: `[n, c, h, w]` -> `[n, c]`.

use super::{buf, gpu_out, gpu_rt, nchw};
use crate::backend::cpu::{self, Real as _};
use crate::backend::gpu::launch::head as ghead;
use crate::tensor::{fmt_shape, Tensor};
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
