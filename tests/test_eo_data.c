/* The EO data source (host/data/data_eo.c), labelled sets and band statistics (eo_set.c) and the
 * `gen eo` writer (eo_gen.c):
 *   - synthetic: rows are [C·H·W pixels | 4 metadata] of eo_synth_tile, the train stream from
 *     index 0, the eval stream from EO_EVAL_INDEX_BASE; seek/resume exact;
 *   - a file: the train stream visits each train-split tile exactly once per epoch, in a
 *     seed-determined order that changes with the epoch; seek/resume exact, also in a fresh
 *     source; the eval stream is split test (else val, else all) in file order; uint16 pixels
 *     arrive as floats, missing metadata as NaN; band statistics come from the file;
 *   - eo_set on a file (a split, max_tiles, class ids one-hot) and on synthetic data (the split
 *     hash, the eval range);
 *   - eo_band_stats: exact on known values, floored std, streaming = at once;
 *   - eo_gen_write: the tiles, split and train-split statistics it promises; a stop leaves no
 *     file. */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "data.h"
#include "eo_gen.h"
#include "eo_h5.h"
#include "eo_set.h"
#include "eo_synth.h"
#include "saec/saec.h"
#include "tmp_dir.h"

static void eo_config(saec_config *cfg, const char *path, int64_t seed, int64_t side) {
    saec_config_defaults(cfg);
    snprintf(cfg->synthetic, sizeof cfg->synthetic, "eo");
    snprintf(cfg->data, sizeof cfg->data, "%s", path ? path : "");
    cfg->seed = seed;
    cfg->eo_side = side;
}

static int same_rows(const float *a, const float *b, int64_t count) {
    for (int64_t i = 0; i < count; i++)
        if (!(a[i] == b[i] || (isnan(a[i]) && isnan(b[i])))) return 0;
    return 1;
}

/* ---- synthetic ------------------------------------------------------------------------------ */

enum { SIDE = 8, SCHW = EO_BANDS * SIDE * SIDE, SD = SCHW + 4, SROWS = 24 };

/* Tile `index` as a row [SD]. */
static void synth_row(uint64_t seed, uint64_t index, float *row) {
    eo_meta m;
    uint8_t labels[EO_CLASSES];
    eo_synth_tile(seed, index, SIDE, row, &m, labels, NULL);
    row[SCHW] = m.week, row[SCHW + 1] = m.hour, row[SCHW + 2] = m.lat, row[SCHW + 3] = m.lon;
}

static int synthetic_source(void) {
    set_ctx("synthetic eo source");
    saec_config cfg;
    eo_config(&cfg, NULL, 11, SIDE);
    saec_data *train = NULL, *eval = NULL;
    REQUIRE(saec_data_open(&cfg, SAEC_STREAM_TRAIN, &train) == SAEC_OK);
    CHECK(train->info.d == SD && train->eo_bands == EO_BANDS && train->eo_height == SIDE &&
              train->eo_width == SIDE,
          "d %lld, [%lld, %lld, %lld]", (long long)train->info.d, (long long)train->eo_bands,
          (long long)train->eo_height, (long long)train->eo_width);
    CHECK(train->info.n_rows == -1 && !train->has_band_stats && !train->has_timesteps &&
          !train->has_ground_truth);
    saec_ground_truth gt;
    CHECK(train->vt->ground_truth(train, &gt) == SAEC_ERR_DATA);
    CHECK(saec_data_ground_truth(train, &gt) == SAEC_ERR_DATA);
    saec_error_clear();

    static float rows[SROWS * SD], again[SROWS * SD], want[SD];
    OK(saec_data_next(train, 5, rows, NULL));
    OK(saec_data_next(train, SROWS - 5, rows + 5 * SD, NULL));
    CHECK(train->cursor == SROWS);
    int bad = 0;
    for (int i = 0; i < SROWS; i++) {
        synth_row(11, (uint64_t)i, want);
        bad += !same_rows(rows + i * SD, want, SD);
    }
    CHECK(bad == 0, "%d train rows differ from eo_synth_tile(seed, i)", bad);

    set_ctx("synthetic seek/resume");
    OK(saec_data_seek(train, 9));
    OK(saec_data_next(train, SROWS - 9, again, NULL));
    CHECK(same_rows(again, rows + 9 * SD, (SROWS - 9) * SD), "rows after seek(9) differ");
    saec_data_close(train);

    set_ctx("synthetic eval stream");
    REQUIRE(saec_data_open(&cfg, SAEC_STREAM_EVAL, &eval) == SAEC_OK);
    OK(saec_data_next(eval, 4, again, NULL));
    bad = 0;
    for (int i = 0; i < 4; i++) {
        synth_row(11, EO_EVAL_INDEX_BASE + (uint64_t)i, want);
        bad += !same_rows(again + i * SD, want, SD);
        for (int j = 0; j < SROWS; j++)
            bad += same_rows(again + i * SD, rows + j * SD, SD);
    }
    CHECK(bad == 0, "eval rows are not tiles EO_EVAL_INDEX_BASE + i, or repeat train rows");
    saec_data_close(eval);

    set_ctx("synthetic bad side");
    cfg.eo_side = EO_MAX_SIDE + 1;
    CHECK(saec_data_open(&cfg, SAEC_STREAM_TRAIN, &train) == SAEC_ERR_USAGE);
    saec_error_clear();
    return 0;
}

