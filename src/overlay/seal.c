/*
 * seal: end-to-end sealed frames between two members. See seal.h.
 *
 * The static-static DH result is the same for both directions and never
 * changes, so it is computed once in cohort_seal_new (which is also where a
 * low-order peer key shows). The sender forgets its ephemeral private key as
 * soon as the epoch key is derived: only the 32-byte epoch key stays.
 *
 * Failures of OpenSSL calls that cannot fail on the inputs given here (all
 * lengths fixed and checked) mean out-of-memory or a broken install; they
 * abort like cohort_malloc does (as pki/key.c does). Only the X25519 result
 * depends on outside bytes, and that is a result code.
 */
#include "overlay/seal.h"

#include "util/mem.h"

#include <assert.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_KEY COHORT_SEAL_KEY_LEN
#define S_NONCE_LEN 12
#define S_OFF_EPUB 1
#define S_OFF_COUNTER (1 + S_KEY)

/* A receiver epoch: the key for one sender e_pub and its replay window. */
typedef struct {
    bool used;
    uint8_t e_pub[S_KEY];
    uint8_t key[S_KEY];
    /* Highest counter accepted; bit i of seen (word i / 64, bit i % 64)
     * says whether counter top - i was accepted, for i < COHORT_SEAL_WINDOW. */
    uint64_t top;
    uint64_t seen[COHORT_SEAL_WINDOW / 64];
    uint64_t admitted; /* admission order, for evicting the oldest */
} s_epoch_t;

struct cohort_seal {
    EVP_PKEY *my_key; /* static private key */
    uint8_t my_pub[S_KEY];
    uint8_t peer_pub[S_KEY];
    uint8_t ss[S_KEY];    /* X25519(my_priv, peer_pub): secret */
    const char *unusable; /* why the peer key cannot be used, or NULL */
    EVP_CIPHER *aead;
    EVP_KDF *hkdf;
    EVP_CIPHER_CTX *ctx; /* reused for every frame */
    /* sender */
    bool tx_live;
    uint8_t tx_key[S_KEY];
    uint8_t tx_epub[S_KEY];
    uint64_t tx_counter; /* last counter used in this epoch */
    uint32_t epoch_frames;
    /* receiver */
    s_epoch_t rx[COHORT_SEAL_EPOCH_CACHE];
    uint64_t rx_admissions;
    /* First 8 bytes of every evicted e_pub, a ring. Genuine e_pubs are
     * random, and a forged one that collides is refused either way. */
    uint64_t retired[COHORT_SEAL_RETIRED];
    size_t retired_next;
    size_t retired_count;
    cohort_seal_stats_t stats;
};

static const uint8_t s_zero[S_KEY];

static void s_put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (uint8_t)v;
        v >>= 8;
    }
}

static uint64_t s_get_be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return v;
}

static uint64_t s_fingerprint(const uint8_t e_pub[S_KEY])
{
    uint64_t f;
    memcpy(&f, e_pub, sizeof f);
    return f;
}

/* Short public name of an epoch for error texts: e_pub's first 8 bytes. */
static const char *s_epoch_name(const uint8_t e_pub[S_KEY], char out[17])
{
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < 8; i++) {
        out[2 * i] = hex[e_pub[i] >> 4];
        out[2 * i + 1] = hex[e_pub[i] & 15];
    }
    out[16] = '\0';
    return out;
}

/* out = X25519(priv, pub). Returns -1 (out wiped) if OpenSSL refuses or the
 * result is all zeros: pub is a low-order point. */
static int s_dh(EVP_PKEY *priv, const uint8_t pub[S_KEY], uint8_t out[S_KEY])
{
    int rc = -1;
    size_t n = S_KEY;
    EVP_PKEY *peer = EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, NULL, pub, S_KEY);
    EVP_PKEY_CTX *pctx = EVP_PKEY_CTX_new_from_pkey(NULL, priv, NULL);
    if (!peer || !pctx || EVP_PKEY_derive_init(pctx) <= 0)
        abort(); /* only on OOM or a broken OpenSSL install */
    /* OpenSSL itself refuses an all-zero result; the memcmp below is the
     * check this module relies on, whatever the library version does. */
    if (EVP_PKEY_derive_set_peer(pctx, peer) <= 0 || EVP_PKEY_derive(pctx, out, &n) <= 0 ||
        n != S_KEY || CRYPTO_memcmp(out, s_zero, S_KEY) == 0)
        goto out;
    rc = 0;
