/*
 * subject: names of topics and services, and the patterns that match them.
 *
 * A subject is dot-separated tokens, as in NATS: "orders.eu.new". A pattern
 * may use `*` for exactly one token and `>` as its last token for one or
 * more remaining tokens, so "orders.>" is a prefix subscription and
 * "orders.*.new" a wildcard one. Tokens are non-empty and hold no spaces or
 * control bytes; published subjects hold no wildcards. This module only
 * validates and matches; who is interested in what lives in the router.
 */
#ifndef COHORT_MSG_SUBJECT_H
#define COHORT_MSG_SUBJECT_H

#include <stdbool.h>
#include <stddef.h>

#define COHORT_SUBJECT_MAX 255

/* True if s is a valid concrete subject (no wildcards). */
bool cohort_subject_valid(const char *s);
/* True if p is a valid pattern (wildcards allowed as whole tokens). */
bool cohort_pattern_valid(const char *p);
/* True if the concrete subject matches the pattern. Both must be valid. */
bool cohort_pattern_match(const char *pattern, const char *subject);

#endif
