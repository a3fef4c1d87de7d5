/*
 * Local API tests: a real node ("alpha") with the API server running on its
 * own thread, as in cohortd, and a second node ("beta") driven through
 * libcohort; clients are real DEALERs, through the client module or raw
 * when the test needs to send what no well-behaved client would.
 */
#include "testutil.h"

#include "api/client.h"
#include "api/server.h"
#include "cluster.h"
#include "config/config.h"
#include "util/mem.h"

#include <czmq.h>
#include <sys/stat.h>
#include <unistd.h>

/* How long a test waits for what must come. Every wait and time bound here
 * goes through test_ms (testutil.h), so COHORT_TEST_WAIT_MS (which
 * tests/valgrind.sh sets to 20000) stretches them all alike: S_WAIT to that,
 * the others in proportion. */
#define S_WAIT test_ms(TEST_WAIT_MS)
/* How long a message that must not come is waited for. */
#define S_NONE test_ms(200)
/* protobuf-c string fields are `char *`; outgoing ones are only read. */
#define S_STR(text) ((char *)(uintptr_t)(text))
/* assert_non_null that the compiler knows does not return on NULL (cmocka's
 * may longjmp, but is not declared noreturn, and -Wnull-dereference sees
 * the path). */
#define S_NN(x)                                                                                    \
    do {                                                                                           \
        if (!(x))                                                                                  \
            s_missing(#x);                                                                         \
    } while (0)

__attribute__((noreturn)) static void s_missing(const char *what)
{
    fail_msg("%s is NULL", what);
    abort();
}

typedef struct {
    cluster_t *cluster;
    cohort_config_t *cfg;
    cohort_api_server_t *server; /* owned by the actor while it runs */
    zactor_t *actor;
    char *endpoint;
} fixture_t;

static fixture_t *s_f; /* for helpers; one fixture for the whole group */

/* ---- the server thread ---- */

static int s_on_pipe(zloop_t *loop, zsock_t *pipe, void *arg)
{
    (void)loop;
    (void)arg;
    char *cmd = zstr_recv(pipe);
    bool term = !cmd || !strcmp(cmd, "$TERM");
    zstr_free(&cmd);
    return term ? -1 : 0;
}

static void s_server_actor(zsock_t *pipe, void *arg)
{
    fixture_t *f = arg;
    zloop_t *loop = zloop_new();
    cohort_api_server_attach(f->server, f->cluster->nodes[0], loop);
    zloop_reader(loop, pipe, s_on_pipe, NULL);
    zsock_signal(pipe, 0);
    zloop_start(loop);
    cohort_api_server_destroy(&f->server);
    zloop_destroy(&loop);
}

static int setup(void **state)
{
    static const cluster_member_t members[] = {
        {.name = "alpha", .site = "hq", .run = false},
        {.name = "beta", .site = "hq", .run = true},
    };
    fixture_t *f = cohort_calloc(1, sizeof *f);
    f->cluster = cluster_new(members, 2);
    cluster_t *c = f->cluster;
    /* alpha gets an API endpoint in its state dir and small limits, so the
     * size and queue limits can be reached in a test. */
    char *sdir = cohort_sprintf("%s/alpha-state", c->dir);
    assert_int_equal(mkdir(sdir, 0700), 0);
    f->endpoint = cohort_sprintf("ipc://%s/api.sock", sdir);
    char *path = cohort_sprintf("%s/alpha.yaml", c->dir);
    FILE *fp = fopen(path, "a");
    S_NN(fp);
    fprintf(fp, "api:\n  endpoint: %s\nlimits:\n  max_message_size: 64KiB\n  send_queue: 16\n",
            f->endpoint);
    fclose(fp);
    cohort_err_t err;
    if (cohort_config_load(path, &f->cfg, &err) < 0)
        fail_msg("%s", cohort_err_text(&err));
    char why[1024];
    if (cohort_open(path, &c->nodes[0], why, sizeof why) < 0)
        fail_msg("alpha: %s", why);
    cluster_wait_up(c, test_ms(10000));
    cohort_api_limits_t limits = {
        .max_clients = 6,
        .max_patterns = 3,
        .heartbeat_ms = 200,
        .backlog_bytes = 4u << 20,
        .early_ms = -1, /* unrouted means unrouted at once here */
    };
    if (cohort_api_server_open(f->cfg, &limits, &f->server, &err) < 0)
        fail_msg("%s", cohort_err_text(&err));
    f->actor = zactor_new(s_server_actor, f);
    free(path);
    free(sdir);
    s_f = f;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    zactor_destroy(&f->actor);
    cohort_config_destroy(&f->cfg);
    cluster_destroy(&f->cluster);
    free(f->endpoint);
    free(f);
    s_f = NULL;
    return 0;
}

/* ---- helpers ---- */

static cohort_api_client_t *s_client(void)
{
    cohort_api_client_t *c = NULL;
    cohort_err_t err;
    if (cohort_api_client_open(s_f->endpoint, &c, &err) < 0)
        fail_msg("%s", cohort_err_text(&err));
    return c;
}

/* Sends req and returns the Response (caller frees); fails the test if
 * none comes. */
static Cohort__Api__Response *s_call(cohort_api_client_t *c, Cohort__Api__ApiRequest *req)
{
    Cohort__Api__Response *resp = NULL;
    cohort_err_t err;
    if (cohort_api_client_request(c, req, S_WAIT, &resp, &err) < 0)
        fail_msg("%s", cohort_err_text(&err));
    assert_int_equal(resp->id, req->id);
    return resp;
}

static void s_expect(cohort_api_client_t *c, Cohort__Api__ApiRequest *req, Cohort__Api__Code code)
{
    Cohort__Api__Response *resp = s_call(c, req);
    if (resp->status != code)
        fail_msg("expected status %d, got %d (%s)", code, resp->status, resp->error);
    cohort__api__response__free_unpacked(resp, NULL);
}

static void s_sub(cohort_api_client_t *c, const char *pattern, bool on, Cohort__Api__Code code)
{
    Cohort__Api__ApiRequest req = COHORT__API__API_REQUEST__INIT;
    Cohort__Api__Subscribe sub = COHORT__API__SUBSCRIBE__INIT;
    sub.pattern = (char *)(uintptr_t)pattern;
    req.op_case =
        on ? COHORT__API__API_REQUEST__OP_SUBSCRIBE : COHORT__API__API_REQUEST__OP_UNSUBSCRIBE;
    if (on)
        req.subscribe = &sub;
    else
        req.unsubscribe = &sub;
    s_expect(c, &req, code);
}

static void s_serve(cohort_api_client_t *c, const char *service)
{
    Cohort__Api__ApiRequest req = COHORT__API__API_REQUEST__INIT;
    Cohort__Api__Serve serve = COHORT__API__SERVE__INIT;
    serve.service = (char *)(uintptr_t)service;
    req.op_case = COHORT__API__API_REQUEST__OP_SERVE;
    req.serve = &serve;
    s_expect(c, &req, COHORT__API__CODE__OK);
}

static Cohort__Api__Status *s_status(cohort_api_client_t *c, Cohort__Api__Response **resp)
{
    Cohort__Api__ApiRequest req = COHORT__API__API_REQUEST__INIT;
    Cohort__Api__StatusReq st = COHORT__API__STATUS_REQ__INIT;
    req.op_case = COHORT__API__API_REQUEST__OP_STATUS;
    req.status = &st;
    *resp = s_call(c, &req);
    assert_int_equal((*resp)->status, COHORT__API__CODE__OK);
    S_NN((*resp)->status_info);
    S_NN((*resp)->status_info->api);
    return (*resp)->status_info;
}

static bool s_has(char **v, size_t n, const char *s)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(v[i], s))
            return true;
    return false;
}

