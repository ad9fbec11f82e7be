//! The DARTS search: the bilevel step (architect first/second order + weight step).

pub mod arch;
pub mod diagnostics;
pub mod early_stop;
pub mod genotype;
mod genotype_python;
pub mod genotypes;
pub mod hessian;
pub mod hyper;
pub mod plot;
pub mod prefetch;
pub mod robust;
pub mod run;
pub mod state_io;
pub mod step;
pub mod stepper;

pub use step::{Batch, Order, SearchState, StepConfig, StepStats};
