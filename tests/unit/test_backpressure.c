/*
 * Backpressure tests: a reliable message is never acknowledged and then
 * lost. When the receiving application does not read, its node stops
 * taking new messages (limits.receive_queue, limits.receive_bytes) instead
 * of dropping them; the sender's session holds them and resends, and once
 * the application reads again every message arrives, once, in order.
 *
 * And fairness: a peer that floods a node whose application is behind
 * waits in its own bounded queue (limits.peer_receive_queue) and is
 * throttled there, while a quiet peer's messages keep arriving; a hostile
 * peer that ignores the session protocol gets no more than that either.
 */
#include "testutil.h"

#include "api.pb-c.h"
#include "cluster.h"
#include "roster/roster.h"
#include "wire/wire.h"

#include <czmq.h>
#include <pthread.h>
#include <stdatomic.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Until node's link to peer is on the direct rung: its link.changed event
 * is in the inbox by then, not one that a full inbox would drop (and count
 * in delivery_dropped) later. */
static void s_wait_direct(cohort_t *node, const char *peer)
{
    for (int64_t end = zclock_mono() + test_ms(10000);; zclock_sleep(20)) {
        Cohort__Api__Response *r = cluster_info(node, "peers");
        bool direct = false;
        for (size_t i = 0; i < r->n_peers; i++)
            direct |= !strcmp(r->peers[i]->name, peer) && !strcmp(r->peers[i]->link, "direct");
        cohort__api__response__free_unpacked(r, NULL);
        if (direct)
            return;
        if (zclock_mono() > end)
            fail_msg("the link to %s never went direct", peer);
    }
}

/* Polls node's delivery_deferred for up to 10 s; returns the last value. */
static uint64_t s_wait_deferred(cohort_t *node)
{
    uint64_t deferred = 0;
    for (int i = 0; i < 200 && deferred == 0; i++) {
        Cohort__Api__Counters *k = cluster_counters(node);
        deferred = k->delivery_deferred;
        cohort__api__counters__free_unpacked(k, NULL);
        if (!deferred)
            zclock_sleep(50);
    }
    return deferred;
}

/* Sends messages 1..n of size bytes from `from` to node `to`: message i
 * starts with i and is filled with i's low byte. */
static void s_send_numbered(cohort_t *from, const char *to, int n, size_t size)
{
    uint8_t *payload = malloc(size);
    for (int i = 1; i <= n; i++) {
        memset(payload, i & 0xff, size);
        memcpy(payload, &i, sizeof i);
        cohort_msg_t *m = cohort_msg_new("n", payload, size);
        assert_int_equal(cohort_send(from, to, &m, 20000), COHORT_OK);
    }
    free(payload);
}

/* Reads at member i until messages 1..n (s_send_numbered) have arrived,
 * each once, in order and whole; events may come in between. */
static void s_read_numbered(cluster_t *c, int i, int n, size_t size)
{
    int next = 1;
    while (next <= n) {
        cohort_msg_t *m = cluster_next(c, i, 15000);
        if (!m)
            fail_msg("message %d never arrived", next);
        if (cohort_msg_kind(m) == COHORT_MSG_UNICAST) {
            size_t len = 0;
            const uint8_t *p = cohort_msg_payload(m, &len);
            assert_int_equal(len, size);
            int seq = 0;
            memcpy(&seq, p, sizeof seq);
            assert_int_equal(seq, next);
            assert_int_equal(p[size - 1], next & 0xff);
            next++;
        }
        cohort_msg_destroy(&m);
    }
}

static void test_a_slow_reader_defers_messages_and_loses_none(void **state)
{
    (void)state;
    const cluster_member_t members[] = {
        {.name = "alpha", .run = true, .config = "limits:\n  receive_queue: 16\n"},
        {.name = "beta", .run = true, .config = "limits:\n  send_timeout: 20s\n"},
    };
    cluster_t *c = cluster_new(members, 2);
    cluster_wait_up(c, 10000);
    s_wait_direct(c->nodes[0], "beta");
    /* beta sends while alpha's application reads nothing: far more than
     * alpha's inbox holds (16 on alpha's side plus what the inproc pipe to
     * the front buffers, about 1000) */
    enum { N = 3000 };
    for (int i = 1; i <= N; i++) {
        char text[32];
        int n = snprintf(text, sizeof text, "%d", i);
        cohort_msg_t *m = cohort_msg_new("seq", text, (size_t)n);
        assert_int_equal(cohort_send(c->nodes[1], "alpha", &m, 20000), COHORT_OK);
    }
    /* sends only queue at beta: wait for alpha's inbox to fill */
    assert_true(s_wait_deferred(c->nodes[0]) > 0);
    /* now alpha reads: every number once, in order (events may interleave) */
    int next = 1;
    while (next <= N) {
        cohort_msg_t *m = cluster_next(c, 0, 15000);
        if (!m)
            fail_msg("message %d never arrived", next);
        if (cohort_msg_kind(m) == COHORT_MSG_UNICAST) {
            size_t len = 0;
            const char *p = (const char *)cohort_msg_payload(m, &len);
            char text[32];
            snprintf(text, sizeof text, "%.*s", (int)len, p);
            assert_int_equal(atoi(text), next);
            next++;
        }
        cohort_msg_destroy(&m);
    }
    Cohort__Api__Counters *k = cluster_counters(c->nodes[0]);
    assert_int_equal(k->delivery_dropped, 0);
    print_message("deferred %llu deliveries, dropped %llu\n",
                  (unsigned long long)k->delivery_deferred,
                  (unsigned long long)k->delivery_dropped);
    cohort__api__counters__free_unpacked(k, NULL);
    cluster_destroy(&c);
}

