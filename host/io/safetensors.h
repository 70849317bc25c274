/* The safetensors format: an 8-byte little-endian header length, a JSON header naming each
   tensor's dtype, shape and byte range, then the raw data. Metadata (`__metadata__`) is a map
   of string to string. */
#ifndef SAEC_SAFETENSORS_H
#define SAEC_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#define SAEC_ST_MAX_DIMS 4

typedef enum {
    SAEC_ST_F32,
    SAEC_ST_F16,
    SAEC_ST_BF16,
    SAEC_ST_I32,
    SAEC_ST_I64,
    SAEC_ST_U8,
    SAEC_ST_F64 /* the parity bundles' loss values */
} saec_st_dtype;

typedef struct {
    const char *name;
    saec_st_dtype dtype;
    int ndim;
    int64_t shape[SAEC_ST_MAX_DIMS];
    const void *data; /* host memory, little-endian */
} saec_st_tensor;

typedef struct {
    const char *key;
    const char *value;
} saec_st_meta;

/* Write tensors (in the order given) and metadata atomically (temporary file + rename). */
int saec_st_write(const char *path, const saec_st_tensor *tensors, int n_tensors,
                  const saec_st_meta *meta, int n_meta);

/* A file read whole into memory. */
typedef struct saec_st_file saec_st_file;

/* The format's limit on the header length (the reference implementation's, 100 MB). */
#define SAEC_ST_MAX_HEADER 100000000

/* Open and validate. Refused, each with SAEC_ERR_DATA naming the file and the tensor or key at
   fault: a header length over SAEC_ST_MAX_HEADER or beyond the file; a header that does not
   begin with '{', is not JSON, has a raw control byte, or is padded with anything but spaces; a
   repeated key (tensor, '__metadata__', metadata key, or a tensor's field); metadata that is not
   a map of string to string; an unknown dtype; a shape entry that is not a non-negative integer;
   data_offsets [begin, end] with end < begin, end beyond the data area, or end - begin other than
   numel x dtype size; and byte ranges that do not tile the data area exactly (an overlap, a hole,
   or bytes after the last tensor). Zero tensors with an empty data area, and tensors with a 0 in
   their shape, are valid. */
int saec_st_open(const char *path, saec_st_file **out);
/* The same from memory (copied; `name_for_messages` stands for the path in messages, NULL:
   "(memory)"): the code the fuzzer (fuzz/fuzz_safetensors.c) drives. */
int saec_st_parse_buffer(const void *data, size_t len, const char *name_for_messages,
                         saec_st_file **out);
void saec_st_close(saec_st_file *f);
int saec_st_count(const saec_st_file *f);
/* The i-th tensor (in header order) or the one with that name (NULL pointer result = absent). */
const saec_st_tensor *saec_st_get(const saec_st_file *f, int i);
const saec_st_tensor *saec_st_find(const saec_st_file *f, const char *name);
/* Metadata value or NULL. */
const char *saec_st_meta_get(const saec_st_file *f, const char *key);
int saec_st_meta_count(const saec_st_file *f);
const saec_st_meta *saec_st_meta_at(const saec_st_file *f, int i);
const char *saec_st_dtype_name(saec_st_dtype t); /* "F32", "BF16", ... */
int64_t saec_st_numel(const saec_st_tensor *t);

/* Find a tensor and check its dtype and shape; SAEC_ERR_DATA naming file, tensor and the
   mismatch otherwise. shape entries < 0 match anything. */
int saec_st_expect(const saec_st_file *f, const char *path_for_messages, const char *name,
                   saec_st_dtype dtype, int ndim, const int64_t *shape, const saec_st_tensor **out);

#endif
