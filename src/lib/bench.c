/*
 * bench: cohort and raw libzmq measured side by side. See bench.h.
 *
 * Every message carries a small tag in its first bytes: the sample's number
 * and a flag (data, end, warm-up), so a sample never counts a message left
 * over from an earlier one, and the receiver knows when the sender is done
 * (reliable paths keep order, so the end marker arrives last; pub/sub may
 * drop, so the publisher repeats it until every subscriber has seen it).
 *
 * Throughput is messages received divided by the time from the sender's
 * first send to the last message received: queued messages drained after
 * the sender stopped count, at the time they arrive.
 */
#include "lib/bench.h"

#include "cohort.h"
#include "lib/benchkit.h"
#include "roster/roster.h"
#include "util/mem.h"

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>
/* Optional: when valgrind's headers are installed, each unicast throughput
 * sample zeroes callgrind's counters as it starts and dumps them when it
 * ends, so `valgrind --tool=callgrind` gets one profile per sample holding
 * only the measured part (no setup). Outside valgrind these are no-ops. */
#if defined(__has_include)
#if __has_include(<valgrind/callgrind.h>)
#include <valgrind/callgrind.h>
#define S_PROFILE_START() CALLGRIND_ZERO_STATS
#define S_PROFILE_DUMP(what) CALLGRIND_DUMP_STATS_AT(what)
#define S_PROFILING() (RUNNING_ON_VALGRIND != 0)
#endif
#endif
#ifndef S_PROFILE_START
#define S_PROFILE_START() ((void)0)
#define S_PROFILE_DUMP(what) ((void)(what))
#define S_PROFILING() false
#endif

#define S_TAG_LEN 8 /* u32 sample number, u8 flag, padding */
#define S_DATA 0
#define S_END 1
#define S_WARM 2
#define S_SUBJECT "bench.data"
#define S_SERVICE "bench.echo"
#define S_STALL_US (15 * 1000000LL) /* nothing arrived for this long: stalled */
#define S_SETUP_MS 60000            /* a cluster must be up (and relayed) by then */
#define S_RSS_EVERY_US 20000        /* overload: VmRSS sampling period */
#define S_IDLE_US 2000000           /* overload: drained when quiet this long */
#define S_LAT_MAX 2000000           /* req/rep: round trips kept per sample */

enum { S_FIX_NONE, S_FIX_PAIR, S_FIX_RELAY, S_FIX_PUBSUB };

struct cohort_bench {
    cohort_bench_opts_t opts;
    int fixture;
    cohort_benchkit_t *kit;
    int kit_nodes;
    uint64_t missed_wakeups; /* of the clusters already stopped */
    uint32_t tag;            /* number of the current sample */
    /* request/reply measures both sides at once (s_reqrep): raw's sample
     * waits here for the call that asks for it */
    cohort_bench_sample_t reqrep_raw;
    const cohort_bench_case_t *reqrep_raw_of;
};

#define S_TP(n, t, k, sz)                                                                          \
    {                                                                                              \
        n, t, k, sz, 0,                                                                            \
        {                                                                                          \
            {"msgs_per_s", "msg/s", false},                                                        \
            {                                                                                      \
                NULL, NULL, false                                                                  \
            }                                                                                      \
        }                                                                                          \
    }
#define S_PS(n, sz, subs)                                                                          \
    {                                                                                              \
        n, "pubsub-" #subs, COHORT_BENCH_PUBSUB, sz, subs,                                         \
        {                                                                                          \
            {"msgs_per_s_per_sub", "msg/s/sub", false},                                            \
            {                                                                                      \
                NULL, NULL, false                                                                  \
            }                                                                                      \
        }                                                                                          \
    }

static const cohort_bench_case_t s_cases[] = {
    S_TP("direct-64", "direct", COHORT_BENCH_DIRECT, 64),
    S_TP("direct-1k", "direct", COHORT_BENCH_DIRECT, 1024),
    S_TP("direct-16k", "direct", COHORT_BENCH_DIRECT, 16384),
    {"reqrep-64",
     "reqrep",
     COHORT_BENCH_REQREP,
     64,
     0,
     {{"p50_us", "p50 us", true},
      {"p99_us", "p99 us", true},
      {"app_cpu_us", "app CPU us/RT", true}}},
    {"overload-1k",
     "overload",
     COHORT_BENCH_OVERLOAD,
     1024,
     0,
     {{"rss_growth_mib", "RSS growth MiB", true}, {"rss_peak_mib", "RSS peak MiB", true}}},
    S_TP("relay-64", "relay", COHORT_BENCH_RELAY, 64),
    S_TP("relay-1k", "relay", COHORT_BENCH_RELAY, 1024),
    S_TP("relay-16k", "relay", COHORT_BENCH_RELAY, 16384),
    S_PS("pubsub-1-1k", 1024, 1),
    S_PS("pubsub-4-1k", 1024, 4),
};

const cohort_bench_case_t *cohort_bench_cases(size_t *count)
{
    *count = sizeof s_cases / sizeof s_cases[0];
    return s_cases;
}

const cohort_bench_case_t *cohort_bench_find(const char *name)
{
    for (size_t i = 0; i < sizeof s_cases / sizeof s_cases[0]; i++)
        if (!strcmp(s_cases[i].name, name))
            return &s_cases[i];
    return NULL;
}

cohort_bench_t *cohort_bench_new(const cohort_bench_opts_t *opts)
{
    cohort_bench_t *self = cohort_calloc(1, sizeof *self);
    self->opts = *opts;
    return self;
}

static uint64_t s_kit_missed(cohort_bench_t *self)
{
    uint64_t sum = 0;
    for (int i = 0; self->kit && i < self->kit_nodes; i++) {
        cohort_benchkit_counters_t c;
        if (cohort_benchkit_counters(self->kit, i, &c) == 0)
            sum += c.missed_wakeups;
    }
    return sum;
}

uint64_t cohort_bench_missed_wakeups(cohort_bench_t *self)
{
    return self->missed_wakeups + s_kit_missed(self);
}

static void s_kit_stop(cohort_bench_t *self)
{
    self->missed_wakeups += s_kit_missed(self);
    cohort_benchkit_destroy(&self->kit);
    self->kit_nodes = 0;
}

void cohort_bench_destroy(cohort_bench_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    cohort_benchkit_destroy(&(*self_p)->kit);
    free(*self_p);
    *self_p = NULL;
}

/* ---- tags ---- */

static void s_tag(uint8_t *buf, uint32_t tag, uint8_t flag)
{
    memcpy(buf, &tag, sizeof tag);
    buf[4] = flag;
}

/* The flag of a message of this sample, or -1 for anything else. */
static int s_flag(const void *data, size_t len, uint32_t tag)
{
    uint32_t t;
    if (len < S_TAG_LEN)
        return -1;
    memcpy(&t, data, sizeof t);
    return t == tag ? ((const uint8_t *)data)[4] : -1;
}

