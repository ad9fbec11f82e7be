//! `kernels/batchnorm.cu`: batch normalisation over `x [n, c, hw]`, per channel, affine optional.
//! Mirrors `backend::cpu::batchnorm` (same names, same argument order, device buffers).
//!
//! Every per-channel reduction is two launches over the same chunking of the channel's
//! `m = n * hw` values (block partials on a `(nchunks, c)` grid, then a fixed-order merge), so
//! results are bitwise reproducible; the chunking is a function of the shape only, never of the
//! device.
//! Training forward: `bn_stats_partial_f32` then `bn_fwd_train_norm_f32` (which merges the
//! partials itself); training backward: `bn_bwd_train_partial_f32` then `bn_bwd_train_dx_f32`;
//! eval forward: one launch; eval backward: one launch, plus `bn_bwd_sums_final_f32` when
//! `dgamma`/`dbeta` are wanted. [`bn_bwd_train_slots`] runs the non-affine training backward of
//! up to [`BN_MAX_SLOTS`] same-shaped BNs in the same two launches.

use super::{check_len, int};
use crate::backend::geom::BnGeom;
use crate::backend::gpu::k;
use crate::backend::gpu::{Arg, DevPtr, Gpu, GpuBuf, GpuError, LaunchCfg};

/// Threads per block of every batch-norm kernel (`BN_BLOCK`).
const BN_BLOCK: u32 = 256;
/// Values one block handles per pass (`BN_GROUP` = 256 threads x 4).
const BN_GROUP: usize = 1024;
/// Most chunks (block partials) per channel.
const MAX_CHUNKS: usize = 256;
/// Blocks per launch above which a chunk grows to several groups per thread: about one full
/// wave of 8 blocks per SM on an H100/H200 (on an H200, 1024 beat 2048 and unbounded launches
/// by 1.3-2x on 16 MB tensors, and matched 512). A constant: the split never depends on the device.
const TARGET_BLOCKS: usize = 1024;
/// Channels per block of the one-warp-per-channel kernels (`BN_WARPS`).
const CHANNELS_PER_BLOCK: usize = 8;

/// `(chunk, nchunks)` for `m` values per channel and `c` channels: `chunk` a multiple of
/// `BN_GROUP`, at most `MAX_CHUNKS` chunks per channel, at least one (an empty channel has one
/// empty chunk), and several groups per thread once a launch would exceed `TARGET_BLOCKS` blocks.
fn chunking(m: usize, c: usize) -> (usize, usize) {
    let groups = m.div_ceil(BN_GROUP).max(1);
    let per = (groups * c.max(1) / TARGET_BLOCKS).max(groups.div_ceil(MAX_CHUNKS)).clamp(1, groups);
    let chunk = per * BN_GROUP;
    (chunk, m.div_ceil(chunk).max(1))
}

/// Shape arguments shared by the chunk kernels, the `(nchunks, c)` launch and `nchunks`.
struct Plan {
    n: Arg<'static>,
    c: Arg<'static>,
    hw: Arg<'static>,
    chunk: Arg<'static>,
    nchunks: usize,
    grid: LaunchCfg,
}

fn plan(op: &str, g: &BnGeom) -> Plan {
    assert!(g.c <= 65_535, "{op}: {} channels exceed the kernels' grid limit of 65535", g.c);
    int(op, g.len());
    let (chunk, nchunks) = chunking(g.per_channel(), g.c);
    Plan {
        n: Arg::I32(int(op, g.n)),
        c: Arg::I32(int(op, g.c)),
        hw: Arg::I32(int(op, g.hw)),
        chunk: Arg::I32(int(op, chunk)),
        nchunks,
        grid: LaunchCfg { grid: (nchunks as u32, g.c as u32, 1), block: (BN_BLOCK, 1, 1), shared_bytes: 0 },
    }
}

/// One warp per channel.
fn per_channel_cfg(c: usize) -> LaunchCfg {
    LaunchCfg::linear(c.div_ceil(CHANNELS_PER_BLOCK) as u32, BN_BLOCK)
}

fn opt(b: Option<&GpuBuf>) -> Arg<'static> {
    b.map_or(Arg::Ptr(0), GpuBuf::arg)
}

