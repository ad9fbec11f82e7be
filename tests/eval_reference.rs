//! The evaluation network against the PyTorch reference of `model.py` (`tests/fixtures/eval/`,
//! made by `scripts/make-eval-fixtures.sh` from `scripts/eval_torch.py`): state-dict names and
//! shapes of CIFAR and ImageNet networks, strict loading of the reference's state dict, and in
//! f64, for DARTS_V2 with the auxiliary head, for a genotype with every op and for a sparse
//! FairDARTS genotype (its DCOCell), the eval- and
//! train-mode logits, the auxiliary logits, the loss and every parameter and BN buffer after one
//! SGD step (CE + 0.4 CE_aux, clip 5, momentum 0.9, wd 3e-4, lr 0.025).

mod eval;

use std::path::{Path, PathBuf};

use darts::autograd::check::rel_err;
use darts::autograd::Groups;
use darts::checkpoint::{self, ArrayData, Arrays};
use darts::model::eval::{EvalConfig, EvalNetwork, NetworkCifar, NetworkImageNet};
use darts::nn::Store;
use darts::optim::{clip_grad_norm, Sgd};
use darts::rng::Rng;
use darts::search::genotype::Genotype;
use darts::DType;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/eval")
}

fn build(
    kind: &str,
    channels: usize,
    classes: usize,
    layers: usize,
    auxiliary: bool,
    genotype: &str,
) -> (EvalNetwork, Store) {
    let config = EvalConfig { channels, layers, classes, auxiliary };
    let g = Genotype::published(genotype).unwrap();
    let mut rng = Rng::new(0);
    match kind {
        "cifar" => {
            let (n, s) = NetworkCifar::new(config, &g, DType::F64, &mut rng).unwrap();
            (EvalNetwork::Cifar(n), s)
        }
        _ => {
            let (n, s) = NetworkImageNet::new(config, &g, DType::F64, &mut rng).unwrap();
            (EvalNetwork::ImageNet(n), s)
        }
    }
}

/// Every network `eval_torch.py names` lists has exactly the reference's state-dict names and
/// shapes, and the paper networks' counts it printed are ours.
#[test]
fn names_and_shapes_match_the_reference_state_dicts() {
    let text = std::fs::read_to_string(dir().join("names.json")).unwrap();
    let names: serde_json::Value = serde_json::from_str(&text).unwrap();
    let nets = [
        ("cifar_v2_c8_l5_aux", build("cifar", 8, 10, 5, true, "DARTS_V2")),
        ("cifar_v1_c4_l6", build("cifar", 4, 10, 6, false, "DARTS_V1")),
        ("imagenet_v2_c8_l5_aux", build("imagenet", 8, 1000, 5, true, "DARTS_V2")),
        ("cifar_fair_sparse_c4_l5_aux", fair_sparse_net(4, 5, true)),
    ];
    for (key, (_, store)) in &nets {
        let want = names[key].as_object().unwrap_or_else(|| panic!("{key} missing from names.json"));
        let ours = checkpoint::store_arrays(store);
        let missing: Vec<&String> = want.keys().filter(|k| !ours.contains_key(*k)).collect();
        let extra: Vec<&String> = ours.keys().filter(|k| !want.contains_key(*k)).collect();
        assert!(missing.is_empty() && extra.is_empty(), "{key}: missing {missing:?}\nextra {extra:?}");
        for (name, shape) in want {
            let shape: Vec<usize> = serde_json::from_value(shape.clone()).unwrap();
            assert_eq!(ours[name].shape, shape, "{key}: {name}");
        }
        eprintln!("{key}: {} tensors", ours.len());
    }
    let counts = &names["param_counts_without_aux"];
    assert_eq!(counts["cifar_darts_v2_c36_l20"], 3_349_342);
    assert_eq!(counts["cifar_darts_v1_c36_l20"], 3_169_414);
    assert_eq!(counts["imagenet_darts_v2_c48_l14"], 4_718_752);
}

