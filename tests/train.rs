//! `darts train` as a library: exact resume, the emulator against the CPU, and the data it
//! trains on (cutout drawn per image).

use std::path::{Path, PathBuf};

use darts::data::{EpochSampler, Sampler};
use darts::train::run::{run, TrainOptions};
use darts::train::TrainConfig;
use darts::Device;

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("darts-train-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// DARTS_V2 at C=2, 3 cells, batch 4 on 8 images: two steps per epoch, drop path active in the
/// second epoch (its probability is 0 at epoch 0).
fn tiny() -> TrainConfig {
    let genotype = darts::search::genotype::Genotype::from_arg("DARTS_V2").unwrap().to_python();
    TrainConfig {
        channels: 2,
        layers: 3,
        batch: 4,
        epochs: 2,
        train_images: Some(8),
        test_images: Some(8),
        drop_path: 0.3,
        data: Path::new(env!("CARGO_MANIFEST_DIR")).join("data/sample"),
        ..TrainConfig::paper(&genotype)
    }
}

fn opts(out: &Path, resume: bool, max_steps: Option<usize>, device: Device) -> TrainOptions {
    TrainOptions { out: out.into(), resume, device, max_steps, progress: false }
}

fn step_lines(out: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(out.join("log.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|v: &serde_json::Value| v["kind"] == "step")
        .collect()
}

/// Stopped after 3 steps (inside the second epoch, drop path on) and resumed, a run ends with
/// the checkpoint of the uninterrupted run, byte for byte, and logs the same losses.
#[test]
fn resumed_training_equals_an_uninterrupted_one() {
    let cfg = tiny();
    let (a, b) = (tmp("whole"), tmp("parts"));
    let whole = run(&cfg, &opts(&a, false, None, Device::Cpu)).unwrap();
    assert!(!whole.interrupted && whole.epochs_done == 2 && whole.test_acc.len() == 2);
    let part = run(&cfg, &opts(&b, false, Some(3), Device::Cpu)).unwrap();
    assert!(part.interrupted && part.epochs_done == 1);
    let rest = run(&cfg, &opts(&b, true, None, Device::Cpu)).unwrap();
    assert!(!rest.interrupted && rest.epochs_done == 2);
    let (la, lb) = (step_lines(&a), step_lines(&b));
    assert_eq!(la.len(), 4);
    assert_eq!(
        la.iter().map(|v| v["loss"].clone()).collect::<Vec<_>>(),
        lb.iter().map(|v| v["loss"].clone()).collect::<Vec<_>>()
    );
    assert_eq!(la[3]["drop_path"], 0.15, "drop path p · epoch / epochs in the second epoch");
    assert_eq!(la[0]["drop_path"], 0.0, "no drop path at epoch 0");
    let ck = |d: &Path| std::fs::read(d.join("checkpoint.safetensors")).unwrap();
    assert!(ck(&a) == ck(&b), "the resumed run's checkpoint differs");
    for d in [a, b] {
        let _ = std::fs::remove_dir_all(d);
    }
}

/// The first step on the emulator gives the CPU's loss (the same weights and batch; f32 both),
/// and the run writes a checkpoint `darts eval` recognises.
#[cfg(feature = "emu")]
#[test]
fn a_training_step_on_the_emulator_matches_the_cpu() {
    let cfg = tiny();
    let rt = std::sync::Arc::new(darts::backend::gpu::emu::EmuRuntime::new(0, 0));
    let (a, b) = (tmp("cpu"), tmp("emu"));
    run(&cfg, &opts(&a, false, Some(2), Device::Cpu)).unwrap();
    run(&cfg, &opts(&b, false, Some(2), Device::Gpu(rt))).unwrap();
    let (la, lb) = (step_lines(&a), step_lines(&b));
    for (x, y) in la.iter().zip(&lb) {
        let (x, y) = (x["loss"].as_f64().unwrap(), y["loss"].as_f64().unwrap());
        assert!((x - y).abs() <= 1e-5 * x.abs(), "loss: CPU {x}, emulator {y}");
    }
    let (_, meta) = darts::checkpoint::read(&b.join("checkpoint.safetensors")).unwrap();
    assert_eq!(meta["format"], darts::train::run::FORMAT);
    for d in [a, b] {
        let _ = std::fs::remove_dir_all(d);
    }
}

/// With cutout on, every augmented image of a training batch carries a cutout of the given side
/// with its centre inside the image, drawn from the sampler's stream (a seed fixes it).
#[test]
fn training_batches_draw_a_cutout_per_image() {
    let mut s = EpochSampler::new((0..10).collect(), 5, true, 3).unwrap().with_cutout(16);
    let mut again = EpochSampler::new((0..10).collect(), 5, true, 3).unwrap().with_cutout(16);
    for _ in 0..3 {
        let plan = s.next_plan();
        assert_eq!(plan, again.next_plan());
        for p in plan.aug.unwrap() {
            let c = p.cutout.expect("a cutout per image");
            assert!(c.len == 16 && c.y < 32 && c.x < 32, "{c:?}");
        }
    }
    let plain = EpochSampler::new((0..10).collect(), 5, true, 3).unwrap().next_plan();
    assert!(plain.aug.unwrap().iter().all(|p| p.cutout.is_none()), "no cutout unless asked");
}

/// A sparse FairDARTS genotype trains as FairDARTS' DCOCell (a node of one input, an isolated
/// node, cells of different widths), with drop path on each node's sum in the second epoch; the
/// checkpoint holds its ops under the reference's `_ops.<node>.<input>.<k>` names.
#[test]
fn a_sparse_fair_darts_genotype_trains_as_dco_cells() {
    let genotype =
        "Genotype(normal=[('sep_conv_3x3', 2, 0), ('skip_connect', 2, 1), ('dil_conv_3x3', 3, 2)], \
                    normal_concat=range(2, 6), reduce=[('skip_connect', 2, 0), ('max_pool_3x3', 4, 1)], \
                    reduce_concat=range(2, 6))";
    let cfg = TrainConfig { genotype: genotype.into(), ..tiny() };
    let out = tmp("sparse");
    let r = run(&cfg, &opts(&out, false, None, Device::Cpu)).unwrap();
    assert!(!r.interrupted && r.epochs_done == 2);
    let steps = step_lines(&out);
    assert_eq!(steps.len(), 4);
    assert!(steps.iter().all(|v| v["loss"].as_f64().is_some_and(f64::is_finite)), "{steps:?}");
    assert_eq!(steps[3]["drop_path"], 0.15);
    let (arrays, _) = darts::checkpoint::read(&out.join("checkpoint.safetensors")).unwrap();
    for name in [
        "cells.0._ops.2.0.0.op.1.weight",
        "cells.0._ops.3.2.0.op.1.weight",
        "cells.1._ops.2.0.0.conv_1.weight",
    ] {
        assert!(arrays.keys().any(|k| k.ends_with(name)), "{name} missing");
    }
    let _ = std::fs::remove_dir_all(out);
}
