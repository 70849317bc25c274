/* The emulated GPU's execution model: kernel launches, blocks, threads as fibers, barriers, warp
 * collectives and shared memory. Test infrastructure for the emulated tier: it checks indexing,
 * synchronisation (within this model), shared-memory sizing and launch configurations, never
 * speed.
 *
 * A launch is checked as the CUDA runtime checks it (a refusal is the last error, as after a
 * real <<<>>>), then the whole grid runs before launch() returns: streams are eager. Blocks are
 * handed to a pool of OS threads (SAEC_SIMT_WORKERS, default the machine's cores, at most 8)
 * in forward, reversed or shuffled order (SAEC_SIMT_BLOCK_ORDER). Within a block, the threads
 * are fibers run one at a time until each blocks at a barrier or a warp collective or ends;
 * the order in which they run is forward, reversed or shuffled anew for every barrier interval
 * (SAEC_SIMT_THREAD_ORDER). SAEC_SIMT_SEED seeds the shuffles. A kernel whose result depends on
 * these orders has a race that the real GPU may show.
 *
 * Device-side faults end the process with a report naming the kernel, block, threads and source
 * lines: a barrier some threads skip (divergence), collectives that can never complete
 * (deadlock), a warp mask naming missing lanes, shared memory over its limits or written past
 * its end.
 */
#include <atomic>
#include <condition_variable>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <dlfcn.h>
#include <map>
#include <mutex>
#include <sys/mman.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include "simt_internal.h"
#include "simt_runtime.h"

#if defined(__SANITIZE_ADDRESS__)
#define SAEC_SIMT_REDZONE 0 /* AddressSanitizer guards each allocation itself */
#else
#define SAEC_SIMT_REDZONE 64
#endif

