/* Charts on an RGB canvas: pixels, clipped lines (Liang–Barsky, then Bresenham), 5×7 text, and
   the panel that lays out a chart: title, y label, tick labels, plot area, legend. */
#include "plot.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plot_font.h"
#include "png.h"
#include "saec/saec.h"

struct plot_canvas {
    int width, height;
    uint8_t *rgb; /* [height, width, 3] */
};

enum { MAX_CANVAS_SIDE = 1 << 14, MAX_TICKS = 16 };
static const plot_rgb GRID = {230, 230, 230};
static const plot_rgb LEGEND_BOX = {190, 190, 190};

plot_rgb plot_palette(int i) {
    /* Matplotlib's tab10 with its grey swapped for teal: grey belongs to reference lines. */
    static const plot_rgb colours[PLOT_PALETTE_SIZE] = {
        {31, 119, 180}, {255, 127, 14},  {44, 160, 44}, {214, 39, 40},  {148, 103, 189},
        {140, 86, 75},  {227, 119, 194}, {0, 128, 128}, {188, 189, 34}, {23, 190, 207}};
    i %= PLOT_PALETTE_SIZE;
    return colours[i < 0 ? i + PLOT_PALETTE_SIZE : i];
}

plot_canvas *plot_canvas_new(int width, int height) {
    if (width < 1 || height < 1 || width > MAX_CANVAS_SIDE || height > MAX_CANVAS_SIDE) {
        saec_fail(SAEC_ERR_OTHER, NULL, "internal: plot canvas size %dx%d", width, height);
        return NULL;
    }
    plot_canvas *c = malloc(sizeof *c);
    uint8_t *rgb = malloc((size_t)width * (size_t)height * 3);
    if (!c || !rgb) {
        free(c), free(rgb);
        saec_fail(SAEC_ERR_OTHER, NULL, "out of memory for a %dx%d plot", width, height);
        return NULL;
    }
    memset(rgb, 255, (size_t)width * (size_t)height * 3);
    c->width = width, c->height = height, c->rgb = rgb;
    return c;
}

void plot_canvas_free(plot_canvas *c) {
    if (!c) return;
    free(c->rgb);
    free(c);
}

int plot_canvas_width(const plot_canvas *c) { return c->width; }
int plot_canvas_height(const plot_canvas *c) { return c->height; }
const uint8_t *plot_canvas_pixels(const plot_canvas *c) { return c->rgb; }

int plot_canvas_write(const plot_canvas *c, const char *path) {
    return saec_png_write_rgb(path, c->rgb, c->width, c->height);
}

static void set_pixel(plot_canvas *c, int x, int y, plot_rgb colour) {
    if (x < 0 || y < 0 || x >= c->width || y >= c->height) return;
    uint8_t *p = c->rgb + ((size_t)y * (size_t)c->width + (size_t)x) * 3;
    p[0] = colour.r, p[1] = colour.g, p[2] = colour.b;
}

/* An inclusive pixel rectangle that drawing stays inside. */
typedef struct {
    int x0, y0, x1, y1;
} rect;

/* Liang–Barsky: cut the segment to `r`; 0 when nothing of it is inside. */
static int clip_segment(rect r, double *ax, double *ay, double *bx, double *by) {
    const double dx = *bx - *ax, dy = *by - *ay;
    const double p[4] = {-dx, dx, -dy, dy};
    const double q[4] = {*ax - r.x0, r.x1 - *ax, *ay - r.y0, r.y1 - *ay};
    double t0 = 0, t1 = 1;
    for (int k = 0; k < 4; k++) {
        if (p[k] == 0) {
            if (q[k] < 0) return 0; /* parallel to this edge and outside it */
            continue;
        }
        const double t = q[k] / p[k];
        if (p[k] < 0) {
            if (t > t1) return 0;
            if (t > t0) t0 = t;
        } else {
            if (t < t0) return 0;
            if (t < t1) t1 = t;
        }
    }
    const double x0 = *ax, y0 = *ay;
    *ax = x0 + t0 * dx, *ay = y0 + t0 * dy;
    *bx = x0 + t1 * dx, *by = y0 + t1 * dy;
    return 1;
}

