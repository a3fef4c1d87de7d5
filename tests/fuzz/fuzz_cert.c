/*
 * fuzz_cert: certificate loading and checking, against arbitrary bytes.
 *
 * The bytes go through cohort_cert_parse_pem (what reads node.crt, ca.crt
 * and every member certificate in a roster) and, separately, through
 * d2i_X509 as DER, so that certificates of any structure, not only the ones
 * whose base64 the fuzzer managed to keep intact, reach what cohort does
 * with a parsed certificate: cohort_cert_describe, the chain and window
 * check against the fixture CA (fixture.h, at its fixed time) and, for a CA
 * certificate, cohort_trust_add. Fingerprint and name parsing get the bytes
 * as text too (fingerprints come from `roster revoke` and roster files).
 *
 * Invariants checked beyond "no crash": a certificate that parses writes out
 * as PEM that parses again to the same fingerprint; the info strings are
 * terminated and the fingerprint hex is the fingerprint; a certificate the
 * chain check accepts is an X25519 leaf with a window that contains the
 * answer of the time check.
 */
#include "fixture.h"
#include "pki/cert.h"
#include "pki/trust.h"

#include <openssl/err.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void s_check_info(const cohort_cert_info_t *info)
{
    if (memchr(info->name, '\0', sizeof info->name) == NULL ||
        memchr(info->issuer, '\0', sizeof info->issuer) == NULL ||
        memchr(info->key_type, '\0', sizeof info->key_type) == NULL ||
        strlen(info->fingerprint_hex) != COHORT_CERT_FP_HEX_LEN)
        abort();
    uint8_t fp[COHORT_CERT_FP_LEN];
    if (!cohort_cert_fp_parse(info->fingerprint_hex, fp) ||
        memcmp(fp, info->fingerprint, sizeof fp) != 0)
        abort();
}

/* What cohort does with any parsed certificate. */
static void s_use(X509 *cert)
{
    cohort_cert_info_t info;
    cohort_cert_describe(cert, &info);
    s_check_info(&info);
    cohort_err_t err;
    cohort_err_clear(&err);
    time_t nb = 0, na = 0;
    cohort_trust_status_t st = cohort_trust_check_chain(cohort_fuzz_trust(), cert, &nb, &na, &err);
    if (st == COHORT_TRUST_OK && (info.is_ca || !info.key_is_x25519))
        abort();
    cohort_trust_status_t now =
        cohort_trust_check(cohort_fuzz_trust(), cert, COHORT_FUZZ_NOW, &err);
    if (st != COHORT_TRUST_OK && now == COHORT_TRUST_OK)
        abort();
    if (st == COHORT_TRUST_OK && now != (COHORT_FUZZ_NOW < nb   ? COHORT_TRUST_NOT_YET_VALID
                                         : COHORT_FUZZ_NOW > na ? COHORT_TRUST_EXPIRED
                                                                : COHORT_TRUST_OK))
        abort();
    if (info.is_ca) {
        cohort_trust_t *trust = cohort_trust_new();
        if (cohort_trust_add(trust, cert, "fuzz.crt", &err) == 0 && cohort_trust_count(trust) != 1)
            abort();
        cohort_trust_destroy(&trust);
    }
    /* Written out and read back, it is the same certificate. */
    char *pem = cohort_cert_to_pem(cert);
    X509 *again = NULL;
    cohort_cert_info_t info2;
    if (!pem || cohort_cert_parse_pem("again.crt", pem, strlen(pem), &again, &err) < 0)
        abort();
    cohort_cert_describe(again, &info2);
    if (memcmp(info.fingerprint, info2.fingerprint, sizeof info.fingerprint) != 0)
        abort();
    X509_free(again);
    free(pem);
    ERR_clear_error();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cohort_err_t err;
    cohort_err_clear(&err);
    X509 *cert = NULL;
    if (cohort_cert_parse_pem("fuzz.crt", (const char *)data, size, &cert, &err) == 0) {
        s_use(cert);
        X509_free(cert);
        cert = NULL;
    } else if (!cohort_err_text(&err)[0]) {
        abort(); /* a refusal always says why */
    }
    const unsigned char *p = data;
    cert = d2i_X509(NULL, &p, (long)size);
    if (cert) {
        s_use(cert);
        X509_free(cert);
    }
    ERR_clear_error();
    /* The bytes as a fingerprint or name someone typed. */
    char text[160];
    size_t n = size < sizeof text - 1 ? size : sizeof text - 1;
    memcpy(text, data, n);
    text[n] = '\0';
    uint8_t fp[COHORT_CERT_FP_LEN];
    if (cohort_cert_fp_parse(text, fp)) {
        char hex[COHORT_CERT_FP_HEX_LEN + 1];
        uint8_t fp2[COHORT_CERT_FP_LEN];
        cohort_cert_fp_hex(fp, hex);
        if (!cohort_cert_fp_parse(hex, fp2) || memcmp(fp, fp2, sizeof fp) != 0)
            abort();
    }
    cohort_cert_name_valid(text);
    return 0;
}
