/* The configuration key table and its parsing: defaults, JSON files, command-line values. */
#include "saec/config.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fsutil.h"
#include "saec/saec.h"

#define OFF(field) offsetof(saec_config, field), sizeof(((saec_config *)0)->field)
#define BIG 9.0e18

/* name, type, offset/size, default, min, max, choices, help */
static const saec_config_key KEYS[] = {
    /* data */
    {"data", SAEC_KEY_STRING, OFF(data), "", 0, 0, NULL,
     "HDF5 activation file (SPEC §10); empty = synthetic data"},
    {"dataset", SAEC_KEY_STRING, OFF(dataset), "activations", 0, 0, NULL,
     "dataset name inside the HDF5 file"},
    {"synthetic", SAEC_KEY_CHOICE, OFF(synthetic), "auto", 0, 0,
     "auto|superposition|hierarchy|timestep|eo",
     "synthetic generator with ground truth (used when data is empty); auto = superposition for "
     "an SAE, eo for MoE-MAE; timestep: tokens carry a "
     "diffusion timestep t in [0, timesteps); eo: 7-band Earth-observation tiles with metadata "
     "and land-cover labels (MoE-MAE's data)"},
    {"eo_side", SAEC_KEY_INT, OFF(eo_side), "40", 4, 256, NULL,
     "eo: side of the synthetic tiles in pixels"},
    {"d_in", SAEC_KEY_INT, OFF(d_in), "0", 0, 1 << 20, NULL,
     "input width; 0 = from the data (synthetic default 96)"},
    {"shuffle_rows", SAEC_KEY_INT, OFF(shuffle_rows), "65536", 1, BIG, NULL,
     "rows shuffled together when streaming an HDF5 file"},
    {"timesteps", SAEC_KEY_INT, OFF(timesteps), "1000", 1, 1 << 30, NULL,
     "T: the data's timesteps lie in [0, T) (the diffusion schedule's length)"},
    {"syn_features", SAEC_KEY_INT, OFF(syn_features), "256", 1, 1 << 24, NULL,
     "synthetic: number of true features F"},
    {"syn_l0", SAEC_KEY_FLOAT, OFF(syn_l0), "5", 0.01, 1e6, NULL,
     "synthetic: mean number of true features firing per token"},
    {"syn_power", SAEC_KEY_FLOAT, OFF(syn_power), "0.5", 0, 10, NULL,
     "synthetic: power-law exponent of the firing probabilities"},
    {"syn_noise", SAEC_KEY_FLOAT, OFF(syn_noise), "0.02", 0, 100, NULL,
     "synthetic: standard deviation of the isotropic noise"},
    {"syn_offset", SAEC_KEY_FLOAT, OFF(syn_offset), "1", 0, 1e6, NULL,
     "synthetic: norm of the constant offset vector"},
    {"syn_parents", SAEC_KEY_INT, OFF(syn_parents), "16", 1, 1 << 20, NULL,
     "synthetic hierarchy: number of parent features"},
    {"syn_children", SAEC_KEY_INT, OFF(syn_children), "4", 1, 1 << 10, NULL,
     "synthetic hierarchy: children per parent"},
    {"syn_child_prob", SAEC_KEY_FLOAT, OFF(syn_child_prob), "0.5", 0, 1, NULL,
     "synthetic hierarchy: P(one of its children fires | a parent fires)"},
    {"syn_t_width", SAEC_KEY_FLOAT, OFF(syn_t_width), "0.15", 0.01, 100, NULL,
     "synthetic timestep: width (σ of a Gaussian bump) of a feature's preferred t range, as a "
     "fraction of timesteps"},
    {"syn_t_drift", SAEC_KEY_FLOAT, OFF(syn_t_drift), "0.5", 0, 1.9, NULL,
     "synthetic timestep: the features' norm scales by 1 + drift·(t/T − 0.5), the offset by "
     "1 − drift·(t/T − 0.5)"},
    /* model */
    {"model", SAEC_KEY_CHOICE, OFF(model), "sae", 0, 0, "sae|moe-mae",
     "what is trained: a sparse autoencoder on activations, or the MoE-MAE on EO images (SPEC "
     "§7)"},
    {"arch", SAEC_KEY_CHOICE, OFF(arch), "topk", 0, 0, "topk|batchtopk|relu|jumprelu|atm",
     "SAE variant (SPEC §2–5)"},
    {"latents", SAEC_KEY_INT, OFF(latents), "512", 1, 1 << 26, NULL, "dictionary size m"},
    {"k", SAEC_KEY_INT, OFF(k), "8", 1, 1 << 20, NULL, "active latents per token (TopK)"},
    {"aux_k", SAEC_KEY_INT, OFF(aux_k), "0", 0, 1 << 20, NULL,
     "AuxK: dead latents used to model the residual; 0 = d_in / 2"},
    {"aux_alpha", SAEC_KEY_FLOAT, OFF(aux_alpha), "0.03125", 0, 1e3, NULL, "AuxK loss weight"},
    {"dead_tokens", SAEC_KEY_INT, OFF(dead_tokens), "10000000", 1, BIG, NULL,
     "a latent is dead after this many tokens without firing (capped at the run's length)"},
    {"init_sample", SAEC_KEY_INT, OFF(init_sample), "4096", 16, 1 << 24, NULL,
     "rows used for the geometric median b_dec, the mean and the scale s"},
    {"median_iters", SAEC_KEY_INT, OFF(median_iters), "100", 0, 100000, NULL,
     "Weiszfeld iterations for the geometric median"},
    {"timestep_mode", SAEC_KEY_CHOICE, OFF(timestep_mode), "auto", 0, 0,
     "auto|none|bucket|adaln|separate",
     "timestep-aware encoding (SPEC §6): auto = bucket for data with timesteps, none otherwise; "
     "bucket = per-bucket scale and shift of the encoder input; adaln = scale and shift from an "
     "MLP on a sinusoidal embedding of t; separate = one SAE of latents/B latents per bucket"},
    {"timestep_buckets", SAEC_KEY_INT, OFF(timestep_buckets), "10", 1, 1 << 20, NULL,
     "B: timestep buckets b(t) = floor(t·B/T), at most timesteps"},
    {"adaln_dim", SAEC_KEY_INT, OFF(adaln_dim), "64", 2, 4096, NULL,
     "adaln: width of the sinusoidal timestep embedding and of the MLP's hidden layer (even)"},
    {"l1_coef", SAEC_KEY_FLOAT, OFF(l1_coef), "0.03", 0, 1e6, NULL,
     "relu, atm: weight λ of the L1 penalty mean_tokens Σ f_i ‖W_dec,i‖ (larger = sparser)"},
    {"sparsity_warmup", SAEC_KEY_FLOAT, OFF(sparsity_warmup), "0.05", 0, 1, NULL,
     "relu, jumprelu, atm: the penalty weight rises linearly over this fraction of the steps"},
    {"jumprelu_l0_coef", SAEC_KEY_FLOAT, OFF(jumprelu_l0_coef), "0.01", 0, 1e6, NULL,
     "jumprelu: weight λ of the L0 penalty mean_tokens Σ H(pre_i − θ_i) (larger = sparser)"},
    {"jumprelu_bandwidth", SAEC_KEY_FLOAT, OFF(jumprelu_bandwidth), "0.001", 1e-12, 1e6, NULL,
     "jumprelu: bandwidth ε of the straight-through rectangle kernel"},
    {"jumprelu_theta_init", SAEC_KEY_FLOAT, OFF(jumprelu_theta_init), "0.001", 1e-12, 1e6, NULL,
     "jumprelu: initial threshold θ (normalised units)"},
    {"batchtopk_ema", SAEC_KEY_FLOAT, OFF(batchtopk_ema), "0.999", 0, 1, NULL,
     "batchtopk: EMA rate of the inference threshold (smallest kept value per batch)"},
    {"batchtopk_threshold_start", SAEC_KEY_INT, OFF(batchtopk_threshold_start), "1000", 0, BIG,
     NULL, "batchtopk: step after which the inference threshold is tracked"},
    {"atm_beta", SAEC_KEY_FLOAT, OFF(atm_beta), "0.99", 0, 1, NULL,
     "atm: EMA rate of the per-latent statistics (engine choice)"},
    {"atm_w_magnitude", SAEC_KEY_FLOAT, OFF(atm_w_magnitude), "0.3333333333333333", 0, 1e6, NULL,
     "atm: importance weight of the mean activation"},
    {"atm_w_frequency", SAEC_KEY_FLOAT, OFF(atm_w_frequency), "0.3333333333333333", 0, 1e6, NULL,
     "atm: importance weight of the firing frequency"},
    {"atm_w_contribution", SAEC_KEY_FLOAT, OFF(atm_w_contribution), "0.3333333333333333", 0, 1e6,
     NULL, "atm: importance weight of the reconstruction contribution"},
    {"atm_c", SAEC_KEY_FLOAT, OFF(atm_c), "0", -1e6, 1e6, NULL,
     "atm: masking threshold θ = mean + c·std of the importances (engine choice)"},
    {"atm_rate", SAEC_KEY_FLOAT, OFF(atm_rate), "1", 0, 1e6, NULL,
     "atm: masking probability 1 − exp(−rate·(θ − I)/θ) below the threshold (engine choice)"},
    {"atm_warmup", SAEC_KEY_FLOAT, OFF(atm_warmup), "0.1", 0, 1, NULL,
     "atm: fraction of the steps that only gather statistics before masking starts"},
    {"init_from", SAEC_KEY_STRING, OFF(init_from), "", 0, 0, NULL,
     "initialise weights from a saec run or a SAELens/sparsify export instead of random init"},
    /* MoE-MAE (SPEC §7) */
    {"moe_image", SAEC_KEY_INT, OFF(moe_image), "40", 1, 4096, NULL,
     "moe-mae: the image side the model takes (patches on a moe_image/moe_patch grid; a larger "
     "tile loses its rows and columns past the grid)"},
    {"moe_patch", SAEC_KEY_INT, OFF(moe_patch), "4", 1, 256, NULL, "moe-mae: patch side"},
    {"moe_mask_ratio", SAEC_KEY_FLOAT, OFF(moe_mask_ratio), "0.75", 0, 0.999, NULL,
     "moe-mae: fraction of the patches hidden from the encoder"},
    {"moe_top_k", SAEC_KEY_INT, OFF(moe_top_k), "2", 1, 8, NULL, "moe-mae: experts per token"},
    {"moe_dropout", SAEC_KEY_FLOAT, OFF(moe_dropout), "0.1", 0, 0.99, NULL,
     "moe-mae: dropout on each expert's output (training)"},
    {"moe_balance_cv", SAEC_KEY_FLOAT, OFF(moe_balance_cv), "0.01", 0, 1e6, NULL,
     "moe-mae: weight of each CV term (importance, load) of a block's balance loss"},
    {"moe_balance_weight", SAEC_KEY_FLOAT, OFF(moe_balance_weight), "0.5", 0, 1e6, NULL,
     "moe-mae: weight of the encoder blocks' summed balance losses in the loss"},
    {"moe_visible_weight", SAEC_KEY_FLOAT, OFF(moe_visible_weight), "0.1", 0, 1e6, NULL,
     "moe-mae: weight of the visible patches' reconstruction term"},
    {"moe_metadata", SAEC_KEY_INT, OFF(moe_metadata), "1", 0, 1, NULL,
     "moe-mae: 0 zeroes every metadata input (the ablation of metadata-aware pretraining)"},
    {"moe_enc_dim", SAEC_KEY_INT, OFF(moe_enc_dim), "144", 1, 1 << 16, NULL,
     "moe-mae: encoder width"},
    {"moe_enc_depth", SAEC_KEY_INT, OFF(moe_enc_depth), "15", 1, 32, NULL,
     "moe-mae: encoder blocks"},
    {"moe_enc_heads", SAEC_KEY_INT, OFF(moe_enc_heads), "8", 1, 256, NULL,
     "moe-mae: encoder query heads"},
    {"moe_enc_kv_groups", SAEC_KEY_INT, OFF(moe_enc_kv_groups), "4", 1, 256, NULL,
     "moe-mae: encoder key/value groups (query head h reads group h mod groups)"},
    {"moe_enc_head_dim", SAEC_KEY_INT, OFF(moe_enc_head_dim), "18", 1, 64, NULL,
     "moe-mae: encoder head width"},
    {"moe_enc_experts", SAEC_KEY_STRING, OFF(moe_enc_experts), "3,3,3,3,3,4,4,4,4,4,5,5,5,5,5", 0,
     0, NULL, "moe-mae: experts per encoder block, comma-separated (one value: every block)"},
    {"moe_enc_hidden", SAEC_KEY_STRING, OFF(moe_enc_hidden), "", 0, 0, NULL,
     "moe-mae: expert hidden width per encoder block, comma-separated; empty = int(dim − "
     "dim/2·i/(depth − 1)) (SPEC: 144 .. 72)"},
    {"moe_dec_dim", SAEC_KEY_INT, OFF(moe_dec_dim), "108", 1, 1 << 16, NULL,
     "moe-mae: decoder width"},
    {"moe_dec_depth", SAEC_KEY_INT, OFF(moe_dec_depth), "2", 1, 32, NULL,
     "moe-mae: decoder blocks"},
    {"moe_dec_heads", SAEC_KEY_INT, OFF(moe_dec_heads), "6", 1, 256, NULL,
     "moe-mae: decoder query heads"},
    {"moe_dec_kv_groups", SAEC_KEY_INT, OFF(moe_dec_kv_groups), "3", 1, 256, NULL,
     "moe-mae: decoder key/value groups"},
    {"moe_dec_head_dim", SAEC_KEY_INT, OFF(moe_dec_head_dim), "18", 1, 64, NULL,
     "moe-mae: decoder head width"},
    {"moe_dec_experts", SAEC_KEY_STRING, OFF(moe_dec_experts), "3", 0, 0, NULL,
     "moe-mae: experts per decoder block (comma-separated, or one value for every block)"},
    {"moe_dec_hidden", SAEC_KEY_STRING, OFF(moe_dec_hidden), "54", 0, 0, NULL,
     "moe-mae: expert hidden width per decoder block (comma-separated, or one value)"},
    {"probe_tiles", SAEC_KEY_INT, OFF(probe_tiles), "3000", 0, 1 << 24, NULL,
     "moe-mae: labelled tiles embedded and probed at the end of a run on synthetic data (60% "
     "train, 20% val, 20% test; a file's own split otherwise); 0 = no probe"},
    {"probe_c", SAEC_KEY_FLOAT, OFF(probe_c), "0", 0, 1e6, NULL,
     "moe-mae: the probe's inverse L2 regularisation C; 0 = chosen on the train split"},
    /* optimisation */
    {"steps", SAEC_KEY_INT, OFF(steps), "0", 0, BIG, NULL,
     "training steps; 0 = tokens / batch_size (default 3000 steps when both are 0)"},
    {"tokens", SAEC_KEY_INT, OFF(tokens), "0", 0, BIG, NULL,
     "training tokens (alternative to steps)"},
    {"batch_size", SAEC_KEY_INT, OFF(batch_size), "0", 0, 1 << 24, NULL,
     "rows per step on each rank (tokens; moe-mae: tiles); 0 = the model's default (sae 1024, "
     "moe-mae 128)"},
    {"lr", SAEC_KEY_FLOAT, OFF(lr), "-1", -1, 10, NULL,
     "peak learning rate; -1 = the model's default (sae 0.002, moe-mae 3e-4)"},
    {"warmup_steps", SAEC_KEY_INT, OFF(warmup_steps), "-1", -1, BIG, NULL,
     "linear learning-rate warm-up steps; -1 = the model's default (sae 100, moe-mae 5% of the "
     "steps)"},
    {"lr_schedule", SAEC_KEY_CHOICE, OFF(lr_schedule), "cosine", 0, 0, "constant|cosine|linear",
     "learning-rate decay after warm-up"},
    {"lr_end_ratio", SAEC_KEY_FLOAT, OFF(lr_end_ratio), "-1", -1, 1, NULL,
     "final learning rate as a fraction of lr (cosine, linear); -1 = the model's default (sae "
     "0.1, moe-mae 0)"},
    {"beta1", SAEC_KEY_FLOAT, OFF(beta1), "-1", -1, 0.999999, NULL,
     "Adam β1; -1 = the variant's default (0.9; 0 for jumprelu)"},
    {"beta2", SAEC_KEY_FLOAT, OFF(beta2), "0.999", 0, 0.9999999, NULL, "Adam β2"},
    {"eps", SAEC_KEY_FLOAT, OFF(eps), "1e-8", 1e-30, 1, NULL, "Adam ε"},
    {"weight_decay", SAEC_KEY_FLOAT, OFF(weight_decay), "-1", -1, 10, NULL,
     "AdamW decoupled weight decay; -1 = the model's default (sae 0, moe-mae 0.05 on every "
     "parameter)"},
    {"max_grad_norm", SAEC_KEY_FLOAT, OFF(max_grad_norm), "1", 0, 1e12, NULL,
     "clip the global gradient norm; 0 = no clipping"},
    {"seed", SAEC_KEY_INT, OFF(seed), "0", 0, BIG, NULL, "seed of every random choice"},
    /* run */
    {"device", SAEC_KEY_STRING, OFF(device), "auto", 0, 0, NULL, "auto | cpu | cuda | cuda:I"},
    {"comm_timeout", SAEC_KEY_FLOAT, OFF(comm_timeout), "300", 1, 1e6, NULL,
     "data parallelism: seconds a rendezvous or a collective may take before every rank exits "
     "with an error (the SAEC_COMM_TIMEOUT environment variable overrides it)"},
    {"zero_stage", SAEC_KEY_INT, OFF(zero_stage), "0", 0, 1, NULL,
     "data parallelism: 1 shards the Adam moments over the ranks (ZeRO-1: each rank keeps and "
     "updates 1/world of them, then the parameters are all-gathered); 0 keeps them whole on "
     "every rank. Same result either way; checkpoints hold the whole state"},
    {"out", SAEC_KEY_STRING, OFF(out), "", 0, 0, NULL, "run directory; empty = runs/<date-time>"},
    {"log_every", SAEC_KEY_INT, OFF(log_every), "100", 1, BIG, NULL,
     "steps between progress lines and metrics.jsonl records"},
    {"checkpoint_every", SAEC_KEY_INT, OFF(checkpoint_every), "0", 0, BIG, NULL,
     "steps between checkpoints; 0 = at the end and on interrupt only"},
    {"keep_checkpoints", SAEC_KEY_INT, OFF(keep_checkpoints), "2", 1, BIG, NULL,
     "checkpoints kept in the run directory (the newest ones; a damaged newest one falls back "
     "to the previous one on resume)"},
    {"stop_at_step", SAEC_KEY_INT, OFF(stop_at_step), "0", 0, BIG, NULL,
     "stop after this step with a resumable checkpoint (time-limited jobs); 0 = run to the end"},
    {"eval_tokens", SAEC_KEY_INT, OFF(eval_tokens), "65536", 1, BIG, NULL,
     "held-out tokens evaluated for summary.json"},
};

