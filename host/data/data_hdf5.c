/* HDF5 activation datasets (SPEC §10) as a saec_data source.

   The file is validated at open (dataset, rank, width, dtype) so a bad --data fails before any
   model is built. Rows are then streamed by a background thread that reads and converts the next
   shuffle window while the trainer consumes the current one (double buffering).

   Stream layout, a pure function of the cursor so that a resumed run continues exactly:
     - the dataset is cut into blocks of `block_rows` consecutive rows (a multiple of the chunk
       rows when the dataset is chunked, so each chunk is read once);
     - epoch e visits the blocks in an order permuted by RNG(seed, e);
     - consecutive blocks of that order form windows of about cfg->shuffle_rows rows;
     - the rows of window w are permuted by RNG(seed, e, w);
     - the training stream is these permuted windows one after another, epoch after epoch.
   The eval stream reads the file in order from row 0, wrapping at the end, never shuffled.
   An optional integer dataset `timesteps` [N] beside the activations (SPEC §10) is read by the
   same thread, block by block with the rows, and delivered in the same (permuted) order; its
   values must lie in [0, cfg->timesteps).
   The loader thread only decides *when* a window is read, never *what* it holds, so results do
   not depend on thread timing. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <hdf5.h>

#include "data.h"
#include "data_checks.h"
#include "h5_lock.h"
#include "half.h"
#include "saec/saec.h"

/* Reads attribute `attr` of type `type`, one string, fixed or variable length, into buf [cap]
   (terminated, truncated to fit); *full_len is its whole length. Returns 1 when read. */
static int read_one_string(hid_t attr, hid_t type, char *buf, size_t cap, size_t *full_len) {
    int ok = 0;
    hid_t mem = H5Tcopy(H5T_C_S1);
    H5Tset_cset(mem, H5Tget_cset(type));
    if (H5Tis_variable_str(type) > 0) {
        char *value = NULL;
        H5Tset_size(mem, H5T_VARIABLE);
        if (H5Aread(attr, mem, &value) >= 0) {
            *full_len = value ? strlen(value) : 0;
            snprintf(buf, cap, "%s", value ? value : "");
            ok = 1;
        }
        if (value) H5free_memory(value);
    } else {
        size_t size = H5Tget_size(type);
        char *value = calloc(size + 1, 1);
        H5Tset_size(mem, size + 1); /* room for the terminator HDF5 adds */
        H5Tset_strpad(mem, H5T_STR_NULLTERM);
        if (value && H5Aread(attr, mem, value) >= 0) {
            value[size] = '\0';
            *full_len = strlen(value);
            snprintf(buf, cap, "%s", value);
            ok = 1;
        }
        free(value);
    }
    H5Tclose(mem);
    return ok;
}

int saec_h5_read_string_attr(hid_t obj, const char *name, char *buf, size_t cap) {
    if (cap == 0) return 0;
    buf[0] = '\0';
    if (H5Aexists(obj, name) <= 0) return 0;
    hid_t attr = H5Aopen(obj, name, H5P_DEFAULT);
    if (attr < 0) return 0;
    int ok = 0;
    hid_t type = H5Aget_type(attr);
    hid_t space = H5Aget_space(attr);
    hssize_t npoints = space >= 0 ? H5Sget_simple_extent_npoints(space) : -1;
    size_t full_len = 0;
    if (type >= 0 && H5Tget_class(type) == H5T_STRING && npoints == 1)
        ok = read_one_string(attr, type, buf, cap, &full_len);
    if (space >= 0) H5Sclose(space);
    if (type >= 0) H5Tclose(type);
    H5Aclose(attr);
    return ok;
}

/* The type part of a dataset description (data_checks.h). */
static void describe_type(hid_t type, saec_h5_dataset_desc *ds) {
    switch (H5Tget_class(type)) {
    case H5T_INTEGER: ds->cls = SAEC_H5_CLASS_INTEGER; break;
    case H5T_FLOAT: ds->cls = SAEC_H5_CLASS_FLOAT; break;
    case H5T_TIME: ds->cls = SAEC_H5_CLASS_TIME; break;
    case H5T_STRING: ds->cls = SAEC_H5_CLASS_STRING; break;
    case H5T_BITFIELD: ds->cls = SAEC_H5_CLASS_BITFIELD; break;
    case H5T_OPAQUE: ds->cls = SAEC_H5_CLASS_OPAQUE; break;
    case H5T_COMPOUND: ds->cls = SAEC_H5_CLASS_COMPOUND; break;
    case H5T_REFERENCE: ds->cls = SAEC_H5_CLASS_REFERENCE; break;
    case H5T_ENUM: ds->cls = SAEC_H5_CLASS_ENUM; break;
    case H5T_VLEN: ds->cls = SAEC_H5_CLASS_VLEN; break;
    case H5T_ARRAY: ds->cls = SAEC_H5_CLASS_ARRAY; break;
    default: ds->cls = SAEC_H5_CLASS_UNKNOWN; break;
    }
    ds->size = H5Tget_size(type);
    ds->big_endian = H5Tget_order(type) == H5T_ORDER_BE;
    if (ds->cls == SAEC_H5_CLASS_INTEGER) ds->is_signed = H5Tget_sign(type) != H5T_SGN_NONE;
    if (ds->cls == SAEC_H5_CLASS_FLOAT) {
        size_t spos, epos, mpos;
        H5Tget_fields(type, &spos, &epos, &ds->exp_bits, &mpos, &ds->mant_bits);
        ds->exp_bias = H5Tget_ebias(type);
    }
}

/* The attribute `dtype` of obj into the description; its value goes to value [cap] (a longer
   one is cut, so it never equals an accepted name), what is wrong with it to what [wcap]. */
