/*
 * fuzz_roster: libFuzzer harness for the roster parser and the signature
 * file parser, the two readers of roster bytes that arrive from outside
 * (gossip, `roster push`, files an admin edited by hand).
 *
 * Invariants checked beyond "no crash": a roster that parses emits YAML that
 * parses again to the same emission.
 */
#include "pki/key.h"
#include "pki/trust.h"
#include "roster/roster.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static cohort_trust_t *s_trust(void)
{
    static cohort_trust_t *trust;
    if (!trust) {
        cohort_err_t err;
        EVP_PKEY *key = cohort_key_generate(COHORT_KEY_ED25519);
        X509 *ca = NULL;
        trust = cohort_trust_new();
        if (cohort_cert_create_ca("fuzz", key, 30, &ca, &err) < 0 ||
            cohort_trust_add(trust, ca, "fuzz", &err) < 0)
            abort();
        X509_free(ca);
        EVP_PKEY_free(key);
    }
    return trust;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    cohort_err_t err;
    cohort_roster_t *r = NULL;
    if (cohort_roster_parse("fuzz.yaml", text, size, &r, &err) == 0) {
        char *a = NULL, *b = NULL;
        size_t alen = 0, blen = 0;
        cohort_roster_t *again = NULL;
        cohort_problems_t problems = {0};
        cohort_roster_check(r, s_trust(), 0, &problems);
        cohort_problems_fini(&problems);
        if (cohort_roster_emit(r, &a, &alen, &err) == 0) {
            if (cohort_roster_parse("again.yaml", a, alen, &again, &err) < 0 ||
                cohort_roster_emit(again, &b, &blen, &err) < 0 || alen != blen ||
                memcmp(a, b, alen) != 0)
                abort(); /* emit must produce what parse accepts, stably */
        }
        free(a);
        free(b);
        cohort_roster_destroy(&again);
        cohort_roster_destroy(&r);
    }
    /* The same bytes as a signature file over a fixed roster text. */
    static const char roster[] = "cluster: fuzz\nserial: 1\n";
    cohort_roster_verify_sig(roster, sizeof roster - 1, "fuzz.sig", text, size, s_trust(), &err);
    return 0;
}
