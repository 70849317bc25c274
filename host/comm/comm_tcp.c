/* The TCP rendezvous and host channel (see comm_tcp.h): a star around rank 0.
 *
 * Wire format (integers big-endian):
 *   hello   peer → 0   u32 magic 'SAEC', u32 protocol version, u32 rank, u32 world size
 *   verdict 0 → peer   u32 status (0 = every rank arrived); else u32 length + that many bytes of
 *                      error text, and rank 0 closes the connection
 *   gather  peer → 0   u64 length + blob;  0 → peer: u64 length of each rank's blob + the blobs
 * Sockets are non-blocking and every wait is a poll() bounded by the operation's deadline.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "comm_tcp.h"
#include "comm_util.h"
#include "clock.h" /* saec_now: the monotonic clock */
#include "saec/saec.h"

#define TCP_MAGIC 0x53414543u /* "SAEC" */
#define TCP_VERSION 1u
#define TCP_MAX_BLOB ((uint64_t)1 << 32) /* host payloads are small; more is a protocol error */
/* Peers wait this much longer than rank 0 for the verdict, so that rank 0's explanation (which
   ranks never arrived) reaches them before their own deadline fires. */
#define TCP_VERDICT_GRACE_S 2.0

#define TCP_HINT                                                                                   \
    "every rank needs the same MASTER_ADDR (rank 0's host, reachable from all ranks), "            \
    "MASTER_PORT (free on rank 0's host) and WORLD_SIZE, and a distinct RANK; check that every "   \
    "rank was started and read the other ranks' output; SAEC_COMM_TIMEOUT sets the wait (s)"

struct saec_tcp {
    int rank, size;
    double timeout_s;
    char addr[256];
    int port;
    int *fds;   /* rank 0: fds[r] is rank r's connection (r >= 1); others: fds[0] is rank 0 */
    int broken; /* a failed operation closed the sockets: later operations fail at once */
};

enum { IO_OK = 0, IO_TIMEOUT, IO_CLOSED, IO_ERROR };

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

/* Waits for `events` on fd until the deadline: IO_OK, IO_TIMEOUT or IO_ERROR. */
static int wait_fd(int fd, short events, double deadline) {
    for (;;) {
        double left = deadline - saec_now();
        struct pollfd p = {.fd = fd, .events = events, .revents = 0};
        int ms = left <= 0 ? 0 : left > 1e6 ? 1000000000 : (int)(left * 1000.0) + 1;
        int n = poll(&p, 1, ms); /* polls once even past the deadline: what is ready, counts */
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return IO_ERROR;
        if (n > 0) return IO_OK; /* readable, writable, or hung up: the next call tells */
        if (saec_now() >= deadline) return IO_TIMEOUT;
    }
}

static int send_all(int fd, const void *buf, size_t n, double deadline) {
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
            int w = wait_fd(fd, POLLOUT, deadline);
            if (w != IO_OK) return w;
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
            int w = wait_fd(fd, POLLIN, deadline);
            if (w != IO_OK) return w;
            continue;
        }
        if (errno == ECONNRESET) return IO_CLOSED;
        return IO_ERROR;
    }
    return IO_OK;
}

