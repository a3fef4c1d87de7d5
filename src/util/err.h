/*
 * err: the error detail every fallible cohort call hands back.
 *
 * Errors caused by the outside world (files, network, argv, config) are
 * returned as -1 with a human-readable text in a cohort_err_t that the caller
 * owns, in the house form `where: what: why` quoting the bad value. This is
 * not an exception mechanism and carries no error codes: callers that must
 * branch on the kind of failure get a dedicated enum from the module itself.
 */
#ifndef COHORT_UTIL_ERR_H
#define COHORT_UTIL_ERR_H

#include <stdbool.h>
#include <stddef.h>

#define COHORT_ERR_TEXT_MAX 1024

typedef struct cohort_err {
    char text[COHORT_ERR_TEXT_MAX];
} cohort_err_t;

/* Clears the error text. err may be NULL. */
void cohort_err_clear(cohort_err_t *err);

/* Sets the text with printf formatting; always returns -1 so callers can
 * write `return cohort_err_set(err, ...)`. err may be NULL (the text is then
 * dropped). */
int cohort_err_set(cohort_err_t *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Puts "PREFIX: " in front of the current text; returns -1. Used to add the
 * `where` part while an error travels up (e.g. the file name). */
int cohort_err_prefix(cohort_err_t *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Appends the OpenSSL error queue (most recent reason) to the text and clears
 * the queue; returns -1. */
int cohort_err_openssl(cohort_err_t *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Borrowed; valid while err lives. Never NULL for a non-NULL err. */
const char *cohort_err_text(const cohort_err_t *err);

/* Writes into out (size cap) a printable, quoted and truncated copy of
 * untrusted text, so error messages never carry control bytes or megabytes
 * of input. Returns out. */
const char *cohort_err_quote(char *out, size_t cap, const char *bytes, size_t len);

#endif
