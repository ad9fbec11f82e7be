//! Pooling (`kernels/pool.cu`): max and average pooling forward and backward, alone and as the
//! max + avg pair, against `cpu::pool` in f64, on normal inputs, on small integers (many exact
//! ties: the first maximum in row-major order must win) and on all-negative inputs (padding must
//! never win).

use darts::backend::cpu::pool as cpu;
use darts::backend::geom::Pool2dGeom;
use darts::backend::gpu::launch::pool as gpu;
use darts::backend::gpu::Gpu;
use darts::rng::Rng;

use crate::{nan, normals, up, wide, Outcome};

/// What the input values look like.
#[derive(Clone, Copy, Debug)]
enum Values {
    /// Standard normals.
    Normal,
    /// Integers in -2..=2: windows full of exact ties.
    Ties,
    /// -(|normal| + 0.5): a max over padded zeros would be wrong everywhere on the border.
    Negative,
}

/// `(n, c, h, w, k, stride, pad, values)`.
type Case = (usize, usize, usize, usize, usize, usize, usize, Values);

const CASES: [Case; 22] = [
    // The DARTS search network at batch 2: pools in the 32x32, 16x16 and 8x8 stages, stride 1
    // (normal cells) and 2 (reduction cells).
    (2, 16, 32, 32, 3, 1, 1, Values::Normal),
    (2, 16, 32, 32, 3, 2, 1, Values::Normal),
    (2, 32, 16, 16, 3, 1, 1, Values::Normal),
    (2, 32, 16, 16, 3, 2, 1, Values::Normal),
    (2, 64, 8, 8, 3, 1, 1, Values::Normal),
    (2, 64, 8, 8, 3, 2, 1, Values::Normal),
    (2, 16, 32, 32, 3, 1, 1, Values::Ties),
    (2, 32, 16, 16, 3, 2, 1, Values::Ties),
    (2, 16, 32, 32, 3, 2, 1, Values::Negative),
    // Awkward: odd and unequal H and W, batch 1, C = 3, planes wider than one 32-column tile
    // with a partial last tile, a 1x1 plane.
    (1, 3, 7, 7, 3, 1, 1, Values::Normal),
    (1, 3, 7, 7, 3, 2, 1, Values::Normal),
    (2, 3, 5, 9, 3, 1, 1, Values::Normal),
    (2, 3, 5, 9, 3, 2, 1, Values::Normal),
    (1, 3, 7, 7, 3, 1, 1, Values::Ties),
    (2, 3, 5, 9, 3, 2, 1, Values::Ties),
    (1, 3, 5, 9, 3, 1, 1, Values::Negative),
    (1, 2, 37, 70, 3, 1, 1, Values::Normal),
    (1, 2, 37, 70, 3, 2, 1, Values::Ties),
    (2, 3, 1, 1, 3, 1, 1, Values::Normal),
    // Other geometries: k = 2 without padding, k = 5 with stride 3, k = 3 without padding.
    (2, 3, 9, 5, 2, 2, 0, Values::Ties),
    (1, 2, 11, 13, 5, 3, 2, Values::Normal),
    (1, 2, 6, 7, 3, 1, 0, Values::Ties),
];

fn values(rng: &mut Rng, kind: Values, len: usize) -> Vec<f32> {
    match kind {
        Values::Normal => normals(rng, len),
        Values::Ties => (0..len).map(|_| rng.below(5) as f32 - 2.0).collect(),
        Values::Negative => normals(rng, len).into_iter().map(|v| -(v.abs() + 0.5)).collect(),
    }
}

