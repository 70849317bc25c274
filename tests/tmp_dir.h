/* A scratch directory for the tests that write files: tmp_dir_make() creates it, tmp_path(name)
   names a file in it, count_entries() counts what is left (temporary files after a failure),
   remove_dir() deletes it with its subdirectories. */
#ifndef SAEC_TESTS_TMP_DIR_H
#define SAEC_TESTS_TMP_DIR_H

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char tmpdir[256];

/* Creates /tmp/<prefix>_XXXXXX as tmpdir; 0 when done. */
static inline int tmp_dir_make(const char *prefix) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/%s_XXXXXX", prefix);
    if (mkdtemp(tmpdir)) return 0;
    perror("mkdtemp");
    return -1;
}

/* tmpdir/name, in one of 8 rotating buffers (so a call may use several at once). */
static inline const char *tmp_path(const char *name) {
    static char buf[8][512];
    static int next;
    char *p = buf[next++ % 8];
    snprintf(p, 512, "%s/%s", tmpdir, name);
    return p;
}

/* Entries of dir whose name contains `containing`. */
static inline int count_entries(const char *dir, const char *containing) {
    DIR *dp = opendir(dir);
    int n = 0;
    for (struct dirent *e; dp && (e = readdir(dp));)
        if (strstr(e->d_name, containing)) n++;
    if (dp) closedir(dp);
    return n;
}

/* Removes dir, its files and the files of its subdirectories. */
static inline void remove_dir(const char *dir, int depth) {
    DIR *dp = opendir(dir);
    for (struct dirent *e; dp && (e = readdir(dp));) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        char path[1024];
        const int len = snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (len < 0 || (size_t)len >= sizeof path) continue;
        struct stat st;
        if (depth < 1 && stat(path, &st) == 0 && S_ISDIR(st.st_mode))
            remove_dir(path, depth + 1);
        else
            remove(path);
    }
    if (dp) closedir(dp);
    rmdir(dir);
}

#endif
