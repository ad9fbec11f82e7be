//! Named parameters and batch-norm buffers, and the per-forward context that turns them into
//! tape leaves.
//!
//! Names follow the reference PyTorch search network's `state_dict()` (e.g. `stem.0.weight`,
//! `cells.0._ops.3._ops.4.op.1.weight`), so checkpoints interoperate with it.

use crate::autograd::functions::BnState;
use crate::autograd::{Groups, ParamId, Tape, Var};
use crate::rng::Rng;
use crate::tensor::{DType, Device, Tensor};

/// A learnable tensor with its state-dict name and gradient group.
#[derive(Clone, Debug)]
pub struct Param {
    /// State-dict name.
    pub name: String,
    /// Current value.
    pub value: Tensor,
    /// Weights or architecture.
    pub group: Groups,
}

/// A batch-norm layer's running statistics and counter, named by the layer's prefix
/// (`<prefix>.running_mean`, `.running_var`, `.num_batches_tracked`).
#[derive(Clone, Debug)]
pub struct BnBuffers {
    /// The layer's state-dict prefix.
    pub prefix: String,
    /// Running statistics and hyperparameters.
    pub state: BnState,
    /// Training-mode forwards seen (PyTorch's `num_batches_tracked`).
    pub num_batches_tracked: i64,
}

/// Every parameter and BN buffer of a network, in creation order.
#[derive(Clone, Debug)]
pub struct Store {
    /// Parameters; a parameter's index is its [`ParamId`].
    pub params: Vec<Param>,
    /// BN buffers.
    pub bns: Vec<BnBuffers>,
    /// Element type of every tensor.
    pub dtype: DType,
}

/// Index of a parameter in a [`Store`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct P(pub usize);

/// Index of a BN layer's buffers in a [`Store`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct B(pub usize);

impl Store {
    /// An empty store for `dtype` tensors.
    pub fn new(dtype: DType) -> Store {
        Store { params: Vec::new(), bns: Vec::new(), dtype }
    }

    /// Adds a parameter.
    pub fn add(&mut self, name: String, value: Tensor, group: Groups) -> P {
        self.params.push(Param { name, value, group });
        P(self.params.len() - 1)
    }

    /// Adds a conv weight `[c_out, c_in_per_group, k, k]` with PyTorch's default initialisation
    /// (kaiming-uniform with a = √5: U(−1/√fan_in, 1/√fan_in), fan_in = c_in_per_group·k·k).
    pub fn conv(&mut self, name: String, shape: [usize; 4], rng: &mut Rng) -> P {
        let fan_in = (shape[1] * shape[2] * shape[3]) as f64;
        let bound = 1.0 / fan_in.sqrt();
        let n = shape.iter().product();
        let v = Tensor::from_f64(&shape, &rng.uniforms(n, -bound, bound), self.dtype);
        self.add(name, v, Groups::WEIGHTS)
    }

    /// Adds a BN layer's affine parameters `{prefix}.weight` (γ = 1) and `{prefix}.bias` (β = 0).
    pub fn affine_bn_params(&mut self, prefix: &str, c: usize) -> (P, P) {
        let gamma =
            self.add(format!("{prefix}.weight"), Tensor::full(&[c], 1.0, self.dtype), Groups::WEIGHTS);
        let beta = self.add(format!("{prefix}.bias"), Tensor::zeros(&[c], self.dtype), Groups::WEIGHTS);
        (gamma, beta)
    }

    /// Adds a BN layer's buffers (mean 0, variance 1).
    pub fn bn(&mut self, prefix: String, c: usize) -> B {
        self.bns.push(BnBuffers { prefix, state: BnState::new(c, self.dtype), num_batches_tracked: 0 });
        B(self.bns.len() - 1)
    }

    /// Number of scalars in the parameters of `group`.
    pub fn count(&self, group: Groups) -> usize {
        self.params.iter().filter(|p| p.group.intersects(group)).map(|p| p.value.numel()).sum()
    }

    /// The parameter named `name`.
    pub fn find(&self, name: &str) -> Option<P> {
        self.params.iter().position(|p| p.name == name).map(P)
    }

