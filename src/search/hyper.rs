//! The search's optimisation hyperparameters in a [`SearchConfig`]: their defaults (the
//! reference `train_search.py`'s, also used for config.json files written before a field
//! existed), their validation, and what they configure (the step's optimisers, the samplers).
//!
//! Error messages name the `darts search` flag that sets each field.

use super::run::{RunError, SearchConfig};
use super::step::StepConfig;
use crate::data::{search_samplers, DataError, SearchSamplers};

/// Default SGD momentum (0.9).
pub fn momentum() -> f64 {
    StepConfig::default().momentum
}
/// Default SGD weight decay (3e-4).
pub fn weight_decay() -> f64 {
    StepConfig::default().weight_decay
}
/// Default gradient-norm clip (5).
pub fn grad_clip() -> f64 {
    StepConfig::default().grad_clip
}
/// Default Adam learning rate of the alphas (3e-4).
pub fn arch_lr() -> f64 {
    StepConfig::default().arch_lr
}
/// Default Adam betas of the alphas ((0.5, 0.999)).
pub fn arch_betas() -> (f64, f64) {
    StepConfig::default().arch_betas
}
/// Default Adam weight decay of the alphas (1e-3).
pub fn arch_weight_decay() -> f64 {
    StepConfig::default().arch_weight_decay
}
/// Default step-logging period (every step).
pub fn report_freq() -> usize {
    1
}

/// The largest cutout side: the image's.
pub const MAX_CUTOUT: usize = 32;

impl SearchConfig {
    /// Checks the hyperparameters; the error names the flag and what it must be.
    pub fn validate(&self) -> Result<(), RunError> {
        let bad = |flag: &str, want: &str, got: String| {
            Err(RunError::Config(format!("{flag} must be {want}, got {got}")))
        };
        let non_negative = [
            ("--lr", self.lr_max),
            ("--lr-min", self.lr_min),
            ("--weight-decay", self.weight_decay),
            ("--arch-lr", self.arch_lr),
            ("--arch-weight-decay", self.arch_weight_decay),
        ];
        for (flag, v) in non_negative {
            // `!(v >= 0)` also catches NaN.
            if !(v >= 0.0 && v.is_finite()) {
                return bad(flag, "a finite number >= 0", v.to_string());
            }
        }
        if self.lr_min > self.lr_max {
            return bad("--lr-min", &format!("at most --lr ({})", self.lr_max), self.lr_min.to_string());
        }
        if !(0.0..1.0).contains(&self.momentum) {
            return bad("--momentum", "in [0, 1)", self.momentum.to_string());
        }
        if self.grad_clip.is_nan() || self.grad_clip <= 0.0 {
            return bad("--grad-clip", "> 0 (the largest gradient norm)", self.grad_clip.to_string());
        }
        let (b1, b2) = self.arch_betas;
        if !((0.0..1.0).contains(&b1) && (0.0..1.0).contains(&b2)) {
            return bad("--arch-betas", "two numbers in [0, 1) (β1,β2)", format!("{b1},{b2}"));
        }
        if self.cutout > MAX_CUTOUT {
            return bad(
                "--cutout",
                &format!("a side of at most {MAX_CUTOUT} pixels (0: none)"),
                self.cutout.to_string(),
            );
        }
        if self.report_freq == 0 {
            return bad("--report-freq", "at least 1 (log every N-th step)", "0".into());
        }
        Ok(())
    }

    /// The step's hyperparameters (order, SGD, clip, Adam) from this config.
    pub fn step_config(&self) -> StepConfig {
        StepConfig {
            order: self.order(),
            momentum: self.momentum,
            weight_decay: self.weight_decay,
            grad_clip: self.grad_clip,
            arch_lr: self.arch_lr,
            arch_betas: self.arch_betas,
            arch_weight_decay: self.arch_weight_decay,
            ..StepConfig::default()
        }
    }

    /// The run's samplers over its first `n_images` training images: the split at
    /// `train_portion`, and cutout (when set) on the weight batches only.
    pub fn samplers(&self, n_images: usize) -> Result<SearchSamplers, DataError> {
        let mut s = search_samplers(n_images, self.train_portion, self.batch, self.seed)?;
        // Validated: at most MAX_CUTOUT.
        s.train = s.train.with_cutout(self.cutout.min(MAX_CUTOUT) as u8);
        Ok(s)
    }
}
