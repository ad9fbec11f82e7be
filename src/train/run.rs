//! A training run: the loop of [`super`]'s protocol with outputs in a run directory
//! (`config.json`, `log.jsonl` with a line per step and per epoch, `checkpoint.safetensors`
//! written atomically after every epoch and on Ctrl-C), and exact `--resume`: the checkpoint
//! holds the network under the reference's `NetworkCIFAR` / `NetworkImageNet` names, the SGD
//! momentum buffers (`optim.sgd.momentum.<name>`), the position (`run.position`) and the
//! generators of the data order, augmentation and drop path (`rng.*`; `rng.train_sampler` is the
//! CIFAR-10 sampler's or the ImageNet source's state, the same words), so a resumed run continues
//! bit for bit. What differs per data set is in [`super::data`].

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Instant;

use super::data::{Evaluation, TrainData};
use super::step::step;
use super::{Dataset, TrainConfig};
use crate::checkpoint::{self, Arrays, CheckpointError};
use crate::data::SamplerState;
use crate::model::eval::{
    count_without_aux, drop_path_prob, DropPath, EvalConfig, EvalNetwork, NetworkCifar, NetworkImageNet,
};
use crate::nn::Store;
use crate::optim::Sgd;
use crate::rng::Rng;
use crate::search::genotype::Genotype;
use crate::search::run::{array_words, io, words_array, write_file, Progress, RunError, INTERRUPTED};
use crate::tensor::{Device, Tensor};

/// The `format` metadata of a training checkpoint (how `darts eval` tells it from a search's).
pub const FORMAT: &str = "darts train checkpoint";

/// Prefixes of non-network arrays in a training checkpoint.
const STATE_PREFIXES: [&str; 3] = ["optim.", "run.", "rng."];

/// Domain of the drop-path generator, apart from the network's initialisation and the data's.
const DROP_PATH_DOMAIN: u64 = 0x4452_4f50_5041_5448; // "DROPPATH"

/// Options of one invocation that are not part of the run's identity.
pub struct TrainOptions {
    /// The run directory.
    pub out: std::path::PathBuf,
    /// Continue from `out/checkpoint.safetensors`.
    pub resume: bool,
    /// Device to run on.
    pub device: Device,
    /// Stop (as on Ctrl-C, with a checkpoint) after this many steps in this invocation.
    pub max_steps: Option<usize>,
    /// Show a progress bar on stderr.
    pub progress: bool,
}

/// The end of a run.
pub struct TrainSummary {
    /// Epochs completed.
    pub epochs_done: usize,
    /// Test (ImageNet: validation) top-1 accuracy after each epoch completed in this invocation.
    pub test_acc: Vec<f64>,
    /// The same, top-5.
    pub test_top5: Vec<f64>,
    /// Whether it stopped early (Ctrl-C or `max_steps`).
    pub interrupted: bool,
    /// Parameters not counting the auxiliary head (the reference's count).
    pub params: usize,
}

/// The network, its parameters and the optimiser.
pub struct TrainState {
    /// The evaluation network.
    pub net: EvalNetwork,
    /// Its parameters and BN buffers.
    pub store: Store,
    /// SGD over every parameter.
    pub sgd: Sgd,
}

/// Builds the network of `cfg` for `classes` classes (`NetworkCIFAR` or `NetworkImageNet` by
/// its data set, initialised from its seed).
pub fn build(cfg: &TrainConfig, classes: usize) -> Result<TrainState, RunError> {
    let genotype = Genotype::parse(&cfg.genotype).map_err(|e| RunError::Config(e.to_string()))?;
    let config = EvalConfig { channels: cfg.channels, layers: cfg.layers, classes, auxiliary: cfg.auxiliary };
    let (dtype, rng) = (cfg.dtype(), &mut Rng::new(cfg.seed));
    let built = match cfg.dataset {
        Dataset::Cifar10 => {
            NetworkCifar::new(config, &genotype, dtype, rng).map(|(n, s)| (EvalNetwork::Cifar(n), s))
        }
        Dataset::Imagenet => {
            NetworkImageNet::new(config, &genotype, dtype, rng).map(|(n, s)| (EvalNetwork::ImageNet(n), s))
        }
    };
    let (net, store) = built.map_err(|e| RunError::Config(e.to_string()))?;
    let sgd = Sgd::new(store.params.len(), cfg.momentum, cfg.weight_decay);
    Ok(TrainState { net, store, sgd })
}

