//! The depthwise path (`groups == c_in == c_out`): one `kh x kw` filter per channel, by direct
//! loops.
//!
//! ```text
//! y[n, c, oh, ow]  = sum_{i, j} w[c, 0, i, j] * x[n, c, oh*s - p + i*d, ow*s - p + j*d]
//! dx[n, c, ih, iw] = sum of w[c, 0, i, j] * dy[n, c, oh, ow] over the (oh, ow, i, j) reading (ih, iw)
//! dw[c, 0, i, j]   = sum_{n, oh, ow} dy[n, c, oh, ow] * x[n, c, oh*s - p + i*d, ow*s - p + j*d]
//! ```
//!
//! Each input plane is first copied into a zero-padded plane `xp` of `(h + 2p) x (w + 2p)`, so
//! that `x[ih - p, iw - p] = xp[ih, iw]` and every tap is in bounds: the loops carry no bounds
//! logic at all. The padded columns are stored split by phase modulo the stride ([`Padded`]), so
//! the columns `ow*s + kw*d` read by consecutive outputs are contiguous at any stride. Runs of
//! consecutive output columns (`for_each_chunk!`: 32, 16, 8, then 1 at a time) are computed with
//! their accumulators held in registers across all taps. (Against per-tap AXPYs over
//! precomputed in-bounds ranges this measured 2.5 ms instead of 7 ms for a 5x5, 16-channel,
//! 32x32, batch-64 f32 forward on one core; the plane copy is one pass against `kh*kw`
//! multiply-adds per output.)
//!
//! The data gradient at stride 1 is the forward op of `dy` with the kernel flipped and the
//! padding `d*(k-1) - p`: `dx[ih, iw] = sum_{i, j} w[i, j] * dy[ih + p - i*d, iw + p - j*d]`.
//! Otherwise each `dy` row is scattered through the filter into a padded buffer, which is then
//! cropped into `dx`.
//!
//! Every output is summed over the taps in one fixed order whatever the chunk width, and planes
//! (forward, data gradient) or channels (weight gradient) are independent jobs, so results do not
//! depend on the thread count.

use rayon::prelude::*;

use crate::backend::cpu::real::Real;
use crate::backend::geom::Conv2dGeom;

/// Runs `$body` for consecutive chunks of `0..$len`, binding the chunk start to `$start` and its
/// width, a constant (32, 16, 8, then 1 for the tail), to `$lanes`, so the body can use
/// fixed-size arrays the compiler keeps in registers.
macro_rules! for_each_chunk {
    ($len:expr, |$start:ident, $lanes:ident| $body:block) => {{
        let len = $len;
        let mut $start = 0;
        while $start + 32 <= len {
            const $lanes: usize = 32;
            $body
            $start += $lanes;
        }
        while $start + 16 <= len {
            const $lanes: usize = 16;
            $body
            $start += $lanes;
        }
        while $start + 8 <= len {
            const $lanes: usize = 8;
            $body
            $start += $lanes;
        }
        while $start < len {
            const $lanes: usize = 1;
            $body
            $start += $lanes;
        }
    }};
}

/// The layout of a zero-padded plane `xp` (`hp x wp`, `hp = h + 2p`, `wp = w + 2p`) with its
/// columns split by phase modulo the stride `s`: padded column `c` of padded row `r` is stored
/// at `((c % s) * hp + r) * wq + c / s`, with `wq = ceil(wp / s)`. Columns `c, c + s, c + 2s, ...`
/// are then adjacent. At stride 1 this is the plain padded plane.
struct Padded {
    w: usize,
    pad: usize,
    s: usize,
    hp: usize,
    wq: usize,
    /// `tap_col[kw]`: where padded column `kw*d` of padded row 0 is stored. Padded
    /// `(r, ow*s + kw*d)` is then at `r*wq + tap_col[kw] + ow` (no division in the loops).
    tap_col: Vec<usize>,
}

impl Padded {
    fn new(g: &Conv2dGeom) -> Padded {
        Padded::with_rows(g, g.h + 2 * g.pad)
    }

