/*
 * Relayed links: members that advertise endpoints nobody can reach (dead
 * ports) can only meet through a relay node they all dial. Traffic must flow
 * both ways, sealed end to end; the relay's view of it must hold no
 * plaintext. The relay enforces per-pair quotas (the session layer makes up
 * for what it drops) and the roster's never_relay_between site policy.
 *
 * Hostile uses: non-members (a stranger's key, a revoked member) are refused
 * in the handshake by relay and rendezvous nodes and get nothing from them;
 * a frame claiming another sender is dropped at the relay or at the
 * receiver; a relay that replays, modifies or relabels sealed frames gets
 * them rejected, and the session still delivers each message once, intact.
 *
 * Waits are polls against a deadline, never fixed sleeps; timing is only
 * asserted where the quota arithmetic makes it certain.
 */
#include "testutil.h"

#include "api.pb-c.h"
#include "cluster.h"
#include "cohort.h"
#include "envelope.pb-c.h"
#include "overlay/seal.h"
#include "pki/key.h"
#include "roster/roster.h"
#include "util/log.h"
#include "wire/wire.h"

#include <czmq.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <stdatomic.h>

/* The node status fields these tests read. */
typedef struct {
    uint64_t relay_frames, relay_dropped, seal_rejected, resent, unknown_sender;
    uint64_t handshakes_refused, duplicates_dropped;
} s_stats_t;

/* One peer as a node reports it. */
typedef struct {
    char state[16], link[16], reason[32], via[32];
    uint32_t unacked;
} s_peer_t;

static s_stats_t s_stats(cohort_t *node)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    assert_int_equal(cohort_info(node, "status", &buf, &len), COHORT_OK);
    Cohort__Api__Response *resp = cohort__api__response__unpack(NULL, len, buf);
    free(buf);
    assert_non_null(resp);
    assert_non_null(resp->status_info);
    assert_non_null(resp->status_info->links);
    assert_non_null(resp->status_info->counters);
    const Cohort__Api__Links *l = resp->status_info->links;
    s_stats_t out = {
        .relay_frames = l->relay_frames,
        .relay_dropped = l->relay_dropped,
        .seal_rejected = l->seal_rejected,
        .resent = resp->status_info->counters->resent,
        .unknown_sender = resp->status_info->counters->unknown_sender,
        .handshakes_refused = resp->status_info->counters->handshakes_refused,
        .duplicates_dropped = resp->status_info->counters->duplicates_dropped,
    };
    cohort__api__response__free_unpacked(resp, NULL);
    return out;
}

static s_peer_t s_peer(cohort_t *node, const char *name)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    assert_int_equal(cohort_info(node, "peers", &buf, &len), COHORT_OK);
    Cohort__Api__Response *resp = cohort__api__response__unpack(NULL, len, buf);
    free(buf);
    assert_non_null(resp);
    for (size_t i = 0; i < resp->n_peers; i++) {
        const Cohort__Api__Peer *p = resp->peers[i];
        if (strcmp(p->name, name) != 0)
            continue;
        s_peer_t out = {.unacked = p->unacked};
        snprintf(out.state, sizeof out.state, "%s", p->state);
        snprintf(out.link, sizeof out.link, "%s", p->link);
        snprintf(out.reason, sizeof out.reason, "%s", p->reason);
        snprintf(out.via, sizeof out.via, "%s", p->via);
        cohort__api__response__free_unpacked(resp, NULL);
        return out;
    }
    cohort__api__response__free_unpacked(resp, NULL);
    fail_msg("no peer %s", name);
    abort(); /* not reached: fail_msg does not return */
}

/* Polls until node reports peer on link (via relay `via` unless NULL). */
static void s_wait_link(cohort_t *node, const char *peer, const char *link, const char *via, int ms)
{
    int64_t end = zclock_mono() + ms;
    s_peer_t p;
    for (;;) {
        p = s_peer(node, peer);
        if (!strcmp(p.link, link) && (!via || !strcmp(p.via, via)))
            return;
        if (zclock_mono() > end)
            break;
        zclock_sleep(50);
    }
    fail_msg("peer %s: link %s via '%s' (reason '%s'), wanted %s via %s", peer, p.link, p.via,
             p.reason, link, via ? via : "any");
}

/* Waits until node i saw member.up from each of the members listed in
 * `from` (indexes, ended by -1). */
static void s_wait_up_from(cluster_t *c, int i, const int *from, int ms)
{
    bool seen[CLUSTER_MAX] = {false};
    int64_t end = zclock_mono() + ms;
    for (;;) {
        bool all = true;
        for (const int *j = from; *j >= 0; j++)
            all = all && seen[*j];
        if (all)
            return;
        if (zclock_mono() > end)
            fail_msg("node %s did not see its peers up", c->members[i].name);
        cohort_msg_t *m = cohort_recv(c->nodes[i], 100);
        for (const int *j = from; m && *j >= 0; j++)
            if (cohort_msg_kind(m) == COHORT_MSG_EVENT &&
                !strcmp(cohort_msg_subject(m), "member.up") &&
                !strcmp(cohort_msg_sender(m), c->members[*j].name))
                seen[*j] = true;
        cohort_msg_destroy(&m);
    }
}

/* Numbered messages: the payload is "seq NNNNNN" then dots, size bytes. */
#define S_MAX_PAYLOAD 1024
#define S_SEQ "relay.seq"
#define S_FLOOD "relay.flood"

static void s_payload(char *out, int seq, size_t size)
{
    assert_true(size >= 16 && size <= S_MAX_PAYLOAD);
    memset(out, '.', size);
    char head[16];
    snprintf(head, sizeof head, "seq %06d", seq);
    memcpy(out, head, strlen(head));
}

static void s_send_seq(cohort_t *node, const char *to, int seq, size_t size)
{
    char payload[S_MAX_PAYLOAD];
    s_payload(payload, seq, size);
    cohort_msg_t *m = cohort_msg_new(S_SEQ, payload, size);
    assert_int_equal(cohort_send(node, to, &m, 5000), COHORT_OK);
}

/* Receives on node until message `upto` - 1 arrived or ms passed; each one
 * must be from `from` and exactly the next in order (no gap, no duplicate).
 * Returns the next number expected. */
static int s_recv_in_order(cohort_t *node, const char *from, int next, int upto, size_t size,
                           int ms)
{
    char want[S_MAX_PAYLOAD];
    int64_t end = zclock_mono() + ms;
    while (next < upto) {
        int64_t left = end - zclock_mono();
        if (left <= 0)
            break;
        cohort_msg_t *m = cohort_recv(node, left < 50 ? (int)left : 50);
        if (!m || cohort_msg_kind(m) == COHORT_MSG_EVENT) {
            cohort_msg_destroy(&m);
            continue;
        }
        size_t len = 0;
        const char *got = cohort_msg_payload(m, &len);
        s_payload(want, next, size);
        if (strcmp(cohort_msg_sender(m), from) != 0 || len != size || memcmp(got, want, size))
            fail_msg("expected seq %06d from %s, got '%.10s' (%zu bytes) from %s", next, from,
                     len >= 10 ? got : "", len, cohort_msg_sender(m));
        cohort_msg_destroy(&m);
        next++;
    }
    return next;
}

