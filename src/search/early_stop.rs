//! DARTS-ES, RobustDARTS' early stop on the dominant Hessian eigenvalue λ_max (`EVLocalAvg` of
//! its `utils.py`):
//!
//! ```text
//! λ_0, λ_1, ...   evaluations at epochs e_0 < e_1 < ... (every `--hessian-every` epochs)
//! la(c)           mean of λ_k over k ∈ [c − h, c + h] ∩ [0, n), h = ⌊window / 2⌋: a local average
//!                 centred on evaluation c, known once evaluation c + h exists (truncated at the
//!                 start, as the reference's)
//! stop            at the evaluation that makes la(c) known, with p = c − delta:
//!                 e_p ≥ start_epoch and la(c) / la(p) > factor
//!                 → the search ends and returns the genotype of epoch e_p
//! ```
//!
//! The defaults are RobustDARTS': window 5, delta 4 evaluations, factor 1.3, start epoch 10.

/// The rule's parameters.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EarlyStopRule {
    /// Evaluations averaged (odd).
    pub window: usize,
    /// How many evaluations back the comparison looks.
    pub delta: usize,
    /// The growth ratio that stops the search.
    pub factor: f64,
    /// Earliest epoch the search may be rolled back to.
    pub start_epoch: usize,
}

impl Default for EarlyStopRule {
    fn default() -> Self {
        EarlyStopRule { window: 5, delta: 4, factor: 1.3, start_epoch: 10 }
    }
}

/// The evaluations so far and the rule's verdict.
#[derive(Clone, Debug, Default)]
pub struct EarlyStop {
    rule: EarlyStopRule,
    epochs: Vec<usize>,
    values: Vec<f64>,
    averages: Vec<f64>,
}

impl EarlyStop {
    /// An empty record under `rule`.
    pub fn new(rule: EarlyStopRule) -> EarlyStop {
        assert!(
            rule.window % 2 == 1 && rule.window > 0,
            "EarlyStop: the window must be odd, got {}",
            rule.window
        );
        EarlyStop { rule, ..Default::default() }
    }

    /// The rule.
    pub fn rule(&self) -> EarlyStopRule {
        self.rule
    }

    /// The local averages known so far, la(0), la(1), ...
    pub fn averages(&self) -> &[f64] {
        &self.averages
    }

    /// Records λ_max evaluated at the end of `epoch`; returns the epoch to stop at (whose
    /// genotype the search returns) when the rule fires now.
    pub fn record(&mut self, epoch: usize, lambda: f64) -> Option<usize> {
        self.epochs.push(epoch);
        self.values.push(lambda);
        let h = self.rule.window / 2;
        let n = self.values.len();
        if n <= h {
            return None;
        }
        let c = n - 1 - h;
        let window = &self.values[c.saturating_sub(h)..n];
        self.averages.push(window.iter().sum::<f64>() / window.len() as f64);
        debug_assert_eq!(self.averages.len(), c + 1);
        let p = c.checked_sub(self.rule.delta)?;
        let fires =
            self.epochs[p] >= self.rule.start_epoch && self.averages[c] / self.averages[p] > self.rule.factor;
        fires.then_some(self.epochs[p])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One evaluation every 2 epochs, flat at 1 up to epoch 20, then growing 20% per
    /// evaluation. Worked by hand (window 5, h = 2, delta 4, factor 1.3, start epoch 10):
    /// evaluation k is at epoch 2k; λ_k = 1 for k ≤ 10, 1.2^(k − 10) after.
    /// la(c) is known at evaluation c + 2; p = c − 4 needs epoch 2p ≥ 10, so p ≥ 5, c ≥ 9.
    /// la(9)  = mean(λ_7..λ_11) = (4 + 1.2) / 5 = 1.04;        la(5) = 1 → 1.04 (no)
    /// la(10) = mean(λ_8..λ_12) = (3 + 1.2 + 1.44) / 5 = 1.128 → no
    /// la(11) = (2 + 1.2 + 1.44 + 1.728) / 5 = 1.2736            → no
    /// la(12) = (1 + 1.2 + 1.44 + 1.728 + 2.0736) / 5 = 1.48832 → la(12) / la(8) = 1.488 > 1.3:
    /// the rule fires at evaluation 14 (epoch 28) and returns epoch 2 · 8 = 16.
    #[test]
    fn the_rule_stops_where_the_hand_computation_says() {
        let mut es = EarlyStop::new(EarlyStopRule::default());
        let lambda = |k: i32| if k <= 10 { 1.0 } else { 1.2f64.powi(k - 10) };
        let mut fired = None;
        for k in 0..25 {
            if let Some(stop) = es.record(2 * k as usize, lambda(k)) {
                fired = Some((k, stop));
                break;
            }
        }
        assert_eq!(fired, Some((14, 16)));
        let la = es.averages();
        assert!((la[9] - 1.04).abs() < 1e-12 && (la[12] - 1.48832).abs() < 1e-12, "{la:?}");
        // The first averages are truncated at the start: la(0) = mean(λ_0..λ_2).
        assert_eq!(la[0], 1.0);
    }

    /// A growth that would fire, but only before the start epoch: no stop.
    #[test]
    fn no_stop_before_the_start_epoch() {
        let mut es = EarlyStop::new(EarlyStopRule { start_epoch: 100, ..Default::default() });
        for k in 0..30 {
            assert_eq!(es.record(k, 1.5f64.powi(k as i32)), None);
        }
        // The same series with the default rule stops as soon as p reaches epoch 10.
        let mut es = EarlyStop::new(EarlyStopRule::default());
        let stop = (0..30).find_map(|k| es.record(k, 1.5f64.powi(k as i32)));
        assert_eq!(stop, Some(10));
    }
}
