/*
 * swim: who in the cluster is alive, as a SWIM failure detector with
 * piggybacked dissemination (the protocol memberlist and Serf use, with
 * Lifeguard's "buddy" rule).
 *
 * Every protocol period the module probes one member, picked from a shuffled
 * round robin that is shuffled again each round: it asks the caller to ping
 * it; without an answer within probe_timeout it asks up to indirect_k other
 * alive members to ping it on its behalf (PingReq); without any answer by the
 * end of the period it marks the member SUSPECT. A suspicion that the member
 * does not refute within the suspicion timeout becomes FAILED. A member
 * refutes by raising its own incarnation and spreading ALIVE. Every change is
 * queued for dissemination: the caller attaches queued updates to the
 * envelopes it sends anyway (cohort_swim_piggyback) and merges the ones it
 * receives (cohort_swim_merge); a gossip timer asks it to send a few extra
 * envelopes while anything is queued, so news spreads in well under a
 * suspicion timeout even on an idle cluster.
 *
 * Who exists is not decided here: the roster does, and the caller adds and
 * removes members by name. Updates about names that are not members are
 * ignored. A member starts UNKNOWN (a local state that never goes on the
 * wire) until there is evidence about it: any update from gossip, or a
 * direct sign of life (it then counts as ALIVE at incarnation 0, below any
 * real incarnation, and is not gossiped). UNKNOWN and FAILED members are not
 * in the probe round; instead one of them is pinged every recheck interval,
 * so that a member coming back from a partition, or one that started after
 * us, is noticed (the ping carries our verdict about it, it refutes, and the
 * refutation comes back with the answer).
 *
 * This module is pure logic: no sockets, no threads, no clock, no
 * randomness of its own. Time comes in as int64_t milliseconds of one
 * monotonic clock, randomness through a callback, and everything to send
 * goes out through callbacks, called synchronously before the call that
 * caused them returns. It does not encode messages (the caller maps
 * cohort_swim_update_t to MemberUpdate, and the callbacks to Ping/Pong,
 * PingReq and PingReqAck in proto/envelope.proto), does not authenticate
 * (every argument naming a sender must come from an authenticated frame) and
 * is not thread safe: one instance belongs to one actor.
 *
 * Not implemented from Lifeguard: local health awareness (stretching our
 * own timeouts when we seem slow) and dynamic suspicion timeouts (they need
 * the suspecter's name, which MemberUpdate does not carry). Trust model:
 * every roster member is believed about every other member, as in SWIM; a
 * member that lies can mark others failed until they refute.
 */
/*
 * Wiring (what the node does): add and remove members as the roster says;
 * tick at cohort_swim_next_due; for every authenticated envelope from a
 * member, merge its updates (cohort_swim_merge), then cohort_swim_heard,
 * then act on the body (Ping: answer Pong; Pong: cohort_swim_ack; PingReq:
 * cohort_swim_ping_req; PingReqAck: cohort_swim_ping_req_ack); attach
 * cohort_swim_piggyback(to) to every envelope sent to a member.
 */
#ifndef COHORT_OVERLAY_SWIM_H
#define COHORT_OVERLAY_SWIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Member names are 1..COHORT_SWIM_NAME_MAX - 1 bytes. */
#define COHORT_SWIM_NAME_MAX 64
/* At most this many endpoints per member; more in an update are dropped. */
#define COHORT_SWIM_MAX_ENDPOINTS 8
/* Endpoints are 1..COHORT_SWIM_ENDPOINT_MAX - 1 bytes; others are dropped. */
#define COHORT_SWIM_ENDPOINT_MAX 256
/* PingReqs we are serving for others at once; further ones are ignored. */
#define COHORT_SWIM_MAX_RELAYS 32
/* Our own update rides on the first this-many envelopes to each member
 * after it changes (see cohort_swim_piggyback). */
#define COHORT_SWIM_TELL_SELF 3

typedef struct cohort_swim cohort_swim_t;

/* The values of the wire states are those of MemberUpdate.State. */
typedef enum {
    COHORT_SWIM_ALIVE = 0,
    COHORT_SWIM_SUSPECT = 1,
    COHORT_SWIM_FAILED = 2,
    COHORT_SWIM_LEFT = 3,
    /* Local only: no evidence about the member yet. Never on the wire. */
    COHORT_SWIM_UNKNOWN = 4,
} cohort_swim_state_t;

/* "alive", "suspect", "failed", "left", "unknown". */
const char *cohort_swim_state_name(cohort_swim_state_t state);