/* ---- a file ------------------------------------------------------------------------------- */

enum { FN = 50, FC = 2, FH = 3, FW = 3, FCHW = FC * FH * FW, FD = FCHW + 4, FK = 3 };

/* Tile i's pixel p: a value that names the tile (pixel 0 is i itself). */
static uint16_t pixel(int i, int p) { return (uint16_t)(p == 0 ? i : (i * 131 + p * 7) % 65536); }

/* split by `kind`: 0 one in five test, one val, three train; 1 no test; 2 no train; 3 none. */
static int split_of(int i, int kind) {
    if (kind == 1) return i % 5 == 0 ? EO_SPLIT_VAL : EO_SPLIT_TRAIN;
    if (kind == 2) return i % 2 ? EO_SPLIT_VAL : EO_SPLIT_TEST;
    return i % 5 == 0 ? EO_SPLIT_TEST : i % 5 == 1 ? EO_SPLIT_VAL : EO_SPLIT_TRAIN;
}

static const float file_mean[FC] = {3.5f, 100.25f}, file_std[FC] = {2.0f, 7.5f};

static int write_file(const char *path, int split_kind, int meta, int multi_label) {
    eo_h5_info info;
    memset(&info, 0, sizeof info);
    info.bands = FC, info.height = FH, info.width = FW, info.pixels_uint16 = 1;
    info.has_metadata = meta, info.n_classes = FK, info.multi_label = multi_label;
    info.has_split = split_kind != 3;
    snprintf(info.class_names[0], EO_H5_NAME_MAX, "sea");
    snprintf(info.class_names[1], EO_H5_NAME_MAX, "field");
    snprintf(info.class_names[2], EO_H5_NAME_MAX, "town");
    static uint16_t px[FN * FCHW];
    static float md[FN * 4];
    static uint8_t labels[FN * FK], split[FN];
    for (int i = 0; i < FN; i++) {
        for (int p = 0; p < FCHW; p++)
            px[i * FCHW + p] = pixel(i, p);
        for (int j = 0; j < 4; j++)
            md[i * 4 + j] = (float)i + 0.25f * (float)j;
        for (int c = 0; c < FK; c++)
            labels[i * FK + c] = multi_label ? (uint8_t)((i >> c) & 1) : (uint8_t)(c == i % FK);
        split[i] = (uint8_t)split_of(i, split_kind);
    }
    eo_h5_writer *w = NULL;
    REQUIRE(eo_h5_writer_create(path, &info, &w) == SAEC_OK);
    OK(eo_h5_writer_append(w, FN, px, meta ? md : NULL, labels, split));
    REQUIRE(eo_h5_writer_finish(w, file_mean, file_std) == SAEC_OK);
    return 0;
}

/* Checks a row against tile i's content; returns i (from pixel 0), or -1 when it does not match. */
static int row_tile(const float *row, int meta) {
    const int i = (int)row[0];
    if (i < 0 || i >= FN || row[0] != (float)i) return -1;
    for (int p = 0; p < FCHW; p++)
        if (row[p] != (float)pixel(i, p)) return -1;
    for (int j = 0; j < 4; j++)
        if (meta ? row[FCHW + j] != (float)i + 0.25f * (float)j : !isnan(row[FCHW + j])) return -1;
    return i;
}

