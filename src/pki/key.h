/*
 * key: node identity keys (X25519) and CA keys (Ed25519) on disk.
 *
 * A node's X25519 key pair IS its ZeroMQ CURVE key pair (CURVE is
 * Curve25519), so the raw 32-byte halves of the OpenSSL key are handed to
 * libzmq as they are. Private keys are stored as PKCS#8 PEM, written 0600 via
 * an atomic rename, and refused on load if group or others can read them.
 * Private key bytes are wiped before they are freed. This module does not
 * sign or verify anything; trust and cert do.
 */
#ifndef COHORT_PKI_KEY_H
#define COHORT_PKI_KEY_H

#include "util/err.h"

#include <openssl/evp.h>
#include <stdbool.h>
#include <stdint.h>

#define COHORT_KEY_LEN 32
#define COHORT_KEY_Z85_LEN 40

typedef enum {
    COHORT_KEY_X25519, /* node identity / CURVE */
    COHORT_KEY_ED25519 /* CA signing key */
} cohort_key_type_t;

/* Generates a fresh key of the given type. Never returns NULL. Caller owns
 * the result (EVP_PKEY_free). */
EVP_PKEY *cohort_key_generate(cohort_key_type_t type);

/* Writes the private key as PKCS#8 PEM with mode 0600. Refuses to replace an
 * existing file unless overwrite is true. */
int cohort_key_save_private(const char *path, EVP_PKEY *key, bool overwrite, cohort_err_t *err);
/* Writes the public half as SubjectPublicKeyInfo PEM (mode 0644). */
int cohort_key_save_public(const char *path, EVP_PKEY *key, cohort_err_t *err);

/* Loads a private key of the given type. Fails if the file is readable by
 * group or others, is not PEM, or holds another key type. *out: caller owns. */
int cohort_key_load_private(const char *path, cohort_key_type_t type, EVP_PKEY **out,
                            cohort_err_t *err);
/* Loads an X25519 public key (PEM SubjectPublicKeyInfo), or the public half
 * of a private key file. *out: caller owns. */
int cohort_key_load_public(const char *path, EVP_PKEY **out, cohort_err_t *err);

/* True if key is of that type. */
bool cohort_key_is(const EVP_PKEY *key, cohort_key_type_t type);

/* Raw 32-byte public key. key must be X25519 or Ed25519 (programmer error
 * otherwise). */
void cohort_key_raw_public(const EVP_PKEY *key, uint8_t out[COHORT_KEY_LEN]);
/* Raw 32-byte private key; the caller must OPENSSL_cleanse it after use. */
void cohort_key_raw_private(const EVP_PKEY *key, uint8_t out[COHORT_KEY_LEN]);
/* ZeroMQ Z85 text of a 32-byte key (40 characters + NUL). */
void cohort_key_z85(const uint8_t key[COHORT_KEY_LEN], char out[COHORT_KEY_Z85_LEN + 1]);
/* Parses 40 characters of Z85 into 32 bytes; false if not valid Z85. */
bool cohort_key_from_z85(const char *text, uint8_t out[COHORT_KEY_LEN]);

#endif
