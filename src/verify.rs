//! `darts verify`: every kernel at the DARTS search shapes against the CPU reference.
//!
//! Each case is an op call written once against the op layer; it runs on the CPU in f64 (the
//! reference) and on the device under test in f32 on the same inputs. The report gives, per op
//! and part, the relative error ‖dev − ref‖/‖ref‖, the largest absolute error, the median time on
//! the device, and pass/fail (relative error < 1e-5, no NaN).
//!
//! Every kernel here is deterministic, so each case also runs a second time and must give the
//! same bits: on the emulator under the other fiber schedule (threads and blocks in decreasing
//! order, which exposes a missing barrier), on CUDA simply again (which exposes a race).

use std::time::Instant;

use crate::autograd::check::rel_err;
use crate::autograd::Groups;
use crate::model::{NetConfig, Network};
use crate::ops::{self, ConvParams};
use crate::rng::Rng;
use crate::tensor::{DType, Device, Tensor};

/// Relative error below which a case passes.
pub const TOLERANCE: f64 = 1e-5;

type OpFn = Box<dyn Fn(&[Tensor]) -> Vec<Tensor>>;

/// One op call to check.
pub struct Case {
    /// Op family (what `--ops` filters on).
    pub op: &'static str,
    /// Forward, bwd_data, ...
    pub part: &'static str,
    /// Human-readable shape.
    pub shape: String,
    inputs: Vec<Tensor>,
    run: OpFn,
}

/// How a case is run a second time to check that its bits do not depend on execution order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rerun {
    /// On a second emulator under fiber schedule 1 (the device under test runs schedule 0).
    OtherSchedule,
    /// Again on the same device.
    Repeat,
}

/// The outcome of one case.
#[derive(Clone, Debug)]
pub struct Row {
    /// Op family.
    pub op: &'static str,
    /// Part.
    pub part: &'static str,
    /// Shape.
    pub shape: String,
    /// Worst relative error over the outputs.
    pub rel_err: f64,
    /// Largest absolute error.
    pub max_abs: f64,
    /// Median device time per call, milliseconds.
    pub ms: f64,
    /// The second run ([`Row::rerun`]) gave bitwise-identical outputs.
    pub identical: bool,
    /// How the second run was made.
    pub rerun: Rerun,
    /// Within tolerance, finite, and identical on the second run.
    pub pass: bool,
}

fn rand(rng: &mut Rng, shape: &[usize]) -> Tensor {
    Tensor::from_f64(shape, &rng.normals(shape.iter().product()), DType::F32)
}

fn case(op: &'static str, part: &'static str, shape: String, inputs: Vec<Tensor>, run: OpFn) -> Case {
    Case { op, part, shape, inputs, run }
}

/// The fused mixed op on a normal edge (6 BN candidates, the identity, an accumulator) and a
/// reduction edge (7 BN candidates), training mode; running statistics start at random values.
/// Forward: y, the statistics' running update; backward: dα, dx and every dz.
fn mixed_cases(cs: &mut Vec<Case>, rng: &mut Rng, shape: &[usize], label: &str) {
    use crate::autograd::functions::BnState;
    use crate::fused::mixed::{self, EdgeOperands, K};
    for reduction in [false, true] {
        let slots: Vec<usize> = if reduction { vec![1, 2, 3, 4, 5, 6, 7] } else { vec![1, 2, 4, 5, 6, 7] };
        let ns = slots.len();
        // [alpha, x, acc, dy, z..., running mean/var per candidate]
        let mut inputs = vec![rand(rng, &[14, K]), rand(rng, shape), rand(rng, shape), rand(rng, shape)];
        inputs.extend(slots.iter().map(|&j| {
            let t = rand(rng, shape);
            Tensor::from_f64(
                shape,
                &t.to_f64_vec().iter().map(|v| v * (0.5 + j as f64) + j as f64).collect::<Vec<_>>(),
                DType::F32,
            )
        }));
        let c = shape[1];
        for _ in 0..ns {
            inputs.push(Tensor::from_f64(&[c], &rng.uniforms(c, -0.5, 0.5), DType::F32));
            inputs.push(Tensor::from_f64(&[c], &rng.uniforms(c, 0.5, 1.5), DType::F32));
        }
        let run = move |t: &[Tensor], backward: bool| -> Vec<Tensor> {
            let mut bns: Vec<BnState> = (0..ns)
                .map(|i| {
                    let mut b = BnState::new(c, DType::F32);
                    b.running_mean = t[4 + ns + 2 * i].clone();
                    b.running_var = t[4 + ns + 2 * i + 1].clone();
                    b
                })
                .collect();
            let mut states: Vec<&mut BnState> = bns.iter_mut().collect();
            let e = EdgeOperands {
                alpha: &t[0],
                weighting: mixed::Weighting::Softmax,
                row: 5,
                skip: (!reduction).then_some((3, &t[1])),
                normed: slots
                    .iter()
                    .zip(&t[4..4 + ns])
                    .map(|(j, z)| mixed::Normed::new(vec![*j], z))
                    .collect(),
                acc: Some(&t[2]),
            };
            let (y, saved) = mixed::forward(&e, &mut states, true);
            if !backward {
                let mut out = vec![y];
                out.extend(bns.into_iter().flat_map(|b| [b.running_mean, b.running_var]));
                return out;
            }
            let g = saved.backward(&t[3], true, true, &vec![true; ns], false);
            let mut out = vec![g.dalpha.expect("dalpha")];
            out.extend(g.dx);
            out.extend(g.dz.into_iter().map(|d| d.expect("dz")));
            out
        };
        let kind = if reduction { "reduction" } else { "normal" };
        let run2 = run.clone();
        cs.push(case(
            "mixed",
            "forward",
            format!("{kind} {label}"),
            inputs.clone(),
            Box::new(move |t| run(t, false)),
        ));
        cs.push(case(
            "mixed",
            "backward",
            format!("{kind} {label}"),
            inputs,
            Box::new(move |t| run2(t, true)),
        ));
    }
}

/// Forward and both gradients of a convolution.
fn conv_cases(
    cs: &mut Vec<Case>,
    rng: &mut Rng,
    name: &'static str,
    x: [usize; 4],
    w: [usize; 4],
    p: ConvParams,
) {
    let xt = rand(rng, &x);
    let wt = rand(rng, &w);
    let y = ops::conv::conv2d(&xt, &wt, p);
    let dy = rand(rng, y.shape());
    let label = format!("x{x:?} w{w:?} s{} d{}", p.stride, p.dilation);
    cs.push(case(
        name,
        "forward",
        label.clone(),
        vec![xt.clone(), wt.clone()],
        Box::new(move |t| vec![ops::conv::conv2d(&t[0], &t[1], p)]),
    ));
    cs.push(case(
        name,
        "bwd_data",
        label.clone(),
        vec![dy.clone(), wt.clone()],
        Box::new(move |t| vec![ops::conv::conv2d_bwd_data(&t[0], &t[1], &x, p)]),
    ));
    cs.push(case(
        name,
        "bwd_weight",
        label,
        vec![xt, dy],
        Box::new(move |t| vec![ops::conv::conv2d_bwd_weight(&t[0], &t[1], &w, p)]),
    ));
}

