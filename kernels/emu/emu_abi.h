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

/* Emulated device memory. Each buffer is its own mapping with an inaccessible page right before
 * and right after its data pages; a kernel that touches one fails its launch (code 2) with a
 * message saying read or write, the buffer's size and how far outside it the access was.
 * placement 0: the data ends exactly at the trailing guard page (its start is then aligned to
 * the largest power of two dividing bytes, so a multiple of 16 bytes is 16-byte aligned);
 * placement 1: it starts right after the leading guard page. The data is filled with 0xFF bytes
 * (NaN as f32), the slack on the other side with a pattern that darts_emu_check_slack checks.
 * Returns NULL and a message in err on failure (out of memory or of mappings). */
void* darts_emu_alloc(size_t bytes, int placement, char* err, size_t errlen);

/* Unmaps a buffer from darts_emu_alloc; NULL and unknown pointers are ignored. */
void darts_emu_free(void* ptr);

/* Checks the 256 bytes of slack nearest a buffer's data (writes there do not fault). Returns 0
 * when intact; 1 when written before the start (*offset: how many bytes before it the nearest
 * damaged byte is); 2 when written after the end (*offset: index of the first damaged byte after
 * the end, 0 for the byte right after it); -1 when ptr is not a live buffer. */
int darts_emu_check_slack(const void* ptr, size_t* offset);

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
