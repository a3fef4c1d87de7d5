/*
 * Roster sync tests: four real nodes in one process; an admin pushes a new
 * signed roster to one of them (libcohort's cohort_roster_push, what the
 * API's RosterPush calls) and the whole cluster obeys: revoked and removed
 * members lose every link everywhere, new ones join, refusals change
 * nothing anywhere, and a node that was away catches up from a peer.
 */
#include "testutil.h"

#include "api.pb-c.h"
#include "cluster.h"
#include "cohort.h"
#include "node/identity.h"
#include "pki/cert.h"
#include "pki/key.h"
#include "roster/roster.h"
#include "util/fs.h"
#include "util/mem.h"

#include <czmq.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

enum { ALPHA, BETA, GAMMA, DELTA, COUNT };

static const cluster_member_t s_members[COUNT] = {
    {.name = "alpha", .site = "hq", .run = true},
    {.name = "beta", .site = "hq", .run = true},
    {.name = "gamma", .site = "plant", .run = true},
    {.name = "delta", .site = "plant", .run = true},
};

#define S_WAIT_MS 5000 /* every node has a pushed roster within this */

typedef struct {
    cluster_t *c;
    char *text; /* the roster every node started with */
    size_t len;
    uint64_t serial;
} fixture_t;

/* ---- looking at a node ---- */

typedef struct {
    uint64_t serial;
    uint32_t peers_total, peers_up;
    uint64_t handshakes_refused, unknown_sender;
} s_status_t;

static s_status_t s_status(cohort_t *node)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    assert_int_equal(cohort_info(node, "status", &buf, &len), COHORT_OK);
    Cohort__Api__Response *resp = cohort__api__response__unpack(NULL, len, buf);
    assert_non_null(resp);
    s_status_t st = {
        .serial = resp->status_info->roster_serial,
        .peers_total = resp->status_info->peers_total,
        .peers_up = resp->status_info->peers_up,
        .handshakes_refused = resp->status_info->counters->handshakes_refused,
        .unknown_sender = resp->status_info->counters->unknown_sender,
    };
    cohort__api__response__free_unpacked(resp, NULL);
    free(buf);
    return st;
}

typedef enum { S_STATE_FIELD, S_SITE_FIELD } s_field_t;

/* A field of peer name on node (its state: "up", "down", ...; its site), or
 * NULL when name is no peer of it at all. Static. */
static const char *s_peer_field(cohort_t *node, const char *name, s_field_t field)
{
    static char state[64];
    uint8_t *buf = NULL;
    size_t len = 0;
    assert_int_equal(cohort_info(node, "peers", &buf, &len), COHORT_OK);
    Cohort__Api__Response *resp = cohort__api__response__unpack(NULL, len, buf);
    assert_non_null(resp);
    const char *found = NULL;
    for (size_t i = 0; i < resp->n_peers && !found; i++)
        if (!strcmp(resp->peers[i]->name, name)) {
            snprintf(state, sizeof state, "%s",
                     field == S_SITE_FIELD ? resp->peers[i]->site : resp->peers[i]->state);
            found = state;
        }
    cohort__api__response__free_unpacked(resp, NULL);
    free(buf);
    return found;
}

static const char *s_peer_state(cohort_t *node, const char *name)
{
    return s_peer_field(node, name, S_STATE_FIELD);
}

static void s_wait_serial(cluster_t *c, int i, uint64_t serial, int ms)
{
    int64_t end = zclock_mono() + ms;
    while (s_status(c->nodes[i]).serial != serial) {
        if (zclock_mono() > end)
            fail_msg("%s holds serial %llu, not %llu, after %d ms", c->members[i].name,
                     (unsigned long long)s_status(c->nodes[i]).serial, (unsigned long long)serial,
                     ms);
        zclock_sleep(20);
    }
}

