/*
 * wire: envelope encoding with limits and version checks. See wire.h.
 */
#include "wire/wire.h"
#include "util/mem.h"

int cohort_wire_decode(const uint8_t *buf, size_t len, size_t max, Cohort__Wire__Envelope **out,
                       cohort_err_t *err)
{
    return cohort_wire_decode_in(NULL, buf, len, max, out, err);
}

int cohort_wire_decode_in(cohort_arena_t *arena, const uint8_t *buf, size_t len, size_t max,
                          Cohort__Wire__Envelope **out, cohort_err_t *err)
{
    if (len > max)
        return cohort_err_set(err, "envelope: %zu bytes, over the limit of %zu", len, max);
    Cohort__Wire__Envelope *env =
        cohort__wire__envelope__unpack(arena ? &arena->pb : NULL, len, buf);
    if (!env)
        return cohort_err_set(err, "envelope: malformed (%zu bytes)", len);
    if (env->version != COHORT_WIRE_VERSION) {
        cohort_err_set(err, "envelope: unsupported version %u (this node speaks %d)", env->version,
                       COHORT_WIRE_VERSION);
        cohort_wire_free_in(arena, &env);
        return -1;
    }
    /* no body is fine only for gossip: member updates alone */
    if (env->body_case == COHORT__WIRE__ENVELOPE__BODY__NOT_SET && env->n_updates == 0) {
        cohort_wire_free_in(arena, &env);
        return cohort_err_set(err, "envelope: no body");
    }
    *out = env;
    return 0;
}

void cohort_wire_free(Cohort__Wire__Envelope **env_p)
{
    cohort_wire_free_in(NULL, env_p);
}

void cohort_wire_free_in(cohort_arena_t *arena, Cohort__Wire__Envelope **env_p)
{
    if (!env_p || !*env_p)
        return;
    if (arena)
        cohort_arena_free(arena, &(*env_p)->base);
    else
        cohort__wire__envelope__free_unpacked(*env_p, NULL);
    *env_p = NULL;
}

void cohort_wire_encode(Cohort__Wire__Envelope *env, uint8_t **out, size_t *len)
{
    env->version = COHORT_WIRE_VERSION;
    size_t n = cohort__wire__envelope__get_packed_size(env);
    uint8_t *buf = cohort_malloc(n);
    cohort__wire__envelope__pack(env, buf);
    *out = buf;
    *len = n;
}
