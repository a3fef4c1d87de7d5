/*
 * cmd_node: `cohortctl status|peers|members|send|stream|pub|sub|req|serve|events`: what an
 * operator does with a running node, through its local API
 * (proto/api.proto, client in api/client.h).
 *
 * The node is found by --api ENDPOINT, else by -c node.yaml (its
 * api.endpoint), else by $COHORT_API. Every wait is bounded: a node that is
 * not there is reported within a few seconds, and long-running commands
 * (sub, serve, events) notice a node that went away by its missing
 * heartbeats. They stop cleanly on SIGINT/SIGTERM, saying Bye so the node
 * drops their subscriptions at once. Routing rules (who gets a unicast, a
 * publish, a request) are the API's, not this file's.
 */
#include "api/client.h"
#include "cli/cli.h"
#include "cohort.h"
#include "config/config.h"
#include "util/fs.h"
#include "util/json.h"
#include "util/mem.h"
#include "util/proc.h"

#include <czmq.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define S_REPLY_MS 3000          /* how long the node has to answer a request */
#define S_LOST_MS 15000          /* no heartbeat for this long: the node is gone */
#define S_MAX_DATA (64 << 20)    /* the largest message any config allows */
#define S_EXEC_MAX_OUT (1 << 20) /* serve --exec: largest reply */
#define S_EXEC_TIMEOUT_MS 10000  /* serve --exec: default time limit per request */
#define S_REQ_TIMEOUT_MS 5000    /* req: default */
#define S_MAX_HEADERS 64
#define S_DEFAULT_SUBJECT "direct" /* send: when --subject is not given */

/* Which options a command takes. */
enum {
    O_JSON = 1 << 0,
    O_SUBJECT = 1 << 1,
    O_HEADER = 1 << 2,
    O_FILE = 1 << 3,
    O_COUNT = 1 << 4,
    O_TIMEOUT = 1 << 5,
    O_RAW = 1 << 6,
    O_ECHO = 1 << 7,
    O_EXEC = 1 << 8,
    O_RATE = 1 << 9,
    O_SIZE = 1 << 10,
};

typedef struct {
    const char *cmd;
    const char *usage;
    const char *api, *config;
    bool json, raw, echo;
    const char *subject, *file, *exec;
    char *hkeys[S_MAX_HEADERS], *hvalues[S_MAX_HEADERS];
    size_t header_count;
    long count;      /* 0: unbounded */
    long rate;       /* stream: messages per second, 0: as fast as the node takes them */
    long size;       /* stream: payload bytes, 0: just the number */
    long timeout_ms; /* -1: not given */
    int argc;        /* positional arguments */
    char **argv;
} s_opts_t;

typedef Cohort__Api__ApiRequest s_req_t;

static volatile sig_atomic_t s_stop;

static void s_on_signal(int sig)
{
    (void)sig;
    s_stop = 1;
}

/* Our own handlers, without SA_RESTART so waits wake up; CZMQ's are off. */
static void s_signals(void)
{
    zsys_handler_set(NULL);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = s_on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

/* ---- options ---- */

static int s_usage(const s_opts_t *o)
{
    return cohort_cli_fail(COHORT_CLI_EXIT_USAGE, o->cmd, "usage: cohortctl %s %s", o->cmd,
                           o->usage);
}

/* A duration: digits with an optional unit (ms, s, m); unit_ms applies to
 * bare digits. */
static int s_duration(const s_opts_t *o, const char *text, long unit_ms, long *out)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(text, &end, 10);
    long mult = unit_ms;
    if (end && !strcmp(end, "ms"))
        mult = 1;
    else if (end && !strcmp(end, "s"))
        mult = 1000;
    else if (end && !strcmp(end, "m"))
        mult = 60000;
    else if (end && *end)
        mult = 0;
    if (!*text || errno || v < 1 || mult == 0 || v > 86400000L / mult) {
        cohort_cli_fail(COHORT_CLI_EXIT_USAGE, o->cmd,
                        "--timeout: must be a duration such as 500ms, 5s or 2m (bare numbers "
                        "are %s), got '%.40s'",
                        unit_ms == 1 ? "milliseconds" : "seconds", text);
        return -1;
    }
    *out = v * mult;
    return 0;
}

/* Parses the common and the command's own options; positional arguments
 * are left in o->argc / o->argv. Returns 0, or an exit code. */
static int s_parse(s_opts_t *o, int argc, char **argv, unsigned allowed, long timeout_unit_ms)
{
    static const struct option opts[] = {{"api", required_argument, NULL, 'A'},
                                         {"config", required_argument, NULL, 'c'},
                                         {"json", no_argument, NULL, 'j'},
                                         {"subject", required_argument, NULL, 's'},
                                         {"header", required_argument, NULL, 'H'},
                                         {"file", required_argument, NULL, 'f'},
                                         {"count", required_argument, NULL, 'n'},
                                         {"timeout", required_argument, NULL, 't'},
                                         {"raw", no_argument, NULL, 'r'},
                                         {"echo", no_argument, NULL, 'e'},
                                         {"exec", required_argument, NULL, 'x'},
                                         {"rate", required_argument, NULL, 'R'},
                                         {"size", required_argument, NULL, 'S'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    static const struct {
        int c;
        unsigned bit;
    } bits[] = {{'j', O_JSON},  {'s', O_SUBJECT}, {'H', O_HEADER}, {'f', O_FILE},
                {'n', O_COUNT}, {'t', O_TIMEOUT}, {'r', O_RAW},    {'e', O_ECHO},
                {'x', O_EXEC},  {'R', O_RATE},    {'S', O_SIZE}};
    o->timeout_ms = -1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "c:", opts, NULL)) != -1) {
        for (size_t i = 0; i < sizeof bits / sizeof bits[0]; i++)
            if (bits[i].c == c && !(allowed & bits[i].bit)) {
                cohort_cli_fail(COHORT_CLI_EXIT_USAGE, o->cmd, "%s does not apply here",
                                argv[optind - 1]);
                return s_usage(o);
            }
        switch (c) {
        case 'A':
            o->api = optarg;
            break;
        case 'c':
            o->config = optarg;
            break;
        case 'j':
            o->json = true;
            break;
        case 's':
            o->subject = optarg;
            break;
        case 'H': {
            char *eq = strchr(optarg, '=');
            if (!eq || eq == optarg)
                return cohort_cli_fail(COHORT_CLI_EXIT_USAGE, o->cmd,
                                       "--header: must be KEY=VALUE, got '%.40s'", optarg);
            if (o->header_count == S_MAX_HEADERS)
                return cohort_cli_fail(COHORT_CLI_EXIT_USAGE, o->cmd, "at most %d --header",
                                       S_MAX_HEADERS);
            *eq = '\0';
            o->hkeys[o->header_count] = optarg;
            o->hvalues[o->header_count++] = eq + 1;
            break;
        }
        case 'f':
            o->file = optarg;
            break;
        case 'n':
            if (cohort_cli_int(o->cmd, "--count", optarg, 1, 1000000000L, &o->count) < 0)
                return COHORT_CLI_EXIT_USAGE;
            break;
        case 't':
            if (s_duration(o, optarg, timeout_unit_ms, &o->timeout_ms) < 0)
                return COHORT_CLI_EXIT_USAGE;
            break;
        case 'R':
            if (cohort_cli_int(o->cmd, "--rate", optarg, 1, 10000000L, &o->rate) < 0)
                return COHORT_CLI_EXIT_USAGE;
            break;
        case 'S':
            if (cohort_cli_int(o->cmd, "--size", optarg, 1, S_MAX_DATA, &o->size) < 0)
                return COHORT_CLI_EXIT_USAGE;
            break;
        case 'r':
            o->raw = true;
            break;
        case 'e':
            o->echo = true;
            break;
        case 'x':
            o->exec = optarg;
            break;
        case 'h':
            printf("usage: cohortctl %s %s\n", o->cmd, o->usage);
            exit(0);
        default: {
            /* a known option without its value, or an unknown one */
            const char *word = argv[optind - 1];
            bool known = !strcmp(word, "-c");
            for (const struct option *k = opts; k->name && !known; k++)
                known = k->has_arg == required_argument && !strncmp(word, "--", 2) &&
                        !strcmp(word + 2, k->name);
            cohort_cli_fail(COHORT_CLI_EXIT_USAGE, o->cmd,
                            known ? "%s needs a value" : "unknown option '%s'", word);
            return s_usage(o);
        }
        }
    }
    o->argc = argc - optind;
    o->argv = argv + optind;
    return 0;
}

