//! Host cost of a kernel launch, BEFORE the launch fast path (issue 10, item 3): a mirror of
//! `CudaRuntime::launch` minus the driver calls (the counter, the kernel looked up by name in a
//! hash map under a mutex and its `CudaFunction` cloned, every argument boxed by `PackedArgs`),
//! measured on a 25-argument launch and through two real launchers on a runtime whose launches
//! do only that. `bind_to_thread` (a `cuCtxGetCurrent` per launch) is a driver call and is not
//! mirrored, so these figures are a lower bound of the real path.
//!
//! ```sh
//! cargo bench --bench launch
//! ```

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use darts::backend::geom::Conv2dGeom;
use darts::backend::gpu::kernels::all_kernels;
use darts::backend::gpu::launch::{depthwise, elementwise};
use darts::backend::gpu::runtime::{Counters, PackedArgs};
use darts::backend::gpu::{
    Arg, Counts, DevPtr, Gpu, GpuBuf, GpuError, LaunchCfg, MemStats, Runtime, RuntimeKind,
};

/// What `CudaRuntime::function` clones per launch: a `CUfunction` and an `Arc` of its module.
#[derive(Clone)]
#[allow(dead_code)]
struct Func {
    cu: u64,
    module: Arc<()>,
}

/// A runtime whose launch is `CudaRuntime::launch` of main without the driver calls.
struct MirrorRuntime {
    functions: Mutex<HashMap<String, Func>>,
    counters: Counters,
    next: AtomicU64,
}

impl MirrorRuntime {
    fn new() -> MirrorRuntime {
        let module = Arc::new(());
        let functions = all_kernels()
            .enumerate()
            .map(|(i, k)| (k.to_string(), Func { cu: i as u64, module: module.clone() }))
            .collect();
        MirrorRuntime {
            functions: Mutex::new(functions),
            counters: Counters::default(),
            next: AtomicU64::new(1 << 20),
        }
    }

    fn function(&self, kernel: &str) -> Result<Func, GpuError> {
        if let Some(f) = self.functions.lock().unwrap().get(kernel) {
            return Ok(f.clone());
        }
        Err(GpuError::UnknownKernel(kernel.into()))
    }
}

impl Runtime for MirrorRuntime {
    fn kind(&self) -> RuntimeKind {
        RuntimeKind::Cuda
    }
    fn describe(&self) -> String {
        "mirror of main's CUDA launch path, no driver".into()
    }
    fn alloc(&self, bytes: usize) -> Result<DevPtr, GpuError> {
        self.counters.allocation();
        Ok(self.next.fetch_add(bytes.next_multiple_of(256) as u64, Ordering::Relaxed))
    }
    fn free(&self, _ptr: DevPtr, _bytes: usize) {}
    fn htod(&self, _src: &[u8], _dst: DevPtr) -> Result<(), GpuError> {
        Ok(())
    }
    fn dtoh(&self, _src: DevPtr, _dst: &mut [u8]) -> Result<(), GpuError> {
        Ok(())
    }
    fn dtod(&self, _src: DevPtr, _dst: DevPtr, _bytes: usize) -> Result<(), GpuError> {
        Ok(())
    }
    fn launch(&self, kernel: &str, cfg: LaunchCfg, args: &[Arg]) -> Result<(), GpuError> {
        self.counters.launch();
        let f = self.function(kernel)?;
        let mut packed = PackedArgs::new(args);
        black_box((f, cfg, packed.as_mut_ptrs()));
        Ok(())
    }
    fn synchronize(&self) -> Result<(), GpuError> {
        Ok(())
    }
    fn allow_dynamic_shared(&self, _kernel: &str, _bytes: u32) -> Result<(), GpuError> {
        Ok(())
    }
    fn time_ms(&self, work: &mut dyn FnMut() -> Result<(), GpuError>) -> Result<f64, GpuError> {
        work()?;
        Ok(0.0)
    }
    fn memory(&self) -> MemStats {
        MemStats::default()
    }
    fn reset_peak_memory(&self) {}
    fn counts(&self) -> Counts {
        self.counters.snapshot()
    }
}

/// The DARTS shape of a sep conv's first depthwise stage at C=16, batch 64, 32x32.
fn dw_geom() -> Conv2dGeom {
    Conv2dGeom {
        n: 64,
        c_in: 16,
        h: 32,
        w: 32,
        c_out: 16,
        kh: 3,
        kw: 3,
        stride: 1,
        pad: 1,
        dilation: 1,
        groups: 16,
    }
}

fn bench(c: &mut Criterion) {
    let rt: Gpu = Arc::new(MirrorRuntime::new());
    let mut group = c.benchmark_group("launch");
    group.warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));

    // 3 pointers + 22 ints: `depthwise_relu_bwd_weight_partial_f32`'s list.
    let cfg = LaunchCfg { grid: (512, 16, 1), block: (256, 1, 1), shared_bytes: 9216 };
    group.bench_function("25_args/main", |b| {
        b.iter(|| {
            let i = |v: i32| Arg::I32(black_box(v));
            let args = [
                Arg::Ptr(black_box(0x1000)),
                Arg::Ptr(0x2000),
                Arg::Ptr(0x3000),
                i(64),
                i(16),
                i(32),
                i(32),
                i(32),
                i(32),
                i(3),
                i(3),
                i(1),
                i(1),
                i(1),
                i(32),
                i(2),
                i(1),
                i(4),
                i(10),
                i(34),
                i(34),
                i(34),
                i(352),
                i(2),
                i(1),
            ];
            rt.launch("depthwise_relu_bwd_weight_partial_f32", cfg, &args).unwrap()
        })
    });

    let g = dw_geom();
    let x = GpuBuf::alloc(&rt, g.x_len()).unwrap();
    let dy = GpuBuf::alloc(&rt, g.y_len()).unwrap();
    let mut dw = GpuBuf::alloc(&rt, g.w_len()).unwrap();
    let w = GpuBuf::alloc(&rt, g.w_len()).unwrap();
    let mut y = GpuBuf::alloc(&rt, g.y_len()).unwrap();
    group.bench_function("launcher/depthwise_relu_fwd/main", |b| {
        b.iter(|| depthwise::depthwise_relu_fwd(&g, &x, &w, &mut y).unwrap())
    });
    group.bench_function("launcher/depthwise_relu_bwd_weight/main", |b| {
        b.iter(|| depthwise::depthwise_relu_bwd_weight(&g, &x, &dy, &mut dw).unwrap())
    });
    let n = g.x_len();
    let mut r = GpuBuf::alloc(&rt, n).unwrap();
    group.bench_function("launcher/relu_fwd/main", |b| b.iter(|| elementwise::relu_fwd(&x, &mut r).unwrap()));
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
