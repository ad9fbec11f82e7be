//! `kernels/elementwise.cu`: ReLU, sigmoid, add, add_n, scale, per-sample scale, axpy, fill (grid-stride,
//! block 256).

use super::{check_len, grid_for, int, BLOCK};
use crate::backend::gpu::{k, KernelId};
use crate::backend::gpu::{Arg, DevPtr, GpuBuf, GpuError, LaunchCfg};

/// Most inputs of one [`add_n`] (`ADD_N_MAX`).
pub const ADD_N_MAX: usize = 8;

fn launch(kernel: KernelId, n: usize, out: &GpuBuf, args: &[Arg]) -> Result<(), GpuError> {
    out.runtime().launch(kernel, LaunchCfg::linear(grid_for(n), BLOCK), args)
}

/// y = max(x, 0).
pub fn relu_fwd(x: &GpuBuf, y: &mut GpuBuf) -> Result<(), GpuError> {
    let n = x.len();
    check_len("relu_fwd", n, &[("y", y)]);
    launch(k::relu_fwd_f32, n, y, &[x.arg(), y.arg(), Arg::I32(int("relu_fwd", n))])
}

/// dx = dy where x > 0, else 0.
pub fn relu_bwd(x: &GpuBuf, dy: &GpuBuf, dx: &mut GpuBuf) -> Result<(), GpuError> {
    let n = x.len();
    check_len("relu_bwd", n, &[("dy", dy), ("dx", dx)]);
    launch(k::relu_bwd_f32, n, dx, &[x.arg(), dy.arg(), dx.arg(), Arg::I32(int("relu_bwd", n))])
}

/// y = 1 / (1 + e^{−x}).
pub fn sigmoid_fwd(x: &GpuBuf, y: &mut GpuBuf) -> Result<(), GpuError> {
    let n = x.len();
    check_len("sigmoid_fwd", n, &[("y", y)]);
    launch(k::sigmoid_fwd_f32, n, y, &[x.arg(), y.arg(), Arg::I32(int("sigmoid_fwd", n))])
}

/// dx = dy · y (1 − y), y the forward's output.
pub fn sigmoid_bwd(y: &GpuBuf, dy: &GpuBuf, dx: &mut GpuBuf) -> Result<(), GpuError> {
    let n = y.len();
    check_len("sigmoid_bwd", n, &[("dy", dy), ("dx", dx)]);
    launch(k::sigmoid_bwd_f32, n, dx, &[y.arg(), dy.arg(), dx.arg(), Arg::I32(int("sigmoid_bwd", n))])
}

/// y = a + b.
pub fn add(a: &GpuBuf, b: &GpuBuf, y: &mut GpuBuf) -> Result<(), GpuError> {
    let n = a.len();
    check_len("add", n, &[("b", b), ("y", y)]);
    launch(k::add_f32, n, y, &[a.arg(), b.arg(), y.arg(), Arg::I32(int("add", n))])
}

/// y = Σ_i xs[i], added in index order (y = ((x0 + x1) + x2) + ...), one launch; 1 ≤ xs.len() ≤ 8.
/// Bitwise equal to a chain of [`add`]s.
pub fn add_n(xs: &[&GpuBuf], y: &mut GpuBuf) -> Result<(), GpuError> {
    const OP: &str = "add_n";
    assert!((1..=ADD_N_MAX).contains(&xs.len()), "{OP}: {} inputs (need 1 to {ADD_N_MAX})", xs.len());
    let n = y.len();
    let mut p: [DevPtr; 8] = [0; 8];
    for (d, x) in p.iter_mut().zip(xs) {
        check_len(OP, n, &[("input", x)]);
        *d = x.ptr();
    }
    launch(k::add_n_f32, n, y, &[Arg::Ptrs8(p), Arg::I32(xs.len() as i32), y.arg(), Arg::I32(int(OP, n))])
}

/// y = s x.
pub fn scale(x: &GpuBuf, s: f32, y: &mut GpuBuf) -> Result<(), GpuError> {
    let n = x.len();
    check_len("scale", n, &[("y", y)]);
    launch(k::scale_f32, n, y, &[x.arg(), Arg::F32(s), y.arg(), Arg::I32(int("scale", n))])
}

/// `y[i] = f[i / inner] · x[i]`, `f = s[first..]`: one factor per block of `inner` consecutive
/// elements (per sample), read from `s` at offset `first`.
pub fn scale_samples(
    x: &GpuBuf,
    s: &GpuBuf,
    first: usize,
    inner: usize,
    y: &mut GpuBuf,
) -> Result<(), GpuError> {
    const OP: &str = "scale_samples";
    let n = x.len();
    check_len(OP, n, &[("y", y)]);
    assert!(inner > 0 && n % inner == 0, "{OP}: {n} elements are not blocks of {inner}");
    assert!(
        first + n / inner <= s.len(),
        "{OP}: factors {first}..{} of a buffer of {}",
        first + n / inner,
        s.len()
    );
    let f = Arg::Ptr(s.ptr() + (4 * first) as DevPtr);
    launch(k::scale_samples_f32, n, y, &[x.arg(), f, y.arg(), Arg::I32(int(OP, n)), Arg::I32(int(OP, inner))])
}

/// y += alpha x.
pub fn axpy(alpha: f32, x: &GpuBuf, y: &mut GpuBuf) -> Result<(), GpuError> {
    let n = x.len();
    check_len("axpy", n, &[("y", y)]);
    launch(k::axpy_f32, n, y, &[Arg::F32(alpha), x.arg(), y.arg(), Arg::I32(int("axpy", n))])
}

/// y = v everywhere.
pub fn fill(y: &mut GpuBuf, v: f32) -> Result<(), GpuError> {
    let n = y.len();
    launch(k::fill_f32, n, y, &[y.arg(), Arg::F32(v), Arg::I32(int("fill", n))])
}
