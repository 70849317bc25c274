/* The embeddings file (host/io/emb_h5.h): a round trip in several appends, files without labels
   or split, the writer's atomic publication (abort, unfinished, unwritable), and every bad file
   failing with SAEC_ERR_DATA naming the dataset at fault. */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <hdf5.h>

#include "check.h"
#include "emb_h5.h"
#include "h5_lock.h"
#include "h5_write.h"

enum { N = 7, F = 5, K = 3 };

static char tmpdir[256];

static const char *tmp_path(const char *name) {
    static char buf[4][512];
    static int next;
    char *p = buf[next++ % 4];
    snprintf(p, 512, "%s/%s", tmpdir, name);
    return p;
}

/* Files in tmpdir other than . and .. */
static int files_in_tmpdir(void) {
    DIR *dir = opendir(tmpdir);
    int n = 0;
    for (struct dirent *e; dir && (e = readdir(dir));)
        n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    if (dir) closedir(dir);
    return n;
}

static float emb[N * F];
static uint8_t labels[N * K], split[N];

static emb_h5_info sample_info(int n_classes) {
    emb_h5_info info;
    memset(&info, 0, sizeof info);
    info.n = N;
    info.dim = F;
    info.n_classes = n_classes;
    snprintf(info.class_names[0], EO_H5_NAME_MAX, "forest");
    snprintf(info.class_names[1], EO_H5_NAME_MAX, "water bodies");
    snprintf(info.class_names[2], EO_H5_NAME_MAX, "snow");
    snprintf(info.encoder, sizeof info.encoder, "run runs/eo step 1200");
    snprintf(info.source, sizeof info.source, "data/eo.h5");
    return info;
}

/* Writes the sample in two appends (4 + 3 rows). */
static int write_sample(const char *path, int n_classes, int with_split) {
    emb_h5_info info = sample_info(n_classes);
    emb_h5_writer *w = NULL;
    REQUIRE(emb_h5_writer_create(path, &info, &w) == SAEC_OK, "create %s", path);
    REQUIRE(emb_h5_writer_append(w, 4, emb, labels, with_split ? split : NULL) == SAEC_OK);
    REQUIRE(emb_h5_writer_append(w, 3, emb + 4 * F, labels + 4 * K,
                                 with_split ? split + 4 : NULL) == SAEC_OK);
    REQUIRE(emb_h5_writer_finish(w) == SAEC_OK);
    return 0;
}

static void round_trip(void) {
    set_ctx("round trip");
    const char *path = tmp_path("emb.h5");
    CHECK(write_sample(path, K, 1) == 0);
    CHECK(files_in_tmpdir() == 1, "the temporary file is left behind");
    emb_h5_data d;
    OK(emb_h5_read(path, &d));
    CHECK(d.info.n == N && d.info.dim == F && d.info.n_classes == K);
    CHECK(d.embeddings && memcmp(d.embeddings, emb, sizeof emb) == 0);
    CHECK(d.labels && memcmp(d.labels, labels, sizeof labels) == 0);
    CHECK(d.split && memcmp(d.split, split, sizeof split) == 0);
    CHECK(!strcmp(d.info.class_names[0], "forest") &&
          !strcmp(d.info.class_names[1], "water bodies") && !strcmp(d.info.class_names[2], "snow"));
    CHECK(!strcmp(d.info.encoder, "run runs/eo step 1200"), "encoder '%s'", d.info.encoder);
    CHECK(!strcmp(d.info.source, "data/eo.h5"), "source '%s'", d.info.source);
    emb_h5_data_free(&d);
    remove(path);

    set_ctx("no labels, no split given");
    CHECK(write_sample(path, 0, 0) == 0);
    OK(emb_h5_read(path, &d));
    CHECK(d.info.n_classes == 0 && d.labels == NULL);
    int all_train = 1;
    for (int i = 0; i < N; i++)
        all_train &= d.split[i] == EO_SPLIT_TRAIN;
    CHECK(all_train);
    emb_h5_data_free(&d);
    remove(path);
}

