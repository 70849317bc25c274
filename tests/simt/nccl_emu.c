/* Emulated-GPU test tier: a stand-in for the NCCL calls saec makes (host/comm/comm_nccl.c), with the
 * signatures of the real <nccl.h>. Test infrastructure only: never a performance path and never
 * a real NCCL. In this tier device memory is host memory and stream work runs eagerly on the
 * calling thread, so every collective here is complete when it returns and the stream argument
 * is ignored.
 *
 * Transport: TCP, a star around rank 0, so it needs no MPI and works under any launcher, on one
 * host or several. Wire format (integers big-endian):
 *   unique id  "saecsimt", u32 version, u32 port, u64 random nonce, then the listening address
 *              as NUL-terminated text. ncclGetUniqueId opens that listening socket (on
 *              SAEC_SIMT_NCCL_ADDR, an address the other ranks can reach, else 127.0.0.1; the OS
 *              picks the port), so rank 0 must join in the process that created the id.
 *   hello      peer → 0: u32 magic, u32 version, u64 nonce, u32 rank, u32 nranks
 *   status     0 → peer: u32 ncclResult_t, u32 length, that many bytes of error text. The answer
 *              to a hello, and the head of every collective's reply (the result follows an
 *              ncclSuccess status).
 *   call       peer → 0: u64 sequence number, u64 count, u32 kind, u32 datatype, u32 op, then
 *              the send buffer
 * Rank 0 reduces in rank order 0, 1, 2, ..., so results do not depend on arrival order, and it
 * checks every rank's call against its own, so mismatched collectives fail (ncclInvalidUsage,
 * naming both calls) instead of mixing data.
 *
 * Errors. Every wait is a poll() bounded by SAEC_COMM_TIMEOUT (seconds; default 300). A failed
 * collective (lost peer, timeout, mismatch) breaks the communicator: its error becomes the
 * async error (ncclCommGetAsyncError), later collectives return it at once, and rank 0 sends
 * its reason to every peer. Messages go to ncclGetLastError and to stderr ("saec-simt nccl:").
 * ncclCommAbort may run on another thread while a collective blocks (saec's watchdog does): it
 * shuts the sockets down, which wakes the collective, and the last call to leave frees the
 * communicator.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <nccl.h>

#define ID_MAGIC "saecsimt"
#define ID_MAGIC_BYTES 8
#define ID_ADDR_OFFSET 24
#define WIRE_VERSION 1u
#define HELLO_MAGIC 0x53494d54u /* "SIMT" */
#define HELLO_BYTES 24
#define STATUS_BYTES 8
#define CALL_BYTES 28
#define DEFAULT_TIMEOUT_S 300.0
/* Peers wait this much longer than rank 0, so that rank 0's explanation (which rank failed)
   reaches them before their own deadline fires. */
#define REPLY_GRACE_S 2.0
/* A peer sends its hello right after connecting; a stranger that does not is dropped. */
#define HELLO_WAIT_S 5.0
/* Rank 0 reduces a peer's buffer through a staging chunk of this size. */
#define CHUNK_BYTES ((size_t)1 << 20)
#define MSG_CAP 1024

enum { KIND_ALLREDUCE = 1, KIND_ALLGATHER = 2 };
enum { IO_OK = 0, IO_TIMEOUT, IO_CLOSED, IO_ERROR, IO_REPLY };

typedef struct {
    uint64_t seq, count;
    uint32_t kind, type, op; /* op is 0 for all-gather */
} call_desc;

typedef struct {
    uint32_t port;
    uint64_t nonce;
    char addr[NCCL_UNIQUE_ID_BYTES - ID_ADDR_OFFSET];
} id_fields;

struct ncclComm {
    int rank, nranks;
    double timeout_s;
    int *fds;     /* rank 0: fds[r] is rank r's socket (r >= 1); other ranks: fds[0] is rank 0's */
    uint64_t seq; /* collectives started; touched only by the thread that calls them */
    pthread_mutex_t mu; /* guards the rest: shared with ncclCommAbort, ncclCommGetAsyncError */
    int busy;           /* calls inside a collective */
    int closing;        /* aborted or destroyed: the last call to leave frees the struct */
    int finalized;
    ncclResult_t async_error; /* what broke the communicator, or ncclSuccess */
    /* Written only until the communicator breaks, so that a thread that saw async_error (the
       watchdog) reads a stable text. */
    char last_error[MSG_CAP];
};

/* The last error of calls made without a communicator (or before one exists). */
static _Thread_local char thread_last_error[MSG_CAP];

/* ---- small helpers ---------------------------------------------------------------------- */

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void put_u32(unsigned char *p, uint32_t v) {
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}
static uint32_t get_u32(const unsigned char *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}
static void put_u64(unsigned char *p, uint64_t v) {
    put_u32(p, (uint32_t)(v >> 32));
    put_u32(p + 4, (uint32_t)v);
}
static uint64_t get_u64(const unsigned char *p) {
    return ((uint64_t)get_u32(p) << 32) | get_u32(p + 4);
}

/* Records and prints an error; returns code. With a communicator that is not yet broken, the
   text becomes its last error, and when `breaks`, code becomes its async error. */
