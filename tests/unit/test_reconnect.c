/*
 * Reliable delivery across a broken TCP connection: alpha reaches beta
 * through a real TCP proxy (a thread of this test) that the test cuts in the
 * middle of a stream of reliable messages, three times. Every message must reach beta
 * exactly once and in order, whatever was in flight when the cut came.
 */
#include "testutil.h"

#include "api.pb-c.h"
#include "cluster.h"
#include "cohort.h"

#include <arpa/inet.h>
#include <czmq.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <unistd.h>

#define MESSAGES 5000
#define PAD 2048
#define MAX_PAIRS 16

typedef struct {
    int listen_fd;
    int target_port;
    int wake[2]; /* pipe: a byte means "cut now", 'q' means quit */
    int pairs[MAX_PAIRS][2];
    int pair_count;
    atomic_int cuts;
    pthread_t thread;
} proxy_t;

static int s_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static void s_cut_all(proxy_t *p)
{
    for (int i = 0; i < p->pair_count; i++) {
        /* RST rather than FIN: the harshest way a link dies */
        struct linger lg = {1, 0};
        setsockopt(p->pairs[i][0], SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        close(p->pairs[i][0]);
        close(p->pairs[i][1]);
    }
    p->pair_count = 0;
}

static void *s_proxy_main(void *arg)
{
    proxy_t *p = arg;
    for (;;) {
        struct pollfd fds[2 + 2 * MAX_PAIRS];
        int n = 0;
        fds[n++] = (struct pollfd){p->wake[0], POLLIN, 0};
        fds[n++] = (struct pollfd){p->listen_fd, POLLIN, 0};
        for (int i = 0; i < p->pair_count; i++) {
            fds[n++] = (struct pollfd){p->pairs[i][0], POLLIN, 0};
            fds[n++] = (struct pollfd){p->pairs[i][1], POLLIN, 0};
        }
        if (poll(fds, (nfds_t)n, 1000) < 0)
            continue;
        if (fds[0].revents & POLLIN) {
            char c = 0;
            if (read(p->wake[0], &c, 1) == 1) {
                s_cut_all(p);
                if (c == 'q')
                    return NULL;
                atomic_fetch_add(&p->cuts, 1);
                continue;
            }
        }
        if ((fds[1].revents & POLLIN) && p->pair_count < MAX_PAIRS) {
            int in = accept(p->listen_fd, NULL, NULL);
            int out = in >= 0 ? s_connect(p->target_port) : -1;
            if (in >= 0 && out >= 0) {
                p->pairs[p->pair_count][0] = in;
                p->pairs[p->pair_count][1] = out;
                p->pair_count++;
            } else if (in >= 0) {
                close(in);
            }
            continue;
        }
        for (int i = 0; i < p->pair_count; i++) {
            for (int side = 0; side < 2; side++) {
                struct pollfd *f = &fds[2 + 2 * i + side];
                if (!(f->revents & (POLLIN | POLLHUP | POLLERR)))
                    continue;
                char buf[65536];
                ssize_t got = read(f->fd, buf, sizeof buf);
                ssize_t put = got > 0 ? write(p->pairs[i][1 - side], buf, (size_t)got) : -1;
                if (got <= 0 || put != got) {
                    close(p->pairs[i][0]);
                    close(p->pairs[i][1]);
                    p->pairs[i][0] = p->pairs[p->pair_count - 1][0];
                    p->pairs[i][1] = p->pairs[p->pair_count - 1][1];
                    p->pair_count--;
                    goto next_round; /* fds no longer match pairs */
                }
            }
        }
    next_round:;
    }
}

static proxy_t *s_proxy_start(int listen_port, int target_port)
{
    proxy_t *p = calloc(1, sizeof *p);
    p->target_port = target_port;
    assert_int_equal(pipe(p->wake), 0);
    p->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(p->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)listen_port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(p->listen_fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(p->listen_fd, 16), 0);
    assert_int_equal(pthread_create(&p->thread, NULL, s_proxy_main, p), 0);
    return p;
}

static void s_proxy_signal(proxy_t *p, char c)
{
    assert_int_equal(write(p->wake[1], &c, 1), 1);
}

static void s_proxy_stop(proxy_t **p_p)
{
    proxy_t *p = *p_p;
    s_proxy_signal(p, 'q');
    pthread_join(p->thread, NULL);
    close(p->listen_fd);
    close(p->wake[0]);
    close(p->wake[1]);
    free(p);
    *p_p = NULL;
}

static Cohort__Api__Counters s_counters(cohort_t *node)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    assert_int_equal(cohort_info(node, "status", &buf, &len), COHORT_OK);
    Cohort__Api__Response *resp = cohort__api__response__unpack(NULL, len, buf);
    assert_non_null(resp);
    Cohort__Api__Counters out = *resp->status_info->counters;
    cohort__api__response__free_unpacked(resp, NULL);
    free(buf);
    return out;
}

