/*
Deterministic reductions (f32): flat sum, flat sum of squares, per-channel sum and sum of squares.

  sum_partial_f32     partial[b] = sum_{i in block b's share} x[i]              b < gridDim.x
  sumsq_partial_f32   partial[b] = sum_{i in block b's share} x[i]^2            b < gridDim.x
  sum_final_f32       out[0]     = sum_{p < nparts} partial[p]
  channel_sums_f32    sum[ch]    = sum_{b < n, s < hw} x[(b*c + ch)*hw + s]
                      sumsq[ch]  = sum_{b < n, s < hw} x[(b*c + ch)*hw + s]^2   (x is NCHW)

No atomics: a flat reduction is two launches. The first writes one partial per block into a
scratch buffer; the second (one block) combines the partials. Every sum is taken in a fixed
order that depends only on (n, gridDim.x, blockDim.x), never on which block or warp runs first:
  1. thread t of block b accumulates elements i = b*B + t, i += gridDim.x*B in increasing i
     (sequentially, one rounding per add; squares as fmaf(v, v, acc));
  2. each warp sums its 32 lanes with a __shfl_down_sync tree (offsets 16, 8, 4, 2, 1);
  3. thread 0 adds the per-warp sums in warp order (warp 0 first).
So results are bitwise reproducible for a given launch shape, but change with gridDim.x: the
host must choose the number of partials as a fixed function of n (e.g. min(ceil(n/256), 1024)),
never of the device's SM count, or results differ between GPUs.

Launch shape:
  sum_partial_f32, sumsq_partial_f32
      grid  = nparts blocks (1-D, chosen by the host, >= 1; partial has nparts floats);
      block = REDUCE_BLOCK = 256 threads (required: static shared memory is sized for it;
              __launch_bounds__(256) makes a larger block fail to launch);
      static shared = 32 bytes; dynamic = 0.
      Over many tensors one can launch sumsq_partial_f32 once per tensor with `partial`
      offset to that tensor's slice of one scratch buffer, then one sum_final_f32 over the
      whole buffer; the optimiser's gradient norm instead uses the multi-tensor
      mt_sumsq_partial_f32 / mt_norm_final_f32 of kernels/optim.cu (two launches per list).
  sum_final_f32
      grid = 1 block, block = 256 threads (required); static shared = 32 bytes.
      Combines sum and sumsq partials alike (both are plain floats to add).
  channel_sums_f32
      grid = c blocks (block ch reduces channel ch), block = 256 threads (required);
      static shared = 64 bytes. One block per channel: simple and deterministic, but only c
      blocks are in flight (fine for now; a split over the batch with a second pass would
      fill a large GPU better).
Assumptions: contiguous buffers, every element count < 2^31; n <= 0 (or hw <= 0) gives sums
of 0. Accumulation is f32 throughout (the CPU backend accumulates in f64, so compare with a
tolerance). channel_sums_f32 returns raw sums: var = sumsq/N - mean^2 cancels badly if
|mean| >> std; clamp it at 0 on use.
*/
#include "common.cuh"

#define REDUCE_BLOCK 256
#define REDUCE_WARPS (REDUCE_BLOCK / 32)

extern "C" __global__ void __launch_bounds__(REDUCE_BLOCK)
    sum_partial_f32(const float* __restrict__ x, int n, float* __restrict__ partial) {
    __shared__ float warp_sums[REDUCE_WARPS];
    const unsigned un = n > 0 ? static_cast<unsigned>(n) : 0u;
    const unsigned stride = blockDim.x * gridDim.x;
    float acc = 0.0f;
    for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < un; i += stride) acc += x[i];
    const float total = block_sum(acc, warp_sums);
    if (threadIdx.x == 0) partial[blockIdx.x] = total;
}

extern "C" __global__ void __launch_bounds__(REDUCE_BLOCK)
    sumsq_partial_f32(const float* __restrict__ x, int n, float* __restrict__ partial) {
    __shared__ float warp_sums[REDUCE_WARPS];
    const unsigned un = n > 0 ? static_cast<unsigned>(n) : 0u;
    const unsigned stride = blockDim.x * gridDim.x;
    float acc = 0.0f;
    for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < un; i += stride) {
        const float v = x[i];
        acc = fmaf(v, v, acc);
    }
    const float total = block_sum(acc, warp_sums);
    if (threadIdx.x == 0) partial[blockIdx.x] = total;
}

extern "C" __global__ void __launch_bounds__(REDUCE_BLOCK)
    sum_final_f32(const float* __restrict__ partial, int nparts, float* __restrict__ out) {
    __shared__ float warp_sums[REDUCE_WARPS];
    const unsigned np = nparts > 0 ? static_cast<unsigned>(nparts) : 0u;
    float acc = 0.0f;
    for (unsigned p = threadIdx.x; p < np; p += blockDim.x) acc += partial[p];
    const float total = block_sum(acc, warp_sums);
    if (threadIdx.x == 0) out[0] = total;
}

extern "C" __global__ void __launch_bounds__(REDUCE_BLOCK)
    channel_sums_f32(const float* __restrict__ x, int n, int c, int hw, float* __restrict__ sum,
                     float* __restrict__ sumsq) {
    __shared__ float warp_sums[2][REDUCE_WARPS];
    const unsigned ch = blockIdx.x;
    const unsigned uc = static_cast<unsigned>(c);
    const unsigned uhw = hw > 0 ? static_cast<unsigned>(hw) : 0u;
    const unsigned total = (n > 0 && hw > 0) ? static_cast<unsigned>(n) * uhw : 0u;
    const unsigned bd = blockDim.x;
    // Thread t visits m = t, t + bd, ... < n*hw, i.e. (b, s) = (m / hw, m % hw), advancing
    // (b, s) incrementally instead of dividing per element.
    const unsigned adv_b = uhw ? bd / uhw : 0u, adv_s = uhw ? bd % uhw : 0u;
    unsigned b = uhw ? threadIdx.x / uhw : 0u, s = uhw ? threadIdx.x % uhw : 0u;
    float acc = 0.0f, acc2 = 0.0f;
    for (unsigned m = threadIdx.x; m < total; m += bd) {
        const float v = x[(b * uc + ch) * uhw + s];
        acc += v;
        acc2 = fmaf(v, v, acc2);
        b += adv_b;
        s += adv_s;
        if (s >= uhw) {
            s -= uhw;
            ++b;
        }
    }
    const unsigned lane = threadIdx.x & 31u, warp = threadIdx.x >> 5;
    acc = warp_sum(acc);
    acc2 = warp_sum(acc2);
    if (lane == 0) {
        warp_sums[0][warp] = acc;
        warp_sums[1][warp] = acc2;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        const unsigned nwarps = bd >> 5;
        float t1 = warp_sums[0][0], t2 = warp_sums[1][0];
        for (unsigned w = 1; w < nwarps; ++w) {
            t1 += warp_sums[0][w];
            t2 += warp_sums[1][w];
        }
        sum[ch] = t1;
        sumsq[ch] = t2;
    }
}
