/*
 * Unit tests for roster: parsing with positions, checking against trust,
 * admission decisions, editing, and detached signatures.
 */
#include "testutil.h"

#include "pki/cert.h"
#include "pki/key.h"
#include "pki/trust.h"
#include "roster/roster.h"
#include "util/mem.h"

#include <time.h>

#define NODES 3

typedef struct {
    EVP_PKEY *ca_key;
    X509 *ca;
    cohort_trust_t *trust;
    EVP_PKEY *keys[NODES];
    X509 *certs[NODES];
    char *dir;
} fixture_t;

static const char *const s_names[NODES] = {"alpha", "beta", "gamma"};

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof *f);
    cohort_err_t err;
    f->ca_key = cohort_key_generate(COHORT_KEY_ED25519);
    assert_int_equal(cohort_cert_create_ca("demo", f->ca_key, 30, &f->ca, &err), 0);
    f->trust = cohort_trust_new();
    assert_int_equal(cohort_trust_add(f->trust, f->ca, "ca", &err), 0);
    for (int i = 0; i < NODES; i++) {
        f->keys[i] = cohort_key_generate(COHORT_KEY_X25519);
        assert_int_equal(
            cohort_cert_issue(f->ca, f->ca_key, s_names[i], f->keys[i], 10, &f->certs[i], &err), 0);
    }
    f->dir = test_tmpdir();
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    for (int i = 0; i < NODES; i++) {
        EVP_PKEY_free(f->keys[i]);
        X509_free(f->certs[i]);
    }
    EVP_PKEY_free(f->ca_key);
    X509_free(f->ca);
    cohort_trust_destroy(&f->trust);
    test_rmdir(&f->dir);
    free(f);
    return 0;
}

/* A roster with all three nodes; alpha is relay+rendezvous at site hq. */
static cohort_roster_t *s_roster(fixture_t *f)
{
    cohort_roster_t *r = cohort_roster_new("demo");
    cohort_err_t err;
    const char *eps[] = {"tcp://127.0.0.1:7700", "tcp://[::1]:7700"};
    assert_int_equal(cohort_roster_add(r, "alpha", f->certs[0],
                                       COHORT_ROLE_RELAY | COHORT_ROLE_RENDEZVOUS, "hq", eps, 2,
                                       &err),
                     0);
    assert_int_equal(cohort_roster_add(r, "beta", f->certs[1], 0, "hq", NULL, 0, &err), 0);
    assert_int_equal(cohort_roster_add(r, "gamma", f->certs[2], 0, "plant", NULL, 0, &err), 0);
    return r;
}

static char *s_emit(cohort_roster_t *r)
{
    char *text = NULL;
    size_t len = 0;
    cohort_err_t err;
    assert_int_equal(cohort_roster_emit(r, &text, &len, &err), 0);
    assert_int_equal(strlen(text), len);
    return text;
}

/* Parses text expecting failure; returns the error text (static). */
static const char *s_parse_error(const char *text)
{
    static cohort_err_t err;
    cohort_roster_t *r = NULL;
    assert_int_equal(cohort_roster_parse("r.yaml", text, strlen(text), &r, &err), -1);
    assert_null(r);
    return err.text;
}

static char *s_member_yaml(fixture_t *f, int i, const char *extra)
{
    char *pem = cohort_cert_to_pem(f->certs[i]);
    /* indent the PEM for a literal block */
    char *indented = cohort_malloc(strlen(pem) * 2 + 1);
    size_t o = 0;
    for (const char *p = pem; *p; p++) {
        if (p == pem || p[-1] == '\n')
            o += (size_t)sprintf(indented + o, "      ");
        indented[o++] = *p;
    }
    indented[o] = '\0';
    char *out =
        cohort_sprintf("  - name: %s\n%s    certificate: |\n%s", s_names[i], extra, indented);
    free(pem);
    free(indented);
    return out;
}

