/*
 * Node tests: three real nodes in one process (each with its own ZeroMQ
 * context and ZAP handler) on 127.0.0.1, admitted by a throwaway CA, driven
 * through the public libcohort API; plus a stranger with a real CURVE key.
 */
#include "testutil.h"

#include "api.pb-c.h"
#include "cluster.h"
#include "cohort.h"
#include "pki/cert.h"
#include "pki/key.h"
#include "roster/roster.h"
#include "util/fs.h"
#include "util/log.h"
#include "util/mem.h"
#include "wire/wire.h"

#include <arpa/inet.h>
#include <czmq.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdatomic.h>
enum { ALPHA, BETA, GAMMA, ROGUE, OLD, GONE, COUNT };

static const cluster_member_t s_members[COUNT] = {
    {.name = "alpha", .site = "hq", .run = true},
    {.name = "beta", .site = "hq", .run = true},
    {.name = "gamma", .site = "plant", .run = true},
    {.name = "rogue", .site = "hq"},                 /* admitted; the test plays it */
    {.name = "old", .site = "hq", .expired = true},  /* certificate expired */
    {.name = "gone", .site = "hq", .revoked = true}, /* listed but revoked */
};

typedef struct {
    cluster_t *c;
    cohort_t *nodes[3];
    int ports[3];
    uint8_t keys[3][COHORT_KEY_LEN];
} fixture_t;

static const char *const s_names[3] = {"alpha", "beta", "gamma"};

static cohort_msg_t *s_next(cohort_t *c, int ms)
{
    int64_t end = zclock_mono() + ms;
    while (zclock_mono() < end) {
        cohort_msg_t *m = cohort_recv(c, 50);
        if (m && cohort_msg_kind(m) != COHORT_MSG_EVENT)
            return m;
        cohort_msg_destroy(&m);
    }
    return NULL;
}

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof *f);
    f->c = cluster_new(s_members, COUNT);
    cluster_wait_up(f->c, 10000);
    for (int i = 0; i < 3; i++) {
        f->nodes[i] = f->c->nodes[i];
        f->ports[i] = f->c->ports[i];
        memcpy(f->keys[i], f->c->pub[i], COHORT_KEY_LEN);
    }
    (void)s_names;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    cluster_destroy(&f->c);
    free(f);
    return 0;
}

/* alpha's counters */
static Cohort__Api__Counters s_counters(fixture_t *f)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    assert_int_equal(cohort_info(f->nodes[ALPHA], "status", &buf, &len), COHORT_OK);
    Cohort__Api__Response *resp = cohort__api__response__unpack(NULL, len, buf);
    assert_non_null(resp);
    Cohort__Api__Counters out = *resp->status_info->counters;
    cohort__api__response__free_unpacked(resp, NULL);
    free(buf);
    return out;
}

/* A real CURVE DEALER to alpha with member i's own keys. */
static zsock_t *s_curve_client(fixture_t *f, int i)
{
    char pub[41], sec[41], server[41];
    cluster_z85(f->c, i, pub, sec);
    cohort_key_z85(f->keys[ALPHA], server);
    zsock_t *d = zsock_new(ZMQ_DEALER);
    zsock_set_curve_serverkey(d, server);
    zsock_set_curve_publickey(d, pub);
    zsock_set_curve_secretkey(d, sec);
    zsock_set_linger(d, 0);
    assert_int_equal(zsock_connect(d, "tcp://127.0.0.1:%d", f->ports[ALPHA]), 0);
    return d;
}

static void s_wait_counter(fixture_t *f, size_t offset, uint64_t above)
{
    for (int i = 0; i < 100; i++) {
        Cohort__Api__Counters c = s_counters(f);
        if (*(uint64_t *)((char *)&c + offset) > above)
            return;
        zclock_sleep(50);
    }
    fail_msg("counter at offset %zu never went above %llu", offset, (unsigned long long)above);
}

static void test_expired_and_revoked_members_never_complete_a_handshake(void **state)
{
    fixture_t *f = *state;
    for (int who = OLD; who <= GONE; who++) {
        uint64_t before = s_counters(f).handshakes_refused;
        zsock_t *d = s_curve_client(f, who);
        zstr_sendx(d, "let me in", NULL);
        s_wait_counter(f, offsetof(Cohort__Api__Counters, handshakes_refused), before);
        zsock_destroy(&d);
    }
    assert_int_equal(s_counters(f).unknown_sender, 0);
    assert_null(s_next(f->nodes[ALPHA], 200));
}