#define N_KEYS ((int)(sizeof KEYS / sizeof KEYS[0]))

const saec_config_key *saec_config_keys(int *count) {
    *count = N_KEYS;
    return KEYS;
}

/* Compare key names treating '-' and '_' alike. */
static int key_name_eq(const char *a, const char *b) {
    for (; *a && *b; a++, b++) {
        char ca = *a == '-' ? '_' : *a, cb = *b == '-' ? '_' : *b;
        if (ca != cb) return 0;
    }
    return *a == *b;
}

const saec_config_key *saec_config_find_key(const char *name) {
    for (int i = 0; i < N_KEYS; i++)
        if (key_name_eq(KEYS[i].name, name)) return &KEYS[i];
    return NULL;
}

/* Edit distance, for "did you mean" hints. */
static int edit_distance(const char *a, const char *b) {
    int la = (int)strlen(a), lb = (int)strlen(b);
    if (la > 63 || lb > 63) return 99;
    int prev[64], cur[64];
    for (int j = 0; j <= lb; j++)
        prev[j] = j;
    for (int i = 1; i <= la; i++) {
        cur[0] = i;
        for (int j = 1; j <= lb; j++) {
            char ca = a[i - 1] == '-' ? '_' : a[i - 1], cb = b[j - 1] == '-' ? '_' : b[j - 1];
            int best = prev[j - 1] + (ca != cb);
            if (prev[j] + 1 < best) best = prev[j] + 1;
            if (cur[j - 1] + 1 < best) best = cur[j - 1] + 1;
            cur[j] = best;
        }
        memcpy(prev, cur, sizeof(int) * (size_t)(lb + 1));
    }
    return prev[lb];
}

