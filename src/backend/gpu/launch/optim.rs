//! `kernels/optim.cu`: SGD with momentum and weight decay, and Adam, elementwise (PyTorch
//! semantics, matching `backend::cpu::optim`).

use super::{check_len, grid_for, int, BLOCK};
use crate::backend::gpu::{Arg, GpuBuf, GpuError, LaunchCfg};

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
        "sgd_step_f32",
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
/// 1 − β would be 1.3e-5 off.
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
) -> Result<(), GpuError> {
    assert!(step >= 1, "adam_step: step counts from 1");
    let n = w.len();
    check_len("adam_step", n, &[("g", g), ("m", m), ("v", v)]);
    let t = step.min(i32::MAX as u32) as i32;
    let (bias_c1, bias_c2) = (1.0 - beta1.powi(t), 1.0 - beta2.powi(t));
    w.runtime().launch(
        "adam_step_f32",
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
            Arg::I32(int("adam_step", n)),
        ],
    )
}
