//! The first kernels: elementwise, weighted sum, reductions, softmax, optimisers.

use darts::backend::cpu;
use darts::backend::geom::BnGeom;
use darts::backend::gpu::launch::{elementwise as ew, optim, reduce, softmax, weighted_sum as ws, zero_one};
use darts::backend::gpu::{Gpu, GpuBuf};
use darts::rng::Rng;

use crate::{nan, normals, up, wide, Outcome, SIZES};

/// Runs every first-kernel case.
pub fn cases(rt: &Gpu, rng: &mut Rng, out: &mut Vec<Outcome>) {
    elementwise_cases(rt, rng, out);
    weighted_sum_cases(rt, rng, out);
    reduce_cases(rt, rng, out);
    softmax_cases(rt, rng, out);
    fair_cases(rt, rng, out);
    optim_cases(rt, rng, out);
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

        // Three samples of n values each: drop path's per-sample factors (0 or 1/keep), read
        // from offset 1 of a longer buffer.
        let (x3, s4) = (normals(rng, 3 * n), [7.0, (1.0 / 0.7) as f32, 0.0, 2.5]);
        let mut y = nan(rt, 3 * n);
        ew::scale_samples(&up(rt, &x3), &up(rt, &s4), 1, n, &mut y).unwrap();
        let mut want = vec![0.0; 3 * n];
        cpu::elementwise::scale_samples(&wide(&x3), &wide(&s4[1..]), n, &mut want);
        push("scale_samples", &y, want);

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

/// FairDARTS' sigmoid and zero-one loss (forward and backward) at α sizes and odd ones.
fn fair_cases(rt: &Gpu, rng: &mut Rng, out: &mut Vec<Outcome>) {
    for n in [1, 98, 257, 1000] {
        let x: Vec<f32> = rng.normals(n).into_iter().map(|v| (v * 3.0) as f32).collect();
        let dy = normals(rng, n);
        let mut y = nan(rt, n);
        ew::sigmoid_fwd(&up(rt, &x), &mut y).unwrap();
        let mut want = vec![0.0; n];
        cpu::elementwise::sigmoid_fwd(&wide(&x), &mut want);
        let y_host = y.to_host().unwrap();
        out.push(Outcome { name: format!("sigmoid_fwd {n}"), gpu: y_host.clone(), cpu: want });
        let mut dx = nan(rt, n);
        ew::sigmoid_bwd(&y, &up(rt, &dy), &mut dx).unwrap();
        let mut want = vec![0.0; n];
        cpu::elementwise::sigmoid_bwd(&wide(&y_host), &wide(&dy), &mut want);
        out.push(Outcome { name: format!("sigmoid_bwd {n}"), gpu: dx.to_host().unwrap(), cpu: want });

        let scale = 1.0 / (2 * n) as f64;
        let mut l = nan(rt, 1);
        zero_one::zero_one_fwd(&y, scale as f32, &mut l).unwrap();
        let want = cpu::loss::zero_one_fwd(&wide(&y_host), scale);
        out.push(Outcome { name: format!("zero_one_fwd {n}"), gpu: l.to_host().unwrap(), cpu: vec![want] });
        let dl = [1.7f32];
        let mut ds = nan(rt, n);
        zero_one::zero_one_bwd(&y, &up(rt, &dl), scale as f32, &mut ds).unwrap();
        let mut want = vec![0.0; n];
        cpu::loss::zero_one_bwd(&wide(&y_host), scale, 1.7, &mut want);
        out.push(Outcome { name: format!("zero_one_bwd {n}"), gpu: ds.to_host().unwrap(), cpu: want });
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
            // Step 2 reads its bias corrections from the device (as a replayed graph does).
            let bias = [1.0 - (b1 as f64).powi(2), 1.0 - (b2 as f64).powi(2)].map(|v| v as f32);
            let bias = up(rt, &bias);
            for (step, grad) in [(1u32, &g), (2, &g2)] {
                optim::adam_step(
                    &mut gw,
                    &up(rt, grad),
                    &mut gm,
                    &mut gv,
                    lr,
                    b1 as f64,
                    b2 as f64,
                    eps,
                    wd,
                    step,
                    (step == 2).then_some(optim::DevScalar { buf: &bias, index: 0 }),
                )
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