static ncclResult_t report(struct ncclComm *comm, int rank, ncclResult_t code, int breaks,
                           const char *fmt, ...) {
    char msg[MSG_CAP];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(thread_last_error, sizeof thread_last_error, "%s", msg);
    if (comm) {
        pthread_mutex_lock(&comm->mu);
        if (comm->async_error == ncclSuccess) {
            snprintf(comm->last_error, sizeof comm->last_error, "%s", msg);
            if (breaks) comm->async_error = code;
        }
        pthread_mutex_unlock(&comm->mu);
    }
    if (rank >= 0)
        fprintf(stderr, "saec-simt nccl: rank %d: %s\n", rank, msg);
    else
        fprintf(stderr, "saec-simt nccl: %s\n", msg);
    return code;
}

/* The types saec reduces and gathers. */
static size_t type_size(uint32_t t) {
    switch (t) {
    case ncclInt64: return 8;
    case ncclFloat32: return 4;
    case ncclFloat64: return 8;
    }
    return 0;
}

static const char *type_name(uint32_t t) {
    switch (t) {
    case ncclInt64: return "int64";
    case ncclFloat32: return "float32";
    case ncclFloat64: return "float64";
    }
    return "?";
}

static const char *op_name(uint32_t op) {
    switch (op) {
    case ncclSum: return "sum";
    case ncclMin: return "min";
    case ncclMax: return "max";
    }
    return "?";
}

static void describe(const call_desc *d, char *out, size_t cap) {
    if (d->kind == KIND_ALLREDUCE)
        snprintf(out, cap, "all-reduce #%llu (%llu x %s, %s)", (unsigned long long)d->seq,
                 (unsigned long long)d->count, type_name(d->type), op_name(d->op));
    else
        snprintf(out, cap, "all-gather #%llu (%llu x %s per rank)", (unsigned long long)d->seq,
                 (unsigned long long)d->count, type_name(d->type));
}

/* U is T's unsigned twin, so that integer sums wrap (as on the GPU) instead of overflowing. */
#define REDUCE(T, U)                                                                               \
    do {                                                                                           \
        T *o = acc;                                                                                \
        const T *x = in;                                                                           \
        if (op == ncclSum)                                                                         \
            for (size_t i = 0; i < n; i++)                                                         \
                o[i] = (T)((U)o[i] + (U)x[i]);                                                     \
        else if (op == ncclMin)                                                                    \
            for (size_t i = 0; i < n; i++)                                                         \
                o[i] = x[i] < o[i] ? x[i] : o[i];                                                  \
        else                                                                                       \
            for (size_t i = 0; i < n; i++)                                                         \
                o[i] = x[i] > o[i] ? x[i] : o[i];                                                  \
    } while (0)

/* acc[i] = op(acc[i], in[i]): acc holds the ranks before in's. */
static void reduce(void *acc, const void *in, size_t n, uint32_t type, uint32_t op) {
    switch (type) {
    case ncclInt64: REDUCE(int64_t, uint64_t); break;
    case ncclFloat32: REDUCE(float, float); break;
    case ncclFloat64: REDUCE(double, double); break;
    }
}

/* ---- socket I/O: non-blocking sockets, every wait bounded by a deadline ------------------ */

static int wait_fd(int fd, short events, double deadline, short *revents) {
    for (;;) {
        double left = deadline - now_s();
        int ms = left <= 0 ? 0 : left > 86400.0 ? 86400000 : (int)(left * 1000.0) + 1;
        struct pollfd p = {.fd = fd, .events = events, .revents = 0};
        int n = poll(&p, 1, ms); /* polls once even past the deadline: what is ready, counts */
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return IO_ERROR;
        if (n > 0) {
            if (revents) *revents = p.revents;
            return IO_OK; /* ready, or hung up: the next call tells */
        }
        if (now_s() >= deadline) return IO_TIMEOUT;
    }
}

/* With watch_reply (a peer sending its part), input from rank 0 ends the send with IO_REPLY:
   rank 0 answers before it has read everything only to report an error. */
static int send_all(int fd, const void *buf, size_t n, double deadline, int watch_reply) {
    const char *p = buf;
    while (n > 0) {
        ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
        if (k > 0) {
            p += k;
            n -= (size_t)k;
            continue;
        }
        if (k < 0 && errno == EINTR) continue;
        if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            short rev = 0;
            int w = wait_fd(fd, (short)(POLLOUT | (watch_reply ? POLLIN : 0)), deadline, &rev);
            if (w != IO_OK) return w;
            if (watch_reply && (rev & POLLIN)) return IO_REPLY;
            continue;
        }
        if (k < 0 && (errno == EPIPE || errno == ECONNRESET)) return IO_CLOSED;
        return IO_ERROR;
    }
    return IO_OK;
}

static int recv_all(int fd, void *buf, size_t n, double deadline) {
    char *p = buf;
    while (n > 0) {
        ssize_t k = recv(fd, p, n, 0);
        if (k > 0) {
            p += k;
            n -= (size_t)k;
            continue;
        }
        if (k == 0) return IO_CLOSED;
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            int w = wait_fd(fd, POLLIN, deadline, NULL);
            if (w != IO_OK) return w;
            continue;
        }
        if (errno == ECONNRESET) return IO_CLOSED;
        return IO_ERROR;
    }
    return IO_OK;
}