/* The next non-event message on node within ms, or NULL. */
static cohort_msg_t *s_next(cohort_t *node, int ms)
{
    int64_t end = zclock_mono() + ms;
    do {
        cohort_msg_t *m = cohort_recv(node, 50);
        if (m && cohort_msg_kind(m) != COHORT_MSG_EVENT)
            return m;
        cohort_msg_destroy(&m);
    } while (zclock_mono() < end);
    return NULL;
}

static void test_peers_without_a_direct_path_meet_through_the_relay(void **state)
{
    (void)state;
    enum { RELAY, ALPHA, BETA, COUNT };
    cluster_member_t members[COUNT] = {
        {.name = "relay", .site = "cloud", .run = true, .roles = COHORT_ROLE_RELAY},
        {.name = "alpha", .site = "a", .run = true, .endpoint_port = CLUSTER_DEAD_PORT},
        {.name = "beta", .site = "b", .run = true, .endpoint_port = CLUSTER_DEAD_PORT},
    };
    cluster_t *c = cluster_new(members, COUNT);
    cluster_wait_up(c, 20000);

    /* alpha -> beta, then beta -> alpha, reliable, through the relay */
    const char marker[] = "PLAINTEXT-MARKER-0123456789abcdef";
    cohort_msg_t *m = cohort_msg_new("secret", marker, sizeof marker);
    assert_int_equal(cohort_send(c->nodes[ALPHA], "beta", &m, 5000), COHORT_OK);
    cohort_msg_t *got = cluster_next(c, BETA, 10000);
    assert_non_null(got);
    assert_string_equal(cohort_msg_sender(got), "alpha");
    size_t len = 0;
    assert_memory_equal(cohort_msg_payload(got, &len), marker, sizeof marker);
    cohort_msg_destroy(&got);
    m = cohort_msg_new("back", "ok", 2);
    assert_int_equal(cohort_send(c->nodes[BETA], "alpha", &m, 5000), COHORT_OK);
    got = cluster_next(c, ALPHA, 10000);
    assert_non_null(got);
    assert_string_equal(cohort_msg_sender(got), "beta");
    cohort_msg_destroy(&got);

    /* The ladder settles on the relayed rung, via the relay node. */
    s_wait_link(c->nodes[ALPHA], "beta", "relayed", "relay", 10000);
    cluster_destroy(&c);
}

/* ---- per-pair quotas ---- */

enum { Q_RELAY, Q_ALPHA, Q_BETA, Q_GAMMA, Q_DELTA, Q_MAX };

/* A relay with the given relay config, and `pairs` pairs of members that
 * can only reach each other through it (alpha/beta, then gamma/delta). */
static cluster_t *s_quota_cluster(const char *relay_config, int pairs)
{
    cluster_member_t members[Q_MAX] = {
        {.name = "relay",
         .site = "cloud",
         .run = true,
         .roles = COHORT_ROLE_RELAY,
         .config = relay_config},
        {.name = "alpha", .site = "a", .run = true, .endpoint_port = CLUSTER_DEAD_PORT},
        {.name = "beta", .site = "b", .run = true, .endpoint_port = CLUSTER_DEAD_PORT},
        {.name = "gamma", .site = "c", .run = true, .endpoint_port = CLUSTER_DEAD_PORT},
        {.name = "delta", .site = "d", .run = true, .endpoint_port = CLUSTER_DEAD_PORT},
    };
    int count = 1 + 2 * pairs;
    cluster_t *c = cluster_new(members, count);
    cluster_wait_up(c, 20000);
    for (int i = Q_ALPHA; i < count; i += 2) {
        s_wait_link(c->nodes[i], c->members[i + 1].name, "relayed", "relay", 10000);
        s_wait_link(c->nodes[i + 1], c->members[i].name, "relayed", "relay", 10000);
    }
    return c;
}

/* Shared by the message and byte quota tests: a few messages within quota
 * pass without a drop; a burst of `burst` messages of `size` bytes is cut
 * down by the relay, and the session still delivers all of it, once each,
 * in order. Returns the burst's duration in ms. */
static int64_t s_overload_one_pair(cluster_t *c, int within, int burst, size_t size)
{
    cohort_t *alpha = c->nodes[Q_ALPHA], *beta = c->nodes[Q_BETA], *relay = c->nodes[Q_RELAY];

    /* Within quota: everything passes the relay untouched. */
    s_stats_t r0 = s_stats(relay);
    for (int i = 0; i < within; i++)
        s_send_seq(alpha, "beta", i, size);
    assert_int_equal(s_recv_in_order(beta, "alpha", 0, within, size, 10000), within);
    s_stats_t r1 = s_stats(relay);
    assert_int_equal(r1.relay_dropped, r0.relay_dropped);
    /* at least one frame: sent together they may share one (a Batch) */
    assert_true(r1.relay_frames > r0.relay_frames);

    /* Over quota: the relay drops and counts, the session resends. */
    s_stats_t a1 = s_stats(alpha);
    int64_t start = zclock_mono();
    for (int i = within; i < within + burst; i++)
        s_send_seq(alpha, "beta", i, size);
    int next = s_recv_in_order(beta, "alpha", within, within + burst, size, 15000);
    int64_t took = zclock_mono() - start;
    if (next != within + burst)
        fail_msg("only %d of %d messages arrived in 15 s (relay dropped %llu)", next - within,
                 burst, (unsigned long long)(s_stats(relay).relay_dropped - r1.relay_dropped));
    s_stats_t r2 = s_stats(relay), a2 = s_stats(alpha);
    assert_true(r2.relay_dropped > r1.relay_dropped);
    assert_true(a2.resent > a1.resent);

    /* Exactly once: once alpha holds nothing unacked, nothing more comes. */
    int64_t end = zclock_mono() + 10000;
    while (s_peer(alpha, "beta").unacked != 0) {
        if (zclock_mono() > end)
            fail_msg("alpha still holds %u unacked messages for beta",
                     s_peer(alpha, "beta").unacked);
        zclock_sleep(50);
    }
    cohort_msg_t *extra = s_next(beta, 300);
    if (extra)
        fail_msg("beta got a message more than once ('%.10s')",
                 (const char *)cohort_msg_payload(extra, &(size_t){0}));
    return took;
}

static void test_relay_caps_messages_per_pair_and_the_session_delivers_all(void **state)
{
    (void)state;
    cluster_t *c = s_quota_cluster("relay:\n  pair_messages_per_second: 20\n", 1);
    int64_t took = s_overload_one_pair(c, 4, 80, 32);
    /* 80 messages, at most 20 per one-second window (the quota counts
     * the messages a relayed Batch says it carries): a time span of T ms
     * meets at most T/1000 + 2 windows (one already open), so no relay
     * passes them all in under 2 s. */
    if (took < 2000)
        fail_msg("80 messages passed a 20/s relay quota in %lld ms", (long long)took);
    print_message("80 messages through a 20/s quota took %lld ms\n", (long long)took);
    cluster_destroy(&c);
}

