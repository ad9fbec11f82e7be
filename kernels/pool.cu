/*
k x k max and average pooling (f32, NCHW) with stride s and zero padding p, forward and backward,
mirroring src/backend/cpu/pool.rs.

  window (oi, oj) of a (plane, h, w) input covers rows [oi*s - p, oi*s - p + k) and columns
  [oj*s - p, oj*s - p + k), clipped to the input: only in-bounds taps take part.
  max forward   y = x[argmax], argmax = the FIRST maximum in row-major tap order (a later tap
                wins only if strictly greater, or if it is NaN and the best so far is not, so a
                NaN propagates as in PyTorch); padding never wins. A window with no in-bounds
                tap (impossible when p < k) gives -inf.
  max backward  dx[i, j] = sum of dy over the windows whose argmax is (i, j), argmax recomputed
                from x with the same rule (no indices are stored by the forward).
  avg forward   y = (sum of the in-bounds taps) / count, count = in-bounds taps
                (count_include_pad = False); 0 for an empty window.
  avg backward  dx[i, j] = sum over the windows containing (i, j) of dy / count.
  max + avg pair (every DARTS edge pools the same x both ways; PoolPair struct parameter)
    forward     y[0] = max pool, y[1] = avg pool, y as [2, planes, oh, ow]: one scan of each
                window does both reductions with the single kernels' rules and orders, so each
                half is bitwise the single kernel's output.
    backward    dx = (max backward of dy[0]) + (avg backward of dy[1]): the two gathers below,
                each summed in the single kernels' order and added once at the end, so dx is
                bitwise the two single kernels' results followed by an elementwise add.
Every backward is a GATHER over the input: one thread owns one dx element and adds its
windows' contributions in (oi, oj) row-major order, the order in which the CPU backend adds them,
so each dx is the same f32 sum on every schedule. No atomics; dx is overwritten, never
accumulated into.

Windows containing input row i:  oi in [ceil((i + p - k + 1) / s), floor((i + p) / s)]
clipped to [0, oh). (Same for columns.) At most ceil(k / s) of them.

Launch shapes (planes = n * c; every index < 2^31, the pair's 2*planes*oh*ow included):
  max_pool_fwd_f32, avg_pool_fwd_f32
      one thread per output element, grid-stride over planes*oh*ow: block = POOL_BLOCK = 256,
      grid = min(ceil(planes*oh*ow / 256), 65535); no shared memory. Neighbouring threads read
      neighbouring (stride-s) taps, so the k*k reads per output are coalesced and the overlap
      between windows is served by L1.
  avg_pool_bwd_f32
      one thread per INPUT element, grid-stride over planes*h*w, same block and grid rule;
      reads at most ceil(k/s)^2 dy values (L1-resident neighbours); no shared memory.
  max_avg_pool_fwd_f32
      as max_pool_fwd_f32 over planes*oh*ow; each thread writes y[idx] and y[planes*oh*ow + idx].
  max_pool_bwd_f32, max_avg_pool_bwd_f32
      a 2-D tile of TW x TH input pixels per block: block = (TW, TH, 1), TW*TH <= 256,
      grid = (ceil(w / TW), ceil(h / TH), min(planes, 65535)) with a loop over planes in z.
      The host picks TW = clamp(pow2ceil(w), 8, 32), TH = min(pow2ceil(h), 256 / TW), so small
      planes do not idle most of a 256-thread block; the result does not depend on the tile
      (each dx is a per-thread sum in a fixed order).
      Phase 1: the block's threads compute the argmax of every window touching the tile
      (k*k L1-cached reads each) and stage it with its dy in shared memory.
      Phase 2: each thread scans the <= ceil(k/s)^2 staged windows of its pixel and sums the
      dy of those whose argmax is that pixel. So each window's argmax is computed once per tile
      (about (TH+k-1)(TW+k-1)/(TH*TW) times per window overall, 1.3x for 32x8, k=3, s=1), not
      once per pixel it covers (k^2/s^2 times, 9x).
      dynamic shared = 8 * WR * WC bytes with WR = (TH + k - 2) / s + 1 and
      WC = (TW + k - 2) / s + 1 (int argmax + float dy per window): 2720 bytes for k=3, s=1,
      32x8; the host computes it with the same formulas.
      max_avg_pool_bwd_f32 also stages the avg half's dy / count per window (12 * WR * WC
      bytes: 4080 for k=3, s=1, 32x8), so phase 2 sums both gradients from shared memory and the
      division is done once per staged window rather than once per covering pixel.
Assumptions: contiguous NCHW tensors; k, s >= 1, p >= 0; oh = floor((h + 2p - k) / s) + 1 and
ow likewise (as Pool2dGeom computes them; 0 when the window does not fit); dy / dx must not
alias x / y. k is a runtime value: the tap loops are not unrolled (DARTS uses k = 3).
*/
#ifndef DARTS_DYN_SMEM
#define DARTS_DYN_SMEM(T, name) extern __shared__ __align__(16) T name[]
#endif

