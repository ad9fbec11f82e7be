//! The DARTS search network (`model_search.Network` of the reference): stem, `layers` cells with
//! reductions at 1/3 and 2/3 of the depth, global average pooling, a linear classifier, and the
//! architecture parameters α (normal and reduce, `[14, 8]` each; FairDARTS: `[14, 7]`, see
//! [`super::fair`]).

use super::cell::{Cell, EDGES};
use super::eval::ops::{DropPath, Masks};
use super::fair;
use super::method::Method;
use super::mixed::PRIMITIVES;
use super::pc::PcParts;
use crate::autograd::functions as F;
use crate::autograd::{Groups, Tape, Var};
use crate::nn::{Ctx, Store, B, P};
use crate::ops::ConvParams;
use crate::rng::Rng;
use crate::tensor::{DType, Tensor};

/// Shape of a search network.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NetConfig {
    /// Initial channels C (16 in the paper).
    pub channels: usize,
    /// Number of cells (8 in the paper).
    pub layers: usize,
    /// Classes (10 for CIFAR-10).
    pub classes: usize,
    /// How edges mix their candidates.
    pub method: Method,
}

impl Default for NetConfig {
    fn default() -> Self {
        NetConfig { channels: 16, layers: 8, classes: 10, method: Method::Darts }
    }
}

/// The search network's structure: modules holding indices into a [`Store`] of named
/// parameters and BN buffers (kept apart so a forward can read the structure while it updates
/// the store's BN statistics).
#[derive(Clone, Debug)]
pub struct Network {
    /// Its configuration.
    pub config: NetConfig,
    stem_w: P,
    stem_gamma: P,
    stem_beta: P,
    stem_bn: B,
    cells: Vec<Cell>,
    classifier_w: P,
    classifier_b: P,
    /// α of normal cells.
    pub alphas_normal: P,
    /// α of reduction cells.
    pub alphas_reduce: P,
    /// PC-DARTS' cells and β (then `cells` is empty); `None` for DARTS.
    pub pc: Option<PcParts>,
    /// Fused mixed ops (the default); `false` runs the unfused composition of ops, the
    /// reference the fused path is tested against (`darts search --no-fuse`).
    pub fuse: bool,
    /// Drop path on the edges during training forwards (R-DARTS(DP)); `None`: off.
    pub drop_path: Option<SearchDropPath>,
}

/// Scheduled drop path during a search (RobustDARTS' `Cell.forward` with `drop_prob`): every
/// edge's output (its mixed op's, before the node sum) is zeroed per sample with probability
/// `prob`, else scaled by 1 / (1 − prob). Training forwards only.
///
/// The masks of the k-th training forward are drawn from `Rng::new(mix(seed, k))`, so a step
/// (which sets a fresh `seed`) has the same masks wherever it runs, and no generator state
/// needs saving for an exact resume.
#[derive(Clone, Debug)]
pub struct SearchDropPath {
    /// Drop probability, in [0, 1).
    pub prob: f64,
    /// Seed of this step's masks.
    pub seed: u64,
    forwards: std::cell::Cell<u64>,
}

impl SearchDropPath {
    /// Masks at probability `prob` from `seed` (e.g. the run's seed mixed with the step).
    pub fn new(prob: f64, seed: u64) -> SearchDropPath {
        assert!((0.0..1.0).contains(&prob), "drop path: probability {prob} outside [0, 1)");
        SearchDropPath { prob, seed, forwards: std::cell::Cell::new(0) }
    }

