//! The multi-tensor (tensor-list) optimiser kernels: gradient norm and its scalars, clipped SGD,
//! axpy scaled by a device scalar, the finite-difference combination, the unrolled weights; on
//! one list of every awkward size (lengths around the block and the 4096-element chunk, a
//! tensor over many chunks) and on single-tensor lists, against the CPU backend in f64.

use darts::backend::cpu;
use darts::backend::gpu::launch::optim::{self as opt, scalar, DevScalar, Hyper, MT_CHUNK};
use darts::backend::gpu::{Gpu, GpuBuf};
use darts::rng::Rng;

use crate::{nan, normals, up, wide, Outcome, SIZES};

/// Runs every multi-tensor case.
pub fn cases(rt: &Gpu, rng: &mut Rng, out: &mut Vec<Outcome>) {
    let mut all: Vec<usize> = SIZES.to_vec();
    all.extend([MT_CHUNK, MT_CHUNK + 1, 3]);
    for lens in [all, vec![1], vec![70_001]] {
        list_cases(rt, rng, &lens, out);
    }
}

fn list_cases(rt: &Gpu, rng: &mut Rng, lens: &[usize], out: &mut Vec<Outcome>) {
    let tag = format!("{} tensors {:?}", lens.len(), &lens[..lens.len().min(3)]);
    let host = |rng: &mut Rng| -> Vec<Vec<f32>> { lens.iter().map(|&n| normals(rng, n)).collect() };
    let devs = |v: &[Vec<f32>]| -> Vec<GpuBuf> { v.iter().map(|x| up(rt, x)).collect() };
    let wides = |v: &[Vec<f32>]| -> Vec<Vec<f64>> { v.iter().map(|x| wide(x)).collect() };
    let push_list = |out: &mut Vec<Outcome>, name: &str, gpu: &[GpuBuf], cpu: Vec<Vec<f64>>| {
        out.push(Outcome {
            name: format!("{name} {tag}"),
            gpu: gpu.iter().flat_map(|b| b.to_host().unwrap()).collect(),
            cpu: cpu.concat(),
        });
    };

    // The norm and its scalars (max_norm 5 clips N(0, 1) values of these sizes).
    let (w, g, g2) = (host(rng), host(rng), host(rng));
    let (max_norm, num) = (5.0f32, 0.01f32);
    let gg = devs(&g);
    let s = opt::norm_scalars(&refs(&gg), max_norm, num).unwrap();
    let (wg, wg2) = (wides(&g), wides(&g2));
    let norm = cpu::optim::norm_concat(&slices(&wg));
    let want = cpu::optim::norm_scalars(norm, max_norm as f64, num as f64);
    out.push(Outcome { name: format!("norm_scalars {tag}"), gpu: s.to_host().unwrap(), cpu: want.to_vec() });
    let clip = DevScalar { buf: &s, index: scalar::CLIP_COEF };

    // Clipped SGD, a first step (buffers NaN: not read) then a momentum step.
    let (lr, mom, wd) = (0.025f32, 0.9f32, 3e-4f32);
    let mut gw = devs(&w);
    let mut gbuf: Vec<GpuBuf> = lens.iter().map(|&n| nan(rt, n)).collect();
    let gg2 = devs(&g2);
    // The first step takes lr as a value, the second reads it from the device (a graph's way).
    let lr_dev = GpuBuf::from_host(rt, &[lr]).unwrap();
    for (grads, first) in [(&gg, true), (&gg2, false)] {
        let mut wm: Vec<&mut GpuBuf> = gw.iter_mut().collect();
        let mut bm: Vec<&mut GpuBuf> = gbuf.iter_mut().collect();
        let lr = if first { Hyper::Value(lr) } else { Hyper::At(DevScalar { buf: &lr_dev, index: 0 }) };
        opt::sgd_step_many(&mut wm, &refs(grads), &mut bm, Some(clip), lr, mom, wd, first).unwrap();
    }
    let (mut cw, mut cbuf) = (wides(&w), lens.iter().map(|&n| vec![0.0; n]).collect::<Vec<_>>());
    for (grads, first) in [(&wg, true), (&wg2, false)] {
        let mut wm: Vec<&mut [f64]> = cw.iter_mut().map(|v| v.as_mut_slice()).collect();
        let mut bm: Vec<&mut [f64]> = cbuf.iter_mut().map(|v| v.as_mut_slice()).collect();
        cpu::optim::sgd_step_many(
            &mut wm,
            &slices(grads),
            &mut bm,
            want[1],
            lr as f64,
            mom as f64,
            wd as f64,
            first,
        );
    }
    push_list(out, "sgd_step_many w", &gw, cw);
    push_list(out, "sgd_step_many buf", &gbuf, cbuf);

    // w − 2 r v with r = 0.01 / ‖v‖ on the device (v = g).
    let mut gy = devs(&w);
    let mut ym: Vec<&mut GpuBuf> = gy.iter_mut().collect();
    opt::axpy_many(&mut ym, &refs(&gg), Some(DevScalar { buf: &s, index: scalar::RATIO }), -2.0).unwrap();
    let mut cy = wides(&w);
    for (y, x) in cy.iter_mut().zip(&wg) {
        cpu::elementwise::axpy(-2.0 * want[scalar::RATIO], x, y);
    }
    push_list(out, "axpy_many", &gy, cy);

    // d − ξ (p − m) / (2r): d = w, p = g2, m = g2 + 1e-3 g (close, as finite differences are).
    let m: Vec<Vec<f32>> =
        g2.iter().zip(&g).map(|(p, s)| p.iter().zip(s).map(|(a, b)| a + 1e-3 * b).collect()).collect();
    let (gd, gm) = (devs(&w), devs(&m));
    let mut go: Vec<GpuBuf> = lens.iter().map(|&n| nan(rt, n)).collect();
    let xi = 0.025f32;
    let xi_dev = GpuBuf::from_host(rt, &[xi]).unwrap();
    let xi_at = DevScalar { buf: &xi_dev, index: 0 };
    let inv_r = DevScalar { buf: &s, index: scalar::INV_RATIO };
    // −ξ/2 as a value, and −1/2 times ξ read on the device: the same bits.
    let mut go2: Vec<GpuBuf> = lens.iter().map(|&n| nan(rt, n)).collect();
    for (out, mult, scale) in [(&mut go, -xi / 2.0, None), (&mut go2, -0.5, Some(xi_at))] {
        let mut om: Vec<&mut GpuBuf> = out.iter_mut().collect();
        opt::axpy_diff_many(&mut om, &refs(&gd), &refs(&gg2), &refs(&gm), Some(inv_r), mult, scale).unwrap();
    }
    for (a, b) in go.iter().zip(&go2) {
        let (a, b) = (a.to_host().unwrap(), b.to_host().unwrap());
        assert!(
            a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()),
            "axpy_diff_many: xi on the device changed the bits"
        );
    }
    let wm = wides(&m);
    let co: Vec<Vec<f64>> = (0..lens.len())
        .map(|k| {
            let mut o = vec![0.0; lens[k]];
            let inv_2r = 1.0 / (2.0 * want[scalar::RATIO]);
            cpu::optim::hvp_combine(&mut o, &wide(&w[k]), &wg2[k], &wm[k], inv_2r, xi as f64);
            o
        })
        .collect();
    push_list(out, "axpy_diff_many", &go, co);

    // w' = w − ξ (m buf + g + wd w), the buffer absent on every other tensor.
    let bufs = host(rng);
    let gb = devs(&bufs);
    let opt_bufs: Vec<Option<&GpuBuf>> =
        gb.iter().enumerate().map(|(k, b)| (k % 2 == 0).then_some(b)).collect();
    let mut gu: Vec<GpuBuf> = lens.iter().map(|&n| nan(rt, n)).collect();
    let mut um: Vec<&mut GpuBuf> = gu.iter_mut().collect();
    opt::unroll_many(&mut um, &refs(&devs(&w)), &refs(&gg), &opt_bufs, Hyper::At(xi_at), mom, wd).unwrap();
    let wb = wides(&bufs);
    let cu: Vec<Vec<f64>> = (0..lens.len())
        .map(|k| {
            let mut o = vec![0.0; lens[k]];
            let b = (k % 2 == 0).then_some(wb[k].as_slice());
            cpu::optim::unroll(&mut o, &wide(&w[k]), &wg[k], b, xi as f64, mom as f64, wd as f64);
            o
        })
        .collect();
    push_list(out, "unroll_many", &gu, cu);
}

fn refs(v: &[GpuBuf]) -> Vec<&GpuBuf> {
    v.iter().collect()
}

fn slices(v: &[Vec<f64>]) -> Vec<&[f64]> {
    v.iter().map(|x| x.as_slice()).collect()
}
