//! The first GPU kernels against the CPU backend, on random inputs of awkward sizes (length 1,
//! lengths around the block size, odd lengths), through the emulator always (under two fiber
//! schedules that must agree bit for bit) and through CUDA when a GPU is present.
//!
//! Outputs are filled with NaN before each launch, so an element a kernel fails to write fails
//! the comparison. Agreement: ‖gpu − cpu‖ / ‖cpu‖ < 1e-5, with the CPU reference in f64.

use std::sync::Arc;

use darts::autograd::check::rel_err;
use darts::backend::cpu;
use darts::backend::geom::BnGeom;
use darts::backend::gpu::launch::{elementwise as ew, optim, reduce, softmax, weighted_sum as ws};
use darts::backend::gpu::{Gpu, GpuBuf};
use darts::rng::Rng;

const SIZES: [usize; 7] = [1, 7, 255, 256, 257, 1000, 70_001];

/// One kernel run: what the device produced and what the CPU reference says.
struct Outcome {
    name: String,
    gpu: Vec<f32>,
    cpu: Vec<f64>,
}

fn normals(rng: &mut Rng, n: usize) -> Vec<f32> {
    rng.normals(n).into_iter().map(|v| v as f32).collect()
}

fn wide(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}

fn up(rt: &Gpu, v: &[f32]) -> GpuBuf {
    GpuBuf::from_host(rt, v).unwrap()
}

/// An output buffer poisoned with NaN.
fn nan(rt: &Gpu, n: usize) -> GpuBuf {
    up(rt, &vec![f32::NAN; n])
}

fn elementwise_cases(rt: &Gpu, rng: &mut Rng, out: &mut Vec<Outcome>) {
    for n in SIZES {
        let (a, b) = (normals(rng, n), normals(rng, n));
        let (ga, gb) = (up(rt, &a), up(rt, &b));
        let (wa, wb) = (wide(&a), wide(&b));
        let mut push = |name: &str, buf: &GpuBuf, cpu: Vec<f64>| {
            out.push(Outcome { name: format!("{name} n={n}"), gpu: buf.to_host().unwrap(), cpu })
        };

        let mut y = nan(rt, n);
        ew::relu_fwd(&ga, &mut y).unwrap();
        let mut want = vec![0.0; n];
        cpu::elementwise::relu_fwd(&wa, &mut want);
        push("relu_fwd", &y, want);

        let mut dx = nan(rt, n);
        ew::relu_bwd(&ga, &gb, &mut dx).unwrap();
        let mut want = vec![0.0; n];
        cpu::elementwise::relu_bwd(&wa, &wb, &mut want);
        push("relu_bwd", &dx, want);

        let mut y = nan(rt, n);
        ew::add(&ga, &gb, &mut y).unwrap();
        let mut want = vec![0.0; n];
        cpu::elementwise::add(&wa, &wb, &mut want);
        push("add", &y, want);

        let mut y = nan(rt, n);
        ew::scale(&ga, -0.37, &mut y).unwrap();
        let mut want = vec![0.0; n];
        cpu::elementwise::scale(&wa, -0.37f32 as f64, &mut want);
        push("scale", &y, want);

        let mut y = up(rt, &b);
        ew::axpy(1.5, &ga, &mut y).unwrap();
        let mut want = wb.clone();
        cpu::elementwise::axpy(1.5, &wa, &mut want);
        push("axpy", &y, want);

        let mut y = nan(rt, n);
        ew::fill(&mut y, 2.25).unwrap();
        push("fill", &y, vec![2.25; n]);
    }
}

