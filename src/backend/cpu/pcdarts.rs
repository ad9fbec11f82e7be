//! PC-DARTS' partial-channel merge and per-node softmax (`kernels/pcdarts.cu` mirrors these).
//!
//! An edge on `x` `[n, c, h, w]` runs its mixed op on the first c/k channels only, giving `m`
//! `[n, c/k, h', w']`; the other channels bypass it (identity, or a 2x2 stride-2 max pool on a
//! reduction edge, h' = h/2). The merge reads them as their own tensor, the tail
//! x_t = x[:, c/k:] `[n, c − c/k, h, w]`, and gives dx_t likewise. With v = cat(m, bypass(x[:, c/k:])) and the channel shuffle of k
//! groups (output channel o = p·k + g reads channel q = g·(c/k) + p of v):
//!
//! ```text
//! y[:, o]  = acc[:, o] + s · v[:, q(o)]
//! dm[:, q] = s · dy[:, o(q)]                      q < c/k
//! dx[:, q] = s · dy[:, o(q)]                      q ≥ c/k, stride 1 (dx_t's channel q − c/k)
//!          = s · dy[:, o(q)] at each window's argmax, 0 elsewhere    (stride 2)
//! ds       = Σ dy ⊙ shuffle(v),   dacc = dy
//! ```
//!
//! The node softmax normalises β `[steps·(steps+3)/2]` over each node's incoming edges (node i
//! has the i + 2 edges from offset i·(i+3)/2): y = softmax per slice, dx = y ⊙ (dy − <dy, y>)
//! per slice.

use super::par::for_each_chunk_mut;
use super::real::Real;
use crate::backend::geom::{node_edges, PcGeom};

/// The bypass value of channel `q` (≥ c/k) at output pixel (i, j) of image `ni`: x itself, or
/// the 2x2 window's max (the first maximum in row-major order), with its flat index in the
/// tail `x` (`[n, c − c/k, h, w]`).
fn bypass<T: Real>(g: &PcGeom, x: &[T], ni: usize, q: usize, i: usize, j: usize) -> (T, usize) {
    let plane = (ni * g.xc() + q - g.cpk()) * g.h * g.w;
    if g.stride == 1 {
        let at = plane + i * g.w + j;
        return (x[at], at);
    }
    let mut best = plane + 2 * i * g.w + 2 * j;
    for (di, dj) in [(0, 1), (1, 0), (1, 1)] {
        let at = plane + (2 * i + di) * g.w + 2 * j + dj;
        if x[at] > x[best] {
            best = at;
        }
    }
    (x[best], best)
}

fn check_lens(op: &str, g: &PcGeom, m: usize, x: usize, y: usize) {
    g.check(op);
    assert!(
        m == g.m_len() && x == g.x_len() && y == g.y_len(),
        "{op}: m {m}, x {x}, y {y} elements; {g:?} needs {}, {}, {}",
        g.m_len(),
        g.x_len(),
        g.y_len()
    );
}

/// y = acc + s · shuffle_k(cat(m, bypass(x_t))) (`acc` absent: 0), x_t the tail `[n, c − c/k, h, w]`.
pub fn pc_merge_fwd<T: Real>(g: &PcGeom, m: &[T], x: &[T], acc: Option<&[T]>, s: T, y: &mut [T]) {
    check_lens("pc_merge", g, m.len(), x.len(), y.len());
    if let Some(a) = acc {
        assert_eq!(a.len(), y.len(), "pc_merge: acc has {} elements, y {}", a.len(), y.len());
    }
    let (cpk, ohw, ow) = (g.cpk(), g.oh() * g.ow(), g.ow());
    for_each_chunk_mut(y, g.c * ohw, |off, y_img| {
        let ni = off / (g.c * ohw);
        for o in 0..g.c {
            let q = g.source(o);
            for p in 0..ohw {
                let v =
                    if q < cpk { m[(ni * cpk + q) * ohw + p] } else { bypass(g, x, ni, q, p / ow, p % ow).0 };
                let sv = s * v;
                y_img[o * ohw + p] = match acc {
                    Some(a) => a[off + o * ohw + p] + sv,
                    None => sv,
                };
            }
        }
    });
}

