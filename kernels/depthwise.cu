/*
Depthwise 2-D convolution (groups = C_in = C_out = C, one kh x kw filter per channel), f32, NCHW,
no bias, stride s, zero padding p (both axes, both sides), dilation d; OH/OW as in Conv2dGeom:

  forward      y[n,c,oh,ow]  = sum_{i<kh, j<kw} w[c,i,j] * x[n,c, oh*s - p + i*d, ow*s - p + j*d]
  data grad    dx[n,c,ih,iw] = sum over (oh, ow, i, j) with oh*s - p + i*d = ih, ow*s - p + j*d = iw
                               of w[c,i,j] * dy[n,c,oh,ow]
  weight grad  dw[c,i,j]     = sum_{n, oh, ow} dy[n,c,oh,ow] * x[n,c, oh*s - p + i*d, ow*s - p + j*d]
  (x outside the image reads 0.)

ReLU-fused variants (the DARTS sep/dil convs are ReLU -> depthwise):
  depthwise_relu_fwd_f32          y  = dwconv(max(x, 0))            (max applied as x is loaded)
  depthwise_relu_bwd_data_f32     dx = dwconv_bwd_data(dy) * [x > 0] (the ReLU backward, fused)
  depthwise_relu_bwd_weight_*     dw = dwconv_bwd_weight(max(x, 0), dy)
where x is the ReLU's input (the tensor the op saved), so no relu(x) tensor is ever stored.

Normalise-ReLU-fused variants (the second stage of a DARTS sep conv: BN (non-affine) -> ReLU ->
depthwise, with mean[c] and rstd[c] the BN's statistics: batch mean and 1/sqrt(var + eps) in
training, the running ones in eval):
  a[n,c,h,w] = max((x[n,c,h,w] - mean[c]) * rstd[c], 0)     (applied as x is loaded)
  depthwise_bnrelu_fwd_f32          y  = dwconv(a)
  depthwise_bnrelu_bwd_data_f32     da = dwconv_bwd_data(dy) * [a > 0]  (mask recomputed from x)
  depthwise_bnrelu_bwd_weight_*     dw = dwconv_bwd_weight(a, dy)
da is the gradient w.r.t. the BN output (after the ReLU mask); the caller runs the BN backward
(through the batch statistics in training) to reach dx. Saved by the caller: x, mean, rstd;
recomputed here on every load: a and the mask. Nothing of a's size is ever stored. The
normalisation is one subtract and one multiply per loaded value (channel = plane % c), the
same rounding as the CPU's (x - mean) * invstd.

Tiling (forward, and the data gradient at stride 1). A block computes a tile of at most
32 x 32 outputs (tile_w = tw columns, tile_h = tg * DW_ROWS rows) of ppb consecutive (n, c)
planes. Thread t of the block takes plane p = t / (tw*tg), column col and row group grp of the
tile, and computes DW_ROWS = 4 vertically adjacent outputs at that column:
  1. the block loads the input tile plus halo, rows_in x cols_in per plane, into shared memory
     once (coalesced: consecutive threads read consecutive columns; zeros outside the image;
     max(x, 0) for the ReLU variants), then one __syncthreads;
  2. each thread loads its channel's kh*kw weights into registers (one address per plane: an L1
     broadcast) and, per filter column j, reads the L = (DW_ROWS-1)*s + (kh-1)*d + 1 input rows
     its 4 outputs need at that column into registers, then does kh * 4 FMAs from registers
     (4 outputs share every loaded value: L shared loads per 4*kh FMAs instead of 4*kh);
  3. stores (consecutive threads write consecutive columns).
Shared layout: column c of a tile row is stored at (c % s) * wq + c / s (wq = ceil(cols_in / s)),
so the columns ow*s + j*d that consecutive threads read are adjacent at stride 2 as at stride 1
(no 2-way bank conflict); the row stride rs and plane stride ps are padded by the host so that
the 32 lanes of a warp (several row groups or planes when tw < 32) fall on 32 distinct banks.
The register path is compiled for kh = kw in {3, 5}, s in {1, 2}, d in {1, 2} (every DARTS
depthwise conv; the kernel switches on the uniform geometry). Any other geometry takes a
generic path over the same shared tile with run-time tap loops.

The data gradient at stride 1 is the same gather with the filter flipped, dy as the input plane
and padding d*(k-1) - p:  dx[ih,iw] = sum_{i,j} w[c,kh-1-i,kw-1-j] * dy[ih - p' + i*d, iw - p' + j*d].
At stride > 1 (DARTS reduction cells) a tile of dx loads the dy rows/columns it can reach
(floor((ih0 + p - (kh-1)*d) / s) onwards, no phase split) and each thread gathers its 4 dx values
with run-time tap loops, skipping taps with (ih + p - i*d) % s != 0 (one shared load per useful
FMA, about 3x the instructions of the register path; these are the few stride-2 convs of the
reduction cells, where dx is only the input's size).

Weight gradient: a two-pass hierarchical reduction, deterministic, no float atomics.
  depthwise_[relu_|bnrelu_]bwd_weight_partial_f32: block (part, c) owns channel c, one spatial tile, and
    `iters` groups of ppb images; per group it loads the x tile of ppb planes of channel c into
    shared memory, each thread loads its 4 dy values and accumulates all kh*kw taps in registers
    (acc[tap] += dy * x from the same register-blocked column reads as the forward). Then a warp
    reduce-scatter (butterfly over lane bits: 31 shuffles for 32 accumulators instead of 5 per
    accumulator) leaves tap (lane % V) in each lane; lanes write warp sums to shared memory and
    threads tap < kh*kw add the warps in warp order:
        partial[part * C*kh*kw + c*kh*kw + tap]      (part < nparts = tiles * chunks of images)
    Generic geometries read x and dy directly (run-time tap loop, one block reduction per tap).
    `iters` is chosen by the host so the grid is about 512 blocks (ceil(C * tiles * ceil(N/ppb)
    / 512) groups per block), amortising the block reduction over several image groups.
    __launch_bounds__(256, 3): 80 registers (acc[32] + L column values + 4 dy), no spills.
  depthwise_bwd_weight_final_f32: thread r < C*kh*kw sums partial[part * rows + r] over
    part = 0, 1, ..., nparts-1 in order (coalesced across threads) and writes dw[r].
  Every sum has a fixed order given (shape, launch shape), and the launch shape is a function of
  the shape only: results are bitwise reproducible on any device and under both emulator schedules.

Launch shapes (all sized by launch/depthwise.rs from the geometry alone):
  depthwise_[relu_|bnrelu_]fwd_f32, depthwise_[relu_|bnrelu_]bwd_data_f32
      grid  = (ceil(N*C / ppb), tiles_x * tiles_y), block = round_up(ppb * tw * tg, 32) <= 256
      (__launch_bounds__(256)); dynamic shared = ppb * ps * 4 bytes (<= 48 KiB).
  depthwise_[relu_|bnrelu_]bwd_weight_partial_f32
      grid = (nparts, C), block as above; dynamic shared = ppb * ps * 4 bytes;
      static shared = DW_WARPS * 32 * 4 = 1 KiB.
  depthwise_bwd_weight_final_f32
      grid = ceil(C*kh*kw / 256), block = 256; no shared memory.

Slotted pre-op variants (one DARTS edge's four conv candidates, sep 3x3 / 5x5 and dil 3x3 / 5x5,
each ReLU -> depthwise, or the sep convs' second stages, normalise -> ReLU -> depthwise): up to
DW_MAX_SLOTS = 4 independent problems in ONE launch instead of one launch each. Parameters are one
struct DwSlots by value (shared with launch/depthwise.rs as #[repr(C)]): n, c, h, w, oh, ow and s
are common; each DwSlot has its own kh = kw, pad, d, pointers (x, mean/rstd or null, w, dy, out,
partial), tile plan, and grid extents. Slot z = blockIdx.z runs exactly the code of the single
kernel for its problem (pre-op = dw_pre(mean, rstd, c, true)), so its output is bitwise the
single kernel's:
  depthwise_pre_fwd_slots_f32                 y_s  = dwconv(pre_s(x_s), w_s)
  depthwise_pre_bwd_data_slots_f32            dx_s = dwconv_bwd_data(dy_s, w_s) * [pre_s(x_s) > 0]
  depthwise_pre_bwd_weight_partial_slots_f32  partials of dw_s = dwconv_bwd_weight(pre_s(x_s), dy_s)
  depthwise_bwd_weight_final_slots_f32        dw_s from its partials, every slot in one launch
      grid  = (max_s grid_x, max_s grid_y, nslots) (the partial pass: (max_s nparts, C, nslots);
      the final: (ceil(max_s C*kh*kw / 256), 1, nslots)); a block past its own slot's grid returns
      at once, before any barrier. block = max_s of the slots' blocks, dynamic shared = max_s of
      their shared sizes. The extra threads of a smaller slot are idle: the tile loads stride by
      blockDim.x, threads past the slot's planes return after the barrier (gather) or add zeros
      (weight gradient), and the weight gradient adds only the slot's own nwarps warp sums, in
      order, so the block size does not change a bit.
Parameters: every single-problem kernel takes one struct DwParams by value (shared with
launch/depthwise.rs as #[repr(C)]): pointers x, mean, rstd, w, dy, out (each kernel reads the ones
its variant needs), the shape n, c, h, w, oh, ow, kh, kw, s, pad, d, the tile plan and the weight
gradient's split. The tile plan (tw, tg, tiles_x, ppb, rows_in, cols_in, wq, rs, ps) comes from
the host; the kernel trusts it (rows_in >= (tg*4 - 1)*s + (kh-1)*d + 1 etc.).
Assumptions: contiguous NCHW, every tensor < 2^31 elements; w is [C, 1, kh, kw]; y/dx/dw do not
alias the inputs; N*C planes on grid.x (< 2^31), C < 65536 on grid.y of the weight gradient.
*/
#ifndef DARTS_DYN_SMEM
#define DARTS_DYN_SMEM(T, name) extern __shared__ __align__(16) T name[]
#endif

