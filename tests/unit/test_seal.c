/*
 * Unit tests for seal: refusals first (truncation, version, size limits,
 * wrong keys, every single-byte modification of frame and routing header,
 * replays, low-order keys, floods of forged and of genuine epochs), then
 * what must work (round trips both ways, reordering, rekeying, epoch budget,
 * no plaintext on the wire), then a throughput figure that is printed, not
 * asserted.
 */
#include "testutil.h"

#include "overlay/seal.h"
#include "pki/key.h"
#include "util/mem.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <time.h>

typedef struct {
    uint8_t sec[32];
    uint8_t pub[32];
} keys_t;

typedef struct {
    keys_t a, b, c;    /* members; c is a third member (or the relay) */
    cohort_seal_t *ab; /* a's seal for frames to and from b */
    cohort_seal_t *ba; /* b's seal for frames to and from a */
} pair_t;

/* The routing header a relay reads: authenticated, not encrypted. */
static const uint8_t HDR[] = "from=alpha to=beta";
#define HDR_LEN (sizeof HDR - 1)

static keys_t s_keys(void)
{
    keys_t k;
    EVP_PKEY *key = cohort_key_generate(COHORT_KEY_X25519);
    cohort_key_raw_private(key, k.sec);
    cohort_key_raw_public(key, k.pub);
    EVP_PKEY_free(key);
    return k;
}

static int s_setup(void **state)
{
    pair_t *p = cohort_calloc(1, sizeof *p);
    p->a = s_keys();
    p->b = s_keys();
    p->c = s_keys();
    p->ab = cohort_seal_new(p->a.sec, p->a.pub, p->b.pub);
    p->ba = cohort_seal_new(p->b.sec, p->b.pub, p->a.pub);
    *state = p;
    return 0;
}

static int s_teardown(void **state)
{
    pair_t *p = *state;
    cohort_seal_destroy(&p->ab);
    cohort_seal_destroy(&p->ba);
    assert_null(p->ab);
    cohort_free_secret(p, sizeof *p);
    return 0;
}

typedef struct {
    uint8_t *bytes;
    size_t len;
} frame_t;

static frame_t s_wrap(cohort_seal_t *s, const uint8_t *aad, size_t aad_len, const void *plain,
                      size_t len)
{
    frame_t f = {0};
    cohort_err_t err;
    assert_int_equal(cohort_seal_wrap(s, aad, aad_len, plain, len, &f.bytes, &f.len, &err), 0);
    assert_non_null(f.bytes);
    assert_int_equal(f.len, len + COHORT_SEAL_OVERHEAD);
    return f;
}

/* Opens a private copy of exactly len bytes, so any read past the end shows
 * under ASan and valgrind. Returns the result; on OK checks nothing else. */
static cohort_seal_result_t s_open(cohort_seal_t *s, const uint8_t *aad, size_t aad_len,
                                   const uint8_t *in, size_t len, cohort_err_t *err)
{
    uint8_t *copy = cohort_malloc(len);
    uint8_t *aad_copy = aad_len ? cohort_malloc(aad_len) : NULL;
    if (len)
        memcpy(copy, in, len);
    if (aad_len)
        memcpy(aad_copy, aad, aad_len);
    static uint8_t untouched[1];
    uint8_t *plain = untouched;
    size_t plain_len = 99;
    cohort_seal_result_t r =
        cohort_seal_open(s, aad_copy, aad_len, len ? copy : NULL, len, &plain, &plain_len, err);
    if (r == COHORT_SEAL_OK) {
        assert_non_null(plain);
        free(plain);
    } else {
        assert_null(plain);
        assert_int_equal(plain_len, 0);
        assert_true(strlen(cohort_err_text(err)) > 0);
    }
    free(copy);
    free(aad_copy);
    return r;
}

/* Opens f with the standard header and checks the payload. */
static void s_open_ok(cohort_seal_t *s, frame_t f, const void *want, size_t want_len)
{
    cohort_err_t err;
    uint8_t *plain = NULL;
    size_t plain_len = 0;
    cohort_seal_result_t r =
        cohort_seal_open(s, HDR, HDR_LEN, f.bytes, f.len, &plain, &plain_len, &err);
    if (r != COHORT_SEAL_OK)
        fail_msg("open: %s: %s", cohort_seal_result_name(r), cohort_err_text(&err));
    assert_non_null(plain);
    assert_int_equal(plain_len, want_len);
    if (want_len)
        assert_memory_equal(plain, want, want_len);
    free(plain);
}

