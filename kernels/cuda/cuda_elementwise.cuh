/* The float4 grid-stride loop of the CUDA elementwise kernels, written once: the vectorised
 * main loop, the scalar tail and the scalar fallback for unaligned pointers. A kernel gives the
 * per-element arithmetic as a functor; the loop applies it to every element, the same code on
 * both paths, so the float4 and the scalar results are the same bits.
 *
 * Order. Thread t of the grid (stride = every thread of the grid) takes the float4 groups
 * t, t + stride, ... of the n / 4 whole groups, lanes x, y, z, w in that order, then the
 * scalar elements 4 (n / 4) + t, + stride, ...: the order the kernels wrote by hand, so a
 * thread's own accumulation (reduce_partial_kernel) adds its elements in the same order.
 * vec = 0 (a pointer not 16-byte aligned: the launcher checks with saec_ew_aligned16) walks all
 * n elements scalar.
 *
 * For .cu files only, after cuda_internal.cuh.
 */
#ifndef SAEC_CUDA_ELEMENTWISE_CUH
#define SAEC_CUDA_ELEMENTWISE_CUH

#include "cuda_internal.cuh"

/* ---- host side: the launch ------------------------------------------------------------------ */

/* 1 when every pointer is 16-byte aligned (NULL counts as aligned): the float4 path may run. */
template <typename... P> inline int saec_ew_aligned16(const P *...p) {
    return (saec_cuda_aligned16(p) && ...);
}

/* Blocks of `threads` for a grid-stride loop over n elements, 4 per item when vec. */
static inline unsigned saec_ew_blocks(int64_t n, int vec, int threads, int sm_count) {
    return saec_cuda_blocks(vec ? (n + 3) / 4 : n, threads, sm_count);
}

/* ---- device side: the loop ------------------------------------------------------------------ */

/* The skeleton: body4(g) for each of this thread's float4 groups g (when vec), then body1(i) for
   each of its scalar elements i. */
template <typename Body4, typename Body1>
__device__ __forceinline__ void saec_ew_loop(int64_t n, int vec, Body4 body4, Body1 body1) {
    const int64_t tid = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    const int64_t stride = (int64_t)gridDim.x * blockDim.x;
    int64_t done = 0;
    if (vec) {
        const int64_t n4 = n / 4;
        for (int64_t g = tid; g < n4; g += stride)
            body4(g);
        done = n4 * 4;
    }
    for (int64_t i = done + tid; i < n; i += stride)
        body1(i);
}

/* out[i] = f(in[i]...) for i < n (f takes one float per input array and returns a float): one
   float4 load per input and one float4 store per group. out may alias an input: one thread reads
   an element and then writes it. */
template <typename F, typename... In>
__device__ __forceinline__ void saec_ew_map(int64_t n, int vec, float *out, F f, const In *...in) {
    saec_ew_loop(
        n, vec,
        [&](int64_t g) {
            /* v: one float4 per input */
            auto lanes = [&](const auto &...v) {
                float4 o;
                o.x = f(v.x...);
                o.y = f(v.y...);
                o.z = f(v.z...);
                o.w = f(v.w...);
                return o;
            };
            reinterpret_cast<float4 *>(out)[g] = lanes(reinterpret_cast<const float4 *>(in)[g]...);
        },
        [&](int64_t i) { out[i] = f(in[i]...); });
}

/* f(in[i], io[i]...) for i < n, in each thread's order, where f takes in's element by value and
   those of the in-out arrays io by reference (float &): one float4 load of every array and one
   float4 store of every io array per group. With no io, a read-only walk whose functor
   accumulates (sums, counts, histograms). */
template <typename F, typename... Io>
__device__ __forceinline__ void saec_ew_each(int64_t n, int vec, const float *in, F f, Io *...io) {
    saec_ew_loop(
        n, vec,
        [&](int64_t g) {
            /* v: copies of the io groups, stored back after the four lanes */
            auto lanes = [&](const float4 a, auto... v) {
                f(a.x, v.x...);
                f(a.y, v.y...);
                f(a.z, v.z...);
                f(a.w, v.w...);
                ((reinterpret_cast<float4 *>(io)[g] = v), ...);
            };
            lanes(reinterpret_cast<const float4 *>(in)[g], reinterpret_cast<float4 *>(io)[g]...);
        },
        [&](int64_t i) {
            auto one = [&](const float a, auto... v) {
                f(a, v...);
                ((io[i] = v), ...);
            };
            one(in[i], io[i]...);
        });
}

#endif
