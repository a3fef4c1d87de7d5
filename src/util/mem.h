/*
 * mem: allocation wrappers that abort on out-of-memory.
 *
 * Out-of-memory is not an error cohort tries to survive (STYLE.md): every
 * allocation goes through these so callers never test for NULL. Sizes that
 * come from outside input must be checked against a limit *before* calling.
 */
#ifndef COHORT_UTIL_MEM_H
#define COHORT_UTIL_MEM_H

#include <stddef.h>

/* Never return NULL; abort with a message if memory is exhausted. */
void *cohort_malloc(size_t size);
void *cohort_calloc(size_t count, size_t size);
void *cohort_realloc(void *ptr, size_t size);
char *cohort_strdup(const char *s);
char *cohort_strndup(const char *s, size_t n);
/* printf into a fresh string. Caller owns the result. */
char *cohort_sprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Wipes size bytes at ptr (OPENSSL_cleanse) and frees it. NULL is fine. */
void cohort_free_secret(void *ptr, size_t size);

#endif
