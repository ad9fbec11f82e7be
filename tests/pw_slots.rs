//! The slotted launchers (several same-shaped problems per launch: an edge's conv candidates)
//! against the one-slot launchers they replace, on the emulator under both fiber schedules:
//! every slot bitwise equal, in the promised number of launches. Also `add_n` against a chain of
//! `add`s, on the CPU in f64 and on the emulator.
#![cfg(feature = "emu")]

use std::sync::Arc;

use darts::backend::geom::{BnGeom, Conv2dGeom};
use darts::backend::gpu::emu::EmuRuntime;
use darts::backend::gpu::launch::batchnorm::{self as gbn, BnBwdSlot};
use darts::backend::gpu::launch::conv as gconv;
use darts::backend::gpu::{Gpu, GpuBuf, Runtime};
use darts::ops::elementwise::{add, add_n};
use darts::rng::Rng;
use darts::{DType, Device, Tensor};

/// (n, c_in, c_out, h = w): odd sizes (one split), DARTS-ish (split-K in the weight gradient:
/// 4 and 32 splits of the reduction).
const SHAPES: [(usize, usize, usize, usize); 4] =
    [(2, 3, 5, 7), (3, 5, 4, 9), (2, 16, 16, 16), (8, 16, 16, 32)];

fn emu(schedule: i32) -> (Arc<EmuRuntime>, Gpu) {
    let rt = Arc::new(EmuRuntime::new(schedule, 0));
    let g: Gpu = rt.clone();
    (rt, g)
}

fn randbuf(rt: &Gpu, rng: &mut Rng, n: usize) -> GpuBuf {
    let v: Vec<f32> = rng.normals(n).iter().map(|&v| v as f32).collect();
    GpuBuf::from_host(rt, &v).unwrap()
}

fn bits(b: &GpuBuf) -> Vec<u32> {
    b.to_host().unwrap().iter().map(|v| v.to_bits()).collect()
}

fn pw_geom(n: usize, c_in: usize, c_out: usize, hw: usize) -> Conv2dGeom {
    Conv2dGeom { n, c_in, h: hw, w: hw, c_out, kh: 1, kw: 1, stride: 1, pad: 0, dilation: 1, groups: 1 }
}

fn refs(v: &[GpuBuf]) -> Vec<&GpuBuf> {
    v.iter().collect()
}

/// Runs `f` on fresh outputs of `len` for the first `k` slots; returns the outputs and the launches.
fn slotted(
    rt: &Arc<EmuRuntime>,
    g: &Gpu,
    k: usize,
    len: usize,
    f: impl FnOnce(&mut [&mut GpuBuf]),
) -> (Vec<GpuBuf>, u64) {
    let mut outs: Vec<GpuBuf> = (0..k).map(|_| GpuBuf::alloc(g, len).unwrap()).collect();
    let mut views: Vec<&mut GpuBuf> = outs.iter_mut().collect();
    let before = rt.counts();
    f(&mut views);
    (outs, rt.counts().since(&before).launches)
}

#[test]
fn pointwise_slots_match_the_one_slot_launches_bitwise() {
    for schedule in [0, 1] {
        let (rt, g) = emu(schedule);
        let mut rng = Rng::new(11);
        for (n, c_in, c_out, hw) in SHAPES {
            let geo = pw_geom(n, c_in, c_out, hw);
            let xs: Vec<GpuBuf> = (0..4).map(|_| randbuf(&g, &mut rng, geo.x_len())).collect();
            let ws: Vec<GpuBuf> = (0..4).map(|_| randbuf(&g, &mut rng, geo.w_len())).collect();
            let dys: Vec<GpuBuf> = (0..4).map(|_| randbuf(&g, &mut rng, geo.y_len())).collect();
            // The one-slot references, and how many launches a weight gradient takes.
            let mut want = [vec![], vec![], vec![]];
            let mut wgrad_launches = 0;
            for s in 0..4 {
                let mut y = GpuBuf::alloc(&g, geo.y_len()).unwrap();
                gconv::conv2d_fwd(&geo, &xs[s], &ws[s], &mut y).unwrap();
                let mut dx = GpuBuf::alloc(&g, geo.x_len()).unwrap();
                gconv::conv2d_bwd_data(&geo, &dys[s], &ws[s], &mut dx).unwrap();
                let mut dw = GpuBuf::alloc(&g, geo.w_len()).unwrap();
                let before = rt.counts();
                gconv::conv2d_bwd_weight(&geo, &xs[s], &dys[s], &mut dw).unwrap();
                wgrad_launches = rt.counts().since(&before).launches;
                want[0].push(bits(&y));
                want[1].push(bits(&dx));
                want[2].push(bits(&dw));
            }
            let split = hw >= 16;
            assert_eq!(
                wgrad_launches,
                if split { 2 } else { 1 },
                "{geo:?}: split-K expected for the big shapes"
            );
            for k in 1..=4 {
                let ctx = format!("schedule {schedule}, {k} slots, {geo:?}");
                let (xs, ws, dys) = (&refs(&xs)[..k], &refs(&ws)[..k], &refs(&dys)[..k]);
                let (ys, l) =
                    slotted(&rt, &g, k, geo.y_len(), |o| gconv::pw_fwd_slots(&geo, xs, ws, o).unwrap());
                assert_eq!(l, 1, "fwd launches, {ctx}");
                let (dxs, l) =
                    slotted(&rt, &g, k, geo.x_len(), |o| gconv::pw_bwd_data_slots(&geo, dys, ws, o).unwrap());
                assert_eq!(l, 1, "bwd data launches, {ctx}");
                let (dws, l) = slotted(&rt, &g, k, geo.w_len(), |o| {
                    gconv::pw_bwd_weight_slots(&geo, xs, dys, o).unwrap()
                });
                assert_eq!(l, wgrad_launches, "bwd weight launches, {ctx}");
                for s in 0..k {
                    assert!(bits(&ys[s]) == want[0][s], "fwd slot {s} differs, {ctx}");
                    assert!(bits(&dxs[s]) == want[1][s], "bwd data slot {s} differs, {ctx}");
                    assert!(bits(&dws[s]) == want[2][s], "bwd weight slot {s} differs, {ctx}");
                }
            }
        }
    }
}

