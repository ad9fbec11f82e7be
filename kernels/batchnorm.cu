/*
Batch normalisation (f32) over x [n, c, hw] (NCHW with hw = H*W; a 2-D [n, c] input has hw = 1),
per channel ch over its m = n*hw values x[(b*c + ch)*hw + s], b < n, s < hw.

  statistics  mean[ch] = (1/m) sum x,  var[ch] = (1/m) sum (x - mean)^2   (biased)
  train fwd   invstd = 1 / sqrt(var + eps),  y = (x - mean) * (gamma * invstd) + beta
  running     rmean = (1 - mom) rmean + mom mean,  rvar = (1 - mom) rvar + mom var * m/(m-1)
              (var recovered in double from invstd as max(1/invstd^2 - eps, 0); m = 1 uses var)
  eval fwd    y = (x - rmean) * (gamma / sqrt(rvar + eps)) + beta
  train bwd   xhat = (x - mean) invstd,  dbeta = sum dy,  dgamma = sum dy xhat,
              dx = gamma invstd (dy - dbeta/m - xhat dgamma/m)
  eval bwd    dx = dy gamma / sqrt(rvar + eps); dgamma, dbeta as above with the running stats
gamma / beta may be null (no affine: gamma = 1, beta = 0); dgamma / dbeta may be null (skipped).
These are the semantics of src/backend/cpu/batchnorm.rs.

Work split (every reduction is two-pass and deterministic, no atomics):
  A channel's m values are cut into nchunks chunks of `chunk` consecutive values (j = b*hw + s
  order), chunk a multiple of BN_GROUP = 1024 chosen by the host from the shape alone: with
  G = ceil(m/1024) groups per channel, chunk = 1024 * clamp(max(G*c / 1024, ceil(G / 256)), 1, G)
  and nchunks = max(1, ceil(m/chunk)) <= 256: one group per thread up to about 1024 blocks per
  launch (one wave of 8 blocks per SM on an H100/H200), more groups per thread beyond, which
  amortises each block's reduction tail (1.3-2x faster on 16 MB tensors on an H200).
  The chunk kernels run on grid = (nchunks, c) with block = BN_BLOCK = 256 threads (required,
  __launch_bounds__(256, 8): at most 32 registers, full occupancy; static shared memory is
  sized for it): block (k, ch) handles chunk k of channel ch. Thread t takes groups of BN_ITEMS = 4 values j = j0 + t + 256 i (i < 4, so
  warps read 32 consecutive floats of a plane; 4 independent loads in flight per thread), then
  the next group 1024 further on. (b, s) is advanced incrementally, no division per element.
  At DARTS shapes (batch 64, 32x32: m = 65536) a channel is 64 blocks, so C = 16 gives 1024
  blocks; a 2-D input (hw = 1) reads with stride c (uncoalesced, but tiny).

  Statistics without cancellation: every value is shifted by the channel's first element
  K = x[ch*hw] (exact for values within a factor 2 of K, so a 1e4 offset costs nothing), and
  the moments of v = x - K are merged as (count, mean, M2) triples:
    - per group: two-pass in registers (mean_g = sum v / g, M2_g = sum (v - mean_g)^2),
    - groups of a thread, lanes of a warp (__shfl_down_sync tree 16, 8, 4, 2, 1), the 8 warps
      of a block (warp 0, shuffle tree 4, 2, 1), and chunks of a channel: Chan's formula
        n = na + nb, d = mb - ma, mean = ma + d nb/n, M2 = Ma + Mb + d^2 na nb/n
      (nb/n taken as exactly 0.5 when na = nb, the usual case, so the trees need no division).
  The block partial (mean_k, M2_k) of chunk k goes to partial[2 (ch*nchunks + k) + {0,1}]; its
  count is min(chunk, m - k chunk), recomputed by the reader. The final merge of a channel is
  done by one warp (lane l merges chunks l, l+32, ... in order, then the shuffle tree).
  bn_fwd_train_norm_f32 does that final merge itself in warp 0 of every block (all blocks of a
  channel compute identical bits; block (0, ch) writes mean/invstd), then normalises its chunk
  with y = ((x - K) - mean_v) * (gamma invstd) + beta: the shifted mean keeps full precision
  even when |mean| >> std. So training forward is two launches.
  Backward sums (sum dy, sum dy xhat) use the same chunks: sequential per thread (fmaf), shuffle
  tree, warps in order, then the channel's chunks in a fixed order by one warp.

Kernels (all extern "C", f32, sizes as int, every length < 2^31; float counts are exact for
m < 2^24):
  bn_stats_partial_f32(x, n, c, hw, chunk, partial)                 grid (nchunks, c)
  bn_stats_final_f32(x, partial, n, c, hw, chunk, nchunks, mean, var)
                                                   grid ceil(c/8), one warp per channel
  bn_fwd_train_norm_f32(x, gamma, beta, eps, n, c, hw, chunk, partial, y, mean, invstd)
                                                   grid (nchunks, c), after bn_stats_partial_f32
  bn_update_running_f32(mean, invstd, eps, momentum, c, m, rmean, rvar)
                                                   grid ceil(c/256), any 1-D block
  bn_invstd_f32(var, eps, c, invstd)             invstd = 1 / sqrt(var + eps) per channel (the
                                                   normalise-on-load sep-conv stage's scale, from the
                                                   batch or the running variance); grid ceil(c/256)
  bn_fwd_eval_f32(x, gamma, beta, rmean, rvar, eps, n, c, hw, chunk, y)    grid (nchunks, c)
  bn_bwd_train_partial_f32(x, dy, mean, invstd, n, c, hw, chunk, partial)  grid (nchunks, c)
  bn_bwd_train_dx_f32(x, dy, mean, invstd, gamma, n, c, hw, chunk, partial, dx, dgamma, dbeta)
                                                   grid (nchunks, c), after the partial pass;
                                                   mean null in both: x is the output x̂ itself
                                                   (a non-affine BN that kept its output), whose
                                                   dx = invstd (dy - mean dy - x̂ mean(dy x̂))
  bn_bwd_eval_f32(dy, x, rmean, rvar, gamma, eps, n, c, hw, chunk, dx, partial)
                                                   grid (nchunks, c); partial null: dx only
  bn_bwd_sums_final_f32(partial, c, nchunks, dgamma, dbeta)
                                                   grid ceil(c/8), one warp per channel
  bn_bwd_train_partial_slots_f32(BnBwdSlots), bn_bwd_train_dx_slots_f32(BnBwdSlots)
                                                   grid (nchunks, c, slots), slots <= BN_SLOTS = 4:
                                                   the non-affine training backward of up to 4
                                                   same-shaped BNs (an edge's candidates) in two
                                                   launches; block (k, ch, s) is block (k, ch) of
                                                   the one-slot kernels on slot s's pointers (one
                                                   parameter struct, shared with launch/batchnorm.rs),
                                                   so each slot's bits equal the one-slot launch's
Static shared memory at most 96 bytes, no dynamic shared memory. `partial` holds 2*c*nchunks
floats. c <= 65535 (gridDim.y). Outputs must not alias inputs (y may not alias x).
Determinism: every sum and merge is in an order fixed by (n, c, hw, chunk), so results are
bitwise identical for every schedule and device; products that feed a sum are explicit fmaf
and divisions/square roots are IEEE, so an H200 reproduced the emulator bit for bit on every
test case.
Measured on an H200 (us per call through the Rust wrappers, launch overhead included; a
device-to-device copy of the same tensor for scale):
  [64, 16, 32x32] (4 MB)    copy 5.4  train fwd 11.1  train bwd 10.2  eval fwd 4.9
  [256, 16, 32x32] (16 MB)  copy 6.7  train fwd 18.5  train bwd 21.7  eval fwd 8.1  (~2.7, 3.9,
                            4.2 TB/s of the 3, 5 and 2 tensor passes)
*/
#define BN_BLOCK 256
#define BN_WARPS (BN_BLOCK / 32)
#define BN_ITEMS 4
#define BN_GROUP (BN_BLOCK * BN_ITEMS)
#define BN_MIN_BLOCKS 8  // chunk kernels: <= 32 registers, 8 blocks (2048 threads) per SM

