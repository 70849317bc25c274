/* The run directory's layout: the writer's lock, atomic publication of checkpoints, cleanup of a
   killed writer's leftovers (run_dir.h draws the layout). */
#define _GNU_SOURCE /* nftw's FTW_PHYS and FTW_DEPTH */
#include "run_dir.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fsutil.h"
#include "saec/saec.h"

#define STEP_PREFIX "step-"
#define STEP_DIGITS 12

static const char *const disk_hint = "check free disk space and permissions";

/* snprintf for paths: a path that does not fit comes out empty, so that it names no file at all
   (run directories are at most SAEC_STR_MAX long, and every buffer here has room to spare). */
__attribute__((format(printf, 3, 4))) static void path_fmt(char *out, size_t cap, const char *fmt,
                                                          ...) {
    va_list ap;
    va_start(ap, fmt);
    const int n = vsnprintf(out, cap, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= cap) out[0] = '\0';
}

static int path_fail(const char *what, const char *path, int err) {
    return saec_fail(SAEC_ERR_OTHER, disk_hint, "cannot %s '%s': %s", what, path, strerror(err));
}

/* ---- the writer's lock ------------------------------------------------------------------ */

int saec_run_lock_acquire(const char *dir, const char *what, saec_run_lock *lock) {
    lock->fd = -1;
    path_fmt(lock->path, sizeof lock->path, "%s/%s", dir, SAEC_RUN_LOCK);
    int fd = -1;
    for (int attempt = 0; fd < 0; attempt++) {
        fd = open(lock->path, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
        if (fd < 0)
            return saec_fail(SAEC_ERR_USAGE, "choose a writable directory with --out",
                             "cannot create the lock file '%s': %s", lock->path, strerror(errno));
        if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
            const int e = errno;
            char holder[256] = "";
            const ssize_t got = e == EWOULDBLOCK ? pread(fd, holder, sizeof holder - 1, 0) : -1;
            close(fd);
            if (e != EWOULDBLOCK)
                return saec_fail(SAEC_ERR_OTHER,
                                 "the file system may not support locks (flock); use a local disk",
                                 "cannot lock '%s': %s", lock->path, strerror(e));
            holder[got > 0 ? got : 0] = '\0';
            holder[strcspn(holder, "\n")] = '\0';
            return saec_fail(SAEC_ERR_USAGE,
                             "one process writes a directory at a time: wait for it to end or stop "
                             "it, or choose another --out (eval and inspect may read it meanwhile)",
                             "'%s' is in use by another saec process (%s)", dir,
                             holder[0] ? holder : "its pid is not written yet");
        }
        /* The holder before us may have removed the file between our open and our flock: then
           this lock is on a file nobody else will open; take the one at the path instead. */
        struct stat held, named;
        if (fstat(fd, &held) != 0 || stat(lock->path, &named) != 0 ||
            held.st_ino != named.st_ino || held.st_dev != named.st_dev) {
            close(fd);
            fd = -1;
            if (attempt == 100)
                return saec_fail(SAEC_ERR_OTHER, NULL, "cannot lock '%s': it keeps being replaced",
                                 lock->path);
        }
    }
    /* Who holds it, for the next writer's message. */
    char host[128] = "?";
    gethostname(host, sizeof host - 1);
    char text[320];
    const int len =
        snprintf(text, sizeof text, "pid %ld on %s: saec %s\n", (long)getpid(), host, what);
    if (ftruncate(fd, 0) != 0 || pwrite(fd, text, (size_t)len, 0) != len) {
        /* the lock holds without the note; the next writer's message just lacks the pid */
    }
    lock->fd = fd;
    return SAEC_OK;
}

void saec_run_lock_release(saec_run_lock *lock) {
    if (lock->fd < 0) return;
    unlink(lock->path); /* while still held: a waiting opener sees the file replaced, retries */
    close(lock->fd);    /* closing the last descriptor releases the flock */
    lock->fd = -1;
}

/* ---- leftovers of a killed writer --------------------------------------------------------- */

