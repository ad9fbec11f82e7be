//! Every path against a naive 7-loop convolution (and its adjoints), the fast paths against the
//! general one, f32, determinism across thread counts, and length checks.

use super::*;
use crate::backend::geom::Conv2dGeom;

/// Which path the dispatcher should take for a case (asserted, so coverage cannot drift).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Path {
    General,
    Depthwise,
    Pointwise,
}

#[allow(clippy::too_many_arguments)]
fn geom(
    n: usize,
    c_in: usize,
    c_out: usize,
    (h, w): (usize, usize),
    (kh, kw): (usize, usize),
    stride: usize,
    pad: usize,
    dilation: usize,
    groups: usize,
) -> Conv2dGeom {
    Conv2dGeom { n, c_in, h, w, c_out, kh, kw, stride, pad, dilation, groups }
}

fn path_of(g: &Conv2dGeom) -> Path {
    if g.is_depthwise() {
        Path::Depthwise
    } else if g.is_pointwise() {
        Path::Pointwise
    } else {
        Path::General
    }
}

/// Awkward geometries for every path: N 1/2, C 3/5/16, 7x7 and non-square 7x9 / 9x7, kernels
/// 1/3/5 (and non-square), stride 1/2/3, dilation 1/2, padding 0/1/2/4, groups 1, C and between.
fn cases() -> Vec<(Path, Conv2dGeom)> {
    use Path::*;
    let list = [
        // General, dense.
        (General, geom(1, 3, 5, (7, 7), (3, 3), 1, 1, 1, 1)),
        (General, geom(2, 3, 16, (7, 9), (3, 3), 2, 1, 1, 1)),
        (General, geom(2, 5, 3, (7, 9), (5, 5), 1, 2, 2, 1)),
        (General, geom(1, 5, 5, (9, 7), (5, 5), 2, 4, 2, 1)),
        (General, geom(2, 3, 4, (7, 7), (3, 3), 2, 0, 1, 1)),
        (General, geom(2, 16, 5, (7, 9), (3, 3), 1, 2, 2, 1)),
        (General, geom(2, 3, 5, (7, 9), (1, 1), 2, 1, 1, 1)), // 1x1 with padding
        (General, geom(2, 3, 5, (7, 9), (1, 3), 1, 1, 1, 1)), // non-square kernel
        (General, geom(1, 3, 2, (4, 5), (5, 5), 1, 4, 2, 1)), // span 9 > image, all padding edges
        // General, grouped (intermediate group counts, channel multiplier).
        (General, geom(2, 4, 6, (7, 9), (3, 3), 1, 1, 1, 2)),
        (General, geom(1, 16, 8, (7, 9), (3, 3), 2, 1, 2, 4)),
        (General, geom(2, 3, 6, (7, 7), (5, 5), 1, 2, 1, 3)),
        (General, geom(2, 4, 4, (7, 7), (1, 1), 1, 0, 1, 2)),
        // Depthwise: DARTS's sep/dil convs (3x3, 5x5, dilation 1/2, stride 1/2) and edge cases.
        (Depthwise, geom(2, 3, 3, (7, 7), (3, 3), 1, 1, 1, 3)),
        (Depthwise, geom(1, 5, 5, (7, 9), (3, 3), 2, 1, 1, 5)),
        (Depthwise, geom(2, 16, 16, (7, 9), (5, 5), 1, 2, 1, 16)),
        (Depthwise, geom(2, 5, 5, (9, 7), (5, 5), 2, 4, 2, 5)),
        (Depthwise, geom(1, 3, 3, (7, 9), (3, 3), 1, 2, 2, 3)),
        (Depthwise, geom(2, 3, 3, (7, 9), (3, 3), 2, 2, 2, 3)),
        (Depthwise, geom(2, 5, 5, (7, 9), (3, 3), 2, 0, 1, 5)),
        (Depthwise, geom(1, 3, 3, (7, 7), (1, 5), 1, 1, 1, 3)),
        (Depthwise, geom(2, 3, 3, (7, 9), (5, 5), 1, 0, 2, 3)), // out_h == 0: empty output
        // Depthwise rows wide enough for the register-blocked interior (several LANES chunks
        // plus a tail), and stride-1 padding beyond the kernel span (the scatter fallback).
        (Depthwise, geom(2, 3, 3, (5, 23), (3, 3), 1, 1, 1, 3)),
        (Depthwise, geom(2, 3, 3, (5, 45), (3, 3), 1, 1, 1, 3)),
        (Depthwise, geom(1, 3, 3, (5, 90), (5, 5), 2, 2, 1, 3)),
        (Depthwise, geom(1, 5, 5, (6, 37), (5, 5), 2, 2, 1, 5)),
        (Depthwise, geom(2, 3, 3, (7, 29), (5, 5), 1, 4, 2, 3)),
        (Depthwise, geom(2, 4, 4, (9, 20), (3, 3), 2, 1, 2, 4)),
        (Depthwise, geom(1, 3, 3, (7, 9), (3, 3), 1, 4, 1, 3)),
        (Depthwise, geom(2, 3, 3, (11, 13), (3, 3), 3, 1, 1, 3)),
        (Depthwise, geom(1, 4, 4, (10, 35), (5, 5), 3, 2, 2, 4)),
        // Pointwise: stride 1, 2 (FactorizedReduce) and 3.
        (Pointwise, geom(2, 3, 5, (7, 9), (1, 1), 1, 0, 1, 1)),
        (Pointwise, geom(1, 16, 16, (7, 9), (1, 1), 2, 0, 1, 1)),
        (Pointwise, geom(2, 5, 3, (7, 7), (1, 1), 2, 0, 1, 1)),
        (Pointwise, geom(2, 5, 3, (9, 7), (1, 1), 3, 0, 1, 1)),
    ];
    for (path, g) in &list {
        assert_eq!(path_of(g), *path, "case {g:?}");
    }
    list.to_vec()
}

