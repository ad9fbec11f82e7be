//! [`Batch`]: images as an NCHW tensor plus labels, built from a [`BatchPlan`] (which images,
//! which augmentation) over a [`CifarSet`].

use std::ops::Range;

use crate::tensor::{DType, Element, Tensor};
use crate::with_dtype;

use super::augment::{AugParams, NormTable};
use super::cifar::{CifarSet, CHANNELS, HEIGHT, IMAGE_BYTES, WIDTH};

/// A batch of images and labels.
#[derive(Clone, Debug)]
pub struct Batch {
    /// `[B, 3, 32, 32]` normalised images on the CPU, in the requested dtype.
    pub images: Tensor,
    /// The `B` labels, 0..9.
    pub labels: Vec<u32>,
}

impl Batch {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True for a batch of no image.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
}

/// What a sampler decided for one batch: the images (indices into the set) and, for search
/// batches, one augmentation per image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchPlan {
    /// Image indices, in batch order.
    pub indices: Vec<usize>,
    /// `Some`: random crop + flip per image (same length as `indices`); `None`: normalise only.
    pub aug: Option<Vec<AugParams>>,
}

/// Reads, augments and normalises the images of `plan` into a batch of `dtype`.
pub fn build_batch(set: &CifarSet, plan: &BatchPlan, dtype: DType) -> Batch {
    with_dtype!(dtype, T => build_typed::<T>(set, plan))
}

fn build_typed<T: Element>(set: &CifarSet, plan: &BatchPlan) -> Batch {
    let table = NormTable::<T>::new();
    let b = plan.indices.len();
    if let Some(aug) = &plan.aug {
        assert_eq!(aug.len(), b, "BatchPlan: {} augmentations for {b} images", aug.len());
    }
    let mut data = vec![T::ZERO; b * IMAGE_BYTES];
    let mut labels = Vec::with_capacity(b);
    for (k, (&i, out)) in plan.indices.iter().zip(data.chunks_exact_mut(IMAGE_BYTES)).enumerate() {
        let img = set.image(i);
        match &plan.aug {
            Some(aug) => table.augment_image(img, aug[k], out),
            None => table.normalize_image(img, out),
        }
        labels.push(set.label(i) as u32);
    }
    Batch { images: Tensor::from_vec(&[b, CHANNELS, HEIGHT, WIDTH], data), labels }
}

/// Evaluation batches over `range` of `set`, in order, normalised only (the last one partial).
pub fn eval_batches(
    set: &CifarSet,
    range: Range<usize>,
    batch_size: usize,
    dtype: DType,
) -> impl Iterator<Item = Batch> + '_ {
    assert!(batch_size > 0, "eval_batches: batch size must be positive");
    assert!(range.end <= set.len(), "eval_batches: range {range:?} beyond the set's {} images", set.len());
    let starts = range.clone().step_by(batch_size);
    starts.map(move |s| {
        let plan = BatchPlan { indices: (s..(s + batch_size).min(range.end)).collect(), aug: None };
        build_batch(set, &plan, dtype)
    })
}
