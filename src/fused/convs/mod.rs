//! The conv candidates of one DARTS edge (sep 3x3, sep 5x5, dil 3x3, dil 5x5) as one tape node,
//! each stage of all candidates batched into shared launches.
//!
//! Every candidate starts with stage 1 on the edge's input x; sep convs add stage 2 on stage 1's
//! output z1, with the first BN (non-affine) folded in; the final BN is the mixed op's:
//!
//! ```text
//! stage 1 (all S candidates):  z1_i = pw(dw(relu(x), dw1_i), pw1_i)           (dw1_i: k_i, d_i, stride)
//! stage 2 (the S2 sep convs):  a_i  = relu((z1_i − μ_i)·rstd_i)                (batch stats, running update)
//!                              z2_i = pw(dw(a_i, dw2_i), pw2_i)
//! output: [S·n, c, ho, wo], part i = z2_i (sep) or z1_i (dil), in the candidates' order
//! ```
//!
//! Backward (the math of `fused::sepconv`, per candidate): stage 2 through the pointwise and
//! depthwise convs (ReLU mask from z1, μ, rstd) and the BN backward through the batch statistics
//! gives dz1_i; stage 1 through the pointwise and depthwise convs (ReLU mask from x) gives each
//! candidate's dx_i, and dx = Σ_i dx_i (in candidate order).
//!
//! Saved: x (the edge's input, alive anyway), the weights, the sep convs' z1 (`[S2·n, ...]`) and
//! their (μ, rstd) (`[S2·c]` each). Never written to memory: the forward's depthwise outputs (on
//! chip on a GPU, a cache-sized band on the CPU). Recomputed in the backward: the depthwise
//! outputs of both stages (only when the pointwise weights' gradients are wanted), every ReLU mask, the
//! normalised a_i (on load, inside the depthwise kernels).
//!
//! Launches on a GPU, whatever S: forward 3 (stage 1, the inner BN statistics with their running
//! update, stage 2: each stage one launch that keeps the depthwise output in shared memory and
//! feeds it to the pointwise GEMM, `kernels/sepconv.cu`; 5 beyond 64 channels).
//!
//! BN statistics (training): each stage's pointwise epilogue also writes per-tile partials
//! (mean, centred sum of squares) of what it produced, while the values are on chip: from the
//! accumulators in registers on a GPU (per block, up to 64 channels), from the cache-resident
//! band on the CPU (per band, in f64). The inner BNs' statistics are merged from stage 1's
//! partials (2·n·tiles values per channel instead of two passes over z1), and the output's
//! partials go with it to the mixed op ([`TileStats`]), which merges its final BNs' statistics
//! likewise.
//!
//! Backward launches: 15 with weight gradients (stage 2: recompute, pointwise weight, pointwise
//! data, depthwise weight in two passes, depthwise data, BN backward in two; stage 1: the same
//! less the BN, plus the sum of the dx_i), 7 without. The unfused reference is each candidate's
//! own chain of ops (`nn::SepConv::forward` / `nn::DilConv::forward` without their final BN).

mod cpu;
mod gpu;

use crate::autograd::functions::BnState;
use crate::autograd::Var;
use crate::fused::mixed::TileStats;
use crate::ops::conv::{conv_geom, depthwise_geom, ConvParams};
use crate::ops::{gpu_rt, same_dtype};
use crate::tensor::{fmt_shape, Tensor};
use crate::with_dtype;

const OP: &str = "edge_convs";

/// The 1×1 pointwise conv of every stage.
const PW: ConvParams = ConvParams { stride: 1, pad: 0, dilation: 1, groups: 1 };

/// One conv candidate: stage 1, and for a sep conv stage 2.
pub struct ConvCand<'a> {
    /// Stage-1 depthwise weight `[c, 1, k, k]`.
    pub dw1: &'a Var,
    /// Stage-1 pointwise weight `[c, c, 1, 1]`.
    pub pw1: &'a Var,
    /// Stage-1 depthwise parameters (the edge's stride, `groups == c`).
    pub p1: ConvParams,
    /// A sep conv's second stage.
    pub stage2: Option<Stage2<'a>>,
}

/// A sep conv's second stage: the first BN, ReLU, depthwise (stride 1), pointwise.
pub struct Stage2<'a> {
    /// Depthwise weight `[c, 1, k, k]`.
    pub dw2: &'a Var,
    /// Pointwise weight `[c, c, 1, 1]`.
    pub pw2: &'a Var,
    /// Depthwise parameters.
    pub p2: ConvParams,
}

