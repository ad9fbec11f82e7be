//! `NullRuntime`: a runtime whose launches do everything a CUDA launch does on the host
//! (through the same [`Launcher`]: resolution, packing, counting, the ring of recent launches,
//! the per-thread binding check) and then drop the launch. Memory is a bump of fake addresses
//! that nothing reads or writes. For measuring the host cost of the launch path
//! (`benches/launch.rs`) and testing it without a device; never a device for ops that read
//! results back (a copy to the host gives zeros).

use std::ffi::c_void;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use super::kernels::KernelId;
use super::launcher::{Driver, LaunchRecord, Launcher};
use super::runtime::{Arg, Counts, DevPtr, GpuError, LaunchCfg, MemStats, Runtime, RuntimeKind};

/// The driver of [`NullRuntime`]: resolves every kernel of `kernels/*.cu` (as CUDA would) and
/// launches nothing.
struct NullDriver;

impl Driver for NullDriver {
    type Function = KernelId;

    fn resolve(&self, kernel: KernelId) -> Result<KernelId, GpuError> {
        match kernel.module() {
            Some(_) => Ok(kernel),
            None => Err(GpuError::UnknownKernel(kernel.name().to_string())),
        }
    }

    fn bind(&self) -> Result<(), GpuError> {
        Ok(())
    }

    unsafe fn launch(
        &self,
        _kernel: KernelId,
        f: &KernelId,
        cfg: &LaunchCfg,
        params: &mut [*mut c_void],
    ) -> Result<(), GpuError> {
        // What cuLaunchKernel would be handed, kept alive so none of it is optimised away.
        std::hint::black_box((f, cfg, params.as_mut_ptr(), params.len()));
        Ok(())
    }

    fn check(&self, _kernel: KernelId, _cfg: &LaunchCfg) -> Result<(), GpuError> {
        Ok(())
    }
}

/// A runtime that prepares launches and drops them. See the module documentation.
pub struct NullRuntime {
    launcher: Launcher<KernelId>,
    next: AtomicU64,
    memory: Mutex<MemStats>,
}

impl NullRuntime {
    /// A null runtime; `debug_sync` runs the (empty) check after every launch.
    pub fn new(debug_sync: bool) -> NullRuntime {
        NullRuntime {
            launcher: Launcher::new(debug_sync),
            next: AtomicU64::new(1 << 32),
            memory: Mutex::default(),
        }
    }
}

impl Default for NullRuntime {
    fn default() -> NullRuntime {
        NullRuntime::new(false)
    }
}

impl Runtime for NullRuntime {
    fn kind(&self) -> RuntimeKind {
        RuntimeKind::Null
    }

    fn describe(&self) -> String {
        "null runtime (launches prepared on the host, then dropped)".into()
    }

    fn alloc(&self, bytes: usize) -> Result<DevPtr, GpuError> {
        self.launcher.counters.allocation();
        let mut m = self.memory.lock().unwrap();
        m.in_use += bytes;
        m.peak = m.peak.max(m.in_use);
        Ok(self.next.fetch_add(bytes.next_multiple_of(256).max(256) as u64, Ordering::Relaxed))
    }

    fn free(&self, _ptr: DevPtr, bytes: usize) {
        self.memory.lock().unwrap().in_use -= bytes;
    }

    fn htod(&self, _src: &[u8], _dst: DevPtr) -> Result<(), GpuError> {
        self.launcher.counters.htod();
        Ok(())
    }

    fn dtoh(&self, _src: DevPtr, dst: &mut [u8]) -> Result<(), GpuError> {
        self.launcher.counters.dtoh();
        dst.fill(0);
        Ok(())
    }

    fn dtod(&self, _src: DevPtr, _dst: DevPtr, _bytes: usize) -> Result<(), GpuError> {
        self.launcher.counters.dtod();
        Ok(())
    }

    fn launch(&self, kernel: KernelId, cfg: LaunchCfg, args: &[Arg<'_>]) -> Result<(), GpuError> {
        self.launcher.launch(&NullDriver, kernel, cfg, args)
    }

    fn synchronize(&self) -> Result<(), GpuError> {
        self.launcher.counters.synchronize();
        Ok(())
    }

    fn allow_dynamic_shared(&self, kernel: KernelId, _bytes: u32) -> Result<(), GpuError> {
        self.launcher.function(&NullDriver, kernel).map(|_| ())
    }

    fn time_ms(&self, work: &mut dyn FnMut() -> Result<(), GpuError>) -> Result<f64, GpuError> {
        let t = std::time::Instant::now();
        work()?;
        Ok(t.elapsed().as_secs_f64() * 1e3)
    }

    fn memory(&self) -> MemStats {
        *self.memory.lock().unwrap()
    }

    fn reset_peak_memory(&self) {
        let mut m = self.memory.lock().unwrap();
        m.peak = m.in_use;
    }

    fn counts(&self) -> Counts {
        self.launcher.counters.snapshot()
    }

    fn recent_launches(&self) -> Vec<LaunchRecord> {
        self.launcher.recent()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::gpu::kernels::k;

    #[test]
    fn launches_are_counted_and_the_last_sixteen_kept() {
        let rt = NullRuntime::default();
        let cfg = LaunchCfg::linear(3, 256);
        for i in 0..20 {
            rt.launch(k::fill_f32, cfg, &[Arg::Ptr(4096), Arg::F32(0.0), Arg::I32(i)]).unwrap();
        }
        assert_eq!(rt.counts().launches, 20);
        let recent = rt.recent_launches();
        assert_eq!(recent.len(), 16);
        assert_eq!(recent.iter().map(|r| r.seq).collect::<Vec<_>>(), (4..20).collect::<Vec<_>>());
        assert_eq!(recent[0].to_string(), "#4 fill_f32 grid (3,1,1) block (256,1,1)");
    }

    #[test]
    #[should_panic(expected = "launching fill_f32 grid (1,1,1) block (1,1,1): 33 arguments")]
    fn too_many_loose_arguments_panic_naming_the_kernel() {
        let args = [Arg::I32(0); 33];
        let _ = NullRuntime::default().launch(k::fill_f32, LaunchCfg::linear(1, 1), &args);
    }
}