static void test_hostile_admitted_peer_is_counted_and_others_keep_working(void **state)
{
    fixture_t *f = *state;
    zsock_t *d = s_curve_client(f, ROGUE);
    Cohort__Api__Counters before = s_counters(f);

    /* 1. bytes that are no envelope */
    zstr_sendx(d, "\xff\xff garbage", NULL);
    s_wait_counter(f, offsetof(Cohort__Api__Counters, garbage_dropped), before.garbage_dropped);

    /* 2. an envelope of a future version */
    Cohort__Wire__Envelope env = COHORT__WIRE__ENVELOPE__INIT;
    Cohort__Wire__Ping ping = COHORT__WIRE__PING__INIT;
    env.version = 99;
    env.body_case = COHORT__WIRE__ENVELOPE__BODY_PING;
    env.ping = &ping;
    uint8_t buf[64];
    size_t len = cohort__wire__envelope__pack(&env, buf);
    uint64_t g = s_counters(f).garbage_dropped;
    zsock_send(d, "b", buf, len);
    s_wait_counter(f, offsetof(Cohort__Api__Counters, garbage_dropped), g);

    /* 3. a hello that claims to be alpha's neighbour beta */
    Cohort__Wire__Hello hello = COHORT__WIRE__HELLO__INIT;
    char beta[] = "beta";
    hello.node = beta;
    env.body_case = COHORT__WIRE__ENVELOPE__BODY_HELLO;
    env.hello = &hello;
    uint8_t *wire = NULL;
    cohort_wire_encode(&env, &wire, &len);
    zsock_send(d, "b", wire, len);
    free(wire);
    s_wait_counter(f, offsetof(Cohort__Api__Counters, unknown_sender), before.unknown_sender);

    /* 5. a message holding a field numbered 0 (an overlong tag: protobuf-c
     * decodes it but could not encode it again for the application) */
    Cohort__Wire__Data data = COHORT__WIRE__DATA__INIT;
    uint8_t field0[] = {0x08, 0x00, 0x82, 0x00, 0x01, 'A'};
    data.body.data = field0;
    data.body.len = sizeof field0;
    env.version = 0;
    env.body_case = COHORT__WIRE__ENVELOPE__BODY_DATA;
    env.data = &data;
    cohort_wire_encode(&env, &wire, &len);
    g = s_counters(f).garbage_dropped;
    zsock_send(d, "b", wire, len);
    free(wire);
    s_wait_counter(f, offsetof(Cohort__Api__Counters, garbage_dropped), g);

    /* 4. a frame over limits.max_message_size (1 MiB by default) */
    size_t big = 1024 * 1024 + 4096;
    uint8_t *huge = calloc(1, big);
    zsock_send(d, "b", huge, big);
    free(huge);
    s_wait_counter(f, offsetof(Cohort__Api__Counters, oversized_dropped), before.oversized_dropped);
    zsock_destroy(&d);

    /* Nothing of it reached the application, and everyone else still works. */
    assert_null(s_next(f->nodes[ALPHA], 200));
    cohort_msg_t *m = cohort_msg_new("still", "ok", 2);
    assert_int_equal(cohort_send(f->nodes[BETA], "alpha", &m, 0), COHORT_OK);
    cohort_msg_t *got = s_next(f->nodes[ALPHA], 3000);
    assert_non_null(got);
    assert_string_equal(cohort_msg_sender(got), "beta");
    cohort_msg_destroy(&got);
}

/* Counts the log lines that mention s_refused_key (any thread). */
static char s_refused_key[41];
static atomic_int s_refused_lines;
static void s_count_refused(void *arg, cohort_log_level_t level, const char *line)
{
    (void)arg;
    (void)level;
    if (strstr(line, "handshake.refused") && strstr(line, s_refused_key))
        atomic_fetch_add(&s_refused_lines, 1);
}

static void test_stranger_with_a_real_curve_key_never_completes_a_handshake(void **state)
{
    fixture_t *f = *state;
    /* A valid-looking CURVE client with its own key, aimed at alpha with
     * alpha's real server key: ZAP must refuse it, nothing reaches alpha.
     * It dials three times: one log line, not three (a refused key is
     * logged at most once a minute). */
    char pub[41], sec[41], server[41];
    assert_int_equal(zmq_curve_keypair(pub, sec), 0);
    snprintf(s_refused_key, sizeof s_refused_key, "%s", pub);
    atomic_store(&s_refused_lines, 0);
    cohort_log_set_sink(s_count_refused, NULL, COHORT_LOG_WARN);
    cohort_key_z85(f->keys[ALPHA], server);
    for (int dial = 0; dial < 3; dial++) {
        Cohort__Api__Counters before = s_counters(f);
        zsock_t *d = zsock_new(ZMQ_DEALER);
        zsock_set_curve_serverkey(d, server);
        zsock_set_curve_publickey(d, pub);
        zsock_set_curve_secretkey(d, sec);
        zsock_set_linger(d, 0);
        assert_int_equal(zsock_connect(d, "tcp://127.0.0.1:%d", f->ports[ALPHA]), 0);
        zstr_sendx(d, "hello", NULL);
        s_wait_counter(f, offsetof(Cohort__Api__Counters, handshakes_refused),
                       before.handshakes_refused);
        Cohort__Api__Counters after = s_counters(f);
        assert_int_equal(after.unknown_sender, before.unknown_sender);
        assert_int_equal(after.garbage_dropped, before.garbage_dropped);
        assert_null(s_next(f->nodes[ALPHA], 200));
        zsock_destroy(&d);
    }
    cohort_log_set_sink(NULL, NULL, COHORT_LOG_ERROR);
    cluster_log_from_env();
    assert_int_equal(atomic_load(&s_refused_lines), 1);
}