/// A CIFAR network of [`eval::fair_sparse`] (FairDARTS' DCOCell).
fn fair_sparse_net(channels: usize, layers: usize, auxiliary: bool) -> (EvalNetwork, Store) {
    let config = EvalConfig { channels, layers, classes: 10, auxiliary };
    let (net, store) = NetworkCifar::new(config, &eval::fair_sparse(), DType::F64, &mut Rng::new(0)).unwrap();
    (EvalNetwork::Cifar(net), store)
}

fn step_fixture() -> Arrays {
    checkpoint::read(&dir().join("step.safetensors")).unwrap_or_else(|e| panic!("{e}")).0
}

fn out(f: &Arrays, name: &str) -> Vec<f64> {
    f[&format!("out.{name}")].data.to_f64()
}

/// The reference's state dict after the step loads strictly (every name, shape and nothing else).
#[test]
fn reference_state_dict_loads_strictly() {
    let fixture = step_fixture();
    let (_, mut store) = build("cifar", 8, 10, 5, true, "DARTS_V2");
    checkpoint::load_store(&mut store, &fixture, Path::new("step.safetensors"), true, &["out."]).unwrap();
    let w = &store.params[store.find("classifier.weight").unwrap().0].value;
    assert_eq!(w.to_f64_vec(), fixture["classifier.weight"].data.to_f64());
}

/// One fixture of `eval_torch.py step`: its network, images and labels.
struct StepCase {
    file: &'static str,
    net: (EvalNetwork, Store),
    hw: usize,
    labels: [u32; 2],
}

/// Eval-mode logits, train-mode outputs and (unless the fixture has outputs only) one training
/// step from the shared initialisation, against `case`.
fn check_step(case: StepCase) {
    let StepCase { file, net: (net, mut store), hw, labels } = case;
    let want = checkpoint::read(&dir().join(file)).unwrap_or_else(|e| panic!("{e}")).0;
    eval::shared_init(&mut store, 1);
    let before = checkpoint::store_arrays(&store);
    let x = eval::images(2, 2, hw, DType::F64);

    let (_, o, _) = net.loss(&mut store, &x, &labels, false, None, 0.4);
    assert!(o.aux.is_none(), "eval mode has no auxiliary logits");
    let e = rel_err(&o.logits.value().to_f64_vec(), &out(&want, "logits_eval"));
    assert!(e < 1e-10, "{file}: eval-mode logits: relative error {e:e}");

    let (tape, o, loss) = net.loss(&mut store, &x, &labels, true, None, 0.4);
    let e = rel_err(&o.logits.value().to_f64_vec(), &out(&want, "logits"));
    assert!(e < 1e-10, "{file}: train-mode logits: relative error {e:e}");
    assert_eq!(o.aux.is_some(), want.contains_key("out.logits_aux"), "{file}: auxiliary logits");
    if let Some(aux) = &o.aux {
        let e = rel_err(&aux.value().to_f64_vec(), &out(&want, "logits_aux"));
        assert!(e < 1e-10, "{file}: auxiliary logits: relative error {e:e}");
    }
    let (l, l_ref) = (loss.value().item(), out(&want, "loss")[0]);
    assert!((l - l_ref).abs() < 1e-12 * l_ref, "{file}: loss {l} vs {l_ref}");

    if !want.contains_key("out.grad_norm") {
        return; // an outputs-only fixture
    }
    let grads = tape.backward(&loss, Groups::WEIGHTS);
    let ids: Vec<usize> = (0..store.params.len()).collect();
    let clip = clip_grad_norm(&grads, &ids, 5.0);
    let (norm, norm_ref) = (clip.norm(), out(&want, "grad_norm")[0]);
    assert!((norm - norm_ref).abs() < 1e-10 * norm_ref, "{file}: gradient norm {norm} vs {norm_ref}");
    assert!(norm > 5.0, "{file}: the step should clip (norm {norm})");
    Sgd::new(store.params.len(), 0.9, 3e-4).step(&mut store, &grads, &ids, 0.025, Some(&clip));

    // Every tensor after the step; for the parameters also the update itself (w' − w), which the
    // values alone check only to the precision of w.
    let after = checkpoint::store_arrays(&store);
    let mut failures = Vec::new();
    let mut worst = (0.0f64, String::new());
    for (name, ours) in &after {
        let reference = want.get(name).unwrap_or_else(|| panic!("{file}: {name} missing"));
        assert_eq!(ours.shape, reference.shape, "{file}: {name}");
        let (a, b) = (ours.data.to_f64(), reference.data.to_f64());
        let e = rel_err(&a, &b);
        if e.is_nan() || e > 1e-8 {
            failures.push(format!("{name}: relative error {e:e}"));
        }
        if store.find(name).is_some() {
            let w0 = before[name].data.to_f64();
            let du: Vec<f64> = a.iter().zip(&w0).map(|(x, y)| x - y).collect();
            let du_ref: Vec<f64> = b.iter().zip(&w0).map(|(x, y)| x - y).collect();
            let e = rel_err(&du, &du_ref);
            if e > worst.0 {
                worst = (e, name.clone());
            }
            if e.is_nan() || e > 1e-8 {
                failures.push(format!("{name}: update relative error {e:e}"));
            }
        } else if let ArrayData::I64(v) = &ours.data {
            // One training forward; 0 where the reference's op never runs (it reads an isolated
            // node of a DCOCell).
            let unused = name.starts_with("cells.") && name.contains("._ops.5.4.");
            assert_eq!(v, &[i64::from(!unused)], "{file}: {name}: training forwards");
        }
    }
    eprintln!("{file}: worst update error {worst:?} over {} tensors", after.len());
    assert!(failures.is_empty(), "{file}: {} tensors differ:\n{}", failures.len(), failures.join("\n"));
}

