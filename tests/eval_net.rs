//! The evaluation network (`model.py` `NetworkCIFAR` / `NetworkImageNet`): the published
//! parameter counts, genotype input and its errors, drop path, forwards of both networks, and
//! whole-network gradients against finite differences in f64.

mod eval;

use darts::autograd::check::rel_err;
use darts::autograd::{Groups, ParamId, Tape};
use darts::model::eval::ops::{drop_path, Masks};
use darts::model::eval::{
    count_without_aux, drop_path_prob, DropPath, EvalConfig, EvalNetwork, NetworkCifar, NetworkImageNet,
};
use darts::model::{NetConfig, Network};
use darts::nn::Store;
use darts::rng::Rng;
use darts::search::genotype::Genotype;
use darts::search::genotypes::GenotypeError;
use darts::{DType, Device, Tensor};

fn cifar(name: &str, channels: usize, layers: usize, auxiliary: bool) -> (NetworkCifar, darts::nn::Store) {
    let config = EvalConfig { channels, layers, classes: 10, auxiliary };
    NetworkCifar::new(config, &Genotype::published(name).unwrap(), DType::F32, &mut Rng::new(0)).unwrap()
}

#[test]
fn darts_v2_cifar_has_3349342_parameters_without_the_auxiliary_head() {
    let (_, store) = cifar("DARTS_V2", 36, 20, true);
    assert_eq!(count_without_aux(&store), 3_349_342);
    // The head (C_aux = 576) is there, and is all that the count leaves out.
    assert_eq!(store.count(Groups::WEIGHTS) - count_without_aux(&store), 476_426);
    let (_, no_head) = cifar("DARTS_V2", 36, 20, false);
    assert_eq!(no_head.count(Groups::WEIGHTS), 3_349_342);
}

#[test]
fn darts_v1_cifar_has_3169414_parameters() {
    let (_, store) = cifar("DARTS_V1", 36, 20, true);
    assert_eq!(count_without_aux(&store), 3_169_414);
}

#[test]
fn darts_v2_imagenet_has_4718752_parameters() {
    let config = EvalConfig { channels: 48, layers: 14, classes: 1000, auxiliary: true };
    let g = Genotype::published("DARTS").unwrap();
    let (_, store) = NetworkImageNet::new(config, &g, DType::F32, &mut Rng::new(0)).unwrap();
    assert_eq!(count_without_aux(&store), 4_718_752);
}

#[test]
fn search_network_still_has_1930618_weights() {
    let (_, store) = Network::new(NetConfig::default(), DType::F32, &mut Rng::new(2));
    assert_eq!(store.count(Groups::WEIGHTS), 1_930_618);
}

// ---- genotype input ----

const V2_PY: &str = "DARTS_V2 = Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), \
    ('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 1), ('skip_connect', 0), \
    ('skip_connect', 0), ('dil_conv_3x3', 2)], normal_concat=[2, 3, 4, 5], \
    reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1), \
    ('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)], \
    reduce_concat=[2, 3, 4, 5])";

#[test]
fn published_names_python_notation_and_json_give_the_same_genotype() {
    let v2 = Genotype::published("DARTS_V2").unwrap();
    assert_eq!(Genotype::published("DARTS").unwrap(), v2, "DARTS is an alias of DARTS_V2");
    assert_ne!(Genotype::published("DARTS_V1").unwrap(), v2);
    assert_eq!(Genotype::parse("DARTS_V2").unwrap(), v2);
    assert_eq!(Genotype::parse(V2_PY).unwrap(), v2, "genotypes.py notation");
    assert_eq!(Genotype::parse(&v2.to_python()).unwrap(), v2, "namedtuple repr with range(2, 6)");
    assert_eq!(Genotype::parse(&v2.to_json()).unwrap(), v2, "genotype.json");
    // A file, as `darts train --genotype runs/X/genotype.json` will pass it.
    let path = std::env::temp_dir().join(format!("darts-eval-genotype-{}.json", std::process::id()));
    std::fs::write(&path, Genotype::published("DARTS_V1").unwrap().to_json()).unwrap();
    assert_eq!(Genotype::from_arg(path.to_str().unwrap()).unwrap(), Genotype::published("DARTS_V1").unwrap());
    std::fs::remove_file(&path).unwrap();
}

