//! PC-DARTS' search cell and architecture parameters (`model_search.py` of PC-DARTS): each edge
//! runs its eight candidates on the first c/k channels of its input, the other channels bypass
//! them (a 2x2 max pool on stride-2 edges), a channel shuffle of k groups mixes the two, and a
//! node sums its edges weighted by softmax(β) over its incoming edges:
//!
//! ```text
//! node_i = Σ_j w2[e] · shuffle_k(cat(MixedOp_e(h_j[:, :c/k]), bypass(h_j[:, c/k:])))
//! w2     = softmax(β[0..2]) ‖ softmax(β[2..5]) ‖ softmax(β[5..9]) ‖ softmax(β[9..14])
//! ```
//!
//! Each edge is the mixed op on [`F::channel_slice`] (fused or not) and one [`F::pc_merge`]
//! node that adds it into the node's running sum. Checkpoint names follow the reference:
//! `cells.<i>._ops.<e>._ops.<k>...` for candidates on c/k channels (the bypass pool `mp` has no
//! parameters), and `betas_normal`, `betas_reduce` `[14]` after the alphas.

use super::cell::{Preprocess, EDGES, STEPS};
use super::eval::ops::{drop_path, Masks};
use super::mixed::MixedOp;
use crate::autograd::functions as F;
use crate::autograd::{Groups, Var};
use crate::nn::{Ctx, Store, P};
use crate::rng::Rng;
use crate::tensor::{DType, Tensor};

/// One PC-DARTS cell (names `cells.<i>.preprocess0`, `.preprocess1`, `._ops.<e>`).
#[derive(Clone, Debug)]
pub struct PcCell {
    /// A reduction cell.
    pub reduction: bool,
    /// Channels per node.
    c: usize,
    /// Channel proportion.
    k: usize,
    pre: Preprocess,
    edges: Vec<MixedOp>,
}

impl PcCell {
    /// Cell `index` with input channels `c_pp`, `c_p`, `c` channels per node and proportion `k`
    /// (the edges' candidates work on c/k channels).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        s: &mut Store,
        index: usize,
        c_pp: usize,
        c_p: usize,
        c: usize,
        k: usize,
        reduction: bool,
        reduction_prev: bool,
        rng: &mut Rng,
    ) -> PcCell {
        assert!(k >= 1 && c % k == 0, "PcCell: k = {k} must divide the {c} channels of cell {index}");
        let prefix = format!("cells.{index}");
        let pre = Preprocess::new(s, &prefix, c_pp, c_p, c, reduction_prev, rng);
        let mut edges = Vec::with_capacity(EDGES);
        for i in 0..STEPS {
            for j in 0..2 + i {
                let stride = if reduction && j < 2 { 2 } else { 1 };
                edges.push(MixedOp::new(s, &format!("{prefix}._ops.{}", edges.len()), c / k, stride, rng));
            }
        }
        PcCell { reduction, c, k, pre, edges }
    }

    /// Forward from the two previous states. `weights`: softmax(α) `[14, 8]` (unfused) or α
    /// itself (`fused`); `w2`: the node-normalised β `[14]` ([`F::node_softmax`]). With
    /// `masks`, every edge's output (after its β weight) goes through drop path before its
    /// node's sum, as in [`super::cell::Cell::forward`].
    #[allow(clippy::too_many_arguments)]
    pub fn forward(
        &self,
        ctx: &mut Ctx,
        s0: &Var,
        s1: &Var,
        weights: &Var,
        w2: &Var,
        fused: bool,
        mut masks: Option<&mut Masks>,
    ) -> Var {
        let mut states = self.pre.forward(ctx, s0, s1).to_vec();
        let mut offset = 0;
        for _ in 0..STEPS {
            let mut acc: Option<Var> = None;
            for (j, state) in states.iter().enumerate() {
                let e = offset + j;
                let stride = if self.reduction && j < 2 { 2 } else { 1 };
                let part = F::channel_slice(state, 0, self.c / self.k);
                let m = if fused {
                    self.edges[e].forward_fused(ctx, &part, weights, e, None)
                } else {
                    self.edges[e].forward(ctx, &part, &F::row(weights, e))
                };
                acc = Some(match masks.as_deref_mut() {
                    Some(mask) => {
                        let out = drop_path(&F::pc_merge(&m, state, None, w2, e, self.k, stride), mask);
                        match acc {
                            Some(a) => F::add(&a, &out),
                            None => out,
                        }
                    }
                    None => F::pc_merge(&m, state, acc.as_ref(), w2, e, self.k, stride),
                });
            }
            offset += states.len();
            states.push(acc.expect("a node has at least two edges"));
        }
        F::concat_channels(&states[2..])
    }
}

/// PC-DARTS' part of a search network: its cells and the edge logits β.
#[derive(Clone, Debug)]
pub struct PcParts {
    /// The cells, in order.
    pub cells: Vec<PcCell>,
    /// β of normal cells `[14]`.
    pub betas_normal: P,
    /// β of reduction cells `[14]`.
    pub betas_reduce: P,
}

impl PcParts {
    /// Adds `betas_normal` and `betas_reduce` (1e-3 · N(0, 1), in that order, after the alphas
    /// as the reference draws them) to the store's architecture group.
    pub fn new(s: &mut Store, cells: Vec<PcCell>, dtype: DType, rng: &mut Rng) -> PcParts {
        let mut beta = |s: &mut Store, name: &str| {
            let v: Vec<f64> = rng.normals(EDGES).iter().map(|x| 1e-3 * x).collect();
            s.add(name.into(), Tensor::from_f64(&[EDGES], &v, dtype), Groups::ARCH)
        };
        let betas_normal = beta(s, "betas_normal");
        let betas_reduce = beta(s, "betas_reduce");
        PcParts { cells, betas_normal, betas_reduce }
    }

    /// The cells from the stem's output; `alphas` (normal, reduce) as [`PcCell::forward`]
    /// takes them, `masks` drop path's for every edge of every cell. Returns the last cell's
    /// output.
    pub fn forward(
        &self,
        ctx: &mut Ctx,
        stem: Var,
        alphas: (&Var, &Var),
        fused: bool,
        mut masks: Option<&mut Masks>,
    ) -> Var {
        // The node softmaxes are shared by every cell of a type (the reference recomputes them
        // per cell; the values are identical).
        let w2_normal = F::node_softmax(ctx.p(self.betas_normal), STEPS);
        let w2_reduce = F::node_softmax(ctx.p(self.betas_reduce), STEPS);
        let (mut s0, mut s1) = (stem.clone(), stem);
        for cell in &self.cells {
            let (w, w2) = if cell.reduction { (alphas.1, &w2_reduce) } else { (alphas.0, &w2_normal) };
            let out = cell.forward(ctx, &s0, &s1, w, w2, fused, masks.as_deref_mut());
            (s0, s1) = (s1, out);
        }
        s1
    }
}
