//! Fused ops. Each is one tape node whose forward and hand-written backward replace a
//! composition of `ops`; that composition stays in the code as the reference it is tested
//! against (`darts search --no-fuse`). One folder per op: `mod.rs` (the node and the dispatch),
//! `cpu.rs` (the generic f32/f64 loops), `gpu.rs` (the launches of its kernel file).

pub mod mixed;
