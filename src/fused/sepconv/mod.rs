//! The separable / dilated conv stages of the search network as single tape nodes.
//!
//! A DARTS sep conv is two stages, ReLU → depthwise → pointwise → BN, each; a dil conv is one
//! (the depthwise dilated). The BNs are non-affine. The final BN of a candidate is left to the
//! caller (the fused mixed op normalises every candidate's pre-BN output itself), so the stages
//! here are:
//!
//! - [`relu_dw_pw`]: `z = pw(dw(relu(x)))`, the first stage of a sep conv, and a whole dil conv
//!   up to its BN.
//!   Saves: `x` and the two weights (x is the node's input and alive anyway: nothing new).
//!   Recomputes in backward: the depthwise output `d` (one depthwise forward, ReLU on load, and
//!   only when the pointwise weight's gradient is wanted) and the ReLU mask (from `x`, inside the
//!   fused data-gradient kernel). Unfused, the tape stored `relu(x)` and `d`.
//! - [`bn_relu_dw_pw`]: `z2 = pw(dw(relu((z1 − μ)·rstd)))`, the sep conv's second stage with the
//!   first BN folded in: batch statistics of `z1` in training (the running statistics updated
//!   exactly as `batch_norm` does), the running statistics in eval.
//!   Saves: `z1` (the previous stage's output, alive anyway), `μ` and `rstd` (`[c]` each; in
//!   eval also the running variance), the two weights.
//!   Recomputes in backward: the normalised input `a = relu((z1 − μ)·rstd)` and its ReLU mask
//!   (on load, inside the depthwise kernels: `a` is never written to memory on a GPU, and is a
//!   transient inside one call on the CPU), and the depthwise output `d`. Backpropagates through
//!   the batch statistics with the standard BN backward. Unfused, the tape stored the BN output,
//!   its ReLU and `d`.
//!
//! So a whole sep conv up to its last BN keeps `z1` and `z2` where the unfused chain kept seven
//! tensors (`relu(x)`, `d1`, `z1`, `bn(z1)`, `relu(bn(z1))`, `d2`, `z2`).
//!
//! GPU: `depthwise_relu_*` (ReLU on load) and `depthwise_bnrelu_*` (normalise + ReLU on load)
//! kernels, the pointwise GEMM kernels, the BN statistics and backward kernels, `bn_invstd_f32`.
//! CPU: the composition of the existing CPU ops, intermediates dropped as soon as used.

pub(crate) mod cpu;
mod gpu;

use crate::autograd::functions::BnState;
use crate::autograd::Var;
use crate::backend::cpu::{self as cpu_backend, Real as _};
use crate::backend::geom::Conv2dGeom;
use crate::ops::conv::{self as conv, depthwise_geom, ConvParams};
use crate::ops::norm::{self, BnSaved};
use crate::ops::{gpu_rt, same_dtype};
use crate::tensor::{fmt_shape, Tensor};
use crate::with_dtype;

/// The 1×1 pointwise conv of every stage.
const PW: ConvParams = ConvParams { stride: 1, pad: 0, dilation: 1, groups: 1 };

fn check_channels(op: &str, g: &Conv2dGeom, ts: &[(&str, &Tensor)]) {
    for (name, t) in ts {
        assert_eq!(t.shape(), &[g.c_in], "{op}: {name} is {}, expected [{}]", fmt_shape(t.shape()), g.c_in);
    }
}

/// Per-channel `1 / sqrt(var + eps)`.
pub fn invstd(var: &Tensor, eps: f64) -> Tensor {
    if let Some(rt) = gpu_rt("invstd", &[var]) {
        return gpu::invstd(&rt, var, eps);
    }
    with_dtype!(var.dtype(), T => Tensor::from_vec(var.shape(), cpu::invstd(var.data::<T>(), eps)))
}

