//! A whole search run: epochs of bilevel steps over CIFAR-10, validation, genotype and alphas
//! per epoch, atomic checkpoints (every epoch and on Ctrl-C), exact resume, progress and logs.
//!
//! Outputs in the run directory: `config.json`, `log.jsonl` (step lines every `report_freq`
//! steps; epoch lines with [`Diagnostics`]), `alphas/epoch_NNN.json`, `genotype.json`,
//! `genotype.txt`, `normal.dot`/`.svg`, `reduce.dot`/`.svg`, the plots of
//! [`super::plot::plot_run`] (redrawn every epoch), `checkpoint.safetensors`.

use std::collections::HashMap;
use std::fmt;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::arch::ArchSnapshot;
use super::diagnostics::Diagnostics;
use super::early_stop::EarlyStopRule;
use super::genotype::{to_dot_triples, to_svg_triples, Genotype};
use super::hyper;
use super::prefetch::Prefetch;
use super::robust::{lambda_history, Robust};
use super::state_io::{load_state, state_arrays};
use super::step::{Batch, Order, SearchState};
use super::stepper::{GraphMode, Stepper};
use crate::checkpoint::{self, Array, ArrayData, CheckpointError};
use crate::data::{eval_batches, Cifar10, DataError, Loader, Sampler, SamplerState, DEFAULT_DEPTH};
use crate::device::DeviceError;
use crate::meter::Meter;
use crate::model::network::SearchDropPath;
use crate::model::{Method, NetConfig, Network};
use crate::ops;
use crate::ops::loss::Labels;
use crate::optim::cosine_lr;
use crate::rng::Rng;
use crate::tensor::{DType, Device};

/// Everything that defines a run (saved as `config.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SearchConfig {
    /// Preset the defaults came from.
    pub preset: String,
    /// Initial channels.
    pub channels: usize,
    /// Cells.
    pub layers: usize,
    /// Batch size (train and validation).
    pub batch: usize,
    /// Epochs.
    pub epochs: usize,
    /// `first` or `second`.
    pub order: String,
    /// Seed of initialisation, data order and augmentation.
    pub seed: u64,
    /// Fraction of the training images used for the weights.
    pub train_portion: f64,
    /// Weight learning rate at epoch 0 (cosine to `lr_min`).
    pub lr_max: f64,
    /// Final learning-rate floor.
    pub lr_min: f64,
    /// `f32` or `f64`.
    pub dtype: String,
    /// CIFAR-10 directory.
    pub data: PathBuf,
    /// Use only the first N training images (all when absent).
    #[serde(default)]
    pub train_images: Option<usize>,
    /// Fused mixed ops (the default); `false` runs the unfused reference composition.
    #[serde(default = "fuse_default")]
    pub fuse: bool,
    // Fields added after runs were first saved default to the reference's values, so older
    // config.json files still load and resume unchanged.
    /// SGD momentum of the weights.
    #[serde(default = "hyper::momentum")]
    pub momentum: f64,
    /// SGD (coupled) weight decay of the weights.
    #[serde(default = "hyper::weight_decay")]
    pub weight_decay: f64,
    /// Largest L2 norm of all weight gradients together (they are scaled down above it).
    #[serde(default = "hyper::grad_clip")]
    pub grad_clip: f64,
    /// Adam learning rate of the alphas.
    #[serde(default = "hyper::arch_lr")]
    pub arch_lr: f64,
    /// Adam (β1, β2) of the alphas.
    #[serde(default = "hyper::arch_betas")]
    pub arch_betas: (f64, f64),
    /// Adam (coupled) weight decay of the alphas.
    #[serde(default = "hyper::arch_weight_decay")]
    pub arch_weight_decay: f64,
    /// Cutout side on the weight-training batches, 0 for none (the architecture batches never
    /// get cutout, as in RobustDARTS' data-augmentation variant).
    #[serde(default)]
    pub cutout: usize,
    /// Log every `report_freq`-th step of an epoch (the first included); epoch lines always.
    #[serde(default = "hyper::report_freq")]
    pub report_freq: usize,
    /// λ_max of the α-Hessian every this many epochs (0: never; RobustDARTS).
    #[serde(default)]
    pub hessian_every: usize,
    /// DARTS-ES on λ_max (needs `hessian_every`).
    #[serde(default)]
    pub early_stop: bool,
    /// `darts`, `pc-darts` or `fair-darts` ([`Method`]).
    #[serde(default = "hyper::method")]
    pub method: String,
    /// PC-DARTS: 1/`pc_k` of each edge's channels go through the mixed op.
    #[serde(default = "hyper::pc_k")]
    pub pc_k: usize,
    /// Epochs at the start with α frozen: no architecture step (PC-DARTS' warm-up).
    #[serde(default)]
    pub arch_warmup: usize,
    /// FairDARTS: weight of the zero-one loss in the architecture objective.
    #[serde(default)]
    pub zero_one_weight: f64,
    /// Scheduled drop path during search (R-DARTS(DP)): the probability at the last epoch,
    /// growing linearly from 0 over the epochs.
    #[serde(default)]
    pub drop_path: f64,
    /// DARTS-ADA: when DARTS-ES fires, roll back to the epoch it names, multiply the weights'
    /// weight decay by `ada_factor` (up to `ada_max_weight_decay`) and continue.
    #[serde(default)]
    pub ada: bool,
    /// DARTS-ADA's weight-decay factor.
    #[serde(default = "hyper::ada_factor")]
    pub ada_factor: f64,
    /// DARTS-ADA's weight-decay cap: at it, the rule no longer acts.
    #[serde(default = "hyper::ada_max_weight_decay")]
    pub ada_max_weight_decay: f64,
    /// The DARTS-ES rule (for `early_stop` and `ada`): window, delta, factor, start epoch.
    #[serde(default)]
    pub es_rule: EarlyStopRule,
}

