//! Reverse-mode autograd: a tape of recorded ops with hand-written backward functions.
//!
//! A forward pass builds a fresh [`Tape`]; leaves are parameters tagged with a [`ParamId`] and a
//! [`Groups`] bit (weights, architecture, inputs). [`Tape::backward`] walks the tape in reverse
//! and returns a [`GradStore`] for the requested groups only: a node none of whose inputs depends
//! on a requested group is skipped, and each backward function is told which of its inputs need
//! a gradient, so an alpha-only pass computes no weight gradients and vice versa.

pub mod check;
pub mod functions;
mod grads;
mod tape;

pub use grads::{GradStore, Groups, ParamId};
pub use tape::{BackwardFn, Tape, Var};
