/*
Channel concatenation / split and spatial crop (f32, NCHW), mirroring src/backend/cpu/concat.rs.

  concat   y[ni, c_base + off_q + c, s] = part_q[ni, c, s]     c < c_q, s < hw
  split    part_q[ni, c, s] = y[ni, c_base + off_q + c, s]    (the inverse, and concat's backward)
  crop     y[pl, i, j] = x[pl, top + i, left + j]             i < oh, j < ow
  crop bwd dx[pl, top + i, left + j] = dy[pl, i, j], dx = 0 elsewhere in the h x w plane
with off_q = c_0 + ... + c_{q-1}. Pure copies: results are bitwise exact and order-free.

Up to LAYOUT_MAX_PARTS = 8 parts per launch, passed BY VALUE as a struct of 8 device pointers
(Rust: Arg::Ptrs8) plus eight `int` channel counts c0..c7 (slots >= nparts are ignored; a part
with 0 channels is allowed). More parts: the host launches once per group of 8, each group
writing (or reading) its own channel slice [c_base, c_base + sum of its c_q) of y, whose total
channel count is c_total. In DARTS a cell concatenates its 4 intermediate nodes: one launch.

Launch shapes (all kernels): one thread per element of the tensor being WRITTEN, grid-stride:
  block = LAYOUT_BLOCK = 256 (any 1-D block is correct),
  grid = min(ceil(elements / 256), 65535); no shared memory.
  concat / split: elements = n * (sum of the group's c_q) * hw; consecutive threads walk a
    channel plane, so both the part and y accesses are contiguous runs of hw floats.
  crop_fwd: elements = planes * oh * ow;  crop_bwd: elements = planes * h * w (dx is fully
    written, zeros included: no separate fill launch).
The crop kernels take their geometry as one struct CropGeom by value after the two buffers
(shared with launch/layout.rs as #[repr(C)]: planes, h, w, top, left, oh, ow).
The part of a channel is found from the 7 prefix offsets by compares and selects (scalars
only: an indexed array would live in local memory). Scalar 4-byte accesses: the copies are
coalesced, and hw is odd in some shapes, so there is no float4 path.
Assumptions: contiguous buffers, every element count < 2^31; outputs do not alias inputs;
crop windows lie inside the input (the host checks top + oh <= h, left + ow <= w).
*/
#define LAYOUT_BLOCK 256
#define LAYOUT_MAX_PARTS 8

struct LayoutPtrs8 {
    const float* p[LAYOUT_MAX_PARTS];
};
struct LayoutPtrs8Mut {
    float* p[LAYOUT_MAX_PARTS];
};

// A group's channel layout: part q covers channels [off[q], off[q] + c[q]) of the group. Kept in
// scalars (no arrays: an indexed array would live in local memory).
struct LayoutGroup {
    int o1, o2, o3, o4, o5, o6, o7;  // prefix offsets; part 0 starts at 0
    int channels;                    // o7 + c7: the group's channel count
};

static __device__ __forceinline__ LayoutGroup layout_group(int nparts, int c0, int c1, int c2, int c3, int c4,
                                                           int c5, int c6, int c7) {
    // Slots past nparts count as empty parts.
    LayoutGroup g;
    g.o1 = nparts > 0 ? c0 : 0;
    g.o2 = g.o1 + (nparts > 1 ? c1 : 0);
    g.o3 = g.o2 + (nparts > 2 ? c2 : 0);
    g.o4 = g.o3 + (nparts > 3 ? c3 : 0);
    g.o5 = g.o4 + (nparts > 4 ? c4 : 0);
    g.o6 = g.o5 + (nparts > 5 ? c5 : 0);
    g.o7 = g.o6 + (nparts > 6 ? c6 : 0);
    g.channels = g.o7 + (nparts > 7 ? c7 : 0);
    return g;
}

// The part holding group channel cc (0 <= cc < channels): the last q whose start is <= cc (an
// empty part shares its start with the next one, which then wins), with its start and size.
static __device__ __forceinline__ int layout_part_of(const LayoutGroup& g, int cc, int* start, int* size) {
    const int q = (cc >= g.o1) + (cc >= g.o2) + (cc >= g.o3) + (cc >= g.o4) + (cc >= g.o5) + (cc >= g.o6) +
                  (cc >= g.o7);
    const int lo = q == 0 ? 0
                 : q == 1 ? g.o1
                 : q == 2 ? g.o2
                 : q == 3 ? g.o3
                 : q == 4 ? g.o4
                 : q == 5 ? g.o5
                 : q == 6 ? g.o6
                          : g.o7;
    const int hi = q == 0 ? g.o1
                 : q == 1 ? g.o2
                 : q == 2 ? g.o3
                 : q == 3 ? g.o4
                 : q == 4 ? g.o5
                 : q == 5 ? g.o6
                 : q == 6 ? g.o7
                          : g.channels;
    *start = lo;
    *size = hi - lo;
    return q;
}

// Slot q of a pointer struct by selects on scalars (indexing the by-value struct with a runtime q
// would copy it to local memory).
template <class P>
static __device__ __forceinline__ P layout_pick(P p0, P p1, P p2, P p3, P p4, P p5, P p6, P p7, int q) {
    const P lo = q < 2 ? (q == 0 ? p0 : p1) : (q == 2 ? p2 : p3);
    const P hi = q < 6 ? (q == 4 ? p4 : p5) : (q == 6 ? p6 : p7);
    return q < 4 ? lo : hi;
}

