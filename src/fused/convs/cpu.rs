//! CPU half of the edge's conv candidates: each candidate's stages with the CPU convolutions,
//! writing straight into its part of the stacked output; the pre-ops (ReLU, normalise + ReLU)
//! applied as the depthwise convolution loads each plane, the depthwise outputs transient.

use super::{CandWeights, ConvsGrads, ConvsNeed, ConvsSaved, Geoms};
use crate::autograd::functions::BnState;
use crate::backend::cpu::par::{for_each_chunk_mut, CHUNK};
use crate::backend::cpu::{batchnorm, conv};
use crate::fused::mixed::TileStats;
use crate::fused::mixed::{cpu as mixed_cpu, host_stats_update};
use crate::fused::sepconv::cpu as sep;
use crate::ops::conv::relu;
use crate::ops::norm::bn_geom;
use crate::tensor::{Element, Tensor};

type Fwd = (Tensor, Option<Tensor>, Option<Tensor>, Option<Tensor>, Option<TileStats>);

/// The stacked output, for the sep convs z1, μ and rstd stacked, and in training the output's
/// per-band BN partials (f64) for the mixed op's statistics.
pub fn forward<T: Element>(
    x: &Tensor,
    cands: &[CandWeights],
    geoms: &[Geoms],
    bns: &mut [&mut BnState],
    training: bool,
) -> Fwd {
    let xv = x.data::<T>();
    let gp = geoms[0].gpw;
    let (len, c) = (gp.x_len(), gp.c_in);
    let bg = bn_geom(super::OP, &[gp.n, c, gp.h, gp.w]);
    let s2 = bns.len();
    let mut out = vec![T::ZERO; cands.len() * len];
    let mut z1 = vec![T::ZERO; s2 * len];
    let (mut mean, mut rstd) = (vec![T::ZERO; s2 * c], vec![T::ZERO; s2 * c]);
    // In training every stage gathers its output's BN partials per cache-resident band, so no
    // statistics pass re-reads z1 or the output (`dw_pw_fwd_pre_stats`).
    let (ptile, bands) = conv::dw_pw_bands::<T>(&geoms[0].g1, &gp);
    let plen = 2 * c * gp.n * bands;
    let mut parts = vec![0.0f64; if training { cands.len() * plen } else { 0 }];
    let mut z1_part = vec![0.0f64; if training { plen } else { 0 }];
    let stage = |g_dw,
                 x: &[T],
                 dw: &Tensor,
                 pw: &Tensor,
                 y: &mut [T],
                 st: &mut [f64],
                 pre: &(dyn Fn(usize, T) -> T + Sync)| {
        // Each stage's depthwise output lives only in cache-sized bands.
        let (dw, pw) = (dw.data::<T>(), pw.data::<T>());
        conv::dw_pw_fwd_pre_stats(g_dw, &gp, x, dw, pw, y, pre, training.then_some(st));
    };
    let mut k = 0;
    for (i, ((cand, g), out)) in cands.iter().zip(geoms).zip(out.chunks_mut(len)).enumerate() {
        let part = if training { &mut parts[i * plen..(i + 1) * plen] } else { &mut [][..] };
        let Some((dw2, pw2, _)) = &cand.stage2 else {
            stage(&g.g1, xv, &cand.dw1, &cand.pw1, out, part, &|_, v| relu(v));
            continue;
        };
        let g2 = g.g2.as_ref().expect("stage-2 geometry");
        let z = &mut z1[k * len..(k + 1) * len];
        stage(&g.g1, xv, &cand.dw1, &cand.pw1, z, &mut z1_part, &|_, v| relu(v));
        let (m, r) = (&mut mean[k * c..(k + 1) * c], &mut rstd[k * c..(k + 1) * c]);
        let bn = &mut *bns[k];
        if training {
            host_stats_update(&bg, z, Some((&z1_part, ptile)), bn, m, r);
        } else {
            mixed_cpu::running_stats(bn.running_mean.data::<T>(), bn.running_var.data::<T>(), bn.eps, m, r);
        }
        let (m, r) = (&*m, &*r);
        stage(g2, z, dw2, pw2, out, part, &|ci, v| sep::norm_relu(v, m[ci], r[ci]));
        k += 1;
    }
    let shape = [cands.len() * gp.n, c, gp.h, gp.w];
    let stacked = |v: Vec<T>, rows: usize| (s2 > 0).then(|| Tensor::from_vec(&[rows, c, gp.h, gp.w], v));
    let z1 = stacked(z1, s2 * gp.n);
    let stats = |v: Vec<T>| (s2 > 0).then(|| Tensor::from_vec(&[s2 * c], v));
    let tiles =
        training.then(|| TileStats { partials: Tensor::from_vec(&[cands.len() * plen], parts), ptile });
    (Tensor::from_vec(&shape, out), z1, stats(mean), stats(rstd), tiles)
}