static void writer_failures(void) {
    set_ctx("writer failures");
    emb_h5_info info = sample_info(K);
    emb_h5_writer *w = NULL;
    /* Aborted, and finished short of its rows: nothing is published, no temporary stays. */
    OK(emb_h5_writer_create(tmp_path("aborted.h5"), &info, &w));
    OK(emb_h5_writer_append(w, 2, emb, labels, split));
    emb_h5_writer_abort(w);
    OK(emb_h5_writer_create(tmp_path("short.h5"), &info, &w));
    OK(emb_h5_writer_append(w, 2, emb, labels, split));
    CHECK(emb_h5_writer_finish(w) != SAEC_OK);
    saec_error_clear();
    CHECK(files_in_tmpdir() == 0, "a file was left behind");
    /* Too many rows. */
    OK(emb_h5_writer_create(tmp_path("long.h5"), &info, &w));
    CHECK(emb_h5_writer_append(w, N + 1, emb, labels, split) == SAEC_ERR_OTHER);
    saec_error_clear();
    emb_h5_writer_abort(w);
    /* An unwritable place; a class name with a newline. */
    CHECK(emb_h5_writer_create("/nonexistent-dir/emb.h5", &info, &w) == SAEC_ERR_USAGE && !w);
    saec_error_clear();
    snprintf(info.class_names[1], EO_H5_NAME_MAX, "a\nb");
    CHECK(emb_h5_writer_create(tmp_path("names.h5"), &info, &w) == SAEC_ERR_DATA && !w);
    saec_error_clear();
    CHECK(files_in_tmpdir() == 0, "a file was left behind");
}

/* A good file, then `edit` applied to it with HDF5; the read must fail with SAEC_ERR_DATA and
   a message naming `culprit`. */
typedef void (*file_edit)(hid_t file);

static void expect_bad(const char *what, file_edit edit, const char *culprit) {
    set_ctx("bad file: %s", what);
    const char *path = tmp_path("bad.h5");
    CHECK(write_sample(path, K, 1) == 0);
    saec_h5_lock();
    hid_t file = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    CHECK(file >= 0);
    edit(file);
    H5Fclose(file);
    saec_h5_unlock();
    emb_h5_data d;
    const int rc = emb_h5_read(path, &d);
    CHECK(rc == SAEC_ERR_DATA, "returned %d", rc);
    CHECK(strstr(saec_error_message(), culprit) != NULL, "message '%s' does not name '%s'",
          saec_error_message(), culprit);
    CHECK(d.embeddings == NULL && d.labels == NULL && d.split == NULL);
    saec_error_clear();
    remove(path);
}