static int clamp_int(long v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : (int)v; }

/* A segment clipped to `r`; a dashed line keeps its pattern's phase across segments. */
static void draw_segment(plot_canvas *c, rect r, double ax, double ay, double bx, double by,
                         plot_rgb colour, int dashed, int *phase) {
    if (!isfinite(ax) || !isfinite(ay) || !isfinite(bx) || !isfinite(by)) return;
    if (!clip_segment(r, &ax, &ay, &bx, &by)) return;
    /* The clipped ends lie in r up to rounding; the clamp keeps every pixel in it. */
    int x = clamp_int(lround(ax), r.x0, r.x1), y = clamp_int(lround(ay), r.y0, r.y1);
    const int xe = clamp_int(lround(bx), r.x0, r.x1), ye = clamp_int(lround(by), r.y0, r.y1);
    const int dx = abs(xe - x), dy = -abs(ye - y), sx = x < xe ? 1 : -1, sy = y < ye ? 1 : -1;
    int err = dx + dy;
    for (;;) {
        if (!dashed || *phase % 7 < 4) set_pixel(c, x, y, colour);
        (*phase)++;
        if (x == xe && y == ye) break;
        const int e2 = 2 * err;
        if (e2 >= dy) err += dy, x += sx;
        if (e2 <= dx) err += dx, y += sy;
    }
}

static rect canvas_rect(const plot_canvas *c) { return (rect){0, 0, c->width - 1, c->height - 1}; }

void plot_line(plot_canvas *c, double x0, double y0, double x1, double y1, plot_rgb colour,
               int dashed) {
    int phase = 0;
    draw_segment(c, canvas_rect(c), x0, y0, x1, y1, colour, dashed, &phase);
}

int plot_text_width(const char *text) {
    const int n = (int)strlen(text);
    return n ? n * PLOT_TEXT_ADVANCE - 1 : 0;
}

void plot_text(plot_canvas *c, int x, int y, const char *text, plot_rgb colour) {
    for (const unsigned char *s = (const unsigned char *)text; *s; s++, x += PLOT_TEXT_ADVANCE) {
        const plot_glyph_row *glyph = plot_font_glyph(*s);
        for (int row = 0; row < PLOT_FONT_H; row++)
            for (int col = 0; col < PLOT_FONT_W; col++)
                if (glyph[row][col] == '#') set_pixel(c, x + col, y + row, colour);
    }
}

/* ---- axes ---------------------------------------------------------------------------------- */

typedef struct {
    double pos[MAX_TICKS]; /* on the axis (log10 of the value on a log axis) */
    char label[MAX_TICKS][24];
    int n;
} ticks;

static void add_tick(ticks *t, double pos, double value) {
    if (t->n >= MAX_TICKS) return;
    t->pos[t->n] = pos;
    snprintf(t->label[t->n], sizeof t->label[0], "%.6g", value + 0.0); /* + 0.0: no "-0" */
    t->n++;
}

/* A round step (1, 2 or 5 × 10^k) giving about five ticks over `span`. */
static double nice_step(double span) {
    const double raw = span / 5, mag = pow(10, floor(log10(raw))), norm = raw / mag;
    return (norm < 1.5 ? 1 : norm < 3 ? 2 : norm < 7 ? 5 : 10) * mag;
}

/* Ticks at multiples of a round step in [lo, hi]; on a log axis (lo, hi in decades) their values
   are 10^lo..10^hi and their positions the logarithms. */
static void linear_ticks(double lo, double hi, int log_axis, ticks *t) {
    const double vlo = log_axis ? pow(10, lo) : lo, vhi = log_axis ? pow(10, hi) : hi;
    const double step = nice_step(vhi - vlo), slack = step * 1e-9;
    for (double i = ceil((vlo - slack) / step); t->n < MAX_TICKS; i++) {
        const double v = i * step; /* a multiple, not a running sum: no drift, exact 0 */
        if (v > vhi + slack) break;
        if (log_axis && v <= 0) continue;
        add_tick(t, log_axis ? log10(v) : v, v);
    }
}

