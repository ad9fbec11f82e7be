//! `kernels/depthwise.cu`: depthwise convolution (`groups == c_in == c_out`), its data and
//! weight gradients, and the ReLU-fused variants the DARTS sep/dil convs use (ReLU -> depthwise:
//! `y = dwconv(max(x, 0))`, `dx = dwconv_bwd_data(dy) * [x > 0]`, `dw = dwconv_bwd_weight(max(x, 0), dy)`),
//! and the normalise-ReLU-fused variants of a sep conv's second stage (`a = max((x - mean[c]) *
//! rstd[c], 0)` applied on load: `y = dwconv(a)`, `da = dwconv_bwd_data(dy) * [a > 0]`,
//! `dw = dwconv_bwd_weight(a, dy)`). The slotted forms ([`depthwise_pre_fwd_slots`] and the two
//! gradients) run up to four such pre-op problems (a DARTS edge's conv candidates) in one launch,
//! each slot bitwise what its single launcher gives.
//!
//! Every launch is sized here from the geometry alone (tile plan, planes per block, partial
//! count), never from the device, so results are bitwise identical on every GPU and the emulator.
//! The kernel file's top comment describes the tiling; [`Plan`] is its host half.

use super::{check_len, elementwise, int};
use crate::backend::geom::Conv2dGeom;
use crate::backend::gpu::{k, KernelId};
use crate::backend::gpu::{Arg, DevPtr, GpuBuf, GpuError, LaunchCfg};

/// Outputs per thread, stacked vertically (`DW_ROWS`).
const ROWS: usize = 4;
/// Largest output tile edge.
const TILE: usize = 32;
/// Most threads per block (`DW_BLOCK`).
const BLOCK: usize = 256;
/// Dynamic shared memory cap per block (the default limit without an opt-in).
const MAX_SMEM: usize = 48 * 1024;
/// The weight gradient's partial pass aims at about this many blocks (more block-iterations per
/// block past it, so the per-block reduction is amortised).
const WGRAD_TARGET_BLOCKS: usize = 512;
/// Threads per block of `depthwise_bwd_weight_final_f32`.
const FINAL_BLOCK: usize = 256;

/// The tile plan of one launch: a block covers `tw` output columns by `tg * ROWS` output rows of
/// `ppb` planes; shared memory holds `rows_in x cols_in` inputs per plane, column `c` at
/// `(c % s) * wq + c / s` of a row of stride `rs`, planes `ps` apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Plan {
    tw: usize,
    tg: usize,
    tiles_x: usize,
    tiles_y: usize,
    ppb: usize,
    threads: usize,
    rows_in: usize,
    cols_in: usize,
    wq: usize,
    rs: usize,
    ps: usize,
}

impl Plan {
    /// Plans a tiled launch over `planes` planes of `out_h x out_w` outputs. `rows(th)` and
    /// `cols(tw)` are the input rows and columns a tile of `th x tw` outputs reads; `s` is the
    /// column split of the shared layout; `grp_rows` is how many shared rows apart consecutive
    /// row groups of a plane start (0 when they do not follow a fixed pattern).
    #[allow(clippy::too_many_arguments)]
    fn new(
        op: &str,
        out_h: usize,
        out_w: usize,
        planes: usize,
        s: usize,
        grp_rows: usize,
        rows: impl Fn(usize) -> usize,
        cols: impl Fn(usize) -> usize,
    ) -> Plan {
        let mut tw = out_w.clamp(1, TILE);
        let mut tg = out_h.clamp(1, TILE).div_ceil(ROWS);
        loop {
            let (rows_in, cols_in) = (rows(tg * ROWS), cols(tw));
            let wq = cols_in.div_ceil(s);
            let per_plane = tw * tg;
            // Bank padding: lane l of a warp (plane p, row group g, column col) reads offset
            // p*ps + g*grp_rows*rs + col + const; ps = per_plane and grp_rows*rs = tw (mod 32)
            // make that l + const (mod 32), i.e. 32 distinct banks.
            let base = s * wq;
            let rs = if grp_rows > 0 && tw < 32 && tg > 1 {
                (base..base + 32).find(|r| (grp_rows * r) % 32 == tw % 32).unwrap_or(base)
            } else {
                base
            };
            let ps0 = rows_in * rs;
            let ps = ps0 + (per_plane % 32 + 32 - ps0 % 32) % 32;
            let fit = MAX_SMEM / (4 * ps);
            if fit >= 1 {
                let ppb = (BLOCK / per_plane).min(fit).min(planes).max(1);
                return Plan {
                    tw,
                    tg,
                    tiles_x: out_w.div_ceil(tw),
                    tiles_y: out_h.div_ceil(tg * ROWS),
                    ppb,
                    // Whole warps: the weight gradient's warp shuffles name all 32 lanes.
                    threads: (ppb * per_plane).div_ceil(32) * 32,
                    rows_in,
                    cols_in,
                    wq,
                    rs,
                    ps,
                };
            }
            if tg > 1 {
                tg = tg.div_ceil(2);
            } else if tw > 1 {
                tw = tw.div_ceil(2);
            } else {
                panic!(
                    "{op}: a {rows_in}x{cols_in} input window exceeds {MAX_SMEM} bytes of shared memory \
                     (kernel reach too large)"
                );
            }
        }
    }

