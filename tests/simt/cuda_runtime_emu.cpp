/* Emulated-GPU test tier: the CUDA runtime API calls saec makes, implemented on the host.
 * Test infrastructure only, never a performance path.
 *
 * Device memory is host memory (one exact-size heap block per cudaMalloc, so AddressSanitizer
 * sees overruns), tracked so that a host pointer passed where a device pointer belongs, an
 * overrun copy or a bad free fails loudly. Streams run eagerly: every *Async call completes
 * before it returns, so synchronisation is bookkeeping. Failures set the calling thread's last
 * error exactly as the real runtime does (no sticky errors). The device is an H100 SXM.
 * Kernel launches and cudaFuncSetAttribute belong to the SIMT core (simt_core.cpp).
 */
#include <cuda_runtime.h>

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <atomic>
#include <map>
#include <mutex>

#include "simt_runtime.h"

namespace {

/* ---- last error (per host thread, as in the real runtime) ---------------------------------- */

thread_local cudaError_t t_last_error = cudaSuccess;
thread_local int t_device = 0;

cudaError_t fail(cudaError_t e) {
    t_last_error = e;
    return e;
}

/* A failure that is a caller bug: say what happened on stderr, then fail. */
__attribute__((format(printf, 2, 3))) cudaError_t fail_msg(cudaError_t e, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    saec_simt_vwarn(fmt, ap);
    va_end(ap);
    return fail(e);
}

/* ---- the device ----------------------------------------------------------------------------- */

constexpr size_t kTotalGlobalMem = (size_t)80 << 30;

/* One device unless SAEC_SIMT_DEVICES says 0..8; read on every call so tests may change it. */
int device_count() {
    const char *s = getenv("SAEC_SIMT_DEVICES");
    if (!s || !*s) return 1;
    char *end = NULL;
    long n = strtol(s, &end, 10);
    if (*end == '\0' && n >= 0 && n <= 8) return (int)n;
    static std::atomic<bool> warned(false);
    if (!warned.exchange(true))
        fprintf(stderr, "saec-simt: SAEC_SIMT_DEVICES=%s is not 0..8; using 1 device\n", s);
    return 1;
}

cudaError_t check_device(int device) {
    const int n = device_count();
    if (n == 0) return fail(cudaErrorNoDevice);
    if (device < 0 || device >= n)
        return fail_msg(cudaErrorInvalidDevice, "device %d does not exist (%d emulated devices)",
                        device, n);
    return cudaSuccess;
}

void fill_properties(cudaDeviceProp *p) {
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "NVIDIA H100 80GB HBM3 (emulated on CPU)");
    p->totalGlobalMem = kTotalGlobalMem;
    p->sharedMemPerBlock = 48 << 10;
    p->regsPerBlock = 65536;
    p->warpSize = 32;
    p->memPitch = 2147483647;
    p->maxThreadsPerBlock = 1024;
    p->maxThreadsDim[0] = 1024;
    p->maxThreadsDim[1] = 1024;
    p->maxThreadsDim[2] = 64;
    p->maxGridSize[0] = 2147483647;
    p->maxGridSize[1] = 65535;
    p->maxGridSize[2] = 65535;
    p->totalConstMem = 65536;
    p->major = 9;
    p->minor = 0;
    p->textureAlignment = 512;
    p->texturePitchAlignment = 32;
    p->multiProcessorCount = 132;
    p->canMapHostMemory = 1;
    p->concurrentKernels = 1;
    p->ECCEnabled = 1;
    p->asyncEngineCount = 3;
    p->unifiedAddressing = 1;
    p->memoryBusWidth = 5120;
    p->l2CacheSize = 50 << 20;
    p->maxThreadsPerMultiProcessor = 2048;
    p->streamPrioritiesSupported = 1;
    p->globalL1CacheSupported = 1;
    p->localL1CacheSupported = 1;
    p->sharedMemPerMultiprocessor = 233472;
    p->regsPerMultiprocessor = 65536;
    p->managedMemory = 1;
    p->computePreemptionSupported = 1;
    p->cooperativeLaunch = 1;
    p->sharedMemPerBlockOptin = 232448;
    p->maxBlocksPerMultiProcessor = 32;
    p->reservedSharedMemPerBlock = 1024;
    p->clusterLaunch = 1;
}

