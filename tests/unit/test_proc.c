/*
 * proc tests: a shell command gets its stdin and gives its stdout, and
 * every bound (time, output size) holds against a hostile command.
 */
#include "testutil.h"

#include "util/proc.h"

#include <time.h>

static void test_command_reads_stdin_and_writes_stdout(void **state)
{
    (void)state;
    cohort_proc_result_t res;
    cohort_err_t err;
    const char *env[] = {"COHORT_SENDER=alpha", NULL};
    assert_int_equal(cohort_proc_run("tr a-z A-Z; printf ' %s' \"$COHORT_SENDER\"", "hello", 5,
                                     1024, 5000, env, &res, &err),
                     0);
    assert_string_equal(res.out, "HELLO alpha");
    assert_int_equal(res.out_len, 11);
    assert_int_equal(res.exit_code, 0);
    assert_false(res.timed_out || res.too_large);
    free(res.out);
}

static void test_failure_reports_status_and_stderr(void **state)
{
    (void)state;
    cohort_proc_result_t res;
    cohort_err_t err;
    assert_int_equal(cohort_proc_run("echo oops >&2; exit 3", "", 0, 1024, 5000, NULL, &res, &err),
                     0);
    assert_int_equal(res.exit_code, 3);
    assert_string_equal(res.err, "oops\n");
    free(res.out);
}

static void test_command_that_ignores_a_large_stdin_does_not_block(void **state)
{
    (void)state;
    size_t big = 4 << 20;
    char *in = calloc(1, big);
    cohort_proc_result_t res;
    cohort_err_t err;
    assert_int_equal(cohort_proc_run("echo done", in, big, 1024, 5000, NULL, &res, &err), 0);
    assert_string_equal(res.out, "done\n");
    free(res.out);
    free(in);
}

static void test_endless_output_is_cut_and_killed(void **state)
{
    (void)state;
    cohort_proc_result_t res;
    cohort_err_t err;
    assert_int_equal(cohort_proc_run("yes", "", 0, 100000, 5000, NULL, &res, &err), 0);
    assert_true(res.too_large);
    assert_int_equal(res.signal, 9);
    free(res.out);
}

static void test_slow_command_is_killed_at_the_deadline(void **state)
{
    (void)state;
    cohort_proc_result_t res;
    cohort_err_t err;
    time_t t0 = time(NULL);
    /* the child keeps stdout open in the background: the deadline holds */
    assert_int_equal(cohort_proc_run("sleep 30 & sleep 30", "", 0, 1024, 300, NULL, &res, &err), 0);
    assert_true(res.timed_out);
    assert_true(time(NULL) - t0 < 5);
    free(res.out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_command_reads_stdin_and_writes_stdout),
        cmocka_unit_test(test_failure_reports_status_and_stderr),
        cmocka_unit_test(test_command_that_ignores_a_large_stdin_does_not_block),
        cmocka_unit_test(test_endless_output_is_cut_and_killed),
        cmocka_unit_test(test_slow_command_is_killed_at_the_deadline),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
