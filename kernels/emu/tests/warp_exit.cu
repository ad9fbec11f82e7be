// BROKEN ON PURPOSE: lanes >= 16 leave before a full-mask shuffle, so it can never complete.
extern "C" __global__ void warp_exit_shfl(const float* __restrict__ x, float* __restrict__ y) {
    const int t = threadIdx.x;
    if ((t & 31) >= 16) return;
    float v = x[t];
    v += __shfl_down_sync(0xffffffffu, v, 8);
    y[t] = v;
}

// BROKEN ON PURPOSE: each lane's mask names some other lane, never itself.
extern "C" __global__ void shfl_bad_mask(const float* __restrict__ x, float* __restrict__ y) {
    const unsigned t = threadIdx.x;
    y[t] = __shfl_sync(1u << ((t + 1) & 31), x[t], 0);
}
