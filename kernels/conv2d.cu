/*
Dense 2-D convolution (groups = 1) and the pointwise 1x1 convolution as tiled GEMMs (f32):
forward, input gradient and weight gradient. NCHW activations, OIHW weights, no bias.

With stride s, padding p, dilation d, OHW = out_h * out_w, HW = h * w, khw = kh * kw:

  forward     y[n, o, oh, ow]  = sum_{c, i, j} w[o, c, i, j] * x[n, c, oh*s - p + i*d, ow*s - p + j*d]
  input grad  dx[n, c, ih, iw] = sum_{o, i, j : (ih + p - i*d) = oh*s, (iw + p - j*d) = ow*s,
                                                0 <= oh < out_h, 0 <= ow < out_w}  w[o, c, i, j] * dy[n, o, oh, ow]
  weight grad dw[o, c, i, j]   = sum_{n, oh, ow} dy[n, o, oh, ow] * x[n, c, oh*s - p + i*d, ow*s - p + j*d]
(x outside the image reads 0). Each is one GEMM C (M x N) = A (M x K) * B (K x N) whose operands
are gathered on the fly (implicit GEMM: no im2col buffer), with the batch folded into a GEMM
dimension so that small images still give full tiles:

  kernel                       M      N              K (reduced)       A(m, k)            B(k, col)
  conv2d_fwd_f32               c_out  n*OHW          c_in*khw          w[m, k]            x under tap k at output pixel col
  conv2d_bwd_data_f32          c_in   n*HW           c_out*khw         w[o, m, ij]        dy[o] under tap ij reaching input pixel col
  conv2d_bwd_weight_f32        c_out  c_in*khw       n*OHW (split)     dy[.., m, pixel k] x under tap col at output pixel k
  conv2d_pw_fwd_f32            c_out  n*HW           c_in              w[m, k]            x[img, k, px]
  conv2d_pw_bwd_data_f32       c_in   n*HW           c_out             w[k, m]            dy[img, k, px]
  conv2d_pw_bwd_weight_f32     c_out  c_in           n*HW (split)      dy[img, m, px]     x[img, col, px]
The conv2d_pw_* kernels are the 1x1 / stride 1 / pad 0 case (every DARTS pointwise conv: the
second half of sep_conv and dil_conv, the cell preprocessing ReLUConvBN) with the index math of
the general ones stripped down to one division per column. The conv2d_* kernels take any kernel
size, stride, padding and dilation (DARTS: the 3x3 3->48 stem and the strided 1x1 convs of
FactorizedReduce); 1x1 kernels (khw == 1) take a fast path there too (the tap is a property of
the column, so no per-element division); larger kernels split k into (c, i, j) with two integer
divisions per loaded element, which only the stem pays (K = 27). The input gradient of a strided
conv is a gather over every input pixel: the pixels no output reads get exact zeros (the GEMM
multiplies zeros there, s^2 - 1 of s^2 pixels for a 1x1 stride-s conv; fine for FactorizedReduce).

Tiling (every kernel: 256 threads = 8 warps, each thread a 4x4 register block of C):
  a block computes a BM x BN tile of C; its K loop runs in chunks of KC rows that go global ->
  registers -> shared memory (double buffered: the next chunk's global loads are issued before
  the current chunk's FMAs, one __syncthreads per chunk). In shared memory A is stored k-major
  As[KC][BM + 4] and B Bs[KC][BN + 4] (the +4 keeps float4 alignment and breaks the bank
  aliasing of the k-fastest stores); a thread reads one float4 of A and one of B per k and does
  16 FMAs. Tile shapes, chosen by the host from the shape alone (never from the device):
     tile  forward / input grad (G = 1, KC = 16)   weight grad
     0     64 x 64   (M > 32)                      64 x 64, G = 1,  KC = 16   (min(M, N) > 32)
     1     32 x 128  (16 < M <= 32)                32 x 32, G = 4,  KC = 64   (16 < min(M, N) <= 32)
     2     16 x 256  (M <= 16)                     16 x 16, G = 16, KC = 128  (min(M, N) <= 16)
  The DARTS GEMMs are skinny (M = 8..256 channels, N = n*HW up to 65536, K = 16..256), so a
  64-row tile would waste 3/4 of its FMAs and shared loads on C = 16; tiles 1 and 2 trade rows
  for columns instead. The weight gradient's C is tiny (16 x 16 for C = 16) and its reduction
  long (n*HW), so its small tiles give the 256 threads G groups of BM*BN/16 threads: group g
  reduces k rows [g*KC/G, (g+1)*KC/G) of every chunk into its own 4x4 blocks, and the G partial
  tiles are added through shared memory in group order at the end.
  Global loads: each thread loads a fixed column of B (n fastest, so a warp reads 32 consecutive
  pixels of a row: coalesced) or, for the weight gradient, a fixed k offset of the chunk (k
  fastest: 16 to 128 consecutive pixels of a row). A (weights, small and cache resident) is
  loaded k fastest. Stores: float4 when HW (resp. c_in*khw) is a multiple of 4 and the pointer is
  16-byte aligned, else scalar.

Weight gradient: deterministic split-K over the reduction (n*OHW) without atomics. The host cuts
the ceil(L / KC) chunks into `splits` contiguous runs of `cps` chunks (a fixed function of the
shape, see launch/conv.rs: at least 2 chunks a split, about 1024 blocks, at most 2^20 partial
values); block z = split writes its tile of partial[z][M][N]; conv2d_bwd_weight_final_f32 then
sums dw[e] = partial[0][e] + partial[1][e] + ... in split order. With splits == 1 the first kernel
writes dw directly and the second is skipped.

Launch shapes (block = CONV_THREADS = 256 threads, required; static shared memory only,
dynamic = 0):
  conv2d_fwd_f32, conv2d_bwd_data_f32            (__launch_bounds__(256, 3))
  conv2d_pw_fwd_f32, conv2d_pw_bwd_data_f32      (__launch_bounds__(256, 4))
      grid = (ceil(N / BN), ceil(M / BM), 1) for the tile's BM x BN; static smem 35,840 bytes.
  conv2d_bwd_weight_f32                          (__launch_bounds__(256, 2))
  conv2d_pw_bwd_weight_f32                       (__launch_bounds__(256, 3))
      grid = (ceil(N / BN), ceil(M / BM), splits); `out` is dw (splits == 1) or partial
      (splits * M * N floats); static smem 40,960 bytes.
  conv2d_bwd_weight_final_f32
      grid-stride over M * N: block 256 recommended, any grid; no shared memory.
  conv2d_pw_{fwd,bwd_data,bwd_weight}_slots_f32(PwSlots)          (__launch_bounds__(256, 3))
  conv2d_bwd_weight_final_slots_f32(PwFinalSlots)
      up to PW_SLOTS = 4 independent pointwise GEMMs of one shape (the pointwise convs of an edge's
      conv candidates) in one launch each, the pointers in one by-value struct shared with
      launch/conv.rs. The slot is folded into the grid: z = slot (fwd, bwd_data), z = slot * splits
      + split (bwd_weight; partials [slot][split][M][N]), y = slot (final). Every block runs the
      one-slot kernel's block on its slot's pointers, so each slot's bits are the one-slot launch's.
  The min-blocks of each __launch_bounds__ is the most that its registers allow without a
  spill (ptxas, sm_80 and sm_90): 64 registers for the pointwise GEMMs (4 blocks = 1024 threads
  per SM), 80 for the general ones and the pointwise weight gradient (3 blocks), up to 128 for
  the general weight gradient (its per-column tap state; 2 blocks).
Arguments after the three buffers: conv2d_* take struct ConvShape by value (shared with
launch/conv.rs as #[repr(C)]: the Conv2dGeom fields n, c_in, h, w, c_out, kh, kw, stride, pad,
dilation as ints, plus out_h and out_w as the host computes them); conv2d_pw_* take
(n, c_in, c_out, hw). Then the tile id (0, 1, 2 as above) and, for the weight gradients,
cps (chunks per split). Tap offsets |i*d - p|, |j*d - p| must be < 2^15 (the weight gradient packs
them into 16 bits; the host checks).

Determinism: every output value is one thread's sequential fmaf chain over k in increasing order
(plus, for grouped tiles, a sum over groups in group order, plus the split sum in split order),
so the bits depend only on the shape and the values, never on scheduling or the device.
Assumptions: groups == 1 (the host routes depthwise elsewhere), every tensor < 2^31 elements,
y / dx / dw / partial do not alias the inputs. Accumulation is f32.
The loops over r, i, j and kk have compile-time trip counts and nvcc unrolls them, so the
register arrays stay in registers (0-byte stack frame); there is no #pragma unroll because
g++ -Wall warns on it.
*/
#define CONV_THREADS 256
#define CONV_PAD 4