/* The node's endpoint: --api, else -c's api.endpoint, else $COHORT_API.
 * Flags beat the environment, as users of docker -H or nats -s expect. */
static int s_endpoint(const s_opts_t *o, char **out)
{
    if (o->api) {
        *out = cohort_strdup(o->api);
        return 0;
    }
    if (o->config) {
        cohort_config_t *cfg = NULL;
        cohort_err_t err;
        if (cohort_config_load(o->config, &cfg, &err) < 0)
            return cohort_cli_err(o->cmd, &err);
        *out = cohort_strdup(cfg->api_endpoint);
        cohort_config_destroy(&cfg);
        return 0;
    }
    const char *env = getenv("COHORT_API");
    if (env && *env) {
        *out = cohort_strdup(env);
        return 0;
    }
    return cohort_cli_fail(COHORT_CLI_EXIT_USAGE, o->cmd,
                           "which node? give --api ENDPOINT (e.g. ipc:///var/lib/cohort/api.sock), "
                           "-c node.yaml (its api.endpoint is used), or set COHORT_API");
}

static int s_connect(const s_opts_t *o, cohort_api_client_t **out)
{
    char *ep = NULL;
    int rc = s_endpoint(o, &ep);
    if (rc)
        return rc;
    cohort_err_t err;
    if (cohort_api_client_open(ep, out, &err) < 0) {
        free(ep);
        return cohort_cli_err(o->cmd, &err);
    }
    free(ep);
    cohort_api_client_set_interrupt(*out, &s_stop);
    return 0;
}

/* One request; on failure to get an answer prints why and returns 1. */
static int s_request(const s_opts_t *o, cohort_api_client_t *c, s_req_t *req,
                     Cohort__Api__Response **resp)
{
    cohort_err_t err;
    if (cohort_api_client_request(c, req, S_REPLY_MS, resp, &err) < 0)
        return cohort_cli_err(o->cmd, &err);
    return 0;
}

/* Prints the node's refusal; returns 1. */
static int s_refused(const s_opts_t *o, const Cohort__Api__Response *resp)
{
    return cohort_cli_fail(COHORT_CLI_EXIT_FAIL, o->cmd, "%s",
                           resp->error && resp->error[0]
                               ? resp->error
                               : cohort_status_name((cohort_status_t)resp->status));
}

/* ---- data and messages ---- */

static int s_read_stdin(const s_opts_t *o, char **out, size_t *len)
{
    size_t cap = 64 * 1024, n = 0;
    char *buf = cohort_malloc(cap);
    for (;;) {
        if (n == cap) {
            if (cap > S_MAX_DATA) {
                free(buf);
                return cohort_cli_fail(COHORT_CLI_EXIT_FAIL, o->cmd,
                                       "stdin: more than %d bytes, the largest message possible",
                                       S_MAX_DATA);
            }
            cap *= 2;
            buf = cohort_realloc(buf, cap + 1);
        }
        size_t r = fread(buf + n, 1, cap - n, stdin);
        n += r;
        if (r == 0) {
            if (ferror(stdin)) {
                free(buf);
                return cohort_cli_fail(COHORT_CLI_EXIT_FAIL, o->cmd, "stdin: %s", strerror(errno));
            }
            break;
        }
    }
    *out = buf;
    *len = n;
    return 0;
}

/* The payload: DATA, `-` (stdin) or --file. */
static int s_payload(const s_opts_t *o, const char *arg, char **out, size_t *len)
{
    if (o->file && arg)
        return cohort_cli_fail(COHORT_CLI_EXIT_USAGE, o->cmd, "give DATA, - or --file, not two");
    if (o->file) {
        cohort_err_t err;
        if (cohort_fs_read(o->file, S_MAX_DATA, out, len, &err) < 0)
            return cohort_cli_err(o->cmd, &err);
        return 0;
    }
    if (!arg)
        return s_usage(o);
    if (!strcmp(arg, "-"))
        return s_read_stdin(o, out, len);
    *len = strlen(arg);
    *out = cohort_strdup(arg);
    return 0;
}

/* A wire Message around borrowed data, headers from the options. */
typedef struct {
    Cohort__Wire__Message m;
    Cohort__Wire__Header hs[S_MAX_HEADERS];
    Cohort__Wire__Header *hp[S_MAX_HEADERS];
} s_msg_t;

static void s_msg(s_msg_t *w, const s_opts_t *o, const char *subject, const char *data, size_t len)
{
    cohort__wire__message__init(&w->m);
    for (size_t i = 0; i < o->header_count; i++) {
        cohort__wire__header__init(&w->hs[i]);
        w->hs[i].key = o->hkeys[i];
        w->hs[i].value = o->hvalues[i];
        w->hp[i] = &w->hs[i];
    }
    w->m.n_headers = o->header_count;
    w->m.headers = w->hp;
    w->m.subject = (char *)(uintptr_t)subject; /* only read by the encoder */
    w->m.payload.data = (uint8_t *)(uintptr_t)data;
    w->m.payload.len = len;
}

/* Payload bytes as one line of text: control bytes escaped. */
static void s_print_text(FILE *out, const uint8_t *p, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (p[i] == '\n')
            fputs("\\n", out);
        else if (p[i] == '\\')
            fputs("\\\\", out);
        else if ((p[i] < 0x20 && p[i] != '\t') || p[i] == 0x7f)
            fprintf(out, "\\x%02x", p[i]);
        else
            fputc(p[i], out);
    }
}

/* --raw: the bytes as they are, then a newline so messages stay apart. */
static void s_print_raw(FILE *out, const uint8_t *p, size_t len)
{
    fwrite(p, 1, len, out);
    fputc('\n', out);
}

/* Waits for the next delivery or event. Returns 1 with *msg, 0 when the
 * deadline (-1: none) passed or a signal came, or 1 through *lost == true
 * when the node has been silent too long. */
static int s_next(cohort_api_client_t *c, int64_t deadline, Cohort__Api__ApiMessage **msg,
                  bool *lost)
{
    *lost = false;
    while (!s_stop) {
        int64_t left = deadline < 0 ? 500 : deadline - zclock_mono();
        if (left <= 0)
            return 0;
        if (cohort_api_client_recv(c, left < 500 ? (int)left : 500, msg) == 1)
            return 1;
        if (cohort_api_client_closed(c) || cohort_api_client_quiet_ms(c) > S_LOST_MS) {
            *lost = true;
            return 0;
        }
    }
    return 0;
}