static void describe_dtype_attr(hid_t obj, saec_h5_dataset_desc *ds, char *value, size_t cap,
                                char *what, size_t wcap) {
    ds->dtype_attr = SAEC_H5_ATTR_ABSENT;
    htri_t exists = H5Aexists(obj, "dtype");
    if (exists == 0) return;
    ds->dtype_attr = SAEC_H5_ATTR_NOT_STRING;
    snprintf(what, wcap, "unreadable");
    hid_t attr = exists > 0 ? H5Aopen(obj, "dtype", H5P_DEFAULT) : H5I_INVALID_HID;
    hid_t type = attr >= 0 ? H5Aget_type(attr) : H5I_INVALID_HID;
    hid_t space = attr >= 0 ? H5Aget_space(attr) : H5I_INVALID_HID;
    hssize_t npoints = space >= 0 ? H5Sget_simple_extent_npoints(space) : -1;
    if (type >= 0 && npoints >= 0) {
        size_t full_len = 0;
        if (H5Tget_class(type) != H5T_STRING) {
            char tname[96];
            saec_h5_type_name(type, H5I_INVALID_HID, tname, sizeof tname);
            if (npoints == 1) /* "an int64 value", "a uint8 value" */
                snprintf(what, wcap, "%s %s value", strchr("aeio", tname[0]) ? "an" : "a", tname);
            else
                snprintf(what, wcap, "%lld values of type %s", (long long)npoints, tname);
        } else if (npoints != 1) {
            snprintf(what, wcap, "%lld strings", (long long)npoints);
        } else if (read_one_string(attr, type, value, cap, &full_len)) {
            ds->dtype_attr = SAEC_H5_ATTR_STRING;
            ds->dtype_value = value;
            ds->dtype_len = full_len < cap ? full_len : cap - 1;
        } else {
            snprintf(what, wcap, "an unreadable string");
        }
    }
    ds->dtype_what = what;
    ds->what_len = strlen(what);
    if (space >= 0) H5Sclose(space);
    if (type >= 0) H5Tclose(type);
    if (attr >= 0) H5Aclose(attr);
}

void saec_h5_type_name(hid_t type, hid_t obj, char *buf, size_t cap) {
    saec_h5_dataset_desc ds;
    memset(&ds, 0, sizeof ds);
    describe_type(type, &ds);
    char value[64], what[96];
    if (obj >= 0 && ds.cls == SAEC_H5_CLASS_INTEGER && ds.size == 2)
        describe_dtype_attr(obj, &ds, value, sizeof value, what, sizeof what);
    saec_h5_desc_type_name(&ds, buf, cap);
}

/* What saec checks of dataset dset (`name` in `path`): shape, type and dtype attribute. The
   attribute's text lives in attr [ATTR_CAP] and what [WHAT_CAP]. Lock held. */
enum { ATTR_CAP = 256, WHAT_CAP = 128 };
static void describe_dataset(hid_t dset, const char *path, const char *name,
                             saec_h5_dataset_desc *ds, char *attr, char *what) {
    memset(ds, 0, sizeof *ds);
    ds->path = path;
    ds->name = name;
    hid_t space = H5Dget_space(dset);
    ds->rank = space >= 0 ? H5Sget_simple_extent_ndims(space) : -1;
    hsize_t dims[H5S_MAX_RANK] = {0};
    if (ds->rank > 0 && ds->rank <= H5S_MAX_RANK &&
        H5Sget_simple_extent_dims(space, dims, NULL) < 0)
        ds->rank = -1;
    for (int i = 0; i < ds->rank && i < SAEC_H5_DESC_MAX_RANK; i++)
        ds->dims[i] = (uint64_t)dims[i];
    if (space >= 0) H5Sclose(space);
    hid_t type = H5Dget_type(dset);
    if (type >= 0) {
        describe_type(type, ds);
        H5Tclose(type);
    } else {
        ds->cls = SAEC_H5_CLASS_UNKNOWN;
    }
    describe_dtype_attr(dset, ds, attr, ATTR_CAP, what, WHAT_CAP);
}

/* ---- deterministic RNG ----------------------------------------------------------------------- */

