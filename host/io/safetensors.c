/* The safetensors format (huggingface/safetensors): an 8-byte little-endian header length N,
   N bytes of JSON header, then the data area. Offsets in the header are relative to the start
   of the data area. The writer pads the header with spaces so the data area starts at a
   multiple of 8 bytes, as the reference implementation does, and lays the tensors back to back
   (no padding between them: the format forbids holes, so the reader refuses them; a misaligned
   tensor is copied on reading instead).
   Tensor data is stored little-endian and handed out as is: saec runs on little-endian hosts. */
#include "safetensors.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "fsutil.h"
#include "saec/saec.h"

static const char *const bad_file_hint =
    "the file is truncated, corrupt, or not a safetensors file; check it with `saec inspect`";

struct saec_st_file {
    char *path;
    char *buf; /* the whole file */
    size_t len;
    int n_tensors;
    saec_st_tensor *tensors; /* names and (for misaligned data) copies owned below */
    char **owned;            /* n_owned: the names, then aligned copies of misaligned data */
    int n_owned;
    int n_meta;
    saec_st_meta *meta;
    char **meta_owned; /* 2 * n_meta strings */
};

static const struct {
    const char *name;
    int size;
} dtype_info[] = {
    [SAEC_ST_F32] = {"F32", 4}, [SAEC_ST_F16] = {"F16", 2}, [SAEC_ST_BF16] = {"BF16", 2},
    [SAEC_ST_I32] = {"I32", 4}, [SAEC_ST_I64] = {"I64", 8}, [SAEC_ST_U8] = {"U8", 1},
    [SAEC_ST_F64] = {"F64", 8},
};
#define N_DTYPES ((int)(sizeof dtype_info / sizeof dtype_info[0]))

const char *saec_st_dtype_name(saec_st_dtype t) {
    return (int)t >= 0 && (int)t < N_DTYPES ? dtype_info[t].name : "?";
}

static int dtype_size(saec_st_dtype t) {
    return (int)t >= 0 && (int)t < N_DTYPES ? dtype_info[t].size : 0;
}

static int dtype_parse(const char *s, saec_st_dtype *out) {
    for (int i = 0; i < N_DTYPES; i++)
        if (strcmp(s, dtype_info[i].name) == 0) {
            *out = (saec_st_dtype)i;
            return 1;
        }
    return 0;
}

int64_t saec_st_numel(const saec_st_tensor *t) {
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++)
        n *= t->shape[i];
    return n;
}

/* numel * elem_size without overflow; -1 on overflow or a negative dimension. */
static int64_t checked_bytes(int ndim, const int64_t *shape, int elem_size) {
    int64_t n = elem_size;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0) return -1;
        if (shape[i] != 0 && n > INT64_MAX / shape[i]) return -1;
        n *= shape[i];
    }
    return n;
}

static void shape_str(char *out, size_t cap, int ndim, const int64_t *shape) {
    size_t used = 0;
    used += (size_t)snprintf(out + used, cap - used, "[");
    for (int i = 0; i < ndim && used < cap; i++) {
        if (shape[i] < 0)
            used += (size_t)snprintf(out + used, cap - used, "%s*", i ? ", " : "");
        else
            used += (size_t)snprintf(out + used, cap - used, "%s%" PRId64, i ? ", " : "", shape[i]);
    }
    if (used < cap) snprintf(out + used, cap - used, "]");
}

/* ---- writer -------------------------------------------------------------------------------- */

typedef struct {
    char *p;
    size_t n, cap;
    int oom;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (b->n + n + 1 > cap)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
}

static void sb_str(sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }

static void sb_i64(sbuf *b, int64_t v) {
    char tmp[32];
    snprintf(tmp, sizeof tmp, "%" PRId64, v);
    sb_str(b, tmp);
}

