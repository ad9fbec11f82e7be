//! `GpuBuf`: an owned f32 device allocation that returns itself to its runtime on drop.

use std::sync::Arc;

use super::runtime::{Arg, DevPtr, Event, GpuError, Runtime, Stream};

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

/// `len` f32 values of page-locked host memory for asynchronous copies: the next batch staged
/// for upload on the copy stream, or the step's scalars downloaded without a wait.
///
/// It remembers its last copy: touching the values from the host before that copy has run is
/// an error naming the copy (and, on the emulator, the queued kernel whose result it carries),
/// never a silent race.
pub struct HostStage {
    rt: Gpu,
    ptr: *mut u8,
    len: usize,
    /// The event recorded after the last copy to or from it, and what that copy was.
    pending: Option<(Event, String)>,
}

// SAFETY: the memory is owned by the stage (a raw pointer only because the runtime allocates
// it); access goes through `&self`/`&mut self` like a Vec's.
unsafe impl Send for HostStage {}

impl HostStage {
    /// `len` zeroed values.
    pub fn new(rt: &Gpu, len: usize) -> Result<HostStage, GpuError> {
        let ptr = rt.host_alloc(len * 4)?;
        // SAFETY: freshly allocated, len * 4 bytes.
        unsafe { std::ptr::write_bytes(ptr, 0, len * 4) };
        Ok(HostStage { rt: rt.clone(), ptr, len, pending: None })
    }

    /// Number of f32 values.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Fails if the last copy has not run yet.
    fn settled(&mut self, access: &str) -> Result<(), GpuError> {
        if let Some((event, what)) = &self.pending {
            if !self.rt.query(*event)? {
                return Err(GpuError::NotReady(format!(
                    "{access} a staging buffer of {} values while {what} has not run; synchronize (or wait for its \
                     event) first",
                    self.len
                )));
            }
        }
        self.pending = None;
        Ok(())
    }

    /// Waits until the last copy to or from the stage has run (synchronising the runtime if it
    /// has not yet).
    pub fn wait(&mut self) -> Result<(), GpuError> {
        if let Some((event, _)) = &self.pending {
            if !self.rt.query(*event)? {
                self.rt.synchronize()?;
            }
        }
        self.pending = None;
        Ok(())
    }

    /// The values (after the last copy into them has run).
    pub fn read(&mut self) -> Result<&[f32], GpuError> {
        self.settled("host read of")?;
        // SAFETY: len * 4 initialised bytes owned by the stage, no copy in flight.
        Ok(unsafe { std::slice::from_raw_parts(self.ptr as *const f32, self.len) })
    }

    /// Overwrites the values (after the last copy from them has run).
    pub fn write(&mut self, data: &[f32]) -> Result<(), GpuError> {
        assert_eq!(
            data.len(),
            self.len,
            "HostStage::write: {} values into a stage of {}",
            data.len(),
            self.len
        );
        self.settled("host write to")?;
        // SAFETY: as in `read`, and `data` is another allocation.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr() as *const u8, self.ptr, self.len * 4) };
        Ok(())
    }

    /// Enqueues the upload of the values into `dst` on `stream` (and records an event after it).
    pub fn upload(&mut self, stream: Stream, dst: &mut GpuBuf) -> Result<(), GpuError> {
        assert_eq!(
            dst.len, self.len,
            "HostStage::upload: a stage of {} values into a buffer of {}",
            self.len, dst.len
        );
        self.settled("upload from")?;
        // SAFETY: the stage's memory came from host_alloc and lives until drop, which waits for
        // the pending copy.
        unsafe { self.rt.htod_async(stream, self.ptr, dst.ptr, self.len * 4)? };
        let what = format!("its upload on the {stream} stream into {}", self.rt.describe_buffer(dst.ptr));
        self.pending = Some((self.rt.record(stream)?, what));
        Ok(())
    }

    /// Enqueues the download of `src` into the stage on the compute stream (and records an event
    /// after it): [`HostStage::read`] gives the values once it has run.
    pub fn download(&mut self, src: &GpuBuf) -> Result<(), GpuError> {
        assert_eq!(
            src.len, self.len,
            "HostStage::download: a buffer of {} values into a stage of {}",
            src.len, self.len
        );
        self.settled("download into")?;
        let what = format!("its download from {}", self.rt.describe_buffer(src.ptr));
        // SAFETY: as in `upload`.
        unsafe { self.rt.dtoh_async(src.ptr, self.ptr, self.len * 4)? };
        self.pending = Some((self.rt.record(Stream::Compute)?, what));
        Ok(())
    }
}

impl Drop for HostStage {
    fn drop(&mut self) {
        if self.pending.is_some() {
            // The copy must not outlive the memory.
            let _ = self.rt.synchronize();
        }
        // SAFETY: allocated by this runtime's host_alloc(len * 4); no copy in flight.
        unsafe { self.rt.host_free(self.ptr, self.len * 4) };
    }
}

/// Work recorded once on a runtime's compute stream and replayed as a whole: a CUDA graph, or
/// on the (deferred) emulator the recorded operations. Dropping it releases the graph and the
/// buffers it kept.
pub struct Graph {
    rt: Gpu,
    id: u64,
}

impl Graph {
    /// Records the work `work` issues (nothing runs while recording; see
    /// [`Runtime::begin_capture`] for what it may not do). A failure inside `work` ends the
    /// recording and is returned.
    pub fn capture(rt: &Gpu, work: impl FnOnce() -> Result<(), GpuError>) -> Result<Graph, GpuError> {
        rt.begin_capture()?;
        let done = work();
        let id = rt.end_capture();
        match (done, id) {
            (Ok(()), Ok(id)) => Ok(Graph { rt: rt.clone(), id }),
            (Err(e), Ok(id)) => {
                rt.release_graph(id);
                Err(e)
            }
            (Err(e), Err(_)) | (Ok(()), Err(e)) => Err(e),
        }
    }

    /// Enqueues the recorded work again.
    pub fn replay(&self) -> Result<(), GpuError> {
        self.rt.replay(self.id)
    }
}

impl Drop for Graph {
    fn drop(&mut self) {
        self.rt.release_graph(self.id);
    }
}
