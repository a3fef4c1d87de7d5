/*
 * roster_sync: live roster distribution and revocation, inside the node
 * actor. An admin admits or throws out a node once (cohortctl roster push,
 * or SIGHUP after replacing trust.roster) and every node obeys within
 * seconds.
 *
 * Accepting a roster, whoever offers it (the local API, the configured file,
 * a peer): the CA signature verifies against a trusted CA, the cluster is
 * ours, cohort_roster_check finds nothing fatal, the serial is higher than
 * the one held, and the roster still admits this node (a node does not
 * apply a roster that shuts itself out: its peers cut it off instead, and
 * it says so whenever it is offered one). Then it is held in
 * node.state_dir (identity.h) and only then swapped in, whole: nothing is
 * half-applied, and a refusal leaves the node exactly as it was. The ZAP
 * handler reads the roster on this same thread, so the next handshake
 * already meets the new one.
 *
 * Bringing the peers in line: a member no longer admitted (removed,
 * revoked, expired, key changed) loses every link at once: our dealer to it
 * and any punched socket are closed, and the connections it dialled in to
 * our ROUTER are shut down by fd (libzmq cannot drop one peer of a ROUTER);
 * its session, pending requests and relay rights go with its peer entry,
 * so it is neither relayed for nor sent anything again. New members become
 * peers; changed endpoints, roles and sites are taken over. Certificates
 * expiring or becoming valid with no new roster are noticed by a timer.
 *
 * Spreading: a node that applied a roster sends it (RosterData) to every
 * peer it has a link to, and to any peer whose Hello, Ping or Pong shows a
 * lower serial (at most once per NODE_ROSTER_RESEND_MS per peer and serial),
 * so a node that was away catches up from whichever peer it meets first.
 * RosterData from a peer is accepted exactly like a push, but from a timer
 * right after the handler that received it: removing peers while a handler
 * holds a peer pointer would pull the peer out from under it.
 *
 * This module decides and applies; it does not parse or verify (roster.h),
 * persist (identity.h) or own sockets (node.c, links.c).
 */
#include "node/node_impl.h"
#include "util/log.h"
#include "util/mem.h"
#include "wire/wire.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <zmq.h>

#define S_RECHECK_MS 1000   /* how often certificate windows are looked at */
#define S_HOLD_AFTER_MS 500 /* start-up: hold the configured roster after this */

/* The newest roster a peer sent, waiting for the timer that tries it. */
struct node_roster_offer {
    char *from;
    uint64_t serial; /* as the peer declared it; the roster itself decides */
    uint8_t *roster, *sig;
    size_t len, sig_len;
};

static const char *s_source_name(node_roster_source_t source)
{
    switch (source) {
    case NODE_ROSTER_FROM_PUSH:
        return "push";
    case NODE_ROSTER_FROM_FILE:
        return "file";
    case NODE_ROSTER_FROM_GOSSIP:
        return "gossip";
    }
    return "?";
}

/* ---- connections a peer dialled in ---- */

/* "ip:port" of one end of fd; -1 when it has none (closed, not TCP). */
static int s_end_text(int fd, bool local, char *out, size_t cap)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    int rc = local ? getsockname(fd, (struct sockaddr *)&ss, &len)
                   : getpeername(fd, (struct sockaddr *)&ss, &len);
    char host[INET6_ADDRSTRLEN] = "";
    if (rc != 0)
        return -1;
    if (ss.ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)&ss;
        inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
        snprintf(out, cap, "%s:%u", host, ntohs(a->sin_port));
    } else if (ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&ss;
        inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
        snprintf(out, cap, "[%s]:%u", host, ntohs(a->sin6_port));
    } else {
        return -1;
    }
    return 0;
}

static uint64_t s_hash(const uint8_t *data, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a */
    for (size_t i = 0; i < len; i++)
        h = (h ^ data[i]) * 0x100000001b3ULL;
    return h;
}