#define CONV_MAX(a, b) ((a) > (b) ? (a) : (b))

// Compile-time shape of a BM x BN tile (see the table above).
template <int BM, int BN>
struct ConvTile {
    static constexpr int G = CONV_THREADS * 16 / (BM * BN);  // thread groups splitting a chunk's k rows
    static constexpr int TPG = CONV_THREADS / G;             // threads per group (BM/4 x BN/4)
    static constexpr int KC = G == 1 ? 16 : (G == 4 ? 64 : 128);  // k rows per chunk
    static constexpr int KG = KC / G;                        // k rows per group per chunk
    static constexpr int LDA = BM + CONV_PAD;
    static constexpr int LDB = BN + CONV_PAD;
    static constexpr int EA = BM * KC / CONV_THREADS;        // A values a thread loads per chunk
    static constexpr int EB = KC * BN / CONV_THREADS;        // B values a thread loads per chunk
    static constexpr int A_FLOATS = KC * LDA;
    static constexpr int B_FLOATS = KC * LDB;
    static constexpr int SMEM = 2 * (A_FLOATS + B_FLOATS);  // floats, double buffered
    // A and k-fastest B loads: thread t takes k offset t % KC and rows (or columns)
    // t / KC + r * KSTEP_ROWS, r < EA (or EB).
    static constexpr int KSTEP_ROWS = CONV_THREADS / KC;
    // n-fastest B loads: thread t takes column t % BN and k offsets t / BN + r * NSTEP_K, r < EB.
    static constexpr int NSTEP_K = CONV_THREADS / BN;
    static_assert(G == 1 || G == 4 || G == 16, "tile must hold 256 / G threads of 4x4");
    static_assert(KSTEP_ROWS * EA == BM && NSTEP_K * EB == KC, "load mapping");
    static_assert(KC % G == 0 && BM % 4 == 0 && BN % 4 == 0, "tile shape");
    static_assert(G * BM * BN <= SMEM, "group reduction fits in the staging buffer");
};

// Static shared memory (floats) of the kernels: the largest of the tiles each one can run.
struct ConvSmem {
    static constexpr int T0 = ConvTile<64, 64>::SMEM;
    static constexpr int MN1 = ConvTile<32, 128>::SMEM, MN2 = ConvTile<16, 256>::SMEM;
    static constexpr int W1 = ConvTile<32, 32>::SMEM, W2 = ConvTile<16, 16>::SMEM;
    static constexpr int MN = CONV_MAX(T0, CONV_MAX(MN1, MN2));  // activation-shaped GEMMs
    static constexpr int W = CONV_MAX(T0, CONV_MAX(W1, W2));     // weight-gradient GEMMs
};

// The geometry as the kernels see it, and the general kernels' by-value parameter (48 bytes,
// shared with launch/conv.rs as #[repr(C)]).
struct ConvShape {
    int n, c_in, h, w, c_out, kh, kw, stride, pad, dil, out_h, out_w;
    __device__ int hw() const { return h * w; }
    __device__ int ohw() const { return out_h * out_w; }
    __device__ int khw() const { return kh * kw; }
};

// ------------------------------------------------------------------------------------------------
// The shared GEMM core.

// Registers -> shared memory (buffer As, Bs) for one chunk, in the loaders' mapping.
template <int BM, int BN, bool B_KFAST>
static __device__ __forceinline__ void conv_stage(const float (&ra)[ConvTile<BM, BN>::EA],
                                                  const float (&rb)[ConvTile<BM, BN>::EB], float* As,
                                                  float* Bs) {
    using T = ConvTile<BM, BN>;
    const int t = threadIdx.x;
    const int k = t % T::KC, row = t / T::KC;
    for (int r = 0; r < T::EA; ++r) As[k * T::LDA + row + r * T::KSTEP_ROWS] = ra[r];
    if (B_KFAST) {
        for (int r = 0; r < T::EB; ++r) Bs[k * T::LDB + row + r * T::KSTEP_ROWS] = rb[r];
    } else {
        const int col = t % BN, k0 = t / BN;
        for (int r = 0; r < T::EB; ++r) Bs[(k0 + r * T::NSTEP_K) * T::LDB + col] = rb[r];
    }
}

