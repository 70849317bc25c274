/* libFuzzer harness over the HDF5 dataset checks (host/data/data_checks.c): the fuzzer's bytes are
   decoded into a dataset description (rank 0..4 and invalid ranks, extents from 0 to 2^64 - 1,
   every type class and unknown ones, odd sizes and float layouts, a dtype attribute absent, a
   string of any bytes without a terminator, or a non-string) and an expectation (each role, an
   invalid one, widths and row counts against the model's), then checked. Besides never crashing,
   hanging or reading out of bounds, each verdict must keep the rules: an accepted dataset's dtype
   attribute names its stored type, an accepted width fits, a refusal has a message. A broken
   rule aborts, so the fuzzer reports it as a crash.

   Build by hand: clang -fsanitize=fuzzer,address,undefined -Iinclude -Ihost
                  fuzz/fuzz_hdf5_checks.c host/data/data_checks.c core/error.c
   Seeds: fuzz/corpus/hdf5_checks/ (written by the harness's own layout, see decode()). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data_checks.h"
#include "saec/saec.h"

typedef struct {
    const uint8_t *p;
    size_t n;
} reader;

static uint8_t take_u8(reader *r) {
    if (r->n == 0) return 0;
    r->n--;
    return *r->p++;
}

static uint64_t take_u64(reader *r) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | take_u8(r);
    return v;
}

/* An extent: small numbers, the edges of the integer types, powers of two and their
   neighbours, or any 64 bits. */
static uint64_t take_extent(reader *r) {
    const uint8_t mode = take_u8(r);
    switch (mode & 3) {
    case 0: return take_u8(r);
    case 1: {
        static const uint64_t edges[] = {0,
                                         1,
                                         (uint64_t)1 << 20,
                                         ((uint64_t)1 << 20) + 1,
                                         (uint64_t)INT32_MAX,
                                         (uint64_t)UINT32_MAX,
                                         (uint64_t)INT64_MAX,
                                         (uint64_t)INT64_MAX + 1,
                                         UINT64_MAX};
        return edges[(mode >> 2) % (sizeof edges / sizeof edges[0])];
    }
    case 2: {
        const unsigned shift = (unsigned)(mode >> 2) % 64;
        return ((uint64_t)1 << shift) + (uint64_t)(int64_t)(int8_t)take_u8(r);
    }
    default: return take_u64(r);
    }
}

/* Bytes [len] copied into an allocation of exactly len bytes (none: a 1-byte one, so the
   pointer is never NULL), so reading past the end is caught by AddressSanitizer. Names that
   saec accepts are offered often, so the agreement rules are reached. */
static char *take_bytes(reader *r, size_t *len) {
    static const char *names[] = {"bfloat16", "float16", "float32", "float64",  "int8",
                                  "int16",    "int32",   "int64",   "uint8",    "uint16",
                                  "uint32",   "uint64",  "",        "BFLOAT16", "bfloat16\0x"};
    const uint8_t mode = take_u8(r);
    const char *src;
    size_t n;
    if (mode < 128) {
        const size_t which = mode % (sizeof names / sizeof names[0]);
        src = names[which];
        n = which == sizeof names / sizeof names[0] - 1 ? 10 : strlen(src);
    } else {
        n = (size_t)(mode - 128) * 3; /* up to 381 bytes: longer than any shown text */
        if (n > r->n) n = r->n;
        src = (const char *)r->p;
        r->p += n;
        r->n -= n;
    }
    char *out = malloc(n ? n : 1);
    if (!out) abort();
    if (n) memcpy(out, src, n);
    *len = n;
    return out;
}

/* A C string from the input (path and name), up to 300 bytes, terminated. */
static char *take_cstring(reader *r) {
    size_t n = take_u8(r) % 160;
    if (take_u8(r) & 1) n *= 2;
    if (n > r->n) n = r->n;
    char *out = malloc(n + 1);
    if (!out) abort();
    memcpy(out, r->p, n);
    out[n] = '\0';
    r->p += n;
    r->n -= n;
    return out;
}

static int equals(const saec_h5_dataset_desc *ds, const char *name) {
    const size_t n = strlen(name);
    return ds->dtype_attr == SAEC_H5_ATTR_STRING && ds->dtype_value && ds->dtype_len == n &&
           memcmp(ds->dtype_value, name, n) == 0;
}

#define RULE(cond)                                                                                 \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_hdf5_checks: rule broken: %s (rc %d, \"%s\")\n", #cond, rc,      \
                    saec_error_message());                                                         \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* The rules every verdict keeps. */