/// Where a run stands.
struct Position {
    epoch: usize,
    step_in_epoch: usize,
    global_step: usize,
    sampler: SamplerState,
    drop_rng: [u64; 4],
}

fn save(out: &Path, cfg: &TrainConfig, s: &TrainState, pos: &Position) -> Result<(), RunError> {
    let mut arrays = checkpoint::store_arrays(&s.store);
    for (p, b) in s.store.params.iter().zip(&s.sgd.bufs) {
        if let Some(b) = b {
            arrays.insert(format!("optim.sgd.momentum.{}", p.name), checkpoint::tensor_array(b));
        }
    }
    let position = [pos.epoch as u64, pos.step_in_epoch as u64, pos.global_step as u64];
    arrays.insert("run.position".into(), words_array(&position));
    arrays.insert("rng.train_sampler".into(), words_array(&pos.sampler.to_words()));
    arrays.insert("rng.drop_path".into(), words_array(&pos.drop_rng));
    let meta = HashMap::from([
        ("format".to_string(), FORMAT.to_string()),
        ("genotype".to_string(), cfg.genotype.clone()),
        ("dataset".to_string(), cfg.dataset.to_string()),
    ]);
    checkpoint::write_atomic(&out.join("checkpoint.safetensors"), &arrays, meta)?;
    Ok(())
}

/// Loads the network strictly and the momentum buffers of `arrays` into `s`.
fn load(s: &mut TrainState, arrays: &Arrays, path: &Path) -> Result<(), RunError> {
    checkpoint::load_store(&mut s.store, arrays, path, true, &STATE_PREFIXES)?;
    let mut problems = Vec::new();
    for (i, p) in s.store.params.iter().enumerate() {
        let key = format!("optim.sgd.momentum.{}", p.name);
        s.sgd.bufs[i] = match arrays.get(&key) {
            Some(a) if a.shape == p.value.shape() => {
                Some(Tensor::from_f64(&a.shape, &a.data.to_f64(), s.store.dtype))
            }
            Some(a) => {
                problems.push(format!("{key}: shape {:?}, expected {:?}", a.shape, p.value.shape()));
                None
            }
            None => None,
        };
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(RunError::Checkpoint(CheckpointError::Mismatch { path: path.into(), problems }))
    }
}