/* A node's own messages share the session window with its application's:
 * interest (which services a node serves) that finds the window full is
 * not lost but sent once there is room. */
static void test_interest_that_found_the_window_full_is_sent_later(void **state)
{
    (void)state;
    const cluster_member_t members[] = {
        {.name = "alpha",
         .run = true,
         .config = "limits:\n  receive_queue: 16\n  peer_receive_queue: 16\n"},
        {.name = "beta", .run = true, .config = "limits:\n  send_queue: 64\n"},
    };
    cluster_t *c = cluster_new(members, 2);
    cluster_wait_up(c, 10000);
    s_wait_direct(c->nodes[0], "beta");
    /* beta sends until its window (64 messages) stays full: alpha's
     * application reads nothing, so once its inbox and beta's receive
     * queue there are full alpha stops taking (and acknowledging) them */
    int sent = 0, full_for = 0;
    for (int64_t end = zclock_mono() + test_ms(30000); full_for < 25 && zclock_mono() < end;) {
        char text[32];
        int n = snprintf(text, sizeof text, "%d", sent + 1);
        cohort_msg_t *m = cohort_msg_new("seq", text, (size_t)n);
        cohort_status_t st = cohort_send(c->nodes[1], "alpha", &m, 0);
        if (st == COHORT_OK) {
            sent++;
            full_for = 0;
        } else {
            assert_int_equal(st, COHORT_QUEUE_FULL);
            full_for++;
            zclock_sleep(20); /* 25 in a row: half a second with no room */
        }
    }
    assert_int_equal(full_for, 25);
    /* beta's interest in "late.svc" does not fit the window now */
    Cohort__Api__Counters *k = cluster_counters(c->nodes[1]);
    uint64_t full = k->queue_full;
    cohort__api__counters__free_unpacked(k, NULL);
    assert_int_equal(cohort_serve(c->nodes[1], "late.svc"), COHORT_OK);
    k = cluster_counters(c->nodes[1]);
    assert_true(k->queue_full > full); /* the interest was refused */
    cohort__api__counters__free_unpacked(k, NULL);
    /* alpha reads everything: the window empties */
    for (int next = 1; next <= sent;) {
        cohort_msg_t *m = cluster_next(c, 0, test_ms(15000));
        if (!m)
            fail_msg("message %d of %d never arrived", next, sent);
        if (cohort_msg_kind(m) == COHORT_MSG_UNICAST)
            next++;
        cohort_msg_destroy(&m);
    }
    /* and alpha learns of the service: a request is answered */
    cohort_status_t answered = COHORT_NO_RESPONDERS;
    for (int64_t end = zclock_mono() + test_ms(5000);
         answered != COHORT_OK && zclock_mono() < end;) {
        cohort_msg_t *req = cohort_msg_new("", "hi", 2);
        uint64_t id = 0;
        assert_int_equal(cohort_request_async(c->nodes[0], "late.svc", &req, 2000, &id), COHORT_OK);
        cohort_msg_t *in = cluster_next(c, 1, 200);
        while (in && cohort_msg_kind(in) != COHORT_MSG_REQUEST) {
            cohort_msg_destroy(&in);
            in = cluster_next(c, 1, 200);
        }
        if (in) {
            cohort_msg_t *ans = cohort_msg_new("", "ok", 2);
            assert_int_equal(cohort_reply(c->nodes[1], in, &ans), COHORT_OK);
            cohort_msg_destroy(&in);
        }
        cohort_msg_t *r = cluster_next(c, 0, 3000);
        while (r && !(cohort_msg_kind(r) == COHORT_MSG_REPLY && cohort_msg_request_id(r) == id)) {
            cohort_msg_destroy(&r);
            r = cluster_next(c, 0, 3000);
        }
        assert_non_null(r);
        answered = cohort_msg_status(r);
        cohort_msg_destroy(&r);
        if (answered != COHORT_OK)
            zclock_sleep(50);
    }
    assert_int_equal(answered, COHORT_OK);
    print_message("%d sends filled beta's window; the interest went later\n", sent);
    cluster_destroy(&c);
}

