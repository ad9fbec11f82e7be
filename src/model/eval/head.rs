//! The auxiliary heads (`AuxiliaryHeadCIFAR`, `AuxiliaryHeadImageNet` of `model.py`), attached
//! after the cell at 2/3 of the depth and used in training only:
//!
//! ```text
//! ReLU → avg pool 5×5 (stride 3 CIFAR, 2 ImageNet; no padding) → conv 1×1 to 128 → BN → ReLU
//!      → conv 2×2 to 768 → BN (CIFAR only) → ReLU → linear
//! ```
//!
//! The ImageNet head has no second BN: the reference left it out "for consistency with the
//! experiments in the paper". Names: `auxiliary_head.features.{2,3,5,6}.*`,
//! `auxiliary_head.classifier.*`.

use super::layers::{linear, AffineBn};
use crate::autograd::functions as F;
use crate::autograd::Var;
use crate::nn::{Ctx, Store, P};
use crate::ops::ConvParams;
use crate::rng::Rng;

/// Which dataset's head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeadKind {
    /// 8×8 input (32×32 images): pool stride 3, both BNs.
    Cifar,
    /// 7×7 input (224×224 images): pool stride 2, no BN after the 2×2 conv.
    ImageNet,
}

const PREFIX: &str = "auxiliary_head";

/// An auxiliary classifier head.
#[derive(Clone, Debug)]
pub struct AuxHead {
    kind: HeadKind,
    conv1: P,
    bn1: AffineBn,
    conv2: P,
    bn2: Option<AffineBn>,
    classifier: (P, P),
}

impl AuxHead {
    /// A head on `c` input channels for `classes` classes.
    pub fn new(s: &mut Store, kind: HeadKind, c: usize, classes: usize, rng: &mut Rng) -> AuxHead {
        let conv1 = s.conv(format!("{PREFIX}.features.2.weight"), [128, c, 1, 1], rng);
        let bn1 = AffineBn::new(s, &format!("{PREFIX}.features.3"), 128);
        let conv2 = s.conv(format!("{PREFIX}.features.5.weight"), [768, 128, 2, 2], rng);
        let bn2 = (kind == HeadKind::Cifar).then(|| AffineBn::new(s, &format!("{PREFIX}.features.6"), 768));
        let classifier = linear(s, &format!("{PREFIX}.classifier"), 768, classes, rng);
        AuxHead { kind, conv1, bn1, conv2, bn2, classifier }
    }

    /// Logits `[n, classes]` from the cell output `x`.
    pub fn forward(&self, ctx: &mut Ctx, x: &Var) -> Var {
        let stride = match self.kind {
            HeadKind::Cifar => 3,
            HeadKind::ImageNet => 2,
        };
        let y = F::avg_pool(&F::relu(x), 5, stride, 0);
        let y = F::conv2d(&y, ctx.p(self.conv1), ConvParams::new(1, 0));
        let y = F::relu(&self.bn1.forward(ctx, &y));
        let y = F::conv2d(&y, ctx.p(self.conv2), ConvParams::new(1, 0));
        let y = match &self.bn2 {
            Some(bn) => bn.forward(ctx, &y),
            None => y,
        };
        let y = F::relu(&y);
        let [h, w] = [y.shape()[2], y.shape()[3]];
        assert!(
            h == 1 && w == 1,
            "AuxHead ({:?}): features of x {:?} are {:?}, the classifier takes 768 features of a 1×1 map \
             (an 8×8 cell output for CIFAR, 7×7 for ImageNet)",
            self.kind,
            x.shape(),
            y.shape()
        );
        // The mean of a 1×1 map is the value itself: the reference's flatten.
        let flat = F::global_avg_pool(&y);
        F::linear(&flat, ctx.p(self.classifier.0), ctx.p(self.classifier.1))
    }
}