/* The next delivery or event within ms, or NULL. Caller frees. */
static Cohort__Api__ApiMessage *s_next(cohort_api_client_t *c, int ms)
{
    Cohort__Api__ApiMessage *m = NULL;
    return cohort_api_client_recv(c, ms, &m) == 1 ? m : NULL;
}

static void s_free(Cohort__Api__ApiMessage **m)
{
    if (*m)
        cohort__api__api_message__free_unpacked(*m, NULL);
    *m = NULL;
}

static Cohort__Api__Response *s_publish(cohort_api_client_t *c, const char *topic,
                                        const char *payload)
{
    Cohort__Api__ApiRequest req = COHORT__API__API_REQUEST__INIT;
    Cohort__Api__Publish pub = COHORT__API__PUBLISH__INIT;
    Cohort__Wire__Message m = COHORT__WIRE__MESSAGE__INIT;
    m.subject = (char *)(uintptr_t)topic;
    m.payload.data = (uint8_t *)(uintptr_t)payload;
    m.payload.len = strlen(payload);
    pub.message = &m;
    req.op_case = COHORT__API__API_REQUEST__OP_PUBLISH;
    req.publish = &pub;
    return s_call(c, &req);
}

static uint64_t s_call_service(cohort_api_client_t *c, const char *service, const char *payload)
{
    Cohort__Api__ApiRequest req = COHORT__API__API_REQUEST__INIT;
    Cohort__Api__Call call = COHORT__API__CALL__INIT;
    Cohort__Wire__Message m = COHORT__WIRE__MESSAGE__INIT;
    m.payload.data = (uint8_t *)(uintptr_t)payload;
    m.payload.len = strlen(payload);
    call.service = (char *)(uintptr_t)service;
    call.message = &m;
    call.timeout_ms = (uint32_t)test_ms(2000);
    req.op_case = COHORT__API__API_REQUEST__OP_CALL;
    req.call = &call;
    s_expect(c, &req, COHORT__API__CODE__OK);
    return req.id;
}

/* Answers one REQUEST delivery with payload. */
static void s_answer(cohort_api_client_t *c, const Cohort__Api__Delivery *d, const char *payload)
{
    Cohort__Api__ApiRequest req = COHORT__API__API_REQUEST__INIT;
    Cohort__Api__Reply reply = COHORT__API__REPLY__INIT;
    Cohort__Wire__Message m = COHORT__WIRE__MESSAGE__INIT;
    m.payload.data = (uint8_t *)(uintptr_t)payload;
    m.payload.len = strlen(payload);
    reply.node = d->sender;
    reply.request_id = d->message->request_id;
    reply.message = &m;
    req.op_case = COHORT__API__API_REQUEST__OP_REPLY;
    req.reply = &reply;
    s_expect(c, &req, COHORT__API__CODE__OK);
}

/* Publishes `topic` from beta until it reaches this node (recipients 1:
 * beta has heard of the pattern), then takes each of those from the
 * client `sub` whose pattern it matches, so none is left over. */
