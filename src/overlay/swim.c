/*
 * swim: SWIM failure detector and membership dissemination. See swim.h.
 *
 * Members live in one array of pointers sorted by name (binary search for
 * lookups, name order for listings); the pointers stay put, so the probe
 * round, the current probe and the dissemination queue refer to members by
 * pointer and are fixed up on removal. The dissemination queue is not a
 * separate structure: each member has a "queued" flag and a transmission
 * count, and what goes out is always the member's current state, so a newer
 * change replaces an older one and the queue can never hold more entries
 * than there are members.
 */
#include "overlay/swim.h"

#include "util/mem.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char *name; /* owned */
    bool self;
    cohort_swim_state_t state;
    uint64_t incarnation;
    int64_t since;
    char *eps[COHORT_SWIM_MAX_ENDPOINTS]; /* owned */
    size_t n_eps;
    int64_t suspect_deadline; /* when SUSPECT: becomes FAILED at this time */
    /* dissemination queue */
    bool queued;
    unsigned transmits;
    uint64_t queued_seq; /* larger: queued more recently */
    uint64_t mark;       /* == swim->mark_epoch: already in this piggyback */
    /* Envelopes to this member that carried our own current update. */
    unsigned told;
    /* Known only by sight (heard from, no update about it yet). */
    bool weak;
} s_member_t;

/* A PingReq we serve for another member. Names are copied: either member
 * may be removed while the relay is outstanding. */
typedef struct {
    char requester[COHORT_SWIM_NAME_MAX];
    char target[COHORT_SWIM_NAME_MAX];
    uint64_t their_nonce; /* from the PingReq, echoed in the PingReqAck */
    uint64_t our_nonce;   /* of our ping to target */
    int64_t deadline;
} s_relay_t;

/* One outstanding ping of ours (the period's probe, or a recheck). */
typedef struct {
    s_member_t *target; /* NULL: none outstanding */
    uint64_t nonce;
    int64_t started;
    int64_t indirect_at; /* probe only: PingReqs go out then */
    int64_t end;         /* probe: verdict; recheck: forget it */
    bool indirect_sent;
} s_probe_t;

struct cohort_swim {
    cohort_swim_config_t cfg;
    cohort_swim_ops_t ops;
    void *arg;
    s_member_t **members; /* sorted by name; n used, cap allocated */
    size_t n, cap;
    s_member_t *me;
    /* The probe round: a shuffled list of the members that were probe
     * candidates when it began (plus ones that became candidates since, at
     * random places after order_pos). Entries before order_pos are done. */
    s_member_t **order;
    size_t order_len, order_pos;
    s_member_t **scratch; /* cap entries, for random picks */
    s_probe_t probe;
    s_probe_t recheck;
    s_relay_t relays[COHORT_SWIM_MAX_RELAYS];
    size_t n_relays;
    bool started; /* the first tick happened */
    bool left;
    int64_t next_probe, next_gossip, next_recheck;
    uint64_t next_nonce;
    uint64_t queue_seq;
    uint64_t mark_epoch;
    size_t n_queued;
    cohort_swim_stats_t stats;
};

const char *cohort_swim_state_name(cohort_swim_state_t state)
{
    switch (state) {
    case COHORT_SWIM_ALIVE:
        return "alive";
    case COHORT_SWIM_SUSPECT:
        return "suspect";
    case COHORT_SWIM_FAILED:
        return "failed";
    case COHORT_SWIM_LEFT:
        return "left";
    case COHORT_SWIM_UNKNOWN:
        return "unknown";
    }
    return "?";
}

void cohort_swim_config_default(cohort_swim_config_t *cfg)
{
    assert(cfg);
    *cfg = (cohort_swim_config_t){
        .probe_interval_ms = 1000,
        .probe_timeout_ms = 500,
        .indirect_k = 3,
        .suspicion_timeout_ms = 4000,
        .suspicion_scale = false,
        .retransmit_mult = 4,
        .gossip_interval_ms = 200,
        .gossip_fanout = 3,
        .recheck_interval_ms = 2000,
    };
}

/* ---- small helpers ---- */

static bool s_valid_string(const char *s, size_t max)
{
    if (!s)
        return false;
    size_t len = strnlen(s, max);
    return len > 0 && len < max;
}

static bool s_valid_name(const char *name)
{
    return s_valid_string(name, COHORT_SWIM_NAME_MAX);
}