    /// The layout of a band of `hp` consecutive padded rows (the whole plane is `h + 2p` rows).
    fn with_rows(g: &Conv2dGeom, hp: usize) -> Padded {
        let (wp, s) = (g.w + 2 * g.pad, g.stride);
        let wq = wp.div_ceil(s);
        let tap_col = (0..g.kw).map(|kw| ((kw * g.dilation) % s * hp) * wq + kw * g.dilation / s).collect();
        Padded { w: g.w, pad: g.pad, s, hp, wq, tap_col }
    }

    /// Elements of a padded buffer.
    fn len(&self) -> usize {
        self.s * self.hp * self.wq
    }

    /// Where output `(oh, ow)` reads tap `(kh, kw)`: padded `(oh*s + kh*d, ow*s + kw*d)`.
    #[inline]
    fn tap(&self, r: usize, kw: usize, ow: usize) -> usize {
        r * self.wq + self.tap_col[kw] + ow
    }

    /// For each phase `ph < s`: the first image column `iw` with `(iw + p) % s == ph`, and where
    /// padded `(0, iw + p)` is stored; image columns `iw, iw + s, ...` then follow contiguously.
    fn phases(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        (0..self.s).map(move |ph| {
            let iw = (ph + self.s - self.pad % self.s) % self.s;
            (iw, (ph * self.hp) * self.wq + (iw + self.pad) / self.s)
        })
    }

    /// Fills `buf` with `pre(v)` for every value `v` of plane `x_c` (`h x w`) in the middle and
    /// zeros around (the padding is not passed through `pre`).
    fn load<T: Real>(&self, x_c: &[T], buf: &mut [T], pre: impl Fn(T) -> T) {
        self.load_band(x_c, buf, 0, pre);
    }

    /// [`Padded::load`] restricted to the band of padded rows `r0 .. r0 + hp` (stored as rows
    /// `0 .. hp` of `buf`): only the image rows inside the band pass through `pre`, and rows of
    /// the band outside the image (padding, or past the padded plane) are zero.
    fn load_band<T: Real>(&self, x_c: &[T], buf: &mut [T], r0: usize, pre: impl Fn(T) -> T) {
        buf.fill(T::ZERO);
        if self.w == 0 {
            return;
        }
        let h = x_c.len() / self.w;
        // Image row ih is padded row ih + pad, band row ih + pad - r0.
        let ih0 = r0.saturating_sub(self.pad).min(h);
        let ih1 = (r0 + self.hp).saturating_sub(self.pad).min(h);
        for (ih, x_row) in x_c.chunks_exact(self.w).enumerate().take(ih1).skip(ih0) {
            let r = ih + self.pad - r0;
            if self.s == 1 {
                for (t, &v) in buf[r * self.wq + self.pad..][..self.w].iter_mut().zip(x_row) {
                    *t = pre(v);
                }
                continue;
            }
            for (iw0, at) in self.phases() {
                let dst = &mut buf[at + r * self.wq..];
                for (t, &v) in dst.iter_mut().zip(x_row.iter().skip(iw0).step_by(self.s)) {
                    *t = pre(v);
                }
            }
        }
    }

    /// The adjoint of [`Padded::load`] (a crop): `dx_c[ih, iw] = buf at padded (ih + p, iw + p)`.
    fn crop<T: Real>(&self, buf: &[T], dx_c: &mut [T]) {
        for (ih, dx_row) in dx_c.chunks_exact_mut(self.w).enumerate() {
            let r = ih + self.pad;
            if self.s == 1 {
                dx_row.copy_from_slice(&buf[r * self.wq + self.pad..][..self.w]);
                continue;
            }
            for (iw0, at) in self.phases() {
                let src = &buf[at + r * self.wq..];
                for (t, &v) in dx_row.iter_mut().skip(iw0).step_by(self.s).zip(src) {
                    *t = v;
                }
            }
        }
    }
}

/// Forward, parallel over `(image, channel)` planes; each job reuses one padded buffer.
pub(super) fn fwd<T: Real>(g: &Conv2dGeom, x: &[T], w: &[T], y: &mut [T]) {
    fwd_pre(g, x, w, y, |_, v| v);
}

