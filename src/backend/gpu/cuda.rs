//! `CudaRuntime`: the CUDA driver through cudarc (dynamic loading: the binary runs, and fails
//! cleanly, on machines without CUDA), a compute and a copy stream, a stream-ordered caching
//! allocator, lazily loaded modules.
//!
//! Launches go through the shared [`Launcher`]: each kernel's `CUfunction` is resolved once into
//! a table indexed by [`KernelId`] (its module loaded on first use), arguments are packed in
//! place, and the context is bound once per thread. A driver error (a failed launch, or a sticky
//! error surfacing at a later call) lists the last launches; `debug_sync` (`--debug-sync`) waits
//! and checks after every launch, naming the kernel that failed.

use std::collections::HashMap;
use std::ffi::c_void;
use std::sync::{Arc, Mutex, OnceLock};

use cudarc::driver::{result, sys, CudaContext, CudaFunction, CudaModule, DriverError};
use cudarc::nvrtc::Ptx;

use super::kernels::{self, KernelId, PTX_BUILT};
use super::launcher::{self, Driver, LaunchRecord, Launcher};
use super::runtime::{
    Arg, Counts, DevPtr, Event, GpuError, LaunchCfg, MemStats, Runtime, RuntimeKind, Stream,
};

/// Facts about the device, for `darts info` and logs.
#[derive(Clone, Debug)]
pub struct DeviceInfo {
    /// Device name.
    pub name: String,
    /// Compute capability (major, minor).
    pub compute_capability: (i32, i32),
    /// Total memory in bytes.
    pub total_mem: usize,
    /// The PTX target loaded for this device (x10), if any was built.
    pub ptx_target: Option<u32>,
    /// Driver API version (e.g. 12080).
    pub driver_version: i32,
}

/// What the driver's JIT made of one kernel (`cuFuncGetAttribute`): the device compiles our PTX
/// with its own compiler, so these can differ from what `ptxas` reports at build time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KernelAttrs {
    /// Registers per thread.
    pub regs: i32,
    /// Local memory per thread in bytes (spills and stack frames).
    pub local_bytes: i32,
    /// Static shared memory per block in bytes.
    pub static_shared: i32,
    /// The most threads per block this kernel can launch with.
    pub max_threads: i32,
    /// The architecture the binary was compiled for (x10).
    pub binary_version: i32,
}

/// Free device allocations kept for reuse, by rounded size, and the bytes handed out; and the
/// blocks that graphs keep.
#[derive(Default)]
struct Cache {
    free: HashMap<usize, Vec<DevPtr>>,
    cached_bytes: usize,
    in_use: usize,
    peak: usize,
    /// The graph being captured: its number and the blocks freed meanwhile, by size (reused only
    /// by later allocations of the capture).
    capture: Option<(u64, HashMap<usize, Vec<DevPtr>>)>,
    /// Blocks freed while a graph was captured: the graph replays their uses, so they are its
    /// own until it is released (graph, size, whether a buffer holds it now).
    kept: HashMap<DevPtr, (u64, usize, bool)>,
}

impl Cache {
    fn taken(&mut self, size: usize) {
        self.in_use += size;
        self.peak = self.peak.max(self.in_use);
    }
}

/// A driver handle (stream or event) shared across threads: the driver API is thread-safe for
/// them, and the runtime owns and destroys them.
#[derive(Clone, Copy)]
struct Handle<T>(T);
// SAFETY: CUstream/CUevent are opaque driver handles, valid from any thread of the context.
unsafe impl<T> Send for Handle<T> {}
unsafe impl<T> Sync for Handle<T> {}

/// The device side of [`CudaRuntime`]'s launches: the context, its two streams and the modules
/// loaded so far.
struct CudaDevice {
    ctx: Arc<CudaContext>,
    /// Every launch and ordinary copy (non-blocking: no implicit ordering with the legacy stream).
    compute: Handle<sys::CUstream>,
    /// Uploads that overlap the compute work.
    copy: Handle<sys::CUstream>,
    /// The PTX target loaded (x10).
    ptx_target: u32,
    /// Per `MODULES` entry, once loaded.
    modules: Box<[OnceLock<Arc<CudaModule>>]>,
}

