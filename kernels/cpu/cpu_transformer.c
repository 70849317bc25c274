/* CPU transformer pieces of MoE-MAE (SPEC §7): LayerNorm and its backward, the SwiGLU product
 * and its backward, dropout, patchify / unpatchify, the MAE patch loss, the random patch mask and
 * grouped-query attention with its backward. The reference backend: row sums in double,
 * combined in a fixed order, so every result is the same for any thread count.
 */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_internal.h"
#include "saec/hash.h"

/* Rows per task of the column sums of layernorm_backward (the partials stay small). */
#define LN_ROW_CHUNK 256

/* ---- LayerNorm ---- */

/* The statistics of one row x [d] in double, stored as float: mean, 1/√(var + eps). */
static void ln_row_stats(const float *x, int64_t d, float eps, float *mean, float *rstd) {
    double s = 0;
    for (int64_t c = 0; c < d; c++)
        s += x[c];
    const double mu = d > 0 ? s / (double)d : 0.0;
    double ss = 0;
    for (int64_t c = 0; c < d; c++) {
        const double e = (double)x[c] - mu;
        ss += e * e;
    }
    const double var = d > 0 ? ss / (double)d : 0.0;
    *mean = (float)mu;
    *rstd = (float)(1.0 / sqrt(var + (double)eps));
}

/* x, y [n, d], gamma, beta [d] -> mean, rstd [n] (or NULL).
   Floor: reads n*d*4 + 2*d*4, writes n*d*4 + n*8 bytes; ~7 FLOPs an element. */
int saec_cpu_layernorm(saec_dev *dev, const float *x, const float *gamma, const float *beta,
                       int64_t n, int64_t d, float eps, float *y, float *mean, float *rstd) {
    (void)dev;
    SAEC_CPU_REQUIRE("layernorm", n >= 0 && d >= 1 && eps >= 0);
    SAEC_CPU_REQUIRE("layernorm", n == 0 || (x && gamma && beta && y));
#pragma omp parallel for schedule(static) if (n * d >= SAEC_CPU_PAR_MIN)
    for (int64_t r = 0; r < n; r++) {
        const float *xr = x + r * d; /* row r of x [n, d] */
        float *yr = y + r * d;       /* row r of y [n, d] (may be xr) */
        float mu, rs;
        ln_row_stats(xr, d, eps, &mu, &rs);
        for (int64_t c = 0; c < d; c++) {
            const float xhat = (xr[c] - mu) * rs;
            yr[c] = xhat * gamma[c] + beta[c];
        }
        if (mean) mean[r] = mu;
        if (rstd) rstd[r] = rs;
    }
    return SAEC_OK;
}

/* dy, x, dx [n, d]; gamma, dgamma, dbeta [d]; mean, rstd [n].
   dx per row (its two sums first, in double, then the row written: dx may alias dy); dgamma and
   dbeta as column sums in double over chunks of LN_ROW_CHUNK rows, the chunks added in order.
   Floor: reads 3*n*d*4 + n*8 + d*4 (+ dgamma, dbeta when accumulating), writes n*d*4 + 2*d*4
   bytes; ~11 FLOPs an element. */
int saec_cpu_layernorm_backward(saec_dev *dev, const float *dy, const float *x, const float *gamma,
                                const float *mean, const float *rstd, int64_t n, int64_t d,
                                int accumulate, float *dx, float *dgamma, float *dbeta) {
    SAEC_CPU_REQUIRE("layernorm_backward", n >= 0 && d >= 1);
    SAEC_CPU_REQUIRE("layernorm_backward", n == 0 || (dy && x && gamma && mean && rstd && dx));
    const int64_t nchunks = (n + LN_ROW_CHUNK - 1) / LN_ROW_CHUNK;
    double *part = NULL; /* [nchunks, 2, d]: the chunks' Σ dy·x̂ and Σ dy */
    if ((dgamma || dbeta) && nchunks > 0)
        SAEC_TRY(saec_cpu_scratch(dev, (size_t)(nchunks * 2 * d) * sizeof(double), (void **)&part));

#pragma omp parallel for schedule(static) if (n * d >= SAEC_CPU_PAR_MIN)
    for (int64_t ch = 0; ch < nchunks; ch++) {
        double *pg = part ? part + ch * 2 * d : NULL, *pb = part ? pg + d : NULL;
        if (part) memset(pg, 0, (size_t)(2 * d) * sizeof(double));
        const int64_t r1 = (ch + 1) * LN_ROW_CHUNK < n ? (ch + 1) * LN_ROW_CHUNK : n;
        for (int64_t r = ch * LN_ROW_CHUNK; r < r1; r++) {
            const float *xr = x + r * d, *gr = dy + r * d; /* rows r of x, dy [n, d] */
            float *dxr = dx + r * d;                       /* row r of dx (may be gr) */
            const float mu = mean[r], rs = rstd[r];
            double sg = 0, sgx = 0; /* Σ g, Σ g·x̂ over the row */
            for (int64_t c = 0; c < d; c++) {
                const float xhat = (xr[c] - mu) * rs;
                const double g = (double)gr[c] * gamma[c];
                sg += g;
                sgx += g * xhat;
                if (part) {
                    pg[c] += (double)gr[c] * xhat;
                    pb[c] += gr[c];
                }
            }
            const float mg = (float)(sg / (double)d), mgx = (float)(sgx / (double)d);
            for (int64_t c = 0; c < d; c++) {
                const float xhat = (xr[c] - mu) * rs;
                dxr[c] = rs * (gr[c] * gamma[c] - mg - xhat * mgx);
            }
        }
    }
    if (!dgamma && !dbeta) return SAEC_OK;
    for (int64_t c = 0; c < d; c++) { /* n = 0: no chunks, sums 0 */
        double sg = 0, sb = 0;
        for (int64_t ch = 0; ch < nchunks; ch++)
            sg += part[ch * 2 * d + c], sb += part[ch * 2 * d + d + c];
        if (dgamma) dgamma[c] = (float)((accumulate ? (double)dgamma[c] : 0.0) + sg);
        if (dbeta) dbeta[c] = (float)((accumulate ? (double)dbeta[c] : 0.0) + sb);
    }
    return SAEC_OK;
}

