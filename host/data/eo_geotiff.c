/* `saec import geotiff` (eo_geotiff.h): walks the tree in byte order, reads each tile through
   eo_geotiff_tile.c (and its JSON through eo_ben_json.c), assigns its split, streams batches to
   the EO writer (eo_h5.h) and keeps the train split's band statistics. */
#include "eo_geotiff.h"

#include <cpl_error.h>
#include <gdal.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "clock.h"
#include "corine.h"
#include "dir_walk.h"
#include "eo_ben_json.h"
#include "eo_geotiff_tile.h"
#include "eo_h5.h"
#include "saec/saec.h"

enum { SIDE = 40, BANDS = 7, TILE_PIXELS = SIDE * SIDE, BATCH = 256 };
/* Bad tiles listed by name per kind; past that a systematic fault would flood the log, and the
   summary counts the rest. */
enum { MAX_LISTED_PER_KIND = 100 };

static const char *const bad_kind_names[EO_BAD_KINDS] = {
    [EO_TILE_OK] = "imported",
    [EO_BAD_UNREADABLE] = "unreadable",
    [EO_BAD_BAND_COUNT] = "wrong band count",
    [EO_BAD_SIZE] = "wrong size",
    [EO_BAD_DATA_TYPE] = "wrong data type",
    [EO_BAD_NO_GEOREF] = "no georeferencing",
    [EO_BAD_MISSING_JSON] = "missing JSON",
    [EO_BAD_JSON] = "bad JSON",
    [EO_BAD_LABEL] = "unknown label",
    [EO_BAD_DATE] = "bad date",
    [EO_BAD_NOT_IN_SPLIT] = "not in a split file",
    [EO_BAD_NO_CLASS] = "outside a class folder",
};

const char *eo_bad_kind_name(eo_bad_kind kind) {
    return kind >= 0 && kind < EO_BAD_KINDS ? bad_kind_names[kind] : "?";
}

/* ---- which files, which classes, which split ---- */

static int is_tif(const char *rel) {
    const char *dot = strrchr(rel, '.');
    return dot && (!strcasecmp(dot, ".tif") || !strcasecmp(dot, ".tiff"));
}

/* The tile's name: the file name without folder and extension. */
static void tile_name(const char *rel, char *out, size_t size) {
    const char *slash = strrchr(rel, '/');
    const char *base = slash ? slash + 1 : rel;
    const char *dot = strrchr(base, '.');
    size_t len = dot ? (size_t)(dot - base) : strlen(base);
    if (len >= size) len = size - 1;
    memcpy(out, base, len);
    out[len] = '\0';
}

/* 60/20/20 by the 64-bit FNV-1a hash of the path below the root. */
static uint8_t hash_split(const char *rel) {
    uint64_t h = 0xcbf29ce484222325ULL;
    for (const unsigned char *p = (const unsigned char *)rel; *p; p++)
        h = (h ^ *p) * 0x100000001b3ULL;
    const unsigned bucket = (unsigned)(h % 100);
    return bucket < 60 ? EO_SPLIT_TRAIN : bucket < 80 ? EO_SPLIT_VAL : EO_SPLIT_TEST;
}

typedef struct {
    char *name;
    uint8_t split;
} split_entry;

typedef struct {
    split_entry *entries; /* sorted by name */
    size_t n, cap;
    int present; /* any of the CSV files exists */
} split_table;

static int by_name(const void *a, const void *b) {
    return strcmp(((const split_entry *)a)->name, ((const split_entry *)b)->name);
}

static void split_table_free(split_table *t) {
    for (size_t i = 0; i < t->n; i++)
        free(t->entries[i].name);
    free(t->entries);
    memset(t, 0, sizeof *t);
}

/* ROOT/train.csv, val.csv, test.csv: one tile name per line, its first comma-separated field. */
static int load_split_csvs(const char *root, split_table *t) {
    static const char *const files[3] = {"train.csv", "val.csv", "test.csv"};
    memset(t, 0, sizeof *t);
    for (int s = 0; s < 3; s++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", root, files[s]);
        FILE *f = fopen(path, "r");
        if (!f) continue;
        t->present = 1;
        char line[1024];
        while (fgets(line, sizeof line, f)) {
            line[strcspn(line, ",\r\n")] = '\0';
            char *name = line;
            while (*name == ' ' || *name == '\t')
                name++;
            size_t len = strlen(name);
            while (len && (name[len - 1] == ' ' || name[len - 1] == '\t'))
                name[--len] = '\0';
            if (!len) continue;
            if (t->n == t->cap) {
                size_t cap = t->cap ? 2 * t->cap : 1024;
                split_entry *e = realloc(t->entries, cap * sizeof *e);
                if (!e) {
                    fclose(f);
                    return saec_fail(SAEC_ERR_OTHER, "", "out of memory reading %s", path);
                }
                t->entries = e;
                t->cap = cap;
            }
            t->entries[t->n].name = strdup(name);
            if (!t->entries[t->n].name) {
                fclose(f);
                return saec_fail(SAEC_ERR_OTHER, "", "out of memory reading %s", path);
            }
            t->entries[t->n++].split = (uint8_t)s;
        }
        fclose(f);
    }
    if (t->n) qsort(t->entries, t->n, sizeof *t->entries, by_name);
    return SAEC_OK;
}

