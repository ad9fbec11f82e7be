//! The asynchronous runtime on a GPU: two streams with an event between them, page-locked
//! staging both ways, and a graph recorded once and replayed on new inputs (the deferred
//! emulator checks the same program in `tests/deferred.rs`).

use darts::backend::gpu::launch::elementwise as el;
use darts::backend::gpu::{Gpu, GpuBuf, GpuError, Graph, HostStage, Stream};

/// y = 2x + x through a temporary allocated and freed inside the work (kept for a graph).
fn work(x: &GpuBuf, y: &mut GpuBuf) -> Result<(), GpuError> {
    let mut t = GpuBuf::alloc(x.runtime(), x.len())?;
    el::scale(x, 2.0, &mut t)?;
    el::scale(x, 1.0, y)?;
    el::axpy(1.0, &t, y)
}

/// Three replays of a recorded graph on inputs uploaded on the copy stream, results downloaded
/// through staging: each equals the eager arithmetic.
pub fn check(rt: &Gpu) {
    let mut x = GpuBuf::alloc(rt, 4).unwrap();
    let mut y = GpuBuf::alloc(rt, 4).unwrap();
    let mut up = HostStage::new(rt, 4).unwrap();
    let mut down = HostStage::new(rt, 4).unwrap();
    let graph = Graph::capture(rt, || work(&x, &mut y)).unwrap();
    for step in 1..=3 {
        let v = [step as f32, -1.5 * step as f32, 0.25, 1e3];
        up.wait().unwrap();
        up.write(&v).unwrap();
        let e = rt.record(Stream::Compute).unwrap();
        rt.wait(Stream::Copy, e).unwrap();
        up.upload(Stream::Copy, &mut x).unwrap();
        let copied = rt.record(Stream::Copy).unwrap();
        rt.wait(Stream::Compute, copied).unwrap();
        graph.replay().unwrap();
        down.download(&y).unwrap();
        rt.synchronize().unwrap();
        let want: Vec<f32> = v.iter().map(|a| 2.0 * a + a).collect();
        assert_eq!(down.read().unwrap(), &want[..], "replay {step}");
    }
}