/* ---- SwiGLU ---- */

/* σ(v) = 1 / (1 + e^−v), as silu's (cpu_variants.c): each operation rounded in float. */
static inline float sigmoid_f(float v) { return 1.0f / (1.0f + expf(-v)); }

/* out = SiLU(a)·b elementwise; out may alias a or b.  Floor: reads 2*n*4, writes n*4 bytes. */
int saec_cpu_swiglu(saec_dev *dev, const float *a, const float *b, int64_t n, float *out) {
    (void)dev;
    SAEC_CPU_REQUIRE("swiglu", n >= 0 && (n == 0 || (a && b && out)));
#pragma omp parallel for schedule(static) if (n >= SAEC_CPU_PAR_MIN)
    for (int64_t i = 0; i < n; i++) {
        const float v = a[i], w = b[i];
        out[i] = v * sigmoid_f(v) * w;
    }
    return SAEC_OK;
}

/* da = dout·b·σ(a)·(1 + a·σ(−a)), db = dout·SiLU(a): σ(−a) instead of 1 − σ(a), as silu_backward
   (no cancellation for large a). Every input element is read before either output is written.
   Floor: reads 3*n*4, writes 2*n*4 bytes. */
int saec_cpu_swiglu_backward(saec_dev *dev, const float *a, const float *b, const float *dout,
                             int64_t n, float *da, float *db) {
    (void)dev;
    SAEC_CPU_REQUIRE("swiglu_backward", n >= 0 && (n == 0 || (a && b && dout && da && db)));
#pragma omp parallel for schedule(static) if (n >= SAEC_CPU_PAR_MIN)
    for (int64_t i = 0; i < n; i++) {
        const float v = a[i], w = b[i], g = dout[i];
        const float s = sigmoid_f(v), t = sigmoid_f(-v); /* σ(a), 1 − σ(a) */
        da[i] = g * w * s * (1.0f + v * t);
        db[i] = g * (v * s);
    }
    return SAEC_OK;
}

/* ---- dropout ---- */

/* The mask's loop. The hash is integer arithmetic and the product one float multiply, so any
   instruction set gives the same bits; with AVX-512 DQ (64-bit vector multiplies) the compiler
   vectorises the hash 8 lanes wide, about 5x faster than the scalar multiplies (the dropout was
   8% of the MoE-MAE training step, now 1.3%). */
#define DROPOUT_LOOP                                                                               \
    _Pragma("omp parallel for schedule(static) if (n >= SAEC_CPU_PAR_MIN)")                         \
    for (int64_t i = 0; i < n; i++)                                                                \
        out[i] = saec_hash_uniform(seed, SAEC_RNG_DROPOUT, counter + (uint64_t)i) >= p             \
                     ? x[i] * scale                                                                \
                     : 0.0f;

#if defined(__x86_64__) && defined(__GNUC__)
#define DROPOUT_HAVE_AVX512 1
__attribute__((target("avx512f,avx512dq"))) static void
dropout_avx512(const float *x, int64_t n, float p, float scale, uint64_t seed, uint64_t counter,
               float *out) {
    DROPOUT_LOOP
}
#endif

/* out = x·keep/(1 − p) with the counter-based mask.  Floor: reads and writes n*4 bytes. */
int saec_cpu_dropout(saec_dev *dev, const float *x, int64_t n, float p, uint64_t seed,
                     uint64_t counter, float *out) {
    (void)dev;
    SAEC_CPU_REQUIRE("dropout", n >= 0 && p >= 0.0f && p < 1.0f && (n == 0 || (x && out)));
    const float scale = 1.0f / (1.0f - p);
#ifdef DROPOUT_HAVE_AVX512
    if (__builtin_cpu_supports("avx512dq")) {
        dropout_avx512(x, n, p, scale, seed, counter, out);
        return SAEC_OK;
    }
#endif
    DROPOUT_LOOP
    return SAEC_OK;
}

