//! Every embedded PTX module assembles with `ptxas` for sm_80 and sm_90 (a compute_90 module
//! only for sm_90), with a table of registers, shared memory and spills per kernel. A kernel
//! that spills fails. Needs the CUDA toolkit's ptxas, so it is ignored by default; CI runs it
//! explicitly (`cargo test --release --test ptxas -- --ignored --nocapture`).

use std::process::Command;

use darts::backend::gpu::kernels::MODULES;

#[derive(Debug, Default)]
struct Usage {
    kernel: String,
    regs: u32,
    smem: u32,
    spill_stores: u32,
    spill_loads: u32,
    stack: u32,
}

/// Parses `ptxas -v` output: "Compiling entry function 'X' for 'sm_80'", then "N bytes stack
/// frame, N bytes spill stores, N bytes spill loads", then "Used N registers, N bytes smem".
fn parse(stderr: &str) -> Vec<Usage> {
    let mut out: Vec<Usage> = Vec::new();
    let num_before = |line: &str, key: &str| -> u32 {
        line.split(',')
            .find(|p| p.contains(key))
            .and_then(|p| p.split_whitespace().find_map(|w| w.parse().ok()))
            .unwrap_or(0)
    };
    for line in stderr.lines() {
        if let Some(i) = line.find("Compiling entry function '") {
            let rest = &line[i + "Compiling entry function '".len()..];
            out.push(Usage {
                kernel: rest[..rest.find('\'').unwrap_or(rest.len())].to_string(),
                ..Default::default()
            });
        } else if let Some(u) = out.last_mut() {
            if line.contains("spill stores") {
                u.stack = num_before(line, "stack frame");
                u.spill_stores = num_before(line, "spill stores");
                u.spill_loads = num_before(line, "spill loads");
            } else if line.contains("Used") && line.contains("registers") {
                let after = &line[line.find("Used").unwrap()..];
                u.regs = num_before(after, "registers");
                u.smem = num_before(after, "smem");
            }
        }
    }
    out
}

#[test]
#[ignore = "needs ptxas from the CUDA toolkit"]
fn every_kernel_assembles_for_sm80_and_sm90_without_spills() {
    assert!(MODULES.iter().any(|m| !m.ptx.is_empty()), "the binary was built without nvcc: no PTX to check");
    let dir = std::env::temp_dir().join(format!("darts-ptxas-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut spills = Vec::new();
    println!(
        "{:<34} {:>6} {:>5} {:>5} {:>10} {:>6}",
        "kernel", "target", "ptx", "regs", "smem bytes", "spill"
    );
    for m in MODULES {
        for &(ptx_arch, text) in m.ptx {
            for sm in [80u32, 90] {
                if ptx_arch > sm {
                    continue; // compute_90 PTX cannot target sm_80
                }
                let path = dir.join(format!("{}.compute_{ptx_arch}.ptx", m.stem));
                std::fs::write(&path, text).unwrap();
                let o = Command::new("ptxas")
                    .args(["-v", &format!("-arch=sm_{sm}"), "-o", "/dev/null"])
                    .arg(&path)
                    .output()
                    .expect("running ptxas (install the CUDA toolkit)");
                let stderr = String::from_utf8_lossy(&o.stderr);
                assert!(
                    o.status.success(),
                    "ptxas failed on {} compute_{ptx_arch} for sm_{sm}:\n{stderr}",
                    m.stem
                );
                let usage = parse(&stderr);
                assert_eq!(usage.len(), m.kernels.len(), "{}: ptxas reported {usage:?}", m.stem);
                for u in usage {
                    println!(
                        "{:<34} {:>6} {:>5} {:>5} {:>10} {:>6}",
                        u.kernel,
                        format!("sm_{sm}"),
                        ptx_arch,
                        u.regs,
                        u.smem,
                        u.spill_stores + u.spill_loads
                    );
                    if u.spill_stores + u.spill_loads > 0 || u.stack > 0 {
                        spills.push(format!("{} sm_{sm} (PTX {ptx_arch}): {u:?}", u.kernel));
                    }
                }
            }
        }
    }
    std::fs::remove_dir_all(&dir).ok();
    assert!(spills.is_empty(), "kernels that spill or use a stack frame:\n{}", spills.join("\n"));
}
