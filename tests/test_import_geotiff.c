/* `saec import geotiff` (host/data/eo_geotiff.c): small GeoTIFFs written with GDAL itself into a
 * temporary folder, imported with eo_import_geotiff, read back with eo_h5_reader.
 *   - bigearthnet: pixels are the file's top-left 40×40 (41×41 cropped); labels mapped 43 → 19;
 *     ISO week and UTC hour from both date styles (and across a UTC offset); the centre's
 *     latitude/longitude against gdaltransform's; the split from train/val/test.csv;
 *     band_mean/band_std over the train tiles;
 *   - eurosat: the 8th band dropped, 40×40 kept exactly, other sizes resampled to 40×40;
 *     classes = class folders in byte order, single-label ids, no metadata;
 *   - every bad-tile kind reported by file name and counted in the summary; --on-error stop
 *     fails on the first one and leaves no output file;
 *   - the calendar helpers (ISO week at year boundaries) and the 43 → 19 table directly.
 */
#include <cpl_conv.h>
#include <dirent.h>
#include <gdal.h>
#include <math.h>
#include <ogr_srs_api.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "corine.h"
#include "eo_acq_time.h"
#include "eo_geotiff.h"
#include "eo_h5.h"

enum { SIDE = 40, NPIX = SIDE * SIDE };

static char root[256];

static void mkdir_p(const char *rel) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", root, rel);
    for (char *p = path + strlen(root) + 1; *p; p++)
        if (*p == '/') {
            *p = '\0';
            mkdir(path, 0777);
            *p = '/';
        }
    mkdir(path, 0777);
}

static void write_text(const char *rel, const char *text) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", root, rel);
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
}

/* The pixel value a test tile holds at band b, row y, column x (distinct per tile `seed`). */
static uint16_t pixel(int seed, int b, int y, int x) {
    return (uint16_t)(1000 * seed + 100 * b + 2 * y + 3 * x);
}

/* A w×h GeoTIFF of `bands` bands of `type` at root/rel: pixel(seed, ...) values; georeferenced in
   UTM zone `epsg` with its centre at (cx, cy) and 30 m pixels, or not (epsg 0). */
static void write_tif(const char *rel, int w, int h, int bands, GDALDataType type, int seed,
                      int epsg, double cx, double cy) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", root, rel);
    GDALDriverH drv = GDALGetDriverByName("GTiff");
    GDALDatasetH ds = GDALCreate(drv, path, w, h, bands, type, NULL);
    if (!ds) {
        fprintf(stderr, "cannot create the test tile %s\n", path);
        exit(1);
    }
    if (epsg) {
        const double gt[6] = {cx - 15.0 * w, 30.0, 0, cy + 15.0 * h, 0, -30.0};
        GDALSetGeoTransform(ds, (double *)gt);
        OGRSpatialReferenceH srs = OSRNewSpatialReference(NULL);
        OSRImportFromEPSG(srs, epsg);
        char *wkt = NULL;
        OSRExportToWkt(srs, &wkt);
        GDALSetProjection(ds, wkt);
        CPLFree(wkt);
        OSRDestroySpatialReference(srs);
    }
    uint16_t *buf = malloc(sizeof *buf * (size_t)(w * h));
    for (int b = 0; b < bands; b++) {
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                buf[y * w + x] = pixel(seed, b, y, x);
        if (GDALRasterIO(GDALGetRasterBand(ds, b + 1), GF_Write, 0, 0, w, h, buf, w, h, GDT_UInt16,
                         0, 0) != CE_None) {
            fprintf(stderr, "cannot write the test tile %s\n", path);
            exit(1);
        }
    }
    free(buf);
    GDALClose(ds);
}

static void write_ben_json(const char *rel, const char *labels, const char *date) {
    char text[1024];
    snprintf(text, sizeof text,
             "{\"labels\": [%s], \"coordinates\": {\"ulx\": 0}, \"projection\": \"ignored\", "
             "\"acquisition_date\": \"%s\"}",
             labels, date);
    write_text(rel, text);
}