/* ---- patches ---- */

static int patch_args_ok(int64_t B, int64_t C, int64_t H, int64_t W, int64_t P) {
    return B >= 0 && C >= 1 && H >= 0 && W >= 0 && P >= 1;
}

/* img [B, C, H, W] -> patches [B, gh·gw, C·P·P].  Floor: reads and writes B·gh·gw·C·P·P·4 bytes. */
int saec_cpu_patchify(saec_dev *dev, const float *img, int64_t B, int64_t C, int64_t H, int64_t W,
                      int64_t P, float *patches) {
    (void)dev;
    SAEC_CPU_REQUIRE("patchify", patch_args_ok(B, C, H, W, P));
    const int64_t gh = H / P, gw = W / P, pv = C * P * P; /* pv: values of a patch */
    if (B * gh * gw == 0) return SAEC_OK;
    SAEC_CPU_REQUIRE("patchify", img && patches);
#pragma omp parallel for schedule(static) if (B * gh * gw * pv >= SAEC_CPU_PAR_MIN)
    for (int64_t bq = 0; bq < B * gh * gw; bq++) {
        const int64_t b = bq / (gh * gw), q = bq % (gh * gw), py = q / gw, px = q % gw;
        float *o = patches + bq * pv; /* patch q of sample b [C, P, P] */
        for (int64_t c = 0; c < C; c++)
            for (int64_t y = 0; y < P; y++)
                memcpy(o + (c * P + y) * P, img + ((b * C + c) * H + py * P + y) * W + px * P,
                       (size_t)P * sizeof(float));
    }
    return SAEC_OK;
}

/* patches [B, gh·gw, C·P·P] -> img [B, C, H, W] (the uncovered border 0).
   Floor: reads B·gh·gw·C·P·P·4, writes B·C·H·W·4 bytes. */
int saec_cpu_unpatchify(saec_dev *dev, const float *patches, int64_t B, int64_t C, int64_t H,
                        int64_t W, int64_t P, float *img) {
    (void)dev;
    SAEC_CPU_REQUIRE("unpatchify", patch_args_ok(B, C, H, W, P));
    const int64_t gh = H / P, gw = W / P, pv = C * P * P;
    if (B * C * H * W == 0) return SAEC_OK;
    SAEC_CPU_REQUIRE("unpatchify", img && (gh * gw == 0 || patches));
#pragma omp parallel for schedule(static) if (B * C * H * W >= SAEC_CPU_PAR_MIN)
    for (int64_t bc = 0; bc < B * C; bc++) {
        const int64_t b = bc / C, c = bc % C;
        for (int64_t yy = 0; yy < H; yy++) {
            float *row = img + (bc * H + yy) * W; /* row yy of channel c of sample b [W] */
            const int64_t py = yy / P, y = yy % P;
            if (py >= gh) {
                memset(row, 0, (size_t)W * sizeof(float));
                continue;
            }
            for (int64_t px = 0; px < gw; px++)
                memcpy(row + px * P, patches + (b * gh * gw + py * gw + px) * pv + (c * P + y) * P,
                       (size_t)P * sizeof(float));
            if (gw * P < W) memset(row + gw * P, 0, (size_t)(W - gw * P) * sizeof(float));
        }
    }
    return SAEC_OK;
}

/* ---- the MAE patch loss ---- */

/* pred, target, grad [n, v]; mask [n] -> loss [3] doubles. Per-patch sums in double (scratch
   [n]), then the two kinds summed serially in patch order.
   Floor: reads 2*n*v*4 + n bytes (+ writes n*v*4 with grad). */
int saec_cpu_patch_loss(saec_dev *dev, const float *pred, const float *target, const uint8_t *mask,
                        int64_t n, int64_t v, float w_masked, float w_visible, double *loss,
                        float *grad) {
    SAEC_CPU_REQUIRE("patch_loss", n >= 0 && v >= 1 && loss != NULL);
    SAEC_CPU_REQUIRE("patch_loss", n == 0 || (pred && target && mask));
    double *row = NULL; /* [n]: each patch's ‖pred − target‖² */
    if (n > 0) SAEC_TRY(saec_cpu_scratch(dev, (size_t)n * sizeof(double), (void **)&row));
#pragma omp parallel for schedule(static) if (n * v >= SAEC_CPU_PAR_MIN)
    for (int64_t r = 0; r < n; r++) {
        double s = 0;
        for (int64_t c = 0; c < v; c++) {
            const double e = (double)pred[r * v + c] - (double)target[r * v + c];
            s += e * e;
        }
        row[r] = s;
    }
    double sum[2] = {0, 0}; /* [visible, masked] */
    int64_t count[2] = {0, 0};
    for (int64_t r = 0; r < n; r++) {
        const int k = mask[r] != 0;
        sum[k] += row[r];
        count[k]++;
    }
    loss[1] = count[1] ? sum[1] / (double)count[1] : 0.0;
    loss[2] = count[0] ? sum[0] / (double)count[0] : 0.0;
    loss[0] = (double)w_masked * loss[1] + (double)w_visible * loss[2];
    if (!grad) return SAEC_OK;
    const float coef[2] = {count[0] ? (float)(2.0 * (double)w_visible / (double)count[0]) : 0.0f,
                           count[1] ? (float)(2.0 * (double)w_masked / (double)count[1]) : 0.0f};
#pragma omp parallel for schedule(static) if (n * v >= SAEC_CPU_PAR_MIN)
    for (int64_t r = 0; r < n; r++) {
        const float k = coef[mask[r] != 0];
        for (int64_t c = 0; c < v; c++)
            grad[r * v + c] = k * (pred[r * v + c] - target[r * v + c]);
    }
    return SAEC_OK;
}

