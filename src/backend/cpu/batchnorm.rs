//! Batch normalisation over `x [n, c, hw]`, per channel over its `m = n * hw` values:
//! `xhat = (x - mean) * invstd`, `invstd = 1 / sqrt(var + eps)` (biased variance),
//! `y = gamma * xhat + beta`; training backward
//! `dx = gamma * invstd * (dy - mean(dy) - xhat * mean(dy * xhat))`,
//! `dgamma = sum(dy * xhat)`, `dbeta = sum(dy)`.
//!
//! Per-channel sums are accumulated in f64 (two passes for the variance: no
//! `E[x^2] - E[x]^2` cancellation), channels run in parallel, and each channel's sum is taken in
//! a fixed order, so results do not depend on the thread count.

use super::par::{for_each_chunk_mut, is_large, map_collect};
use super::real::Real;
use crate::backend::geom::BnGeom;

fn check(op: &str, name: &str, got: usize, want: usize) {
    assert!(got == want, "{op}: {name} has {got} elements, geometry needs {want}");
}

fn check_opt(op: &str, name: &str, got: Option<usize>, want: usize) {
    if let Some(got) = got {
        check(op, name, got, want);
    }
}

/// `sum over (n, p) of term(value index)` for channel `ci`, in f64, images in order; within a
/// plane four interleaved partial sums (lane `p % 4`) added as `(s0 + s1) + (s2 + s3)`: a fixed
/// order (deterministic) that does not wait on one add per value.
#[inline(always)]
pub(crate) fn channel_sum(g: &BnGeom, ci: usize, term: impl Fn(usize) -> f64) -> f64 {
    let mut total = 0.0;
    for ni in 0..g.n {
        let base = (ni * g.c + ci) * g.hw;
        let mut lanes = [0.0f64; 4];
        let full = g.hw / 4 * 4;
        for p in (0..full).step_by(4) {
            for (l, acc) in lanes.iter_mut().enumerate() {
                *acc += term(base + p + l);
            }
        }
        for (l, p) in (full..g.hw).enumerate() {
            lanes[l] += term(base + p);
        }
        total += (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]);
    }
    total
}

/// Per-channel sums, one entry per channel, computed in parallel over channels when large.
pub(crate) fn per_channel<R: Send>(g: &BnGeom, f: impl Fn(usize) -> R + Sync + Send) -> Vec<R> {
    map_collect(g.c, is_large(g.len()), f)
}

/// Two-pass mean and biased variance of channel `ci`, in f64 (0 and 0 for an empty channel).
pub(crate) fn channel_mean_var<T: Real>(g: &BnGeom, x: &[T], ci: usize) -> (f64, f64) {
    let m = g.per_channel();
    if m == 0 {
        return (0.0, 0.0);
    }
    let mean = channel_sum(g, ci, |i| x[i].to_f64()) / m as f64;
    let var = channel_sum(g, ci, |i| {
        let d = x[i].to_f64() - mean;
        d * d
    }) / m as f64;
    (mean, var)
}

/// Writes `y[n, c, p] = (x[n, c, p] - shift[c]) * mult[c] + add[c]` over (n, c) planes.
fn affine_planes<T: Real>(g: &BnGeom, x: &[T], shift: &[T], mult: &[T], add: &[T], y: &mut [T]) {
    for_each_chunk_mut(y, g.hw, |off, y_plane| {
        let ci = (off / g.hw) % g.c;
        let (s, k, a) = (shift[ci], mult[ci], add[ci]);
        for (yi, &xi) in y_plane.iter_mut().zip(&x[off..off + g.hw]) {
            *yi = (xi - s) * k + a;
        }
    });
}

/// `gamma[c]` or 1, `beta[c]` or 0, per channel.
fn gamma_beta<T: Real>(g: &BnGeom, gamma: Option<&[T]>, beta: Option<&[T]>) -> (Vec<T>, Vec<T>) {
    let gam = gamma.map_or_else(|| vec![T::ONE; g.c], <[T]>::to_vec);
    let bet = beta.map_or_else(|| vec![T::ZERO; g.c], <[T]>::to_vec);
    (gam, bet)
}

