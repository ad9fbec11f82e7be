//! An edge's conv candidates batched into one node (`src/fused/convs`) against the unfused
//! composition they replace (each candidate's own chain of ReLU, depthwise and pointwise convs
//! and, for sep convs, the inner BN): the stacked output, the gradients of the input and of every
//! weight (through a random scalar projection), and the inner BNs' running statistics and
//! counters; in f64 on the CPU, in f32 on the emulator, and by finite differences. The launch
//! counts of the node are asserted on the emulator.

mod common;

use common::gradcheck;
use darts::autograd::check::rel_err;
use darts::autograd::functions::{self as F, BnState};
use darts::autograd::{Groups, ParamId, Var};
use darts::fused::convs::{edge_convs, ConvCand, Stage2};
use darts::nn::{ConvParts, Ctx, DilConv, SepConv, Store};
use darts::ops::ConvParams;
use darts::rng::Rng;
use darts::{DType, Device, Tensor};

#[derive(Clone, Copy, Debug)]
struct Shape {
    n: usize,
    c: usize,
    hw: usize,
    stride: usize,
    training: bool,
}

/// An edge's four conv candidates, in the mixed op's order.
struct Edge {
    seps: [SepConv; 2],
    dils: [DilConv; 2],
}

fn build(sh: &Shape, dtype: DType) -> (Store, Edge) {
    let mut store = Store::new(dtype);
    let mut rng = Rng::new(17);
    let (c, s) = (sh.c, sh.stride);
    let seps = [
        SepConv::new(&mut store, "e.4", c, 3, s, &mut rng),
        SepConv::new(&mut store, "e.5", c, 5, s, &mut rng),
    ];
    let dils = [
        DilConv::new(&mut store, "e.6", c, 3, s, &mut rng),
        DilConv::new(&mut store, "e.7", c, 5, s, &mut rng),
    ];
    // Non-trivial running statistics, so eval mode is not the identity.
    for b in &mut store.bns {
        b.state.running_mean = Tensor::from_f64(&[c], &rng.normals(c), dtype);
        b.state.running_var = Tensor::from_f64(&[c], &rng.uniforms(c, 0.5, 2.0), dtype);
    }
    (store, Edge { seps, dils })
}

fn parts(edge: &Edge, ctx: &Ctx, c: usize) -> Vec<ConvParts> {
    let mut v: Vec<ConvParts> = edge.seps.iter().map(|s| s.conv_parts(ctx, c)).collect();
    v.extend(edge.dils.iter().map(|d| d.conv_parts(ctx, c)));
    v
}

/// The candidates' pre-BN outputs: one stacked node, or each candidate's unfused chain.
fn forward(ctx: &mut Ctx, edge: &Edge, x: &Var, fused: bool) -> Vec<Var> {
    let c = x.shape()[1];
    let ps = parts(edge, ctx, c);
    if fused {
        let cands: Vec<ConvCand> = ps.iter().map(|p| p.cand()).collect();
        let inner: Vec<_> = ps.iter().filter_map(|p| p.inner_bn).collect();
        let training = ctx.training;
        let mut states = ctx.bn_states_mut(&inner);
        return vec![edge_convs(x, &cands, &mut states, training).0];
    }
    let pw = ConvParams::new(1, 0);
    ps.iter()
        .map(|p| {
            let y = F::conv2d(&F::relu(x), &p.weights[0], p.p1);
            let y = F::conv2d(&y, &p.weights[1], pw);
            match (p.p2, p.inner_bn) {
                (Some(p2), Some(bn)) => {
                    let y = ctx.bn(&y, bn, None);
                    let y = F::conv2d(&F::relu(&y), &p.weights[2], p2);
                    F::conv2d(&y, &p.weights[3], pw)
                }
                _ => y,
            }
        })
        .collect()
}

/// Output, d/dx and d/d every weight, then per BN running mean, running var and batch counter.
struct Outcome {
    z: Vec<f64>,
    grads: Vec<Vec<f64>>,
    bn: Vec<Vec<f64>>,
}