/// Forward of `pre(c, x)`: each input value of channel `c` passes through `pre` as its plane is
/// copied into the padded buffer, so the transformed input is never stored whole (a ReLU, or a
/// fused sep conv's normalise + ReLU).
pub(super) fn fwd_pre<T: Real>(
    g: &Conv2dGeom,
    x: &[T],
    w: &[T],
    y: &mut [T],
    pre: impl Fn(usize, T) -> T + Sync,
) {
    let padded = Padded::new(g);
    let (hw, p, kk) = (g.h * g.w, g.out_h() * g.out_w(), g.kh * g.kw);
    // Plane `nc` is image nc / c_in, channel nc % c_in; x and y planes share the index.
    y.par_chunks_mut(p).enumerate().for_each_init(
        || vec![T::ZERO; padded.len()],
        |xp, (nc, y_c)| {
            let c = nc % g.c_in;
            padded.load(&x[nc * hw..][..hw], xp, |v| pre(c, v));
            let w_c = &w[c * kk..][..kk];
            // A literal stride of 1 lets the inlined copy fold the stride arithmetic away.
            if g.stride == 1 {
                fwd_plane(g, &padded, xp, w_c, y_c, 1);
            } else {
                fwd_plane(g, &padded, xp, w_c, y_c, g.stride);
            }
        },
    );
}

/// The depthwise forward of `pre(c, x)` one band of output rows at a time, for the fused
/// depthwise -> pointwise forward ([`super::dw_pw_fwd_pre`]): the same padded-buffer load and
/// per-plane loop ([`fwd_plane`]) as [`fwd_pre`], on just the padded rows the band reads, so
/// every output is the same sum in the same order (bitwise equal to [`fwd_pre`]).
pub(super) struct Bands {
    padded: Padded,
    /// Output rows per band (the last band may have fewer).
    rows: usize,
}

impl Bands {
    /// Bands of `rows` output rows of geometry `g`.
    pub fn new(g: &Conv2dGeom, rows: usize) -> Bands {
        // Output rows oh0 .. oh0 + rows read padded rows oh0*s .. (oh0 + rows - 1)*s + (kh - 1)*d.
        let hp = (rows - 1) * g.stride + (g.kh - 1) * g.dilation + 1;
        Bands { padded: Padded::with_rows(g, hp), rows }
    }

    /// Elements of the padded scratch buffer [`Bands::fwd_pre`] needs.
    pub fn scratch_len(&self) -> usize {
        self.padded.len()
    }

    /// Output rows `oh0 .. oh0 + r` (`r <= rows`) of every channel of one image `x_n`
    /// (`[c, h, w]`) into `tile` (`[c, r, out_w]`), `xp` being scratch of [`Bands::scratch_len`].
    #[allow(clippy::too_many_arguments)]
    pub fn fwd_pre<T: Real>(
        &self,
        g: &Conv2dGeom,
        x_n: &[T],
        w: &[T],
        oh0: usize,
        xp: &mut [T],
        tile: &mut [T],
        pre: &(impl Fn(usize, T) -> T + Sync),
    ) {
        let (hw, kk) = (g.h * g.w, g.kh * g.kw);
        let plane = tile.len() / g.c_in;
        debug_assert!(plane <= self.rows * g.out_w() && tile.len() == g.c_in * plane);
        for (c, t_c) in tile.chunks_exact_mut(plane.max(1)).enumerate() {
            self.padded.load_band(&x_n[c * hw..][..hw], xp, oh0 * g.stride, |v| pre(c, v));
            let w_c = &w[c * kk..][..kk];
            // As in `fwd_pre`: a literal stride of 1 folds the stride arithmetic away.
            if g.stride == 1 {
                fwd_plane(g, &self.padded, xp, w_c, t_c, 1);
            } else {
                fwd_plane(g, &self.padded, xp, w_c, t_c, g.stride);
            }
        }
    }
}

