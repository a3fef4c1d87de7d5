/*
 * fuzz_api: the local API's request decoder and the checks the API server
 * (src/api/server.c) makes before it hands a request to the node.
 *
 * The server's per-operation code needs a running node, so this harness
 * repeats its checks on the pure functions they call, in its order:
 * cohort__api__api_request__unpack; then per op the subject, pattern and
 * service validation (msg/subject.h), the node name and timeout checks, the
 * conversion of a wire Message with its headers into a cohort_msg_t
 * (s_msg_from_wire), the reply key, and for RosterPush the acceptance path
 * the node runs on the pushed bytes (cohort_roster_accept against the
 * fixture CA, fixture.h). The same bytes are also decoded as an ApiMessage,
 * what the API client (src/api/client.c) reads from its node.
 *
 * Invariants checked beyond "no crash": a decoded request encodes to bytes
 * that decode and encode again to the same bytes (but see pbquirk.h); a
 * valid service or topic is a valid pattern that matches itself; `>`
 * matches every valid subject and `*` every one-token subject; a pattern
 * without wildcards matches itself.
 */
#include "api.pb-c.h"
#include "cohort.h"
#include "fixture.h"
#include "msg/subject.h"
#include "pbquirk.h"
#include "roster/roster.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void s_check_subject(const char *subject)
{
    if (!cohort_subject_valid(subject))
        return;
    if (!cohort_pattern_valid(subject) || !cohort_pattern_match(subject, subject) ||
        !cohort_pattern_match(">", subject))
        abort();
    if (cohort_pattern_match("*", subject) != (strchr(subject, '.') == NULL))
        abort();
}

static void s_check_pattern(const char *pattern, const char *against)
{
    if (!cohort_pattern_valid(pattern))
        return;
    if (cohort_subject_valid(against))
        cohort_pattern_match(pattern, against);
    /* A pattern without wildcards matches exactly itself. */
    if (cohort_subject_valid(pattern) && !cohort_pattern_match(pattern, pattern))
        abort();
}

/* As the server's s_msg_from_wire, then what the node reads back. */
static void s_message(const Cohort__Wire__Message *m, bool reply)
{
    cohort_msg_t *msg = m ? cohort_msg_new(m->subject, m->payload.data, m->payload.len)
                          : cohort_msg_new("", NULL, 0);
    if (m) {
        for (size_t i = 0; i < m->n_headers; i++)
            if (m->headers[i] && m->headers[i]->key && m->headers[i]->value)
                cohort_msg_set_header(msg, m->headers[i]->key, m->headers[i]->value);
        if (reply)
            cohort_msg_set_status(msg, (cohort_status_t)m->status, m->error);
    }
    const char *subject = cohort_msg_subject(msg);
    if (!subject || (m && m->subject && strcmp(subject, m->subject) != 0))
        abort();
    s_check_subject(subject);
    size_t len = 0;
    cohort_msg_payload(msg, &len);
    if (m && len != m->payload.len)
        abort();
    cohort_msg_destroy(&msg);
}

static void s_roster_push(const Cohort__Api__RosterPush *op)
{
    cohort_roster_t *r = NULL;
    cohort_problems_t warnings = {0};
    cohort_roster_verdict_t verdict = COHORT_ROSTER_ACCEPTED;
    cohort_err_t err;
    cohort_err_clear(&err);
    int rc = cohort_roster_accept("pushed roster", (const char *)op->roster.data, op->roster.len,
                                  "pushed roster signature", (const char *)op->signature.data,
                                  op->signature.len, cohort_fuzz_trust(), COHORT_FUZZ_NOW, &r,
                                  &warnings, &verdict, &err);
    if ((rc == 0) != (verdict == COHORT_ROSTER_ACCEPTED) || (rc == 0) != (r != NULL))
        abort();
    if (rc < 0 && !cohort_err_text(&err)[0])
        abort(); /* a refusal always says why */
    cohort_problems_fini(&warnings);
    cohort_roster_destroy(&r);
}

static void s_request(const Cohort__Api__ApiRequest *req)
{
    switch (req->op_case) {
    case COHORT__API__API_REQUEST__OP_SEND:
        if (req->send->node && req->send->node[0])
            cohort_cert_name_valid(req->send->node);
        s_message(req->send->message, false);
        break;
    case COHORT__API__API_REQUEST__OP_PUBLISH:
        s_message(req->publish->message, false);
        break;
    case COHORT__API__API_REQUEST__OP_SUBSCRIBE:
    case COHORT__API__API_REQUEST__OP_UNSUBSCRIBE: {
        const Cohort__Api__Subscribe *op = req->op_case == COHORT__API__API_REQUEST__OP_SUBSCRIBE
                                               ? req->subscribe
                                               : req->unsubscribe;
        s_check_pattern(op->pattern ? op->pattern : "", "orders.eu.new");
        break;
    }
    case COHORT__API__API_REQUEST__OP_SERVE:
    case COHORT__API__API_REQUEST__OP_UNSERVE: {
        const Cohort__Api__Serve *op =
            req->op_case == COHORT__API__API_REQUEST__OP_SERVE ? req->serve : req->unserve;
        s_check_subject(op->service ? op->service : "");
        break;
    }
    case COHORT__API__API_REQUEST__OP_CALL: {
        const char *service = req->call->service ? req->call->service : "";
        s_check_subject(service);
        int timeout = req->call->timeout_ms && req->call->timeout_ms <= INT32_MAX
                          ? (int)req->call->timeout_ms
                          : 5000;
        if (timeout <= 0)
            abort();
        s_message(req->call->message, false);
        break;
    }
    case COHORT__API__API_REQUEST__OP_REPLY: {
        char key[COHORT_SUBJECT_MAX + 64];
        snprintf(key, sizeof key, "%.200s/%" PRIu64, req->reply->node ? req->reply->node : "",
                 req->reply->request_id);
        s_message(req->reply->message, true);
        break;
    }
    case COHORT__API__API_REQUEST__OP_ROSTER_PUSH:
        s_roster_push(req->roster_push);
        break;
    default:
        break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    Cohort__Api__ApiRequest *req = cohort__api__api_request__unpack(NULL, size, data);
    if (req) {
        s_request(req);
        size_t alen = cohort__api__api_request__get_packed_size(req);
        uint8_t *a = malloc(alen + 1), *b = NULL;
        if (!a)
            abort();
        cohort__api__api_request__pack(req, a);
        Cohort__Api__ApiRequest *again = cohort__api__api_request__unpack(NULL, alen, a);
        if (!again) {
            if (!cohort_fuzz_pb_has_field0(&req->base))
                abort();
            free(a);
            cohort__api__api_request__free_unpacked(req, NULL);
            goto message;
        }
        size_t blen = cohort__api__api_request__get_packed_size(again);
        b = malloc(blen + 1);
        if (!b)
            abort();
        cohort__api__api_request__pack(again, b);
        if (alen != blen || memcmp(a, b, alen) != 0)
            abort();
        free(a);
        free(b);
        cohort__api__api_request__free_unpacked(again, NULL);
        cohort__api__api_request__free_unpacked(req, NULL);
    }
message:;
    Cohort__Api__ApiMessage *msg = cohort__api__api_message__unpack(NULL, size, data);
    if (msg) {
        if (msg->kind_case == COHORT__API__API_MESSAGE__KIND_DELIVERY)
            s_message(msg->delivery->message, true);
        cohort__api__api_message__free_unpacked(msg, NULL);
    }
    return 0;
}
