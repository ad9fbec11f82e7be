/*
Optimiser steps (f32) with PyTorch's semantics, elementwise over one parameter tensor; the same
formulas as the CPU backend (src/backend/cpu/optim.rs). Their multi-tensor forms (one launch per
tensor list: gradient norm and clip coefficient, clipped SGD, axpy with a device scalar, the
unrolled weights) follow below, with their own comment.

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
  PyTorch does (1 - beta2 taken in f32 from beta2 = 0.999 rounded to f32 is 1.3e-5 off). When
  bias_at is set they are read from bias_at[0], bias_at[1] instead (the step's hyperparameters in
  device memory, written by the host before each step: a replayed graph reads the current t's).
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
#include "common.cuh"

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
                                         float keep2, float eps, float wd, float bias_c1, float bias_c2,
                                         const float* __restrict__ bias_at, int n) {
    const float bc1 = bias_at ? bias_at[0] : bias_c1;
    const float bc2 = bias_at ? bias_at[1] : bias_c2;
    const float step_size = lr / bc1;
    const float sqrt_bc2 = sqrtf(bc2);
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

/*
Multi-tensor (tensor-list) kernels: one launch covers every tensor of a group (the 1,399 weight
tensors of the paper network, the two alphas), and the scalars they need (the clip coefficient,
the finite-difference step r = hvp_scale/||v||) live in device memory, so a step needs no host
read between launches.

Tensor list. The host uploads (one host-to-device copy per launch) an array of
    struct MtTensor { float* p[4]; int n; int chunk0; };       // 40 bytes, no padding
(Rust: backend::gpu::launch::optim::MtTensor, #[repr(C)], same fields). Tensor k has n elements
and owns chunks chunk0 .. chunk0 + ceil(n / MT_CHUNK) - 1 of the launch; chunk0 is the prefix sum
of the chunk counts (so it is non-decreasing; an empty tensor owns no chunk). p[0..3] are the
tensor's operands, their meaning per kernel below; an operand marked optional may be null (per
tensor). Block b processes chunk b: it finds its tensor by binary search for the last k with
chunk0 <= b, then elements [(b - chunk0) * MT_CHUNK, min(n, ... + MT_CHUNK)), thread t taking
i = start + t, start + t + blockDim.x, ... .

  mt_sumsq_partial_f32  p[0] = x.
      partial[b] = sum over chunk b of x[i]^2 (squares as fmaf(v, v, acc), then the same fixed
      warp tree and warp order as kernels/reduce.cu). One partial per chunk.
  mt_norm_final_f32     one block: total = sum_{c < nparts} partial[c] (fixed order), then
      out[0] = norm = sqrtf(total)
      out[1] = clip coefficient: c = max_norm / (norm + 1e-6); c < 1 ? c : 1 (PyTorch's
               clip_grad_norm_ clamps the coefficient at 1, so an unclipped step multiplies by 1)
      out[2] = num / norm   (r = hvp_scale / ||v|| of the second-order architect)
      out[3] = norm / num   (1 / r)
  mt_sgd_f32            p[0] = w, p[1] = g, p[2] = buf (required). With c = *coef (1 if coef is
      null) and lr = *lr_at (lr_value if lr_at is null: a device value lets a replayed graph
      follow the schedule), the clipped gradient c*g is formed on load, then the SGD step of
      sgd_step_f32:
          gc  = c * g
          d   = wd != 0 ? fmaf(wd, w, gc) : gc
          buf = first_step ? d : fmaf(momentum, buf, d)       (buf is not read on a first step)
          w   = fmaf(-lr, buf, w)
  mt_axpy_f32           p[0] = y, p[1] = x, p[2] = x2 (optional), p[3] = out (optional: null
      writes y in place). With a = (mult * *scale) * *scalar (a factor absent where its pointer
      is null):
          out = fmaf(a, x2 ? x - x2 : x, y)
      (w +- r v with scalar = &out[2] of the norm of v; the finite-difference combination
      d - xi (g+ - g-) / (2 r) with y = d, x = g+, x2 = g-, scalar = &out[3], mult = -1/2 and
      scale = &xi, or mult = -xi / 2 and no scale: the same bits, halving being exact).
  mt_unroll_f32         p[0] = w, p[1] = g, p[2] = buf (optional: null before the first SGD step),
      p[3] = out. The unrolled weights of the second-order architect (xi = *xi_at, or xi_value if
      xi_at is null):
          d   = fmaf(wd, w, g)
          d   = buf ? fmaf(momentum, buf, d) : d
          out = fmaf(-xi, d, w)                              (w' = w - xi (m buf + g + wd w))

Every multiply-add is an explicit fmaf (see the top of this file); the CPU backend rounds
products and sums separately, so compare with a tolerance.

Launch shape: grid = total chunks of the list (1-D, >= 1; < 2^31), block = MT_BLOCK = 256
threads (required by the reductions: static shared memory is sized for it and
__launch_bounds__(256) makes a larger block fail to launch; the elementwise kernels are correct
for any 1-D block); no dynamic shared memory. mt_sumsq_partial_f32 uses 32 bytes of static
shared memory and writes gridDim.x partials. mt_norm_final_f32: grid = 1 block of 256 threads,
32 bytes of static shared memory, out has 4 floats.
Determinism: the chunking depends only on the tensors' lengths, and every sum is taken in a
fixed order, so results are bitwise reproducible on any GPU and under the emulator; the
elementwise kernels are per element.
Assumptions: every n < 2^31 and every chunk index < 2^31; the operands of one tensor are
distinct contiguous buffers of n floats, except that out may equal y (mt_axpy_f32); no two
tensors of a list share an output buffer; ntensors >= 1 when gridDim.x >= 1 chunks exist.
*/
#define MT_CHUNK 4096
#define MT_BLOCK 256
#define MT_WARPS (MT_BLOCK / 32)

