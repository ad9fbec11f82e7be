// BROKEN ON PURPOSE: shuffles whose masks do not match the lanes that take part.

// A full-warp sum with a full mask, launched with a block that is not a multiple of 32 threads:
// the mask names lanes of the last warp that do not exist.
extern "C" __global__ void shfl_full_mask_partial_warp(const float* __restrict__ x, float* __restrict__ y) {
    const int t = threadIdx.x;
    float v = x[t];
    for (int off = 16; off > 0; off >>= 1) v += __shfl_down_sync(0xffffffffu, v, off);
    y[t] = v;
}

// A half-warp sum that forgets width 16: lanes 8-15 read lanes 16-23, which are not in the mask
// (undefined values on a GPU).
extern "C" __global__ void shfl_src_outside_mask(const float* __restrict__ x, float* __restrict__ y) {
    const int t = threadIdx.x;
    float v = x[t];
    if ((t & 31) < 16) {
        for (int off = 8; off > 0; off >>= 1) v += __shfl_down_sync(0x0000ffffu, v, off);
    }
    y[t] = v;
}
