//! Softmax cross-entropy with label smoothing `eps` over a batch of `n` rows of `k` logits
//! (the reference's `CrossEntropyLabelSmooth`): targets `q_i = (1 - eps) onehot(label_i) + eps/k`,
//! `loss = (1/n) sum_i sum_j -q_ij ln softmax(z_i)_j
//!       = (1/n) sum_i (lse(z_i) - (1 - eps) z_i[label_i] - (eps/k) sum_j z_ij)` with
//! `lse(z) = max z + ln sum_j exp(z_j - max z)` (stable for large logits), and its gradient
//! `dz_i = dloss * (softmax(z_i) - q_i) / n`; `eps = 0` is the plain cross-entropy, bit for bit.
//! Plus top-1 and top-k counts, and FairDARTS' zero-one loss `−scale Σ_i (s_i − ½)²`.

use super::real::Real;

fn check(op: &str, name: &str, got: usize, want: usize) {
    assert!(got == want, "{op}: {name} has {got} elements, expected {want}");
}

fn check_eps<T: Real>(op: &str, eps: T) {
    let e = eps.to_f64();
    assert!((0.0..=1.0).contains(&e), "{op}: label smoothing {e} is outside [0, 1]");
}

fn check_labels(op: &str, k: usize, labels: &[u32]) {
    for (i, &l) in labels.iter().enumerate() {
        assert!((l as usize) < k, "{op}: label {l} of row {i} is out of range for {k} classes");
    }
}

/// Mean cross-entropy of `logits [n, k]` against `labels [n]` smoothed by `eps` (see the module
/// docs); writes `probs [n, k]` (the softmax of each row) for [`softmax_xent_bwd`]. Panics if a
/// label is `>= k` or `eps` is outside `[0, 1]`. The per-row losses are summed in f64, in row
/// order.
pub fn softmax_xent_fwd<T: Real>(
    n: usize,
    k: usize,
    logits: &[T],
    labels: &[u32],
    eps: T,
    probs: &mut [T],
) -> T {
    let op = "softmax_xent_fwd";
    check(op, "logits", logits.len(), n * k);
    check(op, "labels", labels.len(), n);
    check(op, "probs", probs.len(), n * k);
    check_labels(op, k, labels);
    check_eps(op, eps);
    let mut total = 0.0f64;
    for i in 0..n {
        let z = &logits[i * k..(i + 1) * k];
        let p = &mut probs[i * k..(i + 1) * k];
        let max = z.iter().fold(T::NEG_INFINITY, |m, &v| m.max(v));
        // p_j = exp(z_j - max) / Z with Z = sum_j exp(z_j - max); lse = max + ln Z.
        let mut partition = T::ZERO;
        for (pj, &zj) in p.iter_mut().zip(z) {
            *pj = (zj - max).exp();
            partition += *pj;
        }
        for pj in p.iter_mut() {
            *pj /= partition;
        }
        let ln_z = partition.ln();
        let nll = (max + ln_z) - z[labels[i] as usize];
        let row = if eps == T::ZERO {
            nll
        } else {
            // (1 - eps)(lse - z_y) + eps (lse - mean z), with lse - mean z = ln Z + mean(max - z):
            // non-negative terms, so large logits do not cancel.
            let spread = z.iter().fold(T::ZERO, |s, &zj| s + (max - zj)) / T::from_usize(k);
            (T::ONE - eps) * nll + eps * (ln_z + spread)
        };
        total += row.to_f64();
    }
    T::from_f64(total / n.max(1) as f64)
}

/// `dlogits = dloss * (probs - q) / n` with `q = (1 - eps) onehot(labels) + eps / k`, from the
/// `probs` written by [`softmax_xent_fwd`] (with the same `eps`).
#[allow(clippy::too_many_arguments)]
pub fn softmax_xent_bwd<T: Real>(
    n: usize,
    k: usize,
    probs: &[T],
    labels: &[u32],
    eps: T,
    dloss: T,
    dlogits: &mut [T],
) {
    let op = "softmax_xent_bwd";
    check(op, "probs", probs.len(), n * k);
    check(op, "labels", labels.len(), n);
    check(op, "dlogits", dlogits.len(), n * k);
    check_labels(op, k, labels);
    check_eps(op, eps);
    let coef = dloss / T::from_usize(n.max(1));
    // At eps = 0 the targets are exactly 1 and 0: the plain gradient's bits.
    let (on, off) = (T::ONE - eps, eps / T::from_usize(k.max(1)));
    for i in 0..n {
        let label = labels[i] as usize;
        for j in 0..k {
            let onehot = if j == label { T::ONE } else { T::ZERO };
            dlogits[i * k + j] = coef * (probs[i * k + j] - (on * onehot + off));
        }
    }
}

/// Number of rows whose argmax (first maximum wins) equals the label.
pub fn top1_correct<T: Real>(n: usize, k: usize, logits: &[T], labels: &[u32]) -> usize {
    check("top1_correct", "logits", logits.len(), n * k);
    check("top1_correct", "labels", labels.len(), n);
    (0..n)
        .filter(|&i| {
            let z = &logits[i * k..(i + 1) * k];
            let mut best = 0;
            for j in 1..k {
                if z[j] > z[best] {
                    best = j;
                }
            }
            k > 0 && best == labels[i] as usize
        })
        .count()
}

