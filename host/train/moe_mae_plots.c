/* loss.png and expert_load.png of a MoE-MAE run: read the JSON-lines records, check them, and
   lay the charts out with plot.h. */
#include "moe_mae_plots.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fsutil.h"
#include "plot.h"
#include "run_dir.h"
#include "saec/saec.h"

static const char METRICS_FILE[] = "metrics.jsonl", LOAD_FILE[] = "expert_load.jsonl";
/* The loss terms plotted, as metrics.jsonl names them. */
static const char *const LOSS_KEYS[] = {"loss", "masked", "visible", "balance"};
enum { N_LOSS_KEYS = sizeof LOSS_KEYS / sizeof LOSS_KEYS[0] };
/* The SPEC §7 model's blocks: 15 encoder blocks, then 2 decoder blocks (panel titles). */
enum { SPEC_ENCODER_BLOCKS = 15, SPEC_BLOCKS = 17 };
enum { MAX_BLOCKS = 256, MAX_EXPERTS = 256 };
/* A fraction may be off by the rounding of the digits it was written with. */
static const double LOAD_SUM_TOLERANCE = 0.01;

/* ---- JSON lines -------------------------------------------------------------------------- */

typedef int (*record_fn)(void *ctx, const char *path, int line, const cJSON *record);

/* Call fn on each line's object, numbering lines from 1; blank lines are skipped. Fails on an
   unreadable file, a line that is not a JSON object, or a file without records. */
static int for_each_record(const char *path, record_fn fn, void *ctx) {
    char *text;
    size_t len;
    SAEC_TRY(saec_read_file(path, &text, &len));
    int rc = SAEC_OK, line = 0, records = 0;
    for (size_t at = 0; at < len && rc == SAEC_OK;) {
        const char *start = text + at;
        const char *nl = memchr(start, '\n', len - at);
        const size_t n = nl ? (size_t)(nl - start) : len - at;
        at += n + 1;
        line++;
        size_t blank = 0;
        while (blank < n && (start[blank] == ' ' || start[blank] == '\t' || start[blank] == '\r'))
            blank++;
        if (blank == n) continue;
        const char *end = start;
        cJSON *record = cJSON_ParseWithLengthOpts(start, n, &end, 0);
        while (record && end < start + n && (*end == ' ' || *end == '\t' || *end == '\r'))
            end++;
        if (!cJSON_IsObject(record) || end != start + n) /* one object, nothing after it */
            rc = saec_fail(SAEC_ERR_DATA, "each line must be one JSON object",
                           "'%s' line %d: not a JSON object", path, line);
        else {
            rc = fn(ctx, path, line, record);
            records++;
        }
        cJSON_Delete(record);
    }
    free(text);
    if (rc == SAEC_OK && records == 0)
        rc = saec_fail(SAEC_ERR_DATA, "plot a run that has logged at least one step",
                       "'%s' has no records", path);
    return rc;
}

/* The record's "step". */
static int record_step(const char *path, int line, const cJSON *record, double *step) {
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(record, "step");
    if (!cJSON_IsNumber(s) || !isfinite(s->valuedouble))
        return saec_fail(SAEC_ERR_DATA, "every record names its step",
                         "'%s' line %d: no numeric \"step\"", path, line);
    *step = s->valuedouble;
    return SAEC_OK;
}

/* Room for `need` rows of `width` doubles in *rows. */
static int reserve_rows(double **rows, int64_t *cap, int64_t need, int64_t width) {
    if (need <= *cap) return SAEC_OK;
    const int64_t grown = *cap ? *cap * 2 : 64;
    double *p = realloc(*rows, (size_t)grown * (size_t)width * sizeof(double));
    if (!p) return saec_fail(SAEC_ERR_OTHER, NULL, "out of memory reading a run's records");
    *rows = p, *cap = grown;
    return SAEC_OK;
}

/* rows [n, width] → columns [width, n]. NULL (after saec_fail) without memory. */
static double *transpose(const double *rows, int64_t n, int64_t width) {
    double *cols = malloc((size_t)(n * width) * sizeof(double) + 1);
    if (!cols) {
        saec_fail(SAEC_ERR_OTHER, NULL, "out of memory drawing a run's plots");
        return NULL;
    }
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < width; j++)
            cols[j * n + i] = rows[i * width + j];
    return cols;
}