static uint8_t *s_payload(size_t size, uint32_t tag, uint8_t flag)
{
    uint8_t *buf = cohort_malloc(size);
    memset(buf, 'x', size);
    s_tag(buf, tag, flag);
    return buf;
}

static int64_t s_now(void)
{
    return cohort_benchkit_usecs();
}

/* ---- cohort clusters ---- */

static int s_fixture_of(cohort_bench_kind_t kind)
{
    switch (kind) {
    case COHORT_BENCH_RELAY:
        return S_FIX_RELAY;
    case COHORT_BENCH_PUBSUB:
        return S_FIX_PUBSUB;
    default:
        return S_FIX_PAIR;
    }
}

/* Node names per fixture: the sender is node 0 (pair, pubsub) or alpha. */
enum { S_PAIR_A = 0, S_PAIR_B = 1 };
enum { S_RELAY_R = 0, S_RELAY_ALPHA = 1, S_RELAY_BETA = 2 };
enum { S_PS_PUB = 0, S_PS_SUBS = 4 };

static int s_fixture(cohort_bench_t *self, int want, cohort_err_t *err)
{
    if (self->fixture == want)
        return 0;
    s_kit_stop(self);
    self->fixture = S_FIX_NONE;
    static const cohort_benchkit_member_t pair[] = {{.name = "a"}, {.name = "b"}};
    static const cohort_benchkit_member_t relay[] = {
        /* The relay's per-pair quotas at their maximum: the case measures
         * the relayed path, which raw libzmq runs without any quota. */
        {.name = "relay",
         .roles = COHORT_ROLE_RELAY,
         .config = "relay:\n  pair_bytes_per_second: 1GiB\n"
                   "  pair_messages_per_second: 10000000\n"},
        {.name = "alpha", .unreachable = true},
        {.name = "beta", .unreachable = true},
    };
    static const cohort_benchkit_member_t pubsub[] = {
        {.name = "pub"}, {.name = "s1"}, {.name = "s2"}, {.name = "s3"}, {.name = "s4"}};
    const cohort_benchkit_member_t *m = want == S_FIX_PAIR    ? pair
                                        : want == S_FIX_RELAY ? relay
                                                              : pubsub;
    int count = want == S_FIX_PAIR ? 2 : want == S_FIX_RELAY ? 3 : 5;
    self->kit_nodes = count;
    if (cohort_benchkit_open(m, count, &self->kit, err) < 0 ||
        cohort_benchkit_wait_up(self->kit, S_SETUP_MS, err) < 0)
        goto fail;
    if (want == S_FIX_PAIR) {
        if (cohort_benchkit_wait_link(self->kit, S_PAIR_A, "b", "direct", S_SETUP_MS, err) < 0)
            goto fail;
        if (cohort_serve(cohort_benchkit_node(self->kit, S_PAIR_B), S_SERVICE) != COHORT_OK) {
            cohort_err_set(err, "bench: b: cannot serve %s", S_SERVICE);
            goto fail;
        }
    } else if (want == S_FIX_RELAY) {
        if (cohort_benchkit_wait_link(self->kit, S_RELAY_ALPHA, "beta", "relayed", S_SETUP_MS,
                                      err) < 0 ||
            cohort_benchkit_wait_link(self->kit, S_RELAY_BETA, "alpha", "relayed", S_SETUP_MS,
                                      err) < 0)
            goto fail;
    } else {
        /* s1 takes both topics; s2..s4 only the four-subscriber one */
        for (int i = 1; i <= S_PS_SUBS; i++) {
            cohort_t *n = cohort_benchkit_node(self->kit, i);
            if ((i == 1 && cohort_subscribe(n, "bench.ps1") != COHORT_OK) ||
                cohort_subscribe(n, "bench.ps4") != COHORT_OK) {
                cohort_err_set(err, "bench: s%d: cannot subscribe", i);
                goto fail;
            }
        }
    }
    self->fixture = want;
    return 0;
fail:
    s_kit_stop(self);
    return -1;
}

/* ---- cohort: unicast throughput (direct and relayed) ---- */

typedef struct {
    cohort_t *node;
    const char *to;
    size_t size;
    uint32_t tag;
    int64_t duration_us;
    int64_t t0;
    uint64_t sent, queue_full;
    cohort_status_t failed;
    int send_timeout_ms; /* 0: count QUEUE_FULL and back off */
    atomic_int *stop;    /* overload: set when the sender must stop */
} s_csend_t;

static void *s_cohort_sender(void *arg)
{
    s_csend_t *s = arg;
    uint8_t *buf = s_payload(s->size, s->tag, S_DATA);
    s->t0 = s_now();
    int64_t end = s->t0 + s->duration_us;
    while (s->stop ? !atomic_load(s->stop) : s_now() < end) {
        cohort_msg_t *m = cohort_msg_new(S_SUBJECT, buf, s->size);
        cohort_status_t st = cohort_send(s->node, s->to, &m, s->send_timeout_ms);
        if (st == COHORT_QUEUE_FULL && s->send_timeout_ms == 0) {
            s->queue_full++;
            usleep(1000);
            continue;
        }
        if (st != COHORT_OK) {
            s->failed = st;
            break;
        }
        s->sent++;
    }
    s_tag(buf, s->tag, S_END);
    cohort_msg_t *m = cohort_msg_new(S_SUBJECT, buf, s->size);
    cohort_status_t st = cohort_send(s->node, s->to, &m, 60000);
    if (st != COHORT_OK && !s->failed)
        s->failed = st;
    free(buf);
    return NULL;
}

typedef struct {
    cohort_t *node;
    uint32_t tag;
    uint64_t count;
    int64_t last;
    atomic_int *fast; /* overload: when set, stop sleeping, and stop after
                         S_IDLE_US without a message (the end marker
                         may be among what the node dropped) */
    int sleep_us;
    bool stalled, done;
} s_crecv_t;

/* Counts this sample's data messages on node until the end marker. */
static void *s_cohort_receiver(void *arg)
{
    s_crecv_t *r = arg;
    int64_t heard = s_now();
    while (!r->done) {
        cohort_msg_t *m = cohort_recv(r->node, 200);
        if (!m) {
            if (r->fast && atomic_load(r->fast) && s_now() - heard > S_IDLE_US)
                break;
            if (s_now() - heard > S_STALL_US) {
                r->stalled = true;
                break;
            }
            continue;
        }
        size_t len = 0;
        const void *p = cohort_msg_payload(m, &len);
        int flag = cohort_msg_kind(m) == COHORT_MSG_EVENT ? -1 : s_flag(p, len, r->tag);
        cohort_msg_destroy(&m);
        if (flag < 0 || flag == S_WARM)
            continue;
        heard = r->last = s_now();
        if (flag == S_END)
            r->done = true;
        else
            r->count++;
        if (r->sleep_us && !(r->fast && atomic_load(r->fast)))
            usleep((useconds_t)r->sleep_us);
    }
    return NULL;
}