typedef struct cohort_swim_config {
    int64_t probe_interval_ms;    /* protocol period: one probe each (1000) */
    int64_t probe_timeout_ms;     /* direct answer wait before PingReqs (500) */
    unsigned indirect_k;          /* members asked to probe indirectly (3) */
    int64_t suspicion_timeout_ms; /* SUSPECT -> FAILED (4000) */
    /* Scale the suspicion timeout with the cluster like log n: it is
     * suspicion_timeout_ms * max(4, ceil(log2(n + 1))) / 4, i.e. x1 up to 15
     * members, x1.5 at 32..63, x2.5 at 512..1023 (false). */
    bool suspicion_scale;
    unsigned retransmit_mult;    /* each update is sent mult * ceil(log2(n+1)) times (4) */
    int64_t gossip_interval_ms;  /* while updates are queued, gossip this often (200); 0 off */
    unsigned gossip_fanout;      /* members sent a gossip envelope each time (3) */
    int64_t recheck_interval_ms; /* ping one FAILED or UNKNOWN member this often (2000); 0 off */
} cohort_swim_config_t;

/* Fills in the defaults above. */
void cohort_swim_config_default(cohort_swim_config_t *cfg);

/* What one node says about one member; the MemberUpdate of the wire. All
 * pointers are borrowed (see the functions that take or give one). */
typedef struct cohort_swim_update {
    const char *node;
    cohort_swim_state_t state; /* ALIVE..LEFT; anything else is refused */
    uint64_t incarnation;
    const char *const *endpoints; /* only ALIVE updates carry them */
    size_t n_endpoints;
} cohort_swim_update_t;

/* A member's state changed in our view. */
typedef struct cohort_swim_event {
    const char *member;       /* borrowed; valid during the callback */
    bool self;                /* the member is this node */
    cohort_swim_state_t from; /* old state (UNKNOWN for a first sighting) */
    cohort_swim_state_t to;   /* new state, never equal to from */
    uint64_t incarnation;     /* the member's incarnation now */
    /* Static string, one of:
     *   "joined"              UNKNOWN -> ALIVE (gossip, or heard from it)
     *   "rejoined"            FAILED/LEFT -> ALIVE at a higher incarnation
     *   "refuted"             SUSPECT -> ALIVE at a higher incarnation
     *   "probe-timeout"       ALIVE -> SUSPECT: our probe got no answer
     *   "suspected-by-gossip" -> SUSPECT by an update
     *   "suspicion-timeout"   SUSPECT -> FAILED: not refuted in time
     *   "failed-by-gossip"    -> FAILED by an update
     *   "left"                -> LEFT (an update, or cohort_swim_leave) */
    const char *reason;
} cohort_swim_event_t;

/* What the module asks of its caller. Every callback runs on the thread
 * that called into the module, before that call returns; names are
 * borrowed for the duration of the call. A callback may call
 * cohort_swim_piggyback (to fill the envelope it sends) and the read-only
 * functions (cohort_swim_get, _member_at, _size, ...), nothing else.
 * Envelopes sent for ping, ping_req, ping_req_ack and gossip should carry
 * cohort_swim_piggyback(self, to, ...) updates, as should every other
 * envelope the caller sends to a member. */
typedef struct cohort_swim_ops {
    /* Send a Ping with this nonce to member `to`; the member's Pong must
     * come back as cohort_swim_ack(self, to, nonce, now). Required. */
    void (*ping)(void *arg, const char *to, uint64_t nonce);
    /* Send PingReq{target, nonce} to member `to`. Required. */
    void (*ping_req)(void *arg, const char *to, const char *target, uint64_t nonce);
    /* Send PingReqAck{target, nonce, reachable} to member `to`. Required. */
    void (*ping_req_ack)(void *arg, const char *to, const char *target, uint64_t nonce,
                         bool reachable);
    /* Send member `to` an envelope whose only point is its piggybacked
     * updates: on the gossip timer, and once to a member that just joined
     * or rejoined in our view (to introduce ourselves). NULL: neither
     * (dissemination then rides on probes and the caller's own traffic). */
    void (*gossip)(void *arg, const char *to);
    /* A member's state changed. May be NULL. */
    void (*event)(void *arg, const cohort_swim_event_t *event);
    /* A uniformly random 32-bit number. Required. */
    uint32_t (*random)(void *arg);
} cohort_swim_ops_t;

/* Creates an instance for the node named self_name (a valid member name),
 * ALIVE at `incarnation`, with no other members and its ALIVE queued for
 * dissemination. The incarnation must grow from one run to the next (e.g.
 * the start time in ms) so that a restart wins over what the cluster
 * remembers of the previous run. cfg NULL means the defaults; it is copied.
 * ops is copied; arg is passed to every callback. Never returns NULL.
 * Caller owns the result (cohort_swim_destroy). */
cohort_swim_t *cohort_swim_new(const char *self_name, uint64_t incarnation,
                               const cohort_swim_config_t *cfg, const cohort_swim_ops_t *ops,
                               void *arg);

