/*
 * links: the fallback ladder. For each peer the node keeps up to three paths
 * (direct TCP, a hole-punched TCP link, a relay), probes every path it has,
 * and carries traffic on the best rung whose probes are answered
 * (overlay/ladder.h decides). It also plays the rendezvous and relay roles
 * for others when the roster gives this node those roles.
 *
 * Hole punching: every node dials rendezvous nodes from its punch port, so
 * the rendezvous sees the NAT mapping of that port. The peer with the smaller
 * public key asks a rendezvous to introduce it; the rendezvous sends both a
 * PunchGo with the other's observed address, and both connect from their
 * punch port at once (TCP simultaneous open). The smaller key is the CURVE
 * server on that link, the other the client: a simultaneous open has no
 * accepting side to decide it.
 *
 * Relaying: frames for a peer are sealed end to end (overlay/seal.h) and
 * sent to a relay both can reach, which checks membership, policy and
 * per-pair quotas and forwards them; it cannot read or forge them.
 *
 * Upgrades: while a peer is on a lower rung the punch is retried with
 * backoff (links.punch_timeout doubling up to links.upgrade_interval, with
 * jitter), started over whenever the path situation changes. Punching waits
 * while a direct link is dialling or earning its probes, and for a peer that
 * is down while a relay could tell us when it is back.
 */
#include "node/node_impl.h"
#include "util/log.h"
#include "util/mem.h"
#include "wire/wire.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <zmq.h>

static void s_count_out(node_t *self, node_peer_t *p, size_t len)
{
    p->msgs_out++;
    p->bytes_out += len;
    self->counters.messages_out++;
}

/* The senders below take an encoded envelope as a zmq_msg_t: sent, it is
 * left empty (libzmq took its buffer, no copy); refused, it is untouched,
 * so the next path can try it. The caller closes it either way. */
static int s_send_direct(node_t *self, node_peer_t *p, zmq_msg_t *msg)
{
    if (p->dealer && p->dealer_up) {
        int rc = zmq_msg_send(msg, p->dealer, ZMQ_DONTWAIT);
        /* The send may have taken a wakeup of the dealer's with it, which
         * only matters for frames coming in on it: the peer sends there
         * only while its own dealer to us is down. So a dealer that has
         * been quiet is not asked again (two system calls and a pass
         * through libzmq per message); a frame whose wakeup a send took
         * waits for the tick's sweep (counted in missed_wakeups), and the
         * ones after it are asked for again. */
        if (rc < 0 || (p->dealer_heard && node_now() - p->dealer_heard < S_DEALER_QUIET_MS))
            node_touched(self, p->dealer);
        if (rc >= 0)
            return 0;
    }
    if (p->route_len) {
        bool sent =
            zmq_send(self->router, p->route, p->route_len, ZMQ_SNDMORE | ZMQ_DONTWAIT) >= 0 &&
            zmq_msg_send(msg, self->router, ZMQ_DONTWAIT) >= 0;
        node_touched(self, self->router);
        if (sent)
            return 0;
        if (errno == EHOSTUNREACH)
            p->route_len = 0; /* gone (ROUTER_MANDATORY said so); EAGAIN is only a full queue */
    }
    return -1;
}

static int s_send_punched(node_t *self, node_peer_t *p, zmq_msg_t *msg)
{
    if (!p->punch || !p->punch_up)
        return -1;
    int rc = zmq_msg_send(msg, p->punch, ZMQ_DONTWAIT);
    node_touched(self, p->punch);
    return rc >= 0 ? 0 : -1;
}

/* The relay itself must be reached on a real link, never through a relay. */
static int s_send_to_relay(node_t *self, node_peer_t *relay, zmq_msg_t *msg)
{
    size_t len = zmq_msg_size(msg);
    if (s_send_direct(self, relay, msg) == 0 || s_send_punched(self, relay, msg) == 0) {
        s_count_out(self, relay, len);
        return 0;
    }
    return -1;
}

static void s_aad(char *out, size_t cap, size_t *len, const char *from, const char *to)
{
    /* from NUL to: the routing header the relay reads, bound to the seal */
    size_t a = strlen(from), b = strlen(to);
    if (a + b + 1 > cap)
        a = b = 0;
    memcpy(out, from, a);
    out[a] = '\0';
    memcpy(out + a + 1, to, b);
    *len = a + 1 + b;
}

