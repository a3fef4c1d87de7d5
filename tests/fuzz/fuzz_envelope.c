/*
 * fuzz_envelope: the overlay envelope decoder, and what a node does with the
 * parts of a decoded envelope that it parses or acts on separately, all
 * without sockets:
 *
 * - cohort_wire_decode under a size limit (an input over the limit must be
 *   refused before decoding);
 * - MemberUpdates merged into a SWIM instance with a few members, and
 *   PingReq / PingReqAck / Pong / Goodbye bodies fed to it as members.c
 *   does, then its timers run and its piggyback read back;
 * - Data: stream and seq through a receiving session, the body decoded as a
 *   cohort.wire.Message, its subject and interest sets validated and matched
 *   as the node and libcohort do, its headers copied into a cohort_msg_t;
 * - Ack: stream and upto against a session with messages in flight;
 * - RosterData: the bytes through cohort_roster_accept against the fixture
 *   CA (fixture.h), as roster_sync does with a roster a peer offers;
 * - endpoints of Hello, PunchGo and Observed through the endpoint checks.
 * Relay.sealed is fuzz_seal's; what opens from it is an Envelope again,
 * decoded by the same cohort_wire_decode.
 *
 * Invariants checked beyond "no crash": an accepted envelope has version 1
 * and a body or updates, and encodes to bytes that decode and encode again
 * to the same bytes (but see pbquirk.h), as does a Data body the node
 * re-encodes for libcohort; SWIM callbacks only ever name valid members, and what
 * it hands out to piggyback is valid on the wire; a subject valid as a
 * subject is a valid pattern that matches itself, and `>` matches it.
 */
#include "cohort.h"
#include "fixture.h"
#include "msg/subject.h"
#include "overlay/peercache.h"
#include "overlay/session.h"
#include "overlay/swim.h"
#include "pbquirk.h"
#include "roster/roster.h"
#include "wire/wire.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* As a node with limits.max_message_size 64 KiB would refuse. */
#define S_MAX (64 * 1024 + 1024)

static const char *const s_members[] = {"n1", "n2", "n3"};
#define S_N_MEMBERS (sizeof s_members / sizeof s_members[0])

/* ---- SWIM ---- */

static void s_check_name(const char *name)
{
    if (!name || !name[0] || strlen(name) >= COHORT_SWIM_NAME_MAX)
        abort();
}

/* Callbacks may only ever be asked to reach members. */
static void s_check_member(const char *name)
{
    s_check_name(name);
    for (size_t i = 0; i < S_N_MEMBERS; i++)
        if (!strcmp(name, s_members[i]))
            return;
    abort();
}

static void s_ping(void *arg, const char *to, uint64_t nonce)
{
    (void)arg;
    (void)nonce;
    s_check_member(to);
}

static void s_ping_req(void *arg, const char *to, const char *target, uint64_t nonce)
{
    (void)arg;
    (void)nonce;
    s_check_member(to);
    s_check_member(target);
}

static void s_ping_req_ack(void *arg, const char *to, const char *target, uint64_t nonce,
                           bool reachable)
{
    (void)arg;
    (void)nonce;
    (void)reachable;
    s_check_member(to);
    if (!target)
        abort();
}

static void s_gossip(void *arg, const char *to)
{
    (void)arg;
    s_check_member(to);
}

static void s_event(void *arg, const cohort_swim_event_t *ev)
{
    (void)arg;
    s_check_name(ev->member);
    if (ev->from == ev->to || !ev->reason || (unsigned)ev->to > COHORT_SWIM_LEFT)
        abort();
}

static uint32_t s_random(void *arg)
{
    uint32_t *state = arg;
    *state = *state * 1103515245u + 12345u;
    return *state >> 8;
}

