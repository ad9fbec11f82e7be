//! The benchmark library: the kernel cases cover every kernel module and run on the CPU and the
//! emulator; the step bench times real steps and reports the reference's JSON fields; the
//! counting allocator sees what is allocated; `darts bench` prints its table and JSON line.

use std::collections::BTreeSet;
use std::process::Command;
use std::sync::Arc;

use darts::backend::gpu::kernels::MODULES;
use darts::bench::kernels::{kernel_cases, Measure};
use darts::bench::step::{run, StepBench};
use darts::search::stepper::GraphMode;
use darts::search::Order;
use darts::{memstat, Device};

#[global_allocator]
static ALLOC: memstat::CountingAlloc = memstat::CountingAlloc;

/// The heap counters are process-wide: the tests here take turns so one's allocations do not
/// show up in another's peak.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

#[test]
fn counting_allocator_sees_a_large_allocation_and_resets_its_peak() {
    let _serial = serial();
    let before = memstat::heap_in_use().expect("installed in this test binary");
    memstat::reset_heap_peak();
    let v = std::hint::black_box(vec![1u8; 64 << 20]);
    // Against what is in use now, not `before`: threads of earlier tests (emulator workers,
    // loaders) may still free memory in between.
    let (peak, now) = (memstat::heap_peak().unwrap(), memstat::heap_in_use().unwrap());
    assert!(now >= 64 << 20 && peak >= now, "peak {peak}, in use {now} with a 64 MiB vector alive");
    drop(v);
    memstat::reset_heap_peak();
    assert!(memstat::heap_peak().unwrap() < before + (64 << 20), "the peak restarts at what is in use");
    if let Some(rss) = memstat::peak_rss() {
        assert!(rss >= 64 << 20, "peak RSS {rss} after touching 64 MiB");
    }
}

#[test]
fn kernel_cases_declare_their_work_and_run_on_the_cpu() {
    let _serial = serial();
    let mut cases = kernel_cases(&Device::Cpu, 2, "");
    let ids: BTreeSet<String> = cases.iter().map(|c| c.id()).collect();
    assert_eq!(ids.len(), cases.len(), "case names are unique");
    for c in &mut cases {
        assert!(c.bytes > 0, "{}: no bytes declared", c.id());
        assert_eq!(c.measure == Measure::Flops, c.flops > 0, "{}", c.id());
        c.run();
    }
    let conv_flops: Vec<_> = cases.iter().filter(|c| c.family.starts_with("conv")).map(|c| c.flops).collect();
    assert!(conv_flops.iter().all(|&f| f > 0), "every convolution reports FLOPs");
    // The filter narrows by family/name.
    let dw = kernel_cases(&Device::Cpu, 2, "conv_depthwise/fwd");
    assert_eq!(dw.len(), 12, "4 depthwise variants at 3 shapes");
}

#[cfg(feature = "emu")]
#[test]
fn kernel_cases_launch_every_kernel_module_on_the_emulator() {
    let _serial = serial();
    use darts::backend::gpu::emu::EmuRuntime;
    let rt = Arc::new(EmuRuntime::new(0, 0));
    let device = Device::Gpu(rt.clone());
    // The optimiser cases span the whole network; the rest at batch 2 keep this quick.
    for mut c in kernel_cases(&device, 2, "") {
        c.run();
    }
    let launched = rt.launch_counts();
    let missing: Vec<&str> = MODULES
        .iter()
        .filter(|m| !m.kernels.iter().any(|k| launched.contains_key(*k)))
        .map(|m| m.stem)
        .collect();
    assert!(missing.is_empty(), "kernel files no bench case reaches: {missing:?}");
}

#[test]
fn step_bench_times_steps_and_reports_the_reference_fields() {
    let _serial = serial();
    let b = StepBench {
        preset: "tiny".into(),
        channels: 2,
        layers: 3,
        batch: 2,
        order: Order::Second,
        steps: 2,
        warmup: 1,
        seed: 5,
        fuse: true,
        graph: GraphMode::Off,
        method: darts::model::Method::Darts,
    };
    let r = run(&b, &Device::Cpu);
    assert_eq!(r.times_s.len(), 2);
    for ((t, a), w) in r.times_s.iter().zip(&r.arch_s).zip(&r.weight_s) {
        assert!(*a > 0.0 && *w > 0.0 && (a + w - t).abs() < 1e-3, "{t} = {a} + {w}");
    }
    assert!(r.final_loss.is_finite());
    let v: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
    for key in ["median_s", "min_s", "max_s", "median_arch_s", "median_weight_s", "times_s", "peak_mem_bytes"]
    {
        assert!(!v[key].is_null(), "{key} missing from {v}");
    }
    assert_eq!(v["order"], "second");
    assert_eq!(v["params"].as_u64().unwrap() as usize, r.params);
    assert!(v["peak_heap_bytes"].as_u64().unwrap() > 0);
    assert_eq!(v["cuda_graph"], false);
}

