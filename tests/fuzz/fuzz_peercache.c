/*
 * fuzz_peercache: the bootstrap cache parser (cohort_peercache_parse, what
 * cohort_peercache_load runs on peers.yaml) against arbitrary bytes.
 *
 * A damaged cache must be refused, never crash the node at start.
 * Invariants checked beyond "no crash": a refused cache leaves *pc empty
 * and says where; an accepted one holds only distinct, valid names and
 * valid endpoints within the limits, and its emitted text (what
 * cohort_peercache_save writes) parses again to the same emission.
 */
#include "overlay/peercache.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void s_check(const cohort_peercache_t *pc)
{
    if (pc->count > COHORT_PEERCACHE_MAX_PEERS || strcmp(pc->cluster, "fuzz") != 0)
        abort();
    for (size_t i = 0; i < pc->count; i++) {
        const cohort_peercache_entry_t *e = &pc->peers[i];
        if (!e->name[0] || strlen(e->name) > 63 ||
            e->endpoint_count > COHORT_PEERCACHE_MAX_ENDPOINTS ||
            cohort_peercache_get(pc, e->name) != e)
            abort();
        for (size_t k = 0; k < e->endpoint_count; k++)
            if (!cohort_peercache_endpoint_ok(e->endpoints[k]))
                abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cohort_peercache_t pc, again;
    cohort_err_t err;
    cohort_err_clear(&err);
    if (cohort_peercache_parse("peers.yaml", (const char *)data, size, "fuzz", &pc, &err) < 0) {
        if (pc.count != 0 || !cohort_err_text(&err)[0])
            abort();
        cohort_peercache_fini(&pc);
        return 0;
    }
    s_check(&pc);
    char *a = NULL, *b = NULL;
    size_t alen = 0, blen = 0;
    if (cohort_peercache_emit(&pc, &a, &alen, &err) < 0 ||
        cohort_peercache_parse("emitted.yaml", a, alen, "fuzz", &again, &err) < 0 ||
        cohort_peercache_emit(&again, &b, &blen, &err) < 0 || alen != blen ||
        memcmp(a, b, alen) != 0)
        abort(); /* what the node saves, it must load back unchanged */
    s_check(&again);
    free(a);
    free(b);
    cohort_peercache_fini(&again);
    cohort_peercache_fini(&pc);
    return 0;
}
