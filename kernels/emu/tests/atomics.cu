// Cross-block atomics: a weighted float histogram and a float total.
extern "C" __global__ void histogram_f32(const int* __restrict__ bins, const float* __restrict__ w,
                                         float* __restrict__ hist, float* __restrict__ total, int n, int nbins) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) {
        const int b = bins[i];
        if (b >= 0 && b < nbins) atomicAdd(&hist[b], w[i]);
        atomicAdd(total, w[i]);
    }
}

// Integer atomics: max, min, add, CAS-based increment.
extern "C" __global__ void int_atomics(const int* __restrict__ x, int* __restrict__ res, int n) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    atomicMax(&res[0], x[i]);
    atomicMin(&res[1], x[i]);
    atomicAdd(&res[2], x[i]);
    int old = res[3], assumed;
    do {
        assumed = old;
        old = atomicCAS(&res[3], assumed, assumed + 1);
    } while (old != assumed);
    atomicAdd(reinterpret_cast<unsigned*>(&res[4]), 1u);
}