/* Entries of `dir` whose name starts with `prefix` (the output and any temporary beside it). */
static int count_prefixed(const char *dir, const char *prefix) {
    DIR *d = opendir(dir);
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d)) != NULL;)
        n += !strncmp(e->d_name, prefix, strlen(prefix));
    if (d) closedir(d);
    return n;
}

static int file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

/* Imports root/sub into root/out_name, the log captured into log_text; interrupt may be NULL. */
static int run_import(eo_layout layout, eo_on_error on_error, const char *sub, const char *out_name,
                      volatile sig_atomic_t *interrupt, eo_import_summary *sum, char *log_text,
                      size_t log_size) {
    char in_dir[512], out[512];
    snprintf(in_dir, sizeof in_dir, "%s/%s", root, sub);
    snprintf(out, sizeof out, "%s/%s", root, out_name);
    FILE *log = tmpfile();
    eo_import_options opt = {.layout = layout,
                             .in_dir = in_dir,
                             .out_path = out,
                             .on_error = on_error,
                             .log = log,
                             .interrupt = interrupt};
    const int rc = eo_import_geotiff(&opt, sum);
    rewind(log);
    const size_t n = fread(log_text, 1, log_size - 1, log);
    log_text[n] = '\0';
    fclose(log);
    return rc;
}

/* A successful import (--on-error skip) of root/sub, opened with the EO reader; NULL (after a
   failed check) when either fails. */
static eo_h5_reader *import_and_open(eo_layout layout, const char *sub, const char *out_name,
                                     eo_import_summary *sum, char *log, size_t log_size) {
    const int rc = run_import(layout, EO_ON_ERROR_SKIP, sub, out_name, NULL, sum, log, log_size);
    CHECK(rc == SAEC_OK, "import of %s failed: %s\n%s", sub, saec_error_message(), log);
    char out[512];
    snprintf(out, sizeof out, "%s/%s", root, out_name);
    eo_h5_reader *r = NULL;
    if (rc == SAEC_OK) CHECK(eo_h5_reader_open(out, &r) == SAEC_OK, "cannot read %s back", out);
    return r;
}

