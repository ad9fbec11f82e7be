//! Collapse diagnostics of a search, read off the alphas on the host (no device work): how many
//! `skip_connect` and parameter-free ops the derived cells hold, and how undecided each edge's
//! softmax still is. DARTS' known failure (RobustDARTS, Zela et al. 2020; the reference notes
//! §6.5) is a normal cell that fills up with skip connections as the search goes on, while
//! the edge weights stay close to uniform; these numbers show it epoch by epoch.
//!
//! The run logs them as the `diagnostics` object of each `kind: "epoch"` line of `log.jsonl`
//! ([`Diagnostics::to_json`]). Other per-epoch measures of collapse join that object under their
//! own key when a run computes them: RobustDARTS' largest Hessian eigenvalue of the validation
//! loss w.r.t. α goes under `lambda_max` (a number), which `darts plot` draws when present.

use serde::Serialize;

use super::arch::ArchSnapshot;
use super::genotype::{parse_cell, softmax_rows};

/// The ops without weights. `none` is never chosen by the derivation (it is excluded), but is
/// counted should a derivation ever keep it.
pub const PARAMETER_FREE: [&str; 4] = ["none", "max_pool_3x3", "avg_pool_3x3", "skip_connect"];

/// The diagnostics of one cell type.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CellDiagnostics {
    /// `skip_connect` genes in the derived cell (0..=8).
    pub skip_connect: usize,
    /// Genes whose op is in [`PARAMETER_FREE`] (0..=8).
    pub parameter_free: usize,
    /// Per edge (14, in the alphas' row order), the entropy in nats of its softmax weights:
    /// ln 8 ≈ 2.079 for uniform weights, 0 for a one-hot row.
    pub entropy: Vec<f64>,
    /// The mean of `entropy`.
    pub mean_entropy: f64,
}

/// The diagnostics of both cell types at one point of a search.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Diagnostics {
    /// The normal cell.
    pub normal: CellDiagnostics,
    /// The reduction cell.
    pub reduce: CellDiagnostics,
}

impl CellDiagnostics {
    /// The diagnostics of a cell from its alpha logits (`[14, 8]`, row-major), with the genes
    /// derived exactly as the genotype is ([`parse_cell`]).
    pub fn from_alphas(alpha: &[f64]) -> CellDiagnostics {
        let w = softmax_rows(alpha);
        let genes = parse_cell(&w);
        CellDiagnostics::from_weights(&w, &genes)
    }

    /// The diagnostics of a cell from each edge's op weights (`[14][8]`, PRIMITIVES slots) and
    /// its derived genes. The entropy is that of each row normalised to sum 1 (FairDARTS'
    /// sigmoids do not sum to 1; softmax rows already do).
    pub fn from_weights(w: &[[f64; 8]], genes: &[(String, usize)]) -> CellDiagnostics {
        let count = |pred: &dyn Fn(&str) -> bool| genes.iter().filter(|(op, _)| pred(op)).count();
        let entropy: Vec<f64> = w
            .iter()
            .map(|row| {
                let s: f64 = row.iter().sum();
                entropy(&row.map(|v| if s > 0.0 { v / s } else { 0.0 }))
            })
            .collect();
        let mean_entropy = entropy.iter().sum::<f64>() / entropy.len() as f64;
        CellDiagnostics {
            skip_connect: count(&|op| op == "skip_connect"),
            parameter_free: count(&|op| PARAMETER_FREE.contains(&op)),
            entropy,
            mean_entropy,
        }
    }
}

impl Diagnostics {
    /// The diagnostics of normal and reduction alpha logits (`[14, 8]` each, row-major).
    pub fn from_alphas(normal: &[f64], reduce: &[f64]) -> Diagnostics {
        Diagnostics {
            normal: CellDiagnostics::from_alphas(normal),
            reduce: CellDiagnostics::from_alphas(reduce),
        }
    }

    /// The diagnostics of any method's architecture: its op weights and its genotype.
    pub fn from_arch(a: &ArchSnapshot) -> Diagnostics {
        let g = a.genotype();
        Diagnostics {
            normal: CellDiagnostics::from_weights(&a.op_weights(false), &g.normal),
            reduce: CellDiagnostics::from_weights(&a.op_weights(true), &g.reduce),
        }
    }

