/*
 * cert: creating, parsing and describing X.509 certificates. See cert.h.
 */
#include "pki/cert.h"
#include "util/fs.h"
#include "util/mem.h"

#include <assert.h>
#include <ctype.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Backdating notBefore a little keeps a node whose clock runs slightly behind
 * the CA's from refusing a brand new certificate. */
#define COHORT_CERT_BACKDATE_SECS 300

static int s_add_ext(X509 *cert, X509 *issuer, int nid, const char *value, cohort_err_t *err)
{
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    if (!ext)
        return cohort_err_openssl(err, "cannot build extension %s", OBJ_nid2sn(nid));
    int ok = X509_add_ext(cert, ext, -1);
    X509_EXTENSION_free(ext);
    return ok ? 0 : cohort_err_openssl(err, "cannot add extension %s", OBJ_nid2sn(nid));
}

bool cohort_cert_name_valid(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n >= COHORT_CERT_NAME_MAX || !isalnum((unsigned char)name[0]))
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        if (!isalnum(c) && c != '.' && c != '_' && c != '-')
            return false;
    }
    return true;
}

/* Everything a CA and a node certificate have in common. */
static X509 *s_new_cert(const char *cn, EVP_PKEY *subject_key, long secs, cohort_err_t *err)
{
    X509 *cert = X509_new();
    BIGNUM *bn = BN_new();
    if (!cert || !bn)
        abort();
    X509_set_version(cert, X509_VERSION_3);
    /* 127 random bits: unique serials without coordination, always positive. */
    if (!BN_rand(bn, 127, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) ||
        !BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert))) {
        cohort_err_openssl(err, "cannot make a serial number");
        goto fail;
    }
    X509_gmtime_adj(X509_getm_notBefore(cert), -COHORT_CERT_BACKDATE_SECS);
    X509_gmtime_adj(X509_getm_notAfter(cert), secs);
    X509_NAME *subject = X509_get_subject_name(cert);
    if (!X509_NAME_add_entry_by_NID(subject, NID_commonName, MBSTRING_UTF8,
                                    (const unsigned char *)cn, -1, -1, 0)) {
        cohort_err_openssl(err, "cannot set the common name");
        goto fail;
    }
    if (!X509_set_pubkey(cert, subject_key)) {
        cohort_err_openssl(err, "cannot set the public key");
        goto fail;
    }
    BN_free(bn);
    return cert;
fail:
    BN_free(bn);
    X509_free(cert);
    return NULL;
}

int cohort_cert_create_ca(const char *name, EVP_PKEY *ca_key, int days, X509 **out,
                          cohort_err_t *err)
{
    assert(cohort_key_is(ca_key, COHORT_KEY_ED25519));
    if (!cohort_cert_name_valid(name))
        return cohort_err_set(err,
                              "CA name: must be 1..63 characters of A-Z a-z 0-9 . _ - "
                              "starting with a letter or digit, got '%.80s'",
                              name);
    if (days < 1 || days > COHORT_CERT_MAX_DAYS)
        return cohort_err_set(err, "days: must be 1..%d, got %d", COHORT_CERT_MAX_DAYS, days);
    X509 *cert = s_new_cert(name, ca_key, (long)days * 86400, err);
    if (!cert)
        return -1;
    int rc = -1;
    if (!X509_set_issuer_name(cert, X509_get_subject_name(cert)))
        goto out;
    if (s_add_ext(cert, cert, NID_basic_constraints, "critical,CA:TRUE", err) < 0 ||
        s_add_ext(cert, cert, NID_key_usage, "critical,keyCertSign,cRLSign", err) < 0 ||
        s_add_ext(cert, cert, NID_subject_key_identifier, "hash", err) < 0)
        goto out;
    if (!X509_sign(cert, ca_key, NULL)) { /* Ed25519 takes no digest */
        cohort_err_openssl(err, "cannot sign the CA certificate");
        goto out;
    }
    *out = cert;
    cert = NULL;
    rc = 0;
out:
    X509_free(cert);
    return rc;
}

