/*
 * cmd_pki: `cohortctl ca init`, `keygen`, `cert issue|show|verify`.
 *
 * The CA lives in a directory holding ca.key (Ed25519, 0600) and ca.crt. A
 * node directory holds node.key (X25519, 0600), node.pub and node.crt, the
 * names node.yaml uses by default. Keys are generated where they are used so
 * a private key never has to travel: `keygen` on the node, `cert issue --pub`
 * on the CA machine.
 */
#include "cli/cli.h"
#include "pki/cert.h"
#include "pki/key.h"
#include "pki/trust.h"
#include "util/fs.h"
#include "util/mem.h"

#include <getopt.h>
#include <openssl/err.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define S_CA_DAYS 3650
#define S_NODE_DAYS 365

/* Loads DIR/ca.key and DIR/ca.crt and checks they belong together. */
int cohort_cli_load_ca(const char *dir, EVP_PKEY **key, X509 **cert, cohort_err_t *err)
{
    char *key_path = cohort_sprintf("%s/ca.key", dir);
    char *cert_path = cohort_sprintf("%s/ca.crt", dir);
    int rc = -1;
    if (cohort_key_load_private(key_path, COHORT_KEY_ED25519, key, err) < 0)
        goto out;
    if (cohort_cert_load(cert_path, cert, err) < 0) {
        EVP_PKEY_free(*key);
        *key = NULL;
        goto out;
    }
    if (X509_check_private_key(*cert, *key) != 1) {
        ERR_clear_error();
        cohort_err_set(err, "%s: does not match %s", key_path, cert_path);
        EVP_PKEY_free(*key);
        X509_free(*cert);
        *key = NULL;
        *cert = NULL;
        goto out;
    }
    rc = 0;
out:
    free(key_path);
    free(cert_path);
    return rc;
}

static int s_ca_init(int argc, char **argv)
{
    const char *cmd = "ca init", *name = NULL, *out = NULL;
    long days = S_CA_DAYS;
    static const struct option opts[] = {{"name", required_argument, NULL, 'n'},
                                         {"out", required_argument, NULL, 'o'},
                                         {"days", required_argument, NULL, 'd'},
                                         {NULL, 0, NULL, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 'n')
            name = optarg;
        else if (c == 'o')
            out = optarg;
        else if (c == 'd') {
            if (cohort_cli_int(cmd, "--days", optarg, 1, COHORT_CERT_MAX_DAYS, &days) < 0)
                return COHORT_CLI_EXIT_USAGE;
        } else
            return COHORT_CLI_EXIT_USAGE;
    }
    if (!name || !out || optind != argc)
        return cohort_cli_fail(COHORT_CLI_EXIT_USAGE, cmd,
                               "usage: cohortctl ca init --name CLUSTER --out DIR [--days N]");
    cohort_err_t err;
    cohort_err_clear(&err);
    EVP_PKEY *key = NULL;
    X509 *cert = NULL;
    char *key_path = cohort_sprintf("%s/ca.key", out);
    char *cert_path = cohort_sprintf("%s/ca.crt", out);
    int rc = COHORT_CLI_EXIT_FAIL;
    if (cohort_fs_exists(key_path)) {
        cohort_cli_fail(rc, cmd, "%s: already exists; refusing to replace a CA key", key_path);
        goto out;
    }
    if (cohort_fs_mkdir_p(out, 0700, &err) < 0)
        goto fail;
    key = cohort_key_generate(COHORT_KEY_ED25519);
    if (cohort_cert_create_ca(name, key, (int)days, &cert, &err) < 0 ||
        cohort_key_save_private(key_path, key, false, &err) < 0 ||
        cohort_cert_save(cert_path, cert, &err) < 0)
        goto fail;
    cohort_cert_info_t info;
    cohort_cert_describe(cert, &info);
    char until[32];
    printf("CA '%s' created\n  key:         %s (keep it offline; mode 0600)\n"
           "  certificate: %s\n  fingerprint: %s\n  valid until: %s\n",
           name, key_path, cert_path, info.fingerprint_hex,
           cohort_cert_time_text(info.not_after, until));
    rc = 0;
    goto out;
fail:
    cohort_cli_err(cmd, &err);
out:
    EVP_PKEY_free(key);
    X509_free(cert);
    free(key_path);
    free(cert_path);
    return rc;
}