/* Frees the instance. NULL and *self_p == NULL are fine; sets *self_p to
 * NULL. */
void cohort_swim_destroy(cohort_swim_t **self_p);

/* ---- membership (the roster's decisions) ---- */

/* Adds a member, UNKNOWN, at time now. Returns false (and changes nothing)
 * if the name is already a member or is not a valid member name. */
bool cohort_swim_add(cohort_swim_t *self, const char *name, int64_t now);

/* Forgets a member: its state, queued update, probes and relays for it.
 * No event. Returns false if it is not a member or is this node. */
bool cohort_swim_remove(cohort_swim_t *self, const char *name);

/* Sets this node's endpoints (advertised and observed, at most
 * COHORT_SWIM_MAX_ENDPOINTS, each 1..COHORT_SWIM_ENDPOINT_MAX - 1 bytes;
 * copied). If the list differs from the current one (order matters), raises
 * our incarnation and queues our ALIVE, because equal incarnations are not
 * re-gossiped. Returns true if the list was valid (changed or not). */
bool cohort_swim_set_endpoints(cohort_swim_t *self, const char *const *endpoints, size_t n);

/* We leave: this node becomes LEFT at its incarnation (event "left"), which
 * is queued for dissemination. Probing stops and PingReqs are ignored from
 * now on; gossip goes on, so keep ticking (and sending) for a moment to
 * flush, e.g. until cohort_swim_pending is 0 or a deadline. Idempotent. */
void cohort_swim_leave(cohort_swim_t *self, int64_t now);

/* ---- time ---- */

/* Runs everything due at time now: PingReqs and verdicts of the current
 * probe, the next probe, suspicion timeouts, negative PingReqAcks for
 * relays that timed out, gossip and rechecks. Call it at
 * cohort_swim_next_due (being late only makes the timers late). */
void cohort_swim_tick(cohort_swim_t *self, int64_t now);

/* Absolute time in ms at which cohort_swim_tick next has something to do;
 * may be in the past (tick at once). -1 before the first tick. */
int64_t cohort_swim_next_due(const cohort_swim_t *self);

/* ---- what arrived (every argument comes from the wire) ---- */

/* Any authenticated frame arrived from member `from`. It counts as the
 * answer to our outstanding probe of it (direct, indirect or recheck) if
 * that probe started no later than now, and answers PingReqs we are
 * serving for it (reachable=true). A member we had no evidence about
 * (UNKNOWN) becomes ALIVE at incarnation 0, known "by sight" (event
 * "joined"; not gossiped; any update about it wins, and until one comes
 * our envelopes to it ask for its own). It never
 * changes a SUSPECT, FAILED or LEFT verdict or any incarnation: those are
 * only overturned by the member raising its incarnation, which it does when
 * it hears the verdict (piggybacked on whatever we send it). Unknown names
 * are ignored. */
void cohort_swim_heard(cohort_swim_t *self, const char *from, int64_t now);

/* A Pong with nonce arrived from member `from`. Implies
 * cohort_swim_heard(from). Returns true if the nonce was one of our
 * outstanding pings to `from`. */
bool cohort_swim_ack(cohort_swim_t *self, const char *from, uint64_t nonce, int64_t now);

/* Member `from` asks us to ping target for it (PingReq). We ping target
 * with a nonce of our own and answer `from` with a PingReqAck: reachable
 * as soon as target answers (cohort_swim_ack or _heard), unreachable after
 * probe_timeout. Target this node: reachable at once; target not a member:
 * unreachable at once. Ignored after leave, for a duplicate, or when
 * COHORT_SWIM_MAX_RELAYS are outstanding. */
void cohort_swim_ping_req(cohort_swim_t *self, const char *from, const char *target, uint64_t nonce,
                          int64_t now);

/* A PingReqAck arrived from member `from`. reachable=true for our current
 * probe of target (same nonce) counts as its answer; reachable=false is
 * only counted (stats.nacks). Returns true if it matched our current probe. */
bool cohort_swim_ping_req_ack(cohort_swim_t *self, const char *from, const char *target,
                              uint64_t nonce, bool reachable, int64_t now);

typedef enum {
    COHORT_SWIM_MERGE_ACCEPTED = 0, /* news: applied and queued to spread further */
    COHORT_SWIM_MERGE_STALE,        /* not newer than what we know: ignored */
    COHORT_SWIM_MERGE_REFUTED,      /* about us: we raised our incarnation */
    COHORT_SWIM_MERGE_NOT_MEMBER,   /* about a name we do not have: ignored */
    COHORT_SWIM_MERGE_INVALID,      /* bad name or state: ignored */
} cohort_swim_merge_t;

