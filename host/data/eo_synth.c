/* Synthetic EO tiles (eo_synth.h). Per tile, from its own generator (seed, SAEC_RNG_EO_TILES,
 * index):
 *   1. metadata: latitude uniform in [−60, 72]°, longitude in [−180, 180)°, ISO week 1..52,
 *      hour uniform in [6, 18);
 *   2. the classes present: 1, 2 or 3 (30/45/25%), drawn without replacement with weights that
 *      depend on |latitude| and, for snow, on the local season;
 *   3. the class map: each present class gets a field (a bias plus three random plane waves at
 *      the class's spatial scale); a pixel takes the class of the largest field;
 *   4. the bands: the class's spectral signature; vegetation's red and NIR follow the local
 *      greenness (1 in local summer, 0 in winter, 0.9 all year in the tropics); everything is
 *      scaled by the sun's elevation; then per-tile and per-pixel noise;
 *   5. the labels: the classes covering at least 1% of the pixels.
 */
#include "eo_synth.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "rng.h"
#include "saec/saec.h"

#define EO_PI 3.14159265358979323846

static const char *const class_names[EO_CLASSES] = {"water", "forest", "cropland", "grassland",
                                                    "urban", "bare",   "snow",     "wetland"};

/* Surface reflectance of SR_B1 .. SR_B7 (coastal, blue, green, red, NIR, SWIR1, SWIR2). */
static const float signature[EO_CLASSES][EO_BANDS] = {
    {0.05f, 0.05f, 0.04f, 0.03f, 0.02f, 0.01f, 0.01f}, /* water */
    {0.02f, 0.03f, 0.05f, 0.03f, 0.30f, 0.15f, 0.07f}, /* forest */
    {0.04f, 0.05f, 0.08f, 0.06f, 0.35f, 0.20f, 0.10f}, /* cropland */
    {0.04f, 0.05f, 0.08f, 0.07f, 0.28f, 0.24f, 0.14f}, /* grassland */
    {0.10f, 0.11f, 0.12f, 0.13f, 0.18f, 0.20f, 0.18f}, /* urban */
    {0.12f, 0.15f, 0.20f, 0.26f, 0.30f, 0.38f, 0.32f}, /* bare */
    {0.85f, 0.85f, 0.83f, 0.80f, 0.60f, 0.05f, 0.04f}, /* snow */
    {0.03f, 0.04f, 0.06f, 0.04f, 0.15f, 0.08f, 0.04f}, /* wetland */
};

/* Spatial frequency of a class's texture (radians per pixel): smooth water and snow, fine urban. */
static const double texture[EO_CLASSES] = {0.10, 0.25, 0.18, 0.22, 0.80, 0.15, 0.08, 0.20};

static const int vegetation[EO_CLASSES] = {0, 1, 1, 1, 0, 0, 0, 1};

const char *eo_class_name(int c) { return c >= 0 && c < EO_CLASSES ? class_names[c] : "?"; }

static double bump(double x, double center, double width) {
    const double u = (x - center) / width;
    return exp(-0.5 * u * u);
}

static double sigmoid(double x) { return 1.0 / (1.0 + exp(-x)); }

/* 1 in the local summer, 0 in the local winter (the southern hemisphere's seasons flipped). */
static double local_summer(const eo_meta *m) {
    const double north = 0.5 - 0.5 * cos(2 * EO_PI * (m->week - 2.0) / 52.0); /* 1 at week 28 */
    return m->lat >= 0 ? north : 1.0 - north;
}

/* How likely class c is on a tile at this latitude and season (relative weights). */
static double class_weight(int c, const eo_meta *m) {
    const double a = fabs(m->lat), winter = 1.0 - local_summer(m);
    switch (c) {
    case EO_WATER: return 1.0;
    case EO_FOREST: return 1.2 * bump(a, 55, 12) + bump(a, 5, 10);
    case EO_CROPLAND: return 1.3 * bump(a, 40, 10);
    case EO_GRASSLAND: return bump(a, 30, 15) + 0.2;
    case EO_URBAN: return 0.3;
    case EO_BARE: return 1.5 * bump(a, 25, 8);
    case EO_SNOW: return 1.5 * sigmoid((a - 58) / 4) + 1.2 * winter * sigmoid((a - 40) / 4);
    case EO_WETLAND: return 0.6 * bump(a, 60, 10) + 0.1;
    }
    return 0;
}

/* The sun's elevation factor: sin(elevation) for the week's declination and the hour angle,
   floored at 0.15 (twilight tiles stay visible). */
