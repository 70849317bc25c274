/* Backend selection: parse a device spec, open the backend, check its op table. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "saec/device.h"

static int parse_cuda_index(const char *spec, int *index) {
    *index = 0;
    if (strcmp(spec, "cuda") == 0) return SAEC_OK;
    if (strncmp(spec, "cuda:", 5) == 0) {
        char *end = NULL;
        long v = strtol(spec + 5, &end, 10);
        if (end != spec + 5 && *end == '\0' && v >= 0 && v < 1024) {
            *index = (int)v;
            return SAEC_OK;
        }
    }
    return saec_fail(SAEC_ERR_USAGE, "use auto, cpu, cuda or cuda:I (I = device ordinal)",
                     "invalid device '%s' (key 'device')", spec);
}

int saec_dev_open(const char *spec, saec_dev **out) {
    *out = NULL;
    saec_dev *dev = calloc(1, sizeof *dev);
    if (!dev) return saec_fail(SAEC_ERR_OTHER, NULL, "out of memory opening device");
    int rc;
#ifdef SAEC_CUDA_EMULATED
    const int auto_cuda = 0; /* the emulated GPU (a test tier) only when asked for by name */
#else
    const int auto_cuda = saec_cuda_device_count() > 0;
#endif
    if (strcmp(spec, "cpu") == 0 || (strcmp(spec, "auto") == 0 && !auto_cuda)) {
        dev->backend = SAEC_BACKEND_CPU;
        rc = saec_cpu_dev_init(dev);
    } else if (strcmp(spec, "auto") == 0) {
        dev->backend = SAEC_BACKEND_CUDA;
        rc = saec_cuda_dev_init(dev, 0);
    } else {
        int index;
        rc = parse_cuda_index(spec, &index);
        if (rc == SAEC_OK) {
            dev->backend = SAEC_BACKEND_CUDA;
            rc = saec_cuda_dev_init(dev, index);
        }
    }
    if (rc == SAEC_OK) {
        const char *missing = saec_op_table_first_missing(dev->ops);
        if (missing) {
            saec_fail(SAEC_ERR_OTHER, "this is a bug in saec; please report it",
                      "backend '%s' lacks the op '%s'", dev->ops->backend_name, missing);
            saec_dev_close(dev);
            return SAEC_ERR_OTHER;
        }
        *out = dev;
        return SAEC_OK;
    }
    free(dev);
    return rc;
}

void saec_dev_close(saec_dev *dev) {
    if (!dev) return;
    if (dev->backend == SAEC_BACKEND_CUDA)
        saec_cuda_dev_shutdown(dev);
    else
        saec_cpu_dev_shutdown(dev);
    free(dev);
}
