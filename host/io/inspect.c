/* `saec inspect`: what an HDF5 dataset, a safetensors file or a run directory holds, so a user can
   check shapes, dtypes, config and provenance without Python. */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>
#include <hdf5.h>

#include "eo_h5.h"
#include "h5_lock.h"
#include "inspect.h"
#include "run_dir.h"
#include "saec/saec.h"
#include "safetensors.h"

/* Prints JSON text pretty-printed and indented; text that is not JSON is printed as it is. */
static void print_json_text(FILE *out, const char *text, const char *indent) {
    cJSON *json = cJSON_Parse(text);
    char *pretty = json ? cJSON_Print(json) : NULL;
    const char *begin = pretty ? pretty : text, *p = begin;
    fputs(indent, out);
    for (; *p; p++) {
        if (*p == '\n') {
            fputc('\n', out);
            fputs(indent, out);
        } else if (*p == '\t') {
            fputs(p > begin && p[-1] == ':' ? " " : "  ", out); /* cJSON puts a tab after ':' */
        } else {
            fputc(*p, out);
        }
    }
    fputc('\n', out);
    free(pretty);
    cJSON_Delete(json);
}

static int is_json_container(const char *text) {
    while (*text == ' ' || *text == '\n' || *text == '\t' || *text == '\r')
        text++;
    return *text == '{' || *text == '[';
}

static char *read_text(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len + 4096 + 1 > cap) {
            cap = cap ? cap * 2 : 8192;
            char *grown = realloc(buf, cap);
            if (!grown) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = grown;
        }
        size_t got = fread(buf + len, 1, 4096, f);
        len += got;
        if (got < 4096) break;
    }
    fclose(f);
    buf[len] = '\0';
    return buf;
}

/* ---- HDF5 ------------------------------------------------------------------------------------ */

typedef struct {
    FILE *out;
    char path[1024]; /* of the group being listed, "" for the root */
    int depth;
} h5_walk;

static void print_shape(FILE *out, hid_t space) {
    int rank = H5Sget_simple_extent_ndims(space);
    if (rank == 0) {
        fputs("scalar", out);
        return;
    }
    hsize_t dims[H5S_MAX_RANK];
    H5Sget_simple_extent_dims(space, dims, NULL);
    fputc('[', out);
    for (int i = 0; i < rank; i++)
        fprintf(out, "%s%llu", i ? ", " : "", (unsigned long long)dims[i]);
    fputc(']', out);
}

typedef struct {
    FILE *out;
    int indent;
    int skip_provenance; /* the file's own, printed in full at the end */
} attr_list;

static herr_t print_attr(hid_t obj, const char *name, const H5A_info_t *info, void *op) {
    (void)info;
    const attr_list *list = op;
    if (list->skip_provenance && strcmp(name, "saec_provenance") == 0) return 0;
    hid_t attr = H5Aopen(obj, name, H5P_DEFAULT);
    if (attr < 0) return 0;
    hid_t type = H5Aget_type(attr);
    hid_t space = H5Aget_space(attr);
    hssize_t npoints = H5Sget_simple_extent_npoints(space);
    H5T_class_t cls = H5Tget_class(type);
    FILE *out = list->out;
    fprintf(out, "%*s@%s = ", list->indent, "", name);
    char text[256];
    if (cls == H5T_STRING && npoints == 1 &&
        saec_h5_read_string_attr(obj, name, text, sizeof text)) {
        fprintf(out, "\"%s\"%s\n", text, strlen(text) == sizeof text - 1 ? "..." : "");
    } else if ((cls == H5T_FLOAT || cls == H5T_INTEGER) && npoints == 1) {
        double v = 0;
        H5Aread(attr, H5T_NATIVE_DOUBLE, &v);
        fprintf(out, "%.17g\n", v);
    } else {
        char tname[96];
        saec_h5_type_name(type, H5I_INVALID_HID, tname, sizeof tname);
        print_shape(out, space);
        fprintf(out, " %s\n", tname);
    }
    H5Sclose(space);
    H5Tclose(type);
    H5Aclose(attr);
    return 0;
}

/* Attributes of an object, listed under it at `indent`. */
static void print_attrs(hid_t obj, FILE *out, int indent, int skip_provenance) {
    attr_list list = {out, indent, skip_provenance};
    hsize_t idx = 0;
    H5Aiterate2(obj, H5_INDEX_NAME, H5_ITER_INC, &idx, print_attr, &list);
}