/// Number of rows whose label is among the `top` largest logits, ties going to the lower index
/// as in [`top1_correct`]: the label's rank is the count of logits above it plus those equal to
/// it at lower indices. `top = 1` counts what [`top1_correct`] counts for NaN-free rows.
pub fn topk_correct<T: Real>(n: usize, k: usize, top: usize, logits: &[T], labels: &[u32]) -> usize {
    check("topk_correct", "logits", logits.len(), n * k);
    check("topk_correct", "labels", labels.len(), n);
    check_labels("topk_correct", k, labels);
    (0..n)
        .filter(|&i| {
            let z = &logits[i * k..(i + 1) * k];
            let y = labels[i] as usize;
            let rank = (0..k).filter(|&j| z[j] > z[y] || (z[j] == z[y] && j < y)).count();
            rank < top
        })
        .count()
}

/// FairDARTS' zero-one loss of architecture weights `s` (σ(α)): `−scale Σ_i (s_i − ½)²`, the
/// squares summed in f64 in index order (scale = 1 / count: the negated mean squared distance
/// from ½).
pub fn zero_one_fwd<T: Real>(s: &[T], scale: f64) -> T {
    let q: f64 = s.iter().map(|&v| (v.to_f64() - 0.5) * (v.to_f64() - 0.5)).sum();
    T::from_f64(-scale * q)
}

