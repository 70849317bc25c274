/* The synthetic EO tiles (host/data/eo_synth.c): a tile is a pure function of (seed, index);
 * its labels are the classes covering ≥ 1% of its class map (1 to 3 of them); values and
 * metadata stay in range; and the information the generator promises is there, measured over
 * 3000 tiles:
 *   - latitude: snow far more often beyond 55° than within 30°; bare ground in the subtropics;
 *   - season: vegetation's NIR/red ratio higher in the local summer than in the local winter;
 *   - the sun: tiles at noon brighter than at 7 h;
 *   - classes: each class's mean spectrum near its signature's shape (water dark in NIR, snow
 *     bright in the visible and dark in SWIR).
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "eo_synth.h"

enum { SIDE = 40, NPIX = SIDE * SIDE, TILES = 3000 };

static float img[EO_BANDS * NPIX], img2[EO_BANDS * NPIX];

int main(void) {
    eo_meta m, m2;
    uint8_t labels[EO_CLASSES], labels2[EO_CLASSES], map[NPIX], map2[NPIX];

    set_ctx("bad sides");
    CHECK(eo_synth_tile(1, 0, 0, img, &m, labels, NULL) == SAEC_ERR_USAGE, "side 0 accepted");
    CHECK(eo_synth_tile(1, 0, EO_MAX_SIDE + 1, img, &m, labels, NULL) == SAEC_ERR_USAGE,
          "side %d accepted", EO_MAX_SIDE + 1);
    saec_error_clear();

    set_ctx("determinism");
    eo_synth_tile(7, 123, SIDE, img, &m, labels, map);
    eo_synth_tile(7, 123, SIDE, img2, &m2, labels2, map2);
    CHECK(memcmp(img, img2, sizeof img) == 0 && memcmp(&m, &m2, sizeof m) == 0 &&
              memcmp(labels, labels2, sizeof labels) == 0 && memcmp(map, map2, sizeof map) == 0,
          "tile (7, 123) differs between two calls");
    eo_synth_tile(7, 124, SIDE, img2, &m2, labels2, NULL);
    CHECK(memcmp(img, img2, sizeof img) != 0, "tiles 123 and 124 are the same");
    eo_synth_tile(8, 123, SIDE, img2, &m2, labels2, NULL);
    CHECK(memcmp(img, img2, sizeof img) != 0, "seeds 7 and 8 give the same tile");

    /* statistics over the stream */
    double snow_hi = 0, n_hi = 0, snow_lo = 0, n_lo = 0, bare_sub = 0, n_sub = 0, bare_pole = 0,
           n_pole = 0;
    double ratio_summer = 0, n_summer = 0, ratio_winter = 0, n_winter = 0;
    double bright_noon = 0, n_noon = 0, bright_morning = 0, n_morning = 0;
    double spectrum[EO_CLASSES][EO_BANDS] = {{0}}, pixels[EO_CLASSES] = {0};
    int bad_labels = 0, bad_range = 0, bad_meta = 0;
    for (int t = 0; t < TILES; t++) {
        eo_synth_tile(1, (uint64_t)t, SIDE, img, &m, labels, map);
        int n_labels = 0, cover[EO_CLASSES] = {0};
        for (int p = 0; p < NPIX; p++)
            cover[map[p]]++;
        for (int c = 0; c < EO_CLASSES; c++) {
            n_labels += labels[c];
            bad_labels += labels[c] != (cover[c] > 0 && 100 * cover[c] >= NPIX);
        }
        bad_labels += n_labels < 1 || n_labels > EO_MAX_PRESENT;
        for (int i = 0; i < EO_BANDS * NPIX; i++)
            bad_range += !(img[i] >= 0 && img[i] < 1.5f);
        bad_meta += !(m.lat >= -60 && m.lat <= 72 && m.lon >= -180 && m.lon < 180 && m.week >= 1 &&
                      m.week <= 52 && m.hour >= 6 && m.hour < 18);
        const double a = fabs(m.lat);
        if (a > 55) snow_hi += labels[EO_SNOW], n_hi++;
        if (a < 30) snow_lo += labels[EO_SNOW], n_lo++;
        if (a > 15 && a < 35) bare_sub += labels[EO_BARE], n_sub++;
        if (a > 50) bare_pole += labels[EO_BARE], n_pole++;
        /* vegetation away from the tropics: summer = weeks 20..36 north, 0..10 / 46..52 south */
        const int north_summer = m.week >= 20 && m.week <= 36;
        const int north_winter = m.week <= 10 || m.week >= 46;
        const int summer = m.lat >= 0 ? north_summer : north_winter;
        const int winter = m.lat >= 0 ? north_winter : north_summer;
        for (int p = 0; p < NPIX; p++) {
            const int c = map[p];
            for (int b = 0; b < EO_BANDS; b++)
                spectrum[c][b] += img[b * NPIX + p];
            pixels[c]++;
            if (c == EO_FOREST && a > 35 && (summer || winter)) {
                const double ratio = img[4 * NPIX + p] / (img[3 * NPIX + p] + 0.02);
                if (summer) ratio_summer += ratio, n_summer++;
                if (winter) ratio_winter += ratio, n_winter++;
            }
        }
        double mean = 0;
        for (int i = 0; i < EO_BANDS * NPIX; i++)
            mean += img[i] / (EO_BANDS * NPIX);
        if (fabs(m.hour - 12) < 1.5 && a < 40) bright_noon += mean, n_noon++;
        if (m.hour < 7.5 && a < 40) bright_morning += mean, n_morning++;
    }
    set_ctx("tiles in range");
    CHECK(bad_labels == 0, "%d label sets disagree with their class maps or hold 0 or > 3",
          bad_labels);
    CHECK(bad_range == 0, "%d reflectances outside [0, 1.5)", bad_range);
    CHECK(bad_meta == 0, "%d tiles' metadata out of range", bad_meta);

    set_ctx("the information the generator promises");
    const double p_snow_hi = snow_hi / n_hi, p_snow_lo = snow_lo / n_lo;
    const double p_bare_sub = bare_sub / n_sub, p_bare_pole = bare_pole / n_pole;
    const double r_summer = ratio_summer / n_summer, r_winter = ratio_winter / n_winter;
    const double b_noon = bright_noon / n_noon, b_morning = bright_morning / n_morning;
    printf("snow: %.3f beyond 55°, %.3f within 30°; bare: %.3f at 15-35°, %.3f beyond 50°\n",
           p_snow_hi, p_snow_lo, p_bare_sub, p_bare_pole);
    printf("forest NIR/red beyond 35°: %.2f in summer, %.2f in winter; brightness %.3f at noon, "
           "%.3f at 7 h\n",
           r_summer, r_winter, b_noon, b_morning);
    CHECK(p_snow_hi > 3 * p_snow_lo + 0.05, "snow %.3f beyond 55° against %.3f within 30°",
          p_snow_hi, p_snow_lo);
    CHECK(p_bare_sub > 3 * p_bare_pole + 0.05, "bare %.3f at 15-35° against %.3f beyond 50°",
          p_bare_sub, p_bare_pole);
    CHECK(n_summer > 100 && n_winter > 100 && r_summer > 1.3 * r_winter,
          "forest NIR/red %.2f in summer against %.2f in winter", r_summer, r_winter);
    CHECK(b_noon > 1.3 * b_morning, "brightness %.3f at noon against %.3f at 7 h", b_noon,
          b_morning);

    set_ctx("the classes' spectra");
    for (int c = 0; c < EO_CLASSES; c++) {
        CHECK(pixels[c] > 1000, "class %s covers only %.0f pixels in %d tiles", eo_class_name(c),
              pixels[c], TILES);
        for (int b = 0; b < EO_BANDS; b++)
            spectrum[c][b] /= pixels[c] > 0 ? pixels[c] : 1;
    }
    CHECK(spectrum[EO_WATER][4] < 0.5 * spectrum[EO_FOREST][4], "water's NIR %.3f, forest's %.3f",
          spectrum[EO_WATER][4], spectrum[EO_FOREST][4]);
    CHECK(spectrum[EO_SNOW][2] > 4 * spectrum[EO_SNOW][5], "snow green %.3f, SWIR1 %.3f",
          spectrum[EO_SNOW][2], spectrum[EO_SNOW][5]);
    return check_summary("test_eo_synth");
}