static int s_cohort_throughput(cohort_bench_t *self, const cohort_bench_case_t *c,
                               cohort_bench_sample_t *out, cohort_err_t *err)
{
    bool relay = c->kind == COHORT_BENCH_RELAY;
    cohort_t *from = cohort_benchkit_node(self->kit, relay ? S_RELAY_ALPHA : S_PAIR_A);
    cohort_t *to = cohort_benchkit_node(self->kit, relay ? S_RELAY_BETA : S_PAIR_B);
    s_csend_t s = {.node = from,
                   .to = relay ? "beta" : "b",
                   .size = c->size,
                   .tag = self->tag,
                   .duration_us = (int64_t)self->opts.duration_ms * 1000,
                   .send_timeout_ms = 60000};
    s_crecv_t r = {.node = to, .tag = self->tag};
    int sender = relay ? S_RELAY_ALPHA : S_PAIR_A;
    cohort_benchkit_counters_t before[2], after[2];
    cohort_benchkit_counters(self->kit, sender, &before[0]);
    cohort_benchkit_counters(self->kit, S_RELAY_R, &before[1]);
    pthread_t t;
    S_PROFILE_START();
    if (pthread_create(&t, NULL, s_cohort_sender, &s) != 0)
        return cohort_err_set(err, "bench: cannot start a thread");
    s_cohort_receiver(&r);
    pthread_join(t, NULL);
    char what[64];
    snprintf(what, sizeof what, "%s cohort", c->name);
    S_PROFILE_DUMP(what);
    cohort_benchkit_counters(self->kit, sender, &after[0]);
    cohort_benchkit_counters(self->kit, S_RELAY_R, &after[1]);
    out->resent = after[0].resent - before[0].resent;
    if (relay)
        out->relayed_dropped = after[1].relay_dropped - before[1].relay_dropped;
    if (s.failed)
        return cohort_err_set(err, "bench: %s: cohort_send to %s: %s", c->name, s.to,
                              cohort_status_name(s.failed));
    if (r.stalled)
        return cohort_err_set(err,
                              "bench: %s: stalled: %llu of %llu messages arrived, then nothing "
                              "for %lld s",
                              c->name, (unsigned long long)r.count, (unsigned long long)s.sent,
                              S_STALL_US / 1000000);
    out->sent = s.sent;
    out->received = r.count;
    out->seconds = (double)(r.last - s.t0) / 1e6;
    out->metric[0] = out->seconds > 0 ? (double)r.count / out->seconds : 0;
    return 0;
}

/* ---- cohort: request/reply ---- */

typedef struct {
    cohort_t *node;
    atomic_int stop;
    cohort_status_t failed;
} s_cserve_t;

static void *s_cohort_server(void *arg)
{
    s_cserve_t *s = arg;
    while (!atomic_load(&s->stop)) {
        cohort_msg_t *m = cohort_recv(s->node, 100);
        if (!m || cohort_msg_kind(m) != COHORT_MSG_REQUEST) {
            cohort_msg_destroy(&m);
            continue;
        }
        size_t len = 0;
        const void *p = cohort_msg_payload(m, &len);
        cohort_msg_t *reply = cohort_msg_new("", p, len);
        cohort_status_t st = cohort_reply(s->node, m, &reply);
        if (st != COHORT_OK)
            s->failed = st;
        cohort_msg_destroy(&m);
    }
    return NULL;
}