/* The same bound in bytes: 16 KiB messages to an application that does
 * not read stop at limits.receive_bytes (64 KiB here), far below
 * receive_queue, and all arrive once it reads. */
static void test_unread_bytes_are_bounded_too(void **state)
{
    (void)state;
    const cluster_member_t members[] = {
        {.name = "alpha",
         .run = true,
         .config = "limits:\n  receive_bytes: 64KiB\n  peer_receive_queue: 16\n"},
        {.name = "beta", .run = true, .config = "limits:\n  send_timeout: 20s\n"},
    };
    cluster_t *c = cluster_new(members, 2);
    cluster_wait_up(c, 10000);
    enum { N = 200, SIZE = 16 * 1024 };
    s_send_numbered(c->nodes[1], "alpha", N, SIZE);
    /* 200 messages are far below receive_queue: only the byte bound
     * defers them */
    assert_true(s_wait_deferred(c->nodes[0]) > 0);
    s_read_numbered(c, 0, N, SIZE);
    Cohort__Api__Counters *k = cluster_counters(c->nodes[0]);
    assert_int_equal(k->delivery_dropped, 0);
    print_message("16 KiB messages: deferred %llu deliveries, dropped %llu\n",
                  (unsigned long long)k->delivery_deferred,
                  (unsigned long long)k->delivery_dropped);
    cohort__api__counters__free_unpacked(k, NULL);
    cluster_destroy(&c);
}

/* Batches stay within the receiver's frame bound however small
 * limits.max_message_size is. Resends go batched: alpha's application
 * reads nothing at first (its inbox holds 16), so beta resends its window
 * in batch frames far larger than one message; every message still
 * arrives once, in order, and no frame is dropped as oversized. */
static void test_batches_fit_a_small_max_message_size(void **state)
{
    (void)state;
    const cluster_member_t members[] = {
        {.name = "alpha",
         .run = true,
         .config = "limits:\n  max_message_size: 4KiB\n  receive_queue: 16\n"},
        {.name = "beta",
         .run = true,
         .config = "limits:\n  max_message_size: 4KiB\n  send_timeout: 20s\n"},
    };
    cluster_t *c = cluster_new(members, 2);
    cluster_wait_up(c, 10000);
    enum { N = 3000, SIZE = 900 };
    s_send_numbered(c->nodes[1], "alpha", N, SIZE);
    assert_true(s_wait_deferred(c->nodes[0]) > 0);
    zclock_sleep(1000); /* beta's resend timer fires: its window goes again */
    s_read_numbered(c, 0, N, SIZE);
    Cohort__Api__Counters *k = cluster_counters(c->nodes[0]);
    assert_int_equal(k->oversized_dropped, 0);
    print_message("%d messages of %d bytes in %llu frames\n", N, SIZE,
                  (unsigned long long)k->messages_in);
    cohort__api__counters__free_unpacked(k, NULL);
    cluster_destroy(&c);
}

/* ---- fair queuing ---- */

/* How the receiving node sees one peer's queue. */
typedef struct {
    uint64_t throttled;
    uint32_t queued, peak;
} s_rx_t;

static s_rx_t s_rx(cohort_t *node, const char *peer)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    assert_int_equal(cohort_info(node, "peers", &buf, &len), COHORT_OK);
    Cohort__Api__Response *r = cohort__api__response__unpack(NULL, len, buf);
    free(buf);
    assert_non_null(r);
    s_rx_t out = {0};
    bool found = false;
    for (size_t i = 0; i < r->n_peers; i++)
        if (!strcmp(r->peers[i]->name, peer)) {
            out = (s_rx_t){r->peers[i]->throttled, r->peers[i]->receive_queued,
                           r->peers[i]->receive_queued_peak};
            found = true;
        }
    cohort__api__response__free_unpacked(r, NULL);
    if (!found)
        fail_msg("no peer %s", peer);
    return out;
}

/* RSS says something about the queues only in a plain run: ASan keeps
 * freed memory in quarantine (hundreds of MiB), valgrind has its own. */
#if defined(__SANITIZE_ADDRESS__)
#define S_RSS_MEANS_MEMORY false
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define S_RSS_MEANS_MEMORY false
#endif
#endif
#ifndef S_RSS_MEANS_MEMORY
#define S_RSS_MEANS_MEMORY true
#endif

/* This process's resident set (every node of the test lives in it), KiB. */
static long s_rss_kib(void)
{
    FILE *fp = fopen("/proc/self/status", "r");
    assert_non_null(fp);
    char line[256];
    long kib = -1;
    while (fgets(line, sizeof line, fp))
        if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
            break;
    fclose(fp);
    return kib;
}