/* Waits for an event on node; other messages are dropped. */
static void s_wait_event(cohort_t *node, const char *type, const char *who, const char *reason,
                         int ms)
{
    int64_t end = zclock_mono() + ms;
    while (zclock_mono() < end) {
        cohort_msg_t *m = cohort_recv(node, 50);
        bool hit = m && cohort_msg_kind(m) == COHORT_MSG_EVENT &&
                   !strcmp(cohort_msg_subject(m), type) && !strcmp(cohort_msg_sender(m), who) &&
                   (!reason || !strcmp(cohort_msg_error(m), reason));
        cohort_msg_destroy(&m);
        if (hit)
            return;
    }
    fail_msg("no event %s %s reason=%s within %d ms", type, who, reason ? reason : "*", ms);
}

/* Fails if an event of type arrives on node within ms. */
static void s_no_event(cohort_t *node, const char *type, int ms)
{
    int64_t end = zclock_mono() + ms;
    while (zclock_mono() < end) {
        cohort_msg_t *m = cohort_recv(node, 50);
        if (m && cohort_msg_kind(m) == COHORT_MSG_EVENT && !strcmp(cohort_msg_subject(m), type))
            fail_msg("unexpected event %s %s reason=%s", type, cohort_msg_sender(m),
                     cohort_msg_error(m));
        cohort_msg_destroy(&m);
    }
}

/* The roster held in member i's state directory. Caller frees. */
static char *s_held(cluster_t *c, int i, size_t *len)
{
    char *p =
        cohort_sprintf("%s/%s-state/%s", c->dir, c->members[i].name, COHORT_IDENTITY_HELD_ROSTER);
    char *text = NULL;
    cohort_err_t err;
    if (cohort_fs_read(p, COHORT_ROSTER_FILE_MAX, &text, len, &err) < 0)
        fail_msg("%s", err.text);
    free(p);
    return text;
}

static void s_assert_held(cluster_t *c, int i, const char *text, size_t len)
{
    size_t held_len = 0;
    char *held = s_held(c, i, &held_len);
    if (held_len != len || memcmp(held, text, len) != 0)
        fail_msg("%s does not hold the expected roster in its state directory", c->members[i].name);
    free(held);
}

/* ---- making rosters ---- */

typedef enum { S_REVOKE, S_REMOVE, S_SITE, S_RENAME_CLUSTER } s_edit_t;

/* text with one change (which bumps the serial), as emitted. Caller frees. */
static char *s_edit(const char *text, size_t len, s_edit_t what, const char *name, size_t *out_len)
{
    cohort_err_t err;
    cohort_roster_t *r = NULL;
    assert_int_equal(cohort_roster_parse("roster.yaml", text, len, &r, &err), 0);
    switch (what) {
    case S_REVOKE:
        assert_int_equal(cohort_roster_revoke(r, name, "test", &err), 0);
        break;
    case S_REMOVE:
        assert_int_equal(cohort_roster_remove(r, name, &err), 0);
        break;
    case S_SITE:
        assert_int_equal(cohort_roster_set_site(r, name, "elsewhere", &err), 0);
        break;
    case S_RENAME_CLUSTER:
        assert_int_equal(cohort_roster_set_site(r, name, "elsewhere", &err), 0);
        break;
    }
    char *out = NULL;
    assert_int_equal(cohort_roster_emit(r, &out, out_len, &err), 0);
    cohort_roster_destroy(&r);
    if (what == S_RENAME_CLUSTER) {
        assert_int_equal(strncmp(out, "cluster: test\n", 14), 0);
        char *other = cohort_sprintf("cluster: other\n%s", out + 14);
        free(out);
        out = other;
        *out_len = strlen(out);
    }
    return out;
}

static cohort_status_t s_push(cluster_t *c, int i, const char *text, size_t len, const char *sig,
                              cohort_roster_result_t *res)
{
    return cohort_roster_push(c->nodes[i], COHORT_ROSTER_PUSH, text, len, sig,
                              sig ? strlen(sig) : 0, res);
}

