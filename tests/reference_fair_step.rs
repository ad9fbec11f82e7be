//! One first-order FairDARTS search step in f64 against the PyTorch reference
//! (`tests/fixtures/fair-darts/`, made by `scripts/make-fair-fixtures.sh` from
//! `scripts/fair_darts_torch.py`): every tensor the reference writes (weights, BN buffers, α,
//! SGD momentum, Adam moments, the step's gradients) within 1e-8 relative per tensor, the
//! losses within 1e-12. The architecture objective is CE(val) + 10 · L01(σ(α)); the fixture's
//! initial α are N(0, 1) draws (FairDARTS starts at 0, where L01's gradient vanishes).

use std::path::Path;

use darts::autograd::check::rel_err;
use darts::checkpoint::{self, Arrays};
use darts::model::fair::ZERO_ONE_WEIGHT;
use darts::model::{Method, NetConfig, Network};
use darts::rng::Rng;
use darts::search::state_io::{load_state, state_arrays};
use darts::search::{Batch, Order, SearchState, StepConfig};
use darts::{DType, Tensor};

fn fixture(rel: &str) -> Arrays {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(rel);
    checkpoint::read(&path).unwrap_or_else(|e| panic!("{e}")).0
}

fn batch(b: &Arrays, kind: &str, i: usize) -> (Tensor, Vec<u32>) {
    let x = &b[&format!("x_{kind}.{i}")];
    let y = &b[&format!("y_{kind}.{i}")];
    let labels = y.data.to_f64().iter().map(|&v| v as u32).collect();
    (Tensor::from_f64(&x.shape, &x.data.to_f64(), DType::F64), labels)
}

#[test]
fn first_order_fair_darts_step_matches_the_reference_in_f64() {
    let config = NetConfig { channels: 2, layers: 5, classes: 10, method: Method::FairDarts };
    let (net, store) = Network::new(config, DType::F64, &mut Rng::new(0));
    let step = StepConfig { order: Order::First, zero_one_weight: ZERO_ONE_WEIGHT, ..Default::default() };
    let mut s = SearchState::new(net, store, step);
    load_state(&mut s, &fixture("fair-darts/init.safetensors"), Path::new("init")).unwrap();
    // The batches of the DARTS fixtures (same seed and data).
    let b = fixture("f64/batches.safetensors");
    let (xt, yt) = batch(&b, "train", 0);
    let (xv, yv) = batch(&b, "val", 0);
    let stats = s.step(&Batch::new(&xt, &yt), &Batch::new(&xv, &yv), 0.025);
    let mut ours = state_arrays(&s);
    for (id, g) in s.last_grads.as_ref().unwrap().iter() {
        ours.insert(format!("grad.{}", s.store.params[id.0].name), checkpoint::tensor_array(g));
    }

    let want = fixture("fair-darts/first-1.safetensors");
    let (mut failures, mut checked) = (Vec::new(), 0);
    for (name, w) in &want {
        if name.starts_with("loss.") {
            continue;
        }
        let Some(got) = ours.get(name) else {
            failures.push(format!("{name}: missing from our state"));
            continue;
        };
        assert_eq!(got.shape, w.shape, "{name}");
        let e = rel_err(&got.data.to_f64(), &w.data.to_f64());
        if e.is_nan() || e > 1e-8 {
            failures.push(format!("{name}: relative error {e:e}"));
        }
        checked += 1;
    }
    assert!(failures.is_empty(), "{} of {checked} tensors differ:\n{}", failures.len(), failures.join("\n"));
    assert!(checked > 4000 && want.contains_key("grad.alphas_normal"), "only {checked} tensors compared");
    let (lt, lv) = (want["loss.train"].data.to_f64()[0], want["loss.val"].data.to_f64()[0]);
    assert!(
        (stats.loss_train - lt).abs() < 1e-12 && (stats.loss_val - lv).abs() < 1e-12,
        "losses {} {} vs {lt} {lv}",
        stats.loss_train,
        stats.loss_val
    );
}
