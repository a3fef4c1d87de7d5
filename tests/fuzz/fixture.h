/*
 * fixture: the fixed cluster CA that the fuzz corpora were made with.
 *
 * Saved inputs that hold certificates and signed rosters (corpus/cert,
 * corpus/envelope, corpus/api) were issued and signed by this CA with the
 * built `cohortctl ca init --name fuzz`, `cert issue` and `roster sign`, so
 * they chain and verify in every run. Its private key is not kept: nothing
 * in a harness signs. Time is fixed too (COHORT_FUZZ_NOW, a day after the
 * certificates were issued), so a replay judges the same inputs the same way
 * whatever the date.
 */
#ifndef COHORT_FUZZ_FIXTURE_H
#define COHORT_FUZZ_FIXTURE_H

#include "pki/cert.h"
#include "pki/trust.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

/* 2026-11-25: inside every fixture certificate's window (they run to 2126). */
#define COHORT_FUZZ_NOW ((time_t)1795600000)

static const char cohort_fuzz_ca_pem[] =
    "-----BEGIN CERTIFICATE-----\n"
    "MIIBHzCB0qADAgECAhByBA5RnnMqznJC16f/xfR3MAUGAytlcDAPMQ0wCwYDVQQD\n"
    "DARmdXp6MCAXDTI2MTEyNDA0MjgyOVoYDzIxMjYxMDMxMDQzMzI5WjAPMQ0wCwYD\n"
    "VQQDDARmdXp6MCowBQYDK2VwAyEAhoxKOoSlYWZxsN0Y0epMs51A4ANEjaU8WcDV\n"
    "UgKm/4ijQjBAMA8GA1UdEwEB/wQFMAMBAf8wDgYDVR0PAQH/BAQDAgEGMB0GA1Ud\n"
    "DgQWBBTLf7EjVN193pvhc2l8vuxwi++m0DAFBgMrZXADQQDVE34XtRsPvf56K9fF\n"
    "DR0g99zesd0nbKsWU2yU2n7i1lZStS4FrzkV3h1ElMeRGeJ3Ftz63G+LlQ4DLKmO\n"
    "FQsJ\n"
    "-----END CERTIFICATE-----\n";

/* The trust set holding only the fixture CA. Built once; never freed
 * (libFuzzer runs until the process ends). */
static inline cohort_trust_t *cohort_fuzz_trust(void)
{
    static cohort_trust_t *trust;
    if (!trust) {
        cohort_err_t err;
        X509 *ca = NULL;
        trust = cohort_trust_new();
        if (cohort_cert_parse_pem("fixture ca", cohort_fuzz_ca_pem, strlen(cohort_fuzz_ca_pem), &ca,
                                  &err) < 0 ||
            cohort_trust_add(trust, ca, "fixture ca", &err) < 0)
            abort();
        X509_free(ca);
    }
    return trust;
}

#endif
