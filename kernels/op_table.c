/* Completeness check of a backend's op table: a NULL entry is a missing op. */
#include <stddef.h>

#include "saec/ops.h"

const char *saec_op_table_first_missing(const saec_op_table *t) {
#define SAEC_REQUIRE_OP(name)                                                                      \
    if (!t->name) return #name;
    SAEC_REQUIRE_OP(alloc)
    SAEC_REQUIRE_OP(free)
    SAEC_REQUIRE_OP(upload)
    SAEC_REQUIRE_OP(download)
    SAEC_REQUIRE_OP(copy)
    SAEC_REQUIRE_OP(zero)
    SAEC_REQUIRE_OP(sync)
    SAEC_REQUIRE_OP(gemm)
    SAEC_REQUIRE_OP(scale_add_rows)
    SAEC_REQUIRE_OP(axpby)
    SAEC_REQUIRE_OP(col_sum)
    SAEC_REQUIRE_OP(relu)
    SAEC_REQUIRE_OP(relu_backward)
    SAEC_REQUIRE_OP(topk_rows)
    SAEC_REQUIRE_OP(sparse_decode)
    SAEC_REQUIRE_OP(sparse_row_dots)
    SAEC_REQUIRE_OP(sparse_outer_accum)
    SAEC_REQUIRE_OP(recon_loss_grad)
    SAEC_REQUIRE_OP(sum_squares)
    SAEC_REQUIRE_OP(count_positive)
    SAEC_REQUIRE_OP(project_rows_grad)
    SAEC_REQUIRE_OP(normalize_rows)
    SAEC_REQUIRE_OP(adamw)
    SAEC_REQUIRE_OP(track_fired)
    SAEC_REQUIRE_OP(geometric_median)
    SAEC_REQUIRE_OP(track_fired_dense)
    SAEC_REQUIRE_OP(batch_topk)
    SAEC_REQUIRE_OP(jumprelu)
    SAEC_REQUIRE_OP(jumprelu_backward)
    SAEC_REQUIRE_OP(l1_penalty)
    SAEC_REQUIRE_OP(atm_stats)
    SAEC_REQUIRE_OP(atm_mask)
    SAEC_REQUIRE_OP(scale_cols)
    SAEC_REQUIRE_OP(group_count)
    SAEC_REQUIRE_OP(exclusive_scan)
    SAEC_REQUIRE_OP(group_permute)
    SAEC_REQUIRE_OP(gather_rows)
    SAEC_REQUIRE_OP(scatter_rows)
    SAEC_REQUIRE_OP(grouped_gemm)
    SAEC_REQUIRE_OP(modulate_encode)
    SAEC_REQUIRE_OP(modulate_backward)
    SAEC_REQUIRE_OP(grouped_gemm_wgrad)
    SAEC_REQUIRE_OP(grouped_col_sum)
    SAEC_REQUIRE_OP(silu)
    SAEC_REQUIRE_OP(silu_backward)
    SAEC_REQUIRE_OP(recon_grad)
    SAEC_REQUIRE_OP(dead_latents_update)
#undef SAEC_REQUIRE_OP
    return NULL;
}