/* CPU time a thread has used, in µs (0 if it cannot be read). */
static double s_cpu_us(pthread_t t)
{
    clockid_t id;
    struct timespec ts;
    if (pthread_getcpuclockid(t, &id) != 0 || clock_gettime(id, &ts) != 0)
        return 0;
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

/* p50 and p99 of n round trips (in µs), and the CPU time the client's and
 * the server's threads used per round trip (cpu: their sum over the
 * measured part), into out. The CPU figure is the work on the round trip's
 * path in the application's threads (the node runs there while they wait):
 * it moves far less with the machine's load than the latency does. */
static void s_latency(double *rtt, size_t n, int64_t t0, int64_t t1, double cpu,
                      cohort_bench_sample_t *out)
{
    out->received = out->sent = n;
    out->seconds = (double)(t1 - t0) / 1e6;
    out->metric[0] = cohort_benchkit_percentile(rtt, n, 50);
    out->metric[1] = cohort_benchkit_percentile(rtt, n, 99);
    out->metric[2] = n ? cpu / (double)n : 0;
}

/* One side of the request/reply case: cohort's here, raw libzmq's below
 * (s_zrr_*); s_reqrep runs them side by side. open: the server started and
 * one round trip done (the warm-up); trip: one round trip, its time into
 * *us; close: everything stopped and freed (also after a failed open). */
typedef struct {
    cohort_t *client;
    s_cserve_t serve;
    pthread_t server;
    bool started;
    uint8_t *buf;
    size_t size;
    uint32_t tag;
} s_crr_t;

static int s_crr_open(cohort_bench_t *self, const cohort_bench_case_t *c, s_crr_t *rr,
                      cohort_err_t *err)
{
    *rr = (s_crr_t){.client = cohort_benchkit_node(self->kit, S_PAIR_A),
                    .serve = {.node = cohort_benchkit_node(self->kit, S_PAIR_B)},
                    .buf = s_payload(c->size, self->tag, S_WARM),
                    .size = c->size,
                    .tag = self->tag};
    atomic_init(&rr->serve.stop, 0);
    if (pthread_create(&rr->server, NULL, s_cohort_server, &rr->serve) != 0)
        return cohort_err_set(err, "bench: cannot start a thread");
    rr->started = true;
    /* warm-up: until the provider's interest reached the client */
    cohort_status_t st = COHORT_ERROR;
    for (int64_t end = s_now() + 10000000; s_now() < end;) {
        cohort_msg_t *m = cohort_msg_new("", rr->buf, rr->size), *reply = NULL;
        st = cohort_request(rr->client, S_SERVICE, &m, 5000, &reply);
        cohort_msg_destroy(&reply);
        if (st == COHORT_OK)
            break;
        usleep(20000);
    }
    if (st != COHORT_OK)
        return cohort_err_set(err, "bench: %s: cohort_request %s: %s", c->name, S_SERVICE,
                              cohort_status_name(st));
    s_tag(rr->buf, rr->tag, S_DATA);
    return 0;
}

static int s_crr_trip(s_crr_t *rr, double *us, cohort_err_t *err)
{
    cohort_msg_t *m = cohort_msg_new("", rr->buf, rr->size), *reply = NULL;
    int64_t a = s_now();
    cohort_status_t st = cohort_request(rr->client, S_SERVICE, &m, 5000, &reply);
    *us = (double)(s_now() - a);
    size_t len = 0;
    const void *p = reply ? cohort_msg_payload(reply, &len) : NULL;
    bool ok = st == COHORT_OK && p && s_flag(p, len, rr->tag) == S_DATA;
    cohort_msg_destroy(&reply);
    if (!ok)
        return cohort_err_set(err, "cohort: %s",
                              st == COHORT_OK ? "wrong reply" : cohort_status_name(st));
    return 0;
}

static int s_crr_close(s_crr_t *rr, const cohort_bench_case_t *c, int rc, cohort_err_t *err)
{
    if (rr->started) {
        atomic_store(&rr->serve.stop, 1);
        pthread_join(rr->server, NULL);
    }
    if (rc == 0 && rr->serve.failed)
        rc = cohort_err_set(err, "bench: %s: cohort_reply: %s", c->name,
                            cohort_status_name(rr->serve.failed));
    free(rr->buf);
    return rc;
}

/* ---- cohort: publish/subscribe ---- */

typedef struct {
    cohort_t *node;
    uint32_t tag;
    atomic_int *done;
    uint64_t count;
    int64_t last;
    bool stalled;
} s_csub_t;

static void *s_cohort_subscriber(void *arg)
{
    s_csub_t *s = arg;
    s_crecv_t r = {.node = s->node, .tag = s->tag};
    s_cohort_receiver(&r);
    s->count = r.count;
    s->last = r.last;
    s->stalled = r.stalled;
    atomic_fetch_add(s->done, 1);
    return NULL;
}

static int s_cohort_pubsub(cohort_bench_t *self, const cohort_bench_case_t *c,
                           cohort_bench_sample_t *out, cohort_err_t *err)
{
    cohort_t *pub = cohort_benchkit_node(self->kit, S_PS_PUB);
    const char *topic = c->subscribers == 1 ? "bench.ps1" : "bench.ps4";
    unsigned k = (unsigned)c->subscribers;
    uint8_t *buf = s_payload(c->size, self->tag, S_WARM);
    int rc = -1;
    /* warm-up: until every subscriber's interest reached the publisher */
    unsigned got = 0;
    for (int64_t end = s_now() + 10000000; got < k && s_now() < end;) {
        cohort_msg_t *m = cohort_msg_new(topic, buf, c->size);
        if (cohort_publish(pub, &m, &got) != COHORT_OK)
            got = 0;
        if (got < k)
            usleep(20000);
    }
    if (got < k) {
        free(buf);
        return cohort_err_set(err, "bench: %s: publish reached %u of %u subscribers", c->name, got,
                              k);
    }
    atomic_int done;
    atomic_init(&done, 0);
    s_csub_t subs[S_PS_SUBS];
    pthread_t threads[S_PS_SUBS];
    unsigned started = 0;
    for (; started < k; started++) {
        subs[started] = (s_csub_t){.node = cohort_benchkit_node(self->kit, 1 + (int)started),
                                   .tag = self->tag,
                                   .done = &done};
        if (pthread_create(&threads[started], NULL, s_cohort_subscriber, &subs[started]) != 0)
            break;
    }
    s_tag(buf, self->tag, S_DATA);
    int64_t t0 = s_now(), end = t0 + (int64_t)self->opts.duration_ms * 1000;
    uint64_t sent = 0;
    cohort_status_t st = COHORT_OK;
    cohort_benchkit_counters_t before, after;
    cohort_benchkit_counters(self->kit, S_PS_PUB, &before);
    while (started == k && s_now() < end) {
        /* as fast as the node takes them (no answer awaited); a subscriber
         * whose send window is full misses some, as a raw SUB past its
         * high-water mark does */
        cohort_msg_t *m = cohort_msg_new(topic, buf, c->size);
        st = cohort_publish(pub, &m, NULL);
        if (st != COHORT_OK)
            break;
        sent++;
    }
    cohort_benchkit_counters(self->kit, S_PS_PUB, &after);
    uint64_t skipped = after.queue_full - before.queue_full;
    /* the end marker, again until every subscriber has seen it */
    s_tag(buf, self->tag, S_END);
    for (int64_t stop = s_now() + 60000000;
         (unsigned)atomic_load(&done) < started && s_now() < stop;) {
        cohort_msg_t *m = cohort_msg_new(topic, buf, c->size);
        cohort_publish(pub, &m, NULL);
        usleep(20000);
    }
    uint64_t received = 0;
    double rate = 0;
    bool stalled = false;
    for (unsigned i = 0; i < started; i++) {
        pthread_join(threads[i], NULL);
        received += subs[i].count;
        stalled = stalled || subs[i].stalled || !subs[i].last;
        double secs = (double)(subs[i].last - t0) / 1e6;
        rate += secs > 0 ? (double)subs[i].count / secs / k : 0;
    }
    if (started < k)
        cohort_err_set(err, "bench: cannot start a thread");
    else if (st != COHORT_OK)
        cohort_err_set(err, "bench: %s: cohort_publish: %s", c->name, cohort_status_name(st));
    else if (stalled)
        cohort_err_set(err, "bench: %s: a subscriber stalled (%llu messages in all)", c->name,
                       (unsigned long long)received);
    else
        rc = 0;
    out->sent = sent;
    out->received = received;
    out->queue_full = skipped;
    out->seconds = (double)(s_now() - t0) / 1e6;
    out->metric[0] = rate;
    free(buf);
    return rc;
}

/* ---- overload: memory while a fast sender meets a slow receiver ---- */

/* Samples VmRSS for duration_us from t0; keeps the peak of each half. */
typedef struct {
    uint64_t start, peak, peak_first_half;
} s_rss_t;

static void s_rss_watch(s_rss_t *w, int64_t t0, int64_t duration_us)
{
    uint64_t rss = 0;
    cohort_benchkit_rss(&rss, NULL);
    w->start = w->peak = w->peak_first_half = rss;
    for (int64_t now = s_now(); now < t0 + duration_us; now = s_now()) {
        usleep(S_RSS_EVERY_US);
        if (cohort_benchkit_rss(&rss, NULL) < 0)
            continue;
        if (rss > w->peak)
            w->peak = rss;
        if (now < t0 + duration_us / 2 && rss > w->peak_first_half)
            w->peak_first_half = rss;
    }
}

/* What "bounded" means here: in the second half of the run, the process
 * grew by at most a quarter of what it grew in the first half, plus 4 MiB
 * of noise. A queue without a bound grows about as much in both halves. */
static bool s_bounded(const s_rss_t *w)
{
    uint64_t first = w->peak_first_half - w->start, second = w->peak - w->peak_first_half;
    return second <= first / 4 + 4096;
}

static void s_overload_result(const s_rss_t *w, cohort_bench_sample_t *out)
{
    out->bounded = s_bounded(w);
}

static int s_cohort_overload(cohort_bench_t *self, const cohort_bench_case_t *c,
                             cohort_bench_sample_t *out, cohort_err_t *err)
{
    atomic_int stop, fast;
    atomic_init(&stop, 0);
    atomic_init(&fast, 0);
    cohort_benchkit_counters_t before, after;
    cohort_benchkit_counters(self->kit, S_PAIR_B, &before);
    s_csend_t s = {.node = cohort_benchkit_node(self->kit, S_PAIR_A),
                   .to = "b",
                   .size = c->size,
                   .tag = self->tag,
                   .send_timeout_ms = 0,
                   .stop = &stop};
    s_crecv_t r = {.node = cohort_benchkit_node(self->kit, S_PAIR_B),
                   .tag = self->tag,
                   .fast = &fast,
                   .sleep_us = self->opts.overload_sleep_us};
    pthread_t ts, tr;
    if (pthread_create(&tr, NULL, s_cohort_receiver, &r) != 0)
        return cohort_err_set(err, "bench: cannot start a thread");
    if (pthread_create(&ts, NULL, s_cohort_sender, &s) != 0) {
        pthread_join(tr, NULL); /* it gives up once nothing arrived for a while */
        return cohort_err_set(err, "bench: cannot start a thread");
    }
    s_rss_t w;
    int64_t t0 = s_now();
    s_rss_watch(&w, t0, (int64_t)self->opts.overload_ms * 1000);
    atomic_store(&stop, 1);
    atomic_store(&fast, 1); /* drain what is queued at full speed */
    pthread_join(ts, NULL);
    pthread_join(tr, NULL);
    cohort_benchkit_counters(self->kit, S_PAIR_B, &after);
    if (s.failed)
        return cohort_err_set(err, "bench: %s: cohort_send: %s", c->name,
                              cohort_status_name(s.failed));
    if (r.stalled)
        return cohort_err_set(err, "bench: %s: drain stalled after %llu of %llu messages", c->name,
                              (unsigned long long)r.count, (unsigned long long)s.sent);
    out->sent = s.sent;
    out->received = r.count;
    out->queue_full = s.queue_full;
    out->dropped = after.delivery_dropped - before.delivery_dropped;
    out->seconds = (double)(s_now() - t0) / 1e6;
    s_overload_result(&w, out);
    return 0;
}

/* ---- raw libzmq ---- */

typedef struct {
    char pub[41], sec[41];
} s_keys_t;

/* A CURVE server socket bound to an ephemeral port on 127.0.0.1; its
 * endpoint goes into ep. */
static void *s_zserver(void *ctx, int type, const s_keys_t *k, char *ep, size_t cap,
                       cohort_err_t *err)
{
    void *s = zmq_socket(ctx, type);
    int one = 1, zero = 0;
    zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(s, ZMQ_CURVE_SERVER, &one, sizeof one);
    zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, k->sec, 40);
    if (zmq_bind(s, "tcp://127.0.0.1:*") != 0 || zmq_getsockopt(s, ZMQ_LAST_ENDPOINT, ep, &cap)) {
        cohort_err_set(err, "bench: raw: bind: %s", zmq_strerror(zmq_errno()));
        zmq_close(s);
        return NULL;
    }
    return s;
}

