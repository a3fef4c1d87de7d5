/*
 * Unit tests for msg/subject: what is a subject, what is a pattern, and
 * which subjects a pattern matches.
 */
#include "testutil.h"

#include "msg/subject.h"

static void test_subjects_are_dot_separated_non_empty_tokens(void **state)
{
    (void)state;
    assert_true(cohort_subject_valid("orders"));
    assert_true(cohort_subject_valid("orders.eu.new"));
    assert_true(cohort_subject_valid("a-b_c.d:e"));
    assert_false(cohort_subject_valid(""));
    assert_false(cohort_subject_valid(".a"));
    assert_false(cohort_subject_valid("a."));
    assert_false(cohort_subject_valid("a..b"));
    assert_false(cohort_subject_valid("a b"));
    assert_false(cohort_subject_valid("a\tb"));
    assert_false(cohort_subject_valid("a.*"));
    assert_false(cohort_subject_valid("a.>"));
    char longest[COHORT_SUBJECT_MAX + 2];
    memset(longest, 'x', sizeof longest);
    longest[COHORT_SUBJECT_MAX] = '\0';
    assert_true(cohort_subject_valid(longest));
    longest[COHORT_SUBJECT_MAX] = 'x';
    longest[COHORT_SUBJECT_MAX + 1] = '\0';
    assert_false(cohort_subject_valid(longest));
}

static void test_wildcards_must_be_whole_tokens_and_tail_only_for_gt(void **state)
{
    (void)state;
    assert_true(cohort_pattern_valid("orders.>"));
    assert_true(cohort_pattern_valid("*.eu.*"));
    assert_true(cohort_pattern_valid(">"));
    assert_false(cohort_pattern_valid("orders.>.new"));
    assert_false(cohort_pattern_valid("ord*"));
    assert_false(cohort_pattern_valid("a.b>"));
    assert_false(cohort_pattern_valid("a..*"));
}

static void test_matching_follows_token_rules(void **state)
{
    (void)state;
    assert_true(cohort_pattern_match("orders.eu.new", "orders.eu.new"));
    assert_false(cohort_pattern_match("orders.eu.new", "orders.eu.newer"));
    assert_false(cohort_pattern_match("orders.eu", "orders.eu.new"));
    assert_false(cohort_pattern_match("orders.eu.new", "orders.eu"));
    assert_true(cohort_pattern_match("orders.*.new", "orders.us.new"));
    assert_false(cohort_pattern_match("orders.*.new", "orders.us.x.new"));
    assert_true(cohort_pattern_match("orders.>", "orders.eu"));
    assert_true(cohort_pattern_match("orders.>", "orders.eu.new.x"));
    assert_false(cohort_pattern_match("orders.>", "orders"));
    assert_true(cohort_pattern_match(">", "anything.at.all"));
    assert_true(cohort_pattern_match("*", "one"));
    assert_false(cohort_pattern_match("*", "one.two"));
    assert_true(cohort_pattern_match("*.>", "a.b"));
    assert_false(cohort_pattern_match("*.>", "a"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_subjects_are_dot_separated_non_empty_tokens),
        cmocka_unit_test(test_wildcards_must_be_whole_tokens_and_tail_only_for_gt),
        cmocka_unit_test(test_matching_follows_token_rules),
    };
    return cmocka_run_group_tests_name("subject", tests, NULL, NULL);
}
