//! The evaluation network (`model.py` of the reference): a genotype's discrete cell stacked
//! `layers` deep and trained from scratch. [`NetworkCifar`] and [`NetworkImageNet`] share the cell
//! stack ([`Cells`]: cells with reductions at 1/3 and 2/3 of the depth, the auxiliary head after
//! the cell at 2/3, the classifier) and differ in the stem and the final pooling.
//!
//! Against the search network: every BN is affine, each node has two ops chosen by the genotype
//! instead of 14 mixed edges, pools have no BN, and in training drop path zeroes whole samples
//! of every op output but the identity. Parameter and buffer names are the reference's
//! `NetworkCIFAR` / `NetworkImageNet` state-dict names, so its checkpoints load strictly.
//!
//! Initialisation: PyTorch's current defaults (convs and linears U(±1/√fan_in), BN γ = 1, β = 0),
//! not the reference's PyTorch 0.3 (which drew BN γ from U(0, 1)).

pub mod cell;
pub mod cifar;
pub mod head;
pub mod imagenet;
pub mod layers;
pub mod ops;

pub use cifar::NetworkCifar;
pub use imagenet::NetworkImageNet;
pub use ops::{drop_path_prob, DropPath};

use self::cell::{CellShape, EvalCell};
use self::head::{AuxHead, HeadKind};
use self::ops::Masks;
use crate::autograd::functions as F;
use crate::autograd::{Tape, Var};
use crate::nn::{Ctx, Store, P};
use crate::rng::Rng;
use crate::search::genotype::Genotype;
use crate::tensor::Tensor;

/// Shape of an evaluation network.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EvalConfig {
    /// Initial channels C (36 for CIFAR-10, 48 for ImageNet in the paper).
    pub channels: usize,
    /// Number of cells (20 CIFAR-10, 14 ImageNet).
    pub layers: usize,
    /// Classes.
    pub classes: usize,
    /// Build the auxiliary head (its output is used in training only).
    pub auxiliary: bool,
}

/// What a forward gives: the logits, and in training with an auxiliary head its logits too.
#[derive(Clone)]
pub struct EvalOutput {
    /// `[n, classes]`.
    pub logits: Var,
    /// The auxiliary head's `[n, classes]` (training with `auxiliary` only).
    pub aux: Option<Var>,
}

/// The parameter count the reference logs (`utils.count_parameters_in_MB`): every parameter
/// whose name does not contain `auxiliary`.
pub fn count_without_aux(store: &Store) -> usize {
    store.params.iter().filter(|p| !p.name.contains("auxiliary")).map(|p| p.value.numel()).sum()
}

/// The cell stack both networks share, from the stem's outputs to the classifier.
#[derive(Clone, Debug)]
pub struct Cells {
    cells: Vec<EvalCell>,
    aux_after: usize,
    aux: Option<AuxHead>,
    classifier: (P, P),
}

impl Cells {
    /// `config.layers` cells of `genotype` after a stem giving `c_stem` channels (as both `s0`
    /// and `s1` inputs of the first cell); `reduction_prev`: the stem's `s0` is at twice the
    /// resolution of its `s1` (ImageNet).
    fn new(
        s: &mut Store,
        genotype: &Genotype,
        config: EvalConfig,
        c_stem: usize,
        reduction_prev: bool,
        head: HeadKind,
        rng: &mut Rng,
    ) -> Cells {
        let EvalConfig { channels, layers, classes, auxiliary } = config;
        assert!(layers >= 3, "eval network: at least 3 layers (reductions at 1/3 and 2/3), got {layers}");
        let (mut c_pp, mut c_p, mut c) = (c_stem, c_stem, channels);
        let mut reduction_prev = reduction_prev;
        let aux_after = 2 * layers / 3;
        let (mut cells, mut c_aux) = (Vec::with_capacity(layers), 0);
        for i in 0..layers {
            let reduction = i == layers / 3 || i == 2 * layers / 3;
            if reduction {
                c *= 2;
            }
            let cell =
                EvalCell::new(s, i, genotype, CellShape { c_pp, c_p, c, reduction, reduction_prev }, rng);
            reduction_prev = reduction;
            (c_pp, c_p) = (c_p, cell.multiplier() * c);
            cells.push(cell);
            if i == aux_after {
                c_aux = c_p;
            }
        }
        // The reference builds the head after the cells and before the classifier.
        let aux = auxiliary.then(|| AuxHead::new(s, head, c_aux, classes, rng));
        let classifier = layers::linear(s, "classifier", c_p, classes, rng);
        Cells { cells, aux_after, aux, classifier }
    }

