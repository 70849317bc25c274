/* Line charts drawn into an RGB canvas and written as PNG (png.h): a title, axes with numeric
   tick labels, several series (polylines clipped to the plot area, NaN points leaving gaps), an
   optional log-scale y axis and a legend. Several charts can share one canvas (small multiples).
   Nothing depends on time or memory addresses: the same calls give the same bytes. */
#ifndef SAEC_PLOT_H
#define SAEC_PLOT_H

#include <stdint.h>

typedef struct {
    uint8_t r, g, b;
} plot_rgb;

#define PLOT_WHITE ((plot_rgb){255, 255, 255})
#define PLOT_BLACK ((plot_rgb){0, 0, 0})
#define PLOT_GREY ((plot_rgb){128, 128, 128})
enum { PLOT_PALETTE_SIZE = 10 };
/* The series colours, in order (i modulo PLOT_PALETTE_SIZE); none of them is grey or black. */
plot_rgb plot_palette(int i);

/* Text: 5×7 glyphs (plot_font.h) advancing 6 pixels. */
enum { PLOT_TEXT_H = 7, PLOT_TEXT_ADVANCE = 6 };

typedef struct plot_canvas plot_canvas;

/* A white canvas of width × height pixels; NULL (after saec_fail) on a bad size or no memory. */
plot_canvas *plot_canvas_new(int width, int height);
void plot_canvas_free(plot_canvas *c);
int plot_canvas_width(const plot_canvas *c);
int plot_canvas_height(const plot_canvas *c);
/* The pixels, [height, width, 3] RGB bytes. */
const uint8_t *plot_canvas_pixels(const plot_canvas *c);
/* Written atomically (no partial file under `path`). */
int plot_canvas_write(const plot_canvas *c, const char *path);

/* A 1-pixel line between pixel centres, clipped to the canvas; dashed: 4 on, 3 off. */
void plot_line(plot_canvas *c, double x0, double y0, double x1, double y1, plot_rgb colour,
               int dashed);
/* `text` with its top-left corner at (x, y); characters outside ASCII 32..126 draw as '?'. */
void plot_text(plot_canvas *c, int x, int y, const char *text, plot_rgb colour);
int plot_text_width(const char *text);

typedef struct {
    const char *name;    /* its legend entry; NULL: none */
    const double *x, *y; /* [n]; a point with a non-finite coordinate (or y <= 0 on a log axis)
                            is not drawn, and breaks the line there */
    int64_t n;
    plot_rgb colour;
    int dashed;
} plot_series;

typedef struct {
    const char *title, *x_label, *y_label; /* each may be NULL */
    int log_y;
    double y_min, y_max; /* the y range when finite, y_min < y_max (and y_min > 0 on a
                            log axis); else the data's */
    int legend;          /* a legend of the named series right of the plot area */
} plot_chart;

/* Where a chart landed: its plot area (inclusive pixel bounds; every series pixel lies in it),
   the data range that spans it, and the legend's box (x1 < x0 when there is none). */
typedef struct {
    int x0, y0, x1, y1;
    double x_min, x_max, y_min, y_max; /* log_y: y_min and y_max are log10 of the values */
    int log_y;
    int legend_x0, legend_y0, legend_x1, legend_y1;
} plot_frame;

/* Draw `chart` with series [n_series] in the rectangle at (x, y) of w × h pixels; the frame, when
   not NULL, says where. Fails (SAEC_ERR_OTHER) when the rectangle has no room for a plot area. */
int plot_panel(plot_canvas *c, int x, int y, int w, int h, const plot_chart *chart,
               const plot_series *series, int n_series, plot_frame *frame);
/* The pixel position (px, py) of data point (x, y) in `frame`; 0 when it is not drawable. */
int plot_frame_map(const plot_frame *frame, double x, double y, double *px, double *py);
/* A boxed legend of the named series [n] with its top-left at (x, y); *w and *h (may be NULL)
   get its size, 0 × 0 when no series is named. draw 0: only measure. */
void plot_legend(plot_canvas *c, int x, int y, const plot_series *series, int n, int draw, int *w,
                 int *h);

#endif
