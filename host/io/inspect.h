/* `saec inspect`: describe an HDF5 dataset, a safetensors file or a run directory. */
#ifndef SAEC_INSPECT_H
#define SAEC_INSPECT_H

#include <stdio.h>

/* Prints shapes, dtypes, config and provenance of `path` to `out`. Errors: SAEC_ERR_DATA naming
   the path (missing, unreadable, unknown kind). */
int saec_inspect(const char *path, FILE *out);

#endif