/// Forward and both gradients of ReLU then depthwise convolution (one kernel each on a GPU).
fn relu_depthwise_cases(cs: &mut Vec<Case>, rng: &mut Rng, x: [usize; 4], w: [usize; 4], p: ConvParams) {
    use ops::conv::relu_conv2d_depthwise_bwd_weight as bwd_weight;
    use ops::conv::{relu_conv2d_depthwise as fwd, relu_conv2d_depthwise_bwd_data as bwd_data};
    let (xt, wt) = (rand(rng, &x), rand(rng, &w));
    let dy = rand(rng, fwd(&xt, &wt, p).shape());
    let label = format!("x{x:?} w{w:?} s{} d{}", p.stride, p.dilation);
    let op = "relu_depthwise";
    let inputs = vec![xt, dy, wt];
    cs.push(case(
        op,
        "forward",
        label.clone(),
        inputs.clone(),
        Box::new(move |t| vec![fwd(&t[0], &t[2], p)]),
    ));
    cs.push(case(
        op,
        "bwd_data",
        label.clone(),
        inputs.clone(),
        Box::new(move |t| vec![bwd_data(&t[0], &t[1], &t[2], p)]),
    ));
    cs.push(case(op, "bwd_weight", label, inputs, Box::new(move |t| vec![bwd_weight(&t[0], &t[1], &w, p)])));
}

/// Forward and both gradients of normalise → ReLU → depthwise, the second stage of a fused sep
/// conv (one kernel each on a GPU, the normalisation applied on load); and the per-channel
/// `1 / sqrt(var + eps)` that feeds it.
fn bnrelu_depthwise_cases(cs: &mut Vec<Case>, rng: &mut Rng, x: [usize; 4], w: [usize; 4], p: ConvParams) {
    use crate::fused::sepconv::{bnrelu_dw as fwd, bnrelu_dw_bwd_data as bwd_data, bnrelu_dw_bwd_weight};
    let c = x[1];
    let (xt, wt) = (rand(rng, &x), rand(rng, &w));
    let mean = rand(rng, &[c]);
    let rstd = Tensor::from_f64(&[c], &rng.uniforms(c, 0.5, 1.5), DType::F32);
    let dy = rand(rng, fwd(&xt, &mean, &rstd, &wt, p).shape());
    let label = format!("x{x:?} w{w:?} s{} d{}", p.stride, p.dilation);
    let op = "bnrelu_depthwise";
    let inputs = vec![xt, mean, rstd, dy, wt];
    cs.push(case(
        op,
        "forward",
        label.clone(),
        inputs.clone(),
        Box::new(move |t| vec![fwd(&t[0], &t[1], &t[2], &t[4], p)]),
    ));
    cs.push(case(
        op,
        "bwd_data",
        label.clone(),
        inputs.clone(),
        Box::new(move |t| vec![bwd_data(&t[0], &t[1], &t[2], &t[3], &t[4], p)]),
    ));
    cs.push(case(
        op,
        "bwd_weight",
        label,
        inputs,
        Box::new(move |t| vec![bnrelu_dw_bwd_weight(&t[0], &t[1], &t[2], &t[3], &w, p)]),
    ));
}

/// A DARTS edge's depthwise stages batched into one launch per part (`depthwise_pre_*_slots` on
/// a GPU; on the CPU the single ops slot by slot, the reference the per-slot cases use): slot i
/// is ReLU (or normalise → ReLU) → depthwise with `(k, d) = kds[i]`, each with its own x, w, dy
/// (and mean, rstd).
fn dw_slots_cases(
    cs: &mut Vec<Case>,
    rng: &mut Rng,
    x: [usize; 4],
    s: usize,
    kds: &'static [(usize, usize)],
    normed: bool,
) {
    use crate::backend::gpu::launch::depthwise::{self as gdw, DwSlot};
    use crate::backend::gpu::GpuBuf;
    use crate::fused::sepconv::{bnrelu_dw, bnrelu_dw_bwd_data, bnrelu_dw_bwd_weight};
    use crate::ops::conv::{depthwise_geom, relu_conv2d_depthwise as relu_dw};
    use crate::ops::conv::{
        relu_conv2d_depthwise_bwd_data as relu_dw_bwd_data,
        relu_conv2d_depthwise_bwd_weight as relu_dw_bwd_weight,
    };
    use crate::tensor::gpu_ok;
    const OP: &str = "dw_slots";
    let c = x[1];
    let params = move |i: usize| {
        let (k, d) = kds[i];
        ConvParams::new(s, d * (k - 1) / 2).dilation(d).groups(c)
    };
    // Per slot: x, w, dy, then mean and rstd when normed.
    let m = if normed { 5 } else { 3 };
    let mut inputs = Vec::new();
    for (i, &(k, _)) in kds.iter().enumerate() {
        let (xt, wt) = (rand(rng, &x), rand(rng, &[c, 1, k, k]));
        let dy = rand(rng, relu_dw(&xt, &wt, params(i)).shape());
        inputs.extend([xt, wt, dy]);
        if normed {
            inputs.push(rand(rng, &[c]));
            inputs.push(Tensor::from_f64(&[c], &rng.uniforms(c, 0.5, 1.5), DType::F32));
        }
    }
    let run = move |t: &[Tensor], part: usize| -> Vec<Tensor> {
        let slot = |i: usize| &t[i * m..(i + 1) * m];
        let Some(rt) = ops::gpu_rt(OP, &t.iter().collect::<Vec<_>>()) else {
            return (0..kds.len())
                .map(|i| {
                    let (t, p) = (slot(i), params(i));
                    match (part, normed) {
                        (0, false) => relu_dw(&t[0], &t[1], p),
                        (0, true) => bnrelu_dw(&t[0], &t[3], &t[4], &t[1], p),
                        (1, false) => relu_dw_bwd_data(&t[0], &t[2], &t[1], p),
                        (1, true) => bnrelu_dw_bwd_data(&t[0], &t[3], &t[4], &t[2], &t[1], p),
                        (_, false) => relu_dw_bwd_weight(&t[0], &t[2], t[1].shape(), p),
                        (_, true) => bnrelu_dw_bwd_weight(&t[0], &t[3], &t[4], &t[2], t[1].shape(), p),
                    }
                })
                .collect();
        };
        let slots: Vec<DwSlot> = (0..kds.len())
            .map(|i| {
                let t = slot(i);
                DwSlot {
                    g: depthwise_geom(OP, t[0].shape(), t[1].shape(), params(i)),
                    x: ops::buf(&t[0]),
                    norm: normed.then(|| (ops::buf(&t[3]), ops::buf(&t[4]))),
                }
            })
            .collect();
        let (ws, dys): (Vec<&GpuBuf>, Vec<&GpuBuf>) =
            (0..kds.len()).map(|i| (ops::buf(&slot(i)[1]), ops::buf(&slot(i)[2]))).unzip();
        // Output shape per slot: y like dy, dx like x, dw like w.
        let shapes: Vec<&[usize]> = (0..kds.len()).map(|i| slot(i)[[2, 0, 1][part.min(2)]].shape()).collect();
        let mut outs: Vec<GpuBuf> =
            shapes.iter().map(|sh| gpu_ok(GpuBuf::alloc(&rt, sh.iter().product()))).collect();
        let mut refs: Vec<&mut GpuBuf> = outs.iter_mut().collect();
        gpu_ok(match part {
            0 => gdw::depthwise_pre_fwd_slots(&slots, &ws, &mut refs),
            1 => gdw::depthwise_pre_bwd_data_slots(&slots, &dys, &ws, &mut refs),
            _ => gdw::depthwise_pre_bwd_weight_slots(&slots, &dys, &mut refs),
        });
        outs.into_iter().zip(shapes).map(|(b, sh)| Tensor::from_gpu(sh, b)).collect()
    };
    let ks: Vec<String> = kds.iter().map(|(k, d)| format!("k{k}d{d}")).collect();
    let label = format!("x{x:?} s{s} {}{}", ks.join(","), if normed { " norm" } else { "" });
    for (part, name) in ["forward", "bwd_data", "bwd_weight"].into_iter().enumerate() {
        cs.push(case(OP, name, label.clone(), inputs.clone(), Box::new(move |t| run(t, part))));
    }
}

