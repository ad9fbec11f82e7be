//! The seam between op code and a GPU: allocate, free, copy, launch, synchronize.
//!
//! `CudaRuntime` implements it with the CUDA driver; `EmuRuntime` runs the same kernels on the
//! host. Op code (grid sizing, argument order, buffer offsets) is written once against this
//! trait, so the emulator exercises exactly the launch code that runs on a GPU.

use std::ffi::c_void;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

/// A device address (a `CUdeviceptr` on CUDA, a host address under the emulator).
pub type DevPtr = u64;

/// Grid, block and dynamic shared memory of a launch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LaunchCfg {
    /// Blocks per grid (x, y, z).
    pub grid: (u32, u32, u32),
    /// Threads per block (x, y, z).
    pub block: (u32, u32, u32),
    /// Bytes of dynamic shared memory per block.
    pub shared_bytes: u32,
}

impl LaunchCfg {
    /// A 1-D launch of `blocks` blocks of `threads` threads.
    pub fn linear(blocks: u32, threads: u32) -> LaunchCfg {
        LaunchCfg { grid: (blocks.max(1), 1, 1), block: (threads, 1, 1), shared_bytes: 0 }
    }
}

/// One kernel argument, passed by value exactly as `cuLaunchKernel` expects.
#[derive(Clone, Debug, PartialEq)]
pub enum Arg {
    /// A device pointer.
    Ptr(DevPtr),
    /// `int`.
    I32(i32),
    /// `unsigned`.
    U32(u32),
    /// `float`.
    F32(f32),
    /// A struct of up to eight device pointers (`struct Ptrs8 { const float* p[8]; }`); unused
    /// slots are null.
    Ptrs8([DevPtr; 8]),
    /// A `#[repr(C)]` parameter struct passed by value, as 8-byte words (see [`Arg::pod`]).
    Words(Vec<u64>),
}

impl Arg {
    /// A `#[repr(C)]` parameter struct shared with a kernel's `.cu` file, passed by value.
    /// Its size must be a multiple of 8 bytes (pointer-aligned structs are).
    pub fn pod<T: bytemuck::Pod>(value: &T) -> Arg {
        let bytes = bytemuck::bytes_of(value);
        assert!(
            bytes.len() % 8 == 0,
            "Arg::pod: a {}-byte struct is not a whole number of words",
            bytes.len()
        );
        Arg::Words(
            bytes.chunks_exact(8).map(|w| u64::from_le_bytes(w.try_into().expect("8 bytes"))).collect(),
        )
    }
}

/// Argument values laid out in memory plus the `void*` array pointing at each.
pub struct PackedArgs {
    // Each value in its own 8-byte-aligned box so the pointers stay valid while `ptrs` lives.
    _values: Vec<Box<[u64]>>,
    ptrs: Vec<*mut c_void>,
}

impl PackedArgs {
    /// Packs `args` in order.
    pub fn new(args: &[Arg]) -> PackedArgs {
        let mut values: Vec<Box<[u64]>> = args
            .iter()
            .map(|a| match a {
                Arg::Ptr(p) => vec![*p].into_boxed_slice(),
                Arg::I32(v) => vec![*v as u32 as u64].into_boxed_slice(),
                Arg::U32(v) => vec![*v as u64].into_boxed_slice(),
                Arg::F32(v) => vec![v.to_bits() as u64].into_boxed_slice(),
                Arg::Ptrs8(p) => p.to_vec().into_boxed_slice(),
                Arg::Words(w) => w.clone().into_boxed_slice(),
            })
            .collect();
        // Little-endian: a 32-bit value sits in the low bytes of its u64, where a pointer to the
        // u64 reads it as an `int`/`float`.
        let ptrs = values.iter_mut().map(|b| b.as_mut_ptr() as *mut c_void).collect();
        PackedArgs { _values: values, ptrs }
    }

    /// The `kernelParams` array.
    pub fn as_mut_ptrs(&mut self) -> &mut [*mut c_void] {
        &mut self.ptrs
    }
}

/// Which implementation a runtime is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RuntimeKind {
    /// A real GPU through the CUDA driver.
    Cuda,
    /// The host emulator.
    Emu,
}

/// Errors from a GPU runtime.
#[derive(Clone, Debug, PartialEq)]
pub enum GpuError {
    /// libcuda could not be loaded.
    NoDriver(String),
    /// The driver reports no device (or the ordinal is out of range).
    NoDevice(String),
    /// The binary has no PTX (built without nvcc).
    NoKernels,
    /// The emulator was not compiled in.
    NoEmulator,
    /// A kernel name that no module provides.
    UnknownKernel(String),
    /// Device memory exhausted.
    OutOfMemory {
        /// The request that failed.
        bytes: usize,
    },
    /// Any other driver error, with the call that failed.
    Driver(String),
    /// The emulator caught a bug (out-of-bounds write, divergent barrier, ...).
    Emu(String),
}

impl fmt::Display for GpuError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GpuError::NoDriver(why) => write!(f, "no CUDA driver: {why}"),
            GpuError::NoDevice(why) => write!(f, "no CUDA device: {why}"),
            GpuError::NoKernels => write!(
                f,
                "this binary was built without CUDA kernels (nvcc was not found at build time); \
                 install the CUDA toolkit (or set NVCC / CUDA_HOME) and rebuild"
            ),
            GpuError::NoEmulator => {
                write!(f, "this binary was built without the kernel emulator (feature `emu`)")
            }
            GpuError::UnknownKernel(k) => write!(f, "no kernel named {k:?} in the built modules"),
            GpuError::OutOfMemory { bytes } => {
                write!(f, "out of GPU memory allocating {bytes} bytes; try a smaller --batch")
            }
            GpuError::Driver(e) => write!(f, "CUDA error: {e}"),
            GpuError::Emu(e) => write!(f, "emulator: {e}"),
        }
    }
}