/* ---- memory --------------------------------------------------------------------------------- */

std::mutex g_mem_mu;
std::map<uintptr_t, size_t> g_device_allocs; /* base -> size */
std::map<uintptr_t, size_t> g_host_allocs;   /* pinned: base -> size */
size_t g_device_bytes = 0;

/* The allocation of `m` holding p (p in [base, base + size], the end included so that an empty
   range at the end counts); g_mem_mu held. */
bool find_alloc(const std::map<uintptr_t, size_t> &m, uintptr_t p, uintptr_t *base, size_t *size) {
    auto it = m.upper_bound(p);
    if (it == m.begin()) return false;
    --it;
    if (p - it->first > it->second) return false;
    *base = it->first;
    *size = it->second;
    return true;
}

enum class Side { device, host, straddles };

/* Where [p, p + n) lies (n > 0): wholly inside one device allocation, clear of all of them, or
   partly in one (an overrun, or host memory overlapping device memory). */
Side classify(const void *ptr, size_t n, uintptr_t *base, size_t *size) {
    const uintptr_t p = (uintptr_t)ptr;
    std::lock_guard<std::mutex> lock(g_mem_mu);
    if (find_alloc(g_device_allocs, p, base, size) && p - *base < *size)
        return n <= *size - (p - *base) ? Side::device : Side::straddles;
    /* not starting in one: does any allocation begin inside [p, p + n)? */
    auto it = g_device_allocs.upper_bound(p);
    if (it != g_device_allocs.end() && it->first - p < n) {
        *base = it->first;
        *size = it->second;
        return Side::straddles;
    }
    return Side::host;
}

/* The device side of a copy or memset must lie in one allocation, the host side outside all. */
cudaError_t check_side(const char *call, const char *what, const void *p, size_t n,
                       bool want_device) {
    uintptr_t base = 0;
    size_t size = 0;
    const Side s = classify(p, n, &base, &size);
    if (want_device && s == Side::device) return cudaSuccess;
    if (!want_device && s == Side::host) return cudaSuccess;
    if (s == Side::straddles)
        return fail_msg(cudaErrorInvalidValue,
                        "%s: %s %p (+%zu bytes) is not inside one device allocation (it overlaps "
                        "the allocation %p of %zu bytes)",
                        call, what, p, n, (void *)base, size);
    if (want_device)
        return fail_msg(cudaErrorInvalidValue,
                        "%s: %s %p (+%zu bytes) is not a device allocation (a host pointer?)", call,
                        what, p, n);
    return fail_msg(cudaErrorInvalidValue,
                    "%s: host %s %p (+%zu bytes) lies in the device allocation %p of %zu bytes "
                    "(wrong cudaMemcpyKind?)",
                    call, what, p, n, (void *)base, size);
}

/* ---- streams and events: handles only (eager streams leave nothing to record) --------------- */

struct NoState {};
std::mutex g_handle_mu;
SaecSimtHandles<NoState> g_streams(0x5aec100000000000u);
SaecSimtHandles<NoState> g_events(0x5aec200000000000u);

bool is_special_stream(cudaStream_t s) {
    return s == 0 || s == cudaStreamLegacy || s == cudaStreamPerThread;
}

bool stream_live(cudaStream_t s) {
    if (is_special_stream(s)) return true;
    std::lock_guard<std::mutex> lock(g_handle_mu);
    return g_streams.find((uintptr_t)s) != nullptr;
}

