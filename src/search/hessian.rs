//! The dominant eigenvalue of the validation loss' Hessian with respect to α (RobustDARTS'
//! collapse indicator), on one fixed validation batch.
//!
//! ```text
//! g(α)     = ∇α L_val(w, α)                 one forward + backward (BN in training mode, as the
//!                                             architect's validation loss; on a copy of the
//!                                             store, so the running statistics do not move)
//! H v      ≈ (g(α + ε v̂) − g(α − ε v̂)) / (2ε) · ‖v‖ + l2 · v,   v̂ = v / ‖v‖
//!            central finite differences (not double backward: the tape has no second-order
//!            mode); l2 is the architecture weight decay, which RobustDARTS adds as l2 · I
//! λ_max    power iteration on H (v ← H v / ‖H v‖, λ = v · H v) from a seeded random start,
//!          until |Δλ| ≤ tol · |λ|; if that finds a negative eigenvalue λ₁ of largest magnitude,
//!          again on H − λ₁ I, whose largest eigenvalue is λ_max − λ₁ ≥ 0
//! ```
//!
//! [`explicit_hessian`] builds H column by column from the same products (symmetrised) and
//! [`symmetric_eigenvalues`] diagonalises it (cyclic Jacobi): the reference the power iteration
//! is tested against.

use crate::autograd::{Groups, ParamId};
use crate::model::Network;
use crate::nn::Store;
use crate::rng::Rng;
use crate::tensor::Tensor;

/// Settings of the Hessian-vector products and the power iteration.
#[derive(Clone, Copy, Debug)]
pub struct HessianOpts {
    /// Finite-difference step ε along the unit direction (about 1e-5 in f64, 1e-2 in f32).
    pub eps: f64,
    /// Added to the diagonal: the architecture weight decay (RobustDARTS), or 0.
    pub l2: f64,
    /// Most power iterations (per phase).
    pub max_iters: usize,
    /// Relative change of λ at which the iteration stops.
    pub tol: f64,
    /// Seed of the start vector.
    pub seed: u64,
}

impl Default for HessianOpts {
    fn default() -> Self {
        HessianOpts { eps: 1e-2, l2: 0.0, max_iters: 100, tol: 1e-4, seed: 0 }
    }
}

/// The result of [`dominant_eigenvalue`].
#[derive(Clone, Copy, Debug)]
pub struct Eigen {
    /// The largest eigenvalue of H.
    pub lambda_max: f64,
    /// Hessian-vector products computed.
    pub products: usize,
}

/// The α-Hessian of one network on one batch, as Hessian-vector products.
pub struct AlphaHessian<'a> {
    net: &'a Network,
    store: &'a Store,
    x: &'a Tensor,
    labels: &'a [u32],
    opts: HessianOpts,
    /// The α tensors' indices in the store and their values, flattened in that order.
    ids: Vec<usize>,
    alpha: Vec<f64>,
    /// Products computed so far.
    pub products: usize,
}

impl<'a> AlphaHessian<'a> {
    /// The Hessian of `net`'s loss on (`x`, `labels`) at the α in `store` (neither is changed).
    pub fn new(
        net: &'a Network,
        store: &'a Store,
        x: &'a Tensor,
        labels: &'a [u32],
        opts: HessianOpts,
    ) -> Self {
        let ids = vec![net.alphas_normal.0, net.alphas_reduce.0];
        let alpha = ids.iter().flat_map(|&i| store.params[i].value.to_f64_vec()).collect();
        AlphaHessian { net, store, x, labels, opts, ids, alpha, products: 0 }
    }

    /// Number of α entries (the Hessian's order).
    pub fn dim(&self) -> usize {
        self.alpha.len()
    }

