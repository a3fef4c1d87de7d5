/*
 * libcohort: the front object over the node actor. See cohort.h.
 *
 * Every call is a command on the actor pipe (node.h); deliveries and events
 * are read from the actor's inbox PAIR. Requests made with cohort_request()
 * park unrelated deliveries in a local queue so cohort_recv() still sees
 * them, in order.
 *
 * A call that would wait for the node runs it instead (node.h, baton.c):
 * cohort_request and cohort_recv with a timeout run the node's loop in the
 * caller's thread until something reaches the application, a command's
 * answer the same, and a request or a reply is run at once in the caller's
 * thread when nobody runs the node (other commands go on the pipe and wake
 * the actor, to be batched). The caller's thread then does what the
 * actor's did, and a reply wakes the caller directly.
 */
#include "cohort.h"
#include "config/config.h"
#include "envelope.pb-c.h"
#include "msg/subject.h"
#include "node/node.h"
#include "util/mem.h"
#include "wire/arena.h"

#include <assert.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

_Static_assert(sizeof((cohort_reload_result_t *)0)->applied >= COHORT_CONFIG_KEY_LIST_MAX &&
                   sizeof((cohort_reload_result_t *)0)->restart_needed >=
                       COHORT_CONFIG_KEY_LIST_MAX,
               "every key name fits in a reload result");

/* Send credit the node granted for one destination (node.h). */
#define S_CREDIT_SLOTS 8
typedef struct {
    char node[64]; /* "" when the slot is free */
    uint32_t msgs;
    uint64_t bytes, max_one;
} s_credit_t;

struct cohort {
    zactor_t *actor;
    cohort_node_baton_t *baton;
    zsock_t *inbox;
    zlist_t *parked; /* cohort_msg_t * received while waiting for a reply */
    /* what the node made for this thread while it ran it (s_slot_make),
     * oldest first: older than anything in the inbox */
    cohort_msg_t *handed, *handed_last;
    uint64_t next_request_id;
    s_credit_t credit[S_CREDIT_SLOTS];
    unsigned credit_next;         /* slot to give up next when all are taken */
    uint64_t credit_epoch;        /* the epoch the credit above was granted in */
    _Atomic uint64_t epoch_seen;  /* written by the actor (node.h) */
    _Atomic uint64_t inbox_bytes; /* unread deliveries (node.h) */
    _Atomic int64_t inbox_count;  /* unread messages (node.h) */
    bool piped;              /* a command went on the pipe since this thread last ran the node */
    int rcvtimeo;            /* the inbox's receive timeout now */
    cohort_arena_t arena;    /* what s_decode unpacks, reset after each */
    size_t max_message_size; /* the node's, at start (node.h) */
};

typedef struct {
    char *key, *value;
} s_header_t;

struct cohort_msg {
    cohort_msg_kind_t kind;
    char *subject;
    char *sender;
    char *error;
    uint64_t request_id;
    cohort_status_t status;
    s_header_t *headers;
    size_t header_count;
    uint8_t *payload;
    size_t len;
    size_t block;       /* bytes of this allocation: fields inside it are not freed alone */
    cohort_msg_t *next; /* in the handle's handed queue */
};

/* Frees a field unless it lives in msg's own allocation. */
static void s_field_free(cohort_msg_t *msg, void *field)
{
    const char *f = field, *m = (const char *)msg;
    if (f < m || f >= m + msg->block)
        free(field);
}

static void s_field_set(cohort_msg_t *msg, char **field, const char *value)
{
    s_field_free(msg, *field);
    *field = cohort_strdup(value ? value : "");
}

/* One allocation for the message, its strings and its payload: a message
 * costs one malloc and one free on the hot path. */
static cohort_msg_t *s_msg_alloc(const char *subject, const char *sender, const char *error,
                                 const void *payload, size_t len)
{
    size_t ls = strlen(subject) + 1, lf = strlen(sender) + 1, le = strlen(error) + 1;
    size_t block = sizeof(cohort_msg_t) + ls + lf + le + len;
    cohort_msg_t *msg = cohort_malloc(block);
    memset(msg, 0, sizeof *msg);
    char *at = (char *)(msg + 1);
    msg->payload = (uint8_t *)at; /* first: aligned as the struct is */
    if (len)
        memcpy(at, payload, len);
    msg->len = len;
    at += len;
    msg->subject = memcpy(at, subject, ls);
    at += ls;
    msg->sender = memcpy(at, sender, lf);
    at += lf;
    msg->error = memcpy(at, error, le);
    msg->block = block;
    return msg;
}

const char *cohort_status_name(cohort_status_t status)
{
    static const char *const names[] = {
        "ok",         "error",     "unknown-node", "no-responders", "timeout",
        "queue-full", "too-large", "invalid",      "not-connected"};
    return (unsigned)status < sizeof names / sizeof names[0] ? names[status] : "unknown";
}

/* ---- messages ---- */

cohort_msg_t *cohort_msg_new(const char *subject, const void *payload, size_t len)
{
    return s_msg_alloc(subject ? subject : "", "", "", payload, len);
}

