/*
 * seal: end-to-end sealing of frames between two cluster members, so that a
 * relay (or anyone else on the path) reads only the routing header and can
 * neither read, forge, modify nor replay the payload.
 *
 * Each member has a static X25519 identity key; the roster (CA-signed) gives
 * each side the other's public half in advance. The construction is Noise
 * pattern K in spirit (one-way, sender and receiver statics known):
 *
 *   Sender A, once per epoch, makes a fresh ephemeral key pair e, then
 *     ikm = X25519(e_priv, B_pub) || X25519(A_priv, B_pub)
 *     key = HKDF-SHA256(salt = "cohort-seal-v1", ikm,
 *                       info = A_pub || B_pub || e_pub), 32 bytes
 *   and forgets e_priv. Receiver B computes the same ikm as
 *     X25519(B_priv, e_pub) || X25519(B_priv, A_pub).
 *   A DH result of all zeros (a low-order point) is refused.
 *
 *   Sealed frame (opaque bytes to whatever carries it):
 *     version (1, = COHORT_SEAL_WIRE_VERSION) | e_pub (32) | counter (8, big-endian)
 *     | ciphertext (same length as the payload) | tag (16)
 *   AEAD: ChaCha20-Poly1305 (RFC 8439), nonce = 4 zero bytes || counter,
 *   AAD = the caller's routing header || the first 41 bytes of the frame.
 *   The routing header is authenticated, not encrypted, and is not part of the
 *   sealed bytes: both ends pass the same header bytes separately.
 *
 *   The counter runs 1, 2, 3... within an epoch; the sender starts a new
 *   epoch (new e) after COHORT_SEAL_EPOCH_FRAMES frames or when the caller
 *   calls cohort_seal_rekey. info binds both identities and the direction, so
 *   a frame cannot be reflected back to its sender or opened by a third
 *   member, and the raw e_pub bytes (X25519 ignores the top bit, so two
 *   encodings share a DH result) each give a different key.
 *
 * Replay: the receiver keeps up to COHORT_SEAL_EPOCH_CACHE epochs it has
 * seen, each with its key and a sliding window of COHORT_SEAL_WINDOW
 * counters: a counter already accepted, or older than the window, is refused;
 * reordering within the window is accepted. An epoch enters the cache only
 * after one of its frames authenticated, so a flood of forged e_pubs costs
 * CPU (one X25519 and HKDF each) but neither memory nor the eviction of a
 * genuine epoch. When a new epoch evicts the oldest, the old one's e_pub is
 * remembered in a ring of COHORT_SEAL_RETIRED fingerprints and its frames
 * are refused as replays from then on.
 *
 * Limits (deliberate; see also DESIGN.md "Links and the fallback ladder"):
 * - K is one-way: the receiver cannot order epochs. A frame of an epoch that
 *   was retired more than COHORT_SEAL_RETIRED epochs ago, or that was sent
 *   before this receiver object was created (e.g. before the node restarted),
 *   would open again. So the caller must carry the session's (stream, seq)
 *   inside the sealed payload, where the session layer drops duplicates;
 *   this module does not promise more.
 * - Forward secrecy is one-sided, as in any one-way pattern. Whoever steals
 *   B's static key can read every recorded frame ever sealed to B (e_pub is
 *   in the clear) and forge frames "from A" to B (key-compromise
 *   impersonation). Stealing A's static key alone reveals nothing already
 *   sent: the ephemeral half is gone. Rekeying bounds what one stolen epoch
 *   key (from memory) reveals, and the nonce budget; it does not protect
 *   against theft of B's static key.
 * - No identity, padding or length hiding: the relay sees lengths, the
 *   counter and when epochs change.
 *
 * Secrets (static private key, DH outputs, derived keys) are wiped with
 * OPENSSL_cleanse and never logged or put in error texts. A seal object
 * serves one pair of members in both directions; it is not thread safe (one
 * belongs to one actor). It owns no sockets and does not frame or route.
 */
#ifndef COHORT_OVERLAY_SEAL_H
#define COHORT_OVERLAY_SEAL_H

#include "util/err.h"

#include <stddef.h>
#include <stdint.h>

#define COHORT_SEAL_WIRE_VERSION 1
#define COHORT_SEAL_KEY_LEN 32
/* version | e_pub | counter, authenticated as AAD, readable by the relay */
#define COHORT_SEAL_HEADER_LEN (1 + 32 + 8)
#define COHORT_SEAL_TAG_LEN 16
#define COHORT_SEAL_OVERHEAD (1 + 32 + 8 + 16)
/* Largest payload wrap accepts and open expects; checked before allocating. */
#define COHORT_SEAL_MAX_PLAIN (256u * 1024 * 1024)
/* Largest routing header (AAD); routing headers are a few names long. */
#define COHORT_SEAL_MAX_AAD (64u * 1024)
/* Frames per sender epoch before a new ephemeral key is made. */
#define COHORT_SEAL_EPOCH_FRAMES (1u << 20)
/* Receiver: live epochs kept (keys and windows), oldest evicted first. */
#define COHORT_SEAL_EPOCH_CACHE 4
/* Receiver: counters per epoch the replay window spans. */
#define COHORT_SEAL_WINDOW 128
/* Receiver: evicted epochs still refused as replays (8 bytes each). */
#define COHORT_SEAL_RETIRED 1024