/* ", min A, max B" of a 1-D integer dataset (the timesteps), read in pieces. Lock held. */
static void print_int_range(FILE *out, hid_t ds, hid_t space) {
    hsize_t n = 0;
    if (H5Sget_simple_extent_ndims(space) != 1) return;
    H5Sget_simple_extent_dims(space, &n, NULL);
    enum { PIECE = 1 << 16 };
    int64_t *buf = malloc(sizeof(int64_t) * PIECE);
    if (!buf || n == 0) {
        free(buf);
        return;
    }
    int64_t lo = INT64_MAX, hi = INT64_MIN;
    for (hsize_t at = 0; at < n; at += PIECE) {
        hsize_t start[1] = {at}, count[1] = {n - at < PIECE ? n - at : PIECE};
        hid_t fs = H5Scopy(space), ms = H5Screate_simple(1, count, NULL);
        herr_t rc = H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL);
        if (rc >= 0) rc = H5Dread(ds, H5T_NATIVE_INT64, ms, fs, H5P_DEFAULT, buf);
        H5Sclose(ms);
        H5Sclose(fs);
        if (rc < 0) {
            fputs(", unreadable", out);
            free(buf);
            return;
        }
        for (hsize_t i = 0; i < count[0]; i++) {
            if (buf[i] < lo) lo = buf[i];
            if (buf[i] > hi) hi = buf[i];
        }
    }
    free(buf);
    fprintf(out, ", min %" PRId64 ", max %" PRId64, lo, hi);
}

static void print_dataset(hid_t ds, const char *full, h5_walk *walk) {
    FILE *out = walk->out;
    hid_t space = H5Dget_space(ds);
    hid_t type = H5Dget_type(ds);
    char tname[96];
    saec_h5_type_name(type, ds, tname, sizeof tname);
    fprintf(out, "%*s%s  dataset ", 2 * walk->depth + 2, "", full);
    print_shape(out, space);
    fprintf(out, " %s", tname);
    hid_t dcpl = H5Dget_create_plist(ds);
    if (dcpl >= 0) {
        H5D_layout_t layout = H5Pget_layout(dcpl);
        if (layout == H5D_CHUNKED) {
            hsize_t cdims[H5S_MAX_RANK];
            int crank = H5Pget_chunk(dcpl, H5S_MAX_RANK, cdims);
            fputs(", chunks [", out);
            for (int i = 0; i < crank; i++)
                fprintf(out, "%s%llu", i ? ", " : "", (unsigned long long)cdims[i]);
            fputc(']', out);
            int nf = H5Pget_nfilters(dcpl);
            for (int i = 0; i < nf; i++) {
                unsigned flags;
                size_t nelem = 0;
                char fname[64] = "";
                unsigned filter_config;
                H5Pget_filter2(dcpl, (unsigned)i, &flags, &nelem, NULL, sizeof fname, fname,
                               &filter_config);
                fprintf(out, ", %s", fname[0] ? fname : "filter");
            }
        } else if (layout == H5D_COMPACT) {
            fputs(", compact", out);
        } else {
            fputs(", contiguous", out);
        }
        H5Pclose(dcpl);
    }
    /* The timesteps' range tells which --timesteps the file needs. */
    const char *base = strrchr(full, '/');
    if (strcmp(base ? base + 1 : full, "timesteps") == 0 && H5Tget_class(type) == H5T_INTEGER)
        print_int_range(out, ds, space);
    fputc('\n', out);
    H5Tclose(type);
    H5Sclose(space);
}

static herr_t walk_link(hid_t group, const char *name, const H5L_info_t *info, void *op) {
    (void)info;
    h5_walk *walk = op;
    char full[1024];
    int len = snprintf(full, sizeof full, "%s/%s", walk->path, name);
    if (len < 0 || (size_t)len >= sizeof full) return 0; /* absurdly deep: not worth listing */
    hid_t obj = H5Oopen(group, name, H5P_DEFAULT);
    if (obj < 0) {
        fprintf(walk->out, "%*s%s  (cannot open: dangling or external link)\n", 2 * walk->depth + 2,
                "", full);
        return 0;
    }
    H5I_type_t type = H5Iget_type(obj);
    if (type == H5I_DATASET) {
        print_dataset(obj, full, walk);
        print_attrs(obj, walk->out, 2 * walk->depth + 4, 0);
    } else if (type == H5I_GROUP) {
        fprintf(walk->out, "%*s%s/  group\n", 2 * walk->depth + 2, "", full);
        h5_walk sub = *walk;
        snprintf(sub.path, sizeof sub.path, "%s", full);
        sub.depth = walk->depth + 1;
        print_attrs(obj, walk->out, 2 * sub.depth + 2, 0);
        if (sub.depth < 32) { /* hard links can form cycles */
            hsize_t idx = 0;
            H5Literate(obj, H5_INDEX_NAME, H5_ITER_INC, &idx, walk_link, &sub);
        }
    } else {
        fprintf(walk->out, "%*s%s  named datatype\n", 2 * walk->depth + 2, "", full);
    }
    H5Oclose(obj);
    return 0;
}

