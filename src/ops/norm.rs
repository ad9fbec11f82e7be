//! Batch normalisation over `[n, c, h, w]` (or `[n, c]`), per channel, affine optional.
//!
//! Training mode normalises with the batch mean and biased variance and updates running stats
//! with momentum (unbiased variance); eval mode uses the running stats.

use super::{buf, gpu_rt, same_dtype};
use crate::backend::cpu::{self, Real as _};
use crate::backend::geom::BnGeom;
use crate::backend::gpu::launch::batchnorm as gbn;
use crate::backend::gpu::{Gpu, GpuBuf, GpuError};
use crate::tensor::gpu_ok;
use crate::tensor::{fmt_shape, Tensor};
use crate::with_dtype;

/// Per-channel statistics saved by a training-mode forward for its backward.
#[derive(Clone, Debug)]
pub struct BnSaved {
    /// Batch mean `[c]`.
    pub mean: Tensor,
    /// 1 / sqrt(biased batch variance + eps) `[c]`.
    pub invstd: Tensor,
}

/// The reduction layout of `x`.
pub fn bn_geom(op: &str, x_shape: &[usize]) -> BnGeom {
    match *x_shape {
        [n, c] => BnGeom { n, c, hw: 1 },
        [n, c, h, w] => BnGeom { n, c, hw: h * w },
        _ => panic!("{op}: x must be [n, c] or [n, c, h, w], got {}", fmt_shape(x_shape)),
    }
}

fn check_channel(op: &str, what: &str, g: &BnGeom, t: Option<&Tensor>, x: &Tensor) {
    if let Some(t) = t {
        assert_eq!(
            t.shape(),
            &[g.c],
            "{op}: {what} {} does not match the {} channels of x {}",
            fmt_shape(t.shape()),
            g.c,
            fmt_shape(x.shape())
        );
        same_dtype(op, x, t);
    }
}

/// Training-mode forward: y and the saved batch statistics.
pub fn batch_norm_train(
    x: &Tensor,
    gamma: Option<&Tensor>,
    beta: Option<&Tensor>,
    eps: f64,
) -> (Tensor, BnSaved) {
    let g = bn_geom("batch_norm_train", x.shape());
    check_channel("batch_norm_train", "gamma", &g, gamma, x);
    check_channel("batch_norm_train", "beta", &g, beta, x);
    assert!(
        g.per_channel() > 1,
        "batch_norm_train: needs more than one value per channel, x is {}",
        fmt_shape(x.shape())
    );
    if let Some(rt) = gpu_rt("batch_norm_train", &[x]) {
        let (mut y, mut mean, mut invstd) = (
            Tensor::empty_gpu(x.shape(), &rt),
            Tensor::empty_gpu(&[g.c], &rt),
            Tensor::empty_gpu(&[g.c], &rt),
        );
        gpu_ok(gbn::bn_fwd_train(
            &g,
            buf(x),
            gamma.map(buf),
            beta.map(buf),
            eps as f32,
            y.gpu_buf_mut(),
            mean.gpu_buf_mut(),
            invstd.gpu_buf_mut(),
        ));
        return (y, BnSaved { mean, invstd });
    }
    with_dtype!(x.dtype(), T => {
        let mut y = vec![T::ZERO; g.len()];
        let mut mean = vec![T::ZERO; g.c];
        let mut invstd = vec![T::ZERO; g.c];
        cpu::batchnorm::bn_fwd_train(
            &g,
            x.data::<T>(),
            gamma.map(|t| t.data::<T>()),
            beta.map(|t| t.data::<T>()),
            T::from_f64(eps),
            &mut y,
            &mut mean,
            &mut invstd,
        );
        let saved = BnSaved { mean: Tensor::from_vec(&[g.c], mean), invstd: Tensor::from_vec(&[g.c], invstd) };
        (Tensor::from_vec(x.shape(), y), saved)
    })
}

/// Per-channel batch mean and biased variance of `x`, each `[c]`.
pub fn batch_stats(x: &Tensor) -> (Tensor, Tensor) {
    let g = bn_geom("batch_stats", x.shape());
    if let Some(rt) = gpu_rt("batch_stats", &[x]) {
        let (mut mean, mut var) = (Tensor::empty_gpu(&[g.c], &rt), Tensor::empty_gpu(&[g.c], &rt));
        gpu_ok(gbn::bn_stats(&g, buf(x), mean.gpu_buf_mut(), var.gpu_buf_mut()));
        return (mean, var);
    }
    with_dtype!(x.dtype(), T => {
        let (mut mean, mut var) = (vec![T::ZERO; g.c], vec![T::ZERO; g.c]);
        cpu::batchnorm::bn_stats(&g, x.data::<T>(), &mut mean, &mut var);
        (Tensor::from_vec(&[g.c], mean), Tensor::from_vec(&[g.c], var))
    })
}

