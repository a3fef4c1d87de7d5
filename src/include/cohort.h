/*
 * cohort.h: embed a cohort node in a service (libcohort).
 *
 * cohort_open() starts a node from its YAML config on a background thread
 * (a CZMQ actor that owns all node state); the handle you get is a thin
 * front that sends it commands. Through it a service sends to a node by
 * name, requests a named service (load-balanced, site-local providers
 * first), serves services, publishes and subscribes to topics (`*` matches
 * one token, `>` the rest), and receives messages and events.
 *
 * While your thread waits in a call (cohort_request, cohort_recv with a
 * timeout) it runs the node itself, so a reply wakes it directly; the
 * background thread takes the node back within a few milliseconds of your
 * thread leaving the library.
 *
 * Threads: a cohort_t is used from one thread at a time (any thread); calls
 * block only as documented. Do not cancel a thread inside a cohort call: it
 * may be running the node. Messages are owned by whoever holds the pointer:
 * functions taking `cohort_msg_t **msg_p` take ownership and set *msg_p to
 * NULL, whatever they return.
 *
 * Status codes are the local API's (proto/api.proto, enum Code).
 */
#ifndef COHORT_H
#define COHORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cohort cohort_t;
typedef struct cohort_msg cohort_msg_t;

typedef enum {
    COHORT_OK = 0,
    COHORT_ERROR = 1,
    COHORT_UNKNOWN_NODE = 2,
    COHORT_NO_RESPONDERS = 3,
    COHORT_TIMEOUT = 4,
    COHORT_QUEUE_FULL = 5,
    COHORT_TOO_LARGE = 6,
    COHORT_INVALID = 7,
    COHORT_NOT_CONNECTED = 8,
} cohort_status_t;

typedef enum {
    COHORT_MSG_UNICAST = 0,
    COHORT_MSG_REQUEST = 1,
    COHORT_MSG_REPLY = 2,
    COHORT_MSG_PUBLISH = 3,
    COHORT_MSG_EVENT = 100, /* subject = type (member.up, ...), sender = node,
                               error = reason code */
} cohort_msg_kind_t;

/* Short name of a status ("ok", "no-responders", ...). */
const char *cohort_status_name(cohort_status_t status);

/* ---- the node ---- */

/* Starts a node from the config file at path. On failure returns -1 and
 * writes the reason into err (errlen bytes; may be NULL). *out: caller owns;
 * release with cohort_close. */
int cohort_open(const char *config_path, cohort_t **out, char *err, size_t errlen);

/* Leaves the cluster gracefully (peers see "left"), waits up to 2 s for
 * unacknowledged reliable messages to land, and frees everything. Messages
 * received but not yet read are dropped. NULL is fine; sets *self_p NULL. */
void cohort_close(cohort_t **self_p);

/* ---- messages ---- */

/* A new message with a subject (a label for unicast, the topic for publish,
 * ignored for requests) and a copy of len payload bytes. Never NULL. */
cohort_msg_t *cohort_msg_new(const char *subject, const void *payload, size_t len);
void cohort_msg_destroy(cohort_msg_t **msg_p);
/* Adds or replaces a header (copied). */
void cohort_msg_set_header(cohort_msg_t *msg, const char *key, const char *value);
/* Borrowed; valid while msg lives. NULL when absent. */
const char *cohort_msg_header(const cohort_msg_t *msg, const char *key);
/* How many headers msg carries. */
size_t cohort_msg_header_count(const cohort_msg_t *msg);
/* The key of header number index (< cohort_msg_header_count); *value gets
 * its value. Both borrowed; valid while msg lives and is not changed. */
const char *cohort_msg_header_at(const cohort_msg_t *msg, size_t index, const char **value);
/* Sets the status and error text a reply carries (a new message has
 * COHORT_OK and ""), so a service can answer with a failure. error is
 * copied; NULL means "". */
