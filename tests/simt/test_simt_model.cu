/* The emulated GPU's execution model, tested on small CUDA kernels (built only with
 * -DSAEC_CUDA=EMU; label gpu): barriers, warp collectives, per-block shared memory, the launch
 * checks the CUDA runtime makes, and, each in a child process that must die with a report
 * naming the kernel and line, the faults the tier claims to catch: a missing __syncthreads
 * (a shared-memory race), a barrier only some threads reach, a warp collective a lane never
 * joins, a warp mask naming lanes that do not exist, and a shared buffer written past its end.
 * Exit 0 when every case passes.
 */
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

#include <cuda_runtime.h>

static int failures = 0;
#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "FAIL (%s:%d): ", __FILE__, __LINE__);                                 \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fprintf(stderr, "\n");                                                                 \
            failures++;                                                                            \
        }                                                                                          \
    } while (0)

template <class T> static T *dev_alloc(size_t n) {
    T *p = nullptr;
    if (cudaMalloc(&p, n * sizeof(T)) != cudaSuccess) abort();
    cudaMemset(p, 0, n * sizeof(T));
    return p;
}
template <class T> static std::vector<T> download(const T *p, size_t n) {
    std::vector<T> h(n);
    cudaMemcpy(h.data(), p, n * sizeof(T), cudaMemcpyDeviceToHost);
    return h;
}

/* ---- kernels that must work -------------------------------------------------------------- */

/* Tree reduction in shared memory: right only if every __syncthreads is honoured. */
__global__ void block_sum_kernel(const int *x, int n, int *out) {
    __shared__ int s[256];
    int t = threadIdx.x;
    s[t] = 0;
    for (int i = blockIdx.x * blockDim.x + t; i < n; i += gridDim.x * blockDim.x) s[t] += x[i];
    __syncthreads();
    for (int h = blockDim.x / 2; h > 0; h /= 2) {
        if (t < h) s[t] += s[t + h];
        __syncthreads();
    }
    if (t == 0) atomicAdd(out, s[0]);
}

/* Every warp collective against its definition. out [blockDim.x][6]. */
__global__ void warp_ops_kernel(int *out) {
    int lane = threadIdx.x & 31, v = 100 + (int)threadIdx.x;
    int *o = out + threadIdx.x * 6;
    o[0] = __shfl_xor_sync(0xffffffffu, v, 5);
    o[1] = __shfl_up_sync(0xffffffffu, v, 3);
    o[2] = __shfl_down_sync(0xffffffffu, v, 7, 16);
    o[3] = __shfl_sync(0xffffffffu, v, 9);
    o[4] = (int)__match_any_sync(0xffffffffu, lane % 3);
    o[5] = __syncthreads_count(lane < 10);
}

/* Static shared memory is per block: blocks running at once on several OS threads must not see
   each other's. */
__global__ void shared_isolation_kernel(int *bad) {
    __shared__ unsigned mine;
    if (threadIdx.x == 0) mine = blockIdx.x;
    __syncthreads();
    for (int spin = 0; spin < 100; spin++) /* give other blocks time to run */
        if (mine != blockIdx.x) atomicAdd(bad, 1);
}

/* Dynamic shared memory of the launch's size, poisoned at block start. */
__global__ void dynamic_shared_kernel(int n, unsigned *first_word, int *sum) {
    extern __shared__ int dyn[];
    if (threadIdx.x == 0) *first_word = (unsigned)dyn[0];
    __syncthreads();
    for (int i = threadIdx.x; i < n; i += blockDim.x) dyn[i] = i;
    __syncthreads();
    if (threadIdx.x == 0) {
        int s = 0;
        for (int i = 0; i < n; i++) s += dyn[i];
        *sum = s;
    }
}

__global__ void __launch_bounds__(128) bounded_kernel(int *x) { x[threadIdx.x] = 1; }

/* ---- kernels with a seeded fault --------------------------------------------------------- */

/* The shared-memory reduction with its loop barrier removed: a race. */
__global__ void missing_barrier_kernel(const int *x, int *out) {
    __shared__ int s[64];
    int t = threadIdx.x;
    s[t] = x[t];
    __syncthreads();
    for (int h = 32; h > 0; h /= 2) {
        if (t < h) s[t] += s[t + h]; /* reads what another thread writes in the same interval */
    }
    if (t == 0) *out = s[0];
}

/* Half the block returns before a barrier the other half waits at. */
__global__ void divergent_barrier_kernel(int *x) {
    if (threadIdx.x >= 16) return;
    __syncthreads();
    x[threadIdx.x] = 1;
}

