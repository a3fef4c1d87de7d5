/*
 * fs: the few file operations cohort needs, done safely.
 *
 * Reads are bounded before anything is allocated (a huge or endless file is an
 * error, not an OOM). Writes go to a temp file in the same directory, are
 * fsync'd and renamed over the target, so a crash or a full disk never leaves
 * half a file. Private files are created 0600 from the start, never chmod'ed
 * after the fact. This is not a general VFS layer.
 */
#ifndef COHORT_UTIL_FS_H
#define COHORT_UTIL_FS_H

#include "util/err.h"

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Reads the whole file at path into a fresh NUL-terminated buffer. Fails if the
 * file is larger than max bytes (checked before allocating), is not a regular
 * file, or cannot be read. On success *out (caller owns; free()) and *len are
 * set. Errors start with the path. */
int cohort_fs_read(const char *path, size_t max, char **out, size_t *len, cohort_err_t *err);

/* Atomically replaces path with len bytes of data, created with mode
 * (e.g. 0600 for secrets, 0644 otherwise). Errors start with the path. */
int cohort_fs_write_atomic(const char *path, const void *data, size_t len, mode_t mode,
                           cohort_err_t *err);

/* Fails unless path is a regular file that neither group nor others can
 * read, write or execute (mode 0600 or stricter), as key files must be. */
int cohort_fs_check_private(const char *path, cohort_err_t *err);

/* Creates dir (and missing parents) with mode; existing dirs are fine. */
int cohort_fs_mkdir_p(const char *dir, mode_t mode, cohort_err_t *err);

/* True if path exists (any type). */
bool cohort_fs_exists(const char *path);

/* Returns path unchanged if absolute or base_dir is NULL/empty, else
 * base_dir/path. Caller owns the result. */
char *cohort_fs_resolve(const char *base_dir, const char *path);

/* The directory part of path ("." when none). Caller owns the result. */
char *cohort_fs_dirname(const char *path);

#endif
