/*
 * Unit tests for overlay/swim: first the rules on one instance whose
 * callbacks are recorded (probing, indirect probes, the helper side, heard,
 * precedence, refutation, the dissemination queue, leave, endpoints), then
 * whole clusters: up to 50 instances exchanging messages through an
 * in-test queue with a fake clock, random latency, a seeded PRNG and
 * optional loss, cuts and partitions.
 */
#include "testutil.h"

#include "envelope.pb-c.h"
#include "overlay/swim.h"
#include "util/mem.h"

#include <inttypes.h>

/* The swim states are the wire's MemberUpdate.State values. */
_Static_assert((int)COHORT_SWIM_ALIVE == (int)COHORT__WIRE__MEMBER_UPDATE__STATE__ALIVE, "alive");
_Static_assert((int)COHORT_SWIM_SUSPECT == (int)COHORT__WIRE__MEMBER_UPDATE__STATE__SUSPECT,
               "suspect");
_Static_assert((int)COHORT_SWIM_FAILED == (int)COHORT__WIRE__MEMBER_UPDATE__STATE__FAILED,
               "failed");
_Static_assert((int)COHORT_SWIM_LEFT == (int)COHORT__WIRE__MEMBER_UPDATE__STATE__LEFT, "left");

static uint64_t s_splitmix(uint64_t *state)
{
    uint64_t z = (*state += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

/* ================= one instance, callbacks recorded ================= */

typedef enum { ACT_PING, ACT_PING_REQ, ACT_PING_REQ_ACK, ACT_GOSSIP } act_kind_t;

typedef struct {
    act_kind_t kind;
    char to[COHORT_SWIM_NAME_MAX];
    char target[COHORT_SWIM_NAME_MAX];
    uint64_t nonce;
    bool reachable;
} act_t;

typedef struct {
    char member[COHORT_SWIM_NAME_MAX];
    bool self;
    cohort_swim_state_t from, to;
    uint64_t incarnation;
    char reason[32];
} ev_t;

#define REC_MAX 512

typedef struct {
    act_t acts[REC_MAX];
    size_t n_acts;
    ev_t evs[REC_MAX];
    size_t n_evs;
    uint64_t rng;
} rec_t;

static act_t *s_act(rec_t *rec, act_kind_t kind, const char *to)
{
    assert_true(rec->n_acts < REC_MAX);
    act_t *a = &rec->acts[rec->n_acts++];
    *a = (act_t){.kind = kind};
    snprintf(a->to, sizeof a->to, "%s", to);
    return a;
}

static void s_rec_ping(void *arg, const char *to, uint64_t nonce)
{
    s_act(arg, ACT_PING, to)->nonce = nonce;
}

static void s_rec_ping_req(void *arg, const char *to, const char *target, uint64_t nonce)
{
    act_t *a = s_act(arg, ACT_PING_REQ, to);
    snprintf(a->target, sizeof a->target, "%s", target);
    a->nonce = nonce;
}

static void s_rec_ping_req_ack(void *arg, const char *to, const char *target, uint64_t nonce,
                               bool reachable)
{
    act_t *a = s_act(arg, ACT_PING_REQ_ACK, to);
    snprintf(a->target, sizeof a->target, "%s", target);
    a->nonce = nonce;
    a->reachable = reachable;
}

static void s_rec_gossip(void *arg, const char *to)
{
    s_act(arg, ACT_GOSSIP, to);
}

static void s_rec_event(void *arg, const cohort_swim_event_t *e)
{
    rec_t *rec = arg;
    assert_true(rec->n_evs < REC_MAX);
    assert_int_not_equal(e->from, e->to);
    ev_t *ev = &rec->evs[rec->n_evs++];
    *ev = (ev_t){.self = e->self, .from = e->from, .to = e->to, .incarnation = e->incarnation};
    snprintf(ev->member, sizeof ev->member, "%s", e->member);
    snprintf(ev->reason, sizeof ev->reason, "%s", e->reason);
}

static uint32_t s_rec_random(void *arg)
{
    rec_t *rec = arg;
    return (uint32_t)s_splitmix(&rec->rng);
}

static const cohort_swim_ops_t s_rec_ops = {
    .ping = s_rec_ping,
    .ping_req = s_rec_ping_req,
    .ping_req_ack = s_rec_ping_req_ack,
    .gossip = s_rec_gossip,
    .event = s_rec_event,
    .random = s_rec_random,
};

/* The rule tests use the defaults without the gossip and recheck timers
 * unless they test those. */
static cohort_swim_config_t s_quiet_cfg(void)
{
    cohort_swim_config_t cfg;
    cohort_swim_config_default(&cfg);
    cfg.gossip_interval_ms = 0;
    cfg.recheck_interval_ms = 0;
    return cfg;
}

static cohort_swim_merge_t s_say(cohort_swim_t *s, const char *node, cohort_swim_state_t state,
                                 uint64_t inc, int64_t now)
{
    cohort_swim_update_t u = {.node = node, .state = state, .incarnation = inc};
    return cohort_swim_merge(s, NULL, &u, now);
}

/* "me" plus members named in the NULL-terminated list, each ALIVE at
 * incarnation 10; the recorder is cleared afterwards. */
static cohort_swim_t *s_rig(rec_t *rec, const cohort_swim_config_t *cfg, const char *const *names)
{
    memset(rec, 0, sizeof *rec);
    rec->rng = 42;
    cohort_swim_t *s = cohort_swim_new("me", 100, cfg, &s_rec_ops, rec);
    for (size_t i = 0; names[i]; i++) {
        assert_true(cohort_swim_add(s, names[i], 0));
        assert_int_equal(s_say(s, names[i], COHORT_SWIM_ALIVE, 10, 0), COHORT_SWIM_MERGE_ACCEPTED);
    }
    rec->n_acts = 0;
    rec->n_evs = 0;
    return s;
}

static const char *const FIVE[] = {"a", "b", "c", "d", "e", NULL};

static cohort_swim_state_t s_state(const cohort_swim_t *s, const char *name)
{
    cohort_swim_member_t m;
    assert_true(cohort_swim_get(s, name, &m));
    return m.state;
}

static uint64_t s_inc(const cohort_swim_t *s, const char *name)
{
    cohort_swim_member_t m;
    assert_true(cohort_swim_get(s, name, &m));
    return m.incarnation;
}

/* Ticks at every next_due until a probe ping goes out or until `until`;
 * returns the index of that ping in rec->acts (or -1) and sets *at. */
static int s_tick_to_ping(cohort_swim_t *s, rec_t *rec, int64_t *now, int64_t until)
{
    while (*now <= until) {
        size_t before = rec->n_acts;
        cohort_swim_tick(s, *now);
        for (size_t i = before; i < rec->n_acts; i++)
            if (rec->acts[i].kind == ACT_PING)
                return (int)i;
        int64_t due = cohort_swim_next_due(s);
        assert_true(due >= 0);
        *now = due > *now ? due : *now + 1;
    }
    return -1;
}

static size_t s_count_acts(const rec_t *rec, act_kind_t kind, size_t from)
{
    size_t n = 0;
    for (size_t i = from; i < rec->n_acts; i++)
        n += rec->acts[i].kind == kind;
    return n;
}

static void test_probe_answered_directly_raises_no_suspicion(void **state)
{
    (void)state;
    rec_t *rec = cohort_calloc(1, sizeof *rec);
    cohort_swim_config_t cfg = s_quiet_cfg();
    cohort_swim_t *s = s_rig(rec, &cfg, FIVE);
    assert_int_equal(cohort_swim_next_due(s), -1);
    int64_t now = 0;
    int i = s_tick_to_ping(s, rec, &now, 1000);
    assert_true(i >= 0);
    act_t ping = rec->acts[i];
    assert_true(now < 1000); /* the first probe is somewhere in the first period */
    assert_false(cohort_swim_ack(s, "stranger", ping.nonce, now + 10));
    assert_true(cohort_swim_ack(s, ping.to, ping.nonce, now + 20));
    assert_false(cohort_swim_ack(s, ping.to, ping.nonce, now + 30)); /* answered already */
    for (int64_t t = now; t <= now + 1000; t += 50)
        cohort_swim_tick(s, t);
    assert_int_equal(s_count_acts(rec, ACT_PING_REQ, 0), 0);
    assert_int_equal(rec->n_evs, 0);
    cohort_swim_stats_t st;
    cohort_swim_stats(s, &st);
    assert_int_equal(st.probes_acked, 1);
    assert_int_equal(st.probes_failed, 0);
    cohort_swim_destroy(&s);
    cohort_swim_destroy(&s); /* NULL is fine */
    free(rec);
}

static void test_unanswered_probe_asks_k_helpers_then_suspects_then_fails(void **state)
{
    (void)state;
    rec_t *rec = cohort_calloc(1, sizeof *rec);
    cohort_swim_config_t cfg = s_quiet_cfg();
    cfg.indirect_k = 2;
    cohort_swim_t *s = s_rig(rec, &cfg, FIVE);
    int64_t now = 0;
    int i = s_tick_to_ping(s, rec, &now, 1000);
    assert_true(i >= 0);
    act_t ping = rec->acts[i];
    int64_t start = now;
    /* Nothing until probe_timeout. */
    cohort_swim_tick(s, start + 499);
    assert_int_equal(s_count_acts(rec, ACT_PING_REQ, 0), 0);
    assert_int_equal(cohort_swim_next_due(s), start + 500);
    cohort_swim_tick(s, start + 500);
    assert_int_equal(s_count_acts(rec, ACT_PING_REQ, 0), 2);
    const act_t *r1 = &rec->acts[rec->n_acts - 2], *r2 = &rec->acts[rec->n_acts - 1];
    assert_string_not_equal(r1->to, r2->to);
    for (const act_t *r = r1; r <= r2; r++) {
        assert_string_not_equal(r->to, ping.to);
        assert_string_not_equal(r->to, "me");
        assert_string_equal(r->target, ping.to);
        assert_int_equal(r->nonce, ping.nonce);
    }
    /* A nack is counted, changes nothing. */
    assert_true(cohort_swim_ping_req_ack(s, r1->to, ping.to, ping.nonce, false, start + 700));
    cohort_swim_tick(s, start + 999);
    assert_int_equal(rec->n_evs, 0);
    cohort_swim_tick(s, start + 1000);
    assert_int_equal(rec->n_evs, 1);
    assert_string_equal(rec->evs[0].member, ping.to);
    assert_int_equal(rec->evs[0].from, COHORT_SWIM_ALIVE);
    assert_int_equal(rec->evs[0].to, COHORT_SWIM_SUSPECT);
    assert_int_equal(rec->evs[0].incarnation, 10);
    assert_string_equal(rec->evs[0].reason, "probe-timeout");
    assert_int_equal(s_state(s, ping.to), COHORT_SWIM_SUSPECT);
    cohort_swim_member_t m;
    assert_true(cohort_swim_get(s, ping.to, &m));
    assert_int_equal(m.since, start + 1000);
    /* The suspicion is queued: it is what the next envelope carries. */
    cohort_swim_update_t out[4];
    assert_int_equal(cohort_swim_piggyback(s, NULL, 1, out), 1);
    assert_string_equal(out[0].node, ping.to);
    assert_int_equal(out[0].state, COHORT_SWIM_SUSPECT);
    assert_int_equal(out[0].incarnation, 10);
    /* Not refuted within the suspicion timeout: FAILED. Probing it does
     * not restart the timer. */
    int64_t deadline = start + 1000 + 4000;
    for (int64_t t = start + 1000; t < deadline; t += 100) {
        size_t before = rec->n_acts;
        cohort_swim_tick(s, t);
        for (size_t k = before; k < rec->n_acts; k++)
            if (rec->acts[k].kind == ACT_PING && strcmp(rec->acts[k].to, ping.to) != 0)
                cohort_swim_ack(s, rec->acts[k].to, rec->acts[k].nonce, t + 1);
    }
    assert_int_equal(s_state(s, ping.to), COHORT_SWIM_SUSPECT);
    cohort_swim_tick(s, deadline);
    assert_int_equal(s_state(s, ping.to), COHORT_SWIM_FAILED);
    const ev_t *last = &rec->evs[rec->n_evs - 1];
    assert_string_equal(last->member, ping.to);
    assert_int_equal(last->from, COHORT_SWIM_SUSPECT);
    assert_int_equal(last->to, COHORT_SWIM_FAILED);
    assert_string_equal(last->reason, "suspicion-timeout");
    assert_int_equal(cohort_swim_count(s, COHORT_SWIM_FAILED), 1);
    cohort_swim_destroy(&s);
    free(rec);
}

static void test_reachable_ping_req_ack_counts_as_the_answer(void **state)
{
    (void)state;
    rec_t *rec = cohort_calloc(1, sizeof *rec);
    cohort_swim_config_t cfg = s_quiet_cfg();
    cohort_swim_t *s = s_rig(rec, &cfg, FIVE);
    int64_t now = 0;
    act_t ping = rec->acts[s_tick_to_ping(s, rec, &now, 1000)];
    cohort_swim_tick(s, now + 500);
    assert_int_equal(s_count_acts(rec, ACT_PING_REQ, 0), 3);
    const act_t *req = &rec->acts[rec->n_acts - 1];
    /* Wrong target or nonce: no match. */
    assert_false(cohort_swim_ping_req_ack(s, req->to, "zz", ping.nonce, true, now + 600));
    assert_false(cohort_swim_ping_req_ack(s, req->to, ping.to, ping.nonce + 1, true, now + 600));
    assert_true(cohort_swim_ping_req_ack(s, req->to, ping.to, ping.nonce, true, now + 600));
    cohort_swim_tick(s, now + 1000);
    assert_int_equal(s_state(s, ping.to), COHORT_SWIM_ALIVE);
    assert_int_equal(rec->n_evs, 0);
    cohort_swim_stats_t st;
    cohort_swim_stats(s, &st);
    assert_int_equal(st.probes_indirect, 1);
    assert_int_equal(st.probes_failed, 0);
    cohort_swim_destroy(&s);
    free(rec);
}

static void test_helper_pings_target_and_reports_reachable_or_not(void **state)
{
    (void)state;
    rec_t *rec = cohort_calloc(1, sizeof *rec);
    cohort_swim_config_t cfg = s_quiet_cfg();
    cohort_swim_t *s = s_rig(rec, &cfg, FIVE);
    /* a asks us to ping b: we ping b with our own nonce. */
    cohort_swim_ping_req(s, "a", "b", 77, 1000);
    assert_int_equal(rec->n_acts, 1);
    assert_int_equal(rec->acts[0].kind, ACT_PING);
    assert_string_equal(rec->acts[0].to, "b");
    uint64_t ours = rec->acts[0].nonce;
    /* b answers: a hears reachable with a's nonce. */
    assert_true(cohort_swim_ack(s, "b", ours, 1100));
    assert_int_equal(rec->n_acts, 2);
    assert_int_equal(rec->acts[1].kind, ACT_PING_REQ_ACK);
    assert_string_equal(rec->acts[1].to, "a");
    assert_string_equal(rec->acts[1].target, "b");
    assert_int_equal(rec->acts[1].nonce, 77);
    assert_true(rec->acts[1].reachable);
    /* c asks about d, d stays silent: unreachable after probe_timeout. */
    cohort_swim_ping_req(s, "c", "d", 78, 2000);
    cohort_swim_ping_req(s, "c", "d", 78, 2001); /* duplicate: ignored */
    assert_int_equal(s_count_acts(rec, ACT_PING, 0), 2);
    cohort_swim_tick(s, 2000);
    cohort_swim_tick(s, 2499);
    assert_int_equal(s_count_acts(rec, ACT_PING_REQ_ACK, 0), 1);
    cohort_swim_tick(s, 2500);
    assert_int_equal(s_count_acts(rec, ACT_PING_REQ_ACK, 0), 2);
    const act_t *nack = &rec->acts[rec->n_acts - 1];
    assert_string_equal(nack->to, "c");
    assert_string_equal(nack->target, "d");
    assert_int_equal(nack->nonce, 78);
    assert_false(nack->reachable);
    /* Any frame from the target answers too. */
    cohort_swim_ping_req(s, "a", "e", 79, 3000);
    cohort_swim_heard(s, "e", 3010);
    assert_true(rec->acts[rec->n_acts - 1].reachable);
    /* About us: reachable at once. About a non-member: unreachable at
     * once. From a non-member: ignored. */
    size_t before = rec->n_acts;
    cohort_swim_ping_req(s, "a", "me", 80, 3100);
    cohort_swim_ping_req(s, "a", "stranger", 81, 3100);
    cohort_swim_ping_req(s, "stranger", "b", 82, 3100);
    assert_int_equal(rec->n_acts, before + 2);
    assert_true(rec->acts[before].reachable);
    assert_false(rec->acts[before + 1].reachable);
    /* Bounded: beyond COHORT_SWIM_MAX_RELAYS outstanding, ignored. */
    for (uint64_t k = 0; k < COHORT_SWIM_MAX_RELAYS + 5; k++)
        cohort_swim_ping_req(s, "a", "b", 1000 + k, 4000);
    cohort_swim_stats_t st;
    cohort_swim_stats(s, &st);
    assert_int_equal(st.relays_refused, 1 + 1 + 5);
    /* One frame from b answers all of them. */
    before = rec->n_acts;
    cohort_swim_heard(s, "b", 4001);
    assert_int_equal(s_count_acts(rec, ACT_PING_REQ_ACK, before), COHORT_SWIM_MAX_RELAYS);
    cohort_swim_destroy(&s);
    free(rec);
}

static void test_heard_counts_as_ack_but_never_lifts_a_verdict(void **state)
{
    (void)state;
    rec_t *rec = cohort_calloc(1, sizeof *rec);
    cohort_swim_config_t cfg = s_quiet_cfg();
    cohort_swim_t *s = s_rig(rec, &cfg, FIVE);
    int64_t now = 0;
    act_t ping = rec->acts[s_tick_to_ping(s, rec, &now, 1000)];
    /* A frame from before the probe started does not count. */
    cohort_swim_heard(s, ping.to, now - 1);
    cohort_swim_heard(s, ping.to, now + 300);
    cohort_swim_tick(s, now + 1000);
    assert_int_equal(s_count_acts(rec, ACT_PING_REQ, 0), 0);
    assert_int_equal(s_state(s, ping.to), COHORT_SWIM_ALIVE);
    /* Gossip says b is SUSPECT at 10: hearing from b does not undo it,
     * and neither does hearing from a FAILED or LEFT member. */
    assert_int_equal(s_say(s, "b", COHORT_SWIM_SUSPECT, 10, 2000), COHORT_SWIM_MERGE_ACCEPTED);
    assert_int_equal(s_say(s, "c", COHORT_SWIM_FAILED, 10, 2000), COHORT_SWIM_MERGE_ACCEPTED);
    assert_int_equal(s_say(s, "d", COHORT_SWIM_LEFT, 10, 2000), COHORT_SWIM_MERGE_ACCEPTED);
    cohort_swim_heard(s, "b", 2100);
    cohort_swim_heard(s, "c", 2100);
    cohort_swim_heard(s, "d", 2100);
    cohort_swim_heard(s, "nobody", 2100);
    assert_int_equal(s_state(s, "b"), COHORT_SWIM_SUSPECT);
    assert_int_equal(s_state(s, "c"), COHORT_SWIM_FAILED);
    assert_int_equal(s_state(s, "d"), COHORT_SWIM_LEFT);
    assert_int_equal(s_inc(s, "b"), 10);
    /* Only b refuting (a higher incarnation) does. */
    assert_int_equal(s_say(s, "b", COHORT_SWIM_ALIVE, 11, 2200), COHORT_SWIM_MERGE_ACCEPTED);
    assert_int_equal(s_state(s, "b"), COHORT_SWIM_ALIVE);
    assert_string_equal(rec->evs[rec->n_evs - 1].reason, "refuted");
    cohort_swim_destroy(&s);
    free(rec);
}

static void test_first_sign_of_life_joins_at_incarnation_zero_and_real_alive_wins(void **state)
{
    (void)state;
    rec_t *rec = cohort_calloc(1, sizeof *rec);
    cohort_swim_config_t cfg = s_quiet_cfg();
    const char *const none[] = {NULL};
    cohort_swim_t *s = s_rig(rec, &cfg, none);
    assert_true(cohort_swim_add(s, "x", 5));
    assert_false(cohort_swim_add(s, "x", 5));
    assert_false(cohort_swim_add(s, "me", 5));
    assert_false(cohort_swim_add(s, "", 5));
    cohort_swim_member_t m;
    assert_true(cohort_swim_get(s, "x", &m));
    assert_int_equal(m.state, COHORT_SWIM_UNKNOWN);
    assert_int_equal(m.since, 5);
    size_t queued = cohort_swim_pending(s);
    cohort_swim_heard(s, "x", 50);
    assert_int_equal(s_state(s, "x"), COHORT_SWIM_ALIVE);
    assert_int_equal(s_inc(s, "x"), 0);
    assert_int_equal(rec->n_evs, 1);
    assert_string_equal(rec->evs[0].reason, "joined");
    assert_int_equal(rec->evs[0].from, COHORT_SWIM_UNKNOWN);
    assert_int_equal(cohort_swim_pending(s), queued); /* not gossiped */
    /* Its own ALIVE at its real incarnation: accepted silently. */
    const char *eps[] = {"tcp://10.0.0.9:7000"};
    cohort_swim_update_t u = {"x", COHORT_SWIM_ALIVE, 1700000000000, eps, 1};
    assert_int_equal(cohort_swim_merge(s, NULL, &u, 60), COHORT_SWIM_MERGE_ACCEPTED);
    assert_int_equal(rec->n_evs, 1);
    assert_true(cohort_swim_get(s, "x", &m));
    assert_int_equal(m.incarnation, 1700000000000);
    assert_int_equal(m.n_endpoints, 1);
    assert_string_equal(m.endpoints[0], "tcp://10.0.0.9:7000");
    /* An UNKNOWN member learnt of by gossip joins with the gossip's word. */
    assert_true(cohort_swim_add(s, "y", 70));
    assert_int_equal(s_say(s, "y", COHORT_SWIM_ALIVE, 3, 80), COHORT_SWIM_MERGE_ACCEPTED);
    assert_string_equal(rec->evs[1].reason, "joined");
    assert_true(cohort_swim_add(s, "z", 70));
    assert_int_equal(s_say(s, "z", COHORT_SWIM_FAILED, 3, 80), COHORT_SWIM_MERGE_ACCEPTED);
    assert_int_equal(rec->evs[2].from, COHORT_SWIM_UNKNOWN);
    assert_string_equal(rec->evs[2].reason, "failed-by-gossip");
    cohort_swim_destroy(&s);
    free(rec);
}

static void test_round_robin_probes_each_candidate_once_per_round(void **state)
{
    (void)state;
    rec_t *rec = cohort_calloc(1, sizeof *rec);
    cohort_swim_config_t cfg = s_quiet_cfg();
    cfg.suspicion_timeout_ms = 1000000; /* e stays SUSPECT throughout */
    const char *const names[] = {"a", "b", "c", "d", "e", "f", "g", "h", NULL};
    cohort_swim_t *s = s_rig(rec, &cfg, names);
    /* f FAILED, g LEFT, h UNKNOWN (re-added), e SUSPECT: 5 candidates. */
    s_say(s, "f", COHORT_SWIM_FAILED, 10, 0);
    s_say(s, "g", COHORT_SWIM_LEFT, 10, 0);
    cohort_swim_remove(s, "h");
    cohort_swim_add(s, "h", 0);
    s_say(s, "e", COHORT_SWIM_SUSPECT, 10, 0);
    rec->n_acts = 0;
    char order[3][5][COHORT_SWIM_NAME_MAX];
    int64_t now = 0;
    for (int round = 0; round < 3; round++) {
        for (int k = 0; k < 5; k++) {
            int i = s_tick_to_ping(s, rec, &now, 100000);
            assert_true(i >= 0);
            act_t p = rec->acts[i];
            cohort_swim_ack(s, p.to, p.nonce, now + 5);
            snprintf(order[round][k], COHORT_SWIM_NAME_MAX, "%s", p.to);
            for (int j = 0; j < k; j++)
                assert_string_not_equal(order[round][j], p.to);
            assert_true(strchr("abcde", p.to[0]) && p.to[1] == 0);
        }
    }
    /* Reshuffled: the three rounds are not all in the same order. */
    bool differ = false;
    for (int k = 0; k < 5; k++)
        differ = differ || strcmp(order[0][k], order[1][k]) || strcmp(order[1][k], order[2][k]);
    assert_true(differ);
    cohort_swim_destroy(&s);
    free(rec);
}

static void test_recheck_pings_failed_and_unknown_members_and_answers_rejoin_them(void **state)
{
    (void)state;
    rec_t *rec = cohort_calloc(1, sizeof *rec);
    cohort_swim_config_t cfg = s_quiet_cfg();
    cfg.recheck_interval_ms = 2000;
    const char *const names[] = {"a", "b", NULL};
    cohort_swim_t *s = s_rig(rec, &cfg, names);
    s_say(s, "a", COHORT_SWIM_FAILED, 10, 0);
    cohort_swim_add(s, "u", 0);
    int64_t now = 0;
    size_t a = 0, u = 0, b = 0;
    for (; now < 20000; now += 100) {
        size_t before = rec->n_acts;
        cohort_swim_tick(s, now);
        for (size_t i = before; i < rec->n_acts; i++) {
            act_t *p = &rec->acts[i];
            if (p->kind != ACT_PING)
                continue;
            a += strcmp(p->to, "a") == 0;
            u += strcmp(p->to, "u") == 0;
            b += strcmp(p->to, "b") == 0;
            if (strcmp(p->to, "b") == 0)
                cohort_swim_ack(s, "b", p->nonce, now + 1);
        }
    }
    assert_int_equal(a + u, 10); /* one every recheck interval */
    assert_true(a >= 2 && u >= 2);
    assert_true(b >= 19); /* the only probe candidate: every period */
    /* The ping to a FAILED member carries our verdict (buddy rule), so it
     * refutes; that comes back and rejoins it. */
    cohort_swim_update_t out[4];
    size_t n = cohort_swim_piggyback(s, "a", 4, out);
    assert_true(n >= 1);
    assert_string_equal(out[0].node, "a");
    assert_int_equal(out[0].state, COHORT_SWIM_FAILED);
    assert_int_equal(s_say(s, "a", COHORT_SWIM_ALIVE, 11, now), COHORT_SWIM_MERGE_ACCEPTED);
    assert_string_equal(rec->evs[rec->n_evs - 1].reason, "rejoined");
    /* An unknown member that answers a recheck joins. */
    for (;; now += 100) {
        size_t before = rec->n_acts;
        cohort_swim_tick(s, now);
        if (rec->n_acts > before && rec->acts[rec->n_acts - 1].kind == ACT_PING &&
            strcmp(rec->acts[rec->n_acts - 1].to, "u") == 0)
            break;
    }
    assert_true(cohort_swim_ack(s, "u", rec->acts[rec->n_acts - 1].nonce, now + 3));
    assert_int_equal(s_state(s, "u"), COHORT_SWIM_ALIVE);
    assert_string_equal(rec->evs[rec->n_evs - 1].reason, "joined");
    cohort_swim_destroy(&s);
    free(rec);
}

/* ---- precedence ---- */

typedef struct {
    cohort_swim_state_t have;
    uint64_t have_inc;
    cohort_swim_state_t say;
    uint64_t say_inc;
    cohort_swim_merge_t result;
    cohort_swim_state_t then; /* state after */
    const char *reason;       /* event, or NULL for none */
} prec_row_t;

#define A COHORT_SWIM_ALIVE
#define S COHORT_SWIM_SUSPECT
#define F COHORT_SWIM_FAILED
#define L COHORT_SWIM_LEFT
#define U COHORT_SWIM_UNKNOWN
#define ACC COHORT_SWIM_MERGE_ACCEPTED
#define OLD COHORT_SWIM_MERGE_STALE

static const prec_row_t PRECEDENCE[] = {
    /* equal incarnation: ALIVE < SUSPECT < FAILED < LEFT */
    {A, 5, A, 5, OLD, A, NULL},
    {A, 5, S, 5, ACC, S, "suspected-by-gossip"},
    {A, 5, F, 5, ACC, F, "failed-by-gossip"},
    {A, 5, L, 5, ACC, L, "left"},
    {S, 5, A, 5, OLD, S, NULL},
    {S, 5, S, 5, OLD, S, NULL},
    {S, 5, F, 5, ACC, F, "failed-by-gossip"},
    {S, 5, L, 5, ACC, L, "left"},
    {F, 5, A, 5, OLD, F, NULL},
    {F, 5, S, 5, OLD, F, NULL},
    {F, 5, F, 5, OLD, F, NULL},
    {F, 5, L, 5, ACC, L, "left"},
    {L, 5, A, 5, OLD, L, NULL},
    {L, 5, S, 5, OLD, L, NULL},
    {L, 5, F, 5, OLD, L, NULL},
    {L, 5, L, 5, OLD, L, NULL},
    /* a higher incarnation wins whatever the states */
    {A, 5, A, 6, ACC, A, NULL},
    {S, 5, A, 6, ACC, A, "refuted"},
    {F, 5, A, 6, ACC, A, "rejoined"},
    {L, 5, A, 6, ACC, A, "rejoined"},
    {L, 5, S, 6, ACC, S, "suspected-by-gossip"},
    {S, 5, S, 6, ACC, S, NULL},
    {F, 5, F, 6, ACC, F, NULL},
    /* a lower one never does */
    {A, 5, F, 4, OLD, A, NULL},
    {A, 5, L, 4, OLD, A, NULL},
    {S, 5, A, 4, OLD, S, NULL},
    {F, 5, A, 4, OLD, F, NULL},
    /* no evidence yet: anything wins */
    {U, 0, A, 0, ACC, A, "joined"},
    {U, 0, S, 3, ACC, S, "suspected-by-gossip"},
    {U, 0, L, 3, ACC, L, "left"},
};

static void test_precedence_table(void **state)
{
    (void)state;
    rec_t *rec = cohort_calloc(1, sizeof *rec);
    cohort_swim_config_t cfg = s_quiet_cfg();
    const char *const none[] = {NULL};
    for (size_t i = 0; i < sizeof PRECEDENCE / sizeof *PRECEDENCE; i++) {
        const prec_row_t *row = &PRECEDENCE[i];
        cohort_swim_t *s = s_rig(rec, &cfg, none);
        cohort_swim_add(s, "x", 0);
        if (row->have != U)
            assert_int_equal(s_say(s, "x", row->have, row->have_inc, 0), ACC);
        rec->n_evs = 0;
        size_t pending = cohort_swim_pending(s);
        cohort_swim_merge_t got = s_say(s, "x", row->say, row->say_inc, 10);
        assert_int_equal(got, row->result);
        assert_int_equal(s_state(s, "x"), row->then);
        assert_int_equal(s_inc(s, "x"), row->result == ACC ? row->say_inc : row->have_inc);
        if (row->reason) {
            assert_int_equal(rec->n_evs, 1);
            assert_string_equal(rec->evs[0].reason, row->reason);
            assert_int_equal(rec->evs[0].to, row->then);
        } else {
            assert_int_equal(rec->n_evs, 0);
        }
        /* Accepted news spreads further; stale news does not. */
        if (row->result == ACC) {
            cohort_swim_update_t out[4];
            size_t n = cohort_swim_piggyback(s, NULL, 4, out);
            assert_true(n >= 1);
            assert_string_equal(out[0].node, "x");
            assert_int_equal(out[0].state, row->then);
            assert_int_equal(out[0].incarnation, row->say_inc);
        } else {
            assert_int_equal(cohort_swim_pending(s), pending);
        }
        cohort_swim_destroy(&s);
    }
    free(rec);
}

typedef struct {
    cohort_swim_state_t say;
    uint64_t say_inc;
    cohort_swim_merge_t result;
    uint64_t inc_after; /* ours; we start at 100 */
} self_row_t;

static const self_row_t SELF_ROWS[] = {
    {S, 100, COHORT_SWIM_MERGE_REFUTED, 101},
    {F, 100, COHORT_SWIM_MERGE_REFUTED, 101},
    {L, 100, COHORT_SWIM_MERGE_REFUTED, 101},
    {S, 250, COHORT_SWIM_MERGE_REFUTED, 251},
    {A, 300, COHORT_SWIM_MERGE_REFUTED, 301},
    {A, 100, OLD, 100},
    {A, 99, OLD, 100},
    {S, 99, OLD, 100},
    {F, 3, OLD, 100},
};

static void test_news_about_self_is_refuted_with_a_higher_incarnation(void **state)
{
    (void)state;
    rec_t *rec = cohort_calloc(1, sizeof *rec);
    cohort_swim_config_t cfg = s_quiet_cfg();
    for (size_t i = 0; i < sizeof SELF_ROWS / sizeof *SELF_ROWS; i++) {
        const self_row_t *row = &SELF_ROWS[i];
        cohort_swim_t *s = s_rig(rec, &cfg, FIVE);
        cohort_swim_update_t out[8];
        while (cohort_swim_piggyback(s, NULL, 8, out) > 0) /* drain */
            ;
        assert_int_equal(s_say(s, "me", row->say, row->say_inc, 10), row->result);
        assert_int_equal(cohort_swim_incarnation(s), row->inc_after);
        assert_int_equal(s_state(s, "me"), COHORT_SWIM_ALIVE);
        assert_int_equal(rec->n_evs, 0);
        /* Refutations and old bad news put our ALIVE in the queue; old good
         * news does not. */
        size_t n = cohort_swim_piggyback(s, NULL, 8, out);
        if (row->result == COHORT_SWIM_MERGE_REFUTED || row->say != A) {
            assert_int_equal(n, 1);
            assert_string_equal(out[0].node, "me");
            assert_int_equal(out[0].state, COHORT_SWIM_ALIVE);
            assert_int_equal(out[0].incarnation, row->inc_after);
        } else {
            assert_int_equal(n, 0);
        }
        cohort_swim_destroy(&s);
    }
    free(rec);
}

static void test_invalid_updates_are_refused(void **state)
{
    (void)state;
    rec_t *rec = cohort_calloc(1, sizeof *rec);
    cohort_swim_config_t cfg = s_quiet_cfg();
    cohort_swim_t *s = s_rig(rec, &cfg, FIVE);
    char long_name[COHORT_SWIM_NAME_MAX + 1];
    memset(long_name, 'x', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = 0;
    assert_int_equal(s_say(s, "zz", A, 1, 0), COHORT_SWIM_MERGE_NOT_MEMBER);
    assert_int_equal(s_say(s, long_name, A, 1, 0), COHORT_SWIM_MERGE_INVALID);
    assert_int_equal(s_say(s, "", A, 1, 0), COHORT_SWIM_MERGE_INVALID);
    assert_int_equal(s_say(s, NULL, A, 1, 0), COHORT_SWIM_MERGE_INVALID);
    assert_int_equal(s_say(s, "a", (cohort_swim_state_t)4, 11, 0), COHORT_SWIM_MERGE_INVALID);
    assert_int_equal(s_say(s, "a", (cohort_swim_state_t)-1, 11, 0), COHORT_SWIM_MERGE_INVALID);
    assert_int_equal(s_say(s, "a", S, UINT64_MAX, 0), COHORT_SWIM_MERGE_INVALID);
    assert_int_equal(s_say(s, "me", S, UINT64_MAX, 0), COHORT_SWIM_MERGE_INVALID);
    /* Bad endpoints are dropped, good ones kept, at most the maximum. */
    char long_ep[COHORT_SWIM_ENDPOINT_MAX + 4];
    memset(long_ep, 'e', sizeof long_ep - 1);
    long_ep[sizeof long_ep - 1] = 0;
    const char *eps[12] = {"tcp://1.2.3.4:1", long_ep, "", NULL};
    for (size_t i = 4; i < 12; i++)
        eps[i] = "tcp://5.6.7.8:2";
    cohort_swim_update_t u = {"a", A, 11, eps, 12};
    assert_int_equal(cohort_swim_merge(s, NULL, &u, 0), ACC);
    cohort_swim_member_t m;
    cohort_swim_get(s, "a", &m);
    assert_int_equal(m.n_endpoints, COHORT_SWIM_MAX_ENDPOINTS);
    assert_string_equal(m.endpoints[0], "tcp://1.2.3.4:1");
    assert_string_equal(m.endpoints[1], "tcp://5.6.7.8:2");
    /* Endpoints on a non-ALIVE update are ignored; the old ones stay. */
    const char *other[] = {"tcp://9.9.9.9:9"};
    cohort_swim_update_t f = {"a", F, 11, other, 1};
    assert_int_equal(cohort_swim_merge(s, NULL, &f, 0), ACC);
    cohort_swim_get(s, "a", &m);
    assert_string_equal(m.endpoints[0], "tcp://1.2.3.4:1");
    cohort_swim_stats_t st;
    cohort_swim_stats(s, &st);
    assert_int_equal(st.rejected, 8);
    cohort_swim_destroy(&s);
    free(rec);
}

/* ---- the dissemination queue ---- */

static void test_piggyback_sends_each_update_limit_times_fewest_first(void **state)
{
    (void)state;
    rec_t *rec = cohort_calloc(1, sizeof *rec);
    cohort_swim_config_t cfg = s_quiet_cfg();
    cohort_swim_t *s = s_rig(rec, &cfg, FIVE);
    /* 6 members: limit = 4 * ceil(log2(7)) = 12. */
    unsigned limit = cohort_swim_retransmit_limit(s);
    assert_int_equal(limit, 12);
    cohort_swim_update_t out[16];
    while (cohort_swim_piggyback(s, NULL, 16, out) > 0)
        ;
    assert_int_equal(cohort_swim_pending(s), 0);
    s_say(s, "a", S, 10, 0);
    s_say(s, "b", S, 10, 0);
    assert_int_equal(cohort_swim_pending(s), 2);
    /* 2 per envelope, one slot: they alternate, newest first, so both go
     * out limit times; then c comes in with 0 transmissions and jumps the
     * queue. */
    size_t sent_a = 0, sent_b = 0, sent_c = 0;
    assert_int_equal(cohort_swim_piggyback(s, NULL, 1, out), 1);
    assert_string_equal(out[0].node, "b"); /* newest */
    sent_b++;
    for (int i = 0; i < 5; i++) {
        assert_int_equal(cohort_swim_piggyback(s, NULL, 1, out), 1);
        sent_a += strcmp(out[0].node, "a") == 0;
        sent_b += strcmp(out[0].node, "b") == 0;
    }
    assert_int_equal(sent_a, 3);
    assert_int_equal(sent_b, 3);
    s_say(s, "c", F, 10, 0);
    assert_int_equal(cohort_swim_piggyback(s, NULL, 1, out), 1);
    assert_string_equal(out[0].node, "c");
    sent_c++;
    size_t n;
    while ((n = cohort_swim_piggyback(s, NULL, 2, out)) > 0) {
        assert_string_not_equal(out[0].node, n == 2 ? out[1].node : "-");
        for (size_t i = 0; i < n; i++) {
            sent_a += strcmp(out[i].node, "a") == 0;
            sent_b += strcmp(out[i].node, "b") == 0;
            sent_c += strcmp(out[i].node, "c") == 0;
        }
    }
    assert_int_equal(sent_a, limit);
    assert_int_equal(sent_b, limit);
    assert_int_equal(sent_c, limit);
    cohort_swim_stats_t st;
    cohort_swim_stats(s, &st);
    assert_int_equal(st.piggybacked, 6 * limit + 3 * limit);
    cohort_swim_destroy(&s);
    free(rec);
}

static void test_queue_holds_one_current_update_per_member(void **state)
{
    (void)state;
    rec_t *rec = cohort_calloc(1, sizeof *rec);
    cohort_swim_config_t cfg = s_quiet_cfg();
    cohort_swim_t *s = s_rig(rec, &cfg, FIVE);
    /* 5 members re-learnt at higher incarnations, over and over: never
     * more than one queued update per member. */
    for (uint64_t inc = 11; inc < 200; inc++)
        for (size_t i = 0; FIVE[i]; i++) {
            s_say(s, FIVE[i], inc % 2 ? S : A, inc, (int64_t)inc);
            rec->n_evs = 0;
        }
    assert_int_equal(cohort_swim_pending(s), 6);
    cohort_swim_update_t out[16];
    size_t n = cohort_swim_piggyback(s, NULL, 16, out);
    assert_int_equal(n, 6);
    for (size_t i = 0; i < n; i++) {
        if (strcmp(out[i].node, "me") == 0)
            continue;
        assert_int_equal(out[i].incarnation, 199); /* the newest replaced the rest */
        assert_int_equal(out[i].state, S);
    }
    /* A newer change restarts its budget. */
    s_say(s, "a", F, 199, 300);
    n = cohort_swim_piggyback(s, NULL, 1, out);
    assert_string_equal(out[0].node, "a");
    assert_int_equal(out[0].state, F);
    cohort_swim_destroy(&s);
    free(rec);
}

static void test_piggyback_tells_a_suspect_its_verdict_and_skips_news_about_it(void **state)
{
    (void)state;
    rec_t *rec = cohort_calloc(1, sizeof *rec);
    cohort_swim_config_t cfg = s_quiet_cfg();
    cohort_swim_t *s = s_rig(rec, &cfg, FIVE);
    const char *eps[] = {"tcp://10.1.1.1:7000"};
    cohort_swim_update_t ua = {"a", A, 12, eps, 1};
    cohort_swim_merge(s, NULL, &ua, 0);
    /* To b (ALIVE): a's news with endpoints, ours, but not b's own. */
    s_say(s, "b", A, 12, 0);
    cohort_swim_update_t out[16];
    size_t n = cohort_swim_piggyback(s, "b", 16, out);
    bool saw_a = false;
    for (size_t i = 0; i < n; i++) {
        assert_string_not_equal(out[i].node, "b");
        if (strcmp(out[i].node, "a") == 0) {
            saw_a = true;
            assert_int_equal(out[i].n_endpoints, 1);
            assert_string_equal(out[i].endpoints[0], "tcp://10.1.1.1:7000");
        }
    }
    assert_true(saw_a);
    /* c SUSPECT: it comes first in what we send to c, even when its queued
     * budget is spent and the envelope has room for one update only. */
    s_say(s, "c", S, 10, 0);
    while (cohort_swim_piggyback(s, NULL, 16, out) > 0)
        ;
    n = cohort_swim_piggyback(s, "c", 1, out);
    assert_int_equal(n, 1);
    assert_string_equal(out[0].node, "c");
    assert_int_equal(out[0].state, S);
    assert_int_equal(out[0].incarnation, 10);
    assert_int_equal(out[0].n_endpoints, 0);
    /* To ourselves, or with max 0: nothing special. */
    assert_int_equal(cohort_swim_piggyback(s, "me", 16, out), 0);
    assert_int_equal(cohort_swim_piggyback(s, "c", 0, NULL), 0);
    cohort_swim_destroy(&s);
    free(rec);
}

/* True if out[0..n) has an update about node. */
static bool s_has(const cohort_swim_update_t *out, size_t n, const char *node)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(out[i].node, node) == 0)
            return true;
    return false;
}

static void test_first_envelopes_to_each_member_carry_our_own_update(void **state)
{
    (void)state;
    rec_t *rec = cohort_calloc(1, sizeof *rec);
    cohort_swim_config_t cfg = s_quiet_cfg();
    cohort_swim_t *s = s_rig(rec, &cfg, FIVE);
    cohort_swim_update_t out[16];
    while (cohort_swim_piggyback(s, NULL, 16, out) > 0) /* queue spent */
        ;
    /* To a: our update on the first COHORT_SWIM_TELL_SELF envelopes only,
     * even with room for a single update. */
    for (int i = 0; i < COHORT_SWIM_TELL_SELF; i++) {
        assert_int_equal(cohort_swim_piggyback(s, "a", 1, out), 1);
        assert_string_equal(out[0].node, "me");
        assert_int_equal(out[0].incarnation, 100);
    }
    assert_int_equal(cohort_swim_piggyback(s, "a", 16, out), 0);
    assert_int_equal(cohort_swim_piggyback(s, "b", 16, out), 1); /* b: not yet */
    /* A new incarnation of a (it may have restarted) gets it again. */
    s_say(s, "a", A, 11, 0);
    size_t n = cohort_swim_piggyback(s, "a", 16, out);
    assert_true(s_has(out, n, "me"));
    assert_false(s_has(out, n, "a"));
    /* So does everyone after our own incarnation changes. */
    for (int i = 0; i < COHORT_SWIM_TELL_SELF; i++)
        cohort_swim_piggyback(s, "c", 16, out);
    assert_false(s_has(out, cohort_swim_piggyback(s, "c", 16, out), "me"));
    assert_int_equal(s_say(s, "me", S, 100, 0), COHORT_SWIM_MERGE_REFUTED);
    n = cohort_swim_piggyback(s, "c", 16, out);
    assert_true(s_has(out, n, "me"));
    cohort_swim_destroy(&s);
    free(rec);
}

static void test_member_known_by_sight_is_asked_for_its_own_update(void **state)
{
    (void)state;
    rec_t *rec = cohort_calloc(1, sizeof *rec);
    cohort_swim_config_t cfg = s_quiet_cfg();
    cohort_swim_t *s = s_rig(rec, &cfg, FIVE);
    cohort_swim_add(s, "x", 0);
    cohort_swim_heard(s, "x", 10);
    assert_int_equal(s_state(s, "x"), A);
    /* Our envelopes to x say we know it only as ALIVE at 0... */
    cohort_swim_update_t out[16];
    for (int i = 0; i < 5; i++) {
        assert_true(cohort_swim_piggyback(s, "x", 16, out) >= 1);
        assert_string_equal(out[0].node, "x");
        assert_int_equal(out[0].state, A);
        assert_int_equal(out[0].incarnation, 0);
    }
    /* ...until any update about it arrives, even one at incarnation 0
     * (a member may really be at 0). */
    assert_int_equal(s_say(s, "x", A, 0, 20), ACC);
    size_t n = cohort_swim_piggyback(s, "x", 16, out);
    assert_false(s_has(out, n, "x"));
    /* The other side: "me" as ALIVE@0 from a means a lacks our update,
     * whatever we told it before: a gets it again. */
    while (cohort_swim_piggyback(s, NULL, 16, out) > 0)
        ;
    while (cohort_swim_piggyback(s, "a", 16, out) > 0)
        ;
    cohort_swim_update_t u = {"me", A, 0, NULL, 0};
    assert_int_equal(cohort_swim_merge(s, "a", &u, 30), OLD);
    assert_int_equal(cohort_swim_pending(s), 0); /* not re-gossiped: only a lacks it */
    n = cohort_swim_piggyback(s, "a", 16, out);
    assert_int_equal(n, 1);
    assert_string_equal(out[0].node, "me");
    assert_int_equal(out[0].incarnation, 100);
    cohort_swim_destroy(&s);
    free(rec);
}

static void test_a_member_that_joins_or_rejoins_is_sent_an_introduction(void **state)
{
    (void)state;
    rec_t *rec = cohort_calloc(1, sizeof *rec);
    cohort_swim_config_t cfg = s_quiet_cfg(); /* no gossip timer */
    cohort_swim_t *s = s_rig(rec, &cfg, FIVE);
    cohort_swim_add(s, "x", 0);
    cohort_swim_add(s, "y", 0);
    s_say(s, "x", A, 5, 0);       /* joined by gossip */
    cohort_swim_heard(s, "y", 0); /* joined by sight */
    s_say(s, "a", F, 10, 0);
    s_say(s, "a", A, 11, 0); /* rejoined */
    s_say(s, "b", S, 10, 0);
    s_say(s, "b", A, 11, 0); /* refuted: it never left, no introduction */
    assert_int_equal(s_count_acts(rec, ACT_GOSSIP, 0), 3);
    assert_string_equal(rec->acts[0].to, "x");
    assert_string_equal(rec->acts[1].to, "y");
    assert_string_equal(rec->acts[2].to, "a");
    cohort_swim_destroy(&s);
    free(rec);
}

static void test_gossip_timer_runs_only_while_something_is_queued(void **state)
{
    (void)state;
    rec_t *rec = cohort_calloc(1, sizeof *rec);
    cohort_swim_config_t cfg = s_quiet_cfg();
    cfg.gossip_interval_ms = 200;
    cfg.gossip_fanout = 3;
    cohort_swim_t *s = s_rig(rec, &cfg, FIVE);
    s_say(s, "e", S, 10, 0); /* a suspect is a gossip target too */
    cohort_swim_tick(s, 0);
    assert_int_equal(s_count_acts(rec, ACT_GOSSIP, 0), 3);
    cohort_swim_tick(s, 199);
    assert_int_equal(s_count_acts(rec, ACT_GOSSIP, 0), 3);
    cohort_swim_tick(s, 200);
    assert_int_equal(s_count_acts(rec, ACT_GOSSIP, 0), 6);
    for (size_t i = 0; i < rec->n_acts; i++)
        if (rec->acts[i].kind == ACT_GOSSIP)
            assert_string_not_equal(rec->acts[i].to, "me");
    cohort_swim_update_t out[16];
    while (cohort_swim_piggyback(s, NULL, 16, out) > 0)
        ;
    size_t before = rec->n_acts;
    cohort_swim_tick(s, 400);
    assert_int_equal(s_count_acts(rec, ACT_GOSSIP, before), 0);
    cohort_swim_destroy(&s);
    free(rec);
}

static void test_leave_marks_self_left_stops_probing_and_ignores_news_about_self(void **state)
{
    (void)state;
    rec_t *rec = cohort_calloc(1, sizeof *rec);
    cohort_swim_config_t cfg = s_quiet_cfg();
    cohort_swim_t *s = s_rig(rec, &cfg, FIVE);
    cohort_swim_update_t out[16];
    while (cohort_swim_piggyback(s, NULL, 16, out) > 0)
        ;
    cohort_swim_leave(s, 500);
    cohort_swim_leave(s, 600); /* idempotent */
    assert_int_equal(rec->n_evs, 1);
    assert_true(rec->evs[0].self);
    assert_string_equal(rec->evs[0].member, "me");
    assert_int_equal(rec->evs[0].to, COHORT_SWIM_LEFT);
    assert_string_equal(rec->evs[0].reason, "left");
    assert_int_equal(cohort_swim_pending(s), 1);
    assert_int_equal(cohort_swim_piggyback(s, "a", 16, out), 1);
    assert_string_equal(out[0].node, "me");
    assert_int_equal(out[0].state, COHORT_SWIM_LEFT);
    assert_int_equal(out[0].incarnation, 100);
    for (int64_t t = 500; t < 5000; t += 50)
        cohort_swim_tick(s, t);
    assert_int_equal(s_count_acts(rec, ACT_PING, 0), 0);
    cohort_swim_ping_req(s, "a", "b", 1, 5000);
    assert_int_equal(rec->n_acts, 0);
    assert_int_equal(s_say(s, "me", S, 100, 5000), OLD);
    assert_int_equal(cohort_swim_incarnation(s), 100);
    assert_int_equal(s_state(s, "me"), COHORT_SWIM_LEFT);
    cohort_swim_destroy(&s);
    free(rec);
}

static void test_new_self_endpoints_raise_the_incarnation_and_spread(void **state)
{
    (void)state;
    rec_t *rec = cohort_calloc(1, sizeof *rec);
    cohort_swim_config_t cfg = s_quiet_cfg();
    cohort_swim_t *s = s_rig(rec, &cfg, FIVE);
    cohort_swim_update_t out[16];
    while (cohort_swim_piggyback(s, NULL, 16, out) > 0)
        ;
    const char *eps[] = {"tcp://192.0.2.1:7000", "tcp://198.51.100.7:40001"};
    assert_true(cohort_swim_set_endpoints(s, eps, 2));
    assert_int_equal(cohort_swim_incarnation(s), 101);
    assert_true(cohort_swim_set_endpoints(s, eps, 2)); /* same: nothing */
    assert_int_equal(cohort_swim_incarnation(s), 101);
    assert_int_equal(cohort_swim_piggyback(s, NULL, 16, out), 1);
    assert_string_equal(out[0].node, "me");
    assert_int_equal(out[0].incarnation, 101);
    assert_int_equal(out[0].n_endpoints, 2);
    assert_string_equal(out[0].endpoints[1], "tcp://198.51.100.7:40001");
    const char *bad[] = {"tcp://192.0.2.1:7000", ""};
    assert_false(cohort_swim_set_endpoints(s, bad, 2));
    assert_false(cohort_swim_set_endpoints(s, eps, COHORT_SWIM_MAX_ENDPOINTS + 1));
    assert_int_equal(cohort_swim_incarnation(s), 101);
    assert_true(cohort_swim_set_endpoints(s, eps, 1));
    assert_int_equal(cohort_swim_incarnation(s), 102);
    cohort_swim_member_t m;
    cohort_swim_get(s, "me", &m);
    assert_true(m.self);
    assert_int_equal(m.n_endpoints, 1);
    cohort_swim_destroy(&s);
    free(rec);
}

static void test_removing_a_member_cancels_its_probe_and_listing_is_in_name_order(void **state)
{
    (void)state;
    rec_t *rec = cohort_calloc(1, sizeof *rec);
    cohort_swim_config_t cfg = s_quiet_cfg();
    cohort_swim_t *s = s_rig(rec, &cfg, FIVE);
    int64_t now = 0;
    act_t ping = rec->acts[s_tick_to_ping(s, rec, &now, 1000)];
    assert_true(cohort_swim_remove(s, ping.to));
    assert_false(cohort_swim_remove(s, ping.to));
    assert_false(cohort_swim_remove(s, "me"));
    for (int64_t t = now; t < now + 990; t += 10)
        cohort_swim_tick(s, t);
    assert_int_equal(s_count_acts(rec, ACT_PING_REQ, 0), 0); /* probe cancelled */
    assert_int_equal(rec->n_evs, 0);
    assert_false(cohort_swim_ack(s, ping.to, ping.nonce, now + 5));
    assert_int_equal(cohort_swim_size(s), 5);
    cohort_swim_member_t prev, m;
    cohort_swim_member_at(s, 0, &prev);
    for (size_t i = 1; i < cohort_swim_size(s); i++) {
        cohort_swim_member_at(s, i, &m);
        assert_true(strcmp(prev.name, m.name) < 0);
        assert_string_not_equal(m.name, ping.to);
        prev = m;
    }
    cohort_swim_destroy(&s);
    free(rec);
}

static void test_suspicion_timeout_scales_with_log_n_when_asked(void **state)
{
    (void)state;
    rec_t *rec = cohort_calloc(1, sizeof *rec);
    cohort_swim_config_t cfg = s_quiet_cfg();
    cfg.suspicion_scale = true;
    const char *const none[] = {NULL};
    cohort_swim_t *s = s_rig(rec, &cfg, none);
    static const struct {
        size_t n;
        int64_t timeout;
    } rows[] = {{1, 4000}, {15, 4000}, {16, 5000}, {31, 5000}, {32, 6000}, {63, 6000}, {64, 7000}};
    char name[16];
    for (size_t r = 0; r < sizeof rows / sizeof *rows; r++) {
        while (cohort_swim_size(s) < rows[r].n) {
            snprintf(name, sizeof name, "m%zu", cohort_swim_size(s));
            cohort_swim_add(s, name, 0);
        }
        assert_int_equal(cohort_swim_suspicion_timeout(s), rows[r].timeout);
    }
    cohort_swim_destroy(&s);
    cfg.suspicion_scale = false;
    s = s_rig(rec, &cfg, none);
    for (int i = 0; i < 100; i++) {
        snprintf(name, sizeof name, "m%d", i);
        cohort_swim_add(s, name, 0);
    }
    assert_int_equal(cohort_swim_suspicion_timeout(s), 4000);
    assert_int_equal(cohort_swim_retransmit_limit(s), 4 * 7);
    cohort_swim_destroy(&s);
    free(rec);
}

/* ================= simulated clusters ================= */

#define SIM_MAX 64
#define SIM_PB 8   /* updates per envelope */
#define SIM_STEP 5 /* ms per simulation step */
#define SIM_LAT_MIN 5
#define SIM_LAT_MAX 30

typedef enum { MSG_PING, MSG_ACK, MSG_PING_REQ, MSG_PING_REQ_ACK, MSG_GOSSIP } msg_kind_t;

typedef struct {
    char node[8];
    cohort_swim_state_t state;
    uint64_t incarnation;
    size_t n_eps;
    char eps[2][32];
} sim_upd_t;

typedef struct {
    msg_kind_t kind;
    int from, to;
    int64_t at;
    char target[8];
    uint64_t nonce;
    bool reachable;
    size_t n_upd;
    sim_upd_t upd[SIM_PB];
} msg_t;

typedef struct {
    int observer;
    int member;
    cohort_swim_state_t from, to;
    uint64_t incarnation;
    const char *reason; /* static in swim.c */
    int64_t at;
} sim_ev_t;

typedef struct sim sim_t;

typedef struct {
    sim_t *sim;
    int id;
} sim_ctx_t;

struct sim {
    int n;
    cohort_swim_config_t cfg;
    cohort_swim_t *node[SIM_MAX];
    bool up[SIM_MAX];
    uint64_t inc[SIM_MAX];
    sim_ctx_t ctx[SIM_MAX];
    bool cut[SIM_MAX][SIM_MAX]; /* from -> to dropped */
    unsigned loss_pct;
    /* Extra drop rule for a test; NULL: none. */
    bool (*drop)(sim_t *sim, const msg_t *m);
    int drop_a, drop_b;
    uint64_t rng;
    int64_t now;
    msg_t *q;
    size_t qn, qcap;
    sim_ev_t *evs;
    size_t n_evs, evcap;
    uint64_t sent, lost;
};

static int s_id(const char *name)
{
    return atoi(name + 1);
}

static void s_sim_send(sim_t *sim, int from, msg_kind_t kind, const char *to, const char *target,
                       uint64_t nonce, bool reachable)
{
    int t = s_id(to);
    assert_true(t >= 0 && t < sim->n && t != from);
    msg_t m = {.kind = kind, .from = from, .to = t, .nonce = nonce, .reachable = reachable};
    if (target)
        snprintf(m.target, sizeof m.target, "%s", target);
    cohort_swim_update_t out[SIM_PB];
    m.n_upd = cohort_swim_piggyback(sim->node[from], to, SIM_PB, out);
    for (size_t i = 0; i < m.n_upd; i++) {
        sim_upd_t *u = &m.upd[i];
        snprintf(u->node, sizeof u->node, "%s", out[i].node);
        u->state = out[i].state;
        u->incarnation = out[i].incarnation;
        u->n_eps = out[i].n_endpoints < 2 ? out[i].n_endpoints : 2;
        for (size_t e = 0; e < u->n_eps; e++)
            snprintf(u->eps[e], sizeof u->eps[e], "%s", out[i].endpoints[e]);
    }
    m.at =
        sim->now + SIM_LAT_MIN + (int64_t)(s_splitmix(&sim->rng) % (SIM_LAT_MAX - SIM_LAT_MIN + 1));
    sim->sent++;
    if (!sim->up[from] || sim->cut[from][t] || (sim->drop && sim->drop(sim, &m)) ||
        s_splitmix(&sim->rng) % 100 < sim->loss_pct) {
        sim->lost++;
        return;
    }
    if (sim->qn == sim->qcap) {
        sim->qcap = sim->qcap ? sim->qcap * 2 : 1024;
        sim->q = cohort_realloc(sim->q, sim->qcap * sizeof *sim->q);
    }
    sim->q[sim->qn++] = m;
}

static void s_sim_ping(void *arg, const char *to, uint64_t nonce)
{
    sim_ctx_t *c = arg;
    s_sim_send(c->sim, c->id, MSG_PING, to, NULL, nonce, false);
}

static void s_sim_ping_req(void *arg, const char *to, const char *target, uint64_t nonce)
{
    sim_ctx_t *c = arg;
    s_sim_send(c->sim, c->id, MSG_PING_REQ, to, target, nonce, false);
}

static void s_sim_ping_req_ack(void *arg, const char *to, const char *target, uint64_t nonce,
                               bool reachable)
{
    sim_ctx_t *c = arg;
    s_sim_send(c->sim, c->id, MSG_PING_REQ_ACK, to, target, nonce, reachable);
}

static void s_sim_gossip(void *arg, const char *to)
{
    sim_ctx_t *c = arg;
    s_sim_send(c->sim, c->id, MSG_GOSSIP, to, NULL, 0, false);
}

static void s_sim_event(void *arg, const cohort_swim_event_t *e)
{
    sim_ctx_t *c = arg;
    sim_t *sim = c->sim;
    if (sim->n_evs == sim->evcap) {
        sim->evcap = sim->evcap ? sim->evcap * 2 : 1024;
        sim->evs = cohort_realloc(sim->evs, sim->evcap * sizeof *sim->evs);
    }
    sim->evs[sim->n_evs++] = (sim_ev_t){
        .observer = c->id,
        .member = s_id(e->member),
        .from = e->from,
        .to = e->to,
        .incarnation = e->incarnation,
        .reason = e->reason,
        .at = sim->now,
    };
}

static uint32_t s_sim_random(void *arg)
{
    sim_ctx_t *c = arg;
    return (uint32_t)s_splitmix(&c->sim->rng);
}

static const cohort_swim_ops_t s_sim_ops = {
    .ping = s_sim_ping,
    .ping_req = s_sim_ping_req,
    .ping_req_ack = s_sim_ping_req_ack,
    .gossip = s_sim_gossip,
    .event = s_sim_event,
    .random = s_sim_random,
};

static void s_name(int i, char *buf, size_t len)
{
    snprintf(buf, len, "n%02d", i);
}

/* Starts (or restarts) node i with incarnation inc, knowing every other
 * node as a roster member, with one endpoint. */
static void s_sim_start(sim_t *sim, int i, uint64_t inc)
{
    char name[8], ep[32];
    cohort_swim_destroy(&sim->node[i]);
    s_name(i, name, sizeof name);
    sim->node[i] = cohort_swim_new(name, inc, &sim->cfg, &s_sim_ops, &sim->ctx[i]);
    for (int j = 0; j < sim->n; j++) {
        if (j == i)
            continue;
        char other[8];
        s_name(j, other, sizeof other);
        assert_true(cohort_swim_add(sim->node[i], other, sim->now));
    }
    snprintf(ep, sizeof ep, "tcp://10.0.0.%d:7000", i);
    const char *eps[] = {ep};
    cohort_swim_set_endpoints(sim->node[i], eps, 1);
    sim->inc[i] = cohort_swim_incarnation(sim->node[i]);
    sim->up[i] = true;
}

/* For soak runs: COHORT_SWIM_SEED=k shifts every simulation's seed by k,
 * COHORT_SWIM_SEEDS=n runs the loss test over n seeds and
 * COHORT_SWIM_LOSS=p makes its loss p percent. */
static uint64_t s_env(const char *name, uint64_t dflt)
{
    const char *v = getenv(name);
    return v && *v ? strtoull(v, NULL, 10) : dflt;
}

static sim_t *s_sim_new(int n, uint64_t seed, const cohort_swim_config_t *cfg)
{
    assert_true(n <= SIM_MAX);
    sim_t *sim = cohort_calloc(1, sizeof *sim);
    sim->n = n;
    sim->rng = seed + 7919 * s_env("COHORT_SWIM_SEED", 0);
    if (cfg)
        sim->cfg = *cfg;
    else
        cohort_swim_config_default(&sim->cfg);
    sim->now = 1000;
    for (int i = 0; i < n; i++) {
        sim->ctx[i] = (sim_ctx_t){sim, i};
        s_sim_start(sim, i, 1000 + (uint64_t)i);
    }
    return sim;
}

static void s_sim_destroy(sim_t **sim_p)
{
    sim_t *sim = *sim_p;
    for (int i = 0; i < sim->n; i++)
        cohort_swim_destroy(&sim->node[i]);
    free(sim->q);
    free(sim->evs);
    free(sim);
    *sim_p = NULL;
}

/* Delivers one message the way the node will: updates first, then the
 * frame counts as a sign of life, then the body. */
static void s_sim_deliver(sim_t *sim, const msg_t *m)
{
    if (!sim->up[m->to])
        return;
    cohort_swim_t *s = sim->node[m->to];
    char from[8];
    s_name(m->from, from, sizeof from);
    for (size_t i = 0; i < m->n_upd; i++) {
        const sim_upd_t *u = &m->upd[i];
        const char *eps[2] = {u->eps[0], u->eps[1]};
        cohort_swim_update_t cu = {u->node, u->state, u->incarnation, eps, u->n_eps};
        cohort_swim_merge(s, from, &cu, sim->now);
    }
    cohort_swim_heard(s, from, sim->now);
    switch (m->kind) {
    case MSG_PING:
        s_sim_send(sim, m->to, MSG_ACK, from, NULL, m->nonce, false);
        break;
    case MSG_ACK:
        cohort_swim_ack(s, from, m->nonce, sim->now);
        break;
    case MSG_PING_REQ:
        cohort_swim_ping_req(s, from, m->target, m->nonce, sim->now);
        break;
    case MSG_PING_REQ_ACK:
        cohort_swim_ping_req_ack(s, from, m->target, m->nonce, m->reachable, sim->now);
        break;
    case MSG_GOSSIP:
        break;
    }
}

static void s_sim_step(sim_t *sim)
{
    sim->now += SIM_STEP;
    /* Messages sent while delivering go to the end of the queue with a
     * later time, so one pass over the current length is enough. */
    size_t len = sim->qn, keep = 0;
    for (size_t i = 0; i < len; i++) {
        if (sim->q[i].at > sim->now) {
            sim->q[keep++] = sim->q[i];
            continue;
        }
        msg_t m = sim->q[i];
        s_sim_deliver(sim, &m);
    }
    if (sim->qn > len)
        memmove(&sim->q[keep], &sim->q[len], (sim->qn - len) * sizeof *sim->q);
    sim->qn = keep + (sim->qn - len);
    for (int i = 0; i < sim->n; i++) {
        if (!sim->up[i])
            continue;
        int64_t due = cohort_swim_next_due(sim->node[i]);
        if (due <= sim->now) /* -1 before the first tick */
            cohort_swim_tick(sim->node[i], sim->now);
    }
}

static cohort_swim_state_t s_view(const sim_t *sim, int observer, int member)
{
    char name[8];
    s_name(member, name, sizeof name);
    cohort_swim_member_t m;
    assert_true(cohort_swim_get(sim->node[observer], name, &m));
    return m.state;
}

/* Every running node other than member sees member in state. */
static bool s_all_see(const sim_t *sim, int member, cohort_swim_state_t state)
{
    for (int i = 0; i < sim->n; i++)
        if (i != member && sim->up[i] && s_view(sim, i, member) != state)
            return false;
    return true;
}

/* Every running node sees every running node ALIVE at its incarnation. */
static bool s_converged(const sim_t *sim)
{
    for (int i = 0; i < sim->n; i++) {
        if (!sim->up[i])
            continue;
        for (int j = 0; j < sim->n; j++) {
            if (!sim->up[j])
                continue;
            char name[8];
            s_name(j, name, sizeof name);
            cohort_swim_member_t m;
            cohort_swim_get(sim->node[i], name, &m);
            if (m.state != COHORT_SWIM_ALIVE ||
                m.incarnation != cohort_swim_incarnation(sim->node[j]))
                return false;
        }
    }
    return true;
}

typedef bool(sim_pred_fn)(const sim_t *sim, int a, int b);

/* Steps until pred holds or limit (absolute ms) passes; returns the time it
 * first held, or -1. */
static int64_t s_run_until(sim_t *sim, sim_pred_fn *pred, int a, int b, int64_t limit)
{
    while (sim->now <= limit) {
        if (pred(sim, a, b))
            return sim->now;
        s_sim_step(sim);
    }
    return -1;
}

static void s_run_for(sim_t *sim, int64_t ms)
{
    int64_t end = sim->now + ms;
    while (sim->now < end)
        s_sim_step(sim);
}

static bool s_pred_converged(const sim_t *sim, int a, int b)
{
    (void)a;
    (void)b;
    return s_converged(sim);
}

static bool s_pred_all_see_failed(const sim_t *sim, int member, int b)
{
    (void)b;
    return s_all_see(sim, member, COHORT_SWIM_FAILED);
}

static bool s_pred_all_see_left(const sim_t *sim, int member, int b)
{
    (void)b;
    return s_all_see(sim, member, COHORT_SWIM_LEFT);
}

static bool s_pred_someone_suspects(const sim_t *sim, int member, int b)
{
    (void)b;
    for (int i = 0; i < sim->n; i++)
        if (i != member && sim->up[i] && s_view(sim, i, member) == COHORT_SWIM_SUSPECT)
            return true;
    return false;
}

static bool s_pred_sees_suspect(const sim_t *sim, int observer, int member)
{
    return s_view(sim, observer, member) == COHORT_SWIM_SUSPECT;
}

/* Index of the first event by observer about member at or after since, at
 * or after index start; -1 if none. */
static long s_find_ev(const sim_t *sim, size_t start, int observer, int member, int64_t since)
{
    for (size_t i = start; i < sim->n_evs; i++) {
        const sim_ev_t *e = &sim->evs[i];
        if (e->observer == observer && e->member == member && e->at >= since)
            return (long)i;
    }
    return -1;
}

static size_t s_count_ev(const sim_t *sim, int member, cohort_swim_state_t to, int64_t since)
{
    size_t n = 0;
    for (size_t i = 0; i < sim->n_evs; i++)
        n += sim->evs[i].member == member && sim->evs[i].to == to && sim->evs[i].at >= since;
    return n;
}

static void s_dump(const sim_t *sim)
{
    for (int i = 0; i < sim->n; i++) {
        if (!sim->up[i])
            continue;
        for (int j = 0; j < sim->n; j++) {
            if (!sim->up[j])
                continue;
            char name[8];
            s_name(j, name, sizeof name);
            cohort_swim_member_t m;
            cohort_swim_get(sim->node[i], name, &m);
            if (m.state != COHORT_SWIM_ALIVE ||
                m.incarnation != cohort_swim_incarnation(sim->node[j]))
                print_message("      n%02d sees %s %s@%" PRIu64 " (its own: %" PRIu64 ")\n", i,
                              name, cohort_swim_state_name(m.state), m.incarnation,
                              cohort_swim_incarnation(sim->node[j]));
        }
    }
}

static int64_t s_converge_or_fail(sim_t *sim, int64_t within)
{
    int64_t t = s_run_until(sim, s_pred_converged, 0, 0, sim->now + within);
    if (t < 0)
        s_dump(sim);
    assert_true(t >= 0);
    return t;
}

/* Converged, then a moment more so that later events are the test's. */
static void s_settle(sim_t *sim)
{
    s_converge_or_fail(sim, 10000);
    s_run_for(sim, 1000);
    assert_true(s_converged(sim));
}

static void test_cluster_of_20_converges_to_all_alive_with_endpoints(void **state)
{
    (void)state;
    sim_t *sim = s_sim_new(20, 1, NULL);
    int64_t start = sim->now;
    int64_t t = s_converge_or_fail(sim, 10000);
    print_message("      20 nodes started together: all see all alive after %" PRId64 " ms\n",
                  t - start);
    /* Endpoints came with the ALIVE updates. */
    for (int i = 0; i < sim->n; i++) {
        for (int j = 0; j < sim->n; j++) {
            if (i == j)
                continue;
            char name[8], ep[32];
            s_name(j, name, sizeof name);
            snprintf(ep, sizeof ep, "tcp://10.0.0.%d:7000", j);
            cohort_swim_member_t m;
            cohort_swim_get(sim->node[i], name, &m);
            assert_int_equal(m.n_endpoints, 1);
            assert_string_equal(m.endpoints[0], ep);
        }
    }
    /* Each node saw each other join exactly once, and nothing else. */
    assert_int_equal(sim->n_evs, 20 * 19);
    for (size_t i = 0; i < sim->n_evs; i++) {
        assert_int_equal(sim->evs[i].from, COHORT_SWIM_UNKNOWN);
        assert_int_equal(sim->evs[i].to, COHORT_SWIM_ALIVE);
        assert_string_equal(sim->evs[i].reason, "joined");
    }
    /* And it stays that way. */
    s_run_for(sim, 30000);
    assert_true(s_converged(sim));
    assert_int_equal(sim->n_evs, 20 * 19);
    s_sim_destroy(&sim);
}

/* The worst case for every running node to mark a silent member FAILED:
 * each node probes every candidate once per round of (n - 1) periods, so it
 * probes the silent one within 2 (n - 1) periods (its last probe may come
 * just before the silence, its next at the end of the next round); that
 * probe's verdict comes a period later and FAILED a suspicion timeout after
 * that, or earlier by gossip. Plus a step of the simulation. */
static int64_t s_failure_bound(const sim_t *sim, int n)
{
    return (2 * (n - 1) + 1) * sim->cfg.probe_interval_ms + sim->cfg.suspicion_timeout_ms +
           SIM_STEP;
}

static void test_silent_member_is_suspected_then_failed_everywhere_within_bound(void **state)
{
    (void)state;
    sim_t *sim = s_sim_new(20, 2, NULL);
    s_settle(sim);
    s_run_for(sim, 5000);
    size_t ev0 = sim->n_evs;
    const int x = 7;
    int64_t kill = sim->now;
    sim->up[x] = false;
    int64_t bound = s_failure_bound(sim, 20);
    int64_t first = s_run_until(sim, s_pred_someone_suspects, x, 0, kill + bound);
    int64_t t = s_run_until(sim, s_pred_all_see_failed, x, 0, kill + bound);
    print_message("      20 nodes: first suspicion %" PRId64 " ms, all failed %" PRId64
                  " ms after the kill (bound %" PRId64 " ms)\n",
                  first - kill, t - kill, bound);
    assert_true(t >= 0);
    assert_true(t - kill >= sim->cfg.suspicion_timeout_ms);
    /* Every other node: ALIVE -> SUSPECT -> FAILED about x, nothing else
     * about anyone (no loss: nobody else is ever suspected). */
    size_t probe_timeouts = 0, suspicion_timeouts = 0;
    for (int i = 0; i < sim->n; i++) {
        if (i == x)
            continue;
        long a = s_find_ev(sim, ev0, i, x, kill);
        assert_true(a >= 0);
        long b = s_find_ev(sim, (size_t)a + 1, i, x, kill);
        assert_true(b >= 0);
        assert_int_equal(s_find_ev(sim, (size_t)b + 1, i, x, kill), -1);
        const sim_ev_t *ea = &sim->evs[a], *eb = &sim->evs[b];
        assert_int_equal(ea->from, COHORT_SWIM_ALIVE);
        assert_int_equal(ea->to, COHORT_SWIM_SUSPECT);
        assert_int_equal(eb->from, COHORT_SWIM_SUSPECT);
        assert_int_equal(eb->to, COHORT_SWIM_FAILED);
        assert_int_equal(ea->incarnation, sim->inc[x]);
        assert_int_equal(eb->incarnation, sim->inc[x]);
        assert_true(!strcmp(ea->reason, "probe-timeout") ||
                    !strcmp(ea->reason, "suspected-by-gossip"));
        assert_true(!strcmp(eb->reason, "suspicion-timeout") ||
                    !strcmp(eb->reason, "failed-by-gossip"));
        probe_timeouts += !strcmp(ea->reason, "probe-timeout");
        suspicion_timeouts += !strcmp(eb->reason, "suspicion-timeout");
    }
    assert_true(probe_timeouts >= 1);
    assert_true(suspicion_timeouts >= 1);
    assert_int_equal(sim->n_evs - ev0, 2 * 19);
    /* It stays FAILED; rechecks of it go unanswered and change nothing. */
    s_run_for(sim, 20000);
    assert_true(s_all_see(sim, x, COHORT_SWIM_FAILED));
    assert_int_equal(sim->n_evs - ev0, 2 * 19);
    s_sim_destroy(&sim);
}

static bool s_drop_between(sim_t *sim, const msg_t *m)
{
    return (m->from == sim->drop_a && m->to == sim->drop_b) ||
           (m->from == sim->drop_b && m->to == sim->drop_a);
}

static void test_member_cut_off_from_one_prober_is_reached_indirectly(void **state)
{
    (void)state;
    sim_t *sim = s_sim_new(20, 3, NULL);
    s_settle(sim);
    size_t ev0 = sim->n_evs;
    const int a = 3, y = 11;
    sim->drop = s_drop_between;
    sim->drop_a = a;
    sim->drop_b = y;
    cohort_swim_stats_t before, after;
    cohort_swim_stats(sim->node[a], &before);
    /* Two full rounds of a's: it probes y at least once. */
    s_run_for(sim, 2 * 19 * sim->cfg.probe_interval_ms + 1000);
    cohort_swim_stats(sim->node[a], &after);
    assert_true(after.probes_indirect > before.probes_indirect);
    assert_int_equal(sim->n_evs, ev0); /* nobody suspected anybody */
    assert_true(s_converged(sim));
    s_sim_destroy(&sim);
}

static bool s_drop_prober(sim_t *sim, const msg_t *m)
{
    /* a cannot reach y, and a's PingReqs are lost too. */
    return s_drop_between(sim, m) || (m->from == sim->drop_a && m->kind == MSG_PING_REQ);
}

static void test_false_suspicion_is_refuted_and_member_ends_alive_everywhere(void **state)
{
    (void)state;
    sim_t *sim = s_sim_new(20, 4, NULL);
    s_settle(sim);
    const int a = 5, y = 12;
    sim->drop = s_drop_prober;
    sim->drop_a = a;
    sim->drop_b = y;
    int64_t t0 = sim->now;
    int64_t suspected = s_run_until(sim, s_pred_sees_suspect, a, y, t0 + 2 * 19 * 1000 + 1000);
    assert_true(suspected >= 0);
    sim->drop = NULL; /* healed: the suspicion reaches y, which refutes */
    uint64_t inc = cohort_swim_incarnation(sim->node[y]);
    assert_int_equal(inc, sim->inc[y]);
    int64_t healed = s_converge_or_fail(sim, sim->cfg.suspicion_timeout_ms);
    print_message("      false suspicion of y by a refuted everywhere %" PRId64
                  " ms after a suspected it\n",
                  healed - suspected);
    assert_true(cohort_swim_incarnation(sim->node[y]) > inc);
    /* Nobody ever marked y FAILED; a saw suspect then refuted. */
    assert_int_equal(s_count_ev(sim, y, COHORT_SWIM_FAILED, t0), 0);
    long e1 = s_find_ev(sim, 0, a, y, t0);
    assert_true(e1 >= 0);
    assert_string_equal(sim->evs[e1].reason, "probe-timeout");
    long e2 = s_find_ev(sim, (size_t)e1 + 1, a, y, t0);
    assert_true(e2 >= 0);
    assert_string_equal(sim->evs[e2].reason, "refuted");
    assert_int_equal(sim->evs[e2].incarnation, cohort_swim_incarnation(sim->node[y]));
    cohort_swim_stats_t st;
    cohort_swim_stats(sim->node[y], &st);
    assert_true(st.refutations >= 1);
    s_run_for(sim, 10000);
    assert_true(s_converged(sim));
    assert_int_equal(s_count_ev(sim, y, COHORT_SWIM_FAILED, t0), 0);
    s_sim_destroy(&sim);
}

static void test_leaving_member_is_seen_as_left_not_failed(void **state)
{
    (void)state;
    sim_t *sim = s_sim_new(20, 5, NULL);
    s_settle(sim);
    const int x = 9;
    int64_t t0 = sim->now;
    cohort_swim_leave(sim->node[x], sim->now);
    /* The leaver keeps running for a moment to flush, then stops. */
    int64_t t = s_run_until(sim, s_pred_all_see_left, x, 0, t0 + 2000);
    assert_true(t >= 0);
    s_run_for(sim, t0 + 2000 - sim->now);
    sim->up[x] = false;
    s_run_for(sim, 3 * sim->cfg.suspicion_timeout_ms);
    assert_true(s_all_see(sim, x, COHORT_SWIM_LEFT));
    assert_int_equal(s_count_ev(sim, x, COHORT_SWIM_SUSPECT, t0), 0);
    assert_int_equal(s_count_ev(sim, x, COHORT_SWIM_FAILED, t0), 0);
    for (int i = 0; i < sim->n; i++) {
        long e = s_find_ev(sim, 0, i, x, t0);
        assert_true(e >= 0);
        assert_int_equal(sim->evs[e].from, COHORT_SWIM_ALIVE);
        assert_int_equal(sim->evs[e].to, COHORT_SWIM_LEFT);
        assert_string_equal(sim->evs[e].reason, "left");
        assert_int_equal(s_find_ev(sim, (size_t)e + 1, i, x, t0), -1);
    }
    print_message("      a leave reached all 19 others in %" PRId64 " ms\n", t - t0);
    s_sim_destroy(&sim);
}

static void test_failed_member_restarting_with_higher_incarnation_rejoins(void **state)
{
    (void)state;
    sim_t *sim = s_sim_new(20, 6, NULL);
    s_settle(sim);
    const int x = 14;
    sim->up[x] = false;
    assert_true(
        s_run_until(sim, s_pred_all_see_failed, x, 0, sim->now + s_failure_bound(sim, 20)) >= 0);
    uint64_t old_inc = sim->inc[x];
    int64_t t0 = sim->now + 1;    /* events after the last FAILED */
    s_sim_start(sim, x, 5000000); /* its start time, later than before */
    int64_t t = s_converge_or_fail(sim, 10000);
    print_message("      a restarted member rejoined everywhere in %" PRId64 " ms\n", t - t0);
    for (int i = 0; i < sim->n; i++) {
        if (i == x)
            continue;
        long e = s_find_ev(sim, 0, i, x, t0);
        assert_true(e >= 0);
        assert_int_equal(sim->evs[e].from, COHORT_SWIM_FAILED);
        assert_int_equal(sim->evs[e].to, COHORT_SWIM_ALIVE);
        assert_string_equal(sim->evs[e].reason, "rejoined");
        assert_true(sim->evs[e].incarnation > old_inc);
        assert_int_equal(s_find_ev(sim, (size_t)e + 1, i, x, t0), -1);
    }
    s_sim_destroy(&sim);
}

static bool s_pred_isolated_both_ways(const sim_t *sim, int x, int b)
{
    (void)b;
    if (!s_all_see(sim, x, COHORT_SWIM_FAILED))
        return false;
    for (int j = 0; j < sim->n; j++)
        if (j != x && s_view(sim, x, j) != COHORT_SWIM_FAILED)
            return false;
    return true;
}

static void test_partitioned_member_and_cluster_rejoin_each_other_after_healing(void **state)
{
    (void)state;
    const int n = 10;
    sim_t *sim = s_sim_new(n, 7, NULL);
    s_settle(sim);
    const int x = 4;
    for (int j = 0; j < n; j++)
        sim->cut[x][j] = sim->cut[j][x] = true;
    int64_t bound = s_failure_bound(sim, n);
    assert_true(s_run_until(sim, s_pred_isolated_both_ways, x, 0, sim->now + bound) >= 0);
    int64_t t0 = sim->now + 1; /* events after the isolation completed */
    memset(sim->cut, 0, sizeof sim->cut);
    /* Rechecks find x, whose answer refutes; x hears the others' verdicts
     * the same way. Every node gets to every other within a few rounds. */
    int64_t t = s_converge_or_fail(sim, 3 * (n - 1) * sim->cfg.probe_interval_ms);
    print_message("      10 nodes: a partition of one healed everywhere in %" PRId64 " ms\n",
                  t - t0);
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < n; j++) {
            if (i == j || (i != x && j != x))
                continue;
            long e = s_find_ev(sim, 0, i, j, t0);
            assert_true(e >= 0);
            assert_string_equal(sim->evs[e].reason, "rejoined");
        }
    }
    s_sim_destroy(&sim);
}

