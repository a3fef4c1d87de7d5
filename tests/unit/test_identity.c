/*
 * Unit tests for node/identity: everything a node checks about itself
 * before it may join, on real files in a throwaway directory.
 */
#include "testutil.h"

#include "config/config.h"
#include "node/identity.h"
#include "pki/cert.h"
#include "pki/key.h"
#include "roster/roster.h"
#include "util/fs.h"
#include "util/mem.h"

#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

typedef struct {
    char *dir;
    EVP_PKEY *ca_key;
    X509 *ca;
    EVP_PKEY *keys[2];
    X509 *certs[2];
    cohort_config_t *cfg;
} fixture_t;

static char *s_path(fixture_t *f, const char *name)
{
    return cohort_sprintf("%s/%s", f->dir, name);
}

/* Writes a roster holding the given members at serial >= min_serial, signed
 * by the fixture CA, to dir/name (+ .sig). */
static void s_write_roster(fixture_t *f, const char *name, int members, uint64_t min_serial,
                           bool revoke_first)
{
    cohort_err_t err;
    cohort_roster_t *r = cohort_roster_new("test");
    static const char *const names[] = {"self", "other"};
    for (int i = 0; i < members; i++)
        assert_int_equal(cohort_roster_add(r, names[i], f->certs[i], 0, "", NULL, 0, &err), 0);
    if (revoke_first)
        assert_int_equal(cohort_roster_revoke(r, "self", "test", &err), 0);
    while (cohort_roster_serial(r) < min_serial)
        assert_int_equal(cohort_roster_set_site(r, names[0], "s", &err) == 0 ||
                             cohort_roster_set_site(r, names[1], "s", &err) == 0,
                         1);
    char *path = s_path(f, name), *text = NULL, *sig = NULL, *sig_path = NULL;
    size_t len = 0;
    assert_int_equal(cohort_roster_emit(r, &text, &len, &err), 0);
    assert_int_equal(cohort_fs_write_atomic(path, text, len, 0644, &err), 0);
    assert_int_equal(cohort_roster_sign(text, len, f->ca_key, f->ca, &sig, &err), 0);
    sig_path = cohort_sprintf("%s.sig", path);
    assert_int_equal(cohort_fs_write_atomic(sig_path, sig, strlen(sig), 0644, &err), 0);
    free(path);
    free(text);
    free(sig);
    free(sig_path);
    cohort_roster_destroy(&r);
}

static void s_load_config(fixture_t *f)
{
    cohort_err_t err;
    cohort_config_destroy(&f->cfg);
    const char *yaml = "node:\n  name: self\n  state_dir: state\n"
                       "trust:\n  ca: [ca.crt]\n";
    char *path = test_write(f->dir, "node.yaml", yaml, 0644);
    if (cohort_config_load(path, &f->cfg, &err) < 0)
        fail_msg("%s", err.text);
    free(path);
}

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof *f);
    cohort_err_t err;
    f->dir = test_tmpdir();
    f->ca_key = cohort_key_generate(COHORT_KEY_ED25519);
    assert_int_equal(cohort_cert_create_ca("testca", f->ca_key, 30, &f->ca, &err), 0);
    static const char *const names[] = {"self", "other"};
    for (int i = 0; i < 2; i++) {
        f->keys[i] = cohort_key_generate(COHORT_KEY_X25519);
        assert_int_equal(
            cohort_cert_issue(f->ca, f->ca_key, names[i], f->keys[i], 10, &f->certs[i], &err), 0);
    }
    char *p = s_path(f, "ca.crt");
    assert_int_equal(cohort_cert_save(p, f->ca, &err), 0);
    free(p);
    p = s_path(f, "node.crt");
    assert_int_equal(cohort_cert_save(p, f->certs[0], &err), 0);
    free(p);
    p = s_path(f, "node.key");
    assert_int_equal(cohort_key_save_private(p, f->keys[0], false, &err), 0);
    free(p);
    p = s_path(f, "state");
    assert_int_equal(cohort_fs_mkdir_p(p, 0700, &err), 0);
    free(p);
    s_write_roster(f, "roster.yaml", 2, 1, false);
    s_load_config(f);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    for (int i = 0; i < 2; i++) {
        EVP_PKEY_free(f->keys[i]);
        X509_free(f->certs[i]);
    }
    EVP_PKEY_free(f->ca_key);
    X509_free(f->ca);
    cohort_config_destroy(&f->cfg);
    test_rmdir(&f->dir);
    free(f);
    return 0;
}

/* Opens the identity expecting failure; returns the error text (static). */
static const char *s_open_error(fixture_t *f)
{
    static cohort_err_t err;
    cohort_identity_t *id = NULL;
    assert_int_equal(cohort_identity_open(f->cfg, time(NULL), &id, &err), -1);
    assert_null(id);
    return err.text;
}

