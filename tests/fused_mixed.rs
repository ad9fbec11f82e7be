//! The fused mixed op against its unfused composition (BN per candidate, softmax or sigmoid, row,
//! weighted sum, add): in f64 on the CPU within 1e-10, on the emulator against the CPU within
//! 1e-5, and by finite differences; then whole mixed ops and whole networks, fused against
//! unfused. Every edge check runs with DARTS' softmax over 8 α columns and FairDARTS' sigmoid
//! over 7 (no `none`: column k is slot k + 1).

mod common;

use std::sync::Arc;

use common::{gradcheck, randn};
use darts::autograd::check::rel_err;
use darts::autograd::functions::{self as F, BnState};
use darts::autograd::{Groups, ParamId, Tape, Var};
use darts::backend::gpu::emu::EmuRuntime;
use darts::fused::mixed::{mixed_edge, MixedEdge, Normed, Weighting, K};
use darts::model::{Method, NetConfig, Network};
use darts::rng::Rng;
use darts::{DType, Device, Tensor};

/// One edge's operands: α `[rows, 8]` (sigmoid: `[rows, 7]`), x, acc, and the pre-BN outputs of
/// the BN slots.
struct Case {
    alpha: Tensor,
    weighting: Weighting,
    row: usize,
    x: Tensor,
    acc: Option<Tensor>,
    z: Vec<(usize, Tensor)>,
    skip: bool,
}

fn case(seed: u64, shape: &[usize], stride2: bool, with_acc: bool, weighting: Weighting) -> Case {
    let mut rng = Rng::new(seed);
    let rows = 3;
    let cols = if weighting == Weighting::Sigmoid { K - 1 } else { K };
    let alpha = randn(&mut rng, &[rows, cols]);
    let x = randn(&mut rng, shape);
    let acc = with_acc.then(|| randn(&mut rng, shape));
    // Slots 1, 2 (pools), 4-7 (convs); 3 is FactorizedReduce on a stride-2 edge, else identity.
    let slots: Vec<usize> = if stride2 { vec![1, 2, 3, 4, 5, 6, 7] } else { vec![1, 2, 4, 5, 6, 7] };
    // Give the candidates distinct offsets and scales, as real ones have.
    let z = slots
        .into_iter()
        .map(|j| {
            let t = randn(&mut rng, shape);
            let v: Vec<f64> = t.to_f64_vec().iter().map(|v| v * (0.5 + j as f64) + j as f64).collect();
            (j, Tensor::from_f64(shape, &v, DType::F64))
        })
        .collect();
    Case { alpha, weighting, row: 1, x, acc, z, skip: !stride2 }
}

fn on(t: &Tensor, device: &Device, dtype: DType) -> Tensor {
    t.to_dtype(dtype).to_device(device)
}

/// Leaves: α, x, acc, z_j (in this order, each its own id); returns the tape, the leaves and the
/// running statistics of each BN (fresh, with a random starting point).
fn leaves(c: &Case, device: &Device, dtype: DType) -> (Tape, Vec<Var>, Vec<BnState>) {
    let tape = Tape::new();
    let mut vals = vec![c.alpha.clone(), c.x.clone()];
    vals.extend(c.acc.clone());
    vals.extend(c.z.iter().map(|(_, z)| z.clone()));
    let vars = vals
        .iter()
        .enumerate()
        .map(|(i, v)| tape.param(ParamId(i), Groups::ALL, on(v, device, dtype)))
        .collect();
    let ch = c.x.shape()[1];
    let bns =
        c.z.iter()
            .map(|(j, _)| {
                let mut s = BnState::new(ch, dtype);
                s.running_mean = Tensor::full(&[ch], 0.1 * *j as f64, dtype).to_device(device);
                s.running_var = Tensor::full(&[ch], 1.0 + 0.5 * *j as f64, dtype).to_device(device);
                s
            })
            .collect();
    (tape, vars, bns)
}

