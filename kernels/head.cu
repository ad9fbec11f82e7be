/*
The classifier head (f32): global average pool, linear layer, softmax cross-entropy, top-1 count.
Mirrors src/backend/cpu/reduce.rs (global_avg_pool_*), linear.rs and loss.rs.

  gap forward     y[pl] = (sum_{s < hw} x[pl, s]) / hw          pl < planes = n * c
  gap backward    dx[pl, s] = dy[pl] * (1 / hw)
  linear          y  = x W^T + b     x [n, fin], W [fout, fin], b [fout], y [n, fout]
                  dx = dy W          dW = dy^T x          db[o] = sum_i dy[i, o]
  xent forward    label smoothing eps in [0, 1] (the reference's CrossEntropyLabelSmooth):
                  targets q_ij = (1 - eps) [j == label_i] + eps / k, row loss = -sum_j q_ij
                  log probs_ij. Per row i of logits z [n, k]: m = max_j z_j, e_j = expf(z_j - m),
                  Z = sum_j e_j, probs_ij = e_j / Z, nll = (m + logf(Z)) - z_{label_i};
                  eps == 0: row loss = nll (no other term, so the unsmoothed bits);
                  eps != 0: row loss = (1 - eps) nll + eps (logf(Z) + (sum_j (m - z_j)) / k),
                            = lse - (1 - eps) z_label - (eps / k) sum_j z_j, written with the
                            non-negative m - z_j so large logits do not cancel;
                  loss[0] = (sum_i row loss) / n
  xent backward   dlogits_ij = (dloss[0] / n) * (probs_ij - ((1 - eps) [j == label_i] + eps / k))
                  (at eps = 0 the target is exactly 1 or 0)
  top-1           correct[0] = #rows whose first maximum (z_j > z_best, scanning j upward)
                  is the label, as a float (exact below 2^24)

LABELS are f32 values in a float device buffer (GpuBuf is f32-only): class c is stored as
(float)c, exact for every c < 2^24. A label that is not an integer in [0, k) makes its row's
loss NaN (so loss[0] is NaN) and its dlogits row NaN, where the CPU backend panics.
loss, dloss and correct are 1-element device buffers: no host round trip in a training step.

Determinism: no atomics anywhere. Every output element is produced by one thread (or one warp,
with a fixed shuffle tree) summing in a fixed order, and cross-row sums (loss, correct) are
taken by a single block in a fixed order, so bits depend only on the shapes and values.

Launch shapes:
  global_avg_pool_fwd_f32   one WARP per plane (lanes stride over hw, shfl_down tree):
                            block = HEAD_BLOCK = 256 (8 planes per block, required: full warps),
                            grid = min(ceil(planes / 8), 65535), grid-stride over planes.
                            DARTS: [64, 256, 8x8] -> 2048 blocks, 2 loads per lane.
  global_avg_pool_bwd_f32   one thread per dx element, grid-stride; block 256,
                            grid = min(ceil(planes*hw / 256), 65535).
  linear_gemm_f32           C[M, N] = sum_k A(m, k) B(k, n) (+ bias[n]) with element strides
                            A(m, k) = a[m*sam + k*sak], B(k, n) = b[k*sbk + n*sbn], C row-major.
                            16x16 output tile per block, block = (16, 16), grid =
                            (ceil(N / 16), ceil(M / 16)); K in steps of 16 through static shared
                            tiles As[16][17], Bs[16][17] (2176 bytes, padded: transposed stores
                            hit distinct banks). Each tile load puts threadIdx.x along the
                            operand's unit-stride axis (decided by sak == 1 / sbn == 1), so every
                            load is coalesced in all three products:
                              forward      M=n,    N=fout, K=fin:  A = x  (fin, 1),  B = W (1, fin)
                              bwd data     M=n,    N=fin,  K=fout: A = dy (fout, 1), B = W (fin, 1)
                              bwd weight   M=fout, N=fin,  K=n:    A = dy^T (1, fout), B = x (fin, 1)
                            One thread per output, fmaf over k in increasing order: the reduction
                            over the batch for dW is sequential and deterministic. No register
                            blocking: the DARTS head is 64 x 256 x 10 (160K MACs); latency, not
                            throughput, bounds it.
  linear_bias_grad_f32      db[o] = sum_i dy[i, o] in increasing i; one thread per o, block 256,
                            grid = ceil(fout / 256) (consecutive o: coalesced rows of dy).
  softmax_xent_fwd_f32      ONE block of 256 threads (required): warp w takes rows w, w+8, ...;
                            lanes stride over the k classes; max, Z (and with eps != 0 the
                            spread sum_j (m - z_j)) by xor-butterfly shuffles (every lane ends
                            with the same bits; eps is uniform, so the branch is too). Lane 0 sums its warp's row
                            losses in row order, thread 0 adds the 8 warp sums in warp order.
                            For DARTS (n = 64..256, k = 10) one block is a few microseconds and
                            saves a second launch; a grid version would suit n in the 10^5s.
  softmax_xent_bwd_f32      one thread per element, grid-stride; block 256, grid = min(ceil(n*k /
                            256), 65535).
  top1_correct_f32          ONE block of 256 threads (required): thread t scans rows t, t+256, ...
                            sequentially (the CPU's first-maximum rule, NaN included); the integer
                            counts are summed by shuffles and the warp sums in warp order.
Assumptions: contiguous buffers, element counts < 2^31; outputs do not alias inputs (probs
may not alias logits); grid.y of linear_gemm_f32 = ceil(M / 16) <= 65535.
*/
#define HEAD_BLOCK 256
#define HEAD_WARPS (HEAD_BLOCK / 32)
#define LIN_TILE 16
#define LIN_THREADS (LIN_TILE * LIN_TILE)

