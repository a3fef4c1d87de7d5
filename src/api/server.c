/*
 * server: the local API server. See server.h; the contract and the routing
 * rules are in proto/api.proto.
 *
 * Clients are told apart by their ZeroMQ routing id. Only clients that hold
 * state (subscriptions, services, events, calls or requests to answer) get
 * a record; one-shot requests (status, send, publish...) need none, so any
 * number of short-lived cohortctl runs cannot fill the table. ROUTER has no
 * disconnect event, so a record ends with Bye, or when a send to the client
 * fails with EHOSTUNREACH (ZMQ_ROUTER_MANDATORY); the heartbeat makes such a
 * send happen every few seconds for every record.
 */
#include "api/server.h"
#include "msg/subject.h"
#include "util/fs.h"
#include "util/log.h"
#include "util/mem.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <zmq.h>

#define S_MAX_RID 256
/* libzmq refuses (and disconnects) frames over this before allocating them:
 * the largest message any config allows, with room to spare, so every
 * frame a valid config permits can at least be answered. */
#define S_FRAME_HARD_MAX (64 * 1024 * 1024 + 128 * 1024)
/* Messages queued to one client before it counts as slow and loses them
 * (client_dropped): bounded in bytes too, about S_CLIENT_QUEUE_BYTES of
 * messages of the largest size. */
#define S_CLIENT_QUEUE_BYTES (256ULL << 20)
#define S_SNDHWM_MIN 100
#define S_SNDHWM_MAX 10000
#define S_DRAIN_BUDGET 256
#define S_BACKLOG_BYTES (64u << 20)
#define S_BACKLOG_MS 10
#define S_MAX_CALLS 65536
/* Just after start, unicasts no client wants yet are kept for the first
 * client that subscribes to them: peers resend everything a restarted node
 * had not acknowledged within milliseconds of its handshake, before any
 * application could subscribe, and the node has acknowledged them. */
#define S_EARLY_MS 10000
#define S_EARLY_BYTES (16u << 20)
#define S_MAX_HELD 65536
#define S_MAX_PARKED 1024
#define S_CALL_GRACE_MS 5000
#define S_HELD_TTL_MS (5 * 60 * 1000)
#define S_RETRY_MS 5
#define S_DEFAULT_CALL_MS 5000

typedef Cohort__Api__ApiRequest s_req_t;
typedef Cohort__Api__ApiMessage s_out_t;
typedef Cohort__Wire__Message s_wire_t;

typedef struct {
    uint8_t rid[S_MAX_RID];
    size_t rid_len;
    char label[24]; /* hex of the routing id, for logs */
    char **patterns, **services;
    size_t pattern_count, service_count;
    bool events;
    size_t calls; /* Calls awaiting their reply */
    size_t held;  /* requests delivered to it, not answered yet */
    bool gone;    /* a send found it unreachable; dropped at the next sweep */
    /* Messages its socket had no room for, oldest first (zframe_t *): kept
     * in order and retried, because the node already acknowledged them to
     * their senders. Past half of limits.backlog_bytes the server stops
     * reading the node (s_backlogged), so this only overflows if a single
     * burst already in the node's inbox is larger than the other half. */
    zlistx_t *backlog;
    size_t backlog_bytes;
} s_client_t;

/* A node-level subscription or service made for clients. */
typedef struct {
    size_t refs;
    uint64_t rr; /* services: round robin among serving clients */
} s_ref_t;

/* A Call in flight, keyed by libcohort's request id. */
typedef struct {
    uint8_t rid[S_MAX_RID];
    size_t rid_len;
    uint64_t api_id;
    int64_t deadline;
} s_call_t;

/* A request delivered to a client, keyed by "sender/request_id". */
typedef struct {
    cohort_msg_t *request;
    uint8_t rid[S_MAX_RID];
    size_t rid_len;
    int64_t deadline;
} s_held_t;

/* A Send that met a full queue and may wait. */
typedef struct {
    uint8_t rid[S_MAX_RID];
    size_t rid_len;
    uint64_t api_id;
    char *node;
    cohort_msg_t *msg;
    int64_t deadline;
} s_parked_t;

struct cohort_api_server {
    zsock_t *sock;
    char *endpoint;
    char *ipc_path; /* the socket file we made, if any */
    dev_t ipc_dev;  /* its identity, so we remove only our own file */
    ino_t ipc_ino;
    uint64_t max_message_size;
    uint32_t send_timeout_ms;
    cohort_api_limits_t limits;
    cohort_t *node;
    zloop_t *loop;
    zmq_pollitem_t node_item;
    int heartbeat_timer, retry_timer, backlog_timer;
    bool paused; /* not reading the node: a client is backlogged */
    s_client_t **clients;
    size_t client_count;
    zhashx_t *sub_refs, *serve_refs; /* pattern / service -> s_ref_t */
    zhashx_t *calls;                 /* "%llu" libcohort id -> s_call_t */
    zhashx_t *held;                  /* "sender/id" -> s_held_t */
    zlistx_t *parked;                /* s_parked_t, oldest first */
    zlistx_t *early; /* cohort_msg_t: unrouted unicasts, oldest first (limits.early_ms) */
    size_t early_bytes;
    int64_t started;
    Cohort__Api__ApiStats stats;
};

/* protobuf-c's string fields are `char *`, but outgoing messages are only
 * read by the encoder: literals may be put there without being written. */
static char *s_str(const char *text)
{
    return (char *)(uintptr_t)text;
}

static int64_t s_now(void)
{
    return zclock_mono();
}

static void s_label(const uint8_t *rid, size_t len, char out[24])
{
    size_t o = 0;
    for (size_t i = 0; i < len && o + 3 < 24; i++)
        o += (size_t)snprintf(out + o, 24 - o, "%02x", rid[i]);
    out[o] = '\0';
}

/* ---- converting messages ---- */

/* A libcohort message from a wire Message (NULL: an empty one). */
static cohort_msg_t *s_msg_from_wire(const s_wire_t *m)
{
    if (!m)
        return cohort_msg_new("", NULL, 0);
    cohort_msg_t *msg = cohort_msg_new(m->subject, m->payload.data, m->payload.len);
    for (size_t i = 0; i < m->n_headers; i++)
        if (m->headers[i] && m->headers[i]->key && m->headers[i]->value)
            cohort_msg_set_header(msg, m->headers[i]->key, m->headers[i]->value);
    return msg;
}

static cohort_msg_t *s_msg_dup(const cohort_msg_t *msg)
{
    size_t len = 0;
    const void *payload = cohort_msg_payload(msg, &len);
    cohort_msg_t *copy = cohort_msg_new(cohort_msg_subject(msg), payload, len);
    for (size_t i = 0; i < cohort_msg_header_count(msg); i++) {
        const char *value = NULL;
        const char *key = cohort_msg_header_at(msg, i, &value);
        cohort_msg_set_header(copy, key, value);
    }
    return copy;
}

/* A wire Message borrowing from a cohort_msg_t, with its header arrays. */
typedef struct {
    s_wire_t m;
    Cohort__Wire__Header *hs;
    Cohort__Wire__Header **hp;
} s_wire_out_t;

/* Fills *w, borrowing from msg (which must outlive it); s_wire_fini frees
 * what it allocated. */