fn run(sh: &Shape, fused: bool, dtype: DType, device: &Device) -> Outcome {
    let (mut store, edge) = build(sh, dtype);
    store.to_device(device);
    let mut rng = Rng::new(23);
    let x = Tensor::from_f64(&[sh.n, sh.c, sh.hw, sh.hw], &rng.normals(sh.n * sh.c * sh.hw * sh.hw), dtype)
        .to_device(device);
    let np = store.params.len();
    let (z, grads) = {
        let mut ctx = Ctx::new(&store.params, &mut store.bns, sh.training);
        let xv = ctx.tape.param(ParamId(np), Groups::INPUTS, x);
        let outs = forward(&mut ctx, &edge, &xv, fused);
        let total: usize = outs.iter().map(|o| o.value().numel()).sum();
        let r = Rng::new(31).normals(total);
        let mut z = Vec::new();
        let mut loss: Option<Var> = None;
        for o in &outs {
            let k = o.value().numel();
            let rt = Tensor::from_f64(o.shape(), &r[z.len()..z.len() + k], dtype).to_device(device);
            z.extend(o.value().to_f64_vec());
            let l = F::inner(o, &rt);
            loss = Some(match loss {
                None => l,
                Some(a) => F::add(&a, &l),
            });
        }
        (z, ctx.tape.backward(&loss.expect("a candidate"), Groups::ALL))
    };
    let mut g = vec![grads.get(ParamId(np)).expect("d/dx").to_f64_vec()];
    for i in 0..np {
        g.push(
            grads
                .get(ParamId(i))
                .unwrap_or_else(|| panic!("no gradient for {}", store.params[i].name))
                .to_f64_vec(),
        );
    }
    let mut bn = Vec::new();
    for b in &store.bns {
        bn.push(b.state.running_mean.to_f64_vec());
        bn.push(b.state.running_var.to_f64_vec());
        bn.push(vec![b.num_batches_tracked as f64]);
    }
    Outcome { z, grads: g, bn }
}

fn compare(what: &str, a: &Outcome, b: &Outcome, tol: f64) {
    let e = rel_err(&a.z, &b.z);
    assert!(e < tol, "{what}: forward relative error {e:e}");
    assert_eq!(a.grads.len(), b.grads.len(), "{what}");
    for (i, (ga, gb)) in a.grads.iter().zip(&b.grads).enumerate() {
        let e = rel_err(ga, gb);
        let name = if i == 0 { "x".to_string() } else { format!("weight {}", i - 1) };
        assert!(e < tol, "{what}: d/d{name} relative error {e:e}");
    }
    for (i, (sa, sb)) in a.bn.iter().zip(&b.bn).enumerate() {
        let e = rel_err(sa, sb);
        assert!(e < tol, "{what}: BN buffer {i} ({sa:?} vs {sb:?}) relative error {e:e}");
    }
}

fn shapes() -> Vec<Shape> {
    let mut v = Vec::new();
    for (n, c, hw) in [(1, 3, 7), (2, 5, 9), (3, 4, 6), (2, 16, 16), (2, 16, 32)] {
        for stride in [1, 2] {
            for training in [true, false] {
                v.push(Shape { n, c, hw, stride, training });
            }
        }
    }
    v
}

#[test]
fn batched_convs_match_the_unfused_candidates_in_f64() {
    for sh in shapes() {
        let cpu = Device::Cpu;
        let (a, b) = (run(&sh, true, DType::F64, &cpu), run(&sh, false, DType::F64, &cpu));
        compare(&format!("{sh:?}"), &a, &b, 1e-10);
        // The two inner BNs count one batch each in training, none in eval.
        let counted: f64 = a.bn.iter().skip(2).step_by(3).map(|v| v[0]).sum();
        assert_eq!(counted, if sh.training { 2.0 } else { 0.0 }, "{sh:?}: batches counted");
    }
}

