/*
 * Unit tests for the node's event loop (src/node/loop.c, epoll and
 * zmq_timers) and its ZeroMQ socket watch (src/node/zpoll.c), on a node
 * made by hand: only its loop and watched sockets, real inproc PAIR
 * sockets, no network and no tick (so a wakeup the watch lost is never
 * made up for by a sweep: the test would wait in vain).
 */
#include "testutil.h"

#include "node/node_impl.h"

#include <czmq.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include <zmq.h>

/* ---- the loop alone ---- */

typedef struct {
    int calls[2];
    int fd[2];
    node_loop_t *loop;
    bool end_other; /* the first handler ends the second poller */
} s_loop_fixture_t;

static int s_on_fd(node_loop_t *loop, zmq_pollitem_t *item, void *arg)
{
    s_loop_fixture_t *f = arg;
    int i = item->fd == f->fd[0] ? 0 : 1;
    f->calls[i]++;
    uint64_t v;
    assert_int_equal(read(item->fd, &v, sizeof v), sizeof v);
    if (i == 0 && f->end_other)
        node_loop_poller_end(loop, f->fd[1]);
    return 0;
}

static void s_poke(int fd)
{
    uint64_t one = 1;
    assert_int_equal(write(fd, &one, sizeof one), sizeof one);
}

static void test_a_descriptor_is_called_when_it_is_readable_and_not_before(void **state)
{
    (void)state;
    s_loop_fixture_t f = {.loop = node_loop_new()};
    for (int i = 0; i < 2; i++) {
        f.fd[i] = eventfd(0, EFD_NONBLOCK);
        assert_int_equal(node_loop_poller(f.loop, f.fd[i], s_on_fd, &f), 0);
    }
    assert_int_equal(node_loop_poller(f.loop, f.fd[0], s_on_fd, &f), -1); /* twice: refused */
    assert_int_equal(node_loop_run(f.loop, 20, NULL, false), 0);
    assert_int_equal(f.calls[0] + f.calls[1], 0);
    s_poke(f.fd[1]);
    assert_int_equal(node_loop_run(f.loop, 0, NULL, false), 0);
    assert_int_equal(f.calls[0], 0);
    assert_int_equal(f.calls[1], 1);
    /* an ended poller is not called however ready it is */
    node_loop_poller_end(f.loop, f.fd[1]);
    s_poke(f.fd[1]);
    assert_int_equal(node_loop_run(f.loop, 20, NULL, false), 0);
    assert_int_equal(f.calls[1], 1);
    node_loop_destroy(&f.loop);
    close(f.fd[0]);
    close(f.fd[1]);
}

static void test_a_poller_ended_by_a_handler_is_not_called_in_the_same_pass(void **state)
{
    (void)state;
    s_loop_fixture_t f = {.loop = node_loop_new(), .end_other = true};
    for (int i = 0; i < 2; i++) {
        f.fd[i] = eventfd(0, EFD_NONBLOCK);
        assert_int_equal(node_loop_poller(f.loop, f.fd[i], s_on_fd, &f), 0);
    }
    s_poke(f.fd[0]);
    s_poke(f.fd[1]);
    /* whichever epoll reports first, fd[1] is ended by fd[0]'s handler
     * before or in the pass: called at most once, never after it ended */
    for (int i = 0; i < 3; i++)
        assert_int_equal(node_loop_run(f.loop, 0, NULL, false), 0);
    assert_int_equal(f.calls[0], 1);
    assert_in_range(f.calls[1], 0, 1);
    int before = f.calls[1];
    s_poke(f.fd[1]);
    assert_int_equal(node_loop_run(f.loop, 20, NULL, false), 0);
    assert_int_equal(f.calls[1], before);
    node_loop_destroy(&f.loop);
    close(f.fd[0]);
    close(f.fd[1]);
}

static int s_count_timer(node_loop_t *loop, int id, void *arg)
{
    (void)loop;
    (void)id;
    (*(int *)arg)++;
    return 0;
}

static int s_stop_timer(node_loop_t *loop, int id, void *arg)
{
    (void)loop;
    (void)id;
    (void)arg;
    return -1;
}

