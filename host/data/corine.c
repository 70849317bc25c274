/* The 43 → 19 class mapping of BigEarthNet (corine.h).
 *
 * Source: the 19-class nomenclature of Sumbul et al., "BigEarthNet-MM: A Large-Scale,
 * Multimodal, Multilabel Benchmark Archive for Remote Sensing Image Classification and
 * Retrieval" (IEEE GRSM 2021), whose table is published as label_indices.json in
 * https://git.tu-berlin.de/rsim/BigEarthNet-S2_19-classes_models; checked against two public
 * copies of that table that agree: torchgeo's BigEarthNet.label_converter
 * (microsoft/torchgeo, torchgeo/datasets/bigearthnet.py) and the MoE-MAE reference's
 * BigEarthNetInfo.MATCH_LABELS (Albughdadi 2025).
 */
#include "corine.h"

#include <stddef.h>
#include <string.h>

/* Index 6's full name, "Land principally occupied by agriculture, with significant areas of
   natural vegetation" (86 characters), does not fit the EO layout's 63-character class names. */
static const char *const ben19[BEN19_CLASSES] = {
    "Urban fabric",
    "Industrial or commercial units",
    "Arable land",
    "Permanent crops",
    "Pastures",
    "Complex cultivation patterns",
    "Agriculture with significant natural vegetation",
    "Agro-forestry areas",
    "Broad-leaved forest",
    "Coniferous forest",
    "Mixed forest",
    "Natural grassland and sparsely vegetated areas",
    "Moors, heathland and sclerophyllous vegetation",
    "Transitional woodland, shrub",
    "Beaches, dunes, sands",
    "Inland wetlands",
    "Coastal wetlands",
    "Inland waters",
    "Marine waters",
};

/* The 43 CORINE Level-3 names as BigEarthNet's JSONs spell them, each with its 19-class index
   (CORINE_DROPPED: no counterpart). */
static const struct {
    const char *name;
    int ben19;
} corine43[] = {
    {"Continuous urban fabric", 0},
    {"Discontinuous urban fabric", 0},
    {"Industrial or commercial units", 1},
    {"Road and rail networks and associated land", CORINE_DROPPED},
    {"Port areas", CORINE_DROPPED},
    {"Airports", CORINE_DROPPED},
    {"Mineral extraction sites", CORINE_DROPPED},
    {"Dump sites", CORINE_DROPPED},
    {"Construction sites", CORINE_DROPPED},
    {"Green urban areas", CORINE_DROPPED},
    {"Sport and leisure facilities", CORINE_DROPPED},
    {"Non-irrigated arable land", 2},
    {"Permanently irrigated land", 2},
    {"Rice fields", 2},
    {"Vineyards", 3},
    {"Fruit trees and berry plantations", 3},
    {"Olive groves", 3},
    {"Pastures", 4},
    {"Annual crops associated with permanent crops", 3},
    {"Complex cultivation patterns", 5},
    {"Land principally occupied by agriculture, with significant areas of natural vegetation", 6},
    {"Agro-forestry areas", 7},
    {"Broad-leaved forest", 8},
    {"Coniferous forest", 9},
    {"Mixed forest", 10},
    {"Natural grassland", 11},
    {"Moors and heathland", 12},
    {"Sclerophyllous vegetation", 12},
    {"Transitional woodland/shrub", 13},
    {"Beaches, dunes, sands", 14},
    {"Bare rock", CORINE_DROPPED},
    {"Sparsely vegetated areas", 11},
    {"Burnt areas", CORINE_DROPPED},
    {"Inland marshes", 15},
    {"Peatbogs", 15},
    {"Salt marshes", 16},
    {"Salines", 16},
    {"Intertidal flats", CORINE_DROPPED},
    {"Water courses", 17},
    {"Water bodies", 17},
    {"Coastal lagoons", 18},
    {"Estuaries", 18},
    {"Sea and ocean", 18},
};

int corine_to_ben19(const char *name) {
    for (size_t i = 0; i < sizeof corine43 / sizeof corine43[0]; i++)
        if (!strcmp(name, corine43[i].name)) return corine43[i].ben19;
    for (int c = 0; c < BEN19_CLASSES; c++)
        if (!strcmp(name, ben19[c])) return c;
    /* (Index 6's full 19-class name equals its CORINE name, matched above.) */
    return CORINE_UNKNOWN;
}

const char *ben19_name(int c) { return c >= 0 && c < BEN19_CLASSES ? ben19[c] : ""; }
