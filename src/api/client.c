/*
 * client: the local API client. See client.h.
 *
 * No ZMQ_IMMEDIATE, on purpose: with it, libzmq drops the pipe, and any
 * message received but not yet read, the moment the connection ends, so
 * the node's last word (ApiMessage.closed, sent just before it closes its
 * socket) could vanish. "No node there" therefore shows up as a request
 * nobody answers in time (ipc: or at once, when the socket file is missing).
 */
#include "api/client.h"
#include "util/mem.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include <czmq.h>

#define S_SLICE_MS 100
#define S_BYE_TIMEOUT_MS 1000

struct cohort_api_client {
    zsock_t *sock;
    char *endpoint;
    uint64_t next_id;
    bool stateful;   /* asked the node to hold something: say Bye */
    zlistx_t *queue; /* Cohort__Api__ApiMessage *, received while waiting */
    int64_t last_heard;
    bool closed; /* the node's API said it closed */
    volatile sig_atomic_t *interrupt;
};

static void s_msg_free(void **item)
{
    if (*item)
        cohort__api__api_message__free_unpacked(*item, NULL);
    *item = NULL;
}

static int s_unreachable(const cohort_api_client_t *self, cohort_err_t *err, const char *why)
{
    return cohort_err_set(err, "cannot reach the node at %s: is cohortd running? (%s)",
                          self->endpoint, why);
}

int cohort_api_client_open(const char *endpoint, cohort_api_client_t **out, cohort_err_t *err)
{
    assert(endpoint && out);
    cohort_api_client_t *self = cohort_calloc(1, sizeof *self);
    self->endpoint = cohort_strdup(endpoint);
    self->queue = zlistx_new();
    zlistx_set_destructor(self->queue, s_msg_free);
    self->next_id = (uint64_t)zclock_time() << 16; /* stale answers never match */
    if (!strncmp(endpoint, "ipc://", 6) && endpoint[6] != '@') {
        const char *path = endpoint + 6;
        struct stat st;
        if (stat(path, &st) != 0 && errno != EACCES) {
            char why[300];
            snprintf(why, sizeof why, "%s: %s", path, strerror(errno));
            s_unreachable(self, err, why);
            goto fail;
        }
        /* Connecting to a unix socket needs write permission on it (and
         * search permission on its directories); libzmq would retry a
         * refused connect silently until the caller's timeout. */
        if (faccessat(AT_FDCWD, path, R_OK | W_OK, AT_EACCESS) != 0 && errno == EACCES) {
            cohort_err_set(err,
                           "cannot reach the node at %s: permission denied: its API socket "
                           "admits its owner and group only; run as them or join the group",
                           endpoint);
            goto fail;
        }
    }
    self->sock = zsock_new(ZMQ_DEALER);
    assert(self->sock);
    zsock_set_linger(self->sock, 500);
    if (zsock_connect(self->sock, "%s", endpoint) != 0) {
        cohort_err_set(err, "%s: not a usable endpoint: %s", endpoint, zmq_strerror(zmq_errno()));
        goto fail;
    }
    self->last_heard = zclock_mono();
    *out = self;
    return 0;
fail:
    cohort_api_client_destroy(&self);
    return -1;
}

void cohort_api_client_destroy(cohort_api_client_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    cohort_api_client_t *self = *self_p;
    if (self->sock && self->stateful) {
        Cohort__Api__ApiRequest req = COHORT__API__API_REQUEST__INIT;
        Cohort__Api__Bye bye = COHORT__API__BYE__INIT;
        req.op_case = COHORT__API__API_REQUEST__OP_BYE;
        req.bye = &bye;
        Cohort__Api__Response *resp = NULL;
        self->interrupt = NULL; /* a second Ctrl-C must not skip the goodbye */
        if (cohort_api_client_request(self, &req, S_BYE_TIMEOUT_MS, &resp, NULL) == 0)
            cohort__api__response__free_unpacked(resp, NULL);
    }
    zsock_destroy(&self->sock);
    zlistx_destroy(&self->queue);
    free(self->endpoint);
    free(self);
    *self_p = NULL;
}

void cohort_api_client_set_interrupt(cohort_api_client_t *self, volatile sig_atomic_t *flag)
{
    self->interrupt = flag;
}

static bool s_interrupted(const cohort_api_client_t *self)
{
    return (self->interrupt && *self->interrupt) || self->closed;
}

/* Reads one ApiMessage if one arrives within timeout_ms. */
static Cohort__Api__ApiMessage *s_read(cohort_api_client_t *self, int timeout_ms)
{
    int64_t end = zclock_mono() + timeout_ms;
    void *sock = zsock_resolve(self->sock);
    for (;;) {
        if (s_interrupted(self))
            return NULL;
        int64_t left = end - zclock_mono();
        zmq_pollitem_t item = {sock, 0, ZMQ_POLLIN, 0};
        int wait = left <= 0 ? 0 : left < S_SLICE_MS ? (int)left : S_SLICE_MS;
        if (zmq_poll(&item, 1, wait) > 0) {
            zmq_msg_t m;
            zmq_msg_init(&m);
            if (zmq_msg_recv(&m, sock, ZMQ_DONTWAIT) >= 0) {
                self->last_heard = zclock_mono();
                Cohort__Api__ApiMessage *msg =
                    cohort__api__api_message__unpack(NULL, zmq_msg_size(&m), zmq_msg_data(&m));
                bool more = zmq_msg_more(&m);
                zmq_msg_close(&m);
                while (more) { /* the node sends one frame; anything else is noise */
                    zmq_msg_init(&m);
                    more = zmq_msg_recv(&m, sock, ZMQ_DONTWAIT) >= 0 && zmq_msg_more(&m);
                    zmq_msg_close(&m);
                }
                if (msg && (msg->kind_case == COHORT__API__API_MESSAGE__KIND_HEARTBEAT ||
                            msg->kind_case == COHORT__API__API_MESSAGE__KIND_CLOSED)) {
                    self->closed |= msg->kind_case == COHORT__API__API_MESSAGE__KIND_CLOSED;
                    cohort__api__api_message__free_unpacked(msg, NULL);
                    continue;
                }
                if (msg && msg->kind_case != COHORT__API__API_MESSAGE__KIND__NOT_SET)
                    return msg;
                if (msg)
                    cohort__api__api_message__free_unpacked(msg, NULL);
                continue; /* undecodable or from a newer node: skip */
            }
            zmq_msg_close(&m);
        }
        if (left <= 0)
            return NULL;
    }
}

