/*
FairDARTS' zero-one loss (f32) over one tensor of architecture weights s = σ(α), with the mean's
divisor given (the loss of several tensors is the sum of their parts with the same divisor):

  zero_one_fwd_f32  out[0] = −scale · Σ_i (s[i] − ½)²          (scale = 1 / total count)
  zero_one_bwd_f32  ds[i]  = −2 · scale · (s[i] − ½) · dl[0]    (dl: the loss's gradient, on the
                    device, so a captured step never reads it back)

Launch shapes:
  zero_one_fwd_f32  grid 1, block ZERO_ONE_BLOCK = 256 (required: __launch_bounds__ and the
                    shared warp sums are sized for it); thread t adds elements t, t + 256, ... in
                    order (fmaf), then block_sum (common.cuh): the bits depend on n alone.
                    Static shared memory 32 bytes.
  zero_one_bwd_f32  grid-stride over n, block 256 recommended, any grid ≥ 1.
Assumptions: contiguous buffers of n floats (n < 2^31; n ≤ 0 writes out[0] = 0); outputs do not
alias inputs.
*/
#include "common.cuh"

#define ZERO_ONE_BLOCK 256

extern "C" __global__ void __launch_bounds__(ZERO_ONE_BLOCK)
    zero_one_fwd_f32(const float* __restrict__ s, float* __restrict__ out, int n, float scale) {
    __shared__ float warp_s[ZERO_ONE_BLOCK / 32];
    const unsigned un = n > 0 ? static_cast<unsigned>(n) : 0u;
    float q = 0.0f;
    for (unsigned i = threadIdx.x; i < un; i += ZERO_ONE_BLOCK) {
        const float d = s[i] - 0.5f;
        q = fmaf(d, d, q);
    }
    const float total = block_sum(q, warp_s);
    if (threadIdx.x == 0) out[0] = -scale * total;
}

extern "C" __global__ void zero_one_bwd_f32(const float* __restrict__ s, const float* __restrict__ dl,
                                            float* __restrict__ ds, int n, float scale) {
    const unsigned un = n > 0 ? static_cast<unsigned>(n) : 0u;
    const unsigned stride = blockDim.x * gridDim.x;
    const float k = -2.0f * scale * dl[0];
    for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < un; i += stride) ds[i] = k * (s[i] - 0.5f);
}
