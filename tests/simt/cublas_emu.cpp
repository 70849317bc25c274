/* Emulated-GPU test tier: the cuBLAS (legacy v2) and cuBLASLt calls saec makes, computed on the
 * host with OpenBLAS. Test infrastructure only, never a performance path.
 *
 * Same semantics as the real libraries: column-major, op(A)/op(B) transposes, leading
 * dimensions, host-pointer alpha/beta, beta == 0 never reads C, the Lt BIAS epilogue (a vector of
 * length rows(D) added to every column). What saec does not use is refused with
 * CUBLAS_STATUS_NOT_SUPPORTED and a line on stderr rather than ignored, and every operand must lie
 * in a live device allocation. CUBLAS_COMPUTE_32F_FAST_TF32 and CUBLAS_TF32_TENSOR_OP_MATH are
 * accepted but computed in full FP32: TF32 only permits less precision, never requires it.
 *
 * An algorithm from cublasLtMatmulAlgoGetHeuristic remembers what it was chosen for (transposes,
 * epilogue, compute type, operand alignments, workspace), and cublasLtMatmul refuses it for
 * anything else, as a real algorithm would misbehave. SAEC_SIMT_LT_NOALGO=1 makes the heuristic
 * find nothing (CUBLAS_STATUS_NOT_SUPPORTED, 0 results, what cuBLASLt usually answers).
 */
#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cblas.h>

#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <mutex>

#include "simt_runtime.h"

