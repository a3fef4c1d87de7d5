/*
 * cluster: throwaway clusters for tests. See cluster.h.
 */
#include "testutil.h"

#include "api.pb-c.h"
#include "cluster.h"
#include "pki/cert.h"
#include "roster/roster.h"
#include "util/fs.h"
#include "util/log.h"
#include "util/mem.h"

#include <arpa/inet.h>
#include <czmq.h>
#include <netinet/in.h>
#include <openssl/x509.h>
#include <sys/socket.h>
#include <unistd.h>

int cluster_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

/* Holds a free port on 127.0.0.1 for the cluster: a bound socket with
 * SO_REUSEADDR that never listens. A node can still listen on the port
 * (libzmq sets SO_REUSEADDR too), connecting to it is refused while no node
 * does, and the kernel never picks a bound port as the source port of an
 * outgoing connection: the port cannot be lost between being chosen and
 * being listened on, as one from cluster_free_port can. */
static int s_hold_port(cluster_t *c)
{
    assert_true(c->reserved_count < 2 * CLUSTER_MAX);
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    assert_true(fd >= 0);
    assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one), 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    c->reserved[c->reserved_count++] = fd;
    return ntohs(a.sin_port);
}

static void s_log(void *arg, cohort_log_level_t level, const char *line)
{
    (void)arg;
    fprintf(stderr, "log %s %s\n", cohort_log_level_name(level), line);
}

void cluster_log_from_env(void)
{
    if (getenv("COHORT_TEST_LOG"))
        cohort_log_set_sink(s_log, NULL, COHORT_LOG_DEBUG);
}

/* Re-signs cert with its notAfter an hour ago. */
static void s_expire(X509 *cert, EVP_PKEY *ca_key)
{
    X509_gmtime_adj(X509_getm_notBefore(cert), -7200);
    X509_gmtime_adj(X509_getm_notAfter(cert), -3600);
    assert_true(X509_sign(cert, ca_key, NULL) > 0);
}

cluster_t *cluster_new(const cluster_member_t *members, int count)
{
    return cluster_new_with_topology(members, count, NULL);
}

cluster_t *cluster_new_with_topology(const cluster_member_t *members, int count,
                                     const char *topology)
{
    assert_true(count <= CLUSTER_MAX);
    cluster_log_from_env();
    cluster_t *c = cohort_calloc(1, sizeof *c);
    cohort_err_t err;
    c->dir = test_tmpdir();
    c->count = count;
    memcpy(c->members, members, (size_t)count * sizeof *members);
    EVP_PKEY *ca_key = cohort_key_generate(COHORT_KEY_ED25519);
    X509 *ca = NULL;
    assert_int_equal(cohort_cert_create_ca("test", ca_key, 30, &ca, &err), 0);
    char *p = cohort_sprintf("%s/ca.crt", c->dir);
    assert_int_equal(cohort_cert_save(p, ca, &err), 0);
    free(p);
    p = cohort_sprintf("%s/ca.key", c->dir); /* for cluster_sign and cluster_add_member */
    assert_int_equal(cohort_key_save_private(p, ca_key, false, &err), 0);
    free(p);
    cohort_roster_t *r = cohort_roster_new("test");
    char *revoked = cohort_strdup("");
    for (int i = 0; i < count; i++) {
        const cluster_member_t *m = &members[i];
        c->ports[i] = s_hold_port(c);
        int endpoint_port = m->endpoint_port == CLUSTER_DEAD_PORT ? s_hold_port(c)
                            : m->endpoint_port                    ? m->endpoint_port
                                                                  : c->ports[i];
        EVP_PKEY *k = cohort_key_generate(COHORT_KEY_X25519);
        cohort_key_raw_public(k, c->pub[i]);
        cohort_key_raw_private(k, c->sec[i]);
        X509 *cert = NULL;
        assert_int_equal(cohort_cert_issue(ca, ca_key, m->name, k, 5, &cert, &err), 0);
        if (m->expired)
            s_expire(cert, ca_key);
        char *ep = cohort_sprintf("tcp://127.0.0.1:%d", endpoint_port);
        const char *eps[] = {ep};
        assert_int_equal(
            cohort_roster_add(r, m->name, cert, m->roles, m->site ? m->site : "", eps, 1, &err), 0);
        if (m->revoked) {
            cohort_cert_info_t info;
            cohort_cert_describe(cert, &info);
            char *more = cohort_sprintf("%s- %s\n", revoked, info.fingerprint_hex);
            free(revoked);
            revoked = more;
        }
        p = cohort_sprintf("%s/%s.key", c->dir, m->name);
        assert_int_equal(cohort_key_save_private(p, k, false, &err), 0);
        free(p);
        p = cohort_sprintf("%s/%s.crt", c->dir, m->name);
        assert_int_equal(cohort_cert_save(p, cert, &err), 0);
        free(p);
        char *yaml = cohort_sprintf("node:\n  name: %s\n  state_dir: %s-state\n"
                                    "identity:\n  key: %s.key\n  cert: %s.crt\n"
                                    "trust:\n  ca: [ca.crt]\n"
                                    "listen:\n  address: 127.0.0.1\n  port: %d\n"
                                    "  punch_port: 0\n%s",
                                    m->name, m->name, m->name, m->name, c->ports[i],
                                    m->config ? m->config : "");
        char *name = cohort_sprintf("%s.yaml", m->name);
        free(test_write(c->dir, name, yaml, 0644));
        free(name);
        free(yaml);
        free(ep);
        X509_free(cert);
        EVP_PKEY_free(k);
    }
    char *text = NULL, *sig = NULL;
    size_t len = 0;
    assert_int_equal(cohort_roster_emit(r, &text, &len, &err), 0);
    if (*revoked) {
        /* Listed AND revoked: the roster emitter would never write that, an
         * admin's hand edit can, and admission must still refuse. */
        char *pos = strstr(text, "revoked: []\n");
        assert_non_null(pos);
        *pos = '\0';
        char *edited = cohort_sprintf("%srevoked:\n%s%s", text, revoked, pos + 12);
        free(text);
        text = edited;
        len = strlen(text);
    }
    if (topology) {
        /* The emitter writes topology last, as a top-level key; the roster
         * API has no call to add policies, so the test's text replaces it. */
        char *pos = strstr(text, "\ntopology:");
        assert_non_null(pos);
        pos[1] = '\0';
        char *edited = cohort_sprintf("%s%s", text, topology);
        free(text);
        text = edited;
        len = strlen(text);
    }
    assert_int_equal(cohort_roster_sign(text, len, ca_key, ca, &sig, &err), 0);
    free(test_write(c->dir, "roster.yaml", text, 0644));
    free(test_write(c->dir, "roster.yaml.sig", sig, 0644));
    free(text);
    free(sig);
    free(revoked);
    cohort_roster_destroy(&r);
    X509_free(ca);
    EVP_PKEY_free(ca_key);
    for (int i = 0; i < count; i++) {
        if (!members[i].run)
            continue;
        char *cfg = cohort_sprintf("%s/%s.yaml", c->dir, members[i].name);
        char why[1024];
        if (cohort_open(cfg, &c->nodes[i], why, sizeof why) < 0)
            fail_msg("%s: %s", members[i].name, why);
        free(cfg);
    }
    return c;
}