void roster_sync_note_inbound(node_t *self, node_peer_t *p, zmq_msg_t *frame)
{
    (void)self;
    int fd = zmq_msg_get(frame, ZMQ_SRCFD);
    if (fd < 0)
        return;
    /* Each connection gets its own routing id, so (fd, routing id) tells a
     * new connection from a known one without a system call per frame. */
    uint64_t route = s_hash(p->route, p->route_len);
    node_roster_peer_t *rs = &p->rs;
    int slot = -1;
    for (int k = 0; k < NODE_ROSTER_INBOUND; k++) {
        if (rs->inbound[k].fd == fd && rs->inbound[k].route == route)
            return;
        if (rs->inbound[k].fd == fd)
            slot = k; /* the fd number was reused: that connection is gone */
    }
    if (slot < 0)
        slot = (int)(rs->inbound_next++ % NODE_ROSTER_INBOUND);
    /* Both ends now, while the fd certainly is this peer's connection. */
    if (s_end_text(fd, true, rs->inbound[slot].local, sizeof rs->inbound[slot].local) < 0 ||
        s_end_text(fd, false, rs->inbound[slot].remote, sizeof rs->inbound[slot].remote) < 0) {
        rs->inbound[slot].fd = -1;
        return;
    }
    rs->inbound[slot].fd = fd;
    rs->inbound[slot].route = route;
}

/* Shuts down the connections p dialled in to our ROUTER; libzmq then sees
 * them end and drops them. libzmq owns the fds and may have closed one and
 * reused its number: a connection is only shut down while both its ends
 * are still those seen when p's frames came from it. */
static int s_shutdown_inbound(node_peer_t *p)
{
    int closed = 0;
    for (int k = 0; k < NODE_ROSTER_INBOUND; k++) {
        int fd = p->rs.inbound[k].fd;
        char local[64], remote[64];
        if (fd >= 0 && s_end_text(fd, true, local, sizeof local) == 0 &&
            s_end_text(fd, false, remote, sizeof remote) == 0 &&
            !strcmp(local, p->rs.inbound[k].local) && !strcmp(remote, p->rs.inbound[k].remote) &&
            shutdown(fd, SHUT_RDWR) == 0)
            closed++;
        p->rs.inbound[k].fd = -1;
    }
    return closed;
}

/* ---- sending ---- */

static bool s_has_link(const node_peer_t *p)
{
    return (p->dealer && p->dealer_up) || p->route_len || p->punch_up ||
           p->ladder.active != COHORT_RUNG_NONE;
}

static void s_send_roster(node_t *self, node_peer_t *p)
{
    const cohort_identity_t *id = self->id;
    node_env_t env = COHORT__WIRE__ENVELOPE__INIT;
    Cohort__Wire__RosterData data = COHORT__WIRE__ROSTER_DATA__INIT;
    data.serial = cohort_roster_serial(id->roster);
    /* only read by the encoder */
    data.roster.data = (uint8_t *)(uintptr_t)id->roster_text;
    data.roster.len = id->roster_len;
    data.signature.data = (uint8_t *)(uintptr_t)id->roster_sig;
    data.signature.len = id->roster_sig_len;
    env.body_case = COHORT__WIRE__ENVELOPE__BODY_ROSTER;
    env.roster = &data;
    /* Only a send that left counts against the resend limit: a peer with
     * no path now gets it the moment its next Hello or Ping arrives. */
    if (node_transmit_env(self, p, &env) == 0) {
        p->rs.sent_serial = data.serial;
        p->rs.sent_at = node_now();
        self->roster_sent++;
        COHORT_LOG(COHORT_LOG_DEBUG, "roster.sent peer=%s serial=%" PRIu64, p->name, data.serial);
    }
}

/* To every peer we have a link to, but the one it came from and those that
 * said they hold it already. */
