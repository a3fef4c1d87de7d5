/*
 * Unit tests for pki: keys, certificates, trust and signatures, with real
 * OpenSSL objects and real files.
 */
#include "testutil.h"

#include "pki/cert.h"
#include "pki/key.h"
#include "pki/trust.h"

#include <openssl/pem.h>
#include <sys/stat.h>
#include <time.h>

typedef struct {
    EVP_PKEY *ca_key;
    X509 *ca;
    EVP_PKEY *node_key;
    X509 *node;
    char *dir;
} fixture_t;

static X509 *s_issue(fixture_t *f, const char *name, EVP_PKEY *key, int days)
{
    X509 *cert = NULL;
    cohort_err_t err;
    assert_int_equal(cohort_cert_issue(f->ca, f->ca_key, name, key, days, &cert, &err), 0);
    return cert;
}

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof *f);
    cohort_err_t err;
    f->ca_key = cohort_key_generate(COHORT_KEY_ED25519);
    assert_int_equal(cohort_cert_create_ca("testca", f->ca_key, 30, &f->ca, &err), 0);
    f->node_key = cohort_key_generate(COHORT_KEY_X25519);
    f->node = s_issue(f, "n1", f->node_key, 10);
    f->dir = test_tmpdir();
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    EVP_PKEY_free(f->ca_key);
    EVP_PKEY_free(f->node_key);
    X509_free(f->ca);
    X509_free(f->node);
    test_rmdir(&f->dir);
    free(f);
    return 0;
}

static void test_ca_certificate_is_a_self_signed_ed25519_ca(void **state)
{
    fixture_t *f = *state;
    cohort_cert_info_t info;
    cohort_cert_describe(f->ca, &info);
    assert_string_equal(info.name, "testca");
    assert_string_equal(info.issuer, "testca");
    assert_true(info.is_ca);
    assert_string_equal(info.key_type, "ED25519");
    assert_int_equal(X509_verify(f->ca, f->ca_key), 1);
    long secs = (long)(info.not_after - info.not_before);
    /* 30 days plus the backdating allowance for clock skew */
    assert_true(secs >= 30 * 86400 && secs <= 30 * 86400 + 3600);
}

static void test_node_certificate_carries_cn_and_the_x25519_key(void **state)
{
    fixture_t *f = *state;
    cohort_cert_info_t info;
    cohort_cert_describe(f->node, &info);
    assert_string_equal(info.name, "n1");
    assert_string_equal(info.issuer, "testca");
    assert_false(info.is_ca);
    assert_true(info.key_is_x25519);
    uint8_t pub[COHORT_KEY_LEN];
    cohort_key_raw_public(f->node_key, pub);
    assert_memory_equal(pub, info.public_key, COHORT_KEY_LEN);
    assert_int_equal(X509_get_version(f->node), X509_VERSION_3);
}

static void test_issued_certificate_chains_to_its_ca(void **state)
{
    fixture_t *f = *state;
    cohort_trust_t *trust = cohort_trust_new();
    cohort_err_t err;
    assert_int_equal(cohort_trust_add(trust, f->ca, "ca", &err), 0);
    assert_int_equal(cohort_trust_check(trust, f->node, time(NULL), &err), COHORT_TRUST_OK);
    cohort_trust_destroy(&trust);
    assert_null(trust);
}

static void test_certificate_from_another_ca_is_untrusted(void **state)
{
    fixture_t *f = *state;
    cohort_err_t err;
    EVP_PKEY *other_key = cohort_key_generate(COHORT_KEY_ED25519);
    X509 *other = NULL;
    assert_int_equal(cohort_cert_create_ca("other", other_key, 30, &other, &err), 0);
    cohort_trust_t *trust = cohort_trust_new();
    assert_int_equal(cohort_trust_add(trust, other, "other", &err), 0);
    assert_int_equal(cohort_trust_check(trust, f->node, time(NULL), &err), COHORT_TRUST_UNTRUSTED);
    assert_non_null(strstr(err.text, "'n1' (issuer 'testca') does not chain to a trusted CA"));
    cohort_trust_destroy(&trust);
    X509_free(other);
    EVP_PKEY_free(other_key);
}