/* Replaces dataset `name` by one of type `type` and shape dims [rank] holding data. */
static void replace(hid_t file, const char *name, hid_t type, int rank, const hsize_t *dims,
                    const void *data) {
    H5Ldelete(file, name, H5P_DEFAULT);
    hid_t space = H5Screate_simple(rank, dims, NULL);
    hid_t ds = H5Dcreate2(file, name, type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (data) H5Dwrite(ds, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data);
    H5Dclose(ds);
    H5Sclose(space);
}

static void no_embeddings(hid_t f) { H5Ldelete(f, "embeddings", H5P_DEFAULT); }
static void embeddings_rank1(hid_t f) {
    hsize_t dims[1] = {N};
    replace(f, "embeddings", H5T_NATIVE_FLOAT, 1, dims, emb);
}
static void embeddings_int(hid_t f) {
    hsize_t dims[2] = {N, F};
    int32_t zeros[N * F] = {0};
    replace(f, "embeddings", H5T_NATIVE_INT32, 2, dims, zeros);
}
static void embeddings_nan(hid_t f) {
    float bad[N * F];
    memcpy(bad, emb, sizeof bad);
    bad[2 * F + 3] = NAN;
    hsize_t dims[2] = {N, F};
    replace(f, "embeddings", H5T_NATIVE_FLOAT, 2, dims, bad);
}
static void labels_short(hid_t f) {
    hsize_t dims[2] = {N - 1, K};
    replace(f, "labels", H5T_NATIVE_UINT8, 2, dims, labels);
}
/* Sets the labels' class_names to `names` (none: NULL). */
static void set_class_names(hid_t f, const char *names) {
    hid_t ds = H5Dopen2(f, "labels", H5P_DEFAULT);
    if (H5Aexists(ds, "class_names") > 0) H5Adelete(ds, "class_names");
    if (names) CHECK(saec_h5_write_string_attr(ds, "class_names", names) == 0);
    H5Dclose(ds);
}
static void labels_two(hid_t f) {
    uint8_t bad[N * K];
    memcpy(bad, labels, sizeof bad);
    bad[4] = 2;
    hsize_t dims[2] = {N, K};
    replace(f, "labels", H5T_NATIVE_UINT8, 2, dims, bad);
    set_class_names(f, "a\nb\nc");
}
static void labels_no_names(hid_t f) { set_class_names(f, NULL); }
static void labels_two_names(hid_t f) { set_class_names(f, "forest\nsnow"); }
static void split_three(hid_t f) {
    uint8_t bad[N] = {0, 2, 3, 0, 0, 0, 0};
    hsize_t dims[1] = {N};
    replace(f, "split", H5T_NATIVE_UINT8, 1, dims, bad);
}
static void split_long(hid_t f) {
    uint8_t bad[N + 1] = {0};
    hsize_t dims[1] = {N + 1};
    replace(f, "split", H5T_NATIVE_UINT8, 1, dims, bad);
}
static void labels_int8(hid_t f) { /* -1 would read as 0: refused, not clamped */
    int8_t bad[N * K] = {0};
    bad[1] = -1;
    hsize_t dims[2] = {N, K};
    replace(f, "labels", H5T_NATIVE_INT8, 2, dims, bad);
}
static void split_float(hid_t f) {
    float bad[N] = {0};
    hsize_t dims[1] = {N};
    replace(f, "split", H5T_NATIVE_FLOAT, 1, dims, bad);
}

static void bad_files(void) {
    static const struct {
        const char *what;
        file_edit edit;
        const char *culprit; /* what the message must name */
    } cases[] = {
        {"no embeddings", no_embeddings, "embeddings"},
        {"embeddings of rank 1", embeddings_rank1, "embeddings"},
        {"integer embeddings", embeddings_int, "embeddings"},
        {"a NaN embedding", embeddings_nan, "embeddings"},
        {"labels one row short", labels_short, "labels"},
        {"a label of 2", labels_two, "labels"},
        {"labels without class_names", labels_no_names, "class_names"},
        {"int8 labels", labels_int8, "labels' is int8"},
        {"two names for three classes", labels_two_names, "class_names"},
        {"a split of 3", split_three, "split"},
        {"a split one row long", split_long, "split"},
        {"a float split", split_float, "split"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        expect_bad(cases[i].what, cases[i].edit, cases[i].culprit);

    set_ctx("not a file, not HDF5");
    emb_h5_data d;
    CHECK(emb_h5_read(tmp_path("missing.h5"), &d) == SAEC_ERR_DATA);
    saec_error_clear();
    FILE *f = fopen(tmp_path("text.h5"), "w");
    fputs("not hdf5\n", f);
    fclose(f);
    CHECK(emb_h5_read(tmp_path("text.h5"), &d) == SAEC_ERR_DATA);
    CHECK(strstr(saec_error_message(), "not an HDF5 file") != NULL, "%s", saec_error_message());
    saec_error_clear();
    remove(tmp_path("text.h5"));
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/saec_test_emb_h5.XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    for (int i = 0; i < N * F; i++)
        emb[i] = (float)(i * 0.37 - 3.1);
    for (int i = 0; i < N; i++) {
        split[i] = (uint8_t)(i % 3);
        for (int k = 0; k < K; k++)
            labels[i * K + k] = (uint8_t)((i + k) % 2);
    }
    round_trip();
    writer_failures();
    bad_files();
    rmdir(tmpdir);
    return check_summary("test_emb_h5");
}