#define S_PACED_MAX 4096

/* A sender on its own thread (it owns its node's front): numbered
 * reliable unicasts "SEQ SENT_MS" to `to`, as fast as its node takes them
 * (gap_ms 0) or one every gap_ms. Only what the node took counts in sent:
 * each of those must arrive. A paced sender notes when it sent each. */
typedef struct {
    cohort_t *node;
    const char *to, *subject;
    int gap_ms;
    atomic_bool stop;
    atomic_int sent;
    int64_t sent_at[S_PACED_MAX + 1]; /* paced: by number */
    pthread_t thread;
} s_sender_t;

static void *s_sender_main(void *arg)
{
    s_sender_t *s = arg;
    int64_t next = zclock_mono();
    while (!atomic_load(&s->stop)) {
        if (s->gap_ms) {
            int64_t now = zclock_mono();
            if (now < next) {
                zclock_sleep((int)(next - now));
                continue;
            }
            next += s->gap_ms;
        }
        int seq = atomic_load(&s->sent) + 1;
        if (s->gap_ms && seq > S_PACED_MAX)
            break;
        char payload[64];
        int64_t now = zclock_mono();
        int n = snprintf(payload, sizeof payload, "%d %" PRId64, seq, now);
        cohort_msg_t *m = cohort_msg_new(s->subject, payload, (size_t)n);
        if (cohort_send(s->node, s->to, &m, 50) == COHORT_OK) {
            if (s->gap_ms)
                s->sent_at[seq] = now;
            atomic_store(&s->sent, seq);
        }
    }
    return NULL;
}

static void s_sender_start(s_sender_t *s)
{
    assert_int_equal(pthread_create(&s->thread, NULL, s_sender_main, s), 0);
}

static int s_sender_stop(s_sender_t *s)
{
    atomic_store(&s->stop, true);
    pthread_join(s->thread, NULL);
    return atomic_load(&s->sent);
}

/* What the application of the receiving node got from one sender. */
typedef struct {
    const char *sender;
    bool unnumbered;      /* just count what comes (a hostile peer's) */
    int next;             /* the number expected next (unnumbered: 1 + how many came) */
    int64_t measure_from; /* latency counts for messages sent from then */
    int64_t worst_ms;     /* the longest one of those took to arrive */
} s_stream_t;

/* Takes one delivery (or event) from node within ms: each numbered message
 * must be the next of its sender's (once each, in order). False if none. */
static bool s_take(cohort_t *node, int ms, s_stream_t *streams, int n)
{
    cohort_msg_t *m = cohort_recv(node, ms);
    if (!m)
        return false;
    if (cohort_msg_kind(m) != COHORT_MSG_EVENT) {
        s_stream_t *st = NULL;
        for (int i = 0; i < n && !st; i++)
            if (!strcmp(cohort_msg_sender(m), streams[i].sender))
                st = &streams[i];
        if (!st)
            fail_msg("a message from %s", cohort_msg_sender(m));
        if (st->unnumbered) {
            st->next++;
            cohort_msg_destroy(&m);
            return true;
        }
        size_t len = 0;
        const char *p = cohort_msg_payload(m, &len);
        char text[64];
        snprintf(text, sizeof text, "%.*s", (int)(len < 63 ? len : 63), p);
        int seq = 0;
        int64_t sent = 0;
        if (sscanf(text, "%d %" SCNd64, &seq, &sent) != 2 || seq != st->next)
            fail_msg("%s: expected message %d, got '%s'", st->sender, st->next, text);
        st->next++;
        int64_t took = zclock_mono() - sent;
        if (st->measure_from && sent >= st->measure_from && took > st->worst_ms)
            st->worst_ms = took;
    }
    cohort_msg_destroy(&m);
    return true;
}

/* The receiving application: reads up to rate deliveries a second for ms
 * (or, rate 0, nothing until `throttled` is, within ms), checking every
 * 100 ms that no peer's queue is past S_CAP, and that the node answers a
 * status request within a second; notes the peak RSS. */
enum { S_CAP = 500 };
#define S_RECEIVER_CONFIG "limits:\n  receive_queue: 16\n  peer_receive_queue: 500\n"