/* A CURVE client socket connected to ep (server key server->pub). */
static void *s_zclient(void *ctx, int type, const s_keys_t *server, const char *id, const char *ep)
{
    s_keys_t me;
    zmq_curve_keypair(me.pub, me.sec);
    void *s = zmq_socket(ctx, type);
    int zero = 0;
    zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(s, ZMQ_CURVE_SERVERKEY, server->pub, 40);
    zmq_setsockopt(s, ZMQ_CURVE_PUBLICKEY, me.pub, 40);
    zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, me.sec, 40);
    if (id)
        zmq_setsockopt(s, ZMQ_ROUTING_ID, id, strlen(id));
    zmq_connect(s, ep);
    return s;
}

/* The last frame of the next message into *msg (ROUTER puts the routing id
 * first); the frame before it (the routing id), if any, into *id. Returns
 * -1 on timeout. */
static int s_zrecv(void *s, zmq_msg_t *msg, zmq_msg_t *id)
{
    if (zmq_msg_recv(msg, s, 0) < 0)
        return -1;
    while (zmq_msg_more(msg)) {
        if (id)
            zmq_msg_move(id, msg);
        if (zmq_msg_recv(msg, s, 0) < 0)
            return -1;
    }
    return 0;
}

typedef struct {
    void *sock;
    size_t size;
    uint32_t tag;
    int64_t duration_us;
    int64_t t0;
    uint64_t sent;
    atomic_int *stop; /* overload */
    bool failed;
} s_zsend_t;

static void *s_raw_sender(void *arg)
{
    s_zsend_t *s = arg;
    uint8_t *buf = s_payload(s->size, s->tag, S_DATA);
    s->t0 = s_now();
    int64_t end = s->t0 + s->duration_us;
    while (s->stop ? !atomic_load(s->stop) : s_now() < end) {
        if (zmq_send(s->sock, buf, s->size, 0) != (int)s->size) {
            s->failed = true;
            break;
        }
        s->sent++;
    }
    s_tag(buf, s->tag, S_END);
    if (zmq_send(s->sock, buf, s->size, 0) != (int)s->size)
        s->failed = true;
    free(buf);
    return NULL;
}

typedef struct {
    void *sock;
    uint32_t tag;
    uint64_t count;
    int64_t last;
    atomic_int *fast;
    int sleep_us;
    atomic_int *ready, *done; /* pubsub: counts of subscribers warm, finished */
    bool stalled;
} s_zrecv_t;

/* Counts this sample's data messages on a socket until the end marker. The
 * socket must have a receive timeout. */
static void *s_raw_receiver(void *arg)
{
    s_zrecv_t *r = arg;
    zmq_msg_t msg;
    zmq_msg_init(&msg);
    int64_t heard = s_now();
    bool warm = false;
    for (;;) {
        if (s_zrecv(r->sock, &msg, NULL) < 0) {
            if (s_now() - heard > S_STALL_US) {
                r->stalled = true;
                break;
            }
            continue;
        }
        int flag = s_flag(zmq_msg_data(&msg), zmq_msg_size(&msg), r->tag);
        if (flag == S_WARM && r->ready && !warm) {
            warm = true;
            atomic_fetch_add(r->ready, 1);
        }
        if (flag < 0 || flag == S_WARM)
            continue;
        heard = r->last = s_now();
        if (flag == S_END)
            break;
        r->count++;
        if (r->sleep_us && !(r->fast && atomic_load(r->fast)))
            usleep((useconds_t)r->sleep_us);
    }
    zmq_msg_close(&msg);
    if (r->done)
        atomic_fetch_add(r->done, 1);
    return NULL;
}