static int s_lost(const s_opts_t *o, const cohort_api_client_t *c)
{
    if (cohort_api_client_closed(c))
        return cohort_cli_fail(COHORT_CLI_EXIT_FAIL, o->cmd,
                               "the node at %s closed its API (cohortd is stopping)",
                               cohort_api_client_endpoint(c));
    return cohort_cli_fail(COHORT_CLI_EXIT_FAIL, o->cmd,
                           "lost the node at %s: nothing heard for %d s (cohortd stopped or "
                           "restarted?)",
                           cohort_api_client_endpoint(c), S_LOST_MS / 1000);
}

/* ---- status and peers ---- */

static const char *s_uptime(uint64_t ms, char out[32])
{
    uint64_t s = ms / 1000;
    if (s >= 86400)
        snprintf(out, 32, "%" PRIu64 "d%02" PRIu64 "h%02" PRIu64 "m", s / 86400, s % 86400 / 3600,
                 s % 3600 / 60);
    else if (s >= 3600)
        snprintf(out, 32, "%" PRIu64 "h%02" PRIu64 "m%02" PRIu64 "s", s / 3600, s % 3600 / 60,
                 s % 60);
    else if (s >= 60)
        snprintf(out, 32, "%" PRIu64 "m%02" PRIu64 "s", s / 60, s % 60);
    else
        snprintf(out, 32, "%" PRIu64 "s", s);
    return out;
}

typedef struct {
    const char *label, *key;
    uint64_t value;
} s_counter_t;

static size_t s_counters(const Cohort__Api__Counters *k, s_counter_t out[24])
{
    static const Cohort__Api__Counters zero = COHORT__API__COUNTERS__INIT;
    if (!k)
        k = &zero;
    size_t n = 0;
    out[n++] = (s_counter_t){"garbage dropped", "garbage_dropped", k->garbage_dropped};
    out[n++] = (s_counter_t){"oversized dropped", "oversized_dropped", k->oversized_dropped};
    out[n++] = (s_counter_t){"handshakes refused", "handshakes_refused", k->handshakes_refused};
    out[n++] = (s_counter_t){"duplicates dropped", "duplicates_dropped", k->duplicates_dropped};
    out[n++] = (s_counter_t){"resent", "resent", k->resent};
    out[n++] = (s_counter_t){"queue full", "queue_full", k->queue_full};
    out[n++] = (s_counter_t){"delivery dropped", "delivery_dropped", k->delivery_dropped};
    out[n++] = (s_counter_t){"delivery deferred", "delivery_deferred", k->delivery_deferred};
    out[n++] = (s_counter_t){"delivery queued", "delivery_queued", k->delivery_queued};
    out[n++] =
        (s_counter_t){"handshakes incomplete", "handshakes_incomplete", k->handshakes_incomplete};
    out[n++] = (s_counter_t){"unknown sender", "unknown_sender", k->unknown_sender};
    out[n++] = (s_counter_t){"messages in", "messages_in", k->messages_in};
    out[n++] = (s_counter_t){"messages out", "messages_out", k->messages_out};
    out[n++] = (s_counter_t){"missed wakeups", "missed_wakeups", k->missed_wakeups};
    out[n++] = (s_counter_t){"caller runs", "caller_runs", k->caller_runs};
    out[n++] = (s_counter_t){"actor yields", "actor_yields", k->actor_yields};
    out[n++] = (s_counter_t){"handed to caller", "handed_to_caller", k->handed_to_caller};
    return n;
}

static size_t s_api_counters(const Cohort__Api__ApiStats *a, s_counter_t out[16])
{
    static const Cohort__Api__ApiStats zero = COHORT__API__API_STATS__INIT;
    if (!a)
        a = &zero;
    size_t n = 0;
    out[n++] = (s_counter_t){"clients", "clients", a->clients};
    out[n++] = (s_counter_t){"requests", "requests", a->requests};
    out[n++] = (s_counter_t){"invalid", "invalid", a->invalid};
    out[n++] = (s_counter_t){"too large", "too_large", a->too_large};
    out[n++] = (s_counter_t){"unrouted", "unrouted", a->unrouted};
    out[n++] = (s_counter_t){"client dropped", "client_dropped", a->client_dropped};
    out[n++] = (s_counter_t){"clients gone", "clients_gone", a->clients_gone};
    return n;
}

static void s_json_strings(cohort_json_t *j, const char *key, char **v, size_t n)
{
    cohort_json_key(j, key);
    cohort_json_array_start(j);
    for (size_t i = 0; i < n; i++)
        cohort_json_string(j, v[i]);
    cohort_json_array_end(j);
}

static void s_json_counters(cohort_json_t *j, const char *key, const s_counter_t *c, size_t n)
{
    cohort_json_key(j, key);
    cohort_json_object_start(j);
    for (size_t i = 0; i < n; i++) {
        cohort_json_key(j, c[i].key);
        cohort_json_uint(j, c[i].value);
    }
    cohort_json_object_end(j);
}

static void s_json_print(cohort_json_t **j)
{
    size_t len = 0;
    const char *text = cohort_json_text(*j, &len);
    fwrite(text, 1, len, stdout);
    fputc('\n', stdout);
    cohort_json_destroy(j);
}

static void s_print_list(const char *label, char **v, size_t n)
{
    printf("%-14s", label);
    if (!n)
        printf("-");
    for (size_t i = 0; i < n; i++)
        printf("%s%s", i ? ", " : "", v[i]);
    printf("\n");
}

static void s_print_status(const Cohort__Api__Status *st, bool json)
{
    s_counter_t k[24], a[16];
    size_t nk = s_counters(st->counters, k), na = s_api_counters(st->api, a);
    if (json) {
        cohort_json_t *j = cohort_json_new();
        cohort_json_object_start(j);
        cohort_json_key(j, "node");
        cohort_json_string(j, st->node);
        cohort_json_key(j, "cluster");
        cohort_json_string(j, st->cluster);
        cohort_json_key(j, "site");
        cohort_json_string(j, st->site);
        cohort_json_key(j, "roster_serial");
        cohort_json_uint(j, st->roster_serial);
        cohort_json_key(j, "uptime_ms");
        cohort_json_uint(j, st->uptime_ms);
        cohort_json_key(j, "peers_up");
        cohort_json_uint(j, st->peers_up);
        cohort_json_key(j, "peers_total");
        cohort_json_uint(j, st->peers_total);
        s_json_strings(j, "services", st->services, st->n_services);
        s_json_strings(j, "subscriptions", st->subscriptions, st->n_subscriptions);
        s_json_counters(j, "counters", k, nk);
        s_json_counters(j, "api", a, na);
        cohort_json_object_end(j);
        s_json_print(&j);
        return;
    }
    char up[32];
    printf("%-14s%s\n%-14s%s\n%-14s%s\n%-14s%" PRIu64 "\n%-14s%s\n%-14s%" PRIu32 "/%" PRIu32
           " up\n",
           "node", st->node, "cluster", st->cluster, "site", st->site[0] ? st->site : "-",
           "roster serial", st->roster_serial, "uptime", s_uptime(st->uptime_ms, up), "peers",
           st->peers_up, st->peers_total);
    s_print_list("services", st->services, st->n_services);
    s_print_list("subscriptions", st->subscriptions, st->n_subscriptions);
    printf("counters\n");
    for (size_t i = 0; i < nk; i++)
        printf("  %-20s %" PRIu64 "\n", k[i].label, k[i].value);
    printf("api\n");
    for (size_t i = 0; i < na; i++)
        printf("  %-20s %" PRIu64 "\n", a[i].label, a[i].value);
}

static const char *s_rtt(int64_t us, char out[32])
{
    if (us < 0)
        return "-";
    snprintf(out, 32, "%.1fms", (double)us / 1000.0);
    return out;
}