fn opt_mut(b: &Option<&mut GpuBuf>) -> Arg<'static> {
    b.as_ref().map_or(Arg::Ptr(0), |b| b.arg())
}

fn check_opt(op: &str, n: usize, name: &str, b: Option<&GpuBuf>) {
    if let Some(b) = b {
        check_len(op, n, &[(name, b)]);
    }
}

/// Block partials of the channel statistics, `[c][nchunks][2]`.
fn stats_partials(rt: &Gpu, p: &Plan, g: &BnGeom, x: &GpuBuf) -> Result<GpuBuf, GpuError> {
    let partial = GpuBuf::alloc(rt, 2 * g.c * p.nchunks)?;
    rt.launch(k::bn_stats_partial_f32, p.grid, &[x.arg(), p.n, p.c, p.hw, p.chunk, partial.arg()])?;
    Ok(partial)
}

/// Per-channel mean and biased variance (`sum (x - mean)^2 / (n * hw)`).
pub fn bn_stats(g: &BnGeom, x: &GpuBuf, mean: &mut GpuBuf, var: &mut GpuBuf) -> Result<(), GpuError> {
    let op = "bn_stats";
    check_len(op, g.len(), &[("x", x)]);
    check_len(op, g.c, &[("mean", mean), ("var", var)]);
    if g.c == 0 {
        return Ok(());
    }
    let p = plan(op, g);
    let rt = x.runtime().clone();
    let partial = stats_partials(&rt, &p, g, x)?;
    rt.launch(
        k::bn_stats_final_f32,
        per_channel_cfg(g.c),
        &[x.arg(), partial.arg(), p.n, p.c, p.hw, p.chunk, Arg::I32(p.nchunks as i32), mean.arg(), var.arg()],
    )
}

/// Training forward with batch statistics: writes `y`, and the per-channel `mean` and
/// `invstd = 1 / sqrt(var_biased + eps)`. `gamma`/`beta` default to 1/0.
#[allow(clippy::too_many_arguments)]
pub fn bn_fwd_train(
    g: &BnGeom,
    x: &GpuBuf,
    gamma: Option<&GpuBuf>,
    beta: Option<&GpuBuf>,
    eps: f32,
    y: &mut GpuBuf,
    mean: &mut GpuBuf,
    invstd: &mut GpuBuf,
) -> Result<(), GpuError> {
    let op = "bn_fwd_train";
    check_len(op, g.len(), &[("x", x), ("y", y)]);
    check_len(op, g.c, &[("mean", mean), ("invstd", invstd)]);
    check_opt(op, g.c, "gamma", gamma);
    check_opt(op, g.c, "beta", beta);
    if g.c == 0 {
        return Ok(());
    }
    let p = plan(op, g);
    let rt = x.runtime().clone();
    let partial = stats_partials(&rt, &p, g, x)?;
    rt.launch(
        k::bn_fwd_train_norm_f32,
        p.grid,
        &[
            x.arg(),
            opt(gamma),
            opt(beta),
            Arg::F32(eps),
            p.n,
            p.c,
            p.hw,
            p.chunk,
            partial.arg(),
            y.arg(),
            mean.arg(),
            invstd.arg(),
        ],
    )
}

/// `invstd = 1 / sqrt(var + eps)` per channel (`var`, `invstd` `[c]`): the scale of a
/// normalisation applied on load (batch or running variance).
pub fn bn_invstd(var: &GpuBuf, eps: f32, invstd: &mut GpuBuf) -> Result<(), GpuError> {
    let op = "bn_invstd";
    let c = var.len();
    check_len(op, c, &[("invstd", invstd)]);
    if c == 0 {
        return Ok(());
    }
    var.runtime().launch(
        k::bn_invstd_f32,
        LaunchCfg::linear(c.div_ceil(BN_BLOCK as usize) as u32, BN_BLOCK),
        &[var.arg(), Arg::F32(eps), Arg::I32(int(op, c)), invstd.arg()],
    )
}

