/*
 * fs: bounded reads, atomic writes, permission checks. See fs.h.
 */
#include "util/fs.h"
#include "util/mem.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int cohort_fs_read(const char *path, size_t max, char **out, size_t *len, cohort_err_t *err)
{
    int rc = -1;
    char *buf = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        cohort_err_set(err, "%s: cannot open: %s", path, strerror(errno));
        goto out;
    }
    struct stat st;
    if (fstat(fd, &st) < 0) {
        cohort_err_set(err, "%s: cannot stat: %s", path, strerror(errno));
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        cohort_err_set(err, "%s: not a regular file", path);
        goto out;
    }
    if ((unsigned long long)st.st_size > max) {
        cohort_err_set(err, "%s: file is %lld bytes, larger than the limit of %zu", path,
                       (long long)st.st_size, max);
        goto out;
    }
    /* Read up to max+1 so a file that grows while we read is still caught. */
    size_t cap = (size_t)st.st_size + 1, used = 0;
    buf = cohort_malloc(cap + 1);
    for (;;) {
        if (used == cap) {
            if (cap > max) {
                cohort_err_set(err, "%s: file is larger than the limit of %zu bytes", path, max);
                goto out;
            }
            cap = cap * 2 > max + 1 ? max + 1 : cap * 2;
            buf = cohort_realloc(buf, cap + 1);
        }
        ssize_t n = read(fd, buf + used, cap - used);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            cohort_err_set(err, "%s: read failed: %s", path, strerror(errno));
            goto out;
        }
        if (n == 0)
            break;
        used += (size_t)n;
    }
    if (used > max) {
        cohort_err_set(err, "%s: file is larger than the limit of %zu bytes", path, max);
        goto out;
    }
    buf[used] = '\0';
    *out = buf;
    buf = NULL;
    *len = used;
    rc = 0;
out:
    free(buf);
    if (fd >= 0)
        close(fd);
    return rc;
}

static int s_fsync_dir(const char *path)
{
    char *dir = cohort_fs_dirname(path);
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    free(dir);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

int cohort_fs_write_atomic(const char *path, const void *data, size_t len, mode_t mode,
                           cohort_err_t *err)
{
    int rc = -1;
    char *tmp = cohort_sprintf("%s.tmp.XXXXXX", path);
    int fd = mkstemp(tmp); /* created 0600 */
    if (fd < 0) {
        cohort_err_set(err, "%s: cannot create temp file: %s", path, strerror(errno));
        free(tmp);
        return -1;
    }
    if (fchmod(fd, mode) < 0) {
        cohort_err_set(err, "%s: chmod: %s", path, strerror(errno));
        goto out;
    }
    const char *p = data;
    size_t left = len;
    while (left) {
        ssize_t n = write(fd, p, left);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            cohort_err_set(err, "%s: write failed: %s", path, strerror(errno));
            goto out;
        }
        p += n;
        left -= (size_t)n;
    }
    if (fsync(fd) < 0) {
        cohort_err_set(err, "%s: fsync failed: %s", path, strerror(errno));
        goto out;
    }
    if (close(fd) < 0) {
        fd = -1;
        cohort_err_set(err, "%s: close failed: %s", path, strerror(errno));
        goto out;
    }
    fd = -1;
    if (rename(tmp, path) < 0) {
        cohort_err_set(err, "%s: rename failed: %s", path, strerror(errno));
        goto out;
    }
    s_fsync_dir(path); /* best effort: the data itself is already durable */
    rc = 0;
out:
    if (fd >= 0)
        close(fd);
    if (rc != 0)
        unlink(tmp);
    free(tmp);
    return rc;
}

int cohort_fs_check_private(const char *path, cohort_err_t *err)
{
    struct stat st;
    if (stat(path, &st) < 0)
        return cohort_err_set(err, "%s: cannot stat: %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode))
        return cohort_err_set(err, "%s: not a regular file", path);
    if (st.st_mode & 077)
        return cohort_err_set(err,
                              "%s: private key is accessible by group or others (mode %04o); "
                              "run chmod 600 on it",
                              path, (unsigned)(st.st_mode & 07777));
    return 0;
}

int cohort_fs_mkdir_p(const char *dir, mode_t mode, cohort_err_t *err)
{
    char *copy = cohort_strdup(dir);
    int rc = 0;
    for (char *p = copy + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            char saved = *p;
            *p = '\0';
            if (mkdir(copy, mode) < 0 && errno != EEXIST) {
                rc = cohort_err_set(err, "%s: cannot create directory: %s", copy, strerror(errno));
                break;
            }
            *p = saved;
            if (saved == '\0')
                break;
        }
    }
    if (rc == 0) {
        struct stat st;
        if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode))
            rc = cohort_err_set(err, "%s: not a directory", dir);
    }
    free(copy);
    return rc;
}

bool cohort_fs_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

char *cohort_fs_resolve(const char *base_dir, const char *path)
{
    if (path[0] == '/' || !base_dir || !base_dir[0])
        return cohort_strdup(path);
    return cohort_sprintf("%s/%s", base_dir, path);
}

char *cohort_fs_dirname(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        return cohort_strdup(".");
    if (slash == path)
        return cohort_strdup("/");
    return cohort_strndup(path, (size_t)(slash - path));
}
