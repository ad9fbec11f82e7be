//! `kernels/conv2d.cu`: dense 2-D convolution (groups 1) forward, input gradient and weight
//! gradient as implicit GEMMs, and the pointwise 1x1 convolution as a plain tiled GEMM.
//!
//! The functions mirror `backend::cpu::conv` (`conv2d_fwd(g, x, w, y)`, `conv2d_bwd_data(g, dy, w,
//! dx)`, `conv2d_bwd_weight(g, x, dy, dw)`) and dispatch on the geometry:
//! - depthwise (`g.is_depthwise()`) goes to `launch::depthwise` (another kernel family);
//! - a dense 1x1 conv with stride 1 and no padding to the `conv2d_pw_*` GEMM kernels;
//! - any other dense conv (groups 1: the stem, FactorizedReduce's strided 1x1) to `conv2d_*`;
//! - other group counts panic (DARTS never runs them on the GPU).
//!
//! Tiles are chosen from the GEMM shape alone (the kernel file's table), and so is the weight
//! gradient's split of its reduction, so results are bitwise identical on every device.
//!
//! The `pw_*_slots` functions run up to [`PW_MAX_SLOTS`] independent pointwise convs of one
//! geometry (an edge's conv candidates) in one launch each, every slot bitwise equal to the
//! one-slot function on its own buffers.

use super::{check_len, depthwise, grid_for, int, BLOCK};
use crate::backend::geom::Conv2dGeom;
use crate::backend::gpu::{k, KernelId};
use crate::backend::gpu::{Arg, DevPtr, GpuBuf, GpuError, LaunchCfg};

/// Threads per block of the GEMM kernels (`CONV_THREADS`).
const THREADS: u32 = 256;
/// (BM, BN) of the activation-shaped GEMM tiles (forward, input gradient), by tile id.
const MN_TILES: [(usize, usize); 3] = [(64, 64), (32, 128), (16, 256)];
/// (BM, BN, KC) of the weight-gradient tiles, by tile id.
const W_TILES: [(usize, usize, usize); 3] = [(64, 64, 16), (32, 32, 64), (16, 16, 128)];
/// Weight-gradient split: aim for about this many blocks ...
const SPLIT_TARGET_BLOCKS: usize = 1024;
/// ... with at least this many chunks of the reduction per split ...
const SPLIT_MIN_CHUNKS: usize = 2;
/// ... and at most this many partial values in the scratch buffer.
const SPLIT_MAX_PARTIAL: usize = 1 << 20;

/// The activation tile for `m` GEMM rows: the narrowest that holds them (64 rows beyond 32).
fn mn_tile(m: usize) -> usize {
    if m > 32 {
        0
    } else if m > 16 {
        1
    } else {
        2
    }
}

/// The weight-gradient tile for an `m x n` gradient: square, sized by the smaller side.
fn w_tile(m: usize, n: usize) -> usize {
    mn_tile(m.min(n))
}

/// How the weight gradient's reduction of `l` values splits over blocks for an `m x n` result:
/// (splits, chunks per split). A function of the shape only.
fn split(m: usize, n: usize, l: usize, (bm, bn, kc): (usize, usize, usize)) -> (usize, usize) {
    let chunks = l.div_ceil(kc);
    if chunks == 0 {
        return (1, 0);
    }
    let tiles = m.div_ceil(bm) * n.div_ceil(bn);
    let s = chunks
        .div_ceil(SPLIT_MIN_CHUNKS)
        .min(SPLIT_TARGET_BLOCKS.div_ceil(tiles))
        .min(SPLIT_MAX_PARTIAL / (m * n).max(1))
        .clamp(1, 65_535);
    let cps = chunks.div_ceil(s);
    (chunks.div_ceil(cps), cps)
}