static void test_a_timer_keeps_its_deadline_across_short_runs(void **state)
{
    (void)state;
    node_loop_t *loop = node_loop_new();
    int ticks = 0, once = 0;
    node_loop_timer(loop, 30, 0, s_count_timer, &ticks);
    node_loop_timer(loop, 0, 1, s_count_timer, &once);
    /* runs of 5 ms, as a caller's thread holding the node would make:
     * a timer reset on every entry (zloop's) would never fire */
    int64_t end = zclock_mono() + 200;
    while (zclock_mono() < end)
        assert_int_equal(node_loop_run(loop, 5, NULL, false), 0);
    assert_in_range(ticks, 2, 7);
    assert_int_equal(once, 1); /* a 0 ms one-shot ran once, not forever */
    /* a handler's -1 ends the run */
    node_loop_timer(loop, 1, 1, s_stop_timer, NULL);
    assert_int_equal(node_loop_run(loop, 2000, NULL, false), -1);
    /* a stop flag: one pass, then back */
    bool stop = true;
    assert_int_equal(node_loop_run(loop, 2000, &stop, false), 1);
    node_loop_destroy(&loop);
}

/* ---- the socket watch ---- */

typedef struct {
    node_t node;
    void *ctx, *tx, *rx; /* a PAIR each way of one inproc pipe: tx -> rx */
    int got;
    int per_call;      /* 0: read to EAGAIN (and say so); n: read n, stop */
    int sends_in_call; /* messages the handler makes tx send, once */
    bool hand;         /* each message fills the front's slot, as node.c's s_deliver */
    int calls;
} s_watch_fixture_t;

static int s_on_rx(node_loop_t *loop, zmq_pollitem_t *item, void *arg)
{
    (void)loop;
    node_t *node = arg;
    s_watch_fixture_t *f = (s_watch_fixture_t *)node; /* node is the first member */
    f->calls++;
    for (int n = 0; f->per_call == 0 || n < f->per_call; n++) {
        char buf[16];
        if (zmq_recv(item->socket, buf, sizeof buf, ZMQ_DONTWAIT) < 0) {
            if (errno == EAGAIN)
                node_drained(node, item->socket);
            /* more come after the read that found it empty: only their
             * own wakeup can bring them (nothing asks the socket again) */
            for (; f->sends_in_call > 0; f->sends_in_call--)
                assert_int_equal(zmq_send(f->tx, "late", 4, 0), 4);
            break;
        }
        f->got++;
        if (f->hand) {
            node->front_news = node->front_handed = true;
            return 0; /* as node.c's readers: the rest after the front's send */
        }
    }
    return 0;
}

static int s_watch_setup(void **state)
{
    s_watch_fixture_t *f = calloc(1, sizeof *f);
    f->node.loop = node_loop_new();
    node_loop_before_wait(f->node.loop, node_zsocks_before_wait, &f->node);
    f->ctx = zmq_ctx_new();
    f->rx = zmq_socket(f->ctx, ZMQ_PAIR);
    f->tx = zmq_socket(f->ctx, ZMQ_PAIR);
    assert_int_equal(zmq_bind(f->rx, "inproc://zpoll-test"), 0);
    assert_int_equal(zmq_connect(f->tx, "inproc://zpoll-test"), 0);
    assert_int_equal(node_add_reader(&f->node, f->rx, s_on_rx), 0);
    *state = f;
    return 0;
}

static int s_watch_teardown(void **state)
{
    s_watch_fixture_t *f = *state;
    node_unwatch_socket(&f->node, f->rx);
    node_zsocks_free(&f->node);
    node_loop_destroy(&f->node.loop);
    zmq_close(f->tx);
    zmq_close(f->rx);
    zmq_ctx_term(f->ctx);
    free(f);
    return 0;
}

/* Runs the loop until want messages came or 2 s passed. */
static void s_run_until(s_watch_fixture_t *f, int want)
{
    int64_t end = zclock_mono() + 2000;
    while (f->got < want && zclock_mono() < end)
        assert_int_equal(node_loop_run(f->node.loop, 10, NULL, false), 0);
}