/// One channel: `y_c[oh, ow] = sum_{kh, kw} w_c[kh, kw] * xp[oh*s + kh*d, ow*s + kw*d]` on the
/// padded plane `xp` (or on a band of it, `oh` then counting from the band's first row).
#[inline(always)]
fn fwd_plane<T: Real>(g: &Conv2dGeom, padded: &Padded, xp: &[T], w_c: &[T], y_c: &mut [T], s: usize) {
    let (d, out_w) = (g.dilation, g.out_w());
    for (oh, y_row) in y_c.chunks_exact_mut(out_w).enumerate() {
        for_each_chunk!(out_w, |ow0, LANES| {
            let mut acc = [T::ZERO; LANES];
            for kh in 0..g.kh {
                let from_row = &xp[padded.tap(oh * s + kh * d, 0, 0)..];
                for (&wv, &col) in w_c[kh * g.kw..][..g.kw].iter().zip(&padded.tap_col) {
                    // Padded input (oh*s + kh*d, (ow0 + i)*s + kw*d) for i < LANES, contiguous.
                    let xs = &from_row[col + ow0..][..LANES];
                    for (a, &xv) in acc.iter_mut().zip(xs) {
                        *a += wv * xv;
                    }
                }
            }
            y_row[ow0..ow0 + LANES].copy_from_slice(&acc);
        });
    }
}

/// Gradient w.r.t. the input, parallel over `(image, channel)` planes.
///
/// At stride 1 with a square kernel and `p <= d*(k-1)` (every DARTS stride-1 depthwise conv) it
/// is the forward op on `dy` with the flipped kernel and padding `d*(k-1) - p`. Otherwise every
/// `dy` row is scattered through each tap into a padded buffer
/// (`dxp[oh*s + kh*d, ow*s + kw*d] += w[kh, kw] * dy[oh, ow]`, contiguous in `ow`), which is then
/// cropped into `dx`.
pub(super) fn bwd_data<T: Real>(g: &Conv2dGeom, dy: &[T], w: &[T], dx: &mut [T]) {
    let (hw, kk) = (g.h * g.w, g.kh * g.kw);
    let span = g.dilation * (g.kh - 1);
    if g.stride == 1 && g.kh == g.kw && g.pad <= span {
        let gt = Conv2dGeom { h: g.out_h(), w: g.out_w(), pad: span - g.pad, ..*g };
        debug_assert_eq!((gt.out_h(), gt.out_w()), (g.h, g.w));
        // w_flip[c, i, j] = w[c, k-1-i, k-1-j]: reversing a channel's kk taps flips both axes.
        let mut w_flip = w.to_vec();
        for w_c in w_flip.chunks_exact_mut(kk) {
            w_c.reverse();
        }
        fwd(&gt, dy, &w_flip, dx);
        return;
    }
    let padded = Padded::new(g);
    let (s, d, out_w) = (g.stride, g.dilation, g.out_w());
    let p = g.out_h() * out_w;
    dx.par_chunks_mut(hw).enumerate().for_each_init(
        || vec![T::ZERO; padded.len()],
        |dxp, (nc, dx_c)| {
            let c = nc % g.c_in;
            let w_c = &w[c * kk..][..kk];
            dxp.fill(T::ZERO);
            for (oh, dy_row) in dy[nc * p..][..p].chunks_exact(out_w).enumerate() {
                for kh in 0..g.kh {
                    for (kw, &wv) in w_c[kh * g.kw..][..g.kw].iter().enumerate() {
                        let dst = &mut dxp[padded.tap(oh * s + kh * d, kw, 0)..][..out_w];
                        for (t, &v) in dst.iter_mut().zip(dy_row) {
                            *t += wv * v;
                        }
                    }
                }
            }
            padded.crop(dxp, dx_c);
        },
    );
}

/// Gradient w.r.t. the weight, parallel over channels: each channel's `kh*kw` taps are summed
/// over the whole batch by one job, images in order, so the result is thread-count independent.
///
/// Each tap keeps independent running sums ([`LaneSums`]) held in registers over a whole plane,
/// `sums[i] += dy[n, c, oh, ow] * xp[oh*s + kh*d, ow*s + kw*d]` for `ow` at offset `i` of a run of
/// output columns; they are added up once at the end.
pub(super) fn bwd_weight<T: Real>(g: &Conv2dGeom, x: &[T], dy: &[T], dw: &mut [T]) {
    bwd_weight_pre(g, x, dy, dw, |_, v| v);
}

