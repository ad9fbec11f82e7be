//! Layers built from ops: the parameter store and forward context, and the DARTS blocks
//! (ReLU-conv-BN, FactorizedReduce, separable and dilated convs, pool + BN).

pub mod layers;
pub mod store;

pub use layers::{ConvParts, DilConv, FactorizedReduce, PoolBn, PoolKind, ReluConvBn, SepConv};
pub use store::{BnBuffers, Ctx, Param, Store, B, P};
