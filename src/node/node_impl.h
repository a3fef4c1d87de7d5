/*
 * node_impl: the node actor's private types, shared by node.c (actor,
 * commands, messaging) and links.c (the fallback ladder: rendezvous, hole
 * punching, relays, probes). Nothing outside src/node includes this.
 */
#ifndef COHORT_NODE_NODE_IMPL_H
#define COHORT_NODE_NODE_IMPL_H

#include "api.pb-c.h"
#include "config/config.h"
#include "envelope.pb-c.h"
#include "node/identity.h"
#include "node/node.h"
#include "overlay/ladder.h"
#include "overlay/seal.h"
#include "overlay/session.h"
#include "overlay/swim.h"
#include "overlay/zap.h"
#include "wire/arena.h"

#include <czmq.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#define S_TICK_MS 50
/* A dealer nothing came in on for this long is not asked after a send on
 * it (links.c s_send_direct). */
#define S_DEALER_QUIET_MS 2000
/* What one run of the node by a waiting application thread hands it
 * beyond the first message (node.h cohort_node_slot_t); the rest go to
 * the inbox, whose limits hold. */
#define S_HANDED_MAX 256
#define S_HANDED_MAX_BYTES (1u << 20)
#define S_DOWN_AFTER_MS 5000
#define S_RTO_MIN_MS 200
#define S_RTO_MAX_MS 3000
#define S_LEAVE_FLUSH_MS 2000
/* Frames over max_message_size + this are refused by libzmq before it
 * allocates them; those between are counted and dropped by us. */
#define S_FRAME_SLACK (64 * 1024)
/* A peer's session holds at most limits.send_queue messages and this many
 * bytes per message of that limit. */
#define S_SESSION_BYTES_PER_MSG (64 * 1024)
#define S_MAX_ROUTE 256
#define S_MAX_INTEREST 4096
/* Send credit granted to the front per node at a time (node.h). */
#define S_CREDIT_MSGS 256
#define S_CREDIT_BYTES (4 * 1024 * 1024)
/* Pacing: past this many unacked bytes to a node, the answer to a SEND
 * waits for acks to bring it under S_CREDIT_BYTES, at most S_PACE_MAX_MS. */
#define S_INFLIGHT_MAX (2 * S_CREDIT_BYTES)
/* ... both divided by this through a relay */
#define S_RELAY_CREDIT_DIV 4
#define S_PACE_MAX_MS 20
/* A handler reading a peer's socket returns after this long (checked
 * every 16 frames) so timers, other sockets and acks get their turn. */
#define S_TURN_MS 10
#define S_TURN_OVER(frames, start) (((frames)&15) == 15 && node_now() - (start) >= S_TURN_MS)
/* Data envelopes coalesced into one Batch frame per peer and flush: their
 * bodies at most S_BATCH_BYTES in all, each at most a third of that
 * (bigger ones go alone; 16 KiB messages still go three to a frame). A
 * batch frame, with its per-message headers and a relay's envelope and
 * seal, stays under S_FRAME_SLACK, which every node accepts on top of its
 * own limits.max_message_size (node_frame_max): a batch is never refused
 * where its messages one by one would not be, whatever the receiver's
 * limit. */
/* Delayed acks: an ack waits up to S_ACK_DELAY_MS for Data going to the
 * same peer to ride on (a request's reply, the next request); it leaves at
 * once when S_ACK_EVERY messages or S_ACK_BYTES bytes are owed, or when a
 * duplicate came (the peer is resending: it missed our acks). */
#define S_ACK_DELAY_MS 5
#define S_ACK_EVERY 64
#define S_ACK_BYTES (256 * 1024)
#define S_BATCH_MAX 256
#define S_BATCH_BYTES (52 * 1024)
#define S_BATCH_ONE_MAX (S_BATCH_BYTES / 3)
_Static_assert(S_BATCH_BYTES + S_BATCH_MAX * 32 + 1024 <= S_FRAME_SLACK,
               "a batch frame (32 B of headers per message, 1 KiB for a relay's envelope and "
               "seal) fits any receiver's frame bound");

/* One Data envelope waiting for the batch flush; body borrowed from the
 * session, which cannot free it before it was sent (node.c). */
typedef struct {
    uint64_t stream, seq;
    const uint8_t *body;
    size_t len;
} node_batched_t;