// Shape of one launch, as unsigned, derived from the int arguments.
struct BnGeo {
    unsigned c, hw, m, chunk;
    unsigned plane;   // c*hw: distance between images of a channel
    unsigned adv_s;   // BN_BLOCK % hw
    unsigned adv_bp;  // (BN_BLOCK / hw) * plane
};

// Thread cursor over its values of one chunk: value j sits at base + s.
struct BnCursor {
    unsigned j, end, base, s;
};

// (count, mean, M2) of a set of shifted values.
struct BnMoments {
    float n, mean, m2;
};

static __device__ __forceinline__ unsigned bn_umin(unsigned a, unsigned b) { return a < b ? a : b; }

static __device__ __forceinline__ BnGeo bn_geo(int n, int c, int hw, int chunk) {
    BnGeo g;
    g.c = c > 0 ? static_cast<unsigned>(c) : 0u;
    g.hw = hw > 0 ? static_cast<unsigned>(hw) : 0u;
    g.m = n > 0 ? static_cast<unsigned>(n) * g.hw : 0u;
    g.chunk = chunk > 0 ? static_cast<unsigned>(chunk) : 1u;
    g.plane = g.c * g.hw;
    g.adv_s = g.hw ? BN_BLOCK % g.hw : 0u;
    g.adv_bp = g.hw ? (BN_BLOCK / g.hw) * g.plane : 0u;
    return g;
}