/* Smallest k with 2^k >= x. */
static unsigned s_ceil_log2(uint64_t x)
{
    unsigned k = 0;
    while (k < 63 && (UINT64_C(1) << k) < x)
        k++;
    return k;
}

static uint32_t s_rand_below(cohort_swim_t *self, size_t n)
{
    assert(n > 0);
    return (uint32_t)(self->ops.random(self->arg) % n);
}

static uint64_t s_nonce(cohort_swim_t *self)
{
    if (self->next_nonce == 0)
        self->next_nonce++;
    return self->next_nonce++;
}

/* Index of name, or where it would go (with *found false). */
static size_t s_search(const cohort_swim_t *self, const char *name, bool *found)
{
    size_t lo = 0, hi = self->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(self->members[mid]->name, name);
        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = false;
    return lo;
}

static s_member_t *s_find(const cohort_swim_t *self, const char *name)
{
    if (!s_valid_name(name))
        return NULL;
    bool found;
    size_t i = s_search(self, name, &found);
    return found ? self->members[i] : NULL;
}

static bool s_probe_candidate(const s_member_t *m)
{
    return !m->self && (m->state == COHORT_SWIM_ALIVE || m->state == COHORT_SWIM_SUSPECT);
}

static bool s_recheck_candidate(const s_member_t *m)
{
    return !m->self && (m->state == COHORT_SWIM_UNKNOWN || m->state == COHORT_SWIM_FAILED);
}

/* Puts up to k distinct random members for which pick(m, except) holds
 * at the front of self->scratch; returns how many. */
static size_t s_pick(cohort_swim_t *self, size_t k, bool (*pick)(const s_member_t *),
                     const s_member_t *except)
{
    size_t n = 0;
    for (size_t i = 0; i < self->n; i++)
        if (self->members[i] != except && pick(self->members[i]))
            self->scratch[n++] = self->members[i];
    if (k > n)
        k = n;
    /* partial Fisher-Yates */
    for (size_t i = 0; i < k; i++) {
        size_t j = i + s_rand_below(self, n - i);
        s_member_t *t = self->scratch[i];
        self->scratch[i] = self->scratch[j];
        self->scratch[j] = t;
    }
    return k;
}

static bool s_alive(const s_member_t *m)
{
    return !m->self && m->state == COHORT_SWIM_ALIVE;
}

static void s_free_eps(s_member_t *m)
{
    for (size_t i = 0; i < m->n_eps; i++) {
        free(m->eps[i]);
        m->eps[i] = NULL;
    }
    m->n_eps = 0;
}

/* Copies the valid endpoints among eps[0..n), up to the maximum. */
static void s_set_eps(s_member_t *m, const char *const *eps, size_t n)
{
    s_free_eps(m);
    for (size_t i = 0; eps && i < n && m->n_eps < COHORT_SWIM_MAX_ENDPOINTS; i++)
        if (s_valid_string(eps[i], COHORT_SWIM_ENDPOINT_MAX))
            m->eps[m->n_eps++] = cohort_strdup(eps[i]);
}

/* ---- the dissemination queue ---- */

static void s_queue(cohort_swim_t *self, s_member_t *m)
{
    if (!m->queued) {
        m->queued = true;
        self->n_queued++;
    }
    m->transmits = 0;
    m->queued_seq = ++self->queue_seq;
}

static void s_dequeue(cohort_swim_t *self, s_member_t *m)
{
    if (m->queued) {
        m->queued = false;
        self->n_queued--;
    }
}

/* Our own state or incarnation changed: spread it, and introduce it
 * afresh to every member (see cohort_swim_piggyback). */
static void s_self_changed(cohort_swim_t *self)
{
    s_queue(self, self->me);
    for (size_t i = 0; i < self->n; i++)
        self->members[i]->told = 0;
}

unsigned cohort_swim_retransmit_limit(const cohort_swim_t *self)
{
    assert(self);
    return self->cfg.retransmit_mult * s_ceil_log2((uint64_t)self->n + 1);
}

int64_t cohort_swim_suspicion_timeout(const cohort_swim_t *self)
{
    assert(self);
    if (!self->cfg.suspicion_scale)
        return self->cfg.suspicion_timeout_ms;
    unsigned f = s_ceil_log2((uint64_t)self->n + 1);
    if (f < 4)
        f = 4;
    return self->cfg.suspicion_timeout_ms * f / 4;
}