    /// The cells from the stem outputs; returns the last cell's output and, in training with a
    /// head, the auxiliary logits.
    fn forward(&self, ctx: &mut Ctx, s0: Var, s1: Var, drop: Option<DropPath>) -> (Var, Option<Var>) {
        let mut masks = drop.map(|mut d| {
            let count = self.cells.iter().map(EvalCell::droppable).sum();
            let x = s1.value();
            Masks::draw(&mut d, count, x.shape()[0], x.dtype(), &x.device())
        });
        let (mut s0, mut s1) = (s0, s1);
        let mut aux = None;
        for (i, cell) in self.cells.iter().enumerate() {
            let out = cell.forward(ctx, &s0, &s1, masks.as_mut());
            (s0, s1) = (s1, out);
            if let (Some(head), true) = (&self.aux, i == self.aux_after && ctx.training) {
                aux = Some(head.forward(ctx, &s1));
                // The reference's head starts with an in-place ReLU, so later readers of this
                // state see ReLU(s1): the same for the next cells (they start with a ReLU), but
                // the classifier's input when this is the last cell (3 layers).
                s1 = F::relu(&s1);
            }
        }
        if let Some(m) = &masks {
            assert!(m.exhausted(), "eval network: drop-path masks left over after the last cell");
        }
        (s1, aux)
    }

    /// The classifier on pooled features `[n, c]`.
    fn classify(&self, ctx: &Ctx, pooled: &Var) -> Var {
        F::linear(pooled, ctx.p(self.classifier.0), ctx.p(self.classifier.1))
    }
}

/// Drop path only where the reference applies it: training, probability above zero.
fn active<'a>(ctx: &Ctx, drop: Option<DropPath<'a>>) -> Option<DropPath<'a>> {
    drop.filter(|d| ctx.training && d.prob > 0.0)
}

/// Either evaluation network.
#[derive(Clone, Debug)]
pub enum EvalNetwork {
    /// 32×32 inputs.
    Cifar(NetworkCifar),
    /// 224×224 inputs.
    ImageNet(NetworkImageNet),
}

impl EvalNetwork {
    /// Its configuration.
    pub fn config(&self) -> EvalConfig {
        match self {
            EvalNetwork::Cifar(n) => n.config,
            EvalNetwork::ImageNet(n) => n.config,
        }
    }

    /// Logits (and auxiliary logits in training) of images `x` on the tape in `ctx`.
    pub fn forward(&self, ctx: &mut Ctx, x: &Var, drop: Option<DropPath>) -> EvalOutput {
        match self {
            EvalNetwork::Cifar(n) => n.forward(ctx, x, drop),
            EvalNetwork::ImageNet(n) => n.forward(ctx, x, drop),
        }
    }

    /// A forward of `x` on a fresh tape; returns the tape, the outputs and the loss
    /// `ce(logits) + aux_weight · ce(aux logits)` (the second term only when there are auxiliary
    /// logits). `training`: BN batch statistics and running-stat updates, drop path and the head.
    #[allow(clippy::too_many_arguments)]
    pub fn loss<'a>(
        &self,
        store: &mut Store,
        x: &Tensor,
        labels: impl Into<crate::ops::loss::Labels<'a>>,
        training: bool,
        drop: Option<DropPath>,
        aux_weight: f64,
    ) -> (Tape, EvalOutput, Var) {
        self.loss_smoothed(store, x, labels, training, drop, aux_weight, 0.0)
    }

    /// [`EvalNetwork::loss`] with both cross-entropies label-smoothed by `eps` (the reference's
    /// ImageNet training loss; 0 is [`EvalNetwork::loss`]).
    #[allow(clippy::too_many_arguments)]
    pub fn loss_smoothed<'a>(
        &self,
        store: &mut Store,
        x: &Tensor,
        labels: impl Into<crate::ops::loss::Labels<'a>>,
        training: bool,
        drop: Option<DropPath>,
        aux_weight: f64,
        eps: f64,
    ) -> (Tape, EvalOutput, Var) {
        let labels = labels.into();
        let mut ctx = Ctx::new(&store.params, &mut store.bns, training);
        let xv = ctx.tape.constant(x.clone());
        let out = self.forward(&mut ctx, &xv, drop);
        let mut loss = F::cross_entropy_smooth(&out.logits, labels, eps);
        if let Some(aux) = &out.aux {
            loss = F::add(&loss, &F::scale(&F::cross_entropy_smooth(aux, labels, eps), aux_weight));
        }
        (ctx.tape.clone(), out, loss)
    }
}