static void test_garbage_bytes_on_the_overlay_port_are_counted(void **state)
{
    fixture_t *f = *state;
    uint64_t before = s_counters(f).handshakes_incomplete;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)f->ports[ALPHA]),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    char junk[4096];
    for (size_t i = 0; i < sizeof junk; i++)
        junk[i] = (char)(i * 131 + 7);
    assert_true(write(fd, junk, sizeof junk) > 0);
    close(fd);
    s_wait_counter(f, offsetof(Cohort__Api__Counters, handshakes_incomplete), before);
    /* and alpha still serves its peers */
    cohort_msg_t *m = cohort_msg_new("after", "junk", 4);
    assert_int_equal(cohort_send(f->nodes[GAMMA], "alpha", &m, 0), COHORT_OK);
    cohort_msg_t *got = s_next(f->nodes[ALPHA], 3000);
    assert_non_null(got);
    cohort_msg_destroy(&got);
}

static void test_unicast_carries_subject_headers_and_payload(void **state)
{
    fixture_t *f = *state;
    cohort_msg_t *m = cohort_msg_new("greeting", "\0hi", 3);
    cohort_msg_set_header(m, "trace-id", "42");
    assert_int_equal(cohort_send(f->nodes[0], "beta", &m, 0), COHORT_OK);
    assert_null(m);
    cohort_msg_t *got = s_next(f->nodes[1], 3000);
    assert_non_null(got);
    assert_int_equal(cohort_msg_kind(got), COHORT_MSG_UNICAST);
    assert_string_equal(cohort_msg_sender(got), "alpha");
    assert_string_equal(cohort_msg_subject(got), "greeting");
    assert_string_equal(cohort_msg_header(got, "trace-id"), "42");
    size_t len = 0;
    const void *data = cohort_msg_payload(got, &len);
    assert_int_equal(len, 3);
    assert_memory_equal(data, "\0hi", 3);
    cohort_msg_destroy(&got);

    m = cohort_msg_new("x", "y", 1);
    assert_int_equal(cohort_send(f->nodes[0], "nobody", &m, 0), COHORT_UNKNOWN_NODE);
}

static void test_request_reaches_a_provider_and_unknown_service_has_no_responders(void **state)
{
    fixture_t *f = *state;
    cohort_msg_t *req = cohort_msg_new("", "ping", 4), *reply = NULL;
    int64_t t0 = zclock_mono();
    assert_int_equal(cohort_request(f->nodes[0], "nope", &req, 2000, &reply), COHORT_NO_RESPONDERS);
    assert_true(zclock_mono() - t0 < 1000); /* at once, not at the timeout */
    cohort_msg_destroy(&reply);

    assert_int_equal(cohort_serve(f->nodes[2], "echo"), COHORT_OK);
    assert_int_equal(cohort_serve(f->nodes[2], "bad service"), COHORT_INVALID);
    /* wait until alpha has heard of gamma's service */
    cohort_status_t st = COHORT_NO_RESPONDERS;
    for (int i = 0; i < 50 && st == COHORT_NO_RESPONDERS; i++) {
        req = cohort_msg_new("", "ping", 4);
        uint64_t id = 0;
        assert_int_equal(cohort_request_async(f->nodes[0], "echo", &req, 3000, &id), COHORT_OK);
        /* gamma answers whatever arrives */
        cohort_msg_t *in = s_next(f->nodes[2], 200);
        if (in) {
            assert_int_equal(cohort_msg_kind(in), COHORT_MSG_REQUEST);
            assert_string_equal(cohort_msg_sender(in), "alpha");
            cohort_msg_t *ans = cohort_msg_new("", "pong", 4);
            assert_int_equal(cohort_reply(f->nodes[2], in, &ans), COHORT_OK);
            cohort_msg_destroy(&in);
        }
        cohort_msg_t *r = s_next(f->nodes[0], 3000);
        assert_non_null(r);
        assert_int_equal(cohort_msg_kind(r), COHORT_MSG_REPLY);
        assert_int_equal(cohort_msg_request_id(r), id);
        st = cohort_msg_status(r);
        if (st == COHORT_OK) {
            size_t len = 0;
            assert_memory_equal(cohort_msg_payload(r, &len), "pong", 4);
            assert_string_equal(cohort_msg_sender(r), "gamma");
        }
        cohort_msg_destroy(&r);
    }
    assert_int_equal(st, COHORT_OK);

    /* A provider that never answers: the requester gets TIMEOUT. */
    req = cohort_msg_new("", "ping", 4);
    t0 = zclock_mono();
    assert_int_equal(cohort_request(f->nodes[0], "echo", &req, 300, &reply), COHORT_TIMEOUT);
    assert_true(zclock_mono() - t0 >= 250);
    cohort_msg_destroy(&reply);
    cohort_msg_t *unanswered = s_next(f->nodes[2], 1000);
    assert_non_null(unanswered);
    assert_int_equal(cohort_msg_kind(unanswered), COHORT_MSG_REQUEST);
    cohort_msg_destroy(&unanswered);
}

