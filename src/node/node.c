/*
 * node: the node actor: overlay sockets, admission, sessions and messaging.
 * See node.h for the model and the pipe protocol.
 */
#include "node/node.h"
#include "api.pb-c.h"
#include "config/config.h"
#include "msg/subject.h"
#include "node/identity.h"
#include "node/node_impl.h"
#include "overlay/session.h"
#include "overlay/zap.h"
#include "util/log.h"
#include "util/mem.h"
#include "wire/wire.h"

#include <assert.h>
#include <inttypes.h>
#include <openssl/crypto.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zmq.h>

/* ---- string sets (services, patterns) ---- */

static bool s_set_has(char **v, size_t n, const char *s)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(v[i], s))
            return true;
    return false;
}

static bool s_set_add(char ***v, size_t *n, const char *s)
{
    if (s_set_has(*v, *n, s))
        return false;
    *v = cohort_realloc(*v, (*n + 1) * sizeof **v);
    (*v)[(*n)++] = cohort_strdup(s);
    return true;
}

static bool s_set_del(char **v, size_t *n, const char *s)
{
    for (size_t i = 0; i < *n; i++)
        if (!strcmp(v[i], s)) {
            free(v[i]);
            v[i] = v[--*n];
            return true;
        }
    return false;
}

static void s_set_free(char ***v, size_t *n)
{
    for (size_t i = 0; i < *n; i++)
        free((*v)[i]);
    free(*v);
    *v = NULL;
    *n = 0;
}

static void s_release_frame(void *holder);

/* ---- inbox (to the front) ---- */

/* The inbox never blocks the actor: when the application does not read,
 * deliveries beyond the high-water mark are dropped and counted. */
void node_event(node_t *self, const char *type, const char *node, const char *reason)
{
    COHORT_LOG(COHORT_LOG_INFO, "%s node=%s reason=%s", type, node, reason);
    self->front_slot = NULL; /* deliveries after it go after it */
    node_inbox_counted(self, 1);
    if (zsock_send(self->inbox, "ssss", "E", type, node, reason) != 0) {
        node_inbox_counted(self, -1);
        self->counters.delivery_dropped++;
    }
    node_touched(self, zsock_resolve(self->inbox));
}

/* A delivery is one frame, 'D' sender NUL message: one send per message
 * (node.h). The inbox never blocks; a peer's Data that does not fit waits
 * in that peer's queue (inbox.c), and one refused even there is counted
 * and flagged so that a reliable Data can be taken back. */
static void s_deliver_frame(node_t *self, zmq_msg_t *frame)
{
    self->delivery_failed = false;
    bool taken = self->delivering ? node_inbox_deliver(self, self->delivering, frame)
                                  : node_inbox_send(self, frame) == 0;
    if (!taken) {
        self->counters.delivery_dropped++;
        self->delivery_failed = true; /* a reliable Data takes it back */
        zmq_msg_close(frame);
    }
}

/* Initialises frame for a message of len bytes from sender; returns where
 * the message goes. */
static uint8_t *s_delivery_init(zmq_msg_t *frame, const char *sender, size_t len)
{
    size_t sl = strlen(sender);
    zmq_msg_init_size(frame, 1 + sl + 1 + len);
    uint8_t *d = zmq_msg_data(frame);
    d[0] = 'D';
    memcpy(d + 1, sender, sl + 1);
    return d + 1 + sl + 1;
}

/* msg as it came (raw, len bytes: what msg was decoded from), or
 * re-encoded when raw is NULL (it was changed). */
static void s_deliver(node_t *self, const char *sender, const node_msg_t *msg, const uint8_t *raw,
                      size_t len)
{
    /* the front waits for it and nothing is before it: as it is (baton.c,
     * the conditions of inbox.c's slot) */
    cohort_node_slot_t *slot = self->front_slot;
    size_t bytes = msg ? msg->payload.len : 0;
    if (msg && slot && slot->make && !self->rxq_total && node_inbox_empty(self) &&
        (slot->made == 0 ||
         (slot->made < S_HANDED_MAX && slot->bytes + bytes <= S_HANDED_MAX_BYTES)) &&
        slot->make(slot->ctx, sender, msg)) {
        slot->made++; /* the slot stays: the frame's later ones go the same way */
        slot->bytes += bytes;
        self->front_news = true;
        self->front_handed = true;
        self->delivery_failed = false;
        self->counters.handed_to_caller++;
        return;
    }
    zmq_msg_t frame;
    if (raw) {
        memcpy(s_delivery_init(&frame, sender, len), raw, len);
    } else {
        size_t n = cohort__wire__message__get_packed_size(msg);
        cohort__wire__message__pack(msg, s_delivery_init(&frame, sender, n));
    }
    s_deliver_frame(self, &frame);
}

/* ---- transmitting ---- */

static int s_on_ack_timer(node_loop_t *loop, int timer_id, void *arg);

static void s_ack_sent(node_peer_t *p)
{
    cohort_session_ack_sent(p->session);
    p->ack_owed_msgs = 0;
    p->ack_owed_bytes = 0;
    p->ack_urgent = false;
}

int node_transmit_env(node_t *self, node_peer_t *p, node_env_t *env)
{
    /* Member news rides on control envelopes (probes, acks, hellos); data
     * frames stay lean, and SWIM's own gossip covers a busy link. */
    members_pb_t pb;
    bool data = env->body_case == COHORT__WIRE__ENVELOPE__BODY_DATA ||
                env->body_case == COHORT__WIRE__ENVELOPE__BODY_BATCH;
    if (env->n_updates == 0 && !data)
        members_attach(self, p, env, &pb);
    /* an ack we owe p rides along (delayed acks, s_flush_acks) */
    bool ack_rides = data && !env->ack_upto && cohort_session_ack_pending(p->session);
    if (ack_rides)
        cohort_session_ack_state(p->session, &env->ack_stream, &env->ack_upto);
    zmq_msg_t msg;
    node_encode(env, &msg);
    self->tx_msgs =
        env->body_case == COHORT__WIRE__ENVELOPE__BODY_BATCH ? (uint32_t)env->batch->n_data : 1;
    int rc = links_transmit(self, p, &msg);
    self->tx_msgs = 0;
    zmq_msg_close(&msg);
    if (ack_rides) {
        env->ack_stream = env->ack_upto = 0;
        if (rc == 0)
            s_ack_sent(p);
    }
    return rc;
}

void node_encode(node_env_t *env, zmq_msg_t *out)
{
    env->version = COHORT_WIRE_VERSION;
    zmq_msg_init_size(out, cohort__wire__envelope__get_packed_size(env));
    cohort__wire__envelope__pack(env, zmq_msg_data(out));
}

/* Credit in bytes to a node (pacing starts at twice that): smaller through
 * a relay, whose two hops queue more per byte in flight, so acks would
 * otherwise come later than the resend timeout. */
static size_t s_credit_bytes(const node_peer_t *p)
{
    return p->ladder.active == COHORT_RUNG_RELAYED ? S_CREDIT_BYTES / S_RELAY_CREDIT_DIV
                                                   : S_CREDIT_BYTES;
}

/* Sends what waits in p's batch: one Data alone as it is, more as one
 * Batch frame. If no link takes it the session resends it later, as it
 * would a single Data. */
static void s_batch_flush(node_t *self, node_peer_t *p)
{
    if (p->batch_count == 0)
        return;
    node_env_t env = COHORT__WIRE__ENVELOPE__INIT;
    Cohort__Wire__Data data[S_BATCH_MAX], *ptrs[S_BATCH_MAX];
    for (size_t i = 0; i < p->batch_count; i++) {
        cohort__wire__data__init(&data[i]);
        data[i].stream = p->batch[i].stream;
        data[i].seq = p->batch[i].seq;
        data[i].body.data = (uint8_t *)(uintptr_t)p->batch[i].body; /* only read */
        data[i].body.len = p->batch[i].len;
        ptrs[i] = &data[i];
    }
    Cohort__Wire__Batch batch = COHORT__WIRE__BATCH__INIT;
    if (p->batch_count == 1) {
        env.body_case = COHORT__WIRE__ENVELOPE__BODY_DATA;
        env.data = &data[0];
    } else {
        batch.n_data = p->batch_count;
        batch.data = ptrs;
        env.body_case = COHORT__WIRE__ENVELOPE__BODY_BATCH;
        env.batch = &batch;
    }
    p->batch_count = 0;
    p->batch_bytes = 0;
    node_transmit_env(self, p, &env);
}

static void s_batch_flush_all(node_t *self)
{
    for (size_t i = 0; i < self->peer_count; i++)
        s_batch_flush(self, &self->peers[i]);
    self->batching = false;
}

void node_emit_data(void *arg, uint64_t stream, uint64_t seq, const uint8_t *body, size_t len)
{
    void **pair = arg;
    node_t *self = pair[0];
    node_peer_t *p = pair[1];
    /* While a round of front commands is read, Data waits to leave with
     * the others of that round (s_on_pipe flushes when the round ends, so
     * a lone message leaves at once). Large ones gain nothing by it.
     * Relayed ones go batched too (the Relay header says how many for the
     * relay's per-pair message quota), but not when resent: a batch more
     * than a pair's quota never passes the relay, so a resend goes one
     * message a frame and gets through at the quota's pace. */
    if (self->batching && len <= S_BATCH_ONE_MAX &&
        !(self->resending && p->ladder.active == COHORT_RUNG_RELAYED)) {
        if (p->batch_count == S_BATCH_MAX || p->batch_bytes + len > S_BATCH_BYTES)
            s_batch_flush(self, p);
        if (!p->batch)
            p->batch = cohort_calloc(S_BATCH_MAX, sizeof *p->batch);
        p->batch[p->batch_count++] = (node_batched_t){stream, seq, body, len};
        p->batch_bytes += len;
        return;
    }
    s_batch_flush(self, p); /* keeps the order */
    node_env_t env = COHORT__WIRE__ENVELOPE__INIT;
    Cohort__Wire__Data data = COHORT__WIRE__DATA__INIT;
    data.stream = stream;
    data.seq = seq;
    data.body.data = (uint8_t *)(uintptr_t)body; /* only read by the encoder */
    data.body.len = len;
    env.body_case = COHORT__WIRE__ENVELOPE__BODY_DATA;
    env.data = &data;
    node_transmit_env(self, p, &env);
}

/* Queues an application message on the peer's session and sends it now if
 * a link is up. Returns a cohort.api.Code. */
static int s_send_owned(node_t *self, node_peer_t *p, uint8_t *body, size_t len);

/* Sends an encoded message (len bytes, copied) to p in its session. */
static int s_send_bytes(node_t *self, node_peer_t *p, const uint8_t *raw, size_t len)
{
    if (len > self->cfg->max_message_size)
        return COHORT__API__CODE__TOO_LARGE;
    uint8_t *body = cohort_malloc(len ? len : 1);
    memcpy(body, raw, len);
    return s_send_owned(self, p, body, len);
}

static int s_send_msg(node_t *self, node_peer_t *p, const node_msg_t *msg)
{
    size_t len = cohort__wire__message__get_packed_size(msg);
    if (len > self->cfg->max_message_size)
        return COHORT__API__CODE__TOO_LARGE;
    uint8_t *body = cohort_malloc(len);
    cohort__wire__message__pack(msg, body);
    return s_send_owned(self, p, body, len);
}