static void test_validity_window_decides_expired_and_not_yet_valid(void **state)
{
    fixture_t *f = *state;
    cohort_trust_t *trust = cohort_trust_new();
    cohort_err_t err;
    assert_int_equal(cohort_trust_add(trust, f->ca, "ca", &err), 0);
    time_t now = time(NULL);
    assert_int_equal(cohort_trust_check(trust, f->node, now + 11 * 86400, &err),
                     COHORT_TRUST_EXPIRED);
    assert_non_null(strstr(err.text, "expired at"));
    assert_int_equal(cohort_trust_check(trust, f->node, now - 86400, &err),
                     COHORT_TRUST_NOT_YET_VALID);
    cohort_trust_destroy(&trust);
}

static void test_node_certificate_never_outlives_its_ca(void **state)
{
    fixture_t *f = *state;
    X509 *cert = s_issue(f, "long", f->node_key, 3650);
    cohort_cert_info_t node, ca;
    cohort_cert_describe(cert, &node);
    cohort_cert_describe(f->ca, &ca);
    assert_true(node.not_after <= ca.not_after);
    X509_free(cert);
}

static void test_ca_certificate_is_refused_as_a_node_certificate(void **state)
{
    fixture_t *f = *state;
    cohort_trust_t *trust = cohort_trust_new();
    cohort_err_t err;
    assert_int_equal(cohort_trust_add(trust, f->ca, "ca", &err), 0);
    assert_int_equal(cohort_trust_check(trust, f->ca, time(NULL), &err), COHORT_TRUST_NOT_LEAF);
    cohort_trust_destroy(&trust);
}

static void test_node_certificate_is_refused_as_a_trust_anchor(void **state)
{
    fixture_t *f = *state;
    cohort_trust_t *trust = cohort_trust_new();
    cohort_err_t err;
    assert_int_equal(cohort_trust_add(trust, f->node, "node.crt", &err), -1);
    assert_string_equal(err.text,
                        "node.crt: not a CA certificate (basicConstraints CA:TRUE missing)");
    cohort_trust_destroy(&trust);
}

static void test_bundle_of_two_cas_trusts_both_for_rotation(void **state)
{
    fixture_t *f = *state;
    cohort_err_t err;
    EVP_PKEY *new_key = cohort_key_generate(COHORT_KEY_ED25519);
    X509 *new_ca = NULL, *new_node = NULL;
    assert_int_equal(cohort_cert_create_ca("testca2", new_key, 30, &new_ca, &err), 0);
    assert_int_equal(cohort_cert_issue(new_ca, new_key, "n2", f->node_key, 5, &new_node, &err), 0);
    char *a = cohort_cert_to_pem(f->ca), *b = cohort_cert_to_pem(new_ca);
    size_t n = strlen(a) + strlen(b) + 1;
    char *both = malloc(n);
    snprintf(both, n, "%s%s", a, b);
    char *path = test_write(f->dir, "bundle.crt", both, 0644);
    cohort_trust_t *trust = cohort_trust_new();
    assert_int_equal(cohort_trust_add_file(trust, path, &err), 0);
    assert_int_equal(cohort_trust_count(trust), 2);
    assert_int_equal(cohort_trust_check(trust, f->node, time(NULL), &err), COHORT_TRUST_OK);
    assert_int_equal(cohort_trust_check(trust, new_node, time(NULL), &err), COHORT_TRUST_OK);
    cohort_trust_destroy(&trust);
    free(a);
    free(b);
    free(both);
    free(path);
    X509_free(new_ca);
    X509_free(new_node);
    EVP_PKEY_free(new_key);
}

static void test_private_key_is_written_0600_and_never_overwritten(void **state)
{
    fixture_t *f = *state;
    cohort_err_t err;
    char path[4096];
    snprintf(path, sizeof path, "%s/node.key", f->dir);
    assert_int_equal(cohort_key_save_private(path, f->node_key, false, &err), 0);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(cohort_key_save_private(path, f->node_key, false, &err), -1);
    assert_non_null(strstr(err.text, "already exists; refusing to overwrite a key"));
    EVP_PKEY *back = NULL;
    assert_int_equal(cohort_key_load_private(path, COHORT_KEY_X25519, &back, &err), 0);
    assert_int_equal(EVP_PKEY_eq(back, f->node_key), 1);
    EVP_PKEY_free(back);
}

static void test_private_key_readable_by_others_is_refused(void **state)
{
    fixture_t *f = *state;
    cohort_err_t err;
    char path[4096];
    snprintf(path, sizeof path, "%s/open.key", f->dir);
    assert_int_equal(cohort_key_save_private(path, f->node_key, false, &err), 0);
    chmod(path, 0644);
    EVP_PKEY *key = NULL;
    assert_int_equal(cohort_key_load_private(path, COHORT_KEY_X25519, &key, &err), -1);
    assert_null(key);
    assert_non_null(strstr(err.text, "accessible by group or others (mode 0644)"));
}

