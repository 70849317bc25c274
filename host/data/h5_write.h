/* Writing activation datasets (SPEC §10) to HDF5: `saec gen`. */
#ifndef SAEC_H5_WRITE_H
#define SAEC_H5_WRITE_H

#include <stdint.h>

#include <hdf5.h>

#include "data.h"

/* Stream n_rows rows of `src` into `path` as dataset `activations` [n_rows, d] float32, chunked
   by rows, with the source's ground truth (when it has one) in group `ground_truth`:
   directions [F, d], probabilities [F], offset [d], parent [F] (hierarchy only), t_center [F]
   (timestep only), attribute noise. A source with timesteps also gets dataset `timesteps`
   [n_rows] int32. `attrs_json` (may be NULL) is stored as the file attribute `saec_provenance`.
   Writes to a temporary file beside `path` and renames it, so no partial file is left behind.
   Prints progress to stderr when `progress` is set. */
int saec_h5_write_dataset(const char *path, saec_data *src, int64_t n_rows, const char *attrs_json,
                          int progress);

/* A scalar variable-length UTF-8 string attribute `name` on obj (h5py reads it back as a Python
   str). Returns 0, or -1 when HDF5 failed. Lock held. */
int saec_h5_write_string_attr(hid_t obj, const char *name, const char *value);

#endif
