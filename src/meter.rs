//! What a piece of work cost the machine, on any device: kernel launches, host waits, copies
//! and allocations, and the peak memory, for `log.jsonl` and benchmarks.
//!
//! On a GPU the counts come from the runtime ([`Runtime::counts`]) and the peak from its
//! allocator; on the CPU, allocations and the peak come from the counting heap allocator when
//! the binary installs it ([`crate::memstat`]), and are left out otherwise.
//!
//! [`Runtime::counts`]: crate::backend::gpu::Runtime::counts

use crate::backend::gpu::Counts;
use crate::memstat;
use crate::tensor::Device;

/// Counts taken at the start of some work; [`Meter::fields`] reports the difference.
pub struct Meter {
    device: Device,
    gpu: Option<Counts>,
    heap_allocations: Option<usize>,
}

impl Meter {
    /// Starts measuring on `device`: takes the counts and restarts the peak.
    pub fn start(device: &Device) -> Meter {
        let gpu = device.runtime().map(|rt| {
            rt.reset_peak_memory();
            rt.counts()
        });
        memstat::reset_heap_peak();
        Meter { device: device.clone(), gpu, heap_allocations: memstat::heap_allocations() }
    }

    /// What the work cost so far, as named counts:
    /// on a GPU `launches`, `syncs` (times the host waited: synchronisations plus
    /// device-to-host reads), `host_reads`, `copies` (all directions), `allocations` and
    /// `peak_bytes` (the device allocator's high-water mark); on the CPU `allocations` and
    /// `peak_bytes` of the heap, when counted.
    pub fn fields(&self) -> Vec<(&'static str, u64)> {
        match (self.device.runtime(), &self.gpu) {
            (Some(rt), Some(before)) => {
                let c = rt.counts().since(before);
                vec![
                    ("launches", c.launches),
                    ("syncs", c.host_waits()),
                    ("host_reads", c.dtoh),
                    ("copies", c.htod + c.dtoh + c.dtod),
                    ("allocations", c.allocations),
                    ("peak_bytes", rt.memory().peak as u64),
                ]
            }
            _ => match (memstat::heap_allocations(), self.heap_allocations, memstat::heap_peak()) {
                (Some(now), Some(before), Some(peak)) => {
                    vec![("allocations", (now - before) as u64), ("peak_bytes", peak as u64)]
                }
                _ => vec![],
            },
        }
    }
}