static int s_keygen(int argc, char **argv)
{
    const char *cmd = "keygen", *out = NULL;
    static const struct option opts[] = {{"out", required_argument, NULL, 'o'}, {NULL, 0, NULL, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 'o')
            out = optarg;
        else
            return COHORT_CLI_EXIT_USAGE;
    }
    if (!out || optind != argc)
        return cohort_cli_fail(COHORT_CLI_EXIT_USAGE, cmd, "usage: cohortctl keygen --out DIR");
    cohort_err_t err;
    cohort_err_clear(&err);
    char *key_path = cohort_sprintf("%s/node.key", out);
    char *pub_path = cohort_sprintf("%s/node.pub", out);
    EVP_PKEY *key = NULL;
    int rc = COHORT_CLI_EXIT_FAIL;
    if (cohort_fs_mkdir_p(out, 0700, &err) < 0)
        goto fail;
    key = cohort_key_generate(COHORT_KEY_X25519);
    if (cohort_key_save_private(key_path, key, false, &err) < 0 ||
        cohort_key_save_public(pub_path, key, &err) < 0)
        goto fail;
    uint8_t pub[COHORT_KEY_LEN];
    char z85[COHORT_KEY_Z85_LEN + 1];
    cohort_key_raw_public(key, pub);
    cohort_key_z85(pub, z85);
    printf("key pair created\n  private: %s (mode 0600; never leaves this machine)\n"
           "  public:  %s (send this to the CA admin)\n  curve:   %s\n",
           key_path, pub_path, z85);
    rc = 0;
    goto out;
fail:
    cohort_cli_err(cmd, &err);
out:
    EVP_PKEY_free(key);
    free(key_path);
    free(pub_path);
    return rc;
}

static int s_cert_issue(int argc, char **argv)
{
    const char *cmd = "cert issue", *ca = NULL, *name = NULL, *pub = NULL, *out = NULL;
    long days = S_NODE_DAYS;
    static const struct option opts[] = {
        {"ca", required_argument, NULL, 'c'},   {"name", required_argument, NULL, 'n'},
        {"pub", required_argument, NULL, 'p'},  {"out", required_argument, NULL, 'o'},
        {"days", required_argument, NULL, 'd'}, {NULL, 0, NULL, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            ca = optarg;
            break;
        case 'n':
            name = optarg;
            break;
        case 'p':
            pub = optarg;
            break;
        case 'o':
            out = optarg;
            break;
        case 'd':
            if (cohort_cli_int(cmd, "--days", optarg, 1, COHORT_CERT_MAX_DAYS, &days) < 0)
                return COHORT_CLI_EXIT_USAGE;
            break;
        default:
            return COHORT_CLI_EXIT_USAGE;
        }
    }
    if (!ca || !name || (!pub && !out) || optind != argc)
        return cohort_cli_fail(COHORT_CLI_EXIT_USAGE, cmd,
                               "usage: cohortctl cert issue --ca DIR --name NODE "
                               "(--pub FILE | --out DIR) [--days N]");
    cohort_err_t err;
    cohort_err_clear(&err);
    EVP_PKEY *ca_key = NULL, *node_key = NULL;
    X509 *ca_cert = NULL, *cert = NULL;
    char *key_path = out ? cohort_sprintf("%s/node.key", out) : NULL;
    char *cert_path = out ? cohort_sprintf("%s/node.crt", out) : NULL;
    int rc = COHORT_CLI_EXIT_FAIL;
    bool generated = false;
    if (cohort_cli_load_ca(ca, &ca_key, &ca_cert, &err) < 0)
        goto fail;
    if (pub) {
        if (cohort_key_load_public(pub, &node_key, &err) < 0)
            goto fail;
    } else if (cohort_fs_exists(key_path)) {
        /* Re-issuing for an existing node keeps its key (certificate renewal). */
        if (cohort_key_load_private(key_path, COHORT_KEY_X25519, &node_key, &err) < 0)
            goto fail;
        fprintf(stderr, "cohortctl: %s: using the existing key %s\n", cmd, key_path);
    } else {
        /* Issue before saving, so a refused name leaves no orphan key. */
        node_key = cohort_key_generate(COHORT_KEY_X25519);
        generated = true;
    }
    if (cohort_cert_issue(ca_cert, ca_key, name, node_key, (int)days, &cert, &err) < 0)
        goto fail;
    if (generated) {
        char *pub_path = cohort_sprintf("%s/node.pub", out);
        int saved = cohort_fs_mkdir_p(out, 0700, &err) == 0 &&
                    cohort_key_save_private(key_path, node_key, false, &err) == 0 &&
                    cohort_key_save_public(pub_path, node_key, &err) == 0;
        free(pub_path);
        if (!saved)
            goto fail;
    }
    if (!out) {
        char *pem = cohort_cert_to_pem(cert);
        fputs(pem, stdout);
        free(pem);
    } else {
        if (cohort_fs_mkdir_p(out, 0700, &err) < 0 || cohort_cert_save(cert_path, cert, &err) < 0)
            goto fail;
        cohort_cert_info_t info;
        cohort_cert_describe(cert, &info);
        char until[32];
        printf("certificate for '%s' issued\n  certificate: %s\n  fingerprint: %s\n"
               "  valid until: %s\n",
               name, cert_path, info.fingerprint_hex, cohort_cert_time_text(info.not_after, until));
    }
    rc = 0;
    goto out;
fail:
    cohort_cli_err(cmd, &err);
out:
    EVP_PKEY_free(ca_key);
    EVP_PKEY_free(node_key);
    X509_free(ca_cert);
    X509_free(cert);
    free(key_path);
    free(cert_path);
    return rc;
}

