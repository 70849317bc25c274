/* The embeddings file (emb_h5.h): a streaming writer published by rename, and a checked reader
   that loads the whole file. Every HDF5 call is made with the global HDF5 lock held. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <hdf5.h>

#include "emb_h5.h"
#include "h5_lock.h"
#include "h5_write.h"
#include "saec/config.h"
#include "saec/saec.h"

/* class_names: K names of under EO_H5_NAME_MAX bytes and K − 1 separators. */
enum { NAMES_CAP = EO_H5_MAX_CLASSES * EO_H5_NAME_MAX };

struct emb_h5_writer {
    char path[SAEC_STR_MAX], tmp[SAEC_STR_MAX + 64];
    emb_h5_info info;
    hid_t file, emb, labels, split; /* the datasets; labels −1 when K = 0 */
    int64_t written;                /* rows appended so far */
};

/* ---- writing --------------------------------------------------------------------------------- */

/* A chunked dataset `name` [n, width] (width 0: rank 1) of file_type, chunks of chunk_rows. */
static hid_t create_rows(hid_t file, const char *name, hid_t file_type, int64_t n, int64_t width,
                         int64_t chunk_rows) {
    const int rank = width > 0 ? 2 : 1;
    hsize_t dims[2] = {(hsize_t)n, (hsize_t)width},
            cdims[2] = {(hsize_t)chunk_rows, (hsize_t)width};
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    hid_t space = H5Screate_simple(rank, dims, NULL);
    hid_t ds = -1;
    if (dcpl >= 0 && space >= 0 && H5Pset_chunk(dcpl, rank, cdims) >= 0)
        ds = H5Dcreate2(file, name, file_type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    if (space >= 0) H5Sclose(space);
    if (dcpl >= 0) H5Pclose(dcpl);
    return ds;
}

/* Rows [start, start + n) of dataset ds [N, width] (width 0: [N]) from data. Lock held. */
static int write_rows(hid_t ds, hid_t mem_type, int64_t start, int64_t n, int64_t width,
                      const void *data) {
    const int rank = width > 0 ? 2 : 1;
    hsize_t off[2] = {(hsize_t)start, 0}, count[2] = {(hsize_t)n, (hsize_t)width};
    hid_t fspace = H5Dget_space(ds);
    hid_t mspace = H5Screate_simple(rank, count, NULL);
    herr_t rc = -1;
    if (fspace >= 0 && mspace >= 0 &&
        H5Sselect_hyperslab(fspace, H5S_SELECT_SET, off, NULL, count, NULL) >= 0)
        rc = H5Dwrite(ds, mem_type, mspace, fspace, H5P_DEFAULT, data);
    if (mspace >= 0) H5Sclose(mspace);
    if (fspace >= 0) H5Sclose(fspace);
    return rc < 0 ? -1 : 0;
}

/* Closes what is open; returns -1 when closing the file failed (it is then incomplete). */
static int close_all(emb_h5_writer *w) {
    saec_h5_lock();
    if (w->emb >= 0) H5Dclose(w->emb);
    if (w->labels >= 0) H5Dclose(w->labels);
    if (w->split >= 0) H5Dclose(w->split);
    const int rc = w->file >= 0 && H5Fclose(w->file) < 0 ? -1 : 0;
    saec_h5_unlock();
    w->file = w->emb = w->labels = w->split = -1;
    return rc;
}

static int check_info(const char *path, const emb_h5_info *info) {
    if (info->n < 1 || info->dim < 1 || info->n_classes < 0 || info->n_classes > EO_H5_MAX_CLASSES)
        return saec_fail(SAEC_ERR_OTHER, NULL,
                         "internal: embeddings '%s' of %" PRId64 " rows x %" PRId64
                         " features, %d classes",
                         path, info->n, info->dim, info->n_classes);
    for (int k = 0; k < info->n_classes; k++) {
        const char *name = info->class_names[k];
        if (!name[0] || strchr(name, '\n') || !memchr(name, '\0', EO_H5_NAME_MAX))
            return saec_fail(SAEC_ERR_DATA, "class names are one line each, under 64 bytes",
                             "cannot write '%s': class %d has no usable name", path, k);
    }
    return SAEC_OK;
}

/* The root attributes and datasets of a new file. Lock held. */
static int create_layout(emb_h5_writer *w) {
    const emb_h5_info *in = &w->info;
    /* Chunks of about 1 MiB of whole rows. */
    int64_t chunk_rows = ((int64_t)1 << 20) / (in->dim * (int64_t)sizeof(float));
    if (chunk_rows < 1) chunk_rows = 1;
    if (chunk_rows > in->n) chunk_rows = in->n;
    w->emb = create_rows(w->file, "embeddings", H5T_IEEE_F32LE, in->n, in->dim, chunk_rows);
    w->split = create_rows(w->file, "split", H5T_STD_U8LE, in->n, 0, chunk_rows);
    if (w->emb < 0 || w->split < 0) return -1;
    if (saec_h5_write_string_attr(w->file, "encoder", in->encoder) < 0 ||
        saec_h5_write_string_attr(w->file, "source", in->source) < 0)
        return -1;
    if (in->n_classes == 0) return 0;
    w->labels = create_rows(w->file, "labels", H5T_STD_U8LE, in->n, in->n_classes, chunk_rows);
    if (w->labels < 0) return -1;
    char names[NAMES_CAP];
    size_t len = 0;
    for (int k = 0; k < in->n_classes; k++)
        len += (size_t)snprintf(names + len, sizeof names - len, "%s%s", k ? "\n" : "",
                                in->class_names[k]);
    if (saec_h5_write_string_attr(w->labels, "multi_label", in->multi_label ? "true" : "false") < 0)
        return -1;
    return saec_h5_write_string_attr(w->labels, "class_names", names);
}

int emb_h5_writer_create(const char *path, const emb_h5_info *info, emb_h5_writer **out) {
    *out = NULL;
    SAEC_TRY(check_info(path, info));
    emb_h5_writer *w = calloc(1, sizeof *w);
    if (!w) return saec_fail(SAEC_ERR_OTHER, NULL, "out of memory writing '%s'", path);
    w->file = w->emb = w->labels = w->split = -1;
    w->info = *info;
    int len = snprintf(w->path, sizeof w->path, "%s", path);
    int tlen = snprintf(w->tmp, sizeof w->tmp, "%s.tmp.%ld", path, (long)getpid());
    if (len < 0 || (size_t)len >= sizeof w->path || tlen < 0 || (size_t)tlen >= sizeof w->tmp) {
        free(w);
        return saec_fail(SAEC_ERR_USAGE, "choose a shorter output path",
                         "cannot write '%.200s...': the path is too long", path);
    }
    /* Plain stdio first: HDF5's own failure says nothing about why. */
    FILE *probe = fopen(w->tmp, "wb");
    if (!probe) {
        int rc = saec_fail(SAEC_ERR_USAGE, "choose an existing, writable directory for --out",
                           "cannot write '%s': %s", path, strerror(errno));
        free(w);
        return rc;
    }
    fclose(probe);
    saec_h5_lock();
    w->file = H5Fcreate(w->tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    const int ok = w->file >= 0 && create_layout(w) == 0;
    saec_h5_unlock();
    if (!ok) {
        int rc = saec_fail(SAEC_ERR_OTHER, "check free disk space",
                           "cannot create the embeddings file '%s'", w->tmp);
        emb_h5_writer_abort(w);
        return rc;
    }
    *out = w;
    return SAEC_OK;
}

int emb_h5_writer_append(emb_h5_writer *w, int64_t n, const float *embeddings,
                         const uint8_t *labels, const uint8_t *split) {
    if (n < 0 || w->written + n > w->info.n || !embeddings || (w->info.n_classes && !labels))
        return saec_fail(SAEC_ERR_OTHER, NULL,
                         "internal: appending %" PRId64 " rows at %" PRId64 " of %" PRId64
                         " to '%s'",
                         n, w->written, w->info.n, w->path);
    if (n == 0) return SAEC_OK;
    uint8_t *train = NULL; /* [n] zeros: no split given */
    if (!split && !(split = train = calloc((size_t)n, 1)))
        return saec_fail(SAEC_ERR_OTHER, NULL, "out of memory writing '%s'", w->path);
    saec_h5_lock();
    int rc = write_rows(w->emb, H5T_NATIVE_FLOAT, w->written, n, w->info.dim, embeddings);
    if (rc == 0) rc = write_rows(w->split, H5T_NATIVE_UINT8, w->written, n, 0, split);
    if (rc == 0 && w->labels >= 0)
        rc = write_rows(w->labels, H5T_NATIVE_UINT8, w->written, n, w->info.n_classes, labels);
    saec_h5_unlock();
    free(train);
    if (rc < 0)
        return saec_fail(SAEC_ERR_OTHER, "check free disk space",
                         "cannot write rows %" PRId64 "..%" PRId64 " of '%s'", w->written,
                         w->written + n - 1, w->tmp);
    w->written += n;
    return SAEC_OK;
}

int emb_h5_writer_put(emb_h5_writer *w, const char *name, int rank, const int64_t *dims,
                      const float *data, const char *description) {
    hsize_t hd[4];
    if (rank < 1 || rank > 4 || dims[0] != w->info.n)
        return saec_fail(SAEC_ERR_OTHER, NULL, "internal: dataset '%s' of '%s' is not [N, ...]",
                         name, w->path);
    for (int i = 0; i < rank; i++) hd[i] = (hsize_t)dims[i];
    saec_h5_lock();
    hid_t space = H5Screate_simple(rank, hd, NULL);
    hid_t ds = space >= 0 ? H5Dcreate2(w->file, name, H5T_IEEE_F32LE, space, H5P_DEFAULT,
                                       H5P_DEFAULT, H5P_DEFAULT)
                          : -1;
    int rc = ds >= 0 ? H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) : -1;
    if (rc >= 0 && description) rc = saec_h5_write_string_attr(ds, "description", description);
    if (ds >= 0) H5Dclose(ds);
    if (space >= 0) H5Sclose(space);
    saec_h5_unlock();
    return rc < 0 ? saec_fail(SAEC_ERR_OTHER, "check free disk space",
                              "cannot write dataset '%s' of '%s'", name, w->tmp)
                  : SAEC_OK;
}

int emb_h5_writer_finish(emb_h5_writer *w) {
    int rc = SAEC_OK;
    if (w->written != w->info.n)
        rc = saec_fail(SAEC_ERR_OTHER, NULL,
                       "internal: '%s' finished after %" PRId64 " of %" PRId64 " rows", w->path,
                       w->written, w->info.n);
    if (close_all(w) < 0 && rc == SAEC_OK)
        rc = saec_fail(SAEC_ERR_OTHER, "check free disk space", "cannot finish writing '%s'",
                       w->tmp);
    if (rc == SAEC_OK && rename(w->tmp, w->path) != 0)
        rc = saec_fail(SAEC_ERR_USAGE, "choose a writable location for --out",
                       "cannot rename '%s' to '%s': %s", w->tmp, w->path, strerror(errno));
    if (rc != SAEC_OK) remove(w->tmp);
    free(w);
    return rc;
}

void emb_h5_writer_abort(emb_h5_writer *w) {
    if (!w) return;
    close_all(w);
    remove(w->tmp);
    free(w);
}

/* ---- reading --------------------------------------------------------------------------------- */

/* Opens dataset `name` into *ds and checks its rank and type (float, or uint8 for integers);
   dims gets its extents. A missing optional dataset gives SAEC_OK and *ds = -1. Fails naming
   the dataset. Lock held. */
static int open_dataset(hid_t file, const char *path, const char *name, int rank, H5T_class_t cls,
                        int optional, hsize_t *dims, hid_t *ds) {
    *ds = -1;
    if (H5Lexists(file, name, H5P_DEFAULT) <= 0)
        return optional ? SAEC_OK
                        : saec_fail(SAEC_ERR_DATA, "make the file with `saec embed`",
                                    "'%s' has no dataset '%s'", path, name);
    hid_t d = H5Dopen2(file, name, H5P_DEFAULT);
    hid_t space = d >= 0 ? H5Dget_space(d) : -1;
    hid_t type = d >= 0 ? H5Dget_type(d) : -1;
    const int got_rank = space >= 0 ? H5Sget_simple_extent_ndims(space) : -1;
    const int rank_ok = got_rank == rank && H5Sget_simple_extent_dims(space, dims, NULL) >= 0;
    const int type_ok =
        type >= 0 && H5Tget_class(type) == cls &&
        (cls != H5T_INTEGER || (H5Tget_size(type) == 1 && H5Tget_sign(type) == H5T_SGN_NONE));
    char tname[96] = "unreadable";
    if (type >= 0) saec_h5_type_name(type, d, tname, sizeof tname);
    if (type >= 0) H5Tclose(type);
    if (space >= 0) H5Sclose(space);
    if (d >= 0 && rank_ok && type_ok) {
        *ds = d;
        return SAEC_OK;
    }
    if (d >= 0) H5Dclose(d);
    return saec_fail(SAEC_ERR_DATA, "make the file with `saec embed`",
                     "'%s': dataset '%s' is %s of rank %d, expected %s of rank %d", path, name,
                     tname, got_rank, cls == H5T_FLOAT ? "float" : "uint8", rank);
}

/* Reads all of ds into buf as mem_type; fails naming the dataset. Lock held. */
static int read_all(hid_t ds, hid_t mem_type, void *buf, const char *path, const char *name) {
    if (H5Dread(ds, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) >= 0) return SAEC_OK;
    return saec_fail(SAEC_ERR_DATA, "the file may be truncated; make it again",
                     "cannot read dataset '%s' of '%s'", name, path);
}

/* class_names of the labels: exactly K names, one per line. Lock held. */
static int read_class_names(hid_t labels, const char *path, emb_h5_info *info) {
    char names[NAMES_CAP + 2];
    if (!saec_h5_read_string_attr(labels, "class_names", names, sizeof names))
        return saec_fail(SAEC_ERR_DATA, "labels carry the K class names joined by '\\n'",
                         "'%s': dataset 'labels' has no string attribute 'class_names'", path);
    int k = 0;
    for (char *p = names, *next; p && k <= info->n_classes; p = next, k++) {
        next = strchr(p, '\n');
        if (next) *next++ = '\0';
        const size_t len = strlen(p);
        if (k == info->n_classes || len == 0 || len >= EO_H5_NAME_MAX) {
            k = -1;
            break;
        }
        memcpy(info->class_names[k], p, len + 1);
    }
    if (k != info->n_classes)
        return saec_fail(SAEC_ERR_DATA, "labels carry the K class names joined by '\\n'",
                         "'%s': attribute 'class_names' of dataset 'labels' does not name its %d "
                         "classes (one non-empty name under %d bytes per line)",
                         path, info->n_classes, EO_H5_NAME_MAX);
    return SAEC_OK;
}

/* Every dataset into d; file open, lock held. */
static int read_datasets(hid_t file, const char *path, emb_h5_data *d) {
    emb_h5_info *info = &d->info;
    hsize_t dims[2] = {0, 0};
    hid_t ds;
    SAEC_TRY(open_dataset(file, path, "embeddings", 2, H5T_FLOAT, 0, dims, &ds));
    info->n = (int64_t)dims[0];
    info->dim = (int64_t)dims[1];
    int rc = SAEC_OK;
    if (info->n < 1 || info->dim < 1)
        rc = saec_fail(SAEC_ERR_DATA, "embed a non-empty data file",
                       "'%s': dataset 'embeddings' is empty (%" PRId64 " x %" PRId64 ")", path,
                       info->n, info->dim);
    const size_t cells = (size_t)info->n * (size_t)info->dim;
    if (rc == SAEC_OK && !(d->embeddings = malloc(cells * sizeof(float))))
        rc = saec_fail(SAEC_ERR_OTHER, NULL, "out of memory reading '%s'", path);
    if (rc == SAEC_OK) rc = read_all(ds, H5T_NATIVE_FLOAT, d->embeddings, path, "embeddings");
    H5Dclose(ds);
    for (size_t i = 0; rc == SAEC_OK && i < cells; i++)
        if (!isfinite(d->embeddings[i]))
            rc = saec_fail(SAEC_ERR_DATA, "check the encoder that made the embeddings",
                           "'%s': dataset 'embeddings' has %g at row %" PRId64 ", column %" PRId64,
                           path, (double)d->embeddings[i], (int64_t)(i / (size_t)info->dim),
                           (int64_t)(i % (size_t)info->dim));
    if (rc != SAEC_OK) return rc;

    SAEC_TRY(open_dataset(file, path, "labels", 2, H5T_INTEGER, 1, dims, &ds));
    if (ds >= 0) {
        info->n_classes = (int)(dims[1] <= EO_H5_MAX_CLASSES ? dims[1] : 0);
        if ((int64_t)dims[0] != info->n || info->n_classes < 1)
            rc = saec_fail(SAEC_ERR_DATA, "labels are [N, K] with N the embeddings' rows, K 1..64",
                           "'%s': dataset 'labels' is [%" PRIu64 ", %" PRIu64 "], embeddings "
                           "have %" PRId64 " rows",
                           path, (uint64_t)dims[0], (uint64_t)dims[1], info->n);
        if (rc == SAEC_OK) rc = read_class_names(ds, path, info);
        char multi[16] = "";
        const int told = saec_h5_read_string_attr(ds, "multi_label", multi, sizeof multi);
        const size_t cells_k = (size_t)info->n * (size_t)info->n_classes;
        if (rc == SAEC_OK && !(d->labels = malloc(cells_k)))
            rc = saec_fail(SAEC_ERR_OTHER, NULL, "out of memory reading '%s'", path);
        if (rc == SAEC_OK) rc = read_all(ds, H5T_NATIVE_UINT8, d->labels, path, "labels");
        H5Dclose(ds);
        for (size_t i = 0; rc == SAEC_OK && i < cells_k; i++)
            if (d->labels[i] > 1)
                rc = saec_fail(SAEC_ERR_DATA, "labels are multi-hot: 0 or 1 per class",
                               "'%s': dataset 'labels' has %d at row %" PRId64 ", class %" PRId64,
                               path, d->labels[i], (int64_t)(i / (size_t)info->n_classes),
                               (int64_t)(i % (size_t)info->n_classes));
        if (rc != SAEC_OK) return rc;
        if (told) {
            info->multi_label = !strcmp(multi, "true");
        } else { /* an older file: multi-label unless every row has exactly one class */
            info->multi_label = 0;
            for (int64_t i = 0; i < info->n && !info->multi_label; i++) {
                int ones = 0;
                for (int k = 0; k < info->n_classes; k++)
                    ones += d->labels[i * info->n_classes + k];
                info->multi_label = ones != 1;
            }
        }
    }

    if (!(d->split = calloc((size_t)info->n, 1)))
        return saec_fail(SAEC_ERR_OTHER, NULL, "out of memory reading '%s'", path);
    SAEC_TRY(open_dataset(file, path, "split", 1, H5T_INTEGER, 1, dims, &ds));
    if (ds < 0) return SAEC_OK; /* absent: all train */
    if ((int64_t)dims[0] != info->n)
        rc = saec_fail(SAEC_ERR_DATA, "split is [N] with N the embeddings' rows",
                       "'%s': dataset 'split' has %" PRIu64 " rows, embeddings %" PRId64, path,
                       (uint64_t)dims[0], info->n);
    if (rc == SAEC_OK) rc = read_all(ds, H5T_NATIVE_UINT8, d->split, path, "split");
    H5Dclose(ds);
    for (int64_t i = 0; rc == SAEC_OK && i < info->n; i++)
        if (d->split[i] > EO_SPLIT_TEST)
            rc = saec_fail(SAEC_ERR_DATA, "split is 0 train, 1 val or 2 test",
                           "'%s': dataset 'split' has %d at row %" PRId64, path, d->split[i], i);
    return rc;
}

int emb_h5_read(const char *path, emb_h5_data *out) {
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "rb");
    if (!f)
        return saec_fail(SAEC_ERR_DATA, "pass the file `saec embed --out` wrote",
                         "cannot open embeddings '%s': %s", path, strerror(errno));
    fclose(f);
    saec_h5_lock();
    int rc = SAEC_OK;
    hid_t file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (file < 0) {
        rc = saec_fail(SAEC_ERR_DATA, "pass the file `saec embed --out` wrote",
                       "'%s' is not an HDF5 file", path);
    } else {
        saec_h5_read_string_attr(file, "encoder", out->info.encoder, sizeof out->info.encoder);
        saec_h5_read_string_attr(file, "source", out->info.source, sizeof out->info.source);
        rc = read_datasets(file, path, out);
        H5Fclose(file);
    }
    saec_h5_unlock();
    if (rc != SAEC_OK) emb_h5_data_free(out);
    return rc;
}

void emb_h5_data_free(emb_h5_data *d) {
    free(d->embeddings);
    free(d->labels);
    free(d->split);
    d->embeddings = NULL;
    d->labels = NULL;
    d->split = NULL;
}