static const char *s_seen(int64_t ms, char out[32])
{
    if (ms < 0)
        return "never";
    snprintf(out, 32, "%.1fs ago", (double)ms / 1000.0);
    return out;
}

#define S_PEER_COLS 14

static void s_print_peers(Cohort__Api__Peer **peers, size_t n, bool json)
{
    if (json) {
        cohort_json_t *j = cohort_json_new();
        cohort_json_array_start(j);
        for (size_t i = 0; i < n; i++) {
            const Cohort__Api__Peer *p = peers[i];
            cohort_json_object_start(j);
            cohort_json_key(j, "name");
            cohort_json_string(j, p->name);
            cohort_json_key(j, "site");
            cohort_json_string(j, p->site);
            cohort_json_key(j, "state");
            cohort_json_string(j, p->state);
            cohort_json_key(j, "link");
            cohort_json_string(j, p->link);
            cohort_json_key(j, "via");
            cohort_json_string(j, p->via);
            cohort_json_key(j, "reason");
            cohort_json_string(j, p->reason);
            cohort_json_key(j, "rtt_us");
            cohort_json_int(j, p->rtt_us);
            cohort_json_key(j, "last_seen_ms");
            cohort_json_int(j, p->last_seen_ms);
            cohort_json_key(j, "msgs_in");
            cohort_json_uint(j, p->msgs_in);
            cohort_json_key(j, "msgs_out");
            cohort_json_uint(j, p->msgs_out);
            cohort_json_key(j, "bytes_in");
            cohort_json_uint(j, p->bytes_in);
            cohort_json_key(j, "bytes_out");
            cohort_json_uint(j, p->bytes_out);
            cohort_json_key(j, "unacked");
            cohort_json_uint(j, p->unacked);
            cohort_json_key(j, "throttled");
            cohort_json_uint(j, p->throttled);
            cohort_json_key(j, "receive_queued");
            cohort_json_uint(j, p->receive_queued);
            cohort_json_key(j, "receive_queued_peak");
            cohort_json_uint(j, p->receive_queued_peak);
            cohort_json_key(j, "roles");
            cohort_json_string(j, p->roles);
            cohort_json_key(j, "fingerprint");
            cohort_json_string(j, p->fingerprint);
            cohort_json_object_end(j);
        }
        cohort_json_array_end(j);
        s_json_print(&j);
        return;
    }
    static const char *const head[S_PEER_COLS] = {
        "NAME",      "SITE",      "STATE",     "LINK",       "WHY-NOT-HIGHER",
        "RTT",       "LAST-SEEN", "MSGS-IN",   "MSGS-OUT",   "BYTES-IN",
        "BYTES-OUT", "UNACKED",   "THROTTLED", "FINGERPRINT"};
    char(*cells)[S_PEER_COLS][72] = cohort_calloc(n + 1, sizeof *cells);
    size_t width[S_PEER_COLS] = {0};
    for (int k = 0; k < S_PEER_COLS; k++)
        snprintf(cells[0][k], sizeof cells[0][k], "%s", head[k]);
    for (size_t i = 0; i < n; i++) {
        const Cohort__Api__Peer *p = peers[i];
        char(*row)[72] = cells[i + 1], t[32];
        snprintf(row[0], 72, "%s", p->name);
        snprintf(row[1], 72, "%s", p->site[0] ? p->site : "-");
        snprintf(row[2], 72, "%s", p->state);
        if (p->via && *p->via)
            snprintf(row[3], 72, "%s via %s", p->link, p->via);
        else
            snprintf(row[3], 72, "%s", p->link);
        snprintf(row[4], 72, "%s", p->reason && *p->reason ? p->reason : "-");
        snprintf(row[5], 72, "%s", s_rtt(p->rtt_us, t));
        snprintf(row[6], 72, "%s", s_seen(p->last_seen_ms, t));
        snprintf(row[7], 72, "%" PRIu64, p->msgs_in);
        snprintf(row[8], 72, "%" PRIu64, p->msgs_out);
        snprintf(row[9], 72, "%" PRIu64, p->bytes_in);
        snprintf(row[10], 72, "%" PRIu64, p->bytes_out);
        snprintf(row[11], 72, "%" PRIu32, p->unacked);
        snprintf(row[12], 72, "%" PRIu64, p->throttled);
        snprintf(row[13], 72, "%.16s", p->fingerprint);
    }
    for (size_t i = 0; i <= n; i++)
        for (int k = 0; k < S_PEER_COLS; k++)
            if (strlen(cells[i][k]) > width[k])
                width[k] = strlen(cells[i][k]);
    for (size_t i = 0; i <= n; i++)
        for (int k = 0; k < S_PEER_COLS; k++)
            printf("%-*s%s", k == S_PEER_COLS - 1 ? 0 : (int)width[k], cells[i][k],
                   k == S_PEER_COLS - 1 ? "\n" : "  ");
    if (!n)
        printf("(no other members in the roster)\n");
    free(cells);
}

/* netcheck: how the rendezvous nodes see this node, and what that says
 * about its NAT. */
static void s_print_netcheck(const Cohort__Api__Status *st)
{
    const Cohort__Api__Links *l = st->links;
    if (!l) {
        printf("the node reports no link information\n");
        return;
    }
    if (l->punch_port)
        printf("punch port:  %u\n", l->punch_port);
    else
        printf("punch port:  off (listen.punch_port is 0)\n");
    if (!l->n_observed)
        printf("observed:    no rendezvous node has reported our address yet\n");
    long ports[2] = {-1, -1};
    for (size_t i = 0; i < l->n_observed && i < 2; i++) {
        const char *ep = l->observed[i]->endpoint;
        const char *colon = strrchr(ep, ':');
        ports[i] = colon ? strtol(colon + 1, NULL, 10) : -1;
        printf("observed:    %s (by rendezvous %s)\n", ep, l->observed[i]->rendezvous);
    }
    const char *verdict = "unknown: no observation yet";
    if (l->n_observed >= 2 && ports[0] != ports[1])
        verdict = "symmetric: each destination gets another port; punching will fail and "
                  "peers behind NAT are reached through relays";
    else if (l->n_observed >= 1 && l->punch_port && ports[0] == (long)l->punch_port)
        verdict = "port-preserving (or no NAT): hole punching can work";
    else if (l->n_observed >= 1)
        verdict = l->n_observed >= 2 ? "rewrites the port, but consistently: punching may work"
                                     : "rewrites the port (one view only: cannot tell if "
                                       "it is symmetric)";
    printf("nat:         %s\n", verdict);
    printf("punches:     %" PRIu64 " attempted, %" PRIu64 " succeeded, %" PRIu64 " failed\n",
           l->punch_attempts, l->punch_ok, l->punch_failed);
    printf("rung switches: %" PRIu64 "\n", l->rung_switches);
    printf("relayed for others: %" PRIu64 " frames, %" PRIu64 " bytes, %" PRIu64
           " refused; sealed frames rejected: %" PRIu64 "\n",
           l->relay_frames, l->relay_bytes, l->relay_dropped, l->seal_rejected);
}

