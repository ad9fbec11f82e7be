//! The fused sep/dil conv stages (`src/fused/sepconv`) against the unfused composition they
//! replace: forward values, the gradients of the input and of every weight (through a random
//! scalar projection), and the BN running statistics and counters, in f64 on the CPU and in f32
//! on the emulator; finite differences of each fused node; and the memory the tape keeps.

mod common;

use common::{gradcheck, randn};
use darts::autograd::check::rel_err;
use darts::autograd::functions::{self as F, BnState};
use darts::autograd::{Groups, ParamId, Var};
use darts::fused::sepconv::{bn_relu_dw_pw, relu_dw_pw};
use darts::nn::{Ctx, DilConv, SepConv, Store};
use darts::ops::ConvParams;
use darts::rng::Rng;
use darts::{DType, Device, Tensor};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Sep,
    Dil,
}

/// What a run computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Path {
    /// The unfused ops up to the last BN (excluded), written out here from the weights.
    UnfusedPre,
    /// `forward_pre_bn`.
    FusedPre,
    /// `forward` (the unfused layer, last BN included).
    UnfusedFull,
    /// `forward_pre_bn` then the last BN through `Ctx::bn`.
    FusedFull,
}

#[derive(Clone, Copy, Debug)]
struct Shape {
    kind: Kind,
    n: usize,
    c: usize,
    hw: usize,
    k: usize,
    stride: usize,
    training: bool,
}

/// Everything a run produces, as f64 vectors: output, d/dx, d/d every weight, then per BN
/// running mean, running var and the batch counter.
struct Outcome {
    z: Vec<f64>,
    grads: Vec<Vec<f64>>,
    bn: Vec<Vec<f64>>,
}

/// A layer's forward along one [`Path`].
type Forward = Box<dyn Fn(&mut Ctx, &Var, Path) -> Var>;

fn build(sh: &Shape, dtype: DType) -> (Store, Forward) {
    let mut store = Store::new(dtype);
    let mut rng = Rng::new(17);
    let (c, k, s) = (sh.c, sh.k, sh.stride);
    let f: Forward = match sh.kind {
        Kind::Sep => {
            let m = SepConv::new(&mut store, "e", c, k, s, &mut rng);
            let names: Vec<_> = ["op.1", "op.2", "op.5", "op.6"]
                .iter()
                .map(|n| store.find(&format!("e.{n}.weight")).unwrap())
                .collect();
            Box::new(move |ctx, x, path| match path {
                Path::UnfusedFull => m.forward(ctx, x),
                Path::FusedPre => m.forward_pre_bn(ctx, x),
                Path::FusedFull => {
                    let z = m.forward_pre_bn(ctx, x);
                    ctx.bn(&z, m.final_bn(), None)
                }
                Path::UnfusedPre => {
                    let pad = (k - 1) / 2;
                    let dw = |st| ConvParams::new(st, pad).groups(c);
                    let pw = ConvParams::new(1, 0);
                    let y = F::conv2d(&F::relu(x), ctx.p(names[0]), dw(s));
                    let y = F::conv2d(&y, ctx.p(names[1]), pw);
                    let y = ctx.bn(&y, darts::nn::B(0), None);
                    let y = F::conv2d(&F::relu(&y), ctx.p(names[2]), dw(1));
                    F::conv2d(&y, ctx.p(names[3]), pw)
                }
            })
        }
        Kind::Dil => {
            let m = DilConv::new(&mut store, "e", c, k, s, &mut rng);
            let names: Vec<_> =
                ["op.1", "op.2"].iter().map(|n| store.find(&format!("e.{n}.weight")).unwrap()).collect();
            Box::new(move |ctx, x, path| match path {
                Path::UnfusedFull => m.forward(ctx, x),
                Path::FusedPre => m.forward_pre_bn(ctx, x),
                Path::FusedFull => {
                    let z = m.forward_pre_bn(ctx, x);
                    ctx.bn(&z, m.final_bn(), None)
                }
                Path::UnfusedPre => {
                    let p = ConvParams::new(s, k - 1).dilation(2).groups(c);
                    let y = F::conv2d(&F::relu(x), ctx.p(names[0]), p);
                    F::conv2d(&y, ctx.p(names[1]), ConvParams::new(1, 0))
                }
            })
        }
    };
    // Non-trivial running statistics, so eval mode is not the identity.
    for b in &mut store.bns {
        b.state.running_mean = Tensor::from_f64(&[c], &rng.normals(c), dtype);
        b.state.running_var = Tensor::from_f64(&[c], &rng.uniforms(c, 0.5, 2.0), dtype);
    }
    (store, f)
}