/// DARTS_V2, C=8, 5 layers, auxiliary head (loss CE + 0.4 CE_aux), 32×32 images.
#[test]
fn darts_v2_logits_and_one_training_step_match_the_reference_in_f64() {
    check_step(StepCase {
        file: "step.safetensors",
        net: build("cifar", 8, 10, 5, true, "DARTS_V2"),
        hw: 32,
        labels: [3, 7],
    });
}

/// Every op (a `none`, a stride-2 skip, both pools and conv sizes, a three-node concat), C=4,
/// 3 layers, no head, 16×16 images.
#[test]
fn all_ops_logits_and_one_training_step_match_the_reference_in_f64() {
    let config = EvalConfig { channels: 4, layers: 3, classes: 10, auxiliary: false };
    let (net, store) = NetworkCifar::new(config, &eval::all_ops(), DType::F64, &mut Rng::new(0)).unwrap();
    check_step(StepCase {
        file: "step-all-ops.safetensors",
        net: (EvalNetwork::Cifar(net), store),
        hw: 16,
        labels: [5, 0],
    });
}

/// DARTS_V2, C=4, 3 layers: the auxiliary head follows the last cell, so the reference's in-place
/// ReLU at the head's input reaches the classifier in training. Outputs only.
#[test]
fn head_after_the_last_cell_matches_the_reference_in_f64() {
    check_step(StepCase {
        file: "outputs-l3-aux.safetensors",
        net: build("cifar", 4, 10, 3, true, "DARTS_V2"),
        hw: 32,
        labels: [1, 8],
    });
}

/// A sparse FairDARTS genotype as FairDARTS' DCOCell (a node of one input, an isolated node, a
/// node reading it whose op never runs, cells of three and two nodes), C=4, 5 layers, no head,
/// 16×16 images.
#[test]
fn fair_sparse_dco_cells_match_the_reference_in_f64() {
    check_step(StepCase {
        file: "step-fair-sparse.safetensors",
        net: fair_sparse_net(4, 5, false),
        hw: 16,
        labels: [2, 9],
    });
}
