/* The HDF5 EO layout (eo_h5.h): its reader, which checks the layout strictly at open and the
   values as it reads them, and its streaming writer, which publishes the file atomically.

   Every HDF5 call is made with the global lock held (h5_lock.h). The reader converts on read:
   uint16 pixels become float32 exactly (HDF5's conversion), integer labels and splits are read as
   int64 so that a negative or oversized value is reported, not clipped. */
#include "eo_h5.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <hdf5.h>

#include "h5_lock.h"
#include "h5_write.h"
#include "saec/saec.h"

#define LAYOUT_HINT                                                                                \
    "the EO layout: images [N, C, H, W] uint16|float32, metadata [N, 4] float32, labels [N, K] "   \
    "uint8 or [N] int, split [N] uint8 (`saec gen eo` writes an example)"

struct eo_h5_reader {
    char path[SAEC_STR_MAX];
    hid_t file, images, metadata, labels, split;
    eo_h5_info info;
    int64_t *scratch; /* [scratch_cap] integer labels or splits as read */
    int64_t scratch_cap;
};

/* ---- layout checks (lock held) ------------------------------------------------------------- */

/* "[10, 7, 40, 40]" */
static void format_dims(int rank, const hsize_t *dims, char *buf, size_t cap) {
    size_t len = 0;
    buf[0] = '\0';
    for (int i = 0; i < rank && len + 24 < cap; i++)
        len += (size_t)snprintf(buf + len, cap - len, "%s%llu", i ? ", " : "[",
                                (unsigned long long)dims[i]);
    snprintf(buf + len, cap - len, rank > 0 ? "]" : "scalar");
}

/* Opens dataset `name` when present (*ds stays invalid when absent and optional). */
static int open_dataset(eo_h5_reader *r, const char *name, int required, hid_t *ds) {
    *ds = H5I_INVALID_HID;
    if (H5Lexists(r->file, name, H5P_DEFAULT) <= 0) {
        if (!required) return SAEC_OK;
        return saec_fail(SAEC_ERR_DATA, LAYOUT_HINT, "no dataset '%s' in '%s'", name, r->path);
    }
    hid_t obj = H5Oopen(r->file, name, H5P_DEFAULT);
    H5I_type_t type = obj >= 0 ? H5Iget_type(obj) : H5I_BADID;
    if (obj >= 0) H5Oclose(obj);
    if (type != H5I_DATASET)
        return saec_fail(SAEC_ERR_DATA, LAYOUT_HINT, "'%s' in '%s' is not a dataset", name,
                         r->path);
    *ds = H5Dopen2(r->file, name, H5P_DEFAULT);
    if (*ds < 0)
        return saec_fail(SAEC_ERR_DATA, "check the file with h5dump",
                         "cannot open dataset '%s' in '%s'", name, r->path);
    return SAEC_OK;
}

/* The rank and extents of ds; a rank other than `want` fails, `shape` naming the layout's. */
static int check_rank(const eo_h5_reader *r, hid_t ds, const char *name, int want,
                      const char *shape, hsize_t *dims) {
    hid_t space = H5Dget_space(ds);
    int rank = space >= 0 ? H5Sget_simple_extent_ndims(space) : -1;
    hsize_t all[H5S_MAX_RANK];
    if (rank > 0) H5Sget_simple_extent_dims(space, all, NULL);
    if (space >= 0) H5Sclose(space);
    if (rank < 0)
        return saec_fail(SAEC_ERR_DATA, "check the file with h5dump",
                         "cannot read the shape of dataset '%s' in '%s'", name, r->path);
    char got[128];
    format_dims(rank, all, got, sizeof got);
    if (rank != want)
        return saec_fail(SAEC_ERR_DATA, LAYOUT_HINT,
                         "dataset '%s' in '%s' has shape %s (rank %d); the EO layout needs %s",
                         name, r->path, got, rank, shape);
    memcpy(dims, all, sizeof(hsize_t) * (size_t)rank);
    return SAEC_OK;
}

/* The stored type's class and size; a class other than `cls` (or of another size, when `size`
   is not 0) fails naming the stored type. */
static int check_type(const eo_h5_reader *r, hid_t ds, const char *name, H5T_class_t cls,
                      size_t size, const char *wanted, int *is_signed) {
    hid_t type = H5Dget_type(ds);
    if (type < 0)
        return saec_fail(SAEC_ERR_DATA, "check the file with h5dump",
                         "cannot read the type of dataset '%s' in '%s'", name, r->path);
    const int ok = H5Tget_class(type) == cls && (size == 0 || H5Tget_size(type) == size);
    if (is_signed && ok) *is_signed = H5Tget_sign(type) != H5T_SGN_NONE;
    char tname[96];
    saec_h5_type_name(type, ds, tname, sizeof tname);
    H5Tclose(type);
    if (ok) return SAEC_OK;
    char hint[256];
    snprintf(hint, sizeof hint, "store '%s' as %s; " LAYOUT_HINT, name, wanted);
    return saec_fail(SAEC_ERR_DATA, hint, "dataset '%s' in '%s' is %s; the EO layout needs %s",
                     name, r->path, tname, wanted);
}