static int send_status(int fd, ncclResult_t status, const char *text, double deadline) {
    size_t len = text ? strlen(text) : 0;
    if (len >= MSG_CAP) len = MSG_CAP - 1;
    unsigned char head[STATUS_BYTES];
    put_u32(head, (uint32_t)status);
    put_u32(head + 4, (uint32_t)len);
    int io = send_all(fd, head, sizeof head, deadline, 0);
    if (io == IO_OK && len) io = send_all(fd, text, len, deadline, 0);
    return io;
}

/* Reads a status; text (MSG_CAP bytes) gets its error text. A malformed one is IO_ERROR. */
static int recv_status(int fd, ncclResult_t *status, char *text, double deadline) {
    unsigned char head[STATUS_BYTES];
    int io = recv_all(fd, head, sizeof head, deadline);
    if (io != IO_OK) return io;
    uint32_t st = get_u32(head), len = get_u32(head + 4);
    if (st >= ncclNumResults || st == ncclInProgress || len >= MSG_CAP || (st == 0 && len)) {
        errno = EPROTO;
        return IO_ERROR;
    }
    io = recv_all(fd, text, len, deadline);
    text[io == IO_OK ? len : 0] = '\0';
    *status = (ncclResult_t)st;
    return io;
}

static void set_nodelay(int fd) {
    /* a call's head and its data are separate sends: do not let Nagle hold the second */
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

static void add_rank(char *out, size_t cap, int r) {
    size_t len = strlen(out);
    snprintf(out + len, cap - len, "%s%d", len ? ", " : "", r);
}

/* ---- the unique id ------------------------------------------------------------------------ */

/* Listening sockets made by ncclGetUniqueId in this process, until rank 0 takes one. */
struct listener {
    uint64_t nonce;
    int fd;
    struct listener *next;
};
static pthread_mutex_t listeners_mu = PTHREAD_MUTEX_INITIALIZER;
static struct listener *listeners;

static int take_listener(uint64_t nonce) {
    int fd = -1;
    pthread_mutex_lock(&listeners_mu);
    for (struct listener **l = &listeners; *l; l = &(*l)->next)
        if ((*l)->nonce == nonce) {
            struct listener *found = *l;
            fd = found->fd;
            *l = found->next;
            free(found);
            break;
        }
    pthread_mutex_unlock(&listeners_mu);
    return fd;
}

/* A listening socket on host (any port); its numeric address and port in addr and *port. */
static ncclResult_t open_listener(const char *host, int *out_fd, char *addr, size_t addr_cap,
                                  uint32_t *port) {
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_socktype = SOCK_STREAM;
    int g = getaddrinfo(host, "0", &hints, &res);
    if (g != 0)
        return report(NULL, -1, ncclSystemError, 0,
                      "ncclGetUniqueId: cannot resolve SAEC_SIMT_NCCL_ADDR '%s': %s", host,
                      gai_strerror(g));
    int fd = -1, err = 0;
    for (struct addrinfo *a = res; a && fd < 0; a = a->ai_next) {
        fd = socket(a->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd >= 0 && (bind(fd, a->ai_addr, a->ai_addrlen) != 0 || listen(fd, SOMAXCONN) != 0)) {
            err = errno;
            close(fd);
            fd = -1;
        } else if (fd < 0) {
            err = errno;
        }
    }
    freeaddrinfo(res);
    if (fd < 0)
        return report(NULL, -1, ncclSystemError, 0,
                      "ncclGetUniqueId: cannot listen on '%s' (SAEC_SIMT_NCCL_ADDR): %s", host,
                      strerror(err));
    struct sockaddr_storage ss;
    socklen_t ss_len = sizeof ss;
    char port_s[16];
    if (getsockname(fd, (struct sockaddr *)&ss, &ss_len) != 0 ||
        getnameinfo((struct sockaddr *)&ss, ss_len, addr, (socklen_t)addr_cap, port_s,
                    sizeof port_s, NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
        close(fd);
        return report(NULL, -1, ncclSystemError, 0,
                      "ncclGetUniqueId: cannot read back the listening address on '%s'", host);
    }
    *port = (uint32_t)strtoul(port_s, NULL, 10);
    *out_fd = fd;
    return ncclSuccess;
}

ncclResult_t ncclGetUniqueId(ncclUniqueId *uniqueId) {
    if (!uniqueId)
        return report(NULL, -1, ncclInvalidArgument, 0, "ncclGetUniqueId: uniqueId is NULL");
    const char *host = getenv("SAEC_SIMT_NCCL_ADDR");
    if (!host || !*host) host = "127.0.0.1";
    id_fields f;
    memset(&f, 0, sizeof f);
    if (getrandom(&f.nonce, sizeof f.nonce, 0) != (ssize_t)sizeof f.nonce)
        return report(NULL, -1, ncclSystemError, 0, "ncclGetUniqueId: getrandom: %s",
                      strerror(errno));
    int fd = -1;
    ncclResult_t r = open_listener(host, &fd, f.addr, sizeof f.addr, &f.port);
    if (r != ncclSuccess) return r;
    struct listener *l = malloc(sizeof *l);
    if (!l) {
        close(fd);
        return report(NULL, -1, ncclSystemError, 0, "ncclGetUniqueId: out of memory");
    }
    l->nonce = f.nonce;
    l->fd = fd;
    pthread_mutex_lock(&listeners_mu);
    l->next = listeners;
    listeners = l;
    pthread_mutex_unlock(&listeners_mu);

    unsigned char *p = (unsigned char *)uniqueId->internal;
    memset(p, 0, NCCL_UNIQUE_ID_BYTES);
    memcpy(p, ID_MAGIC, ID_MAGIC_BYTES);
    put_u32(p + 8, WIRE_VERSION);
    put_u32(p + 12, f.port);
    put_u64(p + 16, f.nonce);
    memcpy(p + ID_ADDR_OFFSET, f.addr, sizeof f.addr);
    return ncclSuccess;
}

static int decode_id(const ncclUniqueId *id, id_fields *f) {
    const unsigned char *p = (const unsigned char *)id->internal;
    if (memcmp(p, ID_MAGIC, ID_MAGIC_BYTES) != 0 || get_u32(p + 8) != WIRE_VERSION) return 0;
    f->port = get_u32(p + 12);
    f->nonce = get_u64(p + 16);
    memcpy(f->addr, p + ID_ADDR_OFFSET, sizeof f->addr);
    return f->port > 0 && f->port < 65536 && f->addr[0] &&
           memchr(f->addr, '\0', sizeof f->addr) != NULL;
}

/* ---- set-up ------------------------------------------------------------------------------- */

static void comm_free(struct ncclComm *c) {
    for (int r = 0; r < c->nranks; r++)
        if (c->fds[r] >= 0) close(c->fds[r]);
    free(c->fds);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

/* SAEC_COMM_TIMEOUT when set (as saec reads it), else the default. */
static ncclResult_t read_timeout(int rank, double *out) {
    const char *s = getenv("SAEC_COMM_TIMEOUT");
    *out = DEFAULT_TIMEOUT_S;
    if (!s || !*s) return ncclSuccess;
    char *end = NULL;
    double v = strtod(s, &end);
    if (end == s || *end != '\0' || !isfinite(v) || v <= 0)
        return report(NULL, rank, ncclInvalidUsage, 0,
                      "ncclCommInitRank: SAEC_COMM_TIMEOUT='%s' is not a positive number of "
                      "seconds",
                      s);
    *out = v;
    return ncclSuccess;
}

/* Rank 0 refuses the set-up: every connected peer (and extra_fd) learns why. */
static ncclResult_t refuse_all(struct ncclComm *c, int extra_fd, ncclResult_t code,
                               const char *text) {
    for (int r = 1; r < c->nranks; r++)
        if (c->fds[r] >= 0) send_status(c->fds[r], code, text, now_s() + 1.0);
    if (extra_fd >= 0) {
        send_status(extra_fd, code, text, now_s() + 1.0);
        close(extra_fd);
    }
    return report(NULL, 0, code, 0, "ncclCommInitRank: %s", text);
}

/* Checks a peer's hello: NULL when it is from this communicator, else why not (in text); *ours
   says whether the nonce was ours (a refusal ends the set-up) or not (a stranger, dropped). */
static const char *check_hello(const struct ncclComm *c, const unsigned char *h, uint64_t nonce,
                               int *ours, char *text, size_t cap) {
    *ours = get_u32(h) == HELLO_MAGIC && get_u64(h + 8) == nonce;
    if (!*ours) return "it did not present this communicator's unique id";
    uint32_t version = get_u32(h + 4), rank = get_u32(h + 16), nranks = get_u32(h + 20);
    if (version != WIRE_VERSION)
        snprintf(text, cap, "rank %u runs emulator protocol %u, rank 0 runs %u", rank, version,
                 WIRE_VERSION);
    else if (nranks != (uint32_t)c->nranks)
        snprintf(text, cap, "rank %u was given nranks %u but rank 0 was given %d", rank, nranks,
                 c->nranks);
    else if (rank == 0 || rank >= nranks)
        snprintf(text, cap, "a second process joined as rank %u (nranks %d)", rank, c->nranks);
    else if (c->fds[rank] >= 0)
        snprintf(text, cap, "two processes joined as rank %u", rank);
    else
        return NULL;
    return text;
}

static ncclResult_t rendezvous_root(struct ncclComm *c, const id_fields *id, double t0) {
    double deadline = t0 + c->timeout_s;
    int lfd = take_listener(id->nonce);
    if (lfd < 0)
        return report(NULL, 0, ncclInvalidUsage, 0,
                      "ncclCommInitRank: rank 0 must join in the process that created the unique "
                      "id (ncclGetUniqueId), which accepts the other ranks on its listening "
                      "socket %s port %u; and each id serves one communicator",
                      id->addr, id->port);
    char text[MSG_CAP];
    for (int arrived = 1; arrived < c->nranks;) {
        int w = wait_fd(lfd, POLLIN, deadline, NULL);
        if (w == IO_ERROR) {
            snprintf(text, sizeof text, "rank 0 cannot wait for connections: %s", strerror(errno));
            close(lfd);
            return refuse_all(c, -1, ncclSystemError, text);
        }
        if (w == IO_TIMEOUT) {
            char missing[256] = "";
            for (int r = 1; r < c->nranks; r++)
                if (c->fds[r] < 0) add_rank(missing, sizeof missing, r);
            snprintf(text, sizeof text,
                     "rank 0 waited %.1f s at %s port %u and rank%s %s never joined (%d of %d "
                     "did; SAEC_COMM_TIMEOUT sets the wait)",
                     now_s() - t0, id->addr, id->port, c->nranks - arrived > 1 ? "s" : "", missing,
                     arrived, c->nranks);
            close(lfd);
            return refuse_all(c, -1, ncclSystemError, text);
        }
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) continue; /* EAGAIN, ECONNABORTED: wait again */
        unsigned char hello[HELLO_BYTES];
        double hello_deadline = now_s() + HELLO_WAIT_S;
        if (hello_deadline > deadline) hello_deadline = deadline;
        int ours = 0;
        const char *bad = "it sent no hello";
        if (recv_all(fd, hello, sizeof hello, hello_deadline) == IO_OK)
            bad = check_hello(c, hello, id->nonce, &ours, text, sizeof text);
        if (bad && !ours) {
            fprintf(stderr, "saec-simt nccl: rank 0: dropped a connection: %s\n", bad);
            close(fd);
            continue;
        }
        if (bad) {
            close(lfd);
            return refuse_all(c, fd, ncclInvalidUsage, bad);
        }
        set_nodelay(fd);
        c->fds[get_u32(hello + 16)] = fd;
        arrived++;
    }
    close(lfd);
    for (int r = 1; r < c->nranks; r++)
        if (send_status(c->fds[r], ncclSuccess, NULL, deadline + REPLY_GRACE_S) != IO_OK)
            return report(NULL, 0, ncclRemoteError, 0,
                          "ncclCommInitRank: rank %d left before the set-up completed", r);
    return ncclSuccess;
}

/* One connection attempt to rank 0; the socket, or -1 with errno's value in *err. */
static int try_connect(const struct addrinfo *a, double deadline, int *err) {
    int fd = socket(a->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        *err = errno;
        return -1;
    }
    *err = connect(fd, a->ai_addr, a->ai_addrlen) == 0 ? 0 : errno;
    if (*err == EINPROGRESS) {
        socklen_t len = sizeof *err;
        if (wait_fd(fd, POLLOUT, deadline, NULL) != IO_OK ||
            getsockopt(fd, SOL_SOCKET, SO_ERROR, err, &len) != 0)
            *err = ETIMEDOUT;
    }
    if (*err == 0) return fd;
    close(fd);
    return -1;
}

static ncclResult_t rendezvous_peer(struct ncclComm *c, const id_fields *id, double t0) {
    double deadline = t0 + c->timeout_s;
    char port_s[16];
    snprintf(port_s, sizeof port_s, "%u", id->port);
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
    int g = getaddrinfo(id->addr, port_s, &hints, &res);
    if (g != 0)
        return report(NULL, c->rank, ncclInvalidArgument, 0,
                      "ncclCommInitRank: the unique id's address '%s' is not usable: %s", id->addr,
                      gai_strerror(g));
    int fd = -1, err = ETIMEDOUT;
    while (fd < 0 && now_s() < deadline) {
        for (struct addrinfo *a = res; a && fd < 0; a = a->ai_next)
            fd = try_connect(a, deadline, &err);
        if (fd < 0) {
            struct timespec ts = {0, 50 * 1000 * 1000}; /* not listening yet, or busy: retry */
            nanosleep(&ts, NULL);
        }
    }
    freeaddrinfo(res);
    if (fd < 0)
        return report(NULL, c->rank, ncclSystemError, 0,
                      "ncclCommInitRank: rank %d could not reach rank 0 at %s port %u within "
                      "%.1f s (last error: %s); on several hosts, set SAEC_SIMT_NCCL_ADDR to an "
                      "address of rank 0's host that this host can reach",
                      c->rank, id->addr, id->port, now_s() - t0, strerror(err));
    set_nodelay(fd);
    c->fds[0] = fd;
    unsigned char hello[HELLO_BYTES];
    put_u32(hello, HELLO_MAGIC);
    put_u32(hello + 4, WIRE_VERSION);
    put_u64(hello + 8, id->nonce);
    put_u32(hello + 16, (uint32_t)c->rank);
    put_u32(hello + 20, (uint32_t)c->nranks);
    ncclResult_t status = ncclSuccess;
    char text[MSG_CAP];
    int io = send_all(fd, hello, sizeof hello, deadline, 0);
    if (io == IO_OK) io = recv_status(fd, &status, text, deadline + REPLY_GRACE_S);
    if (io == IO_TIMEOUT)
        return report(NULL, c->rank, ncclSystemError, 0,
                      "ncclCommInitRank: rank %d reached rank 0 at %s port %u, but not every rank "
                      "joined within %.1f s",
                      c->rank, id->addr, id->port, now_s() - t0);
    if (io != IO_OK)
        return report(NULL, c->rank, ncclRemoteError, 0,
                      "ncclCommInitRank: rank %d lost its connection to rank 0 during the set-up",
                      c->rank);
    if (status != ncclSuccess)
        return report(NULL, c->rank, status, 0, "ncclCommInitRank: rank 0 refused the set-up: %s",
                      text);
    return ncclSuccess;
}

ncclResult_t ncclCommInitRank(ncclComm_t *comm, int nranks, ncclUniqueId commId, int rank) {
    if (!comm) return report(NULL, rank, ncclInvalidArgument, 0, "ncclCommInitRank: comm is NULL");
    *comm = NULL;
    if (nranks < 1 || rank < 0 || rank >= nranks)
        return report(NULL, rank, ncclInvalidArgument, 0,
                      "ncclCommInitRank: rank %d is not in [0, nranks = %d)", rank, nranks);
    id_fields id;
    if (!decode_id(&commId, &id))
        return report(NULL, rank, ncclInvalidArgument, 0,
                      "ncclCommInitRank: the unique id was not made by this emulator's "
                      "ncclGetUniqueId (or was damaged on its way)");
    double t0 = now_s();
    struct ncclComm *c = calloc(1, sizeof *c);
    int *fds = malloc((size_t)nranks * sizeof *fds);
    if (!c || !fds) {
        free(c);
        free(fds);
        return report(NULL, rank, ncclSystemError, 0, "ncclCommInitRank: out of memory");
    }
    for (int r = 0; r < nranks; r++)
        fds[r] = -1;
    c->fds = fds;
    c->rank = rank;
    c->nranks = nranks;
    pthread_mutex_init(&c->mu, NULL);
    ncclResult_t r = read_timeout(rank, &c->timeout_s);
    if (r == ncclSuccess) r = rank == 0 ? rendezvous_root(c, &id, t0) : rendezvous_peer(c, &id, t0);
    if (r != ncclSuccess) {
        comm_free(c);
        return r;
    }
    *comm = c;
    return ncclSuccess;
}

/* ---- collectives -------------------------------------------------------------------------- */

static int is_closing(struct ncclComm *c) {
    pthread_mutex_lock(&c->mu);
    int closing = c->closing;
    pthread_mutex_unlock(&c->mu);
    return closing;
}

/* A transfer with rank `peer` failed during `what`: breaks the communicator. */
static ncclResult_t io_fail(struct ncclComm *c, int io, int peer, const char *what, double t0) {
    int err = errno;
    if (is_closing(c))
        return report(c, c->rank, ncclSystemError, 1,
                      "%s was interrupted: the communicator was aborted (ncclCommAbort)", what);
    if (io == IO_TIMEOUT)
        return report(c, c->rank, ncclSystemError, 1,
                      "%s: rank %d heard nothing from rank %d within %.1f s (SAEC_COMM_TIMEOUT)",
                      what, c->rank, peer, now_s() - t0);
    if (io == IO_CLOSED)
        return report(c, c->rank, ncclRemoteError, 1,
                      "%s: rank %d lost its connection to rank %d (it exited, crashed or aborted "
                      "its communicator)",
                      what, c->rank, peer);
    return report(c, c->rank, ncclSystemError, 1, "%s: socket error with rank %d: %s", what, peer,
                  strerror(err));
}

/* Rank 0 waited for rank `first` in vain: names it and the later ranks that sent nothing. */
static ncclResult_t root_timeout(struct ncclComm *c, int first, const char *what, double t0) {
    char silent[256] = "";
    add_rank(silent, sizeof silent, first);
    int count = 1;
    for (int r = first + 1; r < c->nranks; r++) {
        struct pollfd p = {.fd = c->fds[r], .events = POLLIN, .revents = 0};
        if (poll(&p, 1, 0) == 0) {
            add_rank(silent, sizeof silent, r);
            count++;
        }
    }
    return report(c, 0, ncclSystemError, 1,
                  "%s: rank 0 waited %.1f s and rank%s %s did not deliver %s part (a rank hangs, "
                  "or stopped calling collectives; SAEC_COMM_TIMEOUT sets the wait)",
                  what, now_s() - t0, count > 1 ? "s" : "", silent, count > 1 ? "their" : "its");
}

/* Rank 0's side: gather in rank order, reduce or place, send the result to every peer. */
static ncclResult_t run_root(struct ncclComm *c, const call_desc *d, const void *sendbuff,
                             void *recvbuff, const char *what) {
    const int allreduce = d->kind == KIND_ALLREDUCE;
    const size_t bytes = (size_t)d->count * type_size(d->type);
    const double t0 = now_s(), deadline = t0 + c->timeout_s;
    if (bytes) memmove(recvbuff, sendbuff, bytes); /* rank 0's part: first in rank order */
    unsigned char *stage = NULL;
    if (allreduce && bytes && c->nranks > 1) {
        stage = malloc(bytes < CHUNK_BYTES ? bytes : CHUNK_BYTES);
        if (!stage) return report(c, 0, ncclSystemError, 1, "%s: out of memory", what);
    }
    ncclResult_t res = ncclSuccess;
    int torn = -1; /* a peer whose reply was cut off: its stream cannot carry a status */
    for (int r = 1; r < c->nranks && res == ncclSuccess; r++) {
        int fd = c->fds[r];
        unsigned char head[CALL_BYTES] = {0};
        int io = recv_all(fd, head, sizeof head, deadline);
        call_desc p = {get_u64(head), get_u64(head + 8), get_u32(head + 16), get_u32(head + 20),
                       get_u32(head + 24)};
        if (io == IO_OK && (p.seq != d->seq || p.count != d->count || p.kind != d->kind ||
                            p.type != d->type || p.op != d->op)) {
            char theirs[160];
            describe(&p, theirs, sizeof theirs);
            res = report(c, 0, ncclInvalidUsage, 1,
                         "mismatched collectives: rank 0 called %s but rank %d called %s (every "
                         "rank must make the same collective calls in the same order)",
                         what, r, theirs);
            break;
        }
        if (allreduce)
            for (size_t off = 0; io == IO_OK && off < bytes; off += CHUNK_BYTES) {
                size_t n = bytes - off < CHUNK_BYTES ? bytes - off : CHUNK_BYTES;
                io = recv_all(fd, stage, n, deadline);
                if (io == IO_OK)
                    reduce((char *)recvbuff + off, stage, n / type_size(d->type), d->type, d->op);
            }
        else if (io == IO_OK)
            io = recv_all(fd, (char *)recvbuff + (size_t)r * bytes, bytes, deadline);
        if (io == IO_TIMEOUT && !is_closing(c))
            res = root_timeout(c, r, what, t0);
        else if (io != IO_OK)
            res = io_fail(c, io, r, what, t0);
    }
    free(stage);
    const size_t out = allreduce ? bytes : bytes * (size_t)c->nranks;
    for (int r = 1; r < c->nranks && res == ncclSuccess; r++) {
        int io = send_status(c->fds[r], ncclSuccess, NULL, deadline);
        if (io == IO_OK) io = send_all(c->fds[r], recvbuff, out, deadline, 0);
        if (io != IO_OK) {
            torn = r;
            res = io_fail(c, io, r, what, t0);
        }
    }
    if (res != ncclSuccess) {
        /* Every peer learns why, now or in its next call; a torn stream is cut instead. */
        for (int r = 1; r < c->nranks; r++) {
            if (r == torn)
                shutdown(c->fds[r], SHUT_RDWR);
            else
                send_status(c->fds[r], res, c->last_error, now_s() + 1.0);
        }
    }
    return res;
}

/* A peer's side: send the call and its part, then read rank 0's status and the result. */
static ncclResult_t run_peer(struct ncclComm *c, const call_desc *d, const void *sendbuff,
                             void *recvbuff, const char *what) {
    const size_t bytes = (size_t)d->count * type_size(d->type);
    const double t0 = now_s(), deadline = t0 + c->timeout_s + REPLY_GRACE_S;
    const int fd = c->fds[0];
    unsigned char head[CALL_BYTES];
    put_u64(head, d->seq);
    put_u64(head + 8, d->count);
    put_u32(head + 16, d->kind);
    put_u32(head + 20, d->type);
    put_u32(head + 24, d->op);
    int io = send_all(fd, head, sizeof head, deadline, 1);
    if (io == IO_OK && bytes) io = send_all(fd, sendbuff, bytes, deadline, 1);
    /* On IO_REPLY, and on IO_CLOSED (rank 0 may have closed after saying why), read the status. */
    if (io != IO_OK && io != IO_REPLY && io != IO_CLOSED) return io_fail(c, io, 0, what, t0);
    ncclResult_t status = ncclSuccess;
    char text[MSG_CAP];
    int io_status = recv_status(fd, &status, text, deadline);
    if (io_status != IO_OK) return io_fail(c, io_status, 0, what, t0);
    if (status != ncclSuccess)
        return report(c, c->rank, status, 1, "rank 0 reports: %s", text); /* names the call */
    if (io != IO_OK) { /* rank 0 said yes before it had all of this rank's part */
        errno = EPROTO;
        return io_fail(c, IO_ERROR, 0, what, t0);
    }
    const size_t out = d->kind == KIND_ALLREDUCE ? bytes : bytes * (size_t)c->nranks;
    io = recv_all(fd, recvbuff, out, deadline);
    return io == IO_OK ? ncclSuccess : io_fail(c, io, 0, what, t0);
}

/* Argument checks shared by the collectives (fn names the API call). */
static ncclResult_t check_call(struct ncclComm *c, const call_desc *d, const void *sendbuff,
                               const void *recvbuff, const char *fn) {
    if (!c) return report(NULL, -1, ncclInvalidArgument, 0, "%s: comm is NULL", fn);
    size_t size = type_size(d->type);
    if (!size)
        return report(c, c->rank, ncclInvalidArgument, 0,
                      "%s: datatype %u is not emulated (int64, float32, float64 are)",
                      fn, d->type);
    if (d->kind == KIND_ALLREDUCE && d->op != ncclSum && d->op != ncclMin && d->op != ncclMax)
        return report(c, c->rank, ncclInvalidArgument, 0,
                      "%s: reduction op %u is not emulated (sum, min, max are)", fn, d->op);
    if (d->count > SIZE_MAX / size / (size_t)c->nranks)
        return report(c, c->rank, ncclInvalidArgument, 0, "%s: count %llu is too large", fn,
                      (unsigned long long)d->count);
    if (d->count && (!sendbuff || !recvbuff))
        return report(c, c->rank, ncclInvalidArgument, 0, "%s: a buffer is NULL", fn);
    return ncclSuccess;
}

static ncclResult_t run_call(struct ncclComm *c, call_desc *d, const void *sendbuff, void *recvbuff,
                             const char *fn) {
    pthread_mutex_lock(&c->mu);
    ncclResult_t broken = c->async_error;
    int finalized = c->finalized;
    if (broken == ncclSuccess && !finalized) c->busy++;
    pthread_mutex_unlock(&c->mu);
    if (broken != ncclSuccess) return broken; /* its reason is the last error already */
    if (finalized) return report(c, c->rank, ncclInvalidUsage, 0, "%s after ncclCommFinalize", fn);

    d->seq = c->seq++;
    char what[160];
    describe(d, what, sizeof what);
    ncclResult_t r = c->rank == 0 ? run_root(c, d, sendbuff, recvbuff, what)
                                  : run_peer(c, d, sendbuff, recvbuff, what);

    pthread_mutex_lock(&c->mu);
    c->busy--;
    int free_now = c->closing && c->busy == 0;
    pthread_mutex_unlock(&c->mu);
    if (free_now) comm_free(c);
    return r;
}

ncclResult_t ncclAllReduce(const void *sendbuff, void *recvbuff, size_t count,
                           ncclDataType_t datatype, ncclRedOp_t op, ncclComm_t comm,
                           cudaStream_t stream) {
    (void)stream; /* eager: the result is in place when the call returns */
    call_desc d = {0, count, KIND_ALLREDUCE, (uint32_t)datatype, (uint32_t)op};
    ncclResult_t r = check_call(comm, &d, sendbuff, recvbuff, "ncclAllReduce");
    return r != ncclSuccess ? r : run_call(comm, &d, sendbuff, recvbuff, "ncclAllReduce");
}

ncclResult_t ncclAllGather(const void *sendbuff, void *recvbuff, size_t sendcount,
                           ncclDataType_t datatype, ncclComm_t comm, cudaStream_t stream) {
    (void)stream; /* eager: the result is in place when the call returns */
    call_desc d = {0, sendcount, KIND_ALLGATHER, (uint32_t)datatype, 0};
    ncclResult_t r = check_call(comm, &d, sendbuff, recvbuff, "ncclAllGather");
    return r != ncclSuccess ? r : run_call(comm, &d, sendbuff, recvbuff, "ncclAllGather");
}

/* ---- state and shutdown ------------------------------------------------------------------- */

ncclResult_t ncclCommGetAsyncError(ncclComm_t comm, ncclResult_t *asyncError) {
    if (!comm || !asyncError)
        return report(NULL, -1, ncclInvalidArgument, 0,
                      "ncclCommGetAsyncError: comm or asyncError is NULL");
    pthread_mutex_lock(&comm->mu);
    *asyncError = comm->async_error;
    pthread_mutex_unlock(&comm->mu);
    return ncclSuccess;
}

ncclResult_t ncclCommFinalize(ncclComm_t comm) {
    if (!comm) return report(NULL, -1, ncclInvalidArgument, 0, "ncclCommFinalize: comm is NULL");
    /* collectives are eager, so none is left to complete */
    pthread_mutex_lock(&comm->mu);
    comm->finalized = 1;
    ncclResult_t r = comm->async_error;
    pthread_mutex_unlock(&comm->mu);
    return r;
}

/* Destroy and abort alike: shutting the sockets down wakes a collective blocked on another
   thread (it then fails and frees the communicator), and tells the peers at once. */
static ncclResult_t comm_release(ncclComm_t comm) {
    if (!comm) return ncclSuccess;
    pthread_mutex_lock(&comm->mu);
    comm->closing = 1;
    for (int r = 0; r < comm->nranks; r++)
        if (comm->fds[r] >= 0) shutdown(comm->fds[r], SHUT_RDWR);
    int idle = comm->busy == 0;
    pthread_mutex_unlock(&comm->mu);
    if (idle) comm_free(comm);
    return ncclSuccess;
}

ncclResult_t ncclCommDestroy(ncclComm_t comm) { return comm_release(comm); }

ncclResult_t ncclCommAbort(ncclComm_t comm) { return comm_release(comm); }

const char *ncclGetErrorString(ncclResult_t result) {
    switch (result) {
    case ncclSuccess: return "no error";
    case ncclSystemError: return "unhandled system error (run with NCCL_DEBUG=INFO for details)";
    case ncclInvalidArgument: return "invalid argument (run with NCCL_DEBUG=WARN for details)";
    case ncclInvalidUsage: return "invalid usage (run with NCCL_DEBUG=WARN for details)";
    case ncclRemoteError: return "remote process exited or there was a network error";
    default: return "unknown result code";
    }
}

const char *ncclGetLastError(ncclComm_t comm) {
    return comm ? comm->last_error : thread_last_error;
}
