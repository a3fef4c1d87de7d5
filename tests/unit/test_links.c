/*
 * Unit tests for node/links: when the link manager asks a rendezvous to
 * punch, and when it gives up a punched link. The node is made by hand with
 * no network: a rendezvous peer that counts as linked (it takes nothing: its
 * sends fail, which is fine here), a relay peer and the peer under test.
 * links_tick runs on the real clock; node_t.punch_requests counts the
 * PunchRequests it decided to send.
 */
#include "testutil.h"

#include "node/node_impl.h"
#include "pki/key.h"

#include <czmq.h>
#include <zmq.h>

enum { RDV, RELAY, PEER, COUNT };

typedef struct {
    node_t node;
    cohort_config_t cfg;
    node_peer_t peers[COUNT];
    char names[COUNT][8];
    char self_name[8];
    void *ctx;
} fixture_t;

static void s_keypair(uint8_t pub[COHORT_KEY_LEN], uint8_t sec[COHORT_KEY_LEN])
{
    char zpub[41], zsec[41];
    assert_int_equal(zmq_curve_keypair(zpub, zsec), 0);
    assert_true(cohort_key_from_z85(zpub, pub));
    assert_true(cohort_key_from_z85(zsec, sec));
}

static int s_setup(void **state)
{
    fixture_t *f = calloc(1, sizeof *f);
    f->cfg.direct_timeout_ms = 2000;
    f->cfg.punch_timeout_ms = 3000;
    f->cfg.upgrade_interval_ms = 30000;
    f->cfg.probe_timeout_ms = 3000;
    f->cfg.punch_port = 7701;
    f->cfg.max_message_size = 1024 * 1024;
    f->cfg.node_name = f->self_name;
    snprintf(f->self_name, sizeof f->self_name, "self");
    f->ctx = zmq_ctx_new();
    node_t *n = &f->node;
    n->cfg = &f->cfg;
    n->ctx = f->ctx;
    n->epoch = 1;
    /* Events go nowhere: an unconnected PAIR that never blocks. */
    n->inbox = zsock_new(ZMQ_PAIR);
    zsock_set_sndtimeo(n->inbox, 0);
    n->peers = f->peers;
    n->peer_count = COUNT;
    uint8_t scratch[COHORT_KEY_LEN];
    s_keypair(n->public_key, n->secret_key);
    const char *names[COUNT] = {"rdv", "relay", "peer"};
    for (int i = 0; i < COUNT; i++) {
        node_peer_t *p = &f->peers[i];
        snprintf(f->names[i], sizeof f->names[i], "%s", names[i]);
        p->name = f->names[i];
        /* This node has the smaller key: it is the one that asks. */
        do
            s_keypair(p->key, scratch);
        while (memcmp(n->public_key, p->key, COHORT_KEY_LEN) > 0);
        p->rtt_us = -1;
        p->session = cohort_session_new(1, 16, 1024 * 1024, 200, 3000);
        links_peer_init(n, p);
    }
    f->peers[RDV].roles = COHORT_ROLE_RENDEZVOUS;
    f->peers[RDV].punch_up = true; /* a real link, as far as links.c can tell */
    f->peers[RDV].up = true;
    f->peers[RELAY].roles = COHORT_ROLE_RELAY;
    f->peers[RELAY].punch_up = true;
    f->peers[RELAY].up = true;
    *state = f;
    return 0;
}

static int s_teardown(void **state)
{
    fixture_t *f = *state;
    for (int i = 0; i < COUNT; i++) {
        links_peer_fini(&f->peers[i]);
        cohort_session_destroy(&f->peers[i].session);
    }
    zsock_destroy(&f->node.inbox);
    zmq_ctx_term(f->ctx);
    free(f);
    return 0;
}

/* Peer `p` as seen after its direct rung had its chance: up (through the
 * relay), direct deadline passed, an upgrade attempt due. */
static node_peer_t *s_ready_to_punch(fixture_t *f)
{
    node_peer_t *p = &f->peers[PEER];
    int64_t now = node_now();
    p->up = true;
    p->via = &f->peers[RELAY];
    p->direct_deadline = now - 1;
    p->upgrade.next = now - 1;
    return p;
}

static void test_a_peer_past_its_direct_deadline_is_punched_once_per_attempt(void **state)
{
    fixture_t *f = *state;
    node_peer_t *p = s_ready_to_punch(f);
    links_tick(&f->node);
    assert_int_equal(f->node.punch_requests, 1);
    assert_string_equal(p->reason, "no-endpoint"); /* none in its roster entry */
    links_tick(&f->node);                          /* the next one waits for the backoff */
    assert_int_equal(f->node.punch_requests, 1);
}

