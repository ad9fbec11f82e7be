/*
The fused DARTS mixed op (f32): one edge's eight candidates after their bodies, as one BN-apply
epilogue and one BN-backward reduction.

Every BN inside a search cell is non-affine, so a BN-terminated candidate j (pools,
FactorizedReduce, sep/dil convs) outputs x̂_j = (z_j − μ_j)·rstd_j of its pre-BN output z_j, and
the edge is a BN apply with a scalar gain per candidate:

  w        = softmax(alpha_row) (DARTS) or sigmoid(alpha_row) elementwise (FairDARTS), computed
           here from device memory. alpha has `cols` ≤ k columns: column c weighs slot
           c + k − cols (FairDARTS: 7 columns, slot 0 `none` absent); lower slots weigh 0.
  y        = acc + Σ_{j normed} w_j (z_j − μ_j) rstd_j + w_s x          (s: the identity slot)
  stats    training: μ_j, rstd_j = 1/sqrt(var_biased + eps) of z_j per channel, and the running
           statistics updated as PyTorch (momentum, unbiased variance); eval: the running ones.
  backward with S_c = Σ dy, T_jc = Σ dy·x̂_j, U_c = Σ dy·x over channel c (M = n·hw values):
  dz_j     = w_j rstd_j (dy − S/M − x̂_j T_j/M)    (training; eval: w_j rstd_j dy)
  dx_s     = w_s dy
  g_j      = Σ_c T_jc (normed), Σ_c U_c (identity), 0 (`none`): ∂L/∂w_j
  dalpha   = w ⊙ (g − Σ_i w_i g_i)  (the softmax backward), or w ⊙ (1 − w) ⊙ g (the sigmoid's),
           over the α columns, written into row `row` of a [rows, cols] gradient that is zero
           elsewhere.
  dscale   PC-DARTS: the edge's output m (no acc) is scaled downstream by s = scale[scale_index]
           (pc_merge), so dy = s·dy_m and ∂L/∂s through m is Σ dy_m·m = (Σ_i w_i g_i)/s (0 when
           s = 0, where softmax's backward zeroes it anyway), written at scale_index of a
           [scale_len] vector that is zero elsewhere: pc_merge need not keep m.

Saved by the forward (the caller keeps them): z_j, μ_j, rstd_j, x, alpha. Recomputed, never
stored: x̂_j, the products w_j x̂_j, w itself. The `none` slot costs nothing.

Kernels and launch shapes (parameters are one struct passed by value, shared with
src/fused/mixed/gpu.rs as #[repr(C)]; pointer slots are indexed by candidate, null = absent):
  mixed_stats_f32(MixedFwd)      grid (c, k), block MIXED_BLOCK = 256 (required); block (ch, j)
                                 reduces channel ch of z_j in two passes (mean, then the centred
                                 sum of squares) and updates its running statistics. When the
                                 kernel that wrote z_j gathered per-tile partials (part[j], from
                                 sepconv.cu's epilogue), it merges those instead (Chan's formula,
                                 2·n·tiles floats read instead of z_j twice).
  mixed_fwd_f32(MixedFwd)        grid-stride over n·c·hw, block 256 (required).
  mixed_bwd_sums_f32(MixedBwd)   grid (c, chunks), block 256 (required): block (ch, q) sums S, T_j,
                                 U of channel ch over its q-th run of the n·hw values into
                                 sums[q][(k + 1) · c] (row j: T_j or U; row k: S). The split keeps a
                                 large GPU busy at small c (c = 16 alone would be 16 blocks); the
                                 host picks chunks from the shape alone (about 256 blocks).
  mixed_bwd_f32(MixedBwd)        grid-stride over n·c·hw, block 256, dynamic shared (k + 1)·c
                                 floats: each block first adds the chunks' partial sums in chunk
                                 order into shared memory (every block the same bits), then dz_j
                                 and dx_s; block 0 also writes dalpha and dscale (when not
                                 null).
Static shared memory at most 3 KiB + 32 bytes (the partials' merge tree); dynamic (k + 1)·c·4 bytes in the backward (≤ 48 KiB: c ≤
1365, checked by the host).
Determinism: every sum runs in an order fixed by the shapes (per thread in index order, then a
fixed shuffle tree and the warps in order, then the chunks in order), so bits do not depend on
scheduling.
Assumptions: contiguous NCHW buffers of n·c·hw floats (< 2^31), c ≤ 65535, 1 ≤ cols ≤ k ≤ 8; outputs do not
alias inputs.
*/
#include "common.cuh"

