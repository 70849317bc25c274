/* The checks of an HDF5 dataset saec reads (SPEC §10: the activations, their timesteps, the
   ground truth), on a plain description of the dataset: no HDF5 call, so the rules are unit tested
   and fuzzed without files (fuzz/fuzz_hdf5_checks.c). data_hdf5.c describes each dataset it opens
   and calls saec_h5_check_dataset; its verdict is the reader's, there is no second copy of the
   rules.

   The `dtype` attribute: absent, or a single string naming the stored type. Accepted values
   (exact, lowercase): "bfloat16" on 2-byte integers (the bfloat16 bits stored as uint16 or
   int16; also on an HDF5 float type with bfloat16's layout), "float16", "float32", "float64" on
   IEEE floats of that width, "int8" ... "int64" and "uint8" ... "uint64" on integers of that
   size and signedness. Any other value, a value that contradicts the stored type (a float32
   dataset marked "bfloat16"), or an attribute that is not one string is refused: SAEC_ERR_DATA,
   naming the file, the dataset, the value and the stored type. */
#ifndef SAEC_DATA_CHECKS_H
#define SAEC_DATA_CHECKS_H

#include <stddef.h>
#include <stdint.h>

#define SAEC_H5_DESC_MAX_RANK 32 /* HDF5's H5S_MAX_RANK */

/* HDF5's type classes (H5T_class_t), without the HDF5 header. */
typedef enum {
    SAEC_H5_CLASS_INTEGER = 0,
    SAEC_H5_CLASS_FLOAT,
    SAEC_H5_CLASS_TIME,
    SAEC_H5_CLASS_STRING,
    SAEC_H5_CLASS_BITFIELD,
    SAEC_H5_CLASS_OPAQUE,
    SAEC_H5_CLASS_COMPOUND,
    SAEC_H5_CLASS_REFERENCE,
    SAEC_H5_CLASS_ENUM,
    SAEC_H5_CLASS_VLEN,
    SAEC_H5_CLASS_ARRAY,
    SAEC_H5_CLASS_UNKNOWN,
} saec_h5_class;

typedef enum {
    SAEC_H5_ATTR_ABSENT = 0,
    SAEC_H5_ATTR_STRING,     /* one string: value/value_len */
    SAEC_H5_ATTR_NOT_STRING, /* present but not one readable string: `what` says what it is */
} saec_h5_attr_state;

/* A dataset as saec sees it. Strings given as (pointer, length) need no terminator and may hold
   any bytes; path and name are C strings. */
typedef struct {
    const char *path;                     /* the file, for messages */
    const char *name;                     /* the dataset's path in the file */
    int rank;                             /* < 0: the dataspace could not be read */
    uint64_t dims[SAEC_H5_DESC_MAX_RANK]; /* the first min(rank, 32) extents */
    int cls;                              /* a saec_h5_class (any other value: unknown) */
    size_t size;                          /* bytes per element */
    int is_signed;                        /* integers */
    int big_endian;
    size_t exp_bits, mant_bits, exp_bias; /* floats: exponent and mantissa widths, bias */
    saec_h5_attr_state dtype_attr;        /* the attribute `dtype` */
    const char *dtype_value;              /* ATTR_STRING: its bytes [dtype_len] */
    size_t dtype_len;
    const char *dtype_what; /* ATTR_NOT_STRING: "int64 scalar", "3 strings", ... [what_len] */
    size_t what_len;
} saec_h5_dataset_desc;

typedef enum {
    SAEC_H5_ROLE_ACTIVATIONS = 0, /* [N, d]: float32, float16 or bfloat16 */
    SAEC_H5_ROLE_TIMESTEPS,       /* [N]: integers */
    SAEC_H5_ROLE_GROUND_TRUTH,    /* any rank given in `rank`: numbers, read converted */
} saec_h5_role;

typedef struct {
    saec_h5_role role;
    int64_t d_in;        /* activations: the model's width; 0 takes the data's */
    int64_t rows;        /* timesteps: the activations' rows */
    const char *rows_of; /* timesteps: the activations' name */
    int rank;            /* ground truth: the expected rank */
} saec_h5_expect;

typedef enum {
    SAEC_H5_KIND_NONE = 0,
    SAEC_H5_KIND_F32,     /* read as native float */
    SAEC_H5_KIND_F16,     /* raw half bits, converted by saec */
    SAEC_H5_KIND_BF16,    /* raw bfloat16 bits in a 2-byte integer */
    SAEC_H5_KIND_INTEGER, /* timesteps, or integer ground truth */
    SAEC_H5_KIND_FLOAT,   /* ground truth of another float width */
} saec_h5_kind;

typedef struct {
    saec_h5_kind kind;
    int64_t n, d;       /* activations: [n, d]; timesteps and ground truth: n = dims[0] */
    char type_name[96]; /* "float32", "bfloat16", "float16 (big-endian)", ... */
} saec_h5_verdict;

/* SAEC_OK and the verdict, or a saec_fail (SAEC_ERR_DATA) naming the file, the dataset and the
   culprit, with a hint. Never reads beyond the description's lengths. */
int saec_h5_check_dataset(const saec_h5_dataset_desc *ds, const saec_h5_expect *want,
                          saec_h5_verdict *out);

/* The dtype's name as numpy would say it, "bfloat16" for a 2-byte integer whose dtype attribute
   is exactly "bfloat16" (saec_h5_type_name in h5_lock.h describes an HDF5 type this way). */
void saec_h5_desc_type_name(const saec_h5_dataset_desc *ds, char *buf, size_t cap);

#endif
