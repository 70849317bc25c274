/* The checks of a described HDF5 dataset (data_checks.h): pure functions of the description. */
#include "data_checks.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "saec/saec.h"

/* The widest row saec trains on: config key d_in's range. */
#define MAX_WIDTH ((uint64_t)1 << 20)

/* ---- text ------------------------------------------------------------------------------------ */

/* Appends to buf [cap] (always terminated), dropping what does not fit. */
static void append(char *buf, size_t cap, size_t *len, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;

static void append(char *buf, size_t cap, size_t *len, const char *fmt, ...) {
    if (cap == 0 || *len >= cap - 1) return;
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(buf + *len, cap - *len, fmt, ap);
    va_end(ap);
    if (w < 0) return;
    *len = (size_t)w >= cap - *len ? cap - 1 : *len + (size_t)w;
}

/* bytes [n] as printable text: ASCII as is, \" \\ and \xNN escapes, the first 40 bytes then
   "...". */
static void quote(char *buf, size_t cap, const char *p, size_t n) {
    size_t len = 0;
    if (cap) buf[0] = '\0';
    const size_t shown = n < 40 ? n : 40;
    for (size_t i = 0; i < shown; i++) {
        const unsigned char c = p ? (unsigned char)p[i] : 0;
        if (c == '"' || c == '\\')
            append(buf, cap, &len, "\\%c", c);
        else if (c >= 0x20 && c < 0x7f)
            append(buf, cap, &len, "%c", c);
        else
            append(buf, cap, &len, "\\x%02x", c);
    }
    if (shown < n) append(buf, cap, &len, "...");
}

/* "[100, 4]": the extents of a readable dataspace, the first 32 of a (never real) larger rank. */
static void shape_text(const saec_h5_dataset_desc *ds, char *buf, size_t cap) {
    size_t len = 0;
    if (cap) buf[0] = '\0';
    append(buf, cap, &len, "[");
    const int shown = ds->rank < SAEC_H5_DESC_MAX_RANK ? ds->rank : SAEC_H5_DESC_MAX_RANK;
    for (int i = 0; i < shown; i++)
        append(buf, cap, &len, "%s%" PRIu64, i ? ", " : "", ds->dims[i]);
    if (ds->rank > shown) append(buf, cap, &len, ", ...");
    append(buf, cap, &len, "]");
}

/* ---- types ----------------------------------------------------------------------------------- */

static int is_float(const saec_h5_dataset_desc *ds, size_t size, size_t e, size_t m) {
    return ds->cls == SAEC_H5_CLASS_FLOAT && ds->size == size && ds->exp_bits == e &&
           ds->mant_bits == m;
}
static int is_f16(const saec_h5_dataset_desc *ds) {
    return is_float(ds, 2, 5, 10) && ds->exp_bias == 15;
}
static int is_f32(const saec_h5_dataset_desc *ds) { return is_float(ds, 4, 8, 23); }
static int is_f64(const saec_h5_dataset_desc *ds) { return is_float(ds, 8, 11, 52); }
static int is_bf16_float(const saec_h5_dataset_desc *ds) { return is_float(ds, 2, 8, 7); }
static int is_int(const saec_h5_dataset_desc *ds) { return ds->cls == SAEC_H5_CLASS_INTEGER; }

static int attr_is(const saec_h5_dataset_desc *ds, const char *value) {
    const size_t n = strlen(value);
    return ds->dtype_attr == SAEC_H5_ATTR_STRING && ds->dtype_len == n && ds->dtype_value &&
           memcmp(ds->dtype_value, value, n) == 0;
}

/* A 2-byte integer carrying dtype = "bfloat16": bfloat16 bits. */
static int is_bf16_marked(const saec_h5_dataset_desc *ds) {
    return is_int(ds) && ds->size == 2 && attr_is(ds, "bfloat16");
}

/* The stored type, whatever the attribute says. */
static void stored_name(const saec_h5_dataset_desc *ds, char *buf, size_t cap) {
    const char *be = ds->big_endian ? " (big-endian)" : "";
    switch (ds->cls) {
    case SAEC_H5_CLASS_FLOAT:
        if (is_bf16_float(ds))
            snprintf(buf, cap, "bfloat16 (as an HDF5 float type)%s", be);
        else if (is_f16(ds) || is_f32(ds) || is_f64(ds))
            snprintf(buf, cap, "float%zu%s", ds->size * 8, be);
        else
            snprintf(buf, cap, "float (%zu bytes, %zu exponent and %zu mantissa bits)%s", ds->size,
                     ds->exp_bits, ds->mant_bits, be);
        return;
    case SAEC_H5_CLASS_INTEGER:
        if (ds->size == 1 || ds->size == 2 || ds->size == 4 || ds->size == 8)
            snprintf(buf, cap, "%sint%zu%s", ds->is_signed ? "" : "u", ds->size * 8, be);
        else
            snprintf(buf, cap, "%sint (%zu bytes)%s", ds->is_signed ? "" : "u", ds->size, be);
        return;
    case SAEC_H5_CLASS_TIME: snprintf(buf, cap, "time"); return;
    case SAEC_H5_CLASS_STRING: snprintf(buf, cap, "string"); return;
    case SAEC_H5_CLASS_BITFIELD: snprintf(buf, cap, "bitfield"); return;
    case SAEC_H5_CLASS_OPAQUE: snprintf(buf, cap, "opaque"); return;
    case SAEC_H5_CLASS_COMPOUND: snprintf(buf, cap, "compound"); return;
    case SAEC_H5_CLASS_REFERENCE: snprintf(buf, cap, "reference"); return;
    case SAEC_H5_CLASS_ENUM: snprintf(buf, cap, "enum"); return;
    case SAEC_H5_CLASS_VLEN: snprintf(buf, cap, "variable-length"); return;
    case SAEC_H5_CLASS_ARRAY: snprintf(buf, cap, "array"); return;
    default: snprintf(buf, cap, "unknown type"); return;
    }
}

void saec_h5_desc_type_name(const saec_h5_dataset_desc *ds, char *buf, size_t cap) {
    if (cap == 0) return;
    if (is_bf16_marked(ds))
        snprintf(buf, cap, "bfloat16");
    else
        stored_name(ds, buf, cap);
}

/* ---- the dtype attribute --------------------------------------------------------------------- */

#define ACCEPTED_DTYPES                                                                            \
    "\"bfloat16\" (on uint16 or int16 data), \"float16\", \"float32\", \"float64\", "              \
    "\"int8\" ... \"int64\", \"uint8\" ... \"uint64\""

/* Whether the attribute's value, a known name, describes the stored type. -1: not a known name. */
static int attr_agrees(const saec_h5_dataset_desc *ds) {
    static const struct {
        const char *name;
        size_t size;
        int is_signed;
    } ints[] = {{"int8", 1, 1},  {"int16", 2, 1},  {"int32", 4, 1},  {"int64", 8, 1},
                {"uint8", 1, 0}, {"uint16", 2, 0}, {"uint32", 4, 0}, {"uint64", 8, 0}};
    if (attr_is(ds, "bfloat16")) return (is_int(ds) && ds->size == 2) || is_bf16_float(ds);
    if (attr_is(ds, "float16")) return is_f16(ds);
    if (attr_is(ds, "float32")) return is_f32(ds);
    if (attr_is(ds, "float64")) return is_f64(ds);
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++)
        if (attr_is(ds, ints[i].name))
            return is_int(ds) && ds->size == ints[i].size && !ds->is_signed == !ints[i].is_signed;
    return -1;
}

