//! Shared helpers of the tests that run the `darts` binary.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The binary, run from the crate root (so `data/sample` resolves).
pub fn darts() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_darts"));
    c.current_dir(env!("CARGO_MANIFEST_DIR"));
    c
}

/// A fresh (removed) temporary directory named after the test file `tag` and `name`.
pub fn tmp(tag: &str, name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("darts-{tag}-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// A tiny CPU search (3 cells of `channels`, batch 4, 8 images of the shipped sample) into
/// `out` with extra arguments.
pub fn tiny_search(out: &Path, channels: usize, extra: &[&str]) -> Output {
    darts()
        .args([
            "search",
            "--device",
            "cpu",
            "--channels",
            &channels.to_string(),
            "--layers",
            "3",
            "--batch",
            "4",
        ])
        .args(["--train-images", "8", "--data", "data/sample", "--out"])
        .arg(out)
        .args(extra)
        .output()
        .unwrap()
}

/// The process' standard error.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}
