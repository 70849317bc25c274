/* Emulated-GPU test tier: tests the NCCL stand-in (nccl_emu.c) with ranks forked on this host.
 * The parent creates the unique id before forking, so it is rank 0; ranks 1.. are children.
 * Results are checked bit for bit against a reduction in rank order 0, 1, 2, ...; the failure
 * cases (mismatched calls, a dead rank, a hung rank, ncclCommAbort from another thread) must
 * fail on every rank, quickly, with a message that names the culprit. The emulator's own error
 * lines ("saec-simt nccl: ...") are expected on stderr there.
 *
 *   gcc -std=c11 -O1 -g -Wall -Wextra -Wshadow -Werror -I/usr/local/cuda/include \
 *       tests/simt/nccl_emu.c tests/simt/test_nccl_emu.c -lpthread -o /tmp/tn && /tmp/tn
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <nccl.h>

#define MAX_RANKS 4
#define BIG 1000003 /* crosses the emulator's 1 MiB staging chunks at an odd offset */

static int g_rank; /* this process's rank, for messages */

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "FAIL (rank %d) %s:%d: %s\n", g_rank, __FILE__, __LINE__, #cond);      \
            fails++;                                                                               \
        }                                                                                          \
    } while (0)

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void sleep_s(double s) {
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    nanosleep(&ts, NULL);
}

/* ---- data: every rank can compute every rank's input ------------------------------------ */

