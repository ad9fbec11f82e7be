//! Full search steps against the PyTorch reference (`tests/fixtures/`): in f64, every tensor
//! the reference writes after one and two first- and second-order steps (weights, BN buffers,
//! alphas, SGD momentum, Adam moments, the last step's gradients and losses) within 1e-8
//! relative per tensor; in f32, the first step's logits-side quantities within the issue's
//! tolerances. Each step starts from the reference's state, so one step's error never feeds
//! the next.

use std::path::Path;

use darts::autograd::check::rel_err;
use darts::checkpoint::Arrays;
use darts::model::{NetConfig, Network};
use darts::rng::Rng;
use darts::search::state_io::load_state;
use darts::search::{Batch, Order, SearchState, StepConfig};
use darts::DType;

#[path = "common/reference.rs"]
mod reference;

use reference::{batch, compare, fixture, losses, step_arrays};

/// Runs step `i` from the state in `start` and returns our state arrays, with the last step's
/// gradients (`grad.*`) and losses of this step.
fn run_step(dtype: DType, dir: &str, start: &str, order: Order, i: usize) -> (Arrays, f64, f64) {
    let (net, store) = Network::new(
        NetConfig { channels: 2, layers: 5, classes: 10, ..Default::default() },
        dtype,
        &mut Rng::new(0),
    );
    let mut s = SearchState::new(net, store, StepConfig { order, ..Default::default() });
    load_state(&mut s, &fixture(&format!("{dir}/{start}.safetensors")), Path::new(start)).unwrap();
    let b = fixture(&format!("{dir}/batches.safetensors"));
    let (xt, yt) = batch(&b, "train", i, dtype);
    let (xv, yv) = batch(&b, "val", i, dtype);
    let stats = s.step(&Batch::new(&xt, &yt), &Batch::new(&xv, &yv), 0.025);
    (step_arrays(&s), stats.loss_train, stats.loss_val)
}

fn check_order(order: Order, name: &str) {
    // Step 0 from init, compared with <order>-1.
    let want1 = fixture(&format!("f64/{name}-1.safetensors"));
    let (ours, lt, lv) = run_step(DType::F64, "f64", "init", order, 0);
    compare(&ours, &want1, 1e-8, &format!("{name} step 1"));
    let (rt, rv) = losses(&want1, 0);
    assert!((lt - rt).abs() < 1e-12 && (lv - rv).abs() < 1e-12, "losses {lt} {lv} vs {rt} {rv}");
    // Step 1 from the reference's state after step 0, compared with <order>-2.
    let want2 = fixture(&format!("f64/{name}-2.safetensors"));
    let (ours, lt, lv) = run_step(DType::F64, "f64", &format!("{name}-1"), order, 1);
    compare(&ours, &want2, 1e-8, &format!("{name} step 2"));
    let (rt, rv) = losses(&want2, 1);
    assert!((lt - rt).abs() < 1e-12 && (lv - rv).abs() < 1e-12, "losses {lt} {lv} vs {rt} {rv}");
}

#[test]
fn first_order_steps_match_the_reference_in_f64() {
    check_order(Order::First, "first");
}

#[test]
fn second_order_steps_match_the_reference_in_f64() {
    check_order(Order::Second, "second");
}

/// Float32, one step from the reference's exported initial state: the weight gradients of the
/// step within 1e-4 relative (norm-wise over all weights: a few tiny tensors are dominated by
/// cancellation, where even PyTorch's own float32 run is 1.2e-4 off its float64 run, see
/// tests/fixtures/README.md) and the alpha gradients within 1e-2, for both orders.
#[test]
fn first_step_gradients_match_the_reference_in_f32() {
    for (order, name) in [(Order::First, "first"), (Order::Second, "second")] {
        let want = fixture(&format!("f32/{name}-1.safetensors"));
        let (ours, lt, lv) = run_step(DType::F32, "f32", "init", order, 0);
        let (mut gw, mut rw) = (Vec::new(), Vec::new());
        let mut worst_tensor = (0.0f64, String::new());
        for (k, a) in &want {
            let Some(wname) = k.strip_prefix("grad.") else { continue };
            let (g, r) = (ours[k].data.to_f64(), a.data.to_f64());
            if wname.starts_with("alphas_") {
                let e = rel_err(&g, &r);
                assert!(e < 1e-2, "{name}: {k} relative error {e:e}");
            } else {
                let e = rel_err(&g, &r);
                if e > worst_tensor.0 {
                    worst_tensor = (e, k.clone());
                }
                gw.extend(g);
                rw.extend(r);
            }
        }
        let e = rel_err(&gw, &rw);
        assert!(e < 1e-4, "{name}: weight gradients relative error {e:e} (worst tensor {worst_tensor:?})");
        let (rt, rv) = losses(&want, 0);
        assert!((lt - rt).abs() < 1e-4 * rt && (lv - rv).abs() < 1e-4 * rv, "losses {lt} {lv} vs {rt} {rv}");
        eprintln!("{name}: f32 weight-gradient error {e:e}, worst tensor {worst_tensor:?}");
    }
}