/* A JSON string literal; UTF-8 passes through, control characters are escaped. */
static void sb_json_str(sbuf *b, const char *s) {
    sb_put(b, "\"", 1);
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        char esc[8];
        switch (*c) {
        case '"': sb_put(b, "\\\"", 2); break;
        case '\\': sb_put(b, "\\\\", 2); break;
        case '\n': sb_put(b, "\\n", 2); break;
        case '\r': sb_put(b, "\\r", 2); break;
        case '\t': sb_put(b, "\\t", 2); break;
        case '\b': sb_put(b, "\\b", 2); break;
        case '\f': sb_put(b, "\\f", 2); break;
        default:
            if (*c < 0x20) {
                snprintf(esc, sizeof esc, "\\u%04x", *c);
                sb_str(b, esc);
            } else {
                sb_put(b, (const char *)c, 1);
            }
        }
    }
    sb_put(b, "\"", 1);
}

static int write_invalid(const char *path, const char *what, const char *name) {
    return saec_fail(SAEC_ERR_OTHER, "this is a bug in saec", "cannot write '%s': tensor '%s': %s",
                     path, name ? name : "(null)", what);
}

int saec_st_write(const char *path, const saec_st_tensor *tensors, int n_tensors,
                  const saec_st_meta *meta, int n_meta) {
    if (n_tensors < 0 || n_meta < 0 || (n_tensors > 0 && !tensors) || (n_meta > 0 && !meta))
        return write_invalid(path, "bad arguments", "");
    /* Validate and lay out. */
    int64_t *bytes = calloc((size_t)(n_tensors ? n_tensors : 1), sizeof *bytes);
    if (!bytes) return saec_fail(SAEC_ERR_OTHER, NULL, "cannot write '%s': out of memory", path);
    for (int i = 0; i < n_tensors; i++) {
        const saec_st_tensor *t = &tensors[i];
        const char *err = NULL;
        if (!t->name || strcmp(t->name, "__metadata__") == 0)
            err = "invalid tensor name";
        else if (dtype_size(t->dtype) == 0)
            err = "unknown dtype";
        else if (t->ndim < 0 || t->ndim > SAEC_ST_MAX_DIMS)
            err = "bad number of dimensions";
        else if ((bytes[i] = checked_bytes(t->ndim, t->shape, dtype_size(t->dtype))) < 0)
            err = "bad shape";
        else if (bytes[i] > 0 && !t->data)
            err = "no data";
        for (int j = 0; !err && j < i; j++)
            if (strcmp(tensors[j].name, t->name) == 0) err = "duplicate tensor name";
        if (err) {
            free(bytes);
            return write_invalid(path, err, t->name);
        }
    }
    for (int i = 0; i < n_meta; i++) {
        if (!meta[i].key || !meta[i].value) {
            free(bytes);
            return write_invalid(path, "metadata key or value is NULL", "__metadata__");
        }
    }

    /* Header JSON, compact like the reference writer. */
    sbuf h = {0};
    sb_put(&h, "{", 1);
    int first = 1;
    if (n_meta > 0) {
        sb_str(&h, "\"__metadata__\":{");
        for (int i = 0; i < n_meta; i++) {
            if (i) sb_put(&h, ",", 1);
            sb_json_str(&h, meta[i].key);
            sb_put(&h, ":", 1);
            sb_json_str(&h, meta[i].value);
        }
        sb_put(&h, "}", 1);
        first = 0;
    }
    int64_t offset = 0;
    for (int i = 0; i < n_tensors; i++) {
        const saec_st_tensor *t = &tensors[i];
        if (!first) sb_put(&h, ",", 1);
        first = 0;
        sb_json_str(&h, t->name);
        sb_str(&h, ":{\"dtype\":");
        sb_json_str(&h, saec_st_dtype_name(t->dtype));
        sb_str(&h, ",\"shape\":[");
        for (int d = 0; d < t->ndim; d++) {
            if (d) sb_put(&h, ",", 1);
            sb_i64(&h, t->shape[d]);
        }
        sb_str(&h, "],\"data_offsets\":[");
        sb_i64(&h, offset);
        sb_put(&h, ",", 1);
        offset += bytes[i];
        sb_i64(&h, offset);
        sb_str(&h, "]}");
    }
    sb_put(&h, "}", 1);
    while (!h.oom && (8 + h.n) % 8 != 0)
        sb_put(&h, " ", 1);
    if (h.oom) {
        free(h.p);
        free(bytes);
        return saec_fail(SAEC_ERR_OTHER, NULL, "cannot write '%s': out of memory", path);
    }

    unsigned char len8[8];
    uint64_t hl = (uint64_t)h.n;
    for (int i = 0; i < 8; i++)
        len8[i] = (unsigned char)(hl >> (8 * i));

    saec_atomic_file af;
    int rc = saec_atomic_open(&af, path);
    if (rc == SAEC_OK) rc = saec_atomic_write(&af, len8, 8);
    if (rc == SAEC_OK) rc = saec_atomic_write(&af, h.p, h.n);
    for (int i = 0; rc == SAEC_OK && i < n_tensors; i++)
        rc = saec_atomic_write(&af, tensors[i].data, (size_t)bytes[i]);
    if (rc == SAEC_OK)
        rc = saec_atomic_commit(&af);
    else
        saec_atomic_abort(&af);
    free(h.p);
    free(bytes);
    return rc;
}