static int inspect_hdf5(const char *path, FILE *out) {
    saec_h5_lock();
    hid_t file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (file < 0) {
        saec_h5_unlock();
        return saec_fail(SAEC_ERR_DATA,
                         "the file may be damaged, or locked by a process writing it "
                         "(HDF5_USE_FILE_LOCKING=FALSE disables the lock)",
                         "cannot open HDF5 file '%s'", path);
    }
    fprintf(out, "%s: HDF5 file\n", path);
    h5_walk walk = {out, "", 0};
    print_attrs(file, out, 2, 1);
    hsize_t idx = 0;
    H5Literate(file, H5_INDEX_NAME, H5_ITER_INC, &idx, walk_link, &walk);
    /* The provenance can be long JSON: read it whole. */
    char *prov = NULL;
    if (H5Aexists(file, "saec_provenance") > 0) {
        size_t cap = 1 << 20;
        prov = malloc(cap);
        if (prov && !saec_h5_read_string_attr(file, "saec_provenance", prov, cap)) {
            free(prov);
            prov = NULL;
        }
    }
    H5Fclose(file);
    saec_h5_unlock();
    if (prov) {
        fprintf(out, "provenance (saec_provenance):\n");
        print_json_text(out, prov, "  ");
        free(prov);
    } else {
        fprintf(out, "provenance: none\n");
    }
    return SAEC_OK;
}

/* ---- EO files -------------------------------------------------------------------------------- */

/* A summary of a file in the EO layout (eo_h5.h): shape, classes, split counts, band statistics.
   The layout is checked as training reads it; a bad file fails naming the dataset. */
static int inspect_eo(const char *path, FILE *out) {
    eo_h5_reader *r = NULL;
    SAEC_TRY(eo_h5_reader_open(path, &r));
    const eo_h5_info *info = eo_h5_reader_info(r);
    int64_t counts[3] = {info->n, 0, 0};
    uint8_t *split = info->has_split ? malloc((size_t)info->n) : NULL; /* [N] */
    int rc = info->has_split && !split
                 ? saec_fail(SAEC_ERR_OTHER, NULL, "out of memory reading '%s'", path)
                 : SAEC_OK;
    if (split && (rc = eo_h5_read(r, 0, info->n, NULL, NULL, NULL, split)) == SAEC_OK) {
        counts[0] = 0;
        for (int64_t i = 0; i < info->n; i++)
            counts[split[i]]++;
    }
    free(split);
    if (rc == SAEC_OK) {
        fprintf(out, "%s: EO file (HDF5 EO layout)\n", path);
        fprintf(out, "  tiles     %" PRId64 " x [%" PRId64 " bands, %" PRId64 " x %" PRId64 "] %s\n",
                info->n, info->bands, info->height, info->width,
                info->pixels_uint16 ? "uint16" : "float32");
        fprintf(out, "  metadata  %s\n",
                info->has_metadata ? "[N, 4] week, hour, lat, lon" : "none (all missing)");
        if (info->n_classes == 0) fprintf(out, "  labels    none\n");
        else
            fprintf(out, "  labels    %d classes, %s:", info->n_classes,
                    info->multi_label ? "multi-hot" : "class ids");
        for (int c = 0; c < info->n_classes; c++)
            fprintf(out, " %s%s", info->class_names[c], c + 1 < info->n_classes ? "," : "\n");
        fprintf(out, "  split     train %" PRId64 ", val %" PRId64 ", test %" PRId64 "%s\n",
                counts[0], counts[1], counts[2], info->has_split ? "" : " (no split: all train)");
        if (info->has_band_stats) {
            for (int k = 0; k < 2; k++) {
                const float *v = k ? info->band_std : info->band_mean;
                fprintf(out, "  band_%s ", k ? "std " : "mean");
                for (int64_t c = 0; c < info->bands; c++)
                    fprintf(out, " %.6g", (double)v[c]);
                fputc('\n', out);
            }
        } else {
            fprintf(out, "  band stats none (training computes them)\n");
        }
    }
    eo_h5_reader_close(r);
    return rc;
}

/* ---- safetensors ----------------------------------------------------------------------------- */

