// Optional, needs a CUDA GPU: runs crosscheck_cases.h on the device with the real kernels and
// writes the results for `test_main --compare FILE`, which reruns the same cases under the
// emulator. run_tests.sh does this when nvcc and a GPU are present.
//   nvcc -O2 -std=c++17 kernels/emu/tests/gpu/gpu_crosscheck.cu -o gx && ./gx results.bin
#include "../elementwise.cu"
#include "../reduce.cu"
#include "../dyn_smem.cu"
#include "../atomics.cu"
#include "../warp_ops.cu"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#define KFN(name) reinterpret_cast<const void*>(&name)
#include "../crosscheck_cases.h"

#define CK(call)                                                                                   \
    do {                                                                                           \
        cudaError_t e_ = (call);                                                                   \
        if (e_ != cudaSuccess) {                                                                   \
            std::fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #call, cudaGetErrorString(e_)); \
            std::exit(1);                                                                          \
        }                                                                                          \
    } while (0)

struct GpuLauncher {
    FILE* out;
    std::vector<void*> allocs;
    void* upload(const void* host, size_t bytes) {
        void* d;
        CK(cudaMalloc(&d, bytes));
        CK(cudaMemcpy(d, host, bytes, cudaMemcpyHostToDevice));
        allocs.push_back(d);
        return d;
    }
    void launch(const char* name, const void* fn, D3 g, D3 b, unsigned smem, void** args) {
        CK(cudaLaunchKernel(fn, dim3(g.x, g.y, g.z), dim3(b.x, b.y, b.z), args, smem, 0));
        CK(cudaDeviceSynchronize());
        (void)name;
    }
    void record(const char* what, const void* mem, size_t bytes, double tol) {
        std::vector<char> h(bytes);
        CK(cudaMemcpy(h.data(), mem, bytes, cudaMemcpyDeviceToHost));
        // Record format: name (64 bytes, NUL-padded), tolerance, size, data.
        char name[64] = {0};
        std::strncpy(name, what, 63);
        const unsigned long long n = bytes;
        std::fwrite(name, 1, 64, out);
        std::fwrite(&tol, sizeof tol, 1, out);
        std::fwrite(&n, sizeof n, 1, out);
        std::fwrite(h.data(), 1, bytes, out);
    }
};

int main(int argc, char** argv) {
    if (argc < 2) {
        std::fprintf(stderr, "usage: %s results.bin\n", argv[0]);
        return 2;
    }
    GpuLauncher l;
    l.out = std::fopen(argv[1], "wb");
    if (!l.out) return 2;
    run_crosscheck_cases(l);
    std::fclose(l.out);
    for (void* p : l.allocs) cudaFree(p);
    cudaDeviceProp prop;
    CK(cudaGetDeviceProperties(&prop, 0));
    std::printf("gpu_crosscheck: results from %s written to %s\n", prop.name, argv[1]);
    return 0;
}