/* ---- reader -------------------------------------------------------------------------------- */

void saec_st_close(saec_st_file *f) {
    if (!f) return;
    if (f->owned)
        for (int i = 0; i < f->n_owned; i++)
            free(f->owned[i]);
    if (f->meta_owned)
        for (int i = 0; i < 2 * f->n_meta; i++)
            free(f->meta_owned[i]);
    free(f->owned);
    free(f->meta_owned);
    free(f->tensors);
    free(f->meta);
    free(f->buf);
    free(f->path);
    free(f);
}

static char *dup_str(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

/* A non-negative integer JSON number that a double holds exactly. */
static int json_u53(const cJSON *item, int64_t *out) {
    if (!cJSON_IsNumber(item)) return 0;
    double v = item->valuedouble;
    if (!(v >= 0.0) || v > 9007199254740992.0 || v != (double)(int64_t)v) return 0;
    *out = (int64_t)v;
    return 1;
}

typedef struct {
    int64_t begin, end;
    int index;
} range;

static int range_cmp(const void *a, const void *b) {
    const range *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return 0;
}

/* Object members sorted by key, to find a repeated key in O(n log n) (headers may hold
   millions of entries). */
static int member_cmp(const void *a, const void *b) {
    const cJSON *x = *(const cJSON *const *)a, *y = *(const cJSON *const *)b;
    int c = strcmp(x->string ? x->string : "", y->string ? y->string : "");
    if (c) return c;
    return x < y ? -1 : x > y; /* a stable order, so the report is reproducible */
}

/* The first key that appears twice among obj's members; NULL when there is none, or when out of
   memory (then oom is set). */
static const char *repeated_key(const cJSON *obj, int *oom) {
    *oom = 0;
    int n = cJSON_GetArraySize(obj);
    if (n < 2) return NULL;
    const cJSON **v = malloc(sizeof *v * (size_t)n);
    if (!v) {
        *oom = 1;
        return NULL;
    }
    int i = 0;
    for (const cJSON *m = obj->child; m && i < n; m = m->next)
        v[i++] = m;
    qsort(v, (size_t)i, sizeof *v, member_cmp);
    const char *dup = NULL;
    for (int j = 1; j < i && !dup; j++)
        if (strcmp(v[j - 1]->string ? v[j - 1]->string : "", v[j]->string ? v[j]->string : "") == 0)
            dup = v[j]->string ? v[j]->string : "";
    free(v);
    return dup;
}

/* The first byte JSON does not allow unescaped: a control character (< 0x20) inside a
   string, or outside strings one that is not whitespace. cJSON takes both; the format (and
   Python's reader) does not. Returns its offset, or n when there is none. */
static size_t first_control_byte(const char *s, size_t n) {
    int in_string = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (in_string) {
            if (c < 0x20) return i;
            if (c == '\\')
                i++; /* the escaped character; cJSON checks the escape itself */
            else if (c == '"')
                in_string = 0;
        } else if (c == '"') {
            in_string = 1;
        } else if (c < 0x20 && c != ' ' && c != '\t' && c != '\n' && c != '\r') {
            return i;
        }
    }
    return n;
}

