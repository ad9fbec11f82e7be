//! Optimiser steps with PyTorch's semantics, elementwise over one parameter tensor.
//!
//! SGD (no dampening, no Nesterov): `d = g + wd w`; `buf = d` on the first step, else
//! `buf = momentum buf + d`; `w -= lr buf`.
//!
//! Adam (no AMSGrad, L2-style weight decay): `d = g + wd w`; `m = b1 m + (1 - b1) d`;
//! `v = b2 v + (1 - b2) d^2`; `w -= (lr / (1 - b1^t)) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)`.
//! As in PyTorch the bias corrections are computed in double precision (there they are Python
//! floats).

use super::par::{is_large, CHUNK};
use super::real::Real;
use rayon::prelude::*;

fn check(op: &str, name: &str, got: usize, want: usize) {
    assert!(got == want, "{op}: {name} has {got} elements, w has {want}");
}

/// One SGD step on `w` with gradient `g` and momentum buffer `buf` (all the same length).
/// `first_step` initialises the buffer to the (decayed) gradient, as PyTorch does.
pub fn sgd_step<T: Real>(
    w: &mut [T],
    g: &[T],
    buf: &mut [T],
    lr: T,
    momentum: T,
    weight_decay: T,
    first_step: bool,
) {
    check("sgd_step", "g", g.len(), w.len());
    check("sgd_step", "buf", buf.len(), w.len());
    let step = |w: &mut [T], g: &[T], buf: &mut [T]| {
        for ((wi, &gi), bi) in w.iter_mut().zip(g).zip(buf.iter_mut()) {
            let d = if weight_decay != T::ZERO { gi + weight_decay * *wi } else { gi };
            *bi = if first_step { d } else { momentum * *bi + d };
            *wi -= lr * *bi;
        }
    };
    if is_large(w.len()) {
        w.par_chunks_mut(CHUNK)
            .zip(g.par_chunks(CHUNK))
            .zip(buf.par_chunks_mut(CHUNK))
            .for_each(|((w, g), buf)| step(w, g, buf));
    } else {
        step(w, g, buf);
    }
}

