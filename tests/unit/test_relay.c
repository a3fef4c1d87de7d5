/*
 * Relayed links: members that advertise endpoints nobody can reach (dead
 * ports) can only meet through a relay node they all dial. Traffic must flow
 * both ways, sealed end to end; the relay's view of it must hold no
 * plaintext. The relay enforces per-pair quotas (the session layer makes up
 * for what it drops) and the roster's never_relay_between site policy.
 *
 * Waits are polls against a deadline, never fixed sleeps; timing is only
 * asserted where the quota arithmetic makes it certain.
 */
#include "testutil.h"

#include "api.pb-c.h"
#include "cluster.h"
#include "cohort.h"
#include "envelope.pb-c.h"
#include "roster/roster.h"
#include "wire/wire.h"

#include <czmq.h>

/* The node status fields these tests read. */
typedef struct {
    uint64_t relay_frames, relay_dropped, seal_rejected, resent;
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roster_policy_forbids_relaying_between_its_sites),
        cmocka_unit_test(test_peers_without_a_direct_path_meet_through_the_relay),
        cmocka_unit_test(test_relay_caps_messages_per_pair_and_the_session_delivers_all),
        cmocka_unit_test(test_relay_caps_bytes_per_pair_and_the_session_delivers_all),
        cmocka_unit_test(test_one_overloaded_pair_does_not_slow_other_pairs_through_the_same_relay),
    };
    return cmocka_run_group_tests_name("relay", tests, NULL, NULL);
}
