/* Emulated-GPU test tier: hooks between the host-side CUDA stand-ins (cuda_runtime_emu.cpp,
 * cublas_emu.cpp, include/cub/...) and the SIMT core. Test infrastructure only, never a
 * performance path. Valid C and C++.
 */
#ifndef SAEC_SIMT_RUNTIME_H
#define SAEC_SIMT_RUNTIME_H

#include <stddef.h>

#include <cuda_runtime_api.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Record e (not cudaSuccess) as the calling thread's last error, as the runtime does for a
   failed launch: cudaGetLastError() returns and clears it, cudaPeekAtLastError() returns it. */
void saec_simt_record_error(cudaError_t e);
/* The calling thread's last error, not cleared. */
cudaError_t saec_simt_peek_error(void);
/* 1 when [p, p + bytes) lies wholly inside one live cudaMalloc allocation (bytes == 0: p lies
   in one or just past its end), else 0. */
int saec_simt_is_device_range(const void *p, size_t bytes);
/* 1 when s is a live stream (or the NULL, legacy or per-thread stream), else 0. */
int saec_simt_is_stream(cudaStream_t s);

#ifdef __cplusplus
}
#endif

#endif