static void test_publish_goes_only_to_matching_subscribers(void **state)
{
    fixture_t *f = *state;
    assert_int_equal(cohort_subscribe(f->nodes[2], "orders.>"), COHORT_OK);
    assert_int_equal(cohort_subscribe(f->nodes[2], "bad..pattern"), COHORT_INVALID);
    unsigned n = 0;
    for (int i = 0; i < 100 && n == 0; i++) {
        cohort_msg_t *m = cohort_msg_new("orders.eu.new", "o1", 2);
        assert_int_equal(cohort_publish(f->nodes[0], &m, &n), COHORT_OK);
        if (!n)
            zclock_sleep(50);
    }
    assert_int_equal(n, 1);
    cohort_msg_t *got = s_next(f->nodes[2], 3000);
    assert_non_null(got);
    assert_int_equal(cohort_msg_kind(got), COHORT_MSG_PUBLISH);
    assert_string_equal(cohort_msg_subject(got), "orders.eu.new");
    cohort_msg_destroy(&got);
    assert_null(s_next(f->nodes[1], 300)); /* beta did not subscribe */

    cohort_msg_t *m = cohort_msg_new("weather.today", "x", 1);
    assert_int_equal(cohort_publish(f->nodes[0], &m, &n), COHORT_OK);
    assert_int_equal(n, 0);
    m = cohort_msg_new("orders.*", "x", 1);
    assert_int_equal(cohort_publish(f->nodes[0], &m, &n), COHORT_INVALID);

    /* Without a recipient count nothing waits: a stream of publishes
     * arrives whole, in order, headers and all; bad ones are still
     * refused at once. */
    enum { N = 2000 };
    for (unsigned i = 0; i < N; i++) {
        char text[16];
        int len = snprintf(text, sizeof text, "%u", i);
        m = cohort_msg_new("orders.eu.stream", text, (size_t)len);
        cohort_msg_set_header(m, "seq", text);
        assert_int_equal(cohort_publish(f->nodes[0], &m, NULL), COHORT_OK);
        assert_null(m);
    }
    for (unsigned i = 0; i < N; i++) {
        got = s_next(f->nodes[2], 3000);
        assert_non_null(got);
        char text[16];
        int len = snprintf(text, sizeof text, "%u", i);
        size_t plen = 0;
        const void *payload = cohort_msg_payload(got, &plen);
        assert_int_equal(plen, (size_t)len);
        assert_memory_equal(payload, text, plen);
        assert_string_equal(cohort_msg_header(got, "seq"), text);
        assert_string_equal(cohort_msg_sender(got), "alpha");
        cohort_msg_destroy(&got);
    }
    m = cohort_msg_new("orders.>", "x", 1);
    assert_int_equal(cohort_publish(f->nodes[0], &m, NULL), COHORT_INVALID);
    assert_null(m);
    size_t big = 2u << 20; /* over the default limits.max_message_size */
    uint8_t *payload = calloc(1, big);
    m = cohort_msg_new("orders.eu.big", payload, big);
    free(payload);
    assert_int_equal(cohort_publish(f->nodes[0], &m, NULL), COHORT_TOO_LARGE);
    assert_null(s_next(f->nodes[2], 300));
}

/* Answers every request waiting at node i with its name; returns how many. */
static int s_answer_all(fixture_t *f, int i)
{
    int n = 0;
    cohort_msg_t *in;
    while ((in = cohort_recv(f->nodes[i], 0))) {
        if (cohort_msg_kind(in) == COHORT_MSG_REQUEST) {
            cohort_msg_t *ans = cohort_msg_new("", s_names[i], strlen(s_names[i]));
            assert_int_equal(cohort_reply(f->nodes[i], in, &ans), COHORT_OK);
            n++;
        }
        cohort_msg_destroy(&in);
    }
    return n;
}

