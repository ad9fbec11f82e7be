//! PC-DARTS' ops: a channel slice, the partial-channel merge into a node's sum, and the softmax
//! of β over each node's incoming edges (see `backend::cpu::pcdarts` for the math).

use super::{buf, gpu_out, gpu_rt, nchw, same_dtype};
use crate::backend::cpu::pcdarts as cpu;
use crate::backend::cpu::Real as _;
use crate::backend::geom::PcGeom;
use crate::backend::gpu::launch::pcdarts as gpc;
use crate::backend::gpu::DevPtr;
use crate::tensor::{fmt_shape, gpu_ok, Tensor};
use crate::with_dtype;

/// `x[:, a..a + len]` as a new tensor (the split of `ops::layout`, keeping one piece).
pub fn channel_slice(x: &Tensor, a: usize, len: usize) -> Tensor {
    let [_, c, _, _] = nchw("channel_slice", "x", x);
    assert!(
        len > 0 && a + len <= c,
        "channel_slice: channels {a}..{} of x {}",
        a + len,
        fmt_shape(x.shape())
    );
    let pieces: Vec<usize> = [a, len, c - a - len].into_iter().filter(|&p| p > 0).collect();
    let at = usize::from(a > 0);
    super::layout::split_channels(x, &pieces).swap_remove(at)
}

/// The backward of [`channel_slice`]: `dy` placed at channels `a..` of zeros shaped `x_shape`.
pub fn channel_slice_bwd(dy: &Tensor, x_shape: &[usize], a: usize) -> Tensor {
    let [n, len, h, w] = nchw("channel_slice_bwd", "dy", dy);
    let c = x_shape[1];
    assert!(
        x_shape.len() == 4 && a + len <= c && x_shape[0] == n && x_shape[2..] == [h, w],
        "channel_slice_bwd: dy {} at channel {a} of x {}",
        fmt_shape(dy.shape()),
        fmt_shape(x_shape)
    );
    let zeros = |ch: usize| Tensor::zeros_on(&[n, ch, h, w], dy.dtype(), &dy.device());
    let (before, after) = (zeros(a), zeros(c - a - len));
    let parts: Vec<&Tensor> = [(&before, a), (dy, len), (&after, c - a - len)]
        .into_iter()
        .filter(|&(_, ch)| ch > 0)
        .map(|(t, _)| t)
        .collect();
    super::layout::concat_channels(&parts)
}

/// Shapes of a merge: x `[n, c, h, w]`, m (when given) `[n, c/k, h/stride, w/stride]`, s a
/// vector.
fn geom(
    op: &str,
    m: Option<&Tensor>,
    x: &Tensor,
    s: &Tensor,
    index: usize,
    k: usize,
    stride: usize,
) -> PcGeom {
    let [n, c, h, w] = nchw(op, "x", x);
    let g = PcGeom { n, c, h, w, k, stride };
    g.check(op);
    if let Some(m) = m {
        let want = g.m_shape();
        assert_eq!(
            m.shape(),
            &want[..],
            "{op}: m {} vs x {} with k {k}, stride {stride} (want {})",
            fmt_shape(m.shape()),
            fmt_shape(x.shape()),
            fmt_shape(&want)
        );
        same_dtype(op, m, x);
    }
    assert!(
        s.shape().len() == 1 && index < s.numel(),
        "{op}: scale index {index} of {}",
        fmt_shape(s.shape())
    );
    same_dtype(op, x, s);
    g
}

fn entry(s: &Tensor, index: usize) -> DevPtr {
    buf(s).ptr() + (4 * index) as DevPtr
}

