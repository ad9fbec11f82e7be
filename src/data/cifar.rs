//! The CIFAR-10 binary-version reader: memory-mapped files of 3073-byte records (1 label byte,
//! then 1024 red, 1024 green and 1024 blue bytes, each plane row-major 32x32).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use memmap2::Mmap;

use super::error::DataError;

/// Bytes per record: 1 label + 3 x 32 x 32 pixels.
pub const RECORD_BYTES: usize = 1 + IMAGE_BYTES;
/// Pixel bytes per image.
pub const IMAGE_BYTES: usize = CHANNELS * HEIGHT * WIDTH;
/// Colour planes (R, G, B).
pub const CHANNELS: usize = 3;
/// Image height.
pub const HEIGHT: usize = 32;
/// Image width.
pub const WIDTH: usize = 32;
/// Number of classes; labels are `0..NUM_CLASSES`.
pub const NUM_CLASSES: usize = 10;
/// The class names in label order.
pub const CLASS_NAMES: [&str; NUM_CLASSES] =
    ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"];
/// The training files' name pattern.
pub const TRAIN_FILE_GLOB: &str = "data_batch_<n>.bin";
/// The test file's name.
pub const TEST_FILE: &str = "test_batch.bin";

/// One memory-mapped, validated CIFAR-10 binary file.
#[derive(Debug)]
pub struct CifarFile {
    path: PathBuf,
    map: Mmap,
    len: usize,
}

impl CifarFile {
    /// Opens and maps `path`, checking that its size is a positive multiple of 3073 bytes and
    /// that every label is 0..9.
    pub fn open(path: impl AsRef<Path>) -> Result<CifarFile, DataError> {
        let path = path.as_ref().to_path_buf();
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(DataError::MissingFile { path })
            }
            Err(source) => return Err(DataError::Io { path, source }),
        };
        let meta = file.metadata().map_err(|source| DataError::Io { path: path.clone(), source })?;
        if meta.is_dir() {
            let source = std::io::Error::other("is a directory, expected a CIFAR-10 binary file");
            return Err(DataError::Io { path, source });
        }
        let size = meta.len();
        if size == 0 {
            return Err(DataError::EmptyFile { path });
        }
        let remainder = size % RECORD_BYTES as u64;
        if remainder != 0 {
            return Err(DataError::BadSize { path, size, remainder });
        }
        // SAFETY: the map is read-only and private to this process. Like every memory-mapped
        // reader, it assumes the file is not truncated or rewritten by another process while
        // the run uses it (the data set is an input that nothing modifies during a search).
        let map =
            unsafe { Mmap::map(&file) }.map_err(|source| DataError::Io { path: path.clone(), source })?;
        if map.len() as u64 != size {
            let source = std::io::Error::other(format!("mapped {} bytes of a {size}-byte file", map.len()));
            return Err(DataError::Io { path, source });
        }
        let len = map.len() / RECORD_BYTES;
        for record in 0..len {
            let label = map[record * RECORD_BYTES];
            if label as usize >= NUM_CLASSES {
                return Err(DataError::BadLabel { path, record, label });
            }
        }
        Ok(CifarFile { path, map, len })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when the file holds no image (never, after a successful `open`).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Label of image `i` (0..9).
    pub fn label(&self, i: usize) -> u8 {
        self.map[i * RECORD_BYTES]
    }

    /// The 3072 pixel bytes of image `i`: R plane, G plane, B plane, each row-major 32x32.
    pub fn image(&self, i: usize) -> &[u8] {
        let start = i * RECORD_BYTES + 1;
        &self.map[start..start + IMAGE_BYTES]
    }
}

/// Several CIFAR-10 files seen as one indexed set of images (e.g. the five training batches).
#[derive(Debug)]
pub struct CifarSet {
    files: Vec<CifarFile>,
    /// `starts[k]` = index of the first image of `files[k]`; one extra entry = total.
    starts: Vec<usize>,
}

impl CifarSet {
    /// The concatenation of `files`, in order.
    pub fn new(files: Vec<CifarFile>) -> CifarSet {
        let mut starts = Vec::with_capacity(files.len() + 1);
        let mut total = 0;
        for f in &files {
            starts.push(total);
            total += f.len();
        }
        starts.push(total);
        CifarSet { files, starts }
    }

