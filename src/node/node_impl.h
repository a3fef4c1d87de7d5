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
#include "overlay/ladder.h"
#include "overlay/seal.h"
#include "overlay/session.h"
#include "overlay/zap.h"

#include <czmq.h>
#include <stdbool.h>
#include <stdint.h>

#define S_TICK_MS 50
#define S_DOWN_AFTER_MS 5000
#define S_RTO_MIN_MS 200
#define S_RTO_MAX_MS 3000
#define S_LEAVE_FLUSH_MS 2000
/* Frames over max_message_size + this are refused by libzmq before it
 * allocates them; those between are counted and dropped by us. */
#define S_FRAME_SLACK (64 * 1024)
#define S_MAX_ROUTE 256
#define S_MAX_INTEREST 4096

typedef Cohort__Wire__Envelope node_env_t;
typedef Cohort__Wire__Message node_msg_t;

typedef struct node_quota {
    int64_t window; /* start of the current one-second window */
    uint64_t bytes, frames;
} node_quota_t;

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
    bool punch_was_up;       /* this punch socket completed a handshake once */
    int64_t punch_deadline;  /* attempt gives up at this time */
    int64_t next_punch;      /* next attempt not before */
    int64_t direct_deadline; /* when direct is declared failed */
    char observed[64];       /* on rendezvous nodes: ip:port we see it from */
    char observed_by_me[64]; /* what a rendezvous told us about us (self only) */
    struct node_peer *via;   /* relay used for this peer, NULL if none */
    cohort_seal_t *seal;     /* end-to-end sealing for relayed frames */
    int64_t rtt_relayed_us;
    /* relay quotas, when we relay frames from this peer: one window per
     * destination peer (indexed like node_t.peers), made on first use */
    struct node_quota *quota;
} node_peer_t;

typedef struct {
    uint64_t id;      /* the front's id */
    uint64_t wire_id; /* the id on the wire (unique per node run) */
    char *service;
    int64_t deadline;
} node_pending_t;

typedef struct {
    zsock_t *pipe;
    zsock_t *inbox;
    char inbox_ep[64];
    zloop_t *loop;
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
    uint32_t unhandshaken[256]; /* fds accepted, no handshake yet */
    size_t unhandshaken_count;
    /* links.c */
    unsigned my_roles;
    char observed[2][64]; /* our public address as two rendezvous nodes see it */
    char observed_from[2][64];
    uint64_t punch_attempts, punch_ok, punch_failed, rung_switches;
    uint64_t relay_frames, relay_bytes, relay_dropped;
    uint64_t seal_rejected;
} node_t;

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

/* node.c */
void node_event(node_t *self, const char *type, const char *node, const char *reason);
int node_transmit_env(node_t *self, node_peer_t *p, node_env_t *env);
node_peer_t *node_peer_by_name(node_t *self, const char *name);
int node_add_socket(node_t *self, void *sock, zloop_fn *fn);
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

/* links.c: the fallback ladder */
void links_peer_init(node_t *self, node_peer_t *p);
void links_peer_fini(node_peer_t *p);
/* Sends one encoded envelope to p on its active rung (or the best path
 * available before a rung is confirmed). Returns -1 if no path takes it. */
int links_transmit(node_t *self, node_peer_t *p, const uint8_t *buf, size_t len);
/* Sends on one given rung only (probes, pongs answering on the rung that
 * asked). */
int links_transmit_on(node_t *self, node_peer_t *p, cohort_rung_t rung, node_peer_t *via,
                      const uint8_t *buf, size_t len);
/* Handles the ladder's own envelopes (relay, punch, observed); returns
 * true if env was one of them. */
bool links_handle(node_t *self, node_peer_t *from, node_env_t *env, cohort_rung_t path);
/* A pong came back on rung. */
void links_probe_answered(node_t *self, node_peer_t *p, cohort_rung_t rung, uint64_t sent_us);
/* Once per probe interval: probes every path, updates the ladder. */
void links_probe_all(node_t *self);
/* Every tick: punch deadlines, upgrade attempts, relay choice. */
void links_tick(node_t *self);
/* A frame arrived on the ROUTER from p: rendezvous nodes note the address. */
void links_observe(node_t *self, node_peer_t *p, zmq_msg_t *frame);
/* Builds the dialled links' endpoint string for peer p (source-bound to the
 * punch port for rendezvous nodes). */
void links_dial_endpoint(node_t *self, const node_peer_t *p, const char *endpoint, char *out,
                         size_t cap);

#endif
