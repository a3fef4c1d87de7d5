/*
 * json: a small JSON writer for machine-readable output (`cohortctl status
 * --json`, JSON log lines).
 *
 * It builds one document into a growing buffer, putting the commas itself,
 * and escapes strings so that any bytes become valid JSON: quotes,
 * backslashes and control bytes are escaped, and bytes that are not valid
 * UTF-8 become U+FFFD. It is not a parser and does not check that calls
 * nest properly beyond asserting on misuse (a programmer error).
 */
#ifndef COHORT_UTIL_JSON_H
#define COHORT_UTIL_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct cohort_json cohort_json_t;

/* A new, empty writer. Never NULL. Caller owns; cohort_json_destroy. A
 * writer is used by one thread at a time. */
cohort_json_t *cohort_json_new(void);
/* Frees the writer; NULL is fine; sets *self_p to NULL. */
void cohort_json_destroy(cohort_json_t **self_p);

void cohort_json_object_start(cohort_json_t *self);
void cohort_json_object_end(cohort_json_t *self);
void cohort_json_array_start(cohort_json_t *self);
void cohort_json_array_end(cohort_json_t *self);
/* The key of the next member of the current object. */
void cohort_json_key(cohort_json_t *self, const char *key);
/* Values: a NUL-terminated string (NULL writes null), len bytes of text,
 * numbers, a boolean. */
void cohort_json_string(cohort_json_t *self, const char *text);
void cohort_json_string_len(cohort_json_t *self, const char *text, size_t len);
void cohort_json_uint(cohort_json_t *self, uint64_t value);
void cohort_json_int(cohort_json_t *self, int64_t value);
/* A number with 6 significant digits; NaN and infinities become null. */
void cohort_json_double(cohort_json_t *self, double value);
void cohort_json_bool(cohort_json_t *self, bool value);

/* The document so far, NUL-terminated; *len (may be NULL) gets its length.
 * Borrowed; valid until the next call on self. */
const char *cohort_json_text(const cohort_json_t *self, size_t *len);

/* Appends the JSON string form of len bytes at text (with the quotes) to
 * out, which has cap bytes; always NUL-terminates when cap > 0, cutting the
 * string short (still closed with a quote) if it does not fit. Returns the
 * length written. For callers that format into fixed buffers. */
size_t cohort_json_quote(char *out, size_t cap, const char *text, size_t len);

#endif