/* Lane 5 returns; the others shuffle with a mask that names it. */
__global__ void missing_lane_kernel(int *x) {
    if (threadIdx.x == 5) return;
    x[threadIdx.x] = __shfl_xor_sync(0xffffffffu, (int)threadIdx.x, 1);
}

/* A full-warp mask in a block of 48 threads: warp 1 has 16 lanes. */
__global__ void partial_warp_kernel(int *x) {
    x[threadIdx.x] = __shfl_xor_sync(0xffffffffu, (int)threadIdx.x, 1);
}

/* A shared buffer one element short of the threads that fill it. */
__global__ void short_buffer_kernel(int *x) {
    __shared__ int s[31];
    s[threadIdx.x] = (int)threadIdx.x; /* thread 31 writes past the end */
    __syncthreads();
    x[threadIdx.x] = s[threadIdx.x % 31];
}

/* ---- the checks -------------------------------------------------------------------------- */

static void test_block_sum() {
    const int n = 100003;
    std::vector<int> h(n);
    long long want = 0;
    for (int i = 0; i < n; i++) h[i] = (i * 7919) % 1000 - 500, want += h[i];
    int *x = dev_alloc<int>(n), *out = dev_alloc<int>(1);
    cudaMemcpy(x, h.data(), n * sizeof(int), cudaMemcpyHostToDevice);
    block_sum_kernel<<<37, 256>>>(x, n, out);
    CHECK(cudaGetLastError() == cudaSuccess, "block_sum launch");
    CHECK(download(out, 1)[0] == want, "block sum %d, want %lld", download(out, 1)[0], want);
    cudaFree(x);
    cudaFree(out);
}

static void test_warp_ops() {
    const int threads = 64;
    int *out = dev_alloc<int>(threads * 6);
    warp_ops_kernel<<<1, threads>>>(out);
    std::vector<int> o = download(out, threads * 6);
    for (int t = 0; t < threads; t++) {
        int lane = t & 31, base = t - lane;
        auto v = [&](int l) { return 100 + base + l; };
        int seg = lane & ~15;
        unsigned match = 0;
        for (int j = 0; j < 32; j++)
            if (j % 3 == lane % 3) match |= 1u << j;
        CHECK(o[t * 6 + 0] == v(lane ^ 5), "shfl_xor thread %d", t);
        CHECK(o[t * 6 + 1] == (lane >= 3 ? v(lane - 3) : v(lane)), "shfl_up thread %d", t);
        CHECK(o[t * 6 + 2] == (lane + 7 < seg + 16 ? v(lane + 7) : v(lane)), "shfl_down width 16 thread %d", t);
        CHECK(o[t * 6 + 3] == v(9), "shfl thread %d", t);
        CHECK((unsigned)o[t * 6 + 4] == match, "match_any thread %d: 0x%08x", t, (unsigned)o[t * 6 + 4]);
        CHECK(o[t * 6 + 5] == 20, "syncthreads_count thread %d: %d", t, o[t * 6 + 5]);
    }
    cudaFree(out);
}

static void test_shared_memory() {
    int *bad = dev_alloc<int>(1);
    shared_isolation_kernel<<<64, 32>>>(bad);
    CHECK(download(bad, 1)[0] == 0, "blocks saw each other's static shared memory");
    cudaFree(bad);

    unsigned *first = dev_alloc<unsigned>(1);
    int *sum = dev_alloc<int>(1);
    dynamic_shared_kernel<<<1, 96, 1000 * sizeof(int)>>>(1000, first, sum);
    CHECK(cudaGetLastError() == cudaSuccess, "dynamic shared launch");
    CHECK(download(first, 1)[0] == 0xffffffffu, "dynamic shared memory not poisoned: 0x%08x",
          download(first, 1)[0]);
    CHECK(download(sum, 1)[0] == 999 * 1000 / 2, "dynamic shared sum %d", download(sum, 1)[0]);
    cudaFree(first);
    cudaFree(sum);
}

static void expect_refused(cudaError_t want, const char *what) {
    cudaError_t e = cudaGetLastError();
    CHECK(e == want, "%s: %s, want %s", what, cudaGetErrorName(e), cudaGetErrorName(want));
}

