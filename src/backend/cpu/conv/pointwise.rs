//! The pointwise path: a dense 1x1 convolution without padding (groups 1, any stride), which is
//! a matrix product per image once the input is subsampled to the output grid:
//!
//! ```text
//! xs[n, c, oh, ow] = x[n, c, oh*s, ow*s]          (xs = x when s == 1)
//! Y_n  = W * Xs_n          (c_out x P) = (c_out x c_in) (c_in x P),   P = out_h * out_w
//! dXs_n = W^T * dY_n       then dx[n, c, oh*s, ow*s] = dxs[n, c, oh, ow], zero elsewhere
//! dW   = sum_n dY_n * Xs_n^T
//! ```

use rayon::prelude::*;

use super::reduce_over_batch;
use crate::backend::cpu::gemm::{gemm, Trans};
use crate::backend::cpu::real::Real;
use crate::backend::geom::Conv2dGeom;

/// Forward, parallel over images (each job reuses one subsampling buffer when `s > 1`).
pub(super) fn fwd<T: Real>(g: &Conv2dGeom, x: &[T], w: &[T], y: &mut [T]) {
    let p = g.out_h() * g.out_w();
    let (x_img, y_img) = (g.c_in * g.h * g.w, g.c_out * p);
    y.par_chunks_mut(y_img).enumerate().for_each_init(
        || subsample_buffer(g),
        |xs, (n, y_n)| {
            let xs_n = subsampled(g, &x[n * x_img..][..x_img], xs);
            // Y_n (c_out x P) = W (c_out x c_in) * Xs_n (c_in x P)
            gemm(g.c_out, g.c_in, p, T::ONE, w, Trans::No, xs_n, Trans::No, T::ZERO, y_n);
        },
    );
}

/// Gradient w.r.t. the input, parallel over images.
pub(super) fn bwd_data<T: Real>(g: &Conv2dGeom, dy: &[T], w: &[T], dx: &mut [T]) {
    let p = g.out_h() * g.out_w();
    let (x_img, y_img) = (g.c_in * g.h * g.w, g.c_out * p);
    dx.par_chunks_mut(x_img).enumerate().for_each_init(
        || subsample_buffer(g),
        |dxs, (n, dx_n)| {
            let dy_n = &dy[n * y_img..][..y_img];
            if g.stride == 1 {
                // dX_n (c_in x P) = W^T (c_in x c_out) * dY_n (c_out x P), straight into dx.
                gemm(g.c_in, g.c_out, p, T::ONE, w, Trans::Yes, dy_n, Trans::No, T::ZERO, dx_n);
            } else {
                gemm(g.c_in, g.c_out, p, T::ONE, w, Trans::Yes, dy_n, Trans::No, T::ZERO, dxs);
                // Inputs the stride skips get no gradient.
                dx_n.fill(T::ZERO);
                let (out_h, out_w, s) = (g.out_h(), g.out_w(), g.stride);
                for c in 0..g.c_in {
                    let dx_c = &mut dx_n[c * g.h * g.w..][..g.h * g.w];
                    for oh in 0..out_h {
                        let dxs_row = &dxs[(c * out_h + oh) * out_w..][..out_w];
                        let dx_row = &mut dx_c[oh * s * g.w..][..g.w];
                        for (d, &v) in dx_row.iter_mut().step_by(s).zip(dxs_row) {
                            *d = v;
                        }
                    }
                }
            }
        },
    );
}

/// Gradient w.r.t. the weight: `dW = sum_n dY_n * Xs_n^T`, the batch sum partitioned
/// deterministically by [`reduce_over_batch`].
pub(super) fn bwd_weight<T: Real>(g: &Conv2dGeom, x: &[T], dy: &[T], dw: &mut [T]) {
    let p = g.out_h() * g.out_w();
    let (x_img, y_img) = (g.c_in * g.h * g.w, g.c_out * p);
    reduce_over_batch(
        g.n,
        dw,
        || subsample_buffer(g),
        |xs, n, dw_acc| {
            let xs_n = subsampled(g, &x[n * x_img..][..x_img], xs);
            let dy_n = &dy[n * y_img..][..y_img];
            // dW (c_out x c_in) += dY_n (c_out x P) * Xs_n^T (P x c_in)
            gemm(g.c_out, p, g.c_in, T::ONE, dy_n, Trans::No, xs_n, Trans::Yes, T::ONE, dw_acc);
        },
    );
}

/// Scratch for one subsampled image (`[c_in, out_h, out_w]`); empty when the stride is 1.
fn subsample_buffer<T: Real>(g: &Conv2dGeom) -> Vec<T> {
    if g.stride == 1 {
        Vec::new()
    } else {
        vec![T::ZERO; g.c_in * g.out_h() * g.out_w()]
    }
}

/// The image `x_n` on the output grid: `x_n` itself when the stride is 1, else
/// `xs[c, oh, ow] = x_n[c, oh*s, ow*s]` gathered into `buf`.
fn subsampled<'a, T: Real>(g: &Conv2dGeom, x_n: &'a [T], buf: &'a mut [T]) -> &'a [T] {
    if g.stride == 1 {
        return x_n;
    }
    let (out_h, out_w, s) = (g.out_h(), g.out_w(), g.stride);
    for c in 0..g.c_in {
        let x_c = &x_n[c * g.h * g.w..][..g.h * g.w];
        for oh in 0..out_h {
            let x_row = &x_c[oh * s * g.w..][..g.w];
            let xs_row = &mut buf[(c * out_h + oh) * out_w..][..out_w];
            for (o, &v) in xs_row.iter_mut().zip(x_row.iter().step_by(s)) {
                *o = v;
            }
        }
    }
    buf
}
