/*
 * metrics: cohortd's Prometheus endpoint. See metrics.h.
 *
 * The published snapshot (text, len, node_ok, ok_at) is the only state the
 * two threads share, and only under lock; everything else here belongs to
 * the zloop thread. The listening socket is made here rather than by
 * libmicrohttpd so a failing bind reports its errno to the operator.
 */
#include "daemon/metrics.h"
#include "pki/cert.h"
#include "util/log.h"
#include "util/mem.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* Scrapers at once, and how long an idle one may keep its connection. */
#define S_MAX_CONNECTIONS 16
#define S_CONNECTION_TIMEOUT_S 10
/* Distinct label values one family counts (the known ones are seeded). */
#define S_MAX_LABELS 16

typedef struct {
    char fingerprint[COHORT_CERT_FP_HEX_LEN + 1];
    char name[COHORT_CERT_NAME_MAX];
    time_t not_after;
} s_ca_t;

struct cohort_metrics {
    char *address;
    struct MHD_Daemon *httpd;
    /* zloop thread only */
    cohort_t *node;
    cohort_api_server_t *api;
    zloop_t *loop;
    int timer_id;
    bool have_cert;
    time_t cert_not_after;
    s_ca_t *cas;
    size_t ca_count;
    /* shared with the HTTP thread, under lock */
    pthread_mutex_t lock;
    char *text;
    size_t len;
    bool node_ok;  /* the last snapshot reached the node */
    int64_t ok_at; /* zclock_mono() of the last one that did */
};

/* ---- a growing text buffer ---- */

typedef struct {
    char *data;
    size_t len, cap;
} s_buf_t;