impl std::error::Error for GpuError {}

/// Dynamic shared memory a launch may use without [`Runtime::allow_dynamic_shared`]: a CUDA
/// device refuses more unless the kernel opted in (`CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES`).
pub const DEFAULT_DYNAMIC_SHARED: u32 = 48 * 1024;

/// Device memory held by a runtime's allocator, in bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemStats {
    /// Bytes handed out and not yet freed (as the allocator rounds them).
    pub in_use: usize,
    /// The largest `in_use` since the runtime was made or [`Runtime::reset_peak_memory`].
    pub peak: usize,
    /// Freed bytes the allocator keeps for reuse instead of returning them to the driver.
    pub cached: usize,
}

/// What a runtime has done since it was made: a snapshot of [`Counters`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Kernel launches.
    pub launches: u64,
    /// Host-to-device copies.
    pub htod: u64,
    /// Device-to-host copies (each one waits for the work before it).
    pub dtoh: u64,
    /// Device-to-device copies.
    pub dtod: u64,
    /// Explicit [`Runtime::synchronize`] calls.
    pub synchronizes: u64,
    /// Allocations requested (served from the cache or the driver).
    pub allocations: u64,
}

impl Counts {
    /// What happened between `before` and `self`.
    pub fn since(&self, before: &Counts) -> Counts {
        Counts {
            launches: self.launches - before.launches,
            htod: self.htod - before.htod,
            dtoh: self.dtoh - before.dtoh,
            dtod: self.dtod - before.dtod,
            synchronizes: self.synchronizes - before.synchronizes,
            allocations: self.allocations - before.allocations,
        }
    }

    /// Times the host waited for the device: synchronisations plus device-to-host copies.
    pub fn host_waits(&self) -> u64 {
        self.synchronizes + self.dtoh
    }
}

/// The counters behind [`Runtime::counts`], shared by both runtimes.
#[derive(Debug, Default)]
pub struct Counters {
    launches: AtomicU64,
    htod: AtomicU64,
    dtoh: AtomicU64,
    dtod: AtomicU64,
    synchronizes: AtomicU64,
    allocations: AtomicU64,
}

impl Counters {
    /// Counts a launch.
    pub fn launch(&self) {
        self.launches.fetch_add(1, Ordering::Relaxed);
    }
    /// Counts a host-to-device copy.
    pub fn htod(&self) {
        self.htod.fetch_add(1, Ordering::Relaxed);
    }
    /// Counts a device-to-host copy.
    pub fn dtoh(&self) {
        self.dtoh.fetch_add(1, Ordering::Relaxed);
    }
    /// Counts a device-to-device copy.
    pub fn dtod(&self) {
        self.dtod.fetch_add(1, Ordering::Relaxed);
    }
    /// Counts a synchronisation.
    pub fn synchronize(&self) {
        self.synchronizes.fetch_add(1, Ordering::Relaxed);
    }
    /// Counts an allocation.
    pub fn allocation(&self) {
        self.allocations.fetch_add(1, Ordering::Relaxed);
    }
    /// The counts now.
    pub fn snapshot(&self) -> Counts {
        let r = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Counts {
            launches: r(&self.launches),
            htod: r(&self.htod),
            dtoh: r(&self.dtoh),
            dtod: r(&self.dtod),
            synchronizes: r(&self.synchronizes),
            allocations: r(&self.allocations),
        }
    }
}

/// A device that runs the project's kernels.
pub trait Runtime: Send + Sync {
    /// CUDA or emulator.
    fn kind(&self) -> RuntimeKind;
    /// A one-line description (device name, compute capability, PTX target).
    fn describe(&self) -> String;
    /// Allocates `bytes` (contents unspecified).
    fn alloc(&self, bytes: usize) -> Result<DevPtr, GpuError>;
    /// Returns an allocation of `bytes` made by [`Runtime::alloc`].
    fn free(&self, ptr: DevPtr, bytes: usize);
    /// Copies host bytes to the device.
    fn htod(&self, src: &[u8], dst: DevPtr) -> Result<(), GpuError>;
    /// Copies device bytes to the host (waits for preceding work).
    fn dtoh(&self, src: DevPtr, dst: &mut [u8]) -> Result<(), GpuError>;
    /// Copies `bytes` between device buffers.
    fn dtod(&self, src: DevPtr, dst: DevPtr, bytes: usize) -> Result<(), GpuError>;
    /// Launches `kernel` with `args` in `cuLaunchKernel` order.
    fn launch(&self, kernel: &str, cfg: LaunchCfg, args: &[Arg]) -> Result<(), GpuError>;
    /// Waits for all launched work.
    fn synchronize(&self) -> Result<(), GpuError>;
    /// Lets `kernel` launch with up to `bytes` of dynamic shared memory. Needed above
    /// [`DEFAULT_DYNAMIC_SHARED`]; a launch asking for more than it allowed fails, on a GPU and
    /// on the emulator alike.
    fn allow_dynamic_shared(&self, kernel: &str, bytes: u32) -> Result<(), GpuError>;
    /// Milliseconds of device time taken by the work that `work` enqueues, measured between two
    /// events on the stream (CUDA) or by the host clock around it (the emulator runs launches
    /// synchronously). Waits for that work to finish.
    fn time_ms(&self, work: &mut dyn FnMut() -> Result<(), GpuError>) -> Result<f64, GpuError>;
    /// What the allocator holds now and at its peak.
    fn memory(&self) -> MemStats;
    /// Starts a new peak: sets [`MemStats::peak`] to the bytes in use now.
    fn reset_peak_memory(&self);
    /// Launches, copies, synchronisations and allocations so far.
    fn counts(&self) -> Counts;
}
