//! The fused mixed op on the host, generic over f32/f64: the same math as `kernels/mixed.cu`,
//! with per-channel sums in f64 in a fixed order (as the CPU batch norm), channels in parallel.
//!
//! Statistics live in one `[2 · K · c]` slice: `stats[j·c + ch]` is μ_j, `stats[(K + j)·c + ch]`
//! is rstd_j of candidate slot j (unused slots stay 0).

use super::gpu::K;
use super::Weighting;
use crate::backend::cpu::batchnorm::{channel_mean_var, channel_sum, per_channel};
use crate::backend::cpu::par::for_each_chunk_mut;
use crate::backend::cpu::Real;
use crate::backend::geom::BnGeom;

/// One edge's operands on the host.
pub struct Edge<'a, T> {
    /// Reduction geometry of the edge's output.
    pub g: BnGeom,
    /// The slot weights of α_row ([`slot_weights`]), one per slot.
    pub w: &'a [T],
    /// Pre-BN outputs of the BN-terminated candidates, by slot.
    pub z: [Option<&'a [T]>; K],
    /// The identity's slot and operand.
    pub skip: Option<(usize, &'a [T])>,
    /// μ and rstd of every slot (see the module docs).
    pub stats: &'a [T],
}

/// The K slot weights of one α row of `cols = row.len()` ≤ K columns: slot j ≥ K − cols takes
/// column j − (K − cols), w = softmax(row) or w_j = σ(α) = 1/(1 + e^{−α}) each; lower slots
/// weigh 0.
pub fn slot_weights<T: Real>(row: &[T], weighting: Weighting) -> Vec<T> {
    let cols = row.len();
    assert!((1..=K).contains(&cols), "mixed_edge: an α row of {cols} columns (1..={K})");
    let mut w = vec![T::ZERO; K];
    let cw = &mut w[K - cols..];
    match weighting {
        Weighting::Softmax => crate::backend::cpu::softmax::softmax_row(row, cw),
        Weighting::Sigmoid => {
            for (wj, &a) in cw.iter_mut().zip(row) {
                *wj = T::ONE / (T::ONE + (T::ZERO - a).exp());
            }
        }
    }
    w
}

/// Batch statistics of `z` (training): μ and rstd = 1/√(var_biased + eps) per channel, as the
/// CPU batch-norm forward computes them.
pub fn batch_stats<T: Real>(g: &BnGeom, z: &[T], eps: f64, mean: &mut [T], invstd: &mut [T]) {
    let stats = per_channel(g, |ci| channel_mean_var(g, z, ci));
    for (ci, (mu, v)) in stats.into_iter().enumerate() {
        mean[ci] = T::from_f64(mu);
        invstd[ci] = T::from_f64(1.0 / (v + eps).sqrt());
    }
}

/// Batch statistics (training) merged from per-tile partials of the operand (the layout of
/// [`super::TileStats`], in f64): Chan's formula over the tiles in order, channels in parallel;
/// μ and rstd = 1/√(var_biased + eps) as [`batch_stats`].
pub fn tile_stats<T: Real>(
    g: &BnGeom,
    partials: &[f64],
    ptile: usize,
    eps: f64,
    mean: &mut [T],
    invstd: &mut [T],
) {
    let tiles = g.hw.div_ceil(ptile);
    let nb = g.n * tiles;
    assert_eq!(partials.len(), 2 * g.c * nb, "tile_stats: partials for [{}, {}, {}]", g.n, g.c, g.hw);
    let stats = per_channel(g, |ci| {
        let (mut na, mut ma, mut qa) = (0.0f64, 0.0f64, 0.0f64);
        for b in 0..nb {
            let t = b % tiles;
            let nb_ = ptile.min(g.hw - t * ptile) as f64;
            let (mb, qb) = (partials[ci * nb + b], partials[(g.c + ci) * nb + b]);
            let n = na + nb_;
            let d = mb - ma;
            ma += d * nb_ / n;
            qa += qb + d * d * na * nb_ / n;
            na = n;
        }
        (ma, qa / na)
    });
    for (ci, (mu, v)) in stats.into_iter().enumerate() {
        mean[ci] = T::from_f64(mu);
        invstd[ci] = T::from_f64(1.0 / (v + eps).sqrt());
    }
}

/// Running statistics as the normalisation (eval): μ = running mean, rstd = 1/√(running var + eps).
pub fn running_stats<T: Real>(rm: &[T], rv: &[T], eps: f64, mean: &mut [T], invstd: &mut [T]) {
    mean.copy_from_slice(rm);
    for (s, &v) in invstd.iter_mut().zip(rv) {
        *s = T::from_f64(1.0 / (v.to_f64() + eps).sqrt());
    }
}

fn mean_rstd<T: Real>(e: &Edge<T>, j: usize, ci: usize) -> (T, T) {
    let c = e.g.c;
    (e.stats[j * c + ci], e.stats[(K + j) * c + ci])
}

/// y = acc + Σ_j w_j (z_j − μ_j) rstd_j + w_s x.
pub fn forward<T: Real>(e: &Edge<T>, acc: Option<&[T]>, y: &mut [T]) {
    let g = &e.g;
    for_each_chunk_mut(y, g.hw, |off, plane| {
        let ci = (off / g.hw) % g.c;
        let range = off..off + g.hw;
        match acc {
            Some(a) => plane.copy_from_slice(&a[range.clone()]),
            None => plane.fill(T::ZERO),
        }
        for j in 0..K {
            if let Some(z) = e.z[j] {
                let (mu, s) = mean_rstd(e, j, ci);
                let wj = e.w[j];
                for (yi, &zi) in plane.iter_mut().zip(&z[range.clone()]) {
                    *yi += wj * ((zi - mu) * s);
                }
            } else if let Some((_, x)) = e.skip.filter(|(slot, _)| *slot == j) {
                let wj = e.w[j];
                for (yi, &xi) in plane.iter_mut().zip(&x[range.clone()]) {
                    *yi += wj * xi;
                }
            }
        }
    });
}

/// Per-channel sums of the backward, in f64: row j of `[(K + 1) · c]` is Σ dy·x̂_j (BN slots) or
/// Σ dy·x (the identity), row K is Σ dy.
pub fn backward_sums<T: Real>(e: &Edge<T>, dy: &[T]) -> Vec<f64> {
    let g = &e.g;
    let per = per_channel(g, |ci| {
        let mut row = [0.0f64; K + 1];
        row[K] = channel_sum(g, ci, |i| dy[i].to_f64());
        for (j, r) in row.iter_mut().enumerate().take(K) {
            if let Some(z) = e.z[j] {
                let (mu, s) = mean_rstd(e, j, ci);
                *r = channel_sum(g, ci, |i| dy[i].to_f64() * ((z[i] - mu) * s).to_f64());
            } else if let Some((_, x)) = e.skip.filter(|(slot, _)| *slot == j) {
                *r = channel_sum(g, ci, |i| dy[i].to_f64() * x[i].to_f64());
            }
        }
        row
    });
    let mut sums = vec![0.0; (K + 1) * g.c];
    for (ci, row) in per.iter().enumerate() {
        for (j, v) in row.iter().enumerate() {
            sums[j * g.c + ci] = *v;
        }
    }
    sums
}

/// dz_j = w_j rstd_j (dy − Σdy/M − x̂_j Σdy·x̂_j/M) in training, w_j rstd_j dy in eval.
pub fn dz<T: Real>(e: &Edge<T>, j: usize, dy: &[T], sums: &[f64], training: bool, out: &mut [T]) {
    let g = &e.g;
    let z = e.z[j].expect("dz of a BN slot");
    let m = g.per_channel().max(1) as f64;
    for_each_chunk_mut(out, g.hw, |off, plane| {
        let ci = (off / g.hw) % g.c;
        let (mu, s) = mean_rstd(e, j, ci);
        let k = e.w[j] * s;
        let range = off..off + g.hw;
        if training {
            let mean_dy = T::from_f64(sums[K * g.c + ci] / m);
            let mean_dy_xhat = T::from_f64(sums[j * g.c + ci] / m);
            for ((o, &zi), &d) in plane.iter_mut().zip(&z[range.clone()]).zip(&dy[range]) {
                let xhat = (zi - mu) * s;
                *o = k * (d - mean_dy - xhat * mean_dy_xhat);
            }
        } else {
            for (o, &d) in plane.iter_mut().zip(&dy[range]) {
                *o = k * d;
            }
        }
    });
}

/// dα of the edge's row over its last `cols` slots (the α columns): with g_j = Σ_c sums[j] for
/// the BN slots and the identity, 0 for `none`, softmax: w ⊙ (g − Σ w g); sigmoid:
/// w ⊙ (1 − w) ⊙ g.
pub fn dalpha_row<T: Real>(e: &Edge<T>, sums: &[f64], weighting: Weighting, cols: usize) -> Vec<T> {
    let (gj, wg) = slot_grads(e, sums);
    let d = |(w, g): (&T, &f64)| {
        let w = w.to_f64();
        T::from_f64(match weighting {
            Weighting::Softmax => w * (g - wg),
            Weighting::Sigmoid => w * (1.0 - w) * g,
        })
    };
    e.w.iter().zip(&gj).skip(K - cols).map(d).collect()
}

/// g_j = ∂L/∂w_j per slot (0 for unused slots) and Σ_j w_j g_j, which is Σ dy·(the edge's output
/// without acc).
pub fn slot_grads<T: Real>(e: &Edge<T>, sums: &[f64]) -> (Vec<f64>, f64) {
    let c = e.g.c;
    let gj: Vec<f64> = (0..K)
        .map(|j| {
            let used = e.z[j].is_some() || e.skip.is_some_and(|(s, _)| s == j);
            if used {
                sums[j * c..(j + 1) * c].iter().sum()
            } else {
                0.0
            }
        })
        .collect();
    let wg = e.w.iter().zip(&gj).map(|(w, g)| w.to_f64() * g).sum();
    (gj, wg)
}
