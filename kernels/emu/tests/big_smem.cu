// Needs n floats of dynamic shared memory: above 12288 (48 KiB) a launch must opt in first
// (allow_dynamic_shared), as a GPU demands. The planted bug is a launch that does not.
#ifndef DARTS_DYN_SMEM
#define DARTS_DYN_SMEM(T, name) extern __shared__ __align__(16) T name[]
#endif

// One block reverses x (n elements) through shared memory.
extern "C" __global__ void smem_reverse_f32(const float* __restrict__ x, float* __restrict__ y, int n) {
    DARTS_DYN_SMEM(float, buf);
    for (int i = threadIdx.x; i < n; i += blockDim.x) buf[i] = x[i];
    __syncthreads();
    for (int i = threadIdx.x; i < n; i += blockDim.x) y[i] = buf[n - 1 - i];
}