    fn tiles(&self) -> usize {
        self.tiles_x * self.tiles_y
    }

    fn smem_bytes(&self) -> u32 {
        (self.ppb * self.ps * 4) as u32
    }

    /// `struct DwTile`: `tw, tg, tiles_x, ppb, rows_in, cols_in, wq, rs, ps`.
    fn tile(&self) -> [i32; 9] {
        [self.tw, self.tg, self.tiles_x, self.ppb, self.rows_in, self.cols_in, self.wq, self.rs, self.ps]
            .map(|v| v as i32)
    }
}

/// `struct DwParams` of `kernels/depthwise.cu`: the parameters of every single-problem kernel,
/// one struct by value. Each kernel reads the pointers its variant names; the others are null.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct Params {
    x: DevPtr,
    mean: DevPtr,
    rstd: DevPtr,
    w: DevPtr,
    dy: DevPtr,
    out: DevPtr,
    /// `n, c, h, w, oh, ow, kh, kw, s, pad, d`.
    shape: [i32; 11],
    tile: [i32; 9],
    iters: i32,
    tiles: i32,
}

// No implicit padding: 6 pointers, then 22 ints.
const _: () = assert!(std::mem::size_of::<Params>() == 6 * 8 + 22 * 4);

// SAFETY: a repr(C) struct of u64/i32 fields (and arrays of them) with no implicit padding (size
// asserted above), so every bit pattern is valid and none is uninitialised.
unsafe impl bytemuck::Zeroable for Params {}
unsafe impl bytemuck::Pod for Params {}

impl Params {
    /// The checked shape and the plan, pointers still null.
    fn new(op: &str, g: &Conv2dGeom, p: &Plan) -> Params {
        Params { shape: shape_args(op, g), tile: p.tile(), ..Params::default() }
    }

    /// `(mean, rstd)` of a normalise-on-load launch, checked against `c` channels; null without.
    fn set_norm(&mut self, op: &str, g: &Conv2dGeom, norm: Option<(&GpuBuf, &GpuBuf)>) {
        (self.mean, self.rstd) = norm_ptrs(op, g, norm);
    }
}

/// Checks the geometry and returns the shape as the kernels take it:
/// `n, c, h, w, oh, ow, kh, kw, s, pad, d`.
fn shape_args(op: &str, g: &Conv2dGeom) -> [i32; 11] {
    assert!(
        g.is_depthwise() && g.stride >= 1 && g.dilation >= 1 && g.kh >= 1 && g.kw >= 1,
        "{op}: not a depthwise geometry (need groups == c_in == c_out > 1 and stride, dilation, \
         kh, kw >= 1): {g:?}"
    );
    for len in [g.x_len(), g.y_len(), g.w_len()] {
        int(op, len);
    }
    [g.n, g.c_in, g.h, g.w, g.out_h(), g.out_w(), g.kh, g.kw, g.stride, g.pad, g.dilation].map(|v| int(op, v))
}

/// The forward tile plan (also the weight gradient's, over `planes`).
fn fwd_plan(op: &str, g: &Conv2dGeom, planes: usize) -> Plan {
    let (s, d) = (g.stride, g.dilation);
    Plan::new(
        op,
        g.out_h(),
        g.out_w(),
        planes,
        s,
        ROWS * s,
        |th| (th - 1) * s + (g.kh - 1) * d + 1,
        |tw| (tw - 1) * s + (g.kw - 1) * d + 1,
    )
}