fn weighted_sum_cases(rt: &Gpu, rng: &mut Rng, out: &mut Vec<Outcome>) {
    for n in SIZES {
        // 8 inputs like a mixed op, slot 0 the zero op (None).
        let xs: Vec<Vec<f32>> = (0..8).map(|_| normals(rng, n)).collect();
        let w: Vec<f32> = rng.uniforms(8, 0.0, 1.0).into_iter().map(|v| v as f32).collect();
        let dy = normals(rng, n);
        let gxs: Vec<GpuBuf> = xs.iter().map(|x| up(rt, x)).collect();
        let slots: Vec<Option<&GpuBuf>> = gxs.iter().enumerate().map(|(i, b)| (i > 0).then_some(b)).collect();
        let (gw, gdy) = (up(rt, &w), up(rt, &dy));
        let zero = vec![0.0f64; n];
        let wxs: Vec<Vec<f64>> =
            xs.iter().enumerate().map(|(i, x)| if i == 0 { zero.clone() } else { wide(x) }).collect();
        let refs: Vec<&[f64]> = wxs.iter().map(|v| v.as_slice()).collect();

        let mut y = nan(rt, n);
        ws::weighted_sum(&slots, &gw, &mut y).unwrap();
        let mut want = vec![0.0; n];
        cpu::elementwise::weighted_sum(&refs, &wide(&w), &mut want);
        out.push(Outcome { name: format!("weighted_sum n={n}"), gpu: y.to_host().unwrap(), cpu: want });

        let mut dxs: Vec<GpuBuf> = (0..8).map(|_| nan(rt, n)).collect();
        {
            let mut slots: Vec<Option<&mut GpuBuf>> = dxs.iter_mut().map(Some).collect();
            ws::weighted_sum_bwd_x(&gdy, &gw, &mut slots).unwrap();
        }
        for (k, dx) in dxs.iter().enumerate() {
            let mut want = vec![0.0; n];
            cpu::elementwise::scale(&wide(&dy), w[k] as f64, &mut want);
            out.push(Outcome {
                name: format!("weighted_sum_bwd_x[{k}] n={n}"),
                gpu: dx.to_host().unwrap(),
                cpu: want,
            });
        }

        let mut dw = nan(rt, 8);
        ws::weighted_sum_bwd_w(&slots, &gdy, &mut dw).unwrap();
        let mut want = vec![0.0; 8];
        cpu::elementwise::weighted_sum_bwd_weights(&refs, &wide(&dy), &mut want);
        out.push(Outcome {
            name: format!("weighted_sum_bwd_w n={n}"),
            gpu: dw.to_host().unwrap(),
            cpu: want,
        });
    }
}

fn reduce_cases(rt: &Gpu, rng: &mut Rng, out: &mut Vec<Outcome>) {
    for n in SIZES {
        // Positive values: a sum of mixed signs can cancel to near zero, where a relative
        // error says nothing about the kernel.
        let x: Vec<f32> = rng.uniforms(n, 0.0, 1.0).into_iter().map(|v| v as f32).collect();
        let s = reduce::sum(&up(rt, &x)).unwrap();
        out.push(Outcome {
            name: format!("sum n={n}"),
            gpu: s.to_host().unwrap(),
            cpu: vec![cpu::elementwise::sum(&wide(&x))],
        });

        let ys: Vec<Vec<f32>> = [n, 3, 513].iter().map(|&m| normals(rng, m)).collect();
        let gys: Vec<GpuBuf> = ys.iter().map(|y| up(rt, y)).collect();
        let s = reduce::sum_sq_many(&gys.iter().collect::<Vec<_>>()).unwrap();
        let want: f64 = ys.iter().map(|y| cpu::elementwise::sum_sq(&wide(y))).sum();
        out.push(Outcome { name: format!("sum_sq_many n={n}"), gpu: s.to_host().unwrap(), cpu: vec![want] });
    }
    for (n, c, hw) in [(1, 1, 1), (2, 3, 49), (3, 5, 1), (1, 7, 1000), (64, 16, 9)] {
        let x = normals(rng, n * c * hw);
        let (mut s, mut q) = (nan(rt, c), nan(rt, c));
        reduce::channel_sums(&up(rt, &x), n, c, hw, &mut s, &mut q).unwrap();
        let (mut ws_, mut wq) = (vec![0.0; c], vec![0.0; c]);
        cpu::reduce::channel_sums(&BnGeom { n, c, hw }, &wide(&x), &mut ws_, &mut wq);
        out.push(Outcome {
            name: format!("channel_sums.sum {n}x{c}x{hw}"),
            gpu: s.to_host().unwrap(),
            cpu: ws_,
        });
        out.push(Outcome {
            name: format!("channel_sums.sumsq {n}x{c}x{hw}"),
            gpu: q.to_host().unwrap(),
            cpu: wq,
        });
    }
}

