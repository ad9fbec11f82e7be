//! The emulator catches what a GPU would not tell you: out-of-bounds reads and writes (guard
//! pages, and a byte pattern in the slack beside a buffer), a `__syncthreads` not reached by every
//! thread, a missing barrier (two schedules disagree), warp shuffles whose masks name lanes that
//! do not exist or read lanes outside the mask, and more than 48 KiB of dynamic shared memory
//! without the opt-in. Each check runs a deliberately broken kernel (or launch) from
//! `kernels/emu/tests/`, and the same kernel used correctly where there is one.
#![cfg(feature = "emu")]

use std::sync::Arc;

use darts::backend::gpu::emu::EmuRuntime;
use darts::backend::gpu::{Arg, Gpu, GpuBuf, GpuError, LaunchCfg};

fn emu(schedule: i32) -> Gpu {
    Arc::new(EmuRuntime::new(schedule, 0))
}

#[test]
fn out_of_bounds_write_is_reported_with_the_kernel_name() {
    // 100 elements, 128 threads, and no `if (i < n)` in the kernel. Schedule 0: the write faults
    // in the guard page; schedule 1: it lands in the slack, which is checked after the launch.
    for schedule in [0, 1] {
        let rt = emu(schedule);
        let y = GpuBuf::alloc(&rt, 100).unwrap();
        let msg =
            emu_error(rt.launch_named("oob_write_f32", LaunchCfg::linear(1, 128), &[y.arg(), Arg::I32(100)]));
        assert!(
            msg.contains("oob_write_f32")
                && msg.contains("wrote past the end of a 400-byte buffer")
                && msg.contains("(byte 0 after the end)"),
            "{msg}"
        );
    }
    // The same kernel with an exact grid is fine.
    let rt = emu(0);
    let y = GpuBuf::alloc(&rt, 128).unwrap();
    rt.launch_named("oob_write_f32", LaunchCfg::linear(1, 128), &[y.arg(), Arg::I32(128)]).unwrap();
    assert!(y.to_host().unwrap().iter().all(|&v| v == 1.0));
}

fn emu_error(result: Result<(), GpuError>) -> String {
    match result {
        Err(GpuError::Emu(msg)) => msg,
        other => panic!("expected an emulator error, got {other:?}"),
    }
}

#[test]
fn out_of_bounds_reads_fail_the_launch_with_the_kernel_name() {
    // Schedule 0 puts a buffer's end against a guard page: 128 threads read 100 floats.
    let rt = emu(0);
    let x = GpuBuf::from_host(&rt, &[1.5; 100]).unwrap();
    let y = GpuBuf::alloc(&rt, 128).unwrap();
    let msg = emu_error(rt.launch_named(
        "oob_read_f32",
        LaunchCfg::linear(1, 128),
        &[x.arg(), y.arg(), Arg::I32(100)],
    ));
    assert!(
        msg.contains("oob_read_f32")
            && msg.contains("thread (100,0,0) read past the end of a 400-byte buffer")
            && msg.contains("(byte 0 after the end)"),
        "{msg}"
    );
    // Schedule 1 puts its start right after one: thread 0 reads x[-1].
    let rt = emu(1);
    let x = GpuBuf::from_host(&rt, &[1.5; 100]).unwrap();
    let y = GpuBuf::alloc(&rt, 100).unwrap();
    let msg = emu_error(rt.launch_named(
        "diff_prev_f32",
        LaunchCfg::linear(1, 128),
        &[x.arg(), y.arg(), Arg::I32(100)],
    ));
    assert!(
        msg.contains("diff_prev_f32")
            && msg.contains("thread (0,0,0) read 4 bytes before the start of a 400-byte"),
        "{msg}"
    );
    // The same kernel with an exact grid is fine, under both schedules.
    for schedule in [0, 1] {
        let rt = emu(schedule);
        let x = GpuBuf::from_host(&rt, &[1.5; 128]).unwrap();
        let y = GpuBuf::alloc(&rt, 128).unwrap();
        rt.launch_named("oob_read_f32", LaunchCfg::linear(1, 128), &[x.arg(), y.arg(), Arg::I32(128)])
            .unwrap();
        assert!(y.to_host().unwrap().iter().all(|&v| v == 3.0));
    }
}

