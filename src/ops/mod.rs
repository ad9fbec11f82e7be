//! The op layer: shape-checked forward and backward functions on [`Tensor`]s that dispatch to a
//! backend by device and dtype. Autograd and everything above call these, never a backend.
//!
//! Shape mismatches here are internal bugs (user input is validated before it becomes a tensor),
//! so they panic with the op name and both shapes.
//!
//! [`Tensor`]: crate::tensor::Tensor

pub mod conv;
pub mod elementwise;
pub mod layout;
pub mod linear;
pub mod loss;
pub mod norm;
pub mod optim;
pub mod pcdarts;
pub mod pool;
pub mod reduce;
pub mod softmax;

pub use conv::ConvParams;

use crate::backend::gpu::{Gpu, GpuBuf, GpuError};
use crate::tensor::{fmt_shape, gpu_ok, Tensor};

/// The runtime if the tensors live on a GPU; `None` on the CPU. Panics naming the op when the
/// tensors are on different devices.
pub(crate) fn gpu_rt(op: &str, ts: &[&Tensor]) -> Option<Gpu> {
    let first = ts.first()?.device();
    for t in &ts[1..] {
        assert!(
            t.device() == first,
            "{op}: tensors on different devices ({:?} {} vs {:?} {})",
            first,
            fmt_shape(ts[0].shape()),
            t.device(),
            fmt_shape(t.shape())
        );
    }
    first.runtime().cloned()
}

/// The device buffer of a tensor known to be on the GPU.
pub(crate) fn buf(t: &Tensor) -> &GpuBuf {
    t.gpu_buf().expect("tensor on the GPU")
}

/// Allocates a GPU output of `shape`, fills it with `launch`, and wraps it as a tensor.
pub(crate) fn gpu_out(
    rt: &Gpu,
    shape: &[usize],
    launch: impl FnOnce(&mut GpuBuf) -> Result<(), GpuError>,
) -> Tensor {
    let mut y = gpu_ok(GpuBuf::alloc(rt, shape.iter().product()));
    gpu_ok(launch(&mut y));
    Tensor::from_gpu(shape, y)
}

/// Panics unless `a` and `b` have the same dtype and device (ops never mix them).
pub(crate) fn same_dtype(op: &str, a: &Tensor, b: &Tensor) {
    gpu_rt(op, &[a, b]);
    assert_eq!(
        a.dtype(),
        b.dtype(),
        "{op}: dtype mismatch, {} {} vs {} {}",
        a.dtype(),
        fmt_shape(a.shape()),
        b.dtype(),
        fmt_shape(b.shape())
    );
}

/// Panics unless `a` and `b` have the same shape and dtype.
pub(crate) fn same_shape(op: &str, a: &Tensor, b: &Tensor) {
    assert_eq!(
        a.shape(),
        b.shape(),
        "{op}: shape mismatch, {} vs {}",
        fmt_shape(a.shape()),
        fmt_shape(b.shape())
    );
    same_dtype(op, a, b);
}

/// The NCHW dims of a 4-D tensor, or a panic naming the op.
pub(crate) fn nchw(op: &str, what: &str, t: &Tensor) -> [usize; 4] {
    match *t.shape() {
        [n, c, h, w] => [n, c, h, w],
        _ => panic!("{op}: {what} must be 4-D NCHW, got {}", fmt_shape(t.shape())),
    }
}
