//! Finite-difference gradient checking, and a small demo network used by `darts check` and the
//! tests to exercise the tape end to end.

use super::functions::{self as F, BnState};
use super::{Groups, ParamId, Tape, Var};
use crate::ops::ConvParams;
use crate::rng::Rng;
use crate::tensor::{DType, Tensor};

/// ‖a − b‖ / ‖b‖: the norm-wise relative error of `a` against the reference `b`.
pub fn rel_err(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len(), "rel_err: lengths {} vs {}", a.len(), b.len());
    let diff: f64 = a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum::<f64>().sqrt();
    let norm: f64 = b.iter().map(|y| y * y).sum::<f64>().sqrt();
    if diff == 0.0 {
        0.0
    } else {
        diff / norm.max(1e-300)
    }
}

/// The analytic gradient of the scalar `f(inputs)` w.r.t. each input (a tape with every input
/// as a leaf), and the central-difference estimate with step `h`. Inputs should be f64.
/// Returns, per input, the norm-wise relative error of analytic against numeric.
pub fn finite_diff_errors(inputs: &[Tensor], h: f64, f: impl Fn(&[Var]) -> Var) -> Vec<f64> {
    let eval = |vals: &[Tensor]| -> f64 {
        let tape = Tape::new();
        let vars: Vec<Var> = vals.iter().map(|v| tape.constant(v.clone())).collect();
        f(&vars).value().item()
    };
    let tape = Tape::new();
    let vars: Vec<Var> =
        inputs.iter().enumerate().map(|(i, v)| tape.param(ParamId(i), Groups::INPUTS, v.clone())).collect();
    let loss = f(&vars);
    let grads = tape.backward(&loss, Groups::INPUTS);
    inputs
        .iter()
        .enumerate()
        .map(|(i, x)| {
            let analytic =
                grads.get(ParamId(i)).map(|g| g.to_f64_vec()).unwrap_or_else(|| vec![0.0; x.numel()]);
            let base = x.to_f64_vec();
            let numeric: Vec<f64> = (0..base.len())
                .map(|j| {
                    let at = |delta: f64| {
                        let mut v = base.clone();
                        v[j] += delta;
                        let mut vals = inputs.to_vec();
                        vals[i] = Tensor::from_f64(x.shape(), &v, x.dtype());
                        eval(&vals)
                    };
                    (at(h) - at(-h)) / (2.0 * h)
                })
                .collect();
            rel_err(&analytic, &numeric)
        })
        .collect()
}

/// Names of the demo network's inputs, in order.
pub const DEMO_INPUTS: [&str; 9] =
    ["x", "w_pre", "w_dw", "w_pw", "bn_gamma", "bn_beta", "linear_w", "linear_b", "alpha"];

/// Labels the demo network is scored against.
pub const DEMO_LABELS: [u32; 2] = [3, 1];

/// Random inputs for [`demo_network`] in `dtype`: x `[2, 3, 7, 7]`, a 1x1 preprocess conv to 4
/// channels, a depthwise 3x3, a pointwise 1x1, BN gamma/beta, a 4 -> 5 linear, alpha `[1, 3]`.
pub fn demo_inputs(seed: u64, dtype: DType) -> Vec<Tensor> {
    let mut rng = Rng::new(seed);
    let shapes: [&[usize]; 9] =
        [&[2, 3, 7, 7], &[4, 3, 1, 1], &[4, 1, 3, 3], &[4, 4, 1, 1], &[4], &[4], &[5, 4], &[5], &[1, 3]];
    shapes.iter().map(|s| Tensor::from_f64(s, &rng.normals(s.iter().product()), dtype)).collect()
}

/// ReLU -> 1x1 conv (p), then three branches mixed by softmax(alpha): ReLU -> depthwise 3x3 ->
/// pointwise 1x1 -> affine BN; max pool 3x3 of p; avg pool 3x3 of p -> BN; then global average
/// pool -> linear -> cross-entropy against [`DEMO_LABELS`]. BN in training mode.
pub fn demo_network(v: &[Var]) -> Var {
    let [x, w_pre, w_dw, w_pw, gamma, beta, lin_w, lin_b, alpha] = v else {
        panic!("demo_network: expected 9 inputs, got {}", v.len())
    };
    let (dtype, device) = (x.value().dtype(), x.value().device());
    let (mut bn_conv, mut bn_pool) = (BnState::new_on(4, dtype, &device), BnState::new_on(4, dtype, &device));
    let p = F::conv2d(&F::relu(x), w_pre, ConvParams::new(1, 0));
    let dw = F::conv2d(&F::relu(&p), w_dw, ConvParams::new(1, 1).groups(4));
    let pw = F::conv2d(&dw, w_pw, ConvParams::new(1, 0));
    let b1 = F::batch_norm(&pw, Some((gamma, beta)), &mut bn_conv, true);
    let b2 = F::max_pool(&p, 3, 1, 1);
    let b3 = F::batch_norm(&F::avg_pool(&p, 3, 1, 1), None, &mut bn_pool, true);
    let weights = F::row(&F::softmax(alpha), 0);
    let mixed = F::weighted_sum(&[b1, b2, b3], &weights);
    let logits = F::linear(&F::global_avg_pool(&mixed), lin_w, lin_b);
    F::cross_entropy(&logits, (&DEMO_LABELS).into())
}