static void check_verdict(const saec_h5_dataset_desc *ds, const saec_h5_expect *want, int rc,
                          const saec_h5_verdict *v) {
    const int valid_role = want->role == SAEC_H5_ROLE_ACTIVATIONS ||
                           want->role == SAEC_H5_ROLE_TIMESTEPS ||
                           want->role == SAEC_H5_ROLE_GROUND_TRUTH;
    RULE(rc == SAEC_OK || rc == SAEC_ERR_DATA || (!valid_role && rc == SAEC_ERR_OTHER));
    RULE(memchr(v->type_name, '\0', sizeof v->type_name) != NULL);
    if (rc != SAEC_OK) {
        RULE(saec_error_code() == rc && saec_error_message()[0] != '\0');
        return;
    }
    RULE(valid_role);
    /* An attribute that is there is one string naming the stored type. */
    RULE(ds->dtype_attr == SAEC_H5_ATTR_ABSENT || ds->dtype_attr == SAEC_H5_ATTR_STRING);
    const int is_int = ds->cls == SAEC_H5_CLASS_INTEGER, is_float = ds->cls == SAEC_H5_CLASS_FLOAT;
    if (ds->dtype_attr == SAEC_H5_ATTR_STRING) {
        if (equals(ds, "bfloat16")) RULE(ds->size == 2 && (is_int || is_float));
        if (equals(ds, "float16") || equals(ds, "float32") || equals(ds, "float64"))
            RULE(is_float && ds->size == (size_t)(equals(ds, "float16")   ? 2
                                                  : equals(ds, "float32") ? 4
                                                                          : 8));
        if (equals(ds, "int32")) RULE(is_int && ds->size == 4 && ds->is_signed);
        if (equals(ds, "uint16")) RULE(is_int && ds->size == 2 && !ds->is_signed);
        RULE(ds->dtype_len > 0 && ds->dtype_len <= 8);
    }
    switch (want->role) {
    case SAEC_H5_ROLE_ACTIVATIONS:
        RULE(ds->rank == 2 && v->n >= 1 && v->d >= 1 && v->d <= (1 << 20));
        RULE((uint64_t)v->n == ds->dims[0] && (uint64_t)v->d == ds->dims[1]);
        if (want->d_in > 0) RULE(v->d == want->d_in);
        RULE(v->kind == SAEC_H5_KIND_F32 || v->kind == SAEC_H5_KIND_F16 ||
             v->kind == SAEC_H5_KIND_BF16);
        if (v->kind == SAEC_H5_KIND_BF16) RULE(is_int && ds->size == 2 && equals(ds, "bfloat16"));
        if (v->kind == SAEC_H5_KIND_F32) RULE(is_float && ds->size == 4);
        if (v->kind == SAEC_H5_KIND_F16) RULE(is_float && ds->size == 2);
        break;
    case SAEC_H5_ROLE_TIMESTEPS:
        RULE(ds->rank == 1 && want->rows >= 0 && ds->dims[0] == (uint64_t)want->rows);
        RULE(v->kind == SAEC_H5_KIND_INTEGER && is_int && !equals(ds, "bfloat16"));
        break;
    case SAEC_H5_ROLE_GROUND_TRUTH:
        RULE(ds->rank >= 0 && ds->rank == want->rank && (is_int || is_float) &&
             !equals(ds, "bfloat16"));
        {
            /* the element count fits, so the reader's count * 4 cannot overflow */
            uint64_t count = 1;
            for (int i = 0; i < ds->rank; i++) {
                RULE(ds->dims[i] == 0 || count <= UINT64_MAX / 8 / ds->dims[i]);
                count *= ds->dims[i];
            }
        }
        break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    reader r = {data, size};
    saec_h5_dataset_desc ds;
    memset(&ds, 0, sizeof ds);
    saec_h5_expect want;
    memset(&want, 0, sizeof want);

    /* Layout: role, rank, extents, type, attribute, expectation, then the strings. */
    want.role = (saec_h5_role)(take_u8(&r) % 4); /* 3: no such role */
    const uint8_t rank_byte = take_u8(&r);
    switch (rank_byte) { /* 0..4 mostly, then what HDF5 never gives: < 0 and > 32 */
    case 200: ds.rank = -1; break;
    case 201: ds.rank = SAEC_H5_DESC_MAX_RANK + 1; break;
    case 202: ds.rank = INT32_MAX; break;
    case 203: ds.rank = INT32_MIN; break;
    default: ds.rank = rank_byte < 200 ? rank_byte % 5 : (rank_byte - 228) * 7; break;
    }
    const int stored = ds.rank < 0 ? 0 : ds.rank < SAEC_H5_DESC_MAX_RANK ? ds.rank : 32;
    for (int i = 0; i < stored; i++)
        ds.dims[i] = i < 4 ? take_extent(&r) : (uint64_t)i;
    const uint8_t cls = take_u8(&r);
    ds.cls = cls < 240 ? cls % 12 : (int)(int8_t)cls; /* 12 classes, then unknown values */
    const uint8_t size_mode = take_u8(&r);
    ds.size = size_mode < 200 ? (size_t)(size_mode % 17) : (size_t)take_u64(&r);
    const uint8_t flags = take_u8(&r);
    ds.is_signed = flags & 1;
    ds.big_endian = (flags >> 1) & 1;
    static const size_t layouts[][3] = {{5, 10, 15}, {8, 23, 127}, {11, 52, 1023}, {8, 7, 127},
                                        {5, 10, 14}, {0, 0, 0},    {8, 24, 127}};
    const uint8_t layout = take_u8(&r);
    if (layout < 224) {
        const size_t *l = layouts[layout % (sizeof layouts / sizeof layouts[0])];
        ds.exp_bits = l[0], ds.mant_bits = l[1], ds.exp_bias = l[2];
    } else {
        ds.exp_bits = (size_t)take_u64(&r);
        ds.mant_bits = (size_t)take_u64(&r);
        ds.exp_bias = (size_t)take_u64(&r);
    }
    const uint8_t attr = take_u8(&r);
    char *value = NULL, *what = NULL;
    switch (attr % 5) {
    case 0: ds.dtype_attr = SAEC_H5_ATTR_ABSENT; break;
    case 1:
    case 2:
        ds.dtype_attr = SAEC_H5_ATTR_STRING;
        value = take_bytes(&r, &ds.dtype_len);
        ds.dtype_value = value;
        break;
    case 3:
        ds.dtype_attr = SAEC_H5_ATTR_NOT_STRING;
        what = take_bytes(&r, &ds.what_len);
        ds.dtype_what = attr & 0x80 ? NULL : what; /* NULL with a length: never read */
        break;
    default: ds.dtype_attr = (saec_h5_attr_state)(3 + (attr >> 4)); break; /* no such state */
    }
    const uint8_t d_mode = take_u8(&r);
    switch (d_mode % 4) {
    case 0: want.d_in = 0; break;
    case 1: want.d_in = (int64_t)(ds.rank >= 2 ? ds.dims[1] : 1); break;
    case 2: want.d_in = (int64_t)take_u8(&r) - 16; break;
    default: want.d_in = (int64_t)take_u64(&r); break;
    }
    const uint8_t rows_mode = take_u8(&r);
    switch (rows_mode % 4) {
    case 0: want.rows = (int64_t)(stored > 0 ? ds.dims[0] : 0); break;
    case 1: want.rows = -1; break;
    case 2: want.rows = (int64_t)take_u8(&r); break;
    default: want.rows = (int64_t)take_u64(&r); break;
    }
    want.rank = (int)(int8_t)take_u8(&r) % 6;
    char *path = take_cstring(&r), *name = take_cstring(&r), *rows_of = take_cstring(&r);
    const uint8_t nulls = take_u8(&r);
    ds.path = nulls & 1 ? NULL : path;
    ds.name = nulls & 2 ? NULL : name;
    want.rows_of = nulls & 4 ? NULL : rows_of;

    saec_error_clear();
    saec_h5_verdict v;
    const int rc = saec_h5_check_dataset(&ds, &want, &v);
    if (getenv("SAEC_FUZZ_VERBOSE")) /* to see what a seed decodes to */
        printf("rc %d: %s\n", rc, rc ? saec_error_message() : v.type_name);
    check_verdict(&ds, &want, rc, &v);
    saec_error_clear();

    /* The type name into buffers of every small size: always terminated, never overrun. */
    char small[24];
    const size_t cap = take_u8(&r) % (sizeof small + 1);
    memset(small, 'x', sizeof small);
    saec_h5_desc_type_name(&ds, small, cap);
    if (cap > 0 && !memchr(small, '\0', cap)) abort();

    free(value);
    free(what);
    free(path);
    free(name);
    free(rows_of);
    return 0;
}
