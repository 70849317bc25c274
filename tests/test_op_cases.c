/* The op cases (op_case.h) on the CPU backend: each op against its case's naive reference at
 * every shape, and its bad arguments. Every op of SAEC_OP_LIST must have a case (a failing check
 * names those without one), and every case must name an op of the list.
 */
#include <stdio.h>
#include <string.h>

#include "op_harness.h"
#include "saec/op_list.h"

#define OP_NAME_(ret, name, ...) #name,
static const char *const all_ops[] = {SAEC_OP_LIST(OP_NAME_)};
#undef OP_NAME_

static int has_case(const char *op) {
    for (int i = 0; i < op_cases_count; i++)
        if (strcmp(op_cases[i]->op, op) == 0) return 1;
    return 0;
}

static int in_op_list(const char *op) {
    for (size_t i = 0; i < sizeof all_ops / sizeof all_ops[0]; i++)
        if (strcmp(all_ops[i], op) == 0) return 1;
    return 0;
}

int main(void) {
    rng_seed(0x5AEC0CA5E5123457ull);
    saec_dev *dev = NULL;
    if (saec_dev_open("cpu", &dev) != SAEC_OK) {
        fprintf(stderr, "FAIL: saec_dev_open(cpu): %s\n", saec_error_message());
        return 1;
    }
    for (int i = 0; i < op_cases_count; i++) {
        const int before = n_checks;
        op_harness_vs_naive(dev, op_cases[i]);
        printf("%-16s %5d checks\n", op_cases[i]->op, n_checks - before);
    }
    saec_dev_close(dev);

    const int n_ops = (int)(sizeof all_ops / sizeof all_ops[0]);
    int missing = 0;
    for (int i = 0; i < n_ops; i++)
        missing += !has_case(all_ops[i]);
    printf("%d of %d ops have an op case\n", n_ops - missing, n_ops);
    set_ctx("op cases");
    for (int i = 0; i < n_ops; i++)
        CHECK(has_case(all_ops[i]), "op %s has no op case (op_case.h)", all_ops[i]);
    for (int i = 0; i < op_cases_count; i++)
        CHECK(in_op_list(op_cases[i]->op), "case %s names no op of SAEC_OP_LIST", op_cases[i]->op);
    return check_summary("test_op_cases");
}