void cohort_msg_destroy(cohort_msg_t **msg_p)
{
    if (!msg_p || !*msg_p)
        return;
    cohort_msg_t *msg = *msg_p;
    for (size_t i = 0; i < msg->header_count; i++) {
        free(msg->headers[i].key);
        free(msg->headers[i].value);
    }
    free(msg->headers);
    s_field_free(msg, msg->subject);
    s_field_free(msg, msg->sender);
    s_field_free(msg, msg->error);
    s_field_free(msg, msg->payload);
    free(msg);
    *msg_p = NULL;
}

void cohort_msg_set_header(cohort_msg_t *msg, const char *key, const char *value)
{
    for (size_t i = 0; i < msg->header_count; i++)
        if (!strcmp(msg->headers[i].key, key)) {
            free(msg->headers[i].value);
            msg->headers[i].value = cohort_strdup(value);
            return;
        }
    msg->headers = cohort_realloc(msg->headers, (msg->header_count + 1) * sizeof *msg->headers);
    msg->headers[msg->header_count].key = cohort_strdup(key);
    msg->headers[msg->header_count].value = cohort_strdup(value);
    msg->header_count++;
}

const char *cohort_msg_header(const cohort_msg_t *msg, const char *key)
{
    for (size_t i = 0; i < msg->header_count; i++)
        if (!strcmp(msg->headers[i].key, key))
            return msg->headers[i].value;
    return NULL;
}

size_t cohort_msg_header_count(const cohort_msg_t *msg)
{
    assert(msg);
    return msg->header_count;
}

const char *cohort_msg_header_at(const cohort_msg_t *msg, size_t index, const char **value)
{
    assert(msg && index < msg->header_count);
    if (value)
        *value = msg->headers[index].value;
    return msg->headers[index].key;
}

void cohort_msg_set_status(cohort_msg_t *msg, cohort_status_t status, const char *error)
{
    assert(msg);
    msg->status = status;
    s_field_set(msg, &msg->error, error);
}

const char *cohort_msg_subject(const cohort_msg_t *msg)
{
    return msg->subject;
}

const void *cohort_msg_payload(const cohort_msg_t *msg, size_t *len)
{
    if (len)
        *len = msg->len;
    return msg->payload;
}

const char *cohort_msg_sender(const cohort_msg_t *msg)
{
    return msg->sender;
}

cohort_msg_kind_t cohort_msg_kind(const cohort_msg_t *msg)
{
    return msg->kind;
}

uint64_t cohort_msg_request_id(const cohort_msg_t *msg)
{
    return msg->request_id;
}

cohort_status_t cohort_msg_status(const cohort_msg_t *msg)
{
    return msg->status;
}

const char *cohort_msg_error(const cohort_msg_t *msg)
{
    return msg->error;
}

/* msg as a cohort.wire.Message to encode, borrowing its fields. Headers
 * go in w's own room, or in *spill (caller frees) when there are many. */
#define S_WIRE_HEADERS 8
typedef struct {
    Cohort__Wire__Message m;
    Cohort__Wire__Header hs[S_WIRE_HEADERS], *hp[S_WIRE_HEADERS];
    void *spill;
} s_wire_t;

static void s_wire(s_wire_t *w, const cohort_msg_t *msg, cohort_msg_kind_t kind)
{
    cohort__wire__message__init(&w->m);
    Cohort__Wire__Header *hs = w->hs, **hp = w->hp;
    w->spill = NULL;
    if (msg->header_count > S_WIRE_HEADERS) {
        w->spill = cohort_calloc(msg->header_count, sizeof *hs + sizeof *hp);
        hs = w->spill;
        hp = (Cohort__Wire__Header **)(hs + msg->header_count);
    }
    for (size_t i = 0; i < msg->header_count; i++) {
        cohort__wire__header__init(&hs[i]);
        hs[i].key = msg->headers[i].key;
        hs[i].value = msg->headers[i].value;
        hp[i] = &hs[i];
    }
    w->m.kind = (Cohort__Wire__Message__Kind)kind;
    w->m.subject = msg->subject;
    w->m.request_id = msg->request_id;
    w->m.n_headers = msg->header_count;
    w->m.headers = hp;
    w->m.payload.data = msg->payload;
    w->m.payload.len = msg->len;
    w->m.status = (uint32_t)msg->status;
    w->m.error = msg->error;
}

/* Encodes msg as a cohort.wire.Message frame. */
static zframe_t *s_encode(const cohort_msg_t *msg, cohort_msg_kind_t kind)
{
    s_wire_t w;
    s_wire(&w, msg, kind);
    zframe_t *frame = zframe_new(NULL, cohort__wire__message__get_packed_size(&w.m));
    cohort__wire__message__pack(&w.m, zframe_data(frame));
    free(w.spill);
    return frame;
}

/* What a decoded message needs beyond its encoded size (the protobuf-c
 * structs, alignment) in the common case of a few headers. */
#define S_DECODE_SLACK 768

/* Decodes straight into the block that becomes the message, so that the
 * payload is copied once (by the decoder) and the message is one
 * allocation. NULL when it does not fit (many headers): s_decode then
 * takes the longer way. */