static void s_read_slowly(cohort_t *node, int rate, int ms, s_stream_t *streams, int n,
                          long *rss_peak, const char *throttled)
{
    int64_t start = zclock_mono(), end = start + ms, next_check = start, at = start;
    double budget = 0;
    for (;;) {
        if (throttled && s_rx(node, throttled).throttled > 0)
            break;
        if (zclock_mono() >= end) {
            if (throttled)
                fail_msg("%s was never throttled", throttled);
            break;
        }
        int64_t now = zclock_mono();
        budget += (double)(now - at) * rate / 1000.0;
        at = now;
        while (budget >= 1 && s_take(node, 0, streams, n))
            budget -= 1;
        if (budget > 50)
            budget = 50;
        if (now >= next_check) {
            for (int i = 0; i < n; i++) {
                s_rx_t rx = s_rx(node, streams[i].sender);
                if (rx.queued > S_CAP)
                    fail_msg("%u of %s's deliveries wait, over the limit of %d", rx.queued,
                             streams[i].sender, S_CAP);
            }
            int64_t asked = zclock_mono();
            Cohort__Api__Counters *k = cluster_counters(node);
            cohort__api__counters__free_unpacked(k, NULL);
            if (zclock_mono() - asked > test_ms(1000))
                fail_msg("the node took %lld ms to answer a status request",
                         (long long)(zclock_mono() - asked));
            long rss = s_rss_kib();
            if (rss > *rss_peak)
                *rss_peak = rss;
            next_check = now + 100;
        }
        zclock_sleep(1);
    }
}

/* The application catches up: reads until each numbered stream has all
 * sent[i] messages, then checks nothing more comes. */
static void s_read_all(cohort_t *node, s_stream_t *streams, const int *sent, int n)
{
    int64_t end = zclock_mono() + test_ms(30000);
    for (;;) {
        bool done = true;
        for (int i = 0; i < n; i++)
            done = done && (streams[i].unnumbered || streams[i].next == sent[i] + 1);
        if (done)
            break;
        if (zclock_mono() > end)
            fail_msg("after the flood, %s has %d of %d messages", streams[0].sender,
                     streams[0].next - 1, sent[0]);
        s_take(node, 50, streams, n);
    }
    int64_t quiet = zclock_mono() + 300;
    while (zclock_mono() < quiet)
        s_take(node, 50, streams, n); /* a duplicate would fail there */
}

/* The quiet peer's messages (sent of them) sent while the receiver was
 * flooded and read slowly (from `from` until `to` less the bound) all
 * arrived by `to`, none later than the bound after it was sent. Returns
 * how many there were. */
static int s_check_prompt(const s_sender_t *quiet, int sent, const s_stream_t *st,
                          int arrived_by_to, int64_t from, int64_t to, int64_t bound)
{
    int count = 0;
    for (int seq = 1; seq <= sent && seq <= S_PACED_MAX; seq++) {
        int64_t at = quiet->sent_at[seq];
        if (at < from || at > to - bound)
            continue;
        count++;
        if (seq >= arrived_by_to)
            fail_msg("%s's message %d, sent %lld ms before the flood ended, had not arrived "
                     "(%d of its messages had)",
                     st->sender, seq, (long long)(to - at), arrived_by_to - 1);
    }
    if (st->worst_ms > bound)
        fail_msg("one of %s's messages took %lld ms to arrive", st->sender,
                 (long long)st->worst_ms);
    return count;
}

/* The quiet peer hardly ever had to send a message again: each was taken
 * (queued and acknowledged) when it first came. One the receiver refused
 * is resent with all that followed it (go-back-N), so a quiet peer that
 * loses slots to a flood resends more than it sends. A few may go again
 * when an ack comes later than the 200 ms resend timeout. */
static void s_check_not_resent(cohort_t *quiet, int sent)
{
    Cohort__Api__Counters *k = cluster_counters(quiet);
    uint64_t resent = k->resent;
    cohort__api__counters__free_unpacked(k, NULL);
    print_message("the quiet peer resent %" PRIu64 " messages, sent %d\n", resent, sent);
    if (resent * 10 > (uint64_t)sent)
        fail_msg("the quiet peer resent %" PRIu64 " messages, sending %d", resent, sent);
}

/* The application reads 2000 a second: the inbox (16 + about 1000 that
 * ZeroMQ buffers for the front) is half a second deep. A quiet peer's
 * message that waits its turn behind at most one of the flooder's per
 * round takes about that long; one that has to win a free slot against
 * the flooder's resends waits out its own, backing off from 200 ms to
 * 3 s. Two seconds is four inboxes' worth. */
#define S_READ_RATE 2000
#define S_PROMPT_MS 2000

