//! `kernels/zero_one.cu`: FairDARTS' zero-one loss −scale · Σ (s − ½)² and its backward.

use super::{check_len, grid_for, int, BLOCK};
use crate::backend::gpu::k;
use crate::backend::gpu::{Arg, GpuBuf, GpuError, LaunchCfg};

/// out[0] = −scale · Σ_i (s[i] − ½)² (one block).
pub fn zero_one_fwd(s: &GpuBuf, scale: f32, out: &mut GpuBuf) -> Result<(), GpuError> {
    check_len("zero_one_fwd", 1, &[("out", out)]);
    let n = int("zero_one_fwd", s.len());
    out.runtime().launch(
        k::zero_one_fwd_f32,
        LaunchCfg::linear(1, BLOCK),
        &[s.arg(), out.arg(), Arg::I32(n), Arg::F32(scale)],
    )
}

/// ds[i] = −2 · scale · (s[i] − ½) · dl[0].
pub fn zero_one_bwd(s: &GpuBuf, dl: &GpuBuf, scale: f32, ds: &mut GpuBuf) -> Result<(), GpuError> {
    check_len("zero_one_bwd", s.len(), &[("ds", ds)]);
    check_len("zero_one_bwd", 1, &[("dl", dl)]);
    let n = int("zero_one_bwd", s.len());
    ds.runtime().launch(
        k::zero_one_bwd_f32,
        LaunchCfg::linear(grid_for(s.len()), BLOCK),
        &[s.arg(), dl.arg(), ds.arg(), Arg::I32(n), Arg::F32(scale)],
    )
}
