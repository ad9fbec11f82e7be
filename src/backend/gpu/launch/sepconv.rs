//! `kernels/sepconv.cu`: a DARTS sep/dil conv stage (pre-op -> depthwise -> pointwise 1x1) as ONE
//! launch for up to four slots (an edge's conv candidates), the depthwise output kept in shared
//! memory: `y_s = pw(dwconv(pre_s(x_s), dw_s), pw_s)`.
//!
//! The launch is sized here from the shape alone (the kernel file's top comment describes the
//! tile), never from the device, so results are bitwise identical on every GPU and the emulator.

use super::depthwise::{self, DwSlot};
use super::{check_len, int};
use crate::backend::gpu::k;
use crate::backend::gpu::{Arg, DevPtr, GpuBuf, GpuError, LaunchCfg};

/// Slots of one launch (`SEP_MAX_SLOTS`).
const MAX_SLOTS: usize = 4;
/// Most threads per block (`SEP_BLOCK`).
const BLOCK: usize = 256;
/// Most channels the kernel takes (`SEP_MAX_C`): the transposed pointwise weight and the
/// depthwise tile then fit 32 KiB of shared memory.
pub const MAX_C: usize = 64;

/// `struct SepSlot` of `kernels/sepconv.cu`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct SlotArgs {
    x: DevPtr,
    mean: DevPtr,
    rstd: DevPtr,
    dw: DevPtr,
    pw: DevPtr,
    y: DevPtr,
    part: DevPtr,
    kh: i32,
    kw: i32,
    pad: i32,
    d: i32,
}

/// `struct SepSlots` of `kernels/sepconv.cu`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct SlotsArgs {
    slot: [SlotArgs; MAX_SLOTS],
    n: i32,
    c: i32,
    h: i32,
    w: i32,
    oh: i32,
    ow: i32,
    s: i32,
    cp: i32,
    tp: i32,
    ptile: i32,
}

// No implicit padding: 7 pointers + 4 ints per slot, then 10 ints (328 bytes, a whole number of
// words; over 128 bytes, so the kernel reads it in place when indexing by blockIdx.z).
const _: () = assert!(std::mem::size_of::<SlotArgs>() == 7 * 8 + 4 * 4);
const _: () = assert!(std::mem::size_of::<SlotsArgs>() == MAX_SLOTS * (7 * 8 + 4 * 4) + 10 * 4);

// SAFETY: repr(C) structs of u64/i32 fields (and an array of them) with no implicit padding
// (sizes asserted above), so every bit pattern is valid and none is uninitialised.
unsafe impl bytemuck::Zeroable for SlotArgs {}
unsafe impl bytemuck::Pod for SlotArgs {}
unsafe impl bytemuck::Zeroable for SlotsArgs {}
unsafe impl bytemuck::Pod for SlotsArgs {}

/// The tile of one launch: `cp` output channels padded to groups of 4, `tp` threads along the
/// pixels, `ptile = 4 * tp` pixels per block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Plan {
    cp: usize,
    tp: usize,
    ptile: usize,
    tiles: usize,
    threads: usize,
    smem: usize,
}

fn plan(c: usize, ohw: usize) -> Plan {
    let cp = c.div_ceil(4) * 4;
    let groups = cp / 4;
    let tp = (BLOCK / groups).min(ohw.div_ceil(4)).max(1);
    let ptile = 4 * tp;
    Plan {
        cp,
        tp,
        ptile,
        tiles: ohw.div_ceil(ptile),
        threads: (tp * groups).div_ceil(32) * 32,
        // D, reused by the statistics epilogue as cp rows of tp + 1 floats.
        smem: (c * cp + (c * ptile).max(cp * (tp + 1))) * 4,
    }
}

/// How [`dw_pw_fwd_slots`] tiles each image's `oh·ow` output pixels: `tiles` blocks of `ptile`
/// pixels (row-major, the last one partial). Its BN partials are per (image, tile).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tiling {
    /// Pixels per tile.
    pub ptile: usize,
    /// Tiles per image.
    pub tiles: usize,
}

/// The tiling of a `c`-channel output of `ohw` pixels per image (from the shape alone).
pub fn tiling(c: usize, ohw: usize) -> Tiling {
    let p = plan(c, ohw);
    Tiling { ptile: p.ptile, tiles: p.tiles }
}

/// Floats of one slot's BN partials for `n` images: `[2, c, n·tiles]` (tile means, then the
/// tiles' centred sums of squares M2).
pub fn partials_len(n: usize, c: usize, ohw: usize) -> usize {
    2 * c * n * tiling(c, ohw).tiles
}