/// Deterministic values in [-1, 1) from a 64-bit LCG.
fn rand_vec(len: usize, seed: u64) -> Vec<f64> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
        })
        .collect()
}

/// The input coordinate output `o` reads through kernel offset `k`, if inside `0..len`.
fn tap(o: usize, k: usize, g: &Conv2dGeom, len: usize) -> Option<usize> {
    let i = (o * g.stride + k * g.dilation) as i64 - g.pad as i64;
    (0..len as i64).contains(&i).then_some(i as usize)
}

/// Visits every `(x index, w index, y index)` triple of the convolution sum, by the 7 loops
/// over (n, o, oh, ow, c, kh, kw).
fn for_each_term(g: &Conv2dGeom, mut f: impl FnMut(usize, usize, usize)) {
    let (cg, og) = (g.cin_per_group(), g.cout_per_group());
    let (out_h, out_w) = (g.out_h(), g.out_w());
    for n in 0..g.n {
        for o in 0..g.c_out {
            let grp = o / og;
            for oh in 0..out_h {
                for ow in 0..out_w {
                    let yi = ((n * g.c_out + o) * out_h + oh) * out_w + ow;
                    for c in 0..cg {
                        let ci = grp * cg + c;
                        for kh in 0..g.kh {
                            for kw in 0..g.kw {
                                let (Some(ih), Some(iw)) = (tap(oh, kh, g, g.h), tap(ow, kw, g, g.w)) else {
                                    continue;
                                };
                                let xi = ((n * g.c_in + ci) * g.h + ih) * g.w + iw;
                                let wi = ((o * cg + c) * g.kh + kh) * g.kw + kw;
                                f(xi, wi, yi);
                            }
                        }
                    }
                }
            }
        }
    }
}