static void s_push_ok(cluster_t *c, int i, const char *text, size_t len, uint64_t serial)
{
    char *sig = cluster_sign(c, text, len);
    cohort_roster_result_t res;
    if (s_push(c, i, text, len, sig, &res) != COHORT_OK)
        fail_msg("push to %s refused (%s): %s", c->members[i].name, res.reason, res.error);
    assert_string_equal(res.reason, "");
    assert_int_equal(res.serial, serial);
    free(sig);
}

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof *f);
    f->c = cluster_new(s_members, COUNT);
    cluster_wait_up(f->c, 15000);
    f->text = cluster_roster_text(f->c, &f->len);
    f->serial = s_status(f->c->nodes[ALPHA]).serial;
    /* every node holds the roster it started with (written a moment after
     * start) */
    for (int i = 0; i < COUNT; i++) {
        char *p = cohort_sprintf("%s/%s-state/%s", f->c->dir, f->c->members[i].name,
                                 COHORT_IDENTITY_NEXT_ROSTER);
        char *held = cohort_sprintf("%s/%s-state/%s", f->c->dir, f->c->members[i].name,
                                    COHORT_IDENTITY_HELD_ROSTER);
        for (int k = 0; k < 100 && (!cohort_fs_exists(held) || cohort_fs_exists(p)); k++)
            zclock_sleep(50);
        free(p);
        free(held);
        s_assert_held(f->c, i, f->text, f->len);
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    cluster_destroy(&f->c);
    free(f->text);
    free(f);
    return 0;
}

/* Every node but `except` has applied serial and dropped member `gone`;
 * returns how long that took from `since`. */
static int64_t s_wait_everywhere(cluster_t *c, int except, uint64_t serial, const char *gone,
                                 int64_t since)
{
    int64_t done = since;
    for (int i = 0; i < COUNT; i++) {
        if (i == except || !c->nodes[i])
            continue;
        s_wait_serial(c, i, serial, S_WAIT_MS);
        if (gone && s_peer_state(c->nodes[i], gone))
            fail_msg("%s still has %s as a peer after applying serial %llu", c->members[i].name,
                     gone, (unsigned long long)serial);
        int64_t now = zclock_mono();
        done = now > done ? now : done;
    }
    return done - since;
}

/* ---- revocation and removal ---- */