/// Grid of a GEMM with an `m x n` result in `bm x bn` tiles, `z` deep.
fn gemm_cfg(op: &str, m: usize, n: usize, (bm, bn): (usize, usize), z: usize) -> LaunchCfg {
    let gx = u32::try_from(n.div_ceil(bn)).ok().filter(|&v| v <= i32::MAX as u32);
    let gy = u32::try_from(m.div_ceil(bm)).ok().filter(|&v| v <= 65_535);
    match (gx, gy) {
        (Some(gx), Some(gy)) => LaunchCfg {
            grid: (gx.max(1), gy.max(1), z.max(1) as u32),
            block: (THREADS, 1, 1),
            shared_bytes: 0,
        },
        _ => panic!("{op}: a {m} x {n} GEMM result needs more blocks than a grid holds"),
    }
}

/// Panics (naming the op) unless `g` is a dense conv the kernels take.
fn check_dense(op: &str, g: &Conv2dGeom) {
    assert!(
        g.stride >= 1 && g.dilation >= 1 && g.kh >= 1 && g.kw >= 1,
        "{op}: invalid geometry {g:?} (need stride, dilation, kh, kw >= 1)"
    );
    assert!(
        g.groups == 1,
        "{op}: groups = {} is not supported on the GPU (dense groups = 1 or depthwise only): {g:?}",
        g.groups
    );
    // The weight-gradient kernel packs each tap's offsets i*d - p and j*d - p into 16 bits.
    let reach = (g.kh.max(g.kw) - 1) * g.dilation;
    assert!(
        reach < 1 << 15 && g.pad < 1 << 15,
        "{op}: kernel reach {reach} or padding {} exceeds the kernels' 16-bit tap offsets: {g:?}",
        g.pad
    );
}

/// Checks every buffer length against the geometry (and the kernels' 32-bit index range).
fn check_lens(op: &str, bufs: &[(&str, &GpuBuf, usize)]) {
    for &(name, b, want) in bufs {
        check_len(op, want, &[(name, b)]);
        int(op, want);
    }
}

/// `struct ConvShape` of `kernels/conv2d.cu`: the general kernels' geometry, one by-value
/// argument (the `Conv2dGeom` fields, then `out_h`, `out_w` as computed here).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct Shape {
    n: i32,
    c_in: i32,
    h: i32,
    w: i32,
    c_out: i32,
    kh: i32,
    kw: i32,
    stride: i32,
    pad: i32,
    dil: i32,
    out_h: i32,
    out_w: i32,
}

const _: () = assert!(std::mem::size_of::<Shape>() == 12 * 4);

// SAFETY: a repr(C) struct of i32 fields only (no padding), so every bit pattern is valid.
unsafe impl bytemuck::Zeroable for Shape {}
unsafe impl bytemuck::Pod for Shape {}

/// The arguments after the three buffers: `n, c_in, c_out, h * w` for `conv2d_pw_*`, one
/// [`Shape`] for `conv2d_*`.
enum ShapeArgs {
    Pointwise([i32; 4]),
    General(Shape),
}

impl ShapeArgs {
    fn new(op: &str, g: &Conv2dGeom, pointwise: bool) -> ShapeArgs {
        if pointwise {
            return ShapeArgs::Pointwise([g.n, g.c_in, g.c_out, g.h * g.w].map(|v| int(op, v)));
        }
        let [n, c_in, h, w, c_out, kh, kw, stride, pad, dil, out_h, out_w] =
            [g.n, g.c_in, g.h, g.w, g.c_out, g.kh, g.kw, g.stride, g.pad, g.dilation, g.out_h(), g.out_w()]
                .map(|v| int(op, v));
        ShapeArgs::General(Shape { n, c_in, h, w, c_out, kh, kw, stride, pad, dil, out_h, out_w })
    }

    /// Appends them to `args`.
    fn push<'a>(&'a self, args: &mut Vec<Arg<'a>>) {
        match self {
            ShapeArgs::Pointwise(v) => args.extend(v.map(Arg::I32)),
            ShapeArgs::General(s) => args.push(Arg::pod(s)),
        }
    }
}

