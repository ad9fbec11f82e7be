//! The general path: any kernel, stride, padding, dilation and group count, by im2col + GEMM.
//!
//! For one image and one group `g`, im2col unfolds the group's `Cg` input channels into a
//! matrix `col` of `K = Cg*kh*kw` rows and `P = out_h*out_w` columns:
//!
//! ```text
//! col[(c*kh + i)*kw + j, oh*out_w + ow] = x[g*Cg + c, oh*s - p + i*d, ow*s - p + j*d]   (0 outside)
//! ```
//!
//! so that, with `W_g` the group's `Og x K` block of the weight (rows of the OIHW weight are
//! already laid out `[c, kh, kw]`), and `Y_g`, `dY_g` the group's `Og x P` output planes:
//!
//! ```text
//! Y_g = W_g * col        dcol = W_g^T * dY_g  (then col2im sums dcol back onto dx)
//! dW_g = sum_n dY_g * col^T
//! ```

use rayon::prelude::*;

use super::{axpy_scatter, gather_row, reduce_over_batch, Taps};
use crate::backend::cpu::gemm::{gemm, Trans};
use crate::backend::cpu::real::Real;
use crate::backend::geom::Conv2dGeom;

/// Sizes shared by the three ops.
struct Dims {
    /// Input channels per group.
    cg: usize,
    /// Output channels per group.
    og: usize,
    /// Rows of `col`: `cg * kh * kw`.
    k: usize,
    /// Output pixels per channel: `out_h * out_w`.
    p: usize,
    /// Elements of one input image.
    x_img: usize,
    /// Elements of one output image.
    y_img: usize,
}

impl Dims {
    fn new(g: &Conv2dGeom) -> Dims {
        let (cg, og) = (g.cin_per_group(), g.cout_per_group());
        let p = g.out_h() * g.out_w();
        Dims { cg, og, k: cg * g.kh * g.kw, p, x_img: g.c_in * g.h * g.w, y_img: g.c_out * p }
    }
}

/// Forward, parallel over images; each job reuses one `K x P` im2col buffer.
pub(super) fn fwd<T: Real>(g: &Conv2dGeom, x: &[T], w: &[T], y: &mut [T]) {
    let d = Dims::new(g);
    let taps = Taps::new(g);
    y.par_chunks_mut(d.y_img).enumerate().for_each_init(
        || vec![T::ZERO; d.k * d.p],
        |col, (n, y_n)| {
            let x_n = &x[n * d.x_img..][..d.x_img];
            for grp in 0..g.groups {
                im2col(g, &taps, x_n, grp * d.cg, col);
                let w_g = &w[grp * d.og * d.k..][..d.og * d.k];
                let y_g = &mut y_n[grp * d.og * d.p..][..d.og * d.p];
                // Y_g (og x P) = W_g (og x K) * col (K x P)
                gemm(d.og, d.k, d.p, T::ONE, w_g, Trans::No, col, Trans::No, T::ZERO, y_g);
            }
        },
    );
}

/// Gradient w.r.t. the input, parallel over images: `dcol = W_g^T * dY_g`, then col2im.
pub(super) fn bwd_data<T: Real>(g: &Conv2dGeom, dy: &[T], w: &[T], dx: &mut [T]) {
    let d = Dims::new(g);
    let taps = Taps::new(g);
    dx.par_chunks_mut(d.x_img).enumerate().for_each_init(
        || vec![T::ZERO; d.k * d.p],
        |dcol, (n, dx_n)| {
            dx_n.fill(T::ZERO);
            let dy_n = &dy[n * d.y_img..][..d.y_img];
            for grp in 0..g.groups {
                let w_g = &w[grp * d.og * d.k..][..d.og * d.k];
                let dy_g = &dy_n[grp * d.og * d.p..][..d.og * d.p];
                // dcol (K x P) = W_g^T (K x og) * dY_g (og x P)
                gemm(d.k, d.og, d.p, T::ONE, w_g, Trans::Yes, dy_g, Trans::No, T::ZERO, dcol);
                col2im(g, &taps, dcol, grp * d.cg, dx_n);
            }
        },
    );
}

