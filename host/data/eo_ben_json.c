/* BigEarthNet tile JSONs (eo_ben_json.h). */
#include "eo_ben_json.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "corine.h"
#include "eo_acq_time.h"

/* The whole file, NUL-terminated, or NULL (errno set). Tile JSONs are small; 1 MiB is ample. */
static char *read_small_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    enum { MAX_JSON = 1 << 20 };
    char *buf = malloc(MAX_JSON + 1);
    size_t n = buf ? fread(buf, 1, MAX_JSON + 1, f) : 0;
    const int failed = !buf || ferror(f) || n > MAX_JSON;
    fclose(f);
    if (failed) {
        free(buf);
        errno = buf ? EFBIG : ENOMEM;
        return NULL;
    }
    buf[n] = '\0';
    return buf;
}

static eo_bad_kind parse(const cJSON *root, uint8_t *labels, float *week, float *hour, char *why,
                         size_t why_size) {
    if (!cJSON_IsObject(root)) {
        snprintf(why, why_size, "not a JSON object");
        return EO_BAD_JSON;
    }
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(root, "labels");
    if (!cJSON_IsArray(list)) {
        snprintf(why, why_size, "no \"labels\" list");
        return EO_BAD_JSON;
    }
    memset(labels, 0, BEN19_CLASSES);
    const cJSON *item;
    cJSON_ArrayForEach(item, list) {
        if (!cJSON_IsString(item)) {
            snprintf(why, why_size, "\"labels\" holds a non-string");
            return EO_BAD_JSON;
        }
        const int c = corine_to_ben19(item->valuestring);
        if (c == CORINE_UNKNOWN) {
            snprintf(why, why_size, "\"%.100s\" is not a CORINE Level-3 name", item->valuestring);
            return EO_BAD_LABEL;
        }
        if (c >= 0) labels[c] = 1;
    }
    const cJSON *date = cJSON_GetObjectItemCaseSensitive(root, "acquisition_date");
    if (!cJSON_IsString(date)) {
        snprintf(why, why_size, "no \"acquisition_date\" string");
        return EO_BAD_DATE;
    }
    if (eo_parse_acquisition(date->valuestring, week, hour) != 0) {
        snprintf(why, why_size,
                 "acquisition_date \"%.60s\" is not \"YYYY-MM-DD hh:mm:ss\" or ISO "
                 "8601",
                 date->valuestring);
        return EO_BAD_DATE;
    }
    return EO_TILE_OK;
}

eo_bad_kind eo_ben_json_read(const char *path, uint8_t *labels, float *week, float *hour, char *why,
                             size_t why_size) {
    char *text = read_small_file(path);
    if (!text) {
        if (errno == ENOENT) {
            snprintf(why, why_size, "no %s", path);
            return EO_BAD_MISSING_JSON;
        }
        snprintf(why, why_size, "cannot read %s: %s", path, strerror(errno));
        return EO_BAD_JSON;
    }
    cJSON *root = cJSON_Parse(text);
    free(text);
    eo_bad_kind kind;
    if (!root) {
        snprintf(why, why_size, "%s does not parse", path);
        kind = EO_BAD_JSON;
    } else {
        kind = parse(root, labels, week, hour, why, why_size);
    }
    cJSON_Delete(root);
    return kind;
}
