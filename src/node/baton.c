/*  The baton: which thread runs the node (node.h).
 *
 *  A round trip through an actor costs two thread wakeups more per side
 *  than raw ZeroMQ (application -> actor -> I/O thread, and back), and on
 *  a virtual machine a wakeup across CPUs costs more than everything the
 *  node does for a message. So an application thread that is going to
 *  wait anyway (cohort_request, cohort_recv with a timeout) runs the
 *  node's loop itself while it waits: its request leaves from its own
 *  thread and the reply wakes it directly, as with a raw socket.
 *
 *  One holder at a time runs the loop; holding the baton is holding all
 *  of the node's state, and handing it over goes through the mutex (the
 *  full memory barrier ZeroMQ asks for when a socket changes threads).
 *    ACTOR  the actor's thread runs the loop. A front that wants it sends
 *           YIELD on the pipe and waits; the actor hands it over directly.
 *    FRONT  an application thread runs it, inside a libcohort call.
 *    IDLE   nobody: the front left a call. It takes the baton back at no
 *           cost if it comes back within S_GRACE_MS (the next request of
 *           a loop); otherwise the actor takes it (checking at least every
 *           S_CHECK_MS), so a node is never left unattended for long.
 *    DONE   the node stopped.
 *
 *  The actor checks a FRONT every S_CHECK_MS so that a call that returns
 *  needs no wakeup of it (a request/reply loop gives and takes the baton
 *  on every round trip). But a call that waits long (cohort_recv(-1) on a
 *  quiet node) would have it wake 200 times a second for nothing: after
 *  S_PARK_AFTER_MS of one FRONT the actor parks, sleeping until the front
 *  gives the baton back, and that one give wakes it.
 */

#include "node/node_impl.h"
#include "util/mem.h"

#include <errno.h>
#include <pthread.h>
#include <time.h>

#define S_GRACE_MS 2
#define S_CHECK_MS 5
#define S_PARK_AFTER_MS 100

enum { S_ACTOR, S_FRONT, S_IDLE, S_DONE };

struct cohort_node_baton {
    pthread_mutex_t mu;
    pthread_cond_t cond; /* on CLOCK_MONOTONIC */
    int holder;
    bool want;      /* the front asked the actor to yield */
    bool hand_back; /* the front asked the actor to take an idle node now */
    int64_t idle_since;
    int64_t front_since; /* when the current FRONT began */
    bool parked;         /* the actor sleeps until the front gives */
    node_t *node;        /* while the actor lives */
};

static int64_t s_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

cohort_node_baton_t *cohort_node_baton_new(void)
{
    cohort_node_baton_t *self = cohort_calloc(1, sizeof *self);
    pthread_mutex_init(&self->mu, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&self->cond, &attr);
    pthread_condattr_destroy(&attr);
    self->holder = S_ACTOR;
    return self;
}

void cohort_node_baton_destroy(cohort_node_baton_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    cohort_node_baton_t *self = *self_p;
    pthread_cond_destroy(&self->cond);
    pthread_mutex_destroy(&self->mu);
    free(self);
    *self_p = NULL;
}

static void s_wait_until(cohort_node_baton_t *self, int64_t at_ms)
{
    struct timespec ts = {.tv_sec = at_ms / 1000, .tv_nsec = (at_ms % 1000) * 1000000};
    pthread_cond_timedwait(&self->cond, &self->mu, &ts);
}

void node_baton_actor(node_t *node, cohort_node_baton_t *self)
{
    if (!self) {
        while (node_loop_run(node->loop, -1, NULL, false) != -1)
            ;
        return;
    }
    pthread_mutex_lock(&self->mu);
    self->node = node;
    for (;;) {
        for (;;) {
            int64_t now = s_now();
            if (self->holder == S_FRONT && now - self->front_since >= S_PARK_AFTER_MS) {
                self->parked = true;
                pthread_cond_wait(&self->cond, &self->mu);
                self->parked = false;
            } else if (self->holder == S_FRONT) {
                s_wait_until(self, now + S_CHECK_MS);
            } else if (self->holder == S_IDLE && !self->hand_back &&
                       now < self->idle_since + S_GRACE_MS) {
                s_wait_until(self, self->idle_since + S_GRACE_MS);
            } else {
                break;
            }
        }
        if (self->holder == S_DONE)
            break; /* the front's run ended the node */
        self->holder = S_ACTOR;
        self->hand_back = false;
        pthread_mutex_unlock(&self->mu);
        node->yield = false;
        int rc = node_loop_run(node->loop, -1, &node->yield, false);
        pthread_mutex_lock(&self->mu);
        if (rc == -1)
            break;
        /* asked to yield: straight to the front that waits */
        node->counters.actor_yields++;
        self->holder = self->want ? S_FRONT : S_IDLE;
        self->idle_since = self->front_since = s_now();
        self->want = false;
        pthread_cond_broadcast(&self->cond);
    }
    self->holder = S_DONE;
    self->node = NULL;
    pthread_cond_broadcast(&self->cond);
    pthread_mutex_unlock(&self->mu);
}

