/*
Fused depthwise -> pointwise forward of a DARTS sep/dil conv stage (f32, NCHW, no bias), up to
SEP_MAX_SLOTS = 4 independent problems (an edge's conv candidates) in ONE launch, the depthwise
output kept on chip (shared memory) instead of a round trip through global memory:

  a[n,ci,ih,iw] = pre_s(x_s[n,ci,ih,iw])     pre_s = max(v, 0), or max((v - mean[ci]) * rstd[ci], 0)
                                             (exactly dw_pre_apply of depthwise.cu; 0 outside the image)
  d[n,ci,oh,ow] = sum_{i<kh, j<kw} dw_s[ci,i,j] * a[n,ci, oh*st - pad + i*dil, ow*st - pad + j*dil]
  y_s[n,co,oh,ow] = sum_{ci<c} pw_s[co,ci] * d[n,ci,oh,ow]                      (pw_s is [c, c, 1, 1])

Only y is written to global memory; d never leaves the block. Optionally (slot pointer `part` not
null) the epilogue also gathers y's BN statistics per block, so that no later pass re-reads y for
them: for every output channel co, over the block's valid pixels (cnt = min(P, oh*ow - t*P)),

  part[co * nb + b]       = mean_b = (sum of y) / cnt           b = img * tiles + t (image-major),
  part[(c + co) * nb + b] = M2_b   = sum of (y - mean_b)^2       nb = n * tiles

both from the accumulators still in registers (two passes over registers, none over memory). The
statistics kernel (mixed_stats_f32) merges the nb partials of a channel with Chan's formula.

Launch shape (sized by launch/sepconv.rs from the shape alone, never from the device):
  grid  = (tiles, n, nslots): block (t, img, s) computes output pixels [t*P, t*P + P) of image img
          (pixels in row-major oh*ow order, a tile may span rows) for every output channel of slot s.
  block = round_up(TP * CG, 32) <= 256 threads (__launch_bounds__(256)), with
          CP = round_up(c, 4) output channels padded to whole groups of 4, CG = CP / 4 groups,
          TP = min(256 / CG, ceil(oh*ow / 4)) threads along the pixels and P = 4 * TP.
  dynamic shared = (c * CP + max(c * P, CP * (TP + 1))) * 4 bytes <= 32 KiB for c <= SEP_MAX_C = 64
  (no opt-in needed):
      Wt[ci][co]  CP floats per row: pw_s transposed, zeros for co >= c (so a float4 of 4 output
                  channels is one aligned broadcast load);
      D[ci][p]    P floats per row: the tile's depthwise outputs; after the GEMM, reused as
                  S[co][l] (rows of TP + 1 floats, the padding against bank conflicts): lane l's
                  partial sum of channel co for the statistics epilogue.
  static shared: SEP_MAX_C floats (the tile means).
Phase 1 (depthwise into D): thread t takes the (ci, p) pairs t, t + blockDim, ... of c*P (p fastest,
  so consecutive threads read neighbouring x pixels and write consecutive D words); each pair sums
  its kh*kw taps (i outer, j inner, fmaf) reading x through the read-only cache with the pre-op
  applied per loaded value. kh = kw in {3, 5} is unrolled at compile time (every DARTS conv); any
  other geometry takes run-time tap loops. Pixels past oh*ow get 0. Then one __syncthreads.
Phase 2 (pointwise GEMM from shared memory): thread t < TP*CG takes pixel lane pl = t % TP and
  channel group g = t / TP and computes a 4 x 4 register block: y[4g + i][pl + j*TP], i, j < 4.
  Per ci: one float4 of Wt (a broadcast: the warp shares g when TP >= 32) and 4 words of D (32
  consecutive words over the warp: no bank conflict), 16 FMAs. Stores: consecutive threads write
  consecutive pixels of a channel plane (coalesced), skipping co >= c and p >= oh*ow.
Phase 3 (statistics, only when part is set; uniform per block): each thread sums its valid pixels
  (j order) per channel into S; thread co adds S[co][0..TP) in lane order and divides by cnt; each
  thread sums its (y - mean)^2 likewise; thread co adds those in lane order: M2. 4 barriers.
Determinism: every output is a fixed-order fmaf chain (taps in (i, j) order; channels ci = 0..c-1),
  independent of the launch order: bits do not depend on scheduling; so are the partials (pixels
  in j order, lanes in order). No atomics.
Parameters: one struct SepSlots by value (shared with launch/sepconv.rs as #[repr(C)], 328 bytes:
  > 128, so nvcc reads it in place from the parameter bank even indexed by blockIdx.z).
Assumptions: contiguous NCHW; every slot shares n, c, h, w, stride and oh, ow; c <= 64; every
  tensor < 2^31 elements; y does not alias the inputs.
*/
#ifndef DARTS_DYN_SMEM
#define DARTS_DYN_SMEM(T, name) extern __shared__ __align__(16) T name[]
#endif

