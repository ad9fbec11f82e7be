//! ImageNet-style folder trees for the ImageNet (mobile setting) evaluation: the scan
//! ([`folder`]), JPEG decoding ([`decode`]), DARTS's `train_imagenet.py` transforms written by
//! hand ([`transform`]) and deterministic, resumable batches built on worker threads
//! ([`source`]).
//!
//! ```no_run
//! use darts::data::imagenet::{EvalTransform, ImageNetFolders, ImageNetSource, TrainTransform};
//! use darts::data::{Loader, DEFAULT_DEPTH};
//!
//! let tree = ImageNetFolders::open("data/imagenet")?; // train/<class>/*.JPEG, val/<class>/*.JPEG
//! let train = ImageNetSource::train(tree.train().clone(), TrainTransform::default(), 128, 0, 8)?;
//! let steps = train.batches_per_epoch();
//! let mut loader = Loader::from_source(train, DEFAULT_DEPTH)?;
//! let batch = loader.try_next_batch()?; // images [128, 3, 224, 224], labels 0..classes
//! let checkpoint = loader.state(); // resume: ImageNetSource::set_state(&checkpoint) before from_source
//! let val = ImageNetSource::eval(tree.val().clone(), EvalTransform::default(), 128, 8)?;
//! let passes = val.batches_per_epoch();
//! # Ok::<(), darts::data::DataError>(())
//! ```

pub mod decode;
pub mod folder;
pub mod source;
pub mod transform;

pub use decode::{decode_jpeg, read_jpeg, RgbImage};
pub use folder::{is_jpeg_name, ImageFolder, ImageNetFolders, Sample};
pub use source::{sample_rng, ImageNetSource, DEFAULT_WORKERS};
pub use transform::{
    Adjust, CropBox, EvalTransform, JitterParams, TrainParams, TrainTransform, EVAL_CROP, EVAL_RESIZE,
    IMAGENET_MEAN, IMAGENET_STD, TRAIN_SIZE,
};
