/*
 * Log line format tests: cohortd's text and JSON lines, one line each
 * whatever the message holds.
 */
#include "testutil.h"

#include "util/logline.h"

/* 2024-05-01T12:34:56.789Z */
#define S_T 1714566896789LL

static void test_text_line_has_time_level_and_message(void **state)
{
    (void)state;
    char out[COHORT_LOGLINE_MAX];
    size_t n = cohort_logline_format(out, sizeof out, COHORT_LOGLINE_TEXT, S_T, COHORT_LOG_WARN,
                                     "peer.down node=beta reason=\"timeout\"");
    assert_string_equal(out, "2024-05-01T12:34:56.789Z warn peer.down node=beta "
                             "reason=\"timeout\"\n");
    assert_int_equal(n, strlen(out));
}

static void test_text_line_never_breaks_in_two(void **state)
{
    (void)state;
    char out[COHORT_LOGLINE_MAX];
    cohort_logline_format(out, sizeof out, COHORT_LOGLINE_TEXT, 0, COHORT_LOG_INFO,
                          "a\nb\rc\x1b[31m");
    assert_string_equal(out, "1970-01-01T00:00:00.000Z info a\\x0ab\\x0dc\\x1b[31m\n");
}

static void test_json_line_escapes_the_message(void **state)
{
    (void)state;
    char out[COHORT_LOGLINE_MAX];
    size_t n = cohort_logline_format(out, sizeof out, COHORT_LOGLINE_JSON, S_T, COHORT_LOG_ERROR,
                                     "frame.dropped error=\"bad\\\"x\"\n\xff");
    assert_string_equal(out, "{\"ts\":\"2024-05-01T12:34:56.789Z\",\"level\":\"error\","
                             "\"msg\":\"frame.dropped error=\\\"bad\\\\\\\"x\\\"\\n\\ufffd\"}\n");
    assert_int_equal(n, strlen(out));
}

static void test_long_lines_are_cut_but_stay_well_formed(void **state)
{
    (void)state;
    char line[2048], out[100];
    memset(line, '"', sizeof line - 1);
    line[sizeof line - 1] = '\0';
    size_t n =
        cohort_logline_format(out, sizeof out, COHORT_LOGLINE_JSON, S_T, COHORT_LOG_INFO, line);
    assert_int_equal(n, strlen(out));
    assert_true(n < sizeof out);
    assert_string_equal(out + n - 3, "\"}\n");
    assert_ptr_equal(strchr(out, '\n'), out + n - 1); /* one line */
    n = cohort_logline_format(out, sizeof out, COHORT_LOGLINE_TEXT, S_T, COHORT_LOG_INFO, line);
    assert_int_equal(n, strlen(out));
    assert_int_equal(out[n - 1], '\n');
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_text_line_has_time_level_and_message),
        cmocka_unit_test(test_text_line_never_breaks_in_two),
        cmocka_unit_test(test_json_line_escapes_the_message),
        cmocka_unit_test(test_long_lines_are_cut_but_stay_well_formed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