/// Runs the edge fused or unfused; returns the output, the gradients of every leaf under a
/// random projection, and the running statistics afterwards.
fn run(
    c: &Case,
    device: &Device,
    dtype: DType,
    fused: bool,
    training: bool,
) -> (Vec<f64>, Vec<Vec<f64>>, Vec<f64>) {
    let (tape, v, mut bns) = leaves(c, device, dtype);
    let (alpha, x) = (&v[0], &v[1]);
    let acc = c.acc.as_ref().map(|_| &v[2]);
    let zs = &v[2 + c.acc.is_some() as usize..];
    let y = if fused {
        let normed: Vec<Normed<Var>> =
            c.z.iter().zip(zs).map(|((j, _), z)| Normed::new(vec![*j], z.clone())).collect();
        let mut states: Vec<&mut BnState> = bns.iter_mut().collect();
        let e = MixedEdge {
            alpha,
            weighting: c.weighting,
            row: c.row,
            skip: c.skip.then_some((3, x)),
            normed,
            acc,
            scale: None,
        };
        mixed_edge(e, &mut states, training)
    } else {
        // Sigmoid: the 7 columns weigh slots 1..8, and there is no `none` term.
        let (w, first) = match c.weighting {
            Weighting::Softmax => (F::row(&F::softmax(alpha), c.row), 0),
            Weighting::Sigmoid => (F::row(&F::sigmoid(alpha), c.row), 1),
        };
        let mut terms: Vec<Option<Var>> = vec![None; K];
        for (((j, _), z), bn) in c.z.iter().zip(zs).zip(bns.iter_mut()) {
            terms[*j] = Some(F::batch_norm(z, None, bn, training));
        }
        if c.skip {
            terms[3] = Some(x.clone());
        }
        let zero = F::zero(x, 1);
        let all: Vec<Var> =
            terms.into_iter().skip(first).map(|t| t.unwrap_or_else(|| zero.clone())).collect();
        let s = F::weighted_sum(&all, &w);
        match acc {
            Some(a) => F::add(a, &s),
            None => s,
        }
    };
    let mut rng = Rng::new(99);
    let r = on(&randn(&mut rng, y.shape()), device, dtype);
    let loss = F::inner(&y, &r);
    let grads = tape.backward(&loss, Groups::ALL);
    let g = (0..v.len()).map(|i| grads.get(ParamId(i)).map_or(vec![], |t| t.to_f64_vec())).collect();
    let running =
        bns.iter().flat_map(|b| [b.running_mean.to_f64_vec(), b.running_var.to_f64_vec()].concat()).collect();
    (y.value().to_f64_vec(), g, running)
}

fn compare(
    what: &str,
    a: &(Vec<f64>, Vec<Vec<f64>>, Vec<f64>),
    b: &(Vec<f64>, Vec<Vec<f64>>, Vec<f64>),
    tol: f64,
) {
    let e = rel_err(&a.0, &b.0);
    assert!(e < tol, "{what}: output differs by {e:e}");
    for (i, (ga, gb)) in a.1.iter().zip(&b.1).enumerate() {
        assert_eq!(ga.len(), gb.len(), "{what}: gradient {i} present in one run only");
        let e = rel_err(ga, gb);
        assert!(e < tol, "{what}: gradient of leaf {i} differs by {e:e}");
    }
    let e = rel_err(&a.2, &b.2);
    assert!(e < tol, "{what}: running statistics differ by {e:e}");
}

/// Odd sizes and a DARTS one; [8, 3, 32, 32] splits the GPU backward sums over 4 blocks per
/// channel (`mixed::gpu::bwd_chunks`).
const SHAPES: [&[usize]; 5] =
    [&[2, 3, 7, 7], &[1, 5, 9, 9], &[3, 4, 6, 6], &[2, 16, 32, 32], &[8, 3, 32, 32]];

#[test]
fn the_backward_sums_split_at_the_darts_shapes() {
    use darts::fused::mixed::gpu::bwd_chunks;
    assert_eq!(bwd_chunks(8, 3, 32 * 32), 4);
    // Paper batch: C = 16 at 32x32 gives 16 blocks per channel (256 in all), 64 at 8x8 gives 2.
    assert_eq!((bwd_chunks(64, 16, 1024), bwd_chunks(64, 64, 64)), (16, 2));
}

