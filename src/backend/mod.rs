//! Backends: the CPU functions over slices (reference and engine), and later the GPU launches.

pub mod cpu;
pub mod geom;
pub mod gpu;
