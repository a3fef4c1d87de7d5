/*
 * ladder: rung choice with hysteresis and demotion. See ladder.h.
 */
#include "overlay/ladder.h"

#include <assert.h>
#include <string.h>

const char *cohort_rung_name(cohort_rung_t rung)
{
    switch (rung) {
    case COHORT_RUNG_DIRECT:
        return "direct";
    case COHORT_RUNG_PUNCHED:
        return "punched";
    case COHORT_RUNG_RELAYED:
        return "relayed";
    case COHORT_RUNG_NONE:
        break;
    }
    return "none";
}

void cohort_ladder_init(cohort_ladder_t *self)
{
    memset(self, 0, sizeof *self);
}

void cohort_ladder_probe_ok(cohort_ladder_t *self, cohort_rung_t rung, int64_t now)
{
    assert(rung > COHORT_RUNG_NONE && rung < COHORT_RUNG_COUNT);
    self->last_ok[rung] = now;
    self->streak[rung]++;
}

void cohort_ladder_lost(cohort_ladder_t *self, cohort_rung_t rung)
{
    assert(rung > COHORT_RUNG_NONE && rung < COHORT_RUNG_COUNT);
    self->last_ok[rung] = 0;
    self->streak[rung] = 0;
}

bool cohort_ladder_working(const cohort_ladder_t *self, cohort_rung_t rung, int64_t now,
                           int64_t probe_timeout)
{
    if (rung <= COHORT_RUNG_NONE || rung >= COHORT_RUNG_COUNT)
        return false;
    return self->last_ok[rung] != 0 && now - self->last_ok[rung] <= probe_timeout &&
           self->streak[rung] >= COHORT_LADDER_UP_PROBES;
}

bool cohort_ladder_update(cohort_ladder_t *self, int64_t now, int64_t probe_timeout,
                          cohort_rung_t *from)
{
    /* A rung silent for probe_timeout must earn its streak again. */
    for (int r = COHORT_RUNG_RELAYED; r < COHORT_RUNG_COUNT; r++)
        if (self->last_ok[r] && now - self->last_ok[r] > probe_timeout)
            self->streak[r] = 0;
    cohort_rung_t best = COHORT_RUNG_NONE;
    for (int r = COHORT_RUNG_DIRECT; r > COHORT_RUNG_NONE; r--)
        if (cohort_ladder_working(self, (cohort_rung_t)r, now, probe_timeout)) {
            best = (cohort_rung_t)r;
            break;
        }
    /* The active rung keeps carrying traffic while it still answers, even
     * before a better one has proven itself (that is the hysteresis). */
    if (best == self->active)
        return false;
    if (from)
        *from = self->active;
    self->active = best;
    self->switched_at = now;
    self->switches++;
    return true;
}

int64_t cohort_ladder_backoff(unsigned failures, int64_t base, int64_t max, uint32_t rnd)
{
    assert(base > 0 && max > 0);
    int64_t wait = base < max ? base : max;
    /* doubling, stopped at max before it can overflow */
    for (unsigned i = 0; i < failures && wait < max; i++)
        wait = wait > max / 2 ? max : wait * 2;
    return wait - (int64_t)(rnd % (uint64_t)(wait / 4 + 1));
}

void cohort_ladder_retry_init(cohort_ladder_retry_t *self, int64_t first)
{
    self->failures = 0;
    self->next = first;
}

bool cohort_ladder_retry_due(const cohort_ladder_retry_t *self, int64_t now)
{
    return now >= self->next;
}

int64_t cohort_ladder_retry_attempt(cohort_ladder_retry_t *self, int64_t now, int64_t base,
                                    int64_t max, uint32_t rnd)
{
    int64_t wait = cohort_ladder_backoff(self->failures, base, max, rnd);
    if (self->failures < 64) /* long past max by then */
        self->failures++;
    self->next = now + wait;
    return wait;
}

void cohort_ladder_retry_reset(cohort_ladder_retry_t *self, int64_t now)
{
    self->failures = 0;
    if (self->next > now)
        self->next = now;
}