/* The pid of a temporary name "<anything>.tmp.<pid>", else 0. */
static long tmp_name_pid(const char *name) {
    const char *tag = strstr(name, ".tmp.");
    if (!tag) return 0;
    while (strstr(tag + 1, ".tmp.")) /* the last one */
        tag = strstr(tag + 1, ".tmp.");
    const char *digits = tag + 5;
    if (!*digits || tag == name) return 0;
    for (const char *p = digits; *p; p++)
        if (*p < '0' || *p > '9') return 0;
    return strtol(digits, NULL, 10);
}

static int writer_gone(long pid) {
    if (pid == (long)getpid()) return 1; /* a reused pid: this process has written nothing yet */
    return kill((pid_t)pid, 0) != 0 && errno == ESRCH;
}

static int64_t g_removed_bytes; /* nftw's callback has no user pointer */

static int remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw) {
    (void)ftw;
    if (type != FTW_DP && type != FTW_D) g_removed_bytes += st->st_size;
    return remove(path) == 0 || errno == ENOENT ? 0 : -1;
}

/* Remove a file, a symlink or a directory tree (never following symlinks). */
static int remove_tree(const char *path, int64_t *bytes) {
    g_removed_bytes = 0;
    const int rc = nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    if (bytes) *bytes += g_removed_bytes;
    return rc == 0 || errno == ENOENT ? 0 : -1;
}

static int remove_leftovers_in(const char *dir, int *count, int64_t *bytes) {
    DIR *d = opendir(dir);
    if (!d) return errno == ENOENT ? SAEC_OK : path_fail("list", dir, errno);
    struct dirent *e;
    int rc = SAEC_OK;
    while ((e = readdir(d)) && rc == SAEC_OK) {
        const long pid = tmp_name_pid(e->d_name);
        if (pid <= 0 || !writer_gone(pid)) continue;
        char path[SAEC_RUN_PATH_MAX];
        path_fmt(path, sizeof path, "%s/%s", dir, e->d_name);
        if (remove_tree(path, bytes) != 0)
            rc = path_fail("remove the leftover", path, errno);
        else
            (*count)++;
    }
    closedir(d);
    return rc;
}

int saec_run_remove_leftovers(const char *dir) {
    int count = 0;
    int64_t bytes = 0;
    char ckpts[SAEC_RUN_PATH_MAX];
    path_fmt(ckpts, sizeof ckpts, "%s/%s", dir, SAEC_RUN_CHECKPOINTS);
    SAEC_TRY(remove_leftovers_in(dir, &count, &bytes));
    SAEC_TRY(remove_leftovers_in(ckpts, &count, &bytes));
    if (count)
        fprintf(stderr,
                "saec: removed %d leftover(s) of a killed writer in '%s' (%.1f MB of unpublished "
                "files)\n",
                count, dir, (double)bytes / 1e6);
    return SAEC_OK;
}

/* ---- the checkpoint list ---------------------------------------------------------------------- */

/* The step of a published checkpoint's directory name "step-<12 digits>", else -1. */
static int64_t step_of_name(const char *name) {
    const size_t plen = strlen(STEP_PREFIX);
    if (strncmp(name, STEP_PREFIX, plen) != 0 || strlen(name) != plen + STEP_DIGITS) return -1;
    int64_t step = 0;
    for (const char *p = name + plen; *p; p++) {
        if (*p < '0' || *p > '9') return -1;
        step = step * 10 + (*p - '0');
    }
    return step;
}

static int newest_first(const void *a, const void *b) {
    const saec_ckpt_entry *x = a, *y = b;
    if (x->legacy != y->legacy) return x->legacy - y->legacy; /* an old layout's file is oldest */
    return x->step < y->step ? 1 : x->step > y->step ? -1 : 0;
}

static int is_regular_file(const char *path) {
    struct stat st;
    return lstat(path, &st) == 0 && S_ISREG(st.st_mode);
}