/* Forwards every message that reaches the ROUTER to the peer "rcv", until
 * "rcv" itself sends anything (the stop signal). */
static void *s_raw_proxy(void *arg)
{
    void *router = arg;
    zmq_msg_t id, msg;
    zmq_msg_init(&id);
    zmq_msg_init(&msg);
    for (;;) {
        if (s_zrecv(router, &msg, &id) < 0)
            continue; /* receive timeout: the main thread stops us with a message */
        if (zmq_msg_size(&id) == 3 && !memcmp(zmq_msg_data(&id), "rcv", 3))
            break;
        /* ROUTER_MANDATORY: blocks while rcv's pipe is full; EHOSTUNREACH
         * until rcv's handshake completed. */
        while (zmq_send(router, "rcv", 3, ZMQ_SNDMORE) < 0 && zmq_errno() == EHOSTUNREACH)
            usleep(1000);
        zmq_msg_send(&msg, router, 0);
    }
    zmq_msg_close(&id);
    zmq_msg_close(&msg);
    return NULL;
}

/* Raw throughput: DEALER -> ROUTER, or DEALER -> forwarding ROUTER ->
 * DEALER. Each side has its own context (one I/O thread), as a cohort node
 * has. With overload set, the receiver sleeps per message and we sample
 * memory instead. */
