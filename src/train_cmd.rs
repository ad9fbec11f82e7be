//! `darts train`: arguments and the command (the training itself is `darts::train`).

use std::path::PathBuf;
use std::process::ExitCode;

use darts::device::DeviceChoice;
use darts::search::genotype::Genotype;
use darts::train::run::{self, TrainOptions};
use darts::train::{Dataset, LrSchedule, TrainConfig};

/// Options of `darts train`.
#[derive(clap::Args)]
pub struct TrainArgs {
    /// The architecture: a genotype.json or genotype.txt file (as `darts search` writes), the
    /// reference's `Genotype(normal=[...], ...)` text, or a published name (DARTS_V1, DARTS_V2,
    /// DARTS = DARTS_V2). Not needed with --resume.
    #[arg(long)]
    genotype: Option<String>,
    /// Preset: paper (the DARTS CIFAR-10 protocol: C=36, 20 cells, batch 96, 600 epochs, cutout
    /// 16, auxiliary 0.4, drop path 0.2), cpu-small (C=16, 8 cells, batch 64, 20 epochs, same
    /// regularisers) or imagenet (the mobile setting: C=48, 14 cells, batch 128, 250 epochs, lr
    /// 0.1 x 0.97 per epoch, weight decay 3e-5, label smoothing 0.1, auxiliary 0.4, no drop path,
    /// no cutout). Default: imagenet with --dataset imagenet, else paper on CUDA and cpu-small on
    /// the CPU.
    #[arg(long)]
    preset: Option<String>,
    /// Data set: cifar10 or imagenet (--data then holds train/ and val/ class folders). Default:
    /// the preset's (cifar10 unless --preset imagenet).
    #[arg(long)]
    dataset: Option<Dataset>,
    /// Device: auto (CUDA if present, else CPU), cpu, cuda, emu or emu-deferred.
    #[arg(long, default_value = "auto")]
    device: DeviceChoice,
    /// CIFAR-10 binary directory (default: data/cifar-10-batches-bin if present, else the
    /// shipped sample data/sample), or for ImageNet (required) the folder holding train/ and val/.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Epochs (overrides the preset; the cosine schedule's period).
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
    /// Learning rate at epoch 0 (default 0.025; imagenet 0.1).
    #[arg(long)]
    lr: Option<f64>,
    /// Learning-rate schedule: cosine (to 0 at the last epoch) or step (x --lr-gamma every
    /// epoch). Default: the preset's (step for imagenet, else cosine).
    #[arg(long)]
    lr_schedule: Option<LrSchedule>,
    /// Factor per epoch of the step schedule (default 0.97).
    #[arg(long)]
    lr_gamma: Option<f64>,
    /// Label smoothing of the training loss, in [0, 1) (default 0; imagenet 0.1).
    #[arg(long)]
    label_smoothing: Option<f64>,
    /// ImageNet crop side (default 224, the only size NetworkImageNet's final 7x7 average pool
    /// accepts; others are refused).
    #[arg(long)]
    image_size: Option<usize>,
    /// SGD momentum (default 0.9).
    #[arg(long)]
    momentum: Option<f64>,
    /// SGD weight decay (default 3e-4; imagenet 3e-5).
    #[arg(long)]
    weight_decay: Option<f64>,
    /// Gradient-norm clip (default 5).
    #[arg(long)]
    grad_clip: Option<f64>,
    /// Cutout side in pixels, 0 for none (default 16; CIFAR-10 only, imagenet 0).
    #[arg(long)]
    cutout: Option<u8>,
    /// Train without the auxiliary head.
    #[arg(long)]
    no_auxiliary: bool,
    /// Weight of the auxiliary loss (default 0.4).
    #[arg(long)]
    auxiliary_weight: Option<f64>,
    /// Drop-path probability reached at the last epoch, 0 for none (default 0.2; imagenet 0).
    #[arg(long)]
    drop_path: Option<f64>,
    /// Seed of initialisation, data order, augmentation and drop path.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Precision: f32, or f64 (CPU only, for verification).
    #[arg(long, default_value = "f32")]
    dtype: String,
    /// Use only the first N training images (quick experiments).
    #[arg(long)]
    train_images: Option<usize>,
    /// Evaluate on only the first N test images (ImageNet: validation images).
    #[arg(long)]
    test_images: Option<usize>,
    /// Output directory (default runs/train-<preset>-seed<seed>).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Continue the run in --out from its checkpoint (its config.json is used).
    #[arg(long)]
    resume: bool,
    /// Stop after this many steps (with a checkpoint, as on Ctrl-C).
    #[arg(long)]
    max_steps: Option<usize>,
    /// Wait for and check every kernel launch (slow): a device error then names its kernel.
    #[arg(long)]
    debug_sync: bool,
}

