// BROKEN ON PURPOSE: reads outside their input. The emulator's guard pages catch both: the end
// of a buffer is exact under schedule 0, its start under schedule 1.

// No bounds check: y is padded to the grid but x is not, so threads i >= n read past its end.
extern "C" __global__ void oob_read_f32(const float* __restrict__ x, float* __restrict__ y, int n) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    (void)n;  // the missing `if (i < n)`
    y[i] = 2.0f * x[i];
}

// Backward difference without the `i > 0` check: thread 0 reads x[-1].
extern "C" __global__ void diff_prev_f32(const float* __restrict__ x, float* __restrict__ y, int n) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] = x[i] - x[i - 1];
}