/// Running-statistics update, as PyTorch: `running = (1 - momentum) running + momentum batch`,
/// with the unbiased variance `var_biased * m / (m - 1)` (`m = n * hw`; the biased one for
/// `m = 1`), the biased variance recovered in double as `max(1 / invstd^2 - eps, 0)`.
pub fn bn_update_running(
    g: &BnGeom,
    mean: &GpuBuf,
    invstd: &GpuBuf,
    eps: f32,
    momentum: f32,
    running_mean: &mut GpuBuf,
    running_var: &mut GpuBuf,
) -> Result<(), GpuError> {
    let op = "bn_update_running";
    check_len(
        op,
        g.c,
        &[("mean", mean), ("invstd", invstd), ("running_mean", running_mean), ("running_var", running_var)],
    );
    if g.c == 0 {
        return Ok(());
    }
    mean.runtime().launch(
        k::bn_update_running_f32,
        LaunchCfg::linear(g.c.div_ceil(BN_BLOCK as usize) as u32, BN_BLOCK),
        &[
            mean.arg(),
            invstd.arg(),
            Arg::F32(eps),
            Arg::F32(momentum),
            Arg::I32(int(op, g.c)),
            Arg::I32(int(op, g.per_channel())),
            running_mean.arg(),
            running_var.arg(),
        ],
    )
}

/// Inference forward with running statistics:
/// `y = (x - running_mean) / sqrt(running_var + eps) * gamma + beta`.
#[allow(clippy::too_many_arguments)]
pub fn bn_fwd_eval(
    g: &BnGeom,
    x: &GpuBuf,
    gamma: Option<&GpuBuf>,
    beta: Option<&GpuBuf>,
    running_mean: &GpuBuf,
    running_var: &GpuBuf,
    eps: f32,
    y: &mut GpuBuf,
) -> Result<(), GpuError> {
    let op = "bn_fwd_eval";
    check_len(op, g.len(), &[("x", x), ("y", y)]);
    check_len(op, g.c, &[("running_mean", running_mean), ("running_var", running_var)]);
    check_opt(op, g.c, "gamma", gamma);
    check_opt(op, g.c, "beta", beta);
    if g.c == 0 {
        return Ok(());
    }
    let p = plan(op, g);
    x.runtime().launch(
        k::bn_fwd_eval_f32,
        p.grid,
        &[
            x.arg(),
            opt(gamma),
            opt(beta),
            running_mean.arg(),
            running_var.arg(),
            Arg::F32(eps),
            p.n,
            p.c,
            p.hw,
            p.chunk,
            y.arg(),
        ],
    )
}

/// Training backward (through the batch statistics): overwrites `dx`, and `dgamma`/`dbeta`
/// when given. `mean`/`invstd` are the outputs of [`bn_fwd_train`]; `gamma` defaults to 1.
/// Without `mean`, `x` is the output x̂ of a non-affine BN itself (x̂ = x, and dx still carries
/// `invstd`): the backward of a BN that kept its output.
#[allow(clippy::too_many_arguments)]
pub fn bn_bwd_train(
    g: &BnGeom,
    x: &GpuBuf,
    dy: &GpuBuf,
    mean: Option<&GpuBuf>,
    invstd: &GpuBuf,
    gamma: Option<&GpuBuf>,
    dx: &mut GpuBuf,
    dgamma: Option<&mut GpuBuf>,
    dbeta: Option<&mut GpuBuf>,
) -> Result<(), GpuError> {
    let op = "bn_bwd_train";
    check_len(op, g.len(), &[("x", x), ("dy", dy), ("dx", dx)]);
    check_len(op, g.c, &[("invstd", invstd)]);
    check_opt(op, g.c, "mean", mean);
    check_opt(op, g.c, "gamma", gamma);
    check_opt(op, g.c, "dgamma", dgamma.as_deref());
    check_opt(op, g.c, "dbeta", dbeta.as_deref());
    if g.c == 0 {
        return Ok(());
    }
    let p = plan(op, g);
    let rt = x.runtime().clone();
    let partial = GpuBuf::alloc(&rt, 2 * g.c * p.nchunks)?;
    rt.launch(
        k::bn_bwd_train_partial_f32,
        p.grid,
        &[x.arg(), dy.arg(), opt(mean), invstd.arg(), p.n, p.c, p.hw, p.chunk, partial.arg()],
    )?;
    rt.launch(
        k::bn_bwd_train_dx_f32,
        p.grid,
        &[
            x.arg(),
            dy.arg(),
            opt(mean),
            invstd.arg(),
            opt(gamma),
            p.n,
            p.c,
            p.hw,
            p.chunk,
            partial.arg(),
            dx.arg(),
            opt_mut(&dgamma),
            opt_mut(&dbeta),
        ],
    )
}

