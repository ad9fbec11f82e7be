//! GPU half of the edge's conv candidates: each stage of all candidates in shared launches
//! (slotted depthwise and pointwise kernels, one launch for every slot), the inner BN statistics
//! of all sep convs in one `mixed_stats_f32` launch, the stacked output's parts written in place
//! through buffer views.

use super::{CandWeights, ConvsGrads, ConvsNeed, ConvsSaved, Geoms};
use crate::autograd::functions::BnState;
use crate::backend::geom::Conv2dGeom;
use crate::backend::gpu::launch::batchnorm::{self as gbn, BnBwdSlot};
use crate::backend::gpu::launch::depthwise::{self as gdw, DwSlot};
use crate::backend::gpu::launch::{conv as gconv, elementwise as gel, sepconv as gsep};
use crate::backend::gpu::{Gpu, GpuBuf, GpuView, GpuViewMut};
use crate::fused::mixed::gpu::{self as mixed_gpu, MixedFwd};
use crate::fused::mixed::TileStats;
use crate::fused::mixed::K;
use crate::ops::buf;
use crate::ops::norm::bn_geom;
use crate::tensor::{gpu_ok, Tensor};

type Fwd = (Tensor, Option<Tensor>, Option<Tensor>, Option<Tensor>, Option<TileStats>);

fn alloc(rt: &Gpu, n: usize, len: usize) -> Vec<GpuBuf> {
    (0..n).map(|_| gpu_ok(GpuBuf::alloc(rt, len))).collect()
}

fn refs(v: &[GpuBuf]) -> Vec<&GpuBuf> {
    v.iter().collect()
}

fn muts(v: &mut [GpuBuf]) -> Vec<&mut GpuBuf> {
    v.iter_mut().collect()
}

fn parts(b: &GpuBuf, n: usize) -> Vec<GpuView<'_>> {
    (0..n).map(|i| b.part(i, n)).collect()
}

/// Indices of the sep convs (the candidates with a stage 2).
fn seps(cands: &[CandWeights]) -> Vec<usize> {
    (0..cands.len()).filter(|&i| cands[i].stage2.is_some()).collect()
}

fn stage2(c: &CandWeights) -> (&Tensor, &Tensor) {
    let (dw2, pw2, _) = c.stage2.as_ref().expect("a sep conv");
    (dw2, pw2)
}

/// Stage 1's depthwise slots: ReLU on load of the edge's input, every candidate.
fn stage1_slots<'a>(geoms: &[Geoms], x: &'a GpuBuf) -> Vec<DwSlot<'a>> {
    geoms.iter().map(|g| DwSlot { g: g.g1, x, norm: None }).collect()
}

/// Stage 2's depthwise slots: the sep convs' z1 parts, normalised with their (μ, rstd) parts
/// and ReLU on load.
fn stage2_slots<'a>(
    geoms: &[Geoms],
    sep: &[usize],
    z1: &'a [GpuView],
    mean: &'a [GpuView],
    rstd: &'a [GpuView],
) -> Vec<DwSlot<'a>> {
    sep.iter()
        .enumerate()
        .map(|(k, &i)| DwSlot {
            g: geoms[i].g2.expect("stage 2"),
            x: &z1[k],
            norm: Some((&mean[k], &rstd[k])),
        })
        .collect()
}

