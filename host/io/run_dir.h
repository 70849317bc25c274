/* A run directory's layout on disk: checkpoints published atomically, one writer at a time, and
   the leftovers of a killed writer cleaned up.

     RUN/
       saec.lock                 while a writer runs: its lock (flock; a kill frees it), "pid host cmd"
       config.json  metrics.jsonl  summary.json  ...
       checkpoints/
         step-000000000120/      one complete checkpoint: model.safetensors, optimizer.safetensors
         step-000000000100/      the previous one (keep_checkpoints, default 2, are kept)
         latest -> step-000000000120      a symlink, replaced atomically
       model.safetensors     -> checkpoints/latest/model.safetensors      stable paths for tools
       optimizer.safetensors -> checkpoints/latest/optimizer.safetensors

   A checkpoint is built in `checkpoints/step-N.tmp.PID/`, its files and the directory are
   fsync'd, and one rename publishes it: a step directory is complete or absent. `latest` is then
   moved to it and old ones are pruned (renamed to `step-N.del.tmp.PID`, then removed). Every
   temporary name ends in `.tmp.PID`, so the next writer removes exactly the leftovers of a writer
   whose process is gone.

   A run directory of the older layout (model.safetensors and optimizer.safetensors as plain
   files, no checkpoints/) lists as one checkpoint; its next save converts it. */
#ifndef SAEC_RUN_DIR_H
#define SAEC_RUN_DIR_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define SAEC_RUN_LOCK "saec.lock"
#define SAEC_RUN_CHECKPOINTS "checkpoints"
#define SAEC_RUN_LATEST "latest"
#define SAEC_RUN_PATH_MAX 1024
/* The two files of a checkpoint (checkpoint.h says what they hold). */
#define SAEC_CKPT_MODEL "model.safetensors"
#define SAEC_CKPT_OPTIMIZER "optimizer.safetensors"

/* The writer's lock on a directory. */
typedef struct {
    int fd; /* -1: not held */
    char path[SAEC_RUN_PATH_MAX];
} saec_run_lock;

/* Take the writer's lock of `dir` (created if absent) for `what` ("train", "export"). Another
   process holding it is SAEC_ERR_USAGE naming its pid, host and command, with a hint. The lock
   is held until saec_run_lock_release or the process ends. */
int saec_run_lock_acquire(const char *dir, const char *what, saec_run_lock *lock);
/* Release, removing the lock file (a killed writer leaves it behind, harmlessly). */
void saec_run_lock_release(saec_run_lock *lock);

/* Remove the leftovers of killed writers in `dir` and `dir/checkpoints`: names ending in
   `.tmp.PID` whose process is gone (or is this process, which has written nothing yet). Call
   with the lock held. Says on stderr what it removed. */
int saec_run_remove_leftovers(const char *dir);

/* One published checkpoint. */
typedef struct {
    int64_t step;                 /* from the directory's name (legacy: from the model file) */
    int legacy;                   /* the older layout: the files sit in the run directory */
    char dir[SAEC_RUN_PATH_MAX];  /* the directory holding model/optimizer.safetensors */
} saec_ckpt_entry;

/* The checkpoints of run directory `dir`, newest first (*out malloc'd; *n may be 0). */
int saec_ckpt_list(const char *dir, saec_ckpt_entry **out, int *n);

/* The directory readers take the checkpoint from: the newest published one (legacy: `dir`).
   SAEC_ERR_DATA when the run has none. */
int saec_ckpt_current(const char *dir, char *out, size_t cap);

/* Start checkpoint `step`: creates and returns its temporary directory. */
int saec_ckpt_begin(const char *dir, int64_t step, char *tmp_dir, size_t cap);
/* Publish the filled temporary directory as checkpoint `step` (fsync, rename, `latest`, the
   stable symlinks), then keep the newest `keep` checkpoints. legacy_step >= 0: the run directory
   has the older layout at that step, whose files become checkpoint legacy_step (hard links). */
int saec_ckpt_publish(const char *dir, const char *tmp_dir, int64_t step, int64_t keep,
                      int64_t legacy_step);
/* Remove an unpublished temporary directory (a failed save). */
void saec_ckpt_abandon(const char *tmp_dir);

/* Print the checkpoint list ("checkpoints: step 120 (latest), ..."), for saec inspect. */
void saec_ckpt_print(const char *dir, FILE *out);

#endif
