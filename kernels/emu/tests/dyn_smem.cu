// Dynamic shared memory through DARTS_DYN_SMEM (the emulator's convention; plain extern
// __shared__ under nvcc).
#ifndef DARTS_DYN_SMEM
#define DARTS_DYN_SMEM(T, name) extern __shared__ __align__(16) T name[]
#endif

// Reverses each block's slice; needs blockDim.x floats of dynamic shared memory.
extern "C" __global__ void block_reverse_f32(const float* __restrict__ x, float* __restrict__ y, int n) {
    DARTS_DYN_SMEM(float, buf);
    const int t = threadIdx.x;
    const int i = blockIdx.x * blockDim.x + t;
    buf[t] = i < n ? x[i] : -1.0f;
    __syncthreads();
    const int j = blockIdx.x * blockDim.x + (blockDim.x - 1 - t);
    if (j < n) y[j] = buf[t];
}

// Argmax per block: the dynamic buffer is carved into blockDim.x floats then blockDim.x ints.
static __device__ __forceinline__ void carve(float** vals, int** idx) {
    DARTS_DYN_SMEM(float, smem);
    *vals = smem;
    *idx = reinterpret_cast<int*>(smem + blockDim.x);
}

extern "C" __global__ void block_argmax_f32(const float* __restrict__ x, int* __restrict__ out, int n) {
    float* vals;
    int* idx;
    carve(&vals, &idx);
    const int t = threadIdx.x;
    const int i = blockIdx.x * blockDim.x + t;
    vals[t] = i < n ? x[i] : -INFINITY;
    idx[t] = i;
    __syncthreads();
    for (unsigned s = blockDim.x / 2; s > 0; s >>= 1) {
        if (t < (int)s && vals[t + s] > vals[t]) {
            vals[t] = vals[t + s];
            idx[t] = idx[t + s];
        }
        __syncthreads();
    }
    if (t == 0) out[blockIdx.x] = idx[0];
}

// Overruns its dynamic buffer by one element (the runtime's canary check reports it).
extern "C" __global__ void dyn_smem_overrun(float* __restrict__ y) {
    DARTS_DYN_SMEM(float, buf);
    buf[threadIdx.x + 1] = 1.0f;
    __syncthreads();
    y[threadIdx.x] = buf[threadIdx.x];
}
