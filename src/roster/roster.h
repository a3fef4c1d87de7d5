/*
 * roster: the CA-signed allowlist that says who belongs to the cluster.
 *
 * A roster is a YAML file: `cluster`, a `serial` that every change increments,
 * `members` (name, certificate PEM, roles, site, advertised endpoints),
 * `revoked` certificate fingerprints and `topology` (sites, which relays and
 * rendezvous nodes serve them, policies). The CA signs the exact file bytes;
 * the detached signature lives beside it (roster.yaml.sig).
 *
 * Parsing checks structure and reports the first problem with file:line:col.
 * Checking against a trust set then finds every semantic problem (chain,
 * validity, duplicates, revocation, topology references), so an admin sees
 * them all at once. After a successful check the roster answers the one
 * question the handshake asks: is this CURVE key an admitted member now, and
 * who is it. Roles and site live here, not in certificates.
 *
 * This module does not distribute rosters or decide which one is newest in a
 * cluster; the node does, using the serial.
 */
#ifndef COHORT_ROSTER_ROSTER_H
#define COHORT_ROSTER_ROSTER_H

#include "pki/cert.h"
#include "pki/trust.h"
#include "util/err.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define COHORT_ROSTER_FILE_MAX (16 * 1024 * 1024)
#define COHORT_ROSTER_MAX_MEMBERS 10000
#define COHORT_ROSTER_MAX_ENDPOINTS 16
#define COHORT_ROSTER_SIG_FILE_MAX 4096

typedef enum {
    COHORT_ROLE_RELAY = 1u << 0,
    COHORT_ROLE_RENDEZVOUS = 1u << 1,
} cohort_role_t;

typedef struct cohort_member {
    char *name;
    char *site;     /* "" when none */
    unsigned roles; /* cohort_role_t bits */
    char **endpoints;
    size_t endpoint_count;
    char *cert_pem;
    X509 *cert;
    cohort_cert_info_t info; /* fingerprint, public key, validity */
    /* Filled in by cohort_roster_check: */
    bool trusted;      /* chains to a trusted CA with an X25519 key */
    bool revoked;      /* fingerprint is on the revoked list */
    time_t not_before; /* window in which the whole chain is valid */
    time_t not_after;
    size_t line, column; /* position in the file, for messages */
} cohort_member_t;

typedef struct cohort_revoked {
    uint8_t fingerprint[COHORT_CERT_FP_LEN];
    char *name;   /* informational, may be "" */
    char *reason; /* informational, may be "" */
} cohort_revoked_t;

typedef struct cohort_site {
    char *name;
    char **relays;
    size_t relay_count;
    char **rendezvous;
    size_t rendezvous_count;
} cohort_site_t;

/* "never relay traffic between site a and site b" (in either direction). */
typedef struct cohort_policy {
    char *never_relay_a;
    char *never_relay_b;
} cohort_policy_t;

typedef struct cohort_roster cohort_roster_t;

/* One problem found by cohort_roster_check. */
typedef struct cohort_problem {
    bool fatal; /* fatal: the roster must not be used; else a warning */
    char *text; /* "roster.yaml:12:5: member 'n2': ..." */
} cohort_problem_t;

typedef struct cohort_problems {
    cohort_problem_t *items;
    size_t count;
    size_t fatal_count;
} cohort_problems_t;

void cohort_problems_fini(cohort_problems_t *problems);

/* An empty roster for cluster `cluster` at serial 1. Never returns NULL. */
cohort_roster_t *cohort_roster_new(const char *cluster);
void cohort_roster_destroy(cohort_roster_t **self_p);

/* Parses roster YAML. name is used in messages. On failure err names the
 * place and the value. *out: caller owns. */
int cohort_roster_parse(const char *name, const char *buf, size_t len, cohort_roster_t **out,
                        cohort_err_t *err);