// The channel's shift K: its first value (0 for an empty channel).
static __device__ __forceinline__ float bn_shift(const float* __restrict__ x, const BnGeo& g, unsigned ch) {
    return g.m ? x[ch * g.hw] : 0.0f;
}

// Cursor of thread t in chunk k of channel ch.
static __device__ __forceinline__ BnCursor bn_cursor(const BnGeo& g, unsigned ch, unsigned k, unsigned t) {
    BnCursor q;
    const unsigned j0 = k * g.chunk;
    q.j = j0 + t;
    q.end = j0 < g.m ? bn_umin(g.m - j0, g.chunk) + j0 : j0;
    const unsigned b = g.hw ? q.j / g.hw : 0u;
    q.s = g.hw ? q.j - b * g.hw : 0u;
    q.base = (b * g.c + ch) * g.hw;
    return q;
}

// Addresses of the thread's next BN_ITEMS values; returns how many are in the chunk (they are
// a prefix: a[i] is valid for i < return value). Advances the cursor past the group.
static __device__ __forceinline__ unsigned bn_group(BnCursor& q, const BnGeo& g, unsigned* a) {
    unsigned valid = 0;
    for (int i = 0; i < BN_ITEMS; ++i) {
        a[i] = q.base + q.s;
        valid += q.j < q.end ? 1u : 0u;
        q.j += BN_BLOCK;
        q.s += g.adv_s;
        q.base += g.adv_bp;
        if (q.s >= g.hw) {
            q.s -= g.hw;
            q.base += g.plane;
        }
    }
    return valid;
}

// Chan's merge of two moment triples (an empty side returns the other unchanged). Equal counts
// (every merge of full groups, lanes, warps and chunks) take r = nb/n = 0.5 without a division:
// the same bits as the division, so results do not change, only the latency of the tree.
static __device__ __forceinline__ BnMoments bn_merge(BnMoments a, BnMoments b) {
    if (b.n == 0.0f) return a;
    if (a.n == 0.0f) return b;
    BnMoments o;
    o.n = a.n + b.n;
    const float d = b.mean - a.mean;
    const float r = a.n == b.n ? 0.5f : b.n / o.n;
    o.mean = fmaf(d, r, a.mean);
    o.m2 = fmaf(d * d, a.n * r, a.m2 + b.m2);
    return o;
}

// Merge over the 32 lanes (fixed tree); valid in lane 0. Every lane must call it.
static __device__ __forceinline__ BnMoments bn_warp_merge(BnMoments a) {
    for (int off = 16; off > 0; off >>= 1) {
        BnMoments b;
        b.n = __shfl_down_sync(0xffffffffu, a.n, off);
        b.mean = __shfl_down_sync(0xffffffffu, a.mean, off);
        b.m2 = __shfl_down_sync(0xffffffffu, a.m2, off);
        a = bn_merge(a, b);
    }
    return a;
}

