//! Row-wise softmax: `y_j = exp(x_j - max_i x_i) / sum_i exp(x_i - max_i x_i)` (shifting by the
//! row maximum keeps every exponent <= 0, so large logits cannot overflow), and its backward
//! `dx_j = y_j (dy_j - <dy, y>)`.

use super::par::for_each_chunk_mut;
use super::real::Real;

fn check(op: &str, name: &str, got: usize, rows: usize, k: usize) {
    assert!(got == rows * k, "{op}: {name} has {got} elements, {rows} rows of {k} need {}", rows * k);
}

/// Softmax of one row, written to `y` (shared with the cross-entropy loss).
pub(crate) fn softmax_row<T: Real>(x: &[T], y: &mut [T]) {
    let max = x.iter().fold(T::NEG_INFINITY, |m, &v| m.max(v));
    let mut total = T::ZERO;
    for (yj, &xj) in y.iter_mut().zip(x) {
        *yj = (xj - max).exp();
        total += *yj;
    }
    for yj in y.iter_mut() {
        *yj /= total;
    }
}

/// Softmax over each of `rows` consecutive rows of `k` values.
pub fn softmax_rows<T: Real>(rows: usize, k: usize, x: &[T], y: &mut [T]) {
    check("softmax_rows", "x", x.len(), rows, k);
    check("softmax_rows", "y", y.len(), rows, k);
    for_each_chunk_mut(y, k, |off, y_row| softmax_row(&x[off..off + k], y_row));
}

/// The backward of [`softmax_rows`] from its output `y`: `dx = y * (dy - <dy, y>)` per row.
pub fn softmax_rows_bwd<T: Real>(rows: usize, k: usize, y: &[T], dy: &[T], dx: &mut [T]) {
    check("softmax_rows_bwd", "y", y.len(), rows, k);
    check("softmax_rows_bwd", "dy", dy.len(), rows, k);
    check("softmax_rows_bwd", "dx", dx.len(), rows, k);
    for_each_chunk_mut(dx, k, |off, dx_row| {
        let (y_row, dy_row) = (&y[off..off + k], &dy[off..off + k]);
        let inner = y_row.iter().zip(dy_row).fold(T::ZERO, |s, (&yj, &dyj)| s + yj * dyj);
        for ((dxj, &yj), &dyj) in dx_row.iter_mut().zip(y_row).zip(dy_row) {
            *dxj = yj * (dyj - inner);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::cpu::testutil::{assert_rel_close, dot, numeric_grad, Rng};

    fn naive(rows: usize, k: usize, x: &[f64]) -> Vec<f64> {
        let mut y = vec![0.0; rows * k];
        for r in 0..rows {
            let row = &x[r * k..(r + 1) * k];
            let m = row.iter().cloned().fold(f64::MIN, f64::max);
            let z: f64 = row.iter().map(|v| (v - m).exp()).sum();
            for j in 0..k {
                y[r * k + j] = (row[j] - m).exp() / z;
            }
        }
        y
    }

    #[test]
    fn forward_matches_naive_and_backward_matches_finite_differences() {
        let mut rng = Rng::new(20);
        // DARTS alphas: 14 edges x 8 ops; also an awkward width.
        for (rows, k) in [(14, 8), (5, 7)] {
            let x: Vec<f64> = rng.vec(rows * k).iter().map(|v| 3.0 * v).collect();
            let mut y = vec![0.0; rows * k];
            softmax_rows(rows, k, &x, &mut y);
            assert_rel_close("softmax_rows", &y, &naive(rows, k, &x), 1e-14);
            let r = rng.vec(rows * k);
            let mut dx = vec![0.0; rows * k];
            softmax_rows_bwd(rows, k, &y, &r, &mut dx);
            let loss = |x: &[f64]| {
                let mut y = vec![0.0; rows * k];
                softmax_rows(rows, k, x, &mut y);
                dot(&r, &y)
            };
            assert_rel_close("softmax_rows_bwd", &dx, &numeric_grad(loss, &x, 1e-5), 1e-7);
        }
    }

    #[test]
    fn stable_with_large_logits() {
        let x = [1000.0f32, 999.0, -1000.0, 1000.0];
        let mut y = [0.0f32; 4];
        softmax_rows(1, 4, &x, &mut y);
        assert!(y.iter().all(|v| v.is_finite()));
        let e = (-1.0f64).exp();
        let want = [1.0 / (2.0 + e), e / (2.0 + e), 0.0, 1.0 / (2.0 + e)];
        for (a, b) in y.iter().zip(want) {
            assert!((*a as f64 - b).abs() < 1e-6, "{a} vs {b}");
        }
        // Rows are independent: a huge row next to a tiny one.
        let x = [1000.0, 0.0, -1000.0, -999.0];
        let mut y = [0.0f64; 4];
        softmax_rows(2, 2, &x, &mut y);
        assert_eq!(y[0], 1.0);
        assert!((y[2] - 1.0 / (1.0 + 1f64.exp())).abs() < 1e-15);
    }
}