/* ---- loss.png ----------------------------------------------------------------------------- */

typedef struct {
    double *rows; /* [cap, 1 + N_LOSS_KEYS]: the step, then each key's value (NaN: absent) */
    int64_t n, cap;
    int seen[N_LOSS_KEYS];
} loss_records;

static int loss_record(void *ctx, const char *path, int line, const cJSON *record) {
    loss_records *lr = ctx;
    SAEC_TRY(reserve_rows(&lr->rows, &lr->cap, lr->n + 1, 1 + N_LOSS_KEYS));
    double *row = lr->rows + lr->n * (1 + N_LOSS_KEYS);
    SAEC_TRY(record_step(path, line, record, &row[0]));
    for (int k = 0; k < N_LOSS_KEYS; k++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(record, LOSS_KEYS[k]);
        row[1 + k] = NAN;
        if (!v || cJSON_IsNull(v)) continue;
        if (!cJSON_IsNumber(v))
            return saec_fail(SAEC_ERR_DATA, "loss terms are numbers",
                             "'%s' line %d: \"%s\" is not a number", path, line, LOSS_KEYS[k]);
        row[1 + k] = v->valuedouble;
        lr->seen[k] = 1;
    }
    lr->n++;
    return SAEC_OK;
}

static int write_loss_png(const char *run_dir) {
    char path[SAEC_RUN_PATH_MAX + 32], out[SAEC_RUN_PATH_MAX + 32];
    saec_path_join(path, sizeof path, run_dir, METRICS_FILE);
    saec_path_join(out, sizeof out, run_dir, "loss.png");
    loss_records lr = {0};
    int rc = for_each_record(path, loss_record, &lr);
    int n_seen = 0;
    for (int k = 0; k < N_LOSS_KEYS; k++)
        n_seen += lr.seen[k];
    if (rc == SAEC_OK && n_seen == 0)
        rc = saec_fail(SAEC_ERR_DATA, "is this a MoE-MAE run?",
                       "'%s' has none of the keys loss, masked, visible, balance", path);
    double *cols = rc == SAEC_OK ? transpose(lr.rows, lr.n, 1 + N_LOSS_KEYS) : NULL;
    plot_canvas *canvas = cols ? plot_canvas_new(800, 480) : NULL;
    if (!canvas) {
        free(lr.rows), free(cols);
        return rc != SAEC_OK ? rc : saec_error_code();
    }
    plot_series series[N_LOSS_KEYS];
    int n_series = 0, log_y = 1;
    for (int k = 0; k < N_LOSS_KEYS; k++) {
        if (!lr.seen[k]) continue;
        const double *y = cols + (1 + k) * lr.n; /* [n] */
        for (int64_t i = 0; i < lr.n; i++)
            if (isfinite(y[i]) && y[i] <= 0) log_y = 0; /* a log axis would drop the point */
        series[n_series++] = (plot_series){LOSS_KEYS[k], cols, y, lr.n, plot_palette(k), 0};
    }
    const plot_chart chart = {
        "MoE-MAE training loss", "step", log_y ? "loss (log scale)" : "loss", log_y, NAN, NAN, 1};
    rc = plot_panel(canvas, 0, 0, 800, 480, &chart, series, n_series, NULL);
    if (rc == SAEC_OK) rc = plot_canvas_write(canvas, out);
    plot_canvas_free(canvas);
    free(lr.rows), free(cols);
    return rc;
}

/* ---- expert_load.png ---------------------------------------------------------------------- */

typedef struct {
    int n_blocks, experts[MAX_BLOCKS], total; /* the first record's shape; total = Σ experts */
    int encoder_blocks;                       /* -1: not given */
    double *rows;                             /* [cap, 1 + total]: the step, then the loads */
    int64_t n, cap;
} load_records;