static void s_wire_from_msg(const cohort_msg_t *msg, s_wire_out_t *w)
{
    s_wire_t *out = &w->m;
    cohort__wire__message__init(out);
    size_t n = cohort_msg_header_count(msg);
    Cohort__Wire__Header *hs = w->hs = cohort_calloc(n + 1, sizeof *hs);
    Cohort__Wire__Header **hp = w->hp = cohort_calloc(n + 1, sizeof *hp);
    for (size_t i = 0; i < n; i++) {
        const char *value = NULL;
        const char *key = cohort_msg_header_at(msg, i, &value);
        cohort__wire__header__init(&hs[i]);
        hs[i].key = s_str(key);
        hs[i].value = s_str(value);
        hp[i] = &hs[i];
    }
    size_t len = 0;
    const void *payload = cohort_msg_payload(msg, &len);
    out->kind = (Cohort__Wire__Message__Kind)cohort_msg_kind(msg);
    out->subject = s_str(cohort_msg_subject(msg));
    out->request_id = cohort_msg_request_id(msg);
    out->n_headers = n;
    out->headers = hp;
    out->payload.data = (uint8_t *)(uintptr_t)payload;
    out->payload.len = len;
    out->status = (uint32_t)cohort_msg_status(msg);
    out->error = s_str(cohort_msg_error(msg));
}

static void s_wire_fini(s_wire_out_t *w)
{
    free(w->hs);
    free(w->hp);
    w->hs = NULL;
    w->hp = NULL;
}

/* ---- clients ---- */

static s_client_t *s_client_find(cohort_api_server_t *self, const uint8_t *rid, size_t len)
{
    for (size_t i = 0; i < self->client_count; i++) {
        s_client_t *c = self->clients[i];
        if (c->rid_len == len && !memcmp(c->rid, rid, len))
            return c;
    }
    return NULL;
}

/* The client's record, made if needed. NULL when the table is full. */
static s_client_t *s_client_get(cohort_api_server_t *self, const uint8_t *rid, size_t len)
{
    s_client_t *c = s_client_find(self, rid, len);
    if (c || self->client_count >= self->limits.max_clients)
        return c;
    c = cohort_calloc(1, sizeof *c);
    memcpy(c->rid, rid, len);
    c->rid_len = len;
    s_label(rid, len, c->label);
    self->clients = cohort_realloc(self->clients, (self->client_count + 1) * sizeof *self->clients);
    self->clients[self->client_count++] = c;
    COHORT_LOG(COHORT_LOG_DEBUG, "api.client.new client=%s clients=%zu", c->label,
               self->client_count);
    return c;
}

static void s_plain_free(void **item)
{
    free(*item);
    *item = NULL;
}

static bool s_list_has(char **v, size_t n, const char *s)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(v[i], s))
            return true;
    return false;
}

static void s_list_add(char ***v, size_t *n, const char *s)
{
    *v = cohort_realloc(*v, (*n + 1) * sizeof **v);
    (*v)[(*n)++] = cohort_strdup(s);
}

static bool s_list_del(char **v, size_t *n, const char *s)
{
    for (size_t i = 0; i < *n; i++)
        if (!strcmp(v[i], s)) {
            free(v[i]);
            v[i] = v[--*n];
            return true;
        }
    return false;
}

/* Takes one reference back; the last one undoes the node-level interest. */
static void s_unref(cohort_api_server_t *self, bool serve, const char *name)
{
    zhashx_t *refs = serve ? self->serve_refs : self->sub_refs;
    s_ref_t *ref = zhashx_lookup(refs, name);
    if (!ref)
        return;
    if (--ref->refs > 0)
        return;
    cohort_status_t st =
        serve ? cohort_unserve(self->node, name) : cohort_unsubscribe(self->node, name);
    if (st != COHORT_OK)
        COHORT_LOG(COHORT_LOG_WARN, "api.%s.failed name=%s status=%s",
                   serve ? "unserve" : "unsubscribe", name, cohort_status_name(st));
    zhashx_delete(refs, name);
}

/* Adds a reference; the first one makes the node subscribe or serve. */
static cohort_status_t s_ref(cohort_api_server_t *self, bool serve, const char *name)
{
    zhashx_t *refs = serve ? self->serve_refs : self->sub_refs;
    s_ref_t *ref = zhashx_lookup(refs, name);
    if (!ref) {
        cohort_status_t st =
            serve ? cohort_serve(self->node, name) : cohort_subscribe(self->node, name);
        if (st != COHORT_OK)
            return st;
        ref = cohort_calloc(1, sizeof *ref);
        zhashx_insert(refs, name, ref);
    }
    ref->refs++;
    return COHORT_OK;
}

static bool s_rid_is(const uint8_t *a, size_t alen, const s_client_t *c)
{
    return alen == c->rid_len && !memcmp(a, c->rid, alen);
}

static cohort_status_t s_fail_request(cohort_api_server_t *self, const cohort_msg_t *request,
                                      cohort_status_t status, const char *why)
{
    cohort_msg_t *reply = cohort_msg_new(cohort_msg_subject(request), NULL, 0);
    cohort_msg_set_status(reply, status, why);
    return cohort_reply(self->node, request, &reply);
}

/* Ends a client's record: its interest goes, requests it had to answer are
 * failed so their callers need not wait, its calls are forgotten. */
static void s_client_drop(cohort_api_server_t *self, s_client_t *c, const char *reason)
{
    for (size_t i = 0; i < c->pattern_count; i++) {
        s_unref(self, false, c->patterns[i]);
        free(c->patterns[i]);
    }
    for (size_t i = 0; i < c->service_count; i++) {
        s_unref(self, true, c->services[i]);
        free(c->services[i]);
    }
    free(c->patterns);
    free(c->services);
    zlistx_destroy(&c->backlog);
    zlistx_t *doomed = zlistx_new(); /* key copies */
    zlistx_set_destructor(doomed, s_plain_free);
    for (s_held_t *h = zhashx_first(self->held); h; h = zhashx_next(self->held))
        if (s_rid_is(h->rid, h->rid_len, c))
            zlistx_add_end(doomed, cohort_strdup(zhashx_cursor(self->held)));
    for (const char *key = zlistx_first(doomed); key; key = zlistx_next(doomed)) {
        s_held_t *h = zhashx_lookup(self->held, key);
        s_fail_request(self, h->request, COHORT_NO_RESPONDERS,
                       "the local client serving it left before answering");
        zhashx_delete(self->held, key);
    }
    zlistx_purge(doomed);
    for (s_call_t *call = zhashx_first(self->calls); call; call = zhashx_next(self->calls))
        if (s_rid_is(call->rid, call->rid_len, c))
            zlistx_add_end(doomed, cohort_strdup(zhashx_cursor(self->calls)));
    for (const char *key = zlistx_first(doomed); key; key = zlistx_next(doomed))
        zhashx_delete(self->calls, key);
    zlistx_destroy(&doomed);
    for (size_t i = 0; i < self->client_count; i++)
        if (self->clients[i] == c) {
            self->clients[i] = self->clients[--self->client_count];
            break;
        }
    COHORT_LOG(COHORT_LOG_DEBUG, "api.client.end client=%s reason=%s clients=%zu", c->label, reason,
               self->client_count);
    free(c);
}

/* Drops records that hold nothing any more, and those found gone. */
static void s_sweep(cohort_api_server_t *self)
{
    for (size_t i = 0; i < self->client_count;) {
        s_client_t *c = self->clients[i];
        if (c->gone) {
            self->stats.clients_gone++;
            COHORT_LOG(COHORT_LOG_INFO, "api.client.gone client=%s", c->label);
            s_client_drop(self, c, "unreachable");
        } else if (!c->pattern_count && !c->service_count && !c->events && !c->calls && !c->held) {
            s_client_drop(self, c, "idle");
        } else {
            i++; /* a drop moves the last record to i: look at i again */
        }
    }
}

/* ---- sending to clients ---- */

/* Sends one ApiMessage to the client with routing id rid. Returns 0, or -1
 * when it could not be sent: the client is gone (its record is marked for
 * the next sweep) or its queue is full (counted). */