/// The data gradient's plan: tiles of dx. At stride 1 the kernel gathers dy with the flipped
/// filter (a stride-1 forward); at stride s > 1 a tile reads the dy rows
/// `floor((ih0 + p - (kh-1)d) / s) ..= floor((ih0 + th - 1 + p) / s)`, at most
/// `(th - 1 + (kh-1)d) / s + 2` of them.
fn bwd_data_plan(op: &str, g: &Conv2dGeom) -> Plan {
    let (s, d, planes) = (g.stride, g.dilation, g.n * g.c_in);
    if s == 1 {
        Plan::new(op, g.h, g.w, planes, 1, ROWS, |th| th + (g.kh - 1) * d, |tw| tw + (g.kw - 1) * d)
    } else {
        Plan::new(
            op,
            g.h,
            g.w,
            planes,
            1,
            0,
            |th| (th - 1 + (g.kh - 1) * d) / s + 2,
            |tw| (tw - 1 + (g.kw - 1) * d) / s + 2,
        )
    }
}

fn gather_cfg(op: &str, p: &Plan, planes: usize) -> LaunchCfg {
    let tiles = p.tiles();
    assert!(tiles <= 65_535, "{op}: {tiles} spatial tiles exceed grid.y");
    LaunchCfg {
        grid: (int(op, planes.div_ceil(p.ppb)) as u32, tiles as u32, 1),
        block: (p.threads as u32, 1, 1),
        shared_bytes: p.smem_bytes(),
    }
}

pub(super) fn check_fwd(op: &str, g: &Conv2dGeom, x: &GpuBuf, w: &GpuBuf, y: &GpuBuf) {
    check_len(op, g.x_len(), &[("x", x)]);
    check_len(op, g.w_len(), &[("w", w)]);
    check_len(op, g.y_len(), &[("y", y)]);
}

/// The per-channel `(mean, rstd)` of a normalise-on-load launch, checked against `c` channels;
/// null pointers without one.
fn norm_ptrs(op: &str, g: &Conv2dGeom, norm: Option<(&GpuBuf, &GpuBuf)>) -> (DevPtr, DevPtr) {
    norm.map_or((0, 0), |(mean, rstd)| {
        check_len(op, g.c_in, &[("mean", mean), ("rstd", rstd)]);
        (mean.ptr(), rstd.ptr())
    })
}

fn fwd(
    kernel: KernelId,
    op: &str,
    g: &Conv2dGeom,
    x: &GpuBuf,
    norm: Option<(&GpuBuf, &GpuBuf)>,
    w: &GpuBuf,
    y: &mut GpuBuf,
) -> Result<(), GpuError> {
    shape_args(op, g);
    check_fwd(op, g, x, w, y);
    norm_ptrs(op, g, norm);
    if y.is_empty() {
        return Ok(());
    }
    let planes = g.n * g.c_in;
    let p = fwd_plan(op, g, planes);
    let mut a = Params::new(op, g, &p);
    a.set_norm(op, g, norm);
    (a.x, a.w, a.out) = (x.ptr(), w.ptr(), y.ptr());
    y.runtime().launch(kernel, gather_cfg(op, &p, planes), &[Arg::pod(&a)])
}

/// Depthwise forward: `y = conv(x, w)` with `x` `[n, c, h, w]`, `w` `[c, 1, kh, kw]`, `y`
/// `[n, c, out_h, out_w]` (overwritten). Panics, naming the op, unless `g.is_depthwise()` and
/// the lengths match.
pub fn depthwise_fwd(g: &Conv2dGeom, x: &GpuBuf, w: &GpuBuf, y: &mut GpuBuf) -> Result<(), GpuError> {
    fwd(k::depthwise_fwd_f32, "depthwise_fwd", g, x, None, w, y)
}

/// ReLU then depthwise: `y = conv(max(x, 0), w)` (the ReLU applied as the kernel loads x).
pub fn depthwise_relu_fwd(g: &Conv2dGeom, x: &GpuBuf, w: &GpuBuf, y: &mut GpuBuf) -> Result<(), GpuError> {
    fwd(k::depthwise_relu_fwd_f32, "depthwise_relu_fwd", g, x, None, w, y)
}