static void s_until_beta_publishes_to_alpha(fixture_t *f, const char *topic,
                                            cohort_api_client_t *sub)
{
    int sent = 0;
    unsigned n = 0;
    for (int64_t end = zclock_mono() + S_WAIT; n == 0; sent++) {
        if (zclock_mono() > end)
            fail_msg("beta never heard of this node's subscription to %s", topic);
        if (sent)
            zclock_sleep(20);
        cohort_msg_t *m = cohort_msg_new(topic, "probe", 5);
        assert_int_equal(cohort_publish(f->cluster->nodes[1], &m, &n), COHORT_OK);
    }
    Cohort__Api__ApiMessage *got = s_next(sub, S_WAIT);
    S_NN(got);
    assert_string_equal(got->delivery->message->subject, topic);
    s_free(&got);
}

/* Asks beta for `service` until a request reaches the serving client
 * `server` (before beta hears of the service it fails at once with
 * NO_RESPONDERS, which is taken from beta's inbox). Returns the delivery
 * (caller frees) and the request's id at beta. */
static Cohort__Api__ApiMessage *s_request_once_served(fixture_t *f, const char *service,
                                                      cohort_api_client_t *server, int timeout_ms,
                                                      uint64_t *rid)
{
    cohort_t *beta = f->cluster->nodes[1];
    for (int64_t end = zclock_mono() + S_WAIT; zclock_mono() < end;) {
        cohort_msg_t *m = cohort_msg_new("", "hi", 2);
        assert_int_equal(cohort_request_async(beta, service, &m, timeout_ms, rid), COHORT_OK);
        Cohort__Api__ApiMessage *req = s_next(server, test_ms(100));
        if (req)
            return req;
        cohort_msg_t *r;
        while ((r = cohort_recv(beta, 0))) {
            if (cohort_msg_kind(r) == COHORT_MSG_REPLY && cohort_msg_request_id(r) == *rid &&
                cohort_msg_status(r) != COHORT_NO_RESPONDERS)
                fail_msg("beta's request %llu ended with status %d", (unsigned long long)*rid,
                         cohort_msg_status(r));
            cohort_msg_destroy(&r);
        }
    }
    fail_msg("no request for %s reached the serving client", service);
    abort();
}

/* A raw DEALER, for bytes no client module would send. */
static zsock_t *s_raw(void)
{
    zsock_t *d = zsock_new(ZMQ_DEALER);
    zsock_set_linger(d, 0);
    zsock_set_rcvtimeo(d, S_WAIT);
    assert_int_equal(zsock_connect(d, "%s", s_f->endpoint), 0);
    return d;
}

/* The next Response on a raw DEALER (heartbeats skipped), or NULL. */
static Cohort__Api__Response *s_raw_response(zsock_t *d)
{
    for (;;) {
        zframe_t *fr = zframe_recv(d);
        if (!fr)
            return NULL;
        Cohort__Api__ApiMessage *m =
            cohort__api__api_message__unpack(NULL, zframe_size(fr), zframe_data(fr));
        zframe_destroy(&fr);
        S_NN(m);
        if (m->kind_case == COHORT__API__API_MESSAGE__KIND_RESPONSE) {
            Cohort__Api__Response *r = m->response;
            m->response = NULL;
            m->kind_case = COHORT__API__API_MESSAGE__KIND__NOT_SET;
            cohort__api__api_message__free_unpacked(m, NULL);
            return r;
        }
        cohort__api__api_message__free_unpacked(m, NULL);
    }
}

static void s_raw_send(zsock_t *d, const void *data, size_t len, bool more)
{
    zframe_t *fr = zframe_new(data, len);
    assert_int_equal(zframe_send(&fr, d, more ? ZFRAME_MORE : 0), 0);
}

static void s_raw_expect(zsock_t *d, uint64_t id, Cohort__Api__Code code)
{
    Cohort__Api__Response *r = s_raw_response(d);
    S_NN(r);
    assert_int_equal(r->id, id);
    if (r->status != code)
        fail_msg("expected status %d, got %d (%s)", code, r->status, r->error);
    if (code != COHORT__API__CODE__OK)
        assert_true(r->error && r->error[0]); /* refusals say why */
    cohort__api__response__free_unpacked(r, NULL);
}

/* ---- refusals first ---- */

static void test_unreachable_node_is_reported_at_once(void **state)
{
    (void)state;
    cohort_api_client_t *c = NULL;
    cohort_err_t err;
    assert_int_equal(cohort_api_client_open("ipc:///nonexistent/cohort/api.sock", &c, &err), -1);
    assert_null(c);
    S_NN(strstr(cohort_err_text(&err),
                "cannot reach the node at ipc:///nonexistent/cohort/api.sock: is "
                "cohortd running?"));
}

static void test_server_refuses_a_missing_directory_a_file_and_a_live_socket(void **state)
{
    fixture_t *f = *state;
    cohort_config_t cfg = *f->cfg;
    cohort_api_server_t *srv = NULL;
    cohort_err_t err;
    char *dir = cohort_sprintf("%s/no-such-dir", f->cluster->dir);
    cfg.api_endpoint = cohort_sprintf("ipc://%s/api.sock", dir);
    assert_int_equal(cohort_api_server_open(&cfg, NULL, &srv, &err), -1);
    assert_null(srv);
    char *want = cohort_sprintf("directory '%s' does not exist", dir);
    S_NN(strstr(cohort_err_text(&err), want));
    free(want);
    free(cfg.api_endpoint);

    char *file = test_write(f->cluster->dir, "not-a-socket", "precious\n", 0644);
    cfg.api_endpoint = cohort_sprintf("ipc://%s", file);
    assert_int_equal(cohort_api_server_open(&cfg, NULL, &srv, &err), -1);
    S_NN(strstr(cohort_err_text(&err), "exists and is not a socket"));
    assert_true(access(file, F_OK) == 0); /* not replaced */
    free(cfg.api_endpoint);
    free(file);

    cfg.api_endpoint = f->endpoint; /* the running server's */
    assert_int_equal(cohort_api_server_open(&cfg, NULL, &srv, &err), -1);
    S_NN(strstr(cohort_err_text(&err), "refusing to take it over"));
    free(dir);
}