/// Runs (or resumes) the training `cfg` describes, with outputs in `opts.out`.
pub fn run(cfg: &TrainConfig, opts: &TrainOptions) -> Result<TrainSummary, RunError> {
    let out = &opts.out;
    cfg.validate().map_err(RunError::Config)?;
    if cfg.dtype() == crate::tensor::DType::F64 && opts.device != Device::Cpu {
        return Err(RunError::Config("--dtype f64 runs on the CPU only (GPU kernels are f32)".into()));
    }
    let data = TrainData::open(cfg)?;
    io(out, fs::create_dir_all(out))?;
    let steps_per_epoch = data.steps_per_epoch();
    let mut s = build(cfg, data.classes())?;
    let params = count_without_aux(&s.store);
    let ckpt = out.join("checkpoint.safetensors");
    let mut pos = Position {
        epoch: 0,
        step_in_epoch: 0,
        global_step: 0,
        sampler: data.initial_state(),
        drop_rng: Rng::new(cfg.seed ^ DROP_PATH_DOMAIN).state(),
    };
    if opts.resume {
        let (arrays, _) = checkpoint::read(&ckpt)?;
        load(&mut s, &arrays, &ckpt)?;
        let bad = |what: &str| {
            RunError::Checkpoint(CheckpointError::Mismatch {
                path: ckpt.clone(),
                problems: vec![what.into()],
            })
        };
        let [e, st, g] = array_words(arrays.get("run.position"), "run.position", &ckpt)?[..] else {
            return Err(bad("run.position must hold 3 values"));
        };
        (pos.epoch, pos.step_in_epoch, pos.global_step) = (e as usize, st as usize, g as usize);
        pos.sampler = SamplerState::from_words(&array_words(
            arrays.get("rng.train_sampler"),
            "rng.train_sampler",
            &ckpt,
        )?)
        .ok_or_else(|| bad("rng.train_sampler must hold 11 words"))?;
        pos.drop_rng = array_words(arrays.get("rng.drop_path"), "rng.drop_path", &ckpt)?
            .try_into()
            .map_err(|_| bad("rng.drop_path must hold 4 words"))?;
    } else {
        write_file(&out.join("config.json"), &serde_json::to_string_pretty(cfg).expect("config serialises"))?;
        io(out, fs::write(out.join("log.jsonl"), ""))?;
    }
    s.store.to_device(&opts.device);
    for b in s.sgd.bufs.iter_mut().flatten() {
        *b = b.to_device(&opts.device);
    }
    let mut loader = data.loader(&pos.sampler)?;
    let mut drop_rng = Rng::from_state(pos.drop_rng);
    let mut log = io(out, fs::OpenOptions::new().append(true).open(out.join("log.jsonl")))?;
    let (mut test_accs, mut test_top5, mut steps_this_run, mut interrupted) =
        (Vec::new(), Vec::new(), 0usize, false);

    while pos.epoch < cfg.epochs {
        let lr = cfg.lr_at(pos.epoch);
        let drop_prob = drop_path_prob(cfg.drop_path, pos.epoch, cfg.epochs);
        let progress = Progress {
            on: opts.progress,
            start: Instant::now(),
            epoch: pos.epoch,
            epochs: cfg.epochs,
            steps: steps_per_epoch,
        };
        let (mut loss_sum, mut correct, mut seen) = (0.0, 0usize, 0usize);
        while pos.step_in_epoch < steps_per_epoch {
            if INTERRUPTED.load(Ordering::SeqCst) || opts.max_steps.is_some_and(|m| steps_this_run >= m) {
                interrupted = true;
                break;
            }
            let t0 = Instant::now();
            let b = loader.try_next_batch()?;
            let x = b.images.to_device(&opts.device);
            let dp = DropPath { prob: drop_prob, rng: &mut drop_rng };
            let st = step(&mut s, cfg, &x, &b.labels, lr, dp);
            let (l, c, norm) = (st.loss, st.correct, st.grad_norm);
            if !l.is_finite() {
                return Err(RunError::NonFinite { epoch: pos.epoch, step: pos.step_in_epoch, loss: l });
            }
            pos.step_in_epoch += 1;
            pos.global_step += 1;
            steps_this_run += 1;
            pos.sampler = loader.state();
            pos.drop_rng = drop_rng.state();
            let n = b.len();
            (loss_sum, correct, seen) = (loss_sum + l * n as f64, correct + c, seen + n);
            let secs = t0.elapsed().as_secs_f64();
            let line = serde_json::json!({
                "kind": "step", "epoch": pos.epoch, "step": pos.step_in_epoch, "global_step": pos.global_step,
                "lr": lr, "drop_path": drop_prob, "loss": l, "acc": c as f64 / n as f64, "grad_norm": norm,
                "seconds": secs, "images_per_second": n as f64 / secs,
            });
            io(out, writeln!(log, "{line}"))?;
            progress.show(pos.step_in_epoch, loss_sum / seen as f64, correct as f64 / seen as f64, seen);
        }
        progress.done();
        if interrupted {
            break;
        }
        let test = data.evaluate(&mut s, &opts.device)?;
        test_accs.push(test.top1);
        test_top5.push(test.top5);
        // The train loss is the smoothed one the step minimises; the test loss is plain.
        let line = serde_json::json!({
            "kind": "epoch", "epoch": pos.epoch, "lr": lr, "drop_path": drop_prob,
            "train_loss": loss_sum / seen.max(1) as f64, "train_acc": correct as f64 / seen.max(1) as f64,
            "test_loss": test.loss, "test_acc": test.top1, "test_top5": test.top5,
            "seconds": progress.start.elapsed().as_secs_f64(),
        });
        io(out, writeln!(log, "{line}"))?;
        if opts.progress {
            eprintln!(
                "epoch {}: test loss {:.4} top-1 {:.4} top-5 {:.4}",
                pos.epoch + 1,
                test.loss,
                test.top1,
                test.top5
            );
        }
        pos.epoch += 1;
        pos.step_in_epoch = 0;
        save(out, cfg, &s, &pos)?;
    }
    if interrupted {
        save(out, cfg, &s, &pos)?;
    }
    Ok(TrainSummary { epochs_done: pos.epoch, test_acc: test_accs, test_top5, interrupted, params })
}