namespace {

__attribute__((format(printf, 2, 3))) cublasStatus_t refuse(cublasStatus_t s, const char *fmt,
                                                            ...) {
    va_list ap;
    va_start(ap, fmt);
    saec_simt_vwarn(fmt, ap);
    va_end(ap);
    return s;
}

struct BlasCtx {
    cudaStream_t stream;
    void *workspace; /* NULL: the library's own pool */
    size_t workspace_bytes;
};
struct LtCtx {};
struct MatmulDesc {
    cublasComputeType_t compute;
    cublasOperation_t trans_a, trans_b;
    uint32_t epilogue;
    const void *bias;
};
struct Layout {
    uint64_t rows, cols;
    int64_t ld;
};
struct Pref {
    uint64_t max_workspace;
    uint32_t align[4]; /* A, B, C, D */
};

std::mutex g_mu;
SaecSimtHandles<BlasCtx> g_blas(0x5aec300000000000u);
SaecSimtHandles<LtCtx> g_lt(0x5aec400000000000u);
SaecSimtHandles<MatmulDesc> g_descs(0x5aec500000000000u);
SaecSimtHandles<Layout> g_layouts(0x5aec600000000000u);
SaecSimtHandles<Pref> g_prefs(0x5aec700000000000u);

template <class T, class H> T *lookup(SaecSimtHandles<T> &table, H h) {
    return table.find((uintptr_t)h);
}

constexpr uint64_t kAlgoMagic = 0x5aec51a7a160a160u;
constexpr uint64_t kAlgoWorkspace = (uint64_t)1 << 20; /* what an algorithm asks for, at most */

/* The largest power of two (up to 256) dividing the address: the alignment a kernel may assume. */
uint32_t ptr_align(const void *p) {
    uint32_t al = 256;
    while (al > 1 && ((uintptr_t)p & (al - 1)))
        al >>= 1;
    return al;
}

/* Elements spanned by a column-major rows x cols matrix with leading dimension ld. */
size_t extent(int64_t rows, int64_t cols, int64_t ld) {
    return rows == 0 || cols == 0 ? 0 : (size_t)((cols - 1) * ld + rows);
}

struct Operand {
    const char *name;
    const void *p;
    size_t bytes;
    bool in_place; /* an input that may be the output itself (C == D) */
};

/* Every operand in device memory; the outputs overlapping no input and each other, except an
   in-place input that is exactly the output. */
cublasStatus_t check_operands(const char *call, const Operand *in, int n_in, const Operand *out,
                              int n_out) {
    for (int i = 0; i < n_in + n_out; i++) {
        const Operand &o = i < n_in ? in[i] : out[i - n_in];
        if (o.bytes && !saec_simt_is_device_range(o.p, o.bytes))
            return refuse(CUBLAS_STATUS_INVALID_VALUE,
                          "%s: %s %p (+%zu bytes) is not inside one device allocation", call,
                          o.name, o.p, o.bytes);
    }
    for (int j = 0; j < n_out; j++)
        for (int i = 0; i < n_in + j; i++) {
            const Operand &a = out[j], &b = i < n_in ? in[i] : out[i - n_in];
            const uintptr_t pa = (uintptr_t)a.p, pb = (uintptr_t)b.p;
            if (a.bytes && b.bytes && pa < pb + b.bytes && pb < pa + a.bytes &&
                !(b.in_place && a.p == b.p))
                return refuse(CUBLAS_STATUS_INVALID_VALUE, "%s: %s %p and %s %p overlap", call,
                              a.name, a.p, b.name, b.p);
        }
    return CUBLAS_STATUS_SUCCESS;
}

CBLAS_TRANSPOSE cblas_op(cublasOperation_t op) {
    return op == CUBLAS_OP_N ? CblasNoTrans : CblasTrans;
}

/* D[m, n] = alpha op(A) op(B) + beta C (+ bias[m] on every column), column-major; C may be D
   (then ldc == ldd). beta == 0 does not read C; k == 0 or alpha == 0 does not read A or B. */
void gemm(cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, float alpha,
          const float *A, int lda, const float *B, int ldb, float beta, const float *C, int ldc,
          float *D, int ldd, const float *bias) {
    for (int64_t j = 0; j < n; j++)
        for (int64_t i = 0; i < m; i++)
            D[i + j * ldd] = beta == 0.0f ? 0.0f : beta * C[i + j * ldc];
    if (k > 0 && alpha != 0.0f)
        cblas_sgemm(CblasColMajor, cblas_op(ta), cblas_op(tb), m, n, k, alpha, A, lda, B, ldb, 1.0f,
                    D, ldd);
    if (bias)
        for (int64_t j = 0; j < n; j++)
            for (int64_t i = 0; i < m; i++)
                D[i + j * ldd] += bias[i];
}

bool valid_op(cublasOperation_t op) { return op == CUBLAS_OP_N || op == CUBLAS_OP_T; }

/* ---- cuBLASLt: one matmul problem as the descriptors state it ------------------------------- */

struct Problem {
    MatmulDesc op;
    Layout a, b, c, d;
    int m, n, k;
};

cublasStatus_t describe(const char *call, cublasLtHandle_t handle, cublasLtMatmulDesc_t desc,
                        cublasLtMatrixLayout_t la, cublasLtMatrixLayout_t lb,
                        cublasLtMatrixLayout_t lc, cublasLtMatrixLayout_t ld, Problem *p) {
    {
        std::lock_guard<std::mutex> lock(g_mu);
        if (!lookup(g_lt, handle))
            return refuse(CUBLAS_STATUS_NOT_INITIALIZED, "%s: handle %p is not live", call,
                          (void *)handle);
        const MatmulDesc *op = lookup(g_descs, desc);
        const Layout *a = lookup(g_layouts, la), *b = lookup(g_layouts, lb),
                     *c = lookup(g_layouts, lc), *d = lookup(g_layouts, ld);
        if (!op || !a || !b || !c || !d)
            return refuse(CUBLAS_STATUS_INVALID_VALUE,
                          "%s: a descriptor or layout is not live (destroyed or never created)",
                          call);
        p->op = *op;
        p->a = *a;
        p->b = *b;
        p->c = *c;
        p->d = *d;
    }
    const bool ta = p->op.trans_a != CUBLAS_OP_N, tb = p->op.trans_b != CUBLAS_OP_N;
    const uint64_t m = ta ? p->a.cols : p->a.rows, k = ta ? p->a.rows : p->a.cols;
    const uint64_t kb = tb ? p->b.cols : p->b.rows, n = tb ? p->b.rows : p->b.cols;
    if (kb != k || p->c.rows != m || p->c.cols != n || p->d.rows != m || p->d.cols != n)
        return refuse(CUBLAS_STATUS_INVALID_VALUE,
                      "%s: shapes disagree: op(A) %llux%llu, op(B) %llux%llu, C %llux%llu, D "
                      "%llux%llu",
                      call, (unsigned long long)m, (unsigned long long)k, (unsigned long long)kb,
                      (unsigned long long)n, (unsigned long long)p->c.rows,
                      (unsigned long long)p->c.cols, (unsigned long long)p->d.rows,
                      (unsigned long long)p->d.cols);
    const Layout *ls[4] = {&p->a, &p->b, &p->c, &p->d};
    for (int i = 0; i < 4; i++) {
        const Layout &l = *ls[i];
        if (l.ld < 1 || (uint64_t)l.ld < l.rows)
            return refuse(CUBLAS_STATUS_INVALID_VALUE, "%s: matrix %c: ld %lld < rows %llu", call,
                          "ABCD"[i], (long long)l.ld, (unsigned long long)l.rows);
        if (l.rows > INT_MAX || l.cols > INT_MAX || l.ld > INT_MAX)
            return refuse(CUBLAS_STATUS_NOT_SUPPORTED,
                          "%s: matrix %c is too large for the emulation (32-bit BLAS)", call,
                          "ABCD"[i]);
    }
    p->m = (int)m;
    p->n = (int)n;
    p->k = (int)k;
    return CUBLAS_STATUS_SUCCESS;
}

/* What a heuristic answer records, in cublasLtMatmulAlgo_t::data. */
enum AlgoField { kMagic, kTransA, kTransB, kEpilogue, kCompute, kAligns, kBiasAlign, kWorkspace };

uint64_t pack_aligns(const uint32_t al[4]) {
    return (uint64_t)al[0] | (uint64_t)al[1] << 16 | (uint64_t)al[2] << 32 | (uint64_t)al[3] << 48;
}
uint32_t unpack_align(uint64_t packed, int i) { return (uint32_t)(packed >> (16 * i)) & 0xffffu; }

} // namespace