/* ---- the random patch mask ---- */

/* keep [B, n_keep], mask [B, N]. Patch q of sample b is kept when fewer than n_keep patches come
   before it in (u, index) order. Floor: writes B·n_keep·4 + B·N bytes; O(N²) comparisons a
   sample here (N ≤ 1024). */
int saec_cpu_patch_mask(saec_dev *dev, uint64_t seed, uint64_t counter, int64_t B, int64_t N,
                        int64_t n_keep, int32_t *keep, uint8_t *mask) {
    SAEC_CPU_REQUIRE("patch_mask", B >= 0 && N >= 0 && N <= 1024 && n_keep >= 0 && n_keep <= N);
    SAEC_CPU_REQUIRE("patch_mask", B * N == 0 || (mask && (n_keep == 0 || keep)));
    if (B * N == 0) return SAEC_OK;
    float *u = NULL; /* [B, N] the draws */
    SAEC_TRY(saec_cpu_scratch(dev, (size_t)(B * N) * sizeof(float), (void **)&u));
#pragma omp parallel for schedule(static) if (B * N * N >= SAEC_CPU_PAR_MIN)
    for (int64_t b = 0; b < B; b++) {
        float *ub = u + b * N;
        for (int64_t q = 0; q < N; q++)
            ub[q] = saec_hash_uniform(seed, SAEC_RNG_PATCH_MASK, counter + (uint64_t)(b * N + q));
        int64_t kept = 0;
        for (int64_t q = 0; q < N; q++) {
            int64_t before = 0; /* patches ahead of q in (u, index) order */
            for (int64_t p = 0; p < N; p++)
                before += ub[p] < ub[q] || (ub[p] == ub[q] && p < q);
            const int k = before < n_keep;
            mask[b * N + q] = (uint8_t)!k;
            if (k) keep[b * n_keep + kept++] = (int32_t)q;
        }
    }
    return SAEC_OK;
}

/* perm [B, prefix + n_keep], inv [B, prefix + N] from keep [B, n_keep] (ascending per sample:
   a merge walk). Floor: reads B·n_keep·4, writes the two index lists. */
int saec_cpu_patch_token_index(saec_dev *dev, const int32_t *keep, int64_t B, int64_t N,
                               int64_t n_keep, int64_t prefix, int32_t mask_row, int32_t *perm,
                               int32_t *inv) {
    (void)dev;
    SAEC_CPU_REQUIRE("patch_token_index",
                     B >= 0 && N >= 0 && n_keep >= 0 && n_keep <= N && prefix >= 0);
    const int64_t T = prefix + N, V = prefix + n_keep; /* tokens, visible tokens a sample */
    SAEC_CPU_REQUIRE("patch_token_index", B * T <= INT32_MAX && mask_row >= -1);
    if (B == 0 || T == 0) return SAEC_OK;
    SAEC_CPU_REQUIRE("patch_token_index", perm && inv && (n_keep == 0 || keep));
    for (int64_t b = 0; b < B; b++) {
        const int32_t *kb = keep + b * n_keep; /* this sample's kept patches, ascending */
        for (int64_t j = 0; j < prefix; j++) {
            perm[b * V + j] = (int32_t)(b * T + j);
            inv[b * T + j] = (int32_t)(b * V + j);
        }
        int64_t next = 0; /* the next kept patch */
        for (int64_t q = 0; q < N; q++) {
            const int kept = next < n_keep && kb[next] == q;
            inv[b * T + prefix + q] = kept ? (int32_t)(b * V + prefix + next) : mask_row;
            if (kept) perm[b * V + prefix + next++] = (int32_t)(b * T + prefix + q);
        }
    }
    return SAEC_OK;
}

/* ---- grouped-query attention ----
   Every sum of the contract is a chain of double additions in a fixed order: a score is
   0 + q_0·k_0 + q_1·k_1 + .. (columns in order), rounded to float, times the scale; out's and
   dq's sums run over the keys in order; dk's and dv's over (head of the group, query row) in that
   order. Each such chain is one lane of a small matrix product C (+)= A·B whose inner index runs
   in order (att_tile): the products of two floats are exact in double, so every lane adds the
   same values in the same order as one scalar loop per result, and the results are the same bits
   (tests/test_attention_exact.c keeps those scalar loops and compares). The tiles vectorise
   across the lanes, and each score is made once (the backward's once for dq and for dk, dv). */