// acc += (this group's k rows of the chunk) A^T B for the thread's 4x4 block.
template <int BM, int BN>
static __device__ __forceinline__ void conv_mma(const float* As, const float* Bs, int g, int tm, int tn,
                                                float (&acc)[4][4]) {
    using T = ConvTile<BM, BN>;
    const float* a = As + g * T::KG * T::LDA + tm * 4;
    const float* b = Bs + g * T::KG * T::LDB + tn * 4;
    for (int kk = 0; kk < T::KG; ++kk) {
        const float4 av = *reinterpret_cast<const float4*>(a + kk * T::LDA);
        const float4 bv = *reinterpret_cast<const float4*>(b + kk * T::LDB);
        const float ar[4] = {av.x, av.y, av.z, av.w};
        const float br[4] = {bv.x, bv.y, bv.z, bv.w};
        for (int i = 0; i < 4; ++i)
            for (int j = 0; j < 4; ++j) acc[i][j] = fmaf(ar[i], br[j], acc[i][j]);
    }
}

// The thread's group and 4x4 block position in the tile.
template <int BM, int BN>
struct ConvThread {
    int g, tm, tn;
    __device__ ConvThread() {
        using T = ConvTile<BM, BN>;
        const int t = threadIdx.x, lt = t % T::TPG;
        g = t / T::TPG;
        tm = lt / (BN / 4);
        tn = lt % (BN / 4);
    }
};

// Chunks [c_begin, c_end) of the reduction through the double-buffered pipeline. `ld` provides
// B_KFAST and load(chunk, ra, rb), which must fetch exactly the elements conv_stage places
// (zero outside the matrices). c_begin, c_end are uniform over the block.
template <int BM, int BN, class Ld>
static __device__ __forceinline__ void conv_mainloop(const Ld& ld, int c_begin, int c_end, float* smem,
                                                     float (&acc)[4][4]) {
    using T = ConvTile<BM, BN>;
    for (int i = 0; i < 4; ++i)
        for (int j = 0; j < 4; ++j) acc[i][j] = 0.0f;
    if (c_begin >= c_end) return;
    const ConvThread<BM, BN> th;
    float* const a0 = smem;
    float* const b0 = smem + T::A_FLOATS;
    float* const a1 = b0 + T::B_FLOATS;
    float* const b1 = a1 + T::A_FLOATS;
    float ra[T::EA], rb[T::EB];
    ld.load(c_begin, ra, rb);
    conv_stage<BM, BN, Ld::B_KFAST>(ra, rb, a0, b0);
    __syncthreads();
    for (int c = c_begin; c < c_end; ++c) {
        const bool odd = ((c - c_begin) & 1) != 0;
        const bool more = c + 1 < c_end;
        if (more) ld.load(c + 1, ra, rb);  // in flight during the FMAs below
        conv_mma<BM, BN>(odd ? a1 : a0, odd ? b1 : b0, th.g, th.tm, th.tn, acc);
        // The other buffer was last read in iteration c - 1, which ended at a barrier.
        if (more) conv_stage<BM, BN, Ld::B_KFAST>(ra, rb, odd ? a0 : a1, odd ? b0 : b1);
        __syncthreads();
    }
}

static __device__ __forceinline__ bool conv_aligned16(const float* p) {
    return (reinterpret_cast<unsigned long long>(p) & 15ull) == 0;
}

// Epilogue of the activation-shaped GEMMs (G == 1): C[m, col] with col = img * P + px goes to
// out[(img * M + m) * P + px].
template <int BM, int BN>
static __device__ __forceinline__ void conv_store_nchw(const float (&acc)[4][4], float* __restrict__ out, int M,
                                                       int N, int P, int m0, int n0) {
    static_assert(ConvTile<BM, BN>::G == 1, "activation GEMMs use ungrouped tiles");
    const ConvThread<BM, BN> th;
    const int col = n0 + th.tn * 4;
    if (col >= N) return;
    if ((P & 3) == 0 && conv_aligned16(out)) {
        // col % 4 == 0 and P % 4 == 0: the 4 columns are one aligned float4 of one image row.
        const int img = col / P, px = col - img * P;
        for (int i = 0; i < 4; ++i) {
            const int m = m0 + th.tm * 4 + i;
            if (m < M) {
                *reinterpret_cast<float4*>(out + (static_cast<long long>(img) * M + m) * P + px) =
                    make_float4(acc[i][0], acc[i][1], acc[i][2], acc[i][3]);
            }
        }
        return;
    }
    for (int j = 0; j < 4; ++j) {
        const int cj = col + j;
        if (cj >= N) break;
        const int img = cj / P, px = cj - img * P;
        for (int i = 0; i < 4; ++i) {
            const int m = m0 + th.tm * 4 + i;
            if (m < M) out[(static_cast<long long>(img) * M + m) * P + px] = acc[i][j];
        }
    }
}

// Epilogue of the weight-gradient GEMMs: the G group tiles are added in group order (through
// shared memory, after the main loop's last barrier), then out[m * N + col] (row-major M x N).
template <int BM, int BN>
static __device__ __forceinline__ void conv_store_mat(const float (&acc)[4][4], float* smem,
                                                      float* __restrict__ out, int M, int N, int m0, int n0) {
    using T = ConvTile<BM, BN>;
    const ConvThread<BM, BN> th;
    const bool vec = (N & 3) == 0 && conv_aligned16(out);
    if (T::G == 1) {
        const int col = n0 + th.tn * 4;
        for (int i = 0; i < 4; ++i) {
            const int m = m0 + th.tm * 4 + i;
            if (m >= M || col >= N) continue;
            float* o = out + static_cast<long long>(m) * N + col;
            if (vec) {
                *reinterpret_cast<float4*>(o) = make_float4(acc[i][0], acc[i][1], acc[i][2], acc[i][3]);
            } else {
                for (int j = 0; j < 4; ++j)
                    if (col + j < N) o[j] = acc[i][j];
            }
        }
        return;
    }
    // The main loop ended with a barrier (or never touched shared memory): smem is free.
    float* red = smem;  // [G][BM][BN]
    for (int i = 0; i < 4; ++i)
        for (int j = 0; j < 4; ++j) red[(th.g * BM + th.tm * 4 + i) * BN + th.tn * 4 + j] = acc[i][j];
    __syncthreads();
    const int t = threadIdx.x;
    if (t < BM * BN / 4) {
        const int row = t / (BN / 4), c4 = (t % (BN / 4)) * 4;
        const int m = m0 + row, col = n0 + c4;
        if (m < M && col < N) {
            float v[4];
            for (int j = 0; j < 4; ++j) {
                float s = red[row * BN + c4 + j];
                for (int gg = 1; gg < T::G; ++gg) s += red[(gg * BM + row) * BN + c4 + j];
                v[j] = s;
            }
            float* o = out + static_cast<long long>(m) * N + col;
            if (vec) {
                *reinterpret_cast<float4*>(o) = make_float4(v[0], v[1], v[2], v[3]);
            } else {
                for (int j = 0; j < 4; ++j)
                    if (col + j < N) o[j] = v[j];
            }
        }
    }
}

