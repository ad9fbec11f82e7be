//! `kernels/layout.cu`: channel concatenation and split (one launch per group of up to 8 parts)
//! and the spatial crop with its zero-filling backward. Mirrors `backend::cpu::concat`. The zero
//! op needs no kernel here: it is [`super::elementwise::fill`] with 0.

use super::{grid_for, int, BLOCK};
use crate::backend::geom::CropGeom;
use crate::backend::gpu::k;
use crate::backend::gpu::{Arg, DevPtr, GpuBuf, GpuError, LaunchCfg};

/// Parts per launch (`LAYOUT_MAX_PARTS`).
const MAX_PARTS: usize = 8;

fn check_part(op: &str, i: usize, len: usize, n: usize, c: usize, hw: usize) {
    assert!(
        len == n * c * hw,
        "{op}: part {i} has {len} elements, [n={n}, c={c}, hw={hw}] needs {}",
        n * c * hw
    );
}

fn check_whole(op: &str, len: usize, n: usize, c: usize, hw: usize) {
    assert!(len == n * c * hw, "{op}: y has {len} elements, [n={n}, c={c}, hw={hw}] needs {}", n * c * hw);
}

/// One group's pointer slots, `nparts` and channel counts `c0..c7`.
fn group_args(parts: &[(DevPtr, usize)]) -> (Arg<'static>, Arg<'static>, Vec<Arg<'static>>) {
    let mut p = [0; MAX_PARTS];
    let mut cs = vec![Arg::I32(0); MAX_PARTS];
    for (q, &(ptr, c)) in parts.iter().enumerate() {
        p[q] = ptr;
        cs[q] = Arg::I32(int("concat/split channels", c));
    }
    (Arg::Ptrs8(p), Arg::I32(parts.len() as i32), cs)
}

/// Concatenates `parts` (each `(data [n, c_i, hw], c_i)`) along channels into
/// `y [n, sum_i c_i, hw]`.
pub fn concat_channels(
    n: usize,
    hw: usize,
    parts: &[(&GpuBuf, usize)],
    y: &mut GpuBuf,
) -> Result<(), GpuError> {
    let op = "concat_channels";
    let c_total: usize = parts.iter().map(|&(_, c)| c).sum();
    for (i, &(data, c)) in parts.iter().enumerate() {
        check_part(op, i, data.len(), n, c, hw);
    }
    check_whole(op, y.len(), n, c_total, hw);
    int(op, y.len());
    let mut c_base = 0;
    for group in parts.chunks(MAX_PARTS) {
        let slots: Vec<(DevPtr, usize)> = group.iter().map(|&(b, c)| (b.ptr(), c)).collect();
        let c_group: usize = group.iter().map(|&(_, c)| c).sum();
        let (ptrs, nparts, cs) = group_args(&slots);
        let mut args = vec![ptrs, nparts];
        args.extend(cs);
        args.extend([
            Arg::I32(int(op, n)),
            Arg::I32(int(op, hw)),
            Arg::I32(int(op, c_total)),
            Arg::I32(int(op, c_base)),
            y.arg(),
        ]);
        y.runtime().launch(
            k::concat_channels_f32,
            LaunchCfg::linear(grid_for(n * c_group * hw), BLOCK),
            &args,
        )?;
        c_base += c_group;
    }
    Ok(())
}

/// Splits `y [n, sum_i c_i, hw]` along channels into `parts` (each `(data [n, c_i, hw], c_i)`):
/// the inverse of [`concat_channels`], and its backward.
pub fn split_channels(
    n: usize,
    hw: usize,
    y: &GpuBuf,
    parts: &mut [(&mut GpuBuf, usize)],
) -> Result<(), GpuError> {
    let op = "split_channels";
    let c_total: usize = parts.iter().map(|(_, c)| *c).sum();
    check_whole(op, y.len(), n, c_total, hw);
    for (i, (data, c)) in parts.iter().enumerate() {
        check_part(op, i, data.len(), n, *c, hw);
    }
    int(op, y.len());
    let mut c_base = 0;
    for group in parts.chunks(MAX_PARTS) {
        let slots: Vec<(DevPtr, usize)> = group.iter().map(|(b, c)| (b.ptr(), *c)).collect();
        let c_group: usize = group.iter().map(|(_, c)| *c).sum();
        let (ptrs, nparts, cs) = group_args(&slots);
        let mut args = vec![
            y.arg(),
            Arg::I32(int(op, n)),
            Arg::I32(int(op, hw)),
            Arg::I32(int(op, c_total)),
            Arg::I32(int(op, c_base)),
            ptrs,
            nparts,
        ];
        args.extend(cs);
        y.runtime().launch(
            k::split_channels_f32,
            LaunchCfg::linear(grid_for(n * c_group * hw), BLOCK),
            &args,
        )?;
        c_base += c_group;
    }
    Ok(())
}

/// `struct CropGeom` of `kernels/layout.cu`: `planes, h, w, top, left, oh, ow`, one by-value
/// argument after the two buffers.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct CropArgs {
    planes: i32,
    h: i32,
    w: i32,
    top: i32,
    left: i32,
    oh: i32,
    ow: i32,
}

const _: () = assert!(std::mem::size_of::<CropArgs>() == 7 * 4);

// SAFETY: a repr(C) struct of i32 fields only (no padding), so every bit pattern is valid.
unsafe impl bytemuck::Zeroable for CropArgs {}
unsafe impl bytemuck::Pod for CropArgs {}

/// Checks `g` against the buffers (and the kernel's int range) and packs its arguments.
fn crop_args(op: &str, g: &CropGeom, x_len: usize, y_len: usize) -> CropArgs {
    g.check(op, x_len, y_len);
    int(op, x_len);
    let [planes, h, w, top, left, oh, ow] =
        [g.n * g.c, g.h, g.w, g.top, g.left, g.oh, g.ow].map(|v| int(op, v));
    CropArgs { planes, h, w, top, left, oh, ow }
}

/// `y[n, c, i, j] = x[n, c, top + i, left + j]` for `i < oh`, `j < ow`; `x` is `[n, c, h, w]`.
pub fn crop_fwd(g: &CropGeom, x: &GpuBuf, y: &mut GpuBuf) -> Result<(), GpuError> {
    let args = crop_args("crop_fwd", g, x.len(), y.len());
    let args = [x.arg(), y.arg(), Arg::pod(&args)];
    y.runtime().launch(k::crop_fwd_f32, LaunchCfg::linear(grid_for(y.len()), BLOCK), &args)
}

/// The backward of [`crop_fwd`]: `dx` is zero except `dx[n, c, top + i, left + j] = dy[n, c, i, j]`
/// (every element of `dx` is written).
pub fn crop_bwd(g: &CropGeom, dy: &GpuBuf, dx: &mut GpuBuf) -> Result<(), GpuError> {
    let args = crop_args("crop_bwd", g, dx.len(), dy.len());
    let args = [dy.arg(), dx.arg(), Arg::pod(&args)];
    dx.runtime().launch(k::crop_bwd_f32, LaunchCfg::linear(grid_for(dx.len()), BLOCK), &args)
}
