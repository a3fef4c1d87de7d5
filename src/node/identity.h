/*
 * identity: everything a node must establish before it may join: who it is
 * and whom it trusts.
 *
 * Opening an identity loads and cross-checks, in this order, the trusted CAs,
 * the private key (mode 0600 or stricter, X25519), the node certificate
 * (matches the key, CN = node.name, chains to a trusted CA, inside its
 * validity window), the signed roster (signature, members) and finally that
 * the roster admits this very node. The first failure is reported with the
 * file it concerns. `cohortd --check-config` is exactly this; the daemon
 * keeps the result. It opens no sockets.
 *
 * The held roster: a node persists every roster it accepts (pushed by an
 * admin or spread by peers) in node.state_dir, signature included, and
 * re-verifies it at the next start. A node never goes back to an older
 * roster: when the held one has a higher serial than trust.roster, the held
 * one is used (revocations stay in force however old the configured file
 * is); the same serial with other contents is refused.
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
/* The next held roster while it is being written (see cohort_identity_hold). */
#define COHORT_IDENTITY_NEXT_ROSTER "roster.yaml.next"

typedef struct cohort_identity {
    EVP_PKEY *key; /* X25519 private key = CURVE secret */
    X509 *cert;
    cohort_cert_info_t info; /* of cert: public key, fingerprint, validity */
    cohort_trust_t *trust;
    cohort_roster_t *roster;            /* checked */
    const cohort_member_t *self_member; /* borrowed from roster */
    cohort_problems_t warnings;         /* roster warnings worth logging */
    uint64_t held_serial;               /* serial in state_dir, 0 if none */
    /* The exact bytes of the roster in use and of its signature file, as
     * read or received: what a node hands to peers holding an older one. */
    char *roster_text;
    size_t roster_len;
    char *roster_sig;
    size_t roster_sig_len;
    char *roster_path;          /* where it was read: trust.roster or the held copy */
    uint64_t configured_serial; /* serial of the file trust.roster names */
} cohort_identity_t;

/* Loads and checks everything named by cfg at time now. *out: caller owns. */
int cohort_identity_open(const cohort_config_t *cfg, time_t now, cohort_identity_t **out,
                         cohort_err_t *err);
void cohort_identity_destroy(cohort_identity_t **self_p);

/* Persists roster and sig (the exact bytes of a roster already accepted and
 * of its signature file) as the held roster in state_dir, created 0700 if
 * missing. Crash-safe: the pair is first written whole as roster.yaml.next
 * (+ .sig), then copied over roster.yaml (+ .sig), then the next pair is
 * removed; cohort_identity_open takes the higher valid pair, so a crash at
 * any point leaves either the old or the new roster held, never a mix. On
 * failure the state directory is put back as it was (best effort: self's
 * current roster is held) and err names the file that could not be
 * written. Does not change self. */
int cohort_identity_hold(const cohort_identity_t *self, const char *state_dir, const char *roster,
                         size_t len, const char *sig, size_t sig_len, cohort_err_t *err);

#endif