int cohort_api_client_request(cohort_api_client_t *self, Cohort__Api__ApiRequest *req,
                              int timeout_ms, Cohort__Api__Response **resp, cohort_err_t *err)
{
    assert(self && req && resp);
    *resp = NULL;
    req->id = ++self->next_id;
    switch (req->op_case) {
    case COHORT__API__API_REQUEST__OP_SUBSCRIBE:
    case COHORT__API__API_REQUEST__OP_SERVE:
    case COHORT__API__API_REQUEST__OP_CALL:
    case COHORT__API__API_REQUEST__OP_EVENTS:
        self->stateful = true;
        break;
    default:
        break;
    }
    size_t len = cohort__api__api_request__get_packed_size(req);
    uint8_t *buf = cohort_malloc(len);
    cohort__api__api_request__pack(req, buf);
    int64_t end = zclock_mono() + timeout_ms;
    void *sock = zsock_resolve(self->sock);
    int rc = -1;
    /* Queued until connected; only a full queue makes us wait for room. */
    for (;;) {
        if (zmq_send(sock, buf, len, ZMQ_DONTWAIT) >= 0)
            break;
        /* EINTR: a signal came during the send (cohortctl stream stops on
         * SIGINT between sends): it is not the node's fault; try again
         * unless the caller asked to stop on signals (checked below) */
        if (zmq_errno() != EAGAIN && zmq_errno() != EINTR) {
            s_unreachable(self, err, zmq_strerror(zmq_errno()));
            goto out;
        }
        int64_t left = end - zclock_mono();
        if (left <= 0 || s_interrupted(self)) {
            if (self->closed)
                s_unreachable(self, err, "its API closed");
            else if (s_interrupted(self))
                cohort_err_set(err, "interrupted");
            else
                s_unreachable(self, err, "its queue stayed full");
            goto out;
        }
        zmq_pollitem_t item = {sock, 0, ZMQ_POLLOUT, 0};
        zmq_poll(&item, 1, left < S_SLICE_MS ? (int)left : S_SLICE_MS);
    }
    for (;;) {
        int64_t left = end - zclock_mono();
        Cohort__Api__ApiMessage *msg = s_read(self, left > 0 ? (int)left : 0);
        if (!msg) {
            if (self->closed)
                s_unreachable(self, err, "its API closed");
            else if (s_interrupted(self))
                cohort_err_set(err, "interrupted");
            else {
                char why[64];
                snprintf(why, sizeof why, "no answer within %d ms", timeout_ms);
                s_unreachable(self, err, why);
            }
            goto out;
        }
        if (msg->kind_case == COHORT__API__API_MESSAGE__KIND_RESPONSE) {
            if (msg->response->id == req->id) {
                *resp = msg->response;
                msg->response = NULL; /* keep it; free the envelope only */
                msg->kind_case = COHORT__API__API_MESSAGE__KIND__NOT_SET;
                cohort__api__api_message__free_unpacked(msg, NULL);
                rc = 0;
                goto out;
            }
            cohort__api__api_message__free_unpacked(msg, NULL); /* a stale answer */
            continue;
        }
        zlistx_add_end(self->queue, msg);
    }
out:
    free(buf);
    return rc;
}

int cohort_api_client_recv(cohort_api_client_t *self, int timeout_ms, Cohort__Api__ApiMessage **out)
{
    assert(self && out);
    *out = zlistx_first(self->queue);
    if (*out) {
        zlistx_detach_cur(self->queue);
        return 1;
    }
    int64_t end = zclock_mono() + (timeout_ms > 0 ? timeout_ms : 0);
    for (;;) {
        int64_t left = end - zclock_mono();
        Cohort__Api__ApiMessage *msg = s_read(self, left > 0 ? (int)left : 0);
        if (!msg)
            return 0;
        if (msg->kind_case == COHORT__API__API_MESSAGE__KIND_RESPONSE) {
            cohort__api__api_message__free_unpacked(msg, NULL); /* nobody waits for it */
            continue;
        }
        *out = msg;
        return 1;
    }
}

bool cohort_api_client_closed(const cohort_api_client_t *self)
{
    return self->closed;
}

int64_t cohort_api_client_quiet_ms(const cohort_api_client_t *self)
{
    return zclock_mono() - self->last_heard;
}

const char *cohort_api_client_endpoint(const cohort_api_client_t *self)
{
    return self->endpoint;
}
