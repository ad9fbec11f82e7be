//! `NetworkImageNet` (mobile setting): two stems that take 224×224 images to 28×28, the cells
//! (the first with a reduction before it), 7×7 average pooling, linear.
//!
//! ```text
//! stem0: conv 3×3 s2 (3 → C/2) → BN → ReLU → conv 3×3 s2 (C/2 → C) → BN      (s0, 56×56)
//! stem1: ReLU → conv 3×3 s2 (C → C) → BN                                        (s1, 28×28)
//! ```
//!
//! The reference's stem1 ReLU is in place, so the first cell's `s0` is ReLU(stem0); that cell
//! reads `s0` through a FactorizedReduce, which starts with a ReLU, so the result is the same.

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

/// The ImageNet evaluation network (names `stem0.{0,1,3,4}.*`, `stem1.{1,2}.*`, `cells.*`,
/// `auxiliary_head.*`, `classifier.*`).
#[derive(Clone, Debug)]
pub struct NetworkImageNet {
    /// Its configuration.
    pub config: EvalConfig,
    stem0_w1: P,
    stem0_bn1: AffineBn,
    stem0_w2: P,
    stem0_bn2: AffineBn,
    stem1_w: P,
    stem1_bn: AffineBn,
    cells: Cells,
}

impl NetworkImageNet {
    /// A freshly initialised network of `genotype` and its store (all draws from `rng`), or the
    /// genotype's problem. `config.channels` must be even (the first stem conv has C/2).
    pub fn new(
        config: EvalConfig,
        genotype: &Genotype,
        dtype: DType,
        rng: &mut Rng,
    ) -> Result<(NetworkImageNet, Store), GenotypeError> {
        genotype.validate_trainable()?;
        let c = config.channels;
        assert!(c % 2 == 0, "NetworkImageNet: channels {c} must be even (stem0 has C/2)");
        let mut s = Store::new(dtype);
        let stem0_w1 = s.conv("stem0.0.weight".into(), [c / 2, 3, 3, 3], rng);
        let stem0_bn1 = AffineBn::new(&mut s, "stem0.1", c / 2);
        let stem0_w2 = s.conv("stem0.3.weight".into(), [c, c / 2, 3, 3], rng);
        let stem0_bn2 = AffineBn::new(&mut s, "stem0.4", c);
        let stem1_w = s.conv("stem1.1.weight".into(), [c, c, 3, 3], rng);
        let stem1_bn = AffineBn::new(&mut s, "stem1.2", c);
        let cells = Cells::new(&mut s, genotype, config, c, true, HeadKind::ImageNet, rng);
        let net =
            NetworkImageNet { config, stem0_w1, stem0_bn1, stem0_w2, stem0_bn2, stem1_w, stem1_bn, cells };
        Ok((net, s))
    }

    /// Logits of images `x` `[n, 3, 224, 224]` (and auxiliary logits in training with a head);
    /// `drop` applies in training only.
    pub fn forward(&self, ctx: &mut Ctx, x: &Var, drop: Option<DropPath>) -> EvalOutput {
        let drop = active(ctx, drop);
        let s2 = ConvParams::new(2, 1);
        let y = F::conv2d(x, ctx.p(self.stem0_w1), s2);
        let y = F::relu(&self.stem0_bn1.forward(ctx, &y));
        let y = F::conv2d(&y, ctx.p(self.stem0_w2), s2);
        let s0 = self.stem0_bn2.forward(ctx, &y);
        let y = F::conv2d(&F::relu(&s0), ctx.p(self.stem1_w), s2);
        let s1 = self.stem1_bn.forward(ctx, &y);
        let (last, aux) = self.cells.forward(ctx, s0, s1, drop);
        let [h, w] = [last.shape()[2], last.shape()[3]];
        assert!(
            h == 7 && w == 7,
            "NetworkImageNet: the last cell gives {:?} for x {:?}; AvgPool2d(7) before the classifier needs \
             7×7 (224×224 images)",
            last.shape(),
            x.shape()
        );
        // AvgPool2d(7) of a 7×7 map is the global average.
        let logits = self.cells.classify(ctx, &F::global_avg_pool(&last));
        EvalOutput { logits, aux }
    }
}