int cohort_cert_issue(X509 *ca_cert, EVP_PKEY *ca_key, const char *name, EVP_PKEY *node_pub,
                      int days, X509 **out, cohort_err_t *err)
{
    if (!cohort_cert_name_valid(name))
        return cohort_err_set(err,
                              "node name: must be 1..63 characters of A-Z a-z 0-9 . _ - "
                              "starting with a letter or digit, got '%.80s'",
                              name);
    if (days < 1 || days > COHORT_CERT_MAX_DAYS)
        return cohort_err_set(err, "days: must be 1..%d, got %d", COHORT_CERT_MAX_DAYS, days);
    if (!cohort_key_is(node_pub, COHORT_KEY_X25519))
        return cohort_err_set(err, "node key: must be X25519, got %s",
                              EVP_PKEY_get0_type_name(node_pub));
    if (X509_check_private_key(ca_cert, ca_key) != 1) {
        ERR_clear_error();
        return cohort_err_set(err, "CA key does not match the CA certificate");
    }
    /* A certificate outliving its CA would only fail later, confusingly. */
    long secs = (long)days * 86400;
    int ca_days = 0, ca_secs = 0;
    if (ASN1_TIME_diff(&ca_days, &ca_secs, NULL, X509_get0_notAfter(ca_cert))) {
        long ca_left = (long)ca_days * 86400 + ca_secs;
        if (ca_left <= 0)
            return cohort_err_set(err, "the CA certificate has expired");
        if (secs > ca_left)
            secs = ca_left;
    }
    X509 *cert = s_new_cert(name, node_pub, secs, err);
    if (!cert)
        return -1;
    int rc = -1;
    if (!X509_set_issuer_name(cert, X509_get_subject_name(ca_cert)))
        goto out;
    if (s_add_ext(cert, ca_cert, NID_basic_constraints, "critical,CA:FALSE", err) < 0 ||
        s_add_ext(cert, ca_cert, NID_key_usage, "critical,keyAgreement", err) < 0 ||
        s_add_ext(cert, ca_cert, NID_subject_key_identifier, "hash", err) < 0 ||
        s_add_ext(cert, ca_cert, NID_authority_key_identifier, "keyid:always", err) < 0)
        goto out;
    if (!X509_sign(cert, ca_key, NULL)) {
        cohort_err_openssl(err, "cannot sign the node certificate");
        goto out;
    }
    *out = cert;
    cert = NULL;
    rc = 0;
out:
    X509_free(cert);
    return rc;
}

/* Reads the next PEM block; returns 1 with a certificate, 0 at the clean end
 * of input, -1 on anything else (with err set). */
static int s_next_cert(BIO *bio, const char *where, int index, X509 **out, cohort_err_t *err)
{
    char *label = NULL, *header = NULL;
    unsigned char *der = NULL;
    long der_len = 0;
    if (!PEM_read_bio(bio, &label, &header, &der, &der_len)) {
        unsigned long e = ERR_peek_last_error();
        ERR_clear_error();
        if (ERR_GET_REASON(e) == PEM_R_NO_START_LINE) {
            if (index == 0)
                return cohort_err_set(err, "%s: no PEM certificate found", where);
            return 0;
        }
        return cohort_err_set(err, "%s: PEM block %d is truncated or corrupt", where, index + 1);
    }
    int rc = -1;
    if (strcmp(label, "CERTIFICATE") != 0) {
        cohort_err_set(err, "%s: expected a CERTIFICATE, got a PEM '%.40s' block", where, label);
        goto out;
    }
    const unsigned char *p = der;
    X509 *cert = d2i_X509(NULL, &p, der_len);
    if (!cert || p != der + der_len) {
        X509_free(cert);
        ERR_clear_error();
        cohort_err_set(err, "%s: certificate %d is not valid DER X.509", where, index + 1);
        goto out;
    }
    *out = cert;
    rc = 1;
out:
    OPENSSL_free(label);
    OPENSSL_free(header);
    OPENSSL_free(der);
    return rc;
}

int cohort_cert_parse_pem(const char *where, const char *buf, size_t len, X509 **out,
                          cohort_err_t *err)
{
    if (len > COHORT_CERT_FILE_MAX)
        return cohort_err_set(err, "%s: certificate text is %zu bytes, over the limit of %d", where,
                              len, COHORT_CERT_FILE_MAX);
    BIO *bio = BIO_new_mem_buf(buf, (int)len);
    if (!bio)
        abort();
    X509 *cert = NULL, *extra = NULL;
    int rc = -1;
    if (s_next_cert(bio, where, 0, &cert, err) != 1)
        goto out;
    int more = s_next_cert(bio, where, 1, &extra, err);
    if (more != 0) {
        if (more == 1)
            cohort_err_set(err, "%s: holds more than one certificate; expected exactly one", where);
        goto out;
    }
    *out = cert;
    cert = NULL;
    rc = 0;
out:
    X509_free(cert);
    X509_free(extra);
    BIO_free(bio);
    return rc;
}

int cohort_cert_load(const char *path, X509 **out, cohort_err_t *err)
{
    char *buf = NULL;
    size_t len = 0;
    if (cohort_fs_read(path, COHORT_CERT_FILE_MAX, &buf, &len, err) < 0)
        return -1;
    int rc = cohort_cert_parse_pem(path, buf, len, out, err);
    free(buf);
    return rc;
}