/* inbox.c: one peer's deliveries waiting for room in the inbox, oldest
 * first, and how often it was throttled. */
typedef struct node_rxq {
    zmq_msg_t *ring; /* cap slots, made on first use */
    size_t cap, head, count, bytes;
    size_t peak;        /* the most that ever waited */
    uint64_t throttled; /* reliable Data taken back: its queue was full */
    uint64_t throttled_logged;
    int64_t logged_at; /* last delivery.throttled line, ms */
} node_rxq_t;

typedef Cohort__Wire__Envelope node_env_t;
typedef Cohort__Wire__Message node_msg_t;

typedef struct node_quota {
    int64_t window;         /* start of the current one-second window */
    uint64_t bytes, frames; /* frames: messages (Relay.count), at least 1 a frame */
} node_quota_t;

/* roster_sync.c: what a node keeps per peer for live roster changes. */
#define NODE_ROSTER_INBOUND 4 /* inbound connections remembered per peer */
typedef struct node_roster_peer {
    /* ROUTER connections the peer dialled in: libzmq cannot close one of a
     * ROUTER's connections, so a removed member's are shut down by fd,
     * after checking both ends still are what they were. */
    struct {
        int fd;         /* -1: free */
        uint64_t route; /* hash of the routing id libzmq gave that connection */
        char local[64], remote[64];
    } inbound[NODE_ROSTER_INBOUND];
    unsigned inbound_next;
    uint64_t serial;      /* the roster serial the peer last said it holds */
    uint64_t sent_serial; /* the serial last sent to it, and when (ms) */
    int64_t sent_at;
    time_t not_before, not_after;   /* its certificate window (admission) */
    uint8_t fp[COHORT_CERT_FP_LEN]; /* its certificate (revocation) */
} node_roster_peer_t;

/* A refused key's log state (node.c s_log_refused). */
#define NODE_REFUSED_LOG 32
#define S_REFUSED_LOG_MS 60000
typedef struct {
    char key[41]; /* Z85; "" when free */
    int64_t at;   /* when last logged */
    uint64_t suppressed;
} node_refused_t;

typedef struct node_peer {
    char *name;
    char *site;
    char fp_hex[COHORT_CERT_FP_HEX_LEN + 1];
    unsigned roles;
    uint8_t key[COHORT_KEY_LEN];
    char *endpoints[COHORT_ROSTER_MAX_ENDPOINTS];
    size_t endpoint_count;
    void *dealer;  /* our link to them (we are the CURVE client) */
    void *monitor; /* PAIR reading the dealer's monitor events */
    bool dealer_up;
    /* when a frame last came in on the dealer (ms, 0: never): the peer
     * sends there only while its own dealer to us is down (links.c) */
    int64_t dealer_heard;
    bool learned;       /* endpoints learned (hello, gossip, cache, beacon), not the roster's */
    bool learned_ok;    /* ... and the dealer to them completed a handshake */
    int64_t learned_at; /* ms */
    uint8_t route[S_MAX_ROUTE]; /* their dealer's routing id on our ROUTER */
    size_t route_len;
    bool hello_in;
    bool up;
    uint64_t epoch;
    cohort_session_t *session;
    int64_t last_seen; /* ms, 0 never */
    int64_t rtt_us;    /* -1 unknown */
    uint64_t msgs_in, msgs_out, bytes_in, bytes_out;
    char **services, **patterns;
    size_t service_count, pattern_count;
    uint64_t interest_version;
    /* the fallback ladder (links.c) */
    cohort_ladder_t ladder;
    const char *reason; /* why not on a higher rung (static string) */
    void *punch;        /* punched link socket, NULL if none */
    void *punch_mon;
    bool punch_up;
    bool punch_was_up;             /* this punch socket completed a handshake once */
    int64_t punch_deadline;        /* attempt gives up at this time */
    int64_t punch_up_at;           /* when its handshake completed, ms */
    int punch_fd;                  /* its TCP socket (libzmq's), -1 unknown */
    char punch_at[64];             /* the address it dials, ip:port */
    cohort_ladder_retry_t upgrade; /* punch attempts: backoff and jitter */
    int64_t direct_deadline;       /* punching waits for direct until then */
    char observed[64];             /* on rendezvous nodes: ip:port we see it from */
    char observed_by_me[64];       /* what a rendezvous told us about us (self only) */
    struct node_peer *via;         /* relay used for this peer, NULL if none */
    cohort_seal_t *seal;           /* end-to-end sealing for relayed frames */
    int64_t rtt_relayed_us;
    /* relay quotas, when we relay frames from this peer: one window per
     * destination peer (indexed like node_t.peers), made on first use */
    struct node_quota *quota;
    /* roster_sync.c */
    node_roster_peer_t rs;
    /* Data waiting for the end of this round of front commands (node.c) */
    node_batched_t *batch; /* S_BATCH_MAX slots, made on first use */
    size_t batch_count, batch_bytes;
    node_rxq_t rxq;     /* inbox.c */
    bool interest_owed; /* our interest did not fit its window: the tick resends */
    /* owed since our last ack to it (delayed acks, node.c) */
    uint32_t ack_owed_msgs;
    size_t ack_owed_bytes;
    bool ack_urgent;
} node_peer_t;