/// The stacked output, for the sep convs z1, μ and rstd stacked, and in training (up to
/// [`gsep::MAX_C`] channels) the output's per-tile BN partials for the mixed op's statistics.
pub fn forward(
    rt: &Gpu,
    x: &Tensor,
    cands: &[CandWeights],
    geoms: &[Geoms],
    bns: &mut [&mut BnState],
    training: bool,
) -> Fwd {
    let gp = geoms[0].gpw;
    let (c, s, s2) = (gp.c_in, cands.len(), bns.len());
    let xb = buf(x);
    let sep = seps(cands);
    // The BN partials come from the one-launch stage's epilogue; eval needs no statistics.
    let tiled = training && on_chip(&gp);
    let plen = gsep::partials_len(gp.n, c, gp.h * gp.w);
    let mut out_parts = tiled.then(|| Tensor::empty_gpu(&[s * plen], rt));
    let mut z1_parts = (tiled && s2 > 0).then(|| Tensor::empty_gpu(&[s2 * plen], rt));

    // Stage 1: ReLU → depthwise → pointwise for every candidate, into z1 (sep convs) or
    // straight into the output's parts (dil convs), with the BN partials beside each.
    let slots1 = stage1_slots(geoms, xb);
    let dw1: Vec<&GpuBuf> = cands.iter().map(|c| buf(&c.dw1)).collect();
    let mut out = Tensor::empty_gpu(&[s * gp.n, c, gp.h, gp.w], rt);
    let mut z1 = (s2 > 0).then(|| Tensor::empty_gpu(&[s2 * gp.n, c, gp.h, gp.w], rt));
    {
        let mut outv = out.gpu_buf_mut().parts_mut(s);
        let mut z1v = z1.as_mut().map(|t| t.gpu_buf_mut().parts_mut(s2)).unwrap_or_default();
        let mut opv = out_parts.as_mut().map(|t| t.gpu_buf_mut().parts_mut(s)).unwrap_or_default();
        let mut zpv = z1_parts.as_mut().map(|t| t.gpu_buf_mut().parts_mut(s2)).unwrap_or_default();
        let mut outs: Vec<Option<&mut GpuViewMut>> = outv.iter_mut().map(Some).collect();
        let mut ops: Vec<Option<&mut GpuViewMut>> = opv.iter_mut().map(Some).collect();
        let (mut z1s, mut zps) = (z1v.iter_mut(), zpv.iter_mut());
        let mut ys: Vec<&mut GpuBuf> = Vec::with_capacity(s);
        let mut ps: Vec<&mut GpuBuf> = Vec::with_capacity(s);
        for (i, cand) in cands.iter().enumerate() {
            let (v, p) = if cand.stage2.is_some() {
                (z1s.next(), zps.next())
            } else {
                (outs[i].take(), ops.get_mut(i).and_then(Option::take))
            };
            ys.push(&mut **v.expect("one destination per candidate"));
            ps.extend(p.map(|p| &mut **p));
        }
        let pw1: Vec<&GpuBuf> = cands.iter().map(|c| buf(&c.pw1)).collect();
        dw_pw(rt, &gp, &slots1, &dw1, &pw1, &mut ys, tiled.then_some(&mut ps[..]));
    }
    let ptile = gsep::tiling(c, gp.h * gp.w).ptile;
    let tiles = |t: Option<Tensor>| t.map(|partials| TileStats { partials, ptile });
    let Some(z1) = z1 else { return (out, None, None, None, tiles(out_parts)) };

    // The sep convs' inner BNs: statistics (merged from stage 1's partials, or the running ones
    // in eval) and the running update of every one of them in one launch.
    let (mut mean, mut rstd) = (Tensor::empty_gpu(&[s2 * c], rt), Tensor::empty_gpu(&[s2 * c], rt));
    let (eps, momentum) = (bns[0].eps, bns[0].momentum);
    assert!(
        bns.iter().all(|b| b.eps == eps && b.momentum == momentum),
        "{}: inner BNs differ in eps/momentum",
        super::OP
    );
    let mut p = MixedFwd {
        n: gp.n as i32,
        c: c as i32,
        hw: (gp.h * gp.w) as i32,
        k: K as i32,
        skip: -1,
        training: training as i32,
        eps: eps as f32,
        momentum: momentum as f32,
        ptile: ptile as i32,
        ..Default::default()
    };
    let z1b = z1.gpu_buf().expect("z1 on the GPU");
    for (k, bn) in bns.iter_mut().enumerate() {
        p.normed |= 1 << k;
        p.z[k] = z1b.part(k, s2).ptr();
        p.part[k] = z1_parts.as_ref().map_or(0, |t| buf(t).part(k, s2).ptr());
        p.mean[k] = mean.gpu_buf_mut().part(k, s2).ptr();
        p.invstd[k] = rstd.gpu_buf_mut().part(k, s2).ptr();
        p.rmean[k] = bn.running_mean.gpu_buf_mut().ptr();
        p.rvar[k] = bn.running_var.gpu_buf_mut().ptr();
    }
    gpu_ok(mixed_gpu::stats_slots(&**rt, &p, s2));
    drop(z1_parts);

    // Stage 2: normalise → ReLU → depthwise → pointwise, into the output's parts.
    {
        let (z1p, mp, rp) = (parts(z1b, s2), parts(buf(&mean), s2), parts(buf(&rstd), s2));
        let slots2 = stage2_slots(geoms, &sep, &z1p, &mp, &rp);
        let dw2: Vec<&GpuBuf> = sep.iter().map(|&i| buf(stage2(&cands[i]).0)).collect();
        let is_sep = |i: &usize| cands[*i].stage2.is_some();
        let mut outv = out.gpu_buf_mut().parts_mut(s);
        let mut ys: Vec<&mut GpuBuf> =
            outv.iter_mut().enumerate().filter(|(i, _)| is_sep(i)).map(|(_, v)| &mut **v).collect();
        let mut opv = out_parts.as_mut().map(|t| t.gpu_buf_mut().parts_mut(s)).unwrap_or_default();
        let mut ps: Vec<&mut GpuBuf> =
            opv.iter_mut().enumerate().filter(|(i, _)| is_sep(i)).map(|(_, v)| &mut **v).collect();
        let pw2: Vec<&GpuBuf> = sep.iter().map(|&i| buf(stage2(&cands[i]).1)).collect();
        dw_pw(rt, &gp, &slots2, &dw2, &pw2, &mut ys, tiled.then_some(&mut ps[..]));
    }
    (out, Some(z1), Some(mean), Some(rstd), tiles(out_parts))
}

