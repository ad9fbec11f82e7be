//! Host memory accounting: a counting global allocator (heap bytes in use and at the peak) and
//! the process's peak resident set, for benchmarks and run logs.
//!
//! The counter only counts when a binary installs it:
//!
//! ```ignore
//! #[global_allocator]
//! static ALLOC: darts::memstat::CountingAlloc = darts::memstat::CountingAlloc;
//! ```
//!
//! Without it [`heap_peak`] stays 0, and callers say so rather than report a zero.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

static IN_USE: AtomicUsize = AtomicUsize::new(0);
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

/// The system allocator, counting the bytes it hands out.
pub struct CountingAlloc;

impl CountingAlloc {
    fn allocated(size: usize) {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        Self::grew(size);
    }

    fn grew(by: usize) {
        let now = IN_USE.fetch_add(by, Ordering::Relaxed) + by;
        PEAK.fetch_max(now, Ordering::Relaxed);
    }
}

// SAFETY: every call forwards to `System` unchanged; the counters are only statistics.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc(layout);
        if !p.is_null() {
            Self::allocated(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc_zeroed(layout);
        if !p.is_null() {
            Self::allocated(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout);
        IN_USE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = System.realloc(ptr, layout, new_size);
        if !p.is_null() {
            if new_size >= layout.size() {
                Self::grew(new_size - layout.size());
            } else {
                IN_USE.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
            }
        }
        p
    }
}

/// Heap bytes in use now, or `None` when [`CountingAlloc`] is not the global allocator.
pub fn heap_in_use() -> Option<usize> {
    installed().then(|| IN_USE.load(Ordering::Relaxed))
}

/// The most heap bytes in use since start or [`reset_heap_peak`], or `None` when
/// [`CountingAlloc`] is not the global allocator.
pub fn heap_peak() -> Option<usize> {
    installed().then(|| PEAK.load(Ordering::Relaxed))
}

/// Heap allocations made so far (reallocations not counted), or `None` when [`CountingAlloc`]
/// is not the global allocator.
pub fn heap_allocations() -> Option<usize> {
    installed().then(|| ALLOCATIONS.load(Ordering::Relaxed))
}

/// Starts a new heap peak at the bytes in use now.
pub fn reset_heap_peak() {
    PEAK.store(IN_USE.load(Ordering::Relaxed), Ordering::Relaxed);
}

/// Whether the counting allocator serves this process: a process always holds some heap (its
/// arguments, its main thread), so a counter that never moved is not installed.
fn installed() -> bool {
    PEAK.load(Ordering::Relaxed) > 0
}

/// The peak resident set of this process in bytes (`VmHWM` of `/proc/self/status`, the same
/// figure as `getrusage`'s `ru_maxrss`), or `None` where that file does not exist.
pub fn peak_rss() -> Option<usize> {
    status_kib("VmHWM:").map(|k| k * 1024)
}

/// The resident set of this process now in bytes (`VmRSS`), or `None` off Linux.
pub fn rss() -> Option<usize> {
    status_kib("VmRSS:").map(|k| k * 1024)
}

/// Restarts the peak resident set at the current one (Linux: writing 5 to
/// `/proc/self/clear_refs`). Returns whether it could.
pub fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

fn status_kib(key: &str) -> Option<usize> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with(key))?;
    line[key.len()..].trim().trim_end_matches("kB").trim().parse().ok()
}