/* Reads (at most COHORT_ROSTER_FILE_MAX bytes) and parses a roster file. */
int cohort_roster_load(const char *path, cohort_roster_t **out, cohort_err_t *err);

/* Writes the roster as YAML. Caller owns *out (free()). */
int cohort_roster_emit(const cohort_roster_t *self, char **out, size_t *len, cohort_err_t *err);
/* Writes the roster to path atomically (0644). */
int cohort_roster_save(const cohort_roster_t *self, const char *path, cohort_err_t *err);

/* Checks every member against trust at time now and fills *problems (which
 * the caller finalises). Returns 0 if nothing is fatal; then the roster is
 * marked checked and cohort_roster_admit may be used. Expired, not yet valid
 * and revoked members are warnings: such a roster is usable, and those
 * members are simply not admitted. */
int cohort_roster_check(cohort_roster_t *self, const cohort_trust_t *trust, time_t now,
                        cohort_problems_t *problems);

/* Signature files. The signature covers the exact bytes of the roster file. */
/* Signs roster bytes with the Ed25519 CA key; writes the signature file text
 * to *out (caller owns). ca_cert identifies the signer in the file. */
int cohort_roster_sign(const char *buf, size_t len, EVP_PKEY *ca_key, X509 *ca_cert, char **out,
                       cohort_err_t *err);
/* Verifies the signature file text sig_text (sig_name for messages) over
 * roster bytes against trust. */
int cohort_roster_verify_sig(const char *buf, size_t len, const char *sig_name,
                             const char *sig_text, size_t sig_len, const cohort_trust_t *trust,
                             cohort_err_t *err);

/* The whole acceptance path a node uses: reads roster and signature files,
 * verifies the signature, parses, and checks members at time now. Fatal
 * problems fail with the first one in err; warnings go to *warnings if
 * non-NULL (caller finalises). *out: caller owns, checked. */
int cohort_roster_load_signed(const char *path, const char *sig_path, const cohort_trust_t *trust,
                              time_t now, cohort_roster_t **out, cohort_problems_t *warnings,
                              cohort_err_t *err);

/* Why a signed roster was not accepted (cohort_roster_accept). */
typedef enum {
    COHORT_ROSTER_ACCEPTED = 0,
    COHORT_ROSTER_TOO_LARGE,      /* over COHORT_ROSTER_FILE_MAX */
    COHORT_ROSTER_UNSIGNED,       /* no signature at all */
    COHORT_ROSTER_BAD_SIGNATURE,  /* signature file malformed, or it does not verify:
                                     the bytes were changed after signing */
    COHORT_ROSTER_UNKNOWN_SIGNER, /* signed by a CA that is not trusted here */
    COHORT_ROSTER_MALFORMED,      /* signed, but not a roster */
    COHORT_ROSTER_INVALID,        /* parses, but cohort_roster_check found fatal problems */
} cohort_roster_verdict_t;

/* Short stable name ("accepted", "too-large", "unsigned", "bad-signature",
 * "unknown-signer", "malformed", "invalid"), used as a reason code. */
const char *cohort_roster_verdict_name(cohort_roster_verdict_t verdict);

/* cohort_roster_load_signed on bytes already in memory (a roster pushed
 * over the API or received from a peer): verifies sig (sig_len bytes of
 * signature file text) over buf, then parses (name and sig_name are used in
 * messages) and checks at time now. *verdict (may be NULL) says why it
 * failed; which CA a signature names is only a hint for that verdict, never
 * trusted. *out: caller owns, checked. */
int cohort_roster_accept(const char *name, const char *buf, size_t len, const char *sig_name,
                         const char *sig, size_t sig_len, const cohort_trust_t *trust, time_t now,
                         cohort_roster_t **out, cohort_problems_t *warnings,
                         cohort_roster_verdict_t *verdict, cohort_err_t *err);

/* Accessors. Borrowed pointers stay valid until the roster is changed or
 * destroyed. */