typedef struct {
    uint64_t id;      /* the front's id */
    uint64_t wire_id; /* the id on the wire (unique per node run) */
    char *service;
    int64_t deadline;
    char *node; /* the provider asked; NULL when this node serves it */
} node_pending_t;

typedef struct node_zsock node_zsock_t; /* zpoll.c */

/* loop.c: the node's event loop (descriptors and timers), run by whichever
 * thread holds the node (node.h). Handlers return -1 to stop the node.
 * Timer ids are positive; times 0 repeats forever. node_loop_run runs it
 * until a handler returned -1 (-1), *stop is set after a pass (1),
 * timeout_ms passed (0; 0 ms is one pass, -1 no limit), or a signal
 * interrupted the wait and return_on_signal (2). */
typedef struct node_loop node_loop_t;
typedef int(node_poll_fn)(node_loop_t *loop, zmq_pollitem_t *item, void *arg);
typedef int(node_timer_fn)(node_loop_t *loop, int timer_id, void *arg);
node_loop_t *node_loop_new(void);
void node_loop_destroy(node_loop_t **self_p);
int node_loop_poller(node_loop_t *self, int fd, node_poll_fn *fn, void *arg);
void node_loop_poller_end(node_loop_t *self, int fd);
int node_loop_timer(node_loop_t *self, size_t delay, size_t times, node_timer_fn *fn, void *arg);
void node_loop_timer_end(node_loop_t *self, int id);
int node_loop_run(node_loop_t *self, int timeout_ms, const bool *stop, bool return_on_signal);
/* fn(arg) runs before each wait of the loop (NULL: nothing); -1 stops it */
void node_loop_before_wait(node_loop_t *self, int (*fn)(void *arg), void *arg);

