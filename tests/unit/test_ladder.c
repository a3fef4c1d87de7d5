/*
 * Unit tests for overlay/ladder: rung choice from probe results.
 */
#include "testutil.h"

#include "overlay/ladder.h"

#define T 3000 /* probe timeout */

static void test_a_single_answered_probe_is_not_enough_to_switch(void **state)
{
    (void)state;
    cohort_ladder_t l;
    cohort_ladder_init(&l);
    cohort_ladder_probe_ok(&l, COHORT_RUNG_DIRECT, 1000);
    assert_false(cohort_ladder_update(&l, 1000, T, NULL));
    assert_int_equal(l.active, COHORT_RUNG_NONE);
    cohort_ladder_probe_ok(&l, COHORT_RUNG_DIRECT, 2000);
    cohort_rung_t from = COHORT_RUNG_DIRECT;
    assert_true(cohort_ladder_update(&l, 2000, T, &from));
    assert_int_equal(from, COHORT_RUNG_NONE);
    assert_int_equal(l.active, COHORT_RUNG_DIRECT);
    assert_string_equal(cohort_rung_name(l.active), "direct");
}

static void test_a_silent_rung_is_demoted_to_the_next_that_answers(void **state)
{
    (void)state;
    cohort_ladder_t l;
    cohort_ladder_init(&l);
    for (int t = 1000; t <= 3000; t += 1000) {
        cohort_ladder_probe_ok(&l, COHORT_RUNG_PUNCHED, t);
        cohort_ladder_probe_ok(&l, COHORT_RUNG_RELAYED, t);
    }
    cohort_ladder_update(&l, 3000, T, NULL);
    assert_int_equal(l.active, COHORT_RUNG_PUNCHED);
    /* punched goes silent; relayed keeps answering */
    for (int t = 4000; t <= 7000; t += 1000)
        cohort_ladder_probe_ok(&l, COHORT_RUNG_RELAYED, t);
    assert_false(cohort_ladder_update(&l, 6000, T, NULL)); /* 3 s: not yet */
    cohort_rung_t from = COHORT_RUNG_NONE;
    assert_true(cohort_ladder_update(&l, 6001, T, &from));
    assert_int_equal(from, COHORT_RUNG_PUNCHED);
    assert_int_equal(l.active, COHORT_RUNG_RELAYED);
}

static void test_a_recovered_rung_must_answer_twice_before_it_is_used_again(void **state)
{
    (void)state;
    cohort_ladder_t l;
    cohort_ladder_init(&l);
    for (int t = 1000; t <= 2000; t += 1000) {
        cohort_ladder_probe_ok(&l, COHORT_RUNG_DIRECT, t);
        cohort_ladder_probe_ok(&l, COHORT_RUNG_RELAYED, t);
    }
    cohort_ladder_update(&l, 2000, T, NULL);
    assert_int_equal(l.active, COHORT_RUNG_DIRECT);
    cohort_ladder_lost(&l, COHORT_RUNG_DIRECT);
    cohort_ladder_probe_ok(&l, COHORT_RUNG_RELAYED, 2500);
    cohort_ladder_update(&l, 2500, T, NULL);
    assert_int_equal(l.active, COHORT_RUNG_RELAYED);
    cohort_ladder_probe_ok(&l, COHORT_RUNG_DIRECT, 3000);
    cohort_ladder_probe_ok(&l, COHORT_RUNG_RELAYED, 3000);
    assert_false(cohort_ladder_update(&l, 3000, T, NULL)); /* one answer: stay */
    cohort_ladder_probe_ok(&l, COHORT_RUNG_DIRECT, 4000);
    assert_true(cohort_ladder_update(&l, 4000, T, NULL));
    assert_int_equal(l.active, COHORT_RUNG_DIRECT);
    assert_int_equal(l.switches, 3);
}

static void test_nothing_answering_means_no_rung(void **state)
{
    (void)state;
    cohort_ladder_t l;
    cohort_ladder_init(&l);
    cohort_ladder_probe_ok(&l, COHORT_RUNG_RELAYED, 1000);
    cohort_ladder_probe_ok(&l, COHORT_RUNG_RELAYED, 2000);
    cohort_ladder_update(&l, 2000, T, NULL);
    assert_int_equal(l.active, COHORT_RUNG_RELAYED);
    assert_true(cohort_ladder_update(&l, 9000, T, NULL));
    assert_int_equal(l.active, COHORT_RUNG_NONE);
    assert_string_equal(cohort_rung_name(l.active), "none");
    assert_false(cohort_ladder_working(&l, COHORT_RUNG_NONE, 9000, T));
}

/* ---- upgrade attempts: backoff ---- */

#define BASE 3000
#define MAX 30000