static void test_socket_file_is_0660(void **state)
{
    fixture_t *f = *state;
    struct stat st;
    assert_int_equal(stat(f->endpoint + 6, &st), 0);
    assert_true(S_ISSOCK(st.st_mode));
    assert_int_equal(st.st_mode & 07777, 0660);
}

static void test_malformed_requests_are_refused_and_the_server_goes_on(void **state)
{
    (void)state;
    zsock_t *d = s_raw();
    /* an id, then bytes that are no protobuf at all */
    const uint8_t id_then_junk[] = {0x08, 0x2a, 0xff, 0xff, 0xff};
    s_raw_send(d, id_then_junk, sizeof id_then_junk, false);
    s_raw_expect(d, 42, COHORT__API__CODE__INVALID);
    /* an empty frame is an ApiRequest with id 0 and no op */
    s_raw_send(d, "", 0, false);
    s_raw_expect(d, 0, COHORT__API__CODE__INVALID);
    /* two frames */
    const uint8_t status7[] = {0x08, 0x07, 0x52, 0x00};
    s_raw_send(d, status7, sizeof status7, true);
    s_raw_send(d, "tail", 4, false);
    s_raw_expect(d, 7, COHORT__API__CODE__INVALID);
    /* over max_message_size (64 KiB) + 64 KiB, with a readable id */
    size_t big = 128 * 1024 + 1;
    uint8_t *huge = cohort_calloc(1, big);
    huge[0] = 0x08;
    huge[1] = 0x09;
    s_raw_send(d, huge, big, false);
    free(huge);
    s_raw_expect(d, 9, COHORT__API__CODE__TOO_LARGE);
    /* random junk: whatever decodes is answered, nothing crashes */
    uint32_t seed = 12345;
    for (int i = 0; i < 200; i++) {
        uint8_t junk[64];
        size_t len = 1 + (size_t)i % sizeof junk;
        for (size_t k = 0; k < len; k++) {
            seed = seed * 1103515245u + 12345u;
            junk[k] = (uint8_t)(seed >> 16);
        }
        s_raw_send(d, junk, len, false);
    }
    /* an undecodable frame without an id is only counted */
    const uint8_t no_id[] = {0xff, 0xff};
    s_raw_send(d, no_id, sizeof no_id, false);
    s_raw_send(d, status7, sizeof status7 - 2, false); /* id 7 and no op */
    Cohort__Api__Response *r;
    while ((r = s_raw_response(d))) { /* drain until the status answer */
        bool done = r->id == 7;
        cohort__api__response__free_unpacked(r, NULL);
        if (done)
            break;
    }
    S_NN(r);
    zsock_destroy(&d);

    cohort_api_client_t *c = s_client();
    Cohort__Api__Response *resp;
    Cohort__Api__Status *st = s_status(c, &resp);
    assert_string_equal(st->node, "alpha");
    assert_true(st->api->invalid >= 3);
    assert_int_equal(st->api->too_large, 1);
    cohort__api__response__free_unpacked(resp, NULL);
    cohort_api_client_destroy(&c);
}

static void test_send_to_an_unknown_node_and_a_bad_topic_say_why(void **state)
{
    (void)state;
    cohort_api_client_t *c = s_client();
    Cohort__Api__ApiRequest req = COHORT__API__API_REQUEST__INIT;
    Cohort__Api__Send send = COHORT__API__SEND__INIT;
    Cohort__Wire__Message m = COHORT__WIRE__MESSAGE__INIT;
    m.subject = S_STR("x");
    send.node = S_STR("zeta");
    send.message = &m;
    req.op_case = COHORT__API__API_REQUEST__OP_SEND;
    req.send = &send;
    Cohort__Api__Response *resp = s_call(c, &req);
    assert_int_equal(resp->status, COHORT__API__CODE__UNKNOWN_NODE);
    S_NN(strstr(resp->error, "unknown node 'zeta'"));
    cohort__api__response__free_unpacked(resp, NULL);
    resp = s_publish(c, "bad topic", "x");
    assert_int_equal(resp->status, COHORT__API__CODE__INVALID);
    cohort__api__response__free_unpacked(resp, NULL);
    s_sub(c, "orders..x", true, COHORT__API__CODE__INVALID);
    cohort_api_client_destroy(&c);
}

static void test_limits_on_patterns_and_clients(void **state)
{
    (void)state;
    cohort_api_client_t *c[7];
    for (int i = 0; i < 7; i++)
        c[i] = s_client();
    s_sub(c[0], "lim.a", true, COHORT__API__CODE__OK);
    s_sub(c[0], "lim.b", true, COHORT__API__CODE__OK);
    s_sub(c[0], "lim.c", true, COHORT__API__CODE__OK);
    s_sub(c[0], "lim.c", true, COHORT__API__CODE__OK); /* again: no new pattern */
    s_sub(c[0], "lim.d", true, COHORT__API__CODE__ERROR);
    for (int i = 1; i < 6; i++)
        s_sub(c[i], "lim.a", true, COHORT__API__CODE__OK);
    s_sub(c[6], "lim.a", true, COHORT__API__CODE__ERROR); /* a 7th client with state */
    Cohort__Api__Response *resp;
    Cohort__Api__Status *st = s_status(c[6], &resp); /* stateless requests still work */
    assert_int_equal(st->api->clients, 6);
    cohort__api__response__free_unpacked(resp, NULL);
    for (int i = 0; i < 7; i++)
        cohort_api_client_destroy(&c[i]);
}