static cohort_msg_t *s_decode_in_place(const char *sender, const uint8_t *data, size_t len)
{
    size_t sl = strlen(sender) + 1;
    size_t block = sizeof(cohort_msg_t) + sl + 1 + len + S_DECODE_SLACK;
    cohort_msg_t *msg = cohort_malloc(block);
    memset(msg, 0, sizeof *msg);
    char *strings = (char *)(msg + 1);
    msg->sender = memcpy(strings, sender, sl);
    char *empty = strings + sl;
    *empty = '\0';
    size_t used = (sl + 1 + 15) & ~(size_t)15;
    cohort_arena_t a;
    cohort_arena_wrap(&a, strings + used, block - sizeof *msg - used);
    Cohort__Wire__Message *m = cohort__wire__message__unpack(&a.pb, len, data);
    if (!m || a.outstanding) {
        cohort_arena_free(&a, m ? &m->base : NULL);
        free(msg);
        return NULL;
    }
    msg->block = block;
    /* protobuf-c points absent strings at a static "": ours instead */
    msg->subject = m->subject && *m->subject ? m->subject : empty;
    msg->error = m->error && *m->error ? m->error : empty;
    msg->payload = m->payload.len ? m->payload.data : (uint8_t *)empty;
    msg->len = m->payload.len;
    msg->kind = (cohort_msg_kind_t)m->kind;
    msg->request_id = m->request_id;
    msg->status = (cohort_status_t)m->status;
    for (size_t i = 0; i < m->n_headers; i++)
        cohort_msg_set_header(msg, m->headers[i]->key, m->headers[i]->value);
    return msg; /* m stays in the block, unused */
}

/* A message of its own from a decoded one (copied: m is not kept). */
static cohort_msg_t *s_from_wire(const char *sender, const Cohort__Wire__Message *m)
{
    cohort_msg_t *msg = s_msg_alloc(m->subject ? m->subject : "", sender, m->error ? m->error : "",
                                    m->payload.data, m->payload.len);
    msg->kind = (cohort_msg_kind_t)m->kind;
    msg->request_id = m->request_id;
    msg->status = (cohort_status_t)m->status;
    for (size_t i = 0; i < m->n_headers; i++)
        cohort_msg_set_header(msg, m->headers[i]->key, m->headers[i]->value);
    return msg;
}

static void s_handed_put(cohort_t *self, cohort_msg_t *msg)
{
    msg->next = NULL;
    if (self->handed_last)
        self->handed_last->next = msg;
    else
        self->handed = msg;
    self->handed_last = msg;
}

static cohort_msg_t *s_handed_take(cohort_t *self)
{
    cohort_msg_t *msg = self->handed;
    if (msg) {
        self->handed = msg->next;
        if (!self->handed)
            self->handed_last = NULL;
        msg->next = NULL;
    }
    return msg;
}

/* The node's slot maker (node.h cohort_node_slot_t): every message the
 * node decoded for us during one run, in order. */
static bool s_slot_make(void *ctx, const char *sender, const Cohort__Wire__Message *m)
{
    s_handed_put(ctx, s_from_wire(sender, m));
    return true;
}

static cohort_msg_t *s_decode(cohort_arena_t *arena, const char *sender, const uint8_t *data,
                              size_t len)
{
    cohort_msg_t *in_place = s_decode_in_place(sender, data, len);
    if (in_place)
        return in_place;
    Cohort__Wire__Message *m = cohort__wire__message__unpack(&arena->pb, len, data);
    if (!m) {
        cohort_arena_reset(arena);
        return NULL;
    }
    cohort_msg_t *msg = s_from_wire(sender, m);
    cohort_arena_free(arena, &m->base);
    cohort_arena_reset(arena);
    return msg;
}

/* ---- the node ---- */

int cohort_open(const char *config_path, cohort_t **out, char *err, size_t errlen)
{
    cohort_node_args_t args;
    memset(&args, 0, sizeof args);
    args.config_path = config_path;
    cohort_t *self = cohort_calloc(1, sizeof *self);
    args.credit_epoch = &self->epoch_seen;
    args.inbox_bytes = &self->inbox_bytes;
    args.inbox_count = &self->inbox_count;
    self->baton = cohort_node_baton_new();
    args.baton = self->baton;
    /* The inbox is connected before the node starts (inproc lets a connect
     * wait for its bind): events of its first moments, such as the first
     * member.up, would otherwise be dropped before anyone listens. */
    snprintf(args.inbox, sizeof args.inbox, "inproc://cohort-inbox-%p", (void *)self);
    self->inbox = zsock_new(ZMQ_PAIR);
    cohort_arena_init(&self->arena, 64 * 1024);
    self->rcvtimeo = -1; /* ZeroMQ's default */
    assert(self->inbox);
    int rc = zsock_connect(self->inbox, "%s", args.inbox);
    assert(rc == 0);
    zactor_t *actor = zactor_new(cohort_node_actor, &args);
    /* zactor_new waits for the actor's signal; a failed start has already
     * ended the actor and left its reason in args.error. */
    if (!actor || args.error[0]) {
        if (err && errlen)
            snprintf(err, errlen, "%s", args.error[0] ? args.error : "cannot start the node");
        zactor_destroy(&actor);
        cohort_node_baton_destroy(&self->baton);
        zsock_destroy(&self->inbox);
        cohort_arena_fini(&self->arena);
        free(self);
        return -1;
    }
    self->actor = actor;
    self->max_message_size = args.max_message_size;
    self->parked = zlist_new();
    *out = self;
    return 0;
}