fn fuse_default() -> bool {
    true
}

impl SearchConfig {
    /// The `paper` preset: C = 16, 8 cells, batch 64, 50 epochs.
    pub fn paper() -> SearchConfig {
        SearchConfig {
            preset: "paper".into(),
            channels: 16,
            layers: 8,
            batch: 64,
            epochs: 50,
            order: "first".into(),
            seed: 2,
            train_portion: 0.5,
            lr_max: 0.025,
            lr_min: 0.001,
            dtype: "f32".into(),
            data: PathBuf::new(),
            train_images: None,
            fuse: true,
            momentum: hyper::momentum(),
            weight_decay: hyper::weight_decay(),
            grad_clip: hyper::grad_clip(),
            arch_lr: hyper::arch_lr(),
            arch_betas: hyper::arch_betas(),
            arch_weight_decay: hyper::arch_weight_decay(),
            cutout: 0,
            report_freq: hyper::report_freq(),
            hessian_every: 0,
            early_stop: false,
            method: hyper::method(),
            pc_k: hyper::pc_k(),
            arch_warmup: 0,
            zero_one_weight: 0.0,
            drop_path: 0.0,
            ada: false,
            ada_factor: hyper::ada_factor(),
            ada_max_weight_decay: hyper::ada_max_weight_decay(),
            es_rule: EarlyStopRule::default(),
        }
    }

    /// The `cpu-small` preset: a narrow 5-cell network that runs an epoch of the shipped sample
    /// in well under two minutes on two cores.
    pub fn cpu_small() -> SearchConfig {
        SearchConfig {
            preset: "cpu-small".into(),
            channels: 4,
            layers: 5,
            batch: 32,
            epochs: 10,
            ..Self::paper()
        }
    }

    /// A preset (`paper` or `cpu-small`: the network's shape) with a method's published recipe
    /// (batch, learning rates, warm-up, epochs; see `hyper::recipe`); `None` for an unknown
    /// preset.
    pub fn preset(name: &str, method: Method) -> Option<SearchConfig> {
        let shape = match name {
            "paper" => SearchConfig::paper(),
            "cpu-small" => SearchConfig::cpu_small(),
            _ => return None,
        };
        Some(hyper::recipe(shape, method))
    }

    /// The method this config searches with (DARTS for an unknown name, which
    /// [`SearchConfig::validate`] refuses).
    pub fn method(&self) -> Method {
        Method::from_name(&self.method, self.pc_k).unwrap_or_default()
    }

