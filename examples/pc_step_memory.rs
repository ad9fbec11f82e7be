//! One search step's time and peak memory for a search method, on the CPU: `darts bench step`'s
//! machinery (`darts::bench::step`) with the method chosen here, since the CLI has no method
//! flag yet. Prints the bench's JSON line (with `method`).
//!
//! ```text
//! cargo run --release --example pc_step_memory -- pc-darts 256   # METHOD BATCH [STEPS [WARMUP]]
//! ```

use darts::bench::step::{run, StepBench};
use darts::model::method::PC_K;
use darts::model::Method;
use darts::search::Order;
use darts::Device;

// Counts heap bytes, as the `darts` binary does, so the report has the peak heap.
#[global_allocator]
static ALLOC: darts::memstat::CountingAlloc = darts::memstat::CountingAlloc;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: pc_step_memory METHOD BATCH [STEPS [WARMUP]]  (METHOD: darts, pc-darts)";
    let (Some(method), Some(batch)) = (args.first(), args.get(1).and_then(|b| b.parse().ok())) else {
        eprintln!("{usage}");
        std::process::exit(2);
    };
    let Some(method) = Method::from_name(method, PC_K) else {
        eprintln!("{usage}");
        std::process::exit(2);
    };
    let num = |i: usize, default: usize| args.get(i).map_or(default, |v| v.parse().expect("a count"));
    let mut b = StepBench::preset("paper", Order::First).expect("the paper preset");
    b.method = method;
    b.batch = batch;
    b.steps = num(2, 1);
    b.warmup = num(3, 0);
    println!("{}", run(&b, &Device::Cpu).to_json());
}