/// An edge's sep/dil conv stages (pre-op → depthwise → pointwise) as one fused launch on a GPU
/// (`dw_pw_fwd_slots`: the depthwise output kept on chip); on the CPU the ops slot by slot. Slot
/// i is ReLU (or normalise → ReLU) → depthwise with `(k, d) = kds[i]` → 1×1 `[c, c]`, each with
/// its own x, dw, pw (and mean, rstd).
fn dw_pw_slots_case(
    cs: &mut Vec<Case>,
    rng: &mut Rng,
    x: [usize; 4],
    s: usize,
    kds: &'static [(usize, usize)],
    normed: bool,
) {
    use crate::fused::sepconv::{dw_pw_slots, DwPwSlot};
    let c = x[1];
    let params = move |i: usize| {
        let (k, d) = kds[i];
        ConvParams::new(s, d * (k - 1) / 2).dilation(d).groups(c)
    };
    // Per slot: x, dw, pw, then mean and rstd when normed.
    let m = if normed { 5 } else { 3 };
    let mut inputs = Vec::new();
    for &(k, _) in kds {
        inputs.extend([rand(rng, &x), rand(rng, &[c, 1, k, k]), rand(rng, &[c, c, 1, 1])]);
        if normed {
            inputs.push(rand(rng, &[c]));
            inputs.push(Tensor::from_f64(&[c], &rng.uniforms(c, 0.5, 1.5), DType::F32));
        }
    }
    let run = move |t: &[Tensor]| -> Vec<Tensor> {
        let slots: Vec<DwPwSlot> = (0..kds.len())
            .map(|i| {
                let t = &t[i * m..(i + 1) * m];
                DwPwSlot {
                    x: &t[0],
                    norm: normed.then(|| (&t[3], &t[4])),
                    dw: &t[1],
                    pw: &t[2],
                    p: params(i),
                }
            })
            .collect();
        dw_pw_slots(&slots)
    };
    let ks: Vec<String> = kds.iter().map(|(k, d)| format!("k{k}d{d}")).collect();
    let label = format!("x{x:?} s{s} {}{}", ks.join(","), if normed { " norm" } else { "" });
    cs.push(case("dw_pw_slots", "forward", label, inputs, Box::new(run)));
}

/// Per-slot device buffers of GPU tensors.
fn bufs(ts: &[Tensor]) -> Vec<&crate::backend::gpu::GpuBuf> {
    ts.iter().map(|t| t.gpu_buf().expect("tensor on the GPU")).collect()
}

/// `k` outputs of `shape` on `rt`, filled by `launch` (one call for all of them).
fn gpu_slots_out(
    rt: &crate::backend::gpu::Gpu,
    k: usize,
    shape: &[usize],
    launch: impl FnOnce(&mut [&mut crate::backend::gpu::GpuBuf]) -> Result<(), crate::backend::gpu::GpuError>,
) -> Vec<Tensor> {
    let mut ys: Vec<Tensor> = (0..k).map(|_| Tensor::empty_gpu(shape, rt)).collect();
    let mut outs: Vec<&mut _> = ys.iter_mut().map(Tensor::gpu_buf_mut).collect();
    crate::tensor::gpu_ok(launch(&mut outs));
    ys
}

/// `k` pointwise convs of one shape (an edge's conv candidates) through the slotted launchers on
/// a GPU (one launch per pass, two for a split weight gradient), the one-slot ops on the CPU.
/// Inputs: `[x_0.., w_0.., dy_0..]`, `k` each.
fn pw_slots_cases(cs: &mut Vec<Case>, rng: &mut Rng, k: usize, x: [usize; 4], c_out: usize) {
    use crate::backend::gpu::launch::conv as gconv;
    let p = ConvParams::new(1, 0);
    let w = [c_out, x[1], 1, 1];
    let y = [x[0], c_out, x[2], x[3]];
    let mut inputs: Vec<Tensor> = (0..k).map(|_| rand(rng, &x)).collect();
    inputs.extend((0..k).map(|_| rand(rng, &w)));
    inputs.extend((0..k).map(|_| rand(rng, &y)));
    let g = ops::conv::conv_geom("pw_slots", &x, &w, p);
    let label = format!("{k} x x{x:?} w{w:?}");
    let run = move |part: &str, t: &[Tensor]| -> Vec<Tensor> {
        let (xs, ws, dys) = (&t[..k], &t[k..2 * k], &t[2 * k..]);
        match t[0].device().runtime() {
            Some(rt) => match part {
                "forward" => gpu_slots_out(rt, k, &y, |o| gconv::pw_fwd_slots(&g, &bufs(xs), &bufs(ws), o)),
                "bwd_data" => {
                    gpu_slots_out(rt, k, &x, |o| gconv::pw_bwd_data_slots(&g, &bufs(dys), &bufs(ws), o))
                }
                _ => gpu_slots_out(rt, k, &w, |o| gconv::pw_bwd_weight_slots(&g, &bufs(xs), &bufs(dys), o)),
            },
            None => (0..k)
                .map(|s| match part {
                    "forward" => ops::conv::conv2d(&xs[s], &ws[s], p),
                    "bwd_data" => ops::conv::conv2d_bwd_data(&dys[s], &ws[s], &x, p),
                    _ => ops::conv::conv2d_bwd_weight(&xs[s], &dys[s], &w, p),
                })
                .collect(),
        }
    };
    for part in ["forward", "bwd_data", "bwd_weight"] {
        cs.push(case("conv_pw_slots", part, label.clone(), inputs.clone(), Box::new(move |t| run(part, t))));
    }
}

/// `k` non-affine training BN backwards of one shape: the slotted launcher (two launches) on a
/// GPU, the one-slot op on the CPU, each from its own batch statistics. Inputs: `[x_0.., dy_0..]`.
fn bn_slots_case(cs: &mut Vec<Case>, rng: &mut Rng, k: usize, x: [usize; 4]) {
    use crate::backend::gpu::launch::batchnorm::{bn_bwd_train_slots, BnBwdSlot};
    let mut inputs: Vec<Tensor> = (0..2 * k).map(|_| rand(rng, &x)).collect();
    // Distinct offsets and scales per slot: a slot reading another's statistics shows.
    for (s, t) in inputs[..k].iter_mut().enumerate() {
        let v: Vec<f64> = t.to_f64_vec().iter().map(|v| v * (1.0 + s as f64) + s as f64).collect();
        *t = Tensor::from_f64(&x, &v, DType::F32);
    }
    let run = move |t: &[Tensor]| -> Vec<Tensor> {
        let (xs, dys) = (&t[..k], &t[k..]);
        let saved: Vec<_> = xs.iter().map(|x| ops::norm::batch_norm_train(x, None, None, 1e-5).1).collect();
        match t[0].device().runtime() {
            Some(rt) => {
                let g = ops::norm::bn_geom("bn_slots", &x);
                let slots: Vec<BnBwdSlot> = (0..k)
                    .map(|s| BnBwdSlot {
                        x: xs[s].gpu_buf().expect("gpu"),
                        dy: dys[s].gpu_buf().expect("gpu"),
                        mean: saved[s].mean.gpu_buf().expect("gpu"),
                        invstd: saved[s].invstd.gpu_buf().expect("gpu"),
                    })
                    .collect();
                gpu_slots_out(rt, k, &x, |o| bn_bwd_train_slots(&g, &slots, o))
            }
            None => (0..k)
                .map(|s| ops::norm::batch_norm_train_bwd(&xs[s], &dys[s], &saved[s], None, false).dx)
                .collect(),
        }
    };
    cs.push(case("batch_norm_slots", "backward_train", format!("{k} x {x:?}"), inputs, Box::new(run)));
}

