/*
 * identity: everything a node must establish before it may join: who it is
 * and whom it trusts.
 *
 * Opening an identity loads and cross-checks, in this order, the trusted CAs,
 * the private key (mode 0600 or stricter, X25519), the node certificate
 * (matches the key, CN = node.name, chains to a trusted CA, inside its
 * validity window), the signed roster (signature, members, serial not lower
 * than the roster already held in the state directory) and finally that the
 * roster admits this very node. The first failure is reported with the file
 * it concerns. `cohortd --check-config` is exactly this; the daemon keeps the
 * result. It opens no sockets.
 */
#ifndef COHORT_NODE_IDENTITY_H
#define COHORT_NODE_IDENTITY_H

#include "config/config.h"
#include "pki/cert.h"
#include "pki/key.h"
#include "pki/trust.h"
#include "roster/roster.h"
#include "util/err.h"

#include <time.h>

#define COHORT_IDENTITY_HELD_ROSTER "roster.yaml"

typedef struct cohort_identity {
    EVP_PKEY *key; /* X25519 private key = CURVE secret */
    X509 *cert;
    cohort_cert_info_t info; /* of cert: public key, fingerprint, validity */
    cohort_trust_t *trust;
    cohort_roster_t *roster;            /* checked */
    const cohort_member_t *self_member; /* borrowed from roster */
    cohort_problems_t warnings;         /* roster warnings worth logging */
    uint64_t held_serial;               /* serial in state_dir, 0 if none */
} cohort_identity_t;

/* Loads and checks everything named by cfg at time now. *out: caller owns. */
int cohort_identity_open(const cohort_config_t *cfg, time_t now, cohort_identity_t **out,
                         cohort_err_t *err);
void cohort_identity_destroy(cohort_identity_t **self_p);

#endif
