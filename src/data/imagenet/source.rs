//! [`ImageNetSource`]: batches of decoded, transformed images from an [`ImageFolder`], built on
//! a pool of worker threads and yet deterministic.
//!
//! Which images form a batch comes from the CIFAR samplers ([`EpochSampler`]: a seeded shuffle
//! per epoch; [`SequentialSampler`]: in order), so the resumable state is theirs. Each image's
//! augmentation is drawn from its own generator, seeded by (run key, epoch, position of the image
//! in that epoch's order), never from a generator shared across images: whichever worker takes an
//! image and whenever, it draws the same crop, flip and jitter, so a batch is bit for bit the
//! same for any number of workers, and a resumed run redraws exactly what it would have drawn.
//! The run key is the epoch sampler's (otherwise unused) augmentation-generator state, which a
//! seed fixes and [`SamplerState`] carries, so a restored state needs no seed beside it.

use std::sync::Arc;

use rayon::prelude::*;

use crate::data::batch::Batch;
use crate::data::error::DataError;
use crate::data::loader::BatchSource;
use crate::data::sampler::{EpochSampler, Sampler, SamplerState, SequentialSampler};
use crate::rng::Rng;
use crate::tensor::{DType, Tensor};

use super::decode::read_jpeg;
use super::folder::ImageFolder;
use super::transform::{EvalTransform, TrainTransform};

/// Worker threads used by default: enough to keep a GPU fed on a typical host without taking
/// every core from the training process.
pub const DEFAULT_WORKERS: usize = 8;

/// SplitMix64's finaliser: a bijection of u64 that scatters nearby inputs.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The augmentation generator of the image at position `slot` of epoch `epoch`'s order, for a
/// run whose key words are `key` (see the module doc). Hashing the parts in turn keeps streams
/// apart that a sum would merge (key 1 epoch 0 vs key 0 epoch 1).
pub fn sample_rng(key: [u64; 4], epoch: u64, slot: u64) -> Rng {
    const DOMAIN: u64 = 0x494d_4147_454e_4554; // "IMAGENET"
    let k = key.iter().fold(DOMAIN, |h, &w| mix(h ^ w));
    Rng::new(mix(mix(k ^ epoch) ^ slot))
}

enum Mode {
    Train { sampler: EpochSampler, transform: TrainTransform },
    Eval { sampler: SequentialSampler, transform: EvalTransform },
}

/// An endless source of ImageNet batches: training (shuffled epochs, augmented) or evaluation
/// (in order, resize + centre crop, wrapping around after the last, partial, batch). Run it in
/// the background with [`Loader::from_source`](crate::data::Loader::from_source).
pub struct ImageNetSource {
    folder: Arc<ImageFolder>,
    mode: Mode,
    dtype: DType,
    pool: Option<rayon::ThreadPool>,
}

fn pool(workers: usize) -> Result<Option<rayon::ThreadPool>, DataError> {
    if workers == 0 {
        return Ok(None);
    }
    rayon::ThreadPoolBuilder::new()
        .num_threads(workers)
        .thread_name(|i| format!("darts-decode-{i}"))
        .build()
        .map(Some)
        .map_err(|e| DataError::Pool { reason: e.to_string() })
}

impl ImageNetSource {
    /// Training batches of `batch_size` over every image of `folder`, reshuffled each epoch
    /// (the last batch of an epoch partial), augmented by `transform`, all drawn from `seed`.
    /// `workers` threads decode and augment (0: rayon's global pool). Errors for a zero batch
    /// size or a pool that cannot start.
    pub fn train(
        folder: Arc<ImageFolder>,
        transform: TrainTransform,
        batch_size: usize,
        seed: u64,
        workers: usize,
    ) -> Result<ImageNetSource, DataError> {
        let sampler = EpochSampler::new((0..folder.len()).collect(), batch_size, false, seed)?;
        let mode = Mode::Train { sampler, transform };
        Ok(ImageNetSource { folder, mode, dtype: DType::F32, pool: pool(workers)? })
    }

    /// Evaluation batches of `batch_size` over `folder` in order, transformed by `transform`;
    /// `workers` as for [`ImageNetSource::train`]. One pass is
    /// [`ImageNetSource::batches_per_epoch`] batches.
    pub fn eval(
        folder: Arc<ImageFolder>,
        transform: EvalTransform,
        batch_size: usize,
        workers: usize,
    ) -> Result<ImageNetSource, DataError> {
        let n = folder.len();
        ImageNetSource::eval_first(folder, n, transform, batch_size, workers)
    }

