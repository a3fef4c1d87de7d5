/*
 * client: a small client of the local API (proto/api.proto), as cohortctl
 * and the tests use it.
 *
 * One DEALER connected to the node's api.endpoint. A request gets a fresh
 * id and waits, with a deadline, for the Response carrying that id;
 * deliveries and events that arrive meanwhile are kept, in order, for
 * cohort_api_client_recv. Heartbeats are swallowed but remembered, so a
 * caller holding subscriptions can tell a node that went away. Every wait
 * is bounded, and an optional interrupt flag (set from a signal handler)
 * ends waits early. Not thread-safe: one thread uses a client.
 */
#ifndef COHORT_API_CLIENT_H
#define COHORT_API_CLIENT_H

#include "api.pb-c.h"
#include "util/err.h"

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct cohort_api_client cohort_api_client_t;

/* Connects to endpoint (ipc://PATH or tcp://HOST:PORT). Nothing is
 * exchanged yet, except that an ipc endpoint whose socket file does not
 * exist fails at once ("cannot reach the node at ..."). On success *out is
 * set (caller owns; cohort_api_client_destroy). */
int cohort_api_client_open(const char *endpoint, cohort_api_client_t **out, cohort_err_t *err);

/* Sends Bye if the client asked the node to hold anything for it (waiting
 * at most 1 s for the answer), then closes. NULL is fine; sets *self_p to
 * NULL. */
void cohort_api_client_destroy(cohort_api_client_t **self_p);

/* Ends every wait early once *flag is non-zero (e.g. set by a SIGINT
 * handler). flag is borrowed; NULL turns this off. */
void cohort_api_client_set_interrupt(cohort_api_client_t *self, volatile sig_atomic_t *flag);

/* Sends req, setting req->id to a fresh id, and waits up to timeout_ms for
 * its Response. *resp: caller owns (cohort__api__response__free_unpacked).
 * Returns 0 when a Response came, whatever its status; -1 with err set when
 * the node could not be reached or did not answer in time ("cannot reach
 * the node at ENDPOINT: is cohortd running?"), or the wait was
 * interrupted. */
int cohort_api_client_request(cohort_api_client_t *self, Cohort__Api__ApiRequest *req,
                              int timeout_ms, Cohort__Api__Response **resp, cohort_err_t *err);

/* The next delivery or event, waiting up to timeout_ms (0: do not wait).
 * Returns 1 with *msg set (caller owns;
 * cohort__api__api_message__free_unpacked), 0 when nothing came in time or
 * the wait was interrupted. */
int cohort_api_client_recv(cohort_api_client_t *self, int timeout_ms,
                           Cohort__Api__ApiMessage **msg);

/* Milliseconds since the node last sent anything (heartbeats included). */
int64_t cohort_api_client_quiet_ms(const cohort_api_client_t *self);

/* True once the node said its API closed (ApiMessage.closed): nothing more
 * will come; waits return at once. */
bool cohort_api_client_closed(const cohort_api_client_t *self);

/* The endpoint. Borrowed; valid while self lives. */
const char *cohort_api_client_endpoint(const cohort_api_client_t *self);

#endif