void cohort_close(cohort_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    cohort_t *self = *self_p;
    cohort_node_hand_back(self->baton);
    zactor_destroy(&self->actor);
    cohort_node_baton_destroy(&self->baton);
    zsock_destroy(&self->inbox);
    cohort_msg_t *msg;
    while ((msg = zlist_pop(self->parked)))
        cohort_msg_destroy(&msg);
    zlist_destroy(&self->parked);
    while ((msg = s_handed_take(self)))
        cohort_msg_destroy(&msg);
    cohort_arena_fini(&self->arena);
    free(self);
    *self_p = NULL;
}

/* Before reading a command's answer: runs the node until it answered,
 * unless the actor runs it (then the read waits for the actor). */
static void s_await_answer(cohort_t *self)
{
    while (!(zsock_events(self->actor) & ZMQ_POLLIN))
        if (cohort_node_lead(self->baton, -1) != COHORT_NODE_LEAD_NEWS)
            return;
}

/* Reads the actor's reply: status code and error text. */
static cohort_status_t s_result(cohort_t *self, char *error, size_t errlen)
{
    char *code = NULL, *text = NULL;
    s_await_answer(self);
    if (zsock_recv(self->actor, "ss", &code, &text) != 0)
        return COHORT_ERROR;
    cohort_status_t st = code ? (cohort_status_t)atoi(code) : COHORT_ERROR;
    if (error && errlen)
        snprintf(error, errlen, "%s", text ? text : "");
    zstr_free(&code);
    zstr_free(&text);
    return st;
}

/* A binary send command (node.h) for node with room for body_len bytes of
 * body, which the caller writes at *body. */
static void s_send_cmd(zmq_msg_t *out, uint8_t op, uint64_t epoch, uint32_t msgs, uint64_t bytes,
                       const char *node, size_t body_len, uint8_t **body)
{
    size_t name_len = strlen(node) + 1;
    zmq_msg_init_size(out, COHORT_NODE_CMD_HEAD + name_len + body_len);
    uint8_t *d = zmq_msg_data(out);
    d[0] = op;
    memcpy(d + 1, &epoch, 8);
    memcpy(d + 9, &msgs, 4);
    memcpy(d + 13, &bytes, 8);
    memcpy(d + COHORT_NODE_CMD_HEAD, node, name_len);
    if (body)
        *body = d + COHORT_NODE_CMD_HEAD + name_len;
}

/* Hands a binary command to the node. A request or a reply (here) is run
 * in this thread if nobody runs the node: no pipe, no wakeup. Anything
 * else goes on the pipe, waking the actor if the node was idle: a stream
 * of sends is batched there, one frame per link for all the messages the
 * actor finds (node.c s_on_pipe), where run here each would leave alone. */
static cohort_status_t s_command(cohort_t *self, zmq_msg_t *cmd, bool here)
{
    if (here && cohort_node_take(self->baton, self->actor, false) == COHORT_NODE_HELD) {
        cohort_node_exec(self->baton, cmd, self->piped);
        self->piped = false;
        cohort_node_give(self->baton);
        return COHORT_OK;
    }
    if (zmq_msg_send(cmd, zsock_resolve(self->actor), 0) < 0) {
        zmq_msg_close(cmd);
        return COHORT_ERROR;
    }
    self->piped = true;
    cohort_node_hand_back(self->baton);
    return COHORT_OK;
}

/* The credit slot for node, or NULL. All credit goes when the node revoked
 * it (a reload, a member removed): it freed the room behind it already. */
static s_credit_t *s_credit(cohort_t *self, const char *node)
{
    uint64_t epoch = atomic_load(&self->epoch_seen);
    if (epoch != self->credit_epoch) {
        memset(self->credit, 0, sizeof self->credit);
        self->credit_epoch = epoch;
    }
    for (size_t i = 0; i < S_CREDIT_SLOTS; i++)
        if (!strcmp(self->credit[i].node, node))
            return &self->credit[i];
    return NULL;
}

/* Keeps credit granted for node (a "msgs bytes max epoch" text), giving
 * back what another node's slot held if all are taken. */
static void s_credit_keep(cohort_t *self, const char *node, const char *text)
{
    unsigned long msgs = 0;
    unsigned long long bytes = 0, max_one = 0, epoch = 0;
    if (!text || sscanf(text, "%lu %llu %llu %llu", &msgs, &bytes, &max_one, &epoch) != 4 ||
        !msgs || strlen(node) >= sizeof self->credit[0].node)
        return;
    if (epoch != self->credit_epoch) {
        memset(self->credit, 0, sizeof self->credit);
        self->credit_epoch = epoch;
    }
    s_credit_t *slot = NULL;
    for (size_t i = 0; i < S_CREDIT_SLOTS && !slot; i++)
        if (!self->credit[i].node[0])
            slot = &self->credit[i];
    if (!slot) {
        slot = &self->credit[self->credit_next++ % S_CREDIT_SLOTS];
        zmq_msg_t out;
        s_send_cmd(&out, COHORT_NODE_CMD_RELEASE, self->credit_epoch, slot->msgs, slot->bytes,
                   slot->node, 0, NULL);
        if (zmq_msg_send(&out, zsock_resolve(self->actor), 0) < 0)
            zmq_msg_close(&out);
        self->piped = true;
    }
    snprintf(slot->node, sizeof slot->node, "%s", node);
    slot->msgs = (uint32_t)msgs;
    slot->bytes = bytes;
    slot->max_one = max_one;
}