/// Whether a stage runs as one launch with the depthwise output on chip (and can gather BN
/// partials): up to [`gsep::MAX_C`] channels, square pointwise.
fn on_chip(gp: &Conv2dGeom) -> bool {
    gp.c_in <= gsep::MAX_C && gp.c_out == gp.c_in
}

/// `y_s = pw(dw(pre_s(x_s)))` for every slot: one launch with the depthwise output on chip
/// (`kernels/sepconv.cu`, also writing each slot's BN partials into `parts`) when [`on_chip`];
/// beyond, the depthwise outputs go through memory (two launches, no partials).
fn dw_pw(
    rt: &Gpu,
    gp: &Conv2dGeom,
    slots: &[DwSlot],
    dws: &[&GpuBuf],
    pws: &[&GpuBuf],
    ys: &mut [&mut GpuBuf],
    parts: Option<&mut [&mut GpuBuf]>,
) {
    if on_chip(gp) {
        gpu_ok(gsep::dw_pw_fwd_slots(slots, dws, pws, ys, parts));
        return;
    }
    assert!(parts.is_none(), "{}: BN partials need the on-chip stage", super::OP);
    let mut d = alloc(rt, slots.len(), gp.x_len());
    gpu_ok(gdw::depthwise_pre_fwd_slots(slots, dws, &mut muts(&mut d)));
    gpu_ok(gconv::pw_fwd_slots(gp, &refs(&d), pws, ys));
}

/// Empty gradient tensors shaped like `ts`, and their buffers.
fn grads_like(rt: &Gpu, ts: &[&Tensor]) -> Vec<Tensor> {
    ts.iter().map(|t| Tensor::empty_gpu(t.shape(), rt)).collect()
}

fn grad_bufs(ts: &mut [Tensor]) -> Vec<&mut GpuBuf> {
    ts.iter_mut().map(|t| t.gpu_buf_mut()).collect()
}