typedef struct cohort_seal cohort_seal_t;

/* What cohort_seal_open decided. Every refusal also sets a detail text. */
typedef enum {
    /* Authentic, fresh and in the window: *plain holds the payload. */
    COHORT_SEAL_OK = 0,
    /* Not a frame: shorter than COHORT_SEAL_OVERHEAD (truncated), over the
     * size limits, or counter 0 (never sent). */
    COHORT_SEAL_MALFORMED,
    /* The version byte is not COHORT_SEAL_WIRE_VERSION (checked before length, as
     * another version may lay the frame out differently). */
    COHORT_SEAL_VERSION,
    /* The tag did not verify: frame or routing header modified, or sealed by
     * someone other than the expected peer, or for someone else. A wrong peer
     * cannot be told apart from tampering (the frame names no sender). */
    COHORT_SEAL_AUTH,
    /* The counter was already accepted in its epoch, is older than the
     * window, or the epoch was retired from the cache. */
    COHORT_SEAL_REPLAY,
    /* A key is unusable: the frame's e_pub or the peer's static key is a
     * low-order point (X25519 result all zeros), or the peer's static key is
     * our own (frames could be reflected). */
    COHORT_SEAL_WEAK_KEY,
} cohort_seal_result_t;

typedef struct cohort_seal_stats {
    uint64_t sealed;          /* frames wrapped */
    uint64_t epochs_started;  /* sender epochs (ephemeral keys) made */
    uint64_t opened;          /* frames opened OK */
    uint64_t refused[6];      /* open refusals, indexed by cohort_seal_result_t */
    uint64_t epochs_admitted; /* receiver epochs that authenticated and were cached */
    uint64_t epochs_retired;  /* receiver epochs evicted from the cache */
    size_t epochs_cached;     /* receiver epochs cached now, <= COHORT_SEAL_EPOCH_CACHE */
} cohort_seal_stats_t;

/* Creates the seal for frames between us (my_secret, my_public: raw X25519
 * halves of our identity key; they must match, a programmer error otherwise)
 * and one peer (peer_public, raw, from the roster). The keys are copied;
 * the caller keeps and wipes its my_secret. A peer key that is low-order or
 * equal to ours does not fail here: wrap then fails and open returns
 * COHORT_SEAL_WEAK_KEY. Never returns NULL. Caller owns the result
 * (cohort_seal_destroy). */
cohort_seal_t *cohort_seal_new(const uint8_t my_secret[COHORT_SEAL_KEY_LEN],
                               const uint8_t my_public[COHORT_SEAL_KEY_LEN],
                               const uint8_t peer_public[COHORT_SEAL_KEY_LEN]);

/* Wipes every key and frees the seal. NULL and *self_p == NULL are fine;
 * sets *self_p to NULL. */
void cohort_seal_destroy(cohort_seal_t **self_p);

/* Seals len bytes of plain (NULL if len is 0) for the peer, authenticating
 * aad_len bytes of aad (the routing header; NULL if aad_len is 0). Starts a
 * new epoch first if none is running or the current one is used up. On
 * success returns 0 and *out (caller owns, free()) holds *out_len =
 * len + COHORT_SEAL_OVERHEAD bytes. Returns -1 with err set, *out NULL, if
 * len > COHORT_SEAL_MAX_PLAIN, aad_len > COHORT_SEAL_MAX_AAD (checked before
 * allocating) or the peer key is unusable. */
int cohort_seal_wrap(cohort_seal_t *self, const uint8_t *aad, size_t aad_len, const uint8_t *plain,
                     size_t len, uint8_t **out, size_t *out_len, cohort_err_t *err);

/* Opens len bytes of a sealed frame from the peer (in, from outside: any
 * bytes are safe), given the same routing header the sender authenticated.
 * On COHORT_SEAL_OK, *plain (caller owns, free(); never NULL, even for an
 * empty payload) holds *plain_len bytes and the counter is marked used.
 * Otherwise *plain is NULL, *plain_len 0, err says why, and nothing changed:
 * a forged frame does not use up the genuine frame's counter. */
cohort_seal_result_t cohort_seal_open(cohort_seal_t *self, const uint8_t *aad, size_t aad_len,
                                      const uint8_t *in, size_t len, uint8_t **plain,
                                      size_t *plain_len, cohort_err_t *err);

/* Ends the sender's current epoch: its key is wiped and the next wrap makes a
 * new ephemeral key. The node calls this periodically, so that the epoch key
 * held in memory opens only recent frames. Receiving state is not touched. */
void cohort_seal_rekey(cohort_seal_t *self);

/* Lowers the frames per sender epoch (1..COHORT_SEAL_EPOCH_FRAMES, the
 * default); takes effect at the next wrap. For the node's policy and tests. */
void cohort_seal_set_epoch_frames(cohort_seal_t *self, uint32_t frames);

/* Copies the counters into *stats. */
void cohort_seal_stats(const cohort_seal_t *self, cohort_seal_stats_t *stats);

/* "ok", "malformed", "version", "auth", "replay", "weak_key"; "unknown" for
 * anything else. Static string. */
const char *cohort_seal_result_name(cohort_seal_result_t r);

#endif