static void s_expect(cohort_seal_t *s, frame_t f, cohort_seal_result_t want, const char *text)
{
    cohort_err_t err;
    cohort_seal_result_t r = s_open(s, HDR, HDR_LEN, f.bytes, f.len, &err);
    if (r != want)
        fail_msg("want %s, got %s: %s", cohort_seal_result_name(want), cohort_seal_result_name(r),
                 cohort_err_text(&err));
    if (text && !strstr(cohort_err_text(&err), text))
        fail_msg("'%s' does not say '%s'", cohort_err_text(&err), text);
}

static cohort_seal_stats_t s_stats(const cohort_seal_t *s)
{
    cohort_seal_stats_t st;
    cohort_seal_stats(s, &st);
    return st;
}

static uint64_t s_counter(frame_t f)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | f.bytes[33 + i];
    return v;
}

/* ---- refusals ---- */

static void test_truncated_frame_at_every_length_is_malformed(void **state)
{
    pair_t *p = *state;
    frame_t f = s_wrap(p->ab, HDR, HDR_LEN, "sixteen bytes!!!", 16);
    cohort_err_t err;
    for (size_t len = 0; len < f.len; len++) {
        cohort_seal_result_t r = s_open(p->ba, HDR, HDR_LEN, f.bytes, len, &err);
        /* Shorter than a frame: malformed. Long enough but cut: the tag is
         * no longer where it was, so it fails to authenticate. */
        cohort_seal_result_t want =
            len < COHORT_SEAL_OVERHEAD ? COHORT_SEAL_MALFORMED : COHORT_SEAL_AUTH;
        if (r != want)
            fail_msg("length %zu: want %s, got %s (%s)", len, cohort_seal_result_name(want),
                     cohort_seal_result_name(r), cohort_err_text(&err));
    }
    assert_true(strstr(cohort_err_text(&err), "authentication failed") != NULL);
    assert_int_equal(s_open(p->ba, HDR, HDR_LEN, f.bytes, 20, &err), COHORT_SEAL_MALFORMED);
    assert_true(strstr(cohort_err_text(&err), "truncated: 20 bytes") != NULL);
    /* None of it used up the counter. */
    s_open_ok(p->ba, f, "sixteen bytes!!!", 16);
    free(f.bytes);
}

static void test_unknown_version_is_refused_before_length(void **state)
{
    pair_t *p = *state;
    frame_t f = s_wrap(p->ab, HDR, HDR_LEN, "x", 1);
    cohort_err_t err;
    const uint8_t versions[] = {0, 2, 0x81, 0xff};
    for (size_t i = 0; i < sizeof versions; i++) {
        f.bytes[0] = versions[i];
        assert_int_equal(s_open(p->ba, HDR, HDR_LEN, f.bytes, f.len, &err), COHORT_SEAL_VERSION);
        /* Another version may be laid out differently: VERSION even if short. */
        assert_int_equal(s_open(p->ba, HDR, HDR_LEN, f.bytes, 1, &err), COHORT_SEAL_VERSION);
    }
    assert_true(strstr(cohort_err_text(&err), "version 255 is not supported") != NULL);
    f.bytes[0] = COHORT_SEAL_WIRE_VERSION;
    assert_int_equal(s_open(p->ba, HDR, HDR_LEN, f.bytes, 1, &err), COHORT_SEAL_MALFORMED);
    s_open_ok(p->ba, f, "x", 1);
    free(f.bytes);
}