static int s_raw_unicast(cohort_bench_t *self, const cohort_bench_case_t *c, bool overload,
                         cohort_bench_sample_t *out, cohort_err_t *err)
{
    bool relay = c->kind == COHORT_BENCH_RELAY;
    int rc = -1, timeout = 200, one = 1;
    void *cs = zmq_ctx_new(), *cr = zmq_ctx_new(), *cp = relay ? zmq_ctx_new() : NULL;
    void *snd = NULL, *rcv = NULL, *proxy = NULL;
    pthread_t tp, ts, tr;
    bool proxy_on = false, sender_on = false, receiver_on = false;
    atomic_int stop, fast;
    atomic_init(&stop, 0);
    atomic_init(&fast, 0);
    s_keys_t server;
    zmq_curve_keypair(server.pub, server.sec);
    char ep[128];
    if (relay) {
        if (!(proxy = s_zserver(cp, ZMQ_ROUTER, &server, ep, sizeof ep, err)))
            goto out;
        zmq_setsockopt(proxy, ZMQ_ROUTER_MANDATORY, &one, sizeof one);
        zmq_setsockopt(proxy, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
        rcv = s_zclient(cr, ZMQ_DEALER, &server, "rcv", ep);
    } else if (!(rcv = s_zserver(cr, ZMQ_ROUTER, &server, ep, sizeof ep, err)))
        goto out;
    zmq_setsockopt(rcv, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
    snd = s_zclient(cs, ZMQ_DEALER, &server, "snd", ep);
    if (relay) {
        if (pthread_create(&tp, NULL, s_raw_proxy, proxy) != 0)
            goto thread;
        proxy_on = true;
    }
    /* warm-up: one message through, so every handshake is done */
    uint8_t *warm = s_payload(c->size, self->tag, S_WARM);
    zmq_send(snd, warm, c->size, 0);
    free(warm);
    zmq_msg_t msg;
    zmq_msg_init(&msg);
    int got = -1;
    for (int64_t end = s_now() + 10000000; got != S_WARM && s_now() < end;)
        if (s_zrecv(rcv, &msg, NULL) == 0)
            got = s_flag(zmq_msg_data(&msg), zmq_msg_size(&msg), self->tag);
    zmq_msg_close(&msg);
    if (got != S_WARM) {
        cohort_err_set(err, "bench: %s: raw: the warm-up message did not arrive", c->name);
        goto out;
    }
    s_zsend_t s = {.sock = snd,
                   .size = c->size,
                   .tag = self->tag,
                   .duration_us = (int64_t)self->opts.duration_ms * 1000,
                   .stop = overload ? &stop : NULL};
    s_zrecv_t r = {.sock = rcv,
                   .tag = self->tag,
                   .fast = &fast,
                   .sleep_us = overload ? self->opts.overload_sleep_us : 0};
    if (!overload)
        S_PROFILE_START();
    if (pthread_create(&tr, NULL, s_raw_receiver, &r) != 0)
        goto thread;
    receiver_on = true;
    if (pthread_create(&ts, NULL, s_raw_sender, &s) != 0)
        goto thread;
    sender_on = true;
    s_rss_t w;
    int64_t t0 = s_now();
    if (overload) {
        s_rss_watch(&w, t0, (int64_t)self->opts.overload_ms * 1000);
        atomic_store(&stop, 1);
        atomic_store(&fast, 1);
    }
    pthread_join(ts, NULL);
    pthread_join(tr, NULL);
    sender_on = receiver_on = false;
    char what[64];
    snprintf(what, sizeof what, "%s raw", c->name);
    if (!overload)
        S_PROFILE_DUMP(what);
    if (s.failed || r.stalled) {
        cohort_err_set(err, "bench: %s: raw: %s after %llu of %llu messages", c->name,
                       s.failed ? "send failed" : "stalled", (unsigned long long)r.count,
                       (unsigned long long)s.sent);
        goto out;
    }
    out->sent = s.sent;
    out->received = r.count;
    if (overload) {
        out->seconds = (double)(s_now() - t0) / 1e6;
        s_overload_result(&w, out);
    } else {
        out->seconds = (double)(r.last - s.t0) / 1e6;
        out->metric[0] = out->seconds > 0 ? (double)r.count / out->seconds : 0;
    }
    rc = 0;
    goto out;
thread:
    cohort_err_set(err, "bench: cannot start a thread");
out:
    if (sender_on || receiver_on) {
        atomic_store(&stop, 1);
        if (sender_on)
            pthread_join(ts, NULL);
        if (receiver_on)
            pthread_join(tr, NULL);
    }
    if (proxy_on) {
        zmq_send(rcv, "stop", 4, 0); /* anything from rcv stops the proxy */
        pthread_join(tp, NULL);
    }
    if (snd)
        zmq_close(snd);
    if (rcv)
        zmq_close(rcv);
    if (proxy)
        zmq_close(proxy);
    zmq_ctx_term(cs);
    zmq_ctx_term(cr);
    if (cp)
        zmq_ctx_term(cp);
    return rc;
}

/* Echoes every request back until stopped. */
typedef struct {
    void *sock;
    atomic_int stop;
} s_zserve_t;

static void *s_raw_server(void *arg)
{
    s_zserve_t *s = arg;
    zmq_msg_t id, msg;
    zmq_msg_init(&id);
    zmq_msg_init(&msg);
    while (!atomic_load(&s->stop)) {
        if (s_zrecv(s->sock, &msg, &id) < 0)
            continue;
        zmq_msg_send(&id, s->sock, ZMQ_SNDMORE);
        zmq_msg_send(&msg, s->sock, 0);
    }
    zmq_msg_close(&id);
    zmq_msg_close(&msg);
    return NULL;
}

typedef struct {
    void *cs, *cc; /* the server's and the client's context: an I/O thread each */
    void *client;
    s_zserve_t serve;
    pthread_t server;
    bool started;
    zmq_msg_t msg;
    uint8_t *buf;
    size_t size;
    uint32_t tag;
} s_zrr_t;

static int s_zrr_open(cohort_bench_t *self, const cohort_bench_case_t *c, s_zrr_t *rr,
                      cohort_err_t *err)
{
    *rr = (s_zrr_t){.cs = zmq_ctx_new(),
                    .cc = zmq_ctx_new(),
                    .buf = s_payload(c->size, self->tag, S_WARM),
                    .size = c->size,
                    .tag = self->tag};
    atomic_init(&rr->serve.stop, 0);
    zmq_msg_init(&rr->msg);
    s_keys_t server;
    zmq_curve_keypair(server.pub, server.sec);
    char ep[128];
    if (!(rr->serve.sock = s_zserver(rr->cs, ZMQ_ROUTER, &server, ep, sizeof ep, err)))
        return -1;
    int timeout = 200, wait = 10000;
    zmq_setsockopt(rr->serve.sock, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
    rr->client = s_zclient(rr->cc, ZMQ_DEALER, &server, NULL, ep);
    zmq_setsockopt(rr->client, ZMQ_RCVTIMEO, &wait, sizeof wait);
    if (pthread_create(&rr->server, NULL, s_raw_server, &rr->serve) != 0)
        return cohort_err_set(err, "bench: cannot start a thread");
    rr->started = true;
    zmq_send(rr->client, rr->buf, rr->size, 0);
    if (s_zrecv(rr->client, &rr->msg, NULL) < 0)
        return cohort_err_set(err, "bench: %s: raw: no answer to the warm-up request", c->name);
    s_tag(rr->buf, rr->tag, S_DATA);
    return 0;
}

static int s_zrr_trip(s_zrr_t *rr, double *us, cohort_err_t *err)
{
    int64_t a = s_now();
    zmq_send(rr->client, rr->buf, rr->size, 0);
    int r = s_zrecv(rr->client, &rr->msg, NULL);
    *us = (double)(s_now() - a);
    if (r < 0 || s_flag(zmq_msg_data(&rr->msg), zmq_msg_size(&rr->msg), rr->tag) != S_DATA)
        return cohort_err_set(err, "raw: %s", r < 0 ? "no answer" : "wrong reply");
    return 0;
}

static void s_zrr_close(s_zrr_t *rr)
{
    if (rr->started) {
        atomic_store(&rr->serve.stop, 1);
        pthread_join(rr->server, NULL);
    }
    zmq_msg_close(&rr->msg);
    if (rr->client)
        zmq_close(rr->client);
    if (rr->serve.sock)
        zmq_close(rr->serve.sock);
    zmq_ctx_term(rr->cs);
    zmq_ctx_term(rr->cc);
    free(rr->buf);
}

/* Request/reply, cohort and raw in the same span of time. A shared
 * machine's speed drifts (here raw's p50 moved between 103 and 146 us from
 * one half second to the next), and a latency follows it closely: measured
 * one sample after the other, one binary's per-round ratios spread from
 * 1.14 to 1.82. So the two take turns in blocks of S_RR_BLOCK_US until
 * each had its duration, in the order C R, R C, C R, ... (each follows the
 * other equally often): both see the same machine, and the same binary's
 * per-round ratios stayed within 1.10-1.38 in the same minutes. The
 * waiting side's threads sleep (raw's p50 is the same whether cohort's
 * blocks or plain sleeps come between its own). Under valgrind one block each (timing means nothing
 * there), so that each side's profile dump holds only its own round trips. */
#define S_RR_BLOCK_US 50000
#define S_RR_WARM_US 30000

static int s_reqrep(cohort_bench_t *self, const cohort_bench_case_t *c,
                    cohort_bench_sample_t out[2], cohort_err_t *err)
{
    s_crr_t co;
    s_zrr_t zr;
    bool zr_open = false;
    int rc = s_crr_open(self, c, &co, err);
    if (rc == 0) {
        zr_open = true;
        rc = s_zrr_open(self, c, &zr, err);
    }
    double *rtt[2] = {cohort_malloc(S_LAT_MAX * sizeof(double)),
                      cohort_malloc(S_LAT_MAX * sizeof(double))};
    size_t n[2] = {0, 0};
    double cpu[2] = {0, 0};
    int64_t spent[2] = {0, 0}, whole = (int64_t)self->opts.duration_ms * 1000;
    int64_t block = S_PROFILING() ? whole : S_RR_BLOCK_US;
    static const char *const what[2] = {"reqrep cohort", "reqrep raw"};
    int side = 0;
    /* unmeasured: each side's first round trips after starting are slow */
    for (side = 0; side < 2 && rc == 0; side++)
        for (int64_t end = s_now() + S_RR_WARM_US; rc == 0 && s_now() < end;) {
            double us;
            rc = side ? s_zrr_trip(&zr, &us, err) : s_crr_trip(&co, &us, err);
            if (rc < 0)
                cohort_err_prefix(err, "bench: %s: warm-up", c->name);
        }
    for (int pair = 0; rc == 0 && (spent[0] < whole || spent[1] < whole); pair++)
        for (int k = 0; k < 2 && rc == 0; k++) {
            side = pair % 2 ? 1 - k : k; /* C R, R C, C R, ...: each follows the other alike */
            if (spent[side] >= whole)
                continue;
            pthread_t server = side ? zr.server : co.server;
            S_PROFILE_START();
            double cpu0 = s_cpu_us(pthread_self()) + s_cpu_us(server);
            int64_t t0 = s_now(), left = whole - spent[side];
            int64_t end = t0 + (block < left ? block : left);
            do
                rc = side ? s_zrr_trip(&zr, &rtt[side][n[side]], err)
                          : s_crr_trip(&co, &rtt[side][n[side]], err);
            while (rc == 0 && ++n[side] < S_LAT_MAX && s_now() < end);
            spent[side] = n[side] < S_LAT_MAX ? spent[side] + s_now() - t0 : whole;
            cpu[side] += s_cpu_us(pthread_self()) + s_cpu_us(server) - cpu0;
            S_PROFILE_DUMP(what[side]);
            if (rc < 0)
                cohort_err_prefix(err, "bench: %s: request %zu", c->name, n[side] + 1);
        }
    for (side = 0; side < 2 && rc == 0; side++)
        s_latency(rtt[side], n[side], 0, spent[side], cpu[side], &out[side]);
    if (zr_open)
        s_zrr_close(&zr);
    rc = s_crr_close(&co, c, rc, err);
    free(rtt[0]);
    free(rtt[1]);
    return rc;
}

static int s_raw_pubsub(cohort_bench_t *self, const cohort_bench_case_t *c,
                        cohort_bench_sample_t *out, cohort_err_t *err)
{
    int k = c->subscribers, rc = -1, timeout = 200, started = 0;
    void *cp = zmq_ctx_new(), *pub = NULL;
    void *ctx[S_PS_SUBS] = {NULL}, *subs[S_PS_SUBS] = {NULL};
    s_zrecv_t r[S_PS_SUBS];
    pthread_t threads[S_PS_SUBS];
    atomic_int ready, done;
    atomic_init(&ready, 0);
    atomic_init(&done, 0);
    s_keys_t server;
    zmq_curve_keypair(server.pub, server.sec);
    char ep[128];
    uint8_t *buf = s_payload(c->size, self->tag, S_WARM);
    uint64_t sent = 0;
    int64_t t0 = s_now();
    if (!(pub = s_zserver(cp, ZMQ_PUB, &server, ep, sizeof ep, err)))
        goto out;
    for (; started < k; started++) {
        ctx[started] = zmq_ctx_new();
        subs[started] = s_zclient(ctx[started], ZMQ_SUB, &server, NULL, ep);
        zmq_setsockopt(subs[started], ZMQ_SUBSCRIBE, "", 0);
        zmq_setsockopt(subs[started], ZMQ_RCVTIMEO, &timeout, sizeof timeout);
        r[started] =
            (s_zrecv_t){.sock = subs[started], .tag = self->tag, .ready = &ready, .done = &done};
        if (pthread_create(&threads[started], NULL, s_raw_receiver, &r[started]) != 0) {
            zmq_close(subs[started]);
            zmq_ctx_term(ctx[started]);
            cohort_err_set(err, "bench: cannot start a thread");
            goto out;
        }
    }
    /* warm-up: until every subscriber is connected and subscribed */
    for (int64_t end = s_now() + 10000000; atomic_load(&ready) < k && s_now() < end;) {
        zmq_send(pub, buf, c->size, 0);
        usleep(10000);
    }
    if (atomic_load(&ready) < k) {
        cohort_err_set(err, "bench: %s: raw: %d of %d subscribers connected", c->name,
                       atomic_load(&ready), k);
        goto out;
    }
    s_tag(buf, self->tag, S_DATA);
    t0 = s_now();
    for (int64_t end = t0 + (int64_t)self->opts.duration_ms * 1000; s_now() < end; sent++)
        zmq_send(pub, buf, c->size, 0);
    rc = 0;
out:
    /* the end marker, again until every subscriber has seen it (PUB drops
     * at the high-water mark) */
    s_tag(buf, self->tag, S_END);
    for (int64_t stop = s_now() + 60000000; pub && atomic_load(&done) < started && s_now() < stop;
         usleep(20000))
        zmq_send(pub, buf, c->size, 0);
    uint64_t received = 0;
    double rate = 0;
    bool stalled = false;
    for (int i = 0; i < started; i++) {
        pthread_join(threads[i], NULL);
        received += r[i].count;
        stalled = stalled || r[i].stalled;
        double secs = (double)(r[i].last - t0) / 1e6;
        rate += secs > 0 ? (double)r[i].count / secs / k : 0;
        zmq_close(subs[i]);
        zmq_ctx_term(ctx[i]);
    }
    if (rc == 0 && stalled)
        rc = cohort_err_set(err, "bench: %s: raw: a subscriber stalled", c->name);
    out->sent = sent;
    out->received = received;
    out->seconds = (double)(s_now() - t0) / 1e6;
    out->metric[0] = rate;
    if (pub)
        zmq_close(pub);
    zmq_ctx_term(cp);
    free(buf);
    return rc;
}

/* ---- running ---- */

int cohort_bench_run(cohort_bench_t *self, const cohort_bench_case_t *c, cohort_bench_impl_t impl,
                     cohort_bench_sample_t *out, cohort_err_t *err)
{
    assert(self && c && out);
    memset(out, 0, sizeof *out);
    self->tag++;
    bool co = impl == COHORT_BENCH_COHORT;
    if (c->kind == COHORT_BENCH_REQREP && !co && self->reqrep_raw_of == c) {
        /* measured with the cohort sample just before */
        *out = self->reqrep_raw;
        self->reqrep_raw_of = NULL;
        return 0;
    }
    self->reqrep_raw_of = NULL;
    if ((co || c->kind == COHORT_BENCH_REQREP) && s_fixture(self, s_fixture_of(c->kind), err) < 0)
        return -1;
    /* Each sample's own peak: freed heap goes back to the system first, or
     * a sample after a greedy one would seem to need nothing. */
    cohort_benchkit_rss_reset();
    cohort_benchkit_rss(&out->rss_start_kib, NULL);
    int rc = -1;
    switch (c->kind) {
    case COHORT_BENCH_DIRECT:
    case COHORT_BENCH_RELAY:
        rc = co ? s_cohort_throughput(self, c, out, err) : s_raw_unicast(self, c, false, out, err);
        break;
    case COHORT_BENCH_REQREP: {
        cohort_bench_sample_t both[2];
        memset(both, 0, sizeof both);
        rc = s_reqrep(self, c, both, err);
        memcpy(out->metric, both[impl].metric, sizeof out->metric);
        out->seconds = both[impl].seconds;
        out->sent = both[impl].sent;
        out->received = both[impl].received;
        self->reqrep_raw = both[COHORT_BENCH_RAW];
        self->reqrep_raw_of = rc == 0 && co ? c : NULL;
        break;
    }
    case COHORT_BENCH_PUBSUB:
        rc = co ? s_cohort_pubsub(self, c, out, err) : s_raw_pubsub(self, c, out, err);
        break;
    case COHORT_BENCH_OVERLOAD:
        rc = co ? s_cohort_overload(self, c, out, err) : s_raw_unicast(self, c, true, out, err);
        break;
    }
    cohort_benchkit_rss(NULL, &out->rss_peak_kib);
    if (out->rss_peak_kib < out->rss_start_kib)
        out->rss_peak_kib = out->rss_start_kib;
    /* the raw sample's peak is the same process's over the same span */
    self->reqrep_raw.rss_start_kib = out->rss_start_kib;
    self->reqrep_raw.rss_peak_kib = out->rss_peak_kib;
    if (c->kind == COHORT_BENCH_OVERLOAD) {
        out->metric[0] = (double)(out->rss_peak_kib - out->rss_start_kib) / 1024.0;
        out->metric[1] = (double)out->rss_peak_kib / 1024.0;
    }
    return rc;
}
