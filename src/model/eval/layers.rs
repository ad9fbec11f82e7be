//! The evaluation network's blocks (`operations.py` with `affine=True`): the same layer order
//! and state-dict names as the search blocks in [`crate::nn`], but every BN has γ and β.
//!
//! The separable and dilated convs reuse the fused ReLU → depthwise → pointwise stage
//! ([`crate::fused::sepconv::relu_dw_pw`]); the search network's second fused stage folds a
//! non-affine BN into its input and cannot take γ and β, so here the BN between the stages is an
//! ordinary affine BN node followed by a second `relu_dw_pw`.

use crate::autograd::functions as F;
use crate::autograd::{Groups, Var};
use crate::fused::sepconv::relu_dw_pw;
use crate::nn::{Ctx, Store, B, P};
use crate::ops::ConvParams;
use crate::rng::Rng;
use crate::tensor::Tensor;

/// BN with γ (`<prefix>.weight`, init 1) and β (`<prefix>.bias`, init 0) and running statistics.
#[derive(Clone, Debug)]
pub struct AffineBn {
    buf: B,
    gamma: P,
    beta: P,
}

impl AffineBn {
    /// An affine BN on `c` channels named `prefix`.
    pub fn new(s: &mut Store, prefix: &str, c: usize) -> AffineBn {
        let (gamma, beta) = s.affine_bn_params(prefix, c);
        AffineBn { buf: s.bn(prefix.to_string(), c), gamma, beta }
    }

    /// Forward (batch statistics in training, running statistics in eval).
    pub fn forward(&self, ctx: &mut Ctx, x: &Var) -> Var {
        ctx.bn(x, self.buf, Some((self.gamma, self.beta)))
    }
}

/// ReLU → k×k conv (no bias) → affine BN. Names: `op.1.weight`, `op.2.*`.
#[derive(Clone, Debug)]
pub struct ReluConvBn {
    w: P,
    bn: AffineBn,
    p: ConvParams,
}

impl ReluConvBn {
    /// A 1×1 block from `c_in` to `c_out` channels (the cells' preprocessing).
    pub fn new(s: &mut Store, prefix: &str, c_in: usize, c_out: usize, rng: &mut Rng) -> Self {
        let w = s.conv(format!("{prefix}.op.1.weight"), [c_out, c_in, 1, 1], rng);
        ReluConvBn { w, bn: AffineBn::new(s, &format!("{prefix}.op.2"), c_out), p: ConvParams::new(1, 0) }
    }

    /// Forward.
    pub fn forward(&self, ctx: &mut Ctx, x: &Var) -> Var {
        let y = F::relu_conv2d(&[x], ctx.p(self.w), self.p, 0);
        self.bn.forward(ctx, &y)
    }
}

/// Two ReLU → depthwise k×k → pointwise 1×1 → affine BN stacks, the first with the op's stride.
/// Names: `op.1` (dw), `op.2` (pw), `op.3` (BN), `op.5` (dw), `op.6` (pw), `op.7` (BN).
#[derive(Clone, Debug)]
pub struct SepConv {
    dw1: P,
    pw1: P,
    bn1: AffineBn,
    dw2: P,
    pw2: P,
    bn2: AffineBn,
    k: usize,
    stride: usize,
}

impl SepConv {
    /// A separable conv on `c` channels.
    pub fn new(s: &mut Store, prefix: &str, c: usize, k: usize, stride: usize, rng: &mut Rng) -> Self {
        SepConv {
            dw1: s.conv(format!("{prefix}.op.1.weight"), [c, 1, k, k], rng),
            pw1: s.conv(format!("{prefix}.op.2.weight"), [c, c, 1, 1], rng),
            bn1: AffineBn::new(s, &format!("{prefix}.op.3"), c),
            dw2: s.conv(format!("{prefix}.op.5.weight"), [c, 1, k, k], rng),
            pw2: s.conv(format!("{prefix}.op.6.weight"), [c, c, 1, 1], rng),
            bn2: AffineBn::new(s, &format!("{prefix}.op.7"), c),
            k,
            stride,
        }
    }

    /// Forward: two fused ReLU → dw → pw nodes, each followed by its affine BN.
    pub fn forward(&self, ctx: &mut Ctx, x: &Var) -> Var {
        let c = x.shape()[1];
        let dw = |s| ConvParams::new(s, (self.k - 1) / 2).groups(c);
        let z1 = relu_dw_pw(x, ctx.p(self.dw1), ctx.p(self.pw1), dw(self.stride));
        let y1 = self.bn1.forward(ctx, &z1);
        let z2 = relu_dw_pw(&y1, ctx.p(self.dw2), ctx.p(self.pw2), dw(1));
        self.bn2.forward(ctx, &z2)
    }
}

/// ReLU → depthwise k×k with dilation 2 → pointwise 1×1 → affine BN. Names: `op.1`, `op.2`,
/// `op.3`.
#[derive(Clone, Debug)]
pub struct DilConv {
    dw: P,
    pw: P,
    bn: AffineBn,
    k: usize,
    stride: usize,
}

impl DilConv {
    /// A dilated separable conv on `c` channels.
    pub fn new(s: &mut Store, prefix: &str, c: usize, k: usize, stride: usize, rng: &mut Rng) -> Self {
        DilConv {
            dw: s.conv(format!("{prefix}.op.1.weight"), [c, 1, k, k], rng),
            pw: s.conv(format!("{prefix}.op.2.weight"), [c, c, 1, 1], rng),
            bn: AffineBn::new(s, &format!("{prefix}.op.3"), c),
            k,
            stride,
        }
    }

    /// Forward: one fused ReLU → dilated dw → pw node, then the affine BN.
    pub fn forward(&self, ctx: &mut Ctx, x: &Var) -> Var {
        let c = x.shape()[1];
        let p = ConvParams::new(self.stride, self.k - 1).dilation(2).groups(c);
        let z = relu_dw_pw(x, ctx.p(self.dw), ctx.p(self.pw), p);
        self.bn.forward(ctx, &z)
    }
}

/// A linear layer's weight `[c_out, c_in]` and bias `[c_out]` (`<prefix>.weight`, `.bias`), with
/// PyTorch's default initialisation U(−1/√c_in, 1/√c_in) for both.
pub fn linear(s: &mut Store, prefix: &str, c_in: usize, c_out: usize, rng: &mut Rng) -> (P, P) {
    let bound = 1.0 / (c_in as f64).sqrt();
    let w = Tensor::from_f64(&[c_out, c_in], &rng.uniforms(c_out * c_in, -bound, bound), s.dtype);
    let b = Tensor::from_f64(&[c_out], &rng.uniforms(c_out, -bound, bound), s.dtype);
    (
        s.add(format!("{prefix}.weight"), w, Groups::WEIGHTS),
        s.add(format!("{prefix}.bias"), b, Groups::WEIGHTS),
    )
}