#[test]
fn batched_convs_pass_the_finite_difference_check() {
    // x, then per candidate its weights ([dw1, pw1, dw2, pw2] for the sep convs).
    for (stride, hw) in [(1, 5), (2, 6)] {
        let mut rng = Rng::new(5);
        let c = 3;
        let mut inputs = vec![Tensor::from_f64(&[2, c, hw, hw], &rng.normals(2 * c * hw * hw), DType::F64)];
        let mut w = |shape: [usize; 4]| {
            let n = shape.iter().product();
            inputs.push(Tensor::from_f64(&shape, &rng.normals(n), DType::F64));
        };
        for k in [3, 5] {
            for _ in 0..2 {
                w([c, 1, k, k]);
                w([c, c, 1, 1]);
            }
        }
        for k in [3, 5] {
            w([c, 1, k, k]);
            w([c, c, 1, 1]);
        }
        let err = gradcheck(&format!("edge_convs stride {stride}"), &inputs, 1e-6, |v| {
            let dw = |k: usize, s: usize| ConvParams::new(s, (k - 1) / 2).groups(c);
            let dil = |k: usize| ConvParams::new(stride, k - 1).dilation(2).groups(c);
            let sep = |i: usize, k: usize| ConvCand {
                dw1: &v[i],
                pw1: &v[i + 1],
                p1: dw(k, stride),
                stage2: Some(Stage2 { dw2: &v[i + 2], pw2: &v[i + 3], p2: dw(k, 1) }),
            };
            let cands = [
                sep(1, 3),
                sep(5, 5),
                ConvCand { dw1: &v[9], pw1: &v[10], p1: dil(3), stage2: None },
                ConvCand { dw1: &v[11], pw1: &v[12], p1: dil(5), stage2: None },
            ];
            let mut bns = [BnState::new(c, DType::F64), BnState::new(c, DType::F64)];
            let mut states: Vec<&mut BnState> = bns.iter_mut().collect();
            let out = edge_convs(&v[0], &cands, &mut states, true).0;
            let r = Tensor::from_f64(out.shape(), &Rng::new(9).normals(out.value().numel()), DType::F64);
            F::inner(&out, &r)
        });
        println!("stride {stride}: worst finite-difference error {err:e}");
    }
}

#[cfg(feature = "emu")]
mod emu {
    use std::sync::Arc;

    use super::*;
    use darts::backend::gpu::emu::EmuRuntime;
    use darts::backend::gpu::Runtime;

    /// The node on the emulator (f32) against the CPU in f64, both schedules at one shape.
    #[test]
    fn batched_convs_on_the_emulator_match_the_cpu() {
        for (i, sh) in shapes().into_iter().enumerate() {
            let dev = Device::Gpu(Arc::new(EmuRuntime::new(0, (i % 2) as i32)));
            let emu = run(&sh, true, DType::F32, &dev);
            compare(
                &format!("{sh:?} emulator vs CPU f64"),
                &emu,
                &run(&sh, false, DType::F64, &Device::Cpu),
                1e-5,
            );
        }
    }