/* The attribute is absent, or one known string that agrees with the stored type. `label` names
   the dataset in messages ("dataset 'x' in 'f.h5'"). */
static int check_dtype_attr(const saec_h5_dataset_desc *ds, const char *label) {
    if (ds->dtype_attr == SAEC_H5_ATTR_ABSENT) return SAEC_OK;
    char stored[96];
    stored_name(ds, stored, sizeof stored);
    if (ds->dtype_attr != SAEC_H5_ATTR_STRING) {
        char what[200];
        quote(what, sizeof what, ds->dtype_what, ds->dtype_what ? ds->what_len : 0);
        return saec_fail(SAEC_ERR_DATA,
                         "the dtype attribute must be one string naming the stored type, e.g. "
                         "\"bfloat16\" on uint16 data; fix or delete it",
                         "%s has a dtype attribute that is not one string (%s); the stored type "
                         "is %s",
                         label, what[0] ? what : "unreadable", stored);
    }
    char value[200];
    quote(value, sizeof value, ds->dtype_value, ds->dtype_value ? ds->dtype_len : 0);
    const int agrees = attr_agrees(ds);
    if (agrees < 0)
        return saec_fail(SAEC_ERR_DATA,
                         "accepted dtype values, each naming the stored type: " ACCEPTED_DTYPES
                         "; fix or delete the attribute",
                         "%s has attribute dtype = \"%s\", which saec does not know; the stored "
                         "type is %s",
                         label, value, stored);
    if (!agrees)
        return saec_fail(
            SAEC_ERR_DATA,
            attr_is(ds, "bfloat16")
                ? "dtype = \"bfloat16\" marks bfloat16 bits stored as uint16 (or int16); delete "
                  "the attribute, or store the bits as uint16"
                : "the dtype attribute must name the stored type; fix or delete it",
            "%s has attribute dtype = \"%s\", but its stored type is %s", label, value, stored);
    return SAEC_OK;
}

