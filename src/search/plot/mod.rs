//! Plots of a search run as hand-written SVG (`darts plot`, and at every epoch end of a
//! search): how each edge's softmax weights moved over the epochs, and the collapse diagnostics
//! ([`super::diagnostics`]) per epoch.
//!
//! Inputs: `RUN/alphas/epoch_NNN.json` (the alphas after each epoch) and, for measures only the
//! log holds (`diagnostics.lambda_max` of the epoch lines), `RUN/log.jsonl`. The skip counts
//! and entropies are recomputed from the alphas with the function the run logs them with, so
//! runs written before the log carried them plot too. Outputs: `alphas_normal.svg`,
//! `alphas_reduce.svg`, `diagnostics.svg`.

pub mod svg;

use std::collections::BTreeMap;
use std::fmt::Write;
use std::fs;
use std::path::{Path, PathBuf};

use super::arch::ArchSnapshot;
use super::diagnostics::Diagnostics;
use super::run::{io, write_file, RunError};
use crate::model::cell::STEPS;
use crate::model::Method;
use crate::model::PRIMITIVES;
use svg::{header, legend, text, ticks, Axes};

/// The colour and dash style of each op in [`PRIMITIVES`] order, the same in every plot.
pub const OP_STYLES: [(&str, &str); 8] = [
    ("#7f7f7f", " stroke-dasharray=\"4 3\""), // none
    ("#1f77b4", ""),                          // max_pool_3x3
    ("#17becf", ""),                          // avg_pool_3x3
    ("#d62728", ""),                          // skip_connect
    ("#2ca02c", ""),                          // sep_conv_3x3
    ("#ff7f0e", ""),                          // sep_conv_5x5
    ("#9467bd", ""),                          // dil_conv_3x3
    ("#8c564b", ""),                          // dil_conv_5x5
];

/// One line of a chart: legend name, colour, extra SVG style attributes, data points.
type Series<'a> = (&'a str, &'a str, &'a str, Vec<(f64, f64)>);

const DASHED: &str = " stroke-dasharray=\"6 3\"";

/// The architecture after one epoch.
#[derive(Clone, Debug, PartialEq)]
pub struct EpochAlphas {
    /// The epoch (0-based, as in the file name).
    pub epoch: usize,
    /// The method's logits.
    pub arch: ArchSnapshot,
}

/// What the plots are drawn from.
#[derive(Clone, Debug, Default)]
pub struct History {
    /// The alphas per epoch, in epoch order.
    pub alphas: Vec<EpochAlphas>,
    /// `(epoch, λ_max)` of the epoch lines that carry one, in epoch order.
    pub lambda_max: Vec<(usize, f64)>,
}

/// Reads a run's alphas files and its log. Errors when there are no alphas files (no epoch
/// finished yet) or one is malformed; log lines that do not parse (a run killed mid-write) are
/// skipped, and a missing log only means no λ_max.
pub fn read_history(run: &Path) -> Result<History, RunError> {
    let dir = run.join("alphas");
    if !dir.is_dir() {
        return Err(RunError::Config(format!("{}: no alphas/ directory: not a search run", run.display())));
    }
    let mut alphas = BTreeMap::new();
    for entry in io(&dir, fs::read_dir(&dir))? {
        let path = io(&dir, entry)?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if !(name.starts_with("epoch_") && name.ends_with(".json")) {
            continue;
        }
        let a = read_alphas(&path)?;
        alphas.insert(a.epoch, a);
    }
    if alphas.is_empty() {
        return Err(RunError::Config(format!(
            "{}: no epoch_NNN.json: the run has not finished an epoch yet",
            dir.display()
        )));
    }
    let mut lambda = BTreeMap::new();
    if let Ok(log) = fs::read_to_string(run.join("log.jsonl")) {
        // Only lines that mention it can hold it; the step lines are most of the log.
        for line in log.lines().filter(|l| l.contains("lambda_max")) {
            let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else { continue };
            if let (Some("epoch"), Some(e), Some(l)) =
                (v["kind"].as_str(), v["epoch"].as_u64(), v["diagnostics"]["lambda_max"].as_f64())
            {
                lambda.insert(e as usize, l);
            }
        }
    }
    Ok(History { alphas: alphas.into_values().collect(), lambda_max: lambda.into_iter().collect() })
}

