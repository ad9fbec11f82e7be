//! FairDARTS' supernet (Chu et al., `fairdarts/model_search.py`): the DARTS cells with `none`
//! dropped from every edge, and each candidate weighed independently by w = σ(α):
//!
//! ```text
//! edge(x)   = Σ_k σ(α_row,k) o_k(x)        k over FAIR_PRIMITIVES (7), no softmax
//! α         = 0 at initialisation           [14, 7] per cell type
//! names     cells.<i>._ops.<e>._ops.<k>     k the α column (DARTS' index − 1)
//! ```
//!
//! The zero-one loss of its architecture objective is `autograd::functions::zero_one_loss`; the
//! sparse genotype is `search::genotype::parse_threshold`.

use super::cell::EDGES;
use super::mixed::{MixedOp, PRIMITIVES};
use crate::autograd::functions as F;
use crate::autograd::Var;
use crate::fused::mixed::Weighting;
use crate::nn::Store;
use crate::rng::Rng;
use crate::tensor::{DType, Tensor};

/// FairDARTS' candidates, in α column order: the DARTS [`PRIMITIVES`] without `none`.
pub const FAIR_PRIMITIVES: [&str; 7] =
    [PRIMITIVES[1], PRIMITIVES[2], PRIMITIVES[3], PRIMITIVES[4], PRIMITIVES[5], PRIMITIVES[6], PRIMITIVES[7]];

/// The architecture-loss weight of the zero-one loss in the reference (`--aux_loss_weight`).
pub const ZERO_ONE_WEIGHT: f64 = 10.0;

/// FairDARTS' genotype threshold on σ(α) (`op_threshold` of `parse_genotype`).
pub const THRESHOLD: f64 = 0.85;

/// A FairDARTS edge: the seven candidates without `none`, weighed by σ(α).
pub fn edge(s: &mut Store, prefix: &str, c: usize, stride: usize, rng: &mut Rng) -> MixedOp {
    MixedOp::build(s, prefix, c, stride, false, Weighting::Sigmoid, rng)
}

/// The initial α of a cell type: zeros `[14, 7]` (every σ = ½).
pub fn initial_alpha(dtype: DType) -> Tensor {
    Tensor::zeros(&[EDGES, FAIR_PRIMITIVES.len()], dtype)
}

/// The unfused path's edge weights σ(α), `[14, 7]`.
pub fn weights(alpha: &Var) -> Var {
    F::sigmoid(alpha)
}
