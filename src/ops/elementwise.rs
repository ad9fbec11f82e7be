//! Elementwise ops: ReLU, add, add_n, scale, per-sample scale, weighted sum of k tensors, the zero
//! op.

use super::{buf, gpu_out, gpu_rt, nchw, same_dtype, same_shape};
use crate::backend::cpu::{self, Real as _};
use crate::backend::geom::out_dim;
use crate::backend::gpu::launch::{elementwise as gew, reduce as gred, weighted_sum as gws};
use crate::tensor::{fmt_shape, gpu_ok, Tensor};
use crate::with_dtype;

/// max(x, 0).
pub fn relu(x: &Tensor) -> Tensor {
    if let Some(rt) = gpu_rt("relu", &[x]) {
        return gpu_out(&rt, x.shape(), |y| gew::relu_fwd(buf(x), y));
    }
    with_dtype!(x.dtype(), T => {
        let mut y = vec![T::ZERO; x.numel()];
        cpu::elementwise::relu_fwd(x.data::<T>(), &mut y);
        Tensor::from_vec(x.shape(), y)
    })
}

/// dy where x > 0, else 0.
pub fn relu_bwd(x: &Tensor, dy: &Tensor) -> Tensor {
    same_shape("relu_bwd", x, dy);
    if let Some(rt) = gpu_rt("relu_bwd", &[x, dy]) {
        return gpu_out(&rt, x.shape(), |dx| gew::relu_bwd(buf(x), buf(dy), dx));
    }
    with_dtype!(x.dtype(), T => {
        let mut dx = vec![T::ZERO; x.numel()];
        cpu::elementwise::relu_bwd(x.data::<T>(), dy.data::<T>(), &mut dx);
        Tensor::from_vec(x.shape(), dx)
    })
}

/// σ(x) = 1 / (1 + e^{−x}) elementwise.
pub fn sigmoid(x: &Tensor) -> Tensor {
    if let Some(rt) = gpu_rt("sigmoid", &[x]) {
        return gpu_out(&rt, x.shape(), |y| gew::sigmoid_fwd(buf(x), y));
    }
    with_dtype!(x.dtype(), T => {
        let mut y = vec![T::ZERO; x.numel()];
        cpu::elementwise::sigmoid_fwd(x.data::<T>(), &mut y);
        Tensor::from_vec(x.shape(), y)
    })
}

/// dx = dy · y (1 − y), `y` = σ(x) the forward's output.
pub fn sigmoid_bwd(y: &Tensor, dy: &Tensor) -> Tensor {
    same_shape("sigmoid_bwd", y, dy);
    if let Some(rt) = gpu_rt("sigmoid_bwd", &[y, dy]) {
        return gpu_out(&rt, y.shape(), |dx| gew::sigmoid_bwd(buf(y), buf(dy), dx));
    }
    with_dtype!(y.dtype(), T => {
        let mut dx = vec![T::ZERO; y.numel()];
        cpu::elementwise::sigmoid_bwd(y.data::<T>(), dy.data::<T>(), &mut dx);
        Tensor::from_vec(y.shape(), dx)
    })
}

/// a + b (same shapes).
pub fn add(a: &Tensor, b: &Tensor) -> Tensor {
    same_shape("add", a, b);
    if let Some(rt) = gpu_rt("add", &[a, b]) {
        return gpu_out(&rt, a.shape(), |y| gew::add(buf(a), buf(b), y));
    }
    with_dtype!(a.dtype(), T => {
        let mut y = vec![T::ZERO; a.numel()];
        cpu::elementwise::add(a.data::<T>(), b.data::<T>(), &mut y);
        Tensor::from_vec(a.shape(), y)
    })
}

/// Σ_i xs[i] (same shapes), added in index order: ((x0 + x1) + x2) + ..., so bitwise a chain of
/// [`add`]s; one launch on a GPU (at most `ADD_N_MAX` = 8 inputs there).
pub fn add_n(xs: &[&Tensor]) -> Tensor {
    assert!(!xs.is_empty(), "add_n: no inputs");
    for x in xs {
        same_shape("add_n", xs[0], x);
    }
    if let Some(rt) = gpu_rt("add_n", xs) {
        assert!(
            xs.len() <= gew::ADD_N_MAX,
            "add_n: {} inputs, the GPU kernel takes at most {}",
            xs.len(),
            gew::ADD_N_MAX
        );
        let bufs: Vec<&_> = xs.iter().map(|x| buf(x)).collect();
        return gpu_out(&rt, xs[0].shape(), |y| gew::add_n(&bufs, y));
    }
    with_dtype!(xs[0].dtype(), T => {
        let mut y = xs[0].data::<T>().to_vec();
        for x in &xs[1..] {
            for (a, &b) in y.iter_mut().zip(x.data::<T>()) {
                *a += b;
            }
        }
        Tensor::from_vec(xs[0].shape(), y)
    })
}