static uint64_t splitmix64(uint64_t *state) {
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* A stream seeded by (seed, tag, epoch, window): each part is folded in through a full mix, so
   neighbouring epochs or windows give unrelated permutations. */
static uint64_t rng_seed(uint64_t seed, uint64_t tag, uint64_t epoch, uint64_t window) {
    uint64_t s = seed;
    uint64_t h = splitmix64(&s);
    s = h ^ tag;
    h = splitmix64(&s);
    s = h ^ epoch;
    h = splitmix64(&s);
    s = h ^ window;
    return splitmix64(&s);
}

/* Distinguish the block-order stream from the row-order streams. */
#define TAG_BLOCKS 0x626c6f636b73ull /* "blocks" */
#define TAG_ROWS 0x726f7773ull       /* "rows" */

/* ---- the source ------------------------------------------------------------------------------ */

typedef enum { H5_F32, H5_F16, H5_BF16 } h5_kind;

/* One shuffle window, loaded by the thread, then read by the consumer. */
typedef struct {
    int valid;
    int64_t epoch, window;
    int64_t rows;
    float *x;       /* [cap_rows, d] rows in load order */
    int32_t *ts;    /* [cap_rows] their timesteps, when the file has them */
    uint32_t *perm; /* [cap_rows] stream row i is x[perm[i]] */
} h5_window;

#define LOAD_ABANDONED (-1)

typedef struct {
    saec_data base; /* first: the interface casts between the two */
    char path[SAEC_STR_MAX];
    char dataset[64];
    char description[SAEC_STR_MAX + 160];
    uint64_t seed;
    int shuffle; /* training stream */
    hid_t file, dset;
    hid_t tset;       /* the timesteps dataset, or H5I_INVALID_HID */
    char ts_name[96]; /* its path in the file */
    int64_t T;        /* timesteps lie in [0, T) */
    h5_kind kind;
    hid_t mem_type; /* what H5Dread converts to: native float, or the raw 16-bit layout */
    int64_t n, d;
    int64_t block_rows, n_blocks;
    int64_t blocks_per_window, n_windows;
    int64_t cap_rows; /* rows of the largest window */
    int64_t pos;      /* the cursor */

    /* consumer side */
    int front;          /* win[front] is the consumer's; win[1 - front] the loader's */
    int64_t lay_epoch;  /* epoch whose layout is cached below, -1 none */
    int64_t *lay_order; /* [n_blocks] block order of lay_epoch */
    int64_t *lay_start; /* [n_windows + 1] first position of each window within the epoch */

    /* loader side (only the thread touches these) */
    int64_t th_epoch;
    int64_t *th_order;   /* [n_blocks] */
    uint16_t *staging;   /* [block_rows, d] raw 16-bit rows (float16 / bfloat16 only) */
    int64_t *ts_staging; /* [block_rows] timesteps as read (int64, so any value is reported) */
    char th_msg[1024], th_hint[256];

    h5_window win[2];

    /* shared, under mu */
    pthread_mutex_t mu;
    pthread_cond_t cv_job, cv_done;
    pthread_t thread;
    int thread_started;
    int stop;
    uint64_t req_gen, done_gen; /* a job is outstanding while done_gen != req_gen */
    int64_t req_epoch, req_window;
    int req_buf;
    int job_code;
    char job_msg[1024], job_hint[256];
} h5_source;

static int64_t block_len(const h5_source *s, int64_t b) {
    return b == s->n_blocks - 1 ? s->n - b * s->block_rows : s->block_rows;
}

/* The block order of an epoch: [n_blocks]. */
static void block_order(const h5_source *s, int64_t epoch, int64_t *order) {
    for (int64_t i = 0; i < s->n_blocks; i++)
        order[i] = i;
    if (!s->shuffle) return;
    uint64_t st = rng_seed(s->seed, TAG_BLOCKS, (uint64_t)epoch, 0);
    for (int64_t i = s->n_blocks - 1; i > 0; i--) {
        int64_t j = (int64_t)(splitmix64(&st) % (uint64_t)(i + 1));
        int64_t t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
}

/* Reads rows [row0, row0 + len) of dataset dset (rank 1: [N], rank 2: [N, cols]) into dst as
   mem_type; on failure the loader's message names the dataset `name`. Loader thread only. */
static int read_rows(h5_source *s, hid_t dset, const char *name, int rank, int64_t row0,
                     int64_t len, int64_t cols, hid_t mem_type, void *dst) {
    hsize_t start[2] = {(hsize_t)row0, 0}, count[2] = {(hsize_t)len, (hsize_t)cols};
    saec_h5_lock();
    herr_t rc = -1;
    hid_t fspace = H5Dget_space(dset);
    hid_t mspace = H5Screate_simple(rank, count, NULL);
    if (fspace >= 0 && mspace >= 0 &&
        H5Sselect_hyperslab(fspace, H5S_SELECT_SET, start, NULL, count, NULL) >= 0)
        rc = H5Dread(dset, mem_type, mspace, fspace, H5P_DEFAULT, dst);
    if (mspace >= 0) H5Sclose(mspace);
    if (fspace >= 0) H5Sclose(fspace);
    saec_h5_unlock();
    if (rc >= 0) return SAEC_OK;
    snprintf(s->th_msg, sizeof s->th_msg,
             "cannot read rows %" PRId64 "..%" PRId64 " of dataset '%s' in '%s'", row0,
             row0 + len - 1, name, s->path);
    snprintf(s->th_hint, sizeof s->th_hint,
             "the file may be truncated or damaged; check it with `saec inspect` or h5dump");
    return SAEC_ERR_DATA;
}

/* Reads the timesteps of rows [row0, row0 + len) into ts [len], checking each is in [0, T).
   Loader thread only. */
static int read_timesteps(h5_source *s, int64_t row0, int64_t len, int32_t *ts) {
    SAEC_TRY(read_rows(s, s->tset, s->ts_name, 1, row0, len, 1, H5T_NATIVE_INT64, s->ts_staging));
    const int64_t T = s->T;
    int bad = 0;
    for (int64_t r = 0; r < len; r++) {
        const int64_t t = s->ts_staging[r];
        bad |= t < 0 || t >= T;
        ts[r] = (int32_t)t;
    }
    if (bad) {
        int64_t r = 0;
        while (s->ts_staging[r] >= 0 && s->ts_staging[r] < T)
            r++;
        snprintf(s->th_msg, sizeof s->th_msg,
                 "row %" PRId64 " of dataset '%s' in '%s' holds timestep %" PRId64
                 ", outside [0, %" PRId64 ")",
                 row0 + r, s->ts_name, s->path, s->ts_staging[r], T);
        snprintf(s->th_hint, sizeof s->th_hint,
                 "set --timesteps to the diffusion schedule's length (timesteps lie in [0, T))");
        return SAEC_ERR_DATA;
    }
    return SAEC_OK;
}

/* Reads rows [row0, row0 + len) of the file into x [len, d] as float32 and checks that every
   value is finite. Loader thread only. */
static int read_block(h5_source *s, int64_t row0, int64_t len, float *x) {
    void *dst = s->kind == H5_F32 ? (void *)x : (void *)s->staging;
    SAEC_TRY(read_rows(s, s->dset, s->dataset, 2, row0, len, s->d, s->mem_type, dst));
    const int64_t d = s->d;
    const float *half_table = s->kind == H5_F16 ? saec_half_table() : NULL; /* [65536] */
    for (int64_t r = 0; r < len; r++) {
        float *row = x + r * d;
        /* Branch-free checks that the compiler vectorises: the loader must keep up with the
           device. x * 0 is 0 for finite x and NaN for Inf or NaN; in both 16-bit layouts an
           exponent of all ones means Inf or NaN. */
        int bad = 0;
        if (s->kind == H5_F32) {
            for (int64_t j = 0; j < d; j++)
                bad |= !(row[j] * 0.0f == 0.0f);
        } else if (s->kind == H5_F16) {
            const uint16_t *raw = s->staging + r * d;
            for (int64_t j = 0; j < d; j++) {
                bad |= (raw[j] & 0x7c00u) == 0x7c00u;
                row[j] = half_table[raw[j]];
            }
        } else {
            const uint16_t *raw = s->staging + r * d;
            for (int64_t j = 0; j < d; j++) {
                bad |= (raw[j] & 0x7f80u) == 0x7f80u;
                row[j] = saec_bf16_to_float(raw[j]);
            }
        }
        if (bad) {
            int64_t col = 0;
            while (col < d && isfinite(row[col]))
                col++;
            snprintf(
                s->th_msg, sizeof s->th_msg,
                "row %" PRId64 " of dataset '%s' in '%s' is not finite (%s in column %" PRId64 ")",
                row0 + r, s->dataset, s->path, col < d && isnan(row[col]) ? "NaN" : "Inf", col);
            snprintf(s->th_hint, sizeof s->th_hint,
                     "clean or drop non-finite rows before training");
            return SAEC_ERR_DATA;
        }
    }
    return SAEC_OK;
}

/* ---- the loader thread ----------------------------------------------------------------------- */

static int superseded(h5_source *s, uint64_t gen) {
    pthread_mutex_lock(&s->mu);
    int r = s->stop || s->req_gen != gen;
    pthread_mutex_unlock(&s->mu);
    return r;
}

/* Loads window w of epoch e into win. Returns SAEC_OK, an error (message in th_msg), or
   LOAD_ABANDONED when a newer request or close superseded this one. */
static int load_window(h5_source *s, int64_t e, int64_t w, h5_window *win, uint64_t gen) {
    win->valid = 0;
    if (s->th_epoch != e) {
        block_order(s, e, s->th_order);
        s->th_epoch = e;
    }
    int64_t b0 = w * s->blocks_per_window;
    int64_t b1 = b0 + s->blocks_per_window < s->n_blocks ? b0 + s->blocks_per_window : s->n_blocks;
    int64_t rows = 0;
    for (int64_t b = b0; b < b1; b++) {
        /* Checked per block so close and seek never wait for more than one block read. */
        if (superseded(s, gen)) return LOAD_ABANDONED;
        int64_t blk = s->th_order[b];
        int64_t len = block_len(s, blk);
        int rc = read_block(s, blk * s->block_rows, len, win->x + rows * s->d);
        if (rc == SAEC_OK && s->tset >= 0)
            rc = read_timesteps(s, blk * s->block_rows, len, win->ts + rows);
        if (rc != SAEC_OK) return rc;
        rows += len;
    }
    for (int64_t i = 0; i < rows; i++)
        win->perm[i] = (uint32_t)i;
    if (s->shuffle) {
        uint64_t st = rng_seed(s->seed, TAG_ROWS, (uint64_t)e, (uint64_t)w);
        for (int64_t i = rows - 1; i > 0; i--) {
            int64_t j = (int64_t)(splitmix64(&st) % (uint64_t)(i + 1));
            uint32_t t = win->perm[i];
            win->perm[i] = win->perm[j];
            win->perm[j] = t;
        }
    }
    win->rows = rows;
    win->epoch = e;
    win->window = w;
    win->valid = 1;
    return SAEC_OK;
}

static void *loader_main(void *arg) {
    h5_source *s = arg;
    uint64_t taken = 0;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (!s->stop && s->req_gen == taken)
            pthread_cond_wait(&s->cv_job, &s->mu);
        if (s->stop) break;
        uint64_t gen = s->req_gen;
        int64_t e = s->req_epoch, w = s->req_window;
        h5_window *win = &s->win[s->req_buf];
        taken = gen;
        pthread_mutex_unlock(&s->mu);
        int code = load_window(s, e, w, win, gen);
        pthread_mutex_lock(&s->mu);
        /* A result for a request that was replaced meanwhile is dropped: the consumer waits for
           the newest request only. */
        if (code == LOAD_ABANDONED || gen != s->req_gen) continue;
        s->job_code = code;
        snprintf(s->job_msg, sizeof s->job_msg, "%s", code ? s->th_msg : "");
        snprintf(s->job_hint, sizeof s->job_hint, "%s", code ? s->th_hint : "");
        s->done_gen = gen;
        pthread_cond_broadcast(&s->cv_done);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* ---- consumer side --------------------------------------------------------------------------- */

static void request_locked(h5_source *s, int64_t e, int64_t w) {
    s->req_gen++;
    s->req_epoch = e;
    s->req_window = w;
    s->req_buf = 1 - s->front;
    pthread_cond_signal(&s->cv_job);
}

static void ensure_layout(h5_source *s, int64_t e) {
    if (s->lay_epoch == e) return;
    block_order(s, e, s->lay_order);
    int64_t p = 0;
    for (int64_t w = 0; w < s->n_windows; w++) {
        s->lay_start[w] = p;
        int64_t b1 = (w + 1) * s->blocks_per_window;
        if (b1 > s->n_blocks) b1 = s->n_blocks;
        for (int64_t b = w * s->blocks_per_window; b < b1; b++)
            p += block_len(s, s->lay_order[b]);
    }
    s->lay_start[s->n_windows] = p; /* == n */
    s->lay_epoch = e;
}

/* The window holding position `pos`: epoch, window index and offset within the window. */
static void locate(h5_source *s, int64_t pos, int64_t *e, int64_t *w, int64_t *off) {
    /* Eval epochs are all alike (file order): one key serves them all, so a file that fits in
       one window is read once. */
    *e = s->shuffle ? pos / s->n : 0;
    int64_t p = pos % s->n;
    ensure_layout(s, *e);
    int64_t lo = 0, hi = s->n_windows - 1; /* last window whose start <= p */
    while (lo < hi) {
        int64_t mid = (lo + hi + 1) / 2;
        if (s->lay_start[mid] <= p)
            lo = mid;
        else
            hi = mid - 1;
    }
    *w = lo;
    *off = p - s->lay_start[lo];
}

static int window_is_front(const h5_source *s, int64_t e, int64_t w) {
    const h5_window *f = &s->win[s->front];
    return f->valid && f->epoch == e && f->window == w;
}

/* Makes window (e, w) the front window, waiting for the loader if needed, then asks the loader
   for the window after it. */
static int ensure_window(h5_source *s, int64_t e, int64_t w) {
    if (window_is_front(s, e, w)) return SAEC_OK;
    pthread_mutex_lock(&s->mu);
    if (s->req_gen == 0 || s->req_epoch != e || s->req_window != w) request_locked(s, e, w);
    while (s->done_gen != s->req_gen)
        pthread_cond_wait(&s->cv_done, &s->mu);
    int code = s->job_code;
    char msg[1024], hint[256];
    snprintf(msg, sizeof msg, "%s", s->job_msg);
    snprintf(hint, sizeof hint, "%s", s->job_hint);
    pthread_mutex_unlock(&s->mu);
    /* Errors surface only when the window is needed, so where a run fails does not depend on
       how far ahead the loader got. The failed request stays current: asking again repeats the
       error rather than re-reading. */
    if (code != SAEC_OK) return saec_fail(code, hint, "%s", msg);
    s->front = 1 - s->front;
    int64_t ne = e, nw = w + 1;
    if (nw == s->n_windows) {
        ne = s->shuffle ? e + 1 : e;
        nw = 0;
    }
    if (!(ne == e && nw == w)) { /* a one-window eval file is already all there */
        pthread_mutex_lock(&s->mu);
        request_locked(s, ne, nw);
        pthread_mutex_unlock(&s->mu);
    }
    return SAEC_OK;
}

static int h5_next(saec_data *base, int64_t n, float *rows, int32_t *timesteps) {
    h5_source *s = (h5_source *)base;
    if (n < 0) return saec_fail(SAEC_ERR_OTHER, NULL, "internal: negative row count %" PRId64, n);
    while (n > 0) {
        int64_t e, w, off;
        locate(s, s->pos, &e, &w, &off);
        SAEC_TRY(ensure_window(s, e, w));
        const h5_window *win = &s->win[s->front];
        int64_t take = win->rows - off < n ? win->rows - off : n;
        for (int64_t i = 0; i < take; i++)
            memcpy(rows + i * s->d, win->x + (int64_t)win->perm[off + i] * s->d,
                   (size_t)s->d * sizeof(float));
        if (timesteps && s->tset >= 0) {
            for (int64_t i = 0; i < take; i++)
                timesteps[i] = win->ts[win->perm[off + i]];
            timesteps += take;
        }
        rows += take * s->d;
        n -= take;
        s->pos += take;
    }
    s->base.cursor = s->pos;
    return SAEC_OK;
}

static int h5_seek(saec_data *base, int64_t cursor) {
    h5_source *s = (h5_source *)base;
    if (cursor < 0)
        return saec_fail(SAEC_ERR_DATA, "the checkpoint's data cursor is damaged",
                         "cannot seek dataset '%s' in '%s' to negative row %" PRId64, s->dataset,
                         s->path, cursor);
    s->pos = cursor;
    s->base.cursor = cursor;
    int64_t e, w, off;
    locate(s, cursor, &e, &w, &off);
    if (!window_is_front(s, e, w)) {
        /* Start loading now; the next `next` waits for it. */
        pthread_mutex_lock(&s->mu);
        if (s->req_epoch != e || s->req_window != w || s->req_gen == 0) request_locked(s, e, w);
        pthread_mutex_unlock(&s->mu);
    }
    return SAEC_OK;
}

/* ---- ground truth ---------------------------------------------------------------------------- */

/* Reads dataset `name` of group g as float32 (HDF5 converts) with the given rank; dims out.
   Lock held. */
static int gt_read(const h5_source *s, hid_t g, const char *name, int rank, hsize_t *dims,
                   hid_t mem_type, size_t elem, void **out) {
    *out = NULL;
    if (H5Lexists(g, name, H5P_DEFAULT) <= 0)
        return saec_fail(
            SAEC_ERR_DATA,
            "the ground_truth group is incomplete; regenerate the file with `saec gen`",
            "no dataset ground_truth/%s in '%s'", name, s->path);
    hid_t ds = H5Dopen2(g, name, H5P_DEFAULT);
    if (ds < 0)
        return saec_fail(SAEC_ERR_DATA, "check the file with h5dump",
                         "cannot open dataset ground_truth/%s in '%s'", name, s->path);
    char full[96];
    snprintf(full, sizeof full, "ground_truth/%s", name);
    saec_h5_dataset_desc desc;
    char attr[ATTR_CAP], what[WHAT_CAP];
    describe_dataset(ds, s->path, full, &desc, attr, what);
    const saec_h5_expect want = {.role = SAEC_H5_ROLE_GROUND_TRUTH, .rank = rank};
    saec_h5_verdict verdict;
    int rc = saec_h5_check_dataset(&desc, &want, &verdict);
    if (rc == SAEC_OK) {
        /* the checks bound the element count, so count * elem cannot overflow */
        size_t count = 1;
        for (int i = 0; i < rank; i++) {
            dims[i] = (hsize_t)desc.dims[i];
            count *= (size_t)dims[i];
        }
        *out = malloc(count ? count * elem : 1);
        if (!*out)
            rc = saec_fail(SAEC_ERR_OTHER, NULL, "out of memory reading ground_truth/%s of '%s'",
                           name, s->path);
        else if (count && H5Dread(ds, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, *out) < 0)
            rc = saec_fail(SAEC_ERR_DATA, "check the file with h5dump",
                           "cannot read ground_truth/%s of '%s'", name, s->path);
    }
    H5Dclose(ds);
    if (rc != SAEC_OK) {
        free(*out);
        *out = NULL;
    }
    return rc;
}

static int h5_ground_truth_locked(h5_source *s, saec_ground_truth *gt) {
    hid_t g = H5Gopen2(s->file, "ground_truth", H5P_DEFAULT);
    if (g < 0)
        return saec_fail(SAEC_ERR_DATA, NULL, "cannot open group ground_truth in '%s'", s->path);
    hsize_t dd[2] = {0, 0}, dp[1] = {0}, doff[1] = {0}, dpar[1] = {0}, dtc[1] = {0};
    void *buf = NULL;
    int rc = gt_read(s, g, "directions", 2, dd, H5T_NATIVE_FLOAT, sizeof(float), &buf);
    gt->directions = buf; /* [F, d] */
    if (rc == SAEC_OK) {
        rc = gt_read(s, g, "probabilities", 1, dp, H5T_NATIVE_FLOAT, sizeof(float), &buf);
        gt->probabilities = buf; /* [F] */
    }
    if (rc == SAEC_OK) {
        rc = gt_read(s, g, "offset", 1, doff, H5T_NATIVE_FLOAT, sizeof(float), &buf);
        gt->offset = buf; /* [d] */
    }
    if (rc == SAEC_OK && H5Lexists(g, "parent", H5P_DEFAULT) > 0) {
        rc = gt_read(s, g, "parent", 1, dpar, H5T_NATIVE_INT32, sizeof(int32_t), &buf);
        gt->parent = buf; /* [F] */
    }
    if (rc == SAEC_OK && H5Lexists(g, "t_center", H5P_DEFAULT) > 0) {
        rc = gt_read(s, g, "t_center", 1, dtc, H5T_NATIVE_FLOAT, sizeof(float), &buf);
        gt->t_center = buf; /* [F] */
    }
    if (rc == SAEC_OK) {
        gt->n_features = (int64_t)dd[0];
        gt->d = (int64_t)dd[1];
        if (gt->d != s->d || (int64_t)dp[0] != gt->n_features || (int64_t)doff[0] != gt->d ||
            (gt->parent && (int64_t)dpar[0] != gt->n_features) ||
            (gt->t_center && (int64_t)dtc[0] != gt->n_features))
            rc = saec_fail(SAEC_ERR_DATA, "regenerate the file with `saec gen`",
                           "inconsistent ground truth in '%s': directions [%" PRId64 ", %" PRId64
                           "], probabilities [%" PRId64 "], offset [%" PRId64 "], parent [%" PRId64
                           "] for rows of width %" PRId64,
                           s->path, gt->n_features, gt->d, (int64_t)dp[0], (int64_t)doff[0],
                           gt->parent ? (int64_t)dpar[0] : (int64_t)-1, s->d);
    }
    if (rc == SAEC_OK && H5Aexists(g, "noise") > 0) {
        hid_t a = H5Aopen(g, "noise", H5P_DEFAULT);
        if (a < 0 || H5Aread(a, H5T_NATIVE_DOUBLE, &gt->noise) < 0)
            rc = saec_fail(SAEC_ERR_DATA, NULL, "cannot read attribute ground_truth/noise of '%s'",
                           s->path);
        if (a >= 0) H5Aclose(a);
    }
    H5Gclose(g);
    return rc;
}

static int h5_ground_truth(saec_data *base, saec_ground_truth *gt) {
    h5_source *s = (h5_source *)base;
    memset(gt, 0, sizeof *gt);
    if (!s->base.has_ground_truth)
        return saec_fail(
            SAEC_ERR_DATA,
            "ground truth comes with synthetic data: files written by `saec gen` carry "
            "it in group ground_truth",
            "no ground truth in '%s'", s->path);
    saec_h5_lock();
    int rc = h5_ground_truth_locked(s, gt);
    saec_h5_unlock();
    if (rc != SAEC_OK) saec_ground_truth_free(gt);
    return rc;
}

/* ---- open / close ---------------------------------------------------------------------------- */

static void h5_close(saec_data *base) {
    h5_source *s = (h5_source *)base;
    if (!s) return;
    if (s->thread_started) {
        pthread_mutex_lock(&s->mu);
        s->stop = 1;
        pthread_cond_broadcast(&s->cv_job);
        pthread_mutex_unlock(&s->mu);
        pthread_join(s->thread, NULL);
    }
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv_job);
    pthread_cond_destroy(&s->cv_done);
    saec_h5_lock();
    if (s->mem_type >= 0 && s->kind == H5_F16) H5Tclose(s->mem_type);
    if (s->dset >= 0) H5Dclose(s->dset);
    if (s->tset >= 0) H5Dclose(s->tset);
    if (s->file >= 0) H5Fclose(s->file);
    saec_h5_unlock();
    for (int i = 0; i < 2; i++) {
        free(s->win[i].x);
        free(s->win[i].ts);
        free(s->win[i].perm);
    }
    free(s->ts_staging);
    free(s->lay_order);
    free(s->lay_start);
    free(s->th_order);
    free(s->staging);
    free(s);
}

static const saec_data_vtable h5_vtable = {
    .next = h5_next,
    .seek = h5_seek,
    .ground_truth = h5_ground_truth,
    .close = h5_close,
};

/* The datasets in the file with their shapes ("layer5/resid [N, 768], ..."), for the hint when
   the asked one is absent. */
typedef struct {
    char *buf;
    size_t cap, len;
    int count;
    char prefix[256]; /* of the group being listed */
    int depth;
} name_list;

static void list_append(name_list *list, const char *text) {
    if (list->len + 1 >= list->cap) return;
    size_t room = list->cap - list->len;
    int w = snprintf(list->buf + list->len, room, "%s%s", list->count ? ", " : "", text);
    list->len = (w < 0 || (size_t)w >= room) ? list->cap - 1 : list->len + (size_t)w;
    list->count++;
}

static herr_t list_datasets(hid_t group, const char *name, const H5L_info_t *info, void *op) {
    (void)info;
    name_list *list = op;
    hid_t obj = H5Oopen(group, name, H5P_DEFAULT);
    if (obj < 0) return 0;
    char full[512];
    int len = snprintf(full, sizeof full, "%s%s", list->prefix, name);
    H5I_type_t type = H5Iget_type(obj);
    if (len > 0 && (size_t)len < sizeof full - 64 && type == H5I_DATASET) {
        hid_t space = H5Dget_space(obj);
        int rank = H5Sget_simple_extent_ndims(space);
        hsize_t dims[H5S_MAX_RANK];
        if (rank > 0) H5Sget_simple_extent_dims(space, dims, NULL);
        H5Sclose(space);
        char *p = full + len;
        size_t room = sizeof full - (size_t)len;
        for (int i = 0; i < rank && room > 24; i++) {
            int w = snprintf(p, room, "%s%llu", i ? ", " : " [", (unsigned long long)dims[i]);
            p += w;
            room -= (size_t)w;
        }
        if (rank > 0 && room > 1) snprintf(p, room, "]");
        list_append(list, full);
    } else if (len > 0 && (size_t)len < sizeof list->prefix - 1 && type == H5I_GROUP &&
               list->depth < 8) {
        name_list sub = *list;
        memcpy(sub.prefix, full, (size_t)len);
        memcpy(sub.prefix + len, "/", 2);
        sub.depth++;
        hsize_t idx = 0;
        H5Literate(obj, H5_INDEX_NAME, H5_ITER_INC, &idx, list_datasets, &sub);
        list->len = sub.len;
        list->count = sub.count;
    }
    H5Oclose(obj);
    return 0;
}

/* The optional timesteps dataset: `timesteps` in the activations' group, else at the root.
   Validates rank, length and dtype (the values are checked as they are read). Lock held. */
static int open_timesteps_locked(h5_source *s, const saec_config *cfg) {
    const char *slash = strrchr(s->dataset, '/');
    const int dir = slash ? (int)(slash - s->dataset) + 1 : 0;
    snprintf(s->ts_name, sizeof s->ts_name, "%.*stimesteps", dir, s->dataset);
    if (dir > 0 && H5Lexists(s->file, s->ts_name, H5P_DEFAULT) <= 0)
        snprintf(s->ts_name, sizeof s->ts_name, "timesteps");
    const char *name = s->ts_name, *path = s->path;
    if (strcmp(name, s->dataset) == 0 ||
        (name[0] != '/' && s->dataset[0] == '/' && strcmp(name, s->dataset + 1) == 0))
        return SAEC_OK; /* the activations themselves are called timesteps */
    if (H5Lexists(s->file, name, H5P_DEFAULT) <= 0) return SAEC_OK;
    hid_t obj = H5Oopen(s->file, name, H5P_DEFAULT);
    H5I_type_t objtype = obj >= 0 ? H5Iget_type(obj) : H5I_BADID;
    if (obj >= 0) H5Oclose(obj);
    if (objtype != H5I_DATASET) return SAEC_OK; /* a group of that name is not ours */
    s->tset = H5Dopen2(s->file, name, H5P_DEFAULT);
    if (s->tset < 0)
        return saec_fail(SAEC_ERR_DATA, "check the file with h5dump",
                         "cannot open dataset '%s' in '%s'", name, path);
    saec_h5_dataset_desc desc;
    char attr[ATTR_CAP], what[WHAT_CAP];
    describe_dataset(s->tset, path, name, &desc, attr, what);
    const saec_h5_expect want = {
        .role = SAEC_H5_ROLE_TIMESTEPS, .rows = s->n, .rows_of = s->dataset};
    saec_h5_verdict verdict;
    SAEC_TRY(saec_h5_check_dataset(&desc, &want, &verdict));
    if (cfg->timesteps < 1)
        return saec_fail(SAEC_ERR_USAGE, "set --timesteps to the diffusion schedule's length",
                         "config key 'timesteps' = %lld, but '%s' has timesteps",
                         (long long)cfg->timesteps, path);
    s->T = cfg->timesteps;
    return SAEC_OK;
}

/* Validation of the file and dataset; fills the geometry of s. Lock held. */
static int open_locked(h5_source *s, const saec_config *cfg) {
    const char *path = s->path, *name = s->dataset;
    htri_t is = H5Fis_hdf5(path);
    if (is <= 0)
        return saec_fail(SAEC_ERR_DATA,
                         "--data expects an HDF5 file with a dataset [rows, width] of activations; "
                         "`saec gen` writes one",
                         "'%s' is not an HDF5 file (looking for dataset '%s')", path, name);
    s->file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (s->file < 0)
        return saec_fail(SAEC_ERR_DATA,
                         "the file may be damaged, or locked by a process writing it "
                         "(HDF5_USE_FILE_LOCKING=FALSE disables the lock)",
                         "cannot open HDF5 file '%s' (dataset '%s')", path, name);
    if (H5Lexists(s->file, name, H5P_DEFAULT) <= 0) {
        char names[400] = "";
        name_list list = {names, sizeof names, 0, 0, "", 0};
        hsize_t idx = 0;
        H5Literate(s->file, H5_INDEX_NAME, H5_ITER_INC, &idx, list_datasets, &list);
        char hint[sizeof names + 64];
        if (list.count)
            snprintf(hint, sizeof hint, "datasets in the file: %s; choose one with --dataset NAME",
                     names);
        else
            snprintf(hint, sizeof hint, "the file holds no datasets");
        return saec_fail(SAEC_ERR_DATA, hint, "no dataset '%s' in '%s'", name, path);
    }
    hid_t obj = H5Oopen(s->file, name, H5P_DEFAULT);
    H5I_type_t objtype = obj >= 0 ? H5Iget_type(obj) : H5I_BADID;
    if (obj >= 0) H5Oclose(obj);
    if (objtype != H5I_DATASET)
        return saec_fail(SAEC_ERR_DATA, "name a dataset [rows, width] with --dataset NAME",
                         "'%s' in '%s' is not a dataset (looking for dataset '%s')", name, path,
                         name);
    s->dset = H5Dopen2(s->file, name, H5P_DEFAULT);
    if (s->dset < 0)
        return saec_fail(SAEC_ERR_DATA, "check the file with h5dump",
                         "cannot open dataset '%s' in '%s'", name, path);

    /* Shape, width and dtype: data_checks.c decides. */
    saec_h5_dataset_desc desc;
    char attr[ATTR_CAP], what[WHAT_CAP];
    describe_dataset(s->dset, path, name, &desc, attr, what);
    const saec_h5_expect expect = {.role = SAEC_H5_ROLE_ACTIVATIONS, .d_in = cfg->d_in};
    saec_h5_verdict verdict;
    SAEC_TRY(saec_h5_check_dataset(&desc, &expect, &verdict));
    s->n = verdict.n;
    s->d = verdict.d;
    if (verdict.kind == SAEC_H5_KIND_F32) {
        s->kind = H5_F32;
        s->mem_type = H5T_NATIVE_FLOAT; /* HDF5 converts the byte order when needed */
    } else if (verdict.kind == SAEC_H5_KIND_F16) {
        s->kind = H5_F16;
        /* Raw half bits in native byte order; converted to float32 by us (exact and fast). */
        hid_t type = H5Dget_type(s->dset);
        s->mem_type = type >= 0 ? H5Tcopy(type) : H5I_INVALID_HID;
        if (type >= 0) H5Tclose(type);
        if (s->mem_type < 0)
            return saec_fail(SAEC_ERR_DATA, "check the file with h5dump",
                             "cannot read the type of dataset '%s' in '%s'", name, path);
        H5Tset_order(s->mem_type, H5Tget_order(H5T_NATIVE_FLOAT));
    } else {
        s->kind = H5_BF16;
        /* Same signedness as the file so HDF5 never clips the bit patterns. */
        s->mem_type = desc.is_signed ? H5T_NATIVE_INT16 : H5T_NATIVE_UINT16;
    }
    SAEC_TRY(open_timesteps_locked(s, cfg));
    snprintf(s->description, sizeof s->description, "%s:/%s [%" PRId64 " x %" PRId64 "] %s", path,
             name[0] == '/' ? name + 1 : name, s->n, s->d,
             s->kind == H5_F32   ? "float32"
             : s->kind == H5_F16 ? "float16"
                                 : "bfloat16");
    if (s->tset >= 0) {
        size_t l = strlen(s->description);
        snprintf(s->description + l, sizeof s->description - l, ", %s in [0, %" PRId64 ")",
                 s->ts_name, s->T);
    }

    /* Block size: about 4096 rows (fewer for a small shuffle window, so a window still mixes
       several distant blocks), rounded to whole chunks so no chunk is read twice per pass. */
    int64_t target = 4096;
    if (s->shuffle && cfg->shuffle_rows > 0 && cfg->shuffle_rows / 8 < target)
        target = cfg->shuffle_rows / 8 > 0 ? cfg->shuffle_rows / 8 : 1;
    int64_t chunk_rows = 0;
    hid_t dcpl = H5Dget_create_plist(s->dset);
    if (dcpl >= 0 && H5Pget_layout(dcpl) == H5D_CHUNKED) {
        hsize_t cdims[2];
        if (H5Pget_chunk(dcpl, 2, cdims) == 2) chunk_rows = (int64_t)cdims[0];
    }
    if (dcpl >= 0) H5Pclose(dcpl);
    if (chunk_rows > 0) {
        int64_t k = target / chunk_rows;
        s->block_rows = (k > 0 ? k : 1) * chunk_rows;
        if (s->block_rows > 65536 && chunk_rows < 65536)
            s->block_rows = (65536 / chunk_rows) * chunk_rows;
    } else {
        s->block_rows = target;
    }
    if (s->block_rows > s->n) s->block_rows = s->n;
    s->n_blocks = (s->n + s->block_rows - 1) / s->block_rows;
    if (s->shuffle) {
        int64_t want = cfg->shuffle_rows > 0 ? cfg->shuffle_rows : s->block_rows;
        s->blocks_per_window = (want + s->block_rows / 2) / s->block_rows;
    } else {
        /* Eval: windows of about 8 MiB; order is file order, so size only sets read-ahead. */
        s->blocks_per_window = (8 << 20) / (s->block_rows * s->d * (int64_t)sizeof(float));
    }
    if (s->blocks_per_window < 1) s->blocks_per_window = 1;
    if (s->blocks_per_window > s->n_blocks) s->blocks_per_window = s->n_blocks;
    /* perm holds uint32 row numbers */
    if (s->blocks_per_window * s->block_rows > ((int64_t)1 << 31))
        s->blocks_per_window = ((int64_t)1 << 31) / s->block_rows;
    s->n_windows = (s->n_blocks + s->blocks_per_window - 1) / s->blocks_per_window;
    s->cap_rows = s->blocks_per_window * s->block_rows;
    if (s->cap_rows > s->n) s->cap_rows = s->n;
    return SAEC_OK;
}

int saec_data_open_hdf5(const saec_config *cfg, saec_stream stream, saec_data **out) {
    *out = NULL;
    const char *name = cfg->dataset[0] ? cfg->dataset : "activations";
    if (!cfg->data[0])
        return saec_fail(SAEC_ERR_USAGE, "pass --data FILE.h5", "no HDF5 file given (dataset '%s')",
                         name);
    struct stat st;
    if (stat(cfg->data, &st) != 0)
        return saec_fail(SAEC_ERR_DATA, "check the --data path",
                         "cannot open '%s' (dataset '%s'): %s", cfg->data, name, strerror(errno));
    if (S_ISDIR(st.st_mode))
        return saec_fail(SAEC_ERR_DATA, "--data takes an HDF5 file, not a directory",
                         "cannot open '%s' (dataset '%s'): it is a directory", cfg->data, name);
    FILE *probe = fopen(cfg->data, "rb");
    if (!probe)
        return saec_fail(SAEC_ERR_DATA, "check the file's permissions",
                         "cannot read '%s' (dataset '%s'): %s", cfg->data, name, strerror(errno));
    fclose(probe);

    h5_source *s = calloc(1, sizeof *s);
    if (!s) return saec_fail(SAEC_ERR_OTHER, NULL, "out of memory opening '%s'", cfg->data);
    snprintf(s->path, sizeof s->path, "%s", cfg->data);
    snprintf(s->dataset, sizeof s->dataset, "%s", name);
    s->file = s->dset = s->tset = s->mem_type = H5I_INVALID_HID;
    s->seed = (uint64_t)cfg->seed;
    s->shuffle = stream == SAEC_STREAM_TRAIN;
    s->lay_epoch = s->th_epoch = -1;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv_job, NULL);
    pthread_cond_init(&s->cv_done, NULL);
    s->base.vt = &h5_vtable;

    saec_h5_lock();
    int rc = open_locked(s, cfg);
    if (rc == SAEC_OK)
        s->base.has_ground_truth = H5Lexists(s->file, "ground_truth", H5P_DEFAULT) > 0;
    saec_h5_unlock();
    if (rc != SAEC_OK) {
        h5_close(&s->base);
        return rc;
    }

    size_t row_bytes = (size_t)s->d * sizeof(float);
    const int has_t = s->tset >= 0;
    int ts_ok = 1;
    for (int i = 0; i < 2; i++) {
        s->win[i].x = malloc((size_t)s->cap_rows * row_bytes);
        s->win[i].perm = malloc((size_t)s->cap_rows * sizeof(uint32_t));
        if (has_t) {
            s->win[i].ts = malloc((size_t)s->cap_rows * sizeof(int32_t));
            ts_ok &= s->win[i].ts != NULL;
        }
    }
    if (has_t) {
        s->ts_staging = malloc((size_t)s->block_rows * sizeof(int64_t));
        ts_ok &= s->ts_staging != NULL;
    }
    s->lay_order = malloc((size_t)s->n_blocks * sizeof(int64_t));
    s->lay_start = malloc((size_t)(s->n_windows + 1) * sizeof(int64_t));
    s->th_order = malloc((size_t)s->n_blocks * sizeof(int64_t));
    if (s->kind != H5_F32)
        s->staging = malloc((size_t)s->block_rows * (size_t)s->d * sizeof(uint16_t));
    if (!s->win[0].x || !s->win[1].x || !s->win[0].perm || !s->win[1].perm || !s->lay_order ||
        !s->lay_start || !s->th_order || (s->kind != H5_F32 && !s->staging) || !ts_ok) {
        double mib = 2.0 * (double)s->cap_rows * (double)row_bytes / (1 << 20);
        h5_close(&s->base);
        return saec_fail(SAEC_ERR_OTHER, "lower shuffle_rows (two windows are held in memory)",
                         "out of memory for the shuffle windows of '%s' (%.0f MiB)", cfg->data,
                         mib);
    }

    s->base.info.d = s->d;
    s->base.info.n_rows = s->n;
    s->base.info.description = s->description;
    s->base.cursor = 0;
    s->base.has_timesteps = has_t;
    s->base.timesteps_max = has_t ? s->T : 0;

    if (pthread_create(&s->thread, NULL, loader_main, s) != 0) {
        h5_close(&s->base);
        return saec_fail(SAEC_ERR_OTHER, NULL, "cannot start the reader thread for '%s'",
                         cfg->data);
    }
    s->thread_started = 1;
    /* Start reading the first window right away. */
    h5_seek(&s->base, 0);
    *out = &s->base;
    return SAEC_OK;
}