static void s_spread(node_t *self, const char *except)
{
    uint64_t serial = cohort_roster_serial(self->id->roster);
    for (size_t i = 0; i < self->peer_count; i++) {
        node_peer_t *p = &self->peers[i];
        if (s_has_link(p) && p->rs.serial < serial && (!except || strcmp(p->name, except) != 0))
            s_send_roster(self, p);
    }
}

void roster_sync_peer_serial(node_t *self, node_peer_t *p, uint64_t serial)
{
    if (serial == 0) /* a peer that does not say */
        return;
    p->rs.serial = serial;
    uint64_t mine = cohort_roster_serial(self->id->roster);
    if (serial >= mine)
        return; /* equal, or it will send us its newer one */
    if (p->rs.sent_serial == mine && node_now() - p->rs.sent_at < NODE_ROSTER_RESEND_MS)
        return; /* on its way, or refused: not again so soon */
    COHORT_LOG(COHORT_LOG_INFO, "roster.catch_up peer=%s peer_serial=%" PRIu64 " serial=%" PRIu64,
               p->name, serial, mine);
    s_send_roster(self, p);
}

/* ---- bringing peers in line with the roster ---- */

/* Why p, a peer until now, is not one under roster r. */
static const char *s_removal_reason(const cohort_roster_t *r, const node_peer_t *p, time_t now)
{
    if (cohort_roster_is_revoked(r, p->rs.fp))
        return "revoked";
    const cohort_member_t *m = cohort_roster_find(r, p->name);
    if (!m)
        return "removed";
    if (memcmp(m->info.public_key, p->key, COHORT_KEY_LEN) != 0)
        return "key-changed";
    return cohort_admit_name(cohort_roster_member_admit(m, now));
}

/* Cuts p off: every link closed, then its peer entry removed. */
static void s_cut(node_t *self, node_peer_t *p, const char *reason, bool announce)
{
    char *name = cohort_strdup(p->name);
    bool dealer = p->dealer != NULL, punch = p->punch != NULL, up = p->up;
    int inbound = s_shutdown_inbound(p);
    cohort_session_stats_t ss;
    cohort_session_stats(p->session, &ss);
    node_peer_remove(self, p, reason);
    COHORT_LOG(COHORT_LOG_INFO,
               "member.cut node=%s reason=%s dealer_closed=%s punch_closed=%s inbound_closed=%d "
               "unacked_dropped=%zu",
               name, reason, dealer ? "yes" : "no", punch ? "yes" : "no", inbound,
               (size_t)ss.unacked);
    if (announce) {
        /* down first, for those that only follow up and down */
        if (up)
            node_event(self, "link.down", name, reason);
        node_event(self, strcmp(reason, "revoked") ? "member.removed" : "member.revoked", name,
                   reason);
    }
    free(name);
}

/* Makes peers exactly the members the roster admits at time now (this node
 * excepted): cuts off the others, adds the missing, updates the rest.
 * announce: the reason for member.admitted events ("roster": a new roster,
 * "valid": a certificate window began), or NULL for no events (start). */
