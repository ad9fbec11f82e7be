//! Deterministic rayon helpers shared by the CPU ops.
//!
//! Every parallel loop here uses a partition fixed by the data size alone (never by the thread
//! count), and every reduction combines its per-chunk partials sequentially in chunk order, so
//! results are bitwise identical whatever rayon's pool size. Small inputs stay on the calling
//! thread; because the partition is the same either way, that choice never changes a result.

use rayon::prelude::*;

/// Total elements below which a loop runs on the calling thread.
pub const PAR_MIN: usize = 1 << 15;

/// Elements per chunk of an elementwise loop or a flat reduction.
pub const CHUNK: usize = 1 << 12;

/// Whether work touching `elems` elements is worth spreading over rayon's pool.
#[inline]
pub fn is_large(elems: usize) -> bool {
    elems >= PAR_MIN
}

/// Calls `f(offset, chunk)` on consecutive `chunk`-element pieces of `y` (the last may be
/// shorter), where `offset` is the index of the piece's first element in `y`. Runs in parallel
/// when `y` is large. `chunk` is typically [`CHUNK`] for elementwise work or a plane size.
pub fn for_each_chunk_mut<T, F>(y: &mut [T], chunk: usize, f: F)
where
    T: Send,
    F: Fn(usize, &mut [T]) + Sync + Send,
{
    if y.is_empty() {
        return;
    }
    let chunk = chunk.max(1);
    if is_large(y.len()) {
        y.par_chunks_mut(chunk).enumerate().for_each(|(i, piece)| f(i * chunk, piece));
    } else {
        y.chunks_mut(chunk).enumerate().for_each(|(i, piece)| f(i * chunk, piece));
    }
}

/// `[f(0), f(1), ..., f(count - 1)]`, computed in parallel when `large`.
pub fn map_collect<R, F>(count: usize, large: bool, f: F) -> Vec<R>
where
    R: Send,
    F: Fn(usize) -> R + Sync + Send,
{
    if large {
        (0..count).into_par_iter().map(f).collect()
    } else {
        (0..count).map(f).collect()
    }
}

/// `sum_{i < len} term(i)` in f64: the range is cut into fixed [`CHUNK`]-sized pieces, each piece
/// is summed in order (in parallel across pieces when large), and the partials are added in
/// piece order.
pub fn sum_f64<F>(len: usize, term: F) -> f64
where
    F: Fn(usize) -> f64 + Sync + Send,
{
    let pieces = len.div_ceil(CHUNK);
    let partial = |p: usize| -> f64 {
        let end = ((p + 1) * CHUNK).min(len);
        (p * CHUNK..end).map(&term).sum::<f64>()
    };
    map_collect(pieces, is_large(len), partial).into_iter().sum::<f64>()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sum_f64_is_independent_of_thread_count() {
        let len = 3 * PAR_MIN + 17;
        let term = |i: usize| ((i as f64) * 0.731).sin() * 1e3;
        let one =
            rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap().install(|| sum_f64(len, term));
        let many =
            rayon::ThreadPoolBuilder::new().num_threads(5).build().unwrap().install(|| sum_f64(len, term));
        assert_eq!(one.to_bits(), many.to_bits());
    }

    #[test]
    fn for_each_chunk_mut_visits_every_offset_once() {
        for len in [0, 1, CHUNK - 1, CHUNK + 1, PAR_MIN + 3] {
            let mut y = vec![0usize; len];
            for_each_chunk_mut(&mut y, CHUNK, |off, piece| {
                for (i, v) in piece.iter_mut().enumerate() {
                    *v += off + i;
                }
            });
            assert!(y.iter().enumerate().all(|(i, &v)| v == i), "len {len}");
        }
    }
}