fn err(text: &str) -> (GenotypeError, String) {
    let e = Genotype::parse(text).unwrap_err();
    let msg = e.to_string();
    (e, msg)
}

#[test]
fn bad_genotypes_are_errors_that_name_the_bad_input() {
    let (e, msg) = err("DARTS_V3");
    assert!(matches!(e, GenotypeError::UnknownName { .. }), "{e:?}");
    assert!(msg.contains("DARTS_V3") && msg.contains("DARTS_V1, DARTS_V2, DARTS"), "{msg}");

    let (e, msg) = err(&V2_PY.replacen("'dil_conv_3x3'", "'dil_conv_7x7'", 1));
    assert_eq!(e, GenotypeError::UnknownOp { cell: "normal", gene: 7, op: "dil_conv_7x7".into() });
    assert!(msg.contains("dil_conv_7x7") && msg.contains("sep_conv_5x5"), "lists the primitives: {msg}");

    // Gene 2 belongs to node 1, which reads states 0..=2.
    let (e, msg) = err(&V2_PY.replacen("('skip_connect', 2)", "('skip_connect', 3)", 1));
    assert_eq!(e, GenotypeError::InputOutOfRange { cell: "reduce", gene: 2, input: 3 });
    assert!(msg.contains("reduce gene 2") && msg.contains("input 3"), "{msg}");

    let (e, msg) = err(&V2_PY.replacen("('max_pool_3x3', 1)], ", "], ", 1));
    assert_eq!(e, GenotypeError::WrongCount { cell: "reduce", count: 7 });
    assert!(msg.contains("7 genes"), "{msg}");

    let (e, msg) = err(&V2_PY.replacen("normal_concat=[2, 3, 4, 5]", "normal_concat=range(2, 7)", 1));
    assert!(matches!(e, GenotypeError::BadConcat { field: "normal_concat", .. }), "{e:?}");
    assert!(msg.contains("[2, 3, 4, 5, 6]"), "{msg}");

    let (e, msg) = err(&V2_PY.replacen("reduce_concat=[2, 3, 4, 5]", "reduce_kat=[2]", 1));
    assert!(matches!(e, GenotypeError::Syntax(_)) && msg.contains("reduce_kat"), "{msg}");
    let (_, msg) = err(r#"{"normal": [["sep_conv_3x3", 0]], "normal_concat": [2]}"#);
    assert!(msg.contains("genotype JSON") && msg.contains("reduce"), "{msg}");
    let (_, msg) = err("sep_conv_3x3 0 1");
    assert!(msg.contains("not a genotype"), "{msg}");

    // The network builders refuse an invalid genotype rather than building a wrong network.
    let mut bad = Genotype::published("DARTS").unwrap();
    bad.normal[0].1 = 2;
    let config = EvalConfig { channels: 4, layers: 3, classes: 10, auxiliary: false };
    let e = NetworkCifar::new(config, &bad, DType::F32, &mut Rng::new(0)).unwrap_err();
    assert_eq!(e, GenotypeError::InputOutOfRange { cell: "normal", gene: 0, input: 2 });
}

// ---- drop path ----

#[test]
fn drop_path_probability_follows_the_schedule_and_is_zero_at_epoch_zero() {
    assert_eq!(drop_path_prob(0.2, 0, 600), 0.0);
    assert_eq!(drop_path_prob(0.2, 300, 600), 0.1);
    assert!((drop_path_prob(0.2, 599, 600) - 0.2 * 599.0 / 600.0).abs() < 1e-17);
}

#[test]
fn drop_path_zeroes_a_sample_or_scales_it_by_exactly_one_over_keep() {
    for dtype in [DType::F64, DType::F32] {
        let n = 16;
        let x = Tensor::from_f64(&[n, 3, 4, 5], &Rng::new(1).normals(n * 60), dtype);
        let (prob, keep) = (0.3, 0.7);
        let run = |seed: u64| {
            let tape = Tape::new();
            let xv = tape.param(ParamId(0), Groups::INPUTS, x.clone());
            let mut rng = Rng::new(seed);
            let mut masks = Masks::draw(&mut DropPath { prob, rng: &mut rng }, 1, n, dtype, &Device::Cpu);
            let y = drop_path(&xv, &mut masks);
            assert!(masks.exhausted());
            let dy = Tensor::full(&[n, 3, 4, 5], 1.0, dtype);
            let g = tape.backward_with_seed(&y, dy, Groups::INPUTS);
            (y.value().to_f64_vec(), g.get(ParamId(0)).unwrap().to_f64_vec())
        };
        let (y, dx) = run(5);
        assert_eq!(run(5).0, y, "the same seed draws the same mask");
        let xs = x.to_f64_vec();
        // What the op computes: x · (1 / keep) in the tensor's dtype.
        let scaled: Vec<f64> = match dtype {
            DType::F64 => xs.iter().map(|v| v * (1.0 / keep)).collect(),
            DType::F32 => xs.iter().map(|&v| ((v as f32) * (1.0 / keep) as f32) as f64).collect(),
        };
        let (mut kept, mut dropped) = (0, 0);
        for b in 0..n {
            let r = b * 60..(b + 1) * 60;
            if y[r.clone()].iter().all(|&v| v == 0.0) {
                dropped += 1;
                assert!(dx[r].iter().all(|&g| g == 0.0), "sample {b}: dropped, so no gradient");
            } else {
                kept += 1;
                assert_eq!(&y[r.clone()], &scaled[r.clone()], "sample {b}: kept, scaled by exactly 1/keep");
                let s = if dtype == DType::F32 { (1.0 / keep) as f32 as f64 } else { 1.0 / keep };
                assert!(dx[r].iter().all(|&g| g == s), "sample {b}: gradient 1/keep times dy = 1");
            }
        }
        assert!(kept > 0 && dropped > 0, "{dtype}: kept {kept}, dropped {dropped} of {n}");
    }
}

fn small_cifar(genotype: &Genotype, channels: usize, auxiliary: bool, dtype: DType) -> (EvalNetwork, Store) {
    let config = EvalConfig { channels, layers: 3, classes: 10, auxiliary };
    let (net, store) = NetworkCifar::new(config, genotype, dtype, &mut Rng::new(3)).unwrap();
    (EvalNetwork::Cifar(net), store)
}

/// Logits of a forward; `drop` = (probability, seed); returns them with the generator's state
/// after the forward.
fn logits(
    net: &EvalNetwork,
    store: &Store,
    x: &Tensor,
    training: bool,
    drop: Option<(f64, u64)>,
) -> (Vec<f64>, [u64; 4]) {
    let mut store = store.clone();
    let mut rng = Rng::new(drop.map_or(0, |d| d.1));
    let dp = drop.map(|(prob, _)| DropPath { prob, rng: &mut rng });
    let (_, out, _) = net.loss(&mut store, x, &[1, 2], training, dp, 0.4);
    let v = out.logits.value().to_f64_vec();
    (v, rng.state())
}

#[test]
fn drop_path_in_the_network_applies_in_training_with_a_positive_probability_only() {
    let (net, store) = small_cifar(&eval::all_ops(), 4, false, DType::F64);
    let x = eval::images(4, 2, 8, DType::F64);
    let untouched = Rng::new(7).state();
    let (plain, _) = logits(&net, &store, &x, true, None);
    // Epoch 0: probability 0, nothing dropped, no draw made.
    let (p0, s0) = logits(&net, &store, &x, true, Some((drop_path_prob(0.2, 0, 600), 7)));
    assert_eq!((p0, s0), (plain.clone(), untouched));
    // Eval mode ignores drop path.
    let (e, s) = logits(&net, &store, &x, false, Some((0.3, 7)));
    assert_eq!((e, s), (logits(&net, &store, &x, false, None).0, untouched));
    // Training at 0.3: a seed fixes the masks; the output differs from the undropped one.
    let (d1, s1) = logits(&net, &store, &x, true, Some((0.3, 7)));
    let (d2, _) = logits(&net, &store, &x, true, Some((0.3, 7)));
    assert_eq!(d1, d2, "same seed, same masks");
    assert_ne!(s1, untouched, "masks were drawn");
    assert_ne!(d1, plain, "something was dropped");
}

#[test]
fn both_networks_give_logits_and_auxiliary_logits_in_training_only() {
    let (net, mut store) = small_cifar(&eval::all_ops(), 4, true, DType::F32);
    let x = eval::images(5, 2, 32, DType::F32);
    let (_, out, _) = net.loss(&mut store, &x, &[0, 9], true, None, 0.4);
    assert_eq!(out.logits.shape(), &[2, 10]);
    assert_eq!(out.aux.as_ref().map(|a| a.shape().to_vec()), Some(vec![2, 10]));
    let (_, out, _) = net.loss(&mut store, &x, &[0, 9], false, None, 0.4);
    assert!(out.aux.is_none());

    let config = EvalConfig { channels: 4, layers: 5, classes: 7, auxiliary: true };
    let (net, mut store) =
        NetworkImageNet::new(config, &Genotype::published("DARTS_V1").unwrap(), DType::F32, &mut Rng::new(1))
            .unwrap();
    let net = EvalNetwork::ImageNet(net);
    let x = eval::images(6, 2, 224, DType::F32);
    let mut rng = Rng::new(2);
    let drop = DropPath { prob: 0.1, rng: &mut rng };
    let (_, out, loss) = net.loss(&mut store, &x, &[0, 6], true, Some(drop), 0.4);
    assert_eq!(out.logits.shape(), &[2, 7]);
    assert_eq!(out.aux.as_ref().map(|a| a.shape().to_vec()), Some(vec![2, 7]));
    assert!(loss.value().item().is_finite());
}

#[test]
#[should_panic(expected = "AvgPool2d(7) before the classifier needs 7×7")]
fn imagenet_network_names_a_wrong_image_size() {
    let config = EvalConfig { channels: 4, layers: 3, classes: 10, auxiliary: false };
    let g = Genotype::published("DARTS").unwrap();
    let (net, mut store) = NetworkImageNet::new(config, &g, DType::F32, &mut Rng::new(1)).unwrap();
    let x = eval::images(1, 1, 64, DType::F32);
    EvalNetwork::ImageNet(net).loss(&mut store, &x, &[0], false, None, 0.4);
}

/// Whole-network gradients in f64 against central differences: for every parameter tensor, the
/// derivative of the training loss (CE + 0.4 CE_aux, drop path 0.3 with fixed masks) along a
/// random direction in that tensor.
#[test]
fn gradients_match_finite_differences_along_random_directions() {
    let (net, store) = small_cifar(&eval::all_ops(), 2, true, DType::F64);
    let x = eval::images(8, 2, 32, DType::F64);
    let labels = [4u32, 1];
    let loss_of = |store: &Store| {
        let mut store = store.clone();
        let mut rng = Rng::new(7);
        let drop = DropPath { prob: 0.3, rng: &mut rng };
        net.loss(&mut store, &x, &labels, true, Some(drop), 0.4)
    };
    let (tape, _, loss) = loss_of(&store);
    let grads = tape.backward(&loss, Groups::WEIGHTS);
    let mut rng = Rng::new(11);
    // A small step: with batch 2 the ReLU, max-pool and BN kinks lie close enough that steps of
    // 1e-5 and 1e-6 along a dense direction cross some (errors of 1e-1 and 2.5e-5 there); at 1e-7
    // the f64 rounding of the loss (~3e-9 absolute in the quotient) stays far below the smallest
    // directional derivative here (~6e-4).
    let h = 1e-7;
    let mut worst = (0.0f64, String::new());
    for (i, p) in store.params.iter().enumerate() {
        let w = p.value.to_f64_vec();
        let dir = rng.normals(w.len());
        let g = grads.get(ParamId(i)).unwrap_or_else(|| panic!("{}: no gradient", p.name)).to_f64_vec();
        let analytic: f64 = g.iter().zip(&dir).map(|(a, b)| a * b).sum();
        let at = |t: f64| {
            let mut s = store.clone();
            let v: Vec<f64> = w.iter().zip(&dir).map(|(a, d)| a + t * d).collect();
            s.params[i].value = Tensor::from_f64(p.value.shape(), &v, DType::F64);
            loss_of(&s).2.value().item()
        };
        let numeric = (at(h) - at(-h)) / (2.0 * h);
        let e = rel_err(&[analytic], &[numeric]);
        if e > worst.0 {
            worst = (e, p.name.clone());
        }
        assert!(
            e < 1e-5,
            "{}: directional derivative {analytic:e} vs {numeric:e}, relative error {e:e}",
            p.name
        );
    }
    eprintln!("worst of {} tensors: {worst:?}", store.params.len());
}
