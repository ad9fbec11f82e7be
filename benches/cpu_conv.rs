//! CPU conv2d at three DARTS shapes (f32, batch 64): forward, data gradient, weight gradient.
//! The depthwise and pointwise shapes are also timed through the general im2col + GEMM path,
//! to show what the fast paths buy.
//!
//! Run with `cargo bench --bench cpu_conv`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use darts::backend::cpu::conv::{
    conv2d_bwd_data, conv2d_bwd_data_general, conv2d_bwd_weight, conv2d_bwd_weight_general, conv2d_fwd,
    conv2d_fwd_general,
};
use darts::backend::geom::Conv2dGeom;

const BATCH: usize = 64;

fn geom(c_in: usize, c_out: usize, k: usize, pad: usize, groups: usize) -> Conv2dGeom {
    Conv2dGeom { n: BATCH, c_in, h: 32, w: 32, c_out, kh: k, kw: k, stride: 1, pad, dilation: 1, groups }
}

/// Deterministic values in [-1, 1).
fn data(len: usize, seed: u32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(2_654_435_761) | 1;
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            (s >> 8) as f32 / (1u32 << 23) as f32 - 1.0
        })
        .collect()
}

type Op = fn(&Conv2dGeom, &[f32], &[f32], &mut [f32]);

/// Times fwd, bwd_data and bwd_weight of `g` under `name`, through the dispatching entry points
/// and, when `with_general`, through the general path too.
fn bench_shape(c: &mut Criterion, name: &str, g: Conv2dGeom, with_general: bool) {
    let x = data(g.x_len(), 1);
    let w = data(g.w_len(), 2);
    let dy = data(g.y_len(), 3);
    let mut y = vec![0.0f32; g.y_len()];
    let mut dx = vec![0.0f32; g.x_len()];
    let mut dw = vec![0.0f32; g.w_len()];

    let mut variants: Vec<(&str, [Op; 3])> = vec![("", [conv2d_fwd, conv2d_bwd_data, conv2d_bwd_weight])];
    if with_general {
        variants.push(("_general", [conv2d_fwd_general, conv2d_bwd_data_general, conv2d_bwd_weight_general]));
    }

    let mut group = c.benchmark_group(name);
    for (suffix, [fwd, bwd_data, bwd_weight]) in variants {
        group.bench_function(format!("fwd{suffix}"), |b| {
            b.iter(|| fwd(&g, black_box(&x), black_box(&w), black_box(&mut y)))
        });
        group.bench_function(format!("bwd_data{suffix}"), |b| {
            b.iter(|| bwd_data(&g, black_box(&dy), black_box(&w), black_box(&mut dx)))
        });
        group.bench_function(format!("bwd_weight{suffix}"), |b| {
            b.iter(|| bwd_weight(&g, black_box(&x), black_box(&dy), black_box(&mut dw)))
        });
    }
    group.finish();
}

fn conv_benches(c: &mut Criterion) {
    // The search network's stem: 3x3, 3 -> 48 channels (3 * C with C = 16), general path.
    bench_shape(c, "stem_3x3_c3to48_32x32_n64", geom(3, 48, 3, 1, 1), false);
    // The 1x1 of a separable conv / ReLUConvBN preprocessing, C = 16.
    bench_shape(c, "pointwise_1x1_c16_32x32_n64", geom(16, 16, 1, 0, 1), true);
    // The depthwise half of sep_conv_5x5, C = 16.
    bench_shape(c, "depthwise_5x5_c16_32x32_n64", geom(16, 16, 5, 2, 16), true);
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = conv_benches
}
criterion_main!(benches);
