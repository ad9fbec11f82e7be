//! `darts search --method` and the successors' options: a method's option given to another
//! method is refused naming both, resume refuses another method, the α warm-up freezes α, and
//! DARTS-ADA rolls back and raises the weight decay up to its cap.

use std::path::{Path, PathBuf};
use std::process::Output;

#[path = "common/cli.rs"]
mod cli;

use cli::{darts, stderr};

fn tmp(name: &str) -> PathBuf {
    cli::tmp("cli-methods", name)
}

/// A tiny CPU search into `out` with extra arguments.
fn search(out: &Path, extra: &[&str]) -> Output {
    cli::tiny_search(out, 4, extra)
}

fn lines(out: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(out.join("log.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn alphas(out: &Path, epoch: usize) -> serde_json::Value {
    let p = out.join(format!("alphas/epoch_{epoch:03}.json"));
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

#[test]
fn method_options_are_refused_elsewhere_and_explained() {
    let cases: [(&[&str], &str); 9] = [
        (&["--method", "fair-darts", "--order", "second"], "--order must be first with the zero-one loss"),
        (&["--pc-k", "2"], "--pc-k is a pc-darts option; this search's --method is darts"),
        (
            &["--method", "pc-darts", "--zero-one-weight", "5"],
            "--zero-one-weight is a fair-darts option; this search's --method is pc-darts",
        ),
        (&["--method", "pc-darts", "--pc-k", "3"], "--pc-k must be a divisor of --channels (4)"),
        (&["--ada-factor", "3"], "--ada-factor and --ada-max-weight-decay set DARTS-ADA: add --ada"),
        (&["--ada"], "--ada must be used with --hessian-every N"),
        (&["--ada", "--hessian-every", "1", "--early-stop"], "--ada must be used without --early-stop"),
        (&["--es-window", "3"], "set the rule of --early-stop or --ada: add one"),
        (&["--drop-path", "1"], "--drop-path must be a probability in [0, 1), got 1"),
    ];
    for (args, want) in cases {
        let out = tmp("bad");
        let o = search(&out, args);
        assert!(!o.status.success(), "{args:?} was accepted");
        assert!(stderr(&o).contains(want), "{args:?}: {}", stderr(&o));
        assert!(!out.exists(), "{args:?}: a rejected run wrote {}", out.display());
    }
    let o = darts().args(["search", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&o.stdout).into_owned();
    for flag in [
        "--method <METHOD>",
        "--pc-k <K>",
        "--arch-warmup <EPOCHS>",
        "--zero-one-weight <W>",
        "--drop-path <P>",
        "--ada",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}");
    }
}

#[test]
fn resume_refuses_another_method() {
    let out = tmp("resume");
    let o = search(&out, &["--epochs", "2", "--max-steps", "1"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = darts()
        .args(["search", "--device", "cpu", "--resume", "--method", "fair-darts", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(stderr(&o).contains("--method fair-darts (the run has darts)"), "{}", stderr(&o));
    let _ = std::fs::remove_dir_all(&out);
}

/// With one warm-up epoch, epoch 0 takes no architecture step: its α equal those of a run whose
/// architecture learning rate is 0, its step lines say so, and α move in epoch 1.
#[test]
fn warm_up_epochs_freeze_alpha() {
    let (warm, still) = (tmp("warm"), tmp("still"));
    let o = search(&warm, &["--epochs", "2", "--arch-warmup", "1"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = search(&still, &["--epochs", "1", "--arch-lr", "0"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let (a0, a1, frozen) = (alphas(&warm, 0), alphas(&warm, 1), alphas(&still, 0));
    assert_eq!(a0["alphas_normal"], frozen["alphas_normal"]);
    assert_eq!(a0["alphas_reduce"], frozen["alphas_reduce"]);
    assert_ne!(a1["alphas_normal"], a0["alphas_normal"], "α move after the warm-up");
    for l in lines(&warm).iter().filter(|l| l["kind"] == "step") {
        let in_warmup = l["epoch"] == 0;
        assert_eq!(l["arch_frozen"] == true, in_warmup, "{l}");
        assert_eq!(l["loss_val"].is_null(), in_warmup, "{l}");
    }
    let _ = (std::fs::remove_dir_all(&warm), std::fs::remove_dir_all(&still));
}

/// A rule that fires at every evaluation after the first: DARTS-ADA rolls back to epoch 0 and
/// multiplies the weight decay by 10, capped (0.001 → 0.01 → 0.03, the default cap), then the rule no
/// longer acts and the search runs to its end.
#[test]
fn ada_rolls_back_and_raises_weight_decay_to_its_cap() {
    let out = tmp("ada");
    let rule = ["--es-window", "1", "--es-delta", "1", "--es-factor", "0.01", "--es-start-epoch", "0"];
    let o = search(
        &out,
        &[&["--epochs", "3", "--hessian-every", "1", "--ada", "--weight-decay", "0.001"][..], &rule].concat(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let log = lines(&out);
    let ada: Vec<&serde_json::Value> = log.iter().filter(|l| l["kind"] == "ada").collect();
    assert_eq!(ada.len(), 2, "{ada:?}");
    for (l, wd) in ada.iter().zip([0.01, 0.03]) {
        assert_eq!((l["epoch"].as_u64(), l["rollback_to"].as_u64()), (Some(1), Some(0)), "{l}");
        assert!((l["weight_decay"].as_f64().unwrap() - wd).abs() < 1e-12, "{l}");
    }
    let epochs: Vec<u64> =
        log.iter().filter(|l| l["kind"] == "epoch").map(|l| l["epoch"].as_u64().unwrap()).collect();
    assert_eq!(epochs, [0, 1, 1, 1, 2]);
    assert!(out.join("ada/epoch_000.safetensors").exists());
    // The checkpoint carries the raised weight decay, so a resume goes on with it.
    let (arrays, _) = darts::checkpoint::read(&out.join("checkpoint.safetensors")).unwrap();
    assert_eq!(arrays["run.weight_decay"].data.to_f64(), [0.03]);
    assert!(out.join("genotype.json").exists());
    let _ = std::fs::remove_dir_all(&out);
}

/// A tiny search of each successor runs end to end: config.json records the method and its
/// recipe, the alphas files carry the method's parameters, the genotype is written (FairDARTS'
/// in triples), and the epoch lines carry the diagnostics.
#[test]
fn each_method_searches_end_to_end() {
    for (method, check) in [
        ("pc-darts", &["\"betas_normal\"", "\"pc_k\":4"][..]),
        ("fair-darts", &["\"method\":\"fair-darts\""][..]),
    ] {
        let out = tmp(method);
        let o = search(&out, &["--method", method, "--epochs", "2", "--arch-warmup", "1"]);
        assert!(o.status.success(), "{method}: {}", stderr(&o));
        let cfg: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap()).unwrap();
        assert_eq!(cfg["method"], method);
        let a = std::fs::read_to_string(out.join("alphas/epoch_001.json")).unwrap();
        for c in check {
            assert!(a.contains(c), "{method}: alphas file lacks {c}: {a}");
        }
        let py = std::fs::read_to_string(out.join("genotype.txt")).unwrap();
        assert!(py.starts_with("Genotype(normal=["), "{method}: {py}");
        let epochs: Vec<serde_json::Value> =
            lines(&out).into_iter().filter(|l| l["kind"] == "epoch").collect();
        assert_eq!(epochs.len(), 2);
        for e in &epochs {
            assert!(e["diagnostics"]["normal"]["skip_connect"].is_u64(), "{method}: {e}");
            assert_eq!(e["diagnostics"]["normal"]["entropy"].as_array().map(|v| v.len()), Some(14));
        }
        let _ = std::fs::remove_dir_all(&out);
    }
}