typedef struct {
    zsock_t *pipe;
    zsock_t *inbox;
    char inbox_ep[64];
    node_loop_t *loop;
    cohort_config_t *cfg;
    cohort_identity_t *id;
    void *ctx;
    void *zap;
    void *router;
    void *router_mon;
    uint8_t public_key[COHORT_KEY_LEN];
    uint8_t secret_key[COHORT_KEY_LEN];
    uint64_t epoch;
    int64_t started;
    node_peer_t *peers;
    size_t peer_count;
    cohort_zap_stats_t zap_stats;
    Cohort__Api__Counters counters;
    char **services, **patterns;
    size_t service_count, pattern_count;
    uint64_t interest_version;
    node_pending_t *pending;
    size_t pending_count;
    uint64_t next_wire_id;
    zhashx_t *rr; /* service -> round-robin counter */
    bool terminating;
    int64_t leave_deadline;
    /* send credit (node.h): the epoch, and where the front reads it */
    uint64_t credit_epoch;
    _Atomic uint64_t *credit_epoch_shared;
    _Atomic uint64_t credit_epoch_own; /* when the front gave none */
    /* bytes of deliveries in the inbox, not yet read (node.h); NULL when
     * the front does not count them */
    _Atomic uint64_t *inbox_bytes_shared;
    _Atomic int64_t *inbox_count_shared; /* messages in the inbox (node.h), or NULL */
    bool batching;                       /* emitted Data waits for s_batch_flush_all */
    bool resending;                      /* go-back-N from the tick: relayed Data leaves alone */
    uint32_t tx_msgs;                    /* messages in the envelope being sent (Relay.count) */
    struct node_peer *deferred;          /* a SEND answer held back for pacing */
    int64_t deferred_until;
    int ping_timer;             /* every links.probe_timeout / 3; remade when a reload changes it */
    int ack_timer;              /* one-shot: sends the acks held back (S_ACK_DELAY_MS), 0: none */
    uint32_t unhandshaken[256]; /* fds accepted, no handshake yet */
    size_t unhandshaken_count;
    /* links.c */
    unsigned my_roles;
    char observed[2][64]; /* our public address as two rendezvous nodes see it */
    char observed_from[2][64];
    uint64_t punch_attempts, punch_ok, punch_failed, rung_switches;
    uint64_t punch_requests; /* PunchRequests sent (a rendezvous may decline) */
    uint64_t rng;            /* jitter source (xorshift64), seeded on first use */
    uint64_t relay_frames, relay_bytes, relay_dropped;
    uint64_t seal_rejected;
    /* roster_sync.c. peers has room for peer_cap elements, allocated once
     * (see roster_sync_start), so adding a member never moves a peer. */
    size_t peer_cap;
    uint64_t dealer_seq;                    /* numbers dealer monitor endpoints */
    time_t roster_recheck_at;               /* next time a member's admission changes by itself */
    int roster_timer;                       /* pending gossip: one-shot timer id, 0 none */
    struct node_roster_offer *roster_offer; /* newest roster a peer sent, not yet tried */
    uint64_t roster_applied, roster_rejected, roster_sent;
    bool delivery_failed; /* the inbox refused the last delivery */
    cohort_arena_t arena; /* what node_process_frame decodes, reset after each */
    node_refused_t refused_log[NODE_REFUSED_LOG]; /* s_log_refused */
    int frame_depth; /* node_process_frame nesting (a relayed envelope) */
    /* inbox.c: deliveries waiting in the peers' queues, the peer the next
     * drain round starts at, and the Data being handled (its sender) */
    size_t rxq_total;
    size_t rxq_next;
    bool rxq_polling;
    int rxq_timer; /* loop timer id retrying the drain past receive_bytes, 0: none */
    struct node_peer *delivering;
    /* members.c */
    cohort_swim_t *swim;
    uint64_t swim_rng;
    uint64_t swim_pings;
    bool cache_dirty;    /* the bootstrap cache is behind */
    int64_t cache_saved; /* when it was last written, ms */
    int beacon_fd;       /* LAN beacon socket, -1 off */
    uint64_t beacon_tag;
    int64_t beacon_next;
    uint64_t beacon_sent, beacon_heard, beacon_ignored;
    /* zpoll.c: the ZeroMQ sockets the loop watches */
    node_zsock_t **zsocks;
    size_t zsock_count, zsock_cap;
    uint64_t zsock_changes; /* bumped when one comes or goes */
    bool zsock_settling;
    int zsock_kick; /* one-shot loop timer id for dirty sockets, 0: none */
    /* a settle stopped when the front had its message (front_handed):
     * the dirty sockets are asked before the loop next waits */
    bool zsock_deferred;
    /* baton.c: the node wrote to the pipe or the inbox (ends a front's
     * run), and the front asked the actor to yield (ends the actor's) */
    bool front_news, yield;
    /* the front's slot was filled in this run: readers stop reading on,
     * the rest waits until after the front's next send (zpoll.c) */
    bool front_handed;
    /* where a delivery goes instead of the inbox while the front runs the
     * node waiting for one and the inbox is empty; NULL: the inbox */
    cohort_node_slot_t *front_slot;
} node_t;

/* node.c: a binary command (node.h) from a front that holds the node, as
 * if it came on the pipe, then whatever it made ready (cmd is closed). */
void node_exec(node_t *self, zmq_msg_t *cmd, bool pipe_first);
/* The same for a CALL, given as the front's message itself (not encoded):
 * msg is only read, and may be changed while this runs. */
void node_exec_call(node_t *self, uint64_t id, const char *service, node_msg_t *msg, long timeout,
                    bool pipe_first);
/* Counts messages put in (1) or taken back from (-1) the inbox. */
void node_inbox_counted(node_t *self, int delta);
/* Whether the front has read everything put in the inbox (false when it is
 * not counted). */
bool node_inbox_empty(node_t *self);

/* baton.c: runs the node on the actor's thread while it holds the baton,
 * until a handler stops it. */
