/*
 * peercache: the bootstrap cache, the last known endpoints of a node's
 * peers, kept in its state directory so that after a restart it can rejoin
 * its cluster even when every rendezvous node is down.
 *
 * The file is small YAML written atomically (a crash or a full disk never
 * leaves half a file):
 *
 *     # cohortd bootstrap cache: last known endpoints of peers. Rewritten
 *     # by cohortd; safe to delete.
 *     cluster: prod
 *     peers:
 *       - name: db-1
 *         endpoints: [tcp://10.0.0.5:7700]
 *
 * It is a hint, never a source of trust: every endpoint dialled still has to
 * pass the CURVE handshake with the key the roster names. Loading is strict
 * about shape (a damaged cache is reported with its place and then ignored
 * by the node) and bounded in size. This module does not decide what to
 * cache or when; the node does.
 */
#ifndef COHORT_OVERLAY_PEERCACHE_H
#define COHORT_OVERLAY_PEERCACHE_H

#include "util/err.h"

#include <stdbool.h>
#include <stddef.h>

#define COHORT_PEERCACHE_FILE "peers.yaml"
#define COHORT_PEERCACHE_MAX_PEERS 10000
#define COHORT_PEERCACHE_MAX_ENDPOINTS 16
#define COHORT_PEERCACHE_MAX_BYTES (4 << 20)
#define COHORT_PEERCACHE_ENDPOINT_MAX 255

typedef struct cohort_peercache_entry {
    char *name;
    char *endpoints[COHORT_PEERCACHE_MAX_ENDPOINTS];
    size_t endpoint_count;
} cohort_peercache_entry_t;

typedef struct cohort_peercache {
    char *cluster;
    cohort_peercache_entry_t *peers;
    size_t count;
} cohort_peercache_t;

/* An empty cache for cluster (copied). Release with cohort_peercache_fini. */
void cohort_peercache_init(cohort_peercache_t *pc, const char *cluster);
void cohort_peercache_fini(cohort_peercache_t *pc);

/* Adds (or replaces) name's endpoints; endpoints that are not tcp://HOST:PORT
 * or longer than COHORT_PEERCACHE_ENDPOINT_MAX are skipped, and at most
 * COHORT_PEERCACHE_MAX_ENDPOINTS kept. Returns the number kept. */
size_t cohort_peercache_put(cohort_peercache_t *pc, const char *name, const char *const *endpoints,
                            size_t count);

/* The entry for name, or NULL. Borrowed; valid until pc changes. */
const cohort_peercache_entry_t *cohort_peercache_get(const cohort_peercache_t *pc,
                                                     const char *name);

/* Parses cache file text (len bytes, no terminator needed; name is used in
 * messages) into *pc (initialised here). The checks of cohort_peercache_load
 * apart from the file's existence and size: on failure err says
 * `name:line:col: what` and *pc is empty. */
int cohort_peercache_parse(const char *name, const char *buf, size_t len, const char *cluster,
                           cohort_peercache_t *pc, cohort_err_t *err);

/* The cache file text of pc, as cohort_peercache_save writes it. Caller
 * owns *out (free()). */
int cohort_peercache_emit(const cohort_peercache_t *pc, char **out, size_t *len, cohort_err_t *err);

/* Loads path into *pc (initialised here). A missing file is an empty cache
 * (returns 0, *missing set if missing is non-NULL). A file of another
 * cluster, of the wrong shape or too large fails with `path:line:col: what`;
 * *pc is then empty. */
int cohort_peercache_load(const char *path, const char *cluster, cohort_peercache_t *pc,
                          bool *missing, cohort_err_t *err);

/* Writes pc to path atomically (mode 0644). */
int cohort_peercache_save(const char *path, const cohort_peercache_t *pc, cohort_err_t *err);

/* True if text is tcp://HOST:PORT with a non-empty host and a port 1..65535. */
bool cohort_peercache_endpoint_ok(const char *text);

#endif