static void test_oversized_payload_or_header_is_refused_before_allocating(void **state)
{
    pair_t *p = *state;
    cohort_err_t err;
    uint8_t small[64] = {0};
    uint8_t *out = small;
    size_t out_len = 7;
    /* The lengths lie about the buffers: the limits are checked before any
     * byte past the first is read (valgrind and ASan would say otherwise). */
    assert_int_equal(
        cohort_seal_wrap(p->ab, NULL, 0, small, COHORT_SEAL_MAX_PLAIN + 1u, &out, &out_len, &err),
        -1);
    assert_null(out);
    assert_int_equal(out_len, 0);
    assert_true(strstr(cohort_err_text(&err), "exceeds the limit") != NULL);
    assert_int_equal(
        cohort_seal_wrap(p->ab, small, COHORT_SEAL_MAX_AAD + 1u, small, 1, &out, &out_len, &err),
        -1);
    assert_true(strstr(cohort_err_text(&err), "routing header") != NULL);
    assert_int_equal(s_stats(p->ab).sealed, 0);

    frame_t f = s_wrap(p->ab, HDR, HDR_LEN, "ok", 2);
    uint8_t *plain = small;
    size_t plain_len = 3;
    assert_int_equal(cohort_seal_open(p->ba, HDR, HDR_LEN, f.bytes,
                                      (size_t)COHORT_SEAL_MAX_PLAIN + COHORT_SEAL_OVERHEAD + 1,
                                      &plain, &plain_len, &err),
                     COHORT_SEAL_MALFORMED);
    assert_null(plain);
    assert_int_equal(cohort_seal_open(p->ba, small, COHORT_SEAL_MAX_AAD + 1u, f.bytes, f.len,
                                      &plain, &plain_len, &err),
                     COHORT_SEAL_MALFORMED);
    s_open_ok(p->ba, f, "ok", 2);
    free(f.bytes);
}

static void test_counter_zero_is_malformed(void **state)
{
    pair_t *p = *state;
    frame_t f = s_wrap(p->ab, HDR, HDR_LEN, "z", 1);
    assert_int_equal(s_counter(f), 1);
    f.bytes[40] = 0;
    s_expect(p->ba, f, COHORT_SEAL_MALFORMED, "counter 0");
    free(f.bytes);
}

static void test_third_member_cannot_open_frames_between_two_others(void **state)
{
    pair_t *p = *state;
    const char secret[] = "for beta only";
    frame_t f = s_wrap(p->ab, HDR, HDR_LEN, secret, sizeof secret);
    /* c holds its own keys and knows both public keys, as the relay does. */
    cohort_seal_t *c_from_a = cohort_seal_new(p->c.sec, p->c.pub, p->a.pub);
    cohort_seal_t *c_from_b = cohort_seal_new(p->c.sec, p->c.pub, p->b.pub);
    s_expect(c_from_a, f, COHORT_SEAL_AUTH, "authentication failed");
    s_expect(c_from_b, f, COHORT_SEAL_AUTH, NULL);
    assert_int_equal(s_stats(c_from_a).epochs_cached, 0);
    cohort_seal_destroy(&c_from_a);
    cohort_seal_destroy(&c_from_b);
    s_open_ok(p->ba, f, secret, sizeof secret);
    free(f.bytes);
}

static void test_frame_from_another_sender_is_refused(void **state)
{
    pair_t *p = *state;
    /* c seals to b; b expects frames from a on this seal: wrong peer. */
    cohort_seal_t *cb = cohort_seal_new(p->c.sec, p->c.pub, p->b.pub);
    frame_t f = s_wrap(cb, HDR, HDR_LEN, "forged", 6);
    s_expect(p->ba, f, COHORT_SEAL_AUTH, "not sealed by this peer");
    /* b's seal for c accepts it: the pair decides, not the frame. */
    cohort_seal_t *bc = cohort_seal_new(p->b.sec, p->b.pub, p->c.pub);
    s_open_ok(bc, f, "forged", 6);
    cohort_seal_destroy(&cb);
    cohort_seal_destroy(&bc);
    free(f.bytes);
}

static void test_frame_reflected_back_to_its_sender_is_refused(void **state)
{
    pair_t *p = *state;
    frame_t f = s_wrap(p->ab, HDR, HDR_LEN, "echo", 4);
    s_expect(p->ab, f, COHORT_SEAL_AUTH, NULL);
    s_open_ok(p->ba, f, "echo", 4);
    free(f.bytes);
}

