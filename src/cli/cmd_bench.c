/*
 * cmd_bench: `cohortctl bench`: cohort against raw libzmq on the same
 * loopback path, in one run. The cases and how they measure live in
 * lib/bench.h; this file parses the options, alternates the rounds (cohort,
 * raw, cohort, raw, ... per case, so slow drifts of a shared machine hit
 * both alike), reports progress on stderr and prints medians and ratios
 * (cohort/raw) as a table or as one JSON object.
 *
 * It needs no running node: it starts its own throwaway clusters in this
 * process. Ratios within one run are what it is for; absolute figures move
 * with whatever else the machine is doing.
 */
#include "cli/cli.h"
#include "lib/bench.h"
#include "lib/benchkit.h"
#include "util/json.h"
#include "util/mem.h"

#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define S_CMD "bench"
#define S_USAGE                                                                                    \
    "[--rounds N] [--quick] [--only NAME] [--time MS] [--overload-time MS] [--json] [--list]"
#define S_ROUNDS 3
#define S_TIME_MS 600
#define S_OVERLOAD_MS 3000
#define S_QUICK_TIME_MS 150
#define S_QUICK_OVERLOAD_MS 600
#define S_SLOW_US 1000      /* overload: the receiver's sleep per message */
#define S_NAN ((double)NAN) /* no figure */

/* Every sample of one case. */
typedef struct {
    const cohort_bench_case_t *c;
    cohort_bench_sample_t *s[2]; /* [impl][round] */
    int done[2];                 /* samples taken per impl */
    char error[COHORT_ERR_TEXT_MAX];
} s_case_run_t;

static double s_median(const s_case_run_t *r, int impl, int metric)
{
    double v[256];
    int n = 0;
    for (int i = 0; i < r->done[impl] && n < 256; i++)
        v[n++] = r->s[impl][i].metric[metric];
    return cohort_benchkit_median(v, (size_t)n);
}

static double s_ratio(double cohort, double raw)
{
    return raw > 0 ? cohort / raw : S_NAN;
}

static const char *s_size(size_t size, char *out, size_t cap)
{
    if (size >= 1024 && size % 1024 == 0)
        snprintf(out, cap, "%zuKiB", size / 1024);
    else
        snprintf(out, cap, "%zuB", size);
    return out;
}

static const char *s_num(double v, char *out, size_t cap)
{
    if (isnan(v))
        snprintf(out, cap, "-");
    else if (v >= 100)
        snprintf(out, cap, "%.0f", v);
    else
        snprintf(out, cap, "%.1f", v);
    return out;
}

static void s_table(const s_case_run_t *runs, size_t n)
{
    printf("%-10s %-7s %-15s %12s %12s %7s\n", "test", "size", "metric", "cohort", "raw", "ratio");
    for (size_t i = 0; i < n; i++) {
        const s_case_run_t *r = &runs[i];
        char size[16], a[32], b[32], q[32];
        for (int m = 0; m < COHORT_BENCH_METRICS && r->c->metrics[m].name; m++) {
            if (r->error[0]) {
                printf("%-10s %-7s %-15s %12s %12s %7s\n", r->c->test,
                       s_size(r->c->size, size, sizeof size), r->c->metrics[m].label, "failed", "",
                       "");
                continue;
            }
            double co = s_median(r, 0, m), raw = s_median(r, 1, m);
            double ratio = s_ratio(co, raw);
            snprintf(q, sizeof q, isnan(ratio) ? "-" : "%.2f", ratio);
            printf("%-10s %-7s %-15s %12s %12s %7s\n", r->c->test,
                   s_size(r->c->size, size, sizeof size), r->c->metrics[m].label,
                   s_num(co, a, sizeof a), s_num(raw, b, sizeof b), q);
        }
    }
    for (size_t i = 0; i < n; i++) {
        const s_case_run_t *r = &runs[i];
        if (r->c->kind != COHORT_BENCH_OVERLOAD || r->error[0])
            continue;
        for (int impl = 0; impl < 2; impl++)
            for (int k = 0; k < r->done[impl]; k++) {
                const cohort_bench_sample_t *s = &r->s[impl][k];
                printf("%s %s round %d: sent %llu, queue full %llu, received %llu, dropped "
                       "%llu, VmRSS %.1f -> %.1f MiB, %s\n",
                       r->c->name, impl ? "raw" : "cohort", k + 1, (unsigned long long)s->sent,
                       (unsigned long long)s->queue_full, (unsigned long long)s->received,
                       (unsigned long long)s->dropped, (double)s->rss_start_kib / 1024.0,
                       (double)s->rss_peak_kib / 1024.0, s->bounded ? "bounded" : "NOT bounded");
            }
    }
    printf("peak VmRSS of the process per case, median MiB, cohort/raw:");
    for (size_t i = 0; i < n; i++) {
        const s_case_run_t *r = &runs[i];
        double v[2][256];
        for (int impl = 0; impl < 2; impl++)
            for (int k = 0; k < r->done[impl] && k < 256; k++)
                v[impl][k] = (double)r->s[impl][k].rss_peak_kib / 1024.0;
        printf("%s %s %.0f/%.0f", i ? "," : "", r->c->name,
               cohort_benchkit_median(v[0], (size_t)r->done[0]),
               cohort_benchkit_median(v[1], (size_t)r->done[1]));
    }
    printf("\n");
    for (size_t i = 0; i < n; i++) {
        const s_case_run_t *r = &runs[i];
        uint64_t resent = 0, relay_dropped = 0;
        for (int k = 0; k < r->done[0]; k++) {
            resent += r->s[0][k].resent;
            relay_dropped += r->s[0][k].relayed_dropped;
        }
        if (resent || relay_dropped)
            printf("%s cohort: %llu messages resent, %llu frames refused by the relay (all "
                   "rounds)\n",
                   r->c->name, (unsigned long long)resent, (unsigned long long)relay_dropped);
    }
    for (size_t i = 0; i < n; i++)
        if (runs[i].error[0])
            printf("%s failed: %s\n", runs[i].c->name, runs[i].error);
}

