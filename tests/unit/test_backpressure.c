/*
 * Backpressure tests: a reliable message is never acknowledged and then
 * lost. When the receiving application does not read, its node stops
 * taking new messages (limits.receive_queue, limits.receive_bytes) instead
 * of dropping them; the sender's session holds them and resends, and once
 * the application reads again every message arrives, once, in order.
 */
#include "testutil.h"

#include "api.pb-c.h"
#include "cluster.h"

#include <czmq.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static Cohort__Api__Counters *s_counters(cohort_t *node)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    assert_int_equal(cohort_info(node, "status", &buf, &len), COHORT_OK);
    Cohort__Api__Response *r = cohort__api__response__unpack(NULL, len, buf);
    free(buf);
    assert_non_null(r);
    assert_non_null(r->status_info);
    Cohort__Api__Counters *c = r->status_info->counters;
    r->status_info->counters = NULL;
    cohort__api__response__free_unpacked(r, NULL);
    return c;
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
    uint64_t deferred = 0;
    Cohort__Api__Counters *k = NULL;
    for (int i = 0; i < 200 && deferred == 0; i++) {
        k = s_counters(c->nodes[0]);
        deferred = k->delivery_deferred;
        cohort__api__counters__free_unpacked(k, NULL);
        if (!deferred)
            zclock_sleep(50);
    }
    assert_true(deferred > 0);
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
    k = s_counters(c->nodes[0]);
    assert_int_equal(k->delivery_dropped, 0);
    print_message("deferred %llu deliveries, dropped %llu\n",
                  (unsigned long long)k->delivery_deferred,
                  (unsigned long long)k->delivery_dropped);
    cohort__api__counters__free_unpacked(k, NULL);
    cluster_destroy(&c);
}

/* The same bound in bytes: 16 KiB messages to an application that does
 * not read stop at limits.receive_bytes (64 KiB here), far below
 * receive_queue, and all arrive once it reads. */
static void test_unread_bytes_are_bounded_too(void **state)
{
    (void)state;
    const cluster_member_t members[] = {
        {.name = "alpha", .run = true, .config = "limits:\n  receive_bytes: 64KiB\n"},
        {.name = "beta", .run = true, .config = "limits:\n  send_timeout: 20s\n"},
    };
    cluster_t *c = cluster_new(members, 2);
    cluster_wait_up(c, 10000);
    enum { N = 200, SIZE = 16 * 1024 };
    uint8_t *payload = malloc(SIZE);
    for (int i = 1; i <= N; i++) {
        memset(payload, i & 0xff, SIZE);
        memcpy(payload, &i, sizeof i);
        cohort_msg_t *m = cohort_msg_new("big", payload, SIZE);
        assert_int_equal(cohort_send(c->nodes[1], "alpha", &m, 20000), COHORT_OK);
    }
    free(payload);
    uint64_t deferred = 0;
    for (int i = 0; i < 200 && deferred == 0; i++) {
        Cohort__Api__Counters *k = s_counters(c->nodes[0]);
        deferred = k->delivery_deferred;
        cohort__api__counters__free_unpacked(k, NULL);
        if (!deferred)
            zclock_sleep(50);
    }
    /* 200 messages are far below receive_queue: only the byte bound
     * defers them */
    assert_true(deferred > 0);
    int next = 1;
    while (next <= N) {
        cohort_msg_t *m = cluster_next(c, 0, 15000);
        if (!m)
            fail_msg("message %d never arrived", next);
        if (cohort_msg_kind(m) == COHORT_MSG_UNICAST) {
            size_t len = 0;
            const uint8_t *p = cohort_msg_payload(m, &len);
            assert_int_equal(len, SIZE);
            int seq = 0;
            memcpy(&seq, p, sizeof seq);
            assert_int_equal(seq, next);
            assert_int_equal(p[SIZE - 1], next & 0xff);
            next++;
        }
        cohort_msg_destroy(&m);
    }
    Cohort__Api__Counters *k = s_counters(c->nodes[0]);
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
    uint8_t payload[SIZE];
    for (int i = 1; i <= N; i++) {
        memset(payload, i & 0xff, SIZE);
        memcpy(payload, &i, sizeof i);
        cohort_msg_t *m = cohort_msg_new("b", payload, SIZE);
        assert_int_equal(cohort_send(c->nodes[1], "alpha", &m, 20000), COHORT_OK);
    }
    uint64_t deferred = 0;
    for (int i = 0; i < 200 && deferred == 0; i++) {
        Cohort__Api__Counters *k = s_counters(c->nodes[0]);
        deferred = k->delivery_deferred;
        cohort__api__counters__free_unpacked(k, NULL);
        if (!deferred)
            zclock_sleep(50);
    }
    assert_true(deferred > 0);
    zclock_sleep(1000); /* beta's resend timer fires: its window goes again */
    int next = 1;
    while (next <= N) {
        cohort_msg_t *m = cluster_next(c, 0, 15000);
        if (!m)
            fail_msg("message %d never arrived", next);
        if (cohort_msg_kind(m) == COHORT_MSG_UNICAST) {
            size_t len = 0;
            const uint8_t *p = cohort_msg_payload(m, &len);
            int seq = 0;
            memcpy(&seq, p, sizeof seq);
            assert_int_equal(seq, next);
            next++;
        }
        cohort_msg_destroy(&m);
    }
    Cohort__Api__Counters *k = s_counters(c->nodes[0]);
    assert_int_equal(k->oversized_dropped, 0);
    print_message("%d messages of %d bytes in %llu frames\n", N, SIZE,
                  (unsigned long long)k->messages_in);
    cohort__api__counters__free_unpacked(k, NULL);
    cluster_destroy(&c);
}

int main(void)
{
    cluster_log_from_env();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_slow_reader_defers_messages_and_loses_none),
        cmocka_unit_test(test_unread_bytes_are_bounded_too),
        cmocka_unit_test(test_batches_fit_a_small_max_message_size),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