static void test_relay_caps_bytes_per_pair_and_the_session_delivers_all(void **state)
{
    (void)state;
    cluster_t *c = s_quota_cluster("relay:\n  pair_bytes_per_second: 8KiB\n", 1);
    int64_t took = s_overload_one_pair(c, 4, 60, 512);
    /* Each sealed frame is over 512 bytes: 60 of them are over 30 KiB,
     * which at 8 KiB per window needs 4 windows, so over 2 s. */
    if (took < 2000)
        fail_msg("60 x 512 bytes passed an 8 KiB/s relay quota in %lld ms", (long long)took);
    print_message("60 x 512 bytes through an 8 KiB/s quota took %lld ms\n", (long long)took);
    cluster_destroy(&c);
}

/* A numbered stream of messages from member `from` to member `to`, sent
 * one every S_PACE_MS, with the time each was sent and the longest any took
 * to arrive. */
#define S_PACED 20
#define S_PACE_MS 100

typedef struct {
    int from, to;
    int sent, next; /* how many were sent; the next number expected */
    int64_t sent_at[S_PACED];
    int64_t worst_ms;
} s_stream_t;

/* Takes one message waiting on member `at`, if any: flood messages are
 * passed over, any other must be the next of its stream. */
static bool s_take_one(cluster_t *c, int at, s_stream_t *streams, int n, size_t size)
{
    cohort_msg_t *m = cohort_recv(c->nodes[at], 0);
    if (!m)
        return false;
    if (cohort_msg_kind(m) != COHORT_MSG_EVENT && strcmp(cohort_msg_subject(m), S_FLOOD) != 0) {
        s_stream_t *st = NULL;
        for (int i = 0; i < n && !st; i++)
            if (streams[i].to == at &&
                !strcmp(cohort_msg_sender(m), c->members[streams[i].from].name))
                st = &streams[i];
        if (!st || st->next >= st->sent)
            fail_msg("%s got a message from %s it did not expect", c->members[at].name,
                     cohort_msg_sender(m));
        char want[S_MAX_PAYLOAD];
        s_payload(want, st->next, size);
        size_t len = 0;
        const void *got = cohort_msg_payload(m, &len);
        if (len != size || memcmp(got, want, size) != 0)
            fail_msg("%s -> %s: expected seq %06d, got '%.10s'", cohort_msg_sender(m),
                     c->members[at].name, st->next, len >= 10 ? (const char *)got : "");
        int64_t took = zclock_mono() - st->sent_at[st->next];
        if (took > st->worst_ms)
            st->worst_ms = took;
        st->next++;
    }
    cohort_msg_destroy(&m);
    return true;
}

/* Sends flood messages from alpha to beta until `sent` matches 100 a
 * second since *next_send. */
static void s_flood(cluster_t *c, int64_t *next_send, int *sent)
{
    for (; *next_send <= zclock_mono(); *next_send += 10) {
        char payload[32];
        s_payload(payload, (*sent)++, sizeof payload);
        cohort_msg_t *m = cohort_msg_new(S_FLOOD, payload, sizeof payload);
        assert_int_equal(cohort_send(c->nodes[Q_ALPHA], "beta", &m, 5000), COHORT_OK);
    }
}

static void test_one_overloaded_pair_does_not_slow_other_pairs_through_the_same_relay(void **state)
{
    (void)state;
    cluster_t *c = s_quota_cluster("relay:\n  pair_messages_per_second: 20\n", 2);
    cohort_t *relay = c->nodes[Q_RELAY];

    /* alpha floods beta at 100 messages a second, five times the pair's
     * quota, until the relay is visibly dropping. */
    int flooded = 0;
    int64_t next_flood = zclock_mono(), end = next_flood + 10000;
    uint64_t dropped0 = s_stats(relay).relay_dropped;
    while (s_stats(relay).relay_dropped < dropped0 + 20) {
        if (zclock_mono() > end)
            fail_msg("the relay never dropped alpha's flood");
        for (int64_t check = zclock_mono() + 100; zclock_mono() < check; zclock_sleep(2))
            s_flood(c, &next_flood, &flooded);
    }

    /* Meanwhile other pairs, each at half its quota: one apart from the
     * flood, one sharing its destination, one sharing its source. Every
     * message arrives, in order and promptly, while the flood goes on and
     * is still cut down. Through a relay that shared one quota among pairs
     * (globally, per sender or per receiver) they would wait behind
     * alpha's frames for the windows alpha fills, and their resends back
     * off from 200 ms up. */
    s_stream_t streams[] = {
        {.from = Q_GAMMA, .to = Q_DELTA},
        {.from = Q_GAMMA, .to = Q_BETA},
        {.from = Q_ALPHA, .to = Q_DELTA},
    };
    int n = (int)(sizeof streams / sizeof *streams);
    uint64_t dropped1 = s_stats(relay).relay_dropped;
    int64_t start = zclock_mono(), last = start + (S_PACED - 1) * S_PACE_MS;
    for (;;) {
        int64_t now = zclock_mono();
        bool done = true;
        for (int i = 0; i < n; i++) {
            s_stream_t *st = &streams[i];
            if (st->sent < S_PACED && now >= start + st->sent * S_PACE_MS) {
                st->sent_at[st->sent] = now;
                s_send_seq(c->nodes[st->from], c->members[st->to].name, st->sent++, 32);
            }
            done = done && st->next == S_PACED;
        }
        if (done || now >= last + 3000)
            break;
        s_flood(c, &next_flood, &flooded);
        while (s_take_one(c, Q_BETA, streams, n, 32) || s_take_one(c, Q_DELTA, streams, n, 32))
            ;
        zclock_sleep(1);
    }
    assert_true(s_stats(relay).relay_dropped > dropped1);
    for (int i = 0; i < n; i++) {
        s_stream_t *st = &streams[i];
        const char *from = c->members[st->from].name, *to = c->members[st->to].name;
        if (st->next != S_PACED)
            fail_msg("%s -> %s: %d of %d messages arrived while alpha flooded beta", from, to,
                     st->next, S_PACED);
        print_message("%s -> %s: %d messages, slowest %lld ms (alpha flooded %d)\n", from, to,
                      S_PACED, (long long)st->worst_ms, flooded);
        /* Through the relay on loopback a message takes milliseconds; a
         * second leaves room for a busy machine, and none for a window
         * lost to alpha's flood and a resend backed off to 400 ms. */
        if (st->worst_ms >= 1000)
            fail_msg("%s -> %s: a message took %lld ms while alpha flooded beta", from, to,
                     (long long)st->worst_ms);
    }
    cluster_destroy(&c);
}

/* ---- never_relay_between ---- */

