//! Issuing search steps: eagerly, or on a GPU by replaying one captured step as a graph
//! (`darts search --cuda-graph auto|off`), with the step's scalars read back asynchronously.
//!
//! A replayed graph repeats the launches of the step it recorded, on the buffers it recorded. So
//! the captured step must leave every piece of persistent state (weights, α, BN statistics,
//! momentum buffers, Adam moments) where it found it (updated in place), and whatever changes
//! from step to step must come from device memory that the host fills before each replay:
//!
//! ```text
//! inputs   batch images and labels   copied (device to device) into the graph's own tensors
//! hyper    [lr, 1 − β1^t, 1 − β2^t]  written to page-locked staging, uploaded on the stream
//! replay   the whole step            one launch of the graph
//! scalars  [losses, norm, correct]   one asynchronous download into page-locked staging
//! ```
//!
//! Host-side counters the step advances (Adam's step, the BN layers' `num_batches_tracked`)
//! are advanced by the captured step's own increments at every replay. The state's buffer
//! addresses are checked before each replay: if anything moved them (a resumed state, an eager
//! step that reallocated), the step is captured again.
//!
//! A graph is captured on the second step of a batch shape (the first, eager, creates the
//! optimiser state the graph updates); a step of another shape (the last partial batch of an
//! epoch) runs eagerly beside the graph. On the CPU every step is eager.

use crate::autograd::GradStore;
use crate::backend::gpu::{DevPtr, Gpu, GpuError, Graph, HostStage, Stream};
use crate::device::DeviceError;
use crate::ops::loss::{labels_f32, Labels};
use crate::ops::optim::hyper;
use crate::tensor::{Device, Tensor};

use super::step::{Batch, SearchState, StepStats};

/// Whether GPU search steps are captured and replayed as a graph.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum GraphMode {
    /// Capture the step once its shapes repeat, and replay it (GPU runtimes that can).
    #[default]
    Auto,
    /// Issue every launch of every step from the host.
    Off,
}

/// How a step was issued.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Issued {
    /// Launch by launch from the host.
    Eager,
    /// Captured as a graph, then replayed.
    Captured,
    /// Replayed from the graph.
    Replayed,
}

impl Issued {
    /// The name in the log (`eager`, `captured`, `replayed`).
    pub fn name(self) -> &'static str {
        match self {
            Issued::Eager => "eager",
            Issued::Captured => "captured",
            Issued::Replayed => "replayed",
        }
    }
}

/// Issues search steps and reads back their scalars (see the module documentation).
pub struct Stepper {
    mode: GraphMode,
    gpu: Option<GpuSide>,
    /// The scalars of the last issued step, not yet read.
    pending: Option<Pending>,
    /// How the last step was issued.
    pub last: Issued,
    /// Steps replayed from a graph so far.
    pub replays: usize,
    /// Graphs captured so far.
    pub captures: usize,
}

/// A step's scalars on their way to the host.
enum Pending {
    /// Already on the host (CPU).
    Host(Tensor),
    /// Downloading into the stepper's staging (GPU).
    Staged,
}

/// What a stepper keeps on a GPU.
struct GpuSide {
    rt: Gpu,
    /// The step's hyperparameters `[hyper::LEN]`, at a fixed address the kernels read.
    hyper: Tensor,
    hyper_stage: HostStage,
    /// Where the step's scalars come back.
    out_stage: HostStage,
    /// The captured step, if any.
    graph: Option<Captured>,
    /// The batch shapes of the last eager step: the next step of the same shapes is captured.
    warm: Option<Key>,
}

/// The batch shapes (train images, validation images) a graph was captured for, and whether
/// it skips the architecture half ([`SearchState::arch_frozen`]).
type Key = (Vec<usize>, Vec<usize>, bool);

/// A captured step and everything it reads or writes outside the state.
struct Captured {
    key: Key,
    graph: Graph,
    /// Train images, train labels, validation images, validation labels: the graph's inputs.
    inputs: [Tensor; 4],
    /// The step's scalars (written by every replay).
    scalars: Tensor,
    /// The gradients the step leaves in `SearchState::last_grads` (rewritten by every replay).
    last_grads: Option<GradStore>,
    /// The addresses of the state's buffers the graph updates.
    addresses: Vec<DevPtr>,
    /// How much the captured step advanced each host counter ([`counters`]).
    advance: Vec<i64>,
}

