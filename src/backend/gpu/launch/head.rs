//! `kernels/head.cu`: the classifier head. Global average pool (`backend::cpu::reduce`), linear
//! layer (`backend::cpu::linear`), softmax cross-entropy and top-1 count (`backend::cpu::loss`).
//!
//! Labels live on the device as **f32 values** in a [`GpuBuf`] (which is f32-only): class `c`
//! is stored as `c as f32`, exact for every `c < 2^24`; [`upload_labels`] makes such a buffer.
//! A label that is not an integer in `[0, k)` gives a NaN loss and NaN gradient row (the CPU
//! backend panics). The loss, its incoming gradient and the correct count are one-element
//! device buffers, so a training step needs no host round trip.

use super::{check_len, grid_for, int, BLOCK};
use crate::backend::gpu::k;
use crate::backend::gpu::{Arg, Gpu, GpuBuf, GpuError, LaunchCfg};

/// Output tile edge of `linear_gemm_f32` (`LIN_TILE`).
const TILE: usize = 16;

/// Labels as the f32 device buffer the loss kernels read.
pub fn upload_labels(rt: &Gpu, labels: &[u32]) -> Result<GpuBuf, GpuError> {
    GpuBuf::from_host(rt, &crate::ops::loss::labels_f32(labels))
}

/// `y[n, c] = mean over hw of x[n, c, :]`.
pub fn global_avg_pool_fwd(
    n: usize,
    c: usize,
    hw: usize,
    x: &GpuBuf,
    y: &mut GpuBuf,
) -> Result<(), GpuError> {
    let op = "global_avg_pool_fwd";
    check_len(op, n * c * hw, &[("x", x)]);
    check_len(op, n * c, &[("y", y)]);
    int(op, x.len());
    let warps = (BLOCK / 32) as usize;
    let blocks = (n * c).div_ceil(warps).clamp(1, 65_535) as u32;
    y.runtime().launch(
        k::global_avg_pool_fwd_f32,
        LaunchCfg::linear(blocks, BLOCK),
        &[x.arg(), y.arg(), Arg::I32(int(op, n * c)), Arg::I32(int(op, hw))],
    )
}

/// `dx[n, c, p] = dy[n, c] / hw`.
pub fn global_avg_pool_bwd(
    n: usize,
    c: usize,
    hw: usize,
    dy: &GpuBuf,
    dx: &mut GpuBuf,
) -> Result<(), GpuError> {
    let op = "global_avg_pool_bwd";
    check_len(op, n * c, &[("dy", dy)]);
    check_len(op, n * c * hw, &[("dx", dx)]);
    dx.runtime().launch(
        k::global_avg_pool_bwd_f32,
        LaunchCfg::linear(grid_for(dx.len()), BLOCK),
        &[dy.arg(), dx.arg(), Arg::I32(int(op, n * c)), Arg::I32(int(op, hw))],
    )
}

/// `c[m, n] = sum_k a(m, k) b(k, n) (+ bias[n])` with element strides (see the kernel file).
#[allow(clippy::too_many_arguments)]
fn gemm(
    op: &str,
    (m, n, k): (usize, usize, usize),
    a: &GpuBuf,
    (sam, sak): (usize, usize),
    b: &GpuBuf,
    (sbk, sbn): (usize, usize),
    bias: Option<&GpuBuf>,
    c: &mut GpuBuf,
) -> Result<(), GpuError> {
    let grid_y = m.div_ceil(TILE).max(1);
    assert!(grid_y <= 65_535, "{op}: {m} rows exceed the kernel's grid ({} row tiles)", grid_y);
    let cfg = LaunchCfg {
        grid: (n.div_ceil(TILE).max(1) as u32, grid_y as u32, 1),
        block: (TILE as u32, TILE as u32, 1),
        shared_bytes: 0,
    };
    let i = |v: usize| Arg::I32(int(op, v));
    c.runtime().launch(
        k::linear_gemm_f32,
        cfg,
        &[
            i(m),
            i(n),
            i(k),
            a.arg(),
            i(sam),
            i(sak),
            b.arg(),
            i(sbk),
            i(sbn),
            bias.map_or(Arg::Ptr(0), |b| b.arg()),
            c.arg(),
        ],
    )
}

/// `y[i, o] = sum_f x[i, f] w[o, f] + b[o]` (no bias when `b` is `None`).
pub fn linear_fwd(
    n: usize,
    fin: usize,
    fout: usize,
    x: &GpuBuf,
    w: &GpuBuf,
    b: Option<&GpuBuf>,
    y: &mut GpuBuf,
) -> Result<(), GpuError> {
    let op = "linear_fwd";
    check_len(op, n * fin, &[("x", x)]);
    check_len(op, fout * fin, &[("w", w)]);
    check_len(op, n * fout, &[("y", y)]);
    if let Some(b) = b {
        check_len(op, fout, &[("b", b)]);
    }
    gemm(op, (n, fout, fin), x, (fin, 1), w, (1, fin), b, y)
}

