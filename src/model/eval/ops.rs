//! The ops of an evaluation cell (`OPS[name](C, stride, affine=True)` of the reference) and
//! drop path (`utils.drop_path`).

use super::layers::{DilConv, SepConv};
use crate::autograd::functions as F;
use crate::autograd::Var;
use crate::nn::FactorizedReduce;
use crate::nn::{Ctx, Store};
use crate::rng::Rng;
use crate::tensor::{DType, Device, Tensor};

/// One op on `c` channels. Pools have no BN here (the search network adds one inside its mixed
/// op only), and a stride-2 `skip_connect` is a FactorizedReduce.
#[derive(Clone, Debug)]
pub enum EvalOp {
    /// `none`: zeros of the output shape.
    Zero {
        /// Stride.
        stride: usize,
    },
    /// `max_pool_3x3`, padding 1.
    MaxPool {
        /// Stride.
        stride: usize,
    },
    /// `avg_pool_3x3`, padding 1, padding excluded from the divisor.
    AvgPool {
        /// Stride.
        stride: usize,
    },
    /// `skip_connect` at stride 1.
    Identity,
    /// `skip_connect` at stride 2.
    Reduce(FactorizedReduce),
    /// `sep_conv_3x3`, `sep_conv_5x5`.
    Sep(SepConv),
    /// `dil_conv_3x3`, `dil_conv_5x5`.
    Dil(DilConv),
}

impl EvalOp {
    /// The op `name` (one of [`crate::model::PRIMITIVES`]; genotypes are validated before a
    /// network is built, so another name is an internal bug and panics), parameters named
    /// `prefix.*`.
    pub fn new(s: &mut Store, prefix: &str, name: &str, c: usize, stride: usize, rng: &mut Rng) -> EvalOp {
        match name {
            "none" => EvalOp::Zero { stride },
            "max_pool_3x3" => EvalOp::MaxPool { stride },
            "avg_pool_3x3" => EvalOp::AvgPool { stride },
            "skip_connect" if stride == 1 => EvalOp::Identity,
            "skip_connect" => EvalOp::Reduce(FactorizedReduce::affine(s, prefix, c, c, rng)),
            "sep_conv_3x3" => EvalOp::Sep(SepConv::new(s, prefix, c, 3, stride, rng)),
            "sep_conv_5x5" => EvalOp::Sep(SepConv::new(s, prefix, c, 5, stride, rng)),
            "dil_conv_3x3" => EvalOp::Dil(DilConv::new(s, prefix, c, 3, stride, rng)),
            "dil_conv_5x5" => EvalOp::Dil(DilConv::new(s, prefix, c, 5, stride, rng)),
            _ => panic!("EvalOp::new: unknown op {name:?} at {prefix} (the genotype was not validated)"),
        }
    }

    /// Forward.
    pub fn forward(&self, ctx: &mut Ctx, x: &Var) -> Var {
        match self {
            EvalOp::Zero { stride } => F::zero(x, *stride),
            EvalOp::MaxPool { stride } => F::max_pool(x, 3, *stride, 1),
            EvalOp::AvgPool { stride } => F::avg_pool(x, 3, *stride, 1),
            EvalOp::Identity => x.clone(),
            EvalOp::Reduce(r) => r.forward(ctx, x),
            EvalOp::Sep(s) => s.forward(ctx, x),
            EvalOp::Dil(d) => d.forward(ctx, x),
        }
    }

    /// Whether it is the identity (the one op drop path skips).
    pub fn is_identity(&self) -> bool {
        matches!(self, EvalOp::Identity)
    }
}

/// Drop path for one training forward: the drop probability and the generator the per-sample
/// masks are drawn from (so a seed fixes them).
#[derive(Debug)]
pub struct DropPath<'a> {
    /// Probability of zeroing a sample's op output, in [0, 1).
    pub prob: f64,
    /// Where the masks come from.
    pub rng: &'a mut Rng,
}

/// The reference's schedule (`train.py`): `max_prob · epoch / epochs`, so 0 at epoch 0.
pub fn drop_path_prob(max_prob: f64, epoch: usize, epochs: usize) -> f64 {
    assert!(epochs > 0, "drop_path_prob: epochs must be positive");
    max_prob * epoch as f64 / epochs as f64
}

/// A forward's drop-path masks, drawn up front in the order the ops use them and held in one
/// tensor on the network's device: one upload per forward on a GPU rather than one per op.
#[derive(Debug)]
pub struct Masks {
    factors: Tensor,
    n: usize,
    next: usize,
}

impl Masks {
    /// `count` masks of `n` samples: per mask, per sample in order, one uniform draw; the sample
    /// is kept with probability keep = 1 − prob and then scaled by 1 / keep, else zeroed.
    pub fn draw(drop: &mut DropPath, count: usize, n: usize, dtype: DType, device: &Device) -> Masks {
        assert!((0.0..1.0).contains(&drop.prob), "drop path: probability {} outside [0, 1)", drop.prob);
        assert!(count > 0 && n > 0, "drop path: {count} masks of {n} samples");
        let keep = 1.0 - drop.prob;
        let factors: Vec<f64> =
            (0..count * n).map(|_| if drop.rng.uniform() < keep { 1.0 / keep } else { 0.0 }).collect();
        Masks { factors: Tensor::from_f64(&[count * n], &factors, dtype).to_device(device), n, next: 0 }
    }

    /// Whether every mask has been used.
    pub fn exhausted(&self) -> bool {
        self.next == self.factors.numel()
    }
}

/// `utils.drop_path` with the next mask: each sample of `x` zeroed or scaled by 1 / keep.
pub fn drop_path(x: &Var, masks: &mut Masks) -> Var {
    let n = x.shape()[0];
    assert!(
        n == masks.n && masks.next + n <= masks.factors.numel(),
        "drop_path: x {:?} with masks of {} samples, {} of {} factors used",
        x.shape(),
        masks.n,
        masks.next,
        masks.factors.numel()
    );
    let y = F::scale_samples(x, &masks.factors, masks.next);
    masks.next += n;
    y
}
