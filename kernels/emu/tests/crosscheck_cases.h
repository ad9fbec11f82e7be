// Deterministic launches of the (correct) test kernels, shared by gpu_crosscheck.cu (runs them on
// a real GPU, nvcc) and test_main.cpp --compare (runs them under the emulator and compares with
// the GPU's results). Host-only code, valid for both compilers.
//
// A Launcher provides:
//   void* upload(const void* host, size_t bytes)     memory the kernel can use, filled from host
//   void launch(const char* name, const void* fn, D3 grid, D3 block, unsigned smem, void** args)
//   void record(const char* what, const void* mem, size_t bytes, double tol)
//                                                    the result to compare (tol: max relative
//                                                    error for float data, 0 for exact bytes)
// KFN(name) is the kernel's address under nvcc and nullptr under the emulator.
#ifndef DARTS_EMU_CROSSCHECK_CASES_H
#define DARTS_EMU_CROSSCHECK_CASES_H

#include <cstddef>
#include <cstdint>
#include <vector>

struct D3 {
    unsigned x = 1, y = 1, z = 1;
};

struct Lcg {  // same numbers on every compiler and library
    uint64_t s;
    explicit Lcg(uint64_t seed) : s(seed) {}
    uint32_t next() {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        return static_cast<uint32_t>(s >> 33);
    }
    float uniform(float lo, float hi) { return lo + (hi - lo) * static_cast<float>(next() >> 8) * (1.0f / 8388608.0f); }
};

template <class L>
void run_crosscheck_cases(L& l) {
    Lcg r(2024);
    {
        std::vector<int> x(2 * 96);
        for (int& v : x) v = static_cast<int>(r.next() % 100);
        void* px = l.upload(x.data(), x.size() * 4);
        std::vector<int> zero(2 * 96 * 10, 0);
        void* po = l.upload(zero.data(), zero.size() * 4);
        void* args[] = {&px, &po};
        l.launch("warp_ops", KFN(warp_ops), D3{2}, D3{96}, 0, args);
        l.record("warp_ops", po, zero.size() * 4, 0);
    }
    {
        std::vector<int> x(64);
        for (int& v : x) v = static_cast<int>(r.next() % 1000);
        void* px = l.upload(x.data(), 256);
        std::vector<int> zero(64, 0);
        void* po = l.upload(zero.data(), 256);
        void* args[] = {&px, &po};
        l.launch("warp_partial", KFN(warp_partial), D3{1}, D3{64}, 0, args);
        l.record("warp_partial", po, 256, 0);
    }
    {
        std::vector<unsigned> zero(12 * 64, 0);
        void* po = l.upload(zero.data(), zero.size() * 4);
        void* args[] = {&po};
        l.launch("index_map", KFN(index_map), D3{3, 2, 2}, D3{8, 4, 2}, 0, args);
        l.record("index_map", po, zero.size() * 4, 0);
    }
    {
        int n = 100003;
        std::vector<float> x(n), y(n, 0.0f);
        for (float& v : x) v = r.uniform(-4, 4);
        void* px = l.upload(x.data(), n * 4);
        void* py = l.upload(y.data(), n * 4);
        float a = 1.25f, b = -0.5f;
        void* args[] = {&px, &py, &a, &b, &n};
        l.launch("saxpy_f32", KFN(saxpy_f32), D3{(n + 255) / 256u}, D3{256}, 0, args);
        l.record("saxpy_f32", py, n * 4, 0);
        void* pg = l.upload(y.data(), n * 4);
        void* gargs[] = {&px, &pg, &n};
        l.launch("gelu_tanh_f32", KFN(gelu_tanh_f32), D3{40}, D3{256}, 0, gargs);
        l.record("gelu_tanh_f32", pg, n * 4, 1e-5);
    }
    {
        int n = 256 * 64 - 5;
        std::vector<float> x(n), out(64, 0.0f);
        for (float& v : x) v = r.uniform(-1, 1);
        void* px = l.upload(x.data(), n * 4);
        void* po = l.upload(out.data(), 64 * 4);
        void* args[] = {&px, &po, &n};
        l.launch("block_sum_f32", KFN(block_sum_f32), D3{64}, D3{256}, 0, args);
        l.record("block_sum_f32", po, 64 * 4, 0);
    }
    {
        std::vector<float> x(16 * 512), out(16 * 64, 0.0f);
        for (float& v : x) v = r.uniform(-1, 1);
        void* px = l.upload(x.data(), x.size() * 4);
        void* po = l.upload(out.data(), out.size() * 4);
        void* args[] = {&px, &po};
        l.launch("local_tile_f32", KFN(local_tile_f32), D3{16}, D3{64}, 0, args);
        l.record("local_tile_f32", po, out.size() * 4, 1e-5);  // nvcc contracts a*b+c into fma
    }
    {
        int n = 1000;
        std::vector<float> x(n), y(n, 0.0f);
        for (float& v : x) v = r.uniform(-1, 1);
        void* px = l.upload(x.data(), n * 4);
        void* py = l.upload(y.data(), n * 4);
        void* args[] = {&px, &py, &n};
        l.launch("block_reverse_f32", KFN(block_reverse_f32), D3{8}, D3{128}, 128 * 4, args);
        l.record("block_reverse_f32", py, n * 4, 0);
        int m = 5000;
        std::vector<float> v(m);
        for (float& e : v) e = r.uniform(-100, 100);
        std::vector<int> out(5, -1);
        void* pv = l.upload(v.data(), m * 4);
        void* po = l.upload(out.data(), 5 * 4);
        void* aargs[] = {&pv, &po, &m};
        l.launch("block_argmax_f32", KFN(block_argmax_f32), D3{5}, D3{1024}, 1024 * 8, aargs);
        l.record("block_argmax_f32", po, 5 * 4, 0);
    }
    {
        int n = 1 << 16, nbins = 64;
        std::vector<int> bins(n);
        std::vector<float> w(n), hist(nbins + 1, 0.0f);  // hist[nbins]: the total
        for (int i = 0; i < n; ++i) {
            bins[i] = static_cast<int>(r.next() % (nbins + 4)) - 2;
            w[i] = static_cast<float>(r.next() % 5);  // integers: exact in any order
        }
        void* pb = l.upload(bins.data(), n * 4);
        void* pw = l.upload(w.data(), n * 4);
        void* ph = l.upload(hist.data(), hist.size() * 4);
        void* pt = static_cast<char*>(ph) + nbins * 4;
        void* args[] = {&pb, &pw, &ph, &pt, &n, &nbins};
        l.launch("histogram_f32", KFN(histogram_f32), D3{(n + 255) / 256u}, D3{256}, 0, args);
        l.record("histogram_f32", ph, hist.size() * 4, 0);
    }
}

#endif  // DARTS_EMU_CROSSCHECK_CASES_H
