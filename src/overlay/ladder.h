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

#endif
