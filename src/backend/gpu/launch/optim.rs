//! `kernels/optim.cu`: SGD with momentum and weight decay, and Adam, elementwise (PyTorch
//! semantics, matching `backend::cpu::optim`); and the multi-tensor kernels that run a whole
//! tensor list in one launch (gradient norm and clip coefficient into a device scalar buffer,
//! clipped SGD, axpy scaled by a device scalar, the unrolled weights).

use super::{check_len, grid_for, int, BLOCK};
use crate::backend::gpu::{k, KernelId};
use crate::backend::gpu::{Arg, DevPtr, Gpu, GpuBuf, GpuError, LaunchCfg};

/// d = g + wd w; buf = first ? d : momentum buf + d; w -= lr buf.
#[allow(clippy::too_many_arguments)]
pub fn sgd_step(
    w: &mut GpuBuf,
    g: &GpuBuf,
    buf: &mut GpuBuf,
    lr: f32,
    momentum: f32,
    weight_decay: f32,
    first_step: bool,
) -> Result<(), GpuError> {
    let n = w.len();
    check_len("sgd_step", n, &[("g", g), ("buf", buf)]);
    w.runtime().launch(
        k::sgd_step_f32,
        LaunchCfg::linear(grid_for(n), BLOCK),
        &[
            w.arg(),
            g.arg(),
            buf.arg(),
            Arg::F32(lr),
            Arg::F32(momentum),
            Arg::F32(weight_decay),
            Arg::I32(first_step as i32),
            Arg::I32(int("sgd_step", n)),
        ],
    )
}

/// One Adam step (`step` counts from 1). The betas stay f64 because 1 − β and the bias
/// corrections are computed from them here, as PyTorch does: from β = 0.999 rounded to f32,
/// 1 − β would be 1.3e-5 off. With `bias_at`, the kernel reads the bias corrections
/// [1 − β1^t, 1 − β2^t] from the device instead (two floats from there: a replayed graph then
/// uses the current step's).
#[allow(clippy::too_many_arguments)]
pub fn adam_step(
    w: &mut GpuBuf,
    g: &GpuBuf,
    m: &mut GpuBuf,
    v: &mut GpuBuf,
    lr: f32,
    beta1: f64,
    beta2: f64,
    eps: f32,
    weight_decay: f32,
    step: u32,
    bias_at: Option<DevScalar>,
) -> Result<(), GpuError> {
    assert!(step >= 1, "adam_step: step counts from 1");
    if let Some(b) = bias_at {
        assert!(
            b.index + 1 < b.buf.len(),
            "adam_step: bias corrections at {} of a buffer of {}",
            b.index,
            b.buf.len()
        );
    }
    let n = w.len();
    check_len("adam_step", n, &[("g", g), ("m", m), ("v", v)]);
    let t = step.min(i32::MAX as u32) as i32;
    let (bias_c1, bias_c2) = (1.0 - beta1.powi(t), 1.0 - beta2.powi(t));
    w.runtime().launch(
        k::adam_step_f32,
        LaunchCfg::linear(grid_for(n), BLOCK),
        &[
            w.arg(),
            g.arg(),
            m.arg(),
            v.arg(),
            Arg::F32(lr),
            Arg::F32(beta1 as f32),
            Arg::F32(beta2 as f32),
            Arg::F32((1.0 - beta1) as f32),
            Arg::F32((1.0 - beta2) as f32),
            Arg::F32(eps),
            Arg::F32(weight_decay),
            Arg::F32(bias_c1 as f32),
            Arg::F32(bias_c2 as f32),
            scalar_arg(bias_at),
            Arg::I32(int("adam_step", n)),
        ],
    )
}

/// Elements per chunk of a multi-tensor launch (`MT_CHUNK` in `kernels/optim.cu`): one block per
/// chunk, one partial per chunk in the norm.
pub const MT_CHUNK: usize = 4096;

