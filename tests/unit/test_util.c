/*
 * Unit tests for util: bounded reads, atomic private writes, permission
 * checks, strict YAML loading and quoting of untrusted text.
 */
#include "testutil.h"

#include "util/err.h"
#include "util/fs.h"
#include "util/mem.h"
#include "util/yamldoc.h"

#include <dirent.h>
#include <sys/stat.h>

static void test_read_refuses_files_over_the_limit_before_reading(void **state)
{
    (void)state;
    char *dir = test_tmpdir();
    char *path = test_write(dir, "f", "0123456789", 0644);
    char *buf = NULL;
    size_t len = 0;
    cohort_err_t err;
    assert_int_equal(cohort_fs_read(path, 10, &buf, &len, &err), 0);
    assert_int_equal(len, 10);
    assert_string_equal(buf, "0123456789");
    free(buf);
    buf = NULL;
    assert_int_equal(cohort_fs_read(path, 9, &buf, &len, &err), -1);
    assert_null(buf);
    assert_non_null(strstr(err.text, "file is 10 bytes, larger than the limit of 9"));
    assert_int_equal(cohort_fs_read(dir, 9, &buf, &len, &err), -1);
    assert_non_null(strstr(err.text, "not a regular file"));
    free(path);
    test_rmdir(&dir);
}

static void test_atomic_write_leaves_no_temp_file_and_sets_the_mode(void **state)
{
    (void)state;
    char *dir = test_tmpdir();
    char *path = cohort_sprintf("%s/secret", dir);
    cohort_err_t err;
    assert_int_equal(cohort_fs_write_atomic(path, "abc", 3, 0600, &err), 0);
    assert_int_equal(cohort_fs_write_atomic(path, "defg", 4, 0600, &err), 0);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(st.st_size, 4);
    assert_int_equal(cohort_fs_check_private(path, &err), 0);
    chmod(path, 0640);
    assert_int_equal(cohort_fs_check_private(path, &err), -1);
    assert_non_null(strstr(err.text, "(mode 0640)"));
    DIR *d = opendir(dir);
    int entries = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        entries += e->d_name[0] != '.';
    closedir(d);
    assert_int_equal(entries, 1);
    /* A write into a missing directory fails cleanly. */
    char *missing = cohort_sprintf("%s/no/such/file", dir);
    assert_int_equal(cohort_fs_write_atomic(missing, "x", 1, 0644, &err), -1);
    assert_non_null(strstr(err.text, "cannot create temp file"));
    free(missing);
    free(path);
    test_rmdir(&dir);
}

static void test_yaml_loader_reports_positions_and_refuses_tricks(void **state)
{
    (void)state;
    cohort_yaml_t y;
    cohort_err_t err;
    const char *ok = "a: 1\nb: [x, y]\n";
    assert_int_equal(cohort_yaml_load(&y, "t.yaml", ok, strlen(ok), &err), 0);
    yaml_node_t *root = cohort_yaml_root(&y);
    assert_non_null(root);
    assert_int_equal(root->type, YAML_MAPPING_NODE);
    yaml_node_t *b = cohort_yaml_at(&y, root->data.mapping.pairs.start[1].value);
    char where[64];
    assert_string_equal(cohort_yaml_where(&y, b, where, sizeof where), "t.yaml:2:4");
    cohort_yaml_fini(&y);

    const char *two = "a: 1\n---\nb: 2\n";
    assert_int_equal(cohort_yaml_load(&y, "t.yaml", two, strlen(two), &err), -1);
    assert_string_equal(err.text, "t.yaml:2:1: only one YAML document is allowed");
    cohort_yaml_fini(&y);

    const char *alias = "a: &x [1, 2]\nb: *x\n";
    assert_int_equal(cohort_yaml_load(&y, "t.yaml", alias, strlen(alias), &err), -1);
    assert_string_equal(err.text, "t.yaml:2:4: aliases (*name) are not supported");
    cohort_yaml_fini(&y);

    const char *broken = "a: [1, 2\n";
    assert_int_equal(cohort_yaml_load(&y, "t.yaml", broken, strlen(broken), &err), -1);
    assert_non_null(strstr(err.text, "t.yaml:2:1: invalid YAML: "));
    cohort_yaml_fini(&y);

    const char *binary = "a: \xff\xfe\n";
    assert_int_equal(cohort_yaml_load(&y, "t.yaml", binary, strlen(binary), &err), -1);
    assert_non_null(strstr(err.text, "invalid YAML"));
    cohort_yaml_fini(&y);

    assert_int_equal(cohort_yaml_load(&y, "t.yaml", "", 0, &err), 0);
    assert_null(cohort_yaml_root(&y));
    cohort_yaml_fini(&y);
}

static void test_quote_makes_untrusted_text_printable_and_short(void **state)
{
    (void)state;
    char out[32];
    assert_string_equal(cohort_err_quote(out, sizeof out, "ok", 2), "'ok'");
    assert_string_equal(cohort_err_quote(out, sizeof out, "a\nb'", 4), "'a\\x0ab\\x27'");
    char big[1000];
    memset(big, 'z', sizeof big);
    cohort_err_quote(out, sizeof out, big, sizeof big);
    assert_true(strlen(out) < sizeof out);
    assert_non_null(strstr(out, "...'"));
}

static void test_emitter_writes_yaml_the_loader_reads_back(void **state)
{
    (void)state;
    cohort_yemit_t *e = cohort_yemit_new();
    cohort_yemit_map_start(e);
    cohort_yemit_kv(e, "plain", "value");
    cohort_yemit_kv(e, "looks_like_bool", "true");
    cohort_yemit_kv(e, "looks_like_number", "123");
    cohort_yemit_kv(e, "odd", "a: b # c");
    cohort_yemit_map_end(e);
    char *text = NULL;
    size_t len = 0;
    cohort_err_t err;
    assert_int_equal(cohort_yemit_finish(e, &text, &len, &err), 0);
    cohort_yemit_destroy(&e);
    assert_null(e);
    assert_non_null(strstr(text, "plain: value\n"));
    assert_non_null(strstr(text, "looks_like_bool: \"true\"\n"));
    assert_non_null(strstr(text, "looks_like_number: \"123\"\n"));
    cohort_yaml_t y;
    assert_int_equal(cohort_yaml_load(&y, "t", text, len, &err), 0);
    yaml_node_t *root = cohort_yaml_root(&y);
    yaml_node_t *odd = cohort_yaml_at(&y, root->data.mapping.pairs.start[3].value);
    assert_string_equal(cohort_yaml_scalar(odd), "a: b # c");
    cohort_yaml_fini(&y);
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_read_refuses_files_over_the_limit_before_reading),
        cmocka_unit_test(test_atomic_write_leaves_no_temp_file_and_sets_the_mode),
        cmocka_unit_test(test_yaml_loader_reports_positions_and_refuses_tricks),
        cmocka_unit_test(test_quote_makes_untrusted_text_printable_and_short),
        cmocka_unit_test(test_emitter_writes_yaml_the_loader_reads_back),
    };
    return cmocka_run_group_tests_name("util", tests, NULL, NULL);
}
