//! Search steps issued three ways (one `SearchState::step` at a time, through a `Stepper`
//! without graphs, and replayed from a captured graph), for the tests that compare them bitwise
//! (`tests/deferred.rs` on the emulator, `tests/gpu_vs_cpu` on CUDA).
#![allow(dead_code)]

use darts::backend::gpu::Gpu;
use darts::model::{NetConfig, Network};
use darts::rng::Rng;
use darts::search::state_io::state_arrays;
use darts::search::stepper::{GraphMode, Stepper};
use darts::search::{Batch, Order, SearchState, StepConfig};
use darts::{DType, Device, Tensor};

/// How a test issues its search steps.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Exec {
    /// `SearchState::step`: every launch from the host, a read per step.
    Step,
    /// A [`Stepper`] with graphs off.
    Stepper,
    /// A [`Stepper`] capturing and replaying the step as a graph.
    Graph,
}

/// Batch sizes of [`steps`]: on a stepper with graphs the first step runs eagerly, the second is
/// captured (and replayed), the third replayed, the fourth (another shape, as the last partial
/// batch of an epoch) runs eagerly beside the graph, the fifth is replayed again.
pub const BATCHES: [usize; 5] = [2, 2, 2, 3, 2];

/// The search steps of [`BATCHES`] on `rt`, at a learning rate that changes every step: each
/// step's statistics (as bits) and the final state's arrays (what a checkpoint holds), printed
/// exactly; and the stepper's (replays, captures).
pub fn steps(rt: Gpu, order: Order, exec: Exec) -> (Vec<[u64; 4]>, String, (usize, usize)) {
    let device = Device::Gpu(rt);
    let mut rng = Rng::new(5);
    let config = NetConfig { channels: 2, layers: 3, classes: 10, ..Default::default() };
    let (net, mut store) = Network::new(config, DType::F32, &mut rng);
    store.to_device(&device);
    let mut state = SearchState::new(net, store, StepConfig { order, ..Default::default() });
    let mode = if exec == Exec::Graph { GraphMode::Auto } else { GraphMode::Off };
    let mut stepper = Stepper::new(&device, mode).unwrap();
    let mut stats = Vec::new();
    for (step, &n) in BATCHES.iter().enumerate() {
        let mut images =
            || Tensor::from_f64(&[n, 3, 8, 8], &rng.normals(n * 3 * 64), DType::F32).to_device(&device);
        let (xt, xv) = (images(), images());
        let labels = |first: u32| -> Vec<u32> { (0..n as u32).map(|i| (first + 3 * i) % 10).collect() };
        let (yt, yv) = (labels(step as u32), labels(7 - step as u32));
        let (train, val) = (Batch::new(&xt, &yt), Batch::new(&xv, &yv));
        let lr = 0.025 * (1.0 - 0.1 * step as f64);
        let s = match exec {
            Exec::Step => state.step(&train, &val, lr),
            _ => stepper.step(&mut state, &train, &val, lr).unwrap(),
        };
        stats.push([
            s.loss_train.to_bits(),
            s.loss_val.to_bits(),
            s.grad_norm.to_bits(),
            s.correct_train as u64,
        ]);
    }
    (stats, format!("{:?}", state_arrays(&state)), (stepper.replays, stepper.captures))
}