static void test_emitted_roster_parses_back_identically(void **state)
{
    fixture_t *f = *state;
    cohort_roster_t *r = s_roster(f);
    cohort_err_t err;
    assert_int_equal(cohort_roster_revoke(r, "gamma", "laptop stolen", &err), 0);
    char *text = s_emit(r);
    cohort_roster_t *back = NULL;
    assert_int_equal(cohort_roster_parse("r.yaml", text, strlen(text), &back, &err), 0);
    assert_string_equal(cohort_roster_cluster(back), "demo");
    assert_int_equal(cohort_roster_serial(back), 5);
    assert_int_equal(cohort_roster_member_count(back), 2);
    const cohort_member_t *a = cohort_roster_find(back, "alpha");
    assert_non_null(a);
    assert_int_equal(a->roles, COHORT_ROLE_RELAY | COHORT_ROLE_RENDEZVOUS);
    assert_string_equal(a->site, "hq");
    assert_int_equal(a->endpoint_count, 2);
    assert_string_equal(a->endpoints[1], "tcp://[::1]:7700");
    assert_int_equal(cohort_roster_revoked_count(back), 1);
    assert_string_equal(cohort_roster_revoked(back, 0)->reason, "laptop stolen");
    char *again = s_emit(back);
    assert_string_equal(text, again);
    free(text);
    free(again);
    cohort_roster_destroy(&r);
    cohort_roster_destroy(&back);
}

static void test_admission_follows_membership_revocation_and_validity(void **state)
{
    fixture_t *f = *state;
    cohort_roster_t *r = s_roster(f);
    cohort_err_t err;
    cohort_problems_t problems = {0};
    time_t now = time(NULL);
    assert_int_equal(cohort_roster_check(r, f->trust, now, &problems), 0);
    assert_int_equal(problems.count, 0);
    uint8_t key[COHORT_KEY_LEN];
    const cohort_member_t *m = NULL;
    cohort_key_raw_public(f->keys[1], key);
    assert_int_equal(cohort_roster_admit(r, key, now, &m), COHORT_ADMIT_OK);
    assert_string_equal(m->name, "beta");
    assert_int_equal(cohort_roster_admit(r, key, now + 20 * 86400, &m), COHORT_ADMIT_EXPIRED);
    assert_int_equal(cohort_roster_admit(r, key, now - 86400, &m), COHORT_ADMIT_NOT_YET_VALID);

    EVP_PKEY *stranger = cohort_key_generate(COHORT_KEY_X25519);
    cohort_key_raw_public(stranger, key);
    assert_int_equal(cohort_roster_admit(r, key, now, &m), COHORT_ADMIT_UNKNOWN);
    assert_null(m);
    EVP_PKEY_free(stranger);

    /* A revoked fingerprint still listed as a member: a warning, not admitted. */
    cohort_cert_info_t info;
    cohort_cert_describe(f->certs[2], &info);
    char *text = s_emit(r);
    char *with_revoked =
        cohort_sprintf("%s", text); /* replace the empty revoked list with one entry */
    char *pos = strstr(with_revoked, "revoked: []");
    assert_non_null(pos);
    *pos = '\0';
    char *doc = cohort_sprintf("%srevoked:\n- %s\n%s", with_revoked, info.fingerprint_hex,
                               pos + strlen("revoked: []\n"));
    cohort_roster_t *r2 = NULL;
    assert_int_equal(cohort_roster_parse("r.yaml", doc, strlen(doc), &r2, &err), 0);
    cohort_problems_fini(&problems);
    assert_int_equal(cohort_roster_check(r2, f->trust, now, &problems), 0);
    assert_int_equal(problems.count, 1);
    assert_false(problems.items[0].fatal);
    assert_non_null(strstr(problems.items[0].text, "member 'gamma': certificate"));
    assert_non_null(strstr(problems.items[0].text, "is revoked"));
    cohort_key_raw_public(f->keys[2], key);
    assert_int_equal(cohort_roster_admit(r2, key, now, &m), COHORT_ADMIT_REVOKED);
    cohort_problems_fini(&problems);
    free(text);
    free(with_revoked);
    free(doc);
    cohort_roster_destroy(&r);
    cohort_roster_destroy(&r2);
}