fn softmax_cases(rt: &Gpu, rng: &mut Rng, out: &mut Vec<Outcome>) {
    for (rows, k) in [(1, 1), (14, 8), (3, 5), (300, 8)] {
        let x: Vec<f32> = rng.normals(rows * k).into_iter().map(|v| (v * 4.0) as f32).collect();
        let dy = normals(rng, rows * k);
        let mut y = nan(rt, rows * k);
        softmax::softmax_rows(&up(rt, &x), &mut y, rows, k).unwrap();
        let mut want = vec![0.0; rows * k];
        cpu::softmax::softmax_rows(rows, k, &wide(&x), &mut want);
        let y_host = y.to_host().unwrap();
        out.push(Outcome { name: format!("softmax_rows {rows}x{k}"), gpu: y_host.clone(), cpu: want });

        // Backward from the same y on both sides, so only the backward is compared.
        let mut dx = nan(rt, rows * k);
        softmax::softmax_rows_bwd(&y, &up(rt, &dy), &mut dx, rows, k).unwrap();
        let mut want = vec![0.0; rows * k];
        cpu::softmax::softmax_rows_bwd(rows, k, &wide(&y_host), &wide(&dy), &mut want);
        out.push(Outcome {
            name: format!("softmax_rows_bwd {rows}x{k}"),
            gpu: dx.to_host().unwrap(),
            cpu: want,
        });
    }
}

fn optim_cases(rt: &Gpu, rng: &mut Rng, out: &mut Vec<Outcome>) {
    for n in SIZES {
        let (w, g, g2) = (normals(rng, n), normals(rng, n), normals(rng, n));
        // SGD: a first step (buffer initialised from the gradient), then a momentum step.
        let (mut gw, mut gbuf) = (up(rt, &w), nan(rt, n));
        optim::sgd_step(&mut gw, &up(rt, &g), &mut gbuf, 0.025, 0.9, 3e-4, true).unwrap();
        optim::sgd_step(&mut gw, &up(rt, &g2), &mut gbuf, 0.025, 0.9, 3e-4, false).unwrap();
        let (mut cw, mut cbuf) = (wide(&w), vec![0.0; n]);
        cpu::optim::sgd_step(
            &mut cw,
            &wide(&g),
            &mut cbuf,
            0.025f32 as f64,
            0.9f32 as f64,
            3e-4f32 as f64,
            true,
        );
        cpu::optim::sgd_step(
            &mut cw,
            &wide(&g2),
            &mut cbuf,
            0.025f32 as f64,
            0.9f32 as f64,
            3e-4f32 as f64,
            false,
        );
        out.push(Outcome { name: format!("sgd_step w n={n}"), gpu: gw.to_host().unwrap(), cpu: cw });
        out.push(Outcome { name: format!("sgd_step buf n={n}"), gpu: gbuf.to_host().unwrap(), cpu: cbuf });

        // Adam with the DARTS architecture settings, steps 1 and 2, from w = 0 (so w is the
        // accumulated update itself, not an O(1) value whose f32 rounding would hide an error
        // in an O(lr) step) and from a random w (weight decay active).
        let zeros = vec![0.0f32; n];
        let (lr, b1, b2, eps, wd) = (3e-4f32, 0.5f32, 0.999f32, 1e-8f32, 1e-3f32);
        for (label, w0) in [("from 0", &zeros), ("from w", &w)] {
            let (mut gw, mut gm, mut gv) = (up(rt, w0), up(rt, &zeros), up(rt, &zeros));
            let (mut cw, mut cm, mut cv) = (wide(w0), vec![0.0; n], vec![0.0; n]);
            for (step, grad) in [(1u32, &g), (2, &g2)] {
                optim::adam_step(&mut gw, &up(rt, grad), &mut gm, &mut gv, lr, b1, b2, eps, wd, step)
                    .unwrap();
                cpu::optim::adam_step(
                    &mut cw,
                    &wide(grad),
                    &mut cm,
                    &mut cv,
                    lr as f64,
                    b1 as f64,
                    b2 as f64,
                    eps as f64,
                    wd as f64,
                    step,
                );
            }
            out.push(Outcome {
                name: format!("adam_step w {label} n={n}"),
                gpu: gw.to_host().unwrap(),
                cpu: cw,
            });
            out.push(Outcome {
                name: format!("adam_step m {label} n={n}"),
                gpu: gm.to_host().unwrap(),
                cpu: cm,
            });
            out.push(Outcome {
                name: format!("adam_step v {label} n={n}"),
                gpu: gv.to_host().unwrap(),
                cpu: cv,
            });
        }
    }
}