/* ---- the probe round ---- */

static void s_order_remove(cohort_swim_t *self, const s_member_t *m)
{
    for (size_t i = 0; i < self->order_len; i++) {
        if (self->order[i] != m)
            continue;
        memmove(&self->order[i], &self->order[i + 1],
                (self->order_len - i - 1) * sizeof *self->order);
        self->order_len--;
        if (i < self->order_pos)
            self->order_pos--;
        return;
    }
}

/* A member just became a probe candidate: if this round does not have it,
 * it goes in at a random place among the members not yet probed, so it is
 * probed this round rather than up to a round later (memberlist does the
 * same for joiners). */
static void s_order_insert(cohort_swim_t *self, s_member_t *m)
{
    for (size_t i = 0; i < self->order_len; i++)
        if (self->order[i] == m)
            return;
    assert(self->order_len < self->cap);
    size_t at = self->order_pos + s_rand_below(self, self->order_len - self->order_pos + 1);
    memmove(&self->order[at + 1], &self->order[at], (self->order_len - at) * sizeof *self->order);
    self->order[at] = m;
    self->order_len++;
}

/* The next member to probe, or NULL if there is no candidate. A new round
 * starts with a fresh shuffle of the candidates. */
static s_member_t *s_next_target(cohort_swim_t *self)
{
    for (int round = 0; round < 2; round++) {
        while (self->order_pos < self->order_len) {
            s_member_t *m = self->order[self->order_pos++];
            if (s_probe_candidate(m))
                return m;
        }
        self->order_len = 0;
        self->order_pos = 0;
        for (size_t i = 0; i < self->n; i++)
            if (s_probe_candidate(self->members[i]))
                self->order[self->order_len++] = self->members[i];
        for (size_t i = self->order_len; i > 1; i--) {
            size_t j = s_rand_below(self, i);
            s_member_t *t = self->order[i - 1];
            self->order[i - 1] = self->order[j];
            self->order[j] = t;
        }
    }
    return NULL;
}

/* ---- state changes ---- */

/* Sets m's state (its incarnation and endpoints already updated): starts
 * the suspicion timer for SUSPECT and, if the state changed, records when,
 * tells the caller and introduces us to a member that (re)joined. */
static void s_change(cohort_swim_t *self, s_member_t *m, cohort_swim_state_t to, const char *reason,
                     int64_t now)
{
    if (to == COHORT_SWIM_SUSPECT)
        m->suspect_deadline = now + cohort_swim_suspicion_timeout(self);
    cohort_swim_state_t from = m->state;
    if (from == to)
        return;
    bool was_candidate = s_probe_candidate(m);
    m->state = to;
    m->since = now;
    if (!was_candidate && s_probe_candidate(m))
        s_order_insert(self, m);
    if (self->ops.event) {
        cohort_swim_event_t ev = {
            .member = m->name,
            .self = m->self,
            .from = from,
            .to = to,
            .incarnation = m->incarnation,
            .reason = reason,
        };
        self->ops.event(self->arg, &ev);
    }
    /* A member that (re)joins may know nothing of us, or only what its
     * previous run knew: introduce ourselves now rather than when the
     * round robin gets to it (the envelope carries our own update). */
    bool joined =
        from == COHORT_SWIM_UNKNOWN || from == COHORT_SWIM_FAILED || from == COHORT_SWIM_LEFT;
    if (to == COHORT_SWIM_ALIVE && joined && !m->self && self->ops.gossip) {
        self->stats.gossips++;
        self->ops.gossip(self->arg, m->name);
    }
}

static const char *s_gossip_reason(cohort_swim_state_t from, cohort_swim_state_t to)
{
    switch (to) {
    case COHORT_SWIM_ALIVE:
        if (from == COHORT_SWIM_SUSPECT)
            return "refuted";
        if (from == COHORT_SWIM_FAILED || from == COHORT_SWIM_LEFT)
            return "rejoined";
        return "joined";
    case COHORT_SWIM_SUSPECT:
        return "suspected-by-gossip";
    case COHORT_SWIM_FAILED:
        return "failed-by-gossip";
    default:
        return "left";
    }
}

/* ---- lifecycle ---- */

static s_member_t *s_member_new(const char *name, int64_t now)
{
    s_member_t *m = cohort_calloc(1, sizeof *m);
    m->name = cohort_strdup(name);
    m->state = COHORT_SWIM_UNKNOWN;
    m->since = now;
    return m;
}