static void test_revoked_member_loses_every_link_on_every_node(void **state)
{
    fixture_t *f = *state;
    cluster_t *c = f->c;
    /* delta listens, and hears alpha before the change */
    assert_int_equal(cohort_subscribe(c->nodes[DELTA], "news.>"), COHORT_OK);
    unsigned recipients = 0;
    for (int i = 0; i < 100 && recipients == 0; i++) {
        cohort_msg_t *m = cohort_msg_new("news.before", "x", 1);
        assert_int_equal(cohort_publish(c->nodes[ALPHA], &m, &recipients), COHORT_OK);
        zclock_sleep(recipients ? 0 : 50);
    }
    assert_int_equal(recipients, 1);
    cohort_msg_t *got = cluster_next(c, DELTA, 2000);
    assert_non_null(got);
    cohort_msg_destroy(&got);
    /* alpha waits for delta to answer a request, which it never will */
    assert_int_equal(cohort_serve(c->nodes[DELTA], "slow.echo"), COHORT_OK);
    uint64_t rid = 0;
    for (int i = 0; i < 100; i++) {
        cohort_msg_t *req = cohort_msg_new("", "q", 1);
        assert_int_equal(cohort_request_async(c->nodes[ALPHA], "slow.echo", &req, 60000, &rid),
                         COHORT_OK);
        cohort_msg_t *at_delta = cluster_next(c, DELTA, 300);
        if (at_delta) {
            assert_int_equal(cohort_msg_kind(at_delta), COHORT_MSG_REQUEST);
            cohort_msg_destroy(&at_delta);
            break;
        }
        cohort_msg_t *no = cluster_next(c, ALPHA, 100); /* no responders yet */
        cohort_msg_destroy(&no);
        rid = 0;
    }
    assert_true(rid != 0);
    uint64_t refused_before[COUNT];
    for (int i = 0; i < COUNT; i++)
        refused_before[i] = s_status(c->nodes[i]).handshakes_refused;

    size_t len = 0;
    char *text = s_edit(f->text, f->len, S_REVOKE, "delta", &len);
    int64_t t0 = zclock_mono();
    s_push_ok(c, ALPHA, text, len, f->serial + 1);
    /* the request fails at once, not after its 60 s */
    cohort_msg_t *reply = cluster_next(c, ALPHA, 2000);
    assert_non_null(reply);
    assert_int_equal(cohort_msg_kind(reply), COHORT_MSG_REPLY);
    assert_int_equal(cohort_msg_request_id(reply), rid);
    assert_int_equal(cohort_msg_status(reply), COHORT_NO_RESPONDERS);
    assert_non_null(strstr(cohort_msg_error(reply), "'delta' is no longer admitted (revoked)"));
    cohort_msg_destroy(&reply);
    int64_t took = s_wait_everywhere(c, DELTA, f->serial + 1, "delta", t0);
    print_message("revocation applied on 3 nodes, delta cut off everywhere, in %lld ms\n",
                  (long long)took);
    for (int i = ALPHA; i <= GAMMA; i++) {
        s_wait_event(c->nodes[i], "member.revoked", "delta", "revoked", 2000);
        s_assert_held(c, i, text, len);
        assert_int_equal(s_status(c->nodes[i]).peers_total, 2);
    }
    /* delta keeps trying and is refused at the handshake, everywhere */
    for (int i = ALPHA; i <= GAMMA; i++) {
        int64_t end = zclock_mono() + S_WAIT_MS;
        while (s_status(c->nodes[i]).handshakes_refused <= refused_before[i]) {
            if (zclock_mono() > end)
                fail_msg("%s never refused delta's handshake", c->members[i].name);
            zclock_sleep(50);
        }
    }
    /* delta never applied it (it does not admit delta) and holds the old one */
    assert_int_equal(s_status(c->nodes[DELTA]).serial, f->serial);
    s_assert_held(c, DELTA, f->text, f->len);
    /* it receives nothing: not sent to, not published to */
    cohort_msg_t *m = cohort_msg_new("x", "hello", 5);
    assert_int_equal(cohort_send(c->nodes[ALPHA], "delta", &m, 0), COHORT_UNKNOWN_NODE);
    m = cohort_msg_new("news.after", "x", 1);
    assert_int_equal(cohort_publish(c->nodes[ALPHA], &m, &recipients), COHORT_OK);
    assert_int_equal(recipients, 0);
    /* and what it sends reaches nobody */
    assert_int_equal(cohort_subscribe(c->nodes[BETA], "from.>"), COHORT_OK);
    m = cohort_msg_new("from.delta", "x", 1);
    cohort_send(c->nodes[DELTA], "beta", &m, 0);
    assert_null(cluster_next(c, DELTA, 1000));
    assert_null(cluster_next(c, BETA, 500));
    /* delta sees every link go: no peer of it stays up */
    int64_t end = zclock_mono() + 10000;
    while (s_status(c->nodes[DELTA]).peers_up > 0) {
        if (zclock_mono() > end)
            fail_msg("delta still has %u peers up", s_status(c->nodes[DELTA]).peers_up);
        zclock_sleep(100);
    }
    /* the others keep working */
    assert_int_equal(cohort_subscribe(c->nodes[GAMMA], "ok.>"), COHORT_OK);
    for (int i = 0; i < 100; i++) {
        m = cohort_msg_new("ok.still", "x", 1);
        assert_int_equal(cohort_publish(c->nodes[ALPHA], &m, &recipients), COHORT_OK);
        if (recipients)
            break;
        zclock_sleep(50);
    }
    assert_int_equal(recipients, 1);
    assert_non_null((got = cluster_next(c, GAMMA, 2000)));
    cohort_msg_destroy(&got);
    free(text);
}

