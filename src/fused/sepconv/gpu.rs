//! GPU half of the sep-conv stages: one kernel each for the normalise-ReLU-depthwise forward,
//! data gradient and weight gradient (`kernels/depthwise.cu`, `depthwise_bnrelu_*`), and the
//! per-channel `1 / sqrt(var + eps)` (`kernels/batchnorm.cu`, `bn_invstd_f32`). The normalised
//! input is never written to memory: the kernels recompute it as they load `x`.

use crate::backend::geom::Conv2dGeom;
use crate::backend::gpu::launch::{batchnorm as gbn, depthwise as gdw};
use crate::backend::gpu::Gpu;
use crate::ops::{buf, gpu_out};
use crate::tensor::Tensor;

/// `1 / sqrt(var + eps)` per channel.
pub fn invstd(rt: &Gpu, var: &Tensor, eps: f64) -> Tensor {
    gpu_out(rt, var.shape(), |out| gbn::bn_invstd(buf(var), eps as f32, out))
}

/// `dwconv(max((x - mean) * rstd, 0), w)`.
pub fn bnrelu_dw(rt: &Gpu, g: &Conv2dGeom, x: &Tensor, mean: &Tensor, rstd: &Tensor, w: &Tensor) -> Tensor {
    let shape = [g.n, g.c_out, g.out_h(), g.out_w()];
    gpu_out(rt, &shape, |y| gdw::depthwise_bnrelu_fwd(g, buf(x), buf(mean), buf(rstd), buf(w), y))
}

/// `dwconv_bwd_data(dy, w) * [(x - mean) * rstd > 0]`.
pub fn bnrelu_dw_bwd_data(
    rt: &Gpu,
    g: &Conv2dGeom,
    x: &Tensor,
    mean: &Tensor,
    rstd: &Tensor,
    dy: &Tensor,
    w: &Tensor,
) -> Tensor {
    gpu_out(rt, x.shape(), |da| {
        gdw::depthwise_bnrelu_bwd_data(g, buf(x), buf(mean), buf(rstd), buf(dy), buf(w), da)
    })
}

/// `dwconv_bwd_weight(max((x - mean) * rstd, 0), dy)`, shaped like `w_shape`.
pub fn bnrelu_dw_bwd_weight(
    rt: &Gpu,
    g: &Conv2dGeom,
    x: &Tensor,
    mean: &Tensor,
    rstd: &Tensor,
    dy: &Tensor,
    w_shape: &[usize],
) -> Tensor {
    gpu_out(rt, w_shape, |dw| gdw::depthwise_bnrelu_bwd_weight(g, buf(x), buf(mean), buf(rstd), buf(dy), dw))
}

/// `pw(dw(pre(x)))` for every slot in one launch (`kernels/sepconv.cu`).
pub fn dw_pw_slots(rt: &Gpu, slots: &[super::DwPwSlot], geoms: &[Conv2dGeom]) -> Vec<Tensor> {
    use crate::backend::gpu::launch::sepconv;
    use crate::backend::gpu::GpuBuf;
    let dws: Vec<gdw::DwSlot> = slots
        .iter()
        .zip(geoms)
        .map(|(s, g)| gdw::DwSlot { g: *g, x: buf(s.x), norm: s.norm.map(|(m, r)| (buf(m), buf(r))) })
        .collect();
    let mut ys: Vec<Tensor> =
        geoms.iter().map(|g| Tensor::empty_gpu(&[g.n, g.c_in, g.out_h(), g.out_w()], rt)).collect();
    let w_dw: Vec<&GpuBuf> = slots.iter().map(|s| buf(s.dw)).collect();
    let w_pw: Vec<&GpuBuf> = slots.iter().map(|s| buf(s.pw)).collect();
    let mut outs: Vec<&mut GpuBuf> = ys.iter_mut().map(Tensor::gpu_buf_mut).collect();
    crate::tensor::gpu_ok(sepconv::dw_pw_fwd_slots(&dws, &w_dw, &w_pw, &mut outs, None));
    ys
}
