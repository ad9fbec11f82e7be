//! `GpuBuf`: an owned f32 device allocation that returns itself to its runtime on drop.

use std::sync::Arc;

use super::runtime::{Arg, DevPtr, GpuError, Runtime};

/// A shared handle to a runtime.
pub type Gpu = Arc<dyn Runtime>;

/// `len` f32 values on a device.
pub struct GpuBuf {
    rt: Gpu,
    ptr: DevPtr,
    len: usize,
}

impl GpuBuf {
    /// Uninitialised (the emulator fills it with NaN) space for `len` values.
    pub fn alloc(rt: &Gpu, len: usize) -> Result<GpuBuf, GpuError> {
        let ptr = rt.alloc(len * 4)?;
        Ok(GpuBuf { rt: rt.clone(), ptr, len })
    }

    /// A copy of `data` on the device.
    pub fn from_host(rt: &Gpu, data: &[f32]) -> Result<GpuBuf, GpuError> {
        let b = GpuBuf::alloc(rt, data.len())?;
        rt.htod(bytemuck::cast_slice(data), b.ptr)?;
        Ok(b)
    }

    /// Copies the values back to the host.
    pub fn to_host(&self) -> Result<Vec<f32>, GpuError> {
        let mut v = vec![0f32; self.len];
        self.rt.dtoh(self.ptr, bytemuck::cast_slice_mut(&mut v))?;
        Ok(v)
    }

    /// Overwrites the values from the host.
    pub fn write(&mut self, data: &[f32]) -> Result<(), GpuError> {
        assert_eq!(
            data.len(),
            self.len,
            "GpuBuf::write: {} values into a buffer of {}",
            data.len(),
            self.len
        );
        self.rt.htod(bytemuck::cast_slice(data), self.ptr)
    }

    /// The device address.
    pub fn ptr(&self) -> DevPtr {
        self.ptr
    }

    /// Number of f32 values.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The buffer as a kernel pointer argument.
    pub fn arg(&self) -> Arg {
        Arg::Ptr(self.ptr)
    }

    /// The runtime that owns it.
    pub fn runtime(&self) -> &Gpu {
        &self.rt
    }
}

impl Drop for GpuBuf {
    fn drop(&mut self) {
        self.rt.free(self.ptr, self.len * 4);
    }
}