/// Runs every pooling case.
pub fn cases(rt: &Gpu, rng: &mut Rng, out: &mut Vec<Outcome>) {
    for (n, c, h, w, k, stride, pad, kind) in CASES {
        let g = Pool2dGeom { n, c, h, w, k, stride, pad };
        let x = values(rng, kind, g.x_len());
        let dy = normals(rng, g.y_len());
        let (gx, gdy) = (up(rt, &x), up(rt, &dy));
        let (wx, wdy) = (wide(&x), wide(&dy));
        let tag = format!("{n}x{c}x{h}x{w} k{k} s{stride} p{pad} {kind:?}");

        let mut y = nan(rt, g.y_len());
        gpu::max_pool_fwd(&g, &gx, &mut y).unwrap();
        let mut want = vec![0.0; g.y_len()];
        cpu::max_pool_fwd(&g, &wx, &mut want);
        out.push(Outcome { name: format!("max_pool_fwd {tag}"), gpu: y.to_host().unwrap(), cpu: want });

        let mut dx = nan(rt, g.x_len());
        gpu::max_pool_bwd(&g, &gx, &gdy, &mut dx).unwrap();
        let mut want = vec![0.0; g.x_len()];
        cpu::max_pool_bwd(&g, &wx, &wdy, &mut want);
        out.push(Outcome { name: format!("max_pool_bwd {tag}"), gpu: dx.to_host().unwrap(), cpu: want });

        let mut y = nan(rt, g.y_len());
        gpu::avg_pool_fwd(&g, &gx, &mut y).unwrap();
        let mut want = vec![0.0; g.y_len()];
        cpu::avg_pool_fwd(&g, &wx, &mut want);
        out.push(Outcome { name: format!("avg_pool_fwd {tag}"), gpu: y.to_host().unwrap(), cpu: want });

        let mut dx = nan(rt, g.x_len());
        gpu::avg_pool_bwd(&g, &gdy, &mut dx).unwrap();
        let mut want = vec![0.0; g.x_len()];
        cpu::avg_pool_bwd(&g, &wdy, &mut want);
        out.push(Outcome { name: format!("avg_pool_bwd {tag}"), gpu: dx.to_host().unwrap(), cpu: want });

        // The max + avg pair: both halves at once, and the sum of both input gradients.
        let mut y = nan(rt, 2 * g.y_len());
        gpu::max_avg_pool_fwd(&g, &gx, &mut y).unwrap();
        let mut want = vec![0.0; 2 * g.y_len()];
        let (wmax, wavg) = want.split_at_mut(g.y_len());
        cpu::max_pool_fwd(&g, &wx, wmax);
        cpu::avg_pool_fwd(&g, &wx, wavg);
        out.push(Outcome { name: format!("max_avg_pool_fwd {tag}"), gpu: y.to_host().unwrap(), cpu: want });

        let dy2 = normals(rng, 2 * g.y_len());
        let wdy2 = wide(&dy2);
        let mut dx = nan(rt, g.x_len());
        gpu::max_avg_pool_bwd(&g, &gx, &up(rt, &dy2), &mut dx).unwrap();
        let (mut want, mut wavg) = (vec![0.0; g.x_len()], vec![0.0; g.x_len()]);
        cpu::max_pool_bwd(&g, &wx, &wdy2[..g.y_len()], &mut want);
        cpu::avg_pool_bwd(&g, &wdy2[g.y_len()..], &mut wavg);
        want.iter_mut().zip(&wavg).for_each(|(m, a)| *m += a);
        out.push(Outcome { name: format!("max_avg_pool_bwd {tag}"), gpu: dx.to_host().unwrap(), cpu: want });
    }

    // More planes than the grid's z limit (65535): max_pool_bwd loops over planes.
    let g = Pool2dGeom { n: 1, c: 65_540, h: 1, w: 2, k: 3, stride: 1, pad: 1 };
    let x = normals(rng, g.x_len());
    let dy = normals(rng, g.y_len());
    let mut dx = nan(rt, g.x_len());
    gpu::max_pool_bwd(&g, &up(rt, &x), &up(rt, &dy), &mut dx).unwrap();
    let mut want = vec![0.0; g.x_len()];
    cpu::max_pool_bwd(&g, &wide(&x), &wide(&dy), &mut want);
    out.push(Outcome { name: "max_pool_bwd 65540 planes".into(), gpu: dx.to_host().unwrap(), cpu: want });
}
