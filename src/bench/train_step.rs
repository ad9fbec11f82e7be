//! Training steps of the evaluation network, timed as `scripts/eval_torch.py time` times the
//! PyTorch reference's: DARTS_V2's `NetworkCIFAR` from a seed, `warmup + steps` random
//! CIFAR-shaped batches made before timing, each step (forward with the auxiliary head and drop
//! path, backward, clip, SGD, loss read back) timed from an idle device to the end of its work.
//! One JSON line with the reference's fields.

use std::time::Instant;

use super::{machine_name, median, sync};
use crate::memstat;
use crate::model::eval::DropPath;
use crate::rng::Rng;
use crate::search::genotype::Genotype;
use crate::tensor::{DType, Device, Tensor};
use crate::train::{run::build, step::step, TrainConfig};

/// What to time.
#[derive(Clone, Debug)]
pub struct TrainStepBench {
    /// The network and protocol (the genotype, width, depth, batch, drop path).
    pub config: TrainConfig,
    /// Timed steps.
    pub steps: usize,
    /// Untimed steps before them.
    pub warmup: usize,
}

impl TrainStepBench {
    /// DARTS_V2 at a [`TrainConfig`] preset (`paper`: C = 36, 20 cells, batch 96; `cpu-small`:
    /// C = 16, 8 cells, batch 64), or `None` for an unknown name.
    pub fn preset(name: &str) -> Option<TrainStepBench> {
        let genotype = Genotype::published("DARTS_V2").expect("a published genotype").to_python();
        Some(TrainStepBench { config: TrainConfig::preset(name, &genotype)?, steps: 3, warmup: 1 })
    }
}

/// Runs the bench on `device` and returns its JSON line.
pub fn run(b: &TrainStepBench, device: &Device) -> String {
    assert!(b.steps >= 1, "train-step bench: at least one timed step");
    match device.runtime() {
        Some(rt) => rt.reset_peak_memory(),
        None => {
            memstat::reset_peak_rss();
        }
    }
    let cfg = &b.config;
    let mut s = build(cfg, 10).expect("train-step bench: the network");
    s.store.to_device(device);
    let mut rng = Rng::new(cfg.seed);
    let batches: Vec<(Tensor, Vec<u32>)> = (0..b.warmup + b.steps)
        .map(|_| {
            let shape = [cfg.batch, 3, 32, 32];
            let x =
                Tensor::from_f64(&shape, &rng.normals(shape.iter().product()), DType::F32).to_device(device);
            (x, (0..cfg.batch).map(|_| rng.below(10) as u32).collect())
        })
        .collect();
    let mut drop_rng = Rng::new(cfg.seed ^ 1);
    let (mut times, mut loss) = (Vec::new(), f64::NAN);
    for (i, (x, y)) in batches.iter().enumerate() {
        sync(device);
        let t0 = Instant::now();
        let dp = DropPath { prob: cfg.drop_path, rng: &mut drop_rng };
        loss = step(&mut s, cfg, x, y, cfg.lr, dp).loss;
        sync(device);
        if i >= b.warmup {
            times.push(t0.elapsed().as_secs_f64());
        }
    }
    let (peak, kind) = match device.runtime() {
        Some(rt) => (Some(rt.memory().peak), "device bytes allocated (darts caching allocator)"),
        None => (memstat::peak_rss(), "peak RSS of the process (VmHWM)"),
    };
    serde_json::json!({
        "mode": "time", "engine": "darts", "network": "eval", "device": device.name(),
        "device_name": machine_name(device), "preset": cfg.preset, "batch": cfg.batch, "C": cfg.channels,
        "layers": cfg.layers, "order": "train", "steps": b.steps, "warmup": b.warmup,
        "median_s": median(&mut times.clone()), "times_s": times, "peak_mem_bytes": peak, "peak_mem_kind": kind,
        "peak_heap_bytes": memstat::heap_peak(), "threads": rayon::current_num_threads(), "final_loss": loss,
        "params": crate::model::eval::count_without_aux(&s.store),
    })
    .to_string()
}
