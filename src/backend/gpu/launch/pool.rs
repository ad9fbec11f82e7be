//! `kernels/pool.cu`: k x k max and average pooling (stride, zero padding, padding never counted)
//! and their backwards, as gathers over the input (no atomics, no stored argmax), and the max +
//! avg pair of a DARTS edge in one launch each way. Mirrors `backend::cpu::pool`.

use super::{check_len, grid_for, int, BLOCK};
use crate::backend::geom::Pool2dGeom;
use crate::backend::gpu::{k, KernelId};
use crate::backend::gpu::{Arg, DevPtr, GpuBuf, GpuError, LaunchCfg};

/// Most blocks along the grid's z axis (the plane loop of `max_pool_bwd_f32` covers the rest).
const MAX_GRID_Z: usize = 65_535;

/// The geometry as the kernels' `planes, h, w, k, s, p, oh, ow` ints.
fn geom_ints(op: &str, g: &Pool2dGeom) -> [i32; 8] {
    assert!(g.k >= 1 && g.stride >= 1, "{op}: window {} and stride {} must be >= 1", g.k, g.stride);
    // Every flat index (input and output) must fit the kernels' 32-bit arithmetic.
    int(op, g.x_len().max(g.y_len()));
    int(op, g.h + 2 * g.pad + g.k);
    int(op, g.w + 2 * g.pad + g.k);
    [g.n * g.c, g.h, g.w, g.k, g.stride, g.pad, g.out_h(), g.out_w()].map(|v| int(op, v))
}

/// [`geom_ints`] as loose kernel arguments.
fn geom_args(op: &str, g: &Pool2dGeom) -> [Arg<'static>; 8] {
    geom_ints(op, g).map(Arg::I32)
}

fn launch_flat(
    op: &str,
    kernel: KernelId,
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
    launch_flat("max_pool_fwd", k::max_pool_fwd_f32, g, g.y_len(), [x, y], y)
}

/// The tile of `max_pool_bwd_f32` (columns, rows) for a `h x w` plane: at most 256 threads,
/// at least 8 wide, no wider or taller than the plane needs.
fn max_bwd_tile(h: usize, w: usize) -> (usize, usize) {
    let tw = w.next_power_of_two().clamp(8, 32);
    let th = h.next_power_of_two().clamp(1, BLOCK as usize / tw);
    (tw, th)
}

/// The launch of a `max_pool_bwd_f32`-style tiled backward whose blocks stage `per_window`
/// bytes for each window touching their tile.
fn tiled_bwd_cfg(op: &str, g: &Pool2dGeom, per_window: usize) -> LaunchCfg {
    let (tw, th) = max_bwd_tile(g.h, g.w);
    // Windows touching a tile along each axis (see the kernel file).
    let win = |t: usize| (t + g.k).saturating_sub(2) / g.stride + 1;
    let shared = per_window * win(th) * win(tw);
    assert!(
        shared <= 48 * 1024,
        "{op}: a {}x{} window with stride {} needs {shared} bytes of shared memory per block",
        g.k,
        g.k,
        g.stride
    );
    let rows = g.h.div_ceil(th).max(1);
    assert!(rows <= 65_535, "{op}: {} rows need {rows} row tiles, more than a grid's 65535", g.h);
    let planes = (g.n * g.c).clamp(1, MAX_GRID_Z);
    LaunchCfg {
        grid: (g.w.div_ceil(tw).max(1) as u32, rows as u32, planes as u32),
        block: (tw as u32, th as u32, 1),
        shared_bytes: shared as u32,
    }
}

/// Max pooling backward: each `dy` goes to its window's argmax, recomputed from `x` with the
/// forward's tie rule; overlapping windows add up. `dx` is overwritten.
pub fn max_pool_bwd(g: &Pool2dGeom, x: &GpuBuf, dy: &GpuBuf, dx: &mut GpuBuf) -> Result<(), GpuError> {
    check_len("max_pool_bwd", g.x_len(), &[("x", x), ("dx", dx)]);
    check_len("max_pool_bwd", g.y_len(), &[("dy", dy)]);
    let mut args = vec![x.arg(), dy.arg(), dx.arg()];
    args.extend(geom_args("max_pool_bwd", g));
    // Argmax (int) + dy per staged window.
    let cfg = tiled_bwd_cfg("max_pool_bwd", g, 8);
    dx.runtime().launch(k::max_pool_bwd_f32, cfg, &args)
}