static void test_site_local_provider_is_preferred_over_a_remote_one(void **state)
{
    fixture_t *f = *state;
    /* beta (hq) and gamma (plant) both serve; alpha is in hq. */
    assert_int_equal(cohort_serve(f->nodes[BETA], "where"), COHORT_OK);
    assert_int_equal(cohort_serve(f->nodes[GAMMA], "where"), COHORT_OK);
    zclock_sleep(300); /* interest propagation */
    int from_beta = 0, from_gamma = 0;
    for (int i = 0; i < 20; i++) {
        cohort_msg_t *req = cohort_msg_new("", "?", 1);
        uint64_t id = 0;
        assert_int_equal(cohort_request_async(f->nodes[ALPHA], "where", &req, 2000, &id),
                         COHORT_OK);
        cohort_msg_t *r = NULL;
        int64_t end = zclock_mono() + 2000;
        while (!r && zclock_mono() < end) {
            s_answer_all(f, BETA);
            s_answer_all(f, GAMMA);
            cohort_msg_t *m = cohort_recv(f->nodes[ALPHA], 10);
            if (m && cohort_msg_kind(m) == COHORT_MSG_REPLY && cohort_msg_request_id(m) == id)
                r = m;
            else
                cohort_msg_destroy(&m);
        }
        assert_non_null(r);
        assert_int_equal(cohort_msg_status(r), COHORT_OK);
        from_beta += !strcmp(cohort_msg_sender(r), "beta");
        from_gamma += !strcmp(cohort_msg_sender(r), "gamma");
        cohort_msg_destroy(&r);
    }
    assert_int_equal(from_beta, 20);
    assert_int_equal(from_gamma, 0);
    /* Without a site-local provider, the remote one serves. */
    assert_int_equal(cohort_unserve(f->nodes[BETA], "where"), COHORT_OK);
    zclock_sleep(300);
    cohort_msg_t *req = cohort_msg_new("", "?", 1);
    uint64_t id = 0;
    assert_int_equal(cohort_request_async(f->nodes[ALPHA], "where", &req, 2000, &id), COHORT_OK);
    cohort_msg_t *r = NULL;
    int64_t end = zclock_mono() + 2000;
    while (!r && zclock_mono() < end) {
        s_answer_all(f, GAMMA);
        cohort_msg_t *m = cohort_recv(f->nodes[ALPHA], 10);
        if (m && cohort_msg_kind(m) == COHORT_MSG_REPLY && cohort_msg_request_id(m) == id)
            r = m;
        else
            cohort_msg_destroy(&m);
    }
    assert_non_null(r);
    assert_string_equal(cohort_msg_sender(r), "gamma");
    cohort_msg_destroy(&r);
    assert_int_equal(cohort_unserve(f->nodes[GAMMA], "where"), COHORT_OK);
}

static void test_pollable_fd_signals_incoming_messages(void **state)
{
    fixture_t *f = *state;
    int fd = cohort_fd(f->nodes[BETA]);
    assert_true(fd >= 0);
    cohort_msg_t *m = cohort_msg_new("poke", "x", 1);
    assert_int_equal(cohort_send(f->nodes[ALPHA], "beta", &m, 0), COHORT_OK);
    /* An outside event loop: poll the fd, then drain with timeout 0. */
    cohort_msg_t *got = NULL;
    int64_t end = zclock_mono() + 3000;
    while (!got && zclock_mono() < end) {
        struct pollfd pfd = {fd, POLLIN, 0};
        poll(&pfd, 1, 100);
        cohort_msg_t *in;
        while ((in = cohort_recv(f->nodes[BETA], 0))) {
            if (cohort_msg_kind(in) == COHORT_MSG_UNICAST && !got)
                got = in;
            else
                cohort_msg_destroy(&in);
        }
    }
    assert_non_null(got);
    assert_string_equal(cohort_msg_subject(got), "poke");
    cohort_msg_destroy(&got);
}

/* Last: closes gamma. */
/* alpha's config with another listen port and extra sections, next to
 * the one it started from. Caller frees the path. */
static char *s_alpha_config(fixture_t *f, int port, const char *extra)
{
    char *yaml = cohort_sprintf("node:\n  name: alpha\n  state_dir: alpha-state\n"
                                "identity:\n  key: alpha.key\n  cert: alpha.crt\n"
                                "trust:\n  ca: [ca.crt]\n"
                                "listen:\n  address: 127.0.0.1\n  port: %d\n  punch_port: 0\n%s",
                                port, extra);
    char *path = test_write(f->c->dir, "alpha-reload.yaml", yaml, 0644);
    free(yaml);
    return path;
}

static cohort_status_t s_send_bytes(fixture_t *f, const char *to, size_t len)
{
    uint8_t *payload = cohort_calloc(1, len);
    cohort_msg_t *m = cohort_msg_new("reload", payload, len);
    free(payload);
    return cohort_send(f->nodes[ALPHA], to, &m, 0);
}

/* Until beta gets the message subject "reload" of len bytes. */
static void s_expect_at_beta(fixture_t *f, size_t len)
{
    int64_t end = zclock_mono() + 3000;
    while (zclock_mono() < end) {
        cohort_msg_t *m = s_next(f->nodes[BETA], 100);
        size_t got = 0;
        bool match = m && !strcmp(cohort_msg_subject(m), "reload") &&
                     (cohort_msg_payload(m, &got), got == len);
        cohort_msg_destroy(&m);
        if (match)
            return;
    }
    fail_msg("beta never got the %zu bytes", len);
}

/* Until node i's membership view gives alpha the one endpoint ep. */
static void s_wait_alpha_endpoint(fixture_t *f, int i, const char *ep)
{
    int64_t end = zclock_mono() + 5000;
    while (zclock_mono() < end) {
        uint8_t *buf = NULL;
        size_t len = 0;
        bool found = false;
        assert_int_equal(cohort_info(f->nodes[i], "members", &buf, &len), COHORT_OK);
        Cohort__Api__Response *resp = cohort__api__response__unpack(NULL, len, buf);
        assert_non_null(resp);
        for (size_t k = 0; k < resp->n_members; k++)
            if (!strcmp(resp->members[k]->name, "alpha") && resp->members[k]->n_endpoints == 1 &&
                !strcmp(resp->members[k]->endpoints[0], ep))
                found = true;
        cohort__api__response__free_unpacked(resp, NULL);
        free(buf);
        if (found)
            return;
        zclock_sleep(50);
    }
    fail_msg("%s never saw alpha at %s", s_names[i], ep);
}

