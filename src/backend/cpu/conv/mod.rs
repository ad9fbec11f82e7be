//! 2-D convolution on the CPU: the forward op and its two adjoints, generic over [`Real`].
//!
//! With stride `s`, padding `p`, dilation `d` and `G` groups (`Cg = c_in / G` input and
//! `Og = c_out / G` output channels per group; output channel `o` is in group `g = o / Og` and
//! reads input channels `g*Cg .. (g+1)*Cg`), and input coordinates outside the image reading zero:
//!
//! ```text
//! y[n, o, oh, ow]  = sum_{c, kh, kw} w[o, c, kh, kw] * x[n, g*Cg + c, oh*s - p + kh*d, ow*s - p + kw*d]
//! dx[n, g*Cg + c, ih, iw]
//!                  = sum_{o in g, kh, kw, oh, ow : oh*s - p + kh*d = ih, ow*s - p + kw*d = iw}
//!                        w[o, c, kh, kw] * dy[n, o, oh, ow]
//! dw[o, c, kh, kw] = sum_{n, oh, ow} dy[n, o, oh, ow] * x[n, g*Cg + c, oh*s - p + kh*d, ow*s - p + kw*d]
//! ```
//!
//! Three paths, chosen by [`conv2d_fwd`] and friends from the geometry:
//! - **general** (`general.rs`): im2col per image and group, then one GEMM
//!   (`Y_g = W_g * col`, `dcol = W_g^T * dY_g` then col2im, `dW_g += dY_g * col^T`);
//! - **depthwise** (`depthwise.rs`, `groups == c_in == c_out`): direct loops over kernel taps;
//! - **pointwise** (`pointwise.rs`, dense 1x1 without padding): GEMM straight on the input
//!   (subsampled first when the stride is above 1).
//!
//! [`dw_pw_fwd_pre`] fuses a depthwise forward with the 1x1 conv on its output (a sep/dil conv
//! stage): per image and band of output rows, the depthwise path's loop fills a cache-sized tile
//! that the pointwise GEMM consumes at once.
//!
//! Every result is bitwise deterministic and independent of the rayon thread count: the forward
//! and data-gradient ops split the work into disjoint output slices, and the weight gradient
//! sums over the batch with a partition fixed by the geometry alone (`reduce_over_batch`).

mod depthwise;
mod general;
mod pointwise;
#[cfg(test)]
mod tests;

use std::ops::Range;

use rayon::prelude::*;

use super::real::Real;
use crate::backend::geom::Conv2dGeom;

/// Convolution forward: `y = conv(x, w)`. `x` is `[n, c_in, h, w]`, `w` is
/// `[c_out, c_in / groups, kh, kw]`, `y` (overwritten) is `[n, c_out, out_h, out_w]`.
///
/// Dispatches to the depthwise, pointwise or general (im2col + GEMM) path.
/// Panics, naming the op, when a slice length does not match the geometry.
pub fn conv2d_fwd<T: Real>(g: &Conv2dGeom, x: &[T], w: &[T], y: &mut [T]) {
    check_fwd("conv2d_fwd", g, x, w, y);
    if y.is_empty() {
        return;
    }
    if g.is_depthwise() {
        depthwise::fwd(g, x, w, y);
    } else if g.is_pointwise() {
        pointwise::fwd(g, x, w, y);
    } else {
        general::fwd(g, x, w, y);
    }
}

/// Gradient of the convolution with respect to its input: `dx` (overwritten, `[n, c_in, h, w]`)
/// from `dy` (`[n, c_out, out_h, out_w]`) and the weight.
///
/// Dispatches like [`conv2d_fwd`]; panics, naming the op, on a length mismatch.
pub fn conv2d_bwd_data<T: Real>(g: &Conv2dGeom, dy: &[T], w: &[T], dx: &mut [T]) {
    check_bwd_data("conv2d_bwd_data", g, dy, w, dx);
    if dx.is_empty() {
        return;
    }
    if dy.is_empty() {
        dx.fill(T::ZERO);
    } else if g.is_depthwise() {
        depthwise::bwd_data(g, dy, w, dx);
    } else if g.is_pointwise() {
        pointwise::bwd_data(g, dy, w, dx);
    } else {
        general::bwd_data(g, dy, w, dx);
    }
}

