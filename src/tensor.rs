//! `Tensor`: a shape plus shared, immutable storage on a device, in f32 or f64 (f32 only on a
//! GPU).
//!
//! Tensors are values: ops produce new tensors, clones share storage (`Arc`). The one mutation
//! path, [`Tensor::data_mut`], copies on write when the storage is shared, so an optimiser can
//! update parameters in place without disturbing tensors saved on an autograd tape.

use std::fmt;
use std::sync::Arc;

use crate::backend::cpu::Real;
use crate::backend::gpu::{Gpu, GpuBuf, GpuError, RuntimeKind};

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
#[derive(Clone)]
pub enum Device {
    /// Host memory, computed by the CPU backend.
    Cpu,
    /// A GPU runtime (CUDA, or the emulator that runs the same kernels on the host).
    Gpu(Gpu),
}

impl Device {
    /// The runtime, for a GPU device.
    pub fn runtime(&self) -> Option<&Gpu> {
        match self {
            Device::Cpu => None,
            Device::Gpu(rt) => Some(rt),
        }
    }
    /// A short name: `cpu`, `cuda` or `emu`.
    pub fn name(&self) -> &'static str {
        match self {
            Device::Cpu => "cpu",
            Device::Gpu(rt) => match rt.kind() {
                RuntimeKind::Cuda => "cuda",
                RuntimeKind::Emu => "emu",
                RuntimeKind::Null => "null",
            },
        }
    }
}

