/*
 * identity: loading and cross-checking a node's key, certificate, trust and
 * roster. See identity.h.
 */
#include "node/identity.h"
#include "util/fs.h"
#include "util/mem.h"

#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void cohort_identity_destroy(cohort_identity_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    cohort_identity_t *self = *self_p;
    EVP_PKEY_free(self->key);
    X509_free(self->cert);
    cohort_trust_destroy(&self->trust);
    cohort_roster_destroy(&self->roster);
    cohort_problems_fini(&self->warnings);
    free(self->roster_text);
    free(self->roster_sig);
    free(self->roster_path);
    free(self);
    *self_p = NULL;
}

/* A signed roster read from disk, with its bytes. */
typedef struct {
    cohort_roster_t *roster;
    cohort_problems_t warnings;
    char *text, *sig, *path;
    size_t len, sig_len;
} s_loaded_t;

static void s_loaded_fini(s_loaded_t *l)
{
    cohort_roster_destroy(&l->roster);
    cohort_problems_fini(&l->warnings);
    free(l->text);
    free(l->sig);
    free(l->path);
    memset(l, 0, sizeof *l);
}

static int s_load(const char *path, const char *sig_path, const cohort_trust_t *trust, time_t now,
                  s_loaded_t *out, cohort_err_t *err)
{
    memset(out, 0, sizeof *out);
    if (cohort_fs_read(path, COHORT_ROSTER_FILE_MAX, &out->text, &out->len, err) < 0)
        goto fail;
    if (cohort_fs_read(sig_path, COHORT_ROSTER_SIG_FILE_MAX, &out->sig, &out->sig_len, err) < 0) {
        cohort_err_prefix(err, "roster signature");
        goto fail;
    }
    if (out->sig_len == 0) {
        /* the signature file's parser explains an empty file best */
        cohort_roster_verify_sig(out->text, out->len, sig_path, out->sig, 0, trust, err);
        goto fail;
    }
    if (cohort_roster_accept(path, out->text, out->len, sig_path, out->sig, out->sig_len, trust,
                             now, &out->roster, &out->warnings, NULL, err) < 0)
        goto fail;
    out->path = cohort_strdup(path);
    return 0;
fail:
    s_loaded_fini(out);
    return -1;
}

/* The held roster: of the pair in place and a next pair left by an
 * interrupted cohort_identity_hold, the valid one with the higher serial.
 * An unreadable or unsigned held roster is no reason to refuse the
 * configured one; it will simply be replaced. Returns 0 if one was found. */
static int s_load_held(const char *state_dir, const cohort_trust_t *trust, time_t now,
                       s_loaded_t *out)
{
    static const char *const names[] = {COHORT_IDENTITY_HELD_ROSTER, COHORT_IDENTITY_NEXT_ROSTER};
    memset(out, 0, sizeof *out);
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char *path = cohort_sprintf("%s/%s", state_dir, names[i]);
        char *sig_path = cohort_sprintf("%s.sig", path);
        s_loaded_t l;
        cohort_err_t ignore;
        if (cohort_fs_exists(path) && s_load(path, sig_path, trust, now, &l, &ignore) == 0) {
            if (!out->roster ||
                cohort_roster_serial(l.roster) > cohort_roster_serial(out->roster)) {
                s_loaded_fini(out);
                *out = l;
            } else {
                s_loaded_fini(&l);
            }
        }
        free(path);
        free(sig_path);
    }
    return out->roster ? 0 : -1;
}

/* Chooses between the configured roster (in *use) and the held one: a node
 * never goes back to an older roster (revocations would come undone). */
static int s_check_held(cohort_identity_t *self, const cohort_config_t *cfg, time_t now,
                        s_loaded_t *use, cohort_err_t *err)
{
    s_loaded_t held;
    int rc = 0;
    if (s_load_held(cfg->state_dir, self->trust, now, &held) < 0)
        return 0;
    self->held_serial = cohort_roster_serial(held.roster);
    uint64_t serial = cohort_roster_serial(use->roster);
    if (serial < self->held_serial) {
        s_loaded_fini(use);
        *use = held;
        memset(&held, 0, sizeof held);
    } else if (serial == self->held_serial &&
               (use->len != held.len || memcmp(use->text, held.text, held.len) != 0)) {
        /* Two signed rosters with one serial: accepting the other one could
         * undo a revocation. Every change must bump it. */
        rc = cohort_err_set(err,
                            "%s: serial %llu equals the serial held in %s but the contents "
                            "differ; a changed roster needs a higher serial",
                            cfg->roster, (unsigned long long)serial, held.path);
    }
    s_loaded_fini(&held);
    return rc;
}

