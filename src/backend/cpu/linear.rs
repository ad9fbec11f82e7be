//! Fully connected layer through [`gemm`]: `y = x w^T + b` with `x [n, fin]`, `w [fout, fin]`,
//! `y [n, fout]`; backward `dx = dy w`, `dw = dy^T x`, `db = sum_n dy`.

use super::gemm::{gemm, Trans};
use super::real::Real;

fn check(op: &str, name: &str, got: usize, want: usize) {
    assert!(got == want, "{op}: {name} has {got} elements, expected {want}");
}

/// `y[i, o] = sum_f x[i, f] w[o, f] + b[o]` (no bias when `b` is `None`).
pub fn linear_fwd<T: Real>(
    n: usize,
    fin: usize,
    fout: usize,
    x: &[T],
    w: &[T],
    b: Option<&[T]>,
    y: &mut [T],
) {
    check("linear_fwd", "x", x.len(), n * fin);
    check("linear_fwd", "w", w.len(), fout * fin);
    check("linear_fwd", "y", y.len(), n * fout);
    let beta = match b {
        Some(b) => {
            check("linear_fwd", "b", b.len(), fout);
            // Seed every row of y with the bias, then accumulate x w^T onto it.
            for row in y.chunks_mut(fout.max(1)) {
                row.copy_from_slice(b);
            }
            T::ONE
        }
        None => T::ZERO,
    };
    gemm(n, fin, fout, T::ONE, x, Trans::No, w, Trans::Yes, beta, y);
}

/// `dx[i, f] = sum_o dy[i, o] w[o, f]`.
pub fn linear_bwd_data<T: Real>(n: usize, fin: usize, fout: usize, dy: &[T], w: &[T], dx: &mut [T]) {
    check("linear_bwd_data", "dy", dy.len(), n * fout);
    check("linear_bwd_data", "w", w.len(), fout * fin);
    check("linear_bwd_data", "dx", dx.len(), n * fin);
    gemm(n, fout, fin, T::ONE, dy, Trans::No, w, Trans::No, T::ZERO, dx);
}

/// `dw[o, f] = sum_i dy[i, o] x[i, f]` and, when asked, `db[o] = sum_i dy[i, o]` (summed in
/// f64, rows in order). Overwrites both.
pub fn linear_bwd_weight<T: Real>(
    n: usize,
    fin: usize,
    fout: usize,
    x: &[T],
    dy: &[T],
    dw: &mut [T],
    db: Option<&mut [T]>,
) {
    check("linear_bwd_weight", "x", x.len(), n * fin);
    check("linear_bwd_weight", "dy", dy.len(), n * fout);
    check("linear_bwd_weight", "dw", dw.len(), fout * fin);
    // With beta = 0 the GEMM overwrites dw (it is zeroed when n = 0).
    gemm(fout, n, fin, T::ONE, dy, Trans::Yes, x, Trans::No, T::ZERO, dw);
    if let Some(db) = db {
        check("linear_bwd_weight", "db", db.len(), fout);
        for (o, dbo) in db.iter_mut().enumerate() {
            *dbo = T::from_f64((0..n).map(|i| dy[i * fout + o].to_f64()).sum());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::cpu::testutil::{assert_rel_close, dot, numeric_grad, Rng};

    #[test]
    fn forward_matches_naive_and_backward_matches_finite_differences() {
        let mut rng = Rng::new(60);
        let (n, fin, fout) = (3, 7, 10);
        let x = rng.vec(n * fin);
        let w = rng.vec(fout * fin);
        let b = rng.vec(fout);
        for bias in [Some(b.as_slice()), None] {
            let mut y = vec![f64::NAN; n * fout];
            linear_fwd(n, fin, fout, &x, &w, bias, &mut y);
            let want: Vec<f64> = (0..n * fout)
                .map(|idx| {
                    let (i, o) = (idx / fout, idx % fout);
                    let s: f64 = (0..fin).map(|f| x[i * fin + f] * w[o * fin + f]).sum();
                    s + bias.map_or(0.0, |b| b[o])
                })
                .collect();
            assert_rel_close("linear_fwd", &y, &want, 1e-14);
        }

        let r = rng.vec(n * fout);
        let loss = |x: &[f64], w: &[f64], b: &[f64]| {
            let mut y = vec![0.0; n * fout];
            linear_fwd(n, fin, fout, x, w, Some(b), &mut y);
            dot(&r, &y)
        };
        let mut dx = vec![f64::NAN; n * fin];
        linear_bwd_data(n, fin, fout, &r, &w, &mut dx);
        assert_rel_close("linear_bwd_data", &dx, &numeric_grad(|x| loss(x, &w, &b), &x, 1e-5), 1e-7);
        let mut dw = vec![f64::NAN; fout * fin];
        let mut db = vec![f64::NAN; fout];
        linear_bwd_weight(n, fin, fout, &x, &r, &mut dw, Some(&mut db));
        assert_rel_close("linear_bwd_weight dw", &dw, &numeric_grad(|w| loss(&x, w, &b), &w, 1e-5), 1e-7);
        assert_rel_close("linear_bwd_weight db", &db, &numeric_grad(|b| loss(&x, &w, b), &b, 1e-5), 1e-7);
    }
}