    /// The per-tile BN partials that the node gathers in its stages' epilogue (per block on the
    /// emulator, per cache band on the CPU) give the mixed op the statistics it computes from the
    /// operand itself: the same output and running statistics within f32 rounding. None are
    /// gathered in eval mode.
    #[test]
    fn tile_partials_give_the_mixed_op_its_statistics() {
        use darts::fused::mixed::{self, EdgeOperands, Normed, TileStats, K};
        let rt = Arc::new(EmuRuntime::new(0, 0));
        let emu = Device::Gpu(rt);
        // Several tiles per image; odd sizes with one partial tile; two tiles, the last partial.
        let shapes = [(2, 16, 32, 1), (3, 5, 9, 2), (2, 32, 13, 1)];
        for (n, c, hw, stride) in shapes {
            for (dev, training) in [(&emu, true), (&emu, false), (&Device::Cpu, true)] {
                let sh = Shape { n, c, hw, stride, training };
                let (mut store, edge) = build(&sh, DType::F32);
                store.to_device(dev);
                let mut rng = Rng::new(41);
                let x = Tensor::from_f64(&[n, c, hw, hw], &rng.normals(n * c * hw * hw), DType::F32)
                    .to_device(dev);
                let alpha = Tensor::from_f64(&[14, K], &rng.normals(14 * K), DType::F32).to_device(dev);
                let np = store.params.len();
                let mut ctx = Ctx::new(&store.params, &mut store.bns, training);
                let xv = ctx.tape.param(ParamId(np), Groups::INPUTS, x);
                let ps = parts(&edge, &ctx, c);
                let cands: Vec<ConvCand> = ps.iter().map(|p| p.cand()).collect();
                let inner: Vec<_> = ps.iter().filter_map(|p| p.inner_bn).collect();
                let mut states = ctx.bn_states_mut(&inner);
                let (z, tiles) = edge_convs(&xv, &cands, &mut states, training);
                let label = format!("{sh:?} on {dev:?}");
                if !training {
                    assert!(tiles.is_none(), "{label}: partials gathered in eval mode");
                    continue;
                }
                let tiles = tiles.unwrap_or_else(|| panic!("{label}: no partials"));
                let mixed_op = |tiles: Option<TileStats>| {
                    let mut bns: Vec<BnState> = (0..4).map(|_| BnState::new_on(c, DType::F32, dev)).collect();
                    let mut states: Vec<&mut BnState> = bns.iter_mut().collect();
                    let normed = vec![Normed { slots: vec![4, 5, 6, 7], z: z.value(), tiles }];
                    let e = EdgeOperands {
                        alpha: &alpha,
                        weighting: Default::default(),
                        row: 1,
                        skip: None,
                        normed,
                        acc: None,
                    };
                    let (y, _) = mixed::forward(&e, &mut states, true);
                    let mut v = y.to_f64_vec();
                    for b in &bns {
                        v.extend(b.running_mean.to_f64_vec());
                        v.extend(b.running_var.to_f64_vec());
                    }
                    v
                };
                let e = rel_err(&mixed_op(Some(tiles)), &mixed_op(None));
                assert!(
                    e < 1e-5,
                    "{label}: merged partials vs the operand's statistics: relative error {e:e}"
                );
            }
        }
    }

    /// Forward 3 launches; backward 15 with the weights' gradients, 7 with x's alone; nothing
    /// read back to the host.
    #[test]
    fn batched_convs_launch_counts() {
        let rt = Arc::new(EmuRuntime::new(0, 0));
        let dev = Device::Gpu(rt.clone());
        for (wanted, backward) in [(Groups::ALL, 15), (Groups::INPUTS, 7)] {
            let sh = Shape { n: 2, c: 4, hw: 8, stride: 1, training: true };
            let (mut store, edge) = build(&sh, DType::F32);
            store.to_device(&dev);
            let x = Tensor::from_f64(&[2, 4, 8, 8], &Rng::new(3).normals(512), DType::F32).to_device(&dev);
            let np = store.params.len();
            let mut ctx = Ctx::new(&store.params, &mut store.bns, true);
            let xv = ctx.tape.param(ParamId(np), Groups::INPUTS, x);
            let before = rt.counts();
            let out = forward(&mut ctx, &edge, &xv, true).remove(0);
            let fwd = rt.counts().since(&before);
            assert_eq!(fwd.launches, 3, "forward: {fwd:?}");
            let seed = Tensor::full_on(out.shape(), 1.0, DType::F32, &dev);
            let before = rt.counts();
            let grads = ctx.tape.backward_with_seed(&out, seed, wanted);
            let bwd = rt.counts().since(&before);
            assert!(grads.get(ParamId(np)).is_some(), "d/dx");
            assert_eq!(bwd.launches, backward, "backward for {wanted:?}: {bwd:?}");
            assert_eq!(fwd.dtoh + bwd.dtoh, 0, "host reads");
        }
    }
}