    pub(crate) fn order(&self) -> Order {
        if self.order == "second" {
            Order::Second
        } else {
            Order::First
        }
    }

    fn dtype(&self) -> DType {
        if self.dtype == "f64" {
            DType::F64
        } else {
            DType::F32
        }
    }
}

/// Why a run stopped early or could not start.
#[derive(Debug)]
pub enum RunError {
    /// Bad configuration or arguments.
    Config(String),
    /// The data set.
    Data(DataError),
    /// A checkpoint file.
    Checkpoint(CheckpointError),
    /// Writing outputs.
    Io(PathBuf, std::io::Error),
    /// The device (a GPU launch, copy or graph).
    Device(DeviceError),
    /// The loss became NaN or infinite.
    NonFinite {
        /// Epoch of the step.
        epoch: usize,
        /// Step within the epoch.
        step: usize,
        /// The value.
        loss: f64,
    },
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunError::Config(m) => f.write_str(m),
            RunError::Data(e) => write!(f, "{e}"),
            RunError::Checkpoint(e) => write!(f, "{e}"),
            RunError::Io(p, e) => write!(f, "{}: {e}", p.display()),
            RunError::Device(e) => write!(f, "{e}"),
            RunError::NonFinite { epoch, step, loss } => write!(
                f,
                "the loss became {loss} at epoch {epoch}, step {step}; stopped, the last good checkpoint is kept \
                 (try a lower learning rate or --dtype f64 to investigate)"
            ),
        }
    }
}

impl std::error::Error for RunError {}

impl From<DataError> for RunError {
    fn from(e: DataError) -> Self {
        RunError::Data(e)
    }
}
impl From<CheckpointError> for RunError {
    fn from(e: CheckpointError) -> Self {
        RunError::Checkpoint(e)
    }
}

/// Set by the Ctrl-C handler: finish the current step, checkpoint, stop.
pub static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Options of one invocation that are not part of the run's identity.
pub struct RunOptions {
    /// Where the outputs go.
    pub out: PathBuf,
    /// Continue from `out/checkpoint.safetensors`.
    pub resume: bool,
    /// Start from the weights and alphas of this reference-named checkpoint.
    pub init: Option<PathBuf>,
    /// Device to run on.
    pub device: Device,
    /// Stop (as on Ctrl-C, with a checkpoint) after this many steps in this invocation.
    pub max_steps: Option<usize>,
    /// Show a progress bar on stderr.
    pub progress: bool,
    /// Replay the step as a captured graph on a GPU ([`GraphMode::Auto`]) or not.
    pub graph: GraphMode,
}

/// The end state of a run.
pub struct RunSummary {
    /// Epochs completed.
    pub epochs_done: usize,
    /// Validation accuracy after each completed epoch (this invocation).
    pub val_acc: Vec<f64>,
    /// Final genotype.
    pub genotype: Genotype,
    /// Whether the run stopped early (Ctrl-C or `max_steps`).
    pub interrupted: bool,
    /// The final state.
    pub state: SearchState,
}

pub(crate) fn io<T>(path: &Path, r: std::io::Result<T>) -> Result<T, RunError> {
    r.map_err(|e| RunError::Io(path.into(), e))
}

pub(crate) fn write_file(path: &Path, text: &str) -> Result<(), RunError> {
    let tmp = path.with_extension("tmp");
    io(&tmp, fs::write(&tmp, text))?;
    io(path, fs::rename(&tmp, path))
}

pub(crate) fn words_array(w: &[u64]) -> Array {
    Array { shape: vec![w.len()], data: ArrayData::I64(w.iter().map(|&x| x as i64).collect()) }
}

pub(crate) fn array_words(a: Option<&Array>, name: &str, path: &Path) -> Result<Vec<u64>, RunError> {
    match a {
        Some(Array { data: ArrayData::I64(v), .. }) => Ok(v.iter().map(|&x| x as u64).collect()),
        _ => Err(RunError::Checkpoint(CheckpointError::Mismatch {
            path: path.into(),
            problems: vec![format!("missing or non-integer {name}")],
        })),
    }
}

/// Where the run stands (stored in the checkpoint under `run.*` and `rng.*`).
struct Position {
    epoch: usize,
    step_in_epoch: usize,
    global_step: usize,
    train: SamplerState,
    val: SamplerState,
}