/// One activation-shaped GEMM launch (forward or input gradient): `m x n` result, buffers
/// `(in, w, out)`, then the pointwise or general shape, then the tile id.
fn launch_mn(
    op: &str,
    g: &Conv2dGeom,
    (m, n): (usize, usize),
    (input, w, out): (&GpuBuf, &GpuBuf, &GpuBuf),
    (pw_kernel, kernel): (KernelId, KernelId),
) -> Result<(), GpuError> {
    let tile = mn_tile(m);
    let pointwise = g.is_pointwise() && g.stride == 1;
    let shape = ShapeArgs::new(op, g, pointwise);
    let mut args = vec![input.arg(), w.arg(), out.arg()];
    shape.push(&mut args);
    args.push(Arg::I32(tile as i32));
    out.runtime().launch(
        if pointwise { pw_kernel } else { kernel },
        gemm_cfg(op, m, n, MN_TILES[tile], 1),
        &args,
    )
}

/// Convolution forward: `y = conv(x, w)`. `x` is `[n, c_in, h, w]`, `w` is
/// `[c_out, c_in / groups, kh, kw]`, `y` (overwritten) is `[n, c_out, out_h, out_w]`.
///
/// Dispatches to depthwise, pointwise or the general implicit GEMM; panics, naming the op, on a
/// length mismatch or an unsupported group count.
pub fn conv2d_fwd(g: &Conv2dGeom, x: &GpuBuf, w: &GpuBuf, y: &mut GpuBuf) -> Result<(), GpuError> {
    const OP: &str = "conv2d_fwd";
    if g.is_depthwise() {
        return depthwise::depthwise_fwd(g, x, w, y);
    }
    check_dense(OP, g);
    check_lens(OP, &[("x", x, g.x_len()), ("w", w, g.w_len()), ("y", y, g.y_len())]);
    if y.is_empty() {
        return Ok(());
    }
    let mn = (g.c_out, g.n * g.out_h() * g.out_w());
    launch_mn(OP, g, mn, (x, w, y), (k::conv2d_pw_fwd_f32, k::conv2d_fwd_f32))
}

/// Gradient of the convolution with respect to its input: `dx` (overwritten, `[n, c_in, h, w]`)
/// from `dy` (`[n, c_out, out_h, out_w]`) and the weight. Input pixels that no output reads get 0.
///
/// Dispatches like [`conv2d_fwd`].
pub fn conv2d_bwd_data(g: &Conv2dGeom, dy: &GpuBuf, w: &GpuBuf, dx: &mut GpuBuf) -> Result<(), GpuError> {
    const OP: &str = "conv2d_bwd_data";
    if g.is_depthwise() {
        return depthwise::depthwise_bwd_data(g, dy, w, dx);
    }
    check_dense(OP, g);
    check_lens(OP, &[("dy", dy, g.y_len()), ("w", w, g.w_len()), ("dx", dx, g.x_len())]);
    if dx.is_empty() {
        return Ok(());
    }
    let mn = (g.c_in, g.n * g.h * g.w);
    launch_mn(OP, g, mn, (dy, w, dx), (k::conv2d_pw_bwd_data_f32, k::conv2d_bwd_data_f32))
}

