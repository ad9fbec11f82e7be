//! PC-DARTS' architecture parameters (`model_search.py` of PC-DARTS). Its cells are [`Cell`]s
//! with a channel proportion k: each edge runs its eight candidates on the first c/k channels
//! of its input, the other channels bypass them (a 2x2 max pool on stride-2 edges), a channel
//! shuffle of k groups mixes the two, and a node sums its edges weighted by softmax(β) over its incoming edges:
//!
//! ```text
//! node_i = Σ_j w2[e] · shuffle_k(cat(MixedOp_e(h_j[:, :c/k]), bypass(h_j[:, c/k:])))
//! w2     = softmax(β[0..2]) ‖ softmax(β[2..5]) ‖ softmax(β[5..9]) ‖ softmax(β[9..14])
//! ```
//!
//! Every state of a cell travels as two tensors, its first c/k channels (the head) and the
//! rest (the tail): the preprocessing's BN writes them ([`F::batch_norm_split`]) and each node
//! is split into them once ([`F::split_channels`]: a copy, after which the whole node is
//! freed), so no state is kept twice and no edge slices one. Each edge is the mixed op on the
//! head (fused or not) and one [`F::pc_merge`] node that adds it, with the bypassed tail, into
//! the node's running sum ([`Cell`] with a channel proportion). Checkpoint names follow the
//! reference:
//! `cells.<i>._ops.<e>._ops.<k>...` for candidates on c/k channels (the bypass pool `mp` has no
//! parameters), and `betas_normal`, `betas_reduce` `[14]` after the alphas.

#[cfg(doc)]
use super::cell::Cell;
use super::cell::{EDGES, STEPS};
use crate::autograd::functions as F;
use crate::autograd::{Groups, Var};
use crate::nn::{Ctx, Store, P};
use crate::rng::Rng;
use crate::tensor::{DType, Tensor};

/// PC-DARTS' part of a search network: the edge logits β (its cells are [`Cell`]s with a
/// channel proportion).
#[derive(Clone, Debug)]
pub struct PcParts {
    /// β of normal cells `[14]`.
    pub betas_normal: P,
    /// β of reduction cells `[14]`.
    pub betas_reduce: P,
}

impl PcParts {
    /// Adds `betas_normal` and `betas_reduce` (1e-3 · N(0, 1), in that order, after the alphas
    /// as the reference draws them) to the store's architecture group.
    pub fn new(s: &mut Store, dtype: DType, rng: &mut Rng) -> PcParts {
        let mut beta = |s: &mut Store, name: &str| {
            let v: Vec<f64> = rng.normals(EDGES).iter().map(|x| 1e-3 * x).collect();
            s.add(name.into(), Tensor::from_f64(&[EDGES], &v, dtype), Groups::ARCH)
        };
        let betas_normal = beta(s, "betas_normal");
        let betas_reduce = beta(s, "betas_reduce");
        PcParts { betas_normal, betas_reduce }
    }

    /// w2 (normal, reduce): each cell type's β softmaxed over each node's incoming edges,
    /// shared by every cell of the type (the reference recomputes them per cell; the values are
    /// identical).
    pub fn node_weights(&self, ctx: &Ctx) -> (Var, Var) {
        (F::node_softmax(ctx.p(self.betas_normal), STEPS), F::node_softmax(ctx.p(self.betas_reduce), STEPS))
    }
}