/// Every case at the DARTS search-network shapes for batch `b` (C = 16, 8 cells).
pub fn darts_cases(b: usize) -> Vec<Case> {
    let mut rng = Rng::new(7);
    let rng = &mut rng;
    let mut cs = Vec::new();
    // Stem, preprocess 1x1 convs, FactorizedReduce's strided 1x1.
    conv_cases(&mut cs, rng, "conv_stem", [b, 3, 32, 32], [48, 3, 3, 3], ConvParams::new(1, 1));
    for (cin, cout, hw) in
        [(16, 16, 32), (32, 32, 16), (64, 64, 8), (48, 16, 32), (128, 32, 16), (256, 64, 8)]
    {
        conv_cases(
            &mut cs,
            rng,
            "conv_pointwise",
            [b, cin, hw, hw],
            [cout, cin, 1, 1],
            ConvParams::new(1, 0),
        );
    }
    // An edge's four sep/dil conv candidates as one slotted launch per pass (the weight gradient
    // of [b, 16, 32, 32] splits its reduction); three slots at the next cell size.
    pw_slots_cases(&mut cs, rng, 4, [b, 16, 32, 32], 16);
    pw_slots_cases(&mut cs, rng, 3, [b, 32, 16, 16], 32);
    for (c, hw) in [(64, 32), (128, 16)] {
        conv_cases(&mut cs, rng, "conv_factorized", [b, c, hw, hw], [c / 2, c, 1, 1], ConvParams::new(2, 0));
    }
    // Depthwise: sep (k 3, 5) and dil (k 3, 5, dilation 2), stride 1 in normal cells, 2 on
    // reduction edges.
    for (c, hw, s) in [(16, 32, 1), (32, 16, 1), (64, 8, 1), (32, 32, 2), (64, 16, 2)] {
        for (k, d) in [(3, 1), (5, 1), (3, 2), (5, 2)] {
            let p = ConvParams::new(s, d * (k - 1) / 2).dilation(d).groups(c);
            conv_cases(&mut cs, rng, "conv_depthwise", [b, c, hw, hw], [c, 1, k, k], p);
        }
    }
    // The same behind a ReLU, as every sep/dil conv starts.
    for (c, hw, s) in [(16, 32, 1), (32, 16, 1), (64, 8, 1), (32, 32, 2), (64, 16, 2)] {
        for (k, d) in [(3, 1), (5, 1), (3, 2), (5, 2)] {
            let p = ConvParams::new(s, d * (k - 1) / 2).dilation(d).groups(c);
            relu_depthwise_cases(&mut cs, rng, [b, c, hw, hw], [c, 1, k, k], p);
        }
    }
    // Normalise → ReLU on load (a fused sep conv's second stage: stride 1; stride 2 and dilation
    // for the kernels' other paths).
    for (c, hw, s, k, d) in [
        (16, 32, 1, 3, 1),
        (16, 32, 1, 5, 1),
        (32, 16, 1, 3, 1),
        (64, 8, 1, 5, 1),
        (32, 32, 2, 3, 1),
        (16, 32, 1, 5, 2),
    ] {
        let p = ConvParams::new(s, d * (k - 1) / 2).dilation(d).groups(c);
        bnrelu_depthwise_cases(&mut cs, rng, [b, c, hw, hw], [c, 1, k, k], p);
    }
    // The four conv candidates of an edge in one launch per part: the first stages (ReLU) on a
    // normal and a reduction edge, and the sep convs' second stages (normalise → ReLU).
    const EDGE: &[(usize, usize)] = &[(3, 1), (5, 1), (3, 2), (5, 2)];
    dw_slots_cases(&mut cs, rng, [b, 16, 32, 32], 1, EDGE, false);
    dw_slots_cases(&mut cs, rng, [b, 32, 16, 16], 2, EDGE, false);
    dw_slots_cases(&mut cs, rng, [b, 16, 32, 32], 1, &EDGE[..2], true);
    // The same stages with their pointwise convs fused in (one launch, depthwise output on chip).
    dw_pw_slots_case(&mut cs, rng, [b, 16, 32, 32], 1, EDGE, false);
    dw_pw_slots_case(&mut cs, rng, [b, 32, 16, 16], 2, EDGE, false);
    dw_pw_slots_case(&mut cs, rng, [b, 64, 8, 8], 1, &EDGE[..2], true);
    for c in [16, 64] {
        let var = Tensor::from_f64(&[c], &rng.uniforms(c, 0.0, 2.0), DType::F32);
        cs.push(case(
            "bn_invstd",
            "forward",
            format!("[{c}]"),
            vec![var],
            Box::new(|t| vec![crate::fused::sepconv::invstd(&t[0], 1e-5)]),
        ));
    }
    // Batch norm (non-affine as in every search cell, affine as in the stem).
    for (c, hw, affine) in [(16, 32, false), (32, 16, false), (64, 8, false), (48, 32, true)] {
        let x = rand(rng, &[b, c, hw, hw]);
        let dy = rand(rng, &[b, c, hw, hw]);
        let (g, bt, rm) = (rand(rng, &[c]), rand(rng, &[c]), rand(rng, &[c]));
        let rv = Tensor::from_f64(&[c], &rng.uniforms(c, 0.5, 1.5), DType::F32);
        let label = format!("[{b}, {c}, {hw}, {hw}]{}", if affine { " affine" } else { "" });
        let inputs = vec![x, dy, g, bt, rm, rv];
        let aff =
            move |t: &[Tensor]| if affine { (Some(t[2].clone()), Some(t[3].clone())) } else { (None, None) };
        cs.push(case(
            "batch_norm",
            "forward_train",
            label.clone(),
            inputs.clone(),
            Box::new(move |t| {
                let (g, bt) = aff(t);
                let (y, s) = ops::norm::batch_norm_train(&t[0], g.as_ref(), bt.as_ref(), 1e-5);
                vec![y, s.mean, s.invstd]
            }),
        ));
        cs.push(case(
            "batch_norm",
            "backward_train",
            label.clone(),
            inputs.clone(),
            Box::new(move |t| {
                let (g, bt) = aff(t);
                let (_, s) = ops::norm::batch_norm_train(&t[0], g.as_ref(), bt.as_ref(), 1e-5);
                let gr = ops::norm::batch_norm_train_bwd(&t[0], &t[1], &s, g.as_ref(), affine);
                let mut v = vec![gr.dx];
                v.extend(gr.dgamma);
                v.extend(gr.dbeta);
                v
            }),
        ));
        cs.push(case(
            "batch_norm",
            "update_running",
            label.clone(),
            inputs.clone(),
            Box::new(move |t| {
                let (g, bt) = aff(t);
                let (_, s) = ops::norm::batch_norm_train(&t[0], g.as_ref(), bt.as_ref(), 1e-5);
                let (mut rm, mut rv) = (t[4].clone(), t[5].clone());
                ops::norm::bn_update_running(t[0].shape(), &s, 1e-5, 0.1, &mut rm, &mut rv);
                vec![rm, rv]
            }),
        ));
        cs.push(case(
            "batch_norm",
            "forward_eval",
            label.clone(),
            inputs.clone(),
            Box::new(move |t| {
                let (g, bt) = aff(t);
                vec![ops::norm::batch_norm_eval(&t[0], g.as_ref(), bt.as_ref(), &t[4], &t[5], 1e-5)]
            }),
        ));
        cs.push(case(
            "batch_norm",
            "backward_eval",
            label.clone(),
            inputs.clone(),
            Box::new(move |t| {
                let (g, _) = aff(t);
                let gr = ops::norm::batch_norm_eval_bwd(&t[0], &t[1], &t[4], &t[5], g.as_ref(), 1e-5, affine);
                let mut v = vec![gr.dx];
                v.extend(gr.dgamma);
                v.extend(gr.dbeta);
                v
            }),
        ));
        cs.push(case(
            "batch_norm",
            "stats",
            label.clone(),
            inputs.clone(),
            Box::new(|t| {
                let (mean, var) = ops::norm::batch_stats(&t[0]);
                vec![mean, var]
            }),
        ));
        cs.push(case(
            "channel_sums",
            "forward",
            format!("[{b}, {c}, {hw}, {hw}]"),
            inputs,
            Box::new(|t| {
                let (sum, sumsq) = ops::reduce::channel_sums(&t[0]);
                vec![sum, sumsq]
            }),
        ));
    }
    // The non-affine BNs of an edge's four conv candidates in one slotted backward.
    bn_slots_case(&mut cs, rng, 4, [b, 16, 32, 32]);
    // Pools (3x3, pad 1) at stride 1 in normal cells and 2 on reduction edges.
    for (c, hw, s) in [(16, 32, 1), (32, 16, 1), (64, 8, 1), (32, 32, 2), (64, 16, 2)] {
        let x = rand(rng, &[b, c, hw, hw]);
        let y = ops::pool::max_pool(&x, 3, s, 1);
        let dy = rand(rng, y.shape());
        let label = format!("[{b}, {c}, {hw}, {hw}] s{s}");
        let xs = [b, c, hw, hw];
        cs.push(case(
            "max_pool",
            "forward",
            label.clone(),
            vec![x.clone()],
            Box::new(move |t| vec![ops::pool::max_pool(&t[0], 3, s, 1)]),
        ));
        cs.push(case(
            "max_pool",
            "backward",
            label.clone(),
            vec![x.clone(), dy.clone()],
            Box::new(move |t| vec![ops::pool::max_pool_bwd(&t[0], &t[1], 3, s, 1)]),
        ));
        cs.push(case(
            "avg_pool",
            "forward",
            label.clone(),
            vec![x.clone()],
            Box::new(move |t| vec![ops::pool::avg_pool(&t[0], 3, s, 1)]),
        ));
        cs.push(case(
            "avg_pool",
            "backward",
            label.clone(),
            vec![dy],
            Box::new(move |t| vec![ops::pool::avg_pool_bwd(&t[0], &xs, 3, s, 1)]),
        ));
        // The max + avg pair of every DARTS edge, one launch each way.
        let dy2 = rand(rng, &[2 * b, c, y.shape()[2], y.shape()[3]]);
        cs.push(case(
            "max_avg_pool",
            "forward",
            label.clone(),
            vec![x.clone()],
            Box::new(move |t| vec![ops::pool::max_avg_pool(&t[0], 3, s, 1)]),
        ));
        cs.push(case(
            "max_avg_pool",
            "backward",
            label,
            vec![x.clone(), dy2],
            Box::new(move |t| vec![ops::pool::max_avg_pool_bwd(&t[0], &t[1], 3, s, 1)]),
        ));
    }
    // Elementwise, mixed-op weighted sum, node concat, FactorizedReduce crop.
    for (c, hw) in [(16, 32), (64, 8)] {
        let shape = [b, c, hw, hw];
        let label = format!("{shape:?}");
        let (x, dy) = (rand(rng, &shape), rand(rng, &shape));
        cs.push(case(
            "relu",
            "forward",
            label.clone(),
            vec![x.clone()],
            Box::new(|t| vec![ops::elementwise::relu(&t[0])]),
        ));
        cs.push(case(
            "relu",
            "backward",
            label.clone(),
            vec![x.clone(), dy.clone()],
            Box::new(|t| vec![ops::elementwise::relu_bwd(&t[0], &t[1])]),
        ));
        // The second-order step's tensor arithmetic (w − ξ(g + wd·w), w ± r·v).
        cs.push(case(
            "add",
            "forward",
            label.clone(),
            vec![x.clone(), dy.clone()],
            Box::new(|t| vec![ops::elementwise::add(&t[0], &t[1])]),
        ));
        cs.push(case(
            "scale",
            "forward",
            label.clone(),
            vec![x.clone()],
            Box::new(|t| vec![ops::elementwise::scale(&t[0], -0.025)]),
        ));
        // The evaluation network's drop path: one factor per sample, 0 or 1 / keep, read at an
        // offset into a longer vector (a forward's masks are uploaded together).
        let keep: Vec<f64> = (0..b + 1).map(|i| if i % 2 == 0 { 1.0 / 0.7 } else { 0.0 }).collect();
        cs.push(case(
            "scale_samples",
            "forward",
            label.clone(),
            vec![x.clone(), Tensor::from_f64(&[b + 1], &keep, DType::F32)],
            Box::new(|t| vec![ops::elementwise::scale_samples(&t[0], &t[1], 1)]),
        ));
        cs.push(case(
            "axpy",
            "forward",
            label.clone(),
            vec![x.clone(), dy.clone()],
            Box::new(|t| {
                let mut y = t[1].clone();
                ops::elementwise::axpy(0.01, &t[0], &mut y);
                vec![y]
            }),
        ));
        cs.push(case(
            "zero",
            "forward",
            label.clone(),
            vec![x.clone()],
            Box::new(|t| vec![ops::elementwise::zero(&t[0], 1)]),
        ));
        // Positive values: the relative error of a sum that cancels measures the input's
        // conditioning, not the kernel.
        let pos = Tensor::from_f64(&shape, &rng.uniforms(shape.iter().product(), 0.0, 1.0), DType::F32);
        cs.push(case(
            "sum",
            "forward",
            label.clone(),
            vec![pos],
            Box::new(|t| vec![ops::elementwise::sum_all(&t[0])]),
        ));
        // Gradient accumulation of a node read by several ops: five terms in one launch.
        let terms: Vec<Tensor> = (0..5).map(|_| rand(rng, &shape)).collect();
        cs.push(case(
            "add_n",
            "forward",
            format!("5 x {label}"),
            terms,
            Box::new(|t| vec![ops::elementwise::add_n(&t.iter().collect::<Vec<_>>())]),
        ));
        let mut parts: Vec<Tensor> = (0..7).map(|_| rand(rng, &shape)).collect();
        parts.push(Tensor::from_f64(&[7], &rng.uniforms(7, 0.0, 1.0), DType::F32));
        parts.push(dy.clone());
        cs.push(case(
            "weighted_sum",
            "forward",
            format!("7 x {label}"),
            parts.clone(),
            Box::new(|t| vec![ops::elementwise::weighted_sum(&t[..7].iter().collect::<Vec<_>>(), &t[7])]),
        ));
        cs.push(case(
            "weighted_sum",
            "bwd_weights",
            format!("7 x {label}"),
            parts.clone(),
            Box::new(|t| {
                vec![ops::elementwise::weighted_sum_bwd_weights(&t[..7].iter().collect::<Vec<_>>(), &t[8])]
            }),
        ));
        cs.push(case(
            "weighted_sum",
            "bwd_inputs",
            format!("7 x {label}"),
            vec![dy.clone(), parts[7].clone()],
            Box::new(|t| ops::elementwise::weighted_sum_bwd_inputs(&t[0], &t[1])),
        ));
        mixed_cases(&mut cs, rng, &shape, &label);
        let nodes: Vec<Tensor> = (0..4).map(|_| rand(rng, &shape)).collect();
        cs.push(case(
            "concat",
            "forward",
            format!("4 x {label}"),
            nodes,
            Box::new(|t| vec![ops::layout::concat_channels(&t.iter().collect::<Vec<_>>())]),
        ));
        let cat = rand(rng, &[b, 4 * c, hw, hw]);
        cs.push(case(
            "concat",
            "split",
            format!("[{b}, {}, {hw}, {hw}]", 4 * c),
            vec![cat],
            Box::new(move |t| ops::layout::split_channels(&t[0], &[c; 4])),
        ));
        cs.push(case(
            "crop",
            "forward",
            label.clone(),
            vec![x],
            Box::new(move |t| vec![ops::layout::crop(&t[0], 1, 1, hw - 1, hw - 1)]),
        ));
        let dyc = rand(rng, &[b, c, hw - 1, hw - 1]);
        cs.push(case(
            "crop",
            "backward",
            label,
            vec![dyc],
            Box::new(move |t| vec![ops::layout::crop_bwd(&t[0], &shape, 1, 1)]),
        ));
    }
    // Head: global average pool, linear 256 -> 10, cross-entropy, accuracy; alphas softmax.
    let feat = rand(rng, &[b, 256, 8, 8]);
    cs.push(case(
        "global_avg_pool",
        "forward",
        format!("[{b}, 256, 8, 8]"),
        vec![feat],
        Box::new(|t| vec![ops::reduce::global_avg_pool(&t[0])]),
    ));
    let dpool = rand(rng, &[b, 256]);
    cs.push(case(
        "global_avg_pool",
        "backward",
        format!("[{b}, 256]"),
        vec![dpool.clone()],
        Box::new(move |t| vec![ops::reduce::global_avg_pool_bwd(&t[0], &[b, 256, 8, 8])]),
    ));
    let (lw, lb, dl) = (rand(rng, &[10, 256]), rand(rng, &[10]), rand(rng, &[b, 10]));
    cs.push(case(
        "linear",
        "forward",
        "256 -> 10".into(),
        vec![dpool.clone(), lw.clone(), lb.clone()],
        Box::new(|t| vec![ops::linear::linear(&t[0], &t[1], Some(&t[2]))]),
    ));
    cs.push(case(
        "linear",
        "bwd_data",
        "256 -> 10".into(),
        vec![dl.clone(), lw.clone()],
        Box::new(move |t| vec![ops::linear::linear_bwd_data(&t[0], &t[1], &[b, 256])]),
    ));
    cs.push(case(
        "linear",
        "bwd_weight",
        "256 -> 10".into(),
        vec![dpool, dl.clone(), lw],
        Box::new(|t| {
            let (dw, db) = ops::linear::linear_bwd_weight(&t[0], &t[1], &t[2]);
            vec![dw, db]
        }),
    ));
    let labels: Vec<u32> = (0..b).map(|_| rng.below(10) as u32).collect();
    let l2 = labels.clone();
    cs.push(case(
        "cross_entropy",
        "forward+backward",
        format!("[{b}, 10]"),
        vec![dl.clone()],
        Box::new(move |t| {
            let (loss, probs) = ops::loss::softmax_xent(&t[0], (&l2).into());
            let one = Tensor::full_on(&[], 1.0, t[0].dtype(), &t[0].device());
            let d = ops::loss::softmax_xent_bwd(&probs, (&l2).into(), &one);
            vec![loss, d]
        }),
    ));
    let l3 = labels.clone();
    cs.push(case(
        "cross_entropy",
        "label smoothing 0.1",
        format!("[{b}, 10]"),
        vec![dl.clone()],
        Box::new(move |t| {
            let (loss, probs) = ops::loss::softmax_xent_smooth(&t[0], (&l3).into(), 0.1);
            let one = Tensor::full_on(&[], 1.0, t[0].dtype(), &t[0].device());
            let d = ops::loss::softmax_xent_smooth_bwd(&probs, (&l3).into(), 0.1, &one);
            vec![loss, d]
        }),
    ));
    cs.push(case(
        "accuracy",
        "top1",
        format!("[{b}, 10]"),
        vec![dl],
        Box::new(move |t| vec![Tensor::scalar(ops::loss::top1_correct(&t[0], &labels) as f64, DType::F32)]),
    ));
    let alpha = rand(rng, &[14, 8]);
    let dsm = rand(rng, &[14, 8]);
    cs.push(case(
        "softmax",
        "forward",
        "[14, 8]".into(),
        vec![alpha.clone()],
        Box::new(|t| vec![ops::softmax::softmax(&t[0])]),
    ));
    cs.push(case(
        "softmax",
        "backward",
        "[14, 8]".into(),
        vec![alpha, dsm],
        Box::new(|t| vec![ops::softmax::softmax_bwd(&ops::softmax::softmax(&t[0]), &t[1])]),
    ));
    optimiser_cases(&mut cs, rng);
    pc_cases(&mut cs, rng, b);
    fair_cases(&mut cs, rng);
    cs
}