/// One forward and backward of `path` on `device` in `dtype` (inputs drawn in f64, rounded).
fn run(sh: &Shape, path: Path, dtype: DType, device: &Device) -> Outcome {
    let (mut store, f) = build(sh, dtype);
    store.to_device(device);
    let mut rng = Rng::new(23);
    let x = Tensor::from_f64(&[sh.n, sh.c, sh.hw, sh.hw], &rng.normals(sh.n * sh.c * sh.hw * sh.hw), dtype)
        .to_device(device);
    let np = store.params.len();
    let grads;
    let z;
    {
        let mut ctx = Ctx::new(&store.params, &mut store.bns, sh.training);
        let xv = ctx.tape.param(ParamId(np), Groups::INPUTS, x);
        let out = f(&mut ctx, &xv, path);
        let r = Tensor::from_f64(out.shape(), &Rng::new(31).normals(out.value().numel()), dtype)
            .to_device(device);
        let loss = F::inner(&out, &r);
        z = out.value().to_f64_vec();
        grads = ctx.tape.backward(&loss, Groups::ALL);
    }
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

fn compare(what: &str, a: &Outcome, b: &Outcome, tol: f64, bns: usize) {
    let e = rel_err(&a.z, &b.z);
    assert!(e < tol, "{what}: forward relative error {e:e}");
    assert_eq!(a.grads.len(), b.grads.len(), "{what}");
    for (i, (ga, gb)) in a.grads.iter().zip(&b.grads).enumerate() {
        let e = rel_err(ga, gb);
        let name = if i == 0 { "x".to_string() } else { format!("weight {}", i - 1) };
        assert!(e < tol, "{what}: d/d{name} relative error {e:e}");
    }
    // The BN buffers the paths share (the pre-BN paths leave the last BN untouched).
    for (i, (sa, sb)) in a.bn.iter().zip(&b.bn).take(3 * bns).enumerate() {
        let e = rel_err(sa, sb);
        assert!(e < tol, "{what}: BN buffer {i} ({sa:?} vs {sb:?}) relative error {e:e}");
    }
}

fn shapes() -> Vec<Shape> {
    let mut v = Vec::new();
    for kind in [Kind::Sep, Kind::Dil] {
        for (n, c, hw) in [(1, 3, 7), (2, 5, 9), (3, 3, 9), (2, 16, 32)] {
            for k in [3, 5] {
                for stride in [1, 2] {
                    for training in [true, false] {
                        v.push(Shape { kind, n, c, hw, k, stride, training });
                    }
                }
            }
        }
    }
    v
}

fn bns_of(sh: &Shape) -> usize {
    match sh.kind {
        Kind::Sep => 2,
        Kind::Dil => 1,
    }
}

#[test]
fn fused_matches_unfused_in_f64_on_the_cpu() {
    for sh in shapes() {
        let what = format!("{sh:?}");
        let cpu = Device::Cpu;
        let (a, b) =
            (run(&sh, Path::FusedPre, DType::F64, &cpu), run(&sh, Path::UnfusedPre, DType::F64, &cpu));
        compare(&format!("{what} pre-BN"), &a, &b, 1e-10, bns_of(&sh) - 1);
        let (a, b) =
            (run(&sh, Path::FusedFull, DType::F64, &cpu), run(&sh, Path::UnfusedFull, DType::F64, &cpu));
        compare(&format!("{what} with the last BN"), &a, &b, 1e-10, bns_of(&sh));
        // Training counts one batch per BN on both paths; eval leaves the buffers alone.
        let count = if sh.training { 1.0 } else { 0.0 };
        for i in 0..bns_of(&sh) {
            assert_eq!(a.bn[3 * i + 2], vec![count], "{what}: num_batches_tracked of BN {i}");
        }
    }
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn fused_on_cuda_matches_the_cpu_in_f32() {
    let rt = darts::backend::gpu::cuda::CudaRuntime::new(0, true).unwrap_or_else(|e| panic!("{e}"));
    fused_on_device_matches_the_cpu(&Device::Gpu(std::sync::Arc::new(rt)));
}

/// The fused stages on `dev` (f32) against the CPU in f32, unfused and fused, at odd sizes and at
/// the DARTS shape, covering both kinds, k 3 and 5, strides 1 and 2, training and eval.
fn fused_on_device_matches_the_cpu(dev: &Device) {
    let picks: Vec<Shape> = shapes()
        .into_iter()
        .enumerate()
        // Every (kind, size) with a rotating (k, stride, mode): 2 x 4 x 4 of the 64 cases.
        .filter(|(i, _)| i % 8 == 0 || i % 8 == 3 || i % 8 == 5 || i % 8 == 6)
        .map(|(_, s)| s)
        .collect();
    for sh in picks {
        let what = format!("{sh:?}");
        let cpu = Device::Cpu;
        let dev_pre = run(&sh, Path::FusedPre, DType::F32, dev);
        compare(
            &format!("{what} pre-BN vs CPU unfused"),
            &dev_pre,
            &run(&sh, Path::UnfusedPre, DType::F32, &cpu),
            1e-5,
            bns_of(&sh) - 1,
        );
        compare(
            &format!("{what} pre-BN vs CPU fused"),
            &dev_pre,
            &run(&sh, Path::FusedPre, DType::F32, &cpu),
            1e-5,
            bns_of(&sh) - 1,
        );
        compare(
            &format!("{what} with the last BN vs CPU unfused"),
            &run(&sh, Path::FusedFull, DType::F32, dev),
            &run(&sh, Path::UnfusedFull, DType::F32, &cpu),
            1e-5,
            bns_of(&sh),
        );
    }
}

#[cfg(feature = "emu")]
mod emu {
    use std::sync::Arc;

    use darts::backend::gpu::emu::EmuRuntime;

    use super::*;

    fn emu() -> (Arc<EmuRuntime>, Device) {
        let rt = Arc::new(EmuRuntime::new(0, 0));
        (rt.clone(), Device::Gpu(rt))
    }

    /// The emulator runs the fused stages' kernels against the CPU.
    #[test]
    fn fused_on_the_emulator_matches_the_cpu_in_f32() {
        let (rt, dev) = emu();
        fused_on_device_matches_the_cpu(&dev);
        let launched = rt.launch_counts();
        for k in ["depthwise_relu_fwd_f32", "depthwise_bnrelu_fwd_f32", "depthwise_bnrelu_bwd_data_f32"] {
            assert!(launched.contains_key(k), "{k} never launched: {launched:?}");
        }
    }

    /// Device bytes held after one SepConv forward (the tape's saved tensors and the output):
    /// the fused stages keep the two pre-BN outputs where the unfused chain keeps every
    /// intermediate; the fused backward also peaks lower.
    #[test]
    fn the_fused_sep_conv_keeps_less_on_the_tape() {
        let sh = Shape { kind: Kind::Sep, n: 2, c: 16, hw: 32, k: 3, stride: 1, training: true };
        let measure = |path: Path| -> (usize, usize) {
            let (rt, dev) = emu();
            let (mut store, f) = build(&sh, DType::F32);
            store.to_device(&dev);
            let x = Tensor::from_f64(&[2, 16, 32, 32], &Rng::new(3).normals(2 * 16 * 32 * 32), DType::F32)
                .to_device(&dev);
            let r = Tensor::from_f64(&[2, 16, 32, 32], &Rng::new(4).normals(2 * 16 * 32 * 32), DType::F32)
                .to_device(&dev);
            use darts::backend::gpu::Runtime as _;
            let before = rt.memory().in_use;
            let mut ctx = Ctx::new(&store.params, &mut store.bns, true);
            let xv = ctx.tape.param(ParamId(99), Groups::INPUTS, x);
            let out = f(&mut ctx, &xv, path);
            let held = rt.memory().in_use - before;
            rt.reset_peak_memory();
            let loss = F::inner(&out, &r);
            drop(out);
            let grads = ctx.tape.backward(&loss, Groups::ALL);
            let peak = rt.memory().peak - before;
            drop(grads);
            (held, peak)
        };
        let plane = 2 * 16 * 32 * 32 * 4;
        let (unfused, unfused_peak) = measure(Path::UnfusedFull);
        let (fused, fused_peak) = measure(Path::FusedFull);
        println!(
            "held after forward: unfused {unfused} B ({:.1} activations), fused {fused} B ({:.1}); \
             backward peak: unfused {unfused_peak} B, fused {fused_peak} B",
            unfused as f64 / plane as f64,
            fused as f64 / plane as f64
        );
        // Unfused: relu(x), d1, bn(z1), relu, d2 and the output (a non-affine BN keeps its
        // output, not z1 or z2); fused: z1, z2, output.
        assert!(unfused >= 6 * plane, "unfused holds {unfused} B");
        assert!(fused < 4 * plane, "fused holds {fused} B, more than z1, z2, the output and statistics");
        assert!(fused_peak < unfused_peak, "backward peak: fused {fused_peak} B vs unfused {unfused_peak} B");
    }
}

/// Central differences in f64 of each fused node w.r.t. every input (x or z1, and both weights).
#[test]
fn fused_nodes_pass_finite_differences() {
    let mut rng = Rng::new(5);
    for (n, c, hw, k, s, d) in
        [(2, 3, 6, 3, 1, 1), (1, 4, 7, 5, 2, 1), (2, 3, 7, 3, 2, 2), (2, 2, 5, 5, 1, 2)]
    {
        let pad = d * (k - 1) / 2;
        let p = ConvParams::new(s, pad).dilation(d).groups(c);
        let x = randn(&mut rng, &[n, c, hw, hw]);
        let (wd, wp) = (randn(&mut rng, &[c, 1, k, k]), randn(&mut rng, &[c, c, 1, 1]));
        let probe = |y: &Var| {
            let r = randn(&mut Rng::new(77), y.shape());
            F::inner(y, &r)
        };
        gradcheck(&format!("relu_dw_pw k{k} s{s} d{d}"), &[x.clone(), wd.clone(), wp.clone()], 1e-6, |v| {
            probe(&relu_dw_pw(&v[0], &v[1], &v[2], p))
        });
        let mut state = BnState::new(c, DType::F64);
        state.running_mean = randn(&mut rng, &[c]);
        state.running_var = Tensor::from_f64(&[c], &rng.uniforms(c, 0.5, 2.0), DType::F64);
        for training in [true, false] {
            let st = state.clone();
            gradcheck(
                &format!("bn_relu_dw_pw k{k} s{s} d{d} training={training}"),
                &[x.clone(), wd.clone(), wp.clone()],
                1e-6,
                |v| {
                    let mut st = st.clone();
                    probe(&bn_relu_dw_pw(&v[0], &mut st, &v[1], &v[2], p, training))
                },
            );
        }
    }
}

/// Gradients requested for one group only: the weights alone, or the input alone, give the same
/// values as requesting everything (the backward skips what is not needed).
#[test]
fn partial_gradient_requests_match() {
    let sh = Shape { kind: Kind::Sep, n: 2, c: 5, hw: 9, k: 3, stride: 2, training: true };
    let (mut store, f) = build(&sh, DType::F64);
    let x = randn(&mut Rng::new(8), &[2, 5, 9, 9]);
    let np = store.params.len();
    let mut grads_for = |wanted: Groups| {
        let mut ctx = Ctx::new(&store.params, &mut store.bns, true);
        let xv = ctx.tape.param(ParamId(np), Groups::INPUTS, x.clone());
        let out = f(&mut ctx, &xv, Path::FusedPre);
        let loss = F::inner(&out, &randn(&mut Rng::new(9), out.shape()));
        ctx.tape.backward(&loss, wanted)
    };
    let all = grads_for(Groups::ALL);
    let weights = grads_for(Groups::WEIGHTS);
    let inputs = grads_for(Groups::INPUTS);
    assert!(weights.get(ParamId(np)).is_none() && inputs.get(ParamId(0)).is_none());
    for i in 0..np {
        let e = rel_err(
            &weights.get(ParamId(i)).unwrap().to_f64_vec(),
            &all.get(ParamId(i)).unwrap().to_f64_vec(),
        );
        assert!(e < 1e-12, "weight {i}: {e:e}");
    }
    let e =
        rel_err(&inputs.get(ParamId(np)).unwrap().to_f64_vec(), &all.get(ParamId(np)).unwrap().to_f64_vec());
    assert!(e < 1e-12, "x: {e:e}");
}
