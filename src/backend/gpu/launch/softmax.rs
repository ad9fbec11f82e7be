//! `kernels/softmax.cu`: row-wise softmax of `[rows, k]` (one thread per row) and its backward.

use super::{check_len, int, BLOCK};
use crate::backend::gpu::k;
use crate::backend::gpu::{Arg, GpuBuf, GpuError, LaunchCfg};

fn cfg(rows: usize) -> LaunchCfg {
    LaunchCfg::linear(rows.div_ceil(BLOCK as usize).max(1) as u32, BLOCK)
}

/// y = softmax(x) per row.
pub fn softmax_rows(x: &GpuBuf, y: &mut GpuBuf, rows: usize, k: usize) -> Result<(), GpuError> {
    check_len("softmax_rows", rows * k, &[("x", x), ("y", y)]);
    x.runtime().launch(
        k::softmax_rows_f32,
        cfg(rows),
        &[x.arg(), y.arg(), Arg::I32(int("softmax_rows", rows)), Arg::I32(int("softmax_rows", k))],
    )
}

/// dx = y ⊙ (dy − <dy, y>) per row.
pub fn softmax_rows_bwd(
    y: &GpuBuf,
    dy: &GpuBuf,
    dx: &mut GpuBuf,
    rows: usize,
    k: usize,
) -> Result<(), GpuError> {
    check_len("softmax_rows_bwd", rows * k, &[("y", y), ("dy", dy), ("dx", dx)]);
    y.runtime().launch(
        k::softmax_rows_bwd_f32,
        cfg(rows),
        &[
            y.arg(),
            dy.arg(),
            dx.arg(),
            Arg::I32(int("softmax_rows_bwd", rows)),
            Arg::I32(int("softmax_rows_bwd", k)),
        ],
    )
}
