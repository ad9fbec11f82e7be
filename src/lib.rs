//! darts: DARTS (Differentiable Architecture Search) on an engine written from scratch.
//!
//! Layers, bottom up: [`backend`] (CPU functions over slices; GPU launches later) ->
//! [`tensor`] and [`ops`] (shape-checked ops dispatching to a backend) -> [`autograd`] (the
//! tape, with hand-written backward functions).

pub mod autograd;
pub mod backend;
pub mod ops;
pub mod rng;
pub mod tensor;

pub use tensor::{DType, Device, Tensor};