/* Sends while the node's credit lasts, without waiting for an answer; it
 * has reserved the room, so nothing sent on credit can be refused. Without
 * credit (or for a message it does not cover) the send waits for the
 * node's answer, which says how much credit comes next. */
static cohort_status_t s_send(cohort_t *self, const char *node, cohort_msg_t **msg_p,
                              int timeout_ms, cohort_msg_kind_t kind, uint64_t request_id)
{
    assert(self && node && msg_p && *msg_p);
    s_wire_t w;
    s_wire(&w, *msg_p, kind);
    Cohort__Wire__Message *m = &w.m;
    if (kind == COHORT_MSG_REPLY)
        m->request_id = request_id;
    size_t len = cohort__wire__message__get_packed_size(m);
    void *actor = zsock_resolve(self->actor);
    s_credit_t *c = s_credit(self, node);
    zmq_msg_t out;
    uint8_t *body = NULL;
    cohort_status_t st = COHORT_OK;
    if (c && c->msgs && len <= c->max_one && len <= c->bytes) {
        s_send_cmd(&out, COHORT_NODE_CMD_SEND_CREDIT, self->credit_epoch, 0, 0, node, len, &body);
        cohort__wire__message__pack(m, body);
        c->msgs--;
        c->bytes -= len;
        st = s_command(self, &out, kind == COHORT_MSG_REPLY);
        goto out;
    }
    int64_t deadline = zclock_mono() + (timeout_ms > 0 ? timeout_ms : 0);
    for (;;) {
        /* what is left of this node's credit goes back with the send */
        c = s_credit(self, node);
        uint32_t ret_msgs = c ? c->msgs : 0;
        uint64_t ret_bytes = c ? c->bytes : 0;
        if (c)
            memset(c, 0, sizeof *c);
        s_send_cmd(&out, COHORT_NODE_CMD_SEND, self->credit_epoch, ret_msgs, ret_bytes, node, len,
                   &body);
        cohort__wire__message__pack(m, body);
        if (zmq_msg_send(&out, actor, 0) < 0) {
            zmq_msg_close(&out);
            st = COHORT_ERROR;
            break;
        }
        char *code = NULL, *text = NULL, *credit = NULL;
        s_await_answer(self);
        if (zsock_recv(self->actor, "sss", &code, &text, &credit) != 0) {
            st = COHORT_ERROR;
            break;
        }
        st = code ? (cohort_status_t)atoi(code) : COHORT_ERROR;
        s_credit_keep(self, node, credit);
        zstr_free(&code);
        zstr_free(&text);
        zstr_free(&credit);
        if (st != COHORT_QUEUE_FULL || zclock_mono() >= deadline)
            break;
        zclock_sleep(2); /* backpressure: wait for acks to free the window */
    }
out:
    free(w.spill);
    cohort_msg_destroy(msg_p);
    return st;
}

cohort_status_t cohort_send(cohort_t *self, const char *node, cohort_msg_t **msg_p, int timeout_ms)
{
    return s_send(self, node, msg_p, timeout_ms, COHORT_MSG_UNICAST, 0);
}

/* A publish nobody waits for: checked here, then queued to the actor
 * (node.h PUBLISH) with no answer, so that a stream of them pipelines. */
static cohort_status_t s_publish_na(cohort_t *self, cohort_msg_t **msg_p)
{
    cohort_status_t st = COHORT_OK;
    s_wire_t w;
    s_wire(&w, *msg_p, COHORT_MSG_PUBLISH);
    size_t len = cohort__wire__message__get_packed_size(&w.m);
    if (!cohort_subject_valid((*msg_p)->subject)) {
        st = COHORT_INVALID;
    } else if (len > self->max_message_size) {
        st = COHORT_TOO_LARGE;
    } else {
        zmq_msg_t out;
        uint8_t *body = NULL;
        s_send_cmd(&out, COHORT_NODE_CMD_PUBLISH, 0, 0, 0, "", len, &body);
        cohort__wire__message__pack(&w.m, body);
        st = s_command(self, &out, false);
    }
    free(w.spill);
    cohort_msg_destroy(msg_p);
    return st;
}

cohort_status_t cohort_publish(cohort_t *self, cohort_msg_t **msg_p, unsigned *recipients)
{
    assert(self && msg_p && *msg_p);
    if (!recipients)
        return s_publish_na(self, msg_p);
    zframe_t *frame = s_encode(*msg_p, COHORT_MSG_PUBLISH);
    cohort_msg_destroy(msg_p);
    zsock_send(self->actor, "sf", "PUB", frame);
    zframe_destroy(&frame);
    char *code = NULL, *text = NULL, *count = NULL;
    s_await_answer(self);
    if (zsock_recv(self->actor, "sss", &code, &text, &count) != 0)
        return COHORT_ERROR;
    cohort_status_t st = code ? (cohort_status_t)atoi(code) : COHORT_ERROR;
    if (recipients)
        *recipients = count ? (unsigned)atoi(count) : 0;
    zstr_free(&code);
    zstr_free(&text);
    zstr_free(&count);
    return st;
}