// ------------------------------------------------------------------------------------------------
// Operand loaders: per-thread column / row state computed once, load(chunk) per chunk.

// A = w as [M][K] row-major (forward: M = c_out, K = c_in * khw), k fastest.
template <int BM, int BN>
struct ConvLoadW {
    using T = ConvTile<BM, BN>;
    const float* w;
    int M, K, m_first, k_off;
    __device__ ConvLoadW(const float* w_, int M_, int K_, int m0) : w(w_), M(M_), K(K_) {
        m_first = m0 + static_cast<int>(threadIdx.x) / T::KC;
        k_off = static_cast<int>(threadIdx.x) % T::KC;
    }
    __device__ void load(int c, float (&ra)[T::EA]) const {
        const int k = c * T::KC + k_off;
        for (int r = 0; r < T::EA; ++r) {
            const int m = m_first + r * T::KSTEP_ROWS;
            ra[r] = (m < M && k < K) ? w[m * K + k] : 0.0f;
        }
    }
};

// Forward, general geometry.
template <int BM, int BN>
struct ConvFwdLoad {
    using T = ConvTile<BM, BN>;
    static constexpr bool B_KFAST = false;
    ConvLoadW<BM, BN> a;
    const float* x;
    ConvShape s;
    int K, k_off;
    bool col_ok;
    int x_img;     // this thread's B column: offset of its image (khw == 1: of its single tap)
    int ih0, iw0;  // the column's top-left tap
    __device__ ConvFwdLoad(const float* x_, const float* w, const ConvShape& s_, int m0, int n0)
        : a(w, s_.c_out, s_.c_in * s_.kh * s_.kw, m0), x(x_), s(s_) {
        K = s.c_in * s.khw();
        k_off = static_cast<int>(threadIdx.x) / BN;
        const int col = n0 + static_cast<int>(threadIdx.x) % BN;
        const int ohw = s.ohw();
        col_ok = col < s.n * ohw;
        const int img = col_ok ? col / ohw : 0, q = col_ok ? col - img * ohw : 0;
        const int oh = q / s.out_w, ow = q - oh * s.out_w;
        x_img = img * s.c_in * s.hw();
        ih0 = oh * s.stride - s.pad;
        iw0 = ow * s.stride - s.pad;
        if (s.khw() == 1) {
            col_ok = col_ok && ih0 >= 0 && ih0 < s.h && iw0 >= 0 && iw0 < s.w;
            x_img += ih0 * s.w + iw0;
        }
    }
    __device__ void load(int c, float (&ra)[T::EA], float (&rb)[T::EB]) const {
        a.load(c, ra);
        const int kbase = c * T::KC + k_off;
        if (s.khw() == 1) {
            const int hw = s.hw();
            for (int r = 0; r < T::EB; ++r) {
                const int k = kbase + r * T::NSTEP_K;
                rb[r] = (col_ok && k < K) ? x[x_img + k * hw] : 0.0f;
            }
        } else {
            const int khw = s.khw();
            for (int r = 0; r < T::EB; ++r) {
                const int k = kbase + r * T::NSTEP_K;
                float v = 0.0f;
                if (col_ok && k < K) {
                    const int c_in = k / khw, tap = k - c_in * khw;
                    const int i = tap / s.kw, j = tap - i * s.kw;
                    const int ih = ih0 + i * s.dil, iw = iw0 + j * s.dil;
                    if (ih >= 0 && ih < s.h && iw >= 0 && iw < s.w) v = x[x_img + (c_in * s.h + ih) * s.w + iw];
                }
                rb[r] = v;
            }
        }
    }
};

// Input gradient, general geometry: A(m = c, k = (o, tap)) = w[(o * c_in + c) * khw + tap],
// B(k = (o, tap), col = (img, ih, iw)) = dy[img, o, oh, ow] where the tap maps (oh, ow) to (ih, iw).
template <int BM, int BN>
struct ConvBwdDataLoad {
    using T = ConvTile<BM, BN>;
    static constexpr bool B_KFAST = false;
    const float* w;
    const float* dy;
    ConvShape s;
    int K, m_first, ka_off, kb_off;
    bool col_ok;
    int dy_img;    // this thread's B column: offset of its image (khw == 1: of its one output pixel)
    int th0, tw0;  // ih + pad, iw + pad of the column
    __device__ ConvBwdDataLoad(const float* dy_, const float* w_, const ConvShape& s_, int m0, int n0)
        : w(w_), dy(dy_), s(s_) {
        K = s.c_out * s.khw();
        m_first = m0 + static_cast<int>(threadIdx.x) / T::KC;
        ka_off = static_cast<int>(threadIdx.x) % T::KC;
        kb_off = static_cast<int>(threadIdx.x) / BN;
        const int col = n0 + static_cast<int>(threadIdx.x) % BN;
        const int hw = s.hw();
        col_ok = col < s.n * hw;
        const int img = col_ok ? col / hw : 0, q = col_ok ? col - img * hw : 0;
        const int ih = q / s.w, iw = q - ih * s.w;
        dy_img = img * s.c_out * s.ohw();
        th0 = ih + s.pad;
        tw0 = iw + s.pad;
        if (s.khw() == 1) {
            const int oh = th0 / s.stride, ow = tw0 / s.stride;
            col_ok = col_ok && oh * s.stride == th0 && ow * s.stride == tw0 && oh < s.out_h && ow < s.out_w;
            dy_img += oh * s.out_w + ow;
        }
    }
    __device__ void load(int c, float (&ra)[T::EA], float (&rb)[T::EB]) const {
        const int khw = s.khw();
        {
            const int k = c * T::KC + ka_off;
            const int o = khw == 1 ? k : k / khw, tap = k - o * khw;
            for (int r = 0; r < T::EA; ++r) {
                const int m = m_first + r * T::KSTEP_ROWS;
                ra[r] = (m < s.c_in && k < K) ? w[(o * s.c_in + m) * khw + tap] : 0.0f;
            }
        }
        const int kbase = c * T::KC + kb_off;
        if (khw == 1) {
            const int ohw = s.ohw();
            for (int r = 0; r < T::EB; ++r) {
                const int k = kbase + r * T::NSTEP_K;
                rb[r] = (col_ok && k < K) ? dy[dy_img + k * ohw] : 0.0f;
            }
        } else {
            for (int r = 0; r < T::EB; ++r) {
                const int k = kbase + r * T::NSTEP_K;
                float v = 0.0f;
                if (col_ok && k < K) {
                    const int o = k / khw, tap = k - o * khw;
                    const int i = tap / s.kw, j = tap - i * s.kw;
                    const int th = th0 - i * s.dil, tw = tw0 - j * s.dil;
                    if (th >= 0 && tw >= 0) {
                        const int oh = th / s.stride, ow = tw / s.stride;
                        if (oh * s.stride == th && ow * s.stride == tw && oh < s.out_h && ow < s.out_w)
                            v = dy[dy_img + (o * s.out_h + oh) * s.out_w + ow];
                    }
                }
                rb[r] = v;
            }
        }
    }
};

