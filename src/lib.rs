//! darts: DARTS (Differentiable Architecture Search) on an engine written from scratch.
//!
//! Layers, bottom up: [`backend`] (CPU functions, GPU launches) -> [`tensor`] and [`ops`]
//! (shape-checked ops dispatching to a backend) -> [`autograd`] (the tape).

pub mod backend;
