//! Launches of `kernels/mixed.cu`. The kernels take one parameter struct each, laid out here
//! exactly as in the `.cu` file (`#[repr(C)]`, pointers as u64, explicit tail padding).

use crate::backend::gpu::k;
use crate::backend::gpu::launch::{grid_for, int, BLOCK};
use crate::backend::gpu::{Arg, DevPtr, GpuError, LaunchCfg, Runtime};

/// Candidate slots per edge (`MIXED_K`).
pub const K: usize = 8;

/// `struct MixedFwd` of `kernels/mixed.cu`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct MixedFwd {
    pub z: [DevPtr; K],
    pub mean: [DevPtr; K],
    pub invstd: [DevPtr; K],
    pub rmean: [DevPtr; K],
    pub rvar: [DevPtr; K],
    /// Per-tile partial statistics of z_j (`kernels/sepconv.cu`'s epilogue), or null: read z_j.
    pub part: [DevPtr; K],
    pub x: DevPtr,
    pub acc: DevPtr,
    pub alpha: DevPtr,
    pub y: DevPtr,
    pub n: i32,
    pub c: i32,
    pub hw: i32,
    pub k: i32,
    pub skip: i32,
    pub normed: u32,
    pub training: i32,
    pub eps: f32,
    pub momentum: f32,
    /// Pixels per tile of the partials.
    pub ptile: i32,
    /// α columns (≤ `k`): column c weighs slot c + k − cols.
    pub cols: i32,
    /// 1: w = sigmoid(α) elementwise; 0: w = softmax(α).
    pub sigmoid: i32,
}

/// `struct MixedBwd` of `kernels/mixed.cu`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct MixedBwd {
    pub z: [DevPtr; K],
    pub mean: [DevPtr; K],
    pub invstd: [DevPtr; K],
    pub dz: [DevPtr; K],
    pub x: DevPtr,
    pub alpha: DevPtr,
    pub dy: DevPtr,
    pub sums: DevPtr,
    pub dx_skip: DevPtr,
    pub dalpha: DevPtr,
    /// PC-DARTS' downstream scale vector (s = scale[scale_index]), or 0.
    pub scale: DevPtr,
    /// ∂L/∂scale through the edge's output, `[scale_len]`, or 0.
    pub dscale: DevPtr,
    pub n: i32,
    pub c: i32,
    pub hw: i32,
    pub k: i32,
    pub skip: i32,
    pub normed: u32,
    pub training: i32,
    pub rows: i32,
    pub row: i32,
    /// Runs of n·hw per channel in the sums pass ([`bwd_chunks`]).
    pub chunks: i32,
    /// α columns (≤ `k`): column c weighs slot c + k − cols.
    pub cols: i32,
    /// 1: w = sigmoid(α) elementwise; 0: w = softmax(α).
    pub sigmoid: i32,
    /// Length of `scale` and `dscale`.
    pub scale_len: i32,
    /// The entry of `scale` that scales this edge.
    pub scale_index: i32,
}

// No implicit padding: pointers, then an even number of 4-byte fields.
const _: () = assert!(std::mem::size_of::<MixedFwd>() == (6 * K + 4) * 8 + 12 * 4);
const _: () = assert!(std::mem::size_of::<MixedBwd>() == (4 * K + 8) * 8 + 14 * 4);

// SAFETY: both are repr(C) structs of u64/i32/u32/f32 fields with no implicit padding (sizes
// asserted above), so every bit pattern is valid and none is uninitialised.
unsafe impl bytemuck::Zeroable for MixedFwd {}
unsafe impl bytemuck::Pod for MixedFwd {}
unsafe impl bytemuck::Zeroable for MixedBwd {}
unsafe impl bytemuck::Pod for MixedBwd {}

const OP: &str = "mixed";

/// Per-candidate statistics (and running-stat updates in training), then the epilogue.
pub fn forward(rt: &dyn Runtime, p: &MixedFwd) -> Result<(), GpuError> {
    let total = p.n as usize * p.c as usize * p.hw as usize;
    let _ = int(OP, total);
    let stats = LaunchCfg { grid: (p.c.max(1) as u32, K as u32, 1), block: (BLOCK, 1, 1), shared_bytes: 0 };
    rt.launch(k::mixed_stats_f32, stats, &[Arg::pod(p)])?;
    rt.launch(k::mixed_fwd_f32, LaunchCfg::linear(grid_for(total), BLOCK), &[Arg::pod(p)])
}

/// Statistics and running-stat updates of slots `0..slots` alone (independent BNs, e.g. the
/// inner BNs of an edge's sep convs): grid (c, slots).
pub fn stats_slots(rt: &dyn Runtime, p: &MixedFwd, slots: usize) -> Result<(), GpuError> {
    assert!((1..=K).contains(&slots), "{OP}: {slots} statistics slots (1..={K})");
    let _ = int(OP, p.n as usize * p.c as usize * p.hw as usize);
    let cfg = LaunchCfg { grid: (p.c.max(1) as u32, slots as u32, 1), block: (BLOCK, 1, 1), shared_bytes: 0 };
    rt.launch(k::mixed_stats_f32, cfg, &[Arg::pod(p)])
}

/// Blocks each channel's backward sums are split over: about 256 blocks in all, at least 2,048
/// values per block, from the shape alone (so the bits are the same on every device).
pub fn bwd_chunks(n: usize, c: usize, hw: usize) -> usize {
    let m = n * hw;
    256usize.div_ceil(c.max(1)).min(m.div_ceil(2048)).max(1)
}

/// The per-channel sums (split over `p.chunks` blocks per channel, into `[chunks, K + 1, c]`
/// partials), then the candidate and identity gradients (and dα from block 0).
pub fn backward(rt: &dyn Runtime, p: &MixedBwd) -> Result<(), GpuError> {
    let total = p.n as usize * p.c as usize * p.hw as usize;
    let _ = int(OP, total);
    let smem = (K + 1) * p.c.max(0) as usize * 4;
    assert!(
        smem <= crate::backend::gpu::DEFAULT_DYNAMIC_SHARED as usize,
        "{OP}: {} channels need {smem} bytes of shared memory for the backward sums (at most {})",
        p.c,
        crate::backend::gpu::DEFAULT_DYNAMIC_SHARED
    );
    let sums = LaunchCfg {
        grid: (p.c.max(1) as u32, p.chunks.max(1) as u32, 1),
        block: (BLOCK, 1, 1),
        shared_bytes: 0,
    };
    rt.launch(k::mixed_bwd_sums_f32, sums, &[Arg::pod(p)])?;
    let cfg = LaunchCfg { grid: (grid_for(total), 1, 1), block: (BLOCK, 1, 1), shared_bytes: smem as u32 };
    rt.launch(k::mixed_bwd_f32, cfg, &[Arg::pod(p)])
}