/// FairDARTS: the sigmoid of both cells' α `[14, 7]` and the zero-one loss of σ(α) (scale 1/196:
/// −mean over both cells), forward and backward.
fn fair_cases(cs: &mut Vec<Case>, rng: &mut Rng) {
    let (alpha, dy) = (rand(rng, &[14, 7]), rand(rng, &[14, 7]));
    cs.push(case(
        "sigmoid",
        "forward",
        "[14, 7]".into(),
        vec![alpha.clone()],
        Box::new(|t| vec![ops::elementwise::sigmoid(&t[0])]),
    ));
    cs.push(case(
        "sigmoid",
        "backward",
        "[14, 7]".into(),
        vec![alpha.clone(), dy],
        Box::new(|t| vec![ops::elementwise::sigmoid_bwd(&ops::elementwise::sigmoid(&t[0]), &t[1])]),
    ));
    let dloss = rand(rng, &[1]);
    cs.push(case(
        "zero_one",
        "forward",
        "[14, 7]".into(),
        vec![alpha.clone()],
        Box::new(|t| vec![ops::loss::zero_one(&ops::elementwise::sigmoid(&t[0]), 1.0 / 196.0)]),
    ));
    cs.push(case(
        "zero_one",
        "backward",
        "[14, 7]".into(),
        vec![alpha, dloss],
        Box::new(|t| vec![ops::loss::zero_one_bwd(&ops::elementwise::sigmoid(&t[0]), 1.0 / 196.0, &t[1])]),
    ));
}

