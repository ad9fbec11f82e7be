//! `darts` command-line interface.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use clap::{Parser, Subcommand};
use darts::autograd::check::{demo_inputs, demo_network, finite_diff_errors, DEMO_INPUTS};
use darts::device::DeviceChoice;
use darts::ops::{self, ConvParams};
use darts::rng::Rng;
use darts::search::stepper::GraphMode;

mod search_flags;
mod train_cmd;
use darts::{DType, Tensor};

// Counts heap bytes, so benchmarks report peak host memory.
#[global_allocator]
static ALLOC: darts::memstat::CountingAlloc = darts::memstat::CountingAlloc;

/// DARTS (Differentiable Architecture Search) on an engine written from scratch in Rust.
#[derive(Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs a DARTS architecture search on CIFAR-10 and writes the discovered genotype.
    ///
    /// Outputs go to --out (default runs/<preset>-<order>-seed<seed>): config.json, log.jsonl
    /// (step lines, and epoch lines with collapse diagnostics), alphas/epoch_NNN.json,
    /// genotype.json and genotype.txt, normal/reduce .dot and .svg, the plots of `darts plot`
    /// (redrawn every epoch), and checkpoint.safetensors (written atomically every epoch and on
    /// Ctrl-C; --resume continues).
    Search(Box<SearchArgs>),
    /// Draws a search run as SVG: each edge's softmax(α) per epoch (alphas_normal.svg,
    /// alphas_reduce.svg: a panel per edge, a line per op) and the collapse diagnostics per epoch
    /// (diagnostics.svg: skip_connect and parameter-free ops in the derived cells, mean edge
    /// entropy, and λ_max when the log has it). A search writes the same files every epoch.
    Plot {
        /// The run directory (holding alphas/epoch_NNN.json and log.jsonl).
        run: PathBuf,
        /// Where the SVG files go (default: the run directory).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Trains a genotype's evaluation network from scratch on CIFAR-10 (the DARTS evaluation
    /// protocol) or an ImageNet folder tree (--dataset imagenet: the mobile setting) and reports
    /// the test accuracy after every epoch.
    ///
    /// Outputs go to --out (default runs/train-<preset>-seed<seed>): config.json, log.jsonl (a
    /// line per step and per epoch) and checkpoint.safetensors (the reference's NetworkCIFAR
    /// names; written atomically every epoch and on Ctrl-C; --resume continues exactly).
    Train(Box<train_cmd::TrainArgs>),
    /// Loss and top-1 accuracy of a search or training checkpoint on the test batch (BN in eval
    /// mode, no augmentation).
    Eval {
        /// A checkpoint.safetensors (ours or the PyTorch reference's, same names).
        #[arg(long)]
        checkpoint: PathBuf,
        /// CIFAR-10 directory holding test_batch.bin, or for an ImageNet training checkpoint the
        /// folder holding train/ and val/ (default: the run's own data, from the
        /// config.json beside the checkpoint; else data/cifar-10-batches-bin, else the shipped
        /// sample data/sample, under the current directory).
        #[arg(long)]
        data: Option<PathBuf>,
        /// Device: auto, cpu, cuda, emu or emu-deferred.
        #[arg(long, default_value = "auto")]
        device: DeviceChoice,
        /// Batch size.
        #[arg(long, default_value_t = 100)]
        batch: usize,
        /// Wait for and check every kernel launch (slow): a device error then names the kernel
        /// that caused it. On the emulator every launch is checked anyway.
        #[arg(long)]
        debug_sync: bool,
    },
    /// Runs every GPU kernel at the DARTS search shapes against the CPU reference (f64) and
    /// prints a table: op, part, shape, relative error, largest absolute error, time on the
    /// device, pass/fail. Each case also runs a second time (on the emulator under the other
    /// fiber schedule) and fails unless both runs give the same bits. Exits non-zero if any case
    /// fails. Run it on a new GPU or after changing a kernel.
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
    /// into this binary, whether the kernel emulator is built in, and on a GPU each kernel's
    /// registers, local (spill) bytes and shared memory as the driver's JIT compiled it.
    Info,
    /// Benchmarks: kernel throughput against the machine's roofline, or whole search steps.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Checks the engine on this machine: gradients of a small network through the autograd
    /// tape against finite differences in f64, then CPU conv2d timings at DARTS shapes.
    Check {
        /// Batch size for the conv2d timings (the DARTS search uses 64).
        #[arg(long, default_value_t = 64)]
        batch: usize,
        /// Timed repetitions per conv measurement (the median is reported).
        #[arg(long, default_value_t = 5)]
        reps: usize,
    },
}