/// Weight gradient with input `pre(c, x)`, applied as each plane is loaded (as [`fwd_pre`]).
pub(super) fn bwd_weight_pre<T: Real>(
    g: &Conv2dGeom,
    x: &[T],
    dy: &[T],
    dw: &mut [T],
    pre: impl Fn(usize, T) -> T + Sync,
) {
    let padded = Padded::new(g);
    let (hw, p, kk) = (g.h * g.w, g.out_h() * g.out_w(), g.kh * g.kw);
    dw.par_chunks_mut(kk).enumerate().for_each(|(c, dw_c)| {
        let mut xp = vec![T::ZERO; padded.len()];
        let mut sums = vec![LaneSums::default(); kk];
        for n in 0..g.n {
            let nc = n * g.c_in + c;
            padded.load(&x[nc * hw..][..hw], &mut xp, |v| pre(c, v));
            let dy_c = &dy[nc * p..][..p];
            // A literal stride of 1 lets the inlined copy fold the stride arithmetic away.
            if g.stride == 1 {
                wgrad_plane(g, &padded, &xp, dy_c, &mut sums, 1);
            } else {
                wgrad_plane(g, &padded, &xp, dy_c, &mut sums, g.stride);
            }
        }
        for (dw_tap, tap_sums) in dw_c.iter_mut().zip(&sums) {
            *dw_tap = tap_sums.total();
        }
    });
}

/// Running sums of one tap's products: 32 lanes for runs of 32 output columns, 8 for runs of 8,
/// and one for the rest. Separate arrays (rather than prefixes of one) keep each run's lanes in
/// their own registers.
#[derive(Clone, Copy)]
struct LaneSums<T> {
    wide: [T; 32],
    narrow: [T; 8],
    tail: T,
}

impl<T: Real> Default for LaneSums<T> {
    fn default() -> Self {
        LaneSums { wide: [T::ZERO; 32], narrow: [T::ZERO; 8], tail: T::ZERO }
    }
}

impl<T: Real> LaneSums<T> {
    /// All lanes added up, in a fixed order.
    fn total(&self) -> T {
        let wide: T = self.wide.iter().copied().sum();
        let narrow: T = self.narrow.iter().copied().sum();
        wide + narrow + self.tail
    }
}

/// `sums[i] += a[i] * b[i]`.
#[inline(always)]
fn mul_acc<T: Real, const L: usize>(sums: &mut [T; L], a: &[T], b: &[T]) {
    for ((acc, &av), &bv) in sums.iter_mut().zip(&a[..L]).zip(&b[..L]) {
        *acc += av * bv;
    }
}

/// Adds one plane's contribution to every tap's lane sums.
#[inline(always)]
fn wgrad_plane<T: Real>(
    g: &Conv2dGeom,
    padded: &Padded,
    xp: &[T],
    dy_c: &[T],
    sums: &mut [LaneSums<T>],
    s: usize,
) {
    let (d, out_w) = (g.dilation, g.out_w());
    for kh in 0..g.kh {
        for kw in 0..g.kw {
            let mut tap = sums[kh * g.kw + kw];
            for (oh, dy_row) in dy_c.chunks_exact(out_w).enumerate() {
                // Padded input (oh*s + kh*d, ow*s + kw*d) for ow = 0, 1, ..., contiguous.
                let xs = &xp[padded.tap(oh * s + kh * d, kw, 0)..][..out_w];
                let mut ow0 = 0;
                while ow0 + 32 <= out_w {
                    mul_acc(&mut tap.wide, &dy_row[ow0..], &xs[ow0..]);
                    ow0 += 32;
                }
                while ow0 + 8 <= out_w {
                    mul_acc(&mut tap.narrow, &dy_row[ow0..], &xs[ow0..]);
                    ow0 += 8;
                }
                for (&dv, &xv) in dy_row[ow0..].iter().zip(&xs[ow0..]) {
                    tap.tail += dv * xv;
                }
            }
            sums[kh * g.kw + kw] = tap;
        }
    }
}