/* A dataset whose first extent must be N (the tiles). */
static int check_rows(const eo_h5_reader *r, const char *name, hsize_t rows) {
    if ((int64_t)rows == r->info.n) return SAEC_OK;
    return saec_fail(SAEC_ERR_DATA, "every dataset of the EO layout has one row per tile",
                     "dataset '%s' in '%s' has %llu rows but 'images' has %" PRId64 " tiles", name,
                     r->path, (unsigned long long)rows, r->info.n);
}

/* band_mean and band_std, attributes of `images`: both or neither, C finite floats each, the
   std positive. */
static int read_band_stats(eo_h5_reader *r) {
    static const char *const names[2] = {"band_mean", "band_std"};
    float *dst[2] = {r->info.band_mean, r->info.band_std};
    int present[2];
    for (int a = 0; a < 2; a++)
        present[a] = H5Aexists(r->images, names[a]) > 0;
    if (!present[0] && !present[1]) return SAEC_OK;
    if (present[0] != present[1])
        return saec_fail(SAEC_ERR_DATA, "write both band_mean and band_std, or neither",
                         "dataset 'images' in '%s' has attribute '%s' without '%s'", r->path,
                         names[present[0] ? 0 : 1], names[present[0] ? 1 : 0]);
    const int64_t C = r->info.bands;
    for (int a = 0; a < 2; a++) {
        hid_t attr = H5Aopen(r->images, names[a], H5P_DEFAULT);
        hid_t type = attr >= 0 ? H5Aget_type(attr) : H5I_INVALID_HID;
        hid_t space = attr >= 0 ? H5Aget_space(attr) : H5I_INVALID_HID;
        hssize_t count = space >= 0 ? H5Sget_simple_extent_npoints(space) : -1;
        const int numeric =
            type >= 0 && (H5Tget_class(type) == H5T_FLOAT || H5Tget_class(type) == H5T_INTEGER);
        herr_t read = numeric && count == C ? H5Aread(attr, H5T_NATIVE_FLOAT, dst[a]) : -1;
        if (space >= 0) H5Sclose(space);
        if (type >= 0) H5Tclose(type);
        if (attr >= 0) H5Aclose(attr);
        if (read < 0)
            return saec_fail(
                SAEC_ERR_DATA, "band_mean and band_std are float32 arrays [C], one value per band",
                "attribute '%s' of dataset 'images' in '%s' is not %" PRId64
                " numbers (found %lld %s)",
                names[a], r->path, C, (long long)count, numeric ? "values" : "non-numeric values");
        for (int64_t c = 0; c < C; c++)
            if (!isfinite(dst[a][c]) || (a == 1 && !(dst[a][c] > 0)))
                return saec_fail(SAEC_ERR_DATA,
                                 "band statistics must be finite, and each std positive",
                                 "attribute '%s' of dataset 'images' in '%s' has %g for band "
                                 "%" PRId64,
                                 names[a], r->path, (double)dst[a][c], c);
    }
    r->info.has_band_stats = 1;
    return SAEC_OK;
}

/* class_names, one string on `labels`: K names separated by '\n' (one trailing '\n' allowed).
   The names are required: without them a class id means nothing to a reader of the results. */
static int read_class_names(eo_h5_reader *r, int64_t k_expected) {
    enum { CAP = EO_H5_MAX_CLASSES * EO_H5_NAME_MAX + 2 };
    char *text = malloc(CAP);
    if (!text) return saec_fail(SAEC_ERR_OTHER, NULL, "out of memory reading '%s'", r->path);
    const char *hint = "attribute class_names on 'labels': one string, the K class names joined "
                       "by '\\n' (h5py: ds.attrs['class_names'] = '\\n'.join(names))";
    if (!saec_h5_read_string_attr(r->labels, "class_names", text, CAP)) {
        free(text);
        const int present = H5Aexists(r->labels, "class_names") > 0;
        return saec_fail(SAEC_ERR_DATA, hint, "dataset 'labels' in '%s': %s", r->path,
                         present ? "its class_names attribute is not one string"
                                 : "no class_names attribute");
    }
    size_t len = strlen(text);
    if (len > 0 && text[len - 1] == '\n') text[--len] = '\0';
    int k = 0, rc = SAEC_OK;
    for (char *p = text; rc == SAEC_OK;) {
        char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        if (k >= EO_H5_MAX_CLASSES)
            rc = saec_fail(SAEC_ERR_DATA, hint,
                           "attribute class_names of 'labels' in '%s' names more than %d classes",
                           r->path, EO_H5_MAX_CLASSES);
        else if (n == 0 || n >= EO_H5_NAME_MAX)
            rc = saec_fail(SAEC_ERR_DATA, hint,
                           "attribute class_names of 'labels' in '%s': class %d's name is %s",
                           r->path, k, n ? "longer than 63 characters" : "empty");
        else
            snprintf(r->info.class_names[k++], EO_H5_NAME_MAX, "%.*s", (int)n, p);
        if (!nl) break;
        p = nl + 1;
    }
    free(text);
    if (rc != SAEC_OK) return rc;
    if (k_expected > 0 && k != k_expected)
        return saec_fail(SAEC_ERR_DATA, hint,
                         "dataset 'labels' in '%s' has %" PRId64 " columns but class_names names "
                         "%d classes",
                         r->path, k_expected, k);
    r->info.n_classes = k;
    return SAEC_OK;
}

