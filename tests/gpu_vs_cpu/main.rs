//! Every GPU kernel against the CPU backend, on random inputs of awkward sizes (length 1,
//! lengths around the block size, odd H and W, channels not a multiple of the tile, batch 1) and
//! at real DARTS shapes, through the emulator always (under two fiber schedules that must agree
//! bit for bit) and through CUDA when a GPU is present.
//!
//! Outputs are filled with NaN before each launch, so an element a kernel fails to write fails
//! the comparison. Agreement: ‖gpu − cpu‖ / ‖cpu‖ < 1e-5 and no NaN, with the CPU reference in
//! f64 on the same f32 inputs.
//!
//! Each kernel family is a module with `pub fn cases(rt, rng, out)` that runs its kernels and
//! pushes one [`Outcome`] per output tensor.

mod batchnorm;
mod conv;
mod depthwise;
mod first_kernels;
mod head;
mod layout;
mod multi_tensor;
mod pcdarts;
mod pool;
mod streams;

#[path = "../common/search_steps.rs"]
mod search_steps;

use std::sync::Arc;

use darts::autograd::check::rel_err;
use darts::backend::gpu::{Gpu, GpuBuf};
use darts::rng::Rng;

/// Fixed sizes around the 256-thread block: 1, odd, one less/more than a block, large.
pub const SIZES: [usize; 7] = [1, 7, 255, 256, 257, 1000, 70_001];

/// One kernel run: what the device produced and what the CPU reference says.
pub struct Outcome {
    /// Kernel, part and shape.
    pub name: String,
    /// Device result.
    pub gpu: Vec<f32>,
    /// CPU reference (f64 on the same inputs).
    pub cpu: Vec<f64>,
}

/// `n` standard normals as f32.
pub fn normals(rng: &mut Rng, n: usize) -> Vec<f32> {
    rng.normals(n).into_iter().map(|v| v as f32).collect()
}

/// f32 widened to f64 (the CPU reference runs on exactly the device's inputs).
pub fn wide(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}

/// A device copy of `v`.
pub fn up(rt: &Gpu, v: &[f32]) -> GpuBuf {
    GpuBuf::from_host(rt, v).unwrap()
}

/// An output buffer poisoned with NaN.
pub fn nan(rt: &Gpu, n: usize) -> GpuBuf {
    up(rt, &vec![f32::NAN; n])
}

fn run_all(rt: &Gpu) -> Vec<Outcome> {
    let mut rng = Rng::new(2024);
    let mut out = Vec::new();
    first_kernels::cases(rt, &mut rng, &mut out);
    batchnorm::cases(rt, &mut rng, &mut out);
    pool::cases(rt, &mut rng, &mut out);
    layout::cases(rt, &mut rng, &mut out);
    head::cases(rt, &mut rng, &mut out);
    depthwise::cases(rt, &mut rng, &mut out);
    conv::cases(rt, &mut rng, &mut out);
    multi_tensor::cases(rt, &mut rng, &mut out);
    pcdarts::cases(rt, &mut rng, &mut out);
    out
}

fn assert_matches_cpu(outcomes: &[Outcome], runtime: &str) {
    let mut failures = Vec::new();
    for o in outcomes {
        let gpu = wide(&o.gpu);
        let e = rel_err(&gpu, &o.cpu);
        if o.gpu.iter().any(|v| v.is_nan()) || e.is_nan() || e >= 1e-5 {
            failures.push(format!(
                "{}: relative error {e:e}, NaN: {}",
                o.name,
                o.gpu.iter().any(|v| v.is_nan())
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{runtime}: {} of {} cases failed:\n{}",
        failures.len(),
        outcomes.len(),
        failures.join("\n")
    );
}

#[cfg(feature = "emu")]
#[test]
fn emulator_matches_cpu_and_both_schedules_agree_bitwise() {
    use darts::backend::gpu::emu::EmuRuntime;
    let forward: Gpu = Arc::new(EmuRuntime::new(0, 0));
    let reverse: Gpu = Arc::new(EmuRuntime::new(1, 1));
    let a = run_all(&forward);
    let b = run_all(&reverse);
    assert_matches_cpu(&a, "emulator");
    for (x, y) in a.iter().zip(&b) {
        let same = x.gpu.iter().zip(&y.gpu).all(|(p, q)| p.to_bits() == q.to_bits());
        assert!(
            same,
            "{}: schedules 0 and 1 differ (a missing barrier or an order-dependent reduction)",
            x.name
        );
    }
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn cuda_matches_cpu() {
    use darts::backend::gpu::cuda::CudaRuntime;
    let rt: Gpu = Arc::new(CudaRuntime::new(0, true).unwrap_or_else(|e| panic!("CUDA runtime: {e}")));
    assert_matches_cpu(&run_all(&rt), "cuda");
}

/// Streams, staging and graphs on a GPU (`streams.rs`).
#[test]
#[ignore = "needs a CUDA GPU"]
fn cuda_streams_staging_and_graphs() {
    use darts::backend::gpu::cuda::CudaRuntime;
    let rt: Gpu = Arc::new(CudaRuntime::new(0, false).unwrap_or_else(|e| panic!("CUDA runtime: {e}")));
    streams::check(&rt);
}

/// The search step replayed from a CUDA graph gives bitwise the steps and state of the same
/// steps issued launch by launch (first and second order; a step of another shape between
/// replays runs eagerly). The emulator's version is `tests/deferred.rs`.
#[test]
#[ignore = "needs a CUDA GPU"]
fn cuda_graph_replayed_search_steps_equal_eager_ones() {
    use darts::backend::gpu::cuda::CudaRuntime;
    use search_steps::{steps, Exec};
    let rt: Gpu = Arc::new(CudaRuntime::new(0, false).unwrap_or_else(|e| panic!("CUDA runtime: {e}")));
    for order in [darts::search::Order::First, darts::search::Order::Second] {
        let eager = steps(rt.clone(), order, Exec::Stepper);
        let graph = steps(rt.clone(), order, Exec::Graph);
        assert_eq!(graph.2, (2, 1), "{order:?}: (replays, captures)");
        assert_eq!(eager.0, graph.0, "{order:?}: step statistics differ");
        assert!(eager.1 == graph.1, "{order:?}: the state arrays differ");
    }
}

/// The same program on the deferred emulator (which checks every ordering it relies on).
#[cfg(feature = "emu")]
#[test]
fn deferred_emulator_runs_the_streams_program() {
    streams::check(&(Arc::new(darts::backend::gpu::emu::EmuRuntime::deferred(0, 0)) as Gpu));
}

/// Probing CUDA never panics: on a machine without libcuda or without a GPU it is an error
/// that says which, and a binary built without nvcc says so.
#[test]
fn cuda_probe_returns_an_error_instead_of_panicking() {
    use darts::backend::gpu::cuda::CudaRuntime;
    use darts::backend::gpu::GpuError;
    match std::panic::catch_unwind(|| CudaRuntime::new(0, false).map(|_| ())) {
        Ok(Ok(())) => {}
        Ok(Err(e @ (GpuError::NoDriver(_) | GpuError::NoDevice(_) | GpuError::NoKernels))) => {
            assert!(!e.to_string().is_empty());
        }
        Ok(Err(e)) => panic!("unexpected CUDA probe error: {e}"),
        Err(_) => panic!("probing CUDA panicked"),
    }
}
