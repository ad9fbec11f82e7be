//! 2-D convolution (no bias): y = conv(x, w), with both gradients; and ReLU then depthwise
//! convolution, which a GPU runs as one kernel.

use super::{buf, gpu_out, gpu_rt, nchw, same_dtype};
use crate::backend::cpu::{self, Real as _};
use crate::backend::geom::Conv2dGeom;
use crate::backend::gpu::launch::{conv as gconv, depthwise as gdw};
use crate::tensor::{fmt_shape, Tensor};
use crate::with_dtype;

/// Stride, padding, dilation and groups of a convolution (kernel size comes from the weight).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvParams {
    /// Stride on both axes.
    pub stride: usize,
    /// Zero padding on all sides.
    pub pad: usize,
    /// Dilation on both axes.
    pub dilation: usize,
    /// Channel groups (1 dense, C depthwise).
    pub groups: usize,
}

impl ConvParams {
    /// A dense convolution with the given stride and padding, no dilation.
    pub fn new(stride: usize, pad: usize) -> ConvParams {
        ConvParams { stride, pad, dilation: 1, groups: 1 }
    }
    /// The same with dilation `d`.
    pub fn dilation(self, d: usize) -> ConvParams {
        ConvParams { dilation: d, ..self }
    }
    /// The same with `g` groups.
    pub fn groups(self, g: usize) -> ConvParams {
        ConvParams { groups: g, ..self }
    }
}

/// Validates `x` `[n, c_in, h, w]` against weight `[c_out, c_in / groups, kh, kw]`.
pub fn conv_geom(op: &str, x_shape: &[usize], w_shape: &[usize], p: ConvParams) -> Conv2dGeom {
    let shapes = || format!("x {} and weight {}", fmt_shape(x_shape), fmt_shape(w_shape));
    let (Ok([n, c_in, h, w]), Ok([c_out, cpg, kh, kw])) =
        (<[usize; 4]>::try_from(x_shape), <[usize; 4]>::try_from(w_shape))
    else {
        panic!("{op}: x must be 4-D NCHW and weight 4-D OIHW, got {}", shapes());
    };
    assert!(p.groups >= 1 && p.stride >= 1 && p.dilation >= 1, "{op}: bad params {p:?} for {}", shapes());
    assert!(
        c_in % p.groups == 0 && c_out % p.groups == 0 && cpg * p.groups == c_in,
        "{op}: channel mismatch with groups={}: {}",
        p.groups,
        shapes()
    );
    let g = Conv2dGeom {
        n,
        c_in,
        h,
        w,
        c_out,
        kh,
        kw,
        stride: p.stride,
        pad: p.pad,
        dilation: p.dilation,
        groups: p.groups,
    };
    assert!(g.out_h() > 0 && g.out_w() > 0, "{op}: kernel larger than padded input: {} with {p:?}", shapes());
    g
}

/// Forward: `[n, c_out, oh, ow]`.
pub fn conv2d(x: &Tensor, w: &Tensor, p: ConvParams) -> Tensor {
    same_dtype("conv2d", x, w);
    let g = conv_geom("conv2d", x.shape(), w.shape(), p);
    if let Some(rt) = gpu_rt("conv2d", &[x, w]) {
        return gpu_out(&rt, &[g.n, g.c_out, g.out_h(), g.out_w()], |y| {
            gconv::conv2d_fwd(&g, buf(x), buf(w), y)
        });
    }
    with_dtype!(x.dtype(), T => {
        let mut y = vec![T::ZERO; g.y_len()];
        cpu::conv::conv2d_fwd(&g, x.data::<T>(), w.data::<T>(), &mut y);
        Tensor::from_vec(&[g.n, g.c_out, g.out_h(), g.out_w()], y)
    })
}

/// Gradient w.r.t. the input, shaped like `x_shape`.
pub fn conv2d_bwd_data(dy: &Tensor, w: &Tensor, x_shape: &[usize], p: ConvParams) -> Tensor {
    same_dtype("conv2d_bwd_data", dy, w);
    let g = conv_geom("conv2d_bwd_data", x_shape, w.shape(), p);
    check_dy("conv2d_bwd_data", &g, dy);
    if let Some(rt) = gpu_rt("conv2d_bwd_data", &[dy, w]) {
        return gpu_out(&rt, x_shape, |dx| gconv::conv2d_bwd_data(&g, buf(dy), buf(w), dx));
    }
    with_dtype!(dy.dtype(), T => {
        let mut dx = vec![T::ZERO; g.x_len()];
        cpu::conv::conv2d_bwd_data(&g, dy.data::<T>(), w.data::<T>(), &mut dx);
        Tensor::from_vec(x_shape, dx)
    })
}

/// Gradient w.r.t. the weight, shaped like `w_shape`.
pub fn conv2d_bwd_weight(x: &Tensor, dy: &Tensor, w_shape: &[usize], p: ConvParams) -> Tensor {
    same_dtype("conv2d_bwd_weight", x, dy);
    let g = conv_geom("conv2d_bwd_weight", x.shape(), w_shape, p);
    check_dy("conv2d_bwd_weight", &g, dy);
    if let Some(rt) = gpu_rt("conv2d_bwd_weight", &[x, dy]) {
        return gpu_out(&rt, w_shape, |dw| gconv::conv2d_bwd_weight(&g, buf(x), buf(dy), dw));
    }
    with_dtype!(x.dtype(), T => {
        let mut dw = vec![T::ZERO; g.w_len()];
        cpu::conv::conv2d_bwd_weight(&g, x.data::<T>(), dy.data::<T>(), &mut dw);
        Tensor::from_vec(w_shape, dw)
    })
}

