/* The device side of the emulated GPU: what a .cu file sees when it is compiled by the host C++
 * compiler for the emulated tier (-DSAEC_CUDA=EMU). Test infrastructure, never a performance
 * path: nothing measured through it is a GPU figure.
 *
 * tests/simt/translate_cu.py rewrites each .cu file of kernels/cuda mechanically (kernel launches and
 * __shared__ declarations, the two things g++ cannot parse or that need per-block storage) and
 * force-includes this header first. Everything else in the .cu file is compiled unchanged:
 * threadIdx, __syncthreads, the warp intrinsics and atomics below are the emulation's.
 *
 * The model (tests/simt/simt_core.cpp): each block runs on one OS thread; its threads are fibers
 * that switch only at barriers (__syncthreads*, and the warp collectives, which rendezvous the
 * lanes of their mask). Thread and block order are chosen at run time (SAEC_SIMT_THREAD_ORDER,
 * SAEC_SIMT_BLOCK_ORDER).
 */
#ifndef SAEC_SIMT_CUDA_EMU_H
#define SAEC_SIMT_CUDA_EMU_H

/* The real CUDA headers first: under a host compiler (no __CUDACC__) they declare the runtime
   API, the vector types and dim3, and define __global__, __device__, __shared__ ... as nothing. */
#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <tuple>
#include <type_traits>
#include <utility>

/* From here on the .cu file's device code is compiled: cuda_internal.cuh's device helpers sit
   behind __CUDACC__. Every CUDA header the file uses has been included above. */
#define __CUDACC__ 1
/* Read by translate_cu.py for the launch check; nothing for the compiler. */
#define __launch_bounds__(...)