static __device__ __forceinline__ float head_warp_sum_down(float v) {
    for (int off = 16; off > 0; off >>= 1) v += __shfl_down_sync(0xffffffffu, v, off);
    return v;
}

// All 32 lanes end with the same bits (each step adds a pair of values, commutatively).
static __device__ __forceinline__ float head_warp_sum_all(float v) {
    for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
    return v;
}

static __device__ __forceinline__ float head_warp_max_all(float v) {
    for (int off = 16; off > 0; off >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, off));
    return v;
}

// The class index a float label names, or -1 when it is not an integer in [0, k).
static __device__ __forceinline__ int head_label(float l, int k) {
    if (!(l >= 0.0f && l < static_cast<float>(k))) return -1;  // NaN fails too
    const int c = static_cast<int>(l);
    return static_cast<float>(c) == l ? c : -1;
}

extern "C" __global__ void __launch_bounds__(HEAD_BLOCK)
    global_avg_pool_fwd_f32(const float* __restrict__ x, float* __restrict__ y, int planes, int hw) {
    const unsigned lane = threadIdx.x & 31u, warp = threadIdx.x >> 5;
    const unsigned uplanes = planes > 0 ? static_cast<unsigned>(planes) : 0u;
    const unsigned uhw = hw > 0 ? static_cast<unsigned>(hw) : 0u;
    const float denom = static_cast<float>(hw > 0 ? hw : 1);
    const unsigned wpb = blockDim.x >> 5;
    // The plane loop is warp-uniform, so every lane reaches the shuffles.
    for (unsigned pl = blockIdx.x * wpb + warp; pl < uplanes; pl += gridDim.x * wpb) {
        const float* xp = x + static_cast<size_t>(pl) * uhw;
        float acc = 0.0f;
        for (unsigned s = lane; s < uhw; s += 32u) acc += __ldg(xp + s);
        acc = head_warp_sum_down(acc);
        if (lane == 0) y[pl] = acc / denom;
    }
}