out:
    if (rc < 0) {
        OPENSSL_cleanse(out, S_KEY);
        ERR_clear_error();
    }
    EVP_PKEY_CTX_free(pctx);
    EVP_PKEY_free(peer);
    return rc;
}

/* key = HKDF-SHA256(salt, es || ss, sender_pub || receiver_pub || e_pub). */
static void s_hkdf(cohort_seal_t *self, const uint8_t es[S_KEY], const uint8_t sender_pub[S_KEY],
                   const uint8_t receiver_pub[S_KEY], const uint8_t e_pub[S_KEY],
                   uint8_t key[S_KEY])
{
    uint8_t ikm[2 * S_KEY];
    uint8_t info[3 * S_KEY];
    unsigned char salt[] = "cohort-seal-v1";
    char digest[] = "SHA256";
    memcpy(ikm, es, S_KEY);
    memcpy(ikm + S_KEY, self->ss, S_KEY);
    memcpy(info, sender_pub, S_KEY);
    memcpy(info + S_KEY, receiver_pub, S_KEY);
    memcpy(info + 2 * S_KEY, e_pub, S_KEY);
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, digest, 0),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, ikm, sizeof ikm),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, salt, sizeof salt - 1),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, info, sizeof info),
        OSSL_PARAM_construct_end(),
    };
    EVP_KDF_CTX *kctx = EVP_KDF_CTX_new(self->hkdf);
    if (!kctx || EVP_KDF_derive(kctx, key, S_KEY, params) <= 0)
        abort();            /* only on OOM or a broken OpenSSL install */
    EVP_KDF_CTX_free(kctx); /* wipes its copy of the ikm */
    OPENSSL_cleanse(ikm, sizeof ikm);
}

/* Derives the epoch key for e_pub. The DH is X25519(dh_priv, dh_pub): the
 * sender passes (e, peer static), the receiver (own static, e_pub). Returns
 * -1 if that DH is refused (low-order point). */
static int s_derive(cohort_seal_t *self, EVP_PKEY *dh_priv, const uint8_t dh_pub[S_KEY],
                    const uint8_t sender_pub[S_KEY], const uint8_t receiver_pub[S_KEY],
                    const uint8_t e_pub[S_KEY], uint8_t key[S_KEY])
{
    uint8_t es[S_KEY];
    if (s_dh(dh_priv, dh_pub, es) < 0)
        return -1;
    s_hkdf(self, es, sender_pub, receiver_pub, e_pub, key);
    OPENSSL_cleanse(es, sizeof es);
    return 0;
}

static void s_nonce(uint64_t counter, uint8_t nonce[S_NONCE_LEN])
{
    memset(nonce, 0, 4);
    s_put_be64(nonce + 4, counter);
}

/* Feeds the AAD: the caller's routing header, then the frame header. */
static void s_aad(EVP_CIPHER_CTX *ctx, const uint8_t *aad, size_t aad_len, const uint8_t *header)
{
    int n;
    if ((aad_len > 0 && EVP_CipherUpdate(ctx, NULL, &n, aad, (int)aad_len) <= 0) ||
        EVP_CipherUpdate(ctx, NULL, &n, header, COHORT_SEAL_HEADER_LEN) <= 0)
        abort(); /* lengths are checked: only on a broken OpenSSL install */
}

/* Encrypts frame[HEADER .. HEADER + len) from plain and writes the tag after
 * it. frame already holds the header. */
static void s_encrypt(cohort_seal_t *self, const uint8_t *aad, size_t aad_len, uint8_t *frame,
                      const uint8_t *plain, size_t len)
{
    uint8_t nonce[S_NONCE_LEN];
    uint8_t *ct = frame + COHORT_SEAL_HEADER_LEN;
    int n = 0, fin = 0;
    s_nonce(s_get_be64(frame + S_OFF_COUNTER), nonce);
    if (EVP_EncryptInit_ex2(self->ctx, self->aead, self->tx_key, nonce, NULL) <= 0)
        abort();
    s_aad(self->ctx, aad, aad_len, frame);
    if ((len > 0 && EVP_EncryptUpdate(self->ctx, ct, &n, plain, (int)len) <= 0) ||
        EVP_EncryptFinal_ex(self->ctx, ct + n, &fin) <= 0 || (size_t)n + (size_t)fin != len ||
        EVP_CIPHER_CTX_ctrl(self->ctx, EVP_CTRL_AEAD_GET_TAG, COHORT_SEAL_TAG_LEN, ct + len) <= 0)
        abort();
}