/// running = (1 − momentum) running + momentum · batch, with the unbiased batch variance.
pub fn bn_update_running(
    x_shape: &[usize],
    saved: &BnSaved,
    eps: f64,
    momentum: f64,
    running_mean: &mut Tensor,
    running_var: &mut Tensor,
) {
    let g = bn_geom("bn_update_running", x_shape);
    if saved.mean.is_gpu() {
        gpu_ok(gbn::bn_update_running(
            &g,
            buf(&saved.mean),
            buf(&saved.invstd),
            eps as f32,
            momentum as f32,
            running_mean.gpu_buf_mut(),
            running_var.gpu_buf_mut(),
        ));
        return;
    }
    with_dtype!(saved.mean.dtype(), T => cpu::batchnorm::bn_update_running(
        &g,
        saved.mean.data::<T>(),
        saved.invstd.data::<T>(),
        T::from_f64(eps),
        T::from_f64(momentum),
        running_mean.data_mut::<T>(),
        running_var.data_mut::<T>(),
    ))
}

/// Eval-mode forward with running statistics.
pub fn batch_norm_eval(
    x: &Tensor,
    gamma: Option<&Tensor>,
    beta: Option<&Tensor>,
    running_mean: &Tensor,
    running_var: &Tensor,
    eps: f64,
) -> Tensor {
    let g = bn_geom("batch_norm_eval", x.shape());
    check_channel("batch_norm_eval", "gamma", &g, gamma, x);
    check_channel("batch_norm_eval", "beta", &g, beta, x);
    check_channel("batch_norm_eval", "running_mean", &g, Some(running_mean), x);
    check_channel("batch_norm_eval", "running_var", &g, Some(running_var), x);
    if let Some(rt) = gpu_rt("batch_norm_eval", &[x, running_mean]) {
        return super::gpu_out(&rt, x.shape(), |y| {
            gbn::bn_fwd_eval(
                &g,
                buf(x),
                gamma.map(buf),
                beta.map(buf),
                buf(running_mean),
                buf(running_var),
                eps as f32,
                y,
            )
        });
    }
    with_dtype!(x.dtype(), T => {
        let mut y = vec![T::ZERO; g.len()];
        cpu::batchnorm::bn_fwd_eval(
            &g,
            x.data::<T>(),
            gamma.map(|t| t.data::<T>()),
            beta.map(|t| t.data::<T>()),
            running_mean.data::<T>(),
            running_var.data::<T>(),
            T::from_f64(eps),
            &mut y,
        );
        Tensor::from_vec(x.shape(), y)
    })
}

/// Gradients of a BN layer: input, and (when affine) gamma and beta.
pub struct BnGrads {
    /// d/dx.
    pub dx: Tensor,
    /// d/dgamma (affine only).
    pub dgamma: Option<Tensor>,
    /// d/dbeta (affine only).
    pub dbeta: Option<Tensor>,
}

/// Allocates a BN backward's GPU outputs (dγ and dβ only when affine), lets `launch` fill them,
/// and wraps them as tensors.
fn gpu_bn_grads(
    rt: &Gpu,
    x_shape: &[usize],
    c: usize,
    affine: bool,
    launch: impl FnOnce(&mut GpuBuf, Option<&mut GpuBuf>, Option<&mut GpuBuf>) -> Result<(), GpuError>,
) -> BnGrads {
    let mut dx = Tensor::empty_gpu(x_shape, rt);
    let mut dg = affine.then(|| Tensor::empty_gpu(&[c], rt));
    let mut db = affine.then(|| Tensor::empty_gpu(&[c], rt));
    gpu_ok(launch(
        dx.gpu_buf_mut(),
        dg.as_mut().map(|t| t.gpu_buf_mut()),
        db.as_mut().map(|t| t.gpu_buf_mut()),
    ));
    BnGrads { dx, dgamma: dg, dbeta: db }
}

