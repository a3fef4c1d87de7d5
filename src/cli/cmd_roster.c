/*
 * cmd_roster: `cohortctl roster init|add|remove|revoke|set-role|set-site|
 * set-endpoints|show|sign|verify|push`.
 *
 * Every edit parses the roster, changes it, bumps the serial and writes it
 * back atomically. An edit makes the old signature worthless, so the stale
 * FILE.sig is removed and the admin is told to sign again: a node then
 * refuses the unsigned file instead of the admin wondering why.
 *
 * `roster push` hands a signed roster to a running node through its local
 * API (RosterPush); the node verifies, keeps and applies it and spreads it
 * to the cluster. Its answer is printed as it is: applied with the serial,
 * or refused with the reason code and why.
 */
#include "api/client.h"
#include "cli/cli.h"
#include "config/config.h"
#include "pki/trust.h"
#include "roster/roster.h"
#include "util/fs.h"
#include "util/mem.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define S_MAX_ENDPOINTS COHORT_ROSTER_MAX_ENDPOINTS

/* The options every editing command may take. */
typedef struct {
    const char *name, *cert, *site, *roles, *reason, *fingerprint;
    const char *endpoints[S_MAX_ENDPOINTS];
    size_t endpoint_count;
    bool site_set, roles_set;
    const char *file;
} s_edit_args_t;

static int s_parse_edit(const char *cmd, const char *usage, int argc, char **argv, s_edit_args_t *a)
{
    static const struct option opts[] = {{"name", required_argument, NULL, 'n'},
                                         {"cert", required_argument, NULL, 'c'},
                                         {"site", required_argument, NULL, 's'},
                                         {"role", required_argument, NULL, 'r'},
                                         {"roles", required_argument, NULL, 'r'},
                                         {"endpoint", required_argument, NULL, 'e'},
                                         {"reason", required_argument, NULL, 'R'},
                                         {"fingerprint", required_argument, NULL, 'f'},
                                         {NULL, 0, NULL, 0}};
    memset(a, 0, sizeof *a);
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'n':
            a->name = optarg;
            break;
        case 'c':
            a->cert = optarg;
            break;
        case 's':
            a->site = optarg;
            a->site_set = true;
            break;
        case 'r':
            a->roles = optarg;
            a->roles_set = true;
            break;
        case 'e':
            if (a->endpoint_count == S_MAX_ENDPOINTS)
                return cohort_cli_fail(COHORT_CLI_EXIT_USAGE, cmd, "at most %d --endpoint",
                                       S_MAX_ENDPOINTS);
            a->endpoints[a->endpoint_count++] = optarg;
            break;
        case 'R':
            a->reason = optarg;
            break;
        case 'f':
            a->fingerprint = optarg;
            break;
        default:
            return COHORT_CLI_EXIT_USAGE;
        }
    }
    if (optind != argc - 1)
        return cohort_cli_fail(COHORT_CLI_EXIT_USAGE, cmd, "usage: cohortctl %s %s", cmd, usage);
    a->file = argv[optind];
    return 0;
}

/* Saves an edited roster, drops the stale signature and says what happened. */
static int s_save(const char *cmd, cohort_roster_t *r, const char *file, const char *what)
{
    cohort_err_t err;
    cohort_err_clear(&err);
    if (cohort_roster_save(r, file, &err) < 0)
        return cohort_cli_err(cmd, &err);
    char *sig = cohort_sprintf("%s.sig", file);
    bool had_sig = unlink(sig) == 0;
    printf("%s: %s; serial is now %llu\n", file, what, (unsigned long long)cohort_roster_serial(r));
    printf("%s: %snot signed: run `cohortctl roster sign %s --ca CA_DIR`\n", file,
           had_sig ? "old signature removed; " : "", file);
    free(sig);
    return 0;
}

