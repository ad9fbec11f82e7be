//! `darts train --dataset imagenet` as a library, on the tiny folder tree of
//! `tests/fixtures/imagenet-tiny` (3 classes; 7 training and 4 validation images of about 40×30
//! pixels, which the 224 crops upsample): a short run, exact resume, the emulator against the
//! CPU, the configuration, and the errors for bad data.

use std::path::{Path, PathBuf};

use darts::search::run::RunError;
use darts::train::run::{run, TrainOptions};
use darts::train::{Dataset, LrSchedule, TrainConfig};
use darts::Device;

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("darts-train-imagenet-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/imagenet-tiny")
}

/// The `imagenet` preset (label smoothing 0.1, step lr, auxiliary head) at C=4, 3 cells, batch 4:
/// two steps per epoch (4 + 3 images).
fn tiny() -> TrainConfig {
    let genotype = darts::search::genotype::Genotype::from_arg("DARTS_V2").unwrap().to_python();
    TrainConfig {
        channels: 4,
        layers: 3,
        batch: 4,
        epochs: 2,
        data: fixture(),
        ..TrainConfig::imagenet(&genotype)
    }
}

fn opts(out: &Path, resume: bool, max_steps: Option<usize>, device: Device) -> TrainOptions {
    TrainOptions { out: out.into(), resume, device, max_steps, progress: false }
}