static int unknown_key(const char *key, const char *where) {
    const char *best = NULL;
    int best_d = 4;
    for (int i = 0; i < N_KEYS; i++) {
        int dist = edit_distance(key, KEYS[i].name);
        if (dist < best_d) best_d = dist, best = KEYS[i].name;
    }
    char hint[160];
    if (best)
        snprintf(hint, sizeof hint, "did you mean '%s'? 'saec train --help' lists every key", best);
    else
        snprintf(hint, sizeof hint, "'saec train --help' lists every key");
    return saec_fail(SAEC_ERR_USAGE, hint, "unknown config key '%s' (%s)", key, where);
}

static int choice_ok(const char *choices, const char *value) {
    size_t len = strlen(value);
    for (const char *p = choices; *p;) {
        const char *bar = strchr(p, '|');
        size_t n = bar ? (size_t)(bar - p) : strlen(p);
        if (n == len && strncmp(p, value, n) == 0) return 1;
        if (!bar) break;
        p = bar + 1;
    }
    return 0;
}

static int set_string(const saec_config_key *key, char *base, const char *value,
                      const char *where) {
    if (strlen(value) >= key->size)
        return saec_fail(SAEC_ERR_USAGE, "use a shorter value",
                         "config key '%s' is too long (%zu characters, at most %zu) (%s)",
                         key->name, strlen(value), key->size - 1, where);
    memcpy(base, value, strlen(value) + 1);
    return SAEC_OK;
}

