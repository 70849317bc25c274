/* Emulated-GPU test tier: a host stand-in for CUB's DeviceRadixSort (the overloads saec uses),
 * found before the real CUB through the include path. Test infrastructure only, never a
 * performance path.
 *
 * CUB's contract, executed eagerly on the calling thread: a NULL d_temp_storage only sets
 * temp_storage_bytes; otherwise a too-small temp_storage_bytes is cudaErrorInvalidValue. The sort
 * is stable and ranks keys by bits [begin_bit, end_bit). Keys are unsigned integers, all saec
 * sorts (CUB reorders the bits of signed and float keys first; they do not compile). DoubleBuffer
 * overloads leave the result in the alternate buffers and flip the selectors, as CUB does for an
 * odd number of passes, so callers must read Current(). Beyond CUB, the stand-in refuses buffers
 * outside device allocations (cudaErrorIllegalAddress, recorded as a kernel fault would be) and
 * output ranges overlapping any other range (cudaErrorInvalidValue; undefined on a GPU).
 */
#ifndef SAEC_SIMT_CUB_DEVICE_RADIX_SORT_CUH
#define SAEC_SIMT_CUB_DEVICE_RADIX_SORT_CUH

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <algorithm>
#include <type_traits>
#include <vector>

#include <cuda_runtime_api.h>

#include "../../../simt_runtime.h" /* by path: the kernels' include path need not name tests/simt */

namespace cub {

template <typename T> struct DoubleBuffer {
    T *d_buffers[2]{};
    int selector = 0;

    DoubleBuffer() = default;
    DoubleBuffer(T *d_current, T *d_alternate) : d_buffers{d_current, d_alternate} {}
    T *Current() { return d_buffers[selector]; }
    T *Alternate() { return d_buffers[selector ^ 1]; }
};

namespace simt_detail {

template <typename K> uint64_t digit(K key, int begin_bit, int end_bit) {
    static_assert(std::is_unsigned<K>::value, "CUB stand-in: unsigned integer keys only");
    const int width = end_bit - begin_bit;
    if (width == 0) return 0;
    const uint64_t mask = width >= 64 ? ~(uint64_t)0 : ((uint64_t)1 << width) - 1;
    return ((uint64_t)key >> begin_bit) & mask;
}

__attribute__((format(printf, 3, 4))) inline cudaError_t fail(cudaError_t e, const char *call,
                                                              const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "saec-simt: %s: ", call);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return e;
}

/* The temp storage asked for, shaped like CUB's request: 1 byte for an empty problem, else room
   for histograms plus, for the overloads that may not overwrite their input, alternate buffers
   (alt_bytes per item). */
inline size_t temp_bytes(size_t num_items, size_t alt_bytes) {
    return num_items == 0 ? 1 : 4096 + num_items * alt_bytes;
}

struct Range {
    const char *name;
    const void *p;
    size_t bytes;
    bool written;
};

/* Every range in device memory; no written range overlapping another range. */
inline cudaError_t check_ranges(const char *call, const Range *r, int n) {
    for (int i = 0; i < n; i++)
        if (r[i].bytes && !saec_simt_is_device_range(r[i].p, r[i].bytes)) {
            saec_simt_record_error(cudaErrorIllegalAddress);
            return fail(cudaErrorIllegalAddress, call,
                        "%s %p (+%zu bytes) is not inside one device allocation", r[i].name, r[i].p,
                        r[i].bytes);
        }
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++) {
            const uintptr_t a = (uintptr_t)r[i].p, b = (uintptr_t)r[j].p;
            if ((r[i].written || r[j].written) && r[i].bytes && r[j].bytes && a < b + r[j].bytes &&
                b < a + r[i].bytes)
                return fail(cudaErrorInvalidValue, call, "%s %p and %s %p overlap", r[i].name,
                            r[i].p, r[j].name, r[j].p);
        }
    return cudaSuccess;
}

/* The checks every call shares, after the size query: bit range, temp size, stream. */
inline cudaError_t check_call(const char *call, size_t key_bits, int begin_bit, int end_bit,
                              size_t have, size_t need, cudaStream_t stream) {
    if (begin_bit < 0 || end_bit > (int)key_bits || begin_bit > end_bit)
        return fail(cudaErrorInvalidValue, call, "bit range [%d, %d) of a %zu-bit key", begin_bit,
                    end_bit, key_bits);
    if (have < need)
        return fail(cudaErrorInvalidValue, call, "temp_storage_bytes %zu < the %zu asked for", have,
                    need);
    if (!saec_simt_is_stream(stream)) {
        saec_simt_record_error(cudaErrorInvalidResourceHandle);
        return fail(cudaErrorInvalidResourceHandle, call, "stream %p is not live", (void *)stream);
    }
    return cudaSuccess;
}

