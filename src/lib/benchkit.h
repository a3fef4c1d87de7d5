/*
 * benchkit: fixtures for benchmarks (`cohortctl bench`): a throwaway
 * cluster on 127.0.0.1 (a CA, node keys and certificates, a CA-signed
 * roster and node configs in a fresh temporary directory, nodes started
 * in-process through libcohort), plus the small statistics and process
 * figures a benchmark reports (median, percentiles, resident memory).
 *
 * It is what tests/unit/cluster.c does for the unit tests, without cmocka:
 * every failure returns -1 with a reason instead of failing a test. It is
 * not a deployment tool: keys live in a temporary directory that is removed
 * when the cluster is destroyed, and certificates last a few days.
 */
#ifndef COHORT_LIB_BENCHKIT_H
#define COHORT_LIB_BENCHKIT_H

#include "cohort.h"
#include "util/err.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define COHORT_BENCHKIT_MAX 8

typedef struct cohort_benchkit cohort_benchkit_t;

typedef struct cohort_benchkit_member {
    const char *name;   /* node name (a certificate CN) */
    unsigned roles;     /* cohort_role_t bits (roster/roster.h), e.g. relay */
    bool unreachable;   /* its roster endpoint is a held port nobody listens
                           on: others can reach it only through a relay */
    const char *config; /* extra YAML sections for its node config, or NULL */
} cohort_benchkit_member_t;

/* Writes a cluster of count members (at most COHORT_BENCHKIT_MAX) into a
 * fresh directory under $TMPDIR (default /tmp) and starts a node for each.
 * Listen ports are free ports on 127.0.0.1, held by the cluster (bound, not
 * listening) for its whole life so no outgoing connection takes one first.
 * Returns -1 with err set if anything fails (nothing is left behind).
 * *out: caller owns; cohort_benchkit_destroy. */
int cohort_benchkit_open(const cohort_benchkit_member_t *members, int count,
                         cohort_benchkit_t **out, cohort_err_t *err);

/* Stops every node (each leaves gracefully) and removes the directory.
 * NULL is fine; sets *self_p to NULL. */
void cohort_benchkit_destroy(cohort_benchkit_t **self_p);

/* Node i (0 .. count-1). Borrowed; valid until cohort_benchkit_destroy.
 * Use it from one thread at a time (cohort.h). */
cohort_t *cohort_benchkit_node(const cohort_benchkit_t *self, int i);

/* Waits until every node has seen every other node up (member.up events,
 * read and dropped from each node's receive queue). Returns -1 with err
 * naming the node that did not, after timeout_ms. */
int cohort_benchkit_wait_up(cohort_benchkit_t *self, int timeout_ms, cohort_err_t *err);

/* Waits until node i reports peer `peer` on link `link` ("direct",
 * "punched", "relayed"). Returns -1 with err (what it saw) after
 * timeout_ms. */
int cohort_benchkit_wait_link(cohort_benchkit_t *self, int i, const char *peer, const char *link,
                              int timeout_ms, cohort_err_t *err);

/* A node's counters as it reports them (cohort_info "status"). */
typedef struct cohort_benchkit_counters {
    uint64_t queue_full, delivery_dropped, resent, messages_in, messages_out;
    uint64_t missed_wakeups;              /* src/node/zpoll.c */
    uint64_t relay_frames, relay_dropped; /* frames relayed for others, refused */
} cohort_benchkit_counters_t;

/* Fills *out from node i's status. Returns -1 if the node did not answer. */
int cohort_benchkit_counters(cohort_benchkit_t *self, int i, cohort_benchkit_counters_t *out);

/* ---- figures ---- */

/* The p-th percentile (0..100, nearest rank) of n values; sorts v in
 * place. 0 when n is 0. */
double cohort_benchkit_percentile(double *v, size_t n, double p);
/* The median of n values (the mean of the middle two when n is even);
 * sorts v in place. 0 when n is 0. */
double cohort_benchkit_median(double *v, size_t n);

/* This process's resident memory now (VmRSS) and its peak (VmHWM), in KiB,
 * from /proc/self/status. Returns -1 when it cannot be read. */
int cohort_benchkit_rss(uint64_t *rss_kib, uint64_t *hwm_kib);

/* Starts a new peak: gives freed heap memory back to the system
 * (malloc_trim) and resets VmHWM to the current VmRSS (/proc/self/
 * clear_refs, Linux 4.0+), so the next VmHWM is the peak since now.
 * Returns -1 if the peak could not be reset. */
int cohort_benchkit_rss_reset(void);

/* Microseconds on a monotonic clock, comparable across threads. */
int64_t cohort_benchkit_usecs(void);

#endif