/* Takes body (malloc'ed, len bytes). */
static int s_send_owned(node_t *self, node_peer_t *p, uint8_t *body, size_t len)
{
    /* The session keeps body until it is acknowledged, which cannot happen
     * before it is first sent: reading it through `bytes` below is safe. */
    const uint8_t *bytes = body;
    uint64_t stream = 0, seq = 0;
    if (cohort_session_send(p->session, &body, len, node_now(), &stream, &seq) < 0) {
        free(body);
        self->counters.queue_full++;
        return COHORT__API__CODE__QUEUE_FULL;
    }
    void *pair[2] = {self, p};
    node_emit_data(pair, stream, seq, bytes, len);
    return COHORT__API__CODE__OK;
}

static void s_send_hello(node_t *self, node_peer_t *p)
{
    node_env_t env = COHORT__WIRE__ENVELOPE__INIT;
    Cohort__Wire__Hello hello = COHORT__WIRE__HELLO__INIT;
    unsigned char *der = NULL;
    int der_len = i2d_X509(self->id->cert, &der);
    hello.node = self->cfg->node_name;
    hello.certificate.data = der;
    hello.certificate.len = der_len > 0 ? (size_t)der_len : 0;
    hello.roster_serial = cohort_roster_serial(self->id->roster);
    hello.n_endpoints = self->cfg->advertise_count;
    hello.endpoints = self->cfg->advertise;
    hello.epoch = self->epoch;
    env.body_case = COHORT__WIRE__ENVELOPE__BODY_HELLO;
    env.hello = &hello;
    node_transmit_env(self, p, &env);
    OPENSSL_free(der);
}

static void s_send_interest_to(node_t *self, node_peer_t *p)
{
    node_msg_t msg = COHORT__WIRE__MESSAGE__INIT;
    Cohort__Wire__Interest in = COHORT__WIRE__INTEREST__INIT;
    in.version = self->interest_version;
    in.n_services = self->service_count;
    in.services = self->services;
    in.n_patterns = self->pattern_count;
    in.patterns = self->patterns;
    msg.kind = COHORT__WIRE__MESSAGE__KIND__INTEREST;
    msg.interest = &in;
    /* a full window: the tick tries again once there is room (interest is
     * never lost) */
    p->interest_owed = s_send_msg(self, p, &msg) == COHORT__API__CODE__QUEUE_FULL;
}

static void s_interest_changed(node_t *self)
{
    self->interest_version++;
    for (size_t i = 0; i < self->peer_count; i++)
        s_send_interest_to(self, &self->peers[i]);
}

/* ---- send credit (node.h) ---- */

static void s_deferred_answer(node_t *self, bool force);

/* Takes back all send credit: the limits it was granted under may have
 * changed, or its member gone. */
static void s_credit_revoke(node_t *self)
{
    self->credit_epoch++;
    atomic_store(self->credit_epoch_shared, self->credit_epoch);
    for (size_t i = 0; i < self->peer_count; i++)
        cohort_session_unreserve(self->peers[i].session, SIZE_MAX, SIZE_MAX);
}

/* ---- peers ---- */

node_peer_t *node_peer_by_name(node_t *self, const char *name)
{
    for (size_t i = 0; i < self->peer_count; i++)
        if (!strcmp(self->peers[i].name, name))
            return &self->peers[i];
    return NULL;
}

