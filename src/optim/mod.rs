//! Optimisers over a [`Store`]'s parameters: SGD with momentum and weight decay (the weights),
//! Adam (the alphas), gradient-norm clipping, and the DARTS learning-rate schedule.

use crate::autograd::{GradStore, ParamId};
use crate::nn::Store;
use crate::ops;
use crate::tensor::Tensor;

/// SGD with momentum, dampening 0, coupled weight decay (PyTorch `optim.SGD`).
#[derive(Clone, Debug)]
pub struct Sgd {
    /// Momentum (0.9 in DARTS).
    pub momentum: f64,
    /// Weight decay (3e-4 in DARTS).
    pub weight_decay: f64,
    /// Momentum buffer per parameter index (`None` before its first step).
    pub bufs: Vec<Option<Tensor>>,
}

impl Sgd {
    /// An optimiser for a store of `n` parameters.
    pub fn new(n: usize, momentum: f64, weight_decay: f64) -> Sgd {
        Sgd { momentum, weight_decay, bufs: vec![None; n] }
    }

    /// One step with learning rate `lr` on every parameter in `ids` that has a gradient, on
    /// the gradients scaled by the clip coefficient of `clip` (a [`GradClip`]; unscaled
    /// without). On a GPU: one launch for the whole list (two when some buffers take their first
    /// step and others not), and the momentum buffers a first step needs come from one
    /// allocation call, without fill launches.
    pub fn step<'a>(
        &mut self,
        store: &mut Store,
        grads: &GradStore,
        ids: &[usize],
        lr: impl Into<ops::optim::Hyper<'a>>,
        clip: Option<&GradClip>,
    ) {
        let lr = lr.into();
        let mut selected = vec![false; store.params.len()];
        for &i in ids {
            selected[i] = grads.get(ParamId(i)).is_some();
        }
        let fresh: Vec<usize> =
            (0..selected.len()).filter(|&i| selected[i] && self.bufs[i].is_none()).collect();
        let mut first = vec![false; selected.len()];
        if !fresh.is_empty() {
            let like: Vec<&Tensor> =
                fresh.iter().map(|&i| grads.get(ParamId(i)).expect("selected")).collect();
            for (&i, b) in fresh.iter().zip(ops::optim::momentum_buffers(&like)) {
                self.bufs[i] = Some(b);
                first[i] = true;
            }
        }
        for group_first in [true, false] {
            let in_group = |i: usize| selected[i] && first[i] == group_first;
            let gs: Vec<&Tensor> = (0..selected.len())
                .filter(|&i| in_group(i))
                .map(|i| grads.get(ParamId(i)).expect("selected"))
                .collect();
            if gs.is_empty() {
                continue;
            }
            let mut ws: Vec<&mut Tensor> = store
                .params
                .iter_mut()
                .enumerate()
                .filter(|(i, _)| in_group(*i))
                .map(|(_, p)| &mut p.value)
                .collect();
            let mut bufs: Vec<&mut Tensor> = self
                .bufs
                .iter_mut()
                .enumerate()
                .filter(|(i, _)| in_group(*i))
                .map(|(_, b)| b.as_mut().expect("allocated above"))
                .collect();
            ops::optim::sgd_step_many(
                &mut ws,
                &gs,
                &mut bufs,
                clip.map(|c| &c.scalars),
                lr,
                self.momentum,
                self.weight_decay,
                group_first,
            );
        }
    }
}

/// Adam with coupled weight decay (PyTorch `optim.Adam(weight_decay=...)`).
#[derive(Clone, Debug)]
pub struct Adam {
    /// Learning rate (3e-4 for DARTS alphas).
    pub lr: f64,
    /// (β1, β2) ((0.5, 0.999) for DARTS alphas).
    pub betas: (f64, f64),
    /// ε (1e-8).
    pub eps: f64,
    /// Weight decay (1e-3 for DARTS alphas).
    pub weight_decay: f64,
    /// First moments per parameter index.
    pub m: Vec<Option<Tensor>>,
    /// Second moments per parameter index.
    pub v: Vec<Option<Tensor>>,
    /// Steps taken.
    pub step: u32,
}

