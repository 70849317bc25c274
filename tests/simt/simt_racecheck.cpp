/* The shared-memory race check of the emulated GPU. Test infrastructure.
 *
 * Between two barriers, two threads of a block must not both write a shared byte, nor one write
 * it while another reads it (atomics among themselves excepted): on the GPU such a pair has no
 * order, whatever order the emulator happened to run them in. Each byte of shared memory has a
 * shadow cell holding the barrier interval (epoch) of its last accesses, the thread that wrote
 * it and the one(s) that read it, with the code addresses; a conflicting access in the same
 * interval is reported with the kernel, the block, both threads and both source lines.
 * Accesses to a shared object's redzones (builds without AddressSanitizer) are reported too.
 *
 * How accesses are seen: the translated kernels are compiled with -fsanitize=thread, which
 * makes the compiler call __tsan_read4(addr), __tsan_write8(addr), __tsan_atomic32_fetch_add(..)
 * and so on around every memory access. This file *is* that runtime (ThreadSanitizer's own
 * library is not linked): each hook ignores everything but the running block's shared memory.
 * SAEC_SIMT_RACECHECK=0 turns the check off (the hooks then return at once).
 */
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "simt_internal.h"

namespace saec_simt {
namespace {

const uint16_t NOBODY = 0xffff, SEVERAL = 0xfffe;

struct cell {
    uint64_t epoch;
    uint16_t writer, reader; /* thread, NOBODY or SEVERAL */
    uint8_t atomic_write;    /* the writes of this interval were atomics */
    const void *wpc, *rpc;
};

struct worker_shadow {
    std::vector<cell> cells; /* regions' shadows, one after the other */
    size_t used = 0;
    char *lo = nullptr, *hi = nullptr; /* bounds of every region of the block, redzones included */
};

__thread worker *checked;   /* the worker whose block is being checked, or null */
__thread worker_shadow *shadow;

bool enabled() {
    static int on = -1;
    if (on < 0) {
        const char *v = getenv("SAEC_SIMT_RACECHECK");
        on = !(v && !strcmp(v, "0"));
    }
    return on;
}

void block_begin(worker *w) {
    if (!shadow) shadow = new worker_shadow();
    shadow->used = 0;
    shadow->lo = shadow->hi = nullptr;
    checked = enabled() ? w : nullptr;
}
void interval_begin(worker *) {} /* the new epoch makes every cell stale */
void block_end(worker *) { checked = nullptr; }

void region_added(worker *, shared_region *r) {
    r->shadow_off = shadow->used;
    shadow->used += r->size;
    if (shadow->cells.size() < shadow->used) shadow->cells.resize(shadow->used);
    char *end = r->base + r->size + (r->base - r->alloc);
    if (!shadow->lo || r->alloc < shadow->lo) shadow->lo = r->alloc;
    if (!shadow->hi || end > shadow->hi) shadow->hi = end;
}

const char *who(uint16_t t, char *buf, size_t n) {
    if (t == SEVERAL) return "other threads";
    snprintf(buf, n, "thread %u", t);
    return buf;
}

enum kind { READ, WRITE, ATOMIC };

[[noreturn]] void report_race(const worker *w, const shared_region *r, size_t off, kind k, const void *pc,
                       uint16_t other, bool other_wrote, const void *other_pc) {
    char here[512], there[512], b1[32];
    symbolize(pc, here, sizeof here);
    if (other_pc) symbolize(other_pc, there, sizeof there);
    fault("shared-memory race on '%s' (byte %zu of %zu): thread %d %s it at %s, and %s %s it at %s "
          "in the same barrier interval (no __syncthreads between them)",
          r->name ? r->name : "extern __shared__", off, r->size, w->cur->linear,
          k == READ ? "reads" : k == WRITE ? "writes" : "atomically updates", here,
          who(other, b1, sizeof b1), other_wrote ? "wrote" : "read",
          other_pc ? there : "(an earlier access)");
}

void access(void *p, size_t n, kind k, const void *pc) {
    worker *w = checked;
    if (!w || !w->cur) return;
    char *a = (char *)p;
    if (a + n <= shadow->lo || a >= shadow->hi) return;
    for (int i = 0; i < w->n_regions; i++) {
        const shared_region *r = &w->regions[i];
        char *end = r->base + r->size + (r->base - r->alloc);
        if (a + n <= r->alloc || a >= end) continue;
        if (a < r->base || a + n > r->base + r->size) {
            char here[512];
            long off = (long)(a - r->base);
            fault("thread %d %s %zu bytes at byte %ld of '%s' [%zu bytes], outside it, at %s",
                  w->cur->linear, k == READ ? "reads" : "writes", n, off,
                  r->name ? r->name : "extern __shared__", r->size, symbolize(pc, here, sizeof here));
        }
        uint16_t me = (uint16_t)w->cur->linear;
        cell *c = &shadow->cells[r->shadow_off + (size_t)(a - r->base)];
        for (size_t j = 0; j < n; j++, c++) {
            if (c->epoch != w->epoch) {
                c->epoch = w->epoch;
                c->writer = c->reader = NOBODY;
                c->atomic_write = 0;
            }
            size_t off = (size_t)(a - r->base) + j;
            bool other_writer = c->writer != NOBODY && c->writer != me;
            bool other_reader = c->reader != NOBODY && c->reader != me;
            switch (k) {
            case READ:
                if (other_writer) report_race(w, r, off, k, pc, c->writer, true, c->wpc);
                c->reader = c->reader == NOBODY || c->reader == me ? me : SEVERAL;
                c->rpc = pc;
                break;
            case WRITE:
                if (other_writer) report_race(w, r, off, k, pc, c->writer, true, c->wpc);
                if (other_reader) report_race(w, r, off, k, pc, c->reader, false, c->rpc);
                c->writer = me;
                c->atomic_write = 0;
                c->wpc = pc;
                break;
            case ATOMIC:
                if (other_writer && !c->atomic_write) report_race(w, r, off, k, pc, c->writer, true, c->wpc);
                if (other_reader) report_race(w, r, off, k, pc, c->reader, false, c->rpc);
                c->writer = c->writer == NOBODY || c->writer == me ? me : SEVERAL;
                c->atomic_write = 1;
                c->wpc = pc;
                break;
            }
        }
        return;
    }
}

const race_hooks hooks = {block_begin, interval_begin, region_added, block_end};
struct registrar {
    registrar() { race = &hooks; }
} registered;

} // namespace
} // namespace saec_simt