/// `acc + s[index] · shuffle_k(cat(m, bypass(x[:, c/k:])))`: bypass the identity (stride 1) or
/// a 2x2 stride-2 max pool (stride 2); the output is `[n, c, h/stride, w/stride]`.
pub fn pc_merge(
    m: &Tensor,
    x: &Tensor,
    acc: Option<&Tensor>,
    s: &Tensor,
    index: usize,
    k: usize,
    stride: usize,
) -> Tensor {
    const OP: &str = "pc_merge";
    let g = geom(OP, Some(m), x, s, index, k, stride);
    let shape = [g.n, g.c, g.oh(), g.ow()];
    if let Some(a) = acc {
        assert_eq!(
            a.shape(),
            &shape[..],
            "{OP}: acc {} vs output {}",
            fmt_shape(a.shape()),
            fmt_shape(&shape)
        );
        same_dtype(OP, a, x);
    }
    if let Some(rt) = gpu_rt(OP, &[m, x, s]) {
        return gpu_out(&rt, &shape, |y| {
            gpc::pc_merge_fwd(&g, buf(m), buf(x), acc.map(buf), entry(s, index), y)
        });
    }
    with_dtype!(x.dtype(), T => {
        let mut y = vec![T::ZERO; g.y_len()];
        let sv = s.data::<T>()[index];
        cpu::pc_merge_fwd(&g, m.data::<T>(), x.data::<T>(), acc.map(|a| a.data::<T>()), sv, &mut y);
        Tensor::from_vec(&shape, y)
    })
}

/// The gradients of [`pc_merge`] asked for: dm, dx, and ds placed at `index` of zeros shaped
/// like `s` (dacc is `dy` itself). Without `m` (the fused edge reports its own part of ds,
/// [`crate::fused::mixed::MixedEdge::scale`]), ds is the bypassed channels' part alone.
#[allow(clippy::too_many_arguments)]
pub fn pc_merge_bwd(
    m: Option<&Tensor>,
    x: &Tensor,
    dy: &Tensor,
    s: &Tensor,
    index: usize,
    k: usize,
    stride: usize,
    need: [bool; 3],
) -> [Option<Tensor>; 3] {
    const OP: &str = "pc_merge_bwd";
    let g = geom(OP, m, x, s, index, k, stride);
    let y_shape = [g.n, g.c, g.oh(), g.ow()];
    assert_eq!(
        dy.shape(),
        &y_shape[..],
        "{OP}: dy {} vs output {}",
        fmt_shape(dy.shape()),
        fmt_shape(&y_shape)
    );
    let [need_m, need_x, need_s] = need;
    if let Some(rt) = gpu_rt(OP, &[x, dy, s]) {
        let mut dm = need_m.then(|| Tensor::empty_gpu(&g.m_shape(), &rt));
        let mut dx = need_x.then(|| Tensor::empty_gpu(x.shape(), &rt));
        let mut ds = need_s.then(|| Tensor::empty_gpu(s.shape(), &rt));
        gpu_ok(gpc::pc_merge_bwd(
            &g,
            m.map(buf),
            buf(x),
            buf(dy),
            entry(s, index),
            dm.as_mut().map(|t| t.gpu_buf_mut()),
            dx.as_mut().map(|t| t.gpu_buf_mut()),
            ds.as_mut().map(|t| (t.gpu_buf_mut(), index)),
        ));
        return [dm, dx, ds];
    }
    with_dtype!(x.dtype(), T => {
        let mut dm = need_m.then(|| vec![T::ZERO; g.m_len()]);
        let mut dx = need_x.then(|| vec![T::ZERO; g.x_len()]);
        let sv = s.data::<T>()[index];
        let mv = m.map(|m| m.data::<T>());
        let d = cpu::pc_merge_bwd(&g, mv, x.data::<T>(), dy.data::<T>(), sv, dm.as_deref_mut(), dx.as_deref_mut());
        let ds = need_s.then(|| {
            let mut v = vec![T::ZERO; s.numel()];
            v[index] = d;
            Tensor::from_vec(s.shape(), v)
        });
        [dm.map(|v| Tensor::from_vec(&g.m_shape(), v)), dx.map(|v| Tensor::from_vec(x.shape(), v)), ds]
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
