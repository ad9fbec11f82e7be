//! The `darts` binary: help, `eval` of a reference checkpoint, `search --init`, bad arguments.

use std::path::Path;
use std::process::Command;

fn darts() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_darts"));
    c.current_dir(env!("CARGO_MANIFEST_DIR"));
    c
}

#[test]
fn eval_reports_loss_and_accuracy_of_a_reference_checkpoint() {
    let o = darts()
        .args([
            "eval",
            "--checkpoint",
            "tests/fixtures/f32/init.safetensors",
            "--data",
            "data/sample",
            "--device",
            "cpu",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["images"], 500);
    assert_eq!(v["channels"], 2);
    assert_eq!(v["layers"], 5);
    let loss = v["loss"].as_f64().unwrap();
    // An untrained 10-class network: about ln(10).
    assert!((loss - 10f64.ln()).abs() < 0.3, "loss {loss}");
}

/// A run records its data directory absolute, so `eval` of its checkpoint finds the run's data
/// from any directory; without a run's config or data under the current directory, the error
/// says where it looked.
#[test]
fn eval_finds_the_runs_data_from_another_directory() {
    let out = std::env::temp_dir().join(format!("darts-cli-anydir-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let o = darts()
        .args(["search", "--device", "cpu", "--channels", "2", "--layers", "3", "--batch", "4"])
        .args(["--train-images", "8", "--epochs", "1", "--data", "data/sample", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    // A finished search says how to train what it found.
    assert!(
        err.contains(&format!("darts train --genotype {}", out.join("genotype.json").display())),
        "{err}"
    );
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap()).unwrap();
    let data = Path::new(config["data"].as_str().unwrap());
    assert!(data.is_absolute() && data.ends_with("data/sample"), "{data:?}");
    let elsewhere = std::env::temp_dir();
    let o = darts()
        .current_dir(&elsewhere)
        .args(["eval", "--device", "cpu", "--checkpoint"])
        .arg(out.join("checkpoint.safetensors"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("the run's"), "{err}");
    // A checkpoint with no run beside it, evaluated where there is no data/.
    let lone = out.join("lone");
    std::fs::create_dir_all(&lone).unwrap();
    std::fs::copy(out.join("checkpoint.safetensors"), lone.join("checkpoint.safetensors")).unwrap();
    let o = darts()
        .current_dir(&lone)
        .args(["eval", "--device", "cpu", "--checkpoint", "checkpoint.safetensors"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(err.contains("looked for") && err.contains("data/sample") && err.contains("--data"), "{err}");
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn search_init_starts_from_the_given_weights_and_alphas() {
    let out = std::env::temp_dir().join(format!("darts-cli-init-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let o = darts()
        .args([
            "search",
            "--device",
            "cpu",
            "--channels",
            "2",
            "--layers",
            "5",
            "--epochs",
            "1",
            "--max-steps",
            "0",
        ])
        .args(["--init", "tests/fixtures/f32/init.safetensors", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (ours, _) = darts::checkpoint::read(&out.join("checkpoint.safetensors")).unwrap();
    let (init, _) = darts::checkpoint::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/f32/init.safetensors").as_path(),
    )
    .unwrap();
    for (k, v) in &init {
        assert_eq!(&ours[k], v, "{k}");
    }
    let _ = std::fs::remove_dir_all(&out);
}

/// Each step's log line carries what the step cost: on the CPU, the heap allocations and peak.
#[test]
fn search_logs_allocations_and_peak_bytes_per_step() {
    let out = std::env::temp_dir().join(format!("darts-cli-meter-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let o = darts()
        .args(["search", "--device", "cpu", "--channels", "2", "--layers", "3", "--batch", "4"])
        .args(["--train-images", "32", "--epochs", "1", "--max-steps", "2", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let log = std::fs::read_to_string(out.join("log.jsonl")).unwrap();
    let steps: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|v: &serde_json::Value| v["kind"] == "step")
        .collect();
    assert_eq!(steps.len(), 2);
    for s in &steps {
        // A step holds at least its two input batches [4, 3, 32, 32] of f32.
        assert!(s["peak_bytes"].as_u64().unwrap() > 2 * 4 * 3 * 32 * 32 * 4, "{s}");
        assert!(s["allocations"].as_u64().unwrap() > 100, "{s}");
        assert!(s.get("launches").is_none(), "no kernel launches on the CPU: {s}");
    }
    let _ = std::fs::remove_dir_all(&out);
}

/// `--debug-sync` (wait for and check every launch) runs a search step; on the emulator every
/// launch is checked anyway, so it only has to be accepted and change nothing.
#[cfg(feature = "emu")]
#[test]
fn search_accepts_debug_sync() {
    let out = std::env::temp_dir().join(format!("darts-cli-debug-sync-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let o = darts()
        .args([
            "search",
            "--device",
            "emu",
            "--debug-sync",
            "--channels",
            "2",
            "--layers",
            "3",
            "--batch",
            "2",
        ])
        .args(["--train-images", "8", "--epochs", "1", "--max-steps", "1", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(out.join("checkpoint.safetensors").exists());
    let _ = std::fs::remove_dir_all(&out);
    let o = darts().args(["eval", "--help"]).output().unwrap();
    assert!(String::from_utf8_lossy(&o.stdout).contains("--debug-sync"));
}

/// `--device emu-deferred` (work queued as on a GPU, lifetime checks on) runs the same search as
/// the eager emulator, with the step replayed as a graph (the default) or not: the same losses
/// in the log and the same checkpoint, byte for byte.
#[cfg(feature = "emu")]
#[test]
fn search_on_the_deferred_emulator_equals_the_eager_one() {
    let run = |device: &str, graph: &str| {
        let out = std::env::temp_dir().join(format!("darts-cli-{device}-{graph}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&out);
        let o = darts()
            .args(["search", "--device", device, "--channels", "2", "--layers", "3", "--batch", "2"])
            .args([
                "--train-images",
                "12",
                "--epochs",
                "1",
                "--max-steps",
                "3",
                "--cuda-graph",
                graph,
                "--out",
            ])
            .arg(&out)
            .output()
            .unwrap();
        assert!(o.status.success(), "{device}: {}", String::from_utf8_lossy(&o.stderr));
        let ckpt = std::fs::read(out.join("checkpoint.safetensors")).unwrap();
        let log = std::fs::read_to_string(out.join("log.jsonl")).unwrap();
        let losses: Vec<String> = log
            .lines()
            .filter(|l| l.contains("\"kind\":\"step\""))
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                format!("{} {} {} {}", v["loss_train"], v["loss_val"], v["grad_norm"], v["exec"])
            })
            .collect();
        let _ = std::fs::remove_dir_all(&out);
        (ckpt, losses)
    };
    let eager = run("emu", "auto");
    let (deferred, graph) = (run("emu-deferred", "off"), run("emu-deferred", "auto"));
    assert_eq!(eager.1.len(), 3, "three steps logged");
    assert!(eager.1.iter().all(|l| l.ends_with("\"eager\"")), "the eager emulator cannot capture");
    assert_eq!(eager.1, deferred.1, "step losses");
    assert!(eager.0 == deferred.0, "the checkpoints differ");
    let exec: Vec<&str> = graph.1.iter().map(|l| l.rsplit(' ').next().unwrap()).collect();
    assert_eq!(exec, ["\"eager\"", "\"captured\"", "\"replayed\""]);
    let strip =
        |v: &[String]| v.iter().map(|l| l.rsplit_once(' ').unwrap().0.to_string()).collect::<Vec<_>>();
    assert_eq!(strip(&eager.1), strip(&graph.1), "step losses with the graph");
    assert!(eager.0 == graph.0, "the checkpoints differ with the graph");
}

#[test]
fn bad_arguments_are_explained() {
    let o =
        darts().args(["search", "--device", "cpu", "--order", "third", "--out", "/tmp/x"]).output().unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--order must be first or second"));
    let o = darts().args(["search", "--device", "quantum"]).output().unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("expected auto, cpu, cuda, emu or emu-deferred"));
    let o = darts()
        .args(["eval", "--checkpoint", "/nonexistent.safetensors", "--device", "cpu"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("/nonexistent.safetensors"));
    let o = darts().args(["search", "--help"]).output().unwrap();
    assert!(String::from_utf8_lossy(&o.stdout).contains("--order"));
}

/// `darts train` trains a published genotype and `darts eval` evaluates its checkpoint from the
/// run's own data; bad genotypes and a resume of a search run are errors that say why.
#[test]
fn train_runs_a_genotype_and_eval_reads_its_checkpoint() {
    let out = std::env::temp_dir().join(format!("darts-cli-train-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let o = darts()
        .args(["train", "--genotype", "DARTS_V1", "--device", "cpu", "--channels", "2", "--layers", "3"])
        .args(["--batch", "4", "--epochs", "1", "--train-images", "8", "--test-images", "8", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["epochs"], 1);
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap()).unwrap();
    assert!(config["genotype"].as_str().unwrap().starts_with("Genotype(normal=[('sep_conv_3x3', 1)"));
    assert_eq!((config["cutout"].clone(), config["auxiliary_weight"].clone()), (16.into(), 0.4.into()));
    let o = darts()
        .args(["eval", "--device", "cpu", "--checkpoint"])
        .arg(out.join("checkpoint.safetensors"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        (v["network"].as_str(), v["channels"].as_u64(), v["layers"].as_u64()),
        (Some("eval"), Some(2), Some(3))
    );
    let _ = std::fs::remove_dir_all(&out);

    let err = |args: &[&str]| {
        let o = darts().args(args).output().unwrap();
        assert!(!o.status.success(), "{args:?} should fail");
        String::from_utf8_lossy(&o.stderr).to_string()
    };
    let e = err(&["train", "--device", "cpu", "--genotype", "DARTS_V9", "--out", "/tmp/x"]);
    assert!(e.contains("DARTS_V9") && e.contains("DARTS_V2"), "{e}");
    let bad = "Genotype(normal=[('sep_conv_9x9', 0), ('skip_connect', 1)], normal_concat=[2], reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1)], reduce_concat=[2])";
    let e = err(&["train", "--device", "cpu", "--genotype", bad, "--out", "/tmp/x"]);
    assert!(e.contains("sep_conv_9x9"), "{e}");
    assert!(err(&["train", "--device", "cpu", "--out", "/tmp/x"]).contains("--genotype is required"));
    let e = err(&["train", "--device", "cpu", "--resume", "--out", "tests/fixtures"]);
    assert!(e.contains("config.json"), "{e}");
}

/// `--hessian-every 1` logs λ_max in every epoch line (finite, from the power iteration's
/// products), `darts plot` draws it as a third chart, and `--early-stop` alone is refused.
#[test]
fn search_logs_the_hessian_eigenvalue_and_plots_it() {
    let out = std::env::temp_dir().join(format!("darts-cli-hessian-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let o = darts()
        .args(["search", "--device", "cpu", "--channels", "2", "--layers", "3", "--batch", "4"])
        .args(["--train-images", "8", "--epochs", "2", "--hessian-every", "1", "--early-stop", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let log = std::fs::read_to_string(out.join("log.jsonl")).unwrap();
    let history = darts::search::robust::lambda_history(&log);
    assert_eq!(history.iter().map(|h| h.0).collect::<Vec<_>>(), [0, 1], "{log}");
    assert!(history.iter().all(|h| h.1.is_finite() && h.1 != 0.0), "{history:?}");
    let o = darts().args(["plot"]).arg(&out).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let svg = std::fs::read_to_string(out.join("diagnostics.svg")).unwrap();
    assert!(svg.contains("λ_max: largest eigenvalue"), "the λ_max chart is drawn");
    let _ = std::fs::remove_dir_all(&out);
    let o = darts().args(["search", "--device", "cpu", "--early-stop", "--out", "/tmp/x"]).output().unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--early-stop needs --hessian-every"));
}

/// `darts train --dataset imagenet` names what is wrong with its arguments before training.
#[test]
fn train_imagenet_arguments_are_checked() {
    let err = |args: &[&str]| {
        let o =
            darts().args(["train", "--device", "cpu", "--genotype", "DARTS_V2"]).args(args).output().unwrap();
        assert!(!o.status.success(), "{args:?} should fail");
        String::from_utf8_lossy(&o.stderr).to_string()
    };
    let out = std::env::temp_dir().join(format!("darts-cli-imagenet-{}", std::process::id()));
    let out = out.to_str().unwrap();
    let e = err(&["--dataset", "mnist", "--out", out]);
    assert!(e.contains("unknown dataset \"mnist\": expected cifar10 or imagenet"), "{e}");
    let e = err(&["--dataset", "imagenet", "--out", out]);
    assert!(e.contains("--dataset imagenet needs --data"), "{e}");
    let e = err(&["--dataset", "imagenet", "--data", "data/sample", "--out", out]);
    assert!(e.contains("data/sample/train") && e.contains("train/<class>/*.JPEG"), "{e}");
    let e = err(&["--dataset", "imagenet", "--data", "tests/fixtures/imagenet-tiny", "--image-size", "256"]);
    assert!(e.contains("only 224 is supported"), "{e}");
    let e = err(&["--lr-schedule", "linear", "--out", out]);
    assert!(e.contains("expected cosine or step"), "{e}");
    let e = err(&["--image-size", "32", "--out", out]);
    assert!(e.contains("--image-size is for --dataset imagenet"), "{e}");
    assert!(!Path::new(out).exists(), "nothing written");
}
