/* The CUDA backend: device discovery, state (stream, cuBLAS/cuBLASLt handles, workspace, scratch,
 * pinned staging), memory ops and the op table. The compute ops live in the other cuda_*.cu
 * files, one per op family.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_internal.cuh"

#define SAEC_LT_WORKSPACE_BYTES ((size_t)32 << 20) /* cuBLASLt's recommendation for Hopper */

/* ---- backend services ---------------------------------------------------------------------- */

extern "C" cudaStream_t saec_cuda_stream(saec_dev *dev) { return saec_cuda_state_of(dev)->stream; }

extern "C" void saec_cuda_set_tf32(saec_dev *dev, int allow) {
    saec_cuda_state *st = saec_cuda_state_of(dev);
    st->allow_tf32 = allow ? 1 : 0;
    /* the legacy handle serves the fallback GEMM path */
    (void)cublasSetMathMode(st->cublas, allow ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH);
}

extern "C" int saec_cuda_scratch(saec_dev *dev, size_t bytes, void **out) {
    saec_cuda_state *st = saec_cuda_state_of(dev);
    if (bytes > st->scratch_bytes) {
        /* Work queued earlier may still use the old buffer: wait for it before freeing. This
           happens only the first few times an op sees a larger problem, never per step. */
        size_t want = bytes + bytes / 4;
        want = (want + ((size_t)2 << 20) - 1) & ~(((size_t)2 << 20) - 1);
        SAEC_CUDA_CHECK(cudaStreamSynchronize(st->stream));
        if (st->scratch) {
            SAEC_CUDA_CHECK(cudaFree(st->scratch));
            st->scratch = NULL;
            st->scratch_bytes = 0;
        }
        SAEC_CUDA_CHECK(cudaMalloc(&st->scratch, want));
        st->scratch_bytes = want;
    }
    *out = st->scratch;
    return SAEC_OK;
}

/* ---- memory ops ---------------------------------------------------------------------------- */

static int cuda_alloc(saec_dev *dev, size_t bytes, void **out) {
    saec_cuda_state *st = saec_cuda_state_of(dev);
    *out = NULL;
    size_t b = bytes ? bytes : 1;
    cudaError_t e = cudaMalloc(out, b);
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        *out = NULL;
        return saec_fail(SAEC_ERR_DEVICE, SAEC_CUDA_OOM_HINT,
                         "cudaMalloc of %zu bytes failed: %s (%s:%d)", bytes, cudaGetErrorString(e),
                         __FILE__, __LINE__);
    }
    SAEC_CUDA_CHECK(cudaMemsetAsync(*out, 0, b, st->stream));
    return SAEC_OK;
}

static void cuda_free(saec_dev *dev, void *p) {
    (void)dev;
    if (p) (void)cudaFree(p); /* implicitly waits for the work that may still use p */
}

/* Host → device through two pinned staging buffers: the host copy into one buffer overlaps the
   DMA out of the other, and the call returns without waiting for the last DMA, so a per-step
   batch upload does not stall the stream (a pageable cudaMemcpyAsync would). */
static int cuda_upload(saec_dev *dev, void *dst, const void *host_src, size_t bytes) {
    saec_cuda_state *st = saec_cuda_state_of(dev);
    size_t off = 0;
    while (off < bytes) {
        size_t c = bytes - off;
        if (c > SAEC_CUDA_STAGING_CHUNK) c = SAEC_CUDA_STAGING_CHUNK;
        int b = st->staging_next;
        st->staging_next ^= 1;
        /* the previous copy out of this buffer must have finished before it is overwritten */
        SAEC_CUDA_CHECK(cudaEventSynchronize(st->staging_free[b]));
        if (st->staging_bytes[b] < c) {
            size_t want = bytes >= SAEC_CUDA_STAGING_CHUNK ? SAEC_CUDA_STAGING_CHUNK
                                                           : ((c + 65535) & ~(size_t)65535);
            if (want < c) want = c;
            if (st->staging[b]) SAEC_CUDA_CHECK(cudaFreeHost(st->staging[b]));
            st->staging[b] = NULL;
            st->staging_bytes[b] = 0;
            SAEC_CUDA_CHECK(cudaHostAlloc(&st->staging[b], want, cudaHostAllocDefault));
            st->staging_bytes[b] = want;
        }
        memcpy(st->staging[b], (const char *)host_src + off, c);
        SAEC_CUDA_CHECK(cudaMemcpyAsync((char *)dst + off, st->staging[b], c,
                                        cudaMemcpyHostToDevice, st->stream));
        SAEC_CUDA_CHECK(cudaEventRecord(st->staging_free[b], st->stream));
        off += c;
    }
    return SAEC_OK;
}