static void test_removed_member_is_cut_off_like_a_revoked_one(void **state)
{
    fixture_t *f = *state;
    cluster_t *c = f->c;
    uint64_t refused = s_status(c->nodes[BETA]).handshakes_refused;
    size_t len = 0;
    char *text = s_edit(f->text, f->len, S_REMOVE, "delta", &len);
    s_push_ok(c, BETA, text, len, f->serial + 1);
    s_wait_everywhere(c, DELTA, f->serial + 1, "delta", zclock_mono());
    for (int i = ALPHA; i <= GAMMA; i++)
        s_wait_event(c->nodes[i], "member.removed", "delta", "removed", 2000);
    int64_t end = zclock_mono() + S_WAIT_MS;
    while (s_status(c->nodes[BETA]).handshakes_refused <= refused) {
        if (zclock_mono() > end)
            fail_msg("beta never refused delta's handshake");
        zclock_sleep(50);
    }
    cohort_msg_t *m = cohort_msg_new("x", "hello", 5);
    assert_int_equal(cohort_send(c->nodes[GAMMA], "delta", &m, 0), COHORT_UNKNOWN_NODE);
    free(text);
}

/* ---- admission ---- */

static void test_added_member_joins_once_the_roster_admits_it(void **state)
{
    fixture_t *f = *state;
    cluster_t *c = f->c;
    const cluster_member_t zeta_m = {.name = "zeta", .site = "hq", .run = true};
    int zeta = cluster_add_member(c, &zeta_m, "roster2.yaml");
    cohort_err_t err;
    cohort_roster_t *r = NULL;
    assert_int_equal(cohort_roster_parse("roster.yaml", f->text, f->len, &r, &err), 0);
    X509 *cert = cluster_cert(c, zeta);
    char *ep = cohort_sprintf("tcp://127.0.0.1:%d", c->ports[zeta]);
    const char *eps[] = {ep};
    assert_int_equal(cohort_roster_add(r, "zeta", cert, 0, "hq", eps, 1, &err), 0);
    char *text = NULL, *sig = NULL;
    size_t len = 0;
    assert_int_equal(cohort_roster_emit(r, &text, &len, &err), 0);
    sig = cluster_sign(c, text, len);
    free(test_write(c->dir, "roster2.yaml", text, 0644));
    free(test_write(c->dir, "roster2.yaml.sig", sig, 0644));

    s_push_ok(c, GAMMA, text, len, f->serial + 1);
    s_wait_everywhere(c, -1, f->serial + 1, NULL, zclock_mono());
    for (int i = 0; i < COUNT; i++)
        s_wait_event(c->nodes[i], "member.admitted", "zeta", "roster", 2000);
    cluster_start(c, zeta);
    for (int i = 0; i < COUNT; i++)
        s_wait_event(c->nodes[i], "member.up", "zeta", NULL, 10000);
    assert_int_equal(cohort_subscribe(c->nodes[zeta], "hi.>"), COHORT_OK);
    cohort_msg_t *m = cohort_msg_new("hi.zeta", "welcome", 7);
    assert_int_equal(cohort_send(c->nodes[ALPHA], "zeta", &m, 0), COHORT_OK);
    cohort_msg_t *got = cluster_next(c, zeta, 5000);
    assert_non_null(got);
    assert_string_equal(cohort_msg_sender(got), "alpha");
    cohort_msg_destroy(&got);
    free(ep);
    X509_free(cert);
    cohort_roster_destroy(&r);
    free(text);
    free(sig);
}

/* ---- refusals ---- */

/* Pushes text/sig to alpha expecting a refusal for reason; nothing changes. */
static void s_refused(fixture_t *f, const char *text, size_t len, const char *sig,
                      const char *reason, const char *error_part)
{
    cluster_t *c = f->c;
    uint64_t before = s_status(c->nodes[ALPHA]).serial;
    size_t held_len = 0;
    char *held = s_held(c, ALPHA, &held_len);
    cohort_roster_result_t res;
    cohort_status_t st = s_push(c, ALPHA, text, len, sig, &res);
    if (st != COHORT_INVALID || strcmp(res.reason, reason) != 0)
        fail_msg("expected a refusal for %s, got status %d reason '%s': %s", reason, (int)st,
                 res.reason, res.error);
    if (!strstr(res.error, error_part))
        fail_msg("refusal text '%s' does not say '%s'", res.error, error_part);
    assert_int_equal(res.serial, before);
    assert_int_equal(s_status(c->nodes[ALPHA]).serial, before);
    s_assert_held(c, ALPHA, held, held_len);
    s_wait_event(c->nodes[ALPHA], "roster.rejected", "alpha", reason, 1000);
    free(held);
}