fn naive_fwd(g: &Conv2dGeom, x: &[f64], w: &[f64]) -> Vec<f64> {
    let mut y = vec![0.0; g.y_len()];
    for_each_term(g, |xi, wi, yi| y[yi] += w[wi] * x[xi]);
    y
}

fn naive_bwd_data(g: &Conv2dGeom, dy: &[f64], w: &[f64]) -> Vec<f64> {
    let mut dx = vec![0.0; g.x_len()];
    for_each_term(g, |xi, wi, yi| dx[xi] += w[wi] * dy[yi]);
    dx
}

fn naive_bwd_weight(g: &Conv2dGeom, x: &[f64], dy: &[f64]) -> Vec<f64> {
    let mut dw = vec![0.0; g.w_len()];
    for_each_term(g, |xi, wi, yi| dw[wi] += dy[yi] * x[xi]);
    dw
}

/// Max |got - want| relative to max |want| (or absolute when `want` is all zero).
fn assert_close<T: Real>(got: &[T], want: &[f64], tol: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(f64::MIN_POSITIVE);
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let err = (g.to_f64() - w).abs();
        assert!(err <= tol * scale.max(1e-300) || err == 0.0, "{what}: [{i}] {g} vs {w} (scale {scale})");
    }
}

type Op<T> = fn(&Conv2dGeom, &[T], &[T], &mut [T]);

/// Runs the three ops of one implementation on fixed data.
fn run_ops<T: Real>(
    g: &Conv2dGeom,
    (fwd, bwd_data, bwd_weight): (Op<T>, Op<T>, Op<T>),
    seed: u64,
) -> (Vec<T>, Vec<T>, Vec<T>) {
    let cast = |v: Vec<f64>| v.into_iter().map(T::from_f64).collect::<Vec<T>>();
    let x = cast(rand_vec(g.x_len(), seed));
    let w = cast(rand_vec(g.w_len(), seed + 1));
    let dy = cast(rand_vec(g.y_len(), seed + 2));
    // Outputs start as garbage to check they are overwritten.
    let mut y = vec![T::from_f64(7.0); g.y_len()];
    let mut dx = vec![T::from_f64(7.0); g.x_len()];
    let mut dw = vec![T::from_f64(7.0); g.w_len()];
    fwd(g, &x, &w, &mut y);
    bwd_data(g, &dy, &w, &mut dx);
    bwd_weight(g, &x, &dy, &mut dw);
    (y, dx, dw)
}

fn dispatched<T: Real>() -> (Op<T>, Op<T>, Op<T>) {
    (conv2d_fwd::<T>, conv2d_bwd_data::<T>, conv2d_bwd_weight::<T>)
}

fn general<T: Real>() -> (Op<T>, Op<T>, Op<T>) {
    (conv2d_fwd_general::<T>, conv2d_bwd_data_general::<T>, conv2d_bwd_weight_general::<T>)
}

fn naive(g: &Conv2dGeom, seed: u64) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let x = rand_vec(g.x_len(), seed);
    let w = rand_vec(g.w_len(), seed + 1);
    let dy = rand_vec(g.y_len(), seed + 2);
    (naive_fwd(g, &x, &w), naive_bwd_data(g, &dy, &w), naive_bwd_weight(g, &x, &dy))
}

fn check_against_naive(path: Path, ops: (Op<f64>, Op<f64>, Op<f64>), label: &str) {
    for (i, (p, g)) in cases().into_iter().enumerate() {
        if p != path {
            continue;
        }
        let (y, dx, dw) = run_ops(&g, ops, 100 + i as u64);
        let (y0, dx0, dw0) = naive(&g, 100 + i as u64);
        assert_close(&y, &y0, 1e-12, &format!("{label} fwd {g:?}"));
        assert_close(&dx, &dx0, 1e-12, &format!("{label} bwd_data {g:?}"));
        assert_close(&dw, &dw0, 1e-12, &format!("{label} bwd_weight {g:?}"));
    }
}

