//! What a training run does differently per data set: where its batches come from (and their
//! resumable state), how many classes the network has, and how it is evaluated after an epoch.
//! The loop in [`super::run`] sees only [`TrainData`].

use std::sync::Arc;

use super::{Dataset, TrainConfig};
use crate::data::imagenet::{EvalTransform, ImageNetFolders, ImageNetSource, TrainTransform, EVAL_RESIZE};
use crate::data::{
    eval_batches, Batch, Cifar10, CifarSet, EpochSampler, Loader, SamplerState, DEFAULT_DEPTH,
};
use crate::data::{BatchSource as _, Sampler as _};
use crate::ops;
use crate::search::run::RunError;
use crate::tensor::{DType, Device};

use super::run::TrainState;

/// Top-k accuracies reported per evaluation.
const TOP5: usize = 5;

/// Loss and accuracies of the network over an evaluation set (BN in eval mode, no smoothing).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Evaluation {
    /// Mean plain cross-entropy.
    pub loss: f64,
    /// Top-1 accuracy.
    pub top1: f64,
    /// Top-5 accuracy (1 when there are at most 5 classes).
    pub top5: f64,
}

enum Source {
    Cifar { train: Arc<CifarSet>, test: Arc<CifarSet>, n_train: usize, n_test: usize, cutout: u8 },
    ImageNet { folders: ImageNetFolders, size: usize, n_test: usize },
}

/// A run's training and evaluation data.
pub struct TrainData {
    source: Source,
    batch: usize,
    seed: u64,
    dtype: DType,
    steps_per_epoch: usize,
    initial: SamplerState,
}

/// Decoding threads for ImageNet: the source's default, but no more than the host's cores.
fn workers() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    crate::data::imagenet::DEFAULT_WORKERS.min(cores)
}

impl TrainData {
    /// Opens the data `cfg` names (errors name what is missing).
    pub fn open(cfg: &TrainConfig) -> Result<TrainData, RunError> {
        let source = match cfg.dataset {
            Dataset::Cifar10 => {
                let data = Cifar10::open(&cfg.data)?;
                let (train, test) = (data.train().clone(), data.test().clone());
                let n_train = cfg.train_images.map_or(train.len(), |k| k.min(train.len()));
                let n_test = cfg.test_images.map_or(test.len(), |k| k.min(test.len()));
                Source::Cifar { train, test, n_train, n_test, cutout: cfg.cutout }
            }
            Dataset::Imagenet => {
                let folders = ImageNetFolders::open(&cfg.data)?;
                let n_test = cfg.test_images.map_or(folders.val().len(), |k| k.min(folders.val().len()));
                Source::ImageNet { folders, size: cfg.image_size, n_test }
            }
        };
        let mut data = TrainData {
            source,
            batch: cfg.batch,
            seed: cfg.seed,
            dtype: cfg.dtype(),
            steps_per_epoch: 0,
            initial: SamplerState::default(),
        };
        (data.steps_per_epoch, data.initial) = match &data.source {
            Source::Cifar { n_train, cutout, .. } => {
                let sampler = data.cifar_sampler(*n_train, *cutout)?;
                (sampler.batches_per_epoch(), sampler.state())
            }
            Source::ImageNet { folders, size, .. } => {
                let source = data.imagenet_source(folders, *size)?;
                (source.batches_per_epoch(), source.state())
            }
        };
        Ok(data)
    }

    /// Classes of the network's classifier.
    pub fn classes(&self) -> usize {
        match &self.source {
            Source::Cifar { .. } => 10,
            Source::ImageNet { folders, .. } => folders.classes().len(),
        }
    }

    fn cifar_sampler(&self, n_train: usize, cutout: u8) -> Result<EpochSampler, RunError> {
        Ok(EpochSampler::new((0..n_train).collect(), self.batch, true, self.seed)?.with_cutout(cutout))
    }

    fn imagenet_source(&self, folders: &ImageNetFolders, size: usize) -> Result<ImageNetSource, RunError> {
        let transform = TrainTransform::with_size(size);
        let source =
            ImageNetSource::train(folders.train().clone(), transform, self.batch, self.seed, workers())?;
        Ok(source.with_dtype(self.dtype))
    }

    /// Images evaluated by [`TrainData::evaluate`].
    pub fn test_len(&self) -> usize {
        match &self.source {
            Source::Cifar { n_test, .. } | Source::ImageNet { n_test, .. } => *n_test,
        }
    }

    /// Training steps per epoch (the last batch of an epoch may be partial for ImageNet).
    pub fn steps_per_epoch(&self) -> usize {
        self.steps_per_epoch
    }

    /// The data order's and augmentation's state at the start of a run (from the seed).
    pub fn initial_state(&self) -> SamplerState {
        self.initial
    }

    /// A background loader of training batches that continues from `state`.
    pub fn loader(&self, state: &SamplerState) -> Result<Loader, RunError> {
        match &self.source {
            Source::Cifar { train, n_train, cutout, .. } => {
                let mut sampler = self.cifar_sampler(*n_train, *cutout)?;
                sampler.set_state(state)?;
                Ok(Loader::spawn(train.clone(), sampler, self.dtype, DEFAULT_DEPTH)?)
            }
            Source::ImageNet { folders, size, .. } => {
                let mut source = self.imagenet_source(folders, *size)?;
                source.set_state(state)?;
                Ok(Loader::from_source(source, DEFAULT_DEPTH)?)
            }
        }
    }

    /// Loss, top-1 and top-5 of the network on the test set (ImageNet: the first `test_images`
    /// of val/, resized to 256 and centre-cropped).
    pub fn evaluate(&self, s: &mut TrainState, device: &Device) -> Result<Evaluation, RunError> {
        match &self.source {
            Source::Cifar { test, n_test, .. } => Ok(evaluate_batches(
                s,
                eval_batches(test, 0..*n_test, self.batch, self.dtype).map(Ok),
                device,
            )?),
            Source::ImageNet { folders, size, n_test } => {
                let transform = EvalTransform { resize: EVAL_RESIZE, crop: *size };
                let source = ImageNetSource::eval_first(
                    folders.val().clone(),
                    *n_test,
                    transform,
                    self.batch,
                    workers(),
                )?
                .with_dtype(self.dtype);
                let passes = source.batches_per_epoch();
                // Prefetching decodes a few batches past the pass: wasted, but it overlaps the
                // decoding of the others with the compute.
                let mut loader = Loader::from_source(source, DEFAULT_DEPTH)?;
                evaluate_batches(s, (0..passes).map(|_| loader.try_next_batch()), device)
            }
        }
    }
}

/// Loss, top-1 and top-5 of the network over `batches` (BN in eval mode).
fn evaluate_batches(
    s: &mut TrainState,
    batches: impl Iterator<Item = Result<Batch, crate::data::DataError>>,
    device: &Device,
) -> Result<Evaluation, RunError> {
    let (mut loss_sum, mut top1, mut top5, mut n) = (0.0, 0usize, 0usize, 0usize);
    for b in batches {
        let b = b?;
        let x = b.images.to_device(device);
        let (_, out, loss) = s.net.loss(&mut s.store, &x, &b.labels, false, None, 0.0);
        loss_sum += loss.value().item() * b.len() as f64;
        top1 += ops::loss::top1_correct(out.logits.value(), &b.labels);
        top5 += ops::loss::topk_correct(out.logits.value(), &b.labels, TOP5);
        n += b.len();
    }
    let per = |v: f64| v / n.max(1) as f64;
    Ok(Evaluation { loss: per(loss_sum), top1: per(top1 as f64), top5: per(top5 as f64) })
}
