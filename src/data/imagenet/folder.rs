//! Scanning an ImageNet-style folder tree the way torchvision's `ImageFolder` does: the classes
//! are the sorted subdirectory names, a class's index is its position in that list, and within a
//! class the files are sorted by name. Only JPEG files count (`.jpeg`, `.jpg`, any case); other
//! files, such as notes left in a class folder, are skipped as `ImageFolder` skips files outside
//! its extension list.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::data::error::DataError;

/// One image: its file and its class index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sample {
    /// The JPEG file.
    pub path: PathBuf,
    /// The class index: the position of its folder's name among the sorted class names.
    pub label: u32,
}

/// The images of one folder of class subdirectories (e.g. `train/`).
#[derive(Clone, Debug)]
pub struct ImageFolder {
    dir: PathBuf,
    classes: Vec<String>,
    samples: Vec<Sample>,
}

/// True for a file name ending in `.jpeg` or `.jpg`, in any case (ImageNet uses `.JPEG`).
pub fn is_jpeg_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower.ends_with(".jpeg") || lower.ends_with(".jpg")
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> DataError + '_ {
    move |source| DataError::Io { path: path.to_path_buf(), source }
}

/// The entries of `dir` that `keep` accepts, as (name, path), sorted by name. Names that are
/// not UTF-8 are compared by their lossy form, which keeps the order stable.
fn sorted_entries(
    dir: &Path,
    keep: impl Fn(&Path, &str) -> bool,
) -> Result<Vec<(String, PathBuf)>, DataError> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_err(dir))? {
        let entry = entry.map_err(io_err(dir))?;
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if keep(&path, &name) {
            out.push((name, path));
        }
    }
    // Byte order of the names, as Python's `sorted` orders ASCII file names.
    out.sort();
    Ok(out)
}

impl ImageFolder {
    /// Scans `dir`: every subdirectory is a class, every JPEG file in it an image. Errors for a
    /// missing `dir` (naming `expected`, what it should hold), a folder without classes, and a
    /// class without JPEG files.
    pub fn scan_expecting(dir: impl AsRef<Path>, expected: &'static str) -> Result<ImageFolder, DataError> {
        let dir = dir.as_ref().to_path_buf();
        if !dir.is_dir() {
            return Err(DataError::MissingImageDir { path: dir, expected });
        }
        // Hidden folders (e.g. `.ipynb_checkpoints`) are not classes, as in `ImageFolder`'s
        // `find_classes`, which lists every directory; skipping dot-folders is the one liberty
        // taken, since a stray one would otherwise shift every later class index.
        let class_dirs = sorted_entries(&dir, |p, n| p.is_dir() && !n.starts_with('.'))?;
        if class_dirs.is_empty() {
            return Err(DataError::NoClasses { dir });
        }
        let mut classes = Vec::with_capacity(class_dirs.len());
        let mut samples = Vec::new();
        for (label, (name, class_dir)) in class_dirs.into_iter().enumerate() {
            let files = sorted_entries(&class_dir, |p, n| is_jpeg_name(n) && p.is_file())?;
            if files.is_empty() {
                return Err(DataError::EmptyClass { dir: class_dir });
            }
            samples.extend(files.into_iter().map(|(_, path)| Sample { path, label: label as u32 }));
            classes.push(name);
        }
        Ok(ImageFolder { dir, classes, samples })
    }

    /// [`ImageFolder::scan_expecting`] with a generic description of the expected content.
    pub fn scan(dir: impl AsRef<Path>) -> Result<ImageFolder, DataError> {
        ImageFolder::scan_expecting(dir, "one subdirectory of JPEG files per class (<class>/*.JPEG)")
    }

    /// The folder scanned.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The class names, sorted; a label is an index into this list.
    pub fn classes(&self) -> &[String] {
        &self.classes
    }

    /// Every image, class by class, sorted by file name within a class.
    pub fn samples(&self) -> &[Sample] {
        &self.samples
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    /// Never true for a scanned folder (each class holds at least one image).
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// The label of image `i`.
    pub fn label(&self, i: usize) -> u32 {
        self.samples[i].label
    }

    /// The file of image `i`.
    pub fn path(&self, i: usize) -> &Path {
        &self.samples[i].path
    }
}

/// An ImageNet-style tree: `<root>/train/<class>/*.JPEG` and `<root>/val/<class>/*.JPEG`, with
/// the same classes in both.
#[derive(Clone, Debug)]
pub struct ImageNetFolders {
    root: PathBuf,
    train: Arc<ImageFolder>,
    val: Arc<ImageFolder>,
}

impl ImageNetFolders {
    /// Scans `root/train` and `root/val` and checks that they list the same classes (an error
    /// names both folders and the first class that differs).
    pub fn open(root: impl AsRef<Path>) -> Result<ImageNetFolders, DataError> {
        let root = root.as_ref().to_path_buf();
        if !root.is_dir() {
            return Err(DataError::MissingImageDir {
                path: root,
                expected: "an ImageNet-style tree: train/<class>/*.JPEG and val/<class>/*.JPEG",
            });
        }
        let train = ImageFolder::scan_expecting(
            root.join("train"),
            "the training images, one subdirectory per class (train/<class>/*.JPEG)",
        )?;
        let val = ImageFolder::scan_expecting(
            root.join("val"),
            "the validation images, one subdirectory per class (val/<class>/*.JPEG; the \
             official flat val/ folder must first be sorted into class folders)",
        )?;
        check_same_classes(&train, &val)?;
        Ok(ImageNetFolders { root, train: Arc::new(train), val: Arc::new(val) })
    }

    /// The tree's root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The class names (the same in both folders).
    pub fn classes(&self) -> &[String] {
        self.train.classes()
    }

    /// The training folder.
    pub fn train(&self) -> &Arc<ImageFolder> {
        &self.train
    }

    /// The validation folder.
    pub fn val(&self) -> &Arc<ImageFolder> {
        &self.val
    }
}

/// Errors unless both folders have the same sorted class list.
fn check_same_classes(train: &ImageFolder, val: &ImageFolder) -> Result<(), DataError> {
    let (a, b) = (train.classes(), val.classes());
    if a == b {
        return Ok(());
    }
    let detail = match a.iter().zip(b).position(|(x, y)| x != y) {
        Some(k) => format!(
            "class {k} (in sorted order) is \"{}\" in the training folder but \"{}\" in the validation folder",
            a[k], b[k]
        ),
        None if a.len() > b.len() => format!(
            "the training folder has {} classes, the validation folder {}; the first missing from \
             the validation folder is \"{}\"",
            a.len(),
            b.len(),
            a[b.len()]
        ),
        None => format!(
            "the validation folder has {} classes, the training folder {}; the first missing from \
             the training folder is \"{}\"",
            b.len(),
            a.len(),
            b[a.len()]
        ),
    };
    Err(DataError::ClassMismatch { train: train.dir().to_path_buf(), val: val.dir().to_path_buf(), detail })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jpeg_names() {
        for ok in ["a.JPEG", "b.jpg", "c.jpeg", "d.JpG", "e.JPG"] {
            assert!(is_jpeg_name(ok), "{ok}");
        }
        for no in ["a.png", "b.jpg.txt", "jpeg", "c.JPE", "notes.txt"] {
            assert!(!is_jpeg_name(no), "{no}");
        }
    }
}