static void s_check_piggyback(cohort_swim_t *swim, const char *to)
{
    cohort_swim_update_t out[8];
    size_t n = cohort_swim_piggyback(swim, to, 8, out);
    if (n > 8)
        abort();
    for (size_t i = 0; i < n; i++) {
        s_check_name(out[i].node);
        if ((unsigned)out[i].state > COHORT_SWIM_LEFT ||
            out[i].n_endpoints > COHORT_SWIM_MAX_ENDPOINTS ||
            (out[i].state != COHORT_SWIM_ALIVE && out[i].n_endpoints))
            abort();
        for (size_t k = 0; k < out[i].n_endpoints; k++) {
            size_t len = strlen(out[i].endpoints[k]);
            if (len == 0 || len >= COHORT_SWIM_ENDPOINT_MAX)
                abort();
        }
    }
}

static void s_swim(const Cohort__Wire__Envelope *env)
{
    uint32_t seed = 1;
    cohort_swim_ops_t ops = {.ping = s_ping,
                             .ping_req = s_ping_req,
                             .ping_req_ack = s_ping_req_ack,
                             .gossip = s_gossip,
                             .event = s_event,
                             .random = s_random};
    cohort_swim_t *swim = cohort_swim_new("self", 100, NULL, &ops, &seed);
    int64_t now = 1000;
    for (size_t i = 0; i < S_N_MEMBERS; i++)
        if (!cohort_swim_add(swim, s_members[i], now))
            abort();
    cohort_swim_tick(swim, now); /* the first probe is out */
    /* The envelope came from n1, authenticated. */
    const char *from = s_members[0];
    for (size_t i = 0; i < env->n_updates; i++) {
        const Cohort__Wire__MemberUpdate *w = env->updates[i];
        if (!w->node)
            continue;
        /* Not filtered by state as members.c does: swim.h promises to
         * refuse states other than ALIVE..LEFT itself. */
        cohort_swim_update_t u = {.node = w->node,
                                  .state = (cohort_swim_state_t)w->state,
                                  .incarnation = w->incarnation,
                                  .endpoints = (const char *const *)w->endpoints,
                                  .n_endpoints = w->n_endpoints};
        /* Every third one as if from a sender we do not know. */
        cohort_swim_merge_t r = cohort_swim_merge(swim, i % 3 == 2 ? NULL : from, &u, now);
        if ((unsigned)r > COHORT_SWIM_MERGE_INVALID)
            abort();
    }
    cohort_swim_heard(swim, from, now);
    switch (env->body_case) {
    case COHORT__WIRE__ENVELOPE__BODY_PONG:
        cohort_swim_ack(swim, from, env->pong->nonce, now);
        break;
    case COHORT__WIRE__ENVELOPE__BODY_PING_REQ:
        if (env->ping_req->target)
            cohort_swim_ping_req(swim, from, env->ping_req->target, env->ping_req->nonce, now);
        break;
    case COHORT__WIRE__ENVELOPE__BODY_PING_REQ_ACK:
        if (env->ping_req_ack->target)
            cohort_swim_ping_req_ack(swim, from, env->ping_req_ack->target,
                                     env->ping_req_ack->nonce, env->ping_req_ack->reachable, now);
        break;
    case COHORT__WIRE__ENVELOPE__BODY_GOODBYE: {
        cohort_swim_member_t m;
        if (cohort_swim_get(swim, from, &m) && m.state != COHORT_SWIM_UNKNOWN) {
            cohort_swim_update_t u = {
                .node = from, .state = COHORT_SWIM_LEFT, .incarnation = m.incarnation};
            cohort_swim_merge(swim, from, &u, now);
        }
        break;
    }
    default:
        break;
    }
    /* Let every timer the input started run out. */
    for (int step = 0; step < 8; step++) {
        s_check_piggyback(swim, NULL);
        for (size_t i = 0; i < S_N_MEMBERS; i++)
            s_check_piggyback(swim, s_members[i]);
        now += 1500;
        cohort_swim_tick(swim, now);
    }
    if (cohort_swim_size(swim) != S_N_MEMBERS + 1)
        abort();
    for (size_t i = 0; i < cohort_swim_size(swim); i++) {
        cohort_swim_member_t m;
        cohort_swim_member_at(swim, i, &m);
        s_check_name(m.name);
        if ((unsigned)m.state > COHORT_SWIM_UNKNOWN || m.n_endpoints > COHORT_SWIM_MAX_ENDPOINTS)
            abort();
    }
    cohort_swim_destroy(&swim);
}