static int open_locked(eo_h5_reader *r) {
    const char *path = r->path;
    if (H5Fis_hdf5(path) <= 0)
        return saec_fail(SAEC_ERR_DATA, LAYOUT_HINT,
                         "'%s' is not an HDF5 file (looking for dataset 'images')", path);
    r->file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (r->file < 0)
        return saec_fail(SAEC_ERR_DATA,
                         "the file may be damaged, or locked by a process writing it "
                         "(HDF5_USE_FILE_LOCKING=FALSE disables the lock)",
                         "cannot open HDF5 file '%s' (dataset 'images')", path);
    eo_h5_info *info = &r->info;
    hsize_t dims[4];

    SAEC_TRY(open_dataset(r, "images", 1, &r->images));
    SAEC_TRY(check_rank(r, r->images, "images", 4, "[N, C, H, W]", dims));
    if (dims[0] < 1 || dims[1] < 1 || dims[1] > EO_H5_MAX_BANDS || dims[2] < 1 || dims[3] < 1)
        return saec_fail(SAEC_ERR_DATA, LAYOUT_HINT,
                         "dataset 'images' in '%s' is [%llu, %llu, %llu, %llu]: needs at least one "
                         "tile, 1 to %d bands and a non-empty grid",
                         path, (unsigned long long)dims[0], (unsigned long long)dims[1],
                         (unsigned long long)dims[2], (unsigned long long)dims[3], EO_H5_MAX_BANDS);
    info->n = (int64_t)dims[0];
    info->bands = (int64_t)dims[1];
    info->height = (int64_t)dims[2];
    info->width = (int64_t)dims[3];
    hid_t type = H5Dget_type(r->images);
    info->pixels_uint16 = type >= 0 && H5Tget_class(type) == H5T_INTEGER &&
                          H5Tget_size(type) == 2 && H5Tget_sign(type) == H5T_SGN_NONE;
    if (type >= 0) H5Tclose(type);
    if (!info->pixels_uint16)
        SAEC_TRY(check_type(r, r->images, "images", H5T_FLOAT, 4, "uint16 or float32", NULL));
    SAEC_TRY(read_band_stats(r));

    SAEC_TRY(open_dataset(r, "metadata", 0, &r->metadata));
    if (r->metadata >= 0) {
        SAEC_TRY(check_rank(r, r->metadata, "metadata", 2, "[N, 4]", dims));
        SAEC_TRY(check_rows(r, "metadata", dims[0]));
        if (dims[1] != 4)
            return saec_fail(SAEC_ERR_DATA, LAYOUT_HINT,
                             "dataset 'metadata' in '%s' has %llu columns; the EO layout needs 4 "
                             "(ISO week, hour, latitude, longitude; NaN = missing)",
                             path, (unsigned long long)dims[1]);
        SAEC_TRY(check_type(r, r->metadata, "metadata", H5T_FLOAT, 4, "float32", NULL));
        info->has_metadata = 1;
    }

    SAEC_TRY(open_dataset(r, "labels", 0, &r->labels));
    if (r->labels >= 0) {
        hid_t space = H5Dget_space(r->labels);
        int rank = space >= 0 ? H5Sget_simple_extent_ndims(space) : -1;
        if (space >= 0) H5Sclose(space);
        info->multi_label = rank == 2;
        SAEC_TRY(check_rank(r, r->labels, "labels", rank == 1 ? 1 : 2, "[N, K] or [N]", dims));
        SAEC_TRY(check_rows(r, "labels", dims[0]));
        SAEC_TRY(check_type(r, r->labels, "labels", H5T_INTEGER, 0,
                            info->multi_label ? "uint8 (multi-hot)" : "integer class ids", NULL));
        if (info->multi_label && (dims[1] < 1 || dims[1] > EO_H5_MAX_CLASSES))
            return saec_fail(SAEC_ERR_DATA, LAYOUT_HINT,
                             "dataset 'labels' in '%s' has %llu classes; 1 to %d are supported",
                             path, (unsigned long long)dims[1], EO_H5_MAX_CLASSES);
        SAEC_TRY(read_class_names(r, info->multi_label ? (int64_t)dims[1] : 0));
    }

    SAEC_TRY(open_dataset(r, "split", 0, &r->split));
    if (r->split >= 0) {
        SAEC_TRY(check_rank(r, r->split, "split", 1, "[N]", dims));
        SAEC_TRY(check_rows(r, "split", dims[0]));
        SAEC_TRY(check_type(r, r->split, "split", H5T_INTEGER, 0, "uint8 (0 train, 1 val, 2 test)",
                            NULL));
        info->has_split = 1;
    }
    return SAEC_OK;
}