/// Training-mode backward (through the batch statistics).
pub fn batch_norm_train_bwd(
    x: &Tensor,
    dy: &Tensor,
    saved: &BnSaved,
    gamma: Option<&Tensor>,
    affine: bool,
) -> BnGrads {
    let g = bn_geom("batch_norm_train_bwd", x.shape());
    super::same_shape("batch_norm_train_bwd", x, dy);
    if let Some(rt) = gpu_rt("batch_norm_train_bwd", &[x, dy]) {
        return gpu_bn_grads(&rt, x.shape(), g.c, affine, |dx, dg, db| {
            let (mean, invstd) = (buf(&saved.mean), buf(&saved.invstd));
            gbn::bn_bwd_train(&g, buf(x), buf(dy), Some(mean), invstd, gamma.map(buf), dx, dg, db)
        });
    }
    with_dtype!(x.dtype(), T => {
        let mut dx = vec![T::ZERO; g.len()];
        let (mut dg, mut db) = (vec![T::ZERO; g.c], vec![T::ZERO; g.c]);
        cpu::batchnorm::bn_bwd_train(
            &g,
            x.data::<T>(),
            dy.data::<T>(),
            saved.mean.data::<T>(),
            saved.invstd.data::<T>(),
            gamma.map(|t| t.data::<T>()),
            &mut dx,
            if affine { Some(&mut dg) } else { None },
            if affine { Some(&mut db) } else { None },
        );
        BnGrads {
            dx: Tensor::from_vec(x.shape(), dx),
            dgamma: affine.then(|| Tensor::from_vec(&[g.c], dg)),
            dbeta: affine.then(|| Tensor::from_vec(&[g.c], db)),
        }
    })
}

/// Training-mode backward of a BN without γ and β from its output y = x̂ (instead of x):
/// dx = invstd · (dy − mean(dy) − x̂ · mean(dy · x̂)). It is [`batch_norm_train_bwd`] with
/// x := y, mean := 0, invstd := 1 (so its x̂ is y) and γ := invstd (its factor on dx).
/// On a GPU the kernels take no mean for this (and read y as x̂); on the CPU the unit
/// statistics are c host values.
pub fn batch_norm_train_bwd_from_output(y: &Tensor, dy: &Tensor, saved: &BnSaved) -> Tensor {
    const OP: &str = "batch_norm_train_bwd_from_output";
    let g = bn_geom(OP, y.shape());
    super::same_shape(OP, y, dy);
    if let Some(rt) = gpu_rt(OP, &[y, dy]) {
        return gpu_bn_grads(&rt, y.shape(), g.c, false, |dx, dg, db| {
            gbn::bn_bwd_train(&g, buf(y), buf(dy), None, buf(&saved.invstd), None, dx, dg, db)
        })
        .dx;
    }
    let unit =
        BnSaved { mean: Tensor::zeros(&[g.c], y.dtype()), invstd: Tensor::full(&[g.c], 1.0, y.dtype()) };
    batch_norm_train_bwd(y, dy, &unit, Some(&saved.invstd), false).dx
}

/// Eval-mode backward (running statistics are constants).
pub fn batch_norm_eval_bwd(
    x: &Tensor,
    dy: &Tensor,
    running_mean: &Tensor,
    running_var: &Tensor,
    gamma: Option<&Tensor>,
    eps: f64,
    affine: bool,
) -> BnGrads {
    let g = bn_geom("batch_norm_eval_bwd", x.shape());
    super::same_shape("batch_norm_eval_bwd", x, dy);
    if let Some(rt) = gpu_rt("batch_norm_eval_bwd", &[x, dy]) {
        return gpu_bn_grads(&rt, x.shape(), g.c, affine, |dx, dg, db| {
            let (rm, rv) = (buf(running_mean), buf(running_var));
            gbn::bn_bwd_eval(&g, buf(dy), buf(x), rm, rv, gamma.map(buf), eps as f32, dx, dg, db)
        });
    }
    with_dtype!(x.dtype(), T => {
        let mut dx = vec![T::ZERO; g.len()];
        let (mut dg, mut db) = (vec![T::ZERO; g.c], vec![T::ZERO; g.c]);
        cpu::batchnorm::bn_bwd_eval(
            &g,
            dy.data::<T>(),
            x.data::<T>(),
            running_mean.data::<T>(),
            running_var.data::<T>(),
            gamma.map(|t| t.data::<T>()),
            T::from_f64(eps),
            &mut dx,
            if affine { Some(&mut dg) } else { None },
            if affine { Some(&mut db) } else { None },
        );
        BnGrads {
            dx: Tensor::from_vec(x.shape(), dx),
            dgamma: affine.then(|| Tensor::from_vec(&[g.c], dg)),
            dbeta: affine.then(|| Tensor::from_vec(&[g.c], db)),
        }
    })
}
