/*
The DARTS mixed-op weighted sum (f32) and its backward.

  forward     y[i]  = sum_{j < k} w[j] * xs[j][i]          (terms added in j order, one fmaf each)
  backward x  dxs[j][i] = w[j] * dy[i]                      (weighted_sum_bwd_x_f32, every j < k)
  backward w  dw[j] = <xs[j], dy> = sum_i xs[j][i] * dy[i]  (two passes: partial, then final)

k <= WSUM_MAX_K = 8 operands (the DARTS primitives), passed BY VALUE as a struct of 8 device
pointers, so no device-side pointer array is needed:
    struct Ptrs8    { const float* p[8]; };   // the inputs (Rust: Arg::Ptrs8)
    struct Ptrs8Mut { float* p[8]; };         // the outputs of weighted_sum_bwd_x_f32 (same layout)
Slots >= k are ignored (pass null). A NULL slot j < k is an all-zero operand (the DARTS "none"
op): the forward skips its term, weighted_sum_bwd_w gives dw[j] = 0, weighted_sum_bwd_x writes
nothing for it; so w and dw stay indexed like the alpha row. k outside [0, 8] is clamped.
The weights w live on the device (the softmax of alpha is computed there): no host round trip.

Launch shapes:
  weighted_sum_f32, weighted_sum_bwd_x_f32
      grid-stride loops: block 256 threads recommended (any 1-D block is correct),
      grid = min(ceil(n / 256), 65535); no shared memory. Results are per element, so bitwise
      independent of the launch shape.
  weighted_sum_bwd_w_partial_f32
      grid  = nparts blocks (1-D, chosen by the host as a fixed function of n, e.g.
              min(ceil(n / 256), 1024); never from the device's SM count);
      block = WSUM_BLOCK = 256 threads (required; __launch_bounds__(256));
      static shared = 8 * 8 * 4 = 256 bytes; dynamic = 0.
      Writes partial[j * gridDim.x + blockIdx.x] for j < k (a [k][nparts] row-major scratch).
  weighted_sum_bwd_w_final_f32
      grid  = k blocks (block j reduces row j of partial), block = 256 threads (required);
      static shared = 32 bytes. Writes dw[j] (overwrites; to accumulate the gradients of edges
      that share one alpha row, give each edge its own dw slot and sum them afterwards).

Determinism (no atomics): the partial of thread t of block b accumulates i = b*256 + t,
i += gridDim.x*256 in increasing i (acc = fmaf(x, dy, acc)); warps then sum lanes with a fixed
__shfl_down_sync tree, and one thread adds the 8 warp sums in warp order. The final pass sums
its row the same way. Bits depend only on (n, nparts, values), not on scheduling.
Assumptions: contiguous buffers of n floats, n < 2^31; y / dy must not alias any xs[j].
The j loops have the constant trip count 8 and nvcc unrolls them fully (acc[8], wr[8] stay in
registers: 0-byte stack frame); there is no #pragma unroll because g++ -Wall warns on it.
*/
#define WSUM_BLOCK 256
#define WSUM_WARPS (WSUM_BLOCK / 32)
#define WSUM_MAX_K 8

struct Ptrs8 {
    const float* p[WSUM_MAX_K];
};
struct Ptrs8Mut {
    float* p[WSUM_MAX_K];
};

static __device__ __forceinline__ int wsum_clamp_k(int k) {
    return k < 0 ? 0 : (k > WSUM_MAX_K ? WSUM_MAX_K : k);
}

// Sum over the 32 lanes of a warp in a fixed tree; the total is valid in lane 0.
static __device__ __forceinline__ float wsum_warp_sum(float v) {
    for (int off = 16; off > 0; off >>= 1) v += __shfl_down_sync(0xffffffffu, v, off);
    return v;
}