/* Decrypts the ciphertext of frame (len bytes of it) into plain; true if
 * the tag verified. plain holds garbage otherwise. */
static bool s_decrypt(cohort_seal_t *self, const uint8_t key[S_KEY], const uint8_t *aad,
                      size_t aad_len, const uint8_t *frame, size_t len, uint8_t *plain)
{
    uint8_t nonce[S_NONCE_LEN];
    uint8_t tag[COHORT_SEAL_TAG_LEN]; /* the ctrl takes a non-const pointer */
    const uint8_t *ct = frame + COHORT_SEAL_HEADER_LEN;
    int n = 0, fin = 0;
    s_nonce(s_get_be64(frame + S_OFF_COUNTER), nonce);
    memcpy(tag, ct + len, sizeof tag);
    if (EVP_DecryptInit_ex2(self->ctx, self->aead, key, nonce, NULL) <= 0 ||
        EVP_CIPHER_CTX_ctrl(self->ctx, EVP_CTRL_AEAD_SET_TAG, sizeof tag, tag) <= 0)
        abort();
    s_aad(self->ctx, aad, aad_len, frame);
    if (len > 0 && EVP_DecryptUpdate(self->ctx, plain, &n, ct, (int)len) <= 0)
        abort();
    bool ok = EVP_DecryptFinal_ex(self->ctx, plain + n, &fin) > 0;
    ERR_clear_error();
    return ok;
}

cohort_seal_t *cohort_seal_new(const uint8_t my_secret[COHORT_SEAL_KEY_LEN],
                               const uint8_t my_public[COHORT_SEAL_KEY_LEN],
                               const uint8_t peer_public[COHORT_SEAL_KEY_LEN])
{
    assert(my_secret && my_public && peer_public);
    cohort_seal_t *self = cohort_calloc(1, sizeof *self);
    self->aead = EVP_CIPHER_fetch(NULL, "ChaCha20-Poly1305", NULL);
    self->hkdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
    self->ctx = EVP_CIPHER_CTX_new();
    self->my_key = EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, NULL, my_secret, S_KEY);
    if (!self->aead || !self->hkdf || !self->ctx || !self->my_key) {
        fprintf(stderr, "cohort: seal: OpenSSL lacks ChaCha20-Poly1305, HKDF or X25519\n");
        abort(); /* OOM or a provider without them (FIPS-only): nothing to seal with */
    }
    uint8_t derived[S_KEY];
    size_t n = S_KEY;
    if (EVP_PKEY_get_raw_public_key(self->my_key, derived, &n) <= 0 || n != S_KEY)
        abort();
    assert(memcmp(derived, my_public, S_KEY) == 0 && "my_public must belong to my_secret");
    memcpy(self->my_pub, my_public, S_KEY);
    memcpy(self->peer_pub, peer_public, S_KEY);
    self->epoch_frames = COHORT_SEAL_EPOCH_FRAMES;
    /* Sealing to ourselves would let a relay reflect our frames back to us. */
    if (memcmp(my_public, peer_public, S_KEY) == 0)
        self->unusable = "the peer's static key is our own";
    else if (s_dh(self->my_key, peer_public, self->ss) < 0)
        self->unusable = "the peer's static key is a low-order point";
    return self;
}

void cohort_seal_destroy(cohort_seal_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    cohort_seal_t *self = *self_p;
    EVP_PKEY_free(self->my_key); /* wipes the private key */
    EVP_CIPHER_CTX_free(self->ctx);
    EVP_CIPHER_free(self->aead);
    EVP_KDF_free(self->hkdf);
    cohort_free_secret(self, sizeof *self); /* ss, tx_key, rx keys */
    *self_p = NULL;
}