/// `dx[i, f] = sum_o dy[i, o] w[o, f]`.
pub fn linear_bwd_data(
    n: usize,
    fin: usize,
    fout: usize,
    dy: &GpuBuf,
    w: &GpuBuf,
    dx: &mut GpuBuf,
) -> Result<(), GpuError> {
    let op = "linear_bwd_data";
    check_len(op, n * fout, &[("dy", dy)]);
    check_len(op, fout * fin, &[("w", w)]);
    check_len(op, n * fin, &[("dx", dx)]);
    gemm(op, (n, fin, fout), dy, (fout, 1), w, (fin, 1), None, dx)
}

/// `dw[o, f] = sum_i dy[i, o] x[i, f]` and, when asked, `db[o] = sum_i dy[i, o]` (both summed
/// over the batch in row order). Overwrites both.
pub fn linear_bwd_weight(
    n: usize,
    fin: usize,
    fout: usize,
    x: &GpuBuf,
    dy: &GpuBuf,
    dw: &mut GpuBuf,
    db: Option<&mut GpuBuf>,
) -> Result<(), GpuError> {
    let op = "linear_bwd_weight";
    check_len(op, n * fin, &[("x", x)]);
    check_len(op, n * fout, &[("dy", dy)]);
    check_len(op, fout * fin, &[("dw", dw)]);
    gemm(op, (fout, fin, n), dy, (1, fout), x, (fin, 1), None, dw)?;
    if let Some(db) = db {
        check_len(op, fout, &[("db", db)]);
        db.runtime().launch(
            k::linear_bias_grad_f32,
            LaunchCfg::linear(fout.div_ceil(BLOCK as usize).max(1) as u32, BLOCK),
            &[dy.arg(), Arg::I32(int(op, n)), Arg::I32(int(op, fout)), db.arg()],
        )?;
    }
    Ok(())
}

/// Mean cross-entropy of `logits [n, k]` against `labels [n]` (f32 class indices, see the module
/// docs) smoothed by `eps` (targets `(1 - eps) onehot + eps / k`; 0: none) into the one-element
/// `loss`; writes `probs [n, k]` (each row's softmax) for [`softmax_xent_bwd`].
pub fn softmax_xent_fwd(
    n: usize,
    k: usize,
    logits: &GpuBuf,
    labels: &GpuBuf,
    eps: f32,
    probs: &mut GpuBuf,
    loss: &mut GpuBuf,
) -> Result<(), GpuError> {
    let op = "softmax_xent_fwd";
    check_len(op, n * k, &[("logits", logits), ("probs", probs)]);
    check_len(op, n, &[("labels", labels)]);
    check_len(op, 1, &[("loss", loss)]);
    loss.runtime().launch(
        k::softmax_xent_fwd_f32,
        LaunchCfg::linear(1, BLOCK),
        &[
            logits.arg(),
            labels.arg(),
            probs.arg(),
            loss.arg(),
            Arg::I32(int(op, n)),
            Arg::I32(int(op, k)),
            Arg::F32(eps),
        ],
    )
}

/// `dlogits = dloss[0] * (probs - q) / n` with `q = (1 - eps) onehot(labels) + eps / k`, from the
/// `probs` written by [`softmax_xent_fwd`]; `dloss` is a one-element device buffer.
pub fn softmax_xent_bwd(
    n: usize,
    k: usize,
    probs: &GpuBuf,
    labels: &GpuBuf,
    eps: f32,
    dloss: &GpuBuf,
    dlogits: &mut GpuBuf,
) -> Result<(), GpuError> {
    let op = "softmax_xent_bwd";
    check_len(op, n * k, &[("probs", probs), ("dlogits", dlogits)]);
    check_len(op, n, &[("labels", labels)]);
    check_len(op, 1, &[("dloss", dloss)]);
    dlogits.runtime().launch(
        k::softmax_xent_bwd_f32,
        LaunchCfg::linear(grid_for(n * k), BLOCK),
        &[
            probs.arg(),
            labels.arg(),
            dloss.arg(),
            dlogits.arg(),
            Arg::I32(int(op, n)),
            Arg::I32(int(op, k)),
            Arg::F32(eps),
        ],
    )
}

/// The number of rows whose argmax (first maximum wins) equals the label, as an f32 in the
/// one-element `correct`.
pub fn top1_correct(
    n: usize,
    k: usize,
    logits: &GpuBuf,
    labels: &GpuBuf,
    correct: &mut GpuBuf,
) -> Result<(), GpuError> {
    let op = "top1_correct";
    check_len(op, n * k, &[("logits", logits)]);
    check_len(op, n, &[("labels", labels)]);
    check_len(op, 1, &[("correct", correct)]);
    correct.runtime().launch(
        k::top1_correct_f32,
        LaunchCfg::linear(1, BLOCK),
        &[logits.arg(), labels.arg(), correct.arg(), Arg::I32(int(op, n)), Arg::I32(int(op, k))],
    )
}