/* ---- Data and Ack ---- */

static void s_check_subject(const char *subject)
{
    if (!cohort_subject_valid(subject))
        return;
    if (!cohort_pattern_valid(subject) || !cohort_pattern_match(subject, subject) ||
        !cohort_pattern_match(">", subject))
        abort();
}

/* A decoded Message as the node and libcohort's s_decode take it. */
static void s_message(const Cohort__Wire__Message *m)
{
    const char *subject = m->subject ? m->subject : "";
    s_check_subject(subject);
    cohort_msg_t *msg = cohort_msg_new(subject, m->payload.data, m->payload.len);
    cohort_msg_set_status(msg, (cohort_status_t)m->status, m->error);
    for (size_t i = 0; i < m->n_headers; i++)
        if (m->headers[i]->key && m->headers[i]->value)
            cohort_msg_set_header(msg, m->headers[i]->key, m->headers[i]->value);
    if (cohort_msg_header_count(msg) > m->n_headers)
        abort();
    for (size_t i = 0; i < cohort_msg_header_count(msg); i++) {
        const char *value = NULL;
        const char *key = cohort_msg_header_at(msg, i, &value);
        if (cohort_msg_header(msg, key) != value)
            abort(); /* keys are unique: a later header replaces an earlier one */
    }
    cohort_msg_destroy(&msg);
    const Cohort__Wire__Interest *in = m->interest;
    if (m->kind != COHORT__WIRE__MESSAGE__KIND__INTEREST || !in)
        return;
    for (size_t i = 0; i < in->n_services; i++)
        s_check_subject(in->services[i]);
    for (size_t i = 0; i < in->n_patterns; i++) {
        if (!cohort_pattern_valid(in->patterns[i]))
            continue;
        if (cohort_subject_valid(subject))
            cohort_pattern_match(in->patterns[i], subject);
        for (size_t k = 0; k < in->n_services; k++)
            if (cohort_subject_valid(in->services[k]))
                cohort_pattern_match(in->patterns[i], in->services[k]);
    }
}

static void s_data(const Cohort__Wire__Data *d)
{
    if (d->seq != 0) {
        cohort_session_t *rx = cohort_session_new(1, 16, 1 << 16, 100, 1000);
        cohort_session_receive(rx, 1, 1);
        cohort_session_verdict_t v = cohort_session_receive(rx, d->stream, d->seq);
        uint64_t stream = 0, upto = 0;
        cohort_session_ack_state(rx, &stream, &upto);
        if (v == COHORT_SESSION_DELIVER && (stream != d->stream || upto != d->seq))
            abort();
        cohort_session_destroy(&rx);
    }
    Cohort__Wire__Message *m = cohort__wire__message__unpack(NULL, d->body.len, d->body.data);
    if (!m)
        return;
    s_message(m);
    /* The node hands a delivery to libcohort re-encoded (node.c s_deliver);
     * libcohort decodes it again (cohort.c s_decode). */
    size_t len = cohort__wire__message__get_packed_size(m);
    uint8_t *buf = malloc(len + 1);
    if (!buf)
        abort();
    cohort__wire__message__pack(m, buf);
    Cohort__Wire__Message *again = cohort__wire__message__unpack(NULL, len, buf);
    if (!again && !cohort_fuzz_pb_has_field0(&m->base))
        abort();
    if (again && (strcmp(again->subject, m->subject) != 0 || again->payload.len != m->payload.len ||
                  again->n_headers != m->n_headers))
        abort();
    cohort__wire__message__free_unpacked(again, NULL);
    free(buf);
    cohort__wire__message__free_unpacked(m, NULL);
}

