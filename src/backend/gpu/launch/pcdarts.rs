//! Launches of `kernels/pcdarts.cu`: PC-DARTS' partial-channel merge (forward; backward and its
//! ds reduction) and the per-node softmax of β. Each kernel takes one parameter struct, laid out
//! here exactly as in the `.cu` file (`#[repr(C)]`, pointers as u64). Mirrors
//! `backend::cpu::pcdarts`.

use super::{grid_for, int, partials_for, BLOCK};
use crate::backend::geom::{node_edges, PcGeom};
use crate::backend::gpu::k;
use crate::backend::gpu::{Arg, DevPtr, GpuBuf, GpuError, LaunchCfg};

/// `struct PcMerge` of `kernels/pcdarts.cu`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct PcMerge {
    m: DevPtr,
    x: DevPtr,
    acc: DevPtr,
    s: DevPtr,
    dy: DevPtr,
    y: DevPtr,
    dm: DevPtr,
    dx: DevPtr,
    partials: DevPtr,
    dgrad: DevPtr,
    n: i32,
    c: i32,
    h: i32,
    w: i32,
    k: i32,
    stride: i32,
    len: i32,
    index: i32,
    nparts: i32,
    pad: i32,
}

/// `struct NodeSoftmax` of `kernels/pcdarts.cu`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct NodeSoftmax {
    beta: DevPtr,
    y: DevPtr,
    dy: DevPtr,
    out: DevPtr,
    steps: i32,
    pad: i32,
}

// No implicit padding: pointers, then an even number of 4-byte fields.
const _: () = assert!(std::mem::size_of::<PcMerge>() == 10 * 8 + 10 * 4);
const _: () = assert!(std::mem::size_of::<NodeSoftmax>() == 4 * 8 + 2 * 4);

// SAFETY: repr(C) structs of u64/i32 fields with no implicit padding (sizes asserted above), so
// every bit pattern is valid and none is uninitialised.
unsafe impl bytemuck::Zeroable for PcMerge {}
unsafe impl bytemuck::Pod for PcMerge {}
unsafe impl bytemuck::Zeroable for NodeSoftmax {}
unsafe impl bytemuck::Pod for NodeSoftmax {}

const OP: &str = "pc_merge";

fn geom_args(g: &PcGeom) -> PcMerge {
    g.check(OP);
    let _ = int(OP, g.x_len().max(g.y_len()));
    let [n, c, h, w, k, stride] = [g.n, g.c, g.h, g.w, g.k, g.stride].map(|v| int(OP, v));
    PcMerge { n, c, h, w, k, stride, ..Default::default() }
}

fn check(what: &str, b: &GpuBuf, len: usize) {
    assert_eq!(b.len(), len, "{OP}: {what} has {} elements, expected {len}", b.len());
}

/// Checks the tail x_t (`[n, c − c/k, h, w]`; absent exactly when k = 1) and gives its pointer.
fn tail(x: Option<&GpuBuf>, g: &PcGeom) -> DevPtr {
    match x {
        Some(x) => {
            check("x", x, g.x_len());
            x.ptr()
        }
        None => {
            assert_eq!(g.xc(), 0, "{OP}: no tail given for {} bypassed channels", g.xc());
            0
        }
    }
}

/// `y = acc + s[0] · shuffle_k(cat(m, bypass(x_t)))`, x_t = x[:, c/k:] as its own tensor, `s` a
/// pointer to one float.
pub fn pc_merge_fwd(
    g: &PcGeom,
    m: &GpuBuf,
    x: Option<&GpuBuf>,
    acc: Option<&GpuBuf>,
    s: DevPtr,
    y: &mut GpuBuf,
) -> Result<(), GpuError> {
    check("m", m, g.m_len());
    check("y", y, g.y_len());
    if let Some(a) = acc {
        check("acc", a, g.y_len());
    }
    let mut p = geom_args(g);
    p.m = m.ptr();
    p.x = tail(x, g);
    p.acc = acc.map_or(0, |a| a.ptr());
    p.s = s;
    p.y = y.ptr();
    y.runtime().launch(k::pc_merge_fwd_f32, LaunchCfg::linear(grid_for(g.y_len()), BLOCK), &[Arg::pod(&p)])
}