/* trace: the path to one peer and the round trip of each hop. */
static int s_print_trace(const char *cmd, Cohort__Api__Peer **peers, size_t n, const char *name)
{
    const Cohort__Api__Peer *p = NULL, *via = NULL;
    for (size_t i = 0; i < n; i++) {
        if (!strcmp(peers[i]->name, name))
            p = peers[i];
    }
    if (!p)
        return cohort_cli_fail(COHORT_CLI_EXIT_FAIL, cmd, "no member named '%s'", name);
    if (p->via && *p->via)
        for (size_t i = 0; i < n; i++)
            if (!strcmp(peers[i]->name, p->via))
                via = peers[i];
    char t1[32], t2[32];
    printf("%s: %s, link %s%s%s\n", p->name, p->state, p->link, via ? " via " : "",
           via ? via->name : "");
    if (p->reason && *p->reason)
        printf("  not on a higher rung: %s\n", p->reason);
    if (via) {
        int64_t hop2 =
            p->rtt_relayed_us >= 0 && via->rtt_us >= 0 ? p->rtt_relayed_us - via->rtt_us : -1;
        printf("  hop 1: this node -> %s (relay, %s)  rtt %s\n", via->name, via->link,
               s_rtt(via->rtt_us, t1));
        printf("  hop 2: %s -> %s                      rtt %s (end to end %s)\n", via->name,
               p->name, s_rtt(hop2, t2), s_rtt(p->rtt_relayed_us, t1));
    } else {
        printf("  hop 1: this node -> %s (%s)  rtt %s\n", p->name, p->link, s_rtt(p->rtt_us, t1));
    }
    return 0;
}

/* `members`: the membership view (SWIM), this node included. */
static void s_print_members(Cohort__Api__Member **ms, size_t n, bool json)
{
    if (json) {
        cohort_json_t *j = cohort_json_new();
        cohort_json_array_start(j);
        for (size_t i = 0; i < n; i++) {
            const Cohort__Api__Member *m = ms[i];
            cohort_json_object_start(j);
            cohort_json_key(j, "name");
            cohort_json_string(j, m->name);
            cohort_json_key(j, "state");
            cohort_json_string(j, m->state);
            cohort_json_key(j, "site");
            cohort_json_string(j, m->site);
            cohort_json_key(j, "incarnation");
            cohort_json_uint(j, m->incarnation);
            cohort_json_key(j, "since_ms");
            cohort_json_int(j, m->since_ms);
            cohort_json_key(j, "endpoints");
            cohort_json_array_start(j);
            for (size_t k = 0; k < m->n_endpoints; k++)
                cohort_json_string(j, m->endpoints[k]);
            cohort_json_array_end(j);
            cohort_json_object_end(j);
        }
        cohort_json_array_end(j);
        s_json_print(&j);
        return;
    }
    size_t wn = 4, ws = 4, wst = 5;
    for (size_t i = 0; i < n; i++) {
        size_t a = strlen(ms[i]->name), b = strlen(ms[i]->site), c = strlen(ms[i]->state);
        wn = a > wn ? a : wn;
        ws = b > ws ? b : ws;
        wst = c > wst ? c : wst;
    }
    printf("%-*s  %-*s  %-*s  %-20s  %-9s  %s\n", (int)wn, "NAME", (int)ws, "SITE", (int)wst,
           "STATE", "INCARNATION", "SINCE", "ENDPOINTS");
    for (size_t i = 0; i < n; i++) {
        const Cohort__Api__Member *m = ms[i];
        char since[32], eps[512] = "-";
        size_t off = 0;
        for (size_t k = 0; k < m->n_endpoints && off < sizeof eps; k++)
            off += (size_t)snprintf(eps + off, sizeof eps - off, "%s%s", k ? "," : "",
                                    m->endpoints[k]);
        printf("%-*s  %-*s  %-*s  %-20" PRIu64 "  %-9s  %s\n", (int)wn, m->name, (int)ws,
               m->site[0] ? m->site : "-", (int)wst, m->state, m->incarnation,
               m->since_ms < 0 ? "-" : s_uptime((uint64_t)m->since_ms, since), eps);
    }
}

enum { S_INFO_STATUS, S_INFO_PEERS, S_INFO_MEMBERS, S_INFO_NETCHECK, S_INFO_TRACE };

/* status, peers, netcheck and trace share the shape: one request, one
 * printout. */
static int s_info(int argc, char **argv, int mode)
{
    static const char *const names[] = {"status", "peers", "members", "netcheck", "trace"};
    bool peers = mode == S_INFO_PEERS || mode == S_INFO_TRACE;
    s_opts_t o = {.cmd = names[mode],
                  .usage = mode == S_INFO_TRACE ? "PEER [--api ENDPOINT | -c node.yaml]"
                                                : "[--json] [--api ENDPOINT | -c node.yaml]"};
    int rc = s_parse(&o, argc, argv, mode <= S_INFO_MEMBERS ? O_JSON : 0, 1);
    if (rc)
        return rc;
    if (o.argc != (mode == S_INFO_TRACE ? 1 : 0))
        return s_usage(&o);
    cohort_api_client_t *c = NULL;
    if ((rc = s_connect(&o, &c)))
        return rc;
    s_req_t req = COHORT__API__API_REQUEST__INIT;
    Cohort__Api__StatusReq sr = COHORT__API__STATUS_REQ__INIT;
    Cohort__Api__PeersReq pr = COHORT__API__PEERS_REQ__INIT;
    Cohort__Api__MembersReq mr = COHORT__API__MEMBERS_REQ__INIT;
    if (mode == S_INFO_MEMBERS) {
        req.op_case = COHORT__API__API_REQUEST__OP_MEMBERS;
        req.members = &mr;
    } else if (peers) {
        req.op_case = COHORT__API__API_REQUEST__OP_PEERS;
        req.peers = &pr;
    } else {
        req.op_case = COHORT__API__API_REQUEST__OP_STATUS;
        req.status = &sr;
    }
    Cohort__Api__Response *resp = NULL;
    if ((rc = s_request(&o, c, &req, &resp)))
        goto out;
    if (resp->status != COHORT__API__CODE__OK) {
        rc = s_refused(&o, resp);
        goto out;
    }
    if (!peers && mode != S_INFO_MEMBERS && !resp->status_info) {
        rc = cohort_cli_fail(COHORT_CLI_EXIT_FAIL, o.cmd, "the node sent no status");
        goto out;
    }
    if (mode == S_INFO_STATUS)
        s_print_status(resp->status_info, o.json);
    else if (mode == S_INFO_NETCHECK)
        s_print_netcheck(resp->status_info);
    else if (mode == S_INFO_TRACE)
        rc = s_print_trace(o.cmd, resp->peers, resp->n_peers, o.argv[0]);
    else if (mode == S_INFO_MEMBERS)
        s_print_members(resp->members, resp->n_members, o.json);
    else
        s_print_peers(resp->peers, resp->n_peers, o.json);
out:
    if (resp)
        cohort__api__response__free_unpacked(resp, NULL);
    cohort_api_client_destroy(&c);
    return rc;
}

static int s_status(int argc, char **argv)
{
    return s_info(argc, argv, S_INFO_STATUS);
}

static int s_peers(int argc, char **argv)
{
    return s_info(argc, argv, S_INFO_PEERS);
}

static int s_members(int argc, char **argv)
{
    return s_info(argc, argv, S_INFO_MEMBERS);
}

static int s_netcheck(int argc, char **argv)
{
    return s_info(argc, argv, S_INFO_NETCHECK);
}

static int s_trace(int argc, char **argv)
{
    return s_info(argc, argv, S_INFO_TRACE);
}

/* ---- send and pub ---- */

