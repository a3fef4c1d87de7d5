/*
 * arena: a reusable bump allocator for protobuf-c decoding on the hot path.
 *
 * protobuf-c's decoder allocates every sub-message, string and bytes field
 * on its own; for a batch of small messages that is most of the cost of
 * reading it. Decoded with an arena, all of it comes out of one block that
 * is handed back at once (cohort_arena_reset), so a decode-handle-free
 * cycle costs no malloc at all once the block is big enough.
 *
 * It is not a general allocator: nothing decoded with it may outlive the
 * next reset. A request that does not fit is malloc'ed on its own (freed
 * by the allocator's free, i.e. by *_free_unpacked), and the next reset
 * grows the block so that it fits next time, up to COHORT_ARENA_MAX.
 */
#ifndef COHORT_WIRE_ARENA_H
#define COHORT_WIRE_ARENA_H

#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stddef.h>

#define COHORT_ARENA_MAX (4u << 20)

typedef struct {
    ProtobufCAllocator pb; /* pass &arena->pb to *_unpack and *_free_unpacked */
    unsigned char *buf;
    size_t cap;
    size_t used;
    size_t wanted;      /* bytes asked for since the last reset */
    size_t outstanding; /* malloc'ed overflow blocks not yet freed */
    bool borrowed;      /* buf is the caller's (cohort_arena_wrap) */
} cohort_arena_t;

/* An arena with an initial block of cap bytes (rounded up to 4 KiB). */
void cohort_arena_init(cohort_arena_t *a, size_t cap);
/* An arena on the caller's cap bytes at buf, which it neither grows nor
 * frees: what is decoded into it can stay there as long as buf does. */
void cohort_arena_wrap(cohort_arena_t *a, void *buf, size_t cap);
/* Frees the block. Everything decoded with the arena must be gone. */
void cohort_arena_fini(cohort_arena_t *a);
/* Hands every arena allocation back at once; overflow blocks must have
 * been freed (*_free_unpacked with &a->pb). Grows the block when the last
 * cycle overflowed it. */
void cohort_arena_reset(cohort_arena_t *a);
/* Frees what m holds outside the block (overflow), walking it only when
 * there is any. m may be NULL. */
void cohort_arena_free(cohort_arena_t *a, ProtobufCMessage *m);

#endif