#define MIXED_K 8
#define MIXED_BLOCK 256
#define MIXED_WARPS (MIXED_BLOCK / 32)

struct MixedFwd {
    const float* z[MIXED_K];
    float* mean[MIXED_K];
    float* invstd[MIXED_K];
    float* rmean[MIXED_K];
    float* rvar[MIXED_K];
    const float* part[MIXED_K];  // per-tile partials of z_j (sepconv.cu's layout), or null
    const float* x;
    const float* acc;
    const float* alpha;
    float* y;
    int n, c, hw, k;
    int skip;
    unsigned normed;
    int training;
    float eps, momentum;
    int ptile;    // pixels per tile of the partials
    int cols;     // α columns (≤ k): column c weighs slot c + k − cols
    int sigmoid;  // 1: w = sigmoid(α) elementwise; 0: softmax(α)
};

struct MixedBwd {
    const float* z[MIXED_K];
    const float* mean[MIXED_K];
    const float* invstd[MIXED_K];
    float* dz[MIXED_K];
    const float* x;
    const float* alpha;
    const float* dy;
    float* sums;
    float* dx_skip;
    float* dalpha;
    const float* scale;  // PC-DARTS' downstream scale vector, or null
    float* dscale;       // [scale_len], or null
    int n, c, hw, k;
    int skip;
    unsigned normed;
    int training;
    int rows, row;
    int chunks;   // runs of n·hw per channel in mixed_bwd_sums_f32
    int cols;     // α columns (≤ k): column c weighs slot c + k − cols
    int sigmoid;  // 1: w = sigmoid(α) elementwise; 0: softmax(α)
    int scale_len, scale_index;
};

// Slot weights of one α row of `cols` columns: slot j ≥ k − cols takes column j − (k − cols),
// w_j = softmax over the columns or sigmoid(α) elementwise; other slots (and slots ≥ k) get 0.
static __device__ __forceinline__ void mixed_weights(const float* __restrict__ alpha, int k, int cols, int sigmoid,
                                                     float* w) {
    const int first = k - cols;
    float m = -3.402823466e38f;
    for (int j = 0; j < MIXED_K; j++)
        if (j >= first && j < k) m = fmaxf(m, alpha[j - first]);
    float s = 0.0f;
    for (int j = 0; j < MIXED_K; j++) {
        const int on = j >= first && j < k;
        if (sigmoid)
            w[j] = on ? 1.0f / (1.0f + expf(-alpha[j - first])) : 0.0f;
        else
            w[j] = on ? expf(alpha[j - first] - m) : 0.0f;
        s += w[j];
    }
    if (!sigmoid)
        for (int j = 0; j < MIXED_K; j++) w[j] = w[j] / s;
}

// block_sum with the total broadcast to every thread.
static __device__ __forceinline__ float mixed_block_sum(float v, float* warp_s) {
    const float t = block_sum(v, warp_s);
    __syncthreads();  // every warp total has been read
    if (threadIdx.x == 0) warp_s[0] = t;
    __syncthreads();
    const float all = warp_s[0];
    __syncthreads();
    return all;
}

static __device__ __forceinline__ int mixed_is_normed(unsigned normed, int j) {
    return (normed >> j) & 1u;
}

// Chan's merge of a partial (count nb, mean mb, centred sum of squares qb) into (na, ma, qa).
static __device__ __forceinline__ void mixed_chan(float& na, float& ma, float& qa, float nb, float mb, float qb) {
    if (nb == 0.0f) return;
    if (na == 0.0f) {
        na = nb, ma = mb, qa = qb;
        return;
    }
    const float n = na + nb, d = mb - ma;
    ma = fmaf(d, nb / n, ma);
    qa = qa + qb + d * d * (na * nb / n);
    na = n;
}

