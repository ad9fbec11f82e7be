//! darts: DARTS (Differentiable Architecture Search) on an engine written from scratch.
//!
//! Layers, bottom up: [`backend`] (CPU functions over slices; GPU launches later) ->
//! [`tensor`] and [`ops`] (shape-checked ops dispatching to a backend) -> [`autograd`] (the
//! tape, with hand-written backward functions).

pub mod autograd;
pub mod backend;
pub mod bench;
pub mod checkpoint;
pub mod data;
pub mod device;
pub mod fused;
pub mod memstat;
pub mod meter;
pub mod model;
pub mod nn;
pub mod ops;
pub mod optim;
pub mod rng;
pub mod search;
pub mod tensor;
pub mod train;
pub mod verify;

pub use tensor::{DType, Device, Tensor};
