//! The PC-DARTS search network against its PyTorch reference (`tests/fixtures/pc-darts/`, made
//! by `scripts/make-pc-fixtures.sh` with `scripts/pc_darts_torch.py`): parameter count at the
//! paper's size, tensor names and shapes, train-mode logits, one first-order search step (every
//! tensor within 1e-8 relative, fused and unfused) and the genotype, all in f64.

use std::path::Path;

use darts::autograd::check::rel_err;
use darts::autograd::Groups;
use darts::checkpoint::{self, Array, Arrays};
use darts::data::{eval_batches, Cifar10};
use darts::model::{Method, NetConfig, Network};
use darts::rng::Rng;
use darts::search::arch::ArchSnapshot;
use darts::search::genotype::Genotype;
use darts::search::state_io::load_state;
use darts::search::{Batch, Order, SearchState, StepConfig};
use darts::{DType, Tensor};

const PC: Method = Method::PcDarts { k: 4 };

#[path = "common/reference.rs"]
mod reference;

use reference::{batch, compare, losses, step_arrays};

fn fixture(name: &str) -> Arrays {
    reference::fixture(&format!("pc-darts/{name}"))
}

/// The fixtures' network: C = 8, 3 cells (normal, reduction, reduction), k = 4.
fn small_net(fuse: bool) -> (Network, darts::nn::Store) {
    let (mut net, store) = Network::new(
        NetConfig { channels: 8, layers: 3, classes: 10, method: PC },
        DType::F64,
        &mut Rng::new(0),
    );
    net.fuse = fuse;
    (net, store)
}

#[test]
fn pc_darts_network_at_paper_size_has_the_reference_parameter_count() {
    // 299,578: `PcNetwork(16, 10, 8).num_weights()` of scripts/pc_darts_torch.py (the same
    // modules as PC-DARTS' model_search.Network).
    let (_, store) =
        Network::new(NetConfig { method: PC, ..Default::default() }, DType::F32, &mut Rng::new(2));
    assert_eq!(store.count(Groups::WEIGHTS), 299_578);
    assert_eq!(store.count(Groups::ARCH), 2 * 14 * 8 + 2 * 14);
}

#[test]
fn names_and_shapes_match_the_reference_state_dict() {
    let reference = fixture("init.safetensors");
    let (_, store) = small_net(true);
    let ours = checkpoint::store_arrays(&store);
    let missing: Vec<&String> = reference.keys().filter(|k| !ours.contains_key(*k)).collect();
    let extra: Vec<&String> = ours.keys().filter(|k| !reference.contains_key(*k)).collect();
    assert!(missing.is_empty() && extra.is_empty(), "missing {missing:?}\nextra {extra:?}");
    for (k, a) in &reference {
        assert_eq!(a.shape, ours[k].shape, "{k}");
    }
    assert_eq!(reference["betas_normal"].shape, vec![14]);
}

#[test]
fn train_mode_logits_match_the_reference_fused_and_unfused() {
    let data = Cifar10::open(Path::new(env!("CARGO_MANIFEST_DIR")).join("data/sample")).unwrap();
    let x = eval_batches(data.test(), 0..4, 4, DType::F64).next().unwrap().images;
    let Array { data: want, shape } = fixture("logits-train-bn.safetensors").remove("logits").unwrap();
    assert_eq!(shape, vec![4, 10]);
    for fuse in [true, false] {
        let (net, mut store) = small_net(fuse);
        checkpoint::load_store(&mut store, &fixture("init.safetensors"), Path::new("init"), true, &[])
            .unwrap();
        let (_, logits, _) = net.loss(&mut store, &x, &[3, 8, 8, 0], true);
        let e = rel_err(&logits.value().to_f64_vec(), &want.to_f64());
        assert!(e < 1e-8, "fuse {fuse}: logits relative error {e:e}");
    }
}