static int s_send_relayed(node_t *self, node_peer_t *p, node_peer_t *via, zmq_msg_t *msg)
{
    if (!via || !p->seal)
        return -1;
    char aad[2 * COHORT_CERT_NAME_MAX + 2];
    size_t aad_len = 0;
    s_aad(aad, sizeof aad, &aad_len, self->cfg->node_name, p->name);
    uint8_t *sealed = NULL;
    size_t sealed_len = 0;
    cohort_err_t err;
    if (cohort_seal_wrap(p->seal, (const uint8_t *)aad, aad_len, zmq_msg_data(msg),
                         zmq_msg_size(msg), &sealed, &sealed_len, &err) < 0)
        return -1;
    node_env_t env = COHORT__WIRE__ENVELOPE__INIT;
    Cohort__Wire__Relay relay = COHORT__WIRE__RELAY__INIT;
    relay.to = p->name;
    relay.sealed.data = sealed;
    relay.sealed.len = sealed_len;
    relay.count = self->tx_msgs > 1 ? self->tx_msgs : 0;
    env.body_case = COHORT__WIRE__ENVELOPE__BODY_RELAY;
    env.relay = &relay;
    zmq_msg_t wire;
    node_encode(&env, &wire);
    int rc = s_send_to_relay(self, via, &wire);
    zmq_msg_close(&wire);
    free(sealed);
    return rc;
}

int links_transmit_on(node_t *self, node_peer_t *p, cohort_rung_t rung, node_peer_t *via,
                      zmq_msg_t *msg)
{
    size_t len = zmq_msg_size(msg);
    int rc = -1;
    switch (rung) {
    case COHORT_RUNG_DIRECT:
        rc = s_send_direct(self, p, msg);
        break;
    case COHORT_RUNG_PUNCHED:
        rc = s_send_punched(self, p, msg);
        break;
    case COHORT_RUNG_RELAYED:
        /* the relay's own counters are bumped in s_send_to_relay */
        if (s_send_relayed(self, p, via ? via : p->via, msg) < 0)
            return -1;
        p->msgs_out++;
        p->bytes_out += len;
        return 0;
    case COHORT_RUNG_NONE:
        break;
    }
    if (rc == 0)
        s_count_out(self, p, len);
    return rc;
}

int links_transmit(node_t *self, node_peer_t *p, zmq_msg_t *msg)
{
    /* The active rung first; then, while no rung is confirmed or when the
     * active one refuses, any path that takes it (the session drops
     * duplicates and reorders nothing: a gap is resent). */
    if (p->ladder.active != COHORT_RUNG_NONE &&
        links_transmit_on(self, p, p->ladder.active, NULL, msg) == 0)
        return 0;
    for (int r = COHORT_RUNG_DIRECT; r > COHORT_RUNG_NONE; r--)
        if ((cohort_rung_t)r != p->ladder.active &&
            links_transmit_on(self, p, (cohort_rung_t)r, NULL, msg) == 0)
            return 0;
    return -1;
}

/* ---- punch sockets ---- */

static int s_on_punch_frame(node_loop_t *loop, zmq_pollitem_t *item, void *arg);
static int s_on_punch_monitor(node_loop_t *loop, zmq_pollitem_t *item, void *arg);

/* Jitter only has to differ between nodes, not resist prediction: an
 * xorshift seeded from the start time and our key. */
static uint32_t s_random(node_t *self)
{
    if (!self->rng) {
        uint64_t seed = self->epoch ^ (uint64_t)zclock_usecs();
        for (size_t i = 0; i < COHORT_KEY_LEN; i++)
            seed = seed * 31 + self->public_key[i];
        self->rng = seed ? seed : 0x9e3779b97f4a7c15ULL;
    }
    uint64_t x = self->rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    self->rng = x;
    return (uint32_t)(x >> 32);
}

/* The path situation changed: upgrade attempts start over, due now. */
static void s_upgrade_reset(node_peer_t *p, int64_t now, const char *why)
{
    if (p->upgrade.failures == 0 && p->upgrade.next <= now)
        return;
    cohort_ladder_retry_reset(&p->upgrade, now);
    COHORT_LOG(COHORT_LOG_DEBUG, "upgrade.reset peer=%s reason=%s", p->name, why);
}

/* "ip:port" or "[ip6]:port"; -1 for other families. */
static int s_addr_text(const struct sockaddr_storage *ss, char *out, size_t cap, unsigned *port)
{
    char host[INET6_ADDRSTRLEN] = "";
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
        *port = ntohs(a->sin_port);
        snprintf(out, cap, "%s:%u", host, *port);
    } else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
        *port = ntohs(a->sin6_port);
        snprintf(out, cap, "[%s]:%u", host, *port);
    } else {
        return -1;
    }
    return 0;
}

/* A punched link can only ever use one 4-tuple (our punch port, the peer's
 * mapping of its own). Closed the ordinary way while its path is
 * black-holed, its TCP socket lingers in the kernel, retransmitting, for
 * minutes, then sits in TIME_WAIT: either holds that 4-tuple, and a fresh
 * punch to the peer cannot connect. An abortive close (SO_LINGER 0: a RST,
 * nothing left behind) frees it at once. libzmq owns the descriptor, so it
 * is first checked to still be this link's. */