/// Gradient of the convolution with respect to its weight: `dw` (overwritten,
/// `[c_out, c_in / groups, kh, kw]`) from the input `x` and `dy`, summed over the batch.
///
/// Dispatches like [`conv2d_fwd`]; panics, naming the op, on a length mismatch.
pub fn conv2d_bwd_weight<T: Real>(g: &Conv2dGeom, x: &[T], dy: &[T], dw: &mut [T]) {
    check_bwd_weight("conv2d_bwd_weight", g, x, dy, dw);
    if dw.is_empty() {
        return;
    }
    if dy.is_empty() {
        dw.fill(T::ZERO);
    } else if g.is_depthwise() {
        depthwise::bwd_weight(g, x, dy, dw);
    } else if g.is_pointwise() {
        pointwise::bwd_weight(g, x, dy, dw);
    } else {
        general::bwd_weight(g, x, dy, dw);
    }
}

/// Depthwise forward (`g.is_depthwise()`) of `pre(c, x)`: every input value of channel `c`
/// passes through `pre` as its plane is loaded (padding stays zero), so the transformed input is
/// never materialised, e.g. ReLU then depthwise, or a fused sep conv's normalise, ReLU, depthwise.
pub fn depthwise_fwd_pre<T: Real>(
    g: &Conv2dGeom,
    x: &[T],
    w: &[T],
    y: &mut [T],
    pre: impl Fn(usize, T) -> T + Sync,
) {
    check_fwd("depthwise_fwd_pre", g, x, w, y);
    assert!(g.is_depthwise(), "depthwise_fwd_pre: not a depthwise geometry: {g:?}");
    if !y.is_empty() {
        depthwise::fwd_pre(g, x, w, y, pre);
    }
}

/// `y = pw(dwconv(pre(c, x), dw), pw)` on one image batch, the depthwise output never materialised whole:
/// per (image, band of output rows) the depthwise of every channel goes to a cache-sized tile that the
/// pointwise GEMM consumes at once. `g_dw` is the depthwise geometry (groups == c), `g_pw` the 1x1
/// geometry on its output; `y` is `[n, c_out, oh, ow]`.
///
/// `x` is `[n, c, h, w]`, `dw` is `[c, 1, kh, kw]`, `pw` is `[c_out, c, 1, 1]`; `g_pw` must be a
/// stride-1, unpadded, dense 1x1 geometry whose input is the depthwise output
/// (`[n, c, oh, ow]`). The band height is chosen so that a band's depthwise tile and pointwise
/// output together take at most [`DW_PW_TILE_BYTES`] (at least one row), and small batches are
/// cut into more bands so that there are enough parallel jobs; bands run in parallel.
///
/// The result is bitwise equal to [`depthwise_fwd_pre`] followed by [`conv2d_fwd`] with `g_pw`:
/// each depthwise value is the same sum in the same order, and the pointwise is the same GEMM
/// kernel with the same `k = c` sum per output, only over fewer columns at a time. It is
/// therefore independent of the band height and of the rayon thread count.
pub fn dw_pw_fwd_pre<T: Real>(
    g_dw: &Conv2dGeom,
    g_pw: &Conv2dGeom,
    x: &[T],
    dw: &[T],
    pw: &[T],
    y: &mut [T],
    pre: impl Fn(usize, T) -> T + Sync,
) {
    dw_pw_fwd_pre_stats(g_dw, g_pw, x, dw, pw, y, pre, None);
}