/// Reads `config.json` of a training run (for `--resume`).
pub fn read_config(out: &Path) -> Result<TrainConfig, RunError> {
    let p = out.join("config.json");
    let text = io(&p, fs::read_to_string(&p))?;
    serde_json::from_str(&text)
        .map_err(|e| RunError::Config(format!("{}: {e} (not a darts train run?)", p.display())))
}

/// The network of a training checkpoint (its genotype and data set from the checkpoint's
/// metadata, its size and classes from the tensor shapes), loaded strictly, for `darts eval`.
pub fn load_checkpoint(
    arrays: &Arrays,
    meta: &HashMap<String, String>,
    path: &Path,
) -> Result<TrainState, RunError> {
    let genotype = meta.get("genotype").ok_or_else(|| {
        RunError::Config(format!(
            "{}: a training checkpoint without its genotype in the metadata",
            path.display()
        ))
    })?;
    // Checkpoints from before the `dataset` key are CIFAR-10's; the stems tell the two apart too.
    let imagenet = meta.get("dataset").map_or(arrays.contains_key("stem0.0.weight"), |d| d == "imagenet");
    let (stem, preset) = if imagenet {
        ("stem0.3.weight", TrainConfig::imagenet(genotype))
    } else {
        ("stem.0.weight", TrainConfig::paper(genotype))
    };
    let stem_shape = &arrays
        .get(stem)
        .ok_or_else(|| RunError::Config(format!("{}: no {stem}: not a DARTS network", path.display())))?
        .shape;
    let layers =
        (0..).take_while(|i| arrays.contains_key(&format!("cells.{i}.preprocess1.op.1.weight"))).count();
    let cfg = TrainConfig {
        // NetworkCIFAR's stem gives 3C channels, NetworkImageNet's C.
        channels: if imagenet { stem_shape[0] } else { stem_shape[0] / 3 },
        layers,
        auxiliary: arrays.keys().any(|k| k.starts_with("auxiliary_head.")),
        ..preset
    };
    let classes = arrays.get("classifier.bias").map_or(10, |a| a.shape[0]);
    let mut s = build(&cfg, classes)?;
    load(&mut s, arrays, path)?;
    Ok(s)
}

/// Evaluates a network from [`load_checkpoint`] on the test set of `data` (CIFAR-10 binaries,
/// or the `val/` folder of an ImageNet tree, which must have the network's classes), in batches of
/// `batch`; returns the evaluation and the number of images.
pub fn evaluate_on(
    s: &mut TrainState,
    data: &Path,
    batch: usize,
    device: &Device,
) -> Result<(Evaluation, usize), RunError> {
    let c = s.net.config();
    let dataset = match s.net {
        EvalNetwork::Cifar(_) => Dataset::Cifar10,
        EvalNetwork::ImageNet(_) => Dataset::Imagenet,
    };
    let dtype = if s.store.dtype == crate::tensor::DType::F64 { "f64" } else { "f32" }.into();
    let cfg = TrainConfig { dataset, data: data.into(), batch, dtype, ..TrainConfig::paper("") };
    let test = TrainData::open(&cfg)?;
    if test.classes() != c.classes {
        return Err(RunError::Config(format!(
            "{}: {} classes, but the network has {}",
            data.display(),
            test.classes(),
            c.classes
        )));
    }
    Ok((test.evaluate(s, device)?, test.test_len()))
}