/* Sends one packed message; -1 with errno EAGAIN when the client's queue is
 * full, EHOSTUNREACH when it is gone. */
static int s_send_raw(void *sock, const uint8_t *rid, size_t rid_len, const uint8_t *buf,
                      size_t len)
{
    if (zmq_send(sock, rid, rid_len, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0)
        return -1;
    /* ROUTER takes the rest once the id is in */
    return zmq_send(sock, buf, len, ZMQ_DONTWAIT) < 0 ? -1 : 0;
}

static void s_backlog_add(cohort_api_server_t *self, s_client_t *c, const uint8_t *buf, size_t len)
{
    if (c->backlog_bytes + len > self->limits.backlog_bytes) {
        self->stats.client_dropped++;
        return;
    }
    if (!c->backlog) {
        c->backlog = zlistx_new();
        zlistx_set_destructor(c->backlog, (czmq_destructor *)zframe_destroy);
    }
    zlistx_add_end(c->backlog, zframe_new(buf, len));
    c->backlog_bytes += len;
}

/* Sends what a client's backlog holds, in order, until its socket is full. */
static void s_backlog_drain(cohort_api_server_t *self, s_client_t *c)
{
    void *sock = zsock_resolve(self->sock);
    zframe_t *f;
    while (c->backlog && (f = zlistx_first(c->backlog))) {
        if (s_send_raw(sock, c->rid, c->rid_len, zframe_data(f), zframe_size(f)) < 0) {
            if (zmq_errno() == EHOSTUNREACH)
                c->gone = true;
            return;
        }
        c->backlog_bytes -= zframe_size(f);
        zlistx_delete(c->backlog, zlistx_cursor(c->backlog));
    }
}

static void s_drain_node(cohort_api_server_t *self);
static void s_early_expire(cohort_api_server_t *self);

static int s_on_backlog(zloop_t *loop, int timer_id, void *arg)
{
    (void)loop;
    (void)timer_id;
    cohort_api_server_t *self = arg;
    for (size_t i = 0; i < self->client_count; i++)
        if (self->clients[i]->backlog_bytes ||
            (self->clients[i]->backlog && zlistx_size(self->clients[i]->backlog)))
            s_backlog_drain(self, self->clients[i]);
    if (self->paused)
        s_drain_node(self); /* the node's fd will not wake us for what waits */
    s_early_expire(self);
    return 0;
}

static int s_send(cohort_api_server_t *self, const uint8_t *rid, size_t rid_len, const s_out_t *msg)
{
    size_t len = cohort__api__api_message__get_packed_size(msg);
    uint8_t stack[512];
    uint8_t *buf = len <= sizeof stack ? stack : cohort_malloc(len);
    cohort__api__api_message__pack(msg, buf);
    void *sock = zsock_resolve(self->sock);
    s_client_t *c = s_client_find(self, rid, rid_len);
    int rc = 0;
    if (c && c->backlog && zlistx_size(c->backlog)) {
        s_backlog_add(self, c, buf, len); /* behind what waits: order is kept */
    } else if (s_send_raw(sock, rid, rid_len, buf, len) < 0) {
        if (zmq_errno() == EHOSTUNREACH) {
            if (c)
                c->gone = true;
            rc = -1;
        } else if (c) {
            s_backlog_add(self, c, buf, len);
        } else {
            self->stats.client_dropped++; /* a one-shot client that does not read */
            rc = -1;
        }
    }
    if (buf != stack)
        free(buf);
    return rc;
}

static void s_respond(cohort_api_server_t *self, const uint8_t *rid, size_t rid_len,
                      Cohort__Api__Response *resp)
{
    s_out_t out = COHORT__API__API_MESSAGE__INIT;
    out.kind_case = COHORT__API__API_MESSAGE__KIND_RESPONSE;
    out.response = resp;
    s_send(self, rid, rid_len, &out);
}

static void s_respond_status(cohort_api_server_t *self, const uint8_t *rid, size_t rid_len,
                             uint64_t id, cohort_status_t status, const char *error)
{
    Cohort__Api__Response resp = COHORT__API__RESPONSE__INIT;
    resp.id = id;
    resp.status = (Cohort__Api__Code)status;
    resp.error = s_str(error ? error : "");
    s_respond(self, rid, rid_len, &resp);
}

/* Sends a delivery built from msg; request_id replaces msg's own. */
static int s_deliver(cohort_api_server_t *self, const uint8_t *rid, size_t rid_len,
                     const cohort_msg_t *msg, uint64_t request_id)
{
    s_wire_out_t wire;
    s_wire_from_msg(msg, &wire);
    wire.m.request_id = request_id;
    Cohort__Api__Delivery d = COHORT__API__DELIVERY__INIT;
    d.sender = s_str(cohort_msg_sender(msg));
    d.message = &wire.m;
    s_out_t out = COHORT__API__API_MESSAGE__INIT;
    out.kind_case = COHORT__API__API_MESSAGE__KIND_DELIVERY;
    out.delivery = &d;
    int rc = s_send(self, rid, rid_len, &out);
    s_wire_fini(&wire);
    return rc;
}

/* ---- what the node delivers ---- */

static void s_route_event(cohort_api_server_t *self, const cohort_msg_t *msg)
{
    Cohort__Api__Event ev = COHORT__API__EVENT__INIT;
    ev.type = s_str(cohort_msg_subject(msg));
    ev.node = s_str(cohort_msg_sender(msg));
    ev.reason = s_str(cohort_msg_error(msg));
    s_out_t out = COHORT__API__API_MESSAGE__INIT;
    out.kind_case = COHORT__API__API_MESSAGE__KIND_EVENT;
    out.event = &ev;
    for (size_t i = 0; i < self->client_count; i++)
        if (self->clients[i]->events)
            s_send(self, self->clients[i]->rid, self->clients[i]->rid_len, &out);
}

/* PUBLISH and UNICAST: every client with a matching pattern, once.
 * Returns true if it kept msg (an early unicast; see S_EARLY_MS). */
static bool s_route_subject(cohort_api_server_t *self, cohort_msg_t *msg)
{
    const char *subject = cohort_msg_subject(msg);
    size_t sent = 0;
    if (cohort_subject_valid(subject)) {
        for (size_t i = 0; i < self->client_count; i++) {
            s_client_t *c = self->clients[i];
            for (size_t k = 0; k < c->pattern_count && !c->gone; k++)
                if (cohort_pattern_match(c->patterns[k], subject)) {
                    s_deliver(self, c->rid, c->rid_len, msg, cohort_msg_request_id(msg));
                    sent++;
                    break;
                }
        }
    }
    size_t len = 0;
    cohort_msg_payload(msg, &len);
    if (!sent && cohort_msg_kind(msg) == COHORT_MSG_UNICAST && self->early &&
        s_now() - self->started < self->limits.early_ms &&
        self->early_bytes + len <= S_EARLY_BYTES) {
        zlistx_add_end(self->early, msg); /* the caller gave it up: see s_route */
        self->early_bytes += len;
        return true;
    }
    if (!sent) {
        self->stats.unrouted++;
        COHORT_LOG(COHORT_LOG_DEBUG, "api.unrouted kind=%s sender=%s subject=%.64s",
                   cohort_msg_kind(msg) == COHORT_MSG_PUBLISH ? "publish" : "unicast",
                   cohort_msg_sender(msg), subject);
    }
    return false;
}

/* REQUEST: one serving client, round robin; takes ownership of *msg_p. */
static void s_route_request(cohort_api_server_t *self, cohort_msg_t **msg_p)
{
    cohort_msg_t *msg = *msg_p;
    const char *service = cohort_msg_subject(msg);
    char key[COHORT_SUBJECT_MAX + 64];
    snprintf(key, sizeof key, "%s/%" PRIu64, cohort_msg_sender(msg), cohort_msg_request_id(msg));
    s_ref_t *ref = zhashx_lookup(self->serve_refs, service);
    size_t n = 0;
    for (size_t i = 0; i < self->client_count; i++)
        n += s_list_has(self->clients[i]->services, self->clients[i]->service_count, service);
    if (zhashx_size(self->held) >= S_MAX_HELD) {
        s_fail_request(self, msg, COHORT_QUEUE_FULL, "too many requests waiting for local clients");
        goto out;
    }
    /* Try each serving client once, starting at the round-robin position. */
    uint64_t start = ref ? ref->rr++ : 0;
    for (size_t tries = 0; tries < n; tries++) {
        size_t want = (size_t)((start + tries) % n), seen = 0;
        s_client_t *c = NULL;
        for (size_t i = 0; i < self->client_count; i++) {
            s_client_t *x = self->clients[i];
            if (s_list_has(x->services, x->service_count, service) && seen++ == want) {
                c = x;
                break;
            }
        }
        if (!c || c->gone || s_deliver(self, c->rid, c->rid_len, msg, cohort_msg_request_id(msg)))
            continue;
        s_held_t *h = cohort_calloc(1, sizeof *h);
        h->request = msg;
        memcpy(h->rid, c->rid, c->rid_len);
        h->rid_len = c->rid_len;
        h->deadline = s_now() + S_HELD_TTL_MS;
        s_held_t *twin = zhashx_lookup(self->held, key); /* the requester restarted */
        if (twin) {
            s_client_t *owner = s_client_find(self, twin->rid, twin->rid_len);
            if (owner)
                owner->held--;
        }
        zhashx_update(self->held, key, h);
        c->held++;
        *msg_p = NULL;
        return;
    }
    self->stats.unrouted++;
    s_fail_request(self, msg, COHORT_NO_RESPONDERS, "no local client serves it any more");
out:
    cohort_msg_destroy(msg_p);
}

static void s_route_reply(cohort_api_server_t *self, const cohort_msg_t *msg)
{
    char key[32];
    snprintf(key, sizeof key, "%" PRIu64, cohort_msg_request_id(msg));
    s_call_t *call = zhashx_lookup(self->calls, key);
    if (!call) {
        self->stats.unrouted++;
        return;
    }
    s_client_t *c = s_client_find(self, call->rid, call->rid_len);
    if (c) {
        s_deliver(self, c->rid, c->rid_len, msg, call->api_id);
        c->calls--;
    }
    zhashx_delete(self->calls, key);
}

static void s_route(cohort_api_server_t *self, cohort_msg_t **msg_p)
{
    switch (cohort_msg_kind(*msg_p)) {
    case COHORT_MSG_EVENT:
        s_route_event(self, *msg_p);
        break;
    case COHORT_MSG_UNICAST:
    case COHORT_MSG_PUBLISH:
        if (s_route_subject(self, *msg_p))
            *msg_p = NULL; /* kept for a subscriber to come */
        break;
    case COHORT_MSG_REQUEST:
        s_route_request(self, msg_p);
        break;
    case COHORT_MSG_REPLY:
        s_route_reply(self, *msg_p);
        break;
    default:
        self->stats.unrouted++;
    }
    cohort_msg_destroy(msg_p);
}

/* cohort_fd is edge-like: read until the inbox is empty, every time. */
/* True when some client's backlog is past half its cap: the server then
 * stops taking deliveries from the node, whose inbox fills up, so the node
 * stops taking reliable messages from peers (they are resent later) and
 * their senders feel it. Backpressure instead of loss; the price is that
 * one slow client holds back deliveries to the others until it reads. */
static bool s_backlogged(const cohort_api_server_t *self)
{
    for (size_t i = 0; i < self->client_count; i++)
        if (self->clients[i]->backlog_bytes > self->limits.backlog_bytes / 2)
            return true;
    return false;
}

static void s_drain_node(cohort_api_server_t *self)
{
    cohort_msg_t *msg;
    while (!(self->paused = s_backlogged(self)) && (msg = cohort_recv(self->node, 0)))
        s_route(self, &msg);
    s_sweep(self);
}

static int s_on_node(zloop_t *loop, zmq_pollitem_t *item, void *arg)
{
    (void)loop;
    (void)item;
    s_drain_node(arg);
    return 0;
}

/* ---- requests ---- */

/* The request a handler works on. */
typedef struct {
    const uint8_t *rid;
    size_t rid_len;
    const s_req_t *req;
    Cohort__Api__Response *resp;
    bool deferred; /* the Response is sent later (a parked Send) */
    char error[1024];
    /* roster_push: the node's answer, pointed to by resp->roster */
    cohort_roster_result_t roster_result;
    Cohort__Api__RosterResult roster;
} s_ctx_t;

static cohort_status_t s_fail(s_ctx_t *ctx, cohort_status_t status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static cohort_status_t s_fail(s_ctx_t *ctx, cohort_status_t status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ctx->error, sizeof ctx->error, fmt, ap);
    va_end(ap);
    return status;
}

static cohort_status_t s_status_text(s_ctx_t *ctx, cohort_status_t st, const char *what,
                                     const char *name)
{
    switch (st) {
    case COHORT_OK:
        return st;
    case COHORT_UNKNOWN_NODE:
        return s_fail(ctx, st, "unknown node '%.64s': not a member of the roster", name);
    case COHORT_QUEUE_FULL:
        return s_fail(ctx, st, "the send queue to '%.64s' is full", name);
    case COHORT_TOO_LARGE:
        return s_fail(ctx, st, "message larger than limits.max_message_size");
    default:
        return s_fail(ctx, st, "%s '%.64s': %s", what, name, cohort_status_name(st));
    }
}

static cohort_status_t s_op_info(cohort_api_server_t *self, s_ctx_t *ctx, const char *what,
                                 Cohort__Api__Response **info)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    cohort_status_t st = cohort_info(self->node, what, &buf, &len);
    if (st != COHORT_OK)
        return s_fail(ctx, st, "the node did not answer '%s'", what);
    *info = cohort__api__response__unpack(NULL, len, buf);
    free(buf);
    if (!*info)
        return s_fail(ctx, COHORT_ERROR, "the node's answer to '%s' does not decode", what);
    return COHORT_OK;
}