/* Device → host: waits for all queued work (the download is the host's sync point). */
static int cuda_download(saec_dev *dev, void *host_dst, const void *src, size_t bytes) {
    saec_cuda_state *st = saec_cuda_state_of(dev);
    if (bytes == 0) return SAEC_OK;
    SAEC_CUDA_CHECK(cudaMemcpyAsync(host_dst, src, bytes, cudaMemcpyDeviceToHost, st->stream));
    SAEC_CUDA_CHECK(cudaStreamSynchronize(st->stream));
    return SAEC_OK;
}

static int cuda_copy(saec_dev *dev, void *dst, const void *src, size_t bytes) {
    saec_cuda_state *st = saec_cuda_state_of(dev);
    if (bytes == 0 || dst == src) return SAEC_OK;
    SAEC_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, st->stream));
    return SAEC_OK;
}

static int cuda_zero(saec_dev *dev, void *p, size_t bytes) {
    saec_cuda_state *st = saec_cuda_state_of(dev);
    if (bytes == 0) return SAEC_OK;
    SAEC_CUDA_CHECK(cudaMemsetAsync(p, 0, bytes, st->stream));
    return SAEC_OK;
}

static int cuda_sync(saec_dev *dev) {
    saec_cuda_state *st = saec_cuda_state_of(dev);
    SAEC_CUDA_CHECK(cudaStreamSynchronize(st->stream));
    return SAEC_OK;
}

/* ---- the op table -------------------------------------------------------------------------- */

static saec_op_table cuda_make_table(void) {
    saec_op_table t;
    memset(&t, 0, sizeof t);
    t.backend_name = "cuda";
    t.alloc = cuda_alloc;
    t.free = cuda_free;
    t.upload = cuda_upload;
    t.download = cuda_download;
    t.copy = cuda_copy;
    t.zero = cuda_zero;
    t.sync = cuda_sync;
    /* every op: saec_cuda_NAME, declared from the same list in cuda_internal.cuh */
#define SAEC_CUDA_FILL_(ret, name, params, floor_params, floor_bytes, floor_flops)                \
    t.name = saec_cuda_##name;
    SAEC_OP_LIST(SAEC_CUDA_FILL_)
#undef SAEC_CUDA_FILL_
    return t;
}

extern "C" const saec_op_table *saec_cuda_op_table(void) {
    static const saec_op_table table = cuda_make_table(); /* thread-safe static init (C++11) */
    return &table;
}

/* ---- device discovery, open and close ------------------------------------------------------ */

extern "C" int saec_cuda_device_count(void) {
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
        (void)cudaGetLastError(); /* no driver / no device: not an error here, just none */
        return 0;
    }
    return n;
}

static void cuda_state_destroy(saec_cuda_state *st) {
    if (!st) return;
    if (st->stream) (void)cudaStreamSynchronize(st->stream);
    for (int b = 0; b < 2; b++) {
        if (st->staging_free[b]) (void)cudaEventDestroy(st->staging_free[b]);
        if (st->staging[b]) (void)cudaFreeHost(st->staging[b]);
    }
    if (st->lt) (void)cublasLtDestroy(st->lt);
    if (st->cublas) (void)cublasDestroy(st->cublas); /* before the workspace it was given */
    if (st->scratch) (void)cudaFree(st->scratch);
    if (st->lt_workspace) (void)cudaFree(st->lt_workspace);
    if (st->stream) (void)cudaStreamDestroy(st->stream);
    (void)cudaGetLastError();
    free(st);
}