// Mean and biased variance of channel ch from the per-tile partials of sepconv.cu
// (part[ch * nb + b] the tile mean, part[(c + ch) * nb + b] its M2, b = img * tiles + t; tile t
// holds min(ptile, hw - t * ptile) pixels). Thread i merges partials i, i + MIXED_BLOCK, ... in
// order, then a fixed pairwise tree merges the threads: the bits depend on the shapes alone.
// Every thread of the block must call it; the result is valid in thread 0.
static __device__ void mixed_merge_partials(const float* __restrict__ part, int n, int c, unsigned ch,
                                            unsigned hw, unsigned ptile, float* mu, float* var) {
    __shared__ float sn[MIXED_BLOCK], sm[MIXED_BLOCK], sq[MIXED_BLOCK];
    const unsigned tiles = (hw + ptile - 1) / ptile, nb = static_cast<unsigned>(n) * tiles;
    float cn = 0.0f, cm = 0.0f, cq = 0.0f;
    for (unsigned b = threadIdx.x; b < nb; b += MIXED_BLOCK) {
        const unsigned t = b % tiles;
        const float cnt = static_cast<float>(min(ptile, hw - t * ptile));
        mixed_chan(cn, cm, cq, cnt, part[ch * nb + b], part[(static_cast<unsigned>(c) + ch) * nb + b]);
    }
    sn[threadIdx.x] = cn, sm[threadIdx.x] = cm, sq[threadIdx.x] = cq;
    __syncthreads();
    for (unsigned s = MIXED_BLOCK / 2; s > 0; s >>= 1) {
        if (threadIdx.x < s) {
            float a = sn[threadIdx.x], b = sm[threadIdx.x], q = sq[threadIdx.x];
            mixed_chan(a, b, q, sn[threadIdx.x + s], sm[threadIdx.x + s], sq[threadIdx.x + s]);
            sn[threadIdx.x] = a, sm[threadIdx.x] = b, sq[threadIdx.x] = q;
        }
        __syncthreads();
    }
    *mu = sm[0];
    *var = sq[0] / sn[0];
}

extern "C" __global__ void __launch_bounds__(MIXED_BLOCK) mixed_stats_f32(MixedFwd p) {
    __shared__ float warp_s[MIXED_WARPS];
    const int ch = blockIdx.x, j = blockIdx.y;
    if (j >= p.k || !mixed_is_normed(p.normed, j)) return;  // uniform per block
    const unsigned m = static_cast<unsigned>(p.n) * static_cast<unsigned>(p.hw);
    const unsigned hw = static_cast<unsigned>(p.hw);
    const unsigned plane = static_cast<unsigned>(p.c) * hw;
    if (!p.training) {
        if (threadIdx.x == 0) {
            p.mean[j][ch] = p.rmean[j][ch];
            p.invstd[j][ch] = 1.0f / sqrtf(p.rvar[j][ch] + p.eps);
        }
        return;
    }
    float mu, var;
    if (p.part[j]) {
        mixed_merge_partials(p.part[j], p.n, p.c, ch, hw, static_cast<unsigned>(p.ptile), &mu, &var);
    } else {
        const float* __restrict__ z = p.z[j] + static_cast<unsigned>(ch) * hw;
        float s = 0.0f;
        for (unsigned i = threadIdx.x; i < m; i += MIXED_BLOCK) s += z[(i / hw) * plane + i % hw];
        mu = mixed_block_sum(s, warp_s) / static_cast<float>(m);
        float q = 0.0f;
        for (unsigned i = threadIdx.x; i < m; i += MIXED_BLOCK) {
            const float d = z[(i / hw) * plane + i % hw] - mu;
            q = fmaf(d, d, q);
        }
        var = mixed_block_sum(q, warp_s) / static_cast<float>(m);
    }
    if (threadIdx.x == 0) {
        const float rstd = 1.0f / sqrtf(var + p.eps);
        p.mean[j][ch] = mu;
        p.invstd[j][ch] = rstd;
        // The running update of bn_update_running_f32 (variance recovered from rstd in double).
        const double bessel = m > 1 ? static_cast<double>(m) / static_cast<double>(m - 1) : 1.0;
        const double r = static_cast<double>(rstd);
        const double var_biased = fmax(1.0 / (r * r) - static_cast<double>(p.eps), 0.0);
        const float var_unbiased = static_cast<float>(var_biased * bessel);
        const float keep = 1.0f - p.momentum;
        p.rmean[j][ch] = __fadd_rn(__fmul_rn(keep, p.rmean[j][ch]), __fmul_rn(p.momentum, mu));
        p.rvar[j][ch] = __fadd_rn(__fmul_rn(keep, p.rvar[j][ch]), __fmul_rn(p.momentum, var_unbiased));
    }
}