static void test_member_from_another_ca_makes_the_roster_unusable(void **state)
{
    fixture_t *f = *state;
    cohort_err_t err;
    EVP_PKEY *other_key = cohort_key_generate(COHORT_KEY_ED25519);
    X509 *other_ca = NULL, *intruder = NULL;
    assert_int_equal(cohort_cert_create_ca("evil", other_key, 30, &other_ca, &err), 0);
    EVP_PKEY *k = cohort_key_generate(COHORT_KEY_X25519);
    assert_int_equal(cohort_cert_issue(other_ca, other_key, "mallory", k, 5, &intruder, &err), 0);
    cohort_roster_t *r = s_roster(f);
    assert_int_equal(cohort_roster_add(r, "mallory", intruder, 0, "", NULL, 0, &err), 0);
    char *text = s_emit(r);
    cohort_roster_t *parsed = NULL;
    assert_int_equal(cohort_roster_parse("r.yaml", text, strlen(text), &parsed, &err), 0);
    cohort_problems_t problems = {0};
    assert_int_equal(cohort_roster_check(parsed, f->trust, time(NULL), &problems), -1);
    assert_int_equal(problems.fatal_count, 1);
    assert_non_null(strstr(problems.items[0].text, "member 'mallory'"));
    assert_non_null(strstr(problems.items[0].text, "does not chain to a trusted CA"));
    assert_non_null(strstr(problems.items[0].text, "r.yaml:"));
    assert_false(cohort_roster_is_checked(parsed));
    cohort_problems_fini(&problems);
    cohort_roster_destroy(&r);
    cohort_roster_destroy(&parsed);
    free(text);
    X509_free(other_ca);
    X509_free(intruder);
    EVP_PKEY_free(other_key);
    EVP_PKEY_free(k);
}

static void test_check_lists_every_duplicate_and_topology_problem(void **state)
{
    fixture_t *f = *state;
    char *a = s_member_yaml(f, 0, "    roles: [relay]\n    site: hq\n");
    char *a_again = s_member_yaml(f, 0, "");
    char *b = s_member_yaml(f, 1, "    site: nowhere\n");
    char *doc = cohort_sprintf("cluster: demo\nserial: 4\nmembers:\n%s%s%s"
                               "topology:\n  sites:\n  - name: hq\n    relays: [alpha, ghost]\n"
                               "    rendezvous: [alpha]\n"
                               "  policies:\n  - never_relay_between: [hq, mars]\n",
                               a, a_again, b);
    cohort_roster_t *r = NULL;
    cohort_err_t err;
    assert_int_equal(cohort_roster_parse("r.yaml", doc, strlen(doc), &r, &err), 0);
    cohort_problems_t problems = {0};
    assert_int_equal(cohort_roster_check(r, f->trust, time(NULL), &problems), -1);
    const char *expect[] = {
        "duplicate name",
        "duplicate public key",
        "duplicate certificate",
        "relay 'ghost' is not a member",
        "member 'alpha' is listed as rendezvous but lacks that role",
        "member 'beta': site 'nowhere' is not in topology.sites",
        "never_relay_between names unknown site 'mars'",
    };
    for (size_t e = 0; e < sizeof expect / sizeof expect[0]; e++) {
        bool found = false;
        for (size_t i = 0; i < problems.count; i++)
            if (strstr(problems.items[i].text, expect[e]))
                found = true;
        if (!found)
            fail_msg("no problem mentions '%s'", expect[e]);
    }
    assert_int_equal(problems.fatal_count, problems.count);
    assert_int_equal(problems.count, sizeof expect / sizeof expect[0]);
    cohort_problems_fini(&problems);
    cohort_roster_destroy(&r);
    free(a);
    free(a_again);
    free(b);
    free(doc);
}