static void check_calendar(void) {
    set_ctx("calendar");
    float week, hour;
    CHECK(eo_parse_acquisition("2017-06-13 10:10:32", &week, &hour) == 0);
    CHECK(week == 24 && fabsf(hour - (10 + 10 / 60.f + 32 / 3600.f)) < 1e-5f, "week %g hour %g",
          week, hour);
    CHECK(eo_parse_acquisition("2017-06-13T10:10:32Z", &week, &hour) == 0 && week == 24);
    /* 2018-01-01 00:30 at +01:00 is 2017-12-31 23:30 UTC: a Sunday, ISO week 52 of 2017. */
    CHECK(eo_parse_acquisition("2018-01-01T00:30:00+01:00", &week, &hour) == 0);
    CHECK(week == 52 && fabsf(hour - 23.5f) < 1e-5f, "week %g hour %g", week, hour);
    /* ISO weeks at year boundaries (Python's date.isocalendar()): 2021-01-03 is week 53 of
       2020, 2019-12-30 week 1 of 2020, 2015-12-31 week 53, 2016-01-04 week 1. */
    CHECK(eo_iso_week(2021, 1, 3) == 53);
    CHECK(eo_iso_week(2019, 12, 30) == 1);
    CHECK(eo_iso_week(2015, 12, 31) == 53);
    CHECK(eo_iso_week(2016, 1, 4) == 1);
    CHECK(eo_iso_week(2017, 1, 1) == 52);
    static const char *const bad[] = {"2017-13-01 10:00:00",
                                      "2017-02-29 10:00:00",
                                      "2017-06-13 24:00:00",
                                      "2017-06-13",
                                      "13/06/2017 10:00",
                                      "2017-06-13 10:10:32 junk",
                                      ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK(eo_parse_acquisition(bad[i], &week, &hour) != 0, "'%s' accepted", bad[i]);
    CHECK(eo_parse_acquisition("2016-02-29 10:00:00", &week, &hour) == 0, "leap day refused");

    set_ctx("43 -> 19");
    CHECK(corine_to_ben19("Continuous urban fabric") == 0);
    CHECK(corine_to_ben19("Discontinuous urban fabric") == 0);
    CHECK(corine_to_ben19("Annual crops associated with permanent crops") == 3);
    CHECK(corine_to_ben19("Sparsely vegetated areas") == 11);
    CHECK(corine_to_ben19("Sclerophyllous vegetation") == 12);
    CHECK(corine_to_ben19("Salines") == 16);
    CHECK(corine_to_ben19("Sea and ocean") == 18);
    CHECK(corine_to_ben19("Airports") == CORINE_DROPPED);
    CHECK(corine_to_ben19("Burnt areas") == CORINE_DROPPED);
    CHECK(corine_to_ben19("Marine waters") == 18, "a 19-class name is accepted as itself");
    CHECK(corine_to_ben19("sea and ocean") == CORINE_UNKNOWN);
    CHECK(!strcmp(ben19_name(18), "Marine waters") && strlen(ben19_name(6)) < EO_H5_NAME_MAX);
}

/* The good BigEarthNet tiles: A (train), B (val) in UTM 33N, C (test) in UTM 32N, D (train);
   E is listed in no split file. */
static void write_ben_good(void) {
    mkdir_p("ben/S2A_tile1");
    mkdir_p("ben/S2B_tile2");
    write_tif("ben/S2A_tile1/A.tif", 41, 41, 7, GDT_UInt16, 1, 32633, 440000, 5500000);
    write_ben_json("ben/S2A_tile1/A.json",
                   "\"Continuous urban fabric\", \"Sea and ocean\", \"Airports\"",
                   "2017-06-13 10:10:32");
    write_tif("ben/S2A_tile1/B.tif", 41, 41, 7, GDT_UInt16, 2, 32633, 440000, 5500000);
    write_ben_json("ben/S2A_tile1/B.json", "\"Mixed forest\"", "2018-01-01T00:30:00+01:00");
    write_tif("ben/S2B_tile2/C.tif", 41, 41, 7, GDT_UInt16, 3, 32632, 600000, 5000000);
    write_ben_json("ben/S2B_tile2/C.json", "\"Salines\", \"Peatbogs\"", "2017-08-01T12:00:00Z");
    write_tif("ben/S2B_tile2/D.tif", 41, 41, 7, GDT_UInt16, 4, 32633, 440000, 5500000);
    write_ben_json("ben/S2B_tile2/D.json", "\"Pastures\"", "2017-06-13 10:10:32");
    write_tif("ben/S2B_tile2/E.tif", 41, 41, 7, GDT_UInt16, 4, 32633, 440000, 5500000);
    write_ben_json("ben/S2B_tile2/E.json", "\"Pastures\"", "2017-06-13 10:10:32");
    write_text("ben/train.csv", "A,S1_A\nD,S1_D\n");
    write_text("ben/val.csv", "B\r\n");
    write_text("ben/test.csv", "C\nnot_present\n");
}

static int check_bigearthnet(void) {
    char log[8192];
    eo_import_summary sum;
    set_ctx("bigearthnet import");
    eo_h5_reader *r =
        import_and_open(EO_LAYOUT_BIGEARTHNET, "ben", "ben.h5", &sum, log, sizeof log);
    if (!r) return 1;
    CHECK(sum.imported == 4 && sum.skipped == 1 && sum.bad[EO_BAD_NOT_IN_SPLIT] == 1 &&
              sum.per_split[0] == 2 && sum.per_split[1] == 1 && sum.per_split[2] == 1,
          "summary %lld imported, %lld skipped\n%s", (long long)sum.imported,
          (long long)sum.skipped, log);

    CHECK(strstr(log, "S2B_tile2/E.tif: not in a split file") != NULL, "log:\n%s", log);

    const eo_h5_info *info = eo_h5_reader_info(r);
    CHECK(info->n == 4 && info->bands == 7 && info->height == SIDE && info->width == SIDE);
    CHECK(info->pixels_uint16 && info->has_metadata && info->multi_label && info->has_split);
    CHECK(info->n_classes == 19 && !strcmp(info->class_names[0], "Urban fabric"));
    static float img[4 * 7 * NPIX], meta[4 * 4];
    uint8_t labels[4 * 19], split[4];
    REQUIRE(eo_h5_read(r, 0, 4, img, meta, labels, split) == SAEC_OK);

    set_ctx("bigearthnet pixels (the 41x41 tile's top-left 40x40)");
    int bad = 0;
    for (int t = 0; t < 4; t++)
        for (int b = 0; b < 7; b++)
            for (int y = 0; y < SIDE; y++)
                for (int x = 0; x < SIDE; x++)
                    bad += img[((t * 7 + b) * SIDE + y) * SIDE + x] != pixel(t + 1, b, y, x);
    CHECK(bad == 0, "%d pixels differ", bad);

    set_ctx("bigearthnet labels 43 -> 19");
    /* A: urban fabric (0) and sea (18); Airports has no 19-class counterpart. B: mixed forest
       (10). C: salines → coastal wetlands (16), peatbogs → inland wetlands (15). */
    uint8_t want[4][19] = {{0}};
    want[3][4] = 1;
    want[0][0] = want[0][18] = 1;
    want[1][10] = 1;
    want[2][16] = want[2][15] = 1;
    CHECK(memcmp(labels, want, sizeof want) == 0);
    CHECK(split[0] == EO_SPLIT_TRAIN && split[1] == EO_SPLIT_VAL && split[2] == EO_SPLIT_TEST &&
          split[3] == EO_SPLIT_TRAIN);

    set_ctx("bigearthnet metadata");
    /* Tile centres (440000, 5500000) in EPSG:32633 and (600000, 5000000) in EPSG:32632,
       reprojected with GDAL 3.6.2's `gdaltransform -s_srs EPSG:326xx -t_srs EPSG:4326
       -output_xy`: lon 14.168816846216 lat 49.6495595851453, and lon 10.2720329603102 lat
       45.1463928761717. */
    const double want_meta[4][4] = {
        {24, 10 + 10 / 60.0 + 32 / 3600.0, 49.6495595851453, 14.168816846216},
        {52, 23.5, 49.6495595851453, 14.168816846216},
        {31, 12, 45.1463928761717, 10.2720329603102},
        {24, 10 + 10 / 60.0 + 32 / 3600.0, 49.6495595851453, 14.168816846216},
    };
    CHECK_CLOSE("metadata [4, 4]", meta, &want_meta[0][0], NULL, 16, 1e-5, 1e-6);

    set_ctx("bigearthnet band statistics (train tiles A and D)");
    CHECK(info->has_band_stats);
    for (int b = 0; b < 7 && info->has_band_stats; b++) {
        double s = 0, s2 = 0;
        for (int t = 0; t < 4; t += 3) /* A and D */
            for (int i = 0; i < NPIX; i++) {
                const double v = img[(t * 7 + b) * NPIX + i];
                s += v;
                s2 += v * v;
            }
        const double mean = s / (2 * NPIX), std = sqrt(s2 / (2 * NPIX) - mean * mean);
        CHECK(fabs(info->band_mean[b] - mean) < 1e-3 && fabs(info->band_std[b] - std) < 1e-3,
              "band %d: mean %g std %g, want %g %g", b, info->band_mean[b], info->band_std[b], mean,
              std);
    }
    eo_h5_reader_close(r);
    return 0;
}

/* One bad tile of each kind, each beside the good ones; a folder "ben_bad". */
static void write_ben_bad(void) {
    static const char *const good_json = "\"Pastures\"";
    mkdir_p("ben_bad/z");
    write_tif("ben_bad/good.tif", 41, 41, 7, GDT_UInt16, 5, 32633, 440000, 5500000);
    write_ben_json("ben_bad/good.json", good_json, "2017-06-13 10:10:32");
    write_tif("ben_bad/bands.tif", 41, 41, 5, GDT_UInt16, 5, 32633, 440000, 5500000);
    write_ben_json("ben_bad/bands.json", good_json, "2017-06-13 10:10:32");
    write_tif("ben_bad/size.tif", 40, 41, 7, GDT_UInt16, 5, 32633, 440000, 5500000);
    write_ben_json("ben_bad/size.json", good_json, "2017-06-13 10:10:32");
    write_tif("ben_bad/float.tif", 41, 41, 7, GDT_Float32, 5, 32633, 440000, 5500000);
    write_ben_json("ben_bad/float.json", good_json, "2017-06-13 10:10:32");
    write_tif("ben_bad/nogeo.tif", 41, 41, 7, GDT_UInt16, 5, 0, 0, 0);
    write_ben_json("ben_bad/nogeo.json", good_json, "2017-06-13 10:10:32");
    write_text("ben_bad/garbage.tif", "this is not a TIFF file");
    write_ben_json("ben_bad/garbage.json", good_json, "2017-06-13 10:10:32");
    write_tif("ben_bad/nojson.tif", 41, 41, 7, GDT_UInt16, 5, 32633, 440000, 5500000);
    write_tif("ben_bad/badjson.tif", 41, 41, 7, GDT_UInt16, 5, 32633, 440000, 5500000);
    write_text("ben_bad/badjson.json", "{\"labels\": [\"Pastures\"");
    write_tif("ben_bad/label.tif", 41, 41, 7, GDT_UInt16, 5, 32633, 440000, 5500000);
    write_ben_json("ben_bad/label.json", "\"Pastures\", \"Lava fields\"", "2017-06-13 10:10:32");
    write_tif("ben_bad/z/date.tif", 41, 41, 7, GDT_UInt16, 5, 32633, 440000, 5500000);
    write_ben_json("ben_bad/z/date.json", good_json, "2017-02-30 10:10:32");
}

static int check_bad_tiles(void) {
    char out[512], log[16384];
    snprintf(out, sizeof out, "%s/ben_bad.h5", root);
    eo_import_summary sum;
    int rc = run_import(EO_LAYOUT_BIGEARTHNET, EO_ON_ERROR_SKIP, "ben_bad", "ben_bad.h5", NULL,
                        &sum, log, sizeof log);
    set_ctx("bad tiles, --on-error skip");
    CHECK(rc == SAEC_OK, "import failed: %s\n%s", saec_error_message(), log);
    saec_error_clear();
    CHECK(sum.files == 10 && sum.imported == 1 && sum.skipped == 9,
          "%lld files %lld imported "
          "%lld skipped",
          (long long)sum.files, (long long)sum.imported, (long long)sum.skipped);
    static const struct {
        const char *file;
        eo_bad_kind kind;
    } cases[] = {
        {"bands.tif", EO_BAD_BAND_COUNT},   {"size.tif", EO_BAD_SIZE},
        {"float.tif", EO_BAD_DATA_TYPE},    {"nogeo.tif", EO_BAD_NO_GEOREF},
        {"garbage.tif", EO_BAD_UNREADABLE}, {"nojson.tif", EO_BAD_MISSING_JSON},
        {"badjson.tif", EO_BAD_JSON},       {"label.tif", EO_BAD_LABEL},
        {"z/date.tif", EO_BAD_DATE},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char line[600];
        snprintf(line, sizeof line, "skipped %s/ben_bad/%s: %s", root, cases[i].file,
                 eo_bad_kind_name(cases[i].kind));
        CHECK(strstr(log, line) != NULL, "no line '%s' in the log:\n%s", line, log);
        CHECK(sum.bad[cases[i].kind] == 1, "%s: %lld counted", eo_bad_kind_name(cases[i].kind),
              (long long)sum.bad[cases[i].kind]);
    }
    CHECK(strstr(log, "Lava fields") && strstr(log, "2017-02-30"), "the log names the bad value");
    CHECK(strstr(log, "saec: imported 1 tiles (train ") != NULL, "no summary:\n%s", log);
    CHECK(strstr(log, "skipped 9: 1 unreadable, 1 wrong band count, 1 wrong size, 1 wrong data "
                      "type, 1 no georeferencing, 1 missing JSON, 1 bad JSON, 1 unknown label, 1 "
                      "bad date") != NULL,
          "summary counts wrong:\n%s", log);
    /* The first bad tile in byte order is "badjson.tif" */
    unlink(out);
    rc = run_import(EO_LAYOUT_BIGEARTHNET, EO_ON_ERROR_STOP, "ben_bad", "ben_bad.h5", NULL, &sum,
                    log, sizeof log);
    set_ctx("bad tiles, --on-error stop");
    CHECK(rc == SAEC_ERR_DATA, "rc %d", rc);
    CHECK(strstr(saec_error_message(), "badjson.tif") && strstr(saec_error_message(), "bad JSON"),
          "the error does not name the first bad file: %s", saec_error_message());
    saec_error_clear();
    CHECK(!file_exists(out), "an output file was left behind");
    CHECK(count_prefixed(root, "ben_bad.h5") == 0, "a temporary output file was left behind");
    return 0;
}

/* EuroSAT: classes "River" and "Forest" (sorted: Forest, River); a 40×40 tile kept exactly, a
   20×20 constant tile resampled to 40×40 constant, a 7-band tile and a loose file skipped. */
static int check_eurosat(void) {
    mkdir_p("euro/River");
    mkdir_p("euro/Forest/sub");
    write_tif("euro/River/r1.tif", 40, 40, 8, GDT_UInt16, 7, 32633, 440000, 5500000);
    write_tif("euro/Forest/sub/f1.tif", 64, 64, 8, GDT_UInt16, 8, 0, 0, 0);
    write_tif("euro/Forest/f7.tif", 40, 40, 7, GDT_UInt16, 9, 0, 0, 0);
    write_tif("euro/loose.tif", 40, 40, 8, GDT_UInt16, 9, 0, 0, 0);
    write_text("euro/Forest/readme.txt", "not a tile");
    char log[8192];
    eo_import_summary sum;
    set_ctx("eurosat import");
    eo_h5_reader *r = import_and_open(EO_LAYOUT_EUROSAT, "euro", "euro.h5", &sum, log, sizeof log);
    if (!r) return 1;
    CHECK(sum.files == 4 && sum.imported == 2 && sum.bad[EO_BAD_BAND_COUNT] == 1 &&
              sum.bad[EO_BAD_NO_CLASS] == 1,
          "summary:\n%s", log);
    CHECK(strstr(log, "f7.tif: wrong band count: 7 bands, want 8") != NULL, "log:\n%s", log);

    const eo_h5_info *info = eo_h5_reader_info(r);
    CHECK(info->n == 2 && info->bands == 7 && info->height == SIDE && info->width == SIDE);
    CHECK(!info->multi_label && info->n_classes == 2 && !strcmp(info->class_names[0], "Forest") &&
          !strcmp(info->class_names[1], "River"));
    static float img[2 * 7 * NPIX], meta[2 * 4];
    uint8_t labels[2 * 2];
    REQUIRE(eo_h5_read(r, 0, 2, img, meta, labels, NULL) == SAEC_OK);
    /* Byte order: Forest/f7.tif (bad), Forest/sub/f1.tif, River/r1.tif. */
    CHECK(labels[0] == 1 && labels[1] == 0 && labels[2] == 0 && labels[3] == 1);
    int nan_meta = 0;
    for (int i = 0; i < 8; i++)
        nan_meta += isnan(meta[i]);
    CHECK(nan_meta == 8, "eurosat metadata is not all missing");

    set_ctx("eurosat pixels");
    /* r1 (40×40): exactly the file's first 7 bands. */
    int bad = 0;
    for (int b = 0; b < 7; b++)
        for (int y = 0; y < SIDE; y++)
            for (int x = 0; x < SIDE; x++)
                bad += img[((7 + b) * SIDE + y) * SIDE + x] != pixel(7, b, y, x);
    CHECK(bad == 0, "%d pixels of the 40x40 tile differ", bad);
    /* f1 (64×64 ramps 2y + 3x resampled to 40×40): each band keeps its offset 1000·8 + 100·b,
       so band 7 (offset 700 above band 0) would show; the ramp stays monotonic in x and y and
       spans about the same range (0 .. 3·63 in x). */
    int mono = 0, offset_bad = 0;
    for (int b = 0; b < 7; b++) {
        const float *p = img + (size_t)b * NPIX;
        const float base = 8000 + 100 * b;
        offset_bad += p[0] < base || p[0] > base + 10 || p[NPIX - 1] > base + 2 * 63 + 3 * 63 ||
                      p[NPIX - 1] < base + 2 * 63 + 3 * 63 - 10;
        for (int y = 0; y < SIDE; y++)
            for (int x = 1; x < SIDE; x++)
                mono += p[y * SIDE + x] <= p[y * SIDE + x - 1];
    }
    CHECK(offset_bad == 0 && mono == 0,
          "resampled tile: %d bands off range, %d non-increasing "
          "steps",
          offset_bad, mono);
    /* Bilinear reproduces a linear ramp inside the tile: output pixel x's centre falls at source
       coordinate 1.6·x + 0.3 (64/40 scale, pixel centres), so pixel (20, 20) holds
       base + 5·32.3 = base + 161.5, rounded to 161 or 162; nearest neighbour would give 160. */
    for (int b = 0; b < 7; b++) {
        const float got = img[(size_t)b * NPIX + 20 * SIDE + 20] - (8000 + 100 * b);
        CHECK(got == 161 || got == 162,
              "band %d pixel (20, 20): %g above the band's base, want 161.5 rounded (bilinear)", b,
              got);
    }
    eo_h5_reader_close(r);
    return 0;
}

static int check_failures(void) {
    set_ctx("failures");
    char log[4096];
    eo_import_summary sum;
    mkdir_p("empty");
    int rc = run_import(EO_LAYOUT_BIGEARTHNET, EO_ON_ERROR_SKIP, "empty", "none.h5", NULL, &sum,
                        log, sizeof log);
    CHECK(rc == SAEC_ERR_DATA && strstr(saec_error_message(), "no tile imported"), "rc %d: %s", rc,
          saec_error_message());
    saec_error_clear();
    rc = run_import(EO_LAYOUT_BIGEARTHNET, EO_ON_ERROR_SKIP, "empty/missing", "none.h5", NULL, &sum,
                    log, sizeof log);
    CHECK(rc == SAEC_ERR_DATA && strstr(saec_error_message(), "is not a folder"), "rc %d: %s", rc,
          saec_error_message());
    saec_error_clear();
    /* An interrupt before the first tile: no output. */
    volatile sig_atomic_t stop = 2;
    rc = run_import(EO_LAYOUT_BIGEARTHNET, EO_ON_ERROR_SKIP, "ben", "none.h5", &stop, &sum, log,
                    sizeof log);
    CHECK(rc != SAEC_OK && strstr(saec_error_message(), "interrupted"), "rc %d", rc);
    saec_error_clear();
    CHECK(count_prefixed(root, "none.h5") == 0, "an output or temporary file was left behind");
    return 0;
}

int main(void) {
    snprintf(root, sizeof root, "%s/saec_import_XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(root)) {
        perror("mkdtemp");
        return 1;
    }
    GDALAllRegister();
    check_calendar();
    write_ben_good();
    check_bigearthnet();
    write_ben_bad();
    check_bad_tiles();
    check_eurosat();
    check_failures();
    if (!n_failures) {
        char cmd[400];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
        if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", root);
    } else {
        fprintf(stderr, "test files kept in %s\n", root);
    }
    return check_summary("test_import_geotiff");
}