static int s_dealer_open(node_t *self, node_peer_t *p, size_t index, cohort_err_t *err)
{
    p->dealer = zmq_socket(self->ctx, ZMQ_DEALER);
    int one = 1, zero = 0, hwm = 10000;
    int maxmsg = (int)(self->cfg->max_message_size + S_FRAME_SLACK);
    zmq_setsockopt(p->dealer, ZMQ_LINGER, &zero, sizeof zero);
    /* IMMEDIATE: sends fail fast while no handshake completed; the session
     * keeps the message and resends once the link is up. */
    zmq_setsockopt(p->dealer, ZMQ_IMMEDIATE, &one, sizeof one);
    zmq_setsockopt(p->dealer, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(p->dealer, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg);
    zmq_setsockopt(p->dealer, ZMQ_CURVE_SERVERKEY, p->key, COHORT_KEY_LEN);
    zmq_setsockopt(p->dealer, ZMQ_CURVE_PUBLICKEY, self->public_key, COHORT_KEY_LEN);
    zmq_setsockopt(p->dealer, ZMQ_CURVE_SECRETKEY, self->secret_key, COHORT_KEY_LEN);
    int ivl = 250, ivl_max = 2000;
    zmq_setsockopt(p->dealer, ZMQ_RECONNECT_IVL, &ivl, sizeof ivl);
    zmq_setsockopt(p->dealer, ZMQ_RECONNECT_IVL_MAX, &ivl_max, sizeof ivl_max);
    char ep[96];
    /* Numbered per dealer, not by place: peers move in the array when a
     * member is removed, and a new dealer must not meet an old endpoint. */
    snprintf(ep, sizeof ep, "inproc://cohort-mon-%zu-%" PRIu64, index, ++self->dealer_seq);
    if (zmq_socket_monitor(p->dealer, ep, ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_DISCONNECTED) !=
        0)
        return cohort_err_set(err, "peer %s: monitor: %s", p->name, zmq_strerror(zmq_errno()));
    p->monitor = zmq_socket(self->ctx, ZMQ_PAIR);
    zmq_setsockopt(p->monitor, ZMQ_LINGER, &zero, sizeof zero);
    zmq_connect(p->monitor, ep);
    /* Bound every attempt ourselves: a dropped SYN would otherwise wait out
     * TCP's retries for minutes. */
    int connect_timeout = (int)self->cfg->direct_timeout_ms;
    zmq_setsockopt(p->dealer, ZMQ_CONNECT_TIMEOUT, &connect_timeout, sizeof connect_timeout);
    if (*self->cfg->socks5_proxy)
        zmq_setsockopt(p->dealer, ZMQ_SOCKS_PROXY, self->cfg->socks5_proxy,
                       strlen(self->cfg->socks5_proxy));
    for (size_t e = 0; e < p->endpoint_count; e++) {
        char dial[160];
        links_dial_endpoint(self, p, p->endpoints[e], dial, sizeof dial);
        if (zmq_connect(p->dealer, dial) != 0)
            COHORT_LOG(COHORT_LOG_WARN, "connect.failed peer=%s endpoint=%s error=\"%s\"", p->name,
                       dial, zmq_strerror(zmq_errno()));
    }
    return 0;
}

static void s_peer_fini(node_peer_t *p)
{
    links_peer_fini(p);
    if (p->dealer) {
        zmq_socket_monitor(p->dealer, NULL, 0);
        zmq_close(p->dealer);
    }
    if (p->monitor)
        zmq_close(p->monitor);
    free(p->name);
    free(p->site);
    for (size_t e = 0; e < p->endpoint_count; e++)
        free(p->endpoints[e]);
    cohort_session_destroy(&p->session);
    free(p->batch);
    node_inbox_peer_free(p);
    s_set_free(&p->services, &p->service_count);
    s_set_free(&p->patterns, &p->pattern_count);
}

static bool s_peer_reachable(const node_peer_t *p)
{
    return p->up &&
           (p->ladder.active != COHORT_RUNG_NONE || (p->dealer && p->dealer_up) || p->route_len);
}

static int s_on_monitor(node_loop_t *loop, zmq_pollitem_t *item, void *arg);
static int s_on_dealer(node_loop_t *loop, zmq_pollitem_t *item, void *arg);
static void s_fail_call(node_t *self, uint64_t id, const char *service, int code, const char *why);
static void s_pending_remove(node_t *self, size_t i);

/* Relay quotas are indexed by place in peers and sized by peer_count when
 * made: when peers come or go they start over (a fresh one-second window). */
static void s_quota_reset(node_t *self)
{
    for (size_t i = 0; i < self->peer_count; i++) {
        free(self->peers[i].quota);
        self->peers[i].quota = NULL;
    }
}

static void s_dealer_start(node_t *self, node_peer_t *p)
{
    cohort_err_t err;
    if (s_dealer_open(self, p, (size_t)(p - self->peers), &err) < 0) {
        COHORT_LOG(COHORT_LOG_WARN, "dealer.failed peer=%s error=\"%s\"", p->name,
                   cohort_err_text(&err));
        return;
    }
    node_add_socket(self, p->monitor, s_on_monitor);
    node_add_reader(self, p->dealer, s_on_dealer);
}

static void s_dealer_stop(node_t *self, node_peer_t *p)
{
    node_unwatch_socket(self, p->dealer);
    node_unwatch_socket(self, p->monitor);
    if (p->dealer) {
        zmq_socket_monitor(p->dealer, NULL, 0);
        zmq_close(p->dealer);
    }
    if (p->monitor)
        zmq_close(p->monitor);
    p->dealer = p->monitor = NULL;
    p->dealer_up = false;
}

node_peer_t *node_peer_add(node_t *self, const cohort_member_t *m, cohort_err_t *err)
{
    if (self->peer_count >= self->peer_cap) {
        cohort_err_set(err, "member %s: no room for more than %zu peers", m->name, self->peer_cap);
        return NULL;
    }
    node_peer_t *p = &self->peers[self->peer_count];
    memset(p, 0, sizeof *p);
    p->name = cohort_strdup(m->name);
    p->site = cohort_strdup(m->site);
    p->roles = m->roles;
    memcpy(p->fp_hex, m->info.fingerprint_hex, sizeof p->fp_hex);
    memcpy(p->key, m->info.public_key, COHORT_KEY_LEN);
    p->rtt_us = -1;
    p->session = cohort_session_new(self->epoch, self->cfg->send_queue,
                                    (size_t)self->cfg->send_queue * S_SESSION_BYTES_PER_MSG,
                                    S_RTO_MIN_MS, S_RTO_MAX_MS);
    cohort_session_set_release(p->session, s_release_frame);
    for (size_t e = 0; e < m->endpoint_count && e < COHORT_ROSTER_MAX_ENDPOINTS; e++)
        p->endpoints[p->endpoint_count++] = cohort_strdup(m->endpoints[e]);
    for (size_t k = 0; k < NODE_ROSTER_INBOUND; k++)
        p->rs.inbound[k].fd = -1;
    p->rs.not_before = m->not_before;
    p->rs.not_after = m->not_after;
    memcpy(p->rs.fp, m->info.fingerprint, sizeof p->rs.fp);
    s_quota_reset(self);
    self->peer_count++;
    links_peer_init(self, p);
    members_peer_added(self, p);
    if (p->endpoint_count)
        s_dealer_start(self, p);
    if (self->interest_version)
        s_send_interest_to(self, p);
    return p;
}

void node_peer_update(node_t *self, node_peer_t *p, const cohort_member_t *m)
{
    free(p->site);
    p->site = cohort_strdup(m->site);
    memcpy(p->fp_hex, m->info.fingerprint_hex, sizeof p->fp_hex);
    memcpy(p->rs.fp, m->info.fingerprint, sizeof p->rs.fp);
    p->rs.not_before = m->not_before;
    p->rs.not_after = m->not_after;
    /* Endpoints a member announced in its hello stay while the roster
     * names none; the roster's own replace them. Rendezvous nodes are
     * dialled from the punch port, so that role changes what is dialled. */
    bool redial = ((p->roles ^ m->roles) & COHORT_ROLE_RENDEZVOUS) && p->endpoint_count;
    p->roles = m->roles;
    if (m->endpoint_count) {
        bool same = m->endpoint_count == p->endpoint_count;
        for (size_t e = 0; same && e < m->endpoint_count; e++)
            same = !strcmp(m->endpoints[e], p->endpoints[e]);
        if (!same) {
            for (size_t e = 0; e < p->endpoint_count; e++)
                free(p->endpoints[e]);
            p->endpoint_count = 0;
            for (size_t e = 0; e < m->endpoint_count && e < COHORT_ROSTER_MAX_ENDPOINTS; e++)
                p->endpoints[p->endpoint_count++] = cohort_strdup(m->endpoints[e]);
            p->learned = false; /* the roster's own */
            redial = true;
        }
    }
    if (!redial)
        return;
    COHORT_LOG(COHORT_LOG_INFO, "peer.redial node=%s endpoints=%zu", p->name, p->endpoint_count);
    s_dealer_stop(self, p);
    s_dealer_start(self, p);
}

void node_peer_remove(node_t *self, node_peer_t *p, const char *why)
{
    size_t index = (size_t)(p - self->peers);
    assert(index < self->peer_count);
    char text[160];
    snprintf(text, sizeof text, "'%s' is no longer admitted (%s)", p->name, why);
    for (size_t i = 0; i < self->pending_count;) {
        if (self->pending[i].node && !strcmp(self->pending[i].node, p->name)) {
            s_fail_call(self, self->pending[i].id, self->pending[i].service,
                        COHORT__API__CODE__NO_RESPONDERS, text);
            s_pending_remove(self, i);
        } else {
            i++;
        }
    }
    members_peer_removed(self, p->name);
    node_inbox_peer_drop(self, p);
    s_deferred_answer(self, true); /* before peers move; its credit goes next */
    s_credit_revoke(self);
    s_dealer_stop(self, p);
    node_unwatch_socket(self, p->punch);
    node_unwatch_socket(self, p->punch_mon);
    s_peer_fini(p);
    for (size_t i = 0; i < self->peer_count; i++) {
        node_peer_t *q = &self->peers[i];
        if (q->via == p) {
            q->via = NULL;
            cohort_ladder_lost(&q->ladder, COHORT_RUNG_RELAYED);
        } else if (q->via > p) {
            q->via--; /* it moves down one place below */
        }
    }
    memmove(p, p + 1, (self->peer_count - index - 1) * sizeof *p);
    self->peer_count--;
    memset(&self->peers[self->peer_count], 0, sizeof *p);
    s_quota_reset(self);
}

/* ---- messaging ---- */

static void s_fail_call(node_t *self, uint64_t id, const char *service, int code, const char *why)
{
    node_msg_t reply = COHORT__WIRE__MESSAGE__INIT;
    reply.kind = COHORT__WIRE__MESSAGE__KIND__REPLY;
    reply.subject = node_str(service);
    reply.request_id = id;
    reply.status = (uint32_t)code;
    reply.error = node_str(why);
    s_deliver(self, self->cfg->node_name, &reply, NULL, 0);
}

static void s_pending_remove(node_t *self, size_t i)
{
    free(self->pending[i].service);
    free(self->pending[i].node);
    self->pending[i] = self->pending[--self->pending_count];
}

/* Picks a provider: site-local first (this node counts as local), then any;
 * round robin within the tier. Returns NULL for this node itself via
 * *local. */
static bool s_pick_provider(node_t *self, const char *service, node_peer_t **out, bool *local)
{
    const char *my_site = self->id->self_member->site;
    node_peer_t *cands[2][1024];
    size_t counts[2] = {0, 0};
    bool self_serves = s_set_has(self->services, self->service_count, service);
    for (size_t i = 0; i < self->peer_count; i++) {
        node_peer_t *p = &self->peers[i];
        if (!s_peer_reachable(p) || !s_set_has(p->services, p->service_count, service))
            continue;
        int tier = strcmp(p->site, my_site) == 0 ? 0 : 1;
        if (counts[tier] < 1024)
            cands[tier][counts[tier]++] = p;
    }
    uintptr_t rr = (uintptr_t)zhashx_lookup(self->rr, service);
    zhashx_update(self->rr, service, (void *)(rr + 1));
    /* tier 0: this node (if serving) plus same-site peers */
    size_t n0 = counts[0] + (self_serves ? 1 : 0);
    if (n0) {
        size_t k = rr % n0;
        *local = self_serves && k == counts[0];
        *out = *local ? NULL : cands[0][k];
        return true;
    }
    if (counts[1]) {
        *local = false;
        *out = cands[1][rr % counts[1]];
        return true;
    }
    return false;
}

/* msg was decoded from raw (len bytes), which goes to the application as
 * it is unless something in it changes. */
static void s_handle_message(node_t *self, node_peer_t *from, node_msg_t *msg, const uint8_t *raw,
                             size_t len)
{
    switch (msg->kind) {
    case COHORT__WIRE__MESSAGE__KIND__UNICAST:
    case COHORT__WIRE__MESSAGE__KIND__PUBLISH:
        s_deliver(self, from->name, msg, raw, len);
        break;
    case COHORT__WIRE__MESSAGE__KIND__REQUEST:
        if (s_set_has(self->services, self->service_count, msg->subject)) {
            s_deliver(self, from->name, msg, raw, len);
        } else {
            /* unserved between its choice and now: tell the requester */
            node_msg_t reply = COHORT__WIRE__MESSAGE__INIT;
            reply.kind = COHORT__WIRE__MESSAGE__KIND__REPLY;
            reply.subject = msg->subject;
            reply.request_id = msg->request_id;
            reply.status = COHORT__API__CODE__NO_RESPONDERS;
            reply.error = node_str("service no longer served here");
            s_send_msg(self, from, &reply);
        }
        break;
    case COHORT__WIRE__MESSAGE__KIND__REPLY:
        for (size_t i = 0; i < self->pending_count; i++)
            if (self->pending[i].wire_id == msg->request_id) {
                msg->request_id = self->pending[i].id; /* so re-encoded */
                s_deliver(self, from->name, msg, NULL, 0);
                /* taken back (s_handle_data): it comes again */
                if (!self->delivery_failed)
                    s_pending_remove(self, i);
                return;
            }
        break; /* late reply after a timeout: dropped */
    case COHORT__WIRE__MESSAGE__KIND__INTEREST: {
        Cohort__Wire__Interest *in = msg->interest;
        if (!in || in->version <= from->interest_version || in->n_services > S_MAX_INTEREST ||
            in->n_patterns > S_MAX_INTEREST)
            break;
        s_set_free(&from->services, &from->service_count);
        s_set_free(&from->patterns, &from->pattern_count);
        for (size_t i = 0; i < in->n_services; i++)
            if (cohort_subject_valid(in->services[i]))
                s_set_add(&from->services, &from->service_count, in->services[i]);
        for (size_t i = 0; i < in->n_patterns; i++)
            if (cohort_pattern_valid(in->patterns[i]))
                s_set_add(&from->patterns, &from->pattern_count, in->patterns[i]);
        from->interest_version = in->version;
        break;
    }
    default:
        self->counters.garbage_dropped++;
    }
}

/* ---- overlay input ---- */

static int s_on_monitor(node_loop_t *loop, zmq_pollitem_t *item, void *arg);
static int s_on_dealer(node_loop_t *loop, zmq_pollitem_t *item, void *arg);

static void s_peer_set_up(node_t *self, node_peer_t *p, bool up, const char *reason)
{
    if (p->up == up)
        return;
    p->up = up;
    /* the link; whether the member is alive is the cluster's view (members.c) */
    node_event(self, up ? "link.up" : "link.down", p->name, reason);
    if (up)
        links_peer_up(self, p);
}

static void s_handle_epoch(node_t *self, node_peer_t *p, uint64_t epoch)
{
    /* Epochs are start times, so they only grow: an older one is a replay
     * (e.g. of a relayed hello) and must not pass for a restart. */
    if (epoch <= p->epoch)
        return;
    if (p->epoch != 0) {
        /* The peer restarted and lost its receive state: renumber what it
         * never acknowledged so it arrives once, in order. */
        COHORT_LOG(COHORT_LOG_INFO, "peer.restarted node=%s", p->name);
        cohort_session_peer_restarted(p->session);
        p->interest_version = 0;
        s_set_free(&p->services, &p->service_count);
        s_set_free(&p->patterns, &p->pattern_count);
    }
    bool restarted = p->epoch != 0;
    p->epoch = epoch;
    s_send_hello(self, p);
    if (restarted) {
        /* Interest travels in the session, so it reached the old
         * incarnation once; the new one must hear it again. */
        s_send_interest_to(self, p);
        void *pair[2] = {self, p};
        cohort_session_resend_all(p->session, node_now(), node_emit_data, pair);
    }
}

/* protobuf-c 1.4 keeps a field numbered 0 written with an overlong tag as
 * an unknown field, then re-encodes it in a form its own decoder refuses:
 * such a message could not be handed on, so it is garbage here. Other
 * unknown fields (newer peers) are fine. */
static bool s_has_field_zero(const ProtobufCMessage *m)
{
    for (unsigned i = 0; i < m->n_unknown_fields; i++)
        if (m->unknown_fields[i].tag == 0)
            return true;
    return false;
}

bool node_peer_learn_endpoints(node_t *self, node_peer_t *p, const char *const *endpoints, size_t n,
                               const char *source)
{
    if (n == 0)
        return false;
    /* A learned address that never completed a handshake (stale, or a
     * forged beacon naming a member's key) gives way to a new one. */
    if (p->learned && !p->learned_ok && p->dealer &&
        node_now() - p->learned_at > (int64_t)self->cfg->direct_timeout_ms && p->endpoint_count &&
        strcmp(p->endpoints[0], endpoints[0])) {
        COHORT_LOG(COHORT_LOG_INFO, "peer.redial node=%s stale=%s source=%s", p->name,
                   p->endpoints[0], source);
        s_dealer_stop(self, p);
        for (size_t i = 0; i < p->endpoint_count; i++) {
            free(p->endpoints[i]);
            p->endpoints[i] = NULL;
        }
        p->endpoint_count = 0;
    }
    if (p->endpoint_count || p->dealer)
        return false;
    for (size_t i = 0; i < n && p->endpoint_count < COHORT_ROSTER_MAX_ENDPOINTS; i++)
        if (cohort_endpoint_valid(endpoints[i]))
            p->endpoints[p->endpoint_count++] = cohort_strdup(endpoints[i]);
    if (!p->endpoint_count)
        return false;
    cohort_err_t err;
    if (s_dealer_open(self, p, (size_t)(p - self->peers), &err) < 0) {
        COHORT_LOG(COHORT_LOG_WARN, "dealer.failed peer=%s error=\"%s\"", p->name,
                   cohort_err_text(&err));
        return false;
    }
    node_add_socket(self, p->monitor, s_on_monitor);
    node_add_reader(self, p->dealer, s_on_dealer);
    p->learned = true;
    p->learned_ok = false;
    p->learned_at = node_now();
    COHORT_LOG(COHORT_LOG_INFO, "peer.dial node=%s endpoint=%s source=%s", p->name, p->endpoints[0],
               source);
    return true;
}

static void s_handle_data(node_t *self, node_peer_t *p, const Cohort__Wire__Data *d)
{
    if (d->seq != 0) {
        cohort_session_verdict_t rx = cohort_session_receive(p->session, d->stream, d->seq);
        if (rx == COHORT_SESSION_DUPLICATE) {
            self->counters.duplicates_dropped++;
            p->ack_urgent = true;
        }
        if (rx != COHORT_SESSION_DELIVER)
            return;
        p->ack_owed_msgs++;
        p->ack_owed_bytes += d->body.len;
        if (!self->ack_timer && self->loop)
            self->ack_timer = node_loop_timer(self->loop, S_ACK_DELAY_MS, 1, s_on_ack_timer, self);
    }
    node_msg_t *msg = cohort__wire__message__unpack(&self->arena.pb, d->body.len, d->body.data);
    if (!msg || s_has_field_zero(&msg->base)) {
        self->counters.garbage_dropped++;
        cohort_arena_free(&self->arena, msg ? &msg->base : NULL);
        return;
    }
    self->delivery_failed = false;
    self->delivering = p;
    s_handle_message(self, p, msg, d->body.data, d->body.len);
    self->delivering = NULL;
    cohort_arena_free(&self->arena, &msg->base);
    if (self->delivery_failed && d->seq != 0) {
        /* The application is behind and p's receive queue is full: not
         * received, so not acked; the sender resends it later. Reliable
         * means never acked and lost. */
        cohort_session_unreceive(p->session, d->stream, d->seq);
        self->counters.delivery_dropped--;
        node_inbox_throttled(self, p);
    }
}

void node_handle_envelope(node_t *self, node_peer_t *p, node_env_t *env, cohort_rung_t path,
                          node_peer_t *via)
{
    int64_t now = node_now();
    p->last_seen = now;
    if (env->ack_upto)
        cohort_session_ack_at(p->session, env->ack_stream, env->ack_upto, now);
    if (members_handle(self, p, env))
        return;
    if (links_handle(self, p, env, path))
        return;
    switch (env->body_case) {
    case COHORT__WIRE__ENVELOPE__BODY_HELLO:
        if (!env->hello->node || strcmp(env->hello->node, p->name) != 0) {
            /* The handshake said who this is; a hello claiming otherwise is
             * dropped and counted, never believed. */
            self->counters.unknown_sender++;
            COHORT_LOG(COHORT_LOG_WARN, "hello.name_mismatch peer=%s claimed=%.64s", p->name,
                       env->hello->node ? env->hello->node : "");
            return;
        }
        p->hello_in = true;
        node_peer_learn_endpoints(self, p, (const char *const *)env->hello->endpoints,
                                  env->hello->n_endpoints, "hello");
        s_handle_epoch(self, p, env->hello->epoch);
        s_peer_set_up(self, p, true, "hello");
        roster_sync_peer_serial(self, p, env->hello->roster_serial);
        break;
    case COHORT__WIRE__ENVELOPE__BODY_DATA:
        s_handle_data(self, p, env->data);
        break;
    case COHORT__WIRE__ENVELOPE__BODY_BATCH:
        /* each as if it had come alone, in order */
        for (size_t i = 0; i < env->batch->n_data; i++)
            s_handle_data(self, p, env->batch->data[i]);
        break;
    case COHORT__WIRE__ENVELOPE__BODY_ACK:
        cohort_session_ack_at(p->session, env->ack->stream, env->ack->upto, now);
        break;
    case COHORT__WIRE__ENVELOPE__BODY_PING: {
        if (p->hello_in) {
            s_handle_epoch(self, p, env->ping->epoch);
            /* After an outage only the dialling side sends a hello; the
             * other one is back when its pings are. */
            s_peer_set_up(self, p, true, "ping");
        } else
            /* A peer we only reach through a relay or a punched link never
             * saw a handshake of ours complete: introduce ourselves. */
            s_send_hello(self, p);
        /* Answer on the rung the probe came on: that is what it tests. */
        node_env_t out = COHORT__WIRE__ENVELOPE__INIT;
        Cohort__Wire__Pong pong = COHORT__WIRE__PONG__INIT;
        pong.nonce = env->ping->nonce;
        pong.sent_us = env->ping->sent_us;
        pong.epoch = self->epoch;
        pong.roster_serial = cohort_roster_serial(self->id->roster);
        out.body_case = COHORT__WIRE__ENVELOPE__BODY_PONG;
        out.pong = &pong;
        members_pb_t pb;
        members_attach(self, p, &out, &pb);
        zmq_msg_t frame;
        node_encode(&out, &frame);
        links_transmit_on(self, p, path, via, &frame);
        zmq_msg_close(&frame);
        roster_sync_peer_serial(self, p, env->ping->roster_serial);
        break;
    }
    case COHORT__WIRE__ENVELOPE__BODY_PONG:
        links_probe_answered(self, p, path, env->pong->sent_us);
        roster_sync_peer_serial(self, p, env->pong->roster_serial);
        break;
    case COHORT__WIRE__ENVELOPE__BODY_ROSTER:
        roster_sync_offer(self, p, env->roster);
        break;
    case COHORT__WIRE__ENVELOPE__BODY_GOODBYE:
        p->hello_in = false;
        s_peer_set_up(self, p, false, "left");
        break;
    default:
        self->counters.garbage_dropped++;
    }
}

/* Sends the acks that are due (all of them when force): those owed for
 * S_ACK_EVERY messages or S_ACK_BYTES, or urgent; the rest wait for Data
 * to ride on (node_transmit_env) or for the ack timer, S_ACK_DELAY_MS. */
static void s_flush_acks_when(node_t *self, bool force)
{
    bool waiting = false;
    for (size_t i = 0; i < self->peer_count; i++) {
        node_peer_t *p = &self->peers[i];
        if (!cohort_session_ack_pending(p->session))
            continue;
        if (!force && !p->ack_urgent && p->ack_owed_msgs < S_ACK_EVERY &&
            p->ack_owed_bytes < S_ACK_BYTES) {
            waiting = true;
            continue;
        }
        node_env_t env = COHORT__WIRE__ENVELOPE__INIT;
        Cohort__Wire__Ack ack = COHORT__WIRE__ACK__INIT;
        cohort_session_ack_state(p->session, &ack.stream, &ack.upto);
        env.body_case = COHORT__WIRE__ENVELOPE__BODY_ACK;
        env.ack = &ack;
        if (node_transmit_env(self, p, &env) == 0)
            s_ack_sent(p);
    }
    if (waiting && !self->ack_timer && self->loop)
        self->ack_timer = node_loop_timer(self->loop, S_ACK_DELAY_MS, 1, s_on_ack_timer, self);
}

static void s_flush_acks(node_t *self)
{
    s_flush_acks_when(self, false);
}

static int s_on_ack_timer(node_loop_t *loop, int timer_id, void *arg)
{
    (void)loop;
    (void)timer_id;
    node_t *self = arg;
    self->ack_timer = 0;
    s_flush_acks_when(self, true);
    return 0;
}

/* One frame from an authenticated peer, whichever socket it came in on. */
void node_process_frame(node_t *self, node_peer_t *p, zmq_msg_t *body, cohort_rung_t path,
                        node_peer_t *via)
{
    size_t len = zmq_msg_size(body);
    self->counters.messages_in++;
    if (len > node_frame_max(self)) {
        self->counters.oversized_dropped++;
        COHORT_LOG(COHORT_LOG_WARN, "frame.oversized peer=%s bytes=%zu", p->name, len);
        return;
    }
    p->msgs_in++;
    p->bytes_in += len;
    node_env_t *env = NULL;
    cohort_err_t err;
    self->frame_depth++;
    if (cohort_wire_decode_in(&self->arena, zmq_msg_data(body), len, node_frame_max(self), &env,
                              &err) < 0) {
        self->counters.garbage_dropped++;
        COHORT_LOG(COHORT_LOG_DEBUG, "frame.dropped peer=%s error=\"%s\"", p->name,
                   cohort_err_text(&err));
    } else {
        node_handle_envelope(self, p, env, path, via);
        cohort_wire_free_in(&self->arena, &env);
    }
    /* everything decoded for this frame (and any inside it) is gone */
    if (--self->frame_depth == 0)
        cohort_arena_reset(&self->arena);
}

/* Receives one single-frame message into body (initialised here; the
 * caller closes it). We send single frames; any further frames of the same
 * message are noise, drained and counted. Returns -1 when nothing waits. */
int node_recv_one(node_t *self, void *sock, zmq_msg_t *body)
{
    zmq_msg_init(body);
    if (zmq_msg_recv(body, sock, ZMQ_DONTWAIT) < 0)
        return -1;
    if (zmq_msg_more(body)) {
        zmq_msg_t tail;
        zmq_msg_init(&tail);
        while (zmq_msg_recv(&tail, sock, ZMQ_DONTWAIT) >= 0) {
            self->counters.garbage_dropped++;
            if (!zmq_msg_more(&tail))
                break;
        }
        zmq_msg_close(&tail);
    }
    return 0;
}

static int s_on_router(node_loop_t *loop, zmq_pollitem_t *item, void *arg)
{
    (void)loop;
    (void)item;
    node_t *self = arg;
    /* Drain what is there, bounded so one busy peer cannot starve timers
     * nor hold back the acks of others: in frames, and in time, as a frame
     * may be a Batch of hundreds of messages (S_TURN_MS). */
    int64_t start = node_now();
    for (int budget = 0; budget < 1000 && !S_TURN_OVER(budget, start); budget++) {
        zmq_msg_t route, body;
        zmq_msg_init(&route);
        if (zmq_msg_recv(&route, self->router, ZMQ_DONTWAIT) < 0) {
            if (errno == EAGAIN)
                node_drained(self, self->router);
            zmq_msg_close(&route);
            break;
        }
        bool more = zmq_msg_more(&route);
        if (!more || node_recv_one(self, self->router, &body) < 0) {
            if (more) /* node_recv_one initialised body */
                zmq_msg_close(&body);
            zmq_msg_close(&route);
            continue;
        }
        /* The sender is who the ZAP handler admitted, never what it says. */
        const char *user = zmq_msg_gets(&body, "User-Id");
        node_peer_t *p = user ? node_peer_by_name(self, user) : NULL;
        if (!p) {
            self->counters.unknown_sender++;
        } else {
            if (zmq_msg_size(&route) <= S_MAX_ROUTE) {
                /* a new connection from p: direct is in progress */
                bool fresh = p->route_len != zmq_msg_size(&route) ||
                             memcmp(p->route, zmq_msg_data(&route), p->route_len) != 0;
                memcpy(p->route, zmq_msg_data(&route), zmq_msg_size(&route));
                p->route_len = zmq_msg_size(&route);
                if (fresh)
                    links_direct_progress(self, p);
            }
            links_observe(self, p, &body);
            roster_sync_note_inbound(self, p, &body);
            node_process_frame(self, p, &body, COHORT_RUNG_DIRECT, NULL);
        }
        zmq_msg_close(&route);
        zmq_msg_close(&body);
        if (self->front_handed)
            return 0; /* the rest after the front's next send (zpoll.c) */
    }
    s_flush_acks(self);
    s_deferred_answer(self, false);
    return 0;
}

/* Frames a peer sends back over the link we dialled: the peer is whoever
 * holds the server key we pinned for that link. */
static int s_on_dealer(node_loop_t *loop, zmq_pollitem_t *item, void *arg)
{
    (void)loop;
    node_t *self = arg;
    node_peer_t *p = NULL;
    for (size_t i = 0; i < self->peer_count && !p; i++)
        if (self->peers[i].dealer == item->socket)
            p = &self->peers[i];
    if (!p)
        return 0;
    int64_t start = node_now();
    for (int budget = 0; budget < 1000 && !S_TURN_OVER(budget, start); budget++) {
        zmq_msg_t body;
        if (node_recv_one(self, p->dealer, &body) < 0) {
            if (errno == EAGAIN)
                node_drained(self, p->dealer);
            zmq_msg_close(&body);
            break;
        }
        p->dealer_heard = start;
        node_process_frame(self, p, &body, COHORT_RUNG_DIRECT, NULL);
        zmq_msg_close(&body);
        if (self->front_handed)
            return 0;
    }
    s_flush_acks(self);
    s_deferred_answer(self, false);
    return 0;
}

/* Monitor events carry a 6-byte header (event id, value) and an endpoint. */
int node_read_monitor(void *sock, uint16_t *event, uint32_t *value)
{
    zmq_msg_t head, addr;
    zmq_msg_init(&head);
    if (zmq_msg_recv(&head, sock, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&head);
        return -1;
    }
    memcpy(event, zmq_msg_data(&head), sizeof *event);
    if (value)
        memcpy(value, (uint8_t *)zmq_msg_data(&head) + 2, sizeof *value);
    zmq_msg_close(&head);
    zmq_msg_init(&addr);
    zmq_msg_recv(&addr, sock, ZMQ_DONTWAIT);
    zmq_msg_close(&addr);
    return 0;
}

static int s_on_monitor(node_loop_t *loop, zmq_pollitem_t *item, void *arg)
{
    (void)loop;
    node_t *self = arg;
    for (size_t i = 0; i < self->peer_count; i++) {
        node_peer_t *p = &self->peers[i];
        if (p->monitor != item->socket)
            continue;
        uint16_t ev;
        while (node_read_monitor(p->monitor, &ev, NULL) == 0) {
            if (ev == ZMQ_EVENT_HANDSHAKE_SUCCEEDED) {
                p->dealer_up = true;
                p->learned_ok = true;
                COHORT_LOG(COHORT_LOG_DEBUG, "link.up peer=%s rung=direct", p->name);
                links_direct_progress(self, p);
                s_send_hello(self, p);
                void *pair[2] = {self, p};
                cohort_session_resend_all(p->session, node_now(), node_emit_data, pair);
            } else if (ev == ZMQ_EVENT_DISCONNECTED) {
                p->dealer_up = false;
                COHORT_LOG(COHORT_LOG_DEBUG, "link.down peer=%s", p->name);
            }
        }
    }
    return 0;
}

/* Bytes that never become a ZMTP greeting produce no handshake event in
 * libzmq 4.3: a connection accepted and then closed without a completed
 * handshake is what garbage on the port looks like (as are scans and dials
 * aborted half-way), so those are counted together. */
static void s_unhandshaken_del(node_t *self, uint32_t fd)
{
    for (size_t i = 0; i < self->unhandshaken_count; i++)
        if (self->unhandshaken[i] == fd) {
            self->unhandshaken[i] = self->unhandshaken[--self->unhandshaken_count];
            return;
        }
}

static int s_on_router_monitor(node_loop_t *loop, zmq_pollitem_t *item, void *arg)
{
    (void)loop;
    (void)item;
    node_t *self = arg;
    uint16_t ev;
    uint32_t fd = 0;
    while (node_read_monitor(self->router_mon, &ev, &fd) == 0) {
        switch (ev) {
        case ZMQ_EVENT_ACCEPTED:
            if (self->unhandshaken_count < sizeof self->unhandshaken / sizeof *self->unhandshaken)
                self->unhandshaken[self->unhandshaken_count++] = fd;
            break;
        case ZMQ_EVENT_HANDSHAKE_SUCCEEDED:
        case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH: /* counted by the ZAP handler */
            s_unhandshaken_del(self, fd);
            break;
        case ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL:
        case ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL:
            s_unhandshaken_del(self, fd);
            self->counters.garbage_dropped++;
            break;
        case ZMQ_EVENT_DISCONNECTED: {
            size_t before = self->unhandshaken_count;
            s_unhandshaken_del(self, fd);
            if (self->unhandshaken_count < before)
                self->counters.handshakes_incomplete++;
            break;
        }
        default:
            break;
        }
    }
    return 0;
}

/* A refused key (a revoked member redialling, say) is logged when first
 * seen and then at most every S_REFUSED_LOG_MS, with how many refusals
 * went unlogged in between: one line per key and minute, not per dial. */
static void s_log_refused(node_t *self, const char *key, const char *reason)
{
    int64_t now = node_now();
    node_refused_t *slot = NULL, *oldest = &self->refused_log[0];
    for (size_t i = 0; i < NODE_REFUSED_LOG; i++) {
        node_refused_t *r = &self->refused_log[i];
        if (!strcmp(r->key, key)) {
            slot = r;
            break;
        }
        if (r->at < oldest->at)
            oldest = r;
    }
    if (slot && now - slot->at < S_REFUSED_LOG_MS) {
        slot->suppressed++;
        return;
    }
    uint64_t suppressed = slot ? slot->suppressed : 0;
    if (!slot) {
        slot = oldest;
        snprintf(slot->key, sizeof slot->key, "%s", key);
    }
    slot->at = now;
    slot->suppressed = 0;
    COHORT_LOG(COHORT_LOG_WARN, "handshake.refused key=%s reason=%s suppressed=%" PRIu64, key,
               reason, suppressed);
}

static int s_on_zap(node_loop_t *loop, zmq_pollitem_t *item, void *arg)
{
    (void)loop;
    (void)item;
    node_t *self = arg;
    while (cohort_zap_handle(self->zap, self->id->roster, time(NULL), &self->zap_stats) == 0) {
        if (self->zap_stats.refused && self->zap_stats.last_refused_reason[0]) {
            s_log_refused(self, self->zap_stats.last_refused_key,
                          self->zap_stats.last_refused_reason);
            self->zap_stats.last_refused_reason[0] = '\0';
        }
    }
    return 0;
}

/* ---- timers ---- */

static int s_on_tick(node_loop_t *loop, int timer_id, void *arg)
{
    (void)loop;
    (void)timer_id;
    node_t *self = arg;
    int64_t now = node_now();
    /* A go-back-N resend goes batched too: nothing acks in between. */
    self->batching = true;
    self->resending = true;
    for (size_t i = 0; i < self->peer_count; i++) {
        node_peer_t *p = &self->peers[i];
        void *pair[2] = {self, p};
        /* whatever rung the peer is on; with no path at all the emit just
         * fails and the session backs off */
        cohort_session_resend_due(p->session, now, node_emit_data, pair);
    }
    s_batch_flush_all(self);
    self->resending = false;
    for (size_t i = 0; i < self->pending_count;) {
        if (now >= self->pending[i].deadline) {
            s_fail_call(self, self->pending[i].id, self->pending[i].service,
                        COHORT__API__CODE__TIMEOUT, "request timed out");
            s_pending_remove(self, i);
        } else {
            i++;
        }
    }
    links_tick(self);
    members_tick(self);
    s_flush_acks_when(self, self->terminating); /* leaving: nothing waits */
    for (size_t i = 0; i < self->peer_count; i++)
        if (self->peers[i].interest_owed && cohort_session_room(self->peers[i].session, NULL))
            s_send_interest_to(self, &self->peers[i]);
    s_deferred_answer(self, now >= self->deferred_until);
    if (node_zsocks_sweep(self) < 0)
        return -1;
    if (self->terminating) {
        size_t unacked = 0;
        for (size_t i = 0; i < self->peer_count; i++) {
            cohort_session_stats_t st;
            cohort_session_stats(self->peers[i].session, &st);
            if (self->peers[i].up)
                unacked += st.unacked;
        }
        if (unacked == 0 || now >= self->leave_deadline) {
            if (unacked)
                COHORT_LOG(COHORT_LOG_WARN, "leave.unflushed messages=%zu", unacked);
            return -1; /* ends the loop */
        }
    }
    return 0;
}

static int s_on_ping(node_loop_t *loop, int timer_id, void *arg)
{
    (void)loop;
    (void)timer_id;
    node_t *self = arg;
    int64_t now = node_now();
    links_probe_all(self);
    for (size_t i = 0; i < self->peer_count; i++) {
        node_peer_t *p = &self->peers[i];
        if (p->up && now - p->last_seen > S_DOWN_AFTER_MS)
            s_peer_set_up(self, p, false, "timeout");
    }
    return 0;
}

/* ---- commands from the front ---- */

static void s_reply(node_t *self, int code, const char *text)
{
    char c[16];
    snprintf(c, sizeof c, "%d", code);
    zsock_send(self->pipe, "ss", c, text);
    node_touched(self, zsock_resolve(self->pipe));
}

static node_msg_t *s_frame_msg(zframe_t *frame)
{
    return frame ? cohort__wire__message__unpack(NULL, zframe_size(frame), zframe_data(frame))
                 : NULL;
}

/* Answers a binary SEND: code, why and the next credit for p (node.h). */
static void s_answer_send(node_t *self, node_peer_t *p, int code, const char *why)
{
    uint32_t grant = 0;
    size_t grant_bytes = 0;
    if (p) {
        /* Credit only while little is in flight: a sender that outruns
         * the link would otherwise queue so much in libzmq that acks come
         * later than the resend timeout, and go-back-N sends it all twice.
         * Past that, each send waits for its answer, as without credit. */
        cohort_session_stats_t ss;
        cohort_session_stats(p->session, &ss);
        size_t room = cohort_session_room(p->session, &grant_bytes);
        size_t cap = s_credit_bytes(p);
        size_t budget = ss.unacked_bytes < cap ? cap - ss.unacked_bytes : 0;
        /* half the room at most: the rest stays for what the node sends
         * itself in the session (interest, replies it makes) */
        room /= 2;
        grant_bytes /= 2;
        grant = (uint32_t)(room < S_CREDIT_MSGS ? room : S_CREDIT_MSGS);
        if (grant_bytes > budget)
            grant_bytes = budget;
        if (!grant || !grant_bytes)
            grant = 0, grant_bytes = 0;
        cohort_session_reserve(p->session, grant, grant_bytes);
    }
    char c[16], credit[96];
    snprintf(c, sizeof c, "%d", code);
    snprintf(credit, sizeof credit, "%" PRIu32 " %zu %" PRIu64 " %" PRIu64, grant, grant_bytes,
             (uint64_t)self->cfg->max_message_size, self->credit_epoch);
    zsock_send(self->pipe, "sss", c, why, credit);
    node_touched(self, zsock_resolve(self->pipe));
}

static int s_publish(node_t *self, const uint8_t *raw, size_t len, unsigned *recipients,
                     const char **why);

/* The session's release function for frames it keeps (send_held). */
static void s_release_frame(void *holder)
{
    zmq_msg_close(holder);
    free(holder);
}

/* The binary send commands (node.h). The front is this process: a header
 * that does not parse is a programmer error. */
static void s_call(node_t *self, uint64_t id, const char *service, node_msg_t *msg, long timeout);

static void s_cmd_send_bin(node_t *self, zmq_msg_t *frame)
{
    const uint8_t *d = zmq_msg_data(frame);
    size_t n = zmq_msg_size(frame);
    assert(n > COHORT_NODE_CMD_HEAD);
    uint8_t op = d[0];
    uint64_t epoch, ret_bytes;
    uint32_t ret_msgs;
    memcpy(&epoch, d + 1, 8);
    memcpy(&ret_msgs, d + 9, 4);
    memcpy(&ret_bytes, d + 13, 8);
    const char *node = (const char *)d + COHORT_NODE_CMD_HEAD;
    const uint8_t *nul = memchr(node, 0, n - COHORT_NODE_CMD_HEAD);
    assert(nul);
    const uint8_t *body = nul + 1;
    size_t len = n - (size_t)(body - d);
    if (op == COHORT_NODE_CMD_CALL) {
        node_msg_t *msg = cohort__wire__message__unpack(NULL, len, body);
        s_call(self, epoch, node, msg, (long)ret_msgs);
        if (msg)
            cohort__wire__message__free_unpacked(msg, NULL);
        return;
    }
    if (op == COHORT_NODE_CMD_PUBLISH) {
        unsigned recipients = 0;
        const char *why = "";
        int code = s_publish(self, body, len, &recipients, &why);
        if (code != COHORT__API__CODE__OK)
            COHORT_LOG(COHORT_LOG_WARN, "publish.refused bytes=%zu code=%d reason=\"%s\"", len,
                       code, why);
        return;
    }
    node_peer_t *p = node_peer_by_name(self, node);
    bool current = epoch == self->credit_epoch;
    if (op == COHORT_NODE_CMD_RELEASE || op == COHORT_NODE_CMD_SEND) {
        if (p && current && (ret_msgs || ret_bytes))
            cohort_session_unreserve(p->session, ret_msgs, ret_bytes);
        if (op == COHORT_NODE_CMD_RELEASE)
            return;
    }
    uint8_t *copy = NULL;
    uint64_t stream = 0, seq = 0;
    if (op == COHORT_NODE_CMD_SEND_CREDIT) {
        /* Credit cannot be refused. Its member gone, it shares the fate of
         * the unacked messages of a removed member. */
        if (!p) {
            COHORT_LOG(COHORT_LOG_DEBUG, "send.dropped node=%s reason=removed", node);
            return;
        }
        /* The session keeps the frame itself (no copy) until the message
         * is acknowledged; the batch borrows it till then. A very small
         * frame lives inside its zmq_msg_t, so the body is found again
         * after the move. */
        size_t at = (size_t)(body - d);
        zmq_msg_t *held = cohort_malloc(sizeof *held);
        zmq_msg_init(held);
        zmq_msg_move(held, frame);
        const uint8_t *kept = (const uint8_t *)zmq_msg_data(held) + at;
        cohort_session_send_held(p->session, kept, len, held, current, node_now(), &stream, &seq);
        void *pair[2] = {self, p};
        node_emit_data(pair, stream, seq, kept, len);
        return;
    }
    assert(op == COHORT_NODE_CMD_SEND);
    int code = COHORT__API__CODE__OK;
    const char *why = "";
    Cohort__Wire__Message *mine = NULL;
    if (!strcmp(node, self->cfg->node_name) &&
        (mine = cohort__wire__message__unpack(NULL, len, body)) &&
        mine->kind == COHORT__WIRE__MESSAGE__KIND__REPLY) {
        /* the reply to a request this node served for itself */
        s_handle_message(self, &(node_peer_t){.name = self->cfg->node_name}, mine, body, len);
    } else if (!strcmp(node, self->cfg->node_name)) {
        zmq_msg_t out;
        memcpy(s_delivery_init(&out, self->cfg->node_name, len), body, len);
        s_deliver_frame(self, &out);
    } else if (!p) {
        code = COHORT__API__CODE__UNKNOWN_NODE;
        why = "no such member in the roster";
    } else if (len > self->cfg->max_message_size) {
        code = COHORT__API__CODE__TOO_LARGE;
        why = "message larger than limits.max_message_size";
    } else {
        /* The front encoded it as a Message (a unicast or a reply): it
         * goes as it is. */
        copy = cohort_malloc(len ? len : 1);
        memcpy(copy, body, len);
        const uint8_t *kept = copy;
        if (cohort_session_send(p->session, &copy, len, node_now(), &stream, &seq) < 0) {
            free(copy);
            self->counters.queue_full++;
            code = COHORT__API__CODE__QUEUE_FULL;
            why = "send queue to that node is full";
        } else {
            void *pair[2] = {self, p};
            node_emit_data(pair, stream, seq, kept, len);
        }
    }
    if (mine)
        cohort__wire__message__free_unpacked(mine, NULL);
    /* Pacing: a sender that outruns the link waits (briefly) for acks
     * before its answer, so what is in flight stays well inside the resend
     * timeout; it learns nothing else from the wait. */
    cohort_session_stats_t ss;
    if (p && code == COHORT__API__CODE__OK &&
        (cohort_session_stats(p->session, &ss), ss.unacked_bytes > 2 * s_credit_bytes(p))) {
        self->deferred = p;
        self->deferred_until = node_now() + S_PACE_MAX_MS;
        return;
    }
    s_answer_send(self, p, code, why);
}

/* The answer to a SEND held back for pacing, once little enough is in
 * flight to its node, or its time is up (force). */
static void s_deferred_answer(node_t *self, bool force)
{
    node_peer_t *p = self->deferred;
    if (!p)
        return;
    cohort_session_stats_t ss;
    cohort_session_stats(p->session, &ss);
    if (!force && ss.unacked_bytes > s_credit_bytes(p))
        return;
    self->deferred = NULL;
    s_answer_send(self, p, COHORT__API__CODE__OK, "");
}

/* Publishes the message encoded in raw (len bytes) to this node's and its
 * peers' matching subscriptions; *recipients gets how many took it.
 * Returns the code; *why says what was wrong with it. */
static int s_publish(node_t *self, const uint8_t *raw, size_t len, unsigned *recipients,
                     const char **why)
{
    *recipients = 0;
    *why = "";
    node_msg_t *msg = cohort__wire__message__unpack(NULL, len, raw);
    int code = COHORT__API__CODE__OK;
    if (!msg || !cohort_subject_valid(msg->subject)) {
        code = COHORT__API__CODE__INVALID;
        *why = "topic must be dot-separated tokens without wildcards or spaces";
    } else if (len > self->cfg->max_message_size) {
        code = COHORT__API__CODE__TOO_LARGE;
        *why = "message larger than limits.max_message_size";
    } else if (msg->kind != COHORT__WIRE__MESSAGE__KIND__PUBLISH) {
        code = COHORT__API__CODE__INVALID;
        *why = "not a publish"; /* the front encodes it: a programmer error */
    } else {
        /* it goes as the front encoded it: no re-encoding per subscriber */
        for (size_t i = 0; i < self->pattern_count; i++)
            if (cohort_pattern_match(self->patterns[i], msg->subject)) {
                s_deliver(self, self->cfg->node_name, msg, raw, len);
                (*recipients)++;
                break;
            }
        for (size_t i = 0; i < self->peer_count; i++) {
            node_peer_t *p = &self->peers[i];
            for (size_t k = 0; k < p->pattern_count; k++)
                if (cohort_pattern_match(p->patterns[k], msg->subject)) {
                    if (s_send_bytes(self, p, raw, len) == COHORT__API__CODE__OK)
                        (*recipients)++;
                    break;
                }
        }
    }
    if (msg)
        cohort__wire__message__free_unpacked(msg, NULL);
    return code;
}

static int s_cmd_pub(node_t *self, zmsg_t *cmd)
{
    zframe_t *frame = zmsg_pop(cmd);
    unsigned recipients = 0;
    const char *why = "";
    int code = frame ? s_publish(self, zframe_data(frame), zframe_size(frame), &recipients, &why)
                     : COHORT__API__CODE__INVALID;
    char c[16], n[16];
    snprintf(c, sizeof c, "%d", code);
    snprintf(n, sizeof n, "%u", recipients);
    zsock_send(self->pipe, "sss", c, why, n);
    node_touched(self, zsock_resolve(self->pipe));
    zframe_destroy(&frame);
    return 0;
}

static int s_cmd_interest(node_t *self, const char *verb, zmsg_t *cmd)
{
    char *arg = zmsg_popstr(cmd);
    bool serve = !strcmp(verb, "SERVE") || !strcmp(verb, "UNSERVE");
    bool add = !strcmp(verb, "SERVE") || !strcmp(verb, "SUB");
    if (!arg || (serve ? !cohort_subject_valid(arg) : !cohort_pattern_valid(arg))) {
        s_reply(self, COHORT__API__CODE__INVALID,
                serve ? "service name must be dot-separated tokens without wildcards"
                      : "pattern must be dot-separated tokens; * matches one token, > the rest");
        free(arg);
        return 0;
    }
    char ***set = serve ? &self->services : &self->patterns;
    size_t *count = serve ? &self->service_count : &self->pattern_count;
    bool changed = add ? s_set_add(set, count, arg) : s_set_del(*set, count, arg);
    if (changed)
        s_interest_changed(self);
    s_reply(self, COHORT__API__CODE__OK, "");
    free(arg);
    return 0;
}

/* The front's request id of service with msg (NULL: did not decode):
 * sent to a provider and remembered until its reply or timeout_ms, or
 * failed at once with a delivery saying why. */
static void s_call(node_t *self, uint64_t id, const char *service, node_msg_t *msg, long timeout)
{
    if (!msg || !service || !cohort_subject_valid(service)) {
        s_fail_call(self, id, service ? service : "", COHORT__API__CODE__INVALID,
                    "service name must be dot-separated tokens without wildcards");
        return;
    }
    node_peer_t *p = NULL;
    bool local = false;
    if (!s_pick_provider(self, service, &p, &local)) {
        s_fail_call(self, id, service, COHORT__API__CODE__NO_RESPONDERS,
                    "no node serves this service");
        return;
    }
    uint64_t wire_id = ++self->next_wire_id;
    char *own_subject = msg->subject; /* protobuf-c's; put back before freeing */
    msg->kind = COHORT__WIRE__MESSAGE__KIND__REQUEST;
    msg->subject = (char *)(uintptr_t)service; /* only read by the encoder */
    msg->request_id = wire_id;
    int code = COHORT__API__CODE__OK;
    if (local)
        s_deliver(self, self->cfg->node_name, msg, NULL, 0);
    else
        code = s_send_msg(self, p, msg);
    msg->subject = own_subject;
    if (code != COHORT__API__CODE__OK) {
        s_fail_call(self, id, service, code,
                    code == COHORT__API__CODE__QUEUE_FULL ? "send queue is full"
                                                          : "request too large");
        return;
    }
    self->pending =
        cohort_realloc(self->pending, (self->pending_count + 1) * sizeof *self->pending);
    node_pending_t *pend = &self->pending[self->pending_count++];
    pend->id = id;
    pend->wire_id = wire_id;
    pend->service = cohort_strdup(service);
    pend->node = local ? NULL : cohort_strdup(p->name);
    pend->deadline = node_now() + (timeout > 0 ? timeout : 5000);
}

static int s_cmd_reply(node_t *self, zmsg_t *cmd)
{
    char *node = zmsg_popstr(cmd), *rid = zmsg_popstr(cmd);
    zframe_t *frame = zmsg_pop(cmd);
    node_msg_t *msg = s_frame_msg(frame);
    int code = COHORT__API__CODE__OK;
    const char *why = "";
    if (!msg || !node || !rid) {
        code = COHORT__API__CODE__INVALID;
        why = "malformed reply";
    } else {
        msg->kind = COHORT__WIRE__MESSAGE__KIND__REPLY;
        msg->request_id = strtoull(rid, NULL, 10);
        if (!strcmp(node, self->cfg->node_name)) {
            /* a request this node served for itself */
            s_handle_message(self, &(node_peer_t){.name = self->cfg->node_name}, msg, NULL, 0);
        } else {
            node_peer_t *p = node_peer_by_name(self, node);
            code = p ? s_send_msg(self, p, msg) : COHORT__API__CODE__UNKNOWN_NODE;
            why = p ? "" : "no such member in the roster";
        }
    }
    s_reply(self, code, why);
    if (msg)
        cohort__wire__message__free_unpacked(msg, NULL);
    zframe_destroy(&frame);
    free(node);
    free(rid);
    return 0;
}

static void s_send_response(node_t *self, Cohort__Api__Response *resp)
{
    size_t len = cohort__api__response__get_packed_size(resp);
    zframe_t *frame = zframe_new(NULL, len);
    cohort__api__response__pack(resp, zframe_data(frame));
    zsock_send(self->pipe, "ssf", "0", "", frame);
    node_touched(self, zsock_resolve(self->pipe));
    zframe_destroy(&frame);
}

static int s_cmd_status(node_t *self)
{
    Cohort__Api__Response resp = COHORT__API__RESPONSE__INIT;
    Cohort__Api__Status st = COHORT__API__STATUS__INIT;
    Cohort__Api__Counters counters = self->counters;
    counters.handshakes_refused += self->zap_stats.refused;
    for (size_t i = 0; i < self->peer_count; i++) {
        cohort_session_stats_t ss;
        cohort_session_stats(self->peers[i].session, &ss);
        counters.resent += ss.resent;
        st.peers_up += self->peers[i].up;
    }
    st.node = self->cfg->node_name;
    st.cluster = node_str(cohort_roster_cluster(self->id->roster));
    st.site = self->id->self_member->site;
    st.roster_serial = cohort_roster_serial(self->id->roster);
    st.uptime_ms = (uint64_t)(node_now() - self->started);
    st.peers_total = (uint32_t)self->peer_count;
    st.counters = &counters;
    st.n_services = self->service_count;
    st.services = self->services;
    st.n_subscriptions = self->pattern_count;
    st.subscriptions = self->patterns;
    Cohort__Api__Links links = COHORT__API__LINKS__INIT;
    Cohort__Api__Observed obs[2], *obs_p[2];
    links.punch_port = self->cfg->punch_port;
    links.punch_attempts = self->punch_attempts;
    links.punch_ok = self->punch_ok;
    links.punch_failed = self->punch_failed;
    links.rung_switches = self->rung_switches;
    links.relay_frames = self->relay_frames;
    links.relay_bytes = self->relay_bytes;
    links.relay_dropped = self->relay_dropped;
    links.seal_rejected = self->seal_rejected;
    for (int k = 0; k < 2; k++)
        if (self->observed_from[k][0]) {
            cohort__api__observed__init(&obs[links.n_observed]);
            obs[links.n_observed].rendezvous = self->observed_from[k];
            obs[links.n_observed].endpoint = self->observed[k];
            obs_p[links.n_observed] = &obs[links.n_observed];
            links.n_observed++;
        }
    links.observed = obs_p;
    st.links = &links;
    resp.status_info = &st;
    s_send_response(self, &resp);
    return 0;
}

static int s_cmd_peers(node_t *self)
{
    Cohort__Api__Response resp = COHORT__API__RESPONSE__INIT;
    Cohort__Api__Peer *peers = cohort_calloc(self->peer_count + 1, sizeof *peers);
    Cohort__Api__Peer **ptrs = cohort_calloc(self->peer_count + 1, sizeof *ptrs);
    char(*roles)[32] = cohort_calloc(self->peer_count + 1, sizeof *roles);
    int64_t now = node_now();
    for (size_t i = 0; i < self->peer_count; i++) {
        node_peer_t *p = &self->peers[i];
        Cohort__Api__Peer *out = &peers[i];
        cohort__api__peer__init(out);
        cohort_session_stats_t ss;
        cohort_session_stats(p->session, &ss);
        out->name = p->name;
        out->site = p->site;
        out->fingerprint = p->fp_hex;
        out->state = p->up         ? node_str("up")
                     : p->hello_in ? node_str("connecting")
                                   : node_str("down");
        out->link = node_str(cohort_rung_name(p->ladder.active));
        out->reason = node_str(p->reason ? p->reason : "");
        out->via = node_str(p->ladder.active == COHORT_RUNG_RELAYED && p->via ? p->via->name : "");
        out->rtt_relayed_us = p->rtt_relayed_us;
        out->rtt_us = p->rtt_us;
        out->last_seen_ms = p->last_seen ? now - p->last_seen : -1;
        out->msgs_in = p->msgs_in;
        out->msgs_out = p->msgs_out;
        out->bytes_in = p->bytes_in;
        out->bytes_out = p->bytes_out;
        out->unacked = (uint32_t)ss.unacked;
        out->throttled = p->rxq.throttled;
        out->receive_queued = (uint32_t)p->rxq.count;
        out->receive_queued_peak = (uint32_t)p->rxq.peak;
        out->roles = cohort_roles_text(p->roles, roles[i], sizeof roles[i]) ? roles[i] : NULL;
        ptrs[i] = out;
    }
    resp.n_peers = self->peer_count;
    resp.peers = ptrs;
    s_send_response(self, &resp);
    free(peers);
    free(ptrs);
    free(roles);
    return 0;
}

/* RELOAD path: loads and checks the config file itself, copies its
 * reloadable keys into self->cfg and makes them take effect; answers code,
 * error, the keys applied and the changed keys that need a restart. A file
 * that does not load changes nothing.
 *
 * Most keys need nothing more, because they are read from self->cfg where
 * they are used: our message size checks (send, receive, relay), the relay
 * quotas, links.direct_timeout, links.punch_timeout, links.upgrade_interval
 * and links.probe_timeout (deadlines started before keep theirs), the roster
 * file names. What is copied elsewhere is brought in line here: the send
 * window of every peer's session, the probe timer, SWIM's endpoints.
 * libzmq's own frame bound (max_message_size + S_FRAME_SLACK, refused
 * before allocating) is fixed per socket when it is made: new dialled and
 * punched links take the new value, the listening socket and links already
 * open keep the bound they started with, so after raising the size they
 * still refuse frames over the old bound; a restart lifts it everywhere. */
static int s_cmd_reload(node_t *self, zmsg_t *cmd)
{
    char *path = zmsg_popstr(cmd);
    cohort_config_t *fresh = NULL;
    cohort_err_t err;
    cohort_err_clear(&err);
    char code[16], applied[COHORT_CONFIG_KEY_LIST_MAX] = "",
                   restart[COHORT_CONFIG_KEY_LIST_MAX] = "";
    if (!path || !path[0]) {
        cohort_err_set(&err, "RELOAD needs the path of the config file");
        goto out;
    }
    if (cohort_config_load(path, &fresh, &err) < 0)
        goto out;
    uint32_t probe_timeout = self->cfg->probe_timeout_ms;
    bool advertise_same = cohort_config_same(self->cfg, fresh, "listen.advertise");
    bool queue_same = cohort_config_same(self->cfg, fresh, "limits.send_queue");
    cohort_config_restart_needed(self->cfg, fresh, restart, sizeof restart);
    cohort_config_apply_reloadable(self->cfg, fresh, applied, sizeof applied);
    if (!queue_same)
        for (size_t i = 0; i < self->peer_count; i++)
            cohort_session_set_limits(self->peers[i].session, self->cfg->send_queue,
                                      (size_t)self->cfg->send_queue * S_SESSION_BYTES_PER_MSG);
    if (self->cfg->probe_timeout_ms != probe_timeout) {
        node_loop_timer_end(self->loop, self->ping_timer);
        self->ping_timer =
            node_loop_timer(self->loop, self->cfg->probe_timeout_ms / 3, 0, s_on_ping, self);
    }
    if (!advertise_same)
        members_set_self_endpoints(self);
    s_credit_revoke(self); /* granted under the old limits */
out:
    snprintf(code, sizeof code, "%d", fresh ? COHORT__API__CODE__OK : COHORT__API__CODE__INVALID);
    zsock_send(self->pipe, "ssss", code, fresh ? "" : cohort_err_text(&err), applied, restart);
    node_touched(self, zsock_resolve(self->pipe));
    cohort_config_destroy(&fresh);
    free(path);
    return 0;
}

/* One text command; takes verb and cmd (its other frames). */
static int s_dispatch(node_t *self, char *verb, zmsg_t *cmd)
{
    int rc = 0;
    if (!strcmp(verb, "$TERM")) {
        /* Leave: say goodbye (our LEFT rides on it), then give unacked
         * messages a moment to land. */
        members_leave(self);
        for (size_t i = 0; i < self->peer_count; i++) {
            node_env_t env = COHORT__WIRE__ENVELOPE__INIT;
            Cohort__Wire__Goodbye bye = COHORT__WIRE__GOODBYE__INIT;
            bye.reason = node_str("leaving");
            env.body_case = COHORT__WIRE__ENVELOPE__BODY_GOODBYE;
            env.goodbye = &bye;
            node_transmit_env(self, &self->peers[i], &env);
        }
        self->terminating = true;
        self->leave_deadline = node_now() + S_LEAVE_FLUSH_MS;
    } else if (!strcmp(verb, "YIELD")) {
        self->yield = true; /* baton.c */
    } else if (!strcmp(verb, "PUB")) {
        rc = s_cmd_pub(self, cmd);
    } else if (!strcmp(verb, "SUB") || !strcmp(verb, "UNSUB") || !strcmp(verb, "SERVE") ||
               !strcmp(verb, "UNSERVE")) {
        rc = s_cmd_interest(self, verb, cmd);
    } else if (!strcmp(verb, "REPLY")) {
        rc = s_cmd_reply(self, cmd);
    } else if (!strcmp(verb, "STATUS")) {
        rc = s_cmd_status(self);
    } else if (!strcmp(verb, "PEERS")) {
        rc = s_cmd_peers(self);
    } else if (!strcmp(verb, "MEMBERS")) {
        Cohort__Api__Response resp = COHORT__API__RESPONSE__INIT;
        members_fill(self, &resp);
        s_send_response(self, &resp);
        members_free(&resp);
    } else if (!strcmp(verb, "ROSTER")) {
        rc = roster_sync_cmd(self, cmd);
    } else if (!strcmp(verb, "RELOAD")) {
        rc = s_cmd_reload(self, cmd);
    } else if (!strcmp(verb, "INBOX")) {
        zsock_send(self->pipe, "sss", "0", "", self->inbox_ep);
        node_touched(self, zsock_resolve(self->pipe));
    } else {
        s_reply(self, COHORT__API__CODE__INVALID, "unknown command");
    }
    free(verb);
    zmsg_destroy(&cmd);
    return rc;
}

/* Reads the front's commands while they come, up to a budget, so a burst
 * of sends is one wakeup and their Data leave together, batched per peer
 * (node_emit_data), when the round ends: at once. Every other command
 * sends the batches first, so it sees (and may change) no message that
 * waits in one. */
static int s_on_pipe(node_loop_t *loop, zmq_pollitem_t *item, void *arg)
{
    (void)loop;
    (void)item;
    node_t *self = arg;
    zsock_t *pipe = self->pipe;
    void *handle = zsock_resolve(pipe);
    int rc = 0;
    for (int budget = 0; budget < 1000 && rc == 0; budget++) {
        zmq_msg_t first;
        zmq_msg_init(&first);
        if (zmq_msg_recv(&first, handle, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&first);
            break;
        }
        const uint8_t *d = zmq_msg_data(&first);
        size_t n = zmq_msg_size(&first);
        bool more = zmq_msg_more(&first);
        if (!more && n > COHORT_NODE_CMD_HEAD && d[0] >= COHORT_NODE_CMD_SEND &&
            d[0] <= COHORT_NODE_CMD_CALL) {
            self->batching = true;
            s_cmd_send_bin(self, &first);
            zmq_msg_close(&first);
            continue;
        }
        s_batch_flush_all(self);
        char *verb = cohort_malloc(n + 1);
        memcpy(verb, d, n);
        verb[n] = '\0';
        zmq_msg_close(&first);
        /* the rest of the command's frames, already here with the first */
        zmsg_t *cmd = more ? zmsg_recv(pipe) : zmsg_new();
        if (!cmd) {
            free(verb);
            rc = -1;
            break;
        }
        rc = s_dispatch(self, verb, cmd);
    }
    s_batch_flush_all(self);
    return rc;
}

/* node_exec and node_exec_call around the command itself: what the front
 * put on the pipe before goes first (pipe_first); what the command sends
 * on is asked in the settle after it, as in a handler, not by a loop turn
 * (node_touched).
 *
 * These run a request or a reply in the application's thread, and the
 * frame they send wakes libzmq's I/O thread, which the kernel often puts
 * on this very CPU (the one that woke it): it then waits for whatever this
 * thread does next (the settle, the way back to the application, the next
 * call until it blocks), a few microseconds on the round trip's path.
 * So a call that sent a frame yields the CPU once right after: if the I/O
 * thread is queued here it goes first; if not (it went to an idle CPU),
 * sched_yield returns at once, one system call. Measured on the 2-core VM:
 * request/reply p50 1.23-1.31x raw libzmq without, 1.16-1.22x with
 * (tests/bench/README.md). It is only here: a stream of cohort_send goes
 * through the node's own thread, which batches. */
static uint64_t s_exec_begin(node_t *self, bool pipe_first, bool *settling)
{
    if (pipe_first) {
        node_touched(self, zsock_resolve(self->pipe));
        node_zsocks_settle(self);
    }
    *settling = self->zsock_settling;
    self->zsock_settling = true;
    self->batching = true;
    return self->counters.messages_out;
}

static void s_exec_end(node_t *self, bool settling, uint64_t out_before)
{
    s_batch_flush_all(self);
    if (self->counters.messages_out != out_before)
        sched_yield();
    self->zsock_settling = settling;
    node_zsocks_settle(self);
}

void node_exec(node_t *self, zmq_msg_t *cmd, bool pipe_first)
{
    const uint8_t *d = zmq_msg_data(cmd);
    size_t n = zmq_msg_size(cmd);
    assert(n > COHORT_NODE_CMD_HEAD && d[0] >= COHORT_NODE_CMD_SEND &&
           d[0] <= COHORT_NODE_CMD_CALL);
    bool settling;
    uint64_t out = s_exec_begin(self, pipe_first, &settling);
    s_cmd_send_bin(self, cmd);
    zmq_msg_close(cmd);
    s_exec_end(self, settling, out);
}

void node_exec_call(node_t *self, uint64_t id, const char *service, node_msg_t *msg, long timeout,
                    bool pipe_first)
{
    bool settling;
    uint64_t out = s_exec_begin(self, pipe_first, &settling);
    s_call(self, id, service, msg, timeout);
    s_exec_end(self, settling, out);
}

void node_inbox_counted(node_t *self, int delta)
{
    if (self->inbox_count_shared)
        atomic_fetch_add(self->inbox_count_shared, delta);
}

bool node_inbox_empty(node_t *self)
{
    return self->inbox_count_shared && atomic_load(self->inbox_count_shared) <= 0;
}

/* ---- start and stop ---- */

static int s_start(node_t *self, const char *config_path, cohort_err_t *err)
{
    if (cohort_config_load(config_path, &self->cfg, err) < 0 ||
        cohort_identity_open(self->cfg, time(NULL), &self->id, err) < 0)
        return -1;
    cohort_key_raw_public(self->id->key, self->public_key);
    cohort_key_raw_private(self->id->key, self->secret_key);
    self->started = node_now();
    self->my_roles = self->id->self_member->roles;
    self->epoch = (uint64_t)zclock_time() * 1000 + (uint64_t)(zclock_usecs() % 1000);
    self->ctx = zmq_ctx_new();
    if (!(self->zap = cohort_zap_bind(self->ctx, err)))
        return -1;

    self->router = zmq_socket(self->ctx, ZMQ_ROUTER);
    int one = 1, zero = 0;
    int maxmsg = (int)(self->cfg->max_message_size + S_FRAME_SLACK);
    zmq_setsockopt(self->router, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(self->router, ZMQ_ROUTER_MANDATORY, &one, sizeof one);
    /* as the dealers: a relay forwards bursts through here */
    int hwm = 10000;
    zmq_setsockopt(self->router, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(self->router, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg);
    zmq_setsockopt(self->router, ZMQ_CURVE_SERVER, &one, sizeof one);
    zmq_setsockopt(self->router, ZMQ_CURVE_SECRETKEY, self->secret_key, COHORT_KEY_LEN);
    zmq_setsockopt(self->router, ZMQ_ZAP_DOMAIN, COHORT_ZAP_DOMAIN, strlen(COHORT_ZAP_DOMAIN));
    zmq_socket_monitor(self->router, "inproc://cohort-router-mon",
                       ZMQ_EVENT_ACCEPTED | ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_DISCONNECTED |
                           ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                           ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH);
    self->router_mon = zmq_socket(self->ctx, ZMQ_PAIR);
    zmq_setsockopt(self->router_mon, ZMQ_LINGER, &zero, sizeof zero);
    zmq_connect(self->router_mon, "inproc://cohort-router-mon");
    char ep[128];
    snprintf(ep, sizeof ep, "tcp://%s:%u",
             strcmp(self->cfg->listen_address, "*") ? self->cfg->listen_address : "0.0.0.0",
             self->cfg->listen_port);
    if (strchr(self->cfg->listen_address, ':')) {
        int ipv6 = 1;
        zmq_setsockopt(self->router, ZMQ_IPV6, &ipv6, sizeof ipv6);
        snprintf(ep, sizeof ep, "tcp://[%s]:%u", self->cfg->listen_address, self->cfg->listen_port);
    }
    if (zmq_bind(self->router, ep) != 0)
        return cohort_err_set(err, "%s: listen.port: cannot listen on %s: %s", config_path, ep,
                              zmq_strerror(zmq_errno()));

    self->rr = zhashx_new();
    cohort_arena_init(&self->arena, 64 * 1024);
    self->loop = node_loop_new();
    node_loop_before_wait(self->loop, node_zsocks_before_wait, self);
    if (roster_sync_start(self, err) < 0)
        return -1;
    members_start(self);
    if (!self->inbox_ep[0])
        snprintf(self->inbox_ep, sizeof self->inbox_ep, "inproc://cohort-inbox-%p", (void *)self);
    self->inbox = zsock_new_pair(NULL);
    zsock_set_sndhwm(self->inbox, (int)self->cfg->receive_queue);
    zsock_set_sndtimeo(self->inbox, 0);
    if (zsock_bind(self->inbox, "%s", self->inbox_ep) != 0)
        return cohort_err_set(err, "inbox: cannot bind %s", self->inbox_ep);
    node_add_reader(self, self->router, s_on_router);
    node_add_socket(self, self->router_mon, s_on_router_monitor);
    node_add_socket(self, self->zap, s_on_zap);
    node_add_socket(self, zsock_resolve(self->pipe), s_on_pipe);
    node_loop_timer(self->loop, S_TICK_MS, 0, s_on_tick, self);
    /* Probe three times per probe_timeout, so a dead rung is noticed in time. */
    self->ping_timer =
        node_loop_timer(self->loop, self->cfg->probe_timeout_ms / 3, 0, s_on_ping, self);
    COHORT_LOG(COHORT_LOG_INFO,
               "node.started node=%s cluster=%s listen=%s roster_serial=%" PRIu64 " peers=%zu",
               self->cfg->node_name, cohort_roster_cluster(self->id->roster), ep,
               cohort_roster_serial(self->id->roster), self->peer_count);
    return 0;
}

static void s_stop(node_t *self)
{
    members_stop(self);
    roster_sync_stop(self);
    for (size_t i = 0; i < self->peer_count; i++)
        s_peer_fini(&self->peers[i]);
    free(self->peers);
    for (size_t i = 0; i < self->pending_count; i++) {
        free(self->pending[i].service);
        free(self->pending[i].node);
    }
    free(self->pending);
    s_set_free(&self->services, &self->service_count);
    s_set_free(&self->patterns, &self->pattern_count);
    zhashx_destroy(&self->rr);
    node_loop_destroy(&self->loop);
    node_zsocks_free(self);
    cohort_arena_fini(&self->arena);
    zsock_destroy(&self->inbox);
    if (self->router_mon)
        zmq_close(self->router_mon);
    if (self->router) {
        zmq_socket_monitor(self->router, NULL, 0);
        zmq_close(self->router);
    }
    if (self->zap)
        zmq_close(self->zap);
    if (self->ctx)
        zmq_ctx_term(self->ctx);
    OPENSSL_cleanse(self->secret_key, sizeof self->secret_key);
    cohort_identity_destroy(&self->id);
    cohort_config_destroy(&self->cfg);
}

void cohort_node_actor(zsock_t *pipe, void *vargs)
{
    cohort_node_args_t *args = vargs;
    node_t self_storage;
    node_t *self = &self_storage;
    memset(self, 0, sizeof *self);
    cohort__api__counters__init(&self->counters); /* protobuf-c needs its descriptor */
    self->pipe = pipe;
    self->credit_epoch_shared = args->credit_epoch ? args->credit_epoch : &self->credit_epoch_own;
    self->inbox_bytes_shared = args->inbox_bytes; /* NULL: not counted */
    self->inbox_count_shared = args->inbox_count;
    snprintf(self->inbox_ep, sizeof self->inbox_ep, "%s", args->inbox);
    cohort_err_t err;
    cohort_err_clear(&err);
    if (s_start(self, args->config_path, &err) < 0) {
        snprintf(args->error, sizeof args->error, "%s", cohort_err_text(&err));
        COHORT_LOG(COHORT_LOG_ERROR, "node.failed error=\"%s\"", cohort_err_text(&err));
        s_stop(self);
        OPENSSL_thread_stop(); /* this thread's error state: see below */
        zsock_signal(pipe, 1);
        return;
    }
    args->max_message_size = self->cfg->max_message_size;
    cohort_node_baton_t *baton = args->baton; /* args may be gone once signalled */
    zsock_signal(pipe, 0);
    node_baton_actor(self, baton);
    COHORT_LOG(COHORT_LOG_INFO, "node.stopped node=%s", self->cfg->node_name);
    s_stop(self);
    /* Free this thread's OpenSSL state now, not at some later thread exit
     * that may come after the process has checked for leaks. */
    OPENSSL_thread_stop();
}
