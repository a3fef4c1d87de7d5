/*
 * members: the node's membership view. It wires the SWIM failure detector
 * (overlay/swim.h) to the node's links: SWIM pings, indirect probes and
 * piggybacked member updates travel in overlay envelopes on whatever rung
 * reaches the member; state changes become member.* events. It also keeps
 * the bootstrap cache (overlay/peercache.h: the last known endpoints of
 * every member, in state_dir) and runs the optional LAN beacon
 * (overlay/beacon.h).
 *
 * Who may be a member is the roster's business (roster_sync.c adds and
 * removes peers; this file follows). Links are links.c's: a member's
 * liveness here is the cluster's opinion, which can differ from whether
 * this node has a working link to it.
 */
#include "node/node_impl.h"
#include "overlay/beacon.h"
#include "overlay/peercache.h"
#include "util/log.h"
#include "util/mem.h"
#include "wire/wire.h"

#include <inttypes.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define S_CACHE_SAVE_MS 2000 /* at most one bootstrap cache write per this */

/* ---- envelopes ---- */

void members_attach(node_t *self, const node_peer_t *p, node_env_t *env, members_pb_t *pb)
{
    env->n_updates = 0;
    if (!self->swim)
        return;
    cohort_swim_update_t u[NODE_PIGGYBACK_MAX];
    size_t n = cohort_swim_piggyback(self->swim, p ? p->name : NULL, NODE_PIGGYBACK_MAX, u);
    for (size_t i = 0; i < n; i++) {
        Cohort__Wire__MemberUpdate *w = &pb->u[i];
        cohort__wire__member_update__init(w);
        w->node = node_str(u[i].node);
        w->state = (Cohort__Wire__MemberUpdate__State)u[i].state;
        w->incarnation = u[i].incarnation;
        /* only read by the encoder */
        w->endpoints = (char **)(uintptr_t)u[i].endpoints;
        w->n_endpoints = u[i].n_endpoints;
        pb->up[i] = w;
    }
    env->updates = pb->up;
    env->n_updates = n;
}

static void s_send(node_t *self, const char *to, node_env_t *env)
{
    node_peer_t *p = node_peer_by_name(self, to);
    if (!p)
        return;
    members_pb_t pb;
    members_attach(self, p, env, &pb);
    if (env->body_case == COHORT__WIRE__ENVELOPE__BODY__NOT_SET && env->n_updates == 0)
        return; /* nothing left to gossip */
    node_transmit_env(self, p, env);
}

/* ---- SWIM callbacks (run inside cohort_swim_* calls, on the actor) ---- */

static void s_ping(void *arg, const char *to, uint64_t nonce)
{
    node_t *self = arg;
    node_env_t env = COHORT__WIRE__ENVELOPE__INIT;
    Cohort__Wire__Ping ping = COHORT__WIRE__PING__INIT;
    ping.nonce = nonce;
    ping.sent_us = (uint64_t)zclock_usecs();
    ping.epoch = self->epoch;
    ping.roster_serial = cohort_roster_serial(self->id->roster);
    env.body_case = COHORT__WIRE__ENVELOPE__BODY_PING;
    env.ping = &ping;
    self->swim_pings++;
    s_send(self, to, &env);
}

static void s_ping_req(void *arg, const char *to, const char *target, uint64_t nonce)
{
    node_env_t env = COHORT__WIRE__ENVELOPE__INIT;
    Cohort__Wire__PingReq req = COHORT__WIRE__PING_REQ__INIT;
    req.target = node_str(target);
    req.nonce = nonce;
    env.body_case = COHORT__WIRE__ENVELOPE__BODY_PING_REQ;
    env.ping_req = &req;
    s_send(arg, to, &env);
}

static void s_ping_req_ack(void *arg, const char *to, const char *target, uint64_t nonce,
                           bool reachable)
{
    node_env_t env = COHORT__WIRE__ENVELOPE__INIT;
    Cohort__Wire__PingReqAck ack = COHORT__WIRE__PING_REQ_ACK__INIT;
    ack.target = node_str(target);
    ack.nonce = nonce;
    ack.reachable = reachable;
    env.body_case = COHORT__WIRE__ENVELOPE__BODY_PING_REQ_ACK;
    env.ping_req_ack = &ack;
    s_send(arg, to, &env);
}

