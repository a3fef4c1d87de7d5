/*
 * trust: chain checks and detached signatures against trusted CAs.
 * See trust.h.
 */
#include "pki/trust.h"
#include "util/mem.h"

#include <assert.h>
#include <openssl/err.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>
#include <stdlib.h>
#include <string.h>

struct cohort_trust {
    STACK_OF(X509) * cas;
};

const char *cohort_trust_status_name(cohort_trust_status_t status)
{
    switch (status) {
    case COHORT_TRUST_OK:
        return "ok";
    case COHORT_TRUST_UNTRUSTED:
        return "untrusted";
    case COHORT_TRUST_EXPIRED:
        return "expired";
    case COHORT_TRUST_NOT_YET_VALID:
        return "not-yet-valid";
    case COHORT_TRUST_BAD_KEY:
        return "bad-key";
    case COHORT_TRUST_NOT_LEAF:
        return "not-leaf";
    }
    return "unknown";
}

cohort_trust_t *cohort_trust_new(void)
{
    cohort_trust_t *self = cohort_calloc(1, sizeof *self);
    self->cas = sk_X509_new_null();
    if (!self->cas)
        abort();
    return self;
}

void cohort_trust_destroy(cohort_trust_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    sk_X509_pop_free((*self_p)->cas, X509_free);
    free(*self_p);
    *self_p = NULL;
}

int cohort_trust_add(cohort_trust_t *self, X509 *ca, const char *where, cohort_err_t *err)
{
    if (sk_X509_num(self->cas) >= COHORT_TRUST_MAX_CAS)
        return cohort_err_set(err, "%s: more than %d trusted CA certificates", where,
                              COHORT_TRUST_MAX_CAS);
    if (X509_check_ca(ca) <= 0)
        return cohort_err_set(err, "%s: not a CA certificate (basicConstraints CA:TRUE missing)",
                              where);
    X509_up_ref(ca);
    sk_X509_push(self->cas, ca);
    return 0;
}

int cohort_trust_add_file(cohort_trust_t *self, const char *path, cohort_err_t *err)
{
    STACK_OF(X509) *certs = NULL;
    if (cohort_cert_load_bundle(path, &certs, err) < 0)
        return -1;
    int rc = 0;
    for (int i = 0; i < sk_X509_num(certs) && rc == 0; i++)
        rc = cohort_trust_add(self, sk_X509_value(certs, i), path, err);
    sk_X509_pop_free(certs, X509_free);
    return rc;
}

size_t cohort_trust_count(const cohort_trust_t *self)
{
    return (size_t)sk_X509_num(self->cas);
}

X509 *cohort_trust_get(const cohort_trust_t *self, size_t index)
{
    assert(index < cohort_trust_count(self));
    return sk_X509_value(self->cas, (int)index);
}

cohort_trust_status_t cohort_trust_check_chain(const cohort_trust_t *self, X509 *cert,
                                               time_t *not_before, time_t *not_after,
                                               cohort_err_t *err)
{
    cohort_cert_info_t info;
    cohort_cert_describe(cert, &info);
    if (info.is_ca) {
        cohort_err_set(err, "certificate '%s' is a CA certificate, not a node certificate",
                       info.name);
        return COHORT_TRUST_NOT_LEAF;
    }
    if (!info.key_is_x25519) {
        cohort_err_set(err, "certificate '%s' holds a key of type %s; node keys must be X25519",
                       info.name, info.key_type);
        return COHORT_TRUST_BAD_KEY;
    }

    cohort_trust_status_t status = COHORT_TRUST_UNTRUSTED;
    X509_STORE *store = X509_STORE_new();
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    if (!store || !ctx)
        abort();
    for (int i = 0; i < sk_X509_num(self->cas); i++)
        X509_STORE_add_cert(store, sk_X509_value(self->cas, i));
    /* Time is checked separately against the chain's window, so a roster can
     * be verified once and admission decided per handshake without redoing
     * signature checks. PARTIAL_CHAIN makes each listed CA an anchor, which
     * is what an enterprise intermediate needs. */
    X509_STORE_set_flags(store, X509_V_FLAG_NO_CHECK_TIME | X509_V_FLAG_PARTIAL_CHAIN);
    if (!X509_STORE_CTX_init(ctx, store, cert, NULL))
        abort();
    if (X509_verify_cert(ctx) != 1) {
        int code = X509_STORE_CTX_get_error(ctx);
        cohort_err_set(err, "certificate '%s' (issuer '%s') does not chain to a trusted CA: %s",
                       info.name, info.issuer, X509_verify_cert_error_string(code));
        goto out;
    }
    time_t nb = info.not_before, na = info.not_after;
    STACK_OF(X509) *chain = X509_STORE_CTX_get0_chain(ctx);
    for (int i = 1; i < sk_X509_num(chain); i++) {
        X509 *ca = sk_X509_value(chain, i);
        time_t ca_nb = cohort_cert_asn1_time(X509_get0_notBefore(ca));
        time_t ca_na = cohort_cert_asn1_time(X509_get0_notAfter(ca));
        if (ca_nb > nb)
            nb = ca_nb;
        if (ca_na < na)
            na = ca_na;
    }
    if (not_before)
        *not_before = nb;
    if (not_after)
        *not_after = na;
    status = COHORT_TRUST_OK;
out:
    ERR_clear_error();
    X509_STORE_CTX_free(ctx);
    X509_STORE_free(store);
    return status;
}