static void test_key_of_the_wrong_type_is_refused(void **state)
{
    fixture_t *f = *state;
    cohort_err_t err;
    char path[4096];
    snprintf(path, sizeof path, "%s/ca.key", f->dir);
    assert_int_equal(cohort_key_save_private(path, f->ca_key, false, &err), 0);
    EVP_PKEY *key = NULL;
    assert_int_equal(cohort_key_load_private(path, COHORT_KEY_X25519, &key, &err), -1);
    assert_non_null(strstr(err.text, "expected an X25519 private key, got ED25519"));
    X509 *cert = NULL;
    assert_int_equal(cohort_cert_issue(f->ca, f->ca_key, "n9", f->ca_key, 5, &cert, &err), -1);
    assert_non_null(strstr(err.text, "node key: must be X25519"));
}

static void test_pem_parser_refuses_wrong_type_truncation_and_extras(void **state)
{
    fixture_t *f = *state;
    cohort_err_t err;
    X509 *cert = NULL;
    char *pem = cohort_cert_to_pem(f->node);

    assert_int_equal(cohort_cert_parse_pem("x.crt", "", 0, &cert, &err), -1);
    assert_string_equal(err.text, "x.crt: no PEM certificate found");

    const char *key_pem = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VuBCIEIA==\n"
                          "-----END PRIVATE KEY-----\n";
    assert_int_equal(cohort_cert_parse_pem("x.crt", key_pem, strlen(key_pem), &cert, &err), -1);
    assert_string_equal(err.text, "x.crt: expected a CERTIFICATE, got a PEM 'PRIVATE KEY' block");

    size_t half = strlen(pem) / 2;
    assert_int_equal(cohort_cert_parse_pem("x.crt", pem, half, &cert, &err), -1);
    assert_string_equal(err.text, "x.crt: PEM block 1 is truncated or corrupt");

    char two[8192];
    snprintf(two, sizeof two, "%s%s", pem, pem);
    assert_int_equal(cohort_cert_parse_pem("x.crt", two, strlen(two), &cert, &err), -1);
    assert_string_equal(err.text, "x.crt: holds more than one certificate; expected exactly one");

    const char *junk_der = "-----BEGIN CERTIFICATE-----\naGVsbG8gd29ybGQ=\n"
                           "-----END CERTIFICATE-----\n";
    assert_int_equal(cohort_cert_parse_pem("x.crt", junk_der, strlen(junk_der), &cert, &err), -1);
    assert_string_equal(err.text, "x.crt: certificate 1 is not valid DER X.509");

    assert_int_equal(cohort_cert_parse_pem("x.crt", pem, strlen(pem), &cert, &err), 0);
    assert_int_equal(X509_cmp(cert, f->node), 0);
    X509_free(cert);
    free(pem);
}

static void test_fingerprint_text_forms(void **state)
{
    fixture_t *f = *state;
    cohort_cert_info_t info;
    cohort_cert_describe(f->node, &info);
    uint8_t fp[COHORT_CERT_FP_LEN];
    assert_true(cohort_cert_fp_parse(info.fingerprint_hex, fp));
    assert_memory_equal(fp, info.fingerprint, sizeof fp);
    char prefixed[128], colons[160] = "";
    snprintf(prefixed, sizeof prefixed, "SHA256:%s", info.fingerprint_hex);
    assert_true(cohort_cert_fp_parse(prefixed, fp));
    for (int i = 0; i < COHORT_CERT_FP_LEN; i++) {
        char two[4];
        snprintf(two, sizeof two, "%s%.2s", i ? ":" : "", info.fingerprint_hex + 2 * i);
        strcat(colons, two);
    }
    assert_true(cohort_cert_fp_parse(colons, fp));
    assert_memory_equal(fp, info.fingerprint, sizeof fp);
    assert_false(cohort_cert_fp_parse("abc", fp));
    assert_false(cohort_cert_fp_parse("", fp));
    char bad[80];
    snprintf(bad, sizeof bad, "%.63sz", info.fingerprint_hex);
    assert_false(cohort_cert_fp_parse(bad, fp));
    snprintf(bad, sizeof bad, "%s00", info.fingerprint_hex);
    assert_false(cohort_cert_fp_parse(bad, fp));
}