#ifdef DARTS_EMU
#define DW_UNROLL
#else
#define DW_UNROLL _Pragma("unroll")
#endif

#define DW_BLOCK 256
#define DW_WARPS (DW_BLOCK / 32)
#define DW_ROWS 4
#define DW_FINAL_BLOCK 256
#define DW_WGRAD_MIN_BLOCKS 3

// The host's tile plan (see launch/depthwise.rs).
struct DwTile {
    int tw;       // output columns per tile
    int tg;       // row groups per tile (tile rows = tg * DW_ROWS)
    int tiles_x;  // tiles across the output width
    int ppb;      // planes per block
    int rows_in;  // input rows per plane in shared memory
    int cols_in;  // input columns per plane in shared memory
    int wq;       // ceil(cols_in / s): one column phase
    int rs;       // shared row stride (>= s * wq)
    int ps;       // shared plane stride (>= rows_in * rs)
};

// What a kernel applies to each input value as it loads it: v -> (v - mean[ch]) * rstd[ch] when
// mean is not null (ch = plane % c), then max(v, 0) when relu.
struct DwPre {
    const float* mean;
    const float* rstd;
    int c;
    bool relu;
};

static __device__ __forceinline__ DwPre dw_pre(const float* mean, const float* rstd, int c, bool relu) {
    DwPre q;
    q.mean = mean;
    q.rstd = rstd;
    q.c = c;
    q.relu = relu;
    return q;
}