static void s_punch_make_abortive(node_t *self, node_peer_t *p)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    char text[64];
    unsigned port = 0;
    if (p->punch_fd < 0 || !p->punch_at[0] ||
        getsockname(p->punch_fd, (struct sockaddr *)&ss, &len) != 0 ||
        s_addr_text(&ss, text, sizeof text, &port) < 0 || port != self->cfg->punch_port)
        return;
    len = sizeof ss;
    if (getpeername(p->punch_fd, (struct sockaddr *)&ss, &len) != 0 ||
        s_addr_text(&ss, text, sizeof text, &port) < 0 || strcmp(text, p->punch_at) != 0)
        return;
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    setsockopt(p->punch_fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
}

/* abortive: the link is being given up for a fresh punch (see above). */
static void s_punch_close(node_t *self, node_peer_t *p, bool abortive)
{
    if (!p->punch)
        return;
    if (abortive && self)
        s_punch_make_abortive(self, p);
    if (self) {
        node_unwatch_socket(self, p->punch);
        node_unwatch_socket(self, p->punch_mon);
    }
    zmq_socket_monitor(p->punch, NULL, 0);
    zmq_close(p->punch);
    zmq_close(p->punch_mon);
    p->punch = p->punch_mon = NULL;
    p->punch_up = p->punch_was_up = false;
    p->punch_fd = -1;
    p->punch_at[0] = '\0';
    cohort_ladder_lost(&p->ladder, COHORT_RUNG_PUNCHED);
}

