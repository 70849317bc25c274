/* The HDF5 EO layout (host/data/eo_h5.c): the writer's files read back exactly (uint16 and float32
 * pixels, multi-hot labels and class ids, with and without metadata, split and band statistics,
 * appended in several batches, read at any offset); the writer refuses bad labels and splits;
 * abort and a failed finish leave no file; and every bad layout, written here with raw HDF5 calls,
 * fails with SAEC_ERR_DATA and a message naming the file and the dataset at fault. */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <hdf5.h>

#include "check.h"
#include "eo_h5.h"
#include "saec/saec.h"
#include "tmp_dir.h"

/* ---- round trips ------------------------------------------------------------------------------
 */

enum { N = 7, C = 3, H = 4, W = 5, HW = H * W, CHW = C * HW, K = 4 };

static eo_h5_info info_for(int uint16, int multi_label, int meta, int split) {
    eo_h5_info info;
    memset(&info, 0, sizeof info);
    info.bands = C;
    info.height = H;
    info.width = W;
    info.pixels_uint16 = uint16;
    info.has_metadata = meta;
    info.n_classes = K;
    info.multi_label = multi_label;
    info.has_split = split;
    static const char *const names[K] = {"water", "forest", "snow", "urban"};
    for (int c = 0; c < K; c++)
        snprintf(info.class_names[c], EO_H5_NAME_MAX, "%s", names[c]);
    return info;
}

/* The tiles written: pixel values, metadata, labels (one-hot when single-label), split. */
typedef struct {
    uint16_t px16[N * CHW];
    float px32[N * CHW];
    float meta[N * 4];
    uint8_t labels[N * K];
    uint8_t split[N];
} tiles;

static void make_tiles(tiles *t, int multi_label) {
    for (int i = 0; i < N * CHW; i++) {
        t->px16[i] = (uint16_t)(i * 977 % 65536); /* the whole uint16 range, 65535 included */
        t->px32[i] = (float)(i % 11) * 0.37f - 1.5f;
    }
    t->px16[5] = 65535;
    for (int i = 0; i < N; i++) {
        t->meta[4 * i + 0] = (float)(i + 1);
        t->meta[4 * i + 1] = 6.5f + (float)i;
        t->meta[4 * i + 2] = i == 2 ? NAN : -30.25f + (float)i;
        t->meta[4 * i + 3] = 100.125f - (float)i;
        t->split[i] = (uint8_t)(i % 3);
        for (int c = 0; c < K; c++)
            t->labels[i * K + c] =
                multi_label ? (uint8_t)((i + c) % 3 == 0) : (uint8_t)(c == i % K);
    }
}

static int same_float(float a, float b) { return a == b || (isnan(a) && isnan(b)); }

