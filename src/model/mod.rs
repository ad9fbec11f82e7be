//! The DARTS search network: mixed ops, cells, the network and its α.

pub mod cell;
pub mod mixed;
pub mod network;

pub use mixed::PRIMITIVES;
pub use network::{NetConfig, Network};
