/* Emulated-GPU test tier: a host stand-in for CUB's DeviceSegmentedRadixSort (the overload saec
 * uses), found before the real CUB through the include path. Test infrastructure only, never a
 * performance path. Key ranking, temp storage and checks as in device_radix_sort.cuh; each
 * segment [d_begin_offsets[i], d_end_offsets[i]) is sorted on its own, a segment with end <= begin
 * is empty (as CUB's kernel treats it), and items outside every segment are neither read nor
 * written. A segment reaching outside [0, num_items) is refused (cudaErrorInvalidValue).
 */
#ifndef SAEC_SIMT_CUB_DEVICE_SEGMENTED_RADIX_SORT_CUH
#define SAEC_SIMT_CUB_DEVICE_SEGMENTED_RADIX_SORT_CUH

#include "device_radix_sort.cuh"

namespace cub {

struct DeviceSegmentedRadixSort {
    template <typename KeyT, typename OffsetT>
    static cudaError_t SortKeysDescending(void *d_temp_storage, size_t &temp_storage_bytes,
                                          const KeyT *d_keys_in, KeyT *d_keys_out, int num_items,
                                          int num_segments, const OffsetT *d_begin_offsets,
                                          const OffsetT *d_end_offsets, int begin_bit = 0,
                                          int end_bit = sizeof(KeyT) * 8, cudaStream_t stream = 0) {
        namespace sd = simt_detail;
        const char *call = "cub::DeviceSegmentedRadixSort::SortKeysDescending";
        if (num_items < 0 || num_segments < 0)
            return sd::fail(cudaErrorInvalidValue, call, "num_items %d, num_segments %d", num_items,
                            num_segments);
        const size_t n = (size_t)num_items, segs = (size_t)num_segments;
        const size_t need = segs == 0 ? 1 : sd::temp_bytes(n, sizeof(KeyT));
        if (!d_temp_storage) {
            temp_storage_bytes = need;
            return cudaSuccess;
        }
        if (n == 0 || segs == 0) return cudaSuccess;
        cudaError_t e = sd::check_call(call, sizeof(KeyT) * 8, begin_bit, end_bit,
                                       temp_storage_bytes, need, stream);
        if (e != cudaSuccess) return e;
        const sd::Range r[5] = {{"d_temp_storage", d_temp_storage, need, true},
                                {"d_keys_in", d_keys_in, n * sizeof(KeyT), false},
                                {"d_keys_out", d_keys_out, n * sizeof(KeyT), true},
                                {"d_begin_offsets", d_begin_offsets, segs * sizeof(OffsetT), false},
                                {"d_end_offsets", d_end_offsets, segs * sizeof(OffsetT), false}};
        if ((e = sd::check_ranges(call, r, 5)) != cudaSuccess) return e;
        for (size_t s = 0; s < segs; s++) {
            const long long b = (long long)d_begin_offsets[s], en = (long long)d_end_offsets[s];
            if (en <= b) continue;
            if (b < 0 || en > num_items)
                return sd::fail(cudaErrorInvalidValue, call,
                                "segment %zu [%lld, %lld) lies outside [0, num_items = %d)", s, b,
                                en, num_items);
        }
        for (size_t s = 0; s < segs; s++) {
            const long long b = (long long)d_begin_offsets[s], en = (long long)d_end_offsets[s];
            if (en > b)
                sd::sort<KeyT, char>(d_keys_in + b, d_keys_out + b, NULL, NULL, (size_t)(en - b),
                                     begin_bit, end_bit, true);
        }
        return cudaSuccess;
    }
};

} // namespace cub

#endif
