//! The host side of a launch, shared by every runtime: the kernel resolved once per id into a
//! table, the arguments packed in place, the launch counted and recorded in a ring of recent
//! launches, the context bound once per thread, and, with `debug_sync`, a wait and check after
//! every launch. A runtime supplies only what differs, as a [`Driver`]: resolving a kernel,
//! binding its context, enqueueing a launch, waiting for the device.
//!
//! `CudaRuntime` (the CUDA driver), `EmuRuntime` (the emulator) and `NullRuntime` (nothing: the
//! host path alone, for `benches/launch.rs`) all launch through [`Launcher::launch`], so the
//! bench measures exactly the code a GPU run executes, minus the driver call.

use std::cell::Cell;
use std::ffi::c_void;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

use super::kernels::{KernelId, KERNEL_COUNT};
use super::runtime::{Arg, Counters, GpuError, LaunchCfg, PackedArgs, MAX_ARGS};

/// Launches a runtime remembers for error messages.
pub const RECENT_LAUNCHES: usize = 16;

/// What a runtime does for a launch beyond the shared host path.
pub trait Driver {
    /// A resolved kernel: a `CUfunction`, an emulator trampoline, or nothing.
    type Function: Send + Sync;

    /// Resolves `kernel`. Called once per kernel per runtime (then served from the table).
    fn resolve(&self, kernel: KernelId) -> Result<Self::Function, GpuError>;

    /// Makes the runtime's context current on the calling thread. Called on a thread's first
    /// launch or copy, and again only after another runtime bound its own there.
    fn bind(&self) -> Result<(), GpuError>;

    /// Enqueues `f` (which is `kernel`) with `params` (`kernelParams`).
    ///
    /// # Safety
    /// `params` must point at values matching the kernel's parameter list, alive for the call.
    unsafe fn launch(
        &self,
        kernel: KernelId,
        f: &Self::Function,
        cfg: &LaunchCfg,
        params: &mut [*mut c_void],
    ) -> Result<(), GpuError>;

    /// Waits for the launched work and reports a device error (`debug_sync`); `kernel` is the
    /// launch just made.
    fn check(&self, kernel: KernelId, cfg: &LaunchCfg) -> Result<(), GpuError>;
}

/// One launch as the ring of recent launches keeps it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LaunchRecord {
    /// The runtime's launch number (from 0).
    pub seq: u64,
    /// The kernel.
    pub kernel: KernelId,
    /// Its grid, block and dynamic shared memory.
    pub cfg: LaunchCfg,
}

impl fmt::Display for LaunchRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{} {} {}", self.seq, self.kernel, self.cfg)
    }
}

/// The last [`RECENT_LAUNCHES`] launches.
struct Ring {
    slots: [Option<LaunchRecord>; RECENT_LAUNCHES],
    next: usize,
}

thread_local! {
    /// The [`Launcher::binding`] whose context this thread has current (0: none known).
    static BOUND: Cell<u64> = const { Cell::new(0) };
}

/// Binding numbers, one per launcher, never reused.
static NEXT_BINDING: AtomicU64 = AtomicU64::new(1);

/// Forgets which context this thread has current, so that the next launch or copy of every
/// runtime binds its own: for calls that may make another context current behind the
/// launchers' back (creating or dropping a CUDA context, loading a module).
pub fn forget_thread_binding() {
    BOUND.with(|b| b.set(0));
}

/// The shared launch path of a runtime whose kernels resolve to `F`.
pub struct Launcher<F> {
    functions: Box<[OnceLock<F>]>,
    /// Serialises first resolutions (a module load is not something to race).
    resolving: Mutex<()>,
    /// The owning runtime's counters (launches here; copies and allocations by the runtime).
    pub counters: Counters,
    recent: Mutex<Ring>,
    debug_sync: bool,
    binding: u64,
}

