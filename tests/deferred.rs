//! The emulator's deferred mode (work queued per stream and run at synchronisation points, as
//! on a GPU): the search gives bitwise the same steps and checkpoint as eager execution, and the
//! lifetime bugs that asynchrony allows fail with a message naming the kernel and the buffer,
//! where eager execution would pass them silently.
#![cfg(feature = "emu")]

#[path = "common/search_steps.rs"]
mod search_steps;

use std::sync::Arc;

use darts::backend::gpu::emu::EmuRuntime;
use darts::backend::gpu::launch::elementwise as el;
use darts::backend::gpu::{Arg, Gpu, GpuBuf, GpuError, Graph, HostStage, LaunchCfg, Runtime, Stream};
use darts::search::Order;
use search_steps::{steps, Exec};

#[test]
fn deferred_search_steps_and_checkpoint_equal_eager_bitwise() {
    for order in [Order::First, Order::Second] {
        let eager = steps(Arc::new(EmuRuntime::new(0, 0)), order, Exec::Step);
        let rt = Arc::new(EmuRuntime::deferred(0, 0));
        let deferred = steps(rt.clone() as Gpu, order, Exec::Stepper);
        assert_eq!(eager.0, deferred.0, "{order:?}: step statistics differ");
        assert!(eager.1 == deferred.1, "{order:?}: the checkpoint arrays differ");
        assert_eq!(deferred.2, (0, 0), "graphs were off");
        // The deferred runtime did reuse freed blocks (what its checks are about).
        assert!(rt.memory().cached > 0 || rt.memory().peak > 0);
    }
}

/// Issue 10's acceptance: eager, deferred and graph-replayed execution give bitwise the same
/// search steps, first and second order, and the same checkpoint; the step is captured once
/// and replayed at every later step of its shape.
#[test]
fn graph_replayed_search_steps_and_checkpoint_equal_eager_bitwise() {
    for order in [Order::First, Order::Second] {
        let eager = steps(Arc::new(EmuRuntime::new(0, 0)), order, Exec::Step);
        let graph = steps(Arc::new(EmuRuntime::deferred(0, 0)), order, Exec::Graph);
        assert_eq!(graph.2, (2, 1), "{order:?}: (replays, captures)");
        assert_eq!(eager.0, graph.0, "{order:?}: step statistics differ");
        assert!(eager.1 == graph.1, "{order:?}: the checkpoint arrays differ");
    }
}

fn deferred() -> Gpu {
    Arc::new(EmuRuntime::deferred(0, 0))
}

fn upload(rt: &Gpu, v: &[f32]) -> GpuBuf {
    GpuBuf::from_host(rt, v).unwrap()
}

/// Planted bug 1: a result read through a staging buffer before the synchronisation that makes
/// it. Eager execution returns the right values; the deferred emulator refuses the read, naming
/// the kernel whose result it is and the buffer.
#[test]
fn a_host_read_before_the_sync_fails_naming_the_kernel_and_buffer() {
    let run = |rt: Gpu| -> Result<Vec<f32>, GpuError> {
        let x = upload(&rt, &[1.0, 2.0, 3.0, 4.0]);
        let mut y = GpuBuf::alloc(&rt, 4)?;
        el::scale(&x, 2.0, &mut y)?;
        let mut stage = HostStage::new(&rt, 4)?;
        stage.download(&y)?;
        // The bug: no rt.synchronize() here.
        Ok(stage.read()?.to_vec())
    };
    assert_eq!(run(Arc::new(EmuRuntime::new(0, 0))).unwrap(), [2.0, 4.0, 6.0, 8.0]);
    let err = run(deferred()).expect_err("a read before the sync");
    let msg = err.to_string();
    println!("{msg}");
    assert!(matches!(err, GpuError::NotReady(_)), "{msg}");
    assert!(msg.contains("host read") && msg.contains("scale_f32") && msg.contains("buffer 0x"), "{msg}");

    // The same with the synchronisation: the values.
    let rt = deferred();
    let x = upload(&rt, &[1.0, 2.0, 3.0, 4.0]);
    let mut y = GpuBuf::alloc(&rt, 4).unwrap();
    el::scale(&x, 2.0, &mut y).unwrap();
    let mut stage = HostStage::new(&rt, 4).unwrap();
    stage.download(&y).unwrap();
    rt.synchronize().unwrap();
    assert_eq!(stage.read().unwrap(), [2.0, 4.0, 6.0, 8.0]);
}

/// Planted bug 2: a block freed and reallocated while a queued kernel still reads it, then
/// written by the copy stream without waiting for the compute stream (a double-buffered upload
/// into a recycled buffer). Eager execution hides it; the deferred emulator fails the upload,
/// naming the queued kernel, the buffer and the reuse.
#[test]
fn a_block_reused_under_a_queued_kernel_fails_naming_the_kernel_and_buffer() {
    let run = |rt: Gpu, wait: bool| -> Result<Vec<f32>, GpuError> {
        let mut stage = HostStage::new(&rt, 4)?;
        stage.write(&[9.0; 4])?;
        let x = upload(&rt, &[1.0, 2.0, 3.0, 4.0]);
        let mut y = GpuBuf::alloc(&rt, 4)?;
        el::scale(&x, 2.0, &mut y)?; // queued: reads x
        drop(x); // stream-ordered free: fine by itself
        let mut next = GpuBuf::alloc(&rt, 4)?; // the same block, reallocated
        if wait {
            let e = rt.record(Stream::Compute)?;
            rt.wait(Stream::Copy, e)?;
        }
        stage.upload(Stream::Copy, &mut next)?; // the bug (without the wait): races the scale
        rt.synchronize()?;
        y.to_host()
    };
    assert_eq!(run(Arc::new(EmuRuntime::new(0, 0)), false).unwrap(), [2.0, 4.0, 6.0, 8.0]);
    let err = run(deferred(), false).expect_err("an unordered reuse");
    let msg = err.to_string();
    println!("{msg}");
    assert!(
        msg.contains("scale_f32") && msg.contains("buffer at 0x") && msg.contains("freed and reallocated"),
        "{msg}"
    );
    assert!(msg.contains("copy stream") && msg.contains("compute stream"), "{msg}");
    // With the event, the same program is correct and gives the eager values.
    assert_eq!(run(deferred(), true).unwrap(), [2.0, 4.0, 6.0, 8.0]);
}

