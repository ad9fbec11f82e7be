//! Reading and writing named arrays in the safetensors format (F32, F64, I64), atomically.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

use safetensors::tensor::{Dtype, SafeTensors, TensorView};

/// The values of one array.
#[derive(Clone, Debug, PartialEq)]
pub enum ArrayData {
    /// 32-bit floats.
    F32(Vec<f32>),
    /// 64-bit floats.
    F64(Vec<f64>),
    /// 64-bit integers (PyTorch's `num_batches_tracked`, step counters, labels).
    I64(Vec<i64>),
}

impl ArrayData {
    /// Number of values.
    pub fn len(&self) -> usize {
        match self {
            ArrayData::F32(v) => v.len(),
            ArrayData::F64(v) => v.len(),
            ArrayData::I64(v) => v.len(),
        }
    }
    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The values as f64 (exact for F32 and for integers below 2^53).
    pub fn to_f64(&self) -> Vec<f64> {
        match self {
            ArrayData::F32(v) => v.iter().map(|&x| x as f64).collect(),
            ArrayData::F64(v) => v.clone(),
            ArrayData::I64(v) => v.iter().map(|&x| x as f64).collect(),
        }
    }
}

/// A shaped array.
#[derive(Clone, Debug, PartialEq)]
pub struct Array {
    /// Shape (empty for a scalar).
    pub shape: Vec<usize>,
    /// Values, row-major.
    pub data: ArrayData,
}

/// Named arrays, sorted by name.
pub type Arrays = BTreeMap<String, Array>;

/// A failure reading or writing a checkpoint file.
#[derive(Debug)]
pub enum CheckpointError {
    /// The file could not be read or written.
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// Not a valid safetensors file, or an unsupported dtype.
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        msg: String,
    },
    /// The file does not match the network (strict loading).
    Mismatch {
        /// The file.
        path: PathBuf,
        /// Every missing, unexpected or mis-shaped tensor.
        problems: Vec<String>,
    },
}

impl fmt::Display for CheckpointError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CheckpointError::Io { path, source } => write!(f, "{}: {source}", path.display()),
            CheckpointError::Format { path, msg } => {
                write!(f, "{}: not a usable safetensors file: {msg}", path.display())
            }
            CheckpointError::Mismatch { path, problems } => {
                let shown: Vec<&str> = problems.iter().take(12).map(|s| s.as_str()).collect();
                write!(
                    f,
                    "{} does not match the network ({} problems): {}{}",
                    path.display(),
                    problems.len(),
                    shown.join("; "),
                    if problems.len() > shown.len() { "; ..." } else { "" }
                )
            }
        }
    }
}

impl std::error::Error for CheckpointError {}

/// Reads every array of a safetensors file, and its metadata.
pub fn read(path: &Path) -> Result<(Arrays, HashMap<String, String>), CheckpointError> {
    let bytes = fs::read(path).map_err(|source| CheckpointError::Io { path: path.into(), source })?;
    let fmt_err = |msg: String| CheckpointError::Format { path: path.into(), msg };
    let (_, meta) = SafeTensors::read_metadata(&bytes).map_err(|e| fmt_err(e.to_string()))?;
    let st = SafeTensors::deserialize(&bytes).map_err(|e| fmt_err(e.to_string()))?;
    let mut out = Arrays::new();
    for (name, view) in st.tensors() {
        let raw = view.data();
        let data = match view.dtype() {
            Dtype::F32 => ArrayData::F32(
                raw.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect(),
            ),
            Dtype::F64 => ArrayData::F64(
                raw.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap())).collect(),
            ),
            Dtype::I64 => ArrayData::I64(
                raw.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap())).collect(),
            ),
            other => {
                return Err(fmt_err(format!(
                    "tensor {name}: dtype {other:?} is not supported (F32, F64, I64)"
                )))
            }
        };
        out.insert(name, Array { shape: view.shape().to_vec(), data });
    }
    Ok((out, meta.metadata().clone().unwrap_or_default()))
}

