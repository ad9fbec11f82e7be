//! The DARTS building blocks, each a sequence of ops with the reference layer order and
//! state-dict names (`operations.py` of the reference implementation). BN has no affine
//! parameters in the search network.

use super::store::{Ctx, Store, B, P};
use crate::autograd::functions as F;
use crate::autograd::Var;
use crate::fused::convs::{ConvCand, Stage2};
use crate::fused::sepconv as fused;
use crate::ops::ConvParams;
use crate::rng::Rng;

/// ReLU → k×k conv (no bias) → BN. Names: `op.1.weight`, `op.2.*`.
#[derive(Clone, Debug)]
pub struct ReluConvBn {
    w: P,
    bn: B,
    p: ConvParams,
}

impl ReluConvBn {
    /// A block from `c_in` to `c_out` channels.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        s: &mut Store,
        prefix: &str,
        c_in: usize,
        c_out: usize,
        k: usize,
        stride: usize,
        pad: usize,
        rng: &mut Rng,
    ) -> Self {
        let w = s.conv(format!("{prefix}.op.1.weight"), [c_out, c_in, k, k], rng);
        let bn = s.bn(format!("{prefix}.op.2"), c_out);
        ReluConvBn { w, bn, p: ConvParams::new(stride, pad) }
    }

    /// Forward.
    pub fn forward(&self, ctx: &mut Ctx, x: &Var) -> Var {
        self.forward_parts(ctx, &[x], None).remove(0)
    }

    /// Forward of the channel concat of `xs` (a search cell's output as its nodes; the concat
    /// is not kept): the output whole (`[y]`), or split along its channels at `split`
    /// ([`Ctx::bn_parts`]: PC-DARTS' head and tail of a preprocessed state).
    pub fn forward_parts(&self, ctx: &mut Ctx, xs: &[&Var], split: Option<usize>) -> Vec<Var> {
        let y = F::relu_conv2d(xs, ctx.p(self.w), self.p, 0);
        ctx.bn_parts(&y, self.bn, None, split)
    }
}

/// ReLU → two 1×1 stride-2 convs to `c_out / 2` channels each, the second on the input shifted
/// by one pixel (`x[:, :, 1:, 1:]`) → channel concat → BN (affine in the evaluation network,
/// not in the search's). Names: `conv_1.weight`, `conv_2.weight`, `bn.*`.
#[derive(Clone, Debug)]
pub struct FactorizedReduce {
    w1: P,
    w2: P,
    bn: B,
    affine: Option<(P, P)>,
}

impl FactorizedReduce {
    /// Halves the resolution, `c_in` → `c_out` (even) channels; BN without affine parameters.
    pub fn new(s: &mut Store, prefix: &str, c_in: usize, c_out: usize, rng: &mut Rng) -> Self {
        Self::build(s, prefix, c_in, c_out, false, rng)
    }

    /// The same with an affine BN (γ = 1, β = 0): the evaluation network's.
    pub fn affine(s: &mut Store, prefix: &str, c_in: usize, c_out: usize, rng: &mut Rng) -> Self {
        Self::build(s, prefix, c_in, c_out, true, rng)
    }

    fn build(s: &mut Store, prefix: &str, c_in: usize, c_out: usize, affine: bool, rng: &mut Rng) -> Self {
        assert!(c_out % 2 == 0, "FactorizedReduce: c_out {c_out} must be even");
        let w1 = s.conv(format!("{prefix}.conv_1.weight"), [c_out / 2, c_in, 1, 1], rng);
        let w2 = s.conv(format!("{prefix}.conv_2.weight"), [c_out / 2, c_in, 1, 1], rng);
        let affine = affine.then(|| s.affine_bn_params(&format!("{prefix}.bn"), c_out));
        let bn = s.bn(format!("{prefix}.bn"), c_out);
        FactorizedReduce { w1, w2, bn, affine }
    }

    /// Forward.
    pub fn forward(&self, ctx: &mut Ctx, x: &Var) -> Var {
        self.forward_parts(ctx, &[x], None).remove(0)
    }

    /// Forward of the channel concat of `xs`, whole or split (see
    /// [`ReluConvBn::forward_parts`]).
    pub fn forward_parts(&self, ctx: &mut Ctx, xs: &[&Var], split: Option<usize>) -> Vec<Var> {
        let y = self.pre_bn(ctx, xs);
        ctx.bn_parts(&y, self.bn, self.affine, split)
    }

    /// The forward up to its BN (the fused mixed op applies the BN).
    pub fn forward_pre_bn(&self, ctx: &mut Ctx, x: &Var) -> Var {
        self.pre_bn(ctx, &[x])
    }