static const char *const layout_hint =
    "a safetensors file's tensors cover its data area exactly, with no gap, overlap or byte "
    "after the last one; this file was changed after it was written (bytes appended, cut or "
    "overwritten): use the original file or write it again";

#define BAD(...) (rc = saec_fail(SAEC_ERR_DATA, bad_file_hint, __VA_ARGS__))
#define BAD_LAYOUT(...) (rc = saec_fail(SAEC_ERR_DATA, layout_hint, __VA_ARGS__))

/* The tensors' byte ranges tile the data area [0, data_size): sorted by (begin, end), each
   begins where the previous one ended, and the last ends at data_size (the format's rule: the
   byte buffer is entirely indexed, without holes; empty tensors sit on a boundary). Non-empty
   overlaps are reported first, naming both tensors. */
static int check_layout(const saec_st_file *f, const char *path, range *ranges, int n,
                        size_t data_size) {
    int rc = SAEC_OK;
    qsort(ranges, (size_t)n, sizeof *ranges, range_cmp);
    const range *a = NULL; /* the non-empty range reaching furthest so far */
    for (int j = 0; j < n; j++) {
        const range *c = &ranges[j];
        if (c->end == c->begin) continue;
        if (a && c->begin < a->end) /* sorted by begin: a starts no later than c */
            return BAD_LAYOUT("'%s': tensors '%s' and '%s' overlap (data_offsets [%" PRId64
                              ", %" PRId64 "] and [%" PRId64 ", %" PRId64 "])",
                              path, f->tensors[a->index].name, f->tensors[c->index].name, a->begin,
                              a->end, c->begin, c->end);
        if (!a || c->end > a->end) a = c;
    }
    int64_t at = 0;        /* where the next tensor must begin */
    const range *p = NULL; /* the last non-empty range before `at` */
    for (int j = 0; j < n; j++) {
        const range *c = &ranges[j];
        if (c->begin > at) {
            if (!p)
                return BAD_LAYOUT("'%s': bytes [0, %" PRId64 ") of the data area belong to no "
                                  "tensor (the first tensor, '%s', begins at %" PRId64 ")",
                                  path, c->begin, f->tensors[c->index].name, c->begin);
            return BAD_LAYOUT("'%s': bytes [%" PRId64 ", %" PRId64 ") of the data area belong to "
                              "no tensor (a hole between tensor '%s', data_offsets [%" PRId64
                              ", %" PRId64 "], and tensor '%s', [%" PRId64 ", %" PRId64 "])",
                              path, at, c->begin, f->tensors[p->index].name, p->begin, p->end,
                              f->tensors[c->index].name, c->begin, c->end);
        }
        if (c->begin < at) /* only an empty one: non-empty overlaps were refused above */
            return BAD_LAYOUT("'%s': empty tensor '%s' (data_offsets [%" PRId64 ", %" PRId64
                              "]) lies inside tensor '%s' ([%" PRId64 ", %" PRId64 "])",
                              path, f->tensors[c->index].name, c->begin, c->end,
                              f->tensors[p->index].name, p->begin, p->end);
        if (c->end > c->begin) {
            at = c->end;
            p = c;
        }
    }
    if ((uint64_t)at != (uint64_t)data_size) {
        if (!p)
            return BAD_LAYOUT(
                "'%s': trailing data: the data area holds %zu bytes but %s", path, data_size,
                n ? "every tensor in the header is empty" : "the header names no tensor");
        return BAD_LAYOUT("'%s': trailing data: %" PRIu64 " bytes follow the last tensor ('%s' "
                          "ends at byte %" PRId64 " of the %zu-byte data area)",
                          path, (uint64_t)data_size - (uint64_t)at, f->tensors[p->index].name, at,
                          data_size);
    }
    return SAEC_OK;
}

