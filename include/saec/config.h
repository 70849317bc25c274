/* The run configuration: one struct, one key table (host/base/config.c) that gives every key its
   type, default, range and help. Keys are the same in config.json and on the command line
   (`--d-in 64` sets `d_in`). */
#ifndef SAEC_CONFIG_H
#define SAEC_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#define SAEC_STR_MAX 512

/* The SAE variant and its timestep mode. The configuration keeps them as text (config.json and
   checkpoints hold the names); code compares these enums, parsed by the functions below (one
   home: host/base/config.c). */
typedef enum { SAE_TOPK = 0, SAE_BATCHTOPK, SAE_RELU, SAE_JUMPRELU, SAE_ATM } sae_arch;

/* How the encoding depends on the timestep (SPEC §6). */
typedef enum { SAE_TS_NONE = 0, SAE_TS_BUCKET, SAE_TS_ADALN, SAE_TS_SEPARATE } sae_ts_mode;

/* "topk" -> SAE_TOPK ...; -1 for an unknown name. */
int sae_arch_from_name(const char *name);
const char *sae_arch_name(sae_arch arch);
/* "none" -> SAE_TS_NONE ...; -1 for an unknown name ("auto" too: saec_config_timestep_mode
   resolves it). */
int sae_ts_mode_from_name(const char *name);
const char *sae_ts_mode_name(sae_ts_mode mode);

typedef struct {
    /* data */
    char data[SAEC_STR_MAX]; /* HDF5 file; "" = synthetic */
    char dataset[64];        /* dataset name inside the file */
    char synthetic[32];      /* auto | superposition | hierarchy | timestep | eo */
    int64_t eo_side;         /* eo: side of the synthetic tiles, pixels */
    int64_t d_in; /* input width; 0 = from the data (synthetic: 96); checked against a file */
    int64_t shuffle_rows; /* HDF5 shuffle window, rows */
    int64_t timesteps;    /* T: timesteps of the data lie in [0, T) (SPEC §6) */
    /* synthetic generator (SPEC §9) */
    int64_t syn_features;  /* F true features */
    double syn_l0;         /* mean features firing per token */
    double syn_power;      /* power-law exponent of the firing probabilities */
    double syn_noise;      /* σ of the isotropic noise */
    double syn_offset;     /* norm of the constant offset */
    int64_t syn_parents;   /* hierarchy: parent features */
    int64_t syn_children;  /* hierarchy: children per parent */
    double syn_child_prob; /* hierarchy: P(one child fires | parent fires) */
    double syn_t_width;    /* timestep: width σ of a feature's preferred t range, fraction of T */
    double syn_t_drift;    /* timestep: drift of the activation norm and offset with t */
    /* model */
    char model[16];  /* sae | moe-mae */
    char arch[32];   /* topk | batchtopk | relu | jumprelu | atm */
    int64_t latents; /* m */
    int64_t k;
    int64_t aux_k; /* 0 = d_in / 2 */
    double aux_alpha;
    int64_t dead_tokens;
    int64_t init_sample; /* rows for the geometric median and the scale */
    int64_t median_iters;
    /* timestep-aware SAE (SPEC §6) */
    char timestep_mode[16];   /* auto | none | bucket | adaln | separate */
    int64_t timestep_buckets; /* B */
    int64_t adaln_dim; /* adaln: width of the timestep embedding and of the MLP's hidden layer */
    /* variants (SPEC §2–5) */
    double l1_coef;                    /* relu, atm: λ of the norm-weighted L1 penalty */
    double sparsity_warmup;            /* relu, jumprelu, atm: λ warm-up, fraction of the steps */
    double jumprelu_l0_coef;           /* jumprelu: λ of the L0 penalty */
    double jumprelu_bandwidth;         /* jumprelu: ε of the straight-through estimator */
    double jumprelu_theta_init;        /* jumprelu: initial θ */
    double batchtopk_ema;              /* batchtopk: EMA rate of the inference threshold */
    int64_t batchtopk_threshold_start; /* batchtopk: step at which the EMA starts */
    double atm_beta;                   /* atm: EMA rate of the latent statistics */
    double atm_w_magnitude, atm_w_frequency, atm_w_contribution; /* atm: importance weights */
    double atm_c;                 /* atm: threshold θ = mean + c·std of the importances */
    double atm_rate;              /* atm: r in p = 1 − exp(−r (θ − I)/θ) */
    double atm_warmup;            /* atm: fraction of the steps before masking starts */
    char init_from[SAEC_STR_MAX]; /* saec run or SAELens/sparsify export to start from; "" = random
                                     init */
    /* MoE-MAE (SPEC §7; --model moe-mae) */
    int64_t moe_image, moe_patch, moe_top_k, moe_metadata;
    double moe_mask_ratio, moe_dropout, moe_balance_cv, moe_balance_weight, moe_visible_weight;
    int64_t moe_enc_dim, moe_enc_depth, moe_enc_heads, moe_enc_kv_groups, moe_enc_head_dim;
    int64_t moe_dec_dim, moe_dec_depth, moe_dec_heads, moe_dec_kv_groups, moe_dec_head_dim;
    char moe_enc_experts[128], moe_enc_hidden[256], moe_dec_experts[128], moe_dec_hidden[256];
    int64_t probe_tiles; /* the labelled tiles embedded and probed at the end of a run */
    double probe_c;      /* the probe's inverse regularisation; 0 = chosen on the train split */
    /* optimisation */
    int64_t steps;  /* 0 = derived from tokens */
    int64_t tokens; /* 0 = derived from steps */
    int64_t batch_size;
    double lr;
    int64_t warmup_steps;
    char lr_schedule[16]; /* constant | cosine | linear */
    double lr_end_ratio;  /* final lr / lr for cosine and linear decay */
    double beta1, beta2, eps;
    double weight_decay;
    double max_grad_norm;
    int64_t seed;
    /* run */
    char device[32];        /* auto | cpu | cuda | cuda:I */
    double comm_timeout;    /* data parallelism: seconds a rendezvous or collective may take */
    int64_t zero_stage;     /* data parallelism: 1 = shard the Adam moments over the ranks */
    char out[SAEC_STR_MAX]; /* run directory; "" = runs/<date-time> */
    int64_t log_every;
    int64_t checkpoint_every; /* steps; 0 = at the end (and on interrupt) only */
    int64_t keep_checkpoints; /* newest checkpoints kept in the run directory */
    int64_t stop_at_step;     /* stop resumably after this step; 0 = run to the end */
    int64_t eval_tokens;
} saec_config;