static void make_ticks(double lo, double hi, int log_axis, ticks *t) {
    t->n = 0;
    const double first = ceil(lo - 1e-9), last = floor(hi + 1e-9);
    if (!log_axis || last - first < 1) { /* under two decades shown: round values */
        linear_ticks(lo, hi, log_axis, t);
        return;
    }
    if (last - first < 3) { /* two or three decades: 1, 2 and 5 of each */
        static const double mantissa[3] = {1, 2, 5};
        for (double d = floor(lo); d <= last; d++)
            for (int m = 0; m < 3; m++) {
                const double pos = d + log10(mantissa[m]);
                if (pos >= lo - 1e-9 && pos <= hi + 1e-9)
                    add_tick(t, pos, mantissa[m] * pow(10, d));
            }
        return;
    }
    const double stride = ceil((last - first + 1) / 6);
    for (double d = first; d <= last; d += stride)
        add_tick(t, d, pow(10, d));
}

int plot_frame_map(const plot_frame *f, double x, double y, double *px, double *py) {
    if (!isfinite(x) || !isfinite(y) || (f->log_y && !(y > 0))) return 0;
    const double yv = f->log_y ? log10(y) : y;
    *px = f->x0 + (x - f->x_min) / (f->x_max - f->x_min) * (f->x1 - f->x0);
    *py = f->y1 - (yv - f->y_min) / (f->y_max - f->y_min) * (f->y1 - f->y0);
    return 1;
}

/* The data range of the series (plottable points only), widened where it is empty or flat. */
static void data_range(const plot_chart *chart, const plot_series *series, int n_series,
                       plot_frame *f) {
    double x_min = INFINITY, x_max = -INFINITY, y_min = INFINITY, y_max = -INFINITY;
    for (int s = 0; s < n_series; s++)
        for (int64_t i = 0; i < series[s].n; i++) {
            const double x = series[s].x[i], y = series[s].y[i];
            if (!isfinite(x) || !isfinite(y) || (chart->log_y && !(y > 0))) continue;
            const double yv = chart->log_y ? log10(y) : y;
            x_min = fmin(x_min, x), x_max = fmax(x_max, x);
            y_min = fmin(y_min, yv), y_max = fmax(y_max, yv);
        }
    if (x_min > x_max) x_min = 0, x_max = 1, y_min = 0, y_max = 1; /* nothing to draw */
    if (x_min == x_max) x_min -= 0.5, x_max += 0.5;
    const int fixed = isfinite(chart->y_min) && isfinite(chart->y_max) &&
                      chart->y_min < chart->y_max && (!chart->log_y || chart->y_min > 0);
    if (fixed) {
        y_min = chart->log_y ? log10(chart->y_min) : chart->y_min;
        y_max = chart->log_y ? log10(chart->y_max) : chart->y_max;
    } else if (y_min == y_max) {
        const double pad = chart->log_y ? 0.5 : (y_min != 0 ? fabs(y_min) * 0.1 : 0.5);
        y_min -= pad, y_max += pad;
    } else {
        const double pad = (y_max - y_min) * 0.05;
        y_min -= pad, y_max += pad;
    }
    f->x_min = x_min, f->x_max = x_max, f->y_min = y_min, f->y_max = y_max;
    f->log_y = chart->log_y;
}

/* ---- legend -------------------------------------------------------------------------------- */

enum { LEGEND_ROW = 11, LEGEND_SWATCH = 14, LEGEND_PAD = 4 };

