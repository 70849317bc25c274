/* HDF5 activation datasets: reading every supported dtype exactly, the shuffled training stream
   (one visit per row per epoch, deterministic, seekable), the eval stream, every bad input, and
   the writer's ground-truth round trip and failure cleanup. Files are made with the HDF5 C API in
   a temporary directory. */
#include <dirent.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <hdf5.h>

#include "check.h"
#include "data.h"
#include "data_checks.h"
#include "h5_write.h"
#include "inspect.h"
#include "saec/saec.h"
#include "safetensors.h"
#include "tmp_dir.h"

static void cfg_for(saec_config *cfg, const char *path, const char *dataset, int64_t seed,
                    int64_t shuffle_rows) {
    memset(cfg, 0, sizeof *cfg);
    snprintf(cfg->data, sizeof cfg->data, "%s", path);
    snprintf(cfg->dataset, sizeof cfg->dataset, "%s", dataset);
    cfg->seed = seed;
    cfg->shuffle_rows = shuffle_rows;
}

/* ---- making files ---------------------------------------------------------------------------- */

/* IEEE half as an HDF5 type, built the way h5py builds it. */
static hid_t half_type(int big_endian) {
    hid_t t = H5Tcopy(big_endian ? H5T_IEEE_F32BE : H5T_IEEE_F32LE);
    H5Tset_fields(t, 15, 10, 5, 0, 10);
    H5Tset_size(t, 2);
    H5Tset_ebias(t, 15);
    return t;
}

/* Adds dataset `name` [dims] to an open file from `data` in memory type mem_type. chunk_rows 0 =
   contiguous. */