/// `dwconv(max((x - mean[c]) * rstd[c], 0), w)`: normalise, ReLU, depthwise, in one kernel on a
/// GPU (the normalised input is recomputed on load, never stored).
pub fn bnrelu_dw(x: &Tensor, mean: &Tensor, rstd: &Tensor, w: &Tensor, p: ConvParams) -> Tensor {
    const OP: &str = "bnrelu_dw";
    same_dtype(OP, x, w);
    let g = depthwise_geom(OP, x.shape(), w.shape(), p);
    check_channels(OP, &g, &[("mean", mean), ("rstd", rstd)]);
    if let Some(rt) = gpu_rt(OP, &[x, mean, rstd, w]) {
        return gpu::bnrelu_dw(&rt, &g, x, mean, rstd, w);
    }
    with_dtype!(x.dtype(), T => {
        let mut y = vec![T::ZERO; g.y_len()];
        cpu::bnrelu_dw(&g, x.data::<T>(), mean.data::<T>(), rstd.data::<T>(), w.data::<T>(), &mut y);
        Tensor::from_vec(&[g.n, g.c_out, g.out_h(), g.out_w()], y)
    })
}

/// Gradient of [`bnrelu_dw`] w.r.t. the normalised value (the BN output), the ReLU backward
/// applied: `dwconv_bwd_data(dy, w) * [(x - mean) * rstd > 0]`, shaped like `x`.
pub fn bnrelu_dw_bwd_data(
    x: &Tensor,
    mean: &Tensor,
    rstd: &Tensor,
    dy: &Tensor,
    w: &Tensor,
    p: ConvParams,
) -> Tensor {
    const OP: &str = "bnrelu_dw_bwd_data";
    same_dtype(OP, x, w);
    same_dtype(OP, dy, w);
    let g = depthwise_geom(OP, x.shape(), w.shape(), p);
    check_channels(OP, &g, &[("mean", mean), ("rstd", rstd)]);
    check_dy(OP, &g, dy);
    if let Some(rt) = gpu_rt(OP, &[x, mean, rstd, dy, w]) {
        return gpu::bnrelu_dw_bwd_data(&rt, &g, x, mean, rstd, dy, w);
    }
    with_dtype!(x.dtype(), T => {
        let mut da = vec![T::ZERO; g.x_len()];
        cpu_backend::conv::conv2d_bwd_data(&g, dy.data::<T>(), w.data::<T>(), &mut da);
        cpu::norm_relu_mask(&g, x.data::<T>(), mean.data::<T>(), rstd.data::<T>(), &mut da);
        Tensor::from_vec(x.shape(), da)
    })
}

/// Gradient of [`bnrelu_dw`] w.r.t. its weight: `dwconv_bwd_weight(max((x - mean) * rstd, 0),
/// dy)`, shaped like `w_shape`.
pub fn bnrelu_dw_bwd_weight(
    x: &Tensor,
    mean: &Tensor,
    rstd: &Tensor,
    dy: &Tensor,
    w_shape: &[usize],
    p: ConvParams,
) -> Tensor {
    const OP: &str = "bnrelu_dw_bwd_weight";
    same_dtype(OP, x, dy);
    let g = depthwise_geom(OP, x.shape(), w_shape, p);
    check_channels(OP, &g, &[("mean", mean), ("rstd", rstd)]);
    check_dy(OP, &g, dy);
    if let Some(rt) = gpu_rt(OP, &[x, mean, rstd, dy]) {
        return gpu::bnrelu_dw_bwd_weight(&rt, &g, x, mean, rstd, dy, w_shape);
    }
    with_dtype!(x.dtype(), T => {
        let mut dw = vec![T::ZERO; g.w_len()];
        cpu::bnrelu_dw_bwd_weight(&g, x.data::<T>(), mean.data::<T>(), rstd.data::<T>(), dy.data::<T>(), &mut dw);
        Tensor::from_vec(w_shape, dw)
    })
}

fn check_dy(op: &str, g: &Conv2dGeom, dy: &Tensor) {
    let want = [g.n, g.c_out, g.out_h(), g.out_w()];
    assert_eq!(
        dy.shape(),
        &want,
        "{op}: dy is {}, the output shape is {}",
        fmt_shape(dy.shape()),
        fmt_shape(&want)
    );
}

