//! PC-DARTS' ops: the partial-channel merge into a node's sum, and the softmax
//! of β over each node's incoming edges (see `backend::cpu::pcdarts` for the math).

use super::{buf, gpu_out, gpu_rt, nchw, same_dtype};
use crate::backend::cpu::pcdarts as cpu;
use crate::backend::cpu::Real as _;
use crate::backend::geom::PcGeom;
use crate::backend::gpu::launch::pcdarts as gpc;
use crate::backend::gpu::DevPtr;
use crate::tensor::{fmt_shape, gpu_ok, Tensor};
use crate::with_dtype;

/// Shapes of a merge whose output is `[n, c, oh, ow]`: m (when given) `[n, c/k, oh, ow]`, the
/// tail x_t (absent exactly when k = 1) `[n, c − c/k, oh·stride, ow·stride]`, s a vector.
#[allow(clippy::too_many_arguments)]
fn geom(
    op: &str,
    y_shape: [usize; 4],
    m: Option<&Tensor>,
    x: Option<&Tensor>,
    s: &Tensor,
    index: usize,
    k: usize,
    stride: usize,
) -> PcGeom {
    let [n, c, oh, ow] = y_shape;
    let g = PcGeom { n, c, h: oh * stride, w: ow * stride, k, stride };
    g.check(op);
    if let Some(m) = m {
        assert_eq!(
            m.shape(),
            &g.m_shape()[..],
            "{op}: m {} for an output [{n}, {c}, {oh}, {ow}] with k {k} (want {})",
            fmt_shape(m.shape()),
            fmt_shape(&g.m_shape())
        );
        same_dtype(op, m, s);
    }
    match x {
        Some(x) => {
            assert!(
                g.xc() > 0 && x.shape() == g.x_shape(),
                "{op}: the bypassed channels x[:, c/k:] are {}, want {} (k {k}, stride {stride})",
                fmt_shape(x.shape()),
                fmt_shape(&g.x_shape())
            );
            same_dtype(op, x, s);
        }
        None => assert_eq!(g.xc(), 0, "{op}: no bypassed channels given for k {k} of {c} channels"),
    }
    assert!(
        s.shape().len() == 1 && index < s.numel(),
        "{op}: scale index {index} of {}",
        fmt_shape(s.shape())
    );
    g
}

fn entry(s: &Tensor, index: usize) -> DevPtr {
    buf(s).ptr() + (4 * index) as DevPtr
}

/// `acc + s[index] · shuffle_k(cat(m, bypass(x_t)))`, x_t = x[:, c/k:] the edge input's
/// bypassed channels as their own tensor (`None` when k = 1): bypass the identity (stride 1)
/// or a 2x2 stride-2 max pool (stride 2); the output is `[n, c, h/stride, w/stride]`, c = k·(m's
/// channels).
pub fn pc_merge(
    m: &Tensor,
    x: Option<&Tensor>,
    acc: Option<&Tensor>,
    s: &Tensor,
    index: usize,
    k: usize,
    stride: usize,
) -> Tensor {
    const OP: &str = "pc_merge";
    let [n, cpk, oh, ow] = nchw(OP, "m", m);
    let g = geom(OP, [n, cpk * k, oh, ow], Some(m), x, s, index, k, stride);
    let shape = [g.n, g.c, g.oh(), g.ow()];
    if let Some(a) = acc {
        assert_eq!(
            a.shape(),
            &shape[..],
            "{OP}: acc {} vs output {}",
            fmt_shape(a.shape()),
            fmt_shape(&shape)
        );
        same_dtype(OP, a, m);
    }
    let mut on: Vec<&Tensor> = vec![m, s];
    on.extend(x);
    if let Some(rt) = gpu_rt(OP, &on) {
        return gpu_out(&rt, &shape, |y| {
            gpc::pc_merge_fwd(&g, buf(m), x.map(buf), acc.map(buf), entry(s, index), y)
        });
    }
    with_dtype!(m.dtype(), T => {
        let mut y = vec![T::ZERO; g.y_len()];
        let sv = s.data::<T>()[index];
        let xv = x.map_or(&[][..], |x| x.data::<T>());
        cpu::pc_merge_fwd(&g, m.data::<T>(), xv, acc.map(|a| a.data::<T>()), sv, &mut y);
        Tensor::from_vec(&shape, y)
    })
}

