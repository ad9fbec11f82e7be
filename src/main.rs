//! `darts` command-line interface.

use std::process::ExitCode;
use std::time::Instant;

use clap::{Parser, Subcommand};
use darts::autograd::check::{demo_inputs, demo_network, finite_diff_errors, DEMO_INPUTS};
use darts::backend::gpu::GpuError;
use darts::device::DeviceChoice;
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
    /// Runs every GPU kernel at the DARTS search shapes against the CPU reference (f64) and
    /// prints a table: op, part, shape, relative error, largest absolute error, time on the
    /// device, pass/fail. Exits non-zero if any case fails. Run it on a new GPU or after
    /// changing a kernel.
    Verify {
        /// Device under test: cuda (a real GPU) or emu (the kernels on the CPU, slow).
        #[arg(long, default_value = "cuda")]
        device: DeviceChoice,
        /// Only these op families (comma-separated, e.g. conv_depthwise,batch_norm).
        #[arg(long, value_delimiter = ',')]
        ops: Vec<String>,
        /// Batch size of the shapes (default: 64, the search's; 2 on the emulator).
        #[arg(long)]
        batch: Option<usize>,
        /// Timed repetitions per case (default: 5 on CUDA, 1 on the emulator).
        #[arg(long)]
        reps: Option<usize>,
    },
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
    // A GPU failure inside an op (out of memory, a driver error, an emulator check) unwinds
    // with the GpuError as payload: print it as an error, not as a panic with a backtrace.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| match info.payload().downcast_ref::<GpuError>() {
        Some(e) => eprintln!("error: {e}"),
        None => default_hook(info),
    }));
    let cli = Cli::parse();
    match cli.command {
        Command::Check { batch, reps } => check(batch, reps.max(1)),
        Command::Info => info(),
        Command::Verify { device, ops, batch, reps } => verify(device, &ops, batch, reps),
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

fn verify(choice: DeviceChoice, only: &[String], batch: Option<usize>, reps: Option<usize>) -> ExitCode {
    if !matches!(choice, DeviceChoice::Cuda | DeviceChoice::Emu) {
        eprintln!("error: verify checks a GPU runtime: --device cuda or --device emu");
        return ExitCode::from(2);
    }
    let device = match darts::device::open(choice, true) {
        Ok((d, _)) => d,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let emu = choice == DeviceChoice::Emu;
    let batch = batch.unwrap_or(if emu { 2 } else { 64 });
    let reps = reps.unwrap_or(if emu { 1 } else { 5 });
    let mut cases = darts::verify::darts_cases(batch);
    if !only.is_empty() {
        let known: Vec<&str> = cases.iter().map(|c| c.op).collect();
        if let Some(bad) = only.iter().find(|o| !known.contains(&o.as_str())) {
            let mut names = known.clone();
            names.dedup();
            eprintln!("error: unknown op {bad:?}; known: {}", names.join(", "));
            return ExitCode::from(2);
        }
        cases.retain(|c| only.iter().any(|o| o == c.op));
    }
    println!(
        "verify on {device:?}, batch {batch}, {} cases, tolerance {:e}",
        cases.len(),
        darts::verify::TOLERANCE
    );
    println!("{}", darts::verify::header());
    let rows = darts::verify::run(&cases, &device, reps, |r| println!("{}", darts::verify::format_row(r)));
    let failed = rows.iter().filter(|r| !r.pass).count();
    if failed == 0 {
        println!("all {} cases passed", rows.len());
        ExitCode::SUCCESS
    } else {
        eprintln!("{failed} of {} cases FAILED", rows.len());
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