#[test]
fn general_path_matches_naive() {
    check_against_naive(Path::General, dispatched(), "general");
}

#[test]
fn depthwise_path_matches_naive() {
    check_against_naive(Path::Depthwise, dispatched(), "depthwise");
}

#[test]
fn pointwise_path_matches_naive() {
    check_against_naive(Path::Pointwise, dispatched(), "pointwise");
}

#[test]
fn general_entry_points_match_naive_on_every_geometry() {
    for path in [Path::General, Path::Depthwise, Path::Pointwise] {
        check_against_naive(path, general(), "forced general");
    }
}

#[test]
fn fast_paths_match_general_path() {
    for (i, (p, g)) in cases().into_iter().enumerate() {
        if p == Path::General {
            continue;
        }
        let (y, dx, dw) = run_ops::<f64>(&g, dispatched(), 7 + i as u64);
        let (y0, dx0, dw0) = run_ops::<f64>(&g, general(), 7 + i as u64);
        assert_close(&y, &y0, 1e-12, &format!("{p:?} fwd {g:?}"));
        assert_close(&dx, &dx0, 1e-12, &format!("{p:?} bwd_data {g:?}"));
        assert_close(&dw, &dw0, 1e-12, &format!("{p:?} bwd_weight {g:?}"));
    }
}

/// <conv(x), dy> == <x, bwd_data(dy)> == <w, bwd_weight(x, dy)>: the three ops are one bilinear form.
#[test]
fn backward_ops_are_adjoints_of_forward() {
    for (i, (_, g)) in cases().into_iter().enumerate() {
        let x = rand_vec(g.x_len(), 900 + i as u64);
        let w = rand_vec(g.w_len(), 901 + i as u64);
        let dy = rand_vec(g.y_len(), 902 + i as u64);
        let (mut y, mut dx, mut dw) = (vec![0.0; g.y_len()], vec![0.0; g.x_len()], vec![0.0; g.w_len()]);
        conv2d_fwd(&g, &x, &w, &mut y);
        conv2d_bwd_data(&g, &dy, &w, &mut dx);
        conv2d_bwd_weight(&g, &x, &dy, &mut dw);
        let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(p, q)| p * q).sum::<f64>();
        let (a, b, c) = (dot(&y, &dy), dot(&x, &dx), dot(&w, &dw));
        let scale = a.abs().max(1.0);
        assert!((a - b).abs() < 1e-11 * scale && (a - c).abs() < 1e-11 * scale, "{g:?}: {a} {b} {c}");
    }
}

#[test]
fn f32_paths_match_naive() {
    for (i, (p, g)) in cases().into_iter().enumerate() {
        let (y0, dx0, dw0) = naive(&g, 300 + i as u64);
        for (label, ops) in [("dispatched", dispatched::<f32>()), ("general", general::<f32>())] {
            let (y, dx, dw) = run_ops::<f32>(&g, ops, 300 + i as u64);
            assert_close(&y, &y0, 1e-5, &format!("f32 {label} {p:?} fwd {g:?}"));
            assert_close(&dx, &dx0, 1e-5, &format!("f32 {label} {p:?} bwd_data {g:?}"));
            assert_close(&dw, &dw0, 1e-5, &format!("f32 {label} {p:?} bwd_weight {g:?}"));
        }
    }
}