static void s_sync_peers(node_t *self, time_t now, const char *announce)
{
    const cohort_roster_t *r = self->id->roster;
    zhashx_t *want = zhashx_new(); /* name -> admitted member */
    time_t next = 0;
    size_t n = cohort_roster_member_count(r);
    for (size_t i = 0; i < n; i++) {
        const cohort_member_t *m = cohort_roster_member(r, i);
        if (m == self->id->self_member)
            continue;
        if (m->trusted && !m->revoked) {
            /* the next moment its admission changes by the clock alone */
            time_t at = now < m->not_before   ? m->not_before
                        : now <= m->not_after ? m->not_after + 1
                                              : 0;
            if (at && (!next || at < next))
                next = at;
        }
        if (cohort_roster_member_admit(m, now) == COHORT_ADMIT_OK)
            zhashx_insert(want, m->name, (void *)(uintptr_t)m);
    }
    for (size_t i = 0; i < self->peer_count;) {
        node_peer_t *p = &self->peers[i];
        const cohort_member_t *m = zhashx_lookup(want, p->name);
        if (m && !memcmp(m->info.public_key, p->key, COHORT_KEY_LEN)) {
            node_peer_update(self, p, m);
            zhashx_delete(want, p->name);
            i++;
        } else {
            s_cut(self, p, s_removal_reason(r, p, now), announce != NULL); /* peers moved down */
        }
    }
    for (size_t i = 0; i < n && zhashx_size(want); i++) {
        const cohort_member_t *m = cohort_roster_member(r, i);
        if (!zhashx_lookup(want, m->name))
            continue;
        zhashx_delete(want, m->name);
        cohort_err_t err;
        if (!node_peer_add(self, m, &err)) {
            COHORT_LOG(COHORT_LOG_ERROR, "member.not_added node=%s error=\"%s\"", m->name,
                       cohort_err_text(&err));
            continue;
        }
        if (announce) {
            COHORT_LOG(COHORT_LOG_INFO, "member.added node=%s site=%s endpoints=%zu", m->name,
                       m->site, m->endpoint_count);
            node_event(self, "member.admitted", m->name, announce);
        }
    }
    zhashx_destroy(&want);
    self->roster_recheck_at = next;
}

static int s_on_recheck(node_loop_t *loop, int timer_id, void *arg)
{
    (void)loop;
    (void)timer_id;
    node_t *self = arg;
    time_t now = time(NULL);
    if (self->roster_recheck_at && now >= self->roster_recheck_at) {
        COHORT_LOG(COHORT_LOG_INFO, "roster.recheck reason=certificate-window");
        s_sync_peers(self, now, "valid");
    }
    return 0;
}

/* ---- accepting a roster ---- */

static void s_refuse(node_t *self, node_roster_source_t source, const char *from, uint64_t serial,
                     const char *reason, node_roster_result_t *res)
{
    res->reason = reason;
    /* The configured file re-read on SIGHUP is no news when the node
     * already holds it or a newer one (spread by peers meanwhile). */
    if (source == NODE_ROSTER_FROM_FILE &&
        (!strcmp(reason, "same-serial") || !strcmp(reason, "older-serial"))) {
        COHORT_LOG(COHORT_LOG_DEBUG, "roster.unchanged source=file serial=%" PRIu64, serial);
        return;
    }
    self->roster_rejected++;
    COHORT_LOG(COHORT_LOG_WARN,
               "roster.rejected source=%s from=%s serial=%" PRIu64 " held=%" PRIu64
               " reason=%s error=\"%s\"",
               s_source_name(source), from ? from : self->cfg->node_name, serial, res->serial,
               reason, res->error);
    node_event(self, "roster.rejected", from ? from : self->cfg->node_name, reason);
}

/* Swaps the accepted roster r (and its bytes) into the identity. */
static void s_swap(node_t *self, cohort_roster_t *r, const cohort_member_t *me,
                   cohort_problems_t *warnings, const uint8_t *roster, size_t len,
                   const uint8_t *sig, size_t sig_len)
{
    cohort_identity_t *id = self->id;
    cohort_roster_destroy(&id->roster);
    cohort_problems_fini(&id->warnings);
    id->roster = r;
    id->self_member = me;
    id->warnings = *warnings;
    memset(warnings, 0, sizeof *warnings);
    free(id->roster_text);
    free(id->roster_sig);
    id->roster_text = cohort_malloc(len + 1);
    memcpy(id->roster_text, roster, len);
    id->roster_text[len] = '\0';
    id->roster_len = len;
    id->roster_sig = cohort_malloc(sig_len + 1);
    memcpy(id->roster_sig, sig, sig_len);
    id->roster_sig[sig_len] = '\0';
    id->roster_sig_len = sig_len;
    free(id->roster_path);
    id->roster_path = cohort_sprintf("%s/%s", self->cfg->state_dir, COHORT_IDENTITY_HELD_ROSTER);
    id->held_serial = cohort_roster_serial(r);
    self->my_roles = me->roles;
}

