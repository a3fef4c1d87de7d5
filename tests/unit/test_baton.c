/*
 * Which thread runs a node (src/node/baton.c): an application thread that
 * waits in cohort_request or cohort_recv runs the node itself; the node's
 * own thread takes it back when the application is away.
 */
#include "testutil.h"

#include "api.pb-c.h"
#include "cluster.h"
#include "cohort.h"

#include <czmq.h>
#include <dirent.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { ALPHA, BETA, COUNT };

static const cluster_member_t s_members[COUNT] = {
    {.name = "alpha", .site = "hq", .run = true},
    {.name = "beta", .site = "hq", .run = true},
};

static int setup(void **state)
{
    cluster_log_from_env();
    cluster_t *c = cluster_new(s_members, COUNT);
    cluster_wait_up(c, test_ms(10000));
    *state = c;
    return 0;
}

static int teardown(void **state)
{
    cluster_t *c = *state;
    cluster_destroy(&c);
    return 0;
}

/* The next message that is not an event; *suspects counts member.suspect
 * and member.failed events seen on the way. */
static cohort_msg_t *s_next(cohort_t *node, int ms, int *suspects)
{
    for (int64_t end = zclock_mono() + ms; zclock_mono() < end;) {
        cohort_msg_t *m = cohort_recv(node, 50);
        if (m && cohort_msg_kind(m) != COHORT_MSG_EVENT)
            return m;
        if (m && suspects &&
            (!strcmp(cohort_msg_subject(m), "member.suspect") ||
             !strcmp(cohort_msg_subject(m), "member.failed")))
            (*suspects)++;
        cohort_msg_destroy(&m);
    }
    return NULL;
}

static void s_send(cohort_t *from, const char *to, const char *text)
{
    cohort_msg_t *m = cohort_msg_new("baton.test", text, strlen(text));
    assert_int_equal(cohort_send(from, to, &m, test_ms(5000)), COHORT_OK);
}

static void s_expect(cohort_t *node, const char *text, int ms)
{
    cohort_msg_t *m = s_next(node, ms, NULL);
    assert_non_null(m);
    size_t len = 0;
    const char *p = cohort_msg_payload(m, &len);
    assert_int_equal(len, strlen(text));
    assert_memory_equal(p, text, len);
    cohort_msg_destroy(&m);
}

typedef struct {
    cohort_t *node;
    atomic_int stop;
    int answered;
} s_server_t;

/* Takes whatever node has queued for its application (events so far). */
static void s_drain(cohort_t *node)
{
    cohort_msg_t *m = NULL;
    while ((m = cohort_recv(node, 0)))
        cohort_msg_destroy(&m);
}

/* node's handed_to_caller counter. */
static uint64_t s_handed(cohort_t *node)
{
    Cohort__Api__Counters *k = cluster_counters(node);
    uint64_t handed = k->handed_to_caller;
    cohort__api__counters__free_unpacked(k, NULL);
    return handed;
}

static void *s_server(void *arg)
{
    s_server_t *s = arg;
    while (!atomic_load(&s->stop)) {
        cohort_msg_t *m = cohort_recv(s->node, 50);
        if (m && cohort_msg_kind(m) == COHORT_MSG_REQUEST) {
            size_t len = 0;
            const void *p = cohort_msg_payload(m, &len);
            cohort_msg_t *reply = cohort_msg_new("", p, len);
            if (cohort_reply(s->node, m, &reply) == COHORT_OK)
                s->answered++;
        }
        cohort_msg_destroy(&m);
    }
    return NULL;
}

/* Both ends of a request/reply loop run their node in their own thread:
 * every request and every wait for one is counted as a caller's run, and
 * the replies are right (each carries its request's number). */
