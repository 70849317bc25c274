/* Line charts (host/io/plot.c) and a MoE-MAE run's figures (host/train/moe_mae_plots.c): pixels
   that a chart must and must not set (a series where its line passes, nowhere outside the plot
   area, cut at the area's edge, a gap at NaN), the PNG read back chunk by chunk (signature,
   IHDR, CRCs, the IDAT stream inflated by zlib against the canvas, and smaller than the raw
   scanlines), the same bytes from the
   same input, and loss.png / expert_load.png from small run directories, bad lines named. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "check.h"
#include "fsutil.h"
#include "moe_mae_plots.h"
#include "plot.h"
#include "plot_font.h"
#include "saec/saec.h"

/* The test works inside a fresh temporary directory (its current directory), so that the run's
   files have plain names and the run directory is ".". */
static char tmpdir[256];

static int same_rgb(const uint8_t *p, plot_rgb c) {
    return p[0] == c.r && p[1] == c.g && p[2] == c.b;
}

static int pixel_is(const plot_canvas *c, int x, int y, plot_rgb colour) {
    if (x < 0 || y < 0 || x >= plot_canvas_width(c) || y >= plot_canvas_height(c)) return 0;
    return same_rgb(plot_canvas_pixels(c) + ((size_t)y * plot_canvas_width(c) + x) * 3, colour);
}

/* `colour` within `r` pixels of (x, y). */
static int colour_near(const plot_canvas *c, double x, double y, int r, plot_rgb colour) {
    const int cx = (int)lround(x), cy = (int)lround(y);
    for (int dy = -r; dy <= r; dy++)
        for (int dx = -r; dx <= r; dx++)
            if (pixel_is(c, cx + dx, cy + dy, colour)) return 1;
    return 0;
}

/* Pixels of `colour` in columns [xa, xb] and rows [ya, yb], optionally only those outside the
   frame's plot area and legend. */
static int count_colour(const plot_canvas *c, int xa, int xb, int ya, int yb, plot_rgb colour,
                        const plot_frame *outside_of) {
    int n = 0;
    for (int y = ya; y <= yb; y++)
        for (int x = xa; x <= xb; x++) {
            if (!pixel_is(c, x, y, colour)) continue;
            if (outside_of) {
                const plot_frame *f = outside_of;
                if (x >= f->x0 && x <= f->x1 && y >= f->y0 && y <= f->y1) continue;
                if (x >= f->legend_x0 && x <= f->legend_x1 && y >= f->legend_y0 &&
                    y <= f->legend_y1)
                    continue;
            }
            n++;
        }
    return n;
}

/* ---- the font ------------------------------------------------------------------------------ */

static void test_font(void) {
    set_ctx("font");
    int well_formed = 1, distinct = 1;
    for (int ch = PLOT_FONT_FIRST; ch <= PLOT_FONT_LAST; ch++) {
        const plot_glyph_row *g = plot_font_glyph(ch);
        for (int r = 0; r < PLOT_FONT_H; r++)
            well_formed &= strlen(g[r]) == PLOT_FONT_W && strspn(g[r], ".#") == PLOT_FONT_W;
        for (int other = PLOT_FONT_FIRST; other < ch; other++)
            if (!memcmp(g, plot_font_glyph(other), sizeof(plot_glyph_row) * PLOT_FONT_H))
                distinct = 0, fprintf(stderr, "glyphs '%c' and '%c' are the same\n", ch, other);
    }
    CHECK(well_formed, "a glyph row is not 5 of '.' and '#'");
    CHECK(distinct);
    CHECK(plot_font_glyph(200) == plot_font_glyph('?'));
    CHECK(plot_font_glyph('\n') == plot_font_glyph('?'));
    /* '1' is one vertical stroke through the middle column, with a base. */
    CHECK(!strcmp(plot_font_glyph('1')[3], "..#.."));
    CHECK(plot_text_width("abc") == 17 && plot_text_width("") == 0);
}

/* ---- a chart with known data --------------------------------------------------------------- */

/* A: the diagonal y = x over x 0..4 on a y range fixed at [0, 2] (it leaves through the top at
   x = 2); B: y 1.5 over x 0..1, a NaN at x = 2, y 0.5 over x 3..4; R: a dashed grey line at
   y = 1. */