static void test_bad_rosters_are_refused_with_their_reason_and_never_spread(void **state)
{
    fixture_t *f = *state;
    cluster_t *c = f->c;
    cohort_err_t err;
    size_t len = 0, other_len = 0;
    char *text = s_edit(f->text, f->len, S_REVOKE, "delta", &len);
    char *sig = cluster_sign(c, text, len);

    /* tampered: a byte added after signing */
    char *tampered = cohort_sprintf("%s# added after signing\n", text);
    s_refused(f, tampered, strlen(tampered), sig, "bad-signature", "does not verify");
    /* signed, but another roster's signature */
    char *other = s_edit(f->text, f->len, S_REMOVE, "delta", &other_len);
    s_refused(f, other, other_len, sig, "bad-signature", "does not verify");
    /* no signature at all */
    s_refused(f, text, len, NULL, "unsigned", "no signature");
    /* signed by a CA nobody here trusts */
    EVP_PKEY *other_key = cohort_key_generate(COHORT_KEY_ED25519);
    X509 *other_ca = NULL;
    assert_int_equal(cohort_cert_create_ca("intruder", other_key, 30, &other_ca, &err), 0);
    char *other_sig = NULL;
    assert_int_equal(cohort_roster_sign(text, len, other_key, other_ca, &other_sig, &err), 0);
    s_refused(f, text, len, other_sig, "unknown-signer", "does not verify");
    /* the roster every node already holds */
    char *same_sig = cluster_sign(c, f->text, f->len);
    s_refused(f, f->text, f->len, same_sig, "same-serial", "already holds");
    /* properly signed, but for another cluster */
    size_t foreign_len = 0;
    char *foreign = s_edit(f->text, f->len, S_RENAME_CLUSTER, "beta", &foreign_len);
    char *foreign_sig = cluster_sign(c, foreign, foreign_len);
    s_refused(f, foreign, foreign_len, foreign_sig, "other-cluster", "cluster 'other'");
    /* a roster that throws out the very node it is pushed to */
    size_t self_len = 0;
    char *self_out = s_edit(f->text, f->len, S_REVOKE, "alpha", &self_len);
    char *self_sig = cluster_sign(c, self_out, self_len);
    s_refused(f, self_out, self_len, self_sig, "self-not-admitted", "does not admit this node");

    /* none of it went anywhere, nor changed alpha */
    assert_int_equal(s_peer_state(c->nodes[ALPHA], "delta") != NULL, true);
    for (int i = BETA; i < COUNT; i++) {
        assert_int_equal(s_status(c->nodes[i]).serial, f->serial);
        s_no_event(c->nodes[i], "roster.rejected", i == BETA ? 500 : 0);
    }

    /* older: a newer roster applied first, then the one before it */
    size_t newer_len = 0;
    char *newer = s_edit(text, len, S_SITE, "beta", &newer_len);
    s_push_ok(c, ALPHA, newer, newer_len, f->serial + 2);
    s_wait_everywhere(c, DELTA, f->serial + 2, "delta", zclock_mono());
    for (int i = ALPHA; i <= GAMMA; i++) /* beta's new site is known everywhere */
        if (i != BETA)
            assert_string_equal(s_peer_field(c->nodes[i], "beta", S_SITE_FIELD), "elsewhere");
    s_refused(f, text, len, sig, "older-serial", "lower than serial");

    free(text);
    free(sig);
    free(tampered);
    free(other);
    free(other_sig);
    free(same_sig);
    free(foreign);
    free(foreign_sig);
    free(self_out);
    free(self_sig);
    free(newer);
    EVP_PKEY_free(other_key);
    X509_free(other_ca);
}