/// Pixels per band and bands per image of [`dw_pw_fwd_pre`] on `T` (from the shapes alone).
pub fn dw_pw_bands<T>(g_dw: &Conv2dGeom, g_pw: &Conv2dGeom) -> (usize, usize) {
    let (oh, ow) = (g_dw.out_h(), g_dw.out_w());
    let rows =
        dw_pw_band_rows(g_dw.n, g_dw.c_in, g_pw.c_out, oh, ow, std::mem::size_of::<T>()).clamp(1, oh.max(1));
    (rows * ow, oh.div_ceil(rows))
}

/// [`dw_pw_fwd_pre`] that, given `stats`, also gathers y's BN partials per band while the band
/// is in cache: `stats` is `[2, c_out, n·bands]` (f64), the mean and the centred sum of squares M2 of output
/// channel co over band b = image·bands + t (pixels `[t·ptile, min((t+1)·ptile, oh·ow))` of that
/// image, row-major), `(ptile, bands)` = [`dw_pw_bands`]. The output is bitwise that of
/// [`dw_pw_fwd_pre`].
#[allow(clippy::too_many_arguments)]
pub fn dw_pw_fwd_pre_stats<T: Real>(
    g_dw: &Conv2dGeom,
    g_pw: &Conv2dGeom,
    x: &[T],
    dw: &[T],
    pw: &[T],
    y: &mut [T],
    pre: impl Fn(usize, T) -> T + Sync,
    stats: Option<&mut [f64]>,
) {
    const OP: &str = "dw_pw_fwd_pre";
    check_geom(OP, g_dw);
    check_geom(OP, g_pw);
    assert!(g_dw.is_depthwise(), "{OP}: not a depthwise geometry: {g_dw:?}");
    let (oh, ow) = (g_dw.out_h(), g_dw.out_w());
    assert!(
        g_pw.is_pointwise()
            && g_pw.stride == 1
            && (g_pw.n, g_pw.c_in, g_pw.h, g_pw.w) == (g_dw.n, g_dw.c_out, oh, ow),
        "{OP}: pointwise geometry {g_pw:?} is not a stride-1, unpadded 1x1 conv on the depthwise \
         output [n={},c={},h={oh},w={ow}]",
        g_dw.n,
        g_dw.c_out
    );
    check_len(OP, "x", x.len(), x_shape(g_dw), g_dw.x_len());
    check_len(OP, "dw", dw.len(), w_shape(g_dw), g_dw.w_len());
    check_len(OP, "pw", pw.len(), w_shape(g_pw), g_pw.w_len());
    check_len(OP, "y", y.len(), y_shape(g_pw), g_pw.y_len());
    let (ptile, bands) = dw_pw_bands::<T>(g_dw, g_pw);
    if let Some(st) = stats.as_deref() {
        let want = 2 * g_pw.c_out * g_dw.n * bands;
        assert_eq!(
            st.len(),
            want,
            "{OP}: {} partials, expected {want} (2 x {} channels x {} images x {bands} bands)",
            st.len(),
            g_pw.c_out,
            g_dw.n
        );
    }
    if y.is_empty() {
        return;
    }
    dw_pw_fwd_bands(g_dw, g_pw, x, dw, pw, y, &pre, ptile / ow, stats);
}