static void test_a_correct_node_opens_and_finds_itself_in_the_roster(void **state)
{
    fixture_t *f = *state;
    cohort_err_t err;
    cohort_identity_t *id = NULL;
    if (cohort_identity_open(f->cfg, time(NULL), &id, &err) < 0)
        fail_msg("%s", err.text);
    assert_string_equal(id->self_member->name, "self");
    assert_string_equal(id->info.name, "self");
    assert_int_equal(cohort_roster_member_count(id->roster), 2);
    assert_int_equal(id->held_serial, 0);
    cohort_identity_destroy(&id);
    assert_null(id);
}

static void test_key_readable_by_others_is_refused(void **state)
{
    fixture_t *f = *state;
    char *p = s_path(f, "node.key");
    chmod(p, 0640);
    assert_non_null(strstr(s_open_error(f), "accessible by group or others (mode 0640)"));
    /* any access at all by group or others, not only reading */
    static const unsigned modes[] = {0604, 0620, 0602, 0610, 0601, 0660, 0666};
    for (size_t i = 0; i < sizeof modes / sizeof *modes; i++) {
        chmod(p, modes[i]);
        char want[64];
        snprintf(want, sizeof want, "accessible by group or others (mode %04o)", modes[i]);
        const char *got = s_open_error(f);
        if (!strstr(got, want))
            fail_msg("mode %04o: %s", modes[i], got);
    }
    /* a key only its owner can read (or read and write) opens */
    static const unsigned fine[] = {0400, 0600};
    for (size_t i = 0; i < sizeof fine / sizeof *fine; i++) {
        chmod(p, fine[i]);
        cohort_err_t err;
        cohort_identity_t *id = NULL;
        if (cohort_identity_open(f->cfg, time(NULL), &id, &err) < 0)
            fail_msg("mode %04o: %s", fine[i], err.text);
        cohort_identity_destroy(&id);
    }
    free(p);
}

static void test_certificate_of_another_key_is_refused(void **state)
{
    fixture_t *f = *state;
    cohort_err_t err;
    char *p = s_path(f, "node.crt");
    assert_int_equal(cohort_cert_save(p, f->certs[1], &err), 0);
    assert_non_null(strstr(s_open_error(f), "certificate does not match the private key"));
    free(p);
}

static void test_node_missing_from_the_roster_is_refused(void **state)
{
    fixture_t *f = *state;
    /* a roster holding only 'self' is fine; one holding only 'other' is not */
    cohort_err_t err;
    cohort_roster_t *r = cohort_roster_new("test");
    assert_int_equal(cohort_roster_add(r, "other", f->certs[1], 0, "", NULL, 0, &err), 0);
    char *text = NULL, *sig = NULL, *path = s_path(f, "roster.yaml"), *sp = NULL;
    size_t len = 0;
    assert_int_equal(cohort_roster_emit(r, &text, &len, &err), 0);
    assert_int_equal(cohort_fs_write_atomic(path, text, len, 0644, &err), 0);
    assert_int_equal(cohort_roster_sign(text, len, f->ca_key, f->ca, &sig, &err), 0);
    sp = cohort_sprintf("%s.sig", path);
    assert_int_equal(cohort_fs_write_atomic(sp, sig, strlen(sig), 0644, &err), 0);
    assert_non_null(strstr(s_open_error(f), "this node ('self', certificate sha256:"));
    assert_non_null(strstr(s_open_error(f), "is not a member of cluster 'test'"));
    free(text);
    free(sig);
    free(path);
    free(sp);
    cohort_roster_destroy(&r);
}

static void test_revoked_node_is_refused(void **state)
{
    fixture_t *f = *state;
    s_write_roster(f, "roster.yaml", 2, 1, true);
    assert_non_null(strstr(s_open_error(f), "this node's certificate (sha256:"));
    assert_non_null(strstr(s_open_error(f), ") has been revoked"));
}

static void test_tampered_roster_is_refused(void **state)
{
    fixture_t *f = *state;
    char *p = s_path(f, "roster.yaml");
    FILE *fp = fopen(p, "a");
    fputs("# appended after signing\n", fp);
    fclose(fp);
    assert_non_null(strstr(s_open_error(f), "signature does not verify"));
    free(p);
}

static void test_held_roster_newer_than_the_configured_one_is_used(void **state)
{
    fixture_t *f = *state;
    /* serial 9 was accepted earlier (pushed or spread by peers) and held;
     * trust.roster still names serial 3: the node never goes back. */
    s_write_roster(f, "state/roster.yaml", 2, 9, false);
    cohort_err_t err;
    cohort_identity_t *id = NULL;
    if (cohort_identity_open(f->cfg, time(NULL), &id, &err) < 0)
        fail_msg("%s", err.text);
    assert_int_equal(cohort_roster_serial(id->roster), 9);
    assert_int_equal(id->held_serial, 9);
    assert_int_equal(id->configured_serial, 3);
    assert_non_null(strstr(id->roster_path, "/state/roster.yaml"));
    char *held = NULL;
    size_t len = 0;
    char *p = s_path(f, "state/roster.yaml");
    assert_int_equal(cohort_fs_read(p, COHORT_ROSTER_FILE_MAX, &held, &len, &err), 0);
    assert_int_equal(len, id->roster_len);
    assert_memory_equal(held, id->roster_text, len);
    free(held);
    free(p);
    cohort_identity_destroy(&id);
    /* The same serial with other contents could undo a revocation. */
    s_write_roster(f, "roster.yaml", 1, 9, false);
    assert_non_null(strstr(s_open_error(f), "serial 9 equals the serial held in"));
    /* The very roster the node holds is fine (emission and Ed25519
     * signatures are deterministic, so this rewrites identical bytes). */
    s_write_roster(f, "roster.yaml", 2, 9, false);
    assert_int_equal(cohort_identity_open(f->cfg, time(NULL), &id, &err), 0);
    assert_int_equal(id->held_serial, 9);
    cohort_identity_destroy(&id);
}