/* ---- status strings ---------------------------------------------------------------------- */

/* The statuses the stand-ins return, in cuBLAS's words. */
extern "C" const char *CUBLASWINAPI cublasGetStatusString(cublasStatus_t status) {
    switch (status) {
    case CUBLAS_STATUS_SUCCESS: return "the operation completed successfully";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "the library was not initialized";
    case CUBLAS_STATUS_INVALID_VALUE: return "an invalid numeric value was used as an argument";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "the GPU program failed to execute";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "the requested functionality is not supported";
    default: return "unknown error";
    }
}

/* ---- legacy cuBLAS ------------------------------------------------------------------------ */

extern "C" cublasStatus_t CUBLASWINAPI cublasCreate_v2(cublasHandle_t *handle) {
    if (!handle) return refuse(CUBLAS_STATUS_INVALID_VALUE, "cublasCreate: NULL handle");
    std::lock_guard<std::mutex> lock(g_mu);
    *handle = (cublasHandle_t)g_blas.add(BlasCtx{0, NULL, 0});
    return CUBLAS_STATUS_SUCCESS;
}

extern "C" cublasStatus_t CUBLASWINAPI cublasDestroy_v2(cublasHandle_t handle) {
    std::lock_guard<std::mutex> lock(g_mu);
    if (!g_blas.erase((uintptr_t)handle))
        return refuse(CUBLAS_STATUS_NOT_INITIALIZED, "cublasDestroy: handle %p is not live",
                      (void *)handle);
    return CUBLAS_STATUS_SUCCESS;
}

extern "C" cublasStatus_t CUBLASWINAPI cublasSetStream_v2(cublasHandle_t handle,
                                                          cudaStream_t streamId) {
    std::lock_guard<std::mutex> lock(g_mu);
    BlasCtx *h = lookup(g_blas, handle);
    if (!h)
        return refuse(CUBLAS_STATUS_NOT_INITIALIZED, "cublasSetStream: handle %p is not live",
                      (void *)handle);
    h->stream = streamId;
    h->workspace = NULL; /* as documented: a new stream resets the workspace to the default */
    h->workspace_bytes = 0;
    return CUBLAS_STATUS_SUCCESS;
}

extern "C" cublasStatus_t CUBLASWINAPI cublasSetWorkspace_v2(cublasHandle_t handle, void *workspace,
                                                             size_t workspaceSizeInBytes) {
    std::lock_guard<std::mutex> lock(g_mu);
    BlasCtx *h = lookup(g_blas, handle);
    if (!h)
        return refuse(CUBLAS_STATUS_NOT_INITIALIZED, "cublasSetWorkspace: handle %p is not live",
                      (void *)handle);
    if (workspace && ((uintptr_t)workspace & 255))
        return refuse(CUBLAS_STATUS_INVALID_VALUE,
                      "cublasSetWorkspace: workspace %p is not 256-byte aligned", workspace);
    if (workspace && !saec_simt_is_device_range(workspace, workspaceSizeInBytes))
        return refuse(CUBLAS_STATUS_INVALID_VALUE,
                      "cublasSetWorkspace: workspace %p (+%zu bytes) is not inside one device "
                      "allocation",
                      workspace, workspaceSizeInBytes);
    h->workspace = workspace;
    h->workspace_bytes = workspace ? workspaceSizeInBytes : 0;
    return CUBLAS_STATUS_SUCCESS;
}