/// The gradient of [`zero_one_fwd`]: `ds_i = −2 scale (s_i − ½) dloss`.
pub fn zero_one_bwd<T: Real>(s: &[T], scale: f64, dloss: T, ds: &mut [T]) {
    check("zero_one_bwd", "ds", ds.len(), s.len());
    let k = T::from_f64(-2.0 * scale) * dloss;
    let half = T::from_f64(0.5);
    for (d, &v) in ds.iter_mut().zip(s) {
        *d = k * (v - half);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::cpu::testutil::{assert_rel_close, numeric_grad, Rng};

    #[test]
    fn forward_matches_naive_and_backward_matches_finite_differences() {
        let mut rng = Rng::new(70);
        let (n, k) = (5, 10);
        let logits: Vec<f64> = rng.vec(n * k).iter().map(|v| 4.0 * v).collect();
        let labels = [3u32, 0, 9, 9, 4];
        let mut probs = vec![0.0; n * k];
        let loss = softmax_xent_fwd(n, k, &logits, &labels, 0.0, &mut probs);
        let mut want = 0.0;
        for i in 0..n {
            let z = &logits[i * k..(i + 1) * k];
            let zsum: f64 = z.iter().map(|v| v.exp()).sum();
            want += -(z[labels[i] as usize].exp() / zsum).ln();
            for j in 0..k {
                assert!((probs[i * k + j] - z[j].exp() / zsum).abs() < 1e-15);
            }
        }
        want /= n as f64;
        assert!((loss - want).abs() < 1e-14 * want, "{loss} vs {want}");

        let dloss = 1.7;
        let mut d = vec![f64::NAN; n * k];
        softmax_xent_bwd(n, k, &probs, &labels, 0.0, dloss, &mut d);
        let f = |z: &[f64]| {
            let mut p = vec![0.0; n * k];
            dloss * softmax_xent_fwd(n, k, z, &labels, 0.0, &mut p)
        };
        assert_rel_close("softmax_xent_bwd", &d, &numeric_grad(f, &logits, 1e-5), 1e-7);
    }

    #[test]
    fn stable_with_large_logits() {
        // Row 0: the label holds the huge logit; row 1: it is 1000 below the winner.
        let logits = [1000.0f32, 0.0, -1000.0, 0.0, 1000.0, 0.0];
        let mut probs = [0.0f32; 6];
        let loss = softmax_xent_fwd(2, 3, &logits, &[0, 0], 0.0, &mut probs);
        assert!(loss.is_finite());
        // Row losses: ~0 and ~1000 (ln(e^1000 + 2) - 0 - ... = 1000 + tiny).
        assert!((loss - 500.0).abs() < 1e-3, "{loss}");
        assert!(probs.iter().all(|p| p.is_finite()));
        assert_eq!(probs[0], 1.0);
        let mut d = [0.0f32; 6];
        softmax_xent_bwd(2, 3, &probs, &[0, 0], 0.0, 1.0, &mut d);
        assert!(d.iter().all(|v| v.is_finite()));
        assert_eq!(d[3], -0.5);
        assert_eq!(d[4], 0.5);
    }

    #[test]
    #[should_panic(expected = "softmax_xent_fwd: label 3 of row 1 is out of range for 3 classes")]
    fn out_of_range_label_panics() {
        let mut p = [0.0f64; 6];
        softmax_xent_fwd(2, 3, &[0.0; 6], &[0, 3], 0.0, &mut p);
    }

    #[test]
    fn label_smoothing_matches_hand_computed_values_and_finite_differences() {
        // Row 0: z = (1, 2, 3), label 0; row 1: z = (0.5, -1, 0), label 2; eps = 0.1, k = 3.
        let (logits, labels, eps) = ([1.0, 2.0, 3.0, 0.5, -1.0, 0.0], [0u32, 2], 0.1);
        // lse(1, 2, 3) = 3 + ln(1 + e^-1 + e^-2); row loss = lse - 0.9 z_y - (0.1/3) sum z.
        let lse0 = 3.0 + (1.0 + (-1.0f64).exp() + (-2.0f64).exp()).ln();
        let lse1 = 0.5 + (1.0 + (-1.5f64).exp() + (-0.5f64).exp()).ln();
        let row0 = lse0 - 0.9 * 1.0 - 0.1 / 3.0 * 6.0;
        let row1 = lse1 - 0.9 * 0.0 - 0.1 / 3.0 * -0.5;
        let mut probs = [0.0f64; 6];
        let loss = softmax_xent_fwd(2, 3, &logits, &labels, eps, &mut probs);
        assert!((loss - (row0 + row1) / 2.0).abs() < 1e-15, "{loss}");
        assert!((row0 - 2.30760596444438).abs() < 1e-13, "row 0 by hand: {row0}");

        // Gradient (p - q) / n: row 0's label entry is (p_0 - (0.9 + 0.1/3)) / 2.
        let mut d = [0.0f64; 6];
        softmax_xent_bwd(2, 3, &probs, &labels, eps, 1.0, &mut d);
        let p00 = 1.0f64.exp() / (1.0f64.exp() + 2.0f64.exp() + 3.0f64.exp());
        assert!((d[0] - (p00 - (0.9 + 0.1 / 3.0)) / 2.0).abs() < 1e-15, "{}", d[0]);
        let f = |z: &[f64]| {
            let mut p = [0.0; 6];
            softmax_xent_fwd(2, 3, z, &labels, eps, &mut p)
        };
        assert_rel_close("smoothed softmax_xent_bwd", &d, &numeric_grad(f, &logits, 1e-5), 1e-7);
    }

    #[test]
    fn zero_smoothing_is_the_plain_cross_entropy_bit_for_bit() {
        let mut rng = Rng::new(71);
        let (n, k) = (7, 13);
        let logits: Vec<f32> = rng.vec(n * k).iter().map(|v| (5.0 * v) as f32).collect();
        let labels: Vec<u32> = (0..n as u32).map(|i| (i * 5) % k as u32).collect();
        let mut probs = vec![0.0f32; n * k];
        let loss = softmax_xent_fwd(n, k, &logits, &labels, 0.0, &mut probs);
        // The unsmoothed formulas, written out: sum of (max + ln Z) - z_y in f64, p - onehot.
        let mut total = 0.0f64;
        for i in 0..n {
            let z = &logits[i * k..(i + 1) * k];
            let max = z.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
            let partition: f32 = z.iter().map(|&v| (v - max).exp()).sum();
            total += ((max + partition.ln()) - z[labels[i] as usize]) as f64;
        }
        assert_eq!(loss.to_bits(), ((total / n as f64) as f32).to_bits());
        let mut d = vec![0.0f32; n * k];
        softmax_xent_bwd(n, k, &probs, &labels, 0.0, 0.3, &mut d);
        for (idx, &g) in d.iter().enumerate() {
            let onehot = if idx % k == labels[idx / k] as usize { 1.0 } else { 0.0 };
            assert_eq!(g.to_bits(), ((0.3 / n as f32) * (probs[idx] - onehot)).to_bits(), "element {idx}");
        }
    }

    #[test]
    fn topk_ranks_the_label_with_first_index_tie_breaking() {
        let logits = [
            1.0f32, 3.0, 3.0, 0.0, // ranks: 1 -> 0, 2 -> 1, 0 -> 2, 3 -> 3
            5.0, 0.0, 0.0, 0.0, // 0 -> 0, 1 -> 1, 2 -> 2, 3 -> 3
        ];
        assert_eq!(topk_correct(2, 4, 1, &logits, &[1, 0]), 2);
        assert_eq!(topk_correct(2, 4, 1, &logits, &[2, 3]), 0);
        assert_eq!(topk_correct(2, 4, 2, &logits, &[2, 1]), 2);
        assert_eq!(topk_correct(2, 4, 3, &logits, &[0, 3]), 1);
        assert_eq!(topk_correct(2, 4, 4, &logits, &[3, 3]), 2);
        let labels = [1, 2];
        assert_eq!(topk_correct(2, 4, 1, &logits, &labels), top1_correct(2, 4, &logits, &labels));
    }

    #[test]
    fn top1_counts_first_maximum() {
        let logits = [
            1.0f32, 3.0, 3.0, // tie between 1 and 2: class 1 wins
            5.0, 0.0, 0.0, // class 0
            0.0, 0.0, 0.0, // all tied: class 0
        ];
        assert_eq!(top1_correct(3, 3, &logits, &[1, 0, 0]), 3);
        assert_eq!(top1_correct(3, 3, &logits, &[2, 1, 2]), 0);
    }
}
