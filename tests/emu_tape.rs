//! Whole graphs through the autograd tape on the GPU path, run by the emulator: the composite
//! network of the foundation tests, a tiny DARTS search (both orders), and a training forward and
//! backward of the evaluation network, against the CPU.
//! The same tests run on CUDA when a GPU is present (ignored here).
#![cfg(feature = "emu")]

mod eval;

use std::collections::BTreeSet;
use std::sync::Arc;

use darts::autograd::check::{demo_inputs, demo_network, rel_err, DEMO_INPUTS};
use darts::autograd::{GradStore, Groups, ParamId, Tape, Var};
use darts::backend::gpu::emu::EmuRuntime;
use darts::backend::gpu::Runtime;
use darts::model::eval::{DropPath, EvalConfig, EvalNetwork, NetworkCifar};
use darts::model::{NetConfig, Network};
use darts::optim::{clip_grad_norm, Sgd};
use darts::rng::Rng;
use darts::search::{Batch, Order, SearchState, StepConfig};
use darts::{DType, Device, Tensor};

fn emu() -> Device {
    Device::Gpu(Arc::new(EmuRuntime::new(0, 0)))
}

/// Loss and every input's gradient of the demo network on `device` (inputs given in f32).
fn demo_grads(device: &Device, dtype: DType) -> (f64, Vec<Vec<f64>>) {
    let tape = Tape::new();
    let vars: Vec<Var> = demo_inputs(99, DType::F32)
        .into_iter()
        .enumerate()
        .map(|(i, t)| tape.param(ParamId(i), Groups::ALL, t.to_dtype(dtype).to_device(device)))
        .collect();
    let loss = demo_network(&vars);
    let grads = tape.backward(&loss, Groups::ALL);
    let g = (0..vars.len()).map(|i| grads.get(ParamId(i)).unwrap().to_f64_vec()).collect();
    (loss.value().item(), g)
}

fn composite_matches(device: Device) {
    let (l_ref, g_ref) = demo_grads(&Device::Cpu, DType::F64);
    let (l_dev, g_dev) = demo_grads(&device, DType::F32);
    assert!((l_ref - l_dev).abs() < 1e-5 * l_ref.abs(), "loss {l_dev} vs {l_ref}");
    for ((name, a), b) in DEMO_INPUTS.iter().zip(&g_dev).zip(&g_ref) {
        let e = rel_err(a, b);
        assert!(e < 1e-5, "d loss / d {name}: relative error {e:e} on {device:?}");
    }
}

#[test]
fn composite_network_forward_and_backward_match_the_cpu_on_the_emulator() {
    composite_matches(emu());
}

/// A tiny search on 8x8 images: one step of each order on `device` against the CPU in f64.
fn tiny_search_matches(device: Device) {
    for order in [Order::First, Order::Second] {
        let run = |device: &Device, dtype: DType| {
            let cfg = NetConfig { channels: 2, layers: 3, classes: 10, ..Default::default() };
            let (net, mut store) = Network::new(cfg, dtype, &mut Rng::new(5));
            store.to_device(device);
            let mut s = SearchState::new(net, store, StepConfig { order, ..Default::default() });
            let mut rng = Rng::new(9);
            let mut losses = Vec::new();
            for _ in 0..1 {
                let mut images = || {
                    Tensor::from_f64(&[2, 3, 8, 8], &rng.normals(2 * 3 * 64), DType::F32)
                        .to_dtype(dtype)
                        .to_device(device)
                };
                let (xt, xv) = (images(), images());
                let (yt, yv) = ([1u32, 7], [3u32, 3]);
                let st = s.step(&Batch::new(&xt, &yt), &Batch::new(&xv, &yv), 0.025);
                losses.push((st.loss_train, st.loss_val));
            }
            let params: Vec<Vec<f64>> = s.store.params.iter().map(|p| p.value.to_f64_vec()).collect();
            (losses, params)
        };
        let (l_ref, p_ref) = run(&Device::Cpu, DType::F64);
        let (l_dev, p_dev) = run(&device, DType::F32);
        for ((a, b), (c, d)) in l_dev.iter().zip(&l_ref) {
            assert!(
                (a - c).abs() < 1e-4 && (b - d).abs() < 1e-4,
                "{order:?}: losses ({a}, {b}) vs ({c}, {d})"
            );
        }
        let (all_dev, all_ref): (Vec<f64>, Vec<f64>) = (p_dev.concat(), p_ref.concat());
        let e = rel_err(&all_dev, &all_ref);
        assert!(e < 1e-4, "{order:?}: parameters after a step, relative error {e:e}");
    }
}