static void test_no_punch_while_direct_is_dialling(void **state)
{
    fixture_t *f = *state;
    node_peer_t *p = s_ready_to_punch(f);
    p->direct_deadline = node_now() + 1000;
    links_tick(&f->node);
    assert_int_equal(f->node.punch_requests, 0);
    assert_int_equal(p->upgrade.failures, 0); /* no attempt used up */
}

static void test_a_direct_handshake_holds_the_punch_back_while_it_earns_its_probes(void **state)
{
    fixture_t *f = *state;
    node_peer_t *p = s_ready_to_punch(f);
    /* The dealer's handshake completed just as the first direct_timeout
     * ran out; the direct rung has answered one probe, not yet two. */
    p->dealer_up = true;
    links_direct_progress(&f->node, p);
    cohort_ladder_probe_ok(&p->ladder, COHORT_RUNG_DIRECT, node_now());
    assert_true(p->direct_deadline >= node_now() + f->cfg.probe_timeout_ms - 100);
    links_tick(&f->node);
    assert_int_equal(f->node.punch_requests, 0);
    /* A connection the peer made to us counts the same. */
    p->dealer_up = false;
    p->direct_deadline = node_now() - 1;
    p->route_len = 5;
    links_direct_progress(&f->node, p);
    links_tick(&f->node);
    assert_int_equal(f->node.punch_requests, 0);
    /* A direct link that then never earns its probes does not hold it back
     * for ever: past the pushed deadline, the punch goes ahead. */
    p->route_len = 0;
    p->direct_deadline = node_now() - 1;
    links_tick(&f->node);
    assert_int_equal(f->node.punch_requests, 1);
}

static void test_a_working_direct_rung_is_never_punched(void **state)
{
    fixture_t *f = *state;
    node_peer_t *p = s_ready_to_punch(f);
    int64_t now = node_now();
    cohort_ladder_probe_ok(&p->ladder, COHORT_RUNG_DIRECT, now - 500);
    cohort_ladder_probe_ok(&p->ladder, COHORT_RUNG_DIRECT, now);
    links_tick(&f->node);
    assert_int_equal(f->node.punch_requests, 0);
    assert_string_equal(p->reason, "");
    assert_true(p->direct_deadline > now);
}

static void test_a_down_peer_is_not_punched_and_coming_up_makes_its_attempt_due(void **state)
{
    fixture_t *f = *state;
    node_peer_t *p = s_ready_to_punch(f);
    p->up = false; /* the relay is there: it would have brought p up */
    links_tick(&f->node);
    assert_int_equal(f->node.punch_requests, 0);
    assert_int_equal(p->upgrade.failures, 0); /* the attempt is kept */
    /* Up, attempted, failed: the next attempt is seconds away... */
    p->up = true;
    links_tick(&f->node);
    assert_int_equal(f->node.punch_requests, 1);
    p->up = false;
    p->upgrade.failures = 5; /* ...or, after many failures, the full interval */
    p->upgrade.next = node_now() + f->cfg.upgrade_interval_ms;
    links_tick(&f->node);
    assert_int_equal(f->node.punch_requests, 1);
    /* ...but the peer coming back up makes it due at once. */
    p->up = true;
    links_peer_up(&f->node, p);
    assert_int_equal(p->upgrade.failures, 0);
    links_tick(&f->node);
    assert_int_equal(f->node.punch_requests, 2);
}

static void test_a_down_peer_without_a_relay_is_still_punched(void **state)
{
    fixture_t *f = *state;
    node_peer_t *p = s_ready_to_punch(f);
    /* Nothing but a punch can ever bring it up. */
    p->up = false;
    p->via = NULL;
    links_tick(&f->node);
    assert_int_equal(f->node.punch_requests, 1);
}

static void test_failed_punches_back_off_from_punch_timeout_to_upgrade_interval(void **state)
{
    fixture_t *f = *state;
    node_peer_t *p = s_ready_to_punch(f);
    int64_t expect = f->cfg.punch_timeout_ms;
    for (int i = 0; i < 8; i++) {
        int64_t now = node_now();
        p->upgrade.next = now; /* as if the wait had passed */
        links_tick(&f->node);
        assert_int_equal(f->node.punch_requests, (uint64_t)i + 1);
        int64_t wait = p->upgrade.next - now;
        assert_true(wait <= expect + 5); /* 5 ms: the clock moves a bit */
        assert_true(wait >= expect - expect / 4);
        expect = expect * 2 > f->cfg.upgrade_interval_ms ? f->cfg.upgrade_interval_ms : expect * 2;
    }
    assert_int_equal(expect, f->cfg.upgrade_interval_ms);
}