static void test_signature_verifies_only_for_the_exact_bytes_and_ca(void **state)
{
    fixture_t *f = *state;
    cohort_err_t err;
    const char msg[] = "cluster: demo\nserial: 7\n";
    uint8_t sig[COHORT_SIG_LEN];
    assert_int_equal(cohort_trust_sign(f->ca_key, msg, sizeof msg - 1, sig, &err), 0);
    cohort_trust_t *trust = cohort_trust_new();
    assert_int_equal(cohort_trust_add(trust, f->ca, "ca", &err), 0);
    assert_int_equal(cohort_trust_verify_sig(trust, msg, sizeof msg - 1, sig, sizeof sig, &err), 0);
    char tampered[sizeof msg];
    memcpy(tampered, msg, sizeof msg);
    tampered[20] = '8';
    assert_int_equal(
        cohort_trust_verify_sig(trust, tampered, sizeof msg - 1, sig, sizeof sig, &err), -1);
    assert_string_equal(err.text, "signature does not verify against any of the 1 trusted CA(s)");
    assert_int_equal(cohort_trust_verify_sig(trust, msg, sizeof msg - 1, sig, 10, &err), -1);
    assert_int_equal(cohort_trust_sign(f->node_key, msg, 3, sig, &err), -1);
    cohort_trust_destroy(&trust);
}

static void test_z85_round_trip_and_rejects_bad_text(void **state)
{
    (void)state;
    uint8_t key[COHORT_KEY_LEN], back[COHORT_KEY_LEN];
    for (int i = 0; i < COHORT_KEY_LEN; i++)
        key[i] = (uint8_t)(i * 7 + 3);
    char z85[COHORT_KEY_Z85_LEN + 1];
    cohort_key_z85(key, z85);
    assert_int_equal(strlen(z85), 40);
    assert_true(cohort_key_from_z85(z85, back));
    assert_memory_equal(key, back, sizeof key);
    assert_false(cohort_key_from_z85("short", back));
}

static void test_invalid_names_and_days_are_refused(void **state)
{
    fixture_t *f = *state;
    cohort_err_t err;
    X509 *cert = NULL;
    assert_int_equal(cohort_cert_issue(f->ca, f->ca_key, "bad name", f->node_key, 5, &cert, &err),
                     -1);
    assert_non_null(strstr(err.text, "got 'bad name'"));
    assert_int_equal(cohort_cert_issue(f->ca, f->ca_key, "-x", f->node_key, 5, &cert, &err), -1);
    assert_int_equal(cohort_cert_issue(f->ca, f->ca_key, "ok", f->node_key, 0, &cert, &err), -1);
    assert_non_null(strstr(err.text, "days: must be 1.."));
    EVP_PKEY *other = cohort_key_generate(COHORT_KEY_ED25519);
    assert_int_equal(cohort_cert_issue(f->ca, other, "ok", f->node_key, 5, &cert, &err), -1);
    assert_string_equal(err.text, "CA key does not match the CA certificate");
    EVP_PKEY_free(other);
    assert_null(cert);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_ca_certificate_is_a_self_signed_ed25519_ca, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_node_certificate_carries_cn_and_the_x25519_key, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_issued_certificate_chains_to_its_ca, setup, teardown),
        cmocka_unit_test_setup_teardown(test_certificate_from_another_ca_is_untrusted, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_validity_window_decides_expired_and_not_yet_valid,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_node_certificate_never_outlives_its_ca, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_ca_certificate_is_refused_as_a_node_certificate, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_node_certificate_is_refused_as_a_trust_anchor, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_bundle_of_two_cas_trusts_both_for_rotation, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_private_key_is_written_0600_and_never_overwritten,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_private_key_readable_by_others_is_refused, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_key_of_the_wrong_type_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pem_parser_refuses_wrong_type_truncation_and_extras,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_fingerprint_text_forms, setup, teardown),
        cmocka_unit_test_setup_teardown(test_signature_verifies_only_for_the_exact_bytes_and_ca,
                                        setup, teardown),
        cmocka_unit_test(test_z85_round_trip_and_rejects_bad_text),
        cmocka_unit_test_setup_teardown(test_invalid_names_and_days_are_refused, setup, teardown),
    };
    return cmocka_run_group_tests_name("pki", tests, NULL, NULL);
}