/// A launch handed a pointer into a freed block fails at once, and a freed block reads as NaN
/// once its free has run.
#[test]
fn freed_blocks_are_poisoned_and_a_stale_pointer_is_refused() {
    let rt = deferred();
    let x = upload(&rt, &[1.0, 2.0]);
    let stale = x.ptr();
    drop(x);
    let y = GpuBuf::alloc(&rt, 3).unwrap(); // another size: not x's block
                                            // A raw pointer kept past its buffer's life, handed to a kernel.
    let args = [Arg::Ptr(stale), Arg::F32(2.0), y.arg(), Arg::I32(3)];
    let err = rt.launch_named("scale_f32", LaunchCfg::linear(1, 256), &args).expect_err("a use after free");
    assert!(err.to_string().contains("use after free") && err.to_string().contains("scale_f32"), "{err}");

    let rt = deferred();
    let a = upload(&rt, &[1.0, 2.0, 3.0]);
    drop(a);
    rt.synchronize().unwrap();
    let b = GpuBuf::alloc(&rt, 3).unwrap(); // the same block, after its free ran
    assert!(b.to_host().unwrap().iter().all(|v| v.is_nan()), "a reused block is poisoned");
}

/// y = 2x + x computed through a temporary (allocated and freed inside the work).
fn work(x: &GpuBuf, y: &mut GpuBuf) -> Result<(), GpuError> {
    let mut t = GpuBuf::alloc(x.runtime(), x.len())?;
    el::scale(x, 2.0, &mut t)?;
    el::scale(x, 1.0, y)?;
    el::axpy(1.0, &t, y)?;
    Ok(()) // t is freed here: inside a capture it is kept for the graph
}

/// A graph recorded once and replayed on new inputs gives what eager execution gives, its
/// temporaries are kept for it (never handed to another buffer while it lives), and a replay
/// after a buffer it uses was freed and reused fails naming the kernel and the buffer.
#[test]
fn a_recorded_graph_replays_the_work_and_guards_its_buffers() {
    let rt = deferred();
    let mut x = upload(&rt, &[0.0; 4]);
    let mut y = GpuBuf::alloc(&rt, 4).unwrap();
    let mut stage = HostStage::new(&rt, 4).unwrap();
    let graph = Graph::capture(&rt, || work(&x, &mut y)).unwrap();
    assert_eq!(rt.counts().launches, 3, "recorded, each launch issued once");
    for step in 1..=3 {
        let v = [step as f32, -1.5 * step as f32, 0.25, 1e3];
        stage.write(&v).unwrap();
        stage.upload(Stream::Compute, &mut x).unwrap();
        graph.replay().unwrap();
        let want: Vec<f32> = v.iter().map(|a| 2.0 * a + a).collect();
        assert_eq!(y.to_host().unwrap(), want, "replay {step}");
    }
    assert_eq!(rt.counts().launches, 3, "replays issue no launches from the host");
    // The temporary's block is the graph's: a new 4-value buffer gets another block, which
    // replays leave alone.
    let other = upload(&rt, &[7.0; 4]);
    graph.replay().unwrap();
    assert_eq!(
        other.to_host().unwrap(),
        [7.0; 4],
        "a replay wrote into a buffer allocated after the capture"
    );
    drop(other);

    // Planted: x freed after the capture and its block handed to another buffer.
    let x_ptr = x.ptr();
    drop(x);
    let intruder = GpuBuf::alloc(&rt, 4).unwrap();
    assert_eq!(intruder.ptr(), x_ptr, "the freed block is reused");
    let err = graph.replay().expect_err("x's block belongs to another buffer now");
    let msg = err.to_string();
    println!("{msg}");
    assert!(
        msg.contains("replaying graph")
            && msg.contains("scale_f32")
            && msg.contains("freed after the capture"),
        "{msg}"
    );
    assert!(msg.contains(&format!("{x_ptr:#x}")), "{msg}");
}

/// What a graph cannot record: a blocking read, a copy from pageable memory, the copy stream.
#[test]
fn a_capture_refuses_waits_pageable_copies_and_the_eager_emulator() {
    let rt = deferred();
    let x = upload(&rt, &[1.0, 2.0]);
    let err = Graph::capture(&rt, || x.to_host().map(|_| ())).err().expect("a blocking read");
    assert!(err.to_string().contains("while recording a graph"), "{err}");
    let err = Graph::capture(&rt, || GpuBuf::from_host(&rt, &[1.0]).map(|_| ())).err().expect("pageable");
    assert!(err.to_string().contains("pageable host memory"), "{err}");
    let eager: Gpu = Arc::new(EmuRuntime::new(0, 0));
    let err = Graph::capture(&eager, || Ok(())).err().expect("eager emulator");
    assert!(err.to_string().contains("deferred emulator"), "{err}");
    // The runtime still works after the refused captures.
    let mut y = GpuBuf::alloc(&rt, 2).unwrap();
    el::scale(&x, 3.0, &mut y).unwrap();
    assert_eq!(y.to_host().unwrap(), [3.0, 6.0]);
}
