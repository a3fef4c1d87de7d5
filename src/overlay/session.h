/*
 * session: per-peer reliable delivery (sequence numbers, cumulative acks,
 * go-back-N resend), so a reliable message reaches the peer's application
 * exactly once and in order even when the links below drop, duplicate,
 * reorder or reconnect.
 *
 * A session has two independent halves. The send half numbers reliable
 * messages 1, 2, 3... within a *stream* (a uint64 that only ever grows: the
 * node starts it at its start time in microseconds, and moves it forward when
 * the peer lost its receive state), keeps every unacked body in a bounded
 * window and re-emits all of them when the oldest has waited a retransmission
 * timeout (doubling it up to a maximum). The receive half remembers the
 * highest in-order (stream, seq) delivered and classifies each arriving
 * message as deliver, duplicate or gap; it says when an ack is due so the
 * caller can send one per poll round rather than one per message.
 *
 * This module is pure logic: it owns no sockets, no timers and no clock. Time
 * is passed in as int64_t milliseconds from any monotonic clock, and bytes go
 * out through a callback. It does not put anything on the wire itself (the
 * caller writes stream and seq into its own envelope), does not decide when a
 * peer restarted (the node learns that from the handshake) and is not thread
 * safe: one session belongs to one actor.
 *
 * Restart rule the caller must keep: call cohort_session_peer_restarted
 * before any data from the old stream can reach the peer's new incarnation.
 * Otherwise a new receiver may deliver old stream seq 1 and then the same
 * message again as seq 1 of the renumbered stream.
 */
#ifndef COHORT_OVERLAY_SESSION_H
#define COHORT_OVERLAY_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct cohort_session cohort_session_t;

/* What the receive half decided about one arriving message. */
typedef enum {
    /* Next in order: hand it to the application. */
    COHORT_SESSION_DELIVER = 1,
    /* Already delivered (or from a stale stream): drop it, but ack again,
     * because the sender resends only when it did not hear an ack. */
    COHORT_SESSION_DUPLICATE,
    /* Something before it is missing (or a new stream did not start at 1):
     * drop it; the sender's go-back-N resend will bring it again in order. */
    COHORT_SESSION_GAP,
} cohort_session_verdict_t;

typedef struct cohort_session_stats {
    uint64_t sent;         /* new messages accepted by cohort_session_send */
    uint64_t resent;       /* re-emissions (resend_due and resend_all) */
    uint64_t acked;        /* messages freed by acks */
    uint64_t delivered;    /* receive verdicts: DELIVER */
    uint64_t duplicates;   /* receive verdicts: DUPLICATE */
    uint64_t gaps;         /* receive verdicts: GAP */
    uint64_t acks_ignored; /* acks for another stream or for seqs never sent */
    uint64_t send_refused; /* sends refused because the window or bytes were full */
    size_t unacked;        /* messages in the window now */
    size_t unacked_bytes;  /* sum of their body lengths now */
    int64_t srtt_ms;       /* smoothed round trip from acks; -1: no sample yet */
    int64_t rto_ms;        /* the timeout a quiet window waits now */
} cohort_session_stats_t;

/* Called once per (re)emitted message, in seq order, on the thread that
 * called the resend function, before that function returns. body is
 * borrowed: valid only during the call (NULL when len is 0). The callback
 * must not call back into the same session. */
typedef void(cohort_session_emit_fn)(void *arg, uint64_t stream, uint64_t seq, const uint8_t *body,
                                     size_t len);

/* Creates a session whose send half starts at stream (must be > 0; 0 means
 * "nothing received yet" on the receive side) with seq 1. At most
 * max_unacked messages (> 0) and max_unacked_bytes body bytes are kept
 * unacked; the retransmission timeout starts at rto_min_ms (> 0) and backs
 * off up to rto_max_ms (>= rto_min_ms). Never returns NULL. Caller owns the
 * result (cohort_session_destroy). */
cohort_session_t *cohort_session_new(uint64_t stream, size_t max_unacked, size_t max_unacked_bytes,
                                     int64_t rto_min_ms, int64_t rto_max_ms);

/* Frees the session and every unacked body. NULL and *self_p == NULL are
 * fine; sets *self_p to NULL. */
void cohort_session_destroy(cohort_session_t **self_p);

/* Changes max_unacked (> 0) and max_unacked_bytes of a live session (a
 * reload of limits.send_queue). Messages already queued stay queued, in
 * order, even when there are more of them than the new limits allow: new
 * sends are refused until acks bring the window under the limits. */
void cohort_session_set_limits(cohort_session_t *self, size_t max_unacked,
                               size_t max_unacked_bytes);

/* ---- send half ---- */

/* Queues one reliable message sent at time now. On success returns 0, takes
 * ownership of *body_p (which must come from malloc or cohort_malloc, or be
 * NULL when len is 0) and sets it to NULL, and writes the stream and seq the
 * caller must put on the wire with this body now. Returns -1 when the window
 * holds max_unacked messages or the body would take the unacked bytes over
 * max_unacked_bytes: nothing changes except stats.send_refused, and the
 * caller keeps *body_p (backpressure to report to the application). A body
 * larger than max_unacked_bytes is always refused. */
int cohort_session_send(cohort_session_t *self, uint8_t **body_p, size_t len, int64_t now,
                        uint64_t *stream, uint64_t *seq);

/* Room for new plain sends: how many more messages the window takes (0
 * when full), and in *bytes (may be NULL) how many more body bytes. Both
 * leave out what is reserved. */
size_t cohort_session_room(const cohort_session_t *self, size_t *bytes);

/* Promises room for msgs more messages of bytes body bytes in all (at most
 * cohort_session_room), to be used by cohort_session_send_reserved: until
 * then plain sends see the window that much fuller. For a sender that
 * must know a message will be taken before it hands it over (the node
 * grants this room to its front as send credit). */