/// Per-channel mean and biased variance (`sum (x - mean)^2 / (n * hw)`), two-pass in f64.
pub fn bn_stats<T: Real>(g: &BnGeom, x: &[T], mean: &mut [T], var: &mut [T]) {
    check("bn_stats", "x", x.len(), g.len());
    check("bn_stats", "mean", mean.len(), g.c);
    check("bn_stats", "var", var.len(), g.c);
    let stats = per_channel(g, |ci| channel_mean_var(g, x, ci));
    for (ci, (mu, v)) in stats.into_iter().enumerate() {
        mean[ci] = T::from_f64(mu);
        var[ci] = T::from_f64(v);
    }
}

/// Training forward with batch statistics: writes `y`, and the per-channel `mean` and
/// `invstd = 1 / sqrt(var_biased + eps)` that [`bn_bwd_train`] and [`bn_update_running`] need.
/// `gamma`/`beta` default to 1/0 (an affine-free BN).
#[allow(clippy::too_many_arguments)]
pub fn bn_fwd_train<T: Real>(
    g: &BnGeom,
    x: &[T],
    gamma: Option<&[T]>,
    beta: Option<&[T]>,
    eps: T,
    y: &mut [T],
    mean: &mut [T],
    invstd: &mut [T],
) {
    check("bn_fwd_train", "x", x.len(), g.len());
    check("bn_fwd_train", "y", y.len(), g.len());
    check("bn_fwd_train", "mean", mean.len(), g.c);
    check("bn_fwd_train", "invstd", invstd.len(), g.c);
    check_opt("bn_fwd_train", "gamma", gamma.map(<[T]>::len), g.c);
    check_opt("bn_fwd_train", "beta", beta.map(<[T]>::len), g.c);
    let stats = per_channel(g, |ci| channel_mean_var(g, x, ci));
    for (ci, (mu, v)) in stats.into_iter().enumerate() {
        mean[ci] = T::from_f64(mu);
        invstd[ci] = T::from_f64(1.0 / (v + eps.to_f64()).sqrt());
    }
    let (gam, bet) = gamma_beta(g, gamma, beta);
    // y = (x - mean) * (invstd * gamma) + beta.
    let mult: Vec<T> = invstd.iter().zip(&gam).map(|(&s, &k)| s * k).collect();
    affine_planes(g, x, mean, &mult, &bet, y);
}

/// Running-statistics update, as PyTorch: `running_mean = (1 - momentum) * running_mean +
/// momentum * mean` and `running_var = (1 - momentum) * running_var + momentum * var_unbiased`,
/// with `var_unbiased = var_biased * m / (m - 1)`, `m = n * hw` (for `m = 1` the biased value 0
/// is used). The biased variance is recovered (in f64, clamped at 0) from the forward's
/// outputs as `1 / invstd^2 - eps`.
pub fn bn_update_running<T: Real>(
    g: &BnGeom,
    mean: &[T],
    invstd: &[T],
    eps: T,
    momentum: T,
    running_mean: &mut [T],
    running_var: &mut [T],
) {
    check("bn_update_running", "mean", mean.len(), g.c);
    check("bn_update_running", "invstd", invstd.len(), g.c);
    check("bn_update_running", "running_mean", running_mean.len(), g.c);
    check("bn_update_running", "running_var", running_var.len(), g.c);
    let m = g.per_channel();
    let bessel = if m > 1 { m as f64 / (m - 1) as f64 } else { 1.0 };
    let keep = T::ONE - momentum;
    for ci in 0..g.c {
        let s = invstd[ci].to_f64();
        let var_biased = (1.0 / (s * s) - eps.to_f64()).max(0.0);
        let var_unbiased = T::from_f64(var_biased * bessel);
        running_mean[ci] = keep * running_mean[ci] + momentum * mean[ci];
        running_var[ci] = keep * running_var[ci] + momentum * var_unbiased;
    }
}