    /// [`ImageNetSource::eval`] over only the first `n` images of `folder` (all if it has fewer).
    pub fn eval_first(
        folder: Arc<ImageFolder>,
        n: usize,
        transform: EvalTransform,
        batch_size: usize,
        workers: usize,
    ) -> Result<ImageNetSource, DataError> {
        let sampler = SequentialSampler::new((0..n.min(folder.len())).collect(), batch_size)?;
        let mode = Mode::Eval { sampler, transform };
        Ok(ImageNetSource { folder, mode, dtype: DType::F32, pool: pool(workers)? })
    }

    /// Batches in `dtype` (f32 by default; the transforms run in f32 either way).
    pub fn with_dtype(mut self, dtype: DType) -> ImageNetSource {
        self.dtype = dtype;
        self
    }

    /// The folder it reads.
    pub fn folder(&self) -> &Arc<ImageFolder> {
        &self.folder
    }

    /// Batches per epoch (per pass, for evaluation): `ceil(images / batch_size)`.
    pub fn batches_per_epoch(&self) -> usize {
        match &self.mode {
            Mode::Train { sampler, .. } => sampler.batches_per_epoch(),
            Mode::Eval { sampler, .. } => sampler.batches_per_epoch(),
        }
    }

    /// Restores a state exported by [`BatchSource::state`] (or a [`Loader`](crate::data::Loader)'s
    /// state) from a source of the same kind over the same folder: the next batch is the one
    /// that would have followed. Errors if the image count differs.
    pub fn set_state(&mut self, state: &SamplerState) -> Result<(), DataError> {
        match &mut self.mode {
            Mode::Train { sampler, .. } => sampler.set_state(state),
            Mode::Eval { sampler, .. } => sampler.set_state(state),
        }
    }

    /// The side of the square images in a batch.
    pub fn image_side(&self) -> usize {
        match &self.mode {
            Mode::Train { transform, .. } => transform.size,
            Mode::Eval { transform, .. } => transform.crop,
        }
    }

    /// Decodes and transforms images `indices` of the folder; the image at batch position k is
    /// augmented from `sample_rng(key, epoch, first_slot + k)`.
    fn build(
        &self,
        indices: &[usize],
        key: [u64; 4],
        epoch: u64,
        first_slot: u64,
    ) -> Result<Batch, DataError> {
        let side = self.image_side();
        let len = 3 * side * side;
        let mut data = vec![0f32; indices.len() * len];
        let work = |(k, out): (usize, &mut [f32])| -> Result<(), DataError> {
            let img = read_jpeg(self.folder.path(indices[k]))?;
            match &self.mode {
                Mode::Train { transform, .. } => {
                    let mut rng = sample_rng(key, epoch, first_slot + k as u64);
                    let p = transform.sample(img.width, img.height, &mut rng);
                    transform.apply(&img, &p, out);
                }
                Mode::Eval { transform, .. } => transform.apply(&img, out),
            }
            Ok(())
        };
        let out = &mut data;
        // FnOnce (it moves `out`), as `ThreadPool::install` takes it.
        let run = move || {
            let out = out;
            out.par_chunks_mut(len).enumerate().map(work).collect::<Vec<_>>()
        };
        let results = match &self.pool {
            Some(pool) => pool.install(run),
            None => run(),
        };
        // The first failure in batch order, whichever worker met it first.
        results.into_iter().collect::<Result<Vec<()>, _>>()?;
        let labels = indices.iter().map(|&i| self.folder.label(i)).collect();
        let images = Tensor::from_vec(&[indices.len(), 3, side, side], data).to_dtype(self.dtype);
        Ok(Batch { images, labels })
    }
}

impl BatchSource for ImageNetSource {
    fn next_batch(&mut self) -> Result<Batch, DataError> {
        let (plan, state) = match &mut self.mode {
            Mode::Train { sampler, .. } => (sampler.next_plan(), sampler.state()),
            Mode::Eval { sampler, .. } => (sampler.next_plan(), sampler.state()),
        };
        // The sampler's position is the end of this batch within its epoch's order.
        let first_slot = state.position - plan.indices.len() as u64;
        self.build(&plan.indices, state.aug_rng, state.epoch, first_slot)
    }

    fn state(&self) -> SamplerState {
        match &self.mode {
            Mode::Train { sampler, .. } => sampler.state(),
            Mode::Eval { sampler, .. } => sampler.state(),
        }
    }
}
