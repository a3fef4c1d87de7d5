#include "wire/arena.h"
#include "util/mem.h"

#include <assert.h>
#include <stdint.h>
#include <stdlib.h>

#define S_ALIGN 16u

static bool s_owns(const cohort_arena_t *a, const void *p)
{
    const unsigned char *c = p;
    return a->buf && c >= a->buf && c < a->buf + a->cap;
}

static void *s_alloc(void *data, size_t size)
{
    cohort_arena_t *a = data;
    size_t need = (size + S_ALIGN - 1) & ~(size_t)(S_ALIGN - 1);
    if (need < size)
        return NULL; /* overflow: protobuf-c reports a failed decode */
    a->wanted += need;
    if (need <= a->cap - a->used) {
        void *p = a->buf + a->used;
        a->used += need;
        return p;
    }
    /* protobuf-c handles NULL as a failed decode; sizes here are bounded
     * by the frame being decoded, which the caller bounded already */
    void *p = malloc(size ? size : 1);
    if (p)
        a->outstanding++;
    return p;
}

static void s_free(void *data, void *p)
{
    cohort_arena_t *a = data;
    if (!p || s_owns(a, p))
        return;
    assert(a->outstanding > 0);
    a->outstanding--;
    free(p);
}

void cohort_arena_init(cohort_arena_t *a, size_t cap)
{
    cap = (cap + 4095) & ~(size_t)4095;
    *a = (cohort_arena_t){.pb = {.alloc = s_alloc, .free = s_free, .allocator_data = a},
                          .buf = cohort_malloc(cap),
                          .cap = cap};
}

void cohort_arena_wrap(cohort_arena_t *a, void *buf, size_t cap)
{
    *a = (cohort_arena_t){.pb = {.alloc = s_alloc, .free = s_free, .allocator_data = a},
                          .buf = buf,
                          .cap = cap,
                          .borrowed = true};
}

void cohort_arena_fini(cohort_arena_t *a)
{
    assert(a->outstanding == 0);
    if (!a->borrowed)
        free(a->buf);
    a->buf = NULL;
    a->cap = a->used = a->wanted = 0;
}

void cohort_arena_reset(cohort_arena_t *a)
{
    assert(a->outstanding == 0);
    if (!a->borrowed && a->wanted > a->cap && a->cap < COHORT_ARENA_MAX) {
        size_t cap = a->cap;
        while (cap < a->wanted && cap < COHORT_ARENA_MAX)
            cap *= 2;
        free(a->buf);
        a->buf = cohort_malloc(cap);
        a->cap = cap;
    }
    a->used = 0;
    a->wanted = 0;
}

void cohort_arena_free(cohort_arena_t *a, ProtobufCMessage *m)
{
    if (m && a->outstanding)
        protobuf_c_message_free_unpacked(m, &a->pb);
}
