//! The emulator's deferred mode: work queued per stream, as a GPU queues it, and run at the
//! next synchronisation, with the checks that asynchrony needs.
//!
//! A GPU runs a launch some time after the host issued it; the host goes on, frees buffers,
//! allocates new ones and writes staging memory meanwhile. Bugs of that kind (a result read
//! before the work that makes it has run, a block reused while queued work still uses its old
//! contents) never show on an emulator that runs each launch at once. Here every launch and copy
//! is queued with the blocks it touches, and:
//!
//! - a freed block goes back to a cache for reuse by later work on the compute stream (the
//!   stream-ordered rule of a GPU caching allocator) and is poisoned (NaN) when the queue reaches
//!   its free;
//! - every queued operation records which blocks it uses (the pointer arguments of a launch,
//!   found among its argument words; both ends of a copy) and under which allocation of the
//!   block (its generation);
//! - an operation on one stream that touches a block still used by queued work on the other
//!   stream, not ordered before it by an event, fails at once, naming both operations, the
//!   buffer, and whether the block was freed and reallocated in between;
//! - a launch handed a pointer into a freed block fails at once (use after free);
//! - events complete when the queue has run past them, so a staging buffer read before that
//!   fails ([`super::HostStage`]).
//!
//! Operations run in issue order at a synchronisation (`synchronize`, a blocking read): a
//! schedule a GPU may choose, and the same order as eager mode, so results are bitwise those of
//! eager execution.
//!
//! Graphs: while recording, operations are kept (not run) with the allocation of every block
//! they use; blocks freed while recording are kept for the graph and reused only inside it. A
//! replay queues the recorded operations again, after checking that each block is still the
//! one recorded (alive in the same allocation, or kept): a graph replaying into a buffer that
//! was freed and handed to someone else fails, naming the kernel and the buffer. Copies from
//! pageable host memory and waits for the device cannot be recorded (CUDA refuses them too).

use std::collections::{BTreeMap, HashMap};
use std::ffi::c_void;

use super::kernels::KernelId;
use super::runtime::{Arg, DevPtr, Event, GpuError, LaunchCfg, Stream};

/// A launch's argument values, owned (the queue outlives the caller's [`Arg`]s) and 8-byte
/// aligned, as the trampolines read them.
#[derive(Clone)]
pub(super) struct OwnedArgs(Vec<Box<[u64]>>);

impl OwnedArgs {
    pub fn new(args: &[Arg<'_>]) -> OwnedArgs {
        let word = |v: u64| vec![v].into_boxed_slice();
        OwnedArgs(
            args.iter()
                .map(|a| match a {
                    Arg::Ptr(p) => word(*p),
                    Arg::I32(v) => word(*v as u32 as u64),
                    Arg::U32(v) => word(*v as u64),
                    Arg::F32(v) => word(v.to_bits() as u64),
                    Arg::Ptrs8(p) => p.to_vec().into_boxed_slice(),
                    Arg::Pod(bytes) => {
                        let mut w = vec![0u64; bytes.len().div_ceil(8)];
                        bytemuck::cast_slice_mut::<u64, u8>(&mut w)[..bytes.len()].copy_from_slice(bytes);
                        w.into_boxed_slice()
                    }
                })
                .collect(),
        )
    }

    /// The `kernelParams` array (pointers into `self`).
    pub fn params(&mut self) -> Vec<*mut c_void> {
        self.0.iter_mut().map(|b| b.as_mut_ptr() as *mut c_void).collect()
    }

    /// Every 8-byte word of the values: the pointers are among them.
    fn words(&self) -> impl Iterator<Item = u64> + '_ {
        self.0.iter().flat_map(|b| b.iter().copied())
    }
}