/// Bitwise identical results on 1 and 4 threads (f32, batches big enough that the weight
/// gradient is reduced over several chunks, one of them short).
#[test]
fn results_are_independent_of_thread_count() {
    let geoms = [
        geom(37, 3, 8, (9, 11), (3, 3), 1, 1, 1, 1),
        geom(37, 4, 6, (9, 11), (3, 3), 2, 1, 1, 2),
        geom(37, 8, 8, (9, 11), (5, 5), 1, 4, 2, 8),
        geom(37, 8, 8, (9, 27), (5, 5), 1, 2, 1, 8),
        geom(37, 4, 4, (5, 45), (3, 3), 1, 1, 1, 4),
        geom(37, 8, 8, (9, 11), (3, 3), 2, 1, 1, 8),
        geom(37, 8, 6, (9, 11), (1, 1), 1, 0, 1, 1),
        geom(37, 8, 6, (9, 11), (1, 1), 2, 0, 1, 1),
    ];
    let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<u32>>();
    for g in geoms {
        let on = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            let (y, dx, dw) = pool.install(|| run_ops::<f32>(&g, dispatched(), 5));
            let (gy, gdx, gdw) = pool.install(|| run_ops::<f32>(&g, general(), 5));
            [y, dx, dw, gy, gdx, gdw].map(|v| bits(&v))
        };
        assert_eq!(on(1), on(4), "{g:?}");
    }
}

/// Empty batches and empty images (whose padded output is not empty) on every path.
#[test]
fn degenerate_geometries_match_naive() {
    let list = [
        geom(0, 3, 4, (7, 7), (3, 3), 1, 1, 1, 1),
        geom(0, 3, 3, (7, 7), (3, 3), 1, 1, 1, 3),
        geom(0, 3, 4, (7, 7), (1, 1), 1, 0, 1, 1),
        geom(1, 3, 4, (0, 3), (3, 3), 1, 2, 1, 1),
        geom(2, 3, 3, (0, 3), (3, 3), 1, 2, 1, 3),
        geom(2, 3, 3, (3, 0), (3, 3), 1, 2, 1, 3),
        geom(2, 3, 3, (1, 1), (5, 5), 2, 4, 2, 3),
    ];
    for (i, g) in list.into_iter().enumerate() {
        let (y0, dx0, dw0) = naive(&g, 500 + i as u64);
        for ops in [dispatched(), general()] {
            let (y, dx, dw) = run_ops::<f64>(&g, ops, 500 + i as u64);
            assert_close(&y, &y0, 1e-12, &format!("fwd {g:?}"));
            assert_close(&dx, &dx0, 1e-12, &format!("bwd_data {g:?}"));
            assert_close(&dw, &dw0, 1e-12, &format!("bwd_weight {g:?}"));
        }
    }
}

#[test]
fn taps_match_brute_force() {
    for (out_len, in_len) in [(7, 7), (4, 7), (1, 3), (0, 2), (9, 2), (3, 0)] {
        for (stride, pad, dil) in [(1, 0, 1), (1, 2, 1), (2, 1, 1), (2, 4, 2), (3, 0, 2), (1, 4, 2)] {
            for k in 0..5 {
                let t = Tap::new(out_len, in_len, k, stride, pad, dil);
                let want: Vec<usize> = (0..out_len)
                    .filter(|&o| {
                        let i = (o * stride + k * dil) as i64 - pad as i64;
                        (0..in_len as i64).contains(&i)
                    })
                    .collect();
                assert_eq!(t.outs.clone().collect::<Vec<_>>(), want);
                for o in t.outs.clone() {
                    assert_eq!(t.input(o), o * stride + k * dil - pad);
                }
            }
        }
    }
}

fn bad_lengths() -> (Conv2dGeom, Vec<f64>, Vec<f64>, Vec<f64>) {
    let g = geom(2, 3, 4, (7, 7), (3, 3), 1, 1, 1, 1);
    (g, vec![0.0; g.x_len()], vec![0.0; g.w_len()], vec![0.0; g.y_len()])
}

#[test]
#[should_panic(expected = "conv2d_fwd: x has 100 elements, geometry [n=2,c=3,h=7,w=7] needs 294")]
fn fwd_rejects_wrong_x_length() {
    let (g, _, w, mut y) = bad_lengths();
    conv2d_fwd(&g, &[0.0; 100], &w, &mut y);
}

