/*
Row-wise softmax (f32) and its backward, over `rows` consecutive rows of k floats.

  forward   m = max_j x_j;  e_j = expf(x_j - m);  y_j = e_j / sum_j e_j
            (shifting by the row max keeps every exponent <= 0: no overflow for large logits)
  backward  dx_j = y_j * (dy_j - <dy, y>)        (from the forward OUTPUT y)

One thread per row: in DARTS the rows are the alpha rows (14 edges per cell type, k = 8 ops),
and the same kernels serve small classifier rows (k = 10). Each thread loops over its row's k
values in increasing j (sums are sequential, the dot product uses fmaf), so the result is
bitwise independent of the launch shape and of scheduling. For rows with thousands of values a
warp- or block-per-row kernel would be faster; these stay correct for any k >= 1.

Launch shape (both kernels):
  block = 256 threads recommended (any 1-D block is correct);
  grid  = ceil(rows / 256) blocks, capped at 65535 (rows are a grid-stride loop);
  shared memory: none.
Assumptions: contiguous row-major [rows][k], rows * k < 2^31; k <= 0 does nothing.
In place is allowed: y may be x (forward), dx may be dy (backward): each element is read
before it is written by the thread that owns its row. (Hence no __restrict__.)
The max uses fmaxf (a NaN entry is skipped by the max, as in the CPU backend, but still makes
its own y and the row sum NaN). The normalisation divides (correctly rounded) rather than
multiplying by a reciprocal, as the CPU backend does.
*/
#define SOFTMAX_BLOCK 256

extern "C" __global__ void softmax_rows_f32(const float* x, float* y, int rows, int k) {
    if (k <= 0) return;
    const unsigned urows = rows > 0 ? static_cast<unsigned>(rows) : 0u;
    const unsigned uk = static_cast<unsigned>(k);
    const unsigned stride = blockDim.x * gridDim.x;
    for (unsigned r = blockIdx.x * blockDim.x + threadIdx.x; r < urows; r += stride) {
        const float* xr = x + static_cast<size_t>(r) * uk;
        float* yr = y + static_cast<size_t>(r) * uk;
        float m = xr[0];
        for (unsigned j = 1; j < uk; ++j) m = fmaxf(m, xr[j]);
        float total = 0.0f;
        for (unsigned j = 0; j < uk; ++j) {
            const float e = expf(xr[j] - m);
            yr[j] = e;
            total += e;
        }
        for (unsigned j = 0; j < uk; ++j) yr[j] = yr[j] / total;
    }
}

extern "C" __global__ void softmax_rows_bwd_f32(const float* y, const float* dy, float* dx, int rows, int k) {
    if (k <= 0) return;
    const unsigned urows = rows > 0 ? static_cast<unsigned>(rows) : 0u;
    const unsigned uk = static_cast<unsigned>(k);
    const unsigned stride = blockDim.x * gridDim.x;
    for (unsigned r = blockIdx.x * blockDim.x + threadIdx.x; r < urows; r += stride) {
        const size_t off = static_cast<size_t>(r) * uk;
        const float* yr = y + off;
        const float* dyr = dy + off;
        float* dxr = dx + off;
        float inner = 0.0f;
        for (unsigned j = 0; j < uk; ++j) inner = fmaf(yr[j], dyr[j], inner);
        for (unsigned j = 0; j < uk; ++j) {
            const float yj = yr[j];
            const float g = dyr[j];
            dxr[j] = yj * (g - inner);
        }
    }
}