static void test_flipping_any_byte_of_the_frame_is_refused(void **state)
{
    pair_t *p = *state;
    frame_t first = s_wrap(p->ab, HDR, HDR_LEN, "0123456789abcdef", 16);
    frame_t f = s_wrap(p->ab, HDR, HDR_LEN, "fedcba9876543210", 16);
    /* The epoch is known to b after the first frame, so both the path for a
     * known epoch and (flipped e_pub) for an unknown one are exercised. */
    s_open_ok(p->ba, first, "0123456789abcdef", 16);
    const uint8_t masks[] = {0x01, 0x80, 0xff};
    cohort_err_t err;
    for (size_t i = 0; i < f.len; i++) {
        for (size_t m = 0; m < sizeof masks; m++) {
            f.bytes[i] ^= masks[m];
            cohort_seal_result_t r = s_open(p->ba, HDR, HDR_LEN, f.bytes, f.len, &err);
            f.bytes[i] ^= masks[m];
            /* counter 2 ^ mask is never 0 or already seen: always AUTH. */
            cohort_seal_result_t want = i == 0 ? COHORT_SEAL_VERSION : COHORT_SEAL_AUTH;
            if (r != want)
                fail_msg("byte %zu ^ 0x%02x: want %s, got %s (%s)", i, masks[m],
                         cohort_seal_result_name(want), cohort_seal_result_name(r),
                         cohort_err_text(&err));
        }
    }
    /* No forged e_pub got into the cache, no forgery used up counter 2. */
    assert_int_equal(s_stats(p->ba).epochs_cached, 1);
    assert_int_equal(s_stats(p->ba).refused[COHORT_SEAL_AUTH], 3 * (f.len - 1));
    s_open_ok(p->ba, f, "fedcba9876543210", 16);
    free(first.bytes);
    free(f.bytes);
}

static void test_changing_the_routing_header_is_refused(void **state)
{
    pair_t *p = *state;
    frame_t f = s_wrap(p->ab, HDR, HDR_LEN, "payload", 7);
    uint8_t hdr[HDR_LEN + 1];
    memcpy(hdr, HDR, HDR_LEN);
    hdr[HDR_LEN] = 'x';
    cohort_err_t err;
    for (size_t i = 0; i < HDR_LEN; i++) {
        hdr[i] ^= 0x01;
        assert_int_equal(s_open(p->ba, hdr, HDR_LEN, f.bytes, f.len, &err), COHORT_SEAL_AUTH);
        hdr[i] ^= 0x01;
    }
    /* Cut, extended, or missing. */
    assert_int_equal(s_open(p->ba, hdr, HDR_LEN - 1, f.bytes, f.len, &err), COHORT_SEAL_AUTH);
    assert_int_equal(s_open(p->ba, hdr, HDR_LEN + 1, f.bytes, f.len, &err), COHORT_SEAL_AUTH);
    assert_int_equal(s_open(p->ba, NULL, 0, f.bytes, f.len, &err), COHORT_SEAL_AUTH);
    s_open_ok(p->ba, f, "payload", 7);
    free(f.bytes);
}

static void test_replayed_frame_is_refused(void **state)
{
    pair_t *p = *state;
    frame_t f = s_wrap(p->ab, HDR, HDR_LEN, "once", 4);
    s_open_ok(p->ba, f, "once", 4);
    s_expect(p->ba, f, COHORT_SEAL_REPLAY, "already accepted");
    s_expect(p->ba, f, COHORT_SEAL_REPLAY, NULL);
    assert_int_equal(s_stats(p->ba).opened, 1);
    assert_int_equal(s_stats(p->ba).refused[COHORT_SEAL_REPLAY], 2);
    free(f.bytes);
}

