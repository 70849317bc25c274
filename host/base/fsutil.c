/* File-system helpers: mkdir -p, atomic writes (temporary file + fsync + rename), whole-file
   reads. Every failure names the path and the system's reason. */
#include "fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "saec/saec.h"

static const char *const mkdir_hint = "choose a writable directory with --out";

static int mkdirs_fail(const char *path, int err) {
    return saec_fail(SAEC_ERR_USAGE, mkdir_hint, "cannot create output directory '%s': %s", path,
                     strerror(err));
}

/* Create one directory; an existing directory is success, anything else in the way is not. */
static int mkdir_one(const char *dir, int *err) {
    if (mkdir(dir, 0777) == 0) return 0;
    int e = errno;
    struct stat st;
    if (e == EEXIST) {
        if (stat(dir, &st) == 0 && S_ISDIR(st.st_mode)) return 0;
        *err = ENOTDIR;
        return -1;
    }
    /* Some file systems report EACCES/EROFS for an existing directory we may not create. */
    if (stat(dir, &st) == 0 && S_ISDIR(st.st_mode)) return 0;
    *err = e;
    return -1;
}

int saec_mkdirs(const char *path) {
    if (!path || !path[0]) return mkdirs_fail(path ? path : "", ENOENT);
    size_t len = strlen(path);
    char *buf = malloc(len + 1);
    if (!buf) return mkdirs_fail(path, ENOMEM);
    memcpy(buf, path, len + 1);
    /* Drop trailing slashes (keep a lone "/"). */
    while (len > 1 && buf[len - 1] == '/')
        buf[--len] = '\0';
    int err = 0;
    for (size_t i = 1; i <= len; i++) {
        if (buf[i] != '/' && buf[i] != '\0') continue;
        if (buf[i - 1] == '/') continue; /* "a//b" */
        char saved = buf[i];
        buf[i] = '\0';
        int rc = mkdir_one(buf, &err);
        buf[i] = saved;
        if (rc != 0) {
            free(buf);
            return mkdirs_fail(path, err);
        }
    }
    free(buf);
    return SAEC_OK;
}

int saec_path_exists(const char *path) {
    struct stat st;
    return path && stat(path, &st) == 0;
}