/* The register tile of att_tile: ATT_MR rows × ATT_NR columns of C (att_mm_avx: 8 × 4). Tables
   that serve as B or C have their rows padded to ATT_NR columns (dhp, Lp) and their row counts to
   ATT_ROWS (a multiple of both tiles' rows). */
#define ATT_MR 4
#define ATT_NR 4
#define ATT_ROWS 8
/* Query rows per block: S, P, dS are [ATT_IB, Lp] per thread, never [L, L]. */
#define ATT_IB 32

/* One SSE2 register of doubles (the baseline of x86-64); a tile row is two of them. */
typedef double att_vec __attribute__((vector_size(2 * sizeof(double))));

static int attention_args_ok(int64_t ld_q, int64_t ld_kv, int64_t B, int64_t L, int Hq, int G,
                             int dh) {
    return B >= 0 && L >= 0 && G >= 1 && Hq >= G && Hq % G == 0 && dh >= 1 && dh <= 64 &&
           ld_q >= (int64_t)Hq * dh && ld_kv >= (int64_t)G * dh;
}

/* ⟨a, b⟩ over dh values, in double. */
static inline double dot_d(const float *a, const float *b, int dh) {
    double s = 0;
    for (int c = 0; c < dh; c++)
        s += (double)a[c] * b[c];
    return s;
}

/* n rounded up to a multiple of m. */
static int64_t att_round_up(int64_t n, int64_t m) { return (n + m - 1) / m * m; }

/* One ATT_MR × ATT_NR tile: C[r][t] = (accumulate ? C[r][t] : 0) + Σ_{kk < K} A[r·a_r + kk·a_k]
   · B[kk·ldb + t], kk in order, each step one rounded addition of an exact product (no fused
   multiply-add: the build's ISO C mode keeps contraction off). */
static inline att_vec att_ld(const double *p) {
    att_vec x;
    memcpy(&x, p, sizeof x);
    return x;
}
static inline void att_st(double *p, att_vec x) { memcpy(p, &x, sizeof x); }

static inline void att_tile(const double *A, int64_t a_r, int64_t a_k, const double *Bm,
                            int64_t ldb, int64_t K, double *C, int64_t ldc, int accumulate) {
    /* named accumulators (row r, half u): an array here stays in memory */
    att_vec c00 = {0, 0}, c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00, c30 = c00,
            c31 = c00;
    if (accumulate) {
        c00 = att_ld(C), c01 = att_ld(C + 2), c10 = att_ld(C + ldc), c11 = att_ld(C + ldc + 2);
        c20 = att_ld(C + 2 * ldc), c21 = att_ld(C + 2 * ldc + 2);
        c30 = att_ld(C + 3 * ldc), c31 = att_ld(C + 3 * ldc + 2);
    }
    for (int64_t kk = 0; kk < K; kk++) {
        const att_vec b0 = att_ld(Bm + kk * ldb), b1 = att_ld(Bm + kk * ldb + 2);
        const double *a = A + kk * a_k;
        const att_vec a0 = {a[0], a[0]}, a1 = {a[a_r], a[a_r]}, a2 = {a[2 * a_r], a[2 * a_r]},
                      a3 = {a[3 * a_r], a[3 * a_r]};
        c00 += a0 * b0, c01 += a0 * b1, c10 += a1 * b0, c11 += a1 * b1;
        c20 += a2 * b0, c21 += a2 * b1, c30 += a3 * b0, c31 += a3 * b1;
    }
    att_st(C, c00), att_st(C + 2, c01), att_st(C + ldc, c10), att_st(C + ldc + 2, c11);
    att_st(C + 2 * ldc, c20), att_st(C + 2 * ldc + 2, c21);
    att_st(C + 3 * ldc, c30), att_st(C + 3 * ldc + 2, c31);
}

/* C [M, N] (+)= A [M, K] · B [K, N] tile by tile (M a multiple of ATT_MR, N of ATT_NR); A's
   element (r, kk) at A[r·a_r + kk·a_k] (a transposed A is a_r = 1), B's rows ldb apart, C's ldc. */
static void att_mm_sse2(int64_t M, int64_t N, int64_t K, const double *A, int64_t a_r, int64_t a_k,
                        const double *Bm, int64_t ldb, double *C, int64_t ldc, int accumulate) {
    for (int64_t r0 = 0; r0 < M; r0 += ATT_MR)
        for (int64_t t0 = 0; t0 < N; t0 += ATT_NR)
            att_tile(A + r0 * a_r, a_r, a_k, Bm + t0, ldb, K, C + r0 * ldc + t0, ldc, accumulate);
}

#if defined(__x86_64__) && defined(__GNUC__)
#define ATT_HAVE_AVX 1
/* att_mm_sse2 with AVX registers (4 doubles): 8 × 4 tiles, M a multiple of 8. Each lane does the
   same additions in the same order, and AVX has no fused multiply-add, so the results are the
   same bits. Everything in one function: AVX vectors must not cross a call. */