#[test]
#[should_panic(expected = "conv2d_bwd_data: dy has 5 elements")]
fn bwd_data_rejects_wrong_dy_length() {
    let (g, mut dx, w, _) = bad_lengths();
    conv2d_bwd_data(&g, &[0.0; 5], &w, &mut dx);
}

#[test]
#[should_panic(
    expected = "conv2d_bwd_weight: dw has 3 elements, geometry [c_out=4,c_in/groups=3,kh=3,kw=3] needs 108"
)]
fn bwd_weight_rejects_wrong_dw_length() {
    let (g, x, _, dy) = bad_lengths();
    conv2d_bwd_weight(&g, &x, &dy, &mut [0.0; 3]);
}

#[test]
#[should_panic(expected = "conv2d_fwd_general: y has")]
fn general_rejects_wrong_y_length() {
    let (g, x, w, _) = bad_lengths();
    conv2d_fwd_general(&g, &x, &w, &mut [0.0; 1]);
}

#[test]
#[should_panic(expected = "conv2d_fwd: invalid geometry")]
fn rejects_groups_not_dividing_channels() {
    let g = geom(1, 3, 4, (7, 7), (3, 3), 1, 1, 1, 2);
    conv2d_fwd::<f64>(&g, &[], &[], &mut []);
}

// ---------------------------------------------------------------------------------------------
// Fused depthwise -> pointwise forward.

/// DARTS's sep/dil conv depthwise geometries (3x3 / 5x5, dilation 1 / 2, padding (k-1)/2*d,
/// stride 1 / 2) on odd and non-square sizes, with the pointwise's output channels.
fn dw_pw_cases() -> Vec<(Conv2dGeom, usize)> {
    let mut list = Vec::new();
    for (k, d) in [(3, 1), (5, 1), (3, 2), (5, 2)] {
        for stride in [1, 2] {
            for (n, c, c_out, hw) in
                [(2, 5, 3, (7, 9)), (1, 3, 16, (9, 7)), (3, 16, 16, (5, 5)), (1, 4, 6, (1, 3))]
            {
                list.push((geom(n, c, c, hw, (k, k), stride, (k - 1) / 2 * d, d, c), c_out));
            }
        }
    }
    list
}

/// The 1x1 geometry on the output of depthwise geometry `g`.
fn pw_geom(g: &Conv2dGeom, c_out: usize) -> Conv2dGeom {
    geom(g.n, g.c_out, c_out, (g.out_h(), g.out_w()), (1, 1), 1, 0, 1, 1)
}

/// The unfused composition: depthwise into a whole buffer, then the pointwise conv.
fn dw_then_pw<T: Real>(
    g: &Conv2dGeom,
    gp: &Conv2dGeom,
    x: &[T],
    dw: &[T],
    pw: &[T],
    pre: impl Fn(usize, T) -> T + Sync,
) -> Vec<T> {
    let mut d = vec![T::ZERO; g.y_len()];
    depthwise_fwd_pre(g, x, dw, &mut d, pre);
    let mut y = vec![T::ZERO; gp.y_len()];
    conv2d_fwd(gp, &d, pw, &mut y);
    y
}

fn assert_bitwise<T: Real>(got: &[T], want: &[T], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (a, b)) in got.iter().zip(want).enumerate() {
        assert!(a.to_f64().to_bits() == b.to_f64().to_bits(), "{what}: [{i}] {a} vs {b}");
    }
}

/// A pre-op applied to each input value of a channel.
type Pre<'a, T> = dyn Fn(usize, T) -> T + Sync + 'a;