impl Driver for CudaDevice {
    type Function = CudaFunction;

    fn resolve(&self, kernel: KernelId) -> Result<CudaFunction, GpuError> {
        let (index, module) = kernel
            .module_index()
            .map(|i| (i, &kernels::MODULES[i]))
            .ok_or_else(|| GpuError::UnknownKernel(kernel.name().into()))?;
        let m = match self.modules[index].get() {
            Some(m) => m.clone(),
            None => {
                let (_, ptx) = kernels::ptx_for(module, self.ptx_target).ok_or(GpuError::NoKernels)?;
                let m = self
                    .ctx
                    .load_module(Ptx::from_src(ptx))
                    .map_err(|e| drv(&format!("loading module {}", module.stem), e))?;
                let _ = self.modules[index].set(m.clone());
                m
            }
        };
        m.load_function(kernel.name()).map_err(|e| drv(&format!("loading kernel {kernel}"), e))
    }

    fn bind(&self) -> Result<(), GpuError> {
        self.ctx.bind_to_thread().map_err(|e| drv("binding the context", e))
    }

    unsafe fn launch(
        &self,
        kernel: KernelId,
        f: &CudaFunction,
        cfg: &LaunchCfg,
        params: &mut [*mut c_void],
    ) -> Result<(), GpuError> {
        result::launch_kernel(f.cu_function(), cfg.grid, cfg.block, cfg.shared_bytes, self.compute.0, params)
            .map_err(|e| drv(&format!("launching {kernel} {cfg}"), e))
    }

    fn check(&self, kernel: KernelId, cfg: &LaunchCfg) -> Result<(), GpuError> {
        result::ctx::synchronize().map_err(|e| drv(&format!("{kernel} {cfg} failed (--debug-sync)"), e))
    }
}

/// The CUDA runtime. Create with [`CudaRuntime::new`].
///
/// Work goes to two non-blocking streams ([`Stream`]): everything to the compute stream unless a
/// copy asks for the copy stream. Copies are asynchronous on their stream; a device-to-host copy
/// into ordinary memory waits for its stream (a blocking read), one into a [`super::HostStage`]
/// does not. The allocator caches freed blocks: a block is freed in stream order (all compute
/// work is on one stream, so later work that gets it runs after every earlier use), and the
/// out-of-memory path waits for both streams before giving cached blocks back to the driver.
pub struct CudaRuntime {
    dev: CudaDevice,
    info: DeviceInfo,
    launcher: Launcher<CudaFunction>,
    cache: Mutex<Cache>,
    /// Recorded events not yet known complete, by number.
    events: Mutex<HashMap<u64, Handle<sys::CUevent>>>,
    next_event: std::sync::atomic::AtomicU64,
    /// Captured graphs (the graph and its executable instance), by number.
    graphs: Mutex<HashMap<u64, CapturedGraph>>,
    /// Page-locked copies of the constants a graph uploads ([`Runtime::htod_const`] while
    /// capturing), by graph: its copy nodes read them at every replay.
    consts: Mutex<HashMap<u64, Vec<PinnedBytes>>>,
}

/// Page-locked host memory and its length.
type PinnedBytes = (Handle<*mut u8>, usize);

/// A captured graph and its executable instance.
type CapturedGraph = (Handle<sys::CUgraph>, Handle<sys::CUgraphExec>);

fn drv(call: &str, e: DriverError) -> GpuError {
    if e.0 == sys::CUresult::CUDA_ERROR_OUT_OF_MEMORY {
        return GpuError::OutOfMemory { bytes: 0 };
    }
    GpuError::Driver(format!("{call}: {e}"))
}

/// Rounds an allocation up to its cache bucket: powers of two up to 1 MiB, then 1 MiB steps,
/// so reuse is likely without wasting more than a few percent on large buffers.
fn bucket(bytes: usize) -> usize {
    const MIB: usize = 1 << 20;
    if bytes <= MIB {
        bytes.max(256).next_power_of_two()
    } else {
        bytes.div_ceil(MIB) * MIB
    }
}