/* ---- the checks ------------------------------------------------------------------------------ */

static int check_activations(const saec_h5_dataset_desc *ds, const saec_h5_expect *want,
                             const char *label, saec_h5_verdict *out) {
    const char *name = ds->name, *path = ds->path;
    if (ds->rank != 2) {
        char shape[256];
        shape_text(ds, shape, sizeof shape);
        return saec_fail(
            SAEC_ERR_DATA, "activations must be a 2-D dataset [rows, width]; reshape it",
            "dataset '%s' in '%s' has rank %d (shape %s), expected rank 2 [rows, width]", name,
            path, ds->rank, shape);
    }
    const uint64_t n = ds->dims[0], d = ds->dims[1];
    if (n == 0 || d == 0)
        return saec_fail(SAEC_ERR_DATA, "the dataset is empty; write some activations to it",
                         "dataset '%s' in '%s' has no %s (shape [%" PRIu64 ", %" PRIu64 "])", name,
                         path, n == 0 ? "rows" : "columns", n, d);
    if (want->d_in > 0 && d != (uint64_t)want->d_in) {
        char hint[160];
        if (d <= MAX_WIDTH)
            snprintf(hint, sizeof hint,
                     "set --d-in %" PRIu64 " (or 0 to take the width from the data)", d);
        else
            snprintf(hint, sizeof hint, "saec trains on rows of width up to %" PRIu64, MAX_WIDTH);
        return saec_fail(SAEC_ERR_DATA, hint,
                         "dataset '%s' in '%s' has rows of width %" PRIu64 ", but d_in is %" PRId64,
                         name, path, d, want->d_in);
    }
    if (d > MAX_WIDTH)
        return saec_fail(SAEC_ERR_DATA, "reduce the width, or train on a slice of the columns",
                         "dataset '%s' in '%s' has rows of width %" PRIu64
                         ", wider than saec supports (%" PRIu64 ")",
                         name, path, d, MAX_WIDTH);
    if (n > (uint64_t)INT64_MAX)
        return saec_fail(SAEC_ERR_DATA, "check the file with h5dump",
                         "dataset '%s' in '%s' has %" PRIu64 " rows, more than saec can count",
                         name, path, n);
    SAEC_TRY(check_dtype_attr(ds, label));
    if (ds->cls == SAEC_H5_CLASS_FLOAT && ds->size == 4) {
        /* float32, or any other 4-byte float layout: HDF5 converts it to native float */
        out->kind = SAEC_H5_KIND_F32;
    } else if (is_f16(ds)) {
        out->kind = SAEC_H5_KIND_F16;
    } else if (is_bf16_marked(ds)) {
        out->kind = SAEC_H5_KIND_BF16;
    } else {
        char what[160];
        if (is_int(ds) && ds->size == 2)
            snprintf(what, sizeof what, "%s (without the attribute dtype = \"bfloat16\")",
                     out->type_name);
        else
            snprintf(what, sizeof what, "%s", out->type_name);
        return saec_fail(SAEC_ERR_DATA,
                         "supported: float32, float16, and bfloat16 stored as uint16 with the "
                         "attribute dtype = \"bfloat16\"; convert the dataset",
                         "dataset '%s' in '%s' has unsupported dtype %s", name, path, what);
    }
    out->n = (int64_t)n;
    out->d = (int64_t)d;
    return SAEC_OK;
}

