//! The mixed op: Σ_k w_k · o_k(x) over the candidate operations, w = softmax(α_edge) over the
//! eight of DARTS, or σ(α_edge) over the seven of FairDARTS (no `none`, see `super::fair`).

use crate::autograd::functions as F;
use crate::autograd::Var;
use crate::fused::convs::{edge_convs, ConvCand};
use crate::fused::mixed::{mixed_edge, MixedEdge, Normed, Weighting, K};
use crate::nn::{Ctx, DilConv, FactorizedReduce, PoolBn, PoolKind, SepConv, Store};
use crate::rng::Rng;

/// The candidate operations, in the column order of α (the reference's `PRIMITIVES`).
pub const PRIMITIVES: [&str; 8] = [
    "none",
    "max_pool_3x3",
    "avg_pool_3x3",
    "skip_connect",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "dil_conv_3x3",
    "dil_conv_5x5",
];

/// One candidate on an edge.
#[derive(Clone, Debug)]
enum Candidate {
    Zero { stride: usize },
    Pool(PoolBn),
    Identity,
    Reduce(FactorizedReduce),
    Sep(SepConv),
    Dil(DilConv),
}

/// The candidates of one edge (names `<prefix>._ops.<k>...`, k the α column).
#[derive(Clone, Debug)]
pub struct MixedOp {
    /// The candidates in α column order: the [`PRIMITIVES`], or all but `none`.
    ops: Vec<Candidate>,
    /// How the edge weighs them.
    weighting: Weighting,
}

impl MixedOp {
    /// A DARTS edge on `c` channels with the given stride (2 on a reduction cell's input edges).
    pub fn new(s: &mut Store, prefix: &str, c: usize, stride: usize, rng: &mut Rng) -> MixedOp {
        MixedOp::build(s, prefix, c, stride, true, Weighting::Softmax, rng)
    }

    /// An edge of the [`PRIMITIVES`] (`with_none`) or of all but `none`, whose candidate of
    /// primitive i is then named and weighed as column i − 1 (FairDARTS).
    pub(super) fn build(
        s: &mut Store,
        prefix: &str,
        c: usize,
        stride: usize,
        with_none: bool,
        weighting: Weighting,
        rng: &mut Rng,
    ) -> MixedOp {
        let shift = usize::from(!with_none);
        let p = |k: usize| format!("{prefix}._ops.{}", k - shift);
        let mut ops = vec![
            Candidate::Zero { stride },
            Candidate::Pool(PoolBn::new(s, &p(1), PoolKind::Max, c, stride)),
            Candidate::Pool(PoolBn::new(s, &p(2), PoolKind::Avg, c, stride)),
            if stride == 1 {
                Candidate::Identity
            } else {
                Candidate::Reduce(FactorizedReduce::new(s, &p(3), c, c, rng))
            },
            Candidate::Sep(SepConv::new(s, &p(4), c, 3, stride, rng)),
            Candidate::Sep(SepConv::new(s, &p(5), c, 5, stride, rng)),
            Candidate::Dil(DilConv::new(s, &p(6), c, 3, stride, rng)),
            Candidate::Dil(DilConv::new(s, &p(7), c, 5, stride, rng)),
        ];
        if !with_none {
            ops.remove(0);
        }
        MixedOp { ops, weighting }
    }

    /// Σ_k w[k] o_k(x), `w` the edge's weights, one per candidate.
    pub fn forward(&self, ctx: &mut Ctx, x: &Var, w: &Var) -> Var {
        let outs: Vec<Var> = self
            .ops
            .iter()
            .map(|op| match op {
                Candidate::Zero { stride } => F::zero(x, *stride),
                Candidate::Pool(p) => p.forward(ctx, x),
                Candidate::Identity => x.clone(),
                Candidate::Reduce(r) => r.forward(ctx, x),
                Candidate::Sep(s) => s.forward(ctx, x),
                Candidate::Dil(d) => d.forward(ctx, x),
            })
            .collect();
        F::weighted_sum(&outs, w)
    }

    /// The fused edge: acc + Σ_k w(α[row])_k o_k(x) as one node over the candidates' pre-BN
    /// outputs (see `fused::mixed`), `alpha` the cell type's logits (`[14, 8]`, or `[14, 7]`
    /// without `none`: column k is then fused slot k + 1), `acc` the destination node's sum of
    /// earlier edges; `scale` PC-DARTS' downstream scale of the output
    /// ([`MixedEdge::scale`]).
    pub fn forward_fused(
        &self,
        ctx: &mut Ctx,
        x: &Var,
        alpha: &Var,
        row: usize,
        acc: Option<&Var>,
        scale: Option<(&Var, usize)>,
    ) -> Var {
        let mut normed = Vec::with_capacity(self.ops.len());
        let mut bns = Vec::with_capacity(self.ops.len());
        let mut skip = None;
        // The conv candidates, batched into one node: slots, parts, final BNs.
        let c = x.shape()[1];
        let (mut conv_slots, mut convs, mut conv_bns) = (Vec::new(), Vec::new(), Vec::new());
        let mut pools: Vec<(usize, &PoolBn)> = Vec::new();
        let first = K - self.ops.len();
        for (slot, op) in self.ops.iter().enumerate().map(|(k, op)| (k + first, op)) {
            let (z, bn) = match op {
                Candidate::Zero { .. } => continue,
                Candidate::Identity => {
                    skip = Some((slot, x));
                    continue;
                }
                Candidate::Pool(p) => {
                    pools.push((slot, p));
                    continue;
                }
                Candidate::Reduce(r) => (r.forward_pre_bn(ctx, x), r.final_bn()),
                Candidate::Sep(s) => {
                    conv_slots.push(slot);
                    convs.push(s.conv_parts(ctx, c));
                    conv_bns.push(s.final_bn());
                    continue;
                }
                Candidate::Dil(d) => {
                    conv_slots.push(slot);
                    convs.push(d.conv_parts(ctx, c));
                    conv_bns.push(d.final_bn());
                    continue;
                }
            };
            normed.push(Normed::new(vec![slot], z));
            bns.push(bn);
        }
        // The max and avg pools share one node (each a BN-terminated part of its output).
        match pools[..] {
            [(j_max, max), (j_avg, avg)]
                if max.kind() == PoolKind::Max
                    && avg.kind() == PoolKind::Avg
                    && max.stride() == avg.stride() =>
            {
                normed.push(Normed::new(vec![j_max, j_avg], F::max_avg_pool(x, 3, max.stride(), 1)));
                bns.extend([max.final_bn(), avg.final_bn()]);
            }
            _ => {
                for (j, p) in pools {
                    normed.push(Normed::new(vec![j], p.forward_pre_bn(x)));
                    bns.push(p.final_bn());
                }
            }
        }
        let training = ctx.training;
        if !convs.is_empty() {
            let cands: Vec<ConvCand> = convs.iter().map(|p| p.cand()).collect();
            let inner: Vec<_> = convs.iter().filter_map(|p| p.inner_bn).collect();
            let mut states = ctx.bn_states_mut(&inner);
            let (z, tiles) = edge_convs(x, &cands, &mut states, training);
            normed.push(Normed { slots: conv_slots, z, tiles });
            bns.extend(conv_bns);
        }
        let mut states = ctx.bn_states_mut(&bns);
        let weighting = self.weighting;
        mixed_edge(MixedEdge { alpha, weighting, row, skip, normed, acc, scale }, &mut states, training)
    }
}