fn read_alphas(path: &Path) -> Result<EpochAlphas, RunError> {
    let text = io(path, fs::read_to_string(path))?;
    let bad = |what: &str| RunError::Config(format!("{}: {what}", path.display()));
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| bad(&e.to_string()))?;
    let (epoch, arch) = ArchSnapshot::from_json(&v).map_err(|e| bad(&e))?;
    Ok(EpochAlphas { epoch, arch })
}

/// Writes the three plots of `run` into `out` (created if needed) and returns their paths.
pub fn plot_run(run: &Path, out: &Path) -> Result<Vec<PathBuf>, RunError> {
    let h = read_history(run)?;
    io(out, fs::create_dir_all(out))?;
    let files = [
        ("alphas_normal.svg", alphas_svg(&h.alphas, false)),
        ("alphas_reduce.svg", alphas_svg(&h.alphas, true)),
        ("diagnostics.svg", diagnostics_svg(&h)),
    ];
    let mut written = Vec::new();
    for (name, svg) in files {
        let p = out.join(name);
        write_file(&p, &svg)?;
        written.push(p);
    }
    Ok(written)
}

/// The epoch axis: the data range and its ticks (a single epoch gets a unit-wide range).
fn epoch_axis(epochs: impl Iterator<Item = usize> + Clone) -> ((f64, f64), Vec<f64>) {
    let lo = epochs.clone().min().unwrap_or(0) as f64;
    let hi = epochs.max().unwrap_or(0) as f64;
    let range = if hi > lo { (lo, hi) } else { (lo - 0.5, lo + 0.5) };
    (range, ticks(range.0, range.1, 5, true))
}

fn input_name(j: usize) -> String {
    match j {
        0 => "c_{k-2}".into(),
        1 => "c_{k-1}".into(),
        n => format!("node {}", n - 2),
    }
}

/// Small multiples of one cell type's softmax weights over the epochs: a panel per edge (a row
/// per node, a column per input), a line per op. Bold frames mark the edges the last epoch's
/// genotype keeps.
pub fn alphas_svg(epochs: &[EpochAlphas], reduce: bool) -> String {
    let weights: Vec<Vec<[f64; 8]>> = epochs.iter().map(|a| a.arch.op_weights(reduce)).collect();
    let kept: Vec<usize> = epochs.last().map_or_else(Vec::new, |a| a.arch.kept_edges(reduce));
    let (x, xt) = epoch_axis(epochs.iter().map(|a| a.epoch));
    let yt = ticks(0.0, 1.0, 2, false);
    let (cell_w, cell_h, top) = (200.0, 130.0, 70.0);
    let (w, h) = (20.0 + 5.0 * cell_w + 10.0, top + STEPS as f64 * cell_h + 10.0);
    let mut s = header(w, h);
    let title = if reduce { "reduction cell" } else { "normal cell" };
    let what = match epochs.last().map(|a| a.arch.method) {
        Some(Method::FairDarts) => "σ(α)",
        _ => "softmax(α)",
    };
    text(&mut s, 10.0, 20.0, "start", 15.0, &format!("{title}: {what} of each edge per epoch"));
    text(
        &mut s,
        10.0,
        38.0,
        "start",
        11.0,
        "x: epoch, y: op weight; a panel per edge (rows: nodes, columns: inputs); \
         bold frame: an edge the last epoch's genotype keeps",
    );
    let entries: Vec<(&str, &str, &str)> =
        PRIMITIVES.iter().zip(OP_STYLES).map(|(name, (colour, style))| (*name, colour, style)).collect();
    legend(&mut s, 20.0, 60.0, &entries, 125.0);
    let mut edge = 0;
    for node in 0..STEPS {
        for j in 0..node + 2 {
            let (cx, cy) = (20.0 + j as f64 * cell_w, top + node as f64 * cell_h);
            let axes = Axes { left: cx + 30.0, top: cy + 22.0, width: 150.0, height: 80.0, x, y: (0.0, 1.0) };
            let _ = writeln!(s, "<g class=\"panel\" id=\"edge-{edge}\">");
            text(
                &mut s,
                cx + 105.0,
                cy + 16.0,
                "middle",
                11.0,
                &format!("{} → node {node} (edge {edge})", input_name(j)),
            );
            axes.frame(&mut s, &xt, &yt, "", kept.contains(&edge));
            for (k, (colour, style)) in OP_STYLES.iter().enumerate() {
                let pts: Vec<(f64, f64)> =
                    epochs.iter().zip(&weights).map(|(a, w)| (a.epoch as f64, w[edge][k])).collect();
                axes.line(&mut s, &pts, colour, style, pts.len() == 1);
            }
            s.push_str("</g>\n");
            edge += 1;
        }
    }
    s.push_str("</svg>\n");
    s
}