static int check_timesteps(const saec_h5_dataset_desc *ds, const saec_h5_expect *want,
                           const char *label, saec_h5_verdict *out) {
    const char *name = ds->name, *path = ds->path;
    if (ds->rank != 1)
        return saec_fail(SAEC_ERR_DATA,
                         "timesteps must be a 1-D dataset [rows], one timestep per row",
                         "dataset '%s' in '%s' has rank %d, expected rank 1 [%" PRId64 "]", name,
                         path, ds->rank, want->rows);
    if (want->rows < 0 || ds->dims[0] != (uint64_t)want->rows)
        return saec_fail(SAEC_ERR_DATA, "write one timestep per row of activations",
                         "dataset '%s' in '%s' has %" PRIu64 " rows, but dataset '%s' has %" PRId64,
                         name, path, ds->dims[0], want->rows_of ? want->rows_of : "activations",
                         want->rows);
    SAEC_TRY(check_dtype_attr(ds, label));
    if (!is_int(ds) || is_bf16_marked(ds))
        return saec_fail(SAEC_ERR_DATA,
                         "timesteps are integers in [0, timesteps): store them as int32",
                         "dataset '%s' in '%s' has dtype %s, expected an integer type (int32)",
                         name, path, out->type_name);
    out->kind = SAEC_H5_KIND_INTEGER;
    out->n = (int64_t)ds->dims[0];
    return SAEC_OK;
}

static int check_ground_truth(const saec_h5_dataset_desc *ds, const saec_h5_expect *want,
                              const char *label, saec_h5_verdict *out) {
    const char *name = ds->name, *path = ds->path;
    if (ds->rank != want->rank)
        return saec_fail(SAEC_ERR_DATA, "regenerate the file with `saec gen`",
                         "dataset %s in '%s' has rank %d, expected %d", name, path, ds->rank,
                         want->rank);
    /* Read whole, converted to 4-byte values: the count must fit in memory arithmetic. */
    uint64_t count = 1;
    for (int i = 0; i < ds->rank && i < SAEC_H5_DESC_MAX_RANK; i++) {
        if (ds->dims[i] != 0 && count > ((uint64_t)INT64_MAX / 8) / ds->dims[i]) {
            char shape[256];
            shape_text(ds, shape, sizeof shape);
            return saec_fail(SAEC_ERR_DATA, "regenerate the file with `saec gen`",
                             "dataset %s in '%s' has shape %s, too large to read", name, path,
                             shape);
        }
        count *= ds->dims[i];
    }
    SAEC_TRY(check_dtype_attr(ds, label));
    if ((!is_int(ds) && ds->cls != SAEC_H5_CLASS_FLOAT) || is_bf16_marked(ds) || is_bf16_float(ds))
        return saec_fail(SAEC_ERR_DATA, "regenerate the file with `saec gen` (float32)",
                         "dataset %s in '%s' has dtype %s, expected numbers (float32)", name, path,
                         out->type_name);
    out->kind = is_int(ds) ? SAEC_H5_KIND_INTEGER : SAEC_H5_KIND_FLOAT;
    out->n = ds->rank > 0 ? (int64_t)ds->dims[0] : 1;
    out->d = ds->rank > 1 ? (int64_t)ds->dims[1] : 1;
    return SAEC_OK;
}

int saec_h5_check_dataset(const saec_h5_dataset_desc *ds, const saec_h5_expect *want,
                          saec_h5_verdict *out) {
    memset(out, 0, sizeof *out);
    saec_h5_desc_type_name(ds, out->type_name, sizeof out->type_name);
    char label[600];
    const char *name = ds->name ? ds->name : "?", *path = ds->path ? ds->path : "?";
    saec_h5_dataset_desc named = *ds;
    named.name = name;
    named.path = path;
    if (want->role == SAEC_H5_ROLE_GROUND_TRUTH)
        snprintf(label, sizeof label, "dataset %.200s in '%.380s'", name, path);
    else
        snprintf(label, sizeof label, "dataset '%.200s' in '%.380s'", name, path);
    if (ds->rank < 0)
        return saec_fail(SAEC_ERR_DATA, "check the file with h5dump", "cannot read the shape of %s",
                         label);
    switch (want->role) {
    case SAEC_H5_ROLE_ACTIVATIONS: return check_activations(&named, want, label, out);
    case SAEC_H5_ROLE_TIMESTEPS: return check_timesteps(&named, want, label, out);
    case SAEC_H5_ROLE_GROUND_TRUTH: return check_ground_truth(&named, want, label, out);
    }
    return saec_fail(SAEC_ERR_OTHER, NULL, "internal: unknown dataset role %d", (int)want->role);
}