extern "C" __global__ void __launch_bounds__(HEAD_BLOCK)
    global_avg_pool_bwd_f32(const float* __restrict__ dy, float* __restrict__ dx, int planes, int hw) {
    if (planes <= 0 || hw <= 0) return;
    const unsigned uhw = static_cast<unsigned>(hw);
    const unsigned total = static_cast<unsigned>(planes) * uhw;
    const float inv = 1.0f / static_cast<float>(hw);
    const unsigned stride = blockDim.x * gridDim.x;
    for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < total; i += stride) {
        dx[i] = __ldg(dy + i / uhw) * inv;
    }
}

extern "C" __global__ void __launch_bounds__(LIN_THREADS)
    linear_gemm_f32(int m, int n, int k, const float* __restrict__ a, int sam, int sak,
                    const float* __restrict__ b, int sbk, int sbn, const float* __restrict__ bias,
                    float* __restrict__ c) {
    __shared__ float As[LIN_TILE][LIN_TILE + 1];  // As[mm][kk]
    __shared__ float Bs[LIN_TILE][LIN_TILE + 1];  // Bs[kk][nn]
    const int tx = static_cast<int>(threadIdx.x), ty = static_cast<int>(threadIdx.y);
    const int m0 = static_cast<int>(blockIdx.y) * LIN_TILE, n0 = static_cast<int>(blockIdx.x) * LIN_TILE;
    // Tile coordinates this thread loads: threadIdx.x runs along the unit-stride axis.
    const int am = sak == 1 ? ty : tx, ak = sak == 1 ? tx : ty;
    const int bk = sbn == 1 ? ty : tx, bn = sbn == 1 ? tx : ty;
    float acc = 0.0f;
    for (int k0 = 0; k0 < k; k0 += LIN_TILE) {
        const int ga_m = m0 + am, ga_k = k0 + ak;
        As[am][ak] = (ga_m < m && ga_k < k)
                         ? __ldg(a + static_cast<size_t>(ga_m) * sam + static_cast<size_t>(ga_k) * sak)
                         : 0.0f;
        const int gb_k = k0 + bk, gb_n = n0 + bn;
        Bs[bk][bn] = (gb_k < k && gb_n < n)
                         ? __ldg(b + static_cast<size_t>(gb_k) * sbk + static_cast<size_t>(gb_n) * sbn)
                         : 0.0f;
        __syncthreads();
        // Zero-padded tiles add exact zeros past k: fmaf(0, 0, acc) == acc.
        for (int q = 0; q < LIN_TILE; ++q) acc = fmaf(As[ty][q], Bs[q][tx], acc);
        __syncthreads();
    }
    const int row = m0 + ty, col = n0 + tx;
    if (row < m && col < n) {
        if (bias != nullptr) acc += __ldg(bias + col);
        c[static_cast<size_t>(row) * n + col] = acc;
    }
}

extern "C" __global__ void __launch_bounds__(HEAD_BLOCK)
    linear_bias_grad_f32(const float* __restrict__ dy, int n, int fout, float* __restrict__ db) {
    const int o = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
    if (o >= fout) return;
    float acc = 0.0f;
    for (int i = 0; i < n; ++i) acc += __ldg(dy + static_cast<size_t>(i) * fout + o);
    db[o] = acc;
}

