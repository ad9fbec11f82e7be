// cuda_emu.h: lets a CUDA C kernel file (kernels/*.cu) compile as ordinary C++17 (g++ >= 9)
// and run on the CPU under kernels/emu/emu_runtime.cpp. Force-include it:
//
//   g++ -std=c++17 -O2 -pthread -include kernels/emu/cuda_emu.h -I. -c wrapper.cpp
//
// Conventions kernels must follow (see kernels/emu/README.md for the full list):
//
// * Dynamic shared memory: write `DARTS_DYN_SMEM(float, smem);` inside the kernel (or a device
//   function it calls) instead of `extern __shared__ float smem[];`, and give nvcc the macro with
//     #ifndef DARTS_DYN_SMEM
//     #define DARTS_DYN_SMEM(T, name) extern __shared__ __align__(16) T name[]
//     #endif
//   Here it declares `T* const name` pointing at the block's dynamic buffer (dyn_smem_bytes of
//   the launch, 256-byte aligned). Every DARTS_DYN_SMEM in a kernel aliases the same buffer,
//   as in CUDA. A literal `extern __shared__` does not compile here (g++: "conflicting
//   specifiers in declaration of 'smem'"): C++ cannot bind an extern array of an arbitrary
//   name to a per-block buffer, so the build should reject it with a clear message first.
// * Static shared memory (`__shared__ float tile[32][33];`) works unchanged: it becomes a
//   `static thread_local` variable. One OS thread runs one block at a time and every fiber
//   (CUDA thread) of that block runs on that OS thread, so the block's threads share it and
//   blocks running in parallel do not. It is not cleared between blocks (nor is it on a GPU).
// * Kernels are found by `extern "C" __global__ void NAME(`; they must not be templates or
//   overloaded. Non-kernel helpers should be `static` or `__forceinline__` (inline): all files
//   are linked into one library, whereas nvcc compiles each .cu as its own module.
// * __CUDA_ARCH__ stays undefined (arch-specific fast paths are skipped); DARTS_EMU is 1.
// * No CUDA headers: guard `#include <cuda_runtime.h>` etc. with `#ifndef DARTS_EMU`.
#ifndef DARTS_CUDA_EMU_H
#define DARTS_CUDA_EMU_H

#if defined(__CUDA_ARCH__) || defined(__CUDACC__)
#error "cuda_emu.h is for compiling kernels as host C++, not under nvcc"
#endif

#include <cfloat>
#include <climits>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <math.h>
#include <type_traits>
#include <utility>

#include "emu_abi.h"
#include "emu_shared.h"

#define DARTS_EMU 1

// ---------------------------------------------------------------- qualifiers
#define __global__
#define __device__
#define __host__
#define __constant__
#define __managed__
#define __grid_constant__
#define __forceinline__ __inline__ __attribute__((always_inline))
#define __noinline__ __attribute__((noinline))
#define __align__(n) __attribute__((aligned(n)))
#define __launch_bounds__(...)
// __restrict__ is already a g++ keyword.
#define __shared__ static thread_local

#ifndef DARTS_DYN_SMEM
#define DARTS_DYN_SMEM(T, name) T* const name = reinterpret_cast<T*>(::darts_emu::tls_block->dyn_smem)
#endif

// ---------------------------------------------------------------- vector types
#define DARTS_EMU_VEC(T, N, A2, A4)                                                            \
    struct N##1 { T x; };                                                                      \
    struct __attribute__((aligned(A2))) N##2 { T x, y; };                                      \
    struct __attribute__((aligned(A4))) N##4 { T x, y, z, w; };                                \
    inline N##1 make_##N##1(T x) { return N##1{x}; }                                           \
    inline N##2 make_##N##2(T x, T y) { return N##2{x, y}; }                                   \
    inline N##4 make_##N##4(T x, T y, T z, T w) { return N##4{x, y, z, w}; }
#define DARTS_EMU_VEC3(T, N)  \
    struct N##3 { T x, y, z; }; \
    inline N##3 make_##N##3(T x, T y, T z) { return N##3{x, y, z}; }