static const double XS[5] = {0, 1, 2, 3, 4};
static const double A_Y[5] = {0, 1, 2, 3, 4};
static const double B_Y[5] = {1.5, 1.5, NAN, 0.5, 0.5};
static const double R_X[2] = {0, 4}, R_Y[2] = {1, 1};

static plot_canvas *draw_known_chart(plot_frame *f) {
    plot_canvas *c = plot_canvas_new(420, 300);
    if (!c) return NULL;
    const plot_series series[3] = {
        {"diagonal", XS, A_Y, 5, plot_palette(0), 0},
        {"gap at 2", XS, B_Y, 5, plot_palette(1), 0},
        {"reference", R_X, R_Y, 2, PLOT_GREY, 1},
    };
    const plot_chart chart = {"known data", "x", "y", 0, 0, 2, 1};
    OK(plot_panel(c, 10, 5, 400, 290, &chart, series, 3, f));
    return c;
}

static void test_known_chart(void) {
    set_ctx("known chart");
    plot_frame f;
    plot_canvas *c = draw_known_chart(&f);
    if (!c) {
        CHECK(0, "no canvas");
        return;
    }
    const plot_rgb a = plot_palette(0), b = plot_palette(1);
    const int w = plot_canvas_width(c), h = plot_canvas_height(c);
    CHECK(f.x0 > 10 && f.x1 < 410 && f.y0 > 5 && f.y1 < 295 && f.x1 - f.x0 > 200,
          "plot area %d..%d x %d..%d", f.x0, f.x1, f.y0, f.y1);
    CHECK(f.legend_x0 > f.x1 && f.legend_x1 < 410 && f.legend_y1 > f.legend_y0,
          "legend box %d..%d x %d..%d", f.legend_x0, f.legend_x1, f.legend_y0, f.legend_y1);
    CHECK(f.x_min == 0 && f.x_max == 4 && f.y_min == 0 && f.y_max == 2);

    /* Where the lines must pass. */
    double px, py;
    for (double x = 0; x <= 2; x += 0.25) {
        CHECK(plot_frame_map(&f, x, x, &px, &py));
        CHECK(colour_near(c, px, py, 1, a), "the diagonal misses (%g, %g)", x, x);
    }
    for (double x = 0; x <= 1; x += 0.25) {
        plot_frame_map(&f, x, 1.5, &px, &py);
        CHECK(colour_near(c, px, py, 1, b), "B misses (%g, 1.5)", x);
        plot_frame_map(&f, x + 3, 0.5, &px, &py);
        CHECK(colour_near(c, px, py, 1, b), "B misses (%g, 0.5)", x + 3);
    }
    /* The corners of the plot area are the ends of the range. */
    plot_frame_map(&f, 0, 0, &px, &py);
    CHECK(px == f.x0 && py == f.y1);
    plot_frame_map(&f, 4, 2, &px, &py);
    CHECK(px == f.x1 && py == f.y0);

    /* Nowhere outside the plot area (the legend's swatches aside). */
    CHECK(count_colour(c, 0, w - 1, 0, h - 1, a, &f) == 0, "A drawn outside the plot area");
    CHECK(count_colour(c, 0, w - 1, 0, h - 1, b, &f) == 0, "B drawn outside the plot area");
    CHECK(count_colour(c, 0, w - 1, 0, h - 1, PLOT_GREY, &f) == 0);
    /* Clipped: A reaches the top edge at x = 2 and has no pixel right of it. */
    plot_frame_map(&f, 2, 2, &px, &py);
    CHECK(count_colour(c, (int)px - 1, (int)px + 1, f.y0, f.y0, a, NULL) > 0,
          "the diagonal does not reach the top edge");
    CHECK(count_colour(c, (int)px + 2, f.x1, f.y0, f.y1, a, NULL) == 0,
          "the diagonal goes on past the top edge");
    /* The NaN gap: no B between x = 1 and x = 3. */
    double gap_a, gap_b;
    plot_frame_map(&f, 1, 1, &gap_a, &py);
    plot_frame_map(&f, 3, 1, &gap_b, &py);
    CHECK(count_colour(c, (int)gap_a + 2, (int)gap_b - 2, f.y0, f.y1, b, NULL) == 0,
          "B joins its points across the NaN");
    CHECK(count_colour(c, (int)gap_b, f.x1, f.y0, f.y1, b, NULL) > 0);
    /* The reference line is dashed: along y = 1 some pixels are grey and some are not. */
    plot_frame_map(&f, 0, 1, &px, &py);
    const int line_y = (int)lround(py);
    const int grey_on_line = count_colour(c, f.x0, f.x1, line_y, line_y, PLOT_GREY, NULL);
    CHECK(grey_on_line > (f.x1 - f.x0) / 3 && grey_on_line < (f.x1 - f.x0) * 3 / 4,
          "%d grey pixels of %d along the dashed line", grey_on_line, f.x1 - f.x0 + 1);
    /* The legend shows each series' colour; text and axes are black, outside the plot area. */
    CHECK(count_colour(c, f.legend_x0, f.legend_x1, f.legend_y0, f.legend_y1, a, NULL) > 0);
    CHECK(count_colour(c, f.legend_x0, f.legend_x1, f.legend_y0, f.legend_y1, b, NULL) > 0);
    CHECK(count_colour(c, f.legend_x0, f.legend_x1, f.legend_y0, f.legend_y1, PLOT_GREY, NULL) > 0);
    CHECK(count_colour(c, 0, w - 1, 0, f.y0 - 2, PLOT_BLACK, NULL) > 20, "no title");
    CHECK(count_colour(c, 0, f.x0 - 2, f.y0, f.y1, PLOT_BLACK, NULL) > 20, "no y tick labels");
    CHECK(count_colour(c, f.x0, f.x1, f.y1 + 2, h - 1, PLOT_BLACK, NULL) > 20, "no x labels");
    /* The box around the area is black and one pixel outside it. */
    CHECK(pixel_is(c, f.x0 - 1, (f.y0 + f.y1) / 2, PLOT_BLACK));
    CHECK(pixel_is(c, (f.x0 + f.x1) / 2, f.y1 + 1, PLOT_BLACK));
    plot_canvas_free(c);

    /* A rectangle too small for a chart is refused, not drawn half. */
    set_ctx("small panel");
    plot_canvas *small = plot_canvas_new(40, 30);
    const plot_chart chart = {"t", "x", "y", 0, NAN, NAN, 0};
    const plot_series s = {NULL, XS, A_Y, 5, plot_palette(0), 0};
    REJECTED(plot_panel(small, 0, 0, 40, 30, &chart, &s, 1, NULL));
    plot_canvas_free(small);
}