/// What `darts bench` measures.
#[derive(Subcommand)]
enum BenchCommand {
    /// Times training steps of the evaluation network (DARTS_V2's NetworkCIFAR with the auxiliary
    /// head and drop path: forward, backward, clip, SGD) on random CIFAR-shaped batches, as
    /// `scripts/eval_torch.py time` does for the PyTorch reference; one JSON line.
    TrainStep {
        /// Device: auto, cpu, cuda, emu or emu-deferred.
        #[arg(long, default_value = "auto")]
        device: DeviceChoice,
        /// Shape preset: paper (C=36, 20 cells, batch 96) or cpu-small (C=16, 8 cells, batch 64).
        #[arg(long, default_value = "paper")]
        preset: String,
        /// Timed steps (the median is over these).
        #[arg(long, default_value_t = 3)]
        steps: usize,
        /// Untimed steps before them.
        #[arg(long, default_value_t = 1)]
        warmup: usize,
        /// Override the preset's batch size.
        #[arg(long)]
        batch: Option<usize>,
    },
    /// Times every kernel family (forward and backward) at the DARTS search shapes and prints a
    /// roofline table: per case its least bytes and FLOPs, achieved GB/s and GFLOP/s, which
    /// ceiling binds it and how close it gets (roof %). The ceilings are measured in the same
    /// run: a large copy for bandwidth, our best GEMM (a large pointwise conv) for compute.
    Kernels {
        /// Device: auto, cpu, cuda, emu or emu-deferred (emulator times say nothing about a GPU).
        #[arg(long, default_value = "auto")]
        device: DeviceChoice,
        /// Batch size of the shapes (default: 64, the search's; 2 on the emulator).
        #[arg(long)]
        batch: Option<usize>,
        /// Only cases whose family/name contains this text (e.g. conv_depthwise, bwd).
        #[arg(long, default_value = "")]
        filter: String,
        /// Timed calls per case, each with cold caches (the median is reported; default 20 on
        /// CUDA, 5 elsewhere).
        #[arg(long)]
        samples: Option<usize>,
    },
    /// Times whole search steps (architecture + weight step) on random CIFAR-shaped batches, as
    /// `darts_torch.py time` does for the PyTorch reference, and prints one JSON line with the
    /// same fields (median seconds per step, the two halves, peak memory).
    Step {
        /// Device: auto, cpu, cuda, emu or emu-deferred.
        #[arg(long, default_value = "auto")]
        device: DeviceChoice,
        /// Shape preset: paper (C=16, 8 cells, batch 64) or cpu-small (C=4, 5 cells, batch 32).
        #[arg(long, default_value = "paper")]
        preset: String,
        /// Architecture gradient: first or second.
        #[arg(long, default_value = "first")]
        order: String,
        /// Timed steps (the median is over these).
        #[arg(long, default_value_t = 5)]
        steps: usize,
        /// Untimed steps before them.
        #[arg(long, default_value_t = 1)]
        warmup: usize,
        /// Seed of the weights and the data.
        #[arg(long, default_value_t = 2)]
        seed: u64,
        /// Override the preset's batch size.
        #[arg(long)]
        batch: Option<usize>,
        /// Override the preset's initial channels.
        #[arg(long)]
        channels: Option<usize>,
        /// Override the preset's number of cells.
        #[arg(long)]
        layers: Option<usize>,
        /// Time the unfused reference composition instead of the fused mixed ops.
        #[arg(long)]
        no_fuse: bool,
        /// off: issue every launch from the host and time the architecture and weight halves
        /// apart; auto: replay the whole step as a captured graph where the device can (CUDA,
        /// emu-deferred), with at least 2 warm-up steps (the first eager, the second captured).
        #[arg(long, default_value = "off", value_parser = ["auto", "off"])]
        cuda_graph: String,
        /// Search method's supernet (the preset's shape and batch; --batch overrides): darts,
        /// pc-darts (K = 4) or fair-darts.
        #[arg(long, default_value = "darts", value_parser = ["darts", "pc-darts", "fair-darts"])]
        method: String,
    },
}