impl PartialEq for Device {
    fn eq(&self, other: &Device) -> bool {
        match (self, other) {
            (Device::Cpu, Device::Cpu) => true,
            (Device::Gpu(a), Device::Gpu(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

impl fmt::Debug for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Cpu => f.write_str("cpu"),
            Device::Gpu(rt) => write!(f, "{} [{}]", self.name(), rt.describe()),
        }
    }
}

/// The data behind a tensor.
#[derive(Clone)]
pub enum Storage {
    /// Host f32.
    F32(Arc<Vec<f32>>),
    /// Host f64.
    F64(Arc<Vec<f64>>),
    /// Device f32.
    Gpu(Arc<GpuBuf>),
}

/// Unwraps a GPU result inside an op. A device failure (out of memory, a driver error, an
/// emulator check) is not something an op can recover from: it unwinds, with the error's
/// message as the panic payload (a `String`, so a test harness or the default panic hook prints
/// it: which kernel failed and the launches before it). [`gpu_error_of`] gives the [`GpuError`]
/// back to whoever catches the panic (the CLI prints it as a clean error).
#[track_caller]
pub fn gpu_ok<T>(r: Result<T, GpuError>) -> T {
    match r {
        Ok(v) => v,
        Err(e) => gpu_panic(e),
    }
}

/// Unwinds with `e`'s message as the payload, remembering `e` for [`gpu_error_of`].
#[cold]
#[track_caller]
pub fn gpu_panic(e: GpuError) -> ! {
    let msg = e.to_string();
    LAST_GPU_PANIC.with(|last| *last.borrow_mut() = Some((msg.clone(), e)));
    std::panic::panic_any(msg)
}

thread_local! {
    /// The error of this thread's last [`gpu_panic`], with its message.
    static LAST_GPU_PANIC: std::cell::RefCell<Option<(String, GpuError)>> = const { std::cell::RefCell::new(None) };
}

/// The [`GpuError`] a panic payload carries, when the panic came from [`gpu_ok`] /
/// [`gpu_panic`] on this thread (call it from a panic hook, or after `catch_unwind` on the
/// thread that panicked); `None` for any other panic.
pub fn gpu_error_of(payload: &(dyn std::any::Any + Send)) -> Option<GpuError> {
    let msg = payload.downcast_ref::<String>()?;
    LAST_GPU_PANIC.with(|last| match &*last.borrow() {
        Some((m, e)) if m == msg => Some(e.clone()),
        _ => None,
    })
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

    /// All zeros on `device` (f32 on a GPU).
    pub fn zeros_on(shape: &[usize], dtype: DType, device: &Device) -> Tensor {
        Tensor::full_on(shape, 0.0, dtype, device)
    }

    /// Every element equal to `v`, on `device` (filled there: no host copy for a GPU).
    pub fn full_on(shape: &[usize], v: f64, dtype: DType, device: &Device) -> Tensor {
        crate::ops::elementwise::full_on(shape, v, dtype, device)
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
            Storage::F32(_) | Storage::Gpu(_) => DType::F32,
            Storage::F64(_) => DType::F64,
        }
    }

    /// Where the data lives.
    pub fn device(&self) -> Device {
        match &self.storage {
            Storage::Gpu(b) => Device::Gpu(b.runtime().clone()),
            _ => Device::Cpu,
        }
    }

    /// True when the data is on a GPU runtime.
    pub fn is_gpu(&self) -> bool {
        matches!(self.storage, Storage::Gpu(_))
    }

    /// The device buffer of a GPU tensor.
    pub fn gpu_buf(&self) -> Option<&GpuBuf> {
        match &self.storage {
            Storage::Gpu(b) => Some(b),
            _ => None,
        }
    }

    /// Mutable device buffer (copied on the device first if shared); panics for a CPU tensor.
    pub fn gpu_buf_mut(&mut self) -> &mut GpuBuf {
        let Storage::Gpu(b) = &mut self.storage else {
            panic!("Tensor::gpu_buf_mut: tensor {} is on the CPU", fmt_shape(&self.shape))
        };
        if Arc::get_mut(b).is_none() {
            let rt = b.runtime().clone();
            let copy = gpu_ok(GpuBuf::alloc(&rt, b.len()));
            gpu_ok(rt.dtod(b.ptr(), copy.ptr(), b.len() * 4));
            *b = Arc::new(copy);
        }
        Arc::get_mut(b).expect("unique after copy")
    }

    /// A tensor over a device buffer.
    pub fn from_gpu(shape: &[usize], buf: GpuBuf) -> Tensor {
        let numel: usize = shape.iter().product();
        assert_eq!(numel, buf.len(), "Tensor::from_gpu: shape {} vs {} values", fmt_shape(shape), buf.len());
        Tensor { shape: shape.to_vec(), storage: Storage::Gpu(Arc::new(buf)) }
    }

    /// An uninitialised GPU tensor (the emulator fills it with NaN).
    pub fn empty_gpu(shape: &[usize], rt: &Gpu) -> Tensor {
        let n = shape.iter().product();
        Tensor::from_gpu(shape, gpu_ok(GpuBuf::alloc(rt, n)))
    }

    /// A copy on `device` (f32 on a GPU; a CPU copy keeps the GPU tensor's f32).
    pub fn to_device(&self, device: &Device) -> Tensor {
        match (device, &self.storage) {
            (Device::Cpu, Storage::Gpu(b)) => Tensor::from_vec(&self.shape, gpu_ok(b.to_host())),
            (Device::Cpu, _) => self.clone(),
            (Device::Gpu(rt), Storage::Gpu(b)) if Arc::ptr_eq(rt, b.runtime()) => self.clone(),
            (Device::Gpu(rt), _) => {
                let host = self.to_cpu();
                let v: Vec<f32> = match &host.storage {
                    Storage::F32(v) => v.to_vec(),
                    _ => host.to_f64_vec().iter().map(|&x| x as f32).collect(),
                };
                Tensor::from_gpu(&self.shape, gpu_ok(GpuBuf::from_host(rt, &v)))
            }
        }
    }

    /// A host copy (a clone if already on the CPU).
    pub fn to_cpu(&self) -> Tensor {
        self.to_device(&Device::Cpu)
    }

    /// The elements as a slice of `T`; panics if the dtype is not `T`.
    pub fn data<T: Element>(&self) -> &[T] {
        match T::view(&self.storage) {
            Some(s) => s,
            None if self.is_gpu() => {
                panic!("Tensor::data: tensor {} is on the GPU; call to_cpu() first", fmt_shape(&self.shape))
            }
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
            Storage::Gpu(b) => gpu_ok(b.to_host()).iter().map(|&x| x as f64).collect(),
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
        assert!(
            !self.is_gpu(),
            "to_dtype: GPU tensors are f32 only; move {} to the CPU first",
            fmt_shape(&self.shape)
        );
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