/// One queued operation.
#[derive(Clone)]
pub(super) enum Op {
    /// A kernel launch (`launch`: the runtime's launch number).
    Launch { kernel: KernelId, launch: u64, cfg: LaunchCfg, args: OwnedArgs },
    /// A copy from pageable host memory (taken at issue, as a driver stages it).
    Htod { data: Vec<u8>, dst: DevPtr },
    /// A copy of constant bytes that the operation owns ([`super::Runtime::htod_const`]): unlike
    /// `Htod`, a graph may record it (its replays copy the same bytes).
    Const { data: std::sync::Arc<[u8]>, dst: DevPtr },
    /// A copy from page-locked host memory, read when it runs.
    HtodAsync { src: *const u8, dst: DevPtr, bytes: usize },
    /// A copy into page-locked host memory, written when it runs.
    DtohAsync { src: DevPtr, dst: *mut u8, bytes: usize },
    /// A device-to-device copy.
    Dtod { src: DevPtr, dst: DevPtr, bytes: usize },
    /// A stream-ordered free: the block is poisoned when it runs.
    Free { ptr: DevPtr, bytes: usize },
    /// An event.
    Record,
}

// SAFETY: the raw host pointers of the async copies point into page-locked staging memory that
// the issuing `HostStage` keeps alive until the copy has run (its drop synchronises); the queue
// is only touched under the runtime's lock.
unsafe impl Send for Op {}

impl Op {
    fn describe(&self) -> String {
        match self {
            Op::Launch { kernel, launch, cfg, .. } => format!("kernel {kernel} (launch #{launch}, {cfg})"),
            Op::Htod { dst, data } => format!("a {}-byte host-to-device copy into {dst:#x}", data.len()),
            Op::Const { dst, data } => format!("a {}-byte constant upload into {dst:#x}", data.len()),
            Op::HtodAsync { dst, bytes, .. } => {
                format!("a {bytes}-byte upload from staging memory into {dst:#x}")
            }
            Op::DtohAsync { src, bytes, .. } => {
                format!("a {bytes}-byte download from {src:#x} into staging memory")
            }
            Op::Dtod { src, dst, bytes } => format!("a {bytes}-byte copy from {src:#x} to {dst:#x}"),
            Op::Free { ptr, bytes } => format!("the free of the {bytes}-byte buffer at {ptr:#x}"),
            Op::Record => "an event".into(),
        }
    }
}

/// An operation with its issue number.
pub(super) struct Queued {
    pub seq: u64,
    pub op: Op,
}

/// A queued operation's use of a block, under the block's allocation `gen`.
struct Use {
    seq: u64,
    stream: Stream,
    gen: u64,
}

/// A device block the deferred emulator has handed out, keeps for a graph, or keeps for reuse
/// (cached).
struct Block {
    bytes: usize,
    /// Allocations of this block so far (the current one's number).
    gen: u64,
    /// A buffer holds it.
    owned: bool,
    /// The graph it was freed into while recording (kept until that graph is released).
    kept_by: Option<u64>,
    /// Queued (not yet run) operations that use it.
    uses: Vec<Use>,
}

impl Block {
    fn live(&self) -> bool {
        self.owned || self.kept_by.is_some()
    }
}

/// A graph being recorded.
struct Recording {
    id: u64,
    ops: Vec<Recorded>,
    /// Blocks freed while recording, by size: reused by later allocations of the recording.
    free: HashMap<usize, Vec<DevPtr>>,
}

/// A recorded operation: the blocks it uses, under which allocation.
#[derive(Clone)]
struct Recorded {
    stream: Stream,
    op: Op,
    ptrs: Vec<DevPtr>,
    blocks: Vec<(DevPtr, u64)>,
}

/// The queue, the blocks and the events of a deferred emulator.
#[derive(Default)]
pub(super) struct Queue {
    ops: Vec<Queued>,
    /// The next issue number (operations and events share the numbering).
    next: u64,
    /// Every operation numbered below this has run.
    done: u64,
    blocks: BTreeMap<DevPtr, Block>,
    /// Freed blocks by size, most recently freed last.
    cached: HashMap<usize, Vec<DevPtr>>,
    /// The stream of each event.
    events: HashMap<u64, Stream>,
    /// `(waiter, other)`: the waiter has waited for the other stream's work numbered below this.
    frontier: HashMap<(Stream, Stream), u64>,
    recording: Option<Recording>,
    graphs: HashMap<u64, Vec<Recorded>>,
    next_graph: u64,
}

