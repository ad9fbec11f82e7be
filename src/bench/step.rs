//! Whole search steps, timed as the PyTorch reference's `darts_torch.py time` times them: a
//! fresh network from the seed, `warmup + steps` pairs of random CIFAR-shaped batches made
//! before timing, each step timed from an idle device to the end of its work, architecture and
//! weight halves apart. The JSON line has the reference's fields, so the two compare directly.
//!
//! Peak memory is that of the same kind as the reference's: device bytes held by the
//! allocator on a GPU (the reference: `torch.cuda.max_memory_allocated`), and the peak resident
//! set of the process on the CPU (the reference: `ru_maxrss`), with the peak heap from
//! [`crate::memstat`] beside it when the counting allocator is installed.

use std::time::Instant;

use super::{machine_name, median, sync};
use crate::memstat;
use crate::model::{Method, NetConfig, Network};
use crate::rng::Rng;
use crate::search::run::SearchConfig;
use crate::search::stepper::{GraphMode, Stepper};
use crate::search::{Batch, Order, SearchState, StepConfig};
use crate::tensor::{DType, Device, Tensor};

/// What to time.
#[derive(Clone, Debug)]
pub struct StepBench {
    /// The preset the shape came from (`paper` or `cpu-small`), for the report.
    pub preset: String,
    /// Initial channels.
    pub channels: usize,
    /// Cells.
    pub layers: usize,
    /// Batch size (train and validation).
    pub batch: usize,
    /// First or second order.
    pub order: Order,
    /// Timed steps.
    pub steps: usize,
    /// Untimed steps before them.
    pub warmup: usize,
    /// Seed of the weights and the data.
    pub seed: u64,
    /// Fused mixed ops (the default) or the unfused reference composition.
    pub fuse: bool,
    /// Replay the step as a captured graph where the runtime can ([`GraphMode::Auto`]; the
    /// halves are then not timed apart), or issue it launch by launch.
    pub graph: GraphMode,
    /// The search method whose supernet is stepped (DARTS in the presets).
    pub method: Method,
}

impl StepBench {
    /// The shape of `preset` (`paper`: C=16, 8 cells, batch 64; `cpu-small`: C=4, 5 cells,
    /// batch 32), or `None` for an unknown name.
    pub fn preset(preset: &str, order: Order) -> Option<StepBench> {
        let cfg = match preset {
            "paper" => SearchConfig::paper(),
            "cpu-small" => SearchConfig::cpu_small(),
            _ => return None,
        };
        Some(StepBench {
            preset: cfg.preset,
            channels: cfg.channels,
            layers: cfg.layers,
            batch: cfg.batch,
            order,
            steps: 5,
            warmup: 1,
            seed: 2,
            fuse: true,
            graph: GraphMode::Off,
            method: Method::Darts,
        })
    }
}

/// What a step bench measured.
#[derive(Clone, Debug)]
pub struct StepReport {
    /// The configuration.
    pub bench: StepBench,
    /// `cpu`, `cuda` or `emu`.
    pub device: String,
    /// The machine.
    pub device_name: String,
    /// Seconds of each timed step.
    pub times_s: Vec<f64>,
    /// Seconds of each timed step's architecture half.
    pub arch_s: Vec<f64>,
    /// Seconds of each timed step's weight half.
    pub weight_s: Vec<f64>,
    /// Peak memory in bytes, of the kind [`StepReport::peak_mem_kind`] names.
    pub peak_mem_bytes: Option<usize>,
    /// What `peak_mem_bytes` measures.
    pub peak_mem_kind: &'static str,
    /// Peak heap bytes (counting allocator), when installed.
    pub peak_heap_bytes: Option<usize>,
    /// Learnable weights of the network (not counting α).
    pub params: usize,
    /// Training loss of the last step.
    pub final_loss: f64,
    /// Whether the timed steps were replayed from a graph.
    pub graph: bool,
}

impl StepReport {
    /// Median seconds per step.
    pub fn median_s(&self) -> f64 {
        median(&mut self.times_s.clone())
    }