#define POOL_BLOCK 256

// Keeps nvcc from unrolling a loop (g++ has no `#pragma unroll`, so the emulator build skips it).
#ifdef __CUDACC__
#define POOL_NO_UNROLL _Pragma("unroll 1")
#else
#define POOL_NO_UNROLL
#endif

// In-bounds taps of output row (or column) o: [*lo, *hi), empty when *hi <= *lo.
static __device__ __forceinline__ void pool_taps(int o, int len, int k, int s, int p, int* lo, int* hi) {
    const int start = o * s - p;
    *lo = start < 0 ? 0 : start;
    const int end = start + k;
    *hi = end > len ? len : end;
}

// Windows (along one axis) that contain input index i: [*lo, *hi] inclusive, clipped to [0, out).
static __device__ __forceinline__ void pool_windows_of(int i, int out, int k, int s, int p, int* lo,
                                                       int* hi) {
    const int a = i + p - k + 1;  // first window start <= i ... window o covers o*s-p .. o*s-p+k-1
    *lo = a <= 0 ? 0 : (a + s - 1) / s;
    const int b = (i + p) / s;
    *hi = b < out - 1 ? b : out - 1;
}

// Plane-local index of the argmax of window (oi, oj), or -1 for a window with no in-bounds tap.
// First maximum in row-major order wins; a NaN beats any number (the CPU backend's rule).
static __device__ __forceinline__ int pool_window_argmax(const float* __restrict__ xp, int h, int w, int k,
                                                        int s, int p, int oi, int oj) {
    int r0, r1, c0, c1;
    pool_taps(oi, h, k, s, p, &r0, &r1);
    pool_taps(oj, w, k, s, p, &c0, &c1);
    int best = -1;
    float bv = 0.0f;
    for (int i = r0; i < r1; ++i) {
        for (int j = c0; j < c1; ++j) {
            const float v = __ldg(xp + i * w + j);
            if (best < 0 || v > bv || (v != v && bv == bv)) {
                best = i * w + j;
                bv = v;
            }
        }
    }
    return best;
}

extern "C" __global__ void __launch_bounds__(POOL_BLOCK)
    max_pool_fwd_f32(const float* __restrict__ x, float* __restrict__ y, int planes, int h, int w, int k,
                     int s, int p, int oh, int ow) {
    const unsigned total =
        static_cast<unsigned>(planes) * static_cast<unsigned>(oh) * static_cast<unsigned>(ow);
    const unsigned stride = blockDim.x * gridDim.x;
    for (unsigned idx = blockIdx.x * blockDim.x + threadIdx.x; idx < total; idx += stride) {
        const int oj = static_cast<int>(idx % static_cast<unsigned>(ow));
        const unsigned t = idx / static_cast<unsigned>(ow);
        const int oi = static_cast<int>(t % static_cast<unsigned>(oh));
        const unsigned plane = t / static_cast<unsigned>(oh);
        const float* xp = x + static_cast<size_t>(plane) * h * w;
        const int a = pool_window_argmax(xp, h, w, k, s, p, oi, oj);
        y[idx] = a >= 0 ? __ldg(xp + a) : -INFINITY;
    }
}

