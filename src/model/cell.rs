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

    /// The two preprocessed states, from the previous cells' outputs as channel parts (their
    /// nodes, or the stem), concatenated only transiently. Each state comes whole (`[s]`), or
    /// with `split` as its first `split` channels and the rest (`[head, tail]`, PC-DARTS': no
    /// copy of the head is made beside the state).
    pub fn forward(&self, ctx: &mut Ctx, s0: &[Var], s1: &[Var], split: Option<usize>) -> [Vec<Var>; 2] {
        let (s0, s1): (Vec<&Var>, Vec<&Var>) = (s0.iter().collect(), s1.iter().collect());
        let s0 = match &self.pre0 {
            Pre0::Conv(c) => c.forward_parts(ctx, &s0, split),
            Pre0::Reduce(r) => r.forward_parts(ctx, &s0, split),
        };
        [s0, self.pre1.forward_parts(ctx, &s1, split)]
    }
}

/// One cell (names `cells.<i>.preprocess0`, `.preprocess1`, `._ops.<e>`).
#[derive(Clone, Debug)]
pub struct Cell {
    /// A reduction cell (stride 2 on the edges from its inputs, channels doubled).
    pub reduction: bool,
    /// Channels per node.
    c: usize,
    /// PC-DARTS' channel proportion k: the edges' candidates work on c/k channels
    /// (see [`super::pc`]); `None` for DARTS and FairDARTS.
    pc_k: Option<usize>,
    pre: Preprocess,
    edges: Vec<MixedOp>,
}

impl Cell {
    /// Cell `index` with input channels `c_pp` (two cells back), `c_p` (previous cell) and
    /// `c` channels per node; `method` picks the edges (DARTS', FairDARTS' without `none`, or
    /// PC-DARTS' on c/k channels).
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
        let pc_k = match method {
            Method::PcDarts { k } => {
                assert!(k >= 1 && c % k == 0, "Cell: k = {k} must divide the {c} channels of cell {index}");
                Some(k)
            }
            Method::Darts | Method::FairDarts => None,
        };
        let prefix = format!("cells.{index}");
        let pre = Preprocess::new(s, &prefix, c_pp, c_p, c, reduction_prev, rng);
        let mut edges = Vec::with_capacity(EDGES);
        for i in 0..STEPS {
            for j in 0..2 + i {
                let stride = if reduction && j < 2 { 2 } else { 1 };
                let name = format!("{prefix}._ops.{}", edges.len());
                edges.push(match method {
                    Method::FairDarts => super::fair::edge(s, &name, c, stride, rng),
                    _ => MixedOp::new(s, &name, c / pc_k.unwrap_or(1), stride, rng),
                });
            }
        }
        Cell { reduction, c, pc_k, pre, edges }
    }

    /// Forward from the two previous states, each given as its channel parts (the stem, or a
    /// cell's four nodes); returns this cell's four nodes, whose channel concat is its output
    /// (its consumers concatenate them only transiently).
    ///
    /// `weights` = softmax(α) `[14, 8]` (FairDARTS: σ(α) `[14, 7]`) of this cell type
    /// (unfused), or α itself (`fused`: each edge is one fused node that takes the logits);
    /// `w2` PC-DARTS' node-normalised β `[14]` ([`F::node_softmax`]). With `masks`, every
    /// edge's output goes through drop path (the next 14 masks, in edge order) before its
    /// node's sum.
    #[allow(clippy::too_many_arguments)]
    pub fn forward(
        &self,
        ctx: &mut Ctx,
        s0: &[Var],
        s1: &[Var],
        weights: &Var,
        w2: Option<&Var>,
        fused: bool,
        mut masks: Option<&mut Masks>,
    ) -> Vec<Var> {
        // PC-DARTS: every state travels as its first c/k channels (what the edges' mixed ops
        // read) and the rest (what their merges bypass), so no edge copies a slice of it.
        let split = self.pc_k.map(|k| self.c / k).filter(|&at| at < self.c);
        let mut states: Vec<Vec<Var>> = self.pre.forward(ctx, s0, s1, split).to_vec();
        let mut offset = 0;
        for _ in 0..STEPS {
            let mut acc: Option<Var> = None;
            for (j, state) in states.iter().enumerate() {
                let stride = if self.reduction && j < 2 { 2 } else { 1 };
                let edge = Edge { e: offset + j, stride, weights, w2, fused };
                acc = Some(match masks.as_deref_mut() {
                    // Drop path acts on the edge alone, which is then added.
                    Some(m) => {
                        let out = drop_path(&self.edge(ctx, &edge, state, None), m);
                        match acc {
                            Some(a) => F::add(&a, &out),
                            None => out,
                        }
                    }
                    None => self.edge(ctx, &edge, state, acc.as_ref()),
                });
            }
            offset += states.len();
            let node = acc.expect("a node has at least two edges");
            states.push(match split {
                Some(at) => F::split_channels(&node, at).to_vec(),
                None => vec![node],
            });
        }
        states.split_off(2).into_iter().flatten().collect()
    }
}

/// Which edge of a cell runs, and with what ([`Cell::forward`]'s arguments).
struct Edge<'a> {
    e: usize,
    stride: usize,
    weights: &'a Var,
    w2: Option<&'a Var>,
    fused: bool,
}

impl Cell {
    /// `acc` plus edge `d.e`'s output from input state `x` (its channel parts, see
    /// [`Preprocess::forward`]): the mixed op (one fused node that adds into `acc`, or the
    /// unfused composition), or PC-DARTS' mixed op on the first c/k channels of x (`x[0]`)
    /// merged with the bypassed rest (`x[1]`, none when k = 1) ([`F::pc_merge`]).
    fn edge(&self, ctx: &mut Ctx, d: &Edge, x: &[Var], acc: Option<&Var>) -> Var {
        let op = &self.edges[d.e];
        let mixed = |ctx: &mut Ctx, x: &Var, acc: Option<&Var>, scale: Option<(&Var, usize)>| {
            if d.fused {
                op.forward_fused(ctx, x, d.weights, d.e, acc, scale)
            } else {
                let y = op.forward(ctx, x, &F::row(d.weights, d.e));
                match acc {
                    Some(a) => F::add(a, &y),
                    None => y,
                }
            }
        };
        match self.pc_k {
            None => {
                let [x] = x else { panic!("Cell::edge: a DARTS state comes whole, got {} parts", x.len()) };
                mixed(ctx, x, acc, None)
            }
            Some(k) => {
                let (head, tail) = match x {
                    [head] => (head, None),
                    [head, tail] => (head, Some(tail)),
                    _ => panic!("Cell::edge: a PC-DARTS state is its head and tail, got {} parts", x.len()),
                };
                assert_eq!(
                    head.shape()[1],
                    self.c / k,
                    "Cell::edge: the head {} of a state of {} channels with k {k}",
                    crate::tensor::fmt_shape(head.shape()),
                    self.c
                );
                let w2 = d.w2.expect("PC-DARTS edges are weighted by the node-normalised β");
                // The fused edge gives ∂L/∂β̂ through m itself, so the merge does not keep m.
                let m = mixed(ctx, head, None, Some((w2, d.e)));
                F::pc_merge(&m, tail, acc, w2, d.e, k, d.stride, d.fused)
            }
        }
    }
}
