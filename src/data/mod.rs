//! CIFAR-10 input pipeline for the search: the binary-format reader ([`cifar`]), the DARTS
//! train/val split ([`split`]), the search augmentation ([`augment`]), batches ([`batch`]),
//! seeded resumable samplers ([`sampler`]) and a background loader ([`loader`]). ImageNet-style
//! JPEG folder trees, for the ImageNet evaluation, are read by [`imagenet`].
//!
//! ```no_run
//! use darts::data::{default_data_dir, search_samplers, Cifar10, Loader, DEFAULT_DEPTH};
//! use darts::DType;
//!
//! let (dir, what) = default_data_dir(std::path::Path::new("."));
//! println!("data: {what}");
//! let data = Cifar10::open(&dir)?;
//! let s = search_samplers(data.train().len(), 0.5, 64, 2)?;
//! let mut train = Loader::spawn(data.train().clone(), s.train, DType::F32, DEFAULT_DEPTH)?;
//! let mut val = Loader::spawn(data.train().clone(), s.val, DType::F32, DEFAULT_DEPTH)?;
//! let (x, x_arch) = (train.next_batch(), val.next_batch());
//! # Ok::<(), darts::data::DataError>(())
//! ```

pub mod augment;
pub mod batch;
pub mod cifar;
pub mod error;
pub mod imagenet;
pub mod loader;
pub mod sampler;
pub mod split;

use std::path::{Path, PathBuf};

pub use augment::{AugParams, Cutout, NormTable, MEAN, STD};
pub use batch::{build_batch, eval_batches, Batch, BatchPlan};
pub use cifar::{Cifar10, CifarFile, CifarSet, CLASS_NAMES, NUM_CLASSES};
pub use error::DataError;
pub use loader::{BatchSource, Loader, DEFAULT_DEPTH};
pub use sampler::{
    search_samplers, EpochSampler, RandomBatchSampler, Sampler, SamplerState, SearchSamplers,
    SequentialSampler,
};
pub use split::{train_val_split, Split, DEFAULT_TRAIN_PORTION};

/// The full data set's folder, relative to the project root.
pub const FULL_DIR: &str = "data/cifar-10-batches-bin";
/// The shipped sample's folder, relative to the project root.
pub const SAMPLE_DIR: &str = "data/sample";

/// The data directory under project `root`: `data/cifar-10-batches-bin` when it exists, else the
/// shipped `data/sample`, with a short description of which was chosen.
pub fn default_data_dir(root: &Path) -> (PathBuf, &'static str) {
    let full = root.join(FULL_DIR);
    if full.is_dir() {
        (full, "full CIFAR-10 (data/cifar-10-batches-bin)")
    } else {
        (
            root.join(SAMPLE_DIR),
            "shipped CIFAR-10 sample (data/sample: 2000 train / 500 test images; unpack \
             cifar-10-binary.tar.gz into data/ for the full set)",
        )
    }
}