static void test_launch_checks() {
    int *x = dev_alloc<int>(2048), *sum = dev_alloc<int>(1);
    unsigned *first = dev_alloc<unsigned>(1);
    bounded_kernel<<<1, 1025>>>(x);
    expect_refused(cudaErrorInvalidConfiguration, "1025 threads");
    bounded_kernel<<<1, 256>>>(x);
    expect_refused(cudaErrorLaunchOutOfResources, "256 threads over __launch_bounds__(128)");
    bounded_kernel<<<1, 128>>>(x);
    expect_refused(cudaSuccess, "128 threads within __launch_bounds__(128)");
    bounded_kernel<<<0, 32>>>(x);
    expect_refused(cudaErrorInvalidConfiguration, "empty grid");
    bounded_kernel<<<dim3(1, 70000), 32>>>(x);
    expect_refused(cudaErrorInvalidConfiguration, "grid.y over 65535");
    const int big = 16384; /* 64 KiB of dynamic shared memory */
    dynamic_shared_kernel<<<1, 32, big * sizeof(int)>>>(big, first, sum);
    expect_refused(cudaErrorInvalidValue, "64 KiB dynamic shared memory without the opt-in");
    CHECK(cudaFuncSetAttribute(dynamic_shared_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                               big * (int)sizeof(int)) == cudaSuccess,
          "cudaFuncSetAttribute");
    dynamic_shared_kernel<<<1, 32, big * sizeof(int)>>>(big, first, sum);
    expect_refused(cudaSuccess, "64 KiB dynamic shared memory after the opt-in");
    CHECK(download(sum, 1)[0] == (int)((long long)(big - 1) * big / 2), "opted-in dynamic sum");
    cudaFree(x);
    cudaFree(sum);
    cudaFree(first);
}

/* ---- faults: run in a child, which must die with a report containing `want` ---------------- */

static void run_fault(const char *name) {
    int *x = dev_alloc<int>(64), *out = dev_alloc<int>(1);
    if (!strcmp(name, "race")) missing_barrier_kernel<<<1, 64>>>(x, out);
    if (!strcmp(name, "divergence")) divergent_barrier_kernel<<<1, 32>>>(x);
    if (!strcmp(name, "missing_lane")) missing_lane_kernel<<<1, 32>>>(x);
    if (!strcmp(name, "partial_warp")) partial_warp_kernel<<<1, 48>>>(x);
    if (!strcmp(name, "short_buffer")) short_buffer_kernel<<<1, 32>>>(x);
}

static void expect_fault(const char *self, const char *name, std::vector<const char *> want) {
    int pipefd[2];
    if (pipe(pipefd) != 0) abort();
    pid_t pid = fork();
    if (pid == 0) {
        dup2(pipefd[1], 2);
        close(pipefd[0]);
        execl(self, self, name, (char *)nullptr);
        _exit(127);
    }
    close(pipefd[1]);
    std::string text;
    char buf[4096];
    ssize_t r;
    while ((r = read(pipefd[0], buf, sizeof buf)) > 0) text.append(buf, (size_t)r);
    close(pipefd[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    bool died = !(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CHECK(died, "fault '%s': the kernel ran to the end without a report", name);
    for (const char *w : want) { /* "a|b": either will do */
        bool found = false;
        std::string alts = w;
        for (size_t b = 0, e; !found && b <= alts.size(); b = e + 1) {
            e = alts.find('|', b);
            if (e == std::string::npos) e = alts.size();
            found = text.find(alts.substr(b, e - b)) != std::string::npos;
        }
        CHECK(found, "fault '%s': report lacks \"%s\":\n%s", name, w, text.c_str());
    }
    if (died) printf("caught %-13s %s", name, text.substr(0, text.find('\n') + 1).c_str());
}

int main(int argc, char **argv) {
    if (argc == 2) {
        run_fault(argv[1]);
        return 0;
    }
    test_block_sum();
    test_warp_ops();
    test_shared_memory();
    test_launch_checks();
#if defined(__SANITIZE_ADDRESS__)
    /* The sanitizers report the overrun themselves (UBSan's bounds check first, else
       AddressSanitizer); no race check in this build. */
    expect_fault(argv[0], "short_buffer", {"out of bounds|heap-buffer-overflow", "test_simt_model.cu:"});
#else
    expect_fault(argv[0], "race", {"shared-memory race on 's'", "missing_barrier_kernel",
                                   "test_simt_model.cu:"});
    expect_fault(argv[0], "short_buffer", {"'s' [124 bytes]", "short_buffer_kernel",
                                           "test_simt_model.cu:"});
#endif
    expect_fault(argv[0], "divergence", {"barrier divergence", "divergent_barrier_kernel",
                                         "test_simt_model.cu:"});
    expect_fault(argv[0], "missing_lane", {"lane 5", "returned", "missing_lane_kernel"});
    expect_fault(argv[0], "partial_warp", {"blockDim is not a multiple of 32", "partial_warp_kernel"});
    if (failures) {
        fprintf(stderr, "%d check(s) failed\n", failures);
        return 1;
    }
    printf("all emulator model checks passed\n");
    return 0;
}