__attribute__((target("avx"))) static void att_mm_avx(int64_t M, int64_t N, int64_t K,
                                                      const double *A, int64_t a_r, int64_t a_k,
                                                      const double *Bm, int64_t ldb, double *C,
                                                      int64_t ldc, int accumulate) {
    typedef double v4 __attribute__((vector_size(4 * sizeof(double))));
    for (int64_t r0 = 0; r0 < M; r0 += 8)
        for (int64_t t0 = 0; t0 < N; t0 += 4) {
            double *c = C + r0 * ldc + t0;
            v4 c0 = {0, 0, 0, 0}, c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0, c6 = c0, c7 = c0;
            if (accumulate) {
                memcpy(&c0, c, 32), memcpy(&c1, c + ldc, 32), memcpy(&c2, c + 2 * ldc, 32);
                memcpy(&c3, c + 3 * ldc, 32), memcpy(&c4, c + 4 * ldc, 32);
                memcpy(&c5, c + 5 * ldc, 32), memcpy(&c6, c + 6 * ldc, 32);
                memcpy(&c7, c + 7 * ldc, 32);
            }
            const double *a = A + r0 * a_r;
            for (int64_t kk = 0; kk < K; kk++, a += a_k) {
                v4 b;
                memcpy(&b, Bm + kk * ldb + t0, 32);
                c0 += a[0] * b, c1 += a[a_r] * b, c2 += a[2 * a_r] * b, c3 += a[3 * a_r] * b;
                c4 += a[4 * a_r] * b, c5 += a[5 * a_r] * b, c6 += a[6 * a_r] * b;
                c7 += a[7 * a_r] * b;
            }
            memcpy(c, &c0, 32), memcpy(c + ldc, &c1, 32), memcpy(c + 2 * ldc, &c2, 32);
            memcpy(c + 3 * ldc, &c3, 32), memcpy(c + 4 * ldc, &c4, 32);
            memcpy(c + 5 * ldc, &c5, 32), memcpy(c + 6 * ldc, &c6, 32);
            memcpy(c + 7 * ldc, &c7, 32);
        }
}
#endif

/* Whether att_mm takes AVX: where the CPU has it, unless SAEC_CPU_ATTENTION_SSE2 is set (tests
   compare both paths; the results are the same). Read once per op call. */
static int att_use_avx(void) {
#ifdef ATT_HAVE_AVX
    const char *sse2 = getenv("SAEC_CPU_ATTENTION_SSE2");
    return __builtin_cpu_supports("avx") && !(sse2 && *sse2 && strcmp(sse2, "0") != 0);
#else
    return 0;
#endif
}

/* att_mm_avx or att_mm_sse2 (avx from att_use_avx). */
static void att_mm(int avx, int64_t M, int64_t N, int64_t K, const double *A, int64_t a_r,
                   int64_t a_k, const double *Bm, int64_t ldb, double *C, int64_t ldc,
                   int accumulate) {
#ifdef ATT_HAVE_AVX
    if (avx) {
        att_mm_avx(M, N, K, A, a_r, a_k, Bm, ldb, C, ldc, accumulate);
        return;
    }
#endif
    (void)avx;
    att_mm_sse2(M, N, K, A, a_r, a_k, Bm, ldb, C, ldc, accumulate);
}

/* xt [dh, Lp] <- the dh columns of x's L rows (row j at j·ld) transposed, in double (columns
   L .. Lp-1 zero). */
static void att_load_t(const float *x, int64_t ld, int64_t L, int dh, int64_t Lp, double *xt) {
    for (int c = 0; c < dh; c++) {
        double *row = xt + c * Lp;
        for (int64_t j = 0; j < L; j++)
            row[j] = x[j * ld + c];
        for (int64_t j = L; j < Lp; j++)
            row[j] = 0;
    }
}

/* xd [rows_p, dhp] <- the dh columns of x's n rows (row j at j·ld) in double (the padding of
   rows and columns zero). */
static void att_load(const float *x, int64_t ld, int64_t n, int64_t rows_p, int dh, int64_t dhp,
                     double *xd) {
    memset(xd, 0, sizeof *xd * (size_t)(rows_p * dhp));
    for (int64_t j = 0; j < n; j++)
        for (int c = 0; c < dh; c++)
            xd[j * dhp + c] = x[j * ld + c];
}

/* Per-thread workspace of `doubles` doubles, a multiple of 64 bytes. */
static size_t att_ws_bytes(int64_t doubles) {
    return att_round_up((int64_t)sizeof(double) * doubles, 64);
}

/* q [B·L, ld_q], k, v [B·L, ld_kv] -> out [B·L, Hq·dh], lse [B, Hq, L]. Per (sequence, head),
   per block of query rows: S = Q·Kᵀ (the dots), each score rounded and scaled once, each row's
   max, P = exp(s − max) (float, held in double), out = P·V and the row sums of P in double in key
   order. Floor: reads each of q, k, v once, writes out and lse; 4·B·Hq·L²·dh FLOPs. */