static void s_print_cert(X509 *cert)
{
    cohort_cert_info_t info;
    cohort_cert_describe(cert, &info);
    char from[32], until[32], z85[COHORT_KEY_Z85_LEN + 1] = "-";
    if (info.key_is_x25519)
        cohort_key_z85(info.public_key, z85);
    long days_left = (long)((info.not_after - time(NULL)) / 86400);
    char left[48];
    if (info.not_after < time(NULL))
        snprintf(left, sizeof left, "EXPIRED %ld days ago", -days_left);
    else
        snprintf(left, sizeof left, "%ld days left", days_left);
    printf("name:        %s\nissuer:      %s\nfingerprint: sha256:%s\nkey type:    %s\n"
           "curve key:   %s\nvalid from:  %s\nvalid until: %s (%s)\nca:          %s\n",
           info.name, info.issuer, info.fingerprint_hex, info.key_type, z85,
           cohort_cert_time_text(info.not_before, from),
           cohort_cert_time_text(info.not_after, until), left, info.is_ca ? "yes" : "no");
}

static int s_cert_show(int argc, char **argv)
{
    const char *cmd = "cert show";
    if (argc != 2 || argv[1][0] == '-')
        return cohort_cli_fail(COHORT_CLI_EXIT_USAGE, cmd, "usage: cohortctl cert show FILE");
    cohort_err_t err;
    cohort_err_clear(&err);
    X509 *cert = NULL;
    if (cohort_cert_load(argv[1], &cert, &err) < 0)
        return cohort_cli_err(cmd, &err);
    s_print_cert(cert);
    X509_free(cert);
    return 0;
}

static int s_cert_verify(int argc, char **argv)
{
    const char *cmd = "cert verify";
    cohort_trust_t *trust = cohort_trust_new();
    cohort_err_t err;
    cohort_err_clear(&err);
    X509 *cert = NULL;
    int rc = COHORT_CLI_EXIT_USAGE;
    static const struct option opts[] = {{"ca", required_argument, NULL, 'c'}, {NULL, 0, NULL, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c != 'c')
            goto out;
        if (cohort_trust_add_file(trust, optarg, &err) < 0) {
            rc = cohort_cli_err(cmd, &err);
            goto out;
        }
    }
    if (!cohort_trust_count(trust) || optind != argc - 1) {
        cohort_cli_fail(rc, cmd, "usage: cohortctl cert verify --ca CA.crt [--ca ...] CERT");
        goto out;
    }
    const char *path = argv[optind];
    if (cohort_cert_load(path, &cert, &err) < 0) {
        rc = cohort_cli_err(cmd, &err);
        goto out;
    }
    cohort_trust_status_t st = cohort_trust_check(trust, cert, time(NULL), &err);
    if (st != COHORT_TRUST_OK) {
        rc = cohort_cli_fail(COHORT_CLI_EXIT_FAIL, cmd, "%s: %s: %s", path,
                             cohort_trust_status_name(st), cohort_err_text(&err));
        goto out;
    }
    cohort_cert_info_t info;
    cohort_cert_describe(cert, &info);
    char until[32];
    printf("%s: ok: '%s' chains to a trusted CA, X25519 key, valid until %s\n", path, info.name,
           cohort_cert_time_text(info.not_after, until));
    rc = 0;
out:
    X509_free(cert);
    cohort_trust_destroy(&trust);
    return rc;
}

const cohort_cli_cmd_t cohort_cli_pki_cmds[] = {
    {"ca", "init", s_ca_init, "--name CLUSTER --out DIR [--days N]",
     "create the cluster CA: DIR/ca.key (Ed25519, 0600) and DIR/ca.crt"},
    {NULL, "keygen", s_keygen, "--out DIR",
     "create a node key pair DIR/node.key (X25519, 0600) and DIR/node.pub"},
    {"cert", "issue", s_cert_issue, "--ca DIR --name NODE (--pub FILE | --out DIR) [--days N]",
     "issue a node certificate (with --out, also the key pair if absent)"},
    {"cert", "show", s_cert_show, "FILE", "name, fingerprint, CURVE key and validity"},
    {"cert", "verify", s_cert_verify, "--ca CA.crt [--ca ...] CERT",
     "check chain, validity window and key type"},
    {NULL, NULL, NULL, NULL, NULL},
};
