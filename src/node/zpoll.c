/*  The node's ZeroMQ sockets in its loop, watched through their ZMQ_FD.
 *
 *  zloop, given a ZeroMQ socket, polls it with zmq_poll, which asks every
 *  socket for ZMQ_EVENTS after every wakeup, twice when it had to wait:
 *  each ask is a poll() system call on that socket's mailbox, so a wakeup
 *  cost 2 + 2 x (4 + 2 x peers) system calls whatever woke it (callgrind
 *  and strace on the request/reply bench: 96 poll() per round trip).
 *
 *  Here the loop (loop.c) polls only each socket's ZMQ_FD, a plain descriptor that
 *  becomes readable when the socket's state may have changed; the socket
 *  is then asked for ZMQ_EVENTS once, and its handler runs if it is ready.
 *  The descriptor is edge-triggered (zmq_getsockopt(3), ZMQ_FD): any send
 *  or receive on the socket may take the signal with it. So a socket is
 *  asked again ("dirty") after its handler ran and after the node sent on
 *  it (node_touched, by links.c, inbox.c and the answers to the front),
 *  until it says it is not ready; and every tick asks all of them (a
 *  missed edge costs at most one tick, and is counted).
 *
 *  A reader (node_add_reader: the ROUTER, the dealers) is not asked: its
 *  handler is called and its own receive is the ask. When that receive
 *  finds the socket empty (EAGAIN), libzmq has just processed every command
 *  in the socket's mailbox, so the next change fires the descriptor: the
 *  handler says so (node_drained) and the socket is not asked again, unless
 *  the node sent on it since. A wakeup then costs the receives alone.
 *
 *  When an application thread runs the node waiting for a message and a
 *  reader hands it one (front_handed), the reader stops there and the
 *  settle asks nothing more: the rest (reading the socket empty, the acks
 *  due) is left dirty (zsock_deferred) and done after the thread's next
 *  send (the settle that ends node_exec) or before the loop next waits
 *  (node_zsocks_before_wait), whichever thread runs it. A request's reply
 *  and a served request thus reach the application one receive and one
 *  mailbox poll sooner, and that work moves behind the next send, off the
 *  round trip.
 */

#include "node/node_impl.h"
#include "util/mem.h"

#include <poll.h>

struct node_zsock {
    void *sock;
    node_poll_fn *fn;
    void *arg;
    int fd;
    short events; /* ZMQ_POLLIN and/or ZMQ_POLLOUT */
    bool dirty;   /* used since its state was read: ask again */
    bool reader;  /* node_add_reader: its handler's receive is the ask */
    bool drained; /* its handler's last receive found it empty */
};

/* Rounds of a settle before the rest waits for the next loop turn: a
 * handler that stopped at its budget (S_TURN_MS) must let timers and the
 * other sockets have theirs. */
#define S_SETTLE_ROUNDS 4

static node_zsock_t *s_find(node_t *self, void *sock, size_t *at)
{
    for (size_t i = 0; i < self->zsock_count; i++)
        if (self->zsocks[i]->sock == sock) {
            if (at)
                *at = i;
            return self->zsocks[i];
        }
    return NULL;
}

static int s_on_kick(node_loop_t *loop, int timer_id, void *arg);

/* Asks every dirty socket for its events and runs the handler of each
 * ready one, round after round while handlers leave sockets dirty; what is
 * still dirty after S_SETTLE_ROUNDS goes to the next loop turn. */
static int s_settle(node_t *self)
{
    int rc = 0;
    self->zsock_deferred = false;
    self->zsock_settling = true;
    for (int round = 0; round < S_SETTLE_ROUNDS && rc == 0; round++) {
        bool any = false;
        for (size_t i = 0; i < self->zsock_count && rc == 0; i++) {
            node_zsock_t *z = self->zsocks[i];
            if (!z->dirty)
                continue;
            if (self->front_handed)
                break; /* the front has its message: the rest after its send */
            z->dirty = false;
            any = true;
            short ready = ZMQ_POLLIN;
            if (!z->reader) {
                uint32_t events = 0;
                size_t size = sizeof events;
                if (zmq_getsockopt(z->sock, ZMQ_EVENTS, &events, &size) != 0)
                    continue;
                ready = (short)(events & (uint32_t)z->events);
                if (!ready)
                    continue;
            }
            zmq_pollitem_t item = {z->sock, 0, z->events, ready};
            z->drained = false;
            uint64_t changes = self->zsock_changes;
            void *sock = z->sock;
            rc = z->fn(self->loop, &item, z->arg);
            if (self->zsock_changes != changes) {
                /* the set changed under us (z may be gone): rescan */
                node_zsock_t *still = s_find(self, sock, NULL);
                if (still)
                    still->dirty = true;
                break;
            }
            if (!z->drained)
                z->dirty = true; /* it was used: ask again */
        }
        if (self->front_handed) {
            self->zsock_deferred = true;
            self->zsock_settling = false;
            return rc;
        }
        if (!any)
            break;
    }
    self->zsock_settling = false;
    if (rc == 0 && !self->zsock_kick && self->loop)
        for (size_t i = 0; i < self->zsock_count; i++)
            if (self->zsocks[i]->dirty) {
                self->zsock_kick = node_loop_timer(self->loop, 0, 1, s_on_kick, self);
                break;
            }
    return rc;
}