static void add_dataset(hid_t file, const char *name, hid_t file_type, hid_t mem_type, int rank,
                        const hsize_t *dims, const void *data, hsize_t chunk_rows,
                        const char *dtype_attr) {
    hid_t space = H5Screate_simple(rank, dims, NULL);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    if (chunk_rows > 0) {
        hsize_t cdims[H5S_MAX_RANK];
        for (int i = 0; i < rank; i++)
            cdims[i] = dims[i];
        cdims[0] = chunk_rows;
        H5Pset_chunk(dcpl, rank, cdims);
    }
    hid_t ds = H5Dcreate2(file, name, file_type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    CHECK(ds >= 0);
    if (data) CHECK(H5Dwrite(ds, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0);
    if (dtype_attr) {
        hid_t st = H5Tcopy(H5T_C_S1);
        H5Tset_size(st, H5T_VARIABLE);
        hid_t as = H5Screate(H5S_SCALAR);
        hid_t a = H5Acreate2(ds, "dtype", st, as, H5P_DEFAULT, H5P_DEFAULT);
        CHECK(H5Awrite(a, st, &dtype_attr) >= 0);
        H5Aclose(a);
        H5Sclose(as);
        H5Tclose(st);
    }
    H5Dclose(ds);
    H5Pclose(dcpl);
    H5Sclose(space);
}

/* One-dataset file. */
static void make_file(const char *path, const char *name, hid_t file_type, hid_t mem_type, int rank,
                      const hsize_t *dims, const void *data, hsize_t chunk_rows,
                      const char *dtype_attr) {
    hid_t file = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    CHECK(file >= 0);
    add_dataset(file, name, file_type, mem_type, rank, dims, data, chunk_rows, dtype_attr);
    H5Fclose(file);
}

/* Exact for the normal, finite values the tests use. */
static uint16_t float_to_half(float f) {
    uint32_t b;
    memcpy(&b, &f, 4);
    uint16_t sign = (uint16_t)((b >> 16) & 0x8000u);
    if ((b & 0x7fffffffu) == 0) return sign;
    int32_t exp = (int32_t)((b >> 23) & 0xff) - 127 + 15;
    return (uint16_t)(sign | (uint16_t)(exp << 10) | (uint16_t)((b >> 13) & 0x3ffu));
}

static uint16_t float_to_bf16(float f) {
    uint32_t b;
    memcpy(&b, &f, 4);
    return (uint16_t)(b >> 16);
}

/* Values exactly representable in float16 and bfloat16: quarters in [-7.5, 7.5]. */
static float exact_value(int64_t r, int64_t j) { return (float)((r * 7 + j * 3) % 61 - 30) / 4.0f; }

/* ---- reading helpers ------------------------------------------------------------------------- */

/* Reads `total` rows [total, d] of a stream in batches of `batch`. */
static int read_rows(const saec_config *cfg, saec_stream stream, int64_t total, int64_t batch,
                     float *out, int64_t d) {
    saec_data *src = NULL;
    int rc = saec_data_open_hdf5(cfg, stream, &src);
    if (rc != SAEC_OK) return rc;
    for (int64_t done = 0; done < total && rc == SAEC_OK; done += batch) {
        int64_t take = total - done < batch ? total - done : batch;
        rc = saec_data_next(src, take, out + done * d, NULL);
        if (rc == SAEC_OK) CHECK(src->cursor == done + take);
    }
    saec_data_close(src);
    return rc;
}

/* ---- dtypes ---------------------------------------------------------------------------------- */

static void test_dtypes(void) {
    enum { N = 50, D = 6 };
    static float f32[N * D];
    static uint16_t f16[N * D], bf16[N * D];
    for (int r = 0; r < N; r++)
        for (int j = 0; j < D; j++) {
            f32[r * D + j] = exact_value(r, j);
            f16[r * D + j] = float_to_half(f32[r * D + j]);
            bf16[r * D + j] = float_to_bf16(f32[r * D + j]);
        }
    hsize_t dims[2] = {N, D};
    hid_t h16le = half_type(0), h16be = half_type(1);
    struct {
        const char *file, *label;
        hid_t ftype, mtype;
        const void *data;
        hsize_t chunk;
        const char *attr;
    } cases[] = {
        {"f32.h5", "float32", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, f32, 0, NULL},
        {"f32be.h5", "float32", H5T_IEEE_F32BE, H5T_NATIVE_FLOAT, f32, 7, NULL},
        {"f16.h5", "float16", h16le, h16le, f16, 8, NULL},
        {"f16be.h5", "float16", h16be, h16le, f16, 0, NULL},
        {"bf16.h5", "bfloat16", H5T_STD_U16LE, H5T_NATIVE_UINT16, bf16, 16, "bfloat16"},
        {"bf16i.h5", "bfloat16", H5T_STD_I16LE, H5T_NATIVE_INT16, bf16, 0, "bfloat16"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const char *path = tmp_path(cases[c].file);
        make_file(path, "activations", cases[c].ftype, cases[c].mtype, 2, dims, cases[c].data,
                  cases[c].chunk, cases[c].attr);
        saec_config cfg;
        cfg_for(&cfg, path, "", 1, 16);
        cfg.d_in = D;
        saec_data *src = NULL;
        saec_error_clear();
        int rc = saec_data_open_hdf5(&cfg, SAEC_STREAM_EVAL, &src);
        CHECK(rc == SAEC_OK);
        if (rc != SAEC_OK) {
            fprintf(stderr, "  %s: %s\n", path, saec_error_message());
            continue;
        }
        CHECK(src->info.d == D && src->info.n_rows == N && !src->has_ground_truth);
        char want[640];
        snprintf(want, sizeof want, "%s:/activations [50 x 6] %s", path, cases[c].label);
        CHECK(strcmp(src->info.description, want) == 0);
        static float got[N * D];
        CHECK(saec_data_next(src, N, got, NULL) == SAEC_OK);
        CHECK(memcmp(got, f32, sizeof f32) == 0);
        saec_data_close(src);

        /* The training stream holds the same rows, shuffled. */
        static float shuffled[N * D];
        CHECK(read_rows(&cfg, SAEC_STREAM_TRAIN, N, 9, shuffled, D) == SAEC_OK);
        int seen[N] = {0};
        for (int i = 0; i < N; i++)
            for (int r = 0; r < N; r++)
                if (!seen[r] && memcmp(shuffled + i * D, f32 + r * D, D * sizeof(float)) == 0) {
                    seen[r] = 1;
                    break;
                }
        int all = 1;
        for (int r = 0; r < N; r++)
            all &= seen[r];
        CHECK(all);
    }
    H5Tclose(h16le);
    H5Tclose(h16be);
}

/* float16 edge cases: subnormals, signed zero, the largest finite value. */
static void test_half_specials(void) {
    enum { N = 2, D = 4 };
    const uint16_t h[N * D] = {0x0001, 0x03ff, 0x8000, 0x7bff, 0xfbff, 0x0400, 0x3c00, 0xbc00};
    const float want[N * D] = {ldexpf(1, -24), ldexpf(1023, -24), -0.0f, 65504.0f,
                               -65504.0f,      ldexpf(1, -14),    1.0f,  -1.0f};
    hsize_t dims[2] = {N, D};
    hid_t ht = half_type(0);
    const char *path = tmp_path("half_specials.h5");
    make_file(path, "activations", ht, ht, 2, dims, h, 0, NULL);
    H5Tclose(ht);
    saec_config cfg;
    cfg_for(&cfg, path, "", 1, 16);
    float got[N * D];
    CHECK(read_rows(&cfg, SAEC_STREAM_EVAL, N, N, got, D) == SAEC_OK);
    CHECK(memcmp(got, want, sizeof want) == 0); /* bitwise: -0 stays -0 */
}

/* ---- the streams ----------------------------------------------------------------------------- */

enum { SN = 1003, SD = 5, EPOCHS = 3 };

/* Row r: column 0 is r (its identity), column j is r/2 + j, so content travels with the id. */
static void make_stream_file(const char *path) {
    static float x[SN * SD];
    for (int r = 0; r < SN; r++)
        for (int j = 0; j < SD; j++)
            x[r * SD + j] = j == 0 ? (float)r : (float)r * 0.5f + (float)j;
    hsize_t dims[2] = {SN, SD};
    /* chunks of 10 rows with shuffle_rows 200: blocks of 20 rows, 10 blocks a window, and a
       short last block (1003 = 50 * 20 + 3) so windows differ in size */
    make_file(path, "acts", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, dims, x, 10, NULL);
}

static int rows_consistent(const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        float id = x[i * SD];
        if (id < 0 || id >= SN || id != floorf(id)) return 0;
        for (int j = 1; j < SD; j++)
            if (x[i * SD + j] != id * 0.5f + (float)j) return 0;
    }
    return 1;
}

static void test_streams(void) {
    const char *path = tmp_path("stream.h5");
    make_stream_file(path);
    saec_config cfg;
    cfg_for(&cfg, path, "acts", 7, 200);
    const int64_t total = (int64_t)SN * EPOCHS;
    float *ref = malloc((size_t)total * SD * sizeof(float));
    float *again = malloc((size_t)total * SD * sizeof(float));
    float *other = malloc((size_t)total * SD * sizeof(float));
    CHECK(read_rows(&cfg, SAEC_STREAM_TRAIN, total, 37, ref, SD) == SAEC_OK);
    CHECK(rows_consistent(ref, total));

    /* Every row exactly once per epoch; epochs shuffled differently; not file order. */
    int identity = 1;
    for (int e = 0; e < EPOCHS; e++) {
        int count[SN] = {0};
        for (int i = 0; i < SN; i++)
            count[(int)ref[((int64_t)e * SN + i) * SD]]++;
        int once = 1;
        for (int r = 0; r < SN; r++)
            once &= count[r] == 1;
        CHECK(once);
    }
    for (int i = 0; i < SN; i++)
        identity &= ref[(int64_t)i * SD] == (float)i;
    CHECK(!identity);
    CHECK(memcmp(ref, ref + (int64_t)SN * SD, (size_t)SN * SD * sizeof(float)) != 0);

    /* The shuffle is local: the first 200 stream rows come from at most two windows of ten
       20-row blocks (a window holding the short last block has fewer rows). */
    int blocks_hit[51] = {0}, n_hit = 0;
    for (int i = 0; i < 200; i++) {
        int b = (int)ref[(int64_t)i * SD] / 20;
        if (!blocks_hit[b]++) n_hit++;
    }
    CHECK(n_hit <= 20);

    /* Same seed, same stream, whatever the batch size; another seed, another stream. */
    CHECK(read_rows(&cfg, SAEC_STREAM_TRAIN, total, 1000, again, SD) == SAEC_OK);
    CHECK(memcmp(ref, again, (size_t)total * SD * sizeof(float)) == 0);
    saec_config cfg8 = cfg;
    cfg8.seed = 8;
    CHECK(read_rows(&cfg8, SAEC_STREAM_TRAIN, total, 37, other, SD) == SAEC_OK);
    CHECK(memcmp(ref, other, (size_t)total * SD * sizeof(float)) != 0);

    /* seek(c) then next == reading 0..c then next, on fresh sources. */
    const int64_t cuts[] = {0, 1, 19, 20, 199, 200, 517, 1000, 1002, 1003, 1004, 1500, 2005, 2500};
    float buf[300 * SD];
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        int64_t c = cuts[i];
        int64_t n = total - c < 300 ? total - c : 300;
        saec_data *src = NULL;
        CHECK(saec_data_open_hdf5(&cfg, SAEC_STREAM_TRAIN, &src) == SAEC_OK);
        CHECK(saec_data_seek(src, c) == SAEC_OK && src->cursor == c);
        CHECK(saec_data_next(src, n, buf, NULL) == SAEC_OK);
        CHECK(memcmp(buf, ref + c * SD, (size_t)n * SD * sizeof(float)) == 0);
        saec_data_close(src);
    }
    /* ... and seeking back and forth on one source, also while the loader is busy. */
    {
        saec_data *src = NULL;
        CHECK(saec_data_open_hdf5(&cfg, SAEC_STREAM_TRAIN, &src) == SAEC_OK);
        const int64_t hops[][2] = {{2000, 10}, {5, 10},  {1003, 250},
                                   {990, 30},  {0, 300}, {2700, 300}};
        for (size_t i = 0; i < sizeof hops / sizeof hops[0]; i++) {
            CHECK(saec_data_seek(src, hops[i][0]) == SAEC_OK);
            CHECK(saec_data_next(src, hops[i][1], buf, NULL) == SAEC_OK);
            CHECK(memcmp(buf, ref + hops[i][0] * SD, (size_t)hops[i][1] * SD * sizeof(float)) == 0);
        }
        saec_data_close(src);
    }

    /* Eval: file order from row 0, wrapping, the same for any seed and shuffle window. */
    {
        const int64_t n = SN * 5 / 2;
        CHECK(read_rows(&cfg, SAEC_STREAM_EVAL, n, 64, other, SD) == SAEC_OK);
        int in_order = 1;
        for (int64_t i = 0; i < n; i++)
            in_order &= other[i * SD] == (float)(i % SN);
        CHECK(in_order);
        CHECK(rows_consistent(other, n));
        saec_data *src = NULL;
        CHECK(saec_data_open_hdf5(&cfg, SAEC_STREAM_EVAL, &src) == SAEC_OK);
        CHECK(saec_data_seek(src, 2 * SN + 17) == SAEC_OK);
        CHECK(saec_data_next(src, 1, buf, NULL) == SAEC_OK && buf[0] == 17.0f);
        saec_data_close(src);
    }

    /* Eval over several read-ahead windows (8 MiB each: 40000 rows of 64 floats make two). */
    {
        enum { EN = 40000, ED = 64 };
        float *x = malloc((size_t)EN * ED * sizeof(float));
        for (int64_t r = 0; r < EN; r++)
            for (int j = 0; j < ED; j++)
                x[r * ED + j] = j == 0 ? (float)r : (float)(j - r % 3);
        hsize_t dims[2] = {EN, ED};
        const char *epath = tmp_path("eval.h5");
        make_file(epath, "activations", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, dims, x, 0, NULL);
        saec_config ecfg;
        cfg_for(&ecfg, epath, "", 5, 1000);
        const int64_t n = EN * 2 + 12345;
        float *got = malloc((size_t)n * ED * sizeof(float));
        CHECK(read_rows(&ecfg, SAEC_STREAM_EVAL, n, 5000, got, ED) == SAEC_OK);
        int same = 1;
        for (int64_t i = 0; i < n; i++)
            same &= memcmp(got + i * ED, x + (i % EN) * ED, ED * sizeof(float)) == 0;
        CHECK(same);
        saec_data *src = NULL;
        CHECK(saec_data_open_hdf5(&ecfg, SAEC_STREAM_EVAL, &src) == SAEC_OK);
        const int64_t hops[] = {39990, 5, 32767, 32768, 80000 + 39999};
        for (size_t i = 0; i < sizeof hops / sizeof hops[0]; i++) {
            CHECK(saec_data_seek(src, hops[i]) == SAEC_OK);
            CHECK(saec_data_next(src, 20, got, NULL) == SAEC_OK);
            int ok = 1;
            for (int64_t k = 0; k < 20; k++)
                ok &= got[k * ED] == (float)((hops[i] + k) % EN);
            CHECK(ok);
        }
        saec_data_close(src);
        free(got);
        free(x);
    }

    /* Closing while the loader is mid-window never hangs. */
    for (int i = 0; i < 20; i++) {
        saec_data *src = NULL;
        CHECK(saec_data_open_hdf5(&cfg, i % 2 ? SAEC_STREAM_EVAL : SAEC_STREAM_TRAIN, &src) ==
              SAEC_OK);
        if (i % 3 == 0) CHECK(saec_data_next(src, 1, buf, NULL) == SAEC_OK);
        if (i % 4 == 0) CHECK(saec_data_seek(src, 1500) == SAEC_OK);
        saec_data_close(src);
    }
    /* A training and an eval source open at once (two loader threads on one file). */
    {
        saec_data *a = NULL, *b = NULL;
        CHECK(saec_data_open_hdf5(&cfg, SAEC_STREAM_TRAIN, &a) == SAEC_OK);
        CHECK(saec_data_open_hdf5(&cfg, SAEC_STREAM_EVAL, &b) == SAEC_OK);
        int ok = 1;
        for (int64_t done = 0; done < total; done += 300) {
            int64_t n = total - done < 300 ? total - done : 300;
            ok &= saec_data_next(a, n, buf, NULL) == SAEC_OK;
            ok &= memcmp(buf, ref + done * SD, (size_t)n * SD * sizeof(float)) == 0;
            ok &= saec_data_next(b, 7, buf, NULL) == SAEC_OK;
        }
        CHECK(ok);
        saec_data_close(a);
        saec_data_close(b);
    }
    free(ref);
    free(again);
    free(other);
}

/* ---- bad inputs ------------------------------------------------------------------------------ */

/* Opens (and, when open succeeds, reads a whole epoch of) a file that must fail with
   SAEC_ERR_DATA naming file, dataset and each of `also`. */
static void expect_data_error(const char *what, const char *path, const char *dataset,
                              saec_stream stream, int64_t d_in, const char *also1,
                              const char *also2) {
    saec_config cfg;
    cfg_for(&cfg, path, dataset, 3, 64);
    cfg.d_in = d_in;
    saec_error_clear();
    saec_data *src = NULL;
    int rc = saec_data_open_hdf5(&cfg, stream, &src);
    if (rc == SAEC_OK) {
        float *rows = malloc((size_t)src->info.n_rows * (size_t)src->info.d * sizeof(float));
        rc = saec_data_next(src, src->info.n_rows, rows, NULL);
        /* the error repeats rather than being skipped */
        if (rc != SAEC_OK)
            CHECK(saec_data_next(src, src->info.n_rows, rows, NULL) == SAEC_ERR_DATA);
        free(rows);
        saec_data_close(src);
    } else {
        CHECK(src == NULL);
    }
    const char *msg = saec_error_message();
    int ok = rc == SAEC_ERR_DATA && strstr(msg, path) &&
             strstr(msg, dataset[0] ? dataset : "activations") &&
             (!also1 || strstr(msg, also1) || strstr(saec_error_hint(), also1)) &&
             (!also2 || strstr(msg, also2) || strstr(saec_error_hint(), also2));
    if (!ok) {
        fprintf(stderr, "bad input '%s': rc %d, message \"%s\", hint \"%s\"\n", what, rc, msg,
                saec_error_hint());
        n_failures++;
    } else if (getenv("SAEC_TEST_VERBOSE")) {
        printf("%-14s %s\n%14s (hint: %s)\n", what, msg, "", saec_error_hint());
    }
    saec_error_clear();
}

static void test_bad_inputs(void) {
    enum { N = 100, D = 4 };
    static float x[N * D];
    for (int i = 0; i < N * D; i++)
        x[i] = exact_value(i / D, i % D);
    hsize_t dims[2] = {N, D};

    expect_data_error("missing file", tmp_path("nope.h5"), "", SAEC_STREAM_TRAIN, 0, NULL, NULL);

    const char *text = tmp_path("notes.h5");
    FILE *f = fopen(text, "w");
    fputs("not an HDF5 file\n", f);
    fclose(f);
    expect_data_error("not HDF5", text, "", SAEC_STREAM_TRAIN, 0, "not an HDF5 file", NULL);
    expect_data_error("directory", tmpdir, "acts", SAEC_STREAM_TRAIN, 0, "directory", NULL);

    const char *two = tmp_path("two.h5");
    hid_t file = H5Fcreate(two, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    add_dataset(file, "resid_pre", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, dims, x, 0, NULL);
    add_dataset(file, "resid_post", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, dims, x, 0, NULL);
    hid_t grp = H5Gcreate2(file, "grp", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    add_dataset(grp, "inner", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, dims, x, 0, NULL);
    H5Gclose(grp);
    H5Fclose(file);
    /* the hint lists the datasets that are there, with their shapes, in groups too */
    expect_data_error("missing name", two, "", SAEC_STREAM_TRAIN, 0,
                      "grp/inner [100, 4], resid_post [100, 4], resid_pre [100, 4]", NULL);
    expect_data_error("nested name", two, "layer/5", SAEC_STREAM_TRAIN, 0, "resid_pre", NULL);
    expect_data_error("a group", two, "grp", SAEC_STREAM_TRAIN, 0, "not a dataset", NULL);

    hsize_t d1[1] = {N};
    make_file(tmp_path("rank1.h5"), "activations", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 1, d1, x, 0,
              NULL);
    expect_data_error("rank 1", tmp_path("rank1.h5"), "", SAEC_STREAM_TRAIN, 0, "rank 1", "[100]");
    hsize_t d3[3] = {10, 5, 8};
    make_file(tmp_path("rank3.h5"), "activations", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 3, d3, x, 0,
              NULL);
    expect_data_error("rank 3", tmp_path("rank3.h5"), "", SAEC_STREAM_TRAIN, 0, "rank 3",
                      "[10, 5, 8]");
    hsize_t d0[2] = {0, D};
    make_file(tmp_path("empty.h5"), "activations", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, d0, NULL, 0,
              NULL);
    expect_data_error("zero rows", tmp_path("empty.h5"), "", SAEC_STREAM_TRAIN, 0, "no rows", NULL);

    make_file(tmp_path("w4.h5"), "acts", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, dims, x, 0, NULL);
    expect_data_error("width", tmp_path("w4.h5"), "acts", SAEC_STREAM_TRAIN, 9, "width 4",
                      "d_in is 9");

    static int32_t xi[N * D];
    make_file(tmp_path("int.h5"), "activations", H5T_STD_I32LE, H5T_NATIVE_INT32, 2, dims, xi, 0,
              NULL);
    expect_data_error("int32", tmp_path("int.h5"), "", SAEC_STREAM_TRAIN, 0, "int32", "float32");
    static uint16_t xu[N * D];
    make_file(tmp_path("u16.h5"), "activations", H5T_STD_U16LE, H5T_NATIVE_UINT16, 2, dims, xu, 0,
              NULL);
    expect_data_error("uint16", tmp_path("u16.h5"), "", SAEC_STREAM_TRAIN, 0, "uint16", "bfloat16");
    static double xd[N * D];
    make_file(tmp_path("f64.h5"), "activations", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 2, dims, xd, 0,
              NULL);
    expect_data_error("float64", tmp_path("f64.h5"), "", SAEC_STREAM_TRAIN, 0, "float64", NULL);

    /* Non-finite rows: found as rows are converted, named by their row in the file. */
    static float bad[N * D];
    memcpy(bad, x, sizeof x);
    bad[37 * D + 2] = NAN;
    make_file(tmp_path("nan.h5"), "activations", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, dims, bad, 8,
              NULL);
    expect_data_error("NaN row", tmp_path("nan.h5"), "", SAEC_STREAM_TRAIN, 0, "row 37 ", "NaN");
    expect_data_error("NaN row eval", tmp_path("nan.h5"), "", SAEC_STREAM_EVAL, 0, "row 37 ",
                      "clean or drop");
    memcpy(bad, x, sizeof x);
    bad[99 * D + 0] = -INFINITY;
    make_file(tmp_path("inf.h5"), "activations", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, dims, bad, 0,
              NULL);
    expect_data_error("Inf row", tmp_path("inf.h5"), "", SAEC_STREAM_TRAIN, 0, "row 99 ", "Inf");
    static uint16_t h[N * D], bh[N * D];
    for (int i = 0; i < N * D; i++) {
        h[i] = float_to_half(x[i]);
        bh[i] = float_to_bf16(x[i]);
    }
    h[5 * D + 3] = 0x7c00; /* +Inf */
    hid_t ht = half_type(0);
    make_file(tmp_path("inf16.h5"), "activations", ht, ht, 2, dims, h, 0, NULL);
    H5Tclose(ht);
    expect_data_error("Inf f16", tmp_path("inf16.h5"), "", SAEC_STREAM_EVAL, 0, "row 5 ", "Inf");
    bh[63 * D + 1] = 0x7fc0; /* NaN */
    make_file(tmp_path("nanbf16.h5"), "activations", H5T_STD_U16LE, H5T_NATIVE_UINT16, 2, dims, bh,
              0, "bfloat16");
    expect_data_error("NaN bf16", tmp_path("nanbf16.h5"), "", SAEC_STREAM_TRAIN, 0, "row 63 ",
                      "NaN");
}

/* ---- writing --------------------------------------------------------------------------------- */

typedef struct {
    saec_data base;
    int64_t fail_at; /* -1: never */
    saec_ground_truth gt;
} test_source;

enum { WD = 4, WF = 6 };

static float written_value(int64_t r, int64_t j) { return (float)(r * WD + j) * 0.25f; }

static int ts_next(saec_data *base, int64_t n, float *rows, int32_t *timesteps) {
    (void)timesteps;
    test_source *s = (test_source *)base;
    if (s->fail_at >= 0 && base->cursor + n > s->fail_at)
        return saec_fail(SAEC_ERR_DATA, NULL, "test source fails at row %" PRId64, s->fail_at);
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < WD; j++)
            rows[i * WD + j] = written_value(base->cursor + i, j);
    base->cursor += n;
    return SAEC_OK;
}

static int ts_seek(saec_data *base, int64_t cursor) {
    base->cursor = cursor;
    return SAEC_OK;
}

static void *dup_bytes(const void *p, size_t bytes) {
    void *q = malloc(bytes);
    memcpy(q, p, bytes);
    return q;
}

static int ts_ground_truth(saec_data *base, saec_ground_truth *out) {
    test_source *s = (test_source *)base;
    *out = s->gt;
    out->directions = dup_bytes(s->gt.directions, WF * WD * sizeof(float));
    out->probabilities = dup_bytes(s->gt.probabilities, WF * sizeof(float));
    out->offset = dup_bytes(s->gt.offset, WD * sizeof(float));
    out->parent = dup_bytes(s->gt.parent, WF * sizeof(int32_t));
    return SAEC_OK;
}

static void ts_close(saec_data *base) { (void)base; }

static const saec_data_vtable ts_vtable = {ts_next, ts_seek, ts_ground_truth, ts_close};

static void test_write(void) {
    static float directions[WF * WD], probabilities[WF] = {0.5f, 0.25f, 0.125f, 0.1f, 0.05f, 0.01f},
                                      offset[WD] = {1, -2, 0.5f, 0};
    static int32_t parent[WF] = {-1, -1, 0, 0, 1, -1};
    for (int i = 0; i < WF * WD; i++)
        directions[i] = (float)(i % 7) / 7.0f;
    test_source src;
    memset(&src, 0, sizeof src);
    src.base.vt = &ts_vtable;
    src.base.info.d = WD;
    src.base.info.n_rows = -1;
    src.base.info.description = "test source";
    src.base.has_ground_truth = 1;
    src.fail_at = -1;
    src.gt = (saec_ground_truth){WF, WD, directions, probabilities, offset, parent, 0.0625, NULL};

    const char *path = tmp_path("gen.h5");
    const char *prov = "{\"generator\":\"test\",\"seed\":11}";
    const int64_t rows = 300;
    saec_error_clear();
    int rc = saec_h5_write_dataset(path, &src.base, rows, prov, 1);
    CHECK(rc == SAEC_OK);
    if (rc != SAEC_OK) fprintf(stderr, "  write: %s\n", saec_error_message());
    CHECK(count_entries(tmpdir, ".tmp.") == 0);

    saec_config cfg;
    cfg_for(&cfg, path, "", 1, 64);
    saec_data *in = NULL;
    CHECK(saec_data_open_hdf5(&cfg, SAEC_STREAM_EVAL, &in) == SAEC_OK);
    if (in) {
        CHECK(in->has_ground_truth && in->info.n_rows == rows && in->info.d == WD);
        static float got[300 * WD];
        CHECK(saec_data_next(in, rows, got, NULL) == SAEC_OK);
        int same = 1;
        for (int64_t r = 0; r < rows; r++)
            for (int j = 0; j < WD; j++)
                same &= got[r * WD + j] == written_value(r, j);
        CHECK(same);
        saec_ground_truth gt;
        CHECK(saec_data_ground_truth(in, &gt) == SAEC_OK);
        CHECK(gt.n_features == WF && gt.d == WD && gt.noise == 0.0625);
        CHECK(gt.directions && memcmp(gt.directions, directions, sizeof directions) == 0);
        CHECK(gt.probabilities &&
              memcmp(gt.probabilities, probabilities, sizeof probabilities) == 0);
        CHECK(gt.offset && memcmp(gt.offset, offset, sizeof offset) == 0);
        CHECK(gt.parent && memcmp(gt.parent, parent, sizeof parent) == 0);
        saec_ground_truth_free(&gt);
        saec_data_close(in);
    }
    /* provenance and chunking, read with the plain HDF5 API */
    hid_t file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    CHECK(file >= 0);
    hid_t attr = H5Aopen(file, "saec_provenance", H5P_DEFAULT);
    CHECK(attr >= 0);
    hid_t st = H5Tcopy(H5T_C_S1);
    H5Tset_size(st, H5T_VARIABLE);
    char *text = NULL;
    CHECK(H5Aread(attr, st, &text) >= 0 && text && strcmp(text, prov) == 0);
    if (text) H5free_memory(text);
    H5Tclose(st);
    H5Aclose(attr);
    hid_t ds = H5Dopen2(file, "activations", H5P_DEFAULT);
    hid_t dcpl = H5Dget_create_plist(ds);
    hsize_t cdims[2] = {0, 0};
    CHECK(H5Pget_layout(dcpl) == H5D_CHUNKED && H5Pget_chunk(dcpl, 2, cdims) == 2);
    CHECK(cdims[0] >= 1 && cdims[0] <= (hsize_t)rows && cdims[1] == WD);
    hid_t type = H5Dget_type(ds);
    CHECK(H5Tequal(type, H5T_IEEE_F32LE) > 0);
    H5Tclose(type);
    H5Pclose(dcpl);
    H5Dclose(ds);
    H5Fclose(file);

    /* inspect describes the file */
    FILE *out = tmpfile();
    CHECK(saec_inspect(path, out) == SAEC_OK);
    rewind(out);
    char listing[8192];
    size_t len = fread(listing, 1, sizeof listing - 1, out);
    listing[len] = '\0';
    fclose(out);
    CHECK(strstr(listing, "/activations  dataset [300, 4] float32, chunks [300, 4]") != NULL);
    CHECK(strstr(listing, "/ground_truth/parent  dataset [6] int32") != NULL);
    CHECK(strstr(listing, "@noise = 0.0625") != NULL);
    CHECK(strstr(listing, "\"generator\": \"test\"") != NULL);
    if (getenv("SAEC_TEST_VERBOSE")) fputs(listing, stdout);
    saec_error_clear();
    CHECK(saec_inspect(tmp_path("notes.h5"), stdout) == SAEC_ERR_DATA);
    CHECK(strstr(saec_error_message(), tmp_path("notes.h5")) != NULL);
    saec_error_clear();
    CHECK(saec_inspect(tmp_path("absent.h5"), stdout) == SAEC_ERR_DATA);
    saec_error_clear();

    /* No ground truth: none written, none claimed. */
    src.base.has_ground_truth = 0;
    src.base.cursor = 0;
    const char *plain = tmp_path("plain.h5");
    CHECK(saec_h5_write_dataset(plain, &src.base, 10, NULL, 0) == SAEC_OK);
    cfg_for(&cfg, plain, "", 1, 64);
    in = NULL;
    CHECK(saec_data_open_hdf5(&cfg, SAEC_STREAM_TRAIN, &in) == SAEC_OK);
    if (in) {
        saec_ground_truth gt;
        saec_error_clear();
        CHECK(!in->has_ground_truth);
        CHECK(in->vt->ground_truth(in, &gt) == SAEC_ERR_DATA);
        CHECK(strstr(saec_error_message(), "no ground truth in") &&
              strstr(saec_error_message(), plain));
        saec_data_close(in);
    }
    saec_error_clear();

    /* An unwritable location: a usage error naming the path, and nothing left behind. */
    int before = count_entries(tmpdir, "");
    const char *nowhere = tmp_path("no/such/dir/out.h5");
    src.base.cursor = 0;
    CHECK(saec_h5_write_dataset(nowhere, &src.base, 10, NULL, 0) == SAEC_ERR_USAGE);
    CHECK(strstr(saec_error_message(), nowhere) != NULL);
    CHECK(count_entries(tmpdir, "") == before);
    saec_error_clear();

    /* A source that fails midway: its error, and neither the file nor the temporary remains. */
    src.base.cursor = 0;
    src.fail_at = 150;
    src.base.has_ground_truth = 1;
    const char *broken = tmp_path("broken.h5");
    CHECK(saec_h5_write_dataset(broken, &src.base, rows, prov, 0) == SAEC_ERR_DATA);
    CHECK(strstr(saec_error_message(), "test source fails") != NULL);
    CHECK(access(broken, F_OK) != 0);
    CHECK(count_entries(tmpdir, ".tmp.") == 0);
    CHECK(count_entries(tmpdir, "") == before);
    saec_error_clear();
}

/* ---- timesteps ------------------------------------------------------------------------------- */

enum { TN = 1003, TD = 3, TT = 500 };

static int32_t ts_of(int64_t r) { return (int32_t)((r * 37 + 11) % TT); }

/* Activations [TN, TD] (column 0 is the row id, chunks of 10 rows) under `acts`, and timesteps
   `tname` [tn] (tn <= TN rows, chunks of 7) from `ts` in memory type mem_type. */
static void make_ts_file(const char *path, const char *acts, const char *tname, hid_t ftype,
                         hid_t mtype, int trank, hsize_t tn, const void *ts) {
    static float x[TN * TD];
    for (int r = 0; r < TN; r++)
        for (int j = 0; j < TD; j++)
            x[r * TD + j] = j == 0 ? (float)r : (float)r * 0.25f - (float)j;
    hid_t file = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    CHECK(file >= 0);
    if (strchr(acts, '/')) {
        char grp[64];
        snprintf(grp, sizeof grp, "%.*s", (int)(strchr(acts, '/') - acts), acts);
        H5Gclose(H5Gcreate2(file, grp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
    }
    hsize_t dims[2] = {TN, TD};
    add_dataset(file, acts, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, dims, x, 10, NULL);
    hsize_t tdims[2] = {tn, 1};
    if (tname) add_dataset(file, tname, ftype, mtype, trank, tdims, ts, trank == 1 ? 7 : 0, NULL);
    H5Fclose(file);
}

/* Every row of the stream carries its own timestep: ts[i] == ts_of(id of row i). */
static int pairs_consistent(const float *x, const int32_t *ts, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        if (ts[i] != ts_of((int64_t)x[i * TD])) return 0;
    return 1;
}

/* Reads `total` rows and timesteps of a stream in batches of `batch`. */
static int read_rows_ts(const saec_config *cfg, saec_stream stream, int64_t total, int64_t batch,
                        float *out, int32_t *ts, int64_t d) {
    saec_data *src = NULL;
    int rc = saec_data_open_hdf5(cfg, stream, &src);
    if (rc != SAEC_OK) return rc;
    CHECK(src->has_timesteps && src->timesteps_max == cfg->timesteps);
    for (int64_t done = 0; done < total && rc == SAEC_OK; done += batch) {
        int64_t take = total - done < batch ? total - done : batch;
        rc = saec_data_next(src, take, out + done * d, ts + done);
    }
    saec_data_close(src);
    return rc;
}

/* Opens and reads a whole epoch (with timesteps) of a file that must fail with SAEC_ERR_DATA
   naming the file, the timesteps dataset and each of `also` (in the message or the hint). */
static void expect_ts_error(const char *what, const char *path, saec_stream stream,
                            const char *also1, const char *also2) {
    saec_config cfg;
    cfg_for(&cfg, path, "", 3, 200);
    cfg.timesteps = TT;
    saec_error_clear();
    saec_data *src = NULL;
    int rc = saec_data_open_hdf5(&cfg, stream, &src);
    if (rc == SAEC_OK) {
        static float rows[TN * TD];
        static int32_t ts[TN];
        rc = saec_data_next(src, TN, rows, ts);
        saec_data_close(src);
    }
    const char *msg = saec_error_message(), *hint = saec_error_hint();
    int ok = rc == SAEC_ERR_DATA && strstr(msg, path) && strstr(msg, "timesteps") &&
             (!also1 || strstr(msg, also1) || strstr(hint, also1)) &&
             (!also2 || strstr(msg, also2) || strstr(hint, also2));
    if (!ok) {
        fprintf(stderr, "bad timesteps '%s': rc %d, message \"%s\", hint \"%s\"\n", what, rc, msg,
                hint);
        n_failures++;
    } else if (getenv("SAEC_TEST_VERBOSE")) {
        printf("%-14s %s\n%14s (hint: %s)\n", what, msg, "", hint);
    }
    saec_error_clear();
}

static void test_timesteps(void) {
    static int32_t ts[TN];
    for (int r = 0; r < TN; r++)
        ts[r] = ts_of(r);
    const char *path = tmp_path("ts.h5");
    make_ts_file(path, "activations", "timesteps", H5T_STD_I32LE, H5T_NATIVE_INT32, 1, TN, ts);
    saec_config cfg;
    cfg_for(&cfg, path, "", 7, 200);
    cfg.timesteps = TT;

    /* The shuffled stream: every row with its own timestep, over epochs, whatever the batch. */
    const int64_t total = (int64_t)TN * 2;
    float *ref = malloc((size_t)total * TD * sizeof(float));
    int32_t *tref = malloc((size_t)total * sizeof(int32_t));
    float *buf = malloc((size_t)total * TD * sizeof(float));
    int32_t *tbuf = malloc((size_t)total * sizeof(int32_t));
    CHECK(read_rows_ts(&cfg, SAEC_STREAM_TRAIN, total, 37, ref, tref, TD) == SAEC_OK);
    CHECK(pairs_consistent(ref, tref, total));
    int shuffled = 0;
    for (int64_t i = 0; i < TN; i++)
        shuffled |= ref[i * TD] != (float)i;
    CHECK(shuffled);
    CHECK(read_rows_ts(&cfg, SAEC_STREAM_TRAIN, total, 500, buf, tbuf, TD) == SAEC_OK);
    CHECK(memcmp(tref, tbuf, (size_t)total * sizeof(int32_t)) == 0);
    /* the rows without their timesteps are the same rows */
    CHECK(read_rows(&cfg, SAEC_STREAM_TRAIN, total, 64, buf, TD) == SAEC_OK);
    CHECK(memcmp(ref, buf, (size_t)total * TD * sizeof(float)) == 0);
    /* seek: fresh sources and one source hopping */
    const int64_t cuts[] = {0, 1, 199, 200, 517, 1002, 1003, 1500, 2005};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        const int64_t c = cuts[i], n = total - c < 200 ? total - c : 200;
        saec_data *src = NULL;
        CHECK(saec_data_open_hdf5(&cfg, SAEC_STREAM_TRAIN, &src) == SAEC_OK);
        if (!src) continue;
        CHECK(saec_data_seek(src, c) == SAEC_OK);
        CHECK(saec_data_next(src, n, buf, tbuf) == SAEC_OK);
        CHECK(memcmp(tbuf, tref + c, (size_t)n * sizeof(int32_t)) == 0);
        CHECK(memcmp(buf, ref + c * TD, (size_t)n * TD * sizeof(float)) == 0);
        saec_data_close(src);
    }
    {
        saec_data *src = NULL;
        CHECK(saec_data_open_hdf5(&cfg, SAEC_STREAM_TRAIN, &src) == SAEC_OK);
        const int64_t hops[][2] = {{1900, 100}, {3, 10}, {1003, 250}, {990, 30}, {0, 300}};
        for (size_t i = 0; src && i < sizeof hops / sizeof hops[0]; i++) {
            CHECK(saec_data_seek(src, hops[i][0]) == SAEC_OK);
            CHECK(saec_data_next(src, hops[i][1], buf, tbuf) == SAEC_OK);
            CHECK(memcmp(tbuf, tref + hops[i][0], (size_t)hops[i][1] * sizeof(int32_t)) == 0);
        }
        saec_data_close(src);
    }
    /* eval: file order */
    CHECK(read_rows_ts(&cfg, SAEC_STREAM_EVAL, TN + 50, 64, buf, tbuf, TD) == SAEC_OK);
    int in_order = 1;
    for (int64_t i = 0; i < TN + 50; i++)
        in_order &= tbuf[i] == ts_of(i % TN) && buf[i * TD] == (float)(i % TN);
    CHECK(in_order);
    {
        saec_data *src = NULL;
        CHECK(saec_data_open_hdf5(&cfg, SAEC_STREAM_EVAL, &src) == SAEC_OK);
        if (src) {
            CHECK(strstr(src->info.description, "timesteps in [0, 500)") != NULL);
            saec_data_close(src);
        }
    }

    /* Other integer dtypes are converted; a group's own timesteps dataset is found. */
    static int64_t t64[TN];
    static int16_t t16[TN];
    static uint8_t t8[TN];
    for (int r = 0; r < TN; r++)
        t64[r] = ts[r], t16[r] = (int16_t)ts[r], t8[r] = (uint8_t)(ts[r] % 200);
    struct {
        const char *file, *acts;
        hid_t ftype, mtype;
        const void *data;
        int mod;
    } kinds[] = {
        {"ts64.h5", "activations", H5T_STD_I64LE, H5T_NATIVE_INT64, t64, TT},
        {"ts32be.h5", "activations", H5T_STD_I32BE, H5T_NATIVE_INT32, ts, TT},
        {"ts16.h5", "activations", H5T_STD_I16LE, H5T_NATIVE_INT16, t16, TT},
        {"ts8.h5", "activations", H5T_STD_U8LE, H5T_NATIVE_UINT8, t8, 200},
        {"tsgrp.h5", "grp/acts", H5T_STD_I32LE, H5T_NATIVE_INT32, ts, TT},
    };
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        const char *kpath = tmp_path(kinds[k].file);
        const int grp = strchr(kinds[k].acts, '/') != NULL;
        make_ts_file(kpath, kinds[k].acts, grp ? "grp/timesteps" : "timesteps", kinds[k].ftype,
                     kinds[k].mtype, 1, TN, kinds[k].data);
        saec_config kcfg;
        cfg_for(&kcfg, kpath, kinds[k].acts, 1, 200);
        kcfg.timesteps = TT;
        CHECK(read_rows_ts(&kcfg, SAEC_STREAM_EVAL, TN, 300, buf, tbuf, TD) == SAEC_OK);
        int same = 1;
        for (int r = 0; r < TN; r++)
            same &= tbuf[r] == ts_of(r) % kinds[k].mod;
        if (!same) fprintf(stderr, "  %s: timesteps differ\n", kinds[k].file);
        CHECK(same);
    }
    /* No timesteps dataset: none claimed, the caller's array untouched. */
    {
        const char *none = tmp_path("ts_none.h5");
        make_ts_file(none, "activations", NULL, 0, 0, 1, 0, NULL);
        saec_config ncfg;
        cfg_for(&ncfg, none, "", 1, 200);
        saec_data *src = NULL;
        CHECK(saec_data_open_hdf5(&ncfg, SAEC_STREAM_TRAIN, &src) == SAEC_OK);
        if (src) {
            tbuf[0] = tbuf[9] = -5;
            CHECK(!src->has_timesteps && src->timesteps_max == 0);
            CHECK(saec_data_next(src, 10, buf, tbuf) == SAEC_OK && tbuf[0] == -5 && tbuf[9] == -5);
            saec_data_close(src);
        }
    }

    /* Bad timesteps: each names the file, the dataset and the culprit. */
    make_ts_file(tmp_path("ts_short.h5"), "activations", "timesteps", H5T_STD_I32LE,
                 H5T_NATIVE_INT32, 1, TN - 1, ts);
    expect_ts_error("short", tmp_path("ts_short.h5"), SAEC_STREAM_TRAIN, "1002 rows", "1003");
    static float tf[TN];
    for (int r = 0; r < TN; r++)
        tf[r] = (float)ts[r];
    make_ts_file(tmp_path("ts_float.h5"), "activations", "timesteps", H5T_IEEE_F32LE,
                 H5T_NATIVE_FLOAT, 1, TN, tf);
    expect_ts_error("float", tmp_path("ts_float.h5"), SAEC_STREAM_TRAIN, "float32", "int32");
    make_ts_file(tmp_path("ts_rank2.h5"), "activations", "timesteps", H5T_STD_I32LE,
                 H5T_NATIVE_INT32, 2, TN, ts);
    expect_ts_error("rank 2", tmp_path("ts_rank2.h5"), SAEC_STREAM_TRAIN, "rank 2", NULL);
    static int32_t bad[TN];
    memcpy(bad, ts, sizeof ts);
    bad[617] = TT;
    make_ts_file(tmp_path("ts_big.h5"), "activations", "timesteps", H5T_STD_I32LE, H5T_NATIVE_INT32,
                 1, TN, bad);
    expect_ts_error("t = T", tmp_path("ts_big.h5"), SAEC_STREAM_TRAIN, "row 617 ", "timestep 500,");
    expect_ts_error("t = T eval", tmp_path("ts_big.h5"), SAEC_STREAM_EVAL, "row 617 ",
                    "set --timesteps to the diffusion schedule's length");
    memcpy(bad, ts, sizeof ts);
    bad[5] = -3;
    make_ts_file(tmp_path("ts_neg.h5"), "activations", "timesteps", H5T_STD_I32LE, H5T_NATIVE_INT32,
                 1, TN, bad);
    expect_ts_error("t < 0", tmp_path("ts_neg.h5"), SAEC_STREAM_TRAIN, "row 5 ", "timestep -3,");
    t64[999] = (int64_t)1 << 40; /* reported as it is, not clipped to int32 */
    make_ts_file(tmp_path("ts_huge.h5"), "activations", "timesteps", H5T_STD_I64LE,
                 H5T_NATIVE_INT64, 1, TN, t64);
    expect_ts_error("t = 2^40", tmp_path("ts_huge.h5"), SAEC_STREAM_EVAL, "row 999 ",
                    "timestep 1099511627776,");
    free(ref), free(tref), free(buf), free(tbuf);
}

/* `saec gen timestep`: the synthetic stream with its timesteps and t_center, through the file. */
static void test_timestep_gen(void) {
    saec_config syn;
    saec_config_defaults(&syn);
    snprintf(syn.synthetic, sizeof syn.synthetic, "timestep");
    syn.d_in = 8;
    syn.syn_features = 24;
    syn.seed = 5;
    syn.timesteps = 300;
    enum { GN = 2500, GD = 8 };
    saec_data *gen = NULL;
    CHECK(saec_data_open(&syn, SAEC_STREAM_TRAIN, &gen) == SAEC_OK);
    if (!gen) return;
    const char *path = tmp_path("gen_ts.h5");
    saec_error_clear();
    CHECK(saec_h5_write_dataset(path, gen, GN, "{\"generator\":\"timestep\"}", 0) == SAEC_OK);
    static float want[GN * GD], got[GN * GD];
    static int32_t twant[GN], tgot[GN];
    CHECK(saec_data_seek(gen, 0) == SAEC_OK && saec_data_next(gen, GN, want, twant) == SAEC_OK);
    saec_ground_truth gt_syn;
    CHECK(saec_data_ground_truth(gen, &gt_syn) == SAEC_OK);
    saec_data_close(gen);

    saec_config cfg;
    cfg_for(&cfg, path, "", 9, 256);
    cfg.timesteps = 300;
    saec_data *in = NULL;
    CHECK(saec_data_open_hdf5(&cfg, SAEC_STREAM_EVAL, &in) == SAEC_OK);
    if (in) {
        CHECK(in->has_timesteps && in->timesteps_max == 300 && in->has_ground_truth);
        CHECK(saec_data_next(in, GN, got, tgot) == SAEC_OK);
        CHECK(memcmp(got, want, sizeof want) == 0);
        CHECK(memcmp(tgot, twant, sizeof twant) == 0);
        saec_ground_truth gt;
        CHECK(saec_data_ground_truth(in, &gt) == SAEC_OK);
        CHECK(gt.t_center && gt_syn.t_center &&
              memcmp(gt.t_center, gt_syn.t_center, 24 * sizeof(float)) == 0);
        CHECK(gt.probabilities &&
              memcmp(gt.probabilities, gt_syn.probabilities, 24 * sizeof(float)) == 0);
        saec_ground_truth_free(&gt);
        saec_data_close(in);
    }
    saec_ground_truth_free(&gt_syn);
    /* the shuffled stream keeps each row with its timestep */
    in = NULL;
    CHECK(saec_data_open_hdf5(&cfg, SAEC_STREAM_TRAIN, &in) == SAEC_OK);
    if (in) {
        CHECK(saec_data_seek(in, 100) == SAEC_OK && saec_data_next(in, GN, got, tgot) == SAEC_OK);
        int paired = 1, moved = 0;
        for (int i = 0; i < GN && paired; i++) {
            int found = 0;
            for (int r = 0; r < GN && !found; r++)
                if (memcmp(got + i * GD, want + r * GD, GD * sizeof(float)) == 0) {
                    found = 1;
                    paired &= tgot[i] == twant[r];
                    moved |= r != (i + 100) % GN;
                }
            paired &= found;
        }
        CHECK(paired && moved);
        saec_data_close(in);
    }
    /* a too-small --timesteps for the file: a data error with the hint */
    cfg.timesteps = 10;
    in = NULL;
    saec_error_clear();
    CHECK(saec_data_open_hdf5(&cfg, SAEC_STREAM_TRAIN, &in) == SAEC_OK);
    if (in) {
        CHECK(saec_data_next(in, GN, got, tgot) == SAEC_ERR_DATA);
        CHECK(strstr(saec_error_message(), path) &&
              strstr(saec_error_message(), "outside [0, 10)") &&
              strstr(saec_error_hint(), "--timesteps"));
        saec_data_close(in);
    }
    saec_error_clear();
    /* inspect shows the timesteps' range */
    int32_t lo = twant[0], hi = twant[0];
    for (int i = 0; i < GN; i++)
        lo = twant[i] < lo ? twant[i] : lo, hi = twant[i] > hi ? twant[i] : hi;
    char want_line[128];
    snprintf(want_line, sizeof want_line,
             "/timesteps  dataset [2500] int32, chunks [2500], min %d, max %d", (int)lo, (int)hi);
    FILE *out = tmpfile();
    CHECK(saec_inspect(path, out) == SAEC_OK);
    rewind(out);
    char listing[8192];
    size_t len = fread(listing, 1, sizeof listing - 1, out);
    listing[len] = '\0';
    fclose(out);
    CHECK(strstr(listing, want_line) != NULL);
    CHECK(strstr(listing, "/ground_truth/t_center  dataset [24] float32") != NULL);
    if (!strstr(listing, want_line))
        fprintf(stderr, "  inspect:\n%s  want: %s\n", listing, want_line);
}

/* ---- inspect: safetensors files and run directories ------------------------------------------ */

/* Runs saec_inspect into a string (static buffer). */
static const char *inspect_text(const char *path, int *rc) {
    static char text[16384];
    FILE *out = tmpfile();
    *rc = saec_inspect(path, out);
    rewind(out);
    size_t len = fread(text, 1, sizeof text - 1, out);
    text[len] = '\0';
    fclose(out);
    if (getenv("SAEC_TEST_VERBOSE")) fputs(text, stdout);
    return text;
}

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
}

static void test_inspect(void) {
    const char *run = tmp_path("run");
    CHECK(mkdir(run, 0755) == 0);
    char path[600];
    snprintf(path, sizeof path, "%s/config.json", run);
    write_text(path, "{\"arch\": \"topk\", \"latents\": 32, \"k\": 4}");
    snprintf(path, sizeof path, "%s/summary.json", run);
    write_text(path, "{\"nmse\": 0.25, \"l0\": 4}");
    static float w_enc[8 * 32], b_dec[8];
    saec_st_tensor tensors[] = {
        {"W_enc", SAEC_ST_F32, 2, {8, 32}, w_enc},
        {"b_dec", SAEC_ST_F32, 1, {8}, b_dec},
    };
    saec_st_meta meta[] = {{"step", "100"}, {"state", "{\"cursor\": 4096}"}};
    snprintf(path, sizeof path, "%s/checkpoint.safetensors", run);
    saec_error_clear();
    CHECK(saec_st_write(path, tensors, 2, meta, 2) == SAEC_OK);

    int rc;
    const char *text = inspect_text(path, &rc);
    CHECK(rc == SAEC_OK);
    CHECK(strstr(text, "safetensors, 2 tensors") != NULL);
    CHECK(strstr(text, "W_enc  F32 [8, 32]") != NULL);
    CHECK(strstr(text, "b_dec  F32 [8]") != NULL);
    CHECK(strstr(text, "step: 100") != NULL);
    CHECK(strstr(text, "\"cursor\": 4096") != NULL);

    text = inspect_text(run, &rc);
    CHECK(rc == SAEC_OK);
    CHECK(strstr(text, "run directory") != NULL);
    CHECK(strstr(text, "config.json:") && strstr(text, "\"arch\": \"topk\""));
    CHECK(strstr(text, "summary.json:") && strstr(text, "\"nmse\": 0.25"));
    CHECK(strstr(text, "W_enc  F32 [8, 32]") != NULL);

    /* A directory that is not a run directory. */
    const char *empty = tmp_path("empty_dir");
    CHECK(mkdir(empty, 0755) == 0);
    saec_error_clear();
    inspect_text(empty, &rc);
    CHECK(rc == SAEC_ERR_DATA && strstr(saec_error_message(), empty) != NULL);
    saec_error_clear();
    rmdir(empty);
}

/* ---- main ------------------------------------------------------------------------------------ */

/* Removes dir and the files (and one level of directories) in it. */
/* ---- the dtype attribute --------------------------------------------------------------------- */

/* The attribute `dtype` on dataset `name` of an existing file: kind 's' a variable-length string,
   'f' a fixed-length string of strlen(value) bytes, 'i' an int64 scalar, 'a' two strings. */
static void set_dtype_attr(const char *path, const char *name, char kind, const char *value) {
    hid_t file = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    hid_t ds = H5Dopen2(file, name, H5P_DEFAULT);
    CHECK(file >= 0 && ds >= 0);
    hsize_t two = 2;
    hid_t space = kind == 'a' ? H5Screate_simple(1, &two, NULL) : H5Screate(H5S_SCALAR);
    hid_t type = kind == 'i' ? H5Tcopy(H5T_STD_I64LE) : H5Tcopy(H5T_C_S1);
    if (kind == 's' || kind == 'a') H5Tset_size(type, H5T_VARIABLE);
    if (kind == 'f') H5Tset_size(type, strlen(value) > 0 ? strlen(value) : 1);
    hid_t a = H5Acreate2(ds, "dtype", type, space, H5P_DEFAULT, H5P_DEFAULT);
    CHECK(a >= 0);
    const int64_t five = 5;
    const char *pair[2] = {value, value};
    if (kind == 'i') CHECK(H5Awrite(a, H5T_NATIVE_INT64, &five) >= 0);
    if (kind == 's') CHECK(H5Awrite(a, type, &value) >= 0);
    if (kind == 'a') CHECK(H5Awrite(a, type, pair) >= 0);
    if (kind == 'f') CHECK(H5Awrite(a, type, value) >= 0);
    H5Aclose(a);
    H5Tclose(type);
    H5Sclose(space);
    H5Dclose(ds);
    H5Fclose(file);
}

/* Opening `path` (and reading its ground truth when `gt`) fails with SAEC_ERR_DATA; the message
   holds the file, `dataset` and each of m1..m3, the hint holds `hint`. */
static void expect_attr_error(const char *what, const char *path, int64_t timesteps, int gt,
                              const char *dataset, const char *m1, const char *m2, const char *m3,
                              const char *hint) {
    saec_config cfg;
    cfg_for(&cfg, path, "", 3, 64);
    cfg.timesteps = timesteps;
    saec_error_clear();
    saec_data *src = NULL;
    int rc = saec_data_open_hdf5(&cfg, SAEC_STREAM_EVAL, &src);
    if (rc == SAEC_OK && gt) {
        saec_ground_truth g;
        rc = saec_data_ground_truth(src, &g);
        if (rc == SAEC_OK) saec_ground_truth_free(&g);
    }
    saec_data_close(src);
    const char *msg = saec_error_message(), *h = saec_error_hint();
    const int ok = rc == SAEC_ERR_DATA && strstr(msg, path) && strstr(msg, dataset) &&
                   (!m1 || strstr(msg, m1)) && (!m2 || strstr(msg, m2)) &&
                   (!m3 || strstr(msg, m3)) && (!hint || strstr(h, hint));
    if (!ok) {
        fprintf(stderr, "dtype attribute '%s': rc %d, message \"%s\", hint \"%s\"\n", what, rc, msg,
                h);
        n_failures++;
    } else if (getenv("SAEC_TEST_VERBOSE")) {
        printf("%-22s %s\n%22s (hint: %s)\n", what, msg, "", h);
    }
    saec_error_clear();
}

/* Opens `path` as activations (with timesteps when T > 0); the rows read equal `want` [n, d]. */
static void expect_attr_ok(const char *what, const char *path, int64_t T, const float *want,
                           int64_t n, int64_t d) {
    saec_config cfg;
    cfg_for(&cfg, path, "", 3, 64);
    cfg.timesteps = T;
    saec_error_clear();
    saec_data *src = NULL;
    int rc = saec_data_open_hdf5(&cfg, SAEC_STREAM_EVAL, &src);
    float *got = malloc((size_t)(n * d) * sizeof(float));
    if (rc == SAEC_OK) rc = saec_data_next(src, n, got, NULL);
    if (rc != SAEC_OK || memcmp(got, want, (size_t)(n * d) * sizeof(float)) != 0) {
        fprintf(stderr, "dtype attribute '%s': refused or misread: rc %d, \"%s\"\n", what, rc,
                saec_error_message());
        n_failures++;
    }
    free(got);
    saec_data_close(src);
    saec_error_clear();
}

static void test_dtype_attr(void) {
    enum { N = 40, D = 4 };
    static float x[N * D];
    static uint16_t h[N * D], bh[N * D];
    for (int i = 0; i < N * D; i++) {
        x[i] = exact_value(i / D, i % D);
        h[i] = float_to_half(x[i]);
        bh[i] = float_to_bf16(x[i]);
    }
    hsize_t dims[2] = {N, D};
    hid_t ht = half_type(0);
    struct {
        const char *file;
        hid_t ftype, mtype;
        const void *data;
    } stores[] = {
        {"a_f32.h5", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, x},
        {"a_f16.h5", ht, ht, h},
        {"a_u16.h5", H5T_STD_U16LE, H5T_NATIVE_UINT16, bh},
        {"a_i16.h5", H5T_STD_I16BE, H5T_NATIVE_INT16, bh},
    };
    /* The attribute agrees with the stored type: read as before. */
    struct {
        int store;
        char kind;
        const char *value;
    } good[] = {
        {0, 's', "float32"},  {0, 'f', "float32"},  {1, 's', "float16"},
        {2, 's', "bfloat16"}, {2, 'f', "bfloat16"}, {3, 's', "bfloat16"},
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        const char *path = tmp_path("attr_ok.h5");
        const int st = good[i].store;
        make_file(path, "activations", stores[st].ftype, stores[st].mtype, 2, dims, stores[st].data,
                  0, NULL);
        set_dtype_attr(path, "activations", good[i].kind, good[i].value);
        expect_attr_ok(good[i].value, path, 0, x, N, D);
    }

    /* Contradictions, unknown values, non-strings: refused, naming the value and stored type. */
    struct {
        const char *what;
        int store;
        char kind;
        const char *value;
        const char *m1, *m2, *hint;
    } bad[] = {
        {"bfloat16 on float32", 0, 's', "bfloat16", "dtype = \"bfloat16\"",
         "stored type is float32", "stored as uint16"},
        {"bfloat16 fixed on f32", 0, 'f', "bfloat16", "dtype = \"bfloat16\"",
         "stored type is float32", "stored as uint16"},
        {"bfloat16 on float16", 1, 's', "bfloat16", "dtype = \"bfloat16\"",
         "stored type is float16", "delete the attribute"},
        {"float16 on float32", 0, 's', "float16", "dtype = \"float16\"", "stored type is float32",
         "must name the stored type"},
        {"float16 on uint16", 2, 's', "float16", "dtype = \"float16\"", "stored type is uint16",
         "must name the stored type"},
        {"float32 on float16", 1, 's', "float32", "dtype = \"float32\"", "stored type is float16",
         "must name the stored type"},
        {"float64 on float32", 0, 's', "float64", "dtype = \"float64\"", "stored type is float32",
         "must name the stored type"},
        {"uint16 on int16", 3, 's', "uint16", "dtype = \"uint16\"",
         "stored type is int16 (big-endian)", "must name the stored type"},
        {"int32 on float32", 0, 's', "int32", "dtype = \"int32\"", "stored type is float32",
         "must name the stored type"},
        {"capitalised", 2, 's', "BFloat16", "dtype = \"BFloat16\", which saec does not know",
         "stored type is uint16", "accepted dtype values"},
        {"torch name", 2, 's', "torch.bfloat16", "\"torch.bfloat16\", which saec does not know",
         "uint16", "\"bfloat16\" (on uint16 or int16 data)"},
        {"empty", 0, 's', "", "dtype = \"\", which saec does not know", "float32",
         "accepted dtype values"},
        {"odd bytes", 0, 's', "bf\x01\xff\"16", "dtype = \"bf\\x01\\xff\\\"16\"", "float32",
         "accepted dtype values"},
        {"long", 0, 's',
         "bfloat16bfloat16bfloat16bfloat16bfloat16bfloat16bfloat16bfloat16bfloat16bfloat16",
         "dtype = \"bfloat16bfloat16bfloat16bfloat16bfloat16...\"", "float32",
         "accepted dtype values"},
        {"int attribute", 0, 'i', NULL, "not one string (an int64 value)", "stored type is float32",
         "one string naming the stored type"},
        {"two strings", 2, 'a', "bfloat16", "not one string (2 strings)", "stored type is uint16",
         "one string naming the stored type"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *path = tmp_path("attr_bad.h5");
        const int st = bad[i].store;
        make_file(path, "activations", stores[st].ftype, stores[st].mtype, 2, dims, stores[st].data,
                  0, NULL);
        set_dtype_attr(path, "activations", bad[i].kind, bad[i].value);
        expect_attr_error(bad[i].what, path, 0, 0, "'activations'", bad[i].m1, bad[i].m2, NULL,
                          bad[i].hint);
    }
    /* Agreeing but unsupported: the dtype message, as without the attribute. */
    {
        const char *path = tmp_path("attr_u16.h5");
        make_file(path, "activations", H5T_STD_U16LE, H5T_NATIVE_UINT16, 2, dims, bh, 0, NULL);
        set_dtype_attr(path, "activations", 's', "uint16");
        expect_attr_error("uint16 on uint16", path, 0, 0, "'activations'", "unsupported dtype",
                          "uint16 (without the attribute dtype = \"bfloat16\")", NULL,
                          "convert the dataset");
    }
    H5Tclose(ht);

    /* timesteps: the same rule, and bfloat16 bits are no timesteps. */
    static int32_t ts[TN];
    static int16_t t16[TN];
    for (int r = 0; r < TN; r++)
        ts[r] = ts_of(r), t16[r] = (int16_t)ts[r];
    const char *tpath = tmp_path("attr_ts.h5");
    make_ts_file(tpath, "activations", "timesteps", H5T_STD_I32LE, H5T_NATIVE_INT32, 1, TN, ts);
    set_dtype_attr(tpath, "timesteps", 's', "int32");
    {
        saec_config cfg;
        cfg_for(&cfg, tpath, "", 3, 200);
        cfg.timesteps = TT;
        static float rows[TN * TD];
        static int32_t got[TN];
        saec_error_clear();
        CHECK(read_rows_ts(&cfg, SAEC_STREAM_EVAL, TN, 500, rows, got, TD) == SAEC_OK);
        CHECK(memcmp(got, ts, sizeof ts) == 0);
    }
    const struct {
        const char *what, *value;
        hid_t ftype, mtype;
        const void *data;
        const char *m1, *m2, *hint;
    } tbad[] = {
        {"ts bfloat16 on int32", "bfloat16", H5T_STD_I32LE, H5T_NATIVE_INT32, ts,
         "dtype = \"bfloat16\"", "stored type is int32", "stored as uint16"},
        {"ts int64 on int32", "int64", H5T_STD_I32LE, H5T_NATIVE_INT32, ts, "dtype = \"int64\"",
         "stored type is int32", "must name the stored type"},
        {"ts float32 on int32", "float32", H5T_STD_I32LE, H5T_NATIVE_INT32, ts,
         "dtype = \"float32\"", "stored type is int32", "must name the stored type"},
        {"ts unknown", "int", H5T_STD_I32LE, H5T_NATIVE_INT32, ts,
         "dtype = \"int\", which saec does not know", "int32", "accepted dtype values"},
        {"ts bfloat16 on int16", "bfloat16", H5T_STD_I16LE, H5T_NATIVE_INT16, t16,
         "has dtype bfloat16", "expected an integer type", "store them as int32"},
    };
    for (size_t i = 0; i < sizeof tbad / sizeof tbad[0]; i++) {
        const char *path = tmp_path("attr_ts_bad.h5");
        make_ts_file(path, "activations", "timesteps", tbad[i].ftype, tbad[i].mtype, 1, TN,
                     tbad[i].data);
        set_dtype_attr(path, "timesteps", 's', tbad[i].value);
        expect_attr_error(tbad[i].what, path, TT, 0, "'timesteps'", tbad[i].m1, tbad[i].m2, NULL,
                          tbad[i].hint);
    }

    /* ground truth: read converted to float32, so bfloat16 bits or a contradiction are refused. */
    {
        enum { F = 6 };
        static float dirs[F * D], probs[F], off[D];
        for (int i = 0; i < F * D; i++)
            dirs[i] = (float)(i % 5) * 0.25f;
        for (int i = 0; i < F; i++)
            probs[i] = 0.125f;
        const struct {
            const char *what, *dataset, *value;
            hid_t ftype;
            const char *m1, *m2, *hint;
        } gbad[] = {
            {"gt bfloat16 on float32", "directions", "bfloat16", H5T_IEEE_F32LE,
             "dtype = \"bfloat16\"", "stored type is float32", "delete the attribute"},
            {"gt bfloat16 bits", "probabilities", "bfloat16", H5T_STD_U16LE, "has dtype bfloat16",
             "expected numbers", "regenerate"},
            {"gt float64 on float32", "offset", "float64", H5T_IEEE_F32LE, "dtype = \"float64\"",
             "stored type is float32", "must name the stored type"},
        };
        for (size_t i = 0; i < sizeof gbad / sizeof gbad[0]; i++) {
            const char *path = tmp_path("attr_gt.h5");
            hid_t file = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
            add_dataset(file, "activations", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, dims, x, 0, NULL);
            hid_t g = H5Gcreate2(file, "ground_truth", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
            hsize_t dd[2] = {F, D}, dp[1] = {F}, doff[1] = {D};
            const int is_d = !strcmp(gbad[i].dataset, "directions");
            const int is_p = !strcmp(gbad[i].dataset, "probabilities");
            const int is_o = !strcmp(gbad[i].dataset, "offset");
            add_dataset(g, "directions", is_d ? gbad[i].ftype : H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2,
                        dd, dirs, 0, is_d ? gbad[i].value : NULL);
            add_dataset(g, "probabilities", is_p ? gbad[i].ftype : H5T_IEEE_F32LE, H5T_NATIVE_FLOAT,
                        1, dp, probs, 0, is_p ? gbad[i].value : NULL);
            add_dataset(g, "offset", is_o ? gbad[i].ftype : H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 1,
                        doff, off, 0, is_o ? gbad[i].value : NULL);
            H5Gclose(g);
            H5Fclose(file);
            char ds[64];
            snprintf(ds, sizeof ds, "ground_truth/%s", gbad[i].dataset);
            expect_attr_error(gbad[i].what, path, 0, 1, ds, gbad[i].m1, gbad[i].m2, NULL,
                              gbad[i].hint);
        }
    }
}

/* A 17 KB file whose ground_truth/directions claims [2^31, 2^31] (chunked, never written): its
   element count times 4 wrapped to 0, so the reader allocated nothing and H5Dread filled 2^62
   floats into it (a segfault before the checks bounded the count). */
static void test_huge_ground_truth(void) {
    enum { N = 10, D = 4 };
    static float x[N * D], zeros[64];
    const char *path = tmp_path("gt_huge.h5");
    hid_t file = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    hsize_t dims[2] = {N, D}, big[2] = {(hsize_t)1 << 31, (hsize_t)1 << 31}, chunk[2] = {1, 16};
    add_dataset(file, "activations", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, dims, x, 0, NULL);
    hid_t g = H5Gcreate2(file, "ground_truth", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    hid_t space = H5Screate_simple(2, big, NULL);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(dcpl, 2, chunk);
    hid_t ds = H5Dcreate2(g, "directions", H5T_IEEE_F32LE, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    CHECK(ds >= 0);
    H5Dclose(ds);
    H5Pclose(dcpl);
    H5Sclose(space);
    hsize_t dp[1] = {64}, doff[1] = {D};
    add_dataset(g, "probabilities", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 1, dp, zeros, 0, NULL);
    add_dataset(g, "offset", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 1, doff, zeros, 0, NULL);
    H5Gclose(g);
    H5Fclose(file);
    expect_attr_error("gt [2^31, 2^31]", path, 0, 1, "ground_truth/directions",
                      "[2147483648, 2147483648], too large to read", NULL, NULL, "regenerate");
}

/* The checks on descriptions no real file gives: extents at the limits of uint64. */
static void test_check_limits(void) {
    saec_h5_dataset_desc ds;
    memset(&ds, 0, sizeof ds);
    ds.path = "f.h5";
    ds.name = "activations";
    ds.rank = 2;
    ds.cls = SAEC_H5_CLASS_FLOAT;
    ds.size = 4;
    ds.exp_bits = 8;
    ds.mant_bits = 23;
    ds.exp_bias = 127;
    saec_h5_expect want = {.role = SAEC_H5_ROLE_ACTIVATIONS};
    saec_h5_verdict v;
    ds.dims[0] = 10, ds.dims[1] = 7;
    CHECK(saec_h5_check_dataset(&ds, &want, &v) == SAEC_OK && v.kind == SAEC_H5_KIND_F32 &&
          v.n == 10 && v.d == 7 && !strcmp(v.type_name, "float32"));
    ds.dims[0] = UINT64_MAX;
    saec_error_clear();
    CHECK(saec_h5_check_dataset(&ds, &want, &v) == SAEC_ERR_DATA &&
          strstr(saec_error_message(), "18446744073709551615 rows"));
    ds.dims[0] = 10, ds.dims[1] = ((uint64_t)1 << 20) + 1;
    saec_error_clear();
    CHECK(saec_h5_check_dataset(&ds, &want, &v) == SAEC_ERR_DATA &&
          strstr(saec_error_message(), "wider than saec supports"));
    want.d_in = 7; /* a width of 2^64 - 1 against d_in 7: no wrap to -1 */
    ds.dims[1] = UINT64_MAX;
    saec_error_clear();
    CHECK(saec_h5_check_dataset(&ds, &want, &v) == SAEC_ERR_DATA &&
          strstr(saec_error_message(), "width 18446744073709551615, but d_in is 7"));
    ds.rank = 40; /* never from HDF5: the shape shows the first 32 extents */
    saec_error_clear();
    CHECK(saec_h5_check_dataset(&ds, &want, &v) == SAEC_ERR_DATA &&
          strstr(saec_error_message(), "rank 40") && strstr(saec_error_message(), ", ...]"));
    /* ground truth whose element count overflows is refused before anything is allocated */
    saec_h5_expect gt = {.role = SAEC_H5_ROLE_GROUND_TRUTH, .rank = 2};
    ds.name = "ground_truth/directions";
    ds.rank = 2;
    ds.dims[0] = (uint64_t)1 << 33, ds.dims[1] = (uint64_t)1 << 33;
    saec_error_clear();
    CHECK(saec_h5_check_dataset(&ds, &gt, &v) == SAEC_ERR_DATA &&
          strstr(saec_error_message(), "too large to read"));
    /* timesteps rows compared unsigned: 2^64 - 1 rows is not -1 rows */
    saec_h5_expect te = {.role = SAEC_H5_ROLE_TIMESTEPS, .rows = -1, .rows_of = "activations"};
    ds.cls = SAEC_H5_CLASS_INTEGER;
    ds.rank = 1;
    ds.dims[0] = UINT64_MAX;
    saec_error_clear();
    CHECK(saec_h5_check_dataset(&ds, &te, &v) == SAEC_ERR_DATA);
    saec_error_clear();
}

int main(void) {
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL); /* n_failures here are reported by the checks */
    if (tmp_dir_make("saec_test_hdf5")) return 1;
    test_dtypes();
    test_half_specials();
    test_streams();
    test_bad_inputs();
    test_write();
    test_timesteps();
    test_dtype_attr();
    test_check_limits();
    test_huge_ground_truth();
    test_timestep_gen();
    test_inspect();
    remove_dir(tmpdir, 0);
    if (n_failures) {
        fprintf(stderr, "test_hdf5_data: %d check(s) failed\n", n_failures);
        return 1;
    }
    printf("test_hdf5_data: all checks passed\n");
    return 0;
}