static int set_key(saec_config *cfg, const saec_config_key *key, const char *value,
                   const char *where) {
    char *base = (char *)cfg + key->offset;
    char hint[256];
    switch (key->type) {
    case SAEC_KEY_INT: {
        errno = 0;
        char *end = NULL;
        double v = strtod(value, &end); /* accepts 1e6 as well as 1000000 */
        while (end && isspace((unsigned char)*end))
            end++;
        if (errno || end == value || *end != '\0' || v != floor(v))
            return saec_fail(SAEC_ERR_USAGE, "give a whole number",
                             "config key '%s' expects an integer, got '%s' (%s)", key->name, value,
                             where);
        if (v < key->min || v > key->max) {
            snprintf(hint, sizeof hint, "allowed range: %.0f to %.0f", key->min, key->max);
            return saec_fail(SAEC_ERR_USAGE, hint, "config key '%s' = %s is out of range (%s)",
                             key->name, value, where);
        }
        *(int64_t *)base = (int64_t)v;
        return SAEC_OK;
    }
    case SAEC_KEY_FLOAT: {
        errno = 0;
        char *end = NULL;
        double v = strtod(value, &end);
        while (end && isspace((unsigned char)*end))
            end++;
        if (errno || end == value || *end != '\0' || !isfinite(v))
            return saec_fail(SAEC_ERR_USAGE, "give a finite number",
                             "config key '%s' expects a number, got '%s' (%s)", key->name, value,
                             where);
        if (v < key->min || v > key->max) {
            snprintf(hint, sizeof hint, "allowed range: %g to %g", key->min, key->max);
            return saec_fail(SAEC_ERR_USAGE, hint, "config key '%s' = %s is out of range (%s)",
                             key->name, value, where);
        }
        *(double *)base = v;
        return SAEC_OK;
    }
    case SAEC_KEY_CHOICE:
        if (!choice_ok(key->choices, value)) {
            snprintf(hint, sizeof hint, "choose one of: %s", key->choices);
            return saec_fail(SAEC_ERR_USAGE, hint, "config key '%s' = '%s' is not supported (%s)",
                             key->name, value, where);
        }
        return set_string(key, base, value, where);
    case SAEC_KEY_STRING: return set_string(key, base, value, where);
    }
    return SAEC_OK;
}