void cluster_destroy(cluster_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    cluster_t *c = *self_p;
    for (int i = 0; i < c->count; i++)
        cohort_close(&c->nodes[i]);
    for (int i = 0; i < c->reserved_count; i++)
        close(c->reserved[i]);
    test_rmdir(&c->dir);
    free(c);
    *self_p = NULL;
}

void cluster_wait_up(cluster_t *c, int timeout_ms)
{
    for (int i = 0; i < c->count; i++) {
        if (!c->nodes[i])
            continue;
        bool seen[CLUSTER_MAX] = {false};
        int64_t end = zclock_mono() + timeout_ms;
        for (;;) {
            bool all = true;
            for (int j = 0; j < c->count; j++)
                if (j != i && c->nodes[j] && !seen[j])
                    all = false;
            if (all)
                break;
            if (zclock_mono() > end)
                fail_msg("node %s did not see every running node up", c->members[i].name);
            cohort_msg_t *m = cohort_recv(c->nodes[i], 100);
            for (int j = 0; m && j < c->count; j++)
                if (cohort_msg_kind(m) == COHORT_MSG_EVENT &&
                    !strcmp(cohort_msg_subject(m), "member.up") &&
                    !strcmp(cohort_msg_sender(m), c->members[j].name))
                    seen[j] = true;
            cohort_msg_destroy(&m);
        }
    }
}

cohort_msg_t *cluster_next(cluster_t *c, int i, int ms)
{
    int64_t end = zclock_mono() + ms;
    while (zclock_mono() < end) {
        cohort_msg_t *m = cohort_recv(c->nodes[i], 50);
        if (m && cohort_msg_kind(m) != COHORT_MSG_EVENT)
            return m;
        cohort_msg_destroy(&m);
    }
    return NULL;
}

void cluster_z85(const cluster_t *c, int i, char pub[41], char sec[41])
{
    cohort_key_z85(c->pub[i], pub);
    cohort_key_z85(c->sec[i], sec);
}

/* ---- roster changes ---- */

