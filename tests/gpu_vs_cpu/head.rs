//! The classifier head (`kernels/head.cu`): global average pool, linear layer, softmax
//! cross-entropy (loss, probabilities, gradient; with and without label smoothing) and the top-1
//! count, against `cpu::reduce`, `cpu::linear` and `cpu::loss` in f64. Labels go to the device as f32 class indices.

use darts::backend::cpu;
use darts::backend::gpu::launch::head as gpu;
use darts::backend::gpu::Gpu;
use darts::rng::Rng;

use crate::{nan, normals, up, wide, Outcome};

/// `(n, c, hw)`: the DARTS head input at batch 2 ([2, 256, 8x8]), then awkward shapes (odd hw,
/// batch 1, hw = 1, hw spanning several warp strides).
const GAPS: [(usize, usize, usize); 6] =
    [(2, 256, 64), (1, 3, 49), (2, 5, 45), (3, 7, 1), (1, 2, 1000), (2, 9, 33)];

/// `(n, fin, fout)`: the DARTS classifier 256 -> 10 at batch 2 and 64, then awkward sizes
/// (nothing a multiple of the 16 tile, single rows and columns).
const LINEARS: [(usize, usize, usize); 6] =
    [(2, 256, 10), (64, 256, 10), (1, 7, 3), (5, 33, 17), (3, 1, 1), (20, 40, 35)];

/// `(n, k, logit scale)`: CIFAR-10 at batch 64 and 2, then awkward sizes (k = 1, k > 32 so
/// lanes loop, n > 256 so warps take several rows) and huge logits.
const XENTS: [(usize, usize, f64); 7] =
    [(64, 10, 4.0), (2, 10, 4.0), (1, 1, 1.0), (5, 3, 1.0), (3, 100, 3.0), (300, 10, 2.0), (4, 10, 1000.0)];

/// Label smoothing of the cross-entropy cases: none, the reference's ImageNet 0.1, uniform.
const XENT_SMOOTHING: [f32; 3] = [0.0, 0.1, 1.0];

/// Runs every head case.
pub fn cases(rt: &Gpu, rng: &mut Rng, out: &mut Vec<Outcome>) {
    gap_cases(rt, rng, out);
    linear_cases(rt, rng, out);
    xent_cases(rt, rng, out);
}

fn gap_cases(rt: &Gpu, rng: &mut Rng, out: &mut Vec<Outcome>) {
    for (n, c, hw) in GAPS {
        let x = normals(rng, n * c * hw);
        let mut y = nan(rt, n * c);
        gpu::global_avg_pool_fwd(n, c, hw, &up(rt, &x), &mut y).unwrap();
        let mut want = vec![0.0; n * c];
        cpu::reduce::global_avg_pool_fwd(n, c, hw, &wide(&x), &mut want);
        out.push(Outcome {
            name: format!("global_avg_pool_fwd {n}x{c}x{hw}"),
            gpu: y.to_host().unwrap(),
            cpu: want,
        });

        let dy = normals(rng, n * c);
        let mut dx = nan(rt, n * c * hw);
        gpu::global_avg_pool_bwd(n, c, hw, &up(rt, &dy), &mut dx).unwrap();
        let mut want = vec![0.0; n * c * hw];
        cpu::reduce::global_avg_pool_bwd(n, c, hw, &wide(&dy), &mut want);
        out.push(Outcome {
            name: format!("global_avg_pool_bwd {n}x{c}x{hw}"),
            gpu: dx.to_host().unwrap(),
            cpu: want,
        });
    }
}