static int file_source(void) {
    set_ctx("EO file: train stream");
    const char *path = tmp_path("tiles.h5");
    REQUIRE(write_file(path, 0, 1, 1) == 0);
    saec_config cfg;
    eo_config(&cfg, path, 5, 40);
    snprintf(cfg.synthetic, sizeof cfg.synthetic, "superposition"); /* the file decides */
    saec_data *src = NULL;
    REQUIRE(saec_data_open(&cfg, SAEC_STREAM_TRAIN, &src) == SAEC_OK);
    const int n_train = 30;
    CHECK(src->info.d == FD && src->eo_bands == FC && src->eo_height == FH && src->eo_width == FW);
    CHECK(src->info.n_rows == n_train, "n_rows %lld", (long long)src->info.n_rows);
    CHECK(src->has_band_stats && src->band_mean[1] == file_mean[1] &&
              src->band_std[0] == file_std[0],
          "band statistics of the file");
    saec_error_clear();

    enum { EPOCHS = 3, TOTAL = EPOCHS * 30 };
    static float rows[TOTAL * FD], again[TOTAL * FD];
    /* odd batch sizes that straddle the epochs */
    for (int64_t done = 0, b = 7; done < TOTAL; done += b)
        OK(saec_data_next(src, done + b <= TOTAL ? b : TOTAL - done, rows + done * FD, NULL));
    int order[EPOCHS][30], in_file_order = 1, same_as_first = 1;
    for (int e = 0; e < EPOCHS; e++) {
        int seen[FN] = {0}, bad = 0;
        for (int k = 0; k < n_train; k++) {
            const int i = row_tile(rows + (e * n_train + k) * FD, 1);
            order[e][k] = i;
            if (i < 0 || split_of(i, 0) != EO_SPLIT_TRAIN)
                bad++;
            else
                seen[i]++;
        }
        int once = 1;
        for (int i = 0; i < FN; i++)
            once &= seen[i] == (split_of(i, 0) == EO_SPLIT_TRAIN);
        CHECK(bad == 0, "epoch %d: %d rows are not train tiles read exactly", e, bad);
        CHECK(once, "epoch %d does not visit every train tile exactly once", e);
        for (int k = 1; k < n_train; k++)
            in_file_order &= order[e][k] > order[e][k - 1];
        if (e > 0) same_as_first &= memcmp(order[e], order[0], sizeof order[0]) == 0;
    }
    CHECK(!in_file_order, "the train stream is not shuffled");
    CHECK(!same_as_first, "every epoch has the same order");

    set_ctx("EO file: seek and resume");
    const int64_t cut = 37;
    OK(saec_data_seek(src, cut));
    OK(saec_data_next(src, TOTAL - cut, again, NULL));
    CHECK(same_rows(again, rows + cut * FD, (TOTAL - cut) * FD), "rows after seek(37) differ");
    OK(saec_data_seek(src, 3));
    OK(saec_data_next(src, 1, again, NULL));
    CHECK(same_rows(again, rows + 3 * FD, FD), "row 3 after seeking back differs");
    saec_data_close(src);
    REQUIRE(saec_data_open(&cfg, SAEC_STREAM_TRAIN, &src) == SAEC_OK);
    OK(saec_data_seek(src, 61));
    OK(saec_data_next(src, TOTAL - 61, again, NULL));
    CHECK(same_rows(again, rows + 61 * FD, (TOTAL - 61) * FD),
          "a fresh source resumed at 61 differs");
    saec_data_close(src);

    set_ctx("EO file: the order follows the seed");
    cfg.seed = 6;
    REQUIRE(saec_data_open(&cfg, SAEC_STREAM_TRAIN, &src) == SAEC_OK);
    OK(saec_data_next(src, n_train, again, NULL));
    CHECK(!same_rows(again, rows, n_train * FD), "seeds 5 and 6 give the same order");
    saec_data_close(src);

    set_ctx("EO file: eval stream = test split in file order");
    REQUIRE(saec_data_open(&cfg, SAEC_STREAM_EVAL, &src) == SAEC_OK);
    CHECK(src->info.n_rows == 10, "n_rows %lld", (long long)src->info.n_rows);
    OK(saec_data_next(src, 13, again, NULL));
    int bad = 0;
    for (int k = 0; k < 13; k++)
        bad += row_tile(again + k * FD, 1) != (k % 10) * 5;
    CHECK(bad == 0, "%d eval rows are not tiles 0, 5, 10, ... wrapping", bad);
    saec_data_close(src);
    return 0;
}