int eo_h5_reader_open(const char *path, eo_h5_reader **out) {
    *out = NULL;
    eo_h5_reader *r = calloc(1, sizeof *r);
    if (!r) return saec_fail(SAEC_ERR_OTHER, NULL, "out of memory opening '%s'", path);
    if (strlen(path) >= sizeof r->path) {
        free(r);
        return saec_fail(SAEC_ERR_USAGE, "use a shorter path", "the path '%.80s...' is too long",
                         path);
    }
    snprintf(r->path, sizeof r->path, "%s", path);
    r->file = r->images = r->metadata = r->labels = r->split = H5I_INVALID_HID;
    saec_h5_lock();
    int rc = open_locked(r);
    saec_h5_unlock();
    if (rc != SAEC_OK) {
        eo_h5_reader_close(r);
        return rc;
    }
    *out = r;
    return SAEC_OK;
}

const eo_h5_info *eo_h5_reader_info(const eo_h5_reader *r) { return &r->info; }

void eo_h5_reader_close(eo_h5_reader *r) {
    if (!r) return;
    saec_h5_lock();
    hid_t ids[4] = {r->images, r->metadata, r->labels, r->split};
    for (int i = 0; i < 4; i++)
        if (ids[i] >= 0) H5Dclose(ids[i]);
    if (r->file >= 0) H5Fclose(r->file);
    saec_h5_unlock();
    free(r->scratch);
    free(r);
}

int eo_h5_is_eo_file(const char *path) {
    FILE *probe = fopen(path, "rb");
    if (!probe) return 0;
    fclose(probe);
    int is_eo = 0;
    saec_h5_lock();
    if (H5Fis_hdf5(path) > 0) {
        hid_t file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
        if (file >= 0 && H5Lexists(file, "images", H5P_DEFAULT) > 0) {
            hid_t obj = H5Oopen(file, "images", H5P_DEFAULT);
            is_eo = obj >= 0 && H5Iget_type(obj) == H5I_DATASET;
            if (obj >= 0) H5Oclose(obj);
        }
        if (file >= 0) H5Fclose(file);
    }
    saec_h5_unlock();
    return is_eo;
}

/* ---- reading ------------------------------------------------------------------------------- */

/* Reads (or, with `write`, writes) tiles [start, start + n) of ds, a dataset of rank 1..4 whose
   first extent is the tiles, from or to buf as mem_type; a write first grows ds to start + n
   tiles. Lock held. */
static herr_t tiles_io(hid_t ds, int64_t start, int64_t n, hid_t mem_type, void *buf, int write) {
    hid_t fspace = H5Dget_space(ds);
    int rank = fspace >= 0 ? H5Sget_simple_extent_ndims(fspace) : -1;
    hsize_t dims[4], offset[4] = {(hsize_t)start, 0, 0, 0}, count[4];
    herr_t rc = -1;
    if (rank >= 1 && rank <= 4 && H5Sget_simple_extent_dims(fspace, dims, NULL) >= 0) {
        if (write) {
            dims[0] = (hsize_t)(start + n);
            H5Sclose(fspace);
            fspace = H5Dset_extent(ds, dims) >= 0 ? H5Dget_space(ds) : H5I_INVALID_HID;
        }
        memcpy(count, dims, sizeof count);
        count[0] = (hsize_t)n;
        hid_t mspace = H5Screate_simple(rank, count, NULL);
        if (fspace >= 0 && mspace >= 0 &&
            H5Sselect_hyperslab(fspace, H5S_SELECT_SET, offset, NULL, count, NULL) >= 0)
            rc = write ? H5Dwrite(ds, mem_type, mspace, fspace, H5P_DEFAULT, buf)
                       : H5Dread(ds, mem_type, mspace, fspace, H5P_DEFAULT, buf);
        if (mspace >= 0) H5Sclose(mspace);
    }
    if (fspace >= 0) H5Sclose(fspace);
    return rc;
}

