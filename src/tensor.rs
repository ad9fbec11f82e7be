//! `Tensor`: a shape plus shared, immutable storage on a device, in f32 or f64.
//!
//! Tensors are values: ops produce new tensors, clones share storage (`Arc`). The one mutation
//! path, [`Tensor::data_mut`], copies on write when the storage is shared, so an optimiser can
//! update parameters in place without disturbing tensors saved on an autograd tape.

use std::fmt;
use std::sync::Arc;

use crate::backend::cpu::Real;

/// Element type of a tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    /// 32-bit float: the engine's normal precision (and the only one on the GPU).
    F32,
    /// 64-bit float: CPU only, for verification against finite differences and f64 fixtures.
    F64,
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DType::F32 => "f32",
            DType::F64 => "f64",
        })
    }
}

/// Where a tensor's data lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Device {
    /// Host memory, computed by the CPU backend.
    Cpu,
}

/// The data behind a tensor.
#[derive(Clone)]
pub enum Storage {
    /// Host f32.
    F32(Arc<Vec<f32>>),
    /// Host f64.
    F64(Arc<Vec<f64>>),
}

/// A scalar type a tensor can hold: ties a [`Real`] to its [`DType`] and storage variant.
pub trait Element: Real {
    /// The matching dtype.
    const DTYPE: DType;
    /// Wraps a vector as storage.
    fn wrap(v: Vec<Self>) -> Storage;
    /// The slice if the storage holds this type.
    fn view(s: &Storage) -> Option<&[Self]>;
    /// Mutable access, copying first if the storage is shared.
    fn view_mut(s: &mut Storage) -> Option<&mut [Self]>;
}

impl Element for f32 {
    const DTYPE: DType = DType::F32;
    fn wrap(v: Vec<Self>) -> Storage {
        Storage::F32(Arc::new(v))
    }
    fn view(s: &Storage) -> Option<&[Self]> {
        match s {
            Storage::F32(v) => Some(v),
            _ => None,
        }
    }
    fn view_mut(s: &mut Storage) -> Option<&mut [Self]> {
        match s {
            Storage::F32(v) => Some(Arc::<Vec<f32>>::make_mut(v).as_mut_slice()),
            _ => None,
        }
    }
}

impl Element for f64 {
    const DTYPE: DType = DType::F64;
    fn wrap(v: Vec<Self>) -> Storage {
        Storage::F64(Arc::new(v))
    }
    fn view(s: &Storage) -> Option<&[Self]> {
        match s {
            Storage::F64(v) => Some(v),
            _ => None,
        }
    }
    fn view_mut(s: &mut Storage) -> Option<&mut [Self]> {
        match s {
            Storage::F64(v) => Some(Arc::<Vec<f64>>::make_mut(v).as_mut_slice()),
            _ => None,
        }
    }
}

/// Runs `$body` with `$T` bound to the Rust type of `$dtype` (`f32` or `f64`).
#[macro_export]
macro_rules! with_dtype {
    ($dtype:expr, $T:ident => $body:expr) => {
        match $dtype {
            $crate::tensor::DType::F32 => {
                type $T = f32;
                $body
            }
            $crate::tensor::DType::F64 => {
                type $T = f64;
                $body
            }
        }
    };
}

/// An n-dimensional array, row-major (NCHW for images), contiguous.
#[derive(Clone)]
pub struct Tensor {
    shape: Vec<usize>,
    storage: Storage,
}

impl Tensor {
    /// A tensor over `data`; panics if the shape does not match its length.
    pub fn from_vec<T: Element>(shape: &[usize], data: Vec<T>) -> Tensor {
        let numel: usize = shape.iter().product();
        assert_eq!(
            numel,
            data.len(),
            "Tensor::from_vec: shape {} needs {numel} elements, got {}",
            fmt_shape(shape),
            data.len()
        );
        Tensor { shape: shape.to_vec(), storage: T::wrap(data) }
    }

    /// All zeros.
    pub fn zeros(shape: &[usize], dtype: DType) -> Tensor {
        let n = shape.iter().product();
        with_dtype!(dtype, T => Tensor::from_vec(shape, vec![T::ZERO; n]))
    }

