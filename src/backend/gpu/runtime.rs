//! The seam between op code and a GPU: allocate, free, copy, launch, synchronize.
//!
//! `CudaRuntime` implements it with the CUDA driver; `EmuRuntime` runs the same kernels on the
//! host. Op code (grid sizing, argument order, buffer offsets) is written once against this
//! trait, so the emulator exercises exactly the launch code that runs on a GPU.

use std::ffi::c_void;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use super::kernels::KernelId;
pub use super::launcher::LaunchRecord;

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

impl fmt::Display for LaunchCfg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ((gx, gy, gz), (bx, by, bz)) = (self.grid, self.block);
        write!(f, "grid ({gx},{gy},{gz}) block ({bx},{by},{bz})")?;
        if self.shared_bytes > 0 {
            write!(f, " smem {}", self.shared_bytes)?;
        }
        Ok(())
    }
}

impl LaunchCfg {
    /// A 1-D launch of `blocks` blocks of `threads` threads.
    pub fn linear(blocks: u32, threads: u32) -> LaunchCfg {
        LaunchCfg { grid: (blocks.max(1), 1, 1), block: (threads, 1, 1), shared_bytes: 0 }
    }
}

/// One kernel argument, passed by value exactly as `cuLaunchKernel` expects. A launch packs a
/// pointer to each argument's value in place ([`PackedArgs`]): nothing is copied or allocated.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Arg<'a> {
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
    /// A `#[repr(C)]` parameter struct passed by value: its bytes, borrowed (see [`Arg::pod`]).
    Pod(&'a [u8]),
}

impl<'a> Arg<'a> {
    /// A `#[repr(C)]` parameter struct shared with a kernel's `.cu` file, passed by value. The
    /// bytes are borrowed, not copied: `value` keeps its alignment, which the emulator's
    /// trampolines rely on when they read the struct in place.
    pub fn pod<T: bytemuck::Pod>(value: &'a T) -> Arg<'a> {
        Arg::Pod(bytemuck::bytes_of(value))
    }

    /// The address of the argument's value, as `kernelParams` wants it.
    fn value_ptr(&self) -> *mut c_void {
        let p: *const c_void = match self {
            Arg::Ptr(v) => v as *const DevPtr as *const c_void,
            Arg::I32(v) => v as *const i32 as *const c_void,
            Arg::U32(v) => v as *const u32 as *const c_void,
            Arg::F32(v) => v as *const f32 as *const c_void,
            Arg::Ptrs8(v) => v.as_ptr() as *const c_void,
            Arg::Pod(b) => b.as_ptr() as *const c_void,
        };
        // The driver and the emulator only read through kernelParams.
        p as *mut c_void
    }
}

/// Most arguments one launch packs (a parameter struct counts as one).
pub const MAX_ARGS: usize = 32;

/// The `void*` array of a launch (`kernelParams`): one pointer per argument, pointing at the
/// value inside the borrowed [`Arg`] itself. A fixed-capacity array on the stack: packing
/// allocates nothing and copies no argument.
pub struct PackedArgs<'a> {
    ptrs: [*mut c_void; MAX_ARGS],
    len: usize,
    _args: std::marker::PhantomData<&'a [Arg<'a>]>,
}

impl<'a> PackedArgs<'a> {
    /// Packs `args` in order; `None` past [`MAX_ARGS`] arguments.
    #[inline]
    pub fn new(args: &'a [Arg<'a>]) -> Option<PackedArgs<'a>> {
        if args.len() > MAX_ARGS {
            return None;
        }
        let mut ptrs = [std::ptr::null_mut(); MAX_ARGS];
        for (p, a) in ptrs.iter_mut().zip(args) {
            *p = a.value_ptr();
        }
        Some(PackedArgs { ptrs, len: args.len(), _args: std::marker::PhantomData })
    }

    /// The `kernelParams` array.
    pub fn as_mut_ptrs(&mut self) -> &mut [*mut c_void] {
        &mut self.ptrs[..self.len]
    }
}