/* ---- the ops ---- */

static void test_status_and_peers_describe_the_node(void **state)
{
    (void)state;
    cohort_api_client_t *c = s_client();
    Cohort__Api__Response *resp;
    Cohort__Api__Status *st = s_status(c, &resp);
    assert_string_equal(st->node, "alpha");
    assert_string_equal(st->cluster, "test");
    assert_string_equal(st->site, "hq");
    assert_int_equal(st->peers_total, 1);
    assert_int_equal(st->peers_up, 1);
    S_NN(st->counters);
    cohort__api__response__free_unpacked(resp, NULL);

    Cohort__Api__ApiRequest req = COHORT__API__API_REQUEST__INIT;
    Cohort__Api__PeersReq pr = COHORT__API__PEERS_REQ__INIT;
    req.op_case = COHORT__API__API_REQUEST__OP_PEERS;
    req.peers = &pr;
    resp = s_call(c, &req);
    assert_int_equal(resp->status, COHORT__API__CODE__OK);
    assert_int_equal(resp->n_peers, 1);
    assert_string_equal(resp->peers[0]->name, "beta");
    assert_string_equal(resp->peers[0]->state, "up");
    assert_int_equal(strlen(resp->peers[0]->fingerprint), 64);
    cohort__api__response__free_unpacked(resp, NULL);
    cohort_api_client_destroy(&c);
}

static void test_publish_reaches_each_matching_client_once(void **state)
{
    fixture_t *f = *state;
    cohort_api_client_t *c1 = s_client(), *c2 = s_client(), *c3 = s_client();
    s_sub(c1, "orders.>", true, COHORT__API__CODE__OK);
    s_sub(c1, "orders.*", true, COHORT__API__CODE__OK);
    s_sub(c2, "orders.eu", true, COHORT__API__CODE__OK);
    s_sub(c3, "weather.>", true, COHORT__API__CODE__OK);
    /* Until beta has heard of the last pattern (interest travels in
     * order, so it has all of them then): probes to weather.> only. */
    s_until_beta_publishes_to_alpha(f, "weather.probe", c3);
    cohort_msg_t *m = cohort_msg_new("orders.eu", "o1", 2);
    unsigned n = 0;
    assert_int_equal(cohort_publish(f->cluster->nodes[1], &m, &n), COHORT_OK);
    assert_int_equal(n, 1);
    Cohort__Api__ApiMessage *got = s_next(c1, S_WAIT);
    S_NN(got);
    assert_int_equal(got->kind_case, COHORT__API__API_MESSAGE__KIND_DELIVERY);
    assert_string_equal(got->delivery->sender, "beta");
    assert_int_equal(got->delivery->message->kind, COHORT__WIRE__MESSAGE__KIND__PUBLISH);
    assert_string_equal(got->delivery->message->subject, "orders.eu");
    assert_memory_equal(got->delivery->message->payload.data, "o1", 2);
    s_free(&got);
    assert_null(got = s_next(c1, S_NONE)); /* once, though two patterns match */
    got = s_next(c2, S_WAIT);
    S_NN(got);
    s_free(&got);
    assert_null(got = s_next(c3, S_NONE));

    /* a client publishing: reaches the local subscriber, not c2 */
    Cohort__Api__Response *resp = s_publish(c3, "orders.us", "o2");
    assert_int_equal(resp->status, COHORT__API__CODE__OK);
    assert_int_equal(resp->recipients, 1); /* this node */
    cohort__api__response__free_unpacked(resp, NULL);
    got = s_next(c1, S_WAIT);
    S_NN(got);
    assert_string_equal(got->delivery->sender, "alpha");
    s_free(&got);
    assert_null(got = s_next(c2, S_NONE));
    resp = s_publish(c3, "nobody.listens", "x");
    assert_int_equal(resp->recipients, 0);
    cohort__api__response__free_unpacked(resp, NULL);
    cohort_api_client_destroy(&c1);
    cohort_api_client_destroy(&c2);
    cohort_api_client_destroy(&c3);
}

static void test_node_subscription_lasts_while_any_client_holds_it(void **state)
{
    (void)state;
    cohort_api_client_t *c1 = s_client(), *c2 = s_client();
    s_sub(c1, "jobs.>", true, COHORT__API__CODE__OK);
    s_sub(c2, "jobs.>", true, COHORT__API__CODE__OK);
    Cohort__Api__Response *resp;
    Cohort__Api__Status *st = s_status(c1, &resp);
    assert_true(s_has(st->subscriptions, st->n_subscriptions, "jobs.>"));
    cohort__api__response__free_unpacked(resp, NULL);
    s_sub(c1, "jobs.>", false, COHORT__API__CODE__OK);
    s_sub(c1, "jobs.>", false, COHORT__API__CODE__OK); /* twice is fine */
    st = s_status(c1, &resp);
    assert_true(s_has(st->subscriptions, st->n_subscriptions, "jobs.>"));
    cohort__api__response__free_unpacked(resp, NULL);
    cohort_api_client_destroy(&c2); /* Bye */
    st = s_status(c1, &resp);
    assert_false(s_has(st->subscriptions, st->n_subscriptions, "jobs.>"));
    cohort__api__response__free_unpacked(resp, NULL);
    cohort_api_client_destroy(&c1);
}