    /// The masks of the next forward: `count` edges of `n` samples.
    fn draw(&self, count: usize, n: usize, dtype: DType, device: &crate::tensor::Device) -> Masks {
        let k = self.forwards.get();
        self.forwards.set(k + 1);
        let mut rng = Rng::new(self.seed ^ (k + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        Masks::draw(&mut DropPath { prob: self.prob, rng: &mut rng }, count, n, dtype, device)
    }
}

impl Network {
    /// A freshly initialised network and its store: PyTorch's default conv/linear
    /// initialisation, BN γ = 1, β = 0, α = 1e-3 · N(0, 1), all drawn from `rng`. With
    /// [`Method::PcDarts`] the cells' edges work on c/k channels and the edge logits `betas_normal`,
    /// `betas_reduce` (1e-3 · N(0, 1)) follow the alphas in [`Groups::ARCH`]; FairDARTS' edges
    /// have no `none` and α = 0 `[14, 7]`.
    pub fn new(config: NetConfig, dtype: DType, rng: &mut Rng) -> (Network, Store) {
        let NetConfig { channels: c, layers, classes, method } = config;
        assert!(layers >= 3, "Network: at least 3 layers (reductions at 1/3 and 2/3), got {layers}");
        let mut s = Store::new(dtype);
        let c_stem = 3 * c;
        let stem_w = s.conv("stem.0.weight".into(), [c_stem, 3, 3, 3], rng);
        let stem_gamma = s.add("stem.1.weight".into(), Tensor::full(&[c_stem], 1.0, dtype), Groups::WEIGHTS);
        let stem_beta = s.add("stem.1.bias".into(), Tensor::zeros(&[c_stem], dtype), Groups::WEIGHTS);
        let stem_bn = s.bn("stem.1".into(), c_stem);

        let (mut c_pp, mut c_p, mut c_cur) = (c_stem, c_stem, c);
        let mut cells = Vec::with_capacity(layers);
        let mut reduction_prev = false;
        for i in 0..layers {
            let reduction = i == layers / 3 || i == 2 * layers / 3;
            if reduction {
                c_cur *= 2;
            }
            cells.push(Cell::new(&mut s, i, c_pp, c_p, c_cur, reduction, reduction_prev, method, rng));
            reduction_prev = reduction;
            (c_pp, c_p) = (c_p, 4 * c_cur);
        }
        let bound = 1.0 / (c_p as f64).sqrt();
        let w = Tensor::from_f64(&[classes, c_p], &rng.uniforms(classes * c_p, -bound, bound), dtype);
        let classifier_w = s.add("classifier.weight".into(), w, Groups::WEIGHTS);
        let b = Tensor::from_f64(&[classes], &rng.uniforms(classes, -bound, bound), dtype);
        let classifier_b = s.add("classifier.bias".into(), b, Groups::WEIGHTS);
        let k = PRIMITIVES.len();
        let alpha = |rng: &mut Rng| {
            if method == Method::FairDarts {
                return fair::initial_alpha(dtype);
            }
            let v: Vec<f64> = rng.normals(EDGES * k).iter().map(|x| 1e-3 * x).collect();
            Tensor::from_f64(&[EDGES, k], &v, dtype)
        };
        let alphas_normal = s.add("alphas_normal".into(), alpha(rng), Groups::ARCH);
        let alphas_reduce = s.add("alphas_reduce".into(), alpha(rng), Groups::ARCH);
        let pc = matches!(method, Method::PcDarts { .. }).then(|| PcParts::new(&mut s, dtype, rng));
        let net = Network {
            config,
            stem_w,
            stem_gamma,
            stem_beta,
            stem_bn,
            cells,
            classifier_w,
            classifier_b,
            alphas_normal,
            alphas_reduce,
            pc,
            fuse: true,
            drop_path: None,
        };
        (net, s)
    }

    /// Logits `[n, classes]` of images `x` `[n, 3, 32, 32]` on a fresh tape (in `ctx`).
    pub fn forward(&self, ctx: &mut Ctx, x: &Var) -> Var {
        let stem = F::conv2d(x, ctx.p(self.stem_w), ConvParams::new(1, 1));
        let affine = Some((self.stem_gamma, self.stem_beta));
        let stem = ctx.bn(&stem, self.stem_bn, affine);
        // The softmaxes are shared by every cell of a type (the reference recomputes them per
        // cell; the values are identical).
        // Fused: each edge takes the logits and computes its softmax (sigmoid) row on the device.
        let weights = |a: &Var| match self.config.method {
            Method::FairDarts => fair::weights(a),
            _ => F::softmax(a),
        };
        let (w_normal, w_reduce) = if self.fuse {
            (ctx.p(self.alphas_normal).clone(), ctx.p(self.alphas_reduce).clone())
        } else {
            (weights(ctx.p(self.alphas_normal)), weights(ctx.p(self.alphas_reduce)))
        };
        let mut masks = match &self.drop_path {
            Some(d) if ctx.training && d.prob > 0.0 => {
                Some(d.draw(self.cells.len() * EDGES, x.shape()[0], x.value().dtype(), &x.value().device()))
            }
            _ => None,
        };
        let w2 = self.pc.as_ref().map(|pc| pc.node_weights(ctx));
        // Cell outputs travel as their nodes (the consumers concatenate them transiently).
        let (mut s0, mut s1) = (vec![stem.clone()], vec![stem]);
        for cell in &self.cells {
            let (w, w2) = match cell.reduction {
                true => (&w_reduce, w2.as_ref().map(|w| &w.1)),
                false => (&w_normal, w2.as_ref().map(|w| &w.0)),
            };
            let out = cell.forward(ctx, &s0, &s1, w, w2, self.fuse, masks.as_mut());
            (s0, s1) = (s1, out);
        }
        if let Some(m) = &masks {
            assert!(m.exhausted(), "search network: drop-path masks left over after the last cell");
        }
        let pooled = F::global_avg_pool(&F::concat_channels(&s1));
        F::linear(&pooled, ctx.p(self.classifier_w), ctx.p(self.classifier_b))
    }

    /// Runs a forward of images `x` on a fresh tape and returns the tape, the logits and the
    /// mean cross-entropy against `labels`. `training`: BN batch statistics (and running-stat
    /// updates in `store`), else BN running statistics.
    pub fn loss<'a>(
        &self,
        store: &mut Store,
        x: &Tensor,
        labels: impl Into<crate::ops::loss::Labels<'a>>,
        training: bool,
    ) -> (Tape, Var, Var) {
        let mut ctx = Ctx::new(&store.params, &mut store.bns, training);
        let xv = ctx.tape.constant(x.clone());
        let logits = self.forward(&mut ctx, &xv);
        let loss = F::cross_entropy(&logits, labels.into());
        (ctx.tape.clone(), logits, loss)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// FairDARTS' α start at 0 (σ = ½) on edges of seven ops, DARTS' at 1e-3 · N(0, 1) on eight;
    /// PC-DARTS adds β after them.
    #[test]
    fn each_method_initialises_its_architecture() {
        let build = |method| {
            let config = NetConfig { channels: 4, layers: 3, classes: 10, method };
            Network::new(config, DType::F64, &mut Rng::new(0)).1
        };
        let arch = |s: &Store| -> Vec<(String, Vec<usize>)> {
            s.params
                .iter()
                .filter(|p| p.group == Groups::ARCH)
                .map(|p| (p.name.clone(), p.value.shape().to_vec()))
                .collect()
        };
        let fair = build(Method::FairDarts);
        assert_eq!(
            arch(&fair),
            [("alphas_normal".into(), vec![EDGES, 7]), ("alphas_reduce".into(), vec![EDGES, 7])]
        );
        for p in fair.params.iter().filter(|p| p.group == Groups::ARCH) {
            assert!(p.value.to_f64_vec().iter().all(|&v| v == 0.0), "{} is not all zeros", p.name);
        }
        assert!(
            fair.find("cells.0._ops.0._ops.6.op.1.weight").is_some(),
            "dil_conv_5x5 is op 6 without none"
        );
        assert!(fair.find("cells.0._ops.0._ops.7.op.1.weight").is_none());
        let darts = build(Method::Darts);
        let a = darts.params[darts.find("alphas_normal").unwrap().0].value.to_f64_vec();
        assert!(a.iter().all(|v| v.abs() < 1e-2) && a.iter().any(|&v| v != 0.0));
        let pc = build(Method::PcDarts { k: 4 });
        let names: Vec<String> = arch(&pc).into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["alphas_normal", "alphas_reduce", "betas_normal", "betas_reduce"]);
    }
}