static int round_trip(int uint16, int multi_label, int meta, int split, int stats) {
    set_ctx("round trip: %s pixels, %s labels, metadata %d, split %d, band stats %d",
            uint16 ? "uint16" : "float32", multi_label ? "multi-hot" : "class-id", meta, split,
            stats);
    static tiles t;
    make_tiles(&t, multi_label);
    const char *path = tmp_path("rt.h5");
    const eo_h5_info in = info_for(uint16, multi_label, meta, split);
    eo_h5_writer *w = NULL;
    REQUIRE(eo_h5_writer_create(path, &in, &w) == SAEC_OK);
    const void *px = uint16 ? (const void *)t.px16 : (const void *)t.px32;
    const size_t px_size = uint16 ? sizeof(uint16_t) : sizeof(float);
    /* three batches: 3, 0 and 4 tiles */
    OK(eo_h5_writer_append(w, 3, px, meta ? t.meta : NULL, t.labels, split ? t.split : NULL));
    OK(eo_h5_writer_append(w, 0, px, NULL, t.labels, NULL));
    OK(eo_h5_writer_append(w, N - 3, (const char *)px + 3 * CHW * px_size,
                           meta ? t.meta + 12 : NULL, t.labels + 3 * K,
                           split ? t.split + 3 : NULL));
    OK(eo_h5_writer_set_provenance(w, "{\"tool\": \"test\"}"));
    const float mean[C] = {1.5f, -2.25f, 1e4f}, std[C] = {0.5f, 3.0f, 1234.5f};
    REQUIRE(eo_h5_writer_finish(w, stats ? mean : NULL, stats ? std : NULL) == SAEC_OK);
    CHECK(count_entries(tmpdir, "rt.h5.tmp") == 0, "the temporary file is left behind");
    CHECK(eo_h5_is_eo_file(path), "not recognised as an EO file");

    eo_h5_reader *r = NULL;
    REQUIRE(eo_h5_reader_open(path, &r) == SAEC_OK);
    const eo_h5_info *info = eo_h5_reader_info(r);
    CHECK(info->n == N && info->bands == C && info->height == H && info->width == W,
          "shape [%lld, %lld, %lld, %lld]", (long long)info->n, (long long)info->bands,
          (long long)info->height, (long long)info->width);
    CHECK(info->pixels_uint16 == uint16 && info->has_metadata == meta &&
              info->multi_label == multi_label && info->has_split == split &&
              info->has_band_stats == stats && info->n_classes == K,
          "info flags");
    for (int c = 0; c < K; c++)
        CHECK(strcmp(info->class_names[c], in.class_names[c]) == 0, "class %d named '%s'", c,
              info->class_names[c]);
    for (int c = 0; stats && c < C; c++)
        CHECK(info->band_mean[c] == mean[c] && info->band_std[c] == std[c], "band %d stats", c);

    static float img[N * CHW], md[N * 4];
    uint8_t lab[N * K], sp[N];
    OK(eo_h5_read(r, 0, N, img, md, lab, sp));
    int bad_px = 0, bad_meta = 0;
    for (int i = 0; i < N * CHW; i++)
        bad_px += img[i] != (uint16 ? (float)t.px16[i] : t.px32[i]);
    for (int i = 0; i < N * 4; i++)
        bad_meta += !same_float(md[i], meta ? t.meta[i] : NAN);
    CHECK(bad_px == 0, "%d pixels differ", bad_px);
    CHECK(bad_meta == 0, "%d metadata values differ", bad_meta);
    CHECK(memcmp(lab, t.labels, sizeof lab) == 0, "labels differ");
    for (int i = 0; i < N; i++)
        CHECK(sp[i] == (split ? t.split[i] : EO_SPLIT_TRAIN), "split of tile %d is %d", i, sp[i]);

    /* an inner range, and a NULL output */
    static float img2[3 * CHW];
    uint8_t lab2[3 * K];
    OK(eo_h5_read(r, 2, 3, img2, NULL, lab2, NULL));
    CHECK(memcmp(img2, img + 2 * CHW, sizeof img2) == 0, "tiles 2..4 differ read alone");
    CHECK(memcmp(lab2, t.labels + 2 * K, sizeof lab2) == 0, "labels of 2..4 differ read alone");
    CHECK(eo_h5_read(r, N - 1, 2, img2, NULL, NULL, NULL) == SAEC_ERR_OTHER,
          "a read past the end is accepted");
    saec_error_clear();
    eo_h5_reader_close(r);
    remove(path);
    return 0;
}

/* ---- the writer's refusals and cleanup --------------------------------------------------------
 */