cudaError_t check_stream(const char *call, cudaStream_t s) {
    if (stream_live(s)) return cudaSuccess;
    return fail_msg(cudaErrorInvalidResourceHandle, "%s: stream %p is not a live stream", call,
                    (void *)s);
}

cudaError_t check_event(const char *call, cudaEvent_t event) {
    {
        std::lock_guard<std::mutex> lock(g_handle_mu);
        if (g_events.find((uintptr_t)event)) return cudaSuccess;
    }
    return fail_msg(cudaErrorInvalidResourceHandle, "%s: event %p is not a live event", call,
                    (void *)event);
}

cudaError_t checked_memcpy(const char *call, void *dst, const void *src, size_t count,
                           cudaMemcpyKind kind, cudaStream_t stream) {
    cudaError_t e = check_stream(call, stream);
    if (e != cudaSuccess) return e;
    if (count == 0) return cudaSuccess;
    if (!dst || !src) return fail_msg(cudaErrorInvalidValue, "%s: NULL pointer", call);
    bool dst_dev = false, src_dev = false;
    uintptr_t base = 0;
    size_t size = 0;
    switch (kind) {
    case cudaMemcpyHostToHost: break;
    case cudaMemcpyHostToDevice: dst_dev = true; break;
    case cudaMemcpyDeviceToHost: src_dev = true; break;
    case cudaMemcpyDeviceToDevice: dst_dev = src_dev = true; break;
    case cudaMemcpyDefault: /* unified addressing: the pointer tells */
        dst_dev = classify(dst, count, &base, &size) != Side::host;
        src_dev = classify(src, count, &base, &size) != Side::host;
        break;
    default:
        return fail_msg(cudaErrorInvalidMemcpyDirection, "%s: cudaMemcpyKind %d", call, (int)kind);
    }
    if ((e = check_side(call, "destination", dst, count, dst_dev)) != cudaSuccess) return e;
    if ((e = check_side(call, "source", src, count, src_dev)) != cudaSuccess) return e;
    const uintptr_t d = (uintptr_t)dst, s = (uintptr_t)src;
    if (d != s && d < s + count && s < d + count) /* undefined on a GPU: refuse */
        return fail_msg(cudaErrorInvalidValue,
                        "%s: source %p and destination %p (%zu bytes) overlap", call, src, dst,
                        count);
    memmove(dst, src, count);
    return cudaSuccess;
}

cudaError_t checked_memset(const char *call, void *dst, int value, size_t count,
                           cudaStream_t stream) {
    cudaError_t e = check_stream(call, stream);
    if (e != cudaSuccess) return e;
    if (count == 0) return cudaSuccess;
    if ((e = check_side(call, "destination", dst, count, true)) != cudaSuccess) return e;
    memset(dst, value & 0xff, count);
    return cudaSuccess;
}

} // namespace

/* ---- hooks for the SIMT core and the other stand-ins ----------------------------------------- */

extern "C" void saec_simt_record_error(cudaError_t e) {
    if (e != cudaSuccess) t_last_error = e;
}

extern "C" int saec_simt_is_device_range(const void *ptr, size_t bytes) {
    const uintptr_t p = (uintptr_t)ptr;
    uintptr_t base = 0;
    size_t size = 0;
    std::lock_guard<std::mutex> lock(g_mem_mu);
    if (!find_alloc(g_device_allocs, p, &base, &size)) return 0;
    return bytes <= size - (p - base);
}

extern "C" int saec_simt_is_stream(cudaStream_t s) { return stream_live(s) ? 1 : 0; }