DARTS_EMU_VEC(signed char, char, 2, 4)
DARTS_EMU_VEC(unsigned char, uchar, 2, 4)
DARTS_EMU_VEC(short, short, 4, 8)
DARTS_EMU_VEC(unsigned short, ushort, 4, 8)
DARTS_EMU_VEC(int, int, 8, 16)
DARTS_EMU_VEC(unsigned int, uint, 8, 16)
DARTS_EMU_VEC(long long, longlong, 16, 16)
DARTS_EMU_VEC(unsigned long long, ulonglong, 16, 16)
DARTS_EMU_VEC(float, float, 8, 16)
DARTS_EMU_VEC(double, double, 16, 16)
DARTS_EMU_VEC3(signed char, char)
DARTS_EMU_VEC3(unsigned char, uchar)
DARTS_EMU_VEC3(short, short)
DARTS_EMU_VEC3(unsigned short, ushort)
DARTS_EMU_VEC3(int, int)
DARTS_EMU_VEC3(long long, longlong)
DARTS_EMU_VEC3(unsigned long long, ulonglong)
DARTS_EMU_VEC3(float, float)
DARTS_EMU_VEC3(double, double)
inline uint3 make_uint3(unsigned int x, unsigned int y, unsigned int z) { return uint3{x, y, z}; }
#undef DARTS_EMU_VEC
#undef DARTS_EMU_VEC3

// ---------------------------------------------------------------- built-in variables
// Macros, because they differ per fiber: each reads the running fiber's / block's record.
#define threadIdx (::darts_emu::tls_thread->threadIdx)
#define blockIdx (::darts_emu::tls_block->blockIdx)
#define blockDim (::darts_emu::tls_block->blockDim)
#define gridDim (::darts_emu::tls_block->gridDim)
constexpr int warpSize = 32;

// ---------------------------------------------------------------- synchronisation
// Barriers and collectives switch fibers. The memory clobbers keep the compiler from caching
// __shared__ data (statics whose address never escapes) in registers across the switch.
namespace darts_emu {
inline int barrier(int pred) {
    __asm__ __volatile__("" ::: "memory");
    const int r = block_barrier(pred);
    __asm__ __volatile__("" ::: "memory");
    return r;
}
inline std::uint64_t collective(int op, unsigned mask, std::uint64_t value, int arg, int width) {
    __asm__ __volatile__("" ::: "memory");
    const std::uint64_t r = warp_collective(op, mask, value, arg, width);
    __asm__ __volatile__("" ::: "memory");
    return r;
}
}  // namespace darts_emu
inline void __syncthreads() { (void)::darts_emu::barrier(0); }
inline int __syncthreads_count(int pred) { return ::darts_emu::barrier(pred != 0); }
inline int __syncthreads_or(int pred) { return ::darts_emu::barrier(pred != 0) != 0; }
inline int __syncthreads_and(int pred) {
    const dim3 b = blockDim;
    return ::darts_emu::barrier(pred != 0) == static_cast<int>(b.x * b.y * b.z);
}
// Blocks run on several OS threads: fences must be real.
inline void __threadfence() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
inline void __threadfence_block() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
inline void __threadfence_system() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }

// ---------------------------------------------------------------- warp collectives
namespace darts_emu {
template <class T>
inline std::uint64_t to_bits(T v) {
    static_assert(sizeof(T) <= 8 && std::is_trivially_copyable<T>::value,
                  "warp shuffles move values of at most 8 bytes");
    std::uint64_t b = 0;
    std::memcpy(&b, &v, sizeof(T));
    return b;
}
template <class T>
inline T from_bits(std::uint64_t b) {
    T v;
    std::memcpy(&v, &b, sizeof(T));
    return v;
}
template <class T>
inline T shfl(int op, unsigned mask, T var, int arg, int width) {
    return from_bits<T>(collective(op, mask, to_bits(var), arg, width));
}
}  // namespace darts_emu