/* Merges one update (borrowed; copied as needed) that arrived at time now
 * in an envelope from member `from` (NULL if the sender is not known), by
 * SWIM precedence: a higher incarnation wins; at an equal one the state
 * ranks ALIVE < SUSPECT < FAILED < LEFT and only a higher rank wins (so
 * LEFT is final for its incarnation). ALIVE at a higher incarnation revives
 * FAILED or LEFT ("rejoined"). Anything beats UNKNOWN and knowledge by
 * sight only (see cohort_swim_heard). An accepted update replaces the
 * member's endpoints if it is ALIVE (invalid endpoints dropped), emits an
 * event if the state changed, (re)starts the suspicion timer if SUSPECT,
 * and is queued to spread further. About this node: SUSPECT, FAILED or
 * LEFT at our incarnation or above (or ALIVE above it) make us raise our
 * incarnation past it and queue our ALIVE (REFUTED); anything else is
 * STALE, but older bad news re-queues our ALIVE, and `from` is sent our own
 * update again (it evidently lacks it); after leave, news about us is
 * ignored. */
cohort_swim_merge_t cohort_swim_merge(cohort_swim_t *self, const char *from,
                                      const cohort_swim_update_t *update, int64_t now);

/* ---- what to send ---- */

/* Fills out[0..max) with updates for one envelope to member `to` (NULL:
 * no particular member) and returns how many. First, if we believe `to` is
 * SUSPECT or FAILED, our verdict about it (so it can refute at once:
 * Lifeguard's buddy rule), or if we know it only by sight, ALIVE at
 * incarnation 0 (which asks it for its own update); then, on the first
 * COHORT_SWIM_TELL_SELF
 * envelopes to `to` since our own state or incarnation last changed, our
 * own update (so every member we talk to learns our real incarnation and
 * endpoints, however gossip fared); then queued updates, fewest
 * transmissions first, newest first among equals, skipping news about
 * `to` itself. Each update handed out counts as one transmission; after mult *
 * ceil(log2(n+1)) it leaves the queue. The queue holds at most one update
 * per member, always its current state, so it is bounded by the roster.
 * The pointers in out are borrowed: valid until the next call that changes
 * the instance. */
size_t cohort_swim_piggyback(cohort_swim_t *self, const char *to, size_t max,
                             cohort_swim_update_t *out);

/* Updates queued for dissemination now. */
size_t cohort_swim_pending(const cohort_swim_t *self);

/* ---- reading ---- */

typedef struct cohort_swim_member {
    const char *name; /* borrowed, like endpoints: until the next change */
    bool self;
    cohort_swim_state_t state;
    uint64_t incarnation;
    int64_t since;                /* time of the last state change (or of cohort_swim_add) */
    const char *const *endpoints; /* latest known, kept through SUSPECT/FAILED/LEFT */
    size_t n_endpoints;
} cohort_swim_member_t;

/* Number of members, this node included. */
size_t cohort_swim_size(const cohort_swim_t *self);

/* The i-th member in name order (0 <= i < cohort_swim_size). */
void cohort_swim_member_at(const cohort_swim_t *self, size_t i, cohort_swim_member_t *out);

/* Looks up a member by name. Returns false if there is none. */
bool cohort_swim_get(const cohort_swim_t *self, const char *name, cohort_swim_member_t *out);

/* How many members (this node included) are in state. */
size_t cohort_swim_count(const cohort_swim_t *self, cohort_swim_state_t state);

/* This node's incarnation now. */
uint64_t cohort_swim_incarnation(const cohort_swim_t *self);

/* The suspicion timeout and retransmit limit in force for the current
 * number of members. */
int64_t cohort_swim_suspicion_timeout(const cohort_swim_t *self);
unsigned cohort_swim_retransmit_limit(const cohort_swim_t *self);

typedef struct cohort_swim_stats {
    uint64_t probes;          /* probes started (round robin) */
    uint64_t probes_acked;    /* ... answered directly or by heard */
    uint64_t probes_indirect; /* ... answered only through a PingReqAck */
    uint64_t probes_failed;   /* ... unanswered at the end of the period */
    uint64_t ping_reqs_sent;  /* PingReqs we sent */
    uint64_t nacks;           /* PingReqAck reachable=false received */
    uint64_t relays;          /* PingReqs we served */
    uint64_t relays_refused;  /* PingReqs ignored (full, duplicate, left) */
    uint64_t rechecks;        /* pings to FAILED/UNKNOWN members */
    uint64_t refutations;     /* times we raised our incarnation */
    uint64_t merged;          /* updates accepted */
    uint64_t stale;           /* updates not newer */
    uint64_t rejected;        /* updates about non-members or invalid */
    uint64_t piggybacked;     /* updates handed out by cohort_swim_piggyback */
    uint64_t gossips;         /* gossip envelopes asked for */
} cohort_swim_stats_t;

void cohort_swim_stats(const cohort_swim_t *self, cohort_swim_stats_t *out);

#endif
