//! One first-order FairDARTS search step in f64 against the PyTorch reference
//! (`tests/fixtures/fair-darts/`, made by `scripts/make-fair-fixtures.sh` from
//! `scripts/fair_darts_torch.py`): every tensor the reference writes (weights, BN buffers, α,
//! SGD momentum, Adam moments, the step's gradients) within 1e-8 relative per tensor, the
//! losses within 1e-12. The architecture objective is CE(val) + 10 · L01(σ(α)); the fixture's
//! initial α are N(0, 1) draws (FairDARTS starts at 0, where L01's gradient vanishes).

use std::path::Path;

use darts::model::fair::ZERO_ONE_WEIGHT;
use darts::model::{Method, NetConfig, Network};
use darts::rng::Rng;
use darts::search::state_io::load_state;
use darts::search::{Batch, Order, SearchState, StepConfig};
use darts::DType;

#[path = "common/reference.rs"]
mod reference;

use reference::{batch, compare, fixture, losses, step_arrays};

#[test]
fn first_order_fair_darts_step_matches_the_reference_in_f64() {
    let config = NetConfig { channels: 2, layers: 5, classes: 10, method: Method::FairDarts };
    let (net, store) = Network::new(config, DType::F64, &mut Rng::new(0));
    let step = StepConfig { order: Order::First, zero_one_weight: ZERO_ONE_WEIGHT, ..Default::default() };
    let mut s = SearchState::new(net, store, step);
    load_state(&mut s, &fixture("fair-darts/init.safetensors"), Path::new("init")).unwrap();
    // The batches of the DARTS fixtures (same seed and data).
    let b = fixture("f64/batches.safetensors");
    let (xt, yt) = batch(&b, "train", 0, DType::F64);
    let (xv, yv) = batch(&b, "val", 0, DType::F64);
    let stats = s.step(&Batch::new(&xt, &yt), &Batch::new(&xv, &yv), 0.025);
    let want = fixture("fair-darts/first-1.safetensors");
    let checked = compare(&step_arrays(&s), &want, 1e-8, "FairDARTS step");
    assert!(checked > 4000 && want.contains_key("grad.alphas_normal"), "only {checked} tensors compared");
    let (lt, lv) = losses(&want, 0);
    assert!(
        (stats.loss_train - lt).abs() < 1e-12 && (stats.loss_val - lv).abs() < 1e-12,
        "losses {} {} vs {lt} {lv}",
        stats.loss_train,
        stats.loss_val
    );
}
