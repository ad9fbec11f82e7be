//! Fused ops: several ops recorded as one tape node with a hand-written backward that recomputes
//! cheap intermediates (ReLU masks, depthwise outputs, normalised values) instead of storing
//! them. Each op is a folder: `mod.rs` (the tape node, with a top comment stating what it saves
//! and what it recomputes), `cpu.rs` and `gpu.rs` (the backends). The unfused composition of
//! existing ops is the reference each fused op is tested against (`darts search --no-fuse`).

pub mod convs;
pub mod mixed;
pub mod sepconv;