/// The gradients of [`forward`] from the stacked output's.
pub fn backward(rt: &Gpu, sv: &ConvsSaved, geoms: &[Geoms], dout: &Tensor, need: ConvsNeed) -> ConvsGrads {
    let cands = &sv.cands;
    let gp = geoms[0].gpw;
    let (len, c, s) = (gp.x_len(), gp.c_in, cands.len());
    let sep = seps(cands);
    let s2 = sep.len();
    let need_up1 = need.x || need.dw1;
    let need_z1 = need_up1 || need.pw1;
    let mut grads: Vec<Vec<Option<Tensor>>> =
        cands.iter().map(|c| (0..if c.stage2.is_some() { 4 } else { 2 }).map(|_| None).collect()).collect();
    let dparts = parts(buf(dout), s);

    // Stage 2 (sep convs): the output's parts are dz2; produce dz1.
    let mut dz1: Vec<GpuBuf> = Vec::new();
    if s2 > 0 && (need.pw2 || need.dw2 || need_z1) {
        let z1b = buf(sv.z1.as_ref().expect("z1"));
        let (mean, rstd) = (sv.mean.as_ref().expect("mean"), sv.rstd.as_ref().expect("rstd"));
        let (z1p, mp, rp) = (parts(z1b, s2), parts(buf(mean), s2), parts(buf(rstd), s2));
        let slots2 = stage2_slots(geoms, &sep, &z1p, &mp, &rp);
        let dw2t: Vec<&Tensor> = sep.iter().map(|&i| stage2(&cands[i]).0).collect();
        let pw2t: Vec<&Tensor> = sep.iter().map(|&i| stage2(&cands[i]).1).collect();
        let dw2: Vec<&GpuBuf> = dw2t.iter().map(|t| buf(t)).collect();
        let pw2: Vec<&GpuBuf> = pw2t.iter().map(|t| buf(t)).collect();
        let dy2: Vec<&GpuBuf> = sep.iter().map(|&i| &*dparts[i]).collect();
        if need.pw2 {
            let mut d2 = alloc(rt, s2, len);
            gpu_ok(gdw::depthwise_pre_fwd_slots(&slots2, &dw2, &mut muts(&mut d2)));
            let mut g = grads_like(rt, &pw2t);
            gpu_ok(gconv::pw_bwd_weight_slots(&gp, &refs(&d2), &dy2, &mut grad_bufs(&mut g)));
            for (&i, g) in sep.iter().zip(g) {
                grads[i][3] = Some(g);
            }
        }
        if need.dw2 || need_z1 {
            let mut dd2 = alloc(rt, s2, len);
            gpu_ok(gconv::pw_bwd_data_slots(&gp, &dy2, &pw2, &mut muts(&mut dd2)));
            if need.dw2 {
                let mut g = grads_like(rt, &dw2t);
                gpu_ok(gdw::depthwise_pre_bwd_weight_slots(&slots2, &refs(&dd2), &mut grad_bufs(&mut g)));
                for (&i, g) in sep.iter().zip(g) {
                    grads[i][2] = Some(g);
                }
            }
            if need_z1 {
                let mut da = alloc(rt, s2, len);
                gpu_ok(gdw::depthwise_pre_bwd_data_slots(&slots2, &refs(&dd2), &dw2, &mut muts(&mut da)));
                drop(dd2);
                dz1 = alloc(rt, s2, len);
                let bg = bn_geom(super::OP, &[gp.n, c, gp.h, gp.w]);
                if sv.training {
                    let slots: Vec<BnBwdSlot> = (0..s2)
                        .map(|k| BnBwdSlot { x: &z1p[k], dy: &da[k], mean: &mp[k], invstd: &rp[k] })
                        .collect();
                    gpu_ok(gbn::bn_bwd_train_slots(&bg, &slots, &mut muts(&mut dz1)));
                } else {
                    // Eval: constant statistics, dz1 = da · rstd (the saved running variance's).
                    let rv = sv.eval_var.as_ref().expect("eval running variances");
                    for (k, dz) in dz1.iter_mut().enumerate() {
                        let (rm, var) = (&mp[k], buf(&rv[k]));
                        let eps = sv.eps as f32;
                        gpu_ok(gbn::bn_bwd_eval(&bg, &da[k], &z1p[k], rm, var, None, eps, dz, None, None));
                    }
                }
            }
        }
    }

    // Stage 1 (every candidate): dy1 is dz1 (sep) or the output's part (dil).
    let mut dx = None;
    if need_z1 {
        let xb = buf(&sv.x);
        let slots1 = stage1_slots(geoms, xb);
        let mut dz1s = dz1.iter();
        let dy1: Vec<&GpuBuf> = cands
            .iter()
            .enumerate()
            .map(|(i, c)| if c.stage2.is_some() { dz1s.next().expect("dz1") } else { &*dparts[i] })
            .collect();
        let dw1t: Vec<&Tensor> = cands.iter().map(|c| &c.dw1).collect();
        let pw1t: Vec<&Tensor> = cands.iter().map(|c| &c.pw1).collect();
        let dw1: Vec<&GpuBuf> = dw1t.iter().map(|t| buf(t)).collect();
        let pw1: Vec<&GpuBuf> = pw1t.iter().map(|t| buf(t)).collect();
        if need.pw1 {
            let mut d1 = alloc(rt, s, len);
            gpu_ok(gdw::depthwise_pre_fwd_slots(&slots1, &dw1, &mut muts(&mut d1)));
            let mut g = grads_like(rt, &pw1t);
            gpu_ok(gconv::pw_bwd_weight_slots(&gp, &refs(&d1), &dy1, &mut grad_bufs(&mut g)));
            for (gs, g) in grads.iter_mut().zip(g) {
                gs[1] = Some(g);
            }
        }
        if need_up1 {
            let mut dd1 = alloc(rt, s, len);
            gpu_ok(gconv::pw_bwd_data_slots(&gp, &dy1, &pw1, &mut muts(&mut dd1)));
            if need.dw1 {
                let mut g = grads_like(rt, &dw1t);
                gpu_ok(gdw::depthwise_pre_bwd_weight_slots(&slots1, &refs(&dd1), &mut grad_bufs(&mut g)));
                for (gs, g) in grads.iter_mut().zip(g) {
                    gs[0] = Some(g);
                }
            }
            if need.x {
                let mut dxs = alloc(rt, s, sv.x.numel());
                gpu_ok(gdw::depthwise_pre_bwd_data_slots(&slots1, &refs(&dd1), &dw1, &mut muts(&mut dxs)));
                dx = Some(if s == 1 {
                    Tensor::from_gpu(sv.x.shape(), dxs.pop().expect("one slot"))
                } else {
                    let mut t = Tensor::empty_gpu(sv.x.shape(), rt);
                    gpu_ok(gel::add_n(&refs(&dxs), t.gpu_buf_mut()));
                    t
                });
            }
        }
    }
    ConvsGrads { dx, dw: grads }
}
