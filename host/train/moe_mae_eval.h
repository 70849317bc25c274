/* The end of a MoE-MAE run (SPEC §7's evaluation): the frozen encoder's embeddings of a
 * labelled set, linear probes fit on its train split and scored on its test split, against two
 * baselines in the same report (the same encoder at its random initialisation, and per-band
 * pixel means), plus the run's plots (loss curves, expert load per block). */
#ifndef SAEC_MOE_MAE_EVAL_H
#define SAEC_MOE_MAE_EVAL_H

#include <cjson/cJSON.h>

#include "moe_mae_net.h"
#include "saec/config.h"

/* Adds "probe" to summary and writes the plots into dir. Rank 0 alone. */
int moe_mae_evaluate(moe_mae_net *net, const moe_mae_cfg *mcfg, const saec_config *cfg,
                     const char *dir, cJSON *summary);

#endif
