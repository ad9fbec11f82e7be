//! Seeded samplers deciding which images form each batch and how they are augmented, with
//! exportable state so a resumed run draws exactly the batches it would have drawn.
//!
//! - [`EpochSampler`]: DARTS's weight-training queue: every epoch a fresh seeded shuffle of the
//!   train indices, cut into batches of B, the last one partial (PyTorch's `drop_last=False`).
//! - [`RandomBatchSampler`]: DARTS's architecture queue: `train_search.py` calls
//!   `next(iter(valid_queue))` every step, i.e. the first batch of a fresh random permutation of
//!   the val half: B distinct images, drawn independently each step (with replacement across
//!   steps).
//! - [`SequentialSampler`]: in order, no augmentation (evaluation).

use crate::rng::Rng;
use crate::tensor::DType;

use super::augment::{AugParams, Cutout};
use super::batch::{build_batch, Batch, BatchPlan};
use super::cifar::CifarSet;
use super::error::DataError;
use super::split::{train_val_split, Split};

/// A sampler's resumable state, as plain integers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct SamplerState {
    /// The order generator's state. For an [`EpochSampler`]: as it was at the start of the current
    /// epoch, before that epoch's shuffle (the shuffle is redrawn on import).
    pub order_rng: [u64; 4],
    /// The augmentation generator's state.
    pub aug_rng: [u64; 4],
    /// Current epoch ([`EpochSampler`], [`SequentialSampler`]; 0 for [`RandomBatchSampler`]).
    pub epoch: u64,
    /// Images already served this epoch ([`EpochSampler`], [`SequentialSampler`]), or batches
    /// drawn so far ([`RandomBatchSampler`]).
    pub position: u64,
    /// Number of indices the sampler draws from (checked on import).
    pub len: u64,
}

impl SamplerState {
    /// Number of words in [`SamplerState::to_words`].
    pub const WORDS: usize = 11;

    /// The state as 11 words: order_rng, aug_rng, epoch, position, len.
    pub fn to_words(&self) -> [u64; Self::WORDS] {
        let [a, b, c, d] = self.order_rng;
        let [e, f, g, h] = self.aug_rng;
        [a, b, c, d, e, f, g, h, self.epoch, self.position, self.len]
    }

    /// The inverse of [`SamplerState::to_words`]; `None` unless `w` has 11 words.
    pub fn from_words(w: &[u64]) -> Option<SamplerState> {
        let w: &[u64; Self::WORDS] = w.try_into().ok()?;
        Some(SamplerState {
            order_rng: [w[0], w[1], w[2], w[3]],
            aug_rng: [w[4], w[5], w[6], w[7]],
            epoch: w[8],
            position: w[9],
            len: w[10],
        })
    }
}

/// Something that decides batches.
pub trait Sampler {
    /// The next batch's plan (advances the sampler).
    fn next_plan(&mut self) -> BatchPlan;
    /// The state after the batches drawn so far.
    fn state(&self) -> SamplerState;
    /// Restores a state exported by [`Sampler::state`] from a sampler built with the same
    /// indices; the batches that follow are those the exporting sampler would have drawn.
    fn set_state(&mut self, state: &SamplerState) -> Result<(), DataError>;
    /// One more than the largest image index it can draw.
    fn index_bound(&self) -> usize;
    /// Draws the next plan and builds its batch from `set`.
    fn next_batch(&mut self, set: &CifarSet, dtype: DType) -> Batch {
        build_batch(set, &self.next_plan(), dtype)
    }
}

/// Independent order and augmentation generators for a seed and a sampler kind.
fn streams(seed: u64, domain: u64) -> (Rng, Rng) {
    let mut root = Rng::new(seed ^ domain);
    (Rng::new(root.next_u64()), Rng::new(root.next_u64()))
}

fn check_setup(what: &str, indices: &[usize], batch_size: usize) -> Result<(), DataError> {
    if batch_size == 0 {
        return Err(DataError::BadBatch { detail: format!("{what}: batch size must be positive, got 0") });
    }
    if indices.is_empty() {
        return Err(DataError::BadBatch { detail: format!("{what}: no images to draw from") });
    }
    Ok(())
}

fn check_len(what: &str, state: &SamplerState, len: usize) -> Result<(), DataError> {
    if state.len != len as u64 {
        return Err(DataError::StateMismatch {
            detail: format!("{what} state was saved over {} images, this sampler has {len}", state.len),
        });
    }
    Ok(())
}

/// Per image: a crop and flip, then (when `cutout > 0`) a cutout centre, from one stream.
fn aug_for(n: usize, cutout: u8, rng: &mut Rng) -> Vec<AugParams> {
    (0..n)
        .map(|_| {
            let p = AugParams::random(rng);
            AugParams { cutout: (cutout > 0).then(|| Cutout::random(cutout, rng)), ..p }
        })
        .collect()
}

