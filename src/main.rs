//! `darts` command-line interface.

use std::process::ExitCode;
use std::time::Instant;

use clap::{Parser, Subcommand};
use darts::autograd::check::{demo_inputs, demo_network, finite_diff_errors, DEMO_INPUTS};
use darts::ops::{self, ConvParams};
use darts::rng::Rng;
use darts::{DType, Tensor};

/// DARTS (Differentiable Architecture Search) on an engine written from scratch in Rust.
#[derive(Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Checks the engine on this machine: gradients of a small network through the autograd
    /// tape against finite differences in f64, then CPU conv2d timings at DARTS shapes.
    /// Reports the CUDA driver and device (or exactly why there is none), the PTX targets built
    /// into this binary, and whether the kernel emulator is built in.
    Info,
    Check {
        /// Batch size for the conv2d timings (the DARTS search uses 64).
        #[arg(long, default_value_t = 64)]
        batch: usize,
        /// Timed repetitions per conv measurement (the median is reported).
        #[arg(long, default_value_t = 5)]
        reps: usize,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { batch, reps } => check(batch, reps.max(1)),
        Command::Info => info(),
    }
}

fn check(batch: usize, reps: usize) -> ExitCode {
    println!("gradient check (f64, central differences, step 1e-6) of a ReLU-depthwise-pointwise-BN /");
    println!("pool mixed-op network -> global average pool -> linear -> cross-entropy:");
    let errs = finite_diff_errors(&demo_inputs(99, DType::F64), 1e-6, demo_network);
    let mut ok = true;
    for (name, e) in DEMO_INPUTS.iter().zip(&errs) {
        let pass = *e < 1e-6;
        ok &= pass;
        println!("  d loss / d {name:<9} relative error {e:9.2e}  {}", if pass { "ok" } else { "FAIL" });
    }

    println!(
        "\nconv2d on the CPU, f32, batch {batch}, median of {reps} ({} rayon threads):",
        rayon::current_num_threads()
    );
    println!("  {:<34} {:>10} {:>10} {:>10}", "shape", "forward", "bwd data", "bwd weight");
    let mut rng = Rng::new(1);
    let shapes: [(&str, usize, usize, usize, ConvParams); 3] = [
        ("stem 3x3, 3->48, 32x32", 3, 48, 3, ConvParams::new(1, 1)),
        ("pointwise 1x1, 16->16, 32x32", 16, 16, 1, ConvParams::new(1, 0)),
        ("depthwise 5x5, C=16, 32x32", 16, 16, 5, ConvParams::new(1, 2).groups(16)),
    ];
    for (name, ci, co, k, p) in shapes {
        let rand =
            |rng: &mut Rng, s: &[usize]| Tensor::from_f64(s, &rng.normals(s.iter().product()), DType::F32);
        let x = rand(&mut rng, &[batch, ci, 32, 32]);
        let w = rand(&mut rng, &[co, ci / p.groups, k, k]);
        let y = ops::conv::conv2d(&x, &w, p);
        let dy = rand(&mut rng, y.shape());
        let fwd = median_ms(reps, || drop(ops::conv::conv2d(&x, &w, p)));
        let bd = median_ms(reps, || drop(ops::conv::conv2d_bwd_data(&dy, &w, x.shape(), p)));
        let bw = median_ms(reps, || drop(ops::conv::conv2d_bwd_weight(&x, &dy, w.shape(), p)));
        println!("  {name:<34} {fwd:>7.2} ms {bd:>7.2} ms {bw:>7.2} ms");
    }
    if ok {
        println!("\nall gradient checks passed");
        ExitCode::SUCCESS
    } else {
        eprintln!("\nerror: a gradient check failed (relative error >= 1e-6)");
        ExitCode::FAILURE
    }
}

fn info() -> ExitCode {
    use darts::backend::gpu::{cuda::CudaRuntime, kernels, Runtime};
    println!("darts {}", env!("CARGO_PKG_VERSION"));
    println!("CPU: {} rayon threads", rayon::current_num_threads());
    match CudaRuntime::new(0, false) {
        Ok(rt) => {
            let i = rt.info();
            println!("CUDA: {}", rt.describe());
            println!("  driver API version {}.{}", i.driver_version / 1000, (i.driver_version % 1000) / 10);
        }
        Err(e) => println!("CUDA: not available: {e}"),
    }
    if kernels::PTX_BUILT {
        let targets: Vec<String> = kernels::PTX_ARCHS.iter().map(|a| format!("compute_{a}")).collect();
        println!(
            "PTX: {} ({} modules, {} kernels)",
            targets.join(", "),
            kernels::MODULES.len(),
            kernels::all_kernels().count()
        );
    } else {
        println!("PTX: none (built without nvcc; install the CUDA toolkit or set NVCC, then rebuild)");
    }
    #[cfg(feature = "emu")]
    {
        let emu = darts::backend::gpu::emu::EmuRuntime::new(0, 0);
        println!("emulator: built in ({} kernels)", emu.kernel_names().len());
    }
    #[cfg(not(feature = "emu"))]
    println!("emulator: not built (feature `emu` is off)");
    ExitCode::SUCCESS
}

fn median_ms(reps: usize, mut f: impl FnMut()) -> f64 {
    f(); // warm-up
    let mut t: Vec<f64> = (0..reps)
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    t.sort_by(|a, b| a.total_cmp(b));
    t[t.len() / 2]
}