/* Parse and validate the header of f->buf (f->len bytes); fills f->tensors / f->meta. */
static int parse_header(saec_st_file *f, const char *path) {
    int rc = SAEC_OK;
    if (f->len < 8)
        return BAD("'%s': not a safetensors file: %zu bytes, too short for the 8-byte header "
                   "length",
                   path, f->len);
    const unsigned char *b = (const unsigned char *)f->buf;
    uint64_t hl = 0;
    for (int i = 0; i < 8; i++)
        hl |= (uint64_t)b[i] << (8 * i);
    if (hl > SAEC_ST_MAX_HEADER)
        return BAD("'%s': not a safetensors file: header length %" PRIu64
                   " exceeds the format's limit of %d bytes",
                   path, hl, SAEC_ST_MAX_HEADER);
    if (hl > (uint64_t)(f->len - 8))
        return BAD("'%s': not a safetensors file: header length %" PRIu64
                   " exceeds the file size (%zu bytes)",
                   path, hl, f->len);
    const char *hdr = f->buf + 8;
    size_t data_size = f->len - 8 - (size_t)hl;
    const char *data = hdr + hl;

    /* The format: the header begins with '{' (no leading space, no byte-order mark). */
    if (hl == 0 || hdr[0] != '{') {
        if (hl == 0) return BAD("'%s': the safetensors header is empty (length 0)", path);
        return BAD("'%s': the safetensors header is not a JSON object (it begins with byte 0x%02x, "
                   "not '{')",
                   path, (unsigned char)hdr[0]);
    }
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(hdr, (size_t)hl, &end, 0);
    if (!root) {
        size_t at = end && end >= hdr ? (size_t)(end - hdr) : 0;
        return BAD("'%s': the safetensors header is not valid JSON (near byte %zu of %" PRIu64 ")",
                   path, at, hl);
    }
    /* Only spaces (0x20) may pad the header after the JSON object. */
    for (const char *p = end; p && p < hdr + hl; p++)
        if (*p != ' ') {
            cJSON_Delete(root);
            return BAD("'%s': the safetensors header has trailing data after the JSON object "
                       "(byte 0x%02x at %zu of %" PRIu64 "; only spaces may pad it)",
                       path, (unsigned char)*p, (size_t)(p - hdr), hl);
        }
    size_t ctl = first_control_byte(hdr, end ? (size_t)(end - hdr) : 0);
    if (end && ctl < (size_t)(end - hdr)) {
        cJSON_Delete(root);
        return BAD("'%s': the safetensors header is not valid JSON (control byte 0x%02x at byte "
                   "%zu)",
                   path, (unsigned char)hdr[ctl], ctl);
    }
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return BAD("'%s': the safetensors header is not a JSON object", path);
    }

    /* Keys are unique (the format says so; cJSON would keep both). */
    int oom = 0;
    const char *dup = repeated_key(root, &oom);
    if (oom) {
        rc = saec_fail(SAEC_ERR_OTHER, NULL, "'%s': out of memory", path);
        goto done;
    }
    if (dup) {
        if (strcmp(dup, "__metadata__") == 0)
            BAD("'%s': the safetensors header has '__metadata__' twice", path);
        else
            BAD("'%s': tensor '%s' appears twice in the header", path, dup);
        goto done;
    }

    const cJSON *meta_obj = NULL;
    int n_tensors = 0;
    for (const cJSON *it = root->child; it; it = it->next) {
        if (it->string && strcmp(it->string, "__metadata__") == 0)
            meta_obj = it;
        else
            n_tensors++;
    }

    /* Metadata: a map of string to string (null: none, as the reference reader allows). */
    if (meta_obj) {
        if (!cJSON_IsObject(meta_obj) && !cJSON_IsNull(meta_obj)) {
            BAD("'%s': '__metadata__' is not a JSON object", path);
            goto done;
        }
        if ((dup = repeated_key(meta_obj, &oom)) != NULL) {
            BAD("'%s': metadata key '%s' appears twice", path, dup);
            goto done;
        }
        if (oom) {
            rc = saec_fail(SAEC_ERR_OTHER, NULL, "'%s': out of memory", path);
            goto done;
        }
        int nm = cJSON_IsObject(meta_obj) ? cJSON_GetArraySize(meta_obj) : 0;
        f->meta = calloc((size_t)(nm ? nm : 1), sizeof *f->meta);
        f->meta_owned = calloc((size_t)(2 * nm + 1), sizeof *f->meta_owned);
        if (!f->meta || !f->meta_owned) {
            rc = saec_fail(SAEC_ERR_OTHER, NULL, "'%s': out of memory", path);
            goto done;
        }
        int i = 0;
        for (const cJSON *m = nm ? meta_obj->child : NULL; m; m = m->next, i++) {
            if (!cJSON_IsString(m)) {
                BAD("'%s': metadata entry '%s' is not a string", path, m->string ? m->string : "");
                goto done;
            }
            f->meta_owned[2 * i] = dup_str(m->string ? m->string : "");
            f->meta_owned[2 * i + 1] = dup_str(m->valuestring);
            f->n_meta = i + 1;
            if (!f->meta_owned[2 * i] || !f->meta_owned[2 * i + 1]) {
                rc = saec_fail(SAEC_ERR_OTHER, NULL, "'%s': out of memory", path);
                goto done;
            }
            f->meta[i].key = f->meta_owned[2 * i];
            f->meta[i].value = f->meta_owned[2 * i + 1];
        }
    }

    f->tensors = calloc((size_t)(n_tensors ? n_tensors : 1), sizeof *f->tensors);
    f->owned = calloc((size_t)(2 * n_tensors + 1), sizeof *f->owned);
    if (f->owned) f->n_owned = 2 * n_tensors;
    range *ranges = calloc((size_t)(n_tensors ? n_tensors : 1), sizeof *ranges);
    if (!f->tensors || !f->owned || !ranges) {
        free(ranges);
        rc = saec_fail(SAEC_ERR_OTHER, NULL, "'%s': out of memory", path);
        goto done;
    }

    int i = 0;
    for (const cJSON *it = root->child; it; it = it->next) {
        if (it == meta_obj) continue;
        const char *name = it->string ? it->string : "";
        saec_st_tensor *t = &f->tensors[i];
        f->owned[i] = dup_str(name);
        f->n_tensors = i + 1;
        if (!f->owned[i]) {
            rc = saec_fail(SAEC_ERR_OTHER, NULL, "'%s': out of memory", path);
            goto bad_tensor;
        }
        t->name = f->owned[i];
        if (!cJSON_IsObject(it)) {
            BAD("'%s': tensor '%s': header entry is not a JSON object", path, name);
            goto bad_tensor;
        }
        /* Each field once (other fields are ignored, as the reference reader does). */
        static const char *const fields[] = {"dtype", "shape", "data_offsets"};
        int seen[3] = {0, 0, 0};
        for (const cJSON *e = it->child; e; e = e->next)
            for (int k = 0; k < 3; k++)
                if (e->string && strcmp(e->string, fields[k]) == 0 && seen[k]++) {
                    BAD("'%s': tensor '%s': '%s' appears twice in its header entry", path, name,
                        fields[k]);
                    goto bad_tensor;
                }
        const cJSON *jd = cJSON_GetObjectItemCaseSensitive(it, "dtype");
        const cJSON *js = cJSON_GetObjectItemCaseSensitive(it, "shape");
        const cJSON *jo = cJSON_GetObjectItemCaseSensitive(it, "data_offsets");
        if (!cJSON_IsString(jd)) {
            BAD("'%s': tensor '%s' has no dtype", path, name);
            goto bad_tensor;
        }
        if (!dtype_parse(jd->valuestring, &t->dtype)) {
            BAD("'%s': tensor '%s' has dtype '%s', which saec does not support "
                "(F32, F16, BF16, I32, I64, U8)",
                path, name, jd->valuestring);
            goto bad_tensor;
        }
        if (!cJSON_IsArray(js)) {
            BAD("'%s': tensor '%s' has no shape", path, name);
            goto bad_tensor;
        }
        int ndim = cJSON_GetArraySize(js);
        if (ndim > SAEC_ST_MAX_DIMS) {
            BAD("'%s': tensor '%s' has %d dimensions; saec supports at most %d", path, name, ndim,
                SAEC_ST_MAX_DIMS);
            goto bad_tensor;
        }
        t->ndim = ndim;
        int d = 0;
        for (const cJSON *e = js->child; e; e = e->next, d++)
            if (!json_u53(e, &t->shape[d])) {
                BAD("'%s': tensor '%s': shape entry %d is not a non-negative integer", path, name,
                    d);
                goto bad_tensor;
            }
        int64_t begin, endo;
        if (!cJSON_IsArray(jo) || cJSON_GetArraySize(jo) != 2 || !json_u53(jo->child, &begin) ||
            !json_u53(jo->child->next, &endo)) {
            BAD("'%s': tensor '%s': data_offsets is not a pair of non-negative integers", path,
                name);
            goto bad_tensor;
        }
        if (endo < begin) {
            BAD("'%s': tensor '%s': data_offsets [%" PRId64 ", %" PRId64 "] end before they begin",
                path, name, begin, endo);
            goto bad_tensor;
        }
        if ((uint64_t)endo > (uint64_t)data_size) {
            BAD("'%s': tensor '%s': data_offsets [%" PRId64 ", %" PRId64
                "] lie outside the data area (%zu bytes; is the file truncated?)",
                path, name, begin, endo, data_size);
            goto bad_tensor;
        }
        int64_t want = checked_bytes(t->ndim, t->shape, dtype_size(t->dtype));
        if (want < 0 || want != endo - begin) {
            char s[160];
            shape_str(s, sizeof s, t->ndim, t->shape);
            BAD("'%s': tensor '%s': shape %s of %s needs %" PRId64
                " bytes but data_offsets give %" PRId64,
                path, name, s, saec_st_dtype_name(t->dtype), want, endo - begin);
            goto bad_tensor;
        }
        ranges[i] = (range){begin, endo, i};
        const char *p = data + begin;
        int align = dtype_size(t->dtype);
        if (want > 0 && ((uintptr_t)p % (uintptr_t)align) != 0) {
            /* A misaligned range (unpadded header, odd-sized tensor before it): copy it so
               callers can read it as an array of the dtype. */
            char *copy = malloc((size_t)want);
            if (!copy) {
                rc = saec_fail(SAEC_ERR_OTHER, NULL, "'%s': out of memory", path);
                goto bad_tensor;
            }
            memcpy(copy, p, (size_t)want);
            f->owned[n_tensors + i] = copy;
            p = copy;
        }
        t->data = p;
        i++;
        continue;
    bad_tensor:
        free(ranges);
        goto done;
    }

    rc = check_layout(f, path, ranges, n_tensors, data_size);
    free(ranges);

