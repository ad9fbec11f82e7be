//! Elementwise ops and flat reductions: `relu(x) = max(x, 0)`, sums, scalings, the DARTS
//! mixed-op weighted sum `y = sum_k w_k x_k`, and dot products / squared norms (accumulated in
//! f64 over fixed chunks, so they are deterministic and accurate for f32 too).

use super::par::{for_each_chunk_mut, sum_f64, CHUNK};
use super::real::Real;

fn check_len(op: &str, name: &str, got: usize, want: usize) {
    assert!(got == want, "{op}: {name} has {got} elements, expected {want}");
}

/// `y = max(x, 0)` (NaN propagates).
pub fn relu_fwd<T: Real>(x: &[T], y: &mut [T]) {
    check_len("relu_fwd", "y", y.len(), x.len());
    for_each_chunk_mut(y, CHUNK, |off, y| {
        let x = &x[off..off + y.len()];
        for (yi, &xi) in y.iter_mut().zip(x) {
            *yi = if xi < T::ZERO { T::ZERO } else { xi };
        }
    });
}

/// `dx = dy` where `x > 0`, else 0.
pub fn relu_bwd<T: Real>(x: &[T], dy: &[T], dx: &mut [T]) {
    check_len("relu_bwd", "dy", dy.len(), x.len());
    check_len("relu_bwd", "dx", dx.len(), x.len());
    for_each_chunk_mut(dx, CHUNK, |off, dx| {
        let range = off..off + dx.len();
        for ((dxi, &xi), &dyi) in dx.iter_mut().zip(&x[range.clone()]).zip(&dy[range]) {
            *dxi = if xi > T::ZERO { dyi } else { T::ZERO };
        }
    });
}

/// `y = σ(x) = 1 / (1 + e^{−x})`.
pub fn sigmoid_fwd<T: Real>(x: &[T], y: &mut [T]) {
    check_len("sigmoid_fwd", "y", y.len(), x.len());
    for_each_chunk_mut(y, CHUNK, |off, y| {
        for (yi, &xi) in y.iter_mut().zip(&x[off..]) {
            *yi = T::ONE / (T::ONE + (T::ZERO - xi).exp());
        }
    });
}

/// `dx = dy · y (1 − y)` from the forward's output `y`.
pub fn sigmoid_bwd<T: Real>(y: &[T], dy: &[T], dx: &mut [T]) {
    check_len("sigmoid_bwd", "dy", dy.len(), y.len());
    check_len("sigmoid_bwd", "dx", dx.len(), y.len());
    for_each_chunk_mut(dx, CHUNK, |off, dx| {
        let range = off..off + dx.len();
        for ((dxi, &yi), &dyi) in dx.iter_mut().zip(&y[range.clone()]).zip(&dy[range]) {
            *dxi = dyi * yi * (T::ONE - yi);
        }
    });
}

/// `y = a + b`.
pub fn add<T: Real>(a: &[T], b: &[T], y: &mut [T]) {
    check_len("add", "b", b.len(), a.len());
    check_len("add", "y", y.len(), a.len());
    for_each_chunk_mut(y, CHUNK, |off, y| {
        let range = off..off + y.len();
        for ((yi, &ai), &bi) in y.iter_mut().zip(&a[range.clone()]).zip(&b[range]) {
            *yi = ai + bi;
        }
    });
}

/// `y += x`.
pub fn add_acc<T: Real>(x: &[T], y: &mut [T]) {
    check_len("add_acc", "y", y.len(), x.len());
    for_each_chunk_mut(y, CHUNK, |off, y| {
        let x = &x[off..off + y.len()];
        for (yi, &xi) in y.iter_mut().zip(x) {
            *yi += xi;
        }
    });
}

/// `y = s * x`.
pub fn scale<T: Real>(x: &[T], s: T, y: &mut [T]) {
    check_len("scale", "y", y.len(), x.len());
    for_each_chunk_mut(y, CHUNK, |off, y| {
        let x = &x[off..off + y.len()];
        for (yi, &xi) in y.iter_mut().zip(x) {
            *yi = s * xi;
        }
    });
}