/// Runs `darts train`.
pub fn train(a: TrainArgs) -> ExitCode {
    let fail = |e: &dyn std::fmt::Display| {
        eprintln!("error: {e}");
        ExitCode::FAILURE
    };
    let (device, why_cpu) = match darts::device::open(a.device, a.debug_sync) {
        Ok(d) => d,
        Err(e) => return fail(&e),
    };
    match why_cpu {
        Some(why) => eprintln!("device: CPU (no CUDA: {why})"),
        None => eprintln!("device: {device:?}"),
    }
    let cfg = if a.resume {
        let Some(out) = &a.out else { return fail(&"--resume needs --out (the run directory)") };
        match run::read_config(out) {
            Ok(c) => c,
            Err(e) => return fail(&e),
        }
    } else {
        let Some(arg) = &a.genotype else {
            return fail(
                &"--genotype is required: a genotype.json file, Genotype(...) text, or DARTS_V1 / DARTS_V2",
            );
        };
        let genotype = match Genotype::from_arg(arg) {
            Ok(g) => g,
            Err(e) => return fail(&e),
        };
        let preset = a.preset.clone().unwrap_or_else(|| {
            match (a.dataset, &device) {
                (Some(Dataset::Imagenet), _) => "imagenet",
                (_, darts::Device::Cpu) => "cpu-small",
                _ => "paper",
            }
            .to_string()
        });
        let Some(mut cfg) = TrainConfig::preset(&preset, &genotype.to_python()) else {
            return fail(&format!("unknown preset {preset:?}: expected paper, cpu-small or imagenet"));
        };
        cfg.dataset = a.dataset.unwrap_or(cfg.dataset);
        cfg.epochs = a.epochs.unwrap_or(cfg.epochs);
        cfg.layers = a.layers.unwrap_or(cfg.layers);
        cfg.channels = a.channels.unwrap_or(cfg.channels);
        cfg.batch = a.batch.unwrap_or(cfg.batch);
        cfg.lr = a.lr.unwrap_or(cfg.lr);
        cfg.lr_schedule = a.lr_schedule.unwrap_or(cfg.lr_schedule);
        cfg.lr_gamma = a.lr_gamma.unwrap_or(cfg.lr_gamma);
        cfg.label_smoothing = a.label_smoothing.unwrap_or(cfg.label_smoothing);
        cfg.image_size = a.image_size.unwrap_or(cfg.image_size);
        cfg.momentum = a.momentum.unwrap_or(cfg.momentum);
        cfg.weight_decay = a.weight_decay.unwrap_or(cfg.weight_decay);
        cfg.grad_clip = a.grad_clip.unwrap_or(cfg.grad_clip);
        cfg.cutout = a.cutout.unwrap_or(cfg.cutout);
        cfg.auxiliary = !a.no_auxiliary;
        cfg.auxiliary_weight = a.auxiliary_weight.unwrap_or(cfg.auxiliary_weight);
        cfg.drop_path = a.drop_path.unwrap_or(cfg.drop_path);
        cfg.seed = a.seed;
        cfg.train_images = a.train_images;
        cfg.test_images = a.test_images;
        if a.dtype != "f32" && a.dtype != "f64" {
            return fail(&format!("--dtype must be f32 or f64, got {:?}", a.dtype));
        }
        cfg.dtype = a.dtype.clone();
        if !(0.0..1.0).contains(&cfg.drop_path) {
            return fail(&format!("--drop-path must be in [0, 1), got {}", cfg.drop_path));
        }
        if cfg.lr <= 0.0 || cfg.grad_clip <= 0.0 {
            return fail(&"--lr and --grad-clip must be positive");
        }
        cfg.data =
            match (cfg.dataset, &a.data) {
                (Dataset::Imagenet, None) => return fail(
                    &"--dataset imagenet needs --data DIR (a folder holding train/ and val/ class folders)",
                ),
                (Dataset::Imagenet, Some(d)) => std::path::absolute(d).unwrap_or_else(|_| d.clone()),
                (Dataset::Cifar10, _) => crate::data_dir(a.data.clone()),
            };
        if a.image_size.is_some() && cfg.dataset == Dataset::Cifar10 {
            return fail(&"--image-size is for --dataset imagenet (CIFAR-10 images are 32x32)");
        }
        if let Err(e) = cfg.validate() {
            return fail(&e);
        }
        cfg
    };
    let out =
        a.out.clone().unwrap_or_else(|| PathBuf::from(format!("runs/train-{}-seed{}", cfg.preset, cfg.seed)));
    if !a.resume && out.join("checkpoint.safetensors").exists() {
        return fail(&format!(
            "{} already holds a run; use --resume to continue it or --out for a new directory",
            out.display()
        ));
    }
    eprintln!(
        "train: {} on {} C={} layers={} batch={} epochs={} lr={} ({}) aux={} drop_path={} cutout={} \
         label_smoothing={} -> {}",
        cfg.genotype,
        cfg.dataset,
        cfg.channels,
        cfg.layers,
        cfg.batch,
        cfg.epochs,
        cfg.lr,
        cfg.lr_schedule,
        if cfg.auxiliary { cfg.auxiliary_weight } else { 0.0 },
        cfg.drop_path,
        cfg.cutout,
        cfg.label_smoothing,
        out.display()
    );
    crate::install_ctrl_c();
    let opts =
        TrainOptions { out: out.clone(), resume: a.resume, device, max_steps: a.max_steps, progress: true };
    match run::run(&cfg, &opts) {
        Ok(s) => {
            eprintln!("parameters (without the auxiliary head): {}", s.params);
            if s.interrupted {
                eprintln!(
                    "stopped; checkpoint written; continue with: darts train --resume --out {}",
                    out.display()
                );
            } else {
                eprintln!("done: {} epochs", s.epochs_done);
            }
            if let (Some(acc), Some(top5)) = (s.test_acc.last(), s.test_top5.last()) {
                println!(
                    "{{\"epochs\": {}, \"test_acc\": {acc}, \"test_top5\": {top5}, \"params\": {}}}",
                    s.epochs_done, s.params
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e),
    }
}
