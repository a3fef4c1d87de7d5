/*
 * Relayed links: alpha and beta advertise endpoints nobody can reach (dead
 * ports), so they can only meet through the relay node both of them dial.
 * Traffic must flow both ways, sealed end to end; the relay's view of it
 * must hold no plaintext.
 */
#include "testutil.h"

#include "api.pb-c.h"
#include "cluster.h"
#include "cohort.h"
#include "roster/roster.h"

#include <czmq.h>

enum { RELAY, ALPHA, BETA, COUNT };

static Cohort__Api__Peer *s_peer(cohort_t *node, const char *name, Cohort__Api__Response **keep)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    assert_int_equal(cohort_info(node, "peers", &buf, &len), COHORT_OK);
    *keep = cohort__api__response__unpack(NULL, len, buf);
    free(buf);
    assert_non_null(*keep);
    for (size_t i = 0; i < (*keep)->n_peers; i++)
        if (!strcmp((*keep)->peers[i]->name, name))
            return (*keep)->peers[i];
    fail_msg("no peer %s", name);
    abort(); /* not reached: fail_msg does not return */
}

static void test_peers_without_a_direct_path_meet_through_the_relay(void **state)
{
    (void)state;
    int dead_a = cluster_free_port(), dead_b = cluster_free_port();
    cluster_member_t members[COUNT] = {
        {.name = "relay", .site = "cloud", .run = true, .roles = COHORT_ROLE_RELAY},
        {.name = "alpha", .site = "a", .run = true, .endpoint_port = dead_a},
        {.name = "beta", .site = "b", .run = true, .endpoint_port = dead_b},
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
    Cohort__Api__Response *resp = NULL;
    Cohort__Api__Peer *beta = NULL;
    for (int i = 0; i < 100; i++) {
        cohort__api__response__free_unpacked(resp, NULL);
        beta = s_peer(c->nodes[ALPHA], "beta", &resp);
        if (!strcmp(beta->link, "relayed"))
            break;
        zclock_sleep(100);
    }
    assert_string_equal(beta->link, "relayed");
    cohort__api__response__free_unpacked(resp, NULL);
    cluster_destroy(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_peers_without_a_direct_path_meet_through_the_relay),
    };
    return cmocka_run_group_tests_name("relay", tests, NULL, NULL);
}
