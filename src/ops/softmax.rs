//! Row-wise softmax of a `[rows, k]` matrix (or a `[k]` vector): the alpha weights.

use super::{buf, gpu_out, gpu_rt, same_shape};
use crate::backend::cpu::{self, Real as _};
use crate::backend::gpu::launch::softmax as gsm;
use crate::tensor::{fmt_shape, gpu_ok, Tensor};
use crate::with_dtype;

fn dims(op: &str, x: &Tensor) -> (usize, usize) {
    match *x.shape() {
        [k] => (1, k),
        [rows, k] => (rows, k),
        _ => panic!("{op}: want [k] or [rows, k], got {}", fmt_shape(x.shape())),
    }
}

/// softmax over the last axis.
pub fn softmax(x: &Tensor) -> Tensor {
    let (rows, k) = dims("softmax", x);
    if let Some(rt) = gpu_rt("softmax", &[x]) {
        return gpu_out(&rt, x.shape(), |y| gsm::softmax_rows(buf(x), y, rows, k));
    }
    with_dtype!(x.dtype(), T => {
        let mut y = vec![T::ZERO; rows * k];
        cpu::softmax::softmax_rows(rows, k, x.data::<T>(), &mut y);
        Tensor::from_vec(x.shape(), y)
    })
}

/// Backward from the softmax output `y`: dx = y ⊙ (dy − <dy, y>) per row.
pub fn softmax_bwd(y: &Tensor, dy: &Tensor) -> Tensor {
    same_shape("softmax_bwd", y, dy);
    let (rows, k) = dims("softmax_bwd", y);
    if let Some(rt) = gpu_rt("softmax_bwd", &[y, dy]) {
        return gpu_out(&rt, y.shape(), |dx| gsm::softmax_rows_bwd(buf(y), buf(dy), dx, rows, k));
    }
    with_dtype!(y.dtype(), T => {
        let mut dx = vec![T::ZERO; rows * k];
        cpu::softmax::softmax_rows_bwd(rows, k, y.data::<T>(), dy.data::<T>(), &mut dx);
        Tensor::from_vec(y.shape(), dx)
    })
}

/// Row `i` of a `[rows, k]` matrix as a `[k]` vector.
pub fn row(x: &Tensor, i: usize) -> Tensor {
    let (rows, k) = dims("row", x);
    assert!(i < rows, "row: index {i} out of range for {}", fmt_shape(x.shape()));
    if let Some(rt) = gpu_rt("row", &[x]) {
        // A device-to-device copy of the row: no host round trip.
        return gpu_out(&rt, &[k], |y| rt.dtod(buf(x).ptr() + (4 * i * k) as u64, y.ptr(), 4 * k));
    }
    with_dtype!(x.dtype(), T => Tensor::from_vec(&[k], x.data::<T>()[i * k..(i + 1) * k].to_vec()))
}

/// Backward of [`row`]: `dy` placed in row `i` of zeros shaped `x_shape`.
pub fn row_bwd(dy: &Tensor, x_shape: &[usize], i: usize) -> Tensor {
    let k = dy.numel();
    if dy.is_gpu() {
        let mut dx = Tensor::zeros_on(x_shape, dy.dtype(), &dy.device());
        let rt = dy.device().runtime().cloned().expect("gpu");
        gpu_ok(rt.dtod(buf(dy).ptr(), dx.gpu_buf_mut().ptr() + (4 * i * k) as u64, 4 * k));
        return dx;
    }
    with_dtype!(dy.dtype(), T => {
        let mut dx = vec![T::ZERO; x_shape.iter().product()];
        dx[i * k..(i + 1) * k].copy_from_slice(dy.data::<T>());
        Tensor::from_vec(x_shape, dx)
    })
}