/// With graphs on a runtime that can capture, the first two steps (eager, captured) are
/// warm-up and the timed ones are replays, timed whole.
#[cfg(feature = "emu")]
#[test]
fn step_bench_times_graph_replays_on_the_deferred_emulator() {
    let _serial = serial();
    let rt = Arc::new(darts::backend::gpu::emu::EmuRuntime::deferred(0, 0));
    let b = StepBench {
        preset: "tiny".into(),
        channels: 2,
        layers: 3,
        batch: 2,
        order: Order::First,
        steps: 1,
        warmup: 0,
        seed: 5,
        fuse: true,
        graph: GraphMode::Auto,
        method: darts::model::Method::Darts,
    };
    let r = run(&b, &Device::Gpu(rt));
    assert!(r.graph && r.bench.warmup == 2, "graph {} warm-up {}", r.graph, r.bench.warmup);
    assert_eq!(r.times_s.len(), 1);
    assert!(r.arch_s.is_empty() && r.final_loss.is_finite());
    let v: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
    assert!(v["cuda_graph"] == true && v["median_arch_s"].is_null(), "{v}");
}

#[test]
fn median_matches_pythons_statistics_median() {
    let _serial = serial();
    assert_eq!(darts::bench::median(&mut [3.0, 1.0, 2.0]), 2.0);
    assert_eq!(darts::bench::median(&mut [4.0, 1.0]), 2.5, "an even count averages the middle two");
    assert!(darts::bench::median(&mut []).is_nan());
}

fn darts(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_darts"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn darts_bench_prints_a_roofline_table_and_a_step_json_line() {
    let _serial = serial();
    let o = darts(&[
        "bench",
        "kernels",
        "--device",
        "cpu",
        "--batch",
        "2",
        "--filter",
        "softmax",
        "--samples",
        "2",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("memory bandwidth:") && text.contains("roof%"), "{text}");
    assert_eq!(text.lines().filter(|l| l.starts_with("softmax/")).count(), 2, "{text}");

    let o = darts(&[
        "bench",
        "step",
        "--device",
        "cpu",
        "--preset",
        "cpu-small",
        "--channels",
        "2",
        "--layers",
        "3",
        "--batch",
        "2",
        "--steps",
        "1",
        "--warmup",
        "0",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!((v["C"].as_u64(), v["layers"].as_u64(), v["batch"].as_u64()), (Some(2), Some(3), Some(2)));
    assert_eq!(v["engine"], "darts");

    let o = darts(&["bench", "kernels", "--device", "cpu", "--filter", "no-such-kernel"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("no kernel case matches"));
}

/// The training-step bench: DARTS_V2's evaluation network timed per step, with the fields the
/// side by side reads (and the reference's parameter count convention).
#[test]
fn train_step_bench_reports_the_reference_fields() {
    let _serial = serial();
    let mut b = darts::bench::train_step::TrainStepBench::preset("cpu-small").unwrap();
    (b.config.channels, b.config.layers, b.config.batch, b.steps, b.warmup) = (2, 3, 2, 2, 0);
    let v: serde_json::Value =
        serde_json::from_str(&darts::bench::train_step::run(&b, &Device::Cpu)).unwrap();
    assert_eq!(
        (v["network"].as_str(), v["order"].as_str(), v["C"].as_u64()),
        (Some("eval"), Some("train"), Some(2))
    );
    assert_eq!(v["times_s"].as_array().unwrap().len(), 2);
    assert!(v["median_s"].as_f64().unwrap() > 0.0 && v["final_loss"].as_f64().unwrap().is_finite(), "{v}");
    assert!(v["peak_mem_bytes"].as_u64().unwrap() > 0 && v["params"].as_u64().unwrap() > 1000, "{v}");
    assert!(darts::bench::train_step::TrainStepBench::preset("huge").is_none());
}
