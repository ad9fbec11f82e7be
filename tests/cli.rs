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

#[test]
fn bad_arguments_are_explained() {
    let o =
        darts().args(["search", "--device", "cpu", "--order", "third", "--out", "/tmp/x"]).output().unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--order must be first or second"));
    let o = darts().args(["search", "--device", "quantum"]).output().unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("expected auto, cpu, cuda or emu"));
    let o = darts()
        .args(["eval", "--checkpoint", "/nonexistent.safetensors", "--device", "cpu"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("/nonexistent.safetensors"));
    let o = darts().args(["search", "--help"]).output().unwrap();
    assert!(String::from_utf8_lossy(&o.stdout).contains("--order"));
}