/// The fused op against the composition (bitwise) for every band height and the public entry
/// point, and against the naive convolutions in f64, under the identity, ReLU and
/// normalise + ReLU pre-ops.
fn check_dw_pw<T: Real>(tol: f64) {
    for (case, (g, c_out)) in dw_pw_cases().into_iter().enumerate() {
        let gp = pw_geom(&g, c_out);
        let seed = 100 + case as u64;
        let cast = |v: Vec<f64>| v.into_iter().map(T::from_f64).collect::<Vec<T>>();
        let x = cast(rand_vec(g.x_len(), seed));
        let (dw, pw) = (cast(rand_vec(g.w_len(), seed + 1)), cast(rand_vec(gp.w_len(), seed + 2)));
        let mean: Vec<T> = (0..g.c_in).map(|c| T::from_f64(0.1 * c as f64 - 0.2)).collect();
        let rstd: Vec<T> = (0..g.c_in).map(|c| T::from_f64(1.5 - 0.1 * c as f64)).collect();
        let pres: [(&str, &Pre<'_, T>); 3] = [
            ("identity", &|_, v| v),
            ("relu", &|_, v| if v < T::ZERO { T::ZERO } else { v }),
            ("norm_relu", &|c, v| crate::fused::sepconv::cpu::norm_relu(v, mean[c], rstd[c])),
        ];
        for (name, pre) in pres {
            let what = format!("case {case} {g:?} -> c_out {c_out}, {name}");
            let want = dw_then_pw(&g, &gp, &x, &dw, &pw, pre);
            let mut y = vec![T::ZERO; gp.y_len()];
            dw_pw_fwd_pre(&g, &gp, &x, &dw, &pw, &mut y, pre);
            assert_bitwise(&y, &want, &what);
            for rows in 1..=g.out_h() {
                let mut y = vec![T::ZERO; gp.y_len()];
                dw_pw_fwd_bands(&g, &gp, &x, &dw, &pw, &mut y, &pre, rows, None);
                assert_bitwise(&y, &want, &format!("{what}, bands of {rows} rows"));
            }
            // Against the naive convolutions in f64 (on the same, possibly rounded, values).
            let x_pre: Vec<f64> =
                x.iter().enumerate().map(|(i, &v)| pre((i / (g.h * g.w)) % g.c_in, v).to_f64()).collect();
            let up = |v: &[T]| v.iter().map(|a| a.to_f64()).collect::<Vec<f64>>();
            let naive_y = naive_fwd(&gp, &naive_fwd(&g, &x_pre, &up(&dw)), &up(&pw));
            assert_close(&y, &naive_y, tol, &what);
        }
    }
}

#[test]
fn dw_pw_matches_composition_f64() {
    check_dw_pw::<f64>(1e-12);
}

#[test]
fn dw_pw_matches_composition_f32() {
    check_dw_pw::<f32>(1e-5);
}

#[test]
fn dw_pw_is_independent_of_thread_count_and_band_height() {
    // Several bands per image (n = 1 is cut for parallelism) and a DARTS-sized image.
    for (g, c_out) in [
        (geom(1, 16, 16, (32, 32), (5, 5), 1, 4, 2, 16), 16),
        (geom(4, 32, 32, (16, 16), (3, 3), 2, 1, 1, 32), 32),
    ] {
        let gp = pw_geom(&g, c_out);
        let (x, dw, pw) = (rand_vec(g.x_len(), 7), rand_vec(g.w_len(), 8), rand_vec(gp.w_len(), 9));
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            let mut y = vec![0.0; gp.y_len()];
            pool.install(|| dw_pw_fwd_pre(&g, &gp, &x, &dw, &pw, &mut y, |_, v: f64| v.max(0.0)));
            y
        };
        let want = dw_then_pw(&g, &gp, &x, &dw, &pw, |_, v: f64| v.max(0.0));
        assert_bitwise(&run(1), &want, "1 thread");
        assert_bitwise(&run(3), &want, "3 threads");
        let mut y = vec![0.0; gp.y_len()];
        dw_pw_fwd_bands(&g, &gp, &x, &dw, &pw, &mut y, &|_, v: f64| v.max(0.0), 5, None);
        assert_bitwise(&y, &want, "bands of 5 rows");
    }
}