void cohort_seal_rekey(cohort_seal_t *self)
{
    assert(self);
    OPENSSL_cleanse(self->tx_key, sizeof self->tx_key);
    self->tx_live = false;
}

void cohort_seal_set_epoch_frames(cohort_seal_t *self, uint32_t frames)
{
    assert(self);
    assert(frames >= 1 && frames <= COHORT_SEAL_EPOCH_FRAMES);
    self->epoch_frames = frames;
}

void cohort_seal_stats(const cohort_seal_t *self, cohort_seal_stats_t *stats)
{
    assert(self && stats);
    *stats = self->stats;
    stats->epochs_cached = 0;
    for (size_t i = 0; i < COHORT_SEAL_EPOCH_CACHE; i++)
        stats->epochs_cached += self->rx[i].used;
}

const char *cohort_seal_result_name(cohort_seal_result_t r)
{
    switch (r) {
    case COHORT_SEAL_OK:
        return "ok";
    case COHORT_SEAL_MALFORMED:
        return "malformed";
    case COHORT_SEAL_VERSION:
        return "version";
    case COHORT_SEAL_AUTH:
        return "auth";
    case COHORT_SEAL_REPLAY:
        return "replay";
    case COHORT_SEAL_WEAK_KEY:
        return "weak_key";
    }
    return "unknown";
}

/* A fresh ephemeral key: derive its epoch key, then forget it. */
static int s_start_epoch(cohort_seal_t *self, cohort_err_t *err)
{
    EVP_PKEY *e = EVP_PKEY_Q_keygen(NULL, NULL, "X25519");
    size_t n = S_KEY;
    if (!e || EVP_PKEY_get_raw_public_key(e, self->tx_epub, &n) <= 0 || n != S_KEY)
        abort(); /* only on OOM or a broken OpenSSL install */
    /* Cannot fail once new() accepted the peer key (a clamped scalar sends
     * only low-order points to zero); checked anyway. */
    int rc = s_derive(self, e, self->peer_pub, self->my_pub, self->peer_pub, self->tx_epub,
                      self->tx_key);
    EVP_PKEY_free(e); /* wipes e_priv */
    if (rc < 0)
        return cohort_err_set(err, "seal: wrap: X25519 with the peer's static key gave zero");
    self->tx_live = true;
    self->tx_counter = 0;
    self->stats.epochs_started++;
    return 0;
}

int cohort_seal_wrap(cohort_seal_t *self, const uint8_t *aad, size_t aad_len, const uint8_t *plain,
                     size_t len, uint8_t **out, size_t *out_len, cohort_err_t *err)
{
    assert(self && out && out_len);
    assert(plain || len == 0);
    assert(aad || aad_len == 0);
    *out = NULL;
    *out_len = 0;
    if (len > COHORT_SEAL_MAX_PLAIN)
        return cohort_err_set(err, "seal: wrap: payload of %zu bytes exceeds the limit of %u", len,
                              COHORT_SEAL_MAX_PLAIN);
    if (aad_len > COHORT_SEAL_MAX_AAD)
        return cohort_err_set(err,
                              "seal: wrap: routing header of %zu bytes exceeds the limit of %u",
                              aad_len, COHORT_SEAL_MAX_AAD);
    if (self->unusable)
        return cohort_err_set(err, "seal: wrap: %s", self->unusable);
    if (!self->tx_live || self->tx_counter >= self->epoch_frames) {
        if (s_start_epoch(self, err) < 0)
            return -1;
    }
    size_t total = len + COHORT_SEAL_OVERHEAD;
    uint8_t *frame = cohort_malloc(total);
    frame[0] = COHORT_SEAL_WIRE_VERSION;
    memcpy(frame + S_OFF_EPUB, self->tx_epub, S_KEY);
    s_put_be64(frame + S_OFF_COUNTER, ++self->tx_counter);
    s_encrypt(self, aad, aad_len, frame, plain, len);
    self->stats.sealed++;
    *out = frame;
    *out_len = total;
    return 0;
}

static s_epoch_t *s_find(cohort_seal_t *self, const uint8_t e_pub[S_KEY])
{
    for (size_t i = 0; i < COHORT_SEAL_EPOCH_CACHE; i++) {
        if (self->rx[i].used && memcmp(self->rx[i].e_pub, e_pub, S_KEY) == 0)
            return &self->rx[i];
    }
    return NULL;
}