impl CudaRuntime {
    /// Opens device `ordinal`. Never panics: a missing libcuda, a missing device or a binary
    /// without PTX each give their own error. `debug_sync`: wait for and check every launch
    /// (slow; a device error then names the kernel that caused it, not a later call).
    pub fn new(ordinal: usize, debug_sync: bool) -> Result<CudaRuntime, GpuError> {
        // cudarc panics if libcuda is absent, so check first.
        if !unsafe { sys::is_culib_present() } {
            return Err(GpuError::NoDriver(
                "libcuda.so could not be loaded (no NVIDIA driver installed, or not on the library path)"
                    .into(),
            ));
        }
        let count = CudaContext::device_count().map_err(|e| GpuError::NoDevice(e.to_string()))?;
        if count <= 0 {
            return Err(GpuError::NoDevice("the driver reports 0 devices".into()));
        }
        if ordinal >= count as usize {
            return Err(GpuError::NoDevice(format!("device {ordinal} requested, {count} present")));
        }
        // Creating (or, on an error below, dropping) a context makes it current on this thread.
        launcher::forget_thread_binding();
        let ctx = CudaContext::new(ordinal).map_err(|e| GpuError::NoDevice(e.to_string()))?;
        // One stream and our own caching allocator: cudarc's per-allocation event tracking is
        // pure overhead here.
        unsafe { ctx.disable_event_tracking() };
        let (major, minor) = ctx.compute_capability().map_err(|e| drv("compute_capability", e))?;
        let cc = (major * 10 + minor) as u32;
        let ptx_target = kernels::MODULES.first().and_then(|m| kernels::ptx_for(m, cc)).map(|(a, _)| a);
        let mut driver_version = 0;
        unsafe { sys::cuDriverGetVersion(&mut driver_version) }
            .result()
            .map_err(|e| drv("cuDriverGetVersion", e))?;
        let info = DeviceInfo {
            name: ctx.name().map_err(|e| drv("device name", e))?,
            compute_capability: (major, minor),
            total_mem: ctx.total_mem().map_err(|e| drv("total_mem", e))?,
            ptx_target,
            driver_version,
        };
        if !PTX_BUILT {
            return Err(GpuError::NoKernels);
        }
        if ptx_target.is_none() {
            return Err(GpuError::Driver(format!(
                "no built PTX target supports compute capability {major}.{minor} (built: {:?})",
                kernels::PTX_ARCHS
            )));
        }
        let stream = || {
            result::stream::create(result::stream::StreamKind::NonBlocking)
                .map(Handle)
                .map_err(|e| drv("cuStreamCreate", e))
        };
        let dev = CudaDevice {
            ctx,
            compute: stream()?,
            copy: stream()?,
            ptx_target: ptx_target.unwrap_or(0),
            modules: kernels::MODULES.iter().map(|_| OnceLock::new()).collect(),
        };
        let rt = CudaRuntime {
            dev,
            info,
            launcher: Launcher::new(debug_sync),
            cache: Mutex::default(),
            events: Mutex::default(),
            next_event: std::sync::atomic::AtomicU64::new(1),
            graphs: Mutex::default(),
            consts: Mutex::default(),
        };
        // CudaContext::new made the context current on this thread.
        rt.launcher.note_bound();
        Ok(rt)
    }

    /// Binds the context to this thread unless it is bound already (once per thread).
    fn bind(&self) -> Result<(), GpuError> {
        self.launcher.ensure_bound(&self.dev)
    }

    /// A driver error of `call`, with the recent launches (an asynchronous kernel fault surfaces
    /// at whatever call comes next: the failing kernel is among them).
    fn fail(&self, call: &str, e: DriverError) -> GpuError {
        let err = self.launcher.device_error(drv(call, e));
        if self.launcher.debug_sync() || !matches!(err, GpuError::Driver(_)) {
            return err;
        }
        err.with_context(
            "\n  (kernels run asynchronously: a kernel's fault surfaces at a later call, so the failing \
             kernel is one of those listed, most likely the last; --debug-sync checks after every launch)",
        )
    }

    /// Device facts.
    pub fn info(&self) -> &DeviceInfo {
        &self.info
    }

