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
    sgd_step_clipped(w, g, buf, T::ONE, lr, momentum, weight_decay, first_step)
}

/// [`sgd_step`] on the clipped gradient `coef * g`, formed on load (`coef` is the clip
/// coefficient, at most 1; 1 leaves `g` as it is, bit for bit).
#[allow(clippy::too_many_arguments)]
pub fn sgd_step_clipped<T: Real>(
    w: &mut [T],
    g: &[T],
    buf: &mut [T],
    coef: T,
    lr: T,
    momentum: T,
    weight_decay: T,
    first_step: bool,
) {
    check("sgd_step", "g", g.len(), w.len());
    check("sgd_step", "buf", buf.len(), w.len());
    let step = |w: &mut [T], g: &[T], buf: &mut [T]| {
        for ((wi, &gi), bi) in w.iter_mut().zip(g).zip(buf.iter_mut()) {
            let gi = coef * gi;
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

/// The global norm of a gradient list as PyTorch's `clip_grad_norm_` takes it: the norm of the
/// per-tensor norms, each from [`sum_sq`](super::elementwise::sum_sq), summed in list order.
pub fn norm_of_norms<T: Real>(xs: &[&[T]]) -> f64 {
    xs.iter().map(|x| super::elementwise::sum_sq(x).to_f64().sqrt().powi(2)).sum::<f64>().sqrt()
}

/// The norm of the concatenation of `xs` (`torch.cat(xs).norm()` as the reference architect
/// takes it): the square root of the per-tensor sums of squares, summed in list order.
pub fn norm_concat<T: Real>(xs: &[&[T]]) -> f64 {
    xs.iter().map(|x| super::elementwise::sum_sq(x).to_f64()).sum::<f64>().sqrt()
}

/// The scalars a norm gives a step, in the order of the GPU's scalar buffer:
/// [norm, min(1, max_norm / (norm + 1e-6)), num / norm, norm / num].
pub fn norm_scalars(norm: f64, max_norm: f64, num: f64) -> [f64; 4] {
    let coef = max_norm / (norm + 1e-6);
    [norm, if coef < 1.0 { coef } else { 1.0 }, num / norm, norm / num]
}

/// [`sgd_step_clipped`] on every tensor of a list (same coefficient for all).
#[allow(clippy::too_many_arguments)]
pub fn sgd_step_many<T: Real>(
    ws: &mut [&mut [T]],
    gs: &[&[T]],
    bufs: &mut [&mut [T]],
    coef: T,
    lr: T,
    momentum: T,
    weight_decay: T,
    first_step: bool,
) {
    assert!(ws.len() == gs.len() && ws.len() == bufs.len(), "sgd_step_many: list lengths differ");
    for ((w, g), buf) in ws.iter_mut().zip(gs).zip(bufs.iter_mut()) {
        sgd_step_clipped(w, g, buf, coef, lr, momentum, weight_decay, first_step);
    }
}

/// The unrolled weights of the second-order architect, `out = w − ξ (m·buf + g + wd·w)` (no
/// momentum term without `buf`), rounded as the reference's tensor expression:
/// `d = g + wd·w; d = m·buf + d; out = w + (−ξ)·d`.
pub fn unroll<T: Real>(
    out: &mut [T],
    w: &[T],
    g: &[T],
    buf: Option<&[T]>,
    xi: T,
    momentum: T,
    weight_decay: T,
) {
    check("unroll", "w", w.len(), out.len());
    check("unroll", "g", g.len(), out.len());
    let neg_xi = T::ZERO - xi;
    match buf {
        Some(buf) => {
            check("unroll", "buf", buf.len(), out.len());
            for (((o, &wi), &gi), &bi) in out.iter_mut().zip(w).zip(g).zip(buf) {
                let d = momentum * bi + (gi + weight_decay * wi);
                *o = wi + neg_xi * d;
            }
        }
        None => {
            for ((o, &wi), &gi) in out.iter_mut().zip(w).zip(g) {
                *o = wi + neg_xi * (gi + weight_decay * wi);
            }
        }
    }
}

/// The second-order α gradient from the finite differences: `out = d + ((p − m)·s)·(−ξ)` with
/// s = 1 / (2r), rounded as the reference's tensor expression.
pub fn hvp_combine<T: Real>(out: &mut [T], d: &[T], p: &[T], m: &[T], inv_2r: T, xi: T) {
    check("hvp_combine", "d", d.len(), out.len());
    check("hvp_combine", "p", p.len(), out.len());
    check("hvp_combine", "m", m.len(), out.len());
    let neg_xi = T::ZERO - xi;
    for (((o, &di), &pi), &mi) in out.iter_mut().zip(d).zip(p).zip(m) {
        *o = di + ((pi - mi) * inv_2r) * neg_xi;
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