/* ---- the ThreadSanitizer ABI that gcc's -fsanitize=thread instrumentation calls ---- */
using saec_simt::access;
#define PC __builtin_return_address(0)
#define RW_HOOKS(N)                                                                                \
    extern "C" void __tsan_read##N(void *p) { access(p, N, saec_simt::READ, PC); }               \
    extern "C" void __tsan_write##N(void *p) { access(p, N, saec_simt::WRITE, PC); }             \
    extern "C" void __tsan_unaligned_read##N(void *p) { access(p, N, saec_simt::READ, PC); }     \
    extern "C" void __tsan_unaligned_write##N(void *p) { access(p, N, saec_simt::WRITE, PC); }
RW_HOOKS(1)
RW_HOOKS(2)
RW_HOOKS(4)
RW_HOOKS(8)
RW_HOOKS(16)
extern "C" void __tsan_read_range(void *p, unsigned long n) { access(p, n, saec_simt::READ, PC); }
extern "C" void __tsan_write_range(void *p, unsigned long n) { access(p, n, saec_simt::WRITE, PC); }
extern "C" void __tsan_init(void) {}
extern "C" void __tsan_func_entry(void *) {}
extern "C" void __tsan_func_exit(void) {}
extern "C" void __tsan_vptr_update(void **, void *) {}
extern "C" void __tsan_vptr_read(void **) {}

/* Atomics: the operation itself, plus an atomic access for the check. The memory orders are
   ignored (relaxed is what CUDA's atomics give). */
#define ATOMIC_HOOKS(BITS, T)                                                                      \
    extern "C" T __tsan_atomic##BITS##_load(const volatile T *a, int) {                            \
        access((void *)a, sizeof(T), saec_simt::READ, PC);                                       \
        return __atomic_load_n(a, __ATOMIC_SEQ_CST);                                               \
    }                                                                                              \
    extern "C" void __tsan_atomic##BITS##_store(volatile T *a, T v, int) {                         \
        access((void *)a, sizeof(T), saec_simt::ATOMIC, PC);                                     \
        __atomic_store_n(a, v, __ATOMIC_SEQ_CST);                                                  \
    }                                                                                              \
    extern "C" T __tsan_atomic##BITS##_fetch_add(volatile T *a, T v, int) {                        \
        access((void *)a, sizeof(T), saec_simt::ATOMIC, PC);                                     \
        return __atomic_fetch_add(a, v, __ATOMIC_SEQ_CST);                                         \
    }                                                                                              \
    extern "C" T __tsan_atomic##BITS##_exchange(volatile T *a, T v, int) {                         \
        access((void *)a, sizeof(T), saec_simt::ATOMIC, PC);                                     \
        return __atomic_exchange_n(a, v, __ATOMIC_SEQ_CST);                                        \
    }                                                                                              \
    extern "C" int __tsan_atomic##BITS##_compare_exchange_strong(volatile T *a, T *c, T v, int,    \
                                                                 int) {                            \
        access((void *)a, sizeof(T), saec_simt::ATOMIC, PC);                                     \
        return __atomic_compare_exchange_n(a, c, v, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);    \
    }                                                                                              \
    extern "C" int __tsan_atomic##BITS##_compare_exchange_weak(volatile T *a, T *c, T v, int,      \
                                                               int) {                              \
        access((void *)a, sizeof(T), saec_simt::ATOMIC, PC);                                     \
        return __atomic_compare_exchange_n(a, c, v, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);    \
    }                                                                                              \
    extern "C" T __tsan_atomic##BITS##_compare_exchange_val(volatile T *a, T c, T v, int, int) {  \
        access((void *)a, sizeof(T), saec_simt::ATOMIC, PC);                                     \
        __atomic_compare_exchange_n(a, &c, v, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);          \
        return c;                                                                                  \
    }
ATOMIC_HOOKS(8, uint8_t)
ATOMIC_HOOKS(16, uint16_t)
ATOMIC_HOOKS(32, uint32_t)
ATOMIC_HOOKS(64, uint64_t)
extern "C" void __tsan_atomic_thread_fence(int) { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
extern "C" void __tsan_atomic_signal_fence(int) {}
