/* The table of op cases: every migrated family's cases (op_case.h). */
#include "op_case.h"

const op_case *const op_cases[] = {
    /* dense (op_cases_dense.c) */
    &op_case_gemm,    &op_case_scale_add_rows, &op_case_axpby,
    &op_case_col_sum, &op_case_relu,           &op_case_relu_backward,
    /* selection, sparse codes, latent bookkeeping (op_cases_sparse.c) */
    &op_case_topk_rows, &op_case_topk_rows_masked, &op_case_topk_rows_large_k,
    &op_case_sparse_decode, &op_case_sparse_row_dots, &op_case_sparse_outer_accum,
    &op_case_track_fired, &op_case_track_fired_dense, &op_case_dead_latents_update};

const int op_cases_count = (int)(sizeof op_cases / sizeof op_cases[0]);