static __device__ __forceinline__ float dw_pre_apply(const DwPre& q, float v, int ch) {
    if (q.mean != nullptr) v = (v - q.mean[ch]) * q.rstd[ch];
    return (q.relu && v < 0.0f) ? 0.0f : v;
}

// The ReLU mask of the data gradient: true where the pre-op output of the saved x is positive.
static __device__ __forceinline__ bool dw_pre_pos(const DwPre& q, float v, int ch) {
    if (q.mean != nullptr) v = (v - q.mean[ch]) * q.rstd[ch];
    return v > 0.0f;
}

static __device__ __forceinline__ int dw_floor_div(int a, int b) {
    const int q = a / b;
    return (a % b != 0 && a < 0) ? q - 1 : q;
}

// True when the register path is compiled for this geometry.
static __device__ __forceinline__ bool dw_fast(int kh, int kw, int s, int d) {
    return kh == kw && (kh == 3 || kh == 5) && (s == 1 || s == 2) && (d == 1 || d == 2);
}

// Loads ppb planes (plane0 + p*pstep for p < nvalid; zeros for the others) of rows
// row0 .. row0+rows_in-1 and columns col0 .. col0+cols_in-1 of src (hi x wi planes) into the
// shared tile, column c at (c % s) * wq + c / s; zeros outside the image; the pre-op q applied to
// every in-image value (plane index modulo q.c is its channel).
// S is the compile-time stride of the column split (0: use s_rt). Every thread must call it.
template <int S>
static __device__ __forceinline__ void dw_load_tile(float* __restrict__ tile, const float* __restrict__ src,
                                                    int plane0, int pstep, int nvalid, int hi, int wi, int row0,
                                                    int col0, int s_rt, const DwTile& t, const DwPre& q) {
    const int s = S ? S : s_rt;
    const int bd = static_cast<int>(blockDim.x), tid = static_cast<int>(threadIdx.x);
    const int cols = t.cols_in, rows = t.rows_in;
    const int total = t.ppb * rows * cols;
    // Element e = (p*rows + r)*cols + c, advanced by bd per step without dividing.
    const int qa = bd / cols, ca = bd % cols, ra = qa % rows, pa = qa / rows;
    int c = tid % cols, r = (tid / cols) % rows, p = tid / cols / rows;
    const int plane_len = hi * wi;
    for (int e = tid; e < total; e += bd) {
        float v = 0.0f;
        const int gr = row0 + r, gc = col0 + c;
        if (p < nvalid && static_cast<unsigned>(gr) < static_cast<unsigned>(hi) &&
            static_cast<unsigned>(gc) < static_cast<unsigned>(wi)) {
            const int plane = plane0 + p * pstep;
            v = dw_pre_apply(q, src[plane * plane_len + gr * wi + gc], q.mean != nullptr ? plane % q.c : 0);
        }
        const int pos = (s == 1) ? c : (c % s) * t.wq + c / s;
        tile[p * t.ps + r * t.rs + pos] = v;
        c += ca;
        r += ra;
        p += pa;
        if (c >= cols) {
            c -= cols;
            ++r;
        }
        if (r >= rows) {
            r -= rows;
            ++p;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Gather (forward; data gradient at stride 1 with FLIP).

// acc[r] = sum_{i,j} wf[i,j] * tile[(r*S + i*D) rows down, col*S + j*D], wf = w or w flipped.
// tp points at the thread's first input row of its plane.
template <int K, int S, int D, bool FLIP>
static __device__ __forceinline__ void dw_gather_fast(const float* __restrict__ tp, int rs, int wq, int col,
                                                      const float* __restrict__ wc, float (&acc)[DW_ROWS]) {
    constexpr int L = (DW_ROWS - 1) * S + (K - 1) * D + 1;
    float wr[K * K];
    DW_UNROLL
    for (int t = 0; t < K * K; ++t) wr[t] = wc[FLIP ? K * K - 1 - t : t];
    DW_UNROLL
    for (int r = 0; r < DW_ROWS; ++r) acc[r] = 0.0f;
    DW_UNROLL
    for (int j = 0; j < K; ++j) {
        const float* cp = tp + ((j * D) % S) * wq + col + (j * D) / S;
        float v[L];
        DW_UNROLL
        for (int l = 0; l < L; ++l) v[l] = cp[l * rs];
        DW_UNROLL
        for (int i = 0; i < K; ++i) {
            DW_UNROLL
            for (int r = 0; r < DW_ROWS; ++r) acc[r] = fmaf(wr[i * K + j], v[r * S + i * D], acc[r]);
        }
    }
}

template <bool FLIP>
static __device__ __forceinline__ void dw_gather_generic(const float* __restrict__ tp, int rs, int wq, int col,
                                                         const float* __restrict__ wc, int kh, int kw, int s,
                                                         int d, float (&acc)[DW_ROWS]) {
    for (int r = 0; r < DW_ROWS; ++r) {
        float a = 0.0f;
        for (int i = 0; i < kh; ++i) {
            const float* rp = tp + (r * s + i * d) * rs;
            for (int j = 0; j < kw; ++j) {
                const int c = col * s + j * d;
                const float wv = wc[FLIP ? (kh - 1 - i) * kw + (kw - 1 - j) : i * kw + j];
                a = fmaf(wv, rp[(c % s) * wq + c / s], a);
            }
        }
        acc[r] = a;
    }
}

// One tile of dst (ho x wo planes) gathered from src (hi x wi planes): output (oy, ox) reads
// rows oy*s - pad_h + i*d, columns ox*s - pad_w + j*d, each loaded through the pre-op lq.
// dst = acc where mq's pre-op of mask is > 0, else 0 (mask not null: the ReLU backward).
template <bool FLIP>
static __device__ __forceinline__ void dw_gather(const float* __restrict__ src, const float* __restrict__ w,
                                                 float* __restrict__ dst, const float* __restrict__ mask,
                                                 const DwPre& lq, const DwPre& mq, int planes, int c, int hi, int wi, int ho, int wo,
                                                 int kh, int kw, int s, int d, int pad_h, int pad_w,
                                                 const DwTile& t) {
    DARTS_DYN_SMEM(float, tile);
    const int tx = static_cast<int>(blockIdx.y) % t.tiles_x, ty = static_cast<int>(blockIdx.y) / t.tiles_x;
    const int oy0 = ty * t.tg * DW_ROWS, ox0 = tx * t.tw;
    const int plane0 = static_cast<int>(blockIdx.x) * t.ppb;
    const int nvalid = min(t.ppb, planes - plane0);
    const bool fast = dw_fast(kh, kw, s, d);
    const int row0 = oy0 * s - pad_h, col0 = ox0 * s - pad_w;
    if (fast && s == 2)
        dw_load_tile<2>(tile, src, plane0, 1, nvalid, hi, wi, row0, col0, s, t, lq);
    else if (fast)
        dw_load_tile<1>(tile, src, plane0, 1, nvalid, hi, wi, row0, col0, s, t, lq);
    else
        dw_load_tile<0>(tile, src, plane0, 1, nvalid, hi, wi, row0, col0, s, t, lq);
    __syncthreads();

    const int per_plane = t.tw * t.tg, tid = static_cast<int>(threadIdx.x);
    const int p = tid / per_plane;
    if (p >= nvalid) return;  // no barrier follows
    const int q = tid % per_plane, col = q % t.tw, grp = q / t.tw;
    const int plane = plane0 + p;
    const int ch = plane % c;
    const float* tp = tile + p * t.ps + grp * DW_ROWS * s * t.rs;
    const float* wc = w + ch * kh * kw;
    float acc[DW_ROWS] = {};
    if (fast) {
        switch (kh * 100 + s * 10 + d) {
            case 311: dw_gather_fast<3, 1, 1, FLIP>(tp, t.rs, t.wq, col, wc, acc); break;
            case 312: dw_gather_fast<3, 1, 2, FLIP>(tp, t.rs, t.wq, col, wc, acc); break;
            case 511: dw_gather_fast<5, 1, 1, FLIP>(tp, t.rs, t.wq, col, wc, acc); break;
            case 512: dw_gather_fast<5, 1, 2, FLIP>(tp, t.rs, t.wq, col, wc, acc); break;
            // The flipped gather is the stride-1 data gradient: no stride-2 instances.
            case 321: if constexpr (!FLIP) dw_gather_fast<3, 2, 1, false>(tp, t.rs, t.wq, col, wc, acc); break;
            case 322: if constexpr (!FLIP) dw_gather_fast<3, 2, 2, false>(tp, t.rs, t.wq, col, wc, acc); break;
            case 521: if constexpr (!FLIP) dw_gather_fast<5, 2, 1, false>(tp, t.rs, t.wq, col, wc, acc); break;
            default:  if constexpr (!FLIP) dw_gather_fast<5, 2, 2, false>(tp, t.rs, t.wq, col, wc, acc); break;
        }
    } else {
        dw_gather_generic<FLIP>(tp, t.rs, t.wq, col, wc, kh, kw, s, d, acc);
    }
    const int ox = ox0 + col;
    if (ox >= wo) return;
    const int base = plane * ho * wo + ox;
    DW_UNROLL
    for (int r = 0; r < DW_ROWS; ++r) {
        const int oy = oy0 + grp * DW_ROWS + r;
        if (oy < ho) {
            const int idx = base + oy * wo;
            float v = acc[r];
            if (mask != nullptr) v = dw_pre_pos(mq, mask[idx], ch) ? v : 0.0f;
            dst[idx] = v;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Data gradient at stride > 1: transposed gather over a dy tile.

static __device__ __forceinline__ void dw_bwd_data_strided(const float* __restrict__ dy,
                                                           const float* __restrict__ w, float* __restrict__ dx,
                                                           const float* __restrict__ mask, const DwPre& mq,
                                                           int planes, int c, int h, int wd, int oh, int ow, int kh,
                                                           int kw, int s, int pad, int d, const DwTile& t) {
    DARTS_DYN_SMEM(float, tile);
    const int tx = static_cast<int>(blockIdx.y) % t.tiles_x, ty = static_cast<int>(blockIdx.y) / t.tiles_x;
    const int ih0 = ty * t.tg * DW_ROWS, iw0 = tx * t.tw;
    const int plane0 = static_cast<int>(blockIdx.x) * t.ppb;
    const int nvalid = min(t.ppb, planes - plane0);
    // First dy row/column any dx of the tile reads: every (ih + pad - i*d) - oy_lo*s is >= 0.
    const int oy_lo = dw_floor_div(ih0 + pad - (kh - 1) * d, s);
    const int ox_lo = dw_floor_div(iw0 + pad - (kw - 1) * d, s);
    dw_load_tile<1>(tile, dy, plane0, 1, nvalid, oh, ow, oy_lo, ox_lo, 1, t, dw_pre(nullptr, nullptr, 1, false));
    __syncthreads();

    const int per_plane = t.tw * t.tg, tid = static_cast<int>(threadIdx.x);
    const int p = tid / per_plane;
    if (p >= nvalid) return;  // no barrier follows
    const int q = tid % per_plane, col = q % t.tw, grp = q / t.tw;
    const int plane = plane0 + p;
    const float* tp = tile + p * t.ps;
    const float* wc = w + (plane % c) * kh * kw;
    const int iw = iw0 + col;
    if (iw >= wd) return;
    const int cbase = iw + pad - ox_lo * s;
    for (int r = 0; r < DW_ROWS; ++r) {
        const int ih = ih0 + grp * DW_ROWS + r;
        if (ih >= h) break;
        const int rbase = ih + pad - oy_lo * s;
        float a = 0.0f;
        for (int i = 0; i < kh; ++i) {
            const int rr = rbase - i * d;
            if (rr % s != 0) continue;
            const float* rp = tp + (rr / s) * t.rs;
            for (int j = 0; j < kw; ++j) {
                const int cc = cbase - j * d;
                if (cc % s != 0) continue;
                a = fmaf(wc[i * kw + j], rp[cc / s], a);
            }
        }
        const int idx = (plane * h + ih) * wd + iw;
        if (mask != nullptr) a = dw_pre_pos(mq, mask[idx], plane % c) ? a : 0.0f;
        dx[idx] = a;
    }
}

// ---------------------------------------------------------------------------------------------
// Weight gradient.

// Butterfly reduce-scatter of V (power of 2, <= 32) values over the 32 lanes of a warp: returns
// the warp's total of a[lane % V]. Every lane of the warp must call it.
template <int V>
static __device__ __forceinline__ float dw_warp_reduce_scatter(float (&a)[V]) {
    const unsigned lane = threadIdx.x & 31u;
    constexpr int STEPS = V == 32 ? 5 : V == 16 ? 4 : V == 8 ? 3 : V == 4 ? 2 : V == 2 ? 1 : 0;
    DW_UNROLL
    for (int st = 1; st <= STEPS; ++st) {
        const int h = V >> st;
        const bool upper = (lane & static_cast<unsigned>(h)) != 0u;
        DW_UNROLL
        for (int k = 0; k < V / 2; ++k) {  // constant trip count (k < h) so nvcc unrolls both loops
            if (k >= h) break;
            // Read both by value first: `upper ? a[k] : a[k + h]` selects an address and would
            // put the array in local memory.
            const float lo = a[k], hi = a[k + h];
            const float send = upper ? lo : hi;
            const float keep = upper ? hi : lo;
            a[k] = keep + __shfl_xor_sync(0xffffffffu, send, h);
        }
    }
    float v = a[0];
    DW_UNROLL
    for (int b = V; b < 32; b *= 2) v += __shfl_xor_sync(0xffffffffu, v, b);
    return v;
}

// Block (part, ch): sums dy * x over its tile and image chunk for every tap; writes
// partial[part * c*K*K + ch*K*K + tap].
template <int K, int S, int D>
static __device__ __forceinline__ void dw_wgrad_fast(const float* __restrict__ x, const float* __restrict__ dy,
                                                     float* __restrict__ partial, const DwPre& pre, int n, int c, int h,
                                                     int wd, int oh, int ow, int pad, int iters, int tiles,
                                                     const DwTile& t, int nwarps, float (*warp_sums)[32]) {
    constexpr int KK = K * K;
    constexpr int V = KK <= 16 ? 16 : 32;
    constexpr int L = (DW_ROWS - 1) * S + (K - 1) * D + 1;
    DARTS_DYN_SMEM(float, tile);
    const int part = static_cast<int>(blockIdx.x), ch = static_cast<int>(blockIdx.y);
    const int tile_i = part % tiles, chunk = part / tiles;
    const int tx = tile_i % t.tiles_x, ty = tile_i / t.tiles_x;
    const int oy0 = ty * t.tg * DW_ROWS, ox0 = tx * t.tw;
    const int per_plane = t.tw * t.tg, tid = static_cast<int>(threadIdx.x);
    const int p = tid / per_plane;
    const int q = tid % per_plane, col = q % t.tw, grp = q / t.tw;
    const int ox = ox0 + col;
    const float* tp = tile + p * t.ps + grp * DW_ROWS * S * t.rs;

    float acc[V];
    DW_UNROLL
    for (int k = 0; k < V; ++k) acc[k] = 0.0f;
    for (int it = 0; it < iters; ++it) {
        const int nb = (chunk * iters + it) * t.ppb;
        const int nvalid = min(t.ppb, n - nb);
        if (nvalid <= 0) break;  // uniform over the block
        dw_load_tile<S>(tile, x, nb * c + ch, c, nvalid, h, wd, oy0 * S - pad, ox0 * S - pad, S, t, pre);
        __syncthreads();
        if (p < nvalid && ox < ow) {
            const float* dyp = dy + ((nb + p) * c + ch) * oh * ow + ox;
            float g[DW_ROWS];
            DW_UNROLL
            for (int r = 0; r < DW_ROWS; ++r) {
                const int oy = oy0 + grp * DW_ROWS + r;
                g[r] = oy < oh ? dyp[oy * ow] : 0.0f;
            }
            DW_UNROLL
            for (int j = 0; j < K; ++j) {
                const float* cp = tp + ((j * D) % S) * t.wq + col + (j * D) / S;
                float v[L];
                DW_UNROLL
                for (int l = 0; l < L; ++l) v[l] = cp[l * t.rs];
                DW_UNROLL
                for (int i = 0; i < K; ++i) {
                    DW_UNROLL
                    for (int r = 0; r < DW_ROWS; ++r) acc[i * K + j] = fmaf(g[r], v[r * S + i * D], acc[i * K + j]);
                }
            }
        }
        __syncthreads();  // the tile is reloaded next iteration
    }
    const float v = dw_warp_reduce_scatter<V>(acc);
    const unsigned lane = threadIdx.x & 31u, warp = threadIdx.x >> 5;
    if (lane < static_cast<unsigned>(KK)) warp_sums[warp][lane] = v;
    __syncthreads();
    if (tid < KK) {
        if (nwarps == 0) nwarps = static_cast<int>(blockDim.x >> 5);
        float total = warp_sums[0][tid];
        for (int wi = 1; wi < nwarps; ++wi) total += warp_sums[wi][tid];
        partial[part * c * KK + ch * KK + tid] = total;
    }
}

// Any geometry: x and dy read from global memory, one block reduction per tap.
static __device__ __forceinline__ void dw_wgrad_generic(const float* __restrict__ x, const float* __restrict__ dy,
                                                        float* __restrict__ partial, const DwPre& pre, int n, int c,
                                                        int h, int wd, int oh, int ow, int kh, int kw, int s,
                                                        int pad, int d, int iters, int tiles, const DwTile& t,
                                                        int nwarps, float* warp_sums) {
    const int kk = kh * kw;
    const int part = static_cast<int>(blockIdx.x), ch = static_cast<int>(blockIdx.y);
    const int tile_i = part % tiles, chunk = part / tiles;
    const int tx = tile_i % t.tiles_x, ty = tile_i / t.tiles_x;
    const int oy0 = ty * t.tg * DW_ROWS, ox0 = tx * t.tw;
    const int per_plane = t.tw * t.tg, tid = static_cast<int>(threadIdx.x);
    const int p = tid / per_plane;
    const int q = tid % per_plane, col = q % t.tw, grp = q / t.tw;
    const int ox = ox0 + col;
    const unsigned lane = threadIdx.x & 31u, warp = threadIdx.x >> 5;
    for (int tap = 0; tap < kk; ++tap) {
        const int i = tap / kw, j = tap % kw;
        const int ix = ox * s - pad + j * d;
        float a = 0.0f;
        for (int it = 0; it < iters; ++it) {
            const int nb = (chunk * iters + it) * t.ppb;
            if (p >= t.ppb || nb + p >= n || ox >= ow || static_cast<unsigned>(ix) >= static_cast<unsigned>(wd))
                continue;
            const int plane = (nb + p) * c + ch;
            for (int r = 0; r < DW_ROWS; ++r) {
                const int oy = oy0 + grp * DW_ROWS + r;
                const int iy = oy * s - pad + i * d;
                if (oy >= oh || static_cast<unsigned>(iy) >= static_cast<unsigned>(h)) continue;
                const float xv = dw_pre_apply(pre, x[(plane * h + iy) * wd + ix], ch);
                a = fmaf(dy[(plane * oh + oy) * ow + ox], xv, a);
            }
        }
        for (int off = 16; off > 0; off >>= 1) a += __shfl_down_sync(0xffffffffu, a, off);
        if (lane == 0) warp_sums[warp] = a;
        __syncthreads();
        if (tid == 0) {
            const int nw = nwarps != 0 ? nwarps : static_cast<int>(blockDim.x >> 5);
            float total = warp_sums[0];
            for (int wi = 1; wi < nw; ++wi) total += warp_sums[wi];
            partial[part * c * kk + ch * kk + tap] = total;
        }
        __syncthreads();  // warp_sums is rewritten for the next tap
    }
}

static __device__ __forceinline__ void dw_wgrad(const float* __restrict__ x, const float* __restrict__ dy,
                                                float* __restrict__ partial, const DwPre& q, int n, int c, int h,
                                                int wd, int oh, int ow, int kh, int kw, int s, int pad, int d,
                                                int iters, int tiles, const DwTile& t, int nwarps) {
    // One static array for every path (an array per template instance would each be allocated).
    __shared__ float warp_sums[DW_WARPS][32];
    if (!dw_fast(kh, kw, s, d)) {
        dw_wgrad_generic(x, dy, partial, q, n, c, h, wd, oh, ow, kh, kw, s, pad, d, iters, tiles, t, nwarps,
                         warp_sums[0]);
        return;
    }
    // dw_fast() holds, so the key is one of the 8 cases (5,2,2 is the default).
#define DW_WGRAD_FAST(K, S, D) \
    dw_wgrad_fast<K, S, D>(x, dy, partial, q, n, c, h, wd, oh, ow, pad, iters, tiles, t, nwarps, warp_sums)
    switch (kh * 100 + s * 10 + d) {
        case 311: DW_WGRAD_FAST(3, 1, 1); break;
        case 312: DW_WGRAD_FAST(3, 1, 2); break;
        case 321: DW_WGRAD_FAST(3, 2, 1); break;
        case 322: DW_WGRAD_FAST(3, 2, 2); break;
        case 511: DW_WGRAD_FAST(5, 1, 1); break;
        case 512: DW_WGRAD_FAST(5, 1, 2); break;
        case 521: DW_WGRAD_FAST(5, 2, 1); break;
        default:  DW_WGRAD_FAST(5, 2, 2); break;
    }
#undef DW_WGRAD_FAST
}

// ---------------------------------------------------------------------------------------------
// Kernels.

// Parameters of the single-problem kernels: one struct by value (shared with
// launch/depthwise.rs as #[repr(C)], no implicit padding, 136 bytes; nothing in it is indexed at
// run time). Each kernel reads the fields its list names; the others are zero.
struct DwParams {
    const float* x;     // forward, weight gradient: the input; data gradient: the mask source (or null)
    const float* mean;  // [c]: normalise on load (bnrelu kernels); null otherwise
    const float* rstd;  // [c], or null
    const float* w;     // [c, 1, kh, kw] (forward, data gradient)
    const float* dy;    // [n, c, oh, ow] (gradients)
    float* out;         // y, dx, or the weight gradient's partials
    int n, c, h, wd, oh, ow, kh, kw, s, pad, d;
    DwTile t;           // the host's tile plan
    int iters, tiles;   // the weight gradient's split
};

// The warps whose sums the weight gradient adds: 0 = all of the block's (a constant, so the
// single-slot kernels read blockDim only where they add, keeping no extra register live).
#define DW_NWARPS 0

static __device__ __forceinline__ void dw_fwd(const float* __restrict__ x, const float* __restrict__ w,
                                              float* __restrict__ y, const DwPre& q, int n, int c, int h, int wd,
                                              int oh, int ow, int kh, int kw, int s, int pad, int d,
                                              const DwTile& t) {
    dw_gather<false>(x, w, y, nullptr, q, q, n * c, c, h, wd, oh, ow, kh, kw, s, d, pad, pad, t);
}

// y = dwconv(pre(x), w): x, [mean, rstd], w, out = y.
static __device__ __forceinline__ void dw_fwd_params(const DwParams& p, const float* mean, const float* rstd,
                                                     bool relu) {
    const DwTile t = p.t;  // a copy: a reference into the parameter keeps its address live
    dw_fwd(p.x, p.w, p.out, dw_pre(mean, rstd, p.c, relu), p.n, p.c, p.h, p.wd, p.oh, p.ow, p.kh, p.kw, p.s,
           p.pad, p.d, t);
}

extern "C" __global__ void __launch_bounds__(DW_BLOCK) depthwise_fwd_f32(DwParams p) {
    dw_fwd_params(p, nullptr, nullptr, false);
}

extern "C" __global__ void __launch_bounds__(DW_BLOCK) depthwise_relu_fwd_f32(DwParams p) {
    dw_fwd_params(p, nullptr, nullptr, true);
}

extern "C" __global__ void __launch_bounds__(DW_BLOCK) depthwise_bnrelu_fwd_f32(DwParams p) {
    dw_fwd_params(p, p.mean, p.rstd, true);
}

// mask: the saved x whose pre-op q output gates dx (dx = 0 where it is <= 0), or null.
static __device__ __forceinline__ void dw_bwd_data(const float* __restrict__ mask, const DwPre& q,
                                                   const float* __restrict__ dy, const float* __restrict__ w,
                                                   float* __restrict__ dx, int n, int c, int h, int wd, int oh,
                                                   int ow, int kh, int kw, int s, int pad, int d, const DwTile& t) {
    if (s == 1)
        dw_gather<true>(dy, w, dx, mask, dw_pre(nullptr, nullptr, c, false), q, n * c, c, oh, ow, h, wd, kh, kw, 1,
                        d, d * (kh - 1) - pad, d * (kw - 1) - pad, t);
    else
        dw_bwd_data_strided(dy, w, dx, mask, q, n * c, c, h, wd, oh, ow, kh, kw, s, pad, d, t);
}

// dx = dwconv_bwd_data(dy, w) * [pre(mask) > 0]: [x = mask], [mean, rstd], dy, w, out = dx.
static __device__ __forceinline__ void dw_bwd_data_params(const DwParams& p, const float* mask, const float* mean,
                                                          const float* rstd, bool relu) {
    const DwTile t = p.t;  // a copy: a reference into the parameter keeps its address live
    dw_bwd_data(mask, dw_pre(mean, rstd, p.c, relu), p.dy, p.w, p.out, p.n, p.c, p.h, p.wd, p.oh, p.ow, p.kh, p.kw,
                p.s, p.pad, p.d, t);
}

extern "C" __global__ void __launch_bounds__(DW_BLOCK) depthwise_bwd_data_f32(DwParams p) {
    dw_bwd_data_params(p, nullptr, nullptr, nullptr, false);
}

extern "C" __global__ void __launch_bounds__(DW_BLOCK) depthwise_relu_bwd_data_f32(DwParams p) {
    dw_bwd_data_params(p, p.x, nullptr, nullptr, true);
}

extern "C" __global__ void __launch_bounds__(DW_BLOCK) depthwise_bnrelu_bwd_data_f32(DwParams p) {
    dw_bwd_data_params(p, p.x, p.mean, p.rstd, true);
}

// Partials of dw = dwconv_bwd_weight(pre(x), dy): x, [mean, rstd], dy, out = partial, iters, tiles.
static __device__ __forceinline__ void dw_wgrad_params(const DwParams& p, const float* mean, const float* rstd,
                                                       bool relu) {
    const DwTile t = p.t;  // a copy: a reference into the parameter keeps its address live (and spills)
    dw_wgrad(p.x, p.dy, p.out, dw_pre(mean, rstd, p.c, relu), p.n, p.c, p.h, p.wd, p.oh, p.ow, p.kh, p.kw, p.s,
             p.pad, p.d, p.iters, p.tiles, t, DW_NWARPS);
}

extern "C" __global__ void __launch_bounds__(DW_BLOCK, DW_WGRAD_MIN_BLOCKS)
    depthwise_bwd_weight_partial_f32(DwParams p) {
    dw_wgrad_params(p, nullptr, nullptr, false);
}

extern "C" __global__ void __launch_bounds__(DW_BLOCK, DW_WGRAD_MIN_BLOCKS)
    depthwise_relu_bwd_weight_partial_f32(DwParams p) {
    dw_wgrad_params(p, nullptr, nullptr, true);
}

extern "C" __global__ void __launch_bounds__(DW_BLOCK, DW_WGRAD_MIN_BLOCKS)
    depthwise_bnrelu_bwd_weight_partial_f32(DwParams p) {
    dw_wgrad_params(p, p.mean, p.rstd, true);
}

// dw[r] = the sum of partial[part * rows + r] over part = 0, 1, ..., nparts-1, in that order.
static __device__ __forceinline__ void dw_final(const float* __restrict__ partial, int rows, int nparts,
                                                float* __restrict__ dw) {
    const int r = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
    if (r >= rows) return;
    float total = 0.0f;
    for (int p = 0; p < nparts; ++p) total += partial[p * rows + r];
    dw[r] = total;
}

extern "C" __global__ void __launch_bounds__(DW_FINAL_BLOCK)
    depthwise_bwd_weight_final_f32(const float* __restrict__ partial, int rows, int nparts, float* __restrict__ dw) {
    dw_final(partial, rows, nparts, dw);
}

// ---------------------------------------------------------------------------------------------
// Slotted pre-op kernels: up to DW_MAX_SLOTS independent ReLU (or normalise + ReLU) depthwise
// problems in one launch, slot = blockIdx.z (the four conv candidates of a DARTS edge). Layout
// shared with launch/depthwise.rs (#[repr(C)], no implicit padding).

#define DW_MAX_SLOTS 4

struct DwSlot {
    const float* x;     // the pre-op input (forward, weight gradient) / the mask source (data gradient)
    const float* mean;  // [c], or null: ReLU only
    const float* rstd;  // [c], or null
    const float* w;     // [c, 1, kh, kw] (forward, data gradient)
    const float* dy;    // [n, c, oh, ow] (gradients)
    float* out;         // y, dx or dw
    float* partial;     // the weight gradient's partials of this slot (nparts * rows)
    int kh, kw, pad, d;
    DwTile t;           // this slot's tile plan
    int grid_x, grid_y; // this slot's own grid (x, y); blocks past it return at once
    int iters, tiles;   // the weight gradient's split
    int nwarps;         // warps of the slot's own block (the weight gradient adds only these)
    int rows, nparts;   // the final pass: rows = c*kh*kw, partials per row
};

struct DwSlots {
    DwSlot slot[DW_MAX_SLOTS];
    int n, c, h, wd, oh, ow, s;  // shared by every slot
    int nslots;
};

extern "C" __global__ void __launch_bounds__(DW_BLOCK) depthwise_pre_fwd_slots_f32(DwSlots p) {
    const DwSlot sl = p.slot[blockIdx.z];
    // Uniform over the block, before any barrier.
    if (static_cast<int>(blockIdx.x) >= sl.grid_x || static_cast<int>(blockIdx.y) >= sl.grid_y) return;
    dw_fwd(sl.x, sl.w, sl.out, dw_pre(sl.mean, sl.rstd, p.c, true), p.n, p.c, p.h, p.wd, p.oh, p.ow, sl.kh, sl.kw,
           p.s, sl.pad, sl.d, sl.t);
}

extern "C" __global__ void __launch_bounds__(DW_BLOCK) depthwise_pre_bwd_data_slots_f32(DwSlots p) {
    const DwSlot sl = p.slot[blockIdx.z];
    if (static_cast<int>(blockIdx.x) >= sl.grid_x || static_cast<int>(blockIdx.y) >= sl.grid_y) return;
    dw_bwd_data(sl.x, dw_pre(sl.mean, sl.rstd, p.c, true), sl.dy, sl.w, sl.out, p.n, p.c, p.h, p.wd, p.oh, p.ow,
                sl.kh, sl.kw, p.s, sl.pad, sl.d, sl.t);
}

extern "C" __global__ void __launch_bounds__(DW_BLOCK, DW_WGRAD_MIN_BLOCKS)
    depthwise_pre_bwd_weight_partial_slots_f32(DwSlots p) {
    const DwSlot sl = p.slot[blockIdx.z];
    if (static_cast<int>(blockIdx.x) >= sl.grid_x) return;  // grid.y = c for every slot
    dw_wgrad(sl.x, sl.dy, sl.partial, dw_pre(sl.mean, sl.rstd, p.c, true), p.n, p.c, p.h, p.wd, p.oh, p.ow, sl.kh,
             sl.kw, p.s, sl.pad, sl.d, sl.iters, sl.tiles, sl.t, sl.nwarps);
}

extern "C" __global__ void __launch_bounds__(DW_FINAL_BLOCK) depthwise_bwd_weight_final_slots_f32(DwSlots p) {
    const DwSlot sl = p.slot[blockIdx.z];
    dw_final(sl.partial, sl.rows, sl.nparts, sl.out);
}