impl Stepper {
    /// A stepper for steps on `device`.
    pub fn new(device: &Device, mode: GraphMode) -> Result<Stepper, DeviceError> {
        let gpu = match device {
            Device::Gpu(rt) => Some(GpuSide {
                rt: rt.clone(),
                hyper: Tensor::empty_gpu(&[hyper::LEN], rt),
                hyper_stage: HostStage::new(rt, hyper::LEN)?,
                out_stage: HostStage::new(rt, 4)?,
                graph: None,
                warm: None,
            }),
            Device::Cpu => None,
        };
        Ok(Stepper { mode, gpu, pending: None, last: Issued::Eager, replays: 0, captures: 0 })
    }

    /// Issues one step of `state` at weight learning rate `lr` without waiting for it; its
    /// stats come from [`Stepper::finish`], which must be called before the next `issue`.
    pub fn issue(
        &mut self,
        state: &mut SearchState,
        train: &Batch,
        val: &Batch,
        lr: f64,
    ) -> Result<(), DeviceError> {
        assert!(self.pending.is_none(), "Stepper::issue: the previous step's stats were not read (finish)");
        let Some(g) = self.gpu.as_mut() else {
            self.last = Issued::Eager;
            let hyper = state.hyper_tensor(lr);
            self.pending = Some(Pending::Host(state.enqueue_step(train, val, &hyper)));
            return Ok(());
        };
        let values: Vec<f32> = state.hyper_values(lr).iter().map(|&v| v as f32).collect();
        g.hyper_stage.wait()?;
        g.hyper_stage.write(&values)?;
        g.hyper_stage.upload(Stream::Compute, g.hyper.gpu_buf_mut())?;
        let key: Key = (train.x.shape().to_vec(), val.x.shape().to_vec(), state.arch_frozen);
        let graphs = self.mode == GraphMode::Auto && g.rt.can_capture();
        let replay =
            graphs && g.graph.as_ref().is_some_and(|c| c.key == key && c.addresses == addresses(state));
        let capture = !replay
            && graphs
            && g.warm.as_ref() == Some(&key)
            && g.graph.as_ref().map_or(true, |c| c.key == key);
        let scalars = if replay {
            let c = g.graph.as_ref().expect("checked above");
            copy_inputs(&g.rt, &c.inputs, train, val)?;
            c.graph.replay()?;
            advance(state, &c.advance);
            state.last_grads = c.last_grads.clone();
            self.replays += 1;
            self.last = Issued::Replayed;
            c.scalars.clone()
        } else if capture {
            g.graph = None; // its buffers go back before the new capture takes its own
            let c = capture_step(&g.rt, state, train, val, &g.hyper, key)?;
            c.graph.replay()?;
            self.captures += 1;
            self.last = Issued::Captured;
            let s = c.scalars.clone();
            g.graph = Some(c);
            s
        } else {
            g.warm = Some(key);
            self.last = Issued::Eager;
            state.enqueue_step(train, val, &g.hyper)
        };
        g.out_stage.wait()?;
        g.out_stage.download(scalars.gpu_buf().expect("step scalars on the GPU"))?;
        self.pending = Some(Pending::Staged);
        Ok(())
    }

    /// The stats of the step last issued (waits for it on a GPU).
    pub fn finish(&mut self) -> Result<StepStats, DeviceError> {
        let values: Vec<f64> = match self.pending.take().expect("Stepper::finish: no step was issued") {
            Pending::Host(t) => t.to_f64_vec(),
            Pending::Staged => {
                let stage = &mut self.gpu.as_mut().expect("staged on a GPU").out_stage;
                stage.wait()?;
                stage.read()?.iter().map(|&v| v as f64).collect()
            }
        };
        Ok(StepStats::from_scalars(&values))
    }

    /// [`Stepper::issue`] then [`Stepper::finish`].
    pub fn step(
        &mut self,
        state: &mut SearchState,
        train: &Batch,
        val: &Batch,
        lr: f64,
    ) -> Result<StepStats, DeviceError> {
        self.issue(state, train, val, lr)?;
        self.finish()
    }
}