static void s_member_destroy(s_member_t **m_p)
{
    s_member_t *m = *m_p;
    if (!m)
        return;
    s_free_eps(m);
    free(m->name);
    free(m);
    *m_p = NULL;
}

static void s_insert(cohort_swim_t *self, size_t at, s_member_t *m)
{
    if (self->n == self->cap) {
        self->cap = self->cap ? self->cap * 2 : 16;
        self->members = cohort_realloc(self->members, self->cap * sizeof *self->members);
        self->order = cohort_realloc(self->order, self->cap * sizeof *self->order);
        self->scratch = cohort_realloc(self->scratch, self->cap * sizeof *self->scratch);
    }
    memmove(&self->members[at + 1], &self->members[at], (self->n - at) * sizeof *self->members);
    self->members[at] = m;
    self->n++;
}

cohort_swim_t *cohort_swim_new(const char *self_name, uint64_t incarnation,
                               const cohort_swim_config_t *cfg, const cohort_swim_ops_t *ops,
                               void *arg)
{
    assert(s_valid_name(self_name));
    assert(incarnation < UINT64_MAX);
    assert(ops && ops->ping && ops->ping_req && ops->ping_req_ack && ops->random);
    cohort_swim_t *self = cohort_calloc(1, sizeof *self);
    if (cfg)
        self->cfg = *cfg;
    else
        cohort_swim_config_default(&self->cfg);
    assert(self->cfg.probe_interval_ms > 0);
    assert(self->cfg.probe_timeout_ms > 0);
    assert(self->cfg.probe_timeout_ms <= self->cfg.probe_interval_ms);
    assert(self->cfg.suspicion_timeout_ms > 0);
    assert(self->cfg.retransmit_mult > 0);
    assert(self->cfg.gossip_interval_ms >= 0 && self->cfg.recheck_interval_ms >= 0);
    self->ops = *ops;
    self->arg = arg;
    /* Nonces start at a random point so that Pongs to a previous run's
     * pings, or to the node's own link pings, are unlikely to match. */
    self->next_nonce = (uint64_t)ops->random(arg) << 32 | ops->random(arg);
    s_member_t *me = s_member_new(self_name, 0);
    me->self = true;
    me->state = COHORT_SWIM_ALIVE;
    me->incarnation = incarnation;
    s_insert(self, 0, me);
    self->me = me;
    s_queue(self, me);
    return self;
}

void cohort_swim_destroy(cohort_swim_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    cohort_swim_t *self = *self_p;
    for (size_t i = 0; i < self->n; i++)
        s_member_destroy(&self->members[i]);
    free(self->members);
    free(self->order);
    free(self->scratch);
    free(self);
    *self_p = NULL;
}

bool cohort_swim_add(cohort_swim_t *self, const char *name, int64_t now)
{
    assert(self);
    if (!s_valid_name(name))
        return false;
    bool found;
    size_t at = s_search(self, name, &found);
    if (found)
        return false;
    s_insert(self, at, s_member_new(name, now));
    return true;
}

bool cohort_swim_remove(cohort_swim_t *self, const char *name)
{
    assert(self);
    if (!s_valid_name(name))
        return false;
    bool found;
    size_t at = s_search(self, name, &found);
    if (!found || self->members[at]->self)
        return false;
    s_member_t *m = self->members[at];
    if (self->probe.target == m)
        self->probe.target = NULL;
    if (self->recheck.target == m)
        self->recheck.target = NULL;
    s_order_remove(self, m);
    s_dequeue(self, m);
    memmove(&self->members[at], &self->members[at + 1], (self->n - at - 1) * sizeof *self->members);
    self->n--;
    s_member_destroy(&m);
    return true;
}

bool cohort_swim_set_endpoints(cohort_swim_t *self, const char *const *endpoints, size_t n)
{
    assert(self);
    if (n > COHORT_SWIM_MAX_ENDPOINTS || (n > 0 && !endpoints))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!s_valid_string(endpoints[i], COHORT_SWIM_ENDPOINT_MAX))
            return false;
    s_member_t *me = self->me;
    bool same = n == me->n_eps;
    for (size_t i = 0; same && i < n; i++)
        same = strcmp(me->eps[i], endpoints[i]) == 0;
    if (same)
        return true;
    s_set_eps(me, endpoints, n);
    if (!self->left && me->incarnation < UINT64_MAX - 1) {
        me->incarnation++;
        s_self_changed(self);
    }
    return true;
}

