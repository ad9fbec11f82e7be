//! Launch code for each kernel family: grid sizing and argument lists, written once for every
//! runtime. Each function documents the kernel file it drives.

pub mod batchnorm;
pub mod conv;
pub mod depthwise;
pub mod elementwise;
pub mod head;
pub mod layout;
pub mod optim;
pub mod pcdarts;
pub mod pool;
pub mod reduce;
pub mod sepconv;
pub mod softmax;
pub mod weighted_sum;
pub mod zero_one;

use super::buffer::GpuBuf;

/// The block size every kernel here is written for.
pub const BLOCK: u32 = 256;
/// Upper bound on grid-stride launches' grid.
const MAX_GRID: usize = 65_535;
/// Upper bound on the block partials of a two-pass reduction. The partial count is a function
/// of n only, never of the device, so results are identical on every GPU and the emulator.
pub const MAX_PARTIALS: usize = 1024;

/// Blocks for a grid-stride loop over `n` elements.
pub fn grid_for(n: usize) -> u32 {
    n.div_ceil(BLOCK as usize).clamp(1, MAX_GRID) as u32
}

/// Block partials for a reduction over `n` elements.
pub fn partials_for(n: usize) -> usize {
    n.div_ceil(BLOCK as usize).clamp(1, MAX_PARTIALS)
}

/// Panics unless every buffer has `n` elements (an internal shape bug).
pub(crate) fn check_len(op: &str, n: usize, bufs: &[(&str, &GpuBuf)]) {
    for (name, b) in bufs {
        assert_eq!(b.len(), n, "{op}: {name} has {} elements, expected {n}", b.len());
    }
}

/// A length as the kernels' `int`.
pub(crate) fn int(op: &str, n: usize) -> i32 {
    i32::try_from(n).unwrap_or_else(|_| panic!("{op}: {n} elements exceed the kernels' 32-bit sizes"))
}