/// One Adam step on `w` with gradient `g` and moment buffers `m`, `v`; `step` is the 1-based
/// count of steps taken including this one.
#[allow(clippy::too_many_arguments)]
pub fn adam_step<T: Real>(
    w: &mut [T],
    g: &[T],
    m: &mut [T],
    v: &mut [T],
    lr: T,
    beta1: T,
    beta2: T,
    eps: T,
    weight_decay: T,
    step: u32,
) {
    assert!(step >= 1, "adam_step: step counts from 1, got 0");
    check("adam_step", "g", g.len(), w.len());
    check("adam_step", "m", m.len(), w.len());
    check("adam_step", "v", v.len(), w.len());
    let t = step.min(i32::MAX as u32) as i32;
    let bias_c1 = 1.0 - beta1.to_f64().powi(t);
    let bias_c2 = 1.0 - beta2.to_f64().powi(t);
    let step_size = T::from_f64(lr.to_f64() / bias_c1);
    let bias_c2_sqrt = T::from_f64(bias_c2.sqrt());
    let (keep1, keep2) = (T::ONE - beta1, T::ONE - beta2);
    let update = |w: &mut [T], g: &[T], m: &mut [T], v: &mut [T]| {
        for (((wi, &gi), mi), vi) in w.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
            let d = if weight_decay != T::ZERO { gi + weight_decay * *wi } else { gi };
            *mi = beta1 * *mi + keep1 * d;
            *vi = beta2 * *vi + keep2 * d * d;
            let denom = vi.sqrt() / bias_c2_sqrt + eps;
            *wi -= step_size * (*mi / denom);
        }
    };
    if is_large(w.len()) {
        w.par_chunks_mut(CHUNK)
            .zip(g.par_chunks(CHUNK))
            .zip(m.par_chunks_mut(CHUNK))
            .zip(v.par_chunks_mut(CHUNK))
            .for_each(|(((w, g), m), v)| update(w, g, m, v));
    } else {
        update(w, g, m, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-15 * b.abs().max(1.0)
    }

    #[test]
    fn sgd_matches_hand_computed_steps() {
        // DARTS weights: lr 0.025, momentum 0.9, wd 3e-4.
        let (lr, mom, wd) = (0.025, 0.9, 3e-4);
        let mut w = vec![1.0, -2.0];
        let mut buf = vec![123.0, 456.0]; // ignored on the first step
        sgd_step(&mut w, &[0.5, 0.25], &mut buf, lr, mom, wd, true);
        // d = g + wd w = [0.5003, 0.2494]; buf = d; w -= lr d.
        assert!(close(buf[0], 0.5003) && close(buf[1], 0.2494), "{buf:?}");
        assert!(close(w[0], 1.0 - 0.025 * 0.5003), "{w:?}");
        assert!(close(w[1], -2.0 - 0.025 * 0.2494), "{w:?}");
        let (w0, b0) = (w.clone(), buf.clone());
        sgd_step(&mut w, &[-1.0, 0.0], &mut buf, lr, mom, wd, false);
        for i in 0..2 {
            let g = [-1.0, 0.0][i];
            let b = 0.9 * b0[i] + (g + wd * w0[i]);
            assert!(close(buf[i], b));
            assert!(close(w[i], w0[i] - lr * b));
        }
        // Plain SGD: no momentum, no decay.
        let mut w = vec![3.0];
        let mut buf = vec![0.0];
        sgd_step(&mut w, &[2.0], &mut buf, 0.5, 0.0, 0.0, false);
        assert_eq!(w, [2.0]);
    }

    #[test]
    fn adam_matches_hand_computed_steps() {
        // DARTS architecture optimiser: lr 3e-4, betas (0.5, 0.999), wd 1e-3, eps 1e-8.
        let (lr, b1, b2, eps, wd) = (3e-4, 0.5, 0.999, 1e-8, 1e-3);
        let mut w = vec![0.2];
        let (mut m, mut v) = (vec![0.0], vec![0.0]);
        adam_step(&mut w, &[0.1], &mut m, &mut v, lr, b1, b2, eps, wd, 1);
        // d = 0.1 + 1e-3 * 0.2 = 0.1002; m = 0.0501; v = 0.001 * 0.1002^2.
        let d: f64 = 0.1002;
        assert!(close(m[0], 0.5 * d));
        assert!(close(v[0], (1.0 - 0.999) * d * d));
        // Step 1: m_hat = d and v_hat = d^2, so the step is ~lr * sign(d).
        let want1 = 0.2 - (lr / 0.5) * (0.5 * d) / (((1.0 - 0.999) * d * d).sqrt() / (0.001f64).sqrt() + eps);
        assert!(close(w[0], want1), "{} vs {want1}", w[0]);
        assert!((w[0] - (0.2 - lr)).abs() < 1e-10);

        let (w1, m1, v1) = (w[0], m[0], v[0]);
        adam_step(&mut w, &[-0.3], &mut m, &mut v, lr, b1, b2, eps, wd, 2);
        let d2 = -0.3 + wd * w1;
        let m2 = b1 * m1 + (1.0 - b1) * d2;
        let v2 = b2 * v1 + (1.0 - b2) * d2 * d2;
        let bc1 = 1.0 - b1 * b1;
        let bc2 = 1.0 - b2 * b2;
        let want2 = w1 - (lr / bc1) * (m2 / (v2.sqrt() / bc2.sqrt() + eps));
        assert!(close(m[0], m2) && close(v[0], v2));
        assert!(close(w[0], want2), "{} vs {want2}", w[0]);
    }

    #[test]
    fn large_tensors_match_the_sequential_path() {
        let len = 3 * crate::backend::cpu::par::PAR_MIN + 5;
        let g: Vec<f32> = (0..len).map(|i| ((i as f32) * 0.37).sin()).collect();
        let w0: Vec<f32> = (0..len).map(|i| ((i as f32) * 0.11).cos()).collect();
        let (mut w, mut m, mut v) = (w0.clone(), vec![0.1f32; len], vec![0.2f32; len]);
        adam_step(&mut w, &g, &mut m, &mut v, 1e-3, 0.9, 0.999, 1e-8, 1e-4, 3);
        for i in [0, 1, len / 2, len - 1] {
            let (mut wi, mut mi, mut vi) = ([w0[i]], [0.1f32], [0.2f32]);
            adam_step(&mut wi, &g[i..=i], &mut mi, &mut vi, 1e-3, 0.9, 0.999, 1e-8, 1e-4, 3);
            assert_eq!((w[i], m[i], v[i]), (wi[0], mi[0], vi[0]));
        }
    }
}