int cohort_node_take(cohort_node_baton_t *self, void *front_pipe, bool from_actor)
{
    pthread_mutex_lock(&self->mu);
    int rc = COHORT_NODE_HELD;
    if (self->holder == S_ACTOR && from_actor) {
        bool ask = !self->want;
        self->want = true;
        if (ask) {
            /* not under the mutex: a full pipe waits for the actor to read */
            pthread_mutex_unlock(&self->mu);
            zstr_send(front_pipe, "YIELD");
            pthread_mutex_lock(&self->mu);
        }
        while (self->holder == S_ACTOR)
            pthread_cond_wait(&self->cond, &self->mu);
    }
    if (self->holder == S_IDLE) {
        self->holder = S_FRONT;
        self->front_since = s_now();
        self->hand_back = false; /* what it was for is ours to run now */
    }
    if (self->holder == S_DONE)
        rc = COHORT_NODE_LEAD_STOPPED;
    else if (self->holder == S_ACTOR)
        rc = COHORT_NODE_LEAD_ACTOR;
    else
        self->node->counters.caller_runs++; /* ours now */
    pthread_mutex_unlock(&self->mu);
    return rc;
}

static void s_release(cohort_node_baton_t *self, bool stopped)
{
    pthread_mutex_lock(&self->mu);
    if (stopped) {
        /* the actor ends it (node.c cohort_node_actor) */
        self->holder = S_DONE;
        pthread_cond_broadcast(&self->cond);
    } else {
        self->holder = S_IDLE;
        self->idle_since = s_now();
        if (self->parked) /* only after a long call: not on every round trip */
            pthread_cond_broadcast(&self->cond);
    }
    pthread_mutex_unlock(&self->mu);
}

void cohort_node_give(cohort_node_baton_t *self)
{
    s_release(self, false);
}

void cohort_node_exec(cohort_node_baton_t *self, zmq_msg_t *cmd, bool pipe_first)
{
    node_exec(self->node, cmd, pipe_first);
}

void cohort_node_call(cohort_node_baton_t *self, uint64_t id, const char *service,
                      Cohort__Wire__Message *msg, long timeout_ms, bool pipe_first)
{
    node_exec_call(self->node, id, service, msg, timeout_ms, pipe_first);
}

int cohort_node_run(cohort_node_baton_t *self, int timeout_ms, cohort_node_slot_t *slot)
{
    node_t *node = self->node;
    node->front_news = false;
    node->front_handed = false;
    node->front_slot = slot && node_inbox_empty(node) ? slot : NULL;
    int rc = node_loop_run(node->loop, timeout_ms, &node->front_news, true);
    node->front_slot = NULL;
    node->front_handed = false;
    if (rc == -1) {
        s_release(self, true);
        return COHORT_NODE_LEAD_STOPPED;
    }
    return rc == 1   ? COHORT_NODE_LEAD_NEWS
           : rc == 2 ? COHORT_NODE_LEAD_SIGNAL
                     : COHORT_NODE_LEAD_TIMEOUT;
}

int cohort_node_lead(cohort_node_baton_t *self, int timeout_ms)
{
    int rc = cohort_node_take(self, NULL, false);
    if (rc != COHORT_NODE_HELD)
        return rc;
    rc = cohort_node_run(self, timeout_ms, NULL);
    if (rc != COHORT_NODE_LEAD_STOPPED)
        cohort_node_give(self);
    return rc;
}

void cohort_node_hand_back(cohort_node_baton_t *self)
{
    pthread_mutex_lock(&self->mu);
    if (self->holder == S_IDLE) {
        self->hand_back = true;
        pthread_cond_broadcast(&self->cond);
    }
    pthread_mutex_unlock(&self->mu);
}