#[test]
fn bad_warp_shuffles_are_errors() {
    for schedule in [0, 1] {
        let rt = emu(schedule);
        let x = GpuBuf::from_host(&rt, &(0..64).map(|i| i as f32).collect::<Vec<_>>()).unwrap();
        let y = GpuBuf::alloc(&rt, 64).unwrap();
        // A full mask in a block of 48 threads: lanes 16-31 of the second warp do not exist.
        let msg = emu_error(rt.launch_named(
            "shfl_full_mask_partial_warp",
            LaunchCfg::linear(1, 48),
            &[x.arg(), y.arg()],
        ));
        assert!(
            msg.contains("shfl_full_mask_partial_warp")
                && msg.contains("__shfl_down_sync")
                && msg.contains("mask 0xffffffff")
                && msg.contains("lane(s) 16-31 that do not exist"),
            "{msg}"
        );
        // Mask 0x0000ffff without width 16: lane 8 reads lane 16.
        let msg = emu_error(rt.launch_named(
            "shfl_src_outside_mask",
            LaunchCfg::linear(1, 32),
            &[x.arg(), y.arg()],
        ));
        assert!(
            msg.contains("shfl_src_outside_mask")
                && msg.contains("__shfl_down_sync(mask 0x0000ffff)")
                && msg.contains("lane 8 reads lane 16, which is not in the mask"),
            "{msg}"
        );
        // The full-mask sum is right when every warp is whole.
        rt.launch_named("shfl_full_mask_partial_warp", LaunchCfg::linear(1, 64), &[x.arg(), y.arg()])
            .unwrap();
        let sums = y.to_host().unwrap();
        assert_eq!((sums[0], sums[32]), ((0..32).sum::<i32>() as f32, (32..64).sum::<i32>() as f32));
    }
}

#[test]
fn dynamic_shared_memory_over_48_kib_needs_the_opt_in() {
    let rt = emu(0);
    let n = 16384; // 64 KiB of floats
    let x: Vec<f32> = (0..n).map(|i| i as f32).collect();
    let xb = GpuBuf::from_host(&rt, &x).unwrap();
    let y = GpuBuf::alloc(&rt, n).unwrap();
    let cfg = LaunchCfg { shared_bytes: n as u32 * 4, ..LaunchCfg::linear(1, 256) };
    let args = [xb.arg(), y.arg(), Arg::I32(n as i32)];
    let msg = emu_error(rt.launch_named("smem_reverse_f32", cfg, &args));
    assert!(
        msg.contains("smem_reverse_f32")
            && msg.contains("65536 bytes of dynamic shared memory")
            && msg.contains("allow_dynamic_shared"),
        "{msg}"
    );
    rt.allow_dynamic_shared(darts::backend::gpu::kernels::lookup("smem_reverse_f32").unwrap(), n as u32 * 4)
        .unwrap();
    rt.launch_named("smem_reverse_f32", cfg, &args).unwrap();
    assert!(y.to_host().unwrap().iter().rev().eq(x.iter()));
}

#[test]
fn barrier_not_reached_by_every_thread_is_an_error() {
    let rt = emu(0);
    let y = GpuBuf::alloc(&rt, 256).unwrap();
    let err = rt.launch_named("sync_divergent", LaunchCfg::linear(1, 256), &[y.arg()]).unwrap_err();
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
    rt.launch_named(kernel, LaunchCfg::linear(blocks as u32, 256), &args).unwrap();
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
        rt.launch_named("no_such_kernel", LaunchCfg::linear(1, 1), &[]),
        Err(GpuError::UnknownKernel(_))
    ));
    let y = GpuBuf::alloc(&rt, 4).unwrap();
    let mut host = vec![0u8; 64];
    assert!(rt.dtoh(y.ptr(), &mut host).is_err(), "a copy larger than the buffer must be refused");
}
