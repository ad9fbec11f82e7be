//! The GPU backend: a [`Runtime`] (CUDA through cudarc, or the host emulator), device buffers,
//! and launch code for each kernel family in `kernels/*.cu`.
//!
//! Launch code is written once against `Runtime`, so the emulator runs exactly the grid sizing
//! and argument lists that a GPU gets.

pub mod buffer;
pub mod cuda;
#[cfg(feature = "emu")]
pub mod emu;
#[cfg(feature = "emu")]
mod emu_queue;
pub mod kernels;
pub mod launch;
pub mod launcher;
pub mod null;
pub mod runtime;

pub use buffer::{Gpu, GpuBuf, GpuView, GpuViewMut, Graph, HostStage};
pub use kernels::{k, KernelId};
pub use runtime::{
    Arg, Counts, DevPtr, Event, GpuError, LaunchCfg, LaunchRecord, MemStats, Runtime, RuntimeKind, Stream,
    DEFAULT_DYNAMIC_SHARED,
};

/// Whether the kernel emulator is compiled into this binary.
pub const EMU_BUILT: bool = cfg!(feature = "emu");