static int s_on_retry(zloop_t *loop, int timer_id, void *arg);

static cohort_status_t s_op_send(cohort_api_server_t *self, s_ctx_t *ctx,
                                 const Cohort__Api__Send *op)
{
    if (!op->node || !op->node[0])
        return s_fail(ctx, COHORT_INVALID, "no node given");
    uint32_t timeout = op->timeout_ms ? op->timeout_ms : self->send_timeout_ms;
    bool behind = false; /* keep order behind sends to the same node waiting for room */
    for (s_parked_t *p = zlistx_first(self->parked); p && !behind; p = zlistx_next(self->parked))
        behind = !strcmp(p->node, op->node);
    cohort_msg_t *msg = s_msg_from_wire(op->message);
    cohort_status_t st = COHORT_QUEUE_FULL;
    if (!behind) {
        cohort_msg_t *copy = timeout ? s_msg_dup(msg) : NULL;
        st = cohort_send(self->node, op->node, &msg, 0);
        msg = copy;
    }
    if (st != COHORT_QUEUE_FULL || !timeout || zlistx_size(self->parked) >= S_MAX_PARKED) {
        cohort_msg_destroy(&msg);
        return s_status_text(ctx, st, "send", op->node);
    }
    s_parked_t *p = cohort_calloc(1, sizeof *p);
    memcpy(p->rid, ctx->rid, ctx->rid_len);
    p->rid_len = ctx->rid_len;
    p->api_id = ctx->req->id;
    p->node = cohort_strdup(op->node);
    p->msg = msg;
    p->deadline = s_now() + timeout;
    zlistx_add_end(self->parked, p);
    if (self->retry_timer < 0)
        self->retry_timer = zloop_timer(self->loop, S_RETRY_MS, 0, s_on_retry, self);
    ctx->deferred = true;
    return COHORT_OK;
}