static void test_parse_errors_name_the_place_and_the_value(void **state)
{
    fixture_t *f = *state;
    assert_string_equal(s_parse_error(""), "r.yaml: roster is empty");
    assert_string_equal(s_parse_error("serial: 1\n"),
                        "r.yaml:1:1: roster: required key 'cluster' is missing");
    assert_string_equal(s_parse_error("cluster: demo\nserial: 0\n"),
                        "r.yaml:2:9: serial: must be a whole number from 1 to "
                        "18446744073709551615, got '0'");
    assert_string_equal(s_parse_error("cluster: demo\nserial: -3\n"),
                        "r.yaml:2:9: serial: must be a whole number from 1 to "
                        "18446744073709551615, got '-3'");
    assert_string_equal(s_parse_error("cluster: demo\nserial: 99999999999999999999\n"),
                        "r.yaml:2:9: serial: must be a whole number from 1 to "
                        "18446744073709551615, got '99999999999999999999'");
    assert_string_equal(s_parse_error("cluster: demo\nserial: 1\ncolour: red\n"),
                        "r.yaml:3:1: roster: unknown key 'colour' (known: cluster, serial, "
                        "members, revoked, topology)");
    assert_string_equal(s_parse_error("cluster: demo\nserial: 1\nserial: 2\n"),
                        "r.yaml:3:1: roster: duplicate key 'serial'");
    assert_string_equal(s_parse_error("cluster: [a]\nserial: 1\n"),
                        "r.yaml:1:10: cluster: expected a scalar, got a list");
    assert_string_equal(s_parse_error("cluster: demo\nserial: 1\nmembers: {}\n"),
                        "r.yaml:3:10: members: expected a list, got a mapping");
    assert_string_equal(s_parse_error("cluster: demo\nserial: 1\nrevoked: [zz]\n"),
                        "r.yaml:3:11: revoked[0].fingerprint: must be a SHA-256 fingerprint (64 "
                        "hex digits), got 'zz'");
    assert_string_equal(s_parse_error("cluster: demo\nserial: 1\nmembers: [&a {name: x}, *a]\n"),
                        "r.yaml:3:25: aliases (*name) are not supported");
    assert_string_equal(s_parse_error("cluster: demo\nserial: 1\n---\ncluster: x\n"),
                        "r.yaml:3:1: only one YAML document is allowed");
    const char *bad_yaml = "cluster: demo\nserial: [1\n";
    assert_non_null(strstr(s_parse_error(bad_yaml), "r.yaml:3:1: invalid YAML:"));

    char *role = s_member_yaml(f, 0, "    roles: [relay, janitor]\n");
    char *doc = cohort_sprintf("cluster: demo\nserial: 1\nmembers:\n%s", role);
    assert_string_equal(s_parse_error(doc),
                        "r.yaml:5:20: members[0].roles: unknown role 'janitor' (known roles: "
                        "relay, rendezvous)");
    free(role);
    free(doc);

    char *ep = s_member_yaml(f, 0, "    endpoints: ['udp://x:1']\n");
    doc = cohort_sprintf("cluster: demo\nserial: 1\nmembers:\n%s", ep);
    assert_string_equal(s_parse_error(doc), "r.yaml:5:17: members[0].endpoints[0]: must be "
                                            "tcp://HOST:PORT, got 'udp://x:1'");
    free(ep);
    free(doc);

    doc = cohort_sprintf("cluster: demo\nserial: 1\nmembers:\n  - name: n1\n    certificate: "
                         "|\n      -----BEGIN PRIVATE KEY-----\n      AAAA\n      -----END "
                         "PRIVATE KEY-----\n");
    assert_string_equal(s_parse_error(doc), "r.yaml:5:18: members[0].certificate: expected a "
                                            "CERTIFICATE, got a PEM 'PRIVATE KEY' block");
    free(doc);

    doc = cohort_sprintf("cluster: demo\nserial: 1\nmembers:\n  - name: \"a\\x01b\"\n");
    assert_string_equal(s_parse_error(doc),
                        "r.yaml:4:11: members[0].name: must be 1..63 characters of A-Z a-z 0-9 "
                        ". _ - starting with a letter or digit, got 'a\\x01b'");
    free(doc);
    doc = cohort_sprintf("cluster: demo\nserial: 1\nmembers:\n  - name: n1\n");
    assert_string_equal(s_parse_error(doc),
                        "r.yaml:4:5: members[0]: required key 'certificate' is missing");
    free(doc);
}