done:
    cJSON_Delete(root);
    return rc;
}
#undef BAD
#undef BAD_LAYOUT

/* Takes buf (malloc'd, len bytes) whatever the outcome. */
static int st_from_buffer(char *buf, size_t len, const char *name, saec_st_file **out) {
    saec_st_file *f = calloc(1, sizeof *f);
    char *path = dup_str(name ? name : "(memory)");
    if (!f || !path) {
        free(f);
        free(path);
        free(buf);
        return saec_fail(SAEC_ERR_OTHER, NULL, "'%s': out of memory", name ? name : "(memory)");
    }
    f->path = path;
    f->buf = buf;
    f->len = len;
    int rc = parse_header(f, f->path);
    if (rc != SAEC_OK) {
        saec_st_close(f);
        return rc;
    }
    *out = f;
    return SAEC_OK;
}

int saec_st_open(const char *path, saec_st_file **out) {
    *out = NULL;
    char *buf = NULL;
    size_t len = 0;
    int rc = saec_read_file(path, &buf, &len);
    if (rc != SAEC_OK) return rc;
    return st_from_buffer(buf, len, path, out);
}

int saec_st_parse_buffer(const void *data, size_t len, const char *name_for_messages,
                         saec_st_file **out) {
    *out = NULL;
    const char *name = name_for_messages ? name_for_messages : "(memory)";
    /* A copy of exactly len bytes: the tensors point into it, and a sanitizer sees any read
       past its end. */
    char *buf = malloc(len ? len : 1);
    if (!buf) return saec_fail(SAEC_ERR_OTHER, NULL, "'%s': out of memory", name);
    if (len) memcpy(buf, data, len);
    return st_from_buffer(buf, len, name, out);
}