extern "C" cublasStatus_t CUBLASWINAPI cublasSetMathMode(cublasHandle_t handle, cublasMath_t mode) {
    std::lock_guard<std::mutex> lock(g_mu);
    if (!lookup(g_blas, handle))
        return refuse(CUBLAS_STATUS_NOT_INITIALIZED, "cublasSetMathMode: handle %p is not live",
                      (void *)handle);
    if (mode != CUBLAS_DEFAULT_MATH && mode != CUBLAS_TF32_TENSOR_OP_MATH)
        return refuse(CUBLAS_STATUS_NOT_SUPPORTED, "cublasSetMathMode: mode %d is not emulated",
                      (int)mode);
    return CUBLAS_STATUS_SUCCESS; /* TF32 is computed in FP32 (see the top of this file) */
}

extern "C" cublasStatus_t CUBLASWINAPI cublasSgemm_v2(cublasHandle_t handle,
                                                      cublasOperation_t transa,
                                                      cublasOperation_t transb, int m, int n, int k,
                                                      const float *alpha, const float *A, int lda,
                                                      const float *B, int ldb, const float *beta,
                                                      float *C, int ldc) {
    BlasCtx h;
    {
        std::lock_guard<std::mutex> lock(g_mu);
        const BlasCtx *p = lookup(g_blas, handle);
        if (!p)
            return refuse(CUBLAS_STATUS_NOT_INITIALIZED, "cublasSgemm: handle %p is not live",
                          (void *)handle);
        h = *p;
    }
    if (!valid_op(transa) || !valid_op(transb))
        return refuse(CUBLAS_STATUS_NOT_SUPPORTED, "cublasSgemm: transa %d / transb %d",
                      (int)transa, (int)transb);
    const int a_rows = transa == CUBLAS_OP_N ? m : k, b_rows = transb == CUBLAS_OP_N ? k : n;
    if (m < 0 || n < 0 || k < 0 || lda < (a_rows > 1 ? a_rows : 1) ||
        ldb < (b_rows > 1 ? b_rows : 1) || ldc < (m > 1 ? m : 1) || !alpha || !beta)
        return refuse(CUBLAS_STATUS_INVALID_VALUE,
                      "cublasSgemm: m %d n %d k %d lda %d ldb %d ldc %d alpha %p beta %p", m, n, k,
                      lda, ldb, ldc, (const void *)alpha, (const void *)beta);
    if (m == 0 || n == 0) return CUBLAS_STATUS_SUCCESS;
    if (!saec_simt_is_stream(h.stream))
        return refuse(CUBLAS_STATUS_EXECUTION_FAILED, "cublasSgemm: stream %p is not live",
                      (void *)h.stream);
    if (h.workspace && !saec_simt_is_device_range(h.workspace, h.workspace_bytes))
        return refuse(CUBLAS_STATUS_EXECUTION_FAILED,
                      "cublasSgemm: the workspace %p given to cublasSetWorkspace was freed",
                      h.workspace);
    const bool reads_ab = k > 0 && *alpha != 0.0f;
    const int64_t a_cols = transa == CUBLAS_OP_N ? k : m, b_cols = transb == CUBLAS_OP_N ? n : k;
    const Operand in[3] = {{"A", A, reads_ab ? extent(a_rows, a_cols, lda) * 4 : 0, false},
                           {"B", B, reads_ab ? extent(b_rows, b_cols, ldb) * 4 : 0, false},
                           {"C", C, *beta != 0.0f ? extent(m, n, ldc) * 4 : 0, true}};
    const Operand out[1] = {{"C", C, extent(m, n, ldc) * 4, false}};
    cublasStatus_t s = check_operands("cublasSgemm", in, 3, out, 1);
    if (s != CUBLAS_STATUS_SUCCESS) return s;
    gemm(transa, transb, m, n, k, *alpha, A, lda, B, ldb, *beta, C, ldc, C, ldc, NULL);
    return CUBLAS_STATUS_SUCCESS;
}

/* ---- cuBLASLt: handles and descriptors ---------------------------------------------------- */

extern "C" cublasStatus_t CUBLASWINAPI cublasLtCreate(cublasLtHandle_t *lightHandle) {
    if (!lightHandle) return refuse(CUBLAS_STATUS_INVALID_VALUE, "cublasLtCreate: NULL handle");
    std::lock_guard<std::mutex> lock(g_mu);
    *lightHandle = (cublasLtHandle_t)g_lt.add(LtCtx{});
    return CUBLAS_STATUS_SUCCESS;
}

