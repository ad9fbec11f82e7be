//! One DARTS search step: the architecture step on a validation batch (first order, or second
//! order through the unrolled model), then the weight step on a training batch.

use crate::autograd::functions as F;
use crate::autograd::{GradStore, Groups, ParamId};
use crate::model::Network;
use crate::nn::Store;
use crate::ops;
use crate::ops::loss::Labels;
use crate::ops::optim::{hyper, Hyper};
use crate::optim::{clip_grad_norm, Adam, Sgd};
use crate::tensor::Tensor;

/// First or second order architecture gradient.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    /// dα = ∇α L_val(w, α).
    First,
    /// dα through the unrolled weights w' = w − ξ ∇w L_train (finite-difference Hessian term).
    Second,
}

/// Hyperparameters of the bilevel step (the reference's defaults).
#[derive(Clone, Copy, Debug)]
pub struct StepConfig {
    /// First or second order.
    pub order: Order,
    /// SGD momentum.
    pub momentum: f64,
    /// SGD weight decay.
    pub weight_decay: f64,
    /// Gradient-norm clip of the weight step.
    pub grad_clip: f64,
    /// Size of the finite-difference step of the Hessian-vector product: ε = hvp_scale / ‖v‖
    /// (0.01 in the reference).
    pub hvp_scale: f64,
    /// Adam learning rate of the alphas.
    pub arch_lr: f64,
    /// Adam (β1, β2) of the alphas.
    pub arch_betas: (f64, f64),
    /// Adam (coupled) weight decay of the alphas.
    pub arch_weight_decay: f64,
    /// Weight w01 of FairDARTS' zero-one loss in the architecture objective
    /// CE(val) + w01 · L01(σ(α)) (first order); 0 (DARTS) leaves it out. FairDARTS: 10
    /// (`model::fair::ZERO_ONE_WEIGHT`).
    pub zero_one_weight: f64,
}

impl Default for StepConfig {
    fn default() -> Self {
        let adam = Adam::darts(0);
        StepConfig {
            order: Order::First,
            momentum: 0.9,
            weight_decay: 3e-4,
            grad_clip: 5.0,
            hvp_scale: 0.01,
            arch_lr: adam.lr,
            arch_betas: adam.betas,
            arch_weight_decay: adam.weight_decay,
            zero_one_weight: 0.0,
        }
    }
}

/// What one step measured.
#[derive(Clone, Debug, Default)]
pub struct StepStats {
    /// Weight-step training loss.
    pub loss_train: f64,
    /// Architecture-step validation loss (at w first order, at w' second order).
    pub loss_val: f64,
    /// Weight-gradient norm before clipping.
    pub grad_norm: f64,
    /// Top-1 correct in the training batch.
    pub correct_train: usize,
}

/// A batch: normalised images `[n, 3, 32, 32]` and labels.
#[derive(Clone, Copy)]
pub struct Batch<'a> {
    /// Images.
    pub x: &'a Tensor,
    /// Labels (on a GPU, with their device copy when the batch was uploaded with one).
    pub y: Labels<'a>,
}

impl<'a> Batch<'a> {
    /// Images and host labels.
    pub fn new(x: &'a Tensor, y: &'a [u32]) -> Batch<'a> {
        Batch { x, y: Labels::host(y) }
    }
}

impl StepStats {
    /// The stats from a step's scalars `[loss_train, loss_val, grad_norm, correct_train]`
    /// ([`SearchState::enqueue_step`]).
    pub fn from_scalars(v: &[f64]) -> StepStats {
        assert_eq!(v.len(), 4, "StepStats::from_scalars: {} values, want 4", v.len());
        StepStats { loss_train: v[0], loss_val: v[1], grad_norm: v[2], correct_train: v[3] as usize }
    }
}

/// Everything a search updates: the network, its store, and both optimisers.
#[derive(Clone, Debug)]
pub struct SearchState {
    /// Structure.
    pub net: Network,
    /// Weights, alphas, BN buffers.
    pub store: Store,
    /// The weights' optimiser.
    pub sgd: Sgd,
    /// The alphas' optimiser.
    pub adam: Adam,
    /// Step hyperparameters.
    pub config: StepConfig,
    /// The gradients of the last step (weights before clipping; alphas as given to Adam).
    pub last_grads: Option<GradStore>,
    /// α frozen: steps skip the architecture half (PC-DARTS' warm-up epochs); their validation
    /// loss reads 0.
    pub arch_frozen: bool,
}