/// Records one step of `state` on copies of the batches, as a graph (nothing runs yet: replay it).
fn capture_step(
    rt: &Gpu,
    state: &mut SearchState,
    train: &Batch,
    val: &Batch,
    hyper: &Tensor,
    key: Key,
) -> Result<Captured, GpuError> {
    let inputs = [
        Tensor::empty_gpu(train.x.shape(), rt),
        Tensor::empty_gpu(&[train.y.len()], rt),
        Tensor::empty_gpu(val.x.shape(), rt),
        Tensor::empty_gpu(&[val.y.len()], rt),
    ];
    copy_inputs(rt, &inputs, train, val)?;
    let before = addresses(state);
    let counted = counters(state);
    let mut scalars = None;
    let graph = Graph::capture(rt, || {
        let t = Batch { x: &inputs[0], y: Labels { host: train.y.host, dev: Some(&inputs[1]) } };
        let v = Batch { x: &inputs[2], y: Labels { host: val.y.host, dev: Some(&inputs[3]) } };
        scalars = Some(state.enqueue_step(&t, &v, hyper));
        Ok(())
    })?;
    let after = addresses(state);
    if let Some(k) = (0..before.len()).find(|&k| before[k] != after[k]) {
        return Err(GpuError::Graph(format!(
            "the captured search step moved state buffer {k} of {} ({:#x} -> {:#x}): a replay would read stale \
             values; run with --cuda-graph off (and report this)",
            before.len(),
            before[k],
            after[k]
        )));
    }
    let advance = counters(state).iter().zip(&counted).map(|(a, b)| a - b).collect();
    Ok(Captured {
        key,
        graph,
        inputs,
        scalars: scalars.expect("set by the capture"),
        last_grads: state.last_grads.clone(),
        addresses: after,
        advance,
    })
}

/// Copies a step's batches into a graph's input tensors (on the compute stream); labels without
/// a device copy are uploaded first.
fn copy_inputs(rt: &Gpu, inputs: &[Tensor; 4], train: &Batch, val: &Batch) -> Result<(), GpuError> {
    for (k, b) in [train, val].into_iter().enumerate() {
        let uploaded;
        let labels = match b.y.dev {
            Some(t) => t,
            None => {
                uploaded =
                    Tensor::from_vec(&[b.y.len()], labels_f32(b.y.host)).to_device(&Device::Gpu(rt.clone()));
                &uploaded
            }
        };
        for (src, dst) in [(b.x, &inputs[2 * k]), (labels, &inputs[2 * k + 1])] {
            assert_eq!(src.shape(), dst.shape(), "Stepper: batch shape changed under a captured graph");
            let (s, d) = (src.gpu_buf().expect("batch on the GPU"), dst.gpu_buf().expect("graph input"));
            rt.dtod(s.ptr(), d.ptr(), 4 * s.len())?;
        }
    }
    Ok(())
}

/// The device addresses of every buffer of the state a step updates in place.
fn addresses(state: &SearchState) -> Vec<DevPtr> {
    let s = &state.store;
    let tensors = s
        .params
        .iter()
        .map(|p| &p.value)
        .chain(s.bns.iter().flat_map(|b| [&b.state.running_mean, &b.state.running_var]))
        .chain(state.sgd.bufs.iter().flatten())
        .chain(state.adam.m.iter().flatten())
        .chain(state.adam.v.iter().flatten());
    tensors.map(|t| t.gpu_buf().map_or(0, |b| b.ptr())).collect()
}

/// The host counters a step advances: Adam's step, then each BN layer's `num_batches_tracked`.
fn counters(state: &SearchState) -> Vec<i64> {
    std::iter::once(state.adam.step as i64)
        .chain(state.store.bns.iter().map(|b| b.num_batches_tracked))
        .collect()
}

/// Advances the host counters as the captured step did ([`counters`] order).
fn advance(state: &mut SearchState, by: &[i64]) {
    state.adam.step = (state.adam.step as i64 + by[0]) as u32;
    for (b, d) in state.store.bns.iter_mut().zip(&by[1..]) {
        b.num_batches_tracked += d;
    }
}
