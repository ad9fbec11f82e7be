//! The architecture of a search at one point, on the host: the method's logits (α, and PC-DARTS'
//! edge logits β) and what is read off them: each edge's op weights, the genotype, and the
//! `alphas/epoch_NNN.json` files the run writes and `darts plot` reads.
//!
//! Op weights per method, in [`PRIMITIVES`] slots (a row per edge):
//!
//! ```text
//! DARTS     w_e = softmax(α_e)
//! PC-DARTS  w_e = softmax(α_e);  the genotype ranks w_e · β̂_e, β̂ = softmax of β over each
//!           node's incoming edges (slices [0:2], [2:5], [5:9], [9:14])
//! FairDARTS w_e = σ(α_e) in slots 1..8 (α has no `none` column), slot 0 = 0
//! ```

use serde_json::{json, Value};

use super::genotype::{parse_cell, sigmoid_rows, softmax_rows, Genotype};
use crate::model::cell::{EDGES, STEPS};
use crate::model::fair;
use crate::model::{Method, PRIMITIVES};
use crate::nn::Store;

/// Slots per edge.
const K: usize = PRIMITIVES.len();

/// The architecture parameters of both cell types, as f64 on the host.
#[derive(Clone, Debug, PartialEq)]
pub struct ArchSnapshot {
    /// The method that reads them.
    pub method: Method,
    /// Normal-cell α, `[14, cols]` row-major (`cols` = [`ArchSnapshot::cols`]).
    pub alphas_normal: Vec<f64>,
    /// Reduction-cell α.
    pub alphas_reduce: Vec<f64>,
    /// PC-DARTS' normal-cell edge logits β `[14]` (empty for the other methods).
    pub betas_normal: Vec<f64>,
    /// PC-DARTS' reduction-cell β.
    pub betas_reduce: Vec<f64>,
}

/// α columns of a method: FairDARTS drops `none`.
pub fn alpha_cols(method: Method) -> usize {
    match method {
        Method::FairDarts => K - 1,
        _ => K,
    }
}

/// β̂: the softmax of β `[14]` over each node's incoming edges.
pub fn node_softmax(beta: &[f64]) -> Vec<f64> {
    assert_eq!(beta.len(), EDGES, "node_softmax: {} edge logits, want {EDGES}", beta.len());
    let mut out = vec![0.0; EDGES];
    crate::backend::cpu::pcdarts::node_softmax(STEPS, beta, &mut out);
    out
}

impl ArchSnapshot {
    /// The architecture parameters of `store` (by their reference names: `alphas_normal`,
    /// `alphas_reduce`, and PC-DARTS' `betas_normal`, `betas_reduce`).
    pub fn of_store(method: Method, store: &Store) -> ArchSnapshot {
        let get = |name: &str| -> Vec<f64> {
            let p =
                store.find(name).unwrap_or_else(|| panic!("ArchSnapshot: no parameter {name} for {method}"));
            store.params[p.0].value.to_f64_vec()
        };
        let pc = matches!(method, Method::PcDarts { .. });
        let betas = |name: &str| if pc { get(name) } else { Vec::new() };
        let s = ArchSnapshot {
            method,
            alphas_normal: get("alphas_normal"),
            alphas_reduce: get("alphas_reduce"),
            betas_normal: betas("betas_normal"),
            betas_reduce: betas("betas_reduce"),
        };
        s.check().unwrap_or_else(|e| panic!("ArchSnapshot: {e}"));
        s
    }

    /// α columns ([`alpha_cols`]).
    pub fn cols(&self) -> usize {
        alpha_cols(self.method)
    }

    fn check(&self) -> Result<(), String> {
        let want = EDGES * self.cols();
        for (name, a) in [("alphas_normal", &self.alphas_normal), ("alphas_reduce", &self.alphas_reduce)] {
            if a.len() != want {
                return Err(format!("{name} must be {want} numbers for {}, got {}", self.method, a.len()));
            }
        }
        let want_b = if matches!(self.method, Method::PcDarts { .. }) { EDGES } else { 0 };
        for (name, b) in [("betas_normal", &self.betas_normal), ("betas_reduce", &self.betas_reduce)] {
            if b.len() != want_b {
                return Err(format!("{name} must be {want_b} numbers for {}, got {}", self.method, b.len()));
            }
        }
        Ok(())
    }

    fn alphas(&self, reduce: bool) -> &[f64] {
        if reduce {
            &self.alphas_reduce
        } else {
            &self.alphas_normal
        }
    }

    /// Each edge's op weights in [`PRIMITIVES`] slots (see the module docs).
    pub fn op_weights(&self, reduce: bool) -> Vec<[f64; K]> {
        let a = self.alphas(reduce);
        match self.method {
            Method::Darts | Method::PcDarts { .. } => softmax_rows(a),
            Method::FairDarts => sigmoid_rows(a)
                .iter()
                .map(|r| std::array::from_fn(|k| if k == 0 { 0.0 } else { r[k - 1] }))
                .collect(),
        }
    }

    /// The weights the genotype ranks: the op weights, scaled by β̂ of the edge for PC-DARTS.
    pub fn ranked_weights(&self, reduce: bool) -> Vec<[f64; K]> {
        let mut w = self.op_weights(reduce);
        if let Method::PcDarts { .. } = self.method {
            let b = node_softmax(if reduce { &self.betas_reduce } else { &self.betas_normal });
            for (row, s) in w.iter_mut().zip(b) {
                row.iter_mut().for_each(|v| *v *= s);
            }
        }
        w
    }

