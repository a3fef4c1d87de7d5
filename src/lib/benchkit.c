/*
 * benchkit: throwaway clusters and figures for benchmarks. See benchkit.h.
 */
#include "lib/benchkit.h"

#include "api.pb-c.h"
#include "pki/cert.h"
#include "pki/key.h"
#include "roster/roster.h"
#include "util/fs.h"
#include "util/mem.h"

#include <arpa/inet.h>
#include <czmq.h>
#include <ftw.h>
#include <malloc.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct cohort_benchkit {
    char *dir;
    int count;
    char *names[COHORT_BENCHKIT_MAX];
    cohort_t *nodes[COHORT_BENCHKIT_MAX];
    int held[2 * COHORT_BENCHKIT_MAX]; /* sockets holding our ports */
    int held_count;
};

/* Holds a free port on 127.0.0.1: a bound socket with SO_REUSEADDR that
 * never listens (as tests/unit/cluster.c does). A node can still listen on
 * it (libzmq sets SO_REUSEADDR too); connecting to it is refused while no
 * node does. Returns the port, or -1. */
static int s_hold_port(cohort_benchkit_t *self, cohort_err_t *err)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    if (fd < 0)
        return cohort_err_set(err, "bench: socket: %s", strerror(errno));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
        close(fd);
        return cohort_err_set(err, "bench: cannot hold a port on 127.0.0.1: %s", strerror(errno));
    }
    self->held[self->held_count++] = fd;
    return ntohs(a.sin_port);
}

