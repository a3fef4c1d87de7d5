/*
 * pbquirk: one known protobuf-c (1.4) quirk the round-trip checks allow.
 *
 * protobuf-c refuses field number 0 when its tag is one byte, but not when
 * the tag is a longer, non-canonical varint (0x82 0x00): it then keeps the
 * field as an unknown field and packs it back as the one-byte tag it
 * refuses. So a decoded message holding such a field encodes to bytes that
 * do not decode. Whoever re-encodes a message from outside must expect that
 * (libcohort skips such a delivery); the harnesses check that nothing else
 * breaks a round trip.
 */
#ifndef COHORT_FUZZ_PBQUIRK_H
#define COHORT_FUZZ_PBQUIRK_H

#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* True if m or any message nested in it kept an unknown field numbered 0. */
static inline bool cohort_fuzz_pb_has_field0(const ProtobufCMessage *m)
{
    for (unsigned i = 0; i < m->n_unknown_fields; i++)
        if (m->unknown_fields[i].tag == 0)
            return true;
    const ProtobufCMessageDescriptor *d = m->descriptor;
    const char *base = (const char *)m;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        if (f->type != PROTOBUF_C_TYPE_MESSAGE)
            continue;
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n = *(const size_t *)(const void *)(base + f->quantifier_offset);
            ProtobufCMessage *const *v =
                *(ProtobufCMessage *const *const *)(const void *)(base + f->offset);
            for (size_t k = 0; k < n; k++)
                if (v[k] && cohort_fuzz_pb_has_field0(v[k]))
                    return true;
            continue;
        }
        if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
            *(const uint32_t *)(const void *)(base + f->quantifier_offset) != f->id)
            continue;
        const ProtobufCMessage *sub = *(ProtobufCMessage *const *)(const void *)(base + f->offset);
        if (sub && cohort_fuzz_pb_has_field0(sub))
            return true;
    }
    return false;
}

#endif