template <class T>
inline T __shfl_sync(unsigned mask, T var, int srcLane, int width = warpSize) {
    return ::darts_emu::shfl(::darts_emu::kShflIdx, mask, var, srcLane, width);
}
template <class T>
inline T __shfl_up_sync(unsigned mask, T var, unsigned int delta, int width = warpSize) {
    return ::darts_emu::shfl(::darts_emu::kShflUp, mask, var, static_cast<int>(delta), width);
}
template <class T>
inline T __shfl_down_sync(unsigned mask, T var, unsigned int delta, int width = warpSize) {
    return ::darts_emu::shfl(::darts_emu::kShflDown, mask, var, static_cast<int>(delta), width);
}
template <class T>
inline T __shfl_xor_sync(unsigned mask, T var, int laneMask, int width = warpSize) {
    return ::darts_emu::shfl(::darts_emu::kShflXor, mask, var, laneMask, width);
}
inline unsigned __ballot_sync(unsigned mask, int pred) {
    return static_cast<unsigned>(::darts_emu::collective(::darts_emu::kBallot, mask, pred != 0, 0, 32));
}
inline int __any_sync(unsigned mask, int pred) {
    return static_cast<int>(::darts_emu::collective(::darts_emu::kAny, mask, pred != 0, 0, 32));
}
inline int __all_sync(unsigned mask, int pred) {
    return static_cast<int>(::darts_emu::collective(::darts_emu::kAll, mask, pred != 0, 0, 32));
}
inline void __syncwarp(unsigned mask = 0xffffffffu) {
    (void)::darts_emu::collective(::darts_emu::kSync, mask, 0, 0, 32);
}
// Approximation: lanes of the warp that have not exited (the emulator has no divergence).
inline unsigned __activemask() { return ::darts_emu::active_mask(); }

#define DARTS_EMU_REDUCE(NAME, T, OP)                                                     \
    inline T NAME(unsigned mask, T value) {                                               \
        return static_cast<T>(::darts_emu::collective(::darts_emu::OP, mask,         \
                                                           static_cast<unsigned>(value), 0, 32)); \
    }
DARTS_EMU_REDUCE(__reduce_add_sync, unsigned, kReduceAddU)
DARTS_EMU_REDUCE(__reduce_add_sync, int, kReduceAddU)
DARTS_EMU_REDUCE(__reduce_min_sync, unsigned, kReduceMinU)
DARTS_EMU_REDUCE(__reduce_min_sync, int, kReduceMinI)
DARTS_EMU_REDUCE(__reduce_max_sync, unsigned, kReduceMaxU)
DARTS_EMU_REDUCE(__reduce_max_sync, int, kReduceMaxI)
DARTS_EMU_REDUCE(__reduce_and_sync, unsigned, kReduceAnd)
DARTS_EMU_REDUCE(__reduce_or_sync, unsigned, kReduceOr)
DARTS_EMU_REDUCE(__reduce_xor_sync, unsigned, kReduceXor)
#undef DARTS_EMU_REDUCE

// ---------------------------------------------------------------- atomics
// Blocks run in parallel on OS threads, so these are real atomics (fibers of one block only
// switch at barriers, so they never interleave inside one).
namespace darts_emu {
template <class T, class F>
inline T atomic_update(T* addr, F f) {
    T old;
    __atomic_load(addr, &old, __ATOMIC_RELAXED);
    T desired;
    do {
        desired = f(old);
    } while (!__atomic_compare_exchange(addr, &old, &desired, true, __ATOMIC_SEQ_CST, __ATOMIC_RELAXED));
    return old;
}
}  // namespace darts_emu

