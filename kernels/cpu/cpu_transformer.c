/* CPU transformer pieces of MoE-MAE (SPEC §7): LayerNorm and its backward, the SwiGLU product
 * and its backward, dropout, patchify / unpatchify, the MAE patch loss, the random patch mask and
 * grouped-query attention with its backward. The reference backend: row sums in double,
 * combined in a fixed order, so every result is the same for any thread count.
 */
#include <math.h>
#include <omp.h>
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

/* out = x·keep/(1 − p) with the counter-based mask.  Floor: reads and writes n*4 bytes. */
int saec_cpu_dropout(saec_dev *dev, const float *x, int64_t n, float p, uint64_t seed,
                     uint64_t counter, float *out) {
    (void)dev;
    SAEC_CPU_REQUIRE("dropout", n >= 0 && p >= 0.0f && p < 1.0f && (n == 0 || (x && out)));
    const float scale = 1.0f / (1.0f - p);
#pragma omp parallel for schedule(static) if (n >= SAEC_CPU_PAR_MIN)
    for (int64_t i = 0; i < n; i++)
        out[i] = saec_hash_uniform(seed, SAEC_RNG_DROPOUT, counter + (uint64_t)i) >= p
                     ? x[i] * scale
                     : 0.0f;
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
   Each score is the double dot of dot_d (a sum from 0, the terms in column order), rounded to
   float, times the scale. A query row's scores are made together, across the keys: the group's
   keys (and values) transposed into a per-thread [dh, Lp] table of doubles, each block of
   ATT_JB keys' sums kept in registers over the columns. Each sum still adds the same terms in the
   same order, so the results are those of one scalar dot per score, bit for bit (and
   tests/test_attention_exact.c holds that scalar version and compares). */

/* Keys per block of scores; a table's rows are padded to a multiple of it (Lp). */
#define ATT_JB 8

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

/* L rounded up to a multiple of ATT_JB. */
static int64_t att_padded(int64_t L) { return (L + ATT_JB - 1) / ATT_JB * ATT_JB; }

/* xt [dh, Lp] <- the dh columns of x's L rows (row j at j·ld) transposed, in double; columns
   L .. Lp-1 zero. */
static void att_transpose(const float *x, int64_t ld, int64_t L, int dh, int64_t Lp, double *xt) {
    for (int c = 0; c < dh; c++) {
        double *row = xt + c * Lp;
        for (int64_t j = 0; j < L; j++)
            row[j] = x[j * ld + c];
        for (int64_t j = L; j < Lp; j++)
            row[j] = 0;
    }
}

/* dots [Lp] <- dot_d(a, column j of xt) for every j: a [dh], xt [dh, Lp]. Each sum starts at 0
   and adds (double)a[c]·x[c][j] for c = 0, 1, .. as dot_d does (the products are exact). */
static void att_dots(const float *a, const double *xt, int dh, int64_t Lp, double *dots) {
    for (int64_t j0 = 0; j0 < Lp; j0 += ATT_JB) {
        double s[ATT_JB] = {0};
        for (int c = 0; c < dh; c++) {
            const double ac = a[c];
            const double *x = xt + c * Lp + j0;
            for (int t = 0; t < ATT_JB; t++)
                s[t] += ac * x[t];
        }
        memcpy(dots + j0, s, sizeof s);
    }
}

/* The score of a query row against a key row from their dot: scale·dot rounded to float (what
   both backends exponentiate). */
static inline float attn_score(double dot, float scale) { return scale * (float)dot; }

/* Per-thread workspace: `doubles` doubles and `floats` floats, 64-byte aligned pieces. */
static size_t att_ws_bytes(int64_t doubles, int64_t floats) {
    const size_t b = (size_t)doubles * sizeof(double) + (size_t)floats * sizeof(float);
    return (b + 63) / 64 * 64;
}

/* q [B·L, ld_q], k, v [B·L, ld_kv] -> out [B·L, Hq·dh], lse [B, Hq, L]. Per (sequence, head):
   the group's keys transposed; per query row its L scores once (a row [Lp]), the max, then the
   exponentials and the weighted sum in double in key order.
   Floor: reads each of q, k, v once, writes out and lse; 4·B·Hq·L²·dh FLOPs. */
int saec_cpu_attention(saec_dev *dev, const float *q, const float *k, const float *v, int64_t ld_q,
                       int64_t ld_kv, int64_t B, int64_t L, int Hq, int G, int dh, float scale,
                       float *out, float *lse) {
    SAEC_CPU_REQUIRE("attention", attention_args_ok(ld_q, ld_kv, B, L, Hq, G, dh));
    if (B * L == 0) return SAEC_OK;
    SAEC_CPU_REQUIRE("attention", q && k && v && out && lse);
    const int64_t Lp = att_padded(L);
    /* per thread: kt [dh, Lp], dots [Lp] (doubles), s [Lp] (floats) */
    const size_t ws_bytes = att_ws_bytes((dh + 1) * Lp, Lp);
    char *ws = NULL;
    SAEC_TRY(saec_cpu_scratch(dev, (size_t)omp_get_max_threads() * ws_bytes, (void **)&ws));
#pragma omp parallel for schedule(static) if (B * Hq * L * L * dh >= SAEC_CPU_PAR_MIN)
    for (int64_t bh = 0; bh < B * Hq; bh++) {
        const int64_t b = bh / Hq, h = bh % Hq, g = h % G;
        double *kt = (double *)(ws + (size_t)omp_get_thread_num() * ws_bytes), *dots = kt + dh * Lp;
        float *s = (float *)(dots + Lp); /* row i's scores [L] */
        att_transpose(k + b * L * ld_kv + g * dh, ld_kv, L, dh, Lp, kt);
        const float *vb = v + b * L * ld_kv + g * dh; /* group g's values: row j at j·ld_kv */
        for (int64_t i = 0; i < L; i++) {
            att_dots(q + (b * L + i) * ld_q + h * dh, kt, dh, Lp, dots);
            float mx = -INFINITY;
            for (int64_t j = 0; j < L; j++) {
                s[j] = attn_score(dots[j], scale);
                mx = s[j] > mx ? s[j] : mx;
            }
            double l = 0, acc[64] = {0};
            for (int64_t j = 0; j < L; j++) {
                const float p = expf(s[j] - mx);
                l += p;
                for (int c = 0; c < dh; c++)
                    acc[c] += (double)p * vb[j * ld_kv + c];
            }
            float *o = out + (b * L + i) * Hq * dh + h * dh;
            for (int c = 0; c < dh; c++)
                o[c] = (float)(acc[c] / l);
            lse[bh * L + i] = mx + (float)log(l);
        }
    }
    return SAEC_OK;
}

/* One pass per (sequence, KV group): for each head h of the group in order and each query row i,
   P_ij and dS_ij over all keys j once (both dots across j); dq_i = scale·Σ_j dS_ij k_j in key
   order; dk_j, dv_j summed over (h, i) in that order in [L, dh] double accumulators: the CUDA
   kernels' orders, without atomics. D_i = ⟨dout_i, out_i⟩ once per query row.
   Floor: reads q, k, v, out, dout, lse, writes dq, dk, dv; ~14·B·Hq·L²·dh FLOPs (counted as if
   the scores were recomputed, as the CUDA kernels do). */
int saec_cpu_attention_backward(saec_dev *dev, const float *q, const float *k, const float *v,
                                int64_t ld_q, int64_t ld_kv, const float *out, const float *dout,
                                const float *lse, int64_t B, int64_t L, int Hq, int G, int dh,
                                float scale, float *dq, float *dk, float *dv) {
    SAEC_CPU_REQUIRE("attention_backward", attention_args_ok(ld_q, ld_kv, B, L, Hq, G, dh));
    if (B * L == 0) return SAEC_OK;
    SAEC_CPU_REQUIRE("attention_backward", q && k && v && out && dout && lse && dq && dk && dv);
    const int64_t ld_o = (int64_t)Hq * dh; /* out, dout [B·L, Hq·dh] */
    const int64_t Lp = att_padded(L);
    /* per thread: kt, vt [dh, Lp], sdot, pdot [Lp], ak, av [L, dh] (doubles); p, ds [Lp] */
    const size_t ws_bytes = att_ws_bytes(2 * dh * Lp + 2 * Lp + 2 * L * dh, 2 * Lp);
    char *ws = NULL;
    SAEC_TRY(saec_cpu_scratch(dev, (size_t)omp_get_max_threads() * ws_bytes, (void **)&ws));
#pragma omp parallel for schedule(static) if (B * Hq * L * L * dh >= SAEC_CPU_PAR_MIN)
    for (int64_t bg = 0; bg < B * G; bg++) {
        const int64_t b = bg / G, g = bg % G;
        double *kt = (double *)(ws + (size_t)omp_get_thread_num() * ws_bytes), *vt = kt + dh * Lp;
        double *sdot = vt + dh * Lp, *pdot = sdot + Lp; /* row i's ⟨q_i, k_j⟩, ⟨dout_i, v_j⟩ */
        double *ak = pdot + Lp, *av = ak + L * dh;      /* Σ dS_ij q_i, Σ P_ij dout_i [L, dh] */
        float *p = (float *)(av + L * dh), *ds = p + Lp; /* row i's P_ij, dS_ij [L] */
        const float *kb = k + b * L * ld_kv + g * dh; /* group g's keys: row j at j·ld_kv */
        att_transpose(kb, ld_kv, L, dh, Lp, kt);
        att_transpose(v + b * L * ld_kv + g * dh, ld_kv, L, dh, Lp, vt);
        memset(ak, 0, sizeof *ak * (size_t)(L * dh));
        memset(av, 0, sizeof *av * (size_t)(L * dh));
        for (int64_t h = g; h < Hq; h += G)
            for (int64_t i = 0; i < L; i++) {
                const float *qi = q + (b * L + i) * ld_q + h * dh;
                const float *doi = dout + (b * L + i) * ld_o + h * dh;
                const float D_i = (float)dot_d(doi, out + (b * L + i) * ld_o + h * dh, dh);
                const float lse_i = lse[(b * Hq + h) * L + i];
                att_dots(qi, kt, dh, Lp, sdot);
                att_dots(doi, vt, dh, Lp, pdot);
                for (int64_t j = 0; j < L; j++) {
                    p[j] = expf(attn_score(sdot[j], scale) - lse_i);
                    ds[j] = p[j] * ((float)pdot[j] - D_i);
                }
                double acc[64] = {0};
                for (int64_t j = 0; j < L; j++)
                    for (int c = 0; c < dh; c++)
                        acc[c] += (double)ds[j] * kb[j * ld_kv + c];
                float *dqi = dq + (b * L + i) * ld_q + h * dh;
                for (int c = 0; c < dh; c++)
                    dqi[c] = (float)(scale * acc[c]);
                for (int64_t j = 0; j < L; j++)
                    for (int c = 0; c < dh; c++) {
                        ak[j * dh + c] += (double)ds[j] * qi[c];
                        av[j * dh + c] += (double)p[j] * doi[c];
                    }
            }
        for (int64_t j = 0; j < L; j++) {
            float *dkj = dk + (b * L + j) * ld_kv + g * dh, *dvj = dv + (b * L + j) * ld_kv + g * dh;
            for (int c = 0; c < dh; c++) {
                dkj[c] = (float)(scale * ak[j * dh + c]);
                dvj[c] = (float)av[j * dh + c];
            }
        }
    }
    return SAEC_OK;
}