// Merge over the block (lanes, then the BN_WARPS warp results by warp 0 in a fixed shuffle tree
// 4, 2, 1); valid in thread 0. Every thread must call it; blockDim.x must be BN_BLOCK.
static __device__ __forceinline__ BnMoments bn_block_merge(BnMoments a, BnMoments* warp_m) {
    a = bn_warp_merge(a);
    const unsigned lane = threadIdx.x & 31u;
    if (lane == 0) warp_m[threadIdx.x >> 5] = a;
    __syncthreads();
    if (threadIdx.x < 32) {
        const BnMoments empty = {0.0f, 0.0f, 0.0f};
        a = lane < BN_WARPS ? warp_m[lane] : empty;
        for (int off = BN_WARPS / 2; off > 0; off >>= 1) {
            BnMoments b;
            b.n = __shfl_down_sync(0xffffffffu, a.n, off);
            b.mean = __shfl_down_sync(0xffffffffu, a.mean, off);
            b.m2 = __shfl_down_sync(0xffffffffu, a.m2, off);
            a = bn_merge(a, b);
        }
    }
    return a;
}

// Sum over the 32 lanes (fixed tree); valid in lane 0.
static __device__ __forceinline__ float bn_warp_sum(float v) {
    for (int off = 16; off > 0; off >>= 1) v += __shfl_down_sync(0xffffffffu, v, off);
    return v;
}

// Block sums of (a, b); valid in thread 0. Every thread must call it.
static __device__ __forceinline__ void bn_block_sum2(float& a, float& b, float (*warp_s)[BN_WARPS]) {
    a = bn_warp_sum(a);
    b = bn_warp_sum(b);
    if ((threadIdx.x & 31u) == 0) {
        warp_s[0][threadIdx.x >> 5] = a;
        warp_s[1][threadIdx.x >> 5] = b;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        a = warp_s[0][0];
        b = warp_s[1][0];
        for (unsigned w = 1; w < (blockDim.x >> 5); ++w) {
            a += warp_s[0][w];
            b += warp_s[1][w];
        }
    }
}

// Moments of channel ch from its chunk partials, by one whole warp; valid in lane 0.
static __device__ __forceinline__ BnMoments bn_channel_moments(const float* __restrict__ partial, unsigned ch,
                                                               unsigned nchunks, const BnGeo& g) {
    const float* p = partial + 2u * ch * nchunks;
    BnMoments a = {0.0f, 0.0f, 0.0f};
    for (unsigned k = threadIdx.x & 31u; k < nchunks; k += 32) {
        const unsigned j0 = k * g.chunk;
        BnMoments b;
        b.n = static_cast<float>(j0 < g.m ? bn_umin(g.m - j0, g.chunk) : 0u);
        b.mean = p[2 * k];
        b.m2 = p[2 * k + 1];
        a = bn_merge(a, b);
    }
    return bn_warp_merge(a);
}

// (sum dy, sum dy xhat) of channel ch from its chunk partials, by one whole warp; valid in lane 0.
static __device__ __forceinline__ void bn_channel_sums(const float* __restrict__ partial, unsigned ch,
                                                       unsigned nchunks, float& s1, float& s2) {
    const float* p = partial + 2u * ch * nchunks;
    s1 = 0.0f;
    s2 = 0.0f;
    for (unsigned k = threadIdx.x & 31u; k < nchunks; k += 32) {
        s1 += p[2 * k];
        s2 += p[2 * k + 1];
    }
    s1 = bn_warp_sum(s1);
    s2 = bn_warp_sum(s2);
}

extern "C" __global__ void __launch_bounds__(BN_BLOCK, BN_MIN_BLOCKS)
    bn_stats_partial_f32(const float* __restrict__ x, int n, int c, int hw, int chunk, float* __restrict__ partial) {
    __shared__ BnMoments warp_m[BN_WARPS];
    const BnGeo g = bn_geo(n, c, hw, chunk);
    const unsigned ch = blockIdx.y;
    const float shift = bn_shift(x, g, ch);
    BnMoments acc = {0.0f, 0.0f, 0.0f};
    for (BnCursor q = bn_cursor(g, ch, blockIdx.x, threadIdx.x); q.j < q.end;) {
        unsigned a[BN_ITEMS];
        const unsigned cnt = bn_group(q, g, a);  // >= 1: the loop test saw the first value
        float v[BN_ITEMS];
        for (int i = 0; i < BN_ITEMS; ++i) v[i] = static_cast<unsigned>(i) < cnt ? x[a[i]] - shift : 0.0f;
        BnMoments grp;
        grp.n = static_cast<float>(cnt);
        float sum = v[0];
        for (int i = 1; i < BN_ITEMS; ++i) sum += v[i];  // the padding is +0
        grp.mean = cnt == BN_ITEMS ? sum * (1.0f / BN_ITEMS) : sum / grp.n;  // same bits as sum / 4
        grp.m2 = 0.0f;
        for (int i = 0; i < BN_ITEMS; ++i) {
            if (static_cast<unsigned>(i) < cnt) {
                const float d = v[i] - grp.mean;
                grp.m2 = fmaf(d, d, grp.m2);
            }
        }
        acc = bn_merge(acc, grp);
    }
    acc = bn_block_merge(acc, warp_m);
    if (threadIdx.x == 0) {
        const unsigned slot = ch * gridDim.x + blockIdx.x;
        partial[2 * slot] = acc.mean;
        partial[2 * slot + 1] = acc.m2;
    }
}