static void test_a_rendezvous_coming_up_makes_every_attempt_due(void **state)
{
    fixture_t *f = *state;
    node_peer_t *p = s_ready_to_punch(f);
    p->upgrade.failures = 6;
    p->upgrade.next = node_now() + 30000;
    links_peer_up(&f->node, &f->peers[RDV]);
    assert_int_equal(p->upgrade.failures, 0);
    links_tick(&f->node);
    assert_int_equal(f->node.punch_requests, 1);
}

/* A punch socket in the state a completed simultaneous open leaves it in
 * (no real connection: links.c only looks at its flags and closes it). */
static void s_fake_punch(fixture_t *f, node_peer_t *p, int64_t up_at)
{
    p->punch = zmq_socket(f->ctx, ZMQ_DEALER);
    p->punch_mon = zmq_socket(f->ctx, ZMQ_PAIR);
    p->punch_up = p->punch_was_up = true;
    p->punch_up_at = up_at;
    p->punch_deadline = up_at;
}

static void test_a_silent_punched_link_is_closed_and_punching_starts_over(void **state)
{
    fixture_t *f = *state;
    node_peer_t *p = s_ready_to_punch(f);
    int64_t now = node_now();
    /* Punched, working and active; the relay answers too. */
    s_fake_punch(f, p, now - 10000);
    for (int64_t t = now - 3600; t <= now - 3100; t += 500) {
        cohort_ladder_probe_ok(&p->ladder, COHORT_RUNG_PUNCHED, t);
        cohort_ladder_probe_ok(&p->ladder, COHORT_RUNG_RELAYED, t);
    }
    cohort_ladder_update(&p->ladder, now - 3100, f->cfg.probe_timeout_ms, NULL);
    assert_int_equal(p->ladder.active, COHORT_RUNG_PUNCHED);
    cohort_ladder_probe_ok(&p->ladder, COHORT_RUNG_RELAYED, now);
    p->upgrade.failures = 3;
    p->upgrade.next = now + 20000;
    /* Its last answer was 3.1 s ago: black-holed. */
    links_tick(&f->node);
    assert_null(p->punch);
    assert_false(p->punch_up);
    assert_string_equal(p->reason, "punch-lost");
    assert_int_equal(p->ladder.active, COHORT_RUNG_RELAYED);
    assert_int_equal(f->node.punch_failed, 0); /* it worked: not a failed punch */
    /* The lost rung started the backoff over: a fresh punch is asked for. */
    assert_int_equal(f->node.punch_requests, 1);
}

static void test_a_punched_link_that_answers_is_kept(void **state)
{
    fixture_t *f = *state;
    node_peer_t *p = s_ready_to_punch(f);
    int64_t now = node_now();
    s_fake_punch(f, p, now - 10000);
    cohort_ladder_probe_ok(&p->ladder, COHORT_RUNG_PUNCHED, now - 2000);
    links_tick(&f->node);
    assert_non_null(p->punch);
    /* Just up, no probe answered yet: it gets probe_timeout too. */
    links_peer_fini(p);
    links_peer_init(&f->node, p);
    s_ready_to_punch(f);
    s_fake_punch(f, p, now - 1000);
    links_tick(&f->node);
    assert_non_null(p->punch);
    assert_int_equal(f->node.punch_requests, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, s_setup, s_teardown)
        T(test_a_peer_past_its_direct_deadline_is_punched_once_per_attempt),
        T(test_no_punch_while_direct_is_dialling),
        T(test_a_direct_handshake_holds_the_punch_back_while_it_earns_its_probes),
        T(test_a_working_direct_rung_is_never_punched),
        T(test_a_down_peer_is_not_punched_and_coming_up_makes_its_attempt_due),
        T(test_a_down_peer_without_a_relay_is_still_punched),
        T(test_failed_punches_back_off_from_punch_timeout_to_upgrade_interval),
        T(test_a_rendezvous_coming_up_makes_every_attempt_due),
        T(test_a_silent_punched_link_is_closed_and_punching_starts_over),
        T(test_a_punched_link_that_answers_is_kept),
#undef T
    };
    return cmocka_run_group_tests_name("links", tests, NULL, NULL);
}