    /// The genotype by the method's rule: DARTS' top-2 rule on the ranked weights, or
    /// FairDARTS' threshold rule (σ ≥ [`fair::THRESHOLD`], a sparse genotype).
    pub fn genotype(&self) -> Genotype {
        if self.method == Method::FairDarts {
            return Genotype::from_alphas_sparse(&self.alphas_normal, &self.alphas_reduce, fair::THRESHOLD);
        }
        let concat: Vec<usize> = (2..2 + STEPS).collect();
        Genotype {
            normal: parse_cell(&self.ranked_weights(false)),
            normal_concat: concat.clone(),
            reduce: parse_cell(&self.ranked_weights(true)),
            reduce_concat: concat,
            ..Default::default()
        }
    }

    /// The edges (rows of α) the genotype keeps in a cell type.
    pub fn kept_edges(&self, reduce: bool) -> Vec<usize> {
        let first_edge = |node: usize| (0..node - 2).map(|n| n + 2).sum::<usize>();
        self.genotype().triples(reduce).iter().map(|(_, node, j)| first_edge(*node) + j).collect()
    }

    /// The `alphas/epoch_NNN.json` object: `{"epoch", "method", "alphas_normal",
    /// "alphas_reduce"}` (DARTS' files are unchanged), with `betas_normal`/`betas_reduce` for
    /// PC-DARTS. The method's name is written for the other methods only.
    pub fn to_json(&self, epoch: usize) -> Value {
        let mut v =
            json!({"epoch": epoch, "alphas_normal": self.alphas_normal, "alphas_reduce": self.alphas_reduce});
        if self.method != Method::Darts {
            v["method"] = self.method.name().into();
        }
        if let Method::PcDarts { k } = self.method {
            v["pc_k"] = k.into();
            v["betas_normal"] = json!(self.betas_normal);
            v["betas_reduce"] = json!(self.betas_reduce);
        }
        v
    }

    /// Reads [`ArchSnapshot::to_json`]'s object: its epoch and the snapshot (DARTS when it names
    /// no method). The error says what is missing or malformed.
    pub fn from_json(v: &Value) -> Result<(usize, ArchSnapshot), String> {
        let name = v["method"].as_str().unwrap_or("darts");
        let k = v["pc_k"].as_u64().unwrap_or(crate::model::method::PC_K as u64) as usize;
        let method = Method::from_name(name, k)
            .ok_or_else(|| format!("unknown method {name:?} (expected one of {:?})", Method::NAMES))?;
        let list = |key: &str| -> Result<Vec<f64>, String> {
            match &v[key] {
                Value::Null => Ok(Vec::new()),
                a => a
                    .as_array()
                    .and_then(|a| a.iter().map(|x| x.as_f64()).collect())
                    .ok_or_else(|| format!("{key} must be a list of numbers")),
            }
        };
        let epoch = v["epoch"].as_u64().ok_or("no epoch number")? as usize;
        let s = ArchSnapshot {
            method,
            alphas_normal: list("alphas_normal")?,
            alphas_reduce: list("alphas_reduce")?,
            betas_normal: list("betas_normal")?,
            betas_reduce: list("betas_reduce")?,
        };
        s.check()?;
        Ok((epoch, s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pc_darts_ranks_edges_by_beta() {
        // Equal α everywhere: the op is max_pool (first non-none) on every edge, and the edges
        // kept are those β prefers.
        let a = vec![0.0; EDGES * K];
        let mut b = vec![0.0; EDGES];
        b[4] = 2.0; // node 1: input 2
        b[3] = 1.0; // node 1: input 1
        let s = ArchSnapshot {
            method: Method::PcDarts { k: 4 },
            alphas_normal: a.clone(),
            alphas_reduce: a,
            betas_normal: b,
            betas_reduce: vec![0.0; EDGES],
        };
        let g = s.genotype();
        assert_eq!(g.normal[2], ("max_pool_3x3".into(), 2));
        assert_eq!(g.normal[3], ("max_pool_3x3".into(), 1));
        assert_eq!(g.reduce[2], ("max_pool_3x3".into(), 0));
        let (epoch, back) = ArchSnapshot::from_json(&s.to_json(7)).unwrap();
        assert_eq!((epoch, back), (7, s));
    }

    #[test]
    fn fair_darts_weights_are_sigmoids_without_none() {
        let mut a = vec![0.0; EDGES * (K - 1)];
        a[0] = 2.0; // edge 0, column 0 = max_pool_3x3 (slot 1)
        let s = ArchSnapshot {
            method: Method::FairDarts,
            alphas_normal: a.clone(),
            alphas_reduce: a,
            betas_normal: vec![],
            betas_reduce: vec![],
        };
        let w = s.op_weights(false);
        assert_eq!(w[0][0], 0.0);
        assert!((w[0][1] - 1.0 / (1.0 + (-2.0f64).exp())).abs() < 1e-15);
        assert_eq!(w[1][3], 0.5);
        let darts_json =
            ArchSnapshot::from_json(&json!({"epoch": 0, "alphas_normal": [0.0], "alphas_reduce": []}));
        assert!(darts_json.unwrap_err().contains("alphas_normal must be 112 numbers for darts"));
    }
}