static void test_roster_policy_forbids_relaying_between_its_sites(void **state)
{
    (void)state;
    enum { RELAY, ALPHA, BETA, GAMMA, ROGUE, COUNT };
    cluster_member_t members[COUNT] = {
        {.name = "relay", .site = "cloud", .run = true, .roles = COHORT_ROLE_RELAY},
        {.name = "alpha", .site = "a", .run = true, .endpoint_port = CLUSTER_DEAD_PORT},
        {.name = "beta", .site = "b", .run = true, .endpoint_port = CLUSTER_DEAD_PORT},
        {.name = "gamma", .site = "c", .run = true, .endpoint_port = CLUSTER_DEAD_PORT},
        /* admitted at site a; the test plays it, ignoring the policy */
        {.name = "rogue", .site = "a"},
    };
    cluster_t *c = cluster_new_with_topology(members, COUNT,
                                             "topology:\n  sites: []\n  policies:\n"
                                             "  - never_relay_between: [a, b]\n");
    s_wait_up_from(c, RELAY, (const int[]){ALPHA, BETA, GAMMA, -1}, 20000);
    s_wait_up_from(c, ALPHA, (const int[]){RELAY, GAMMA, -1}, 20000);
    s_wait_up_from(c, BETA, (const int[]){RELAY, GAMMA, -1}, 20000);
    s_wait_up_from(c, GAMMA, (const int[]){RELAY, ALPHA, BETA, -1}, 20000);

    /* Allowed pairs relay: a <-> c and b <-> c. */
    s_wait_link(c->nodes[ALPHA], "gamma", "relayed", "relay", 10000);
    s_wait_link(c->nodes[BETA], "gamma", "relayed", "relay", 10000);
    cohort_msg_t *m = cohort_msg_new("allowed", "a->c", 4);
    assert_int_equal(cohort_send(c->nodes[ALPHA], "gamma", &m, 5000), COHORT_OK);
    cohort_msg_t *got = s_next(c->nodes[GAMMA], 10000);
    assert_non_null(got);
    assert_string_equal(cohort_msg_sender(got), "alpha");
    cohort_msg_destroy(&got);

    /* a <-> b: no relayed link, and both sides say why. A message is
     * queued (the session keeps it) but never arrives. */
    m = cohort_msg_new("forbidden", "a->b", 4);
    assert_int_equal(cohort_send(c->nodes[ALPHA], "beta", &m, 5000), COHORT_OK);
    int64_t end = zclock_mono() + 10000;
    for (bool done = false; !done;) {
        s_peer_t ab = s_peer(c->nodes[ALPHA], "beta"), ba = s_peer(c->nodes[BETA], "alpha");
        assert_string_equal(ab.link, "none");
        assert_string_equal(ba.link, "none");
        assert_string_equal(ab.via, "");
        assert_string_not_equal(ab.state, "up");
        assert_string_not_equal(ba.state, "up");
        done = !strcmp(ab.reason, "policy") && !strcmp(ba.reason, "policy");
        if (!done && zclock_mono() > end)
            fail_msg("reasons: alpha says '%s' for beta, beta says '%s' for alpha", ab.reason,
                     ba.reason);
        zclock_sleep(50);
    }

    /* The relay enforces the policy itself, whatever a member does: rogue
     * (site a) asks it to forward to beta (site b) directly. */
    s_stats_t r0 = s_stats(c->nodes[RELAY]), g0 = s_stats(c->nodes[GAMMA]);
    char pub[41], sec[41], server[41];
    cluster_z85(c, ROGUE, pub, sec);
    cluster_z85(c, RELAY, server, (char[41]){0});
    zsock_t *d = zsock_new(ZMQ_DEALER);
    zsock_set_curve_serverkey(d, server);
    zsock_set_curve_publickey(d, pub);
    zsock_set_curve_secretkey(d, sec);
    zsock_set_linger(d, 0);
    assert_int_equal(zsock_connect(d, "tcp://127.0.0.1:%d", c->ports[RELAY]), 0);
    uint8_t junk[64];
    memset(junk, 0x5a, sizeof junk);
    const char *targets[] = {"beta", "beta", "beta", "beta", "beta", "gamma"};
    for (size_t i = 0; i < sizeof targets / sizeof *targets; i++) {
        Cohort__Wire__Envelope env = COHORT__WIRE__ENVELOPE__INIT;
        Cohort__Wire__Relay relay = COHORT__WIRE__RELAY__INIT;
        relay.to = (char *)(uintptr_t)targets[i];
        relay.sealed.data = junk;
        relay.sealed.len = sizeof junk;
        env.body_case = COHORT__WIRE__ENVELOPE__BODY_RELAY;
        env.relay = &relay;
        uint8_t *wire = NULL;
        size_t len = 0;
        cohort_wire_encode(&env, &wire, &len);
        zsock_send(d, "b", wire, len);
        free(wire);
    }
    /* The frame for gamma (allowed: a <-> c) is forwarded, and gamma finds
     * it does not open; the five for beta are refused and counted. */
    end = zclock_mono() + 10000;
    while (s_stats(c->nodes[GAMMA]).seal_rejected == g0.seal_rejected ||
           s_stats(c->nodes[RELAY]).relay_dropped < r0.relay_dropped + 5) {
        if (zclock_mono() > end)
            fail_msg(
                "relay dropped %llu of rogue's frames, gamma rejected %llu",
                (unsigned long long)(s_stats(c->nodes[RELAY]).relay_dropped - r0.relay_dropped),
                (unsigned long long)(s_stats(c->nodes[GAMMA]).seal_rejected - g0.seal_rejected));
        zclock_sleep(50);
    }
    assert_true(s_stats(c->nodes[RELAY]).relay_frames > r0.relay_frames);
    zsock_destroy(&d);

    /* By now seconds have passed: beta never heard from alpha, nor got
     * anything the relay might have passed on. */
    assert_null(s_next(c->nodes[BETA], 300));
    assert_int_equal(s_stats(c->nodes[BETA]).seal_rejected, 0);
    assert_string_equal(s_peer(c->nodes[ALPHA], "beta").link, "none");
    assert_string_equal(s_peer(c->nodes[BETA], "alpha").link, "none");
    cluster_destroy(&c);
}

/* ---- non-members ---- */

/* handshake.refused lines logged by the nodes (any thread). */
static pthread_mutex_t s_log_lock = PTHREAD_MUTEX_INITIALIZER;
static char s_refused[4096];

static void s_log_refused(void *arg, cohort_log_level_t level, const char *line)
{
    (void)arg;
    (void)level;
    if (strncmp(line, "handshake.refused ", 18) != 0)
        return;
    pthread_mutex_lock(&s_log_lock);
    size_t n = strlen(s_refused);
    snprintf(s_refused + n, sizeof s_refused - n, "%s\n", line);
    pthread_mutex_unlock(&s_log_lock);
}

static bool s_refused_logged(const char *key, const char *reason)
{
    char want[128];
    snprintf(want, sizeof want, "handshake.refused key=%s reason=%s suppressed=", key, reason);
    pthread_mutex_lock(&s_log_lock);
    bool found = strstr(s_refused, want) != NULL;
    pthread_mutex_unlock(&s_log_lock);
    return found;
}

/* What one client with the given CURVE keys got from a rendezvous and
 * relay node after asking it for everything those roles give. */
typedef struct {
    bool handshake_ok, handshake_refused;
    int status;    /* the ZAP status code a refusal carried */
    bool observed; /* it told us our address */
    bool punch_go; /* it introduced us to alpha */
    bool pong;     /* it answered our probe */
    int frames;    /* anything at all */
} s_asked_t;

static void s_send_env(zsock_t *d, Cohort__Wire__Envelope *env)
{
    uint8_t *wire = NULL;
    size_t len = 0;
    cohort_wire_encode(env, &wire, &len);
    zsock_send(d, "b", wire, len);
    free(wire);
}

/* Connects to the node at port (server key `server`) as pub/sec, asks to be
 * introduced to alpha, to have a frame relayed to alpha and for a pong,
 * and reads what comes back for ms. */
