//! `kernels/reduce.cu`: sums (two-pass: block partials, then one block combines them in a fixed
//! order) and per-channel sum / sum of squares over NCHW.

use super::{check_len, int, partials_for, BLOCK};
use crate::backend::gpu::{k, KernelId};
use crate::backend::gpu::{Arg, Gpu, GpuBuf, GpuError, LaunchCfg};

fn two_pass(rt: &Gpu, parts: &[(KernelId, &GpuBuf)]) -> Result<GpuBuf, GpuError> {
    // All tensors' partials go into one scratch buffer; one final pass sums them all.
    let counts: Vec<usize> = parts.iter().map(|(_, x)| partials_for(x.len())).collect();
    let total: usize = counts.iter().sum();
    let scratch = GpuBuf::alloc(rt, total.max(1))?;
    let mut offset = 0;
    for ((kernel, x), &np) in parts.iter().zip(&counts) {
        rt.launch(
            *kernel,
            LaunchCfg::linear(np as u32, BLOCK),
            &[x.arg(), Arg::I32(int(kernel.name(), x.len())), Arg::Ptr(scratch.ptr() + 4 * offset as u64)],
        )?;
        offset += np;
    }
    let out = GpuBuf::alloc(rt, 1)?;
    rt.launch(
        k::sum_final_f32,
        LaunchCfg::linear(1, BLOCK),
        &[scratch.arg(), Arg::I32(total as i32), out.arg()],
    )?;
    Ok(out)
}

/// Σ x, as a one-element device buffer.
pub fn sum(x: &GpuBuf) -> Result<GpuBuf, GpuError> {
    two_pass(x.runtime(), &[(k::sum_partial_f32, x)])
}

/// Σ over every tensor of Σ x² (the squared gradient norm), as a one-element device buffer.
pub fn sum_sq_many(xs: &[&GpuBuf]) -> Result<GpuBuf, GpuError> {
    let rt = xs.first().expect("sum_sq_many: no tensors").runtime().clone();
    let parts: Vec<(KernelId, &GpuBuf)> = xs.iter().map(|x| (k::sumsq_partial_f32, *x)).collect();
    two_pass(&rt, &parts)
}

/// Per-channel Σ x and Σ x² of `x` `[n, c, hw]`.
pub fn channel_sums(
    x: &GpuBuf,
    n: usize,
    c: usize,
    hw: usize,
    sum: &mut GpuBuf,
    sumsq: &mut GpuBuf,
) -> Result<(), GpuError> {
    check_len("channel_sums", n * c * hw, &[("x", x)]);
    check_len("channel_sums", c, &[("sum", sum), ("sumsq", sumsq)]);
    x.runtime().launch(
        k::channel_sums_f32,
        LaunchCfg::linear(c as u32, BLOCK),
        &[
            x.arg(),
            Arg::I32(int("channel_sums", n)),
            Arg::I32(int("channel_sums", c)),
            Arg::I32(int("channel_sums", hw)),
            sum.arg(),
            sumsq.arg(),
        ],
    )
}
