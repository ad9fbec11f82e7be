//! [`DataError`]: everything that can go wrong reading CIFAR-10 or an ImageNet-style folder tree
//! or setting up the samplers, with messages that name the file and the problem (and, for missing
//! or malformed CIFAR data, where to get the real thing).

use std::fmt;
use std::io;
use std::path::PathBuf;

use super::cifar::{RECORD_BYTES, TRAIN_FILE_GLOB};

/// Where to get the data set, appended to every error about the files themselves.
pub const GET_DATA_HINT: &str = "get CIFAR-10 in the official binary format: download the \
    \"CIFAR-10 binary version\" (cifar-10-binary.tar.gz) from https://www.cs.toronto.edu/~kriz/cifar.html \
    and unpack it into data/ (`tar xzf cifar-10-binary.tar.gz` there) so that data/cifar-10-batches-bin/ \
    exists, or use the sample shipped in data/sample/";

/// A data error. Every variant names the file or the setting at fault.
#[derive(Debug)]
pub enum DataError {
    /// The data directory does not exist (or is not a directory).
    MissingDir {
        /// The directory asked for.
        path: PathBuf,
    },
    /// The directory has no `data_batch_<n>.bin` file.
    NoTrainingFiles {
        /// The directory searched.
        dir: PathBuf,
    },
    /// A required file (e.g. `test_batch.bin`) does not exist.
    MissingFile {
        /// The file expected.
        path: PathBuf,
    },
    /// The file exists but could not be listed, opened or mapped.
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The file has zero bytes.
    EmptyFile {
        /// The file.
        path: PathBuf,
    },
    /// The file's size is not a whole number of 3073-byte records.
    BadSize {
        /// The file.
        path: PathBuf,
        /// Its size in bytes.
        size: u64,
        /// `size % 3073`.
        remainder: u64,
    },
    /// A record's label byte is above 9.
    BadLabel {
        /// The file.
        path: PathBuf,
        /// The record's index in the file (0-based).
        record: usize,
        /// The label byte found.
        label: u8,
    },
    /// `--train-portion` is not strictly between 0 and 1 (or not a number).
    BadTrainPortion {
        /// The value given.
        portion: f64,
    },
    /// The split leaves one half empty.
    EmptySplit {
        /// The value given.
        portion: f64,
        /// Number of training images split.
        n: usize,
        /// Images left for the weights.
        train: usize,
        /// Images left for the architecture.
        val: usize,
    },
    /// A sampler asked for batches of 0 images, or over no images.
    BadBatch {
        /// What was wrong.
        detail: String,
    },
    /// A saved sampler state does not fit the sampler it is loaded into.
    StateMismatch {
        /// What differs.
        detail: String,
    },
    /// The background loader thread could not be started.
    Thread {
        /// The underlying error.
        source: io::Error,
    },
    /// An ImageNet-style tree lacks a directory it needs.
    MissingImageDir {
        /// The directory expected.
        path: PathBuf,
        /// What it should hold, e.g. "the training images (train/<class>/*.JPEG)".
        expected: &'static str,
    },
    /// An image folder has no class subdirectory.
    NoClasses {
        /// The folder.
        dir: PathBuf,
    },
    /// A class subdirectory holds no JPEG file.
    EmptyClass {
        /// The class directory.
        dir: PathBuf,
    },
    /// The train and val trees do not list the same classes.
    ClassMismatch {
        /// The training folder.
        train: PathBuf,
        /// The validation folder.
        val: PathBuf,
        /// The first difference, in sorted order.
        detail: String,
    },
    /// A JPEG file could not be decoded.
    Decode {
        /// The file.
        path: PathBuf,
        /// The decoder's reason.
        reason: String,
    },
    /// A JPEG decodes to a colour space the reader does not convert to RGB.
    UnsupportedColor {
        /// The file.
        path: PathBuf,
        /// The colour space found (and, if it matters, its component count).
        colorspace: String,
    },
    /// A background batch-building thread pool could not be started.
    Pool {
        /// The pool builder's reason.
        reason: String,
    },
}

impl fmt::Display for DataError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataError::MissingDir { path } => {
                write!(f, "CIFAR-10 data directory {} does not exist or is not a directory", path.display())?
            }
            DataError::NoTrainingFiles { dir } => write!(
                f,
                "no CIFAR-10 training files ({TRAIN_FILE_GLOB}, e.g. data_batch_1.bin) in {}",
                dir.display()
            )?,
            DataError::MissingFile { path } => write!(f, "{}: file not found", path.display())?,
            DataError::Io { path, source } => write!(f, "{}: cannot read: {source}", path.display())?,
            DataError::EmptyFile { path } => write!(
                f,
                "{}: file is empty (0 bytes); a CIFAR-10 binary file holds {RECORD_BYTES}-byte records",
                path.display()
            )?,
            DataError::BadSize { path, size, remainder } => write!(
                f,
                "{}: size {size} bytes is not a multiple of the {RECORD_BYTES}-byte CIFAR-10 record \
                 (remainder {remainder} bytes): the file is truncated or not the CIFAR-10 binary version",
                path.display()
            )?,
            DataError::BadLabel { path, record, label } => write!(
                f,
                "{}: record {record} has label {label}, but CIFAR-10 labels are 0..9: the file is \
                 corrupt or not the CIFAR-10 binary version (CIFAR-100 records have two label bytes)",
                path.display()
            )?,
            DataError::BadTrainPortion { portion } => {
                return write!(f, "--train-portion must be strictly between 0 and 1, got {portion}")
            }
            DataError::EmptySplit { portion, n, train, val } => {
                return write!(
                    f,
                    "--train-portion {portion} of {n} training images leaves {train} for the weights \
                     and {val} for the architecture: both halves must be non-empty"
                )
            }
            DataError::BadBatch { detail } => return write!(f, "bad batch setting: {detail}"),
            DataError::StateMismatch { detail } => {
                return write!(f, "saved sampler state does not fit this sampler: {detail}")
            }
            DataError::Thread { source } => {
                return write!(f, "cannot start the background data loader thread: {source}")
            }
            DataError::MissingImageDir { path, expected } => {
                return write!(
                    f,
                    "{} does not exist or is not a directory; expected it to hold {expected}",
                    path.display()
                )
            }
            DataError::NoClasses { dir } => {
                return write!(
                    f,
                    "{}: no class subdirectories; expected <class>/*.JPEG folders, one per class",
                    dir.display()
                )
            }
            DataError::EmptyClass { dir } => {
                return write!(f, "{}: class directory holds no .JPEG/.jpg/.jpeg file", dir.display())
            }
            DataError::ClassMismatch { train, val, detail } => {
                return write!(
                f,
                "the training folder {} and the validation folder {} must have the same classes: {detail}",
                train.display(),
                val.display()
            )
            }
            DataError::Decode { path, reason } => {
                return write!(f, "{}: cannot decode the JPEG: {reason}", path.display())
            }
            DataError::UnsupportedColor { path, colorspace } => {
                return write!(
                    f,
                    "{}: JPEG colour space {colorspace} is not supported (RGB/YCbCr, greyscale and \
                     CMYK/YCCK are); convert the file to RGB",
                    path.display()
                )
            }
            DataError::Pool { reason } => {
                return write!(f, "cannot start the data decoding thread pool: {reason}")
            }
        }
        write!(f, "\n  hint: {GET_DATA_HINT}")
    }
}

impl std::error::Error for DataError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            DataError::Io { source, .. } | DataError::Thread { source } => Some(source),
            _ => None,
        }
    }
}