static int s_init(int argc, char **argv)
{
    const char *cmd = "roster init", *cluster = NULL;
    static const struct option opts[] = {{"cluster", required_argument, NULL, 'c'},
                                         {NULL, 0, NULL, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c != 'c')
            return COHORT_CLI_EXIT_USAGE;
        cluster = optarg;
    }
    if (!cluster || optind != argc - 1)
        return cohort_cli_fail(COHORT_CLI_EXIT_USAGE, cmd,
                               "usage: cohortctl roster init --cluster NAME FILE");
    const char *file = argv[optind];
    if (cohort_fs_exists(file))
        return cohort_cli_fail(COHORT_CLI_EXIT_FAIL, cmd,
                               "%s: already exists; refusing to replace a roster", file);
    /* Round-trip through the parser so the cluster name gets the same
     * checks as a hand-written file. */
    cohort_roster_t *r = cohort_roster_new(cluster);
    char *text = NULL;
    size_t len = 0;
    cohort_err_t err;
    cohort_err_clear(&err);
    cohort_roster_t *check = NULL;
    int rc = COHORT_CLI_EXIT_FAIL;
    if (cohort_roster_emit(r, &text, &len, &err) < 0 ||
        cohort_roster_parse("--cluster", text, len, &check, &err) < 0 ||
        cohort_fs_write_atomic(file, text, len, 0644, &err) < 0) {
        cohort_cli_err(cmd, &err);
        goto out;
    }
    printf("%s: roster for cluster '%s' created at serial 1\n", file, cluster);
    rc = 0;
out:
    free(text);
    cohort_roster_destroy(&r);
    cohort_roster_destroy(&check);
    return rc;
}

static int s_add(int argc, char **argv)
{
    const char *cmd = "roster add";
    s_edit_args_t a;
    int rc = s_parse_edit(cmd,
                          "FILE --name NODE --cert CERT [--roles relay,rendezvous] [--site "
                          "SITE] [--endpoint tcp://HOST:PORT]...",
                          argc, argv, &a);
    if (rc)
        return rc;
    if (!a.name || !a.cert)
        return cohort_cli_fail(COHORT_CLI_EXIT_USAGE, cmd, "--name and --cert are required");
    cohort_err_t err;
    cohort_err_clear(&err);
    cohort_roster_t *r = NULL;
    X509 *cert = NULL;
    unsigned roles = 0;
    rc = COHORT_CLI_EXIT_FAIL;
    if (cohort_roles_parse(a.roles ? a.roles : "", &roles, &err) < 0 ||
        cohort_cert_load(a.cert, &cert, &err) < 0 || cohort_roster_load(a.file, &r, &err) < 0 ||
        cohort_roster_add(r, a.name, cert, roles, a.site, a.endpoints, a.endpoint_count, &err) <
            0) {
        cohort_cli_err(cmd, &err);
        goto out;
    }
    char what[128];
    snprintf(what, sizeof what, "member '%s' added", a.name);
    rc = s_save(cmd, r, a.file, what);
out:
    X509_free(cert);
    cohort_roster_destroy(&r);
    return rc;
}

/* remove, revoke, set-role, set-site and set-endpoints share one shape. */
typedef enum { S_REMOVE, S_REVOKE, S_SET_ROLE, S_SET_SITE, S_SET_ENDPOINTS } s_edit_t;

static int s_edit(s_edit_t kind, const char *cmd, const char *usage, int argc, char **argv)
{
    s_edit_args_t a;
    int rc = s_parse_edit(cmd, usage, argc, argv, &a);
    if (rc)
        return rc;
    const char *target = kind == S_REVOKE && a.fingerprint ? a.fingerprint : a.name;
    if (!target || (kind == S_SET_ROLE && !a.roles_set) || (kind == S_SET_SITE && !a.site_set))
        return cohort_cli_fail(COHORT_CLI_EXIT_USAGE, cmd, "usage: cohortctl %s %s", cmd, usage);
    cohort_err_t err;
    cohort_err_clear(&err);
    cohort_roster_t *r = NULL;
    char what[256];
    if (cohort_roster_load(a.file, &r, &err) < 0)
        goto fail;
    switch (kind) {
    case S_REMOVE:
        if (cohort_roster_remove(r, a.name, &err) < 0)
            goto fail;
        snprintf(what, sizeof what, "member '%s' removed", a.name);
        break;
    case S_REVOKE:
        if (cohort_roster_revoke(r, target, a.reason, &err) < 0)
            goto fail;
        snprintf(what, sizeof what, "'%.80s' revoked", target);
        break;
    case S_SET_ROLE: {
        unsigned roles = 0;
        char text[64];
        if (cohort_roles_parse(a.roles, &roles, &err) < 0 ||
            cohort_roster_set_roles(r, a.name, roles, &err) < 0)
            goto fail;
        snprintf(what, sizeof what, "member '%s' roles set to %s", a.name,
                 cohort_roles_text(roles, text, sizeof text));
        break;
    }
    case S_SET_SITE:
        if (cohort_roster_set_site(r, a.name, a.site, &err) < 0)
            goto fail;
        snprintf(what, sizeof what, "member '%s' site set to '%.64s'", a.name, a.site);
        break;
    case S_SET_ENDPOINTS:
        if (cohort_roster_set_endpoints(r, a.name, a.endpoints, a.endpoint_count, &err) < 0)
            goto fail;
        snprintf(what, sizeof what, "member '%s' now advertises %zu endpoint(s)", a.name,
                 a.endpoint_count);
        break;
    }
    rc = s_save(cmd, r, a.file, what);
    cohort_roster_destroy(&r);
    return rc;
fail:
    cohort_roster_destroy(&r);
    return cohort_cli_err(cmd, &err);
}