namespace saec_simt {

__thread const thread_view *cur_thread;
__thread const block_view *cur_block;
__thread worker *cur_worker;
const race_hooks *race;

/* The limits of the device the runtime describes (cuda_runtime_emu.cpp: an H100). */
static const size_t SMEM_DEFAULT = 48 * 1024;   /* per block, static and dynamic by default */
static const size_t SMEM_OPTIN = 232448;        /* per block after cudaFuncSetAttribute */
static const unsigned MAX_THREADS = 1024;
static const unsigned char POISON = 0xff;       /* floats NaN, ints -1 */
static const unsigned char REDZONE_BYTE = 0xfd;

/* ---- settings (environment, read once) ---------------------------------------------------- */

enum order_kind { ORDER_FORWARD, ORDER_REVERSE, ORDER_SHUFFLE };

struct settings {
    order_kind thread_order = ORDER_FORWARD, block_order = ORDER_FORWARD;
    uint64_t seed = 1;
    int workers = 1;
    size_t stack_size = 256 * 1024;
};

static order_kind parse_order(const char *var) {
    const char *v = getenv(var);
    if (!v || !*v || !strcmp(v, "forward")) return ORDER_FORWARD;
    if (!strcmp(v, "reverse") || !strcmp(v, "reversed")) return ORDER_REVERSE;
    if (!strcmp(v, "shuffle") || !strcmp(v, "shuffled")) return ORDER_SHUFFLE;
    fprintf(stderr, "saec-simt: %s=%s is not an order\n  hint: forward, reverse or shuffle\n", var, v);
    exit(2);
}

static const settings &config() {
    static settings s;
    static std::once_flag once;
    std::call_once(once, [] {
        s.thread_order = parse_order("SAEC_SIMT_THREAD_ORDER");
        s.block_order = parse_order("SAEC_SIMT_BLOCK_ORDER");
        if (const char *v = getenv("SAEC_SIMT_SEED")) s.seed = strtoull(v, nullptr, 10);
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        s.workers = n < 1 ? 1 : n > 8 ? 8 : (int)n;
        if (const char *v = getenv("SAEC_SIMT_WORKERS")) {
            int w = atoi(v);
            if (w < 1 || w > 64) {
                fprintf(stderr, "saec-simt: SAEC_SIMT_WORKERS=%s\n  hint: 1 to 64 OS threads\n", v);
                exit(2);
            }
            s.workers = w;
        }
        if (const char *v = getenv("SAEC_SIMT_STACK_KB")) s.stack_size = (size_t)atol(v) * 1024;
#if defined(__SANITIZE_ADDRESS__)
        s.stack_size *= 2; /* redzones around every local */
#endif
    });
    return s;
}

static uint64_t splitmix(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static void make_order(std::vector<uint32_t> &v, uint32_t n, order_kind kind, uint64_t *rng) {
    v.resize(n);
    for (uint32_t i = 0; i < n; i++) v[i] = kind == ORDER_REVERSE ? n - 1 - i : i;
    if (kind == ORDER_SHUFFLE)
        for (uint32_t i = n; i > 1; i--) std::swap(v[i - 1], v[splitmix(rng) % i]);
}

/* ---- reports -------------------------------------------------------------------------------- */

const char *where_block() {
    static __thread char buf[256];
    worker *w = cur_worker;
    if (!w || !w->L) return "(no kernel)";
    snprintf(buf, sizeof buf, "kernel %s (launched at %s:%d) block (%u,%u,%u)", w->L->name,
             w->L->file, w->L->line, w->block.idx.x, w->block.idx.y, w->block.idx.z);
    return buf;
}

void fault(const char *fmt, ...) {
    static std::mutex mu; /* one report at a time when several blocks fault */
    std::lock_guard<std::mutex> lock(mu);
    fprintf(stderr, "saec-simt: device fault (emulated GPU) in %s:\n  ", where_block());
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n");
    fflush(stderr);
    abort();
}

const char *symbolize(const void *pc, char *buf, size_t n) {
    Dl_info info;
    snprintf(buf, n, "%p", pc);
    if (!dladdr(pc, &info) || !info.dli_fname) return buf;
    /* pc is a return address: the call is the instruction before it. */
    uintptr_t off = (uintptr_t)pc - (uintptr_t)info.dli_fbase - 1;
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "addr2line -C -f -i -e '%s' 0x%lx 2>/dev/null", info.dli_fname,
             (unsigned long)off);
    FILE *p = popen(cmd, "r");
    if (!p) return buf;
    char fn[512] = "", line[512] = "";
    if (fgets(fn, sizeof fn, p) && fgets(line, sizeof line, p)) {
        fn[strcspn(fn, "\n")] = 0;
        line[strcspn(line, "\n")] = 0;
        char *disc = strstr(line, " (discriminator");
        if (disc) *disc = 0;
        const char *base = strrchr(line, '/');
        snprintf(buf, n, "%s (%s)", base ? base + 1 : line, fn);
    }
    pclose(p);
    return buf;
}

static const char *status_name(const thread_state *t, char *buf, size_t n) {
    switch (t->status) {
    case T_DONE: return "has returned";
    case T_AT_BARRIER: snprintf(buf, n, "waits at __syncthreads (%s:%d)", t->wait_file, t->wait_line); return buf;
    case T_AT_WARP_OP:
        snprintf(buf, n, "waits at a warp collective with mask 0x%08x (%s:%d)", t->wmask, t->wait_file,
                 t->wait_line);
        return buf;
    default: return "runs";
    }
}

/* ---- shared memory ------------------------------------------------------------------------ */

static shared_region *add_region(worker *w, size_t bytes, size_t align, const void *tag,
                                 const char *name) {
    if (w->n_regions == MAX_REGIONS) fault("more than %d __shared__ objects", MAX_REGIONS);
    if (align < 16) align = 16;
    size_t rz = SAEC_SIMT_REDZONE ? (SAEC_SIMT_REDZONE + align - 1) / align * align : 0;
    void *mem = nullptr;
    /* malloc-family memory at the object's exact size, so AddressSanitizer sees one byte past
       (a size of 0 too: glibc and ASan return a unique pointer, every access to it an overflow). */
    if (posix_memalign(&mem, align, rz + bytes + rz) != 0 || !mem)
        fault("out of host memory for %zu bytes of shared memory", bytes);
    shared_region *r = &w->regions[w->n_regions++];
    r->alloc = (char *)mem;
    r->base = r->alloc + rz;
    r->size = bytes;
    r->tag = tag;
    r->name = name;
    memset(r->base, POISON, bytes);
    if (rz) {
        memset(r->alloc, REDZONE_BYTE, rz);
        memset(r->base + bytes, REDZONE_BYTE, rz);
    }
    if (race) race->region_added(w, r);
    return r;
}

static void check_redzones(worker *w) {
    if (!SAEC_SIMT_REDZONE) return;
    for (int i = 0; i < w->n_regions; i++) {
        const shared_region *r = &w->regions[i];
        size_t rz = (size_t)(r->base - r->alloc);
        for (size_t j = 0; j < rz; j++) {
            if ((unsigned char)r->alloc[j] != REDZONE_BYTE)
                fault("shared memory written %zu bytes before '%s' [%zu bytes]", rz - j, r->name,
                      r->size);
            if ((unsigned char)r->base[r->size + j] != REDZONE_BYTE)
                fault("shared memory written %zu bytes past the end of '%s' [%zu bytes]", j + 1,
                      r->name, r->size);
        }
    }
}

static worker *kernel_worker(const char *what) {
    worker *w = cur_worker;
    if (!w || !w->cur) {
        fprintf(stderr, "saec-simt: %s called outside a kernel\n", what);
        abort();
    }
    return w;
}

void *static_shared(const void *tag, size_t bytes, size_t align, const char *name) {
    worker *w = kernel_worker("a __shared__ declaration");
    for (int i = 0; i < w->n_regions; i++)
        if (w->regions[i].tag == tag) return w->regions[i].base;
    w->static_bytes += bytes;
    if (w->static_bytes > SMEM_DEFAULT)
        fault("%zu bytes of static __shared__ memory (with '%s'): over the %zu-byte limit, which nvcc "
              "would refuse at compile time",
              w->static_bytes, name, SMEM_DEFAULT);
    if (w->static_bytes + w->L->dyn_smem > SMEM_OPTIN)
        fault("%zu bytes of static + %zu of dynamic shared memory: over the device's %zu per "
              "block; the launch would fail",
              w->static_bytes, w->L->dyn_smem, SMEM_OPTIN);
    return add_region(w, bytes, align, tag, name)->base;
}

void *dynamic_shared(const char *name) {
    worker *w = kernel_worker("an extern __shared__ declaration");
    shared_region *r = &w->regions[0]; /* added first, at block start */
    if (!r->name) r->name = name;
    return r->base;
}

/* ---- blocks ------------------------------------------------------------------------------- */

static void thread_main(void *arg) {
    thread_state *t = (thread_state *)arg;
    worker *w = cur_worker;
    fiber_started(&t->f, &w->sched);
    w->L->run(w->L->ctx);
    t->status = T_DONE;
    w->warp_done[t->warp] |= 1u << t->lane;
    w->n_done++;
    fiber_switch(&t->f, &w->sched, true);
    __builtin_unreachable();
}

/* The running thread waits (its status set by the caller) until the scheduler resumes it. */
static void wait_here(worker *w, thread_state *t) {
    fiber_switch(&t->f, &w->sched);
}

int syncthreads(int pred, const char *file, int line) {
    worker *w = kernel_worker("__syncthreads");
    thread_state *t = w->cur;
    t->status = T_AT_BARRIER;
    t->wait_file = file;
    t->wait_line = line;
    t->pred = pred;
    wait_here(w, t);
    return t->pred;
}

static unsigned lanes_of_warp(const worker *w, int warp) {
    int n = w->n_threads - warp * 32;
    return n >= 32 ? 0xffffffffu : (1u << n) - 1;
}

/* A lane in `mask` that waits in another collective than (op, mask): a fault. */
static void check_same_collective(const thread_state *t, const thread_state *o, unsigned mask,
                                  int op, const char *file, int line) {
    if (o->wmask != mask || o->wop != op)
        fault("warp %d: lane %d calls a warp collective (%s:%d, mask 0x%08x) while lane %d waits "
              "in another (%s:%d, mask 0x%08x)",
              t->warp, t->lane, file, line, mask, o->lane, o->wait_file, o->wait_line, o->wmask);
}

/* All lanes of the mask have arrived: every lane's result, computed at once. */
static void complete_warp_op(worker *w, thread_state *lanes, unsigned mask, int op) {
    for (int l = 0; l < 32; l++) {
        if (!(mask >> l & 1)) continue;
        thread_state *t = &lanes[l];
        int width = t->wwidth, seg = l & ~(width - 1), src = l;
        switch (op) {
        case WOP_SHFL_XOR: src = l ^ t->warg; break;
        case WOP_SHFL_UP: src = l - t->warg >= seg ? l - t->warg : l; break;
        case WOP_SHFL_DOWN: src = l + t->warg < seg + width ? l + t->warg : l; break;
        case WOP_SHFL_IDX: src = seg + (t->warg & (width - 1)); break;
        case WOP_MATCH_ANY: {
            unsigned m = 0;
            for (int j = 0; j < 32; j++)
                if ((mask >> j & 1) && lanes[j].wvalue == t->wvalue) m |= 1u << j;
            t->wresult = m;
            continue;
        }
        }
        if (src < 0 || src > 31 || !(mask >> src & 1))
            fault("lane %d of warp %d reads lane %d in a shuffle (%s:%d), but that lane is not in "
                  "the mask 0x%08x: undefined on the GPU",
                  l, t->warp, src, t->wait_file, t->wait_line, mask);
        t->wresult = lanes[src].wvalue;
    }
    for (int l = 0; l < 32; l++)
        if ((mask >> l & 1) && lanes[l].status == T_AT_WARP_OP) lanes[l].status = T_READY;
    w->warp_waiting[lanes[0].warp] &= ~mask;
}

uint64_t warp_collective(int op, unsigned mask, uint64_t value, int arg, int width,
                         const char *file, int line) {
    worker *w = kernel_worker("a warp collective");
    thread_state *t = w->cur;
    if (width < 1 || width > 32 || (width & (width - 1)))
        fault("thread %d: shuffle width %d (%s:%d) is not a power of two up to 32", t->linear,
              width, file, line);
    if (!(mask >> t->lane & 1))
        fault("thread %d (lane %d) calls a warp collective (%s:%d) whose mask 0x%08x leaves it out",
              t->linear, t->lane, file, line, mask);
    unsigned have = lanes_of_warp(w, t->warp);
    if (mask & ~have)
        fault("warp collective (%s:%d) with mask 0x%08x in a block of %d threads: warp %d has "
              "lanes 0x%08x only (blockDim is not a multiple of 32)",
              file, line, mask, w->n_threads, t->warp, have);
    t->wop = op;
    t->wmask = mask;
    t->wvalue = value;
    t->warg = arg;
    t->wwidth = width;
    t->wait_file = file;
    t->wait_line = line;
    thread_state *lanes = &w->threads[t->warp * 32];
    /* Arrivals are kept as per-warp lane masks, so a lane's arrival costs O(1) and only the last
       one looks at every lane (a scan of 32 lanes per arrival was a quarter of the emulated
       time of the top-k kernel). */
    const unsigned others = mask & ~(1u << t->lane);
    if (unsigned gone = others & w->warp_done[t->warp])
        fault("thread %d calls a warp collective (%s:%d) with mask 0x%08x, but lane %d has "
              "already returned: the collective can never complete",
              t->linear, file, line, mask, __builtin_ctz(gone));
    const unsigned waiting = others & w->warp_waiting[t->warp];
    if (waiting) check_same_collective(t, &lanes[__builtin_ctz(waiting)], mask, op, file, line);
    if (waiting == others) { /* the last lane to arrive goes on without a switch */
        for (unsigned m = waiting; m; m &= m - 1)
            check_same_collective(t, &lanes[__builtin_ctz(m)], mask, op, file, line);
        complete_warp_op(w, lanes, mask, op);
        return t->wresult;
    }
    w->warp_waiting[t->warp] |= 1u << t->lane;
    t->status = T_AT_WARP_OP;
    wait_here(w, t);
    return t->wresult;
}

/* No thread can run: release a barrier every live thread waits at, or report why none can. */
static void resolve_wait(worker *w) {
    char buf[256];
    thread_state *first_bar = nullptr, *first_warp = nullptr;
    int at_bar = 0, done = 0, count = 0;
    for (int i = 0; i < w->n_threads; i++) {
        thread_state *t = &w->threads[i];
        if (t->status == T_AT_BARRIER) {
            at_bar++;
            count += t->pred;
            if (!first_bar) first_bar = t;
        } else if (t->status == T_AT_WARP_OP && !first_warp) {
            first_warp = t;
        } else if (t->status == T_DONE) {
            done++;
        }
    }
    if (first_warp) {
        const thread_state *lanes = &w->threads[first_warp->warp * 32];
        for (int l = 0; l < 32; l++)
            if ((first_warp->wmask >> l & 1) && lanes[l].status != T_AT_WARP_OP)
                fault("deadlock: thread %d waits at a warp collective (%s:%d, mask 0x%08x) that "
                      "lane %d never reaches: it %s",
                      first_warp->linear, first_warp->wait_file, first_warp->wait_line,
                      first_warp->wmask, l, status_name(&lanes[l], buf, sizeof buf));
        for (int l = 0; l < 32; l++)
            if (first_warp->wmask >> l & 1)
                check_same_collective(&lanes[l], first_warp, lanes[l].wmask, lanes[l].wop,
                                      lanes[l].wait_file, lanes[l].wait_line);
        fault("deadlock at a warp collective (%s:%d)", first_warp->wait_file, first_warp->wait_line);
    }
    if (done)
        fault("barrier divergence: %d threads wait at __syncthreads (%s:%d) while %d have "
              "returned without reaching it (undefined on the GPU: it may hang)",
              at_bar, first_bar->wait_file, first_bar->wait_line, done);
    for (int i = 0; i < w->n_threads; i++) {
        const thread_state *t = &w->threads[i];
        if (t->wait_line != first_bar->wait_line || strcmp(t->wait_file, first_bar->wait_file))
            fault("barrier divergence: thread %d waits at __syncthreads (%s:%d), thread %d at "
                  "another one (%s:%d)",
                  first_bar->linear, first_bar->wait_file, first_bar->wait_line, t->linear,
                  t->wait_file, t->wait_line);
    }
    for (int i = 0; i < w->n_threads; i++) {
        thread_state *t = &w->threads[i];
        t->pred = count;
        t->status = T_READY;
    }
    w->epoch++;
    if (race) race->interval_begin(w);
}

static void ensure_stacks(worker *w) {
    if (w->stacks) return;
    const settings &s = config();
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    w->stack_size = (s.stack_size + page - 1) / page * page;
    size_t each = w->stack_size + page;
    w->stacks = (char *)mmap(nullptr, each * MAX_THREADS, PROT_READ | PROT_WRITE,
                             MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (w->stacks == MAP_FAILED) {
        fprintf(stderr, "saec-simt: cannot map %zu MiB of fiber stacks\n",
                each * MAX_THREADS >> 20);
        abort();
    }
    w->threads = new thread_state[MAX_THREADS];
    for (unsigned i = 0; i < MAX_THREADS; i++) {
        char *lo = w->stacks + i * each;
        mprotect(lo, page, PROT_NONE); /* a stack overflow faults instead of corrupting */
        w->threads[i].f.stack_lo = lo + page;
        w->threads[i].f.stack_size = w->stack_size;
    }
}

static void run_block(worker *w, const launch_desc &L, uint64_t linear) {
    const settings &s = config();
    ensure_stacks(w);
    w->L = &L;
    w->block.dim = L.block;
    w->block.grid = L.grid;
    w->block.idx.x = (unsigned)(linear % L.grid.x);
    w->block.idx.y = (unsigned)(linear / L.grid.x % L.grid.y);
    w->block.idx.z = (unsigned)(linear / ((uint64_t)L.grid.x * L.grid.y));
    w->n_threads = (int)(L.block.x * L.block.y * L.block.z);
    w->n_done = 0;
    memset(w->warp_waiting, 0, sizeof w->warp_waiting);
    memset(w->warp_done, 0, sizeof w->warp_done);
    w->n_regions = 0;
    w->static_bytes = 0;
    w->rng = s.seed * 0x2545F4914F6CDD1Dull + linear;
    w->epoch++;
    cur_worker = w;
    cur_block = &w->block;
    if (race) race->block_begin(w);
    add_region(w, L.dyn_smem, 16, nullptr, nullptr); /* regions[0]: the dynamic buffer */

    for (int i = 0; i < w->n_threads; i++) {
        thread_state *t = &w->threads[i];
        t->idx.x = (unsigned)(i % L.block.x);
        t->idx.y = (unsigned)(i / L.block.x % L.block.y);
        t->idx.z = (unsigned)(i / (L.block.x * L.block.y));
        t->linear = i;
        t->lane = i & 31;
        t->warp = i >> 5;
        t->status = T_READY;
        t->wait_file = "";
        t->wait_line = 0;
        fiber_init(&t->f, thread_main, t);
    }
    std::vector<uint32_t> order;
    make_order(order, (uint32_t)w->n_threads, s.thread_order, &w->rng);
    while (w->n_done < w->n_threads) {
        bool ran = false;
        for (uint32_t k = 0; k < order.size(); k++) {
            thread_state *t = &w->threads[order[k]];
            if (t->status != T_READY) continue;
            t->status = T_RUNNING;
            w->cur = t;
            cur_thread = t;
            fiber_switch(&w->sched, &t->f);
            ran = true;
        }
        w->cur = nullptr;
        if (w->n_done == w->n_threads) break;
        if (!ran) {
            resolve_wait(w);
            if (s.thread_order == ORDER_SHUFFLE) make_order(order, (uint32_t)w->n_threads,
                                                            ORDER_SHUFFLE, &w->rng);
        }
    }
    check_redzones(w);
    if (race) race->block_end(w);
    for (int i = 0; i < w->n_regions; i++) free(w->regions[i].alloc);
    w->n_regions = 0;
    cur_thread = nullptr;
    cur_block = nullptr;
    w->L = nullptr;
}

/* ---- the grid: a pool of workers -------------------------------------------------------------- */

struct grid_job {
    const launch_desc *L;
    std::vector<uint32_t> order;     /* block linear indices in launch order */
    std::atomic<uint64_t> next{0};
    std::atomic<int> active{0};
};

static void run_blocks(worker *w, grid_job *job) {
    for (;;) {
        uint64_t i = job->next.fetch_add(1);
        if (i >= job->order.size()) break;
        run_block(w, *job->L, job->order[i]);
    }
    cur_worker = nullptr;
}

struct pool {
    std::mutex mu;
    std::condition_variable cv_start, cv_done;
    grid_job *job = nullptr;
    uint64_t generation = 0;
    int running = 0;
    std::vector<std::thread> threads;
    std::vector<worker *> workers; /* [0] is the launching thread's */

    void start(int n) {
        for (int i = 0; i < n; i++) workers.push_back(new worker());
        for (int i = 1; i < n; i++)
            threads.emplace_back([this, i] {
                uint64_t seen = 0;
                for (;;) {
                    grid_job *j;
                    {
                        std::unique_lock<std::mutex> lock(mu);
                        cv_start.wait(lock, [&] { return generation != seen; });
                        seen = generation;
                        j = job;
                    }
                    run_blocks(workers[i], j);
                    std::lock_guard<std::mutex> lock(mu);
                    if (--running == 0) cv_done.notify_all();
                }
            });
        for (auto &t : threads) t.detach(); /* they sleep until the process ends */
    }

    void run(grid_job *j) {
        int helpers = (int)workers.size() - 1;
        if (j->order.size() > 1 && helpers > 0) {
            std::lock_guard<std::mutex> lock(mu);
            job = j;
            running = helpers;
            generation++;
            cv_start.notify_all();
        } else {
            helpers = 0;
        }
        run_blocks(workers[0], j);
        if (helpers) {
            std::unique_lock<std::mutex> lock(mu);
            cv_done.wait(lock, [&] { return running == 0; });
        }
    }
};

static std::mutex launch_mu;              /* one grid at a time */
static std::map<const void *, int> max_dyn_smem; /* cudaFuncSetAttribute's opt-ins */

static cudaError_t refuse(const launch_desc &d, cudaError_t e, const char *why) {
    fprintf(stderr,
            "saec-simt: launch of kernel %s (%s:%d) refused, as the CUDA runtime would: %s (%s)\n",
            d.name, d.file, d.line, why, cudaGetErrorName(e));
    saec_simt_record_error(e);
    return e;
}

void launch(const launch_desc &d) {
    char why[256];
    if (cur_worker && cur_worker->cur) fault("kernel %s launched from device code", d.name);
    uint64_t threads = (uint64_t)d.block.x * d.block.y * d.block.z;
    if (!d.grid.x || !d.grid.y || !d.grid.z || !threads) {
        snprintf(why, sizeof why, "grid (%u,%u,%u), block (%u,%u,%u): a dimension is zero", d.grid.x,
                 d.grid.y, d.grid.z, d.block.x, d.block.y, d.block.z);
        refuse(d, cudaErrorInvalidConfiguration, why);
        return;
    }
    if (d.block.x > 1024 || d.block.y > 1024 || d.block.z > 64 || threads > MAX_THREADS) {
        snprintf(why, sizeof why, "block (%u,%u,%u) is over the 1024 threads a block may have",
                 d.block.x, d.block.y, d.block.z);
        refuse(d, cudaErrorInvalidConfiguration, why);
        return;
    }
    if (d.grid.x > 2147483647u || d.grid.y > 65535 || d.grid.z > 65535) {
        snprintf(why, sizeof why, "grid (%u,%u,%u) is over the device's (2^31-1, 65535, 65535)",
                 d.grid.x, d.grid.y, d.grid.z);
        refuse(d, cudaErrorInvalidConfiguration, why);
        return;
    }
    if (d.max_threads && threads > d.max_threads) {
        snprintf(why, sizeof why, "%llu threads per block, over the kernel's __launch_bounds__(%u)",
                 (unsigned long long)threads, d.max_threads);
        refuse(d, cudaErrorLaunchOutOfResources, why);
        return;
    }
    std::lock_guard<std::mutex> lock(launch_mu);
    auto it = max_dyn_smem.find(d.func);
    size_t limit = it == max_dyn_smem.end() ? SMEM_DEFAULT : (size_t)it->second;
    if (d.dyn_smem > limit) {
        snprintf(why, sizeof why,
                 "%zu bytes of dynamic shared memory, over the %zu allowed%s", d.dyn_smem, limit,
                 it == max_dyn_smem.end()
                     ? " without cudaFuncSetAttribute(cudaFuncAttributeMaxDynamicSharedMemorySize)"
                     : " by the kernel's cudaFuncAttributeMaxDynamicSharedMemorySize");
        refuse(d, cudaErrorInvalidValue, why);
        return;
    }

    const settings &s = config();
    /* Never destroyed: its threads sleep on its condition variable until the process ends. */
    static pool *workers = new pool();
    if (workers->workers.empty()) workers->start(s.workers);
    grid_job job;
    job.L = &d;
    uint64_t n_blocks = (uint64_t)d.grid.x * d.grid.y * d.grid.z;
    if (n_blocks > (1ull << 32)) {
        refuse(d, cudaErrorInvalidConfiguration, "more than 2^32 blocks: too many for the emulator");
        return;
    }
    uint64_t rng = s.seed ^ 0xB10C0DE;
    make_order(job.order, (uint32_t)n_blocks, s.block_order, &rng);
    workers->run(&job);
}

} // namespace saec_simt

/* cudaFuncSetAttribute: the per-kernel opt-in to more dynamic shared memory. */
extern "C" cudaError_t cudaFuncSetAttribute(const void *func, enum cudaFuncAttribute attr, int value) {
    using namespace saec_simt;
    if (!func) {
        saec_simt_record_error(cudaErrorInvalidDeviceFunction);
        return cudaErrorInvalidDeviceFunction;
    }
    if (attr == cudaFuncAttributeMaxDynamicSharedMemorySize) {
        if (value < 0 || (size_t)value > SMEM_OPTIN) {
            saec_simt_record_error(cudaErrorInvalidValue);
            return cudaErrorInvalidValue;
        }
        std::lock_guard<std::mutex> lock(launch_mu);
        max_dyn_smem[func] = value;
        return cudaSuccess;
    }
    if (attr == cudaFuncAttributePreferredSharedMemoryCarveout) return cudaSuccess; /* a hint */
    saec_simt_record_error(cudaErrorInvalidValue);
    return cudaErrorInvalidValue;
}