fn lines(out: &Path, kind: &str) -> Vec<serde_json::Value> {
    std::fs::read_to_string(out.join("log.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|v: &serde_json::Value| v["kind"] == kind)
        .collect()
}

fn config_error(cfg: &TrainConfig, out: &Path) -> String {
    match run(cfg, &opts(out, false, None, Device::Cpu)) {
        Err(e @ (RunError::Config(_) | RunError::Data(_))) => e.to_string(),
        Err(e) => panic!("expected a configuration or data error, got {e}"),
        Ok(_) => panic!("the run should have been refused"),
    }
}

/// Two steps (one epoch) write a checkpoint of a 3-class `NetworkImageNet` with finite, smoothed
/// losses at the preset's first learning rate; `darts eval`'s loader rebuilds the network from
/// that checkpoint and reproduces the validation the run logged after the epoch, bit for bit.
#[test]
fn a_two_step_run_writes_a_checkpoint_and_finite_losses() {
    let out = tmp("two");
    let s = run(&tiny(), &opts(&out, false, Some(2), Device::Cpu)).unwrap();
    assert!(s.interrupted && s.epochs_done == 1 && s.test_acc.len() == 1, "one epoch, then stopped");
    let steps = lines(&out, "step");
    assert_eq!(steps.len(), 2);
    for v in &steps {
        let loss = v["loss"].as_f64().unwrap();
        assert!(loss.is_finite() && loss > 0.0, "loss {loss}");
        assert_eq!(v["lr"], 0.1);
    }
    let epoch = &lines(&out, "epoch")[0];
    assert!(epoch["test_loss"].as_f64().unwrap().is_finite());
    assert_eq!(epoch["test_top5"], 1.0, "3 classes: every label is in the top 5");
    let path = out.join("checkpoint.safetensors");
    let (arrays, meta) = darts::checkpoint::read(&path).unwrap();
    assert_eq!(meta["dataset"], "imagenet");
    assert_eq!(arrays["classifier.bias"].shape, [3]);
    assert_eq!(arrays["stem0.0.weight"].shape, [2, 3, 3, 3]);
    let mut net = darts::train::run::load_checkpoint(&arrays, &meta, &path).unwrap();
    let c = net.net.config();
    assert_eq!((c.channels, c.layers, c.classes, c.auxiliary), (4, 3, 3, true));
    let (e, images) = darts::train::run::evaluate_on(&mut net, &fixture(), 4, &Device::Cpu).unwrap();
    assert_eq!(images, 4);
    assert_eq!(
        (e.loss, e.top1, e.top5),
        (epoch["test_loss"].as_f64().unwrap(), epoch["test_acc"].as_f64().unwrap(), 1.0)
    );
    let _ = std::fs::remove_dir_all(out);
}

/// Stopped after 3 steps (inside the second epoch, at lr 0.1 · 0.97) and resumed, a run ends with
/// the checkpoint of the uninterrupted run, byte for byte, and logs the same losses.
#[test]
fn resumed_training_equals_an_uninterrupted_one() {
    let cfg = tiny();
    let (a, b) = (tmp("whole"), tmp("parts"));
    let whole = run(&cfg, &opts(&a, false, None, Device::Cpu)).unwrap();
    assert!(!whole.interrupted && whole.epochs_done == 2 && whole.test_top5.len() == 2);
    let part = run(&cfg, &opts(&b, false, Some(3), Device::Cpu)).unwrap();
    assert!(part.interrupted && part.epochs_done == 1);
    let rest = run(&cfg, &opts(&b, true, None, Device::Cpu)).unwrap();
    assert!(!rest.interrupted && rest.epochs_done == 2);
    let (la, lb) = (lines(&a, "step"), lines(&b, "step"));
    assert_eq!(la.len(), 4);
    let losses = |l: &[serde_json::Value]| l.iter().map(|v| v["loss"].clone()).collect::<Vec<_>>();
    assert_eq!(losses(&la), losses(&lb));
    assert_eq!(la[3]["lr"], 0.1 * 0.97, "the step schedule in the second epoch");
    let ck = |d: &Path| std::fs::read(d.join("checkpoint.safetensors")).unwrap();
    assert!(ck(&a) == ck(&b), "the resumed run's checkpoint differs");
    let (ea, eb) = (&lines(&a, "epoch")[1], &lines(&b, "epoch")[1]);
    for k in ["test_loss", "test_acc", "test_top5"] {
        assert_eq!(ea[k], eb[k], "{k} after the second epoch");
    }
    for d in [a, b] {
        let _ = std::fs::remove_dir_all(d);
    }
}

/// The first step on the emulator (the `.cu` kernels, label smoothing included) gives the CPU's
/// loss: the same weights, batch and augmentation, f32 both.
#[cfg(feature = "emu")]
#[test]
fn a_training_step_on_the_emulator_matches_the_cpu() {
    let cfg = TrainConfig { batch: 2, ..tiny() };
    let rt = std::sync::Arc::new(darts::backend::gpu::emu::EmuRuntime::new(0, 0));
    let (a, b) = (tmp("cpu"), tmp("emu"));
    run(&cfg, &opts(&a, false, Some(1), Device::Cpu)).unwrap();
    run(&cfg, &opts(&b, false, Some(1), Device::Gpu(rt))).unwrap();
    let (x, y) =
        (lines(&a, "step")[0]["loss"].as_f64().unwrap(), lines(&b, "step")[0]["loss"].as_f64().unwrap());
    assert!((x - y).abs() <= 1e-5 * x.abs(), "loss: CPU {x}, emulator {y}");
    for d in [a, b] {
        let _ = std::fs::remove_dir_all(d);
    }
}

/// Configurations saved before the ImageNet fields existed load as CIFAR-10 runs with the cosine
/// schedule and no smoothing; the preset has the reference's ImageNet values.
#[test]
fn old_configs_load_as_cifar_and_the_preset_is_the_references() {
    let mut v = serde_json::to_value(TrainConfig::paper("DARTS_V2")).unwrap();
    for k in ["dataset", "label_smoothing", "lr_schedule", "lr_gamma", "image_size"] {
        v.as_object_mut().unwrap().remove(k).expect(k);
    }
    let old: TrainConfig = serde_json::from_value(v).unwrap();
    assert_eq!(old, TrainConfig::paper("DARTS_V2"));
    assert_eq!(
        (old.dataset, old.lr_schedule, old.label_smoothing),
        (Dataset::Cifar10, LrSchedule::Cosine, 0.0)
    );

    let c = TrainConfig::imagenet("DARTS_V2");
    assert_eq!((c.channels, c.layers, c.batch, c.epochs, c.image_size), (48, 14, 128, 250, 224));
    assert_eq!((c.lr, c.lr_gamma, c.weight_decay, c.momentum, c.grad_clip), (0.1, 0.97, 3e-5, 0.9, 5.0));
    assert_eq!((c.label_smoothing, c.auxiliary, c.auxiliary_weight), (0.1, true, 0.4));
    assert_eq!(
        (c.drop_path, c.cutout, c.dataset, c.lr_schedule),
        (0.0, 0, Dataset::Imagenet, LrSchedule::Step)
    );
    assert_eq!(c.lr_at(0), 0.1);
    assert_eq!(c.lr_at(3), 0.1 * 0.97f64.powi(3));
    let json = serde_json::to_value(&c).unwrap();
    assert_eq!((json["dataset"].as_str(), json["lr_schedule"].as_str()), (Some("imagenet"), Some("step")));
}

/// A tree without train/ or val/, a CIFAR-10 directory, an image size the network cannot pool
/// and a CIFAR-only option are refused before anything is written.
#[test]
fn bad_data_and_options_are_refused_with_clear_errors() {
    let out = tmp("bad");
    let root = tmp("tree");
    let class = root.join("train/n01440764");
    std::fs::create_dir_all(&class).unwrap();
    let jpeg = fixture().join("train/n01440764/n01440764_10026.JPEG");
    std::fs::copy(&jpeg, class.join("a.JPEG")).unwrap();
    let err = config_error(&TrainConfig { data: root.clone(), ..tiny() }, &out);
    assert!(err.contains("val does not exist") && err.contains("val/<class>/*.JPEG"), "missing val/: {err}");

    std::fs::rename(root.join("train"), root.join("val")).unwrap();
    let err = config_error(&TrainConfig { data: root.clone(), ..tiny() }, &out);
    assert!(
        err.contains("train does not exist") && err.contains("train/<class>/*.JPEG"),
        "missing train/: {err}"
    );

    let cifar = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/sample");
    let err = config_error(&TrainConfig { data: cifar, ..tiny() }, &out);
    assert!(err.contains("data/sample/train does not exist"), "a CIFAR-10 directory: {err}");

    let err = config_error(&TrainConfig { image_size: 256, ..tiny() }, &out);
    assert!(err.contains("--image-size 256") && err.contains("224"), "{err}");
    let err = config_error(&TrainConfig { cutout: 16, ..tiny() }, &out);
    assert!(err.contains("--cutout"), "{err}");
    let err = config_error(&TrainConfig { train_images: Some(4), ..tiny() }, &out);
    assert!(err.contains("--train-images"), "{err}");
    assert!(!out.exists(), "a refused run writes nothing");
    assert!("mnist".parse::<Dataset>().unwrap_err().contains("expected cifar10 or imagenet"));
    let _ = std::fs::remove_dir_all(root);
}