static void test_a_flooding_peer_is_throttled_and_a_quiet_peer_keeps_flowing(void **state)
{
    (void)state;
    enum { R, F, H, COUNT };
    const cluster_member_t members[COUNT] = {
        {.name = "receiver", .run = true, .config = S_RECEIVER_CONFIG},
        {.name = "flooder", .run = true},
        {.name = "quiet", .run = true},
    };
    cluster_t *c = cluster_new(members, COUNT);
    cluster_wait_up(c, 10000);
    cohort_t *r = c->nodes[R];
    long rss0 = s_rss_kib(), rss_peak = rss0;
    static s_sender_t f, h; /* big: sent_at */
    memset(&f, 0, sizeof f);
    memset(&h, 0, sizeof h);
    f = (s_sender_t){.node = c->nodes[F], .to = "receiver", .subject = "flood"};
    h = (s_sender_t){.node = c->nodes[H], .to = "receiver", .subject = "quiet", .gap_ms = 20};
    s_stream_t streams[2] = {{.sender = "flooder", .next = 1}, {.sender = "quiet", .next = 1}};
    s_sender_start(&f);
    s_sender_start(&h);

    /* 1. The application reads nothing: the flooder fills the inbox, then
     * its own queue, and is throttled; no queue passes its limit. */
    s_read_slowly(r, 0, test_ms(10000), streams, 2, &rss_peak, "flooder");

    /* 2. The application reads, far slower than the flooder sends: the
     * quiet peer's messages still arrive promptly (those sent after what
     * waited from 1 went in). */
    int64_t start = zclock_mono(), bound = test_ms(S_PROMPT_MS);
    streams[1].measure_from = start + test_ms(1500);
    s_read_slowly(r, S_READ_RATE, 8000, streams, 2, &rss_peak, NULL);
    int64_t end = zclock_mono();
    int arrived = streams[1].next;
    s_rx_t during = s_rx(r, "flooder");

    /* 3. Both stop, the application catches up: every message of both,
     * once, in order. */
    int sent[2] = {s_sender_stop(&f), s_sender_stop(&h)};
    print_message("flooder: %d sent, throttled %" PRIu64 " (queue peak %u); quiet: %d sent, "
                  "slowest %" PRId64 " ms while flooded; RSS %ld -> %ld KiB\n",
                  sent[0], during.throttled, during.peak, sent[1], streams[1].worst_ms, rss0,
                  rss_peak);
    int prompt =
        s_check_prompt(&h, sent[1], &streams[1], arrived, streams[1].measure_from, end, bound);
    if (!test_slow()) { /* under valgrind the bounds hold, the reading rate does not */
        assert_true(prompt > 100);
        s_check_not_resent(c->nodes[H], sent[1]);
    }
    streams[1].measure_from = 0;
    s_read_all(r, streams, sent, 2);

    s_rx_t rf = s_rx(r, "flooder"), rh = s_rx(r, "quiet");
    Cohort__Api__Counters *k = cluster_counters(r);
    assert_true(rf.throttled > 0);
    assert_int_equal(rh.throttled, 0);
    assert_int_equal(rf.peak, S_CAP); /* filled to its limit, never past it */
    assert_true(rh.peak <= S_CAP);
    assert_int_equal(rf.queued + rh.queued, 0);
    assert_int_equal(k->delivery_deferred, rf.throttled);
    assert_true(k->delivery_queued > 0);
    cohort__api__counters__free_unpacked(k, NULL);
    /* Bounded: a few MiB for queues of 500 small messages, where an
     * unbounded one would hold most of the flood. */
    if (S_RSS_MEANS_MEMORY && !test_slow())
        assert_true(rss_peak - rss0 < 64 * 1024);
    cluster_destroy(&c);
}

/* A hostile admitted peer, a raw CURVE DEALER with its member's key, that
 * never reads and never resends: Batches of 256 unreliable Data (seq 0)
 * and a Data numbered on, as fast as the socket takes them. */
typedef struct {
    zsock_t *dealer;
    atomic_bool stop;
    atomic_long frames;
    pthread_t thread;
} s_hostile_t;

static void s_pack_data(Cohort__Wire__Data *d, uint64_t seq, uint8_t *body, size_t cap)
{
    Cohort__Wire__Message msg = COHORT__WIRE__MESSAGE__INIT;
    msg.kind = COHORT__WIRE__MESSAGE__KIND__UNICAST;
    msg.subject = (char *)(uintptr_t) "hostile";
    msg.payload.data = (uint8_t *)(uintptr_t) "flood";
    msg.payload.len = 5;
    assert_true(cohort__wire__message__get_packed_size(&msg) <= cap);
    cohort__wire__data__init(d);
    d->stream = seq ? 1 : 0;
    d->seq = seq;
    d->body.data = body;
    d->body.len = cohort__wire__message__pack(&msg, body);
}