static void test_backoff_without_jitter_doubles_from_base_up_to_max(void **state)
{
    (void)state;
    /* rnd 0 takes nothing off */
    assert_int_equal(cohort_ladder_backoff(0, BASE, MAX, 0), 3000);
    assert_int_equal(cohort_ladder_backoff(1, BASE, MAX, 0), 6000);
    assert_int_equal(cohort_ladder_backoff(2, BASE, MAX, 0), 12000);
    assert_int_equal(cohort_ladder_backoff(3, BASE, MAX, 0), 24000);
    assert_int_equal(cohort_ladder_backoff(4, BASE, MAX, 0), 30000);
    assert_int_equal(cohort_ladder_backoff(5, BASE, MAX, 0), 30000);
    /* however many failures: no overflow, still the cap */
    assert_int_equal(cohort_ladder_backoff(1000, BASE, MAX, 0), 30000);
    assert_int_equal(cohort_ladder_backoff(UINT32_MAX, BASE, INT64_MAX / 2, 0), INT64_MAX / 2);
    /* a base above the cap is the cap */
    assert_int_equal(cohort_ladder_backoff(0, 60000, MAX, 0), 30000);
}

static void test_backoff_never_shrinks_and_never_exceeds_max(void **state)
{
    (void)state;
    for (uint32_t rnd = 0; rnd < 20000; rnd += 7) {
        int64_t prev = 0;
        for (unsigned f = 0; f < 12; f++) {
            int64_t nominal = cohort_ladder_backoff(f, BASE, MAX, 0);
            int64_t w = cohort_ladder_backoff(f, BASE, MAX, rnd);
            /* jitter takes at most a quarter off, never adds */
            assert_true(w <= nominal);
            assert_true(w >= nominal - nominal / 4);
            assert_true(w <= MAX);
            assert_true(w > 0);
            /* with the same rnd the wait grows or stays (capped) */
            assert_true(nominal >= prev);
            prev = nominal;
        }
    }
}

static void test_backoff_jitter_spreads_nodes_over_a_quarter_of_the_wait(void **state)
{
    (void)state;
    int64_t lo = INT64_MAX, hi = 0;
    for (uint32_t rnd = 0; rnd < 100000; rnd += 13) {
        int64_t w = cohort_ladder_backoff(4, BASE, MAX, rnd);
        lo = w < lo ? w : lo;
        hi = w > hi ? w : hi;
    }
    assert_int_equal(hi, 30000);
    assert_true(lo <= 22600); /* close to 3/4 of 30 s: the range is used */
    assert_true(lo >= 22500);
    /* a large random number is fine too */
    int64_t w = cohort_ladder_backoff(0, BASE, MAX, UINT32_MAX);
    assert_true(w >= 2250 && w <= 3000);
}

static void test_failed_attempts_wait_longer_each_time_until_the_cap(void **state)
{
    (void)state;
    cohort_ladder_retry_t r;
    cohort_ladder_retry_init(&r, 2000);
    assert_false(cohort_ladder_retry_due(&r, 1999));
    assert_true(cohort_ladder_retry_due(&r, 2000));
    int64_t now = 2000, prev = 0;
    for (int i = 0; i < 8; i++) {
        int64_t wait = cohort_ladder_retry_attempt(&r, now, BASE, MAX, 0);
        assert_int_equal(r.next, now + wait);
        assert_false(cohort_ladder_retry_due(&r, now + wait - 1));
        assert_true(wait >= prev);
        assert_true(wait <= MAX);
        prev = wait;
        now += wait;
    }
    assert_int_equal(prev, MAX);
    assert_int_equal(r.failures, 8);
}

static void test_a_path_change_starts_the_backoff_over_and_makes_an_attempt_due(void **state)
{
    (void)state;
    cohort_ladder_retry_t r;
    cohort_ladder_retry_init(&r, 0);
    int64_t now = 0;
    for (int i = 0; i < 5; i++)
        now += cohort_ladder_retry_attempt(&r, now, BASE, MAX, 12345);
    cohort_ladder_retry_attempt(&r, now, BASE, MAX, 0);
    assert_int_equal(r.next, now + MAX);
    cohort_ladder_retry_reset(&r, now + 100);
    assert_int_equal(r.failures, 0);
    assert_true(cohort_ladder_retry_due(&r, now + 100));
    /* and the next failure waits the short delay again */
    assert_int_equal(cohort_ladder_retry_attempt(&r, now + 100, BASE, MAX, 0), BASE);
    /* a reset never postpones an attempt already due */
    cohort_ladder_retry_init(&r, 500);
    cohort_ladder_retry_reset(&r, 900);
    assert_int_equal(r.next, 500);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_single_answered_probe_is_not_enough_to_switch),
        cmocka_unit_test(test_a_silent_rung_is_demoted_to_the_next_that_answers),
        cmocka_unit_test(test_a_recovered_rung_must_answer_twice_before_it_is_used_again),
        cmocka_unit_test(test_nothing_answering_means_no_rung),
        cmocka_unit_test(test_backoff_without_jitter_doubles_from_base_up_to_max),
        cmocka_unit_test(test_backoff_never_shrinks_and_never_exceeds_max),
        cmocka_unit_test(test_backoff_jitter_spreads_nodes_over_a_quarter_of_the_wait),
        cmocka_unit_test(test_failed_attempts_wait_longer_each_time_until_the_cap),
        cmocka_unit_test(test_a_path_change_starts_the_backoff_over_and_makes_an_attempt_due),
    };
    return cmocka_run_group_tests_name("ladder", tests, NULL, NULL);
}