static s_asked_t s_ask_everything(int port, const char *server, const char *pub, const char *sec,
                                  int ms)
{
    static int seq;
    s_asked_t out = {0};
    zsock_t *d = zsock_new(ZMQ_DEALER);
    zsock_set_curve_serverkey(d, server);
    zsock_set_curve_publickey(d, pub);
    zsock_set_curve_secretkey(d, sec);
    zsock_set_linger(d, 0);
    char mon_ep[64];
    snprintf(mon_ep, sizeof mon_ep, "inproc://intruder-mon-%d", ++seq);
    assert_int_equal(
        zmq_socket_monitor(zsock_resolve(d), mon_ep,
                           ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH),
        0);
    zsock_t *mon = zsock_new_pair(mon_ep);
    assert_non_null(mon);
    assert_int_equal(zsock_connect(d, "tcp://127.0.0.1:%d", port), 0);

    Cohort__Wire__Envelope env = COHORT__WIRE__ENVELOPE__INIT;
    Cohort__Wire__Ping ping = COHORT__WIRE__PING__INIT;
    ping.nonce = 42;
    env.body_case = COHORT__WIRE__ENVELOPE__BODY_PING;
    env.ping = &ping;
    s_send_env(d, &env);
    Cohort__Wire__PunchRequest req = COHORT__WIRE__PUNCH_REQUEST__INIT;
    req.target = (char *)(uintptr_t) "alpha";
    env.body_case = COHORT__WIRE__ENVELOPE__BODY_PUNCH_REQUEST;
    env.punch_request = &req;
    s_send_env(d, &env);
    uint8_t junk[64];
    memset(junk, 0x5a, sizeof junk);
    Cohort__Wire__Relay relay = COHORT__WIRE__RELAY__INIT;
    relay.to = (char *)(uintptr_t) "alpha";
    relay.sealed.data = junk;
    relay.sealed.len = sizeof junk;
    env.body_case = COHORT__WIRE__ENVELOPE__BODY_RELAY;
    env.relay = &relay;
    s_send_env(d, &env);

    zpoller_t *poller = zpoller_new(d, mon, NULL);
    int64_t end = zclock_mono() + ms;
    while (zclock_mono() < end) {
        void *which = zpoller_wait(poller, 50);
        if (which == mon) {
            zmsg_t *ev = zmsg_recv(mon);
            zframe_t *head = zmsg_first(ev);
            uint16_t id;
            uint32_t value;
            memcpy(&id, zframe_data(head), 2);
            memcpy(&value, zframe_data(head) + 2, 4);
            if (id == ZMQ_EVENT_HANDSHAKE_SUCCEEDED)
                out.handshake_ok = true;
            if (id == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) {
                out.handshake_refused = true;
                out.status = (int)value;
            }
            zmsg_destroy(&ev);
        } else if (which == d) {
            zframe_t *f = zframe_recv(d);
            Cohort__Wire__Envelope *in = NULL;
            cohort_err_t err;
            out.frames++;
            if (f && cohort_wire_decode(zframe_data(f), zframe_size(f), 1 << 20, &in, &err) == 0) {
                out.observed |= in->body_case == COHORT__WIRE__ENVELOPE__BODY_OBSERVED;
                out.pong |=
                    in->body_case == COHORT__WIRE__ENVELOPE__BODY_PONG && in->pong->nonce == 42;
                out.punch_go |= in->body_case == COHORT__WIRE__ENVELOPE__BODY_PUNCH_GO &&
                                in->punch_go->peer && !strcmp(in->punch_go->peer, "alpha") &&
                                in->punch_go->endpoint && *in->punch_go->endpoint;
                cohort_wire_free(&in);
            }
            zframe_destroy(&f);
        }
    }
    zpoller_destroy(&poller);
    zmq_socket_monitor(zsock_resolve(d), NULL, 0);
    zsock_destroy(&mon);
    zsock_destroy(&d);
    return out;
}

static void test_non_members_get_nothing_from_a_relay_or_rendezvous_node(void **state)
{
    (void)state;
    enum { HUB, ALPHA, BETA, ROGUE, GONE, COUNT };
    cluster_member_t members[COUNT] = {
        {.name = "hub",
         .site = "cloud",
         .run = true,
         .roles = COHORT_ROLE_RELAY | COHORT_ROLE_RENDEZVOUS},
        {.name = "alpha", .site = "a", .run = true},
        {.name = "beta", .site = "b", .run = true},
        {.name = "rogue", .site = "a"},                 /* admitted; the test plays it */
        {.name = "gone", .site = "a", .revoked = true}, /* listed, revoked */
    };
    /* alpha and beta meet directly, and never through the hub (the
     * policy), so the hub relays nothing unless asked by the test. */
    cluster_t *c = cluster_new_with_topology(members, COUNT,
                                             "topology:\n  sites: []\n  policies:\n"
                                             "  - never_relay_between: [a, b]\n");
    s_wait_up_from(c, HUB, (const int[]){ALPHA, BETA, -1}, 20000);
    s_wait_up_from(c, ALPHA, (const int[]){HUB, BETA, -1}, 20000);
    cohort_log_set_sink(s_log_refused, NULL, COHORT_LOG_WARN);
    cohort_t *hub = c->nodes[HUB], *alpha = c->nodes[ALPHA];
    char server[41], pub[41], sec[41];
    cluster_z85(c, HUB, server, (char[41]){0});

    /* Refusals first: a stranger with a valid CURVE key of its own, and a
     * member whose certificate the roster revokes. Both are refused in the
     * handshake (ZAP status 400, logged with the reason); nothing they
     * send reaches the node: no address, no introduction, no pong, nothing
     * relayed (the hub's own counters move with alpha's probes to the rogue,
     * whom it cannot reach: alpha's are the ones to watch), no frame from an
     * unknown sender. */
    for (int who = 0; who < 2; who++) {
        if (who == 0)
            assert_int_equal(zmq_curve_keypair(pub, sec), 0);
        else
            cluster_z85(c, GONE, pub, sec);
        s_stats_t a0 = s_stats(alpha);
        uint64_t refused0 = s_stats(hub).handshakes_refused;
        s_asked_t got = s_ask_everything(c->ports[HUB], server, pub, sec, 1500);
        const char *name = who == 0 ? "a stranger" : "a revoked member";
        if (got.handshake_ok || !got.handshake_refused || got.status != 400)
            fail_msg("%s: handshake ok %d, refused %d (status %d)", name, got.handshake_ok,
                     got.handshake_refused, got.status);
        if (got.frames)
            fail_msg("%s got %d frames back", name, got.frames);
        assert_true(s_stats(hub).handshakes_refused > refused0);
        assert_true(s_refused_logged(pub, who == 0 ? "unknown-key" : "revoked"));
        /* (alpha would reject the junk it was asked to relay) */
        assert_int_equal(s_stats(alpha).seal_rejected, a0.seal_rejected);
        assert_int_equal(s_stats(hub).unknown_sender, 0);
    }
    assert_null(s_next(alpha, 200));

    /* The same asked by an admitted member: it is told its address,
     * introduced and answered, and its frame is relayed (alpha cannot open
     * it: junk). So what the others did not get, they were refused. */
    cluster_z85(c, ROGUE, pub, sec);
    s_stats_t h0 = s_stats(hub), a0 = s_stats(alpha);
    s_asked_t got = s_ask_everything(c->ports[HUB], server, pub, sec, 1500);
    if (!got.handshake_ok || !got.observed || !got.punch_go || !got.pong)
        fail_msg("an admitted member: handshake %d, observed %d, introduced %d, pong %d",
                 got.handshake_ok, got.observed, got.punch_go, got.pong);
    int64_t end = zclock_mono() + 5000;
    while (s_stats(alpha).seal_rejected == a0.seal_rejected && zclock_mono() < end)
        zclock_sleep(50);
    assert_true(s_stats(hub).relay_frames > h0.relay_frames);
    assert_true(s_stats(alpha).seal_rejected > a0.seal_rejected);
    cohort_log_set_sink(NULL, NULL, COHORT_LOG_WARN);
    cluster_destroy(&c);
}

