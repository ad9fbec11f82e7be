//! [`Loader`]: prepares a [`BatchSource`]'s batches on a background thread, a few ahead, so
//! reading and augmenting overlap the compute. It yields exactly the batches the source would
//! yield synchronously, and its [`Loader::state`] is the source's state after the last batch
//! *handed out* (not after those prefetched), so a checkpoint taken from it resumes exactly.
//!
//! [`Loader::spawn`] serves CIFAR-10 batches from a [`Sampler`]; [`Loader::from_source`] serves
//! any other source (e.g. the ImageNet folder reader's
//! [`ImageNetSource`](super::imagenet::ImageNetSource)).

use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;
use std::thread::JoinHandle;

use crate::tensor::DType;

use super::batch::{build_batch, Batch};
use super::cifar::CifarSet;
use super::error::DataError;
use super::sampler::{Sampler, SamplerState};

/// Batches prepared ahead by default.
pub const DEFAULT_DEPTH: usize = 3;

/// An endless producer of batches with a resumable state: what a [`Loader`] runs in the
/// background.
pub trait BatchSource: Send + 'static {
    /// Builds the next batch (advancing the source). An error ends the loader.
    fn next_batch(&mut self) -> Result<Batch, DataError>;
    /// The state after the batches built so far (restoring it, with the source's own
    /// `set_state`, makes the next batch the one that would have followed).
    fn state(&self) -> SamplerState;
}

/// CIFAR-10 batches: a sampler's plans built from a set.
struct CifarSource<S> {
    set: Arc<CifarSet>,
    sampler: S,
    dtype: DType,
}

impl<S: Sampler + Send + 'static> BatchSource for CifarSource<S> {
    fn next_batch(&mut self) -> Result<Batch, DataError> {
        let plan = self.sampler.next_plan();
        Ok(build_batch(&self.set, &plan, self.dtype))
    }

    fn state(&self) -> SamplerState {
        self.sampler.state()
    }
}

type Item = Result<(Batch, SamplerState), DataError>;

/// A background batch producer. Dropping it stops and joins the thread.
pub struct Loader {
    rx: Option<Receiver<Item>>,
    handle: Option<JoinHandle<()>>,
    state: SamplerState,
    failed: bool,
}

impl Loader {
    /// Starts a thread drawing `sampler`'s batches from `set` in `dtype`, keeping up to `depth`
    /// (at least 1; [`DEFAULT_DEPTH`] is a good choice) ready. Errors if the sampler can draw an
    /// index outside the set, or the thread cannot start.
    pub fn spawn<S: Sampler + Send + 'static>(
        set: Arc<CifarSet>,
        sampler: S,
        dtype: DType,
        depth: usize,
    ) -> Result<Loader, DataError> {
        if sampler.index_bound() > set.len() {
            return Err(DataError::BadBatch {
                detail: format!(
                    "the sampler draws indices up to {} but the data set has {} images",
                    sampler.index_bound() - 1,
                    set.len()
                ),
            });
        }
        Loader::from_source(CifarSource { set, sampler, dtype }, depth)
    }

    /// Starts a thread building `source`'s batches, keeping up to `depth` (at least 1) ready.
    /// Errors if the thread cannot start.
    pub fn from_source<B: BatchSource>(mut source: B, depth: usize) -> Result<Loader, DataError> {
        let state = source.state();
        let (tx, rx) = sync_channel::<Item>(depth.max(1));
        let handle = std::thread::Builder::new()
            .name("darts-data-loader".into())
            .spawn(move || loop {
                let item = source.next_batch().map(|batch| (batch, source.state()));
                let stop = item.is_err();
                // A failed send means the receiver is gone: the loader was dropped.
                if tx.send(item).is_err() || stop {
                    return;
                }
            })
            .map_err(|source| DataError::Thread { source })?;
        Ok(Loader { rx: Some(rx), handle: Some(handle), state, failed: false })
    }

    /// The next batch (waits if it is not ready yet), or the error that stopped the source; after
    /// an error every later call errors too.
    pub fn try_next_batch(&mut self) -> Result<Batch, DataError> {
        if self.failed {
            return Err(DataError::BadBatch {
                detail: "the data loader stopped after an earlier error".into(),
            });
        }
        let rx = self.rx.as_ref().expect("the receiver lives until drop");
        match rx.recv() {
            Ok(Ok((batch, state))) => {
                self.state = state;
                Ok(batch)
            }
            Ok(Err(e)) => {
                self.failed = true;
                Err(e)
            }
            Err(_) => {
                // The thread only ends early by panicking: pass the panic on.
                match self.handle.take().map(JoinHandle::join) {
                    Some(Err(payload)) => std::panic::resume_unwind(payload),
                    _ => panic!("the data loader thread ended unexpectedly"),
                }
            }
        }
    }

    /// The next batch (waits if it is not ready yet). Panics with the error's message if the
    /// source fails (CIFAR-10 sources never do; use [`Loader::try_next_batch`] for sources that
    /// read files).
    pub fn next_batch(&mut self) -> Batch {
        self.try_next_batch().unwrap_or_else(|e| panic!("data loader: {e}"))
    }

    /// The source's state after the last batch returned by [`Loader::next_batch`] or
    /// [`Loader::try_next_batch`].
    pub fn state(&self) -> SamplerState {
        self.state
    }
}