/// Gradient of the convolution with respect to its weight: `dw` (overwritten,
/// `[c_out, c_in / groups, kh, kw]`) from the input `x` and `dy`, summed over the batch.
///
/// A deterministic split-K: blocks reduce fixed runs of the `n * out_h * out_w` pixels into a
/// scratch of partial gradients, which a second kernel adds in split order (skipped when one
/// split suffices). Dispatches like [`conv2d_fwd`].
pub fn conv2d_bwd_weight(g: &Conv2dGeom, x: &GpuBuf, dy: &GpuBuf, dw: &mut GpuBuf) -> Result<(), GpuError> {
    const OP: &str = "conv2d_bwd_weight";
    if g.is_depthwise() {
        return depthwise::depthwise_bwd_weight(g, x, dy, dw);
    }
    check_dense(OP, g);
    check_lens(OP, &[("x", x, g.x_len()), ("dy", dy, g.y_len()), ("dw", dw, g.w_len())]);
    if dw.is_empty() {
        return Ok(());
    }
    let (m, n, l) = (g.c_out, g.c_in * g.kh * g.kw, g.n * g.out_h() * g.out_w());
    let tile = w_tile(m, n);
    let (bm, bn, kc) = W_TILES[tile];
    let (splits, cps) = split(m, n, l, (bm, bn, kc));
    let rt = dw.runtime().clone();
    let partial = if splits > 1 { Some(GpuBuf::alloc(&rt, splits * m * n)?) } else { None };
    let pointwise = g.is_pointwise() && g.stride == 1;
    let shape = ShapeArgs::new(OP, g, pointwise);
    let mut args = vec![x.arg(), dy.arg(), partial.as_ref().unwrap_or(dw).arg()];
    shape.push(&mut args);
    args.extend([Arg::I32(tile as i32), Arg::I32(int(OP, cps))]);
    let kernel = if pointwise { k::conv2d_pw_bwd_weight_f32 } else { k::conv2d_bwd_weight_f32 };
    rt.launch(kernel, gemm_cfg(OP, m, n, (bm, bn), splits), &args)?;
    if let Some(partial) = partial {
        rt.launch(
            k::conv2d_bwd_weight_final_f32,
            LaunchCfg::linear(grid_for(m * n), BLOCK),
            &[partial.arg(), Arg::I32(splits as i32), Arg::I32(int(OP, m * n)), dw.arg()],
        )?;
    }
    Ok(())
}

/// Most slots one slotted pointwise launch takes (`PW_SLOTS` in `kernels/conv2d.cu`).
pub const PW_MAX_SLOTS: usize = 4;

/// `struct PwSlots` of `kernels/conv2d.cu`: per slot the two operands and the output, in the
/// one-slot kernels' argument order; unused slots are null.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct PwSlots {
    a: [DevPtr; PW_MAX_SLOTS],
    b: [DevPtr; PW_MAX_SLOTS],
    out: [DevPtr; PW_MAX_SLOTS],
    n: i32,
    c_in: i32,
    c_out: i32,
    hw: i32,
    tile: i32,
    cps: i32,
    splits: i32,
    _pad: i32,
}

/// `struct PwFinalSlots` of `kernels/conv2d.cu`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct PwFinalSlots {
    partial: [DevPtr; PW_MAX_SLOTS],
    dw: [DevPtr; PW_MAX_SLOTS],
    splits: i32,
    mn: i32,
}

// SAFETY: repr(C) structs of u64 and i32 fields with no implicit padding (PwSlots closes its
// tail with `_pad`), so every bit pattern is valid and none is uninitialised.
unsafe impl bytemuck::Zeroable for PwSlots {}
unsafe impl bytemuck::Pod for PwSlots {}
unsafe impl bytemuck::Zeroable for PwFinalSlots {}
unsafe impl bytemuck::Pod for PwFinalSlots {}

/// Checks a slotted call: 1..=PW_MAX_SLOTS slots in every list, a pointwise geometry, and every
/// buffer's length (`(name, buffers, want)`). Returns the slot count.
fn check_slots(op: &str, g: &Conv2dGeom, lists: [(&str, Vec<&GpuBuf>, usize); 3]) -> usize {
    let slots = lists[0].1.len();
    assert!(
        (1..=PW_MAX_SLOTS).contains(&slots) && lists.iter().all(|l| l.1.len() == slots),
        "{op}: {} / {} / {} slots (need the same count, 1 to {PW_MAX_SLOTS})",
        lists[0].1.len(),
        lists[1].1.len(),
        lists[2].1.len()
    );
    assert!(
        g.is_pointwise() && g.stride == 1,
        "{op}: not a pointwise geometry (1x1, stride 1, pad 0, groups 1): {g:?}"
    );
    check_dense(op, g);
    for (name, bufs, want) in &lists {
        for &b in bufs {
            check_lens(op, &[(*name, b, *want)]);
        }
    }
    slots
}