#define DARTS_EMU_ATOMIC_INT(T)                                                                        \
    inline T atomicAdd(T* a, T v) { return __atomic_fetch_add(a, v, __ATOMIC_SEQ_CST); }               \
    inline T atomicSub(T* a, T v) { return __atomic_fetch_sub(a, v, __ATOMIC_SEQ_CST); }               \
    inline T atomicExch(T* a, T v) { return __atomic_exchange_n(a, v, __ATOMIC_SEQ_CST); }             \
    inline T atomicAnd(T* a, T v) { return __atomic_fetch_and(a, v, __ATOMIC_SEQ_CST); }               \
    inline T atomicOr(T* a, T v) { return __atomic_fetch_or(a, v, __ATOMIC_SEQ_CST); }                 \
    inline T atomicXor(T* a, T v) { return __atomic_fetch_xor(a, v, __ATOMIC_SEQ_CST); }               \
    inline T atomicMax(T* a, T v) {                                                                    \
        return ::darts_emu::atomic_update(a, [v](T o) { return o < v ? v : o; });                     \
    }                                                                                                  \
    inline T atomicMin(T* a, T v) {                                                                    \
        return ::darts_emu::atomic_update(a, [v](T o) { return v < o ? v : o; });                     \
    }                                                                                                  \
    inline T atomicCAS(T* a, T cmp, T v) {                                                             \
        __atomic_compare_exchange_n(a, &cmp, v, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);            \
        return cmp;                                                                                    \
    }
DARTS_EMU_ATOMIC_INT(int)
DARTS_EMU_ATOMIC_INT(unsigned int)
DARTS_EMU_ATOMIC_INT(unsigned long long)
DARTS_EMU_ATOMIC_INT(long long)
#undef DARTS_EMU_ATOMIC_INT

inline float atomicAdd(float* a, float v) {
    return ::darts_emu::atomic_update(a, [v](float o) { return o + v; });
}
inline double atomicAdd(double* a, double v) {
    return ::darts_emu::atomic_update(a, [v](double o) { return o + v; });
}
inline float atomicExch(float* a, float v) {
    float old;
    __atomic_exchange(a, &v, &old, __ATOMIC_SEQ_CST);
    return old;
}
inline unsigned atomicInc(unsigned* a, unsigned limit) {
    return ::darts_emu::atomic_update(a, [limit](unsigned o) { return o >= limit ? 0u : o + 1; });
}
inline unsigned atomicDec(unsigned* a, unsigned limit) {
    return ::darts_emu::atomic_update(a, [limit](unsigned o) { return (o == 0 || o > limit) ? limit : o - 1; });
}
// Scoped variants: every scope is the whole process here.
#define atomicAdd_block atomicAdd
#define atomicAdd_system atomicAdd
#define atomicMax_block atomicMax
#define atomicMin_block atomicMin
#define atomicCAS_block atomicCAS
#define atomicExch_block atomicExch

// ---------------------------------------------------------------- loads / stores
template <class T> inline T __ldg(const T* p) { return *p; }
template <class T> inline T __ldcg(const T* p) { return *p; }
template <class T> inline T __ldca(const T* p) { return *p; }
template <class T> inline T __ldcs(const T* p) { return *p; }
template <class T> inline T __ldlu(const T* p) { return *p; }
template <class T> inline T __ldcv(const T* p) { return *p; }
template <class T> inline void __stwb(T* p, T v) { *p = v; }
template <class T> inline void __stcg(T* p, T v) { *p = v; }
template <class T> inline void __stcs(T* p, T v) { *p = v; }
template <class T> inline void __stwt(T* p, T v) { *p = v; }

// ---------------------------------------------------------------- math
// expf, logf, sqrtf, fabsf, fmaxf, fminf, fmaf, powf, tanhf, ... come from <math.h>.
#ifndef INFINITY
#define INFINITY (__builtin_inff())
#endif
#define CUDART_INF_F (__builtin_inff())
#define CUDART_INF (__builtin_inf())
#define CUDART_NAN_F (__builtin_nanf(""))
#define CUDART_NAN (__builtin_nan(""))
#define CUDART_PI_F 3.141592654f
#define CUDART_PI 3.1415926535897931e+0
#define CUDART_SQRT_HALF_F 0.707106781f
#define CUDART_MAX_NORMAL_F FLT_MAX
#define CUDART_MIN_DENORM_F 1.40129846e-45f

inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
inline double rsqrt(double x) { return 1.0 / sqrt(x); }
inline float fdividef(float a, float b) { return a / b; }
inline float __saturatef(float x) { return x < 0.0f ? 0.0f : (x > 1.0f ? 1.0f : (x == x ? x : 0.0f)); }

// glibc's <math.h> already declares __expf, __logf, __powf, ... as its own internal entry points,
// so the CUDA fast-math intrinsics are macros onto functions of our own.
namespace darts_emu {
inline float fast_expf(float x) { return expf(x); }
inline float fast_exp10f(float x) { return powf(10.0f, x); }
inline float fast_logf(float x) { return logf(x); }
inline float fast_log2f(float x) { return log2f(x); }
inline float fast_log10f(float x) { return log10f(x); }
inline float fast_powf(float x, float y) { return powf(x, y); }
inline float fast_sinf(float x) { return sinf(x); }
inline float fast_cosf(float x) { return cosf(x); }
inline float fast_tanf(float x) { return tanf(x); }
inline void fast_sincosf(float x, float* s, float* c) { *s = sinf(x); *c = cosf(x); }
inline float fast_tanhf(float x) { return tanhf(x); }
}  // namespace darts_emu
#define __expf(x) ::darts_emu::fast_expf(x)
#define __exp10f(x) ::darts_emu::fast_exp10f(x)
#define __logf(x) ::darts_emu::fast_logf(x)
#define __log2f(x) ::darts_emu::fast_log2f(x)
#define __log10f(x) ::darts_emu::fast_log10f(x)
#define __powf(x, y) ::darts_emu::fast_powf(x, y)
#define __sinf(x) ::darts_emu::fast_sinf(x)
#define __cosf(x) ::darts_emu::fast_cosf(x)
#define __tanf(x) ::darts_emu::fast_tanf(x)
#define __sincosf(x, s, c) ::darts_emu::fast_sincosf(x, s, c)
#define __tanhf(x) ::darts_emu::fast_tanhf(x)

inline float __fdividef(float a, float b) { return a / b; }
inline float __frcp_rn(float x) { return 1.0f / x; }
inline float __frsqrt_rn(float x) { return 1.0f / sqrtf(x); }
inline float __fsqrt_rn(float x) { return sqrtf(x); }
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline float __fmaf_rn(float a, float b, float c) { return fmaf(a, b, c); }
inline double __dadd_rn(double a, double b) { return a + b; }
inline double __dmul_rn(double a, double b) { return a * b; }
inline double __fma_rn(double a, double b, double c) { return fma(a, b, c); }

inline int __float2int_rn(float x) { return static_cast<int>(nearbyintf(x)); }
inline int __float2int_rz(float x) { return static_cast<int>(x); }
inline int __float2int_rd(float x) { return static_cast<int>(floorf(x)); }
inline int __float2int_ru(float x) { return static_cast<int>(ceilf(x)); }
inline unsigned __float2uint_rn(float x) { return static_cast<unsigned>(nearbyintf(x)); }
inline float __int2float_rn(int x) { return static_cast<float>(x); }
inline float __uint2float_rn(unsigned x) { return static_cast<float>(x); }
inline float __double2float_rn(double x) { return static_cast<float>(x); }

inline int __float_as_int(float x) { int r; std::memcpy(&r, &x, 4); return r; }
inline unsigned __float_as_uint(float x) { unsigned r; std::memcpy(&r, &x, 4); return r; }
inline float __int_as_float(int x) { float r; std::memcpy(&r, &x, 4); return r; }
inline float __uint_as_float(unsigned x) { float r; std::memcpy(&r, &x, 4); return r; }
inline long long __double_as_longlong(double x) { long long r; std::memcpy(&r, &x, 8); return r; }
inline double __longlong_as_double(long long x) { double r; std::memcpy(&r, &x, 8); return r; }

