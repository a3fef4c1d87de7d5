/*
 * session: per-peer reliable delivery. See session.h.
 *
 * The unacked messages always carry consecutive seqs of the current stream
 * (first_seq .. next_seq - 1), because acks are cumulative and a restart
 * renumbers them all. So they live in a ring of max_unacked slots in seq
 * order and a slot's seq is first_seq plus its distance from the head;
 * nothing per message but the body and when it was last emitted.
 */
#include "overlay/session.h"

#include "util/mem.h"

#include <assert.h>
#include <stdint.h>
#include <stdlib.h>

typedef struct {
    uint8_t *body; /* owned, or borrowed from holder; NULL when len is 0 */
    void *holder;  /* what keeps body (cohort_session_send_held), or NULL */
    size_t len;
    int64_t sent_at; /* when it was last emitted, ms */
    bool resent;     /* emitted more than once: its ack times nothing (Karn) */
} s_slot_t;

struct cohort_session {
    /* send half */
    uint64_t tx_stream;
    uint64_t first_seq; /* seq of the oldest unacked message (head) */
    uint64_t next_seq;  /* seq the next new message gets */
    s_slot_t *ring;
    size_t cap;   /* slots in ring: max_unacked, or more while a lowered
                     limit still holds the messages queued before */
    size_t limit; /* max_unacked */
    size_t head;  /* index of the oldest unacked message */
    size_t count;
    size_t bytes;
    size_t max_bytes;
    /* Room promised ahead (cohort_session_reserve): plain sends see the
     * window as this much fuller; reserved sends use it up. */
    size_t reserved;
    size_t reserved_bytes;
    int64_t rto;
    int64_t rto_min;
    int64_t rto_max;
    /* Round-trip estimate from acks (RFC 6298): the timeout a quiet
     * window starts from is srtt + 4 rttvar, never below rto_min, so a
     * slow path or a deep queue does not resend what is merely late. */
    int64_t srtt, rttvar; /* ms; srtt < 0: no sample yet */
    int64_t rto_base;
    cohort_session_release_fn *release; /* for held bodies */
    /* After a stream restart nothing in the window has been emitted under
     * the new numbers yet, so it is due whatever the timer says. */
    bool restart_due;
    /* receive half */
    uint64_t rx_stream; /* 0: nothing delivered yet */
    uint64_t rx_upto;
    bool ack_owed;
    cohort_session_stats_t stats;
};

static s_slot_t *s_slot(cohort_session_t *self, size_t i)
{
    assert(i < self->count);
    return &self->ring[(self->head + i) % self->cap];
}

cohort_session_t *cohort_session_new(uint64_t stream, size_t max_unacked, size_t max_unacked_bytes,
                                     int64_t rto_min_ms, int64_t rto_max_ms)
{
    assert(stream > 0);
    assert(max_unacked > 0);
    assert(rto_min_ms > 0);
    assert(rto_max_ms >= rto_min_ms);
    cohort_session_t *self = cohort_calloc(1, sizeof *self);
    self->tx_stream = stream;
    self->first_seq = 1;
    self->next_seq = 1;
    self->ring = cohort_calloc(max_unacked, sizeof *self->ring);
    self->cap = max_unacked;
    self->limit = max_unacked;
    self->max_bytes = max_unacked_bytes;
    self->rto = rto_min_ms;
    self->rto_min = rto_min_ms;
    self->rto_max = rto_max_ms;
    self->rto_base = rto_min_ms;
    self->srtt = -1;
    return self;
}

/* Frees the oldest n unacked messages. */
static void s_free_oldest(cohort_session_t *self, size_t n)
{
    assert(n <= self->count);
    for (size_t i = 0; i < n; i++) {
        s_slot_t *slot = &self->ring[self->head];
        if (slot->holder)
            self->release(slot->holder);
        else
            free(slot->body);
        self->bytes -= slot->len;
        *slot = (s_slot_t){0};
        self->head = (self->head + 1) % self->cap;
    }
    self->count -= n;
    self->first_seq += n;
}

