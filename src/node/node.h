/*
 * node: the node actor, which owns all of a node's state.
 *
 * A node runs as a CZMQ actor (zactor): one loop (loop.c) polls its overlay ROUTER
 * (bound with CURVE, admission by ZAP from the roster), one DEALER per peer
 * (CURVE client, server key from the roster), their monitors, the ZAP
 * handler and the command pipe. Above the sockets sit per-peer sessions
 * (sequence numbers, acks, resend) and messaging: unicast, request/reply to
 * services with site-local-first round robin, and pub/sub with interest
 * propagated to every peer. The front object (libcohort) talks to the node
 * only through the pipe commands below and reads deliveries from a PAIR
 * "inbox" socket; one thread at a time runs the node, the actor's or,
 * while it waits in a call, the front's (the baton, below): a message is one frame,
 * 'D' sender NUL encoded-message; an event is four, "E" type node reason.
 *
 * The overlay uses its own libzmq context, so several nodes can live in one
 * process (each has its own ZAP handler).
 *
 * Pipe protocol (front -> actor; every command gets one reply message whose
 * first frame is the decimal status code (cohort.api.Code) and second frame an
 * error text, except the binary commands below):
 *   PUB msg          SUB pattern    UNSUB pattern
 *   SERVE service            UNSERVE service
 *   REPLY node request_id msg                 STATUS         PEERS
 *   INBOX  (reply frame 3: the inbox endpoint to connect a PAIR to)
 *   ROSTER source roster signature   (source "push" or "file"; reply frames
 *          3 and 4: the refusal reason code, "" when applied, and the serial
 *          held afterwards; see roster_sync.c)
 *   YIELD  no reply: the actor hands the node to the front that asked
 *          (baton.c).
 *   RELOAD path   (re-reads the config file and applies its reloadable keys;
 *          reply frames 3 and 4: the keys applied and the changed keys that
 *          need a restart, comma-separated)
 * where msg is an encoded cohort.wire.Message. STATUS and PEERS add a frame
 * with an encoded cohort.api.Response. PUB adds the recipient count.
 *
 * Unicast sends are binary, one frame each (COHORT_NODE_CMD_*: a header of
 * COHORT_NODE_CMD_HEAD bytes, the node name and a NUL, the encoded
 * cohort.wire.Message, a unicast or a reply), so that a stream of them
 * costs no reply each (REPLY remains for other fronts):
 *   SEND    answered like the others, plus a frame "msgs bytes max epoch":
 *           send credit for that node. The actor reserves that much room in
 *           the peer's session (overlay/session.h), so the front may send
 *           up to msgs messages of bytes in all, each at most max bytes, as
 *           SEND_CREDIT without waiting: they cannot be refused. The header
 *           gives back the credit the front still held for that node.
 *           While much is unacked to that node the answer waits (briefly)
 *           for acks: pacing, see S_INFLIGHT_MAX.
 *   SEND_CREDIT   no reply; spends credit granted under epoch.
 *   RELEASE       no reply; gives back unused credit for a node.
 *   PUBLISH       no reply (node name ""; the message a publish): PUB
 *           without waiting for the recipient count. Publishing is at most
 *           once: a subscriber whose send window is full misses it
 *           (counted as queue_full), as with PUB.
 *   CALL    a request: the epoch field holds the front's request id, the
 *           message count the timeout in ms, the node name the service; no
 *           reply (the outcome is a delivery: the reply, or a failure).
 * Credit is revoked whenever the limits behind it may have changed (a
 * reload, a member removed): the actor frees every reservation and raises
 * *credit_epoch, which the front reads before spending credit. A message
 * spent under an older epoch was already on its way: it is queued as if it
 * had arrived before the revocation (dropped if its node is no longer a
 * member, as are the unacked messages of a removed member).
 */
#ifndef COHORT_NODE_NODE_H
#define COHORT_NODE_NODE_H

#include <czmq.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

/* Binary send commands: byte 0 the op, 1..8 the credit epoch, 9..12 a
 * message count, 13..20 a byte count (host order: the pipe never leaves the
 * process), then the node name, a NUL and the encoded message. */
enum {
    COHORT_NODE_CMD_SEND = 1,
    COHORT_NODE_CMD_SEND_CREDIT = 2,
    COHORT_NODE_CMD_RELEASE = 3,
    COHORT_NODE_CMD_PUBLISH = 4,
    COHORT_NODE_CMD_CALL = 5,
};
#define COHORT_NODE_CMD_HEAD 21

/* Which thread runs the node (baton.c): the actor's, or an application
 * thread inside a libcohort call that would otherwise wait for the actor.
 * Made by the front before the actor, destroyed after it. */
typedef struct cohort_node_baton cohort_node_baton_t;
typedef struct Cohort__Wire__Message Cohort__Wire__Message;
cohort_node_baton_t *cohort_node_baton_new(void);
void cohort_node_baton_destroy(cohort_node_baton_t **self_p);