static cohort_status_t s_simple(cohort_t *self, const char *verb, const char *arg)
{
    assert(self && arg);
    zsock_send(self->actor, "ss", verb, arg);
    return s_result(self, NULL, 0);
}

cohort_status_t cohort_subscribe(cohort_t *self, const char *pattern)
{
    return s_simple(self, "SUB", pattern);
}

cohort_status_t cohort_unsubscribe(cohort_t *self, const char *pattern)
{
    return s_simple(self, "UNSUB", pattern);
}

cohort_status_t cohort_serve(cohort_t *self, const char *service)
{
    return s_simple(self, "SERVE", service);
}

cohort_status_t cohort_unserve(cohort_t *self, const char *service)
{
    return s_simple(self, "UNSERVE", service);
}

/* A request's timeout as the node takes it. */
static uint32_t s_call_timeout(int timeout_ms)
{
    return (uint32_t)(timeout_ms > 0 ? timeout_ms : 5000);
}

/* Request id of *msg_p to service as a CALL command for the pipe (node.h):
 * one binary frame, no answer; the outcome is a delivery. Takes *msg_p. */
static void s_call(cohort_t *self, const char *service, cohort_msg_t **msg_p, int timeout_ms,
                   uint64_t id, zmq_msg_t *out)
{
    assert(self && service && msg_p && *msg_p);
    s_wire_t w;
    s_wire(&w, *msg_p, COHORT_MSG_REQUEST);
    size_t len = cohort__wire__message__get_packed_size(&w.m);
    uint8_t *body = NULL;
    s_send_cmd(out, COHORT_NODE_CMD_CALL, id, s_call_timeout(timeout_ms), 0, service, len, &body);
    cohort__wire__message__pack(&w.m, body);
    free(w.spill);
    cohort_msg_destroy(msg_p);
}

/* The same run by this thread, which holds the node: the node reads the
 * message as it is, nothing is encoded for it. Takes *msg_p. */
static void s_call_held(cohort_t *self, const char *service, cohort_msg_t **msg_p, int timeout_ms,
                        uint64_t id)
{
    s_wire_t w;
    s_wire(&w, *msg_p, COHORT_MSG_REQUEST);
    cohort_node_call(self->baton, id, service, &w.m, s_call_timeout(timeout_ms), self->piped);
    self->piped = false;
    free(w.spill);
    cohort_msg_destroy(msg_p);
}

cohort_status_t cohort_request_async(cohort_t *self, const char *service, cohort_msg_t **msg_p,
                                     int timeout_ms, uint64_t *request_id)
{
    assert(self && service && msg_p && *msg_p);
    uint64_t id = ++self->next_request_id;
    cohort_status_t st = COHORT_OK;
    if (cohort_node_take(self->baton, self->actor, false) == COHORT_NODE_HELD) {
        s_call_held(self, service, msg_p, timeout_ms, id);
        cohort_node_give(self->baton);
    } else {
        zmq_msg_t out;
        s_call(self, service, msg_p, timeout_ms, id, &out);
        st = s_command(self, &out, false);
    }
    if (st == COHORT_OK && request_id)
        *request_id = id;
    return st;
}

static char *s_part_str(zmq_msg_t *part)
{
    size_t n = zmq_msg_size(part);
    char *text = cohort_malloc(n + 1);
    memcpy(text, zmq_msg_data(part), n);
    text[n] = '\0';
    return text;
}

/* One inbox message (node.h: 'D' sender NUL msg, or "E" type node reason,
 * n parts) as a message; NULL for one that does not decode. counted: it
 * came through the inbox, whose bytes the node counted. *is_data: it was a
 * delivery. */
static cohort_msg_t *s_parse(cohort_t *self, zmq_msg_t *part, size_t n, bool counted,
                             bool *is_data_p)
{
    cohort_msg_t *msg = NULL;
    const char *type = zmq_msg_data(&part[0]);
    size_t size = zmq_msg_size(&part[0]);
    const char *nul = size > 1 ? memchr(type + 1, 0, size - 1) : NULL;
    bool is_data = n == 1 && size > 1 && type[0] == 'D';
    *is_data_p = is_data;
    if (is_data && counted)
        atomic_fetch_sub(&self->inbox_bytes, size);
    if (is_data && nul) {
        const uint8_t *body = (const uint8_t *)nul + 1;
        msg = s_decode(&self->arena, type + 1, body, size - (size_t)(body - (const uint8_t *)type));
    } else if (size == 1 && type[0] == 'E' && n >= 4) {
        char *ev = s_part_str(&part[1]), *node = s_part_str(&part[2]),
             *reason = s_part_str(&part[3]);
        msg = s_msg_alloc(ev, node, reason, NULL, 0);
        msg->kind = COHORT_MSG_EVENT;
        free(ev);
        free(node);
        free(reason);
    }
    return msg;
}

