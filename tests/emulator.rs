//! The emulator catches what a GPU would not tell you: out-of-bounds writes (guard zones), a
//! `__syncthreads` not reached by every thread, and a missing barrier (two schedules disagree).
//! Each check runs a deliberately broken kernel from `kernels/emu/tests/`.
#![cfg(feature = "emu")]

use std::sync::Arc;

use darts::backend::gpu::emu::EmuRuntime;
use darts::backend::gpu::{Arg, Gpu, GpuBuf, GpuError, LaunchCfg};

fn emu(schedule: i32) -> Gpu {
    Arc::new(EmuRuntime::new(schedule, 0))
}

#[test]
fn out_of_bounds_write_is_reported_with_the_kernel_name() {
    let rt = emu(0);
    // 100 elements, 128 threads, and no `if (i < n)` in the kernel.
    let y = GpuBuf::alloc(&rt, 100).unwrap();
    let err = rt.launch("oob_write_f32", LaunchCfg::linear(1, 128), &[y.arg(), Arg::I32(100)]).unwrap_err();
    let GpuError::Emu(msg) = err else { panic!("expected an emulator error, got {err:?}") };
    assert!(msg.contains("oob_write_f32") && msg.contains("past the end"), "{msg}");
    // The same kernel with an exact grid is fine.
    let rt = emu(0);
    let y = GpuBuf::alloc(&rt, 128).unwrap();
    rt.launch("oob_write_f32", LaunchCfg::linear(1, 128), &[y.arg(), Arg::I32(128)]).unwrap();
    assert!(y.to_host().unwrap().iter().all(|&v| v == 1.0));
}

#[test]
fn barrier_not_reached_by_every_thread_is_an_error() {
    let rt = emu(0);
    let y = GpuBuf::alloc(&rt, 256).unwrap();
    let err = rt.launch("sync_divergent", LaunchCfg::linear(1, 256), &[y.arg()]).unwrap_err();
    let GpuError::Emu(msg) = err else { panic!("expected an emulator error, got {err:?}") };
    assert!(msg.contains("sync_divergent") && msg.contains("__syncthreads"), "{msg}");
}

fn block_sums(schedule: i32, kernel: &str, with_n: bool) -> Vec<f32> {
    let rt = emu(schedule);
    let blocks = 8;
    let x: Vec<f32> = (0..blocks * 256).map(|i| ((i * 7919) % 1000) as f32 / 7.0).collect();
    let xb = GpuBuf::from_host(&rt, &x).unwrap();
    let out = GpuBuf::alloc(&rt, blocks).unwrap();
    let mut args = vec![xb.arg(), out.arg()];
    if with_n {
        args.push(Arg::I32(x.len() as i32));
    }
    rt.launch(kernel, LaunchCfg::linear(blocks as u32, 256), &args).unwrap();
    out.to_host().unwrap()
}

#[test]
fn missing_barrier_shows_up_as_a_schedule_difference() {
    let (a, b) =
        (block_sums(0, "block_sum_missing_sync", false), block_sums(1, "block_sum_missing_sync", false));
    assert_ne!(a, b, "a reduction without barriers between its steps must depend on the schedule");
    // The correct reduction is bit-identical under both schedules.
    let (a, b) = (block_sums(0, "block_sum_f32", true), block_sums(1, "block_sum_f32", true));
    assert_eq!(
        a.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
        b.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
    );
}

#[test]
fn unknown_kernel_and_bad_copies_are_errors_not_crashes() {
    let rt = emu(0);
    assert!(matches!(
        rt.launch("no_such_kernel", LaunchCfg::linear(1, 1), &[]),
        Err(GpuError::UnknownKernel(_))
    ));
    let y = GpuBuf::alloc(&rt, 4).unwrap();
    let mut host = vec![0u8; 64];
    assert!(rt.dtoh(y.ptr(), &mut host).is_err(), "a copy larger than the buffer must be refused");
}