/// The band statistics: y bitwise as without them, and each band's (mean, M2) per output channel
/// as computed from y, including a last partial band and single-image batches cut into bands.
#[test]
fn dw_pw_band_statistics_match_the_output() {
    for (g, c_out) in [
        (geom(1, 16, 16, (32, 32), (5, 5), 1, 4, 2, 16), 16),
        (geom(3, 5, 5, (9, 9), (3, 3), 2, 1, 1, 5), 5),
        (geom(2, 4, 4, (13, 13), (3, 3), 1, 1, 1, 4), 4),
    ] {
        let gp = pw_geom(&g, c_out);
        let (x, dw, pw) = (rand_vec(g.x_len(), 17), rand_vec(g.w_len(), 18), rand_vec(gp.w_len(), 19));
        let relu = |_, v: f64| v.max(0.0);
        let mut want_y = vec![0.0; gp.y_len()];
        dw_pw_fwd_pre(&g, &gp, &x, &dw, &pw, &mut want_y, relu);
        let (ptile, bands) = dw_pw_bands::<f64>(&g, &gp);
        let (n, ohw) = (g.n, g.out_h() * g.out_w());
        let nb = n * bands;
        let mut stats = vec![f64::NAN; 2 * c_out * nb];
        let mut y = vec![0.0; gp.y_len()];
        dw_pw_fwd_pre_stats(&g, &gp, &x, &dw, &pw, &mut y, relu, Some(&mut stats));
        assert_bitwise(&y, &want_y, &format!("{g:?}: output with statistics"));
        assert!(bands > 1 || n > 1, "{g:?}: a single band");
        for img in 0..n {
            for t in 0..bands {
                for co in 0..c_out {
                    let plane = &y[(img * c_out + co) * ohw..][..ohw];
                    let px = &plane[t * ptile..ohw.min((t + 1) * ptile)];
                    let mean = px.iter().sum::<f64>() / px.len() as f64;
                    let m2: f64 = px.iter().map(|v| (v - mean).powi(2)).sum();
                    let b = img * bands + t;
                    let (gm, gq) = (stats[co * nb + b], stats[(c_out + co) * nb + b]);
                    assert!(
                        (gm - mean).abs() <= 1e-12 * (1.0 + mean.abs()),
                        "{g:?} band {b} ch {co}: mean {gm} vs {mean}"
                    );
                    assert!((gq - m2).abs() <= 1e-12 * (1.0 + m2), "{g:?} band {b} ch {co}: M2 {gq} vs {m2}");
                }
            }
        }
    }
}

#[test]
fn dw_pw_band_rows_fit_the_cache_budget() {
    // [64, 16, 32, 32] f32: a whole image (16 + 16 channels x 32 rows x 32 x 4 B = 128 KiB).
    assert_eq!(dw_pw_band_rows(64, 16, 16, 32, 32, 4), 32);
    // A wide image is cut to fit, and a single image into bands for parallelism.
    assert_eq!(dw_pw_band_rows(64, 64, 64, 128, 128, 8), 2);
    assert_eq!(dw_pw_band_rows(1, 16, 16, 32, 32, 4), 4);
    assert_eq!(dw_pw_band_rows(2, 4, 4, 3, 3, 4), 3);
}

#[test]
#[should_panic(expected = "dw_pw_fwd_pre: pointwise geometry")]
fn dw_pw_rejects_mismatched_pointwise() {
    let g = geom(1, 3, 3, (5, 5), (3, 3), 2, 1, 1, 3);
    let gp = geom(1, 3, 4, (5, 5), (1, 1), 1, 0, 1, 1); // on the input size, not the output's
    let mut y = vec![0.0; gp.y_len()];
    dw_pw_fwd_pre(&g, &gp, &[0.0; 75], &[0.0; 27], &[0.0; 12], &mut y, |_, v| v);
}
