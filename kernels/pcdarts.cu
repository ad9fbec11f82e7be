/*
PC-DARTS (partial channels) on f32 NCHW, mirroring src/backend/cpu/pcdarts.rs.

Partial-channel merge. An edge's input x is [n, c, h, w]; its mixed op ran on the first c/k
channels and gave m [n, c/k, oh, ow]; the other channels bypass it: identity (stride 1,
oh = h) or a 2x2 stride-2 max pool (stride 2, oh = h/2, h and w even). The merge reads them
as their own tensor, the tail x_t = x[:, c/k:] [n, c - c/k, h, w] (PC-DARTS states travel as
head and tail), and writes dx_t of that shape; below, x[:, q] for q >= c/k is x_t[:, q - c/k]. With
v = cat(m, bypass(x[:, c/k:])) and the shuffle of k groups (output o = p·k + g reads channel
q = g·(c/k) + p of v; conversely q is read by o = (q mod c/k)·k + q div (c/k)):

  y[:, o]  = acc[:, o] + s · v[:, q(o)]                    (acc null: 0)
  dm[:, q] = s · dy[:, o(q)]                               q < c/k
  dx[:, q] = for q >= c/k: s · dy[:, o(q)] (stride 1), or s · dy[:, o(q)] at the window's
             first maximum in row-major order and 0 at its other three (stride 2)
  ds       = Σ dy ⊙ shuffle(v)   written as dgrad[index] of a [len] vector, zeros elsewhere;
             with m null in the backward, v's first c/k channels count 0 (the fused mixed
             edge adds its own part of ds, Σ dy·m)
s = *p.s, one entry of a device vector (the edge's normalised β): no host round trip.

Launch shapes (block PC_BLOCK = 256, no dynamic shared memory):
  pc_merge_fwd_f32   grid-stride over y, grid = min(ceil(|y| / 256), 65535).
  pc_merge_bwd_f32   grid = nparts (the host's partials_for(|y|): a function of the size only)
                     grid-stride over v in (image, q, pixel) order; each thread writes dm or
                     its dx positions (every element of dx is written once: no fill launch,
                     no atomics, the 2x2 windows do not overlap) and adds dy·v to its partial;
                     each block's block_sum goes to partials[blockIdx.x].
  pc_merge_ds_f32    one block: thread 0 adds the nparts partials in order, then dgrad.
Per-block order is fixed by the grid, so every result is deterministic. The parameters are one
struct PcMerge by value (shared with src/backend/gpu/launch/pcdarts.rs as #[repr(C)]).

Node softmax. β has steps·(steps+3)/2 entries; node i owns the i + 2 from i·(i+3)/2:
  y  = softmax(β[slice_i])                 per slice
  dx = y ⊙ (dy − <dy, y>_slice)            per slice
  node_softmax_fwd_f32 / node_softmax_bwd_f32: one block of 32 threads, thread i does node i
  (steps <= 32). Parameters: struct NodeSoftmax by value.
Assumptions: contiguous buffers, element counts < 2^31, outputs do not alias inputs.
*/
#include "common.cuh"

#define PC_BLOCK 256

struct PcMerge {
    const float* m;
    const float* x;    // the tail [n, c - c/k, h, w]; null when k = 1
    const float* acc;  // may be null
    const float* s;    // the scale, one float
    const float* dy;
    float* y;
    float* dm;        // may be null
    float* dx;        // the tail's, may be null
    float* partials;  // [nparts]
    float* dgrad;     // [len], may be null
    int n, c, h, w;
    int k, stride;
    int len, index;  // dgrad's length, and where ds goes
    int nparts;
    int pad;
};

struct NodeSoftmax {
    const float* beta;  // forward input
    const float* y;     // forward output (backward input)
    const float* dy;
    float* out;  // y (forward) or dx (backward)
    int steps;
    int pad;
};

// v at (image ni, channel q, output pixel (i, j)) and, for a bypass channel, its flat index in x.
static __device__ __forceinline__ float pc_value(const PcMerge& p, int ni, int q, int i, int j, int* at_x) {
    const int cpk = p.c / p.k, oh = p.h / p.stride, ow = p.w / p.stride;
    if (q < cpk) {
        *at_x = -1;
        return p.m ? p.m[((static_cast<size_t>(ni) * cpk + q) * oh + i) * ow + j] : 0.0f;
    }
    const size_t plane = (static_cast<size_t>(ni) * (p.c - cpk) + (q - cpk)) * p.h * p.w;
    if (p.stride == 1) {
        *at_x = static_cast<int>(plane + static_cast<size_t>(i) * p.w + j);
        return p.x[*at_x];
    }
    int best = static_cast<int>(plane + static_cast<size_t>(2 * i) * p.w + 2 * j);
    float v = p.x[best];
    const int cand[3] = {best + 1, best + p.w, best + p.w + 1};
#pragma unroll
    for (int t = 0; t < 3; ++t) {
        const float u = p.x[cand[t]];
        if (u > v) {
            v = u;
            best = cand[t];
        }
    }
    *at_x = best;
    return v;
}