#[test]
fn first_order_step_matches_the_reference_fused_and_unfused() {
    let want = fixture("first-1.safetensors");
    let b = fixture("batches.safetensors");
    let ((xt, yt), (xv, yv)) = (batch(&b, "train", 0, DType::F64), batch(&b, "val", 0, DType::F64));
    for fuse in [true, false] {
        let (net, store) = small_net(fuse);
        let mut s = SearchState::new(net, store, StepConfig { order: Order::First, ..Default::default() });
        load_state(&mut s, &fixture("init.safetensors"), Path::new("init")).unwrap();
        let stats = s.step(&Batch::new(&xt, &yt), &Batch::new(&xv, &yv), 0.025);
        let checked = compare(&step_arrays(&s), &want, 1e-8, &format!("fuse {fuse}"));
        assert!(
            want.contains_key("grad.betas_normal") && checked == want.len() - 2,
            "{checked} of {} tensors compared",
            want.len()
        );
        let (lt, lv) = losses(&want, 0);
        assert!(
            (stats.loss_train - lt).abs() < 1e-12 && (stats.loss_val - lv).abs() < 1e-12,
            "fuse {fuse}: losses {} {} vs {lt} {lv}",
            stats.loss_train,
            stats.loss_val
        );
    }
}

#[test]
fn genotype_matches_the_reference_parse() {
    let state = fixture("first-1.safetensors");
    let v = |k: &str| state[k].data.to_f64();
    let pc = |betas_normal: Vec<f64>, betas_reduce: Vec<f64>| ArchSnapshot {
        method: Method::PcDarts { k: 4 },
        alphas_normal: v("alphas_normal"),
        alphas_reduce: v("alphas_reduce"),
        betas_normal,
        betas_reduce,
    };
    let ours = pc(v("betas_normal"), v("betas_reduce")).genotype();
    // The last line of log.jsonl: `pc_darts_torch.py genotype` of the same file.
    let log = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pc-darts/log.jsonl"),
    )
    .unwrap();
    let last: serde_json::Value = serde_json::from_str(log.lines().last().unwrap()).unwrap();
    let genes = |cell: &str| -> Vec<(String, usize)> { serde_json::from_value(last[cell].clone()).unwrap() };
    assert_eq!(ours.normal, genes("normal"));
    assert_eq!(ours.reduce, genes("reduce"));
    // Equal β within each node make w2 constant per node: the rule reduces to DARTS'.
    let flat = vec![0.0; 14];
    let plain = Genotype::from_alphas(&v("alphas_normal"), &v("alphas_reduce"));
    assert_eq!(pc(flat.clone(), flat).genotype(), plain);
}

/// One first-order step of a tiny PC-DARTS search (8x8 images, C = 8, 3 cells) through the GPU
/// path on the emulator, f32, against the CPU in f64: losses and every parameter afterwards.
#[cfg(feature = "emu")]
#[test]
fn tiny_search_step_matches_the_cpu_on_the_emulator() {
    use darts::backend::gpu::emu::EmuRuntime;
    use darts::Device;
    let run = |device: &Device, dtype: DType| {
        let cfg = NetConfig { channels: 8, layers: 3, classes: 10, method: PC };
        let (net, mut store) = Network::new(cfg, dtype, &mut Rng::new(5));
        store.to_device(device);
        let mut s = SearchState::new(net, store, StepConfig { order: Order::First, ..Default::default() });
        let mut rng = Rng::new(9);
        let mut images = || {
            Tensor::from_f64(&[2, 3, 8, 8], &rng.normals(2 * 3 * 64), DType::F32)
                .to_dtype(dtype)
                .to_device(device)
        };
        let (xt, xv) = (images(), images());
        let st = s.step(&Batch::new(&xt, &[1, 7]), &Batch::new(&xv, &[3, 3]), 0.025);
        let params: Vec<f64> = s.store.params.iter().flat_map(|p| p.value.to_f64_vec()).collect();
        (st.loss_train, st.loss_val, params)
    };
    let (lt, lv, p_ref) = run(&Device::Cpu, DType::F64);
    let (dt, dv, p_dev) = run(&Device::Gpu(std::sync::Arc::new(EmuRuntime::new(0, 0))), DType::F32);
    assert!((lt - dt).abs() < 1e-4 && (lv - dv).abs() < 1e-4, "losses ({dt}, {dv}) vs ({lt}, {lv})");
    let e = rel_err(&p_dev, &p_ref);
    assert!(e < 1e-4, "parameters after a step, relative error {e:e}");
}
