//! One training step of the evaluation protocol (the loop's and the bench's).

use super::run::TrainState;
use super::TrainConfig;
use crate::autograd::Groups;
use crate::model::eval::DropPath;
use crate::ops;
use crate::optim::clip_grad_norm;
use crate::tensor::Tensor;

/// What a step measured.
#[derive(Clone, Copy, Debug)]
pub struct TrainStepStats {
    /// CE + w · CE_aux on the batch.
    pub loss: f64,
    /// Top-1 correct in the batch.
    pub correct: usize,
    /// Gradient norm before clipping.
    pub grad_norm: f64,
}

/// One training step on images `x` and their labels: the forward with the auxiliary head and
/// drop path, loss = CE + `cfg.auxiliary_weight` · CE_aux (both label-smoothed by
/// `cfg.label_smoothing`), the backward, the gradient-norm clip
/// and SGD at `lr` over every parameter. The loss, correct count and gradient norm come back
/// together (one host read).
pub fn step(
    s: &mut TrainState,
    cfg: &TrainConfig,
    x: &Tensor,
    labels: &[u32],
    lr: f64,
    drop_path: DropPath,
) -> TrainStepStats {
    let (tape, out, loss) = s.net.loss_smoothed(
        &mut s.store,
        x,
        labels,
        true,
        Some(drop_path),
        cfg.auxiliary_weight,
        cfg.label_smoothing,
    );
    let hits = ops::loss::top1_correct_count(out.logits.value(), labels.into());
    let grads = tape.backward(&loss, Groups::WEIGHTS);
    drop((tape, out));
    let ids: Vec<usize> = (0..s.store.params.len()).collect();
    let clip = clip_grad_norm(&grads, &ids, cfg.grad_clip);
    s.sgd.step(&mut s.store, &grads, &ids, lr, Some(&clip));
    let v =
        ops::optim::read_scalars(&[(loss.value(), 0), (&hits, 0), (&clip.scalars, ops::optim::scalar::NORM)]);
    TrainStepStats { loss: v[0], correct: v[1] as usize, grad_norm: v[2] }
}
