//! The fused depthwise -> pointwise slotted launcher (`dw_pw_fwd_slots`: a DARTS edge's conv
//! candidates, pre-op -> depthwise -> 1x1, one launch with the depthwise output on chip) against
//! the two existing launches (`depthwise_pre_fwd_slots` then `pw_fwd_slots`) on the emulator:
//! relative error <= 1e-6 per slot, bitwise identical under both fiber schedules, one launch.
//! Its BN partials (the statistics epilogue) against each tile's mean and centred sum of squares
//! computed on the host from the output, and the output's bits unchanged by gathering them.
#![cfg(feature = "emu")]

use std::sync::Arc;

use darts::backend::geom::Conv2dGeom;
use darts::backend::gpu::emu::EmuRuntime;
use darts::backend::gpu::launch::conv as pw;
use darts::backend::gpu::launch::depthwise::{self as dw, DwSlot};
use darts::backend::gpu::launch::sepconv;
use darts::backend::gpu::{Gpu, GpuBuf};
use darts::rng::Rng;

/// sep 3x3, sep 5x5, dil 3x3, dil 5x5 (kernel, dilation), padded as DARTS pads them.
const SLOTS: [(usize, usize); 4] = [(3, 1), (5, 1), (3, 2), (5, 2)];

fn geom(n: usize, c: usize, hw: usize, k: usize, s: usize, d: usize) -> Conv2dGeom {
    Conv2dGeom {
        n,
        c_in: c,
        h: hw,
        w: hw,
        c_out: c,
        kh: k,
        kw: k,
        stride: s,
        pad: d * (k - 1) / 2,
        dilation: d,
        groups: c,
    }
}

/// The pointwise geometry on the depthwise output of `g`.
fn pw_geom(g: &Conv2dGeom) -> Conv2dGeom {
    Conv2dGeom {
        n: g.n,
        c_in: g.c_in,
        h: g.out_h(),
        w: g.out_w(),
        c_out: g.c_in,
        kh: 1,
        kw: 1,
        stride: 1,
        pad: 0,
        dilation: 1,
        groups: 1,
    }
}

/// Host inputs of one slot: x, dw, pw, and (mean, rstd) when normalised.
struct Host {
    g: Conv2dGeom,
    x: Vec<f32>,
    dw: Vec<f32>,
    pw: Vec<f32>,
    norm: Option<(Vec<f32>, Vec<f32>)>,
}

fn normals(rng: &mut Rng, len: usize) -> Vec<f32> {
    rng.normals(len).iter().map(|&v| v as f32).collect()
}

fn inputs(geoms: &[Conv2dGeom], normed: bool, seed: u64) -> Vec<Host> {
    let mut rng = Rng::new(seed);
    geoms
        .iter()
        .map(|&g| {
            let c = g.c_in;
            let norm = normed.then(|| {
                let mean = normals(&mut rng, c);
                (mean, rng.uniforms(c, 0.5, 1.5).iter().map(|&v| v as f32).collect())
            });
            Host {
                g,
                x: normals(&mut rng, g.x_len()),
                dw: normals(&mut rng, g.w_len()),
                pw: normals(&mut rng, c * c),
                norm,
            }
        })
        .collect()
}

/// Device copies of one slot's inputs.
struct Dev {
    x: GpuBuf,
    dw: GpuBuf,
    pw: GpuBuf,
    norm: Option<(GpuBuf, GpuBuf)>,
}

fn upload(rt: &Gpu, hs: &[Host]) -> Vec<Dev> {
    let up = |v: &[f32]| GpuBuf::from_host(rt, v).unwrap();
    hs.iter()
        .map(|h| Dev {
            x: up(&h.x),
            dw: up(&h.dw),
            pw: up(&h.pw),
            norm: h.norm.as_ref().map(|(m, r)| (up(m), up(r))),
        })
        .collect()
}

fn dw_slots<'a>(hs: &[Host], ds: &'a [Dev]) -> Vec<DwSlot<'a>> {
    hs.iter()
        .zip(ds)
        .map(|(h, d)| DwSlot { g: h.g, x: &d.x, norm: d.norm.as_ref().map(|(m, r)| (m, r)) })
        .collect()
}

