//! Timing of the fused depthwise -> pointwise forward (`dw_pw_fwd_pre`) against the composition
//! it replaces (`depthwise_fwd_pre` into a whole buffer, then `conv2d_fwd`) at the DARTS sep/dil
//! conv shapes, ReLU pre-op, batch 64. A report, not an assertion (it is ignored by default):
//!
//! ```text
//! cargo test --release --test dw_pw_timing -- --ignored --nocapture
//! ```

use std::hint::black_box;
use std::time::Instant;

use darts::backend::cpu::conv::{conv2d_fwd, depthwise_fwd_pre, dw_pw_fwd_pre};
use darts::backend::cpu::Real;
use darts::backend::geom::Conv2dGeom;

/// Deterministic values in [-1, 1).
fn data<T: Real>(len: usize, seed: u64) -> Vec<T> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            T::from_f64(((s >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0)
        })
        .collect()
}

fn relu<T: Real>(_: usize, v: T) -> T {
    if v < T::ZERO {
        T::ZERO
    } else {
        v
    }
}

/// Milliseconds of `reps` alternating runs of `a` and `b` (after two warm-up runs of each):
/// `(min, median)` for each. Alternating spreads any background load over both; the minimum is
/// the least disturbed run.
fn time_pair(reps: usize, mut a: impl FnMut(), mut b: impl FnMut()) -> [(f64, f64); 2] {
    for _ in 0..2 {
        a();
        b();
    }
    let mut t = [Vec::new(), Vec::new()];
    for _ in 0..reps {
        for (i, f) in [&mut a as &mut dyn FnMut(), &mut b].into_iter().enumerate() {
            let t0 = Instant::now();
            f();
            t[i].push(t0.elapsed().as_secs_f64() * 1e3);
        }
    }
    t.map(|mut v| {
        v.sort_by(|x, y| x.partial_cmp(y).unwrap());
        (v[0], v[v.len() / 2])
    })
}

fn time_shape<T: Real>(label: &str, [n, c, h, w]: [usize; 4], k: usize, d: usize, stride: usize) {
    let g = Conv2dGeom {
        n,
        c_in: c,
        h,
        w,
        c_out: c,
        kh: k,
        kw: k,
        stride,
        pad: (k - 1) / 2 * d,
        dilation: d,
        groups: c,
    };
    let gp = Conv2dGeom {
        n,
        c_in: c,
        h: g.out_h(),
        w: g.out_w(),
        c_out: c,
        kh: 1,
        kw: 1,
        stride: 1,
        pad: 0,
        dilation: 1,
        groups: 1,
    };
    let x: Vec<T> = data(g.x_len(), 1);
    let dw: Vec<T> = data(g.w_len(), 2);
    let pw: Vec<T> = data(gp.w_len(), 3);
    // The composition reuses its depthwise buffer, as the conv candidates' CPU path does.
    let mut dbuf = vec![T::ZERO; g.y_len()];
    let mut y_old = vec![T::ZERO; gp.y_len()];
    let mut y_new = vec![T::ZERO; gp.y_len()];
    let [(old, old_med), (new, new_med)] = time_pair(
        41,
        || {
            depthwise_fwd_pre(&g, black_box(&x), &dw, &mut dbuf, relu);
            conv2d_fwd(&gp, &dbuf, &pw, black_box(&mut y_old));
        },
        || dw_pw_fwd_pre(&g, &gp, black_box(&x), &dw, &pw, black_box(&mut y_new), relu),
    );
    let same = y_old.iter().zip(&y_new).all(|(a, b)| a.to_f64().to_bits() == b.to_f64().to_bits());
    println!(
        "{label:4} [{n},{c},{h},{w}] k{k} d{d} s{stride}: min: old {old:7.3} ms  fused {new:7.3} ms  \
         old/fused {:.2}x  (medians {old_med:7.3} / {new_med:7.3} ms)  bitwise {same}",
        old / new
    );
}

#[test]
#[ignore = "timing report; run with --ignored --nocapture"]
fn dw_pw_timing() {
    println!("rayon threads: {}", rayon::current_num_threads());
    for shape in [[64, 16, 32, 32], [64, 32, 16, 16], [64, 64, 8, 8]] {
        for (k, d) in [(3, 1), (5, 1), (3, 2), (5, 2)] {
            time_shape::<f32>("f32", shape, k, d, 1);
        }
    }
    for (k, d) in [(3, 1), (5, 2)] {
        time_shape::<f32>("f32", [64, 16, 32, 32], k, d, 2);
        time_shape::<f64>("f64", [64, 16, 32, 32], k, d, 1);
    }
}
