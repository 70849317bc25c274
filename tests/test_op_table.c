/* The op contract is complete: every backend's table fills every entry of saec_op_table, so a
 * backend that lacks an op fails here (and saec_dev_open refuses it at run time). The entries
 * come from include/saec/op_list.h, as do the backends' prototypes and fills: an op missing from
 * a backend fails to link, and a NULL one (a table filled by other means) fails here. */
#include <stdio.h>
#include <string.h>

#include "saec/device.h"
#include "saec/ops.h"

static int failures = 0;

static void check_table(const char *label, const saec_op_table *t) {
    const char *missing = saec_op_table_first_missing(t);
    if (missing) {
        fprintf(stderr, "FAIL: %s backend lacks the op '%s'\n", label, missing);
        failures++;
    } else {
        printf("ok: %s op table is complete\n", label);
    }
    if (!t->backend_name || !t->backend_name[0]) {
        fprintf(stderr, "FAIL: %s op table has no backend_name\n", label);
        failures++;
    }
}

int main(void) {
    const saec_op_table *cpu = saec_cpu_op_table();
    if (!cpu) {
        fprintf(stderr, "FAIL: saec_cpu_op_table() returned NULL\n");
        return 1;
    }
    check_table("cpu", cpu);

    /* The checker itself catches a hole in every entry of the op list: blank each in a copy. */
    int n_entries = 0;
#define CHECK_HOLE_(name)                                                                          \
    do {                                                                                           \
        saec_op_table holed = *cpu;                                                                \
        holed.name = NULL;                                                                         \
        const char *missing = saec_op_table_first_missing(&holed);                                 \
        if (!missing || strcmp(missing, #name) != 0) {                                             \
            fprintf(stderr, "FAIL: first_missing did not report a NULL %s (got %s)\n", #name,      \
                    missing ? missing : "NULL");                                                   \
            failures++;                                                                            \
        }                                                                                          \
        n_entries++;                                                                               \
    } while (0);
#define CHECK_MEMORY_HOLE_(ret, name, params) CHECK_HOLE_(name)
#define CHECK_OP_HOLE_(ret, name, params, floor_params, floor_bytes, floor_flops) CHECK_HOLE_(name)
    SAEC_OP_MEMORY_LIST(CHECK_MEMORY_HOLE_)
    SAEC_OP_LIST(CHECK_OP_HOLE_)
#undef CHECK_OP_HOLE_
#undef CHECK_MEMORY_HOLE_
#undef CHECK_HOLE_
    printf("ok: a hole in any of the %d entries is reported by name\n", n_entries);

    const saec_op_table *cuda = saec_cuda_op_table();
    if (cuda)
        check_table("cuda", cuda);
    else
        printf("ok: built without CUDA, no cuda op table to check\n");

    /* The opened CPU device uses the same table. */
    saec_dev *dev = NULL;
    if (saec_dev_open("cpu", &dev) != SAEC_OK) {
        fprintf(stderr, "FAIL: saec_dev_open(cpu): %s\n", saec_error_message());
        failures++;
    } else {
        if (dev->ops != cpu) {
            fprintf(stderr, "FAIL: the cpu device does not use saec_cpu_op_table()\n");
            failures++;
        }
        printf("ok: opened '%s'\n", dev->name);
        saec_dev_close(dev);
    }

    if (failures) fprintf(stderr, "%d failure(s)\n", failures);
    return failures ? 1 : 0;
}