static void test_requests_and_their_replies_run_in_the_callers_threads(void **state)
{
    cluster_t *c = *state;
    cohort_t *client = c->nodes[BETA];
    s_server_t s = {.node = c->nodes[ALPHA]};
    atomic_init(&s.stop, 0);
    assert_int_equal(cohort_serve(s.node, "echo"), COHORT_OK);
    Cohort__Api__Counters *k0 = cluster_counters(client), *s0 = cluster_counters(s.node);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, s_server, &s), 0);
    enum { N = 200 };
    int ok = 0;
    int64_t interest_by = zclock_mono() + test_ms(10000);
    for (int i = 0; i < N; i++) {
        char text[32];
        snprintf(text, sizeof text, "request %d", i);
        cohort_msg_t *m = cohort_msg_new("", text, strlen(text)), *reply = NULL;
        cohort_status_t st = cohort_request(client, "echo", &m, test_ms(5000), &reply);
        if (st == COHORT_NO_RESPONDERS && ok == 0 && zclock_mono() < interest_by) {
            /* alpha's interest has not reached beta yet */
            cohort_msg_destroy(&reply);
            zclock_sleep(20);
            i--;
            continue;
        }
        assert_int_equal(st, COHORT_OK);
        size_t len = 0;
        const char *p = cohort_msg_payload(reply, &len);
        assert_int_equal(len, strlen(text));
        assert_memory_equal(p, text, len);
        cohort_msg_destroy(&reply);
        ok++;
    }
    atomic_store(&s.stop, 1);
    pthread_join(t, NULL);
    assert_int_equal(ok, N);
    assert_int_equal(s.answered, N);
    Cohort__Api__Counters *k1 = cluster_counters(client), *s1 = cluster_counters(s.node);
    /* one run per request at least (the request itself, then its wait) */
    assert_true(k1->caller_runs - k0->caller_runs >= N);
    /* the server's waits in cohort_recv and its replies */
    assert_true(s1->caller_runs - s0->caller_runs >= N);
    cohort__api__counters__free_unpacked(k0, NULL);
    cohort__api__counters__free_unpacked(k1, NULL);
    cohort__api__counters__free_unpacked(s0, NULL);
    cohort__api__counters__free_unpacked(s1, NULL);
    assert_int_equal(cohort_unserve(s.node, "echo"), COHORT_OK);
}

/* After a call, the application goes away: the node's own thread takes the
 * node back, so what a peer sends meanwhile is received and acknowledged
 * (the sender's window empties) while the application does not call. */
static void test_the_node_is_run_while_the_application_is_away(void **state)
{
    cluster_t *c = *state;
    cohort_t *alpha = c->nodes[ALPHA], *beta = c->nodes[BETA];
    cohort_msg_t *m = cohort_recv(alpha, 100); /* alpha's thread runs it */
    cohort_msg_destroy(&m);
    Cohort__Api__Counters *a0 = cluster_counters(alpha);
    for (int i = 0; i < 10; i++) {
        char text[16];
        snprintf(text, sizeof text, "away %d", i);
        s_send(beta, "alpha", text);
    }
    /* alpha's application calls nothing now; beta's window to alpha must
     * empty all the same */
    bool acked = false;
    for (int64_t end = zclock_mono() + test_ms(5000); !acked && zclock_mono() < end;) {
        Cohort__Api__Response *r = cluster_info(beta, "peers");
        for (size_t i = 0; i < r->n_peers; i++)
            if (!strcmp(r->peers[i]->name, "alpha") && r->peers[i]->unacked == 0)
                acked = true;
        cohort__api__response__free_unpacked(r, NULL);
        if (!acked)
            zclock_sleep(10);
    }
    assert_true(acked);
    for (int i = 0; i < 10; i++) {
        char text[16];
        snprintf(text, sizeof text, "away %d", i);
        s_expect(alpha, text, test_ms(2000));
    }
    Cohort__Api__Counters *a1 = cluster_counters(alpha);
    /* and taking it back for those receives asked the node's thread to
     * hand it over (it had taken it) */
    assert_true(a1->actor_yields > a0->actor_yields);
    cohort__api__counters__free_unpacked(a0, NULL);
    cohort__api__counters__free_unpacked(a1, NULL);
}

typedef struct {
    cohort_t *node;
    int delay_ms;
} s_later_t;

static void *s_send_later(void *arg)
{
    s_later_t *l = arg;
    zclock_sleep(l->delay_ms);
    cohort_msg_t *m = cohort_msg_new("baton.test", "late", 4);
    cohort_send(l->node, "alpha", &m, 5000);
    return NULL;
}

/* A long wait in cohort_recv runs the node all along: its timers (the
 * membership protocol's probes and answers) keep going, so the peer never
 * suspects it, and a message that comes in the middle ends the wait. */