/* Reads one delivery from the inbox, waiting up to timeout_ms. A delivery
 * that does not decode is skipped, not returned as NULL ("nothing came"):
 * the node re-encodes what a peer sent, and protobuf-c accepts encodings it
 * does not read back (a field numbered 0 with a non-canonical tag). */
static cohort_msg_t *s_read_inbox(cohort_t *self, int timeout_ms)
{
    void *inbox = zsock_resolve(self->inbox);
    for (;;) {
        if (self->rcvtimeo != timeout_ms) {
            zsock_set_rcvtimeo(self->inbox, timeout_ms);
            self->rcvtimeo = timeout_ms;
        }
        /* the parts of one inbox message; any beyond four are dropped */
        zmq_msg_t part[4];
        size_t n = 0;
        bool more = true;
        while (more) {
            zmq_msg_t *into = &part[n < 4 ? n : 3];
            if (n >= 4)
                zmq_msg_close(into);
            zmq_msg_init(into);
            if (zmq_msg_recv(into, inbox, 0) < 0) {
                zmq_msg_close(into);
                break; /* nothing came in time (or interrupted) */
            }
            more = zmq_msg_more(into);
            if (n < 4)
                n++;
        }
        if (n == 0)
            return NULL;
        atomic_fetch_sub(&self->inbox_count, 1);
        bool is_data = false;
        cohort_msg_t *msg = s_parse(self, part, n, true, &is_data);
        for (size_t i = 0; i < n; i++)
            zmq_msg_close(&part[i]);
        /* no recursion: a peer may have sent any number of undecodable
         * deliveries */
        if (msg || !is_data)
            return msg;
    }
}

/* The next message the node handed this thread, else one from the inbox,
 * waiting up to timeout_ms (s_read_inbox). */
static cohort_msg_t *s_next_queued(cohort_t *self, int timeout_ms)
{
    cohort_msg_t *msg = s_handed_take(self);
    return msg ? msg : s_read_inbox(self, timeout_ms);
}

/* s_next_queued(self, 0) that does not ask the socket when the node's
 * count says it is empty (no system call). Not for cohort_recv(0): a
 * cohort_fd user's descriptor fires again only after a read found the
 * socket empty (zmq_getsockopt(3), ZMQ_FD). */
static cohort_msg_t *s_poll_inbox(cohort_t *self)
{
    cohort_msg_t *msg = s_handed_take(self);
    if (msg)
        return msg;
    return atomic_load(&self->inbox_count) > 0 ? s_read_inbox(self, 0) : NULL;
}

/* The next message while this thread holds the node (node.h take): from
 * the inbox, else running the node until one comes (straight to us when
 * the inbox is empty) or timeout_ms passed. NULL: nothing yet; *how says
 * why the run ended (a LEAD code; STOPPED: the node is no longer held). */
static cohort_msg_t *s_next_held(cohort_t *self, int timeout_ms, int *how)
{
    *how = COHORT_NODE_LEAD_NEWS;
    cohort_msg_t *msg = s_poll_inbox(self);
    if (msg)
        return msg;
    cohort_node_slot_t slot = {.make = s_slot_make, .ctx = self};
    zmq_msg_init(&slot.frame);
    *how = cohort_node_run(self->baton, timeout_ms, &slot);
    if (zmq_msg_size(&slot.frame)) {
        /* it came after the ones made, if any */
        bool is_data = false;
        cohort_msg_t *last = s_parse(self, &slot.frame, 1, false, &is_data);
        if (last)
            s_handed_put(self, last);
    }
    zmq_msg_close(&slot.frame);
    return s_poll_inbox(self);
}

cohort_status_t cohort_request(cohort_t *self, const char *service, cohort_msg_t **msg_p,
                               int timeout_ms, cohort_msg_t **reply)
{
    assert(self && service && msg_p && *msg_p);
    uint64_t id = ++self->next_request_id;
    *reply = NULL;
    /* The node always answers: a reply, or NO_RESPONDERS / TIMEOUT. Until
     * then this thread runs it. */
    bool held = cohort_node_take(self->baton, self->actor, true) == COHORT_NODE_HELD;
    if (held) {
        s_call_held(self, service, msg_p, timeout_ms, id);
    } else {
        zmq_msg_t out;
        s_call(self, service, msg_p, timeout_ms, id, &out);
        if (zmq_msg_send(&out, zsock_resolve(self->actor), 0) < 0) {
            zmq_msg_close(&out);
            return COHORT_ERROR;
        }
    }
    for (;;) {
        int how = COHORT_NODE_LEAD_NEWS;
        cohort_msg_t *msg = held ? s_next_held(self, -1, &how) : s_next_queued(self, -1);
        if (how == COHORT_NODE_LEAD_STOPPED)
            held = false;
        if (!msg && held && how != COHORT_NODE_LEAD_SIGNAL)
            continue;
        if (held)
            cohort_node_give(self->baton);
        held = false;
        if (!msg) {
            if (how == COHORT_NODE_LEAD_STOPPED)
                continue;        /* wait on the inbox */
            return COHORT_ERROR; /* interrupted */
        }
        if (msg->kind == COHORT_MSG_REPLY && msg->request_id == id) {
            *reply = msg;
            return msg->status;
        }
        zlist_append(self->parked, msg);
        held = cohort_node_take(self->baton, self->actor, true) == COHORT_NODE_HELD;
    }
}