int saec_config_set(saec_config *cfg, const char *key_name, const char *value, const char *where) {
    const saec_config_key *key = saec_config_find_key(key_name);
    if (!key) return unknown_key(key_name, where);
    return set_key(cfg, key, value, where);
}

void saec_config_defaults(saec_config *cfg) {
    memset(cfg, 0, sizeof *cfg);
    for (int i = 0; i < N_KEYS; i++)
        set_key(cfg, &KEYS[i], KEYS[i].def, "defaults");
}

void saec_config_get_text(const saec_config *cfg, const saec_config_key *key, char *buf,
                          size_t size) {
    const char *base = (const char *)cfg + key->offset;
    switch (key->type) {
    case SAEC_KEY_INT: snprintf(buf, size, "%lld", (long long)*(const int64_t *)base); break;
    case SAEC_KEY_FLOAT: snprintf(buf, size, "%.17g", *(const double *)base); break;
    default: snprintf(buf, size, "%s", base); break;
    }
}

/* Apply the members of a parsed JSON object. */
static int apply_json_object(saec_config *cfg, const cJSON *root, const char *where) {
    if (!cJSON_IsObject(root))
        return saec_fail(SAEC_ERR_USAGE, "a config file holds one JSON object of keys",
                         "config is not a JSON object (%s)", where);
    for (const cJSON *item = root->child; item; item = item->next) {
        /* A run's config.json records the device it ran on by name; not a setting. */
        if (strcmp(item->string, "device_name") == 0) continue;
        const saec_config_key *key = saec_config_find_key(item->string);
        if (!key) return unknown_key(item->string, where);
        char text[SAEC_STR_MAX];
        if (cJSON_IsString(item)) {
            if (key->type == SAEC_KEY_INT || key->type == SAEC_KEY_FLOAT)
                return saec_fail(SAEC_ERR_USAGE, "write numbers without quotes",
                                 "config key '%s' expects a number, got a string (%s)",
                                 item->string, where);
            /* The value itself, not a copy into text[]: a copy cut values of 512 characters or
               more to 511, which were then taken (fuzz/fuzz_config.c checks it). */
            SAEC_TRY(set_key(cfg, key, item->valuestring, where));
            continue;
        } else if (cJSON_IsNumber(item)) {
            if (key->type == SAEC_KEY_STRING || key->type == SAEC_KEY_CHOICE)
                return saec_fail(SAEC_ERR_USAGE, "write text values in quotes",
                                 "config key '%s' expects text, got a number (%s)", item->string,
                                 where);
            snprintf(text, sizeof text, "%.17g", item->valuedouble);
        } else {
            return saec_fail(SAEC_ERR_USAGE, "values are numbers or strings",
                             "config key '%s' has an unsupported JSON type (%s)", item->string,
                             where);
        }
        SAEC_TRY(set_key(cfg, key, text, where));
    }
    return SAEC_OK;
}