    /// Moves every tensor to `device` (GPU: f32).
    pub fn to_device(&mut self, device: &Device) {
        for p in &mut self.params {
            p.value = p.value.to_device(device);
        }
        for b in &mut self.bns {
            b.state.running_mean = b.state.running_mean.to_device(device);
            b.state.running_var = b.state.running_var.to_device(device);
        }
    }
}

/// One forward pass: the tape, a leaf per parameter, the BN buffers, train or eval mode.
pub struct Ctx<'a> {
    /// The tape being recorded.
    pub tape: Tape,
    vars: Vec<Var>,
    bns: &'a mut [BnBuffers],
    /// Training mode: BN uses batch statistics and updates its running stats.
    pub training: bool,
}

impl<'a> Ctx<'a> {
    /// Starts a forward over `params` (each becomes a leaf of its group) and `bns`.
    pub fn new(params: &[Param], bns: &'a mut [BnBuffers], training: bool) -> Ctx<'a> {
        let tape = Tape::new();
        let vars = params
            .iter()
            .enumerate()
            .map(|(i, p)| tape.param(ParamId(i), p.group, p.value.clone()))
            .collect();
        Ctx { tape, vars, bns, training }
    }

    /// The leaf of parameter `p`.
    pub fn p(&self, p: P) -> &Var {
        &self.vars[p.0]
    }

    /// The running statistics of several distinct BN layers at once, for a fused op that
    /// normalises them together; in training mode each layer's batch counter advances, as
    /// [`Ctx::bn`] does.
    pub fn bn_states_mut(&mut self, ids: &[B]) -> Vec<&mut BnState> {
        let training = self.training;
        let mut slots: Vec<Option<&mut BnBuffers>> = self.bns.iter_mut().map(Some).collect();
        ids.iter()
            .map(|b| {
                let buf = slots[b.0]
                    .take()
                    .unwrap_or_else(|| panic!("bn_states_mut: BN layer {} asked twice", b.0));
                if training {
                    buf.num_batches_tracked += 1;
                }
                &mut buf.state
            })
            .collect()
    }

    /// The buffers of BN layer `b`, for a fused op that normalises with them itself.
    pub fn bn_buffers(&mut self, b: B) -> &mut BnBuffers {
        &mut self.bns[b.0]
    }

    /// The running statistics of BN layer `b` for a fused op that applies that BN itself, counting
    /// the batch in training mode exactly as [`Ctx::bn`] does (`num_batches_tracked += 1`); the
    /// op updates the running statistics.
    pub fn bn_state(&mut self, b: B) -> &mut BnState {
        let training = self.training;
        let buf = &mut self.bns[b.0];
        if training {
            buf.num_batches_tracked += 1;
        }
        &mut buf.state
    }

    /// [`Ctx::bn`]'s output whole (`[y]`), or split along its channels at `split` (non-affine
    /// only: [`crate::autograd::functions::batch_norm_split`]).
    pub fn bn_parts(&mut self, x: &Var, b: B, gamma_beta: Option<(P, P)>, split: Option<usize>) -> Vec<Var> {
        let Some(at) = split else { return vec![self.bn(x, b, gamma_beta)] };
        assert!(gamma_beta.is_none(), "Ctx::bn_parts: a split output needs a non-affine BN");
        let buf = &mut self.bns[b.0];
        if self.training {
            buf.num_batches_tracked += 1;
        }
        crate::autograd::functions::batch_norm_split(x, &mut buf.state, self.training, at).to_vec()
    }

    /// Batch norm with buffers `b` (affine when `gamma_beta` is given).
    pub fn bn(&mut self, x: &Var, b: B, gamma_beta: Option<(P, P)>) -> Var {
        let affine = gamma_beta.map(|(g, bt)| (self.vars[g.0].clone(), self.vars[bt.0].clone()));
        let buf = &mut self.bns[b.0];
        if self.training {
            buf.num_batches_tracked += 1;
        }
        crate::autograd::functions::batch_norm(
            x,
            affine.as_ref().map(|(g, bt)| (g, bt)),
            &mut buf.state,
            self.training,
        )
    }
}