extern "C" cublasStatus_t CUBLASWINAPI cublasLtDestroy(cublasLtHandle_t lightHandle) {
    std::lock_guard<std::mutex> lock(g_mu);
    if (!g_lt.erase((uintptr_t)lightHandle))
        return refuse(CUBLAS_STATUS_NOT_INITIALIZED, "cublasLtDestroy: handle %p is not live",
                      (void *)lightHandle);
    return CUBLAS_STATUS_SUCCESS;
}

extern "C" cublasStatus_t CUBLASWINAPI cublasLtMatmulDescCreate(cublasLtMatmulDesc_t *matmulDesc,
                                                                cublasComputeType_t computeType,
                                                                cudaDataType_t scaleType) {
    if (!matmulDesc) return refuse(CUBLAS_STATUS_INVALID_VALUE, "cublasLtMatmulDescCreate: NULL");
    if (computeType != CUBLAS_COMPUTE_32F && computeType != CUBLAS_COMPUTE_32F_FAST_TF32)
        return refuse(CUBLAS_STATUS_NOT_SUPPORTED,
                      "cublasLtMatmulDescCreate: compute type %d is not emulated",
                      (int)computeType);
    if (scaleType != CUDA_R_32F)
        return refuse(CUBLAS_STATUS_NOT_SUPPORTED,
                      "cublasLtMatmulDescCreate: scale type %d is not emulated", (int)scaleType);
    std::lock_guard<std::mutex> lock(g_mu);
    *matmulDesc = (cublasLtMatmulDesc_t)g_descs.add(
        MatmulDesc{computeType, CUBLAS_OP_N, CUBLAS_OP_N, CUBLASLT_EPILOGUE_DEFAULT, NULL});
    return CUBLAS_STATUS_SUCCESS;
}

extern "C" cublasStatus_t CUBLASWINAPI cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t matmulDesc) {
    std::lock_guard<std::mutex> lock(g_mu);
    if (matmulDesc && !g_descs.erase((uintptr_t)matmulDesc))
        return refuse(CUBLAS_STATUS_INVALID_VALUE,
                      "cublasLtMatmulDescDestroy: descriptor %p is not live", (void *)matmulDesc);
    return CUBLAS_STATUS_SUCCESS;
}

extern "C" cublasStatus_t CUBLASWINAPI
cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t matmulDesc, cublasLtMatmulDescAttributes_t attr,
                               const void *buf, size_t sizeInBytes) {
    const char *call = "cublasLtMatmulDescSetAttribute";
    size_t want = 0;
    switch (attr) {
    case CUBLASLT_MATMUL_DESC_TRANSA:
    case CUBLASLT_MATMUL_DESC_TRANSB:
    case CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE: want = sizeof(int32_t); break;
    case CUBLASLT_MATMUL_DESC_EPILOGUE: want = sizeof(uint32_t); break;
    case CUBLASLT_MATMUL_DESC_BIAS_POINTER: want = sizeof(void *); break;
    default:
        return refuse(CUBLAS_STATUS_NOT_SUPPORTED, "%s: attribute %d is not emulated", call,
                      (int)attr);
    }
    if (!buf || sizeInBytes != want)
        return refuse(CUBLAS_STATUS_INVALID_VALUE, "%s: attribute %d: buf %p, %zu bytes (want %zu)",
                      call, (int)attr, buf, sizeInBytes, want);
    int32_t i32 = 0;
    uint32_t u32 = 0;
    const void *ptr = NULL;
    if (attr == CUBLASLT_MATMUL_DESC_EPILOGUE)
        memcpy(&u32, buf, sizeof u32);
    else if (attr == CUBLASLT_MATMUL_DESC_BIAS_POINTER)
        memcpy(&ptr, buf, sizeof ptr);
    else
        memcpy(&i32, buf, sizeof i32);
    if ((attr == CUBLASLT_MATMUL_DESC_TRANSA || attr == CUBLASLT_MATMUL_DESC_TRANSB) &&
        !valid_op((cublasOperation_t)i32))
        return refuse(CUBLAS_STATUS_NOT_SUPPORTED, "%s: operation %d is not emulated", call, i32);
    if (attr == CUBLASLT_MATMUL_DESC_EPILOGUE && u32 != CUBLASLT_EPILOGUE_DEFAULT &&
        u32 != CUBLASLT_EPILOGUE_BIAS)
        return refuse(CUBLAS_STATUS_NOT_SUPPORTED, "%s: epilogue %u is not emulated", call, u32);
    /* bias type -1 (the default) means "the type of D", FP32 here */
    if (attr == CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE && i32 != CUDA_R_32F && i32 != -1)
        return refuse(CUBLAS_STATUS_NOT_SUPPORTED, "%s: bias type %d is not emulated", call, i32);
    std::lock_guard<std::mutex> lock(g_mu);
    MatmulDesc *d = lookup(g_descs, matmulDesc);
    if (!d)
        return refuse(CUBLAS_STATUS_INVALID_VALUE, "%s: descriptor %p is not live", call,
                      (void *)matmulDesc);
    switch (attr) {
    case CUBLASLT_MATMUL_DESC_TRANSA: d->trans_a = (cublasOperation_t)i32; break;
    case CUBLASLT_MATMUL_DESC_TRANSB: d->trans_b = (cublasOperation_t)i32; break;
    case CUBLASLT_MATMUL_DESC_EPILOGUE: d->epilogue = u32; break;
    case CUBLASLT_MATMUL_DESC_BIAS_POINTER: d->bias = ptr; break;
    default: break; /* the bias type: validated above, always FP32 */
    }
    return CUBLAS_STATUS_SUCCESS;
}

