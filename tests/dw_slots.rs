//! The slotted pre-op depthwise launchers (`depthwise_pre_*_slots`: a DARTS edge's four conv
//! candidates in one launch) against the single-slot launchers run slot by slot on the
//! emulator: every output bit for bit, under both fiber schedules, and the launch counts.
#![cfg(feature = "emu")]

use std::sync::Arc;

use darts::backend::geom::Conv2dGeom;
use darts::backend::gpu::emu::EmuRuntime;
use darts::backend::gpu::launch::depthwise::{self as dw, DwSlot};
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

fn upload(rt: &Gpu, rng: &mut Rng, len: usize) -> GpuBuf {
    let v: Vec<f32> = rng.normals(len).iter().map(|&x| x as f32).collect();
    GpuBuf::from_host(rt, &v).unwrap()
}

fn bits(b: &GpuBuf) -> Vec<u32> {
    b.to_host().unwrap().iter().map(|v| v.to_bits()).collect()
}

/// Inputs of one slot: x, w, dy, and (mean, rstd) when normalised.
struct Inputs {
    g: Conv2dGeom,
    x: GpuBuf,
    w: GpuBuf,
    dy: GpuBuf,
    norm: Option<(GpuBuf, GpuBuf)>,
}

fn check(rt: &Gpu, n: usize, c: usize, hw: usize, s: usize, normed: bool, nslots: usize) {
    let label = format!("n{n} c{c} hw{hw} s{s} norm {normed} slots {nslots}");
    let mut rng = Rng::new((n * 1000 + c * 100 + hw * 10 + s) as u64 + normed as u64);
    let ins: Vec<Inputs> = SLOTS[..nslots]
        .iter()
        .map(|&(k, d)| {
            let g = geom(n, c, hw, k, s, d);
            let norm = normed.then(|| {
                let mean = upload(rt, &mut rng, c);
                let rstd: Vec<f32> = rng.uniforms(c, 0.5, 1.5).iter().map(|&v| v as f32).collect();
                (mean, GpuBuf::from_host(rt, &rstd).unwrap())
            });
            Inputs {
                x: upload(rt, &mut rng, g.x_len()),
                w: upload(rt, &mut rng, g.w_len()),
                dy: upload(rt, &mut rng, g.y_len()),
                norm,
                g,
            }
        })
        .collect();
    let slots: Vec<DwSlot> =
        ins.iter().map(|i| DwSlot { g: i.g, x: &i.x, norm: i.norm.as_ref().map(|(m, r)| (m, r)) }).collect();
    let ws: Vec<&GpuBuf> = ins.iter().map(|i| &i.w).collect();
    let dys: Vec<&GpuBuf> = ins.iter().map(|i| &i.dy).collect();
    let alloc = |len: &dyn Fn(&Conv2dGeom) -> usize| -> Vec<GpuBuf> {
        ins.iter().map(|i| GpuBuf::from_host(rt, &vec![f32::NAN; len(&i.g)]).unwrap()).collect()
    };

    // Forward.
    let mut ys = alloc(&|g| g.y_len());
    let before = rt.counts();
    dw::depthwise_pre_fwd_slots(&slots, &ws, &mut ys.iter_mut().collect::<Vec<_>>()).unwrap();
    assert_eq!(rt.counts().since(&before).launches, 1, "{label}: forward launches");
    for (i, (inp, y)) in ins.iter().zip(&ys).enumerate() {
        let mut want = GpuBuf::alloc(rt, inp.g.y_len()).unwrap();
        match &inp.norm {
            Some((m, r)) => dw::depthwise_bnrelu_fwd(&inp.g, &inp.x, m, r, &inp.w, &mut want),
            None => dw::depthwise_relu_fwd(&inp.g, &inp.x, &inp.w, &mut want),
        }
        .unwrap();
        assert!(bits(y) == bits(&want), "{label}: slot {i} forward differs from the single launch");
    }

    // Data gradient.
    let mut dxs = alloc(&|g| g.x_len());
    let before = rt.counts();
    dw::depthwise_pre_bwd_data_slots(&slots, &dys, &ws, &mut dxs.iter_mut().collect::<Vec<_>>()).unwrap();
    assert_eq!(rt.counts().since(&before).launches, 1, "{label}: data-gradient launches");
    for (i, (inp, dx)) in ins.iter().zip(&dxs).enumerate() {
        let mut want = GpuBuf::alloc(rt, inp.g.x_len()).unwrap();
        match &inp.norm {
            Some((m, r)) => dw::depthwise_bnrelu_bwd_data(&inp.g, &inp.x, m, r, &inp.dy, &inp.w, &mut want),
            None => dw::depthwise_relu_bwd_data(&inp.g, &inp.x, &inp.dy, &inp.w, &mut want),
        }
        .unwrap();
        assert!(bits(dx) == bits(&want), "{label}: slot {i} data gradient differs from the single launch");
    }

    // Weight gradient.
    let mut dws = alloc(&|g| g.w_len());
    let before = rt.counts();
    dw::depthwise_pre_bwd_weight_slots(&slots, &dys, &mut dws.iter_mut().collect::<Vec<_>>()).unwrap();
    assert_eq!(rt.counts().since(&before).launches, 2, "{label}: weight-gradient launches");
    for (i, (inp, dwb)) in ins.iter().zip(&dws).enumerate() {
        let mut want = GpuBuf::alloc(rt, inp.g.w_len()).unwrap();
        match &inp.norm {
            Some((m, r)) => dw::depthwise_bnrelu_bwd_weight(&inp.g, &inp.x, m, r, &inp.dy, &mut want),
            None => dw::depthwise_relu_bwd_weight(&inp.g, &inp.x, &inp.dy, &mut want),
        }
        .unwrap();
        assert!(bits(dwb) == bits(&want), "{label}: slot {i} weight gradient differs from the single launch");
    }
}

