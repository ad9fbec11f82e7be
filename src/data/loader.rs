//! [`Loader`]: prepares a sampler's batches on a background thread, a few ahead, so reading and
//! augmenting overlap the compute. It yields exactly the batches the synchronous
//! [`Sampler::next_batch`] would, and its [`Loader::state`] is the sampler's state after the last
//! batch *handed out* (not after those prefetched), so a checkpoint taken from it resumes exactly.

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

/// A background batch producer. Dropping it stops and joins the thread.
pub struct Loader {
    rx: Option<Receiver<(Batch, SamplerState)>>,
    handle: Option<JoinHandle<()>>,
    state: SamplerState,
}

impl Loader {
    /// Starts a thread drawing `sampler`'s batches from `set` in `dtype`, keeping up to `depth`
    /// (at least 1; [`DEFAULT_DEPTH`] is a good choice) ready. Errors if the sampler can draw an
    /// index outside the set, or the thread cannot start.
    pub fn spawn<S: Sampler + Send + 'static>(
        set: Arc<CifarSet>,
        mut sampler: S,
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
        let state = sampler.state();
        let (tx, rx) = sync_channel(depth.max(1));
        let handle = std::thread::Builder::new()
            .name("darts-data-loader".into())
            .spawn(move || loop {
                let plan = sampler.next_plan();
                let batch = build_batch(&set, &plan, dtype);
                // The receiver is gone: the loader was dropped.
                if tx.send((batch, sampler.state())).is_err() {
                    return;
                }
            })
            .map_err(|source| DataError::Thread { source })?;
        Ok(Loader { rx: Some(rx), handle: Some(handle), state })
    }

    /// The next batch (waits if it is not ready yet).
    pub fn next_batch(&mut self) -> Batch {
        let rx = self.rx.as_ref().expect("the receiver lives until drop");
        match rx.recv() {
            Ok((batch, state)) => {
                self.state = state;
                batch
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

    /// The sampler's state after the last batch returned by [`Loader::next_batch`].
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
