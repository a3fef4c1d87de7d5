/*
 * mem: abort-on-OOM allocation. See mem.h.
 */
#include "util/mem.h"

#include <openssl/crypto.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void s_oom(size_t size)
{
    fprintf(stderr, "cohort: out of memory allocating %zu bytes\n", size);
    abort();
}

void *cohort_malloc(size_t size)
{
    void *p = malloc(size ? size : 1);
    if (!p)
        s_oom(size);
    return p;
}

void *cohort_calloc(size_t count, size_t size)
{
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p)
        s_oom(count * size);
    return p;
}

void *cohort_realloc(void *ptr, size_t size)
{
    void *p = realloc(ptr, size ? size : 1);
    if (!p)
        s_oom(size);
    return p;
}

char *cohort_strdup(const char *s)
{
    return cohort_strndup(s, strlen(s));
}

char *cohort_strndup(const char *s, size_t n)
{
    char *p = cohort_malloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *cohort_sprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        abort(); /* only on a bad format: a programmer error */
    char *p = cohort_malloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return p;
}

void cohort_free_secret(void *ptr, size_t size)
{
    if (!ptr)
        return;
    OPENSSL_cleanse(ptr, size);
    free(ptr);
}