int saec_ckpt_list(const char *dir, saec_ckpt_entry **out, int *n) {
    *out = NULL;
    *n = 0;
    char ckpts[SAEC_RUN_PATH_MAX];
    path_fmt(ckpts, sizeof ckpts, "%s/%s", dir, SAEC_RUN_CHECKPOINTS);
    saec_ckpt_entry *list = NULL;
    int count = 0, cap = 0;
    DIR *d = opendir(ckpts);
    if (!d && errno != ENOENT && errno != ENOTDIR) return path_fail("list", ckpts, errno);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        const int64_t step = step_of_name(e->d_name);
        if (step < 0) continue;
        if (count == cap) {
            cap = cap ? 2 * cap : 8;
            saec_ckpt_entry *grown = realloc(list, sizeof *list * (size_t)(cap + 1));
            if (!grown) {
                closedir(d);
                free(list);
                return saec_fail(SAEC_ERR_OTHER, NULL, "out of memory listing '%s'", ckpts);
            }
            list = grown;
        }
        list[count].step = step;
        list[count].legacy = 0;
        path_fmt(list[count].dir, sizeof list[count].dir, "%s/%s", ckpts, e->d_name);
        count++;
    }
    if (d) closedir(d);
    /* The older layout: the files in the run directory itself (also a step directory read
       directly, which holds them the same way). */
    char model[SAEC_RUN_PATH_MAX];
    path_fmt(model, sizeof model, "%s/%s", dir, SAEC_CKPT_MODEL);
    if (is_regular_file(model)) {
        saec_ckpt_entry *grown = realloc(list, sizeof *list * (size_t)(count + 1));
        if (!grown) {
            free(list);
            return saec_fail(SAEC_ERR_OTHER, NULL, "out of memory listing '%s'", dir);
        }
        list = grown;
        list[count].step = -1;
        list[count].legacy = 1;
        path_fmt(list[count].dir, sizeof list[count].dir, "%s", dir);
        count++;
    }
    if (count > 1) qsort(list, (size_t)count, sizeof *list, newest_first);
    *out = list;
    *n = count;
    return SAEC_OK;
}

int saec_ckpt_current(const char *dir, char *out, size_t cap) {
    saec_ckpt_entry *list;
    int n;
    SAEC_TRY(saec_ckpt_list(dir, &list, &n));
    if (n == 0) {
        free(list);
        return saec_fail(SAEC_ERR_DATA, "give a run directory written by 'saec train'",
                         "no checkpoint in run directory '%s' (no %s/step-*/ and no %s)", dir,
                         SAEC_RUN_CHECKPOINTS, SAEC_CKPT_MODEL);
    }
    path_fmt(out, cap, "%s", list[0].dir);
    free(list);
    return SAEC_OK;
}

/* ---- publishing --------------------------------------------------------------------------- */

int saec_ckpt_begin(const char *dir, int64_t step, char *tmp_dir, size_t cap) {
    char ckpts[SAEC_RUN_PATH_MAX];
    path_fmt(ckpts, sizeof ckpts, "%s/%s", dir, SAEC_RUN_CHECKPOINTS);
    SAEC_TRY(saec_mkdirs(ckpts));
    path_fmt(tmp_dir, cap, "%s/%s%0*lld.tmp.%ld", ckpts, STEP_PREFIX, STEP_DIGITS,
             (long long)step, (long)getpid());
    remove_tree(tmp_dir, NULL); /* a failed attempt of this process at this step */
    if (mkdir(tmp_dir, 0777) != 0) return path_fail("create", tmp_dir, errno);
    return SAEC_OK;
}

void saec_ckpt_abandon(const char *tmp_dir) { remove_tree(tmp_dir, NULL); }

static int fsync_dir(const char *dir) {
    const int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return path_fail("open", dir, errno);
    const int rc = fsync(fd) == 0 || errno == EINVAL; /* some file systems cannot sync dirs */
    const int e = errno;
    close(fd);
    return rc ? SAEC_OK : path_fail("flush", dir, e);
}

