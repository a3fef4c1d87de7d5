/*
 * bench: the cases of `cohortctl bench`: cohort and raw libzmq measured on
 * the same path (loopback TCP, CURVE, same payloads, one ZeroMQ context
 * with one I/O thread per node or per raw "process") so that their ratio
 * means something.
 *
 *   direct-N    one sender to one receiver, reliable unicast: cohort_send
 *               on one in-process node, cohort_recv on another, vs a raw
 *               CURVE DEALER -> ROUTER; messages received per second.
 *   relay-N     the same between two nodes that reach each other only
 *               through a relay node, vs raw DEALER -> forwarding ROUTER
 *               (a proxy thread) -> DEALER.
 *   reqrep-64   request/reply round trips, one at a time: cohort_request
 *               to a service served on the other node vs a raw DEALER/ROUTER
 *               ping-pong; p50 and p99 in microseconds. The two take turns
 *               in 50 ms blocks within one sample (a latency moves with the
 *               machine's drift more than a throughput does): the cohort
 *               call measures both, and the raw call of the same round that
 *               follows it returns raw's half.
 *   pubsub-K    one publisher, K subscribers (cohort_publish vs raw CURVE
 *               PUB/SUB); messages received per second per subscriber.
 *   overload    a sender as fast as it can go to a receiver that sleeps per
 *               message, for a few seconds; resident memory of the process.
 *
 * A sample is one measurement of one case by one implementation. The
 * caller runs rounds (alternating implementations) and takes medians. The
 * cohort clusters behind the cases live in a cohort_bench_t and are reused
 * across rounds (starting one takes seconds); raw sockets are made afresh
 * for every sample, connected before the clock starts.
 *
 * This is a measuring tool, not a test: it fails only when something does
 * not work at all (a node does not come up, a message stalls).
 */
#ifndef COHORT_LIB_BENCH_H
#define COHORT_LIB_BENCH_H

#include "util/err.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define COHORT_BENCH_METRICS 3

typedef enum {
    COHORT_BENCH_COHORT = 0,
    COHORT_BENCH_RAW = 1,
} cohort_bench_impl_t;

typedef enum {
    COHORT_BENCH_DIRECT,
    COHORT_BENCH_RELAY,
    COHORT_BENCH_REQREP,
    COHORT_BENCH_PUBSUB,
    COHORT_BENCH_OVERLOAD,
} cohort_bench_kind_t;

typedef struct cohort_bench_metric {
    const char *name;  /* JSON key: "msgs_per_s", "p50_us", ... */
    const char *label; /* for people: "msg/s", "p50 us", ... */
    bool lower_better;
} cohort_bench_metric_t;

typedef struct cohort_bench_case {
    const char *name; /* what --only takes: "direct-1k" */
    const char *test; /* the table's test column: "direct" */
    cohort_bench_kind_t kind;
    size_t size;                                         /* payload bytes */
    int subscribers;                                     /* pubsub only */
    cohort_bench_metric_t metrics[COHORT_BENCH_METRICS]; /* name NULL: unused */
} cohort_bench_case_t;

typedef struct cohort_bench_sample {
    double metric[COHORT_BENCH_METRICS];
    double seconds;           /* how long the measured part took */
    uint64_t sent;            /* messages the sender handed over */
    uint64_t received;        /* measured messages received (per subscriber: the sum) */
    uint64_t queue_full;      /* sends refused for a full queue (pubsub: recipients
                                 skipped); the sender then waited */
    uint64_t dropped;         /* messages the receiving side dropped (cohort:
                                 delivery_dropped, the application's inbox was full) */
    uint64_t resent;          /* cohort: messages the sender's node sent again */
    uint64_t relayed_dropped; /* cohort relay cases: frames the relay refused */
    uint64_t rss_start_kib;   /* VmRSS when the sample started (after giving
                                 freed heap back to the system) */
    uint64_t rss_peak_kib;    /* VmHWM during the sample: the process's peak */
    bool bounded;             /* overload: VmRSS stopped growing in the second half */
} cohort_bench_sample_t;

typedef struct cohort_bench_opts {
    int duration_ms;       /* per throughput, pub/sub and req/rep sample */
    int overload_ms;       /* per overload sample */
    int overload_sleep_us; /* the slow receiver's sleep per message */
} cohort_bench_opts_t;

typedef struct cohort_bench cohort_bench_t;

/* Every case, in the order a full run takes them; *count gets how many.
 * Borrowed; static. */
const cohort_bench_case_t *cohort_bench_cases(size_t *count);
/* The case called name, or NULL. */
const cohort_bench_case_t *cohort_bench_find(const char *name);

/* A bench with no cluster yet. Never NULL. Caller owns; destroy. Used by
 * one thread at a time; it starts and joins its own threads per sample. */
cohort_bench_t *cohort_bench_new(const cohort_bench_opts_t *opts);
/* missed_wakeups (proto/api.proto, src/node/zpoll.c) of the nodes of
 * every cluster it ran so far. */
uint64_t cohort_bench_missed_wakeups(cohort_bench_t *self);
/* Stops any cluster it runs. NULL is fine; sets *self_p to NULL. */
void cohort_bench_destroy(cohort_bench_t **self_p);

/* Measures case c once with impl into *out. The cohort cluster the case
 * needs is started on first use and kept until a case needs another one
 * (or destroy). Returns -1 with err saying what did not work (a node that
 * did not come up, a message that stalled). */
int cohort_bench_run(cohort_bench_t *self, const cohort_bench_case_t *c, cohort_bench_impl_t impl,
                     cohort_bench_sample_t *out, cohort_err_t *err);

#endif