impl Adam {
    /// The DARTS architecture optimiser for a store of `n` parameters: lr 3e-4, betas
    /// (0.5, 0.999), weight decay 1e-3.
    pub fn darts(n: usize) -> Adam {
        Adam::new(n, 3e-4, (0.5, 0.999), 1e-3)
    }

    /// Adam for a store of `n` parameters with ε = 1e-8 (PyTorch's default).
    pub fn new(n: usize, lr: f64, betas: (f64, f64), weight_decay: f64) -> Adam {
        Adam { lr, betas, eps: 1e-8, weight_decay, m: vec![None; n], v: vec![None; n], step: 0 }
    }

    /// One step on the parameters `ids` with gradients `grads[k]` (one per id). `bias_at`: where
    /// this step's bias corrections are stored on the device ([`ops::optim::adam_step`]; the
    /// values of [`ops::optim::step_hyper`] for step `self.step + 1`).
    pub fn step(
        &mut self,
        store: &mut Store,
        ids: &[usize],
        grads: &[Tensor],
        bias_at: Option<(&Tensor, usize)>,
    ) {
        self.step += 1;
        for (&i, g) in ids.iter().zip(grads) {
            let zeros = || Tensor::zeros_on(g.shape(), g.dtype(), &g.device());
            let m = self.m[i].get_or_insert_with(zeros);
            let v = self.v[i].get_or_insert_with(zeros);
            ops::optim::adam_step(
                &mut store.params[i].value,
                g,
                m,
                v,
                self.lr,
                self.betas,
                self.eps,
                self.weight_decay,
                self.step,
                bias_at,
            );
        }
    }
}

/// The global gradient norm and PyTorch's clip coefficient, kept on the gradients' device.
#[derive(Clone, Debug)]
pub struct GradClip {
    /// [`ops::optim::clip_scalars`]: [‖g‖, clip coefficient, ...].
    pub scalars: Tensor,
}

impl GradClip {
    /// The norm before clipping, on the host (one device read on a GPU).
    pub fn norm(&self) -> f64 {
        ops::optim::read_scalar(&self.scalars, ops::optim::scalar::NORM)
    }

    /// The clip coefficient min(1, max_norm / (‖g‖ + 1e-6)), on the host (one device read).
    pub fn coef(&self) -> f64 {
        ops::optim::read_scalar(&self.scalars, ops::optim::scalar::CLIP_COEF)
    }
}

/// PyTorch's `clip_grad_norm_` over the gradients of `ids`, split in two: this computes the norm
/// and the coefficient max_norm / (norm + 1e-6) clamped at 1 (the norm of the per-tensor norms
/// on the CPU, as PyTorch; one f32 reduction over the list on a GPU: two launches, no host
/// read), and [`Sgd::step`] applies the coefficient to the gradients as it loads them, so the
/// gradient store itself stays unclipped.
pub fn clip_grad_norm(grads: &GradStore, ids: &[usize], max_norm: f64) -> GradClip {
    let gs: Vec<&Tensor> = ids.iter().filter_map(|&i| grads.get(ParamId(i))).collect();
    GradClip { scalars: ops::optim::clip_scalars(&gs, max_norm) }
}

/// The DARTS weight learning rate of epoch `epoch` of `epochs`: cosine from `max` to `min`,
/// constant within an epoch (the reference's schedule as executed: 0.025 → 0.001).
pub fn cosine_lr(epoch: usize, epochs: usize, max: f64, min: f64) -> f64 {
    min + (max - min) * (1.0 + (std::f64::consts::PI * epoch as f64 / epochs as f64).cos()) / 2.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosine_schedule_matches_the_reference_log() {
        assert!((cosine_lr(0, 50, 0.025, 0.001) - 0.025).abs() < 1e-15);
        // "epoch 49 lr 1.023679e-03" in the reference's log.
        assert!((cosine_lr(49, 50, 0.025, 0.001) - 1.023679e-3).abs() < 5e-10);
    }
}
