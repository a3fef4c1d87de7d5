/*
 * Bootstrap cache tests: what is saved loads back; a damaged, foreign or
 * oversized cache is refused with its place and leaves an empty cache; bad
 * endpoints never get in.
 */
#include "testutil.h"

#include "overlay/peercache.h"
#include "util/fs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static void test_save_then_load_round_trips(void **state)
{
    (void)state;
    char *dir = test_tmpdir();
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, COHORT_PEERCACHE_FILE);
    cohort_peercache_t pc;
    cohort_peercache_init(&pc, "prod");
    const char *a[] = {"tcp://10.0.0.5:7700", "tcp://[fd00::1]:7700", "tcp://10.0.0.5:7700",
                       "udp://x:1",           "tcp://nohost",         "tcp://h:0",
                       "tcp://h:99999"};
    assert_int_equal(cohort_peercache_put(&pc, "db-1", a, 7), 2); /* dup and 4 bad ones skipped */
    const char *b[] = {"tcp://192.0.2.1:7711"};
    assert_int_equal(cohort_peercache_put(&pc, "web-1", b, 1), 1);
    assert_int_equal(cohort_peercache_put(&pc, "quiet", NULL, 0), 0);
    /* a put replaces */
    const char *c[] = {"tcp://10.0.0.6:7700"};
    assert_int_equal(cohort_peercache_put(&pc, "db-1", c, 1), 1);
    cohort_err_t err;
    assert_int_equal(cohort_peercache_save(path, &pc, &err), 0);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0644);
    cohort_peercache_fini(&pc);

    cohort_peercache_t back;
    bool missing = true;
    assert_int_equal(cohort_peercache_load(path, "prod", &back, &missing, &err), 0);
    assert_false(missing);
    assert_int_equal(back.count, 3);
    const cohort_peercache_entry_t *e = cohort_peercache_get(&back, "db-1");
    assert_non_null(e);
    assert_int_equal(e->endpoint_count, 1);
    assert_string_equal(e->endpoints[0], "tcp://10.0.0.6:7700");
    e = cohort_peercache_get(&back, "web-1");
    assert_non_null(e);
    assert_string_equal(e->endpoints[0], "tcp://192.0.2.1:7711");
    assert_int_equal(cohort_peercache_get(&back, "quiet")->endpoint_count, 0);
    assert_null(cohort_peercache_get(&back, "nobody"));
    cohort_peercache_fini(&back);
    test_rmdir(&dir);
}

static void test_missing_file_is_an_empty_cache(void **state)
{
    (void)state;
    char *dir = test_tmpdir();
    char path[512];
    snprintf(path, sizeof path, "%s/none.yaml", dir);
    cohort_peercache_t pc;
    bool missing = false;
    cohort_err_t err;
    assert_int_equal(cohort_peercache_load(path, "prod", &pc, &missing, &err), 0);
    assert_true(missing);
    assert_int_equal(pc.count, 0);
    cohort_peercache_fini(&pc);
    test_rmdir(&dir);
}

static void s_refused(const char *text, const char *expect)
{
    char *dir = test_tmpdir();
    char *path = test_write(dir, "peers.yaml", text, 0644);
    cohort_peercache_t pc;
    cohort_err_t err;
    assert_int_equal(cohort_peercache_load(path, "prod", &pc, NULL, &err), -1);
    if (!strstr(cohort_err_text(&err), expect) || !strstr(cohort_err_text(&err), path))
        fail_msg("for:\n%s\nexpected '%s' with the path, got: %s", text, expect,
                 cohort_err_text(&err));
    assert_int_equal(pc.count, 0); /* nothing half-loaded */
    cohort_peercache_fini(&pc);
    free(path);
    test_rmdir(&dir);
}

static void test_damaged_caches_are_refused_with_their_place(void **state)
{
    (void)state;
    s_refused("cluster: other\npeers: []\n", "not 'prod'");
    s_refused("- just a list\n", "must be a mapping");
    s_refused("cluster: prod\nextra: 1\n", "unknown key 'extra'");
    s_refused("cluster: prod\npeers:\n  - name: a\n    endpoints: [tcp://a:1]\n  - name: b\n"
              "    endpoints: [\"tcp://b:1; rm -rf /\"]\n",
              ":6:");
    s_refused("cluster: prod\npeers:\n  - name: a\n  - name: a\n", "listed twice");
    s_refused("cluster: prod\npeers:\n  - endpoints: []\n", "has no name");
    s_refused("cluster: prod\npeers:\n  - name: a\n    colour: red\n", "unknown key 'colour'");
    s_refused("cluster: prod\npeers: {a: 1}\n", "must be a list");
    s_refused("cluster: prod\npeers: [\n", "peers.yaml:");
    s_refused("cluster: &x prod\npeers: *x\n", "alias");
}

static void test_oversized_cache_is_refused_before_reading(void **state)
{
    (void)state;
    char *dir = test_tmpdir();
    char path[512];
    snprintf(path, sizeof path, "%s/peers.yaml", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fseek(f, COHORT_PEERCACHE_MAX_BYTES + 1, SEEK_SET), 0);
    fputc('\n', f);
    fclose(f);
    cohort_peercache_t pc;
    cohort_err_t err;
    assert_int_equal(cohort_peercache_load(path, "prod", &pc, NULL, &err), -1);
    assert_non_null(strstr(cohort_err_text(&err), path));
    cohort_peercache_fini(&pc);
    test_rmdir(&dir);
}

static void test_endpoint_syntax(void **state)
{
    (void)state;
    assert_true(cohort_peercache_endpoint_ok("tcp://h:1"));
    assert_true(cohort_peercache_endpoint_ok("tcp://[::1]:65535"));
    assert_false(cohort_peercache_endpoint_ok(NULL));
    assert_false(cohort_peercache_endpoint_ok("tcp://:1"));
    assert_false(cohort_peercache_endpoint_ok("tcp://h:"));
    assert_false(cohort_peercache_endpoint_ok("tcp://h:1x"));
    assert_false(cohort_peercache_endpoint_ok("tcp://h:-1"));
    assert_false(cohort_peercache_endpoint_ok("tcp://a b:1"));
    assert_false(cohort_peercache_endpoint_ok("ipc:///tmp/x"));
    char longer[300];
    memset(longer, 'a', sizeof longer);
    memcpy(longer, "tcp://", 6);
    strcpy(longer + 290, ":7700");
    assert_false(cohort_peercache_endpoint_ok(longer));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_save_then_load_round_trips),
        cmocka_unit_test(test_missing_file_is_an_empty_cache),
        cmocka_unit_test(test_damaged_caches_are_refused_with_their_place),
        cmocka_unit_test(test_oversized_cache_is_refused_before_reading),
        cmocka_unit_test(test_endpoint_syntax),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
