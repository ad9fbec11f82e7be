//! Fully connected layer: y = x Wᵀ + b, x `[n, fin]`, W `[fout, fin]`, b `[fout]`.

use super::{buf, gpu_out, gpu_rt, same_dtype};
use crate::backend::cpu::{self, Real as _};
use crate::backend::gpu::launch::head as ghead;
use crate::tensor::gpu_ok;
use crate::tensor::{fmt_shape, Tensor};
use crate::with_dtype;

fn dims(op: &str, x_shape: &[usize], w: &Tensor) -> (usize, usize, usize) {
    match (x_shape, w.shape()) {
        (&[n, fin], &[fout, fin_w]) if fin == fin_w => (n, fin, fout),
        _ => panic!(
            "{op}: x {} does not match weight {} (want x [n, fin], weight [fout, fin])",
            fmt_shape(x_shape),
            fmt_shape(w.shape())
        ),
    }
}

/// Forward, `[n, fout]`.
pub fn linear(x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> Tensor {
    same_dtype("linear", x, w);
    let (n, fin, fout) = dims("linear", x.shape(), w);
    if let Some(b) = b {
        assert_eq!(
            b.shape(),
            &[fout],
            "linear: bias {} does not match weight {}",
            fmt_shape(b.shape()),
            fmt_shape(w.shape())
        );
    }
    if let Some(rt) = gpu_rt("linear", &[x, w]) {
        return gpu_out(&rt, &[n, fout], |y| ghead::linear_fwd(n, fin, fout, buf(x), buf(w), b.map(buf), y));
    }
    with_dtype!(x.dtype(), T => {
        let mut y = vec![T::ZERO; n * fout];
        cpu::linear::linear_fwd(n, fin, fout, x.data::<T>(), w.data::<T>(), b.map(|b| b.data::<T>()), &mut y);
        Tensor::from_vec(&[n, fout], y)
    })
}

/// Gradient w.r.t. x.
pub fn linear_bwd_data(dy: &Tensor, w: &Tensor, x_shape: &[usize]) -> Tensor {
    let (n, fin, fout) = dims("linear_bwd_data", x_shape, w);
    assert_eq!(
        dy.shape(),
        &[n, fout],
        "linear_bwd_data: dy {} vs output [{n}, {fout}]",
        fmt_shape(dy.shape())
    );
    if let Some(rt) = gpu_rt("linear_bwd_data", &[dy, w]) {
        return gpu_out(&rt, x_shape, |dx| ghead::linear_bwd_data(n, fin, fout, buf(dy), buf(w), dx));
    }
    with_dtype!(dy.dtype(), T => {
        let mut dx = vec![T::ZERO; n * fin];
        cpu::linear::linear_bwd_data(n, fin, fout, dy.data::<T>(), w.data::<T>(), &mut dx);
        Tensor::from_vec(x_shape, dx)
    })
}

/// Gradients w.r.t. the weight and the bias.
pub fn linear_bwd_weight(x: &Tensor, dy: &Tensor, w: &Tensor) -> (Tensor, Tensor) {
    let (n, fin, fout) = dims("linear_bwd_weight", x.shape(), w);
    assert_eq!(
        dy.shape(),
        &[n, fout],
        "linear_bwd_weight: dy {} vs output [{n}, {fout}]",
        fmt_shape(dy.shape())
    );
    if let Some(rt) = gpu_rt("linear_bwd_weight", &[x, dy]) {
        let mut dw = Tensor::empty_gpu(w.shape(), &rt);
        let mut db = Tensor::empty_gpu(&[fout], &rt);
        gpu_ok(ghead::linear_bwd_weight(
            n,
            fin,
            fout,
            buf(x),
            buf(dy),
            dw.gpu_buf_mut(),
            Some(db.gpu_buf_mut()),
        ));
        return (dw, db);
    }
    with_dtype!(x.dtype(), T => {
        let mut dw = vec![T::ZERO; fout * fin];
        let mut db = vec![T::ZERO; fout];
        cpu::linear::linear_bwd_weight(n, fin, fout, x.data::<T>(), dy.data::<T>(), &mut dw, Some(&mut db));
        (Tensor::from_vec(w.shape(), dw), Tensor::from_vec(&[fout], db))
    })
}