static cohort_status_t s_op_publish(cohort_api_server_t *self, s_ctx_t *ctx,
                                    const Cohort__Api__Publish *op)
{
    cohort_msg_t *msg = s_msg_from_wire(op->message);
    char topic[COHORT_SUBJECT_MAX + 1];
    snprintf(topic, sizeof topic, "%s", cohort_msg_subject(msg));
    unsigned n = 0;
    cohort_status_t st = cohort_publish(self->node, &msg, &n);
    ctx->resp->recipients = n;
    if (st == COHORT_INVALID)
        return s_fail(ctx, st,
                      "topic '%.64s' must be dot-separated tokens without "
                      "wildcards or spaces",
                      topic);
    return s_status_text(ctx, st, "publish", topic);
}

/* A client subscribed to pattern: it gets, in order, the unicasts kept
 * since start that match. */
static void s_early_replay(cohort_api_server_t *self, s_client_t *c, const char *pattern)
{
    if (!self->early)
        return;
    cohort_msg_t *msg = zlistx_first(self->early);
    while (msg) {
        void *handle = zlistx_cursor(self->early);
        cohort_msg_t *next = zlistx_next(self->early);
        if (cohort_pattern_match(pattern, cohort_msg_subject(msg))) {
            size_t len = 0;
            cohort_msg_payload(msg, &len);
            s_deliver(self, c->rid, c->rid_len, msg, cohort_msg_request_id(msg));
            self->early_bytes -= len;
            zlistx_delete(self->early, handle);
        }
        msg = next;
    }
}

/* After S_EARLY_MS, what nobody subscribed to is unrouted after all. */
static void s_early_expire(cohort_api_server_t *self)
{
    if (!self->early || s_now() - self->started < self->limits.early_ms)
        return;
    size_t n = zlistx_size(self->early);
    if (n) {
        self->stats.unrouted += n;
        COHORT_LOG(COHORT_LOG_INFO, "api.early_unrouted messages=%zu", n);
    }
    zlistx_destroy(&self->early);
    self->early_bytes = 0;
}

static cohort_status_t s_op_interest(cohort_api_server_t *self, s_ctx_t *ctx, bool serve, bool add,
                                     const char *name)
{
    const char *what = serve ? (add ? "serve" : "unserve") : (add ? "subscribe" : "unsubscribe");
    name = name ? name : "";
    if (serve ? !cohort_subject_valid(name) : !cohort_pattern_valid(name))
        return s_fail(ctx, COHORT_INVALID,
                      serve ? "service '%.64s' must be dot-separated tokens without wildcards"
                            : "pattern '%.64s' must be dot-separated tokens; * matches one "
                              "token, > the rest",
                      name);
    s_client_t *c = add ? s_client_get(self, ctx->rid, ctx->rid_len)
                        : s_client_find(self, ctx->rid, ctx->rid_len);
    if (!c)
        return add ? s_fail(ctx, COHORT_ERROR, "too many API clients (%zu)",
                            self->limits.max_clients)
                   : COHORT_OK;
    char ***list = serve ? &c->services : &c->patterns;
    size_t *count = serve ? &c->service_count : &c->pattern_count;
    if (!add) {
        if (s_list_del(*list, count, name))
            s_unref(self, serve, name);
        return COHORT_OK;
    }
    if (s_list_has(*list, *count, name))
        return COHORT_OK;
    if (*count >= self->limits.max_patterns)
        return s_fail(ctx, COHORT_ERROR, "a client may hold at most %zu %s",
                      self->limits.max_patterns, serve ? "services" : "patterns");
    cohort_status_t st = s_ref(self, serve, name);
    if (st != COHORT_OK)
        return s_status_text(ctx, st, what, name);
    s_list_add(list, count, name);
    if (!serve)
        s_early_replay(self, c, name);
    return COHORT_OK;
}

static cohort_status_t s_op_call(cohort_api_server_t *self, s_ctx_t *ctx,
                                 const Cohort__Api__Call *op)
{
    const char *service = op->service ? op->service : "";
    if (!cohort_subject_valid(service))
        return s_fail(ctx, COHORT_INVALID,
                      "service '%.64s' must be dot-separated tokens without wildcards", service);
    if (zhashx_size(self->calls) >= S_MAX_CALLS)
        return s_fail(ctx, COHORT_QUEUE_FULL, "too many calls in flight (%d)", S_MAX_CALLS);
    s_client_t *c = s_client_get(self, ctx->rid, ctx->rid_len);
    if (!c)
        return s_fail(ctx, COHORT_ERROR, "too many API clients (%zu)", self->limits.max_clients);
    int timeout =
        op->timeout_ms && op->timeout_ms <= INT32_MAX ? (int)op->timeout_ms : S_DEFAULT_CALL_MS;
    cohort_msg_t *msg = s_msg_from_wire(op->message);
    uint64_t id = 0;
    cohort_status_t st = cohort_request_async(self->node, service, &msg, timeout, &id);
    if (st != COHORT_OK)
        return s_status_text(ctx, st, "call", service);
    s_call_t *call = cohort_calloc(1, sizeof *call);
    memcpy(call->rid, ctx->rid, ctx->rid_len);
    call->rid_len = ctx->rid_len;
    call->api_id = ctx->req->id;
    call->deadline = s_now() + timeout + S_CALL_GRACE_MS;
    char key[32];
    snprintf(key, sizeof key, "%" PRIu64, id);
    zhashx_update(self->calls, key, call);
    c->calls++;
    return COHORT_OK;
}

static cohort_status_t s_op_reply(cohort_api_server_t *self, s_ctx_t *ctx,
                                  const Cohort__Api__Reply *op)
{
    char key[COHORT_SUBJECT_MAX + 64];
    snprintf(key, sizeof key, "%.200s/%" PRIu64, op->node ? op->node : "", op->request_id);
    s_held_t *h = zhashx_lookup(self->held, key);
    s_client_t *c = s_client_find(self, ctx->rid, ctx->rid_len);
    if (!h || !c || !s_rid_is(h->rid, h->rid_len, c))
        return s_fail(ctx, COHORT_INVALID,
                      "no request %" PRIu64 " from '%.64s' is waiting for this client",
                      op->request_id, op->node ? op->node : "");
    cohort_msg_t *reply = s_msg_from_wire(op->message);
    if (op->message)
        cohort_msg_set_status(reply, (cohort_status_t)op->message->status, op->message->error);
    cohort_status_t st = cohort_reply(self->node, h->request, &reply);
    zhashx_delete(self->held, key);
    c->held--;
    return s_status_text(ctx, st, "reply", op->node);
}

static cohort_status_t s_op_events(cohort_api_server_t *self, s_ctx_t *ctx, bool on)
{
    s_client_t *c = on ? s_client_get(self, ctx->rid, ctx->rid_len)
                       : s_client_find(self, ctx->rid, ctx->rid_len);
    if (!c)
        return on ? s_fail(ctx, COHORT_ERROR, "too many API clients (%zu)",
                           self->limits.max_clients)
                  : COHORT_OK;
    c->events = on;
    return COHORT_OK;
}