int saec_st_count(const saec_st_file *f) { return f->n_tensors; }

const saec_st_tensor *saec_st_get(const saec_st_file *f, int i) {
    return i >= 0 && i < f->n_tensors ? &f->tensors[i] : NULL;
}

const saec_st_tensor *saec_st_find(const saec_st_file *f, const char *name) {
    for (int i = 0; i < f->n_tensors; i++)
        if (strcmp(f->tensors[i].name, name) == 0) return &f->tensors[i];
    return NULL;
}

const char *saec_st_meta_get(const saec_st_file *f, const char *key) {
    for (int i = 0; i < f->n_meta; i++)
        if (strcmp(f->meta[i].key, key) == 0) return f->meta[i].value;
    return NULL;
}

int saec_st_meta_count(const saec_st_file *f) { return f->n_meta; }

const saec_st_meta *saec_st_meta_at(const saec_st_file *f, int i) {
    return i >= 0 && i < f->n_meta ? &f->meta[i] : NULL;
}

int saec_st_expect(const saec_st_file *f, const char *path_for_messages, const char *name,
                   saec_st_dtype dtype, int ndim, const int64_t *shape,
                   const saec_st_tensor **out) {
    static const char *const hint =
        "the file does not match this configuration; check it with `saec inspect`";
    const char *path = path_for_messages ? path_for_messages : f->path;
    if (out) *out = NULL;
    const saec_st_tensor *t = saec_st_find(f, name);
    if (!t) return saec_fail(SAEC_ERR_DATA, hint, "'%s': tensor '%s' is missing", path, name);
    if (t->dtype != dtype)
        return saec_fail(SAEC_ERR_DATA, hint, "'%s': tensor '%s' has dtype %s, expected %s", path,
                         name, saec_st_dtype_name(t->dtype), saec_st_dtype_name(dtype));
    int ok = t->ndim == ndim;
    for (int i = 0; ok && i < ndim; i++)
        if (shape[i] >= 0 && shape[i] != t->shape[i]) ok = 0;
    if (!ok) {
        char have[160], want[160];
        shape_str(have, sizeof have, t->ndim, t->shape);
        shape_str(want, sizeof want, ndim, shape);
        return saec_fail(SAEC_ERR_DATA, hint, "'%s': tensor '%s' has shape %s, expected %s", path,
                         name, have, want);
    }
    if (out) *out = t;
    return SAEC_OK;
}