/* An envelope with no body, only member updates. */
static void s_gossip(void *arg, const char *to)
{
    node_env_t env = COHORT__WIRE__ENVELOPE__INIT;
    s_send(arg, to, &env);
}

static void s_event(void *arg, const cohort_swim_event_t *ev)
{
    node_t *self = arg;
    COHORT_LOG(ev->to == COHORT_SWIM_ALIVE ? COHORT_LOG_INFO : COHORT_LOG_WARN,
               "member.%s node=%s reason=%s incarnation=%" PRIu64 " was=%s",
               cohort_swim_state_name(ev->to), ev->member, ev->reason, ev->incarnation,
               cohort_swim_state_name(ev->from));
    if (ev->self)
        return; /* our own leave or refutation: only logged */
    if (ev->from == COHORT_SWIM_UNKNOWN && ev->to != COHORT_SWIM_ALIVE)
        return; /* never seen up: nothing to report going away */
    const char *type = NULL;
    switch (ev->to) {
    case COHORT_SWIM_ALIVE:
        type = strcmp(ev->reason, "rejoined") == 0 ? "member.rejoined" : "member.up";
        self->cache_dirty = true;
        break;
    case COHORT_SWIM_SUSPECT:
        type = "member.suspect";
        break;
    case COHORT_SWIM_FAILED:
        type = "member.failed";
        break;
    case COHORT_SWIM_LEFT:
        type = "member.left";
        break;
    default:
        return;
    }
    node_event(self, type, ev->member, ev->reason);
}

static uint32_t s_random(void *arg)
{
    node_t *self = arg;
    uint64_t x = self->swim_rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    self->swim_rng = x;
    return (uint32_t)(x >> 32);
}

/* ---- the bootstrap cache ---- */

static void s_cache_path(const node_t *self, char *out, size_t cap)
{
    snprintf(out, cap, "%s/%s", self->cfg->state_dir, COHORT_PEERCACHE_FILE);
}

/* Dials cached endpoints of members the roster gives none for. */
static void s_cache_load(node_t *self)
{
    char path[1024];
    s_cache_path(self, path, sizeof path);
    cohort_peercache_t pc;
    bool missing = false;
    cohort_err_t err;
    if (cohort_peercache_load(path, cohort_roster_cluster(self->id->roster), &pc, &missing, &err) <
        0) {
        COHORT_LOG(COHORT_LOG_WARN, "bootstrap.cache_ignored error=\"%s\"", cohort_err_text(&err));
        cohort_peercache_fini(&pc);
        return;
    }
    size_t used = 0;
    for (size_t i = 0; i < pc.count; i++) {
        node_peer_t *p = node_peer_by_name(self, pc.peers[i].name);
        if (p && pc.peers[i].endpoint_count &&
            node_peer_learn_endpoints(self, p, (const char *const *)pc.peers[i].endpoints,
                                      pc.peers[i].endpoint_count, "bootstrap-cache"))
            used++;
    }
    if (!missing)
        COHORT_LOG(COHORT_LOG_INFO, "bootstrap.cache_loaded peers=%zu dialled=%zu", pc.count, used);
    cohort_peercache_fini(&pc);
}

/* Writes what we know of every member's endpoints: what gossip said, else
 * what we dial. */
static void s_cache_save(node_t *self)
{
    cohort_peercache_t pc;
    cohort_peercache_init(&pc, cohort_roster_cluster(self->id->roster));
    for (size_t i = 0; i < self->peer_count; i++) {
        node_peer_t *p = &self->peers[i];
        cohort_swim_member_t m;
        if (self->swim && cohort_swim_get(self->swim, p->name, &m) && m.n_endpoints)
            cohort_peercache_put(&pc, p->name, m.endpoints, m.n_endpoints);
        else if (p->endpoint_count)
            cohort_peercache_put(&pc, p->name, (const char *const *)p->endpoints,
                                 p->endpoint_count);
    }
    char path[1024];
    s_cache_path(self, path, sizeof path);
    cohort_err_t err;
    if (cohort_peercache_save(path, &pc, &err) < 0)
        COHORT_LOG(COHORT_LOG_WARN, "bootstrap.cache_not_saved error=\"%s\"",
                   cohort_err_text(&err));
    cohort_peercache_fini(&pc);
    self->cache_dirty = false;
    self->cache_saved = node_now();
}

