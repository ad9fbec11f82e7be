//! One search step (architecture step + weight step), first and second order, at the `paper`
//! (C=16, 8 cells, batch 64) and `cpu-small` (C=4, 5 cells, batch 32) presets, on every
//! runtime present: the CPU engine, and a CUDA device when one is found. Prints seconds per
//! step (median of the timed steps, after a warm-up step) and peak memory per configuration,
//! then each configuration's JSON line (the fields of `darts_torch.py time`). Each
//! configuration runs in a child process of its own.
//!
//! Every configuration runs fused (the default engine) and unfused (`.../unfused`, the reference
//! composition), so the fused path's time and memory are printed beside the unfused ones.
//! The emulator is not benchmarked: it is a test instrument, not an engine.
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

/// `device/preset/order/fused|unfused` of every configuration to run here, in order.
fn configurations(filter: &str) -> Vec<String> {
    let mut devices = vec!["cpu"];
    match CudaRuntime::new(0, false) {
        Ok(_) => devices.push("cuda"),
        Err(e) => eprintln!("step bench: CPU only (no CUDA: {e})"),
    }
    let mut names = vec![];
    for device in devices {
        for preset in ["cpu-small", "paper"] {
            for order in ["first", "second"] {
                for fuse in ["fused", "unfused"] {
                    names.push(format!("{device}/{preset}/{order}/{fuse}"));
                }
            }
        }
    }
    names.retain(|n| n.contains(filter));
    names
}

/// Runs one configuration in this process and prints its JSON line.
fn run_one(name: &str, quick: bool) {
    let [device, preset, order, fuse]: [&str; 4] =
        name.split('/').collect::<Vec<_>>().try_into().expect("device/preset/order/fuse");
    let device = match device {
        "cuda" => Device::Gpu(Arc::new(CudaRuntime::new(0, false).expect("CUDA runtime"))),
        _ => Device::Cpu,
    };
    let order = if order == "second" { Order::Second } else { Order::First };
    let mut b = StepBench::preset(preset, order).expect("known preset");
    (b.warmup, b.steps) = if quick { (0, 1) } else { (1, 3) };
    b.fuse = fuse == "fused";
    println!("{}", run(&b, &device).to_json());
}

fn main() {
    // cargo passes `--bench`; criterion-style flags other than --quick are ignored.
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--quick");
    if let Some(i) = args.iter().position(|a| a == "--one") {
        return run_one(&args[i + 1], quick);
    }
    let filter = args.iter().find(|a| !a.starts_with("--")).cloned().unwrap_or_default();

    // Each configuration in its own process, as the reference's `time` does: peak memory is
    // then per configuration, and no run inherits another's heap.
    let exe = std::env::current_exe().expect("the bench executable");
    let mut lines = Vec::new();
    println!(
        "{:<36} {:>10} {:>10} {:>10} {:>12} {:>12}",
        "configuration", "s/step", "arch s", "weight s", "peak MB", "peak heap MB"
    );
    for name in configurations(&filter) {
        let mut cmd = std::process::Command::new(&exe);
        cmd.args(["--one", &name]);
        if quick {
            cmd.arg("--quick");
        }
        let out = cmd.stderr(std::process::Stdio::inherit()).output().expect("running a configuration");
        let line =
            String::from_utf8_lossy(&out.stdout).lines().find(|l| l.starts_with('{')).map(str::to_string);
        let Some(line) = line.filter(|_| out.status.success()) else {
            println!("{name:<36} failed ({})", out.status);
            continue;
        };
        let v: serde_json::Value = serde_json::from_str(&line).expect("a JSON line");
        let mb = |k: &str| v[k].as_f64().map_or("-".to_string(), |b| format!("{:.1}", b / 1e6));
        println!(
            "{name:<36} {:>10.3} {:>10.3} {:>10.3} {:>12} {:>12}",
            v["median_s"].as_f64().unwrap_or(f64::NAN),
            v["median_arch_s"].as_f64().unwrap_or(f64::NAN),
            v["median_weight_s"].as_f64().unwrap_or(f64::NAN),
            mb("peak_mem_bytes"),
            mb("peak_heap_bytes")
        );
        lines.push(line);
    }
    println!("\npeak MB: device bytes allocated on a GPU, peak resident set on the CPU");
    for l in lines {
        println!("{l}");
    }
}
