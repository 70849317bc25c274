/* CPU optimizer and decoder-constraint ops. Row ops are parallel over rows (each row is
 * independent and reduced in double in a fixed order); AdamW is elementwise. */
#include <math.h>

#include "cpu_internal.h"

/* G[i, :] -= (⟨G_i, W_i⟩ / ‖W_i‖²) W_i for each row with a nonzero W_i. W, G [m, d].
   Floor: reads 2*m*d*4, writes m*d*4 bytes. */
int saec_cpu_project_rows_grad(saec_dev *dev, const float *W, float *G, int64_t m, int64_t d) {
    (void)dev;
    SAEC_CPU_REQUIRE("project_rows_grad", m >= 0 && d >= 0);
    if (m == 0 || d == 0) return SAEC_OK;
    SAEC_CPU_REQUIRE("project_rows_grad", W && G);
#pragma omp parallel for schedule(static) if (m * d >= SAEC_CPU_PAR_MIN)
    for (int64_t i = 0; i < m; i++) {
        const float *w = W + i * d; /* row i of W [m, d] */
        float *g = G + i * d;       /* row i of G [m, d] */
        double gw = 0, ww = 0;
        for (int64_t c = 0; c < d; c++) {
            gw += (double)g[c] * w[c];
            ww += (double)w[c] * w[c];
        }
        if (ww <= 0) continue; /* a zero row has no direction to project out */
        const double a = gw / ww;
        for (int64_t c = 0; c < d; c++)
            g[c] = (float)(g[c] - a * w[c]);
    }
    return SAEC_OK;
}

/* W[i, :] /= ‖W_i‖ for each row with a nonzero norm. W [m, d].
   Floor: reads and writes m*d*4 bytes. */
int saec_cpu_normalize_rows(saec_dev *dev, float *W, int64_t m, int64_t d) {
    (void)dev;
    SAEC_CPU_REQUIRE("normalize_rows", m >= 0 && d >= 0);
    if (m == 0 || d == 0) return SAEC_OK;
    SAEC_CPU_REQUIRE("normalize_rows", W != NULL);
#pragma omp parallel for schedule(static) if (m * d >= SAEC_CPU_PAR_MIN)
    for (int64_t i = 0; i < m; i++) {
        float *w = W + i * d; /* row i of W [m, d] */
        double ss = 0;
        for (int64_t c = 0; c < d; c++)
            ss += (double)w[c] * w[c];
        if (ss <= 0) continue; /* a zero row stays zero */
        const double inv = 1.0 / sqrt(ss);
        for (int64_t c = 0; c < d; c++)
            w[c] = (float)(w[c] * inv);
    }
    return SAEC_OK;
}

/* One AdamW step over param, grad, m1, m2 [n]:
     g = clip * grad, clip = max_grad_norm / ‖grad‖ when ‖grad‖ > max_grad_norm > 0, else 1
         (‖grad‖ = sqrt(*grad_sumsq), the global norm over all parameter groups);
     m1 = b1 m1 + (1 − b1) g;  m2 = b2 m2 + (1 − b2) g²;
     p -= lr (wd p + m̂ / (sqrt(v̂) + eps)),  m̂ = m1 / (1 − b1^t), v̂ = m2 / (1 − b2^t).
   Weight decay is decoupled (AdamW) and uses p before this step's update.
   Floor: reads 4*n*4, writes 3*n*4 bytes. */
int saec_cpu_adamw(saec_dev *dev, float *param, const float *grad, float *m1, float *m2, int64_t n,
                   saec_adamw_args args, const double *grad_sumsq) {
    (void)dev;
    SAEC_CPU_REQUIRE("adamw", n >= 0 && args.step >= 1);
    SAEC_CPU_REQUIRE("adamw", args.max_grad_norm <= 0.0f || grad_sumsq != NULL);
    if (n == 0) return SAEC_OK;
    SAEC_CPU_REQUIRE("adamw", param && grad && m1 && m2);

    double clip = 1.0;
    if (args.max_grad_norm > 0.0f) {
        const double norm = sqrt(*grad_sumsq);
        if (norm > args.max_grad_norm) clip = args.max_grad_norm / norm;
    }
    const float clipf = (float)clip;
    const float b1 = args.beta1, b2 = args.beta2, eps = args.eps;
    const float lr = args.lr, wd = args.weight_decay;
    /* Bias corrections in double: b2^t is close to 1 for small t. */
    const float bc1 = (float)(1.0 - pow((double)b1, (double)args.step));
    const float bc2 = (float)(1.0 - pow((double)b2, (double)args.step));

#pragma omp parallel for schedule(static) if (n >= SAEC_CPU_PAR_MIN)
    for (int64_t i = 0; i < n; i++) {
        const float g = grad[i] * clipf;
        const float m = b1 * m1[i] + (1.0f - b1) * g;
        const float v = b2 * m2[i] + (1.0f - b2) * g * g;
        m1[i] = m;
        m2[i] = v;
        const float p = param[i];
        param[i] = p - lr * (wd * p + (m / bc1) / (sqrtf(v / bc2) + eps));
    }
    return SAEC_OK;
}
