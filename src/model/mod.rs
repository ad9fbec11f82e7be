//! The DARTS networks: the search network (mixed ops, cells, the network and its α) and the
//! evaluation network built from a genotype ([`eval`]).

pub mod cell;
pub mod eval;
pub mod fair;
pub mod method;
pub mod mixed;
pub mod network;
pub mod pc;

pub use method::Method;
pub use mixed::PRIMITIVES;
pub use network::{NetConfig, Network};