static void test_a_long_wait_keeps_the_node_alive_and_ends_when_a_message_comes(void **state)
{
    cluster_t *c = *state;
    cohort_t *alpha = c->nodes[ALPHA], *beta = c->nodes[BETA];
    int suspects = 0;
    cohort_msg_t *m = NULL;
    while ((m = cohort_recv(beta, 0))) /* beta's events so far */
        cohort_msg_destroy(&m);
    s_later_t later = {.node = beta, .delay_ms = 1500};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, s_send_later, &later), 0);
    int64_t t0 = zclock_mono();
    m = s_next(alpha, test_ms(6000), &suspects);
    int64_t waited = zclock_mono() - t0;
    pthread_join(t, NULL);
    assert_non_null(m);
    assert_string_equal(cohort_msg_subject(m), "baton.test");
    cohort_msg_destroy(&m);
    assert_true(waited >= 1400);
    /* alpha keeps waiting, past several probe periods */
    m = s_next(alpha, 3000, &suspects);
    assert_null(m);
    assert_int_equal(suspects, 0);
    while ((m = cohort_recv(beta, 0))) {
        assert_string_not_equal(cohort_msg_subject(m), "member.suspect");
        assert_string_not_equal(cohort_msg_subject(m), "member.failed");
        cohort_msg_destroy(&m);
    }
}

/* Sent by beta 300 ms after it starts, while alpha waits: a unicast with
 * every field a message has (subject, headers, a payload with NULs). */
static void *s_send_full_later(void *arg)
{
    cohort_t *beta = arg;
    zclock_sleep(300);
    cohort_msg_t *m = cohort_msg_new("baton.full", "a\0b\0c", 5);
    cohort_msg_set_header(m, "trace-id", "7f3a");
    cohort_msg_set_header(m, "empty", "");
    cohort_send(beta, "alpha", &m, 5000);
    return NULL;
}

/* What comes while the application waits is handed to it as the node
 * decoded it (no frame, no second decode: handed_to_caller counts it),
 * and arrives whole: a unicast's subject, sender, headers and payload; a
 * reply's kind, status and payload (and its request's number: the request
 * returns it); a failed request's status and reason. */
static void test_what_a_waiting_caller_is_handed_keeps_every_field(void **state)
{
    cluster_t *c = *state;
    cohort_t *alpha = c->nodes[ALPHA], *beta = c->nodes[BETA];
    s_drain(alpha); /* events so far: the inbox empty */
    uint64_t handed0 = s_handed(alpha);
    cohort_msg_t *m = NULL;

    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, s_send_full_later, beta), 0);
    m = s_next(alpha, test_ms(5000), NULL); /* waiting when it comes */
    pthread_join(t, NULL);
    assert_non_null(m);
    assert_int_equal(cohort_msg_kind(m), COHORT_MSG_UNICAST);
    assert_string_equal(cohort_msg_subject(m), "baton.full");
    assert_string_equal(cohort_msg_sender(m), "beta");
    assert_string_equal(cohort_msg_header(m, "trace-id"), "7f3a");
    assert_string_equal(cohort_msg_header(m, "empty"), "");
    size_t len = 0;
    const void *p = cohort_msg_payload(m, &len);
    assert_int_equal(len, 5);
    assert_memory_equal(p, "a\0b\0c", 5);
    cohort_msg_destroy(&m);

    /* a reply, and a request that fails at once */
    s_server_t s = {.node = beta};
    atomic_init(&s.stop, 0);
    assert_int_equal(cohort_serve(beta, "full.echo"), COHORT_OK);
    assert_int_equal(pthread_create(&t, NULL, s_server, &s), 0);
    cohort_msg_t *reply = NULL;
    cohort_status_t st = COHORT_NO_RESPONDERS;
    for (int64_t end = zclock_mono() + test_ms(10000);
         st == COHORT_NO_RESPONDERS && zclock_mono() < end;) {
        cohort_msg_destroy(&reply);
        m = cohort_msg_new("", "ping\0", 5);
        st = cohort_request(alpha, "full.echo", &m, test_ms(5000), &reply);
        if (st == COHORT_NO_RESPONDERS)
            zclock_sleep(20); /* beta's interest is on its way */
    }
    atomic_store(&s.stop, 1);
    pthread_join(t, NULL);
    assert_int_equal(st, COHORT_OK);
    assert_int_equal(cohort_msg_kind(reply), COHORT_MSG_REPLY);
    assert_int_equal(cohort_msg_status(reply), COHORT_OK);
    assert_string_equal(cohort_msg_sender(reply), "beta");
    p = cohort_msg_payload(reply, &len);
    assert_int_equal(len, 5);
    assert_memory_equal(p, "ping\0", 5);
    cohort_msg_destroy(&reply);
    m = cohort_msg_new("", "x", 1);
    assert_int_equal(cohort_request(alpha, "nobody.serves.this", &m, test_ms(5000), &reply),
                     COHORT_NO_RESPONDERS);
    assert_non_null(reply);
    assert_int_equal(cohort_msg_status(reply), COHORT_NO_RESPONDERS);
    assert_string_equal(cohort_msg_error(reply), "no node serves this service");
    cohort_msg_destroy(&reply);

    /* the unicast and the reply; a request failed at once is answered
     * before the caller waits, through the inbox */
    assert_true(s_handed(alpha) >= handed0 + 2);
}