/* ---- the LAN beacon ---- */

static int s_on_beacon(node_loop_t *loop, zmq_pollitem_t *item, void *arg)
{
    (void)loop;
    (void)item;
    node_t *self = arg;
    uint8_t buf[COHORT_BEACON_LEN + 1], key[COHORT_BEACON_KEY_LEN];
    char src[64];
    int n;
    for (int i = 0;
         i < 64 && (n = cohort_beacon_recv(self->beacon_fd, buf, sizeof buf, src, sizeof src)) > 0;
         i++) {
        uint16_t port = 0;
        if (cohort_beacon_decode(buf, (size_t)n, self->beacon_tag, key, &port) < 0) {
            self->beacon_ignored++;
            continue;
        }
        if (!memcmp(key, self->public_key, COHORT_KEY_LEN))
            continue; /* our own */
        node_peer_t *p = NULL;
        for (size_t k = 0; k < self->peer_count && !p; k++)
            if (!memcmp(self->peers[k].key, key, COHORT_KEY_LEN))
                p = &self->peers[k];
        if (!p) {
            self->beacon_ignored++; /* not a member: dial nothing */
            continue;
        }
        self->beacon_heard++;
        char ep[96];
        snprintf(ep, sizeof ep, "tcp://%s:%u", src, port);
        const char *eps[] = {ep};
        if (node_peer_learn_endpoints(self, p, eps, 1, "lan-beacon"))
            COHORT_LOG(COHORT_LOG_INFO, "discovery.found node=%s endpoint=%s", p->name, ep);
    }
    return 0;
}

static void s_beacon_send(node_t *self)
{
    uint8_t b[COHORT_BEACON_LEN];
    cohort_beacon_encode(self->public_key, (uint16_t)self->cfg->listen_port, self->beacon_tag, b);
    cohort_err_t err;
    if (cohort_beacon_send(self->beacon_fd, self->cfg->lan_address, (uint16_t)self->cfg->lan_port,
                           b, sizeof b, &err) < 0)
        COHORT_LOG(COHORT_LOG_DEBUG, "discovery.send_failed error=\"%s\"", cohort_err_text(&err));
    else
        self->beacon_sent++;
}

static void s_beacon_start(node_t *self)
{
    self->beacon_fd = -1;
    if (!self->cfg->lan_discovery)
        return;
    cohort_err_t err;
    self->beacon_fd = cohort_beacon_open("0.0.0.0", (uint16_t)self->cfg->lan_port, &err);
    if (self->beacon_fd < 0) {
        COHORT_LOG(COHORT_LOG_WARN, "discovery.off error=\"%s\"", cohort_err_text(&err));
        return;
    }
    self->beacon_tag = cohort_beacon_cluster_tag(cohort_roster_cluster(self->id->roster));
    node_loop_poller(self->loop, self->beacon_fd, s_on_beacon, self);
    self->beacon_next = 0; /* announce at once */
    COHORT_LOG(COHORT_LOG_INFO, "discovery.on port=%u address=%s", self->cfg->lan_port,
               self->cfg->lan_address);
}

/* ---- the node's side ---- */

/* Our endpoints as others should dial them: listen.advertise, else the
 * listen address when it is a concrete one. At start, and when a reload
 * changed listen.advertise (SWIM then gossips them at once, under a higher
 * incarnation). */
void members_set_self_endpoints(node_t *self)
{
    const char *eps[COHORT_SWIM_MAX_ENDPOINTS];
    size_t n = 0;
    char own[128];
    for (size_t i = 0; i < self->cfg->advertise_count && n < COHORT_SWIM_MAX_ENDPOINTS; i++)
        eps[n++] = self->cfg->advertise[i];
    const char *addr = self->cfg->listen_address;
    if (n == 0 && strcmp(addr, "*") && strcmp(addr, "0.0.0.0") && strcmp(addr, "::")) {
        snprintf(own, sizeof own, strchr(addr, ':') ? "tcp://[%s]:%u" : "tcp://%s:%u", addr,
                 self->cfg->listen_port);
        eps[n++] = own;
    }
    if (self->swim && !cohort_swim_set_endpoints(self->swim, eps, n))
        COHORT_LOG(COHORT_LOG_WARN,
                   "members.endpoints_ignored reason=\"not valid as member endpoints\"");
}