fn linear_cases(rt: &Gpu, rng: &mut Rng, out: &mut Vec<Outcome>) {
    for (n, fin, fout) in LINEARS {
        let tag = format!("n={n} {fin}->{fout}");
        let (x, w, b, dy) =
            (normals(rng, n * fin), normals(rng, fout * fin), normals(rng, fout), normals(rng, n * fout));
        let (gx, gw, gb, gdy) = (up(rt, &x), up(rt, &w), up(rt, &b), up(rt, &dy));
        let (wx, ww, wb, wdy) = (wide(&x), wide(&w), wide(&b), wide(&dy));

        for bias in [true, false] {
            let mut y = nan(rt, n * fout);
            gpu::linear_fwd(n, fin, fout, &gx, &gw, bias.then_some(&gb), &mut y).unwrap();
            let mut want = vec![0.0; n * fout];
            cpu::linear::linear_fwd(n, fin, fout, &wx, &ww, bias.then_some(wb.as_slice()), &mut want);
            out.push(Outcome {
                name: format!("linear_fwd bias={bias} {tag}"),
                gpu: y.to_host().unwrap(),
                cpu: want,
            });
        }

        let mut dx = nan(rt, n * fin);
        gpu::linear_bwd_data(n, fin, fout, &gdy, &gw, &mut dx).unwrap();
        let mut want = vec![0.0; n * fin];
        cpu::linear::linear_bwd_data(n, fin, fout, &wdy, &ww, &mut want);
        out.push(Outcome { name: format!("linear_bwd_data {tag}"), gpu: dx.to_host().unwrap(), cpu: want });

        let (mut dw, mut db) = (nan(rt, fout * fin), nan(rt, fout));
        gpu::linear_bwd_weight(n, fin, fout, &gx, &gdy, &mut dw, Some(&mut db)).unwrap();
        let (mut want_w, mut want_b) = (vec![0.0; fout * fin], vec![0.0; fout]);
        cpu::linear::linear_bwd_weight(n, fin, fout, &wx, &wdy, &mut want_w, Some(&mut want_b));
        out.push(Outcome {
            name: format!("linear_bwd_weight dw {tag}"),
            gpu: dw.to_host().unwrap(),
            cpu: want_w.clone(),
        });
        out.push(Outcome {
            name: format!("linear_bwd_weight db {tag}"),
            gpu: db.to_host().unwrap(),
            cpu: want_b,
        });

        // Without the bias gradient: dw alone.
        let mut dw = nan(rt, fout * fin);
        gpu::linear_bwd_weight(n, fin, fout, &gx, &gdy, &mut dw, None).unwrap();
        out.push(Outcome {
            name: format!("linear_bwd_weight dw only {tag}"),
            gpu: dw.to_host().unwrap(),
            cpu: want_w,
        });
    }
}

fn xent_cases(rt: &Gpu, rng: &mut Rng, out: &mut Vec<Outcome>) {
    for (n, k, scale) in XENTS {
        let tag = format!("n={n} k={k} scale={scale}");
        let mut logits: Vec<f32> = rng.normals(n * k).into_iter().map(|v| (scale * v) as f32).collect();
        let mut labels: Vec<u32> = (0..n).map(|_| rng.below(k as u64) as u32).collect();
        // Make the top-1 count non-trivial: every third row's label is its argmax, and every
        // fifth row ties its first two logits (the first must win).
        for i in 0..n {
            let row = &mut logits[i * k..(i + 1) * k];
            if i % 5 == 0 && k > 1 {
                let m = row.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
                row[0] = m;
                row[1] = m;
            }
            if i % 3 == 0 {
                let mut best = 0;
                for j in 1..k {
                    if row[j] > row[best] {
                        best = j;
                    }
                }
                labels[i] = best as u32;
            }
        }
        let glogits = up(rt, &logits);
        let glabels = gpu::upload_labels(rt, &labels).unwrap();
        let wlogits = wide(&logits);

        // No smoothing, the reference's 0.1, and the uniform target (eps = 1).
        for eps in XENT_SMOOTHING {
            let tag = format!("{tag} eps={eps}");
            let (mut probs, mut loss) = (nan(rt, n * k), nan(rt, 1));
            gpu::softmax_xent_fwd(n, k, &glogits, &glabels, eps, &mut probs, &mut loss).unwrap();
            let mut want_p = vec![0.0; n * k];
            let want_loss = cpu::loss::softmax_xent_fwd(n, k, &wlogits, &labels, eps as f64, &mut want_p);
            out.push(Outcome {
                name: format!("softmax_xent_fwd loss {tag}"),
                gpu: loss.to_host().unwrap(),
                cpu: vec![want_loss],
            });
            out.push(Outcome {
                name: format!("softmax_xent_fwd probs {tag}"),
                gpu: probs.to_host().unwrap(),
                cpu: want_p.clone(),
            });

            // The backward from the CPU's probabilities (so it is tested on its own), dloss on the
            // device.
            let dloss = 1.7f32;
            let probs32: Vec<f32> = want_p.iter().map(|&p| p as f32).collect();
            let mut dlogits = nan(rt, n * k);
            gpu::softmax_xent_bwd(n, k, &up(rt, &probs32), &glabels, eps, &up(rt, &[dloss]), &mut dlogits)
                .unwrap();
            let mut want = vec![0.0; n * k];
            cpu::loss::softmax_xent_bwd(n, k, &wide(&probs32), &labels, eps as f64, dloss as f64, &mut want);
            out.push(Outcome {
                name: format!("softmax_xent_bwd {tag}"),
                gpu: dlogits.to_host().unwrap(),
                cpu: want,
            });
        }

        let mut correct = nan(rt, 1);
        gpu::top1_correct(n, k, &glogits, &glabels, &mut correct).unwrap();
        let want = cpu::loss::top1_correct(n, k, &wlogits, &labels) as f64;
        assert!(want > 0.0, "top1 case {tag} must count something");
        out.push(Outcome {
            name: format!("top1_correct {tag}"),
            gpu: correct.to_host().unwrap(),
            cpu: vec![want],
        });
    }
}