// Weight gradient, general geometry: reduction index l = (img, oh, ow), k fastest for both.
// A(m = o, l) = dy[img, o, oh, ow]; B(l, col = (c, i, j)) = x[img, c, oh*s - p + i*d, ow*s - p + j*d].
template <int BM, int BN>
struct ConvBwdWeightLoad {
    using T = ConvTile<BM, BN>;
    static constexpr bool B_KFAST = true;
    const float* x;
    const float* dy;
    ConvShape s;
    int L, m_first, l_off;
    // Per B column r: x_c = c * HW (-1 past N) and the tap's offsets (i*d - p, j*d - p) packed
    // as two signed 16-bit halves (|offsets| < 2^15 is checked by the host).
    int x_c[T::EB], tap_off[T::EB];
    __device__ ConvBwdWeightLoad(const float* x_, const float* dy_, const ConvShape& s_, int m0, int n0)
        : x(x_), dy(dy_), s(s_) {
        L = s.n * s.ohw();
        m_first = m0 + static_cast<int>(threadIdx.x) / T::KC;
        l_off = static_cast<int>(threadIdx.x) % T::KC;
        const int N = s.c_in * s.khw(), khw = s.khw(), hw = s.hw();
        for (int r = 0; r < T::EB; ++r) {
            const int col = n0 + static_cast<int>(threadIdx.x) / T::KC + r * T::KSTEP_ROWS;
            const int c_in = col / khw, tap = col - c_in * khw;
            const int i = tap / s.kw, j = tap - i * s.kw;
            x_c[r] = col < N ? c_in * hw : -1;
            tap_off[r] = static_cast<int>((static_cast<unsigned>(i * s.dil - s.pad) << 16) |
                                          (static_cast<unsigned>(j * s.dil - s.pad) & 0xffffu));
        }
    }
    __device__ void load(int c, float (&ra)[T::EA], float (&rb)[T::EB]) const {
        const int l = c * T::KC + l_off;
        const bool l_ok = l < L;
        const int ohw = s.ohw();
        const int img = l_ok ? l / ohw : 0, q = l_ok ? l - img * ohw : 0;
        const int oh = q / s.out_w, ow = q - oh * s.out_w;
        const int dy_l = img * s.c_out * ohw + q;
        for (int r = 0; r < T::EA; ++r) {
            const int m = m_first + r * T::KSTEP_ROWS;
            ra[r] = (l_ok && m < s.c_out) ? dy[dy_l + m * ohw] : 0.0f;
        }
        const int x_img = img * s.c_in * s.hw();
        const int ihb = oh * s.stride, iwb = ow * s.stride;
        for (int r = 0; r < T::EB; ++r) {
            const int ih = ihb + (tap_off[r] >> 16);                     // arithmetic shift
            const int iw = iwb + static_cast<int>(static_cast<short>(tap_off[r] & 0xffff));
            const bool ok = l_ok && x_c[r] >= 0 && static_cast<unsigned>(ih) < static_cast<unsigned>(s.h) &&
                            static_cast<unsigned>(iw) < static_cast<unsigned>(s.w);
            rb[r] = ok ? x[x_img + x_c[r] + ih * s.w + iw] : 0.0f;
        }
    }
};

// Pointwise forward: A = w [c_out][c_in]; B(k = c, col = (img, px)) = x[img, c, px].
template <int BM, int BN>
struct PwFwdLoad {
    using T = ConvTile<BM, BN>;
    static constexpr bool B_KFAST = false;
    ConvLoadW<BM, BN> a;
    const float* x;
    int K, P, k_off, x_col;
    bool col_ok;
    __device__ PwFwdLoad(const float* x_, const float* w, int n, int c_in, int c_out, int P_, int m0, int n0)
        : a(w, c_out, c_in, m0), x(x_), K(c_in), P(P_) {
        k_off = static_cast<int>(threadIdx.x) / BN;
        const int col = n0 + static_cast<int>(threadIdx.x) % BN;
        col_ok = col < n * P;
        const int img = col_ok ? col / P : 0, px = col_ok ? col - img * P : 0;
        x_col = img * c_in * P + px;
    }
    __device__ void load(int c, float (&ra)[T::EA], float (&rb)[T::EB]) const {
        a.load(c, ra);
        const int kbase = c * T::KC + k_off;
        for (int r = 0; r < T::EB; ++r) {
            const int k = kbase + r * T::NSTEP_K;
            rb[r] = (col_ok && k < K) ? x[x_col + k * P] : 0.0f;
        }
    }
};