/// Inference forward with running statistics:
/// `y = (x - running_mean) / sqrt(running_var + eps) * gamma + beta`.
#[allow(clippy::too_many_arguments)]
pub fn bn_fwd_eval<T: Real>(
    g: &BnGeom,
    x: &[T],
    gamma: Option<&[T]>,
    beta: Option<&[T]>,
    running_mean: &[T],
    running_var: &[T],
    eps: T,
    y: &mut [T],
) {
    check("bn_fwd_eval", "x", x.len(), g.len());
    check("bn_fwd_eval", "y", y.len(), g.len());
    check("bn_fwd_eval", "running_mean", running_mean.len(), g.c);
    check("bn_fwd_eval", "running_var", running_var.len(), g.c);
    check_opt("bn_fwd_eval", "gamma", gamma.map(<[T]>::len), g.c);
    check_opt("bn_fwd_eval", "beta", beta.map(<[T]>::len), g.c);
    let (gam, bet) = gamma_beta(g, gamma, beta);
    let mult: Vec<T> = running_var
        .iter()
        .zip(&gam)
        .map(|(&v, &k)| T::from_f64(1.0 / (v.to_f64() + eps.to_f64()).sqrt()) * k)
        .collect();
    affine_planes(g, x, running_mean, &mult, &bet, y);
}

/// Training backward (through the batch statistics): overwrites `dx`, and `dgamma`/`dbeta`
/// when given. `mean`/`invstd` are the outputs of [`bn_fwd_train`]; `gamma` defaults to 1.
#[allow(clippy::too_many_arguments)]
pub fn bn_bwd_train<T: Real>(
    g: &BnGeom,
    x: &[T],
    dy: &[T],
    mean: &[T],
    invstd: &[T],
    gamma: Option<&[T]>,
    dx: &mut [T],
    dgamma: Option<&mut [T]>,
    dbeta: Option<&mut [T]>,
) {
    let op = "bn_bwd_train";
    check(op, "x", x.len(), g.len());
    check(op, "dy", dy.len(), g.len());
    check(op, "dx", dx.len(), g.len());
    check(op, "mean", mean.len(), g.c);
    check(op, "invstd", invstd.len(), g.c);
    check_opt(op, "gamma", gamma.map(<[T]>::len), g.c);
    check_opt(op, "dgamma", dgamma.as_ref().map(|d| d.len()), g.c);
    check_opt(op, "dbeta", dbeta.as_ref().map(|d| d.len()), g.c);
    // Per channel: (sum dy, sum dy * xhat).
    let sums = per_channel(g, |ci| {
        let (mu, s) = (mean[ci], invstd[ci]);
        let sum_dy = channel_sum(g, ci, |i| dy[i].to_f64());
        let sum_dy_xhat = channel_sum(g, ci, |i| dy[i].to_f64() * ((x[i] - mu) * s).to_f64());
        (sum_dy, sum_dy_xhat)
    });
    let m = g.per_channel().max(1) as f64;
    let (gam, _) = gamma_beta(g, gamma, None);
    let mean_dy: Vec<T> = sums.iter().map(|&(a, _)| T::from_f64(a / m)).collect();
    let mean_dy_xhat: Vec<T> = sums.iter().map(|&(_, b)| T::from_f64(b / m)).collect();
    for_each_chunk_mut(dx, g.hw, |off, dx_plane| {
        let ci = (off / g.hw) % g.c;
        let (mu, s) = (mean[ci], invstd[ci]);
        let k = gam[ci] * s;
        let range = off..off + g.hw;
        for ((dxi, &xi), &dyi) in dx_plane.iter_mut().zip(&x[range.clone()]).zip(&dy[range]) {
            let xhat = (xi - mu) * s;
            *dxi = k * (dyi - mean_dy[ci] - xhat * mean_dy_xhat[ci]);
        }
    });
    if let Some(dgamma) = dgamma {
        for (d, &(_, b)) in dgamma.iter_mut().zip(&sums) {
            *d = T::from_f64(b);
        }
    }
    if let Some(dbeta) = dbeta {
        for (d, &(a, _)) in dbeta.iter_mut().zip(&sums) {
            *d = T::from_f64(a);
        }
    }
}