#[test]
fn fused_edge_matches_the_unfused_composition_in_f64() {
    for (i, shape) in SHAPES.iter().enumerate() {
        for (stride2, with_acc, weighting) in combos() {
            for training in [true, false] {
                {
                    let c = case(10 + i as u64, shape, stride2, with_acc, weighting);
                    let what = format!(
                        "{shape:?} stride2={stride2} acc={with_acc} {weighting:?} training={training}"
                    );
                    let fused = run(&c, &Device::Cpu, DType::F64, true, training);
                    let unfused = run(&c, &Device::Cpu, DType::F64, false, training);
                    compare(&what, &fused, &unfused, 1e-10);
                }
            }
        }
    }
}

/// (stride 2, with an accumulator, weighting) of every edge check.
fn combos() -> Vec<(bool, bool, Weighting)> {
    let mut v = Vec::new();
    for stride2 in [false, true] {
        for with_acc in [false, true] {
            for weighting in [Weighting::Softmax, Weighting::Sigmoid] {
                v.push((stride2, with_acc, weighting));
            }
        }
    }
    v
}

#[test]
fn fused_edge_on_the_emulator_matches_the_cpu() {
    edge_on_device_matches_the_cpu(&Device::Gpu(Arc::new(EmuRuntime::new(0, 0))));
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn fused_edge_and_network_on_cuda_match_the_cpu() {
    let rt = darts::backend::gpu::cuda::CudaRuntime::new(0, true).unwrap_or_else(|e| panic!("{e}"));
    let cuda = Device::Gpu(Arc::new(rt));
    edge_on_device_matches_the_cpu(&cuda);
    network_on_device_matches_the_unfused_cpu(&cuda);
}

/// The fused edge in f32 on `emu` (a GPU runtime) against the CPU in f32.
fn edge_on_device_matches_the_cpu(emu: &Device) {
    let emu = emu.clone();
    for (i, shape) in SHAPES.iter().enumerate() {
        for (stride2, weighting) in combos().into_iter().filter(|c| c.1).map(|c| (c.0, c.2)) {
            for training in [true, false] {
                let c = case(30 + i as u64, shape, stride2, true, weighting);
                let what = format!("emu {shape:?} stride2={stride2} {weighting:?} training={training}");
                let gpu = run(&c, &emu, DType::F32, true, training);
                let cpu = run(&c, &Device::Cpu, DType::F32, true, training);
                compare(&what, &gpu, &cpu, 1e-5);
            }
        }
    }
}

#[test]
fn fused_edge_passes_the_finite_difference_check() {
    let cases = [(false, true), (true, true), (false, false)];
    for ((stride2, training), weighting) in
        cases.iter().flat_map(|&c| [(c, Weighting::Softmax), (c, Weighting::Sigmoid)])
    {
        let c = case(50, &[2, 3, 5, 5], stride2, true, weighting);
        let mut inputs = vec![c.alpha.clone(), c.x.clone(), c.acc.clone().unwrap()];
        inputs.extend(c.z.iter().map(|(_, z)| z.clone()));
        let slots: Vec<usize> = c.z.iter().map(|(j, _)| *j).collect();
        let what = format!("mixed edge stride2={stride2} {weighting:?} training={training}");
        gradcheck(&what, &inputs, 1e-6, |v| {
            let normed: Vec<Normed<Var>> =
                slots.iter().zip(&v[3..]).map(|(j, z)| Normed::new(vec![*j], z.clone())).collect();
            let mut bns: Vec<BnState> = slots.iter().map(|_| BnState::new(3, DType::F64)).collect();
            let mut states: Vec<&mut BnState> = bns.iter_mut().collect();
            let e = MixedEdge {
                alpha: &v[0],
                weighting,
                row: 2,
                skip: (!stride2).then_some((3, &v[1])),
                normed,
                acc: Some(&v[2]),
                scale: None,
            };
            let y = mixed_edge(e, &mut states, training);
            let mut rng = Rng::new(7);
            F::inner(&y, &randn(&mut rng, y.shape()))
        });
    }
}

/// Loss and every parameter's gradient of a small search network, fused or not.
fn network_grads(
    fuse: bool,
    device: &Device,
    dtype: DType,
    hw: usize,
    method: Method,
) -> (f64, Vec<Vec<f64>>, Vec<Vec<f64>>) {
    let mut rng = Rng::new(5);
    let (mut net, mut store) =
        Network::new(NetConfig { channels: 4, layers: 3, classes: 10, method }, dtype, &mut rng);
    net.fuse = fuse;
    if method == Method::FairDarts {
        // Away from FairDARTS' all-zero start, so every σ differs.
        for a in [net.alphas_normal, net.alphas_reduce] {
            let shape = store.params[a.0].value.shape().to_vec();
            store.params[a.0].value = Tensor::from_f64(&shape, &rng.normals(shape.iter().product()), dtype);
        }
    }
    store.to_device(device);
    let x = Tensor::from_f64(&[2, 3, hw, hw], &rng.normals(2 * 3 * hw * hw), dtype).to_device(device);
    let (tape, _, loss) = net.loss(&mut store, &x, &[3, 7], true);
    let grads = tape.backward(&loss, Groups::ALL);
    let g = (0..store.params.len()).map(|i| grads.get(ParamId(i)).expect("gradient").to_f64_vec()).collect();
    let running = store
        .bns
        .iter()
        .flat_map(|b| [b.state.running_mean.to_f64_vec(), b.state.running_var.to_f64_vec()])
        .collect();
    (loss.value().item(), g, running)
}

#[test]
fn fused_network_matches_the_unfused_one_in_f64() {
    for (hw, method) in [(8, Method::Darts), (16, Method::Darts), (8, Method::FairDarts)] {
        let (lf, gf, rf) = network_grads(true, &Device::Cpu, DType::F64, hw, method);
        let (lu, gu, ru) = network_grads(false, &Device::Cpu, DType::F64, hw, method);
        assert!((lf - lu).abs() <= 1e-10 * lu.abs(), "{hw}x{hw}: loss {lf} vs {lu}");
        for (i, (a, b)) in gf.iter().zip(&gu).enumerate() {
            let e = rel_err(a, b);
            assert!(e < 1e-10, "{hw}x{hw}: gradient of parameter {i} differs by {e:e}");
        }
        // Running means of normalised inputs are 0 up to rounding: compare absolutely (the
        // statistics are O(1)).
        let worst = rf.concat().iter().zip(ru.concat()).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        assert!(worst < 1e-12, "{hw}x{hw}: running statistics differ by up to {worst:e}");
    }
}

/// The fused network in f32 on the emulator against the unfused one in f64 on the CPU: the loss,
/// every gradient (norm-wise over the whole network, and per tensor) and the running statistics.
#[test]
fn fused_network_on_the_emulator_matches_the_unfused_cpu_reference() {
    network_on_device_matches_the_unfused_cpu(&Device::Gpu(Arc::new(EmuRuntime::new(0, 0))));
}

fn network_on_device_matches_the_unfused_cpu(emu: &Device) {
    let emu = emu.clone();
    // 16x16 images: at 8x8 the last cells' BNs see 8 values per channel, and f32 itself (fused
    // or not, on any device) is then only good to a few 1e-5.
    let (lg, gg, rg) = network_grads(true, &emu, DType::F32, 16, Method::Darts);
    let (lc, gc, rc) = network_grads(false, &Device::Cpu, DType::F64, 16, Method::Darts);
    assert!((lg - lc).abs() <= 1e-5 * lc.abs(), "loss {lg} vs {lc}");
    let e = rel_err(&gg.concat(), &gc.concat());
    assert!(e < 1e-5, "all gradients: relative error {e:e}");
    let worst = gg.iter().zip(&gc).map(|(a, b)| rel_err(a, b)).fold(0.0, f64::max);
    assert!(worst < 1e-3, "worst per-tensor gradient error {worst:e}");
    let worst = rg.concat().iter().zip(rc.concat()).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
    assert!(worst < 1e-5, "running statistics differ by up to {worst:e}");
}