/* ---- catching up ---- */

static void test_node_restarted_with_its_old_roster_catches_up_from_a_peer(void **state)
{
    fixture_t *f = *state;
    cluster_t *c = f->c;
    cluster_stop(c, GAMMA);
    size_t len = 0;
    char *text = s_edit(f->text, f->len, S_REVOKE, "delta", &len);
    s_push_ok(c, ALPHA, text, len, f->serial + 1);
    s_wait_serial(c, BETA, f->serial + 1, S_WAIT_MS);
    /* gamma comes back with the roster it had (configured and held) */
    s_assert_held(c, GAMMA, f->text, f->len);
    int64_t t0 = zclock_mono();
    cluster_start(c, GAMMA);
    s_wait_serial(c, GAMMA, f->serial + 1, 10000);
    print_message("gamma caught up %lld ms after its restart\n", (long long)(zclock_mono() - t0));
    s_wait_event(c->nodes[GAMMA], "member.revoked", "delta", "revoked", 2000);
    assert_null(s_peer_state(c->nodes[GAMMA], "delta"));
    s_assert_held(c, GAMMA, text, len);
    /* and it holds it across a restart */
    cluster_stop(c, GAMMA);
    cluster_start(c, GAMMA);
    assert_int_equal(s_status(c->nodes[GAMMA]).serial, f->serial + 1);
    free(text);
}

/* ---- certificate windows ---- */

/* A certificate for name from the cluster CA, valid from now + from_s
 * until now + until_s. Caller frees. */
static X509 *s_cert_window(cluster_t *c, const char *name, long from_s, long until_s)
{
    cohort_err_t err;
    EVP_PKEY *ca_key = NULL, *k = cohort_key_generate(COHORT_KEY_X25519);
    X509 *ca = NULL, *cert = NULL;
    char *p = cohort_sprintf("%s/ca.key", c->dir);
    assert_int_equal(cohort_key_load_private(p, COHORT_KEY_ED25519, &ca_key, &err), 0);
    free(p);
    p = cohort_sprintf("%s/ca.crt", c->dir);
    assert_int_equal(cohort_cert_load(p, &ca, &err), 0);
    free(p);
    assert_int_equal(cohort_cert_issue(ca, ca_key, name, k, 1, &cert, &err), 0);
    X509_gmtime_adj(X509_getm_notBefore(cert), from_s);
    X509_gmtime_adj(X509_getm_notAfter(cert), until_s);
    assert_true(X509_sign(cert, ca_key, NULL) > 0);
    EVP_PKEY_free(ca_key);
    EVP_PKEY_free(k);
    X509_free(ca);
    return cert;
}

static void test_certificates_expiring_or_starting_change_peers_without_a_new_roster(void **state)
{
    fixture_t *f = *state;
    cluster_t *c = f->c;
    cohort_err_t err;
    cohort_roster_t *r = NULL;
    assert_int_equal(cohort_roster_parse("roster.yaml", f->text, f->len, &r, &err), 0);
    /* eta's window closes first, theta's opens later */
    X509 *ending = s_cert_window(c, "eta", -60, 2), *starting = s_cert_window(c, "theta", 6, 3600);
    const char *eps[] = {"tcp://127.0.0.1:9"};
    assert_int_equal(cohort_roster_add(r, "eta", ending, 0, "hq", eps, 1, &err), 0);
    assert_int_equal(cohort_roster_add(r, "theta", starting, 0, "hq", eps, 1, &err), 0);
    char *text = NULL;
    size_t len = 0;
    assert_int_equal(cohort_roster_emit(r, &text, &len, &err), 0);
    s_push_ok(c, ALPHA, text, len, f->serial + 2);
    assert_non_null(s_peer_state(c->nodes[ALPHA], "eta"));
    assert_null(s_peer_state(c->nodes[ALPHA], "theta"));
    s_wait_event(c->nodes[ALPHA], "member.removed", "eta", "expired", 8000);
    assert_null(s_peer_state(c->nodes[ALPHA], "eta"));
    s_wait_event(c->nodes[ALPHA], "member.admitted", "theta", "valid", 8000);
    assert_non_null(s_peer_state(c->nodes[ALPHA], "theta"));
    X509_free(ending);
    X509_free(starting);
    cohort_roster_destroy(&r);
    free(text);
}