void cohort_swim_leave(cohort_swim_t *self, int64_t now)
{
    assert(self);
    if (self->left)
        return;
    self->left = true;
    self->probe.target = NULL;
    self->recheck.target = NULL;
    s_change(self, self->me, COHORT_SWIM_LEFT, "left", now);
    s_self_changed(self);
}

/* ---- probing ---- */

static void s_probe_answered(cohort_swim_t *self, bool indirect)
{
    self->probe.target = NULL;
    if (indirect)
        self->stats.probes_indirect++;
    else
        self->stats.probes_acked++;
}

static void s_probe_unanswered(cohort_swim_t *self, int64_t now)
{
    s_member_t *m = self->probe.target;
    self->probe.target = NULL;
    self->stats.probes_failed++;
    /* A SUSPECT member's timer is already running; FAILED, LEFT or UNKNOWN
     * (it changed while we probed) need nothing from us. */
    if (m->state != COHORT_SWIM_ALIVE)
        return;
    s_change(self, m, COHORT_SWIM_SUSPECT, "probe-timeout", now);
    s_queue(self, m);
}

static void s_send_ping_reqs(cohort_swim_t *self)
{
    s_member_t *target = self->probe.target;
    size_t k = s_pick(self, self->cfg.indirect_k, s_alive, target);
    for (size_t i = 0; i < k; i++) {
        self->stats.ping_reqs_sent++;
        self->ops.ping_req(self->arg, self->scratch[i]->name, target->name, self->probe.nonce);
    }
    self->probe.indirect_sent = true;
}

static void s_remove_relay(cohort_swim_t *self, size_t i)
{
    assert(i < self->n_relays);
    self->relays[i] = self->relays[--self->n_relays];
}

void cohort_swim_tick(cohort_swim_t *self, int64_t now)
{
    assert(self);
    if (!self->started) {
        self->started = true;
        /* Spread the cluster's probes over the period even if every node
         * started at once. */
        self->next_probe = now + s_rand_below(self, (size_t)self->cfg.probe_interval_ms);
        self->next_gossip = now;
        self->next_recheck = now;
    }
    /* PingReqs that got no answer in time: say so (Lifeguard's nack). */
    for (size_t i = 0; i < self->n_relays;) {
        s_relay_t *r = &self->relays[i];
        if (now < r->deadline) {
            i++;
            continue;
        }
        s_relay_t done = *r;
        s_remove_relay(self, i);
        self->ops.ping_req_ack(self->arg, done.requester, done.target, done.their_nonce, false);
    }
    /* The current probe: PingReqs after probe_timeout, a verdict at the end
     * of the period (before the next probe starts). */
    if (self->probe.target) {
        if (now >= self->probe.end)
            s_probe_unanswered(self, now);
        else if (!self->probe.indirect_sent && now >= self->probe.indirect_at)
            s_send_ping_reqs(self);
    }
    if (self->recheck.target && now >= self->recheck.end)
        self->recheck.target = NULL;
    /* Suspicions not refuted in time. */
    for (size_t i = 0; i < self->n; i++) {
        s_member_t *m = self->members[i];
        if (m->state == COHORT_SWIM_SUSPECT && now >= m->suspect_deadline) {
            s_change(self, m, COHORT_SWIM_FAILED, "suspicion-timeout", now);
            s_queue(self, m);
        }
    }
    if (!self->left && now >= self->next_probe) {
        self->next_probe = now + self->cfg.probe_interval_ms;
        s_member_t *m = s_next_target(self);
        if (m) {
            self->probe = (s_probe_t){
                .target = m,
                .nonce = s_nonce(self),
                .started = now,
                .indirect_at = now + self->cfg.probe_timeout_ms,
                .end = now + self->cfg.probe_interval_ms,
            };
            self->stats.probes++;
            self->ops.ping(self->arg, m->name, self->probe.nonce);
        }
    }
    if (self->ops.gossip && self->cfg.gossip_interval_ms > 0 && now >= self->next_gossip) {
        self->next_gossip = now + self->cfg.gossip_interval_ms;
        if (self->n_queued > 0) {
            /* SUSPECT members too: they are the ones who most need news. */
            size_t k = s_pick(self, self->cfg.gossip_fanout, s_probe_candidate, NULL);
            for (size_t i = 0; i < k; i++) {
                self->stats.gossips++;
                self->ops.gossip(self->arg, self->scratch[i]->name);
            }
        }
    }
    if (!self->left && self->cfg.recheck_interval_ms > 0 && now >= self->next_recheck) {
        self->next_recheck = now + self->cfg.recheck_interval_ms;
        if (!self->recheck.target && s_pick(self, 1, s_recheck_candidate, NULL) == 1) {
            s_member_t *m = self->scratch[0];
            self->recheck = (s_probe_t){
                .target = m,
                .nonce = s_nonce(self),
                .started = now,
                .end = now + self->cfg.probe_timeout_ms,
            };
            self->stats.rechecks++;
            self->ops.ping(self->arg, m->name, self->recheck.nonce);
        }
    }
}

