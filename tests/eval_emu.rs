//! The evaluation network on the GPU path, run by the emulator (the same kernels as CUDA):
//! a training forward and backward with drop path and the auxiliary head, and an eval-mode
//! forward, in f32 against the CPU in f64. The same check runs on CUDA when a GPU is present.
#![cfg(feature = "emu")]

mod eval;

use std::sync::Arc;

use darts::autograd::check::rel_err;
use darts::autograd::Groups;
use darts::backend::gpu::emu::EmuRuntime;
use darts::model::eval::{DropPath, EvalConfig, EvalNetwork, NetworkCifar};
use darts::rng::Rng;
use darts::{DType, Device};

/// Outputs (logits, auxiliary logits, loss, eval-mode logits) and every weight gradient of a
/// training forward with drop path and the auxiliary head, on `device` in `dtype`.
fn run(device: &Device, dtype: DType) -> (Vec<Vec<f64>>, Vec<(String, Vec<f64>)>) {
    let genotype = eval::all_ops();
    // Batch 8: the auxiliary head's last BN normalises one value per sample (1×1 maps), and at
    // batch 2 its backward amplifies rounding so much that even the CPU in f32 is 7e-5 off the
    // CPU in f64 (2e-4 on the emulator); at batch 8 both are below 1e-6.
    let n = 8;
    let config = EvalConfig { channels: 2, layers: 3, classes: 10, auxiliary: true };
    let (net, mut store) = NetworkCifar::new(config, &genotype, dtype, &mut Rng::new(3)).unwrap();
    eval::shared_init(&mut store, 5);
    store.to_device(device);
    let net = EvalNetwork::Cifar(net);
    let x = eval::images(6, n, 32, DType::F32).to_dtype(dtype).to_device(device);
    let labels: Vec<u32> = (0..n as u32).map(|i| (2 + 7 * i) % 10).collect();
    let mut rng = Rng::new(7);
    let drop = DropPath { prob: 0.2, rng: &mut rng };
    let (tape, out, loss) = net.loss(&mut store, &x, &labels, true, Some(drop), 0.4);
    let grads = tape.backward(&loss, Groups::WEIGHTS);
    let (_, eval_out, _) = net.loss(&mut store, &x, &labels, false, None, 0.4);
    let outputs = vec![
        out.logits.value().to_f64_vec(),
        out.aux.as_ref().expect("auxiliary logits").value().to_f64_vec(),
        loss.value().to_f64_vec(),
        eval_out.logits.value().to_f64_vec(),
    ];
    let g = store
        .params
        .iter()
        .enumerate()
        .map(|(i, p)| (p.name.clone(), grads.get(darts::autograd::ParamId(i)).unwrap().to_f64_vec()))
        .collect();
    (outputs, g)
}

fn matches_the_cpu(device: Device) {
    let (o_ref, g_ref) = run(&Device::Cpu, DType::F64);
    let (o_dev, g_dev) = run(&device, DType::F32);
    for (what, (a, b)) in
        ["logits", "aux logits", "loss", "eval-mode logits"].iter().zip(o_dev.iter().zip(&o_ref))
    {
        let e = rel_err(a, b);
        assert!(e < 1e-5, "{what}: relative error {e:e} on {device:?}");
    }
    let (mut all_dev, mut all_ref, mut worst) = (Vec::new(), Vec::new(), (0.0f64, String::new()));
    for ((name, a), (_, b)) in g_dev.iter().zip(&g_ref) {
        let e = rel_err(a, b);
        if e > worst.0 {
            worst = (e, name.clone());
        }
        all_dev.extend(a);
        all_ref.extend(b);
    }
    let e = rel_err(&all_dev, &all_ref);
    eprintln!("weight gradients: relative error {e:e} over all, worst tensor {worst:?}");
    assert!(e < 1e-5, "weight gradients: relative error {e:e} (worst tensor {worst:?}) on {device:?}");
}

#[test]
fn training_and_eval_forwards_match_the_cpu_on_the_emulator() {
    matches_the_cpu(Device::Gpu(Arc::new(EmuRuntime::new(0, 0))));
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn training_and_eval_forwards_match_the_cpu_on_cuda() {
    let rt = darts::backend::gpu::cuda::CudaRuntime::new(0, true).unwrap_or_else(|e| panic!("{e}"));
    matches_the_cpu(Device::Gpu(Arc::new(rt)));
}
