//! The `darts` binary's search hyperparameter flags and `darts plot`: the flags land in
//! config.json, bad values are explained, `--resume` refuses a flag that contradicts the run,
//! and the plots are well-formed SVG with a panel per edge and every op named.

use std::path::{Path, PathBuf};
use std::process::Output;

#[path = "common/cli.rs"]
mod cli;

use cli::{darts, stderr};

fn tmp(name: &str) -> PathBuf {
    cli::tmp("cli-diag", name)
}

/// A tiny CPU search into `out` with extra arguments.
fn search(out: &Path, extra: &[&str]) -> Output {
    cli::tiny_search(out, 2, extra)
}

fn config(out: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap()).unwrap()
}

/// Balanced tags, quoted attributes and no stray `<` or `&`, read with a simple scan: enough to
/// tell a truncated or mis-nested file, not a full XML parser. Returns the root element's name.
fn check_well_formed(svg: &str) -> Result<String, String> {
    let (mut stack, mut root) = (Vec::<&str>::new(), None);
    let mut rest = svg;
    while let Some(i) = rest.find('<') {
        if rest[..i].contains('&') {
            return Err(format!("unescaped & in text before {:?}", &rest[i..(i + 40).min(rest.len())]));
        }
        let j = i + rest[i..].find('>').ok_or("a tag is never closed")?;
        let tag = &rest[i + 1..j];
        if tag.contains('<') || tag.matches('"').count() % 2 != 0 {
            return Err(format!("malformed tag <{tag}>"));
        }
        if let Some(name) = tag.strip_prefix('/') {
            match stack.pop() {
                Some(open) if open == name => {}
                other => return Err(format!("</{name}> closes {other:?}")),
            }
        } else if !tag.ends_with('/') && !tag.starts_with('?') && !tag.starts_with('!') {
            let name = tag.split_whitespace().next().unwrap_or("");
            root.get_or_insert(name);
            stack.push(name);
        }
        rest = &rest[j + 1..];
        if stack.is_empty() && root.is_some() && !rest.trim().is_empty() {
            return Err("content after the root element".into());
        }
    }
    match (stack.is_empty(), root) {
        (true, Some(r)) => Ok(r.to_string()),
        _ => Err(format!("unclosed elements {stack:?}")),
    }
}

#[test]
fn the_scan_rejects_broken_svg() {
    assert_eq!(check_well_formed("<svg a=\"1\"><g><line/></g></svg>\n").unwrap(), "svg");
    assert!(check_well_formed("<svg><g></svg>").is_err());
    assert!(check_well_formed("<svg><text>a & b</text></svg>").is_err());
    assert!(check_well_formed("<svg><line x=\"1/></svg>").is_err());
    assert!(check_well_formed("<svg><g>").is_err());
}

