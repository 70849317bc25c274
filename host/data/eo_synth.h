/* Synthetic multispectral Earth-observation tiles with ground truth: the core of the `eo`
 * generator of issue 16 (the embedded default data of MoE-MAE). A tile is a pure function of
 * (seed, index): 7 Landsat-like bands of surface reflectance on a side × side grid, its
 * metadata (ISO week, hour, latitude, longitude), its multi-hot labels over EO_CLASSES classes and
 * the per-pixel class map they come from.
 *
 * What carries information (so that "metadata helps" can be measured, not assumed):
 *   - which classes appear depends on latitude (snow near the poles and in winter, bare ground in
 *     the subtropics, cropland at mid latitudes, …);
 *   - how vegetation looks depends on the season at that latitude (green in local summer, brown
 *     in winter; the tropics stay green) and everything's brightness on the sun's elevation
 *     (week, hour, latitude);
 *   - each class has its own spectral signature and spatial texture (smooth water and snow,
 *     fine-grained urban).
 * Not yet built: the `saec gen eo` command that writes these to the HDF5 EO layout.
 */
#ifndef SAEC_EO_SYNTH_H
#define SAEC_EO_SYNTH_H

#include <stdint.h>

enum { EO_BANDS = 7, EO_CLASSES = 8, EO_MAX_PRESENT = 3, EO_MAX_SIDE = 256 };

enum {
    EO_WATER,
    EO_FOREST,
    EO_CROPLAND,
    EO_GRASSLAND,
    EO_URBAN,
    EO_BARE,
    EO_SNOW,
    EO_WETLAND,
};

typedef struct {
    float week; /* ISO week, 1 .. 52 */
    float hour; /* local solar hour, 6 .. 18 */
    float lat;  /* degrees, −60 .. 72 */
    float lon;  /* degrees, −180 .. 180 */
} eo_meta;

/* The class's name ("water", "forest", …). */
const char *eo_class_name(int c);

/* Tile `index` of the stream of `seed`: img [EO_BANDS, side, side] reflectance (about 0 .. 1),
   *meta, labels [EO_CLASSES] (1: the class covers at least 1% of the tile) and, when not NULL,
   class_map [side, side] (each pixel's class). Returns SAEC_OK, or SAEC_ERR_USAGE (after
   saec_fail) for a side outside 1 .. EO_MAX_SIDE. */
int eo_synth_tile(uint64_t seed, uint64_t index, int64_t side, float *img, eo_meta *meta,
                  uint8_t *labels, uint8_t *class_map);

#endif