/// The fused launch's outputs, and with `partials` its BN partials per slot (asserting it is one
/// launch).
fn fused(rt: &Gpu, hs: &[Host], label: &str, partials: bool) -> (Vec<Vec<f32>>, Vec<Vec<f32>>) {
    let ds = upload(rt, hs);
    let slots = dw_slots(hs, &ds);
    let nan = |len: usize| GpuBuf::from_host(rt, &vec![f32::NAN; len]).unwrap();
    let mut ys: Vec<GpuBuf> = hs.iter().map(|h| nan(h.g.y_len())).collect();
    let g = hs[0].g;
    let plen = sepconv::partials_len(g.n, g.c_in, g.out_h() * g.out_w());
    let mut ps: Vec<GpuBuf> = if partials { hs.iter().map(|_| nan(plen)).collect() } else { Vec::new() };
    let before = rt.counts();
    let mut pv: Vec<&mut GpuBuf> = ps.iter_mut().collect();
    sepconv::dw_pw_fwd_slots(
        &slots,
        &ds.iter().map(|d| &d.dw).collect::<Vec<_>>(),
        &ds.iter().map(|d| &d.pw).collect::<Vec<_>>(),
        &mut ys.iter_mut().collect::<Vec<_>>(),
        partials.then_some(&mut pv[..]),
    )
    .unwrap();
    assert_eq!(rt.counts().since(&before).launches, 1, "{label}: fused launches");
    let host = |b: &[GpuBuf]| b.iter().map(|y| y.to_host().unwrap()).collect();
    (host(&ys), host(&ps))
}

/// Each tile's (mean, M2) of `y` `[n, c, ohw]` in f64, laid out as the kernel's partials.
fn host_partials(y: &[f32], n: usize, c: usize, ohw: usize) -> Vec<f32> {
    let t = sepconv::tiling(c, ohw);
    let nb = n * t.tiles;
    let mut out = vec![0.0f32; 2 * c * nb];
    for img in 0..n {
        for tile in 0..t.tiles {
            let b = img * t.tiles + tile;
            for co in 0..c {
                let plane = &y[(img * c + co) * ohw..][..ohw];
                let px = &plane[tile * t.ptile..ohw.min((tile + 1) * t.ptile)];
                let mean = px.iter().map(|&v| v as f64).sum::<f64>() / px.len() as f64;
                let m2: f64 = px.iter().map(|&v| (v as f64 - mean).powi(2)).sum();
                out[co * nb + b] = mean as f32;
                out[(c + co) * nb + b] = m2 as f32;
            }
        }
    }
    out
}

/// The two existing launches: depthwise into global memory, then the slotted pointwise GEMM.
fn two_launches(rt: &Gpu, hs: &[Host]) -> Vec<Vec<f32>> {
    let ds = upload(rt, hs);
    let slots = dw_slots(hs, &ds);
    let mut d: Vec<GpuBuf> = hs.iter().map(|h| GpuBuf::alloc(rt, h.g.y_len()).unwrap()).collect();
    dw::depthwise_pre_fwd_slots(
        &slots,
        &ds.iter().map(|d| &d.dw).collect::<Vec<_>>(),
        &mut d.iter_mut().collect::<Vec<_>>(),
    )
    .unwrap();
    let mut ys: Vec<GpuBuf> = hs.iter().map(|h| GpuBuf::alloc(rt, h.g.y_len()).unwrap()).collect();
    pw::pw_fwd_slots(
        &pw_geom(&hs[0].g),
        &d.iter().collect::<Vec<_>>(),
        &ds.iter().map(|d| &d.pw).collect::<Vec<_>>(),
        &mut ys.iter_mut().collect::<Vec<_>>(),
    )
    .unwrap();
    ys.iter().map(|y| y.to_host().unwrap()).collect()
}

fn rel_err(a: &[f32], b: &[f32]) -> f64 {
    let (mut num, mut den) = (0.0f64, 0.0f64);
    for (&x, &y) in a.iter().zip(b) {
        num += (x as f64 - y as f64).powi(2);
        den += (y as f64).powi(2);
    }
    (num / den.max(f64::MIN_POSITIVE)).sqrt()
}

fn check(rts: &[Gpu; 2], geoms: &[Conv2dGeom], normed: bool, label: &str) {
    let seed = geoms.iter().map(|g| g.n * 1000 + g.c_in * 100 + g.h * 10 + g.kh + g.dilation).sum::<usize>();
    let hs = inputs(geoms, normed, seed as u64 + normed as u64);
    let (got, parts) = fused(&rts[0], &hs, label, true);
    let (other, other_parts) = fused(&rts[1], &hs, label, true);
    let (plain, _) = fused(&rts[0], &hs, label, false);
    let want = two_launches(&rts[0], &hs);
    let g0 = hs[0].g;
    let ohw = g0.out_h() * g0.out_w();
    for (i, ((p, o), y)) in parts.iter().zip(&other_parts).zip(&got).enumerate() {
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<u32>>();
        assert!(bits(p) == bits(o), "{label}: slot {i}'s partials differ between the two schedules");
        assert!(bits(y) == bits(&plain[i]), "{label}: slot {i}'s output changes when partials are gathered");
        let want = host_partials(y, g0.n, g0.c_in, ohw);
        let nb = want.len() / 2;
        let (em, eq) = (rel_err(&p[..nb], &want[..nb]), rel_err(&p[nb..], &want[nb..]));
        assert!(em <= 1e-6 && eq <= 1e-5, "{label}: slot {i} partials: mean error {em:e}, M2 error {eq:e}");
    }
    for (i, ((g, o), w)) in got.iter().zip(&other).zip(&want).enumerate() {
        assert!(
            g.iter().all(|v| v.is_finite()),
            "{label}: slot {i} has a non-finite output (an unwritten element?)"
        );
        let gb: Vec<u32> = g.iter().map(|v| v.to_bits()).collect();
        let ob: Vec<u32> = o.iter().map(|v| v.to_bits()).collect();
        assert!(gb == ob, "{label}: slot {i} differs between the two schedules");
        let e = rel_err(g, w);
        assert!(e <= 1e-6, "{label}: slot {i} relative error {e:e} against the two launches");
    }
}