extern "C" __global__ void __launch_bounds__(BN_BLOCK)
    bn_stats_final_f32(const float* __restrict__ x, const float* __restrict__ partial, int n, int c, int hw,
                       int chunk, int nchunks, float* __restrict__ mean, float* __restrict__ var) {
    const BnGeo g = bn_geo(n, c, hw, chunk);
    const unsigned ch = blockIdx.x * BN_WARPS + (threadIdx.x >> 5);
    if (ch >= g.c) return;  // whole warp; no barriers in this kernel
    const BnMoments t = bn_channel_moments(partial, ch, nchunks > 0 ? static_cast<unsigned>(nchunks) : 0u, g);
    if ((threadIdx.x & 31u) == 0) {
        mean[ch] = bn_shift(x, g, ch) + t.mean;
        var[ch] = t.n > 0.0f ? t.m2 / t.n : 0.0f;
    }
}

extern "C" __global__ void __launch_bounds__(BN_BLOCK, BN_MIN_BLOCKS)
    bn_fwd_train_norm_f32(const float* __restrict__ x, const float* __restrict__ gamma,
                          const float* __restrict__ beta, float eps, int n, int c, int hw, int chunk,
                          const float* __restrict__ partial, float* __restrict__ y, float* __restrict__ mean,
                          float* __restrict__ invstd) {
    __shared__ float stat[2];
    const BnGeo g = bn_geo(n, c, hw, chunk);
    const unsigned ch = blockIdx.y;
    const float shift = bn_shift(x, g, ch);
    if (threadIdx.x < 32) {  // warp 0 (uniform per warp) merges the channel's chunk partials
        const BnMoments t = bn_channel_moments(partial, ch, gridDim.x, g);
        if (threadIdx.x == 0) {
            const float v = t.n > 0.0f ? t.m2 / t.n : 0.0f;
            const float s = 1.0f / sqrtf(v + eps);
            stat[0] = t.mean;
            stat[1] = s;
            if (blockIdx.x == 0) {
                mean[ch] = shift + t.mean;
                invstd[ch] = s;
            }
        }
    }
    __syncthreads();
    const float mean_v = stat[0], s = stat[1];
    const float k = gamma != nullptr ? s * gamma[ch] : s;
    const float b = beta != nullptr ? beta[ch] : 0.0f;
    for (BnCursor q = bn_cursor(g, ch, blockIdx.x, threadIdx.x); q.j < q.end;) {
        unsigned a[BN_ITEMS];
        const unsigned cnt = bn_group(q, g, a);
        float v[BN_ITEMS];
        for (int i = 0; i < BN_ITEMS; ++i) v[i] = static_cast<unsigned>(i) < cnt ? x[a[i]] : 0.0f;
        for (int i = 0; i < BN_ITEMS; ++i) {
            if (static_cast<unsigned>(i) < cnt) y[a[i]] = fmaf((v[i] - shift) - mean_v, k, b);
        }
    }
}

extern "C" __global__ void bn_invstd_f32(const float* __restrict__ var, float eps, int c,
                                         float* __restrict__ invstd) {
    const unsigned uc = c > 0 ? static_cast<unsigned>(c) : 0u;
    for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < uc; i += blockDim.x * gridDim.x)
        invstd[i] = 1.0f / sqrtf(var[i] + eps);
}

