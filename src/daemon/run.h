/*
 * run: cohortd's run mode: one node, its local API, its logs and signals.
 *
 * Loads the config, installs the log sink (stderr; text or JSON per
 * log.format), binds the local API, starts the node through libcohort and
 * runs the API server in the calling thread on one zloop together with a
 * signalfd. SIGTERM and SIGINT stop taking API work and leave the cluster
 * gracefully (cohort_close: goodbye, up to 2 s for unacknowledged
 * messages); SIGHUP re-reads the config, applies log.level and log.format,
 * and logs which other keys changed but are not applied by this version.
 * With metrics.address set, it also serves Prometheus metrics from a
 * snapshot the loop refreshes (daemon/metrics.h).
 * It is the daemon's wiring, not a library: it owns the process's signal
 * mask and the process-wide log sink.
 */
#ifndef COHORT_DAEMON_RUN_H
#define COHORT_DAEMON_RUN_H

/* Runs the node described by the config at path until SIGTERM or SIGINT.
 * Must be called from main() before any other thread exists (it blocks the
 * signals it handles, and threads inherit the mask). Returns the process
 * exit code: 0 after a graceful stop, 1 when the node could not start (the
 * reason is printed on stderr as "cohortd: ..."). */
int cohort_daemon_run(const char *config_path);

#endif
