//! Errors that name their kernel (issue 10, item 6): a device error raised inside an op unwinds
//! with its message (not an opaque `Box<dyn Any>`), naming the failing kernel and listing the
//! launches before it; the `GpuError` itself stays recoverable from the panic.
#![cfg(feature = "emu")]

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use darts::backend::gpu::emu::EmuRuntime;
use darts::backend::gpu::{
    Arg, Counts, DevPtr, GpuBuf, GpuError, KernelId, LaunchCfg, LaunchRecord, MemStats, Runtime, RuntimeKind,
};
use darts::ops::{elementwise, pool};
use darts::tensor::{gpu_error_of, gpu_ok};
use darts::{Device, Tensor};

/// The emulator, except that an allocation of exactly `short` bytes comes back 4 bytes short:
/// a planted bug the first kernel writing that buffer trips over (a write past its end).
struct ShortAlloc {
    inner: EmuRuntime,
    short: usize,
}

impl Runtime for ShortAlloc {
    fn kind(&self) -> RuntimeKind {
        self.inner.kind()
    }
    fn describe(&self) -> String {
        self.inner.describe()
    }
    fn alloc(&self, bytes: usize) -> Result<DevPtr, GpuError> {
        self.inner.alloc(if bytes == self.short { bytes - 4 } else { bytes })
    }
    fn free(&self, ptr: DevPtr, bytes: usize) {
        self.inner.free(ptr, bytes)
    }
    fn htod(&self, src: &[u8], dst: DevPtr) -> Result<(), GpuError> {
        self.inner.htod(src, dst)
    }
    fn dtoh(&self, src: DevPtr, dst: &mut [u8]) -> Result<(), GpuError> {
        self.inner.dtoh(src, dst)
    }
    fn dtod(&self, src: DevPtr, dst: DevPtr, bytes: usize) -> Result<(), GpuError> {
        self.inner.dtod(src, dst, bytes)
    }
    fn launch(&self, kernel: KernelId, cfg: LaunchCfg, args: &[Arg<'_>]) -> Result<(), GpuError> {
        self.inner.launch(kernel, cfg, args)
    }
    fn synchronize(&self) -> Result<(), GpuError> {
        self.inner.synchronize()
    }
    fn allow_dynamic_shared(&self, kernel: KernelId, bytes: u32) -> Result<(), GpuError> {
        self.inner.allow_dynamic_shared(kernel, bytes)
    }
    fn time_ms(&self, work: &mut dyn FnMut() -> Result<(), GpuError>) -> Result<f64, GpuError> {
        self.inner.time_ms(work)
    }
    fn memory(&self) -> MemStats {
        self.inner.memory()
    }
    fn reset_peak_memory(&self) {
        self.inner.reset_peak_memory()
    }
    fn counts(&self) -> Counts {
        self.inner.counts()
    }
    fn recent_launches(&self) -> Vec<LaunchRecord> {
        self.inner.recent_launches()
    }
}

/// The panic message of `f`, which must panic with a `String` payload, and the `GpuError`
/// recovered from it.
fn panic_of(f: impl FnOnce()) -> (String, Option<GpuError>) {
    let payload = catch_unwind(AssertUnwindSafe(f)).expect_err("expected a panic");
    let err = gpu_error_of(&*payload);
    let msg = payload.downcast_ref::<String>().cloned().unwrap_or_else(|| {
        panic!("the panic payload is not a message (a test harness would print only `Box<dyn Any>`)")
    });
    (msg, err)
}

#[test]
fn a_kernel_fault_inside_an_op_panics_with_a_message_naming_the_kernel() {
    // max pool 3x3, stride 2, pad 1 of [2, 3, 9, 9]: y is [2, 3, 5, 5], 600 bytes, handed out
    // 596 bytes long. Schedule 0 puts the buffer's end against a guard page.
    let rt = Arc::new(ShortAlloc { inner: EmuRuntime::new(0, 0), short: 2 * 3 * 5 * 5 * 4 });
    let device = Device::Gpu(rt.clone());
    let x: Vec<f32> = (0..2 * 3 * 9 * 9).map(|i| ((i * 37) % 101) as f32 - 50.0).collect();
    let x = Tensor::from_vec(&[2, 3, 9, 9], x).to_device(&device);
    let r = elementwise::relu(&x); // a launch before the failing one
    let (msg, err) = panic_of(|| {
        pool::max_pool(&r, 3, 2, 1);
    });
    assert!(
        msg.contains("max_pool_fwd_f32") && msg.contains("past the end of a 596-byte buffer"),
        "the message must name the failing kernel and what it did: {msg}"
    );
    assert!(
        msg.contains("last 2 launches, oldest first")
            && msg.contains("#0 relu_fwd_f32 grid (2,1,1) block (256,1,1)")
            && msg.contains("#1 max_pool_fwd_f32 grid"),
        "the message must list the launches before the failure: {msg}"
    );
    match err {
        Some(GpuError::Emu(m)) => assert_eq!(format!("emulator: {m}"), msg),
        other => panic!("the GpuError must be recoverable from the panic, got {other:?}"),
    }
}

#[test]
fn a_failed_launch_lists_the_last_sixteen_launches() {
    let rt: Arc<dyn Runtime> = Arc::new(EmuRuntime::new(1, 0));
    let mut y = GpuBuf::alloc(&rt, 100).unwrap();
    for _ in 0..20 {
        darts::backend::gpu::launch::elementwise::fill(&mut y, 1.0).unwrap();
    }
    // 128 threads write 100 floats with no bounds check (an emulator test kernel).
    let err =
        rt.launch_named("oob_write_f32", LaunchCfg::linear(1, 128), &[y.arg(), Arg::I32(100)]).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("oob_write_f32") && msg.contains("wrote past the end"), "{msg}");
    assert!(msg.contains("last 16 launches, oldest first"), "{msg}");
    assert!(msg.contains("#5 fill_f32") && !msg.contains("#4 fill_f32"), "only the last 16: {msg}");
    assert!(msg.trim_end().ends_with("#20 oob_write_f32 grid (1,1,1) block (128,1,1)"), "{msg}");
    let recent = rt.recent_launches();
    assert_eq!(recent.len(), 16);
    assert_eq!(recent.last().map(|r| r.kernel.name()), Some("oob_write_f32"));

    // Through gpu_ok, as an op would unwrap it: the same text is the panic message.
    let (panicked, recovered) = panic_of(|| gpu_ok(Err::<(), _>(err.clone())));
    assert_eq!(panicked, msg);
    assert_eq!(recovered, Some(err));
}

#[test]
fn an_unknown_kernel_name_panics_naming_it() {
    let rt: Arc<dyn Runtime> = Arc::new(EmuRuntime::new(0, 0));
    let (msg, err) = panic_of(|| gpu_ok(rt.launch_named("no_such_kernel_f32", LaunchCfg::linear(1, 1), &[])));
    assert!(msg.contains("no_such_kernel_f32"), "{msg}");
    assert!(matches!(err, Some(GpuError::UnknownKernel(_))), "{err:?}");
}

#[test]
fn other_panics_carry_no_gpu_error() {
    let payload = catch_unwind(|| panic!("not a device error")).expect_err("panics");
    assert_eq!(gpu_error_of(&*payload), None);
}