/// `y[i] = s[i / inner] * x[i]`: one factor per block of `inner` consecutive elements.
pub fn scale_samples<T: Real>(x: &[T], s: &[T], inner: usize, y: &mut [T]) {
    check_len("scale_samples", "y", y.len(), x.len());
    check_len("scale_samples", "x", x.len(), s.len() * inner);
    for ((y, x), &si) in y.chunks_mut(inner.max(1)).zip(x.chunks(inner.max(1))).zip(s) {
        for (yi, &xi) in y.iter_mut().zip(x) {
            *yi = si * xi;
        }
    }
}

/// `y += alpha * x`.
pub fn axpy<T: Real>(alpha: T, x: &[T], y: &mut [T]) {
    check_len("axpy", "y", y.len(), x.len());
    for_each_chunk_mut(y, CHUNK, |off, y| {
        let x = &x[off..off + y.len()];
        for (yi, &xi) in y.iter_mut().zip(x) {
            *yi += alpha * xi;
        }
    });
}

/// `y[i] = v` for every i.
pub fn fill<T: Real>(y: &mut [T], v: T) {
    for_each_chunk_mut(y, CHUNK, |_, y| y.fill(v));
}

/// `y = sum_k w[k] * xs[k]` (terms added in k order; `y = 0` when `xs` is empty).
pub fn weighted_sum<T: Real>(xs: &[&[T]], w: &[T], y: &mut [T]) {
    check_len("weighted_sum", "w", w.len(), xs.len());
    for (k, x) in xs.iter().enumerate() {
        assert!(x.len() == y.len(), "weighted_sum: xs[{k}] has {} elements, y has {}", x.len(), y.len());
    }
    for_each_chunk_mut(y, CHUNK, |off, y| {
        y.fill(T::ZERO);
        for (x, &wk) in xs.iter().zip(w) {
            let x = &x[off..off + y.len()];
            for (yi, &xi) in y.iter_mut().zip(x) {
                *yi += wk * xi;
            }
        }
    });
}

/// `dw[k] = <dy, xs[k]>`: the gradient of [`weighted_sum`] with respect to its weights.
pub fn weighted_sum_bwd_weights<T: Real>(xs: &[&[T]], dy: &[T], dw: &mut [T]) {
    check_len("weighted_sum_bwd_weights", "dw", dw.len(), xs.len());
    for (k, (x, dwk)) in xs.iter().zip(dw.iter_mut()).enumerate() {
        assert!(
            x.len() == dy.len(),
            "weighted_sum_bwd_weights: xs[{k}] has {} elements, dy has {}",
            x.len(),
            dy.len()
        );
        *dwk = dot(dy, x);
    }
}

/// `<a, b> = sum_i a_i b_i`, accumulated in f64.
pub fn dot<T: Real>(a: &[T], b: &[T]) -> T {
    check_len("dot", "b", b.len(), a.len());
    T::from_f64(sum_f64(a.len(), |i| a[i].to_f64() * b[i].to_f64()))
}

/// `sum_i x_i`, accumulated in f64.
pub fn sum<T: Real>(x: &[T]) -> T {
    T::from_f64(sum_f64(x.len(), |i| x[i].to_f64()))
}