int members_start(node_t *self)
{
    if (RAND_bytes((unsigned char *)&self->swim_rng, sizeof self->swim_rng) != 1 || !self->swim_rng)
        self->swim_rng = self->epoch | 1;
    cohort_swim_config_t cfg;
    cohort_swim_config_default(&cfg);
    cfg.probe_interval_ms = self->cfg->swim_probe_interval_ms;
    cfg.probe_timeout_ms = self->cfg->swim_probe_timeout_ms;
    cfg.suspicion_timeout_ms = self->cfg->swim_suspicion_timeout_ms;
    cfg.indirect_k = self->cfg->swim_indirect;
    cfg.suspicion_scale = true;
    static const cohort_swim_ops_t ops = {.ping = s_ping,
                                          .ping_req = s_ping_req,
                                          .ping_req_ack = s_ping_req_ack,
                                          .gossip = s_gossip,
                                          .event = s_event,
                                          .random = s_random};
    /* epochs are start times in microseconds: a restart always wins */
    self->swim = cohort_swim_new(self->cfg->node_name, self->epoch, &cfg, &ops, self);
    int64_t now = node_now();
    for (size_t i = 0; i < self->peer_count; i++)
        cohort_swim_add(self->swim, self->peers[i].name, now);
    members_set_self_endpoints(self);
    s_cache_load(self);
    s_beacon_start(self);
    return 0;
}

void members_stop(node_t *self)
{
    if (!self->swim)
        return; /* never started (beacon_fd is not set either) */
    if (self->cache_dirty)
        s_cache_save(self);
    if (self->beacon_fd >= 0) {
        node_loop_poller_end(self->loop, self->beacon_fd);
        close(self->beacon_fd);
        self->beacon_fd = -1;
    }
    cohort_swim_destroy(&self->swim);
}

void members_tick(node_t *self)
{
    if (!self->swim)
        return;
    int64_t now = node_now();
    int64_t due = cohort_swim_next_due(self->swim);
    if (due <= now)
        cohort_swim_tick(self->swim, now);
    if (self->cache_dirty && now - self->cache_saved >= S_CACHE_SAVE_MS)
        s_cache_save(self);
    if (self->beacon_fd >= 0 && now >= self->beacon_next) {
        s_beacon_send(self);
        self->beacon_next = now + self->cfg->lan_interval_ms;
    }
}