/// [`dw_pw_fwd_pre`] on checked, non-empty arguments with bands of `rows` output rows.
#[allow(clippy::too_many_arguments)]
fn dw_pw_fwd_bands<T: Real>(
    g_dw: &Conv2dGeom,
    g_pw: &Conv2dGeom,
    x: &[T],
    dw: &[T],
    pw: &[T],
    y: &mut [T],
    pre: &(impl Fn(usize, T) -> T + Sync),
    rows: usize,
    stats: Option<&mut [f64]>,
) {
    let (oh, ow) = (g_dw.out_h(), g_dw.out_w());
    let (n, c, c_out) = (g_dw.n, g_dw.c_in, g_pw.c_out);
    let rows = rows.clamp(1, oh);
    let bands = oh.div_ceil(rows);
    let dw_bands = depthwise::Bands::new(g_dw, rows);
    let (x_img, p) = (c * g_dw.h * g_dw.w, oh * ow);
    let y_img = c_out * p;
    let y_base = SyncPtr(y.as_mut_ptr());
    let job = |(xp, tile): &mut (Vec<T>, Vec<T>), job: usize| {
        let (img, band) = (job / bands, job % bands);
        let oh0 = band * rows;
        let cols = rows.min(oh - oh0) * ow;
        let tile = &mut tile[..c * cols];
        dw_bands.fwd_pre(g_dw, &x[img * x_img..][..x_img], dw, oh0, xp, tile, pre);
        // y[img, :, oh0 .., :] (c_out x cols, rows p apart) = pw (c_out x c) * tile (c x cols).
        // SAFETY: the C block is rows `oh0 * ow .. oh0 * ow + cols` of each of image `img`'s
        // `c_out` output planes: inside `y` (checked length), and disjoint from every other
        // job's (jobs are distinct (image, band) pairs); `y` is mutably borrowed for the whole
        // call, so nothing else reads or writes it, and A, B are other buffers.
        unsafe {
            T::gemm_raw(
                c_out,
                c,
                cols,
                T::ONE,
                pw.as_ptr(),
                c as isize,
                1,
                tile.as_ptr(),
                cols as isize,
                1,
                T::ZERO,
                y_base.get().add(img * y_img + oh0 * ow),
                p as isize,
                1,
            );
        }
    };
    let init = || (vec![T::ZERO; dw_bands.scratch_len()], vec![T::ZERO; c * rows * ow]);
    let Some(stats) = stats else {
        (0..n * bands).into_par_iter().for_each_init(init, job);
        return;
    };
    // Each job's band statistics, read back while the band is in cache; gathered in job order.
    let parts: Vec<Vec<(f64, f64)>> = (0..n * bands)
        .into_par_iter()
        .map_init(init, |scratch, j| {
            job(scratch, j);
            let (img, oh0) = (j / bands, (j % bands) * rows);
            let cols = rows.min(oh - oh0) * ow;
            (0..c_out)
                .map(|co| {
                    // SAFETY: the band this job has just written (see `job`), read by it alone.
                    let v = unsafe {
                        std::slice::from_raw_parts(y_base.get().add(img * y_img + co * p + oh0 * ow), cols)
                    };
                    let mean = v.iter().map(|a| a.to_f64()).sum::<f64>() / cols as f64;
                    (mean, v.iter().map(|a| (a.to_f64() - mean).powi(2)).sum::<f64>())
                })
                .collect()
        })
        .collect();
    let nb = n * bands;
    for (b, part) in parts.iter().enumerate() {
        for (co, &(mean, m2)) in part.iter().enumerate() {
            stats[co * nb + b] = mean;
            stats[(c_out + co) * nb + b] = m2;
        }
    }
}

/// Bytes a band of [`dw_pw_fwd_pre`] may take: its depthwise tile and its pointwise output
/// (`(c + c_out) x rows x ow` values), sized to stay in a core's L2 cache.
pub const DW_PW_TILE_BYTES: usize = 256 << 10;

/// Parallel jobs [`dw_pw_fwd_pre`] aims for on small batches (by cutting images into more bands,
/// down to [`DW_PW_MIN_ROWS`] rows), a function of the geometry only.
const DW_PW_MIN_JOBS: usize = 16;
/// Fewest output rows a band is cut to for parallelism (the depthwise halo is reloaded per band).
const DW_PW_MIN_ROWS: usize = 4;

/// Output rows per band of [`dw_pw_fwd_pre`]: as many as fit [`DW_PW_TILE_BYTES`] (at least 1),
/// fewer when the batch alone gives under [`DW_PW_MIN_JOBS`] jobs.
fn dw_pw_band_rows(n: usize, c: usize, c_out: usize, oh: usize, ow: usize, elem: usize) -> usize {
    let row_bytes = ((c + c_out) * ow * elem).max(1);
    let mut rows = (DW_PW_TILE_BYTES / row_bytes).clamp(1, oh.max(1));
    if n * oh.div_ceil(rows) < DW_PW_MIN_JOBS {
        let bands = DW_PW_MIN_JOBS.div_ceil(n.max(1));
        rows = rows.min(oh.div_ceil(bands).max(DW_PW_MIN_ROWS));
    }
    rows
}