int saec_cpu_attention(saec_dev *dev, const float *q, const float *k, const float *v, int64_t ld_q,
                       int64_t ld_kv, int64_t B, int64_t L, int Hq, int G, int dh, float scale,
                       float *out, float *lse) {
    SAEC_CPU_REQUIRE("attention", attention_args_ok(ld_q, ld_kv, B, L, Hq, G, dh));
    if (B * L == 0) return SAEC_OK;
    SAEC_CPU_REQUIRE("attention", q && k && v && out && lse);
    const int avx = att_use_avx();
    const int64_t Lp = att_round_up(L, ATT_ROWS), dhp = att_round_up(dh, ATT_NR);
    /* per thread: kt [dh, Lp], vd [Lp, dhp], qd [IB, dhp], sp [IB, Lp] (S, then P), o [IB, dhp] */
    const size_t ws_bytes = att_ws_bytes(dh * Lp + Lp * dhp + ATT_IB * (2 * dhp + Lp));
    char *ws = NULL;
    SAEC_TRY(saec_cpu_scratch(dev, (size_t)omp_get_max_threads() * ws_bytes, (void **)&ws));
#pragma omp parallel for schedule(static) if (B * Hq * L * L * dh >= SAEC_CPU_PAR_MIN)
    for (int64_t bh = 0; bh < B * Hq; bh++) {
        const int64_t b = bh / Hq, h = bh % Hq, g = h % G;
        double *kt = (double *)(ws + (size_t)omp_get_thread_num() * ws_bytes);
        double *vd = kt + dh * Lp, *qd = vd + Lp * dhp, *sp = qd + ATT_IB * dhp;
        double *o = sp + ATT_IB * Lp;
        att_load_t(k + b * L * ld_kv + g * dh, ld_kv, L, dh, Lp, kt);
        att_load(v + b * L * ld_kv + g * dh, ld_kv, L, Lp, dh, dhp, vd);
        for (int64_t i0 = 0; i0 < L; i0 += ATT_IB) {
            const int64_t nb = L - i0 < ATT_IB ? L - i0 : ATT_IB; /* rows i0 .. i0+nb-1 */
            const int64_t mb = att_round_up(nb, ATT_ROWS);
            att_load(q + (b * L + i0) * ld_q + h * dh, ld_q, nb, mb, dh, dhp, qd);
            att_mm(avx, mb, Lp, dh, qd, dhp, 1, kt, Lp, sp, Lp, 0); /* sp = the dots [mb, Lp] */
            double l[ATT_IB]; /* each row's Σ_j P_ij in key order */
            for (int64_t r = 0; r < nb; r++) {
                double *row = sp + r * Lp;
                float mx = -INFINITY;
                for (int64_t j = 0; j < L; j++) {
                    const float s = scale * (float)row[j];
                    row[j] = s;
                    mx = s > mx ? s : mx;
                }
                l[r] = 0;
                for (int64_t j = 0; j < L; j++) {
                    const float p = expf((float)row[j] - mx);
                    l[r] += p;
                    row[j] = p;
                }
                lse[bh * L + i0 + r] = mx + (float)log(l[r]);
            }
            att_mm(avx, mb, dhp, L, sp, Lp, 1, vd, dhp, o, dhp, 0); /* o = P·V [mb, dhp] */
            for (int64_t r = 0; r < nb; r++) {
                float *orow = out + (b * L + i0 + r) * Hq * dh + h * dh;
                for (int c = 0; c < dh; c++)
                    orow[c] = (float)(o[r * dhp + c] / l[r]);
            }
        }
    }
    return SAEC_OK;
}

/* One pass per (sequence, KV group): for each head h of the group in order, per block of query
   rows: S = Q·Kᵀ and dP = dO·Vᵀ (the dots), P = exp(scale·s − lse) and dS = P ⊙ (dP − D) once per
   pair, dq = scale·dS·K (keys in order), and dk += dSᵀ·Q, dv += Pᵀ·dO into [Lp, dhp] double
   accumulators that run over (h, i) in order: the CUDA kernels' orders, without atomics.
   D_i = ⟨dout_i, out_i⟩ once per query row. Floor: reads q, k, v, out, dout, lse, writes dq, dk,
   dv; ~14·B·Hq·L²·dh FLOPs (counted with the scores made twice, as the CUDA kernels make them). */