/* ---- frames claiming another sender ---- */

/* A Data envelope holding one unicast, as a node would seal it. */
static void s_sealed_unicast(cohort_seal_t *seal, const char *aad_from, const char *aad_to,
                             const char *subject, const char *text, uint8_t **out, size_t *out_len)
{
    Cohort__Wire__Message msg = COHORT__WIRE__MESSAGE__INIT;
    msg.kind = COHORT__WIRE__MESSAGE__KIND__UNICAST;
    msg.subject = (char *)(uintptr_t)subject;
    msg.payload.data = (uint8_t *)(uintptr_t)text;
    msg.payload.len = strlen(text);
    uint8_t body[256];
    assert_true(cohort__wire__message__get_packed_size(&msg) <= sizeof body);
    Cohort__Wire__Data data = COHORT__WIRE__DATA__INIT;
    data.stream = 1;
    data.seq = 1;
    data.body.data = body;
    data.body.len = cohort__wire__message__pack(&msg, body);
    Cohort__Wire__Envelope env = COHORT__WIRE__ENVELOPE__INIT;
    env.body_case = COHORT__WIRE__ENVELOPE__BODY_DATA;
    env.data = &data;
    uint8_t *plain = NULL;
    size_t plain_len = 0;
    cohort_wire_encode(&env, &plain, &plain_len);
    char aad[64];
    int aad_len = snprintf(aad, sizeof aad, "%s%c%s", aad_from, '\0', aad_to);
    cohort_err_t err;
    assert_int_equal(cohort_seal_wrap(seal, (const uint8_t *)aad, (size_t)aad_len, plain, plain_len,
                                      out, out_len, &err),
                     0);
    free(plain);
}

static void s_send_relay(zsock_t *d, const char *to, const char *from, const uint8_t *sealed,
                         size_t len)
{
    Cohort__Wire__Envelope env = COHORT__WIRE__ENVELOPE__INIT;
    Cohort__Wire__Relay relay = COHORT__WIRE__RELAY__INIT;
    relay.to = (char *)(uintptr_t)to;
    relay.from = (char *)(uintptr_t)from;
    relay.sealed.data = (uint8_t *)(uintptr_t)sealed;
    relay.sealed.len = len;
    env.body_case = COHORT__WIRE__ENVELOPE__BODY_RELAY;
    env.relay = &relay;
    s_send_env(d, &env);
}

static void
test_frames_claiming_another_sender_are_dropped_at_the_relay_or_the_receiver(void **state)
{
    (void)state;
    enum { RELAY, ALPHA, BETA, ROGUE, COUNT };
    cluster_member_t members[COUNT] = {
        {.name = "relay", .site = "cloud", .run = true, .roles = COHORT_ROLE_RELAY},
        {.name = "alpha", .site = "a", .run = true, .endpoint_port = CLUSTER_DEAD_PORT},
        {.name = "beta", .site = "b", .run = true, .endpoint_port = CLUSTER_DEAD_PORT},
        {.name = "rogue", .site = "c"}, /* admitted; the test plays it */
    };
    cluster_t *c = cluster_new(members, COUNT);
    cluster_wait_up(c, 20000);
    s_wait_link(c->nodes[BETA], "alpha", "relayed", "relay", 10000);
    cohort_t *relay = c->nodes[RELAY], *beta = c->nodes[BETA];
    char server[41], pub[41], sec[41];
    cluster_z85(c, RELAY, server, (char[41]){0});
    cluster_z85(c, ROGUE, pub, sec);
    zsock_t *d = zsock_new(ZMQ_DEALER);
    zsock_set_curve_serverkey(d, server);
    zsock_set_curve_publickey(d, pub);
    zsock_set_curve_secretkey(d, sec);
    zsock_set_linger(d, 0);
    assert_int_equal(zsock_connect(d, "tcp://127.0.0.1:%d", c->ports[RELAY]), 0);

    /* 1. The rogue hands the relay a frame for beta that names alpha as
     * its sender, as if the relay itself were delivering it: only a relay
     * may deliver on another's behalf, so it goes nowhere. */
    s_stats_t r0 = s_stats(relay), b0 = s_stats(beta);
    uint8_t junk[96];
    memset(junk, 0x5a, sizeof junk);
    s_send_relay(d, "beta", "alpha", junk, sizeof junk);
    int64_t end = zclock_mono() + 5000;
    while (s_stats(relay).seal_rejected == r0.seal_rejected) {
        if (zclock_mono() > end)
            fail_msg("the relay never counted the frame claiming alpha");
        zclock_sleep(20);
    }
    zclock_sleep(200); /* had it been passed on, beta would have rejected it by now */
    assert_int_equal(s_stats(beta).seal_rejected, b0.seal_rejected);

    /* 2. A frame the rogue sealed with its own key, claiming alpha in the
     * routing header it authenticates: the relay forwards it as the
     * rogue's (the handshake's name, never the frame's), and beta's seal
     * for the rogue does not open it. */
    uint8_t my_pub[COHORT_KEY_LEN], my_sec[COHORT_KEY_LEN], beta_pub[COHORT_KEY_LEN];
    assert_true(cohort_key_from_z85(pub, my_pub));
    assert_true(cohort_key_from_z85(sec, my_sec));
    memcpy(beta_pub, c->pub[BETA], COHORT_KEY_LEN);
    cohort_seal_t *seal = cohort_seal_new(my_sec, my_pub, beta_pub);
    uint8_t *sealed = NULL;
    size_t sealed_len = 0;
    s_sealed_unicast(seal, "alpha", "beta", "claim", "from alpha, honest", &sealed, &sealed_len);
    s_send_relay(d, "beta", NULL, sealed, sealed_len);
    free(sealed);
    end = zclock_mono() + 5000;
    while (s_stats(beta).seal_rejected == b0.seal_rejected) {
        if (zclock_mono() > end)
            fail_msg("beta never rejected the frame claiming alpha");
        zclock_sleep(20);
    }
    assert_null(s_next(beta, 300));

    /* 3. The same, honest about its sender: it arrives, as the rogue's. */
    s_sealed_unicast(seal, "rogue", "beta", "claim", "from rogue", &sealed, &sealed_len);
    s_send_relay(d, "beta", NULL, sealed, sealed_len);
    free(sealed);
    cohort_msg_t *got = s_next(beta, 5000);
    assert_non_null(got);
    assert_string_equal(cohort_msg_sender(got), "rogue");
    size_t len = 0;
    assert_memory_equal(cohort_msg_payload(got, &len), "from rogue", 10);
    cohort_msg_destroy(&got);
    assert_null(s_next(beta, 300));

    s_stats_t r1 = s_stats(relay), b1 = s_stats(beta);
    assert_int_equal(r1.seal_rejected, r0.seal_rejected + 1);
    assert_int_equal(b1.seal_rejected, b0.seal_rejected + 1);
    cohort_seal_destroy(&seal);
    OPENSSL_cleanse(my_sec, sizeof my_sec);
    zsock_destroy(&d);
    cluster_destroy(&c);
}