static bool s_is_retired(const cohort_seal_t *self, const uint8_t e_pub[S_KEY])
{
    uint64_t f = s_fingerprint(e_pub);
    for (size_t i = 0; i < self->retired_count; i++) {
        if (self->retired[i] == f)
            return true;
    }
    return false;
}

static bool s_seen(const s_epoch_t *ep, uint64_t back)
{
    return (ep->seen[back / 64] >> (back % 64)) & 1;
}

/* Checks counter against the epoch's window without changing it. */
static cohort_seal_result_t s_window_check(const s_epoch_t *ep, uint64_t counter, cohort_err_t *err)
{
    char name[17];
    if (counter > ep->top)
        return COHORT_SEAL_OK;
    uint64_t back = ep->top - counter;
    if (back >= COHORT_SEAL_WINDOW) {
        cohort_err_set(err,
                       "seal: open: replay: counter %llu in epoch %s is older than the window "
                       "(newest %llu, window %d)",
                       (unsigned long long)counter, s_epoch_name(ep->e_pub, name),
                       (unsigned long long)ep->top, COHORT_SEAL_WINDOW);
        return COHORT_SEAL_REPLAY;
    }
    if (s_seen(ep, back)) {
        cohort_err_set(err, "seal: open: replay: counter %llu in epoch %s was already accepted",
                       (unsigned long long)counter, s_epoch_name(ep->e_pub, name));
        return COHORT_SEAL_REPLAY;
    }
    return COHORT_SEAL_OK;
}

/* Marks counter accepted (s_window_check said OK), sliding if it is new. */
static void s_window_mark(s_epoch_t *ep, uint64_t counter)
{
    if (counter > ep->top) {
        uint64_t shift = counter - ep->top;
        if (shift >= COHORT_SEAL_WINDOW) {
            ep->seen[0] = ep->seen[1] = 0;
        } else if (shift >= 64) {
            ep->seen[1] = ep->seen[0] << (shift - 64);
            ep->seen[0] = 0;
        } else {
            ep->seen[1] = (ep->seen[1] << shift) | (ep->seen[0] >> (64 - shift));
            ep->seen[0] <<= shift;
        }
        ep->top = counter;
    }
    uint64_t back = ep->top - counter;
    ep->seen[back / 64] |= (uint64_t)1 << (back % 64);
}

/* Caches an epoch whose first frame just authenticated, evicting the oldest
 * (and remembering it as retired) when the cache is full. */
static void s_admit(cohort_seal_t *self, const uint8_t e_pub[S_KEY], const uint8_t key[S_KEY],
                    uint64_t counter)
{
    s_epoch_t *slot = NULL;
    for (size_t i = 0; i < COHORT_SEAL_EPOCH_CACHE && !slot; i++) {
        if (!self->rx[i].used)
            slot = &self->rx[i];
    }
    if (!slot) {
        slot = &self->rx[0];
        for (size_t i = 1; i < COHORT_SEAL_EPOCH_CACHE; i++) {
            if (self->rx[i].admitted < slot->admitted)
                slot = &self->rx[i];
        }
        self->retired[self->retired_next] = s_fingerprint(slot->e_pub);
        self->retired_next = (self->retired_next + 1) % COHORT_SEAL_RETIRED;
        if (self->retired_count < COHORT_SEAL_RETIRED)
            self->retired_count++;
        self->stats.epochs_retired++;
        OPENSSL_cleanse(slot, sizeof *slot);
    }
    slot->used = true;
    memcpy(slot->e_pub, e_pub, S_KEY);
    memcpy(slot->key, key, S_KEY);
    slot->top = counter;
    slot->seen[0] = 1;
    slot->seen[1] = 0;
    slot->admitted = ++self->rx_admissions;
    self->stats.epochs_admitted++;
}