/// Options of `darts search`.
#[derive(clap::Args)]
struct SearchArgs {
    /// Preset: paper (C=16, 8 cells, batch 64, 50 epochs) or cpu-small (C=4, 5 cells, batch
    /// 32, 10 epochs; an epoch of the shipped sample in under two minutes on two cores).
    /// Default: paper on CUDA, cpu-small on the CPU.
    #[arg(long)]
    preset: Option<String>,
    /// Architecture gradient: first or second order.
    #[arg(long, default_value = "first")]
    order: String,
    /// Device: auto (CUDA if present, else CPU), cpu, cuda, emu or emu-deferred (the emulator
    /// queuing work as a GPU does, with lifetime checks).
    #[arg(long, default_value = "auto")]
    device: DeviceChoice,
    /// CIFAR-10 binary directory (default: data/cifar-10-batches-bin if present, else the
    /// shipped sample data/sample).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Epochs (overrides the preset).
    #[arg(long)]
    epochs: Option<usize>,
    /// Cells (overrides the preset).
    #[arg(long)]
    layers: Option<usize>,
    /// Initial channels (overrides the preset).
    #[arg(long)]
    channels: Option<usize>,
    /// Batch size (overrides the preset).
    #[arg(long)]
    batch: Option<usize>,
    /// Seed of initialisation, data order and augmentation.
    #[arg(long, default_value_t = 2)]
    seed: u64,
    /// Fraction of the training images for the weights (the rest train the alphas).
    #[arg(long, default_value_t = 0.5)]
    train_portion: f64,
    /// Precision: f32, or f64 (CPU only, for verification).
    #[arg(long, default_value = "f32")]
    dtype: String,
    /// Output directory.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Continue the run in --out from its checkpoint with the settings of its config.json; a
    /// flag asking for another value of a recorded setting (--epochs, --batch, --lr, ...) is an
    /// error.
    #[arg(long)]
    resume: bool,
    /// Start from the weights and alphas of this checkpoint (reference names).
    #[arg(long)]
    init: Option<PathBuf>,
    /// Use only the first N training images (quick experiments).
    #[arg(long)]
    train_images: Option<usize>,
    /// Stop after this many steps (with a checkpoint, as on Ctrl-C).
    #[arg(long)]
    max_steps: Option<usize>,
    /// Run the unfused reference composition of ops instead of the fused mixed ops (same math,
    /// more launches and memory; for checking the fused path).
    #[arg(long)]
    no_fuse: bool,
    /// Wait for and check every kernel launch (slow): a device error then names the kernel that
    /// caused it instead of surfacing at a later call. Results are unchanged. On the emulator
    /// every launch is run to completion and checked anyway, so this changes nothing there.
    #[arg(long)]
    debug_sync: bool,
    /// On a GPU, capture the search step as a CUDA graph once its shapes repeat and replay it
    /// (auto), or issue every launch of every step from the host (off). Same results either
    /// way; a step of another shape (the last partial batch) runs without the graph. Off under
    /// --debug-sync. The CPU never uses graphs; on the emulator only emu-deferred does.
    #[arg(long, default_value = "auto", value_parser = ["auto", "off"])]
    cuda_graph: String,
    /// Every N epochs, compute the dominant eigenvalue λ_max of the validation loss' Hessian
    /// with respect to α (RobustDARTS' collapse indicator; power iteration over finite-difference
    /// Hessian-vector products on one fixed validation batch, the arch weight decay on the
    /// diagonal) and log it as diagnostics.lambda_max in the epoch line (darts plot draws it).
    /// 0: never.
    #[arg(long, default_value_t = 0)]
    hessian_every: usize,
    /// DARTS-ES: stop when the local average of λ_max (window 5) grows by more than 1.3x over 4
    /// evaluations (from epoch 10 on) and return the genotype of the earlier epoch. Needs
    /// --hessian-every.
    #[arg(long)]
    early_stop: bool,
    #[command(flatten)]
    hyper: search_flags::HyperArgs,
    #[command(flatten)]
    method: search_flags::MethodArgs,
}

