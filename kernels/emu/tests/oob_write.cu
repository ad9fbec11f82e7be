// BROKEN ON PURPOSE: no bounds check, so the last block writes past the end of y (the Rust side
// catches this with guard zones). Must still compile and run here.
extern "C" __global__ void oob_write_f32(float* __restrict__ y, int n) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    (void)n;  // the missing `if (i < n)`
    y[i] = 1.0f;
}