static void s_json_sample(cohort_json_t *j, const cohort_bench_case_t *c,
                          const cohort_bench_sample_t *s)
{
    cohort_json_object_start(j);
    for (int m = 0; m < COHORT_BENCH_METRICS && c->metrics[m].name; m++) {
        cohort_json_key(j, c->metrics[m].name);
        cohort_json_double(j, s->metric[m]);
    }
    cohort_json_key(j, "seconds");
    cohort_json_double(j, s->seconds);
    cohort_json_key(j, "sent");
    cohort_json_uint(j, s->sent);
    cohort_json_key(j, "received");
    cohort_json_uint(j, s->received);
    cohort_json_key(j, "queue_full");
    cohort_json_uint(j, s->queue_full);
    cohort_json_key(j, "dropped");
    cohort_json_uint(j, s->dropped);
    cohort_json_key(j, "resent");
    cohort_json_uint(j, s->resent);
    if (c->kind == COHORT_BENCH_RELAY) {
        cohort_json_key(j, "relay_dropped");
        cohort_json_uint(j, s->relayed_dropped);
    }
    cohort_json_key(j, "rss_start_kib");
    cohort_json_uint(j, s->rss_start_kib);
    cohort_json_key(j, "rss_peak_kib");
    cohort_json_uint(j, s->rss_peak_kib);
    if (c->kind == COHORT_BENCH_OVERLOAD) {
        cohort_json_key(j, "bounded");
        cohort_json_bool(j, s->bounded);
    }
    cohort_json_object_end(j);
}