/// The depthwise output shape `[n, c, oh, ow]` of `x` under `w_dw`.
fn dw_out_shape(op: &str, x: &Var, w_dw: &Var, p: ConvParams) -> [usize; 4] {
    let g = depthwise_geom(op, x.shape(), w_dw.shape(), p);
    [g.n, g.c_out, g.out_h(), g.out_w()]
}

/// `z = pw(dw(relu(x)))`: ReLU → depthwise (`w_dw` `[c, 1, k, k]`, `dw_params` with
/// `groups == c`) → pointwise 1×1 (`w_pw` `[c_out, c, 1, 1]`), one tape node. Saves `x` and the
/// weights; backward recomputes the depthwise output and the ReLU mask.
pub fn relu_dw_pw(x: &Var, w_dw: &Var, w_pw: &Var, dw_params: ConvParams) -> Var {
    const OP: &str = "relu_dw_pw";
    let p = dw_params;
    let d_shape = dw_out_shape(OP, x, w_dw, p);
    let z = {
        let d = conv::relu_conv2d_depthwise(x.value(), w_dw.value(), p);
        conv::conv2d(&d, w_pw.value(), PW)
    };
    let (xv, wd, wp) = (x.value().clone(), w_dw.value().clone(), w_pw.value().clone());
    x.tape().push(
        z,
        &[x, w_dw, w_pw],
        Box::new(move |dz, need| {
            let dwp = need[2].then(|| {
                let d = conv::relu_conv2d_depthwise(&xv, &wd, p);
                conv::conv2d_bwd_weight(&d, dz, wp.shape(), PW)
            });
            let dd = (need[0] || need[1]).then(|| conv::conv2d_bwd_data(dz, &wp, &d_shape, PW));
            let dwd = need[1]
                .then(|| conv::relu_conv2d_depthwise_bwd_weight(&xv, dd.as_ref().unwrap(), wd.shape(), p));
            let dx = need[0].then(|| conv::relu_conv2d_depthwise_bwd_data(&xv, dd.as_ref().unwrap(), &wd, p));
            vec![dx, dwd, dwp]
        }),
    )
}

/// `z2 = pw(dw(relu(bn(z1))))`: the sep conv's second stage with the first stage's BN
/// (non-affine, `bn`'s eps) folded in, one tape node. Training: batch statistics of `z1`, and
/// `bn`'s running statistics updated as [`crate::autograd::functions::batch_norm`] does
/// (momentum, unbiased variance; the caller counts the batch); eval: the running statistics.
/// Saves `z1`, the statistics and the weights; backward recomputes the normalised input, its
/// ReLU mask and the depthwise output, and runs the BN backward (through the batch statistics in
/// training).
pub fn bn_relu_dw_pw(
    z1: &Var,
    bn: &mut BnState,
    w_dw: &Var,
    w_pw: &Var,
    dw_params: ConvParams,
    training: bool,
) -> Var {
    const OP: &str = "bn_relu_dw_pw";
    let p = dw_params;
    let d_shape = dw_out_shape(OP, z1, w_dw, p);
    let eps = bn.eps;
    let z1v = z1.value().clone();
    // (mean, rstd) the stage normalises with; in eval also the running variance for the backward.
    let (mean, rstd, running_var) = if training {
        let g = norm::bn_geom(OP, z1v.shape());
        assert!(
            g.per_channel() > 1,
            "{OP}: training-mode BN needs more than one value per channel, z1 is {}",
            fmt_shape(z1v.shape())
        );
        // Statistics, rstd and the running update in one pass (one launch on a GPU).
        let (mean, rstd) = crate::fused::mixed::batch_stats_update(&z1v, bn);
        (mean, rstd, None)
    } else {
        let rv = bn.running_var.clone();
        (bn.running_mean.clone(), invstd(&rv, eps), Some(rv))
    };
    let z2 = {
        let d = bnrelu_dw(&z1v, &mean, &rstd, w_dw.value(), p);
        conv::conv2d(&d, w_pw.value(), PW)
    };
    let (wd, wp) = (w_dw.value().clone(), w_pw.value().clone());
    z1.tape().push(
        z2,
        &[z1, w_dw, w_pw],
        Box::new(move |dz2, need| {
            let dwp = need[2].then(|| {
                let d = bnrelu_dw(&z1v, &mean, &rstd, &wd, p);
                conv::conv2d_bwd_weight(&d, dz2, wp.shape(), PW)
            });
            let dd = (need[0] || need[1]).then(|| conv::conv2d_bwd_data(dz2, &wp, &d_shape, PW));
            let dwd = need[1]
                .then(|| bnrelu_dw_bwd_weight(&z1v, &mean, &rstd, dd.as_ref().unwrap(), wd.shape(), p));
            let dz1 = need[0].then(|| {
                let da = bnrelu_dw_bwd_data(&z1v, &mean, &rstd, dd.as_ref().unwrap(), &wd, p);
                match &running_var {
                    None => {
                        let saved = BnSaved { mean: mean.clone(), invstd: rstd.clone() };
                        norm::batch_norm_train_bwd(&z1v, &da, &saved, None, false).dx
                    }
                    Some(rv) => norm::batch_norm_eval_bwd(&z1v, &da, &mean, rv, None, eps, false).dx,
                }
            });
            vec![dz1, dwd, dwp]
        }),
    )
}

