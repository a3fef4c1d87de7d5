/*
 * zap: the ZAP handler that admits roster members. See zap.h.
 */
#include "overlay/zap.h"
#include "pki/key.h"

#include <stdio.h>
#include <string.h>
#include <zmq.h>

#define S_MAX_FRAMES 8

void *cohort_zap_bind(void *ctx, cohort_err_t *err)
{
    void *sock = zmq_socket(ctx, ZMQ_REP);
    if (!sock) {
        cohort_err_set(err, "zap: cannot create socket: %s", zmq_strerror(zmq_errno()));
        return NULL;
    }
    int linger = 0;
    zmq_setsockopt(sock, ZMQ_LINGER, &linger, sizeof linger);
    if (zmq_bind(sock, "inproc://zeromq.zap.01") != 0) {
        cohort_err_set(err, "zap: cannot bind the handler: %s", zmq_strerror(zmq_errno()));
        zmq_close(sock);
        return NULL;
    }
    return sock;
}

static void s_reply(void *sock, zmq_msg_t *req_id, const char *code, const char *text,
                    const char *user)
{
    zmq_send(sock, "1.0", 3, ZMQ_SNDMORE);
    zmq_send(sock, zmq_msg_data(req_id), zmq_msg_size(req_id), ZMQ_SNDMORE);
    zmq_send(sock, code, strlen(code), ZMQ_SNDMORE);
    zmq_send(sock, text, strlen(text), ZMQ_SNDMORE);
    zmq_send(sock, user, strlen(user), ZMQ_SNDMORE);
    zmq_send(sock, "", 0, 0);
}

int cohort_zap_handle(void *sock, const cohort_roster_t *roster, time_t now,
                      cohort_zap_stats_t *stats)
{
    zmq_msg_t frames[S_MAX_FRAMES];
    int n = 0, more = 1;
    /* Read the whole request even if it is malformed, so REP stays in step. */
    while (more) {
        zmq_msg_t part;
        zmq_msg_init(&part);
        if (zmq_msg_recv(&part, sock, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&part);
            for (int i = 0; i < n; i++)
                zmq_msg_close(&frames[i]);
            return -1;
        }
        more = zmq_msg_more(&part);
        if (n < S_MAX_FRAMES)
            frames[n++] = part;
        else
            zmq_msg_close(&part);
    }
    /* version, request id, domain, address, routing id, mechanism, key */
    bool ok = n == 7 && zmq_msg_size(&frames[0]) == 3 &&
              !memcmp(zmq_msg_data(&frames[0]), "1.0", 3) && zmq_msg_size(&frames[5]) == 5 &&
              !memcmp(zmq_msg_data(&frames[5]), "CURVE", 5) &&
              zmq_msg_size(&frames[6]) == COHORT_KEY_LEN;
    if (!ok) {
        stats->malformed++;
        zmq_msg_t empty;
        zmq_msg_init(&empty);
        s_reply(sock, n >= 2 ? &frames[1] : &empty, "500", "unsupported request", "");
        zmq_msg_close(&empty);
    } else {
        const uint8_t *key = zmq_msg_data(&frames[6]);
        const cohort_member_t *member = NULL;
        cohort_admit_t verdict = cohort_roster_admit(roster, key, now, &member);
        if (verdict == COHORT_ADMIT_OK) {
            stats->admitted++;
            s_reply(sock, &frames[1], "200", "OK", member->name);
        } else {
            stats->refused++;
            if ((size_t)verdict < sizeof stats->refused_by / sizeof stats->refused_by[0])
                stats->refused_by[verdict]++;
            cohort_key_z85(key, stats->last_refused_key);
            snprintf(stats->last_refused_reason, sizeof stats->last_refused_reason, "%s",
                     cohort_admit_name(verdict));
            s_reply(sock, &frames[1], "400", cohort_admit_name(verdict), "");
        }
    }
    for (int i = 0; i < n; i++)
        zmq_msg_close(&frames[i]);
    return 0;
}
