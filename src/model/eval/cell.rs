//! An evaluation cell (`model.py` `Cell`): two preprocessed inputs, two genotype ops per node
//! summed, and the channel concat of the genotype's `concat` states. A sparse (FairDARTS)
//! genotype builds FairDARTS' `DCOCell` instead: a node sums the ops of its inputs that exist,
//! drop path acts on each node's sum, and the output concatenates every node that has an input.

use super::layers::ReluConvBn;
use super::ops::{drop_path, EvalOp, Masks};
use crate::autograd::functions as F;
use crate::autograd::Var;
use crate::nn::FactorizedReduce;
use crate::nn::{Ctx, Store};
use crate::rng::Rng;
use crate::search::genotype::Genotype;
use crate::search::genotypes::dco_nodes;

#[derive(Clone, Debug)]
enum Pre0 {
    Conv(ReluConvBn),
    Reduce(FactorizedReduce),
}

/// One cell (names `cells.<i>.preprocess0`, `.preprocess1`, `._ops.<g>`, g the gene index;
/// a DCOCell's `._ops.<node>.<input>.<k>`, k counting the ops of one node and input).
#[derive(Clone, Debug)]
pub struct EvalCell {
    /// A reduction cell (stride 2 on the ops that read a cell input, channels doubled).
    pub reduction: bool,
    pre0: Pre0,
    pre1: ReluConvBn,
    ops: Vec<EvalOp>,
    inputs: Vec<usize>,
    /// The state each op adds into (2 + gene / 2 in a two-input cell).
    nodes: Vec<usize>,
    concat: Vec<usize>,
    /// FairDARTS' DCOCell (a sparse genotype).
    dco: bool,
}

/// Shape of one cell: input channels two cells back (`c_pp`) and one back (`c_p`), channels
/// per node (`c`), and whether it and its predecessor reduce.
#[derive(Clone, Copy, Debug)]
pub struct CellShape {
    /// Channels of the cell two back (or the stem).
    pub c_pp: usize,
    /// Channels of the previous cell (or the stem).
    pub c_p: usize,
    /// Channels per node.
    pub c: usize,
    /// This cell reduces.
    pub reduction: bool,
    /// The previous cell reduced (its `s0` input is at twice the resolution).
    pub reduction_prev: bool,
}

impl EvalCell {
    /// Cell `index` of `genotype` (validated) with the given shape.
    pub fn new(
        s: &mut Store,
        index: usize,
        genotype: &Genotype,
        shape: CellShape,
        rng: &mut Rng,
    ) -> EvalCell {
        let CellShape { c_pp, c_p, c, reduction, reduction_prev } = shape;
        let prefix = format!("cells.{index}");
        let pre0 = if reduction_prev {
            Pre0::Reduce(FactorizedReduce::affine(s, &format!("{prefix}.preprocess0"), c_pp, c, rng))
        } else {
            Pre0::Conv(ReluConvBn::new(s, &format!("{prefix}.preprocess0"), c_pp, c, rng))
        };
        let pre1 = ReluConvBn::new(s, &format!("{prefix}.preprocess1"), c_p, c, rng);
        let (genes, concat, nodes) = if reduction {
            (&genotype.reduce, &genotype.reduce_concat, &genotype.reduce_nodes)
        } else {
            (&genotype.normal, &genotype.normal_concat, &genotype.normal_nodes)
        };
        let dco = genotype.sparse;
        let nodes: Vec<usize> = match dco {
            true => nodes.clone(),
            false => (0..genes.len()).map(|g| 2 + g / 2).collect(),
        };
        let ops = genes
            .iter()
            .zip(&nodes)
            .enumerate()
            .map(|(g, ((name, input), node))| {
                let stride = if reduction && *input < 2 { 2 } else { 1 };
                let name_of = match dco {
                    false => format!("{prefix}._ops.{g}"),
                    true => {
                        let k = genes[..g]
                            .iter()
                            .zip(&nodes)
                            .filter(|((_, j), d)| j == input && *d == node)
                            .count();
                        format!("{prefix}._ops.{node}.{input}.{k}")
                    }
                };
                EvalOp::new(s, &name_of, name, c, stride, rng)
            })
            .collect();
        let inputs = genes.iter().map(|(_, j)| *j).collect();
        let concat = match dco {
            true => dco_nodes(&nodes),
            false => concat.clone(),
        };
        EvalCell { reduction, pre0, pre1, ops, inputs, nodes, concat, dco }
    }

    /// Output channels per node channel: the number of concatenated states.
    pub fn multiplier(&self) -> usize {
        self.concat.len()
    }

    /// How many drop-path masks a forward uses: one per op but the identity (a DCOCell: one per
    /// node).
    pub fn droppable(&self) -> usize {
        match self.dco {
            true => self.concat.len(),
            false => self.ops.iter().filter(|op| !op.is_identity()).count(),
        }
    }

    /// Forward from the two previous states; with `masks` (training with drop path), the output
    /// of every op but the identity takes the next mask (a DCOCell: every node's sum).
    pub fn forward(&self, ctx: &mut Ctx, s0: &Var, s1: &Var, mut masks: Option<&mut Masks>) -> Var {
        let s0 = match &self.pre0 {
            Pre0::Conv(c) => c.forward(ctx, s0),
            Pre0::Reduce(r) => r.forward(ctx, s0),
        };
        let s1 = self.pre1.forward(ctx, s1);
        let mut states: Vec<Option<Var>> = vec![Some(s0), Some(s1)];
        let last = self.nodes.iter().copied().max().unwrap_or(1);
        states.resize(last + 1, None);
        for node in 2..=last {
            let mut sum: Option<Var> = None;
            for g in (0..self.ops.len()).filter(|&g| self.nodes[g] == node) {
                // A DCOCell skips the inputs that do not exist (isolated nodes).
                let Some(x) = &states[self.inputs[g]] else { continue };
                let op = &self.ops[g];
                let h = op.forward(ctx, x);
                let h = match masks.as_deref_mut() {
                    Some(m) if !self.dco && !op.is_identity() => drop_path(&h, m),
                    _ => h,
                };
                sum = Some(match sum {
                    Some(a) => F::add(&a, &h),
                    None => h,
                });
            }
            states[node] = match (sum, masks.as_deref_mut()) {
                (Some(s), Some(m)) if self.dco => Some(drop_path(&s, m)),
                (s, _) => s,
            };
        }
        let out: Vec<Var> = self
            .concat
            .iter()
            .map(|&i| {
                states[i].clone().unwrap_or_else(|| {
                    panic!("EvalCell: state {i} of the concat has no input (the genotype was not validated)")
                })
            })
            .collect();
        F::concat_channels(&out)
    }
}