static void test_ten_percent_loss_converges_and_no_live_member_ends_failed(void **state)
{
    (void)state;
    const int seeds = (int)s_env("COHORT_SWIM_SEEDS", 8);
    const unsigned loss = (unsigned)s_env("COHORT_SWIM_LOSS", 10);
    size_t transient = 0, suspicions = 0;
    for (int seed = 0; seed < seeds; seed++) {
        sim_t *sim = s_sim_new(20, 100 + (uint64_t)seed, NULL);
        sim->loss_pct = loss;
        s_converge_or_fail(sim, 20000);
        int64_t t0 = sim->now;
        s_run_for(sim, 60000);
        int64_t settled = s_converge_or_fail(sim, 10000);
        (void)settled;
        for (int i = 0; i < sim->n; i++) {
            for (int j = 0; j < sim->n; j++)
                assert_int_equal(s_view(sim, i, j), COHORT_SWIM_ALIVE);
            transient += s_count_ev(sim, i, COHORT_SWIM_FAILED, t0);
            suspicions += s_count_ev(sim, i, COHORT_SWIM_SUSPECT, t0);
        }
        s_sim_destroy(&sim);
    }
    print_message("      %u%% loss, 20 nodes, %d seeds x 60 s: %zu suspicion events (all "
                  "refuted), %zu failed events\n",
                  loss, seeds, suspicions, transient);
    assert_int_equal(transient, 0);
}