void cohort_session_destroy(cohort_session_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    cohort_session_t *self = *self_p;
    s_free_oldest(self, self->count);
    free(self->ring);
    free(self);
    *self_p = NULL;
}

void cohort_session_set_limits(cohort_session_t *self, size_t max_unacked, size_t max_unacked_bytes)
{
    assert(self);
    assert(max_unacked > 0);
    self->limit = max_unacked;
    self->max_bytes = max_unacked_bytes;
    /* The ring always holds what is queued: it shrinks only as far as the
     * messages in it allow, and is laid out again from slot 0. */
    size_t cap = max_unacked > self->count ? max_unacked : self->count;
    if (cap == self->cap)
        return;
    s_slot_t *ring = cohort_calloc(cap, sizeof *ring);
    for (size_t i = 0; i < self->count; i++)
        ring[i] = *s_slot(self, i);
    free(self->ring);
    self->ring = ring;
    self->cap = cap;
    self->head = 0;
}

/* Queues body in the ring, growing it when reserved sends (or a lowered
 * limit) take it past its size. */
static void s_queue_held(cohort_session_t *self, uint8_t *body, void *holder, size_t len,
                         int64_t now, uint64_t *stream, uint64_t *seq);

static void s_queue(cohort_session_t *self, uint8_t **body_p, size_t len, int64_t now,
                    uint64_t *stream, uint64_t *seq)
{
    s_queue_held(self, *body_p, NULL, len, now, stream, seq);
    *body_p = NULL;
}

static void s_queue_held(cohort_session_t *self, uint8_t *body, void *holder, size_t len,
                         int64_t now, uint64_t *stream, uint64_t *seq)
{
    if (self->count == self->cap) {
        size_t cap = self->cap * 2;
        s_slot_t *ring = cohort_calloc(cap, sizeof *ring);
        for (size_t i = 0; i < self->count; i++)
            ring[i] = *s_slot(self, i);
        free(self->ring);
        self->ring = ring;
        self->cap = cap;
        self->head = 0;
    }
    self->ring[(self->head + self->count) % self->cap] =
        (s_slot_t){.body = body, .holder = holder, .len = len, .sent_at = now};
    self->count++;
    self->bytes += len;
    *stream = self->tx_stream;
    *seq = self->next_seq++;
    self->stats.sent++;
}

size_t cohort_session_room(const cohort_session_t *self, size_t *bytes)
{
    assert(self);
    size_t used = self->count + self->reserved;
    size_t used_bytes = self->bytes + self->reserved_bytes;
    if (bytes)
        *bytes = used_bytes < self->max_bytes ? self->max_bytes - used_bytes : 0;
    return used < self->limit ? self->limit - used : 0;
}

void cohort_session_reserve(cohort_session_t *self, size_t msgs, size_t bytes)
{
    size_t room_bytes = 0;
    assert(msgs <= cohort_session_room(self, &room_bytes));
    assert(bytes <= room_bytes);
    self->reserved += msgs;
    self->reserved_bytes += bytes;
}

void cohort_session_unreserve(cohort_session_t *self, size_t msgs, size_t bytes)
{
    assert(self);
    self->reserved -= msgs < self->reserved ? msgs : self->reserved;
    self->reserved_bytes -= bytes < self->reserved_bytes ? bytes : self->reserved_bytes;
}

int cohort_session_send(cohort_session_t *self, uint8_t **body_p, size_t len, int64_t now,
                        uint64_t *stream, uint64_t *seq)
{
    assert(self);
    assert(body_p);
    assert(*body_p || len == 0);
    assert(stream && seq);
    /* Compared with the room left so a huge len cannot wrap a sum; bytes
     * may be over max_bytes after cohort_session_set_limits lowered it. */
    size_t room_bytes = 0;
    if (cohort_session_room(self, &room_bytes) == 0 ||
        self->bytes + self->reserved_bytes > self->max_bytes || len > room_bytes) {
        self->stats.send_refused++;
        return -1;
    }
    s_queue(self, body_p, len, now, stream, seq);
    return 0;
}