void node_baton_actor(node_t *node, cohort_node_baton_t *baton);

/* protobuf-c's string fields are `char *`, but outgoing messages are only
 * read by the encoder: literals may be put there without being written. */
static inline char *node_str(const char *text)
{
    return (char *)(uintptr_t)text;
}

static inline int64_t node_now(void)
{
    return zclock_mono();
}

/* The largest frame a peer may send: one message of
 * limits.max_message_size with its envelope, or a batch (at most
 * S_FRAME_SLACK, whatever the limit). libzmq's ZMQ_MAXMSGSIZE is the
 * looser max_message_size + S_FRAME_SLACK; past this bound a frame is
 * counted as oversized. */
static inline size_t node_frame_max(const node_t *self)
{
    size_t one = (size_t)self->cfg->max_message_size + 1024;
    return one > S_FRAME_SLACK ? one : S_FRAME_SLACK;
}

/* node.c */
void node_event(node_t *self, const char *type, const char *node, const char *reason);
int node_transmit_env(node_t *self, node_peer_t *p, node_env_t *env);
/* Encodes env (version set) straight into *out, initialised here: the
 * frame is sent as it is, no copy. */
void node_encode(node_env_t *env, zmq_msg_t *out);
node_peer_t *node_peer_by_name(node_t *self, const char *name);
/* zpoll.c: the loop watches sock (through its ZMQ_FD) and calls fn(loop,
 * item, arg) when it is ready for events; node_add_socket is for input,
 * with the node as arg. The node calls node_touched after it sent on a
 * watched socket outside that socket's own handler (the send may have
 * taken the wakeup with it); node_zsocks_sweep asks every socket (each
 * tick). */
int node_add_socket(node_t *self, void *sock, node_poll_fn *fn);
/* A reader's handler is called without asking the socket first (its own
 * receive is the ask) and calls node_drained when a receive found the
 * socket empty (EAGAIN): libzmq processed the socket's commands in that
 * receive, so the next change fires its descriptor, and the socket is not
 * asked again (unless the node sent on it since). Saves two ZMQ_EVENTS
 * asks, each a getpid() and a poll(), per wakeup. */
int node_add_reader(node_t *self, void *sock, node_poll_fn *fn);
void node_drained(node_t *self, void *sock);
int node_watch_socket(node_t *self, void *sock, short events, node_poll_fn *fn, void *arg);
void node_unwatch_socket(node_t *self, void *sock);
void node_touched(node_t *self, void *sock);
int node_zsocks_sweep(node_t *self);
/* Asks the sockets that were used since their state was read. */
int node_zsocks_settle(node_t *self);
/* The loop's call before each wait (node_loop_before_wait): does what a
 * settle left for after the front had its message (zsock_deferred). */
int node_zsocks_before_wait(void *node);
void node_zsocks_free(node_t *self);
void node_handle_envelope(node_t *self, node_peer_t *p, node_env_t *env, cohort_rung_t path,
                          node_peer_t *via);
void node_emit_data(void *arg, uint64_t stream, uint64_t seq, const uint8_t *body, size_t len);
/* Receives one single-frame message into body (always initialised; the
 * caller closes it); extra frames are drained and counted. -1: none. */
int node_recv_one(node_t *self, void *sock, zmq_msg_t *body);
/* Reads one socket-monitor event (id, and its value if value is non-NULL:
 * an fd for connection events). -1 when none waits. */
int node_read_monitor(void *sock, uint16_t *event, uint32_t *value);
/* Decodes and handles one frame from authenticated peer p, arrived on path. */
void node_process_frame(node_t *self, node_peer_t *p, zmq_msg_t *body, cohort_rung_t path,
                        node_peer_t *via);

/* node.c: peers come and go with the roster (roster_sync.c decides). */
/* Adds admitted member m as a peer at the end of peers (no event): session,
 * ladder, a dealer when it advertises endpoints, and this node's interest.
 * Returns NULL (err set) only when peers is full. */
node_peer_t *node_peer_add(node_t *self, const cohort_member_t *m, cohort_err_t *err);
/* Takes roles, site, fingerprint and advertised endpoints from m (the same
 * key): re-dials when the endpoints to dial changed. */