/// One candidate's weights and depthwise parameters, by value.
#[derive(Clone)]
pub struct CandWeights {
    /// Stage 1: depthwise, pointwise, depthwise parameters.
    pub dw1: Tensor,
    /// Stage-1 pointwise weight.
    pub pw1: Tensor,
    /// Stage-1 depthwise parameters.
    pub p1: ConvParams,
    /// Stage 2 (sep convs): depthwise weight, pointwise weight, depthwise parameters.
    pub stage2: Option<(Tensor, Tensor, ConvParams)>,
}

/// What the backward keeps (see the module comment).
pub struct ConvsSaved {
    x: Tensor,
    cands: Vec<CandWeights>,
    /// The sep convs' stage-1 outputs, stacked `[S2·n, c, ho, wo]`.
    z1: Option<Tensor>,
    /// Their normalisation: μ and rstd stacked `[S2·c]` (training: batch statistics; eval: the
    /// running mean and 1/√(running var + eps)).
    mean: Option<Tensor>,
    rstd: Option<Tensor>,
    /// Eval mode: the inner BNs' running variances (the backward's constants).
    eval_var: Option<Vec<Tensor>>,
    /// The inner BNs' eps.
    eps: f64,
    training: bool,
}

/// What one backward call is asked for: x's gradient, and per candidate its weights' gradients.
#[derive(Clone, Copy, Debug)]
pub struct ConvsNeed {
    /// The input's gradient.
    pub x: bool,
    /// Any stage-1 depthwise weight's.
    pub dw1: bool,
    /// Any stage-1 pointwise weight's.
    pub pw1: bool,
    /// Any stage-2 depthwise weight's.
    pub dw2: bool,
    /// Any stage-2 pointwise weight's.
    pub pw2: bool,
}

/// Gradients of [`ConvsSaved::backward`]: per candidate `[dw1, pw1, dw2?, pw2?]` in order.
pub struct ConvsGrads {
    /// Of x.
    pub dx: Option<Tensor>,
    /// Per candidate: stage-1 depthwise, stage-1 pointwise, then for sep convs stage-2
    /// depthwise and pointwise.
    pub dw: Vec<Vec<Option<Tensor>>>,
}

/// Geometries of one candidate: stage-1 depthwise, the pointwise (both stages), stage-2
/// depthwise.
pub(crate) struct Geoms {
    pub g1: crate::backend::geom::Conv2dGeom,
    pub gpw: crate::backend::geom::Conv2dGeom,
    pub g2: Option<crate::backend::geom::Conv2dGeom>,
}

pub(crate) fn geoms(x_shape: &[usize], c: &CandWeights) -> Geoms {
    let g1 = depthwise_geom(OP, x_shape, c.dw1.shape(), c.p1);
    let y1 = [g1.n, g1.c_out, g1.out_h(), g1.out_w()];
    let gpw = conv_geom(OP, &y1, c.pw1.shape(), PW);
    assert_eq!(
        gpw.c_out,
        g1.c_out,
        "{OP}: pointwise weight {} is not [c, c, 1, 1]",
        fmt_shape(c.pw1.shape())
    );
    let g2 = c.stage2.as_ref().map(|(dw2, pw2, p2)| {
        let g2 = depthwise_geom(OP, &y1, dw2.shape(), *p2);
        assert!(
            g2.out_h() == g2.h && g2.out_w() == g2.w && pw2.shape() == c.pw1.shape(),
            "{OP}: stage 2 must keep the shape: dw {} {p2:?}, pw {}",
            fmt_shape(dw2.shape()),
            fmt_shape(pw2.shape())
        );
        g2
    });
    Geoms { g1, gpw, g2 }
}

