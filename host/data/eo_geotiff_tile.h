/* One GeoTIFF tile through GDAL: its checks (bands, size, type), its pixels at the stored size
   and its centre in WGS 84 (eo_geotiff.c's reader). */
#ifndef SAEC_EO_GEOTIFF_TILE_H
#define SAEC_EO_GEOTIFF_TILE_H

#include <stddef.h>
#include <stdint.h>

#include "eo_geotiff.h"

typedef struct {
    int bands_in;   /* the file must have exactly this many bands */
    int bands_keep; /* bands 1 .. bands_keep are stored */
    int side;       /* stored side (40) */
    int crop;       /* 1: the file must be (side+1)² and its top-left side² is stored as is;
                       0: any size, resampled to side² (bilinear) */
} eo_tile_spec;

/* Reprojection to WGS 84, kept from tile to tile while the source projection stays the same. */
typedef struct {
    char *wkt;
    void *transform; /* OGRCoordinateTransformationH */
} eo_geo_cache;
void eo_geo_cache_free(eo_geo_cache *cache);

/* Reads `path` into pixels [bands_keep, side, side] uint16 and, when lat_lon is not NULL, the
   centre of the file's extent in WGS 84 degrees into lat_lon[0] (latitude), lat_lon[1]
   (longitude). Returns EO_TILE_OK or the kind of fault with its detail in why[why_size]. */
eo_bad_kind eo_tile_read(const char *path, const eo_tile_spec *spec, uint16_t *pixels,
                         double *lat_lon, eo_geo_cache *cache, char *why, size_t why_size);

#endif