extern "C" __global__ void bn_update_running_f32(const float* __restrict__ mean, const float* __restrict__ invstd,
                                                 float eps, float momentum, int c, int m,
                                                 float* __restrict__ running_mean,
                                                 float* __restrict__ running_var) {
    const unsigned uc = c > 0 ? static_cast<unsigned>(c) : 0u;
    const double bessel = m > 1 ? static_cast<double>(m) / static_cast<double>(m - 1) : 1.0;
    const float keep = 1.0f - momentum;
    for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < uc; i += blockDim.x * gridDim.x) {
        const double s = static_cast<double>(invstd[i]);
        const double var_biased = fmax(1.0 / (s * s) - static_cast<double>(eps), 0.0);
        const float var_unbiased = static_cast<float>(var_biased * bessel);
        // Two rounded products, then the add (as the CPU backend in f32; no contraction).
        running_mean[i] = __fadd_rn(__fmul_rn(keep, running_mean[i]), __fmul_rn(momentum, mean[i]));
        running_var[i] = __fadd_rn(__fmul_rn(keep, running_var[i]), __fmul_rn(momentum, var_unbiased));
    }
}

extern "C" __global__ void __launch_bounds__(BN_BLOCK, BN_MIN_BLOCKS)
    bn_fwd_eval_f32(const float* __restrict__ x, const float* __restrict__ gamma, const float* __restrict__ beta,
                    const float* __restrict__ running_mean, const float* __restrict__ running_var, float eps, int n,
                    int c, int hw, int chunk, float* __restrict__ y) {
    const BnGeo g = bn_geo(n, c, hw, chunk);
    const unsigned ch = blockIdx.y;
    const float s = 1.0f / sqrtf(running_var[ch] + eps);
    const float k = gamma != nullptr ? s * gamma[ch] : s;
    const float b = beta != nullptr ? beta[ch] : 0.0f;
    const float mu = running_mean[ch];
    for (BnCursor q = bn_cursor(g, ch, blockIdx.x, threadIdx.x); q.j < q.end;) {
        unsigned a[BN_ITEMS];
        const unsigned cnt = bn_group(q, g, a);
        float v[BN_ITEMS];
        for (int i = 0; i < BN_ITEMS; ++i) v[i] = static_cast<unsigned>(i) < cnt ? x[a[i]] : 0.0f;
        for (int i = 0; i < BN_ITEMS; ++i) {
            if (static_cast<unsigned>(i) < cnt) y[a[i]] = fmaf(v[i] - mu, k, b);
        }
    }
}

// Block (blockIdx.x = chunk, blockIdx.y = channel) of the training backward's partial pass:
// (sum dy, sum dy xhat) of its chunk into partial[2 (ch * gridDim.x + chunk) + {0, 1}].
static __device__ __forceinline__ void bn_bwd_train_partial_block(const float* __restrict__ x,
                                                                  const float* __restrict__ dy,
                                                                  const float* __restrict__ mean,
                                                                  const float* __restrict__ invstd, const BnGeo& g,
                                                                  float* __restrict__ partial,
                                                                  float (*warp_s)[BN_WARPS]) {
    const unsigned ch = blockIdx.y;
    // mean null: x is x̂ itself (a non-affine BN's output), so x̂ = x (mu 0, scale 1).
    const float mu = mean != nullptr ? mean[ch] : 0.0f, s = mean != nullptr ? invstd[ch] : 1.0f;
    float s1 = 0.0f, s2 = 0.0f;
    for (BnCursor q = bn_cursor(g, ch, blockIdx.x, threadIdx.x); q.j < q.end;) {
        unsigned a[BN_ITEMS];
        const unsigned cnt = bn_group(q, g, a);
        float xv[BN_ITEMS], gv[BN_ITEMS];
        for (int i = 0; i < BN_ITEMS; ++i) {
            const bool ok = static_cast<unsigned>(i) < cnt;
            xv[i] = ok ? x[a[i]] : 0.0f;
            gv[i] = ok ? dy[a[i]] : 0.0f;
        }
        for (int i = 0; i < BN_ITEMS; ++i) {
            if (static_cast<unsigned>(i) < cnt) {
                s1 += gv[i];
                s2 = fmaf(gv[i], (xv[i] - mu) * s, s2);
            }
        }
    }
    bn_block_sum2(s1, s2, warp_s);
    if (threadIdx.x == 0) {
        const unsigned slot = ch * gridDim.x + blockIdx.x;
        partial[2 * slot] = s1;
        partial[2 * slot + 1] = s2;
    }
}