/* A log axis: decades equally spaced, non-positive values left out. */
static void test_log_axis(void) {
    set_ctx("log axis");
    const double x[5] = {0, 1, 2, 3, 4}, y[5] = {1000, 100, 0, 10, 1};
    const plot_series s = {"decades", x, y, 5, plot_palette(3), 0};
    const plot_chart chart = {"log", NULL, NULL, 1, NAN, NAN, 0};
    plot_canvas *c = plot_canvas_new(300, 240);
    plot_frame f;
    OK(plot_panel(c, 0, 0, 300, 240, &chart, &s, 1, &f));
    CHECK(f.log_y && f.y_min < 0 && f.y_max > 3, "y range %g..%g", f.y_min, f.y_max);
    double p1, p10, p100, p1000, px;
    CHECK(!plot_frame_map(&f, 2, 0, &px, &p1), "0 is drawable on a log axis");
    plot_frame_map(&f, 4, 1, &px, &p1), plot_frame_map(&f, 3, 10, &px, &p10);
    plot_frame_map(&f, 1, 100, &px, &p100), plot_frame_map(&f, 0, 1000, &px, &p1000);
    CHECK(fabs((p1 - p10) - (p100 - p1000)) < 1e-6 && p1 - p10 > 20);
    for (int i = 0; i < 5; i++) {
        double qx, qy;
        if (!plot_frame_map(&f, x[i], y[i], &qx, &qy)) continue;
        CHECK(colour_near(c, qx, qy, 1, plot_palette(3)), "point %d not drawn", i);
    }
    /* The point at y = 0 (x = 2) breaks the line: nothing drawn between x = 1 and x = 3. */
    double xa, xb, yy;
    plot_frame_map(&f, 1.2, 100, &xa, &yy);
    plot_frame_map(&f, 2.8, 100, &xb, &yy);
    CHECK(count_colour(c, (int)xa, (int)xb, f.y0, f.y1, plot_palette(3), NULL) == 0,
          "the line crosses the y = 0 gap");
    plot_canvas_free(c);
}

