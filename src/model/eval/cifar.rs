//! `NetworkCIFAR`: stem conv 3×3 (3 → 3C) + BN, the cells, global average pooling, linear.

use super::{active, Cells, DropPath, EvalConfig, EvalOutput};
use crate::autograd::functions as F;
use crate::autograd::Var;
use crate::model::eval::head::HeadKind;
use crate::model::eval::layers::AffineBn;
use crate::nn::{Ctx, Store, P};
use crate::ops::ConvParams;
use crate::rng::Rng;
use crate::search::genotype::Genotype;
use crate::search::genotypes::GenotypeError;
use crate::tensor::DType;

/// The CIFAR evaluation network (names `stem.0.weight`, `stem.1.*`, `cells.*`,
/// `auxiliary_head.*`, `classifier.*`).
#[derive(Clone, Debug)]
pub struct NetworkCifar {
    /// Its configuration.
    pub config: EvalConfig,
    stem_w: P,
    stem_bn: AffineBn,
    cells: Cells,
}

impl NetworkCifar {
    /// A freshly initialised network of `genotype` and its store (all draws from `rng`), or the
    /// genotype's problem.
    pub fn new(
        config: EvalConfig,
        genotype: &Genotype,
        dtype: DType,
        rng: &mut Rng,
    ) -> Result<(NetworkCifar, Store), GenotypeError> {
        genotype.validate_trainable()?;
        let mut s = Store::new(dtype);
        let c_stem = 3 * config.channels;
        let stem_w = s.conv("stem.0.weight".into(), [c_stem, 3, 3, 3], rng);
        let stem_bn = AffineBn::new(&mut s, "stem.1", c_stem);
        let cells = Cells::new(&mut s, genotype, config, c_stem, false, HeadKind::Cifar, rng);
        Ok((NetworkCifar { config, stem_w, stem_bn, cells }, s))
    }

    /// Logits of images `x` `[n, 3, 32, 32]` (and auxiliary logits in training with a head);
    /// `drop` applies in training only.
    pub fn forward(&self, ctx: &mut Ctx, x: &Var, drop: Option<DropPath>) -> EvalOutput {
        let drop = active(ctx, drop);
        let stem = F::conv2d(x, ctx.p(self.stem_w), ConvParams::new(1, 1));
        let stem = self.stem_bn.forward(ctx, &stem);
        let (last, aux) = self.cells.forward(ctx, stem.clone(), stem, drop);
        let logits = self.cells.classify(ctx, &F::global_avg_pool(&last));
        EvalOutput { logits, aux }
    }
}