// Block (chunk, channel) of the training backward's dx pass, after the partial pass.
static __device__ __forceinline__ void bn_bwd_train_dx_block(const float* __restrict__ x,
                                                             const float* __restrict__ dy,
                                                             const float* __restrict__ mean,
                                                             const float* __restrict__ invstd,
                                                             const float* __restrict__ gamma, const BnGeo& g,
                                                             const float* __restrict__ partial,
                                                             float* __restrict__ dx, float* __restrict__ dgamma,
                                                             float* __restrict__ dbeta, float* stat) {
    const unsigned ch = blockIdx.y;
    if (threadIdx.x < 32) {  // warp 0 (uniform per warp) sums the channel's chunk partials
        float t1, t2;
        bn_channel_sums(partial, ch, gridDim.x, t1, t2);
        if (threadIdx.x == 0) {
            const float mf = static_cast<float>(g.m > 1u ? g.m : 1u);
            stat[0] = t1 / mf;
            stat[1] = t2 / mf;
            if (blockIdx.x == 0) {
                if (dgamma != nullptr) dgamma[ch] = t2;
                if (dbeta != nullptr) dbeta[ch] = t1;
            }
        }
    }
    __syncthreads();
    const float mean_dy = stat[0], mean_dy_xhat = stat[1];
    // mean null: x is x̂ (mu 0, scale 1 on x), and dx still carries invstd.
    const float mu = mean != nullptr ? mean[ch] : 0.0f, sx = mean != nullptr ? invstd[ch] : 1.0f;
    const float s = invstd[ch];
    const float k = gamma != nullptr ? gamma[ch] * s : s;
    for (BnCursor q = bn_cursor(g, ch, blockIdx.x, threadIdx.x); q.j < q.end;) {
        unsigned a[BN_ITEMS];
        const unsigned cnt = bn_group(q, g, a);
        float xv[BN_ITEMS], gv[BN_ITEMS];
        for (int i = 0; i < BN_ITEMS; ++i) {
            const bool ok = static_cast<unsigned>(i) < cnt;
            xv[i] = ok ? x[a[i]] : 0.0f;
            gv[i] = ok ? dy[a[i]] : 0.0f;
        }
        for (int i = 0; i < BN_ITEMS; ++i) {
            if (static_cast<unsigned>(i) < cnt) {
                const float xhat = (xv[i] - mu) * sx;
                dx[a[i]] = k * fmaf(-xhat, mean_dy_xhat, gv[i] - mean_dy);
            }
        }
    }
}

extern "C" __global__ void __launch_bounds__(BN_BLOCK, BN_MIN_BLOCKS)
    bn_bwd_train_partial_f32(const float* __restrict__ x, const float* __restrict__ dy,
                             const float* __restrict__ mean, const float* __restrict__ invstd, int n, int c,
                             int hw, int chunk, float* __restrict__ partial) {
    __shared__ float warp_s[2][BN_WARPS];
    bn_bwd_train_partial_block(x, dy, mean, invstd, bn_geo(n, c, hw, chunk), partial, warp_s);
}

extern "C" __global__ void __launch_bounds__(BN_BLOCK, BN_MIN_BLOCKS)
    bn_bwd_train_dx_f32(const float* __restrict__ x, const float* __restrict__ dy, const float* __restrict__ mean,
                        const float* __restrict__ invstd, const float* __restrict__ gamma, int n, int c, int hw,
                        int chunk, const float* __restrict__ partial, float* __restrict__ dx,
                        float* __restrict__ dgamma, float* __restrict__ dbeta) {
    __shared__ float stat[2];
    bn_bwd_train_dx_block(x, dy, mean, invstd, gamma, bn_geo(n, c, hw, chunk), partial, dx, dgamma, dbeta, stat);
}

// Slotted non-affine training backward: up to BN_SLOTS independent BNs of one shape (an edge's
// candidates) per launch, block z on slot z; each slot runs exactly the one-slot kernels' blocks
// with gamma = dgamma = dbeta = null, so its bits are the same.
#define BN_SLOTS 4