static int s_send_or_pub(int argc, char **argv, bool pub)
{
    s_opts_t o = {.cmd = pub ? "pub" : "send",
                  .usage = pub ? "TOPIC [--header K=V]... (DATA | -) [--api ENDPOINT | -c FILE]"
                               : "NODE [--subject S] [--header K=V]... (DATA | --file F | -) "
                                 "[--timeout MS] [--api ENDPOINT | -c FILE]"};
    int rc = s_parse(&o, argc, argv, O_HEADER | (pub ? 0 : O_SUBJECT | O_FILE | O_TIMEOUT), 1);
    if (rc)
        return rc;
    if (o.argc < 1 || o.argc > 2)
        return s_usage(&o);
    char *data = NULL;
    size_t len = 0;
    if ((rc = s_payload(&o, o.argc == 2 ? o.argv[1] : NULL, &data, &len)))
        return rc;
    cohort_api_client_t *c = NULL;
    if ((rc = s_connect(&o, &c))) {
        free(data);
        return rc;
    }
    s_msg_t msg;
    s_msg(&msg, &o, pub ? o.argv[0] : o.subject ? o.subject : S_DEFAULT_SUBJECT, data, len);
    s_req_t req = COHORT__API__API_REQUEST__INIT;
    Cohort__Api__Send send = COHORT__API__SEND__INIT;
    Cohort__Api__Publish publish = COHORT__API__PUBLISH__INIT;
    if (pub) {
        publish.message = &msg.m;
        req.op_case = COHORT__API__API_REQUEST__OP_PUBLISH;
        req.publish = &publish;
    } else {
        send.node = o.argv[0];
        send.message = &msg.m;
        send.timeout_ms = o.timeout_ms > 0 ? (uint32_t)o.timeout_ms : 0;
        req.op_case = COHORT__API__API_REQUEST__OP_SEND;
        req.send = &send;
    }
    Cohort__Api__Response *resp = NULL;
    cohort_err_t err;
    int wait = S_REPLY_MS + (o.timeout_ms > 0 ? (int)o.timeout_ms : 0);
    if (cohort_api_client_request(c, &req, wait, &resp, &err) < 0) {
        rc = cohort_cli_err(o.cmd, &err);
        goto out;
    }
    if (resp->status != COHORT__API__CODE__OK) {
        rc = s_refused(&o, resp);
        goto out;
    }
    if (!pub)
        printf("queued for %s (%zu bytes)\n", o.argv[0], len);
    else if (resp->recipients == 0)
        printf("published to 0 nodes: no subscribers\n");
    else
        printf("published to %" PRIu32 " node(s)\n", resp->recipients);
out:
    if (resp)
        cohort__api__response__free_unpacked(resp, NULL);
    cohort_api_client_destroy(&c);
    free(data);
    return rc;
}

static int s_send(int argc, char **argv)
{
    return s_send_or_pub(argc, argv, false);
}

static int s_pub(int argc, char **argv)
{
    return s_send_or_pub(argc, argv, true);
}

/* ---- stream ---- */

/* Sends numbered reliable unicasts 1, 2, ... over one API connection: the
 * load for checking a link (the receiver sees each number exactly once, in
 * order) and for measuring it. Each send waits up to --timeout for room in
 * the node's queue, so a slow link slows the stream instead of failing it. */
static int s_stream(int argc, char **argv)
{
    s_opts_t o = {.cmd = "stream",
                  .usage = "NODE [--count N] [--rate PER_SECOND] [--size BYTES] [--subject S] "
                           "[--timeout S] [--api ENDPOINT | -c FILE]"};
    int rc = s_parse(&o, argc, argv, O_COUNT | O_RATE | O_SIZE | O_SUBJECT | O_TIMEOUT, 1000);
    if (rc)
        return rc;
    if (o.argc != 1)
        return s_usage(&o);
    s_signals();
    cohort_api_client_t *c = NULL;
    if ((rc = s_connect(&o, &c)))
        return rc;
    /* A signal stops the stream between two sends, never inside one: the
     * count printed is exactly what the node took. */
    cohort_api_client_set_interrupt(c, NULL);
    long timeout = o.timeout_ms > 0 ? o.timeout_ms : 30000;
    size_t cap = (size_t)(o.size > 32 ? o.size : 32);
    char *data = cohort_malloc(cap + 1);
    int64_t start = zclock_usecs(), last_report = start;
    long sent = 0;
    while (!s_stop && (!o.count || sent < o.count)) {
        if (o.rate) {
            int64_t due = start + (int64_t)((double)sent * 1e6 / (double)o.rate);
            int64_t ahead = due - zclock_usecs();
            if (ahead > 0) {
                zclock_sleep((int)((ahead + 999) / 1000));
                continue; /* re-check s_stop */
            }
        }
        int n = snprintf(data, cap + 1, "%ld", sent + 1);
        size_t len = (size_t)n;
        if (o.size > n) {
            memset(data + n, '.', (size_t)o.size - (size_t)n);
            len = (size_t)o.size;
        }
        s_msg_t msg;
        s_msg(&msg, &o, o.subject ? o.subject : S_DEFAULT_SUBJECT, data, len);
        s_req_t req = COHORT__API__API_REQUEST__INIT;
        Cohort__Api__Send send = COHORT__API__SEND__INIT;
        send.node = o.argv[0];
        send.message = &msg.m;
        send.timeout_ms = (uint32_t)timeout;
        req.op_case = COHORT__API__API_REQUEST__OP_SEND;
        req.send = &send;
        Cohort__Api__Response *resp = NULL;
        cohort_err_t err;
        if (cohort_api_client_request(c, &req, S_REPLY_MS + (int)timeout, &resp, &err) < 0) {
            rc = cohort_cli_fail(COHORT_CLI_EXIT_FAIL, o.cmd, "message %ld: %s", sent + 1,
                                 cohort_err_text(&err));
            break;
        }
        if (resp->status != COHORT__API__CODE__OK) {
            rc = cohort_cli_fail(COHORT_CLI_EXIT_FAIL, o.cmd, "message %ld not sent: %s", sent + 1,
                                 resp->error && resp->error[0]
                                     ? resp->error
                                     : cohort_status_name((cohort_status_t)resp->status));
            cohort__api__response__free_unpacked(resp, NULL);
            break;
        }
        cohort__api__response__free_unpacked(resp, NULL);
        sent++;
        int64_t now = zclock_usecs();
        if (now - last_report >= 1000000) {
            fprintf(stderr, "cohortctl: stream: %ld sent\n", sent);
            last_report = now;
        }
    }
    double secs = (double)(zclock_usecs() - start) / 1e6;
    printf("sent %ld in %.3f s (%.0f msg/s)\n", sent, secs, secs > 0 ? (double)sent / secs : 0.0);
    fflush(stdout);
    free(data);
    cohort_api_client_destroy(&c);
    return rc;
}

/* ---- sub and events ---- */

static int s_simple_op(const s_opts_t *o, cohort_api_client_t *c, s_req_t *req)
{
    Cohort__Api__Response *resp = NULL;
    int rc = s_request(o, c, req, &resp);
    if (!rc && resp->status != COHORT__API__CODE__OK)
        rc = s_refused(o, resp);
    if (resp)
        cohort__api__response__free_unpacked(resp, NULL);
    return rc;
}

/* The end of a listening command: after --count messages, at --timeout, on
 * a signal, or when the node is lost. */
static int s_listen_end(const s_opts_t *o, const cohort_api_client_t *c, long got, bool lost)
{
    if (lost)
        return s_lost(o, c);
    if (o->count && got < o->count && !s_stop)
        return cohort_cli_fail(COHORT_CLI_EXIT_FAIL, o->cmd,
                               "timeout: %ld of %ld message(s) after %ld ms", got, o->count,
                               o->timeout_ms);
    return 0;
}

