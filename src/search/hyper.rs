//! The search's optimisation hyperparameters in a [`SearchConfig`]: their defaults (the
//! reference `train_search.py`'s, also used for config.json files written before a field
//! existed), their validation, and what they configure (the step's optimisers, the samplers).
//!
//! Error messages name the `darts search` flag that sets each field.

use super::run::{RunError, SearchConfig};
use super::step::StepConfig;
use crate::data::{search_samplers, DataError, SearchSamplers};
use crate::model::method::PC_K;
use crate::model::Method;

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

/// Default method (`darts`).
pub fn method() -> String {
    Method::Darts.name().into()
}
/// Default PC-DARTS channel proportion (4).
pub fn pc_k() -> usize {
    PC_K
}
/// DARTS-ADA's default weight-decay factor (10, RobustDARTS' ADA script).
pub fn ada_factor() -> f64 {
    10.0
}
/// DARTS-ADA's default weight-decay cap (0.03, RobustDARTS' ADA script).
pub fn ada_max_weight_decay() -> f64 {
    0.03
}

/// A method's published search recipe on a preset's shape. The paper-shape values are the
/// methods' code defaults (the reference notes, section 6); `cpu-small` keeps its narrow
/// network and epoch count and scales the batch and the warm-up in proportion:
///
/// | method | batch | lr → lr_min | arch lr, betas | other |
/// | --- | --- | --- | --- | --- |
/// | darts | 64 | 0.025 → 0.001 | 3e-4, (0.5, 0.999) | |
/// | pc-darts | 256 (4× DARTS') | 0.1 → 0 | 6e-4, (0.5, 0.999) | α frozen 15 of 50 epochs |
/// | fair-darts | 128 (2× DARTS') | 0.005 → 0.001 | 3e-3, (0.9, 0.999) | zero-one loss × 10 |
pub fn recipe(shape: SearchConfig, method: Method) -> SearchConfig {
    let c = SearchConfig { method: method.name().into(), ..shape };
    match method {
        Method::Darts => c,
        Method::PcDarts { k } => SearchConfig {
            pc_k: k,
            batch: 4 * c.batch,
            lr_max: 0.1,
            lr_min: 0.0,
            arch_lr: 6e-4,
            // 15 of 50 epochs.
            arch_warmup: (c.epochs * 15).div_ceil(50),
            ..c
        },
        Method::FairDarts => SearchConfig {
            batch: 2 * c.batch,
            lr_max: 0.005,
            lr_min: 0.001,
            arch_lr: 3e-3,
            arch_betas: (0.9, 0.999),
            zero_one_weight: 10.0,
            ..c
        },
    }
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
        let Some(method) = Method::from_name(&self.method, self.pc_k) else {
            return bad(
                "--method",
                &format!("one of {}", Method::NAMES.join(", ")),
                format!("{:?}", self.method),
            );
        };
        if let Method::PcDarts { k } = method {
            if k == 0 || self.channels % k != 0 {
                return bad(
                    "--pc-k",
                    &format!(
                        "a divisor of --channels ({}): 1/k of each edge's channels go through its ops",
                        self.channels
                    ),
                    k.to_string(),
                );
            }
        }
        if self.zero_one_weight > 0.0 && self.order() == super::step::Order::Second {
            return bad(
                "--order",
                "first with the zero-one loss (FairDARTS is first order: the unrolled gradient has no zero-one term)",
                "second".into(),
            );
        }
        if self.arch_warmup > self.epochs {
            return bad(
                "--arch-warmup",
                &format!("at most --epochs ({})", self.epochs),
                self.arch_warmup.to_string(),
            );
        }
        if !(self.zero_one_weight >= 0.0 && self.zero_one_weight.is_finite()) {
            return bad("--zero-one-weight", "a finite number >= 0", self.zero_one_weight.to_string());
        }
        if !(0.0..1.0).contains(&self.drop_path) {
            return bad("--drop-path", "a probability in [0, 1)", self.drop_path.to_string());
        }
        if self.ada {
            if self.hessian_every == 0 {
                return bad(
                    "--ada",
                    "used with --hessian-every N (the eigenvalues it watches)",
                    "no --hessian-every".into(),
                );
            }
            if self.early_stop {
                return bad(
                    "--ada",
                    "used without --early-stop (ADA continues where DARTS-ES stops)",
                    "both".into(),
                );
            }
            if !(self.ada_factor > 1.0 && self.ada_factor.is_finite()) {
                return bad("--ada-factor", "a finite number > 1", self.ada_factor.to_string());
            }
            if !(self.ada_max_weight_decay >= self.weight_decay && self.ada_max_weight_decay.is_finite()) {
                return bad(
                    "--ada-max-weight-decay",
                    &format!("at least --weight-decay ({})", self.weight_decay),
                    self.ada_max_weight_decay.to_string(),
                );
            }
        }
        let r = &self.es_rule;
        if r.window % 2 == 0 {
            return bad("--es-window", "odd (a window centred on an evaluation)", r.window.to_string());
        }
        if r.delta == 0 {
            return bad("--es-delta", "at least 1 (evaluations back)", "0".into());
        }
        if !(r.factor > 0.0 && r.factor.is_finite()) {
            return bad("--es-factor", "a finite number > 0", r.factor.to_string());
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
            zero_one_weight: self.zero_one_weight,
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