void cohort_msg_set_status(cohort_msg_t *msg, cohort_status_t status, const char *error);
const char *cohort_msg_subject(const cohort_msg_t *msg);
/* Borrowed payload; *len gets its size. */
const void *cohort_msg_payload(const cohort_msg_t *msg, size_t *len);
/* The admitted member that sent it ("" for messages being built). */
const char *cohort_msg_sender(const cohort_msg_t *msg);
cohort_msg_kind_t cohort_msg_kind(const cohort_msg_t *msg);
/* Replies: the id cohort_request_async returned; requests: the id to answer. */
uint64_t cohort_msg_request_id(const cohort_msg_t *msg);
/* Replies: COHORT_OK or why there is no answer (NO_RESPONDERS, TIMEOUT...). */
cohort_status_t cohort_msg_status(const cohort_msg_t *msg);
const char *cohort_msg_error(const cohort_msg_t *msg);

/* ---- sending ---- */

/* Reliable unicast to the member called node. When its send queue is full,
 * waits up to timeout_ms (0: fail at once with COHORT_QUEUE_FULL). Takes
 * ownership of *msg_p. Returns as soon as the node has taken the message:
 * most sends return without waiting for the node at all, on send credit
 * it granted (room it reserved in that member's queue, so the result is
 * the same as if it had been asked). While over 8 MiB to that member are
 * unacknowledged, a send may wait up to 20 ms for acknowledgements before
 * it returns (pacing: the sender is outrunning the link). */
cohort_status_t cohort_send(cohort_t *self, const char *node, cohort_msg_t **msg_p, int timeout_ms);

/* Publishes to every node with a matching subscription (this one included).
 * *recipients gets how many nodes it went to; 0 is not an error. With
 * recipients NULL nothing waits for the node: the topic and size are
 * checked here (COHORT_INVALID, COHORT_TOO_LARGE) and the publish is
 * queued, so a stream of them costs no round trip each. Either way a
 * publish is at most once: a subscriber whose send window is full misses
 * it (counted as queue_full by the node). Takes ownership of *msg_p. */
cohort_status_t cohort_publish(cohort_t *self, cohort_msg_t **msg_p, unsigned *recipients);

cohort_status_t cohort_subscribe(cohort_t *self, const char *pattern);
cohort_status_t cohort_unsubscribe(cohort_t *self, const char *pattern);

/* Starts or stops serving a service; requests arrive via cohort_recv as
 * COHORT_MSG_REQUEST and are answered with cohort_reply. */
cohort_status_t cohort_serve(cohort_t *self, const char *service);
cohort_status_t cohort_unserve(cohort_t *self, const char *service);

/* Sends a request to one provider of service and returns at once; the reply,
 * or a COHORT_MSG_REPLY carrying the failure status (NO_RESPONDERS, TIMEOUT
 * after timeout_ms), arrives via cohort_recv with *request_id. Takes
 * ownership of *msg_p. */
cohort_status_t cohort_request_async(cohort_t *self, const char *service, cohort_msg_t **msg_p,
                                     int timeout_ms, uint64_t *request_id);

/* The blocking form: waits for the reply (*reply: caller owns) and returns
 * its status. Other messages arriving meanwhile are kept for cohort_recv. */
cohort_status_t cohort_request(cohort_t *self, const char *service, cohort_msg_t **msg_p,
                               int timeout_ms, cohort_msg_t **reply);

/* Answers a request received via cohort_recv. Takes ownership of *reply_p. */
cohort_status_t cohort_reply(cohort_t *self, const cohort_msg_t *request, cohort_msg_t **reply_p);

/* ---- receiving ---- */

/* The next message or event, waiting up to timeout_ms (-1: forever; 0: do
 * not wait). NULL on timeout. Caller owns the result. */
cohort_msg_t *cohort_recv(cohort_t *self, int timeout_ms);

