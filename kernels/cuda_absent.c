/* The CUDA entry points of a build without the CUDA backend (SAEC_CUDA=OFF or no nvcc). */
#include "saec/device.h"

int saec_cuda_device_count(void) { return 0; }

const saec_op_table *saec_cuda_op_table(void) { return NULL; }

int saec_cuda_dev_init(saec_dev *dev, int index) {
    (void)dev;
    (void)index;
    return saec_fail(
        SAEC_ERR_DEVICE,
        "rebuild with the CUDA Toolkit installed (cmake -DSAEC_CUDA=ON), or use --device cpu",
        "this saec was built without the CUDA backend");
}

void saec_cuda_dev_shutdown(saec_dev *dev) { (void)dev; }