impl SearchState {
    /// Fresh optimisers for `net`/`store`.
    pub fn new(net: Network, store: Store, config: StepConfig) -> SearchState {
        let n = store.params.len();
        SearchState {
            net,
            store,
            sgd: Sgd::new(n, config.momentum, config.weight_decay),
            adam: Adam::new(n, config.arch_lr, config.arch_betas, config.arch_weight_decay),
            config,
            last_grads: None,
            arch_frozen: false,
        }
    }

    /// Sets the weights' weight decay (the SGD step's and the unrolled step's alike).
    pub fn set_weight_decay(&mut self, wd: f64) {
        self.sgd.weight_decay = wd;
        self.config.weight_decay = wd;
    }

    /// Indices of the weights.
    pub fn weight_ids(&self) -> Vec<usize> {
        ids(&self.store, Groups::WEIGHTS)
    }

    /// Indices of the alphas.
    pub fn arch_ids(&self) -> Vec<usize> {
        ids(&self.store, Groups::ARCH)
    }

    /// A full step with weight learning rate `lr` (also ξ of the unrolled step): the
    /// architecture step, then the weight step.
    ///
    /// The step's scalars (losses, gradient norm, correct count) stay on the device until the
    /// step is enqueued and then come back together: one host wait per step.
    pub fn step(&mut self, train: &Batch, val: &Batch, lr: f64) -> StepStats {
        let hyper = self.hyper_tensor(lr);
        let scalars = self.enqueue_step(train, val, &hyper);
        StepStats::from_scalars(&scalars.to_f64_vec())
    }

    /// The values of the hyperparameter tensor of the next step at learning rate `lr`
    /// ([`ops::optim::step_hyper`]: `lr`, and Adam's bias corrections for its next step).
    pub fn hyper_values(&self, lr: f64) -> [f64; hyper::LEN] {
        ops::optim::step_hyper(lr, self.adam.betas, self.adam.step + 1)
    }

    /// [`SearchState::hyper_values`] as a tensor on the state's device.
    pub fn hyper_tensor(&self, lr: f64) -> Tensor {
        let v = self.hyper_values(lr).to_vec();
        Tensor::from_vec(&[hyper::LEN], v).to_device(&self.store.params[0].value.device())
    }

    /// Issues a whole step (the architecture step, then the weight step) and returns its scalars
    /// `[loss_train, loss_val, grad_norm, correct_train]` in one tensor on the device
    /// ([`StepStats::from_scalars`]), without waiting for the device: a graph can record it.
    /// The learning rate (ξ) and Adam's bias corrections are read from `hyper` (a
    /// [`SearchState::hyper_tensor`], or a buffer the caller fills with
    /// [`SearchState::hyper_values`]) where the kernels run, so a replay picks up new values.
    pub fn enqueue_step(&mut self, train: &Batch, val: &Batch, hyper: &Tensor) -> Tensor {
        assert_eq!(hyper.shape(), [hyper::LEN], "enqueue_step: hyper tensor of shape {:?}", hyper.shape());
        let lr = Hyper::At(hyper, hyper::LR);
        let (loss_val, dalpha) = if self.arch_frozen {
            let like = &self.store.params[0].value;
            (Tensor::zeros_on(&[], like.dtype(), &like.device()), Vec::new())
        } else {
            self.arch_step_on_device(train, val, lr, Some((hyper, hyper::ADAM_BIAS)))
        };
        let w = self.weight_step_on_device(train, lr);
        let arch = self.arch_ids();
        let last = self.last_grads.as_mut().expect("the weight step keeps its gradients");
        for (i, g) in arch.iter().zip(dalpha) {
            last.insert(ParamId(*i), g);
        }
        ops::optim::gather_scalars(&[
            (&w.loss, 0),
            (&loss_val, 0),
            (&w.clip.scalars, ops::optim::scalar::NORM),
            (&w.correct, 0),
        ])
    }

    /// The architecture half of a step: the α gradient (first or second order) and Adam's
    /// update. Returns the validation loss and the gradient given to Adam.
    pub fn arch_step(&mut self, train: &Batch, val: &Batch, lr: f64) -> (f64, Vec<Tensor>) {
        let (loss_val, dalpha) = self.arch_step_on_device(train, val, lr.into(), None);
        (loss_val.item(), dalpha)
    }