void plot_legend(plot_canvas *c, int x, int y, const plot_series *series, int n, int draw, int *w,
                 int *h) {
    int named = 0, text_w = 0;
    for (int s = 0; s < n; s++)
        if (series[s].name) {
            named++;
            const int tw = plot_text_width(series[s].name);
            if (tw > text_w) text_w = tw;
        }
    const int width = named ? 3 * LEGEND_PAD + LEGEND_SWATCH + text_w + 2 : 0;
    const int height = named ? 2 * LEGEND_PAD + named * LEGEND_ROW : 0;
    if (w) *w = width;
    if (h) *h = height;
    if (!draw || !named) return;
    const int x1 = x + width - 1, y1 = y + height - 1;
    plot_line(c, x, y, x1, y, LEGEND_BOX, 0), plot_line(c, x, y1, x1, y1, LEGEND_BOX, 0);
    plot_line(c, x, y, x, y1, LEGEND_BOX, 0), plot_line(c, x1, y, x1, y1, LEGEND_BOX, 0);
    int row_y = y + LEGEND_PAD;
    for (int s = 0; s < n; s++) {
        if (!series[s].name) continue;
        const int sx = x + LEGEND_PAD + 1, mid = row_y + LEGEND_ROW / 2;
        plot_line(c, sx, mid, sx + LEGEND_SWATCH - 1, mid, series[s].colour, series[s].dashed);
        plot_line(c, sx, mid - 1, sx + LEGEND_SWATCH - 1, mid - 1, series[s].colour,
                  series[s].dashed); /* two pixels high: the colour reads at a glance */
        plot_text(c, sx + LEGEND_SWATCH + LEGEND_PAD, mid - PLOT_TEXT_H / 2, series[s].name,
                  PLOT_BLACK);
        row_y += LEGEND_ROW;
    }
}

/* ---- the panel ----------------------------------------------------------------------------- */

enum { PAD = 6, TICK = 4 };

/* One series, as a polyline through its drawable points, clipped to the plot area; a drawable
   point between two gaps is a 3×3 dot, so that it shows. */
static void draw_series(plot_canvas *c, const plot_frame *f, const plot_series *s) {
    const rect area = {f->x0, f->y0, f->x1, f->y1};
    int phase = 0, have_prev = 0;
    double prev_x = 0, prev_y = 0;
    for (int64_t i = 0; i < s->n; i++) {
        double px, py;
        if (!plot_frame_map(f, s->x[i], s->y[i], &px, &py)) {
            have_prev = 0;
            continue;
        }
        if (have_prev) {
            draw_segment(c, area, prev_x, prev_y, px, py, s->colour, s->dashed, &phase);
        } else {
            double nx, ny;
            const int next = i + 1 < s->n && plot_frame_map(f, s->x[i + 1], s->y[i + 1], &nx, &ny);
            if (!next)
                for (int d = -1; d <= 1; d++)
                    draw_segment(c, area, px - 1, py + d, px + 1, py + d, s->colour, 0, &phase);
        }
        prev_x = px, prev_y = py, have_prev = 1;
    }
}