static cohort_status_t s_op_roster_push(cohort_api_server_t *self, s_ctx_t *ctx,
                                        const Cohort__Api__RosterPush *op)
{
    cohort_roster_result_t *res = &ctx->roster_result;
    cohort_status_t st =
        cohort_roster_push(self->node, COHORT_ROSTER_PUSH, op->roster.data, op->roster.len,
                           op->signature.data, op->signature.len, res);
    cohort__api__roster_result__init(&ctx->roster);
    ctx->roster.applied = st == COHORT_OK;
    ctx->roster.serial = res->serial;
    ctx->roster.reason = res->reason;
    ctx->resp->roster = &ctx->roster;
    if (st != COHORT_OK)
        return s_fail(ctx, st, "%s", res->error);
    return COHORT_OK;
}

/* Reads field 1 (the id, a varint) of a protobuf message that may not
 * decode as a whole. False if it cannot be found before the bytes stop
 * making sense. */
static bool s_varint(const uint8_t *p, size_t len, size_t *i, uint64_t *out)
{
    uint64_t v = 0;
    for (unsigned shift = 0; shift < 64 && *i < len; shift += 7) {
        uint8_t b = p[(*i)++];
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *out = v;
            return true;
        }
    }
    return false;
}

static bool s_peek_id(const uint8_t *p, size_t len, uint64_t *id)
{
    size_t i = 0;
    while (i < len) {
        uint64_t key, v;
        if (!s_varint(p, len, &i, &key))
            return false;
        switch (key & 7) {
        case 0:
            if (!s_varint(p, len, &i, &v))
                return false;
            if (key >> 3 == 1) {
                *id = v;
                return true;
            }
            break;
        case 1:
            if (len - i < 8)
                return false;
            i += 8;
            break;
        case 2:
            if (!s_varint(p, len, &i, &v) || v > len - i)
                return false;
            i += (size_t)v;
            break;
        case 5:
            if (len - i < 4)
                return false;
            i += 4;
            break;
        default:
            return false;
        }
    }
    return false;
}

/* A frame that cannot be served: answered when its id can be read,
 * otherwise only counted. */
static void s_refuse(cohort_api_server_t *self, const uint8_t *rid, size_t rid_len,
                     const uint8_t *data, size_t len, cohort_status_t status, const char *why)
{
    uint64_t id = 0;
    char label[24];
    s_label(rid, rid_len, label);
    bool answer = s_peek_id(data, len, &id);
    COHORT_LOG(COHORT_LOG_DEBUG, "api.request.refused client=%s bytes=%zu answered=%s error=\"%s\"",
               label, len, answer ? "yes" : "no", why);
    if (answer)
        s_respond_status(self, rid, rid_len, id, status, why);
}

static void s_handle(cohort_api_server_t *self, const uint8_t *rid, size_t rid_len,
                     const uint8_t *data, size_t len, bool multipart)
{
    self->stats.requests++;
    char why[160];
    if (len > self->max_message_size + COHORT_API_FRAME_SLACK) {
        self->stats.too_large++;
        snprintf(why, sizeof why,
                 "request of %zu bytes is over the limit of %" PRIu64
                 " (limits.max_message_size + 64 KiB)",
                 len, self->max_message_size + COHORT_API_FRAME_SLACK);
        s_refuse(self, rid, rid_len, data, len, COHORT_TOO_LARGE, why);
        return;
    }
    if (multipart) {
        self->stats.invalid++;
        s_refuse(self, rid, rid_len, data, len, COHORT_INVALID,
                 "a request is exactly one frame (use a DEALER, no delimiter)");
        return;
    }
    s_req_t *req = cohort__api__api_request__unpack(NULL, len, data);
    if (!req) {
        self->stats.invalid++;
        s_refuse(self, rid, rid_len, data, len, COHORT_INVALID,
                 "request does not decode as a cohort.api.ApiRequest");
        return;
    }
    Cohort__Api__Response resp = COHORT__API__RESPONSE__INIT;
    Cohort__Api__Response *info = NULL;
    s_ctx_t ctx = {.rid = rid, .rid_len = rid_len, .req = req, .resp = &resp, .error = ""};
    cohort_status_t st;
    switch (req->op_case) {
    case COHORT__API__API_REQUEST__OP_STATUS:
        st = s_op_info(self, &ctx, "status", &info);
        break;
    case COHORT__API__API_REQUEST__OP_PEERS:
        st = s_op_info(self, &ctx, "peers", &info);
        break;
    case COHORT__API__API_REQUEST__OP_MEMBERS:
        st = s_op_info(self, &ctx, "members", &info);
        break;
    case COHORT__API__API_REQUEST__OP_SEND:
        st = s_op_send(self, &ctx, req->send);
        break;
    case COHORT__API__API_REQUEST__OP_PUBLISH:
        st = s_op_publish(self, &ctx, req->publish);
        break;
    case COHORT__API__API_REQUEST__OP_SUBSCRIBE:
        st = s_op_interest(self, &ctx, false, true, req->subscribe->pattern);
        break;
    case COHORT__API__API_REQUEST__OP_UNSUBSCRIBE:
        st = s_op_interest(self, &ctx, false, false, req->unsubscribe->pattern);
        break;
    case COHORT__API__API_REQUEST__OP_SERVE:
        st = s_op_interest(self, &ctx, true, true, req->serve->service);
        break;
    case COHORT__API__API_REQUEST__OP_UNSERVE:
        st = s_op_interest(self, &ctx, true, false, req->unserve->service);
        break;
    case COHORT__API__API_REQUEST__OP_CALL:
        st = s_op_call(self, &ctx, req->call);
        break;
    case COHORT__API__API_REQUEST__OP_REPLY:
        st = s_op_reply(self, &ctx, req->reply);
        break;
    case COHORT__API__API_REQUEST__OP_EVENTS:
        st = s_op_events(self, &ctx, req->events->on);
        break;
    case COHORT__API__API_REQUEST__OP_ROSTER_PUSH:
        st = s_op_roster_push(self, &ctx, req->roster_push);
        break;
    case COHORT__API__API_REQUEST__OP_BYE: {
        s_client_t *c = s_client_find(self, rid, rid_len);
        if (c)
            s_client_drop(self, c, "bye");
        st = COHORT_OK;
        break;
    }
    default:
        self->stats.invalid++;
        st = s_fail(&ctx, COHORT_INVALID, "request has no operation this node knows");
    }
    if (!ctx.deferred) {
        Cohort__Api__ApiStats stats;
        cohort_api_server_stats(self, &stats);
        if (info) {
            resp.status_info = info->status_info;
            resp.n_peers = info->n_peers;
            resp.peers = info->peers;
            resp.n_members = info->n_members;
            resp.members = info->members;
            if (resp.status_info)
                resp.status_info->api = &stats;
        }
        resp.id = req->id;
        resp.status = (Cohort__Api__Code)st;
        resp.error = ctx.error;
        s_respond(self, rid, rid_len, &resp);
        if (resp.status_info)
            resp.status_info->api = NULL; /* ours, not protobuf-c's to free */
    }
    if (info)
        cohort__api__response__free_unpacked(info, NULL);
    cohort__api__api_request__free_unpacked(req, NULL);
}