extern "C" cublasStatus_t CUBLASWINAPI cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t *matLayout,
                                                                  cudaDataType type, uint64_t rows,
                                                                  uint64_t cols, int64_t ld) {
    if (!matLayout) return refuse(CUBLAS_STATUS_INVALID_VALUE, "cublasLtMatrixLayoutCreate: NULL");
    if (type != CUDA_R_32F)
        return refuse(CUBLAS_STATUS_NOT_SUPPORTED,
                      "cublasLtMatrixLayoutCreate: data type %d is not emulated", (int)type);
    std::lock_guard<std::mutex> lock(g_mu);
    *matLayout = (cublasLtMatrixLayout_t)g_layouts.add(Layout{rows, cols, ld});
    return CUBLAS_STATUS_SUCCESS;
}

extern "C" cublasStatus_t CUBLASWINAPI
cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t matLayout) {
    std::lock_guard<std::mutex> lock(g_mu);
    if (matLayout && !g_layouts.erase((uintptr_t)matLayout))
        return refuse(CUBLAS_STATUS_INVALID_VALUE,
                      "cublasLtMatrixLayoutDestroy: layout %p is not live", (void *)matLayout);
    return CUBLAS_STATUS_SUCCESS;
}

extern "C" cublasStatus_t CUBLASWINAPI
cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t *pref) {
    if (!pref) return refuse(CUBLAS_STATUS_INVALID_VALUE, "cublasLtMatmulPreferenceCreate: NULL");
    std::lock_guard<std::mutex> lock(g_mu);
    /* the documented defaults: no workspace, 256-byte aligned operands */
    *pref = (cublasLtMatmulPreference_t)g_prefs.add(Pref{0, {256, 256, 256, 256}});
    return CUBLAS_STATUS_SUCCESS;
}

extern "C" cublasStatus_t CUBLASWINAPI
cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t pref) {
    std::lock_guard<std::mutex> lock(g_mu);
    if (pref && !g_prefs.erase((uintptr_t)pref))
        return refuse(CUBLAS_STATUS_INVALID_VALUE,
                      "cublasLtMatmulPreferenceDestroy: preference %p is not live", (void *)pref);
    return CUBLAS_STATUS_SUCCESS;
}

extern "C" cublasStatus_t CUBLASWINAPI cublasLtMatmulPreferenceSetAttribute(
    cublasLtMatmulPreference_t pref, cublasLtMatmulPreferenceAttributes_t attr, const void *buf,
    size_t sizeInBytes) {
    const char *call = "cublasLtMatmulPreferenceSetAttribute";
    int slot = -1; /* alignment slot, or -1 for the workspace */
    switch (attr) {
    case CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES: break;
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES: slot = 0; break;
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES: slot = 1; break;
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES: slot = 2; break;
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES: slot = 3; break;
    default:
        return refuse(CUBLAS_STATUS_NOT_SUPPORTED, "%s: attribute %d is not emulated", call,
                      (int)attr);
    }
    const size_t want = slot < 0 ? sizeof(uint64_t) : sizeof(uint32_t);
    if (!buf || sizeInBytes != want)
        return refuse(CUBLAS_STATUS_INVALID_VALUE, "%s: attribute %d: buf %p, %zu bytes (want %zu)",
                      call, (int)attr, buf, sizeInBytes, want);
    std::lock_guard<std::mutex> lock(g_mu);
    Pref *p = lookup(g_prefs, pref);
    if (!p)
        return refuse(CUBLAS_STATUS_INVALID_VALUE, "%s: preference %p is not live", call,
                      (void *)pref);
    if (slot < 0)
        memcpy(&p->max_workspace, buf, sizeof p->max_workspace);
    else
        memcpy(&p->align[slot], buf, sizeof p->align[slot]);
    return CUBLAS_STATUS_SUCCESS;
}