impl Iterator for Loader {
    type Item = Batch;

    /// Never `None`: the samplers are endless.
    fn next(&mut self) -> Option<Batch> {
        Some(self.next_batch())
    }
}

impl Drop for Loader {
    fn drop(&mut self) {
        // Dropping the receiver makes the thread's pending or next `send` fail, so it returns.
        drop(self.rx.take());
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::cifar::{CifarFile, RECORD_BYTES};
    use crate::data::sampler::{EpochSampler, RandomBatchSampler};

    /// A small synthetic set written to a temp file.
    fn synthetic_set(n: usize, tag: &str) -> CifarSet {
        let dir = std::env::temp_dir().join(format!("darts-loader-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("data_batch_1.bin");
        let bytes: Vec<u8> = (0..n * RECORD_BYTES)
            .map(
                |i| if i % RECORD_BYTES == 0 { ((i / RECORD_BYTES) % 10) as u8 } else { (i * 7 % 256) as u8 },
            )
            .collect();
        std::fs::write(&path, bytes).unwrap();
        let set = CifarSet::new(vec![CifarFile::open(&path).unwrap()]);
        std::fs::remove_dir_all(&dir).unwrap();
        set
    }

    fn same(a: &Batch, b: &Batch) -> bool {
        a.labels == b.labels
            && a.images.shape() == b.images.shape()
            && a.images.to_f64_vec() == b.images.to_f64_vec()
    }

    #[test]
    fn background_equals_synchronous_and_state_follows_consumer() {
        let set = Arc::new(synthetic_set(37, "eq"));
        let mut sync = EpochSampler::new((0..37).collect(), 8, true, 4).unwrap();
        let mut bg = Loader::spawn(
            set.clone(),
            EpochSampler::new((0..37).collect(), 8, true, 4).unwrap(),
            DType::F32,
            2,
        )
        .unwrap();
        for _ in 0..12 {
            let a = sync.next_batch(&set, DType::F32);
            let b = bg.next_batch();
            assert!(same(&a, &b));
            assert_eq!(bg.state(), sync.state());
        }
    }

    #[test]
    fn drop_stops_a_blocked_thread() {
        let set = Arc::new(synthetic_set(20, "drop"));
        let loader =
            Loader::spawn(set, RandomBatchSampler::new((0..20).collect(), 4, 0).unwrap(), DType::F64, 2);
        // Let the thread fill the channel and block on send, then drop: must return promptly.
        std::thread::sleep(std::time::Duration::from_millis(20));
        drop(loader);
    }

    #[test]
    fn out_of_range_sampler_is_refused() {
        let set = Arc::new(synthetic_set(5, "range"));
        let e = Loader::spawn(set, RandomBatchSampler::new((0..9).collect(), 4, 0).unwrap(), DType::F32, 2)
            .err()
            .unwrap();
        assert!(e.to_string().contains("up to 8 but the data set has 5 images"), "{e}");
    }
}