/// Normalise, ReLU, then depthwise: `y = conv(max((x - mean[c]) * rstd[c], 0), w)`, the
/// normalisation and ReLU applied as the kernel loads x (`mean`, `rstd` `[c]`).
pub fn depthwise_bnrelu_fwd(
    g: &Conv2dGeom,
    x: &GpuBuf,
    mean: &GpuBuf,
    rstd: &GpuBuf,
    w: &GpuBuf,
    y: &mut GpuBuf,
) -> Result<(), GpuError> {
    fwd(k::depthwise_bnrelu_fwd_f32, "depthwise_bnrelu_fwd", g, x, Some((mean, rstd)), w, y)
}

#[allow(clippy::too_many_arguments)]
fn bwd_data(
    kernel: KernelId,
    op: &str,
    g: &Conv2dGeom,
    x: Option<&GpuBuf>,
    norm: Option<(&GpuBuf, &GpuBuf)>,
    dy: &GpuBuf,
    w: &GpuBuf,
    dx: &mut GpuBuf,
) -> Result<(), GpuError> {
    shape_args(op, g);
    norm_ptrs(op, g, norm);
    check_len(op, g.y_len(), &[("dy", dy)]);
    check_len(op, g.w_len(), &[("w", w)]);
    check_len(op, g.x_len(), &[("dx", dx)]);
    if let Some(x) = x {
        check_len(op, g.x_len(), &[("x", x)]);
    }
    if dx.is_empty() {
        return Ok(());
    }
    if dy.is_empty() {
        // No output reads the input (the window never fits): the gradient is zero.
        return elementwise::fill(dx, 0.0);
    }
    let planes = g.n * g.c_in;
    let p = bwd_data_plan(op, g);
    let mut a = Params::new(op, g, &p);
    a.set_norm(op, g, norm);
    (a.x, a.dy, a.w, a.out) = (x.map_or(0, GpuBuf::ptr), dy.ptr(), w.ptr(), dx.ptr());
    dx.runtime().launch(kernel, gather_cfg(op, &p, planes), &[Arg::pod(&a)])
}

/// Depthwise data gradient: `dx` (overwritten, `[n, c, h, w]`) from `dy` and the weight.
pub fn depthwise_bwd_data(g: &Conv2dGeom, dy: &GpuBuf, w: &GpuBuf, dx: &mut GpuBuf) -> Result<(), GpuError> {
    bwd_data(k::depthwise_bwd_data_f32, "depthwise_bwd_data", g, None, None, dy, w, dx)
}

/// Data gradient of ReLU then depthwise, ReLU backward fused: `dx = bwd_data(dy, w) * [x > 0]`,
/// with `x` the ReLU's input.
pub fn depthwise_relu_bwd_data(
    g: &Conv2dGeom,
    x: &GpuBuf,
    dy: &GpuBuf,
    w: &GpuBuf,
    dx: &mut GpuBuf,
) -> Result<(), GpuError> {
    bwd_data(k::depthwise_relu_bwd_data_f32, "depthwise_relu_bwd_data", g, Some(x), None, dy, w, dx)
}

/// Data gradient of [`depthwise_bnrelu_fwd`] w.r.t. the normalised value `a` (the BN output),
/// ReLU backward fused: `da = bwd_data(dy, w) * [(x - mean[c]) * rstd[c] > 0]`, the mask
/// recomputed from the saved `x`. The BN backward (to `dx`) is the caller's.
#[allow(clippy::too_many_arguments)]
pub fn depthwise_bnrelu_bwd_data(
    g: &Conv2dGeom,
    x: &GpuBuf,
    mean: &GpuBuf,
    rstd: &GpuBuf,
    dy: &GpuBuf,
    w: &GpuBuf,
    da: &mut GpuBuf,
) -> Result<(), GpuError> {
    let op = "depthwise_bnrelu_bwd_data";
    bwd_data(k::depthwise_bnrelu_bwd_data_f32, op, g, Some(x), Some((mean, rstd)), dy, w, da)
}

/// The weight gradient's partition: `iters` groups of `ppb` images per block, `chunks` blocks
/// per (tile, channel), `nparts = tiles * chunks` partials per (channel, tap).
fn wgrad_split(g: &Conv2dGeom, p: &Plan) -> (usize, usize) {
    let groups = g.n.div_ceil(p.ppb);
    let units = g.c_in * p.tiles() * groups;
    let iters = units.div_ceil(WGRAD_TARGET_BLOCKS).clamp(1, groups);
    let chunks = groups.div_ceil(iters);
    (iters, p.tiles() * chunks)
}