static void writer_failures(void) {
    static tiles t;
    make_tiles(&t, 1);
    const char *path = tmp_path("wf.h5");
    eo_h5_writer *w = NULL;

    set_ctx("abort");
    eo_h5_info info = info_for(1, 1, 1, 1);
    OK(eo_h5_writer_create(path, &info, &w));
    OK(eo_h5_writer_append(w, 2, t.px16, t.meta, t.labels, t.split));
    CHECK(count_entries(tmpdir, "wf.h5.tmp") > 0, "no temporary file while writing");
    eo_h5_writer_abort(w);
    CHECK(count_entries(tmpdir, "wf.h5") == 0, "abort left a file");
    eo_h5_writer_abort(NULL);

    set_ctx("finish without tiles");
    OK(eo_h5_writer_create(path, &info, &w));
    CHECK(eo_h5_writer_finish(w, NULL, NULL) == SAEC_ERR_USAGE);
    saec_error_clear();
    CHECK(count_entries(tmpdir, "wf.h5") == 0, "a failed finish left a file");

    set_ctx("single-label rows need exactly one class");
    info = info_for(1, 0, 1, 1);
    OK(eo_h5_writer_create(path, &info, &w));
    uint8_t two[2 * K] = {1, 1, 0, 0, 0, 0, 0, 0};
    CHECK(eo_h5_writer_append(w, 2, t.px16, NULL, two, NULL) == SAEC_ERR_DATA);
    CHECK(strstr(saec_error_message(), "tile 0") != NULL, "message: %s", saec_error_message());
    saec_error_clear();
    eo_h5_writer_abort(w);

    set_ctx("split values");
    info = info_for(1, 1, 0, 1);
    OK(eo_h5_writer_create(path, &info, &w));
    uint8_t bad_split[2] = {0, 3};
    CHECK(eo_h5_writer_append(w, 2, t.px16, NULL, t.labels, bad_split) == SAEC_ERR_DATA);
    CHECK(strstr(saec_error_message(), "tile 1") != NULL, "message: %s", saec_error_message());
    saec_error_clear();
    eo_h5_writer_abort(w);

    set_ctx("bad writer settings");
    info = info_for(1, 1, 0, 0);
    info.bands = EO_H5_MAX_BANDS + 1;
    CHECK(eo_h5_writer_create(path, &info, &w) == SAEC_ERR_USAGE && w == NULL);
    info = info_for(1, 1, 0, 0);
    snprintf(info.class_names[1], EO_H5_NAME_MAX, "a\nb");
    CHECK(eo_h5_writer_create(path, &info, &w) == SAEC_ERR_USAGE && w == NULL);
    info = info_for(1, 1, 0, 0);
    CHECK(eo_h5_writer_create(tmp_path("no/such/dir.h5"), &info, &w) == SAEC_ERR_USAGE);
    saec_error_clear();
    CHECK(count_entries(tmpdir, "wf.h5") == 0, "a refused writer left a file");
}

/* ---- bad layouts, written with raw HDF5 -------------------------------------------------------
 */

/* One dataset of a raw file: rank 0 = absent. Values from `fill` converted by HDF5. */
typedef struct {
    int rank;
    hsize_t dims[5];
    hid_t type;
} raw_ds;

typedef struct {
    raw_ds images, metadata, labels, split;
    const char *class_names; /* NULL: no attribute */
    int mean_len, std_len;   /* band attributes' lengths; 0 = absent */
    float std_value;         /* every band_std value */
    /* one bad value, set after the fill: dataset (0 none, 1 images, 2 labels, 3 split) */
    int poke;
    double poke_value;
} raw_file;

static raw_file good_raw(void) {
    raw_file f;
    memset(&f, 0, sizeof f);
    f.images = (raw_ds){4, {N, C, H, W}, H5T_IEEE_F32LE};
    f.metadata = (raw_ds){2, {N, 4}, H5T_IEEE_F32LE};
    f.labels = (raw_ds){2, {N, 2}, H5T_STD_U8LE};
    f.split = (raw_ds){1, {N}, H5T_STD_U8LE};
    f.class_names = "a\nb";
    f.std_value = 1.0f;
    return f;
}