    /// g(α) at the given α values.
    fn grad_at(&self, alpha: &[f64]) -> Vec<f64> {
        let mut store = self.store.clone();
        let mut at = 0;
        for &i in &self.ids {
            let v = &store.params[i].value;
            let (shape, dtype, device) = (v.shape().to_vec(), v.dtype(), v.device());
            let n: usize = shape.iter().product();
            store.params[i].value = Tensor::from_f64(&shape, &alpha[at..at + n], dtype).to_device(&device);
            at += n;
        }
        let (tape, _, loss) = self.net.loss(&mut store, self.x, self.labels, true);
        let g = tape.backward(&loss, Groups::ARCH);
        self.ids.iter().flat_map(|&i| g.get(ParamId(i)).expect("an α gradient").to_f64_vec()).collect()
    }

    /// H v (two forward-backward passes).
    pub fn product(&mut self, v: &[f64]) -> Vec<f64> {
        assert_eq!(
            v.len(),
            self.dim(),
            "AlphaHessian::product: a vector of {} for {} α",
            v.len(),
            self.dim()
        );
        self.products += 1;
        let norm = dot(v, v).sqrt();
        if norm == 0.0 {
            return vec![0.0; v.len()];
        }
        let e = self.opts.eps;
        let shifted =
            |s: f64| -> Vec<f64> { self.alpha.iter().zip(v).map(|(a, vi)| a + s * e * vi / norm).collect() };
        let (plus, minus) = (self.grad_at(&shifted(1.0)), self.grad_at(&shifted(-1.0)));
        plus.iter()
            .zip(&minus)
            .zip(v)
            .map(|((p, m), vi)| (p - m) / (2.0 * e) * norm + self.opts.l2 * vi)
            .collect()
    }
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Power iteration on `v ↦ op(v) − shift · v`: the eigenvalue of largest magnitude of the shifted
/// operator (Rayleigh quotient) and the products used.
fn power(op: &mut dyn FnMut(&[f64]) -> Vec<f64>, n: usize, shift: f64, opts: &HessianOpts) -> (f64, usize) {
    let mut rng = Rng::new(opts.seed);
    let mut v = rng.normals(n);
    let norm = dot(&v, &v).sqrt();
    v.iter_mut().for_each(|x| *x /= norm);
    let (mut lambda, mut used) = (0.0, 0);
    for it in 0..opts.max_iters.max(1) {
        let mut hv = op(&v);
        used += 1;
        hv.iter_mut().zip(&v).for_each(|(h, x)| *h -= shift * x);
        let next = dot(&v, &hv);
        let norm = dot(&hv, &hv).sqrt();
        if norm == 0.0 {
            return (0.0, used);
        }
        v = hv.into_iter().map(|x| x / norm).collect();
        let done = it > 0 && (next - lambda).abs() <= opts.tol * next.abs();
        lambda = next;
        if done {
            break;
        }
    }
    (lambda, used)
}

/// λ_max of the α-Hessian by power iteration (see the module documentation).
pub fn dominant_eigenvalue(h: &mut AlphaHessian) -> Eigen {
    let (n, opts) = (h.dim(), h.opts);
    let (l1, p1) = power(&mut |v| h.product(v), n, 0.0, &opts);
    if l1 >= 0.0 {
        return Eigen { lambda_max: l1, products: p1 };
    }
    // The largest-magnitude eigenvalue is negative: shift so the largest becomes the dominant.
    let (mu, p2) = power(&mut |v| h.product(v), n, l1, &opts);
    Eigen { lambda_max: mu + l1, products: p1 + p2 }
}

/// H built column by column (H e_i) and symmetrised, (H + Hᵀ) / 2, row-major `n × n`.
pub fn explicit_hessian(h: &mut AlphaHessian) -> Vec<Vec<f64>> {
    let n = h.dim();
    let cols: Vec<Vec<f64>> = (0..n)
        .map(|i| {
            let mut e = vec![0.0; n];
            e[i] = 1.0;
            h.product(&e)
        })
        .collect();
    (0..n).map(|r| (0..n).map(|c| 0.5 * (cols[c][r] + cols[r][c])).collect()).collect()
}

/// Eigenvalues of a symmetric matrix, ascending, by the cyclic Jacobi method (rotations until
/// the off-diagonal mass is below 1e-22 of the total, at most 100 sweeps).
pub fn symmetric_eigenvalues(m: &[Vec<f64>]) -> Vec<f64> {
    let n = m.len();
    let mut a: Vec<Vec<f64>> = m.to_vec();
    for row in &a {
        assert_eq!(row.len(), n, "symmetric_eigenvalues: a {n} x {} matrix", row.len());
    }
    let total: f64 = a.iter().flatten().map(|x| x * x).sum();
    for _ in 0..100 {
        let off: f64 = (0..n)
            .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| a[i][j] * a[i][j])
            .sum();
        if off <= 1e-22 * total {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                if a[p][q] == 0.0 {
                    continue;
                }
                // The rotation that zeroes a[p][q] (Golub & Van Loan, Algorithm 8.4.1).
                let theta = (a[q][q] - a[p][p]) / (2.0 * a[p][q]);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                // A ← Jᵀ A J: columns p and q, then rows p and q (p < q).
                for row in a.iter_mut() {
                    let (x, y) = (row[p], row[q]);
                    row[p] = c * x - s * y;
                    row[q] = s * x + c * y;
                }
                let (upper, lower) = a.split_at_mut(q);
                for (x, y) in upper[p].iter_mut().zip(lower[0].iter_mut()) {
                    let (xp, yq) = (*x, *y);
                    *x = c * xp - s * yq;
                    *y = s * xp + c * yq;
                }
            }
        }
    }
    let mut eig: Vec<f64> = (0..n).map(|i| a[i][i]).collect();
    eig.sort_by(f64::total_cmp);
    eig
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jacobi_finds_the_eigenvalues_of_a_known_matrix() {
        // [[2, 1], [1, 2]]: 1 and 3; a diagonal matrix: its diagonal.
        let e = symmetric_eigenvalues(&[vec![2.0, 1.0], vec![1.0, 2.0]]);
        assert!((e[0] - 1.0).abs() < 1e-14 && (e[1] - 3.0).abs() < 1e-14, "{e:?}");
        let e = symmetric_eigenvalues(&[vec![-4.0, 0.0, 0.0], vec![0.0, 7.0, 0.0], vec![0.0, 0.0, 0.5]]);
        assert_eq!(e, [-4.0, 0.5, 7.0]);
        // Q diag(-5, 1, 2) Qᵀ for a rotation Q: the same spectrum.
        let (c, s) = (0.6f64, 0.8f64);
        let q = [[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]];
        let d = [-5.0, 1.0, 2.0];
        let m: Vec<Vec<f64>> = (0..3)
            .map(|i| (0..3).map(|j| (0..3).map(|k| q[i][k] * d[k] * q[j][k]).sum()).collect())
            .collect();
        let e = symmetric_eigenvalues(&m);
        for (got, want) in e.iter().zip([-5.0, 1.0, 2.0]) {
            assert!((got - want).abs() < 1e-12, "{e:?}");
        }
    }

    #[test]
    fn power_iteration_finds_the_largest_eigenvalue_even_when_a_negative_one_dominates() {
        // diag(-9, 1, 4): power iteration alone finds -9; the shifted phase finds 4.
        let d = [-9.0, 1.0, 4.0];
        let opts = HessianOpts { tol: 1e-13, max_iters: 2000, ..Default::default() };
        let mut op = |v: &[f64]| v.iter().zip(d).map(|(x, di)| x * di).collect::<Vec<_>>();
        let (l1, _) = power(&mut op, 3, 0.0, &opts);
        assert!((l1 + 9.0).abs() < 1e-9, "{l1}");
        let (mu, _) = power(&mut op, 3, l1, &opts);
        assert!((mu + l1 - 4.0).abs() < 1e-9, "{}", mu + l1);
    }
}
