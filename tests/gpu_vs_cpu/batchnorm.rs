//! Batch norm (`kernels/batchnorm.cu`): statistics, training and eval forward (affine and not),
//! the running-statistics update, training and eval backward, against `cpu::batchnorm` in f64.

use darts::backend::cpu::batchnorm as cpu;
use darts::backend::geom::BnGeom;
use darts::backend::gpu::launch::batchnorm as bn;
use darts::backend::gpu::{Gpu, GpuBuf};
use darts::rng::Rng;

use crate::{nan, normals, up, wide, Outcome};

const EPS: f32 = 1e-5;
const MOMENTUM: f32 = 0.1;

/// `(n, c, hw, offset)`: the DARTS search network at batch 2 (cells at 32x32, 16x16, 8x8, the
/// C = 48 stem, a 2-D [n, c] input), awkward shapes (7x7, 5x9, batch 1 with hw > 1, m = 1, a
/// channel of 300k values whose chunks hold several groups per thread), and inputs around 1e4
/// (one with m = 64 * 1024 values per channel, as at batch 64 and 32x32).
const CASES: [(usize, usize, usize, f32); 15] = [
    (2, 16, 32 * 32, 0.0),
    (2, 32, 16 * 16, 0.0),
    (2, 64, 8 * 8, 0.0),
    (2, 48, 32 * 32, 0.0),
    (2, 256, 1, 0.0),
    (64, 16, 1, 0.0),
    (2, 3, 7 * 7, 0.0),
    (1, 5, 5 * 9, 0.0),
    (3, 5, 7 * 7, 0.0),
    (1, 3, 1, 0.0),
    (1, 7, 9, 0.0),
    (3, 2, 100_003, 0.0),
    (2, 16, 32 * 32, 1e4),
    (64, 3, 32 * 32, 1e4),
    (5, 3, 9 * 5, -3e4),
];

/// Runs every batch-norm case.
pub fn cases(rt: &Gpu, rng: &mut Rng, out: &mut Vec<Outcome>) {
    for (n, c, hw, offset) in CASES {
        one_case(rt, rng, out, BnGeom { n, c, hw }, offset);
    }
}

/// Per-channel scale and shift so that normalisation matters, plus `offset`.
fn input(rng: &mut Rng, g: &BnGeom, offset: f32) -> Vec<f32> {
    let z = rng.normals(g.len());
    (0..g.len())
        .map(|i| {
            let ch = (i / g.hw) % g.c;
            (offset as f64 + z[i] * (0.5 + (ch % 4) as f64) + (ch % 3) as f64 - 1.0) as f32
        })
        .collect()
}

fn f32s(v: &[f64]) -> Vec<f32> {
    v.iter().map(|&x| x as f32).collect()
}

/// Variance of channel 0 as `E[x^2] - E[x]^2` in f32, summed in order: what the kernels must
/// not do. Returns its relative error against the f64 two-pass value `want`.
fn naive_var_error(g: &BnGeom, x: &[f32], want: f64) -> f64 {
    let (mut s, mut s2) = (0.0f32, 0.0f32);
    for b in 0..g.n {
        for &v in &x[b * g.c * g.hw..][..g.hw] {
            s += v;
            s2 += v * v;
        }
    }
    let m = g.per_channel() as f32;
    let naive = s2 / m - (s / m) * (s / m);
    (naive as f64 - want).abs() / want
}