int cohort_cert_load_bundle(const char *path, STACK_OF(X509) * *out, cohort_err_t *err)
{
    char *buf = NULL;
    size_t len = 0;
    if (cohort_fs_read(path, COHORT_CERT_FILE_MAX, &buf, &len, err) < 0)
        return -1;
    BIO *bio = BIO_new_mem_buf(buf, (int)len);
    STACK_OF(X509) *certs = sk_X509_new_null();
    if (!bio || !certs)
        abort();
    int rc = -1;
    for (int i = 0;; i++) {
        X509 *cert = NULL;
        int got = s_next_cert(bio, path, i, &cert, err);
        if (got < 0)
            goto out;
        if (got == 0)
            break;
        sk_X509_push(certs, cert);
    }
    *out = certs;
    certs = NULL;
    rc = 0;
out:
    sk_X509_pop_free(certs, X509_free);
    BIO_free(bio);
    free(buf);
    return rc;
}

char *cohort_cert_to_pem(X509 *cert)
{
    BIO *bio = BIO_new(BIO_s_mem());
    if (!bio || !PEM_write_bio_X509(bio, cert))
        abort();
    char *data;
    long len = BIO_get_mem_data(bio, &data);
    char *text = cohort_strndup(data, (size_t)len);
    BIO_free(bio);
    return text;
}

int cohort_cert_save(const char *path, X509 *cert, cohort_err_t *err)
{
    char *pem = cohort_cert_to_pem(cert);
    int rc = cohort_fs_write_atomic(path, pem, strlen(pem), 0644, err);
    free(pem);
    return rc;
}

time_t cohort_cert_asn1_time(const ASN1_TIME *t)
{
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    if (!t || !ASN1_TIME_to_tm(t, &tm))
        return 0;
    return timegm(&tm);
}

static void s_cn(const X509_NAME *name, char out[COHORT_CERT_NAME_MAX])
{
    out[0] = '\0';
    int idx = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
    if (idx < 0)
        return;
    const ASN1_STRING *s = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, idx));
    int len = ASN1_STRING_length(s);
    const unsigned char *data = ASN1_STRING_get0_data(s);
    /* A CN that does not fit, or holds a NUL, is no valid node name: leave it
     * visibly mangled rather than silently truncated into a real one. */
    if (len <= 0 || len >= COHORT_CERT_NAME_MAX || memchr(data, 0, (size_t)len)) {
        snprintf(out, COHORT_CERT_NAME_MAX, "(invalid common name)");
        return;
    }
    memcpy(out, data, (size_t)len);
    out[len] = '\0';
}

void cohort_cert_describe(X509 *cert, cohort_cert_info_t *info)
{
    memset(info, 0, sizeof *info);
    s_cn(X509_get_subject_name(cert), info->name);
    s_cn(X509_get_issuer_name(cert), info->issuer);
    unsigned int len = 0;
    X509_digest(cert, EVP_sha256(), info->fingerprint, &len);
    cohort_cert_fp_hex(info->fingerprint, info->fingerprint_hex);
    info->is_ca = X509_check_ca(cert) > 0;
    EVP_PKEY *key = X509_get0_pubkey(cert);
    ERR_clear_error();
    if (key) {
        snprintf(info->key_type, sizeof info->key_type, "%s", EVP_PKEY_get0_type_name(key));
        if (cohort_key_is(key, COHORT_KEY_X25519) || cohort_key_is(key, COHORT_KEY_ED25519))
            cohort_key_raw_public(key, info->public_key);
        info->key_is_x25519 = cohort_key_is(key, COHORT_KEY_X25519);
    } else {
        snprintf(info->key_type, sizeof info->key_type, "unknown");
    }
    info->not_before = cohort_cert_asn1_time(X509_get0_notBefore(cert));
    info->not_after = cohort_cert_asn1_time(X509_get0_notAfter(cert));
}

void cohort_cert_fp_hex(const uint8_t fp[COHORT_CERT_FP_LEN], char out[COHORT_CERT_FP_HEX_LEN + 1])
{
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < COHORT_CERT_FP_LEN; i++) {
        out[2 * i] = hex[fp[i] >> 4];
        out[2 * i + 1] = hex[fp[i] & 15];
    }
    out[COHORT_CERT_FP_HEX_LEN] = '\0';
}

static int s_hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (char)tolower((unsigned char)c);
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

bool cohort_cert_fp_parse(const char *text, uint8_t out[COHORT_CERT_FP_LEN])
{
    if (!strncasecmp(text, "sha256:", 7))
        text += 7;
    int n = 0;
    const char *p = text;
    while (*p) {
        if (n == COHORT_CERT_FP_LEN)
            return false;
        int hi = s_hexval(p[0]);
        int lo = hi < 0 ? -1 : s_hexval(p[1]);
        if (hi < 0 || lo < 0)
            return false;
        out[n++] = (uint8_t)(hi << 4 | lo);
        p += 2;
        if (*p == ':' && n < COHORT_CERT_FP_LEN && p[1])
            p++;
    }
    return n == COHORT_CERT_FP_LEN;
}

const char *cohort_cert_time_text(time_t t, char out[32])
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return out;
}