static hid_t raw_dataset(hid_t file, const char *name, const raw_ds *ds, double poke) {
    if (ds->rank == 0) return H5I_INVALID_HID;
    hid_t space = H5Screate_simple(ds->rank, ds->dims, NULL);
    hid_t d = H5Dcreate2(file, name, ds->type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    hssize_t count = H5Sget_simple_extent_npoints(space);
    double *values = calloc((size_t)count + 1, sizeof(double));
    if (values && count > 0) {
        values[count - 1] = poke;
        H5Dwrite(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, values);
    }
    free(values);
    H5Sclose(space);
    return d;
}

static void raw_float_attr(hid_t obj, const char *name, int len, float value) {
    if (len == 0) return;
    float v[32];
    for (int i = 0; i < len; i++)
        v[i] = value;
    hsize_t dims[1] = {(hsize_t)len};
    hid_t space = H5Screate_simple(1, dims, NULL);
    hid_t a = H5Acreate2(obj, name, H5T_IEEE_F32LE, space, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(a, H5T_NATIVE_FLOAT, v);
    H5Aclose(a);
    H5Sclose(space);
}

static void write_raw(const char *path, const raw_file *f) {
    hid_t file = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    hid_t img = raw_dataset(file, "images", &f->images, f->poke == 1 ? f->poke_value : 0);
    if (img >= 0) {
        raw_float_attr(img, "band_mean", f->mean_len, 0.5f);
        raw_float_attr(img, "band_std", f->std_len, f->std_value);
        H5Dclose(img);
    }
    hid_t md = raw_dataset(file, "metadata", &f->metadata, 0);
    if (md >= 0) H5Dclose(md);
    hid_t lab = raw_dataset(file, "labels", &f->labels, f->poke == 2 ? f->poke_value : 0);
    if (lab >= 0) {
        if (f->class_names) {
            hid_t st = H5Tcopy(H5T_C_S1);
            H5Tset_size(st, H5T_VARIABLE);
            hid_t as = H5Screate(H5S_SCALAR);
            hid_t a = H5Acreate2(lab, "class_names", st, as, H5P_DEFAULT, H5P_DEFAULT);
            H5Awrite(a, st, &f->class_names);
            H5Aclose(a);
            H5Sclose(as);
            H5Tclose(st);
        }
        H5Dclose(lab);
    }
    hid_t sp = raw_dataset(file, "split", &f->split, f->poke == 3 ? f->poke_value : 0);
    if (sp >= 0) H5Dclose(sp);
    H5Fclose(file);
}

/* Opens (and, when it opens, reads all of) the file; expects SAEC_ERR_DATA with a message that
   names the file and `dataset`. */
static void expect_bad(const char *what, const raw_file *f, const char *dataset) {
    set_ctx("bad layout: %s", what);
    const char *path = tmp_path("bad.h5");
    write_raw(path, f);
    eo_h5_reader *r = NULL;
    int rc = eo_h5_reader_open(path, &r);
    if (rc == SAEC_OK) {
        const eo_h5_info *info = eo_h5_reader_info(r);
        static float img[64 * CHW], md[64 * 4];
        uint8_t lab[64 * EO_H5_MAX_CLASSES], sp[64];
        rc = info->n <= 64 && info->bands * info->height * info->width <= CHW
                 ? eo_h5_read(r, 0, info->n, img, md, lab, sp)
                 : SAEC_ERR_OTHER;
        eo_h5_reader_close(r);
    }
    const char *msg = saec_error_message();
    CHECK(rc == SAEC_ERR_DATA, "returned %d (%s)", rc, msg);
    CHECK(strstr(msg, path) != NULL, "message does not name the file: %s", msg);
    CHECK(strstr(msg, dataset) != NULL, "message does not name '%s': %s", dataset, msg);
    CHECK(saec_error_hint()[0] != '\0', "no hint: %s", msg);
    saec_error_clear();
    remove(path);
}

static void bad_layouts(void) {
    raw_file f = good_raw();
    set_ctx("the raw writer's good file");
    write_raw(tmp_path("good.h5"), &f);
    eo_h5_reader *r = NULL;
    OK(eo_h5_reader_open(tmp_path("good.h5"), &r));
    eo_h5_reader_close(r);

    f = good_raw(), f.images.rank = 0;
    expect_bad("no images", &f, "images");
    f = good_raw(), f.images.rank = 3;
    expect_bad("images of rank 3", &f, "images");
    f = good_raw(), f.images.rank = 5, f.images.dims[4] = 2;
    expect_bad("images of rank 5", &f, "images");
    f = good_raw(), f.images.dims[1] = EO_H5_MAX_BANDS + 1;
    expect_bad("17 bands", &f, "images");
    f = good_raw(), f.images.dims[0] = 0;
    expect_bad("no tiles", &f, "images");
    f = good_raw(), f.images.type = H5T_STD_I16LE;
    expect_bad("int16 pixels", &f, "images");
    f = good_raw(), f.images.type = H5T_IEEE_F64LE;
    expect_bad("float64 pixels", &f, "images");
    f = good_raw(), f.poke = 1, f.poke_value = NAN;
    expect_bad("a NaN pixel", &f, "images");
    f = good_raw(), f.mean_len = C;
    expect_bad("band_mean without band_std", &f, "band_std");
    f = good_raw(), f.mean_len = C + 1, f.std_len = C + 1;
    expect_bad("band statistics of the wrong length", &f, "band_mean");
    f = good_raw(), f.mean_len = C, f.std_len = C, f.std_value = 0;
    expect_bad("a zero band_std", &f, "band_std");
    f = good_raw(), f.metadata.dims[1] = 3;
    expect_bad("metadata [N, 3]", &f, "metadata");
    f = good_raw(), f.metadata.dims[0] = N - 1;
    expect_bad("metadata of N - 1 rows", &f, "metadata");
    f = good_raw(), f.metadata.rank = 1;
    expect_bad("metadata of rank 1", &f, "metadata");
    f = good_raw(), f.metadata.type = H5T_IEEE_F64LE;
    expect_bad("float64 metadata", &f, "metadata");
    f = good_raw(), f.labels.type = H5T_IEEE_F32LE;
    expect_bad("float labels", &f, "labels");
    f = good_raw(), f.labels.rank = 3, f.labels.dims[2] = 2;
    expect_bad("labels of rank 3", &f, "labels");
    f = good_raw(), f.labels.dims[0] = N + 1;
    expect_bad("labels of N + 1 rows", &f, "labels");
    f = good_raw(), f.labels.dims[1] = EO_H5_MAX_CLASSES + 1;
    expect_bad("65 classes", &f, "labels");
    f = good_raw(), f.class_names = NULL;
    expect_bad("no class_names", &f, "class_names");
    f = good_raw(), f.class_names = "a\nb\nc";
    expect_bad("3 names for 2 columns", &f, "class_names");
    f = good_raw(), f.class_names = "a\n\n";
    expect_bad("an empty class name", &f, "class_names");
    f = good_raw(), f.poke = 2, f.poke_value = 2;
    expect_bad("a multi-hot 2", &f, "labels");
    f = good_raw(), f.labels = (raw_ds){1, {N}, H5T_STD_I32LE}, f.poke = 2, f.poke_value = 2;
    expect_bad("class id 2 of 2 classes", &f, "labels");
    f = good_raw(), f.labels = (raw_ds){1, {N}, H5T_STD_I32LE}, f.poke = 2, f.poke_value = -1;
    expect_bad("class id -1", &f, "labels");
    f = good_raw(), f.split.rank = 2, f.split.dims[1] = 1;
    expect_bad("split of rank 2", &f, "split");
    f = good_raw(), f.split.type = H5T_IEEE_F32LE;
    expect_bad("float split", &f, "split");
    f = good_raw(), f.split.dims[0] = N - 2;
    expect_bad("split of N - 2 rows", &f, "split");
    f = good_raw(), f.poke = 3, f.poke_value = 3;
    expect_bad("split value 3", &f, "split");

    set_ctx("single-label labels of any integer type are accepted");
    f = good_raw(), f.labels = (raw_ds){1, {N}, H5T_STD_I64BE};
    write_raw(tmp_path("ids.h5"), &f);
    OK(eo_h5_reader_open(tmp_path("ids.h5"), &r));
    if (r) {
        CHECK(!eo_h5_reader_info(r)->multi_label && eo_h5_reader_info(r)->n_classes == 2);
        uint8_t lab[N * 2];
        OK(eo_h5_read(r, 0, N, NULL, NULL, lab, NULL));
        CHECK(lab[0] == 1 && lab[1] == 0, "id 0 is not one-hot [1, 0]");
        eo_h5_reader_close(r);
    }

    set_ctx("not an HDF5 file / not an EO file");
    const char *text = tmp_path("notes.h5");
    FILE *fp = fopen(text, "w");
    if (fp) fputs("not HDF5\n", fp), fclose(fp);
    r = NULL;
    CHECK(eo_h5_reader_open(text, &r) == SAEC_ERR_DATA && r == NULL);
    CHECK(strstr(saec_error_message(), "notes.h5") != NULL, "%s", saec_error_message());
    saec_error_clear();
    CHECK(!eo_h5_is_eo_file(text) && !eo_h5_is_eo_file(tmp_path("missing.h5")));
    f = good_raw(), f.images.rank = 0;
    write_raw(tmp_path("acts.h5"), &f);
    CHECK(!eo_h5_is_eo_file(tmp_path("acts.h5")), "a file without images is taken for EO");
}

int main(void) {
    if (tmp_dir_make("saec_eo_h5")) return 1;
    for (int u = 0; u < 2; u++)
        for (int m = 0; m < 2; m++)
            round_trip(u, m, m, u, u ^ m);
    round_trip(1, 1, 1, 1, 1);
    round_trip(0, 0, 0, 0, 0);
    writer_failures();
    bad_layouts();
    remove_dir(tmpdir, 0);
    return check_summary("test_eo_h5");
}