/// Average pooling forward, dividing by the number of in-bounds taps.
pub fn avg_pool_fwd(g: &Pool2dGeom, x: &GpuBuf, y: &mut GpuBuf) -> Result<(), GpuError> {
    check_len("avg_pool_fwd", g.x_len(), &[("x", x)]);
    check_len("avg_pool_fwd", g.y_len(), &[("y", y)]);
    launch_flat("avg_pool_fwd", k::avg_pool_fwd_f32, g, g.y_len(), [x, y], y)
}

/// Average pooling backward: each `dy / count` spread over its window's in-bounds taps.
/// `dx` is overwritten.
pub fn avg_pool_bwd(g: &Pool2dGeom, dy: &GpuBuf, dx: &mut GpuBuf) -> Result<(), GpuError> {
    check_len("avg_pool_bwd", g.y_len(), &[("dy", dy)]);
    check_len("avg_pool_bwd", g.x_len(), &[("dx", dx)]);
    launch_flat("avg_pool_bwd", k::avg_pool_bwd_f32, g, g.x_len(), [dy, dx], dx)
}

/// `struct PoolPair` of `kernels/pool.cu`: the max + avg pair's buffers and geometry.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct PoolPair {
    x: DevPtr,
    dy: DevPtr,
    out: DevPtr,
    planes: i32,
    h: i32,
    w: i32,
    k: i32,
    s: i32,
    p: i32,
    oh: i32,
    ow: i32,
}

// SAFETY: repr(C), three u64 then eight i32: 56 bytes with no padding, so every bit pattern is
// valid and none is uninitialised.
unsafe impl bytemuck::Zeroable for PoolPair {}
unsafe impl bytemuck::Pod for PoolPair {}

impl PoolPair {
    fn new(op: &str, g: &Pool2dGeom, x: DevPtr, dy: DevPtr, out: DevPtr) -> PoolPair {
        // Both halves of the output (or of dy) are indexed as one flat array.
        int(op, 2 * g.y_len());
        let [planes, h, w, k, s, p, oh, ow] = geom_ints(op, g);
        PoolPair { x, dy, out, planes, h, w, k, s, p, oh, ow }
    }
}

/// Max and average pooling of the same `x` in one launch: `y` holds the max pool of every plane,
/// then the average pool (padded taps excluded) of every plane, each bitwise equal to
/// [`max_pool_fwd`] / [`avg_pool_fwd`].
pub fn max_avg_pool_fwd(g: &Pool2dGeom, x: &GpuBuf, y: &mut GpuBuf) -> Result<(), GpuError> {
    const OP: &str = "max_avg_pool_fwd";
    check_len(OP, g.x_len(), &[("x", x)]);
    check_len(OP, 2 * g.y_len(), &[("y", y)]);
    let a = PoolPair::new(OP, g, x.ptr(), 0, y.ptr());
    y.runtime().launch(
        k::max_avg_pool_fwd_f32,
        LaunchCfg::linear(grid_for(g.y_len()), BLOCK),
        &[Arg::pod(&a)],
    )
}

/// The input gradient of [`max_avg_pool_fwd`] in one launch: `dy` is the max half then the
/// average half; `dx = max_pool_bwd(dy_max) + avg_pool_bwd(dy_avg)`, each term bitwise equal to
/// its single kernel's result. `dx` is overwritten.
pub fn max_avg_pool_bwd(g: &Pool2dGeom, x: &GpuBuf, dy: &GpuBuf, dx: &mut GpuBuf) -> Result<(), GpuError> {
    const OP: &str = "max_avg_pool_bwd";
    check_len(OP, g.x_len(), &[("x", x), ("dx", dx)]);
    check_len(OP, 2 * g.y_len(), &[("dy", dy)]);
    let a = PoolPair::new(OP, g, x.ptr(), dy.ptr(), dx.ptr());
    // Argmax (int), the max half's dy and the avg half's dy / count per staged window.
    let cfg = tiled_bwd_cfg(OP, g, 12);
    dx.runtime().launch(k::max_avg_pool_bwd_f32, cfg, &[Arg::pod(&a)])
}