/// Which implementation a runtime is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RuntimeKind {
    /// A real GPU through the CUDA driver.
    Cuda,
    /// The host emulator.
    Emu,
    /// [`super::null::NullRuntime`]: launches prepared and then dropped (benchmarks of the host path).
    Null,
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
    /// The host touched a staging buffer whose asynchronous copy has not run yet (a read
    /// before a synchronisation, or an overwrite of data still being uploaded).
    NotReady(String),
    /// Work captured as a graph cannot be replayed correctly (it moved state it must update in
    /// place).
    Graph(String),
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
            GpuError::NotReady(e) => write!(f, "{e}"),
            GpuError::Graph(e) => write!(f, "graph capture: {e}"),
        }
    }
}

impl std::error::Error for GpuError {}

impl GpuError {
    /// The same error with `context` appended to its message: driver and emulator errors (a
    /// failed launch, a sticky device error) carry the recent launches this way. Other errors
    /// say all there is to say and are returned unchanged.
    pub fn with_context(self, context: &str) -> GpuError {
        match self {
            GpuError::Driver(m) => GpuError::Driver(format!("{m}{context}")),
            GpuError::Emu(m) => GpuError::Emu(format!("{m}{context}")),
            other => other,
        }
    }
}

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
    /// Counts a launch; returns how many launches there were before it (the launch's sequence
    /// number, from 0).
    pub fn launch(&self) -> u64 {
        self.launches.fetch_add(1, Ordering::Relaxed)
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
    /// Copies constant host bytes (a kernel's descriptor table) to the device on the compute
    /// stream. Unlike [`Runtime::htod`] it may be recorded into a graph: the runtime then keeps
    /// its own copy of the bytes for as long as the graph lives, and every replay copies them
    /// again (the bytes of one recorded call never change).
    fn htod_const(&self, src: &[u8], dst: DevPtr) -> Result<(), GpuError> {
        self.htod(src, dst)
    }
    /// Copies device bytes to the host (waits for preceding work).
    fn dtoh(&self, src: DevPtr, dst: &mut [u8]) -> Result<(), GpuError>;
    /// Copies `bytes` between device buffers.
    fn dtod(&self, src: DevPtr, dst: DevPtr, bytes: usize) -> Result<(), GpuError>;
    /// Launches `kernel` with `args` in `cuLaunchKernel` order.
    fn launch(&self, kernel: KernelId, cfg: LaunchCfg, args: &[Arg<'_>]) -> Result<(), GpuError>;
    /// Launches the kernel named `kernel` (a name lookup first: for tools and tests; op code
    /// launches by [`KernelId`]).
    fn launch_named(&self, kernel: &str, cfg: LaunchCfg, args: &[Arg<'_>]) -> Result<(), GpuError> {
        self.launch(super::kernels::lookup(kernel)?, cfg, args)
    }
    /// Waits for all launched work.
    fn synchronize(&self) -> Result<(), GpuError>;
    /// Lets `kernel` launch with up to `bytes` of dynamic shared memory. Needed above
    /// [`DEFAULT_DYNAMIC_SHARED`]; a launch asking for more than it allowed fails, on a GPU and
    /// on the emulator alike.
    fn allow_dynamic_shared(&self, kernel: KernelId, bytes: u32) -> Result<(), GpuError>;
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
    /// The last launches (at most [`super::launcher::RECENT_LAUNCHES`]), oldest first: what a
    /// device error's message lists.
    fn recent_launches(&self) -> Vec<LaunchRecord>;

    // Streams, events and pinned host staging. Everything above runs on [`Stream::Compute`], in
    // the order it was issued; a device-to-host copy ([`Runtime::dtoh`]) waits for the work
    // before it. A runtime without streams (the null one) runs everything in issue order and
    // keeps the defaults.

    /// Marks the current end of `stream`'s work; another stream can [`Runtime::wait`] on it.
    fn record(&self, stream: Stream) -> Result<Event, GpuError> {
        let _ = stream;
        Ok(Event(0))
    }
    /// Makes later work on `stream` wait for everything before `event`.
    fn wait(&self, stream: Stream, event: Event) -> Result<(), GpuError> {
        let _ = (stream, event);
        Ok(())
    }
    /// Whether the work before `event` has finished (never blocks).
    fn query(&self, event: Event) -> Result<bool, GpuError> {
        let _ = event;
        Ok(true)
    }
    /// Page-locked host memory for asynchronous copies ([`super::HostStage`] owns it).
    fn host_alloc(&self, bytes: usize) -> Result<*mut u8, GpuError> {
        Ok(Box::into_raw(vec![0u8; bytes].into_boxed_slice()) as *mut u8)
    }
    /// Returns memory from [`Runtime::host_alloc`].
    ///
    /// # Safety
    /// `ptr` came from this runtime's `host_alloc(bytes)`, no queued copy still uses it, and it is
    /// freed once.
    unsafe fn host_free(&self, ptr: *mut u8, bytes: usize) {
        drop(Box::from_raw(std::ptr::slice_from_raw_parts_mut(ptr, bytes)));
    }
    /// Enqueues a copy of `bytes` from page-locked `src` to `dst` on `stream`; `src` must not
    /// change until the copy has run (record an event after it and query it).
    ///
    /// # Safety
    /// `src` points at `bytes` bytes of [`Runtime::host_alloc`] memory that stays allocated
    /// until the copy has run.
    unsafe fn htod_async(
        &self,
        stream: Stream,
        src: *const u8,
        dst: DevPtr,
        bytes: usize,
    ) -> Result<(), GpuError> {
        let _ = stream;
        self.htod(std::slice::from_raw_parts(src, bytes), dst)
    }
    /// Enqueues a copy of `bytes` from `src` into page-locked `dst` on the compute stream; `dst`
    /// holds the values only once the copy has run.
    ///
    /// # Safety
    /// `dst` points at `bytes` writable bytes of [`Runtime::host_alloc`] memory that stays
    /// allocated, and is not read, until the copy has run.
    unsafe fn dtoh_async(&self, src: DevPtr, dst: *mut u8, bytes: usize) -> Result<(), GpuError> {
        self.dtoh(src, std::slice::from_raw_parts_mut(dst, bytes))
    }
    /// What the runtime knows of the buffer holding `ptr`, for error messages (the emulator
    /// names the queued kernel that last used it).
    fn describe_buffer(&self, ptr: DevPtr) -> String {
        format!("buffer {ptr:#x}")
    }

    // Graphs: work recorded once and replayed without the host issuing it again (CUDA graphs;
    // on the emulator, the recorded operations). Use [`super::Graph::capture`].

    /// Whether [`Runtime::begin_capture`] can work here (CUDA; the deferred emulator).
    fn can_capture(&self) -> bool {
        false
    }
    /// Starts recording the compute stream's work instead of running it. Until
    /// [`Runtime::end_capture`], nothing may wait for the device (a blocking read, a
    /// synchronisation) and host-to-device copies must come from staging memory; buffers freed
    /// meanwhile are kept for the graph (which replays their uses) and reused only inside it.
    fn begin_capture(&self) -> Result<(), GpuError> {
        Err(GpuError::Driver("this runtime cannot capture graphs".into()))
    }
    /// Stops recording: the graph's number, for [`Runtime::replay`].
    fn end_capture(&self) -> Result<u64, GpuError> {
        Err(GpuError::Driver("this runtime cannot capture graphs".into()))
    }
    /// Enqueues the recorded work again on the compute stream. Every buffer it uses must still
    /// be the one it recorded (alive, or kept for the graph).
    fn replay(&self, graph: u64) -> Result<(), GpuError> {
        let _ = graph;
        Err(GpuError::Driver("this runtime cannot replay graphs".into()))
    }
    /// Frees a graph and the buffers kept for it (after its replays have run).
    fn release_graph(&self, graph: u64) {
        let _ = graph;
    }
}

/// The streams of a runtime. Every launch, copy, allocation and free goes to `Compute` unless
/// said otherwise; `Copy` carries uploads that overlap the compute work (the next batch). Work
/// on one stream runs in issue order; two streams are ordered only through events
/// ([`Runtime::record`], [`Runtime::wait`]). A buffer the compute stream allocated or used may be
/// written by the copy stream only after it waited on an event recorded after that.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Stream {
    /// Kernels and ordinary copies.
    Compute,
    /// Uploads that overlap the compute work.
    Copy,
}

impl fmt::Display for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Stream::Compute => "compute",
            Stream::Copy => "copy",
        })
    }
}

/// A recorded point in a stream's work (the runtime's own numbering).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Event(pub u64);
