/*
 * fuzz_beacon: the LAN beacon decoder (cohort_beacon_decode) against
 * arbitrary datagrams.
 *
 * Invariants checked beyond "no crash": only a datagram of exactly
 * COHORT_BEACON_LEN bytes with this cluster's tag and a port is accepted;
 * an accepted one encodes back to the same bytes but for the reserved byte;
 * the tag of another cluster refuses it.
 */
#include "overlay/beacon.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint64_t tag, other;
    if (!tag) {
        tag = cohort_beacon_cluster_tag("fuzz");
        other = cohort_beacon_cluster_tag("prod");
    }
    uint8_t key[COHORT_BEACON_KEY_LEN];
    uint16_t port = 0;
    if (cohort_beacon_decode(data, size, tag, key, &port) == 0) {
        uint8_t out[COHORT_BEACON_LEN];
        if (size != COHORT_BEACON_LEN || port == 0)
            abort();
        cohort_beacon_encode(key, port, tag, out);
        /* byte 5 is reserved: sent as 0, ignored on receipt */
        if (memcmp(out, data, 5) != 0 || memcmp(out + 6, data + 6, COHORT_BEACON_LEN - 6) != 0)
            abort();
        if (cohort_beacon_decode(data, size, other, key, &port) == 0)
            abort();
    }
    return 0;
}