    /// [`SearchState::arch_step`] with the validation loss left on the device; Adam reads its
    /// bias corrections at `adam_bias` when given.
    fn arch_step_on_device(
        &mut self,
        train: &Batch,
        val: &Batch,
        lr: Hyper,
        adam_bias: Option<(&Tensor, usize)>,
    ) -> (Tensor, Vec<Tensor>) {
        let (loss_val, dalpha) = self.arch_gradient_on_device(train, val, lr);
        let arch = self.arch_ids();
        self.adam.step(&mut self.store, &arch, &dalpha, adam_bias);
        (loss_val, dalpha)
    }

    /// The weight half of a step: training loss, gradient-norm clipping and SGD at `lr`. Keeps
    /// the unclipped weight gradients in `last_grads`. `loss_val` of the result is 0.
    pub fn weight_step(&mut self, train: &Batch, lr: f64) -> StepStats {
        let w = self.weight_step_on_device(train, lr.into());
        let v = ops::optim::read_scalars(&[
            (&w.loss, 0),
            (&w.clip.scalars, ops::optim::scalar::NORM),
            (&w.correct, 0),
        ]);
        StepStats { loss_train: v[0], loss_val: 0.0, grad_norm: v[1], correct_train: v[2] as usize }
    }

    /// [`SearchState::weight_step`] with its scalars left on the device.
    fn weight_step_on_device(&mut self, train: &Batch, lr: Hyper) -> WeightScalars {
        let (tape, logits, loss) = self.net.loss(&mut self.store, train.x, train.y, true);
        let correct = ops::loss::top1_correct_count(logits.value(), train.y);
        let grads = tape.backward(&loss, Groups::WEIGHTS);
        let weights = self.weight_ids();
        // The coefficient stays on the device and SGD applies it on load: the store keeps the
        // unclipped gradients.
        let clip = clip_grad_norm(&grads, &weights, self.config.grad_clip);
        self.sgd.step(&mut self.store, &grads, &weights, lr, Some(&clip));
        self.last_grads = Some(grads);
        WeightScalars { loss: loss.value().clone(), correct, clip }
    }

    /// The architecture gradient this step would give Adam (first or second order, per the
    /// config), with the validation loss. Updates BN running statistics as the step does.
    pub fn arch_gradient(&mut self, train: &Batch, val: &Batch, lr: f64) -> (f64, Vec<Tensor>) {
        let (loss_val, dalpha) = self.arch_gradient_on_device(train, val, lr.into());
        (loss_val.item(), dalpha)
    }

    fn arch_gradient_on_device(&mut self, train: &Batch, val: &Batch, lr: Hyper) -> (Tensor, Vec<Tensor>) {
        match self.config.order {
            Order::First => self.arch_grad_first(val),
            Order::Second => self.arch_grad_second(train, val, lr),
        }
    }

    /// dα = ∇α L_val(w, α) (one forward and backward on the validation batch, BN in training
    /// mode as in the reference). With a zero-one weight w01 (FairDARTS), the objective is
    /// L_val + w01 · L01, L01 = −mean((σ(α) − ½)²) over both cell types' σ(α) concatenated
    /// (`ConvSeparateLoss` of the reference); the validation loss returned is L_val alone.
    fn arch_grad_first(&mut self, val: &Batch) -> (Tensor, Vec<Tensor>) {
        let (tape, _, loss) = self.net.loss(&mut self.store, val.x, val.y, true);
        let w01 = self.config.zero_one_weight;
        let objective = if w01 != 0.0 {
            // Second leaves of the alphas on the same tape: their gradients add to the network's.
            let sigma = |i: usize| {
                let p = &self.store.params[i];
                F::sigmoid(&tape.param(ParamId(i), p.group, p.value.clone()))
            };
            let (sn, sr) = (sigma(self.net.alphas_normal.0), sigma(self.net.alphas_reduce.0));
            F::add(&loss, &F::scale(&F::zero_one_loss(&[&sn, &sr]), w01))
        } else {
            loss.clone()
        };
        let grads = tape.backward(&objective, Groups::ARCH);
        let dalpha =
            self.arch_ids().iter().map(|&i| grads.get(ParamId(i)).expect("alpha gradient").clone()).collect();
        (loss.value().clone(), dalpha)
    }