/* One key of the table. */
typedef enum { SAEC_KEY_INT, SAEC_KEY_FLOAT, SAEC_KEY_STRING, SAEC_KEY_CHOICE } saec_key_type;

typedef struct {
    const char *name;
    saec_key_type type;
    size_t offset;       /* into saec_config */
    size_t size;         /* string capacity */
    const char *def;     /* default, as text */
    double min, max;     /* numeric range, inclusive */
    const char *choices; /* "a|b|c" for SAEC_KEY_CHOICE */
    const char *help;
} saec_config_key;

const saec_config_key *saec_config_keys(int *count);
const saec_config_key *saec_config_find_key(const char *name); /* accepts '-' for '_' */

void saec_config_defaults(saec_config *cfg);
/* Set one key from text. `where` names the source for messages ("command line", a file). */
int saec_config_set(saec_config *cfg, const char *key, const char *value, const char *where);
/* Apply a JSON object file of keys. Unknown keys, wrong types, out-of-range values fail with
   SAEC_ERR_USAGE naming the file and key. */
int saec_config_load_json(saec_config *cfg, const char *path);
/* Cross-key checks (k <= latents, ...) after all sources are applied. */
int saec_config_validate(const saec_config *cfg);
/* cfg->arch parsed (the key table admits only the known names). */
sae_arch saec_config_arch(const saec_config *cfg);
/* The timestep mode a run uses: timestep_mode parsed, with `auto` resolved to bucket for data
   with timesteps and none otherwise (train.c stores the resolved name back into the config). */
sae_ts_mode saec_config_timestep_mode(const saec_config *cfg, int data_has_timesteps);
/* Checks the (resolved) timestep mode against the data, once the data is open: bucket, adaln and
   separate need data with timesteps, and separate latents a multiple of timestep_buckets (and
   k <= latents / timestep_buckets for topk, batchtopk).
   SAEC_ERR_USAGE with a hint otherwise. */
int saec_config_check_timestep_mode(const saec_config *cfg, int data_has_timesteps);
/* Replace automatic values by the effective ones (beta1 = -1: the variant's default), so that
   config.json records what the run used. */
void saec_config_resolve(saec_config *cfg);
/* The effective configuration as a JSON object text (malloc'd, caller frees). */
char *saec_config_to_json(const saec_config *cfg);
int saec_config_from_json_text(saec_config *cfg, const char *text, const char *where);
/* Value of a key as text into buf. */
void saec_config_get_text(const saec_config *cfg, const saec_config_key *key, char *buf,
                          size_t size);

#endif