static void set_nonblocking(int fd) {
    int flags = fcntl(fd, F_GETFL, 0);
    if (flags >= 0) fcntl(fd, F_SETFL, flags | O_NONBLOCK);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

/* Closes every socket, so that peers blocked on this rank fail at once. */
static void tcp_break(saec_tcp *t) {
    if (!t->fds) return;
    for (int r = 0; r < t->size; r++)
        if (t->fds[r] >= 0) {
            close(t->fds[r]);
            t->fds[r] = -1;
        }
    t->broken = 1;
}

/* Records the failure of an I/O step with rank `peer` and breaks the channel. */
static int tcp_io_fail(saec_tcp *t, int io, int peer, const char *what, double waited) {
    int err = errno;
    tcp_break(t);
    if (io == IO_TIMEOUT)
        return saec_fail(SAEC_ERR_OTHER, SAEC_COMM_HANG_HINT,
                         "%s over TCP (%s:%d): rank %d heard nothing from rank %d within %.1f s",
                         what, t->addr, t->port, t->rank, peer, waited);
    if (io == IO_CLOSED)
        return saec_fail(SAEC_ERR_OTHER, SAEC_COMM_HANG_HINT,
                         "%s over TCP (%s:%d): rank %d lost its connection to rank %d (rank %d "
                         "exited or failed; read its output)",
                         what, t->addr, t->port, t->rank, peer, peer);
    return saec_fail(SAEC_ERR_OTHER, SAEC_COMM_HANG_HINT,
                     "%s over TCP (%s:%d): rank %d, socket error with rank %d: %s", what, t->addr,
                     t->port, t->rank, peer, strerror(err));
}

/* ---- the rendezvous ------------------------------------------------------------------------ */

/* rank 0 → a peer: a failed verdict, best effort, then close. */
static void send_refusal(int fd, const char *text) {
    size_t len = strlen(text);
    unsigned char head[8];
    put_u32(head, 1);
    put_u32(head + 4, (uint32_t)len);
    double deadline = saec_now() + 1.0;
    if (send_all(fd, head, sizeof head, deadline) == IO_OK) send_all(fd, text, len, deadline);
}

static int refuse_all(saec_tcp *t, int extra_fd, const char *text) {
    for (int r = 1; r < t->size; r++)
        if (t->fds[r] >= 0) send_refusal(t->fds[r], text);
    if (extra_fd >= 0) {
        send_refusal(extra_fd, text);
        close(extra_fd);
    }
    tcp_break(t);
    return saec_fail(SAEC_ERR_USAGE, TCP_HINT, "TCP rendezvous at %s:%d: %s", t->addr, t->port,
                     text);
}

/* Rank 0's listening socket on every interface of MASTER_ADDR's address family. */
static int tcp_listen(saec_tcp *t, int *out_fd) {
    int family = AF_INET;
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(t->addr, NULL, &hints, &res) == 0 && res) {
        family = res->ai_family == AF_INET6 ? AF_INET6 : AF_INET;
        freeaddrinfo(res);
    }
    int fd = socket(family, SOCK_STREAM, 0);
    if (fd < 0)
        return saec_fail(SAEC_ERR_OTHER, NULL, "rank 0 cannot create a socket: %s",
                         strerror(errno));
    int one = 1, zero = 0;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    int rc;
    if (family == AF_INET6) {
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
        struct sockaddr_in6 a;
        memset(&a, 0, sizeof a);
        a.sin6_family = AF_INET6;
        a.sin6_addr = in6addr_any;
        a.sin6_port = htons((uint16_t)t->port);
        rc = bind(fd, (struct sockaddr *)&a, sizeof a);
    } else {
        struct sockaddr_in a;
        memset(&a, 0, sizeof a);
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_ANY);
        a.sin_port = htons((uint16_t)t->port);
        rc = bind(fd, (struct sockaddr *)&a, sizeof a);
    }
    if (rc != 0 || listen(fd, t->size) != 0) {
        int err = errno;
        close(fd);
        return saec_fail(SAEC_ERR_USAGE,
                         "another process holds the port on rank 0's host (a previous job still "
                         "running?): pick a free MASTER_PORT, or set SAEC_MASTER_PORT (saec's "
                         "rendezvous port; under torchrun it defaults to MASTER_PORT + 1)",
                         "TCP rendezvous: rank 0 cannot listen on port %d (MASTER_ADDR %s): %s",
                         t->port, t->addr, strerror(err));
    }
    set_nonblocking(fd);
    *out_fd = fd;
    return SAEC_OK;
}