/// safetensors writes the metadata map, first in the header, in `HashMap` iteration order, which
/// differs from one map to the next; rewriting it sorted (the same bytes, reordered) makes a
/// file depend only on its content, so a resumed run's checkpoint equals an uninterrupted one's.
fn sort_metadata(buf: &mut [u8], sorted: &BTreeMap<String, String>) -> Result<(), String> {
    const PREFIX: &[u8] = b"{\"__metadata__\":";
    let json = serde_json::to_vec(sorted).expect("strings serialise");
    let start = 8 + PREFIX.len();
    let region = start..start + json.len();
    let found = buf.get(8..start) == Some(PREFIX)
        && buf.get(region.clone()).and_then(|r| serde_json::from_slice::<BTreeMap<String, String>>(r).ok())
            == Some(sorted.clone());
    if !found {
        return Err("the safetensors header does not start with the metadata written".into());
    }
    buf[region].copy_from_slice(&json);
    Ok(())
}

/// Writes `arrays` (and string metadata) to `path` atomically: a temporary file in the same
/// directory, flushed, then renamed over `path`, so a crash never leaves a torn checkpoint.
pub fn write_atomic(
    path: &Path,
    arrays: &Arrays,
    metadata: HashMap<String, String>,
) -> Result<(), CheckpointError> {
    let bytes: Vec<(String, Vec<u8>, Dtype, Vec<usize>)> = arrays
        .iter()
        .map(|(name, a)| {
            let (dtype, raw): (Dtype, Vec<u8>) = match &a.data {
                ArrayData::F32(v) => (Dtype::F32, v.iter().flat_map(|x| x.to_le_bytes()).collect()),
                ArrayData::F64(v) => (Dtype::F64, v.iter().flat_map(|x| x.to_le_bytes()).collect()),
                ArrayData::I64(v) => (Dtype::I64, v.iter().flat_map(|x| x.to_le_bytes()).collect()),
            };
            (name.clone(), raw, dtype, a.shape.clone())
        })
        .collect();
    let views: Vec<(String, TensorView)> = bytes
        .iter()
        .map(|(n, raw, dt, shape)| {
            (n.clone(), TensorView::new(*dt, shape.clone(), raw).expect("consistent view"))
        })
        .collect();
    let sorted: BTreeMap<String, String> = metadata.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    let meta = if metadata.is_empty() { None } else { Some(metadata) };
    let format = |msg: String| CheckpointError::Format { path: path.into(), msg };
    let mut buf = safetensors::tensor::serialize(views, meta).map_err(|e| format(e.to_string()))?;
    if !sorted.is_empty() {
        sort_metadata(&mut buf, &sorted).map_err(format)?;
    }
    let tmp = path.with_extension("safetensors.tmp");
    let io = |source| CheckpointError::Io { path: path.into(), source };
    {
        use std::io::Write;
        let mut f = fs::File::create(&tmp).map_err(io)?;
        f.write_all(&buf).map_err(io)?;
        f.sync_all().map_err(io)?;
    }
    fs::rename(&tmp, path).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The same content gives the same bytes, whatever order the metadata map iterates in.
    #[test]
    fn files_with_the_same_content_are_identical() {
        let dir = std::env::temp_dir().join(format!("darts-arrays-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let arrays =
            Arrays::from([("w".to_string(), Array { shape: vec![2], data: ArrayData::F32(vec![1.0, 2.0]) })]);
        let meta =
            || (0..8).map(|i| (format!("key{i}"), format!("value \"{i}\""))).collect::<HashMap<_, _>>();
        let bytes = |name: &str| {
            let p = dir.join(name);
            write_atomic(&p, &arrays, meta()).unwrap();
            fs::read(p).unwrap()
        };
        let first = bytes("a.safetensors");
        for i in 0..4 {
            assert!(bytes(&format!("{i}.safetensors")) == first, "write {i} differs");
        }
        let (read_back, m) = read(&dir.join("a.safetensors")).unwrap();
        assert_eq!((read_back, m), (arrays, meta()));
        let _ = fs::remove_dir_all(dir);
    }
}
