/*  The node's event loop: descriptors watched with epoll(7) (level
 *  triggered), timers kept by libzmq's zmq_timers.
 *
 *  It replaces zloop because the node is not always run by its actor's
 *  thread: an application thread waiting in a blocking call runs it itself
 *  (node.h, the baton), in slices. zloop_start recomputes every timer from
 *  "now" each time it is entered, so a loop entered once per request would
 *  never fire its 50 ms tick; here a timer's deadline is kept across runs,
 *  whoever runs them.
 *
 *  epoll rather than poll(2): a thread that waits here sleeps once per
 *  request on every descriptor of the node (its sockets, monitors and
 *  pipe: 7 in a two-node cluster, 4 more per peer), and a sleeping poll(2)
 *  asks each of them three times and queues and unqueues a wait entry on
 *  each; epoll_wait does the work for the ready ones only.
 */

#include "node/node_impl.h"
#include "util/mem.h"

#include <errno.h>
#include <sys/epoll.h>
#include <unistd.h>

typedef struct {
    node_loop_t *loop;
    node_timer_fn *fn;
    void *arg;
    size_t times; /* runs left, 0: forever */
    int id;
} s_timer_t;

typedef struct {
    int fd;
    node_poll_fn *fn;
    void *arg;
} s_poller_t;

struct node_loop {
    void *timers; /* zmq_timers */
    s_timer_t **timer;
    size_t timer_count, timer_cap;
    s_poller_t *poller;
    struct epoll_event *ready; /* room for one event per poller */
    size_t poller_count, poller_cap;
    int epfd;
    uint64_t changes; /* bumped when a poller comes or goes */
    int rc;           /* -1 once a handler asked to stop */
    int (*before_wait)(void *arg);
    void *before_arg;
};

node_loop_t *node_loop_new(void)
{
    node_loop_t *self = cohort_calloc(1, sizeof *self);
    self->timers = zmq_timers_new();
    assert(self->timers);
    self->epfd = epoll_create1(EPOLL_CLOEXEC);
    assert(self->epfd >= 0); /* fails only out of descriptors or memory */
    self->poller_cap = 16;
    self->poller = cohort_calloc(self->poller_cap, sizeof *self->poller);
    self->ready = cohort_calloc(self->poller_cap, sizeof *self->ready);
    return self;
}

void node_loop_destroy(node_loop_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    node_loop_t *self = *self_p;
    zmq_timers_destroy(&self->timers);
    for (size_t i = 0; i < self->timer_count; i++)
        free(self->timer[i]);
    free(self->timer);
    free(self->poller);
    free(self->ready);
    close(self->epfd);
    free(self);
    *self_p = NULL;
}