/* ---- cuBLASLt: heuristic and matmul --------------------------------------------------------- */

extern "C" cublasStatus_t CUBLASWINAPI cublasLtMatmulAlgoGetHeuristic(
    cublasLtHandle_t lightHandle, cublasLtMatmulDesc_t operationDesc, cublasLtMatrixLayout_t Adesc,
    cublasLtMatrixLayout_t Bdesc, cublasLtMatrixLayout_t Cdesc, cublasLtMatrixLayout_t Ddesc,
    cublasLtMatmulPreference_t preference, int requestedAlgoCount,
    cublasLtMatmulHeuristicResult_t heuristicResultsArray[], int *returnAlgoCount) {
    const char *call = "cublasLtMatmulAlgoGetHeuristic";
    if (requestedAlgoCount <= 0 || !heuristicResultsArray || !returnAlgoCount)
        return refuse(CUBLAS_STATUS_INVALID_VALUE,
                      "%s: requestedAlgoCount %d, results %p, count %p", call, requestedAlgoCount,
                      (void *)heuristicResultsArray, (void *)returnAlgoCount);
    *returnAlgoCount = 0;
    Problem p;
    cublasStatus_t s = describe(call, lightHandle, operationDesc, Adesc, Bdesc, Cdesc, Ddesc, &p);
    if (s != CUBLAS_STATUS_SUCCESS) return s;
    Pref pref;
    {
        std::lock_guard<std::mutex> lock(g_mu);
        const Pref *pp = lookup(g_prefs, preference);
        if (!pp)
            return refuse(CUBLAS_STATUS_INVALID_VALUE, "%s: preference %p is not live", call,
                          (void *)preference);
        pref = *pp;
    }
    const char *noalgo = getenv("SAEC_SIMT_LT_NOALGO");
    if (noalgo && strcmp(noalgo, "1") == 0) return CUBLAS_STATUS_NOT_SUPPORTED;
    for (int i = 0; i < 4; i++) /* no FP32 kernel works on operands below 4-byte alignment */
        if (pref.align[i] < 4) return CUBLAS_STATUS_NOT_SUPPORTED;

    cublasLtMatmulHeuristicResult_t &r = heuristicResultsArray[0];
    memset(&r, 0, sizeof r);
    r.algo.data[kMagic] = kAlgoMagic;
    r.algo.data[kTransA] = (uint64_t)p.op.trans_a;
    r.algo.data[kTransB] = (uint64_t)p.op.trans_b;
    r.algo.data[kEpilogue] = p.op.epilogue;
    r.algo.data[kCompute] = (uint64_t)p.op.compute;
    r.algo.data[kAligns] = pack_aligns(pref.align);
    /* as documented, the heuristic reads the bias pointer's value for its alignment */
    r.algo.data[kBiasAlign] = p.op.epilogue == CUBLASLT_EPILOGUE_BIAS ? ptr_align(p.op.bias) : 0;
    r.algo.data[kWorkspace] =
        pref.max_workspace < kAlgoWorkspace ? pref.max_workspace : kAlgoWorkspace;
    r.workspaceSize = (size_t)r.algo.data[kWorkspace];
    r.state = CUBLAS_STATUS_SUCCESS;
    r.wavesCount = 1.0f;
    *returnAlgoCount = 1;
    return CUBLAS_STATUS_SUCCESS;
}