extern "C" __global__ void __launch_bounds__(POOL_BLOCK)
    avg_pool_fwd_f32(const float* __restrict__ x, float* __restrict__ y, int planes, int h, int w, int k,
                     int s, int p, int oh, int ow) {
    const unsigned total =
        static_cast<unsigned>(planes) * static_cast<unsigned>(oh) * static_cast<unsigned>(ow);
    const unsigned stride = blockDim.x * gridDim.x;
    for (unsigned idx = blockIdx.x * blockDim.x + threadIdx.x; idx < total; idx += stride) {
        const int oj = static_cast<int>(idx % static_cast<unsigned>(ow));
        const unsigned t = idx / static_cast<unsigned>(ow);
        const int oi = static_cast<int>(t % static_cast<unsigned>(oh));
        const unsigned plane = t / static_cast<unsigned>(oh);
        const float* xp = x + static_cast<size_t>(plane) * h * w;
        int r0, r1, c0, c1;
        pool_taps(oi, h, k, s, p, &r0, &r1);
        pool_taps(oj, w, k, s, p, &c0, &c1);
        float acc = 0.0f;
        for (int i = r0; i < r1; ++i) {
            for (int j = c0; j < c1; ++j) acc += __ldg(xp + i * w + j);
        }
        const int rows = r1 > r0 ? r1 - r0 : 0, cols = c1 > c0 ? c1 - c0 : 0;
        const int count = rows * cols;
        y[idx] = acc / static_cast<float>(count > 0 ? count : 1);
    }
}

extern "C" __global__ void __launch_bounds__(POOL_BLOCK)
    avg_pool_bwd_f32(const float* __restrict__ dy, float* __restrict__ dx, int planes, int h, int w, int k,
                     int s, int p, int oh, int ow) {
    const unsigned total =
        static_cast<unsigned>(planes) * static_cast<unsigned>(h) * static_cast<unsigned>(w);
    const unsigned stride = blockDim.x * gridDim.x;
    for (unsigned idx = blockIdx.x * blockDim.x + threadIdx.x; idx < total; idx += stride) {
        const int j = static_cast<int>(idx % static_cast<unsigned>(w));
        const unsigned t = idx / static_cast<unsigned>(w);
        const int i = static_cast<int>(t % static_cast<unsigned>(h));
        const unsigned plane = t / static_cast<unsigned>(h);
        const float* dyp = dy + static_cast<size_t>(plane) * oh * ow;
        int oi0, oi1, oj0, oj1;
        pool_windows_of(i, oh, k, s, p, &oi0, &oi1);
        pool_windows_of(j, ow, k, s, p, &oj0, &oj1);
        float acc = 0.0f;
        for (int oi = oi0; oi <= oi1; ++oi) {
            int r0, r1;
            pool_taps(oi, h, k, s, p, &r0, &r1);
            // Not unrolled: each iteration divides (div.rn.f32, whose slow path is a call), and
            // an unrolled body keeps enough values live across those calls to spill.
            POOL_NO_UNROLL
            for (int oj = oj0; oj <= oj1; ++oj) {
                int c0, c1;
                pool_taps(oj, w, k, s, p, &c0, &c1);
                // (i, j) is in-bounds and inside the window, so the window has >= 1 tap.
                const float count = static_cast<float>((r1 - r0) * (c1 - c0));
                acc += __ldg(dyp + oi * ow + oj) / count;
            }
        }
        dx[idx] = acc;
    }
}

// The tile of a gathered pool backward (max_pool_bwd_f32, max_avg_pool_bwd_f32): block
// (bx, by) owns input pixels [by*th, +th) x [bx*tw, +tw); the windows touching the tile are
// rows [wr0, wr0 + nr) x columns [wc0, wc0 + nc) (empty past the edge), nwin of them; the
// thread's own pixel (i, j) is read by windows [oi0, oi1] x [oj0, oj1] (empty outside the image).
struct PoolBwdTile {
    int tid, nthreads, i, j;
    int wr0, wc0, nc, nwin;
    int oi0, oi1, oj0, oj1;
};