/// A raw pointer shared by parallel jobs that write disjoint parts of its buffer.
#[derive(Clone, Copy)]
struct SyncPtr<T>(*mut T);

// SAFETY: only used to hand jobs disjoint regions of one mutably borrowed buffer (see
// `dw_pw_fwd_pre`).
unsafe impl<T: Send> Send for SyncPtr<T> {}
unsafe impl<T: Send> Sync for SyncPtr<T> {}

impl<T> SyncPtr<T> {
    /// The pointer (a method, so closures capture the `Sync` wrapper rather than the field).
    fn get(self) -> *mut T {
        self.0
    }
}

/// Depthwise weight gradient with input `pre(c, x)`, applied as each plane is loaded (as
/// [`depthwise_fwd_pre`]).
pub fn depthwise_bwd_weight_pre<T: Real>(
    g: &Conv2dGeom,
    x: &[T],
    dy: &[T],
    dw: &mut [T],
    pre: impl Fn(usize, T) -> T + Sync,
) {
    check_bwd_weight("depthwise_bwd_weight_pre", g, x, dy, dw);
    assert!(g.is_depthwise(), "depthwise_bwd_weight_pre: not a depthwise geometry: {g:?}");
    if dw.is_empty() {
        return;
    }
    if dy.is_empty() {
        dw.fill(T::ZERO);
    } else {
        depthwise::bwd_weight_pre(g, x, dy, dw, pre);
    }
}

/// [`conv2d_fwd`] always through the general im2col + GEMM path (any geometry); the reference
/// the fast paths are compared against.
pub fn conv2d_fwd_general<T: Real>(g: &Conv2dGeom, x: &[T], w: &[T], y: &mut [T]) {
    check_fwd("conv2d_fwd_general", g, x, w, y);
    if !y.is_empty() {
        general::fwd(g, x, w, y);
    }
}

/// [`conv2d_bwd_data`] always through the general GEMM + col2im path.
pub fn conv2d_bwd_data_general<T: Real>(g: &Conv2dGeom, dy: &[T], w: &[T], dx: &mut [T]) {
    check_bwd_data("conv2d_bwd_data_general", g, dy, w, dx);
    if dx.is_empty() {
        return;
    }
    if dy.is_empty() {
        dx.fill(T::ZERO);
    } else {
        general::bwd_data(g, dy, w, dx);
    }
}

/// [`conv2d_bwd_weight`] always through the general im2col + GEMM path.
pub fn conv2d_bwd_weight_general<T: Real>(g: &Conv2dGeom, x: &[T], dy: &[T], dw: &mut [T]) {
    check_bwd_weight("conv2d_bwd_weight_general", g, x, dy, dw);
    if dw.is_empty() {
        return;
    }
    if dy.is_empty() {
        dw.fill(T::ZERO);
    } else {
        general::bwd_weight(g, x, dy, dw);
    }
}

// ---------------------------------------------------------------------------------------------
// Argument checks.

fn check_geom(op: &str, g: &Conv2dGeom) {
    assert!(
        g.groups >= 1
            && g.c_in % g.groups == 0
            && g.c_out % g.groups == 0
            && g.stride >= 1
            && g.dilation >= 1
            && g.kh >= 1
            && g.kw >= 1,
        "{op}: invalid geometry {g:?} (need groups, stride, dilation, kh, kw >= 1 and \
         c_in, c_out divisible by groups)"
    );
}

fn check_len(op: &str, name: &str, len: usize, shape: String, want: usize) {
    assert!(len == want, "{op}: {name} has {len} elements, geometry {shape} needs {want}");
}