static int s_remove(int argc, char **argv)
{
    return s_edit(S_REMOVE, "roster remove", "FILE --name NODE", argc, argv);
}

static int s_revoke(int argc, char **argv)
{
    return s_edit(S_REVOKE, "roster revoke",
                  "FILE (--name NODE | --fingerprint SHA256) [--reason TEXT]", argc, argv);
}

static int s_set_role(int argc, char **argv)
{
    return s_edit(S_SET_ROLE, "roster set-role", "FILE --name NODE --roles relay,rendezvous|none",
                  argc, argv);
}

static int s_set_site(int argc, char **argv)
{
    return s_edit(S_SET_SITE, "roster set-site", "FILE --name NODE --site SITE", argc, argv);
}

static int s_set_endpoints(int argc, char **argv)
{
    return s_edit(S_SET_ENDPOINTS, "roster set-endpoints",
                  "FILE --name NODE [--endpoint tcp://HOST:PORT]...", argc, argv);
}

static int s_show(int argc, char **argv)
{
    const char *cmd = "roster show";
    if (argc != 2 || argv[1][0] == '-')
        return cohort_cli_fail(COHORT_CLI_EXIT_USAGE, cmd, "usage: cohortctl roster show FILE");
    cohort_err_t err;
    cohort_err_clear(&err);
    cohort_roster_t *r = NULL;
    if (cohort_roster_load(argv[1], &r, &err) < 0)
        return cohort_cli_err(cmd, &err);
    printf("cluster %s, serial %llu, %zu member(s), %zu revoked\n", cohort_roster_cluster(r),
           (unsigned long long)cohort_roster_serial(r), cohort_roster_member_count(r),
           cohort_roster_revoked_count(r));
    printf("%-20s %-12s %-18s %-19s %s\n", "NAME", "SITE", "ROLES", "FINGERPRINT", "EXPIRES");
    for (size_t i = 0; i < cohort_roster_member_count(r); i++) {
        const cohort_member_t *m = cohort_roster_member(r, i);
        char roles[64], until[32];
        printf("%-20s %-12s %-18s %.16s... %.10s\n", m->name, *m->site ? m->site : "-",
               cohort_roles_text(m->roles, roles, sizeof roles), m->info.fingerprint_hex,
               cohort_cert_time_text(m->info.not_after, until));
        for (size_t e = 0; e < m->endpoint_count; e++)
            printf("%-20s endpoint %s\n", "", m->endpoints[e]);
    }
    for (size_t i = 0; i < cohort_roster_revoked_count(r); i++) {
        const cohort_revoked_t *rv = cohort_roster_revoked(r, i);
        char hex[COHORT_CERT_FP_HEX_LEN + 1];
        cohort_cert_fp_hex(rv->fingerprint, hex);
        printf("revoked %s%s%s%s%s%s\n", hex, *rv->name ? " (" : "", rv->name, *rv->name ? ")" : "",
               *rv->reason ? ": " : "", rv->reason);
    }
    for (size_t i = 0; i < cohort_roster_site_count(r); i++) {
        const cohort_site_t *s = cohort_roster_site(r, i);
        printf("site %s: %zu relay(s), %zu rendezvous\n", s->name, s->relay_count,
               s->rendezvous_count);
    }
    for (size_t i = 0; i < cohort_roster_policy_count(r); i++)
        printf("policy: never relay between %s and %s\n", cohort_roster_policy(r, i)->never_relay_a,
               cohort_roster_policy(r, i)->never_relay_b);
    cohort_roster_destroy(&r);
    return 0;
}