int cohort_identity_hold(const cohort_identity_t *self, const char *state_dir, const char *roster,
                         size_t len, const char *sig, size_t sig_len, cohort_err_t *err)
{
    char *main_path = cohort_sprintf("%s/%s", state_dir, COHORT_IDENTITY_HELD_ROSTER);
    char *main_sig = cohort_sprintf("%s.sig", main_path);
    char *next_path = cohort_sprintf("%s/%s", state_dir, COHORT_IDENTITY_NEXT_ROSTER);
    char *next_sig = cohort_sprintf("%s.sig", next_path);
    int rc = -1;
    if (cohort_fs_mkdir_p(state_dir, 0700, err) < 0 ||
        cohort_fs_write_atomic(next_sig, sig, sig_len, 0644, err) < 0 ||
        cohort_fs_write_atomic(next_path, roster, len, 0644, err) < 0) {
        unlink(next_sig);
        goto out;
    }
    if (cohort_fs_write_atomic(main_sig, sig, sig_len, 0644, err) < 0 ||
        cohort_fs_write_atomic(main_path, roster, len, 0644, err) < 0) {
        /* Half way: hold the roster in use again, so a restart neither
         * takes the refused one nor finds a mismatched pair. */
        cohort_err_t ignore;
        if (self->roster_text && self->roster_sig &&
            cohort_fs_write_atomic(main_sig, self->roster_sig, self->roster_sig_len, 0644,
                                   &ignore) == 0)
            cohort_fs_write_atomic(main_path, self->roster_text, self->roster_len, 0644, &ignore);
        unlink(next_path);
        unlink(next_sig);
        goto out;
    }
    unlink(next_path);
    unlink(next_sig);
    rc = 0;
out:
    free(main_path);
    free(main_sig);
    free(next_path);
    free(next_sig);
    return rc;
}

int cohort_identity_open(const cohort_config_t *cfg, time_t now, cohort_identity_t **out,
                         cohort_err_t *err)
{
    cohort_identity_t *self = cohort_calloc(1, sizeof *self);
    self->trust = cohort_trust_new();
    int rc = -1;
    for (size_t i = 0; i < cfg->trust_ca_count; i++)
        if (cohort_trust_add_file(self->trust, cfg->trust_ca[i], err) < 0)
            goto out;
    if (cohort_key_load_private(cfg->identity_key, COHORT_KEY_X25519, &self->key, err) < 0 ||
        cohort_cert_load(cfg->identity_cert, &self->cert, err) < 0)
        goto out;
    cohort_cert_describe(self->cert, &self->info);

    uint8_t pub[COHORT_KEY_LEN];
    cohort_key_raw_public(self->key, pub);
    if (!self->info.key_is_x25519 || memcmp(pub, self->info.public_key, sizeof pub) != 0) {
        cohort_err_set(err, "%s: certificate does not match the private key %s", cfg->identity_cert,
                       cfg->identity_key);
        goto out;
    }
    if (strcmp(self->info.name, cfg->node_name) != 0) {
        cohort_err_set(err, "%s: certificate is for '%s', but node.name is '%s'",
                       cfg->identity_cert, self->info.name, cfg->node_name);
        goto out;
    }
    cohort_trust_status_t st = cohort_trust_check(self->trust, self->cert, now, err);
    if (st != COHORT_TRUST_OK) {
        cohort_err_prefix(err, "%s: %s", cfg->identity_cert, cohort_trust_status_name(st));
        goto out;
    }
    s_loaded_t use;
    if (s_load(cfg->roster, cfg->roster_sig, self->trust, now, &use, err) < 0)
        goto out;
    self->configured_serial = cohort_roster_serial(use.roster);
    if (s_check_held(self, cfg, now, &use, err) < 0) {
        s_loaded_fini(&use);
        goto out;
    }
    self->roster = use.roster;
    self->warnings = use.warnings;
    self->roster_text = use.text;
    self->roster_len = use.len;
    self->roster_sig = use.sig;
    self->roster_sig_len = use.sig_len;
    self->roster_path = use.path;
    const cohort_member_t *me = NULL;
    cohort_admit_t admit = cohort_roster_admit(self->roster, pub, now, &me);
    if (admit != COHORT_ADMIT_OK) {
        if (admit == COHORT_ADMIT_UNKNOWN &&
            cohort_roster_is_revoked(self->roster, self->info.fingerprint))
            cohort_err_set(err, "%s: this node's certificate (sha256:%s) has been revoked",
                           self->roster_path, self->info.fingerprint_hex);
        else if (admit == COHORT_ADMIT_UNKNOWN)
            cohort_err_set(err,
                           "%s: this node ('%s', certificate sha256:%s) is not a member of "
                           "cluster '%s'",
                           self->roster_path, cfg->node_name, self->info.fingerprint_hex,
                           cohort_roster_cluster(self->roster));
        else
            cohort_err_set(err, "%s: this node ('%s') is listed but not admitted: %s",
                           self->roster_path, cfg->node_name, cohort_admit_name(admit));
        goto out;
    }
    if (strcmp(me->name, cfg->node_name) != 0) {
        cohort_err_set(err, "%s: this node's key belongs to member '%s', but node.name is '%s'",
                       self->roster_path, me->name, cfg->node_name);
        goto out;
    }
    self->self_member = me;
    *out = self;
    self = NULL;
    rc = 0;
out:
    cohort_identity_destroy(&self);
    return rc;
}