static int s_sub(int argc, char **argv)
{
    s_opts_t o = {.cmd = "sub",
                  .usage = "PATTERN... [--count N] [--timeout S] [--raw] [--api ENDPOINT | -c "
                           "FILE]"};
    int rc = s_parse(&o, argc, argv, O_COUNT | O_TIMEOUT | O_RAW, 1000);
    if (rc)
        return rc;
    if (o.argc < 1)
        return s_usage(&o);
    s_signals();
    cohort_api_client_t *c = NULL;
    if ((rc = s_connect(&o, &c)))
        return rc;
    for (int i = 0; i < o.argc && !rc; i++) {
        s_req_t req = COHORT__API__API_REQUEST__INIT;
        Cohort__Api__Subscribe sub = COHORT__API__SUBSCRIBE__INIT;
        sub.pattern = o.argv[i];
        req.op_case = COHORT__API__API_REQUEST__OP_SUBSCRIBE;
        req.subscribe = &sub;
        rc = s_simple_op(&o, c, &req);
        if (!rc)
            fprintf(stderr, "cohortctl: sub: subscribed to '%s'\n", o.argv[i]);
    }
    int64_t deadline = o.timeout_ms > 0 ? zclock_mono() + o.timeout_ms : -1;
    long got = 0;
    bool lost = false;
    while (!rc && (!o.count || got < o.count)) {
        Cohort__Api__ApiMessage *m = NULL;
        if (!s_next(c, deadline, &m, &lost))
            break;
        if (m->kind_case == COHORT__API__API_MESSAGE__KIND_DELIVERY && m->delivery->message) {
            const Cohort__Wire__Message *w = m->delivery->message;
            if (o.raw) {
                s_print_raw(stdout, w->payload.data, w->payload.len);
            } else {
                printf("%s %s: ", w->subject, m->delivery->sender);
                s_print_text(stdout, w->payload.data, w->payload.len);
                printf("\n");
            }
            fflush(stdout);
            got++;
        }
        cohort__api__api_message__free_unpacked(m, NULL);
    }
    if (!rc)
        rc = s_listen_end(&o, c, got, lost);
    cohort_api_client_destroy(&c);
    return rc;
}

static int s_events(int argc, char **argv)
{
    s_opts_t o = {.cmd = "events", .usage = "[--count N] [--timeout S] [--api ENDPOINT | -c FILE]"};
    int rc = s_parse(&o, argc, argv, O_COUNT | O_TIMEOUT, 1000);
    if (rc)
        return rc;
    if (o.argc)
        return s_usage(&o);
    s_signals();
    cohort_api_client_t *c = NULL;
    if ((rc = s_connect(&o, &c)))
        return rc;
    s_req_t req = COHORT__API__API_REQUEST__INIT;
    Cohort__Api__EventsReq on = COHORT__API__EVENTS_REQ__INIT;
    on.on = true;
    req.op_case = COHORT__API__API_REQUEST__OP_EVENTS;
    req.events = &on;
    rc = s_simple_op(&o, c, &req);
    if (!rc)
        fprintf(stderr, "cohortctl: events: listening\n");
    int64_t deadline = o.timeout_ms > 0 ? zclock_mono() + o.timeout_ms : -1;
    long got = 0;
    bool lost = false;
    while (!rc && (!o.count || got < o.count)) {
        Cohort__Api__ApiMessage *m = NULL;
        if (!s_next(c, deadline, &m, &lost))
            break;
        if (m->kind_case == COHORT__API__API_MESSAGE__KIND_EVENT) {
            printf("%s %s reason=%s\n", m->event->type, m->event->node,
                   m->event->reason[0] ? m->event->reason : "-");
            fflush(stdout);
            got++;
        }
        cohort__api__api_message__free_unpacked(m, NULL);
    }
    if (!rc)
        rc = s_listen_end(&o, c, got, lost);
    cohort_api_client_destroy(&c);
    return rc;
}

/* ---- req ---- */

static int s_req(int argc, char **argv)
{
    s_opts_t o = {.cmd = "req",
                  .usage = "SERVICE (DATA | -) [--header K=V]... [--timeout MS] [--raw] [--api "
                           "ENDPOINT | -c FILE]"};
    int rc = s_parse(&o, argc, argv, O_HEADER | O_TIMEOUT | O_RAW, 1);
    if (rc)
        return rc;
    if (o.argc != 2)
        return s_usage(&o);
    s_signals();
    char *data = NULL;
    size_t len = 0;
    if ((rc = s_payload(&o, o.argv[1], &data, &len)))
        return rc;
    cohort_api_client_t *c = NULL;
    if ((rc = s_connect(&o, &c))) {
        free(data);
        return rc;
    }
    long timeout = o.timeout_ms > 0 ? o.timeout_ms : S_REQ_TIMEOUT_MS;
    s_msg_t msg;
    s_msg(&msg, &o, "", data, len);
    s_req_t req = COHORT__API__API_REQUEST__INIT;
    Cohort__Api__Call call = COHORT__API__CALL__INIT;
    call.service = o.argv[0];
    call.message = &msg.m;
    call.timeout_ms = (uint32_t)timeout;
    req.op_case = COHORT__API__API_REQUEST__OP_CALL;
    req.call = &call;
    if ((rc = s_simple_op(&o, c, &req)))
        goto out;
    /* The node always answers a call: a reply, NO_RESPONDERS or TIMEOUT.
     * Our own deadline only covers a node that died meanwhile. */
    int64_t deadline = zclock_mono() + timeout + S_REPLY_MS;
    for (;;) {
        Cohort__Api__ApiMessage *m = NULL;
        bool lost = false;
        if (!s_next(c, deadline, &m, &lost)) {
            if (s_stop)
                rc = cohort_cli_fail(COHORT_CLI_EXIT_FAIL, o.cmd, "interrupted");
            else if (lost || cohort_api_client_closed(c))
                rc = s_lost(&o, c);
            else
                rc =
                    cohort_cli_fail(COHORT_CLI_EXIT_FAIL, o.cmd, "the node at %s stopped answering",
                                    cohort_api_client_endpoint(c));
            break;
        }
        const Cohort__Wire__Message *w =
            m->kind_case == COHORT__API__API_MESSAGE__KIND_DELIVERY ? m->delivery->message : NULL;
        if (!w || w->kind != COHORT__WIRE__MESSAGE__KIND__REPLY || w->request_id != req.id) {
            cohort__api__api_message__free_unpacked(m, NULL);
            continue;
        }
        if (w->status == COHORT__API__CODE__NO_RESPONDERS)
            rc = cohort_cli_fail(COHORT_CLI_EXIT_FAIL, o.cmd, "no responders for '%s'", o.argv[0]);
        else if (w->status == COHORT__API__CODE__TIMEOUT)
            rc = cohort_cli_fail(COHORT_CLI_EXIT_FAIL, o.cmd,
                                 "timeout: no reply from '%s' within %ld ms", o.argv[0], timeout);
        else if (w->status != COHORT__API__CODE__OK)
            rc = cohort_cli_fail(COHORT_CLI_EXIT_FAIL, o.cmd, "'%s' on %s answered %s: %s",
                                 o.argv[0], m->delivery->sender,
                                 cohort_status_name((cohort_status_t)w->status),
                                 w->error && w->error[0] ? w->error : "(no detail)");
        if (w->payload.len || !rc) {
            fwrite(w->payload.data, 1, w->payload.len, stdout);
            if (!o.raw && (!w->payload.len || w->payload.data[w->payload.len - 1] != '\n'))
                fputc('\n', stdout);
        }
        cohort__api__api_message__free_unpacked(m, NULL);
        break;
    }
out:
    cohort_api_client_destroy(&c);
    free(data);
    return rc;
}

/* ---- serve ---- */