static void *s_hostile_main(void *arg)
{
    s_hostile_t *x = arg;
    void *sock = zsock_resolve(x->dealer);
    enum { N = 256 };
    static uint8_t bodies[N][64];
    static Cohort__Wire__Data data[N];
    Cohort__Wire__Data *ptrs[N];
    for (int i = 0; i < N; i++) {
        s_pack_data(&data[i], 0, bodies[i], sizeof bodies[i]);
        ptrs[i] = &data[i];
    }
    Cohort__Wire__Batch batch = COHORT__WIRE__BATCH__INIT;
    batch.n_data = N;
    batch.data = ptrs;
    Cohort__Wire__Envelope env = COHORT__WIRE__ENVELOPE__INIT;
    env.body_case = COHORT__WIRE__ENVELOPE__BODY_BATCH;
    env.batch = &batch;
    uint8_t *unreliable = NULL;
    size_t unreliable_len = 0;
    cohort_wire_encode(&env, &unreliable, &unreliable_len);
    uint64_t seq = 1;
    while (!atomic_load(&x->stop)) {
        Cohort__Wire__Data one;
        uint8_t body[64];
        s_pack_data(&one, seq, body, sizeof body);
        Cohort__Wire__Envelope e = COHORT__WIRE__ENVELOPE__INIT;
        e.body_case = COHORT__WIRE__ENVELOPE__BODY_DATA;
        e.data = &one;
        uint8_t *wire = NULL;
        size_t len = 0;
        cohort_wire_encode(&e, &wire, &len);
        bool sent = zmq_send(sock, wire, len, ZMQ_DONTWAIT) >= 0;
        free(wire);
        if (sent)
            seq++;
        if (zmq_send(sock, unreliable, unreliable_len, ZMQ_DONTWAIT) >= 0)
            atomic_fetch_add(&x->frames, 1);
        else
            zclock_sleep(1);
    }
    free(unreliable);
    return NULL;
}

static void test_a_hostile_flood_outside_the_session_protocol_stays_bounded(void **state)
{
    (void)state;
    enum { R, H, ROGUE, COUNT };
    const cluster_member_t members[COUNT] = {
        {.name = "receiver", .run = true, .config = S_RECEIVER_CONFIG},
        {.name = "quiet", .run = true},
        {.name = "rogue"}, /* admitted; the test plays it */
    };
    cluster_t *c = cluster_new(members, COUNT);
    cluster_wait_up(c, 10000);
    cohort_t *r = c->nodes[R];
    long rss0 = s_rss_kib(), rss_peak = rss0;

    char pub[41], sec[41], server[41];
    cluster_z85(c, ROGUE, pub, sec);
    cluster_z85(c, R, server, (char[41]){0});
    static s_hostile_t x;
    memset(&x, 0, sizeof x);
    x.dealer = zsock_new(ZMQ_DEALER);
    zsock_set_curve_serverkey(x.dealer, server);
    zsock_set_curve_publickey(x.dealer, pub);
    zsock_set_curve_secretkey(x.dealer, sec);
    zsock_set_linger(x.dealer, 0);
    assert_int_equal(zsock_connect(x.dealer, "tcp://127.0.0.1:%d", c->ports[R]), 0);
    static s_sender_t h;
    memset(&h, 0, sizeof h);
    h = (s_sender_t){.node = c->nodes[H], .to = "receiver", .subject = "quiet", .gap_ms = 20};
    s_stream_t streams[2] = {{.sender = "quiet", .next = 1},
                             {.sender = "rogue", .unnumbered = true, .next = 1}};
    Cohort__Api__Counters *k0 = cluster_counters(r);
    assert_int_equal(pthread_create(&x.thread, NULL, s_hostile_main, &x), 0);
    s_sender_start(&h);

    /* The application reads nothing, then slowly: the rogue's queue fills
     * and stays at its limit, the quiet peer's messages keep arriving and
     * the node keeps answering. */
    s_read_slowly(r, 0, test_ms(10000), streams, 2, &rss_peak, "rogue");
    int64_t start = zclock_mono(), bound = test_ms(S_PROMPT_MS);
    streams[0].measure_from = start + test_ms(1500);
    s_read_slowly(r, S_READ_RATE, 6000, streams, 2, &rss_peak, NULL);
    int64_t end = zclock_mono();
    int arrived = streams[0].next;
    atomic_store(&x.stop, true);
    pthread_join(x.thread, NULL);
    zsock_destroy(&x.dealer);
    int sent[2] = {s_sender_stop(&h), 0};
    s_rx_t rogue = s_rx(r, "rogue");
    print_message("rogue: %ld batches of 256 sent, %d delivered, queue peak %u, throttled %" PRIu64
                  "; quiet: %d sent, slowest %" PRId64 " ms; RSS %ld -> %ld KiB\n",
                  (long)atomic_load(&x.frames), streams[1].next - 1, rogue.peak, rogue.throttled,
                  sent[0], streams[0].worst_ms, rss0, rss_peak);
    int prompt =
        s_check_prompt(&h, sent[0], &streams[0], arrived, streams[0].measure_from, end, bound);
    if (!test_slow()) {
        assert_true(prompt > 100);
        s_check_not_resent(c->nodes[H], sent[0]);
    }
    streams[0].measure_from = 0;
    s_read_all(r, streams, sent, 2);

    /* The rogue got its queue's worth and no more: its numbered Data was
     * taken back once its queue was full (and, never resent, ended its
     * stream there), its unreliable Data dropped and counted. */
    Cohort__Api__Counters *k = cluster_counters(r);
    rogue = s_rx(r, "rogue");
    assert_int_equal(rogue.peak, S_CAP);
    assert_true(rogue.throttled >= 1);
    assert_true(k->delivery_dropped > k0->delivery_dropped + 1000);
    assert_int_equal(s_rx(r, "quiet").throttled, 0);
    if (S_RSS_MEANS_MEMORY && !test_slow())
        assert_true(rss_peak - rss0 < 64 * 1024);
    cohort__api__counters__free_unpacked(k, NULL);
    cohort__api__counters__free_unpacked(k0, NULL);
    cluster_destroy(&c);
}