static int s_rm(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int s_write(const char *dir, const char *name, const char *text, size_t len, mode_t mode,
                   cohort_err_t *err)
{
    char *path = cohort_sprintf("%s/%s", dir, name);
    int rc = cohort_fs_write_atomic(path, text, len, mode, err);
    free(path);
    return rc;
}

/* One member's key, certificate and node config; adds it to the roster. */
static int s_member(cohort_benchkit_t *self, const cohort_benchkit_member_t *m, X509 *ca,
                    EVP_PKEY *ca_key, cohort_roster_t *r, cohort_err_t *err)
{
    int rc = -1;
    EVP_PKEY *k = cohort_key_generate(COHORT_KEY_X25519);
    X509 *cert = NULL;
    char *ep = NULL, *yaml = NULL, *path = NULL;
    int port = s_hold_port(self, err);
    int endpoint_port = port < 0 ? -1 : m->unreachable ? s_hold_port(self, err) : port;
    if (endpoint_port < 0)
        goto out;
    if (cohort_cert_issue(ca, ca_key, m->name, k, 5, &cert, err) < 0)
        goto out;
    ep = cohort_sprintf("tcp://127.0.0.1:%d", endpoint_port);
    const char *eps[] = {ep};
    if (cohort_roster_add(r, m->name, cert, m->roles, "", eps, 1, err) < 0)
        goto out;
    path = cohort_sprintf("%s/%s.key", self->dir, m->name);
    if (cohort_key_save_private(path, k, false, err) < 0)
        goto out;
    free(path);
    path = cohort_sprintf("%s/%s.crt", self->dir, m->name);
    if (cohort_cert_save(path, cert, err) < 0)
        goto out;
    free(path);
    path = cohort_sprintf("%s.yaml", m->name);
    yaml = cohort_sprintf("node:\n  name: %s\n  state_dir: %s-state\n"
                          "identity:\n  key: %s.key\n  cert: %s.crt\n"
                          "trust:\n  ca: [ca.crt]\n"
                          "listen:\n  address: 127.0.0.1\n  port: %d\n"
                          "  punch_port: 0\n%s",
                          m->name, m->name, m->name, m->name, port, m->config ? m->config : "");
    rc = s_write(self->dir, path, yaml, strlen(yaml), 0644, err);
out:
    free(path);
    free(yaml);
    free(ep);
    X509_free(cert);
    EVP_PKEY_free(k);
    return rc;
}

int cohort_benchkit_open(const cohort_benchkit_member_t *members, int count,
                         cohort_benchkit_t **out, cohort_err_t *err)
{
    assert(members && count > 0 && count <= COHORT_BENCHKIT_MAX && out);
    int rc = -1;
    cohort_benchkit_t *self = cohort_calloc(1, sizeof *self);
    EVP_PKEY *ca_key = cohort_key_generate(COHORT_KEY_ED25519);
    X509 *ca = NULL;
    cohort_roster_t *r = cohort_roster_new("bench");
    char *text = NULL, *sig = NULL, *path = NULL;
    size_t len = 0;
    const char *base = getenv("TMPDIR");
    char tmpl[4096];
    snprintf(tmpl, sizeof tmpl, "%s/cohort-bench-XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(tmpl)) {
        cohort_err_set(err, "bench: %s: cannot create: %s", tmpl, strerror(errno));
        goto out;
    }
    self->dir = cohort_strdup(tmpl);
    if (cohort_cert_create_ca("bench", ca_key, 30, &ca, err) < 0)
        goto out;
    path = cohort_sprintf("%s/ca.crt", self->dir);
    if (cohort_cert_save(path, ca, err) < 0)
        goto out;
    for (int i = 0; i < count; i++) {
        self->names[i] = cohort_strdup(members[i].name);
        self->count = i + 1;
        if (s_member(self, &members[i], ca, ca_key, r, err) < 0)
            goto out;
    }
    if (cohort_roster_emit(r, &text, &len, err) < 0 ||
        cohort_roster_sign(text, len, ca_key, ca, &sig, err) < 0 ||
        s_write(self->dir, "roster.yaml", text, len, 0644, err) < 0 ||
        s_write(self->dir, "roster.yaml.sig", sig, strlen(sig), 0644, err) < 0)
        goto out;
    for (int i = 0; i < count; i++) {
        free(path);
        path = cohort_sprintf("%s/%s.yaml", self->dir, members[i].name);
        char why[1024];
        if (cohort_open(path, &self->nodes[i], why, sizeof why) < 0) {
            cohort_err_set(err, "bench: node %s: %s", members[i].name, why);
            goto out;
        }
    }
    *out = self;
    self = NULL;
    rc = 0;
out:
    free(path);
    free(text);
    free(sig);
    cohort_roster_destroy(&r);
    X509_free(ca);
    EVP_PKEY_free(ca_key);
    cohort_benchkit_destroy(&self);
    return rc;
}

void cohort_benchkit_destroy(cohort_benchkit_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    cohort_benchkit_t *self = *self_p;
    for (int i = 0; i < self->count; i++) {
        cohort_close(&self->nodes[i]);
        free(self->names[i]);
    }
    for (int i = 0; i < self->held_count; i++)
        close(self->held[i]);
    if (self->dir)
        nftw(self->dir, s_rm, 16, FTW_DEPTH | FTW_PHYS);
    free(self->dir);
    free(self);
    *self_p = NULL;
}

cohort_t *cohort_benchkit_node(const cohort_benchkit_t *self, int i)
{
    assert(self && i >= 0 && i < self->count);
    return self->nodes[i];
}

int cohort_benchkit_wait_up(cohort_benchkit_t *self, int timeout_ms, cohort_err_t *err)
{
    int64_t end = zclock_mono() + timeout_ms;
    for (int i = 0; i < self->count; i++) {
        bool seen[COHORT_BENCHKIT_MAX] = {false};
        seen[i] = true;
        for (;;) {
            int missing = -1;
            for (int j = 0; j < self->count && missing < 0; j++)
                if (!seen[j])
                    missing = j;
            if (missing < 0)
                break;
            if (zclock_mono() > end)
                return cohort_err_set(err, "bench: node %s did not see %s up within %d ms",
                                      self->names[i], self->names[missing], timeout_ms);
            cohort_msg_t *m = cohort_recv(self->nodes[i], 100);
            for (int j = 0; m && j < self->count; j++)
                if (cohort_msg_kind(m) == COHORT_MSG_EVENT &&
                    !strcmp(cohort_msg_subject(m), "member.up") &&
                    !strcmp(cohort_msg_sender(m), self->names[j]))
                    seen[j] = true;
            cohort_msg_destroy(&m);
        }
    }
    return 0;
}

/* Node i's view of peer: link and reason, into the buffers. */
static int s_peer_link(cohort_benchkit_t *self, int i, const char *peer, char *link, size_t cap,
                       char *reason, size_t rcap)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    if (cohort_info(self->nodes[i], "peers", &buf, &len) != COHORT_OK)
        return -1;
    Cohort__Api__Response *resp = cohort__api__response__unpack(NULL, len, buf);
    free(buf);
    if (!resp)
        return -1;
    int rc = -1;
    for (size_t k = 0; k < resp->n_peers; k++)
        if (!strcmp(resp->peers[k]->name, peer)) {
            snprintf(link, cap, "%s", resp->peers[k]->link);
            snprintf(reason, rcap, "%s", resp->peers[k]->reason);
            rc = 0;
        }
    cohort__api__response__free_unpacked(resp, NULL);
    return rc;
}