/* Stable sort of n keys (and values, when vals_in is not NULL) from in to out. */
template <typename K, typename V>
void sort(const K *keys_in, K *keys_out, const V *vals_in, V *vals_out, size_t n, int begin_bit,
          int end_bit, bool descending) {
    std::vector<uint64_t> d(n);
    std::vector<size_t> order(n);
    for (size_t i = 0; i < n; i++) {
        d[i] = digit(keys_in[i], begin_bit, end_bit);
        order[i] = i;
    }
    std::stable_sort(order.begin(), order.end(),
                     [&](size_t a, size_t b) { return descending ? d[a] > d[b] : d[a] < d[b]; });
    for (size_t i = 0; i < n; i++) {
        keys_out[i] = keys_in[order[i]];
        if (vals_in) vals_out[i] = vals_in[order[i]];
    }
}

template <typename N> bool bad_count(N n) { return std::is_signed<N>::value && n < N(0); }

} // namespace simt_detail

struct DeviceRadixSort {
    template <typename KeyT, typename ValueT, typename NumItemsT>
    static cudaError_t SortPairs(void *d_temp_storage, size_t &temp_storage_bytes,
                                 const KeyT *d_keys_in, KeyT *d_keys_out, const ValueT *d_values_in,
                                 ValueT *d_values_out, NumItemsT num_items, int begin_bit = 0,
                                 int end_bit = sizeof(KeyT) * 8, cudaStream_t stream = 0) {
        namespace sd = simt_detail;
        const char *call = "cub::DeviceRadixSort::SortPairs";
        if (sd::bad_count(num_items))
            return sd::fail(cudaErrorInvalidValue, call, "num_items %lld", (long long)num_items);
        const size_t n = (size_t)num_items;
        const size_t need = sd::temp_bytes(n, sizeof(KeyT) + sizeof(ValueT));
        if (!d_temp_storage) {
            temp_storage_bytes = need;
            return cudaSuccess;
        }
        if (n == 0) return cudaSuccess;
        cudaError_t e = sd::check_call(call, sizeof(KeyT) * 8, begin_bit, end_bit,
                                       temp_storage_bytes, need, stream);
        if (e != cudaSuccess) return e;
        const sd::Range r[5] = {{"d_temp_storage", d_temp_storage, need, true},
                                {"d_keys_in", d_keys_in, n * sizeof(KeyT), false},
                                {"d_keys_out", d_keys_out, n * sizeof(KeyT), true},
                                {"d_values_in", d_values_in, n * sizeof(ValueT), false},
                                {"d_values_out", d_values_out, n * sizeof(ValueT), true}};
        if ((e = sd::check_ranges(call, r, 5)) != cudaSuccess) return e;
        sd::sort(d_keys_in, d_keys_out, d_values_in, d_values_out, n, begin_bit, end_bit, false);
        return cudaSuccess;
    }

    template <typename KeyT, typename ValueT, typename NumItemsT>
    static cudaError_t SortPairs(void *d_temp_storage, size_t &temp_storage_bytes,
                                 DoubleBuffer<KeyT> &d_keys, DoubleBuffer<ValueT> &d_values,
                                 NumItemsT num_items, int begin_bit = 0,
                                 int end_bit = sizeof(KeyT) * 8, cudaStream_t stream = 0) {
        namespace sd = simt_detail;
        const char *call = "cub::DeviceRadixSort::SortPairs (DoubleBuffer)";
        if (sd::bad_count(num_items))
            return sd::fail(cudaErrorInvalidValue, call, "num_items %lld", (long long)num_items);
        const size_t n = (size_t)num_items;
        const size_t need = sd::temp_bytes(n, 0);
        if (!d_temp_storage) {
            temp_storage_bytes = need;
            return cudaSuccess;
        }
        if (n == 0 || begin_bit == end_bit) return cudaSuccess; /* CUB: nothing moves */
        cudaError_t e = sd::check_call(call, sizeof(KeyT) * 8, begin_bit, end_bit,
                                       temp_storage_bytes, need, stream);
        if (e != cudaSuccess) return e;
        const sd::Range r[5] = {
            {"d_temp_storage", d_temp_storage, need, true},
            {"d_keys.Current()", d_keys.Current(), n * sizeof(KeyT), false},
            {"d_keys.Alternate()", d_keys.Alternate(), n * sizeof(KeyT), true},
            {"d_values.Current()", d_values.Current(), n * sizeof(ValueT), false},
            {"d_values.Alternate()", d_values.Alternate(), n * sizeof(ValueT), true}};
        if ((e = sd::check_ranges(call, r, 5)) != cudaSuccess) return e;
        sd::sort<KeyT, ValueT>(d_keys.Current(), d_keys.Alternate(), d_values.Current(),
                               d_values.Alternate(), n, begin_bit, end_bit, false);
        d_keys.selector ^= 1;
        d_values.selector ^= 1;
        return cudaSuccess;
    }
};

} // namespace cub

#endif