static int load_record(void *ctx, const char *path, int line, const cJSON *record) {
    load_records *lr = ctx;
    double step = 0;
    SAEC_TRY(record_step(path, line, record, &step));
    const cJSON *blocks = cJSON_GetObjectItemCaseSensitive(record, "blocks");
    const int n_blocks = cJSON_GetArraySize(blocks);
    if (!cJSON_IsArray(blocks) || n_blocks < 1 || n_blocks > MAX_BLOCKS)
        return saec_fail(SAEC_ERR_DATA, "\"blocks\" holds one array of expert loads per block",
                         "'%s' line %d: \"blocks\" is not an array of 1 to %d blocks", path, line,
                         MAX_BLOCKS);
    const int first = lr->n == 0;
    if (first) {
        lr->n_blocks = n_blocks, lr->total = 0;
        const cJSON *enc = cJSON_GetObjectItemCaseSensitive(record, "encoder_blocks");
        lr->encoder_blocks =
            cJSON_IsNumber(enc) && enc->valuedouble >= 0 && enc->valuedouble <= n_blocks
                ? (int)enc->valuedouble
                : -1;
    } else if (n_blocks != lr->n_blocks) {
        return saec_fail(SAEC_ERR_DATA, "every record has the same blocks",
                         "'%s' line %d: %d blocks, earlier lines %d", path, line, n_blocks,
                         lr->n_blocks);
    }
    for (int b = 0; b < n_blocks; b++) {
        const cJSON *loads = cJSON_GetArrayItem(blocks, b);
        const int e = cJSON_GetArraySize(loads);
        if (!cJSON_IsArray(loads) || e < 1 || e > MAX_EXPERTS)
            return saec_fail(SAEC_ERR_DATA, "each block is an array of its experts' loads",
                             "'%s' line %d: block %d is not an array of 1 to %d numbers", path,
                             line, b, MAX_EXPERTS);
        if (first) lr->experts[b] = e, lr->total += e;
        if (e != lr->experts[b])
            return saec_fail(SAEC_ERR_DATA, "every record has the same experts per block",
                             "'%s' line %d: block %d has %d experts, earlier lines %d", path, line,
                             b, e, lr->experts[b]);
    }
    SAEC_TRY(reserve_rows(&lr->rows, &lr->cap, lr->n + 1, 1 + lr->total));
    double *row = lr->rows + lr->n * (1 + lr->total);
    row[0] = step;
    int at = 1;
    for (int b = 0; b < n_blocks; b++) {
        const cJSON *loads = cJSON_GetArrayItem(blocks, b);
        double sum = 0;
        for (int e = 0; e < lr->experts[b]; e++) {
            const cJSON *v = cJSON_GetArrayItem(loads, e);
            if (!cJSON_IsNumber(v) || !(v->valuedouble >= 0 && v->valuedouble <= 1))
                return saec_fail(SAEC_ERR_DATA, "a load is the fraction of routed items, 0 to 1",
                                 "'%s' line %d: block %d expert %d: the load is not a number "
                                 "in [0, 1]",
                                 path, line, b, e);
            row[at++] = v->valuedouble;
            sum += v->valuedouble;
        }
        if (fabs(sum - 1) > LOAD_SUM_TOLERANCE)
            return saec_fail(SAEC_ERR_DATA, "a block's loads are fractions that sum to 1",
                             "'%s' line %d: block %d: the loads sum to %.6g", path, line, b, sum);
    }
    lr->n++;
    return SAEC_OK;
}

static void block_title(const load_records *lr, int b, char *out, size_t size) {
    const int enc = lr->encoder_blocks >= 0       ? lr->encoder_blocks
                    : lr->n_blocks == SPEC_BLOCKS ? SPEC_ENCODER_BLOCKS
                                                  : -1;
    if (enc < 0)
        snprintf(out, size, "block %d (%d experts)", b + 1, lr->experts[b]);
    else if (b < enc)
        snprintf(out, size, "encoder block %d (%d experts)", b + 1, lr->experts[b]);
    else
        snprintf(out, size, "decoder block %d (%d experts)", b - enc + 1, lr->experts[b]);
}

enum { PANEL_W = 240, PANEL_H = 190, TITLE_H = 24, MAX_COLS = 6 };