/* Tiles [start, start + n) of dataset `name` as mem_type into dst. Lock held. */
static int read_rows(const eo_h5_reader *r, hid_t ds, const char *name, int64_t start, int64_t n,
                     hid_t mem_type, void *dst) {
    if (tiles_io(ds, start, n, mem_type, dst, 0) >= 0) return SAEC_OK;
    return saec_fail(SAEC_ERR_DATA, "the file may be damaged; check it with h5dump",
                     "cannot read tiles %" PRId64 "..%" PRId64 " of dataset '%s' in '%s'", start,
                     start + n - 1, name, r->path);
}

static int grow_scratch(eo_h5_reader *r, int64_t count) {
    if (count <= r->scratch_cap) return SAEC_OK;
    int64_t *bigger = realloc(r->scratch, sizeof(int64_t) * (size_t)count);
    if (!bigger) return saec_fail(SAEC_ERR_OTHER, NULL, "out of memory reading '%s'", r->path);
    r->scratch = bigger;
    r->scratch_cap = count;
    return SAEC_OK;
}

/* labels [n, K] multi-hot from either stored form, every value checked. */
static int read_labels(eo_h5_reader *r, int64_t start, int64_t n, uint8_t *labels) {
    const int64_t K = r->info.n_classes, width = r->info.multi_label ? K : 1;
    SAEC_TRY(grow_scratch(r, n * width));
    SAEC_TRY(read_rows(r, r->labels, "labels", start, n, H5T_NATIVE_INT64, r->scratch));
    memset(labels, 0, (size_t)(n * K));
    for (int64_t i = 0; i < n; i++) {
        const int64_t *v = r->scratch + i * width;
        if (!r->info.multi_label) {
            if (v[0] < 0 || v[0] >= K)
                return saec_fail(SAEC_ERR_DATA, "class ids lie in [0, K), K the class_names count",
                                 "row %" PRId64 " of dataset 'labels' in '%s' has class id %" PRId64
                                 ", outside [0, %" PRId64 ")",
                                 start + i, r->path, v[0], K);
            labels[i * K + v[0]] = 1;
            continue;
        }
        for (int64_t c = 0; c < K; c++) {
            if (v[c] != 0 && v[c] != 1)
                return saec_fail(SAEC_ERR_DATA, "multi-hot labels hold 0 or 1",
                                 "row %" PRId64 " of dataset 'labels' in '%s' has %" PRId64
                                 " in column %" PRId64,
                                 start + i, r->path, v[c], c);
            labels[i * K + c] = (uint8_t)v[c];
        }
    }
    return SAEC_OK;
}

static int read_split(eo_h5_reader *r, int64_t start, int64_t n, uint8_t *split) {
    SAEC_TRY(grow_scratch(r, n));
    SAEC_TRY(read_rows(r, r->split, "split", start, n, H5T_NATIVE_INT64, r->scratch));
    for (int64_t i = 0; i < n; i++) {
        if (r->scratch[i] < EO_SPLIT_TRAIN || r->scratch[i] > EO_SPLIT_TEST)
            return saec_fail(SAEC_ERR_DATA, "split values: 0 train, 1 val, 2 test",
                             "row %" PRId64 " of dataset 'split' in '%s' is %" PRId64, start + i,
                             r->path, r->scratch[i]);
        split[i] = (uint8_t)r->scratch[i];
    }
    return SAEC_OK;
}

static int read_locked(eo_h5_reader *r, int64_t start, int64_t n, float *images, float *metadata,
                       uint8_t *labels, uint8_t *split) {
    const eo_h5_info *info = &r->info;
    if (images) {
        SAEC_TRY(read_rows(r, r->images, "images", start, n, H5T_NATIVE_FLOAT, images));
        const int64_t per_tile = info->bands * info->height * info->width;
        if (!info->pixels_uint16)
            for (int64_t i = 0; i < n * per_tile; i++)
                if (!isfinite(images[i]))
                    return saec_fail(SAEC_ERR_DATA, "clean or drop tiles with non-finite pixels",
                                     "tile %" PRId64 " of dataset 'images' in '%s' has a %s pixel "
                                     "(band %" PRId64 ")",
                                     start + i / per_tile, r->path,
                                     isnan(images[i]) ? "NaN" : "Inf",
                                     (i % per_tile) / (info->height * info->width));
    }
    if (metadata && r->metadata >= 0)
        SAEC_TRY(read_rows(r, r->metadata, "metadata", start, n, H5T_NATIVE_FLOAT, metadata));
    else if (metadata)
        for (int64_t i = 0; i < 4 * n; i++)
            metadata[i] = NAN;
    if (labels && r->labels >= 0) SAEC_TRY(read_labels(r, start, n, labels));
    if (split && r->split >= 0)
        SAEC_TRY(read_split(r, start, n, split));
    else if (split)
        memset(split, EO_SPLIT_TRAIN, (size_t)n);
    return SAEC_OK;
}