/* Voluntary context switches of each of this process's threads: tids and
 * counts, at most cap of them; returns how many. */
static size_t s_switches(long *tid, long *count, size_t cap)
{
    size_t n = 0;
    DIR *d = opendir("/proc/self/task");
    assert_non_null(d);
    struct dirent *e;
    while ((e = readdir(d)) && n < cap) {
        if (e->d_name[0] == '.')
            continue;
        char path[64], line[128];
        snprintf(path, sizeof path, "/proc/self/task/%s/status", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f)
            continue; /* the thread ended */
        while (fgets(line, sizeof line, f))
            if (sscanf(line, "voluntary_ctxt_switches: %ld", &count[n]) == 1) {
                tid[n++] = atol(e->d_name);
                break;
            }
        fclose(f);
    }
    closedir(d);
    return n;
}

/* Sent by beta 200 ms after it starts: S_BURST numbered unicasts as fast
 * as it can, which its node puts into few frames. */
#define S_BURST 400
static void *s_send_burst_later(void *arg)
{
    cohort_t *beta = arg;
    zclock_sleep(200);
    for (int i = 0; i < S_BURST; i++) {
        char text[16];
        snprintf(text, sizeof text, "%d", i);
        cohort_msg_t *m = cohort_msg_new("baton.burst", text, strlen(text));
        assert_int_equal(cohort_send(beta, "alpha", &m, test_ms(5000)), COHORT_OK);
    }
    return NULL;
}

/* A burst message's number, read from its payload; m is destroyed. */
static int s_burst_number(cohort_msg_t **m)
{
    size_t len = 0;
    const char *p = cohort_msg_payload(*m, &len);
    char text[16] = "";
    assert_true(len < sizeof text);
    memcpy(text, p, len);
    cohort_msg_destroy(m);
    return atoi(text);
}

/* The next burst message's number, or -1 if none came within ms. */
static int s_burst_next(cohort_t *node, int ms)
{
    cohort_msg_t *m = s_next(node, ms, NULL);
    if (!m)
        return -1;
    assert_string_equal(cohort_msg_subject(m), "baton.burst");
    return s_burst_number(&m);
}

/* A burst that comes while the application waits: everything the node
 * decodes from a frame during the wait is handed over at once and kept
 * ahead of the inbox, and what comes while the application is away goes
 * to the inbox behind it. Every message arrives, once, in order, whether
 * the application takes the next one waiting (cohort_recv with a timeout)
 * or without waiting (cohort_recv 0), and whether it pauses between. */
