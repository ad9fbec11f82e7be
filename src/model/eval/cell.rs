//! An evaluation cell (`model.py` `Cell`): two preprocessed inputs, two genotype ops per node
//! summed, and the channel concat of the genotype's `concat` states.

use super::layers::ReluConvBn;
use super::ops::{drop_path, EvalOp, Masks};
use crate::autograd::functions as F;
use crate::autograd::Var;
use crate::nn::FactorizedReduce;
use crate::nn::{Ctx, Store};
use crate::rng::Rng;
use crate::search::genotype::Genotype;

#[derive(Clone, Debug)]
enum Pre0 {
    Conv(ReluConvBn),
    Reduce(FactorizedReduce),
}

/// One cell (names `cells.<i>.preprocess0`, `.preprocess1`, `._ops.<g>`, g the gene index).
#[derive(Clone, Debug)]
pub struct EvalCell {
    /// A reduction cell (stride 2 on the ops that read a cell input, channels doubled).
    pub reduction: bool,
    pre0: Pre0,
    pre1: ReluConvBn,
    ops: Vec<EvalOp>,
    inputs: Vec<usize>,
    concat: Vec<usize>,
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
        let (genes, concat) = if reduction {
            (&genotype.reduce, &genotype.reduce_concat)
        } else {
            (&genotype.normal, &genotype.normal_concat)
        };
        let ops = genes
            .iter()
            .enumerate()
            .map(|(g, (name, input))| {
                let stride = if reduction && *input < 2 { 2 } else { 1 };
                EvalOp::new(s, &format!("{prefix}._ops.{g}"), name, c, stride, rng)
            })
            .collect();
        let inputs = genes.iter().map(|(_, j)| *j).collect();
        EvalCell { reduction, pre0, pre1, ops, inputs, concat: concat.clone() }
    }

    /// Output channels per node channel: the number of concatenated states.
    pub fn multiplier(&self) -> usize {
        self.concat.len()
    }

    /// How many drop-path masks a forward uses: one per op but the identity.
    pub fn droppable(&self) -> usize {
        self.ops.iter().filter(|op| !op.is_identity()).count()
    }

    /// Forward from the two previous states; with `masks` (training with drop path), the output
    /// of every op but the identity takes the next mask.
    pub fn forward(&self, ctx: &mut Ctx, s0: &Var, s1: &Var, mut masks: Option<&mut Masks>) -> Var {
        let s0 = match &self.pre0 {
            Pre0::Conv(c) => c.forward(ctx, s0),
            Pre0::Reduce(r) => r.forward(ctx, s0),
        };
        let s1 = self.pre1.forward(ctx, s1);
        let mut states = vec![s0, s1];
        for node in 0..self.ops.len() / 2 {
            let [a, b] = [2 * node, 2 * node + 1].map(|g| {
                let op = &self.ops[g];
                let h = op.forward(ctx, &states[self.inputs[g]]);
                match masks.as_deref_mut() {
                    Some(m) if !op.is_identity() => drop_path(&h, m),
                    _ => h,
                }
            });
            states.push(F::add(&a, &b));
        }
        let out: Vec<Var> = self.concat.iter().map(|&i| states[i].clone()).collect();
        F::concat_channels(&out)
    }
}
