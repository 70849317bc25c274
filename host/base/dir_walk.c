/* A sorted recursive listing of regular files (dir_walk.h). */
#include "dir_walk.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "saec/saec.h"

typedef struct {
    char **paths;
    size_t n, cap;
} growing_list;

static int push(growing_list *l, const char *rel) {
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 256;
        char **p = realloc(l->paths, cap * sizeof *p);
        if (!p) return saec_fail(SAEC_ERR_OTHER, "", "out of memory listing files");
        l->paths = p;
        l->cap = cap;
    }
    l->paths[l->n] = strdup(rel);
    if (!l->paths[l->n]) return saec_fail(SAEC_ERR_OTHER, "", "out of memory listing files");
    l->n++;
    return SAEC_OK;
}

/* Walks root/rel ("" at the top). */
static int walk(const char *root, const char *rel, int depth, growing_list *l) {
    char dir_path[4096];
    snprintf(dir_path, sizeof dir_path, "%s%s%s", root, rel[0] ? "/" : "", rel);
    if (depth > SAEC_WALK_MAX_DEPTH)
        return saec_fail(SAEC_ERR_DATA, "a symbolic link may loop back to a folder above it",
                         "folder '%s' is nested more than %d deep", dir_path, SAEC_WALK_MAX_DEPTH);
    DIR *d = opendir(dir_path);
    if (!d)
        return saec_fail(SAEC_ERR_DATA, "check the path and its permissions",
                         "cannot read folder '%s': %s", dir_path, strerror(errno));
    int rc = SAEC_OK;
    struct dirent *e;
    while (rc == SAEC_OK && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue; /* ".", "..", hidden files */
        char child_rel[4096], child_path[8192];
        int len =
            snprintf(child_rel, sizeof child_rel, "%s%s%s", rel, rel[0] ? "/" : "", e->d_name);
        if (len < 0 || (size_t)len >= sizeof child_rel) {
            rc = saec_fail(SAEC_ERR_DATA, "shorten the folder names", "path too long under '%s'",
                           dir_path);
            break;
        }
        snprintf(child_path, sizeof child_path, "%s/%s", root, child_rel);
        struct stat st;
        if (stat(child_path, &st) != 0) continue; /* a dangling link: nothing to import */
        if (S_ISDIR(st.st_mode))
            rc = walk(root, child_rel, depth + 1, l);
        else if (S_ISREG(st.st_mode))
            rc = push(l, child_rel);
    }
    closedir(d);
    return rc;
}

static int by_bytes(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int saec_list_files(const char *root, saec_file_list *out) {
    out->paths = NULL;
    out->n = 0;
    struct stat st;
    if (stat(root, &st) != 0 || !S_ISDIR(st.st_mode))
        return saec_fail(SAEC_ERR_DATA, "give the folder that holds the tiles",
                         "'%s' is not a folder", root);
    growing_list l = {0};
    int rc = walk(root, "", 0, &l);
    if (rc != SAEC_OK) {
        saec_file_list tmp = {l.paths, l.n};
        saec_file_list_free(&tmp);
        return rc;
    }
    if (l.n) qsort(l.paths, l.n, sizeof *l.paths, by_bytes);
    out->paths = l.paths;
    out->n = l.n;
    return SAEC_OK;
}

void saec_file_list_free(saec_file_list *list) {
    for (size_t i = 0; i < list->n; i++)
        free(list->paths[i]);
    free(list->paths);
    list->paths = NULL;
    list->n = 0;
}
