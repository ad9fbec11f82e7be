//! Layout (`kernels/layout.cu`): channel concat and split, crop forward and backward, against
//! `cpu::concat` in f64 (pure copies: the results must be exact).

use darts::backend::cpu::concat as cpu;
use darts::backend::geom::CropGeom;
use darts::backend::gpu::launch::layout as gpu;
use darts::backend::gpu::{Gpu, GpuBuf};
use darts::rng::Rng;

use crate::{nan, normals, up, wide, Outcome};

/// `(n, hw, channels of each part)`.
const CONCATS: [(usize, usize, &[usize]); 9] = [
    // A DARTS cell concatenating its 4 intermediate nodes, batch 2, in each stage.
    (2, 32 * 32, &[16, 16, 16, 16]),
    (2, 16 * 16, &[32, 32, 32, 32]),
    (2, 8 * 8, &[64, 64, 64, 64]),
    // Awkward: odd hw, batch 1, unequal counts, an empty part, one part, more than 8 parts
    // (two launches), exactly 8.
    (1, 5 * 9, &[3, 1, 2]),
    (3, 7 * 7, &[2, 0, 3]),
    (2, 7, &[0, 5]),
    (1, 1, &[3]),
    (3, 7, &[1, 2, 3, 1, 2, 3, 1, 2, 3, 4]),
    (2, 3, &[1, 2, 3, 4, 5, 6, 7, 8]),
];

/// `(n, c, h, w, top, left, oh, ow)`.
type Crop = (usize, usize, usize, usize, usize, usize, usize, usize);

const CROPS: [Crop; 6] = [
    // FactorizedReduce's x[:, :, 1:, 1:] at 32x32 (C = 16) and 16x16 (C = 32), batch 2.
    (2, 16, 32, 32, 1, 1, 31, 31),
    (2, 32, 16, 16, 1, 1, 15, 15),
    // Awkward shapes and windows.
    (1, 3, 7, 7, 1, 1, 6, 6),
    (2, 3, 5, 9, 0, 2, 4, 5),
    (1, 3, 5, 9, 2, 0, 3, 9),
    (3, 1, 1, 1, 0, 0, 1, 1),
];

/// Runs every layout case.
pub fn cases(rt: &Gpu, rng: &mut Rng, out: &mut Vec<Outcome>) {
    for (n, hw, cs) in CONCATS {
        let c_total: usize = cs.iter().sum();
        let tag = format!("n={n} hw={hw} c={cs:?}");
        let parts: Vec<Vec<f32>> = cs.iter().map(|&c| normals(rng, n * c * hw)).collect();
        let gparts: Vec<GpuBuf> = parts.iter().map(|p| up(rt, p)).collect();
        let refs: Vec<(&GpuBuf, usize)> = gparts.iter().zip(cs).map(|(b, &c)| (b, c)).collect();
        let mut y = nan(rt, n * c_total * hw);
        gpu::concat_channels(n, hw, &refs, &mut y).unwrap();
        let wparts: Vec<Vec<f64>> = parts.iter().map(|p| wide(p)).collect();
        let wrefs: Vec<(&[f64], usize)> = wparts.iter().zip(cs).map(|(p, &c)| (p.as_slice(), c)).collect();
        let mut want = vec![0.0; n * c_total * hw];
        cpu::concat_channels(n, hw, &wrefs, &mut want);
        out.push(Outcome { name: format!("concat_channels {tag}"), gpu: y.to_host().unwrap(), cpu: want });

        let yv = normals(rng, n * c_total * hw);
        let mut gsplit: Vec<GpuBuf> = cs.iter().map(|&c| nan(rt, n * c * hw)).collect();
        {
            let mut muts: Vec<(&mut GpuBuf, usize)> =
                gsplit.iter_mut().zip(cs).map(|(b, &c)| (b, c)).collect();
            gpu::split_channels(n, hw, &up(rt, &yv), &mut muts).unwrap();
        }
        let mut wsplit: Vec<Vec<f64>> = cs.iter().map(|&c| vec![0.0; n * c * hw]).collect();
        {
            let mut muts: Vec<(&mut [f64], usize)> =
                wsplit.iter_mut().zip(cs).map(|(p, &c)| (p.as_mut_slice(), c)).collect();
            cpu::split_channels(n, hw, &wide(&yv), &mut muts);
        }
        for (i, (g, w)) in gsplit.iter().zip(wsplit).enumerate() {
            out.push(Outcome {
                name: format!("split_channels[{i}] {tag}"),
                gpu: g.to_host().unwrap(),
                cpu: w,
            });
        }
    }

    for (n, c, h, w, top, left, oh, ow) in CROPS {
        let tag = format!("{n}x{c}x{h}x{w} [{top}+{oh}, {left}+{ow}]");
        let g = CropGeom { n, c, h, w, top, left, oh, ow };
        let x = normals(rng, n * c * h * w);
        let mut y = nan(rt, n * c * oh * ow);
        gpu::crop_fwd(&g, &up(rt, &x), &mut y).unwrap();
        let mut want = vec![0.0; n * c * oh * ow];
        cpu::crop_fwd(&g, &wide(&x), &mut want);
        out.push(Outcome { name: format!("crop_fwd {tag}"), gpu: y.to_host().unwrap(), cpu: want });

        let dy = normals(rng, n * c * oh * ow);
        let mut dx = nan(rt, n * c * h * w);
        gpu::crop_bwd(&g, &up(rt, &dy), &mut dx).unwrap();
        let mut want = vec![0.0; n * c * h * w];
        cpu::crop_bwd(&g, &wide(&dy), &mut want);
        out.push(Outcome { name: format!("crop_bwd {tag}"), gpu: dx.to_host().unwrap(), cpu: want });
    }
}
