// One thread exercises many intrinsics and writes the results (compared with expected values in
// test_main.cpp). Keeps the header's less-used corners compiling under both g++ and nvcc.
#ifndef DARTS_EMU
#include <math_constants.h>  // CUDART_INF_F; cuda_emu.h provides it under the emulator
#endif
struct __align__(16) Pair {
    float a, b, c, d;
};

static __device__ __forceinline__ float clamp01(float v) { return __saturatef(v); }

extern "C" __global__ void intrinsics_probe(const float4* __restrict__ in, float* __restrict__ f, int* __restrict__ i,
                                           unsigned long long* __restrict__ u) {
    const float4 v = __ldg(in);
    const float2 h = make_float2(v.x, v.y);
    Pair p = {v.x, v.y, v.z, v.w};
    f[0] = rsqrtf(v.x);                         // x = 4: 0.5
    f[1] = __fdividef(v.y, v.x);                // 1 / 4
    f[2] = __frcp_rn(v.x);                      // 0.25
    f[3] = fmaxf(fminf(v.z, 2.0f), -2.0f);      // z = -3: -2
    f[4] = clamp01(v.w);                        // w = 7: 1
    f[5] = min(v.x, v.y) + max(h.x, h.y);       // 1 + 4
    f[6] = __int_as_float(__float_as_int(p.d)); // 7
    f[7] = __expf(0.0f) + __logf(1.0f) + tanhf(0.0f) + powf(2.0f, 3.0f);  // 9
    f[8] = CUDART_INF_F;
    f[9] = -INFINITY;
    i[0] = min(-3, 5) + max(2, 9);              // 6
    i[1] = __popc(0xF0F0u) + __clz(1) + __ffs(8);  // 8 + 31 + 4
    i[2] = (int)__brev(1u);                     // 0x80000000
    i[3] = __float2int_rn(2.5f) + __float2int_rd(-1.5f);  // 2 - 2
    int m = 5;
    atomicMax(&m, 9);
    atomicMin(&m, 7);
    i[4] = m;                                   // 7
    unsigned c = 0;
    atomicInc(&c, 1u);
    atomicInc(&c, 1u);                          // wraps to 0
    atomicOr(&c, 6u);
    atomicAnd(&c, 3u);
    atomicXor(&c, 1u);
    i[5] = (int)c;                              // 3
    float acc = 1.0f;
    atomicAdd(&acc, 0.5f);
    i[6] = (int)(atomicExch(&acc, 0.0f) * 2.0f);  // 3
    i[7] = __syncthreads_and(1) + 2 * __syncthreads_or(0) + 4 * __syncthreads_count(1);  // 1 + 0 + 4
    i[8] = (int)__reduce_add_sync(1u, 41u) + __reduce_max_sync(1u, -1);  // 41 - 1
    i[9] = (int)(__activemask() & 1u);          // 1
    unsigned long long big = 1ull << 40;
    atomicAdd(&big, 2ull);
    atomicCAS(&big, (1ull << 40) + 2, 5ull);
    u[0] = big;                                 // 5
    double d = 1.0;
    atomicAdd(&d, 0.25);
    u[1] = (unsigned long long)(d * 4.0);       // 5
    __threadfence();
    __syncwarp(__activemask());  // a full mask would name 31 lanes that do not exist
}
