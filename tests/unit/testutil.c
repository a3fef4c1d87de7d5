/*
 * testutil: helpers for unit tests. See testutil.h.
 */
#include "testutil.h"

#include <fcntl.h>
#include <ftw.h>
#include <sys/stat.h>
#include <unistd.h>

char *test_tmpdir(void)
{
    const char *base = getenv("TMPDIR");
    char tmpl[4096];
    snprintf(tmpl, sizeof tmpl, "%s/cohort-test-XXXXXX", base && *base ? base : "/tmp");
    char *dir = mkdtemp(tmpl);
    assert_non_null(dir);
    return strdup(dir);
}

static int s_rm(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

void test_rmdir(char **dir_p)
{
    if (!dir_p || !*dir_p)
        return;
    nftw(*dir_p, s_rm, 16, FTW_DEPTH | FTW_PHYS);
    free(*dir_p);
    *dir_p = NULL;
}

char *test_write(const char *dir, const char *name, const char *text, unsigned mode)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *path = malloc(n);
    assert_non_null(path);
    snprintf(path, n, "%s/%s", dir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
    assert_true(fd >= 0);
    fchmod(fd, mode);
    size_t len = strlen(text);
    assert_int_equal(write(fd, text, len), (ssize_t)len);
    close(fd);
    return path;
}

static double s_scale(void)
{
    const char *env = getenv("COHORT_TEST_WAIT_MS");
    int ms = env ? atoi(env) : 0;
    return ms > TEST_WAIT_MS ? (double)ms / TEST_WAIT_MS : 1.0;
}

int test_ms(int ms)
{
    return (int)(ms * s_scale());
}

bool test_slow(void)
{
    return s_scale() > 1.0;
}

char *test_src_path(const char *rel)
{
    size_t n = strlen(COHORT_SOURCE_DIR) + strlen(rel) + 2;
    char *path = malloc(n);
    assert_non_null(path);
    snprintf(path, n, "%s/%s", COHORT_SOURCE_DIR, rel);
    return path;
}