void roster_sync_apply(node_t *self, node_roster_source_t source, const char *from,
                       const uint8_t *roster, size_t len, const uint8_t *sig, size_t sig_len,
                       node_roster_result_t *res)
{
    uint64_t held = cohort_roster_serial(self->id->roster);
    memset(res, 0, sizeof *res);
    res->serial = held;
    res->reason = "";
    char *name = source == NODE_ROSTER_FROM_FILE ? cohort_strdup(self->cfg->roster)
                 : source == NODE_ROSTER_FROM_PUSH
                     ? cohort_strdup("pushed roster")
                     : cohort_sprintf("roster from %s", from ? from : "?");
    char *sig_name = source == NODE_ROSTER_FROM_FILE ? cohort_strdup(self->cfg->roster_sig)
                                                     : cohort_sprintf("%s signature", name);
    cohort_roster_t *r = NULL;
    cohort_problems_t warnings = {0};
    cohort_roster_verdict_t verdict = COHORT_ROSTER_ACCEPTED;
    cohort_err_t err;
    cohort_err_clear(&err);
    time_t now = time(NULL);
    const cohort_member_t *me = NULL;
    uint64_t serial = 0;

    if (cohort_roster_accept(name, (const char *)roster, len, sig_name, (const char *)sig, sig_len,
                             self->id->trust, now, &r, &warnings, &verdict, &err) < 0) {
        snprintf(res->error, sizeof res->error, "%s", cohort_err_text(&err));
        s_refuse(self, source, from, 0, cohort_roster_verdict_name(verdict), res);
        goto out;
    }
    serial = cohort_roster_serial(r);
    const char *cluster = cohort_roster_cluster(self->id->roster);
    if (strcmp(cohort_roster_cluster(r), cluster) != 0) {
        snprintf(res->error, sizeof res->error,
                 "%s: roster of cluster '%.64s', but this node is in cluster '%s'", name,
                 cohort_roster_cluster(r), cluster);
        s_refuse(self, source, from, serial, "other-cluster", res);
        goto out;
    }
    if (serial <= held) {
        if (serial == held)
            snprintf(res->error, sizeof res->error,
                     "%s: serial %" PRIu64
                     " is the serial this node already holds; a changed roster needs a "
                     "higher serial",
                     name, serial);
        else
            snprintf(res->error, sizeof res->error,
                     "%s: serial %" PRIu64 " is lower than serial %" PRIu64
                     " held by this node; a node never goes back to an older roster",
                     name, serial, held);
        s_refuse(self, source, from, serial, serial == held ? "same-serial" : "older-serial", res);
        goto out;
    }
    cohort_admit_t admit = cohort_roster_admit(r, self->public_key, now, &me);
    if (admit != COHORT_ADMIT_OK || strcmp(me->name, self->cfg->node_name) != 0) {
        const char *why =
            admit == COHORT_ADMIT_UNKNOWN && cohort_roster_is_revoked(r, self->id->info.fingerprint)
                ? "revoked"
            : admit == COHORT_ADMIT_UNKNOWN ? "not a member"
            : admit != COHORT_ADMIT_OK      ? cohort_admit_name(admit)
                                            : "its key is listed under another name";
        snprintf(res->error, sizeof res->error,
                 "%s: serial %" PRIu64
                 " does not admit this node ('%s': %s); refused: a node does not apply a "
                 "roster that shuts itself out, its peers cut it off instead",
                 name, serial, self->cfg->node_name, why);
        me = NULL;
        s_refuse(self, source, from, serial, "self-not-admitted", res);
        goto out;
    }
    /* Held first: what the node applies, it must find again at restart. */
    if (cohort_identity_hold(self->id, self->cfg->state_dir, (const char *)roster, len,
                             (const char *)sig, sig_len, &err) < 0) {
        snprintf(res->error, sizeof res->error,
                 "%s: serial %" PRIu64
                 " not applied: cannot keep it in node.state_dir: %s; the node keeps serial "
                 "%" PRIu64,
                 name, serial, cohort_err_text(&err), held);
        s_refuse(self, source, from, serial, "persist-failed", res);
        goto out;
    }

    s_swap(self, r, me, &warnings, roster, len, sig, sig_len);
    r = NULL;
    for (size_t i = 0; i < self->id->warnings.count; i++)
        COHORT_LOG(COHORT_LOG_WARN, "roster.warning text=\"%s\"", self->id->warnings.items[i].text);
    size_t before = self->peer_count;
    s_sync_peers(self, now, "roster");
    self->roster_applied++;
    res->applied = true;
    res->serial = serial;
    COHORT_LOG(COHORT_LOG_INFO,
               "roster.applied source=%s from=%s serial=%" PRIu64 " previous=%" PRIu64
               " members=%zu peers=%zu peers_before=%zu",
               s_source_name(source), from ? from : self->cfg->node_name, serial, held,
               cohort_roster_member_count(self->id->roster), self->peer_count, before);
    if (len + 1024 > self->cfg->max_message_size)
        COHORT_LOG(COHORT_LOG_WARN,
                   "roster.too_large_to_spread bytes=%zu limit=%" PRIu64
                   " reason=\"peers drop frames over limits.max_message_size\"",
                   len, (uint64_t)self->cfg->max_message_size);
    node_event(self, "roster.applied", from ? from : self->cfg->node_name, s_source_name(source));
    s_spread(self, from);
out:
    cohort_roster_destroy(&r);
    cohort_problems_fini(&warnings);
    free(name);
    free(sig_name);
}