static int split_lookup(const split_table *t, const char *name) {
    split_entry key = {(char *)name, 0};
    const split_entry *e = t->n ? bsearch(&key, t->entries, t->n, sizeof key, by_name) : NULL;
    return e ? e->split : -1;
}

static int by_string(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* EuroSAT classes: the first folder of each .tif's path, distinct, in byte order. */
static int eurosat_classes(const saec_file_list *files, const char *root, eo_h5_info *info) {
    const char *names[EO_H5_MAX_CLASSES + 1];
    char folder[EO_H5_MAX_CLASSES + 1][EO_H5_NAME_MAX];
    int n = 0;
    for (size_t i = 0; i < files->n; i++) {
        const char *rel = files->paths[i];
        const char *slash = strchr(rel, '/');
        if (!is_tif(rel) || !slash) continue;
        const size_t len = (size_t)(slash - rel);
        if (len >= EO_H5_NAME_MAX)
            return saec_fail(SAEC_ERR_DATA, "rename the class folder",
                             "class folder '%s/%.*s' has a name longer than %d characters", root,
                             (int)len, rel, EO_H5_NAME_MAX - 1);
        int seen = 0;
        for (int c = 0; c < n && !seen; c++)
            seen = strlen(folder[c]) == len && !strncmp(folder[c], rel, len);
        if (seen) continue;
        if (n == EO_H5_MAX_CLASSES)
            return saec_fail(SAEC_ERR_DATA, "the EO layout holds at most 64 classes",
                             "'%s' has more than %d class folders", root, EO_H5_MAX_CLASSES);
        memcpy(folder[n], rel, len);
        folder[n][len] = '\0';
        names[n] = folder[n];
        n++;
    }
    if (n == 0)
        return saec_fail(SAEC_ERR_DATA,
                         "the eurosat layout is ROOT/CLASS/NAME.tif, one folder per class",
                         "no .tif file inside a class folder of '%s'", root);
    qsort(names, (size_t)n, sizeof names[0], by_string);
    for (int c = 0; c < n; c++)
        snprintf(info->class_names[c], EO_H5_NAME_MAX, "%s", names[c]);
    info->n_classes = n;
    return SAEC_OK;
}

static int class_of(const eo_h5_info *info, const char *rel) {
    const char *slash = strchr(rel, '/');
    if (!slash) return -1;
    const size_t len = (size_t)(slash - rel);
    for (int c = 0; c < info->n_classes; c++)
        if (strlen(info->class_names[c]) == len && !strncmp(info->class_names[c], rel, len))
            return c;
    return -1;
}

/* ---- the import ---- */

typedef struct {
    const eo_import_options *opt;
    FILE *log;
    eo_import_summary *sum;
    eo_h5_info info;
    eo_h5_writer *writer;
    split_table splits;
    eo_geo_cache geo;
    /* the batch being filled: images [BATCH, BANDS, SIDE, SIDE], metadata [BATCH, 4],
       labels [BATCH, K], split [BATCH] */
    uint16_t *images;
    float *metadata;
    uint8_t *labels, *split;
    int64_t fill;
    /* train-split band statistics, combined tile by tile (Chan et al.) */
    double mean[BANDS], m2[BANDS];
    int64_t stat_pixels;
} importer;

static int flush(importer *im) {
    if (!im->fill) return SAEC_OK;
    const int rc =
        eo_h5_writer_append(im->writer, im->fill, im->images,
                            im->info.has_metadata ? im->metadata : NULL, im->labels, im->split);
    im->fill = 0;
    return rc;
}

/* Adds one train tile's pixels [BANDS, SIDE, SIDE] to the band statistics. Per tile the sums are
   exact integers; tiles combine by Chan's parallel update, which stays accurate over millions. */
static void add_to_stats(importer *im, const uint16_t *px) {
    const double nb = TILE_PIXELS, na = (double)im->stat_pixels;
    for (int b = 0; b < BANDS; b++) {
        int64_t sum = 0, sumsq = 0;
        for (int i = 0; i < TILE_PIXELS; i++) {
            const int64_t v = px[(size_t)b * TILE_PIXELS + (size_t)i];
            sum += v;
            sumsq += v * v;
        }
        const double mean_b = (double)sum / nb;
        const double m2_b = (double)sumsq - (double)sum * mean_b;
        const double delta = mean_b - im->mean[b];
        im->mean[b] += delta * nb / (na + nb);
        im->m2[b] += m2_b + delta * delta * na * nb / (na + nb);
    }
    im->stat_pixels += TILE_PIXELS;
}

/* Reads one tile into the batch's next row: EO_TILE_OK, or the fault and why. */
static eo_bad_kind read_tile(importer *im, const char *rel, const char *path, char *why,
                             size_t why_size) {
    const int64_t row = im->fill;
    const int K = im->info.n_classes;
    uint16_t *px = im->images + row * BANDS * TILE_PIXELS;
    uint8_t *labels = im->labels + row * K;
    int split;
    if (im->opt->layout == EO_LAYOUT_BIGEARTHNET) {
        char name[1024];
        tile_name(rel, name, sizeof name);
        split = im->splits.present ? split_lookup(&im->splits, name) : hash_split(rel);
        if (split < 0) {
            snprintf(why, why_size, "tile %.200s is in none of train.csv, val.csv, test.csv", name);
            return EO_BAD_NOT_IN_SPLIT;
        }
        const eo_tile_spec spec = {.bands_in = BANDS, .bands_keep = BANDS, .side = SIDE, .crop = 1};
        double lat_lon[2];
        eo_bad_kind kind = eo_tile_read(path, &spec, px, lat_lon, &im->geo, why, why_size);
        if (kind != EO_TILE_OK) return kind;
        char json[4096];
        const size_t stem = (size_t)(strrchr(path, '.') - path);
        snprintf(json, sizeof json, "%.*s.json", (int)stem, path);
        float *meta = im->metadata + row * 4;
        kind = eo_ben_json_read(json, labels, &meta[0], &meta[1], why, why_size);
        if (kind != EO_TILE_OK) return kind;
        meta[2] = (float)lat_lon[0];
        meta[3] = (float)lat_lon[1];
    } else {
        const int c = class_of(&im->info, rel);
        if (c < 0) {
            snprintf(why, why_size, "the eurosat layout is ROOT/CLASS/NAME.tif");
            return EO_BAD_NO_CLASS;
        }
        const eo_tile_spec spec = {.bands_in = 8, .bands_keep = BANDS, .side = SIDE, .crop = 0};
        const eo_bad_kind kind = eo_tile_read(path, &spec, px, NULL, NULL, why, why_size);
        if (kind != EO_TILE_OK) return kind;
        memset(labels, 0, (size_t)K);
        labels[c] = 1;
        split = hash_split(rel);
    }
    im->split[row] = (uint8_t)split;
    return EO_TILE_OK;
}

static void print_summary(const importer *im) {
    const eo_import_summary *s = im->sum;
    fprintf(im->log,
            "saec: imported %lld tiles (train %lld, val %lld, test %lld) of %lld files; skipped "
            "%lld",
            (long long)s->imported, (long long)s->per_split[EO_SPLIT_TRAIN],
            (long long)s->per_split[EO_SPLIT_VAL], (long long)s->per_split[EO_SPLIT_TEST],
            (long long)s->files, (long long)s->skipped);
    const char *sep = ": ";
    for (int k = 1; k < EO_BAD_KINDS; k++)
        if (s->bad[k]) {
            fprintf(im->log, "%s%lld %s", sep, (long long)s->bad[k], eo_bad_kind_name(k));
            sep = ", ";
        }
    fputc('\n', im->log);
}

static int run(importer *im, const saec_file_list *files) {
    const eo_import_options *opt = im->opt;
    eo_import_summary *sum = im->sum;
    for (size_t i = 0; i < files->n; i++)
        sum->files += is_tif(files->paths[i]);
    if (opt->layout == EO_LAYOUT_EUROSAT) {
        SAEC_TRY(eurosat_classes(files, opt->in_dir, &im->info));
    } else {
        im->info.n_classes = BEN19_CLASSES;
        im->info.multi_label = 1;
        im->info.has_metadata = 1;
        for (int c = 0; c < BEN19_CLASSES; c++)
            snprintf(im->info.class_names[c], EO_H5_NAME_MAX, "%s", ben19_name(c));
        SAEC_TRY(load_split_csvs(opt->in_dir, &im->splits));
    }
    sum->n_classes = im->info.n_classes;
    im->images = malloc(sizeof *im->images * BATCH * BANDS * TILE_PIXELS);
    im->metadata = malloc(sizeof *im->metadata * BATCH * 4);
    im->labels = malloc((size_t)BATCH * (size_t)im->info.n_classes);
    im->split = malloc(BATCH);
    if (!im->images || !im->metadata || !im->labels || !im->split)
        return saec_fail(SAEC_ERR_OTHER, "", "out of memory for the import's batch");
    SAEC_TRY(eo_h5_writer_create(opt->out_path, &im->info, &im->writer));

    const double start = saec_now();
    double last_progress = start;
    int64_t visited = 0;
    for (size_t i = 0; i < files->n; i++) {
        const char *rel = files->paths[i];
        if (!is_tif(rel)) continue;
        if (opt->limit > 0 && sum->imported >= opt->limit) break;
        if (opt->interrupt && *opt->interrupt)
            return saec_fail(SAEC_ERR_OTHER, "run the import again",
                             "interrupted by signal %d; nothing written to %s",
                             (int)*opt->interrupt, opt->out_path);
        visited++;
        char path[4096], why[512];
        snprintf(path, sizeof path, "%s/%s", opt->in_dir, rel);
        const eo_bad_kind kind = read_tile(im, rel, path, why, sizeof why);
        if (kind != EO_TILE_OK) {
            if (opt->on_error == EO_ON_ERROR_STOP)
                return saec_fail(SAEC_ERR_DATA,
                                 "fix or remove the file, or import with --on-error skip",
                                 "%s: %s: %s", path, eo_bad_kind_name(kind), why);
            if (sum->bad[kind] < MAX_LISTED_PER_KIND)
                fprintf(im->log, "saec: skipped %s: %s: %s\n", path, eo_bad_kind_name(kind), why);
            else if (sum->bad[kind] == MAX_LISTED_PER_KIND)
                fprintf(im->log,
                        "saec: (more '%s' tiles are skipped unlisted; the summary counts "
                        "them)\n",
                        eo_bad_kind_name(kind));
            sum->skipped++;
            sum->bad[kind]++;
        } else {
            const uint8_t split = im->split[im->fill];
            if (split == EO_SPLIT_TRAIN)
                add_to_stats(im, im->images + im->fill * BANDS * TILE_PIXELS);
            sum->per_split[split]++;
            sum->imported++;
            if (++im->fill == BATCH) SAEC_TRY(flush(im));
        }
        const double now = saec_now();
        if (opt->progress_every_s > 0 && now - last_progress >= opt->progress_every_s) {
            fprintf(im->log,
                    "saec: import: %lld of %lld files, %lld imported, %lld skipped, %.0f "
                    "files/s\n",
                    (long long)visited, (long long)sum->files, (long long)sum->imported,
                    (long long)sum->skipped, (double)visited / (now - start));
            last_progress = now;
        }
    }
    SAEC_TRY(flush(im));
    print_summary(im);
    if (sum->imported == 0)
        return saec_fail(SAEC_ERR_DATA,
                         opt->layout == EO_LAYOUT_EUROSAT
                             ? "the eurosat layout is ROOT/CLASS/NAME.tif with 8 uint16 bands"
                             : "the bigearthnet layout is NAME.tif (41×41, 7 uint16 bands) with "
                               "NAME.json beside it",
                         "no tile imported from '%s' (%lld .tif files)", opt->in_dir,
                         (long long)sum->files);
    float band_mean[BANDS], band_std[BANDS];
    const int have_stats = im->stat_pixels > 0;
    for (int b = 0; b < BANDS && have_stats; b++) {
        band_mean[b] = (float)im->mean[b];
        band_std[b] = (float)sqrt(im->m2[b] / (double)im->stat_pixels);
    }
    const int rc = eo_h5_writer_finish(im->writer, have_stats ? band_mean : NULL,
                                       have_stats ? band_std : NULL);
    im->writer = NULL; /* finish closes it, whatever it returns */
    return rc;
}

int eo_import_geotiff(const eo_import_options *opt, eo_import_summary *summary) {
    memset(summary, 0, sizeof *summary);
    if (!opt->in_dir || !opt->in_dir[0] || !opt->out_path || !opt->out_path[0])
        return saec_fail(SAEC_ERR_USAGE, "give --in DIR and --out FILE.h5",
                         "the import needs an input folder and an output file");
    importer im;
    memset(&im, 0, sizeof im);
    im.opt = opt;
    im.log = opt->log ? opt->log : stderr;
    im.sum = summary;
    im.info.bands = BANDS;
    im.info.height = im.info.width = SIDE;
    im.info.pixels_uint16 = 1;
    im.info.has_split = 1;

    saec_file_list files;
    int rc = saec_list_files(opt->in_dir, &files);
    if (rc != SAEC_OK) return rc;
    GDALAllRegister();
    CPLPushErrorHandler(CPLQuietErrorHandler); /* GDAL's reasons go into our reports */
    rc = run(&im, &files);
    CPLPopErrorHandler();
    if (rc != SAEC_OK && im.writer) eo_h5_writer_abort(im.writer);
    saec_file_list_free(&files);
    split_table_free(&im.splits);
    eo_geo_cache_free(&im.geo);
    free(im.images);
    free(im.metadata);
    free(im.labels);
    free(im.split);
    return rc;
}