fn x_shape(g: &Conv2dGeom) -> String {
    format!("[n={},c={},h={},w={}]", g.n, g.c_in, g.h, g.w)
}

fn y_shape(g: &Conv2dGeom) -> String {
    format!("[n={},c={},h={},w={}]", g.n, g.c_out, g.out_h(), g.out_w())
}

fn w_shape(g: &Conv2dGeom) -> String {
    format!("[c_out={},c_in/groups={},kh={},kw={}]", g.c_out, g.cin_per_group(), g.kh, g.kw)
}

fn check_fwd<T>(op: &str, g: &Conv2dGeom, x: &[T], w: &[T], y: &[T]) {
    check_geom(op, g);
    check_len(op, "x", x.len(), x_shape(g), g.x_len());
    check_len(op, "w", w.len(), w_shape(g), g.w_len());
    check_len(op, "y", y.len(), y_shape(g), g.y_len());
}

fn check_bwd_data<T>(op: &str, g: &Conv2dGeom, dy: &[T], w: &[T], dx: &[T]) {
    check_geom(op, g);
    check_len(op, "dy", dy.len(), y_shape(g), g.y_len());
    check_len(op, "w", w.len(), w_shape(g), g.w_len());
    check_len(op, "dx", dx.len(), x_shape(g), g.x_len());
}

fn check_bwd_weight<T>(op: &str, g: &Conv2dGeom, x: &[T], dy: &[T], dw: &[T]) {
    check_geom(op, g);
    check_len(op, "x", x.len(), x_shape(g), g.x_len());
    check_len(op, "dy", dy.len(), y_shape(g), g.y_len());
    check_len(op, "dw", dw.len(), w_shape(g), g.w_len());
}

// ---------------------------------------------------------------------------------------------
// Kernel taps: which output positions a kernel offset touches, precomputed once per call so the
// inner loops run over in-bounds ranges with no per-element bounds branch.

/// One kernel offset `k` along one axis: the output positions `o` whose input coordinate
/// `o*stride + k*dilation - pad` lies inside `0..in_len`, and where the first of them reads.
///
/// Output `o` in `outs` reads input `first + (o - outs.start) * stride`; writing it this way
/// keeps the arithmetic unsigned (the padding never makes an intermediate negative).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Tap {
    /// Output positions whose tap is in bounds (possibly empty).
    pub outs: Range<usize>,
    /// Input position read by `outs.start` (0 when `outs` is empty).
    pub first: usize,
    /// Step in the input between consecutive outputs.
    pub stride: usize,
}

impl Tap {
    /// The tap of kernel offset `k` on an axis of `in_len` inputs and `out_len` outputs.
    pub fn new(out_len: usize, in_len: usize, k: usize, stride: usize, pad: usize, dil: usize) -> Tap {
        // Output o reads input o*stride + shift - pad.
        let shift = k * dil;
        // In bounds below: o*stride >= pad - shift  <=>  o >= ceil((pad - shift) / stride).
        let lo = if shift >= pad { 0 } else { (pad - shift).div_ceil(stride) };
        // In bounds above: o*stride <= in_len + pad - shift - 1 (kept non-negative by the test).
        let hi =
            if in_len + pad <= shift { 0 } else { ((in_len + pad - shift - 1) / stride + 1).min(out_len) };
        if lo < hi {
            Tap { outs: lo..hi, first: lo * stride + shift - pad, stride }
        } else {
            Tap { outs: 0..0, first: 0, stride }
        }
    }

    /// The input position output `o` (which must be in `outs`) reads.
    #[inline]
    pub fn input(&self, o: usize) -> usize {
        self.first + (o - self.outs.start) * self.stride
    }
}

/// The taps of every kernel row (`rows[kh]`, over output rows) and column (`cols[kw]`, over
/// output columns) of a geometry.
pub(super) struct Taps {
    pub rows: Vec<Tap>,
    pub cols: Vec<Tap>,
}