/// Fisher–Yates shuffle of a copy of `indices`.
fn shuffled(indices: &[usize], rng: &mut Rng) -> Vec<usize> {
    let mut v = indices.to_vec();
    for i in (1..v.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        v.swap(i, j);
    }
    v
}

/// Epoch-wise shuffled batches (the weight-training queue).
#[derive(Clone, Debug)]
pub struct EpochSampler {
    indices: Vec<usize>,
    batch_size: usize,
    augment: bool,
    cutout: u8,
    order: Rng,
    epoch_start: [u64; 4],
    aug: Rng,
    perm: Vec<usize>,
    epoch: u64,
    position: usize,
}

impl EpochSampler {
    const DOMAIN: u64 = 0x5452_4149_4e5f_4550; // "TRAIN_EP"

    /// Batches of `batch_size` over `indices`, reshuffled each epoch; `augment` draws a random
    /// crop + flip per image. Errors for an empty index list or a zero batch size.
    pub fn new(indices: Vec<usize>, batch_size: usize, augment: bool, seed: u64) -> Result<Self, DataError> {
        check_setup("EpochSampler", &indices, batch_size)?;
        let (mut order, aug) = streams(seed, Self::DOMAIN);
        let epoch_start = order.state();
        let perm = shuffled(&indices, &mut order);
        Ok(EpochSampler {
            indices,
            batch_size,
            augment,
            cutout: 0,
            order,
            epoch_start,
            aug,
            perm,
            epoch: 0,
            position: 0,
        })
    }

    /// Adds a [`Cutout`] of side `len` to every augmented image (0: none; the evaluation
    /// training's regulariser, 16 in DARTS).
    pub fn with_cutout(mut self, len: u8) -> Self {
        self.cutout = len;
        self
    }

    /// Batches per epoch: `ceil(len / batch_size)`.
    pub fn batches_per_epoch(&self) -> usize {
        self.indices.len().div_ceil(self.batch_size)
    }

    /// The epoch of the last batch drawn (0 before any).
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Number of indices.
    pub fn len(&self) -> usize {
        self.indices.len()
    }

    /// Never true (an empty sampler cannot be built).
    pub fn is_empty(&self) -> bool {
        self.indices.is_empty()
    }

    /// The batch size.
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }
}

impl Sampler for EpochSampler {
    fn next_plan(&mut self) -> BatchPlan {
        let n = self.indices.len();
        if self.position >= n {
            self.epoch += 1;
            self.epoch_start = self.order.state();
            self.perm = shuffled(&self.indices, &mut self.order);
            self.position = 0;
        }
        let end = (self.position + self.batch_size).min(n);
        let indices = self.perm[self.position..end].to_vec();
        self.position = end;
        let aug = self.augment.then(|| aug_for(indices.len(), self.cutout, &mut self.aug));
        BatchPlan { indices, aug }
    }

    fn state(&self) -> SamplerState {
        SamplerState {
            order_rng: self.epoch_start,
            aug_rng: self.aug.state(),
            epoch: self.epoch,
            position: self.position as u64,
            len: self.indices.len() as u64,
        }
    }

    fn set_state(&mut self, s: &SamplerState) -> Result<(), DataError> {
        check_len("EpochSampler", s, self.indices.len())?;
        if s.position > s.len {
            return Err(DataError::StateMismatch {
                detail: format!("EpochSampler position {} beyond its {} images", s.position, s.len),
            });
        }
        self.order = Rng::from_state(s.order_rng);
        self.epoch_start = s.order_rng;
        self.perm = shuffled(&self.indices, &mut self.order);
        self.aug = Rng::from_state(s.aug_rng);
        self.epoch = s.epoch;
        self.position = s.position as usize;
        Ok(())
    }

    fn index_bound(&self) -> usize {
        self.indices.iter().max().map_or(0, |&m| m + 1)
    }
}

/// An independent random batch every step, augmented (the architecture queue).
#[derive(Clone, Debug)]
pub struct RandomBatchSampler {
    indices: Vec<usize>,
    batch_size: usize,
    order: Rng,
    aug: Rng,
    drawn: u64,
    scratch: Vec<usize>,
}

impl RandomBatchSampler {
    const DOMAIN: u64 = 0x5641_4c5f_5241_4e44; // "VAL_RAND"

    /// Each step, `min(batch_size, len)` distinct images drawn uniformly from `indices`, each
    /// with a random crop + flip. Errors for an empty index list or a zero batch size.
    pub fn new(indices: Vec<usize>, batch_size: usize, seed: u64) -> Result<Self, DataError> {
        check_setup("RandomBatchSampler", &indices, batch_size)?;
        let (order, aug) = streams(seed, Self::DOMAIN);
        let scratch = indices.clone();
        Ok(RandomBatchSampler { indices, batch_size, order, aug, drawn: 0, scratch })
    }