fn bwd_weight(
    kernel: KernelId,
    op: &str,
    g: &Conv2dGeom,
    x: &GpuBuf,
    norm: Option<(&GpuBuf, &GpuBuf)>,
    dy: &GpuBuf,
    dw: &mut GpuBuf,
) -> Result<(), GpuError> {
    shape_args(op, g);
    norm_ptrs(op, g, norm);
    check_len(op, g.x_len(), &[("x", x)]);
    check_len(op, g.y_len(), &[("dy", dy)]);
    check_len(op, g.w_len(), &[("dw", dw)]);
    if dw.is_empty() {
        return Ok(());
    }
    if dy.is_empty() {
        return elementwise::fill(dw, 0.0);
    }
    let p = fwd_plan(op, g, g.n);
    let (iters, nparts) = wgrad_split(g, &p);
    let rows = g.w_len();
    let rt = dw.runtime().clone();
    let partial = GpuBuf::alloc(&rt, int(op, nparts * rows) as usize)?;
    let mut a = Params::new(op, g, &p);
    a.set_norm(op, g, norm);
    (a.x, a.dy, a.out) = (x.ptr(), dy.ptr(), partial.ptr());
    (a.iters, a.tiles) = (iters as i32, p.tiles() as i32);
    assert!(g.c_in <= 65_535, "{op}: {} channels exceed grid.y", g.c_in);
    let cfg = LaunchCfg {
        grid: (nparts as u32, g.c_in as u32, 1),
        block: (p.threads as u32, 1, 1),
        shared_bytes: p.smem_bytes(),
    };
    rt.launch(kernel, cfg, &[Arg::pod(&a)])?;
    rt.launch(
        k::depthwise_bwd_weight_final_f32,
        LaunchCfg::linear(rows.div_ceil(FINAL_BLOCK) as u32, FINAL_BLOCK as u32),
        &[partial.arg(), Arg::I32(rows as i32), Arg::I32(nparts as i32), dw.arg()],
    )
}

/// Depthwise weight gradient: `dw` (overwritten, `[c, 1, kh, kw]`) from `x` and `dy`, summed
/// over the batch (two passes through a scratch buffer of partials; deterministic).
pub fn depthwise_bwd_weight(
    g: &Conv2dGeom,
    x: &GpuBuf,
    dy: &GpuBuf,
    dw: &mut GpuBuf,
) -> Result<(), GpuError> {
    bwd_weight(k::depthwise_bwd_weight_partial_f32, "depthwise_bwd_weight", g, x, None, dy, dw)
}

/// Weight gradient of ReLU then depthwise: `dw = bwd_weight(max(x, 0), dy)`, with `x` the
/// ReLU's input.
pub fn depthwise_relu_bwd_weight(
    g: &Conv2dGeom,
    x: &GpuBuf,
    dy: &GpuBuf,
    dw: &mut GpuBuf,
) -> Result<(), GpuError> {
    bwd_weight(k::depthwise_relu_bwd_weight_partial_f32, "depthwise_relu_bwd_weight", g, x, None, dy, dw)
}

/// Weight gradient of [`depthwise_bnrelu_fwd`]: `dw = bwd_weight(max((x - mean[c]) * rstd[c], 0),
/// dy)`, the normalised input recomputed on load from the saved `x`.
pub fn depthwise_bnrelu_bwd_weight(
    g: &Conv2dGeom,
    x: &GpuBuf,
    mean: &GpuBuf,
    rstd: &GpuBuf,
    dy: &GpuBuf,
    dw: &mut GpuBuf,
) -> Result<(), GpuError> {
    let op = "depthwise_bnrelu_bwd_weight";
    bwd_weight(k::depthwise_bnrelu_bwd_weight_partial_f32, op, g, x, Some((mean, rstd)), dy, dw)
}

/// Slots of one batched launch (`DW_MAX_SLOTS`).
const MAX_SLOTS: usize = 4;

/// One slot of a batched pre-op (ReLU, or normalise + ReLU) depthwise launch.
pub struct DwSlot<'a> {
    /// Its geometry (depthwise); every slot of a launch shares n, c, h, w, stride and the output size.
    pub g: Conv2dGeom,
    /// The pre-op's input: x of the forward and the weight gradient, the mask source of the data gradient.
    pub x: &'a GpuBuf,
    /// `(mean, rstd)` `[c]`: normalise before the ReLU; `None`: ReLU only.
    pub norm: Option<(&'a GpuBuf, &'a GpuBuf)>,
}