fn main() -> ExitCode {
    // A GPU failure inside an op (out of memory, a driver error, an emulator check) unwinds
    // with its message as payload: print it as an error, not as a panic with a backtrace.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| match darts::tensor::gpu_error_of(info.payload()) {
        Some(e) => eprintln!("error: {e}"),
        None => default_hook(info),
    }));
    let cli = Cli::parse();
    match cli.command {
        Command::Check { batch, reps } => check(batch, reps.max(1)),
        Command::Info => info(),
        Command::Search(args) => search(*args),
        Command::Plot { run, out } => plot(&run, out.as_deref()),
        Command::Train(args) => train_cmd::train(*args),
        Command::Eval { checkpoint, data, device, batch, debug_sync } => {
            eval(&checkpoint, data, device, batch, debug_sync)
        }
        Command::Verify { device, ops, batch, reps } => verify(device, &ops, batch, reps),
        Command::Bench(b) => bench(b),
    }
}

fn bench(cmd: BenchCommand) -> ExitCode {
    use darts::bench::{self, roofline};
    let fail = |e: &dyn std::fmt::Display| {
        eprintln!("error: {e}");
        ExitCode::from(2)
    };
    match cmd {
        BenchCommand::Kernels { device, batch, filter, samples } => {
            let (device, why_cpu) = match darts::device::open(device, false) {
                Ok(d) => d,
                Err(e) => return fail(&e),
            };
            if let Some(why) = why_cpu {
                eprintln!("device: CPU (no CUDA: {why})");
            }
            let emu = device.name() == "emu"; // either emulator mode
            if emu {
                eprintln!(
                    "note: the emulator's times say nothing about a GPU; this only rehearses the command"
                );
            }
            let batch = batch.unwrap_or(if emu { 2 } else { 64 });
            if batch < 2 {
                return fail(&"--batch must be at least 2 (batch norm needs two values per channel)");
            }
            let mut cases = bench::kernels::kernel_cases(&device, batch, &filter);
            if cases.is_empty() {
                return fail(&format!("no kernel case matches --filter {filter:?}"));
            }
            println!(
                "roofline on {} ({}), batch {batch}, {} cases",
                device.name(),
                bench::machine_name(&device),
                cases.len()
            );
            let ceilings = roofline::measure_ceilings(&device, if emu { 2 } else { 64 });
            println!("{}", roofline::format_ceilings(&ceilings));
            println!("{}", roofline::header());
            let samples = samples.unwrap_or(if device.name() == "cuda" { 20 } else { 5 });
            roofline::measure(&device, &mut cases, samples, |r| {
                println!("{}", roofline::format_row(r, &ceilings))
            });
            ExitCode::SUCCESS
        }
        BenchCommand::TrainStep { device, preset, steps, warmup, batch } => {
            let Some(mut b) = bench::train_step::TrainStepBench::preset(&preset) else {
                return fail(&format!("unknown preset {preset:?}: expected paper or cpu-small"));
            };
            if steps == 0 || batch == Some(0) {
                return fail(&"--steps and --batch must be at least 1");
            }
            (b.steps, b.warmup) = (steps, warmup);
            b.config.batch = batch.unwrap_or(b.config.batch);
            let device = match darts::device::open(device, false) {
                Ok((d, _)) => d,
                Err(e) => return fail(&e),
            };
            println!("{}", bench::train_step::run(&b, &device));
            ExitCode::SUCCESS
        }
        BenchCommand::Step {
            device,
            preset,
            order,
            steps,
            warmup,
            seed,
            batch,
            channels,
            layers,
            no_fuse,
            cuda_graph,
            method,
        } => {
            let order = match order.as_str() {
                "first" => darts::search::Order::First,
                "second" => darts::search::Order::Second,
                o => return fail(&format!("--order must be first or second, got {o:?}")),
            };
            let Some(mut b) = bench::step::StepBench::preset(&preset, order) else {
                return fail(&format!("unknown preset {preset:?}: expected paper or cpu-small"));
            };
            if steps == 0 {
                return fail(&"--steps must be at least 1");
            }
            b.steps = steps;
            b.warmup = warmup;
            b.method = darts::model::Method::from_name(&method, darts::model::method::PC_K)
                .expect("clap checked it");
            b.fuse = !no_fuse;
            b.graph = if cuda_graph == "auto" { GraphMode::Auto } else { GraphMode::Off };
            b.seed = seed;
            b.batch = batch.unwrap_or(b.batch);
            b.channels = channels.unwrap_or(b.channels);
            b.layers = layers.unwrap_or(b.layers);
            if b.batch < 2 || b.channels == 0 || b.layers < 3 {
                return fail(&"--batch must be at least 2, --channels positive and --layers at least 3");
            }
            let (device, why_cpu) = match darts::device::open(device, false) {
                Ok(d) => d,
                Err(e) => return fail(&e),
            };
            if let Some(why) = why_cpu {
                eprintln!("device: CPU (no CUDA: {why})");
            }
            eprintln!(
                "step bench: {} C={} layers={} batch={} order={:?}{}, {} warm-up + {} timed steps on {}",
                b.preset,
                b.channels,
                b.layers,
                b.batch,
                b.order,
                if b.fuse { "" } else { " unfused" },
                b.warmup,
                b.steps,
                device.name()
            );
            let report = bench::step::run(&b, &device);
            println!("{}", report.to_json());
            ExitCode::SUCCESS
        }
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

/// Installs a SIGINT handler that asks the run to checkpoint and stop after the current step.
fn install_ctrl_c() {
    extern "C" fn on_sigint(_: i32) {
        darts::search::run::INTERRUPTED.store(true, std::sync::atomic::Ordering::SeqCst);
    }
    extern "C" {
        fn signal(signum: i32, handler: extern "C" fn(i32)) -> usize;
    }
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        signal(2, on_sigint);
    }
}

/// `--data`, else the default under the current directory (saying which), as an absolute
/// path: a run records it in its config.json, and `eval` and `--resume` may run elsewhere.
fn data_dir(data: Option<PathBuf>) -> PathBuf {
    let dir = match data {
        Some(d) => d,
        None => {
            let (dir, what) = darts::data::default_data_dir(Path::new("."));
            eprintln!("data: {} ({what})", dir.display());
            dir
        }
    };
    std::path::absolute(&dir).unwrap_or(dir)
}

/// The data `eval` reads: `--data`, else the run's own (its config.json beside the checkpoint),
/// else the default under the current directory. An error names what was looked for.
fn eval_data_dir(data: Option<PathBuf>, checkpoint: &Path) -> Result<PathBuf, String> {
    if let Some(d) = data {
        return Ok(d);
    }
    let mut tried = Vec::new();
    if let Some((dir, config)) = darts::search::run::data_of_run(checkpoint) {
        if dir.is_dir() {
            eprintln!("data: {} (the run's, from {})", dir.display(), config.display());
            return Ok(dir);
        }
        tried.push(format!("{} (from {})", dir.display(), config.display()));
    }
    let cwd = std::env::current_dir().map_err(|e| format!("the current directory: {e}"))?;
    let (dir, what) = darts::data::default_data_dir(&cwd);
    if dir.is_dir() {
        eprintln!("data: {} ({what})", dir.display());
        return Ok(dir);
    }
    tried.push(format!("{} and {}", cwd.join(darts::data::FULL_DIR).display(), dir.display()));
    Err(format!("no CIFAR-10 data found (looked for {}); pass --data DIR", tried.join(", then ")))
}

fn search(a: SearchArgs) -> ExitCode {
    use darts::search::run::{self, RunOptions, SearchConfig};
    let fail = |e: &dyn std::fmt::Display| {
        eprintln!("error: {e}");
        ExitCode::FAILURE
    };
    let (device, why_cpu) = match darts::device::open(a.device, a.debug_sync) {
        Ok(d) => d,
        Err(e) => return fail(&e),
    };
    if let Some(why) = why_cpu {
        eprintln!("device: CPU (no CUDA: {why})");
    } else {
        eprintln!("device: {device:?}");
    }
    // The flags that override a preset's (or, resuming, must agree with the run's) values.
    let overrides = |cfg: &mut SearchConfig| -> Result<(), String> {
        if let Some(p) = &a.preset {
            cfg.preset = p.clone();
        }
        if let Some(m) = &a.method.method {
            cfg.method = m.clone();
        }
        cfg.epochs = a.epochs.unwrap_or(cfg.epochs);
        cfg.layers = a.layers.unwrap_or(cfg.layers);
        cfg.channels = a.channels.unwrap_or(cfg.channels);
        cfg.batch = a.batch.unwrap_or(cfg.batch);
        cfg.train_images = a.train_images.or(cfg.train_images);
        if a.hessian_every > 0 {
            cfg.hessian_every = a.hessian_every;
        }
        cfg.early_stop |= a.early_stop;
        if cfg.early_stop && cfg.hessian_every == 0 {
            return Err("--early-stop needs --hessian-every N (the eigenvalues it watches)".into());
        }
        a.method.apply(cfg)?;
        a.hyper.apply(cfg)
    };
    let mut cfg = if a.resume {
        let Some(out) = &a.out else { return fail(&"--resume needs --out (the run directory)") };
        let recorded = match run::read_config(out) {
            Ok(c) => c,
            Err(e) => return fail(&e),
        };
        let mut wanted = recorded.clone();
        if let Err(e) = overrides(&mut wanted).and_then(|()| search_flags::check_resume(&recorded, &wanted)) {
            return fail(&e);
        }
        recorded
    } else {
        let method = a.method.method.as_deref().unwrap_or("darts");
        let method =
            darts::model::Method::from_name(method, darts::model::method::PC_K).expect("clap checked it");
        let preset = match a.preset.as_deref() {
            Some(p) => p,
            None if device == darts::Device::Cpu => {
                eprintln!("preset: cpu-small (running on the CPU; --preset paper for the full network)");
                "cpu-small"
            }
            None => {
                eprintln!("preset: paper");
                "paper"
            }
        };
        let Some(mut cfg) = SearchConfig::preset(preset, method) else {
            return fail(&format!("unknown preset {preset:?}: expected paper or cpu-small"));
        };
        if !matches!(a.order.as_str(), "first" | "second") {
            return fail(&format!("--order must be first or second, got {:?}", a.order));
        }
        if !matches!(a.dtype.as_str(), "f32" | "f64") {
            return fail(&format!("--dtype must be f32 or f64, got {:?}", a.dtype));
        }
        cfg.order = a.order.clone();
        cfg.dtype = a.dtype.clone();
        cfg.seed = a.seed;
        cfg.train_portion = a.train_portion;
        if let Err(e) = overrides(&mut cfg) {
            return fail(&e);
        }
        if let Err(e) = cfg.validate() {
            return fail(&e);
        }
        if cfg.epochs == 0 || cfg.batch == 0 || cfg.channels == 0 || cfg.layers < 3 {
            return fail(&"--epochs, --batch and --channels must be positive and --layers at least 3");
        }
        cfg.data = data_dir(a.data.clone());
        cfg
    };
    // Fusion changes how a step executes, not what it computes: a resumed run may switch.
    cfg.fuse = !a.no_fuse;
    let out = a.out.clone().unwrap_or_else(|| {
        let method = if cfg.method == "darts" { String::new() } else { format!("{}-", cfg.method) };
        PathBuf::from(format!("runs/{method}{}-{}-seed{}", cfg.preset, cfg.order, cfg.seed))
    });
    if !a.resume && out.join("checkpoint.safetensors").exists() {
        return fail(&format!(
            "{} already holds a run; use --resume to continue it or --out for a new directory",
            out.display()
        ));
    }
    eprintln!(
        "search: {} C={} layers={} batch={} epochs={} order={} dtype={}{} -> {}",
        cfg.method,
        cfg.channels,
        cfg.layers,
        cfg.batch,
        cfg.epochs,
        cfg.order,
        cfg.dtype,
        if cfg.fuse { "" } else { " unfused" },
        out.display()
    );
    install_ctrl_c();
    let opts = RunOptions {
        out: out.clone(),
        resume: a.resume,
        init: a.init,
        device,
        max_steps: a.max_steps,
        progress: true,
        // A synchronisation after every launch cannot happen inside a capture.
        graph: if a.cuda_graph == "off" || a.debug_sync { GraphMode::Off } else { GraphMode::Auto },
    };
    match run::run(&cfg, &opts) {
        Ok(s) => {
            if s.interrupted {
                eprintln!(
                    "stopped; checkpoint written; continue with: darts search --resume --out {}",
                    out.display()
                );
            } else {
                eprintln!("done: {} epochs", s.epochs_done);
                eprintln!(
                    "train what it found from scratch: darts train --genotype {}",
                    out.join("genotype.json").display()
                );
            }
            println!("{}", s.genotype.to_python());
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e),
    }
}

/// `darts plot`: writes a run's SVG plots and lists them.
fn plot(run: &Path, out: Option<&Path>) -> ExitCode {
    match darts::search::plot::plot_run(run, out.unwrap_or(run)) {
        Ok(files) => {
            for f in files {
                println!("{}", f.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn eval(
    checkpoint_path: &Path,
    data: Option<PathBuf>,
    choice: DeviceChoice,
    batch: usize,
    debug_sync: bool,
) -> ExitCode {
    use darts::model::{NetConfig, Network};
    use darts::search::{SearchState, StepConfig};
    let fail = |e: &dyn std::fmt::Display| {
        eprintln!("error: {e}");
        ExitCode::FAILURE
    };
    let (arrays, meta) = match darts::checkpoint::read(checkpoint_path) {
        Ok(a) => a,
        Err(e) => return fail(&e),
    };
    let (device, _) = match darts::device::open(choice, debug_sync) {
        Ok(d) => d,
        Err(e) => return fail(&e),
    };
    let dir = match eval_data_dir(data, checkpoint_path) {
        Ok(d) => d,
        Err(e) => return fail(&e),
    };
    if meta.get("format").map(String::as_str) == Some(darts::train::run::FORMAT) {
        return eval_trained(checkpoint_path, &arrays, &meta, &dir, &device, batch);
    }
    // The network's size from the tensor shapes, as the reference's loader does.
    let Some(stem) = arrays.get("stem.0.weight") else {
        return fail(&format!(
            "{}: no stem.0.weight: not a DARTS search checkpoint",
            checkpoint_path.display()
        ));
    };
    let channels = stem.shape[0] / 3;
    let layers =
        (0..).take_while(|i| arrays.contains_key(&format!("cells.{i}.preprocess1.op.1.weight"))).count();
    let classes = arrays.get("classifier.bias").map(|a| a.shape[0]).unwrap_or(10);
    let (net, store) = Network::new(
        NetConfig { channels, layers, classes, ..Default::default() },
        darts::DType::F32,
        &mut Rng::new(0),
    );
    let mut state = SearchState::new(net, store, StepConfig::default());
    let prefixes = darts::search::state_io::STATE_PREFIXES;
    if let Err(e) = darts::checkpoint::load_store(&mut state.store, &arrays, checkpoint_path, true, &prefixes)
    {
        return fail(&e);
    }
    state.store.to_device(&device);
    let data = match darts::data::Cifar10::open(&dir) {
        Ok(d) => d,
        Err(e) => return fail(&e),
    };
    let test = data.test().clone();
    let (loss, top1) = darts::search::run::evaluate(&mut state, &test, 0..test.len(), batch.max(1), &device);
    println!(
        "{{\"checkpoint\": {:?}, \"images\": {}, \"loss\": {loss}, \"top1\": {top1}, \"channels\": {channels}, \"layers\": {layers}}}",
        checkpoint_path.display().to_string(),
        test.len()
    );
    ExitCode::SUCCESS
}

/// `darts eval` of a `darts train` checkpoint: its evaluation network on the CIFAR-10 test set or
/// the ImageNet tree's val/ folder.
fn eval_trained(
    checkpoint_path: &Path,
    arrays: &darts::checkpoint::Arrays,
    meta: &std::collections::HashMap<String, String>,
    dir: &Path,
    device: &darts::Device,
    batch: usize,
) -> ExitCode {
    let fail = |e: &dyn std::fmt::Display| {
        eprintln!("error: {e}");
        ExitCode::FAILURE
    };
    let mut state = match darts::train::run::load_checkpoint(arrays, meta, checkpoint_path) {
        Ok(s) => s,
        Err(e) => return fail(&e),
    };
    state.store.to_device(device);
    let (e, images) = match darts::train::run::evaluate_on(&mut state, dir, batch.max(1), device) {
        Ok(r) => r,
        Err(e) => return fail(&e),
    };
    let c = state.net.config();
    println!(
        "{{\"checkpoint\": {:?}, \"network\": \"eval\", \"images\": {images}, \"loss\": {}, \"top1\": {}, \"top5\": {}, \"channels\": {}, \"layers\": {}}}",
        checkpoint_path.display().to_string(),
        e.loss,
        e.top1,
        e.top5,
        c.channels,
        c.layers
    );
    ExitCode::SUCCESS
}

fn verify(choice: DeviceChoice, only: &[String], batch: Option<usize>, reps: Option<usize>) -> ExitCode {
    if !(choice == DeviceChoice::Cuda || choice.is_emu()) {
        eprintln!("error: verify checks a GPU runtime: --device cuda, emu or emu-deferred");
        return ExitCode::from(2);
    }
    let device = match darts::device::open(choice, true) {
        Ok((d, _)) => d,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let emu = choice.is_emu();
    let batch = batch.unwrap_or(if emu { 2 } else { 64 });
    let reps = reps.unwrap_or(if emu { 1 } else { 5 });
    let mut cases = darts::verify::darts_cases(batch);
    if !only.is_empty() {
        let known: Vec<&str> = cases.iter().map(|c| c.op).collect();
        if let Some(bad) = only.iter().find(|o| !known.contains(&o.as_str())) {
            let mut names: Vec<&str> = Vec::new();
            for k in known {
                if !names.contains(&k) {
                    names.push(k);
                }
            }
            eprintln!("error: unknown op {bad:?}; known: {}", names.join(", "));
            return ExitCode::from(2);
        }
        cases.retain(|c| only.iter().any(|o| o == c.op));
    }
    println!(
        "verify on {device:?}, batch {batch}, {} cases, tolerance {:e}; each case runs again {} and must give the same bits",
        cases.len(),
        darts::verify::TOLERANCE,
        if emu { "under emulator schedule 1 (threads and blocks in decreasing order)" } else { "on the same device" }
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
            kernel_table(&rt);
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

/// Per kernel: what the driver's JIT made of our PTX on this device.
fn kernel_table(rt: &darts::backend::gpu::cuda::CudaRuntime) {
    use darts::backend::gpu::kernels;
    println!(
        "  {:<40} {:>5} {:>11} {:>12} {:>11} {:>4}",
        "kernel (as JIT-compiled here)", "regs", "local B", "static smem", "max threads", "arch"
    );
    let mut spills = 0;
    for k in kernels::all_ids() {
        match rt.kernel_attributes(k) {
            Ok(a) => {
                spills += (a.local_bytes > 0) as usize;
                println!(
                    "  {k:<40} {:>5} {:>11} {:>12} {:>11} {:>4}",
                    a.regs, a.local_bytes, a.static_shared, a.max_threads, a.binary_version
                );
            }
            Err(e) => println!("  {k:<40} error: {e}"),
        }
    }
    println!(
        "  {} kernels, {spills} with local memory (spills or a stack frame)",
        kernels::all_kernels().count()
    );
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
    darts::bench::median(&mut t)
}
