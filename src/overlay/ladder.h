/*
 * ladder: which rung carries a peer's traffic, decided from probe results.
 *
 * Rungs, best first: direct, punched, relayed. The node probes every rung it
 * has a path on and reports each answered probe here. The active rung is the
 * best one whose probes are answered; a rung counts as working once it has
 * answered COHORT_LADDER_UP_PROBES probes in a row (hysteresis, so a link
 * that answers once is not switched to and away from), and stops counting
 * when it has answered nothing for probe_timeout (demotion). This module
 * owns no sockets and reads no clock: time comes in as milliseconds.
 *
 * It also schedules upgrade attempts (trying a higher rung while on a lower
 * one): exponential backoff with jitter, started over when the path
 * situation changes. Randomness comes in as a number, so tests can pin it.
 */
#ifndef COHORT_OVERLAY_LADDER_H
#define COHORT_OVERLAY_LADDER_H

#include <stdbool.h>
#include <stdint.h>

#define COHORT_LADDER_UP_PROBES 2

typedef enum {
    COHORT_RUNG_NONE = 0,
    COHORT_RUNG_RELAYED = 1,
    COHORT_RUNG_PUNCHED = 2,
    COHORT_RUNG_DIRECT = 3,
} cohort_rung_t;

#define COHORT_RUNG_COUNT 4

typedef struct cohort_ladder {
    cohort_rung_t active;
    int64_t last_ok[COHORT_RUNG_COUNT]; /* last answered probe, ms; 0 never */
    unsigned streak[COHORT_RUNG_COUNT]; /* answered probes since it last went silent */
    int64_t switched_at;                /* when active last changed */
    uint64_t switches;                  /* how many times active changed */
} cohort_ladder_t;

/* Short stable name: "direct", "punched", "relayed", "none". */
const char *cohort_rung_name(cohort_rung_t rung);

void cohort_ladder_init(cohort_ladder_t *self);
/* A probe sent on rung was answered at time now. */
void cohort_ladder_probe_ok(cohort_ladder_t *self, cohort_rung_t rung, int64_t now);
/* The path of rung is gone (socket closed, relay lost): it stops counting. */
void cohort_ladder_lost(cohort_ladder_t *self, cohort_rung_t rung);
/* True if rung counts as working at time now. */
bool cohort_ladder_working(const cohort_ladder_t *self, cohort_rung_t rung, int64_t now,
                           int64_t probe_timeout);
/* Re-decides the active rung at time now. Returns true if it changed;
 * *from gets the previous one. */
bool cohort_ladder_update(cohort_ladder_t *self, int64_t now, int64_t probe_timeout,
                          cohort_rung_t *from);

/* Upgrade attempts. After each failed attempt the wait doubles, from base up
 * to max; a change of the path situation (a rung lost, the peer back up, a
 * new public address) starts it over and makes the next attempt due. */
typedef struct cohort_ladder_retry {
    unsigned failures; /* attempts made since the last reset */
    int64_t next;      /* next attempt not before, ms */
} cohort_ladder_retry_t;

/* The wait before the next attempt after `failures` attempts that did not
 * succeed: min(base * 2^failures, max), less up to a quarter of it picked by
 * rnd (any value), so that nodes that failed together do not retry
 * together. Never more than max, never less than 3/4 of min(base, max).
 * base and max must be > 0. */
int64_t cohort_ladder_backoff(unsigned failures, int64_t base, int64_t max, uint32_t rnd);
/* The first attempt is due at first. */
void cohort_ladder_retry_init(cohort_ladder_retry_t *self, int64_t first);
/* True if an attempt may start at now. */
bool cohort_ladder_retry_due(const cohort_ladder_retry_t *self, int64_t now);
/* An attempt starts at now: schedules the next one (see
 * cohort_ladder_backoff) and counts this one as failed until a reset says
 * otherwise. Returns the wait chosen, ms. */
int64_t cohort_ladder_retry_attempt(cohort_ladder_retry_t *self, int64_t now, int64_t base,
                                    int64_t max, uint32_t rnd);
/* The path situation changed at now: the waits start over from base and the
 * next attempt is due at now at the latest. */
void cohort_ladder_retry_reset(cohort_ladder_retry_t *self, int64_t now);

#endif
