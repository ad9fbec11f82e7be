//! The search's hyperparameters and collapse diagnostics, through the library on the shipped
//! sample (CPU, tiny networks): every hyperparameter reaches the step and changes the run, cutout
//! reaches the weight batches only, `report_freq` thins the step lines, the epoch lines carry
//! diagnostics that agree with the logged genotype and alphas, old config.json files load, and
//! bad values are errors naming their flag.

use std::path::{Path, PathBuf};

use darts::model::{NetConfig, Network};
use darts::rng::Rng;
use darts::search::diagnostics::Diagnostics;
use darts::search::run::{run, RunError, RunOptions, SearchConfig};
use darts::search::state_io::state_arrays;
use darts::{DType, Device};

fn tiny(train_images: usize, epochs: usize) -> SearchConfig {
    SearchConfig {
        preset: "test".into(),
        channels: 2,
        layers: 3,
        batch: 4,
        epochs,
        seed: 5,
        train_images: Some(train_images),
        data: Path::new(env!("CARGO_MANIFEST_DIR")).join("data/sample"),
        ..SearchConfig::paper()
    }
}

fn opts(out: &Path, max_steps: Option<usize>) -> RunOptions {
    RunOptions {
        out: out.into(),
        resume: false,
        init: None,
        device: Device::Cpu,
        max_steps,
        progress: false,
        graph: darts::search::stepper::GraphMode::Off,
    }
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("darts-diag-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn log_lines(out: &Path, kind: &str) -> Vec<serde_json::Value> {
    std::fs::read_to_string(out.join("log.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["kind"] == kind)
        .collect()
}

fn count(s: &str, pat: &str) -> usize {
    s.matches(pat).count()
}

#[test]
fn epoch_lines_carry_diagnostics_consistent_with_the_genotype_and_alphas() {
    let out = tmp("epochs");
    run(&tiny(8, 2), &opts(&out, None)).unwrap();
    let epochs = log_lines(&out, "epoch");
    assert_eq!(epochs.len(), 2);
    for e in &epochs {
        let d = &e["diagnostics"];
        let g = e["genotype"].as_str().unwrap();
        let (normal, reduce) = g.split_once("reduce=").unwrap();
        for (cell, genes) in [("normal", normal), ("reduce", reduce)] {
            let c = &d[cell];
            assert_eq!(c["skip_connect"].as_u64().unwrap() as usize, count(genes, "'skip_connect'"), "{e}");
            let free = ["'skip_connect'", "'max_pool_3x3'", "'avg_pool_3x3'", "'none'"];
            let want: usize = free.iter().map(|p| count(genes, p)).sum();
            assert_eq!(c["parameter_free"].as_u64().unwrap() as usize, want, "{e}");
            let h: Vec<f64> = c["entropy"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
            assert_eq!(h.len(), 14);
            assert!(h.iter().all(|&x| (0.0..=8f64.ln() + 1e-12).contains(&x)), "{h:?}");
            let mean = c["mean_entropy"].as_f64().unwrap();
            assert!((mean - h.iter().sum::<f64>() / 14.0).abs() < 1e-12);
        }
        // The same numbers as the alphas file of that epoch give.
        let a: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(
                out.join(format!("alphas/epoch_{:03}.json", e["epoch"].as_u64().unwrap())),
            )
            .unwrap(),
        )
        .unwrap();
        let v =
            |k: &str| -> Vec<f64> { a[k].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect() };
        // (JSON's decimal text round-trips f64 to within an ulp, not always exactly.)
        let again = Diagnostics::from_alphas(&v("alphas_normal"), &v("alphas_reduce"));
        for (cell, c) in [("normal", &again.normal), ("reduce", &again.reduce)] {
            assert_eq!(d[cell]["skip_connect"], c.skip_connect);
            assert_eq!(d[cell]["parameter_free"], c.parameter_free);
            for (k, h) in c.entropy.iter().enumerate() {
                assert!((d[cell]["entropy"][k].as_f64().unwrap() - h).abs() < 1e-12, "{cell} edge {k}");
            }
        }
        assert!(d.get("lambda_max").is_none(), "no Hessian was computed: {d}");
    }
    // The plots are drawn at every epoch end.
    for f in ["alphas_normal.svg", "alphas_reduce.svg", "diagnostics.svg"] {
        assert!(std::fs::read_to_string(out.join(f)).unwrap().ends_with("</svg>\n"), "{f}");
    }
    let _ = std::fs::remove_dir_all(&out);
}

/// Each hyperparameter set away from its default gives other weights or alphas after two steps
/// (one per epoch, so --lr-min's second-epoch rate and the optimisers' second steps count),
/// and the state carries it.
#[test]
fn every_hyperparameter_reaches_the_step_and_changes_the_run() {
    let base = tiny(8, 2);
    let at = |cfg: &SearchConfig, name: &str| {
        let out = tmp(name);
        let s = run(cfg, &opts(&out, None)).unwrap();
        let _ = std::fs::remove_dir_all(&out);
        s.state
    };
    let reference = state_arrays(&at(&base, "default"));
    let variants: [(&str, SearchConfig); 8] = [
        ("lr", SearchConfig { lr_max: 0.05, ..base.clone() }),
        ("lr_min", SearchConfig { lr_min: 0.02, ..base.clone() }),
        ("momentum", SearchConfig { momentum: 0.5, ..base.clone() }),
        ("weight_decay", SearchConfig { weight_decay: 0.1, ..base.clone() }),
        ("grad_clip", SearchConfig { grad_clip: 0.1, ..base.clone() }),
        ("arch_lr", SearchConfig { arch_lr: 0.01, ..base.clone() }),
        ("arch_weight_decay", SearchConfig { arch_weight_decay: 10.0, ..base.clone() }),
        ("arch_betas", SearchConfig { arch_betas: (0.9, 0.9), ..base.clone() }),
    ];
    for (name, cfg) in variants {
        let s = at(&cfg, name);
        assert_eq!(
            (s.sgd.momentum, s.sgd.weight_decay, s.config.grad_clip),
            (cfg.momentum, cfg.weight_decay, cfg.grad_clip),
            "{name}"
        );
        assert_eq!(
            (s.adam.lr, s.adam.betas, s.adam.weight_decay),
            (cfg.arch_lr, cfg.arch_betas, cfg.arch_weight_decay)
        );
        assert!(state_arrays(&s) != reference, "{name}: the run did not change");
    }
}

#[test]
fn arch_lr_zero_leaves_the_alphas_unchanged() {
    let cfg = SearchConfig { arch_lr: 0.0, ..tiny(8, 1) };
    let out = tmp("frozen");
    let s = run(&cfg, &opts(&out, None)).unwrap();
    let (net, store) = Network::new(
        NetConfig { channels: 2, layers: 3, classes: 10, ..Default::default() },
        DType::F32,
        &mut Rng::new(cfg.seed),
    );
    for id in [net.alphas_normal, net.alphas_reduce] {
        let (before, after) =
            (store.params[id.0].value.to_f64_vec(), s.state.store.params[id.0].value.to_f64_vec());
        assert_eq!(before, after, "alphas moved with --arch-lr 0");
    }
    assert_eq!(s.state.adam.step, 1, "the architecture step ran");
    // With the default rate the same run moves them.
    let moved = run(&tiny(8, 1), &opts(&tmp("moved"), None)).unwrap();
    assert_ne!(
        store.params[net.alphas_normal.0].value.to_f64_vec(),
        moved.state.store.params[net.alphas_normal.0].value.to_f64_vec()
    );
    let _ = (std::fs::remove_dir_all(&out), std::fs::remove_dir_all(tmp("moved")));
}

#[test]
fn report_freq_two_halves_the_step_lines() {
    // 16 weight images in batches of 4: 4 steps per epoch.
    let lines = |freq: usize| {
        let out = tmp(&format!("freq{freq}"));
        run(&SearchConfig { report_freq: freq, ..tiny(32, 1) }, &opts(&out, None)).unwrap();
        let steps: Vec<u64> = log_lines(&out, "step").iter().map(|v| v["step"].as_u64().unwrap()).collect();
        let epochs = log_lines(&out, "epoch").len();
        let _ = std::fs::remove_dir_all(&out);
        (steps, epochs)
    };
    assert_eq!(lines(1), (vec![1, 2, 3, 4], 1));
    // The first step of the epoch and every second after it, as the reference's step % 2 == 0.
    assert_eq!(lines(2), (vec![1, 3], 1));
}

#[test]
fn cutout_reaches_the_weight_batches_only() {
    let cfg = SearchConfig { cutout: 16, ..tiny(64, 1) };
    let mut s = cfg.samplers(64).unwrap();
    use darts::data::Sampler;
    for _ in 0..3 {
        let aug = s.train.next_plan().aug.unwrap();
        assert!(aug.iter().all(|a| a.cutout.is_some_and(|c| c.len == 16)), "{aug:?}");
        assert!(s.val.next_plan().aug.unwrap().iter().all(|a| a.cutout.is_none()));
    }
    let mut none = tiny(64, 1).samplers(64).unwrap();
    assert!(none.train.next_plan().aug.unwrap().iter().all(|a| a.cutout.is_none()));
    // In a run: the first step's architecture half (validation batch) is the same, its weight
    // half trains on cut-out images.
    let first_step = |cfg: &SearchConfig, name: &str| {
        let out = tmp(name);
        run(cfg, &opts(&out, Some(1))).unwrap();
        let v = log_lines(&out, "step").remove(0);
        let _ = std::fs::remove_dir_all(&out);
        (v["loss_val"].as_f64().unwrap(), v["loss_train"].as_f64().unwrap())
    };
    let (plain, cut) = (first_step(&tiny(64, 1), "plain"), first_step(&cfg, "cut"));
    assert_eq!(plain.0, cut.0);
    assert_ne!(plain.1, cut.1);
}

/// A config.json written before the hyperparameters were recorded loads with the reference's
/// values, so such runs resume unchanged.
#[test]
fn old_config_json_loads_with_the_reference_defaults() {
    let mut v = serde_json::to_value(SearchConfig::paper()).unwrap();
    let new = [
        "momentum",
        "weight_decay",
        "grad_clip",
        "arch_lr",
        "arch_betas",
        "arch_weight_decay",
        "cutout",
        "report_freq",
    ];
    for k in new {
        assert!(v.as_object_mut().unwrap().remove(k).is_some(), "{k}");
    }
    let old: SearchConfig = serde_json::from_value(v).unwrap();
    assert_eq!(old, SearchConfig::paper());
    let p = SearchConfig::paper();
    assert_eq!((p.momentum, p.weight_decay, p.grad_clip), (0.9, 3e-4, 5.0));
    assert_eq!((p.arch_lr, p.arch_betas, p.arch_weight_decay), (3e-4, (0.5, 0.999), 1e-3));
    assert_eq!((p.cutout, p.report_freq, p.lr_max, p.lr_min), (0, 1, 0.025, 0.001));
}

#[test]
fn bad_values_are_errors_naming_the_flag() {
    let cases: [(&str, SearchConfig, &str); 10] = [
        ("lr", SearchConfig { lr_max: -0.1, ..tiny(8, 1) }, "--lr must be a finite number >= 0, got -0.1"),
        (
            "lr-min",
            SearchConfig { lr_min: 0.5, ..tiny(8, 1) },
            "--lr-min must be at most --lr (0.025), got 0.5",
        ),
        ("nan", SearchConfig { arch_lr: f64::NAN, ..tiny(8, 1) }, "--arch-lr must be a finite number >= 0"),
        (
            "wd",
            SearchConfig { weight_decay: -1e-4, ..tiny(8, 1) },
            "--weight-decay must be a finite number >= 0",
        ),
        ("awd", SearchConfig { arch_weight_decay: -1.0, ..tiny(8, 1) }, "--arch-weight-decay must be"),
        ("clip", SearchConfig { grad_clip: 0.0, ..tiny(8, 1) }, "--grad-clip must be > 0"),
        ("momentum", SearchConfig { momentum: 1.0, ..tiny(8, 1) }, "--momentum must be in [0, 1), got 1"),
        (
            "betas",
            SearchConfig { arch_betas: (0.5, 1.5), ..tiny(8, 1) },
            "--arch-betas must be two numbers in [0, 1)",
        ),
        (
            "cutout",
            SearchConfig { cutout: 33, ..tiny(8, 1) },
            "--cutout must be a side of at most 32 pixels (0: none), got 33",
        ),
        ("freq", SearchConfig { report_freq: 0, ..tiny(8, 1) }, "--report-freq must be at least 1"),
    ];
    for (name, cfg, want) in cases {
        let out = tmp(&format!("bad-{name}"));
        let err = run(&cfg, &opts(&out, None)).err().expect(name);
        assert!(matches!(err, RunError::Config(_)) && err.to_string().contains(want), "{name}: {err}");
        assert!(!out.exists(), "{name}: a rejected run left {}", out.display());
    }
}
