//! k x k max and average pooling with stride and zero padding on NCHW tensors:
//! `y[n, c, oi, oj] = max / mean of x[n, c, oi*s - p + di, oj*s - p + dj]` over the in-bounds
//! taps `0 <= di, dj < k`. Padding never takes part: max pooling ignores it and average pooling
//! divides by the number of in-bounds taps (PyTorch's `count_include_pad=False`).

use super::par::for_each_chunk_mut;
use super::real::Real;
use crate::backend::geom::Pool2dGeom;
use std::ops::Range;

fn check(op: &str, name: &str, got: usize, want: usize) {
    assert!(got == want, "{op}: {name} has {got} elements, geometry needs {want}");
}

/// The in-bounds input rows (or columns) of output row `o`: `[o*s - p, o*s - p + k)`
/// clipped to `[0, len)`.
#[inline]
fn taps(o: usize, g: &Pool2dGeom, len: usize) -> Range<usize> {
    // Computed as `o*s + (0..k) - p` with the subtraction done last, so nothing underflows.
    let start = (o * g.stride).max(g.pad) - g.pad;
    let end = (o * g.stride + g.k).min(len + g.pad).max(g.pad) - g.pad;
    start..end.max(start)
}

/// `a` is NaN (the only value not equal to itself).
#[inline]
fn is_nan<T: Real>(a: T) -> bool {
    a.partial_cmp(&a).is_none()
}

/// The in-bounds taps of every output column (the same for every row and plane).
fn col_taps(g: &Pool2dGeom) -> Vec<Range<usize>> {
    (0..g.out_w()).map(|oj| taps(oj, g, g.w)).collect()
}

/// Index within the `w`-wide plane of the maximum over `rows x cols`: the first maximum in
/// row-major scan order wins (a later value must be strictly greater), except that a NaN wins
/// over any number (as in PyTorch, NaN propagates). `None` only for an empty window, which a
/// valid geometry (`pad < k`) never has.
#[inline]
fn argmax_in<T: Real>(plane: &[T], w: usize, rows: Range<usize>, cols: &Range<usize>) -> Option<usize> {
    if rows.is_empty() || cols.is_empty() {
        return None;
    }
    if rows.len() == 3 && cols.len() == 3 {
        if let Some(i) = argmax_3x3(plane, w, rows.start, cols.start) {
            return Some(i);
        }
    }
    let mut best = rows.start * w + cols.start;
    let mut b = plane[best];
    for i in rows {
        let base = i * w + cols.start;
        for (d, &v) in plane[base..i * w + cols.end].iter().enumerate() {
            if v > b || (is_nan(v) && !is_nan(b)) {
                b = v;
                best = base + d;
            }
        }
    }
    Some(best)
}

/// [`argmax_in`] of a full 3x3 window at `(i0, j0)`: the DARTS pools' interior. A strict `>`
/// scan in row-major order keeps the first maximum; a window holding a NaN takes the general
/// scan (where a NaN wins), which this one checks for with one comparison per tap.
#[inline(always)]
fn argmax_3x3<T: Real>(plane: &[T], w: usize, i0: usize, j0: usize) -> Option<usize> {
    let base = i0 * w + j0;
    let win = &plane[base..base + 2 * w + 3];
    let offs = [0, 1, 2, w, w + 1, w + 2, 2 * w, 2 * w + 1, 2 * w + 2];
    let mut best = 0;
    let mut b = win[0];
    let mut nan = false;
    for &o in &offs {
        let v = win[o];
        nan |= is_nan(v);
        let take = v > b;
        b = if take { v } else { b };
        best = if take { o } else { best };
    }
    (!nan).then_some(base + best)
}

/// Max pooling forward. An all-padding window (impossible when `pad < k`) gives -inf.
pub fn max_pool_fwd<T: Real>(g: &Pool2dGeom, x: &[T], y: &mut [T]) {
    check("max_pool_fwd", "x", x.len(), g.x_len());
    check("max_pool_fwd", "y", y.len(), g.y_len());
    let (oh, ow, hw) = (g.out_h(), g.out_w(), g.h * g.w);
    let cols = col_taps(g);
    // One task per (n, c) plane.
    for_each_chunk_mut(y, oh * ow, |off, y_plane| {
        let x_plane = &x[off / (oh * ow) * hw..][..hw];
        for (oi, y_row) in y_plane.chunks_exact_mut(ow).enumerate() {
            let rows = taps(oi, g, g.h);
            for (yo, c) in y_row.iter_mut().zip(&cols) {
                *yo = argmax_in(x_plane, g.w, rows.clone(), c).map_or(T::NEG_INFINITY, |idx| x_plane[idx]);
            }
        }
    });
}