/// Gradient w.r.t. the weight: `dW_g = sum_n dY_g * col^T`, the batch sum partitioned
/// deterministically by [`reduce_over_batch`].
pub(super) fn bwd_weight<T: Real>(g: &Conv2dGeom, x: &[T], dy: &[T], dw: &mut [T]) {
    let d = Dims::new(g);
    let taps = Taps::new(g);
    reduce_over_batch(
        g.n,
        dw,
        || vec![T::ZERO; d.k * d.p],
        |col, n, dw_acc| {
            let x_n = &x[n * d.x_img..][..d.x_img];
            let dy_n = &dy[n * d.y_img..][..d.y_img];
            for grp in 0..g.groups {
                im2col(g, &taps, x_n, grp * d.cg, col);
                let dy_g = &dy_n[grp * d.og * d.p..][..d.og * d.p];
                let dw_g = &mut dw_acc[grp * d.og * d.k..][..d.og * d.k];
                // dW_g (og x K) += dY_g (og x P) * col^T (P x K)
                gemm(d.og, d.p, d.k, T::ONE, dy_g, Trans::No, col, Trans::Yes, T::ONE, dw_g);
            }
        },
    );
}

/// Unfolds channels `c0 .. c0 + cg` of one image `x_n` (`[c_in, h, w]`) into `col`
/// (`K x P`, see the module comment), writing every entry (zeros where the tap is padding).
fn im2col<T: Real>(g: &Conv2dGeom, taps: &Taps, x_n: &[T], c0: usize, col: &mut [T]) {
    let (cg, hw) = (g.cin_per_group(), g.h * g.w);
    let (out_h, out_w) = (g.out_h(), g.out_w());
    let p = out_h * out_w;
    for c in 0..cg {
        let x_c = &x_n[(c0 + c) * hw..][..hw];
        for (kh, row_tap) in taps.rows.iter().enumerate() {
            for (kw, col_tap) in taps.cols.iter().enumerate() {
                let r = (c * g.kh + kh) * g.kw + kw;
                let col_r = &mut col[r * p..][..p];
                // Output rows whose kernel row kh falls in the vertical padding read zero.
                col_r[..row_tap.outs.start * out_w].fill(T::ZERO);
                col_r[row_tap.outs.end * out_w..].fill(T::ZERO);
                for oh in row_tap.outs.clone() {
                    let ih = row_tap.input(oh);
                    let x_row = &x_c[ih * g.w..][..g.w];
                    let out = &mut col_r[oh * out_w..][..out_w];
                    // Likewise the columns in the horizontal padding.
                    out[..col_tap.outs.start].fill(T::ZERO);
                    out[col_tap.outs.end..].fill(T::ZERO);
                    gather_row(out, x_row, col_tap);
                }
            }
        }
    }
}

/// The adjoint of [`im2col`]: adds every entry of `dcol` (`K x P`) onto the input position it
/// was read from, in channels `c0 .. c0 + cg` of `dx_n` (`[c_in, h, w]`). Padding taps are
/// dropped.
fn col2im<T: Real>(g: &Conv2dGeom, taps: &Taps, dcol: &[T], c0: usize, dx_n: &mut [T]) {
    let (cg, hw) = (g.cin_per_group(), g.h * g.w);
    let out_w = g.out_w();
    let p = g.out_h() * out_w;
    for c in 0..cg {
        let dx_c = &mut dx_n[(c0 + c) * hw..][..hw];
        for (kh, row_tap) in taps.rows.iter().enumerate() {
            for (kw, col_tap) in taps.cols.iter().enumerate() {
                let r = (c * g.kh + kh) * g.kw + kw;
                let dcol_r = &dcol[r * p..][..p];
                for oh in row_tap.outs.clone() {
                    let ih = row_tap.input(oh);
                    let dx_row = &mut dx_c[ih * g.w..][..g.w];
                    axpy_scatter(dx_row, T::ONE, &dcol_r[oh * out_w..][..out_w], col_tap);
                }
            }
        }
    }
}