static void test_reload_puts_reloadable_keys_in_force_and_a_bad_file_changes_nothing(void **state)
{
    fixture_t *f = *state;
    cohort_reload_result_t res;
    /* Refusals first: nothing of a file that does not load is applied. */
    char *path =
        s_alpha_config(f, f->ports[ALPHA], "limits:\n  max_message_size: 1KiB\n  send_queue: 5\n");
    assert_int_equal(cohort_reload(f->nodes[ALPHA], path, &res), COHORT_INVALID);
    char *expect =
        cohort_sprintf("%s:15:15: limits.send_queue: must be 16..1000000, got '5'", path);
    assert_string_equal(res.error, expect);
    free(expect);
    assert_string_equal(res.applied, "");
    assert_string_equal(res.restart_needed, "");
    assert_int_equal(cohort_reload(f->nodes[ALPHA], "/no/such/node.yaml", &res), COHORT_INVALID);
    assert_non_null(strstr(res.error, "/no/such/node.yaml"));
    assert_int_equal(s_send_bytes(f, "beta", 2048), COHORT_OK);
    s_expect_at_beta(f, 2048);
    free(path);

    /* Every reloadable key at once; listen.port only named. */
    path = s_alpha_config(f, f->ports[ALPHA] + 1,
                          "  advertise: [tcp://alpha.example:7]\n"
                          "limits:\n  max_message_size: 1KiB\n  send_queue: 16\n"
                          "links:\n  probe_timeout: 1s\n");
    assert_int_equal(cohort_reload(f->nodes[ALPHA], path, &res), COHORT_OK);
    assert_string_equal(res.error, "");
    assert_string_equal(res.applied, "listen.advertise,limits.max_message_size,limits.send_queue,"
                                     "links.probe_timeout");
    assert_string_equal(res.restart_needed, "listen.port");
    /* the new endpoints are alpha's own at once, and gossiped to beta */
    s_wait_alpha_endpoint(f, ALPHA, "tcp://alpha.example:7");
    s_wait_alpha_endpoint(f, BETA, "tcp://alpha.example:7");
    assert_int_equal(s_send_bytes(f, "beta", 2048), COHORT_TOO_LARGE);
    assert_int_equal(s_send_bytes(f, "beta", 512), COHORT_OK);
    s_expect_at_beta(f, 512);
    /* rogue never acks: its queue fills at the new limit, not at 10000 */
    cohort_status_t st = COHORT_OK;
    int accepted = 0;
    while (accepted <= 16 && (st = s_send_bytes(f, "rogue", 8)) == COHORT_OK)
        accepted++;
    assert_int_equal(st, COHORT_QUEUE_FULL);
    assert_true(accepted <= 16);
    free(path);

    /* And back: raised limits take at once too. */
    path = s_alpha_config(f, f->ports[ALPHA], "");
    assert_int_equal(cohort_reload(f->nodes[ALPHA], path, &res), COHORT_OK);
    assert_string_equal(res.applied, "listen.advertise,limits.max_message_size,limits.send_queue,"
                                     "links.probe_timeout");
    assert_string_equal(res.restart_needed, "");
    char *own = cohort_sprintf("tcp://127.0.0.1:%d", f->ports[ALPHA]);
    s_wait_alpha_endpoint(f, ALPHA, own);
    s_wait_alpha_endpoint(f, BETA, own);
    free(own);
    assert_int_equal(s_send_bytes(f, "rogue", 8), COHORT_OK);
    assert_int_equal(s_send_bytes(f, "beta", 2048), COHORT_OK);
    s_expect_at_beta(f, 2048);
    assert_int_equal(cohort_reload(f->nodes[ALPHA], path, &res), COHORT_OK);
    assert_string_equal(res.applied, "");
    free(path);
}

/* alpha's view of peer `name` */
/* peer name as node i sees it */
static Cohort__Api__Peer s_peer_of(fixture_t *f, int who, const char *name)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    assert_int_equal(cohort_info(f->nodes[who], "peers", &buf, &len), COHORT_OK);
    Cohort__Api__Response *resp = cohort__api__response__unpack(NULL, len, buf);
    assert_non_null(resp);
    Cohort__Api__Peer out = COHORT__API__PEER__INIT;
    for (size_t i = 0; i < resp->n_peers; i++)
        if (!strcmp(resp->peers[i]->name, name))
            out = *resp->peers[i];
    out.name = out.site = out.fingerprint = out.state = out.link = out.reason = out.via =
        out.roles = NULL; /* freed below */
    cohort__api__response__free_unpacked(resp, NULL);
    free(buf);
    return out;
}

