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
    pub fn arg(&self) -> Arg<'static> {
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

/// A borrowed run of another buffer's values, usable wherever a `&GpuBuf` is (launchers take
/// buffers, not offsets): e.g. one candidate's part of a stacked tensor. It never frees: the
/// parent owns the allocation and outlives the view.
pub struct GpuView<'a> {
    buf: std::mem::ManuallyDrop<GpuBuf>,
    _parent: std::marker::PhantomData<&'a GpuBuf>,
}

/// [`GpuView`]'s writable form, usable wherever a `&mut GpuBuf` is.
pub struct GpuViewMut<'a> {
    buf: std::mem::ManuallyDrop<GpuBuf>,
    _parent: std::marker::PhantomData<&'a mut GpuBuf>,
}

impl std::ops::Deref for GpuView<'_> {
    type Target = GpuBuf;
    fn deref(&self) -> &GpuBuf {
        &self.buf
    }
}

impl std::ops::Deref for GpuViewMut<'_> {
    type Target = GpuBuf;
    fn deref(&self) -> &GpuBuf {
        &self.buf
    }
}

impl std::ops::DerefMut for GpuViewMut<'_> {
    fn deref_mut(&mut self) -> &mut GpuBuf {
        &mut self.buf
    }
}

impl GpuBuf {
    /// A non-owning handle on values `offset..offset + len` (never dropped as a `GpuBuf`).
    fn alias(&self, offset: usize, len: usize) -> std::mem::ManuallyDrop<GpuBuf> {
        assert!(
            offset + len <= self.len,
            "GpuBuf view: values {offset}..{} of a buffer of {}",
            offset + len,
            self.len
        );
        std::mem::ManuallyDrop::new(GpuBuf {
            rt: self.rt.clone(),
            ptr: self.ptr + (offset * 4) as DevPtr,
            len,
        })
    }

    /// Part `i` of `parts` equal consecutive parts, read-only.
    pub fn part(&self, i: usize, parts: usize) -> GpuView<'_> {
        assert!(
            parts > 0 && self.len % parts == 0 && i < parts,
            "GpuBuf::part: part {i} of {parts} of {} values",
            self.len
        );
        let len = self.len / parts;
        GpuView { buf: self.alias(i * len, len), _parent: std::marker::PhantomData }
    }

    /// The buffer split into `parts` equal consecutive parts, each writable (disjoint and
    /// borrowed from `self`, as `slice::chunks_mut`).
    pub fn parts_mut(&mut self, parts: usize) -> Vec<GpuViewMut<'_>> {
        assert!(
            parts > 0 && self.len % parts == 0,
            "GpuBuf::parts_mut: {} values in {parts} parts",
            self.len
        );
        let len = self.len / parts;
        (0..parts)
            .map(|i| GpuViewMut { buf: self.alias(i * len, len), _parent: std::marker::PhantomData })
            .collect()
    }
}