/// PC-DARTS (k = 4): the partial-channel merge on a normal edge of the first stage (with the
/// node's accumulator) and on the reduction edges of both reduction cells; the node softmax.
fn pc_cases(cs: &mut Vec<Case>, rng: &mut Rng, b: usize) {
    for (c, hw, stride) in [(16, 32, 1), (32, 32, 2), (64, 16, 2)] {
        let o = hw / stride;
        // x: the bypassed channels x[:, c/4:] of the edge's input, their own tensor.
        let (m, x, s) = (rand(rng, &[b, c / 4, o, o]), rand(rng, &[b, c - c / 4, hw, hw]), rand(rng, &[14]));
        let (acc, dy) = (rand(rng, &[b, c, o, o]), rand(rng, &[b, c, o, o]));
        let label = format!("[{b}, {c}, {hw}, {hw}] k4 s{stride}");
        cs.push(case(
            "pc_merge",
            "forward",
            label.clone(),
            vec![m.clone(), x.clone(), s.clone(), acc],
            Box::new(move |t| {
                vec![ops::pcdarts::pc_merge(&t[0], Some(&t[1]), Some(&t[3]), &t[2], 5, 4, stride)]
            }),
        ));
        cs.push(case(
            "pc_merge",
            "backward",
            label,
            vec![m, x, s, dy],
            Box::new(move |t| {
                let g = ops::pcdarts::pc_merge_bwd(
                    Some(&t[0]),
                    Some(&t[1]),
                    &t[3],
                    &t[2],
                    5,
                    4,
                    stride,
                    [true; 3],
                );
                g.into_iter().map(|d| d.expect("every gradient asked for")).collect()
            }),
        ));
    }
    let (beta, dy) = (rand(rng, &[14]), rand(rng, &[14]));
    cs.push(case(
        "node_softmax",
        "forward",
        "[14]".into(),
        vec![beta.clone()],
        Box::new(|t| vec![ops::pcdarts::node_softmax(&t[0], 4)]),
    ));
    cs.push(case(
        "node_softmax",
        "backward",
        "[14]".into(),
        vec![beta, dy],
        Box::new(|t| vec![ops::pcdarts::node_softmax_bwd(&ops::pcdarts::node_softmax(&t[0], 4), &t[1], 4)]),
    ));
}

