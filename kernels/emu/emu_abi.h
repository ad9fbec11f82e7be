/* C ABI of the CUDA CPU emulator (kernels/emu). Plain C, so the Rust FFI can mirror it. */
#ifndef DARTS_EMU_ABI_H
#define DARTS_EMU_ABI_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Calls the kernel with args unpacked: args[i] points at the i-th argument's value,
 * exactly like cuLaunchKernel's kernelParams. Generated per kernel by DARTS_EMU_KERNEL. */
typedef void (*darts_emu_tramp)(void** args);

typedef struct {
    const char* name;
    darts_emu_tramp tramp;
} darts_emu_kernel;

/* Runs the grid to completion. schedule 0: threads of a block run in increasing order between
 * barriers, blocks in increasing order; schedule 1: both decreasing. num_workers <= 0 uses
 * std::thread::hardware_concurrency() OS threads (the calling thread is one of them).
 * Returns 0 on success; on failure non-zero and a NUL-terminated message in err (errlen bytes;
 * err may be NULL when errlen is 0). */
int darts_emu_launch(const char* name, darts_emu_tramp tramp,
                     unsigned gx, unsigned gy, unsigned gz,
                     unsigned bx, unsigned by, unsigned bz,
                     unsigned dyn_smem_bytes, void** args, int schedule, int num_workers,
                     char* err, size_t errlen);

/* Optional extras (not needed for launching). */

/* Per-fiber stack size in bytes for later launches (rounded up to pages, at least 16 KiB).
 * Default 64 KiB, or the DARTS_EMU_STACK_KB environment variable. */
void darts_emu_set_stack_size(size_t bytes);

/* Joins the worker pool's threads (they are also joined at process exit). Must not race a
 * launch; a later launch starts the pool again. */
void darts_emu_shutdown(void);

#ifdef __cplusplus
}
#endif

#endif /* DARTS_EMU_ABI_H */