/// One slot of [`dw_pw_slots`]: pre-op → depthwise (`dw` `[c, 1, k, k]`, `p` with `groups == c`)
/// → pointwise 1×1 (`pw` `[c, c, 1, 1]`), the pre-op ReLU, or normalise then ReLU with
/// `norm = (mean, rstd)` (`[c]` each).
pub struct DwPwSlot<'a> {
    /// The pre-op's input `[n, c, h, w]`.
    pub x: &'a Tensor,
    /// `(mean, rstd)`: normalise before the ReLU; `None`: ReLU only.
    pub norm: Option<(&'a Tensor, &'a Tensor)>,
    /// The depthwise weight.
    pub dw: &'a Tensor,
    /// The pointwise weight.
    pub pw: &'a Tensor,
    /// The depthwise conv's parameters.
    pub p: ConvParams,
}

/// `pw(dw(pre(x)))` for every slot (forward only, no tape): on a GPU one launch for all slots
/// with the depthwise output kept on chip (`dw_pw_fwd_slots`: 1 to 4 slots sharing the input
/// and output shapes, `c <= 64`); on the CPU the ops slot by slot.
pub fn dw_pw_slots(slots: &[DwPwSlot]) -> Vec<Tensor> {
    const OP: &str = "dw_pw_slots";
    let geoms: Vec<Conv2dGeom> = slots
        .iter()
        .map(|s| {
            same_dtype(OP, s.x, s.dw);
            same_dtype(OP, s.x, s.pw);
            let g = depthwise_geom(OP, s.x.shape(), s.dw.shape(), s.p);
            assert_eq!(
                s.pw.shape(),
                &[g.c_in, g.c_in, 1, 1],
                "{OP}: pointwise weight {}, expected [{c}, {c}, 1, 1]",
                fmt_shape(s.pw.shape()),
                c = g.c_in
            );
            if let Some((mean, rstd)) = s.norm {
                check_channels(OP, &g, &[("mean", mean), ("rstd", rstd)]);
            }
            g
        })
        .collect();
    let all: Vec<&Tensor> = slots
        .iter()
        .flat_map(|s| [s.x, s.dw, s.pw].into_iter().chain(s.norm.into_iter().flat_map(|(m, r)| [m, r])))
        .collect();
    if let Some(rt) = gpu_rt(OP, &all) {
        return gpu::dw_pw_slots(&rt, slots, &geoms);
    }
    slots
        .iter()
        .map(|s| {
            let d = match s.norm {
                Some((mean, rstd)) => bnrelu_dw(s.x, mean, rstd, s.dw, s.p),
                None => conv::relu_conv2d_depthwise(s.x, s.dw, s.p),
            };
            conv::conv2d(&d, s.pw, PW)
        })
        .collect()
}