#[test]
fn tiny_search_steps_match_the_cpu_on_the_emulator() {
    tiny_search_matches(emu());
}

/// A search step on the emulator logs its launches, host waits, copies and peak device bytes,
/// and the launches it logs are launches the runtime made.
#[test]
fn search_step_logs_what_it_cost_on_the_emulator() {
    use darts::search::run::{run, RunOptions, SearchConfig};
    let rt = Arc::new(EmuRuntime::new(0, 0));
    let out = std::env::temp_dir().join(format!("darts-emu-meter-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let cfg = SearchConfig {
        channels: 2,
        layers: 3,
        batch: 4,
        epochs: 1,
        train_images: Some(32),
        data: std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("data/sample"),
        ..SearchConfig::paper()
    };
    let opts = RunOptions {
        out: out.clone(),
        resume: false,
        init: None,
        device: Device::Gpu(rt.clone()),
        max_steps: Some(1),
        progress: false,
        graph: darts::search::stepper::GraphMode::Auto,
    };
    run(&cfg, &opts).unwrap();
    let log = std::fs::read_to_string(out.join("log.jsonl")).unwrap();
    let step: serde_json::Value = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .find(|v: &serde_json::Value| v["kind"] == "step")
        .unwrap();
    let get = |k: &str| step[k].as_u64().unwrap_or_else(|| panic!("{k} missing from {step}"));
    let launched: u64 = rt.launch_counts().values().sum();
    assert!(get("launches") > 100 && get("launches") <= launched, "{step} vs {launched} launched in all");
    // The step's scalars (losses, norm, accuracy) come back to the host together.
    assert!(get("host_reads") >= 1 && get("syncs") >= get("host_reads"), "{step}");
    // The two batches go up.
    assert!(get("copies") >= 2 + get("host_reads"), "{step}");
    assert!(get("peak_bytes") >= 2 * 4 * 3 * 32 * 32 * 4 && get("allocations") > 0, "{step}");
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn composite_and_tiny_search_match_the_cpu_on_cuda() {
    let rt = darts::backend::gpu::cuda::CudaRuntime::new(0, true).unwrap_or_else(|e| panic!("{e}"));
    let dev = Device::Gpu(Arc::new(rt));
    composite_matches(dev.clone());
    tiny_search_matches(dev);
}

/// `darts verify`'s cases pass on the emulator at batch 2 (each also under the other fiber
/// schedule, bit for bit), and between them launch every kernel built from `kernels/*.cu`, so the
/// command's own table can neither silently break nor leave a kernel unchecked.
#[test]
fn verify_cases_pass_on_the_emulator_and_launch_every_kernel() {
    let rt = Arc::new(EmuRuntime::new(0, 0));
    let rows = darts::verify::run(&darts::verify::darts_cases(2), &Device::Gpu(rt.clone()), 0, |_| {});
    let failed: Vec<String> = rows.iter().filter(|r| !r.pass).map(darts::verify::format_row).collect();
    assert!(failed.is_empty(), "failing verify cases:\n{}", failed.join("\n"));
    let launched: BTreeSet<String> = rt.launch_counts().into_keys().collect();
    let built: BTreeSet<String> = darts::backend::gpu::kernels::all_kernels().map(String::from).collect();
    let missing: Vec<&str> = built.difference(&launched).map(String::as_str).collect();
    assert!(missing.is_empty(), "kernels that no verify case launches: {}", missing.join(", "));
    assert_eq!(launched, built, "verify launched kernels that kernels/*.cu does not define");
}

/// The optimiser part of a weight step of the paper network (gradient norm, clip coefficient,
/// SGD with momentum over its 1,399 weight tensors) is a handful of launches, not a few per
/// tensor, and reads nothing back (the norm for the log is one read, asked for separately).
/// Unfused it was 1,399 sum-of-squares + 1 + 1,399 scale + 1,399 SGD launches per step (and
/// 1,399 fills on the first).
#[test]
fn optimiser_part_of_a_weight_step_is_a_handful_of_launches() {
    let rt = Arc::new(EmuRuntime::new(0, 0));
    let dev = Device::Gpu(rt.clone());
    let (_, mut store) = Network::new(NetConfig::default(), DType::F32, &mut Rng::new(1));
    store.to_device(&dev);
    let ids: Vec<usize> =
        (0..store.params.len()).filter(|&i| store.params[i].group.intersects(Groups::WEIGHTS)).collect();
    assert_eq!(ids.len(), 1399, "the paper network's weight tensors");
    let mut rng = Rng::new(3);
    let mut grads = GradStore::default();
    for &i in &ids {
        let shape = store.params[i].value.shape().to_vec();
        let g = Tensor::from_f64(&shape, &rng.normals(shape.iter().product()), DType::F32);
        grads.insert(ParamId(i), g.to_device(&dev));
    }
    let mut sgd = Sgd::new(store.params.len(), 0.9, 3e-4);
    for step in 0..2 {
        let before = rt.counts();
        let clip = clip_grad_norm(&grads, &ids, 5.0);
        sgd.step(&mut store, &grads, &ids, 0.025, Some(&clip));
        let c = rt.counts().since(&before);
        eprintln!("step {step}: {c:?}");
        assert!(c.launches <= 8, "step {step}: {} launches for clip + SGD over 1,399 tensors", c.launches);
        assert_eq!(c.dtoh + c.synchronizes, 0, "step {step}: the host waited for the device");
        assert!(c.htod <= 4, "step {step}: {} uploads", c.htod);
        // N(0, 1) gradients over ~1.9M values: the norm is far above 5, so the step clips.
        let (norm, coef) = (clip.norm(), clip.coef());
        assert!(
            norm > 1000.0 && (coef - 5.0 / (norm + 1e-6)).abs() < 1e-6 * coef,
            "norm {norm}, coef {coef}"
        );
    }
    eprintln!("{:?}", rt.launch_counts());
}

/// Gradients by parameter name.
type NamedGrads = Vec<(String, Vec<f64>)>;

/// The evaluation network (`model::eval`, every op, auxiliary head, drop path): outputs (logits, auxiliary logits, loss, eval-mode logits) and every weight gradient of a
/// training forward with drop path and the auxiliary head, on `device` in `dtype`.
fn eval_net_run(device: &Device, dtype: DType) -> (Vec<Vec<f64>>, NamedGrads) {
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

fn eval_net_matches(device: Device) {
    let (o_ref, g_ref) = eval_net_run(&Device::Cpu, DType::F64);
    let (o_dev, g_dev) = eval_net_run(&device, DType::F32);
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
fn eval_network_training_and_eval_forwards_match_the_cpu_on_the_emulator() {
    eval_net_matches(emu());
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn eval_network_training_and_eval_forwards_match_the_cpu_on_cuda() {
    let rt = darts::backend::gpu::cuda::CudaRuntime::new(0, true).unwrap_or_else(|e| panic!("{e}"));
    eval_net_matches(Device::Gpu(Arc::new(rt)));
}

/// A training forward of the evaluation network uploads all its drop-path masks in one copy, not
/// one per op.
#[test]
fn eval_network_uploads_its_drop_path_masks_in_one_copy_per_forward() {
    let rt = Arc::new(EmuRuntime::new(0, 0));
    let dev = Device::Gpu(rt.clone());
    let config = EvalConfig { channels: 2, layers: 3, classes: 10, auxiliary: false };
    let (net, mut store) = NetworkCifar::new(config, &eval::all_ops(), DType::F32, &mut Rng::new(3)).unwrap();
    store.to_device(&dev);
    let net = EvalNetwork::Cifar(net);
    let x = eval::images(6, 2, 8, DType::F32).to_device(&dev);
    let mut uploads = |prob: Option<f64>| {
        let before = rt.counts();
        let mut rng = Rng::new(1);
        let drop = prob.map(|prob| DropPath { prob, rng: &mut rng });
        net.loss(&mut store, &x, &[1, 2], true, drop, 0.4);
        rt.counts().since(&before).htod
    };
    let (with, without) = (uploads(Some(0.3)), uploads(None));
    assert_eq!(with, without + 1, "uploads with drop path {with}, without {without}");
}