/// y_s = pw(dwconv(pre_s(x_s), dw_s), pw_s) for every slot (the pre-op as in `depthwise_pre_fwd_slots`;
/// `pws[s]` is `[c, c, 1, 1]`), the depthwise output kept on chip: one launch. With `parts`, each
/// slot's BN partials of y ([`partials_len`] floats, layout in `kernels/sepconv.cu`) are gathered
/// by the same launch from the accumulators.
///
/// 1 to 4 slots sharing n, c, h, w, stride and the output size; `c <= 64`. Panics, naming the
/// op, on mismatched counts, lengths or geometries, or more channels.
pub fn dw_pw_fwd_slots(
    slots: &[DwSlot],
    dws: &[&GpuBuf],
    pws: &[&GpuBuf],
    ys: &mut [&mut GpuBuf],
    mut parts: Option<&mut [&mut GpuBuf]>,
) -> Result<(), GpuError> {
    const OP: &str = "dw_pw_fwd_slots";
    depthwise::check_slots(OP, slots, &[("dw", dws.len()), ("pw", pws.len()), ("y", ys.len())]);
    if let Some(parts) = parts.as_deref() {
        assert_eq!(
            parts.len(),
            slots.len(),
            "{OP}: {} partial buffers for {} slots",
            parts.len(),
            slots.len()
        );
    }
    let g0 = slots[0].g;
    let c = g0.c_in;
    assert!(
        c <= MAX_C,
        "{OP}: {c} channels exceed the kernel's {MAX_C} (the weight and tile live in shared memory)"
    );
    let part_len = partials_len(g0.n, c, g0.out_h() * g0.out_w());
    let mut a = SlotsArgs::default();
    for (i, ((((sl, dw), pw), y), sa)) in
        slots.iter().zip(dws).zip(pws).zip(ys.iter()).zip(a.slot.iter_mut()).enumerate()
    {
        let g = &sl.g;
        depthwise::check_fwd(OP, g, sl.x, dw, y);
        check_len(OP, c * c, &[("pw", pw)]);
        let (mean, rstd) = sl.norm.map_or((0, 0), |(m, r)| (m.ptr(), r.ptr()));
        let part = parts.as_deref_mut().map_or(0, |ps| {
            check_len(OP, part_len, &[("partials", &*ps[i])]);
            ps[i].ptr()
        });
        *sa = SlotArgs {
            x: sl.x.ptr(),
            mean,
            rstd,
            dw: dw.ptr(),
            pw: pw.ptr(),
            y: y.ptr(),
            part,
            kh: g.kh as i32,
            kw: g.kw as i32,
            pad: g.pad as i32,
            d: g.dilation as i32,
        };
    }
    if ys[0].is_empty() {
        return Ok(()); // every slot has the same output size
    }
    let (oh, ow) = (g0.out_h(), g0.out_w());
    let p = plan(c, oh * ow);
    assert!(g0.n <= 65_535, "{OP}: {} images exceed grid.y", g0.n);
    let a = SlotsArgs {
        n: int(OP, g0.n),
        c: int(OP, c),
        h: int(OP, g0.h),
        w: int(OP, g0.w),
        oh: int(OP, oh),
        ow: int(OP, ow),
        s: int(OP, g0.stride),
        cp: p.cp as i32,
        tp: p.tp as i32,
        ptile: p.ptile as i32,
        ..a
    };
    let cfg = LaunchCfg {
        grid: (int(OP, p.tiles) as u32, g0.n as u32, slots.len() as u32),
        block: (p.threads as u32, 1, 1),
        shared_bytes: p.smem as u32,
    };
    ys[0].runtime().launch(k::dw_pw_fwd_slots_f32, cfg, &[Arg::pod(&a)])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn darts_plans_fill_blocks_and_fit_shared_memory() {
        for (c, hw) in [(16, 32), (32, 16), (64, 8), (16, 16), (32, 8), (64, 4), (3, 7), (5, 9), (1, 1)] {
            let p = plan(c, hw * hw);
            assert!(p.threads <= BLOCK && p.threads >= 32, "c{c} hw{hw}: {p:?}");
            assert!(p.tp * (p.cp / 4) <= p.threads, "c{c} hw{hw}: {p:?}");
            assert!(p.smem <= 48 * 1024, "c{c} hw{hw}: {p:?}");
            assert!(p.tiles * p.ptile >= hw * hw, "c{c} hw{hw}: {p:?}");
        }
        // The DARTS search shapes give full 256-thread blocks.
        for (c, hw) in [(16, 32), (32, 16), (64, 8)] {
            assert_eq!(plan(c, hw * hw).threads, BLOCK, "c{c} hw{hw}");
        }
        assert_eq!(plan(MAX_C, 1 << 20).smem, (64 * 64 + 64 * 64) * 4);
    }
}