int saec_cpu_attention_backward(saec_dev *dev, const float *q, const float *k, const float *v,
                                int64_t ld_q, int64_t ld_kv, const float *out, const float *dout,
                                const float *lse, int64_t B, int64_t L, int Hq, int G, int dh,
                                float scale, float *dq, float *dk, float *dv) {
    SAEC_CPU_REQUIRE("attention_backward", attention_args_ok(ld_q, ld_kv, B, L, Hq, G, dh));
    if (B * L == 0) return SAEC_OK;
    SAEC_CPU_REQUIRE("attention_backward", q && k && v && out && dout && lse && dq && dk && dv);
    const int64_t ld_o = (int64_t)Hq * dh; /* out, dout [B·L, Hq·dh] */
    const int avx = att_use_avx();
    const int64_t Lp = att_round_up(L, ATT_ROWS), dhp = att_round_up(dh, ATT_NR);
    /* per thread: kt, vt [dh, Lp], kd [Lp, dhp], qd, dod [IB, dhp], p, ds [IB, Lp] (S, dP, then
       P, dS), dqb [IB, dhp], ak, av [Lp, dhp] */
    const size_t ws_bytes =
        att_ws_bytes(2 * dh * Lp + Lp * dhp + ATT_IB * (3 * dhp + 2 * Lp) + 2 * Lp * dhp);
    char *ws = NULL;
    SAEC_TRY(saec_cpu_scratch(dev, (size_t)omp_get_max_threads() * ws_bytes, (void **)&ws));
#pragma omp parallel for schedule(static) if (B * Hq * L * L * dh >= SAEC_CPU_PAR_MIN)
    for (int64_t bg = 0; bg < B * G; bg++) {
        const int64_t b = bg / G, g = bg % G;
        double *kt = (double *)(ws + (size_t)omp_get_thread_num() * ws_bytes), *vt = kt + dh * Lp;
        double *kd = vt + dh * Lp, *qd = kd + Lp * dhp, *dod = qd + ATT_IB * dhp;
        double *p = dod + ATT_IB * dhp, *ds = p + ATT_IB * Lp, *dqb = ds + ATT_IB * Lp;
        double *ak = dqb + ATT_IB * dhp, *av = ak + Lp * dhp; /* Σ dS_ij q_i, Σ P_ij dout_i */
        const float *kb = k + b * L * ld_kv + g * dh, *vb = v + b * L * ld_kv + g * dh;
        att_load_t(kb, ld_kv, L, dh, Lp, kt);
        att_load_t(vb, ld_kv, L, dh, Lp, vt);
        att_load(kb, ld_kv, L, Lp, dh, dhp, kd);
        memset(ak, 0, sizeof *ak * (size_t)(2 * Lp * dhp)); /* ak and av */
        for (int64_t h = g; h < Hq; h += G)
            for (int64_t i0 = 0; i0 < L; i0 += ATT_IB) {
                const int64_t nb = L - i0 < ATT_IB ? L - i0 : ATT_IB; /* rows i0 .. i0+nb-1 */
                const int64_t mb = att_round_up(nb, ATT_ROWS);
                const int64_t row0 = b * L + i0; /* the block's first row of q, out, dout */
                att_load(q + row0 * ld_q + h * dh, ld_q, nb, mb, dh, dhp, qd);
                att_load(dout + row0 * ld_o + h * dh, ld_o, nb, mb, dh, dhp, dod);
                att_mm(avx, mb, Lp, dh, qd, dhp, 1, kt, Lp, p, Lp, 0);   /* p = ⟨q_i, k_j⟩ */
                att_mm(avx, mb, Lp, dh, dod, dhp, 1, vt, Lp, ds, Lp, 0); /* ds = ⟨dout_i, v_j⟩ */
                for (int64_t r = 0; r < nb; r++) {
                    const float *doi = dout + (row0 + r) * ld_o + h * dh;
                    const float D_i = (float)dot_d(doi, out + (row0 + r) * ld_o + h * dh, dh);
                    const float lse_i = lse[(b * Hq + h) * L + i0 + r];
                    double *pr = p + r * Lp, *dsr = ds + r * Lp;
                    for (int64_t j = 0; j < L; j++) {
                        const float pj = expf(scale * (float)pr[j] - lse_i);
                        pr[j] = pj;
                        dsr[j] = pj * ((float)dsr[j] - D_i);
                    }
                }
                att_mm(avx, mb, dhp, L, ds, Lp, 1, kd, dhp, dqb, dhp, 0); /* Σ_j dS_ij k_j */
                for (int64_t r = 0; r < nb; r++) {
                    float *dqi = dq + (row0 + r) * ld_q + h * dh;
                    for (int c = 0; c < dh; c++)
                        dqi[c] = (float)(scale * dqb[r * dhp + c]);
                }
                /* ak [Lp, dhp] += dSᵀ·Q, av += Pᵀ·dO over the block's nb rows, in row order (the
                   rows of p, ds past L hold values no one reads: key rows j >= L) */
                att_mm(avx, Lp, dhp, nb, ds, 1, Lp, qd, dhp, ak, dhp, 1);
                att_mm(avx, Lp, dhp, nb, p, 1, Lp, dod, dhp, av, dhp, 1);
            }
        for (int64_t j = 0; j < L; j++) {
            float *dkj = dk + (b * L + j) * ld_kv + g * dh;
            float *dvj = dv + (b * L + j) * ld_kv + g * dh;
            for (int c = 0; c < dh; c++) {
                dkj[c] = (float)(scale * ak[j * dhp + c]);
                dvj[c] = (float)av[j * dhp + c];
            }
        }
    }
    return SAEC_OK;
}
