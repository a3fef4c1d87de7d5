/*
 * Node tests: three real nodes in one process (each with its own ZeroMQ
 * context and ZAP handler) on 127.0.0.1, admitted by a throwaway CA, driven
 * through the public libcohort API; plus a stranger with a real CURVE key.
 */
#include "testutil.h"

#include "api.pb-c.h"
#include "cohort.h"
#include "pki/cert.h"
#include "pki/key.h"
#include "roster/roster.h"
#include "util/fs.h"
#include "util/log.h"
#include "util/mem.h"

#include <arpa/inet.h>
#include <czmq.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#define N 3

typedef struct {
    char *dir;
    int ports[N];
    cohort_t *nodes[N];
    uint8_t keys[N][COHORT_KEY_LEN];
} fixture_t;

static const char *const s_names[N] = {"alpha", "beta", "gamma"};
static const char *const s_sites[N] = {"hq", "hq", "plant"};

static int s_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

/* The next non-event message, or NULL after ms. */
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

static void s_log(void *arg, cohort_log_level_t level, const char *line)
{
    (void)arg;
    fprintf(stderr, "log %s %s\n", cohort_log_level_name(level), line);
}

static int setup(void **state)
{
    if (getenv("COHORT_TEST_LOG"))
        cohort_log_set_sink(s_log, NULL, COHORT_LOG_DEBUG);
    fixture_t *f = calloc(1, sizeof *f);
    cohort_err_t err;
    f->dir = test_tmpdir();
    EVP_PKEY *ca_key = cohort_key_generate(COHORT_KEY_ED25519);
    X509 *ca = NULL;
    assert_int_equal(cohort_cert_create_ca("test", ca_key, 30, &ca, &err), 0);
    char *p = cohort_sprintf("%s/ca.crt", f->dir);
    assert_int_equal(cohort_cert_save(p, ca, &err), 0);
    free(p);
    cohort_roster_t *r = cohort_roster_new("test");
    for (int i = 0; i < N; i++) {
        f->ports[i] = s_free_port();
        EVP_PKEY *k = cohort_key_generate(COHORT_KEY_X25519);
        cohort_key_raw_public(k, f->keys[i]);
        X509 *cert = NULL;
        assert_int_equal(cohort_cert_issue(ca, ca_key, s_names[i], k, 5, &cert, &err), 0);
        char *ep = cohort_sprintf("tcp://127.0.0.1:%d", f->ports[i]);
        const char *eps[] = {ep};
        assert_int_equal(cohort_roster_add(r, s_names[i], cert, 0, s_sites[i], eps, 1, &err), 0);
        p = cohort_sprintf("%s/%s.key", f->dir, s_names[i]);
        assert_int_equal(cohort_key_save_private(p, k, false, &err), 0);
        free(p);
        p = cohort_sprintf("%s/%s.crt", f->dir, s_names[i]);
        assert_int_equal(cohort_cert_save(p, cert, &err), 0);
        free(p);
        char *yaml = cohort_sprintf("node:\n  name: %s\n  state_dir: %s-state\n"
                                    "identity:\n  key: %s.key\n  cert: %s.crt\n"
                                    "trust:\n  ca: [ca.crt]\n"
                                    "listen:\n  address: 127.0.0.1\n  port: %d\n"
                                    "  punch_port: 0\n",
                                    s_names[i], s_names[i], s_names[i], s_names[i], f->ports[i]);
        char *name = cohort_sprintf("%s.yaml", s_names[i]);
        free(test_write(f->dir, name, yaml, 0644));
        free(name);
        free(yaml);
        free(ep);
        X509_free(cert);
        EVP_PKEY_free(k);
    }
    char *text = NULL, *sig = NULL;
    size_t len = 0;
    assert_int_equal(cohort_roster_emit(r, &text, &len, &err), 0);
    assert_int_equal(cohort_roster_sign(text, len, ca_key, ca, &sig, &err), 0);
    free(test_write(f->dir, "roster.yaml", text, 0644));
    free(test_write(f->dir, "roster.yaml.sig", sig, 0644));
    free(text);
    free(sig);
    cohort_roster_destroy(&r);
    X509_free(ca);
    EVP_PKEY_free(ca_key);
    for (int i = 0; i < N; i++) {
        char *cfg = cohort_sprintf("%s/%s.yaml", f->dir, s_names[i]);
        char why[1024];
        if (cohort_open(cfg, &f->nodes[i], why, sizeof why) < 0)
            fail_msg("%s: %s", s_names[i], why);
        free(cfg);
    }
    /* every node sees both others up (events may come in any order) */
    for (int i = 0; i < N; i++) {
        bool seen[N] = {false};
        seen[i] = true;
        int64_t end = zclock_mono() + 10000;
        while (zclock_mono() < end && !(seen[0] && seen[1] && seen[2])) {
            cohort_msg_t *m = cohort_recv(f->nodes[i], 100);
            for (int j = 0; m && j < N; j++)
                if (cohort_msg_kind(m) == COHORT_MSG_EVENT &&
                    !strcmp(cohort_msg_subject(m), "member.up") &&
                    !strcmp(cohort_msg_sender(m), s_names[j]))
                    seen[j] = true;
            cohort_msg_destroy(&m);
        }
        for (int j = 0; j < N; j++)
            if (!seen[j])
                fail_msg("%s never saw %s up", s_names[i], s_names[j]);
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    for (int i = 0; i < N; i++)
        cohort_close(&f->nodes[i]);
    test_rmdir(&f->dir);
    free(f);
    return 0;
}

static void test_stranger_with_a_real_curve_key_never_completes_a_handshake(void **state)
{
    fixture_t *f = *state;
    /* A valid-looking CURVE client with its own key, aimed at alpha with
     * alpha's real server key: ZAP must refuse it, nothing reaches alpha. */
    char pub[41], sec[41], server[41];
    assert_int_equal(zmq_curve_keypair(pub, sec), 0);
    cohort_key_z85(f->keys[0], server);
    zsock_t *d = zsock_new(ZMQ_DEALER);
    zsock_set_curve_serverkey(d, server);
    zsock_set_curve_publickey(d, pub);
    zsock_set_curve_secretkey(d, sec);
    zsock_set_linger(d, 0);
    assert_int_equal(zsock_connect(d, "tcp://127.0.0.1:%d", f->ports[0]), 0);
    zstr_sendx(d, "hello", NULL);
    zclock_sleep(500);
    uint8_t *buf = NULL;
    size_t len = 0;
    assert_int_equal(cohort_info(f->nodes[0], "status", &buf, &len), COHORT_OK);
    Cohort__Api__Response *resp = cohort__api__response__unpack(NULL, len, buf);
    assert_non_null(resp);
    assert_true(resp->status_info->counters->handshakes_refused >= 1);
    assert_int_equal(resp->status_info->counters->unknown_sender, 0);
    assert_int_equal(resp->status_info->peers_up, 2);
    cohort__api__response__free_unpacked(resp, NULL);
    free(buf);
    assert_null(s_next(f->nodes[0], 200));
    zsock_destroy(&d);
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
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stranger_with_a_real_curve_key_never_completes_a_handshake),
        cmocka_unit_test(test_unicast_carries_subject_headers_and_payload),
        cmocka_unit_test(test_request_reaches_a_provider_and_unknown_service_has_no_responders),
        cmocka_unit_test(test_publish_goes_only_to_matching_subscribers),
    };
    return cmocka_run_group_tests_name("node", tests, setup, teardown);
}