static int s_sign(int argc, char **argv)
{
    const char *cmd = "roster sign", *ca = NULL, *sig_out = NULL;
    static const struct option opts[] = {{"ca", required_argument, NULL, 'c'},
                                         {"out", required_argument, NULL, 'o'},
                                         {NULL, 0, NULL, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 'c')
            ca = optarg;
        else if (c == 'o')
            sig_out = optarg;
        else
            return COHORT_CLI_EXIT_USAGE;
    }
    if (!ca || optind != argc - 1)
        return cohort_cli_fail(COHORT_CLI_EXIT_USAGE, cmd,
                               "usage: cohortctl roster sign FILE --ca CA_DIR [--out FILE.sig]");
    const char *file = argv[optind];
    cohort_err_t err;
    cohort_err_clear(&err);
    EVP_PKEY *key = NULL;
    X509 *ca_cert = NULL;
    cohort_roster_t *r = NULL;
    cohort_trust_t *trust = cohort_trust_new();
    cohort_problems_t problems = {0};
    char *buf = NULL, *sig = NULL;
    size_t len = 0;
    char *sig_path = sig_out ? cohort_strdup(sig_out) : cohort_sprintf("%s.sig", file);
    int rc = COHORT_CLI_EXIT_FAIL;
    if (cohort_cli_load_ca(ca, &key, &ca_cert, &err) < 0 ||
        cohort_trust_add(trust, ca_cert, ca, &err) < 0 ||
        cohort_fs_read(file, COHORT_ROSTER_FILE_MAX, &buf, &len, &err) < 0 ||
        cohort_roster_parse(file, buf, len, &r, &err) < 0)
        goto fail;
    /* Refuse to put the CA's name under a roster that nodes would reject. */
    if (cohort_roster_check(r, trust, time(NULL), &problems) < 0) {
        for (size_t i = 0; i < problems.count; i++)
            fprintf(stderr, "%s: %s\n", problems.items[i].fatal ? "error" : "warning",
                    problems.items[i].text);
        cohort_cli_fail(rc, cmd, "%s: not signed: %zu error(s)", file, problems.fatal_count);
        goto out;
    }
    for (size_t i = 0; i < problems.count; i++)
        fprintf(stderr, "warning: %s\n", problems.items[i].text);
    if (cohort_roster_sign(buf, len, key, ca_cert, &sig, &err) < 0 ||
        cohort_fs_write_atomic(sig_path, sig, strlen(sig), 0644, &err) < 0)
        goto fail;
    printf("%s: serial %llu signed -> %s\n", file, (unsigned long long)cohort_roster_serial(r),
           sig_path);
    rc = 0;
    goto out;
fail:
    cohort_cli_err(cmd, &err);
out:
    cohort_problems_fini(&problems);
    EVP_PKEY_free(key);
    X509_free(ca_cert);
    cohort_roster_destroy(&r);
    cohort_trust_destroy(&trust);
    free(buf);
    free(sig);
    free(sig_path);
    return rc;
}