void node_peer_update(node_t *self, node_peer_t *p, const cohort_member_t *m);
/* Closes every link to p (dealer, punched socket), fails the requests it
 * was asked (NO_RESPONDERS, why), drops its session and removes it from
 * peers. Peers after it move down one place: their addresses change, and
 * via pointers and relay quotas are fixed here. Run it only from the pipe
 * or a timer handler, never inside a handler that holds a peer pointer. */
void node_peer_remove(node_t *self, node_peer_t *p, const char *why);

/* ---- roster_sync.c: live roster distribution ----
 * A node accepts a roster pushed by an operator (API RosterPush, SIGHUP) or
 * sent by a peer (RosterData) only when it verifies against a trusted CA,
 * names this cluster, passes the roster checks, has a higher serial than
 * the one held and still admits this node; it persists it in state_dir and
 * only then swaps it in and brings the peers in line (closing the links of
 * members no longer admitted at once), then sends it to every peer. Peers
 * holding a lower serial (Hello, Ping, Pong) are sent it too, at most once
 * per NODE_ROSTER_RESEND_MS per peer and serial. */
#define NODE_ROSTER_RESEND_MS 3000

typedef enum {
    NODE_ROSTER_FROM_PUSH,   /* an operator, through the API */
    NODE_ROSTER_FROM_FILE,   /* trust.roster re-read on SIGHUP */
    NODE_ROSTER_FROM_GOSSIP, /* a peer */
} node_roster_source_t;

typedef struct {
    bool applied;
    uint64_t serial;    /* the serial held afterwards */
    const char *reason; /* "" when applied, else a stable reason code */
    char error[768];    /* for people: what and why */
} node_roster_result_t;

/* Builds the peers from the roster at start (no events). */
int roster_sync_start(node_t *self, cohort_err_t *err);
void roster_sync_stop(node_t *self);
/* Verifies, persists and applies roster bytes (see above). from names the
 * peer that sent them (NULL unless gossip). Must not run inside a handler
 * holding a peer pointer: gossip goes through roster_sync_offer. */
void roster_sync_apply(node_t *self, node_roster_source_t source, const char *from,
                       const uint8_t *roster, size_t len, const uint8_t *sig, size_t sig_len,
                       node_roster_result_t *result);
/* A peer sent RosterData: kept, and tried from a timer right after the
 * current handler (applying removes peers). */
void roster_sync_offer(node_t *self, node_peer_t *from, const Cohort__Wire__RosterData *data);
/* A peer said which serial it holds (Hello, Ping, Pong). */
void roster_sync_peer_serial(node_t *self, node_peer_t *p, uint64_t serial);
/* A frame from p arrived on the ROUTER: remembers its connection. */
void roster_sync_note_inbound(node_t *self, node_peer_t *p, zmq_msg_t *frame);
/* Pipe command ROSTER source roster sig: applies and answers on the pipe. */
int roster_sync_cmd(node_t *self, zmsg_t *cmd);

/* ---- members.c: the membership view (SWIM), bootstrap cache, LAN beacon ---- */
#define NODE_PIGGYBACK_MAX 6 /* member updates attached to one envelope */

typedef struct {
    Cohort__Wire__MemberUpdate u[NODE_PIGGYBACK_MAX];
    Cohort__Wire__MemberUpdate *up[NODE_PIGGYBACK_MAX];
} members_pb_t;

/* Starts SWIM with every peer as a member, loads the bootstrap cache (and
 * dials what it names), opens the LAN beacon if configured. */
int members_start(node_t *self);
/* Tells SWIM our endpoints (listen.advertise, else a concrete listen
 * address); called again when a reload changes them. */
void members_set_self_endpoints(node_t *self);
/* Saves the bootstrap cache, closes the beacon, frees SWIM. */
void members_stop(node_t *self);
/* Every tick: SWIM timers, bootstrap cache writes, beacons. */
void members_tick(node_t *self);
/* Attaches piggybacked member updates for p (NULL: anyone) to env; pb
 * holds them and must live until env is encoded. */
void members_attach(node_t *self, const node_peer_t *p, node_env_t *env, members_pb_t *pb);
/* An authenticated envelope from p: merges its updates and notes p alive.
 * Returns true if env was SWIM's alone (PingReq, PingReqAck, gossip). */