#ifdef DARTS_EMU
#define SEP_UNROLL
#else
#define SEP_UNROLL _Pragma("unroll")
#endif

#define SEP_MAX_SLOTS 4
#define SEP_BLOCK 256
#define SEP_MAX_C 64

struct SepSlot {
    const float* x;     // [n, c, h, w] the pre-op input
    const float* mean;  // [c], or null: ReLU only
    const float* rstd;  // [c], or null
    const float* dw;    // [c, 1, kh, kw]
    const float* pw;    // [c, c, 1, 1]
    float* y;           // [n, c, oh, ow]
    float* part;        // [2, c, n * tiles] per-block BN partials (mean, M2) of y, or null
    int kh, kw, pad, d;
};

struct SepSlots {
    SepSlot slot[SEP_MAX_SLOTS];
    int n, c, h, w, oh, ow, s;  // shared by every slot
    int cp;                     // round_up(c, 4): Wt row length
    int tp;                     // threads along the pixels (TP)
    int ptile;                  // pixels per tile (P = 4 * TP)
};

// The pre-op of depthwise.cu's dw_pre_apply with relu = true.
static __device__ __forceinline__ float sep_pre(float v, bool norm, float mean, float rstd) {
    if (norm) v = (v - mean) * rstd;
    return v < 0.0f ? 0.0f : v;
}

// One depthwise output at (oh, ow) of plane xp (channel weights wp). K > 0: kh = kw = K at
// compile time; K == 0: run-time kh, kw.
template <int K>
static __device__ __forceinline__ float sep_dw_at(const float* __restrict__ xp, const float* __restrict__ wp,
                                                  int kh_rt, int kw_rt, int h, int w, int ih0, int iw0, int d,
                                                  bool norm, float mean, float rstd) {
    const int kh = K > 0 ? K : kh_rt, kw = K > 0 ? K : kw_rt;
    float acc = 0.0f;
    SEP_UNROLL
    for (int i = 0; i < kh; i++) {
        const int ih = ih0 + i * d;
        if (ih < 0 || ih >= h) continue;
        const float* __restrict__ row = xp + ih * w;
        SEP_UNROLL
        for (int j = 0; j < kw; j++) {
            const int iw = iw0 + j * d;
            if (iw < 0 || iw >= w) continue;
            acc = fmaf(__ldg(wp + i * kw + j), sep_pre(__ldg(row + iw), norm, mean, rstd), acc);
        }
    }
    return acc;
}

// Phase 1: D[ci][p] for every (ci, p) of the tile.
template <int K>
static __device__ __forceinline__ void sep_phase1(const SepSlot& sl, const SepSlots& p, float* __restrict__ D,
                                                  int img, int p0) {
    const int P = p.ptile, ohw = p.oh * p.ow, total = p.c * P;
    const bool norm = sl.mean != nullptr;
    for (int e = threadIdx.x; e < total; e += blockDim.x) {
        const int ci = e / P, pi = e - ci * P, px = p0 + pi;
        float v = 0.0f;
        if (px < ohw) {
            const int oh = px / p.ow, ow = px - oh * p.ow;
            const float mean = norm ? __ldg(sl.mean + ci) : 0.0f;
            const float rstd = norm ? __ldg(sl.rstd + ci) : 0.0f;
            const float* xp = sl.x + (static_cast<size_t>(img) * p.c + ci) * static_cast<size_t>(p.h * p.w);
            v = sep_dw_at<K>(xp, sl.dw + ci * sl.kh * sl.kw, sl.kh, sl.kw, p.h, p.w, oh * p.s - sl.pad,
                             ow * p.s - sl.pad, sl.d, norm, mean, rstd);
        }
        D[e] = v;
    }
}

