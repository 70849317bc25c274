/* libFuzzer harness: bytes as config JSON text, through saec_config_from_json_text (what
   `--config FILE` and a run's config.json go through). A text that is read is then checked and
   written back: saec_config_validate, the timestep-mode checks, saec_config_resolve, then
   saec_config_to_json, whose text must read back to the same value for every key. The same bytes
   are also given, as command-line text, to one key chosen by the first byte (saec_config_set).
   A refusal must be a usage error with a message; a broken invariant aborts. */
#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "saec/config.h"
#include "saec/saec.h"

static void fail(const char *what, const char *detail) {
    fprintf(stderr, "fuzz_config: invariant broken: %s%s%s\n", what, detail ? ": " : "",
            detail ? detail : "");
    abort();
}

static void expect_refusal(int rc, const char *what) {
    if (rc == SAEC_OK) return;
    if (rc != SAEC_ERR_USAGE) fail(what, "refused with an error other than a usage error");
    if (saec_error_code() != rc || saec_error_message()[0] == '\0')
        fail(what, "refused without a message");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *text = malloc(size + 1);
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = '\0';

    saec_config cfg;
    saec_config_defaults(&cfg);
    saec_error_clear();
    int rc = saec_config_from_json_text(&cfg, text, "fuzz");
    expect_refusal(rc, "saec_config_from_json_text");
    saec_error_clear();
    if (rc == SAEC_OK) {
        expect_refusal(saec_config_validate(&cfg), "saec_config_validate");
        saec_error_clear();
        for (int has_t = 0; has_t < 2; has_t++) {
            const sae_ts_mode mode = saec_config_timestep_mode(&cfg, has_t);
            if ((int)mode < 0 || (int)mode > (int)SAE_TS_SEPARATE) fail("no timestep mode", NULL);
            /* Its cross-key arithmetic (latents % buckets) needs validated ranges only. */
            expect_refusal(saec_config_check_timestep_mode(&cfg, has_t),
                           "saec_config_check_timestep_mode");
            saec_error_clear();
        }
        /* Every text value taken is kept whole (the last of a repeated key wins). */
        cJSON *root = cJSON_Parse(text);
        if (!root) fail("saec took a text cJSON does not parse", NULL);
        int n_keys = 0;
        const saec_config_key *keys = saec_config_keys(&n_keys);
        for (int i = 0; i < n_keys; i++) {
            if (keys[i].type != SAEC_KEY_STRING && keys[i].type != SAEC_KEY_CHOICE) continue;
            const cJSON *last = NULL;
            for (const cJSON *m = root->child; m; m = m->next)
                if (m->string && saec_config_find_key(m->string) == &keys[i]) last = m;
            if (last && (!cJSON_IsString(last) ||
                         strcmp((const char *)&cfg + keys[i].offset, last->valuestring) != 0))
                fail("a text value was not kept whole", keys[i].name);
        }
        cJSON_Delete(root);
        saec_config_resolve(&cfg);

        /* What a run writes as config.json reads back to the same configuration. */
        char *json = saec_config_to_json(&cfg);
        if (json) {
            saec_config back;
            saec_config_defaults(&back);
            if (saec_config_from_json_text(&back, json, "round trip") != SAEC_OK)
                fail("saec_config_to_json's text does not read back", saec_error_message());
            for (int i = 0; i < n_keys; i++) {
                char a[SAEC_STR_MAX + 32], b[SAEC_STR_MAX + 32];
                saec_config_get_text(&cfg, &keys[i], a, sizeof a);
                saec_config_get_text(&back, &keys[i], b, sizeof b);
                if (strcmp(a, b) != 0) fail("a key changes in the round trip", keys[i].name);
            }
            free(json);
            saec_error_clear();
        }
    }

    /* The bytes after the first as one key's command-line value. */
    if (size > 0) {
        int n_keys = 0;
        const saec_config_key *keys = saec_config_keys(&n_keys);
        const saec_config_key *key = &keys[data[0] % n_keys];
        saec_config_defaults(&cfg);
        saec_error_clear();
        rc = saec_config_set(&cfg, key->name, text + 1, "fuzz");
        expect_refusal(rc, "saec_config_set");
        if (rc == SAEC_OK) {
            /* A value taken is kept whole: a string key holds exactly what was given. */
            if ((key->type == SAEC_KEY_STRING || key->type == SAEC_KEY_CHOICE) &&
                strcmp((const char *)&cfg + key->offset, text + 1) != 0)
                fail("a string value was changed", key->name);
        }
        saec_error_clear();
    }
    free(text);
    return 0;
}