/* ---- a relay that replays and modifies ---- */

/* The test plays a relay member ("evil"): a CURVE ROUTER with its key that
 * answers hellos and probes as a node would and forwards relayed frames,
 * and can be told to keep copies of alpha's frames to beta, replay them,
 * corrupt one or pass one on as another member's. */
#define S_EVIL_KEEP 256
typedef struct {
    zsock_t *router;
    pthread_t thread;
    atomic_bool stop;
    pthread_mutex_t lock;
    struct {
        char name[32];
        uint8_t id[256];
        size_t id_len;
    } routes[4];
    int n_routes;
    uint64_t epoch;
    /* under lock */
    bool capture;
    int kept;
    uint8_t *keep[S_EVIL_KEEP];
    size_t keep_len[S_EVIL_KEEP];
    bool replay;       /* send what was kept to beta again, then clear */
    int replayed;      /* how many were */
    int tamper;        /* corrupt the next big frame from alpha to beta */
    int relabel;       /* pass the next big one on as evil's own */
    int forwarded_big; /* big frames from alpha to beta passed on unchanged */
} s_evil_t;

#define S_BIG 400 /* sealed frames over this are the test's messages, not probes */

static void s_evil_send(s_evil_t *e, const uint8_t *id, size_t id_len, Cohort__Wire__Envelope *env)
{
    uint8_t *wire = NULL;
    size_t len = 0;
    cohort_wire_encode(env, &wire, &len);
    zmq_send(zsock_resolve(e->router), id, id_len, ZMQ_SNDMORE | ZMQ_DONTWAIT);
    zmq_send(zsock_resolve(e->router), wire, len, ZMQ_DONTWAIT);
    free(wire);
}

static int s_evil_route(s_evil_t *e, const char *name)
{
    for (int i = 0; i < e->n_routes; i++)
        if (!strcmp(e->routes[i].name, name))
            return i;
    return -1;
}

static void s_evil_relay(s_evil_t *e, int to, const char *from, const uint8_t *sealed, size_t len,
                         uint32_t count)
{
    Cohort__Wire__Envelope env = COHORT__WIRE__ENVELOPE__INIT;
    Cohort__Wire__Relay r = COHORT__WIRE__RELAY__INIT;
    r.to = e->routes[to].name;
    r.from = (char *)(uintptr_t)from;
    r.sealed.data = (uint8_t *)(uintptr_t)sealed;
    r.sealed.len = len;
    r.count = count;
    env.body_case = COHORT__WIRE__ENVELOPE__BODY_RELAY;
    env.relay = &r;
    s_evil_send(e, e->routes[to].id, e->routes[to].id_len, &env);
}

static void s_evil_frame(s_evil_t *e, zframe_t *id, zframe_t *body)
{
    Cohort__Wire__Envelope *in = NULL;
    cohort_err_t err;
    if (cohort_wire_decode(zframe_data(body), zframe_size(body), 1 << 20, &in, &err) < 0)
        return;
    int from = -1;
    for (int i = 0; i < e->n_routes; i++)
        if (e->routes[i].id_len == zframe_size(id) &&
            !memcmp(e->routes[i].id, zframe_data(id), zframe_size(id)))
            from = i;
    Cohort__Wire__Envelope out = COHORT__WIRE__ENVELOPE__INIT;
    if (in->body_case == COHORT__WIRE__ENVELOPE__BODY_HELLO && in->hello->node && from < 0 &&
        e->n_routes < 4 && zframe_size(id) <= sizeof e->routes[0].id) {
        from = e->n_routes++;
        snprintf(e->routes[from].name, sizeof e->routes[from].name, "%s", in->hello->node);
        memcpy(e->routes[from].id, zframe_data(id), zframe_size(id));
        e->routes[from].id_len = zframe_size(id);
        Cohort__Wire__Hello hello = COHORT__WIRE__HELLO__INIT;
        hello.node = (char *)(uintptr_t) "evil";
        hello.epoch = e->epoch;
        hello.roster_serial = in->hello->roster_serial;
        out.body_case = COHORT__WIRE__ENVELOPE__BODY_HELLO;
        out.hello = &hello;
        s_evil_send(e, zframe_data(id), zframe_size(id), &out);
    } else if (in->body_case == COHORT__WIRE__ENVELOPE__BODY_PING) {
        Cohort__Wire__Pong pong = COHORT__WIRE__PONG__INIT;
        pong.nonce = in->ping->nonce;
        pong.sent_us = in->ping->sent_us;
        pong.epoch = e->epoch;
        pong.roster_serial = in->ping->roster_serial;
        out.body_case = COHORT__WIRE__ENVELOPE__BODY_PONG;
        out.pong = &pong;
        s_evil_send(e, zframe_data(id), zframe_size(id), &out);
    } else if (in->body_case == COHORT__WIRE__ENVELOPE__BODY_RELAY && from >= 0 && in->relay->to &&
               (!in->relay->from || !*in->relay->from)) {
        int to = s_evil_route(e, in->relay->to);
        const char *name = e->routes[from].name;
        uint8_t *sealed = in->relay->sealed.data;
        size_t len = in->relay->sealed.len;
        bool a_to_b = to >= 0 && !strcmp(name, "alpha") && !strcmp(in->relay->to, "beta");
        pthread_mutex_lock(&e->lock);
        if (a_to_b && e->capture && e->kept < S_EVIL_KEEP) {
            e->keep[e->kept] = malloc(len);
            memcpy(e->keep[e->kept], sealed, len);
            e->keep_len[e->kept++] = len;
        }
        if (a_to_b && len > S_BIG) {
            if (e->tamper) {
                e->tamper--;
                sealed[COHORT_SEAL_HEADER_LEN + len / 3] ^= 0x01; /* in the ciphertext */
            } else if (e->relabel) {
                e->relabel--;
                name = "evil";
            } else {
                e->forwarded_big++;
            }
        }
        pthread_mutex_unlock(&e->lock);
        if (to >= 0)
            s_evil_relay(e, to, name, sealed, len, in->relay->count);
    }
    cohort_wire_free(&in);
}

