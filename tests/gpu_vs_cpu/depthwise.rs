//! Depthwise convolution (`kernels/depthwise.cu`): forward, data and weight gradients, plain,
//! ReLU-fused and normalise-ReLU-fused, against `cpu::conv` in f64 (the fused variants against
//! the pre-op then conv, and conv backward then the ReLU mask). Every DARTS (k, dilation, stride) at the search network's real
//! C/H/W with batch 2; awkward sizes (odd and unequal H and W, odd C, batch 1, inputs smaller than
//! the kernel's reach, planes wider and taller than one 32x32 tile); geometries off the
//! register-blocked path (k = 2 and 4, 3x5 filters, stride 3, dilation 3, padding 0 or larger
//! than the reach); an output with no elements; and batches large enough that a weight-gradient
//! block sums several image groups before its reduction.

use darts::backend::cpu;
use darts::backend::geom::Conv2dGeom;
use darts::backend::gpu::launch::depthwise as gpu;
use darts::backend::gpu::Gpu;
use darts::rng::Rng;

use crate::{nan, normals, up, wide, Outcome};

/// Runs every depthwise case.
pub fn cases(rt: &Gpu, rng: &mut Rng, out: &mut Vec<Outcome>) {
    // The DARTS search network at batch 2: C = 16 at 32x32, 32 at 16x16, 64 at 8x8; sep/dil
    // convs k 3 and 5, dilation 1 and 2, stride 1 (normal cells) and 2 (reduction cells),
    // padding d*(k-1)/2.
    for (c, hw) in [(16, 32), (32, 16), (64, 8)] {
        for k in [3, 5] {
            for d in [1, 2] {
                for s in [1, 2] {
                    check(rt, rng, out, geom(2, c, hw, hw, (k, k), s, d * (k - 1) / 2, d));
                }
            }
        }
    }
    // (n, c, h, w, (kh, kw), stride, pad, dilation)
    let awkward = [
        (1, 3, 7, 7, (3, 3), 1, 1, 1),
        (1, 3, 7, 7, (5, 5), 2, 4, 2),
        (2, 5, 5, 9, (3, 3), 1, 2, 2),
        (2, 5, 5, 9, (5, 5), 2, 2, 1),
        (2, 3, 5, 9, (3, 3), 2, 1, 1),
        (1, 5, 9, 5, (5, 5), 1, 4, 2),
        // Input smaller than the kernel's reach: 3x3 under a 5x5 filter of dilation 2 (span 9).
        (2, 3, 3, 3, (5, 5), 1, 4, 2),
        (1, 5, 3, 3, (5, 5), 2, 4, 2),
        (2, 3, 2, 3, (3, 3), 1, 2, 2),
        // Several tiles across and down with partial last tiles; a 1x1 plane.
        (1, 2, 37, 70, (3, 3), 1, 1, 1),
        (1, 2, 37, 70, (5, 5), 2, 4, 2),
        (2, 3, 1, 1, (3, 3), 1, 1, 1),
        // Padding 0 (output smaller than the input) on the register path.
        (2, 3, 9, 11, (3, 3), 1, 0, 1),
        (2, 3, 9, 11, (5, 5), 2, 0, 2),
        // Off the register path: even kernels, rectangular filters, stride 3, dilation 3,
        // padding larger than the reach (the stride-1 data gradient then has negative padding).
        (2, 3, 8, 9, (2, 2), 1, 0, 1),
        (1, 4, 11, 13, (4, 4), 2, 1, 1),
        (2, 3, 10, 7, (3, 5), 1, 1, 1),
        (2, 3, 13, 12, (3, 3), 3, 1, 1),
        (1, 2, 12, 12, (3, 3), 1, 3, 3),
        (2, 3, 6, 7, (3, 3), 1, 3, 1),
        (2, 3, 6, 7, (5, 5), 2, 5, 1),
        (2, 3, 9, 8, (1, 1), 2, 0, 1),
        // No output at all (the window never fits): dx and dw are zero.
        (2, 3, 2, 2, (5, 5), 1, 0, 1),
        // Weight gradient over several image groups per block (iters > 1), a partial last
        // chunk of images, on and off the register path.
        (33, 16, 32, 32, (5, 5), 1, 4, 2),
        (17, 40, 32, 32, (4, 4), 1, 1, 1),
    ];
    for (n, c, h, w, k, s, p, d) in awkward {
        check(rt, rng, out, geom(n, c, h, w, k, s, p, d));
    }
}

#[allow(clippy::too_many_arguments)]
fn geom(
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    k: (usize, usize),
    stride: usize,
    pad: usize,
    dil: usize,
) -> Conv2dGeom {
    Conv2dGeom { n, c_in: c, h, w, c_out: c, kh: k.0, kw: k.1, stride, pad, dilation: dil, groups: c }
}