/* lead: the front runs the node in its own thread until the node wrote
 * to the pipe or the inbox (NEWS), timeout_ms passed (-1: no limit), or a
 * signal came, if nobody runs it; if the actor does, returns ACTOR (the
 * front waits for the actor as before). */
enum {
    COHORT_NODE_LEAD_TIMEOUT,
    COHORT_NODE_LEAD_NEWS,
    COHORT_NODE_LEAD_SIGNAL,
    COHORT_NODE_LEAD_ACTOR,
    COHORT_NODE_LEAD_STOPPED,
    COHORT_NODE_HELD,
};
int cohort_node_lead(cohort_node_baton_t *self, int timeout_ms);
/* The same in steps. take: HELD (the front now runs the node), or ACTOR,
 * or STOPPED; from the actor it takes the node only if from_actor (asking
 * it to yield on front_pipe, the front's end of the actor pipe: two
 * wakeups). While held: exec runs a binary command (node.h) as if it
 * came on the pipe, closing cmd, without the pipe (pipe_first: after
 * what the front put on the pipe before, if still there); run runs the loop as
 * lead does, and a delivery made while the inbox is empty goes to *slot
 * instead (slot an initialised, empty message; NULL: the inbox); STOPPED
 * from run means the node stopped and is no longer held. give leaves the
 * node (idle). */
int cohort_node_take(cohort_node_baton_t *self, void *front_pipe, bool from_actor);
void cohort_node_exec(cohort_node_baton_t *self, zmq_msg_t *cmd, bool pipe_first);
/* exec of a CALL (request id, service, timeout) given as the message itself
 * rather than encoded in a command: nothing to encode here and decode
 * there. msg is read (and may be changed) only during the call. */
void cohort_node_call(cohort_node_baton_t *self, uint64_t id, const char *service,
                      Cohort__Wire__Message *msg, long timeout_ms, bool pipe_first);
/* Where deliveries made while the front waits in run go while the inbox
 * is empty: each message the node has decoded anyway (one from a peer, or
 * the reply to a request) to make(ctx, sender, msg), in order (made counts
 * them): the node encodes nothing for the front, the front decodes nothing,
 * and nothing passes through the inbox socket. Anything else (a delivery
 * frame, node.h) goes into frame (initialised and empty before run), after
 * which the run's later deliveries go to the inbox. make reads msg only
 * during the call and returns false if it cannot take it (the frame or
 * the inbox is used then). The front keeps what make took ahead of the
 * inbox: the inbox was empty each time. A run makes at most what one
 * frame from a peer holds (zpoll.c: readers stop after it), and at most
 * 256 messages or 1 MiB of payload after the first (node.c s_deliver):
 * the rest go to the inbox and its limits. */
typedef struct cohort_node_slot {
    zmq_msg_t frame;
    bool (*make)(void *ctx, const char *sender, const Cohort__Wire__Message *msg);
    void *ctx;
    size_t made, bytes; /* messages make took, and their payload bytes */
} cohort_node_slot_t;
int cohort_node_run(cohort_node_baton_t *self, int timeout_ms, cohort_node_slot_t *slot);
void cohort_node_give(cohort_node_baton_t *self);
/* Lets the actor take the node now if it is idle (before cohort_close,
 * after a command put on the pipe). */
void cohort_node_hand_back(cohort_node_baton_t *self);

/* Arguments for zactor_new(cohort_node_actor, args). The actor copies what
 * it needs before signalling; args may be freed after zactor_new returns. */
typedef struct cohort_node_args {
    const char *config_path;
    /* Where the actor binds its inbox; "" picks one (INBOX tells it). A
     * front that connects its PAIR here before starting the actor (inproc
     * allows connecting first) misses no event of the node's first
     * moments. */
    char inbox[64];
    char error[1024]; /* set by the actor when it fails to start */
    /* The credit epoch (see above), written by the actor, read by the
     * front: the one thing they share. Must outlive the actor. */
    _Atomic uint64_t *credit_epoch;
    /* limits.max_message_size at start, set by the actor: the front checks
     * publishes against it before sending them without an answer (the
     * actor checks again: a reload may have lowered it). */
    size_t max_message_size;
    /* Bytes of deliveries ('D' frames) in the inbox: the actor adds what it
     * delivers, the front subtracts what it reads, so the actor can hold
     * them to limits.receive_bytes. NULL: no byte bound (only
     * limits.receive_queue). Must outlive the actor. */
    _Atomic uint64_t *inbox_bytes;
    /* Messages (deliveries and events) in the inbox: the actor adds, the
     * front subtracts what it read, so it need not ask the socket when
     * nothing is there. NULL: not counted. Must outlive the actor. */
    _Atomic int64_t *inbox_count;
    /* NULL: the actor's thread always runs the node. Must outlive the
     * actor. */
    cohort_node_baton_t *baton;
} cohort_node_args_t;

/* The actor body. Signals 0 on the pipe when running, -1 (with args->error
 * filled in) if the node could not start. Runs on the actor's thread. */
void cohort_node_actor(zsock_t *pipe, void *args);

#endif