fn runtimes() -> [Gpu; 2] {
    [Arc::new(EmuRuntime::new(0, 0)), Arc::new(EmuRuntime::new(1, 0))]
}

#[test]
fn fused_slots_match_the_two_launches() {
    let rts = runtimes();
    for (n, c, hw) in [(2, 3, 7), (2, 5, 9), (2, 16, 16), (2, 64, 8), (1, 32, 16)] {
        for s in [1, 2] {
            for normed in [false, true] {
                let geoms: Vec<Conv2dGeom> = SLOTS.iter().map(|&(k, d)| geom(n, c, hw, k, s, d)).collect();
                check(&rts, &geoms, normed, &format!("n{n} c{c} hw{hw} s{s} norm {normed}"));
            }
        }
    }
}

#[test]
fn darts_search_shapes_and_fewer_slots_match_too() {
    let rts = runtimes();
    // c = 16 at 32x32 (several pixel tiles per image), one and two slots.
    for nslots in [1, 2] {
        let geoms: Vec<Conv2dGeom> = SLOTS[..nslots].iter().map(|&(k, d)| geom(1, 16, 32, k, 1, d)).collect();
        check(&rts, &geoms, nslots == 2, &format!("n1 c16 hw32 slots {nslots}"));
    }
    // c = 32 at 13x13: two tiles per image, the second partial (41 of 128 pixels).
    assert_eq!(sepconv::tiling(32, 169), sepconv::Tiling { ptile: 128, tiles: 2 });
    let geoms: Vec<Conv2dGeom> = SLOTS.iter().map(|&(k, d)| geom(3, 32, 13, k, 1, d)).collect();
    check(&rts, &geoms, true, "n3 c32 hw13 slots 4");
    // Three slots, odd shape, stride 2; and a generic geometry (k 7, run-time tap loops).
    let geoms: Vec<Conv2dGeom> = SLOTS[..3].iter().map(|&(k, d)| geom(3, 4, 11, k, 2, d)).collect();
    check(&rts, &geoms, true, "n3 c4 hw11 s2 slots 3");
    check(&rts, &[geom(2, 3, 8, 7, 1, 1), geom(2, 3, 8, 3, 1, 1)], false, "generic k7 + k3");
}

#[test]
#[should_panic(expected = "dw_pw_fwd_slots")]
fn more_than_64_channels_are_refused() {
    let rt: Gpu = Arc::new(EmuRuntime::new(0, 0));
    let g = geom(1, 65, 4, 3, 1, 1);
    let x = GpuBuf::alloc(&rt, g.x_len()).unwrap();
    let w = GpuBuf::alloc(&rt, g.w_len()).unwrap();
    let p = GpuBuf::alloc(&rt, 65 * 65).unwrap();
    let mut y = GpuBuf::alloc(&rt, g.y_len()).unwrap();
    let _ = sepconv::dw_pw_fwd_slots(&[DwSlot { g, x: &x, norm: None }], &[&w], &[&p], &mut [&mut y], None);
}

#[test]
#[should_panic(expected = "dw_pw_fwd_slots")]
fn a_wrong_pointwise_weight_is_refused() {
    let rt: Gpu = Arc::new(EmuRuntime::new(0, 0));
    let g = geom(1, 4, 6, 3, 1, 1);
    let x = GpuBuf::alloc(&rt, g.x_len()).unwrap();
    let w = GpuBuf::alloc(&rt, g.w_len()).unwrap();
    let p = GpuBuf::alloc(&rt, 4 * 5).unwrap();
    let mut y = GpuBuf::alloc(&rt, g.y_len()).unwrap();
    let _ = sepconv::dw_pw_fwd_slots(&[DwSlot { g, x: &x, norm: None }], &[&w], &[&p], &mut [&mut y], None);
}