static int file_variants(void) {
    saec_config cfg;
    saec_data *src = NULL;
    float rows[6 * FD];

    set_ctx("EO file without test split: eval reads val; without metadata: NaN");
    const char *path = tmp_path("noval.h5");
    REQUIRE(write_file(path, 1, 0, 0) == 0);
    eo_config(&cfg, path, 1, 40);
    REQUIRE(saec_data_open(&cfg, SAEC_STREAM_EVAL, &src) == SAEC_OK);
    OK(saec_data_next(src, 3, rows, NULL));
    for (int k = 0; k < 3; k++)
        CHECK(row_tile(rows + k * FD, 0) == 5 * k, "eval row %d", k);
    saec_data_close(src);

    set_ctx("EO file without split: all tiles train and eval");
    path = tmp_path("nosplit.h5");
    REQUIRE(write_file(path, 3, 1, 1) == 0);
    eo_config(&cfg, path, 1, 40);
    REQUIRE(saec_data_open(&cfg, SAEC_STREAM_TRAIN, &src) == SAEC_OK);
    CHECK(src->info.n_rows == FN);
    saec_data_close(src);
    REQUIRE(saec_data_open(&cfg, SAEC_STREAM_EVAL, &src) == SAEC_OK);
    OK(saec_data_next(src, 3, rows, NULL));
    for (int k = 0; k < 3; k++)
        CHECK(row_tile(rows + k * FD, 1) == k, "eval row %d", k);
    saec_data_close(src);

    set_ctx("EO file without train tiles");
    path = tmp_path("notrain.h5");
    REQUIRE(write_file(path, 2, 1, 1) == 0);
    eo_config(&cfg, path, 1, 40);
    CHECK(saec_data_open(&cfg, SAEC_STREAM_TRAIN, &src) == SAEC_ERR_DATA && src == NULL);
    CHECK(strstr(saec_error_message(), "notrain.h5") != NULL, "%s", saec_error_message());
    saec_error_clear();
    return 0;
}

/* ---- sets ----------------------------------------------------------------------------------- */