static cohort_seal_result_t s_open(cohort_seal_t *self, const uint8_t *aad, size_t aad_len,
                                   const uint8_t *in, size_t len, uint8_t **plain,
                                   size_t *plain_len, cohort_err_t *err)
{
    char name[17];
    if (len == 0) {
        cohort_err_set(err, "seal: open: empty frame");
        return COHORT_SEAL_MALFORMED;
    }
    if (in[0] != COHORT_SEAL_WIRE_VERSION) {
        cohort_err_set(err, "seal: open: version %u is not supported (expected %d)", in[0],
                       COHORT_SEAL_WIRE_VERSION);
        return COHORT_SEAL_VERSION;
    }
    if (len < COHORT_SEAL_OVERHEAD) {
        cohort_err_set(err, "seal: open: truncated: %zu bytes, a sealed frame has at least %d", len,
                       COHORT_SEAL_OVERHEAD);
        return COHORT_SEAL_MALFORMED;
    }
    size_t ct_len = len - COHORT_SEAL_OVERHEAD;
    if (ct_len > COHORT_SEAL_MAX_PLAIN) {
        cohort_err_set(err, "seal: open: payload of %zu bytes exceeds the limit of %u", ct_len,
                       COHORT_SEAL_MAX_PLAIN);
        return COHORT_SEAL_MALFORMED;
    }
    if (aad_len > COHORT_SEAL_MAX_AAD) {
        cohort_err_set(err, "seal: open: routing header of %zu bytes exceeds the limit of %u",
                       aad_len, COHORT_SEAL_MAX_AAD);
        return COHORT_SEAL_MALFORMED;
    }
    if (self->unusable) {
        cohort_err_set(err, "seal: open: %s", self->unusable);
        return COHORT_SEAL_WEAK_KEY;
    }
    const uint8_t *e_pub = in + S_OFF_EPUB;
    uint64_t counter = s_get_be64(in + S_OFF_COUNTER);
    s_epoch_name(e_pub, name);
    if (counter == 0) {
        cohort_err_set(err, "seal: open: counter 0 in epoch %s (counters start at 1)", name);
        return COHORT_SEAL_MALFORMED;
    }

    /* Cheap refusals first; nothing changes until the tag verified. */
    uint8_t fresh_key[S_KEY];
    const uint8_t *key;
    s_epoch_t *ep = s_find(self, e_pub);
    if (ep) {
        cohort_seal_result_t r = s_window_check(ep, counter, err);
        if (r != COHORT_SEAL_OK)
            return r;
        key = ep->key;
    } else {
        if (s_is_retired(self, e_pub)) {
            cohort_err_set(err, "seal: open: replay: epoch %s was retired from the cache", name);
            return COHORT_SEAL_REPLAY;
        }
        if (s_derive(self, self->my_key, e_pub, self->peer_pub, self->my_pub, e_pub, fresh_key) <
            0) {
            cohort_err_set(err, "seal: open: epoch %s: e_pub is a low-order point", name);
            return COHORT_SEAL_WEAK_KEY;
        }
        key = fresh_key;
    }

    uint8_t *buf = cohort_malloc(ct_len);
    if (!s_decrypt(self, key, aad, aad_len, in, ct_len, buf)) {
        OPENSSL_cleanse(fresh_key, sizeof fresh_key);
        cohort_free_secret(buf, ct_len);
        cohort_err_set(err,
                       "seal: open: authentication failed (epoch %s, counter %llu): frame or "
                       "routing header modified, or not sealed by this peer for us",
                       name, (unsigned long long)counter);
        return COHORT_SEAL_AUTH;
    }
    if (ep)
        s_window_mark(ep, counter);
    else
        s_admit(self, e_pub, fresh_key, counter);
    OPENSSL_cleanse(fresh_key, sizeof fresh_key);
    *plain = buf;
    *plain_len = ct_len;
    return COHORT_SEAL_OK;
}

cohort_seal_result_t cohort_seal_open(cohort_seal_t *self, const uint8_t *aad, size_t aad_len,
                                      const uint8_t *in, size_t len, uint8_t **plain,
                                      size_t *plain_len, cohort_err_t *err)
{
    assert(self && plain && plain_len);
    assert(in || len == 0);
    assert(aad || aad_len == 0);
    *plain = NULL;
    *plain_len = 0;
    cohort_err_clear(err);
    cohort_seal_result_t r = s_open(self, aad, aad_len, in, len, plain, plain_len, err);
    if (r == COHORT_SEAL_OK)
        self->stats.opened++;
    else
        self->stats.refused[r]++;
    return r;
}
