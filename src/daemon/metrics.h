/*
 * metrics: cohortd's Prometheus endpoint: /metrics in the text exposition
 * format (version 0.0.4) and /healthz, over HTTP at metrics.address.
 *
 * Two threads, one rule: the node is only ever asked on the daemon's zloop
 * thread. A timer there (every COHORT_METRICS_REFRESH_MS) asks the node for
 * cohort_info "status", "peers" and "members" and the API server for its
 * counters, renders the whole exposition into a fresh buffer and swaps it,
 * under a mutex, for the published one. libmicrohttpd serves HTTP on its
 * own internal thread, and its handler only copies the published buffer
 * (or reads the health flag) under that mutex: a slow or hostile scraper can
 * never block the node, and the node's state is never read off its thread.
 *
 * Certificate expiry (identity.cert and every CA in trust.ca) is read from
 * the files the config names, at start and again on SIGHUP, since the node
 * does not report it; the days left are computed at every refresh.
 *
 * The metric names are documented once, in config/README.md#metrics. This
 * module is no HTTP server of its own (libmicrohttpd is) and serves nothing
 * but those two paths, GET and HEAD only, without authentication.
 */
#ifndef COHORT_DAEMON_METRICS_H
#define COHORT_DAEMON_METRICS_H

#include "api/server.h"
#include "cohort.h"
#include "config/config.h"
#include "util/err.h"

#include <czmq.h>

/* How often the zloop thread takes a new snapshot. */
#define COHORT_METRICS_REFRESH_MS 1000
/* /healthz answers 503 when the last snapshot that reached the node is
 * older than this (the loop is stuck) or the last one failed. */
#define COHORT_METRICS_STALE_MS 5000

typedef struct cohort_metrics cohort_metrics_t;

/* Binds cfg->metrics_address (which must not be empty) and starts the HTTP
 * thread, serving an empty, unhealthy snapshot until attached. Reads the
 * certificate files cfg names (a file that does not load is logged and its
 * metric left out; it does not fail the start). On success *out is set
 * (caller owns; cohort_metrics_destroy). On failure returns -1 with
 * `metrics.address: ...` in err, naming the address and the reason. */
int cohort_metrics_open(const cohort_config_t *cfg, cohort_metrics_t **out, cohort_err_t *err);

/* Takes a first snapshot now and registers the refresh timer on loop.
 * node, api and loop are borrowed and must outlive self (api may be NULL:
 * its counters are then left out). Call once, on the loop's thread. */
void cohort_metrics_attach(cohort_metrics_t *self, cohort_t *node, cohort_api_server_t *api,
                           zloop_t *loop);

/* SIGHUP: re-reads the certificate files cfg names (replaced on disk, say)
 * and takes a new snapshot. Call on the loop's thread. */
void cohort_metrics_reload(cohort_metrics_t *self, const cohort_config_t *cfg);

/* Stops the HTTP thread (waiting for requests under way), cancels the
 * timer and frees everything. Call on the loop's thread, before the API
 * server and the node go. NULL is fine; sets *self_p to NULL. */
void cohort_metrics_destroy(cohort_metrics_t **self_p);

#endif