static uint64_t mix(uint64_t x) { /* splitmix64 */
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static size_t type_size(ncclDataType_t t) { return t == ncclFloat32 ? 4 : 8; }

/* Rank `rank`'s input of case `salt`. Floats carry more bits than one sum keeps, so the order
   of the reduction shows in the result. */
static void fill(void *buf, ncclDataType_t t, size_t count, int rank, uint64_t salt) {
    for (size_t i = 0; i < count; i++) {
        uint64_t h = mix(mix(salt) ^ ((uint64_t)rank << 48) ^ i);
        switch (t) {
        case ncclInt64: ((int64_t *)buf)[i] = (int64_t)h; break;
        case ncclFloat32: ((float *)buf)[i] = (float)(int32_t)(uint32_t)(h >> 32) * 0x1p-16f; break;
        default: ((double *)buf)[i] = (double)(int64_t)h * 0x1p-20; break;
        }
    }
}

/* acc = op(acc, in), written independently of the emulator; integer sums wrap. */
#define REF(T, U)                                                                                  \
    for (size_t i = 0; i < count; i++) {                                                           \
        T a = ((T *)acc)[i], b = ((const T *)in)[i];                                               \
        ((T *)acc)[i] = op == ncclSum   ? (T)((U)a + (U)b)                                         \
                        : op == ncclMin ? (b < a ? b : a)                                          \
                                        : (b > a ? b : a);                                         \
    }

static void ref_reduce(void *acc, const void *in, size_t count, ncclDataType_t t, ncclRedOp_t op) {
    switch (t) {
    case ncclInt64: REF(int64_t, uint64_t) break;
    case ncclFloat32: REF(float, float) break;
    default: REF(double, double) break;
    }
}

static void *xmalloc(size_t bytes) {
    void *p = malloc(bytes ? bytes : 1);
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    return p;
}

/* ---- the harness ------------------------------------------------------------------------- */

typedef int (*rank_fn)(int rank, int nranks, const ncclUniqueId *id, const void *arg);

/* Runs fn as ranks 0 .. procs-1 of an nranks communicator (procs < nranks leaves ranks out).
   The timeout goes to SAEC_COMM_TIMEOUT. Returns the number of failed ranks. */
static int run_world(const char *name, int nranks, int procs, const char *timeout, rank_fn fn,
                     const void *arg) {
    setenv("SAEC_COMM_TIMEOUT", timeout, 1);
    ncclUniqueId id;
    if (ncclGetUniqueId(&id) != ncclSuccess) {
        fprintf(stderr, "FAIL %s: ncclGetUniqueId: %s\n", name, ncclGetLastError(NULL));
        return 1;
    }
    fflush(stdout);
    fflush(stderr);
    pid_t pids[MAX_RANKS] = {0};
    for (int r = 1; r < procs; r++) {
        pids[r] = fork();
        if (pids[r] < 0) {
            perror("fork");
            exit(2);
        }
        if (pids[r] == 0) {
            g_rank = r;
            alarm(120); /* a hang fails the test instead of stalling it */
            _exit(fn(r, nranks, &id, arg) ? 1 : 0);
        }
    }
    g_rank = 0;
    alarm(120);
    int failed = fn(0, nranks, &id, arg) ? 1 : 0;
    for (int r = 1; r < procs; r++) {
        int st = 0;
        if (waitpid(pids[r], &st, 0) != pids[r] || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
            fprintf(stderr, "FAIL %s: rank %d ended with status 0x%x\n", name, r, st);
            failed++;
        }
    }
    alarm(0);
    printf("%-52s %d ranks: %s\n", name, nranks, failed ? "FAIL" : "ok");
    fflush(stdout);
    return failed;
}

static ncclComm_t join(int rank, int nranks, const ncclUniqueId *id, int *fails) {
    ncclComm_t comm = NULL;
    ncclResult_t r = ncclCommInitRank(&comm, nranks, *id, rank);
    if (r != ncclSuccess) {
        fprintf(stderr, "FAIL (rank %d) ncclCommInitRank: %s: %s\n", rank, ncclGetErrorString(r),
                ncclGetLastError(NULL));
        ++*fails;
    }
    return comm;
}

/* ---- correct collectives ----------------------------------------------------------------- */

static int all_reduce_case(ncclComm_t comm, int rank, int nranks, ncclDataType_t t, ncclRedOp_t op,
                           size_t count, int in_place, uint64_t salt) {
    int fails = 0;
    size_t bytes = count * type_size(t);
    char *mine = xmalloc(bytes), *want = xmalloc(bytes), *tmp = xmalloc(bytes);
    char *out = in_place ? mine : xmalloc(bytes);
    fill(mine, t, count, rank, salt);
    if (!in_place) memset(out, 0xab, bytes);
    fill(want, t, count, 0, salt);
    for (int r = 1; r < nranks; r++) {
        fill(tmp, t, count, r, salt);
        ref_reduce(want, tmp, count, t, op);
    }
    ncclResult_t res = ncclAllReduce(mine, out, count, t, op, comm, NULL);
    CHECK(res == ncclSuccess);
    CHECK(memcmp(out, want, bytes) == 0);
    if (!in_place) { /* the send buffer is left alone */
        fill(tmp, t, count, rank, salt);
        CHECK(memcmp(mine, tmp, bytes) == 0);
        free(out);
    }
    if (fails)
        fprintf(stderr, "  ^ all-reduce of %zu x type %d, op %d, %s\n", count, (int)t, (int)op,
                in_place ? "in place" : "out of place");
    free(mine);
    free(want);
    free(tmp);
    return fails;
}

static int all_gather_case(ncclComm_t comm, int rank, int nranks, ncclDataType_t t, size_t count,
                           int in_place, uint64_t salt) {
    int fails = 0;
    size_t bytes = count * type_size(t);
    char *out = xmalloc(bytes * (size_t)nranks), *want = xmalloc(bytes);
    memset(out, 0xab, bytes * (size_t)nranks);
    char *mine = in_place ? out + (size_t)rank * bytes : xmalloc(bytes); /* NCCL's in-place rule */
    fill(mine, t, count, rank, salt);
    ncclResult_t res = ncclAllGather(mine, out, count, t, comm, NULL);
    CHECK(res == ncclSuccess);
    for (int r = 0; r < nranks; r++) {
        fill(want, t, count, r, salt);
        CHECK(memcmp(out + (size_t)r * bytes, want, bytes) == 0);
    }
    if (fails)
        fprintf(stderr, "  ^ all-gather of %zu x type %d, %s\n", count, (int)t,
                in_place ? "in place" : "out of place");
    if (!in_place) free(mine);
    free(out);
    free(want);
    return fails;
}

/* Polls the async error as saec's watchdog does, concurrently with the collectives. */
typedef struct {
    ncclComm_t comm;
    pthread_mutex_t mu; /* guards stop */
    int stop;
    int bad; /* read after the join */
} watcher;

static void *watch_main(void *arg) {
    watcher *w = arg;
    for (;;) {
        pthread_mutex_lock(&w->mu);
        int stop = w->stop;
        pthread_mutex_unlock(&w->mu);
        if (stop) return NULL;
        ncclResult_t st = ncclInternalError;
        if (ncclCommGetAsyncError(w->comm, &st) != ncclSuccess || st != ncclSuccess) w->bad = 1;
        sleep_s(0.0005);
    }
}

static int collectives(int rank, int nranks, const ncclUniqueId *id, const void *arg) {
    (void)arg;
    int fails = 0;
    ncclComm_t comm = join(rank, nranks, id, &fails);
    if (!comm) return fails;
    watcher w = {.comm = comm, .stop = 0, .bad = 0};
    pthread_mutex_init(&w.mu, NULL);
    pthread_t th;
    CHECK(pthread_create(&th, NULL, watch_main, &w) == 0);

    const ncclDataType_t types[] = {ncclFloat32, ncclFloat64, ncclInt64}; /* saec's */
    const ncclRedOp_t ops[] = {ncclSum, ncclMin, ncclMax};
    const size_t counts[] = {0, 1, 7, BIG};
    uint64_t salt = 1;
    for (int ti = 0; ti < 3; ti++)
        for (int ci = 0; ci < 4; ci++) {
            for (int oi = 0; oi < 3; oi++)
                for (int in_place = 0; in_place < 2; in_place++)
                    fails += all_reduce_case(comm, rank, nranks, types[ti], ops[oi], counts[ci],
                                             in_place, salt++);
            for (int in_place = 0; in_place < 2; in_place++)
                fails += all_gather_case(comm, rank, nranks, types[ti], counts[ci], in_place,
                                         salt++);
        }

    pthread_mutex_lock(&w.mu);
    w.stop = 1;
    pthread_mutex_unlock(&w.mu);
    pthread_join(th, NULL);
    pthread_mutex_destroy(&w.mu);
    CHECK(!w.bad);
    CHECK(ncclCommFinalize(comm) == ncclSuccess);
    CHECK(ncclCommDestroy(comm) == ncclSuccess);
    return fails;
}

/* ---- failures ---------------------------------------------------------------------------- */

/* Checks a failed collective: its code, the async error, the message, and that the next
   collective fails at once with the same code. */
static int expect_broken(ncclComm_t comm, ncclResult_t got, ncclResult_t want1, ncclResult_t want2,
                         const char *needle) {
    int fails = 0;
    CHECK(got == want1 || got == want2);
    ncclResult_t async = ncclSuccess;
    CHECK(ncclCommGetAsyncError(comm, &async) == ncclSuccess);
    CHECK(async == got);
    const char *msg = ncclGetLastError(comm);
    CHECK(msg && strstr(msg, needle));
    if (fails) fprintf(stderr, "  ^ got %d, last error: %s\n", (int)got, msg ? msg : "(null)");
    double one = 1;
    CHECK(ncclAllReduce(&one, &one, 1, ncclFloat64, ncclSum, comm, NULL) == got);
    return fails;
}

typedef struct {
    int culprit; /* the rank that deviates */
    enum { OTHER_KIND, OTHER_COUNT, OTHER_TYPE } how;
} mismatch_arg;

static int mismatch(int rank, int nranks, const ncclUniqueId *id, const void *arg) {
    const mismatch_arg *m = arg;
    int fails = 0;
    ncclComm_t comm = join(rank, nranks, id, &fails);
    if (!comm) return fails;
    float f = 1.0f;
    CHECK(ncclAllReduce(&f, &f, 1, ncclFloat32, ncclSum, comm, NULL) == ncclSuccess);
    CHECK(f == (float)nranks);
    /* larger than the socket buffers: peers are still sending when rank 0 finds the mismatch */
    size_t count = 300000;
    double *buf = xmalloc((count + 1) * (size_t)nranks * sizeof *buf);
    memset(buf, 0, (count + 1) * (size_t)nranks * sizeof *buf);
    ncclResult_t r;
    if (rank != m->culprit)
        r = ncclAllReduce(buf, buf, count, ncclFloat64, ncclSum, comm, NULL);
    else if (m->how == OTHER_KIND)
        r = ncclAllGather(buf, buf, count, ncclFloat64, comm, NULL);
    else if (m->how == OTHER_COUNT)
        r = ncclAllReduce(buf, buf, count + 1, ncclFloat64, ncclSum, comm, NULL);
    else
        r = ncclAllReduce(buf, buf, count, ncclInt64, ncclSum, comm, NULL);
    fails += expect_broken(comm, r, ncclInvalidUsage, ncclInvalidUsage, "mismatched collectives");
    free(buf);
    CHECK(ncclCommAbort(comm) == ncclSuccess);
    return fails;
}

/* `dead` exits right after the set-up; the others' all-reduce must fail at once. */
static int dead_rank(int rank, int nranks, const ncclUniqueId *id, const void *arg) {
    int dead = *(const int *)arg, fails = 0;
    ncclComm_t comm = join(rank, nranks, id, &fails);
    if (!comm) return fails;
    if (rank == dead) {
        if (rank != 0) _exit(0); /* no destroy: the process just ends */
        ncclCommAbort(comm);     /* rank 0 is the parent: an abort closes its sockets alike */
        return fails;
    }
    size_t count = BIG;
    float *buf = xmalloc(count * sizeof *buf);
    memset(buf, 0, count * sizeof *buf);
    double t0 = now_s();
    ncclResult_t r = ncclAllReduce(buf, buf, count, ncclFloat32, ncclSum, comm, NULL);
    double took = now_s() - t0;
    char needle[32];
    snprintf(needle, sizeof needle, "rank %d", dead);
    fails += expect_broken(comm, r, ncclRemoteError, ncclSystemError, needle);
    CHECK(took < 3.0); /* SAEC_COMM_TIMEOUT is 5: the lost connection was seen, not waited out */
    free(buf);
    CHECK(ncclCommAbort(comm) == ncclSuccess);
    return fails;
}

/* The last rank joins the collective after rank 0's deadline: rank 0 names it, every rank
   (the late one too, when it arrives) fails with that reason. */
static int late_rank(int rank, int nranks, const ncclUniqueId *id, const void *arg) {
    (void)arg;
    int fails = 0;
    ncclComm_t comm = join(rank, nranks, id, &fails);
    if (!comm) return fails;
    if (rank == nranks - 1) sleep_s(3.5); /* SAEC_COMM_TIMEOUT is 2 */
    double t0 = now_s();
    int64_t v = rank;
    ncclResult_t r = ncclAllReduce(&v, &v, 1, ncclInt64, ncclMax, comm, NULL);
    double took = now_s() - t0;
    char needle[32];
    snprintf(needle, sizeof needle, "rank %d", nranks - 1);
    fails += expect_broken(comm, r, ncclSystemError, ncclSystemError, needle);
    if (rank == 0) CHECK(took > 1.9 && took < 3.5);
    if (rank == nranks - 1) CHECK(took < 1.0); /* the reason was waiting for it */
    CHECK(ncclCommAbort(comm) == ncclSuccess);
    return fails;
}

/* The set-up misses a rank: rank 0 and the ranks that came name it. */
static int missing_rank(int rank, int nranks, const ncclUniqueId *id, const void *arg) {
    (void)arg;
    int fails = 0;
    ncclComm_t comm = NULL;
    double t0 = now_s();
    ncclResult_t r = ncclCommInitRank(&comm, nranks, *id, rank);
    double took = now_s() - t0;
    CHECK(r == ncclSystemError);
    CHECK(comm == NULL);
    CHECK(strstr(ncclGetLastError(NULL), "never joined") != NULL);
    char needle[32];
    snprintf(needle, sizeof needle, "rank %d", nranks - 1);
    CHECK(strstr(ncclGetLastError(NULL), needle) != NULL);
    CHECK(took > 1.9 && took < 4.0);
    return fails;
}

/* The last process joins as rank 1 too: the set-up fails on every process, naming the rank. */
static int duplicate_rank(int rank, int nranks, const ncclUniqueId *id, const void *arg) {
    (void)arg;
    int fails = 0;
    ncclComm_t comm = NULL;
    ncclResult_t r = ncclCommInitRank(&comm, nranks, *id, rank == nranks - 1 ? 1 : rank);
    CHECK(r == ncclInvalidUsage);
    CHECK(comm == NULL);
    CHECK(strstr(ncclGetLastError(NULL), "two processes joined as rank 1") != NULL);
    return fails;
}

typedef struct {
    ncclComm_t comm;
    double delay;
} abort_arg;

static void *abort_main(void *arg) {
    abort_arg *a = arg;
    sleep_s(a->delay);
    ncclCommAbort(a->comm);
    return NULL;
}

/* Rank 0 blocks in a collective that the others join late; another thread aborts it. */
static int abort_blocked(int rank, int nranks, const ncclUniqueId *id, const void *arg) {
    (void)arg;
    int fails = 0;
    ncclComm_t comm = join(rank, nranks, id, &fails);
    if (!comm) return fails;
    float f = 1.0f;
    if (rank == 0) {
        abort_arg a = {comm, 0.3};
        pthread_t th;
        CHECK(pthread_create(&th, NULL, abort_main, &a) == 0);
        double t0 = now_s();
        ncclResult_t r = ncclAllReduce(&f, &f, 1, ncclFloat32, ncclSum, comm, NULL);
        double took = now_s() - t0;
        pthread_join(th, NULL);
        CHECK(r == ncclSystemError);
        CHECK(strstr(ncclGetLastError(NULL), "aborted") != NULL);
        CHECK(took > 0.25 && took < 2.0);
        return fails; /* the aborted communicator is gone */
    }
    sleep_s(1.0);
    ncclResult_t r = ncclAllReduce(&f, &f, 1, ncclFloat32, ncclSum, comm, NULL);
    fails += expect_broken(comm, r, ncclRemoteError, ncclRemoteError, "rank 0");
    CHECK(ncclCommAbort(comm) == ncclSuccess);
    return fails;
}

/* ---- one process ------------------------------------------------------------------------- */

static int single_process(void) {
    int fails = 0;
    g_rank = 0;
    CHECK(strcmp(ncclGetErrorString(ncclSuccess), "no error") == 0);
    CHECK(strstr(ncclGetErrorString(ncclRemoteError), "remote process exited") != NULL);

    ncclUniqueId id, forged, junk;
    CHECK(ncclGetUniqueId(&id) == ncclSuccess);
    memset(&junk, 0, sizeof junk);
    ncclComm_t comm = NULL;
    CHECK(ncclCommInitRank(&comm, 1, junk, 0) == ncclInvalidArgument);
    CHECK(ncclCommInitRank(&comm, 2, id, 2) == ncclInvalidArgument);
    forged = id;
    forged.internal[20] ^= 1; /* the nonce: an id this process did not create */
    CHECK(ncclCommInitRank(&comm, 1, forged, 0) == ncclInvalidUsage);
    CHECK(strstr(ncclGetLastError(NULL), "process that created") != NULL);

    CHECK(ncclCommInitRank(&comm, 1, id, 0) == ncclSuccess); /* the forgery did not use it up */
    ncclComm_t again = NULL;
    CHECK(ncclCommInitRank(&again, 1, id, 0) == ncclInvalidUsage); /* an id serves once */
    CHECK(again == NULL);
    CHECK(ncclCommDestroy(comm) == ncclSuccess);
    return fails;
}

/* A world of one (saec's SAEC_COMM_FORCE=1), and usage errors that leave a communicator usable. */
static int world_of_one(void) {
    int fails = 0;
    g_rank = 0;
    ncclUniqueId id;
    ncclComm_t comm = NULL;
    CHECK(ncclGetUniqueId(&id) == ncclSuccess);
    CHECK(ncclCommInitRank(&comm, 1, id, 0) == ncclSuccess);
    if (!comm) return fails;
    fails += all_reduce_case(comm, 0, 1, ncclFloat64, ncclSum, 1000, 1, 7);
    fails += all_reduce_case(comm, 0, 1, ncclInt64, ncclMin, 1000, 0, 8);
    fails += all_gather_case(comm, 0, 1, ncclFloat32, 1000, 1, 9);
    double d = 1;
    CHECK(ncclAllReduce(&d, &d, 1, ncclInt32, ncclSum, comm, NULL) == ncclInvalidArgument);
    CHECK(ncclAllReduce(&d, &d, 1, ncclFloat64, ncclProd, comm, NULL) == ncclInvalidArgument);
    CHECK(ncclAllReduce(NULL, NULL, 1, ncclFloat64, ncclSum, comm, NULL) == ncclInvalidArgument);
    ncclResult_t async = ncclInternalError;
    CHECK(ncclCommGetAsyncError(comm, &async) == ncclSuccess && async == ncclSuccess);
    fails += all_reduce_case(comm, 0, 1, ncclFloat32, ncclMax, 3, 1, 10); /* still usable */
    CHECK(ncclCommFinalize(comm) == ncclSuccess);
    CHECK(ncclAllReduce(&d, &d, 1, ncclFloat64, ncclSum, comm, NULL) == ncclInvalidUsage);
    CHECK(ncclCommDestroy(comm) == ncclSuccess);
    return fails;
}

int main(void) {
    int fails = 0;
    fails += single_process();
    fails += world_of_one();
    printf("%-52s: %s\n", "argument checks, a world of one", fails ? "FAIL" : "ok");
    for (int n = 2; n <= 3; n++) {
        fails +=
            run_world("all-reduce and all-gather, checked exactly", n, n, "60", collectives, NULL);
        const mismatch_arg kinds[] = {{n - 1, OTHER_KIND}, {1, OTHER_COUNT}, {0, OTHER_TYPE}};
        for (int k = 0; k < 3; k++)
            fails +=
                run_world("mismatched calls fail on every rank", n, n, "60", mismatch, &kinds[k]);
        const int dead_child = n - 1, dead_root = 0;
        fails += run_world("a rank that exited fails the others at once", n, n, "5", dead_rank,
                           &dead_child);
        fails += run_world("a rank 0 that aborted fails the others at once", n, n, "5", dead_rank,
                           &dead_root);
        fails += run_world("ncclCommAbort from another thread unblocks", n, n, "60", abort_blocked,
                           NULL);
    }
    fails += run_world("a late rank is named after SAEC_COMM_TIMEOUT", 3, 3, "2", late_rank, NULL);
    fails += run_world("a missing rank is named at set-up", 3, 2, "2", missing_rank, NULL);
    fails += run_world("a rank joined twice fails the set-up", 3, 3, "60", duplicate_rank, NULL);
    printf("%s\n", fails ? "test_nccl_emu: FAILED" : "test_nccl_emu: all passed");
    return fails ? 1 : 0;
}
