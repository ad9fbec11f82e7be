/*
Optimiser steps (f32) with PyTorch's semantics, elementwise over one parameter tensor; the same
formulas as the CPU backend (src/backend/cpu/optim.rs).

SGD (no dampening, no Nesterov):
    d   = wd != 0 ? g + wd*w : g
    buf = first_step ? d : momentum*buf + d
    w   = w - lr*buf
Adam (no AMSGrad, L2-style weight decay as torch.optim.Adam, not AdamW):
    d     = wd != 0 ? g + wd*w : g
    m     = beta1*m + keep1*d
    v     = beta2*v + keep2*d*d
    denom = sqrtf(v) / sqrtf(bias_c2) + eps
    w     = w - (lr / bias_c1) * (m / denom)
  with keep1 = 1 - beta1, keep2 = 1 - beta2, bias_c1 = 1 - beta1^t, bias_c2 = 1 - beta2^t
  (t = 1-based step), computed by the host in f64 from the exact betas and passed as floats, as
  PyTorch does (1 - beta2 taken in f32 from beta2 = 0.999 rounded to f32 is 1.3e-5 off).
  lr / bias_c1 and sqrtf(bias_c2) are computed once per thread.

Every multiply-add is an explicit fmaf (one rounding), so nvcc's contraction and the host
emulator's g++ build give the same bits; the CPU backend rounds the product and the sum
separately, so GPU vs CPU differ in the last bit (compare with a tolerance).

Launch shape (both kernels): grid-stride loop; block 256 threads recommended (any 1-D block is
correct); grid = min(ceil(n / 256), 65535); no shared memory. Per element, so bitwise
independent of the launch shape.
Assumptions: w, g and the state buffers are distinct contiguous buffers of n floats, n < 2^31.
buf (SGD) is required even when momentum == 0 (as in the CPU backend it is always written);
its contents are ignored when first_step != 0. m and v (Adam) start at zero on the first step.
*/
#define OPTIM_BLOCK 256

extern "C" __global__ void sgd_step_f32(float* __restrict__ w, const float* __restrict__ g, float* __restrict__ buf,
                                        float lr, float momentum, float wd, int first_step, int n) {
    const unsigned un = n > 0 ? static_cast<unsigned>(n) : 0u;
    const unsigned stride = blockDim.x * gridDim.x;
    for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < un; i += stride) {
        const float wi = w[i];
        const float d = wd != 0.0f ? fmaf(wd, wi, g[i]) : g[i];
        const float b = first_step ? d : fmaf(momentum, buf[i], d);
        buf[i] = b;
        w[i] = fmaf(-lr, b, wi);
    }
}

extern "C" __global__ void adam_step_f32(float* __restrict__ w, const float* __restrict__ g, float* __restrict__ m,
                                         float* __restrict__ v, float lr, float beta1, float beta2, float keep1,
                                         float keep2, float eps, float wd, float bias_c1, float bias_c2, int n) {
    const float step_size = lr / bias_c1;
    const float sqrt_bc2 = sqrtf(bias_c2);
    const unsigned un = n > 0 ? static_cast<unsigned>(n) : 0u;
    const unsigned stride = blockDim.x * gridDim.x;
    for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < un; i += stride) {
        const float wi = w[i];
        const float d = wd != 0.0f ? fmaf(wd, wi, g[i]) : g[i];
        const float mi = fmaf(beta1, m[i], keep1 * d);
        const float vi = fmaf(beta2, v[i], (keep2 * d) * d);
        m[i] = mi;
        v[i] = vi;
        const float denom = sqrtf(vi) / sqrt_bc2 + eps;
        w[i] = fmaf(-step_size, mi / denom, wi);
    }
}