int cohort_benchkit_wait_link(cohort_benchkit_t *self, int i, const char *peer, const char *link,
                              int timeout_ms, cohort_err_t *err)
{
    int64_t end = zclock_mono() + timeout_ms;
    char have[32] = "", reason[64] = "";
    for (;;) {
        if (s_peer_link(self, i, peer, have, sizeof have, reason, sizeof reason) == 0 &&
            !strcmp(have, link))
            return 0;
        if (zclock_mono() > end)
            return cohort_err_set(err, "bench: %s: peer %s on link '%s' (reason '%s'), wanted %s",
                                  self->names[i], peer, have, reason, link);
        zclock_sleep(50);
    }
}

int cohort_benchkit_counters(cohort_benchkit_t *self, int i, cohort_benchkit_counters_t *out)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    memset(out, 0, sizeof *out);
    if (cohort_info(self->nodes[i], "status", &buf, &len) != COHORT_OK)
        return -1;
    Cohort__Api__Response *resp = cohort__api__response__unpack(NULL, len, buf);
    free(buf);
    if (!resp)
        return -1;
    const Cohort__Api__Status *st = resp->status_info;
    if (st && st->counters) {
        out->queue_full = st->counters->queue_full;
        out->delivery_dropped = st->counters->delivery_dropped;
        out->resent = st->counters->resent;
        out->messages_in = st->counters->messages_in;
        out->messages_out = st->counters->messages_out;
        out->missed_wakeups = st->counters->missed_wakeups;
    }
    if (st && st->links) {
        out->relay_frames = st->links->relay_frames;
        out->relay_dropped = st->links->relay_dropped;
    }
    cohort__api__response__free_unpacked(resp, NULL);
    return 0;
}

/* ---- figures ---- */

static int s_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

double cohort_benchkit_percentile(double *v, size_t n, double p)
{
    if (n == 0)
        return 0;
    qsort(v, n, sizeof *v, s_cmp);
    /* nearest rank: the smallest value with at least p% of values <= it */
    size_t rank = (size_t)(p / 100.0 * (double)n + 0.999999);
    if (rank < 1)
        rank = 1;
    if (rank > n)
        rank = n;
    return v[rank - 1];
}

double cohort_benchkit_median(double *v, size_t n)
{
    if (n == 0)
        return 0;
    qsort(v, n, sizeof *v, s_cmp);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int cohort_benchkit_rss(uint64_t *rss_kib, uint64_t *hwm_kib)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (!f)
        return -1;
    char line[256];
    int found = 0;
    unsigned long long v = 0;
    while (fgets(line, sizeof line, f)) {
        if (sscanf(line, "VmRSS: %llu kB", &v) == 1) {
            if (rss_kib)
                *rss_kib = v;
            found++;
        } else if (sscanf(line, "VmHWM: %llu kB", &v) == 1) {
            if (hwm_kib)
                *hwm_kib = v;
            found++;
        }
    }
    fclose(f);
    return found == 2 ? 0 : -1;
}

int cohort_benchkit_rss_reset(void)
{
    malloc_trim(0);
    FILE *f = fopen("/proc/self/clear_refs", "w");
    if (!f)
        return -1;
    int rc = fputs("5", f) < 0 ? -1 : 0;
    return fclose(f) != 0 ? -1 : rc;
}

int64_t cohort_benchkit_usecs(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}