// Shared with src/backend/gpu/launch/batchnorm.rs (#[repr(C)] BnBwdSlots). partial[s] holds the
// slot's 2 * c * nchunks floats. Slots >= the launch's count are never read. Indexed by the slot
// at run time: at 208 bytes nvcc reads it in place (a struct of <= 128 bytes it would copy to a
// local-memory stack frame, see kernels/conv2d.cu), and the 32-register budget holds.
struct BnBwdSlots {
    const float* x[BN_SLOTS];
    const float* dy[BN_SLOTS];
    const float* mean[BN_SLOTS];
    const float* invstd[BN_SLOTS];
    float* partial[BN_SLOTS];
    float* dx[BN_SLOTS];
    int n, c, hw, chunk;
};

extern "C" __global__ void __launch_bounds__(BN_BLOCK, BN_MIN_BLOCKS) bn_bwd_train_partial_slots_f32(BnBwdSlots p) {
    __shared__ float warp_s[2][BN_WARPS];
    const unsigned s = blockIdx.z;
    bn_bwd_train_partial_block(p.x[s], p.dy[s], p.mean[s], p.invstd[s], bn_geo(p.n, p.c, p.hw, p.chunk),
                               p.partial[s], warp_s);
}

extern "C" __global__ void __launch_bounds__(BN_BLOCK, BN_MIN_BLOCKS) bn_bwd_train_dx_slots_f32(BnBwdSlots p) {
    __shared__ float stat[2];
    const unsigned s = blockIdx.z;
    bn_bwd_train_dx_block(p.x[s], p.dy[s], p.mean[s], p.invstd[s], nullptr, bn_geo(p.n, p.c, p.hw, p.chunk),
                          p.partial[s], p.dx[s], nullptr, nullptr, stat);
}

extern "C" __global__ void __launch_bounds__(BN_BLOCK, BN_MIN_BLOCKS)
    bn_bwd_eval_f32(const float* __restrict__ dy, const float* __restrict__ x,
                    const float* __restrict__ running_mean, const float* __restrict__ running_var,
                    const float* __restrict__ gamma, float eps, int n, int c, int hw, int chunk,
                    float* __restrict__ dx, float* __restrict__ partial) {
    __shared__ float warp_s[2][BN_WARPS];
    const BnGeo g = bn_geo(n, c, hw, chunk);
    const unsigned ch = blockIdx.y;
    const float s = 1.0f / sqrtf(running_var[ch] + eps);
    const float k = gamma != nullptr ? s * gamma[ch] : s;
    const float mu = running_mean[ch];
    const bool sums = partial != nullptr;  // uniform over the grid
    float s1 = 0.0f, s2 = 0.0f;
    for (BnCursor q = bn_cursor(g, ch, blockIdx.x, threadIdx.x); q.j < q.end;) {
        unsigned a[BN_ITEMS];
        const unsigned cnt = bn_group(q, g, a);
        float xv[BN_ITEMS], gv[BN_ITEMS];
        for (int i = 0; i < BN_ITEMS; ++i) {
            const bool ok = static_cast<unsigned>(i) < cnt;
            gv[i] = ok ? dy[a[i]] : 0.0f;
            xv[i] = ok && sums ? x[a[i]] : 0.0f;
        }
        for (int i = 0; i < BN_ITEMS; ++i) {
            if (static_cast<unsigned>(i) < cnt) {
                dx[a[i]] = gv[i] * k;
                s1 += gv[i];
                s2 = fmaf(gv[i], (xv[i] - mu) * s, s2);
            }
        }
    }
    if (sums) {
        bn_block_sum2(s1, s2, warp_s);
        if (threadIdx.x == 0) {
            const unsigned slot = ch * gridDim.x + blockIdx.x;
            partial[2 * slot] = s1;
            partial[2 * slot + 1] = s2;
        }
    }
}

extern "C" __global__ void __launch_bounds__(BN_BLOCK)
    bn_bwd_sums_final_f32(const float* __restrict__ partial, int c, int nchunks, float* __restrict__ dgamma,
                          float* __restrict__ dbeta) {
    const unsigned ch = blockIdx.x * BN_WARPS + (threadIdx.x >> 5);
    if (ch >= (c > 0 ? static_cast<unsigned>(c) : 0u)) return;  // whole warp; no barriers here
    float t1, t2;
    bn_channel_sums(partial, ch, nchunks > 0 ? static_cast<unsigned>(nchunks) : 0u, t1, t2);
    if ((threadIdx.x & 31u) == 0) {
        if (dgamma != nullptr) dgamma[ch] = t2;
        if (dbeta != nullptr) dbeta[ch] = t1;
    }
}