fn save_checkpoint(out: &Path, state: &SearchState, pos: &Position) -> Result<(), RunError> {
    let mut arrays = state_arrays(state);
    arrays.insert(
        "run.position".into(),
        words_array(&[pos.epoch as u64, pos.step_in_epoch as u64, pos.global_step as u64]),
    );
    arrays.insert("rng.train_sampler".into(), words_array(&pos.train.to_words()));
    arrays.insert("rng.val_sampler".into(), words_array(&pos.val.to_words()));
    // DARTS-ADA raises it during a run.
    arrays.insert(
        "run.weight_decay".into(),
        Array { shape: vec![1], data: ArrayData::F64(vec![state.sgd.weight_decay]) },
    );
    let meta = HashMap::from([("format".to_string(), "darts search checkpoint".to_string())]);
    checkpoint::write_atomic(&out.join("checkpoint.safetensors"), &arrays, meta)?;
    Ok(())
}

/// Loads a run checkpoint into `state` (network, optimisers, DARTS-ADA's weight decay) and
/// returns the position it was written at.
fn load_checkpoint(state: &mut SearchState, ckpt: &Path) -> Result<Position, RunError> {
    let (arrays, _) = checkpoint::read(ckpt)?;
    load_state(state, &arrays, ckpt)?;
    let bad = |what: &str| {
        RunError::Checkpoint(CheckpointError::Mismatch { path: ckpt.into(), problems: vec![what.into()] })
    };
    let p = array_words(arrays.get("run.position"), "run.position", ckpt)?;
    let [epoch, step_in_epoch, global_step] = p[..] else {
        return Err(bad("run.position must hold 3 values"));
    };
    let sampler = |name: &str| -> Result<SamplerState, RunError> {
        SamplerState::from_words(&array_words(arrays.get(name), name, ckpt)?)
            .ok_or_else(|| bad(&format!("{name} must hold 11 words")))
    };
    if let Some(a) = arrays.get("run.weight_decay") {
        state.sgd.weight_decay =
            a.data.to_f64().first().copied().ok_or_else(|| bad("empty run.weight_decay"))?;
    }
    Ok(Position {
        epoch: epoch as usize,
        step_in_epoch: step_in_epoch as usize,
        global_step: global_step as usize,
        train: sampler("rng.train_sampler")?,
        val: sampler("rng.val_sampler")?,
    })
}

/// Moves the store and the optimisers' buffers to `device` (no-op for those already there).
fn to_device(state: &mut SearchState, device: &Device) {
    state.store.to_device(device);
    for b in state.sgd.bufs.iter_mut().chain(&mut state.adam.m).chain(&mut state.adam.v).flatten() {
        *b = b.to_device(device);
    }
}

fn arch(state: &SearchState) -> ArchSnapshot {
    ArchSnapshot::of_store(state.net.config.method, &state.store)
}

fn write_genotype(out: &Path, g: &Genotype) -> Result<(), RunError> {
    write_file(&out.join("genotype.json"), &g.to_json())?;
    write_file(&out.join("genotype.txt"), &(g.to_python() + "\n"))?;
    write_file(&out.join("normal.dot"), &to_dot_triples(&g.triples(false), "normal"))?;
    write_file(&out.join("reduce.dot"), &to_dot_triples(&g.triples(true), "reduce"))?;
    write_file(&out.join("normal.svg"), &to_svg_triples(&g.triples(false), "normal cell"))?;
    write_file(&out.join("reduce.svg"), &to_svg_triples(&g.triples(true), "reduction cell"))
}

/// Loss and top-1 accuracy of `state` over images `range` of `set` (BN in eval mode).
pub fn evaluate(
    state: &mut SearchState,
    set: &crate::data::CifarSet,
    range: std::ops::Range<usize>,
    batch: usize,
    device: &Device,
) -> (f64, f64) {
    let (mut loss_sum, mut correct, mut n) = (0.0, 0usize, 0usize);
    let dtype = state.store.dtype;
    for b in eval_batches(set, range, batch, dtype) {
        let x = b.images.to_device(device);
        let (_, logits, loss) = state.net.loss(&mut state.store, &x, &b.labels, false);
        loss_sum += loss.value().item() * b.labels.len() as f64;
        correct += ops::loss::top1_correct(logits.value(), &b.labels);
        n += b.labels.len();
    }
    (loss_sum / n.max(1) as f64, correct as f64 / n.max(1) as f64)
}