    /// Opens each path with [`CifarFile::open`] and concatenates them.
    pub fn open<P: AsRef<Path>>(paths: &[P]) -> Result<CifarSet, DataError> {
        Ok(CifarSet::new(paths.iter().map(CifarFile::open).collect::<Result<_, _>>()?))
    }

    /// The files, in order.
    pub fn files(&self) -> &[CifarFile] {
        &self.files
    }

    /// Total number of images.
    pub fn len(&self) -> usize {
        *self.starts.last().expect("starts has a total entry")
    }

    /// True when the set has no image.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn locate(&self, i: usize) -> (&CifarFile, usize) {
        assert!(i < self.len(), "CifarSet: image index {i} out of range (the set has {})", self.len());
        // The first file whose start is > i, minus one. Few files: a binary search is plenty.
        let k = self.starts.partition_point(|&s| s <= i) - 1;
        (&self.files[k], i - self.starts[k])
    }

    /// Label of image `i` (0..9); panics if `i >= len()`.
    pub fn label(&self, i: usize) -> u8 {
        let (f, j) = self.locate(i);
        f.label(j)
    }

    /// The 3072 pixel bytes of image `i` (R, G, B planes, row-major 32x32); panics if
    /// `i >= len()`.
    pub fn image(&self, i: usize) -> &[u8] {
        let (f, j) = self.locate(i);
        f.image(j)
    }

    /// Every label, in order.
    pub fn labels(&self) -> Vec<u8> {
        self.files.iter().flat_map(|f| (0..f.len()).map(move |j| f.label(j))).collect()
    }
}

/// The CIFAR-10 data set in a directory: the training set is every `data_batch_<n>.bin`
/// present (by increasing `n`), the test set is `test_batch.bin`.
#[derive(Debug, Clone)]
pub struct Cifar10 {
    dir: PathBuf,
    train: Arc<CifarSet>,
    test: Arc<CifarSet>,
}

impl Cifar10 {
    /// Opens the data set in `dir` (e.g. `data/cifar-10-batches-bin` or `data/sample`),
    /// validating every file.
    pub fn open(dir: impl AsRef<Path>) -> Result<Cifar10, DataError> {
        let dir = dir.as_ref().to_path_buf();
        let train_paths = train_files(&dir)?;
        let train = CifarSet::open(&train_paths)?;
        let test = CifarSet::open(&[dir.join(TEST_FILE)])?;
        Ok(Cifar10 { dir, train: Arc::new(train), test: Arc::new(test) })
    }

    /// The directory it was opened from.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The training images (all `data_batch_<n>.bin`, concatenated).
    pub fn train(&self) -> &Arc<CifarSet> {
        &self.train
    }

    /// The test images (`test_batch.bin`).
    pub fn test(&self) -> &Arc<CifarSet> {
        &self.test
    }
}

/// The `data_batch_<n>.bin` files in `dir`, sorted by `n`.
pub fn train_files(dir: &Path) -> Result<Vec<PathBuf>, DataError> {
    if !dir.is_dir() {
        return Err(DataError::MissingDir { path: dir.to_path_buf() });
    }
    let entries =
        std::fs::read_dir(dir).map_err(|source| DataError::Io { path: dir.to_path_buf(), source })?;
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| DataError::Io { path: dir.to_path_buf(), source })?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(n) = batch_number(name) {
            found.push((n, entry.path()));
        }
    }
    if found.is_empty() {
        return Err(DataError::NoTrainingFiles { dir: dir.to_path_buf() });
    }
    found.sort();
    Ok(found.into_iter().map(|(_, p)| p).collect())
}

/// `Some(n)` for a file named `data_batch_<n>.bin` (n decimal digits).
fn batch_number(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("data_batch_")?.strip_suffix(".bin")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_numbers_parse_and_sort_numerically() {
        assert_eq!(batch_number("data_batch_1.bin"), Some(1));
        assert_eq!(batch_number("data_batch_12.bin"), Some(12));
        assert_eq!(batch_number("data_batch_.bin"), None);
        assert_eq!(batch_number("data_batch_1.bin.bak"), None);
        assert_eq!(batch_number("data_batch_x.bin"), None);
        assert_eq!(batch_number("test_batch.bin"), None);
    }

    #[test]
    fn record_layout_constants() {
        assert_eq!(RECORD_BYTES, 3073);
        assert_eq!(IMAGE_BYTES, 3072);
    }
}