int node_loop_poller(node_loop_t *self, int fd, node_poll_fn *fn, void *arg)
{
    assert(self && fd >= 0 && fn);
    for (size_t i = 0; i < self->poller_count; i++)
        if (self->poller[i].fd == fd)
            return -1;
    if (self->poller_count == self->poller_cap) {
        self->poller_cap = self->poller_cap ? self->poller_cap * 2 : 16;
        self->poller = cohort_realloc(self->poller, self->poller_cap * sizeof *self->poller);
        self->ready = cohort_realloc(self->ready, self->poller_cap * sizeof *self->ready);
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
    if (epoll_ctl(self->epfd, EPOLL_CTL_ADD, fd, &ev) != 0)
        return -1;
    self->poller[self->poller_count] = (s_poller_t){.fd = fd, .fn = fn, .arg = arg};
    self->poller_count++;
    self->changes++;
    return 0;
}

void node_loop_poller_end(node_loop_t *self, int fd)
{
    for (size_t i = 0; i < self->poller_count; i++)
        if (self->poller[i].fd == fd) {
            size_t rest = self->poller_count - i - 1;
            memmove(&self->poller[i], &self->poller[i + 1], rest * sizeof *self->poller);
            /* fails only if fd is already closed, which removed it */
            (void)epoll_ctl(self->epfd, EPOLL_CTL_DEL, fd, NULL);
            self->poller_count--;
            self->changes++;
            return;
        }
}

static void s_timer_remove(node_loop_t *self, int id)
{
    for (size_t i = 0; i < self->timer_count; i++)
        if (self->timer[i]->id == id) {
            zmq_timers_cancel(self->timers, id);
            free(self->timer[i]);
            self->timer[i] = self->timer[--self->timer_count];
            return;
        }
}

/* zmq_timers' handler: runs ours, and ends a timer on its last run
 * before calling it (the handler may arm the next one; and zmq_timers
 * puts a timer back at now + its interval after every run, so a 0 ms
 * timer not ended here would run again at once, forever). After a handler
 * asked the loop to stop, the other timers due in the same pass are not
 * called (as zloop's would not be), but their runs count. */
static void s_fire(int id, void *arg)
{
    s_timer_t *t = arg;
    node_loop_t *self = t->loop;
    node_timer_fn *fn = t->fn;
    void *fn_arg = t->arg;
    if (t->times && --t->times == 0)
        s_timer_remove(self, id); /* frees t */
    if (self->rc != -1 && fn(self, id, fn_arg) == -1)
        self->rc = -1;
}

int node_loop_timer(node_loop_t *self, size_t delay, size_t times, node_timer_fn *fn, void *arg)
{
    assert(self && fn && (delay > 0 || times == 1)); /* see s_fire */
    s_timer_t *t = cohort_malloc(sizeof *t);
    *t = (s_timer_t){.loop = self, .fn = fn, .arg = arg, .times = times};
    t->id = zmq_timers_add(self->timers, delay, s_fire, t);
    assert(t->id > 0);
    if (self->timer_count == self->timer_cap) {
        self->timer_cap = self->timer_cap ? self->timer_cap * 2 : 16;
        self->timer = cohort_realloc(self->timer, self->timer_cap * sizeof *self->timer);
    }
    self->timer[self->timer_count++] = t;
    return t->id;
}

void node_loop_timer_end(node_loop_t *self, int id)
{
    s_timer_remove(self, id);
}

void node_loop_before_wait(node_loop_t *self, int (*fn)(void *arg), void *arg)
{
    self->before_wait = fn;
    self->before_arg = arg;
}

int node_loop_run(node_loop_t *self, int timeout_ms, const bool *stop, bool return_on_signal)
{
    int64_t deadline = timeout_ms >= 0 ? zclock_mono() + timeout_ms : -1;
    self->rc = 0;
    for (;;) {
        if (self->before_wait && self->before_wait(self->before_arg) == -1)
            return -1;
        long wait = zmq_timers_timeout(self->timers);
        int64_t now = zclock_mono();
        int64_t due = wait >= 0 ? now + wait : -1; /* the first timer's */
        if (deadline >= 0) {
            int64_t left = deadline - now;
            if (left < 0)
                left = 0;
            if (wait < 0 || wait > left)
                wait = (long)left;
        }
        if (stop && *stop)
            wait = 0; /* a pass for what is pending, then back */
        int n = epoll_wait(self->epfd, self->ready, (int)self->poller_cap, (int)wait);
        if (n < 0 && errno == EINTR && return_on_signal)
            return 2;
        uint64_t changes = self->changes;
        /* timers only when one is due (or the wait timed out): a wakeup
         * for a descriptor need not walk them (zmq_timers' own clock lags
         * ours by up to a millisecond; the next turn catches up) */
        now = zclock_mono();
        if (n <= 0 || (due >= 0 && now >= due))
            zmq_timers_execute(self->timers);
        /* A poller that a timer or a handler ended is not called: its entry
         * is gone. Whatever else was ready stays ready (level-triggered) for
         * the next wait. */
        for (int i = 0; i < n && self->rc != -1 && self->changes == changes; i++) {
            s_poller_t *found = NULL;
            for (size_t k = 0; k < self->poller_count && !found; k++)
                if (self->poller[k].fd == self->ready[i].data.fd)
                    found = &self->poller[k];
            if (!found)
                continue;
            s_poller_t p = *found;
            zmq_pollitem_t item = {NULL, p.fd, ZMQ_POLLIN, (short)ZMQ_POLLIN};
            if (p.fn(self, &item, p.arg) == -1)
                self->rc = -1;
        }
        if (self->rc == -1)
            return -1;
        if (stop && *stop)
            return 1;
        if (deadline >= 0 && zclock_mono() >= deadline)
            return 0;
    }
}
