/*
 * cert: X.509 certificates for the cluster CA and its nodes.
 *
 * The CA certificate is self-signed with an Ed25519 key. A node certificate
 * is X.509 v3 with CN = node name and SubjectPublicKeyInfo = the node's
 * X25519 key (RFC 8410), signed by the CA; `openssl verify` accepts it.
 * Roles and site are deliberately NOT in the certificate: they live in the
 * roster, so changing them needs no re-issue. This module creates, parses,
 * describes and writes certificates; deciding whether one is trusted is
 * trust's job.
 */
#ifndef COHORT_PKI_CERT_H
#define COHORT_PKI_CERT_H

#include "pki/key.h"
#include "util/err.h"

#include <openssl/x509.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#define COHORT_CERT_NAME_MAX 64
#define COHORT_CERT_FP_LEN 32
#define COHORT_CERT_FP_HEX_LEN 64
#define COHORT_CERT_FILE_MAX (256 * 1024)
#define COHORT_CERT_MAX_DAYS (100 * 366)

/* What cohortctl and the roster need to know about a certificate. */
typedef struct cohort_cert_info {
    char name[COHORT_CERT_NAME_MAX];   /* subject CN ("" if none) */
    char issuer[COHORT_CERT_NAME_MAX]; /* issuer CN ("" if none) */
    uint8_t fingerprint[COHORT_CERT_FP_LEN];
    char fingerprint_hex[COHORT_CERT_FP_HEX_LEN + 1];
    bool is_ca;
    bool key_is_x25519;                 /* node certificates must be */
    uint8_t public_key[COHORT_KEY_LEN]; /* valid if key_is_x25519 or key is Ed25519 */
    time_t not_before, not_after;
    char key_type[32];
} cohort_cert_info_t;

/* Creates a self-signed CA certificate for cluster `name` signed by the
 * Ed25519 key ca_key, valid for `days` from now. *out: caller owns. */
int cohort_cert_create_ca(const char *name, EVP_PKEY *ca_key, int days, X509 **out,
                          cohort_err_t *err);

/* Issues a node certificate (CN = name, key = node_pub, X25519), signed by
 * ca_key/ca_cert, valid for `days` from now (clamped to end no later than the
 * CA). *out: caller owns. */
int cohort_cert_issue(X509 *ca_cert, EVP_PKEY *ca_key, const char *name, EVP_PKEY *node_pub,
                      int days, X509 **out, cohort_err_t *err);

/* Parses exactly one PEM certificate from buf. `where` names the source in
 * errors. Rejects other PEM block types, a second block, a truncated block
 * and DER that is not exactly one X.509 certificate. Text outside PEM blocks
 * (comments, as `openssl x509 -text` writes) is ignored, as OpenSSL does.
 * *out: caller owns. */
int cohort_cert_parse_pem(const char *where, const char *buf, size_t len, X509 **out,
                          cohort_err_t *err);
/* Loads a PEM certificate file (at most COHORT_CERT_FILE_MAX bytes). */
int cohort_cert_load(const char *path, X509 **out, cohort_err_t *err);
/* Loads every certificate from a PEM file holding one or more (a CA bundle).
 * *out is a fresh stack; caller owns (sk_X509_pop_free(.., X509_free)). */
int cohort_cert_load_bundle(const char *path, STACK_OF(X509) * *out, cohort_err_t *err);

/* PEM text of cert. Caller owns (free()). */
char *cohort_cert_to_pem(X509 *cert);
/* Writes cert as PEM to path atomically (0644). */
int cohort_cert_save(const char *path, X509 *cert, cohort_err_t *err);

/* Fills info from cert. */
void cohort_cert_describe(X509 *cert, cohort_cert_info_t *info);

/* Lowercase hex of a 32-byte fingerprint into out (65 bytes). */
void cohort_cert_fp_hex(const uint8_t fp[COHORT_CERT_FP_LEN], char out[COHORT_CERT_FP_HEX_LEN + 1]);
/* Parses a fingerprint written as 64 hex digits, optionally with a "sha256:"
 * prefix and ':' separators between bytes. */
bool cohort_cert_fp_parse(const char *text, uint8_t out[COHORT_CERT_FP_LEN]);

/* True for a valid node, cluster or site name: 1..63 characters of
 * A-Z a-z 0-9 . _ - starting with a letter or digit. */
bool cohort_cert_name_valid(const char *name);

/* An ASN.1 time as seconds since the epoch (0 if absent or invalid). */
time_t cohort_cert_asn1_time(const ASN1_TIME *t);

/* Writes a time as "YYYY-MM-DDTHH:MM:SSZ". Returns out. */
const char *cohort_cert_time_text(time_t t, char out[32]);

#endif