/// One tensor of a multi-tensor launch, as the kernels read it (`struct MtTensor` in
/// `kernels/optim.cu`): up to four operand pointers (null where unused), the length, and the
/// index of the tensor's first chunk in the launch.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MtTensor {
    /// Operands (meaning per kernel; 0 is null).
    pub p: [DevPtr; 4],
    /// Elements.
    pub n: i32,
    /// First chunk of this tensor (prefix sum of the chunk counts before it).
    pub chunk0: i32,
}

const _: () = assert!(std::mem::size_of::<MtTensor>() == 40 && std::mem::align_of::<MtTensor>() == 8);

// SAFETY: `MtTensor` is `repr(C)`, made of integers only, and has no padding (4 * 8 + 4 + 4 =
// 40 bytes, checked above), so every bit pattern is valid and its bytes are all initialised.
unsafe impl bytemuck::Zeroable for MtTensor {}
unsafe impl bytemuck::Pod for MtTensor {}

/// Positions in the scalar buffer written by [`norm_scalars`].
pub mod scalar {
    /// ‖x‖ over the whole list.
    pub const NORM: usize = 0;
    /// The clip coefficient min(1, max_norm / (‖x‖ + 1e-6)).
    pub const CLIP_COEF: usize = 1;
    /// num / ‖x‖.
    pub const RATIO: usize = 2;
    /// ‖x‖ / num.
    pub const INV_RATIO: usize = 3;
    /// Length of the buffer.
    pub const LEN: usize = 4;
}

/// A tensor list uploaded for one launch: the descriptors on the device and the grid.
struct List {
    descs: GpuBuf,
    ntensors: i32,
    chunks: usize,
}

/// Uploads the descriptors of tensors with operands `ops[k]` and lengths `lens[k]` (one
/// host-to-device copy, of constant bytes: a graph records it, [`Gpu::htod_const`]).
fn upload(rt: &Gpu, op: &str, ops: &[[DevPtr; 4]], lens: &[usize]) -> Result<List, GpuError> {
    let mut chunks = 0usize;
    let descs: Vec<MtTensor> = ops
        .iter()
        .zip(lens)
        .map(|(&p, &n)| {
            let d = MtTensor { p, n: int(op, n), chunk0: int(op, chunks) };
            chunks += n.div_ceil(MT_CHUNK);
            d
        })
        .collect();
    int(op, chunks);
    let bytes: &[u8] = bytemuck::cast_slice(&descs);
    let buf = GpuBuf::alloc(rt, bytes.len().div_ceil(4).max(1))?;
    if !bytes.is_empty() {
        rt.htod_const(bytes, buf.ptr())?;
    }
    Ok(List { descs: buf, ntensors: int(op, descs.len()), chunks })
}

/// A device scalar: element `index` of `buf`.
#[derive(Clone, Copy)]
pub struct DevScalar<'a> {
    /// The buffer.
    pub buf: &'a GpuBuf,
    /// The element.
    pub index: usize,
}

impl DevScalar<'_> {
    fn arg(&self) -> Arg<'static> {
        assert!(
            self.index < self.buf.len(),
            "device scalar {} of a buffer of {}",
            self.index,
            self.buf.len()
        );
        Arg::Ptr(self.buf.ptr() + 4 * self.index as u64)
    }
}

fn scalar_arg(s: Option<DevScalar>) -> Arg<'static> {
    s.map_or(Arg::Ptr(0), |s| s.arg())
}

/// A hyperparameter of a multi-tensor launch: a value fixed when it is issued, or a device
/// scalar the kernel reads when it runs (so a replayed graph uses the current value: the
/// learning rate follows its schedule).
#[derive(Clone, Copy)]
pub enum Hyper<'a> {
    /// Fixed at issue.
    Value(f32),
    /// Read when the kernel runs.
    At(DevScalar<'a>),
}

impl Hyper<'_> {
    /// The kernel's (value, pointer) argument pair: the pointer is null for a fixed value.
    fn args(&self) -> [Arg<'static>; 2] {
        match self {
            Hyper::Value(v) => [Arg::F32(*v), Arg::Ptr(0)],
            Hyper::At(s) => [Arg::F32(0.0), s.arg()],
        }
    }
}