static int s_verify(int argc, char **argv)
{
    const char *cmd = "roster verify", *sig_path_opt = NULL, *held_path = NULL;
    cohort_trust_t *trust = cohort_trust_new();
    cohort_err_t err;
    cohort_err_clear(&err);
    cohort_roster_t *r = NULL, *held = NULL;
    cohort_problems_t problems = {0};
    char *buf = NULL, *sig = NULL, *sig_path = NULL;
    size_t len = 0, sig_len = 0, failures = 0;
    int rc = COHORT_CLI_EXIT_USAGE;
    static const struct option opts[] = {{"ca", required_argument, NULL, 'c'},
                                         {"sig", required_argument, NULL, 's'},
                                         {"held", required_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 'c') {
            if (cohort_trust_add_file(trust, optarg, &err) < 0) {
                rc = cohort_cli_err(cmd, &err);
                goto out;
            }
        } else if (c == 's') {
            sig_path_opt = optarg;
        } else if (c == 'h') {
            held_path = optarg;
        } else {
            goto out;
        }
    }
    if (!cohort_trust_count(trust) || optind != argc - 1) {
        cohort_cli_fail(rc, cmd,
                        "usage: cohortctl roster verify FILE --ca CA.crt [--ca ...] "
                        "[--sig FILE.sig] [--held OLDER.yaml]");
        goto out;
    }
    rc = COHORT_CLI_EXIT_FAIL;
    const char *file = argv[optind];
    sig_path = sig_path_opt ? cohort_strdup(sig_path_opt) : cohort_sprintf("%s.sig", file);
    if (cohort_fs_read(file, COHORT_ROSTER_FILE_MAX, &buf, &len, &err) < 0) {
        cohort_cli_err(cmd, &err);
        goto out;
    }
    /* Report every problem, not just the first: an admin fixes them in one go. */
    if (cohort_fs_read(sig_path, COHORT_ROSTER_SIG_FILE_MAX, &sig, &sig_len, &err) < 0 ||
        cohort_roster_verify_sig(buf, len, sig_path, sig, sig_len, trust, &err) < 0) {
        printf("error: %s\n", cohort_err_text(&err));
        failures++;
    }
    if (cohort_roster_parse(file, buf, len, &r, &err) < 0) {
        printf("error: %s\n", cohort_err_text(&err));
        failures++;
        goto done;
    }
    cohort_roster_check(r, trust, time(NULL), &problems);
    for (size_t i = 0; i < problems.count; i++) {
        printf("%s: %s\n", problems.items[i].fatal ? "error" : "warning", problems.items[i].text);
        failures++;
    }
    if (held_path) {
        if (cohort_roster_load(held_path, &held, &err) < 0) {
            printf("error: %s\n", cohort_err_text(&err));
            failures++;
        } else if (cohort_roster_serial(r) <= cohort_roster_serial(held)) {
            printf("error: %s: serial %llu is not higher than the held roster's serial %llu "
                   "(%s); nodes holding it will refuse this roster\n",
                   file, (unsigned long long)cohort_roster_serial(r),
                   (unsigned long long)cohort_roster_serial(held), held_path);
            failures++;
        }
    }
done:
    if (failures) {
        printf("%s: %zu problem(s)\n", file, failures);
        goto out;
    }
    printf("%s: ok: cluster %s, serial %llu, %zu member(s), signature valid\n", file,
           cohort_roster_cluster(r), (unsigned long long)cohort_roster_serial(r),
           cohort_roster_member_count(r));
    rc = 0;
out:
    cohort_problems_fini(&problems);
    cohort_roster_destroy(&r);
    cohort_roster_destroy(&held);
    cohort_trust_destroy(&trust);
    free(buf);
    free(sig);
    free(sig_path);
    return rc;
}

#define S_PUSH_USAGE "FILE [--signature FILE.sig] [--api ENDPOINT | -c node.yaml]"
#define S_PUSH_REPLY_MS 10000 /* verifying a large roster takes the node a while */