static void *s_evil_main(void *arg)
{
    s_evil_t *e = arg;
    while (!atomic_load(&e->stop)) {
        zmq_pollitem_t item = {zsock_resolve(e->router), 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&item, 1, 10) > 0) {
            zmsg_t *m = zmsg_recv(e->router);
            if (m && zmsg_size(m) == 2) {
                zframe_t *id = zmsg_first(m), *body = zmsg_next(m);
                s_evil_frame(e, id, body);
            }
            zmsg_destroy(&m);
        }
        pthread_mutex_lock(&e->lock);
        int beta = s_evil_route(e, "beta");
        if (e->replay && beta >= 0) {
            for (int i = 0; i < e->kept; i++) {
                s_evil_relay(e, beta, "alpha", e->keep[i], e->keep_len[i], 0);
                free(e->keep[i]);
            }
            e->replayed = e->kept;
            e->kept = 0;
            e->replay = false;
        }
        pthread_mutex_unlock(&e->lock);
    }
    return NULL;
}

/* Waits until node has rejected at least at_least sealed frames. */
static void s_wait_rejected(cohort_t *node, uint64_t at_least, const char *what)
{
    int64_t end = zclock_mono() + 5000;
    while (s_stats(node).seal_rejected < at_least) {
        if (zclock_mono() > end)
            fail_msg("%s: seal_rejected %llu, expected %llu", what,
                     (unsigned long long)s_stats(node).seal_rejected, (unsigned long long)at_least);
        zclock_sleep(20);
    }
}

/* Sends a big numbered message alpha -> beta and expects it at beta,
 * intact, once. */
static void s_big_once(cohort_t *alpha, cohort_t *beta, int n)
{
    char payload[2 * S_BIG];
    memset(payload, 'a' + n, sizeof payload);
    snprintf(payload, 16, "big %d ", n);
    cohort_msg_t *m = cohort_msg_new("big", payload, sizeof payload);
    assert_int_equal(cohort_send(alpha, "beta", &m, 5000), COHORT_OK);
    cohort_msg_t *got = s_next(beta, 10000);
    if (!got)
        fail_msg("big message %d never arrived", n);
    size_t len = 0;
    const void *p = cohort_msg_payload(got, &len);
    assert_string_equal(cohort_msg_sender(got), "alpha");
    if (len != sizeof payload || memcmp(p, payload, len) != 0)
        fail_msg("big message %d arrived changed", n);
    cohort_msg_destroy(&got);
}

static void test_a_relay_that_replays_or_modifies_frames_gets_them_rejected(void **state)
{
    (void)state;
    enum { EVIL, ALPHA, BETA, COUNT };
    cluster_member_t members[COUNT] = {
        {.name = "evil", .site = "cloud", .roles = COHORT_ROLE_RELAY}, /* the test plays it */
        {.name = "alpha", .site = "a", .run = true, .endpoint_port = CLUSTER_DEAD_PORT},
        {.name = "beta", .site = "b", .run = true, .endpoint_port = CLUSTER_DEAD_PORT},
    };
    cluster_t *c = cluster_new(members, COUNT);
    static s_evil_t e;
    memset(&e, 0, sizeof e);
    pthread_mutex_init(&e.lock, NULL);
    e.epoch = (uint64_t)zclock_time() * 1000;
    char pub[41], sec[41];
    cluster_z85(c, EVIL, pub, sec);
    e.router = zsock_new(ZMQ_ROUTER);
    zsock_set_curve_server(e.router, 1);
    zsock_set_curve_secretkey(e.router, sec);
    zsock_set_linger(e.router, 0);
    assert_true(zsock_bind(e.router, "tcp://127.0.0.1:%d", c->ports[EVIL]) >= 0);
    assert_int_equal(pthread_create(&e.thread, NULL, s_evil_main, &e), 0);
    cohort_t *alpha = c->nodes[ALPHA], *beta = c->nodes[BETA];
    s_wait_up_from(c, ALPHA, (const int[]){BETA, -1}, 20000);
    s_wait_link(alpha, "beta", "relayed", "evil", 10000);
    s_wait_link(beta, "alpha", "relayed", "evil", 10000);

    /* Through the relay as it should be: keep copies of what passes. */
    pthread_mutex_lock(&e.lock);
    e.capture = true;
    pthread_mutex_unlock(&e.lock);
    s_big_once(alpha, beta, 1);
    zclock_sleep(1500); /* and alpha's probes to beta */
    pthread_mutex_lock(&e.lock);
    e.capture = false;
    pthread_mutex_unlock(&e.lock);
    zclock_sleep(300); /* what was passed on has been opened */

    /* 1. Replayed: every copy is refused by beta's seal (none reaches its
     * session, where it would count as a duplicate), nothing is delivered. */
    uint64_t rejected = s_stats(beta).seal_rejected, dups = s_stats(beta).duplicates_dropped;
    pthread_mutex_lock(&e.lock);
    int kept = e.kept;
    e.replay = true;
    pthread_mutex_unlock(&e.lock);
    assert_true(kept >= 2);
    s_wait_rejected(beta, rejected + (uint64_t)kept, "replayed");
    zclock_sleep(200);
    assert_int_equal(s_stats(beta).seal_rejected, rejected + (uint64_t)kept);
    assert_int_equal(s_stats(beta).duplicates_dropped, dups);
    assert_null(s_next(beta, 300));

    /* 2. Modified: one bit of the ciphertext flipped. Refused; alpha's
     * session resends, the relay passes that on, and it arrives intact,
     * once. */
    rejected = s_stats(beta).seal_rejected;
    pthread_mutex_lock(&e.lock);
    e.tamper = 1;
    pthread_mutex_unlock(&e.lock);
    s_big_once(alpha, beta, 2);
    s_wait_rejected(beta, rejected + 1, "modified");
    assert_null(s_next(beta, 300));

    /* 3. Passed on as the relay's own (claiming another sender): refused
     * too, then resent and delivered as alpha's. */
    rejected = s_stats(beta).seal_rejected;
    pthread_mutex_lock(&e.lock);
    e.relabel = 1;
    pthread_mutex_unlock(&e.lock);
    s_big_once(alpha, beta, 3);
    assert_true(s_stats(beta).seal_rejected >= rejected + 1);
    assert_null(s_next(beta, 300));
    pthread_mutex_lock(&e.lock);
    assert_int_equal(e.tamper + e.relabel, 0);
    print_message("replayed %d frames, all rejected; 1 modified, 1 relabelled, rejected\n",
                  e.replayed);
    pthread_mutex_unlock(&e.lock);

    atomic_store(&e.stop, true);
    pthread_join(e.thread, NULL);
    for (int i = 0; i < e.kept; i++)
        free(e.keep[i]);
    zsock_destroy(&e.router);
    pthread_mutex_destroy(&e.lock);
    cluster_destroy(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_non_members_get_nothing_from_a_relay_or_rendezvous_node),
        cmocka_unit_test(
            test_frames_claiming_another_sender_are_dropped_at_the_relay_or_the_receiver),
        cmocka_unit_test(test_a_relay_that_replays_or_modifies_frames_gets_them_rejected),
        cmocka_unit_test(test_roster_policy_forbids_relaying_between_its_sites),
        cmocka_unit_test(test_peers_without_a_direct_path_meet_through_the_relay),
        cmocka_unit_test(test_relay_caps_messages_per_pair_and_the_session_delivers_all),
        cmocka_unit_test(test_relay_caps_bytes_per_pair_and_the_session_delivers_all),
        cmocka_unit_test(test_one_overloaded_pair_does_not_slow_other_pairs_through_the_same_relay),
    };
    return cmocka_run_group_tests_name("relay", tests, NULL, NULL);
}