    /// Every element equal to `v` (rounded to the dtype).
    pub fn full(shape: &[usize], v: f64, dtype: DType) -> Tensor {
        let n = shape.iter().product();
        with_dtype!(dtype, T => Tensor::from_vec(shape, vec![T::from_f64(v); n]))
    }

    /// A tensor from f64 values, converted to `dtype`.
    pub fn from_f64(shape: &[usize], data: &[f64], dtype: DType) -> Tensor {
        with_dtype!(dtype, T => Tensor::from_vec(shape, data.iter().map(|&v| T::from_f64(v)).collect()))
    }

    /// A 0-d tensor.
    pub fn scalar(v: f64, dtype: DType) -> Tensor {
        Tensor::from_f64(&[], &[v], dtype)
    }

    /// The shape.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// Element type.
    pub fn dtype(&self) -> DType {
        match self.storage {
            Storage::F32(_) => DType::F32,
            Storage::F64(_) => DType::F64,
        }
    }

    /// Where the data lives.
    pub fn device(&self) -> Device {
        Device::Cpu
    }

    /// The elements as a slice of `T`; panics if the dtype is not `T`.
    pub fn data<T: Element>(&self) -> &[T] {
        match T::view(&self.storage) {
            Some(s) => s,
            None => panic!(
                "Tensor::data: tensor {} is {}, asked for {}",
                fmt_shape(&self.shape),
                self.dtype(),
                T::DTYPE
            ),
        }
    }

    /// Mutable elements (copy-on-write if the storage is shared); panics on a dtype mismatch.
    pub fn data_mut<T: Element>(&mut self) -> &mut [T] {
        let dtype = self.dtype();
        let shape = fmt_shape(&self.shape);
        match T::view_mut(&mut self.storage) {
            Some(s) => s,
            None => panic!("Tensor::data_mut: tensor {shape} is {dtype}, asked for {}", T::DTYPE),
        }
    }

    /// The elements widened to f64.
    pub fn to_f64_vec(&self) -> Vec<f64> {
        match &self.storage {
            Storage::F32(v) => v.iter().map(|&x| x as f64).collect(),
            Storage::F64(v) => v.to_vec(),
        }
    }

    /// The single element of a one-element tensor, as f64.
    pub fn item(&self) -> f64 {
        assert_eq!(self.numel(), 1, "Tensor::item: tensor {} is not a scalar", fmt_shape(&self.shape));
        self.to_f64_vec()[0]
    }

    /// The same data viewed with another shape of equal size.
    pub fn reshape(&self, shape: &[usize]) -> Tensor {
        let n: usize = shape.iter().product();
        assert_eq!(
            n,
            self.numel(),
            "reshape: cannot view {} as {}",
            fmt_shape(&self.shape),
            fmt_shape(shape)
        );
        Tensor { shape: shape.to_vec(), storage: self.storage.clone() }
    }

    /// A copy converted to `dtype`.
    pub fn to_dtype(&self, dtype: DType) -> Tensor {
        if dtype == self.dtype() {
            return self.clone();
        }
        Tensor::from_f64(&self.shape, &self.to_f64_vec(), dtype)
    }
}

impl fmt::Debug for Tensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tensor({} {}", self.dtype(), fmt_shape(&self.shape))?;
        let v = self.to_f64_vec();
        if v.len() <= 8 {
            write!(f, " {v:?}")?;
        }
        f.write_str(")")
    }
}

/// Formats a shape as `[2, 3, 7, 7]` for error messages.
pub fn fmt_shape(shape: &[usize]) -> String {
    format!("{shape:?}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_mut_copies_on_write() {
        let a = Tensor::from_vec(&[2], vec![1.0f64, 2.0]);
        let mut b = a.clone();
        b.data_mut::<f64>()[0] = 5.0;
        assert_eq!(a.data::<f64>(), &[1.0, 2.0]);
        assert_eq!(b.data::<f64>(), &[5.0, 2.0]);
    }

    #[test]
    #[should_panic(expected = "is f32, asked for f64")]
    fn wrong_dtype_panics() {
        let a = Tensor::zeros(&[3], DType::F32);
        let _ = a.data::<f64>();
    }
}
