//! Spatial and per-channel reductions on `[n, c, hw]` tensors:
//! global average pooling `y[n, c] = (1 / hw) sum_p x[n, c, p]` (backward
//! `dx[n, c, p] = dy[n, c] / hw`), and per-channel `sum_{n, p} x` and `sum_{n, p} x^2`.
//! Sums are accumulated in f64 in a fixed order.

use super::par::{for_each_chunk_mut, is_large, map_collect};
use super::real::Real;
use crate::backend::geom::BnGeom;

fn check(op: &str, name: &str, got: usize, want: usize) {
    assert!(got == want, "{op}: {name} has {got} elements, expected {want}");
}

/// `y[n, c] = mean over the hw pixels of x[n, c, :]`.
pub fn global_avg_pool_fwd<T: Real>(n: usize, c: usize, hw: usize, x: &[T], y: &mut [T]) {
    check("global_avg_pool_fwd", "x", x.len(), n * c * hw);
    check("global_avg_pool_fwd", "y", y.len(), n * c);
    let means = map_collect(n * c, is_large(x.len()), |plane| {
        let total: f64 = x[plane * hw..(plane + 1) * hw].iter().map(|v| v.to_f64()).sum();
        total / hw.max(1) as f64
    });
    for (yi, m) in y.iter_mut().zip(means) {
        *yi = T::from_f64(m);
    }
}

/// `dx[n, c, p] = dy[n, c] / hw`.
pub fn global_avg_pool_bwd<T: Real>(n: usize, c: usize, hw: usize, dy: &[T], dx: &mut [T]) {
    check("global_avg_pool_bwd", "dy", dy.len(), n * c);
    check("global_avg_pool_bwd", "dx", dx.len(), n * c * hw);
    let inv = T::ONE / T::from_usize(hw.max(1));
    for_each_chunk_mut(dx, hw, |off, dx_plane| dx_plane.fill(dy[off / hw] * inv));
}

/// Per-channel `sum[c] = sum_{n, p} x[n, c, p]` and `sumsq[c] = sum_{n, p} x[n, c, p]^2`.
pub fn channel_sums<T: Real>(g: &BnGeom, x: &[T], sum: &mut [T], sumsq: &mut [T]) {
    check("channel_sums", "x", x.len(), g.len());
    check("channel_sums", "sum", sum.len(), g.c);
    check("channel_sums", "sumsq", sumsq.len(), g.c);
    let sums = map_collect(g.c, is_large(g.len()), |ci| {
        let (mut s, mut q) = (0.0f64, 0.0f64);
        for ni in 0..g.n {
            let plane = &x[(ni * g.c + ci) * g.hw..][..g.hw];
            for v in plane {
                let v = v.to_f64();
                s += v;
                q += v * v;
            }
        }
        (s, q)
    });
    for (ci, (s, q)) in sums.into_iter().enumerate() {
        sum[ci] = T::from_f64(s);
        sumsq[ci] = T::from_f64(q);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::cpu::testutil::{assert_rel_close, dot, numeric_grad, Rng};

    #[test]
    fn global_avg_pool_forward_and_backward() {
        let mut rng = Rng::new(50);
        for hw in [49, 30] {
            let (n, c) = (2, 3);
            let x = rng.vec(n * c * hw);
            let mut y = vec![0.0; n * c];
            global_avg_pool_fwd(n, c, hw, &x, &mut y);
            let want: Vec<f64> =
                (0..n * c).map(|p| x[p * hw..(p + 1) * hw].iter().sum::<f64>() / hw as f64).collect();
            assert_rel_close("global_avg_pool_fwd", &y, &want, 1e-15);
            let r = rng.vec(n * c);
            let mut dx = vec![f64::NAN; x.len()];
            global_avg_pool_bwd(n, c, hw, &r, &mut dx);
            let loss = |x: &[f64]| {
                let mut y = vec![0.0; n * c];
                global_avg_pool_fwd(n, c, hw, x, &mut y);
                dot(&r, &y)
            };
            assert_rel_close("global_avg_pool_bwd", &dx, &numeric_grad(loss, &x, 1e-5), 1e-7);
        }
    }

    #[test]
    fn channel_sums_match_naive() {
        let mut rng = Rng::new(51);
        let g = BnGeom { n: 2, c: 3, hw: 30 };
        let x = rng.vec(g.len());
        let (mut s, mut q) = (vec![0.0; 3], vec![0.0; 3]);
        channel_sums(&g, &x, &mut s, &mut q);
        let mut ws = vec![0.0; 3];
        let mut wq = vec![0.0; 3];
        for ni in 0..g.n {
            for ci in 0..g.c {
                for p in 0..g.hw {
                    let v = x[(ni * g.c + ci) * g.hw + p];
                    ws[ci] += v;
                    wq[ci] += v * v;
                }
            }
        }
        assert_rel_close("channel_sums sum", &s, &ws, 1e-14);
        assert_rel_close("channel_sums sumsq", &q, &wq, 1e-14);
    }
}