    /// Number of indices.
    pub fn len(&self) -> usize {
        self.indices.len()
    }

    /// Never true (an empty sampler cannot be built).
    pub fn is_empty(&self) -> bool {
        self.indices.is_empty()
    }

    /// The batch size.
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }
}

impl Sampler for RandomBatchSampler {
    fn next_plan(&mut self) -> BatchPlan {
        // A partial Fisher–Yates over a fresh copy: the first k of a uniform random permutation.
        let n = self.indices.len();
        let k = self.batch_size.min(n);
        self.scratch.copy_from_slice(&self.indices);
        for i in 0..k {
            let j = i + self.order.below((n - i) as u64) as usize;
            self.scratch.swap(i, j);
        }
        let indices = self.scratch[..k].to_vec();
        self.drawn += 1;
        let aug = Some(aug_for(k, 0, &mut self.aug));
        BatchPlan { indices, aug }
    }

    fn state(&self) -> SamplerState {
        SamplerState {
            order_rng: self.order.state(),
            aug_rng: self.aug.state(),
            epoch: 0,
            position: self.drawn,
            len: self.indices.len() as u64,
        }
    }

    fn set_state(&mut self, s: &SamplerState) -> Result<(), DataError> {
        check_len("RandomBatchSampler", s, self.indices.len())?;
        self.order = Rng::from_state(s.order_rng);
        self.aug = Rng::from_state(s.aug_rng);
        self.drawn = s.position;
        Ok(())
    }

    fn index_bound(&self) -> usize {
        self.indices.iter().max().map_or(0, |&m| m + 1)
    }
}

/// Batches in index order, normalised only, wrapping around after the last (partial) batch.
#[derive(Clone, Debug)]
pub struct SequentialSampler {
    indices: Vec<usize>,
    batch_size: usize,
    epoch: u64,
    position: usize,
}

impl SequentialSampler {
    /// Batches of `batch_size` over `indices` in order. Errors for an empty index list or a zero
    /// batch size.
    pub fn new(indices: Vec<usize>, batch_size: usize) -> Result<Self, DataError> {
        check_setup("SequentialSampler", &indices, batch_size)?;
        Ok(SequentialSampler { indices, batch_size, epoch: 0, position: 0 })
    }

    /// Batches per pass: `ceil(len / batch_size)`.
    pub fn batches_per_epoch(&self) -> usize {
        self.indices.len().div_ceil(self.batch_size)
    }
}

impl Sampler for SequentialSampler {
    fn next_plan(&mut self) -> BatchPlan {
        let n = self.indices.len();
        if self.position >= n {
            self.epoch += 1;
            self.position = 0;
        }
        let end = (self.position + self.batch_size).min(n);
        let indices = self.indices[self.position..end].to_vec();
        self.position = end;
        BatchPlan { indices, aug: None }
    }

    fn state(&self) -> SamplerState {
        SamplerState {
            epoch: self.epoch,
            position: self.position as u64,
            len: self.indices.len() as u64,
            ..SamplerState::default()
        }
    }

    fn set_state(&mut self, s: &SamplerState) -> Result<(), DataError> {
        check_len("SequentialSampler", s, self.indices.len())?;
        if s.position > s.len {
            return Err(DataError::StateMismatch {
                detail: format!("SequentialSampler position {} beyond its {} images", s.position, s.len),
            });
        }
        self.epoch = s.epoch;
        self.position = s.position as usize;
        Ok(())
    }

    fn index_bound(&self) -> usize {
        self.indices.iter().max().map_or(0, |&m| m + 1)
    }
}

/// The two samplers of a DARTS search over `n` training images.
#[derive(Clone, Debug)]
pub struct SearchSamplers {
    /// The split they draw from.
    pub split: Split,
    /// Weight batches: shuffled each epoch over `split.train`, augmented.
    pub train: EpochSampler,
    /// Architecture batches: a random augmented batch each step from `split.val`.
    pub val: RandomBatchSampler,
}