static Cohort__Api__Peer s_peer(fixture_t *f, const char *name)
{
    return s_peer_of(f, ALPHA, name);
}

/* One request from alpha to beta's "acked" service, answered; returns the
 * reply's status. */
static cohort_status_t s_request_answered(fixture_t *f, int timeout_ms)
{
    cohort_msg_t *req = cohort_msg_new("", "ping", 4);
    uint64_t id = 0;
    assert_int_equal(cohort_request_async(f->nodes[ALPHA], "acked", &req, timeout_ms, &id),
                     COHORT_OK);
    cohort_msg_t *in = s_next(f->nodes[BETA], timeout_ms);
    if (in) {
        cohort_msg_t *ans = cohort_msg_new("", "pong", 4);
        assert_int_equal(cohort_reply(f->nodes[BETA], in, &ans), COHORT_OK);
        cohort_msg_destroy(&in);
    }
    cohort_msg_t *r = s_next(f->nodes[ALPHA], timeout_ms + 1000);
    assert_non_null(r);
    assert_int_equal(cohort_msg_request_id(r), id);
    cohort_status_t st = cohort_msg_status(r);
    cohort_msg_destroy(&r);
    return st;
}

/* A reply carries the ack of its request and the next request the ack of
 * that reply: request/reply sends no ack frames of its own, and nothing
 * is left unacknowledged (nor resent) once the held-back acks are due. */
static void test_requests_and_replies_carry_each_others_acks(void **state)
{
    fixture_t *f = *state;
    enum { N = 200 };
    assert_int_equal(cohort_serve(f->nodes[BETA], "acked"), COHORT_OK);
    cohort_status_t st = COHORT_NO_RESPONDERS;
    for (int k = 0; k < 50 && st != COHORT_OK; k++) {
        st = s_request_answered(f, 300);
        if (st != COHORT_OK)
            zclock_sleep(50);
    }
    assert_int_equal(st, COHORT_OK);
    Cohort__Api__Peer a0 = s_peer_of(f, ALPHA, "beta"), b0 = s_peer_of(f, BETA, "alpha");
    uint64_t resent0 = s_counters(f).resent;
    int64_t t0 = zclock_mono();
    for (int i = 0; i < N; i++)
        assert_int_equal(s_request_answered(f, 2000), COHORT_OK);
    /* A missed wakeup (src/node/zpoll.c) would leave a message until the
     * next tick, 50 ms: N of them would take 10 s. No wait is 5 ms (the
     * held-back acks are not waited for). */
    int64_t took = zclock_mono() - t0;
    print_message("%d request/reply round trips in %lld ms\n", N, (long long)took);
    assert_true(took < test_ms(N * 25));
    Cohort__Api__Peer a1 = s_peer_of(f, ALPHA, "beta"), b1 = s_peer_of(f, BETA, "alpha");
    uint64_t a_frames = a1.msgs_out - a0.msgs_out, b_frames = b1.msgs_out - b0.msgs_out;
    /* a slow machine (valgrind) may resend some: those are frames too */
    uint64_t resent = s_counters(f).resent - resent0;
    print_message("%d requests: %llu frames alpha->beta (%llu resent), %llu beta->alpha\n", N,
                  (unsigned long long)a_frames, (unsigned long long)resent,
                  (unsigned long long)b_frames);
    /* one frame a message, and a few probes: an ack frame for each would
     * make it 2N */
    assert_true(a_frames >= N && a_frames - resent < N + N / 4);
    assert_true(b_frames >= N && b_frames < N + N / 4 + resent);
    /* the last reply's ack has nothing to ride on: it leaves on its own */
    int64_t end = zclock_mono() + 1000;
    while ((s_peer_of(f, ALPHA, "beta").unacked || s_peer_of(f, BETA, "alpha").unacked) &&
           zclock_mono() < end)
        zclock_sleep(5);
    assert_int_equal(s_peer_of(f, ALPHA, "beta").unacked, 0);
    assert_int_equal(s_peer_of(f, BETA, "alpha").unacked, 0);
    assert_int_equal(cohort_unserve(f->nodes[BETA], "acked"), COHORT_OK);
}

