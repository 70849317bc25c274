/* GeoTIFF tiles through GDAL (eo_geotiff_tile.h). GDAL's own error printing is silenced by the
   caller (eo_geotiff.c); its last message becomes the reason of an unreadable tile. */
#include "eo_geotiff_tile.h"

#include <cpl_error.h>
#include <gdal.h>
#include <ogr_srs_api.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void eo_geo_cache_free(eo_geo_cache *cache) {
    if (cache->transform) OCTDestroyCoordinateTransformation(cache->transform);
    free(cache->wkt);
    cache->wkt = NULL;
    cache->transform = NULL;
}

static const char *gdal_reason(void) {
    const char *msg = CPLGetLastErrorMsg();
    return msg && msg[0] ? msg : "not a (readable) TIFF";
}

/* The transform from `wkt` to WGS 84 longitude/latitude (x = lon, y = lat), cached. */
static OGRCoordinateTransformationH to_wgs84(eo_geo_cache *cache, const char *wkt) {
    if (cache->wkt && !strcmp(cache->wkt, wkt)) return cache->transform;
    eo_geo_cache_free(cache);
    OGRSpatialReferenceH src = OSRNewSpatialReference(NULL);
    OGRSpatialReferenceH dst = OSRNewSpatialReference(NULL);
    OGRCoordinateTransformationH ct = NULL;
    if (OSRSetFromUserInput(src, wkt) == OGRERR_NONE &&
        OSRImportFromEPSG(dst, 4326) == OGRERR_NONE) {
        /* EPSG:4326's official axis order is lat, lon; GIS order makes x the easting/longitude
           on both sides, as the geotransform's x is. */
        OSRSetAxisMappingStrategy(src, OAMS_TRADITIONAL_GIS_ORDER);
        OSRSetAxisMappingStrategy(dst, OAMS_TRADITIONAL_GIS_ORDER);
        ct = OCTNewCoordinateTransformation(src, dst);
    }
    OSRDestroySpatialReference(src);
    OSRDestroySpatialReference(dst);
    if (ct) {
        cache->wkt = strdup(wkt);
        if (!cache->wkt) {
            OCTDestroyCoordinateTransformation(ct);
            return NULL;
        }
        cache->transform = ct;
    }
    return ct;
}

static eo_bad_kind centre_lat_lon(GDALDatasetH ds, eo_geo_cache *cache, double *lat_lon, char *why,
                                  size_t why_size) {
    double gt[6];
    const char *wkt = GDALGetProjectionRef(ds);
    if (GDALGetGeoTransform(ds, gt) != CE_None || !wkt || !wkt[0]) {
        snprintf(why, why_size, "the file has no geotransform or no projection");
        return EO_BAD_NO_GEOREF;
    }
    const double px = GDALGetRasterXSize(ds) / 2.0, py = GDALGetRasterYSize(ds) / 2.0;
    double x = gt[0] + gt[1] * px + gt[2] * py, y = gt[3] + gt[4] * px + gt[5] * py;
    OGRCoordinateTransformationH ct = to_wgs84(cache, wkt);
    if (!ct || !OCTTransform(ct, 1, &x, &y, NULL)) {
        snprintf(why, why_size, "cannot reproject the centre to WGS 84: %s", gdal_reason());
        return EO_BAD_NO_GEOREF;
    }
    lat_lon[0] = y;
    lat_lon[1] = x;
    return EO_TILE_OK;
}

eo_bad_kind eo_tile_read(const char *path, const eo_tile_spec *spec, uint16_t *pixels,
                         double *lat_lon, eo_geo_cache *cache, char *why, size_t why_size) {
    static const char *const gtiff_only[] = {"GTiff", NULL};
    CPLErrorReset();
    GDALDatasetH ds = GDALOpenEx(path, GDAL_OF_RASTER | GDAL_OF_READONLY, gtiff_only, NULL, NULL);
    if (!ds) {
        snprintf(why, why_size, "GDAL cannot open it as a GeoTIFF: %s", gdal_reason());
        return EO_BAD_UNREADABLE;
    }
    eo_bad_kind kind = EO_TILE_OK;
    const int bands = GDALGetRasterCount(ds);
    const int w = GDALGetRasterXSize(ds), h = GDALGetRasterYSize(ds);
    if (bands != spec->bands_in) {
        snprintf(why, why_size, "%d bands, want %d", bands, spec->bands_in);
        kind = EO_BAD_BAND_COUNT;
    } else if (spec->crop && (w != spec->side + 1 || h != spec->side + 1)) {
        snprintf(why, why_size, "%d×%d pixels, want %d×%d", w, h, spec->side + 1, spec->side + 1);
        kind = EO_BAD_SIZE;
    }
    for (int b = 1; kind == EO_TILE_OK && b <= bands; b++) {
        const GDALDataType t = GDALGetRasterDataType(GDALGetRasterBand(ds, b));
        if (t != GDT_UInt16) {
            snprintf(why, why_size, "band %d is %s, want UInt16", b, GDALGetDataTypeName(t));
            kind = EO_BAD_DATA_TYPE;
        }
    }
    if (kind == EO_TILE_OK) {
        /* [bands_keep, side, side]: band-sequential, rows of `side` pixels. */
        int band_map[16];
        for (int b = 0; b < spec->bands_keep; b++)
            band_map[b] = b + 1;
        GDALRasterIOExtraArg extra;
        INIT_RASTERIO_EXTRA_ARG(extra);
        extra.eResampleAlg = spec->crop ? GRIORA_NearestNeighbour : GRIORA_Bilinear;
        const int win_w = spec->crop ? spec->side : w, win_h = spec->crop ? spec->side : h;
        CPLErrorReset();
        if (GDALDatasetRasterIOEx(ds, GF_Read, 0, 0, win_w, win_h, pixels, spec->side, spec->side,
                                  GDT_UInt16, spec->bands_keep, band_map, 0, 0, 0,
                                  &extra) != CE_None) {
            snprintf(why, why_size, "cannot read the pixels: %s", gdal_reason());
            kind = EO_BAD_UNREADABLE;
        }
    }
    if (kind == EO_TILE_OK && lat_lon) kind = centre_lat_lon(ds, cache, lat_lon, why, why_size);
    GDALClose(ds);
    return kind;
}