/* A file descriptor for other event loops: when it polls readable, call
 * cohort_recv(self, 0) until it returns NULL (the signal is edge-like, as
 * ZMQ_FD). Messages that arrived during a blocking call (cohort_request(),
 * cohort_recv() with a timeout) may be kept aside and do not make the fd
 * readable: after such a call returns, drain with cohort_recv(self, 0) too.
 * Borrowed; valid until cohort_close. */
int cohort_fd(cohort_t *self);

/* ---- the roster ---- */

/* Where a roster handed to cohort_roster_push comes from. */
typedef enum {
    COHORT_ROSTER_PUSH = 0, /* an operator pushes it (cohortctl roster push) */
    COHORT_ROSTER_FILE = 1, /* the node's trust.roster file, re-read (SIGHUP): one that
                               is not newer than the held roster is no news, and
                               neither logged nor announced as a refusal */
} cohort_roster_source_t;

typedef struct cohort_roster_result {
    uint64_t serial; /* the serial the node holds after the call */
    char reason[32]; /* "" when applied; else a reason code: too-large, unsigned,
                        bad-signature, unknown-signer, malformed, invalid,
                        other-cluster, same-serial, older-serial,
                        self-not-admitted, persist-failed */
    char error[768]; /* why, for people */
} cohort_roster_result_t;

/* Hands the node a CA-signed roster: the exact bytes of the roster file and
 * of its signature file (as `cohortctl roster sign` writes it). The node
 * accepts it only if the signature verifies against a CA it trusts, the
 * cluster is its own, the roster checks pass, the serial is higher than
 * the one it holds and the roster still admits this node. It then keeps it
 * in node.state_dir, applies it (members no longer admitted lose their
 * links at once) and sends it to its peers, which do the same. A refused
 * roster changes nothing; the node logs it and emits a roster.rejected
 * event with the reason code. Returns COHORT_OK when applied,
 * COHORT_INVALID when refused, COHORT_ERROR when it could not be kept on
 * disk. result (may be NULL) is filled either way. Blocks until the node
 * answers. The bytes are copied. */
cohort_status_t cohort_roster_push(cohort_t *self, cohort_roster_source_t source,
                                   const void *roster, size_t len, const void *sig, size_t sig_len,
                                   cohort_roster_result_t *result);

/* ---- the config ---- */

typedef struct cohort_reload_result {
    char applied[1024];        /* reloadable keys whose new value is now in force,
                                  comma-separated in file order; "" none */
    char restart_needed[1024]; /* keys that changed but only take effect when the
                                  node is started again; "" none */
    char error[1024];          /* why the file was refused; "" when it loaded */
} cohort_reload_result_t;

/* Re-reads the node's config file at config_path (normally the one
 * cohort_open was given) and puts every key marked reloadable (config/
 * README.md) in force at once: message size checks, per-peer send queues,
 * link timeouts, relay quotas, advertised endpoints, the roster file names
 * (the roster itself is handed over with cohort_roster_push). log.level and
 * log.format are recorded but logging is the embedder's: apply them to your
 * own log sink. Changed keys that are not reloadable are named in
 * result->restart_needed and not applied. A file that does not load (syntax,
 * unknown key, value out of range) changes nothing: returns COHORT_INVALID
 * with `FILE:LINE:COL: KEY: what, got 'VALUE'` in result->error. Returns
 * COHORT_OK otherwise, changed or not. result (may be NULL) is filled either
 * way. Blocks until the node answers. */
cohort_status_t cohort_reload(cohort_t *self, const char *config_path,
                              cohort_reload_result_t *result);

/* ---- introspection ---- */

/* An encoded cohort.api.Response (proto/api.proto) for what = "status"
 * (status_info), "peers" (peers) or "members" (members: the membership
 * view, this node included). *buf: caller owns (free()). */
cohort_status_t cohort_info(cohort_t *self, const char *what, uint8_t **buf, size_t *len);

#ifdef __cplusplus
}
#endif

#endif
