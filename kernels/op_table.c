/* Completeness check of a backend's op table: a NULL entry is a missing op. The entries are
   those of include/saec/op_list.h, so a new op is checked without an edit here. */
#include <stddef.h>

#include "saec/ops.h"

const char *saec_op_table_first_missing(const saec_op_table *t) {
/* a NULL entry of either list is the missing op it names */
#define SAEC_REQUIRE_MEMORY_(ret, name, params)                                                    \
    if (!t->name) return #name;
#define SAEC_REQUIRE_OP_(ret, name, params, floor_params, floor_bytes, floor_flops)               \
    if (!t->name) return #name;
    SAEC_OP_MEMORY_LIST(SAEC_REQUIRE_MEMORY_)
    SAEC_OP_LIST(SAEC_REQUIRE_OP_)
#undef SAEC_REQUIRE_MEMORY_
#undef SAEC_REQUIRE_OP_
    return NULL;
}