static void s_ack(const Cohort__Wire__Ack *a)
{
    cohort_session_t *tx = cohort_session_new(7, 16, 1 << 16, 100, 1000);
    for (int i = 0; i < 3; i++) {
        uint8_t *body = malloc(4);
        uint64_t stream, seq;
        if (!body)
            abort();
        memcpy(body, "body", 4);
        if (cohort_session_send(tx, &body, 4, 0, &stream, &seq) < 0)
            abort();
    }
    if (cohort_session_ack(tx, a->stream, a->upto) > 3)
        abort();
    cohort_session_destroy(&tx);
}

/* ---- RosterData ---- */

static void s_roster(const Cohort__Wire__RosterData *rd)
{
    cohort_roster_t *r = NULL;
    cohort_problems_t warnings = {0};
    cohort_roster_verdict_t verdict = COHORT_ROSTER_ACCEPTED;
    cohort_err_t err;
    cohort_err_clear(&err);
    int rc = cohort_roster_accept("roster from n1", (const char *)rd->roster.data, rd->roster.len,
                                  "roster from n1 signature", (const char *)rd->signature.data,
                                  rd->signature.len, cohort_fuzz_trust(), COHORT_FUZZ_NOW, &r,
                                  &warnings, &verdict, &err);
    if ((rc == 0) != (verdict == COHORT_ROSTER_ACCEPTED) || (rc == 0) != (r != NULL) ||
        (r && !cohort_roster_is_checked(r)))
        abort();
    cohort_problems_fini(&warnings);
    cohort_roster_destroy(&r);
}

static void s_endpoint(const char *endpoint)
{
    if (!endpoint)
        return;
    cohort_endpoint_valid(endpoint);
    cohort_peercache_endpoint_ok(endpoint);
}

/* ---- the envelope ---- */

/* Encoding what was decoded gives bytes that decode, and encode the same. */
static void s_round_trip(Cohort__Wire__Envelope *env)
{
    uint8_t *a = NULL, *b = NULL;
    size_t alen = 0, blen = 0;
    Cohort__Wire__Envelope *again = NULL;
    cohort_err_t err;
    cohort_wire_encode(env, &a, &alen);
    if (cohort_wire_decode(a, alen, SIZE_MAX, &again, &err) < 0) {
        if (!cohort_fuzz_pb_has_field0(&env->base))
            abort();
        free(a);
        return;
    }
    cohort_wire_encode(again, &b, &blen);
    if (alen != blen || memcmp(a, b, alen) != 0)
        abort();
    cohort_wire_free(&again);
    free(a);
    free(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    Cohort__Wire__Envelope *env = NULL;
    cohort_err_t err;
    cohort_err_clear(&err);
    if (size > 0 && cohort_wire_decode(data, size, size - 1, &env, &err) == 0)
        abort(); /* over the limit: refused whatever the bytes */
    if (cohort_wire_decode(data, size, S_MAX, &env, &err) < 0)
        return 0;
    if (env->version != COHORT_WIRE_VERSION ||
        (env->body_case == COHORT__WIRE__ENVELOPE__BODY__NOT_SET && env->n_updates == 0))
        abort();
    s_round_trip(env);
    s_swim(env);
    switch (env->body_case) {
    case COHORT__WIRE__ENVELOPE__BODY_HELLO:
        for (size_t i = 0; i < env->hello->n_endpoints; i++)
            s_endpoint(env->hello->endpoints[i]);
        break;
    case COHORT__WIRE__ENVELOPE__BODY_DATA:
        s_data(env->data);
        break;
    case COHORT__WIRE__ENVELOPE__BODY_ACK:
        s_ack(env->ack);
        break;
    case COHORT__WIRE__ENVELOPE__BODY_ROSTER:
        s_roster(env->roster);
        break;
    case COHORT__WIRE__ENVELOPE__BODY_PUNCH_GO:
        s_endpoint(env->punch_go->endpoint);
        break;
    case COHORT__WIRE__ENVELOPE__BODY_OBSERVED:
        s_endpoint(env->observed->endpoint);
        break;
    default:
        break;
    }
    for (size_t i = 0; i < env->n_updates; i++)
        for (size_t k = 0; k < env->updates[i]->n_endpoints; k++)
            s_endpoint(env->updates[i]->endpoints[k]);
    cohort_wire_free(&env);
    return 0;
}
