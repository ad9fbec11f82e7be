// Warp-collective semantics (checked against a CPU model of CUDA's rules).
// out has 10 entries per thread.
extern "C" __global__ void warp_ops(const int* __restrict__ x, int* __restrict__ out) {
    const int t = threadIdx.x + blockIdx.x * blockDim.x;
    const int lane = threadIdx.x & 31;
    const int v = x[t];
    int* o = out + 10 * t;
    o[0] = __shfl_sync(0xffffffffu, v, (lane * 7 + 3) & 31);  // per-lane source
    o[1] = __shfl_sync(0xffffffffu, v, 5, 16);                 // width 16
    o[2] = __shfl_up_sync(0xffffffffu, v, 3);
    o[3] = __shfl_down_sync(0xffffffffu, v, 5, 8);
    o[4] = __shfl_xor_sync(0xffffffffu, v, 9);
    o[5] = __shfl_xor_sync(0xffffffffu, v, 20, 16);            // later group: own value
    o[6] = (int)__ballot_sync(0xffffffffu, v & 1);
    o[7] = __any_sync(0xffffffffu, v > 90) | (__all_sync(0xffffffffu, v >= 0) << 1);
    o[8] = __syncthreads_count(v & 1);
    float f = __shfl_down_sync(0xffffffffu, (float)v * 0.5f, 1);
    o[9] = __float_as_int(f);
}

// Partial masks: even lanes shuffle among themselves, odd lanes do a __syncwarp.
extern "C" __global__ void warp_partial(const int* __restrict__ x, int* __restrict__ out) {
    const int lane = threadIdx.x & 31;
    const int v = x[threadIdx.x];
    int r = -1;
    if ((lane & 1) == 0) r = __shfl_sync(0x55555555u, v, (lane + 2) & 31);
    else __syncwarp(0xaaaaaaaau);
    out[threadIdx.x] = r;
}