/// The backward of [`pc_merge_fwd`]: `dm`, `dx` (the tail's, zeros included) and `dgrad`, a
/// `[len]` vector holding ds at `index` and zeros elsewhere (`s` = entry `index` of the vector
/// it differentiates). Two launches: the per-block pass, then the ds sum.
#[allow(clippy::too_many_arguments)]
pub fn pc_merge_bwd(
    g: &PcGeom,
    m: Option<&GpuBuf>,
    x: Option<&GpuBuf>,
    dy: &GpuBuf,
    s: DevPtr,
    dm: Option<&mut GpuBuf>,
    dx: Option<&mut GpuBuf>,
    dgrad: Option<(&mut GpuBuf, usize)>,
) -> Result<(), GpuError> {
    if let Some(m) = m {
        check("m", m, g.m_len());
    }
    check("dy", dy, g.y_len());
    let rt = dy.runtime().clone();
    let nparts = partials_for(g.y_len());
    let partials = GpuBuf::alloc(&rt, nparts)?;
    let mut p = geom_args(g);
    p.m = m.map_or(0, GpuBuf::ptr);
    p.x = tail(x, g);
    p.s = s;
    p.dy = dy.ptr();
    p.partials = partials.ptr();
    p.nparts = nparts as i32;
    if let Some(dm) = dm {
        check("dm", dm, g.m_len());
        p.dm = dm.ptr();
    }
    if let Some(dx) = dx {
        check("dx", dx, g.x_len());
        p.dx = dx.ptr();
    }
    let with_ds = dgrad.is_some();
    if let Some((d, index)) = dgrad {
        assert!(index < d.len(), "{OP}: ds index {index} outside a vector of {}", d.len());
        p.dgrad = d.ptr();
        p.len = int(OP, d.len());
        p.index = index as i32;
    }
    rt.launch(k::pc_merge_bwd_f32, LaunchCfg::linear(nparts as u32, BLOCK), &[Arg::pod(&p)])?;
    if with_ds {
        rt.launch(k::pc_merge_ds_f32, LaunchCfg::linear(1, BLOCK), &[Arg::pod(&p)])?;
    }
    Ok(())
}

fn node_args(steps: usize, bufs: &[&GpuBuf]) -> NodeSoftmax {
    let e = node_edges(steps);
    assert!((1..=32).contains(&steps), "node_softmax: {steps} nodes (1..=32)");
    for b in bufs {
        assert_eq!(b.len(), e, "node_softmax: a vector of {} for {steps} nodes ({e} edges)", b.len());
    }
    NodeSoftmax { steps: steps as i32, ..Default::default() }
}

/// `y` = softmax of each node's slice of `beta` (node i: i + 2 entries from i·(i+3)/2).
pub fn node_softmax_fwd(steps: usize, beta: &GpuBuf, y: &mut GpuBuf) -> Result<(), GpuError> {
    let mut p = node_args(steps, &[beta, y]);
    p.beta = beta.ptr();
    p.out = y.ptr();
    y.runtime().launch(k::node_softmax_fwd_f32, LaunchCfg::linear(1, 32), &[Arg::pod(&p)])
}

/// `dx = y ⊙ (dy − <dy, y>)` per node slice.
pub fn node_softmax_bwd(steps: usize, y: &GpuBuf, dy: &GpuBuf, dx: &mut GpuBuf) -> Result<(), GpuError> {
    let mut p = node_args(steps, &[y, dy, dx]);
    p.y = y.ptr();
    p.dy = dy.ptr();
    p.out = dx.ptr();
    dx.runtime().launch(k::node_softmax_bwd_f32, LaunchCfg::linear(1, 32), &[Arg::pod(&p)])
}