namespace saec_simt {

/* ---- the current thread and block (set by the scheduler before each fiber switch) ---- */
struct thread_state;
struct block_view {
    uint3 idx;  /* blockIdx */
    dim3 dim;   /* blockDim */
    dim3 grid;  /* gridDim */
};
struct thread_view {
    uint3 idx; /* threadIdx */
};
extern __thread const thread_view *cur_thread;
extern __thread const block_view *cur_block;

/* ---- barriers and warp collectives (simt_core.cpp) ---- */
int syncthreads(int pred, const char *file, int line); /* returns the count of nonzero preds */

enum warp_op { WOP_SHFL_XOR, WOP_SHFL_UP, WOP_SHFL_DOWN, WOP_SHFL_IDX, WOP_MATCH_ANY };
uint64_t warp_collective(int op, unsigned mask, uint64_t value, int arg, int width,
                         const char *file, int line);

template <class T> inline uint64_t to_bits(T v) {
    static_assert(sizeof(T) <= 8 && std::is_trivially_copyable<T>::value,
                  "warp collectives move values of at most 8 bytes");
    uint64_t u = 0;
    std::memcpy(&u, &v, sizeof v);
    return u;
}
template <class T> inline T from_bits(uint64_t u) {
    T v;
    std::memcpy(&v, &u, sizeof v);
    return v;
}
template <class T>
inline T shfl(int op, const char *file, int line, unsigned mask, T v, int arg, int width = 32) {
    return from_bits<T>(warp_collective(op, mask, to_bits(v), arg, width, file, line));
}
template <class T>
inline unsigned match_any(const char *file, int line, unsigned mask, T v) {
    return (unsigned)warp_collective(WOP_MATCH_ANY, mask, to_bits(v), 0, 32, file, line);
}

/* ---- shared memory (simt_core.cpp): per-block storage, poisoned at block start ---- */
void *static_shared(const void *tag, size_t bytes, size_t align, const char *name);
void *dynamic_shared(const char *name);

/* ---- kernel launches ---- */
struct launch_desc {
    const void *func;       /* the kernel's address: cudaFuncSetAttribute's key */
    const char *name;       /* as written at the launch, template arguments included */
    const char *file;
    int line;
    unsigned max_threads;   /* __launch_bounds__ maximum, 0 when the kernel states none */
    dim3 grid, block;
    size_t dyn_smem;
    cudaStream_t stream;
    void (*run)(const void *ctx); /* runs the kernel body for the current thread */
    const void *ctx;
};
/* Checks the configuration as the real runtime does (an invalid one is recorded as the last
   error, exactly like a failed <<<>>> launch), then runs the whole grid before returning. */
void launch(const launch_desc &d);

/* kernel<<<grid, block, smem, stream>>>(args...) becomes
   saec_simt::launcher(kernel, "kernel", bounds, __FILE__, __LINE__, grid, block, smem, stream)
   (args...): the arguments are converted to the kernel's parameter types once, at the launch,
   and every thread gets its own copy of them, as on the device. */
template <class... P> struct launcher {
    void (*fn)(P...);
    launch_desc d;
    launcher(void (*f)(P...), const char *name, unsigned max_threads, const char *file, int line,
             dim3 grid, dim3 block, size_t smem = 0, cudaStream_t stream = 0)
        : fn(f) {
        d.func = (const void *)f;
        d.name = name;
        d.file = file;
        d.line = line;
        d.max_threads = max_threads;
        d.grid = grid;
        d.block = block;
        d.dyn_smem = smem;
        d.stream = stream;
    }
    /* The parameters are the kernel's own, so the arguments convert as in a call (NULL included). */
    void operator()(P... args) {
        struct bound {
            void (*fn)(P...);
            std::tuple<typename std::decay<P>::type...> params;
        } b{fn, std::tuple<typename std::decay<P>::type...>(args...)};
        d.run = [](const void *ctx) {
            const bound *bb = static_cast<const bound *>(ctx);
            std::tuple<typename std::decay<P>::type...> copy = bb->params; /* per-thread params */
            std::apply(bb->fn, copy);
        };
        d.ctx = &b;
        launch(d);
    }
};
template <class... P>
launcher(void (*)(P...), const char *, unsigned, const char *, int, dim3, dim3, size_t = 0,
         cudaStream_t = 0) -> launcher<P...>;

/* ---- arithmetic with a fixed rounding: an opaque step keeps the compiler from contracting
   a*b+c into an FMA, as nvcc may not contract the __*_rn intrinsics ---- */
template <class T> inline T opaque(T v) {
#if defined(__x86_64__) || defined(__i386__)
    __asm__("" : "+x"(v));
#else
    __asm__("" : "+w"(v));
#endif
    return v;
}

/* ---- atomics: real atomics, because blocks run in parallel on several OS threads ---- */
template <class T> inline T atomic_add_float(T *addr, T v) {
    using U = typename std::conditional<sizeof(T) == 4, uint32_t, uint64_t>::type;
    U *p = reinterpret_cast<U *>(addr);
    U old = __atomic_load_n(p, __ATOMIC_RELAXED), upd;
    do {
        T f;
        std::memcpy(&f, &old, sizeof f);
        f = opaque(f + v);
        std::memcpy(&upd, &f, sizeof upd);
    } while (!__atomic_compare_exchange_n(p, &old, upd, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED));
    T prev;
    std::memcpy(&prev, &old, sizeof prev);
    return prev;
}

} // namespace saec_simt

/* cuda_runtime.h gives this template overload only to nvcc: a kernel (a function) as the key. */
template <class... P>
inline cudaError_t cudaFuncSetAttribute(void (*kernel)(P...), enum cudaFuncAttribute attr, int value) {
    return ::cudaFuncSetAttribute(reinterpret_cast<const void *>(kernel), attr, value);
}

/* ---- the built-in variables ---- */
#define threadIdx (::saec_simt::cur_thread->idx)
#define blockIdx (::saec_simt::cur_block->idx)
#define blockDim (::saec_simt::cur_block->dim)
#define gridDim (::saec_simt::cur_block->grid)
static const int warpSize = 32;