fn one_case(rt: &Gpu, rng: &mut Rng, out: &mut Vec<Outcome>, g: BnGeom, offset: f32) {
    let shape = format!(
        "{}x{}x{}{}",
        g.n,
        g.c,
        g.hw,
        if offset != 0.0 { format!(" offset {offset:e}") } else { "".into() }
    );
    let x = input(rng, &g, offset);
    let dy = normals(rng, g.len());
    let gamma: Vec<f32> = rng.uniforms(g.c, 0.5, 1.5).into_iter().map(|v| v as f32).collect();
    let beta = normals(rng, g.c);
    let (gx, gdy, ggamma, gbeta) = (up(rt, &x), up(rt, &dy), up(rt, &gamma), up(rt, &beta));
    let (wx, wdy, wgamma, wbeta) = (wide(&x), wide(&dy), wide(&gamma), wide(&beta));
    let eps = EPS as f64;
    let mut push = |name: &str, buf: &GpuBuf, cpu: Vec<f64>| {
        out.push(Outcome { name: format!("{name} {shape}"), gpu: buf.to_host().unwrap(), cpu })
    };

    // Statistics.
    let (mut mean, mut var) = (nan(rt, g.c), nan(rt, g.c));
    bn::bn_stats(&g, &gx, &mut mean, &mut var).unwrap();
    let (mut want_mean, mut want_var) = (vec![0.0; g.c], vec![0.0; g.c]);
    cpu::bn_stats(&g, &wx, &mut want_mean, &mut want_var);
    if offset != 0.0 {
        let e = naive_var_error(&g, &x, want_var[0]);
        assert!(e > 0.1, "{shape}: naive f32 variance is accurate ({e:e}); the case tests nothing");
    }
    push("bn_stats mean", &mean, want_mean);
    push("bn_stats var", &var, want_var);

    // Training forward, affine and not.
    for affine in [true, false] {
        let tag = if affine { "affine" } else { "plain" };
        let (mut y, mut mean, mut invstd) = (nan(rt, g.len()), nan(rt, g.c), nan(rt, g.c));
        let (gm, bt) = if affine { (Some(&ggamma), Some(&gbeta)) } else { (None, None) };
        bn::bn_fwd_train(&g, &gx, gm, bt, EPS, &mut y, &mut mean, &mut invstd).unwrap();
        let (mut wy, mut wmean, mut winvstd) = (vec![0.0; g.len()], vec![0.0; g.c], vec![0.0; g.c]);
        let (gm, bt) = if affine { (Some(&wgamma[..]), Some(&wbeta[..])) } else { (None, None) };
        cpu::bn_fwd_train(&g, &wx, gm, bt, eps, &mut wy, &mut wmean, &mut winvstd);
        push(&format!("bn_fwd_train y {tag}"), &y, wy);
        push(&format!("bn_fwd_train mean {tag}"), &mean, wmean);
        push(&format!("bn_fwd_train invstd {tag}"), &invstd, winvstd);
    }

    // The batch statistics the remaining kernels consume: the CPU's, rounded to f32, on both sides.
    let (mut wy, mut wmean, mut winvstd) = (vec![0.0; g.len()], vec![0.0; g.c], vec![0.0; g.c]);
    cpu::bn_fwd_train(&g, &wx, None, None, eps, &mut wy, &mut wmean, &mut winvstd);
    let wy_train = wy;
    let (mean32, invstd32) = (f32s(&wmean), f32s(&winvstd));
    let (gmean, ginvstd) = (up(rt, &mean32), up(rt, &invstd32));
    let (wmean, winvstd) = (wide(&mean32), wide(&invstd32));

    // Running update.
    let rmean: Vec<f32> = mean32.iter().map(|&m| m + 0.3 * rng.normal() as f32).collect();
    let rvar: Vec<f32> =
        invstd32.iter().map(|&s| (1.0 / (s * s)) * rng.uniform_in(0.7, 1.3) as f32).collect();
    let (mut grm, mut grv) = (up(rt, &rmean), up(rt, &rvar));
    bn::bn_update_running(&g, &gmean, &ginvstd, EPS, MOMENTUM, &mut grm, &mut grv).unwrap();
    let (mut wrm, mut wrv) = (wide(&rmean), wide(&rvar));
    cpu::bn_update_running(&g, &wmean, &winvstd, eps, MOMENTUM as f64, &mut wrm, &mut wrv);
    push("bn_update_running mean", &grm, wrm);
    push("bn_update_running var", &grv, wrv);

    // Eval forward, affine and not.
    let (grm, grv) = (up(rt, &rmean), up(rt, &rvar));
    let (wrm, wrv) = (wide(&rmean), wide(&rvar));
    for affine in [true, false] {
        let tag = if affine { "affine" } else { "plain" };
        let mut y = nan(rt, g.len());
        let (gm, bt) = if affine { (Some(&ggamma), Some(&gbeta)) } else { (None, None) };
        bn::bn_fwd_eval(&g, &gx, gm, bt, &grm, &grv, EPS, &mut y).unwrap();
        let mut wy = vec![0.0; g.len()];
        let (gm, bt) = if affine { (Some(&wgamma[..]), Some(&wbeta[..])) } else { (None, None) };
        cpu::bn_fwd_eval(&g, &wx, gm, bt, &wrm, &wrv, eps, &mut wy);
        push(&format!("bn_fwd_eval y {tag}"), &y, wy);
    }

    // Training backward: affine with both parameter gradients, plain without.
    let (mut dx, mut dgamma, mut dbeta) = (nan(rt, g.len()), nan(rt, g.c), nan(rt, g.c));
    bn::bn_bwd_train(
        &g,
        &gx,
        &gdy,
        Some(&gmean),
        &ginvstd,
        Some(&ggamma),
        &mut dx,
        Some(&mut dgamma),
        Some(&mut dbeta),
    )
    .unwrap();
    let (mut wdx, mut wdgamma, mut wdbeta) = (vec![0.0; g.len()], vec![0.0; g.c], vec![0.0; g.c]);
    cpu::bn_bwd_train(
        &g,
        &wx,
        &wdy,
        &wmean,
        &winvstd,
        Some(&wgamma),
        &mut wdx,
        Some(&mut wdgamma),
        Some(&mut wdbeta),
    );
    push("bn_bwd_train dx affine", &dx, wdx);
    push("bn_bwd_train dgamma", &dgamma, wdgamma);
    push("bn_bwd_train dbeta", &dbeta, wdbeta);

    let mut dx = nan(rt, g.len());
    bn::bn_bwd_train(&g, &gx, &gdy, Some(&gmean), &ginvstd, None, &mut dx, None, None).unwrap();
    let mut wdx = vec![0.0; g.len()];
    cpu::bn_bwd_train(&g, &wx, &wdy, &wmean, &winvstd, None, &mut wdx, None, None);
    push("bn_bwd_train dx plain", &dx, wdx);

    // From the output: no mean, x is x̂ itself (the forward's y); the CPU's form is mean 0,
    // invstd 1 and γ = invstd.
    let gy = up(rt, &f32s(&wy_train));
    let mut dx = nan(rt, g.len());
    bn::bn_bwd_train(&g, &gy, &gdy, None, &ginvstd, None, &mut dx, None, None).unwrap();
    let (zeros, ones) = (vec![0.0; g.c], vec![1.0; g.c]);
    let wy = wide(&f32s(&wy_train));
    let mut wdx = vec![0.0; g.len()];
    cpu::bn_bwd_train(&g, &wy, &wdy, &zeros, &ones, Some(&winvstd), &mut wdx, None, None);
    push("bn_bwd_train dx from the output", &dx, wdx);

    // Eval backward: affine with both parameter gradients, affine with dgamma only, plain.
    let (mut dx, mut dgamma, mut dbeta) = (nan(rt, g.len()), nan(rt, g.c), nan(rt, g.c));
    bn::bn_bwd_eval(
        &g,
        &gdy,
        &gx,
        &grm,
        &grv,
        Some(&ggamma),
        EPS,
        &mut dx,
        Some(&mut dgamma),
        Some(&mut dbeta),
    )
    .unwrap();
    let (mut wdx, mut wdgamma, mut wdbeta) = (vec![0.0; g.len()], vec![0.0; g.c], vec![0.0; g.c]);
    cpu::bn_bwd_eval(
        &g,
        &wdy,
        &wx,
        &wrm,
        &wrv,
        Some(&wgamma),
        eps,
        &mut wdx,
        Some(&mut wdgamma),
        Some(&mut wdbeta),
    );
    push("bn_bwd_eval dx affine", &dx, wdx);
    push("bn_bwd_eval dgamma", &dgamma, wdgamma.clone());
    push("bn_bwd_eval dbeta", &dbeta, wdbeta);

    let mut dgamma = nan(rt, g.c);
    bn::bn_bwd_eval(
        &g,
        &gdy,
        &gx,
        &grm,
        &grv,
        Some(&ggamma),
        EPS,
        &mut nan(rt, g.len()),
        Some(&mut dgamma),
        None,
    )
    .unwrap();
    push("bn_bwd_eval dgamma only", &dgamma, wdgamma);

    let mut dx = nan(rt, g.len());
    bn::bn_bwd_eval(&g, &gdy, &gx, &grm, &grv, None, EPS, &mut dx, None, None).unwrap();
    let mut wdx = vec![0.0; g.len()];
    cpu::bn_bwd_eval(&g, &wdy, &wx, &wrm, &wrv, None, eps, &mut wdx, None, None);
    push("bn_bwd_eval dx plain", &dx, wdx);
}