extern "C" __global__ void __launch_bounds__(LAYOUT_BLOCK)
    concat_channels_f32(LayoutPtrs8 parts, int nparts, int c0, int c1, int c2, int c3, int c4, int c5, int c6,
                        int c7, int n, int hw, int c_total, int c_base, float* __restrict__ y) {
    const LayoutGroup g = layout_group(nparts, c0, c1, c2, c3, c4, c5, c6, c7);
    if (n <= 0 || hw <= 0 || g.channels <= 0) return;
    const unsigned uhw = static_cast<unsigned>(hw), ucg = static_cast<unsigned>(g.channels);
    const unsigned total = static_cast<unsigned>(n) * ucg * uhw;
    const unsigned stride = blockDim.x * gridDim.x;
    for (unsigned idx = blockIdx.x * blockDim.x + threadIdx.x; idx < total; idx += stride) {
        const unsigned sp = idx % uhw, t = idx / uhw;
        const int cc = static_cast<int>(t % ucg);
        const unsigned ni = t / ucg;
        int c_off, c_part;
        const int q = layout_part_of(g, cc, &c_off, &c_part);
        const float* src = layout_pick(parts.p[0], parts.p[1], parts.p[2], parts.p[3], parts.p[4], parts.p[5],
                                       parts.p[6], parts.p[7], q);
        const size_t from = (static_cast<size_t>(ni) * c_part + (cc - c_off)) * uhw + sp;
        const size_t to = (static_cast<size_t>(ni) * c_total + c_base + cc) * uhw + sp;
        y[to] = src[from];
    }
}

extern "C" __global__ void __launch_bounds__(LAYOUT_BLOCK)
    split_channels_f32(const float* __restrict__ y, int n, int hw, int c_total, int c_base,
                       LayoutPtrs8Mut parts, int nparts, int c0, int c1, int c2, int c3, int c4, int c5,
                       int c6, int c7) {
    const LayoutGroup g = layout_group(nparts, c0, c1, c2, c3, c4, c5, c6, c7);
    if (n <= 0 || hw <= 0 || g.channels <= 0) return;
    const unsigned uhw = static_cast<unsigned>(hw), ucg = static_cast<unsigned>(g.channels);
    const unsigned total = static_cast<unsigned>(n) * ucg * uhw;
    const unsigned stride = blockDim.x * gridDim.x;
    for (unsigned idx = blockIdx.x * blockDim.x + threadIdx.x; idx < total; idx += stride) {
        const unsigned sp = idx % uhw, t = idx / uhw;
        const int cc = static_cast<int>(t % ucg);
        const unsigned ni = t / ucg;
        int c_off, c_part;
        const int q = layout_part_of(g, cc, &c_off, &c_part);
        float* dst = layout_pick(parts.p[0], parts.p[1], parts.p[2], parts.p[3], parts.p[4], parts.p[5],
                                 parts.p[6], parts.p[7], q);
        const size_t from = (static_cast<size_t>(ni) * c_total + c_base + cc) * uhw + sp;
        const size_t to = (static_cast<size_t>(ni) * c_part + (cc - c_off)) * uhw + sp;
        dst[to] = y[from];
    }
}

// The crop kernels' geometry, one by-value parameter (28 bytes).
struct CropGeom {
    int planes, h, w, top, left, oh, ow;
};

extern "C" __global__ void __launch_bounds__(LAYOUT_BLOCK)
    crop_fwd_f32(const float* __restrict__ x, float* __restrict__ y, CropGeom g) {
    const int planes = g.planes, h = g.h, w = g.w, top = g.top, left = g.left, oh = g.oh, ow = g.ow;
    if (planes <= 0 || oh <= 0 || ow <= 0) return;
    const unsigned uow = static_cast<unsigned>(ow), uoh = static_cast<unsigned>(oh);
    const unsigned total = static_cast<unsigned>(planes) * uoh * uow;
    const unsigned stride = blockDim.x * gridDim.x;
    for (unsigned idx = blockIdx.x * blockDim.x + threadIdx.x; idx < total; idx += stride) {
        const unsigned j = idx % uow, t = idx / uow;
        const unsigned i = t % uoh, pl = t / uoh;
        y[idx] = x[(static_cast<size_t>(pl) * h + top + i) * w + left + j];
    }
}

extern "C" __global__ void __launch_bounds__(LAYOUT_BLOCK)
    crop_bwd_f32(const float* __restrict__ dy, float* __restrict__ dx, CropGeom g) {
    const int planes = g.planes, h = g.h, w = g.w, top = g.top, left = g.left, oh = g.oh, ow = g.ow;
    if (planes <= 0 || h <= 0 || w <= 0) return;
    const unsigned uw = static_cast<unsigned>(w), uh = static_cast<unsigned>(h);
    const unsigned total = static_cast<unsigned>(planes) * uh * uw;
    const unsigned stride = blockDim.x * gridDim.x;
    for (unsigned idx = blockIdx.x * blockDim.x + threadIdx.x; idx < total; idx += stride) {
        const int j = static_cast<int>(idx % uw) - left;
        const unsigned t = idx / uw;
        const int i = static_cast<int>(t % uh) - top;
        const unsigned pl = t / uh;
        float v = 0.0f;
        if (i >= 0 && i < oh && j >= 0 && j < ow) v = dy[(static_cast<size_t>(pl) * oh + i) * ow + j];
        dx[idx] = v;
    }
}
