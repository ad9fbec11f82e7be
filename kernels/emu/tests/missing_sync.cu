// BROKEN ON PURPOSE: tree reduction without the __syncthreads() between levels, so a thread may
// read a partial sum before its owner wrote it. The result depends on the order threads run in:
// schedules 0 and 1 of the emulator must disagree.
extern "C" __global__ void block_sum_missing_sync(const float* __restrict__ x, float* __restrict__ out) {
    __shared__ float s[256];
    const int t = threadIdx.x;
    s[t] = x[blockIdx.x * 256 + t];
    __syncthreads();
    for (int stride = 128; stride > 0; stride >>= 1) {
        if (t < stride) s[t] += s[t + stride];
        // missing: __syncthreads();
    }
    if (t == 0) out[blockIdx.x] = s[0];
}
