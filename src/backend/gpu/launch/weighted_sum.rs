//! `kernels/weighted_sum.cu`: y = Σ_k w[k] x_k for up to 8 inputs (a mixed op's edge), its
//! input gradients w[k] dy, and its weight gradients <dy, x_k> (two-pass, deterministic).
//! The weights stay on the device (they come from a softmax computed there).

use super::{check_len, grid_for, int, partials_for, BLOCK};
use crate::backend::gpu::k;
use crate::backend::gpu::{Arg, DevPtr, GpuBuf, GpuError, LaunchCfg};

/// Most inputs one launch takes (`WSUM_MAX_K`).
pub const MAX_K: usize = 8;

/// Inputs as the kernel's `Ptrs8`; `None` is the zero op (its term is skipped).
fn ptrs(op: &str, xs: &[Option<&GpuBuf>], n: usize) -> [DevPtr; 8] {
    assert!(xs.len() <= MAX_K, "{op}: {} inputs, at most {MAX_K}", xs.len());
    let mut p = [0; 8];
    for (slot, x) in p.iter_mut().zip(xs) {
        if let Some(x) = x {
            check_len(op, n, &[("input", x)]);
            *slot = x.ptr();
        }
    }
    p
}

/// y = Σ_k w[k] xs[k] (`w` has `xs.len()` values).
pub fn weighted_sum(xs: &[Option<&GpuBuf>], w: &GpuBuf, y: &mut GpuBuf) -> Result<(), GpuError> {
    let n = y.len();
    check_len("weighted_sum", xs.len(), &[("w", w)]);
    let p = ptrs("weighted_sum", xs, n);
    y.runtime().launch(
        k::weighted_sum_f32,
        LaunchCfg::linear(grid_for(n), BLOCK),
        &[Arg::Ptrs8(p), w.arg(), Arg::I32(xs.len() as i32), y.arg(), Arg::I32(int("weighted_sum", n))],
    )
}

/// dxs[k] = w[k] dy for every `Some` slot.
pub fn weighted_sum_bwd_x(dy: &GpuBuf, w: &GpuBuf, dxs: &mut [Option<&mut GpuBuf>]) -> Result<(), GpuError> {
    let n = dy.len();
    check_len("weighted_sum_bwd_x", dxs.len(), &[("w", w)]);
    let views: Vec<Option<&GpuBuf>> = dxs.iter().map(|d| d.as_deref()).collect();
    let p = ptrs("weighted_sum_bwd_x", &views, n);
    dy.runtime().launch(
        k::weighted_sum_bwd_x_f32,
        LaunchCfg::linear(grid_for(n), BLOCK),
        &[
            dy.arg(),
            w.arg(),
            Arg::I32(dxs.len() as i32),
            Arg::Ptrs8(p),
            Arg::I32(int("weighted_sum_bwd_x", n)),
        ],
    )
}

/// dw[k] = <dy, xs[k]> (0 for `None` slots); `dw` is overwritten.
pub fn weighted_sum_bwd_w(xs: &[Option<&GpuBuf>], dy: &GpuBuf, dw: &mut GpuBuf) -> Result<(), GpuError> {
    let n = dy.len();
    let k = xs.len();
    check_len("weighted_sum_bwd_w", k, &[("dw", dw)]);
    let p = ptrs("weighted_sum_bwd_w", xs, n);
    let nparts = partials_for(n);
    let rt = dy.runtime().clone();
    let partial = GpuBuf::alloc(&rt, k * nparts)?;
    rt.launch(
        k::weighted_sum_bwd_w_partial_f32,
        LaunchCfg::linear(nparts as u32, BLOCK),
        &[Arg::Ptrs8(p), dy.arg(), Arg::I32(k as i32), Arg::I32(int("weighted_sum_bwd_w", n)), partial.arg()],
    )?;
    rt.launch(
        k::weighted_sum_bwd_w_final_f32,
        LaunchCfg::linear(k as u32, BLOCK),
        &[partial.arg(), Arg::I32(k as i32), Arg::I32(nparts as i32), dw.arg()],
    )
}