/// `struct DwSlot` of `kernels/depthwise.cu` (`DwTile` flattened in place).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct SlotArgs {
    x: DevPtr,
    mean: DevPtr,
    rstd: DevPtr,
    w: DevPtr,
    dy: DevPtr,
    out: DevPtr,
    partial: DevPtr,
    kh: i32,
    kw: i32,
    pad: i32,
    d: i32,
    tile: [i32; 9],
    grid_x: i32,
    grid_y: i32,
    iters: i32,
    tiles: i32,
    nwarps: i32,
    rows: i32,
    nparts: i32,
}

/// `struct DwSlots` of `kernels/depthwise.cu`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct SlotsArgs {
    slot: [SlotArgs; MAX_SLOTS],
    n: i32,
    c: i32,
    h: i32,
    wd: i32,
    oh: i32,
    ow: i32,
    s: i32,
    nslots: i32,
}

// No implicit padding: 7 pointers + 20 ints per slot, then 8 ints.
const _: () = assert!(std::mem::size_of::<SlotArgs>() == 7 * 8 + 20 * 4);
const _: () = assert!(std::mem::size_of::<SlotsArgs>() == MAX_SLOTS * (7 * 8 + 20 * 4) + 8 * 4);

// SAFETY: repr(C) structs of u64/i32 fields (and arrays of them) with no implicit padding (sizes
// asserted above), so every bit pattern is valid and none is uninitialised.
unsafe impl bytemuck::Zeroable for SlotArgs {}
unsafe impl bytemuck::Pod for SlotArgs {}
unsafe impl bytemuck::Zeroable for SlotsArgs {}
unsafe impl bytemuck::Pod for SlotsArgs {}

impl SlotArgs {
    fn set_plan(&mut self, p: &Plan) {
        self.tile = p.tile();
        self.nwarps = (p.threads / 32) as i32;
    }
}

/// Checks the slots (count, geometries, shared shape, x and norm lengths, `n` more buffers per
/// slot) and returns the parameter struct with the shared shape, x, norm and filter fields set.
fn slots_args(op: &str, slots: &[DwSlot], bufs: &[(&str, usize)]) -> SlotsArgs {
    assert!((1..=MAX_SLOTS).contains(&slots.len()), "{op}: {} slots, expected 1 to {MAX_SLOTS}", slots.len());
    for (name, len) in bufs {
        assert_eq!(*len, slots.len(), "{op}: {len} {name} buffers for {} slots", slots.len());
    }
    let g0 = &slots[0].g;
    let shared = |g: &Conv2dGeom| (g.n, g.c_in, g.h, g.w, g.stride, g.out_h(), g.out_w());
    let mut a = SlotsArgs::default();
    for (i, (sl, sa)) in slots.iter().zip(a.slot.iter_mut()).enumerate() {
        let g = &sl.g;
        shape_args(op, g);
        assert_eq!(
            shared(g),
            shared(g0),
            "{op}: slot {i} {g:?} does not share (n, c, h, w, stride, out_h, out_w) with slot 0 {g0:?}"
        );
        check_len(op, g.x_len(), &[("x", sl.x)]);
        let (mean, rstd) = norm_ptrs(op, g, sl.norm);
        *sa = SlotArgs {
            x: sl.x.ptr(),
            mean,
            rstd,
            kh: g.kh as i32,
            kw: g.kw as i32,
            pad: g.pad as i32,
            d: g.dilation as i32,
            ..SlotArgs::default()
        };
    }
    let [n, c, h, wd, s, oh, ow] = {
        let (n, c, h, w, s, oh, ow) = shared(g0);
        [n, c, h, w, s, oh, ow].map(|v| v as i32)
    };
    SlotsArgs { n, c, h, wd, oh, ow, s, nslots: slots.len() as i32, ..a }
}

/// The checks of [`slots_args`] alone (for the other slotted launchers over [`DwSlot`]s).
pub(super) fn check_slots(op: &str, slots: &[DwSlot], bufs: &[(&str, usize)]) {
    slots_args(op, slots, bufs);
}

/// One launch of a slotted tile kernel: the grid spans every slot's own grid (slot on grid.z),
/// the block and shared memory the largest slot's.
fn slots_cfg(cfgs: &[LaunchCfg]) -> LaunchCfg {
    let max = |f: fn(&LaunchCfg) -> u32| cfgs.iter().map(f).max().expect("at least one slot");
    LaunchCfg {
        grid: (max(|c| c.grid.0), max(|c| c.grid.1), cfgs.len() as u32),
        block: (max(|c| c.block.0), 1, 1),
        shared_bytes: max(|c| c.shared_bytes),
    }
}