void cohort_session_reserve(cohort_session_t *self, size_t msgs, size_t bytes);

/* Gives back reserved room that will not be used; more than is reserved
 * just clears the reservation. */
void cohort_session_unreserve(cohort_session_t *self, size_t msgs, size_t bytes);

/* Queues one reliable message into room reserved before: as
 * cohort_session_send, but never refused, even when the limits were
 * lowered since the room was reserved. With reserved true it takes one
 * message and len bytes off the reservation (or what is left of it); false
 * is for a message sent on a promise that cohort_session_unreserve has
 * since taken back (it was on its way when the promise was revoked): it
 * counts as sent before the revocation and is queued all the same. */
void cohort_session_send_reserved(cohort_session_t *self, uint8_t **body_p, size_t len,
                                  bool reserved, int64_t now, uint64_t *stream, uint64_t *seq);

/* What keeps a held body (cohort_session_send_held); called when its
 * message is acknowledged or the session destroyed. */
typedef void(cohort_session_release_fn)(void *holder);
/* Sets the release function for held bodies; once, before any. */
void cohort_session_set_release(cohort_session_t *self, cohort_session_release_fn *release);
/* As cohort_session_send_reserved, but body is borrowed: holder keeps it
 * (e.g. the frame it arrived in) and the session keeps holder until the
 * message is acknowledged, saving a copy of every message. */
void cohort_session_send_held(cohort_session_t *self, const uint8_t *body, size_t len, void *holder,
                              bool reserved, int64_t now, uint64_t *stream, uint64_t *seq);

/* Cumulative ack from the peer: frees every message of the current stream
 * with seq <= upto, and if that freed anything resets the timeout to its
 * base: rto_min, or more when acks take longer (below). An ack for another
 * stream, or naming a seq never sent on this stream, is ignored and counted
 * (stats.acks_ignored); an old ack that frees nothing is simply harmless.
 * Returns how many messages were freed. Both values come from the wire and
 * may be anything. */
size_t cohort_session_ack(cohort_session_t *self, uint64_t stream, uint64_t upto);
/* The same, arriving at time now: the newest message it frees, if it was
 * emitted only once, gives a round-trip sample (RFC 6298: srtt, rttvar;
 * Karn's rule), and the base timeout becomes srtt + 4 rttvar within
 * [rto_min, rto_max]: a path or a queue slower than rto_min stops being
 * resent on every timeout. */
size_t cohort_session_ack_at(cohort_session_t *self, uint64_t stream, uint64_t upto, int64_t now);

/* If the oldest unacked message was last emitted at least the timeout ago
 * (or the stream was restarted and nothing was emitted on it since), re-emits
 * every unacked message in order through emit and, on a timeout, doubles the
 * timeout up to rto_max. Returns how many messages were emitted (0 when
 * nothing was due). */
size_t cohort_session_resend_due(cohort_session_t *self, int64_t now, cohort_session_emit_fn *emit,
                                 void *arg);

/* Re-emits every unacked message in order now, whatever the timer says, and
 * resets the timeout to its base; for when a link comes back or the route
 * changed. Returns how many messages were emitted. */
size_t cohort_session_resend_all(cohort_session_t *self, int64_t now, cohort_session_emit_fn *emit,
                                 void *arg);

/* Absolute time in ms at which cohort_session_resend_due will next emit, or
 * -1 when nothing is unacked. May be in the past (resend is overdue, or the
 * stream was restarted): the caller should then call resend_due at once. */
int64_t cohort_session_next_due(const cohort_session_t *self);

/* Moves the send half to stream + 1 and renumbers every unacked message from
 * seq 1 in the same order, keeping the bodies; they become due at once. Use
 * only when the peer lost its receive state: a peer that still has it would
 * deliver the unacked-but-received messages a second time. */
void cohort_session_restart_stream(cohort_session_t *self);

/* The send half's current stream id. */
uint64_t cohort_session_stream(const cohort_session_t *self);

/* ---- receive half ---- */

/* Classifies a message that arrived with (stream, seq) and, on DELIVER,
 * records it as delivered. A stream newer than the current one is accepted
 * only at seq 1; an older stream is a duplicate; in the current stream seq <=
 * the highest delivered is a duplicate, the next one is delivered, anything
 * later is a gap. Stream 0 or seq 0 are never sent and count as a gap. Both
 * values come from the wire and may be anything. */
cohort_session_verdict_t cohort_session_receive(cohort_session_t *self, uint64_t stream,
                                                uint64_t seq);

/* Takes back the DELIVER just returned for (stream, seq): the message
 * could not be handed on after all, so it is not acknowledged and the
 * peer's resend is delivered. No-op unless (stream, seq) is the last one
 * delivered. */
void cohort_session_unreceive(cohort_session_t *self, uint64_t stream, uint64_t seq);

/* What to acknowledge: the current receive stream and the highest seq
 * delivered in it (both 0 before anything was delivered). */
void cohort_session_ack_state(const cohort_session_t *self, uint64_t *stream, uint64_t *upto);

/* True if a message was delivered or a duplicate arrived since the last
 * cohort_session_ack_sent, i.e. the peer is owed an ack. */
bool cohort_session_ack_pending(const cohort_session_t *self);

/* Tells the session the ack from cohort_session_ack_state went out. */
void cohort_session_ack_sent(cohort_session_t *self);

/* The peer restarted: forgets the receive state (its next stream will start
 * at seq 1) and restarts the send stream (cohort_session_restart_stream). */
void cohort_session_peer_restarted(cohort_session_t *self);

/* Copies the counters and the current window occupancy into *out. */
void cohort_session_stats(const cohort_session_t *self, cohort_session_stats_t *out);

#endif