impl Queue {
    /// A cached block of exactly `bytes` freed earlier (reused by work issued after its free),
    /// as a new allocation.
    /// While recording, a block freed earlier in the recording comes first.
    pub fn reuse(&mut self, bytes: usize) -> Option<DevPtr> {
        let from_recording = self.recording.as_mut().and_then(|r| r.free.get_mut(&bytes)?.pop());
        let ptr = match from_recording {
            Some(p) => p,
            None => self.cached.get_mut(&bytes)?.pop()?,
        };
        let b = self.blocks.get_mut(&ptr).expect("a cached block is known");
        b.gen += 1;
        b.owned = true;
        Some(ptr)
    }

    /// A fresh block from the emulator's allocator.
    pub fn register(&mut self, ptr: DevPtr, bytes: usize) {
        self.blocks.insert(ptr, Block { bytes, gen: 0, owned: true, kept_by: None, uses: Vec::new() });
    }

    /// The buffer holding the block at `ptr` is dropped. While recording the block is kept for
    /// the graph; a block kept by a graph stays kept; otherwise it is freed in stream order
    /// (poisoned when the queue reaches the free) and cached for reuse.
    pub fn free(&mut self, ptr: DevPtr, bytes: usize) -> Result<(), GpuError> {
        let b = self.blocks.get_mut(&ptr).expect("freeing a known block");
        b.owned = false;
        if let Some(r) = &mut self.recording {
            b.kept_by = Some(r.id);
            r.free.entry(bytes).or_default().push(ptr);
            return Ok(());
        }
        if b.kept_by.is_some() {
            return Ok(());
        }
        self.push(Stream::Compute, Op::Free { ptr, bytes }, &[ptr])?;
        self.cached.entry(bytes).or_default().push(ptr);
        Ok(())
    }