#[test]
fn bn_backward_slots_match_the_one_slot_launches_bitwise() {
    for schedule in [0, 1] {
        let (rt, g) = emu(schedule);
        let mut rng = Rng::new(5);
        for (n, c, _, hw) in SHAPES {
            let geo = BnGeom { n, c, hw: hw * hw };
            let xs: Vec<GpuBuf> = (0..4).map(|_| randbuf(&g, &mut rng, geo.len())).collect();
            let dys: Vec<GpuBuf> = (0..4).map(|_| randbuf(&g, &mut rng, geo.len())).collect();
            let mut stats = Vec::new();
            let mut want = Vec::new();
            for s in 0..4 {
                let mut y = GpuBuf::alloc(&g, geo.len()).unwrap();
                let (mut mean, mut invstd) = (GpuBuf::alloc(&g, c).unwrap(), GpuBuf::alloc(&g, c).unwrap());
                gbn::bn_fwd_train(&geo, &xs[s], None, None, 1e-5, &mut y, &mut mean, &mut invstd).unwrap();
                let mut dx = GpuBuf::alloc(&g, geo.len()).unwrap();
                gbn::bn_bwd_train(&geo, &xs[s], &dys[s], Some(&mean), &invstd, None, &mut dx, None, None)
                    .unwrap();
                want.push(bits(&dx));
                stats.push((mean, invstd));
            }
            for k in 1..=4 {
                let ctx = format!("schedule {schedule}, {k} slots, {geo:?}");
                let slots: Vec<BnBwdSlot> = (0..k)
                    .map(|s| BnBwdSlot { x: &xs[s], dy: &dys[s], mean: &stats[s].0, invstd: &stats[s].1 })
                    .collect();
                let (dxs, l) =
                    slotted(&rt, &g, k, geo.len(), |o| gbn::bn_bwd_train_slots(&geo, &slots, o).unwrap());
                assert_eq!(l, 2, "launches, {ctx}");
                for s in 0..k {
                    assert!(bits(&dxs[s]) == want[s], "slot {s} differs, {ctx}");
                }
            }
        }
    }
}

#[test]
fn add_n_is_a_chain_of_adds_in_one_launch() {
    let mut rng = Rng::new(3);
    let shape = [3, 5, 7, 11];
    let len: usize = shape.iter().product();
    let xs: Vec<Tensor> = (0..8).map(|_| Tensor::from_f64(&shape, &rng.normals(len), DType::F32)).collect();
    for schedule in [0, 1] {
        let (rt, g) = emu(schedule);
        let dev = Device::Gpu(g.clone());
        for dtype in [DType::F64, DType::F32] {
            for k in 1..=8 {
                // CPU (f64 and f32) and the emulator against the same chain of adds.
                let on_cpu: Vec<Tensor> = xs[..k].iter().map(|t| t.to_dtype(dtype)).collect();
                let inputs: Vec<Tensor> = if dtype == DType::F32 {
                    on_cpu.iter().map(|t| t.to_device(&dev)).collect()
                } else {
                    on_cpu
                };
                let chain = inputs[1..].iter().fold(inputs[0].clone(), |acc, x| add(&acc, x));
                let before = rt.counts();
                let y = add_n(&inputs.iter().collect::<Vec<_>>());
                if dtype == DType::F32 {
                    assert_eq!(rt.counts().since(&before).launches, 1, "{k} inputs");
                }
                let (a, b) = (y.to_f64_vec(), chain.to_f64_vec());
                assert!(
                    a.iter().zip(&b).all(|(a, b)| a.to_bits() == b.to_bits()),
                    "{dtype:?} {k} inputs differ"
                );
                assert_eq!(y.shape(), &shape);
            }
        }
    }
}

#[test]
#[should_panic(expected = "pw_fwd_slots: not a pointwise geometry")]
fn pointwise_slots_reject_a_strided_geometry() {
    let (_, g) = emu(0);
    let geo = Conv2dGeom { stride: 2, ..pw_geom(1, 2, 2, 4) };
    let (x, w) = (GpuBuf::alloc(&g, geo.x_len()).unwrap(), GpuBuf::alloc(&g, geo.w_len()).unwrap());
    let mut y = GpuBuf::alloc(&g, geo.y_len()).unwrap();
    let _ = gconv::pw_fwd_slots(&geo, &[&x], &[&w], &mut [&mut y]);
}

#[test]
#[should_panic(expected = "pw_bwd_weight_slots: 2 / 1 / 2 slots")]
fn pointwise_slots_reject_mismatched_slot_counts() {
    let (_, g) = emu(0);
    let geo = pw_geom(1, 2, 2, 4);
    let x = GpuBuf::alloc(&g, geo.x_len()).unwrap();
    let dy = GpuBuf::alloc(&g, geo.y_len()).unwrap();
    let (mut a, mut b) = (GpuBuf::alloc(&g, geo.w_len()).unwrap(), GpuBuf::alloc(&g, geo.w_len()).unwrap());
    let _ = gconv::pw_bwd_weight_slots(&geo, &[&x, &x], &[&dy], &mut [&mut a, &mut b]);
}