static void test_unicast_reaches_clients_subscribed_to_its_subject(void **state)
{
    fixture_t *f = *state;
    cohort_api_client_t *c1 = s_client(), *c2 = s_client();
    s_sub(c1, "jobs.>", true, COHORT__API__CODE__OK);
    s_sub(c2, "other", true, COHORT__API__CODE__OK);
    Cohort__Api__Response *resp;
    uint64_t unrouted = s_status(c1, &resp)->api->unrouted;
    cohort__api__response__free_unpacked(resp, NULL);
    cohort_msg_t *m = cohort_msg_new("jobs.resize", "\0img", 4);
    cohort_msg_set_header(m, "trace-id", "42");
    assert_int_equal(cohort_send(f->cluster->nodes[1], "alpha", &m, 0), COHORT_OK);
    Cohort__Api__ApiMessage *got = s_next(c1, S_WAIT);
    S_NN(got);
    Cohort__Wire__Message *w = got->delivery->message;
    assert_int_equal(w->kind, COHORT__WIRE__MESSAGE__KIND__UNICAST);
    assert_string_equal(got->delivery->sender, "beta");
    assert_string_equal(w->subject, "jobs.resize");
    assert_int_equal(w->payload.len, 4);
    assert_memory_equal(w->payload.data, "\0img", 4);
    assert_int_equal(w->n_headers, 1);
    assert_string_equal(w->headers[0]->key, "trace-id");
    assert_string_equal(w->headers[0]->value, "42");
    s_free(&got);
    assert_null(got = s_next(c2, S_NONE));
    /* nobody subscribed to this one: dropped and counted */
    m = cohort_msg_new("nobody.home", "x", 1);
    assert_int_equal(cohort_send(f->cluster->nodes[1], "alpha", &m, 0), COHORT_OK);
    int64_t end = zclock_mono() + S_WAIT;
    uint64_t now = unrouted;
    while (now == unrouted && zclock_mono() < end) {
        zclock_sleep(20);
        now = s_status(c1, &resp)->api->unrouted;
        cohort__api__response__free_unpacked(resp, NULL);
    }
    assert_int_equal(now, unrouted + 1);
    cohort_api_client_destroy(&c1);
    cohort_api_client_destroy(&c2);
}

/* A client that stops reading: the server keeps its deliveries (in order)
 * up to half its backlog cap (4 MiB here), then stops taking more from the
 * node, whose peers then wait and resend. Nothing acknowledged is dropped. */
static void test_a_client_that_reads_late_loses_nothing(void **state)
{
    fixture_t *f = *state;
    cohort_api_client_t *c = s_client();
    s_sub(c, "bulk", true, COHORT__API__CODE__OK);
    Cohort__Api__Response *resp;
    uint64_t dropped = s_status(c, &resp)->api->client_dropped;
    cohort__api__response__free_unpacked(resp, NULL);
    /* 20000 x 1 KiB: past what the sockets buffer (about 1000 messages on
     * each side) plus the 4 MiB backlog */
    enum { N = 20000, SIZE = 1024 };
    char *payload = cohort_malloc(SIZE);
    memset(payload, 'x', SIZE);
    for (int i = 0; i < N; i++) {
        snprintf(payload, 16, "%08d", i);
        cohort_msg_t *m = cohort_msg_new("bulk", payload, SIZE);
        assert_int_equal(cohort_send(f->cluster->nodes[1], "alpha", &m, test_ms(30000)), COHORT_OK);
    }
    free(payload);
    for (int i = 0; i < N; i++) {
        Cohort__Api__ApiMessage *got = s_next(c, test_ms(20000));
        S_NN(got);
        assert_int_equal(got->kind_case, COHORT__API__API_MESSAGE__KIND_DELIVERY);
        S_NN(got->delivery->message);
        char want[16];
        snprintf(want, sizeof want, "%08d", i);
        assert_memory_equal(got->delivery->message->payload.data, want, 8);
        s_free(&got);
    }
    assert_int_equal(s_status(c, &resp)->api->client_dropped, dropped);
    cohort__api__response__free_unpacked(resp, NULL);
    cohort_api_client_destroy(&c);
}

