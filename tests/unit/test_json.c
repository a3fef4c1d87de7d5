/*
 * JSON writer tests: commas and nesting, and strings that stay valid JSON
 * whatever bytes they are given.
 */
#include "testutil.h"

#include "util/json.h"

#include <math.h>

static void test_objects_arrays_and_commas(void **state)
{
    (void)state;
    cohort_json_t *j = cohort_json_new();
    cohort_json_object_start(j);
    cohort_json_key(j, "a");
    cohort_json_uint(j, 18446744073709551615u);
    cohort_json_key(j, "b");
    cohort_json_array_start(j);
    cohort_json_int(j, -5);
    cohort_json_bool(j, true);
    cohort_json_string(j, NULL);
    cohort_json_object_start(j);
    cohort_json_object_end(j);
    cohort_json_array_end(j);
    cohort_json_key(j, "c");
    cohort_json_array_start(j);
    cohort_json_array_end(j);
    cohort_json_object_end(j);
    size_t len = 0;
    const char *text = cohort_json_text(j, &len);
    assert_string_equal(text, "{\"a\":18446744073709551615,\"b\":[-5,true,null,{}],\"c\":[]}");
    assert_int_equal(len, strlen(text));
    cohort_json_destroy(&j);
    assert_null(j);
    cohort_json_destroy(&j);
}

static void test_doubles_keep_six_digits_and_non_finite_is_null(void **state)
{
    (void)state;
    cohort_json_t *j = cohort_json_new();
    cohort_json_array_start(j);
    cohort_json_double(j, 0.25);
    cohort_json_double(j, 1234567.0);
    cohort_json_double(j, -3);
    cohort_json_double(j, (double)NAN);
    cohort_json_double(j, (double)INFINITY);
    cohort_json_array_end(j);
    assert_string_equal(cohort_json_text(j, NULL), "[0.25,1.23457e+06,-3,null,null]");
    cohort_json_destroy(&j);
}

static void test_strings_escape_quotes_controls_and_bad_utf8(void **state)
{
    (void)state;
    cohort_json_t *j = cohort_json_new();
    /* quote, backslash, newline, a control byte, DEL, valid UTF-8 (é, €, 😀),
     * a lone continuation byte, an overlong '/', a surrogate, a cut-off
     * sequence at the end */
    const char in[] = "q\"b\\n\n\x01\x7f\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\x80\xc0\xaf\xed\xa0"
                      "\x80\xe2\x82";
    cohort_json_string_len(j, in, sizeof in - 1);
    assert_string_equal(cohort_json_text(j, NULL),
                        "\"q\\\"b\\\\n\\n\\u0001\\u007f\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"
                        "\\ufffd\\ufffd\\ufffd\\ufffd\\ufffd\\ufffd\\ufffd\\ufffd\"");
    cohort_json_destroy(&j);
}

static void test_quote_into_a_small_buffer_stays_closed(void **state)
{
    (void)state;
    char out[12];
    size_t n = cohort_json_quote(out, sizeof out, "abcdefghijklmnop", 16);
    assert_int_equal(n, strlen(out));
    assert_string_equal(out, "\"abcdefghi\"");
    /* an escape that does not fit is left out whole */
    n = cohort_json_quote(out, sizeof out, "abcdefgh\n", 9);
    assert_string_equal(out, "\"abcdefgh\"");
    n = cohort_json_quote(out, 2, "x", 1);
    assert_int_equal(n, 0);
    assert_string_equal(out, "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_objects_arrays_and_commas),
        cmocka_unit_test(test_doubles_keep_six_digits_and_non_finite_is_null),
        cmocka_unit_test(test_strings_escape_quotes_controls_and_bad_utf8),
        cmocka_unit_test(test_quote_into_a_small_buffer_stays_closed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