int plot_panel(plot_canvas *c, int x, int y, int w, int h, const plot_chart *chart,
               const plot_series *series, int n_series, plot_frame *frame) {
    plot_frame f;
    data_range(chart, series, n_series, &f);
    ticks xt, yt;
    make_ticks(f.x_min, f.x_max, 0, &xt);
    make_ticks(f.y_min, f.y_max, f.log_y, &yt);
    int ylab_w = 0, xlab_half = 0, legend_w = 0;
    for (int i = 0; i < yt.n; i++)
        if (plot_text_width(yt.label[i]) > ylab_w) ylab_w = plot_text_width(yt.label[i]);
    for (int i = 0; i < xt.n; i++)
        if (plot_text_width(xt.label[i]) / 2 > xlab_half)
            xlab_half = plot_text_width(xt.label[i]) / 2;
    if (chart->legend) plot_legend(c, 0, 0, series, n_series, 0, &legend_w, NULL);

    /* Top to bottom: title, y label, plot area, tick labels, x label; the box around the plot
       area is one pixel outside it. */
    int top = y + PAD;
    const int title_y = top;
    if (chart->title) top += PLOT_TEXT_H + 6;
    const int ylabel_y = top;
    if (chart->y_label) top += PLOT_TEXT_H + 4;
    f.y0 = top + PLOT_TEXT_H / 2 + 1; /* room for the top tick's label */
    f.y1 = y + h - 1 - PAD - (chart->x_label ? PLOT_TEXT_H + 4 : 0) - (TICK + 3 + PLOT_TEXT_H) - 1;
    f.x0 = x + PAD + ylab_w + 3 + TICK + 1;
    f.x1 = x + w - 1 - PAD - (legend_w ? legend_w + 8 : 0) - (xlab_half > 2 ? xlab_half : 2);
    f.legend_x0 = f.x1 + 10, f.legend_y0 = f.y0;
    f.legend_x1 = legend_w ? f.legend_x0 + legend_w - 1 : f.legend_x0 - 1;
    f.legend_y1 = f.y0; /* set below */
    if (f.x1 - f.x0 < 10 || f.y1 - f.y0 < 10)
        return saec_fail(SAEC_ERR_OTHER, NULL,
                         "internal: a %dx%d panel has no room for the chart '%s'", w, h,
                         chart->title ? chart->title : "");

    if (chart->title)
        plot_text(c, x + (w - plot_text_width(chart->title)) / 2, title_y, chart->title,
                  PLOT_BLACK);
    if (chart->y_label) plot_text(c, x + PAD, ylabel_y, chart->y_label, PLOT_BLACK);
    if (chart->x_label)
        plot_text(c, f.x0 + (f.x1 - f.x0 - plot_text_width(chart->x_label)) / 2,
                  f.y1 + 2 + TICK + 3 + PLOT_TEXT_H + 4, chart->x_label, PLOT_BLACK);
    for (int i = 0; i < yt.n; i++) {
        double px, py;
        plot_frame_map(&f, f.x_min, f.log_y ? pow(10, yt.pos[i]) : yt.pos[i], &px, &py);
        const int ty = (int)lround(py);
        plot_line(c, f.x0, ty, f.x1, ty, GRID, 0);
        plot_line(c, f.x0 - 1 - TICK, ty, f.x0 - 2, ty, PLOT_BLACK, 0);
        plot_text(c, f.x0 - 1 - TICK - 3 - plot_text_width(yt.label[i]), ty - PLOT_TEXT_H / 2,
                  yt.label[i], PLOT_BLACK);
    }
    for (int i = 0; i < xt.n; i++) {
        double px, py;
        plot_frame_map(&f, xt.pos[i], f.log_y ? pow(10, f.y_min) : f.y_min, &px, &py);
        const int tx = (int)lround(px);
        plot_line(c, tx, f.y0, tx, f.y1, GRID, 0);
        plot_line(c, tx, f.y1 + 2, tx, f.y1 + 1 + TICK, PLOT_BLACK, 0);
        plot_text(c, tx - plot_text_width(xt.label[i]) / 2, f.y1 + 2 + TICK + 2, xt.label[i],
                  PLOT_BLACK);
    }
    plot_line(c, f.x0 - 1, f.y0 - 1, f.x1 + 1, f.y0 - 1, PLOT_BLACK, 0);
    plot_line(c, f.x0 - 1, f.y1 + 1, f.x1 + 1, f.y1 + 1, PLOT_BLACK, 0);
    plot_line(c, f.x0 - 1, f.y0 - 1, f.x0 - 1, f.y1 + 1, PLOT_BLACK, 0);
    plot_line(c, f.x1 + 1, f.y0 - 1, f.x1 + 1, f.y1 + 1, PLOT_BLACK, 0);
    for (int s = 0; s < n_series; s++)
        draw_series(c, &f, &series[s]);
    if (legend_w) {
        int legend_h = 0;
        plot_legend(c, f.legend_x0, f.legend_y0, series, n_series, 1, NULL, &legend_h);
        f.legend_y1 = f.legend_y0 + legend_h - 1;
    }
    if (frame) *frame = f;
    return SAEC_OK;
}