static void test_edits_bump_the_serial_and_refuse_conflicts(void **state)
{
    fixture_t *f = *state;
    cohort_roster_t *r = s_roster(f);
    cohort_err_t err;
    assert_int_equal(cohort_roster_serial(r), 4);
    assert_int_equal(cohort_roster_add(r, "beta", f->certs[1], 0, "", NULL, 0, &err), -1);
    assert_string_equal(err.text, "member 'beta' already exists");
    assert_int_equal(cohort_roster_add(r, "delta", f->certs[1], 0, "", NULL, 0, &err), -1);
    assert_string_equal(err.text, "certificate is for 'beta' (its CN), not 'delta'");
    assert_int_equal(cohort_roster_set_roles(r, "beta", COHORT_ROLE_RELAY, &err), 0);
    assert_int_equal(cohort_roster_set_site(r, "beta", "plant", &err), 0);
    const char *eps[] = {"tcp://10.0.0.1:7700"};
    assert_int_equal(cohort_roster_set_endpoints(r, "beta", eps, 1, &err), 0);
    assert_int_equal(cohort_roster_serial(r), 7);
    const char *bad[] = {"tcp://host:0"};
    assert_int_equal(cohort_roster_set_endpoints(r, "beta", bad, 1, &err), -1);
    assert_string_equal(err.text, "endpoint: must be tcp://HOST:PORT, got 'tcp://host:0'");
    assert_int_equal(cohort_roster_remove(r, "nobody", &err), -1);
    assert_string_equal(err.text, "no member named 'nobody' in cluster 'demo'");
    assert_int_equal(cohort_roster_serial(r), 7);

    /* Revoking removes the member, lists its fingerprint and is one change. */
    assert_int_equal(cohort_roster_revoke(r, "beta", NULL, &err), 0);
    assert_int_equal(cohort_roster_serial(r), 8);
    assert_null(cohort_roster_find(r, "beta"));
    cohort_cert_info_t info;
    cohort_cert_describe(f->certs[1], &info);
    assert_true(cohort_roster_is_revoked(r, info.fingerprint));
    assert_string_equal(cohort_roster_revoked(r, 0)->name, "beta");
    assert_int_equal(cohort_roster_revoke(r, info.fingerprint_hex, NULL, &err), -1);
    assert_string_equal(err.text, "certificate is already revoked");
    /* A revoked certificate cannot be added back. */
    assert_int_equal(cohort_roster_add(r, "beta", f->certs[1], 0, "", NULL, 0, &err), -1);
    assert_non_null(strstr(err.text, "is revoked; issue a new one"));
    assert_int_equal(cohort_roster_revoke(r, "zz", NULL, &err), -1);
    cohort_roster_destroy(&r);
}

static void test_signature_file_covers_the_exact_bytes(void **state)
{
    fixture_t *f = *state;
    cohort_roster_t *r = s_roster(f);
    char *text = s_emit(r);
    cohort_err_t err;
    char *sig = NULL;
    assert_int_equal(cohort_roster_sign(text, strlen(text), f->ca_key, f->ca, &sig, &err), 0);
    assert_int_equal(
        cohort_roster_verify_sig(text, strlen(text), "r.sig", sig, strlen(sig), f->trust, &err), 0);
    /* One changed byte anywhere: refused. */
    text[strlen(text) - 2] ^= 1;
    assert_int_equal(
        cohort_roster_verify_sig(text, strlen(text), "r.sig", sig, strlen(sig), f->trust, &err),
        -1);
    assert_non_null(strstr(err.text, "r.sig: signer "));
    assert_non_null(strstr(err.text, "signature does not verify"));
    text[strlen(text) - 2] ^= 1;
    const char *garbage = "algorithm: ed25519\nsignature: AAAA\n";
    assert_int_equal(cohort_roster_verify_sig(text, strlen(text), "r.sig", garbage, strlen(garbage),
                                              f->trust, &err),
                     -1);
    assert_string_equal(err.text, "r.sig: signature: expected 88 base64 characters, got 4");
    const char *rsa = "algorithm: rsa\nsignature: x\n";
    assert_int_equal(
        cohort_roster_verify_sig(text, strlen(text), "r.sig", rsa, strlen(rsa), f->trust, &err),
        -1);
    assert_string_equal(err.text, "r.sig: algorithm: only 'ed25519' is supported, got 'rsa'");
    free(sig);
    free(text);
    cohort_roster_destroy(&r);
}