static int s_on_api(zloop_t *loop, zsock_t *sock, void *arg)
{
    (void)loop;
    cohort_api_server_t *self = arg;
    void *handle = zsock_resolve(sock);
    /* Bounded, so a flood from one client cannot starve the node's side;
     * the socket stays readable and the loop comes back. */
    for (int budget = 0; budget < S_DRAIN_BUDGET; budget++) {
        zmq_msg_t rid, body;
        zmq_msg_init(&rid);
        if (zmq_msg_recv(&rid, handle, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&rid);
            break;
        }
        zmq_msg_init(&body);
        if (!zmq_msg_more(&rid) || zmq_msg_recv(&body, handle, ZMQ_DONTWAIT) < 0 ||
            zmq_msg_size(&rid) > S_MAX_RID) {
            zmq_msg_close(&rid);
            zmq_msg_close(&body);
            continue;
        }
        bool multipart = false;
        while (zmq_msg_more(&body)) {
            /* keep the first frame (for its id), drop the rest */
            zmq_msg_t extra;
            zmq_msg_init(&extra);
            int rc = zmq_msg_recv(&extra, handle, ZMQ_DONTWAIT);
            bool more = rc >= 0 && zmq_msg_more(&extra);
            zmq_msg_close(&extra);
            multipart = true;
            if (!more)
                break;
        }
        s_handle(self, zmq_msg_data(&rid), zmq_msg_size(&rid), zmq_msg_data(&body),
                 zmq_msg_size(&body), multipart);
        zmq_msg_close(&rid);
        zmq_msg_close(&body);
    }
    s_sweep(self);
    return 0;
}

/* ---- timers ---- */

static int s_on_retry(zloop_t *loop, int timer_id, void *arg)
{
    (void)loop;
    (void)timer_id;
    cohort_api_server_t *self = arg;
    int64_t now = s_now();
    zlistx_t *blocked = zlistx_new(); /* nodes whose queue is still full this round */
    s_parked_t *p = zlistx_first(self->parked);
    while (p) {
        bool is_blocked = false;
        for (const char *n = zlistx_first(blocked); n && !is_blocked; n = zlistx_next(blocked))
            is_blocked = !strcmp(n, p->node);
        cohort_status_t st = COHORT_QUEUE_FULL;
        if (!is_blocked) {
            cohort_msg_t *copy = s_msg_dup(p->msg);
            st = cohort_send(self->node, p->node, &copy, 0);
        }
        if (st == COHORT_QUEUE_FULL && now < p->deadline) {
            if (!is_blocked)
                zlistx_add_end(blocked, p->node);
            p = zlistx_next(self->parked);
            continue;
        }
        s_ctx_t ctx = {.error = ""};
        s_status_text(&ctx, st, "send", p->node);
        s_respond_status(self, p->rid, p->rid_len, p->api_id, st, ctx.error);
        void *handle = zlistx_cursor(self->parked);
        p = zlistx_next(self->parked);
        zlistx_delete(self->parked, handle);
    }
    zlistx_destroy(&blocked);
    if (zlistx_size(self->parked) == 0) {
        zloop_timer_end(self->loop, self->retry_timer);
        self->retry_timer = -1;
    }
    s_sweep(self);
    return 0;
}

static int s_on_heartbeat(zloop_t *loop, int timer_id, void *arg)
{
    (void)loop;
    (void)timer_id;
    cohort_api_server_t *self = arg;
    Cohort__Api__Heartbeat hb = COHORT__API__HEARTBEAT__INIT;
    s_out_t out = COHORT__API__API_MESSAGE__INIT;
    out.kind_case = COHORT__API__API_MESSAGE__KIND_HEARTBEAT;
    out.heartbeat = &hb;
    for (size_t i = 0; i < self->client_count; i++)
        s_send(self, self->clients[i]->rid, self->clients[i]->rid_len, &out);
    /* The node answers every call (a reply or TIMEOUT); the grace period
     * only keeps the table bounded if it ever did not. Held requests expire
     * long after any requester stopped waiting. */
    int64_t now = s_now();
    zlistx_t *doomed = zlistx_new(); /* key copies */
    zlistx_set_destructor(doomed, s_plain_free);
    for (s_call_t *call = zhashx_first(self->calls); call; call = zhashx_next(self->calls))
        if (now >= call->deadline)
            zlistx_add_end(doomed, cohort_strdup(zhashx_cursor(self->calls)));
    for (const char *key = zlistx_first(doomed); key; key = zlistx_next(doomed)) {
        s_call_t *call = zhashx_lookup(self->calls, key);
        s_client_t *c = s_client_find(self, call->rid, call->rid_len);
        if (c)
            c->calls--;
        COHORT_LOG(COHORT_LOG_WARN, "api.call.expired request_id=%s", key);
        zhashx_delete(self->calls, key);
    }
    zlistx_purge(doomed);
    for (s_held_t *h = zhashx_first(self->held); h; h = zhashx_next(self->held))
        if (now >= h->deadline)
            zlistx_add_end(doomed, cohort_strdup(zhashx_cursor(self->held)));
    for (const char *key = zlistx_first(doomed); key; key = zlistx_next(doomed)) {
        s_held_t *h = zhashx_lookup(self->held, key);
        s_client_t *c = s_client_find(self, h->rid, h->rid_len);
        if (c)
            c->held--;
        zhashx_delete(self->held, key);
    }
    zlistx_destroy(&doomed);
    s_sweep(self);
    return 0;
}

/* ---- open, attach, destroy ---- */

static void s_held_free(void **item)
{
    s_held_t *h = *item;
    if (h) {
        cohort_msg_destroy(&h->request);
        free(h);
    }
    *item = NULL;
}

static void s_early_free(void **item)
{
    cohort_msg_destroy((cohort_msg_t **)item);
}

static void s_parked_free(void **item)
{
    s_parked_t *p = *item;
    if (p) {
        free(p->node);
        cohort_msg_destroy(&p->msg);
        free(p);
    }
    *item = NULL;
}

/* True if a server accepts connections on the unix socket at path. */
static bool s_socket_live(const char *path)
{
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof a.sun_path)
        return false;
    memcpy(a.sun_path, path, strlen(path) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    bool live = connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
    close(fd);
    return live;
}

/* Binds an ipc:// file endpoint so that the file is never wider than 0660:
 * the umask keeps others out at creation, the chmod takes the owner's and
 * group's execute bits away after. */
static int s_bind_ipc(cohort_api_server_t *self, const char *endpoint, cohort_err_t *err)
{
    const char *path = endpoint + 6;
    char *dir = cohort_fs_dirname(path);
    struct stat st;
    int rc = -1;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        cohort_err_set(err, "api.endpoint: %s: directory '%s' does not exist", endpoint, dir);
        goto out;
    }
    struct sockaddr_un probe;
    if (strlen(path) >= sizeof probe.sun_path) {
        cohort_err_set(err,
                       "api.endpoint: %s: path is longer than %zu bytes, the limit of a "
                       "unix socket",
                       endpoint, sizeof probe.sun_path - 1);
        goto out;
    }
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            cohort_err_set(err,
                           "api.endpoint: %s: '%s' exists and is not a socket; refusing to "
                           "replace it",
                           endpoint, path);
            goto out;
        }
        if (s_socket_live(path)) {
            cohort_err_set(err,
                           "api.endpoint: %s: another process (a running cohortd?) serves "
                           "it; refusing to take it over",
                           endpoint);
            goto out;
        }
    }
    mode_t old = umask(007);
    int bound = zsock_bind(self->sock, "%s", endpoint);
    int bind_errno = zmq_errno();
    umask(old);
    if (bound != 0) {
        cohort_err_set(err, "api.endpoint: cannot bind %s: %s", endpoint, zmq_strerror(bind_errno));
        goto out;
    }
    if (chmod(path, 0660) != 0 || lstat(path, &st) != 0) {
        cohort_err_set(err, "api.endpoint: %s: chmod 0660: %s", endpoint, strerror(errno));
        zsock_unbind(self->sock, "%s", endpoint);
        goto out;
    }
    self->ipc_path = cohort_strdup(path);
    self->ipc_dev = st.st_dev;
    self->ipc_ino = st.st_ino;
    rc = 0;