static int sets(void) {
    set_ctx("eo_set on a file: the test split");
    const char *path = tmp_path("tiles.h5");
    saec_config cfg;
    eo_config(&cfg, NULL, 3, SIDE);
    eo_set set;
    REQUIRE(eo_set_load(&cfg, path, EO_SPLIT_TEST, 0, &set) == SAEC_OK);
    CHECK(set.n == 10 && set.bands == FC && set.height == FH && set.width == FW, "n %lld",
          (long long)set.n);
    CHECK(set.n_classes == FK && set.multi_label && strcmp(set.class_names[2], "town") == 0);
    CHECK(set.has_band_stats && set.band_mean[0] == file_mean[0] && set.band_std[1] == file_std[1]);
    int bad = 0;
    for (int64_t k = 0; k < set.n; k++) {
        const int i = (int)(5 * k);
        bad += set.tile[k] != i || set.split[k] != EO_SPLIT_TEST;
        for (int p = 0; p < FCHW; p++)
            bad += set.images[k * FCHW + p] != (float)pixel(i, p);
        bad += set.metadata[4 * k + 1] != (float)i + 0.25f;
        for (int c = 0; c < FK; c++)
            bad += set.labels[k * FK + c] != ((i >> c) & 1);
    }
    CHECK(bad == 0, "%d values of the test set differ", bad);
    eo_set_free(&set);

    set_ctx("eo_set on a file: the first 12 tiles, all splits");
    REQUIRE(eo_set_load(&cfg, path, -1, 12, &set) == SAEC_OK);
    CHECK(set.n == 12 && set.tile[11] == 11 && set.split[5] == EO_SPLIT_TEST &&
          set.split[6] == EO_SPLIT_VAL && set.split[7] == EO_SPLIT_TRAIN);
    eo_set_free(&set);

    set_ctx("eo_set on a single-label file: one-hot");
    REQUIRE(eo_set_load(&cfg, tmp_path("noval.h5"), EO_SPLIT_TRAIN, 0, &set) == SAEC_OK);
    CHECK(!set.multi_label && set.n == 40);
    bad = 0;
    for (int64_t k = 0; k < set.n; k++)
        for (int c = 0; c < FK; c++)
            bad += set.labels[k * FK + c] != (c == set.tile[k] % FK);
    CHECK(bad == 0, "%d one-hot labels differ", bad);
    CHECK(isnan(set.metadata[0]), "missing metadata is not NaN");
    eo_set_free(&set);

    set_ctx("eo_set on a file without labels");
    eo_h5_info info;
    memset(&info, 0, sizeof info);
    info.bands = 1, info.height = 2, info.width = 2;
    const float px[3 * 4] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    eo_h5_writer *w = NULL;
    REQUIRE(eo_h5_writer_create(tmp_path("unlabelled.h5"), &info, &w) == SAEC_OK);
    OK(eo_h5_writer_append(w, 3, px, NULL, NULL, NULL));
    REQUIRE(eo_h5_writer_finish(w, NULL, NULL) == SAEC_OK);
    REQUIRE(eo_set_load(&cfg, tmp_path("unlabelled.h5"), EO_SPLIT_TRAIN, 0, &set) == SAEC_OK);
    CHECK(set.n == 3 && set.n_classes == 0 && !set.has_band_stats && set.images[11] == 12.0f);
    eo_set_free(&set);

    set_ctx("eo_set: no tiles of the split");
    CHECK(eo_set_load(&cfg, tmp_path("notrain.h5"), EO_SPLIT_TRAIN, 0, &set) == SAEC_ERR_DATA);
    CHECK(strstr(saec_error_message(), "notrain.h5") != NULL, "%s", saec_error_message());
    saec_error_clear();

    set_ctx("eo_set synthetic");
    enum { M = 60 };
    eo_set all, parts[3];
    REQUIRE(eo_set_load(&cfg, NULL, -1, M, &all) == SAEC_OK);
    CHECK(all.n == M && all.bands == EO_BANDS && all.height == SIDE &&
          all.n_classes == EO_CLASSES && all.multi_label && !all.has_band_stats &&
          strcmp(all.class_names[0], "water") == 0);
    static float img[SCHW];
    eo_meta m;
    uint8_t labels[EO_CLASSES];
    bad = 0;
    int64_t counts[3] = {0};
    for (int64_t j = 0; j < M; j++) {
        const uint64_t index = EO_EVAL_INDEX_BASE + (uint64_t)j;
        eo_synth_tile(3, index, SIDE, img, &m, labels, NULL);
        bad += all.tile[j] != (int64_t)index || all.split[j] != eo_split_of_index(index);
        bad += memcmp(img, all.images + j * SCHW, sizeof img) != 0;
        bad += memcmp(labels, all.labels + j * EO_CLASSES, EO_CLASSES) != 0;
        bad += all.metadata[4 * j + 2] != m.lat;
        counts[all.split[j]]++;
    }
    CHECK(bad == 0, "%d synthetic tiles differ from eo_synth_tile of the eval range", bad);
    CHECK(counts[0] > counts[1] && counts[0] > counts[2] && counts[1] > 0 && counts[2] > 0,
          "split counts %lld %lld %lld", (long long)counts[0], (long long)counts[1],
          (long long)counts[2]);
    for (int s = 0; s < 3; s++) {
        REQUIRE(eo_set_load(&cfg, NULL, s, M, &parts[s]) == SAEC_OK);
        CHECK(parts[s].n == counts[s], "split %d: %lld tiles, want %lld", s, (long long)parts[s].n,
              (long long)counts[s]);
        int64_t k = 0;
        for (int64_t j = 0; j < M && k < parts[s].n; j++)
            if (all.split[j] == s) {
                bad += parts[s].tile[k] != all.tile[j] ||
                       memcmp(parts[s].images + k * SCHW, all.images + j * SCHW, sizeof img) != 0;
                k++;
            }
        eo_set_free(&parts[s]);
    }
    CHECK(bad == 0, "the split subsets are not the tiles of the whole set");
    eo_set_free(&all);
    CHECK(eo_set_load(&cfg, NULL, -1, 0, &all) == SAEC_ERR_USAGE);
    saec_error_clear();
    return 0;
}

/* ---- band statistics ------------------------------------------------------------------------ */