/// Inference backward (running statistics are constants):
/// `dx = dy * gamma / sqrt(running_var + eps)`, `dgamma = sum(dy * xhat)`, `dbeta = sum(dy)`
/// with `xhat = (x - running_mean) / sqrt(running_var + eps)`. Overwrites its outputs.
#[allow(clippy::too_many_arguments)]
pub fn bn_bwd_eval<T: Real>(
    g: &BnGeom,
    dy: &[T],
    x: &[T],
    running_mean: &[T],
    running_var: &[T],
    gamma: Option<&[T]>,
    eps: T,
    dx: &mut [T],
    dgamma: Option<&mut [T]>,
    dbeta: Option<&mut [T]>,
) {
    let op = "bn_bwd_eval";
    check(op, "dy", dy.len(), g.len());
    check(op, "x", x.len(), g.len());
    check(op, "dx", dx.len(), g.len());
    check(op, "running_mean", running_mean.len(), g.c);
    check(op, "running_var", running_var.len(), g.c);
    check_opt(op, "gamma", gamma.map(<[T]>::len), g.c);
    check_opt(op, "dgamma", dgamma.as_ref().map(|d| d.len()), g.c);
    check_opt(op, "dbeta", dbeta.as_ref().map(|d| d.len()), g.c);
    let invstd: Vec<T> =
        running_var.iter().map(|&v| T::from_f64(1.0 / (v.to_f64() + eps.to_f64()).sqrt())).collect();
    let (gam, _) = gamma_beta(g, gamma, None);
    let mult: Vec<T> = invstd.iter().zip(&gam).map(|(&s, &k)| s * k).collect();
    // dx = dy * (gamma * invstd): the affine map with zero shift and zero offset.
    let zeros = vec![T::ZERO; g.c];
    affine_planes(g, dy, &zeros, &mult, &zeros, dx);
    if dgamma.is_none() && dbeta.is_none() {
        return;
    }
    let sums = per_channel(g, |ci| {
        let (mu, s) = (running_mean[ci], invstd[ci]);
        let sum_dy = channel_sum(g, ci, |i| dy[i].to_f64());
        let sum_dy_xhat = channel_sum(g, ci, |i| dy[i].to_f64() * ((x[i] - mu) * s).to_f64());
        (sum_dy, sum_dy_xhat)
    });
    if let Some(dgamma) = dgamma {
        for (d, &(_, b)) in dgamma.iter_mut().zip(&sums) {
            *d = T::from_f64(b);
        }
    }
    if let Some(dbeta) = dbeta {
        for (d, &(a, _)) in dbeta.iter_mut().zip(&sums) {
            *d = T::from_f64(a);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::cpu::testutil::{assert_rel_close, dot, numeric_grad, Rng};

    const EPS: f64 = 1e-5;

    /// Naive two-pass per-channel mean and biased variance.
    fn naive_stats(g: &BnGeom, x: &[f64]) -> (Vec<f64>, Vec<f64>) {
        let m = (g.n * g.hw) as f64;
        let mut mean = vec![0.0; g.c];
        let mut var = vec![0.0; g.c];
        for c in 0..g.c {
            for n in 0..g.n {
                for p in 0..g.hw {
                    mean[c] += x[(n * g.c + c) * g.hw + p];
                }
            }
            mean[c] /= m;
            for n in 0..g.n {
                for p in 0..g.hw {
                    let d = x[(n * g.c + c) * g.hw + p] - mean[c];
                    var[c] += d * d;
                }
            }
            var[c] /= m;
        }
        (mean, var)
    }

    fn geoms() -> [BnGeom; 3] {
        [BnGeom { n: 2, c: 3, hw: 49 }, BnGeom { n: 2, c: 3, hw: 30 }, BnGeom { n: 5, c: 4, hw: 1 }]
    }

    /// Inputs with a channel-dependent offset and scale, so the normalisation matters.
    fn input(g: &BnGeom, rng: &mut Rng) -> Vec<f64> {
        let mut x = rng.vec(g.len());
        for (i, v) in x.iter_mut().enumerate() {
            let c = (i / g.hw) % g.c;
            *v = *v * (0.5 + c as f64) + 2.0 * c as f64 - 1.0;
        }
        x
    }

    #[test]
    fn stats_match_naive_two_pass() {
        let mut rng = Rng::new(40);
        for g in geoms() {
            let x = input(&g, &mut rng);
            let (want_mean, want_var) = naive_stats(&g, &x);
            let mut mean = vec![0.0; g.c];
            let mut var = vec![0.0; g.c];
            bn_stats(&g, &x, &mut mean, &mut var);
            assert_rel_close("bn_stats mean", &mean, &want_mean, 1e-14);
            assert_rel_close("bn_stats var", &var, &want_var, 1e-14);
        }
    }

    #[test]
    fn stats_avoid_cancellation_with_a_large_offset() {
        // f32 values 1e4 + {0, 1, 2, 3}: E[x^2] - E[x]^2 in f32 would be pure rounding noise.
        let g = BnGeom { n: 1, c: 1, hw: 4 };
        let x = [10000.0f32, 10001.0, 10002.0, 10003.0];
        let (mut mean, mut var) = ([0.0f32], [0.0f32]);
        bn_stats(&g, &x, &mut mean, &mut var);
        assert_eq!(mean[0], 10001.5);
        assert_eq!(var[0], 1.25);
    }

    #[test]
    fn train_forward_matches_naive() {
        let mut rng = Rng::new(41);
        for g in geoms() {
            let x = input(&g, &mut rng);
            let gamma = rng.vec(g.c);
            let beta = rng.vec(g.c);
            let (nm, nv) = naive_stats(&g, &x);
            let mut y = vec![0.0; g.len()];
            let mut mean = vec![0.0; g.c];
            let mut invstd = vec![0.0; g.c];
            bn_fwd_train(&g, &x, Some(&gamma), Some(&beta), EPS, &mut y, &mut mean, &mut invstd);
            let want: Vec<f64> = (0..g.len())
                .map(|i| {
                    let c = (i / g.hw) % g.c;
                    (x[i] - nm[c]) / (nv[c] + EPS).sqrt() * gamma[c] + beta[c]
                })
                .collect();
            assert_rel_close("bn_fwd_train", &y, &want, 1e-13);
            let want_invstd: Vec<f64> = nv.iter().map(|v| 1.0 / (v + EPS).sqrt()).collect();
            assert_rel_close("bn_fwd_train invstd", &invstd, &want_invstd, 1e-14);
            // Without affine parameters: per-channel zero mean, unit (biased) variance up to eps.
            bn_fwd_train(&g, &x, None, None, 0.0, &mut y, &mut mean, &mut invstd);
            let (m2, v2) = naive_stats(&g, &y);
            assert!(m2.iter().all(|m| m.abs() < 1e-13), "{m2:?}");
            assert!(v2.iter().all(|v| (v - 1.0).abs() < 1e-12), "{v2:?}");
        }
    }

    #[test]
    fn train_backward_matches_finite_differences() {
        let mut rng = Rng::new(42);
        for g in geoms() {
            let x = input(&g, &mut rng);
            let gamma = rng.vec(g.c);
            let beta = rng.vec(g.c);
            let r = rng.vec(g.len());
            // Loss(x, gamma, beta) = <r, bn(x)>.
            let loss = |x: &[f64], gamma: Option<&[f64]>, beta: Option<&[f64]>| {
                let mut y = vec![0.0; g.len()];
                let (mut m, mut s) = (vec![0.0; g.c], vec![0.0; g.c]);
                bn_fwd_train(&g, x, gamma, beta, EPS, &mut y, &mut m, &mut s);
                dot(&r, &y)
            };
            let mut y = vec![0.0; g.len()];
            let (mut mean, mut invstd) = (vec![0.0; g.c], vec![0.0; g.c]);
            bn_fwd_train(&g, &x, Some(&gamma), Some(&beta), EPS, &mut y, &mut mean, &mut invstd);
            let mut dx = vec![f64::NAN; g.len()];
            let (mut dgamma, mut dbeta) = (vec![f64::NAN; g.c], vec![f64::NAN; g.c]);
            bn_bwd_train(
                &g,
                &x,
                &r,
                &mean,
                &invstd,
                Some(&gamma),
                &mut dx,
                Some(&mut dgamma),
                Some(&mut dbeta),
            );
            let num_dx = numeric_grad(|x| loss(x, Some(&gamma), Some(&beta)), &x, 1e-5);
            assert_rel_close("bn_bwd_train dx", &dx, &num_dx, 1e-7);
            let num_dgamma = numeric_grad(|gm| loss(&x, Some(gm), Some(&beta)), &gamma, 1e-5);
            assert_rel_close("bn_bwd_train dgamma", &dgamma, &num_dgamma, 1e-7);
            let num_dbeta = numeric_grad(|b| loss(&x, Some(&gamma), Some(b)), &beta, 1e-5);
            assert_rel_close("bn_bwd_train dbeta", &dbeta, &num_dbeta, 1e-7);

            // Affine-free.
            bn_fwd_train(&g, &x, None, None, EPS, &mut y, &mut mean, &mut invstd);
            bn_bwd_train(&g, &x, &r, &mean, &invstd, None, &mut dx, None, None);
            let num_dx = numeric_grad(|x| loss(x, None, None), &x, 1e-5);
            assert_rel_close("bn_bwd_train dx (no affine)", &dx, &num_dx, 1e-7);
        }
    }

    #[test]
    fn running_update_uses_the_unbiased_variance() {
        let mut rng = Rng::new(43);
        let g = BnGeom { n: 2, c: 3, hw: 30 };
        let x = input(&g, &mut rng);
        let (nm, nv) = naive_stats(&g, &x);
        let mut y = vec![0.0; g.len()];
        let (mut mean, mut invstd) = (vec![0.0; g.c], vec![0.0; g.c]);
        bn_fwd_train(&g, &x, None, None, EPS, &mut y, &mut mean, &mut invstd);
        let mut rm = vec![0.5, -1.0, 2.0];
        let mut rv = vec![1.0, 3.0, 0.25];
        let (rm0, rv0) = (rm.clone(), rv.clone());
        let momentum = 0.1;
        bn_update_running(&g, &mean, &invstd, EPS, momentum, &mut rm, &mut rv);
        let m = 60.0;
        for c in 0..g.c {
            let want_m = 0.9 * rm0[c] + 0.1 * nm[c];
            let want_v = 0.9 * rv0[c] + 0.1 * nv[c] * m / (m - 1.0);
            assert!((rm[c] - want_m).abs() < 1e-14, "mean {c}: {} vs {want_m}", rm[c]);
            assert!((rv[c] - want_v).abs() < 1e-10 * want_v, "var {c}: {} vs {want_v}", rv[c]);
        }
        // Hand-computed: x = {1, 3} in one channel: mean 2, biased var 1, unbiased 2.
        let g = BnGeom { n: 2, c: 1, hw: 1 };
        let (mut mean, mut invstd, mut y) = ([0.0], [0.0], [0.0; 2]);
        bn_fwd_train(&g, &[1.0, 3.0], None, None, EPS, &mut y, &mut mean, &mut invstd);
        let (mut rm, mut rv) = ([0.0], [1.0]);
        bn_update_running(&g, &mean, &invstd, EPS, 0.1, &mut rm, &mut rv);
        assert!((rm[0] - 0.2).abs() < 1e-15);
        assert!((rv[0] - (0.9 + 0.2)).abs() < 1e-12, "{}", rv[0]);
    }

    #[test]
    fn eval_forward_and_backward() {
        let mut rng = Rng::new(44);
        for g in geoms() {
            let x = input(&g, &mut rng);
            let gamma = rng.vec(g.c);
            let beta = rng.vec(g.c);
            let rmean = rng.vec(g.c);
            let rvar: Vec<f64> = rng.vec(g.c).iter().map(|v| 1.5 + v).collect();
            let mut y = vec![0.0; g.len()];
            bn_fwd_eval(&g, &x, Some(&gamma), Some(&beta), &rmean, &rvar, EPS, &mut y);
            let want: Vec<f64> = (0..g.len())
                .map(|i| {
                    let c = (i / g.hw) % g.c;
                    (x[i] - rmean[c]) / (rvar[c] + EPS).sqrt() * gamma[c] + beta[c]
                })
                .collect();
            assert_rel_close("bn_fwd_eval", &y, &want, 1e-14);

            let r = rng.vec(g.len());
            let loss = |x: &[f64], gamma: &[f64], beta: &[f64]| {
                let mut y = vec![0.0; g.len()];
                bn_fwd_eval(&g, x, Some(gamma), Some(beta), &rmean, &rvar, EPS, &mut y);
                dot(&r, &y)
            };
            let mut dx = vec![f64::NAN; g.len()];
            let (mut dgamma, mut dbeta) = (vec![f64::NAN; g.c], vec![f64::NAN; g.c]);
            bn_bwd_eval(
                &g,
                &r,
                &x,
                &rmean,
                &rvar,
                Some(&gamma),
                EPS,
                &mut dx,
                Some(&mut dgamma),
                Some(&mut dbeta),
            );
            let num = numeric_grad(|x| loss(x, &gamma, &beta), &x, 1e-5);
            assert_rel_close("bn_bwd_eval dx", &dx, &num, 1e-7);
            let num = numeric_grad(|gm| loss(&x, gm, &beta), &gamma, 1e-5);
            assert_rel_close("bn_bwd_eval dgamma", &dgamma, &num, 1e-7);
            let num = numeric_grad(|b| loss(&x, &gamma, b), &beta, 1e-5);
            assert_rel_close("bn_bwd_eval dbeta", &dbeta, &num, 1e-7);
        }
    }

    #[test]
    fn results_are_independent_of_thread_count() {
        let g = BnGeom { n: 8, c: 5, hw: 32 * 32 };
        let mut rng = Rng::new(45);
        let x: Vec<f32> = rng.vec(g.len()).iter().map(|&v| v as f32).collect();
        let dy: Vec<f32> = rng.vec(g.len()).iter().map(|&v| v as f32).collect();
        let run = |threads: usize| {
            rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap().install(|| {
                let mut y = vec![0.0f32; g.len()];
                let (mut m, mut s) = (vec![0.0f32; g.c], vec![0.0f32; g.c]);
                bn_fwd_train(&g, &x, None, None, 1e-5, &mut y, &mut m, &mut s);
                let mut dx = vec![0.0f32; g.len()];
                bn_bwd_train(&g, &x, &dy, &m, &s, None, &mut dx, None, None);
                (y, m, s, dx)
            })
        };
        let a = run(1);
        let b = run(6);
        assert!(a.0.iter().zip(&b.0).all(|(p, q)| p.to_bits() == q.to_bits()));
        assert!(a.1.iter().zip(&b.1).all(|(p, q)| p.to_bits() == q.to_bits()));
        assert!(a.2.iter().zip(&b.2).all(|(p, q)| p.to_bits() == q.to_bits()));
        assert!(a.3.iter().zip(&b.3).all(|(p, q)| p.to_bits() == q.to_bits()));
    }
}
