/*
Elementwise kernels (f32): ReLU and sigmoid forward/backward, add, scale, per-sample scale, axpy,
fill.

  relu_fwd_f32   y[i]  = x[i] < 0 ? 0 : x[i]        (NaN propagates, -0 stays -0; as the CPU backend)
  relu_bwd_f32   dx[i] = x[i] > 0 ? dy[i] : 0       (x is the forward INPUT)
  sigmoid_fwd_f32  y[i]  = 1 / (1 + exp(-x[i]))     (FairDARTS' architecture weights)
  sigmoid_bwd_f32  dx[i] = dy[i] y[i] (1 - y[i])   (y is the forward OUTPUT)
  add_f32        y[i]  = a[i] + b[i]
  scale_f32      y[i]  = s * x[i]
  scale_samples_f32  y[i] = s[i / inner] * x[i]    (s: one factor per leading index, e.g. per
                 sample of an NCHW batch with inner = c*h*w: the evaluation network's drop path;
                 s may point into a larger buffer, all of a forward's masks uploaded at once)
  axpy_f32       y[i]  = fmaf(alpha, x[i], y[i])    (y += alpha x, one rounding)
  fill_f32       y[i]  = v
  add_n_f32      y[i]  = ((x0[i] + x1[i]) + x2[i]) + ...   (k <= 8 inputs, added in index order:
                 bitwise a chain of add_f32; the inputs are one by-value struct AddNPtrs, which is
                 laid out as the Rust Arg::Ptrs8)

Launch shape (every kernel in this file):
  block = ELEMENTWISE_BLOCK (256) threads recommended; any 1-D block size is correct.
  grid  = min(ceil(n / 256), 65535) blocks, 1-D. Every kernel is a grid-stride loop, so any
          grid >= 1 is correct; the cap keeps the stride (and i + stride) far below 2^32.
  shared memory: none, static or dynamic.
Assumptions:
  * contiguous buffers of n floats, n < 2^31 (n <= 0 does nothing);
  * aliasing: an output may be the very same buffer as an input (in place, e.g. add_f32(a, b, a)
    for gradient accumulation, relu_fwd_f32(x, x)): each element is read before it is written
    by the same thread. That is why these pointers are not __restrict__. Partial overlap (an
    output offset from an input) is not allowed.
  * every result depends only on its own element, so it is bitwise independent of the grid,
    block size and scheduling. Multiply-adds are written as fmaf so that nvcc (which would
    contract a*b+c) and the host emulator (g++, which would not) round identically.
*/
#define ELEMENTWISE_BLOCK 256

// Every kernel below is the same grid-stride loop over [0, n), written out:
//   const unsigned un = n > 0 ? n : 0, stride = blockDim.x * gridDim.x;
//   for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < un; i += stride) ...
// (unsigned, so i + stride cannot overflow for n < 2^31 and a capped grid).

extern "C" __global__ void relu_fwd_f32(const float* x, float* y, int n) {
    const unsigned un = n > 0 ? static_cast<unsigned>(n) : 0u;
    const unsigned stride = blockDim.x * gridDim.x;
    for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < un; i += stride) {
        const float v = x[i];
        y[i] = v < 0.0f ? 0.0f : v;
    }
}

extern "C" __global__ void relu_bwd_f32(const float* x, const float* dy, float* dx, int n) {
    const unsigned un = n > 0 ? static_cast<unsigned>(n) : 0u;
    const unsigned stride = blockDim.x * gridDim.x;
    for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < un; i += stride) {
        const float v = x[i];
        const float g = dy[i];
        dx[i] = v > 0.0f ? g : 0.0f;
    }
}

extern "C" __global__ void sigmoid_fwd_f32(const float* x, float* y, int n) {
    const unsigned un = n > 0 ? static_cast<unsigned>(n) : 0u;
    const unsigned stride = blockDim.x * gridDim.x;
    for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < un; i += stride) {
        y[i] = 1.0f / (1.0f + expf(-x[i]));
    }
}

extern "C" __global__ void sigmoid_bwd_f32(const float* y, const float* dy, float* dx, int n) {
    const unsigned un = n > 0 ? static_cast<unsigned>(n) : 0u;
    const unsigned stride = blockDim.x * gridDim.x;
    for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < un; i += stride) {
        const float v = y[i];
        dx[i] = (dy[i] * v) * (1.0f - v);
    }
}

extern "C" __global__ void add_f32(const float* a, const float* b, float* y, int n) {
    const unsigned un = n > 0 ? static_cast<unsigned>(n) : 0u;
    const unsigned stride = blockDim.x * gridDim.x;
    for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < un; i += stride) {
        y[i] = a[i] + b[i];
    }
}

extern "C" __global__ void scale_f32(const float* x, float s, float* y, int n) {
    const unsigned un = n > 0 ? static_cast<unsigned>(n) : 0u;
    const unsigned stride = blockDim.x * gridDim.x;
    for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < un; i += stride) {
        y[i] = s * x[i];
    }
}

extern "C" __global__ void scale_samples_f32(const float* x, const float* __restrict__ s, float* y, int n,
                                             int inner) {
    const unsigned un = n > 0 ? static_cast<unsigned>(n) : 0u;
    const unsigned stride = blockDim.x * gridDim.x;
    const unsigned ui = inner > 0 ? static_cast<unsigned>(inner) : 1u;
    for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < un; i += stride) {
        y[i] = s[i / ui] * x[i];
    }
}

extern "C" __global__ void axpy_f32(float alpha, const float* x, float* y, int n) {
    const unsigned un = n > 0 ? static_cast<unsigned>(n) : 0u;
    const unsigned stride = blockDim.x * gridDim.x;
    for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < un; i += stride) {
        y[i] = fmaf(alpha, x[i], y[i]);
    }
}

extern "C" __global__ void fill_f32(float* __restrict__ y, float v, int n) {
    const unsigned un = n > 0 ? static_cast<unsigned>(n) : 0u;
    const unsigned stride = blockDim.x * gridDim.x;
    for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < un; i += stride) {
        y[i] = v;
    }
}

#define ADD_N_MAX 8

// The inputs of add_n_f32 (Rust: Arg::Ptrs8); entries >= k are never read.
struct AddNPtrs {
    const float* p[ADD_N_MAX];
};

// One launch instead of k - 1 add_f32 (e.g. the gradient of a tensor several ops read).
extern "C" __global__ void add_n_f32(AddNPtrs xs, int k, float* y, int n) {
    const unsigned un = n > 0 ? static_cast<unsigned>(n) : 0u;
    const unsigned stride = blockDim.x * gridDim.x;
    for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < un; i += stride) {
        // A compile-time trip count (nvcc unrolls it): a dynamic index into the by-value struct
        // would copy it to a local-memory stack frame.
        float acc = xs.p[0][i];
        for (int j = 1; j < ADD_N_MAX; ++j)
            if (j < k) acc += xs.p[j][i];
        y[i] = acc;
    }
}