/// The gradient norm over every weight tensor of the search network, and the optimiser steps
/// with the search's hyperparameters: SGD on one tensor of each weight shape (an elementwise
/// kernel: more tensors of a shape add launches, not coverage, and the emulator checks every
/// allocation's guards after every launch), Adam on the alphas. An optimiser case returns the
/// updated parameters followed by the updated state.
fn optimiser_cases(cs: &mut Vec<Case>, rng: &mut Rng) {
    let (_, store) = Network::new(NetConfig::default(), DType::F32, &mut Rng::new(1));
    let shapes = |group: Groups| -> Vec<Vec<usize>> {
        store.params.iter().filter(|p| p.group.intersects(group)).map(|p| p.value.shape().to_vec()).collect()
    };
    let (weights, alphas) = (shapes(Groups::WEIGHTS), shapes(Groups::ARCH));
    let label = |shapes: &[Vec<usize>], what: &str| {
        let n: usize = shapes.iter().map(|s| s.iter().product::<usize>()).sum();
        format!("{} {what}, {n} values", shapes.len())
    };
    let randn = |rng: &mut Rng, shapes: &[Vec<usize>]| -> Vec<Tensor> {
        shapes.iter().map(|s| rand(rng, s)).collect()
    };
    let uniform = |rng: &mut Rng, s: &[usize], lo, hi| {
        Tensor::from_f64(s, &rng.uniforms(s.iter().product(), lo, hi), DType::F32)
    };
    let grads = randn(rng, &weights);
    cs.push(case(
        "grad_norm",
        "sum_sq_many",
        label(&weights, "weights"),
        grads,
        Box::new(|t| {
            vec![Tensor::scalar(ops::elementwise::sum_sq_many(&t.iter().collect::<Vec<_>>()), DType::F64)]
        }),
    ));
    let mut distinct = weights.clone();
    distinct.sort();
    distinct.dedup();
    let k = distinct.len();
    let mut sgd_inputs = randn(rng, &distinct);
    sgd_inputs.extend(randn(rng, &distinct));
    sgd_inputs.extend(randn(rng, &distinct));
    for (part, first) in [("first_step", true), ("later_step", false)] {
        cs.push(case(
            "sgd",
            part,
            label(&distinct, "weight shapes"),
            sgd_inputs.clone(),
            // Inputs: parameters, gradients, momentum buffers, k tensors apiece.
            Box::new(move |t| {
                let (mut w, mut buf) = (t[..k].to_vec(), t[2 * k..].to_vec());
                for ((w, g), buf) in w.iter_mut().zip(&t[k..2 * k]).zip(&mut buf) {
                    ops::optim::sgd_step(w, g, buf, 0.025, 0.9, 3e-4, first);
                }
                w.extend(buf);
                w
            }),
        ));
    }
    tensor_list_cases(cs, rng, &weights);
    let a = alphas.len();
    for (part, step) in [("first_step", 1), ("later_step", 10)] {
        // Alphas start at 1e-3 N(0, 1); their gradients and moments are of the same order.
        let mut inputs: Vec<Tensor> = alphas.iter().map(|s| uniform(rng, s, -2e-3, 2e-3)).collect();
        inputs.extend(alphas.iter().map(|s| uniform(rng, s, -1e-3, 1e-3)));
        if step == 1 {
            // Adam's moments start at zero.
            inputs.extend(alphas.iter().chain(&alphas).map(|s| Tensor::zeros(s, DType::F32)));
        } else {
            inputs.extend(alphas.iter().map(|s| uniform(rng, s, -1e-3, 1e-3)));
            inputs.extend(alphas.iter().map(|s| uniform(rng, s, 0.0, 1e-6)));
        }
        cs.push(case(
            "adam",
            part,
            label(&alphas, "alphas"),
            inputs,
            Box::new(move |t| {
                let (mut w, mut m, mut v) = (t[..a].to_vec(), t[2 * a..3 * a].to_vec(), t[3 * a..].to_vec());
                for (((w, g), m), v) in w.iter_mut().zip(&t[a..2 * a]).zip(&mut m).zip(&mut v) {
                    ops::optim::adam_step(w, g, m, v, 3e-4, (0.5, 0.999), 1e-8, 1e-3, step, None);
                }
                w.extend(m);
                w.extend(v);
                w
            }),
        ));
    }
}