/// All nine kernels on one geometry.
fn check(rt: &Gpu, rng: &mut Rng, out: &mut Vec<Outcome>, g: Conv2dGeom) {
    let shape = format!(
        "n={} c={} {}x{} k={}x{} s={} p={} d={}",
        g.n, g.c_in, g.h, g.w, g.kh, g.kw, g.stride, g.pad, g.dilation
    );
    let (x, w, dy) = (normals(rng, g.x_len()), normals(rng, g.w_len()), normals(rng, g.y_len()));
    let (gx, gw, gdy) = (up(rt, &x), up(rt, &w), up(rt, &dy));
    let (wx, ww, wdy) = (wide(&x), wide(&w), wide(&dy));
    let mut xr = vec![0.0; wx.len()];
    cpu::elementwise::relu_fwd(&wx, &mut xr);
    let mut push = |name: &str, gpu: Vec<f32>, cpu: Vec<f64>| {
        out.push(Outcome { name: format!("{name} {shape}"), gpu, cpu })
    };

    let mut y = nan(rt, g.y_len());
    gpu::depthwise_fwd(&g, &gx, &gw, &mut y).unwrap();
    let mut want = vec![0.0; g.y_len()];
    cpu::conv::conv2d_fwd(&g, &wx, &ww, &mut want);
    push("depthwise_fwd", y.to_host().unwrap(), want);

    let mut y = nan(rt, g.y_len());
    gpu::depthwise_relu_fwd(&g, &gx, &gw, &mut y).unwrap();
    let mut want = vec![0.0; g.y_len()];
    cpu::conv::conv2d_fwd(&g, &xr, &ww, &mut want);
    push("depthwise_relu_fwd", y.to_host().unwrap(), want);

    let mut dx = nan(rt, g.x_len());
    gpu::depthwise_bwd_data(&g, &gdy, &gw, &mut dx).unwrap();
    let mut want = vec![0.0; g.x_len()];
    cpu::conv::conv2d_bwd_data(&g, &wdy, &ww, &mut want);
    push("depthwise_bwd_data", dx.to_host().unwrap(), want.clone());

    let mut dx = nan(rt, g.x_len());
    gpu::depthwise_relu_bwd_data(&g, &gx, &gdy, &gw, &mut dx).unwrap();
    let mut masked = vec![0.0; g.x_len()];
    cpu::elementwise::relu_bwd(&wx, &want, &mut masked);
    push("depthwise_relu_bwd_data", dx.to_host().unwrap(), masked);

    let mut dw = nan(rt, g.w_len());
    gpu::depthwise_bwd_weight(&g, &gx, &gdy, &mut dw).unwrap();
    let mut want = vec![0.0; g.w_len()];
    cpu::conv::conv2d_bwd_weight(&g, &wx, &wdy, &mut want);
    push("depthwise_bwd_weight", dw.to_host().unwrap(), want);

    let mut dw = nan(rt, g.w_len());
    gpu::depthwise_relu_bwd_weight(&g, &gx, &gdy, &mut dw).unwrap();
    let mut want = vec![0.0; g.w_len()];
    cpu::conv::conv2d_bwd_weight(&g, &xr, &wdy, &mut want);
    push("depthwise_relu_bwd_weight", dw.to_host().unwrap(), want);

    // Normalise then ReLU on load (a fused sep conv's second stage): a = max((x - mean) * rstd, 0)
    // per channel; the data gradient is masked by a > 0 (the BN backward is not the kernel's).
    let mean = normals(rng, g.c_in);
    let rstd: Vec<f32> = rng.uniforms(g.c_in, 0.5, 1.5).iter().map(|&v| v as f32).collect();
    let (gmean, grstd) = (up(rt, &mean), up(rt, &rstd));
    let (wmean, wrstd) = (wide(&mean), wide(&rstd));
    let plane = g.h * g.w;
    let a: Vec<f64> = wx
        .iter()
        .enumerate()
        .map(|(i, &v)| ((v - wmean[(i / plane) % g.c_in]) * wrstd[(i / plane) % g.c_in]).max(0.0))
        .collect();

    let mut y = nan(rt, g.y_len());
    gpu::depthwise_bnrelu_fwd(&g, &gx, &gmean, &grstd, &gw, &mut y).unwrap();
    let mut want = vec![0.0; g.y_len()];
    cpu::conv::conv2d_fwd(&g, &a, &ww, &mut want);
    push("depthwise_bnrelu_fwd", y.to_host().unwrap(), want);

    let mut da = nan(rt, g.x_len());
    gpu::depthwise_bnrelu_bwd_data(&g, &gx, &gmean, &grstd, &gdy, &gw, &mut da).unwrap();
    let mut want = vec![0.0; g.x_len()];
    cpu::conv::conv2d_bwd_data(&g, &wdy, &ww, &mut want);
    let masked: Vec<f64> = want.iter().zip(&a).map(|(&d, &ai)| if ai > 0.0 { d } else { 0.0 }).collect();
    push("depthwise_bnrelu_bwd_data", da.to_host().unwrap(), masked);

    let mut dw = nan(rt, g.w_len());
    gpu::depthwise_bnrelu_bwd_weight(&g, &gx, &gmean, &grstd, &gdy, &mut dw).unwrap();
    let mut want = vec![0.0; g.w_len()];
    cpu::conv::conv2d_bwd_weight(&g, &a, &wdy, &mut want);
    push("depthwise_bnrelu_bwd_weight", dw.to_host().unwrap(), want);
}
