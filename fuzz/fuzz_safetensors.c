/* libFuzzer harness: bytes as a safetensors file, through saec_st_parse_buffer (the code
   saec_st_open runs). A parsed file is walked whole: every tensor's every byte is read (the
   parser's copy of the input is exactly its size, so AddressSanitizer sees a range that leaves
   it), names and metadata are read to their ends, and the format's invariants are checked: the
   tensors' bytes add up to the data area (no hole, overlap or trailing byte), lookups by name
   find each tensor, the data is aligned for its dtype. A refused file must be a data error
   naming the file, with no file handed out. A broken invariant aborts (a crash for libFuzzer). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "saec/saec.h"
#include "safetensors.h"

static void fail(const char *what) {
    fprintf(stderr, "fuzz_safetensors: invariant broken: %s\n", what);
    abort();
}

static size_t elem_size(saec_st_dtype t) {
    switch (t) {
    case SAEC_ST_F32:
    case SAEC_ST_I32: return 4;
    case SAEC_ST_F16:
    case SAEC_ST_BF16: return 2;
    case SAEC_ST_I64:
    case SAEC_ST_F64: return 8;
    case SAEC_ST_U8: return 1;
    }
    fail("unknown dtype handed out");
    return 0;
}

static volatile unsigned sink;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const char name[] = "fuzz-input";
    saec_error_clear();
    saec_st_file *f = (saec_st_file *)(uintptr_t)1;
    int rc = saec_st_parse_buffer(data, size, name, &f);
    if (rc != SAEC_OK) {
        if (f != NULL) fail("a refused file was handed out");
        if (rc != SAEC_ERR_DATA && rc != SAEC_ERR_OTHER) fail("not a data error");
        if (saec_error_code() != rc) fail("error code and return code differ");
        if (!strstr(saec_error_message(), name)) fail("the message does not name the file");
        saec_error_clear();
        return 0;
    }
    if (!f) fail("success without a file");
    if (size < 8) fail("accepted a file shorter than 8 bytes");
    uint64_t hl = 0;
    for (int i = 0; i < 8; i++)
        hl |= (uint64_t)data[i] << (8 * i);
    if (hl > SAEC_ST_MAX_HEADER || hl > size - 8) fail("accepted a bad header length");
    if (hl == 0 || data[8] != '{') fail("accepted a header not beginning with '{'");
    const uint64_t data_size = size - 8 - hl;

    uint64_t total = 0;
    unsigned acc = 0;
    const int n = saec_st_count(f);
    for (int i = 0; i < n; i++) {
        const saec_st_tensor *t = saec_st_get(f, i);
        if (!t || !t->name) fail("tensor missing");
        if (t->ndim < 0 || t->ndim > SAEC_ST_MAX_DIMS) fail("ndim out of range");
        size_t es = elem_size(t->dtype);
        uint64_t numel = 1;
        for (int d = 0; d < t->ndim; d++) {
            if (t->shape[d] < 0) fail("negative dimension");
            numel *= (uint64_t)t->shape[d];
        }
        if ((int64_t)numel != saec_st_numel(t)) fail("saec_st_numel disagrees");
        uint64_t bytes = numel * es;
        if (bytes > data_size) fail("a tensor larger than the data area");
        total += bytes;
        if (bytes) {
            if (!t->data) fail("no data");
            if ((uintptr_t)t->data % es) fail("data not aligned for its dtype");
            const unsigned char *p = t->data;
            for (uint64_t j = 0; j < bytes; j++)
                acc += p[j];
        }
        acc += (unsigned)strlen(t->name);
        /* Names are unique: the lookup finds this very tensor. */
        if (saec_st_find(f, t->name) != t) fail("saec_st_find does not find the tensor");
        if (saec_st_expect(f, NULL, t->name, t->dtype, t->ndim, t->shape, NULL) != SAEC_OK)
            fail("saec_st_expect refuses the tensor's own dtype and shape");
    }
    if (saec_st_get(f, n) != NULL || saec_st_get(f, -1) != NULL) fail("get out of range");
    if (total != data_size) fail("the tensors do not cover the data area exactly");
    const int nm = saec_st_meta_count(f);
    for (int i = 0; i < nm; i++) {
        const saec_st_meta *m = saec_st_meta_at(f, i);
        if (!m || !m->key || !m->value) fail("metadata entry missing");
        acc += (unsigned)strlen(m->key) + (unsigned)strlen(m->value);
        if (saec_st_meta_get(f, m->key) != m->value) fail("metadata keys are not unique");
    }
    sink = acc;
    saec_st_close(f);
    saec_error_clear();
    return 0;
}