extern "C" __global__ void __launch_bounds__(HEAD_BLOCK)
    softmax_xent_fwd_f32(const float* __restrict__ logits, const float* __restrict__ labels,
                         float* __restrict__ probs, float* __restrict__ loss, int n, int k, float eps) {
    __shared__ float warp_sums[HEAD_WARPS];
    const unsigned lane = threadIdx.x & 31u, warp = threadIdx.x >> 5;
    const int nwarps = static_cast<int>(blockDim.x >> 5);
    float acc = 0.0f;  // lane 0: this warp's row losses, in row order
    if (k > 0) {
        for (int r = static_cast<int>(warp); r < n; r += nwarps) {  // warp-uniform
            const float* z = logits + static_cast<size_t>(r) * k;
            float* pr = probs + static_cast<size_t>(r) * k;
            float mx = -INFINITY;
            for (int j = static_cast<int>(lane); j < k; j += 32) mx = fmaxf(mx, __ldg(z + j));
            mx = head_warp_max_all(mx);
            float part = 0.0f;
            for (int j = static_cast<int>(lane); j < k; j += 32) {
                const float e = expf(__ldg(z + j) - mx);
                pr[j] = e;
                part += e;
            }
            part = head_warp_sum_all(part);
            float spread = 0.0f;
            if (eps != 0.0f) {
                for (int j = static_cast<int>(lane); j < k; j += 32) spread += mx - __ldg(z + j);
                spread = head_warp_sum_all(spread);
            }
            // Each lane rescales the entries it wrote itself: no barrier needed.
            for (int j = static_cast<int>(lane); j < k; j += 32) pr[j] = pr[j] / part;
            if (lane == 0) {
                const int label = head_label(__ldg(labels + r), k);
                const float ln_z = logf(part);
                float row = label >= 0 ? (mx + ln_z) - __ldg(z + label) : NAN;
                if (eps != 0.0f) row = (1.0f - eps) * row + eps * (ln_z + spread / static_cast<float>(k));
                acc += row;
            }
        }
    }
    if (lane == 0) warp_sums[warp] = acc;
    __syncthreads();
    if (threadIdx.x == 0) {
        float total = warp_sums[0];
        for (int w = 1; w < nwarps; ++w) total += warp_sums[w];
        loss[0] = total / static_cast<float>(n > 0 ? n : 1);
    }
}

extern "C" __global__ void __launch_bounds__(HEAD_BLOCK)
    softmax_xent_bwd_f32(const float* __restrict__ probs, const float* __restrict__ labels,
                         const float* __restrict__ dloss, float* __restrict__ dlogits, int n, int k,
                         float eps) {
    if (n <= 0 || k <= 0) return;
    const unsigned uk = static_cast<unsigned>(k);
    const unsigned total = static_cast<unsigned>(n) * uk;
    const float coef = __ldg(dloss) / static_cast<float>(n);
    const float on = 1.0f - eps, off = eps / static_cast<float>(k);
    const unsigned stride = blockDim.x * gridDim.x;
    for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < total; i += stride) {
        const unsigned r = i / uk;
        const int j = static_cast<int>(i - r * uk);
        const int label = head_label(__ldg(labels + r), k);
        const float target = j == label ? on + off : off;
        dlogits[i] = label >= 0 ? coef * (__ldg(probs + i) - target) : NAN;
    }
}

extern "C" __global__ void __launch_bounds__(HEAD_BLOCK)
    top1_correct_f32(const float* __restrict__ logits, const float* __restrict__ labels,
                     float* __restrict__ correct, int n, int k) {
    __shared__ int warp_counts[HEAD_WARPS];
    const unsigned lane = threadIdx.x & 31u, warp = threadIdx.x >> 5;
    int count = 0;
    if (k > 0) {
        for (int r = static_cast<int>(threadIdx.x); r < n; r += static_cast<int>(blockDim.x)) {
            const float* z = logits + static_cast<size_t>(r) * k;
            int best = 0;
            float bv = __ldg(z);
            for (int j = 1; j < k; ++j) {
                const float v = __ldg(z + j);
                if (v > bv) {
                    best = j;
                    bv = v;
                }
            }
            // A NaN label never equals an index; a label outside [0, k) never matches either.
            if (static_cast<float>(best) == __ldg(labels + r)) ++count;
        }
    }
    for (int off = 16; off > 0; off >>= 1) count += __shfl_down_sync(0xffffffffu, count, off);
    if (lane == 0) warp_counts[warp] = count;
    __syncthreads();
    if (threadIdx.x == 0) {
        const int nwarps = static_cast<int>(blockDim.x >> 5);
        int total = warp_counts[0];
        for (int w = 1; w < nwarps; ++w) total += warp_counts[w];
        correct[0] = static_cast<float>(total);
    }
}