#[test]
fn search_flags_land_in_config_json_and_are_documented() {
    let out = tmp("flags");
    let o = search(
        &out,
        &[
            "--epochs",
            "1",
            "--lr",
            "0.05",
            "--lr-min",
            "0.002",
            "--momentum",
            "0.8",
            "--weight-decay",
            "0.001",
            "--grad-clip",
            "2.5",
            "--arch-lr",
            "0.0006",
            "--arch-weight-decay",
            "0.002",
            "--arch-betas",
            "0.6,0.99",
            "--cutout",
            "16",
            "--report-freq",
            "3",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let c = config(&out);
    let want = serde_json::json!({
        "lr_max": 0.05, "lr_min": 0.002, "momentum": 0.8, "weight_decay": 0.001, "grad_clip": 2.5,
        "arch_lr": 0.0006, "arch_weight_decay": 0.002, "arch_betas": [0.6, 0.99], "cutout": 16,
        "report_freq": 3,
    });
    for (k, v) in want.as_object().unwrap() {
        assert_eq!(&c[k], v, "{k}");
    }
    // Without the flags the preset's (the reference's) values are recorded.
    let plain = tmp("plain");
    assert!(search(&plain, &["--epochs", "1", "--max-steps", "0"]).status.success());
    let c = config(&plain);
    assert_eq!((c["weight_decay"].as_f64(), c["arch_lr"].as_f64()), (Some(3e-4), Some(3e-4)));
    assert_eq!((c["cutout"].as_u64(), c["report_freq"].as_u64()), (Some(0), Some(1)));
    let help =
        String::from_utf8_lossy(&darts().args(["search", "--help"]).output().unwrap().stdout).into_owned();
    for flag in [
        "--lr <LR>",
        "--lr-min",
        "--momentum",
        "--weight-decay",
        "--grad-clip",
        "--arch-lr",
        "--arch-weight-decay",
        "--arch-betas <B1,B2>",
        "--cutout <N>",
        "--report-freq <N>",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}");
    }
    let _ = (std::fs::remove_dir_all(&out), std::fs::remove_dir_all(&plain));
}

#[test]
fn bad_flag_values_are_explained() {
    let cases: [(&[&str], &str); 7] = [
        (&["--lr", "-1"], "--lr must be a finite number >= 0, got -1"),
        (&["--weight-decay", "-0.1"], "--weight-decay must be a finite number >= 0, got -0.1"),
        (&["--grad-clip", "0"], "--grad-clip must be > 0"),
        (&["--cutout", "40"], "--cutout must be a side of at most 32 pixels (0: none), got 40"),
        (&["--report-freq", "0"], "--report-freq must be at least 1"),
        (&["--arch-betas", "0.5"], "--arch-betas takes two numbers B1,B2 (e.g. 0.5,0.999), got 1"),
        (&["--momentum", "1.5"], "--momentum must be in [0, 1), got 1.5"),
    ];
    for (args, want) in cases {
        let out = tmp("bad");
        let o = search(&out, args);
        assert!(!o.status.success(), "{args:?} was accepted");
        assert!(stderr(&o).contains(want), "{args:?}: {}", stderr(&o));
        assert!(!out.exists(), "{args:?}: a rejected run wrote {}", out.display());
    }
}

/// A resumed run keeps its recorded settings: a flag asking for another value is refused
/// (naming it and both values), the same value is accepted, and so is --no-fuse (how a step
/// executes, not what it computes).
#[test]
fn resume_refuses_flags_that_contradict_the_run() {
    let out = tmp("resume");
    let o = search(&out, &["--epochs", "2", "--max-steps", "1", "--weight-decay", "0.001"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let resume = |extra: &[&str]| {
        darts()
            .args(["search", "--device", "cpu", "--resume", "--out"])
            .arg(&out)
            .args(extra)
            .output()
            .unwrap()
    };
    let o = resume(&["--weight-decay", "0.002", "--cutout", "8", "--epochs", "2"]);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(e.contains("--weight-decay 0.002 (the run has 0.001), --cutout 8 (the run has 0)"), "{e}");
    assert!(!e.contains("--epochs"), "an agreeing flag is no conflict: {e}");
    assert!(e.contains("another --out directory"), "{e}");
    assert_eq!(config(&out)["weight_decay"], 0.001, "config.json is untouched");
    let o = resume(&["--weight-decay", "0.001", "--no-fuse"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let epochs =
        std::fs::read_to_string(out.join("log.jsonl")).unwrap().matches("\"kind\":\"epoch\"").count();
    assert_eq!(epochs, 2, "the resumed run finished");
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn plot_writes_well_formed_svgs_of_a_run() {
    let out = tmp("plot");
    let o = search(&out, &["--epochs", "2"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let plots = out.join("plots");
    let o = darts().arg("plot").arg(&out).arg("--out").arg(&plots).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let listed = String::from_utf8_lossy(&o.stdout).into_owned();
    for name in ["alphas_normal.svg", "alphas_reduce.svg", "diagnostics.svg"] {
        let path = plots.join(name);
        assert!(listed.contains(&path.display().to_string()), "{listed}");
        let svg = std::fs::read_to_string(&path).unwrap();
        assert_eq!(check_well_formed(&svg), Ok("svg".to_string()), "{name}");
        // The search drew the same plots at its last epoch: the output is deterministic.
        assert_eq!(svg, std::fs::read_to_string(out.join(name)).unwrap(), "{name}");
    }
    for cell in ["normal", "reduce"] {
        let svg = std::fs::read_to_string(plots.join(format!("alphas_{cell}.svg"))).unwrap();
        assert_eq!(svg.matches("class=\"panel\"").count(), 14, "{cell}");
        for op in darts::model::PRIMITIVES {
            assert!(svg.contains(&format!(">{op}</text>")), "{cell}: no legend entry for {op}");
        }
        // 14 panels of 8 ops, one line each.
        assert_eq!(svg.matches("<polyline").count(), 14 * 8, "{cell}");
    }
    let diag = std::fs::read_to_string(plots.join("diagnostics.svg")).unwrap();
    assert_eq!(diag.matches("class=\"chart\"").count(), 2, "skip counts and entropy, no λ_max");
    assert!(diag.contains("skip_connect") && diag.contains("entropy") && !diag.contains("λ_max"));

    // An epoch line with λ_max (as a Hessian estimate will write) adds its chart.
    let mut log = std::fs::read_to_string(out.join("log.jsonl")).unwrap();
    log.push_str("{\"kind\":\"epoch\",\"epoch\":1,\"diagnostics\":{\"lambda_max\":0.25}}\n");
    std::fs::write(out.join("log.jsonl"), log).unwrap();
    let o = darts().arg("plot").arg(&out).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let diag = std::fs::read_to_string(out.join("diagnostics.svg")).unwrap();
    assert_eq!(check_well_formed(&diag), Ok("svg".to_string()));
    assert_eq!(diag.matches("class=\"chart\"").count(), 3);
    assert!(diag.contains("λ_max"));

    // A directory without finished epochs is an error that says so.
    let o = darts().arg("plot").arg(out.join("plots")).output().unwrap();
    assert!(!o.status.success());
    assert!(stderr(&o).contains("no alphas/ directory: not a search run"), "{}", stderr(&o));
    let _ = std::fs::remove_dir_all(&out);
}
