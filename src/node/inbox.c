/*
 * inbox: deliveries from peers to the application, fair across peers.
 *
 * The node hands deliveries to its front through one inproc PAIR (the
 * inbox, limits.receive_queue deep) that never blocks the actor. When the
 * application falls behind the inbox refuses, and without more a peer
 * that floods would take every slot the application frees: the deliveries
 * of a quiet peer would be refused again and again, its resends backing off
 * to seconds. So a delivery the inbox refuses waits in its peer's own
 * bounded queue (limits.peer_receive_queue messages), and while anything
 * waits, each peer's new deliveries queue behind its own, in order. When
 * the inbox takes messages again (a POLLOUT poller, registered only while
 * something waits) the queues are drained round robin, one message per
 * peer per round, until the inbox refuses again: each peer with something
 * waiting gets an equal share of the room the application makes, however
 * fast the others send.
 *
 * A delivery waiting in a queue was received: the session acknowledged it
 * and the sender freed it. A peer whose queue is full is throttled: its
 * reliable Data is taken back (not acknowledged, so it is resent later:
 * never lost), counted per peer and in delivery_deferred, and logged at
 * most every S_LOG_EVERY_MS per peer. So memory is bounded by the inbox
 * plus peers x peer_receive_queue messages (and S_BYTES_PER_MSG bytes per
 * message of that limit), whatever the peers send.
 *
 * Not here: deliveries of this node to itself and node events go straight
 * to the inbox as before (dropped and counted when it is full); deciding
 * what is delivered (node.c); acks and resends (the session).
 */
#include "node/node_impl.h"
#include "util/log.h"
#include "util/mem.h"

#include <assert.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <string.h>
#include <zmq.h>

/* A peer's queue holds at most peer_receive_queue messages and this many
 * bytes per message of that limit, as a session's send window (but always
 * one message, however large, so a big one is never refused forever). */
#define S_BYTES_PER_MSG (64 * 1024)
/* delivery.throttled is logged at most this often per peer. */
#define S_LOG_EVERY_MS 10000
/* The first ring allocated for a peer; it doubles up to the limit. */
#define S_RING_MIN 16

/* Sends a delivery frame ('D' sender NUL message, node.h) on the inbox
 * without blocking. Returns 0 (frame taken), S_FULL when the inbox holds
 * limits.receive_queue messages, S_FULL_BYTES when what the application
 * has not read would pass limits.receive_bytes (one message always goes,
 * whatever its size); frame untouched then. The bytes are counted before
 * the send: the front subtracts as soon as it has read one. */
#define S_FULL (-1)
#define S_FULL_BYTES (-2)
static int s_send(node_t *self, zmq_msg_t *frame)
{
    size_t size = zmq_msg_size(frame);
    if (self->front_slot && node_inbox_empty(self)) {
        /* the front runs the node and waits: straight to it (baton.c) */
        zmq_msg_move(&self->front_slot->frame, frame);
        self->front_slot = NULL;
        self->front_news = true;
        self->front_handed = true;
        return 0;
    }
    self->front_slot = NULL; /* what comes next goes after this */
    _Atomic uint64_t *counted = self->inbox_bytes_shared;
    uint64_t unread = counted ? atomic_fetch_add(counted, size) : 0;
    if (unread && unread + size > self->cfg->receive_bytes) {
        atomic_fetch_sub(counted, size);
        return S_FULL_BYTES;
    }
    node_inbox_counted(self, 1);
    int rc = zmq_msg_send(frame, zsock_resolve(self->inbox), ZMQ_DONTWAIT);
    node_touched(self, zsock_resolve(self->inbox));
    if (rc < 0) {
        node_inbox_counted(self, -1);
        if (counted)
            atomic_fetch_sub(counted, size);
        return S_FULL;
    }
    return 0;
}

int node_inbox_send(node_t *self, zmq_msg_t *frame)
{
    return s_send(self, frame) == 0 ? 0 : -1;
}

static zmq_msg_t *s_slot(node_rxq_t *q, size_t i)
{
    return &q->ring[(q->head + i) % q->cap];
}

static void s_grow(node_rxq_t *q, size_t cap)
{
    zmq_msg_t *ring = cohort_calloc(cap, sizeof *ring);
    for (size_t i = 0; i < q->count; i++) {
        zmq_msg_init(&ring[i]);
        zmq_msg_move(&ring[i], s_slot(q, i));
        zmq_msg_close(s_slot(q, i));
    }
    free(q->ring);
    q->ring = ring;
    q->cap = cap;
    q->head = 0;
}

/* Drains while the inbox has room: the POLLOUT poller's handler. */
static int s_on_room(node_loop_t *loop, zmq_pollitem_t *item, void *arg)
{
    (void)loop;
    (void)item;
    node_inbox_drain(arg);
    return 0;
}