static int s_cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static void test_figure_time_to_detect_a_failure_in_50_members(void **state)
{
    (void)state;
    enum { SEEDS = 9, N = 50 };
    int64_t first[SEEDS], all[SEEDS];
    for (int seed = 0; seed < SEEDS; seed++) {
        sim_t *sim = s_sim_new(N, 1000 + (uint64_t)seed, NULL);
        s_converge_or_fail(sim, 20000);
        s_run_for(sim, 2000);
        int x = (int)(s_splitmix(&sim->rng) % N);
        int64_t kill = sim->now;
        sim->up[x] = false;
        int64_t bound = s_failure_bound(sim, N);
        first[seed] = s_run_until(sim, s_pred_someone_suspects, x, 0, kill + bound) - kill;
        all[seed] = s_run_until(sim, s_pred_all_see_failed, x, 0, kill + bound) - kill;
        assert_true(first[seed] >= 0 && all[seed] >= 0);
        s_sim_destroy(&sim);
    }
    qsort(first, SEEDS, sizeof *first, s_cmp_i64);
    qsort(all, SEEDS, sizeof *all, s_cmp_i64);
    print_message("      50 members, defaults: failure detected (first suspicion) in median "
                  "%" PRId64 " ms, FAILED everywhere in median %" PRId64 " ms (max %" PRId64
                  ") over %d seeds\n",
                  first[SEEDS / 2], all[SEEDS / 2], all[SEEDS - 1], SEEDS);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_probe_answered_directly_raises_no_suspicion),
        cmocka_unit_test(test_unanswered_probe_asks_k_helpers_then_suspects_then_fails),
        cmocka_unit_test(test_reachable_ping_req_ack_counts_as_the_answer),
        cmocka_unit_test(test_helper_pings_target_and_reports_reachable_or_not),
        cmocka_unit_test(test_heard_counts_as_ack_but_never_lifts_a_verdict),
        cmocka_unit_test(test_first_sign_of_life_joins_at_incarnation_zero_and_real_alive_wins),
        cmocka_unit_test(test_round_robin_probes_each_candidate_once_per_round),
        cmocka_unit_test(test_recheck_pings_failed_and_unknown_members_and_answers_rejoin_them),
        cmocka_unit_test(test_precedence_table),
        cmocka_unit_test(test_news_about_self_is_refuted_with_a_higher_incarnation),
        cmocka_unit_test(test_invalid_updates_are_refused),
        cmocka_unit_test(test_piggyback_sends_each_update_limit_times_fewest_first),
        cmocka_unit_test(test_queue_holds_one_current_update_per_member),
        cmocka_unit_test(test_piggyback_tells_a_suspect_its_verdict_and_skips_news_about_it),
        cmocka_unit_test(test_first_envelopes_to_each_member_carry_our_own_update),
        cmocka_unit_test(test_member_known_by_sight_is_asked_for_its_own_update),
        cmocka_unit_test(test_a_member_that_joins_or_rejoins_is_sent_an_introduction),
        cmocka_unit_test(test_gossip_timer_runs_only_while_something_is_queued),
        cmocka_unit_test(test_leave_marks_self_left_stops_probing_and_ignores_news_about_self),
        cmocka_unit_test(test_new_self_endpoints_raise_the_incarnation_and_spread),
        cmocka_unit_test(test_removing_a_member_cancels_its_probe_and_listing_is_in_name_order),
        cmocka_unit_test(test_suspicion_timeout_scales_with_log_n_when_asked),
        cmocka_unit_test(test_cluster_of_20_converges_to_all_alive_with_endpoints),
        cmocka_unit_test(test_silent_member_is_suspected_then_failed_everywhere_within_bound),
        cmocka_unit_test(test_member_cut_off_from_one_prober_is_reached_indirectly),
        cmocka_unit_test(test_false_suspicion_is_refuted_and_member_ends_alive_everywhere),
        cmocka_unit_test(test_leaving_member_is_seen_as_left_not_failed),
        cmocka_unit_test(test_failed_member_restarting_with_higher_incarnation_rejoins),
        cmocka_unit_test(test_partitioned_member_and_cluster_rejoin_each_other_after_healing),
        cmocka_unit_test(test_ten_percent_loss_converges_and_no_live_member_ends_failed),
        cmocka_unit_test(test_figure_time_to_detect_a_failure_in_50_members),
    };
    return cmocka_run_group_tests_name("swim", tests, NULL, NULL);
}