/// The gradients of [`forward`] from the stacked output's.
pub fn backward<T: Element>(s: &ConvsSaved, geoms: &[Geoms], dout: &Tensor, need: ConvsNeed) -> ConvsGrads {
    let xv = s.x.data::<T>();
    let gp = geoms[0].gpw;
    let (len, c) = (gp.x_len(), gp.c_in);
    let bg = bn_geom(super::OP, &[gp.n, c, gp.h, gp.w]);
    let need_up1 = need.x || need.dw1; // stage 1's depthwise input gradient
    let need_z1 = need_up1 || need.pw1;
    let mut dx: Option<Vec<T>> = need.x.then(|| vec![T::ZERO; s.x.numel()]);
    let mut grads = Vec::with_capacity(s.cands.len());
    let mut d = vec![T::ZERO; len];
    let mut dd = vec![T::ZERO; len];
    let mut k = 0;
    for ((cand, g), dy) in s.cands.iter().zip(geoms).zip(dout.data::<T>().chunks(len)) {
        let mut gs: Vec<Option<Tensor>> = Vec::new();
        // Stage 2 (sep convs): dy is dz2; produce dz1.
        let mut dz1 = None;
        let mut g2s = Vec::new();
        if let Some((dw2, pw2, _)) = &cand.stage2 {
            let g2 = g.g2.as_ref().expect("stage-2 geometry");
            let z1 = &s.z1.as_ref().expect("z1").data::<T>()[k * len..(k + 1) * len];
            let m = &s.mean.as_ref().expect("mean").data::<T>()[k * c..(k + 1) * c];
            let r = &s.rstd.as_ref().expect("rstd").data::<T>()[k * c..(k + 1) * c];
            let dpw2 = need.pw2.then(|| {
                sep::bnrelu_dw(g2, z1, m, r, dw2.data::<T>(), &mut d);
                let mut dw = vec![T::ZERO; pw2.numel()];
                conv::conv2d_bwd_weight(&g.gpw, &d, dy, &mut dw);
                Tensor::from_vec(pw2.shape(), dw)
            });
            if need.dw2 || need_z1 {
                conv::conv2d_bwd_data(&g.gpw, dy, pw2.data::<T>(), &mut dd);
            }
            let ddw2 = need.dw2.then(|| {
                let mut dw = vec![T::ZERO; dw2.numel()];
                sep::bnrelu_dw_bwd_weight(g2, z1, m, r, &dd, &mut dw);
                Tensor::from_vec(dw2.shape(), dw)
            });
            if need_z1 {
                let mut da = vec![T::ZERO; len];
                conv::conv2d_bwd_data(g2, &dd, dw2.data::<T>(), &mut da);
                sep::norm_relu_mask(g2, z1, m, r, &mut da);
                let mut dz = vec![T::ZERO; len];
                if s.training {
                    batchnorm::bn_bwd_train(&bg, z1, &da, m, r, None, &mut dz, None, None);
                } else {
                    // Eval: the running statistics are constants (as the GPU path).
                    let rv = s.eval_var.as_ref().expect("eval running variances")[k].data::<T>();
                    let eps = T::from_f64(s.eps);
                    batchnorm::bn_bwd_eval(&bg, &da, z1, m, rv, None, eps, &mut dz, None, None);
                }
                dz1 = Some(dz);
            }
            g2s = vec![ddw2, dpw2];
            k += 1;
        }
        // Stage 1: dy1 is dz1 (sep) or the output's part (dil).
        let dy1: &[T] = dz1.as_deref().unwrap_or(dy);
        let dpw1 = need.pw1.then(|| {
            conv::depthwise_fwd_pre(&g.g1, xv, cand.dw1.data::<T>(), &mut d, |_, v| relu(v));
            let mut dw = vec![T::ZERO; cand.pw1.numel()];
            conv::conv2d_bwd_weight(&g.gpw, &d, dy1, &mut dw);
            Tensor::from_vec(cand.pw1.shape(), dw)
        });
        let mut ddw1 = None;
        if need_up1 {
            conv::conv2d_bwd_data(&g.gpw, dy1, cand.pw1.data::<T>(), &mut dd);
            ddw1 = need.dw1.then(|| {
                let mut dw = vec![T::ZERO; cand.dw1.numel()];
                conv::depthwise_bwd_weight_pre(&g.g1, xv, &dd, &mut dw, |_, v| relu(v));
                Tensor::from_vec(cand.dw1.shape(), dw)
            });
            if let Some(dx) = dx.as_mut() {
                let mut dr = vec![T::ZERO; xv.len()];
                conv::conv2d_bwd_data(&g.g1, &dd, cand.dw1.data::<T>(), &mut dr);
                // The ReLU backward (mask from x) folded into the sum over candidates.
                for_each_chunk_mut(dx, CHUNK, |off, dx| {
                    for ((a, &r), &xi) in dx.iter_mut().zip(&dr[off..]).zip(&xv[off..]) {
                        if xi > T::ZERO {
                            *a += r;
                        }
                    }
                });
            }
        }
        gs.push(ddw1);
        gs.push(dpw1);
        gs.extend(g2s);
        grads.push(gs);
    }
    ConvsGrads { dx: dx.map(|v| Tensor::from_vec(s.x.shape(), v)), dw: grads }
}
