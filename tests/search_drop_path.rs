//! Drop path during the search (R-DARTS(DP)): every edge's output dropped per sample before its
//! node's sum. The fused network with masks equals the unfused one with the same masks (f64 on
//! the CPU, and f32 on the emulator against f64 on the CPU); masks act on training forwards only
//! and probability 0 changes nothing.

use std::sync::Arc;

use darts::autograd::check::rel_err;
use darts::autograd::{Groups, ParamId};
use darts::backend::gpu::emu::EmuRuntime;
use darts::model::network::SearchDropPath;
use darts::model::{NetConfig, Network};
use darts::rng::Rng;
use darts::{DType, Device, Tensor};

/// Loss and every parameter's gradient of a small search network.
fn run(fuse: bool, drop: Option<f64>, training: bool, device: &Device, dtype: DType) -> (f64, Vec<Vec<f64>>) {
    let mut rng = Rng::new(5);
    let (mut net, mut store) = Network::new(
        NetConfig { channels: 4, layers: 3, classes: 10, ..Default::default() },
        dtype,
        &mut rng,
    );
    net.fuse = fuse;
    net.drop_path = drop.map(|p| SearchDropPath::new(p, 11));
    store.to_device(device);
    let n = 4;
    let x = Tensor::from_f64(&[n, 3, 16, 16], &rng.normals(n * 3 * 256), dtype).to_device(device);
    let (tape, _, loss) = net.loss(&mut store, &x, &[3, 7, 1, 0], training);
    let grads = tape.backward(&loss, Groups::ALL);
    let g = (0..store.params.len())
        .map(|i| grads.get(ParamId(i)).map_or_else(Vec::new, |t| t.to_f64_vec()))
        .collect();
    (loss.value().item(), g)
}

#[test]
fn fused_drop_path_matches_the_unfused_composition_in_f64() {
    let (lf, gf) = run(true, Some(0.4), true, &Device::Cpu, DType::F64);
    let (lu, gu) = run(false, Some(0.4), true, &Device::Cpu, DType::F64);
    assert!((lf - lu).abs() <= 1e-10 * lu.abs(), "loss {lf} vs {lu}");
    for (i, (a, b)) in gf.iter().zip(&gu).enumerate() {
        let e = rel_err(a, b);
        assert!(e < 1e-10, "gradient of parameter {i} differs by {e:e}");
    }
}

#[test]
fn drop_path_on_the_emulator_matches_the_cpu() {
    let emu = Device::Gpu(Arc::new(EmuRuntime::new(0, 0)));
    let (lg, gg) = run(true, Some(0.4), true, &emu, DType::F32);
    let (lc, gc) = run(false, Some(0.4), true, &Device::Cpu, DType::F64);
    assert!((lg - lc).abs() <= 1e-5 * lc.abs(), "loss {lg} vs {lc}");
    let e = rel_err(&gg.concat(), &gc.concat());
    assert!(e < 1e-5, "all gradients: relative error {e:e}");
}

#[test]
fn drop_path_acts_on_training_forwards_only() {
    let cpu = &Device::Cpu;
    let (plain, _) = run(true, None, true, cpu, DType::F64);
    let (dropped, _) = run(true, Some(0.4), true, cpu, DType::F64);
    let (zero, _) = run(true, Some(0.0), true, cpu, DType::F64);
    assert_ne!(plain, dropped, "masks at p = 0.4 change the training loss");
    assert_eq!(plain, zero, "p = 0 changes nothing");
    let (eval_plain, _) = run(true, None, false, cpu, DType::F64);
    let (eval_dropped, _) = run(true, Some(0.4), false, cpu, DType::F64);
    assert_eq!(eval_plain, eval_dropped, "no drop path in eval mode");
}
