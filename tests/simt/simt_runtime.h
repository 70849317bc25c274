/* Emulated-GPU test tier: hooks between the host-side CUDA stand-ins (cuda_runtime_emu.cpp,
 * cublas_emu.cpp, include/cub/...) and the SIMT core. Test infrastructure only, never a
 * performance path. Valid C and C++.
 */
#ifndef SAEC_SIMT_RUNTIME_H
#define SAEC_SIMT_RUNTIME_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cuda_runtime_api.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Record e (not cudaSuccess) as the calling thread's last error, as the runtime does for a
   failed launch: cudaGetLastError() returns and clears it. */
void saec_simt_record_error(cudaError_t e);
/* 1 when [p, p + bytes) lies wholly inside one live cudaMalloc allocation (bytes == 0: p lies
   in one or just past its end), else 0. */
int saec_simt_is_device_range(const void *p, size_t bytes);
/* 1 when s is a live stream (or the NULL, legacy or per-thread stream), else 0. */
int saec_simt_is_stream(cudaStream_t s);
/* Prints "saec-simt: ", the message and a newline on stderr: why a stand-in refused a call. */
void saec_simt_vwarn(const char *fmt, va_list ap);

#ifdef __cplusplus
}

#include <map>

/* The stand-ins' opaque handles: non-canonical addresses (dereferencing one faults) drawn from a
   counter, so a destroyed handle never becomes valid again. The caller locks. */
template <class T> class SaecSimtHandles {
  public:
    explicit SaecSimtHandles(uintptr_t base) : next_(base) {}
    uintptr_t add(const T &v) {
        next_ += 64;
        live_.emplace(next_, v);
        return next_;
    }
    T *find(uintptr_t h) {
        auto it = live_.find(h);
        return it == live_.end() ? nullptr : &it->second;
    }
    bool erase(uintptr_t h) { return live_.erase(h) != 0; }

  private:
    uintptr_t next_;
    std::map<uintptr_t, T> live_;
};
#endif

#endif