static void test_call_is_answered_by_a_serving_client_round_robin(void **state)
{
    fixture_t *f = *state;
    cohort_api_client_t *s1 = s_client(), *s2 = s_client(), *caller = s_client();
    s_serve(s1, "echo");
    s_serve(s2, "echo");
    /* two calls from a local client: one to each server */
    uint64_t ids[2];
    int served[2] = {0, 0};
    for (int i = 0; i < 2; i++) {
        ids[i] = s_call_service(caller, "echo", i ? "two" : "one");
        Cohort__Api__ApiMessage *req = NULL;
        cohort_api_client_t *who = NULL;
        int64_t end = zclock_mono() + S_WAIT;
        while (!req && zclock_mono() < end) {
            if ((req = s_next(s1, 20)))
                who = s1, served[0]++;
            else if ((req = s_next(s2, 20)))
                who = s2, served[1]++;
        }
        S_NN(req);
        assert_int_equal(req->delivery->message->kind, COHORT__WIRE__MESSAGE__KIND__REQUEST);
        assert_string_equal(req->delivery->sender, "alpha");
        assert_string_equal(req->delivery->message->subject, "echo");
        s_answer(who, req->delivery, i ? "TWO" : "ONE");
        s_free(&req);
        Cohort__Api__ApiMessage *rep = s_next(caller, S_WAIT);
        S_NN(rep);
        assert_int_equal(rep->delivery->message->kind, COHORT__WIRE__MESSAGE__KIND__REPLY);
        assert_int_equal(rep->delivery->message->request_id, ids[i]);
        assert_int_equal(rep->delivery->message->status, 0);
        assert_memory_equal(rep->delivery->message->payload.data, i ? "TWO" : "ONE", 3);
        s_free(&rep);
    }
    assert_int_equal(served[0], 1);
    assert_int_equal(served[1], 1);

    /* a request from another node, answered with an error status */
    cohort_msg_t *m = cohort_msg_new("", "hi", 2), *reply = NULL;
    uint64_t rid = 0;
    assert_int_equal(cohort_request_async(f->cluster->nodes[1], "echo", &m, test_ms(3000), &rid),
                     COHORT_OK);
    Cohort__Api__ApiMessage *req = NULL;
    cohort_api_client_t *who = NULL;
    int64_t end = zclock_mono() + S_WAIT;
    while (!req && zclock_mono() < end) {
        if ((req = s_next(s1, 20)))
            who = s1;
        else if ((req = s_next(s2, 20)))
            who = s2;
    }
    S_NN(req);
    assert_string_equal(req->delivery->sender, "beta");
    /* answer from whichever got it: only that client may */
    Cohort__Api__ApiRequest ar = COHORT__API__API_REQUEST__INIT;
    Cohort__Api__Reply rp = COHORT__API__REPLY__INIT;
    Cohort__Wire__Message rm = COHORT__WIRE__MESSAGE__INIT;
    rm.status = COHORT__API__CODE__ERROR;
    rm.error = S_STR("broken");
    rp.node = req->delivery->sender;
    rp.request_id = req->delivery->message->request_id;
    rp.message = &rm;
    ar.op_case = COHORT__API__API_REQUEST__OP_REPLY;
    ar.reply = &rp;
    s_expect(caller, &ar, COHORT__API__CODE__INVALID); /* only the client it went to */
    s_expect(who == s1 ? s2 : s1, &ar, COHORT__API__CODE__INVALID);
    s_expect(who, &ar, COHORT__API__CODE__OK);
    s_expect(who, &ar, COHORT__API__CODE__INVALID); /* and only once */
    s_free(&req);
    end = zclock_mono() + S_WAIT;
    while (!reply && zclock_mono() < end) {
        reply = cohort_recv(f->cluster->nodes[1], 50);
        if (reply && cohort_msg_kind(reply) != COHORT_MSG_REPLY)
            cohort_msg_destroy(&reply);
    }
    S_NN(reply);
    assert_int_equal(cohort_msg_request_id(reply), rid);
    assert_int_equal(cohort_msg_status(reply), COHORT_ERROR);
    assert_string_equal(cohort_msg_error(reply), "broken");
    cohort_msg_destroy(&reply);
    cohort_api_client_destroy(&s1);
    cohort_api_client_destroy(&s2);
    cohort_api_client_destroy(&caller);
}

static void test_call_without_responders_fails_with_no_responders(void **state)
{
    (void)state;
    cohort_api_client_t *c = s_client();
    uint64_t id = s_call_service(c, "nobody.serves", "x");
    Cohort__Api__ApiMessage *rep = s_next(c, S_WAIT);
    S_NN(rep);
    assert_int_equal(rep->delivery->message->request_id, id);
    assert_int_equal(rep->delivery->message->status, COHORT__API__CODE__NO_RESPONDERS);
    s_free(&rep);
    cohort_api_client_destroy(&c);
}

static void test_requests_of_a_leaving_server_fail_at_once(void **state)
{
    fixture_t *f = *state;
    cohort_api_client_t *s = s_client();
    s_serve(s, "slow");
    uint64_t rid = 0;
    Cohort__Api__ApiMessage *req = s_request_once_served(f, "slow", s, test_ms(10000), &rid);
    s_free(&req);
    int64_t t0 = zclock_mono();
    cohort_api_client_destroy(&s); /* Bye without answering */
    cohort_msg_t *reply = NULL;
    int64_t end = zclock_mono() + S_WAIT;
    while (!reply && zclock_mono() < end) {
        reply = cohort_recv(f->cluster->nodes[1], 50);
        if (reply && (cohort_msg_kind(reply) != COHORT_MSG_REPLY ||
                      cohort_msg_request_id(reply) != rid)) /* an earlier try's */
            cohort_msg_destroy(&reply);
    }
    S_NN(reply);
    assert_int_equal(cohort_msg_request_id(reply), rid);
    assert_int_equal(cohort_msg_status(reply), COHORT_NO_RESPONDERS);
    assert_true(zclock_mono() - t0 < test_ms(2000));
    cohort_msg_destroy(&reply);
}

static void test_vanished_client_is_dropped_by_the_heartbeat(void **state)
{
    (void)state;
    zsock_t *d = s_raw();
    const uint8_t sub[] = {0x08, 0x05, 0x72, 0x08, 0x0a, 0x06, 'g', 'o', 'n', 'e', '.', '>'};
    s_raw_send(d, sub, sizeof sub, false);
    s_raw_expect(d, 5, COHORT__API__CODE__OK);
    zsock_destroy(&d); /* no Bye */
    cohort_api_client_t *c = s_client();
    Cohort__Api__Response *resp;
    Cohort__Api__Status *st = s_status(c, &resp);
    assert_true(s_has(st->subscriptions, st->n_subscriptions, "gone.>"));
    uint64_t gone = st->api->clients_gone;
    cohort__api__response__free_unpacked(resp, NULL);
    bool dropped = false;
    for (int64_t end = zclock_mono() + S_WAIT; !dropped && zclock_mono() < end;) {
        zclock_sleep(50);
        st = s_status(c, &resp);
        dropped = !s_has(st->subscriptions, st->n_subscriptions, "gone.>") &&
                  st->api->clients_gone == gone + 1;
        cohort__api__response__free_unpacked(resp, NULL);
    }
    assert_true(dropped);
    cohort_api_client_destroy(&c);
}