static void test_held_roster_that_does_not_verify_is_ignored(void **state)
{
    fixture_t *f = *state;
    s_write_roster(f, "state/roster.yaml", 2, 9, false);
    char *p = s_path(f, "state/roster.yaml");
    FILE *fp = fopen(p, "a");
    fputs("# changed after signing\n", fp);
    fclose(fp);
    free(p);
    cohort_err_t err;
    cohort_identity_t *id = NULL;
    assert_int_equal(cohort_identity_open(f->cfg, time(NULL), &id, &err), 0);
    assert_int_equal(cohort_roster_serial(id->roster), 3);
    assert_int_equal(id->held_serial, 0);
    cohort_identity_destroy(&id);
}

static void test_hold_writes_the_pair_and_an_interrupted_hold_is_finished_at_open(void **state)
{
    fixture_t *f = *state;
    cohort_err_t err;
    cohort_identity_t *id = NULL;
    assert_int_equal(cohort_identity_open(f->cfg, time(NULL), &id, &err), 0);
    /* a newer roster, held through the identity */
    s_write_roster(f, "newer.yaml", 2, 7, false);
    char *text = NULL, *sig = NULL, *p = s_path(f, "newer.yaml"), *sp = s_path(f, "newer.yaml.sig");
    size_t len = 0, sig_len = 0;
    assert_int_equal(cohort_fs_read(p, COHORT_ROSTER_FILE_MAX, &text, &len, &err), 0);
    assert_int_equal(cohort_fs_read(sp, COHORT_ROSTER_SIG_FILE_MAX, &sig, &sig_len, &err), 0);
    char *state_dir = s_path(f, "state");
    assert_int_equal(cohort_identity_hold(id, state_dir, text, len, sig, sig_len, &err), 0);
    cohort_identity_destroy(&id);
    char *next = s_path(f, "state/roster.yaml.next");
    assert_false(cohort_fs_exists(next));
    assert_int_equal(cohort_identity_open(f->cfg, time(NULL), &id, &err), 0);
    assert_int_equal(cohort_roster_serial(id->roster), 7);
    cohort_identity_destroy(&id);
    /* A crash between writing the next pair and copying it over: the held
     * pair is old (serial 7), the next pair new (serial 8); the new one
     * wins, and a mismatched pair is never taken. */
    s_write_roster(f, "state/roster.yaml.next", 2, 8, false);
    assert_int_equal(cohort_identity_open(f->cfg, time(NULL), &id, &err), 0);
    assert_int_equal(cohort_roster_serial(id->roster), 8);
    cohort_identity_destroy(&id);
    char *held_sig = s_path(f, "state/roster.yaml.sig");
    assert_int_equal(unlink(next), 0);
    s_write_roster(f, "state/roster.yaml", 2, 9, false);
    assert_int_equal(cohort_fs_write_atomic(held_sig, sig, sig_len, 0644, &err), 0);
    assert_int_equal(cohort_identity_open(f->cfg, time(NULL), &id, &err), 0);
    assert_int_equal(cohort_roster_serial(id->roster), 3); /* configured: the held pair is mixed */
    cohort_identity_destroy(&id);
    free(text);
    free(sig);
    free(p);
    free(sp);
    free(state_dir);
    free(next);
    free(held_sig);
}

static void test_expired_node_certificate_is_refused(void **state)
{
    fixture_t *f = *state;
    cohort_identity_t *id = NULL;
    cohort_err_t err;
    assert_int_equal(cohort_identity_open(f->cfg, time(NULL) + 11 * 86400, &id, &err), -1);
    assert_non_null(strstr(err.text, "node.crt: expired: certificate 'self' (or its CA) expired"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_key_readable_by_others_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_certificate_of_another_key_is_refused, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_node_missing_from_the_roster_is_refused, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_revoked_node_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tampered_roster_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_held_roster_newer_than_the_configured_one_is_used,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_held_roster_that_does_not_verify_is_ignored, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_hold_writes_the_pair_and_an_interrupted_hold_is_finished_at_open, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expired_node_certificate_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_correct_node_opens_and_finds_itself_in_the_roster,
                                        setup, teardown),
    };
    return cmocka_run_group_tests_name("identity", tests, NULL, NULL);
}