impl Taps {
    pub fn new(g: &Conv2dGeom) -> Taps {
        let (oh, ow) = (g.out_h(), g.out_w());
        Taps {
            rows: (0..g.kh).map(|kh| Tap::new(oh, g.h, kh, g.stride, g.pad, g.dilation)).collect(),
            cols: (0..g.kw).map(|kw| Tap::new(ow, g.w, kw, g.stride, g.pad, g.dilation)).collect(),
        }
    }
}

/// `out[o] = x[tap.input(o)]` for `o` in `tap.outs` (other entries untouched).
#[inline]
pub(super) fn gather_row<T: Real>(out: &mut [T], x: &[T], tap: &Tap) {
    let out = &mut out[tap.outs.clone()];
    if tap.stride == 1 {
        out.copy_from_slice(&x[tap.first..tap.first + out.len()]);
    } else {
        for (o, &xi) in out.iter_mut().zip(x[tap.first..].iter().step_by(tap.stride)) {
            *o = xi;
        }
    }
}

/// `x[tap.input(o)] += a * y[o]` for `o` in `tap.outs` (the adjoint of [`gather_row`], scaled).
#[inline]
pub(super) fn axpy_scatter<T: Real>(x: &mut [T], a: T, y: &[T], tap: &Tap) {
    let y = &y[tap.outs.clone()];
    if tap.stride == 1 {
        let x = &mut x[tap.first..tap.first + y.len()];
        for (xi, &yi) in x.iter_mut().zip(y) {
            *xi += a * yi;
        }
    } else {
        for (xi, &yi) in x[tap.first..].iter_mut().step_by(tap.stride).zip(y) {
            *xi += a * yi;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Deterministic batch reduction for the weight gradients.

/// At most this many per-chunk partial weight gradients are alive at once.
const MAX_PARTIALS: usize = 32;
/// ... and they hold at most about this many elements together.
const PARTIAL_BUDGET: usize = 1 << 22;

/// `out = sum over images i in 0..n of add_image(i)`, where `add_image(scratch, i, acc)` adds
/// image `i`'s contribution into `acc`.
///
/// The batch is cut into contiguous chunks whose count depends only on `n` and `out.len()`
/// (never on the thread count); each chunk sums its images in order into a zeroed partial, in
/// parallel across chunks, and the partials are then added in chunk order. The result is
/// therefore bitwise the same on any number of threads. `init` builds per-job scratch (e.g. an
/// im2col buffer) reused across the images of a chunk.
pub(super) fn reduce_over_batch<T, S, I, F>(n: usize, out: &mut [T], init: I, add_image: F)
where
    T: Real,
    I: Fn() -> S + Sync + Send,
    F: Fn(&mut S, usize, &mut [T]) + Sync + Send,
{
    out.fill(T::ZERO);
    if n == 0 || out.is_empty() {
        return;
    }
    let parts = n.min(MAX_PARTIALS).min((PARTIAL_BUDGET / out.len()).max(1));
    let per_chunk = n.div_ceil(parts);
    let chunks = n.div_ceil(per_chunk);
    if chunks == 1 {
        let mut scratch = init();
        for i in 0..n {
            add_image(&mut scratch, i, out);
        }
        return;
    }
    let partials: Vec<Vec<T>> = (0..chunks)
        .into_par_iter()
        .map_init(&init, |scratch, chunk| {
            let mut acc = vec![T::ZERO; out.len()];
            for i in chunk * per_chunk..((chunk + 1) * per_chunk).min(n) {
                add_image(scratch, i, &mut acc);
            }
            acc
        })
        .collect();
    // Element-wise sums in chunk order; splitting the elements across threads does not change
    // any single sum.
    const SPAN: usize = 4096;
    out.par_chunks_mut(SPAN).enumerate().for_each(|(j, o)| {
        let span = j * SPAN..j * SPAN + o.len();
        o.copy_from_slice(&partials[0][span.clone()]);
        for part in &partials[1..] {
            for (oi, &pi) in o.iter_mut().zip(&part[span.clone()]) {
                *oi += pi;
            }
        }
    });
}
