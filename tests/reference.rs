//! The search network against the PyTorch reference (`tests/fixtures/`, made by
//! `scripts/make-fixtures.sh` from `../shared/bench/darts_torch.py`): parameter count, tensor
//! names and shapes, and logits from the reference's own initial weights, in f64 and f32.

use std::path::Path;

use darts::autograd::Groups;
use darts::checkpoint::{self, Array, ArrayData};
use darts::data::{eval_batches, Cifar10};
use darts::model::{NetConfig, Network};
use darts::rng::Rng;
use darts::{DType, Tensor};

fn fixture(rel: &str) -> checkpoint::Arrays {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(rel);
    checkpoint::read(&path).unwrap_or_else(|e| panic!("{e}")).0
}

/// The first `n` test images of the shipped sample, normalised by the data pipeline (the same
/// images the reference's `eval` saw).
fn test_images(n: usize, dtype: DType) -> Tensor {
    let data = Cifar10::open(Path::new(env!("CARGO_MANIFEST_DIR")).join("data/sample")).unwrap();
    let batch = eval_batches(data.test(), 0..n, n, dtype).next().unwrap();
    batch.images
}

fn small_net(dtype: DType) -> (Network, darts::nn::Store) {
    Network::new(
        NetConfig { channels: 2, layers: 5, classes: 10, ..Default::default() },
        dtype,
        &mut Rng::new(0),
    )
}

fn rel(a: &[f64], b: &[f64]) -> f64 {
    darts::autograd::check::rel_err(a, b)
}

#[test]
fn search_network_at_paper_size_has_1930618_weights() {
    let (_, store) = Network::new(NetConfig::default(), DType::F32, &mut Rng::new(2));
    assert_eq!(store.count(Groups::WEIGHTS), 1_930_618);
    assert_eq!(store.count(Groups::ARCH), 2 * 14 * 8);
}

#[test]
fn names_and_shapes_match_the_reference_state_dict() {
    let reference = fixture("f64/init.safetensors");
    let (_, store) = small_net(DType::F64);
    let ours = checkpoint::store_arrays(&store);
    let missing: Vec<&String> = reference.keys().filter(|k| !ours.contains_key(*k)).collect();
    let extra: Vec<&String> = ours.keys().filter(|k| !reference.contains_key(*k)).collect();
    assert!(missing.is_empty() && extra.is_empty(), "missing {missing:?}\nextra {extra:?}");
    assert_eq!(ours.len(), 2652);
    for (k, a) in &reference {
        assert_eq!(a.shape, ours[k].shape, "{k}");
        let same_kind = matches!(
            (&a.data, &ours[k].data),
            (ArrayData::I64(_), ArrayData::I64(_)) | (ArrayData::F64(_), ArrayData::F64(_))
        );
        assert!(same_kind, "{k}: dtype differs");
    }
}

fn logits(dtype: DType, training: bool) -> Vec<f64> {
    let dir = if dtype == DType::F64 { "f64" } else { "f32" };
    let (net, mut store) = small_net(dtype);
    let init = fixture(&format!("{dir}/init.safetensors"));
    checkpoint::load_store(&mut store, &init, Path::new("init"), true, &[]).unwrap();
    let x = test_images(4, dtype);
    let (_, logits, _) = net.loss(&mut store, &x, &[3, 8, 8, 0], training);
    logits.value().to_f64_vec()
}

fn want(dtype: DType, which: &str) -> Vec<f64> {
    let dir = if dtype == DType::F64 { "f64" } else { "f32" };
    let Array { data, shape } =
        fixture(&format!("{dir}/logits-{which}-bn.safetensors")).remove("logits").unwrap();
    assert_eq!(shape, vec![4, 10]);
    data.to_f64()
}

#[test]
fn logits_match_the_reference_in_f64() {
    let e_train = rel(&logits(DType::F64, true), &want(DType::F64, "train"));
    let e_eval = rel(&logits(DType::F64, false), &want(DType::F64, "eval"));
    assert!(e_train < 1e-10, "train-mode BN logits: relative error {e_train:e}");
    assert!(e_eval < 1e-10, "eval-mode BN logits: relative error {e_eval:e}");
}

#[test]
fn logits_match_the_reference_in_f32() {
    let e_train = rel(&logits(DType::F32, true), &want(DType::F32, "train"));
    let e_eval = rel(&logits(DType::F32, false), &want(DType::F32, "eval"));
    assert!(e_train < 1e-4, "train-mode BN logits: relative error {e_train:e}");
    assert!(e_eval < 1e-4, "eval-mode BN logits: relative error {e_eval:e}");
}

#[test]
fn strict_loading_names_every_problem() {
    let mut init = fixture("f64/init.safetensors");
    init.remove("stem.0.weight");
    init.insert("bogus.weight".into(), Array { shape: vec![1], data: ArrayData::F64(vec![0.0]) });
    init.get_mut("classifier.bias").unwrap().shape = vec![11];
    let (_, mut store) = small_net(DType::F64);
    let err = checkpoint::load_store(&mut store, &init, Path::new("x.safetensors"), true, &[])
        .unwrap_err()
        .to_string();
    assert!(err.contains("missing stem.0.weight"), "{err}");
    assert!(err.contains("unexpected bogus.weight"), "{err}");
    assert!(err.contains("classifier.bias: shape [11]"), "{err}");
}