static void s_min(int64_t *best, int64_t t)
{
    if (*best < 0 || t < *best)
        *best = t;
}

int64_t cohort_swim_next_due(const cohort_swim_t *self)
{
    assert(self);
    if (!self->started)
        return -1;
    int64_t due = -1;
    bool any_recheck = false;
    if (!self->left)
        s_min(&due, self->next_probe);
    if (self->probe.target) {
        s_min(&due, self->probe.end);
        if (!self->probe.indirect_sent)
            s_min(&due, self->probe.indirect_at);
    }
    if (self->recheck.target)
        s_min(&due, self->recheck.end);
    for (size_t i = 0; i < self->n_relays; i++)
        s_min(&due, self->relays[i].deadline);
    for (size_t i = 0; i < self->n; i++) {
        const s_member_t *m = self->members[i];
        if (m->state == COHORT_SWIM_SUSPECT)
            s_min(&due, m->suspect_deadline);
        any_recheck = any_recheck || s_recheck_candidate(m);
    }
    if (self->ops.gossip && self->cfg.gossip_interval_ms > 0 && self->n_queued > 0)
        s_min(&due, self->next_gossip);
    if (!self->left && self->cfg.recheck_interval_ms > 0 && any_recheck)
        s_min(&due, self->next_recheck);
    return due;
}

/* ---- what arrived ---- */

void cohort_swim_heard(cohort_swim_t *self, const char *from, int64_t now)
{
    assert(self);
    s_member_t *m = s_find(self, from);
    if (!m || m->self)
        return;
    if (self->probe.target == m && self->probe.started <= now)
        s_probe_answered(self, false);
    if (self->recheck.target == m && self->recheck.started <= now)
        self->recheck.target = NULL;
    for (size_t i = 0; i < self->n_relays;) {
        if (strcmp(self->relays[i].target, m->name) != 0) {
            i++;
            continue;
        }
        s_relay_t done = self->relays[i];
        s_remove_relay(self, i);
        self->ops.ping_req_ack(self->arg, done.requester, done.target, done.their_nonce, true);
    }
    /* First sign of a member we knew nothing about. Incarnation 0 is below
     * any real one, so its own ALIVE (or anyone's verdict) wins over this;
     * it is not gossiped, since it says nothing others could rank. */
    if (m->state == COHORT_SWIM_UNKNOWN) {
        m->incarnation = 0;
        m->weak = true;
        s_change(self, m, COHORT_SWIM_ALIVE, "joined", now);
    }
}

bool cohort_swim_ack(cohort_swim_t *self, const char *from, uint64_t nonce, int64_t now)
{
    assert(self);
    s_member_t *m = s_find(self, from);
    if (!m || m->self)
        return false;
    bool matched = (self->probe.target == m && self->probe.nonce == nonce) ||
                   (self->recheck.target == m && self->recheck.nonce == nonce);
    for (size_t i = 0; !matched && i < self->n_relays; i++)
        matched = self->relays[i].our_nonce == nonce && strcmp(self->relays[i].target, from) == 0;
    cohort_swim_heard(self, from, now);
    return matched;
}

