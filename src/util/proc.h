/*
 * proc: runs a shell command with bytes on its stdin and collects its
 * stdout, bounded in size and time (what `cohortctl serve --exec` needs).
 *
 * The command runs as `/bin/sh -c CMD` with stdin, stdout and stderr on
 * pipes that are served together (poll), so a command that writes before it
 * has read everything cannot deadlock us. Output beyond the limit, or a
 * command that outlives the time limit, gets the command's process group
 * killed. Not a general process library: no pty, no streaming.
 */
#ifndef COHORT_UTIL_PROC_H
#define COHORT_UTIL_PROC_H

#include "util/err.h"

#include <stdbool.h>
#include <stddef.h>

typedef struct cohort_proc_result {
    char *out;      /* stdout (caller owns; free()); NUL-terminated */
    size_t out_len; /* bytes of stdout */
    char err[512];  /* the start of stderr, NUL-terminated */
    int exit_code;  /* exit status, or -1 when killed by a signal */
    int signal;     /* the signal that ended it, 0 if none */
    bool timed_out; /* killed for running longer than the limit */
    bool too_large; /* killed for writing more than the limit */
} cohort_proc_result_t;

/* Runs cmd with in_len bytes of in on its stdin, env_extra (NULL-terminated
 * "KEY=VALUE" strings, borrowed, may be NULL) added to the environment.
 * Blocks the calling thread (any thread) until the command ends, at most
 * about timeout_ms; SIGPIPE is blocked in that thread meanwhile. Fills
 * *res whatever the command did (res->out: caller owns); returns -1 with
 * err set only when it could not be started at all (pipes, fork). */
int cohort_proc_run(const char *cmd, const void *in, size_t in_len, size_t out_max, int timeout_ms,
                    const char *const *env_extra, cohort_proc_result_t *res, cohort_err_t *err);

#endif