static double illumination(const eo_meta *m) {
    const double decl = 23.44 * EO_PI / 180 * sin(2 * EO_PI * (m->week - 12.0) / 52.0);
    const double lat = m->lat * EO_PI / 180, hour_angle = (m->hour - 12.0) * 15.0 * EO_PI / 180;
    const double s = sin(lat) * sin(decl) + cos(lat) * cos(decl) * cos(hour_angle);
    return s > 0.15 ? s : 0.15;
}

int eo_synth_tile(uint64_t seed, uint64_t index, int64_t side, float *img, eo_meta *meta,
                  uint8_t *labels, uint8_t *class_map) {
    if (side < 1 || side > EO_MAX_SIDE)
        return saec_fail(SAEC_ERR_USAGE, "choose a tile side from 1 to 256 (MoE-MAE's is 40)",
                         "synthetic EO tiles: side %lld is out of range", (long long)side);
    saec_rng rng;
    saec_rng_init(&rng, seed, SAEC_RNG_EO_TILES, index);

    eo_meta m;
    m.lat = (float)(-60.0 + 132.0 * saec_rng_uniform(&rng));
    m.lon = (float)(-180.0 + 360.0 * saec_rng_uniform(&rng));
    m.week = (float)(1 + (int)(52 * saec_rng_uniform(&rng)));
    m.hour = (float)(6.0 + 12.0 * saec_rng_uniform(&rng));
    *meta = m;

    /* the classes present, without replacement, by weight */
    const double u = saec_rng_uniform(&rng);
    const int n_present = u < 0.30 ? 1 : u < 0.75 ? 2 : 3;
    int present[EO_MAX_PRESENT];
    double w[EO_CLASSES];
    for (int c = 0; c < EO_CLASSES; c++)
        w[c] = class_weight(c, &m);
    for (int j = 0; j < n_present; j++) {
        double total = 0;
        for (int c = 0; c < EO_CLASSES; c++)
            total += w[c];
        double r = total * saec_rng_uniform(&rng);
        int pick = EO_CLASSES - 1;
        for (int c = 0; c < EO_CLASSES; c++) {
            if (w[c] <= 0) continue;
            if (r < w[c]) {
                pick = c;
                break;
            }
            r -= w[c];
        }
        while (w[pick] <= 0) /* the rounding fell past the last weight */
            pick--;
        present[j] = pick;
        w[pick] = 0;
    }

    /* the fields: bias + three plane waves at the class's texture scale */
    double bias[EO_MAX_PRESENT], fx[EO_MAX_PRESENT][3], fy[EO_MAX_PRESENT][3],
        ph[EO_MAX_PRESENT][3];
    for (int j = 0; j < n_present; j++) {
        bias[j] = 0.6 * saec_rng_normal(&rng);
        for (int q = 0; q < 3; q++) {
            const double angle = 2 * EO_PI * saec_rng_uniform(&rng);
            const double f = texture[present[j]] * (0.5 + saec_rng_uniform(&rng));
            fx[j][q] = f * cos(angle), fy[j][q] = f * sin(angle);
            ph[j][q] = 2 * EO_PI * saec_rng_uniform(&rng);
        }
    }
    uint8_t own_map[EO_MAX_SIDE * EO_MAX_SIDE];
    uint8_t *map = class_map ? class_map : own_map; /* [side, side] */
    int64_t cover[EO_CLASSES] = {0};
    for (int64_t y = 0; y < side; y++)
        for (int64_t x = 0; x < side; x++) {
            int best = 0;
            double best_v = -1e300;
            for (int j = 0; j < n_present; j++) {
                double v = bias[j];
                for (int q = 0; q < 3; q++)
                    v += sin(fx[j][q] * (double)x + fy[j][q] * (double)y + ph[j][q]);
                if (v > best_v) best_v = v, best = j;
            }
            map[y * side + x] = (uint8_t)present[best];
            cover[present[best]]++;
        }

    /* the bands */
    const double tropics = bump(fabs(m.lat), 0, 20);
    const double green = tropics * 0.9 + (1 - tropics) * local_summer(&m);
    const double light = illumination(&m) * (1.0 + 0.05 * saec_rng_normal(&rng));
    for (int64_t p = 0; p < side * side; p++) {
        const int c = map[p];
        for (int b = 0; b < EO_BANDS; b++) {
            double r = signature[c][b];
            if (vegetation[c] && b == 4) r *= 0.5 + 0.5 * green; /* NIR */
            if (vegetation[c] && b == 3) r *= 1.4 - 0.6 * green; /* red */
            r = r * light + 0.01 * saec_rng_normal(&rng);
            img[(int64_t)b * side * side + p] = (float)(r > 0 ? r : 0);
        }
    }

    for (int c = 0; c < EO_CLASSES; c++) /* at least 1% of the pixels, and at least one */
        labels[c] = (uint8_t)(cover[c] > 0 && 100 * cover[c] >= side * side);
    return SAEC_OK;
}