extern "C" __global__ void __launch_bounds__(MIXED_BLOCK) mixed_fwd_f32(MixedFwd p) {
    float w[MIXED_K];
    mixed_weights(p.alpha, p.k, p.cols, p.sigmoid, w);
    const unsigned total = static_cast<unsigned>(p.n) * static_cast<unsigned>(p.c) * static_cast<unsigned>(p.hw);
    const unsigned hw = static_cast<unsigned>(p.hw), c = static_cast<unsigned>(p.c);
    for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < total; i += blockDim.x * gridDim.x) {
        const unsigned ch = (i / hw) % c;
        float y = p.acc ? p.acc[i] : 0.0f;
        for (int j = 0; j < MIXED_K; j++) {
            if (j < p.k && mixed_is_normed(p.normed, j)) {
                const float xhat = (p.z[j][i] - p.mean[j][ch]) * p.invstd[j][ch];
                y = fmaf(w[j], xhat, y);
            } else if (j == p.skip) {
                y = fmaf(w[j], p.x[i], y);
            }
        }
        p.y[i] = y;
    }
}

extern "C" __global__ void __launch_bounds__(MIXED_BLOCK) mixed_bwd_sums_f32(MixedBwd p) {
    __shared__ float warp_s[MIXED_WARPS];
    const unsigned ch = blockIdx.x, q = blockIdx.y;
    const unsigned m = static_cast<unsigned>(p.n) * static_cast<unsigned>(p.hw);
    const unsigned per = (m + static_cast<unsigned>(p.chunks) - 1) / static_cast<unsigned>(p.chunks);
    const unsigned begin = q * per, end = min(m, begin + per);
    const unsigned hw = static_cast<unsigned>(p.hw);
    const unsigned plane = static_cast<unsigned>(p.c) * hw;
    float t[MIXED_K];
    float mu[MIXED_K], rs[MIXED_K];
    for (int j = 0; j < MIXED_K; j++) {
        t[j] = 0.0f;
        const int on = j < p.k && mixed_is_normed(p.normed, j);
        mu[j] = on ? p.mean[j][ch] : 0.0f;
        rs[j] = on ? p.invstd[j][ch] : 0.0f;
    }
    float s = 0.0f;
    for (unsigned i = begin + threadIdx.x; i < end; i += MIXED_BLOCK) {
        const unsigned at = (i / hw) * plane + ch * hw + i % hw;
        const float d = p.dy[at];
        s += d;
        for (int j = 0; j < MIXED_K; j++) {
            if (j < p.k && mixed_is_normed(p.normed, j)) {
                t[j] = fmaf(d, (p.z[j][at] - mu[j]) * rs[j], t[j]);
            } else if (j == p.skip) {
                t[j] = fmaf(d, p.x[at], t[j]);
            }
        }
    }
    const unsigned c = static_cast<unsigned>(p.c);
    float* __restrict__ out = p.sums + q * (static_cast<unsigned>(p.k) + 1) * c;
    const float total_s = mixed_block_sum(s, warp_s);
    if (threadIdx.x == 0) out[static_cast<unsigned>(p.k) * c + ch] = total_s;
    for (int j = 0; j < MIXED_K; j++) {
        if (j >= p.k) break;  // uniform
        const float tj = mixed_block_sum(t[j], warp_s);
        if (threadIdx.x == 0) out[static_cast<unsigned>(j) * c + ch] = tj;
    }
}