/* ---- the state directory ---- */

/* Makes dir impossible to write into, even for root (immutable), or
 * possible again. False when this file system cannot do it. */
static bool s_read_only(const char *dir, bool on)
{
    if (geteuid() != 0)
        return chmod(dir, on ? 0500 : 0700) == 0;
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0)
        return false;
    int flags = 0;
    bool ok = ioctl(fd, FS_IOC_GETFLAGS, &flags) == 0;
    flags = on ? flags | FS_IMMUTABLE_FL : flags & ~FS_IMMUTABLE_FL;
    ok = ok && ioctl(fd, FS_IOC_SETFLAGS, &flags) == 0;
    close(fd);
    return ok;
}

static void test_read_only_state_dir_refuses_the_roster_and_keeps_the_old_one(void **state)
{
    fixture_t *f = *state;
    cluster_t *c = f->c;
    char *dir = cohort_sprintf("%s/alpha-state", c->dir);
    if (!s_read_only(dir, true)) {
        print_message("cannot make %s read-only here; skipped\n", dir);
        free(dir);
        skip();
    }
    size_t len = 0;
    char *text = s_edit(f->text, f->len, S_REVOKE, "delta", &len);
    char *sig = cluster_sign(c, text, len);
    cohort_roster_result_t res;
    cohort_status_t st = s_push(c, ALPHA, text, len, sig, &res);
    bool restored = s_read_only(dir, false);
    assert_true(restored);
    if (st != COHORT_ERROR || strcmp(res.reason, "persist-failed") != 0)
        fail_msg("expected persist-failed, got status %d reason '%s': %s", (int)st, res.reason,
                 res.error);
    if (!strstr(res.error, "cannot keep it in node.state_dir") || !strstr(res.error, dir))
        fail_msg("unclear refusal: %s", res.error);
    print_message("refusal: %s\n", res.error);
    assert_int_equal(res.serial, f->serial);
    assert_int_equal(s_status(c->nodes[ALPHA]).serial, f->serial);
    assert_non_null(s_peer_state(c->nodes[ALPHA], "delta"));
    s_assert_held(c, ALPHA, f->text, f->len);
    char *next = cohort_sprintf("%s/%s", dir, COHORT_IDENTITY_NEXT_ROSTER);
    assert_false(cohort_fs_exists(next));
    s_wait_event(c->nodes[ALPHA], "roster.rejected", "alpha", "persist-failed", 1000);
    for (int i = BETA; i < COUNT; i++)
        assert_int_equal(s_status(c->nodes[i]).serial, f->serial);
    /* writable again: the same push goes through */
    s_push_ok(c, ALPHA, text, len, f->serial + 1);
    s_wait_everywhere(c, DELTA, f->serial + 1, "delta", zclock_mono());
    free(next);
    free(dir);
    free(text);
    free(sig);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(
            test_bad_rosters_are_refused_with_their_reason_and_never_spread, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_read_only_state_dir_refuses_the_roster_and_keeps_the_old_one, setup, teardown),
        cmocka_unit_test_setup_teardown(test_revoked_member_loses_every_link_on_every_node, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_removed_member_is_cut_off_like_a_revoked_one, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_added_member_joins_once_the_roster_admits_it, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_node_restarted_with_its_old_roster_catches_up_from_a_peer, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_certificates_expiring_or_starting_change_peers_without_a_new_roster, setup,
            teardown),
    };
    return cmocka_run_group_tests_name("roster_sync", tests, NULL, NULL);
}