extern "C" void saec_simt_vwarn(const char *fmt, va_list ap) {
    fputs("saec-simt: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

/* ---- errors ------------------------------------------------------------------------------ */

extern "C" cudaError_t CUDARTAPI cudaGetLastError(void) {
    const cudaError_t e = t_last_error;
    t_last_error = cudaSuccess;
    return e;
}

/* Name and message of every code the emulated tier produces, in the runtime's words. */
#define SAEC_SIMT_ERRORS(X)                                                                        \
    X(cudaSuccess, "no error")                                                                     \
    X(cudaErrorInvalidValue, "invalid argument")                                                   \
    X(cudaErrorMemoryAllocation, "out of memory")                                                  \
    X(cudaErrorInvalidConfiguration, "invalid configuration argument")                             \
    X(cudaErrorInvalidMemcpyDirection, "invalid copy direction for memcpy")                        \
    X(cudaErrorInvalidDeviceFunction, "invalid device function")                                   \
    X(cudaErrorNoDevice, "no CUDA-capable device is detected")                                     \
    X(cudaErrorInvalidDevice, "invalid device ordinal")                                            \
    X(cudaErrorInvalidResourceHandle, "invalid resource handle")                                   \
    X(cudaErrorIllegalAddress, "an illegal memory access was encountered")                         \
    X(cudaErrorLaunchOutOfResources, "too many resources requested for launch")

extern "C" const char *CUDARTAPI cudaGetErrorName(cudaError_t error) {
#define SAEC_SIMT_NAME(code, text)                                                                 \
    if (error == code) return #code;
    SAEC_SIMT_ERRORS(SAEC_SIMT_NAME)
#undef SAEC_SIMT_NAME
    return "unrecognized error code";
}

extern "C" const char *CUDARTAPI cudaGetErrorString(cudaError_t error) {
#define SAEC_SIMT_TEXT(code, text)                                                                 \
    if (error == code) return text;
    SAEC_SIMT_ERRORS(SAEC_SIMT_TEXT)
#undef SAEC_SIMT_TEXT
    return "unrecognized error code";
}

/* ---- devices ----------------------------------------------------------------------------- */

extern "C" cudaError_t CUDARTAPI cudaGetDeviceCount(int *count) {
    if (!count) return fail_msg(cudaErrorInvalidValue, "cudaGetDeviceCount: NULL count");
    *count = device_count();
    return *count ? cudaSuccess : fail(cudaErrorNoDevice);
}

extern "C" cudaError_t CUDARTAPI cudaSetDevice(int device) {
    cudaError_t e = check_device(device);
    if (e != cudaSuccess) return e;
    t_device = device;
    return cudaSuccess;
}

extern "C" cudaError_t CUDARTAPI cudaGetDeviceProperties(cudaDeviceProp *prop, int device) {
    if (!prop) return fail_msg(cudaErrorInvalidValue, "cudaGetDeviceProperties: NULL prop");
    cudaError_t e = check_device(device);
    if (e != cudaSuccess) return e;
    fill_properties(prop);
    return cudaSuccess;
}

extern "C" cudaError_t CUDARTAPI cudaDeviceGetAttribute(int *value, cudaDeviceAttr attr,
                                                        int device) {
    if (!value) return fail_msg(cudaErrorInvalidValue, "cudaDeviceGetAttribute: NULL value");
    cudaError_t e = check_device(device);
    if (e != cudaSuccess) return e;
    cudaDeviceProp p;
    fill_properties(&p);
    switch (attr) { /* the attributes saec reads */
    case cudaDevAttrMultiProcessorCount: *value = p.multiProcessorCount; break;
    case cudaDevAttrComputeCapabilityMajor: *value = p.major; break;
    case cudaDevAttrComputeCapabilityMinor: *value = p.minor; break;
    case cudaDevAttrMaxSharedMemoryPerBlockOptin: *value = (int)p.sharedMemPerBlockOptin; break;
    case cudaDevAttrL2CacheSize: *value = p.l2CacheSize; break;
    default:
        return fail_msg(cudaErrorInvalidValue,
                        "cudaDeviceGetAttribute: attribute %d is not emulated (add it to "
                        "tests/simt/cuda_runtime_emu.cpp)",
                        (int)attr);
    }
    return cudaSuccess;
}

/* ---- memory ------------------------------------------------------------------------------ */

extern "C" cudaError_t CUDARTAPI cudaMalloc(void **devPtr, size_t size) {
    if (!devPtr) return fail_msg(cudaErrorInvalidValue, "cudaMalloc: NULL devPtr");
    cudaError_t e = check_device(t_device);
    if (e != cudaSuccess) return e;
    {
        std::lock_guard<std::mutex> lock(g_mem_mu); /* reserve first: the card holds 80 GiB */
        if (size > kTotalGlobalMem - g_device_bytes) return fail(cudaErrorMemoryAllocation);
        g_device_bytes += size;
    }
    /* size 0 still gets a unique block (of one byte, recorded as empty) */
    void *p = NULL;
    const bool ok = posix_memalign(&p, 256, size ? size : 1) == 0;
    std::lock_guard<std::mutex> lock(g_mem_mu);
    if (!ok) {
        g_device_bytes -= size;
        return fail(cudaErrorMemoryAllocation);
    }
    g_device_allocs[(uintptr_t)p] = size;
    *devPtr = p;
    return cudaSuccess;
}

extern "C" cudaError_t CUDARTAPI cudaFree(void *devPtr) {
    if (!devPtr) return cudaSuccess;
    {
        std::lock_guard<std::mutex> lock(g_mem_mu);
        auto it = g_device_allocs.find((uintptr_t)devPtr);
        if (it != g_device_allocs.end()) {
            g_device_bytes -= it->second;
            g_device_allocs.erase(it);
            free(devPtr);
            return cudaSuccess;
        }
    }
    return fail_msg(cudaErrorInvalidValue,
                    "cudaFree of a pointer that is not a device allocation: %p", devPtr);
}

extern "C" cudaError_t CUDARTAPI cudaHostAlloc(void **pHost, size_t size, unsigned int flags) {
    if (!pHost) return fail_msg(cudaErrorInvalidValue, "cudaHostAlloc: NULL pHost");
    if (flags &
        ~(unsigned)(cudaHostAllocPortable | cudaHostAllocMapped | cudaHostAllocWriteCombined))
        return fail_msg(cudaErrorInvalidValue, "cudaHostAlloc: flags 0x%x", flags);
    void *p = NULL;
    if (posix_memalign(&p, 4096, size ? size : 1) != 0) return fail(cudaErrorMemoryAllocation);
    std::lock_guard<std::mutex> lock(g_mem_mu);
    g_host_allocs[(uintptr_t)p] = size;
    *pHost = p;
    return cudaSuccess;
}

extern "C" cudaError_t CUDARTAPI cudaFreeHost(void *ptr) {
    if (!ptr) return cudaSuccess;
    {
        std::lock_guard<std::mutex> lock(g_mem_mu);
        if (g_host_allocs.erase((uintptr_t)ptr)) {
            free(ptr);
            return cudaSuccess;
        }
    }
    return fail_msg(cudaErrorInvalidValue,
                    "cudaFreeHost of a pointer that is not a pinned host allocation: %p", ptr);
}

extern "C" cudaError_t CUDARTAPI cudaMemcpy(void *dst, const void *src, size_t count,
                                            cudaMemcpyKind kind) {
    return checked_memcpy("cudaMemcpy", dst, src, count, kind, 0);
}

extern "C" cudaError_t CUDARTAPI cudaMemcpyAsync(void *dst, const void *src, size_t count,
                                                 cudaMemcpyKind kind, cudaStream_t stream) {
    return checked_memcpy("cudaMemcpyAsync", dst, src, count, kind, stream);
}

extern "C" cudaError_t CUDARTAPI cudaMemset(void *devPtr, int value, size_t count) {
    return checked_memset("cudaMemset", devPtr, value, count, 0);
}

extern "C" cudaError_t CUDARTAPI cudaMemsetAsync(void *devPtr, int value, size_t count,
                                                 cudaStream_t stream) {
    return checked_memset("cudaMemsetAsync", devPtr, value, count, stream);
}

/* ---- streams ----------------------------------------------------------------------------- */

extern "C" cudaError_t CUDARTAPI cudaStreamCreateWithFlags(cudaStream_t *pStream,
                                                           unsigned int flags) {
    if (!pStream) return fail_msg(cudaErrorInvalidValue, "cudaStreamCreateWithFlags: NULL pStream");
    if (flags & ~(unsigned)cudaStreamNonBlocking)
        return fail_msg(cudaErrorInvalidValue, "cudaStreamCreateWithFlags: flags 0x%x", flags);
    cudaError_t e = check_device(t_device);
    if (e != cudaSuccess) return e;
    std::lock_guard<std::mutex> lock(g_handle_mu);
    *pStream = (cudaStream_t)g_streams.add(NoState{});
    return cudaSuccess;
}

extern "C" cudaError_t CUDARTAPI cudaStreamDestroy(cudaStream_t stream) {
    if (!is_special_stream(stream)) {
        std::lock_guard<std::mutex> lock(g_handle_mu);
        if (g_streams.erase((uintptr_t)stream)) return cudaSuccess;
    }
    return fail_msg(cudaErrorInvalidResourceHandle,
                    "cudaStreamDestroy: stream %p is not a live created stream", (void *)stream);
}

extern "C" cudaError_t CUDARTAPI cudaStreamSynchronize(cudaStream_t stream) {
    return check_stream("cudaStreamSynchronize", stream);
}

/* ---- events ------------------------------------------------------------------------------ */

extern "C" cudaError_t CUDARTAPI cudaEventCreateWithFlags(cudaEvent_t *event, unsigned int flags) {
    if (!event) return fail_msg(cudaErrorInvalidValue, "cudaEventCreateWithFlags: NULL event");
    const unsigned known = cudaEventBlockingSync | cudaEventDisableTiming | cudaEventInterprocess;
    if ((flags & ~known) || ((flags & cudaEventInterprocess) && !(flags & cudaEventDisableTiming)))
        return fail_msg(cudaErrorInvalidValue, "cudaEventCreateWithFlags: flags 0x%x", flags);
    cudaError_t e = check_device(t_device);
    if (e != cudaSuccess) return e;
    std::lock_guard<std::mutex> lock(g_handle_mu);
    *event = (cudaEvent_t)g_events.add(NoState{});
    return cudaSuccess;
}

extern "C" cudaError_t CUDARTAPI cudaEventDestroy(cudaEvent_t event) {
    {
        std::lock_guard<std::mutex> lock(g_handle_mu);
        if (g_events.erase((uintptr_t)event)) return cudaSuccess;
    }
    return fail_msg(cudaErrorInvalidResourceHandle,
                    "cudaEventDestroy: event %p is not a live event", (void *)event);
}

extern "C" cudaError_t CUDARTAPI cudaEventRecord(cudaEvent_t event, cudaStream_t stream) {
    cudaError_t e = check_stream("cudaEventRecord", stream);
    if (e != cudaSuccess) return e;
    return check_event("cudaEventRecord", event); /* eager: complete at once */
}

extern "C" cudaError_t CUDARTAPI cudaEventQuery(cudaEvent_t event) {
    return check_event("cudaEventQuery", event);
}

extern "C" cudaError_t CUDARTAPI cudaEventSynchronize(cudaEvent_t event) {
    return check_event("cudaEventSynchronize", event);
}

extern "C" cudaError_t CUDARTAPI cudaStreamWaitEvent(cudaStream_t stream, cudaEvent_t event,
                                                     unsigned int flags) {
    cudaError_t e = check_stream("cudaStreamWaitEvent", stream);
    if (e != cudaSuccess) return e;
    if (flags & ~(unsigned)cudaEventWaitExternal)
        return fail_msg(cudaErrorInvalidValue, "cudaStreamWaitEvent: flags 0x%x", flags);
    return check_event("cudaStreamWaitEvent", event);
}
