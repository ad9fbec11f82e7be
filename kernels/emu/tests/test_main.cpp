// Driver for the emulator's self-tests: launches the kernels in this directory through the C ABI
// (as the Rust EmuRuntime will) and checks them against CPU references. Built by run_tests.sh,
// which generates all_kernels.inc (one DARTS_TEST_FILE(stem) per .cu file).
#include "../emu_abi.h"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <csignal>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <map>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace darts_emu {
int block_barrier(int pred);  // runtime internal (emu_shared.h), used by throwing_tramp
}

#define KFN(name) nullptr
#include "crosscheck_cases.h"

#define DARTS_TEST_FILE(stem) extern "C" const darts_emu_kernel* darts_emu_kernels_##stem(size_t* count);
#include "all_kernels.inc"
#undef DARTS_TEST_FILE

namespace {

std::map<std::string, darts_emu_tramp> g_kernels;
int g_failed = 0;

void load_kernels() {
#define DARTS_TEST_FILE(stem)                                                        \
    {                                                                                \
        size_t n = 0;                                                                \
        const darts_emu_kernel* k = darts_emu_kernels_##stem(&n);                    \
        for (size_t i = 0; i < n; ++i) g_kernels[k[i].name] = k[i].tramp;            \
    }
#include "all_kernels.inc"
#undef DARTS_TEST_FILE
}

void check(bool ok, const std::string& what, const std::string& detail = "") {
    std::printf("%s  %s%s%s\n", ok ? "PASS" : "FAIL", what.c_str(), detail.empty() ? "" : ": ", detail.c_str());
    if (!ok) ++g_failed;
}

struct Dim {
    unsigned x = 1, y = 1, z = 1;
};

struct Result {
    int rc;
    std::string err;
};

// args: pointers to each argument's value, like cuLaunchKernel's kernelParams.
Result launch_raw(const char* name, Dim g, Dim b, unsigned smem, void** args, int schedule, int workers) {
    auto it = g_kernels.find(name);
    if (it == g_kernels.end()) return {-1, std::string("kernel not registered: ") + name};
    char err[1024];
    const int rc = darts_emu_launch(name, it->second, g.x, g.y, g.z, b.x, b.y, b.z, smem, args, schedule, workers,
                                    err, sizeof err);
    return {rc, rc ? err : ""};
}

Result launch(const char* name, Dim g, Dim b, unsigned smem, std::vector<void*> args, int schedule = 0,
              int workers = 0) {
    return launch_raw(name, g, b, smem, args.data(), schedule, workers);
}

bool launch_ok(const Result& r, const std::string& what) {
    if (r.rc != 0) check(false, what, "launch failed: " + r.err);
    return r.rc == 0;
}

std::mt19937 rng(12345);

std::vector<float> random_floats(size_t n, float lo, float hi) {
    std::uniform_real_distribution<float> d(lo, hi);
    std::vector<float> v(n);
    for (float& x : v) x = d(rng);
    return v;
}

std::vector<float> random_small_ints(size_t n, int lo, int hi) {  // exactly summable in float
    std::uniform_int_distribution<int> d(lo, hi);
    std::vector<float> v(n);
    for (float& x : v) x = static_cast<float>(d(rng));
    return v;
}

// ---------------------------------------------------------------- correct kernels

void test_saxpy() {
    const int n = (1 << 20) + 17;
    auto x = random_floats(n, -1, 1);
    float a = 1.5f, b = -0.25f;
    int nn = n;
    for (int sched = 0; sched < 2; ++sched) {
        for (int workers : {1, 0}) {
            std::vector<float> y(n, 0.0f);
            const float* px = x.data();
            float* py = y.data();
            Result r = launch("saxpy_f32", {(n + 255) / 256}, {256}, 0, {&px, &py, &a, &b, &nn}, sched, workers);
            const std::string what = "saxpy_f32 schedule " + std::to_string(sched) + " workers " +
                                     (workers ? std::to_string(workers) : std::string("auto"));
            if (!launch_ok(r, what)) continue;
            size_t bad = 0;
            for (int i = 0; i < n; ++i) bad += y[i] != std::fma(a, x[i], b);
            check(bad == 0, what, std::to_string(bad) + " mismatches");
        }
    }
}

void test_gelu() {
    int n = 100003;
    auto x = random_floats(n, -4, 4);
    std::vector<float> y(n);
    const float* px = x.data();
    float* py = y.data();
    if (!launch_ok(launch("gelu_tanh_f32", {40}, {256}, 0, {&px, &py, &n}), "gelu_tanh_f32 (grid-stride)")) return;
    double worst = 0;
    for (int i = 0; i < n; ++i) {
        const double v = x[i], ref = 0.5 * v * (1 + std::tanh(0.7978845608 * (v + 0.044715 * v * v * v)));
        worst = std::max(worst, std::fabs(y[i] - ref));
    }
    check(worst < 1e-5, "gelu_tanh_f32 (grid-stride)", "max abs err " + std::to_string(worst));
}

void test_index_map() {
    const Dim g{3, 2, 2}, b{8, 4, 2};
    const unsigned nb = 12, nt = 64;
    for (int sched = 0; sched < 2; ++sched) {
        std::vector<unsigned> out(nb * nt, ~0u);
        unsigned* po = out.data();
        if (!launch_ok(launch("index_map", g, b, 0, {&po}, sched), "index_map 3-D")) return;
        size_t bad = 0;
        for (unsigned bz = 0; bz < 2; ++bz)
            for (unsigned by = 0; by < 2; ++by)
                for (unsigned bx = 0; bx < 3; ++bx)
                    for (unsigned tz = 0; tz < 2; ++tz)
                        for (unsigned ty = 0; ty < 4; ++ty)
                            for (unsigned tx = 0; tx < 8; ++tx) {
                                const unsigned bid = bx + 3 * (by + 2 * bz), tid = tx + 8 * (ty + 4 * tz);
                                const unsigned want = tx | ty << 4 | tz << 8 | bx << 12 | by << 16 | bz << 20;
                                bad += out[bid * nt + tid] != want;
                            }
        check(bad == 0, "index_map 3-D grid (3,2,2) x block (8,4,2) schedule " + std::to_string(sched),
              std::to_string(bad) + " mismatches");
    }
}

void test_block_sum() {
    const int nblocks = 64;
    int n = 256 * nblocks - 5;
    auto x = random_floats(n, -1, 1);
    std::vector<float> out[2];
    for (int sched = 0; sched < 2; ++sched) {
        out[sched].assign(nblocks, 0.0f);
        const float* px = x.data();
        float* po = out[sched].data();
        if (!launch_ok(launch("block_sum_f32", {nblocks}, {256}, 0, {&px, &po, &n}, sched), "block_sum_f32")) return;
    }
    double worst = 0;
    for (int b = 0; b < nblocks; ++b) {
        double ref = 0;
        for (int i = b * 256; i < std::min(n, (b + 1) * 256); ++i) ref += x[i];
        worst = std::max(worst, std::fabs(out[0][b] - ref));
    }
    check(worst < 1e-4, "block_sum_f32 (__shared__ + __syncthreads + __shfl_down_sync)",
          "max abs err " + std::to_string(worst));
    check(out[0] == out[1], "block_sum_f32 identical under schedules 0 and 1");
}

void test_local_tile() {
    const int nb = 16;
    auto x = random_floats(nb * 512, -1, 1);
    std::vector<float> out(nb * 64);
    const float* px = x.data();
    float* po = out.data();
    if (!launch_ok(launch("local_tile_f32", {nb}, {64}, 0, {&px, &po}, 1), "local_tile_f32")) return;
    double worst = 0;
    for (int b = 0; b < nb; ++b)
        for (int t = 0; t < 64; ++t) {
            float sum = 0;
            for (int i = 0; i < 8; ++i)
                for (int j = 0; j < 8; ++j) sum += x[b * 512 + ((t + i) & 63) * 8 + j] * (float)(i + 1);
            worst = std::max(worst, (double)std::fabs(out[b * 64 + t] - sum));
        }
    check(worst < 1e-4, "local_tile_f32 (float acc[8][8] live across barriers)", "max abs err " + std::to_string(worst));
}

void test_dyn_smem() {
    int n = 1000;
    auto x = random_floats(n, -1, 1);
    for (unsigned bs : {128u, 64u, 256u, 1u, 33u}) {  // a different dynamic size each launch
        std::vector<float> y(n, 0.0f);
        const float* px = x.data();
        float* py = y.data();
        const unsigned nb = (n + bs - 1) / bs;
        if (!launch_ok(launch("block_reverse_f32", {nb}, {bs}, bs * 4, {&px, &py, &n}), "block_reverse_f32")) return;
        size_t bad = 0;
        for (unsigned b = 0; b < nb; ++b)
            for (unsigned t = 0; t < bs; ++t) {
                const unsigned i = b * bs + t, j = b * bs + (bs - 1 - t);
                if (j < (unsigned)n) bad += y[j] != (i < (unsigned)n ? x[i] : -1.0f);
            }
        check(bad == 0, "block_reverse_f32 dynamic smem " + std::to_string(bs * 4) + " bytes",
              std::to_string(bad) + " mismatches");
    }
    // 1024-thread blocks: every thread blocks at each barrier, so 1024 fiber stacks are live.
    for (unsigned bs : {256u, 1024u}) {
        int m = 5000;
        auto v = random_floats(m, -100, 100);
        const unsigned nb = (m + bs - 1) / bs;
        std::vector<int> out(nb, -1);
        const float* pv = v.data();
        int* po = out.data();
        if (!launch_ok(launch("block_argmax_f32", {nb}, {bs}, bs * 8, {&pv, &po, &m}, 1), "block_argmax_f32"))
            return;
        size_t bad = 0;
        for (unsigned b = 0; b < nb; ++b) {
            const int lo = b * bs, hi = std::min<int>(m, (b + 1) * bs);
            bad += out[b] != (int)(std::max_element(v.begin() + lo, v.begin() + hi) - v.begin());
        }
        check(bad == 0, "block_argmax_f32 dynamic smem split float|int, " + std::to_string(bs) + " threads",
              std::to_string(bad) + " mismatches");
    }
    std::vector<float> y(32);
    float* py = y.data();
    Result r = launch("dyn_smem_overrun", {2}, {32}, 32 * 4, {&py});
    check(r.rc != 0 && r.err.find("dynamic shared memory") != std::string::npos,
          "dyn_smem_overrun reported", r.err);
}

void test_atomics() {
    int n = 1 << 18, nbins = 64;
    std::uniform_int_distribution<int> bd(-2, nbins + 1);
    std::vector<int> bins(n);
    for (int& b : bins) b = bd(rng);
    auto w = random_small_ints(n, 0, 4);
    std::vector<float> hist(nbins, 0.0f), ref(nbins, 0.0f);
    float total = 0.0f, ref_total = 0.0f;
    for (int i = 0; i < n; ++i) {
        if (bins[i] >= 0 && bins[i] < nbins) ref[bins[i]] += w[i];
        ref_total += w[i];
    }
    const int* pb = bins.data();
    const float* pw = w.data();
    float* ph = hist.data();
    float* pt = &total;
    if (launch_ok(launch("histogram_f32", {(unsigned)(n + 255) / 256}, {256}, 0, {&pb, &pw, &ph, &pt, &n, &nbins}),
                  "histogram_f32")) {
        check(hist == ref && total == ref_total, "histogram_f32 atomicAdd(float) across blocks",
              "total " + std::to_string(total) + " want " + std::to_string(ref_total));
    }
    std::vector<int> x(100000);
    std::uniform_int_distribution<int> xd(-1000000, 1000000);
    long long sum = 0;
    for (int& v : x) sum += (v = xd(rng));
    int res[5] = {INT_MIN, INT_MAX, 0, 0, 0};
    int m = (int)x.size();
    const int* px = x.data();
    int* pr = res;
    if (launch_ok(launch("int_atomics", {(unsigned)(m + 127) / 128}, {128}, 0, {&px, &pr, &m}), "int_atomics")) {
        const bool ok = res[0] == *std::max_element(x.begin(), x.end()) &&
                        res[1] == *std::min_element(x.begin(), x.end()) && res[2] == (int)(unsigned)sum &&
                        res[3] == m && res[4] == m;
        check(ok, "int_atomics atomicMax/Min/Add/CAS");
    }
}

int shfl_model(const std::vector<int>& v, int t, int op) {
    const int lane = t & 31, base = t - lane;
    auto at = [&](int l) { return v[base + l]; };
    switch (op) {
        case 0: return at((lane * 7 + 3) & 31);
        case 1: return at((lane & ~15) + 5);
        case 2: return lane >= 3 ? at(lane - 3) : at(lane);
        case 3: return (lane & 7) + 5 < 8 ? at(lane + 5) : at(lane);
        case 4: return at(lane ^ 9);
        default: {
            const int s = lane ^ 20;
            return s < (lane & ~15) + 16 ? at(s) : at(lane);
        }
    }
}

void test_warp_ops() {
    const int nb = 2, bs = 96;
    std::vector<int> x(nb * bs);
    std::uniform_int_distribution<int> d(0, 99);
    for (int& v : x) v = d(rng);
    for (int sched = 0; sched < 2; ++sched) {
        std::vector<int> out(nb * bs * 10, 0);
        const int* px = x.data();
        int* po = out.data();
        if (!launch_ok(launch("warp_ops", {nb}, {bs}, 0, {&px, &po}, sched), "warp_ops")) return;
        size_t bad = 0;
        for (int t = 0; t < nb * bs; ++t) {
            const int* o = &out[10 * t];
            const int base = t - (t & 31);
            unsigned ballot = 0;
            bool any = false, all = true;
            for (int l = 0; l < 32; ++l) {
                ballot |= (unsigned)(x[base + l] & 1) << l;
                any |= x[base + l] > 90;
                all &= x[base + l] >= 0;
            }
            int count = 0;
            for (int u = t - t % bs; u < t - t % bs + bs; ++u) count += x[u] & 1;
            for (int op = 0; op < 6; ++op) bad += o[op] != shfl_model(x, t, op);
            bad += (unsigned)o[6] != ballot;
            bad += o[7] != ((int)any | (int)all << 1);
            bad += o[8] != count;
            float f = (float)((t & 31) < 31 ? x[t + 1] : x[t]) * 0.5f;
            int fb;
            std::memcpy(&fb, &f, 4);
            bad += o[9] != fb;
        }
        check(bad == 0, "warp_ops shfl idx/up/down/xor (widths 8,16,32), ballot, any/all, syncthreads_count, schedule " +
                            std::to_string(sched), std::to_string(bad) + " mismatches");
    }
    std::vector<int> y(64, 0), in(64);
    for (int i = 0; i < 64; ++i) in[i] = 1000 + i;
    const int* pi = in.data();
    int* py = y.data();
    if (launch_ok(launch("warp_partial", {1}, {64}, 0, {&pi, &py}), "warp_partial")) {
        size_t bad = 0;
        for (int t = 0; t < 64; ++t) {
            const int lane = t & 31;
            bad += y[t] != ((lane & 1) ? -1 : in[t - lane + ((lane + 2) & 31)]);
        }
        check(bad == 0, "warp_partial (mask 0x55555555 shuffle beside __syncwarp(0xaaaaaaaa))");
    }
}

void test_intrinsics() {
    struct alignas(16) {
        float x, y, z, w;
    } in = {4, 1, -3, 7};
    std::vector<float> f(10, 0);
    std::vector<int> i(10, 0);
    std::vector<unsigned long long> u(2, 0);
    void* pin = &in;
    float* pf = f.data();
    int* pi = i.data();
    unsigned long long* pu = u.data();
    if (!launch_ok(launch("intrinsics_probe", {1}, {1}, 0, {&pin, &pf, &pi, &pu}), "intrinsics_probe")) return;
    const std::vector<float> wf = {0.5f, 0.25f, 0.25f, -2, 1, 5, 7, 9, INFINITY, -INFINITY};
    const std::vector<int> wi = {6, 43, INT_MIN, 0, 7, 3, 3, 5, 40, 1};
    const std::vector<unsigned long long> wu = {5, 5};
    std::string detail;
    for (size_t k = 0; k < 10; ++k) {
        if (f[k] != wf[k]) detail += " f[" + std::to_string(k) + "]=" + std::to_string(f[k]);
        if (i[k] != wi[k]) detail += " i[" + std::to_string(k) + "]=" + std::to_string(i[k]);
    }
    for (size_t k = 0; k < 2; ++k)
        if (u[k] != wu[k]) detail += " u[" + std::to_string(k) + "]=" + std::to_string(u[k]);
    check(detail.empty(), "intrinsics_probe (math, bit, atomic, vector-type, block/warp-op intrinsics)", detail);
}

void test_concurrent_launches() {
    // The Rust test harness launches from several threads at once; they share the worker pool.
    const int nblocks = 32;
    int n = 256 * nblocks;
    auto x = random_small_ints(n, -8, 8);
    std::vector<float> ref(nblocks, 0.0f);
    for (int i = 0; i < n; ++i) ref[i / 256] += x[i];
    std::vector<int> bad(4, 0);
    std::vector<std::thread> ts;
    for (int k = 0; k < 4; ++k) {
        ts.emplace_back([&, k] {
            for (int it = 0; it < 25; ++it) {
                std::vector<float> out(nblocks, 0.0f);
                const float* px = x.data();
                float* po = out.data();
                Result r = launch("block_sum_f32", {nblocks}, {256}, 0, {&px, &po, &n}, it & 1, 3);
                if (r.rc != 0 || out != ref) ++bad[k];
            }
        });
    }
    for (auto& t : ts) t.join();
    check(bad == std::vector<int>(4, 0), "4 host threads x 25 concurrent launches");
}

void test_launch_validation() {
    std::vector<float> y(16);
    float* py = y.data();
    int n = 16;
    Result r = launch("oob_write_f32", {1}, {1025}, 0, {&py, &n});
    check(r.rc != 0 && r.err.find("invalid block") != std::string::npos, "1025-thread block rejected", r.err);
    r = launch("oob_write_f32", {1}, {16}, 0, {&py, &n}, 2);
    check(r.rc != 0 && r.err.find("schedule") != std::string::npos, "schedule 2 rejected", r.err);
    r = launch("oob_write_f32", {0}, {16}, 0, {&py, &n});
    check(r.rc != 0, "empty grid rejected", r.err);
    darts_emu_set_stack_size(32 * 1024);
    auto x = random_floats(512, -1, 1);
    std::vector<float> out(64);
    const float* px = x.data();
    float* po = out.data();
    r = launch("local_tile_f32", {1}, {64}, 0, {&px, &po});
    darts_emu_set_stack_size(64 * 1024);
    check(r.rc == 0, "32 KiB fiber stacks via darts_emu_set_stack_size", r.err);
}

// ---------------------------------------------------------------- deliberately broken kernels

// Not CUDA: a hand-written trampoline whose "kernel" throws after a barrier (so from a fiber
// that blocked and resumed).
void throwing_tramp(void**) {
    darts_emu::block_barrier(0);  // what __syncthreads() calls
    throw std::runtime_error("boom");
}

void test_broken() {
    {
        int n = 1000;
        std::vector<float> y(1024 + 64, 0.0f);  // 4 blocks of 256 write 1024 elements
        float* py = y.data();
        Result r = launch("oob_write_f32", {4}, {256}, 0, {&py, &n});
        size_t past = 0;
        for (size_t i = n; i < y.size(); ++i) past += y[i] != 0.0f;
        check(r.rc == 0 && past == 24, "oob_write_f32 runs; writes land past n for guard zones to catch",
              std::to_string(past) + " elements written past n");
    }
    for (int sched = 0; sched < 2; ++sched) {
        std::vector<float> y(256, 0.0f);
        float* py = y.data();
        const auto t0 = std::chrono::steady_clock::now();
        Result r = launch("sync_divergent", {3}, {256}, 0, {&py}, sched);
        const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
        const bool named = r.err.find("sync_divergent") != std::string::npos && r.err.find("block (") != std::string::npos &&
                           r.err.find("__syncthreads") != std::string::npos;
        check(r.rc != 0 && named && ms < 5000, "sync_divergent reported (schedule " + std::to_string(sched) + ")", r.err);
    }
    {
        const int nb = 8;
        auto x = random_small_ints(nb * 256, -50, 50);
        std::vector<float> out[2];
        for (int sched = 0; sched < 2; ++sched) {
            out[sched].assign(nb, 0.0f);
            const float* px = x.data();
            float* po = out[sched].data();
            launch_ok(launch("block_sum_missing_sync", {nb}, {256}, 0, {&px, &po}, sched), "block_sum_missing_sync");
        }
        size_t differ = 0;
        for (int b = 0; b < nb; ++b) differ += out[0][b] != out[1][b];
        check(differ > 0, "block_sum_missing_sync differs between schedules 0 and 1",
              std::to_string(differ) + "/" + std::to_string(nb) + " blocks differ (e.g. " + std::to_string(out[0][0]) +
                  " vs " + std::to_string(out[1][0]) + ")");
    }
    {
        auto x = random_floats(64, -1, 1);
        std::vector<float> y(64);
        const float* px = x.data();
        float* py = y.data();
        for (int sched = 0; sched < 2; ++sched) {  // 0: found stuck; 1: lanes 16-31 exit first
            Result r = launch("warp_exit_shfl", {1}, {64}, 0, {&px, &py}, sched);
            check(r.rc != 0 && r.err.find("__shfl_down_sync") != std::string::npos &&
                      r.err.find("exited") != std::string::npos,
                  "warp_exit_shfl reported (lanes exited before a full-mask shuffle), schedule " +
                      std::to_string(sched), r.err);
        }
        Result r = launch("shfl_bad_mask", {1}, {32}, 0, {&px, &py});
        check(r.rc != 0 && r.err.find("does not name the calling lane") != std::string::npos,
              "shfl_bad_mask reported", r.err);
        for (int sched = 0; sched < 2; ++sched) {
            r = launch("shfl_full_mask_partial_warp", {1}, {48}, 0, {&px, &py}, sched);
            check(r.rc != 0 && r.err.find("__shfl_down_sync") != std::string::npos &&
                      r.err.find("mask 0xffffffff") != std::string::npos &&
                      r.err.find("lane(s) 16-31 that do not exist") != std::string::npos,
                  "full mask in a 16-lane last warp reported, schedule " + std::to_string(sched), r.err);
            r = launch("shfl_src_outside_mask", {1}, {32}, 0, {&px, &py}, sched);
            check(r.rc != 0 && r.err.find("__shfl_down_sync(mask 0x0000ffff)") != std::string::npos &&
                      r.err.find("reads lane 16, which is not in the mask") != std::string::npos,
                  "shuffle source outside a partial mask reported, schedule " + std::to_string(sched), r.err);
        }
        // The same full-warp sum is fine when every warp is whole.
        r = launch("shfl_full_mask_partial_warp", {1}, {64}, 0, {&px, &py});
        float want = 0;
        for (int l = 0; l < 32; ++l) want += x[l];
        check(r.rc == 0 && std::fabs(y[0] - want) < 1e-5f, "full-mask sum over whole warps runs", r.err);
        char err[512];
        r.rc = darts_emu_launch("throws", throwing_tramp, 2, 1, 1, 64, 1, 1, 0, nullptr, 1, 2, err, sizeof err);
        check(r.rc != 0 && std::strstr(err, "threw a C++ exception: boom") != nullptr,
              "exception escaping a kernel reported", err);
        // The emulator keeps working after a failed launch.
        int n = 64;
        float a = 2, b = 0;
        r = launch("saxpy_f32", {1}, {64}, 0, {&px, &py, &a, &b, &n});
        check(r.rc == 0 && y[5] == 2 * x[5], "launches still work after a failed one", r.err);
    }
}

// ---------------------------------------------------------------- guard pages

// A buffer from darts_emu_alloc filled from host.
float* device_floats(const std::vector<float>& host, int placement) {
    char err[256];
    auto* p = static_cast<float*>(darts_emu_alloc(host.size() * 4, placement, err, sizeof err));
    if (!p) {
        check(false, "darts_emu_alloc", err);
        std::exit(1);
    }
    std::memcpy(p, host.data(), host.size() * 4);
    return p;
}

bool contains(const std::string& s, const char* what) { return s.find(what) != std::string::npos; }

// Runs f in a child process; true when the child died of SIGSEGV (under ASan: when ASan's
// handler, which ours chains to, reported it and exited).
template <class F>
bool crashes(F f) {
    std::fflush(stdout);
    const pid_t pid = fork();
    if (pid == 0) {
        dup2(open("/dev/null", O_WRONLY), 2);  // keep a sanitizer's report of the crash quiet
        f();
        _exit(0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
#if defined(__SANITIZE_ADDRESS__)
    return WIFEXITED(status) && WEXITSTATUS(status) != 0;
#else
    return WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV;
#endif
}

void test_guard_layout() {
    const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
    char err[256];
    bool ok = true;
    for (size_t bytes : {size_t{0}, size_t{4}, size_t{100}, size_t{400}, size_t{4096}, size_t{5000}}) {
        for (int placement = 0; placement < 2; ++placement) {
            auto* p = static_cast<unsigned char*>(darts_emu_alloc(bytes, placement, err, sizeof err));
            if (!p) {
                check(false, "darts_emu_alloc", err);
                return;
            }
            const uintptr_t a = reinterpret_cast<uintptr_t>(p);
            size_t off = 99;
            ok &= placement == 0 ? (a + bytes) % page == 0 : a % page == 0;
            ok &= bytes == 0 || a % std::min<size_t>(bytes & (~bytes + 1), 16) == 0;  // gcd(bytes, 16)
            ok &= std::all_of(p, p + bytes, [](unsigned char c) { return c == 0xFF; });
            ok &= darts_emu_check_slack(p, &off) == 0;
            darts_emu_free(p);
            ok &= darts_emu_check_slack(p, &off) == -1;
        }
    }
    check(ok, "guard layout: placement 0 ends at a page end, 1 starts at a page start; 0xFF-filled; slack intact");
    check(darts_emu_alloc(4, 2, err, sizeof err) == nullptr && contains(err, "placement 2"), "placement 2 rejected", err);
}

void test_guard_pages() {
    int n = 100;
    std::vector<float> host(n);
    for (int i = 0; i < n; ++i) host[i] = static_cast<float>(i);
    float* x0 = device_floats(host, 0);
    float* x1 = device_floats(host, 1);
    float* y = device_floats(std::vector<float>(128, 0.0f), 1);
    // Schedule 0, end exact: thread 100 reads first past the end. Twice: the page is closed again.
    for (int round = 0; round < 2; ++round) {
        Result r = launch("oob_read_f32", {1}, {128}, 0, {&x0, &y, &n}, 0);
        check(r.rc == 2 && contains(r.err, "kernel 'oob_read_f32' block (0,0,0): thread (100,0,0) read past the end "
                                           "of a 400-byte buffer") && contains(r.err, "(byte 0 after the end)"),
              "read past the end reported (round " + std::to_string(round) + ")", r.err);
    }
    bool right = true;
    for (int i = 0; i < n; ++i) right &= y[i] == 2.0f * host[i];
    check(right && std::isnan(y[n]), "the faulting block runs to completion; its read past the end gets NaN");
    // More blocks than workers: the fault can happen on a pool thread too.
    Result r = launch("oob_read_f32", {4}, {32}, 0, {&x0, &y, &n}, 0, 2);
    check(r.rc == 2 && contains(r.err, "block (3,0,0)") && contains(r.err, "read past the end"),
          "read past the end reported from a worker", r.err);
    // Schedule 1, start exact: thread 0 reads x[-1].
    r = launch("diff_prev_f32", {1}, {128}, 0, {&x1, &y, &n}, 1);
    check(r.rc == 2 && contains(r.err, "thread (0,0,0) read 4 bytes before the start of a 400-byte buffer"),
          "read before the start reported", r.err);
    // Exact grids are fine.
    int m = 128;
    float* x2 = device_floats(std::vector<float>(128, 1.0f), 0);
    r = launch("oob_read_f32", {1}, {128}, 0, {&x2, &y, &m}, 0);
    check(r.rc == 0 && y[127] == 2.0f, "oob_read_f32 with an exact grid passes", r.err);
    // Writes: into a guard page they fault; into the slack (inexact side) the check finds them.
    r = launch("oob_write_f32", {1}, {128}, 0, {&x0, &n}, 0);
    check(r.rc == 2 && contains(r.err, "wrote past the end of a 400-byte buffer"), "write into a guard page reported",
          r.err);
    r = launch("oob_write_f32", {1}, {128}, 0, {&x1, &n}, 1);
    size_t off = 99;
    const int where = darts_emu_check_slack(x1, &off);
    check(r.rc == 0 && where == 2 && off == 0, "write into the slack found by darts_emu_check_slack",
          "rc " + std::to_string(r.rc) + ", check " + std::to_string(where) + ", offset " + std::to_string(off));
    // Faults that are not a kernel's guard-page access still end the process.
    check(crashes([&] { std::printf("%f", static_cast<double>(x0[n])); }),
          "a guard-page read outside a kernel still crashes");
    float* stale = x2;
    darts_emu_free(x2);
    check(crashes([&] { std::printf("%f", static_cast<double>(stale[0])); }),
          "a read of a freed buffer still crashes");
    darts_emu_free(x0);
    darts_emu_free(x1);
    darts_emu_free(y);
}

// Allocations and frees from several threads keep the guard registry consistent.
void test_guard_registry() {
    std::vector<std::thread> ts;
    std::vector<int> bad(4, 0);
    for (int k = 0; k < 4; ++k) {
        ts.emplace_back([&, k] {
            std::mt19937 g(k);
            std::vector<void*> live;
            char err[256];
            for (int it = 0; it < 3000; ++it) {
                if (live.size() < 200 && (g() & 1)) {
                    void* p = darts_emu_alloc(g() % 9000, static_cast<int>(g() & 1), err, sizeof err);
                    if (p) live.push_back(p);
                    else ++bad[k];
                } else if (!live.empty()) {
                    const size_t i = g() % live.size();
                    size_t off;
                    bad[k] += darts_emu_check_slack(live[i], &off) != 0;
                    darts_emu_free(live[i]);
                    live.erase(live.begin() + static_cast<ptrdiff_t>(i));
                }
            }
            for (void* p : live) darts_emu_free(p);
        });
    }
    for (auto& t : ts) t.join();
    check(bad == std::vector<int>(4, 0), "guard registry: 4 threads x 3000 allocations and frees");
}

// ---------------------------------------------------------------- launch rates

template <class F>
double rate(F f, double seconds) {
    f();  // warm: allocates stacks, starts the pool
    int iters = 0;
    const auto t0 = std::chrono::steady_clock::now();
    double el = 0;
    do {
        f();
        ++iters;
        el = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    } while (el < seconds);
    return iters / el;
}

void bench(const char* label) {
    const int n = 1 << 20;
    auto x = random_floats(n, -1, 1);
    std::vector<float> y(n);
    const float* px = x.data();
    float* py = y.data();
    float a = 2, b = 1;
    int nn = n;
    const unsigned hw = std::max(1u, std::thread::hardware_concurrency());
    for (int workers : {0, 1}) {
        const double r = rate(
            [&] { launch("saxpy_f32", {n / 256}, {256}, 0, {&px, &py, &a, &b, &nn}, 0, workers); }, 1.0);
        std::printf("RATE [%s] saxpy_f32 1M floats (4096 blocks x 256), %u worker(s): %.1f launches/s (%.2f ns/thread)\n",
                    label, workers ? 1u : hw, r, 1e9 / (r * n));
    }
    int m = 256;
    std::vector<float> out(1);
    float* po = out.data();
    const double r = rate([&] { launch("block_sum_f32", {1}, {256}, 0, {&px, &po, &m}); }, 1.0);
    std::printf("RATE [%s] block_sum_f32 single block of 256 threads (4 barriers, 5 shuffles): %.0f launches/s "
                "(%.1f us each)\n", label, r, 1e6 / r);
}

// ---------------------------------------------------------------- GPU cross-check

// Runs crosscheck_cases.h under the emulator, keeping each recorded result.
struct EmuLauncher {
    int schedule;
    std::vector<std::vector<char>> mem;
    std::map<std::string, std::vector<char>> results;
    std::string failures;
    FILE* dump = nullptr;  // --dump: write records in gpu_crosscheck's format
    void* upload(const void* host, size_t bytes) {
        mem.emplace_back(static_cast<const char*>(host), static_cast<const char*>(host) + bytes);
        return mem.back().data();
    }
    void launch(const char* name, const void*, D3 g, D3 b, unsigned smem, void** args) {
        Result r = launch_raw(name, {g.x, g.y, g.z}, {b.x, b.y, b.z}, smem, args, schedule, 0);
        if (r.rc) failures += r.err + "\n";
    }
    void record(const char* what, const void* p, size_t bytes, double tol) {
        results[what].assign(static_cast<const char*>(p), static_cast<const char*>(p) + bytes);
        if (dump) {
            char name[64] = {0};
            std::snprintf(name, sizeof name, "%s", what);
            const unsigned long long n = bytes;
            std::fwrite(name, 1, 64, dump);
            std::fwrite(&tol, sizeof tol, 1, dump);
            std::fwrite(&n, sizeof n, 1, dump);
            std::fwrite(p, 1, bytes, dump);
        }
    }
};

// Compares the emulator with the results gpu/gpu_crosscheck.cu wrote on a real GPU.
void compare_with_gpu(const char* path) {
    FILE* f = std::fopen(path, "rb");
    if (!f) {
        check(false, std::string("open ") + path);
        return;
    }
    struct Rec {
        std::string name;
        double tol;
        std::vector<char> data;
    };
    std::vector<Rec> gpu;
    for (;;) {
        char name[64];
        double tol;
        unsigned long long n;
        if (std::fread(name, 1, 64, f) != 64 || std::fread(&tol, sizeof tol, 1, f) != 1 || std::fread(&n, sizeof n, 1, f) != 1)
            break;
        name[63] = 0;
        Rec r{name, tol, std::vector<char>(n)};
        if (std::fread(r.data.data(), 1, n, f) != n) break;
        gpu.push_back(std::move(r));
    }
    std::fclose(f);
    check(!gpu.empty(), std::string("GPU results read from ") + path, std::to_string(gpu.size()) + " records");
    for (int sched = 0; sched < 2; ++sched) {
        EmuLauncher l{sched, {}, {}, {}};
        run_crosscheck_cases(l);
        if (!l.failures.empty()) check(false, "cross-check launches", l.failures);
        for (const Rec& g : gpu) {
            const std::vector<char>& e = l.results[g.name];
            std::string detail;
            bool ok = e.size() == g.data.size();
            if (ok && g.tol == 0) {
                size_t diff = 0;
                for (size_t i = 0; i + 4 <= e.size(); i += 4) diff += std::memcmp(&e[i], &g.data[i], 4) != 0;
                ok = diff == 0;
                detail = ok ? "bit-identical" : std::to_string(diff) + " words differ";
            } else if (ok) {
                double worst = 0;
                for (size_t i = 0; i + 4 <= e.size(); i += 4) {
                    float a, b;
                    std::memcpy(&a, &e[i], 4);
                    std::memcpy(&b, &g.data[i], 4);
                    worst = std::max(worst, std::fabs((double)a - b) / std::max(1.0, std::fabs((double)b)));
                }
                ok = worst <= g.tol;
                detail = "max rel err " + std::to_string(worst);
            }
            check(ok, "emulator (schedule " + std::to_string(sched) + ") matches GPU: " + g.name, detail);
        }
    }
}

}  // namespace

int main(int argc, char** argv) {
    const char* label = argc > 1 ? argv[1] : "emu";
    load_kernels();
    if (argc > 2 && std::strcmp(argv[1], "--dump") == 0) {  // to test --compare without a GPU
        EmuLauncher l{0, {}, {}, {}, std::fopen(argv[2], "wb")};
        if (!l.dump) return 2;
        run_crosscheck_cases(l);
        std::fclose(l.dump);
        std::printf("%s", l.failures.c_str());
        return l.failures.empty() ? 0 : 1;
    }
    if (argc > 2 && std::strcmp(argv[1], "--compare") == 0) {
        compare_with_gpu(argv[2]);
        std::printf("gpu cross-check: %d check(s) failed\n", g_failed);
        return g_failed ? 1 : 0;
    }
    test_saxpy();
    test_gelu();
    test_index_map();
    test_block_sum();
    test_local_tile();
    test_dyn_smem();
    test_atomics();
    test_warp_ops();
    test_intrinsics();
    test_concurrent_launches();
    test_launch_validation();
    test_broken();
    test_guard_layout();
    test_guard_pages();
    test_guard_registry();
    if (!(argc > 2 && std::strcmp(argv[2], "--no-bench") == 0)) bench(label);
    darts_emu_shutdown();
    std::printf("%s: %d check(s) failed\n", label, g_failed);
    return g_failed ? 1 : 0;
}