static void test_frame_older_than_the_window_is_a_replay_but_reordering_within_is_fine(void **state)
{
    pair_t *p = *state;
    enum { N = 300 };
    frame_t *f = cohort_calloc(N + 1, sizeof *f);
    char body[16];
    for (int i = 1; i <= N; i++) {
        snprintf(body, sizeof body, "m%d", i);
        f[i] = s_wrap(p->ab, HDR, HDR_LEN, body, strlen(body));
        assert_int_equal(s_counter(f[i]), i);
    }
    /* Newest first, then back through the window. */
    s_open_ok(p->ba, f[200], "m200", 4);
    s_open_ok(p->ba, f[199], "m199", 4);
    s_open_ok(p->ba, f[100], "m100", 4);
    s_open_ok(p->ba, f[73], "m73", 3); /* 127 behind: the window's last slot */
    s_expect(p->ba, f[72], COHORT_SEAL_REPLAY, "older than the window");
    s_expect(p->ba, f[1], COHORT_SEAL_REPLAY, "older than the window");
    s_expect(p->ba, f[73], COHORT_SEAL_REPLAY, "already accepted");
    /* Jumps of under 64, 64..127 and over 127 keep the right bits. */
    s_open_ok(p->ba, f[230], "m230", 4);
    s_expect(p->ba, f[199], COHORT_SEAL_REPLAY, "already accepted");
    s_expect(p->ba, f[200], COHORT_SEAL_REPLAY, "already accepted");
    s_open_ok(p->ba, f[198], "m198", 4);
    s_open_ok(p->ba, f[300], "m300", 4);
    s_expect(p->ba, f[230], COHORT_SEAL_REPLAY, "already accepted");
    s_expect(p->ba, f[172], COHORT_SEAL_REPLAY, "older than the window");
    s_open_ok(p->ba, f[173], "m173", 4);
    for (int i = 174; i < N; i++) {
        if (i != 198 && i != 199 && i != 200 && i != 230) {
            snprintf(body, sizeof body, "m%d", i);
            s_open_ok(p->ba, f[i], body, strlen(body));
        }
    }
    for (int i = 1; i <= N; i++)
        free(f[i].bytes);
    free(f);
}

static const uint8_t LOW_ORDER[][32] = {
    {0},
    {1},
    {0xe0, 0xeb, 0x7a, 0x7c, 0x3b, 0x41, 0xb8, 0xae, 0x16, 0x56, 0xe3,
     0xfa, 0xf1, 0x9f, 0xc4, 0x6a, 0xda, 0x09, 0x8d, 0xeb, 0x9c, 0x32,
     0xb1, 0xfd, 0x86, 0x62, 0x05, 0x16, 0x5f, 0x49, 0xb8, 0x00},
    {0x5f, 0x9c, 0x95, 0xbc, 0xa3, 0x50, 0x8c, 0x24, 0xb1, 0xd0, 0xb1,
     0x55, 0x9c, 0x83, 0xef, 0x5b, 0x04, 0x44, 0x5c, 0xc4, 0x58, 0x1c,
     0x8e, 0x86, 0xd8, 0x22, 0x4e, 0xdd, 0xd0, 0x9f, 0x11, 0x57},
    /* p - 1, p, p + 1, little-endian */
    {0xec, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
     0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
     0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f},
    {0xed, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
     0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
     0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f},
    {0xee, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
     0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
     0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f},
};
#define N_LOW_ORDER (sizeof LOW_ORDER / sizeof LOW_ORDER[0])

static void test_low_order_ephemeral_key_is_never_accepted(void **state)
{
    pair_t *p = *state;
    frame_t f = s_wrap(p->ab, HDR, HDR_LEN, "weak", 4);
    uint8_t saved[32];
    memcpy(saved, f.bytes + 1, 32);
    cohort_err_t err;
    for (size_t i = 0; i < N_LOW_ORDER; i++) {
        for (int top = 0; top < 2; top++) { /* X25519 ignores bit 255 */
            memcpy(f.bytes + 1, LOW_ORDER[i], 32);
            f.bytes[32] |= (uint8_t)(top << 7);
            cohort_seal_result_t r = s_open(p->ba, HDR, HDR_LEN, f.bytes, f.len, &err);
            /* p - 1 is a point of order 2 on the twist: zero as well. Every
             * one of these makes the DH zero, so WEAK_KEY, never AUTH. */
            if (r != COHORT_SEAL_WEAK_KEY)
                fail_msg("low-order point %zu (top bit %d): got %s (%s)", i, top,
                         cohort_seal_result_name(r), cohort_err_text(&err));
        }
    }
    assert_true(strstr(cohort_err_text(&err), "low-order point") != NULL);
    memcpy(f.bytes + 1, saved, 32);
    s_open_ok(p->ba, f, "weak", 4);
    free(f.bytes);
}