cohort_trust_status_t cohort_trust_check(const cohort_trust_t *self, X509 *cert, time_t now,
                                         cohort_err_t *err)
{
    time_t nb = 0, na = 0;
    cohort_trust_status_t status = cohort_trust_check_chain(self, cert, &nb, &na, err);
    if (status != COHORT_TRUST_OK)
        return status;
    cohort_cert_info_t info;
    cohort_cert_describe(cert, &info);
    char when[32];
    if (now < nb) {
        cohort_err_set(err, "certificate '%s' is not valid before %s", info.name,
                       cohort_cert_time_text(nb, when));
        return COHORT_TRUST_NOT_YET_VALID;
    }
    if (now > na) {
        cohort_err_set(err, "certificate '%s' (or its CA) expired at %s", info.name,
                       cohort_cert_time_text(na, when));
        return COHORT_TRUST_EXPIRED;
    }
    return COHORT_TRUST_OK;
}

int cohort_trust_sign(EVP_PKEY *ca_key, const void *data, size_t len, uint8_t sig[COHORT_SIG_LEN],
                      cohort_err_t *err)
{
    if (!cohort_key_is(ca_key, COHORT_KEY_ED25519))
        return cohort_err_set(err, "signing key must be Ed25519, got %s",
                              EVP_PKEY_get0_type_name(ca_key));
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx)
        abort();
    size_t sig_len = COHORT_SIG_LEN;
    int ok = EVP_DigestSignInit(ctx, NULL, NULL, NULL, ca_key) == 1 &&
             EVP_DigestSign(ctx, sig, &sig_len, data, len) == 1 && sig_len == COHORT_SIG_LEN;
    EVP_MD_CTX_free(ctx);
    return ok ? 0 : cohort_err_openssl(err, "cannot sign");
}

int cohort_trust_verify_sig(const cohort_trust_t *self, const void *data, size_t len,
                            const uint8_t *sig, size_t sig_len, cohort_err_t *err)
{
    if (sig_len != COHORT_SIG_LEN)
        return cohort_err_set(err, "signature is %zu bytes; an Ed25519 signature is %d", sig_len,
                              COHORT_SIG_LEN);
    for (int i = 0; i < sk_X509_num(self->cas); i++) {
        EVP_PKEY *key = X509_get0_pubkey(sk_X509_value(self->cas, i));
        if (!key || !cohort_key_is(key, COHORT_KEY_ED25519))
            continue;
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        if (!ctx)
            abort();
        int ok = EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, key) == 1 &&
                 EVP_DigestVerify(ctx, sig, sig_len, data, len) == 1;
        EVP_MD_CTX_free(ctx);
        ERR_clear_error();
        if (ok)
            return i;
    }
    return cohort_err_set(err, "signature does not verify against any of the %d trusted CA(s)",
                          sk_X509_num(self->cas));
}