/* "1, 2, 5" (at most 16 named) of the ranks that have not arrived. */
static void missing_ranks(const saec_tcp *t, char *out, size_t cap) {
    size_t len = 0;
    int named = 0, more = 0;
    out[0] = '\0';
    for (int r = 1; r < t->size; r++) {
        if (t->fds[r] >= 0) continue;
        if (named == 16) {
            more++;
            continue;
        }
        int k = snprintf(out + len, cap - len, "%s%d", named ? ", " : "", r);
        if (k > 0 && (size_t)k < cap - len) len += (size_t)k;
        named++;
    }
    if (more) snprintf(out + len, cap - len, " and %d more", more);
}

static int rendezvous_root(saec_tcp *t, double t0) {
    double deadline = t0 + t->timeout_s;
    int lfd = -1;
    SAEC_TRY(tcp_listen(t, &lfd));
    int arrived = 0;
    char text[600];
    while (arrived < t->size - 1) {
        int w = wait_fd(lfd, POLLIN, deadline);
        if (w == IO_TIMEOUT) {
            char missing[256];
            missing_ranks(t, missing, sizeof missing);
            snprintf(text, sizeof text,
                     "rank 0 waited %.1f s on port %d and rank%s %s never arrived (%d of %d "
                     "ranks did)",
                     saec_now() - t0, t->port, t->size - 1 - arrived > 1 ? "s" : "", missing,
                     arrived + 1, t->size);
            close(lfd);
            return refuse_all(t, -1, text);
        }
        int fd = accept(lfd, NULL, NULL);
        if (fd < 0) continue; /* EAGAIN, ECONNABORTED: wait again */
        set_nonblocking(fd);
        unsigned char hello[16];
        /* A peer sends its hello right after connecting; a stranger that does not is dropped. */
        double hello_deadline = saec_now() + 5.0;
        if (hello_deadline > deadline) hello_deadline = deadline;
        if (recv_all(fd, hello, sizeof hello, hello_deadline) != IO_OK ||
            get_u32(hello) != TCP_MAGIC) {
            close(fd);
            continue;
        }
        uint32_t version = get_u32(hello + 4), rank = get_u32(hello + 8),
                 size = get_u32(hello + 12);
        const char *bad = NULL;
        if (version != TCP_VERSION) {
            snprintf(text, sizeof text,
                     "a rank runs a saec with TCP protocol %u, rank 0 runs protocol %u (ranks "
                     "must run the same saec build)",
                     version, TCP_VERSION);
            bad = text;
        } else if ((int)size != t->size) {
            snprintf(text, sizeof text,
                     "rank %u was started with WORLD_SIZE=%u but rank 0 with WORLD_SIZE=%d", rank,
                     size, t->size);
            bad = text;
        } else if (rank == 0 || (int)rank >= t->size) {
            snprintf(text, sizeof text, "a second process claims RANK=%u (WORLD_SIZE=%d)", rank,
                     t->size);
            bad = text;
        } else if (t->fds[rank] >= 0) {
            snprintf(text, sizeof text, "two processes were started with RANK=%u", rank);
            bad = text;
        }
        if (bad) {
            close(lfd);
            return refuse_all(t, fd, bad);
        }
        t->fds[rank] = fd;
        arrived++;
    }
    close(lfd);
    unsigned char ok[4];
    put_u32(ok, 0);
    for (int r = 1; r < t->size; r++) {
        int io = send_all(t->fds[r], ok, sizeof ok, deadline + TCP_VERDICT_GRACE_S);
        if (io != IO_OK) return tcp_io_fail(t, io, r, "rendezvous", t->timeout_s);
    }
    return SAEC_OK;
}

/* One connection attempt to rank 0, bounded by `deadline`. Returns the socket or -1 (reason in
   `why`). */