/* Point `link_path` at `target` atomically (a temporary symlink renamed over it). */
static int replace_symlink(const char *target, const char *link_path) {
    char buf[SAEC_RUN_PATH_MAX];
    const ssize_t len = readlink(link_path, buf, sizeof buf - 1);
    if (len >= 0 && (buf[len] = '\0', strcmp(buf, target) == 0)) return SAEC_OK;
    char tmp[SAEC_RUN_PATH_MAX + 32];
    path_fmt(tmp, sizeof tmp, "%s.tmp.%ld", link_path, (long)getpid());
    unlink(tmp);
    if (symlink(target, tmp) != 0) return path_fail("create the link", tmp, errno);
    if (rename(tmp, link_path) != 0) {
        const int e = errno;
        unlink(tmp);
        return path_fail("replace", link_path, e);
    }
    return SAEC_OK;
}

/* Retire a checkpoint directory: one rename takes it out of the list, then it is removed. */
static int retire(const char *ckpt_dir) {
    char doomed[SAEC_RUN_PATH_MAX + 32];
    path_fmt(doomed, sizeof doomed, "%s.del.tmp.%ld", ckpt_dir, (long)getpid());
    if (rename(ckpt_dir, doomed) != 0) return path_fail("retire", ckpt_dir, errno);
    if (remove_tree(doomed, NULL) != 0) return path_fail("remove", doomed, errno);
    return SAEC_OK;
}

/* An older layout's files become a checkpoint of their own (hard links: no copy, and the plain
   files stay valid until the symlinks replace them). */
static int adopt_legacy(const char *dir, const char *ckpts, int64_t legacy_step) {
    char model[SAEC_RUN_PATH_MAX], opt[SAEC_RUN_PATH_MAX];
    path_fmt(model, sizeof model, "%s/%s", dir, SAEC_CKPT_MODEL);
    path_fmt(opt, sizeof opt, "%s/%s", dir, SAEC_CKPT_OPTIMIZER);
    if (!is_regular_file(model) || legacy_step < 0) return SAEC_OK;
    char final[SAEC_RUN_PATH_MAX], tmp[SAEC_RUN_PATH_MAX + 64], dst[SAEC_RUN_PATH_MAX + 128];
    path_fmt(final, sizeof final, "%s/%s%0*lld", ckpts, STEP_PREFIX, STEP_DIGITS,
             (long long)legacy_step);
    if (saec_path_exists(final)) return SAEC_OK;
    path_fmt(tmp, sizeof tmp, "%s.tmp.%ld", final, (long)getpid());
    remove_tree(tmp, NULL);
    if (mkdir(tmp, 0777) != 0) return path_fail("create", tmp, errno);
    path_fmt(dst, sizeof dst, "%s/%s", tmp, SAEC_CKPT_MODEL);
    int ok = link(model, dst) == 0;
    path_fmt(dst, sizeof dst, "%s/%s", tmp, SAEC_CKPT_OPTIMIZER);
    if (ok && is_regular_file(opt)) ok = link(opt, dst) == 0;
    if (!ok || fsync_dir(tmp) != SAEC_OK || rename(tmp, final) != 0) {
        remove_tree(tmp, NULL); /* no hard links (some file systems): the old files just go */
        saec_error_clear();
    }
    return SAEC_OK;
}