/// The slots' pointers, null past the last.
fn slot_ptrs(bufs: &[&GpuBuf]) -> [DevPtr; PW_MAX_SLOTS] {
    let mut p = [0; PW_MAX_SLOTS];
    for (d, b) in p.iter_mut().zip(bufs) {
        *d = b.ptr();
    }
    p
}

/// `PwSlots` for `g` with the given operands (shape fields from `g`; tile, cps, splits as given).
fn pw_slots(op: &str, g: &Conv2dGeom, (a, b, out): (&[&GpuBuf], &[&GpuBuf], &[&GpuBuf])) -> PwSlots {
    PwSlots {
        a: slot_ptrs(a),
        b: slot_ptrs(b),
        out: slot_ptrs(out),
        n: int(op, g.n),
        c_in: int(op, g.c_in),
        c_out: int(op, g.c_out),
        hw: int(op, g.h * g.w),
        splits: 1,
        ..PwSlots::default()
    }
}

/// One slotted activation-shaped GEMM launch (forward or input gradient), `m x n` per slot.
fn launch_mn_slots(
    op: &str,
    kernel: KernelId,
    (m, n): (usize, usize),
    mut p: PwSlots,
    slots: usize,
    out: &GpuBuf,
) -> Result<(), GpuError> {
    let tile = mn_tile(m);
    p.tile = tile as i32;
    out.runtime().launch(kernel, gemm_cfg(op, m, n, MN_TILES[tile], slots), &[Arg::pod(&p)])
}

/// y_s = pw(x_s, w_s) for every slot (`g` pointwise: 1x1, stride 1, pad 0, groups 1, shared by
/// all slots), one launch. Each `y_s` is bitwise [`conv2d_fwd`]`(g, x_s, w_s)`.
///
/// Panics, naming the op, unless the three lists have the same length in `1..=PW_MAX_SLOTS`,
/// `g` is pointwise and every buffer's length matches `g`.
pub fn pw_fwd_slots(
    g: &Conv2dGeom,
    xs: &[&GpuBuf],
    ws: &[&GpuBuf],
    ys: &mut [&mut GpuBuf],
) -> Result<(), GpuError> {
    const OP: &str = "pw_fwd_slots";
    let outs: Vec<&GpuBuf> = ys.iter().map(|y| &**y).collect();
    let slots = check_slots(
        OP,
        g,
        [("x", xs.to_vec(), g.x_len()), ("w", ws.to_vec(), g.w_len()), ("y", outs.clone(), g.y_len())],
    );
    if outs[0].is_empty() {
        return Ok(());
    }
    let p = pw_slots(OP, g, (xs, ws, &outs));
    launch_mn_slots(OP, k::conv2d_pw_fwd_slots_f32, (g.c_out, g.n * g.h * g.w), p, slots, outs[0])
}

/// dx_s = pw_bwd_data(dy_s, w_s) for every slot, one launch. Each `dx_s` is bitwise
/// [`conv2d_bwd_data`]`(g, dy_s, w_s)`; panics like [`pw_fwd_slots`].
pub fn pw_bwd_data_slots(
    g: &Conv2dGeom,
    dys: &[&GpuBuf],
    ws: &[&GpuBuf],
    dxs: &mut [&mut GpuBuf],
) -> Result<(), GpuError> {
    const OP: &str = "pw_bwd_data_slots";
    let outs: Vec<&GpuBuf> = dxs.iter().map(|d| &**d).collect();
    let slots = check_slots(
        OP,
        g,
        [("dy", dys.to_vec(), g.y_len()), ("w", ws.to_vec(), g.w_len()), ("dx", outs.clone(), g.x_len())],
    );
    if outs[0].is_empty() {
        return Ok(());
    }
    let p = pw_slots(OP, g, (dys, ws, &outs));
    launch_mn_slots(OP, k::conv2d_pw_bwd_data_slots_f32, (g.c_in, g.n * g.h * g.w), p, slots, outs[0])
}

