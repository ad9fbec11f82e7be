//! RobustDARTS in a search run: λ_max of the α-Hessian every `--hessian-every` epochs on one
//! fixed validation batch (the first `batch` images of the validation split, normalised, no
//! augmentation), logged as `diagnostics.lambda_max` of the epoch line, and DARTS-ES (`--early-stop`): when the rule fires,
//! the search ends and returns the genotype of the epoch it rolls back to.

use super::early_stop::{EarlyStop, EarlyStopRule};
use super::hessian::{dominant_eigenvalue, AlphaHessian, Eigen, HessianOpts};
use super::step::SearchState;
use crate::data::{eval_batches, CifarSet};
use crate::tensor::{DType, Device, Tensor};

/// What a search does with the Hessian.
pub struct Robust {
    every: usize,
    early: Option<EarlyStop>,
    x: Tensor,
    labels: Vec<u32>,
    opts: HessianOpts,
}

/// The outcome of an epoch's end.
#[derive(Clone, Copy, Debug, Default)]
pub struct EpochVerdict {
    /// λ_max, when evaluated this epoch.
    pub eigen: Option<Eigen>,
    /// The epoch DARTS-ES stops at (whose genotype the search returns), when it fired.
    pub stop_at: Option<usize>,
}

impl Robust {
    /// λ_max every `every` epochs (0: never) on the first `batch` images of `val` in `set`, on
    /// `device`; with `early_stop`, DARTS-ES with RobustDARTS' defaults. `l2`: the architecture
    /// weight decay, added to the Hessian's diagonal as RobustDARTS does.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        every: usize,
        early_stop: bool,
        set: &CifarSet,
        val: std::ops::Range<usize>,
        batch: usize,
        dtype: DType,
        device: &Device,
        l2: f64,
        seed: u64,
    ) -> Option<Robust> {
        if every == 0 {
            return None;
        }
        let end = (val.start + batch).min(val.end);
        let b = eval_batches(set, val.start..end, batch, dtype).next().expect("a validation batch");
        // Central differences along a unit direction: ε = 1e-2 keeps f32 roundoff well below the
        // second-order signal; f64 affords a finer step.
        let eps = if dtype == DType::F64 { 1e-5 } else { 1e-2 };
        let opts = HessianOpts { eps, l2, max_iters: 20, tol: 1e-3, seed };
        Some(Robust {
            every,
            early: early_stop.then(|| EarlyStop::new(EarlyStopRule::default())),
            x: b.images.to_device(device),
            labels: b.labels,
            opts,
        })
    }

    /// Feeds the λ_max of the epochs before a resume (from the run's log) to DARTS-ES.
    pub fn restore(&mut self, history: &[(usize, f64)]) {
        if let Some(es) = &mut self.early {
            for &(epoch, lambda) in history {
                es.record(epoch, lambda);
            }
        }
    }

    /// At the end of `epoch` (0-based): λ_max if this is an evaluation epoch, and DARTS-ES'
    /// verdict.
    pub fn epoch_end(&mut self, epoch: usize, state: &SearchState) -> EpochVerdict {
        if (epoch + 1) % self.every != 0 {
            return EpochVerdict::default();
        }
        let mut h = AlphaHessian::new(&state.net, &state.store, &self.x, &self.labels, self.opts);
        let eigen = dominant_eigenvalue(&mut h);
        let stop_at = self.early.as_mut().and_then(|es| es.record(epoch, eigen.lambda_max));
        EpochVerdict { eigen: Some(eigen), stop_at }
    }
}

/// The (epoch, λ_max) pairs of a run's `log.jsonl` epoch lines (`diagnostics.lambda_max`).
pub fn lambda_history(log: &str) -> Vec<(usize, f64)> {
    log.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["kind"] == "epoch")
        .filter_map(|v| Some((v["epoch"].as_u64()? as usize, v["diagnostics"]["lambda_max"].as_f64()?)))
        .collect()
}