void cohort_session_send_reserved(cohort_session_t *self, uint8_t **body_p, size_t len,
                                  bool reserved, int64_t now, uint64_t *stream, uint64_t *seq)
{
    assert(self);
    assert(body_p);
    assert(*body_p || len == 0);
    assert(stream && seq);
    if (reserved)
        cohort_session_unreserve(self, 1, len);
    s_queue(self, body_p, len, now, stream, seq);
}

static void s_rtt_sample(cohort_session_t *self, int64_t r)
{
    if (self->srtt < 0) {
        self->srtt = r;
        self->rttvar = r / 2;
    } else {
        int64_t d = self->srtt > r ? self->srtt - r : r - self->srtt;
        self->rttvar = (3 * self->rttvar + d) / 4;
        self->srtt = (7 * self->srtt + r) / 8;
    }
    int64_t rto = self->srtt + (4 * self->rttvar > 1 ? 4 * self->rttvar : 1);
    self->rto_base = rto < self->rto_min   ? self->rto_min
                     : rto > self->rto_max ? self->rto_max
                                           : rto;
}

void cohort_session_set_release(cohort_session_t *self, cohort_session_release_fn *release)
{
    assert(self && release);
    self->release = release;
}

void cohort_session_send_held(cohort_session_t *self, const uint8_t *body, size_t len, void *holder,
                              bool reserved, int64_t now, uint64_t *stream, uint64_t *seq)
{
    assert(self && holder && self->release);
    assert(body || len == 0);
    assert(stream && seq);
    if (reserved)
        cohort_session_unreserve(self, 1, len);
    /* never written through: the slot only hands it to emit as const */
    s_queue_held(self, (uint8_t *)(uintptr_t)body, holder, len, now, stream, seq);
}

size_t cohort_session_ack(cohort_session_t *self, uint64_t stream, uint64_t upto)
{
    return cohort_session_ack_at(self, stream, upto, -1);
}

size_t cohort_session_ack_at(cohort_session_t *self, uint64_t stream, uint64_t upto, int64_t now)
{
    assert(self);
    if (stream != self->tx_stream || upto >= self->next_seq) {
        self->stats.acks_ignored++;
        return 0;
    }
    if (upto < self->first_seq)
        return 0; /* old or repeated ack: already applied */
    size_t n = (size_t)(upto - self->first_seq + 1);
    const s_slot_t *newest = s_slot(self, n - 1);
    if (now >= 0 && !newest->resent && !self->restart_due && now >= newest->sent_at)
        s_rtt_sample(self, now - newest->sent_at);
    s_free_oldest(self, n);
    if (self->count == 0)
        self->restart_due = false;
    self->stats.acked += n;
    /* The peer is hearing us again: the backoff was for a silent path. */
    self->rto = self->rto_base;
    return n;
}

static size_t s_emit_all(cohort_session_t *self, int64_t now, cohort_session_emit_fn *emit,
                         void *arg)
{
    assert(emit);
    for (size_t i = 0; i < self->count; i++) {
        s_slot_t *slot = s_slot(self, i);
        slot->sent_at = now;
        slot->resent = true;
        emit(arg, self->tx_stream, self->first_seq + i, slot->body, slot->len);
    }
    self->stats.resent += self->count;
    self->restart_due = false;
    return self->count;
}

size_t cohort_session_resend_due(cohort_session_t *self, int64_t now, cohort_session_emit_fn *emit,
                                 void *arg)
{
    assert(self);
    if (self->count == 0)
        return 0;
    if (self->restart_due)
        return s_emit_all(self, now, emit, arg);
    /* Go-back-N: the receiver drops everything after a gap, so when the
     * oldest is overdue everything after it must go again too. Later ones
     * were emitted no earlier than the oldest, so its timer covers them. */
    if (now - s_slot(self, 0)->sent_at < self->rto)
        return 0;
    self->rto = self->rto > self->rto_max / 2 ? self->rto_max : self->rto * 2;
    return s_emit_all(self, now, emit, arg);
}