    /// Every block (live or cached), to release them all.
    pub fn all_blocks(&self) -> impl Iterator<Item = DevPtr> + '_ {
        self.blocks.keys().copied()
    }

    /// The block containing `ptr` (live or cached).
    fn block_of(&self, ptr: DevPtr) -> Option<(DevPtr, &Block)> {
        let (&start, b) = self.blocks.range(..=ptr).next_back()?;
        (ptr < start + b.bytes.max(1) as u64).then_some((start, b))
    }

    fn describe_seq(&self, seq: u64) -> String {
        match self.ops.binary_search_by_key(&seq, |q| q.seq) {
            Ok(i) => self.ops[i].op.describe(),
            Err(_) => format!("operation #{seq}"),
        }
    }

    /// What is known of the buffer holding `ptr`: its size and the queued kernel that last
    /// used it.
    pub fn describe_buffer(&self, ptr: DevPtr) -> String {
        let Some((start, b)) = self.block_of(ptr) else { return format!("buffer {ptr:#x}") };
        let mut s = format!("buffer {start:#x} ({} bytes)", b.bytes);
        let last_kernel =
            b.uses.iter().rev().find_map(|u| match self.ops.binary_search_by_key(&u.seq, |q| q.seq) {
                Ok(i) if matches!(self.ops[i].op, Op::Launch { .. }) => Some(self.ops[i].op.describe()),
                _ => None,
            });
        if let Some(k) = last_kernel {
            s.push_str(&format!(", the result of the queued {k}"));
        }
        s
    }

    /// The blocks `op` uses: those holding `ptrs` and, for a launch, any block its argument words
    /// point into. A launch handed a pointer into a freed block fails (use after free).
    fn touched(&self, op: &Op, ptrs: &[DevPtr]) -> Result<Vec<DevPtr>, GpuError> {
        let mut used: Vec<DevPtr> = Vec::new();
        let words: Vec<u64> = match op {
            Op::Launch { args, .. } => args.words().collect(),
            _ => Vec::new(),
        };
        for &p in ptrs.iter().chain(&words) {
            let Some((start, b)) = self.block_of(p) else { continue };
            if !b.live() && matches!(op, Op::Launch { .. }) {
                return Err(GpuError::Emu(format!(
                    "{} is handed {p:#x}, inside the {}-byte buffer at {start:#x} that was freed (use after free)",
                    op.describe(),
                    b.bytes
                )));
            }
            if !used.contains(&start) {
                used.push(start);
            }
        }
        Ok(used)
    }

    /// Queues `op` on `stream`, using the blocks holding `ptrs` (and, for a launch, any block its
    /// argument words point into); while recording a graph, records it instead. Fails, naming
    /// both operations and the buffer, when another stream's queued work still uses one of them
    /// unordered, or when a launch is handed a pointer into a freed block.
    pub fn push(&mut self, stream: Stream, op: Op, ptrs: &[DevPtr]) -> Result<u64, GpuError> {
        let used = self.touched(&op, ptrs)?;
        if self.recording.is_some() {
            return self.record_op(stream, op, ptrs, used);
        }
        let seq = self.next;
        for &start in &used {
            let b = &self.blocks[&start];
            let mut unordered = b.uses.iter().filter(|u| {
                u.stream != stream && u.seq >= self.frontier.get(&(stream, u.stream)).copied().unwrap_or(0)
            });
            // Name a kernel when one is among them (the latest), else the first operation.
            let is_launch = |u: &&Use| {
                self.ops
                    .binary_search_by_key(&u.seq, |q| q.seq)
                    .is_ok_and(|i| matches!(self.ops[i].op, Op::Launch { .. }))
            };
            let first = unordered.clone().next();
            if let Some(u) = unordered.rfind(is_launch).or(first) {
                let reused = if u.gen != b.gen { ", freed and reallocated since," } else { "" };
                return Err(GpuError::Emu(format!(
                    "{} on the {stream} stream uses the {}-byte buffer at {start:#x} while {} on the {} stream{reused} \
                     still uses it and has not run: record an event on the {} stream after it and wait for that \
                     event on the {stream} stream first",
                    op.describe(),
                    b.bytes,
                    self.describe_seq(u.seq),
                    u.stream,
                    u.stream
                )));
            }
        }
        for start in used {
            let b = self.blocks.get_mut(&start).expect("found above");
            let gen = b.gen;
            b.uses.push(Use { seq, stream, gen });
        }
        self.ops.push(Queued { seq, op });
        self.next += 1;
        Ok(seq)
    }

    /// Keeps `op` in the graph being recorded.
    fn record_op(
        &mut self,
        stream: Stream,
        op: Op,
        ptrs: &[DevPtr],
        used: Vec<DevPtr>,
    ) -> Result<u64, GpuError> {
        match (&op, stream) {
            (Op::Htod { .. }, _) => {
                return Err(GpuError::Emu(format!(
                    "{} cannot be recorded in a graph: a copy from pageable host memory is not replayable \
                     (stage the data in a HostStage, or copy it before the capture)",
                    op.describe()
                )))
            }
            (Op::Record, _) | (_, Stream::Copy) => {
                return Err(GpuError::Emu(format!(
                "{} on the {stream} stream while recording a graph: graphs record the compute stream alone",
                op.describe()
            )))
            }
            _ => {}
        }
        let blocks = used.iter().map(|p| (*p, self.blocks[p].gen)).collect();
        let r = self.recording.as_mut().expect("recording");
        r.ops.push(Recorded { stream, op, ptrs: ptrs.to_vec(), blocks });
        Ok(self.next)
    }

    /// Starts recording a graph.
    pub fn begin_capture(&mut self) -> Result<(), GpuError> {
        if self.recording.is_some() {
            return Err(GpuError::Emu("begin_capture while already recording a graph".into()));
        }
        self.next_graph += 1;
        self.recording = Some(Recording { id: self.next_graph, ops: Vec::new(), free: HashMap::new() });
        Ok(())
    }

    /// Whether a graph is being recorded.
    pub fn recording(&self) -> bool {
        self.recording.is_some()
    }

    /// Stops recording: the graph's number.
    pub fn end_capture(&mut self) -> Result<u64, GpuError> {
        let r =
            self.recording.take().ok_or_else(|| GpuError::Emu("end_capture without begin_capture".into()))?;
        self.graphs.insert(r.id, r.ops);
        Ok(r.id)
    }

    /// Queues graph `id`'s operations again, after checking that every block each one uses is
    /// the one recorded.
    pub fn replay(&mut self, id: u64) -> Result<(), GpuError> {
        if self.recording.is_some() {
            return Err(GpuError::Emu(format!("replaying graph {id} while recording another")));
        }
        let ops = self.graphs.get(&id).ok_or_else(|| GpuError::Emu(format!("no graph {id}")))?.clone();
        for r in &ops {
            for &(start, gen) in &r.blocks {
                let b = &self.blocks[&start];
                if b.kept_by != Some(id) && !(b.owned && b.gen == gen) {
                    let now = if b.owned { "now another buffer's" } else { "now free" };
                    return Err(GpuError::Emu(format!(
                        "replaying graph {id}: {} uses the {}-byte buffer at {start:#x}, which was freed after the \
                         capture ({now}): keep every buffer a graph uses alive while it may replay",
                        r.op.describe(),
                        b.bytes
                    )));
                }
            }
        }
        for r in ops {
            self.push(r.stream, r.op, &r.ptrs)?;
        }
        Ok(())
    }

    /// Forgets graph `id` (its replays must have run): blocks it kept and no buffer holds are
    /// freed.
    pub fn release_graph(&mut self, id: u64) {
        if self.graphs.remove(&id).is_none() {
            return;
        }
        let kept: Vec<(DevPtr, usize, bool)> = self
            .blocks
            .iter()
            .filter(|(_, b)| b.kept_by == Some(id))
            .map(|(&p, b)| (p, b.bytes, b.owned))
            .collect();
        for (ptr, bytes, owned) in kept {
            self.blocks.get_mut(&ptr).expect("listed").kept_by = None;
            if !owned {
                let _ = self.free(ptr, bytes);
            }
        }
    }

    /// Records an event on `stream`.
    pub fn record(&mut self, stream: Stream) -> Result<Event, GpuError> {
        let seq = self.push(stream, Op::Record, &[])?;
        self.events.insert(seq, stream);
        Ok(Event(seq))
    }

    /// Orders later work on `stream` after everything before `event`.
    pub fn wait(&mut self, stream: Stream, event: Event) -> Result<(), GpuError> {
        if event.0 < self.done {
            return Ok(()); // already run
        }
        let Some(&other) = self.events.get(&event.0) else {
            return Err(GpuError::Emu(format!(
                "waiting for event {} that this runtime never recorded",
                event.0
            )));
        };
        if other != stream {
            let f = self.frontier.entry((stream, other)).or_insert(0);
            *f = (*f).max(event.0);
        }
        Ok(())
    }

    /// Whether everything before `event` has run.
    pub fn query(&self, event: Event) -> bool {
        event.0 < self.done
    }

    /// The queued operations, to run in order; [`Queue::settle`] once they have.
    pub fn take(&mut self) -> Vec<Queued> {
        std::mem::take(&mut self.ops)
    }

    /// Everything issued up to `upto` has run (or was dropped after an error).
    pub fn settle(&mut self, upto: u64) {
        self.done = self.done.max(upto);
        for b in self.blocks.values_mut() {
            b.uses.retain(|u| u.seq >= upto);
        }
        self.events.retain(|&seq, _| seq >= upto);
    }

    /// The next issue number.
    pub fn next(&self) -> u64 {
        self.next
    }
}