extern "C" __global__ void __launch_bounds__(PC_BLOCK) pc_merge_fwd_f32(PcMerge p) {
    const int oh = p.h / p.stride, ow = p.w / p.stride, cpk = p.c / p.k;
    const unsigned ohw = static_cast<unsigned>(oh) * ow, uc = static_cast<unsigned>(p.c);
    const unsigned total = static_cast<unsigned>(p.n) * uc * ohw;
    const float s = *p.s;
    for (unsigned idx = blockIdx.x * blockDim.x + threadIdx.x; idx < total; idx += blockDim.x * gridDim.x) {
        const unsigned pix = idx % ohw, t = idx / ohw;
        const int o = static_cast<int>(t % uc), ni = static_cast<int>(t / uc);
        const int q = (o % p.k) * cpk + o / p.k;
        int at;
        const float v = pc_value(p, ni, q, static_cast<int>(pix / ow), static_cast<int>(pix % ow), &at);
        const float sv = s * v;
        p.y[idx] = p.acc ? p.acc[idx] + sv : sv;
    }
}

extern "C" __global__ void __launch_bounds__(PC_BLOCK) pc_merge_bwd_f32(PcMerge p) {
    __shared__ float warp_s[PC_BLOCK / 32];
    const int oh = p.h / p.stride, ow = p.w / p.stride, cpk = p.c / p.k;
    const unsigned ohw = static_cast<unsigned>(oh) * ow, uc = static_cast<unsigned>(p.c);
    const unsigned total = static_cast<unsigned>(p.n) * uc * ohw;
    const float s = *p.s;
    float part = 0.0f;
    for (unsigned idx = blockIdx.x * blockDim.x + threadIdx.x; idx < total; idx += blockDim.x * gridDim.x) {
        const unsigned pix = idx % ohw, t = idx / ohw;
        const int q = static_cast<int>(t % uc), ni = static_cast<int>(t / uc);
        const int i = static_cast<int>(pix / ow), j = static_cast<int>(pix % ow);
        const int o = (q % cpk) * p.k + q / cpk;
        const float d = p.dy[(static_cast<size_t>(ni) * p.c + o) * ohw + pix];
        int at;
        const float v = pc_value(p, ni, q, i, j, &at);
        part += d * v;
        if (q < cpk) {
            if (p.dm) p.dm[(static_cast<size_t>(ni) * cpk + q) * ohw + pix] = s * d;
        } else if (p.dx) {
            if (p.stride == 1) {
                p.dx[at] = s * d;
            } else {
                const int tl = static_cast<int>((static_cast<size_t>(ni) * (p.c - cpk) + (q - cpk)) * p.h * p.w +
                                                static_cast<size_t>(2 * i) * p.w + 2 * j);
                p.dx[tl] = tl == at ? s * d : 0.0f;
                p.dx[tl + 1] = tl + 1 == at ? s * d : 0.0f;
                p.dx[tl + p.w] = tl + p.w == at ? s * d : 0.0f;
                p.dx[tl + p.w + 1] = tl + p.w + 1 == at ? s * d : 0.0f;
            }
        }
    }
    const float total_part = block_sum(part, warp_s);
    if (threadIdx.x == 0) p.partials[blockIdx.x] = total_part;
}

extern "C" __global__ void __launch_bounds__(PC_BLOCK) pc_merge_ds_f32(PcMerge p) {
    if (threadIdx.x != 0 || blockIdx.x != 0 || !p.dgrad) return;
    float ds = 0.0f;
    for (int b = 0; b < p.nparts; ++b) ds += p.partials[b];
    for (int i = 0; i < p.len; ++i) p.dgrad[i] = i == p.index ? ds : 0.0f;
}

extern "C" __global__ void __launch_bounds__(32) node_softmax_fwd_f32(NodeSoftmax p) {
    const int i = static_cast<int>(threadIdx.x);
    if (i >= p.steps) return;
    const int off = i * (i + 3) / 2, len = i + 2;
    float mx = p.beta[off];
    for (int t = 1; t < len; ++t) mx = fmaxf(mx, p.beta[off + t]);
    float total = 0.0f;
    for (int t = 0; t < len; ++t) {
        const float e = expf(p.beta[off + t] - mx);
        p.out[off + t] = e;
        total += e;
    }
    for (int t = 0; t < len; ++t) p.out[off + t] /= total;
}

extern "C" __global__ void __launch_bounds__(32) node_softmax_bwd_f32(NodeSoftmax p) {
    const int i = static_cast<int>(threadIdx.x);
    if (i >= p.steps) return;
    const int off = i * (i + 3) / 2, len = i + 2;
    float dot = 0.0f;
    for (int t = 0; t < len; ++t) dot += p.y[off + t] * p.dy[off + t];
    for (int t = 0; t < len; ++t) p.out[off + t] = p.y[off + t] * (p.dy[off + t] - dot);
}