/// The multi-tensor (tensor-list) ops a step runs: on an odd list (lengths 1, 7, 257, a chunk
/// and a chunk + 1, 100003: partial chunks, single-element tensors, one tensor over many
/// chunks) and, for the gradient norm and SGD, on every weight tensor of the search network as
/// the weight step runs them. Each case computes its device scalars on the device (the norm
/// kernels) and feeds them to the op under test, as the step does.
fn tensor_list_cases(cs: &mut Vec<Case>, rng: &mut Rng, weights: &[Vec<usize>]) {
    use ops::optim::{self as opt, scalar};
    let odd: Vec<Vec<usize>> = [1, 7, 257, 4096, 4097, 100_003, 3].iter().map(|&n| vec![n]).collect();
    let label = |shapes: &[Vec<usize>]| {
        let n: usize = shapes.iter().map(|s| s.iter().product::<usize>()).sum();
        format!("{} tensors, {n} values", shapes.len())
    };
    let randn = |rng: &mut Rng, shapes: &[Vec<usize>], k: usize| -> Vec<Tensor> {
        (0..k).flat_map(|_| shapes.iter().map(|s| rand(rng, s)).collect::<Vec<_>>()).collect()
    };
    for shapes in [&odd[..], weights] {
        let k = shapes.len();
        // Max norm 5 clips N(0, 1) gradients of these sizes; 1e4 does not (coefficient 1).
        for (part, max_norm) in [("clip_scalars", 5.0), ("clip_scalars_1", 1e4)] {
            cs.push(case(
                "grad_norm",
                part,
                label(shapes),
                randn(rng, shapes, 1),
                Box::new(move |t| vec![opt::clip_scalars(&t.iter().collect::<Vec<_>>(), max_norm)]),
            ));
        }
        // Inputs: parameters, gradients, momentum buffers, k tensors apiece.
        let inputs = randn(rng, shapes, 3);
        for (part, first) in [("first_step", true), ("later_step", false)] {
            cs.push(case(
                "sgd_many",
                part,
                label(shapes),
                inputs.clone(),
                Box::new(move |t| {
                    let (mut w, mut buf) = (t[..k].to_vec(), t[2 * k..].to_vec());
                    let g: Vec<&Tensor> = t[k..2 * k].iter().collect();
                    let clip = opt::clip_scalars(&g, 5.0);
                    let mut wm: Vec<&mut Tensor> = w.iter_mut().collect();
                    let mut bm: Vec<&mut Tensor> = buf.iter_mut().collect();
                    opt::sgd_step_many(&mut wm, &g, &mut bm, Some(&clip), 0.025, 0.9, 3e-4, first);
                    w.extend(buf);
                    w.push(clip);
                    w
                }),
            ));
        }
    }
    let k = odd.len();
    // w ± r v with r = 0.01 / ‖v‖ on the device. Inputs: w, v.
    cs.push(case(
        "axpy_many",
        "w_minus_2rv",
        label(&odd),
        randn(rng, &odd, 2),
        Box::new(move |t| {
            let mut w = t[..k].to_vec();
            let v: Vec<&Tensor> = t[k..].iter().collect();
            let r = opt::ratio_scalars(&v, 0.01);
            let mut wm: Vec<&mut Tensor> = w.iter_mut().collect();
            opt::axpy_many(&mut wm, &v, &r, scalar::RATIO, -2.0);
            w.push(r);
            w
        }),
    ));
    // d − ξ (g+ − g−) / (2r). Inputs: d, g+, g−, v (for r). g± differ by a small step, as the
    // finite differences do.
    let mut inputs = randn(rng, &odd, 2);
    let step = randn(rng, &odd, 1);
    let minus: Vec<Tensor> = inputs[k..]
        .iter()
        .zip(&step)
        .map(|(p, s)| ops::elementwise::add(p, &ops::elementwise::scale(s, 1e-3)))
        .collect();
    inputs.extend(minus);
    inputs.extend(randn(rng, &odd, 1));
    cs.push(case(
        "hvp_combine",
        "second_order",
        label(&odd),
        inputs,
        Box::new(move |t| {
            let l = |j: usize| t[j * k..(j + 1) * k].iter().collect::<Vec<_>>();
            let r = opt::ratio_scalars(&l(3), 0.01);
            opt::hvp_combine(&l(0), &l(1), &l(2), &r, 0.025)
        }),
    ));
    // w' = w − ξ (m buf + g + wd w), without a momentum buffer on every other tensor (as before
    // the first step). Inputs: w, g, buf.
    cs.push(case(
        "unrolled_weights",
        "second_order",
        label(&odd),
        randn(rng, &odd, 3),
        Box::new(move |t| {
            let bufs: Vec<Option<&Tensor>> =
                t[2 * k..].iter().enumerate().map(|(j, b)| (j % 2 == 0).then_some(b)).collect();
            let (w, g): (Vec<&Tensor>, Vec<&Tensor>) =
                (t[..k].iter().collect(), t[k..2 * k].iter().collect());
            opt::unrolled_weights(&w, &g, &bufs, 0.025, 0.9, 3e-4)
        }),
    ));
}

/// The device for a case's second run, and how it differs from the first.
fn rerun_device(device: &Device) -> (Device, Rerun) {
    #[cfg(feature = "emu")]
    if device.runtime().is_some_and(|rt| rt.kind() == crate::backend::gpu::RuntimeKind::Emu) {
        // `device::open` makes schedule 0 (increasing order); the other order is what shows a
        // thread reading shared memory before or after its owner wrote it.
        let rt = crate::backend::gpu::emu::EmuRuntime::new(1, 0);
        return (Device::Gpu(std::sync::Arc::new(rt)), Rerun::OtherSchedule);
    }
    (device.clone(), Rerun::Repeat)
}

/// Runs `cases` on `device` (timing `reps` calls each) against the CPU in f64, and each a second
/// time ([`Rerun`]) demanding the same bits.
pub fn run(cases: &[Case], device: &Device, reps: usize, mut progress: impl FnMut(&Row)) -> Vec<Row> {
    let (twin, rerun) = rerun_device(device);
    let sync = |d: &Device| {
        if let Some(rt) = d.runtime() {
            crate::tensor::gpu_ok(rt.synchronize());
        }
    };
    let mut rows = Vec::new();
    for c in cases {
        let reference: Vec<Tensor> = {
            let inputs: Vec<Tensor> = c.inputs.iter().map(|t| t.to_dtype(DType::F64)).collect();
            (c.run)(&inputs)
        };
        let inputs: Vec<Tensor> = c.inputs.iter().map(|t| t.to_device(device)).collect();
        let out = (c.run)(&inputs);
        sync(device);
        let mut times: Vec<f64> = (0..reps)
            .map(|_| {
                let t0 = Instant::now();
                drop((c.run)(&inputs));
                sync(device);
                t0.elapsed().as_secs_f64() * 1e3
            })
            .collect();
        times.sort_by(|a, b| a.total_cmp(b));
        let again = (c.run)(&c.inputs.iter().map(|t| t.to_device(&twin)).collect::<Vec<_>>());
        let (mut worst_rel, mut worst_abs, mut finite) = (0.0f64, 0.0f64, true);
        let mut identical = out.len() == again.len();
        for ((o, r), a) in out.iter().zip(&reference).zip(&again) {
            let (o, r, a) = (o.to_f64_vec(), r.to_f64_vec(), a.to_f64_vec());
            finite &= o.iter().all(|v| v.is_finite());
            worst_rel = worst_rel.max(rel_err(&o, &r));
            worst_abs = o.iter().zip(&r).map(|(a, b)| (a - b).abs()).fold(worst_abs, f64::max);
            identical &= o.len() == a.len() && o.iter().zip(&a).all(|(x, y)| x.to_bits() == y.to_bits());
        }
        let pass = finite && identical && out.len() == reference.len() && worst_rel < TOLERANCE;
        let row = Row {
            op: c.op,
            part: c.part,
            shape: c.shape.clone(),
            rel_err: worst_rel,
            max_abs: worst_abs,
            ms: times.get(times.len() / 2).copied().unwrap_or(f64::NAN),
            identical,
            rerun,
            pass,
        };
        progress(&row);
        rows.push(row);
    }
    rows
}

/// Formats one row of the report table.
pub fn format_row(r: &Row) -> String {
    format!(
        "{:<16} {:<16} {:<34} {:>9.2e} {:>9.2e} {:>9.3} {}",
        r.op,
        r.part,
        r.shape,
        r.rel_err,
        r.max_abs,
        r.ms,
        match (r.pass, r.identical, r.rerun) {
            (_, false, Rerun::OtherSchedule) => "FAIL (schedules differ)",
            (_, false, Rerun::Repeat) => "FAIL (runs differ)",
            (true, ..) => "pass",
            (false, ..) => "FAIL",
        }
    )
}

/// The table header matching [`format_row`].
pub fn header() -> String {
    format!(
        "{:<16} {:<16} {:<34} {:>9} {:>9} {:>9} {}",
        "op", "part", "shape", "rel err", "max abs", "ms", "result"
    )
}
