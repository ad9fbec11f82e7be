//! Forward of conv2d, pools and batch norm against direct implementations written here,
//! independent of the backend's im2col/GEMM and fast paths.

mod common;

use common::{naive_bn_train, naive_conv2d, naive_pool, randn};
use darts::autograd::check::rel_err;
use darts::ops::{self, ConvParams};
use darts::rng::Rng;
use darts::{DType, Tensor};

#[test]
fn conv2d_matches_direct_loops_for_darts_variants() {
    let mut rng = Rng::new(21);
    // (c_in, c_out, k, stride, pad, dilation, groups, h, w)
    let cases = [
        (3, 48, 3, 1, 1, 1, 1, 9, 9), // stem
        (5, 7, 1, 1, 0, 1, 1, 7, 7),  // pointwise
        (6, 3, 1, 2, 0, 1, 1, 7, 8),  // FactorizedReduce half
        (5, 5, 3, 1, 1, 1, 5, 7, 7),  // sep 3x3
        (5, 5, 5, 2, 2, 1, 5, 9, 7),  // sep 5x5 stride 2
        (4, 4, 3, 1, 2, 2, 4, 7, 7),  // dil 3x3
        (4, 4, 5, 2, 4, 2, 4, 11, 9), // dil 5x5 stride 2
        (4, 6, 3, 2, 1, 1, 2, 7, 7),  // grouped
    ];
    for (ci, co, k, s, p, d, g, h, w) in cases {
        for n in [1, 2] {
            let x = randn(&mut rng, &[n, ci, h, w]);
            let wt = randn(&mut rng, &[co, ci / g, k, k]);
            let y = ops::conv::conv2d(&x, &wt, ConvParams { stride: s, pad: p, dilation: d, groups: g });
            let (want, shape) = naive_conv2d(
                &x.to_f64_vec(),
                [n, ci, h, w],
                &wt.to_f64_vec(),
                [co, ci / g, k, k],
                s,
                p,
                d,
                g,
            );
            assert_eq!(y.shape(), &shape);
            let e = rel_err(&y.to_f64_vec(), &want);
            assert!(e < 1e-12, "conv ci={ci} co={co} k={k} s={s} p={p} d={d} g={g} n={n}: {e:e}");
            // f32 agrees to f32 precision.
            let y32 = ops::conv::conv2d(
                &x.to_dtype(DType::F32),
                &wt.to_dtype(DType::F32),
                ConvParams { stride: s, pad: p, dilation: d, groups: g },
            );
            assert!(rel_err(&y32.to_f64_vec(), &want) < 1e-5);
        }
    }
}

#[test]
fn pools_match_direct_loops_and_exclude_padding() {
    let mut rng = Rng::new(22);
    for (h, w) in [(7, 7), (5, 6), (1, 1), (32, 32)] {
        for s in [1, 2] {
            let x = randn(&mut rng, &[2, 3, h, w]);
            let mx = ops::pool::max_pool(&x, 3, s, 1);
            let av = ops::pool::avg_pool(&x, 3, s, 1);
            assert_eq!(mx.to_f64_vec(), naive_pool(&x.to_f64_vec(), [2, 3, h, w], 3, s, 1, true));
            let e = rel_err(&av.to_f64_vec(), &naive_pool(&x.to_f64_vec(), [2, 3, h, w], 3, s, 1, false));
            assert!(e < 1e-14, "avg_pool {h}x{w} s{s}: {e:e}");
        }
    }
    // On an all-ones input, excluding padding from the divisor gives exactly 1 everywhere.
    let ones = Tensor::full(&[1, 1, 4, 4], 1.0, DType::F64);
    assert!(ops::pool::avg_pool(&ones, 3, 1, 1).to_f64_vec().iter().all(|&v| v == 1.0));
}

#[test]
fn batch_norm_train_and_eval_match_formula() {
    let mut rng = Rng::new(23);
    let x = randn(&mut rng, &[3, 4, 5, 5]);
    let gamma = randn(&mut rng, &[4]);
    let beta = randn(&mut rng, &[4]);
    let (y, saved) = ops::norm::batch_norm_train(&x, Some(&gamma), Some(&beta), 1e-5);
    let want = naive_bn_train(&x.to_f64_vec(), [3, 4, 5, 5], &gamma.to_f64_vec(), &beta.to_f64_vec(), 1e-5);
    assert!(rel_err(&y.to_f64_vec(), &want) < 1e-12);

    // Running update: momentum 0.1 toward the batch mean and the unbiased batch variance.
    let mut rm = Tensor::zeros(&[4], DType::F64);
    let mut rv = Tensor::full(&[4], 1.0, DType::F64);
    ops::norm::bn_update_running(x.shape(), &saved, 1e-5, 0.1, &mut rm, &mut rv);
    let xs = x.to_f64_vec();
    for c in 0..4 {
        let vals: Vec<f64> = (0..3)
            .flat_map(|b| (0..25).map(move |p| (b, p)))
            .map(|(b, p)| xs[(b * 4 + c) * 25 + p])
            .collect();
        let m = vals.iter().sum::<f64>() / 75.0;
        let unbiased = vals.iter().map(|v| (v - m).powi(2)).sum::<f64>() / 74.0;
        assert!((rm.to_f64_vec()[c] - 0.1 * m).abs() < 1e-12);
        assert!((rv.to_f64_vec()[c] - (0.9 + 0.1 * unbiased)).abs() < 1e-12);
    }

    // Eval mode: (x - running_mean) / sqrt(running_var + eps) * gamma + beta.
    let y_eval = ops::norm::batch_norm_eval(&x, Some(&gamma), Some(&beta), &rm, &rv, 1e-5);
    let (rmv, rvv, g, b) = (rm.to_f64_vec(), rv.to_f64_vec(), gamma.to_f64_vec(), beta.to_f64_vec());
    let want: Vec<f64> = xs
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let c = (i / 25) % 4;
            (v - rmv[c]) / (rvv[c] + 1e-5).sqrt() * g[c] + b[c]
        })
        .collect();
    assert!(rel_err(&y_eval.to_f64_vec(), &want) < 1e-12);
}
