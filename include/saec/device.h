/* Devices: backend selection and the handle every op takes first. */
#ifndef SAEC_DEVICE_H
#define SAEC_DEVICE_H

#include "saec/ops.h"

typedef enum { SAEC_BACKEND_CPU = 0, SAEC_BACKEND_CUDA = 1 } saec_backend;

struct saec_dev {
    saec_backend backend;
    int index;                /* CUDA device ordinal; 0 on the CPU */
    const saec_op_table *ops; /* the backend's op table */
    void *impl;               /* backend state: streams, BLAS handles, workspaces */
    char name[160];           /* human-readable: "cpu (2 threads, OpenBLAS)", "NVIDIA H100 ..." */
};

/* Open a device from a spec: "auto" (CUDA device 0 when one is present, else CPU), "cpu",
   "cuda" or "cuda:I". Asking for CUDA where there is none fails with SAEC_ERR_DEVICE: no silent
   fallback. */
int saec_dev_open(const char *spec, saec_dev **out);
void saec_dev_close(saec_dev *dev);

/* Backend entry points used by saec_dev_open (kernels/cpu, kernels/cuda). */
int saec_cpu_dev_init(saec_dev *dev);
void saec_cpu_dev_shutdown(saec_dev *dev);
int saec_cuda_device_count(void); /* 0 when built without CUDA or when no device/driver */
int saec_cuda_dev_init(saec_dev *dev, int index);
void saec_cuda_dev_shutdown(saec_dev *dev);

#endif