/// Max pooling backward: each `dy` is routed to its window's argmax, recomputed from `x` with
/// the same tie rule as [`max_pool_fwd`]; overlapping windows add up.
pub fn max_pool_bwd<T: Real>(g: &Pool2dGeom, x: &[T], dy: &[T], dx: &mut [T]) {
    check("max_pool_bwd", "x", x.len(), g.x_len());
    check("max_pool_bwd", "dy", dy.len(), g.y_len());
    check("max_pool_bwd", "dx", dx.len(), g.x_len());
    let (oh, ow, hw) = (g.out_h(), g.out_w(), g.h * g.w);
    let cols = col_taps(g);
    for_each_chunk_mut(dx, hw, |off, dx_plane| {
        let plane = off / hw;
        let x_plane = &x[off..off + hw];
        let dy_plane = &dy[plane * oh * ow..][..oh * ow];
        dx_plane.fill(T::ZERO);
        for (oi, dy_row) in dy_plane.chunks_exact(ow).enumerate() {
            let rows = taps(oi, g, g.h);
            for (&d, c) in dy_row.iter().zip(&cols) {
                if let Some(idx) = argmax_in(x_plane, g.w, rows.clone(), c) {
                    dx_plane[idx] += d;
                }
            }
        }
    });
}

/// Average pooling forward, dividing by the number of in-bounds taps.
pub fn avg_pool_fwd<T: Real>(g: &Pool2dGeom, x: &[T], y: &mut [T]) {
    check("avg_pool_fwd", "x", x.len(), g.x_len());
    check("avg_pool_fwd", "y", y.len(), g.y_len());
    let (oh, ow, hw) = (g.out_h(), g.out_w(), g.h * g.w);
    let cols = col_taps(g);
    for_each_chunk_mut(y, oh * ow, |off, y_plane| {
        let x_plane = &x[off / (oh * ow) * hw..][..hw];
        for (oi, y_row) in y_plane.chunks_exact_mut(ow).enumerate() {
            let rows = taps(oi, g, g.h);
            for (yo, c) in y_row.iter_mut().zip(&cols) {
                let count = rows.len() * c.len();
                let mut total = T::ZERO;
                for i in rows.clone() {
                    for &v in &x_plane[i * g.w + c.start..i * g.w + c.end] {
                        total += v;
                    }
                }
                *yo = total / T::from_usize(count.max(1));
            }
        }
    });
}

/// The outputs whose windows contain input index `i` (rows or columns): `o` with
/// `o*s - p <= i < o*s - p + k`, within `[0, out)`.
fn covering(i: usize, g: &Pool2dGeom, out: usize) -> Range<usize> {
    let lo = (i + g.pad + 1).saturating_sub(g.k).div_ceil(g.stride);
    let hi = ((i + g.pad) / g.stride + 1).min(out);
    lo..hi.max(lo)
}