static void s_json(const s_case_run_t *runs, size_t n, int rounds, bool quick,
                   const cohort_bench_opts_t *o)
{
    cohort_json_t *j = cohort_json_new();
    cohort_json_object_start(j);
    cohort_json_key(j, "rounds");
    cohort_json_int(j, rounds);
    cohort_json_key(j, "quick");
    cohort_json_bool(j, quick);
    cohort_json_key(j, "time_ms");
    cohort_json_int(j, o->duration_ms);
    cohort_json_key(j, "overload_ms");
    cohort_json_int(j, o->overload_ms);
    cohort_json_key(j, "cases");
    cohort_json_array_start(j);
    for (size_t i = 0; i < n; i++) {
        const s_case_run_t *r = &runs[i];
        cohort_json_object_start(j);
        cohort_json_key(j, "name");
        cohort_json_string(j, r->c->name);
        cohort_json_key(j, "test");
        cohort_json_string(j, r->c->test);
        cohort_json_key(j, "size");
        cohort_json_uint(j, r->c->size);
        if (r->c->subscribers) {
            cohort_json_key(j, "subscribers");
            cohort_json_int(j, r->c->subscribers);
        }
        if (r->error[0]) {
            cohort_json_key(j, "error");
            cohort_json_string(j, r->error);
        }
        cohort_json_key(j, "metrics");
        cohort_json_object_start(j);
        for (int m = 0; m < COHORT_BENCH_METRICS && r->c->metrics[m].name; m++) {
            double co = s_median(r, 0, m), raw = s_median(r, 1, m);
            cohort_json_key(j, r->c->metrics[m].name);
            cohort_json_object_start(j);
            cohort_json_key(j, "unit");
            cohort_json_string(j, r->c->metrics[m].label);
            cohort_json_key(j, "lower_is_better");
            cohort_json_bool(j, r->c->metrics[m].lower_better);
            cohort_json_key(j, "cohort");
            cohort_json_double(j, r->done[0] ? co : S_NAN);
            cohort_json_key(j, "raw");
            cohort_json_double(j, r->done[1] ? raw : S_NAN);
            cohort_json_key(j, "ratio");
            cohort_json_double(j, r->done[0] && r->done[1] ? s_ratio(co, raw) : S_NAN);
            cohort_json_object_end(j);
        }
        cohort_json_object_end(j);
        static const char *const impls[] = {"cohort", "raw"};
        for (int impl = 0; impl < 2; impl++) {
            cohort_json_key(j, impls[impl]);
            cohort_json_array_start(j);
            for (int k = 0; k < r->done[impl]; k++)
                s_json_sample(j, r->c, &r->s[impl][k]);
            cohort_json_array_end(j);
        }
        cohort_json_object_end(j);
    }
    cohort_json_array_end(j);
    uint64_t hwm = 0;
    if (cohort_benchkit_rss(NULL, &hwm) == 0) {
        cohort_json_key(j, "vm_hwm_kib");
        cohort_json_uint(j, hwm);
    }
    cohort_json_object_end(j);
    printf("%s\n", cohort_json_text(j, NULL));
    cohort_json_destroy(&j);
}

static void s_progress(const s_case_run_t *r, int impl, int round, int rounds)
{
    const cohort_bench_sample_t *s = &r->s[impl][round];
    char a[32];
    fprintf(stderr, "round %d/%d: %-12s %-6s %s %s", round + 1, rounds, r->c->name,
            impl ? "raw" : "cohort", s_num(s->metric[0], a, sizeof a), r->c->metrics[0].label);
    for (int m = 1; m < COHORT_BENCH_METRICS && r->c->metrics[m].name; m++)
        fprintf(stderr, ", %s %s", s_num(s->metric[m], a, sizeof a), r->c->metrics[m].label);
    fprintf(stderr, " (%.2f s, %llu msgs)\n", s->seconds, (unsigned long long)s->received);
}

static int s_list(void)
{
    size_t n = 0;
    const cohort_bench_case_t *cases = cohort_bench_cases(&n);
    for (size_t i = 0; i < n; i++)
        printf("%-12s %s\n", cases[i].name, cases[i].metrics[0].label);
    return 0;
}