static int try_connect(const saec_tcp *t, double deadline, char *why, size_t why_cap) {
    char port_s[16];
    snprintf(port_s, sizeof port_s, "%d", t->port);
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_socktype = SOCK_STREAM;
    int g = getaddrinfo(t->addr, port_s, &hints, &res);
    if (g != 0) {
        snprintf(why, why_cap, "cannot resolve '%s': %s", t->addr, gai_strerror(g));
        return -1;
    }
    int fd = -1;
    for (struct addrinfo *a = res; a && fd < 0; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype, a->ai_protocol);
        if (fd < 0) {
            snprintf(why, why_cap, "socket: %s", strerror(errno));
            continue;
        }
        set_nonblocking(fd);
        int rc = connect(fd, a->ai_addr, a->ai_addrlen);
        int err = rc == 0 ? 0 : errno;
        if (rc != 0 && err == EINPROGRESS) {
            double d = saec_now() + 2.0;
            if (d > deadline) d = deadline;
            if (wait_fd(fd, POLLOUT, d) == IO_OK) {
                socklen_t len = sizeof err;
                if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
            } else {
                err = ETIMEDOUT;
            }
        }
        if (err != 0) {
            snprintf(why, why_cap, "%s", strerror(err));
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    return fd;
}

static int rendezvous_peer(saec_tcp *t, double t0) {
    double deadline = t0 + t->timeout_s;
    char why[600] = "no attempt finished";
    int fd = -1;
    for (;;) {
        fd = try_connect(t, deadline, why, sizeof why);
        if (fd >= 0) break;
        double now = saec_now();
        if (now >= deadline) {
            return saec_fail(SAEC_ERR_OTHER, TCP_HINT,
                             "TCP rendezvous: rank %d could not reach rank 0 at %s:%d within "
                             "%.1f s (last error: %s)",
                             t->rank, t->addr, t->port, now - t0, why);
        }
        struct timespec ts = {0, 100 * 1000 * 1000}; /* rank 0 may not listen yet: retry */
        nanosleep(&ts, NULL);
    }
    t->fds[0] = fd;
    unsigned char hello[16];
    put_u32(hello, TCP_MAGIC);
    put_u32(hello + 4, TCP_VERSION);
    put_u32(hello + 8, (uint32_t)t->rank);
    put_u32(hello + 12, (uint32_t)t->size);
    int io = send_all(fd, hello, sizeof hello, deadline);
    unsigned char verdict[4];
    if (io == IO_OK) io = recv_all(fd, verdict, sizeof verdict, deadline + TCP_VERDICT_GRACE_S);
    if (io == IO_TIMEOUT) {
        tcp_break(t);
        return saec_fail(SAEC_ERR_OTHER, TCP_HINT,
                         "TCP rendezvous: rank %d reached rank 0 at %s:%d, but not every rank "
                         "arrived within %.1f s",
                         t->rank, t->addr, t->port, saec_now() - t0);
    }
    if (io != IO_OK) return tcp_io_fail(t, io, 0, "rendezvous", saec_now() - t0);
    if (get_u32(verdict) != 0) {
        unsigned char lenb[4];
        char text[600] = "(no reason given)";
        if (recv_all(fd, lenb, sizeof lenb, saec_now() + 1.0) == IO_OK) {
            uint32_t len = get_u32(lenb);
            if (len >= sizeof text) len = sizeof text - 1;
            if (recv_all(fd, text, len, saec_now() + 1.0) == IO_OK) text[len] = '\0';
        }
        tcp_break(t);
        return saec_fail(SAEC_ERR_USAGE, TCP_HINT, "TCP rendezvous at %s:%d failed: %s", t->addr,
                         t->port, text);
    }
    return SAEC_OK;
}

int saec_tcp_open(const char *addr, int port, int rank, int size, double timeout_s,
                  saec_tcp **out) {
    *out = NULL;
    if (!addr || !*addr || port <= 0 || port > 65535)
        return saec_fail(SAEC_ERR_USAGE, TCP_HINT,
                         "the TCP rendezvous needs MASTER_ADDR and MASTER_PORT (got '%s' and %d)",
                         addr ? addr : "", port);
    if (size < 1 || rank < 0 || rank >= size)
        return saec_fail(SAEC_ERR_OTHER, NULL, "saec_tcp_open: rank %d of %d", rank, size);
    saec_tcp *t = calloc(1, sizeof *t);
    int *fds = malloc((size_t)size * sizeof *fds);
    if (!t || !fds) {
        free(t);
        free(fds);
        return saec_fail(SAEC_ERR_OTHER, NULL, "out of memory opening the TCP channel");
    }
    for (int r = 0; r < size; r++)
        fds[r] = -1;
    t->fds = fds;
    t->rank = rank;
    t->size = size;
    t->timeout_s = timeout_s > 0 ? timeout_s : SAEC_COMM_DEFAULT_TIMEOUT_S;
    snprintf(t->addr, sizeof t->addr, "%s", addr);
    t->port = port;
    int rc = SAEC_OK;
    double t0 = saec_now();
    if (size > 1) rc = rank == 0 ? rendezvous_root(t, t0) : rendezvous_peer(t, t0);
    if (rc != SAEC_OK) {
        saec_tcp_close(t);
        return rc;
    }
    *out = t;
    return SAEC_OK;
}

void saec_tcp_close(saec_tcp *t) {
    if (!t) return;
    tcp_break(t);
    free(t->fds);
    free(t);
}

/* ---- collectives -------------------------------------------------------------------------- */

static int tcp_usable(const saec_tcp *t, const char *what) {
    if (t->broken)
        return saec_fail(SAEC_ERR_OTHER, SAEC_COMM_HANG_HINT,
                         "%s over TCP: the channel failed earlier (rank %d)", what, t->rank);
    return SAEC_OK;
}

int saec_tcp_allgather(saec_tcp *t, const void *mine, size_t bytes, char **data, size_t *sizes) {
    const char *what = "host all-gather";
    *data = NULL;
    SAEC_TRY(tcp_usable(t, what));
    double t0 = saec_now(), deadline = t0 + t->timeout_s;
    int n = t->size;
    if (t->rank == 0) {
        char **blobs = calloc((size_t)n, sizeof *blobs);
        if (!blobs) return saec_fail(SAEC_ERR_OTHER, NULL, "out of memory in %s", what);
        int rc = SAEC_OK;
        sizes[0] = bytes;
        for (int r = 1; r < n && rc == SAEC_OK; r++) {
            unsigned char lenb[8];
            int io = recv_all(t->fds[r], lenb, sizeof lenb, deadline);
            uint64_t len = io == IO_OK ? get_u64(lenb) : 0;
            if (io == IO_OK && len > TCP_MAX_BLOB) {
                tcp_break(t);
                rc = saec_fail(SAEC_ERR_OTHER, NULL,
                               "%s over TCP: rank %d announced %llu bytes (protocol error)", what,
                               r, (unsigned long long)len);
                break;
            }
            sizes[r] = (size_t)len;
            blobs[r] = malloc(len ? (size_t)len : 1);
            if (io == IO_OK && !blobs[r]) {
                tcp_break(t); /* the peers must not wait for an answer that will not come */
                rc = saec_fail(SAEC_ERR_OTHER, NULL, "out of memory in %s", what);
                break;
            }
            if (io == IO_OK) io = recv_all(t->fds[r], blobs[r], (size_t)len, deadline);
            if (io != IO_OK) rc = tcp_io_fail(t, io, r, what, saec_now() - t0);
        }
        size_t total = 0;
        for (int r = 0; r < n; r++)
            total += rc == SAEC_OK ? sizes[r] : 0;
        char *all = rc == SAEC_OK ? malloc(total ? total : 1) : NULL;
        unsigned char *head = rc == SAEC_OK ? malloc((size_t)n * 8) : NULL;
        if (rc == SAEC_OK && (!all || !head)) {
            tcp_break(t);
            rc = saec_fail(SAEC_ERR_OTHER, NULL, "out of memory in %s", what);
        }
        if (rc == SAEC_OK) {
            size_t off = 0;
            for (int r = 0; r < n; r++) {
                if (sizes[r]) memcpy(all + off, r == 0 ? mine : blobs[r], sizes[r]);
                off += sizes[r];
                put_u64(head + 8 * r, sizes[r]);
            }
            for (int r = 1; r < n && rc == SAEC_OK; r++) {
                int io = send_all(t->fds[r], head, (size_t)n * 8, deadline);
                if (io == IO_OK) io = send_all(t->fds[r], all, total, deadline);
                if (io != IO_OK) rc = tcp_io_fail(t, io, r, what, saec_now() - t0);
            }
        }
        for (int r = 0; r < n; r++)
            free(blobs[r]);
        free(blobs);
        free(head);
        if (rc != SAEC_OK) {
            free(all);
            return rc;
        }
        *data = all;
        return SAEC_OK;
    }
    /* a peer: send mine, receive everyone's */
    unsigned char *head = malloc((size_t)n * 8); /* before sending: a failure later breaks */
    if (!head) return saec_fail(SAEC_ERR_OTHER, NULL, "out of memory in %s", what);
    unsigned char lenb[8];
    put_u64(lenb, bytes);
    int io = send_all(t->fds[0], lenb, sizeof lenb, deadline);
    if (io == IO_OK && bytes) io = send_all(t->fds[0], mine, bytes, deadline);
    if (io == IO_OK) io = recv_all(t->fds[0], head, (size_t)n * 8, deadline);
    if (io != IO_OK) {
        free(head);
        return tcp_io_fail(t, io, 0, what, saec_now() - t0);
    }
    size_t total = 0;
    for (int r = 0; r < n; r++) {
        uint64_t len = get_u64(head + 8 * r);
        if (len > TCP_MAX_BLOB) {
            free(head);
            tcp_break(t);
            return saec_fail(SAEC_ERR_OTHER, NULL, "%s over TCP: protocol error from rank 0", what);
        }
        sizes[r] = (size_t)len;
        total += (size_t)len;
    }
    free(head);
    char *all = malloc(total ? total : 1);
    if (!all) {
        tcp_break(t);
        return saec_fail(SAEC_ERR_OTHER, NULL, "out of memory in %s", what);
    }
    io = recv_all(t->fds[0], all, total, deadline);
    if (io != IO_OK) {
        free(all);
        return tcp_io_fail(t, io, 0, what, saec_now() - t0);
    }
    *data = all;
    return SAEC_OK;
}

int saec_tcp_bcast(saec_tcp *t, void *buf, size_t bytes, int root) {
    if (root < 0 || root >= t->size)
        return saec_fail(SAEC_ERR_OTHER, NULL, "broadcast from rank %d in a world of %d", root,
                         t->size);
    size_t *sizes = malloc((size_t)t->size * sizeof *sizes);
    if (!sizes) return saec_fail(SAEC_ERR_OTHER, NULL, "out of memory in a host broadcast");
    char *all = NULL;
    int rc = saec_tcp_allgather(t, buf, t->rank == root ? bytes : 0, &all, sizes);
    if (rc == SAEC_OK) {
        size_t off = 0;
        for (int r = 0; r < root; r++)
            off += sizes[r];
        if (sizes[root] != bytes)
            rc = saec_fail(SAEC_ERR_OTHER, "this is a bug in saec; please report it",
                           "host broadcast: rank %d sent %zu bytes, rank %d expected %zu", root,
                           sizes[root], t->rank, bytes);
        else if (t->rank != root && bytes)
            memcpy(buf, all + off, bytes);
    }
    free(all);
    free(sizes);
    return rc;
}