extern "C" __global__ void __launch_bounds__(SEP_BLOCK) dw_pw_fwd_slots_f32(SepSlots p) {
    DARTS_DYN_SMEM(float, smem);
    const SepSlot& sl = p.slot[blockIdx.z];
    const int c = p.c, cp = p.cp, P = p.ptile, TP = p.tp;
    const int img = blockIdx.y, p0 = blockIdx.x * P;
    float* __restrict__ Wt = smem;          // [c][cp]
    float* __restrict__ D = smem + c * cp;  // [c][P]

    // Wt[ci][co] = pw[co][ci] (co < c), 0 for the padding channels. Reads are coalesced along ci.
    for (int e = threadIdx.x; e < c * cp; e += blockDim.x) {
        const int co = e / c, ci = e - co * c;
        Wt[ci * cp + co] = co < c ? __ldg(sl.pw + co * c + ci) : 0.0f;
    }
    // Uniform over the block: the switch selects one compile-time tap loop.
    switch (sl.kh == sl.kw ? sl.kh : 0) {
        case 3:
            sep_phase1<3>(sl, p, D, img, p0);
            break;
        case 5:
            sep_phase1<5>(sl, p, D, img, p0);
            break;
        default:
            sep_phase1<0>(sl, p, D, img, p0);
            break;
    }
    __syncthreads();

    const int t = threadIdx.x;
    const bool active = t < TP * (cp >> 2);  // no early return: phase 3 has barriers
    const int pl = t % TP, g = t / TP;
    float acc[4][4];
    SEP_UNROLL
    for (int i = 0; i < 4; i++) {
        SEP_UNROLL
        for (int j = 0; j < 4; j++) acc[i][j] = 0.0f;
    }
    const int ohw = p.oh * p.ow;
    if (active) {
        const float* __restrict__ wcol = Wt + 4 * g;
        const float* __restrict__ dcol = D + pl;
#ifndef DARTS_EMU
#pragma unroll 4
#endif
        for (int ci = 0; ci < c; ci++) {
            const float4 wv = *reinterpret_cast<const float4*>(wcol + ci * cp);
            const float wr[4] = {wv.x, wv.y, wv.z, wv.w};
            float dv[4];
            SEP_UNROLL
            for (int j = 0; j < 4; j++) dv[j] = dcol[ci * P + j * TP];
            SEP_UNROLL
            for (int i = 0; i < 4; i++) {
                SEP_UNROLL
                for (int j = 0; j < 4; j++) acc[i][j] = fmaf(wr[i], dv[j], acc[i][j]);
            }
        }
        float* __restrict__ yimg = sl.y + static_cast<size_t>(img) * c * ohw;
        SEP_UNROLL
        for (int i = 0; i < 4; i++) {
            const int co = 4 * g + i;
            if (co >= c) break;
            SEP_UNROLL
            for (int j = 0; j < 4; j++) {
                const int px = p0 + pl + j * TP;
                if (px < ohw) yimg[static_cast<size_t>(co) * ohw + px] = acc[i][j];
            }
        }
    }
    if (sl.part == nullptr) return;  // uniform over the block

    // Phase 3: the tile's (mean, M2) per output channel from the registers.
    __shared__ float tmean[SEP_MAX_C];
    float* __restrict__ S = D;  // [cp][TP + 1]
    const int row = TP + 1, cnt = min(P, ohw - p0);
    __syncthreads();  // every thread is done reading D
    if (active) {
        SEP_UNROLL
        for (int i = 0; i < 4; i++) {
            float s = 0.0f;
            SEP_UNROLL
            for (int j = 0; j < 4; j++)
                if (p0 + pl + j * TP < ohw) s += acc[i][j];
            S[(4 * g + i) * row + pl] = s;
        }
    }
    __syncthreads();
    for (int co = t; co < c; co += blockDim.x) {
        float s = 0.0f;
        for (int l = 0; l < TP; l++) s += S[co * row + l];
        tmean[co] = s / static_cast<float>(cnt);
    }
    __syncthreads();
    if (active) {
        SEP_UNROLL
        for (int i = 0; i < 4; i++) {
            const int co = 4 * g + i;
            const float m = co < c ? tmean[co] : 0.0f;
            float q = 0.0f;
            SEP_UNROLL
            for (int j = 0; j < 4; j++) {
                if (p0 + pl + j * TP < ohw) {
                    const float dlt = acc[i][j] - m;
                    q = fmaf(dlt, dlt, q);
                }
            }
            S[co * row + pl] = q;
        }
    }
    __syncthreads();
    const int nb = gridDim.x * gridDim.y, b = img * gridDim.x + blockIdx.x;
    for (int co = t; co < c; co += blockDim.x) {
        float q = 0.0f;
        for (int l = 0; l < TP; l++) q += S[co * row + l];
        sl.part[co * nb + b] = tmean[co];
        sl.part[(c + co) * nb + b] = q;
    }
}