static void test_a_reader_gets_every_message_with_no_sweep(void **state)
{
    s_watch_fixture_t *f = *state;
    for (int round = 1; round <= 50; round++) {
        for (int i = 0; i < round % 4 + 1; i++)
            assert_int_equal(zmq_send(f->tx, "m", 1, 0), 1);
        int want = f->got + round % 4 + 1;
        s_run_until(f, want);
        assert_int_equal(f->got, want);
    }
}

static void test_messages_that_come_during_the_handler_still_wake_the_loop(void **state)
{
    s_watch_fixture_t *f = *state;
    f->sends_in_call = 3;
    assert_int_equal(zmq_send(f->tx, "m", 1, 0), 1);
    s_run_until(f, 4);
    assert_int_equal(f->got, 4);
    /* and later ones too */
    assert_int_equal(zmq_send(f->tx, "m", 1, 0), 1);
    s_run_until(f, 5);
    assert_int_equal(f->got, 5);
}

static void test_a_reader_that_stops_before_empty_is_called_again(void **state)
{
    s_watch_fixture_t *f = *state;
    f->per_call = 1; /* a handler at its budget: says nothing about empty */
    for (int i = 0; i < 10; i++)
        assert_int_equal(zmq_send(f->tx, "m", 1, 0), 1);
    /* the ten were queued before the loop ran: one wakeup for all; the
     * rest come only because the socket stays dirty until drained */
    s_run_until(f, 10);
    assert_int_equal(f->got, 10);
    assert_true(f->calls >= 10);
}

static void test_a_reader_is_called_without_an_ask_and_copes_with_nothing(void **state)
{
    s_watch_fixture_t *f = *state;
    /* watching makes it dirty (it may be ready already): the first settle
     * calls the handler, which finds nothing, says so, and is left alone */
    assert_int_equal(node_loop_run(f->node.loop, 0, NULL, false), 0);
    int calls = f->calls;
    assert_true(calls >= 1);
    assert_int_equal(f->got, 0);
    assert_int_equal(node_loop_run(f->node.loop, 50, NULL, false), 0);
    assert_int_equal(f->calls, calls);
}

static void test_a_reader_stopped_for_the_waiting_front_is_read_before_the_next_wait(void **state)
{
    s_watch_fixture_t *f = *state;
    f->hand = true;
    for (int i = 0; i < 3; i++)
        assert_int_equal(zmq_send(f->tx, "m", 1, 0), 1);
    /* the front's run ends with the first: the reader stopped, nothing
     * else was asked */
    assert_int_equal(node_loop_run(f->node.loop, 2000, &f->node.front_news, false), 1);
    assert_int_equal(f->got, 1);
    assert_true(f->node.zsock_deferred);
    /* all three were queued before the first read: no wakeup is coming
     * for the other two; the next run asks before it waits */
    f->hand = false;
    f->node.front_news = f->node.front_handed = false;
    assert_int_equal(node_loop_run(f->node.loop, 0, NULL, false), 0);
    assert_int_equal(f->got, 3);
    assert_false(f->node.zsock_deferred);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_descriptor_is_called_when_it_is_readable_and_not_before),
        cmocka_unit_test(test_a_poller_ended_by_a_handler_is_not_called_in_the_same_pass),
        cmocka_unit_test(test_a_timer_keeps_its_deadline_across_short_runs),
#define T(name) cmocka_unit_test_setup_teardown(name, s_watch_setup, s_watch_teardown)
        T(test_a_reader_gets_every_message_with_no_sweep),
        T(test_messages_that_come_during_the_handler_still_wake_the_loop),
        T(test_a_reader_that_stops_before_empty_is_called_again),
        T(test_a_reader_is_called_without_an_ask_and_copes_with_nothing),
        T(test_a_reader_stopped_for_the_waiting_front_is_read_before_the_next_wait),
#undef T
    };
    return cmocka_run_group_tests_name("zpoll", tests, NULL, NULL);
}
