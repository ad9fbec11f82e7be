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
    /// Every (epoch, λ_max) the rule has seen, for a rollback (DARTS-ADA).
    history: Vec<(usize, f64)>,
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
    /// `device`; with `early_stop`, DARTS-ES under that rule. `l2`: the architecture
    /// weight decay, added to the Hessian's diagonal as RobustDARTS does.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        every: usize,
        early_stop: Option<EarlyStopRule>,
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
            early: early_stop.map(EarlyStop::new),
            history: Vec::new(),
            x: b.images.to_device(device),
            labels: b.labels,
            opts,
        })
    }

    /// Feeds the λ_max of the epochs before a resume (from the run's log) to DARTS-ES.
    pub fn restore(&mut self, history: &[(usize, f64)]) {
        for &(epoch, lambda) in history {
            self.record(epoch, lambda);
        }
    }

    fn record(&mut self, epoch: usize, lambda: f64) -> Option<usize> {
        self.history.push((epoch, lambda));
        self.early.as_mut().and_then(|es| es.record(epoch, lambda))
    }

    /// Forgets the evaluations after `epoch` (DARTS-ADA rolled the search back to it): the rule
    /// starts over from the evaluations up to it.
    pub fn rollback(&mut self, epoch: usize) {
        let kept: Vec<(usize, f64)> = self.history.iter().copied().filter(|&(e, _)| e <= epoch).collect();
        self.history.clear();
        if let Some(es) = &mut self.early {
            *es = EarlyStop::new(es.rule());
        }
        self.restore(&kept);
    }

    /// At the end of `epoch` (0-based): λ_max if this is an evaluation epoch, and DARTS-ES'
    /// verdict.
    pub fn epoch_end(&mut self, epoch: usize, state: &SearchState) -> EpochVerdict {
        if (epoch + 1) % self.every != 0 {
            return EpochVerdict::default();
        }
        // The Hessian of the loss itself: no drop path (power iteration needs one function).
        let mut net = state.net.clone();
        net.drop_path = None;
        let mut h = AlphaHessian::new(&net, &state.store, &self.x, &self.labels, self.opts);
        let eigen = dominant_eigenvalue(&mut h);
        let stop_at = self.record(epoch, eigen.lambda_max);
        EpochVerdict { eigen: Some(eigen), stop_at }
    }
}

/// The (epoch, λ_max) pairs of a run's `log.jsonl` epoch lines (`diagnostics.lambda_max`) that
/// still stand: a DARTS-ADA line (`kind: "ada"`) discards those after its `rollback_to` epoch.
pub fn lambda_history(log: &str) -> Vec<(usize, f64)> {
    let mut h: Vec<(usize, f64)> = Vec::new();
    for v in log.lines().filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok()) {
        if v["kind"] == "ada" {
            if let Some(r) = v["rollback_to"].as_u64() {
                h.retain(|&(e, _)| e <= r as usize);
            }
        } else if v["kind"] == "epoch" {
            if let (Some(e), Some(l)) = (v["epoch"].as_u64(), v["diagnostics"]["lambda_max"].as_f64()) {
                h.push((e as usize, l));
            }
        }
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lambda_history_drops_what_ada_rolled_back() {
        let log = [
            r#"{"kind":"epoch","epoch":0,"diagnostics":{"lambda_max":1.0}}"#,
            r#"{"kind":"step","epoch":1}"#,
            r#"{"kind":"epoch","epoch":1,"diagnostics":{"lambda_max":2.0}}"#,
            r#"{"kind":"epoch","epoch":2,"diagnostics":{"lambda_max":3.0}}"#,
            r#"{"kind":"ada","epoch":2,"rollback_to":0,"weight_decay":0.003}"#,
            r#"{"kind":"epoch","epoch":1,"diagnostics":{"lambda_max":1.5}}"#,
            r#"{"kind":"epoch","epoch":2,"diagnostics":{}}"#,
        ]
        .join("\n");
        assert_eq!(lambda_history(&log), vec![(0, 1.0), (1, 1.5)]);
    }
}