static void s_load_ca(const cluster_t *c, EVP_PKEY **key, X509 **cert)
{
    cohort_err_t err;
    char *p = cohort_sprintf("%s/ca.key", c->dir);
    if (cohort_key_load_private(p, COHORT_KEY_ED25519, key, &err) < 0)
        fail_msg("%s", err.text);
    free(p);
    p = cohort_sprintf("%s/ca.crt", c->dir);
    if (cohort_cert_load(p, cert, &err) < 0)
        fail_msg("%s", err.text);
    free(p);
}

char *cluster_roster_text(const cluster_t *c, size_t *len)
{
    cohort_err_t err;
    char *p = cohort_sprintf("%s/roster.yaml", c->dir), *text = NULL;
    if (cohort_fs_read(p, COHORT_ROSTER_FILE_MAX, &text, len, &err) < 0)
        fail_msg("%s", err.text);
    free(p);
    return text;
}

char *cluster_sign(const cluster_t *c, const char *text, size_t len)
{
    EVP_PKEY *key = NULL;
    X509 *ca = NULL;
    s_load_ca(c, &key, &ca);
    cohort_err_t err;
    char *sig = NULL;
    if (cohort_roster_sign(text, len, key, ca, &sig, &err) < 0)
        fail_msg("%s", err.text);
    EVP_PKEY_free(key);
    X509_free(ca);
    return sig;
}

X509 *cluster_cert(const cluster_t *c, int i)
{
    cohort_err_t err;
    X509 *cert = NULL;
    char *p = cohort_sprintf("%s/%s.crt", c->dir, c->members[i].name);
    if (cohort_cert_load(p, &cert, &err) < 0)
        fail_msg("%s", err.text);
    free(p);
    return cert;
}

int cluster_add_member(cluster_t *c, const cluster_member_t *m, const char *roster_file)
{
    assert_true(c->count < CLUSTER_MAX);
    int i = c->count;
    cohort_err_t err;
    EVP_PKEY *ca_key = NULL;
    X509 *ca = NULL;
    s_load_ca(c, &ca_key, &ca);
    c->members[i] = *m;
    c->ports[i] = cluster_free_port();
    EVP_PKEY *k = cohort_key_generate(COHORT_KEY_X25519);
    cohort_key_raw_public(k, c->pub[i]);
    cohort_key_raw_private(k, c->sec[i]);
    X509 *cert = NULL;
    assert_int_equal(cohort_cert_issue(ca, ca_key, m->name, k, 5, &cert, &err), 0);
    char *p = cohort_sprintf("%s/%s.key", c->dir, m->name);
    assert_int_equal(cohort_key_save_private(p, k, false, &err), 0);
    free(p);
    p = cohort_sprintf("%s/%s.crt", c->dir, m->name);
    assert_int_equal(cohort_cert_save(p, cert, &err), 0);
    free(p);
    char *yaml = cohort_sprintf("node:\n  name: %s\n  state_dir: %s-state\n"
                                "identity:\n  key: %s.key\n  cert: %s.crt\n"
                                "trust:\n  ca: [ca.crt]\n  roster: %s\n"
                                "listen:\n  address: 127.0.0.1\n  port: %d\n"
                                "  punch_port: 0\n%s",
                                m->name, m->name, m->name, m->name, roster_file, c->ports[i],
                                m->config ? m->config : "");
    char *name = cohort_sprintf("%s.yaml", m->name);
    free(test_write(c->dir, name, yaml, 0644));
    free(name);
    free(yaml);
    X509_free(cert);
    EVP_PKEY_free(k);
    EVP_PKEY_free(ca_key);
    X509_free(ca);
    c->count++;
    return i;
}

void cluster_start(cluster_t *c, int i)
{
    assert_null(c->nodes[i]);
    char *cfg = cohort_sprintf("%s/%s.yaml", c->dir, c->members[i].name);
    char why[1024];
    if (cohort_open(cfg, &c->nodes[i], why, sizeof why) < 0)
        fail_msg("%s: %s", c->members[i].name, why);
    free(cfg);
}

void cluster_stop(cluster_t *c, int i)
{
    cohort_close(&c->nodes[i]);
}

Cohort__Api__Response *cluster_info(cohort_t *node, const char *what)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    assert_int_equal(cohort_info(node, what, &buf, &len), COHORT_OK);
    Cohort__Api__Response *r = cohort__api__response__unpack(NULL, len, buf);
    free(buf);
    assert_non_null(r);
    return r;
}

Cohort__Api__Counters *cluster_counters(cohort_t *node)
{
    Cohort__Api__Response *r = cluster_info(node, "status");
    assert_non_null(r->status_info);
    Cohort__Api__Counters *c = r->status_info->counters;
    r->status_info->counters = NULL;
    cohort__api__response__free_unpacked(r, NULL);
    return c;
}
