/*
Device helpers shared by the kernel files: deterministic warp and block sums.

  warp_sum(v)              sum over the 32 lanes in a fixed shuffle tree (16, 8, 4, 2, 1);
                           valid in lane 0. Every lane of the warp must call it (full mask).
  block_sum(v, warp_sums)  warp_sum, then thread 0 adds the warp totals in warp order; valid in
                           thread 0 only. blockDim.x a multiple of 32; every thread must call it;
                           warp_sums is a __shared__ float[blockDim.x / 32] free on entry (reuse
                           it only after a barrier).
The order depends only on the block shape, so the bits do not depend on scheduling.
*/
#pragma once

static __device__ __forceinline__ float warp_sum(float v) {
    for (int off = 16; off > 0; off >>= 1) v += __shfl_down_sync(0xffffffffu, v, off);
    return v;
}

static __device__ __forceinline__ float block_sum(float v, float* warp_sums) {
    const unsigned lane = threadIdx.x & 31u, warp = threadIdx.x >> 5;
    v = warp_sum(v);
    if (lane == 0) warp_sums[warp] = v;
    __syncthreads();
    float total = 0.0f;
    if (threadIdx.x == 0) {
        const unsigned nwarps = blockDim.x >> 5;
        total = warp_sums[0];
        for (unsigned w = 1; w < nwarps; ++w) total += warp_sums[w];
    }
    return total;
}