int saec_config_from_json_text(saec_config *cfg, const char *text, const char *where) {
    cJSON *root = cJSON_Parse(text);
    if (!root) {
        const char *at = cJSON_GetErrorPtr();
        if (!at || !*at)
            return saec_fail(SAEC_ERR_USAGE, "the JSON text ends early: check brackets and commas",
                             "cannot parse config JSON (%s): unexpected end", where);
        return saec_fail(SAEC_ERR_USAGE, "check the JSON syntax at the position shown",
                         "cannot parse config JSON (%s) near '%.20s'", where, at);
    }
    int rc = apply_json_object(cfg, root, where);
    cJSON_Delete(root);
    return rc;
}

int saec_config_load_json(saec_config *cfg, const char *path) {
    char *text = NULL;
    size_t len = 0;
    if (saec_read_file(path, &text, &len) != SAEC_OK) {
        /* A missing config file is a usage error, not a data error. */
        saec_error_clear();
        return saec_fail(SAEC_ERR_USAGE, "check the path given to --config",
                         "cannot read config file '%s'", path);
    }
    char where[SAEC_STR_MAX + 16];
    snprintf(where, sizeof where, "in %s", path);
    int rc = saec_config_from_json_text(cfg, text, where);
    free(text);
    return rc;
}

int saec_config_validate(const saec_config *cfg) {
    if (cfg->k > cfg->latents)
        return saec_fail(SAEC_ERR_USAGE,
                         "k is the number of active latents: lower k or raise latents",
                         "config key 'k' = %lld exceeds 'latents' = %lld", (long long)cfg->k,
                         (long long)cfg->latents);
    if (cfg->beta1 < 0 && cfg->beta1 != -1)
        return saec_fail(SAEC_ERR_USAGE, "give a value in [0, 1), or -1 for the variant's default",
                         "config key 'beta1' = %g is out of range", cfg->beta1);
    const struct {
        const char *key;
        double value;
    } model_default[] = {{"lr", cfg->lr},
                         {"warmup_steps", (double)cfg->warmup_steps},
                         {"lr_end_ratio", cfg->lr_end_ratio},
                         {"weight_decay", cfg->weight_decay}};
    for (size_t i = 0; i < sizeof model_default / sizeof model_default[0]; i++)
        if (model_default[i].value < 0 && model_default[i].value != -1)
            return saec_fail(SAEC_ERR_USAGE, "give a value >= 0, or -1 for the model's default",
                             "config key '%s' = %g is out of range", model_default[i].key,
                             model_default[i].value);
    if (!strcmp(cfg->model, "moe-mae") && strcmp(cfg->synthetic, "eo") &&
        strcmp(cfg->synthetic, "auto") && !cfg->data[0])
        return saec_fail(SAEC_ERR_USAGE,
                         "MoE-MAE trains on EO images: --synthetic eo, or --data FILE.h5 in the EO "
                         "layout (saec gen eo, saec import geotiff)",
                         "config key 'synthetic' = '%s' is activation data", cfg->synthetic);
    if (!strcmp(cfg->model, "sae") && !strcmp(cfg->synthetic, "eo") && !cfg->data[0])
        return saec_fail(SAEC_ERR_USAGE, "train it with --model moe-mae",
                         "config key 'synthetic' = 'eo' is image data, not activations");
    if (cfg->steps > 0 && cfg->tokens > 0)
        return saec_fail(SAEC_ERR_USAGE, "give either steps or tokens",
                         "config keys 'steps' and 'tokens' are both set");
    if (strcmp(cfg->device, "auto") != 0 && strcmp(cfg->device, "cpu") != 0 &&
        strncmp(cfg->device, "cuda", 4) != 0)
        return saec_fail(SAEC_ERR_USAGE, "use auto, cpu, cuda or cuda:I",
                         "config key 'device' = '%s' is not a device", cfg->device);
    if (cfg->adaln_dim % 2 != 0)
        return saec_fail(SAEC_ERR_USAGE, "use an even adaln_dim (sin and cos pairs), e.g. 64",
                         "config key 'adaln_dim' = %lld is odd", (long long)cfg->adaln_dim);
    if (cfg->timestep_buckets > cfg->timesteps)
        return saec_fail(SAEC_ERR_USAGE, "lower timestep_buckets or raise timesteps",
                         "config key 'timestep_buckets' = %lld exceeds 'timesteps' = %lld",
                         (long long)cfg->timestep_buckets, (long long)cfg->timesteps);
    return SAEC_OK;
}

