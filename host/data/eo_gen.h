/* `saec gen eo`: synthetic EO tiles written to the HDF5 EO layout (eo_h5.h). */
#ifndef SAEC_EO_GEN_H
#define SAEC_EO_GEN_H

#include <signal.h>
#include <stdint.h>

#include "saec/config.h"

/* Writes tiles 0 .. n_tiles − 1 of the synthetic train stream of cfg->seed and cfg->eo_side
   (the tiles `--synthetic eo` trains on) to `path`: images [N, 7, side, side] float32, metadata,
   multi-hot labels with the 8 class names, split 60/20/20 (eo_split_of_index), and band_mean /
   band_std over the train split. `provenance` (may be NULL) becomes the file attribute
   saec_provenance. Progress on stderr when `progress` is set. When *stop becomes nonzero
   (a signal handler sets it) the write stops at the next batch, the temporary file is removed and
   SAEC_ERR_OTHER is returned: no file is left. */
int eo_gen_write(const saec_config *cfg, const char *path, int64_t n_tiles, const char *provenance,
                 int progress, volatile sig_atomic_t *stop);

#endif
