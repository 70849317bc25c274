/* A MoE-MAE run's figures, drawn from the records in its run directory:

     loss.png         the loss terms over steps, from metrics.jsonl (keys loss, masked, visible,
                      balance: those present), log-scale y when every value is positive;
     expert_load.png  one panel per MoE block (the encoder's, then the decoder's), each expert's
                      share of the block's routed items over steps and the uniform share 1/E,
                      from expert_load.jsonl: one record per logging step,
                        {"step": S, "blocks": [[f_0, ..., f_{E-1}], ...]}
                      with one array per block whose fractions sum to 1. Panels are titled
                      "encoder block i" / "decoder block j" when the record says how many
                      blocks are the encoder's ("encoder_blocks": 15, optional) or when there
                      are 17 blocks (SPEC §7's 15 + 2), else "block i".

   A missing or malformed file or line is SAEC_ERR_DATA naming the file and line; a run without
   expert_load.jsonl gets loss.png only, and a note on stderr. */
#ifndef SAEC_MOE_MAE_PLOTS_H
#define SAEC_MOE_MAE_PLOTS_H

int moe_mae_write_plots(const char *run_dir);

#endif