fn runtime_of<'a>(op: &str, bufs: &[&'a GpuBuf]) -> &'a Gpu {
    bufs.first().unwrap_or_else(|| panic!("{op}: an empty tensor list")).runtime()
}

/// ‖xs‖ over every tensor of the list, and the scalars derived from it, into a new device buffer
/// of [`scalar::LEN`] floats: [‖x‖, min(1, max_norm / (‖x‖ + 1e-6)), num / ‖x‖, ‖x‖ / num].
/// Two launches (block partials per chunk, then one block) and one descriptor upload.
pub fn norm_scalars(xs: &[&GpuBuf], max_norm: f32, num: f32) -> Result<GpuBuf, GpuError> {
    let op = "norm_scalars";
    let rt = runtime_of(op, xs);
    let ops: Vec<[DevPtr; 4]> = xs.iter().map(|x| [x.ptr(), 0, 0, 0]).collect();
    let lens: Vec<usize> = xs.iter().map(|x| x.len()).collect();
    let list = upload(rt, op, &ops, &lens)?;
    let partials = GpuBuf::alloc(rt, list.chunks.max(1))?;
    if list.chunks > 0 {
        rt.launch(
            k::mt_sumsq_partial_f32,
            LaunchCfg::linear(list.chunks as u32, BLOCK),
            &[list.descs.arg(), Arg::I32(list.ntensors), partials.arg()],
        )?;
    }
    let out = GpuBuf::alloc(rt, scalar::LEN)?;
    rt.launch(
        k::mt_norm_final_f32,
        LaunchCfg::linear(1, BLOCK),
        &[partials.arg(), Arg::I32(list.chunks as i32), out.arg(), Arg::F32(max_norm), Arg::F32(num)],
    )?;
    Ok(out)
}

fn launch_list(rt: &Gpu, kernel: KernelId, list: &List, rest: &[Arg]) -> Result<(), GpuError> {
    if list.chunks == 0 {
        return Ok(());
    }
    let mut args = vec![list.descs.arg(), Arg::I32(list.ntensors)];
    args.extend_from_slice(rest);
    rt.launch(kernel, LaunchCfg::linear(list.chunks as u32, BLOCK), &args)
}

/// SGD over a tensor list in one launch: for each k, `sgd_step` on (ws[k], coef·gs[k], bufs[k])
/// with c = *coef (the clip coefficient; 1 when `None`) and learning rate `lr`.
#[allow(clippy::too_many_arguments)]
pub fn sgd_step_many(
    ws: &mut [&mut GpuBuf],
    gs: &[&GpuBuf],
    bufs: &mut [&mut GpuBuf],
    coef: Option<DevScalar>,
    lr: Hyper,
    momentum: f32,
    weight_decay: f32,
    first_step: bool,
) -> Result<(), GpuError> {
    let op = "sgd_step_many";
    assert!(ws.len() == gs.len() && ws.len() == bufs.len(), "{op}: list lengths differ");
    let rt = runtime_of(op, gs).clone();
    let mut ops = Vec::with_capacity(ws.len());
    let mut lens = Vec::with_capacity(ws.len());
    for ((w, g), b) in ws.iter().zip(gs).zip(bufs.iter()) {
        check_len(op, w.len(), &[("g", g), ("buf", b)]);
        ops.push([w.ptr(), g.ptr(), b.ptr(), 0]);
        lens.push(w.len());
    }
    let list = upload(&rt, op, &ops, &lens)?;
    launch_list(
        &rt,
        k::mt_sgd_f32,
        &list,
        &[
            scalar_arg(coef),
            lr.args()[0],
            lr.args()[1],
            Arg::F32(momentum),
            Arg::F32(weight_decay),
            Arg::I32(first_step as i32),
        ],
    )
}