extern "C" __global__ void weighted_sum_f32(Ptrs8 xs, const float* __restrict__ w, int k,
                                            float* __restrict__ y, int n) {
    const int kk = wsum_clamp_k(k);
    float wr[WSUM_MAX_K];
    for (int j = 0; j < WSUM_MAX_K; ++j) wr[j] = (j < kk && xs.p[j] != nullptr) ? w[j] : 0.0f;
    const unsigned un = n > 0 ? static_cast<unsigned>(n) : 0u;
    const unsigned stride = blockDim.x * gridDim.x;
    for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < un; i += stride) {
        float acc = 0.0f;
        for (int j = 0; j < WSUM_MAX_K; ++j) {
            if (j < kk && xs.p[j] != nullptr) acc = fmaf(wr[j], xs.p[j][i], acc);
        }
        y[i] = acc;
    }
}

extern "C" __global__ void weighted_sum_bwd_x_f32(const float* __restrict__ dy, const float* __restrict__ w,
                                                  int k, Ptrs8Mut dxs, int n) {
    const int kk = wsum_clamp_k(k);
    float wr[WSUM_MAX_K];
    for (int j = 0; j < WSUM_MAX_K; ++j) wr[j] = (j < kk && dxs.p[j] != nullptr) ? w[j] : 0.0f;
    const unsigned un = n > 0 ? static_cast<unsigned>(n) : 0u;
    const unsigned stride = blockDim.x * gridDim.x;
    for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < un; i += stride) {
        const float g = dy[i];
        for (int j = 0; j < WSUM_MAX_K; ++j) {
            if (j < kk && dxs.p[j] != nullptr) dxs.p[j][i] = wr[j] * g;
        }
    }
}

extern "C" __global__ void __launch_bounds__(WSUM_BLOCK)
    weighted_sum_bwd_w_partial_f32(Ptrs8 xs, const float* __restrict__ dy, int k, int n,
                                   float* __restrict__ partial) {
    __shared__ float warp_sums[WSUM_MAX_K][WSUM_WARPS];
    const int kk = wsum_clamp_k(k);
    float acc[WSUM_MAX_K];
    for (int j = 0; j < WSUM_MAX_K; ++j) acc[j] = 0.0f;
    const unsigned un = n > 0 ? static_cast<unsigned>(n) : 0u;
    const unsigned stride = blockDim.x * gridDim.x;
    for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < un; i += stride) {
        const float g = dy[i];
        for (int j = 0; j < WSUM_MAX_K; ++j) {
            if (j < kk && xs.p[j] != nullptr) acc[j] = fmaf(xs.p[j][i], g, acc[j]);
        }
    }
    const unsigned lane = threadIdx.x & 31u, warp = threadIdx.x >> 5;
    for (int j = 0; j < WSUM_MAX_K; ++j) {
        if (j < kk) {  // kk is uniform: every lane takes the shuffles
            const float v = wsum_warp_sum(acc[j]);
            if (lane == 0) warp_sums[j][warp] = v;
        }
    }
    __syncthreads();
    if (threadIdx.x < static_cast<unsigned>(kk)) {
        const unsigned j = threadIdx.x, nwarps = blockDim.x >> 5;
        float total = warp_sums[j][0];
        for (unsigned w = 1; w < nwarps; ++w) total += warp_sums[j][w];
        partial[j * gridDim.x + blockIdx.x] = total;
    }
}

extern "C" __global__ void __launch_bounds__(WSUM_BLOCK)
    weighted_sum_bwd_w_final_f32(const float* __restrict__ partial, int k, int nparts, float* __restrict__ dw) {
    __shared__ float warp_sums[WSUM_WARPS];
    const unsigned j = blockIdx.x;
    if (static_cast<int>(j) >= wsum_clamp_k(k)) return;  // whole block: uniform, before any barrier
    const unsigned np = nparts > 0 ? static_cast<unsigned>(nparts) : 0u;
    const float* row = partial + static_cast<size_t>(j) * np;
    float acc = 0.0f;
    for (unsigned p = threadIdx.x; p < np; p += blockDim.x) acc += row[p];
    acc = wsum_warp_sum(acc);
    const unsigned lane = threadIdx.x & 31u, warp = threadIdx.x >> 5;
    if (lane == 0) warp_sums[warp] = acc;
    __syncthreads();
    if (threadIdx.x == 0) {
        const unsigned nwarps = blockDim.x >> 5;
        float total = warp_sums[0];
        for (unsigned w = 1; w < nwarps; ++w) total += warp_sums[w];
        dw[j] = total;
    }
}