int eo_h5_read(eo_h5_reader *r, int64_t start, int64_t n, float *images, float *metadata,
               uint8_t *labels, uint8_t *split) {
    if (start < 0 || n < 0 || start + n > r->info.n)
        return saec_fail(SAEC_ERR_OTHER, NULL,
                         "internal: tiles %" PRId64 "+%" PRId64 " outside the %" PRId64
                         " tiles of '%s'",
                         start, n, r->info.n, r->path);
    if (n == 0) return SAEC_OK;
    saec_h5_lock();
    int rc = read_locked(r, start, n, images, metadata, labels, split);
    saec_h5_unlock();
    return rc;
}

/* ---- writing ------------------------------------------------------------------------------- */

struct eo_h5_writer {
    char path[SAEC_STR_MAX];
    char tmp[SAEC_STR_MAX + 32];
    hid_t file, images, metadata, labels, split;
    eo_h5_info info;
    int64_t n;       /* tiles appended */
    int32_t *ids;    /* [cap] class ids of the batch (single-label) */
    float *nan_meta; /* [cap, 4] missing metadata */
    uint8_t *zeros;  /* [cap] the train split */
    int64_t cap;
};

/* Dataset `name` [0, tail...] growing along the tiles, chunked by `chunk` tiles. */
static hid_t create_growing(hid_t file, const char *name, hid_t type, int rank, const hsize_t *tail,
                            hsize_t chunk) {
    hsize_t dims[4] = {0}, maxdims[4] = {H5S_UNLIMITED}, cdims[4] = {chunk};
    for (int i = 1; i < rank; i++)
        dims[i] = maxdims[i] = cdims[i] = tail[i - 1];
    hid_t space = H5Screate_simple(rank, dims, maxdims);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(dcpl, rank, cdims);
    hid_t ds = H5Dcreate2(file, name, type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    H5Pclose(dcpl);
    H5Sclose(space);
    return ds;
}

static int check_writer_info(const char *path, const eo_h5_info *info) {
    if (info->bands < 1 || info->bands > EO_H5_MAX_BANDS || info->height < 1 || info->width < 1 ||
        info->n_classes < 0 || info->n_classes > EO_H5_MAX_CLASSES)
        return saec_fail(SAEC_ERR_USAGE, "1 to 16 bands, a non-empty grid, 0 to 64 classes",
                         "cannot write '%s': %" PRId64 " bands of %" PRId64 "x%" PRId64
                         ", %d classes",
                         path, info->bands, info->height, info->width, info->n_classes);
    for (int c = 0; c < info->n_classes; c++) {
        const char *name = info->class_names[c];
        size_t len = strnlen(name, EO_H5_NAME_MAX);
        if (len == 0 || len == EO_H5_NAME_MAX || strchr(name, '\n'))
            return saec_fail(SAEC_ERR_USAGE,
                             "class names are 1 to 63 characters without a line break",
                             "cannot write '%s': the name of class %d is not valid", path, c);
    }
    return SAEC_OK;
}

static int create_locked(eo_h5_writer *w) {
    const eo_h5_info *info = &w->info;
    w->file = H5Fcreate(w->tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (w->file < 0) return -1;
    const hsize_t img_tail[3] = {(hsize_t)info->bands, (hsize_t)info->height, (hsize_t)info->width};
    /* One tile per chunk: training reads tiles in a shuffled order, one at a time. */
    w->images = create_growing(
        w->file, "images", info->pixels_uint16 ? H5T_STD_U16LE : H5T_IEEE_F32LE, 4, img_tail, 1);
    if (w->images < 0) return -1;
    const hsize_t rows_chunk = 4096, four = 4, K = (hsize_t)info->n_classes;
    if (info->has_metadata) {
        w->metadata = create_growing(w->file, "metadata", H5T_IEEE_F32LE, 2, &four, rows_chunk);
        if (w->metadata < 0) return -1;
    }
    if (info->n_classes > 0) {
        w->labels = info->multi_label
                        ? create_growing(w->file, "labels", H5T_STD_U8LE, 2, &K, rows_chunk)
                        : create_growing(w->file, "labels", H5T_STD_I32LE, 1, NULL, rows_chunk);
        if (w->labels < 0) return -1;
        char names[EO_H5_MAX_CLASSES * EO_H5_NAME_MAX];
        size_t len = 0;
        for (int c = 0; c < info->n_classes; c++)
            len += (size_t)snprintf(names + len, sizeof names - len, "%s%s", c ? "\n" : "",
                                    info->class_names[c]);
        if (saec_h5_write_string_attr(w->labels, "class_names", names) < 0) return -1;
    }
    if (info->has_split) {
        w->split = create_growing(w->file, "split", H5T_STD_U8LE, 1, NULL, rows_chunk);
        if (w->split < 0) return -1;
    }
    return 0;
}

int eo_h5_writer_create(const char *path, const eo_h5_info *info, eo_h5_writer **out) {
    *out = NULL;
    SAEC_TRY(check_writer_info(path, info));
    eo_h5_writer *w = calloc(1, sizeof *w);
    if (!w) return saec_fail(SAEC_ERR_OTHER, NULL, "out of memory writing '%s'", path);
    w->file = w->images = w->metadata = w->labels = w->split = H5I_INVALID_HID;
    w->info = *info;
    w->info.n = 0;
    int len = snprintf(w->tmp, sizeof w->tmp, "%s.tmp.%ld", path, (long)getpid());
    if (strlen(path) >= sizeof w->path || len < 0 || (size_t)len >= sizeof w->tmp) {
        free(w);
        return saec_fail(SAEC_ERR_USAGE, "choose a shorter output path",
                         "cannot write '%.200s...': the path is too long", path);
    }
    snprintf(w->path, sizeof w->path, "%s", path);
    /* Probe with plain stdio first: HDF5's own failure says nothing about why. */
    FILE *probe = fopen(w->tmp, "wb");
    if (!probe) {
        int err = errno;
        free(w);
        return saec_fail(SAEC_ERR_USAGE, "choose an existing, writable directory for --out",
                         "cannot write '%s': %s", path, strerror(err));
    }
    fclose(probe);
    saec_h5_lock();
    int bad = create_locked(w);
    saec_h5_unlock();
    if (bad) {
        eo_h5_writer_abort(w);
        return saec_fail(SAEC_ERR_OTHER, "check free disk space", "cannot create HDF5 file '%s'",
                         path);
    }
    *out = w;
    return SAEC_OK;
}

/* Appends n tiles to ds, which holds total − n, from data (mem_type). Lock held. */
static herr_t append_rows(hid_t ds, int64_t total, int64_t n, hid_t mem_type, const void *data) {
    return tiles_io(ds, total - n, n, mem_type, (void *)data, 1);
}

/* The per-batch helper arrays, for at least n tiles. */
static int grow_staging(eo_h5_writer *w, int64_t n) {
    if (n <= w->cap) return SAEC_OK;
    int32_t *ids = realloc(w->ids, sizeof(int32_t) * (size_t)n);
    if (ids) w->ids = ids;
    float *nan_meta = ids ? realloc(w->nan_meta, sizeof(float) * 4 * (size_t)n) : NULL;
    if (nan_meta) w->nan_meta = nan_meta;
    uint8_t *zeros = nan_meta ? realloc(w->zeros, (size_t)n) : NULL;
    if (zeros) w->zeros = zeros;
    if (!zeros) return saec_fail(SAEC_ERR_OTHER, NULL, "out of memory writing '%s'", w->path);
    for (int64_t i = 0; i < 4 * n; i++)
        w->nan_meta[i] = NAN;
    memset(w->zeros, EO_SPLIT_TRAIN, (size_t)n);
    w->cap = n;
    return SAEC_OK;
}

/* The values the layout constrains, checked before anything of the batch is written. */
static int check_batch(eo_h5_writer *w, int64_t n, const uint8_t *labels, const uint8_t *split) {
    const int64_t K = w->info.n_classes;
    if (K > 0 && !labels)
        return saec_fail(SAEC_ERR_OTHER, NULL, "internal: no labels for '%s' (%" PRId64 " classes)",
                         w->path, K);
    for (int64_t i = 0; split && w->info.has_split && i < n; i++)
        if (split[i] > EO_SPLIT_TEST)
            return saec_fail(SAEC_ERR_DATA, "split values: 0 train, 1 val, 2 test",
                             "tile %" PRId64 " for '%s' has split %d", w->n + i, w->path, split[i]);
    for (int64_t i = 0; K > 0 && i < n; i++) {
        int ones = 0, id = 0;
        for (int64_t c = 0; c < K; c++) {
            if (labels[i * K + c] > 1)
                return saec_fail(SAEC_ERR_DATA, "multi-hot labels hold 0 or 1",
                                 "tile %" PRId64 " for '%s' has label %d for class %" PRId64,
                                 w->n + i, w->path, labels[i * K + c], c);
            if (labels[i * K + c]) ones++, id = (int)c;
        }
        if (!w->info.multi_label && ones != 1)
            return saec_fail(SAEC_ERR_DATA, "single-label data has exactly one class per tile",
                             "tile %" PRId64 " for '%s' has %d classes", w->n + i, w->path, ones);
        if (!w->info.multi_label) w->ids[i] = id;
    }
    return SAEC_OK;
}

int eo_h5_writer_append(eo_h5_writer *w, int64_t n, const void *images, const float *metadata,
                        const uint8_t *labels, const uint8_t *split) {
    if (n < 0 || (n > 0 && !images))
        return saec_fail(SAEC_ERR_OTHER, NULL, "internal: %" PRId64 " tiles for '%s'", n, w->path);
    if (n == 0) return SAEC_OK;
    SAEC_TRY(grow_staging(w, n));
    SAEC_TRY(check_batch(w, n, labels, split));
    const int64_t total = w->n + n;
    saec_h5_lock();
    herr_t rc = append_rows(w->images, total, n,
                            w->info.pixels_uint16 ? H5T_NATIVE_UINT16 : H5T_NATIVE_FLOAT, images);
    if (rc >= 0 && w->metadata >= 0)
        rc =
            append_rows(w->metadata, total, n, H5T_NATIVE_FLOAT, metadata ? metadata : w->nan_meta);
    if (rc >= 0 && w->labels >= 0)
        rc = w->info.multi_label ? append_rows(w->labels, total, n, H5T_NATIVE_UINT8, labels)
                                 : append_rows(w->labels, total, n, H5T_NATIVE_INT32, w->ids);
    if (rc >= 0 && w->split >= 0)
        rc = append_rows(w->split, total, n, H5T_NATIVE_UINT8, split ? split : w->zeros);
    saec_h5_unlock();
    if (rc < 0)
        return saec_fail(SAEC_ERR_OTHER, "check free disk space",
                         "cannot write tiles %" PRId64 "..%" PRId64 " of '%s'", w->n, total - 1,
                         w->tmp);
    w->n = total;
    return SAEC_OK;
}

int eo_h5_writer_set_provenance(eo_h5_writer *w, const char *json) {
    saec_h5_lock();
    int bad = saec_h5_write_string_attr(w->file, "saec_provenance", json);
    saec_h5_unlock();
    if (bad)
        return saec_fail(SAEC_ERR_OTHER, "check free disk space",
                         "cannot write the provenance attribute of '%s'", w->tmp);
    return SAEC_OK;
}

static int write_float_attr(hid_t obj, const char *name, const float *values, int64_t count) {
    hsize_t dims[1] = {(hsize_t)count};
    hid_t space = H5Screate_simple(1, dims, NULL);
    hid_t attr = H5Acreate2(obj, name, H5T_IEEE_F32LE, space, H5P_DEFAULT, H5P_DEFAULT);
    herr_t rc = attr >= 0 ? H5Awrite(attr, H5T_NATIVE_FLOAT, values) : -1;
    if (attr >= 0) H5Aclose(attr);
    H5Sclose(space);
    return rc < 0 ? -1 : 0;
}

/* Closes every handle; returns -1 when a close (which flushes) failed. Lock held. */
static int close_locked(eo_h5_writer *w) {
    int bad = 0;
    hid_t ids[4] = {w->images, w->metadata, w->labels, w->split};
    for (int i = 0; i < 4; i++)
        if (ids[i] >= 0 && H5Dclose(ids[i]) < 0) bad = -1;
    if (w->file >= 0 && H5Fclose(w->file) < 0) bad = -1;
    w->file = w->images = w->metadata = w->labels = w->split = H5I_INVALID_HID;
    return bad;
}

static void writer_free(eo_h5_writer *w) {
    free(w->ids);
    free(w->nan_meta);
    free(w->zeros);
    free(w);
}

int eo_h5_writer_finish(eo_h5_writer *w, const float *band_mean, const float *band_std) {
    int rc = SAEC_OK;
    if (w->n == 0)
        rc = saec_fail(SAEC_ERR_USAGE, "write at least one tile", "no tiles written to '%s'",
                       w->path);
    saec_h5_lock();
    if (rc == SAEC_OK &&
        ((band_mean && write_float_attr(w->images, "band_mean", band_mean, w->info.bands) < 0) ||
         (band_std && write_float_attr(w->images, "band_std", band_std, w->info.bands) < 0)))
        rc = saec_fail(SAEC_ERR_OTHER, "check free disk space",
                       "cannot write the band statistics of '%s'", w->tmp);
    if (close_locked(w) < 0 && rc == SAEC_OK)
        rc = saec_fail(SAEC_ERR_OTHER, "check free disk space", "cannot finish writing '%s'",
                       w->tmp);
    saec_h5_unlock();
    if (rc == SAEC_OK && rename(w->tmp, w->path) != 0)
        rc = saec_fail(SAEC_ERR_USAGE, "choose a writable location for --out",
                       "cannot rename '%s' to '%s': %s", w->tmp, w->path, strerror(errno));
    if (rc != SAEC_OK) remove(w->tmp);
    writer_free(w);
    return rc;
}

void eo_h5_writer_abort(eo_h5_writer *w) {
    if (!w) return;
    saec_h5_lock();
    close_locked(w);
    saec_h5_unlock();
    remove(w->tmp);
    writer_free(w);
}
