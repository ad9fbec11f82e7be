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
pub mod pool;
pub mod reduce;
pub mod softmax;

pub use conv::ConvParams;

use crate::tensor::{fmt_shape, Tensor};

/// Panics unless `a` and `b` have the same dtype (ops never mix precisions).
pub(crate) fn same_dtype(op: &str, a: &Tensor, b: &Tensor) {
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