static void test_load_signed_refuses_unsigned_and_accepts_signed(void **state)
{
    fixture_t *f = *state;
    cohort_roster_t *r = s_roster(f);
    cohort_err_t err;
    char *text = s_emit(r), *sig = NULL;
    char *path = test_write(f->dir, "roster.yaml", text, 0644);
    char *sig_path = cohort_sprintf("%s.sig", path);
    cohort_roster_t *loaded = NULL;
    assert_int_equal(
        cohort_roster_load_signed(path, sig_path, f->trust, time(NULL), &loaded, NULL, &err), -1);
    assert_non_null(strstr(err.text, "roster signature: "));
    assert_non_null(strstr(err.text, "cannot open"));
    assert_int_equal(cohort_roster_sign(text, strlen(text), f->ca_key, f->ca, &sig, &err), 0);
    free(test_write(f->dir, "roster.yaml.sig", sig, 0644));
    assert_int_equal(
        cohort_roster_load_signed(path, sig_path, f->trust, time(NULL), &loaded, NULL, &err), 0);
    assert_true(cohort_roster_is_checked(loaded));
    assert_int_equal(cohort_roster_member_count(loaded), 3);
    cohort_roster_destroy(&loaded);
    free(text);
    free(sig);
    free(path);
    free(sig_path);
    cohort_roster_destroy(&r);
}

static void test_roles_and_endpoints_text(void **state)
{
    (void)state;
    unsigned roles = 0;
    cohort_err_t err;
    char out[64];
    assert_int_equal(cohort_roles_parse("rendezvous,relay", &roles, &err), 0);
    assert_string_equal(cohort_roles_text(roles, out, sizeof out), "relay,rendezvous");
    assert_int_equal(cohort_roles_parse("none", &roles, &err), 0);
    assert_string_equal(cohort_roles_text(roles, out, sizeof out), "none");
    assert_int_equal(cohort_roles_parse("relay,boss", &roles, &err), -1);
    assert_string_equal(err.text, "unknown role 'boss'; known roles: relay, rendezvous");
    assert_true(cohort_endpoint_valid("tcp://node-1.example:7700"));
    assert_true(cohort_endpoint_valid("tcp://[fe80::1]:1"));
    assert_false(cohort_endpoint_valid("tcp://:7700"));
    assert_false(cohort_endpoint_valid("tcp://host:65536"));
    assert_false(cohort_endpoint_valid("tcp://host:"));
    assert_false(cohort_endpoint_valid("tcp://[zz]:5"));
    assert_false(cohort_endpoint_valid("tcp://a b:5"));
    assert_false(cohort_endpoint_valid("ipc:///x"));
}

/* config/roster.example.yaml is documentation; this keeps it true. */
static void test_example_roster_in_config_parses_and_checks_clean(void **state)
{
    (void)state;
    char *path = test_src_path("config/roster.example.yaml");
    char *ca_path = test_src_path("config/roster.example.ca.crt");
    cohort_err_t err;
    cohort_roster_t *r = NULL;
    cohort_trust_t *trust = cohort_trust_new();
    assert_int_equal(cohort_trust_add_file(trust, ca_path, &err), 0);
    if (cohort_roster_load(path, &r, &err) < 0)
        fail_msg("%s", err.text);
    cohort_problems_t problems = {0};
    /* at a fixed time inside every certificate's window */
    assert_int_equal(cohort_roster_check(r, trust, 1800000000, &problems), 0);
    for (size_t i = 0; i < problems.count; i++)
        print_message("%s\n", problems.items[i].text);
    assert_int_equal(problems.count, 0);
    assert_int_equal(cohort_roster_member_count(r), 4);
    assert_int_equal(cohort_roster_site_count(r), 3);
    assert_int_equal(cohort_roster_policy_count(r), 1);
    assert_int_equal(cohort_roster_revoked_count(r), 1);
    cohort_problems_fini(&problems);
    cohort_roster_destroy(&r);
    cohort_trust_destroy(&trust);
    free(path);
    free(ca_path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_emitted_roster_parses_back_identically, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_admission_follows_membership_revocation_and_validity,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_member_from_another_ca_makes_the_roster_unusable,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_check_lists_every_duplicate_and_topology_problem,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_parse_errors_name_the_place_and_the_value, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_edits_bump_the_serial_and_refuse_conflicts, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_signature_file_covers_the_exact_bytes, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_load_signed_refuses_unsigned_and_accepts_signed, setup,
                                        teardown),
        cmocka_unit_test(test_roles_and_endpoints_text),
        cmocka_unit_test(test_example_roster_in_config_parses_and_checks_clean),
    };
    return cmocka_run_group_tests_name("roster", tests, NULL, NULL);
}
