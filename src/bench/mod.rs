//! Benchmarks: kernel throughput cases with their least work ([`kernels`]), the machine's
//! ceilings and the roofline table ([`roofline`]), and whole search steps ([`step`]).
//!
//! They run on any [`Device`]: on a GPU, time is measured between CUDA events on the stream
//! ([`Runtime::time_ms`](crate::backend::gpu::Runtime::time_ms)); on the CPU, by the host clock.

pub mod kernels;
pub mod roofline;
pub mod step;
pub mod train_step;

use std::time::Instant;

use crate::backend::gpu::{GpuBuf, RuntimeKind};
use crate::tensor::{gpu_ok, Device};

/// Waits for the device's queued work (nothing to wait for on the CPU).
pub fn sync(device: &Device) {
    if let Some(rt) = device.runtime() {
        gpu_ok(rt.synchronize());
    }
}

/// Seconds taken by `iters` calls of `f` on `device`, from an idle device to the end of the
/// last call's work.
pub fn time_iters(device: &Device, iters: u64, f: &mut dyn FnMut()) -> f64 {
    match device.runtime() {
        Some(rt) => {
            gpu_ok(rt.synchronize());
            let ms = gpu_ok(rt.time_ms(&mut || {
                for _ in 0..iters {
                    f();
                }
                Ok(())
            }));
            ms / 1e3
        }
        None => {
            let t = Instant::now();
            for _ in 0..iters {
                f();
            }
            t.elapsed().as_secs_f64()
        }
    }
}

/// Evicts the last-level cache between timed calls, so a case's inputs come from memory as
/// they would in a step whose working set far exceeds the cache, and a roofline against
/// memory bandwidth is the right yardstick. A GPU copies 128 MiB between two device buffers
/// (L2 is 50 MiB on an H100/H200); the CPU writes 96 MiB (three times this VM's L3). The
/// emulator needs no eviction (its times are not GPU times).
pub struct CacheFlush {
    device: Device,
    gpu: Option<(GpuBuf, GpuBuf)>,
    host: Vec<u8>,
    round: u8,
}

impl CacheFlush {
    /// Allocates the eviction buffers for `device`.
    pub fn new(device: &Device) -> CacheFlush {
        const MIB: usize = 1 << 20;
        let (gpu, host) = match device.runtime() {
            Some(rt) if rt.kind() == RuntimeKind::Cuda => {
                let n = 128 * MIB / 4;
                (Some((gpu_ok(GpuBuf::alloc(rt, n)), gpu_ok(GpuBuf::alloc(rt, n)))), vec![])
            }
            Some(_) => (None, vec![]),
            None => (None, vec![0u8; 96 * MIB]),
        };
        CacheFlush { device: device.clone(), gpu, host, round: 0 }
    }

    /// Evicts, and waits until the eviction is done.
    pub fn flush(&mut self) {
        if let Some((a, b)) = &self.gpu {
            let rt = a.runtime();
            gpu_ok(rt.dtod(a.ptr(), b.ptr(), 4 * a.len()));
        }
        self.round = self.round.wrapping_add(1);
        self.host.fill(self.round);
        std::hint::black_box(&self.host);
        sync(&self.device);
    }
}

/// Median seconds of one call of `f` with cold caches: after one untimed call, `samples`
/// calls, each after [`CacheFlush::flush`] and timed on its own (between CUDA events on a GPU).
pub fn seconds_per_call(device: &Device, flush: &mut CacheFlush, samples: usize, f: &mut dyn FnMut()) -> f64 {
    f();
    let mut t: Vec<f64> = (0..samples.max(1))
        .map(|_| {
            flush.flush();
            time_iters(device, 1, f)
        })
        .collect();
    median(&mut t)
}

/// The median (of an even count, the mean of the middle two, as Python's `statistics.median`
/// that the PyTorch reference's timings use); NaN when empty.
pub fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => 0.5 * (v[n / 2 - 1] + v[n / 2]),
    }
}

/// What the machine is: the GPU's description, or the CPU's model name and thread count.
pub fn machine_name(device: &Device) -> String {
    match device.runtime() {
        Some(rt) => rt.describe(),
        None => {
            let model = std::fs::read_to_string("/proc/cpuinfo")
                .ok()
                .and_then(|s| {
                    s.lines()
                        .find(|l| l.starts_with("model name"))
                        .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
                })
                .unwrap_or_else(|| std::env::consts::ARCH.to_string());
            format!("{model} ({} threads)", rayon::current_num_threads())
        }
    }
}