// Pointwise input gradient: A(m = c, k = o) = w[o, c]; B(k = o, col = (img, px)) = dy[img, o, px].
template <int BM, int BN>
struct PwBwdDataLoad {
    using T = ConvTile<BM, BN>;
    static constexpr bool B_KFAST = false;
    const float* w;
    const float* dy;
    int M, K, P, m_first, ka_off, kb_off, dy_col;
    bool col_ok;
    __device__ PwBwdDataLoad(const float* dy_, const float* w_, int n, int c_in, int c_out, int P_, int m0,
                             int n0)
        : w(w_), dy(dy_), M(c_in), K(c_out), P(P_) {
        m_first = m0 + static_cast<int>(threadIdx.x) / T::KC;
        ka_off = static_cast<int>(threadIdx.x) % T::KC;
        kb_off = static_cast<int>(threadIdx.x) / BN;
        const int col = n0 + static_cast<int>(threadIdx.x) % BN;
        col_ok = col < n * P;
        const int img = col_ok ? col / P : 0, px = col_ok ? col - img * P : 0;
        dy_col = img * c_out * P + px;
    }
    __device__ void load(int c, float (&ra)[T::EA], float (&rb)[T::EB]) const {
        const int ka = c * T::KC + ka_off;
        for (int r = 0; r < T::EA; ++r) {
            const int m = m_first + r * T::KSTEP_ROWS;
            ra[r] = (m < M && ka < K) ? w[ka * M + m] : 0.0f;
        }
        const int kbase = c * T::KC + kb_off;
        for (int r = 0; r < T::EB; ++r) {
            const int k = kbase + r * T::NSTEP_K;
            rb[r] = (col_ok && k < K) ? dy[dy_col + k * P] : 0.0f;
        }
    }
};

// Pointwise weight gradient: l = (img, px); A(m = o, l) = dy[img, o, px]; B(l, col = c) = x[img, c, px].
template <int BM, int BN>
struct PwBwdWeightLoad {
    using T = ConvTile<BM, BN>;
    static constexpr bool B_KFAST = true;
    const float* x;
    const float* dy;
    int c_in, c_out, P, L, m_first, col_first, l_off;
    __device__ PwBwdWeightLoad(const float* x_, const float* dy_, int n, int c_in_, int c_out_, int P_, int m0,
                               int n0)
        : x(x_), dy(dy_), c_in(c_in_), c_out(c_out_), P(P_) {
        L = n * P;
        m_first = m0 + static_cast<int>(threadIdx.x) / T::KC;
        col_first = n0 + static_cast<int>(threadIdx.x) / T::KC;
        l_off = static_cast<int>(threadIdx.x) % T::KC;
    }
    __device__ void load(int c, float (&ra)[T::EA], float (&rb)[T::EB]) const {
        const int l = c * T::KC + l_off;
        const bool l_ok = l < L;
        const int img = l_ok ? l / P : 0, px = l_ok ? l - img * P : 0;
        const int dy_l = img * c_out * P + px, x_l = img * c_in * P + px;
        for (int r = 0; r < T::EA; ++r) {
            const int m = m_first + r * T::KSTEP_ROWS;
            ra[r] = (l_ok && m < c_out) ? dy[dy_l + m * P] : 0.0f;
        }
        for (int r = 0; r < T::EB; ++r) {
            const int col = col_first + r * T::KSTEP_ROWS;
            rb[r] = (l_ok && col < c_in) ? x[x_l + col * P] : 0.0f;
        }
    }
};

// ------------------------------------------------------------------------------------------------
// Tile bodies.

template <int BM, int BN>
static __device__ __forceinline__ void conv_fwd_tile(const float* x, const float* w, float* y, const ConvShape& s,
                                                     float* smem) {
    const int m0 = blockIdx.y * BM, n0 = blockIdx.x * BN;
    const ConvFwdLoad<BM, BN> ld(x, w, s, m0, n0);
    const int K = s.c_in * s.khw(), KC = ConvTile<BM, BN>::KC;
    float acc[4][4];
    conv_mainloop<BM, BN>(ld, 0, (K + KC - 1) / KC, smem, acc);
    conv_store_nchw<BM, BN>(acc, y, s.c_out, s.n * s.ohw(), s.ohw(), m0, n0);
}

template <int BM, int BN>
static __device__ __forceinline__ void conv_bwd_data_tile(const float* dy, const float* w, float* dx,
                                                          const ConvShape& s, float* smem) {
    const int m0 = blockIdx.y * BM, n0 = blockIdx.x * BN;
    const ConvBwdDataLoad<BM, BN> ld(dy, w, s, m0, n0);
    const int K = s.c_out * s.khw(), KC = ConvTile<BM, BN>::KC;
    float acc[4][4];
    conv_mainloop<BM, BN>(ld, 0, (K + KC - 1) / KC, smem, acc);
    conv_store_nchw<BM, BN>(acc, dx, s.c_in, s.n * s.hw(), s.hw(), m0, n0);
}

template <int BM, int BN>
static __device__ __forceinline__ void conv_bwd_weight_tile(const float* x, const float* dy, float* out,
                                                            const ConvShape& s, int cps, float* smem) {
    const int m0 = blockIdx.y * BM, n0 = blockIdx.x * BN;
    const ConvBwdWeightLoad<BM, BN> ld(x, dy, s, m0, n0);
    const int M = s.c_out, N = s.c_in * s.khw(), KC = ConvTile<BM, BN>::KC;
    const int nchunks = (s.n * s.ohw() + KC - 1) / KC;
    const int c_begin = static_cast<int>(blockIdx.z) * cps;
    const int c_end = c_begin + cps < nchunks ? c_begin + cps : nchunks;
    float acc[4][4];
    conv_mainloop<BM, BN>(ld, c_begin, c_end, smem, acc);
    conv_store_mat<BM, BN>(acc, smem, out + static_cast<long long>(blockIdx.z) * M * N, M, N, m0, n0);
}

template <int BM, int BN>
static __device__ __forceinline__ void pw_fwd_tile(const float* x, const float* w, float* y, int n, int c_in,
                                                   int c_out, int P, float* smem) {
    const int m0 = blockIdx.y * BM, n0 = blockIdx.x * BN;
    const PwFwdLoad<BM, BN> ld(x, w, n, c_in, c_out, P, m0, n0);
    const int KC = ConvTile<BM, BN>::KC;
    float acc[4][4];
    conv_mainloop<BM, BN>(ld, 0, (c_in + KC - 1) / KC, smem, acc);
    conv_store_nchw<BM, BN>(acc, y, c_out, n * P, P, m0, n0);
}

template <int BM, int BN>
static __device__ __forceinline__ void pw_bwd_data_tile(const float* dy, const float* w, float* dx, int n,
                                                        int c_in, int c_out, int P, float* smem) {
    const int m0 = blockIdx.y * BM, n0 = blockIdx.x * BN;
    const PwBwdDataLoad<BM, BN> ld(dy, w, n, c_in, c_out, P, m0, n0);
    const int KC = ConvTile<BM, BN>::KC;
    float acc[4][4];
    conv_mainloop<BM, BN>(ld, 0, (c_out + KC - 1) / KC, smem, acc);
    conv_store_nchw<BM, BN>(acc, dx, c_in, n * P, P, m0, n0);
}

