/*
 * trust: the set of CA certificates a node trusts, and what they vouch for.
 *
 * trust.ca may name several CA certificates so a CA can be rotated with an
 * overlap; each one, including an intermediate of an enterprise PKI, is a
 * trust anchor on its own. This module answers two questions: does this node
 * certificate chain to a trusted CA (and in which time window is it valid),
 * and did a trusted CA sign these bytes (the roster's detached Ed25519
 * signature). It does not know about rosters, members or revocation.
 */
#ifndef COHORT_PKI_TRUST_H
#define COHORT_PKI_TRUST_H

#include "pki/cert.h"
#include "util/err.h"

#include <openssl/x509.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define COHORT_TRUST_MAX_CAS 16
#define COHORT_SIG_LEN 64

typedef struct cohort_trust cohort_trust_t;

typedef enum {
    COHORT_TRUST_OK = 0,
    COHORT_TRUST_UNTRUSTED,     /* does not chain to a trusted CA */
    COHORT_TRUST_EXPIRED,       /* after the window */
    COHORT_TRUST_NOT_YET_VALID, /* before the window */
    COHORT_TRUST_BAD_KEY,       /* not an X25519 node key */
    COHORT_TRUST_NOT_LEAF       /* a CA certificate used as a node certificate */
} cohort_trust_status_t;

/* Short stable name of a status ("ok", "untrusted", "expired", ...). */
const char *cohort_trust_status_name(cohort_trust_status_t status);

/* An empty trust set. Never returns NULL. */
cohort_trust_t *cohort_trust_new(void);
void cohort_trust_destroy(cohort_trust_t **self_p);

/* Adds a CA certificate. Fails if cert is not a CA or the set is full.
 * The trust set takes its own reference; the caller keeps theirs. */
int cohort_trust_add(cohort_trust_t *self, X509 *ca, const char *where, cohort_err_t *err);
/* Adds every certificate in the PEM file at path (one CA or a bundle). */
int cohort_trust_add_file(cohort_trust_t *self, const char *path, cohort_err_t *err);

size_t cohort_trust_count(const cohort_trust_t *self);
/* Borrowed; valid while self lives. */
X509 *cohort_trust_get(const cohort_trust_t *self, size_t index);

/* Checks that cert is an X25519 leaf certificate that chains to a trusted CA,
 * regardless of time. On OK, *not_before and *not_after (either may be NULL) get
 * the window in which the whole chain is valid. On failure err says why. */
cohort_trust_status_t cohort_trust_check_chain(const cohort_trust_t *self, X509 *cert,
                                               time_t *not_before, time_t *not_after,
                                               cohort_err_t *err);
/* cohort_trust_check_chain plus the window check at time now. */
cohort_trust_status_t cohort_trust_check(const cohort_trust_t *self, X509 *cert, time_t now,
                                         cohort_err_t *err);

/* Signs len bytes at data with the Ed25519 CA key into sig. */
int cohort_trust_sign(EVP_PKEY *ca_key, const void *data, size_t len, uint8_t sig[COHORT_SIG_LEN],
                      cohort_err_t *err);
/* Verifies a detached Ed25519 signature with each trusted CA's key in turn.
 * Returns the index of the CA that signed, or -1 (err says none did). */
int cohort_trust_verify_sig(const cohort_trust_t *self, const void *data, size_t len,
                            const uint8_t *sig, size_t sig_len, cohort_err_t *err);

#endif