/// The edge's conv candidates on tensors: the stacked output `[S·n, c, ho, wo]`, what the
/// backward needs, and in training the output's per-tile BN partials for the mixed op (f32 per
/// GPU block up to 64 channels, f64 per CPU band).
/// `bns[k]` is the inner BN of the k-th sep conv (running statistics updated in training, used
/// in eval).
pub fn forward(
    x: &Tensor,
    cands: Vec<CandWeights>,
    bns: &mut [&mut BnState],
    training: bool,
) -> (Tensor, ConvsSaved, Option<TileStats>) {
    assert!(!cands.is_empty(), "{OP}: no candidates");
    let geoms: Vec<Geoms> = cands.iter().map(|c| geoms(x.shape(), c)).collect();
    let g0 = &geoms[0].gpw;
    for (c, g) in cands.iter().zip(&geoms) {
        assert!(
            (g.gpw.n, g.gpw.c_in, g.gpw.h, g.gpw.w) == (g0.n, g0.c_in, g0.h, g0.w),
            "{OP}: candidates disagree on the output shape"
        );
        same_dtype(OP, x, &c.dw1);
        same_dtype(OP, x, &c.pw1);
    }
    let s2 = cands.iter().filter(|c| c.stage2.is_some()).count();
    assert_eq!(bns.len(), s2, "{OP}: {} BN states for {s2} sep convs", bns.len());
    if training && s2 > 0 {
        assert!(
            g0.n * g0.h * g0.w > 1,
            "{OP}: training-mode BN needs more than one value per channel, the stage-1 output is [{}, {}, {}, {}]",
            g0.n,
            g0.c_out,
            g0.h,
            g0.w
        );
    }
    let eval_var = (!training && s2 > 0).then(|| bns.iter().map(|b| b.running_var.clone()).collect());
    let eps = bns.first().map_or(1e-5, |b| b.eps);
    let (out, z1, mean, rstd, tiles) = if let Some(rt) = gpu_rt(OP, &[x]) {
        gpu::forward(&rt, x, &cands, &geoms, bns, training)
    } else {
        with_dtype!(x.dtype(), T => cpu::forward::<T>(x, &cands, &geoms, bns, training))
    };
    (out, ConvsSaved { x: x.clone(), cands, z1, mean, rstd, eval_var, eps, training }, tiles)
}

impl ConvsSaved {
    /// The gradients asked for, given the stacked output's gradient.
    pub fn backward(&self, dout: &Tensor, need: ConvsNeed) -> ConvsGrads {
        let geoms: Vec<Geoms> = self.cands.iter().map(|c| geoms(self.x.shape(), c)).collect();
        let g0 = &geoms[0].gpw;
        let want = [self.cands.len() * g0.n, g0.c_out, g0.h, g0.w];
        assert_eq!(
            dout.shape(),
            &want,
            "{OP}: dout is {}, expected {}",
            fmt_shape(dout.shape()),
            fmt_shape(&want)
        );
        if let Some(rt) = gpu_rt(OP, &[dout, &self.x]) {
            gpu::backward(&rt, self, &geoms, dout, need)
        } else {
            with_dtype!(dout.dtype(), T => cpu::backward::<T>(self, &geoms, dout, need))
        }
    }
}

/// The edge's conv candidates as one tape node (see the module comment). `bns[k]` is the inner
/// BN of the k-th sep conv. Returns `[S·n, c, ho, wo]`, part i candidate i's pre-BN output, and
/// where the forward gathered them (training), its per-tile BN partials, for
/// [`crate::fused::mixed::Normed::tiles`].
pub fn edge_convs(
    x: &Var,
    cands: &[ConvCand],
    bns: &mut [&mut BnState],
    training: bool,
) -> (Var, Option<TileStats>) {
    let weights: Vec<CandWeights> = cands
        .iter()
        .map(|c| CandWeights {
            dw1: c.dw1.value().clone(),
            pw1: c.pw1.value().clone(),
            p1: c.p1,
            stage2: c.stage2.as_ref().map(|s| (s.dw2.value().clone(), s.pw2.value().clone(), s.p2)),
        })
        .collect();
    let (out, saved, tiles) = forward(x.value(), weights, bns, training);
    // Parents: x, then per candidate dw1, pw1 (and dw2, pw2).
    let mut parents: Vec<&Var> = vec![x];
    let mut kinds: Vec<u8> = Vec::new(); // 1: dw1, 2: pw1, 3: dw2, 4: pw2
    for c in cands {
        parents.extend([c.dw1, c.pw1]);
        kinds.extend([1, 2]);
        if let Some(s) = &c.stage2 {
            parents.extend([s.dw2, s.pw2]);
            kinds.extend([3, 4]);
        }
    }
    let y = x.tape().push(
        out,
        &parents,
        Box::new(move |dout, need| {
            let any = |k: u8| kinds.iter().zip(&need[1..]).any(|(&kk, &n)| kk == k && n);
            let want = ConvsNeed { x: need[0], dw1: any(1), pw1: any(2), dw2: any(3), pw2: any(4) };
            let g = saved.backward(dout, want);
            let mut out = vec![g.dx];
            for (grads, need) in g.dw.into_iter().flatten().zip(&need[1..]) {
                out.push(grads.filter(|_| *need));
            }
            out
        }),
    );
    (y, tiles)
}