/* Answers one request: the reply's payload and status. */
static void s_answer(const s_opts_t *o, const Cohort__Api__Delivery *d, s_msg_t *reply,
                     char **owned, char *why, size_t whycap)
{
    const Cohort__Wire__Message *w = d->message;
    s_msg(reply, o, w->subject, (const char *)w->payload.data, w->payload.len);
    *owned = NULL;
    if (o->echo) {
        for (size_t i = 0; i < w->n_headers && i < S_MAX_HEADERS; i++) {
            reply->hp[i] = w->headers[i];
            reply->m.n_headers = i + 1;
        }
        return;
    }
    char sender[128], service[COHORT_ERR_TEXT_MAX];
    snprintf(sender, sizeof sender, "COHORT_SENDER=%s", d->sender);
    snprintf(service, sizeof service, "COHORT_SERVICE=%s", w->subject);
    const char *env[] = {sender, service, NULL};
    long limit = o->timeout_ms > 0 ? o->timeout_ms : S_EXEC_TIMEOUT_MS;
    cohort_proc_result_t res;
    cohort_err_t err;
    if (cohort_proc_run(o->exec, w->payload.data, w->payload.len, S_EXEC_MAX_OUT, (int)limit, env,
                        &res, &err) < 0) {
        snprintf(why, whycap, "%s", cohort_err_text(&err));
        reply->m.status = COHORT__API__CODE__ERROR;
        reply->m.error = why;
        reply->m.payload.len = 0;
        return;
    }
    *owned = res.out;
    reply->m.payload.data = (uint8_t *)res.out;
    reply->m.payload.len = res.out_len;
    char first[200];
    size_t k = 0;
    for (; res.err[k] && res.err[k] != '\n' && k + 1 < sizeof first; k++)
        first[k] = res.err[k];
    first[k] = '\0';
    if (res.timed_out)
        snprintf(why, whycap, "command ran longer than %ld ms and was killed", limit);
    else if (res.too_large)
        snprintf(why, whycap, "command wrote more than %d bytes and was killed", S_EXEC_MAX_OUT);
    else if (res.signal)
        snprintf(why, whycap, "command killed by signal %d%s%s", res.signal, k ? ": " : "", first);
    else if (res.exit_code)
        snprintf(why, whycap, "command exited with status %d%s%s", res.exit_code, k ? ": " : "",
                 first);
    else
        return;
    reply->m.status = COHORT__API__CODE__ERROR;
    reply->m.error = why;
    if (res.too_large)
        reply->m.payload.len = 0;
}

static int s_serve(int argc, char **argv)
{
    s_opts_t o = {.cmd = "serve",
                  .usage = "SERVICE (--echo | --exec CMD) [--count N] [--timeout MS] [--api "
                           "ENDPOINT | -c FILE]"};
    int rc = s_parse(&o, argc, argv, O_ECHO | O_EXEC | O_COUNT | O_TIMEOUT, 1);
    if (rc)
        return rc;
    if (o.argc != 1 || o.echo == !!o.exec)
        return s_usage(&o);
    s_signals();
    cohort_api_client_t *c = NULL;
    if ((rc = s_connect(&o, &c)))
        return rc;
    s_req_t req = COHORT__API__API_REQUEST__INIT;
    Cohort__Api__Serve serve = COHORT__API__SERVE__INIT;
    serve.service = o.argv[0];
    req.op_case = COHORT__API__API_REQUEST__OP_SERVE;
    req.serve = &serve;
    if ((rc = s_simple_op(&o, c, &req)))
        goto out;
    fprintf(stderr, "cohortctl: serve: serving '%s' on the node at %s\n", o.argv[0],
            cohort_api_client_endpoint(c));
    long served = 0;
    bool lost = false;
    while (!o.count || served < o.count) {
        Cohort__Api__ApiMessage *m = NULL;
        if (!s_next(c, -1, &m, &lost))
            break;
        const Cohort__Api__Delivery *d =
            m->kind_case == COHORT__API__API_MESSAGE__KIND_DELIVERY ? m->delivery : NULL;
        if (!d || !d->message || d->message->kind != COHORT__WIRE__MESSAGE__KIND__REQUEST) {
            cohort__api__api_message__free_unpacked(m, NULL);
            continue;
        }
        printf("%s %s: ", d->message->subject, d->sender);
        s_print_text(stdout, d->message->payload.data, d->message->payload.len);
        printf("\n");
        fflush(stdout);
        s_msg_t reply;
        char *owned = NULL, why[600];
        s_answer(&o, d, &reply, &owned, why, sizeof why);
        s_req_t r = COHORT__API__API_REQUEST__INIT;
        Cohort__Api__Reply rp = COHORT__API__REPLY__INIT;
        rp.node = d->sender;
        rp.request_id = d->message->request_id;
        rp.message = &reply.m;
        r.op_case = COHORT__API__API_REQUEST__OP_REPLY;
        r.reply = &rp;
        Cohort__Api__Response *resp = NULL;
        if (s_request(&o, c, &r, &resp) == 0) {
            if (resp->status != COHORT__API__CODE__OK)
                fprintf(stderr, "cohortctl: serve: reply to %s not sent: %s\n", d->sender,
                        resp->error);
            cohort__api__response__free_unpacked(resp, NULL);
        }
        free(owned);
        cohort__api__api_message__free_unpacked(m, NULL);
        served++;
    }
    if (lost)
        rc = s_lost(&o, c);
out:
    cohort_api_client_destroy(&c);
    return rc;
}

const cohort_cli_cmd_t cohort_cli_node_cmds[] = {
    {NULL, "status", s_status, "[--json] [--api ENDPOINT | -c node.yaml]",
     "the node: cluster, uptime, peers up, drop counters"},
    {NULL, "peers", s_peers, "[--json] [--api ENDPOINT | -c node.yaml]",
     "every member: state, link rung (and why not higher), RTT, traffic, unacked, throttled"},
    {NULL, "members", s_members, "[--json] [--api ENDPOINT | -c node.yaml]",
     "the cluster as this node sees it: every member alive, suspect, failed or left"},
    {NULL, "netcheck", s_netcheck, "[--api ENDPOINT | -c node.yaml]",
     "our public address as rendezvous nodes see it, and whether the NAT keeps ports"},
    {NULL, "trace", s_trace, "PEER [--api ENDPOINT | -c node.yaml]",
     "the path to PEER (direct, punched, or via which relay) and each hop's RTT"},
    {NULL, "send", s_send, "NODE [--subject S] [--header K=V]... (DATA | --file F | -)",
     "reliable unicast to NODE; reaches its clients subscribed to the subject"},
    {NULL, "stream", s_stream, "NODE [--count N] [--rate PER_SECOND] [--size BYTES]",
     "send numbered reliable messages 1, 2, ... to NODE (a load to check or measure a link)"},
    {NULL, "pub", s_pub, "TOPIC [--header K=V]... (DATA | -)",
     "publish to every node subscribed to TOPIC"},
    {NULL, "sub", s_sub, "PATTERN... [--count N] [--timeout S] [--raw]",
     "print messages (published, or sent to this node) matching PATTERN"},
    {NULL, "req", s_req, "SERVICE (DATA | -) [--timeout MS] [--raw]",
     "request SERVICE and print the reply"},
    {NULL, "serve", s_serve, "SERVICE (--echo | --exec CMD) [--count N]",
     "answer SERVICE requests by echoing, or with CMD's output (request on its stdin)"},
    {NULL, "events", s_events, "[--count N] [--timeout S]",
     "print member events (up, down, ...) as they happen"},
    {NULL, NULL, NULL, NULL, NULL},
};