/// The gradients of [`pc_merge`] asked for: dm, dx_t (the tail's; not asked when k = 1), and ds
/// placed at `index` of zeros shaped like `s` (dacc is `dy` itself). Without `m` (the fused
/// edge reports its own part of ds, [`crate::fused::mixed::MixedEdge::scale`]), ds is the
/// bypassed channels' part alone.
#[allow(clippy::too_many_arguments)]
pub fn pc_merge_bwd(
    m: Option<&Tensor>,
    x: Option<&Tensor>,
    dy: &Tensor,
    s: &Tensor,
    index: usize,
    k: usize,
    stride: usize,
    need: [bool; 3],
) -> [Option<Tensor>; 3] {
    const OP: &str = "pc_merge_bwd";
    let g = geom(OP, nchw(OP, "dy", dy), m, x, s, index, k, stride);
    let [need_m, need_x, need_s] = need;
    let need_x = need_x && x.is_some();
    if let Some(rt) = gpu_rt(OP, &[dy, s]) {
        let mut dm = need_m.then(|| Tensor::empty_gpu(&g.m_shape(), &rt));
        let mut dx = need_x.then(|| Tensor::empty_gpu(&g.x_shape(), &rt));
        let mut ds = need_s.then(|| Tensor::empty_gpu(s.shape(), &rt));
        gpu_ok(gpc::pc_merge_bwd(
            &g,
            m.map(buf),
            x.map(buf),
            buf(dy),
            entry(s, index),
            dm.as_mut().map(|t| t.gpu_buf_mut()),
            dx.as_mut().map(|t| t.gpu_buf_mut()),
            ds.as_mut().map(|t| (t.gpu_buf_mut(), index)),
        ));
        return [dm, dx, ds];
    }
    with_dtype!(dy.dtype(), T => {
        let mut dm = need_m.then(|| vec![T::ZERO; g.m_len()]);
        let mut dx = need_x.then(|| vec![T::ZERO; g.x_len()]);
        let sv = s.data::<T>()[index];
        let mv = m.map(|m| m.data::<T>());
        let xv = x.map_or(&[][..], |x| x.data::<T>());
        let d = cpu::pc_merge_bwd(&g, mv, xv, dy.data::<T>(), sv, dm.as_deref_mut(), dx.as_deref_mut());
        let ds = need_s.then(|| {
            let mut v = vec![T::ZERO; s.numel()];
            v[index] = d;
            Tensor::from_vec(s.shape(), v)
        });
        [dm.map(|v| Tensor::from_vec(&g.m_shape(), v)), dx.map(|v| Tensor::from_vec(&g.x_shape(), v)), ds]
    })
}

fn node_steps(op: &str, t: &Tensor, steps: usize) {
    let e = crate::backend::geom::node_edges(steps);
    assert_eq!(t.shape(), &[e][..], "{op}: {} for {steps} nodes (want [{e}])", fmt_shape(t.shape()));
}

/// Softmax of β `[steps·(steps+3)/2]` over each node's slice of incoming edges.
pub fn node_softmax(beta: &Tensor, steps: usize) -> Tensor {
    node_steps("node_softmax", beta, steps);
    if let Some(rt) = gpu_rt("node_softmax", &[beta]) {
        return gpu_out(&rt, beta.shape(), |y| gpc::node_softmax_fwd(steps, buf(beta), y));
    }
    with_dtype!(beta.dtype(), T => {
        let mut y = vec![T::ZERO; beta.numel()];
        cpu::node_softmax(steps, beta.data::<T>(), &mut y);
        Tensor::from_vec(beta.shape(), y)
    })
}

/// The backward of [`node_softmax`] from its output `y`.
pub fn node_softmax_bwd(y: &Tensor, dy: &Tensor, steps: usize) -> Tensor {
    node_steps("node_softmax_bwd", y, steps);
    super::same_shape("node_softmax_bwd", y, dy);
    if let Some(rt) = gpu_rt("node_softmax_bwd", &[y, dy]) {
        return gpu_out(&rt, y.shape(), |dx| gpc::node_softmax_bwd(steps, buf(y), buf(dy), dx));
    }
    with_dtype!(y.dtype(), T => {
        let mut dx = vec![T::ZERO; y.numel()];
        cpu::node_softmax_bwd(steps, y.data::<T>(), dy.data::<T>(), &mut dx);
        Tensor::from_vec(y.shape(), dx)
    })
}