struct MtTensor {
    float* p[4];
    int n;
    int chunk0;
};

// The tensor that owns chunk c: the last k with list[k].chunk0 <= c (list[0].chunk0 == 0).
static __device__ __forceinline__ int mt_find(const MtTensor* __restrict__ list, int ntensors, int c) {
    int lo = 0, hi = ntensors - 1;
    while (lo < hi) {
        const int mid = (lo + hi + 1) >> 1;
        if (list[mid].chunk0 <= c) {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    return lo;
}

// The element range [*begin, *end) of chunk blockIdx.x inside tensor k.
static __device__ __forceinline__ void mt_range(const MtTensor* __restrict__ list, int k, unsigned* begin,
                                                unsigned* end) {
    const unsigned n = list[k].n > 0 ? static_cast<unsigned>(list[k].n) : 0u;
    const unsigned b = (blockIdx.x - static_cast<unsigned>(list[k].chunk0)) * static_cast<unsigned>(MT_CHUNK);
    *begin = b < n ? b : n;
    *end = n - *begin > static_cast<unsigned>(MT_CHUNK) ? *begin + static_cast<unsigned>(MT_CHUNK) : n;
}

extern "C" __global__ void __launch_bounds__(MT_BLOCK)
    mt_sumsq_partial_f32(const MtTensor* __restrict__ list, int ntensors, float* __restrict__ partial) {
    __shared__ float warp_sums[MT_WARPS];
    const int k = mt_find(list, ntensors, static_cast<int>(blockIdx.x));
    unsigned begin, end;
    mt_range(list, k, &begin, &end);
    const float* __restrict__ x = list[k].p[0];
    float acc = 0.0f;
    for (unsigned i = begin + threadIdx.x; i < end; i += blockDim.x) {
        const float v = x[i];
        acc = fmaf(v, v, acc);
    }
    const float total = block_sum(acc, warp_sums);
    if (threadIdx.x == 0) partial[blockIdx.x] = total;
}

extern "C" __global__ void __launch_bounds__(MT_BLOCK)
    mt_norm_final_f32(const float* __restrict__ partial, int nparts, float* __restrict__ out, float max_norm,
                      float num) {
    __shared__ float warp_sums[MT_WARPS];
    const unsigned np = nparts > 0 ? static_cast<unsigned>(nparts) : 0u;
    float acc = 0.0f;
    for (unsigned p = threadIdx.x; p < np; p += blockDim.x) acc += partial[p];
    const float total = block_sum(acc, warp_sums);
    if (threadIdx.x == 0) {
        const float norm = sqrtf(total);
        const float c = max_norm / (norm + 1e-6f);
        out[0] = norm;
        out[1] = c < 1.0f ? c : 1.0f;
        out[2] = num / norm;
        out[3] = norm / num;
    }
}

extern "C" __global__ void __launch_bounds__(MT_BLOCK)
    mt_sgd_f32(const MtTensor* __restrict__ list, int ntensors, const float* __restrict__ coef, float lr_value,
               const float* __restrict__ lr_at, float momentum, float wd, int first_step) {
    const int k = mt_find(list, ntensors, static_cast<int>(blockIdx.x));
    unsigned begin, end;
    mt_range(list, k, &begin, &end);
    float* __restrict__ w = list[k].p[0];
    const float* __restrict__ g = list[k].p[1];
    float* __restrict__ buf = list[k].p[2];
    const float c = coef ? coef[0] : 1.0f;
    const float lr = lr_at ? lr_at[0] : lr_value;
    for (unsigned i = begin + threadIdx.x; i < end; i += blockDim.x) {
        const float wi = w[i];
        const float gc = c * g[i];
        const float d = wd != 0.0f ? fmaf(wd, wi, gc) : gc;
        const float b = first_step ? d : fmaf(momentum, buf[i], d);
        buf[i] = b;
        w[i] = fmaf(-lr, b, wi);
    }
}

extern "C" __global__ void __launch_bounds__(MT_BLOCK)
    mt_axpy_f32(const MtTensor* __restrict__ list, int ntensors, const float* __restrict__ scalar, float mult,
                const float* __restrict__ scale) {
    const int k = mt_find(list, ntensors, static_cast<int>(blockIdx.x));
    unsigned begin, end;
    mt_range(list, k, &begin, &end);
    const float* y = list[k].p[0];
    const float* x = list[k].p[1];
    const float* x2 = list[k].p[2];
    float* out = list[k].p[3] ? list[k].p[3] : list[k].p[0];
    const float m = scale ? mult * scale[0] : mult;
    const float a = scalar ? m * scalar[0] : m;
    if (x2) {
        for (unsigned i = begin + threadIdx.x; i < end; i += blockDim.x) out[i] = fmaf(a, x[i] - x2[i], y[i]);
    } else {
        for (unsigned i = begin + threadIdx.x; i < end; i += blockDim.x) out[i] = fmaf(a, x[i], y[i]);
    }
}

extern "C" __global__ void __launch_bounds__(MT_BLOCK)
    mt_unroll_f32(const MtTensor* __restrict__ list, int ntensors, float xi_value, const float* __restrict__ xi_at,
                  float momentum, float wd) {
    const int k = mt_find(list, ntensors, static_cast<int>(blockIdx.x));
    unsigned begin, end;
    mt_range(list, k, &begin, &end);
    const float xi = xi_at ? xi_at[0] : xi_value;
    const float* __restrict__ w = list[k].p[0];
    const float* __restrict__ g = list[k].p[1];
    const float* __restrict__ buf = list[k].p[2];
    float* __restrict__ out = list[k].p[3];
    for (unsigned i = begin + threadIdx.x; i < end; i += blockDim.x) {
        const float wi = w[i];
        float d = fmaf(wd, wi, g[i]);
        if (buf) d = fmaf(momentum, buf[i], d);
        out[i] = fmaf(-xi, d, wi);
    }
}