/* Everything that can fail while opening, on a fresh state; the caller destroys it on failure. */
static int cuda_state_init(saec_cuda_state *st, int index) {
    st->device = index;
    SAEC_CUDA_CHECK(cudaSetDevice(index));
    int v = 0;
    SAEC_CUDA_CHECK(cudaDeviceGetAttribute(&v, cudaDevAttrMultiProcessorCount, index));
    st->sm_count = v > 0 ? v : 1;
    SAEC_CUDA_CHECK(cudaDeviceGetAttribute(&st->cc_major, cudaDevAttrComputeCapabilityMajor, index));
    SAEC_CUDA_CHECK(cudaDeviceGetAttribute(&st->cc_minor, cudaDevAttrComputeCapabilityMinor, index));
    SAEC_CUDA_CHECK(cudaDeviceGetAttribute(&v, cudaDevAttrMaxSharedMemoryPerBlockOptin, index));
    st->smem_optin = (size_t)(v > 0 ? v : 48 * 1024);
    SAEC_CUDA_CHECK(cudaDeviceGetAttribute(&v, cudaDevAttrL2CacheSize, index));
    st->l2_bytes = (size_t)(v > 0 ? v : 0);
    SAEC_CUDA_CHECK(cudaStreamCreateWithFlags(&st->stream, cudaStreamNonBlocking));
    SAEC_CUBLAS_CHECK(cublasCreate(&st->cublas));
    SAEC_CUBLAS_CHECK(cublasSetStream(st->cublas, st->stream));
    SAEC_CUBLAS_CHECK(cublasLtCreate(&st->lt));
    SAEC_CUDA_CHECK(cudaMalloc(&st->lt_workspace, SAEC_LT_WORKSPACE_BYTES));
    st->lt_workspace_bytes = SAEC_LT_WORKSPACE_BYTES;
    /* The legacy handle gets the same workspace, so it never allocates behind our back. */
    SAEC_CUBLAS_CHECK(cublasSetWorkspace(st->cublas, st->lt_workspace, st->lt_workspace_bytes));
    for (int b = 0; b < 2; b++)
        SAEC_CUDA_CHECK(cudaEventCreateWithFlags(&st->staging_free[b], cudaEventDisableTiming));
    return SAEC_OK;
}

extern "C" int saec_cuda_dev_init(saec_dev *dev, int index) {
    int count = saec_cuda_device_count();
    if (count == 0)
        return saec_fail(SAEC_ERR_DEVICE,
                         "check the driver and the GPU with nvidia-smi, or use --device cpu",
                         "no CUDA device");
    if (index < 0 || index >= count) {
        char hint[96];
        snprintf(hint, sizeof hint, "use --device cuda:0 .. cuda:%d, or --device auto", count - 1);
        return saec_fail(SAEC_ERR_DEVICE, hint, "device index %d out of range (%d devices)", index,
                         count);
    }
    saec_cuda_state *st = (saec_cuda_state *)calloc(1, sizeof *st);
    if (!st) return saec_fail(SAEC_ERR_OTHER, NULL, "out of memory opening CUDA device %d", index);
    int rc = cuda_state_init(st, index);
    if (rc != SAEC_OK) {
        cuda_state_destroy(st);
        return rc;
    }
    const char *tf32 = getenv("SAEC_CUDA_TF32");
    st->allow_tf32 = 0;
    dev->impl = st;
    dev->index = index;
    dev->backend = SAEC_BACKEND_CUDA;
    dev->ops = saec_cuda_op_table();
    if (tf32 && tf32[0] == '1') saec_cuda_set_tf32(dev, 1);

#ifdef SAEC_CUDA_EMULATED
    /* The emulated GPU (tests/simt) must never pass for a GPU in a log or a result file. */
    snprintf(dev->name, sizeof dev->name, "cuda (emulated on CPU)");
#else
    cudaDeviceProp prop;
    memset(&prop, 0, sizeof prop);
    if (cudaGetDeviceProperties(&prop, index) == cudaSuccess) {
        snprintf(dev->name, sizeof dev->name, "%.100s (sm_%d%d, %.1f GiB%s)", prop.name,
                 st->cc_major, st->cc_minor, (double)prop.totalGlobalMem / (1024.0 * 1024.0 * 1024.0),
                 st->allow_tf32 ? ", TF32" : "");
    } else {
        (void)cudaGetLastError();
        snprintf(dev->name, sizeof dev->name, "CUDA device %d (sm_%d%d)", index, st->cc_major,
                 st->cc_minor);
    }
#endif
    return SAEC_OK;
}

extern "C" void saec_cuda_dev_shutdown(saec_dev *dev) {
    if (!dev || !dev->impl) return;
    saec_cuda_state *st = saec_cuda_state_of(dev);
    (void)cudaSetDevice(st->device);
    cuda_state_destroy(st);
    dev->impl = NULL;
}