    /// Registers, local (spill) bytes and shared memory of `kernel` as the driver compiled it.
    pub fn kernel_attributes(&self, kernel: KernelId) -> Result<KernelAttrs, GpuError> {
        use sys::CUfunction_attribute_enum as A;
        let f = self.launcher.function(&self.dev, kernel)?;
        self.bind()?;
        let get = |a: A| {
            unsafe { result::function::get_function_attribute(f.cu_function(), a) }
                .map_err(|e| drv(&format!("cuFuncGetAttribute({a:?}) of {kernel}"), e))
        };
        Ok(KernelAttrs {
            regs: get(A::CU_FUNC_ATTRIBUTE_NUM_REGS)?,
            local_bytes: get(A::CU_FUNC_ATTRIBUTE_LOCAL_SIZE_BYTES)?,
            static_shared: get(A::CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES)?,
            max_threads: get(A::CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK)?,
            binary_version: get(A::CU_FUNC_ATTRIBUTE_BINARY_VERSION)?,
        })
    }

    /// The driver stream of `stream`.
    fn stream(&self, stream: Stream) -> sys::CUstream {
        match stream {
            Stream::Compute => self.dev.compute.0,
            Stream::Copy => self.dev.copy.0,
        }
    }

    /// Waits for both streams.
    fn sync_streams(&self) -> Result<(), GpuError> {
        for s in [self.dev.compute, self.dev.copy] {
            unsafe { result::stream::synchronize(s.0) }.map_err(|e| self.fail("cuStreamSynchronize", e))?;
        }
        // Every recorded event is complete.
        for (_, e) in self.events.lock().unwrap().drain() {
            let _ = unsafe { result::event::destroy(e.0) };
        }
        Ok(())
    }

    /// Gives the cached blocks back to the driver, after both streams are idle (a cached block
    /// may still be used by queued work issued before its free).
    fn release_cache(&self) {
        if self.sync_streams().is_err() {
            return; // a sticky error: the blocks cannot be known idle
        }
        let mut cache = self.cache.lock().unwrap();
        for (_, ptrs) in cache.free.drain() {
            for p in ptrs {
                let _ = unsafe { result::free_sync(p) };
            }
        }
        cache.cached_bytes = 0;
    }
}

impl Runtime for CudaRuntime {
    fn kind(&self) -> RuntimeKind {
        RuntimeKind::Cuda
    }

    fn describe(&self) -> String {
        let i = &self.info;
        format!(
            "{} (compute {}.{}, {:.1} GiB, PTX compute_{})",
            i.name,
            i.compute_capability.0,
            i.compute_capability.1,
            i.total_mem as f64 / (1u64 << 30) as f64,
            i.ptx_target.unwrap_or(0)
        )
    }

    fn alloc(&self, bytes: usize) -> Result<DevPtr, GpuError> {
        self.launcher.counters.allocation();
        let size = bucket(bytes);
        {
            let mut cache = self.cache.lock().unwrap();
            // While capturing, a block the capture freed comes first (it is the graph's anyway).
            let kept = cache.capture.as_mut().and_then(|(_, free)| free.get_mut(&size)?.pop());
            if let Some(p) = kept {
                if let Some(k) = cache.kept.get_mut(&p) {
                    k.2 = true;
                }
                cache.taken(size);
                return Ok(p);
            }
            if let Some(p) = cache.free.get_mut(&size).and_then(|v| v.pop()) {
                cache.cached_bytes -= size;
                cache.taken(size);
                return Ok(p);
            }
        }
        self.bind()?;
        let p = match unsafe { result::malloc_sync(size) } {
            Ok(p) => p,
            Err(e) if e.0 == sys::CUresult::CUDA_ERROR_OUT_OF_MEMORY => {
                // Give the cached blocks back to the driver and try once more.
                self.release_cache();
                unsafe { result::malloc_sync(size) }.map_err(|_| GpuError::OutOfMemory { bytes })?
            }
            Err(e) => return Err(self.fail("cuMemAlloc", e)),
        };
        self.cache.lock().unwrap().taken(size);
        Ok(p)
    }

