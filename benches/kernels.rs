//! Kernel throughput with criterion: every op family, forward and backward, at the DARTS search
//! shapes (batch 64; C = 16 at 32x32, 32 at 16x16, 64 at 8x8), on the CPU backend and, when a
//! CUDA device is found, on the GPU (timed between CUDA events on the stream). Each bench
//! declares its least work, so criterion reports GB/s, or for the convolutions and the linear
//! layer FLOP/s (shown as "elem/s": one element is one FLOP).
//!
//! Calls run back to back on the same inputs, so a working set that fits the last-level cache
//! stays there: these are steady-state throughputs. `darts bench kernels` times each call with
//! cold caches against the machine's measured roofline instead.
//!
//! ```sh
//! cargo bench --bench kernels                    # every group
//! cargo bench --bench kernels -- --quick         # a short run
//! cargo bench --bench kernels -- cuda/           # only the CUDA group
//! ```
//! `DARTS_BENCH_BATCH` changes the batch size (default 64); `DARTS_BENCH_DEVICES=cuda` (or
//! `cpu`) builds and runs only that group.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use darts::backend::gpu::cuda::CudaRuntime;
use darts::bench::kernels::{kernel_cases, Measure};
use darts::bench::time_iters;
use darts::Device;

fn batch() -> usize {
    std::env::var("DARTS_BENCH_BATCH").ok().and_then(|v| v.parse().ok()).unwrap_or(64)
}

/// One criterion group per family, named `<device>/<family>`, one bench per case.
fn bench_device(c: &mut Criterion, device: &Device) {
    let mut cases = kernel_cases(device, batch(), "");
    let mut families: Vec<&'static str> = Vec::new();
    for k in &cases {
        if !families.contains(&k.family) {
            families.push(k.family);
        }
    }
    for family in families {
        let mut group = c.benchmark_group(format!("{}/{family}", device.name()));
        // Flat sampling: the same iteration count per sample, so a millisecond CPU op costs
        // ten calls per sample rather than a growing ramp.
        group.sampling_mode(SamplingMode::Flat);
        for case in cases.iter_mut().filter(|k| k.family == family) {
            group.throughput(match case.measure {
                Measure::Bytes => Throughput::Bytes(case.bytes),
                Measure::Flops => Throughput::Elements(case.flops),
            });
            let name = case.name.clone();
            group.bench_function(name, |b| {
                b.iter_custom(|iters| Duration::from_secs_f64(time_iters(device, iters, &mut || case.run())))
            });
        }
        group.finish();
    }
}

/// Whether `DARTS_BENCH_DEVICES` (a comma list; all when unset) names `device`.
fn wanted(device: &str) -> bool {
    std::env::var("DARTS_BENCH_DEVICES").map_or(true, |v| v.split(',').any(|d| d.trim() == device))
}

fn cpu(c: &mut Criterion) {
    if wanted("cpu") {
        bench_device(c, &Device::Cpu);
    }
}

/// Registered only when a CUDA device is found; otherwise says why and adds nothing.
fn cuda(c: &mut Criterion) {
    if !wanted("cuda") {
        return;
    }
    match CudaRuntime::new(0, false) {
        Ok(rt) => bench_device(c, &Device::Gpu(std::sync::Arc::new(rt))),
        Err(e) => eprintln!("kernels bench: no CUDA group ({e})"),
    }
}

/// Short runs: ten samples after a 0.1 s warm-up, measured over `measure_ms`.
fn config(measure_ms: u64) -> Criterion {
    Criterion::default()
        .sample_size(10)
        .nresamples(2_000)
        .warm_up_time(Duration::from_millis(100))
        .measurement_time(Duration::from_millis(measure_ms))
}

criterion_group! {
    name = cpu_group;
    config = config(500);
    targets = cpu
}

// About 0.4 s per case, so the whole CUDA group takes about a minute.
criterion_group! {
    name = cuda_group;
    config = config(250);
    targets = cuda
}

criterion_main!(cpu_group, cuda_group);