/// The diagnostics per epoch: skip_connect and parameter-free ops in the derived cells, the
/// mean edge entropy, and λ_max when the log has it. Solid lines: normal cell; dashed: reduction.
pub fn diagnostics_svg(h: &History) -> String {
    let diags: Vec<(f64, Diagnostics)> =
        h.alphas.iter().map(|a| (a.epoch as f64, Diagnostics::from_arch(&a.arch))).collect();
    let (x, xt) = epoch_axis(h.alphas.iter().map(|a| a.epoch).chain(h.lambda_max.iter().map(|l| l.0)));
    let panels = if h.lambda_max.is_empty() { 2 } else { 3 };
    let (panel_h, w) = (200.0, 640.0);
    let mut s = header(w, 40.0 + panels as f64 * panel_h);
    text(
        &mut s,
        10.0,
        22.0,
        "start",
        15.0,
        "search diagnostics per epoch (solid: normal cell, dashed: reduction cell)",
    );
    let dots = diags.len() <= 30;
    let series = |f: &dyn Fn(&Diagnostics) -> f64| -> Vec<(f64, f64)> {
        diags.iter().map(|(e, d)| (*e, f(d))).collect()
    };
    let mut top = 40.0;
    let mut panel = |s: &mut String, title: &str, y: (f64, f64), yt: &[f64], lines: &[Series]| {
        let _ = writeln!(s, "<g class=\"chart\">");
        text(s, 60.0, top + 14.0, "start", 12.0, title);
        let entries: Vec<(&str, &str, &str)> = lines.iter().map(|(n, c, st, _)| (*n, *c, *st)).collect();
        legend(s, 60.0, top + 32.0, &entries, 140.0);
        let axes = Axes { left: 60.0, top: top + 42.0, width: 540.0, height: 110.0, x, y };
        axes.frame(s, &xt, yt, "epoch", false);
        for (_, colour, style, pts) in lines {
            axes.line(s, pts, colour, style, dots);
        }
        s.push_str("</g>\n");
        top += panel_h;
    };
    let skip = OP_STYLES[3].0;
    panel(
        &mut s,
        "derived cells: skip_connect and parameter-free ops (of 8 genes)",
        (0.0, 8.0),
        &ticks(0.0, 8.0, 4, true),
        &[
            ("normal skip", skip, "", series(&|d| d.normal.skip_connect as f64)),
            ("reduce skip", skip, DASHED, series(&|d| d.reduce.skip_connect as f64)),
            ("normal param-free", "#555", "", series(&|d| d.normal.parameter_free as f64)),
            ("reduce param-free", "#555", DASHED, series(&|d| d.reduce.parameter_free as f64)),
        ],
    );
    let ln8 = (PRIMITIVES.len() as f64).ln();
    panel(
        &mut s,
        "mean entropy of the edges' softmax weights (nats; top edge: uniform, ln 8)",
        (0.0, ln8),
        &ticks(0.0, ln8, 5, false),
        &[
            ("normal", "#1f77b4", "", series(&|d| d.normal.mean_entropy)),
            ("reduce", "#1f77b4", DASHED, series(&|d| d.reduce.mean_entropy)),
        ],
    );
    if !h.lambda_max.is_empty() {
        let pts: Vec<(f64, f64)> = h.lambda_max.iter().map(|&(e, l)| (e as f64, l)).collect();
        let lo = pts.iter().map(|p| p.1).fold(0.0, f64::min);
        let hi = pts.iter().map(|p| p.1).fold(lo, f64::max);
        let yt = svg::covering_ticks(lo, hi, 4);
        let y = (yt[0], yt[yt.len() - 1]);
        panel(
            &mut s,
            "λ_max: largest eigenvalue of the validation loss's Hessian w.r.t. α",
            y,
            &yt,
            &[("λ_max", "#000", "", pts)],
        );
    }
    s.push_str("</svg>\n");
    s
}