/// dw_s = pw_bwd_weight(x_s, dy_s) for every slot: one launch, plus one final for all slots when
/// split-K is used. Each `dw_s` is bitwise [`conv2d_bwd_weight`]`(g, x_s, dy_s)` (same tile,
/// same split, same summation order); panics like [`pw_fwd_slots`].
pub fn pw_bwd_weight_slots(
    g: &Conv2dGeom,
    xs: &[&GpuBuf],
    dys: &[&GpuBuf],
    dws: &mut [&mut GpuBuf],
) -> Result<(), GpuError> {
    const OP: &str = "pw_bwd_weight_slots";
    let outs: Vec<&GpuBuf> = dws.iter().map(|d| &**d).collect();
    let slots = check_slots(
        OP,
        g,
        [("x", xs.to_vec(), g.x_len()), ("dy", dys.to_vec(), g.y_len()), ("dw", outs.clone(), g.w_len())],
    );
    if outs[0].is_empty() {
        return Ok(());
    }
    let (m, n, l) = (g.c_out, g.c_in, g.n * g.h * g.w);
    let tile = w_tile(m, n);
    let (bm, bn, kc) = W_TILES[tile];
    let (splits, cps) = split(m, n, l, (bm, bn, kc));
    let z = slots * splits;
    assert!(z <= 65_535, "{OP}: {slots} slots x {splits} splits exceed the grid's z limit");
    let rt = outs[0].runtime().clone();
    // One scratch for every slot's partials: slot s owns [s * splits * m * n, (s + 1) * ...).
    let partial = if splits > 1 { Some(GpuBuf::alloc(&rt, slots * splits * m * n)?) } else { None };
    let mut p = pw_slots(OP, g, (xs, dys, &outs));
    if let Some(partial) = &partial {
        let base = partial.ptr();
        for (s, o) in p.out.iter_mut().take(slots).enumerate() {
            *o = base + (s * splits * m * n * std::mem::size_of::<f32>()) as DevPtr;
        }
    }
    p.tile = tile as i32;
    p.cps = int(OP, cps);
    p.splits = splits as i32;
    rt.launch(k::conv2d_pw_bwd_weight_slots_f32, gemm_cfg(OP, m, n, (bm, bn), z), &[Arg::pod(&p)])?;
    if partial.is_some() {
        let fin =
            PwFinalSlots { partial: p.out, dw: slot_ptrs(&outs), splits: splits as i32, mn: int(OP, m * n) };
        let cfg =
            LaunchCfg { grid: (grid_for(m * n), slots as u32, 1), block: (BLOCK, 1, 1), shared_bytes: 0 };
        rt.launch(k::conv2d_bwd_weight_final_slots_f32, cfg, &[Arg::pod(&fin)])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiles_follow_the_gemm_shape() {
        assert_eq!([mn_tile(5), mn_tile(16), mn_tile(17), mn_tile(32), mn_tile(48)], [2, 2, 1, 1, 0]);
        assert_eq!([w_tile(16, 64), w_tile(48, 27), w_tile(256, 256)], [2, 1, 0]);
    }

    #[test]
    fn splits_cover_the_reduction_exactly() {
        for (m, n, l) in
            [(16, 16, 65_536), (64, 256, 4_096), (48, 27, 65_536), (5, 3, 49), (8, 16, 0), (1, 1, 1)]
        {
            let t = W_TILES[w_tile(m, n)];
            let (s, cps) = split(m, n, l, t);
            let chunks = l.div_ceil(t.2);
            assert!(s >= 1 && s * m * n <= SPLIT_MAX_PARTIAL.max(m * n));
            // Every split is non-empty and together they cover every chunk once.
            assert!(s * cps >= chunks && (s - 1) * cps < chunks.max(1), "{m}x{n} l={l}: {s} x {cps}");
        }
    }
}