/* The panels in a grid, one per block, and the legend in the cell after the last panel. */
static int draw_load_panels(plot_canvas *canvas, const load_records *lr, const double *cols,
                            int n_cols) {
    const int64_t n = lr->n;
    const double *steps = cols; /* [n] */
    double step_min = INFINITY, step_max = -INFINITY, y_top = 0;
    for (int64_t i = 0; i < n; i++)
        step_min = fmin(step_min, steps[i]);
    for (int64_t i = 0; i < n; i++)
        step_max = fmax(step_max, steps[i]);
    for (int64_t i = n; i < n * (1 + lr->total); i++)
        y_top = fmax(y_top, cols[i]);
    int max_experts = 0;
    for (int b = 0; b < lr->n_blocks; b++) {
        y_top = fmax(y_top, 1.0 / lr->experts[b]);
        if (lr->experts[b] > max_experts) max_experts = lr->experts[b];
    }
    plot_series series[MAX_EXPERTS + 1];
    char names[MAX_EXPERTS][24];
    const double ref_x[2] = {step_min, step_max};
    int at = 1; /* the block's first column in cols */
    for (int b = 0; b < lr->n_blocks; b++) {
        const int e_count = lr->experts[b];
        /* The 1/E line first, so that the experts' lines are drawn over it. */
        const double ref_y[2] = {1.0 / e_count, 1.0 / e_count};
        series[0] = (plot_series){NULL, ref_x, ref_y, 2, PLOT_GREY, 1};
        for (int e = 0; e < e_count; e++)
            series[1 + e] = (plot_series){NULL, steps, cols + (at + e) * n, n, plot_palette(e), 0};
        char title[64];
        block_title(lr, b, title, sizeof title);
        /* One y range for every panel, so that panels compare at a glance. */
        const plot_chart chart = {title, NULL, NULL, 0, 0, y_top * 1.1, 0};
        SAEC_TRY(plot_panel(canvas, (b % n_cols) * PANEL_W, TITLE_H + (b / n_cols) * PANEL_H,
                            PANEL_W, PANEL_H, &chart, series, e_count + 1, NULL));
        at += e_count;
    }
    for (int e = 0; e < max_experts; e++) {
        snprintf(names[e], sizeof names[e], "expert %d", e);
        series[e] = (plot_series){names[e], NULL, NULL, 0, plot_palette(e), 0};
    }
    series[max_experts] = (plot_series){"uniform 1/E", NULL, NULL, 0, PLOT_GREY, 1};
    const int cell = lr->n_blocks;
    plot_legend(canvas, (cell % n_cols) * PANEL_W + 40, TITLE_H + (cell / n_cols) * PANEL_H + 30,
                series, max_experts + 1, 1, NULL, NULL);
    return SAEC_OK;
}

static int write_load_png(const char *run_dir) {
    char path[SAEC_RUN_PATH_MAX + 32], out[SAEC_RUN_PATH_MAX + 32];
    saec_path_join(path, sizeof path, run_dir, LOAD_FILE);
    saec_path_join(out, sizeof out, run_dir, "expert_load.png");
    if (!saec_path_exists(path)) {
        fprintf(stderr, "note: no %s in %s: expert_load.png not written\n", LOAD_FILE, run_dir);
        return SAEC_OK;
    }
    load_records *lr = calloc(1, sizeof *lr);
    if (!lr) return saec_fail(SAEC_ERR_OTHER, NULL, "out of memory reading '%s'", path);
    int rc = for_each_record(path, load_record, lr);
    double *cols = rc == SAEC_OK ? transpose(lr->rows, lr->n, 1 + lr->total) : NULL;
    const int cells = lr->n_blocks + 1; /* the panels and the legend */
    const int n_cols = cells < MAX_COLS ? cells : MAX_COLS, n_rows = (cells + n_cols - 1) / n_cols;
    plot_canvas *canvas =
        cols ? plot_canvas_new(n_cols * PANEL_W, TITLE_H + n_rows * PANEL_H) : NULL;
    if (canvas) {
        const char *title = "expert load per block: each expert's fraction of the routed items, "
                            "by step";
        plot_text(canvas, (plot_canvas_width(canvas) - plot_text_width(title)) / 2, 8, title,
                  PLOT_BLACK);
        rc = draw_load_panels(canvas, lr, cols, n_cols);
        if (rc == SAEC_OK) rc = plot_canvas_write(canvas, out);
    } else if (rc == SAEC_OK) {
        rc = saec_error_code();
    }
    plot_canvas_free(canvas);
    free(cols), free(lr->rows), free(lr);
    return rc;
}

int moe_mae_write_plots(const char *run_dir) {
    SAEC_TRY(write_loss_png(run_dir));
    return write_load_png(run_dir);
}