/// A one-line progress bar per epoch on stderr (search and training runs).
pub(crate) struct Progress {
    pub on: bool,
    pub start: Instant,
    pub epoch: usize,
    pub epochs: usize,
    pub steps: usize,
}

impl Progress {
    pub fn show(&self, step: usize, loss: f64, acc: f64, images: usize) {
        let (epoch, epochs, steps) = (self.epoch, self.epochs, self.steps);
        if !self.on {
            return;
        }
        let width = 30;
        let filled = (step * width) / steps.max(1);
        let rate = images as f64 / self.start.elapsed().as_secs_f64().max(1e-9);
        eprint!(
            "\repoch {:>3}/{epochs} [{}{}] {step:>4}/{steps} loss {loss:.4} acc {:.3} {rate:.1} img/s ",
            epoch + 1,
            "#".repeat(filled),
            ".".repeat(width - filled),
            acc
        );
        let _ = std::io::stderr().flush();
    }
    pub fn done(&self) {
        if self.on {
            eprintln!();
        }
    }
}

/// Runs (or resumes) a search described by `cfg` with outputs in `opts.out`.
/// A step's train and validation batches, the samplers' positions after them, and (on a GPU)
/// the prefetch slots their images are being uploaded into.
type Drawn = (crate::data::Batch, crate::data::Batch, (SamplerState, SamplerState), Option<(usize, usize)>);

/// Draws the next train and validation batches and, with `prefetch` (train, val), enqueues
/// their upload.
fn draw(
    train: &mut Loader,
    val: &mut Loader,
    prefetch: Option<&mut (Prefetch, Prefetch)>,
) -> Result<Drawn, RunError> {
    let (tb, vb) = (train.next_batch(), val.next_batch());
    let states = (train.state(), val.state());
    let slots = match prefetch {
        Some((pt, pv)) => Some((
            pt.upload(&tb.images, &tb.labels).map_err(RunError::Device)?,
            pv.upload(&vb.images, &vb.labels).map_err(RunError::Device)?,
        )),
        None => None,
    };
    Ok((tb, vb, states, slots))
}