/* A member removed from the roster while its deliveries wait in its queue:
 * they are dropped and counted (it is no longer admitted), the others'
 * are not touched, and nothing is left behind. */
static void test_a_removed_members_waiting_deliveries_are_dropped_and_counted(void **state)
{
    (void)state;
    enum { R, F, H, COUNT };
    const cluster_member_t members[COUNT] = {
        {.name = "receiver", .run = true, .config = S_RECEIVER_CONFIG},
        {.name = "flooder", .run = true},
        {.name = "quiet", .run = true},
    };
    cluster_t *c = cluster_new(members, COUNT);
    cluster_wait_up(c, 10000);
    cohort_t *r = c->nodes[R];
    long rss = 0;
    static s_sender_t f, h;
    memset(&f, 0, sizeof f);
    memset(&h, 0, sizeof h);
    f = (s_sender_t){.node = c->nodes[F], .to = "receiver", .subject = "flood"};
    h = (s_sender_t){.node = c->nodes[H], .to = "receiver", .subject = "quiet", .gap_ms = 20};
    s_stream_t streams[2] = {{.sender = "quiet", .next = 1},
                             {.sender = "flooder", .unnumbered = true, .next = 1}};
    s_sender_start(&f);
    s_sender_start(&h);
    s_read_slowly(r, 0, test_ms(10000), streams, 2, &rss, "flooder");
    zclock_sleep(200); /* the quiet peer has a few waiting too */
    s_rx_t waiting = s_rx(r, "flooder");
    assert_int_equal(waiting.queued, S_CAP);
    assert_true(s_rx(r, "quiet").queued > 0);
    Cohort__Api__Counters *k0 = cluster_counters(r);

    /* The roster without the flooder, pushed to the receiver. */
    size_t len = 0;
    char *text = cluster_roster_text(c, &len);
    cohort_roster_t *roster = NULL;
    cohort_err_t err;
    assert_int_equal(cohort_roster_parse("roster.yaml", text, len, &roster, &err), 0);
    assert_int_equal(cohort_roster_remove(roster, "flooder", &err), 0);
    free(text);
    assert_int_equal(cohort_roster_emit(roster, &text, &len, &err), 0);
    cohort_roster_destroy(&roster);
    char *sig = cluster_sign(c, text, len);
    cohort_roster_result_t res;
    assert_int_equal(cohort_roster_push(r, COHORT_ROSTER_PUSH, text, len, sig, strlen(sig), &res),
                     COHORT_OK);
    free(text);
    free(sig);
    s_sender_stop(&f);

    /* Its 500 waiting deliveries are gone and counted (with node events
     * the full inbox had no room for); the quiet peer's still wait. */
    Cohort__Api__Counters *k1 = cluster_counters(r);
    assert_true(k1->delivery_dropped >= k0->delivery_dropped + S_CAP);
    assert_true(s_rx(r, "quiet").queued > 0);
    cohort__api__counters__free_unpacked(k0, NULL);
    cohort__api__counters__free_unpacked(k1, NULL);

    /* The application reads: every message of the quiet peer, once, in
     * order; of the flooder only what the inbox had taken. */
    int sent[2] = {s_sender_stop(&h), 0};
    s_read_all(r, streams, sent, 2);
    int from_flooder = streams[1].next - 1;
    print_message("dropped %u waiting deliveries of the removed flooder; it had %d in the "
                  "inbox\n",
                  waiting.queued, from_flooder);
    assert_true(from_flooder > 0 && from_flooder < atomic_load(&f.sent));
    cluster_destroy(&c);
}

int main(void)
{
    cluster_log_from_env();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_slow_reader_defers_messages_and_loses_none),
        cmocka_unit_test(test_interest_that_found_the_window_full_is_sent_later),
        cmocka_unit_test(test_unread_bytes_are_bounded_too),
        cmocka_unit_test(test_batches_fit_a_small_max_message_size),
        cmocka_unit_test(test_a_flooding_peer_is_throttled_and_a_quiet_peer_keeps_flowing),
        cmocka_unit_test(test_a_hostile_flood_outside_the_session_protocol_stays_bounded),
        cmocka_unit_test(test_a_removed_members_waiting_deliveries_are_dropped_and_counted),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