    /// One JSON object with the fields of `darts_torch.py time`, plus `engine`, `preset` and
    /// `peak_heap_bytes`.
    pub fn to_json(&self) -> String {
        let b = &self.bench;
        let round = |v: &[f64]| v.iter().map(|t| (t * 1e6).round() / 1e6).collect::<Vec<f64>>();
        let min = self.times_s.iter().copied().fold(f64::INFINITY, f64::min);
        let max = self.times_s.iter().copied().fold(0.0, f64::max);
        serde_json::json!({
            "mode": "time",
            "engine": "darts",
            "device": self.device,
            "device_name": self.device_name,
            "preset": b.preset,
            "batch": b.batch,
            "C": b.channels,
            "layers": b.layers,
            "order": match b.order { Order::First => "first", Order::Second => "second" },
            "fused": b.fuse,
            "method": b.method.name(),
            "cuda_graph": self.graph,
            "steps": b.steps,
            "warmup": b.warmup,
            "median_s": self.median_s(),
            "min_s": min,
            "max_s": max,
            "median_arch_s": (!self.arch_s.is_empty()).then(|| median(&mut self.arch_s.clone())),
            "median_weight_s": (!self.weight_s.is_empty()).then(|| median(&mut self.weight_s.clone())),
            "times_s": round(&self.times_s),
            "peak_mem_bytes": self.peak_mem_bytes,
            "peak_mem_kind": self.peak_mem_kind,
            "peak_heap_bytes": self.peak_heap_bytes,
            "params": self.params,
            "threads": rayon::current_num_threads(),
            "seed": b.seed,
            "final_loss": self.final_loss,
        })
        .to_string()
    }
}

/// Runs the bench on `device`. On the CPU the peak resident set is restarted first (where the
/// kernel allows), so several benches in one process each report their own peak.
pub fn run(bench: &StepBench, device: &Device) -> StepReport {
    assert!(bench.steps >= 1, "step bench: at least one timed step");
    match device.runtime() {
        Some(rt) => rt.reset_peak_memory(),
        None => {
            memstat::reset_peak_rss();
        }
    }
    memstat::reset_heap_peak();
    let cfg = NetConfig { channels: bench.channels, layers: bench.layers, classes: 10, method: bench.method };
    let (mut net, mut store) = Network::new(cfg, DType::F32, &mut Rng::new(bench.seed));
    net.fuse = bench.fuse;
    store.to_device(device);
    let mut state = SearchState::new(net, store, StepConfig { order: bench.order, ..Default::default() });
    let params: usize = state.weight_ids().iter().map(|&i| state.store.params[i].value.numel()).sum();

    let mut rng = Rng::new(bench.seed);
    let mut batch = || {
        let shape = [bench.batch, 3, 32, 32];
        let x = Tensor::from_f64(&shape, &rng.normals(shape.iter().product()), DType::F32).to_device(device);
        let y: Vec<u32> = (0..bench.batch).map(|_| rng.below(10) as u32).collect();
        (x, y)
    };
    // With graphs the first step runs eagerly and the second is captured: both untimed.
    let graphs = bench.graph == GraphMode::Auto && device.runtime().is_some_and(|rt| rt.can_capture());
    let warmup = if graphs { bench.warmup.max(2) } else { bench.warmup };
    let batches: Vec<_> = (0..warmup + bench.steps).map(|_| (batch(), batch())).collect();

    let lr = SearchConfig::paper().lr_max;
    let (mut times, mut arch, mut weight) = (vec![], vec![], vec![]);
    let mut final_loss = f64::NAN;
    let mut stepper =
        graphs.then(|| Stepper::new(device, GraphMode::Auto).expect("step bench: staging buffers"));
    for (i, ((xt, yt), (xv, yv))) in batches.iter().enumerate() {
        let (train, val) = (Batch::new(xt, yt), Batch::new(xv, yv));
        sync(device);
        let t0 = Instant::now();
        if let Some(stepper) = stepper.as_mut() {
            // The whole step, replayed from its graph once captured (the second step).
            final_loss =
                stepper.step(&mut state, &train, &val, lr).expect("step bench: a graph step").loss_train;
            let t2 = Instant::now();
            if i >= warmup {
                times.push((t2 - t0).as_secs_f64());
            }
            continue;
        }
        state.arch_step(&train, &val, lr);
        sync(device);
        let t1 = Instant::now();
        final_loss = state.weight_step(&train, lr).loss_train;
        sync(device);
        let t2 = Instant::now();
        if i >= warmup {
            times.push((t2 - t0).as_secs_f64());
            arch.push((t1 - t0).as_secs_f64());
            weight.push((t2 - t1).as_secs_f64());
        }
    }
    let (peak_mem_bytes, peak_mem_kind) = match device.runtime() {
        Some(rt) => (Some(rt.memory().peak), "device bytes allocated (darts caching allocator)"),
        None => (memstat::peak_rss(), "peak RSS of the process (VmHWM)"),
    };
    StepReport {
        bench: StepBench { warmup, ..bench.clone() },
        graph: graphs,
        device: device.name().to_string(),
        device_name: machine_name(device),
        times_s: times,
        arch_s: arch,
        weight_s: weight,
        peak_mem_bytes,
        peak_mem_kind,
        peak_heap_bytes: memstat::heap_peak(),
        params,
        final_loss,
    }
}