    /// The second-order gradient of the reference `Architect._backward_step_unrolled`:
    /// w' = w − ξ (m·buf + ∇w L_train(w) + wd·w); dα = ∇α L_val(w') − ξ (∇α L_train(w⁺) −
    /// ∇α L_train(w⁻)) / (2ε) with w± = w ± ε v, v = ∇w' L_val(w'), ε = 0.01 / ‖v‖.
    fn arch_grad_second(&mut self, train: &Batch, val: &Batch, xi: Hyper) -> (Tensor, Vec<Tensor>) {
        let weights = self.weight_ids();
        let arch = self.arch_ids();
        // ∇w L_train(w) (this forward updates the model's BN running stats, as the reference's).
        let (tape, _, loss) = self.net.loss(&mut self.store, train.x, train.y, true);
        let g_train = tape.backward(&loss, Groups::WEIGHTS);
        drop(tape);

        // The unrolled model: a copy of the store with w' (one launch for every weight on a GPU).
        let mut unrolled = self.store.clone();
        let w_now: Vec<&Tensor> = weights.iter().map(|&i| &self.store.params[i].value).collect();
        let g_now: Vec<&Tensor> =
            weights.iter().map(|&i| g_train.get(ParamId(i)).expect("weight gradient")).collect();
        let bufs: Vec<Option<&Tensor>> = weights.iter().map(|&i| self.sgd.bufs[i].as_ref()).collect();
        let w_unrolled = ops::optim::unrolled_weights(
            &w_now,
            &g_now,
            &bufs,
            xi,
            self.config.momentum,
            self.config.weight_decay,
        );
        for (&i, w) in weights.iter().zip(w_unrolled) {
            unrolled.params[i].value = w;
        }
        let (tape, _, loss_val) = self.net.loss(&mut unrolled, val.x, val.y, true);
        let g_val = tape.backward(&loss_val, Groups::ALL);
        drop(tape);
        let dalpha_val: Vec<Tensor> =
            arch.iter().map(|&i| g_val.get(ParamId(i)).expect("alpha gradient").clone()).collect();
        let v: Vec<Tensor> =
            weights.iter().map(|&i| g_val.get(ParamId(i)).expect("weight gradient").clone()).collect();
        let v: Vec<&Tensor> = v.iter().collect();

        // Finite-difference Hessian-vector product on the training batch, around w, with
        // r = hvp_scale / ‖v‖ computed and kept on the device: w ± r v are one launch each.
        let r = ops::optim::ratio_scalars(&v, self.config.hvp_scale);
        let shift = |store: &mut Store, by: f64| {
            let mut ws: Vec<&mut Tensor> = store
                .params
                .iter_mut()
                .enumerate()
                .filter(|(i, _)| weights.binary_search(i).is_ok())
                .map(|(_, p)| &mut p.value)
                .collect();
            ops::optim::axpy_many(&mut ws, &v, &r, ops::optim::scalar::RATIO, by);
        };
        let arch_grad_at = |store: &mut Store| -> Vec<Tensor> {
            let (tape, _, loss) = self.net.loss(store, train.x, train.y, true);
            let g = tape.backward(&loss, Groups::ARCH);
            arch.iter().map(|&i| g.get(ParamId(i)).expect("alpha gradient").clone()).collect()
        };
        shift(&mut self.store, 1.0);
        let g_plus = arch_grad_at(&mut self.store);
        shift(&mut self.store, -2.0);
        let g_minus = arch_grad_at(&mut self.store);
        shift(&mut self.store, 1.0);

        let dalpha = ops::optim::hvp_combine(&refs(&dalpha_val), &refs(&g_plus), &refs(&g_minus), &r, xi);
        (loss_val.value().clone(), dalpha)
    }
}

/// The weight step's scalars, on the device that computed them.
struct WeightScalars {
    /// The training loss (0-d).
    loss: Tensor,
    /// Top-1 correct in the training batch (`[1]`).
    correct: Tensor,
    /// The gradient norm and clip coefficient.
    clip: crate::optim::GradClip,
}

fn refs(ts: &[Tensor]) -> Vec<&Tensor> {
    ts.iter().collect()
}

fn ids(store: &Store, group: Groups) -> Vec<usize> {
    store.params.iter().enumerate().filter(|(_, p)| p.group.intersects(group)).map(|(i, _)| i).collect()
}