// `split` is the block's run of reduction chunks (blockIdx.z of the one-slot kernel).
template <int BM, int BN>
static __device__ __forceinline__ void pw_bwd_weight_tile(const float* x, const float* dy, float* out, int n,
                                                          int c_in, int c_out, int P, int cps, int split,
                                                          float* smem) {
    const int m0 = blockIdx.y * BM, n0 = blockIdx.x * BN;
    const PwBwdWeightLoad<BM, BN> ld(x, dy, n, c_in, c_out, P, m0, n0);
    const int KC = ConvTile<BM, BN>::KC;
    const int nchunks = (n * P + KC - 1) / KC;
    const int c_begin = split * cps;
    const int c_end = c_begin + cps < nchunks ? c_begin + cps : nchunks;
    float acc[4][4];
    conv_mainloop<BM, BN>(ld, c_begin, c_end, smem, acc);
    conv_store_mat<BM, BN>(acc, smem, out + static_cast<long long>(split) * c_out * c_in, c_out, c_in, m0, n0);
}

// ------------------------------------------------------------------------------------------------
// Kernels. `tile` is uniform over the grid, so each switch is a uniform branch.


extern "C" __global__ void __launch_bounds__(CONV_THREADS, 3)
    conv2d_fwd_f32(const float* __restrict__ x, const float* __restrict__ w, float* __restrict__ y,
                   ConvShape shape, int tile) {
    __shared__ __align__(16) float smem[ConvSmem::MN];
    const ConvShape s = shape;
    if (tile == 0) conv_fwd_tile<64, 64>(x, w, y, s, smem);
    else if (tile == 1) conv_fwd_tile<32, 128>(x, w, y, s, smem);
    else conv_fwd_tile<16, 256>(x, w, y, s, smem);
}

extern "C" __global__ void __launch_bounds__(CONV_THREADS, 3)
    conv2d_bwd_data_f32(const float* __restrict__ dy, const float* __restrict__ w, float* __restrict__ dx,
                        ConvShape shape, int tile) {
    __shared__ __align__(16) float smem[ConvSmem::MN];
    const ConvShape s = shape;
    if (tile == 0) conv_bwd_data_tile<64, 64>(dy, w, dx, s, smem);
    else if (tile == 1) conv_bwd_data_tile<32, 128>(dy, w, dx, s, smem);
    else conv_bwd_data_tile<16, 256>(dy, w, dx, s, smem);
}

// `out` is dw when gridDim.z == 1, else the [gridDim.z][c_out][c_in*kh*kw] partials; block z
// reduces chunks [z * cps, (z + 1) * cps) of the ceil(n*out_h*out_w / KC) chunks.
extern "C" __global__ void __launch_bounds__(CONV_THREADS, 2)
    conv2d_bwd_weight_f32(const float* __restrict__ x, const float* __restrict__ dy, float* __restrict__ out,
                          ConvShape shape, int tile, int cps) {
    __shared__ __align__(16) float smem[ConvSmem::W];
    const ConvShape s = shape;
    if (tile == 0) conv_bwd_weight_tile<64, 64>(x, dy, out, s, cps, smem);
    else if (tile == 1) conv_bwd_weight_tile<32, 32>(x, dy, out, s, cps, smem);
    else conv_bwd_weight_tile<16, 16>(x, dy, out, s, cps, smem);
}

// Pointwise (1x1, stride 1, pad 0): hw = h * w pixels per plane.
extern "C" __global__ void __launch_bounds__(CONV_THREADS, 4)
    conv2d_pw_fwd_f32(const float* __restrict__ x, const float* __restrict__ w, float* __restrict__ y, int n,
                      int c_in, int c_out, int hw, int tile) {
    __shared__ __align__(16) float smem[ConvSmem::MN];
    if (tile == 0) pw_fwd_tile<64, 64>(x, w, y, n, c_in, c_out, hw, smem);
    else if (tile == 1) pw_fwd_tile<32, 128>(x, w, y, n, c_in, c_out, hw, smem);
    else pw_fwd_tile<16, 256>(x, w, y, n, c_in, c_out, hw, smem);
}

extern "C" __global__ void __launch_bounds__(CONV_THREADS, 4)
    conv2d_pw_bwd_data_f32(const float* __restrict__ dy, const float* __restrict__ w, float* __restrict__ dx,
                           int n, int c_in, int c_out, int hw, int tile) {
    __shared__ __align__(16) float smem[ConvSmem::MN];
    if (tile == 0) pw_bwd_data_tile<64, 64>(dy, w, dx, n, c_in, c_out, hw, smem);
    else if (tile == 1) pw_bwd_data_tile<32, 128>(dy, w, dx, n, c_in, c_out, hw, smem);
    else pw_bwd_data_tile<16, 256>(dy, w, dx, n, c_in, c_out, hw, smem);
}

extern "C" __global__ void __launch_bounds__(CONV_THREADS, 3)
    conv2d_pw_bwd_weight_f32(const float* __restrict__ x, const float* __restrict__ dy, float* __restrict__ out,
                             int n, int c_in, int c_out, int hw, int tile, int cps) {
    __shared__ __align__(16) float smem[ConvSmem::W];
    const int split = static_cast<int>(blockIdx.z);
    if (tile == 0) pw_bwd_weight_tile<64, 64>(x, dy, out, n, c_in, c_out, hw, cps, split, smem);
    else if (tile == 1) pw_bwd_weight_tile<32, 32>(x, dy, out, n, c_in, c_out, hw, cps, split, smem);
    else pw_bwd_weight_tile<16, 16>(x, dy, out, n, c_in, c_out, hw, cps, split, smem);
}

// dw[e] = sum_{z < splits} partial[z * mn + e], added in z order; grid-stride over x.
static __device__ __forceinline__ void conv_final_sum(const float* __restrict__ partial, int splits, int mn,
                                                      float* __restrict__ dw) {
    const unsigned umn = mn > 0 ? static_cast<unsigned>(mn) : 0u;
    const unsigned stride = blockDim.x * gridDim.x;
    for (unsigned e = blockIdx.x * blockDim.x + threadIdx.x; e < umn; e += stride) {
        float acc = partial[e];
        for (int z = 1; z < splits; ++z) acc += partial[static_cast<size_t>(z) * umn + e];
        dw[e] = acc;
    }
}