static __device__ __forceinline__ PoolBwdTile pool_bwd_tile(int h, int w, int k, int s, int p, int oh, int ow) {
    PoolBwdTile t;
    const int tw = static_cast<int>(blockDim.x), th = static_cast<int>(blockDim.y);
    t.nthreads = tw * th;
    t.tid = static_cast<int>(threadIdx.y) * tw + static_cast<int>(threadIdx.x);
    const int i0 = static_cast<int>(blockIdx.y) * th, j0 = static_cast<int>(blockIdx.x) * tw;
    t.i = i0 + static_cast<int>(threadIdx.y);
    t.j = j0 + static_cast<int>(threadIdx.x);
    const int i_last = (i0 + th < h ? i0 + th : h) - 1, j_last = (j0 + tw < w ? j0 + tw : w) - 1;
    int wr1, wc1, dummy;
    pool_windows_of(i0, oh, k, s, p, &t.wr0, &dummy);
    pool_windows_of(i_last, oh, k, s, p, &dummy, &wr1);
    pool_windows_of(j0, ow, k, s, p, &t.wc0, &dummy);
    pool_windows_of(j_last, ow, k, s, p, &dummy, &wc1);
    const int nr = wr1 >= t.wr0 ? wr1 - t.wr0 + 1 : 0;
    t.nc = wc1 >= t.wc0 ? wc1 - t.wc0 + 1 : 0;
    t.nwin = nr * t.nc;  // <= WR * WC of the host's shared-memory size
    t.oi0 = 0, t.oi1 = -1, t.oj0 = 0, t.oj1 = -1;
    if (t.i < h && t.j < w) {
        pool_windows_of(t.i, oh, k, s, p, &t.oi0, &t.oi1);
        pool_windows_of(t.j, ow, k, s, p, &t.oj0, &t.oj1);
    }
    return t;
}

extern "C" __global__ void __launch_bounds__(POOL_BLOCK)
    max_pool_bwd_f32(const float* __restrict__ x, const float* __restrict__ dy, float* __restrict__ dx,
                     int planes, int h, int w, int k, int s, int p, int oh, int ow) {
    DARTS_DYN_SMEM(float, pool_smem);
    const PoolBwdTile pt = pool_bwd_tile(h, w, k, s, p, oh, ow);
    const int tid = pt.tid, nthreads = pt.nthreads, i = pt.i, j = pt.j;
    const int wr0 = pt.wr0, wc0 = pt.wc0, nc = pt.nc, nwin = pt.nwin;
    int* s_arg = reinterpret_cast<int*>(pool_smem);
    float* s_dy = pool_smem + nwin;
    // Per-pixel window ranges do not depend on the plane.
    const int oi0 = pt.oi0, oi1 = pt.oi1, oj0 = pt.oj0, oj1 = pt.oj1;
    const int hw = h * w, ohw = oh * ow;
    for (unsigned plane = blockIdx.z; plane < static_cast<unsigned>(planes); plane += gridDim.z) {
        const float* xp = x + static_cast<size_t>(plane) * hw;
        const float* dyp = dy + static_cast<size_t>(plane) * ohw;
        for (int t = tid; t < nwin; t += nthreads) {
            const int oi = wr0 + t / nc, oj = wc0 + t % nc;
            s_arg[t] = pool_window_argmax(xp, h, w, k, s, p, oi, oj);
            s_dy[t] = __ldg(dyp + oi * ow + oj);
        }
        __syncthreads();
        if (i < h && j < w) {
            const int me = i * w + j;
            float acc = 0.0f;
            for (int oi = oi0; oi <= oi1; ++oi) {
                const int row = (oi - wr0) * nc - wc0;
                for (int oj = oj0; oj <= oj1; ++oj) {
                    if (s_arg[row + oj] == me) acc += s_dy[row + oj];
                }
            }
            dx[static_cast<size_t>(plane) * hw + me] = acc;
        }
        __syncthreads();  // the next plane overwrites the staged windows
    }
}

// Parameters of the max + avg pair (`PoolPair` in src/backend/gpu/launch/pool.rs, same layout).
struct PoolPair {
    const float* x;   // [planes, h, w]
    const float* dy;  // backward: [2, planes, oh, ow], the max half then the avg half
    float* out;       // forward: y [2, planes, oh, ow]; backward: dx [planes, h, w]
    int planes, h, w, k, s, p, oh, ow;
};