/// Inference backward (running statistics are constants):
/// `dx = dy * gamma / sqrt(running_var + eps)`, `dgamma = sum(dy * xhat)`, `dbeta = sum(dy)`
/// with `xhat = (x - running_mean) / sqrt(running_var + eps)`. Overwrites its outputs.
#[allow(clippy::too_many_arguments)]
pub fn bn_bwd_eval(
    g: &BnGeom,
    dy: &GpuBuf,
    x: &GpuBuf,
    running_mean: &GpuBuf,
    running_var: &GpuBuf,
    gamma: Option<&GpuBuf>,
    eps: f32,
    dx: &mut GpuBuf,
    dgamma: Option<&mut GpuBuf>,
    dbeta: Option<&mut GpuBuf>,
) -> Result<(), GpuError> {
    let op = "bn_bwd_eval";
    check_len(op, g.len(), &[("dy", dy), ("x", x), ("dx", dx)]);
    check_len(op, g.c, &[("running_mean", running_mean), ("running_var", running_var)]);
    check_opt(op, g.c, "gamma", gamma);
    check_opt(op, g.c, "dgamma", dgamma.as_deref());
    check_opt(op, g.c, "dbeta", dbeta.as_deref());
    if g.c == 0 {
        return Ok(());
    }
    let p = plan(op, g);
    let rt = dy.runtime().clone();
    let want_sums = dgamma.is_some() || dbeta.is_some();
    let partial = if want_sums { Some(GpuBuf::alloc(&rt, 2 * g.c * p.nchunks)?) } else { None };
    rt.launch(
        k::bn_bwd_eval_f32,
        p.grid,
        &[
            dy.arg(),
            x.arg(),
            running_mean.arg(),
            running_var.arg(),
            opt(gamma),
            Arg::F32(eps),
            p.n,
            p.c,
            p.hw,
            p.chunk,
            dx.arg(),
            opt(partial.as_ref()),
        ],
    )?;
    match partial {
        Some(partial) => rt.launch(
            k::bn_bwd_sums_final_f32,
            per_channel_cfg(g.c),
            &[
                partial.arg(),
                Arg::I32(int(op, g.c)),
                Arg::I32(p.nchunks as i32),
                opt_mut(&dgamma),
                opt_mut(&dbeta),
            ],
        ),
        None => Ok(()),
    }
}

/// Most slots of one [`bn_bwd_train_slots`] call (`BN_SLOTS` in `kernels/batchnorm.cu`).
pub const BN_MAX_SLOTS: usize = 4;

/// `struct BnBwdSlots` of `kernels/batchnorm.cu`; unused slots are null.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct BnBwdSlots {
    x: [DevPtr; BN_MAX_SLOTS],
    dy: [DevPtr; BN_MAX_SLOTS],
    mean: [DevPtr; BN_MAX_SLOTS],
    invstd: [DevPtr; BN_MAX_SLOTS],
    partial: [DevPtr; BN_MAX_SLOTS],
    dx: [DevPtr; BN_MAX_SLOTS],
    n: i32,
    c: i32,
    hw: i32,
    chunk: i32,
}

// SAFETY: a repr(C) struct of u64 arrays and four i32 (16 bytes: no implicit padding), so every
// bit pattern is valid and none is uninitialised.
unsafe impl bytemuck::Zeroable for BnBwdSlots {}
unsafe impl bytemuck::Pod for BnBwdSlots {}

/// One slot of a batched non-affine BN training backward.
pub struct BnBwdSlot<'a> {
    /// The forward input `[n, c, hw]`.
    pub x: &'a GpuBuf,
    /// The output gradient, like `x`.
    pub dy: &'a GpuBuf,
    /// The batch mean `[c]` of [`bn_fwd_train`].
    pub mean: &'a GpuBuf,
    /// The batch `1 / sqrt(var + eps)` `[c]` of [`bn_fwd_train`].
    pub invstd: &'a GpuBuf,
}

