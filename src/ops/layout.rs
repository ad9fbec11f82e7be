//! Channel concat and its inverse, channel narrowing, and spatial cropping.

use super::{buf, gpu_out, gpu_rt, nchw, same_dtype};
use crate::backend::cpu::{self, Real as _};
use crate::backend::geom::CropGeom;
use crate::backend::gpu::launch::layout as glay;
use crate::tensor::gpu_ok;
use crate::tensor::{fmt_shape, Tensor};
use crate::with_dtype;

/// Concatenates NCHW tensors along channels; all other dims must agree.
pub fn concat_channels(xs: &[&Tensor]) -> Tensor {
    assert!(!xs.is_empty(), "concat_channels: no inputs");
    let [n, _, h, w] = nchw("concat_channels", "input 0", xs[0]);
    for (i, x) in xs.iter().enumerate() {
        let [ni, _, hi, wi] = nchw("concat_channels", "input", x);
        assert!(
            (ni, hi, wi) == (n, h, w),
            "concat_channels: input {i} is {}, input 0 is {}: only channels may differ",
            fmt_shape(x.shape()),
            fmt_shape(xs[0].shape())
        );
        same_dtype("concat_channels", xs[0], x);
    }
    let c_total: usize = xs.iter().map(|x| x.shape()[1]).sum();
    if let Some(rt) = gpu_rt("concat_channels", xs) {
        let parts: Vec<(&_, usize)> = xs.iter().map(|x| (buf(x), x.shape()[1])).collect();
        return gpu_out(&rt, &[n, c_total, h, w], |y| glay::concat_channels(n, h * w, &parts, y));
    }
    with_dtype!(xs[0].dtype(), T => {
        let parts: Vec<(&[T], usize)> = xs.iter().map(|x| (x.data::<T>(), x.shape()[1])).collect();
        let mut y = vec![T::ZERO; n * c_total * h * w];
        cpu::concat::concat_channels(n, h * w, &parts, &mut y);
        Tensor::from_vec(&[n, c_total, h, w], y)
    })
}

/// Splits `y` along channels into pieces of `chans` channels (the backward of concat).
pub fn split_channels(y: &Tensor, chans: &[usize]) -> Vec<Tensor> {
    let [n, c, h, w] = nchw("split_channels", "y", y);
    assert_eq!(
        chans.iter().sum::<usize>(),
        c,
        "split_channels: pieces {chans:?} do not add up to the {c} channels of {}",
        fmt_shape(y.shape())
    );
    if y.is_gpu() {
        let mut outs: Vec<Tensor> =
            chans.iter().map(|&ci| Tensor::empty_gpu(&[n, ci, h, w], buf(y).runtime())).collect();
        {
            let mut parts: Vec<(&mut _, usize)> =
                outs.iter_mut().zip(chans).map(|(t, &ci)| (t.gpu_buf_mut(), ci)).collect();
            gpu_ok(glay::split_channels(n, h * w, buf(y), &mut parts));
        }
        return outs;
    }
    with_dtype!(y.dtype(), T => {
        let mut bufs: Vec<Vec<T>> = chans.iter().map(|&ci| vec![T::ZERO; n * ci * h * w]).collect();
        {
            let mut parts: Vec<(&mut [T], usize)> =
                bufs.iter_mut().zip(chans).map(|(b, &ci)| (b.as_mut_slice(), ci)).collect();
            cpu::concat::split_channels(n, h * w, y.data::<T>(), &mut parts);
        }
        bufs.into_iter().zip(chans).map(|(b, &ci)| Tensor::from_vec(&[n, ci, h, w], b)).collect()
    })
}

/// `x[:, :, top..top+oh, left..left+ow]`.
pub fn crop(x: &Tensor, top: usize, left: usize, oh: usize, ow: usize) -> Tensor {
    let [n, c, h, w] = nchw("crop", "x", x);
    assert!(
        top + oh <= h && left + ow <= w,
        "crop: window {oh}x{ow} at ({top}, {left}) exceeds x {}",
        fmt_shape(x.shape())
    );
    let g = CropGeom { n, c, h, w, top, left, oh, ow };
    if let Some(rt) = gpu_rt("crop", &[x]) {
        return gpu_out(&rt, &[n, c, oh, ow], |y| glay::crop_fwd(&g, buf(x), y));
    }
    with_dtype!(x.dtype(), T => {
        let mut y = vec![T::ZERO; n * c * oh * ow];
        cpu::concat::crop_fwd(&g, x.data::<T>(), &mut y);
        Tensor::from_vec(&[n, c, oh, ow], y)
    })
}

/// Backward of [`crop`]: `dy` scattered into zeros of `x_shape`.
pub fn crop_bwd(dy: &Tensor, x_shape: &[usize], top: usize, left: usize) -> Tensor {
    let [n, c, oh, ow] = nchw("crop_bwd", "dy", dy);
    let (h, w) = (x_shape[2], x_shape[3]);
    let g = CropGeom { n, c, h, w, top, left, oh, ow };
    if let Some(rt) = gpu_rt("crop_bwd", &[dy]) {
        return gpu_out(&rt, x_shape, |dx| glay::crop_bwd(&g, buf(dy), dx));
    }
    with_dtype!(dy.dtype(), T => {
        let mut dx = vec![T::ZERO; n * c * h * w];
        cpu::concat::crop_bwd(&g, dy.data::<T>(), &mut dx);
        Tensor::from_vec(x_shape, dx)
    })
}