int saec_is_dir(const char *path) {
    struct stat st;
    return path && stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

void saec_path_join(char *out, size_t size, const char *dir, const char *name) {
    snprintf(out, size, "%s/%s", dir, name);
}

/* ---- atomic files ----------------------------------------------------------------------- */

static int atomic_fail(saec_atomic_file *af, const char *what, int err) {
    saec_atomic_abort(af);
    return saec_fail(SAEC_ERR_OTHER, "check free disk space and permissions",
                     "cannot write '%s': %s: %s", af->path, what, strerror(err));
}

int saec_atomic_open(saec_atomic_file *af, const char *path) {
    af->f = NULL;
    af->path[0] = '\0';
    af->tmp_path[0] = '\0';
    size_t len = path ? strlen(path) : 0;
    if (len == 0 || len >= sizeof af->path)
        return saec_fail(SAEC_ERR_USAGE, "use a shorter output path", "cannot write '%s': %s",
                         path ? path : "", len ? "path too long" : "empty path");
    memcpy(af->path, path, len + 1);
    snprintf(af->tmp_path, sizeof af->tmp_path, "%s.tmp.%ld", path, (long)getpid());
    af->f = fopen(af->tmp_path, "wb");
    if (!af->f) {
        int e = errno;
        af->tmp_path[0] = '\0'; /* nothing was created: nothing to unlink */
        return saec_fail(SAEC_ERR_OTHER, "check that the directory exists and is writable",
                         "cannot write '%s': %s", path, strerror(e));
    }
    return SAEC_OK;
}

int saec_atomic_write(saec_atomic_file *af, const void *data, size_t bytes) {
    if (!af->f)
        return saec_fail(SAEC_ERR_OTHER, NULL, "cannot write '%s': file not open", af->path);
    if (bytes == 0) return SAEC_OK;
    errno = 0;
    if (fwrite(data, 1, bytes, af->f) != bytes) {
        int e = errno ? errno : EIO;
        return atomic_fail(af, "write failed", e);
    }
    return SAEC_OK;
}

/* Make the rename durable: fsync the directory holding the file (best effort). */
static void fsync_parent_dir(const char *path) {
    const char *slash = strrchr(path, '/');
    char dir[1024];
    if (!slash) {
        snprintf(dir, sizeof dir, ".");
    } else if (slash == path) {
        snprintf(dir, sizeof dir, "/");
    } else {
        size_t n = (size_t)(slash - path);
        if (n >= sizeof dir) return;
        memcpy(dir, path, n);
        dir[n] = '\0';
    }
    int fd = open(dir, O_RDONLY);
    if (fd < 0) return;
    (void)fsync(fd);
    close(fd);
}

int saec_atomic_commit(saec_atomic_file *af) {
    if (!af->f)
        return saec_fail(SAEC_ERR_OTHER, NULL, "cannot write '%s': file not open", af->path);
    errno = 0;
    if (fflush(af->f) != 0) return atomic_fail(af, "flush failed", errno ? errno : EIO);
    if (fsync(fileno(af->f)) != 0) return atomic_fail(af, "fsync failed", errno);
    FILE *f = af->f;
    af->f = NULL;
    if (fclose(f) != 0) return atomic_fail(af, "close failed", errno ? errno : EIO);
    if (rename(af->tmp_path, af->path) != 0) return atomic_fail(af, "rename failed", errno);
    af->tmp_path[0] = '\0';
    fsync_parent_dir(af->path);
    return SAEC_OK;
}

void saec_atomic_abort(saec_atomic_file *af) {
    if (af->f) {
        fclose(af->f);
        af->f = NULL;
    }
    if (af->tmp_path[0]) {
        unlink(af->tmp_path);
        af->tmp_path[0] = '\0';
    }
}

int saec_write_text_atomic(const char *path, const char *text) {
    saec_atomic_file af;
    SAEC_TRY(saec_atomic_open(&af, path));
    SAEC_TRY(saec_atomic_write(&af, text, strlen(text))); /* a failed write aborts itself */
    return saec_atomic_commit(&af);
}

/* ---- whole-file reads -------------------------------------------------------------------- */

static int read_fail(const char *path, int err) {
    return saec_fail(SAEC_ERR_DATA, "check the path", "cannot read '%s': %s", path, strerror(err));
}

int saec_read_file(const char *path, char **out, size_t *len) {
    *out = NULL;
    if (len) *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return read_fail(path, errno);
    struct stat st;
    if (fstat(fileno(f), &st) != 0) {
        int e = errno;
        fclose(f);
        return read_fail(path, e);
    }
    if (S_ISDIR(st.st_mode)) {
        fclose(f);
        return read_fail(path, EISDIR);
    }
    /* Regular files are read in one go; pipes and the like grow the buffer as they go. */
    size_t cap = S_ISREG(st.st_mode) && st.st_size > 0 ? (size_t)st.st_size + 1 : 4096;
    char *buf = malloc(cap);
    if (!buf) {
        fclose(f);
        return read_fail(path, ENOMEM);
    }
    size_t n = 0;
    for (;;) {
        if (n + 1 >= cap) {
            /* Full: peek one byte so that a file of the stat'd size is not reallocated. */
            int c = fgetc(f);
            if (c == EOF) {
                if (ferror(f)) {
                    int e = errno ? errno : EIO;
                    free(buf);
                    fclose(f);
                    return read_fail(path, e);
                }
                break;
            }
            size_t ncap = cap * 2;
            char *nb = realloc(buf, ncap);
            if (!nb) {
                free(buf);
                fclose(f);
                return read_fail(path, ENOMEM);
            }
            buf = nb;
            cap = ncap;
            buf[n++] = (char)c;
        }
        size_t want = cap - 1 - n;
        size_t got = fread(buf + n, 1, want, f);
        n += got;
        if (got < want) {
            if (ferror(f)) {
                int e = errno ? errno : EIO;
                free(buf);
                fclose(f);
                return read_fail(path, e);
            }
            break; /* EOF */
        }
    }
    fclose(f);
    buf[n] = '\0';
    *out = buf;
    if (len) *len = n;
    return SAEC_OK;
}

/* NumPy format 1.0: magic, version, a little-endian u16 header length, a Python-literal header
   padded with spaces to a multiple of 64 bytes (ending in a newline), then C-order data. */
int saec_npy_header(char *buf, size_t size, int64_t rows, int64_t cols, size_t *len) {
    char dict[128];
    int n = snprintf(dict, sizeof dict,
                     "{'descr': '<f4', 'fortran_order': False, 'shape': (%lld, %lld), }",
                     (long long)rows, (long long)cols);
    size_t total = 10 + (size_t)n + 1;
    total = (total + 63) / 64 * 64;
    if (n < 0 || total > size) return 0;
    memcpy(buf, "\x93NUMPY\x01\x00", 8);
    const size_t hlen = total - 10;
    buf[8] = (char)(hlen & 0xff), buf[9] = (char)(hlen >> 8);
    memcpy(buf + 10, dict, (size_t)n);
    memset(buf + 10 + n, ' ', total - 10 - (size_t)n - 1);
    buf[total - 1] = '\n';
    *len = total;
    return 1;
}

int saec_write_npy_f32(const char *path, const float *data, int64_t rows, int64_t cols) {
    char header[256];
    size_t hlen = 0;
    if (!saec_npy_header(header, sizeof header, rows, cols, &hlen))
        return saec_fail(SAEC_ERR_OTHER, NULL, "internal: .npy header too long");
    saec_atomic_file af;
    SAEC_TRY(saec_atomic_open(&af, path));
    int rc = saec_atomic_write(&af, header, hlen);
    if (rc == SAEC_OK) rc = saec_atomic_write(&af, data, sizeof(float) * (size_t)(rows * cols));
    if (rc == SAEC_OK) return saec_atomic_commit(&af);
    saec_atomic_abort(&af);
    return rc;
}
