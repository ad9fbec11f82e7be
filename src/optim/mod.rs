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

    /// One step with learning rate `lr` on every parameter in `ids` that has a gradient.
    pub fn step(&mut self, store: &mut Store, grads: &GradStore, ids: &[usize], lr: f64) {
        for &i in ids {
            let Some(g) = grads.get(ParamId(i)) else { continue };
            let first = self.bufs[i].is_none();
            let buf = self.bufs[i].get_or_insert_with(|| Tensor::zeros_on(g.shape(), g.dtype(), &g.device()));
            ops::optim::sgd_step(
                &mut store.params[i].value,
                g,
                buf,
                lr,
                self.momentum,
                self.weight_decay,
                first,
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
    /// The DARTS architecture optimiser for a store of `n` parameters.
    pub fn darts(n: usize) -> Adam {
        Adam {
            lr: 3e-4,
            betas: (0.5, 0.999),
            eps: 1e-8,
            weight_decay: 1e-3,
            m: vec![None; n],
            v: vec![None; n],
            step: 0,
        }
    }

    /// One step on the parameters `ids` with gradients `grads[k]` (one per id).
    pub fn step(&mut self, store: &mut Store, ids: &[usize], grads: &[Tensor]) {
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
            );
        }
    }
}

/// Scales the gradients of `ids` so their global L2 norm is at most `max_norm` (PyTorch's
/// `clip_grad_norm_`: coefficient max_norm / (norm + 1e-6) when below 1). Returns the norm
/// before clipping.
pub fn clip_grad_norm(grads: &mut GradStore, ids: &[usize], max_norm: f64) -> f64 {
    let gs: Vec<&Tensor> = ids.iter().filter_map(|&i| grads.get(ParamId(i))).collect();
    let norm = if gs.first().is_some_and(|g| g.is_gpu()) {
        // One device reduction and one scalar read for the whole model.
        ops::elementwise::sum_sq_many(&gs).sqrt()
    } else {
        // The norm of the per-tensor norms, as PyTorch computes it.
        gs.iter().map(|g| ops::elementwise::sum_sq(g).sqrt().powi(2)).sum::<f64>().sqrt()
    };
    let coef = max_norm / (norm + 1e-6);
    if coef < 1.0 {
        for &i in ids {
            if let Some(g) = grads.take(ParamId(i)) {
                grads.insert(ParamId(i), ops::elementwise::scale(&g, coef));
            }
        }
    }
    norm
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