static int s_bench(int argc, char **argv)
{
    static const struct option opts[] = {{"rounds", required_argument, NULL, 'r'},
                                         {"quick", no_argument, NULL, 'q'},
                                         {"only", required_argument, NULL, 'o'},
                                         {"time", required_argument, NULL, 't'},
                                         {"overload-time", required_argument, NULL, 'O'},
                                         {"json", no_argument, NULL, 'j'},
                                         {"list", no_argument, NULL, 'l'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    long rounds = -1, time_ms = -1, overload_ms = -1;
    bool quick = false, json = false;
    const char *only = NULL;
    opterr = 0;
    int ch;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (ch) {
        case 'r':
            if (cohort_cli_int(S_CMD, "--rounds", optarg, 1, 100, &rounds) < 0)
                return COHORT_CLI_EXIT_USAGE;
            break;
        case 't':
            if (cohort_cli_int(S_CMD, "--time", optarg, 10, 600000, &time_ms) < 0)
                return COHORT_CLI_EXIT_USAGE;
            break;
        case 'O':
            if (cohort_cli_int(S_CMD, "--overload-time", optarg, 10, 3600000, &overload_ms) < 0)
                return COHORT_CLI_EXIT_USAGE;
            break;
        case 'q':
            quick = true;
            break;
        case 'o':
            only = optarg;
            break;
        case 'j':
            json = true;
            break;
        case 'l':
            return s_list();
        case 'h':
            printf("usage: cohortctl %s %s\n", S_CMD, S_USAGE);
            return 0;
        default:
            cohort_cli_fail(COHORT_CLI_EXIT_USAGE, S_CMD, "unknown option or missing value: '%s'",
                            argv[optind - 1]);
            return cohort_cli_fail(COHORT_CLI_EXIT_USAGE, S_CMD, "usage: cohortctl %s %s", S_CMD,
                                   S_USAGE);
        }
    }
    if (optind < argc)
        return cohort_cli_fail(COHORT_CLI_EXIT_USAGE, S_CMD, "unexpected argument '%s'",
                               argv[optind]);
    if (rounds < 0)
        rounds = quick ? 1 : S_ROUNDS;
    cohort_bench_opts_t o = {
        .duration_ms = (int)(time_ms > 0 ? time_ms
                             : quick     ? S_QUICK_TIME_MS
                                         : S_TIME_MS),
        .overload_ms = quick ? S_QUICK_OVERLOAD_MS : S_OVERLOAD_MS,
        .overload_sleep_us = S_SLOW_US,
    };
    if (overload_ms > 0)
        o.overload_ms = (int)overload_ms;

    size_t total = 0, n = 0;
    const cohort_bench_case_t *cases = cohort_bench_cases(&total);
    s_case_run_t *runs = cohort_calloc(total, sizeof *runs);
    for (size_t i = 0; i < total; i++)
        if (!only || !strcmp(only, cases[i].name) || !strcmp(only, cases[i].test)) {
            runs[n].c = &cases[i];
            for (int impl = 0; impl < 2; impl++)
                runs[n].s[impl] = cohort_calloc((size_t)rounds, sizeof(cohort_bench_sample_t));
            n++;
        }
    if (n == 0) {
        free(runs);
        return cohort_cli_fail(COHORT_CLI_EXIT_USAGE, S_CMD,
                               "--only: no case or test called '%.40s' (see --list)", only);
    }

    cohort_bench_t *bench = cohort_bench_new(&o);
    int failed = 0;
    bool tty = isatty(STDERR_FILENO);
    for (size_t i = 0; i < n; i++) {
        s_case_run_t *r = &runs[i];
        for (int round = 0; round < rounds && !r->error[0]; round++)
            for (int impl = 0; impl < 2 && !r->error[0]; impl++) {
                if (tty) /* the line the result overwrites */
                    fprintf(stderr, "round %d/%d: %-12s %-6s ...\r", round + 1, (int)rounds,
                            r->c->name, impl ? "raw" : "cohort");
                cohort_err_t err;
                cohort_err_clear(&err);
                if (cohort_bench_run(bench, r->c, (cohort_bench_impl_t)impl, &r->s[impl][round],
                                     &err) < 0) {
                    snprintf(r->error, sizeof r->error, "%s: %s", impl ? "raw" : "cohort",
                             cohort_err_text(&err));
                    fprintf(stderr, "round %d/%d: %-12s %-6s FAILED: %s\n", round + 1, (int)rounds,
                            r->c->name, impl ? "raw" : "cohort", cohort_err_text(&err));
                    failed++;
                    break;
                }
                r->done[impl]++;
                s_progress(r, impl, round, (int)rounds);
            }
    }
    /* a socket found ready with no wakeup for it (src/node/zpoll.c) */
    uint64_t missed = cohort_bench_missed_wakeups(bench);
    if (missed)
        fprintf(stderr,
                "cohort nodes: %llu sockets found ready at a tick with no wakeup on the way "
                "(a missed wakeup, or a message that came during the check)\n",
                (unsigned long long)missed);
    cohort_bench_destroy(&bench);
    if (json)
        s_json(runs, n, (int)rounds, quick, &o);
    else
        s_table(runs, n);
    for (size_t i = 0; i < n; i++) {
        free(runs[i].s[0]);
        free(runs[i].s[1]);
    }
    free(runs);
    return failed ? COHORT_CLI_EXIT_FAIL : 0;
}

const cohort_cli_cmd_t cohort_cli_bench_cmds[] = {
    {NULL, "bench", s_bench, S_USAGE,
     "measure cohort against raw libzmq (CURVE, loopback) in one run: throughput, "
     "latency, pub/sub, memory under overload"},
    {NULL, NULL, NULL, NULL, NULL},
};
