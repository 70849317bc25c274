/* Activation sources: dispatch to the HDF5 reader or a synthetic generator. */
#include "data.h"

#include <stdlib.h>

#include "saec/saec.h"

int saec_data_open(const saec_config *cfg, saec_stream stream, saec_data **out) {
    if (cfg->data[0]) return saec_data_open_hdf5(cfg, stream, out);
    return saec_data_open_synthetic(cfg, stream, out);
}

int saec_data_next(saec_data *src, int64_t n, float *rows) { return src->vt->next(src, n, rows); }

int saec_data_seek(saec_data *src, int64_t cursor) {
    if (cursor < 0) return saec_fail(SAEC_ERR_OTHER, NULL, "negative data cursor %lld", (long long)cursor);
    return src->vt->seek(src, cursor);
}

int saec_data_ground_truth(saec_data *src, saec_ground_truth *out) {
    if (!src->has_ground_truth)
        return saec_fail(SAEC_ERR_DATA, "ground-truth metrics need synthetic data or a file with a "
                         "'ground_truth' group", "no ground truth in %s", src->info.description);
    return src->vt->ground_truth(src, out);
}

void saec_data_close(saec_data *src) {
    if (src) src->vt->close(src);
}

void saec_ground_truth_free(saec_ground_truth *gt) {
    free(gt->directions);
    free(gt->probabilities);
    free(gt->offset);
    free(gt->parent);
    gt->directions = gt->probabilities = gt->offset = NULL;
    gt->parent = NULL;
}