/* ---- gossip ---- */

static void s_offer_free(struct node_roster_offer **o_p)
{
    struct node_roster_offer *o = *o_p;
    if (!o)
        return;
    free(o->from);
    free(o->roster);
    free(o->sig);
    free(o);
    *o_p = NULL;
}

static int s_on_offer(node_loop_t *loop, int timer_id, void *arg)
{
    (void)loop;
    (void)timer_id;
    node_t *self = arg;
    self->roster_timer = 0;
    struct node_roster_offer *o = self->roster_offer;
    self->roster_offer = NULL;
    /* overtaken meanwhile (a push): no news, not a refusal */
    if (o && o->serial > cohort_roster_serial(self->id->roster)) {
        node_roster_result_t res;
        roster_sync_apply(self, NODE_ROSTER_FROM_GOSSIP, o->from, o->roster, o->len, o->sig,
                          o->sig_len, &res);
    }
    s_offer_free(&o);
    return 0;
}

void roster_sync_offer(node_t *self, node_peer_t *from, const Cohort__Wire__RosterData *data)
{
    if (!data->roster.len) {
        self->counters.garbage_dropped++;
        return;
    }
    /* What we hold or have on offer already: spread by every peer at once,
     * most copies are duplicates and cost nothing to drop. A peer lying
     * about the serial only gets its roster verified and refused. */
    if (data->serial <= cohort_roster_serial(self->id->roster) ||
        (self->roster_offer && data->serial <= self->roster_offer->serial))
        return;
    s_offer_free(&self->roster_offer);
    struct node_roster_offer *o = cohort_calloc(1, sizeof *o);
    o->from = cohort_strdup(from->name);
    o->serial = data->serial;
    o->len = data->roster.len;
    o->roster = cohort_malloc(o->len);
    memcpy(o->roster, data->roster.data, o->len);
    o->sig_len = data->signature.len;
    o->sig = cohort_malloc(o->sig_len + 1);
    if (o->sig_len)
        memcpy(o->sig, data->signature.data, o->sig_len);
    self->roster_offer = o;
    if (!self->roster_timer)
        self->roster_timer = node_loop_timer(self->loop, 1, 1, s_on_offer, self);
}

