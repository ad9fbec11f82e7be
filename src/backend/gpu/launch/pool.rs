//! `kernels/pool.cu`: k x k max and average pooling (stride, zero padding, padding never counted)
//! and their backwards, as gathers over the input (no atomics, no stored argmax). Mirrors
//! `backend::cpu::pool`.

use super::{check_len, grid_for, int, BLOCK};
use crate::backend::geom::Pool2dGeom;
use crate::backend::gpu::{Arg, GpuBuf, GpuError, LaunchCfg};

/// Most blocks along the grid's z axis (the plane loop of `max_pool_bwd_f32` covers the rest).
const MAX_GRID_Z: usize = 65_535;

/// The geometry as the kernels' `planes, h, w, k, s, p, oh, ow` arguments.
fn geom_args(op: &str, g: &Pool2dGeom) -> [Arg; 8] {
    assert!(g.k >= 1 && g.stride >= 1, "{op}: window {} and stride {} must be >= 1", g.k, g.stride);
    // Every flat index (input and output) must fit the kernels' 32-bit arithmetic.
    int(op, g.x_len().max(g.y_len()));
    int(op, g.h + 2 * g.pad + g.k);
    int(op, g.w + 2 * g.pad + g.k);
    [g.n * g.c, g.h, g.w, g.k, g.stride, g.pad, g.out_h(), g.out_w()].map(|v| Arg::I32(int(op, v)))
}

fn launch_flat(
    op: &str,
    kernel: &str,
    g: &Pool2dGeom,
    n: usize,
    bufs: [&GpuBuf; 2],
    out: &GpuBuf,
) -> Result<(), GpuError> {
    let mut args = vec![bufs[0].arg(), bufs[1].arg()];
    args.extend(geom_args(op, g));
    out.runtime().launch(kernel, LaunchCfg::linear(grid_for(n), BLOCK), &args)
}

/// Max pooling forward: `y` is the first maximum (row-major) of each window's in-bounds taps.
pub fn max_pool_fwd(g: &Pool2dGeom, x: &GpuBuf, y: &mut GpuBuf) -> Result<(), GpuError> {
    check_len("max_pool_fwd", g.x_len(), &[("x", x)]);
    check_len("max_pool_fwd", g.y_len(), &[("y", y)]);
    launch_flat("max_pool_fwd", "max_pool_fwd_f32", g, g.y_len(), [x, y], y)
}

/// The tile of `max_pool_bwd_f32` (columns, rows) for a `h x w` plane: at most 256 threads,
/// at least 8 wide, no wider or taller than the plane needs.
fn max_bwd_tile(h: usize, w: usize) -> (usize, usize) {
    let tw = w.next_power_of_two().clamp(8, 32);
    let th = h.next_power_of_two().clamp(1, BLOCK as usize / tw);
    (tw, th)
}

/// Max pooling backward: each `dy` goes to its window's argmax, recomputed from `x` with the
/// forward's tie rule; overlapping windows add up. `dx` is overwritten.
pub fn max_pool_bwd(g: &Pool2dGeom, x: &GpuBuf, dy: &GpuBuf, dx: &mut GpuBuf) -> Result<(), GpuError> {
    check_len("max_pool_bwd", g.x_len(), &[("x", x), ("dx", dx)]);
    check_len("max_pool_bwd", g.y_len(), &[("dy", dy)]);
    let mut args = vec![x.arg(), dy.arg(), dx.arg()];
    args.extend(geom_args("max_pool_bwd", g));
    let (tw, th) = max_bwd_tile(g.h, g.w);
    // Windows touching a tile along each axis (see the kernel file): argmax + dy for each.
    let win = |t: usize| (t + g.k).saturating_sub(2) / g.stride + 1;
    let shared = 8 * win(th) * win(tw);
    assert!(
        shared <= 48 * 1024,
        "max_pool_bwd: a {}x{} window with stride {} needs {shared} bytes of shared memory per block",
        g.k,
        g.k,
        g.stride
    );
    let rows = g.h.div_ceil(th).max(1);
    assert!(rows <= 65_535, "max_pool_bwd: {} rows need {rows} row tiles, more than a grid's 65535", g.h);
    let planes = (g.n * g.c).clamp(1, MAX_GRID_Z);
    let cfg = LaunchCfg {
        grid: (g.w.div_ceil(tw).max(1) as u32, rows as u32, planes as u32),
        block: (tw as u32, th as u32, 1),
        shared_bytes: shared as u32,
    };
    dx.runtime().launch("max_pool_bwd_f32", cfg, &args)
}

/// Average pooling forward, dividing by the number of in-bounds taps.
pub fn avg_pool_fwd(g: &Pool2dGeom, x: &GpuBuf, y: &mut GpuBuf) -> Result<(), GpuError> {
    check_len("avg_pool_fwd", g.x_len(), &[("x", x)]);
    check_len("avg_pool_fwd", g.y_len(), &[("y", y)]);
    launch_flat("avg_pool_fwd", "avg_pool_fwd_f32", g, g.y_len(), [x, y], y)
}

/// Average pooling backward: each `dy / count` spread over its window's in-bounds taps.
/// `dx` is overwritten.
pub fn avg_pool_bwd(g: &Pool2dGeom, dy: &GpuBuf, dx: &mut GpuBuf) -> Result<(), GpuError> {
    check_len("avg_pool_bwd", g.y_len(), &[("dy", dy)]);
    check_len("avg_pool_bwd", g.x_len(), &[("dx", dx)]);
    launch_flat("avg_pool_bwd", "avg_pool_bwd_f32", g, g.x_len(), [dy, dx], dx)
}
