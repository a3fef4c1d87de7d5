/*
 * zap: admission at the ZeroMQ handshake (RFC 27, ZAP).
 *
 * Every overlay socket uses CURVE with ZAP_DOMAIN "cohort"; libzmq asks the
 * handler bound at inproc://zeromq.zap.01 in the node's own ZeroMQ context
 * whether a client key may complete the handshake. The handler answers from
 * the checked roster: admitted members get status 200 and their member name
 * as User-Id (so every message carries an identity no peer can forge);
 * anything else gets 400 and never reaches node logic. This module decides
 * and counts; it does not own the roster.
 */
#ifndef COHORT_OVERLAY_ZAP_H
#define COHORT_OVERLAY_ZAP_H

#include "roster/roster.h"

#include <stdint.h>
#include <time.h>

#define COHORT_ZAP_DOMAIN "cohort"

typedef struct cohort_zap_stats {
    uint64_t admitted;
    uint64_t refused;          /* all refusals */
    uint64_t refused_by[8];    /* indexed by cohort_admit_t */
    uint64_t malformed;        /* requests that were not ZAP 1.0 CURVE */
    char last_refused_key[41]; /* Z85 of the last refused key, for logs */
    char last_refused_reason[32];
} cohort_zap_stats_t;

/* Binds a REP socket at inproc://zeromq.zap.01 in ctx (a libzmq context).
 * Returns the socket or NULL (err set). One per context. */
void *cohort_zap_bind(void *ctx, cohort_err_t *err);

/* Reads one ZAP request from sock and answers it using roster at time now.
 * Returns 0 if handled (admitted or refused), -1 if nothing could be read.
 * Never blocks when called after the socket polled readable. */
int cohort_zap_handle(void *sock, const cohort_roster_t *roster, time_t now,
                      cohort_zap_stats_t *stats);

#endif
