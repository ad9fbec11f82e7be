//! A small network through the tape, built with the same autograd API as the DARTS network,
//! in f64 (`darts::autograd::check::demo_network`): ReLU -> depthwise 3x3 -> pointwise 1x1 ->
//! BN, mixed with two pooling branches by softmax(alpha) weights -> global average pool ->
//! linear -> cross-entropy. Checked by finite differences for the input, every weight and the
//! alpha logits.

use darts::autograd::check::{demo_inputs, demo_network, finite_diff_errors, DEMO_INPUTS};
use darts::autograd::{Groups, ParamId, Tape, Var};
use darts::DType;

#[test]
fn composite_gradients_match_finite_differences() {
    let errs = finite_diff_errors(&demo_inputs(99, DType::F64), 1e-6, demo_network);
    assert_eq!(errs.len(), DEMO_INPUTS.len());
    for (name, e) in DEMO_INPUTS.iter().zip(&errs) {
        assert!(*e < 1e-6, "composite: d loss / d {name}: relative error {e:e}");
    }
}

/// Asking for weights only, or architecture only, returns exactly that group, with the same
/// values as a pass that asks for both.
#[test]
fn weight_and_arch_gradients_are_requested_separately() {
    let run = |wanted: Groups| {
        let tape = Tape::new();
        let vars: Vec<Var> = demo_inputs(99, DType::F64)
            .into_iter()
            .enumerate()
            .map(|(i, t)| {
                let group = match i {
                    0 => Groups::INPUTS,
                    8 => Groups::ARCH,
                    _ => Groups::WEIGHTS,
                };
                tape.param(ParamId(i), group, t)
            })
            .collect();
        let loss = demo_network(&vars);
        tape.backward(&loss, wanted)
    };
    let all = run(Groups::ALL);
    let w_only = run(Groups::WEIGHTS);
    let a_only = run(Groups::ARCH);
    assert_eq!(all.len(), 9);
    assert_eq!(w_only.len(), 7);
    assert!(w_only.get(ParamId(8)).is_none() && w_only.get(ParamId(0)).is_none());
    assert_eq!(a_only.len(), 1);
    for i in 1..8 {
        assert_eq!(w_only.get(ParamId(i)).unwrap().to_f64_vec(), all.get(ParamId(i)).unwrap().to_f64_vec());
    }
    assert_eq!(a_only.get(ParamId(8)).unwrap().to_f64_vec(), all.get(ParamId(8)).unwrap().to_f64_vec());
}

/// The same network in f32 gives the same loss to f32 precision.
#[test]
fn composite_runs_in_f32_too() {
    let loss = |dtype| {
        let tape = Tape::new();
        let vars: Vec<Var> = demo_inputs(99, dtype).into_iter().map(|t| tape.constant(t)).collect();
        demo_network(&vars).value().item()
    };
    let (l32, l64) = (loss(DType::F32), loss(DType::F64));
    assert!((l32 - l64).abs() <= 1e-5 * l64.abs(), "f32 {l32} vs f64 {l64}");
}
