//! Max and average pooling (average excludes padding, like `count_include_pad=False`).

use super::{buf, gpu_out, gpu_rt, nchw};
use crate::backend::cpu::{self, Real as _};
use crate::backend::geom::Pool2dGeom;
use crate::backend::gpu::launch::pool as gpool;
use crate::tensor::{fmt_shape, Tensor};
use crate::with_dtype;

fn geom(op: &str, x_shape: &[usize], k: usize, stride: usize, pad: usize) -> Pool2dGeom {
    let [n, c, h, w] = <[usize; 4]>::try_from(x_shape)
        .unwrap_or_else(|_| panic!("{op}: x must be 4-D NCHW, got {}", fmt_shape(x_shape)));
    let g = Pool2dGeom { n, c, h, w, k, stride, pad };
    assert!(
        stride >= 1 && pad < k && g.out_h() > 0 && g.out_w() > 0,
        "{op}: window {k} stride {stride} pad {pad} does not fit x {}",
        fmt_shape(x_shape)
    );
    g
}

fn out_shape(g: &Pool2dGeom) -> [usize; 4] {
    [g.n, g.c, g.out_h(), g.out_w()]
}

fn check_dy(op: &str, g: &Pool2dGeom, dy: &Tensor) {
    let got = nchw(op, "dy", dy);
    assert_eq!(got, out_shape(g), "{op}: dy {} vs output {}", fmt_shape(&got), fmt_shape(&out_shape(g)));
}

/// k x k max pooling.
pub fn max_pool(x: &Tensor, k: usize, stride: usize, pad: usize) -> Tensor {
    let g = geom("max_pool", x.shape(), k, stride, pad);
    if let Some(rt) = gpu_rt("max_pool", &[x]) {
        return gpu_out(&rt, &out_shape(&g), |y| gpool::max_pool_fwd(&g, buf(x), y));
    }
    with_dtype!(x.dtype(), T => {
        let mut y = vec![T::ZERO; g.y_len()];
        cpu::pool::max_pool_fwd(&g, x.data::<T>(), &mut y);
        Tensor::from_vec(&out_shape(&g), y)
    })
}

/// Backward of [`max_pool`] (the argmax is recomputed from `x`).
pub fn max_pool_bwd(x: &Tensor, dy: &Tensor, k: usize, stride: usize, pad: usize) -> Tensor {
    let g = geom("max_pool_bwd", x.shape(), k, stride, pad);
    check_dy("max_pool_bwd", &g, dy);
    if let Some(rt) = gpu_rt("max_pool_bwd", &[x, dy]) {
        return gpu_out(&rt, x.shape(), |dx| gpool::max_pool_bwd(&g, buf(x), buf(dy), dx));
    }
    with_dtype!(x.dtype(), T => {
        let mut dx = vec![T::ZERO; g.x_len()];
        cpu::pool::max_pool_bwd(&g, x.data::<T>(), dy.data::<T>(), &mut dx);
        Tensor::from_vec(x.shape(), dx)
    })
}

/// k x k average pooling over in-bounds taps only.
pub fn avg_pool(x: &Tensor, k: usize, stride: usize, pad: usize) -> Tensor {
    let g = geom("avg_pool", x.shape(), k, stride, pad);
    if let Some(rt) = gpu_rt("avg_pool", &[x]) {
        return gpu_out(&rt, &out_shape(&g), |y| gpool::avg_pool_fwd(&g, buf(x), y));
    }
    with_dtype!(x.dtype(), T => {
        let mut y = vec![T::ZERO; g.y_len()];
        cpu::pool::avg_pool_fwd(&g, x.data::<T>(), &mut y);
        Tensor::from_vec(&out_shape(&g), y)
    })
}

/// Backward of [`avg_pool`].
pub fn avg_pool_bwd(dy: &Tensor, x_shape: &[usize], k: usize, stride: usize, pad: usize) -> Tensor {
    let g = geom("avg_pool_bwd", x_shape, k, stride, pad);
    check_dy("avg_pool_bwd", &g, dy);
    if let Some(rt) = gpu_rt("avg_pool_bwd", &[dy]) {
        return gpu_out(&rt, x_shape, |dx| gpool::avg_pool_bwd(&g, buf(dy), dx));
    }
    with_dtype!(dy.dtype(), T => {
        let mut dx = vec![T::ZERO; g.x_len()];
        cpu::pool::avg_pool_bwd(&g, dy.data::<T>(), &mut dx);
        Tensor::from_vec(x_shape, dx)
    })
}

/// The output shape of [`max_avg_pool`]: the max and average halves stacked along the batch.
fn pair_shape(g: &Pool2dGeom) -> [usize; 4] {
    [2 * g.n, g.c, g.out_h(), g.out_w()]
}

/// Max and average pooling of the same input in one pass: `[2n, c, oh, ow]`, the max pool in
/// images 0..n and the average pool (padded taps excluded) in images n..2n.
pub fn max_avg_pool(x: &Tensor, k: usize, stride: usize, pad: usize) -> Tensor {
    let g = geom("max_avg_pool", x.shape(), k, stride, pad);
    if let Some(rt) = gpu_rt("max_avg_pool", &[x]) {
        return gpu_out(&rt, &pair_shape(&g), |y| gpool::max_avg_pool_fwd(&g, buf(x), y));
    }
    with_dtype!(x.dtype(), T => {
        let mut y = vec![T::ZERO; 2 * g.y_len()];
        let (ymax, yavg) = y.split_at_mut(g.y_len());
        cpu::pool::max_pool_fwd(&g, x.data::<T>(), ymax);
        cpu::pool::avg_pool_fwd(&g, x.data::<T>(), yavg);
        Tensor::from_vec(&pair_shape(&g), y)
    })
}

/// The input gradient of [`max_avg_pool`]: `max_pool_bwd(x, dy[..n]) + avg_pool_bwd(dy[n..])`,
/// one launch on a GPU.
pub fn max_avg_pool_bwd(x: &Tensor, dy: &Tensor, k: usize, stride: usize, pad: usize) -> Tensor {
    let op = "max_avg_pool_bwd";
    let g = geom(op, x.shape(), k, stride, pad);
    let got = nchw(op, "dy", dy);
    assert_eq!(got, pair_shape(&g), "{op}: dy {} vs output {}", fmt_shape(&got), fmt_shape(&pair_shape(&g)));
    if let Some(rt) = gpu_rt(op, &[x, dy]) {
        return gpu_out(&rt, x.shape(), |dx| gpool::max_avg_pool_bwd(&g, buf(x), buf(dy), dx));
    }
    with_dtype!(x.dtype(), T => {
        let (dy_max, dy_avg) = dy.data::<T>().split_at(g.y_len());
        let mut dx = vec![T::ZERO; g.x_len()];
        cpu::pool::max_pool_bwd(&g, x.data::<T>(), dy_max, &mut dx);
        let mut dx_avg = vec![T::ZERO; g.x_len()];
        cpu::pool::avg_pool_bwd(&g, dy_avg, &mut dx_avg);
        // max + avg, the order of the GPU kernel's final add.
        cpu::par::for_each_chunk_mut(&mut dx, cpu::par::CHUNK, |off, d| {
            for (m, &a) in d.iter_mut().zip(&dx_avg[off..]) {
                *m += a;
            }
        });
        Tensor::from_vec(x.shape(), dx)
    })
}
