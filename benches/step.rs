//! One search step (architecture step + weight step), first and second order, at the `paper`
//! (C=16, 8 cells, batch 64) and `cpu-small` (C=4, 5 cells, batch 32) presets, on every
//! runtime present: the CPU engine, and a CUDA device when one is found. Prints seconds per
//! step (median of the timed steps, after a warm-up step) and peak memory per configuration,
//! then each configuration's JSON line (the fields of `darts_torch.py time`).
//!
//! The emulator is not benchmarked: it is a test instrument, not an engine. There is no fused
//! path yet; when there is, it gets its own rows.
//!
//! ```sh
//! cargo bench --bench step               # 1 warm-up + 3 timed steps per configuration
//! cargo bench --bench step -- --quick    # 1 timed step, no warm-up
//! cargo bench --bench step -- cpu-small  # only configurations whose name contains the text
//! ```
//! A CPU paper-preset second-order step takes over a minute on two cores.

use std::sync::Arc;

use darts::backend::gpu::cuda::CudaRuntime;
use darts::bench::step::{run, StepBench};
use darts::search::Order;
use darts::Device;

#[global_allocator]
static ALLOC: darts::memstat::CountingAlloc = darts::memstat::CountingAlloc;

fn main() {
    // cargo passes `--bench`; criterion-style flags other than --quick are ignored.
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--quick");
    let filter = args.iter().find(|a| !a.starts_with("--")).cloned().unwrap_or_default();

    let mut devices = vec![Device::Cpu];
    match CudaRuntime::new(0, false) {
        Ok(rt) => devices.push(Device::Gpu(Arc::new(rt))),
        Err(e) => eprintln!("step bench: CPU only (no CUDA: {e})"),
    }
    let mut json = Vec::new();
    println!(
        "{:<30} {:>10} {:>10} {:>10} {:>12} {:>12}",
        "configuration", "s/step", "arch s", "weight s", "peak MB", "peak heap MB"
    );
    for device in &devices {
        for preset in ["cpu-small", "paper"] {
            for order in [Order::First, Order::Second] {
                let name = format!(
                    "{}/{preset}/{}",
                    device.name(),
                    if order == Order::First { "first" } else { "second" }
                );
                if !name.contains(&filter) {
                    continue;
                }
                let mut b = StepBench::preset(preset, order).expect("known preset");
                (b.warmup, b.steps) = if quick { (0, 1) } else { (1, 3) };
                let r = run(&b, device);
                let mb = |v: Option<usize>| v.map_or("-".to_string(), |b| format!("{:.1}", b as f64 / 1e6));
                let med = |v: &[f64]| darts::bench::median(&mut v.to_vec());
                println!(
                    "{name:<30} {:>10.3} {:>10.3} {:>10.3} {:>12} {:>12}",
                    r.median_s(),
                    med(&r.arch_s),
                    med(&r.weight_s),
                    mb(r.peak_mem_bytes),
                    mb(r.peak_heap_bytes)
                );
                json.push(r.to_json());
            }
        }
    }
    println!("\npeak MB: device bytes allocated on a GPU, peak resident set on the CPU");
    for j in json {
        println!("{j}");
    }
}