pub fn run(cfg: &SearchConfig, opts: &RunOptions) -> Result<RunSummary, RunError> {
    let out = &opts.out;
    cfg.validate()?;
    io(out, fs::create_dir_all(out.join("alphas")))?;
    let dtype = cfg.dtype();
    if dtype == DType::F64 && opts.device != Device::Cpu {
        return Err(RunError::Config("--dtype f64 runs on the CPU only (GPU kernels are f32)".into()));
    }
    let data = Cifar10::open(&cfg.data)?;
    let train_set = data.train().clone();
    let n_images = cfg.train_images.map_or(train_set.len(), |k| k.min(train_set.len()));
    let samplers = cfg.samplers(n_images)?;
    let steps_per_epoch = samplers.train.batches_per_epoch();
    let val_range = samplers.split.val.clone();

    let mut rng = Rng::new(cfg.seed);
    let net_cfg = NetConfig { channels: cfg.channels, layers: cfg.layers, classes: 10, method: cfg.method() };
    let (mut net, store) = Network::new(net_cfg, dtype, &mut rng);
    net.fuse = cfg.fuse;
    let mut state = SearchState::new(net, store, cfg.step_config());
    let ckpt = out.join("checkpoint.safetensors");
    let mut pos = Position {
        epoch: 0,
        step_in_epoch: 0,
        global_step: 0,
        train: samplers.train.state(),
        val: samplers.val.state(),
    };
    if opts.resume {
        pos = load_checkpoint(&mut state, &ckpt)?;
    } else {
        if let Some(init) = &opts.init {
            let (arrays, _) = checkpoint::read(init)?;
            checkpoint::load_store(&mut state.store, &arrays, init, true, &super::state_io::STATE_PREFIXES)?;
        }
        let cfg_json = serde_json::to_string_pretty(cfg).expect("config serialises");
        write_file(&out.join("config.json"), &cfg_json)?;
        io(out, fs::write(out.join("log.jsonl"), ""))?;
    }
    to_device(&mut state, &opts.device);

    let loaders = |pos: &Position| -> Result<(Loader, Loader), RunError> {
        let (mut train_sampler, mut val_sampler) = (samplers.train.clone(), samplers.val.clone());
        train_sampler.set_state(&pos.train)?;
        val_sampler.set_state(&pos.val)?;
        Ok((
            Loader::spawn(train_set.clone(), train_sampler, dtype, DEFAULT_DEPTH)?,
            Loader::spawn(train_set.clone(), val_sampler, dtype, DEFAULT_DEPTH)?,
        ))
    };
    let (mut train_loader, mut val_loader) = loaders(&pos)?;
    let mut log = io(out, fs::OpenOptions::new().append(true).open(out.join("log.jsonl")))?;
    let mut val_accs = Vec::new();
    let mut prefetch = match &opts.device {
        // One double buffer for the training batches, one for the validation batches.
        Device::Gpu(rt) => Some((Prefetch::new(rt), Prefetch::new(rt))),
        Device::Cpu => None,
    };
    let mut pending: Option<Drawn> = None;
    // Drop-path masks are drawn on the host for every step: a replayed graph would reuse one
    // step's masks, so such a search issues its steps eagerly.
    let graph = if cfg.drop_path > 0.0 { GraphMode::Off } else { opts.graph };
    let mut stepper = Stepper::new(&opts.device, graph).map_err(RunError::Device)?;
    let wd = state.adam.weight_decay;
    let mut robust = Robust::new(
        cfg.hessian_every,
        (cfg.early_stop || cfg.ada).then_some(cfg.es_rule),
        &train_set,
        val_range.clone(),
        cfg.batch,
        dtype,
        &opts.device,
        wd,
        cfg.seed,
    );
    if let (Some(r), true) = (robust.as_mut(), opts.resume) {
        let log = fs::read_to_string(out.join("log.jsonl")).unwrap_or_default();
        r.restore(&lambda_history(&log));
    }
    let mut stopped_at = None;
    let mut steps_this_run = 0;
    let mut interrupted = false;

    while pos.epoch < cfg.epochs {
        let lr = cosine_lr(pos.epoch, cfg.epochs, cfg.lr_max, cfg.lr_min);
        state.arch_frozen = pos.epoch < cfg.arch_warmup;
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
            let meter = Meter::start(&opts.device);
            // This step's batches: prefetched during the previous step, or drawn now.
            let (tb, vb, states, slots) = match pending.take() {
                Some(p) => p,
                None => draw(&mut train_loader, &mut val_loader, prefetch.as_mut())?,
            };
            let ((xt, yt), (xv, yv)) = match (prefetch.as_mut(), slots) {
                (Some((pt, pv)), Some((ts, vs))) => {
                    let (t, v) =
                        (pt.take(ts).map_err(RunError::Device)?, pv.take(vs).map_err(RunError::Device)?);
                    ((t.0, Some(t.1)), (v.0, Some(v.1)))
                }
                _ => ((tb.images.to_device(&opts.device), None), (vb.images.to_device(&opts.device), None)),
            };
            if cfg.drop_path > 0.0 {
                // RobustDARTS' schedule: p · epoch / (epochs − 1), the full p at the last epoch.
                let p = cfg.drop_path * pos.epoch as f64 / (cfg.epochs.max(2) - 1) as f64;
                let seed = cfg.seed ^ (pos.global_step as u64 + 1).wrapping_mul(0xD1B5_4A32_D192_ED03);
                state.net.drop_path = Some(SearchDropPath::new(p, seed));
            }
            let train = Batch { x: &xt, y: Labels { host: &tb.labels, dev: yt.as_ref() } };
            let val = Batch { x: &xv, y: Labels { host: &vb.labels, dev: yv.as_ref() } };
            stepper.issue(&mut state, &train, &val, lr).map_err(RunError::Device)?;
            drop((xt, yt, xv, yv));
            if let (Some((pt, pv)), Some((ts, vs))) = (prefetch.as_mut(), slots) {
                pt.release(ts).map_err(RunError::Device)?;
                pv.release(vs).map_err(RunError::Device)?;
            }
            // On a GPU the next step's batches are drawn, and go up on the copy stream, while
            // this one computes; then its scalars are read.
            let last = pos.step_in_epoch + 1 >= steps_per_epoch
                || opts.max_steps.is_some_and(|m| steps_this_run + 1 >= m);
            if let (Some(pf), false) = (prefetch.as_mut(), last) {
                pending = Some(draw(&mut train_loader, &mut val_loader, Some(pf))?);
            }
            let stats = stepper.finish().map_err(RunError::Device)?;
            if !stats.loss_train.is_finite() || !stats.loss_val.is_finite() {
                let loss = if stats.loss_train.is_finite() { stats.loss_val } else { stats.loss_train };
                return Err(RunError::NonFinite { epoch: pos.epoch, step: pos.step_in_epoch, loss });
            }
            pos.step_in_epoch += 1;
            pos.global_step += 1;
            steps_this_run += 1;
            // The samplers' positions after this step's batches (not the prefetched ones).
            (pos.train, pos.val) = states;
            let n = tb.labels.len();
            loss_sum += stats.loss_train * n as f64;
            correct += stats.correct_train;
            seen += n;
            let secs = t0.elapsed().as_secs_f64();
            let mut line = serde_json::json!({
                "kind": "step", "epoch": pos.epoch, "step": pos.step_in_epoch, "global_step": pos.global_step,
                "lr": lr, "loss_train": stats.loss_train, "loss_val": stats.loss_val,
                "grad_norm": stats.grad_norm, "acc_train": stats.correct_train as f64 / n as f64,
                "seconds": secs, "images_per_second": 2.0 * n as f64 / secs, "exec": stepper.last.name(),
            });
            for (k, v) in meter.fields() {
                line[k] = v.into();
            }
            if state.arch_frozen {
                // No architecture step during the warm-up: no validation loss either.
                line["loss_val"] = serde_json::Value::Null;
                line["arch_frozen"] = true.into();
            }
            // The reference's `step % report_freq == 0` over 0-based steps: the first of each
            // epoch and every report_freq-th after it.
            if (pos.step_in_epoch - 1) % cfg.report_freq == 0 {
                io(out, writeln!(log, "{line}"))?;
            }
            progress.show(pos.step_in_epoch, loss_sum / seen as f64, correct as f64 / seen as f64, 2 * seen);
        }
        progress.done();
        if interrupted {
            break;
        }
        // End of epoch: validation, alphas, genotype, checkpoint.
        let (val_loss, val_acc) =
            evaluate(&mut state, &train_set, val_range.clone(), cfg.batch, &opts.device);
        val_accs.push(val_acc);
        let a = arch(&state);
        let g = a.genotype();
        write_file(
            &out.join(format!("alphas/epoch_{:03}.json", pos.epoch)),
            &a.to_json(pos.epoch).to_string(),
        )?;
        write_genotype(out, &g)?;
        let mut line = serde_json::json!({
            "kind": "epoch", "epoch": pos.epoch, "lr": lr,
            "train_loss": loss_sum / seen.max(1) as f64, "train_acc": correct as f64 / seen.max(1) as f64,
            "val_loss": val_loss, "val_acc": val_acc, "genotype": g.to_python(),
            "seconds": progress.start.elapsed().as_secs_f64(),
            "diagnostics": Diagnostics::from_arch(&a).to_json(),
        });
        let verdict = robust.as_mut().map(|r| r.epoch_end(pos.epoch, &state)).unwrap_or_default();
        if let Some(e) = verdict.eigen {
            line["diagnostics"]["lambda_max"] = e.lambda_max.into();
            line["diagnostics"]["hessian_products"] = e.products.into();
        }
        io(out, writeln!(log, "{line}"))?;
        // Plots are derived from the files just written; failing to draw them must not stop a
        // search (the next epoch, or `darts plot`, draws them again).
        if let Err(e) = super::plot::plot_run(out, out) {
            eprintln!("warning: plots not written: {e}");
        }
        if opts.progress {
            eprintln!("epoch {}: val loss {val_loss:.4} acc {val_acc:.4}; {}", pos.epoch + 1, g.to_python());
        }
        pos.epoch += 1;
        pos.step_in_epoch = 0;
        save_checkpoint(out, &state, &pos)?;
        if cfg.ada && verdict.eigen.is_some() {
            // DARTS-ADA may roll back to this evaluation epoch: keep its checkpoint.
            let to = out.join(format!("ada/epoch_{:03}.safetensors", pos.epoch - 1));
            io(
                &to,
                fs::create_dir_all(out.join("ada"))
                    .and_then(|()| fs::copy(out.join("checkpoint.safetensors"), &to)),
            )?;
        }
        match verdict.stop_at {
            Some(stop) if cfg.ada => {
                let wd = state.sgd.weight_decay;
                let new_wd = (wd * cfg.ada_factor).min(cfg.ada_max_weight_decay);
                // At the cap the rule no longer acts and the search runs to its end, as
                // RobustDARTS' ADA does on its final iteration.
                if new_wd > wd {
                    let from = pos.epoch - 1;
                    pos = load_checkpoint(&mut state, &out.join(format!("ada/epoch_{stop:03}.safetensors")))?;
                    to_device(&mut state, &opts.device);
                    state.set_weight_decay(new_wd);
                    if let Some(r) = robust.as_mut() {
                        r.rollback(stop);
                    }
                    (train_loader, val_loader) = loaders(&pos)?;
                    pending = None;
                    // A captured step holds the old weight decay: capture again.
                    stepper = Stepper::new(&opts.device, graph).map_err(RunError::Device)?;
                    let line = serde_json::json!({
                        "kind": "ada", "epoch": from, "rollback_to": stop, "weight_decay": new_wd,
                    });
                    io(out, writeln!(log, "{line}"))?;
                    if opts.progress {
                        eprintln!(
                            "DARTS-ADA: λ_max grew past the rule's factor; back to epoch {} with weight decay {new_wd}",
                            stop + 1
                        );
                    }
                    save_checkpoint(out, &state, &pos)?;
                }
            }
            Some(stop) => {
                let line =
                    serde_json::json!({"kind": "early_stop", "epoch": pos.epoch - 1, "stop_epoch": stop});
                io(out, writeln!(log, "{line}"))?;
                if opts.progress {
                    eprintln!(
                        "DARTS-ES: λ_max grew past the rule's factor; returning the genotype of epoch {}",
                        stop + 1
                    );
                }
                stopped_at = Some(stop);
                break;
            }
            None => {}
        }
    }
    if interrupted {
        save_checkpoint(out, &state, &pos)?;
    }
    let genotype = match stopped_at {
        // DARTS-ES returns the genotype of the epoch it stops at, from that epoch's α.
        Some(stop) => {
            let p = out.join(format!("alphas/epoch_{stop:03}.json"));
            let v: serde_json::Value = serde_json::from_str(&io(&p, fs::read_to_string(&p))?)
                .map_err(|e| RunError::Config(format!("{}: {e}", p.display())))?;
            ArchSnapshot::from_json(&v)
                .map_err(|e| RunError::Config(format!("{}: {e}", p.display())))?
                .1
                .genotype()
        }
        None => arch(&state).genotype(),
    };
    write_genotype(out, &genotype)?;
    Ok(RunSummary { epochs_done: pos.epoch, val_acc: val_accs, genotype, interrupted, state })
}

/// The data directory a run used, from the `data` field of the `config.json` beside its
/// `checkpoint` (search and training runs alike), with the file it came from; `None` without
/// such a file or field. A relative path (runs written before paths were recorded absolute) is
/// taken as given, relative to the current directory.
pub fn data_of_run(checkpoint: &Path) -> Option<(PathBuf, PathBuf)> {
    let config = checkpoint.parent()?.join("config.json");
    let text = fs::read_to_string(&config).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    Some((PathBuf::from(v.get("data")?.as_str()?), config))
}

/// Reads `config.json` of a run directory (for `--resume`).
pub fn read_config(out: &Path) -> Result<SearchConfig, RunError> {
    let p = out.join("config.json");
    let text = io(&p, fs::read_to_string(&p))?;
    serde_json::from_str(&text).map_err(|e| RunError::Config(format!("{}: {e}", p.display())))
}