static void band_stats(void) {
    set_ctx("eo_band_stats");
    /* images [2, 3, 4]: band 0 = 10000 + {0, 1, 2, 3} twice, band 1 constant 7, band 2 ±1 */
    float images[2 * 3 * 4];
    for (int i = 0; i < 2; i++)
        for (int p = 0; p < 4; p++) {
            images[(i * 3 + 0) * 4 + p] = 10000.0f + (float)p;
            images[(i * 3 + 1) * 4 + p] = 7.0f;
            images[(i * 3 + 2) * 4 + p] = (p + i) % 2 ? 1.0f : -1.0f;
        }
    float mean[3], std[3];
    eo_band_stats(images, 2, 3, 4, mean, std);
    CHECK(mean[0] == 10001.5f && fabsf(std[0] - sqrtf(1.25f)) < 1e-6f, "band 0: %.9g %.9g",
          (double)mean[0], (double)std[0]);
    CHECK(mean[1] == 7.0f && std[1] == EO_BAND_STD_MIN, "band 1 (constant): %g %g", (double)mean[1],
          (double)std[1]);
    CHECK(mean[2] == 0.0f && std[2] == 1.0f, "band 2: %g %g", (double)mean[2], (double)std[2]);
    eo_band_acc acc;
    eo_band_acc_init(&acc, 3);
    eo_band_acc_add(&acc, images, 1, 4);
    eo_band_acc_add(&acc, images + 12, 1, 4);
    float m2[3], s2[3];
    eo_band_acc_finish(&acc, m2, s2);
    CHECK(memcmp(m2, mean, sizeof m2) == 0 && memcmp(s2, std, sizeof s2) == 0,
          "streaming in two pieces differs from at once");
    eo_band_acc_init(&acc, 2);
    eo_band_acc_finish(&acc, m2, s2);
    CHECK(m2[0] == 0 && s2[1] == 1, "nothing added: mean 0, std 1");
}

/* ---- gen eo --------------------------------------------------------------------------------- */

static int gen(void) {
    set_ctx("eo_gen_write");
    saec_config cfg;
    eo_config(&cfg, NULL, 9, SIDE);
    const char *path = tmp_path("gen.h5");
    enum { GN = 37 };
    REQUIRE(eo_gen_write(&cfg, path, GN, "{}", 0, NULL) == SAEC_OK);
    eo_set set;
    REQUIRE(eo_set_load(&cfg, path, -1, 0, &set) == SAEC_OK);
    CHECK(set.n == GN && set.bands == EO_BANDS && set.height == SIDE && set.multi_label &&
          set.n_classes == EO_CLASSES && set.has_band_stats);
    for (int c = 0; c < EO_CLASSES; c++)
        CHECK(strcmp(set.class_names[c], eo_class_name(c)) == 0, "class %d: %s", c,
              set.class_names[c]);
    static float img[SCHW], train_px[GN * SCHW];
    eo_meta m;
    uint8_t labels[EO_CLASSES];
    int bad = 0, n_train = 0;
    for (int i = 0; i < GN; i++) {
        eo_synth_tile(9, (uint64_t)i, SIDE, img, &m, labels, NULL);
        bad += memcmp(img, set.images + i * SCHW, sizeof img) != 0;
        bad += memcmp(labels, set.labels + i * EO_CLASSES, EO_CLASSES) != 0;
        bad += set.metadata[4 * i] != m.week || set.metadata[4 * i + 3] != m.lon;
        bad += set.split[i] != eo_split_of_index((uint64_t)i);
        if (set.split[i] == EO_SPLIT_TRAIN) memcpy(train_px + SCHW * n_train++, img, sizeof img);
    }
    CHECK(bad == 0, "%d tiles differ from the train stream's", bad);
    float mean[EO_BANDS], std[EO_BANDS];
    eo_band_stats(train_px, n_train, EO_BANDS, SIDE * SIDE, mean, std);
    for (int c = 0; c < EO_BANDS; c++)
        CHECK(fabsf(set.band_mean[c] - mean[c]) <= 1e-6f * fabsf(mean[c]) &&
                  fabsf(set.band_std[c] - std[c]) <= 1e-5f * std[c],
              "band %d: file %g %g, train tiles %g %g", c, (double)set.band_mean[c],
              (double)set.band_std[c], (double)mean[c], (double)std[c]);
    eo_set_free(&set);

    set_ctx("eo_gen_write stopped");
    volatile sig_atomic_t stop = 1;
    const char *stopped = tmp_path("stopped.h5");
    CHECK(eo_gen_write(&cfg, stopped, GN, NULL, 0, &stop) != SAEC_OK);
    saec_error_clear();
    const int left = count_entries(tmpdir, "stopped.h5");
    CHECK(left == 0, "a stopped gen left %d files", left);
    return 0;
}

int main(void) {
    if (tmp_dir_make("saec_eo_data")) return 1;
    synthetic_source();
    file_source();
    file_variants();
    sets();
    band_stats();
    gen();
    remove_dir(tmpdir, 0);
    return check_summary("test_eo_data");
}