int saec_ckpt_publish(const char *dir, const char *tmp_dir, int64_t step, int64_t keep,
                      int64_t legacy_step) {
    char ckpts[SAEC_RUN_PATH_MAX], final[SAEC_RUN_PATH_MAX + 32], name[32];
    path_fmt(ckpts, sizeof ckpts, "%s/%s", dir, SAEC_RUN_CHECKPOINTS);
    snprintf(name, sizeof name, "%s%0*lld", STEP_PREFIX, STEP_DIGITS, (long long)step);
    path_fmt(final, sizeof final, "%s/%s", ckpts, name);
    /* 1. the files' contents (fsync'd as they were written) and their names */
    SAEC_TRY(fsync_dir(tmp_dir));
    /* 2. a checkpoint of the same step (one that failed to load, then was trained past again)
          makes way; then one rename publishes the new one */
    struct stat st;
    if (lstat(final, &st) == 0) SAEC_TRY(retire(final));
    if (rename(tmp_dir, final) != 0) return path_fail("publish the checkpoint", final, errno);
    SAEC_TRY(fsync_dir(ckpts));
    /* 3. the pointer and the stable paths (readers that list the directory need neither) */
    SAEC_TRY(adopt_legacy(dir, ckpts, legacy_step));
    char link_path[SAEC_RUN_PATH_MAX + 32];
    path_fmt(link_path, sizeof link_path, "%s/%s", ckpts, SAEC_RUN_LATEST);
    SAEC_TRY(replace_symlink(name, link_path));
    SAEC_TRY(fsync_dir(ckpts));
    const char *const files[] = {SAEC_CKPT_MODEL, SAEC_CKPT_OPTIMIZER};
    for (int i = 0; i < 2; i++) {
        char target[128];
        snprintf(target, sizeof target, "%s/%s/%s", SAEC_RUN_CHECKPOINTS, SAEC_RUN_LATEST,
                 files[i]);
        path_fmt(link_path, sizeof link_path, "%s/%s", dir, files[i]);
        SAEC_TRY(replace_symlink(target, link_path));
    }
    SAEC_TRY(fsync_dir(dir));
    /* 4. only the newest `keep` stay */
    saec_ckpt_entry *list;
    int n;
    SAEC_TRY(saec_ckpt_list(dir, &list, &n));
    int rc = SAEC_OK;
    for (int i = 0; i < n && rc == SAEC_OK; i++)
        if (i >= keep && !list[i].legacy && list[i].step < step) rc = retire(list[i].dir);
    free(list);
    return rc;
}

/* ---- listing for saec inspect ----------------------------------------------------------------- */

void saec_ckpt_print(const char *dir, FILE *out) {
    saec_ckpt_entry *list;
    int n;
    if (saec_ckpt_list(dir, &list, &n) != SAEC_OK) {
        saec_error_clear();
        return;
    }
    char link_path[SAEC_RUN_PATH_MAX + 32], latest[SAEC_RUN_PATH_MAX] = "";
    path_fmt(link_path, sizeof link_path, "%s/%s/%s", dir, SAEC_RUN_CHECKPOINTS, SAEC_RUN_LATEST);
    const ssize_t len = readlink(link_path, latest, sizeof latest - 1);
    latest[len > 0 ? len : 0] = '\0';
    fprintf(out, "checkpoints (newest first): %d\n", n);
    for (int i = 0; i < n; i++) {
        if (list[i].legacy) {
            fprintf(out, "  %-12s %s (older layout: files in the run directory)\n", "step ?",
                    list[i].dir);
            continue;
        }
        const char *base = strrchr(list[i].dir, '/');
        base = base ? base + 1 : list[i].dir;
        char step[32];
        snprintf(step, sizeof step, "step %lld", (long long)list[i].step);
        fprintf(out, "  %-12s %s/%s%s\n", step, SAEC_RUN_CHECKPOINTS, base,
                strcmp(base, latest) == 0 ? "  (latest)" : "");
    }
    DIR *d = opendir(dir);
    int leftovers = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        leftovers += tmp_name_pid(e->d_name) > 0;
    if (d) closedir(d);
    char ckpts[SAEC_RUN_PATH_MAX];
    path_fmt(ckpts, sizeof ckpts, "%s/%s", dir, SAEC_RUN_CHECKPOINTS);
    d = opendir(ckpts);
    while (d && (e = readdir(d)))
        leftovers += tmp_name_pid(e->d_name) > 0;
    if (d) closedir(d);
    if (leftovers)
        fprintf(out,
                "  %d unpublished temporary file(s) or directory(ies): a save in progress, or a "
                "killed writer's leftovers (the next train/resume removes those)\n",
                leftovers);
    free(list);
}
