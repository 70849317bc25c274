/* The emulated GPU's internals, shared by the scheduler (simt_core.cpp) and the shared-memory
 * race check (simt_racecheck.cpp). Test infrastructure. */
#ifndef SAEC_SIMT_INTERNAL_H
#define SAEC_SIMT_INTERNAL_H

#include <cstdint>

#include "saec_simt/cuda_emu.h"
#include "simt_fiber.h"

namespace saec_simt {

enum thread_status { T_READY, T_RUNNING, T_AT_BARRIER, T_AT_WARP_OP, T_DONE };

/* One CUDA thread of the block being run: a fiber and where it waits. */
struct thread_state : thread_view {
    fiber f;
    int linear, lane, warp;
    thread_status status;
    const char *wait_file; /* the barrier or warp collective it waits at */
    int wait_line;
    int pred;              /* __syncthreads_count's predicate, then its result */
    int wop;               /* the warp collective: op, mask, operands, result */
    unsigned wmask;
    uint64_t wvalue, wresult;
    int warg, wwidth;
};

enum { MAX_REGIONS = 64 };

/* One shared-memory object of the block: a static __shared__ declaration or the dynamic
   buffer. In builds without AddressSanitizer it sits between two redzones that are checked at
   block end (writes) and by the race check (reads and writes). */
struct shared_region {
    char *alloc;        /* what was allocated */
    char *base;         /* the object itself, `size` bytes */
    size_t size;
    const void *tag;    /* the declaration (static) or nullptr (dynamic) */
    const char *name;
    size_t shadow_off;  /* the race check's shadow cells for this region, in its pool */
};

/* An OS thread that runs blocks, one at a time, with everything a block needs. */
struct worker {
    fiber sched;                  /* the scheduler's context */
    thread_state *threads;        /* [1024] */
    char *stacks;                 /* 1024 fiber stacks with a guard page below each */
    size_t stack_size;
    const launch_desc *L;
    block_view block;
    int n_threads, n_done;
    unsigned warp_waiting[32];    /* per warp: lanes waiting at a warp collective */
    unsigned warp_done[32];       /* per warp: lanes that have returned */
    thread_state *cur;            /* the running thread */
    uint64_t epoch;               /* barrier intervals, counted over this worker's life */
    shared_region regions[MAX_REGIONS];
    int n_regions;
    size_t static_bytes;          /* static shared memory of this block, bytes */
    uint64_t rng;                 /* thread shuffles, seeded per block */
};

extern __thread worker *cur_worker;

/* Report a device-side fault (a race, a barrier divergence, a deadlock, a bad shared-memory
   access), naming the kernel and block, and end the process: the GPU would hang, fault or give
   garbage. */
[[noreturn]] void fault(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* "kernel_name block (x,y,z)" of the running block, for messages. */
const char *where_block();

/* The race check plugs in here when it is linked (simt_racecheck.cpp registers at start-up). */
struct race_hooks {
    void (*block_begin)(worker *w);    /* a new block (w->epoch was advanced) */
    void (*interval_begin)(worker *w); /* a barrier released the block (w->epoch advanced) */
    void (*region_added)(worker *w, shared_region *r);
    void (*block_end)(worker *w);
};
extern const race_hooks *race;

/* Source line of a code address ("file:line (function)"), through addr2line; for reports. */
const char *symbolize(const void *pc, char *buf, size_t n);

} // namespace saec_simt

#endif
