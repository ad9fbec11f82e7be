// BROKEN ON PURPOSE: only threads < 100 reach the barrier; the others exit. The emulator must
// report it (on a GPU this is undefined behaviour: a hang or silent garbage).
extern "C" __global__ void sync_divergent(float* __restrict__ y) {
    __shared__ float s[256];
    s[threadIdx.x] = (float)threadIdx.x;
    if (threadIdx.x < 100) {
        __syncthreads();
        y[threadIdx.x] = s[(threadIdx.x + 1) % 100];
    }
}