    fn free(&self, ptr: DevPtr, bytes: usize) {
        let size = bucket(bytes);
        let mut cache = self.cache.lock().unwrap();
        if let Some((graph, free)) = &mut cache.capture {
            let graph = *graph;
            free.entry(size).or_default().push(ptr);
            cache.kept.insert(ptr, (graph, size, false));
            cache.in_use -= size;
            return;
        }
        if let Some(k) = cache.kept.get_mut(&ptr) {
            k.2 = false; // still the graph's
            cache.in_use -= size;
            return;
        }
        cache.free.entry(size).or_default().push(ptr);
        cache.cached_bytes += size;
        cache.in_use -= size;
    }

    fn htod(&self, src: &[u8], dst: DevPtr) -> Result<(), GpuError> {
        self.launcher.counters.htod();
        self.bind()?;
        // From pageable memory the driver stages `src` before returning: it may be reused at once.
        unsafe { result::memcpy_htod_async(dst, src, self.dev.compute.0) }
            .map_err(|e| self.fail("cuMemcpyHtoDAsync", e))
    }

    fn htod_const(&self, src: &[u8], dst: DevPtr) -> Result<(), GpuError> {
        let capturing = self.cache.lock().unwrap().capture.as_ref().map(|(id, _)| *id);
        let Some(graph) = capturing else { return self.htod(src, dst) };
        // A pageable copy would invalidate the capture: the bytes go to page-locked memory of the
        // graph's own, which its copy node reads at every replay (freed with the graph).
        let host = self.host_alloc(src.len())?;
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), host, src.len()) };
        self.consts.lock().unwrap().entry(graph).or_default().push((Handle(host), src.len()));
        unsafe { self.htod_async(Stream::Compute, host, dst, src.len()) }
    }

    fn dtoh(&self, src: DevPtr, dst: &mut [u8]) -> Result<(), GpuError> {
        self.launcher.counters.dtoh();
        self.bind()?;
        let s = self.dev.compute.0;
        unsafe { result::memcpy_dtoh_async(dst, src, s) }.map_err(|e| self.fail("cuMemcpyDtoHAsync", e))?;
        unsafe { result::stream::synchronize(s) }
            .map_err(|e| self.fail("cuStreamSynchronize after a read", e))
    }

    fn dtod(&self, src: DevPtr, dst: DevPtr, bytes: usize) -> Result<(), GpuError> {
        self.launcher.counters.dtod();
        self.bind()?;
        unsafe { result::memcpy_dtod_async(dst, src, bytes, self.dev.compute.0) }
            .map_err(|e| self.fail("cuMemcpyDtoDAsync", e))
    }

    fn launch(&self, kernel: KernelId, cfg: LaunchCfg, args: &[Arg<'_>]) -> Result<(), GpuError> {
        self.launcher.launch(&self.dev, kernel, cfg, args)
    }

    fn synchronize(&self) -> Result<(), GpuError> {
        self.launcher.counters.synchronize();
        self.bind()?;
        self.sync_streams()
    }

    fn allow_dynamic_shared(&self, kernel: KernelId, bytes: u32) -> Result<(), GpuError> {
        let f = self.launcher.function(&self.dev, kernel)?;
        self.bind()?;
        unsafe {
            result::function::set_function_attribute(
                f.cu_function(),
                sys::CUfunction_attribute_enum::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                bytes as i32,
            )
        }
        .map_err(|e| drv(&format!("allowing {kernel} {bytes} bytes of dynamic shared memory"), e))
    }

    fn time_ms(&self, work: &mut dyn FnMut() -> Result<(), GpuError>) -> Result<f64, GpuError> {
        self.bind()?;
        // Timing events (CU_EVENT_DEFAULT); cudarc's defaults disable timing.
        let flags = sys::CUevent_flags::CU_EVENT_DEFAULT;
        let start = result::event::create(flags).map_err(|e| drv("cuEventCreate", e))?;
        let end = match result::event::create(flags) {
            Ok(e) => e,
            Err(e) => {
                let _ = unsafe { result::event::destroy(start) };
                return Err(drv("cuEventCreate", e));
            }
        };
        let timed = (|| {
            let stream = self.dev.compute.0; // the stream every launch goes to
            unsafe { result::event::record(start, stream) }.map_err(|e| drv("cuEventRecord", e))?;
            work()?;
            unsafe { result::event::record(end, stream) }.map_err(|e| drv("cuEventRecord", e))?;
            unsafe { result::event::synchronize(end) }.map_err(|e| self.fail("cuEventSynchronize", e))?;
            unsafe { result::event::elapsed(start, end) }.map_err(|e| drv("cuEventElapsedTime", e))
        })();
        unsafe {
            let _ = result::event::destroy(start);
            let _ = result::event::destroy(end);
        }
        Ok(timed? as f64)
    }

    fn memory(&self) -> MemStats {
        let c = self.cache.lock().unwrap();
        MemStats { in_use: c.in_use, peak: c.peak, cached: c.cached_bytes }
    }

    fn reset_peak_memory(&self) {
        let mut c = self.cache.lock().unwrap();
        c.peak = c.in_use;
    }

    fn counts(&self) -> Counts {
        self.launcher.counters.snapshot()
    }

    fn recent_launches(&self) -> Vec<LaunchRecord> {
        self.launcher.recent()
    }

    fn record(&self, stream: Stream) -> Result<Event, GpuError> {
        self.bind()?;
        let e = result::event::create(sys::CUevent_flags::CU_EVENT_DISABLE_TIMING)
            .map_err(|e| drv("cuEventCreate", e))?;
        if let Err(err) = unsafe { result::event::record(e, self.stream(stream)) } {
            let _ = unsafe { result::event::destroy(e) };
            return Err(self.fail("cuEventRecord", err));
        }
        let id = self.next_event.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.events.lock().unwrap().insert(id, Handle(e));
        Ok(Event(id))
    }

    fn wait(&self, stream: Stream, event: Event) -> Result<(), GpuError> {
        self.bind()?;
        // An event no longer held has completed: nothing to wait for.
        let Some(e) = self.events.lock().unwrap().get(&event.0).copied() else { return Ok(()) };
        unsafe {
            result::stream::wait_event(
                self.stream(stream),
                e.0,
                sys::CUevent_wait_flags::CU_EVENT_WAIT_DEFAULT,
            )
        }
        .map_err(|err| self.fail("cuStreamWaitEvent", err))
    }

    fn query(&self, event: Event) -> Result<bool, GpuError> {
        self.bind()?;
        let mut events = self.events.lock().unwrap();
        let Some(e) = events.get(&event.0).copied() else { return Ok(true) };
        match unsafe { result::event::query(e.0) } {
            Ok(()) => {
                events.remove(&event.0);
                let _ = unsafe { result::event::destroy(e.0) };
                Ok(true)
            }
            Err(err) if err.0 == sys::CUresult::CUDA_ERROR_NOT_READY => Ok(false),
            Err(err) => Err(self.fail("cuEventQuery", err)),
        }
    }

    fn host_alloc(&self, bytes: usize) -> Result<*mut u8, GpuError> {
        self.bind()?;
        // Page-locked, so copies from and to it are truly asynchronous.
        unsafe { result::malloc_host(bytes.max(1), 0) }
            .map(|p| p as *mut u8)
            .map_err(|e| drv(&format!("cuMemHostAlloc of {bytes} bytes"), e))
    }

    unsafe fn host_free(&self, ptr: *mut u8, _bytes: usize) {
        if self.bind().is_ok() {
            let _ = result::free_host(ptr as *mut c_void);
        }
    }

    unsafe fn htod_async(
        &self,
        stream: Stream,
        src: *const u8,
        dst: DevPtr,
        bytes: usize,
    ) -> Result<(), GpuError> {
        self.launcher.counters.htod();
        self.bind()?;
        result::memcpy_htod_async(dst, std::slice::from_raw_parts(src, bytes), self.stream(stream))
            .map_err(|e| self.fail("cuMemcpyHtoDAsync (staged)", e))
    }

    unsafe fn dtoh_async(&self, src: DevPtr, dst: *mut u8, bytes: usize) -> Result<(), GpuError> {
        self.launcher.counters.dtoh();
        self.bind()?;
        result::memcpy_dtoh_async(std::slice::from_raw_parts_mut(dst, bytes), src, self.dev.compute.0)
            .map_err(|e| self.fail("cuMemcpyDtoHAsync (staged)", e))
    }

    fn can_capture(&self) -> bool {
        true
    }

    fn begin_capture(&self) -> Result<(), GpuError> {
        self.bind()?;
        let id = self.next_event.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        {
            let mut cache = self.cache.lock().unwrap();
            if cache.capture.is_some() {
                return Err(GpuError::Driver("begin_capture while already capturing a graph".into()));
            }
            cache.capture = Some((id, HashMap::new()));
        }
        // Relaxed: our allocator may call cuMemAlloc while capturing (not a stream operation).
        let mode = sys::CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_RELAXED;
        unsafe { result::stream::begin_capture(self.dev.compute.0, mode) }.map_err(|e| {
            self.cache.lock().unwrap().capture = None;
            self.fail("cuStreamBeginCapture", e)
        })
    }

    fn end_capture(&self) -> Result<u64, GpuError> {
        self.bind()?;
        let id = match self.cache.lock().unwrap().capture.take() {
            Some((id, _)) => id,
            None => return Err(GpuError::Driver("end_capture without begin_capture".into())),
        };
        let graph = unsafe { result::stream::end_capture(self.dev.compute.0) }.map_err(|e| {
            self.fail("cuStreamEndCapture (the capture was invalidated by a wait or a pageable copy)", e)
        })?;
        let exec = match unsafe { result::graph::instantiate(graph, sys::CUgraphInstantiate_flags(0)) } {
            Ok(x) => x,
            Err(e) => {
                let _ = unsafe { result::graph::destroy(graph) };
                return Err(self.fail("cuGraphInstantiate", e));
            }
        };
        self.graphs.lock().unwrap().insert(id, (Handle(graph), Handle(exec)));
        Ok(id)
    }

    fn replay(&self, graph: u64) -> Result<(), GpuError> {
        self.bind()?;
        let Some((_, exec)) = self.graphs.lock().unwrap().get(&graph).copied() else {
            return Err(GpuError::Driver(format!("no graph {graph}")));
        };
        unsafe { result::graph::launch(exec.0, self.dev.compute.0) }
            .map_err(|e| self.fail("cuGraphLaunch", e))
    }

    fn release_graph(&self, graph: u64) {
        let Some((g, exec)) = self.graphs.lock().unwrap().remove(&graph) else { return };
        if self.bind().is_err() || self.sync_streams().is_err() {
            return; // a sticky error: its blocks cannot be known idle; leave them be
        }
        unsafe {
            let _ = result::graph::exec_destroy(exec.0);
            let _ = result::graph::destroy(g.0);
        }
        for (host, bytes) in self.consts.lock().unwrap().remove(&graph).unwrap_or_default() {
            // SAFETY: made by host_alloc in htod_const; the streams are idle (synchronised above).
            unsafe { self.host_free(host.0, bytes) };
        }
        let mut cache = self.cache.lock().unwrap();
        let mine: Vec<(DevPtr, usize, bool)> =
            cache.kept.iter().filter(|(_, k)| k.0 == graph).map(|(&p, k)| (p, k.1, k.2)).collect();
        for (ptr, size, held) in mine {
            cache.kept.remove(&ptr);
            if !held {
                cache.free.entry(size).or_default().push(ptr);
                cache.cached_bytes += size;
            }
        }
    }
}

impl Drop for CudaRuntime {
    fn drop(&mut self) {
        if self.bind().is_ok() {
            let graphs: Vec<u64> = self.graphs.lock().unwrap().keys().copied().collect();
            for g in graphs {
                self.release_graph(g);
            }
            self.release_cache();
            for s in [self.dev.compute, self.dev.copy] {
                let _ = unsafe { result::stream::destroy(s.0) };
            }
        }
        // Dropping the context binds it (cudarc) and may release it.
        launcher::forget_thread_binding();
    }
}