static void test_a_burst_of_sends_is_coalesced_and_a_lone_one_leaves_at_once(void **state)
{
    fixture_t *f = *state;
    enum { BURST = 3000 };
    uint64_t frames = s_peer(f, "beta").msgs_out;
    for (int i = 0; i < BURST; i++) {
        char text[16];
        snprintf(text, sizeof text, "%06d", i);
        cohort_msg_t *m = cohort_msg_new("burst", text, 6);
        assert_int_equal(cohort_send(f->nodes[ALPHA], "beta", &m, 0), COHORT_OK);
    }
    /* every one, once, in order */
    for (int i = 0; i < BURST; i++) {
        cohort_msg_t *m = s_next(f->nodes[BETA], 5000);
        assert_non_null(m);
        char want[16];
        snprintf(want, sizeof want, "%06d", i);
        size_t len = 0;
        const char *got = cohort_msg_payload(m, &len);
        if (len != 6 || memcmp(got, want, 6))
            fail_msg("message %d of the burst came as '%.6s'", i, len == 6 ? got : "");
        cohort_msg_destroy(&m);
    }
    /* The sender outruns its node: some went out several to a frame. */
    uint64_t burst_frames = s_peer(f, "beta").msgs_out - frames;
    print_message("%d messages in %llu frames\n", BURST, (unsigned long long)burst_frames);
    assert_true(burst_frames < BURST);
    /* A lone message waits for no timer (the resend timer is 200 ms) */
    int64_t start = zclock_mono();
    cohort_msg_t *m = cohort_msg_new("lone", "x", 1);
    assert_int_equal(cohort_send(f->nodes[ALPHA], "beta", &m, 0), COHORT_OK);
    m = s_next(f->nodes[BETA], 1000);
    int64_t took = zclock_mono() - start;
    assert_non_null(m);
    assert_string_equal(cohort_msg_subject(m), "lone");
    cohort_msg_destroy(&m);
    if (took >= 150)
        fail_msg("a lone message took %lld ms", (long long)took);
    assert_null(s_next(f->nodes[BETA], 200));
}

static void test_pipelined_sends_still_report_a_full_queue_exactly(void **state)
{
    fixture_t *f = *state;
    /* rogue never acks: its window (limits.send_queue, 10000) fills */
    uint32_t queued = s_peer(f, "rogue").unacked;
    uint64_t full_before = s_counters(f).queue_full;
    uint32_t accepted = 0;
    cohort_status_t st = COHORT_OK;
    while (accepted <= 10000 && (st = s_send_bytes(f, "rogue", 8)) == COHORT_OK)
        accepted++;
    assert_int_equal(st, COHORT_QUEUE_FULL);
    /* Credit never took more than the window holds, nor refused early. */
    assert_int_equal(accepted + queued, 10000);
    assert_int_equal(s_peer(f, "rogue").unacked, 10000);
    assert_int_equal(s_send_bytes(f, "rogue", 8), COHORT_QUEUE_FULL);
    assert_int_equal(s_counters(f).queue_full, full_before + 2);
    /* and the wait: up to the timeout, then QUEUE_FULL all the same */
    uint8_t payload[8] = {0};
    cohort_msg_t *m = cohort_msg_new("reload", payload, sizeof payload);
    int64_t start = zclock_mono();
    assert_int_equal(cohort_send(f->nodes[ALPHA], "rogue", &m, 100), COHORT_QUEUE_FULL);
    assert_true(zclock_mono() - start >= 100);
    /* other peers are not held up by it */
    assert_int_equal(s_send_bytes(f, "beta", 100), COHORT_OK);
    s_expect_at_beta(f, 100);
}

static void test_a_node_that_leaves_is_seen_as_left_not_failed(void **state)
{
    fixture_t *f = *state;
    cohort_close(&f->c->nodes[GAMMA]);
    f->nodes[GAMMA] = NULL;
    bool left = false;
    int64_t end = zclock_mono() + 3000; /* well under the 5 s failure timeout */
    while (!left && zclock_mono() < end) {
        cohort_msg_t *m = cohort_recv(f->nodes[ALPHA], 100);
        if (m && cohort_msg_kind(m) == COHORT_MSG_EVENT &&
            !strcmp(cohort_msg_subject(m), "member.left") &&
            !strcmp(cohort_msg_sender(m), "gamma")) {
            assert_string_equal(cohort_msg_error(m), "left");
            left = true;
        }
        cohort_msg_destroy(&m);
    }
    assert_true(left);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_expired_and_revoked_members_never_complete_a_handshake),
        cmocka_unit_test(test_hostile_admitted_peer_is_counted_and_others_keep_working),
        cmocka_unit_test(test_stranger_with_a_real_curve_key_never_completes_a_handshake),
        cmocka_unit_test(test_garbage_bytes_on_the_overlay_port_are_counted),
        cmocka_unit_test(test_unicast_carries_subject_headers_and_payload),
        cmocka_unit_test(test_request_reaches_a_provider_and_unknown_service_has_no_responders),
        cmocka_unit_test(test_publish_goes_only_to_matching_subscribers),
        cmocka_unit_test(test_site_local_provider_is_preferred_over_a_remote_one),
        cmocka_unit_test(test_pollable_fd_signals_incoming_messages),
        cmocka_unit_test(test_reload_puts_reloadable_keys_in_force_and_a_bad_file_changes_nothing),
        cmocka_unit_test(test_a_burst_of_sends_is_coalesced_and_a_lone_one_leaves_at_once),
        cmocka_unit_test(test_requests_and_replies_carry_each_others_acks),
        cmocka_unit_test(test_pipelined_sends_still_report_a_full_queue_exactly),
        cmocka_unit_test(test_a_node_that_leaves_is_seen_as_left_not_failed),
    };
    return cmocka_run_group_tests_name("node", tests, setup, teardown);
}