#ifndef DARTS_DYN_SMEM
#define DARTS_DYN_SMEM(T, name) extern __shared__ __align__(16) T name[]
#endif

extern "C" __global__ void __launch_bounds__(MIXED_BLOCK) mixed_bwd_f32(MixedBwd p) {
    DARTS_DYN_SMEM(float, sums);
    float w[MIXED_K];
    mixed_weights(p.alpha, p.k, p.cols, p.sigmoid, w);
    const unsigned hw = static_cast<unsigned>(p.hw), c = static_cast<unsigned>(p.c);
    const unsigned total = static_cast<unsigned>(p.n) * c * hw;
    const float inv_m = 1.0f / static_cast<float>(static_cast<unsigned>(p.n) * hw);
    // The chunks' partial sums, added in chunk order (the same bits in every block).
    const unsigned rows_c = (static_cast<unsigned>(p.k) + 1) * c;
    for (unsigned r = threadIdx.x; r < rows_c; r += blockDim.x) {
        float v = p.sums[r];
        for (int q = 1; q < p.chunks; q++) v += p.sums[static_cast<unsigned>(q) * rows_c + r];
        sums[r] = v;
    }
    __syncthreads();
    const float* __restrict__ s_row = sums + static_cast<unsigned>(p.k) * c;
    for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < total; i += blockDim.x * gridDim.x) {
        const unsigned ch = (i / hw) % c;
        const float d = p.dy[i];
        for (int j = 0; j < MIXED_K; j++) {
            if (j < p.k && mixed_is_normed(p.normed, j) && p.dz[j]) {
                const float rs = p.invstd[j][ch];
                float g = d;
                if (p.training) {
                    const float xhat = (p.z[j][i] - p.mean[j][ch]) * rs;
                    g = d - s_row[ch] * inv_m - xhat * (sums[static_cast<unsigned>(j) * c + ch] * inv_m);
                }
                p.dz[j][i] = (w[j] * rs) * g;
            } else if (j == p.skip && p.dx_skip) {
                p.dx_skip[i] = w[j] * d;
            }
        }
    }
    if (blockIdx.x == 0 && threadIdx.x == 0 && (p.dalpha || p.dscale)) {
        float g[MIXED_K];
        float wg = 0.0f;
        for (int j = 0; j < MIXED_K; j++) {
            g[j] = 0.0f;
            if (j < p.k && (mixed_is_normed(p.normed, j) || j == p.skip))
                for (unsigned ch = 0; ch < c; ch++) g[j] += sums[static_cast<unsigned>(j) * c + ch];
            wg = fmaf(w[j], g[j], wg);
        }
        // ∂L/∂α_col: softmax w_j (g_j − Σ w g), sigmoid w_j (1 − w_j) g_j (slot j = col + first).
        const unsigned cols = static_cast<unsigned>(p.cols), first = static_cast<unsigned>(p.k - p.cols);
        if (p.dalpha)
            for (unsigned r = 0; r < static_cast<unsigned>(p.rows); r++)
                for (unsigned col = 0; col < cols; col++) {
                    const unsigned j = col + first;
                    const float d = p.sigmoid ? w[j] * (1.0f - w[j]) * g[j] : w[j] * (g[j] - wg);
                    p.dalpha[r * cols + col] = r == static_cast<unsigned>(p.row) ? d : 0.0f;
                }
        if (p.dscale) {
            const float s = p.scale[p.scale_index];
            const float d = s != 0.0f ? wg / s : 0.0f;
            for (int i = 0; i < p.scale_len; i++) p.dscale[i] = i == p.scale_index ? d : 0.0f;
        }
    }
}
