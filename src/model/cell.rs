//! A search cell: two preprocessed inputs, four intermediate nodes fed by 14 mixed edges, and
//! the channel concat of the four nodes as output.

use super::eval::ops::{drop_path, Masks};
use super::method::Method;
use super::mixed::MixedOp;
use crate::autograd::functions as F;
use crate::autograd::Var;
use crate::nn::{Ctx, FactorizedReduce, ReluConvBn, Store};
use crate::rng::Rng;

/// Intermediate nodes per cell.
pub const STEPS: usize = 4;
/// Edges per cell: 2 + 3 + 4 + 5.
pub const EDGES: usize = 14;

/// A cell's preprocessing of its two inputs (`preprocess0`, `preprocess1`) to `c` channels:
/// ReLU-conv1x1-BN, or FactorizedReduce on the input from before a reduction cell.
#[derive(Clone, Debug)]
pub struct Preprocess {
    pre0: Pre0,
    pre1: ReluConvBn,
}

#[derive(Clone, Debug)]
enum Pre0 {
    Conv(ReluConvBn),
    Reduce(FactorizedReduce),
}

impl Preprocess {
    /// Cell `prefix`'s preprocessing from `c_pp` (two cells back) and `c_p` (previous cell)
    /// channels to `c`.
    pub fn new(
        s: &mut Store,
        prefix: &str,
        c_pp: usize,
        c_p: usize,
        c: usize,
        reduction_prev: bool,
        rng: &mut Rng,
    ) -> Preprocess {
        let pre0 = if reduction_prev {
            Pre0::Reduce(FactorizedReduce::new(s, &format!("{prefix}.preprocess0"), c_pp, c, rng))
        } else {
            Pre0::Conv(ReluConvBn::new(s, &format!("{prefix}.preprocess0"), c_pp, c, 1, 1, 0, rng))
        };
        let pre1 = ReluConvBn::new(s, &format!("{prefix}.preprocess1"), c_p, c, 1, 1, 0, rng);
        Preprocess { pre0, pre1 }
    }

    /// The two preprocessed states.
    pub fn forward(&self, ctx: &mut Ctx, s0: &Var, s1: &Var) -> [Var; 2] {
        let s0 = match &self.pre0 {
            Pre0::Conv(c) => c.forward(ctx, s0),
            Pre0::Reduce(r) => r.forward(ctx, s0),
        };
        [s0, self.pre1.forward(ctx, s1)]
    }
}

/// One cell (names `cells.<i>.preprocess0`, `.preprocess1`, `._ops.<e>`).
#[derive(Clone, Debug)]
pub struct Cell {
    /// A reduction cell (stride 2 on the edges from its inputs, channels doubled).
    pub reduction: bool,
    pre: Preprocess,
    edges: Vec<MixedOp>,
}

impl Cell {
    /// Cell `index` with input channels `c_pp` (two cells back), `c_p` (previous cell) and
    /// `c` channels per node; `method` picks the edges (DARTS', or FairDARTS' without `none`).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        s: &mut Store,
        index: usize,
        c_pp: usize,
        c_p: usize,
        c: usize,
        reduction: bool,
        reduction_prev: bool,
        method: Method,
        rng: &mut Rng,
    ) -> Cell {
        let prefix = format!("cells.{index}");
        let pre = Preprocess::new(s, &prefix, c_pp, c_p, c, reduction_prev, rng);
        let mut edges = Vec::with_capacity(EDGES);
        for i in 0..STEPS {
            for j in 0..2 + i {
                let stride = if reduction && j < 2 { 2 } else { 1 };
                let name = format!("{prefix}._ops.{}", edges.len());
                edges.push(match method {
                    Method::FairDarts => super::fair::edge(s, &name, c, stride, rng),
                    _ => MixedOp::new(s, &name, c, stride, rng),
                });
            }
        }
        Cell { reduction, pre, edges }
    }

    /// Forward from the two previous states, `weights` = softmax(α) `[14, 8]` (FairDARTS:
    /// σ(α) `[14, 7]`) of this cell type (unfused), or α itself (`fused`: each edge is one fused
    /// node that takes the logits). With `masks`, every edge's output goes through drop path
    /// (the next 14 masks, in edge order) before its node's sum.
    pub fn forward(
        &self,
        ctx: &mut Ctx,
        s0: &Var,
        s1: &Var,
        weights: &Var,
        fused: bool,
        mut masks: Option<&mut Masks>,
    ) -> Var {
        let mut states = self.pre.forward(ctx, s0, s1).to_vec();
        let mut offset = 0;
        for _ in 0..STEPS {
            if fused {
                let mut acc: Option<Var> = None;
                for (j, state) in states.iter().enumerate() {
                    let edge = &self.edges[offset + j];
                    acc = Some(match masks.as_deref_mut() {
                        // Drop path acts on the edge alone: the fused node then adds nothing.
                        Some(m) => {
                            let e = drop_path(&edge.forward_fused(ctx, state, weights, offset + j, None), m);
                            match acc {
                                Some(a) => F::add(&a, &e),
                                None => e,
                            }
                        }
                        None => edge.forward_fused(ctx, state, weights, offset + j, acc.as_ref()),
                    });
                }
                offset += states.len();
                states.push(acc.expect("a node has at least two edges"));
                continue;
            }
            let terms: Vec<Var> = (0..states.len())
                .map(|j| {
                    let w = F::row(weights, offset + j);
                    let e = self.edges[offset + j].forward(ctx, &states[j], &w);
                    match masks.as_deref_mut() {
                        Some(m) => drop_path(&e, m),
                        None => e,
                    }
                })
                .collect();
            offset += states.len();
            states.push(F::add_n(&terms));
        }
        F::concat_channels(&states[2..])
    }
}
