//! Softmax cross-entropy over a batch of `n` rows of `k` logits:
//! `loss = (1/n) sum_i (logsumexp(z_i) - z_i[label_i])` with
//! `logsumexp(z) = max z + ln sum_j exp(z_j - max z)` (stable for large logits), and its
//! gradient `dz_i = dloss * (softmax(z_i) - onehot(label_i)) / n`; plus top-1 accuracy.

use super::real::Real;

fn check(op: &str, name: &str, got: usize, want: usize) {
    assert!(got == want, "{op}: {name} has {got} elements, expected {want}");
}

fn check_labels(op: &str, k: usize, labels: &[u32]) {
    for (i, &l) in labels.iter().enumerate() {
        assert!((l as usize) < k, "{op}: label {l} of row {i} is out of range for {k} classes");
    }
}

/// Mean cross-entropy of `logits [n, k]` against `labels [n]`; writes `probs [n, k]`
/// (the softmax of each row) for [`softmax_xent_bwd`]. Panics if a label is `>= k`.
/// The per-row losses are summed in f64, in row order.
pub fn softmax_xent_fwd<T: Real>(n: usize, k: usize, logits: &[T], labels: &[u32], probs: &mut [T]) -> T {
    let op = "softmax_xent_fwd";
    check(op, "logits", logits.len(), n * k);
    check(op, "labels", labels.len(), n);
    check(op, "probs", probs.len(), n * k);
    check_labels(op, k, labels);
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
        let lse = max + partition.ln();
        total += (lse - z[labels[i] as usize]).to_f64();
    }
    T::from_f64(total / n.max(1) as f64)
}

/// `dlogits = dloss * (probs - onehot(labels)) / n`, from the `probs` written by
/// [`softmax_xent_fwd`].
pub fn softmax_xent_bwd<T: Real>(
    n: usize,
    k: usize,
    probs: &[T],
    labels: &[u32],
    dloss: T,
    dlogits: &mut [T],
) {
    let op = "softmax_xent_bwd";
    check(op, "probs", probs.len(), n * k);
    check(op, "labels", labels.len(), n);
    check(op, "dlogits", dlogits.len(), n * k);
    check_labels(op, k, labels);
    let coef = dloss / T::from_usize(n.max(1));
    for i in 0..n {
        let label = labels[i] as usize;
        for j in 0..k {
            let onehot = if j == label { T::ONE } else { T::ZERO };
            dlogits[i * k + j] = coef * (probs[i * k + j] - onehot);
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
        let loss = softmax_xent_fwd(n, k, &logits, &labels, &mut probs);
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
        softmax_xent_bwd(n, k, &probs, &labels, dloss, &mut d);
        let f = |z: &[f64]| {
            let mut p = vec![0.0; n * k];
            dloss * softmax_xent_fwd(n, k, z, &labels, &mut p)
        };
        assert_rel_close("softmax_xent_bwd", &d, &numeric_grad(f, &logits, 1e-5), 1e-7);
    }

    #[test]
    fn stable_with_large_logits() {
        // Row 0: the label holds the huge logit; row 1: it is 1000 below the winner.
        let logits = [1000.0f32, 0.0, -1000.0, 0.0, 1000.0, 0.0];
        let mut probs = [0.0f32; 6];
        let loss = softmax_xent_fwd(2, 3, &logits, &[0, 0], &mut probs);
        assert!(loss.is_finite());
        // Row losses: ~0 and ~1000 (ln(e^1000 + 2) - 0 - ... = 1000 + tiny).
        assert!((loss - 500.0).abs() < 1e-3, "{loss}");
        assert!(probs.iter().all(|p| p.is_finite()));
        assert_eq!(probs[0], 1.0);
        let mut d = [0.0f32; 6];
        softmax_xent_bwd(2, 3, &probs, &[0, 0], 1.0, &mut d);
        assert!(d.iter().all(|v| v.is_finite()));
        assert_eq!(d[3], -0.5);
        assert_eq!(d[4], 0.5);
    }

    #[test]
    #[should_panic(expected = "softmax_xent_fwd: label 3 of row 1 is out of range for 3 classes")]
    fn out_of_range_label_panics() {
        let mut p = [0.0f64; 6];
        softmax_xent_fwd(2, 3, &[0.0; 6], &[0, 3], &mut p);
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
