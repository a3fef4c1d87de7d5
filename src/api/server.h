/*
 * server: the local API server: what lets services in any language, and
 * cohortctl, use the node they run next to.
 *
 * A ZMQ_ROUTER bound at api.endpoint speaks proto/api.proto: each frame from
 * a client (a DEALER) is one ApiRequest, answered by exactly one
 * ApiMessage{response} with the same id, and the node's deliveries and
 * events are passed on to the clients that asked for them (the routing
 * rules are written once, in api.proto). The server holds each client's
 * subscriptions, services, calls and unanswered requests, and keeps the
 * node's own subscriptions and services reference-counted across clients.
 * An ipc socket file is created 0660 (umask 007 around the bind, chmod
 * after), so only the node's user and group can use the node.
 *
 * Everything runs on the thread of the zloop the server is attached to; it
 * never blocks (a Send that meets a full queue is parked and retried on a
 * timer). It is not a node: it only calls libcohort, and it does not own the
 * node handle it is given.
 */
#ifndef COHORT_API_SERVER_H
#define COHORT_API_SERVER_H

#include "api.pb-c.h"
#include "cohort.h"
#include "config/config.h"
#include "util/err.h"

#include <czmq.h>
#include <stddef.h>

/* Defaults of cohort_api_limits_t. */
#define COHORT_API_MAX_CLIENTS 1024
#define COHORT_API_MAX_PATTERNS 4096
#define COHORT_API_HEARTBEAT_MS 5000
/* A request frame may exceed limits.max_message_size by this much (room
 * for the ApiRequest around the message) before it is refused. */
#define COHORT_API_FRAME_SLACK (64 * 1024)

typedef struct cohort_api_server cohort_api_server_t;

/* Bounds of one server; zero fields take the defaults above. Tests shrink
 * them; cohortd uses the defaults. */
typedef struct cohort_api_limits {
    size_t max_clients;   /* clients holding state at once */
    size_t max_patterns;  /* subscription patterns per client; the same for services */
    int heartbeat_ms;     /* Heartbeat interval to clients holding state */
    size_t backlog_bytes; /* deliveries kept for a client whose socket is full
                             (64 MiB); past half of it the server stops
                             reading the node (backpressure), past all of it
                             they are dropped */
    int early_ms;         /* for this long after start, unicasts no client wants
                             are kept for the first one that subscribes to them
                             (10 s); -1: never */
} cohort_api_limits_t;

/* Binds the API socket at cfg->api_endpoint, taking the message size and
 * send timeout limits from cfg (read now; cfg may be freed after). For an
 * ipc:// file, refuses when its directory does not exist, when something
 * that is not a socket sits at the path, or when a live server already
 * answers there; otherwise a stale socket file is replaced. limits may be
 * NULL. On success *out is set (caller owns; cohort_api_server_destroy).
 * On failure returns -1 with `api.endpoint: ...` in err. */
int cohort_api_server_open(const cohort_config_t *cfg, const cohort_api_limits_t *limits,
                           cohort_api_server_t **out, cohort_err_t *err);

/* A reload: takes limits.max_message_size and limits.send_timeout from cfg
 * (read now; cfg may be freed after). Requests and sends from then on are
 * checked and parked with the new values; sends already parked keep their
 * deadline. The per-client queue bound derived from the message size
 * applies to clients that connect afterwards. Call on the loop's thread. */
void cohort_api_server_set_limits(cohort_api_server_t *self, const cohort_config_t *cfg);

/* Starts serving: registers the API socket, cohort_fd(node) and the
 * server's timers on loop, and reads what the node already holds. node and
 * loop are borrowed and must outlive the server. Call once. */
void cohort_api_server_attach(cohort_api_server_t *self, cohort_t *node, zloop_t *loop);

/* Stops serving and frees everything: unregisters from the loop, fails the
 * requests clients still had to answer (NO_RESPONDERS), answers parked
 * sends, takes back the node's subscriptions and services made for clients,
 * and closes the socket (libzmq removes an ipc file). Call on the loop's
 * thread, before the loop and the node are destroyed. NULL is fine; sets
 * *self_p to NULL. */
void cohort_api_server_destroy(cohort_api_server_t **self_p);

/* The endpoint the socket is bound at. Borrowed; valid while self lives. */
const char *cohort_api_server_endpoint(const cohort_api_server_t *self);

/* A copy of the server's counters (clients = clients holding state now). */
void cohort_api_server_stats(const cohort_api_server_t *self, Cohort__Api__ApiStats *out);

#endif
