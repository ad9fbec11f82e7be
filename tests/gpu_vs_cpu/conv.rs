//! Dense and pointwise convolution (`kernels/conv2d.cu`): forward, data and weight gradients
//! against `cpu::conv` in f64. The DARTS search network at batch 2: the 3x3 3->48 stem, every
//! pointwise conv (C -> C in sep/dil convs and the preprocessing C_prev -> C), FactorizedReduce's
//! strided 1x1 convs C -> C/2 on 32x32 and 16x16 and on the shifted 31x31 / 15x15 views; awkward
//! sizes (7x7 and 5x9 images, c_in 3, c_out 5, channel counts off every tile, batch 1, 5x5
//! dilation 2, a non-square kernel, 1x1 with padding, an output with no elements); and one
//! depthwise geometry through the dispatcher.

use darts::backend::cpu;
use darts::backend::geom::Conv2dGeom;
use darts::backend::gpu::launch::conv as gpu;
use darts::backend::gpu::Gpu;
use darts::rng::Rng;

use crate::{nan, normals, up, wide, Outcome};

/// Runs every conv case.
pub fn cases(rt: &Gpu, rng: &mut Rng, out: &mut Vec<Outcome>) {
    // (n, c_in, c_out, (h, w), (kh, kw), stride, pad, dilation)
    type Case = (usize, usize, usize, (usize, usize), (usize, usize), usize, usize, usize);
    let darts: [Case; 18] = [
        // Stem: 3x3, 3 -> 48, pad 1 on 32x32.
        (2, 3, 48, (32, 32), (3, 3), 1, 1, 1),
        // Pointwise C -> C (sep_conv / dil_conv) at C = 16, 32, 64 on 32x32, 16x16, 8x8.
        (2, 16, 16, (32, 32), (1, 1), 1, 0, 1),
        (2, 32, 32, (16, 16), (1, 1), 1, 0, 1),
        (2, 64, 64, (8, 8), (1, 1), 1, 0, 1),
        // Preprocessing ReLUConvBN C_prev -> C.
        (2, 48, 16, (32, 32), (1, 1), 1, 0, 1),
        (2, 64, 16, (32, 32), (1, 1), 1, 0, 1),
        (2, 64, 32, (32, 32), (1, 1), 1, 0, 1),
        (2, 128, 32, (16, 16), (1, 1), 1, 0, 1),
        (2, 128, 64, (16, 16), (1, 1), 1, 0, 1),
        (2, 256, 64, (8, 8), (1, 1), 1, 0, 1),
        // FactorizedReduce: two strided 1x1 convs C_in -> C_out / 2, on x and on x[:, :, 1:, 1:].
        (2, 16, 8, (32, 32), (1, 1), 2, 0, 1),
        (2, 32, 16, (32, 32), (1, 1), 2, 0, 1),
        (2, 32, 16, (31, 31), (1, 1), 2, 0, 1),
        (2, 64, 32, (32, 32), (1, 1), 2, 0, 1),
        (2, 64, 32, (16, 16), (1, 1), 2, 0, 1),
        (2, 64, 32, (15, 15), (1, 1), 2, 0, 1),
        (2, 128, 64, (16, 16), (1, 1), 2, 0, 1),
        (2, 128, 64, (15, 15), (1, 1), 2, 0, 1),
    ];
    let awkward: [Case; 16] = [
        (1, 3, 5, (7, 7), (3, 3), 1, 1, 1),
        (2, 5, 3, (5, 9), (5, 5), 1, 4, 2), // 5x5 dilation 2: span 9 > h
        (1, 5, 5, (9, 7), (5, 5), 2, 4, 2),
        (2, 3, 5, (5, 9), (1, 3), 1, 1, 1), // non-square kernel
        (2, 3, 5, (7, 9), (1, 1), 2, 1, 1), // 1x1 with padding (general path)
        (1, 17, 33, (7, 7), (3, 3), 2, 1, 1),
        (2, 40, 70, (5, 9), (3, 3), 1, 1, 1), // two row tiles, grouped and plain weight tiles
        (1, 3, 5, (7, 7), (1, 1), 1, 0, 1),   // pointwise, 49 pixels (scalar stores)
        (2, 5, 3, (5, 9), (1, 1), 1, 0, 1),
        (1, 33, 17, (7, 7), (1, 1), 1, 0, 1),
        (1, 70, 100, (5, 9), (1, 1), 1, 0, 1), // M = 100: two 64-row tiles
        (1, 7, 5, (7, 7), (1, 1), 2, 0, 1),    // strided pointwise, odd sizes
        (2, 5, 3, (5, 9), (1, 1), 3, 0, 1),
        (2, 3, 4, (7, 7), (3, 3), 2, 0, 1),
        (1, 3, 2, (4, 5), (5, 5), 1, 4, 2),
        (2, 3, 2, (4, 5), (5, 5), 1, 0, 2), // no output: dx and dw are zero
    ];
    for (n, c_in, c_out, (h, w), (kh, kw), stride, pad, dilation) in darts.into_iter().chain(awkward) {
        let g = Conv2dGeom { n, c_in, h, w, c_out, kh, kw, stride, pad, dilation, groups: 1 };
        check(rt, rng, out, &g);
    }
    // Depthwise goes through launch::depthwise.
    let g = Conv2dGeom {
        n: 2,
        c_in: 5,
        h: 7,
        w: 9,
        c_out: 5,
        kh: 3,
        kw: 3,
        stride: 1,
        pad: 2,
        dilation: 2,
        groups: 5,
    };
    check(rt, rng, out, &g);
}

fn check(rt: &Gpu, rng: &mut Rng, out: &mut Vec<Outcome>, g: &Conv2dGeom) {
    let name = format!(
        "n={} {}->{} {}x{} k={}x{} s={} p={} d={} groups={}",
        g.n, g.c_in, g.c_out, g.h, g.w, g.kh, g.kw, g.stride, g.pad, g.dilation, g.groups
    );
    let (x, w, dy) = (normals(rng, g.x_len()), normals(rng, g.w_len()), normals(rng, g.y_len()));
    let (gx, gw, gdy) = (up(rt, &x), up(rt, &w), up(rt, &dy));
    let (wx, ww, wdy) = (wide(&x), wide(&w), wide(&dy));

    let mut y = nan(rt, g.y_len());
    gpu::conv2d_fwd(g, &gx, &gw, &mut y).unwrap();
    let mut want = vec![0.0; g.y_len()];
    cpu::conv::conv2d_fwd(g, &wx, &ww, &mut want);
    out.push(Outcome { name: format!("conv2d_fwd {name}"), gpu: y.to_host().unwrap(), cpu: want });

    let mut dx = nan(rt, g.x_len());
    gpu::conv2d_bwd_data(g, &gdy, &gw, &mut dx).unwrap();
    let mut want = vec![0.0; g.x_len()];
    cpu::conv::conv2d_bwd_data(g, &wdy, &ww, &mut want);
    out.push(Outcome { name: format!("conv2d_bwd_data {name}"), gpu: dx.to_host().unwrap(), cpu: want });

    let mut dw = nan(rt, g.w_len());
    gpu::conv2d_bwd_weight(g, &gx, &gdy, &mut dw).unwrap();
    let mut want = vec![0.0; g.w_len()];
    cpu::conv::conv2d_bwd_weight(g, &wx, &wdy, &mut want);
    out.push(Outcome { name: format!("conv2d_bwd_weight {name}"), gpu: dw.to_host().unwrap(), cpu: want });
}