/// Average pooling backward: each `dy / count` is spread over its window's in-bounds taps.
/// Computed as a gather (each dx sums the shares of the windows covering it, in increasing
/// output order: the same additions, in the same order, as scattering window by window).
pub fn avg_pool_bwd<T: Real>(g: &Pool2dGeom, dy: &[T], dx: &mut [T]) {
    check("avg_pool_bwd", "dy", dy.len(), g.y_len());
    check("avg_pool_bwd", "dx", dx.len(), g.x_len());
    let (oh, ow, hw) = (g.out_h(), g.out_w(), g.h * g.w);
    let cols = col_taps(g);
    let counts: Vec<T> = (0..oh)
        .flat_map(|oi| {
            let r = taps(oi, g, g.h).len();
            cols.iter().map(move |c| T::from_usize((r * c.len()).max(1)))
        })
        .collect();
    let out_rows: Vec<Range<usize>> = (0..g.h).map(|i| covering(i, g, oh)).collect();
    let out_cols: Vec<Range<usize>> = (0..g.w).map(|j| covering(j, g, ow)).collect();
    for_each_chunk_mut(dx, hw, |off, dx_plane| {
        let dy_plane = &dy[off / hw * oh * ow..][..oh * ow];
        let share: Vec<T> = dy_plane.iter().zip(&counts).map(|(&d, &n)| d / n).collect();
        for (dx_row, orows) in dx_plane.chunks_exact_mut(g.w).zip(&out_rows) {
            for (dxo, ocols) in dx_row.iter_mut().zip(&out_cols) {
                let mut total = T::ZERO;
                for oi in orows.clone() {
                    for &v in &share[oi * ow + ocols.start..oi * ow + ocols.end] {
                        total += v;
                    }
                }
                *dxo = total;
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::cpu::testutil::{assert_rel_close, dot, numeric_grad, Rng};

    fn geom(h: usize, w: usize, stride: usize) -> Pool2dGeom {
        Pool2dGeom { n: 2, c: 3, h, w, k: 3, stride, pad: 1 }
    }

    /// Naive pooling with signed window arithmetic: (max, avg excluding padding).
    fn naive(g: &Pool2dGeom, x: &[f64]) -> (Vec<f64>, Vec<f64>) {
        let (oh, ow) = (g.out_h(), g.out_w());
        let mut ymax = vec![0.0; g.y_len()];
        let mut yavg = vec![0.0; g.y_len()];
        for p in 0..g.n * g.c {
            for oi in 0..oh {
                for oj in 0..ow {
                    let (mut m, mut s, mut cnt) = (f64::NEG_INFINITY, 0.0, 0);
                    for di in 0..g.k {
                        for dj in 0..g.k {
                            let i = (oi * g.stride + di) as isize - g.pad as isize;
                            let j = (oj * g.stride + dj) as isize - g.pad as isize;
                            if i >= 0 && j >= 0 && (i as usize) < g.h && (j as usize) < g.w {
                                let v = x[(p * g.h + i as usize) * g.w + j as usize];
                                m = m.max(v);
                                s += v;
                                cnt += 1;
                            }
                        }
                    }
                    ymax[(p * oh + oi) * ow + oj] = m;
                    yavg[(p * oh + oi) * ow + oj] = s / cnt as f64;
                }
            }
        }
        (ymax, yavg)
    }

    #[test]
    fn forward_matches_naive_and_backward_matches_finite_differences() {
        let mut rng = Rng::new(30);
        for (h, w) in [(7, 7), (5, 6)] {
            for stride in [1, 2] {
                let g = geom(h, w, stride);
                // Distinct, well-separated values so no finite-difference step flips an argmax.
                let x = rng.distinct(g.x_len());
                let (want_max, want_avg) = naive(&g, &x);
                let mut y = vec![f64::NAN; g.y_len()];
                max_pool_fwd(&g, &x, &mut y);
                assert_eq!(y, want_max, "max_pool_fwd {h}x{w} s{stride}");
                avg_pool_fwd(&g, &x, &mut y);
                assert_rel_close("avg_pool_fwd", &y, &want_avg, 1e-15);

                let r = rng.vec(g.y_len());
                let mut dx = vec![f64::NAN; g.x_len()];
                max_pool_bwd(&g, &x, &r, &mut dx);
                let loss = |x: &[f64]| {
                    let mut y = vec![0.0; g.y_len()];
                    max_pool_fwd(&g, x, &mut y);
                    dot(&r, &y)
                };
                assert_rel_close("max_pool_bwd", &dx, &numeric_grad(loss, &x, 1e-5), 1e-7);

                avg_pool_bwd(&g, &r, &mut dx);
                let loss = |x: &[f64]| {
                    let mut y = vec![0.0; g.y_len()];
                    avg_pool_fwd(&g, x, &mut y);
                    dot(&r, &y)
                };
                assert_rel_close("avg_pool_bwd", &dx, &numeric_grad(loss, &x, 1e-5), 1e-7);
            }
        }
    }

    #[test]
    fn avg_pool_divides_by_in_bounds_taps() {
        // All-ones input: every output is 1 exactly when divisors exclude padding; an all-ones
        // gradient shows the divisors themselves (1/4 corner, 1/6 edge, 1/9 interior).
        let g = Pool2dGeom { n: 1, c: 1, h: 4, w: 5, k: 3, stride: 1, pad: 1 };
        let mut y = vec![0.0; g.y_len()];
        avg_pool_fwd(&g, &vec![1.0; g.x_len()], &mut y);
        assert!(y.iter().all(|&v| v == 1.0));
        // Impulse gradients: dx of window (oi, oj) is 1/count on its taps.
        let (oh, ow) = (g.out_h(), g.out_w());
        let count_at = |oi: usize, oj: usize| {
            let mut dy = vec![0.0; oh * ow];
            dy[oi * ow + oj] = 1.0;
            let mut dx = vec![0.0; g.x_len()];
            avg_pool_bwd(&g, &dy, &mut dx);
            let nz: Vec<f64> = dx.into_iter().filter(|&v| v != 0.0).collect();
            assert!(nz.iter().all(|&v| v == nz[0]));
            assert_eq!(nz[0], 1.0 / nz.len() as f64);
            nz.len()
        };
        assert_eq!(count_at(0, 0), 4);
        assert_eq!(count_at(3, 4), 4);
        assert_eq!(count_at(0, 2), 6);
        assert_eq!(count_at(2, 0), 6);
        assert_eq!(count_at(1, 1), 9);
        assert_eq!(count_at(2, 3), 9);
        // Forward on a ramp: corner (0,0) averages x[0..2, 0..2].
        let x: Vec<f64> = (0..g.x_len()).map(|v| v as f64).collect();
        avg_pool_fwd(&g, &x, &mut y);
        assert_eq!(y[0], (0.0 + 1.0 + 5.0 + 6.0) / 4.0);
        assert_eq!(y[2], (1.0 + 2.0 + 3.0 + 6.0 + 7.0 + 8.0) / 6.0);
        assert_eq!(
            y[ow + 1],
            (0..3).flat_map(|i| (0..3).map(move |j| (i * 5 + j) as f64)).sum::<f64>() / 9.0
        );
    }

    #[test]
    fn max_pool_ties_go_to_the_first_maximum_and_padding_never_wins() {
        let g = Pool2dGeom { n: 1, c: 1, h: 3, w: 3, k: 3, stride: 1, pad: 1 };
        // All equal: every window's first in-bounds tap wins.
        let x = vec![2.0f64; 9];
        let mut y = vec![0.0; 9];
        max_pool_fwd(&g, &x, &mut y);
        assert!(y.iter().all(|&v| v == 2.0));
        let mut dx = vec![0.0; 9];
        max_pool_bwd(&g, &x, &[1.0; 9], &mut dx);
        // Window (oi, oj) starts at input (max(oi-1, 0), max(oj-1, 0)): input (0,0) is first for
        // the 4 windows with oi, oj <= 1, (0,1) for oi <= 1, oj = 2, (1,0) for oi = 2, oj <= 1,
        // and (1,1) for (2,2).
        assert_eq!(dx, vec![4.0, 2.0, 0.0, 2.0, 1.0, 0.0, 0.0, 0.0, 0.0]);

        // All negative: padding (implicitly 0) must not win.
        let x: Vec<f64> = (0..9).map(|v| -1.0 - v as f64).collect();
        max_pool_fwd(&g, &x, &mut y);
        assert_eq!(y[0], -1.0);
        assert_eq!(y[8], -5.0);

        // A tie between two later taps: the first in row-major order gets the gradient.
        let x = vec![0.0, 5.0, 0.0, 0.0, 0.0, 5.0, 0.0, 0.0, 0.0];
        let mut dy = vec![0.0; 9];
        dy[4] = 1.0; // the centre window sees the whole plane
        max_pool_bwd(&g, &x, &dy, &mut dx);
        assert_eq!(dx, vec![0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
    }

    #[test]
    fn max_pool_propagates_nan() {
        let g = Pool2dGeom { n: 1, c: 1, h: 1, w: 3, k: 3, stride: 1, pad: 1 };
        let mut y = vec![0.0f32; 3];
        max_pool_fwd(&g, &[1.0, f32::NAN, 3.0], &mut y);
        assert!(y.iter().all(|v| v.is_nan()));
    }

    #[test]
    #[should_panic(expected = "max_pool_fwd: x has 10 elements, geometry needs 98")]
    fn length_mismatch_names_the_op() {
        let g = Pool2dGeom { n: 2, c: 1, h: 7, w: 7, k: 3, stride: 1, pad: 1 };
        let mut y = vec![0.0f32; 98];
        max_pool_fwd(&g, &[0.0; 10], &mut y);
    }
}