    fn pre_bn(&self, ctx: &mut Ctx, xs: &[&Var]) -> Var {
        let p = ConvParams::new(2, 0);
        let a = F::relu_conv2d(xs, ctx.p(self.w1), p, 0);
        let b = F::relu_conv2d(xs, ctx.p(self.w2), p, 1);
        F::concat_channels(&[a, b])
    }

    /// The final BN's buffers.
    pub fn final_bn(&self) -> B {
        self.bn
    }
}

/// Two ReLU → depthwise k×k → pointwise 1×1 → BN stacks, the first with the edge's stride.
/// Names: `op.1` (dw), `op.2` (pw), `op.3` (BN), `op.5` (dw), `op.6` (pw), `op.7` (BN).
#[derive(Clone, Debug)]
pub struct SepConv {
    dw1: P,
    pw1: P,
    bn1: B,
    dw2: P,
    pw2: P,
    bn2: B,
    k: usize,
    stride: usize,
}

impl SepConv {
    /// A separable conv on `c` channels.
    pub fn new(s: &mut Store, prefix: &str, c: usize, k: usize, stride: usize, rng: &mut Rng) -> Self {
        SepConv {
            dw1: s.conv(format!("{prefix}.op.1.weight"), [c, 1, k, k], rng),
            pw1: s.conv(format!("{prefix}.op.2.weight"), [c, c, 1, 1], rng),
            bn1: s.bn(format!("{prefix}.op.3"), c),
            dw2: s.conv(format!("{prefix}.op.5.weight"), [c, 1, k, k], rng),
            pw2: s.conv(format!("{prefix}.op.6.weight"), [c, c, 1, 1], rng),
            bn2: s.bn(format!("{prefix}.op.7"), c),
            k,
            stride,
        }
    }

    /// Forward.
    pub fn forward(&self, ctx: &mut Ctx, x: &Var) -> Var {
        let c = x.shape()[1];
        let pad = (self.k - 1) / 2;
        let dw = |s| ConvParams::new(s, pad).groups(c);
        let y = F::conv2d(&F::relu(x), ctx.p(self.dw1), dw(self.stride));
        let y = F::conv2d(&y, ctx.p(self.pw1), ConvParams::new(1, 0));
        let y = ctx.bn(&y, self.bn1, None);
        let y = F::conv2d(&F::relu(&y), ctx.p(self.dw2), dw(1));
        let y = F::conv2d(&y, ctx.p(self.pw2), ConvParams::new(1, 0));
        ctx.bn(&y, self.bn2, None)
    }

    /// The same up to and excluding the last BN (`op.7`), as two fused tape nodes: ReLU → dw →
    /// pw, then BN (`op.3`, running statistics updated in training) → ReLU → dw → pw, each
    /// recomputing its intermediates in backward (see [`crate::fused::sepconv`]). Normalising
    /// the result with [`SepConv::final_bn`] gives [`SepConv::forward`].
    pub fn forward_pre_bn(&self, ctx: &mut Ctx, x: &Var) -> Var {
        let c = x.shape()[1];
        let pad = (self.k - 1) / 2;
        let dw = |s| ConvParams::new(s, pad).groups(c);
        let z1 = fused::relu_dw_pw(x, ctx.p(self.dw1), ctx.p(self.pw1), dw(self.stride));
        let (w_dw, w_pw) = (ctx.p(self.dw2).clone(), ctx.p(self.pw2).clone());
        let training = ctx.training;
        fused::bn_relu_dw_pw(&z1, ctx.bn_state(self.bn1), &w_dw, &w_pw, dw(1), training)
    }

    /// The buffers of the last BN (`op.7`), which [`SepConv::forward_pre_bn`] leaves out.
    pub fn final_bn(&self) -> B {
        self.bn2
    }

    /// What the batched edge convs (`fused::convs`) need of it on `c` channels: the weights
    /// `[dw1, pw1, dw2, pw2]`, the two depthwise convs' parameters and the inner BN (`op.3`).
    pub fn conv_parts(&self, ctx: &Ctx, c: usize) -> ConvParts {
        let pad = (self.k - 1) / 2;
        let dw = |s| ConvParams::new(s, pad).groups(c);
        ConvParts {
            weights: [self.dw1, self.pw1, self.dw2, self.pw2].iter().map(|&w| ctx.p(w).clone()).collect(),
            p1: dw(self.stride),
            p2: Some(dw(1)),
            inner_bn: Some(self.bn1),
        }
    }
}

/// A sep or dil conv's weights, depthwise parameters and inner BN, for `fused::convs`.
pub struct ConvParts {
    /// `[dw1, pw1]`, and for a sep conv `[dw1, pw1, dw2, pw2]`.
    pub weights: Vec<Var>,
    /// Stage-1 depthwise parameters.
    pub p1: ConvParams,
    /// Stage-2 depthwise parameters (sep convs).
    pub p2: Option<ConvParams>,
    /// The BN between the stages (sep convs).
    pub inner_bn: Option<B>,
}