cohort_status_t cohort_reply(cohort_t *self, const cohort_msg_t *request, cohort_msg_t **reply_p)
{
    assert(self && request && reply_p && *reply_p);
    /* A reply is a unicast of kind REPLY: on credit it waits for nothing
     * (the node sees to one to itself, node.c). */
    if (!request->sender) {
        cohort_msg_destroy(reply_p);
        return COHORT_INVALID;
    }
    return s_send(self, request->sender, reply_p, 0, COHORT_MSG_REPLY, request->request_id);
}

cohort_msg_t *cohort_recv(cohort_t *self, int timeout_ms)
{
    cohort_msg_t *msg = zlist_pop(self->parked);
    if (msg || timeout_ms == 0)
        return msg ? msg : s_next_queued(self, 0);
    /* run the node until something comes or the time is up */
    int64_t deadline = timeout_ms > 0 ? zclock_mono() + timeout_ms : -1;
    for (;;) {
        int left = deadline < 0 ? -1 : (int)(deadline - zclock_mono());
        if (deadline >= 0 && left < 0)
            left = 0;
        if (cohort_node_take(self->baton, self->actor, true) != COHORT_NODE_HELD)
            return s_next_queued(self, left); /* the node stopped */
        int how = COHORT_NODE_LEAD_NEWS;
        msg = s_next_held(self, left, &how);
        if (how != COHORT_NODE_LEAD_STOPPED)
            cohort_node_give(self->baton);
        if (msg || how == COHORT_NODE_LEAD_SIGNAL)
            return msg;
        if (how == COHORT_NODE_LEAD_STOPPED)
            return s_next_queued(self, left);
        if (deadline >= 0 && zclock_mono() >= deadline)
            return NULL;
    }
}

int cohort_fd(cohort_t *self)
{
    return zsock_fd(self->inbox);
}

cohort_status_t cohort_roster_push(cohort_t *self, cohort_roster_source_t source,
                                   const void *roster, size_t len, const void *sig, size_t sig_len,
                                   cohort_roster_result_t *result)
{
    assert(self && (roster || !len) && (sig || !sig_len));
    zframe_t *r = zframe_new(roster, len), *s = zframe_new(sig, sig_len);
    zsock_send(self->actor, "ssff", "ROSTER", source == COHORT_ROSTER_FILE ? "file" : "push", r, s);
    zframe_destroy(&r);
    zframe_destroy(&s);
    char *code = NULL, *text = NULL, *reason = NULL, *serial = NULL;
    cohort_status_t st = COHORT_ERROR;
    s_await_answer(self);
    if (zsock_recv(self->actor, "ssss", &code, &text, &reason, &serial) == 0 && code)
        st = (cohort_status_t)atoi(code);
    if (result) {
        result->serial = serial ? strtoull(serial, NULL, 10) : 0;
        snprintf(result->reason, sizeof result->reason, "%s", reason ? reason : "");
        snprintf(result->error, sizeof result->error, "%s",
                 text ? text : "the node did not answer");
    }
    zstr_free(&code);
    zstr_free(&text);
    zstr_free(&reason);
    zstr_free(&serial);
    return st;
}

cohort_status_t cohort_reload(cohort_t *self, const char *config_path,
                              cohort_reload_result_t *result)
{
    assert(self && config_path);
    zsock_send(self->actor, "ss", "RELOAD", config_path);
    char *code = NULL, *text = NULL, *applied = NULL, *restart = NULL;
    cohort_status_t st = COHORT_ERROR;
    s_await_answer(self);
    if (zsock_recv(self->actor, "ssss", &code, &text, &applied, &restart) == 0 && code)
        st = (cohort_status_t)atoi(code);
    if (result) {
        snprintf(result->applied, sizeof result->applied, "%s", applied ? applied : "");
        snprintf(result->restart_needed, sizeof result->restart_needed, "%s",
                 restart ? restart : "");
        snprintf(result->error, sizeof result->error, "%s",
                 code ? (text ? text : "") : "the node did not answer");
    }
    zstr_free(&code);
    zstr_free(&text);
    zstr_free(&applied);
    zstr_free(&restart);
    return st;
}

cohort_status_t cohort_info(cohort_t *self, const char *what, uint8_t **buf, size_t *len)
{
    zsock_send(self->actor, "s",
               !strcmp(what, "peers")     ? "PEERS"
               : !strcmp(what, "members") ? "MEMBERS"
                                          : "STATUS");
    char *code = NULL, *text = NULL;
    zframe_t *frame = NULL;
    s_await_answer(self);
    if (zsock_recv(self->actor, "ssf", &code, &text, &frame) != 0 || !frame) {
        zstr_free(&code);
        zstr_free(&text);
        return COHORT_ERROR;
    }
    *len = zframe_size(frame);
    *buf = cohort_malloc(*len);
    memcpy(*buf, zframe_data(frame), *len);
    zframe_destroy(&frame);
    zstr_free(&code);
    zstr_free(&text);
    return COHORT_OK;
}