impl<F: Send + Sync> Launcher<F> {
    /// An empty table. `debug_sync`: wait for and check every launch.
    pub fn new(debug_sync: bool) -> Launcher<F> {
        Launcher {
            functions: (0..KERNEL_COUNT).map(|_| OnceLock::new()).collect(),
            resolving: Mutex::new(()),
            counters: Counters::default(),
            recent: Mutex::new(Ring { slots: [None; RECENT_LAUNCHES], next: 0 }),
            debug_sync,
            binding: NEXT_BINDING.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// Whether every launch is waited for and checked.
    pub fn debug_sync(&self) -> bool {
        self.debug_sync
    }

    /// `kernel` resolved: from the table, or by `driver` on its first use.
    #[inline]
    pub fn function<D: Driver<Function = F>>(&self, driver: &D, kernel: KernelId) -> Result<&F, GpuError> {
        match self.functions[kernel.index()].get() {
            Some(f) => Ok(f),
            None => self.resolve_slow(driver, kernel),
        }
    }

    #[cold]
    fn resolve_slow<D: Driver<Function = F>>(&self, driver: &D, kernel: KernelId) -> Result<&F, GpuError> {
        let _one_at_a_time = self.resolving.lock().unwrap_or_else(|e| e.into_inner());
        let slot = &self.functions[kernel.index()];
        if slot.get().is_none() {
            let f = driver.resolve(kernel);
            // Resolving may have made the context current by itself (cudarc binds to load a
            // module): another launcher's binding on this thread is no longer to be trusted.
            forget_thread_binding();
            let _ = slot.set(f?);
        }
        Ok(slot.get().expect("set just above"))
    }

    /// Binds the runtime's context to this thread unless this launcher bound it last here.
    #[inline]
    pub fn ensure_bound<D: Driver<Function = F>>(&self, driver: &D) -> Result<(), GpuError> {
        if BOUND.with(Cell::get) != self.binding {
            driver.bind()?;
            self.note_bound();
        }
        Ok(())
    }

    /// Records that the runtime's context is current on this thread (after a call that binds it
    /// by itself, e.g. loading a module through cudarc).
    pub fn note_bound(&self) {
        BOUND.with(|b| b.set(self.binding));
    }

    /// Launches `kernel`: counts it, resolves it (once), records it among the recent launches,
    /// binds the context (once per thread), packs `args` in place and hands the launch to
    /// `driver`; with `debug_sync`, then waits and checks. A driver error comes back with the
    /// recent launches appended.
    ///
    /// Panics, naming the kernel, on more than [`MAX_ARGS`] arguments (pass a `#[repr(C)]`
    /// parameter struct instead).
    #[inline]
    pub fn launch<D: Driver<Function = F>>(
        &self,
        driver: &D,
        kernel: KernelId,
        cfg: LaunchCfg,
        args: &[Arg<'_>],
    ) -> Result<(), GpuError> {
        let seq = self.counters.launch();
        let f = self.function(driver, kernel)?;
        self.record(LaunchRecord { seq, kernel, cfg });
        self.ensure_bound(driver)?;
        let Some(mut packed) = PackedArgs::new(args) else {
            panic!(
                "launching {kernel} {cfg}: {} arguments, more than the {MAX_ARGS} a launch packs \
                 (pass a #[repr(C)] parameter struct)",
                args.len()
            )
        };
        // SAFETY: the launch code that built `args` for this kernel is the same on every
        // runtime; `packed` points into `args`, alive for the call.
        unsafe { driver.launch(kernel, f, &cfg, packed.as_mut_ptrs()) }.map_err(|e| self.device_error(e))?;
        if self.debug_sync {
            driver.check(kernel, &cfg).map_err(|e| self.device_error(e))?;
        }
        Ok(())
    }

    fn record(&self, r: LaunchRecord) {
        let mut ring = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        let i = ring.next;
        ring.slots[i] = Some(r);
        ring.next = (i + 1) % RECENT_LAUNCHES;
    }

    /// The last launches, oldest first.
    pub fn recent(&self) -> Vec<LaunchRecord> {
        let ring = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        (0..RECENT_LAUNCHES).filter_map(|i| ring.slots[(ring.next + i) % RECENT_LAUNCHES]).collect()
    }

    /// `e` with the recent launches appended to its message (see [`GpuError::with_context`]).
    pub fn device_error(&self, e: GpuError) -> GpuError {
        let recent = self.recent();
        if recent.is_empty() {
            return e;
        }
        let mut s = format!("\n  last {} launches, oldest first:", recent.len());
        for r in &recent {
            s.push_str(&format!("\n    {r}"));
        }
        e.with_context(&s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::gpu::kernels::k;
    use std::sync::atomic::AtomicUsize;

    /// Counts what the launcher asks of it.
    #[derive(Default)]
    struct Counting {
        resolves: AtomicUsize,
        binds: AtomicUsize,
        launches: AtomicUsize,
    }

    impl Driver for Counting {
        type Function = ();
        fn resolve(&self, _kernel: KernelId) -> Result<(), GpuError> {
            self.resolves.fetch_add(1, Ordering::Relaxed);
            Ok(())
        }
        fn bind(&self) -> Result<(), GpuError> {
            self.binds.fetch_add(1, Ordering::Relaxed);
            Ok(())
        }
        unsafe fn launch(
            &self,
            _kernel: KernelId,
            _f: &(),
            _cfg: &LaunchCfg,
            params: &mut [*mut c_void],
        ) -> Result<(), GpuError> {
            // The packed pointers point at the values themselves.
            assert_eq!(*(params[1] as *const i32), 7);
            self.launches.fetch_add(1, Ordering::Relaxed);
            Ok(())
        }
        fn check(&self, _kernel: KernelId, _cfg: &LaunchCfg) -> Result<(), GpuError> {
            Ok(())
        }
    }

    fn launch(l: &Launcher<()>, d: &Counting, kernel: KernelId) {
        l.launch(d, kernel, LaunchCfg::linear(1, 32), &[Arg::Ptr(64), Arg::I32(7)]).unwrap();
    }

    #[test]
    fn kernels_resolve_once_and_the_context_binds_once_per_thread() {
        let (a, da) = (Launcher::<()>::new(false), Counting::default());
        let (b, db) = (Launcher::<()>::new(false), Counting::default());
        for _ in 0..3 {
            launch(&a, &da, k::fill_f32);
            launch(&a, &da, k::relu_fwd_f32);
        }
        // Resolving forgets the binding once per new kernel; then it holds.
        assert_eq!(da.resolves.load(Ordering::Relaxed), 2);
        let binds = da.binds.load(Ordering::Relaxed);
        assert!(binds <= 2, "{binds} binds for 2 kernels");
        for _ in 0..3 {
            launch(&a, &da, k::fill_f32);
        }
        assert_eq!(da.binds.load(Ordering::Relaxed), binds, "no rebinding while nothing else binds");
        // Another runtime on the same thread binds its own context; the first one rebinds after.
        launch(&b, &db, k::fill_f32);
        launch(&a, &da, k::fill_f32);
        assert_eq!(da.binds.load(Ordering::Relaxed), binds + 1);
        // Another thread binds for itself, once.
        std::thread::scope(|s| {
            s.spawn(|| {
                launch(&a, &da, k::fill_f32);
                launch(&a, &da, k::fill_f32);
            });
        });
        assert_eq!(da.binds.load(Ordering::Relaxed), binds + 2);
        assert_eq!(da.launches.load(Ordering::Relaxed), 12);
        assert_eq!(a.counters.snapshot().launches, 12);
    }
}