static void s_printf(s_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void s_printf(s_buf_t *b, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->data ? b->data + b->len : NULL, b->cap - b->len, fmt, ap);
        va_end(ap);
        assert(n >= 0);
        if ((size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        b->cap = (b->cap + (size_t)n + 1) * 2;
        b->data = cohort_realloc(b->data, b->cap);
    }
}

/* A label value as the exposition format quotes it: \ " and newline escaped. */
static void s_label_value(s_buf_t *b, const char *text)
{
    for (const char *p = text; *p; p++) {
        if (*p == '\\')
            s_printf(b, "\\\\");
        else if (*p == '"')
            s_printf(b, "\\\"");
        else if (*p == '\n')
            s_printf(b, "\\n");
        else
            s_printf(b, "%c", *p);
    }
}

static void s_family(s_buf_t *b, const char *name, const char *type, const char *help)
{
    s_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A family of one sample without labels. */
static void s_single(s_buf_t *b, const char *name, const char *type, const char *help,
                     uint64_t value)
{
    s_family(b, name, type, help);
    s_printf(b, "%s %" PRIu64 "\n", name, value);
}

/* ---- counting by label ---- */

typedef struct {
    const char *name[S_MAX_LABELS]; /* borrowed from the seed or the response */
    uint64_t count[S_MAX_LABELS];
    size_t n;
} s_tally_t;

/* A tally holding the known values (NULL-terminated) at 0, so their
 * series exist before anything is counted. */
static void s_tally_seed(s_tally_t *t, const char *const *known)
{
    memset(t, 0, sizeof *t);
    for (size_t i = 0; known[i] && t->n < S_MAX_LABELS; i++)
        t->name[t->n++] = known[i];
}

static void s_tally_add(s_tally_t *t, const char *name, uint64_t by)
{
    for (size_t i = 0; i < t->n; i++)
        if (!strcmp(t->name[i], name)) {
            t->count[i] += by;
            return;
        }
    if (t->n < S_MAX_LABELS) { /* a value this version does not know yet */
        t->name[t->n] = name;
        t->count[t->n++] = by;
    }
}

static void s_tally_write(s_buf_t *b, const char *name, const char *type, const char *help,
                          const char *label, const s_tally_t *t)
{
    s_family(b, name, type, help);
    for (size_t i = 0; i < t->n; i++) {
        s_printf(b, "%s{%s=\"", name, label);
        s_label_value(b, t->name[i]);
        s_printf(b, "\"} %" PRIu64 "\n", t->count[i]);
    }
}

/* ---- certificates ---- */

static void s_load_certs(cohort_metrics_t *self, const cohort_config_t *cfg)
{
    cohort_err_t err;
    cohort_err_clear(&err);
    X509 *cert = NULL;
    cohort_cert_info_t info;
    self->have_cert = false;
    if (cohort_cert_load(cfg->identity_cert, &cert, &err) == 0) {
        cohort_cert_describe(cert, &info);
        self->have_cert = true;
        self->cert_not_after = info.not_after;
        X509_free(cert);
    } else {
        COHORT_LOG(COHORT_LOG_WARN, "metrics.cert_unreadable file=%s error=\"%s\"",
                   cfg->identity_cert, cohort_err_text(&err));
    }
    free(self->cas);
    self->cas = NULL;
    self->ca_count = 0;
    for (size_t i = 0; i < cfg->trust_ca_count; i++) {
        STACK_OF(X509) *bundle = NULL;
        cohort_err_clear(&err);
        if (cohort_cert_load_bundle(cfg->trust_ca[i], &bundle, &err) < 0) {
            COHORT_LOG(COHORT_LOG_WARN, "metrics.cert_unreadable file=%s error=\"%s\"",
                       cfg->trust_ca[i], cohort_err_text(&err));
            continue;
        }
        for (int j = 0; j < sk_X509_num(bundle); j++) {
            cohort_cert_describe(sk_X509_value(bundle, j), &info);
            bool seen = false; /* the same CA listed twice is one series */
            for (size_t k = 0; k < self->ca_count && !seen; k++)
                seen = !strcmp(self->cas[k].fingerprint, info.fingerprint_hex);
            if (seen)
                continue;
            self->cas = cohort_realloc(self->cas, (self->ca_count + 1) * sizeof *self->cas);
            s_ca_t *ca = &self->cas[self->ca_count++];
            snprintf(ca->fingerprint, sizeof ca->fingerprint, "%s", info.fingerprint_hex);
            snprintf(ca->name, sizeof ca->name, "%s", info.name);
            ca->not_after = info.not_after;
        }
        sk_X509_pop_free(bundle, X509_free);
    }
}

static double s_days_left(time_t not_after, time_t now)
{
    return (double)(not_after - now) / 86400.0;
}

/* ---- the snapshot (zloop thread) ---- */

static Cohort__Api__Response *s_info(cohort_t *node, const char *what)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    if (cohort_info(node, what, &buf, &len) != COHORT_OK)
        return NULL;
    Cohort__Api__Response *resp = cohort__api__response__unpack(NULL, len, buf);
    free(buf);
    return resp;
}

static void s_render_node(s_buf_t *b, const Cohort__Api__Status *st,
                          const Cohort__Api__Response *peers, const Cohort__Api__Response *members,
                          const Cohort__Api__ApiStats *api)
{
    static const Cohort__Api__Counters no_counters = COHORT__API__COUNTERS__INIT;
    static const Cohort__Api__Links no_links = COHORT__API__LINKS__INIT;
    static const char *const member_states[] = {"alive", "suspect", "failed",
                                                "left",  "unknown", NULL};
    static const char *const peer_states[] = {"up", "connecting", "down", NULL};
    static const char *const rungs[] = {"direct", "punched", "relayed", "none", NULL};
    const Cohort__Api__Counters *c = st->counters ? st->counters : &no_counters;
    const Cohort__Api__Links *l = st->links ? st->links : &no_links;

    s_family(b, "cohort_uptime_seconds", "gauge", "Seconds since the node started.");
    s_printf(b, "cohort_uptime_seconds %.3f\n", (double)st->uptime_ms / 1000.0);
    s_single(b, "cohort_roster_serial", "gauge", "Serial of the roster the node holds.",
             st->roster_serial);

    s_tally_t t;
    s_tally_seed(&t, member_states);
    for (size_t i = 0; members && i < members->n_members; i++)
        s_tally_add(&t, members->members[i]->state, 1);
    s_tally_write(b, "cohort_members", "gauge",
                  "Roster members in this node's membership view (itself included), by state.",
                  "state", &t);

    s_tally_t ps, rs;
    s_tally_seed(&ps, peer_states);
    s_tally_seed(&rs, rungs);
    uint64_t msgs_in = 0, msgs_out = 0, bytes_in = 0, bytes_out = 0, queued = 0;
    for (size_t i = 0; peers && i < peers->n_peers; i++) {
        const Cohort__Api__Peer *p = peers->peers[i];
        s_tally_add(&ps, p->state, 1);
        s_tally_add(&rs, p->link[0] ? p->link : "none", 1);
        msgs_in += p->msgs_in;
        msgs_out += p->msgs_out;
        bytes_in += p->bytes_in;
        bytes_out += p->bytes_out;
        queued += p->receive_queued;
    }
    s_tally_write(b, "cohort_peers", "gauge", "Peers (other roster members) by connection state.",
                  "state", &ps);
    s_tally_write(b, "cohort_links", "gauge",
                  "Peers by the rung of the link in use (none: no link).", "rung", &rs);
    s_single(b, "cohort_messages_in_total", "counter", "Frames received, summed over peers.",
             msgs_in);
    s_single(b, "cohort_messages_out_total", "counter", "Frames sent, summed over peers.",
             msgs_out);
    s_single(b, "cohort_bytes_in_total", "counter", "Bytes received, summed over peers.", bytes_in);
    s_single(b, "cohort_bytes_out_total", "counter", "Bytes sent, summed over peers.", bytes_out);

    s_single(b, "cohort_punch_attempts_total", "counter", "Hole-punch attempts.",
             l->punch_attempts);
    s_single(b, "cohort_punch_ok_total", "counter", "Hole punches that made a link.", l->punch_ok);
    s_single(b, "cohort_punch_failed_total", "counter", "Hole punches that failed.",
             l->punch_failed);
    s_single(b, "cohort_rung_switches_total", "counter",
             "Times a link moved to another rung of the ladder.", l->rung_switches);
    s_single(b, "cohort_relay_frames_total", "counter", "Frames this node relayed for others.",
             l->relay_frames);
    s_single(b, "cohort_relay_bytes_total", "counter", "Bytes this node relayed for others.",
             l->relay_bytes);
    s_single(b, "cohort_relay_dropped_total", "counter",
             "Frames this node refused to relay (policy, quota, unknown target).",
             l->relay_dropped);
    s_single(b, "cohort_seal_rejected_total", "counter",
             "Relayed frames addressed to this node that did not open.", l->seal_rejected);
    s_single(b, "cohort_session_resent_total", "counter", "Reliable messages sent again.",
             c->resent);
    s_single(b, "cohort_session_duplicates_dropped_total", "counter",
             "Reliable messages received twice and dropped.", c->duplicates_dropped);
    s_single(b, "cohort_handshakes_refused_total", "counter",
             "Overlay handshakes refused (not an admitted member).", c->handshakes_refused);
    s_single(b, "cohort_handshakes_incomplete_total", "counter",
             "Overlay connections closed before their handshake completed.",
             c->handshakes_incomplete);

    s_family(b, "cohort_queue_drops_total", "counter",
             "Messages not taken, by reason (delivery_deferred ones are resent later).");
    s_printf(b, "cohort_queue_drops_total{reason=\"queue_full\"} %" PRIu64 "\n", c->queue_full);
    s_printf(b, "cohort_queue_drops_total{reason=\"delivery_dropped\"} %" PRIu64 "\n",
             c->delivery_dropped);
    s_printf(b, "cohort_queue_drops_total{reason=\"delivery_deferred\"} %" PRIu64 "\n",
             c->delivery_deferred);
    if (api)
        s_printf(b, "cohort_queue_drops_total{reason=\"client_dropped\"} %" PRIu64 "\n",
                 api->client_dropped);
    s_printf(b, "cohort_queue_drops_total{reason=\"oversized\"} %" PRIu64 "\n",
             c->oversized_dropped);
    s_printf(b, "cohort_queue_drops_total{reason=\"garbage\"} %" PRIu64 "\n", c->garbage_dropped);

    s_single(b, "cohort_delivery_queued_total", "counter",
             "Deliveries that waited in their sender's receive queue (the inbox was full).",
             c->delivery_queued);
    s_single(b, "cohort_receive_queued", "gauge",
             "Deliveries waiting in the peers' receive queues for room in the inbox.", queued);
    if (peers && peers->n_peers) {
        s_family(b, "cohort_peer_throttled_total", "counter",
                 "Reliable messages taken back (resent later) because the peer's receive queue "
                 "was full, by peer.");
        for (size_t i = 0; i < peers->n_peers; i++) {
            s_printf(b, "cohort_peer_throttled_total{peer=\"");
            s_label_value(b, peers->peers[i]->name);
            s_printf(b, "\"} %" PRIu64 "\n", peers->peers[i]->throttled);
        }
    }

    if (api) {
        s_single(b, "cohort_api_clients", "gauge",
                 "Local API clients holding subscriptions, services or events.", api->clients);
        s_single(b, "cohort_api_requests_total", "counter", "Local API requests handled.",
                 api->requests);
    }
}

static void s_render_certs(const cohort_metrics_t *self, s_buf_t *b)
{
    time_t now = time(NULL);
    if (self->have_cert) {
        s_family(b, "cohort_cert_days_to_expiry", "gauge",
                 "Days until this node's certificate (identity.cert) expires.");
        s_printf(b, "cohort_cert_days_to_expiry %.3f\n", s_days_left(self->cert_not_after, now));
    }
    if (self->ca_count) {
        s_family(b, "cohort_ca_days_to_expiry", "gauge",
                 "Days until each trusted CA certificate (trust.ca) expires.");
        for (size_t i = 0; i < self->ca_count; i++) {
            s_printf(b, "cohort_ca_days_to_expiry{ca=\"");
            s_label_value(b, self->cas[i].name);
            s_printf(b, "\",fingerprint=\"%s\"} %.3f\n", self->cas[i].fingerprint,
                     s_days_left(self->cas[i].not_after, now));
        }
    }
}

/* Builds a new exposition and publishes it. */
static void s_refresh(cohort_metrics_t *self)
{
    s_buf_t b = {NULL, 0, 0};
    Cohort__Api__Response *status = s_info(self->node, "status");
    bool ok = status && status->status_info;
    s_single(&b, "cohort_up", "gauge", "1 when the node answered the last snapshot, else 0.",
             ok ? 1 : 0);
    if (ok) {
        Cohort__Api__Response *peers = s_info(self->node, "peers");
        Cohort__Api__Response *members = s_info(self->node, "members");
        Cohort__Api__ApiStats api;
        if (self->api)
            cohort_api_server_stats(self->api, &api);
        s_render_node(&b, status->status_info, peers, members, self->api ? &api : NULL);
        if (peers)
            cohort__api__response__free_unpacked(peers, NULL);
        if (members)
            cohort__api__response__free_unpacked(members, NULL);
    }
    if (status)
        cohort__api__response__free_unpacked(status, NULL);
    s_render_certs(self, &b);

    pthread_mutex_lock(&self->lock);
    free(self->text);
    self->text = b.data;
    self->len = b.len;
    self->node_ok = ok;
    if (ok)
        self->ok_at = zclock_mono();
    pthread_mutex_unlock(&self->lock);
}

static int s_on_timer(zloop_t *loop, int timer_id, void *arg)
{
    (void)loop;
    (void)timer_id;
    s_refresh(arg);
    return 0;
}

/* ---- HTTP (libmicrohttpd's thread: the published snapshot only) ---- */

static enum MHD_Result s_reply(struct MHD_Connection *conn, unsigned int code, char *body,
                               size_t len, bool owned, const char *type)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(
        len, body, owned ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
    if (!resp) {
        if (owned)
            free(body);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    if (code == MHD_HTTP_METHOD_NOT_ALLOWED)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
    enum MHD_Result r = MHD_queue_response(conn, code, resp);
    MHD_destroy_response(resp);
    return r;
}

static enum MHD_Result s_handler(void *cls, struct MHD_Connection *conn, const char *url,
                                 const char *method, const char *version, const char *upload_data,
                                 size_t *upload_data_size, void **req_cls)
{
    (void)version;
    (void)upload_data;
    (void)req_cls;
    static char not_found[] = "not found: try /metrics or /healthz\n";
    static char not_allowed[] = "method not allowed\n";
    static char healthy[] = "ok\n";
    static char unhealthy[] = "unavailable: the node did not answer\n";
    static const char plain[] = "text/plain; charset=utf-8";
    cohort_metrics_t *self = cls;
    if (strcmp(method, MHD_HTTP_METHOD_GET) && strcmp(method, MHD_HTTP_METHOD_HEAD)) {
        *upload_data_size = 0; /* a body, if any, is not read */
        return s_reply(conn, MHD_HTTP_METHOD_NOT_ALLOWED, not_allowed, strlen(not_allowed), false,
                       plain);
    }
    if (!strcmp(url, "/metrics")) {
        pthread_mutex_lock(&self->lock);
        size_t len = self->len;
        char *copy = cohort_malloc(len + 1);
        if (len)
            memcpy(copy, self->text, len);
        pthread_mutex_unlock(&self->lock);
        return s_reply(conn, MHD_HTTP_OK, copy, len, true,
                       "text/plain; version=0.0.4; charset=utf-8");
    }
    if (!strcmp(url, "/healthz")) {
        pthread_mutex_lock(&self->lock);
        bool ok = self->node_ok && zclock_mono() - self->ok_at <= COHORT_METRICS_STALE_MS;
        pthread_mutex_unlock(&self->lock);
        return ok ? s_reply(conn, MHD_HTTP_OK, healthy, strlen(healthy), false, plain)
                  : s_reply(conn, MHD_HTTP_SERVICE_UNAVAILABLE, unhealthy, strlen(unhealthy), false,
                            plain);
    }
    return s_reply(conn, MHD_HTTP_NOT_FOUND, not_found, strlen(not_found), false, plain);
}

/* ---- the listener ---- */

/* IP:PORT or [IPv6]:PORT (the config checked the form) into sa. */
static int s_parse_address(const char *text, struct sockaddr_storage *sa, socklen_t *sa_len)
{
    char host[INET6_ADDRSTRLEN];
    const char *colon = strrchr(text, ':');
    const char *start = text[0] == '[' ? text + 1 : text;
    const char *end = text[0] == '[' ? colon - 1 : colon;
    if (!colon || end < start || (size_t)(end - start) >= sizeof host)
        return -1;
    memcpy(host, start, (size_t)(end - start));
    host[end - start] = '\0';
    long port = strtol(colon + 1, NULL, 10);
    if (port < 1 || port > 65535)
        return -1;
    memset(sa, 0, sizeof *sa);
    if (text[0] == '[') {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)sa;
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)port);
        *sa_len = sizeof *in6;
        return inet_pton(AF_INET6, host, &in6->sin6_addr) == 1 ? 0 : -1;
    }
    struct sockaddr_in *in4 = (struct sockaddr_in *)sa;
    in4->sin_family = AF_INET;
    in4->sin_port = htons((uint16_t)port);
    *sa_len = sizeof *in4;
    return inet_pton(AF_INET, host, &in4->sin_addr) == 1 ? 0 : -1;
}

