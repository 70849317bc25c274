/* The JSON beside a BigEarthNet-style tile: its labels and acquisition time. */
#ifndef SAEC_EO_BEN_JSON_H
#define SAEC_EO_BEN_JSON_H

#include <stddef.h>
#include <stdint.h>

#include "eo_geotiff.h"

/* Reads `path`: "labels", a list of CORINE Level-3 (or 19-class) names, into labels [19]
   multi-hot (names the 19 classes leave out set nothing), and "acquisition_date" into the ISO
   week and UTC hour (eo_acq_time.h). Other keys (coordinates, projection, ...) are ignored: the
   GeoTIFF's georeferencing is the source of truth. Returns EO_TILE_OK or EO_BAD_MISSING_JSON,
   EO_BAD_JSON, EO_BAD_LABEL or EO_BAD_DATE with the detail in why[why_size]. */
eo_bad_kind eo_ben_json_read(const char *path, uint8_t *labels, float *week, float *hour, char *why,
                             size_t why_size);

#endif