/// `sum_i x_i^2` (the squared L2 norm, for gradient-norm clipping), accumulated in f64.
pub fn sum_sq<T: Real>(x: &[T]) -> T {
    T::from_f64(sum_f64(x.len(), |i| {
        let v = x[i].to_f64();
        v * v
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::cpu::par::PAR_MIN;
    use crate::backend::cpu::testutil::{assert_rel_close, numeric_grad, Rng};

    #[test]
    fn relu_forward_and_backward() {
        let mut rng = Rng::new(1);
        // Keep every input at least 0.01 away from the kink at 0.
        let x: Vec<f64> =
            rng.vec(2 * 3 * 7 * 7).into_iter().map(|u| if u < 0.0 { u - 0.01 } else { u + 0.01 }).collect();
        let mut y = vec![0.0; x.len()];
        relu_fwd(&x, &mut y);
        for (xi, yi) in x.iter().zip(&y) {
            assert_eq!(*yi, xi.max(0.0));
        }
        let r = rng.vec(x.len());
        let mut dx = vec![0.0; x.len()];
        relu_bwd(&x, &r, &mut dx);
        let loss = |x: &[f64]| {
            let mut y = vec![0.0; x.len()];
            relu_fwd(x, &mut y);
            dot(&r, &y)
        };
        assert_rel_close("relu_bwd", &dx, &numeric_grad(loss, &x, 1e-5), 1e-7);
        // Exactly at zero the gradient is zero.
        let mut d = [1.0f32];
        relu_bwd(&[0.0f32], &[3.0], &mut d);
        assert_eq!(d, [0.0]);
    }

    #[test]
    fn relu_propagates_nan() {
        let mut y = [0.0f32; 2];
        relu_fwd(&[f32::NAN, -1.0], &mut y);
        assert!(y[0].is_nan());
        assert_eq!(y[1], 0.0);
    }

    #[test]
    fn linear_elementwise_ops() {
        let a = [1.0, -2.0, 3.5];
        let b = [0.5, 4.0, -1.0];
        let mut y = [0.0; 3];
        add(&a, &b, &mut y);
        assert_eq!(y, [1.5, 2.0, 2.5]);
        add_acc(&a, &mut y);
        assert_eq!(y, [2.5, 0.0, 6.0]);
        scale(&a, 2.0, &mut y);
        assert_eq!(y, [2.0, -4.0, 7.0]);
        axpy(-0.5, &b, &mut y);
        assert_eq!(y, [1.75, -6.0, 7.5]);
        fill(&mut y, 9.0);
        assert_eq!(y, [9.0; 3]);
        assert_eq!(dot(&a, &b), 0.5 - 8.0 - 3.5);
        assert_eq!(sum(&a), 2.5);
        assert_eq!(sum_sq(&a), 1.0 + 4.0 + 12.25);
    }

    #[test]
    fn weighted_sum_forward_and_weight_gradient() {
        let mut rng = Rng::new(2);
        let len = 2 * 3 * 5 * 6;
        let xs: Vec<Vec<f64>> = (0..4).map(|_| rng.vec(len)).collect();
        let refs: Vec<&[f64]> = xs.iter().map(|v| v.as_slice()).collect();
        let w = rng.vec(4);
        let mut y = vec![f64::NAN; len];
        weighted_sum(&refs, &w, &mut y);
        let naive: Vec<f64> = (0..len).map(|i| (0..4).map(|k| w[k] * xs[k][i]).sum()).collect();
        assert_rel_close("weighted_sum", &y, &naive, 1e-15);

        let r = rng.vec(len);
        let mut dw = vec![0.0; 4];
        weighted_sum_bwd_weights(&refs, &r, &mut dw);
        let loss = |w: &[f64]| {
            let mut y = vec![0.0; len];
            weighted_sum(&refs, w, &mut y);
            dot(&r, &y)
        };
        assert_rel_close("weighted_sum_bwd_weights", &dw, &numeric_grad(loss, &w, 1e-5), 1e-7);

        weighted_sum::<f64>(&[], &[], &mut y);
        assert!(y.iter().all(|&v| v == 0.0));
    }

    #[test]
    fn reductions_accumulate_f32_in_f64_and_are_thread_count_independent() {
        // 1 + many tiny values: a naive f32 running sum would lose them all.
        let mut x = vec![1e-8f32; 3 * PAR_MIN];
        x[0] = 1.0;
        let want = 1.0 + 1e-8f64 * (x.len() - 1) as f64;
        assert!((sum(&x) as f64 - want).abs() < 1e-6);

        let mut rng = Rng::new(3);
        let a: Vec<f32> = rng.vec(5 * PAR_MIN + 7).iter().map(|&v| v as f32).collect();
        let b: Vec<f32> = rng.vec(a.len()).iter().map(|&v| v as f32).collect();
        let run = |threads: usize| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap()
                .install(|| (dot(&a, &b), sum(&a), sum_sq(&b)))
        };
        let (d1, s1, q1) = run(1);
        let (d2, s2, q2) = run(7);
        assert_eq!((d1.to_bits(), s1.to_bits(), q1.to_bits()), (d2.to_bits(), s2.to_bits(), q2.to_bits()));
    }

    #[test]
    #[should_panic(expected = "add: y has 2 elements, expected 3")]
    fn length_mismatch_names_the_op() {
        let mut y = [0.0f32; 2];
        add(&[1.0; 3], &[1.0; 3], &mut y);
    }
}