extern "C" __global__ void __launch_bounds__(POOL_BLOCK) max_avg_pool_fwd_f32(PoolPair a) {
    const int h = a.h, w = a.w, k = a.k, s = a.s, p = a.p, oh = a.oh, ow = a.ow;
    const unsigned total =
        static_cast<unsigned>(a.planes) * static_cast<unsigned>(oh) * static_cast<unsigned>(ow);
    const unsigned stride = blockDim.x * gridDim.x;
    for (unsigned idx = blockIdx.x * blockDim.x + threadIdx.x; idx < total; idx += stride) {
        const int oj = static_cast<int>(idx % static_cast<unsigned>(ow));
        const unsigned t = idx / static_cast<unsigned>(ow);
        const int oi = static_cast<int>(t % static_cast<unsigned>(oh));
        const unsigned plane = t / static_cast<unsigned>(oh);
        const float* xp = a.x + static_cast<size_t>(plane) * h * w;
        int r0, r1, c0, c1;
        pool_taps(oi, h, k, s, p, &r0, &r1);
        pool_taps(oj, w, k, s, p, &c0, &c1);
        // One scan, both reductions: the max update of pool_window_argmax (bv is x[argmax]) and
        // the row-major sum of avg_pool_fwd_f32, so each half matches its single kernel bitwise.
        bool any = false;
        float bv = 0.0f, acc = 0.0f;
        for (int i = r0; i < r1; ++i) {
            for (int j = c0; j < c1; ++j) {
                const float v = __ldg(xp + i * w + j);
                if (!any || v > bv || (v != v && bv == bv)) bv = v;
                any = true;
                acc += v;
            }
        }
        const int rows = r1 > r0 ? r1 - r0 : 0, cols = c1 > c0 ? c1 - c0 : 0;
        const int count = rows * cols;
        a.out[idx] = any ? bv : -INFINITY;
        a.out[total + idx] = acc / static_cast<float>(count > 0 ? count : 1);
    }
}

extern "C" __global__ void __launch_bounds__(POOL_BLOCK) max_avg_pool_bwd_f32(PoolPair a) {
    DARTS_DYN_SMEM(float, pool_smem);
    const int h = a.h, w = a.w, k = a.k, s = a.s, p = a.p, oh = a.oh, ow = a.ow;
    const PoolBwdTile pt = pool_bwd_tile(h, w, k, s, p, oh, ow);
    const int tid = pt.tid, nthreads = pt.nthreads, i = pt.i, j = pt.j;
    const int wr0 = pt.wr0, wc0 = pt.wc0, nc = pt.nc, nwin = pt.nwin;
    int* s_arg = reinterpret_cast<int*>(pool_smem);
    float* s_dy = pool_smem + nwin;        // the max half's dy
    float* s_share = pool_smem + 2 * nwin;  // the avg half's dy / count
    const int oi0 = pt.oi0, oi1 = pt.oi1, oj0 = pt.oj0, oj1 = pt.oj1;
    const int hw = h * w, ohw = oh * ow;
    const size_t half = static_cast<size_t>(a.planes) * ohw;
    for (unsigned plane = blockIdx.z; plane < static_cast<unsigned>(a.planes); plane += gridDim.z) {
        const float* xp = a.x + static_cast<size_t>(plane) * hw;
        const float* dyp = a.dy + static_cast<size_t>(plane) * ohw;
        // Not unrolled: the division's slow path is a call (see avg_pool_bwd_f32).
        POOL_NO_UNROLL
        for (int t = tid; t < nwin; t += nthreads) {
            const int oi = wr0 + t / nc, oj = wc0 + t % nc;
            s_arg[t] = pool_window_argmax(xp, h, w, k, s, p, oi, oj);
            s_dy[t] = __ldg(dyp + oi * ow + oj);
            int r0, r1, c0, c1;
            pool_taps(oi, h, k, s, p, &r0, &r1);
            pool_taps(oj, w, k, s, p, &c0, &c1);
            // The same quotient avg_pool_bwd_f32 forms per pixel, formed once per window here.
            const float count = static_cast<float>((r1 - r0) * (c1 - c0));
            s_share[t] = __ldg(dyp + half + oi * ow + oj) / count;
        }
        __syncthreads();
        if (i < h && j < w) {
            const int me = i * w + j;
            // Two sums in (oi, oj) row-major order, as the single kernels add them; added once.
            float acc_max = 0.0f, acc_avg = 0.0f;
            for (int oi = oi0; oi <= oi1; ++oi) {
                const int row = (oi - wr0) * nc - wc0;
                for (int oj = oj0; oj <= oj1; ++oj) {
                    if (s_arg[row + oj] == me) acc_max += s_dy[row + oj];
                    acc_avg += s_share[row + oj];
                }
            }
            a.out[static_cast<size_t>(plane) * hw + me] = acc_max + acc_avg;
        }
        __syncthreads();  // the next plane overwrites the staged windows
    }
}