void cohort_swim_ping_req(cohort_swim_t *self, const char *from, const char *target, uint64_t nonce,
                          int64_t now)
{
    assert(self);
    s_member_t *requester = s_find(self, from);
    if (self->left || !requester || requester->self || !s_valid_name(target)) {
        self->stats.relays_refused++;
        return;
    }
    s_member_t *t = s_find(self, target);
    if (!t || t->self) {
        self->stats.relays++;
        self->ops.ping_req_ack(self->arg, requester->name, target, nonce, t != NULL);
        return;
    }
    for (size_t i = 0; i < self->n_relays; i++) {
        if (self->relays[i].their_nonce == nonce && strcmp(self->relays[i].requester, from) == 0) {
            self->stats.relays_refused++;
            return;
        }
    }
    if (self->n_relays == COHORT_SWIM_MAX_RELAYS) {
        self->stats.relays_refused++;
        return;
    }
    s_relay_t *r = &self->relays[self->n_relays++];
    *r = (s_relay_t){
        .their_nonce = nonce,
        .our_nonce = s_nonce(self),
        .deadline = now + self->cfg.probe_timeout_ms,
    };
    /* Both fit: valid names are shorter than the buffers. */
    strcpy(r->requester, requester->name);
    strcpy(r->target, t->name);
    self->stats.relays++;
    self->ops.ping(self->arg, t->name, r->our_nonce);
}

bool cohort_swim_ping_req_ack(cohort_swim_t *self, const char *from, const char *target,
                              uint64_t nonce, bool reachable, int64_t now)
{
    assert(self);
    (void)now;
    if (!s_find(self, from))
        return false;
    if (!reachable)
        self->stats.nacks++;
    s_member_t *t = self->probe.target;
    bool matched =
        t && self->probe.nonce == nonce && s_valid_name(target) && strcmp(t->name, target) == 0;
    if (matched && reachable)
        s_probe_answered(self, true);
    return matched;
}

/* True if u (about m) is news by SWIM precedence. */
static bool s_newer(const s_member_t *m, const cohort_swim_update_t *u)
{
    if (m->state == COHORT_SWIM_UNKNOWN || m->weak || u->incarnation > m->incarnation)
        return true;
    /* The enum order is the rank: ALIVE < SUSPECT < FAILED < LEFT. */
    return u->incarnation == m->incarnation && u->state > m->state;
}

static cohort_swim_merge_t s_merge_self(cohort_swim_t *self, s_member_t *sender,
                                        const cohort_swim_update_t *u)
{
    s_member_t *me = self->me;
    if (self->left) {
        self->stats.stale++;
        return COHORT_SWIM_MERGE_STALE;
    }
    bool bad_news = u->state != COHORT_SWIM_ALIVE;
    if ((bad_news && u->incarnation >= me->incarnation) || u->incarnation > me->incarnation) {
        /* Refute: only we raise our incarnation, past anything said about
         * us (a higher one is from a previous run whose clock ran ahead). */
        me->incarnation = u->incarnation + 1;
        s_self_changed(self);
        self->stats.refutations++;
        return COHORT_SWIM_MERGE_REFUTED;
    }
    /* Old bad news still travels: send our current word after it. */
    if (bad_news)
        s_queue(self, me);
    /* Members do not tell a member news about itself, except a verdict
     * (buddy rule) or to say they know it only by sight: either way the
     * sender lacks our current update, so introduce ourselves again. */
    if (sender)
        sender->told = 0;
    self->stats.stale++;
    return COHORT_SWIM_MERGE_STALE;
}

cohort_swim_merge_t cohort_swim_merge(cohort_swim_t *self, const char *from,
                                      const cohort_swim_update_t *u, int64_t now)
{
    assert(self);
    assert(u);
    /* UINT64_MAX could never be refuted. */
    if (!s_valid_name(u->node) || (unsigned)u->state > COHORT_SWIM_LEFT ||
        u->incarnation == UINT64_MAX) {
        self->stats.rejected++;
        return COHORT_SWIM_MERGE_INVALID;
    }
    s_member_t *m = s_find(self, u->node);
    if (!m) {
        self->stats.rejected++;
        return COHORT_SWIM_MERGE_NOT_MEMBER;
    }
    if (m->self) {
        s_member_t *sender = from ? s_find(self, from) : NULL;
        return s_merge_self(self, sender && !sender->self ? sender : NULL, u);
    }
    if (!s_newer(m, u)) {
        self->stats.stale++;
        return COHORT_SWIM_MERGE_STALE;
    }
    cohort_swim_state_t old = m->state;
    /* A new incarnation may be a restart that forgot what we told it. */
    if (u->incarnation > m->incarnation)
        m->told = 0;
    m->incarnation = u->incarnation;
    m->weak = false;
    if (u->state == COHORT_SWIM_ALIVE)
        s_set_eps(m, u->endpoints, u->n_endpoints);
    s_change(self, m, u->state, s_gossip_reason(old, u->state), now);
    s_queue(self, m);
    self->stats.merged++;
    return COHORT_SWIM_MERGE_ACCEPTED;
}

