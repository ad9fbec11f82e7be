//! Shared helpers for the integration tests: random tensors, finite-difference gradient checks,
//! and naive reference implementations written independently of the backend.
#![allow(dead_code)]

use darts::autograd::Var;
use darts::rng::Rng;
use darts::{DType, Tensor};

/// A tensor of standard normals in f64.
pub fn randn(rng: &mut Rng, shape: &[usize]) -> Tensor {
    let n = shape.iter().product();
    Tensor::from_f64(shape, &rng.normals(n), DType::F64)
}

/// Asserts every input's analytic gradient of `f` matches central differences (step 1e-6, f64)
/// within `tol` (norm-wise relative); returns the worst error.
pub fn gradcheck(name: &str, inputs: &[Tensor], tol: f64, f: impl Fn(&[Var]) -> Var) -> f64 {
    let errs = darts::autograd::check::finite_diff_errors(inputs, 1e-6, f);
    for (i, e) in errs.iter().enumerate() {
        assert!(*e < tol, "{name}: input {i} {:?}: relative error {e:e} >= {tol:e}", inputs[i].shape());
    }
    errs.into_iter().fold(0.0, f64::max)
}

/// Direct convolution: seven nested loops, zero padding, groups, dilation.
#[allow(clippy::too_many_arguments)]
pub fn naive_conv2d(
    x: &[f64],
    [n, c_in, h, w]: [usize; 4],
    wt: &[f64],
    [c_out, cpg, kh, kw]: [usize; 4],
    stride: usize,
    pad: usize,
    dil: usize,
    groups: usize,
) -> (Vec<f64>, [usize; 4]) {
    let oh = (h + 2 * pad - dil * (kh - 1) - 1) / stride + 1;
    let ow = (w + 2 * pad - dil * (kw - 1) - 1) / stride + 1;
    let opg = c_out / groups;
    let mut y = vec![0.0; n * c_out * oh * ow];
    for b in 0..n {
        for co in 0..c_out {
            let grp = co / opg;
            for i in 0..oh {
                for j in 0..ow {
                    let mut s = 0.0;
                    for ci in 0..cpg {
                        let cin = grp * cpg + ci;
                        for p in 0..kh {
                            for q in 0..kw {
                                let yy = (i * stride + p * dil) as isize - pad as isize;
                                let xx = (j * stride + q * dil) as isize - pad as isize;
                                if yy < 0 || xx < 0 || yy >= h as isize || xx >= w as isize {
                                    continue;
                                }
                                s += x[((b * c_in + cin) * h + yy as usize) * w + xx as usize]
                                    * wt[((co * cpg + ci) * kh + p) * kw + q];
                            }
                        }
                    }
                    y[((b * c_out + co) * oh + i) * ow + j] = s;
                }
            }
        }
    }
    let _ = c_in;
    (y, [n, c_out, oh, ow])
}

/// Direct pooling (max, or average over in-bounds taps), k x k window.
pub fn naive_pool(
    x: &[f64],
    [n, c, h, w]: [usize; 4],
    k: usize,
    stride: usize,
    pad: usize,
    max: bool,
) -> Vec<f64> {
    let oh = (h + 2 * pad - k) / stride + 1;
    let ow = (w + 2 * pad - k) / stride + 1;
    let mut y = Vec::with_capacity(n * c * oh * ow);
    for plane in 0..n * c {
        for i in 0..oh {
            for j in 0..ow {
                let (mut best, mut sum, mut count) = (f64::NEG_INFINITY, 0.0, 0.0);
                for p in 0..k {
                    for q in 0..k {
                        let yy = (i * stride + p) as isize - pad as isize;
                        let xx = (j * stride + q) as isize - pad as isize;
                        if yy < 0 || xx < 0 || yy >= h as isize || xx >= w as isize {
                            continue;
                        }
                        let v = x[(plane * h + yy as usize) * w + xx as usize];
                        best = best.max(v);
                        sum += v;
                        count += 1.0;
                    }
                }
                y.push(if max { best } else { sum / count });
            }
        }
    }
    y
}

/// Training-mode batch norm by the textbook formula (two passes, biased variance).
pub fn naive_bn_train(
    x: &[f64],
    [n, c, h, w]: [usize; 4],
    gamma: &[f64],
    beta: &[f64],
    eps: f64,
) -> Vec<f64> {
    let hw = h * w;
    let mut y = vec![0.0; x.len()];
    for ch in 0..c {
        let vals: Vec<f64> = (0..n)
            .flat_map(|b| (0..hw).map(move |p| (b, p)))
            .map(|(b, p)| x[(b * c + ch) * hw + p])
            .collect();
        let m = vals.iter().sum::<f64>() / vals.len() as f64;
        let v = vals.iter().map(|a| (a - m).powi(2)).sum::<f64>() / vals.len() as f64;
        for b in 0..n {
            for p in 0..hw {
                let i = (b * c + ch) * hw + p;
                y[i] = (x[i] - m) / (v + eps).sqrt() * gamma[ch] + beta[ch];
            }
        }
    }
    y
}