impl ConvParts {
    /// The candidate as `fused::convs::edge_convs` takes it.
    pub fn cand(&self) -> ConvCand<'_> {
        let w = &self.weights;
        ConvCand {
            dw1: &w[0],
            pw1: &w[1],
            p1: self.p1,
            stage2: self.p2.map(|p2| Stage2 { dw2: &w[2], pw2: &w[3], p2 }),
        }
    }
}

/// ReLU → depthwise k×k with dilation 2 → pointwise 1×1 → BN. Names: `op.1`, `op.2`, `op.3`.
#[derive(Clone, Debug)]
pub struct DilConv {
    dw: P,
    pw: P,
    bn: B,
    k: usize,
    stride: usize,
}

impl DilConv {
    /// A dilated separable conv on `c` channels.
    pub fn new(s: &mut Store, prefix: &str, c: usize, k: usize, stride: usize, rng: &mut Rng) -> Self {
        DilConv {
            dw: s.conv(format!("{prefix}.op.1.weight"), [c, 1, k, k], rng),
            pw: s.conv(format!("{prefix}.op.2.weight"), [c, c, 1, 1], rng),
            bn: s.bn(format!("{prefix}.op.3"), c),
            k,
            stride,
        }
    }

    /// Forward.
    pub fn forward(&self, ctx: &mut Ctx, x: &Var) -> Var {
        let c = x.shape()[1];
        let p = ConvParams::new(self.stride, self.k - 1).dilation(2).groups(c);
        let y = F::conv2d(&F::relu(x), ctx.p(self.dw), p);
        let y = F::conv2d(&y, ctx.p(self.pw), ConvParams::new(1, 0));
        ctx.bn(&y, self.bn, None)
    }

    /// The same up to and excluding the BN (`op.3`), as one fused tape node (ReLU → dilated dw →
    /// pw, recomputing the ReLU mask and the depthwise output in backward).
    pub fn forward_pre_bn(&self, ctx: &mut Ctx, x: &Var) -> Var {
        let c = x.shape()[1];
        let p = ConvParams::new(self.stride, self.k - 1).dilation(2).groups(c);
        fused::relu_dw_pw(x, ctx.p(self.dw), ctx.p(self.pw), p)
    }

    /// The buffers of the BN (`op.3`), which [`DilConv::forward_pre_bn`] leaves out.
    pub fn final_bn(&self) -> B {
        self.bn
    }

    /// What the batched edge convs (`fused::convs`) need of it on `c` channels.
    pub fn conv_parts(&self, ctx: &Ctx, c: usize) -> ConvParts {
        ConvParts {
            weights: vec![ctx.p(self.dw).clone(), ctx.p(self.pw).clone()],
            p1: ConvParams::new(self.stride, self.k - 1).dilation(2).groups(c),
            p2: None,
            inner_bn: None,
        }
    }
}

/// Which pooling.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolKind {
    /// Max over the window.
    Max,
    /// Mean over the in-bounds taps.
    Avg,
}

/// 3×3 pool (padding 1) → BN, as pools appear inside a search-network mixed op.
/// Names: `1.*` (the BN after the pool).
#[derive(Clone, Debug)]
pub struct PoolBn {
    kind: PoolKind,
    stride: usize,
    bn: B,
}

impl PoolBn {
    /// A pool on `c` channels.
    pub fn new(s: &mut Store, prefix: &str, kind: PoolKind, c: usize, stride: usize) -> Self {
        PoolBn { kind, stride, bn: s.bn(format!("{prefix}.1"), c) }
    }

    /// Forward.
    pub fn forward(&self, ctx: &mut Ctx, x: &Var) -> Var {
        let y = match self.kind {
            PoolKind::Max => F::max_pool(x, 3, self.stride, 1),
            PoolKind::Avg => F::avg_pool(x, 3, self.stride, 1),
        };
        ctx.bn(&y, self.bn, None)
    }

    /// The pool alone (the fused mixed op applies the BN).
    pub fn forward_pre_bn(&self, x: &Var) -> Var {
        match self.kind {
            PoolKind::Max => F::max_pool(x, 3, self.stride, 1),
            PoolKind::Avg => F::avg_pool(x, 3, self.stride, 1),
        }
    }

    /// The BN's buffers.
    pub fn final_bn(&self) -> B {
        self.bn
    }

    /// Which pooling.
    pub fn kind(&self) -> PoolKind {
        self.kind
    }

    /// Its stride.
    pub fn stride(&self) -> usize {
        self.stride
    }
}
