//! Safe row-major GEMM over slices, the engine behind 1x1 convs, im2col convs and linear.

use super::real::Real;

/// Whether an operand is used as stored or transposed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trans {
    /// Use the matrix as stored (row-major).
    No,
    /// Use its transpose.
    Yes,
}

/// `C (m x n) = alpha * op(A) * op(B) + beta * C`, all row-major and contiguous.
/// `op(A)` is m x k (so A is stored m x k, or k x m when transposed); likewise `op(B)` is k x n.
#[allow(clippy::too_many_arguments)]
pub fn gemm<T: Real>(
    m: usize,
    k: usize,
    n: usize,
    alpha: T,
    a: &[T],
    ta: Trans,
    b: &[T],
    tb: Trans,
    beta: T,
    c: &mut [T],
) {
    assert!(
        a.len() >= m * k && b.len() >= k * n && c.len() >= m * n,
        "gemm: buffers too small for m={m} k={k} n={n} (a {}, b {}, c {})",
        a.len(),
        b.len(),
        c.len()
    );
    if m == 0 || n == 0 {
        return;
    }
    // Row/column strides of op(A) and op(B) as seen by the m x k and k x n products.
    let (rsa, csa) = match ta {
        Trans::No => (k as isize, 1),
        Trans::Yes => (1, m as isize),
    };
    let (rsb, csb) = match tb {
        Trans::No => (n as isize, 1),
        Trans::Yes => (1, k as isize),
    };
    // SAFETY: the asserts above bound every access the strides describe; C does not alias A/B
    // because it is borrowed mutably.
    unsafe {
        T::gemm_raw(
            m,
            k,
            n,
            alpha,
            a.as_ptr(),
            rsa,
            csa,
            b.as_ptr(),
            rsb,
            csb,
            beta,
            c.as_mut_ptr(),
            n as isize,
            1,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(m: usize, k: usize, n: usize, a: &[f64], ta: Trans, b: &[f64], tb: Trans) -> Vec<f64> {
        let mut c = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                let mut s = 0.0;
                for p in 0..k {
                    let av = if ta == Trans::No { a[i * k + p] } else { a[p * m + i] };
                    let bv = if tb == Trans::No { b[p * n + j] } else { b[j * k + p] };
                    s += av * bv;
                }
                c[i * n + j] = s;
            }
        }
        c
    }

    #[test]
    fn gemm_matches_naive_for_all_transposes() {
        let (m, k, n) = (5, 7, 3);
        let a: Vec<f64> = (0..m * k).map(|i| (i as f64 * 0.37).sin()).collect();
        let b: Vec<f64> = (0..k * n).map(|i| (i as f64 * 0.91).cos()).collect();
        for ta in [Trans::No, Trans::Yes] {
            for tb in [Trans::No, Trans::Yes] {
                let mut c = vec![0.0; m * n];
                gemm(m, k, n, 1.0, &a, ta, &b, tb, 0.0, &mut c);
                let want = naive(m, k, n, &a, ta, &b, tb);
                for (x, y) in c.iter().zip(&want) {
                    assert!((x - y).abs() < 1e-12, "{ta:?} {tb:?}: {x} vs {y}");
                }
            }
        }
    }
}