/* plot_line keeps to the canvas whatever its ends; an isolated point shows as a dot. */
static void test_line_and_dot(void) {
    set_ctx("plot_line");
    plot_canvas *c = plot_canvas_new(50, 40);
    plot_line(c, -1e9, -1e9, 1e9, 1e9, PLOT_BLACK, 0); /* the diagonal, clipped */
    plot_line(c, NAN, 0, 10, 10, plot_palette(2), 0);  /* not drawn */
    plot_line(c, 100, 0, 200, 30, plot_palette(2), 0); /* entirely outside */
    plot_line(c, 0, -5, 49, -5, plot_palette(2), 0);   /* outside, parallel to an edge */
    plot_line(c, 60, 0, 60, 39, plot_palette(2), 0);
    for (int i = 0; i < 40; i++)
        CHECK(pixel_is(c, i, i, PLOT_BLACK), "(%d, %d) not set", i, i);
    CHECK(count_colour(c, 0, 49, 0, 39, PLOT_BLACK, NULL) == 40);
    CHECK(count_colour(c, 0, 49, 0, 39, plot_palette(2), NULL) == 0);
    plot_canvas_free(c);

    set_ctx("isolated point");
    const double x[3] = {0, 1, 2}, y[3] = {NAN, 5, NAN};
    const double x2[2] = {0, 2}, y2[2] = {0, 0}; /* a line clear of the dot */
    const plot_series s[2] = {{NULL, x, y, 3, plot_palette(4), 0},
                              {NULL, x2, y2, 2, plot_palette(5), 0}};
    const plot_chart chart = {NULL, NULL, NULL, 0, NAN, NAN, 0};
    c = plot_canvas_new(200, 150);
    plot_frame f;
    OK(plot_panel(c, 0, 0, 200, 150, &chart, s, 2, &f));
    double px, py;
    plot_frame_map(&f, 1, 5, &px, &py);
    CHECK(count_colour(c, 0, 199, 0, 149, plot_palette(4), NULL) == 9, "not a 3x3 dot");
    CHECK(colour_near(c, px, py, 0, plot_palette(4)));
    plot_canvas_free(c);
}

/* ---- the PNG read back --------------------------------------------------------------------- */

static uint32_t crc32_of(const uint8_t *p, size_t n) {
    uint32_t crc = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        crc ^= p[i];
        for (int k = 0; k < 8; k++)
            crc = crc & 1 ? 0xedb88320u ^ (crc >> 1) : crc >> 1;
    }
    return crc ^ 0xffffffffu;
}

static uint32_t be32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Check the PNG's chunks and inflate its IDAT stream into rgb [h, w, 3] (malloc'd). */
static int read_png(const char *path, int *w, int *h, uint8_t **rgb) {
    char *file;
    size_t len;
    *rgb = NULL;
    REQUIRE(saec_read_file(path, &file, &len) == SAEC_OK, "cannot read %s", path);
    const uint8_t *p = (const uint8_t *)file;
    static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    int ok = len > 8 && !memcmp(p, sig, 8);
    CHECK(ok, "%s: no PNG signature", path);
    uint8_t *z = malloc(len + 1); /* the IDAT data, concatenated */
    size_t zn = 0, at = 8;
    int chunks = 0, seen_end = 0;
    while (ok && at + 12 <= len && !seen_end) {
        const uint32_t n = be32(p + at);
        if (at + 12 + n > len) {
            CHECK(0, "%s: chunk %d runs past the end", path, chunks);
            ok = 0;
            break;
        }
        const uint8_t *type = p + at + 4, *data = p + at + 8;
        CHECK(crc32_of(type, n + 4) == be32(data + n), "%s: chunk %.4s: bad CRC", path,
              (const char *)type);
        if (chunks == 0) {
            ok = !memcmp(type, "IHDR", 4) && n == 13;
            CHECK(ok, "%s: the first chunk is not a 13-byte IHDR", path);
            *w = (int)be32(data), *h = (int)be32(data + 4);
            CHECK(data[8] == 8 && data[9] == 2 && data[10] == 0 && data[11] == 0 && data[12] == 0,
                  "not 8-bit RGB");
        } else if (!memcmp(type, "IDAT", 4)) {
            memcpy(z + zn, data, n), zn += n;
        } else if (!memcmp(type, "IEND", 4)) {
            seen_end = 1;
        }
        at += 12 + n, chunks++;
    }
    CHECK(seen_end && at == len, "%s: no IEND at the end", path);
    ok = ok && seen_end;
    /* the zlib stream, inflated by zlib itself (it checks the Adler-32) */
    const size_t row = (size_t)*w * 3 + 1, raw_n = row * (size_t)*h;
    uint8_t *raw = ok ? malloc(raw_n + 1) : NULL;
    uLongf rn = (uLongf)raw_n + 1;
    if (ok) {
        const int zrc = uncompress(raw, &rn, z, (uLong)zn);
        CHECK(zrc == Z_OK, "%s: the IDAT stream does not inflate (zlib %d)", path, zrc);
        ok = zrc == Z_OK;
    }
    if (ok) {
        CHECK(rn == raw_n, "%s: %lu bytes inflated, %zu expected", path, (unsigned long)rn, raw_n);
        CHECK(zn < raw_n / 4, "%s: %zu compressed bytes for %zu raw: not deflated", path, zn, raw_n);
        *rgb = malloc((size_t)*w * (size_t)*h * 3 + 1);
        for (int y = 0; y < *h; y++) {
            CHECK(raw[y * row] == 0, "row %d: filter %d", y, raw[y * row]);
            memcpy(*rgb + (size_t)y * *w * 3, raw + y * row + 1, row - 1);
        }
    }
    free(raw), free(z), free(file);
    return ok && *rgb ? 0 : 1;
}