bool members_handle(node_t *self, node_peer_t *p, node_env_t *env);
/* We leave: LEFT is queued for dissemination. */
void members_leave(node_t *self);
/* Member updates still queued for dissemination. */
size_t members_pending(const node_t *self);
void members_peer_added(node_t *self, node_peer_t *p);
void members_peer_removed(node_t *self, const char *name);
/* "alive", "suspect", "failed", "left" or "unknown". Static. */
const char *members_state(const node_t *self, const char *name);
/* Fills resp->members (freed by members_free). */
void members_fill(node_t *self, Cohort__Api__Response *resp);
void members_free(Cohort__Api__Response *resp);

/* node.c: p may be dialled at these endpoints (learned from its hello,
 * gossip, the bootstrap cache or a LAN beacon; source names which, for the
 * log). Only a peer we have no dialled link to yet takes them. Returns true
 * if a dealer was opened. */
bool node_peer_learn_endpoints(node_t *self, node_peer_t *p, const char *const *endpoints, size_t n,
                               const char *source);

/* ---- inbox.c: deliveries to the application, fair across peers ---- */
/* Hands body (a delivery frame from peer p, node.h) to the application:
 * straight into the inbox while nothing waits, else behind p's earlier
 * deliveries in p's queue; takes body. Returns false, body untouched, when
 * p's queue is full: the delivery is refused (a reliable one the caller
 * takes back, so the peer resends it, and reports with
 * node_inbox_throttled). */
bool node_inbox_deliver(node_t *self, node_peer_t *p, zmq_msg_t *body);
/* A delivery not from a peer (this node's own, a reply to itself) straight
 * into the inbox, within limits.receive_queue and receive_bytes. Returns
 * 0 (taken) or -1 (refused, frame untouched). */
int node_inbox_send(node_t *self, zmq_msg_t *frame);
/* p's reliable Data was refused and taken back: counts it (per peer and
 * delivery_deferred) and logs delivery.throttled, at most every 10 s. */
void node_inbox_throttled(node_t *self, node_peer_t *p);
/* Moves waiting deliveries into the inbox, round robin across peers, until
 * it refuses or nothing waits. */
void node_inbox_drain(node_t *self);
/* p is being removed: what the inbox takes now goes, the rest of its queue
 * is dropped (counted in delivery_dropped). */
void node_inbox_peer_drop(node_t *self, node_peer_t *p);
/* Frees p's queue (the node stops). */
void node_inbox_peer_free(node_peer_t *p);

/* links.c: the fallback ladder */
void links_peer_init(node_t *self, node_peer_t *p);
void links_peer_fini(node_peer_t *p);
/* Sends one encoded envelope (node_encode) to p on its active rung (or the
 * best path available before a rung is confirmed). Returns -1 if no path
 * takes it. Sent, msg is left empty (libzmq took its buffer without a
 * copy); refused, it is untouched. The caller closes it either way. */
int links_transmit(node_t *self, node_peer_t *p, zmq_msg_t *msg);
/* The same on one given rung only (probes, pongs answering on the rung
 * that asked). */
int links_transmit_on(node_t *self, node_peer_t *p, cohort_rung_t rung, node_peer_t *via,
                      zmq_msg_t *msg);
/* Handles the ladder's own envelopes (relay, punch, observed); returns
 * true if env was one of them. */
bool links_handle(node_t *self, node_peer_t *from, node_env_t *env, cohort_rung_t path);
/* A pong came back on rung. */
void links_probe_answered(node_t *self, node_peer_t *p, cohort_rung_t rung, uint64_t sent_us);
/* Once per probe interval: probes every path, updates the ladder. */
void links_probe_all(node_t *self);
/* Every tick: punch deadlines, upgrade attempts, relay choice. */
void links_tick(node_t *self);
/* p just came up: its next upgrade attempt is due now. */
void links_peer_up(node_t *self, node_peer_t *p);
/* A direct link to p just completed its handshake (our dealer) or p just
 * reached us on our ROUTER: punching waits while it earns its probes. */
void links_direct_progress(node_t *self, node_peer_t *p);
/* A frame arrived on the ROUTER from p: rendezvous nodes note the address. */
void links_observe(node_t *self, node_peer_t *p, zmq_msg_t *frame);
/* Builds the dialled links' endpoint string for peer p (source-bound to the
 * punch port for rendezvous nodes). */
void links_dial_endpoint(node_t *self, const node_peer_t *p, const char *endpoint, char *out,
                         size_t cap);

#endif