static int inspect_safetensors(const char *path, FILE *out) {
    saec_st_file *f = NULL;
    SAEC_TRY(saec_st_open(path, &f));
    int n = saec_st_count(f);
    fprintf(out, "%s: safetensors, %d tensor%s\n", path, n, n == 1 ? "" : "s");
    for (int i = 0; i < n; i++) {
        const saec_st_tensor *t = saec_st_get(f, i);
        fprintf(out, "  %s  %s [", t->name, saec_st_dtype_name(t->dtype));
        for (int j = 0; j < t->ndim; j++)
            fprintf(out, "%s%" PRId64, j ? ", " : "", t->shape[j]);
        fprintf(out, "]\n");
    }
    int nm = saec_st_meta_count(f);
    if (nm > 0) fprintf(out, "  metadata:\n");
    for (int i = 0; i < nm; i++) {
        const saec_st_meta *m = saec_st_meta_at(f, i);
        if (is_json_container(m->value)) {
            fprintf(out, "    %s:\n", m->key);
            print_json_text(out, m->value, "      ");
        } else {
            fprintf(out, "    %s: %s\n", m->key, m->value);
        }
    }
    saec_st_close(f);
    return SAEC_OK;
}

/* ---- run directories ------------------------------------------------------------------------- */

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

static int select_safetensors(const struct dirent *e) {
    return ends_with(e->d_name, ".safetensors");
}

static int inspect_json_file(const char *dir, const char *name, FILE *out) {
    char path[2048];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    char *text = read_text(path);
    if (!text) return 0;
    fprintf(out, "%s:\n", name);
    print_json_text(out, text, "  ");
    free(text);
    return 1;
}

static int inspect_dir(const char *path, FILE *out) {
    struct dirent **entries = NULL;
    int n = scandir(path, &entries, select_safetensors, alphasort);
    if (n < 0)
        return saec_fail(SAEC_ERR_DATA, "check the directory's permissions", "cannot list '%s': %s",
                         path, strerror(errno));
    char config[2048];
    snprintf(config, sizeof config, "%s/config.json", path);
    struct stat st;
    if (stat(config, &st) != 0 && n == 0) {
        free(entries);
        return saec_fail(
            SAEC_ERR_DATA,
            "saec inspect takes a run directory (with config.json), an HDF5 dataset or "
            "a safetensors file",
            "'%s' is not a run directory: no config.json and no .safetensors files", path);
    }
    /* A run directory has config.json; a SAELens or sparsify export has cfg.json instead. */
    const int is_run = stat(config, &st) == 0;
    fprintf(out, "%s: %s\n", path, is_run ? "run directory" : "export or safetensors directory");
    inspect_json_file(path, "config.json", out);
    inspect_json_file(path, "summary.json", out);
    if (is_run) saec_ckpt_print(path, out);
    inspect_json_file(path, "cfg.json", out);
    int rc = SAEC_OK;
    for (int i = 0; i < n; i++) {
        if (rc == SAEC_OK) {
            char file[2048];
            snprintf(file, sizeof file, "%s/%s", path, entries[i]->d_name);
            rc = inspect_safetensors(file, out);
        }
        free(entries[i]);
    }
    free(entries);
    return rc;
}

/* ---- entry ----------------------------------------------------------------------------------- */

/* A safetensors file starts with its header length (8 bytes, little-endian) and then '{'. */
static int looks_like_safetensors(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    unsigned char head[9];
    size_t got = fread(head, 1, sizeof head, f);
    fclose(f);
    return got == sizeof head && head[8] == '{';
}

int saec_inspect(const char *path, FILE *out) {
    struct stat st;
    if (stat(path, &st) != 0)
        return saec_fail(SAEC_ERR_DATA, "check the path", "cannot inspect '%s': %s", path,
                         strerror(errno));
    if (S_ISDIR(st.st_mode)) return inspect_dir(path, out);
    FILE *probe = fopen(path, "rb");
    if (!probe)
        return saec_fail(SAEC_ERR_DATA, "check the file's permissions", "cannot read '%s': %s",
                         path, strerror(errno));
    fclose(probe);
    saec_h5_lock();
    htri_t is_h5 = H5Fis_hdf5(path);
    saec_h5_unlock();
    if (is_h5 > 0 && eo_h5_is_eo_file(path)) {
        SAEC_TRY(inspect_eo(path, out));
        fputs("\n", out);
    }
    if (is_h5 > 0) return inspect_hdf5(path, out);
    if (ends_with(path, ".safetensors") || looks_like_safetensors(path))
        return inspect_safetensors(path, out);
    return saec_fail(SAEC_ERR_DATA,
                     "saec inspect takes an HDF5 activation dataset, a .safetensors file or a run "
                     "directory",
                     "cannot inspect '%s': not an HDF5 file, a safetensors file or a directory",
                     path);
}