static int files_equal(const char *a, const char *b) {
    char *x, *y;
    size_t nx, ny;
    if (saec_read_file(a, &x, &nx) != SAEC_OK) return 0;
    if (saec_read_file(b, &y, &ny) != SAEC_OK) {
        free(x);
        return 0;
    }
    const int same = nx == ny && !memcmp(x, y, nx);
    free(x), free(y);
    return same;
}

static void test_png_round_trip(void) {
    set_ctx("PNG");
    plot_frame f;
    plot_canvas *c = draw_known_chart(&f);
    if (!c) return;
    OK(plot_canvas_write(c, "known.png"));
    int w = 0, h = 0;
    uint8_t *rgb;
    if (read_png("known.png", &w, &h, &rgb) == 0) {
        CHECK(w == 420 && h == 300, "IHDR says %dx%d", w, h);
        CHECK(!memcmp(rgb, plot_canvas_pixels(c), (size_t)w * h * 3),
              "the decoded pixels differ from the canvas");
        free(rgb);
    }
    /* Determinism: the same chart drawn again on a new canvas gives the same bytes. */
    plot_canvas *again = draw_known_chart(&f);
    OK(plot_canvas_write(again, "known2.png"));
    CHECK(files_equal("known.png", "known2.png"), "two writes differ");
    plot_canvas_free(again);
    plot_canvas_free(c);
}

/* ---- a MoE-MAE run directory --------------------------------------------------------------- */

static void write_text(const char *name, const char *text) {
    FILE *f = fopen(name, "w");
    if (!f) return;
    fputs(text, f);
    fclose(f);
}

/* The SPEC §7 blocks: 15 encoder blocks of 3, 4 and 5 experts, 2 decoder blocks of 3. */
static const int BLOCK_EXPERTS[17] = {3, 3, 3, 3, 3, 4, 4, 4, 4, 4, 5, 5, 5, 5, 5, 3, 3};

static void write_run(int steps) {
    FILE *m = fopen("metrics.jsonl", "w");
    FILE *l = fopen("expert_load.jsonl", "w");
    if (!m || !l) {
        CHECK(0, "cannot write the run's files");
        if (m) fclose(m);
        if (l) fclose(l);
        return;
    }
    for (int s = 1; s <= steps; s++) {
        const double loss = 2.0 * exp(-0.1 * s);
        /* the first record has no balance term: its line of the plot starts at step 2 */
        fprintf(m,
                "{\"step\": %d, \"tokens\": %d, \"loss\": %.6g, \"masked\": %.6g, "
                "\"visible\": %.6g%s",
                s * 10, s * 1280, loss, loss * 0.8, loss * 0.5, s == 1 ? "}\n" : "");
        if (s > 1) fprintf(m, ", \"balance\": %.6g}\n", 0.02 + 0.001 * s);
        fprintf(l, "{\"step\": %d, \"blocks\": [", s * 10);
        for (int b = 0; b < 17; b++) {
            const int e = BLOCK_EXPERTS[b];
            fprintf(l, "%s[", b ? ", " : "");
            /* expert 0's share shrinks towards 1/E; the others split the rest unevenly */
            const double first = 1.0 / e + (0.5 - 1.0 / e) * exp(-0.2 * s);
            for (int k = 0; k < e; k++) /* expert k > 0 gets a share of the rest ∝ k */
                fprintf(l, "%s%.6f", k ? ", " : "",
                        k == 0 ? first : (1 - first) * k / (e * (e - 1) / 2.0));
            fputs("]", l);
        }
        fputs("]}\n", l);
    }
    fclose(m), fclose(l);
}