/// y_s = dwconv(pre_s(x_s), w_s) for every slot, one launch.
///
/// `pre_s` is ReLU, or normalise then ReLU when the slot has `norm`; each slot's `y_s` is
/// bitwise what [`depthwise_relu_fwd`] / [`depthwise_bnrelu_fwd`] give for it. 1 to 4 slots;
/// panics, naming the op, on mismatched counts, lengths or geometries.
pub fn depthwise_pre_fwd_slots(
    slots: &[DwSlot],
    ws: &[&GpuBuf],
    ys: &mut [&mut GpuBuf],
) -> Result<(), GpuError> {
    const OP: &str = "depthwise_pre_fwd_slots";
    let mut a = slots_args(OP, slots, &[("w", ws.len()), ("y", ys.len())]);
    let planes = slots[0].g.n * slots[0].g.c_in;
    let mut cfgs = Vec::with_capacity(slots.len());
    for (((sl, w), y), sa) in slots.iter().zip(ws).zip(ys.iter()).zip(a.slot.iter_mut()) {
        check_fwd(OP, &sl.g, sl.x, w, y);
        let p = fwd_plan(OP, &sl.g, planes);
        let cfg = gather_cfg(OP, &p, planes);
        sa.set_plan(&p);
        (sa.grid_x, sa.grid_y) = (cfg.grid.0 as i32, cfg.grid.1 as i32);
        (sa.w, sa.out) = (w.ptr(), y.ptr());
        cfgs.push(cfg);
    }
    if ys[0].is_empty() {
        return Ok(()); // every slot has the same output size
    }
    ys[0].runtime().launch(k::depthwise_pre_fwd_slots_f32, slots_cfg(&cfgs), &[Arg::pod(&a)])
}

/// dx_s = dwconv_bwd_data(dy_s, w_s) * [pre_s(x_s) > 0] for every slot, one launch.
///
/// Each `dx_s` is bitwise what [`depthwise_relu_bwd_data`] / [`depthwise_bnrelu_bwd_data`] give
/// for the slot (with a `norm`, the gradient w.r.t. the normalised value).
pub fn depthwise_pre_bwd_data_slots(
    slots: &[DwSlot],
    dys: &[&GpuBuf],
    ws: &[&GpuBuf],
    dxs: &mut [&mut GpuBuf],
) -> Result<(), GpuError> {
    const OP: &str = "depthwise_pre_bwd_data_slots";
    let mut a = slots_args(OP, slots, &[("dy", dys.len()), ("w", ws.len()), ("dx", dxs.len())]);
    let planes = slots[0].g.n * slots[0].g.c_in;
    let mut cfgs = Vec::with_capacity(slots.len());
    for ((((sl, dy), w), dx), sa) in slots.iter().zip(dys).zip(ws).zip(dxs.iter()).zip(a.slot.iter_mut()) {
        let g = &sl.g;
        check_len(OP, g.y_len(), &[("dy", dy)]);
        check_len(OP, g.w_len(), &[("w", w)]);
        check_len(OP, g.x_len(), &[("dx", dx)]);
        let p = bwd_data_plan(OP, g);
        let cfg = gather_cfg(OP, &p, planes);
        sa.set_plan(&p);
        (sa.grid_x, sa.grid_y) = (cfg.grid.0 as i32, cfg.grid.1 as i32);
        (sa.dy, sa.w, sa.out) = (dy.ptr(), w.ptr(), dx.ptr());
        cfgs.push(cfg);
    }
    if dxs[0].is_empty() {
        return Ok(());
    }
    if dys[0].is_empty() {
        // No output reads the input (the window never fits): every gradient is zero.
        return dxs.iter_mut().try_for_each(|dx| elementwise::fill(dx, 0.0));
    }
    dxs[0].runtime().launch(k::depthwise_pre_bwd_data_slots_f32, slots_cfg(&cfgs), &[Arg::pod(&a)])
}