/// dx_s = the non-affine training BN backward of every slot (all of geometry `g`): two launches
/// in all. Each `dx_s` is bitwise `bn_bwd_train(g, x, dy, mean, invstd, None, dx, None, None)`
/// (the same chunking, the same blocks). Panics, naming the op, unless `slots` and `dxs` have the
/// same length in `1..=BN_MAX_SLOTS` and every buffer's length matches `g`.
pub fn bn_bwd_train_slots(g: &BnGeom, slots: &[BnBwdSlot], dxs: &mut [&mut GpuBuf]) -> Result<(), GpuError> {
    let op = "bn_bwd_train_slots";
    let k = slots.len();
    assert!(
        (1..=BN_MAX_SLOTS).contains(&k) && dxs.len() == k,
        "{op}: {k} slots and {} outputs (need the same count, 1 to {BN_MAX_SLOTS})",
        dxs.len()
    );
    for (s, dx) in slots.iter().zip(dxs.iter()) {
        check_len(op, g.len(), &[("x", s.x), ("dy", s.dy), ("dx", dx)]);
        check_len(op, g.c, &[("mean", s.mean), ("invstd", s.invstd)]);
    }
    if g.c == 0 {
        return Ok(());
    }
    let p = plan(op, g);
    let rt = slots[0].x.runtime().clone();
    // One scratch for every slot's partials: slot s owns 2 * c * nchunks floats at s * that.
    let per = 2 * g.c * p.nchunks;
    let partial = GpuBuf::alloc(&rt, k * per)?;
    let mut a = BnBwdSlots {
        n: int(op, g.n),
        c: int(op, g.c),
        hw: int(op, g.hw),
        chunk: int(op, chunking(g.per_channel(), g.c).0),
        ..BnBwdSlots::default()
    };
    for (i, (s, dx)) in slots.iter().zip(dxs.iter()).enumerate() {
        a.x[i] = s.x.ptr();
        a.dy[i] = s.dy.ptr();
        a.mean[i] = s.mean.ptr();
        a.invstd[i] = s.invstd.ptr();
        a.partial[i] = partial.ptr() + (i * per * std::mem::size_of::<f32>()) as DevPtr;
        a.dx[i] = dx.ptr();
    }
    let cfg = LaunchCfg { grid: (p.grid.grid.0, p.grid.grid.1, k as u32), ..p.grid };
    rt.launch(k::bn_bwd_train_partial_slots_f32, cfg, &[Arg::pod(&a)])?;
    rt.launch(k::bn_bwd_train_dx_slots_f32, cfg, &[Arg::pod(&a)])
}

#[cfg(test)]
mod tests {
    use super::chunking;

    #[test]
    fn chunking_covers_every_value_with_few_chunks() {
        for m in [0, 1, 1023, 1024, 1025, 64 * 1024, 256 * 1024, 256 * 1024 + 1, 3 * 100_003, 1 << 24] {
            for c in [1, 3, 16, 64, 512] {
                let (chunk, nchunks) = chunking(m, c);
                assert_eq!(chunk % 1024, 0, "m={m} c={c}");
                assert!((1..=256).contains(&nchunks), "m={m} c={c}: {nchunks} chunks");
                assert!(chunk * nchunks >= m && (m == 0 || chunk * (nchunks - 1) < m), "m={m} c={c}");
                // Chunks grow only to keep a launch near TARGET_BLOCKS or under MAX_CHUNKS.
                assert!(chunk == 1024 || nchunks * c < 2 * 1024 || 2 * nchunks > 256, "m={m} c={c}");
            }
        }
        // DARTS at batch 64: C = 16 at 32x32 is 64 one-group chunks per channel (1024 blocks).
        assert_eq!(chunking(64 * 1024, 16), (1024, 64));
        assert_eq!(chunking(64 * 1024, 48), (3 * 1024, 22));
        assert_eq!(chunking(256 * 1024, 16), (4 * 1024, 64));
    }
}