/* The run's plots must fail with SAEC_ERR_DATA, the message naming `file` and `line` ("line N"). */
static void expect_data_error(const char *what, const char *file, const char *line) {
    set_ctx("%s", what);
    const int rc = moe_mae_write_plots(".");
    CHECK(rc == SAEC_ERR_DATA, "returned %d, expected SAEC_ERR_DATA", rc);
    CHECK(strstr(saec_error_message(), file) != NULL, "the message does not name %s: %s", file,
          saec_error_message());
    if (line)
        CHECK(strstr(saec_error_message(), line) != NULL, "the message does not say '%s': %s", line,
              saec_error_message());
    saec_error_clear();
}

static int count_rgb(const uint8_t *rgb, int w, int h, plot_rgb colour) {
    int n = 0;
    for (size_t i = 0; i < (size_t)w * h; i++)
        n += same_rgb(rgb + i * 3, colour);
    return n;
}

static void test_run_plots(void) {
    set_ctx("run plots");
    write_run(30);
    OK(moe_mae_write_plots("."));
    int w, h;
    uint8_t *rgb;
    if (read_png("loss.png", &w, &h, &rgb) == 0) {
        CHECK(w == 800 && h == 480, "loss.png is %dx%d", w, h);
        for (int k = 0; k < 4; k++) /* loss, masked, visible, balance */
            CHECK(count_rgb(rgb, w, h, plot_palette(k)) > 30, "loss.png: no series %d", k);
        free(rgb);
    }
    if (read_png("expert_load.png", &w, &h, &rgb) == 0) {
        /* 17 panels and the legend: 6 columns, 3 rows of 240 × 190, a 24-pixel title. */
        CHECK(w == 6 * 240 && h == 24 + 3 * 190, "expert_load.png is %dx%d", w, h);
        for (int e = 0; e < 5; e++)
            CHECK(count_rgb(rgb, w, h, plot_palette(e)) > 100, "expert_load.png: no expert %d", e);
        CHECK(count_rgb(rgb, w, h, plot_palette(5)) == 0, "a sixth expert's colour");
        CHECK(count_rgb(rgb, w, h, PLOT_GREY) > 17 * 50, "the 1/E lines are missing");
        free(rgb);
    }
    /* The same records give the same bytes. */
    rename("loss.png", "loss_first.png");
    rename("expert_load.png", "expert_load_first.png");
    OK(moe_mae_write_plots("."));
    CHECK(files_equal("loss.png", "loss_first.png"));
    CHECK(files_equal("expert_load.png", "expert_load_first.png"));

    /* Bad records, each named by its file and line (blank lines count, and are skipped). */
    static const struct {
        const char *what, *metrics, *load, *file, *says; /* metrics, load NULL: a good file */
    } bad[] = {
        {"metrics: cut-short line",
         "{\"step\": 1, \"loss\": 1.0}\n\n{\"step\": 2, \"loss\": 0.9}\n{\"step\": 3, \"loss\": "
         "0.8\n",
         NULL, "metrics.jsonl", "line 4"},
        {"metrics: text after the object", "{\"step\": 1, \"loss\": 1.0} \r\n{\"step\": 2} x\n",
         NULL, "metrics.jsonl", "line 2"},
        {"metrics: not an object", "{\"step\": 1, \"loss\": 1.0}\n[1, 2]\n", NULL, "metrics.jsonl",
         "line 2"},
        {"metrics: no step", "{\"step\": 1, \"loss\": 1.0}\n{\"loss\": 0.5}\n", NULL,
         "metrics.jsonl", "line 2"},
        {"metrics: a string loss", "{\"step\": 1, \"loss\": \"low\"}\n", NULL, "metrics.jsonl",
         "line 1"},
        {"metrics: no loss keys", "{\"step\": 1, \"nmse\": 0.1}\n", NULL, "metrics.jsonl",
         "none of the keys"},
        {"metrics: no records", "\n", NULL, "metrics.jsonl", "no records"},
        {"load: sum", NULL,
         "{\"step\": 1, \"blocks\": [[0.5, 0.5], [0.2, 0.8]]}\n"
         "{\"step\": 2, \"blocks\": [[0.5, 0.5], [0.2, 0.7]]}\n",
         "expert_load.jsonl", "line 2"},
        {"load: expert count changes", NULL,
         "{\"step\": 1, \"blocks\": [[0.5, 0.5], [0.2, 0.8]]}\n"
         "{\"step\": 2, \"blocks\": [[0.5, 0.5], [0.2, 0.4, 0.4]]}\n",
         "expert_load.jsonl", "line 2"},
        {"load: block count changes", NULL,
         "{\"step\": 1, \"blocks\": [[0.5, 0.5]]}\n"
         "{\"step\": 2, \"blocks\": [[0.5, 0.5], [0.5, 0.5]]}\n",
         "expert_load.jsonl", "line 2"},
        {"load: out of [0, 1]", NULL, "{\"step\": 1, \"blocks\": [[1.5, -0.5]]}\n",
         "expert_load.jsonl", "line 1"},
        {"load: no blocks", NULL, "{\"step\": 1, \"blocks\": []}\n", "expert_load.jsonl", "line 1"},
        {"load: garbage", NULL, "{\"step\": 1, \"blocks\": [[0.5, 0.5]]}\ngarbage\n",
         "expert_load.jsonl", "line 2"},
    };
    const char *good_metrics = "{\"step\": 1, \"loss\": 1.0}\n{\"step\": 2, \"loss\": 0.5}\n";
    const char *good_load = "{\"step\": 1, \"blocks\": [[0.5, 0.5], [0.2, 0.8]]}\n"
                            "{\"step\": 2, \"blocks\": [[0.25, 0.75], [0.5, 0.5]]}\n";
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        write_text("metrics.jsonl", bad[i].metrics ? bad[i].metrics : good_metrics);
        write_text("expert_load.jsonl", bad[i].load ? bad[i].load : good_load);
        unlink("expert_load.png");
        expect_data_error(bad[i].what, bad[i].file, bad[i].says);
        if (bad[i].load) CHECK(!saec_path_exists("expert_load.png"), "a PNG from bad records");
    }
    unlink("metrics.jsonl");
    expect_data_error("metrics: missing", "metrics.jsonl", NULL);

    /* A small valid pair; then without expert_load.jsonl only loss.png is written. */
    set_ctx("run plots: two blocks");
    write_text("metrics.jsonl", good_metrics);
    write_text("expert_load.jsonl", good_load);
    OK(moe_mae_write_plots("."));
    if (read_png("expert_load.png", &w, &h, &rgb) == 0) {
        CHECK(w == 3 * 240 && h == 24 + 190, "2 blocks: expert_load.png is %dx%d", w, h);
        free(rgb);
    }
    set_ctx("run plots: no expert_load.jsonl");
    unlink("expert_load.jsonl");
    unlink("expert_load.png");
    unlink("loss.png");
    OK(moe_mae_write_plots("."));
    CHECK(saec_path_exists("loss.png"));
    CHECK(!saec_path_exists("expert_load.png"));
}

static void remove_tmpdir(void) {
    const char *names[] = {"known.png",      "known2.png",       "loss.png",
                           "loss_first.png", "expert_load.png",  "expert_load_first.png",
                           "metrics.jsonl",  "expert_load.jsonl"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        unlink(names[i]);
    if (chdir("/") == 0) rmdir(tmpdir);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/saec_test_plot_XXXXXX");
    if (!mkdtemp(tmpdir) || chdir(tmpdir) != 0) {
        perror(tmpdir);
        return 1;
    }
    test_font();
    test_known_chart();
    test_log_axis();
    test_line_and_dot();
    test_png_round_trip();
    test_run_plots();
    remove_tmpdir();
    return check_summary("test_plot");
}