/// The gradients of [`pc_merge_fwd`] asked for: `dm` (`[n, c/k, h', w']`), `dx` (the tail's,
/// every element written), and ds as the return value.
pub fn pc_merge_bwd<T: Real>(
    g: &PcGeom,
    m: Option<&[T]>,
    x: &[T],
    dy: &[T],
    s: T,
    mut dm: Option<&mut [T]>,
    mut dx: Option<&mut [T]>,
) -> T {
    check_lens("pc_merge_bwd", g, m.map_or(g.m_len(), <[T]>::len), x.len(), dy.len());
    let (cpk, ohw, ow) = (g.cpk(), g.oh() * g.ow(), g.ow());
    if let Some(d) = dx.as_deref_mut() {
        assert_eq!(d.len(), x.len(), "pc_merge_bwd: dx has {} elements, x {}", d.len(), x.len());
        d.fill(T::ZERO);
    }
    if let Some(d) = dm.as_deref() {
        assert_eq!(d.len(), g.m_len(), "pc_merge_bwd: dm has {} elements, m {}", d.len(), g.m_len());
    }
    let mut ds = T::ZERO;
    for ni in 0..g.n {
        for q in 0..g.c {
            let o = g.dest(q);
            for p in 0..ohw {
                let d = dy[(ni * g.c + o) * ohw + p];
                if q < cpk {
                    let at = (ni * cpk + q) * ohw + p;
                    if let Some(m) = m {
                        ds += d * m[at];
                    }
                    if let Some(dm) = dm.as_deref_mut() {
                        dm[at] = s * d;
                    }
                } else {
                    let (v, at) = bypass(g, x, ni, q, p / ow, p % ow);
                    ds += d * v;
                    if let Some(dx) = dx.as_deref_mut() {
                        dx[at] = s * d;
                    }
                }
            }
        }
    }
    ds
}

/// The (offset, length) of node i's slice: (i·(i+3)/2, i + 2).
fn node_slices(steps: usize) -> impl Iterator<Item = (usize, usize)> {
    (0..steps).map(|i| (i * (i + 3) / 2, i + 2))
}

/// y = softmax of each node's slice of β.
pub fn node_softmax<T: Real>(steps: usize, beta: &[T], y: &mut [T]) {
    let e = node_edges(steps);
    assert!(
        beta.len() == e && y.len() == e,
        "node_softmax: β {} and y {}, {steps} nodes need {e}",
        beta.len(),
        y.len()
    );
    for (off, len) in node_slices(steps) {
        super::softmax::softmax_row(&beta[off..off + len], &mut y[off..off + len]);
    }
}

/// dx = y ⊙ (dy − <dy, y>) per node slice, from the output `y`.
pub fn node_softmax_bwd<T: Real>(steps: usize, y: &[T], dy: &[T], dx: &mut [T]) {
    let e = node_edges(steps);
    assert!(
        y.len() == e && dy.len() == e && dx.len() == e,
        "node_softmax_bwd: y {}, dy {}, dx {}; {steps} nodes need {e}",
        y.len(),
        dy.len(),
        dx.len()
    );
    for (off, len) in node_slices(steps) {
        let r = off..off + len;
        let dot = y[r.clone()].iter().zip(&dy[r.clone()]).fold(T::ZERO, |a, (&yv, &d)| a + yv * d);
        for i in r {
            dx[i] = y[i] * (dy[i] - dot);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shuffle_source_and_dest_are_inverse() {
        let g = PcGeom { n: 1, c: 12, h: 2, w: 2, k: 4, stride: 1 };
        for o in 0..12 {
            assert_eq!(g.dest(g.source(o)), o);
        }
        // o = p·k + g reads g·(c/k) + p: output 1 (p 0, g 1) reads channel 3.
        assert_eq!(g.source(1), 3);
        assert_eq!(g.source(4), 1);
    }

    #[test]
    fn node_softmax_normalises_each_slice() {
        let beta: Vec<f64> = (0..14).map(|i| i as f64 * 0.1).collect();
        let mut y = vec![0.0; 14];
        node_softmax(4, &beta, &mut y);
        for (off, len) in node_slices(4) {
            let s: f64 = y[off..off + len].iter().sum();
            assert!((s - 1.0).abs() < 1e-15, "slice at {off}: sum {s}");
        }
        assert!((y[1] / y[0] - 0.1f64.exp()).abs() < 1e-12);
    }
}
