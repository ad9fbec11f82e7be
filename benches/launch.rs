//! Host cost of a kernel launch (issue 10, item 3): the real launch path on [`NullRuntime`],
//! whose launches run everything `CudaRuntime::launch` runs on the host (the shared `Launcher`:
//! the id's table entry, packing, counters, the ring of recent launches, the per-thread binding
//! check) and then drop the launch instead of calling `cuLaunchKernel`.
//!
//! - `launch/25_args/null`: one `Runtime::launch` of 25 loose arguments (3 pointers, 22 ints:
//!   the list `depthwise_relu_bwd_weight_partial_f32` took before it got a parameter struct),
//!   through `dyn Runtime`, the arguments built per call as launch code builds them.
//! - `launch/25_args/main_mirror`: the same on a copy of main's path before the fast path (the
//!   kernel looked up by name in a hash map under a mutex and its function cloned, every argument
//!   boxed on the heap), kept here so both run on the same machine in the same state.
//! - `launch/struct_arg/null`: one launch of a 136-byte `#[repr(C)]` parameter struct.
//! - `launcher/*/null`: real launchers (geometry checks, tile plan, argument struct, launches,
//!   and for the weight gradient the scratch allocation) at a DARTS shape: C=16, 32x32, batch 64.
//!
//! ```sh
//! cargo bench --bench launch
//! ```

use std::collections::HashMap;
use std::ffi::c_void;
use std::hint::black_box;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use darts::backend::geom::Conv2dGeom;
use darts::backend::gpu::kernels::all_kernels;
use darts::backend::gpu::launch::{depthwise, elementwise};
use darts::backend::gpu::null::NullRuntime;
use darts::backend::gpu::runtime::Counters;
use darts::backend::gpu::{k, Arg, Gpu, GpuBuf, GpuError, LaunchCfg};

/// main's launch path before the fast path, minus the driver calls (as `benches/launch.rs` of
/// the commit before it measured it).
mod main_mirror {
    use super::*;

    /// main's `Arg`: a parameter struct was a `Vec` of words.
    #[allow(dead_code)]
    pub enum Arg {
        Ptr(u64),
        I32(i32),
        U32(u32),
        F32(f32),
        Ptrs8([u64; 8]),
        Words(Vec<u64>),
    }

    /// main's `PackedArgs`: each value in its own heap box.
    pub struct PackedArgs {
        _values: Vec<Box<[u64]>>,
        ptrs: Vec<*mut c_void>,
    }

    impl PackedArgs {
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
            let ptrs = values.iter_mut().map(|b| b.as_mut_ptr() as *mut c_void).collect();
            PackedArgs { _values: values, ptrs }
        }
    }

    /// What `CudaRuntime::function` cloned per launch: a `CUfunction` and its module's `Arc`.
    #[derive(Clone)]
    #[allow(dead_code)]
    struct Func {
        cu: u64,
        module: Arc<()>,
    }

    /// main's `CudaRuntime::launch` without `bind_to_thread` and `cuLaunchKernel`.
    pub struct Launch {
        functions: Mutex<HashMap<String, Func>>,
        counters: Counters,
    }

    impl Launch {
        pub fn new() -> Launch {
            let module = Arc::new(());
            let functions = all_kernels()
                .enumerate()
                .map(|(i, k)| (k.to_string(), Func { cu: i as u64, module: module.clone() }))
                .collect();
            Launch { functions: Mutex::new(functions), counters: Counters::default() }
        }

        #[inline(never)]
        pub fn launch(&self, kernel: &str, cfg: LaunchCfg, args: &[Arg]) -> Result<(), GpuError> {
            self.counters.launch();
            let f = match self.functions.lock().unwrap().get(kernel) {
                Some(f) => f.clone(),
                None => return Err(GpuError::UnknownKernel(kernel.into())),
            };
            let mut packed = PackedArgs::new(args);
            black_box((f, cfg, packed.ptrs.as_mut_ptr()));
            Ok(())
        }
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

/// 22 ints after 3 pointers, as black-boxed values (built per call, as launch code does).
fn ints() -> [i32; 22] {
    black_box([64, 16, 32, 32, 32, 32, 3, 3, 1, 1, 1, 32, 2, 1, 4, 10, 34, 34, 34, 352, 2, 1])
}

fn bench(c: &mut Criterion) {
    let rt: Gpu = Arc::new(NullRuntime::default());
    let mut group = c.benchmark_group("launch");
    group.warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    let cfg = LaunchCfg { grid: (512, 16, 1), block: (256, 1, 1), shared_bytes: 9216 };

    group.bench_function("25_args/null", |b| {
        b.iter(|| {
            let v = ints();
            let mut args = [Arg::I32(0); 25];
            args[..3].copy_from_slice(&[Arg::Ptr(black_box(0x1000)), Arg::Ptr(0x2000), Arg::Ptr(0x3000)]);
            for (a, &v) in args[3..].iter_mut().zip(&v) {
                *a = Arg::I32(v);
            }
            rt.launch(k::depthwise_relu_bwd_weight_partial_f32, cfg, &args).unwrap()
        })
    });

    let old = main_mirror::Launch::new();
    group.bench_function("25_args/main_mirror", |b| {
        b.iter(|| {
            use main_mirror::Arg as A;
            let v = ints();
            let p = black_box(0x1000);
            let args: [A; 25] =
                std::array::from_fn(|i| if i < 3 { A::Ptr(p + 0x1000 * i as u64) } else { A::I32(v[i - 3]) });
            old.launch("depthwise_relu_bwd_weight_partial_f32", cfg, &args).unwrap()
        })
    });

    let params = [0u64; 17]; // 136 bytes, the size of `struct DwParams`
    group.bench_function("struct_arg/null", |b| {
        b.iter(|| rt.launch(k::depthwise_relu_fwd_f32, cfg, &[Arg::pod(black_box(&params))]).unwrap())
    });

    let g = dw_geom();
    let x = GpuBuf::alloc(&rt, g.x_len()).unwrap();
    let dy = GpuBuf::alloc(&rt, g.y_len()).unwrap();
    let w = GpuBuf::alloc(&rt, g.w_len()).unwrap();
    let mut dw = GpuBuf::alloc(&rt, g.w_len()).unwrap();
    let mut y = GpuBuf::alloc(&rt, g.y_len()).unwrap();
    group.bench_function("launcher/depthwise_relu_fwd/null", |b| {
        b.iter(|| depthwise::depthwise_relu_fwd(&g, &x, &w, &mut y).unwrap())
    });
    group.bench_function("launcher/depthwise_relu_bwd_weight/null", |b| {
        b.iter(|| depthwise::depthwise_relu_bwd_weight(&g, &x, &dy, &mut dw).unwrap())
    });
    let mut r = GpuBuf::alloc(&rt, g.x_len()).unwrap();
    group.bench_function("launcher/relu_fwd/null", |b| b.iter(|| elementwise::relu_fwd(&x, &mut r).unwrap()));
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