static void test_low_order_or_own_peer_key_refuses_every_frame(void **state)
{
    pair_t *p = *state;
    frame_t f = s_wrap(p->ab, HDR, HDR_LEN, "hi", 2);
    cohort_err_t err;
    uint8_t *out = NULL;
    size_t out_len = 0;
    for (size_t i = 0; i <= N_LOW_ORDER; i++) {
        /* The last round: the peer's key is our own. */
        const uint8_t *peer = i < N_LOW_ORDER ? LOW_ORDER[i] : p->b.pub;
        cohort_seal_t *weak = cohort_seal_new(p->b.sec, p->b.pub, peer);
        assert_int_equal(
            cohort_seal_wrap(weak, HDR, HDR_LEN, (const uint8_t *)"hi", 2, &out, &out_len, &err),
            -1);
        assert_null(out);
        assert_true(strstr(cohort_err_text(&err),
                           i < N_LOW_ORDER ? "low-order point" : "is our own") != NULL);
        assert_int_equal(s_open(weak, HDR, HDR_LEN, f.bytes, f.len, &err), COHORT_SEAL_WEAK_KEY);
        cohort_seal_destroy(&weak);
    }
    free(f.bytes);
}

static void test_flood_of_forged_epochs_caches_nothing_and_evicts_nothing(void **state)
{
    pair_t *p = *state;
    frame_t f1 = s_wrap(p->ab, HDR, HDR_LEN, "before", 6);
    frame_t f2 = s_wrap(p->ab, HDR, HDR_LEN, "after", 5);
    s_open_ok(p->ba, f1, "before", 6);
    uint8_t forged[COHORT_SEAL_OVERHEAD + 32];
    for (int i = 0; i < 1000; i++) {
        assert_int_equal(RAND_bytes(forged, sizeof forged), 1);
        forged[0] = COHORT_SEAL_WIRE_VERSION;
        forged[40] |= 1; /* counter not 0 */
        frame_t g = {forged, sizeof forged};
        s_expect(p->ba, g, COHORT_SEAL_AUTH, NULL);
    }
    cohort_seal_stats_t st = s_stats(p->ba);
    assert_int_equal(st.epochs_cached, 1);
    assert_int_equal(st.epochs_admitted, 1);
    assert_int_equal(st.epochs_retired, 0);
    s_open_ok(p->ba, f2, "after", 5);
    free(f1.bytes);
    free(f2.bytes);
}

static void test_thousand_epochs_keep_the_cache_bounded_and_evicted_epochs_refused(void **state)
{
    pair_t *p = *state;
    frame_t old_seen = s_wrap(p->ab, HDR, HDR_LEN, "e0 c1", 5);
    frame_t old_unseen = s_wrap(p->ab, HDR, HDR_LEN, "e0 c2", 5);
    s_open_ok(p->ba, old_seen, "e0 c1", 5);
    frame_t recent_unseen = {0};
    for (int e = 1; e <= 1000; e++) {
        cohort_seal_rekey(p->ab);
        frame_t f = s_wrap(p->ab, HDR, HDR_LEN, "epoch", 5);
        s_open_ok(p->ba, f, "epoch", 5);
        free(f.bytes);
        if (e == 998)
            recent_unseen = s_wrap(p->ab, HDR, HDR_LEN, "e998 c2", 7);
        assert_true(s_stats(p->ba).epochs_cached <= COHORT_SEAL_EPOCH_CACHE);
    }
    cohort_seal_stats_t st = s_stats(p->ba);
    assert_int_equal(st.epochs_cached, COHORT_SEAL_EPOCH_CACHE);
    assert_int_equal(st.epochs_admitted, 1001);
    assert_int_equal(st.epochs_retired, 1001 - COHORT_SEAL_EPOCH_CACHE);
    assert_int_equal(s_stats(p->ab).epochs_started, 1001);
    /* The evicted first epoch is refused, even for a frame never opened
     * (re-deriving its key would otherwise open a fresh window to replays). */
    s_expect(p->ba, old_seen, COHORT_SEAL_REPLAY, "retired");
    s_expect(p->ba, old_unseen, COHORT_SEAL_REPLAY, "retired");
    /* One of the last four epochs is still cached. */
    s_open_ok(p->ba, recent_unseen, "e998 c2", 7);
    free(old_seen.bytes);
    free(old_unseen.bytes);
    free(recent_unseen.bytes);
}

/* ---- what must work ---- */