size_t cohort_session_resend_all(cohort_session_t *self, int64_t now, cohort_session_emit_fn *emit,
                                 void *arg)
{
    assert(self);
    self->rto = self->rto_base;
    return s_emit_all(self, now, emit, arg);
}

int64_t cohort_session_next_due(const cohort_session_t *self)
{
    assert(self);
    if (self->count == 0)
        return -1;
    /* The head's sent_at is a time the caller has already passed. */
    int64_t sent_at = self->ring[self->head].sent_at;
    return self->restart_due ? sent_at : sent_at + self->rto;
}

void cohort_session_restart_stream(cohort_session_t *self)
{
    assert(self);
    /* The node seeds streams from a microsecond clock; reaching the top
     * means a caller bug, not something the wire can cause. */
    assert(self->tx_stream < UINT64_MAX);
    self->tx_stream++;
    self->first_seq = 1;
    self->next_seq = 1 + self->count;
    self->rto = self->rto_base;
    self->restart_due = self->count > 0;
}

uint64_t cohort_session_stream(const cohort_session_t *self)
{
    assert(self);
    return self->tx_stream;
}

cohort_session_verdict_t cohort_session_receive(cohort_session_t *self, uint64_t stream,
                                                uint64_t seq)
{
    assert(self);
    cohort_session_verdict_t verdict;
    if (stream == 0 || seq == 0)
        verdict = COHORT_SESSION_GAP;
    else if (stream > self->rx_stream)
        verdict = seq == 1 ? COHORT_SESSION_DELIVER : COHORT_SESSION_GAP;
    else if (stream < self->rx_stream)
        verdict = COHORT_SESSION_DUPLICATE;
    else if (seq <= self->rx_upto)
        verdict = COHORT_SESSION_DUPLICATE;
    else
        verdict = seq == self->rx_upto + 1 ? COHORT_SESSION_DELIVER : COHORT_SESSION_GAP;

    switch (verdict) {
    case COHORT_SESSION_DELIVER:
        self->rx_stream = stream;
        self->rx_upto = seq;
        self->ack_owed = true;
        self->stats.delivered++;
        break;
    case COHORT_SESSION_DUPLICATE:
        self->ack_owed = true;
        self->stats.duplicates++;
        break;
    case COHORT_SESSION_GAP:
        self->stats.gaps++;
        break;
    }
    return verdict;
}

void cohort_session_unreceive(cohort_session_t *self, uint64_t stream, uint64_t seq)
{
    assert(self);
    if (seq == 0 || stream != self->rx_stream || seq != self->rx_upto)
        return;
    self->rx_upto = seq - 1;
    self->stats.delivered--;
}

void cohort_session_ack_state(const cohort_session_t *self, uint64_t *stream, uint64_t *upto)
{
    assert(self && stream && upto);
    *stream = self->rx_stream;
    *upto = self->rx_upto;
}

bool cohort_session_ack_pending(const cohort_session_t *self)
{
    assert(self);
    return self->ack_owed;
}

void cohort_session_ack_sent(cohort_session_t *self)
{
    assert(self);
    self->ack_owed = false;
}

void cohort_session_peer_restarted(cohort_session_t *self)
{
    assert(self);
    self->rx_stream = 0;
    self->rx_upto = 0;
    self->ack_owed = false;
    cohort_session_restart_stream(self);
}

void cohort_session_stats(const cohort_session_t *self, cohort_session_stats_t *out)
{
    assert(self && out);
    *out = self->stats;
    out->unacked = self->count;
    out->unacked_bytes = self->bytes;
    out->srtt_ms = self->srtt;
    out->rto_ms = self->rto;
}
