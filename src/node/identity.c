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
    free(self);
    *self_p = NULL;
}

static bool s_same_file(const char *a, const char *b)
{
    char *x = NULL, *y = NULL;
    size_t xl = 0, yl = 0;
    bool same = cohort_fs_read(a, COHORT_ROSTER_FILE_MAX, &x, &xl, NULL) == 0 &&
                cohort_fs_read(b, COHORT_ROSTER_FILE_MAX, &y, &yl, NULL) == 0 && xl == yl &&
                memcmp(x, y, xl) == 0;
    free(x);
    free(y);
    return same;
}

/* The roster a node already accepted earlier; a config pointing at an older
 * one must not roll the node back (revocations would come undone). */
static int s_check_held(cohort_identity_t *self, const cohort_config_t *cfg, time_t now,
                        cohort_err_t *err)
{
    char *held_path = cohort_sprintf("%s/%s", cfg->state_dir, COHORT_IDENTITY_HELD_ROSTER);
    char *held_sig = cohort_sprintf("%s.sig", held_path);
    cohort_roster_t *held = NULL;
    int rc = 0;
    if (cohort_fs_exists(held_path)) {
        cohort_err_t ignore;
        /* An unreadable or unsigned held roster is no reason to refuse the
         * configured one; it will simply be replaced. */
        if (cohort_roster_load_signed(held_path, held_sig, self->trust, now, &held, NULL,
                                      &ignore) == 0) {
            self->held_serial = cohort_roster_serial(held);
            uint64_t serial = cohort_roster_serial(self->roster);
            if (serial < self->held_serial)
                rc = cohort_err_set(err,
                                    "%s: serial %llu is lower than serial %llu already held in "
                                    "%s; a node never goes back to an older roster",
                                    cfg->roster, (unsigned long long)serial,
                                    (unsigned long long)self->held_serial, held_path);
            else if (serial == self->held_serial && !s_same_file(cfg->roster, held_path))
                /* Two signed rosters with one serial: accepting the other
                 * one could undo a revocation. Every change must bump it. */
                rc = cohort_err_set(err,
                                    "%s: serial %llu equals the serial held in %s but the "
                                    "contents differ; a changed roster needs a higher serial",
                                    cfg->roster, (unsigned long long)serial, held_path);
        }
    }
    cohort_roster_destroy(&held);
    free(held_path);
    free(held_sig);
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
    if (cohort_roster_load_signed(cfg->roster, cfg->roster_sig, self->trust, now, &self->roster,
                                  &self->warnings, err) < 0)
        goto out;
    if (s_check_held(self, cfg, now, err) < 0)
        goto out;
    const cohort_member_t *me = NULL;
    cohort_admit_t admit = cohort_roster_admit(self->roster, pub, now, &me);
    if (admit != COHORT_ADMIT_OK) {
        if (admit == COHORT_ADMIT_UNKNOWN &&
            cohort_roster_is_revoked(self->roster, self->info.fingerprint))
            cohort_err_set(err, "%s: this node's certificate (sha256:%s) has been revoked",
                           cfg->roster, self->info.fingerprint_hex);
        else if (admit == COHORT_ADMIT_UNKNOWN)
            cohort_err_set(err,
                           "%s: this node ('%s', certificate sha256:%s) is not a member of "
                           "cluster '%s'",
                           cfg->roster, cfg->node_name, self->info.fingerprint_hex,
                           cohort_roster_cluster(self->roster));
        else
            cohort_err_set(err, "%s: this node ('%s') is listed but not admitted: %s", cfg->roster,
                           cfg->node_name, cohort_admit_name(admit));
        goto out;
    }
    if (strcmp(me->name, cfg->node_name) != 0) {
        cohort_err_set(err, "%s: this node's key belongs to member '%s', but node.name is '%s'",
                       cfg->roster, me->name, cfg->node_name);
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