extern "C" cublasStatus_t CUBLASWINAPI cublasLtMatmul(
    cublasLtHandle_t lightHandle, cublasLtMatmulDesc_t computeDesc, const void *alpha,
    const void *A, cublasLtMatrixLayout_t Adesc, const void *B, cublasLtMatrixLayout_t Bdesc,
    const void *beta, const void *C, cublasLtMatrixLayout_t Cdesc, void *D,
    cublasLtMatrixLayout_t Ddesc, const cublasLtMatmulAlgo_t *algo, void *workspace,
    size_t workspaceSizeInBytes, cudaStream_t stream) {
    const char *call = "cublasLtMatmul";
    Problem p;
    cublasStatus_t s = describe(call, lightHandle, computeDesc, Adesc, Bdesc, Cdesc, Ddesc, &p);
    if (s != CUBLAS_STATUS_SUCCESS) return s;
    if (!alpha || !beta) return refuse(CUBLAS_STATUS_INVALID_VALUE, "%s: NULL alpha or beta", call);
    if (!algo || algo->data[kMagic] != kAlgoMagic)
        return refuse(CUBLAS_STATUS_INVALID_VALUE,
                      "%s: the algorithm does not come from cublasLtMatmulAlgoGetHeuristic", call);
    const uint64_t *a = algo->data;
    if (a[kTransA] != (uint64_t)p.op.trans_a || a[kTransB] != (uint64_t)p.op.trans_b ||
        a[kEpilogue] != p.op.epilogue || a[kCompute] != (uint64_t)p.op.compute)
        return refuse(CUBLAS_STATUS_INVALID_VALUE,
                      "%s: the algorithm was chosen for other transposes, epilogue or compute "
                      "type",
                      call);
    const bool bias = p.op.epilogue == CUBLASLT_EPILOGUE_BIAS;
    if (bias && !p.op.bias)
        return refuse(CUBLAS_STATUS_INVALID_VALUE, "%s: BIAS epilogue without a bias pointer",
                      call);
    const void *ops[4] = {A, B, C, D};
    for (int i = 0; i < 4; i++)
        if (ptr_align(ops[i]) < unpack_align(a[kAligns], i))
            return refuse(CUBLAS_STATUS_INVALID_VALUE,
                          "%s: %c %p is %u-byte aligned; the algorithm was chosen for %u "
                          "(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_%c_BYTES)",
                          call, "ABCD"[i], ops[i], ptr_align(ops[i]), unpack_align(a[kAligns], i),
                          "ABCD"[i]);
    if (bias && ptr_align(p.op.bias) < a[kBiasAlign])
        return refuse(CUBLAS_STATUS_INVALID_VALUE,
                      "%s: bias %p is %u-byte aligned; the algorithm was chosen for a bias "
                      "pointer aligned to %llu",
                      call, p.op.bias, ptr_align(p.op.bias), (unsigned long long)a[kBiasAlign]);
    if (workspaceSizeInBytes < a[kWorkspace])
        return refuse(CUBLAS_STATUS_INVALID_VALUE,
                      "%s: workspace of %zu bytes; the algorithm needs %llu", call,
                      workspaceSizeInBytes, (unsigned long long)a[kWorkspace]);
    if (workspaceSizeInBytes && !saec_simt_is_device_range(workspace, workspaceSizeInBytes))
        return refuse(CUBLAS_STATUS_INVALID_VALUE,
                      "%s: workspace %p (+%zu bytes) is not inside one device allocation", call,
                      workspace, workspaceSizeInBytes);
    if (C == D && p.c.ld != p.d.ld)
        return refuse(CUBLAS_STATUS_INVALID_VALUE,
                      "%s: in place (C == D) with ldc %lld != ldd %lld", call, (long long)p.c.ld,
                      (long long)p.d.ld);
    if (!saec_simt_is_stream(stream))
        return refuse(CUBLAS_STATUS_EXECUTION_FAILED, "%s: stream %p is not live", call,
                      (void *)stream);
    if (p.m == 0 || p.n == 0) return CUBLAS_STATUS_SUCCESS;

    const float al = *(const float *)alpha, be = *(const float *)beta;
    const bool reads_ab = p.k > 0 && al != 0.0f;
    const Operand in[4] = {{"A", A, reads_ab ? extent(p.a.rows, p.a.cols, p.a.ld) * 4 : 0, false},
                           {"B", B, reads_ab ? extent(p.b.rows, p.b.cols, p.b.ld) * 4 : 0, false},
                           {"C", C, be != 0.0f ? extent(p.m, p.n, p.c.ld) * 4 : 0, true},
                           {"bias", p.op.bias, bias ? (size_t)p.m * 4 : 0, false}};
    const Operand out[2] = {{"D", D, extent(p.m, p.n, p.d.ld) * 4, false},
                            {"workspace", workspace, (size_t)a[kWorkspace], false}};
    s = check_operands(call, in, 4, out, 2);
    if (s != CUBLAS_STATUS_SUCCESS) return s;
    gemm(p.op.trans_a, p.op.trans_b, p.m, p.n, p.k, al, (const float *)A, (int)p.a.ld,
         (const float *)B, (int)p.b.ld, be, (const float *)C, (int)p.c.ld, (float *)D, (int)p.d.ld,
         bias ? (const float *)p.op.bias : NULL);
    return CUBLAS_STATUS_SUCCESS;
}