/// s * x.
pub fn scale(x: &Tensor, s: f64) -> Tensor {
    if let Some(rt) = gpu_rt("scale", &[x]) {
        return gpu_out(&rt, x.shape(), |y| gew::scale(buf(x), s as f32, y));
    }
    with_dtype!(x.dtype(), T => {
        let mut y = vec![T::ZERO; x.numel()];
        cpu::elementwise::scale(x.data::<T>(), T::from_f64(s), &mut y);
        Tensor::from_vec(x.shape(), y)
    })
}

/// `y[b] = s[first + b] · x[b]` for each sample b of `x` `[n, ...]`, `s` a vector holding n
/// factors from `first` (drop path's masks, already scaled by 1 / keep, all of a forward's in
/// one tensor).
pub fn scale_samples(x: &Tensor, s: &Tensor, first: usize) -> Tensor {
    const OP: &str = "scale_samples";
    same_dtype(OP, x, s);
    let n = x.shape().first().copied().unwrap_or(0);
    assert!(
        s.shape().len() == 1 && first + n <= s.numel() && n > 0,
        "{OP}: factors {first}..{} of {} for x {}",
        first + n,
        fmt_shape(s.shape()),
        fmt_shape(x.shape())
    );
    let inner = x.numel() / n;
    if let Some(rt) = gpu_rt(OP, &[x, s]) {
        return gpu_out(&rt, x.shape(), |y| gew::scale_samples(buf(x), buf(s), first, inner, y));
    }
    with_dtype!(x.dtype(), T => {
        let mut y = vec![T::ZERO; x.numel()];
        cpu::elementwise::scale_samples(x.data::<T>(), &s.data::<T>()[first..first + n], inner, &mut y);
        Tensor::from_vec(x.shape(), y)
    })
}

/// y += alpha * x, in place on `y` (copy-on-write if shared).
pub fn axpy(alpha: f64, x: &Tensor, y: &mut Tensor) {
    same_shape("axpy", x, y);
    if x.is_gpu() {
        return gpu_ok(gew::axpy(alpha as f32, buf(x), y.gpu_buf_mut()));
    }
    with_dtype!(x.dtype(), T => cpu::elementwise::axpy(T::from_f64(alpha), x.data::<T>(), y.data_mut::<T>()))
}

/// Σ_k w[k] · xs[k] for `xs` of one shape and `w` a vector of length k.
pub fn weighted_sum(xs: &[&Tensor], w: &Tensor) -> Tensor {
    check_weighted("weighted_sum", xs, w);
    if let Some(rt) = gpu_rt("weighted_sum", &[xs[0], w]) {
        assert!(
            xs.len() <= gws::MAX_K,
            "weighted_sum: {} inputs, the GPU kernel takes at most {}",
            xs.len(),
            gws::MAX_K
        );
        let slots: Vec<Option<&_>> = xs.iter().map(|x| Some(buf(x))).collect();
        return gpu_out(&rt, xs[0].shape(), |y| gws::weighted_sum(&slots, buf(w), y));
    }
    with_dtype!(w.dtype(), T => {
        let parts: Vec<&[T]> = xs.iter().map(|x| x.data::<T>()).collect();
        let mut y = vec![T::ZERO; xs[0].numel()];
        cpu::elementwise::weighted_sum(&parts, w.data::<T>(), &mut y);
        Tensor::from_vec(xs[0].shape(), y)
    })
}

/// The gradient of [`weighted_sum`] w.r.t. its weights: dw[k] = <dy, xs[k]>.
pub fn weighted_sum_bwd_weights(xs: &[&Tensor], dy: &Tensor) -> Tensor {
    assert!(!xs.is_empty(), "weighted_sum_bwd_weights: no inputs");
    for x in xs {
        same_shape("weighted_sum_bwd_weights", x, dy);
    }
    if let Some(rt) = gpu_rt("weighted_sum_bwd_weights", &[xs[0], dy]) {
        let slots: Vec<Option<&_>> = xs.iter().map(|x| Some(buf(x))).collect();
        return gpu_out(&rt, &[xs.len()], |dw| gws::weighted_sum_bwd_w(&slots, buf(dy), dw));
    }
    with_dtype!(dy.dtype(), T => {
        let parts: Vec<&[T]> = xs.iter().map(|x| x.data::<T>()).collect();
        let mut dw = vec![T::ZERO; xs.len()];
        cpu::elementwise::weighted_sum_bwd_weights(&parts, dy.data::<T>(), &mut dw);
        Tensor::from_vec(&[xs.len()], dw)
    })
}