static void test_round_trip_in_both_directions(void **state)
{
    pair_t *p = *state;
    const size_t sizes[] = {0, 1, 1000, 1024 * 1024};
    uint8_t *data = cohort_malloc(1024 * 1024);
    assert_int_equal(RAND_bytes(data, 1024 * 1024), 1);
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        frame_t ab = s_wrap(p->ab, HDR, HDR_LEN, data, sizes[i]);
        frame_t ba = s_wrap(p->ba, HDR, HDR_LEN, data, sizes[i]);
        s_open_ok(p->ba, ab, data, sizes[i]);
        s_open_ok(p->ab, ba, data, sizes[i]);
        free(ab.bytes);
        free(ba.bytes);
    }
    /* No routing header at all is fine too, if both sides agree. */
    frame_t f = s_wrap(p->ab, NULL, 0, "bare", 4);
    uint8_t *plain = NULL;
    size_t plain_len = 0;
    cohort_err_t err;
    assert_int_equal(cohort_seal_open(p->ba, NULL, 0, f.bytes, f.len, &plain, &plain_len, &err),
                     COHORT_SEAL_OK);
    assert_int_equal(plain_len, 4);
    assert_memory_equal(plain, "bare", 4);
    free(plain);
    free(f.bytes);
    free(data);
    assert_int_equal(s_stats(p->ba).opened, 5);
    assert_int_equal(s_stats(p->ab).opened, 4);
}

static void test_rekey_starts_a_new_epoch_and_cached_old_epochs_still_open(void **state)
{
    pair_t *p = *state;
    frame_t e1 = s_wrap(p->ab, HDR, HDR_LEN, "one", 3);
    cohort_seal_rekey(p->ab);
    cohort_seal_rekey(p->ab); /* twice without a frame: still one new epoch */
    frame_t e2 = s_wrap(p->ab, HDR, HDR_LEN, "two", 3);
    assert_memory_not_equal(e1.bytes + 1, e2.bytes + 1, 32);
    assert_int_equal(s_counter(e2), 1);
    assert_int_equal(s_stats(p->ab).epochs_started, 2);
    /* The new epoch arrives first; the old one is still accepted. */
    s_open_ok(p->ba, e2, "two", 3);
    s_open_ok(p->ba, e1, "one", 3);
    s_expect(p->ba, e1, COHORT_SEAL_REPLAY, NULL);
    s_expect(p->ba, e2, COHORT_SEAL_REPLAY, NULL);
    assert_int_equal(s_stats(p->ba).epochs_cached, 2);
    free(e1.bytes);
    free(e2.bytes);
}

static void test_epoch_rotates_after_its_frame_budget(void **state)
{
    pair_t *p = *state;
    cohort_seal_set_epoch_frames(p->ab, 3);
    frame_t f[7];
    const uint64_t counters[] = {1, 2, 3, 1, 2, 3, 1};
    for (int i = 0; i < 7; i++) {
        f[i] = s_wrap(p->ab, HDR, HDR_LEN, "n", 1);
        assert_int_equal(s_counter(f[i]), counters[i]);
    }
    assert_memory_equal(f[0].bytes + 1, f[2].bytes + 1, 32);
    assert_memory_not_equal(f[2].bytes + 1, f[3].bytes + 1, 32);
    assert_memory_equal(f[3].bytes + 1, f[5].bytes + 1, 32);
    assert_memory_not_equal(f[5].bytes + 1, f[6].bytes + 1, 32);
    assert_int_equal(s_stats(p->ab).epochs_started, 3);
    for (int i = 6; i >= 0; i--) {
        s_open_ok(p->ba, f[i], "n", 1);
        free(f[i].bytes);
    }
}

static void test_plaintext_does_not_appear_in_the_sealed_bytes(void **state)
{
    pair_t *p = *state;
    uint8_t marker[32];
    memset(marker, 'M', sizeof marker);
    /* The marker alone, and inside zeros (an all-zero keystream would show). */
    uint8_t body[4096] = {0};
    memcpy(body + 1000, marker, sizeof marker);
    const struct {
        const uint8_t *data;
        size_t len;
    } cases[] = {{marker, sizeof marker}, {body, sizeof body}};
    for (size_t c = 0; c < 2; c++) {
        frame_t f = s_wrap(p->ab, HDR, HDR_LEN, cases[c].data, cases[c].len);
        assert_null(memmem(f.bytes, f.len, marker, sizeof marker));
        assert_null(memmem(f.bytes, f.len, marker, 8));
        uint8_t zeros[32] = {0};
        assert_null(memmem(f.bytes + COHORT_SEAL_HEADER_LEN, f.len - COHORT_SEAL_HEADER_LEN, zeros,
                           sizeof zeros));
        /* Nor does anything secret or the header the relay gets apart. */
        assert_null(memmem(f.bytes, f.len, p->a.sec, 32));
        assert_null(memmem(f.bytes, f.len, HDR, HDR_LEN));
        s_open_ok(p->ba, f, cases[c].data, cases[c].len);
        free(f.bytes);
    }
}