/* Last: these stop and restart beta. */
static void test_events_reach_clients_that_asked_and_full_queues_wait(void **state)
{
    fixture_t *f = *state;
    cohort_api_client_t *ev = s_client(), *quiet = s_client(), *c = s_client();
    Cohort__Api__ApiRequest req = COHORT__API__API_REQUEST__INIT;
    Cohort__Api__EventsReq on = COHORT__API__EVENTS_REQ__INIT;
    on.on = true;
    req.op_case = COHORT__API__API_REQUEST__OP_EVENTS;
    req.events = &on;
    s_expect(ev, &req, COHORT__API__CODE__OK);
    s_sub(quiet, "x", true, COHORT__API__CODE__OK);
    cohort_close(&f->cluster->nodes[1]);
    Cohort__Api__ApiMessage *got = s_next(ev, S_WAIT);
    S_NN(got);
    assert_int_equal(got->kind_case, COHORT__API__API_MESSAGE__KIND_EVENT);
    assert_string_equal(got->event->type, "member.left");
    assert_string_equal(got->event->node, "beta");
    assert_string_equal(got->event->reason, "left");
    s_free(&got);
    assert_null(got = s_next(quiet, S_NONE));

    /* beta is down: its queue (limits.send_queue 16) fills up */
    Cohort__Api__Send send = COHORT__API__SEND__INIT;
    Cohort__Wire__Message m = COHORT__WIRE__MESSAGE__INIT;
    m.subject = S_STR("q");
    send.node = S_STR("beta");
    send.message = &m;
    Cohort__Api__ApiRequest sr = COHORT__API__API_REQUEST__INIT;
    sr.op_case = COHORT__API__API_REQUEST__OP_SEND;
    sr.send = &send;
    Cohort__Api__Response *resp = NULL;
    int queued = 0;
    for (; queued < 100; queued++) {
        resp = s_call(c, &sr);
        bool full = resp->status == COHORT__API__CODE__QUEUE_FULL;
        cohort__api__response__free_unpacked(resp, NULL);
        if (full)
            break;
    }
    assert_true(queued >= 1 && queued < 100);
    send.timeout_ms = (uint32_t)test_ms(300);
    int64_t t0 = zclock_mono();
    s_expect(c, &sr, COHORT__API__CODE__QUEUE_FULL);
    assert_true(zclock_mono() - t0 >= send.timeout_ms - 10);
    /* a send that may wait long enough succeeds once beta is back and acks */
    send.timeout_ms = (uint32_t)test_ms(15000);
    char *path = cohort_sprintf("%s/beta.yaml", f->cluster->dir);
    char why[1024];
    /* send first, answered later; restart beta meanwhile */
    zsock_t *d = s_raw();
    sr.id = 77;
    uint8_t *buf = cohort_malloc(cohort__api__api_request__get_packed_size(&sr));
    size_t n = cohort__api__api_request__pack(&sr, buf);
    s_raw_send(d, buf, n, false);
    free(buf);
    zclock_sleep(test_ms(100));
    if (cohort_open(path, &f->cluster->nodes[1], why, sizeof why) < 0)
        fail_msg("beta: %s", why);
    free(path);
    zsock_set_rcvtimeo(d, test_ms(15000));
    resp = s_raw_response(d);
    S_NN(resp);
    assert_int_equal(resp->id, 77);
    assert_int_equal(resp->status, COHORT__API__CODE__OK);
    cohort__api__response__free_unpacked(resp, NULL);
    zsock_destroy(&d);
    /* link.up/down come too; the member itself is back, as a restart */
    while ((got = s_next(ev, S_WAIT)) && !strncmp(got->event->type, "link.", 5))
        s_free(&got);
    S_NN(got);
    assert_string_equal(got->event->type, "member.rejoined");
    assert_string_equal(got->event->node, "beta");
    s_free(&got);
    cohort_api_client_destroy(&ev);
    cohort_api_client_destroy(&quiet);
    cohort_api_client_destroy(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unreachable_node_is_reported_at_once),
        cmocka_unit_test(test_server_refuses_a_missing_directory_a_file_and_a_live_socket),
        cmocka_unit_test(test_socket_file_is_0660),
        cmocka_unit_test(test_malformed_requests_are_refused_and_the_server_goes_on),
        cmocka_unit_test(test_send_to_an_unknown_node_and_a_bad_topic_say_why),
        cmocka_unit_test(test_limits_on_patterns_and_clients),
        cmocka_unit_test(test_a_client_that_reads_late_loses_nothing),
        cmocka_unit_test(test_status_and_peers_describe_the_node),
        cmocka_unit_test(test_publish_reaches_each_matching_client_once),
        cmocka_unit_test(test_node_subscription_lasts_while_any_client_holds_it),
        cmocka_unit_test(test_unicast_reaches_clients_subscribed_to_its_subject),
        cmocka_unit_test(test_call_is_answered_by_a_serving_client_round_robin),
        cmocka_unit_test(test_call_without_responders_fails_with_no_responders),
        cmocka_unit_test(test_requests_of_a_leaving_server_fail_at_once),
        cmocka_unit_test(test_vanished_client_is_dropped_by_the_heartbeat),
        cmocka_unit_test(test_events_reach_clients_that_asked_and_full_queues_wait),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
