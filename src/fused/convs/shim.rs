//! TEMPORARY: the slotted launchers' API as loops over single launches, until the slotted
//! kernels land.
#![allow(missing_docs)]

use crate::backend::geom::{BnGeom, Conv2dGeom};
use crate::backend::gpu::launch::{batchnorm as gbn, conv as gconv, depthwise as gdw, elementwise as gel};
use crate::backend::gpu::{GpuBuf, GpuError};

pub fn pw_fwd_slots(
    g: &Conv2dGeom,
    xs: &[&GpuBuf],
    ws: &[&GpuBuf],
    ys: &mut [&mut GpuBuf],
) -> Result<(), GpuError> {
    for ((x, w), y) in xs.iter().zip(ws).zip(ys.iter_mut()) {
        gconv::conv2d_fwd(g, x, w, y)?;
    }
    Ok(())
}

pub fn pw_bwd_data_slots(
    g: &Conv2dGeom,
    dys: &[&GpuBuf],
    ws: &[&GpuBuf],
    dxs: &mut [&mut GpuBuf],
) -> Result<(), GpuError> {
    for ((dy, w), dx) in dys.iter().zip(ws).zip(dxs.iter_mut()) {
        gconv::conv2d_bwd_data(g, dy, w, dx)?;
    }
    Ok(())
}

pub fn pw_bwd_weight_slots(
    g: &Conv2dGeom,
    xs: &[&GpuBuf],
    dys: &[&GpuBuf],
    dws: &mut [&mut GpuBuf],
) -> Result<(), GpuError> {
    for ((x, dy), dw) in xs.iter().zip(dys).zip(dws.iter_mut()) {
        gconv::conv2d_bwd_weight(g, x, dy, dw)?;
    }
    Ok(())
}

pub struct BnBwdSlot<'a> {
    pub x: &'a GpuBuf,
    pub dy: &'a GpuBuf,
    pub mean: &'a GpuBuf,
    pub invstd: &'a GpuBuf,
}

pub fn bn_bwd_train_slots(g: &BnGeom, slots: &[BnBwdSlot], dxs: &mut [&mut GpuBuf]) -> Result<(), GpuError> {
    for (s, dx) in slots.iter().zip(dxs.iter_mut()) {
        gbn::bn_bwd_train(g, s.x, s.dy, s.mean, s.invstd, None, dx, None, None)?;
    }
    Ok(())
}

pub fn add_n(xs: &[&GpuBuf], y: &mut GpuBuf) -> Result<(), GpuError> {
    gel::add(xs[0], xs[1], y)?;
    for x in &xs[2..] {
        gel::axpy(1.0, x, y)?;
    }
    Ok(())
}