/* ---- start, stop, the pipe ---- */

/* Once, a moment after start: hold the configured roster when state_dir
 * has none or an older one, so a later start never goes back to an older
 * one than this node ran with. Not before the loop runs: the fsyncs would
 * hold up the node's first handshakes. */
static int s_on_started(node_loop_t *loop, int timer_id, void *arg)
{
    (void)loop;
    (void)timer_id;
    node_t *self = arg;
    cohort_identity_t *id = self->id;
    uint64_t serial = cohort_roster_serial(id->roster);
    if (id->held_serial >= serial)
        return 0;
    cohort_err_t err;
    if (cohort_identity_hold(id, self->cfg->state_dir, id->roster_text, id->roster_len,
                             id->roster_sig, id->roster_sig_len, &err) < 0)
        COHORT_LOG(COHORT_LOG_WARN, "roster.hold_failed serial=%" PRIu64 " error=\"%s\"", serial,
                   cohort_err_text(&err));
    else
        id->held_serial = serial;
    return 0;
}

int roster_sync_start(node_t *self, cohort_err_t *err)
{
    (void)err;
    /* Room for every member a roster may hold, allocated once: peers never
     * move when members are added (via pointers and handlers stay valid),
     * and pages never touched cost no memory. Removal moves later peers
     * down one place (node_peer_remove fixes what points at them). */
    self->peer_cap = COHORT_ROSTER_MAX_MEMBERS;
    self->peers = cohort_calloc(self->peer_cap, sizeof *self->peers);
    s_sync_peers(self, time(NULL), NULL);
    node_loop_timer(self->loop, S_RECHECK_MS, 0, s_on_recheck, self);
    cohort_identity_t *id = self->id;
    uint64_t serial = cohort_roster_serial(id->roster);
    if (id->configured_serial < serial)
        COHORT_LOG(COHORT_LOG_INFO,
                   "roster.held_newer serial=%" PRIu64 " configured=%" PRIu64 " path=%s", serial,
                   id->configured_serial, id->roster_path);
    if (id->held_serial < serial)
        node_loop_timer(self->loop, S_HOLD_AFTER_MS, 1, s_on_started, self);
    return 0;
}

void roster_sync_stop(node_t *self)
{
    s_offer_free(&self->roster_offer);
}

int roster_sync_cmd(node_t *self, zmsg_t *cmd)
{
    char *source = zmsg_popstr(cmd);
    zframe_t *roster = zmsg_pop(cmd), *sig = zmsg_pop(cmd);
    node_roster_result_t res;
    int code = COHORT__API__CODE__OK;
    if (!source || !roster || !sig) {
        memset(&res, 0, sizeof res);
        res.reason = "malformed";
        res.serial = cohort_roster_serial(self->id->roster);
        snprintf(res.error, sizeof res.error, "ROSTER needs a source, a roster and a signature");
        code = COHORT__API__CODE__INVALID;
    } else {
        roster_sync_apply(
            self, !strcmp(source, "file") ? NODE_ROSTER_FROM_FILE : NODE_ROSTER_FROM_PUSH, NULL,
            zframe_data(roster), zframe_size(roster), zframe_data(sig), zframe_size(sig), &res);
        code = res.applied                             ? COHORT__API__CODE__OK
               : !strcmp(res.reason, "persist-failed") ? COHORT__API__CODE__ERROR
                                                       : COHORT__API__CODE__INVALID;
    }
    char c[16], serial[24];
    snprintf(c, sizeof c, "%d", code);
    snprintf(serial, sizeof serial, "%" PRIu64, res.serial);
    zsock_send(self->pipe, "ssss", c, res.error, res.reason, serial);
    node_touched(self, zsock_resolve(self->pipe));
    free(source);
    zframe_destroy(&roster);
    zframe_destroy(&sig);
    return 0;
}
