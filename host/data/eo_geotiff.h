/* `saec import geotiff`: Landsat GeoTIFF tiles, as users have them, into the HDF5 EO layout
 * (eo_h5.h), through GDAL. Two layouts (issue 16):
 *
 *   bigearthnet  a folder tree of tiles NAME.tif (41×41, 7 bands, uint16), each with NAME.json
 *                beside it: "labels" (CORINE Level-3 names, mapped to the 19-class nomenclature,
 *                corine.h) and "acquisition_date" ("2017-06-13 10:10:32" or ISO 8601). Stored:
 *                the top-left 40×40 (last row and column dropped, SPEC §7), multi-hot labels [19]
 *                and metadata [ISO week, UTC hour, latitude, longitude of the tile centre in
 *                WGS 84, reprojected by GDAL/OSR from the GeoTIFF's own georeferencing].
 *   eurosat      ROOT/CLASS/…/NAME.tif with 8 bands (any size, uint16): bands 1..7 resized to
 *                40×40 by GDAL's bilinear resampling, the 8th dropped; one class id per tile,
 *                classes = the class folders in byte order; no metadata dataset.
 *
 * Files are visited in byte order of their paths below ROOT, so the output is deterministic.
 * Split: bigearthnet reads ROOT/train.csv, val.csv, test.csv when any exists (one tile name —
 * the .tif's name without extension — per line, first comma-separated field; the official
 * BigEarthNet split files), a tile listed in none being a bad tile; otherwise, and always for
 * eurosat, a tile goes to train/val/test by the FNV-1a hash of its path below ROOT modulo 100:
 * < 60 train, < 80 val, else test (stable when other tiles are added or removed).
 * band_mean/band_std: population mean and std of each stored band over the train tiles
 * (omitted when no tile is train).
 *
 * A bad tile is reported by file name and reason (the first 100 of each kind; the summary
 * counts them all); on_error chooses whether the import skips it
 * (the default) or stops (SAEC_ERR_DATA, no output file). The end prints a summary.
 */
#ifndef SAEC_EO_GEOTIFF_H
#define SAEC_EO_GEOTIFF_H

#include <signal.h>
#include <stdint.h>
#include <stdio.h>

typedef enum { EO_LAYOUT_BIGEARTHNET, EO_LAYOUT_EUROSAT } eo_layout;
typedef enum { EO_ON_ERROR_SKIP, EO_ON_ERROR_STOP } eo_on_error;

/* Why a tile was not imported. */
typedef enum {
    EO_TILE_OK = 0,
    EO_BAD_UNREADABLE,   /* not a GeoTIFF GDAL can read, or a read failed */
    EO_BAD_BAND_COUNT,   /* not 7 bands (bigearthnet) / 8 bands (eurosat) */
    EO_BAD_SIZE,         /* not 41×41 (bigearthnet) */
    EO_BAD_DATA_TYPE,    /* bands not uint16 */
    EO_BAD_NO_GEOREF,    /* no geotransform or projection: no centre to reproject */
    EO_BAD_MISSING_JSON, /* no NAME.json beside NAME.tif */
    EO_BAD_JSON,         /* JSON unreadable, not an object, or "labels" missing/not strings */
    EO_BAD_LABEL,        /* a label name outside the 43 CORINE (and 19) names */
    EO_BAD_DATE,         /* acquisition_date missing or not a valid date and time */
    EO_BAD_NOT_IN_SPLIT, /* split CSVs given, tile listed in none */
    EO_BAD_NO_CLASS,     /* eurosat: a .tif directly in ROOT, outside any class folder */
    EO_BAD_KINDS
} eo_bad_kind;

/* Short name of a kind, as the summary prints it ("wrong band count"). */
const char *eo_bad_kind_name(eo_bad_kind kind);

typedef struct {
    eo_layout layout;
    const char *in_dir;
    const char *out_path;
    eo_on_error on_error;
    int64_t limit;                    /* import at most this many tiles; 0 = all */
    FILE *log;                        /* bad tiles, progress, summary; NULL = stderr */
    double progress_every_s;          /* seconds between progress lines; 0 = none */
    volatile sig_atomic_t *interrupt; /* set (by a signal handler) to stop; NULL = never */
} eo_import_options;

typedef struct {
    int64_t files;             /* .tif/.tiff files found */
    int64_t imported;          /* tiles written */
    int64_t per_split[3];      /* imported tiles by EO_SPLIT_* */
    int64_t skipped;           /* bad tiles */
    int64_t bad[EO_BAD_KINDS]; /* bad tiles by kind */
    int n_classes;
} eo_import_summary;

/* Runs the import. SAEC_OK: out_path written. SAEC_ERR_DATA: the input folder is missing, a bad
   tile with on_error = stop (naming the file and the reason), or no tile imported;
   SAEC_ERR_OTHER "interrupted" when *interrupt was set. On any failure nothing is written at
   out_path (a file already there stays as it was). */
int eo_import_geotiff(const eo_import_options *opt, eo_import_summary *summary);

#endif
