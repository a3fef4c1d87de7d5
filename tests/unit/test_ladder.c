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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_single_answered_probe_is_not_enough_to_switch),
        cmocka_unit_test(test_a_silent_rung_is_demoted_to_the_next_that_answers),
        cmocka_unit_test(test_a_recovered_rung_must_answer_twice_before_it_is_used_again),
        cmocka_unit_test(test_nothing_answering_means_no_rung),
    };
    return cmocka_run_group_tests_name("ladder", tests, NULL, NULL);
}