/// dw_s = dwconv_bwd_weight(pre_s(x_s), dy_s) for every slot: two launches (partials, then one
/// final for all slots).
///
/// Each `dw_s` is bitwise what [`depthwise_relu_bwd_weight`] / [`depthwise_bnrelu_bwd_weight`]
/// give for the slot (same split, same summation order); the partials of every slot share one
/// scratch buffer.
pub fn depthwise_pre_bwd_weight_slots(
    slots: &[DwSlot],
    dys: &[&GpuBuf],
    dws: &mut [&mut GpuBuf],
) -> Result<(), GpuError> {
    const OP: &str = "depthwise_pre_bwd_weight_slots";
    let mut a = slots_args(OP, slots, &[("dy", dys.len()), ("dw", dws.len())]);
    let c = slots[0].g.c_in;
    assert!(c <= 65_535, "{OP}: {c} channels exceed grid.y");
    let (mut cfgs, mut offsets, mut total) = (Vec::new(), Vec::new(), 0usize);
    for (((sl, dy), dw), sa) in slots.iter().zip(dys).zip(dws.iter()).zip(a.slot.iter_mut()) {
        let g = &sl.g;
        check_len(OP, g.y_len(), &[("dy", dy)]);
        check_len(OP, g.w_len(), &[("dw", dw)]);
        let p = fwd_plan(OP, g, g.n);
        let (iters, nparts) = wgrad_split(g, &p);
        let rows = g.w_len();
        sa.set_plan(&p);
        (sa.grid_x, sa.grid_y) = (int(OP, nparts), c as i32);
        (sa.iters, sa.tiles, sa.rows, sa.nparts) =
            (iters as i32, p.tiles() as i32, rows as i32, nparts as i32);
        (sa.dy, sa.out) = (dy.ptr(), dw.ptr());
        cfgs.push(LaunchCfg {
            grid: (nparts as u32, c as u32, 1),
            block: (p.threads as u32, 1, 1),
            shared_bytes: p.smem_bytes(),
        });
        offsets.push(total);
        total += nparts * rows;
    }
    // c * kh * kw and the output size are shared emptiness: all slots or none.
    if dws.iter().any(|dw| dw.is_empty()) || dys[0].is_empty() {
        return dws.iter_mut().filter(|dw| !dw.is_empty()).try_for_each(|dw| elementwise::fill(dw, 0.0));
    }
    let rt = dws[0].runtime().clone();
    let partial = GpuBuf::alloc(&rt, int(OP, total) as usize)?;
    for (sa, off) in a.slot.iter_mut().zip(&offsets) {
        sa.partial = partial.ptr() + (off * 4) as DevPtr;
    }
    rt.launch(k::depthwise_pre_bwd_weight_partial_slots_f32, slots_cfg(&cfgs), &[Arg::pod(&a)])?;
    let rows = slots.iter().map(|sl| sl.g.w_len()).max().expect("at least one slot");
    let cfg = LaunchCfg {
        grid: (rows.div_ceil(FINAL_BLOCK) as u32, 1, slots.len() as u32),
        block: (FINAL_BLOCK as u32, 1, 1),
        shared_bytes: 0,
    };
    rt.launch(k::depthwise_bwd_weight_final_slots_f32, cfg, &[Arg::pod(&a)])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn geom(c: usize, h: usize, w: usize, k: usize, s: usize, d: usize) -> Conv2dGeom {
        Conv2dGeom {
            n: 64,
            c_in: c,
            h,
            w,
            c_out: c,
            kh: k,
            kw: k,
            stride: s,
            pad: d * (k - 1) / 2,
            dilation: d,
            groups: c,
        }
    }

    #[test]
    fn darts_plans_fill_blocks_and_fit_shared_memory() {
        for (c, hw) in [(16, 32), (32, 16), (64, 8)] {
            for k in [3, 5] {
                for s in [1, 2] {
                    for d in [1, 2] {
                        let g = geom(c, hw, hw, k, s, d);
                        for p in [fwd_plan("t", &g, g.n * c), bwd_data_plan("t", &g), fwd_plan("t", &g, g.n)]
                        {
                            assert!(p.threads <= BLOCK && p.threads >= 64, "{g:?}: {p:?}");
                            assert!(p.smem_bytes() as usize <= MAX_SMEM, "{g:?}: {p:?}");
                            assert!(p.rs >= p.wq, "{p:?}");
                            assert!(p.ps >= p.rows_in * p.rs, "{p:?}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn a_huge_reach_shrinks_the_tile() {
        let g = geom(4, 200, 200, 11, 1, 9);
        let p = fwd_plan("t", &g, g.n * 4);
        assert!(p.smem_bytes() as usize <= MAX_SMEM && p.tg * ROWS < 32, "{p:?}");
    }
}
