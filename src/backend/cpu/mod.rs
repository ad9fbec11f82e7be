//! The CPU backend: plain functions over contiguous NCHW slices, generic over `f32`/`f64`.
//!
//! This is the numerical reference every GPU kernel is checked against and the engine that runs
//! where no GPU is present. Functions write into caller-provided output slices (overwriting
//! them unless the name says `_acc`), panic with the op name on inconsistent lengths (internal
//! bugs: user-facing shape checks happen in `ops`), and use rayon where the work is large.

pub mod batchnorm;
pub mod concat;
pub mod conv;
pub mod elementwise;
pub mod gemm;
pub mod linear;
pub mod loss;
pub mod optim;
pub mod par;
pub mod pcdarts;
pub mod pool;
pub mod real;
pub mod reduce;
pub mod softmax;
#[cfg(test)]
pub(crate) mod testutil;

pub use real::Real;