// Integer intrinsics.
inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
inline int __clz(int x) { return x == 0 ? 32 : __builtin_clz(static_cast<unsigned>(x)); }
inline int __clzll(long long x) { return x == 0 ? 64 : __builtin_clzll(static_cast<unsigned long long>(x)); }
inline int __ffs(int x) { return __builtin_ffs(x); }
inline int __ffsll(long long x) { return __builtin_ffsll(x); }
inline unsigned __brev(unsigned x) {
    x = ((x >> 1) & 0x55555555u) | ((x & 0x55555555u) << 1);
    x = ((x >> 2) & 0x33333333u) | ((x & 0x33333333u) << 2);
    x = ((x >> 4) & 0x0f0f0f0fu) | ((x & 0x0f0f0f0fu) << 4);
    return __builtin_bswap32(x);
}
inline int __mul24(int a, int b) { return (a << 8 >> 8) * (b << 8 >> 8); }
inline unsigned __umul24(unsigned a, unsigned b) { return (a & 0xffffffu) * (b & 0xffffffu); }
inline int __mulhi(int a, int b) { return static_cast<int>((static_cast<long long>(a) * b) >> 32); }
inline unsigned __umulhi(unsigned a, unsigned b) {
    return static_cast<unsigned>((static_cast<unsigned long long>(a) * b) >> 32);
}

// CUDA's overloaded min/max: integers compare as the common type (int with unsigned gives
// unsigned, as in CUDA); floating point follows fminf/fmaxf (a NaN operand loses).
template <class A, class B,
          class = std::enable_if_t<std::is_arithmetic<A>::value && std::is_arithmetic<B>::value>>
inline std::common_type_t<A, B> min(A a, B b) {
    using C = std::common_type_t<A, B>;
    if constexpr (std::is_floating_point<C>::value) return std::fmin(C(a), C(b));
    else return C(b) < C(a) ? C(b) : C(a);
}
template <class A, class B,
          class = std::enable_if_t<std::is_arithmetic<A>::value && std::is_arithmetic<B>::value>>
inline std::common_type_t<A, B> max(A a, B b) {
    using C = std::common_type_t<A, B>;
    if constexpr (std::is_floating_point<C>::value) return std::fmax(C(a), C(b));
    else return C(a) < C(b) ? C(b) : C(a);
}

// ---------------------------------------------------------------- registration
// A per-file wrapper (generated by the build) reads
//   #include "kernels/relu.cu"
//   DARTS_EMU_REGISTER_BEGIN(relu)
//   DARTS_EMU_KERNEL(relu_fwd_f32)
//   DARTS_EMU_REGISTER_END
// and defines extern "C" const darts_emu_kernel* darts_emu_kernels_relu(size_t* count).
namespace darts_emu {
template <class F>
struct Tramp;
template <class... A>
struct Tramp<void (*)(A...)> {
    template <void (*K)(A...), std::size_t... I>
    static void call([[maybe_unused]] void** args, std::index_sequence<I...>) {
        K(*static_cast<std::remove_cv_t<std::remove_reference_t<A>>*>(args[I])...);
    }
    // One call per CUDA thread: the kernel is usually inlined here.
    template <void (*K)(A...)>
    static void fn(void** args) {
        call<K>(args, std::index_sequence_for<A...>{});
    }
};
}  // namespace darts_emu

#define DARTS_EMU_REGISTER_BEGIN(file)                                              \
    extern "C" const darts_emu_kernel* darts_emu_kernels_##file(size_t* count) {    \
        static const darts_emu_kernel table[] = {
#define DARTS_EMU_KERNEL(kname) {#kname, &::darts_emu::Tramp<decltype(&kname)>::template fn<&kname>},
#define DARTS_EMU_REGISTER_END                                    \
    {nullptr, nullptr}};                                          \
    if (count) *count = sizeof(table) / sizeof(table[0]) - 1;     \
    return table;                                                 \
    }

#endif  // DARTS_CUDA_EMU_H
