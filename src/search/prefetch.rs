//! Double-buffered batch upload on a GPU: the next step's images and labels go up on the copy stream from
//! page-locked staging while the current step computes.
//!
//! Two slots, each a [`HostStage`] and a device tensor, used alternately. For a slot:
//!
//! ```text
//! upload:  host images → stage (once its previous upload has run)
//!          copy stream waits for the compute stream's last use of the device tensor
//!          stage → device tensor on the copy stream; event `ready`
//! take:    compute stream waits for `ready`; the device tensor
//! release: event `used` on the compute stream (after the step that read it)
//! ```
//!
//! The deferred emulator checks exactly these orderings (a missing wait fails with the kernel and
//! the buffer it races).

use crate::backend::gpu::{Event, Gpu, HostStage, Stream};
use crate::device::DeviceError;
use crate::ops::loss::labels_f32;
use crate::tensor::{DType, Tensor};

/// Staging buffers and device tensors for a batch's images and labels.
struct Slot {
    stage: HostStage,
    dev: Tensor,
    label_stage: HostStage,
    labels: Tensor,
    /// The upload into `dev` has run once this has.
    ready: Event,
    /// The compute stream is done with `dev` once this has.
    used: Option<Event>,
}

/// Two upload slots on a runtime.
pub struct Prefetch {
    rt: Gpu,
    slots: [Option<Slot>; 2],
    next: usize,
}

impl Prefetch {
    /// Empty slots (allocated on first use, and again when the batch shape changes).
    pub fn new(rt: &Gpu) -> Prefetch {
        Prefetch { rt: rt.clone(), slots: [None, None], next: 0 }
    }

    /// Enqueues the upload of `images` and `labels` (on the host; the labels as the f32 the loss
    /// kernels read) into the next slot on the copy stream; returns the slot for
    /// [`Prefetch::take`].
    pub fn upload(&mut self, images: &Tensor, labels: &[u32]) -> Result<usize, DeviceError> {
        let s = self.next;
        self.next ^= 1;
        // GPU batches are f32: the loader's values as they are (converted only otherwise).
        let converted: Vec<f32>;
        let values: &[f32] = match images.dtype() {
            DType::F32 => images.data::<f32>(),
            _ => {
                converted = images.to_f64_vec().iter().map(|&v| v as f32).collect();
                &converted
            }
        };
        let rt = self.rt.clone();
        let labels = labels_f32(labels);
        let fits = self.slots[s]
            .as_ref()
            .is_some_and(|sl| sl.dev.shape() == images.shape() && sl.labels.numel() == labels.len());
        if !fits {
            self.slots[s] = Some(Slot {
                stage: HostStage::new(&rt, values.len())?,
                dev: Tensor::empty_gpu(images.shape(), &rt),
                label_stage: HostStage::new(&rt, labels.len())?,
                labels: Tensor::empty_gpu(&[labels.len()], &rt),
                ready: rt.record(Stream::Copy)?,
                used: None,
            });
        }
        let slot = self.slots[s].as_mut().expect("made above");
        slot.stage.wait()?;
        slot.stage.write(values)?;
        slot.label_stage.wait()?;
        slot.label_stage.write(&labels)?;
        // The copy stream overwrites the tensor only after the compute stream's last use of it
        // (for a new tensor: after everything issued so far, its block may be a reused one).
        let last_use = match slot.used.take() {
            Some(e) => e,
            None => rt.record(Stream::Compute)?,
        };
        rt.wait(Stream::Copy, last_use)?;
        slot.stage.upload(Stream::Copy, slot.dev.gpu_buf_mut())?;
        slot.label_stage.upload(Stream::Copy, slot.labels.gpu_buf_mut())?;
        slot.ready = rt.record(Stream::Copy)?;
        Ok(s)
    }

    /// The images and labels of slot `s`, for work on the compute stream (which waits for their
    /// upload).
    pub fn take(&mut self, s: usize) -> Result<(Tensor, Tensor), DeviceError> {
        let slot = self.slots[s].as_ref().expect("take after upload");
        self.rt.wait(Stream::Compute, slot.ready)?;
        Ok((slot.dev.clone(), slot.labels.clone()))
    }

    /// Marks the compute stream's work issued so far as the last use of slot `s` (drop every
    /// clone of its tensor first: the next upload writes it in place).
    pub fn release(&mut self, s: usize) -> Result<(), DeviceError> {
        let used = self.rt.record(Stream::Compute)?;
        if let Some(slot) = self.slots[s].as_mut() {
            slot.used = Some(used);
        }
        Ok(())
    }
}