extern "C" __global__ void conv2d_bwd_weight_final_f32(const float* __restrict__ partial, int splits, int mn,
                                                       float* __restrict__ dw) {
    conv_final_sum(partial, splits, mn, dw);
}

// ------------------------------------------------------------------------------------------------
// Slotted pointwise kernels: up to PW_SLOTS independent GEMMs of one shape (the pointwise convs of
// an edge's conv candidates) in one launch. Slot s runs exactly the blocks and the arithmetic of
// the one-slot kernel on its own pointers, so each slot's result is bitwise the same.

#define PW_SLOTS 4

// Shared with src/backend/gpu/launch/conv.rs (#[repr(C)] PwSlots). Slots >= the launch's count
// are never read. Pointers per kernel: fwd (a = x, b = w, out = y), bwd_data (a = dy, b = w,
// out = dx), bwd_weight (a = x, b = dy, out = dw, or the slot's [splits][c_out][c_in] partials).
struct PwSlots {
    const float* a[PW_SLOTS];
    const float* b[PW_SLOTS];
    float* out[PW_SLOTS];
    int n, c_in, c_out, hw, tile, cps, splits, pad_;
};

// Shared with launch/conv.rs (#[repr(C)] PwFinalSlots): slot s sums partial[s] into dw[s].
struct PwFinalSlots {
    const float* partial[PW_SLOTS];
    float* dw[PW_SLOTS];
    int splits, mn;
};

// The slotted GEMM kernels run slot S = blockIdx.z (or z / splits) through a switch over
// compile-time slot indices, so that the slot's pointers are constant-bank operands as in the
// one-slot kernels. Picked at run time they would take 6 more registers, which spills within the
// 80-register budget of the weight gradient; and nvcc 11.8 copies a by-value parameter struct of
// <= 128 bytes that is indexed dynamically into a local-memory stack frame (larger ones it reads
// in place). The forward and input-gradient kernels still spill 4-8 registers on sm_90 within
// the one-slot kernels' 64 (4 blocks per SM), so they get 80 (3 blocks per SM).
#define PW_SLOT_SWITCH(s, CALL)                   \
    switch (s) { /* uniform over the block */     \
        case 0: CALL(0); break;                   \
        case 1: CALL(1); break;                   \
        case 2: CALL(2); break;                   \
        default: CALL(3); break;                  \
    }
static_assert(PW_SLOTS == 4, "PW_SLOT_SWITCH has one case per slot");

template <int S>
static __device__ __forceinline__ void pw_fwd_slot(const PwSlots& p, float* smem) {
    if (p.tile == 0) pw_fwd_tile<64, 64>(p.a[S], p.b[S], p.out[S], p.n, p.c_in, p.c_out, p.hw, smem);
    else if (p.tile == 1) pw_fwd_tile<32, 128>(p.a[S], p.b[S], p.out[S], p.n, p.c_in, p.c_out, p.hw, smem);
    else pw_fwd_tile<16, 256>(p.a[S], p.b[S], p.out[S], p.n, p.c_in, p.c_out, p.hw, smem);
}

template <int S>
static __device__ __forceinline__ void pw_bwd_data_slot(const PwSlots& p, float* smem) {
    if (p.tile == 0) pw_bwd_data_tile<64, 64>(p.a[S], p.b[S], p.out[S], p.n, p.c_in, p.c_out, p.hw, smem);
    else if (p.tile == 1) pw_bwd_data_tile<32, 128>(p.a[S], p.b[S], p.out[S], p.n, p.c_in, p.c_out, p.hw, smem);
    else pw_bwd_data_tile<16, 256>(p.a[S], p.b[S], p.out[S], p.n, p.c_in, p.c_out, p.hw, smem);
}

template <int S>
static __device__ __forceinline__ void pw_bwd_weight_slot(const PwSlots& p, int split, float* smem) {
    if (p.tile == 0)
        pw_bwd_weight_tile<64, 64>(p.a[S], p.b[S], p.out[S], p.n, p.c_in, p.c_out, p.hw, p.cps, split, smem);
    else if (p.tile == 1)
        pw_bwd_weight_tile<32, 32>(p.a[S], p.b[S], p.out[S], p.n, p.c_in, p.c_out, p.hw, p.cps, split, smem);
    else
        pw_bwd_weight_tile<16, 16>(p.a[S], p.b[S], p.out[S], p.n, p.c_in, p.c_out, p.hw, p.cps, split, smem);
}

// grid (ceil(N / BN), ceil(M / BM), slots): block z works on slot z.
extern "C" __global__ void __launch_bounds__(CONV_THREADS, 3) conv2d_pw_fwd_slots_f32(PwSlots p) {
    __shared__ __align__(16) float smem[ConvSmem::MN];
#define PW_CALL(S) pw_fwd_slot<S>(p, smem)
    PW_SLOT_SWITCH(static_cast<int>(blockIdx.z), PW_CALL)
#undef PW_CALL
}

// grid (ceil(N / BN), ceil(M / BM), slots): block z works on slot z.
extern "C" __global__ void __launch_bounds__(CONV_THREADS, 3) conv2d_pw_bwd_data_slots_f32(PwSlots p) {
    __shared__ __align__(16) float smem[ConvSmem::MN];
#define PW_CALL(S) pw_bwd_data_slot<S>(p, smem)
    PW_SLOT_SWITCH(static_cast<int>(blockIdx.z), PW_CALL)
#undef PW_CALL
}

// grid (ceil(N / BN), ceil(M / BM), slots * splits): block z is split z % splits of slot z / splits.
extern "C" __global__ void __launch_bounds__(CONV_THREADS, 3) conv2d_pw_bwd_weight_slots_f32(PwSlots p) {
    __shared__ __align__(16) float smem[ConvSmem::W];
    const int z = static_cast<int>(blockIdx.z);
    const int s = z / p.splits, split = z - s * p.splits;
#define PW_CALL(S) pw_bwd_weight_slot<S>(p, split, smem)
    PW_SLOT_SWITCH(s, PW_CALL)
#undef PW_CALL
}

// grid (any x, slots): row y finishes slot y, exactly as conv2d_bwd_weight_final_f32.
extern "C" __global__ void conv2d_bwd_weight_final_slots_f32(PwFinalSlots p) {
    const int s = static_cast<int>(blockIdx.y);
#define PW_CALL(S) conv_final_sum(p.partial[S], p.splits, p.mn, p.dw[S])
    PW_SLOT_SWITCH(s, PW_CALL)
#undef PW_CALL
}