fn run_all(rt: &Gpu) -> Vec<Outcome> {
    let mut rng = Rng::new(2024);
    let mut out = Vec::new();
    elementwise_cases(rt, &mut rng, &mut out);
    weighted_sum_cases(rt, &mut rng, &mut out);
    reduce_cases(rt, &mut rng, &mut out);
    softmax_cases(rt, &mut rng, &mut out);
    optim_cases(rt, &mut rng, &mut out);
    out
}

fn assert_matches_cpu(outcomes: &[Outcome], runtime: &str) {
    let mut failures = Vec::new();
    for o in outcomes {
        let gpu = wide(&o.gpu);
        let e = rel_err(&gpu, &o.cpu);
        if o.gpu.iter().any(|v| v.is_nan()) || e.is_nan() || e >= 1e-5 {
            failures.push(format!(
                "{}: relative error {e:e}, NaN: {}",
                o.name,
                o.gpu.iter().any(|v| v.is_nan())
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{runtime}: {} of {} cases failed:\n{}",
        failures.len(),
        outcomes.len(),
        failures.join("\n")
    );
}

#[cfg(feature = "emu")]
#[test]
fn emulator_matches_cpu_and_both_schedules_agree_bitwise() {
    use darts::backend::gpu::emu::EmuRuntime;
    let forward: Gpu = Arc::new(EmuRuntime::new(0, 0));
    let reverse: Gpu = Arc::new(EmuRuntime::new(1, 1));
    let a = run_all(&forward);
    let b = run_all(&reverse);
    assert_matches_cpu(&a, "emulator");
    for (x, y) in a.iter().zip(&b) {
        let same = x.gpu.iter().zip(&y.gpu).all(|(p, q)| p.to_bits() == q.to_bits());
        assert!(
            same,
            "{}: schedules 0 and 1 differ (a missing barrier or an order-dependent reduction)",
            x.name
        );
    }
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn cuda_matches_cpu() {
    use darts::backend::gpu::cuda::CudaRuntime;
    let rt: Gpu = Arc::new(CudaRuntime::new(0, true).unwrap_or_else(|e| panic!("CUDA runtime: {e}")));
    assert_matches_cpu(&run_all(&rt), "cuda");
}

/// Probing CUDA never panics: on a machine without libcuda or without a GPU it is an error
/// that says which, and a binary built without nvcc says so.
#[test]
fn cuda_probe_returns_an_error_instead_of_panicking() {
    use darts::backend::gpu::cuda::CudaRuntime;
    use darts::backend::gpu::GpuError;
    match std::panic::catch_unwind(|| CudaRuntime::new(0, false).map(|_| ())) {
        Ok(Ok(())) => {}
        Ok(Err(e @ (GpuError::NoDriver(_) | GpuError::NoDevice(_) | GpuError::NoKernels))) => {
            assert!(!e.to_string().is_empty());
        }
        Ok(Err(e)) => panic!("unexpected CUDA probe error: {e}"),
        Err(_) => panic!("probing CUDA panicked"),
    }
}