static void s_punch_open(node_t *self, node_peer_t *p, const char *endpoint)
{
    s_punch_close(self, p, true); /* a new punch needs the old link's 4-tuple */
    int zero = 0, one = 1, ivl = 100;
    int timeout = (int)self->cfg->punch_timeout_ms;
    p->punch = zmq_socket(self->ctx, ZMQ_DEALER);
    zmq_setsockopt(p->punch, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(p->punch, ZMQ_IMMEDIATE, &one, sizeof one);
    zmq_setsockopt(p->punch, ZMQ_CONNECT_TIMEOUT, &timeout, sizeof timeout);
    /* SYNs again and again from the same port during the window: the first
     * ones may die at the far NAT before its own SYN opened the way. */
    zmq_setsockopt(p->punch, ZMQ_RECONNECT_IVL, &ivl, sizeof ivl);
    int maxmsg = (int)(self->cfg->max_message_size + S_FRAME_SLACK);
    zmq_setsockopt(p->punch, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg);
    if (memcmp(self->public_key, p->key, COHORT_KEY_LEN) < 0) {
        zmq_setsockopt(p->punch, ZMQ_CURVE_SERVER, &one, sizeof one);
        zmq_setsockopt(p->punch, ZMQ_CURVE_SECRETKEY, self->secret_key, COHORT_KEY_LEN);
        zmq_setsockopt(p->punch, ZMQ_ZAP_DOMAIN, COHORT_ZAP_DOMAIN, strlen(COHORT_ZAP_DOMAIN));
    } else {
        zmq_setsockopt(p->punch, ZMQ_CURVE_SERVERKEY, p->key, COHORT_KEY_LEN);
        zmq_setsockopt(p->punch, ZMQ_CURVE_PUBLICKEY, self->public_key, COHORT_KEY_LEN);
        zmq_setsockopt(p->punch, ZMQ_CURVE_SECRETKEY, self->secret_key, COHORT_KEY_LEN);
    }
    char mon[96];
    snprintf(mon, sizeof mon, "inproc://cohort-punch-%p-%llu", (void *)p,
             (unsigned long long)self->punch_attempts);
    zmq_socket_monitor(p->punch, mon,
                       ZMQ_EVENT_CONNECTED | ZMQ_EVENT_HANDSHAKE_SUCCEEDED |
                           ZMQ_EVENT_DISCONNECTED);
    p->punch_mon = zmq_socket(self->ctx, ZMQ_PAIR);
    zmq_setsockopt(p->punch_mon, ZMQ_LINGER, &zero, sizeof zero);
    zmq_connect(p->punch_mon, mon);
    snprintf(p->punch_at, sizeof p->punch_at, "%s",
             strncmp(endpoint, "tcp://", 6) ? endpoint : endpoint + 6);
    char dial[160];
    snprintf(dial, sizeof dial, "tcp://0.0.0.0:%u;%s", self->cfg->punch_port, p->punch_at);
    if (zmq_connect(p->punch, dial) != 0)
        COHORT_LOG(COHORT_LOG_WARN, "punch.connect_failed peer=%s endpoint=%s error=\"%s\"",
                   p->name, dial, zmq_strerror(zmq_errno()));
    node_add_socket(self, p->punch, s_on_punch_frame);
    node_add_socket(self, p->punch_mon, s_on_punch_monitor);
    p->punch_deadline = node_now() + self->cfg->punch_timeout_ms;
    self->punch_attempts++;
    COHORT_LOG(COHORT_LOG_INFO, "punch.start peer=%s endpoint=%s role=%s", p->name, endpoint,
               memcmp(self->public_key, p->key, COHORT_KEY_LEN) < 0 ? "server" : "client");
}

static node_peer_t *s_peer_by_socket(node_t *self, void *sock, bool monitor)
{
    for (size_t i = 0; i < self->peer_count; i++)
        if ((monitor ? self->peers[i].punch_mon : self->peers[i].punch) == sock)
            return &self->peers[i];
    return NULL;
}

static int s_on_punch_frame(node_loop_t *loop, zmq_pollitem_t *item, void *arg)
{
    (void)loop;
    node_t *self = arg;
    node_peer_t *p = s_peer_by_socket(self, item->socket, false);
    int64_t start = node_now();
    for (int budget = 0; p && budget < 1000 && !S_TURN_OVER(budget, start); budget++) {
        zmq_msg_t body;
        if (node_recv_one(self, p->punch, &body) < 0) {
            zmq_msg_close(&body);
            break;
        }
        /* On the server side ZAP admitted *a* member: it must be this one. */
        const char *user = zmq_msg_gets(&body, "User-Id");
        if (user && strcmp(user, p->name) != 0)
            self->counters.unknown_sender++;
        else
            node_process_frame(self, p, &body, COHORT_RUNG_PUNCHED, NULL);
        zmq_msg_close(&body);
        if (self->front_handed)
            break; /* the rest after the front's next send (zpoll.c) */
    }
    return 0;
}

static int s_on_punch_monitor(node_loop_t *loop, zmq_pollitem_t *item, void *arg)
{
    (void)loop;
    node_t *self = arg;
    node_peer_t *p = s_peer_by_socket(self, item->socket, true);
    uint16_t ev;
    uint32_t value = 0;
    while (p && node_read_monitor(p->punch_mon, &ev, &value) == 0) {
        if (ev == ZMQ_EVENT_CONNECTED) {
            p->punch_fd = (int)value;
        } else if (ev == ZMQ_EVENT_HANDSHAKE_SUCCEEDED && !p->punch_up) {
            p->punch_up = true;
            p->punch_was_up = true;
            p->punch_up_at = node_now();
            self->punch_ok++;
            COHORT_LOG(COHORT_LOG_INFO, "punch.ok peer=%s", p->name);
        } else if (ev == ZMQ_EVENT_DISCONNECTED && p->punch_up) {
            /* A punched mapping does not come back by redialling alone:
             * the socket is closed at the next tick and punching retried. */
            p->punch_up = false;
            p->punch_fd = -1;
            p->punch_deadline = node_now();
            cohort_ladder_lost(&p->ladder, COHORT_RUNG_PUNCHED);
            COHORT_LOG(COHORT_LOG_INFO, "punch.lost peer=%s", p->name);
        } else if (ev == ZMQ_EVENT_DISCONNECTED) {
            p->punch_fd = -1;
        }
    }
    return 0;
}

/* ---- rendezvous ---- */

void links_dial_endpoint(node_t *self, const node_peer_t *p, const char *endpoint, char *out,
                         size_t cap)
{
    /* Dial rendezvous nodes from the punch port, so they see its mapping. */
    if ((p->roles & COHORT_ROLE_RENDEZVOUS) && self->cfg->punch_port && !*self->cfg->socks5_proxy &&
        !strncmp(endpoint, "tcp://", 6))
        snprintf(out, cap, "tcp://0.0.0.0:%u;%s", self->cfg->punch_port, endpoint + 6);
    else
        snprintf(out, cap, "%s", endpoint);
}

void links_observe(node_t *self, node_peer_t *p, zmq_msg_t *frame)
{
    if (!(self->my_roles & COHORT_ROLE_RENDEZVOUS))
        return;
    int fd = zmq_msg_get(frame, ZMQ_SRCFD);
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (fd < 0 || getpeername(fd, (struct sockaddr *)&ss, &len) != 0)
        return;
    char text[64];
    unsigned port = 0;
    if (s_addr_text(&ss, text, sizeof text, &port) < 0 || !strcmp(text, p->observed))
        return;
    snprintf(p->observed, sizeof p->observed, "%s", text);
    s_upgrade_reset(p, node_now(), "peer-address");
    char endpoint[80];
    snprintf(endpoint, sizeof endpoint, "tcp://%s", text);
    node_env_t env = COHORT__WIRE__ENVELOPE__INIT;
    Cohort__Wire__Observed obs = COHORT__WIRE__OBSERVED__INIT;
    obs.endpoint = endpoint;
    env.body_case = COHORT__WIRE__ENVELOPE__BODY_OBSERVED;
    env.observed = &obs;
    node_transmit_env(self, p, &env);
}

static void s_on_observed(node_t *self, node_peer_t *from, Cohort__Wire__Observed *obs)
{
    if (!(from->roles & COHORT_ROLE_RENDEZVOUS) || !obs->endpoint)
        return;
    int slot = !strcmp(self->observed_from[0], from->name) || !self->observed_from[0][0] ? 0 : 1;
    if (slot == 1 && self->observed_from[1][0] && strcmp(self->observed_from[1], from->name))
        return; /* two rendezvous views are enough to tell the NAT type */
    snprintf(self->observed_from[slot], sizeof self->observed_from[slot], "%s", from->name);
    /* A new public address (first seen, or the NAT moved us): punches that
     * failed before say nothing about it. */
    bool changed = strncmp(self->observed[slot], obs->endpoint, sizeof self->observed[slot] - 1);
    snprintf(self->observed[slot], sizeof self->observed[slot], "%.63s", obs->endpoint);
    for (size_t i = 0; changed && i < self->peer_count; i++)
        s_upgrade_reset(&self->peers[i], node_now(), "new-address");
    COHORT_LOG(COHORT_LOG_INFO, "netcheck.observed rendezvous=%s endpoint=%s", from->name,
               obs->endpoint);
}

static void s_send_go(node_t *self, node_peer_t *to, const char *peer, const char *observed)
{
    char endpoint[80] = "";
    if (observed && *observed)
        snprintf(endpoint, sizeof endpoint, "tcp://%s", observed);
    node_env_t env = COHORT__WIRE__ENVELOPE__INIT;
    Cohort__Wire__PunchGo go = COHORT__WIRE__PUNCH_GO__INIT;
    go.peer = node_str(peer);
    go.endpoint = endpoint;
    env.body_case = COHORT__WIRE__ENVELOPE__BODY_PUNCH_GO;
    env.punch_go = &go;
    node_transmit_env(self, to, &env);
}

static void s_on_punch_request(node_t *self, node_peer_t *from, Cohort__Wire__PunchRequest *req)
{
    node_peer_t *target = req->target ? node_peer_by_name(self, req->target) : NULL;
    if (!(self->my_roles & COHORT_ROLE_RENDEZVOUS) || !target || target == from)
        return;
    /* A target that is down would get no PunchGo, and its observed address
     * may be stale: the requester's attempt would be wasted. */
    if (!from->observed[0] || !target->observed[0] || !target->up) {
        s_send_go(self, from, target->name, NULL); /* cannot introduce */
        return;
    }
    COHORT_LOG(COHORT_LOG_INFO, "rendezvous.introduce a=%s at=%s b=%s at=%s", from->name,
               from->observed, target->name, target->observed);
    s_send_go(self, from, target->name, target->observed);
    s_send_go(self, target, from->name, from->observed);
}

static void s_on_punch_go(node_t *self, node_peer_t *from, Cohort__Wire__PunchGo *go)
{
    node_peer_t *p = go->peer ? node_peer_by_name(self, go->peer) : NULL;
    if (!(from->roles & COHORT_ROLE_RENDEZVOUS) || !p || !self->cfg->punch_port)
        return;
    if (!go->endpoint || !*go->endpoint) {
        p->reason = "punch-unavailable";
        return;
    }
    s_punch_open(self, p, go->endpoint);
}

/* ---- relaying ---- */

static bool s_policy_allows(node_t *self, const char *a, const char *b)
{
    const cohort_roster_t *r = self->id->roster;
    for (size_t i = 0; i < cohort_roster_policy_count(r); i++) {
        const cohort_policy_t *pol = cohort_roster_policy(r, i);
        if ((!strcmp(pol->never_relay_a, a) && !strcmp(pol->never_relay_b, b)) ||
            (!strcmp(pol->never_relay_a, b) && !strcmp(pol->never_relay_b, a)))
            return false;
    }
    return true;
}

/* Counts `msgs` messages (what the frame says it carries, at least one: a
 * sender cannot pass more by claiming fewer, as the receiver drops a
 * sealed Batch holding more than claimed) and `len` bytes. */
static bool s_quota_ok(node_t *self, node_peer_t *from, node_peer_t *to, size_t len, uint64_t msgs)
{
    if (!from->quota)
        from->quota = cohort_calloc(self->peer_count, sizeof *from->quota);
    node_quota_t *q = &from->quota[to - self->peers];
    int64_t now = node_now();
    if (now - q->window >= 1000) {
        q->window = now;
        q->bytes = q->frames = 0;
    }
    if (q->bytes + len > self->cfg->relay_pair_bytes ||
        q->frames + msgs > self->cfg->relay_pair_msgs)
        return false;
    q->bytes += len;
    q->frames += msgs;
    return true;
}

static void s_forward(node_t *self, node_peer_t *from, Cohort__Wire__Relay *r)
{
    node_peer_t *to = r->to ? node_peer_by_name(self, r->to) : NULL;
    const char *why = NULL;
    if (!(self->my_roles & COHORT_ROLE_RELAY))
        why = "not-a-relay";
    else if (!to || to == from)
        why = "unknown-target";
    else if (!s_policy_allows(self, from->site, to->site))
        why = "policy";
    else if (!s_quota_ok(self, from, to, r->sealed.len, r->count > 1 ? r->count : 1))
        why = "quota";
    if (why) {
        self->relay_dropped++;
        COHORT_LOG(COHORT_LOG_DEBUG, "relay.dropped from=%s to=%.64s reason=%s", from->name,
                   r->to ? r->to : "", why);
        return;
    }
    node_env_t env = COHORT__WIRE__ENVELOPE__INIT;
    Cohort__Wire__Relay out = COHORT__WIRE__RELAY__INIT;
    out.to = to->name;
    out.from = from->name; /* who the handshake says it is, never what it says */
    out.sealed = r->sealed;
    out.count = r->count;
    env.body_case = COHORT__WIRE__ENVELOPE__BODY_RELAY;
    env.relay = &out;
    zmq_msg_t wire;
    node_encode(&env, &wire);
    if (s_send_to_relay(self, to, &wire) == 0) {
        self->relay_frames++;
        self->relay_bytes += r->sealed.len;
    } else {
        self->relay_dropped++;
    }
    zmq_msg_close(&wire);
}

static void s_on_relay(node_t *self, node_peer_t *from, Cohort__Wire__Relay *r)
{
    if (!r->from || !*r->from) {
        s_forward(self, from, r);
        return;
    }
    /* Delivered by relay `from` on behalf of r->from. */
    node_peer_t *origin = node_peer_by_name(self, r->from);
    if (!(from->roles & COHORT_ROLE_RELAY) || !origin || !r->to ||
        strcmp(r->to, self->cfg->node_name) != 0 || !origin->seal) {
        self->seal_rejected++;
        return;
    }
    char aad[2 * COHORT_CERT_NAME_MAX + 2];
    size_t aad_len = 0;
    s_aad(aad, sizeof aad, &aad_len, origin->name, self->cfg->node_name);
    uint8_t *plain = NULL;
    size_t plain_len = 0;
    cohort_err_t err;
    cohort_seal_result_t res =
        cohort_seal_open(origin->seal, (const uint8_t *)aad, aad_len, r->sealed.data, r->sealed.len,
                         &plain, &plain_len, &err);
    if (res != COHORT_SEAL_OK) {
        self->seal_rejected++;
        COHORT_LOG(COHORT_LOG_WARN, "relay.rejected from=%s via=%s reason=%s", origin->name,
                   from->name, cohort_seal_result_name(res));
        return;
    }
    node_env_t *inner = NULL;
    if (cohort_wire_decode_in(&self->arena, plain, plain_len, node_frame_max(self), &inner, &err) ==
        0) {
        if (inner->body_case == COHORT__WIRE__ENVELOPE__BODY_BATCH &&
            inner->batch->n_data > (r->count > 1 ? r->count : 1)) {
            /* more than the relay was told (and counted against the quota) */
            self->seal_rejected++;
            COHORT_LOG(COHORT_LOG_WARN, "relay.rejected from=%s via=%s reason=count", origin->name,
                       from->name);
            cohort_wire_free_in(&self->arena, &inner);
            free(plain);
            return;
        }
        origin->msgs_in++;
        origin->bytes_in += plain_len;
        node_handle_envelope(self, origin, inner, COHORT_RUNG_RELAYED, from);
        cohort_wire_free_in(&self->arena, &inner);
    } else {
        self->counters.garbage_dropped++;
    }
    free(plain);
}

bool links_handle(node_t *self, node_peer_t *from, node_env_t *env, cohort_rung_t path)
{
    switch (env->body_case) {
    case COHORT__WIRE__ENVELOPE__BODY_RELAY:
        if (path != COHORT_RUNG_RELAYED) /* never relay what came relayed */
            s_on_relay(self, from, env->relay);
        return true;
    case COHORT__WIRE__ENVELOPE__BODY_PUNCH_REQUEST:
        s_on_punch_request(self, from, env->punch_request);
        return true;
    case COHORT__WIRE__ENVELOPE__BODY_PUNCH_GO:
        s_on_punch_go(self, from, env->punch_go);
        return true;
    case COHORT__WIRE__ENVELOPE__BODY_OBSERVED:
        s_on_observed(self, from, env->observed);
        return true;
    default:
        return false;
    }
}

/* ---- probing and the ladder ---- */

static bool s_has_real_link(const node_peer_t *p)
{
    return (p->dealer && p->dealer_up) || p->route_len || p->punch_up;
}

static node_peer_t *s_choose_relay(node_t *self, node_peer_t *p)
{
    if (!s_policy_allows(self, self->id->self_member->site, p->site))
        return NULL;
    node_peer_t *best = NULL;
    for (size_t i = 0; i < self->peer_count; i++) {
        node_peer_t *r = &self->peers[i];
        if (r == p || !(r->roles & COHORT_ROLE_RELAY) || !s_has_real_link(r) || !r->up)
            continue;
        if (r == p->via)
            return r; /* keep a working relay: no needless switches */
        if (!best || (r->rtt_us >= 0 && (best->rtt_us < 0 || r->rtt_us < best->rtt_us)))
            best = r;
    }
    return best;
}

static void s_update(node_t *self, node_peer_t *p)
{
    int64_t now = node_now();
    cohort_rung_t from = COHORT_RUNG_NONE;
    if (!cohort_ladder_update(&p->ladder, now, self->cfg->probe_timeout_ms, &from))
        return;
    self->rung_switches++;
    char reason[64];
    snprintf(reason, sizeof reason, "%s-%s",
             cohort_rung_name(from > p->ladder.active ? from : p->ladder.active),
             from > p->ladder.active ? "silent" : "ready");
    char change[64];
    snprintf(change, sizeof change, "%s->%s", cohort_rung_name(from),
             cohort_rung_name(p->ladder.active));
    COHORT_LOG(COHORT_LOG_INFO, "link.rung peer=%s from=%s to=%s via=%s reason=%s", p->name,
               cohort_rung_name(from), cohort_rung_name(p->ladder.active),
               p->ladder.active == COHORT_RUNG_RELAYED && p->via ? p->via->name : "-", reason);
    node_event(self, "link.changed", p->name, change);
    /* Losing a rung changes what is worth trying, and reaching a punched or
     * direct one ends the attempts: either way the backoff starts over. */
    if (from > p->ladder.active)
        s_upgrade_reset(p, now, "rung-lost");
    else if (p->ladder.active >= COHORT_RUNG_PUNCHED)
        s_upgrade_reset(p, now, "upgraded");
    /* Whatever was in flight on the old rung may be lost: resend now. */
    void *pair[2] = {self, p};
    cohort_session_resend_all(p->session, now, node_emit_data, pair);
}

void links_probe_answered(node_t *self, node_peer_t *p, cohort_rung_t rung, uint64_t sent_us)
{
    if (rung == COHORT_RUNG_NONE)
        return;
    cohort_ladder_probe_ok(&p->ladder, rung, node_now());
    int64_t rtt = zclock_usecs() - (int64_t)sent_us;
    if (rung == COHORT_RUNG_RELAYED)
        p->rtt_relayed_us = rtt;
    if (rung == p->ladder.active || p->ladder.active == COHORT_RUNG_NONE)
        p->rtt_us = rtt;
    s_update(self, p);
}

static void s_probe(node_t *self, node_peer_t *p, cohort_rung_t rung, int64_t now)
{
    node_env_t env = COHORT__WIRE__ENVELOPE__INIT;
    Cohort__Wire__Ping ping = COHORT__WIRE__PING__INIT;
    ping.nonce = (uint64_t)now;
    ping.sent_us = (uint64_t)zclock_usecs();
    ping.epoch = self->epoch;
    ping.roster_serial = cohort_roster_serial(self->id->roster); /* peers behind are sent ours */
    env.body_case = COHORT__WIRE__ENVELOPE__BODY_PING;
    env.ping = &ping;
    zmq_msg_t msg;
    node_encode(&env, &msg);
    links_transmit_on(self, p, rung, NULL, &msg);
    zmq_msg_close(&msg);
}

/* A punched link whose handshake completed but that has answered no probe
 * for probe_timeout (the ladder demotes it then) is black-holed: TCP alone
 * would keep it for minutes, and no new punch is tried while it exists. */
static bool s_punch_silent(node_t *self, const node_peer_t *p, int64_t now)
{
    int64_t since = p->ladder.last_ok[COHORT_RUNG_PUNCHED];
    if (since < p->punch_up_at)
        since = p->punch_up_at;
    return p->punch && p->punch_up && now - since > self->cfg->probe_timeout_ms;
}

void links_probe_all(node_t *self)
{
    int64_t now = node_now();
    for (size_t i = 0; i < self->peer_count; i++) {
        node_peer_t *p = &self->peers[i];
        if ((p->dealer && p->dealer_up) || p->route_len)
            s_probe(self, p, COHORT_RUNG_DIRECT, now);
        if (p->punch_up)
            s_probe(self, p, COHORT_RUNG_PUNCHED, now);
        node_peer_t *via = s_choose_relay(self, p);
        if (via != p->via) {
            if (p->via)
                cohort_ladder_lost(&p->ladder, COHORT_RUNG_RELAYED);
            p->via = via;
        }
        if (p->via)
            s_probe(self, p, COHORT_RUNG_RELAYED, now);
        else if (p->ladder.active == COHORT_RUNG_NONE &&
                 !s_policy_allows(self, self->id->self_member->site, p->site))
            p->reason = "policy"; /* the roster forbids relaying between our sites */
        s_update(self, p);
    }
}

static node_peer_t *s_rendezvous(node_t *self, const node_peer_t * not )
{
    for (size_t i = 0; i < self->peer_count; i++) {
        node_peer_t *r = &self->peers[i];
        if (r != not &&(r->roles & COHORT_ROLE_RENDEZVOUS) && s_has_real_link(r))
            return r;
    }
    return NULL;
}

void links_tick(node_t *self)
{
    int64_t now = node_now();
    for (size_t i = 0; i < self->peer_count; i++) {
        node_peer_t *p = &self->peers[i];
        if (p->punch && !p->punch_up && now >= p->punch_deadline) {
            bool lost = p->punch_was_up; /* worked, then died: not a failed punch */
            s_punch_close(self, p, false);
            if (lost) {
                p->reason = "punch-lost";
            } else {
                self->punch_failed++;
                p->reason = "punch-failed";
                COHORT_LOG(COHORT_LOG_INFO, "punch.failed peer=%s", p->name);
            }
        }
        if (s_punch_silent(self, p, now)) {
            COHORT_LOG(COHORT_LOG_INFO, "punch.silent peer=%s", p->name);
            s_punch_close(self, p, true);
            p->reason = "punch-lost";
            s_update(self, p); /* demoted now, not at the next probe round */
            now = node_now();  /* s_update read the clock: due times are from then */
        }
        bool direct =
            cohort_ladder_working(&p->ladder, COHORT_RUNG_DIRECT, now, self->cfg->probe_timeout_ms);
        if (direct) {
            p->reason = "";
            p->direct_deadline = now + self->cfg->direct_timeout_ms;
            continue;
        }
        /* Direct is still dialling, or came up and is earning its probes
         * (links_direct_progress pushed the deadline): a punch now would
         * cost both peers and the rendezvous work for a rung not needed. */
        if (now < p->direct_deadline)
            continue;
        if (!p->punch_up && (!*p->reason || !strcmp(p->reason, "starting")))
            p->reason = p->endpoint_count ? "direct-timeout" : "no-endpoint";
        if (p->punch || !cohort_ladder_retry_due(&p->upgrade, now))
            continue;
        /* A peer that is down cannot take part in a punch: the attempt would
         * only lengthen the wait for the next one. It is made due again when
         * the peer comes up (links_peer_up), which, with a relay to bring
         * it up, it does before it can be punched anyway. Without a relay,
         * punching is the only way it ever comes up: try regardless. */
        if (!p->up && p->via)
            continue;
        cohort_ladder_retry_attempt(&p->upgrade, now, self->cfg->punch_timeout_ms,
                                    self->cfg->upgrade_interval_ms, s_random(self));
        if (!self->cfg->punch_port) {
            p->reason = "no-punch-port";
            continue;
        }
        if (memcmp(self->public_key, p->key, COHORT_KEY_LEN) > 0)
            continue; /* the smaller key asks; we answer its PunchGo */
        node_peer_t *r = s_rendezvous(self, p);
        if (!r) {
            p->reason = "no-rendezvous";
            continue;
        }
        node_env_t env = COHORT__WIRE__ENVELOPE__INIT;
        Cohort__Wire__PunchRequest req = COHORT__WIRE__PUNCH_REQUEST__INIT;
        req.target = p->name;
        env.body_case = COHORT__WIRE__ENVELOPE__BODY_PUNCH_REQUEST;
        env.punch_request = &req;
        node_transmit_env(self, r, &env);
        self->punch_requests++;
        COHORT_LOG(COHORT_LOG_INFO, "punch.request peer=%s rendezvous=%s attempt=%u", p->name,
                   r->name, p->upgrade.failures);
    }
}

void links_peer_up(node_t *self, node_peer_t *p)
{
    int64_t now = node_now();
    s_upgrade_reset(p, now, "peer-up");
    /* A rendezvous back: attempts that found none say nothing now. */
    for (size_t i = 0; (p->roles & COHORT_ROLE_RENDEZVOUS) && i < self->peer_count; i++)
        if (&self->peers[i] != p)
            s_upgrade_reset(&self->peers[i], now, "rendezvous-up");
}

void links_direct_progress(node_t *self, node_peer_t *p)
{
    /* Two answered probes, one per probe_timeout / 3, fit in probe_timeout. */
    int64_t until = node_now() + self->cfg->probe_timeout_ms;
    if (p->direct_deadline < until)
        p->direct_deadline = until;
}

void links_peer_init(node_t *self, node_peer_t *p)
{
    cohort_ladder_init(&p->ladder);
    p->reason = "starting";
    p->direct_deadline = node_now() + self->cfg->direct_timeout_ms;
    cohort_ladder_retry_init(&p->upgrade, p->direct_deadline);
    p->punch_fd = -1;
    p->rtt_relayed_us = -1;
    p->seal = cohort_seal_new(self->secret_key, self->public_key, p->key);
}

void links_peer_fini(node_peer_t *p)
{
    free(p->quota);
    p->quota = NULL;
    s_punch_close(NULL, p, false);
    cohort_seal_destroy(&p->seal);
}