#[test]
fn slotted_launches_match_the_single_launches_bit_for_bit() {
    for sched in [0, 1] {
        let rt: Gpu = Arc::new(EmuRuntime::new(sched, 0));
        for (n, c, hw) in [(2, 3, 7), (2, 5, 9), (2, 16, 16)] {
            for s in [1, 2] {
                for normed in [false, true] {
                    check(&rt, n, c, hw, s, normed, 4);
                }
            }
        }
    }
}

#[test]
fn fewer_slots_and_a_generic_geometry_match_too() {
    let rt: Gpu = Arc::new(EmuRuntime::new(0, 0));
    for nslots in [1, 2, 3] {
        check(&rt, 3, 4, 11, 2, nslots == 2, nslots);
    }
    // k 7 takes the kernels' generic path; every slot still shares the output size.
    let mut rng = Rng::new(5);
    let gs = [geom(2, 3, 8, 7, 1, 1), geom(2, 3, 8, 3, 1, 1)];
    let xs: Vec<GpuBuf> = gs.iter().map(|g| upload(&rt, &mut rng, g.x_len())).collect();
    let dys: Vec<GpuBuf> = gs.iter().map(|g| upload(&rt, &mut rng, g.y_len())).collect();
    let slots: Vec<DwSlot> = gs.iter().zip(&xs).map(|(g, x)| DwSlot { g: *g, x, norm: None }).collect();
    let mut dws: Vec<GpuBuf> = gs.iter().map(|g| GpuBuf::alloc(&rt, g.w_len()).unwrap()).collect();
    dw::depthwise_pre_bwd_weight_slots(
        &slots,
        &dys.iter().collect::<Vec<_>>(),
        &mut dws.iter_mut().collect::<Vec<_>>(),
    )
    .unwrap();
    for (i, g) in gs.iter().enumerate() {
        let mut want = GpuBuf::alloc(&rt, g.w_len()).unwrap();
        dw::depthwise_relu_bwd_weight(g, &xs[i], &dys[i], &mut want).unwrap();
        assert!(bits(&dws[i]) == bits(&want), "generic slot {i} weight gradient");
    }
}

#[test]
#[should_panic(expected = "depthwise_pre_fwd_slots")]
fn slots_of_different_output_sizes_are_refused() {
    let rt: Gpu = Arc::new(EmuRuntime::new(0, 0));
    let (a, b) = (geom(1, 2, 8, 3, 1, 1), geom(1, 2, 8, 5, 1, 1));
    let b = Conv2dGeom { pad: 1, ..b };
    let x = GpuBuf::alloc(&rt, a.x_len()).unwrap();
    let w = GpuBuf::alloc(&rt, b.w_len()).unwrap();
    let mut y = GpuBuf::alloc(&rt, a.y_len()).unwrap();
    let mut y2 = GpuBuf::alloc(&rt, a.y_len()).unwrap();
    let slots = [DwSlot { g: a, x: &x, norm: None }, DwSlot { g: b, x: &x, norm: None }];
    let _ = dw::depthwise_pre_fwd_slots(&slots, &[&w, &w], &mut [&mut y, &mut y2]);
}