static int s_listen(const char *address, cohort_err_t *err)
{
    struct sockaddr_storage sa;
    socklen_t sa_len = 0;
    if (s_parse_address(address, &sa, &sa_len) < 0) {
        cohort_err_set(err, "metrics.address: not IP:PORT, got '%s'", address);
        return -1;
    }
    int fd = socket(sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        cohort_err_set(err, "metrics.address: %s: socket: %s", address, strerror(errno));
        return -1;
    }
    int on = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    if (sa.ss_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof on);
    if (bind(fd, (struct sockaddr *)&sa, sa_len) < 0 || listen(fd, 64) < 0) {
        cohort_err_set(err, "metrics.address: cannot listen on %s: %s", address, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

int cohort_metrics_open(const cohort_config_t *cfg, cohort_metrics_t **out, cohort_err_t *err)
{
    assert(cfg && out && cfg->metrics_address[0]);
    int fd = s_listen(cfg->metrics_address, err);
    if (fd < 0)
        return -1;
    cohort_metrics_t *self = cohort_calloc(1, sizeof *self);
    self->address = cohort_strdup(cfg->metrics_address);
    self->timer_id = -1;
    pthread_mutex_init(&self->lock, NULL);
    s_load_certs(self, cfg);
    /* The HTTP thread is created here, after cohortd blocked its signals:
     * it inherits the mask, so signals still reach only the signalfd. */
    self->httpd = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO, 0, NULL, NULL,
                                   s_handler, self, MHD_OPTION_LISTEN_SOCKET, (MHD_socket)fd,
                                   MHD_OPTION_CONNECTION_LIMIT, (unsigned int)S_MAX_CONNECTIONS,
                                   MHD_OPTION_CONNECTION_TIMEOUT,
                                   (unsigned int)S_CONNECTION_TIMEOUT_S, MHD_OPTION_END);
    if (!self->httpd) {
        cohort_err_set(err, "metrics.address: %s: libmicrohttpd did not start",
                       cfg->metrics_address);
        close(fd);
        cohort_metrics_destroy(&self);
        return -1;
    }
    COHORT_LOG(COHORT_LOG_INFO, "metrics.listening address=%s", self->address);
    *out = self;
    return 0;
}

void cohort_metrics_attach(cohort_metrics_t *self, cohort_t *node, cohort_api_server_t *api,
                           zloop_t *loop)
{
    assert(self && node && loop && !self->loop);
    self->node = node;
    self->api = api;
    self->loop = loop;
    s_refresh(self);
    self->timer_id = zloop_timer(loop, COHORT_METRICS_REFRESH_MS, 0, s_on_timer, self);
}

void cohort_metrics_reload(cohort_metrics_t *self, const cohort_config_t *cfg)
{
    assert(self && cfg);
    s_load_certs(self, cfg);
    if (self->node)
        s_refresh(self);
}

void cohort_metrics_destroy(cohort_metrics_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    cohort_metrics_t *self = *self_p;
    /* The HTTP thread first: nothing reads the snapshot after this. */
    if (self->httpd)
        MHD_stop_daemon(self->httpd);
    if (self->loop && self->timer_id >= 0)
        zloop_timer_end(self->loop, self->timer_id);
    pthread_mutex_destroy(&self->lock);
    free(self->text);
    free(self->cas);
    free(self->address);
    free(self);
    *self_p = NULL;
}
