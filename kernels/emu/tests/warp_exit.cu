// BROKEN ON PURPOSE: lanes >= 16 leave before a full-mask shuffle, so it can never complete.
extern "C" __global__ void warp_exit_shfl(const float* __restrict__ x, float* __restrict__ y) {
    const int t = threadIdx.x;
    if ((t & 31) >= 16) return;
    float v = x[t];
    v += __shfl_down_sync(0xffffffffu, v, 8);
    y[t] = v;
}
