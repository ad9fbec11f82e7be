// Block sum: 256 threads, shared-memory tree down to one warp, then warp shuffles.
extern "C" __global__ void __launch_bounds__(256) block_sum_f32(const float* __restrict__ x, float* __restrict__ out, int n) {
    __shared__ float s[256];
    const int t = threadIdx.x;
    const int i = blockIdx.x * 256 + t;
    s[t] = i < n ? x[i] : 0.0f;
    __syncthreads();
    for (int stride = 128; stride >= 32; stride >>= 1) {
        if (t < stride) s[t] += s[t + stride];
        __syncthreads();
    }
    if (t < 32) {
        float v = s[t];
        for (int off = 16; off > 0; off >>= 1) v += __shfl_down_sync(0xffffffffu, v, off);
        if (t == 0) out[blockIdx.x] = v;
    }
}

// Per-thread local array kept live across barriers (each fiber needs its own stack), in the
// register-tiling style of a GEMM micro-kernel.
extern "C" __global__ void local_tile_f32(const float* __restrict__ x, float* __restrict__ out) {
    __shared__ float tile[64][8];
    float acc[8][8];
    const int t = threadIdx.x;  // 64 threads
    for (int k = 0; k < 8; ++k) tile[t][k] = x[blockIdx.x * 512 + t * 8 + k];
    __syncthreads();
    for (int i = 0; i < 8; ++i)
        for (int j = 0; j < 8; ++j) acc[i][j] = tile[(t + i) & 63][j];
    __syncthreads();
    for (int k = 0; k < 8; ++k) tile[t][k] = 0.0f;
    __syncthreads();
    float sum = 0.0f;
    for (int i = 0; i < 8; ++i)
        for (int j = 0; j < 8; ++j) sum += acc[i][j] * (float)(i + 1) + tile[(t + j) & 63][i];
    out[blockIdx.x * 64 + t] = sum;
}
