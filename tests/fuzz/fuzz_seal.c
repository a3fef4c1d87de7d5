/*
 * fuzz_seal: libFuzzer harness for cohort_seal_open, the reader of sealed
 * frames that a relay (or anyone on the path) hands us.
 *
 * Input layout: byte 0 gives the routing header length (byte 0 % 32) and a
 * rekey flag (bit 7); then the routing header; the rest is the frame. Keys
 * are fixed (A's and B's secrets below), so a saved input holding a frame A
 * sealed for B opens in every run.
 *
 * Invariants checked beyond "no crash":
 * - open on a fresh receiver B (so every input is judged alone) returns one
 *   of the documented results; if OK, the same frame again is a REPLAY;
 * - on a long-lived pair A -> B, sealing the input's frame bytes as payload
 *   (under its routing header) opens to the same bytes, flipping one byte of
 *   the sealed frame is refused, and replaying it is a REPLAY.
 */
#include "overlay/seal.h"

#include <openssl/evp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct {
    uint8_t a_sec[32], a_pub[32];
    uint8_t b_sec[32], b_pub[32];
    cohort_seal_t *tx; /* A's seal towards B */
    cohort_seal_t *rx; /* B's seal for frames from A, long-lived */
} s_fixture_t;

static void s_public(const uint8_t sec[32], uint8_t pub[32])
{
    EVP_PKEY *k = EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, NULL, sec, 32);
    size_t n = 32;
    if (!k || EVP_PKEY_get_raw_public_key(k, pub, &n) <= 0 || n != 32)
        abort();
    EVP_PKEY_free(k);
}

static s_fixture_t *s_fixture(void)
{
    static s_fixture_t f;
    static bool ready;
    if (!ready) {
        for (int i = 0; i < 32; i++) {
            f.a_sec[i] = (uint8_t)(0xa0 + i);
            f.b_sec[i] = (uint8_t)(0x0b * (i + 1));
        }
        s_public(f.a_sec, f.a_pub);
        s_public(f.b_sec, f.b_pub);
        f.tx = cohort_seal_new(f.a_sec, f.a_pub, f.b_pub);
        f.rx = cohort_seal_new(f.b_sec, f.b_pub, f.a_pub);
        ready = true;
    }
    return &f;
}

static bool s_known(cohort_seal_result_t r)
{
    return r == COHORT_SEAL_OK || r == COHORT_SEAL_MALFORMED || r == COHORT_SEAL_VERSION ||
           r == COHORT_SEAL_AUTH || r == COHORT_SEAL_REPLAY || r == COHORT_SEAL_WEAK_KEY;
}

/* Arbitrary bytes against a fresh receiver. */
static void s_open_arbitrary(s_fixture_t *f, const uint8_t *aad, size_t aad_len,
                             const uint8_t *frame, size_t len)
{
    cohort_seal_t *rx = cohort_seal_new(f->b_sec, f->b_pub, f->a_pub);
    cohort_err_t err;
    uint8_t *plain = NULL;
    size_t plain_len = 0;
    cohort_seal_result_t r =
        cohort_seal_open(rx, aad, aad_len, frame, len, &plain, &plain_len, &err);
    if (!s_known(r) || (r == COHORT_SEAL_OK) != (plain != NULL))
        abort();
    if (r == COHORT_SEAL_OK) {
        if (plain_len + COHORT_SEAL_OVERHEAD != len)
            abort();
        free(plain);
        plain = NULL;
        if (cohort_seal_open(rx, aad, aad_len, frame, len, &plain, &plain_len, &err) !=
            COHORT_SEAL_REPLAY)
            abort(); /* an accepted frame must not be accepted twice */
    }
    cohort_seal_destroy(&rx);
}

/* The input as a payload through the long-lived pair. */
static void s_round_trip(s_fixture_t *f, bool rekey, const uint8_t *aad, size_t aad_len,
                         const uint8_t *payload, size_t len)
{
    cohort_err_t err;
    uint8_t *sealed = NULL, *plain = NULL;
    size_t sealed_len = 0, plain_len = 0;
    if (rekey)
        cohort_seal_rekey(f->tx);
    if (cohort_seal_wrap(f->tx, aad, aad_len, payload, len, &sealed, &sealed_len, &err) < 0)
        abort(); /* fuzz inputs are far below the limits */
    /* A forgery first: it must fail and must not use up the counter. */
    size_t at = (len * 31 + aad_len) % sealed_len;
    sealed[at] ^= 0x20;
    if (cohort_seal_open(f->rx, aad, aad_len, sealed, sealed_len, &plain, &plain_len, &err) ==
        COHORT_SEAL_OK)
        abort();
    sealed[at] ^= 0x20;
    if (cohort_seal_open(f->rx, aad, aad_len, sealed, sealed_len, &plain, &plain_len, &err) !=
            COHORT_SEAL_OK ||
        plain_len != len || (len && memcmp(plain, payload, len) != 0))
        abort();
    free(plain);
    if (cohort_seal_open(f->rx, aad, aad_len, sealed, sealed_len, &plain, &plain_len, &err) !=
        COHORT_SEAL_REPLAY)
        abort();
    free(sealed);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    s_fixture_t *f = s_fixture();
    size_t aad_len = 0;
    bool rekey = false;
    if (size > 0) {
        aad_len = data[0] % 32;
        rekey = (data[0] & 0x80) != 0;
        data++;
        size--;
    }
    if (aad_len > size)
        aad_len = size;
    const uint8_t *aad = aad_len ? data : NULL;
    const uint8_t *frame = size > aad_len ? data + aad_len : NULL;
    size_t len = size - aad_len;
    s_open_arbitrary(f, aad, aad_len, frame, len);
    s_round_trip(f, rekey, aad, aad_len, frame, len);
    return 0;
}