const char *cohort_roster_cluster(const cohort_roster_t *self);
uint64_t cohort_roster_serial(const cohort_roster_t *self);
size_t cohort_roster_member_count(const cohort_roster_t *self);
const cohort_member_t *cohort_roster_member(const cohort_roster_t *self, size_t index);
const cohort_member_t *cohort_roster_find(const cohort_roster_t *self, const char *name);
size_t cohort_roster_revoked_count(const cohort_roster_t *self);
const cohort_revoked_t *cohort_roster_revoked(const cohort_roster_t *self, size_t index);
bool cohort_roster_is_revoked(const cohort_roster_t *self, const uint8_t fp[COHORT_CERT_FP_LEN]);
size_t cohort_roster_site_count(const cohort_roster_t *self);
const cohort_site_t *cohort_roster_site(const cohort_roster_t *self, size_t index);
size_t cohort_roster_policy_count(const cohort_roster_t *self);
const cohort_policy_t *cohort_roster_policy(const cohort_roster_t *self, size_t index);
bool cohort_roster_is_checked(const cohort_roster_t *self);

/* Admission: is this CURVE public key an admitted member at time now? */
typedef enum {
    COHORT_ADMIT_OK = 0,
    COHORT_ADMIT_UNKNOWN,       /* no member has this key */
    COHORT_ADMIT_REVOKED,       /* member's certificate is revoked */
    COHORT_ADMIT_EXPIRED,       /* certificate or CA past its window */
    COHORT_ADMIT_NOT_YET_VALID, /* before its window */
    COHORT_ADMIT_UNTRUSTED,     /* does not chain to a trusted CA */
} cohort_admit_t;

/* Short stable name ("ok", "unknown-key", "revoked", ...), used as a reason
 * code in logs and events. */
const char *cohort_admit_name(cohort_admit_t result);

/* Decides admission for key. The roster must have passed cohort_roster_check
 * (programmer error otherwise). *member (may be NULL) gets the matching
 * member, borrowed, or NULL if none. Runs in O(members). */
cohort_admit_t cohort_roster_admit(const cohort_roster_t *self, const uint8_t key[COHORT_KEY_LEN],
                                   time_t now, const cohort_member_t **member);
/* The same decision for one member of a checked roster, found by other
 * means (by name, when a node compares two rosters). O(1). */
cohort_admit_t cohort_roster_member_admit(const cohort_member_t *member, time_t now);

/* Editing (cohortctl). Each successful change increments the serial and
 * drops the checked mark. */
/* Adds a member. Takes a reference on cert. endpoints may be NULL. */
int cohort_roster_add(cohort_roster_t *self, const char *name, X509 *cert, unsigned roles,
                      const char *site, const char *const *endpoints, size_t endpoint_count,
                      cohort_err_t *err);
int cohort_roster_remove(cohort_roster_t *self, const char *name, cohort_err_t *err);
/* Revokes by member name or by fingerprint text; a named member is removed
 * and its fingerprint listed. reason may be NULL. */
int cohort_roster_revoke(cohort_roster_t *self, const char *name_or_fp, const char *reason,
                         cohort_err_t *err);
int cohort_roster_set_roles(cohort_roster_t *self, const char *name, unsigned roles,
                            cohort_err_t *err);
int cohort_roster_set_site(cohort_roster_t *self, const char *name, const char *site,
                           cohort_err_t *err);
int cohort_roster_set_endpoints(cohort_roster_t *self, const char *name,
                                const char *const *endpoints, size_t count, cohort_err_t *err);

/* Parses "relay,rendezvous" (or "" / "none") into role bits. */
int cohort_roles_parse(const char *text, unsigned *roles, cohort_err_t *err);
/* Writes "relay,rendezvous" (or "none") into out. Returns out. */
const char *cohort_roles_text(unsigned roles, char *out, size_t cap);

/* True for an endpoint of the form tcp://HOST:PORT. */
bool cohort_endpoint_valid(const char *endpoint);

#endif