static int s_push(int argc, char **argv)
{
    const char *cmd = "roster push", *sig_opt = NULL, *api = NULL, *config = NULL;
    static const struct option opts[] = {{"signature", required_argument, NULL, 's'},
                                         {"sig", required_argument, NULL, 's'},
                                         {"api", required_argument, NULL, 'A'},
                                         {"config", required_argument, NULL, 'c'},
                                         {NULL, 0, NULL, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "c:", opts, NULL)) != -1) {
        if (c == 's')
            sig_opt = optarg;
        else if (c == 'A')
            api = optarg;
        else if (c == 'c')
            config = optarg;
        else
            return cohort_cli_fail(COHORT_CLI_EXIT_USAGE, cmd, "usage: cohortctl roster push %s",
                                   S_PUSH_USAGE);
    }
    if (optind != argc - 1 || (api && config))
        return cohort_cli_fail(COHORT_CLI_EXIT_USAGE, cmd, "usage: cohortctl roster push %s",
                               S_PUSH_USAGE);
    const char *file = argv[optind];
    cohort_err_t err;
    cohort_err_clear(&err);
    char *buf = NULL, *sig = NULL, *endpoint = NULL;
    size_t len = 0, sig_len = 0;
    char *sig_path = sig_opt ? cohort_strdup(sig_opt) : cohort_sprintf("%s.sig", file);
    cohort_config_t *cfg = NULL;
    cohort_api_client_t *client = NULL;
    Cohort__Api__Response *resp = NULL;
    int rc = COHORT_CLI_EXIT_FAIL;
    if (cohort_fs_read(file, COHORT_ROSTER_FILE_MAX, &buf, &len, &err) < 0) {
        rc = cohort_cli_err(cmd, &err);
        goto out;
    }
    if (!cohort_fs_exists(sig_path)) {
        rc = cohort_cli_fail(COHORT_CLI_EXIT_FAIL, cmd,
                             "%s: not signed: no %s; run `cohortctl roster sign %s --ca CA_DIR`",
                             file, sig_path, file);
        goto out;
    }
    if (cohort_fs_read(sig_path, COHORT_ROSTER_SIG_FILE_MAX, &sig, &sig_len, &err) < 0) {
        rc = cohort_cli_err(cmd, &err);
        goto out;
    }
    /* The node: --api, else -c's api.endpoint, else $COHORT_API (as the
     * node commands find it). */
    if (api) {
        endpoint = cohort_strdup(api);
    } else if (config) {
        if (cohort_config_load(config, &cfg, &err) < 0) {
            rc = cohort_cli_err(cmd, &err);
            goto out;
        }
        endpoint = cohort_strdup(cfg->api_endpoint);
    } else if (getenv("COHORT_API") && *getenv("COHORT_API")) {
        endpoint = cohort_strdup(getenv("COHORT_API"));
    } else {
        rc = cohort_cli_fail(COHORT_CLI_EXIT_USAGE, cmd,
                             "which node? give --api ENDPOINT, -c node.yaml (its api.endpoint "
                             "is used), or set COHORT_API");
        goto out;
    }
    Cohort__Api__ApiRequest req = COHORT__API__API_REQUEST__INIT;
    Cohort__Api__RosterPush push = COHORT__API__ROSTER_PUSH__INIT;
    push.roster.data = (uint8_t *)buf;
    push.roster.len = len;
    push.signature.data = (uint8_t *)sig;
    push.signature.len = sig_len;
    req.op_case = COHORT__API__API_REQUEST__OP_ROSTER_PUSH;
    req.roster_push = &push;
    if (cohort_api_client_open(endpoint, &client, &err) < 0 ||
        cohort_api_client_request(client, &req, S_PUSH_REPLY_MS, &resp, &err) < 0) {
        rc = cohort_cli_err(cmd, &err);
        goto out;
    }
    const char *reason = resp->roster && resp->roster->reason ? resp->roster->reason : "";
    if (resp->status == COHORT__API__CODE__OK && resp->roster && resp->roster->applied) {
        printf("%s: serial %llu applied; the node spreads it to its peers\n", file,
               (unsigned long long)resp->roster->serial);
        rc = 0;
    } else if (*reason) {
        cohort_cli_fail(COHORT_CLI_EXIT_FAIL, cmd, "%s: refused (%s): %s", file, reason,
                        resp->error ? resp->error : "");
    } else {
        cohort_cli_fail(COHORT_CLI_EXIT_FAIL, cmd, "%s: %s", file,
                        resp->error && *resp->error ? resp->error : "the node refused it");
    }
out:
    if (resp)
        cohort__api__response__free_unpacked(resp, NULL);
    cohort_api_client_destroy(&client);
    cohort_config_destroy(&cfg);
    free(buf);
    free(sig);
    free(sig_path);
    free(endpoint);
    return rc;
}

const cohort_cli_cmd_t cohort_cli_roster_cmds[] = {
    {"roster", "init", s_init, "--cluster NAME FILE", "create an empty roster at serial 1"},
    {"roster", "add", s_add,
     "FILE --name NODE --cert CERT [--roles R,..] [--site S] [--endpoint E]...",
     "admit a node (roles: relay, rendezvous)"},
    {"roster", "remove", s_remove, "FILE --name NODE", "remove a member"},
    {"roster", "revoke", s_revoke, "FILE (--name NODE | --fingerprint FP) [--reason TEXT]",
     "revoke a certificate and remove its member"},
    {"roster", "set-role", s_set_role, "FILE --name NODE --roles R,..|none",
     "change a member's roles"},
    {"roster", "set-site", s_set_site, "FILE --name NODE --site SITE", "change a member's site"},
    {"roster", "set-endpoints", s_set_endpoints, "FILE --name NODE [--endpoint E]...",
     "replace a member's advertised endpoints"},
    {"roster", "show", s_show, "FILE", "list members, revocations and topology"},
    {"roster", "sign", s_sign, "FILE --ca CA_DIR [--out FILE.sig]",
     "check the roster and write its detached CA signature"},
    {"roster", "verify", s_verify, "FILE --ca CA.crt [--ca ...] [--sig F] [--held OLDER.yaml]",
     "check signature, members, topology and serial; one line per problem"},
    {"roster", "push", s_push, S_PUSH_USAGE,
     "hand a signed roster to a running node, which applies it and spreads it"},
    {NULL, NULL, NULL, NULL, NULL},
};