/// Validates a depthwise convolution (`groups == c_in == c_out`), as [`conv_geom`] does.
pub(crate) fn depthwise_geom(op: &str, x_shape: &[usize], w_shape: &[usize], p: ConvParams) -> Conv2dGeom {
    let g = conv_geom(op, x_shape, w_shape, p);
    assert!(
        g.is_depthwise(),
        "{op}: not depthwise: x {} and weight {} with groups={}",
        fmt_shape(x_shape),
        fmt_shape(w_shape),
        p.groups
    );
    g
}

/// ReLU then depthwise convolution: `conv2d(max(x, 0), w, p)`, the start of a DARTS sep/dil conv.
pub fn relu_conv2d_depthwise(x: &Tensor, w: &Tensor, p: ConvParams) -> Tensor {
    const OP: &str = "relu_conv2d_depthwise";
    same_dtype(OP, x, w);
    let g = depthwise_geom(OP, x.shape(), w.shape(), p);
    let y_shape = [g.n, g.c_out, g.out_h(), g.out_w()];
    if let Some(rt) = gpu_rt(OP, &[x, w]) {
        return gpu_out(&rt, &y_shape, |y| gdw::depthwise_relu_fwd(&g, buf(x), buf(w), y));
    }
    with_dtype!(x.dtype(), T => {
        // The ReLU applied as each plane is loaded: relu(x) is never materialised.
        let mut y = vec![T::ZERO; g.y_len()];
        cpu::conv::depthwise_fwd_pre(&g, x.data::<T>(), w.data::<T>(), &mut y, |_, v| relu::<T>(v));
        Tensor::from_vec(&y_shape, y)
    })
}

/// Gradient of [`relu_conv2d_depthwise`] w.r.t. `x` (the ReLU's input):
/// `conv2d_bwd_data(dy, w) * [x > 0]`.
pub fn relu_conv2d_depthwise_bwd_data(x: &Tensor, dy: &Tensor, w: &Tensor, p: ConvParams) -> Tensor {
    const OP: &str = "relu_conv2d_depthwise_bwd_data";
    same_dtype(OP, x, w);
    same_dtype(OP, dy, w);
    let g = depthwise_geom(OP, x.shape(), w.shape(), p);
    check_dy(OP, &g, dy);
    if let Some(rt) = gpu_rt(OP, &[x, dy, w]) {
        return gpu_out(&rt, x.shape(), |dx| gdw::depthwise_relu_bwd_data(&g, buf(x), buf(dy), buf(w), dx));
    }
    with_dtype!(x.dtype(), T => {
        let mut dxr = vec![T::ZERO; g.x_len()];
        cpu::conv::conv2d_bwd_data(&g, dy.data::<T>(), w.data::<T>(), &mut dxr);
        let mut dx = vec![T::ZERO; g.x_len()];
        cpu::elementwise::relu_bwd(x.data::<T>(), &dxr, &mut dx);
        Tensor::from_vec(x.shape(), dx)
    })
}

/// Gradient of [`relu_conv2d_depthwise`] w.r.t. its weight: `conv2d_bwd_weight(max(x, 0), dy)`,
/// shaped like `w_shape`.
pub fn relu_conv2d_depthwise_bwd_weight(x: &Tensor, dy: &Tensor, w_shape: &[usize], p: ConvParams) -> Tensor {
    const OP: &str = "relu_conv2d_depthwise_bwd_weight";
    same_dtype(OP, x, dy);
    let g = depthwise_geom(OP, x.shape(), w_shape, p);
    check_dy(OP, &g, dy);
    if let Some(rt) = gpu_rt(OP, &[x, dy]) {
        return gpu_out(&rt, w_shape, |dw| gdw::depthwise_relu_bwd_weight(&g, buf(x), buf(dy), dw));
    }
    with_dtype!(x.dtype(), T => {
        let mut dw = vec![T::ZERO; g.w_len()];
        cpu::conv::depthwise_bwd_weight_pre(&g, x.data::<T>(), dy.data::<T>(), &mut dw, |_, v| relu::<T>(v));
        Tensor::from_vec(w_shape, dw)
    })
}

/// max(v, 0), as `cpu::elementwise::relu_fwd`.
#[inline(always)]
pub(crate) fn relu<T: cpu::Real>(v: T) -> T {
    if v < T::ZERO {
        T::ZERO
    } else {
        v
    }
}

fn check_dy(op: &str, g: &Conv2dGeom, dy: &Tensor) {
    let want = [g.n, g.c_out, g.out_h(), g.out_w()];
    let got = nchw(op, "dy", dy);
    assert_eq!(got, want, "{op}: dy is {}, the output shape is {}", fmt_shape(&got), fmt_shape(&want));
}