static void test_a_burst_that_comes_during_a_wait_arrives_whole_and_in_order(void **state)
{
    cluster_t *c = *state;
    cohort_t *alpha = c->nodes[ALPHA], *beta = c->nodes[BETA];
    s_drain(alpha);
    uint64_t handed0 = s_handed(alpha);

    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, s_send_burst_later, beta), 0);
    int want = 0;
    assert_int_equal(s_burst_next(alpha, test_ms(5000)), want++); /* waiting when it comes */
    zclock_sleep(20); /* away: the node's thread takes over, the rest go to the inbox */
    for (int64_t end = zclock_mono() + test_ms(20000); want < S_BURST && zclock_mono() < end;) {
        int got = -1;
        if (want % 3 == 0) {
            cohort_msg_t *m = cohort_recv(alpha, 0);
            if (!m) {
                zclock_sleep(1); /* not yet here: no spinning against the sender */
                continue;
            }
            if (cohort_msg_kind(m) == COHORT_MSG_EVENT) {
                cohort_msg_destroy(&m);
                continue;
            }
            got = s_burst_number(&m);
        } else {
            got = s_burst_next(alpha, test_ms(5000));
        }
        assert_int_equal(got, want);
        want++;
        if (want % 100 == 0)
            zclock_sleep(10);
    }
    pthread_join(t, NULL);
    assert_int_equal(want, S_BURST);
    assert_null(s_next(alpha, 200, NULL)); /* nothing twice */

    assert_true(s_handed(alpha) > handed0);
}

/* A caller that waits long in cohort_recv runs the node itself; the
 * node's own thread parks instead of checking on it every few
 * milliseconds: no thread of the process wakes anywhere near 200 times a
 * second while nothing happens. */
static void test_a_long_wait_lets_the_nodes_thread_sleep(void **state)
{
    cluster_t *c = *state;
    cohort_t *alpha = c->nodes[ALPHA];
    s_drain(alpha);
    enum { CAP = 64 };
    long tid0[CAP], n0[CAP], tid1[CAP], n1[CAP];
    size_t k0 = s_switches(tid0, n0, CAP);
    cohort_msg_t *m = cohort_recv(alpha, 1500); /* nothing comes */
    size_t k1 = s_switches(tid1, n1, CAP);
    cohort_msg_destroy(&m);
    long most = 0;
    for (size_t i = 0; i < k1; i++)
        for (size_t j = 0; j < k0; j++)
            if (tid1[i] == tid0[j] && n1[i] - n0[j] > most)
                most = n1[i] - n0[j];
    /* a node's thread checking every 5 ms would be ~300; its own timers
     * (beta's loop, both nodes' membership) stay far below */
    assert_true(most < 150);
}

/* An application that switches to polling cohort_fd after blocking calls
 * still hears every message: its descriptor fires again (a read found the
 * inbox empty before it went back to poll). */
static void test_the_pollable_fd_still_fires_after_blocking_calls(void **state)
{
    cluster_t *c = *state;
    cohort_t *alpha = c->nodes[ALPHA], *beta = c->nodes[BETA];
    s_send(beta, "alpha", "first");
    s_expect(alpha, "first", test_ms(5000)); /* a blocking receive */
    s_drain(alpha);
    cohort_msg_t *m = NULL;
    struct pollfd pfd = {.fd = cohort_fd(alpha), .events = POLLIN};
    for (int round = 0; round < 3; round++) {
        char text[16];
        snprintf(text, sizeof text, "polled %d", round);
        s_send(beta, "alpha", text);
        bool got = false;
        for (int64_t end = zclock_mono() + test_ms(5000); !got && zclock_mono() < end;) {
            int n = poll(&pfd, 1, 100);
            assert_true(n >= 0);
            if (n == 0)
                continue; /* only when the descriptor says so */
            while ((m = cohort_recv(alpha, 0))) {
                size_t len = 0;
                const char *p = cohort_msg_payload(m, &len);
                got |= cohort_msg_kind(m) == COHORT_MSG_UNICAST && len == strlen(text) &&
                       !memcmp(p, text, len);
                cohort_msg_destroy(&m);
            }
        }
        assert_true(got);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_requests_and_their_replies_run_in_the_callers_threads),
        cmocka_unit_test(test_the_node_is_run_while_the_application_is_away),
        cmocka_unit_test(test_a_long_wait_keeps_the_node_alive_and_ends_when_a_message_comes),
        cmocka_unit_test(test_the_pollable_fd_still_fires_after_blocking_calls),
        cmocka_unit_test(test_what_a_waiting_caller_is_handed_keeps_every_field),
        cmocka_unit_test(test_a_long_wait_lets_the_nodes_thread_sleep),
        cmocka_unit_test(test_a_burst_that_comes_during_a_wait_arrives_whole_and_in_order),
    };
    return cmocka_run_group_tests_name("baton", tests, setup, teardown);
}