/* ---- barriers ---- */
#define __syncthreads() ((void)::saec_simt::syncthreads(0, __FILE__, __LINE__))
#define __syncthreads_count(pred) ::saec_simt::syncthreads((pred) != 0, __FILE__, __LINE__)

/* ---- warp collectives ---- */
#define __shfl_xor_sync(...) ::saec_simt::shfl(::saec_simt::WOP_SHFL_XOR, __FILE__, __LINE__, __VA_ARGS__)
#define __shfl_up_sync(...) ::saec_simt::shfl(::saec_simt::WOP_SHFL_UP, __FILE__, __LINE__, __VA_ARGS__)
#define __shfl_down_sync(...) ::saec_simt::shfl(::saec_simt::WOP_SHFL_DOWN, __FILE__, __LINE__, __VA_ARGS__)
#define __shfl_sync(...) ::saec_simt::shfl(::saec_simt::WOP_SHFL_IDX, __FILE__, __LINE__, __VA_ARGS__)
#define __match_any_sync(mask, v) ::saec_simt::match_any(__FILE__, __LINE__, (mask), (v))

/* ---- intrinsics with a fixed rounding (round to nearest even, no contraction) ---- */
static inline float __fadd_rn(float a, float b) { return ::saec_simt::opaque(a + b); }
static inline float __fsub_rn(float a, float b) { return ::saec_simt::opaque(a - b); }
static inline float __fmul_rn(float a, float b) { return ::saec_simt::opaque(a * b); }
static inline float __fdiv_rn(float a, float b) { return ::saec_simt::opaque(a / b); }
static inline float __fsqrt_rn(float a) { return ::saec_simt::opaque(std::sqrt(a)); }
static inline double __dadd_rn(double a, double b) { return ::saec_simt::opaque(a + b); }
static inline double __dsub_rn(double a, double b) { return ::saec_simt::opaque(a - b); }
static inline double __dmul_rn(double a, double b) { return ::saec_simt::opaque(a * b); }

/* ---- bit manipulation ---- */
static inline unsigned __float_as_uint(float f) { return ::saec_simt::to_bits(f) & 0xffffffffu; }
static inline float __uint_as_float(unsigned u) { return ::saec_simt::from_bits<float>(u); }
static inline int __popc(unsigned x) { return __builtin_popcount(x); }
static inline int __ffs(int x) { return __builtin_ffs(x); }

/* ---- atomics ---- */
static inline float atomicAdd(float *p, float v) { return ::saec_simt::atomic_add_float(p, v); }
static inline double atomicAdd(double *p, double v) { return ::saec_simt::atomic_add_float(p, v); }
static inline int atomicAdd(int *p, int v) { return __atomic_fetch_add(p, v, __ATOMIC_RELAXED); }
static inline unsigned atomicAdd(unsigned *p, unsigned v) {
    return __atomic_fetch_add(p, v, __ATOMIC_RELAXED);
}
static inline unsigned long long atomicAdd(unsigned long long *p, unsigned long long v) {
    return __atomic_fetch_add(p, v, __ATOMIC_RELAXED);
}

/* ---- shared memory, as translate_cu.py writes its declarations ---- */
#define SAEC_SIMT_SHARED(align, T, name, dims)                                                     \
    typedef T saec_simt_shared_t_##name dims;                                                      \
    static const char saec_simt_tag_##name = 0;                                                    \
    saec_simt_shared_t_##name &name = *static_cast<saec_simt_shared_t_##name *>(                   \
        ::saec_simt::static_shared(&saec_simt_tag_##name, sizeof(saec_simt_shared_t_##name),       \
                                   (align) > alignof(saec_simt_shared_t_##name)                    \
                                       ? (size_t)(align)                                           \
                                       : alignof(saec_simt_shared_t_##name),                       \
                                   #name))
#define SAEC_SIMT_DYNAMIC_SHARED(T, name)                                                          \
    T *const name = static_cast<T *>(::saec_simt::dynamic_shared(#name))

#endif