out:
    free(dir);
    return rc;
}

/* About S_CLIENT_QUEUE_BYTES of messages of the largest size per client.
 * libzmq takes the value when a client connects. */
static void s_set_sndhwm(cohort_api_server_t *self, uint64_t max_message_size)
{
    uint64_t hwm = S_CLIENT_QUEUE_BYTES / (max_message_size ? max_message_size : 1);
    zsock_set_sndhwm(self->sock, hwm < S_SNDHWM_MIN   ? S_SNDHWM_MIN
                                 : hwm > S_SNDHWM_MAX ? S_SNDHWM_MAX
                                                      : (int)hwm);
}

void cohort_api_server_set_limits(cohort_api_server_t *self, const cohort_config_t *cfg)
{
    assert(self && cfg);
    self->max_message_size = cfg->max_message_size;
    self->send_timeout_ms = cfg->send_timeout_ms;
    s_set_sndhwm(self, cfg->max_message_size);
}

int cohort_api_server_open(const cohort_config_t *cfg, const cohort_api_limits_t *limits,
                           cohort_api_server_t **out, cohort_err_t *err)
{
    assert(cfg && out);
    cohort_api_server_t *self = cohort_calloc(1, sizeof *self);
    cohort__api__api_stats__init(&self->stats);
    self->endpoint = cohort_strdup(cfg->api_endpoint);
    self->max_message_size = cfg->max_message_size;
    self->send_timeout_ms = cfg->send_timeout_ms;
    if (limits)
        self->limits = *limits;
    if (!self->limits.max_clients)
        self->limits.max_clients = COHORT_API_MAX_CLIENTS;
    if (!self->limits.max_patterns)
        self->limits.max_patterns = COHORT_API_MAX_PATTERNS;
    if (self->limits.heartbeat_ms <= 0)
        self->limits.heartbeat_ms = COHORT_API_HEARTBEAT_MS;
    if (!self->limits.backlog_bytes)
        self->limits.backlog_bytes = S_BACKLOG_BYTES;
    if (!self->limits.early_ms)
        self->limits.early_ms = S_EARLY_MS;
    self->heartbeat_timer = self->retry_timer = self->backlog_timer = -1;
    self->sub_refs = zhashx_new();
    self->serve_refs = zhashx_new();
    self->calls = zhashx_new();
    self->held = zhashx_new();
    zhashx_set_destructor(self->sub_refs, s_plain_free);
    zhashx_set_destructor(self->serve_refs, s_plain_free);
    zhashx_set_destructor(self->calls, s_plain_free);
    zhashx_set_destructor(self->held, s_held_free);
    self->parked = zlistx_new();
    zlistx_set_destructor(self->parked, s_parked_free);
    self->early = zlistx_new();
    zlistx_set_destructor(self->early, s_early_free);
    self->started = s_now();

    self->sock = zsock_new(ZMQ_ROUTER);
    assert(self->sock);
    zsock_set_linger(self->sock, 0);
    zsock_set_router_mandatory(self->sock, 1);
    s_set_sndhwm(self, cfg->max_message_size);
    zsock_set_maxmsgsize(self->sock, S_FRAME_HARD_MAX);
    int rc;
    if (!strncmp(self->endpoint, "ipc://", 6) && self->endpoint[6] != '@') {
        rc = s_bind_ipc(self, self->endpoint, err);
    } else {
        rc = zsock_bind(self->sock, "%s", self->endpoint) == 0 ? 0 : -1;
        if (rc < 0)
            cohort_err_set(err, "api.endpoint: cannot bind %s: %s", self->endpoint,
                           zmq_strerror(zmq_errno()));
        else
            /* No file mode protects these: anyone who can connect can use
             * this node. Say so where operators look. */
            COHORT_LOG(COHORT_LOG_WARN, "api.unprotected endpoint=%s", self->endpoint);
    }
    if (rc < 0) {
        cohort_api_server_destroy(&self);
        return -1;
    }
    *out = self;
    return 0;
}

void cohort_api_server_attach(cohort_api_server_t *self, cohort_t *node, zloop_t *loop)
{
    assert(self && node && loop && !self->loop);
    self->node = node;
    self->loop = loop;
    zloop_reader(loop, self->sock, s_on_api, self);
    self->node_item = (zmq_pollitem_t){NULL, cohort_fd(node), ZMQ_POLLIN, 0};
    zloop_poller(loop, &self->node_item, s_on_node, self);
    self->heartbeat_timer =
        zloop_timer(loop, (size_t)self->limits.heartbeat_ms, 0, s_on_heartbeat, self);
    self->backlog_timer = zloop_timer(loop, S_BACKLOG_MS, 0, s_on_backlog, self);
    COHORT_LOG(COHORT_LOG_INFO, "api.listening endpoint=%s", self->endpoint);
    s_drain_node(self); /* the edge may have passed before we listened */
}

void cohort_api_server_destroy(cohort_api_server_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    cohort_api_server_t *self = *self_p;
    if (self->loop) {
        zloop_reader_end(self->loop, self->sock);
        zloop_poller_end(self->loop, &self->node_item);
        if (self->heartbeat_timer >= 0)
            zloop_timer_end(self->loop, self->heartbeat_timer);
        if (self->backlog_timer >= 0)
            zloop_timer_end(self->loop, self->backlog_timer);
        if (self->retry_timer >= 0)
            zloop_timer_end(self->loop, self->retry_timer);
    }
    for (s_parked_t *p = zlistx_first(self->parked); p; p = zlistx_next(self->parked))
        s_respond_status(self, p->rid, p->rid_len, p->api_id, COHORT_QUEUE_FULL,
                         "the node's API is shutting down");
    /* Tell clients waiting for deliveries, so they need not wait for
     * missing heartbeats to know. */
    Cohort__Api__Closed closed = COHORT__API__CLOSED__INIT;
    closed.reason = s_str("shutdown");
    s_out_t out = COHORT__API__API_MESSAGE__INIT;
    out.kind_case = COHORT__API__API_MESSAGE__KIND_CLOSED;
    out.closed = &closed;
    for (size_t i = 0; i < self->client_count; i++)
        s_send(self, self->clients[i]->rid, self->clients[i]->rid_len, &out);
    while (self->client_count)
        s_client_drop(self, self->clients[0], "shutdown");
    free(self->clients);
    zhashx_destroy(&self->sub_refs);
    zhashx_destroy(&self->serve_refs);
    zhashx_destroy(&self->calls);
    zhashx_destroy(&self->held);
    zlistx_destroy(&self->parked);
    zlistx_destroy(&self->early);
    /* libzmq 4.3 leaves the socket file behind; remove it (first, so no
     * client connects in between), unless it is no longer ours. */
    struct stat st;
    if (self->ipc_path && lstat(self->ipc_path, &st) == 0 && st.st_dev == self->ipc_dev &&
        st.st_ino == self->ipc_ino)
        unlink(self->ipc_path);
    /* Let the Closed notices and last answers go out (libzmq keeps
     * flushing after close, up to the linger, while the context lives). */
    zsock_set_linger(self->sock, 500);
    zsock_destroy(&self->sock);
    free(self->ipc_path);
    free(self->endpoint);
    free(self);
    *self_p = NULL;
}

const char *cohort_api_server_endpoint(const cohort_api_server_t *self)
{
    return self->endpoint;
}

void cohort_api_server_stats(const cohort_api_server_t *self, Cohort__Api__ApiStats *out)
{
    *out = self->stats;
    out->clients = (uint32_t)self->client_count;
}