/* In enum order; the key table's choices list the same names. */
static const char *const ARCH_NAMES[] = {"topk", "batchtopk", "relu", "jumprelu", "atm"};
static const char *const TS_MODE_NAMES[] = {"none", "bucket", "adaln", "separate"};

static int name_index(const char *const *names, int count, const char *name) {
    for (int i = 0; i < count; i++)
        if (strcmp(name, names[i]) == 0) return i;
    return -1;
}

int sae_arch_from_name(const char *name) {
    return name_index(ARCH_NAMES, (int)(sizeof ARCH_NAMES / sizeof ARCH_NAMES[0]), name);
}

const char *sae_arch_name(sae_arch arch) { return ARCH_NAMES[arch]; }

int sae_ts_mode_from_name(const char *name) {
    return name_index(TS_MODE_NAMES, (int)(sizeof TS_MODE_NAMES / sizeof TS_MODE_NAMES[0]), name);
}

const char *sae_ts_mode_name(sae_ts_mode mode) { return TS_MODE_NAMES[mode]; }

sae_arch saec_config_arch(const saec_config *cfg) {
    const int arch = sae_arch_from_name(cfg->arch);
    return arch < 0 ? SAE_TOPK : (sae_arch)arch;
}

sae_ts_mode saec_config_timestep_mode(const saec_config *cfg, int data_has_timesteps) {
    const int mode = sae_ts_mode_from_name(cfg->timestep_mode);
    if (mode >= 0) return (sae_ts_mode)mode;
    return data_has_timesteps ? SAE_TS_BUCKET : SAE_TS_NONE; /* auto */
}