    /// The `diagnostics` object of an epoch line: `{"normal": {"skip_connect": .., "parameter_free":
    /// .., "entropy": [14], "mean_entropy": ..}, "reduce": {..}}`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("diagnostics serialise")
    }
}

/// −Σ p ln p in nats (0 ln 0 = 0).
pub fn entropy(p: &[f64]) -> f64 {
    -p.iter().filter(|&&v| v > 0.0).map(|&v| v * v.ln()).sum::<f64>()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::cell::EDGES;

    /// Logits of a cell whose derived genes are known: every edge strongly prefers `op_of(edge)`
    /// and the first two inputs of each node are strongest.
    fn cell(op_of: impl Fn(usize) -> usize) -> Vec<f64> {
        let mut a = vec![0.0; EDGES * 8];
        let mut start = 0;
        for node in 0..4 {
            for j in 0..node + 2 {
                let e = start + j;
                // Inputs 0 and 1 of each node get the larger logit, so they are kept.
                a[e * 8 + op_of(e)] = if j < 2 { 6.0 } else { 3.0 };
            }
            start += node + 2;
        }
        a
    }

    #[test]
    fn counts_follow_the_derived_genes() {
        // Kept edges (inputs 0 and 1 of nodes 0..3) are rows 0, 1, 2, 3, 5, 6, 9, 10. Make three of
        // them skip_connect, one max_pool and one avg_pool, the rest convolutions; the dropped
        // edges all prefer skip_connect and must not count.
        let kept_ops = [(0, 3), (1, 4), (2, 3), (3, 1), (5, 5), (6, 3), (9, 2), (10, 7)];
        let op_of = |e: usize| kept_ops.iter().find(|(k, _)| *k == e).map_or(3, |&(_, op)| op);
        let d = CellDiagnostics::from_alphas(&cell(op_of));
        assert_eq!(d.skip_connect, 3);
        assert_eq!(d.parameter_free, 5);
        let genes = parse_cell(&softmax_rows(&cell(op_of)));
        assert_eq!(genes.iter().filter(|(op, _)| op == "skip_connect").count(), 3);
    }

    #[test]
    fn entropy_of_uniform_and_one_hot_rows() {
        let uniform = CellDiagnostics::from_alphas(&vec![0.0; EDGES * 8]);
        assert_eq!(uniform.entropy.len(), EDGES);
        for h in &uniform.entropy {
            assert!((h - 8f64.ln()).abs() < 1e-12, "{h}");
        }
        assert!((uniform.mean_entropy - 8f64.ln()).abs() < 1e-12);
        // A logit of 30 over seven zeros: p ≈ 1 − 7e-13, entropy ≈ 2e-11.
        let sharp = CellDiagnostics::from_alphas(&cell(|_| 4).iter().map(|v| v * 5.0).collect::<Vec<_>>());
        assert!(sharp.entropy[0] < 1e-9, "{}", sharp.entropy[0]);
        assert!(sharp.entropy[0] >= 0.0);
        assert_eq!((sharp.skip_connect, sharp.parameter_free), (0, 0));
        assert_eq!(entropy(&[0.5, 0.5, 0.0]), 2f64.ln());
    }

    /// A renamed primitive would silently stop being counted.
    #[test]
    fn parameter_free_ops_are_primitives() {
        for op in PARAMETER_FREE {
            assert!(crate::model::PRIMITIVES.contains(&op), "{op}");
        }
    }

    #[test]
    fn json_has_both_cells_and_no_absent_measures() {
        let a = vec![0.0; EDGES * 8];
        let v = Diagnostics::from_alphas(&a, &a).to_json();
        assert_eq!(v["normal"]["entropy"].as_array().unwrap().len(), EDGES);
        // All-equal weights: every gene is max_pool_3x3 (the first op after none).
        assert_eq!(v["reduce"]["parameter_free"], 8);
        assert_eq!(v["reduce"]["skip_connect"], 0);
        let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["normal", "reduce"], "no lambda_max unless a run computes one");
    }
}