bool members_handle(node_t *self, node_peer_t *p, node_env_t *env)
{
    if (!self->swim)
        return false;
    int64_t now = node_now();
    for (size_t i = 0; i < env->n_updates; i++) {
        const Cohort__Wire__MemberUpdate *w = env->updates[i];
        if (!w->node || (unsigned)w->state > COHORT__WIRE__MEMBER_UPDATE__STATE__LEFT)
            continue;
        cohort_swim_update_t u = {.node = w->node,
                                  .state = (cohort_swim_state_t)w->state,
                                  .incarnation = w->incarnation,
                                  .endpoints = (const char *const *)w->endpoints,
                                  .n_endpoints = w->n_endpoints};
        if (cohort_swim_merge(self->swim, p->name, &u, now) == COHORT_SWIM_MERGE_ACCEPTED &&
            u.state == COHORT_SWIM_ALIVE && u.n_endpoints) {
            self->cache_dirty = true;
            node_peer_t *q = node_peer_by_name(self, u.node);
            cohort_swim_member_t m;
            /* what gossip says of a member we have no address for */
            if (q && q != p && cohort_swim_get(self->swim, u.node, &m))
                node_peer_learn_endpoints(self, q, m.endpoints, m.n_endpoints, "gossip");
        }
    }
    cohort_swim_heard(self->swim, p->name, now);
    switch (env->body_case) {
    case COHORT__WIRE__ENVELOPE__BODY__NOT_SET:
        return true; /* gossip only */
    case COHORT__WIRE__ENVELOPE__BODY_PONG:
        cohort_swim_ack(self->swim, p->name, env->pong->nonce, now);
        return false; /* links.c wants it too */
    case COHORT__WIRE__ENVELOPE__BODY_PING_REQ:
        if (env->ping_req->target)
            cohort_swim_ping_req(self->swim, p->name, env->ping_req->target, env->ping_req->nonce,
                                 now);
        return true;
    case COHORT__WIRE__ENVELOPE__BODY_PING_REQ_ACK:
        if (env->ping_req_ack->target)
            cohort_swim_ping_req_ack(self->swim, p->name, env->ping_req_ack->target,
                                     env->ping_req_ack->nonce, env->ping_req_ack->reachable, now);
        return true;
    case COHORT__WIRE__ENVELOPE__BODY_GOODBYE: {
        /* It says so itself, authenticated: left, at its incarnation. */
        cohort_swim_member_t m;
        if (cohort_swim_get(self->swim, p->name, &m) && m.state != COHORT_SWIM_UNKNOWN) {
            cohort_swim_update_t u = {
                .node = p->name, .state = COHORT_SWIM_LEFT, .incarnation = m.incarnation};
            cohort_swim_merge(self->swim, p->name, &u, now);
        }
        return false;
    }
    default:
        return false;
    }
}

void members_leave(node_t *self)
{
    if (self->swim)
        cohort_swim_leave(self->swim, node_now());
}

size_t members_pending(const node_t *self)
{
    return self->swim ? cohort_swim_pending(self->swim) : 0;
}

void members_peer_added(node_t *self, node_peer_t *p)
{
    if (self->swim)
        cohort_swim_add(self->swim, p->name, node_now());
}

void members_peer_removed(node_t *self, const char *name)
{
    if (self->swim)
        cohort_swim_remove(self->swim, name);
    self->cache_dirty = true;
}

const char *members_state(const node_t *self, const char *name)
{
    cohort_swim_member_t m;
    if (!self->swim || !cohort_swim_get(self->swim, name, &m))
        return "unknown";
    return cohort_swim_state_name(m.state);
}

/* Response.members: every member, this node included, in name order. */
void members_fill(node_t *self, Cohort__Api__Response *resp)
{
    size_t n = self->swim ? cohort_swim_size(self->swim) : 0;
    resp->members = cohort_calloc(n ? n : 1, sizeof *resp->members);
    resp->n_members = n;
    int64_t now = node_now();
    for (size_t i = 0; i < n; i++) {
        cohort_swim_member_t m;
        cohort_swim_member_at(self->swim, i, &m);
        Cohort__Api__Member *a = cohort_calloc(1, sizeof *a);
        cohort__api__member__init(a);
        a->name = cohort_strdup(m.name);
        a->state = cohort_strdup(cohort_swim_state_name(m.state));
        a->incarnation = m.incarnation;
        a->since_ms = now - (m.self && m.since < self->started ? self->started : m.since);
        a->endpoints = cohort_calloc(m.n_endpoints ? m.n_endpoints : 1, sizeof *a->endpoints);
        for (size_t k = 0; k < m.n_endpoints; k++)
            a->endpoints[k] = cohort_strdup(m.endpoints[k]);
        a->n_endpoints = m.n_endpoints;
        const node_peer_t *p = node_peer_by_name(self, m.name);
        const char *site = p ? p->site : "";
        if (m.self && self->id->self_member)
            site = self->id->self_member->site;
        a->site = cohort_strdup(site);
        resp->members[i] = a;
    }
}

void members_free(Cohort__Api__Response *resp)
{
    for (size_t i = 0; i < resp->n_members; i++) {
        Cohort__Api__Member *a = resp->members[i];
        free(a->name);
        free(a->state);
        free(a->site);
        for (size_t k = 0; k < a->n_endpoints; k++)
            free(a->endpoints[k]);
        free(a->endpoints);
        free(a);
    }
    free(resp->members);
    resp->members = NULL;
    resp->n_members = 0;
}