int saec_config_check_timestep_mode(const saec_config *cfg, int data_has_timesteps) {
    const sae_ts_mode mode = saec_config_timestep_mode(cfg, data_has_timesteps);
    if (mode == SAE_TS_SEPARATE) { /* B SAEs of latents/B latents each */
        const long long m = (long long)cfg->latents, B = (long long)cfg->timestep_buckets;
        if (m % B != 0) {
            char hint[160];
            snprintf(hint, sizeof hint,
                     "separate mode splits the latents evenly over the buckets: use --latents "
                     "%lld or %lld, or change --timestep-buckets",
                     m / B * B > 0 ? m / B * B : B, (m / B + 1) * B);
            return saec_fail(SAEC_ERR_USAGE, hint,
                             "config key 'latents' = %lld is not a multiple of "
                             "'timestep_buckets' = %lld",
                             m, B);
        }
        const sae_arch arch = saec_config_arch(cfg);
        const int uses_k = arch == SAE_TOPK || arch == SAE_BATCHTOPK;
        if (uses_k && cfg->k > m / B)
            return saec_fail(SAEC_ERR_USAGE, "lower k or raise latents",
                             "config key 'k' = %lld exceeds the %lld latents of each bucket's "
                             "SAE (separate mode: latents / timestep_buckets)",
                             (long long)cfg->k, m / B);
    }
    if (mode != SAE_TS_NONE && !data_has_timesteps)
        return saec_fail(SAEC_ERR_USAGE,
                         "use --synthetic timestep or a file with a 'timesteps' dataset, or "
                         "--timestep-mode none",
                         "timestep_mode '%s' needs data with timesteps, and this data has none",
                         sae_ts_mode_name(mode));
    return SAEC_OK;
}

void saec_config_resolve(saec_config *cfg) {
    if (cfg->beta1 < 0) cfg->beta1 = saec_config_arch(cfg) == SAE_JUMPRELU ? 0.0 : 0.9;
    /* the model's defaults (SPEC §7's training row for MoE-MAE); moe-mae's warm-up, 5% of the
       steps, is resolved by the training loop, which knows the steps */
    const int moe = !strcmp(cfg->model, "moe-mae");
    if (!strcmp(cfg->synthetic, "auto"))
        snprintf(cfg->synthetic, sizeof cfg->synthetic, "%s", moe ? "eo" : "superposition");
    if (cfg->batch_size <= 0) cfg->batch_size = moe ? 128 : 1024;
    if (cfg->lr < 0) cfg->lr = moe ? 3e-4 : 0.002;
    if (cfg->warmup_steps < 0 && !moe) cfg->warmup_steps = 100;
    if (cfg->lr_end_ratio < 0) cfg->lr_end_ratio = moe ? 0.0 : 0.1;
    if (cfg->weight_decay < 0) cfg->weight_decay = moe ? 0.05 : 0.0;
}

/* A finite double as the shortest of "%.15g", "%.16g", "%.17g" that reads back to the same
   value. cJSON's printer stops at 15 digits whenever they read back within an epsilon, so
   config.json held 0.3 for an lr of 0.30000000000000004 and a resumed or evaluated run read a
   different value (found by fuzz/fuzz_config.c's round trip). */
static void exact_number(char *buf, size_t size, double v) {
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, size, "%.*g", prec, v);
        if (strtod(buf, NULL) == v) return;
    }
}

char *saec_config_to_json(const saec_config *cfg) {
    cJSON *root = cJSON_CreateObject();
    for (int i = 0; i < N_KEYS; i++) {
        const saec_config_key *key = &KEYS[i];
        const char *base = (const char *)cfg + key->offset;
        char num[40];
        switch (key->type) {
        case SAEC_KEY_INT: /* every digit: a double would round integers beyond 2^53 */
            snprintf(num, sizeof num, "%lld", (long long)*(const int64_t *)base);
            cJSON_AddRawToObject(root, key->name, num);
            break;
        case SAEC_KEY_FLOAT:
            exact_number(num, sizeof num, *(const double *)base);
            cJSON_AddRawToObject(root, key->name, num);
            break;
        default: cJSON_AddStringToObject(root, key->name, base); break;
        }
    }
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    return text;
}