/// Splits `n` training images at `train_portion` and builds both search samplers from `seed`.
pub fn search_samplers(
    n: usize,
    train_portion: f64,
    batch_size: usize,
    seed: u64,
) -> Result<SearchSamplers, DataError> {
    let split = train_val_split(n, train_portion)?;
    let train = EpochSampler::new(split.train.clone().collect(), batch_size, true, seed)?;
    let val = RandomBatchSampler::new(split.val.clone().collect(), batch_size, seed)?;
    Ok(SearchSamplers { split, train, val })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(s: &mut impl Sampler, k: usize) -> Vec<BatchPlan> {
        (0..k).map(|_| s.next_plan()).collect()
    }

    #[test]
    fn epoch_sampler_covers_each_index_once_per_epoch() {
        let mut s = EpochSampler::new((10..35).collect(), 8, true, 1).unwrap();
        assert_eq!(s.batches_per_epoch(), 4);
        for epoch in 0..3 {
            let plans = drain(&mut s, 4);
            let sizes: Vec<usize> = plans.iter().map(|p| p.indices.len()).collect();
            assert_eq!(sizes, [8, 8, 8, 1]);
            let mut all: Vec<usize> = plans.iter().flat_map(|p| p.indices.clone()).collect();
            all.sort();
            assert_eq!(all, (10..35).collect::<Vec<_>>());
            assert_eq!(s.epoch(), epoch);
            assert!(plans.iter().all(|p| p.aug.as_ref().unwrap().len() == p.indices.len()));
        }
    }

    #[test]
    fn epochs_differ_and_seeds_differ() {
        let mut a = EpochSampler::new((0..100).collect(), 100, false, 5).unwrap();
        let (e0, e1) = (a.next_plan(), a.next_plan());
        assert_ne!(e0.indices, e1.indices);
        assert!(e0.aug.is_none());
        let mut b = EpochSampler::new((0..100).collect(), 100, false, 6).unwrap();
        assert_ne!(b.next_plan().indices, e0.indices);
        let mut c = EpochSampler::new((0..100).collect(), 100, false, 5).unwrap();
        assert_eq!(c.next_plan().indices, e0.indices);
    }

    #[test]
    fn random_batches_are_distinct_within_and_independent_across_steps() {
        let mut s = RandomBatchSampler::new((50..60).collect(), 4, 3).unwrap();
        let plans = drain(&mut s, 200);
        let mut counts = [0usize; 10];
        for p in &plans {
            let mut v = p.indices.clone();
            v.sort();
            v.dedup();
            assert_eq!(v.len(), 4, "repeated index in {:?}", p.indices);
            v.iter().for_each(|&i| counts[i - 50] += 1);
        }
        // 800 draws over 10 images: each close to 80.
        assert!(counts.iter().all(|&c| (50..110).contains(&c)), "{counts:?}");
        assert_ne!(plans[0].indices, plans[1].indices);
        // A batch larger than the half takes all of it.
        let mut big = RandomBatchSampler::new((0..3).collect(), 8, 3).unwrap();
        assert_eq!(big.next_plan().indices.len(), 3);
    }

    #[test]
    fn resume_mid_epoch_and_at_epoch_end() {
        for cut in [0, 1, 2, 3, 4, 6] {
            let mut a = EpochSampler::new((0..30).collect(), 8, true, 11).unwrap();
            let _ = drain(&mut a, cut);
            let st = a.state();
            let mut b = EpochSampler::new((0..30).collect(), 8, true, 999).unwrap();
            b.set_state(&SamplerState::from_words(&st.to_words()).unwrap()).unwrap();
            assert_eq!(drain(&mut a, 9), drain(&mut b, 9), "cut {cut}");
            assert_eq!(a.state(), b.state());
        }
        let mut a = RandomBatchSampler::new((0..30).collect(), 8, 2).unwrap();
        let _ = drain(&mut a, 3);
        let mut b = RandomBatchSampler::new((0..30).collect(), 8, 0).unwrap();
        b.set_state(&a.state()).unwrap();
        assert_eq!(drain(&mut a, 5), drain(&mut b, 5));
        let mut a = SequentialSampler::new((0..30).collect(), 8).unwrap();
        let _ = drain(&mut a, 5);
        let mut b = SequentialSampler::new((0..30).collect(), 8).unwrap();
        b.set_state(&a.state()).unwrap();
        assert_eq!(drain(&mut a, 5), drain(&mut b, 5));
    }

    #[test]
    fn bad_setup_and_mismatched_state() {
        assert!(EpochSampler::new(vec![], 4, true, 0).unwrap_err().to_string().contains("no images"));
        assert!(RandomBatchSampler::new(vec![1], 0, 0).unwrap_err().to_string().contains("batch size"));
        let a = EpochSampler::new((0..30).collect(), 8, true, 1).unwrap();
        let mut b = EpochSampler::new((0..31).collect(), 8, true, 1).unwrap();
        let e = b.set_state(&a.state()).unwrap_err();
        assert!(e.to_string().contains("saved over 30 images, this sampler has 31"), "{e}");
        assert!(SamplerState::from_words(&[0; 10]).is_none());
    }

    #[test]
    fn search_samplers_split_the_set() {
        let s = search_samplers(2000, 0.5, 64, 0).unwrap();
        assert_eq!((s.train.len(), s.val.len()), (1000, 1000));
        assert_eq!(s.train.batches_per_epoch(), 16);
        assert_eq!(s.val.index_bound(), 2000);
        assert!(search_samplers(2000, 1.0, 64, 0).is_err());
    }
}
