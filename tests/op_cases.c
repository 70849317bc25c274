/* The table of op cases: every migrated family's cases (op_case.h). */
#include "op_case.h"

const op_case *const op_cases[] = {
    /* dense (op_cases_dense.c) */
    &op_case_gemm, &op_case_scale_add_rows, &op_case_axpby, &op_case_col_sum, &op_case_relu,
    &op_case_relu_backward,
    /* selection, sparse codes, latent bookkeeping (op_cases_sparse.c) */
    &op_case_topk_rows, &op_case_topk_rows_masked, &op_case_topk_rows_large_k,
    &op_case_sparse_decode, &op_case_sparse_row_dots, &op_case_sparse_outer_accum,
    &op_case_track_fired, &op_case_track_fired_dense, &op_case_dead_latents_update,
    /* reduce (op_cases_reduce.c) */
    &op_case_recon_loss_grad, &op_case_recon_grad, &op_case_recon_grad_after_loss,
    &op_case_sum_squares, &op_case_count_positive, &op_case_geometric_median,
    &op_case_project_rows_grad, &op_case_normalize_rows, &op_case_adamw,
    /* transformer pieces (op_cases_transformer.c) */
    &op_case_layernorm, &op_case_layernorm_backward, &op_case_swiglu, &op_case_swiglu_backward,
    &op_case_dropout, &op_case_patchify, &op_case_unpatchify, &op_case_patch_loss,
    &op_case_patch_mask, &op_case_patch_token_index, &op_case_attention,
    &op_case_attention_backward,
    /* grouping (op_cases_grouping.c) */
    &op_case_group_count, &op_case_exclusive_scan, &op_case_group_permute, &op_case_group_capacity,
    &op_case_gather_rows, &op_case_scatter_rows, &op_case_scatter_rows_backward,
    &op_case_grouped_gemm, &op_case_grouped_gemm_wgrad, &op_case_grouped_col_sum,
    &op_case_modulate_encode, &op_case_modulate_backward,
    /* SAE variants on dense codes, the small MLP (op_cases_variants.c) */
    &op_case_batch_topk, &op_case_jumprelu, &op_case_jumprelu_backward, &op_case_l1_penalty,
    &op_case_atm_stats, &op_case_atm_mask, &op_case_scale_cols, &op_case_silu,
    &op_case_silu_backward,
    /* the MoE router (op_cases_router.c) */
    &op_case_router_forward, &op_case_router_backward};

const int op_cases_count = (int)(sizeof op_cases / sizeof op_cases[0]);
