/*
 * wire: the versioned overlay envelope, encoded and decoded safely.
 *
 * proto/envelope.proto is the contract; protoc-c generates the C in the build
 * tree. This module adds what the generated code does not: a size limit
 * checked before any allocation, the version check, and the rule that an
 * envelope must carry a body. It does not route or interpret bodies.
 */
#ifndef COHORT_WIRE_WIRE_H
#define COHORT_WIRE_WIRE_H

#include "envelope.pb-c.h"
#include "util/err.h"
#include "wire/arena.h"

#include <stddef.h>
#include <stdint.h>

#define COHORT_WIRE_VERSION 1

/* Decodes one envelope of len bytes, refusing anything over max bytes
 * before allocating. *out: caller owns (cohort_wire_free). */
int cohort_wire_decode(const uint8_t *buf, size_t len, size_t max, Cohort__Wire__Envelope **out,
                       cohort_err_t *err);
/* Frees a decoded envelope; NULL is fine; sets *env_p to NULL. */
void cohort_wire_free(Cohort__Wire__Envelope **env_p);

/* The same, decoding into arena (NULL: the heap): *out lives until it is
 * freed with cohort_wire_free_in on the same arena, and at the latest until
 * the arena's next reset. */
int cohort_wire_decode_in(cohort_arena_t *arena, const uint8_t *buf, size_t len, size_t max,
                          Cohort__Wire__Envelope **out, cohort_err_t *err);
void cohort_wire_free_in(cohort_arena_t *arena, Cohort__Wire__Envelope **env_p);

/* Encodes env (its version is set to COHORT_WIRE_VERSION) into a fresh
 * buffer. Caller owns *out (free()). */
void cohort_wire_encode(Cohort__Wire__Envelope *env, uint8_t **out, size_t *len);

#endif