static int s_on_kick(node_loop_t *loop, int timer_id, void *arg)
{
    (void)loop;
    (void)timer_id;
    node_t *self = arg;
    self->zsock_kick = 0;
    return s_settle(self);
}

/* A descriptor fired. Found by descriptor: a socket's entry may be gone
 * by the time its descriptor is looked at (a handler earlier in the same
 * pass unwatched it). */
static int s_on_fd(node_loop_t *loop, zmq_pollitem_t *item, void *arg)
{
    (void)loop;
    node_t *self = arg;
    for (size_t i = 0; i < self->zsock_count; i++)
        if (self->zsocks[i]->fd == item->fd) {
            self->zsocks[i]->dirty = true;
            return s_settle(self);
        }
    return 0;
}

int node_watch_socket(node_t *self, void *sock, short events, node_poll_fn *fn, void *arg)
{
    assert(self && self->loop && sock && fn);
    if (s_find(self, sock, NULL))
        return 0;
    int fd = -1;
    size_t size = sizeof fd;
    if (zmq_getsockopt(sock, ZMQ_FD, &fd, &size) != 0)
        return -1;
    if (self->zsock_count == self->zsock_cap) {
        self->zsock_cap = self->zsock_cap ? self->zsock_cap * 2 : 16;
        self->zsocks = cohort_realloc(self->zsocks, self->zsock_cap * sizeof *self->zsocks);
    }
    node_zsock_t *z = cohort_malloc(sizeof *z);
    *z = (node_zsock_t){.sock = sock, .fn = fn, .arg = arg, .fd = fd, .events = events};
    if (node_loop_poller(self->loop, fd, s_on_fd, self) != 0) {
        free(z);
        return -1;
    }
    self->zsocks[self->zsock_count++] = z;
    self->zsock_changes++;
    node_touched(self, sock); /* it may be ready already: no edge will say so */
    return 0;
}

int node_add_socket(node_t *self, void *sock, node_poll_fn *fn)
{
    return node_watch_socket(self, sock, ZMQ_POLLIN, fn, self);
}

int node_add_reader(node_t *self, void *sock, node_poll_fn *fn)
{
    if (node_watch_socket(self, sock, ZMQ_POLLIN, fn, self) != 0)
        return -1;
    node_zsock_t *z = s_find(self, sock, NULL);
    if (z)
        z->reader = true;
    return 0;
}

/* A receive on sock in its handler returned EAGAIN: in that call libzmq
 * processed every command in the socket's mailbox and found no message,
 * so its descriptor is reset and the next command sets it. A send on it
 * after this (node_touched) makes it dirty again. */
void node_drained(node_t *self, void *sock)
{
    node_zsock_t *z = s_find(self, sock, NULL);
    if (z && !z->dirty)
        z->drained = true;
}

void node_unwatch_socket(node_t *self, void *sock)
{
    size_t at = 0;
    node_zsock_t *z = sock && self->loop ? s_find(self, sock, &at) : NULL;
    if (!z)
        return;
    node_loop_poller_end(self->loop, z->fd);
    memmove(&self->zsocks[at], &self->zsocks[at + 1],
            (self->zsock_count - at - 1) * sizeof *self->zsocks);
    self->zsock_count--;
    self->zsock_changes++;
    free(z);
}

void node_touched(node_t *self, void *sock)
{
    if ((self->pipe && sock == zsock_resolve(self->pipe)) ||
        (self->inbox && sock == zsock_resolve(self->inbox)))
        self->front_news = true;
    node_zsock_t *z = s_find(self, sock, NULL);
    if (!z || z->dirty)
        return;
    z->dirty = true;
    /* in a settle, its next round asks; anywhere else (a timer), the next
     * loop turn does */
    if (!self->zsock_settling && !self->zsock_kick && self->loop)
        self->zsock_kick = node_loop_timer(self->loop, 0, 1, s_on_kick, self);
}

int node_zsocks_settle(node_t *self)
{
    return s_settle(self);
}

int node_zsocks_before_wait(void *node)
{
    node_t *self = node;
    return self->zsock_deferred ? s_settle(self) : 0;
}

int node_zsocks_sweep(node_t *self)
{
    for (size_t i = 0; i < self->zsock_count; i++) {
        node_zsock_t *z = self->zsocks[i];
        struct pollfd pfd = {.fd = z->fd, .events = POLLIN};
        if (z->dirty || poll(&pfd, 1, 0) != 0)
            continue; /* its wakeup is on the way */
        uint32_t events = 0;
        size_t size = sizeof events;
        if (zmq_getsockopt(z->sock, ZMQ_EVENTS, &events, &size) == 0 &&
            (events & (uint32_t)z->events)) {
            self->counters.missed_wakeups++;
            z->dirty = true;
        }
    }
    return s_settle(self);
}

void node_zsocks_free(node_t *self)
{
    for (size_t i = 0; i < self->zsock_count; i++)
        free(self->zsocks[i]);
    free(self->zsocks);
    self->zsocks = NULL;
    self->zsock_count = self->zsock_cap = 0;
}