/// The gradients of [`weighted_sum`] w.r.t. its inputs: `dxs[k] = w[k] · dy`, one per weight.
pub fn weighted_sum_bwd_inputs(dy: &Tensor, w: &Tensor) -> Vec<Tensor> {
    const OP: &str = "weighted_sum_bwd_inputs";
    same_dtype(OP, dy, w);
    let &[k] = w.shape() else { panic!("{OP}: weights must be a vector, got {}", fmt_shape(w.shape())) };
    if let Some(rt) = gpu_rt(OP, &[dy, w]) {
        assert!(k <= gws::MAX_K, "{OP}: {k} weights, the GPU kernel takes at most {}", gws::MAX_K);
        let mut dxs: Vec<Tensor> = (0..k).map(|_| Tensor::empty_gpu(dy.shape(), &rt)).collect();
        let mut slots: Vec<Option<&mut _>> = dxs.iter_mut().map(|t| Some(t.gpu_buf_mut())).collect();
        gpu_ok(gws::weighted_sum_bwd_x(buf(dy), buf(w), &mut slots));
        return dxs;
    }
    with_dtype!(dy.dtype(), T => w
        .data::<T>()
        .iter()
        .map(|&wk| {
            let mut dx = vec![T::ZERO; dy.numel()];
            cpu::elementwise::scale(dy.data::<T>(), wk, &mut dx);
            Tensor::from_vec(dy.shape(), dx)
        })
        .collect())
}

fn check_weighted(op: &str, xs: &[&Tensor], w: &Tensor) {
    assert!(!xs.is_empty(), "{op}: no inputs");
    assert_eq!(
        w.shape(),
        &[xs.len()],
        "{op}: weights {} do not match {} inputs",
        fmt_shape(w.shape()),
        xs.len()
    );
    for x in xs {
        same_shape(op, xs[0], x);
        same_dtype(op, x, w);
    }
}

/// `shape` filled with `v` on `device` (filled there: no host copy for a GPU; f32 on a GPU).
pub fn full_on(
    shape: &[usize],
    v: f64,
    dtype: crate::tensor::DType,
    device: &crate::tensor::Device,
) -> Tensor {
    match device {
        crate::tensor::Device::Cpu => Tensor::full(shape, v, dtype),
        crate::tensor::Device::Gpu(rt) => {
            let mut t = Tensor::empty_gpu(shape, rt);
            gpu_ok(gew::fill(t.gpu_buf_mut(), v as f32));
            t
        }
    }
}

/// The DARTS `none` op: zeros of the output shape of a stride-`stride` op on `x` (NCHW).
pub fn zero(x: &Tensor, stride: usize) -> Tensor {
    let [n, c, h, w] = nchw("zero", "x", x);
    // x[:, :, ::s, ::s] has ceil(h / s) rows: a 1-tap window with stride s.
    let (oh, ow) = (out_dim(h, 1, stride, 0, 1), out_dim(w, 1, stride, 0, 1));
    Tensor::zeros_on(&[n, c, oh, ow], x.dtype(), &x.device())
}

/// Sum of every element, as a 0-d tensor.
pub fn sum_all(x: &Tensor) -> Tensor {
    if x.is_gpu() {
        return Tensor::from_gpu(&[], gpu_ok(gred::sum(buf(x))));
    }
    with_dtype!(x.dtype(), T => Tensor::from_vec(&[], vec![cpu::elementwise::sum(x.data::<T>())]))
}

/// <x, r>: the inner product with a same-shaped tensor, as a 0-d tensor.
pub fn inner(x: &Tensor, r: &Tensor) -> Tensor {
    same_shape("inner", x, r);
    if let Some(rt) = gpu_rt("inner", &[x, r]) {
        // <x, r> is the weight gradient of a one-input weighted sum.
        return gpu_out(&rt, &[], |y| gws::weighted_sum_bwd_w(&[Some(buf(r))], buf(x), y));
    }
    with_dtype!(x.dtype(), T => Tensor::from_vec(&[], vec![cpu::elementwise::dot(x.data::<T>(), r.data::<T>())]))
}

/// Σ over tensors of the sum of squares, as f64: on a GPU one reduction over all of them and a
/// single scalar read back; on the CPU the per-tensor sums in order.
pub fn sum_sq_many(xs: &[&Tensor]) -> f64 {
    if xs.first().is_some_and(|x| x.is_gpu()) {
        let bufs: Vec<&_> = xs.iter().map(|x| buf(x)).collect();
        return gpu_ok(gpu_ok(gred::sum_sq_many(&bufs)).to_host())[0] as f64;
    }
    xs.iter().map(|x| sum_sq(x)).sum()
}

/// Sum of squares of every element, as f64 (for gradient-norm clipping).
pub fn sum_sq(x: &Tensor) -> f64 {
    if x.is_gpu() {
        return gpu_ok(gpu_ok(gred::sum_sq_many(&[buf(x)])).to_host())[0] as f64;
    }
    with_dtype!(x.dtype(), T => cpu::elementwise::sum_sq(x.data::<T>()).to_f64())
}