static void test_cut_connection_mid_stream_loses_and_duplicates_nothing(void **state)
{
    (void)state;
    int proxy_port = cluster_free_port();
    cluster_member_t members[2] = {
        {.name = "alpha", .site = "a", .run = false},
        {.name = "beta", .site = "b", .run = false, .endpoint_port = proxy_port},
    };
    members[0].run = members[1].run = true;
    /* The proxy must listen before alpha dials beta's roster endpoint. The
     * cluster picks beta's real port, so start nodes first and let alpha's
     * reconnects find the proxy once it is up. */
    cluster_t *c = cluster_new(members, 2);
    proxy_t *proxy = s_proxy_start(proxy_port, c->ports[1]);
    cluster_wait_up(c, 15000);

    int64_t t0 = zclock_mono();
    for (int i = 0; i < MESSAGES; i++) {
        if (i == 1000 || i == 2500 || i == 4000)
            s_proxy_signal(proxy, 'c');
        char text[PAD];
        memset(text, '.', sizeof text);
        int n = snprintf(text, sizeof text, "%d", i);
        text[n] = ' '; /* index first, then padding, so more is in flight */
        cohort_msg_t *m = cohort_msg_new("seq", text, sizeof text);
        assert_int_equal(cohort_send(c->nodes[0], "beta", &m, 10000), COHORT_OK);
    }
    int next = 0, dups = 0;
    int64_t deadline = zclock_mono() + 30000;
    while (next < MESSAGES && zclock_mono() < deadline) {
        cohort_msg_t *m = cluster_next(c, 1, 200);
        if (!m)
            continue;
        size_t len = 0;
        const char *p = cohort_msg_payload(m, &len);
        char text[16] = {0};
        memcpy(text, p, len < 15 ? len : 15);
        int got = atoi(text);
        if (got < next)
            dups++;
        else if (got != next)
            fail_msg("message %d arrived while %d was expected (out of order or lost)", got, next);
        else
            next++;
        cohort_msg_destroy(&m);
    }
    Cohort__Api__Counters a = s_counters(c->nodes[0]), b = s_counters(c->nodes[1]);
    print_message("%d messages in %lld ms across %d cut(s); alpha resent %llu, beta dropped "
                  "%llu duplicates\n",
                  next, (long long)(zclock_mono() - t0), atomic_load(&proxy->cuts),
                  (unsigned long long)a.resent, (unsigned long long)b.duplicates_dropped);
    assert_int_equal(atomic_load(&proxy->cuts), 3);
    assert_int_equal(next, MESSAGES);
    assert_int_equal(dups, 0);
    /* nothing more trails in */
    cohort_msg_t *extra = cluster_next(c, 1, 500);
    assert_null(extra);
    s_proxy_stop(&proxy);
    cluster_destroy(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cut_connection_mid_stream_loses_and_duplicates_nothing),
    };
    return cmocka_run_group_tests_name("reconnect", tests, NULL, NULL);
}