/// ys[k] += (mult · *scalar) xs[k] for every k, in one launch (mult alone when `scalar` is None).
pub fn axpy_many(
    ys: &mut [&mut GpuBuf],
    xs: &[&GpuBuf],
    scalar: Option<DevScalar>,
    mult: f32,
) -> Result<(), GpuError> {
    let op = "axpy_many";
    assert_eq!(ys.len(), xs.len(), "{op}: list lengths differ");
    let rt = runtime_of(op, xs).clone();
    let mut ops = Vec::with_capacity(ys.len());
    let mut lens = Vec::with_capacity(ys.len());
    for (y, x) in ys.iter().zip(xs) {
        check_len(op, y.len(), &[("x", x)]);
        ops.push([y.ptr(), x.ptr(), 0, 0]);
        lens.push(y.len());
    }
    let list = upload(&rt, op, &ops, &lens)?;
    launch_list(&rt, k::mt_axpy_f32, &list, &[scalar_arg(scalar), Arg::F32(mult), Arg::Ptr(0)])
}

/// outs[k] = ys[k] + (mult · *scale · *scalar)(xs[k] − x2s[k]) for every k, in one launch (a
/// factor absent where it is `None`).
pub fn axpy_diff_many(
    outs: &mut [&mut GpuBuf],
    ys: &[&GpuBuf],
    xs: &[&GpuBuf],
    x2s: &[&GpuBuf],
    scalar: Option<DevScalar>,
    mult: f32,
    scale: Option<DevScalar>,
) -> Result<(), GpuError> {
    let op = "axpy_diff_many";
    assert!(
        outs.len() == ys.len() && ys.len() == xs.len() && xs.len() == x2s.len(),
        "{op}: list lengths differ"
    );
    let rt = runtime_of(op, ys).clone();
    let mut ops = Vec::with_capacity(ys.len());
    let mut lens = Vec::with_capacity(ys.len());
    for (((o, y), x), x2) in outs.iter().zip(ys).zip(xs).zip(x2s) {
        check_len(op, o.len(), &[("y", y), ("x", x), ("x2", x2)]);
        ops.push([y.ptr(), x.ptr(), x2.ptr(), o.ptr()]);
        lens.push(o.len());
    }
    let list = upload(&rt, op, &ops, &lens)?;
    launch_list(&rt, k::mt_axpy_f32, &list, &[scalar_arg(scalar), Arg::F32(mult), scalar_arg(scale)])
}

/// The unrolled weights outs[k] = ws[k] − ξ (momentum·bufs[k] + gs[k] + wd·ws[k]) for every k
/// (the momentum term is absent where `bufs[k]` is `None`), in one launch.
pub fn unroll_many(
    outs: &mut [&mut GpuBuf],
    ws: &[&GpuBuf],
    gs: &[&GpuBuf],
    bufs: &[Option<&GpuBuf>],
    xi: Hyper,
    momentum: f32,
    weight_decay: f32,
) -> Result<(), GpuError> {
    let op = "unroll_many";
    assert!(
        outs.len() == ws.len() && ws.len() == gs.len() && gs.len() == bufs.len(),
        "{op}: list lengths differ"
    );
    let rt = runtime_of(op, ws).clone();
    let mut ops = Vec::with_capacity(ws.len());
    let mut lens = Vec::with_capacity(ws.len());
    for (((o, w), g), b) in outs.iter().zip(ws).zip(gs).zip(bufs) {
        check_len(op, o.len(), &[("w", w), ("g", g)]);
        if let Some(b) = b {
            check_len(op, o.len(), &[("buf", b)]);
        }
        ops.push([w.ptr(), g.ptr(), b.map_or(0, |b| b.ptr()), o.ptr()]);
        lens.push(o.len());
    }
    let list = upload(&rt, op, &ops, &lens)?;
    launch_list(
        &rt,
        k::mt_unroll_f32,
        &list,
        &[xi.args()[0], xi.args()[1], Arg::F32(momentum), Arg::F32(weight_decay)],
    )
}
