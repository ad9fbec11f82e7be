// Private interface between cuda_emu.h (compiled into every kernel file) and emu_runtime.cpp.
// Not for kernels to use directly.
#ifndef DARTS_EMU_SHARED_H
#define DARTS_EMU_SHARED_H

#include <cstdint>

// CUDA's index types. uint3 is an aggregate; dim3 defaults missing extents to 1.
struct uint3 {
    unsigned int x, y, z;
};
struct dim3 {
    unsigned int x, y, z;
    constexpr dim3(unsigned int vx = 1, unsigned int vy = 1, unsigned int vz = 1)
        : x(vx), y(vy), z(vz) {}
    constexpr dim3(uint3 v) : x(v.x), y(v.y), z(v.z) {}
    constexpr operator uint3() const { return uint3{x, y, z}; }
};

// Kernel TUs reach the current fiber and block through these. initial-exec keeps each access a
// single %fs-relative load (no __tls_get_addr); fine for a runtime linked into the executable.
// Define DARTS_EMU_TLS_MODEL empty if the runtime ends up in a dlopen()ed library.
#ifndef DARTS_EMU_TLS_MODEL
#define DARTS_EMU_TLS_MODEL __attribute__((tls_model("initial-exec")))
#endif

namespace darts_emu {

struct ThreadRec {  // what a kernel may read about its own thread
    uint3 threadIdx;
};
struct BlockRec {  // what a kernel may read about its block; one per OS worker thread
    uint3 blockIdx;
    dim3 blockDim;
    dim3 gridDim;
    unsigned char* dyn_smem;
};

// __thread, not thread_local: no TLS wrapper calls, and the pointers need no dynamic init.
extern __thread ThreadRec* tls_thread DARTS_EMU_TLS_MODEL;
extern __thread BlockRec* tls_block DARTS_EMU_TLS_MODEL;

enum WarpOp : int {
    kSync = 0,
    kShflIdx,
    kShflUp,
    kShflDown,
    kShflXor,
    kBallot,
    kAny,
    kAll,
    kReduceAddU,
    kReduceMinU,
    kReduceMaxU,
    kReduceMinI,
    kReduceMaxI,
    kReduceAnd,
    kReduceOr,
    kReduceXor,
    kNumWarpOps
};

// Block barrier: returns how many threads of the block passed a non-zero pred.
int block_barrier(int pred);
// Warp collective over the lanes in mask: each lane contributes value (bits of a <=8-byte
// value); returns this lane's result. arg is srcLane/delta/laneMask; width the shuffle width.
std::uint64_t warp_collective(int op, unsigned mask, std::uint64_t value, int arg, int width);
// Lanes of the caller's warp that exist and have not exited.
unsigned active_mask();

}  // namespace darts_emu

#endif  // DARTS_EMU_SHARED_H
