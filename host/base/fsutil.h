/* File-system helpers: directories, atomic writes, whole-file reads. */
#ifndef SAEC_FSUTIL_H
#define SAEC_FSUTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* mkdir -p. Fails with SAEC_ERR_USAGE naming the path (unwritable output directory). */
int saec_mkdirs(const char *path);
int saec_path_exists(const char *path);
int saec_is_dir(const char *path);
/* `dir`/`name` into out[size], cut short as snprintf cuts (the callers' buffers hold a run path,
   at most SAEC_RUN_PATH_MAX, and a file name). */
void saec_path_join(char *out, size_t size, const char *dir, const char *name);

/* Atomic file writing: open `path`.tmp.<pid>, write, then commit (fflush, fsync, rename) or
   abort (close and unlink). No partial file is ever visible under `path`. */
typedef struct {
    FILE *f;
    char path[1024];
    char tmp_path[1100];
} saec_atomic_file;

int saec_atomic_open(saec_atomic_file *af, const char *path);
int saec_atomic_write(saec_atomic_file *af, const void *data, size_t bytes);
int saec_atomic_commit(saec_atomic_file *af);
void saec_atomic_abort(saec_atomic_file *af);

/* Write a whole text file atomically. */
int saec_write_text_atomic(const char *path, const char *text);
/* Read a whole file into a NUL-terminated malloc'd buffer. SAEC_ERR_DATA naming the path. */
int saec_read_file(const char *path, char **out, size_t *len);

/* The header of a NumPy 1.0 .npy file holding float32 [rows, cols] in C order; 0 when it does
   not fit in `size`. */
int saec_npy_header(char *buf, size_t size, int64_t rows, int64_t cols, size_t *len);
/* Write float32 data [rows, cols] as a .npy file, atomically. */
int saec_write_npy_f32(const char *path, const float *data, int64_t rows, int64_t cols);

#endif