static void s_poll_room(node_t *self, bool on)
{
    if (self->rxq_polling == on || !self->loop)
        return;
    if (on)
        node_watch_socket(self, zsock_resolve(self->inbox), ZMQ_POLLOUT, s_on_room, self);
    else
        node_unwatch_socket(self, zsock_resolve(self->inbox));
    self->rxq_polling = on;
}

static int s_on_room_timer(node_loop_t *loop, int timer_id, void *arg)
{
    (void)loop;
    (void)timer_id;
    node_t *self = arg;
    self->rxq_timer = 0;
    node_inbox_drain(self);
    return 0;
}

/* Waits for room: the socket says when it has some (POLLOUT); the
 * application reading bytes does not signal, so past receive_bytes the
 * drain is retried every S_BYTES_RETRY_MS (POLLOUT would fire at once,
 * over and over). */
#define S_BYTES_RETRY_MS 2
static void s_wait_room(node_t *self, int why)
{
    if (why == S_FULL) {
        s_poll_room(self, true);
        return;
    }
    s_poll_room(self, false);
    if (!self->rxq_timer && self->loop)
        self->rxq_timer = node_loop_timer(self->loop, S_BYTES_RETRY_MS, 1, s_on_room_timer, self);
}

void node_inbox_throttled(node_t *self, node_peer_t *p)
{
    node_rxq_t *q = &p->rxq;
    q->throttled++;
    self->counters.delivery_deferred++;
    int64_t now = node_now();
    if (q->logged_at && now - q->logged_at < S_LOG_EVERY_MS)
        return;
    COHORT_LOG(COHORT_LOG_WARN,
               "delivery.throttled peer=%s queued=%zu throttled=%" PRIu64 " since_last=%" PRIu64,
               p->name, q->count, q->throttled, q->throttled - q->throttled_logged);
    q->logged_at = now;
    q->throttled_logged = q->throttled;
}

bool node_inbox_deliver(node_t *self, node_peer_t *p, zmq_msg_t *body)
{
    /* Nothing waits anywhere: straight in, the common case. */
    int why = self->rxq_total ? S_FULL : s_send(self, body);
    if (why == 0)
        return true;
    node_rxq_t *q = &p->rxq;
    size_t limit = self->cfg->peer_receive_queue;
    size_t len = zmq_msg_size(body);
    if (q->count >= limit || (q->count > 0 && q->bytes + len > (size_t)limit * S_BYTES_PER_MSG))
        return false;
    if (q->count == q->cap)
        s_grow(q, q->cap ? q->cap * 2 : S_RING_MIN);
    zmq_msg_t *slot = s_slot(q, q->count);
    zmq_msg_init(slot);
    zmq_msg_move(slot, body);
    zmq_msg_close(body);
    q->count++;
    q->bytes += len;
    if (q->count > q->peak)
        q->peak = q->count;
    self->rxq_total++;
    self->counters.delivery_queued++;
    if (self->rxq_total == 1)
        s_wait_room(self, why);
    return true;
}

void node_inbox_drain(node_t *self)
{
    while (self->rxq_total && self->peer_count) {
        /* one round: one message from each peer that has any, starting
         * after the peer served last */
        bool moved = false;
        for (size_t n = 0; n < self->peer_count && self->rxq_total; n++) {
            node_peer_t *p = &self->peers[self->rxq_next % self->peer_count];
            node_rxq_t *q = &p->rxq;
            if (q->count) {
                zmq_msg_t *head = s_slot(q, 0);
                size_t len = zmq_msg_size(head);
                int why = s_send(self, head);
                if (why != 0) {
                    s_wait_room(self, why); /* full again */
                    return;
                }
                zmq_msg_close(head);
                q->head = (q->head + 1) % q->cap;
                q->count--;
                q->bytes -= len;
                self->rxq_total--;
                moved = true;
            }
            self->rxq_next = (self->rxq_next + 1) % self->peer_count;
        }
        assert(moved); /* rxq_total counts what the queues hold */
    }
    s_poll_room(self, false);
}

void node_inbox_peer_drop(node_t *self, node_peer_t *p)
{
    node_rxq_t *q = &p->rxq;
    assert(self->rxq_total >= q->count);
    if (q->count) {
        /* Received from a member no longer admitted, and not yet handed
         * on: what the inbox takes now still goes, the rest is dropped. */
        node_inbox_drain(self);
        if (q->count)
            COHORT_LOG(COHORT_LOG_WARN, "delivery.dropped peer=%s messages=%zu reason=removed",
                       p->name, q->count);
        self->counters.delivery_dropped += q->count;
        self->rxq_total -= q->count;
    }
    node_inbox_peer_free(p);
    if (!self->rxq_total)
        s_poll_room(self, false);
}

void node_inbox_peer_free(node_peer_t *p)
{
    node_rxq_t *q = &p->rxq;
    for (size_t i = 0; i < q->count; i++)
        zmq_msg_close(s_slot(q, i));
    free(q->ring);
    q->ring = NULL;
    q->cap = q->head = q->count = q->bytes = 0;
}