static void test_result_names_are_distinct(void **state)
{
    (void)state;
    assert_string_equal(cohort_seal_result_name(COHORT_SEAL_OK), "ok");
    assert_string_equal(cohort_seal_result_name(COHORT_SEAL_MALFORMED), "malformed");
    assert_string_equal(cohort_seal_result_name(COHORT_SEAL_VERSION), "version");
    assert_string_equal(cohort_seal_result_name(COHORT_SEAL_AUTH), "auth");
    assert_string_equal(cohort_seal_result_name(COHORT_SEAL_REPLAY), "replay");
    assert_string_equal(cohort_seal_result_name(COHORT_SEAL_WEAK_KEY), "weak_key");
    assert_string_equal(cohort_seal_result_name((cohort_seal_result_t)77), "unknown");
}

static double s_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void test_throughput_of_one_kib_frames_is_reported(void **state)
{
    pair_t *p = *state;
    enum { N = 20000, SIZE = 1024 };
    uint8_t body[SIZE];
    memset(body, 'b', sizeof body);
    frame_t *f = cohort_calloc(N, sizeof *f);
    double t0 = s_now();
    for (int i = 0; i < N; i++)
        f[i] = s_wrap(p->ab, HDR, HDR_LEN, body, SIZE);
    double t1 = s_now();
    for (int i = 0; i < N; i++) {
        uint8_t *plain = NULL;
        size_t plain_len = 0;
        cohort_err_t err;
        assert_int_equal(
            cohort_seal_open(p->ba, HDR, HDR_LEN, f[i].bytes, f[i].len, &plain, &plain_len, &err),
            COHORT_SEAL_OK);
        free(plain);
    }
    double t2 = s_now();
    for (int i = 0; i < N; i++)
        free(f[i].bytes);
    free(f);
    double mb = (double)N * SIZE / 1e6;
    print_message("      1 KiB frames: wrap %.0f MB/s (%.2f us/frame), open %.0f MB/s "
                  "(%.2f us/frame)\n",
                  mb / (t1 - t0), (t1 - t0) * 1e6 / N, mb / (t2 - t1), (t2 - t1) * 1e6 / N);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, s_setup, s_teardown)
    const struct CMUnitTest tests[] = {
        T(test_truncated_frame_at_every_length_is_malformed),
        T(test_unknown_version_is_refused_before_length),
        T(test_oversized_payload_or_header_is_refused_before_allocating),
        T(test_counter_zero_is_malformed),
        T(test_third_member_cannot_open_frames_between_two_others),
        T(test_frame_from_another_sender_is_refused),
        T(test_frame_reflected_back_to_its_sender_is_refused),
        T(test_flipping_any_byte_of_the_frame_is_refused),
        T(test_changing_the_routing_header_is_refused),
        T(test_replayed_frame_is_refused),
        T(test_frame_older_than_the_window_is_a_replay_but_reordering_within_is_fine),
        T(test_low_order_ephemeral_key_is_never_accepted),
        T(test_low_order_or_own_peer_key_refuses_every_frame),
        T(test_flood_of_forged_epochs_caches_nothing_and_evicts_nothing),
        T(test_thousand_epochs_keep_the_cache_bounded_and_evicted_epochs_refused),
        T(test_round_trip_in_both_directions),
        T(test_rekey_starts_a_new_epoch_and_cached_old_epochs_still_open),
        T(test_epoch_rotates_after_its_frame_budget),
        T(test_plaintext_does_not_appear_in_the_sealed_bytes),
        T(test_result_names_are_distinct),
        T(test_throughput_of_one_kib_frames_is_reported),
    };
#undef T
    return cmocka_run_group_tests_name("seal", tests, NULL, NULL);
}
