//! The roofline table of `darts bench kernels`: each kernel case's least bytes and FLOPs, its
//! achieved rates, and its distance to the machine's limits measured in the same run.
//!
//! Ceilings: memory bandwidth from a large copy (a device-to-device copy on a GPU, a parallel
//! copy on the CPU; read plus write counted), and compute from our best GEMM, the pointwise
//! convolution at a large compute-bound shape. A case's least time is
//! max(bytes / bandwidth, FLOPs / compute); `roof %` is that over its measured time, so 100 %
//! means the kernel runs at the limit that binds it. Each call is timed with cold caches
//! ([`CacheFlush`]), as the bandwidth ceiling is that of memory, not of a cache; a case whose
//! data is small and reused (a 3x3 window, a GEMM tile) can still beat it a little.

use rayon::prelude::*;

use super::kernels::{KernelCase, Measure};
use super::{seconds_per_call, time_iters, CacheFlush};
use crate::backend::gpu::{GpuBuf, RuntimeKind};
use crate::ops::{self, ConvParams};
use crate::rng::Rng;
use crate::tensor::{gpu_ok, DType, Device, Tensor};

/// The machine's limits, measured.
#[derive(Clone, Debug)]
pub struct Ceilings {
    /// Bytes per second of a large copy (read + write).
    pub bandwidth: f64,
    /// How the bandwidth was measured.
    pub bandwidth_how: String,
    /// FLOPs per second of our best GEMM.
    pub flops: f64,
    /// How the compute ceiling was measured.
    pub flops_how: String,
}

/// Measures the ceilings on `device`. `gemm_batch` sets the GEMM's size (64 on a GPU or the CPU
/// engine; small on the emulator, which is slow).
pub fn measure_ceilings(device: &Device, gemm_batch: usize) -> Ceilings {
    let (bandwidth, bandwidth_how) = copy_bandwidth(device);
    let (flops, flops_how) = gemm_flops(device, gemm_batch);
    Ceilings { bandwidth, bandwidth_how, flops, flops_how }
}

fn copy_bandwidth(device: &Device) -> (f64, String) {
    const MIB: usize = 1 << 20;
    match device.runtime() {
        Some(rt) => {
            let bytes = if rt.kind() == RuntimeKind::Emu { 64 * MIB } else { 512 * MIB };
            let a = gpu_ok(GpuBuf::alloc(rt, bytes / 4));
            let b = gpu_ok(GpuBuf::alloc(rt, bytes / 4));
            let mut copy = || gpu_ok(rt.dtod(a.ptr(), b.ptr(), bytes));
            let s = best_of(5, || time_iters(device, 4, &mut copy) / 4.0);
            (2.0 * bytes as f64 / s, format!("device-to-device copy of {} MiB", bytes / MIB))
        }
        None => {
            let n = 128 * MIB / 4;
            let src = vec![1.0f32; n];
            let mut dst = vec![0.0f32; n];
            let chunk = n.div_ceil(rayon::current_num_threads() * 4);
            let mut copy = || {
                dst.par_chunks_mut(chunk).zip(src.par_chunks(chunk)).for_each(|(d, s)| d.copy_from_slice(s))
            };
            let s = best_of(5, || time_iters(device, 1, &mut copy));
            let how = format!("parallel copy of 128 MiB on {} threads", rayon::current_num_threads());
            (2.0 * (4 * n) as f64 / s, how)
        }
    }
}

fn gemm_flops(device: &Device, b: usize) -> (f64, String) {
    let (c, hw) = (256, 32);
    let mut rng = Rng::new(3);
    let mut rand =
        |s: &[usize]| Tensor::from_f64(s, &rng.normals(s.iter().product()), DType::F32).to_device(device);
    let (x, w) = (rand(&[b, c, hw, hw]), rand(&[c, c, 1, 1]));
    let flops = 2.0 * (b * hw * hw * c * c) as f64;
    let mut gemm = || drop(ops::conv::conv2d(&x, &w, ConvParams::new(1, 0)));
    gemm();
    let s = best_of(3, || time_iters(device, 1, &mut gemm));
    (flops / s, format!("pointwise conv [{b},{c},{hw},{hw}] x [{c},{c},1,1] (a GEMM)"))
}

fn best_of(n: usize, mut f: impl FnMut() -> f64) -> f64 {
    (0..n).map(|_| f()).fold(f64::INFINITY, f64::min)
}

/// One measured case.
#[derive(Clone, Debug)]
pub struct RooflineRow {
    /// `family/name` of the case.
    pub id: String,
    /// Least bytes.
    pub bytes: u64,
    /// Useful FLOPs.
    pub flops: u64,
    /// What the case is reported in.
    pub measure: Measure,
    /// Median seconds per call.
    pub seconds: f64,
}

impl RooflineRow {
    /// Bytes per second achieved.
    pub fn bandwidth(&self) -> f64 {
        self.bytes as f64 / self.seconds
    }
    /// FLOPs per second achieved.
    pub fn flop_rate(&self) -> f64 {
        self.flops as f64 / self.seconds
    }
    /// The least time the ceilings allow, and which one binds (`mem` or `flop`).
    pub fn bound(&self, c: &Ceilings) -> (f64, &'static str) {
        let (tm, tf) = (self.bytes as f64 / c.bandwidth, self.flops as f64 / c.flops);
        if tf > tm {
            (tf, "flop")
        } else {
            (tm, "mem")
        }
    }
    /// Percent of the binding ceiling reached.
    pub fn roof_percent(&self, c: &Ceilings) -> f64 {
        100.0 * self.bound(c).0 / self.seconds
    }
}

/// Times every case: the median of `samples` calls, each with cold caches.
pub fn measure(
    device: &Device,
    cases: &mut [KernelCase],
    samples: usize,
    mut progress: impl FnMut(&RooflineRow),
) -> Vec<RooflineRow> {
    let mut flush = CacheFlush::new(device);
    cases
        .iter_mut()
        .map(|c| {
            let seconds = seconds_per_call(device, &mut flush, samples, &mut || c.run());
            let row = RooflineRow { id: c.id(), bytes: c.bytes, flops: c.flops, measure: c.measure, seconds };
            progress(&row);
            row
        })
        .collect()
}

/// The ceilings as two header lines.
pub fn format_ceilings(c: &Ceilings) -> String {
    format!(
        "memory bandwidth: {:8.1} GB/s  ({})\ncompute:          {:8.1} GFLOP/s ({})",
        c.bandwidth / 1e9,
        c.bandwidth_how,
        c.flops / 1e9,
        c.flops_how
    )
}

/// The table header matching [`format_row`].
pub fn header() -> String {
    format!(
        "{:<52} {:>9} {:>9} {:>10} {:>9} {:>9} {:>5} {:>6}",
        "kernel", "MB", "MFLOP", "us", "GB/s", "GFLOP/s", "bound", "roof%"
    )
}

/// One row of the roofline table.
pub fn format_row(r: &RooflineRow, c: &Ceilings) -> String {
    let gflops = if r.flops > 0 { format!("{:9.1}", r.flop_rate() / 1e9) } else { format!("{:>9}", "-") };
    format!(
        "{:<52} {:>9.3} {:>9.1} {:>10.1} {:>9.1} {} {:>5} {:>5.1}%",
        r.id,
        r.bytes as f64 / 1e6,
        r.flops as f64 / 1e6,
        r.seconds * 1e6,
        r.bandwidth() / 1e9,
        gflops,
        r.bound(c).1,
        r.roof_percent(c)
    )
}