/* ---- what to send ---- */

static void s_update_of(const s_member_t *m, cohort_swim_update_t *out)
{
    bool alive = m->state == COHORT_SWIM_ALIVE;
    *out = (cohort_swim_update_t){
        .node = m->name,
        .state = m->state,
        .incarnation = m->incarnation,
        .endpoints = alive ? (const char *const *)m->eps : NULL,
        .n_endpoints = alive ? m->n_eps : 0,
    };
}

static void s_spend(cohort_swim_t *self, s_member_t *m, unsigned limit)
{
    if (!m->queued)
        return;
    if (++m->transmits >= limit)
        s_dequeue(self, m);
}

size_t cohort_swim_piggyback(cohort_swim_t *self, const char *to, size_t max,
                             cohort_swim_update_t *out)
{
    assert(self);
    assert(out || max == 0);
    unsigned limit = cohort_swim_retransmit_limit(self);
    uint64_t epoch = ++self->mark_epoch;
    s_member_t *dest = to ? s_find(self, to) : NULL;
    size_t n = 0;
    if (dest && dest->self)
        dest = NULL;
    if (dest && max > 0 &&
        (dest->state == COHORT_SWIM_SUSPECT || dest->state == COHORT_SWIM_FAILED || dest->weak)) {
        s_update_of(dest, &out[n++]);
        s_spend(self, dest, limit);
    }
    /* Introduce ourselves: dissemination alone may miss a member (its
     * budget spent while few knew each other, or lost), and a member that
     * heard from us without our update only knows us at incarnation 0 and
     * without endpoints. A few tries survive loss. */
    if (dest && n < max && dest->told < COHORT_SWIM_TELL_SELF) {
        dest->told++;
        self->me->mark = epoch;
        s_update_of(self->me, &out[n++]);
        s_spend(self, self->me, limit);
    }
    while (n < max) {
        s_member_t *best = NULL;
        for (size_t i = 0; i < self->n; i++) {
            s_member_t *m = self->members[i];
            if (!m->queued || m->mark == epoch || m == dest)
                continue;
            if (!best || m->transmits < best->transmits ||
                (m->transmits == best->transmits && m->queued_seq > best->queued_seq))
                best = m;
        }
        if (!best)
            break;
        best->mark = epoch;
        s_update_of(best, &out[n++]);
        s_spend(self, best, limit);
    }
    self->stats.piggybacked += n;
    return n;
}

size_t cohort_swim_pending(const cohort_swim_t *self)
{
    assert(self);
    return self->n_queued;
}

/* ---- reading ---- */

size_t cohort_swim_size(const cohort_swim_t *self)
{
    assert(self);
    return self->n;
}

static void s_member_view(const s_member_t *m, cohort_swim_member_t *out)
{
    *out = (cohort_swim_member_t){
        .name = m->name,
        .self = m->self,
        .state = m->state,
        .incarnation = m->incarnation,
        .since = m->since,
        .endpoints = (const char *const *)m->eps,
        .n_endpoints = m->n_eps,
    };
}

void cohort_swim_member_at(const cohort_swim_t *self, size_t i, cohort_swim_member_t *out)
{
    assert(self);
    assert(i < self->n);
    assert(out);
    s_member_view(self->members[i], out);
}

bool cohort_swim_get(const cohort_swim_t *self, const char *name, cohort_swim_member_t *out)
{
    assert(self);
    assert(out);
    const s_member_t *m = s_find(self, name);
    if (!m)
        return false;
    s_member_view(m, out);
    return true;
}

size_t cohort_swim_count(const cohort_swim_t *self, cohort_swim_state_t state)
{
    assert(self);
    size_t n = 0;
    for (size_t i = 0; i < self->n; i++)
        n += self->members[i]->state == state;
    return n;
}

uint64_t cohort_swim_incarnation(const cohort_swim_t *self)
{
    assert(self);
    return self->me->incarnation;
}

void cohort_swim_stats(const cohort_swim_t *self, cohort_swim_stats_t *out)
{
    assert(self);
    assert(out);
    *out = self->stats;
}
