/*
 * config: strict loading and emitting of the node config. See config.h.
 *
 * Everything the loader knows about a key is in s_keys: parsing, defaults,
 * range checks, the emitter and cohort_config_keys all walk that one table,
 * so a key cannot be documented, parsed and emitted inconsistently. The only
 * rules outside it are the derived defaults and the punch_port cross-check
 * in s_finish.
 */
#include "config/config.h"
#include "util/fs.h"
#include "util/mem.h"
#include "util/yamldoc.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Room for a quoted value in an error text; longer values are cut with "...". */
#define S_QUOTE 96

#define S_KIB 1024ULL
#define S_MIB (1024ULL * 1024)
#define S_GIB (1024ULL * 1024 * 1024)

/* Enum fields are written through an int (memcpy), which needs this. */
_Static_assert(sizeof(cohort_config_log_level_t) == sizeof(int), "enum stored as int");
_Static_assert(sizeof(cohort_config_log_format_t) == sizeof(int), "enum stored as int");

static bool s_valid_name(const char *value);
static bool s_valid_address(const char *value);
static bool s_valid_advertise(const char *value);
static bool s_valid_api(const char *value);
static bool s_valid_proxy(const char *value);
static bool s_valid_ipv4(const char *value);
static bool s_valid_metrics(const char *value);

static const char *const s_levels[] = {"debug", "info", "warn", "error", NULL};
static const char *const s_formats[] = {"text", "json", NULL};

#define S_AT(field) .offset = offsetof(cohort_config_t, field)
#define S_LIST_AT(field, count)                                                                    \
    .offset = offsetof(cohort_config_t, field), .count_offset = offsetof(cohort_config_t, count)
#define S_STRING .type = COHORT_CONFIG_TYPE_STRING, .type_name = "string"
#define S_PATH .type = COHORT_CONFIG_TYPE_PATH, .type_name = "path"
#define S_UINT .type = COHORT_CONFIG_TYPE_UINT, .type_name = "uint"
#define S_ENUM .type = COHORT_CONFIG_TYPE_ENUM, .type_name = "enum"
#define S_SIZE .type = COHORT_CONFIG_TYPE_SIZE, .type_name = "size"
#define S_DURATION .type = COHORT_CONFIG_TYPE_DURATION, .type_name = "duration"
#define S_LIST .type = COHORT_CONFIG_TYPE_LIST, .type_name = "list"
#define S_PATHLIST .type = COHORT_CONFIG_TYPE_PATHLIST, .type_name = "pathlist"

/* Entries of one section must be next to each other: the emitter writes
 * them in this order and sections are found by their first entry. */
static const cohort_config_key_t s_keys[] = {
    {.key = "node.name",
     S_STRING,
     .required = true,
     S_AT(node_name),
     .valid = s_valid_name,
     .rule = "must be 1..63 characters of A-Z a-z 0-9 . _ - starting with a letter or digit",
     .doc = "Name of this node; must match the CN of the node certificate."},
    {.key = "node.state_dir",
     S_PATH,
     .default_text = "/var/lib/cohort",
     S_AT(state_dir),
     .doc = "Where the node keeps the accepted roster and the peer cache."},
    {.key = "identity.key",
     S_PATH,
     .default_text = "node.key",
     S_AT(identity_key),
     .doc = "X25519 private key of this node, PEM, mode 0600."},
    {.key = "identity.cert",
     S_PATH,
     .default_text = "node.crt",
     S_AT(identity_cert),
     .doc = "Certificate of this node, PEM."},
    {.key = "trust.ca",
     S_PATHLIST,
     .required = true,
     .min = 1,
     .max = COHORT_CONFIG_MAX_LIST,
     /* Not reloadable: the CAs decide which roster and which members are
      * trusted, so changing them live would mean re-verifying the roster in
      * force and re-admitting every member; a restart does exactly that. */
     S_LIST_AT(trust_ca, trust_ca_count),
     .doc = "Trusted CA certificate files; list several to rotate the CA."},
    {.key = "trust.roster",
     S_PATH,
     .default_text = "roster.yaml",
     .reloadable = true,
     S_AT(roster),
     .doc = "The CA-signed roster of cluster members."},
    {.key = "trust.roster_signature",
     S_PATH,
     .default_text = "",
     .reloadable = true,
     S_AT(roster_sig),
     .doc = "Signature of the roster; empty means <trust.roster>.sig."},
    {.key = "listen.address",
     S_STRING,
     .default_text = "0.0.0.0",
     S_AT(listen_address),
     .valid = s_valid_address,
     .rule = "must be an IPv4 or IPv6 address, or *",
     .doc = "Address to listen on: an IPv4 or IPv6 literal, or * for all."},
    {.key = "listen.port",
     S_UINT,
     .default_text = "7700",
     .min = 1,
     .max = 65535,
     S_AT(listen_port),
     .doc = "TCP port of the CURVE-encrypted overlay."},
    {.key = "listen.punch_port",
     S_UINT,
     .default_text = "7701",
     .min = 0,
     .max = 65535,
     S_AT(punch_port),
     .doc = "Port for hole punching; 0 turns it off; must differ from port."},
    {.key = "listen.advertise",
     S_LIST,
     .default_text = "",
     .min = 0,
     .max = COHORT_CONFIG_MAX_LIST,
     .reloadable = true,
     S_LIST_AT(advertise, advertise_count),
     .valid = s_valid_advertise,
     .rule = "must be tcp://HOST:PORT with PORT 1..65535",
     .doc = "Endpoints other members may use to reach this node, as tcp://HOST:PORT."},
    {.key = "api.endpoint",
     S_STRING,
     .default_text = "",
     S_AT(api_endpoint),
     .valid = s_valid_api,
     .rule = "must be ipc://PATH or tcp://HOST:PORT",
     .doc = "Local API endpoint; empty means ipc://<node.state_dir>/api.sock."},
    {.key = "log.level",
     S_ENUM,
     .default_text = "info",
     .reloadable = true,
     S_AT(log_level),
     .values = s_levels,
     .doc = "Least severe level logged: debug, info, warn or error."},
    {.key = "log.format",
     S_ENUM,
     .default_text = "text",
     .reloadable = true,
     S_AT(log_format),
     .values = s_formats,
     .doc = "Log line format: text or json."},
    {.key = "limits.max_message_size",
     S_SIZE,
     .default_text = "1MiB",
     .min = 64,
     .max = 64 * S_MIB,
     .reloadable = true,
     S_AT(max_message_size),
     .doc = "Largest message (payload plus headers) accepted; checked before allocating."},
    {.key = "limits.send_queue",
     S_UINT,
     .default_text = "10000",
     .min = 16,
     .max = 1000000,
     .reloadable = true,
     S_AT(send_queue),
     .doc = "Messages queued per peer before a send fails."},
    {.key = "limits.receive_queue",
     S_UINT,
     .default_text = "100000",
     .min = 16,
     .max = 10000000,
     S_AT(receive_queue),
     .doc = "Messages delivered but not yet read by the application; past it, each peer's "
            "deliveries wait in its own queue (limits.peer_receive_queue)."},
    {.key = "limits.receive_bytes",
     S_SIZE,
     .default_text = "64MiB",
     .min = 64 * 1024,
     .max = 16384 * S_MIB,
     .reloadable = true,
     S_AT(receive_bytes),
     .doc = "Bytes of messages delivered but not yet read by the application (what a slow "
            "application costs in memory); past it, as past receive_queue."},
    {.key = "limits.peer_receive_queue",
     S_UINT,
     .default_text = "1000",
     .min = 16,
     .max = 1000000,
     .reloadable = true,
     S_AT(peer_receive_queue),
     .doc = "Deliveries from one peer waiting while the application's inbox is full; past it, "
            "that peer's reliable messages wait (they are resent later), none is lost."},
    {.key = "limits.send_timeout",
     S_DURATION,
     .default_text = "0ms",
     .min = 0,
     .max = 60000,
     .reloadable = true,
     S_AT(send_timeout_ms),
     .doc = "How long a send waits for room in a full queue; 0 fails at once."},
    {.key = "links.direct_timeout",
     S_DURATION,
     .default_text = "2s",
     .min = 100,
     .max = 60000,
     .reloadable = true,
     S_AT(direct_timeout_ms),
     .doc = "How long a direct connection attempt may take before the next rung is tried."},
    {.key = "links.punch_timeout",
     S_DURATION,
     .default_text = "3s",
     .min = 100,
     .max = 60000,
     .reloadable = true,
     S_AT(punch_timeout_ms),
     .doc = "How long a hole-punch attempt may take before the relay is used."},
    {.key = "links.upgrade_interval",
     S_DURATION,
     .default_text = "30s",
     .min = 1000,
     .max = 3600000,
     .reloadable = true,
     S_AT(upgrade_interval_ms),
     .doc =
         "Longest wait between two tries of a link on a lower rung to move up (backoff, jitter)."},
    {.key = "links.probe_timeout",
     S_DURATION,
     .default_text = "3s",
     .min = 500,
     .max = 60000,
     .reloadable = true,
     S_AT(probe_timeout_ms),
     .doc = "A link that answers no probe for this long is demoted to the next rung."},
    {.key = "proxy.socks5",
     S_STRING,
     .default_text = "",
     S_AT(socks5_proxy),
     .valid = s_valid_proxy,
     .rule = "must be empty or HOST:PORT",
     .doc = "SOCKS5 proxy (HOST:PORT) for every outbound overlay connection; empty: none."},
    {.key = "relay.pair_bytes_per_second",
     S_SIZE,
     .default_text = "16MiB",
     .min = 1024,
     .max = 1024ULL * 1024 * 1024,
     .reloadable = true,
     S_AT(relay_pair_bytes),
     .doc = "Relay nodes: bytes per second forwarded for one pair of members."},
    {.key = "relay.pair_messages_per_second",
     S_UINT,
     .default_text = "100000",
     .min = 10,
     .max = 10000000,
     .reloadable = true,
     S_AT(relay_pair_msgs),
     .doc = "Relay nodes: frames per second forwarded for one pair of members."},
    {.key = "membership.probe_interval",
     S_DURATION,
     .default_text = "1s",
     .min = 100,
     .max = 60000,
     S_AT(swim_probe_interval_ms),
     .doc = "Failure detection: how often this node probes one member (each member is probed "
            "about once per cluster-size intervals by each node)."},
    {.key = "membership.probe_timeout",
     S_DURATION,
     .default_text = "500ms",
     .min = 20,
     .max = 30000,
     S_AT(swim_probe_timeout_ms),
     .doc = "How long a probe waits for its answer before other members are asked to try."},
    {.key = "membership.suspicion_timeout",
     S_DURATION,
     .default_text = "4s",
     .min = 200,
     .max = 600000,
     S_AT(swim_suspicion_timeout_ms),
     .doc = "How long a suspected member has to refute before it is declared failed."},
    {.key = "membership.indirect_probes",
     S_UINT,
     .default_text = "3",
     .min = 0,
     .max = 16,
     S_AT(swim_indirect),
     .doc = "How many other members are asked to probe a member that did not answer."},
    {.key = "discovery.lan",
     .type = COHORT_CONFIG_TYPE_BOOL,
     .type_name = "bool",
     .default_text = "false",
     S_AT(lan_discovery),
     .doc = "Announce this node on the LAN by UDP beacon (public key and overlay port only) and "
            "dial members found that way; they still have to pass admission."},
    {.key = "discovery.port",
     S_UINT,
     .default_text = "7702",
     .min = 1,
     .max = 65535,
     S_AT(lan_port),
     .doc = "UDP port of the LAN beacon (every node of a site uses the same one)."},
    {.key = "discovery.address",
     S_STRING,
     .default_text = "255.255.255.255",
     S_AT(lan_address),
     .valid = s_valid_ipv4,
     .rule = "must be an IPv4 address",
     .doc = "Where beacons are sent: the LAN's broadcast address."},
    {.key = "discovery.interval",
     S_DURATION,
     .default_text = "5s",
     .min = 500,
     .max = 600000,
     S_AT(lan_interval_ms),
     .doc = "Time between two beacons."},
    {.key = "metrics.address",
     S_STRING,
     .default_text = "",
     S_AT(metrics_address),
     .valid = s_valid_metrics,
     .rule = "must be empty or IP:PORT with an IPv4 literal or [IPv6] and PORT 1..65535",
     .doc = "Where Prometheus scrapes /metrics and /healthz over HTTP, as IP:PORT; empty: off."},
};

#define S_KEY_COUNT (sizeof s_keys / sizeof s_keys[0])
_Static_assert(S_KEY_COUNT <= 64, "set_mask has 64 bits");

typedef struct {
    cohort_yaml_t y;
    const char *base_dir;
    cohort_err_t *err;
    cohort_config_t *cfg;
    const yaml_node_t *key_at[S_KEY_COUNT];     /* where the file set each entry */
    const yaml_node_t *value_at[S_KEY_COUNT];   /* its value node */
    const yaml_node_t *section_at[S_KEY_COUNT]; /* by the section's first entry */
} s_ctx_t;

/* ---- table lookups ---- */

static size_t s_section_len(const char *key)
{
    const char *dot = strchr(key, '.');
    assert(dot);
    return (size_t)(dot - key);
}

static bool s_same_section(const char *a, const char *b)
{
    size_t n = s_section_len(a);
    return n == s_section_len(b) && !memcmp(a, b, n);
}

/* Index of the first entry of the section named text, or -1. */
static int s_find_section(const char *text, size_t len)
{
    for (size_t i = 0; i < S_KEY_COUNT; i++)
        if (s_section_len(s_keys[i].key) == len && !memcmp(s_keys[i].key, text, len))
            return (int)i;
    return -1;
}

/* Index of the entry named text in the section starting at entry first, or -1. */
static int s_find_key(size_t first, const char *text, size_t len)
{
    for (size_t i = first; i < S_KEY_COUNT && s_same_section(s_keys[first].key, s_keys[i].key);
         i++) {
        const char *name = s_keys[i].key + s_section_len(s_keys[i].key) + 1;
        if (strlen(name) == len && !memcmp(name, text, len))
            return (int)i;
    }
    return -1;
}

static int s_find(const char *key)
{
    for (size_t i = 0; i < S_KEY_COUNT; i++)
        if (!strcmp(s_keys[i].key, key))
            return (int)i;
    return -1;
}

/* Index of a key the code itself names; a typo is a programmer error. */
static size_t s_index(const char *key)
{
    int idx = s_find(key);
    assert(idx >= 0);
    return (size_t)idx;
}

/* "node, identity, ..." (first < 0) or the key names of one section. */
static const char *s_known(char *out, size_t cap, int first)
{
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = first < 0 ? 0 : (size_t)first; i < S_KEY_COUNT; i++) {
        const char *key = s_keys[i].key;
        size_t n = s_section_len(key);
        if (first >= 0 && !s_same_section(s_keys[first].key, key))
            break;
        if (first < 0 && i > 0 && s_same_section(s_keys[i - 1].key, key))
            continue;
        const char *name = first < 0 ? key : key + n + 1;
        int len = first < 0 ? (int)n : (int)strlen(name);
        int w = snprintf(out + used, cap - used, "%s%.*s", used ? ", " : "", len, name);
        if (w < 0 || (size_t)w >= cap - used)
            break;
        used += (size_t)w;
    }
    return out;
}

static void *s_field(cohort_config_t *cfg, const cohort_config_key_t *e)
{
    return (char *)cfg + e->offset;
}

static const void *s_cfield(const cohort_config_t *cfg, const cohort_config_key_t *e)
{
    return (const char *)cfg + e->offset;
}

/* ---- errors ---- */

/* Fails with "WHERE: KEY: what, got 'TEXT'"; node NULL means a default. */
static int s_bad(s_ctx_t *ctx, const yaml_node_t *node, const char *key, const char *text,
                 size_t len, const char *fmt, ...) __attribute__((format(printf, 6, 7)));

static int s_bad(s_ctx_t *ctx, const yaml_node_t *node, const char *key, const char *text,
                 size_t len, const char *fmt, ...)
{
    char what[COHORT_ERR_TEXT_MAX / 2], quoted[S_QUOTE];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    cohort_err_quote(quoted, sizeof quoted, text, len);
    return cohort_yaml_fail(&ctx->y, node, ctx->err, "%s: %s, got %s", key, what, quoted);
}

/* ---- value syntax ---- */

/* Reads the leading decimal digits of text into *value and returns how many
 * there are; *overflow is set when they do not fit in 64 bits. */
static size_t s_digits(const char *text, size_t len, uint64_t *value, bool *overflow)
{
    size_t i = 0;
    *value = 0;
    *overflow = false;
    for (; i < len && text[i] >= '0' && text[i] <= '9'; i++) {
        uint64_t d = (uint64_t)(text[i] - '0');
        if (*value > (UINT64_MAX - d) / 10)
            *overflow = true;
        else
            *value = *value * 10 + d;
    }
    return i;
}

/* True for digits without a leading zero ("0" itself is fine); YAML 1.1
 * reads 0700 as octal, so such a number is refused rather than guessed. */
static bool s_plain_number(const char *text, size_t digits)
{
    return digits > 0 && (digits == 1 || text[0] != '0');
}

static const char *s_format_size(uint64_t bytes, char *out, size_t cap)
{
    if (bytes && bytes % S_GIB == 0)
        snprintf(out, cap, "%lluGiB", (unsigned long long)(bytes / S_GIB));
    else if (bytes && bytes % S_MIB == 0)
        snprintf(out, cap, "%lluMiB", (unsigned long long)(bytes / S_MIB));
    else if (bytes && bytes % S_KIB == 0)
        snprintf(out, cap, "%lluKiB", (unsigned long long)(bytes / S_KIB));
    else
        snprintf(out, cap, "%lluB", (unsigned long long)bytes);
    return out;
}

static const char *s_format_duration(uint64_t ms, char *out, size_t cap)
{
    if (ms && ms % 3600000 == 0)
        snprintf(out, cap, "%lluh", (unsigned long long)(ms / 3600000));
    else if (ms && ms % 60000 == 0)
        snprintf(out, cap, "%llum", (unsigned long long)(ms / 60000));
    else if (ms && ms % 1000 == 0)
        snprintf(out, cap, "%llus", (unsigned long long)(ms / 1000));
    else
        snprintf(out, cap, "%llums", (unsigned long long)ms);
    return out;
}

static const char *s_format_range(const cohort_config_key_t *e, char *out, size_t cap)
{
    char lo[32], hi[32];
    if (e->type == COHORT_CONFIG_TYPE_SIZE) {
        s_format_size(e->min, lo, sizeof lo);
        s_format_size(e->max, hi, sizeof hi);
    } else if (e->type == COHORT_CONFIG_TYPE_DURATION) {
        s_format_duration(e->min, lo, sizeof lo);
        s_format_duration(e->max, hi, sizeof hi);
    } else {
        snprintf(lo, sizeof lo, "%llu", (unsigned long long)e->min);
        snprintf(hi, sizeof hi, "%llu", (unsigned long long)e->max);
    }
    snprintf(out, cap, "%s..%s", lo, hi);
    return out;
}

/* The multiplier for a unit suffix, or 0 if unit is not one of units[]. */
static uint64_t s_unit(const char *unit, size_t len, const char *const *units,
                       const uint64_t *factors)
{
    for (size_t i = 0; units[i]; i++)
        if (strlen(units[i]) == len && !memcmp(units[i], unit, len))
            return factors[i];
    return 0;
}

/* Parses a UINT, SIZE or DURATION scalar into *value (bytes, ms). */
static int s_parse_number(s_ctx_t *ctx, const cohort_config_key_t *e, const char *text, size_t len,
                          const yaml_node_t *node, uint64_t *value)
{
    static const char *const size_units[] = {"", "B", "KiB", "MiB", "GiB", NULL};
    static const uint64_t size_factors[] = {1, 1, S_KIB, S_MIB, S_GIB};
    static const char *const time_units[] = {"ms", "s", "m", "h", NULL};
    static const uint64_t time_factors[] = {1, 1000, 60000, 3600000};
    char range[64];
    s_format_range(e, range, sizeof range);
    bool overflow;
    size_t digits = s_digits(text, len, value, &overflow);
    uint64_t factor = 1;
    if (e->type == COHORT_CONFIG_TYPE_UINT) {
        if (!s_plain_number(text, digits) || digits != len)
            return s_bad(ctx, node, e->key, text, len, "must be a plain decimal integer %s", range);
    } else if (e->type == COHORT_CONFIG_TYPE_SIZE) {
        factor = s_unit(text + digits, len - digits, size_units, size_factors);
        if (!s_plain_number(text, digits) || !factor)
            return s_bad(ctx, node, e->key, text, len,
                         "must be a size like 65536, 64KiB or 1MiB (units B, KiB, MiB, GiB)");
    } else {
        if (s_plain_number(text, digits) && digits == len)
            return s_bad(ctx, node, e->key, text, len, "needs a unit (ms, s, m, h)");
        factor = s_unit(text + digits, len - digits, time_units, time_factors);
        if (!s_plain_number(text, digits) || !factor)
            return s_bad(ctx, node, e->key, text, len,
                         "must be a duration like 500ms, 2s, 1m or 1h");
    }
    if (overflow || *value > UINT64_MAX / factor)
        return s_bad(ctx, node, e->key, text, len, "must be %s", range);
    *value *= factor;
    if (*value < e->min || *value > e->max)
        return s_bad(ctx, node, e->key, text, len, "must be %s", range);
    return 0;
}

/* ---- per-key rules ---- */

static bool s_valid_name(const char *value)
{
    static const char alnum[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    size_t len = strlen(value);
    return len >= 1 && len <= COHORT_CONFIG_MAX_NAME && strchr(alnum, value[0]) &&
           strspn(value, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") ==
               len;
}

static bool s_valid_proxy(const char *value)
{
    if (!*value)
        return true;
    const char *colon = strrchr(value, ':');
    if (!colon || colon == value || !colon[1] || strlen(colon + 1) > 5 ||
        strspn(colon + 1, "0123456789") != strlen(colon + 1))
        return false;
    long port = strtol(colon + 1, NULL, 10);
    return port >= 1 && port <= 65535;
}

static bool s_valid_ipv4(const char *value)
{
    unsigned char addr[sizeof(struct in_addr)];
    return inet_pton(AF_INET, value, addr) == 1;
}

static bool s_valid_address(const char *value)
{
    unsigned char addr[sizeof(struct in6_addr)];
    return !strcmp(value, "*") || inet_pton(AF_INET, value, addr) == 1 ||
           inet_pton(AF_INET6, value, addr) == 1;
}

static bool s_valid_port(const char *text)
{
    uint64_t port;
    bool overflow;
    size_t len = strlen(text);
    size_t digits = s_digits(text, len, &port, &overflow);
    return s_plain_number(text, digits) && digits == len && !overflow && port >= 1 && port <= 65535;
}

/* tcp://HOST:PORT where HOST is a name, an IPv4 literal, [IPv6], or (for
 * binding, allow_star) "*". */
static bool s_valid_tcp(const char *value, bool allow_star)
{
    if (strncmp(value, "tcp://", 6))
        return false;
    const char *host = value + 6, *colon;
    if (host[0] == '[') {
        const char *close = strchr(host, ']');
        char literal[INET6_ADDRSTRLEN];
        unsigned char addr[sizeof(struct in6_addr)];
        if (!close || close[1] != ':' || (size_t)(close - host - 1) >= sizeof literal)
            return false;
        memcpy(literal, host + 1, (size_t)(close - host - 1));
        literal[close - host - 1] = '\0';
        if (inet_pton(AF_INET6, literal, addr) != 1)
            return false;
        colon = close + 1;
    } else {
        colon = strrchr(host, ':');
        if (!colon || colon == host)
            return false;
        size_t n = (size_t)(colon - host);
        bool star = n == 1 && host[0] == '*';
        if (star ? !allow_star
                 : strspn(host, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                "0123456789.-_") != n)
            return false;
    }
    return s_valid_port(colon + 1);
}

/* IP:PORT to bind an HTTP listener: an IPv4 literal or [IPv6], no names
 * (nothing to resolve, so --check-config and the daemon agree). */
static bool s_valid_metrics(const char *value)
{
    if (!*value)
        return true;
    const char *colon;
    char literal[INET6_ADDRSTRLEN];
    unsigned char addr[sizeof(struct in6_addr)];
    if (value[0] == '[') {
        const char *close = strchr(value, ']');
        if (!close || close[1] != ':' || (size_t)(close - value - 1) >= sizeof literal)
            return false;
        memcpy(literal, value + 1, (size_t)(close - value - 1));
        literal[close - value - 1] = '\0';
        if (inet_pton(AF_INET6, literal, addr) != 1)
            return false;
        colon = close + 1;
    } else {
        colon = strrchr(value, ':');
        if (!colon || (size_t)(colon - value) >= sizeof literal)
            return false;
        memcpy(literal, value, (size_t)(colon - value));
        literal[colon - value] = '\0';
        if (inet_pton(AF_INET, literal, addr) != 1)
            return false;
    }
    return s_valid_port(colon + 1);
}

static bool s_valid_advertise(const char *value)
{
    return s_valid_tcp(value, false);
}

static bool s_valid_api(const char *value)
{
    if (!strncmp(value, "ipc://", 6))
        return value[6] != '\0';
    return s_valid_tcp(value, true);
}

/* ---- storing values ---- */

/* Checks a STRING or PATH (or list item) and returns it as stored: paths
 * resolved against base_dir. NULL on error. */
static char *s_text_value(s_ctx_t *ctx, const cohort_config_key_t *e, const char *text, size_t len,
                          const yaml_node_t *node)
{
    bool path = e->type == COHORT_CONFIG_TYPE_PATH || e->type == COHORT_CONFIG_TYPE_PATHLIST;
    bool list = e->type == COHORT_CONFIG_TYPE_LIST || e->type == COHORT_CONFIG_TYPE_PATHLIST;
    if (memchr(text, '\0', len)) {
        s_bad(ctx, node, e->key, text, len, "must not contain NUL bytes");
        return NULL;
    }
    /* Empty means "derive it" where the default is empty; list items never. */
    if (len == 0 && (list || !e->default_text || e->default_text[0])) {
        s_bad(ctx, node, e->key, text, len, "must not be empty");
        return NULL;
    }
    char *value = path && len ? cohort_fs_resolve(ctx->base_dir, text) : cohort_strdup(text);
    if (strlen(value) > COHORT_CONFIG_MAX_VALUE) {
        s_bad(ctx, node, e->key, text, len, "must be at most %d bytes%s", COHORT_CONFIG_MAX_VALUE,
              path ? " once resolved" : "");
        free(value);
        return NULL;
    }
    if (len && e->valid && !e->valid(value)) {
        s_bad(ctx, node, e->key, text, len, "%s", e->rule);
        free(value);
        return NULL;
    }
    return value;
}

static void s_free_list(char **items, size_t count)
{
    for (size_t i = 0; i < count; i++)
        free(items[i]);
    free(items);
}

/* Stores a scalar for entry e (text from the file, or its default when node
 * is NULL). */
static int s_store_scalar(s_ctx_t *ctx, const cohort_config_key_t *e, const char *text, size_t len,
                          const yaml_node_t *node)
{
    void *field = s_field(ctx->cfg, e);
    uint64_t number;
    switch (e->type) {
    case COHORT_CONFIG_TYPE_STRING:
    case COHORT_CONFIG_TYPE_PATH: {
        char *value = s_text_value(ctx, e, text, len, node);
        if (!value)
            return -1;
        char *old;
        memcpy(&old, field, sizeof old);
        free(old);
        memcpy(field, &value, sizeof value);
        return 0;
    }
    case COHORT_CONFIG_TYPE_UINT:
    case COHORT_CONFIG_TYPE_DURATION: {
        if (s_parse_number(ctx, e, text, len, node, &number) < 0)
            return -1;
        assert(e->max <= UINT32_MAX);
        uint32_t v32 = (uint32_t)number;
        memcpy(field, &v32, sizeof v32);
        return 0;
    }
    case COHORT_CONFIG_TYPE_SIZE:
        if (s_parse_number(ctx, e, text, len, node, &number) < 0)
            return -1;
        memcpy(field, &number, sizeof number);
        return 0;
    case COHORT_CONFIG_TYPE_BOOL: {
        bool yes = len == 4 && !memcmp(text, "true", 4);
        if (!yes && !(len == 5 && !memcmp(text, "false", 5)))
            return s_bad(ctx, node, e->key, text, len, "must be true or false");
        memcpy(field, &yes, sizeof yes);
        return 0;
    }
    case COHORT_CONFIG_TYPE_ENUM:
        for (int i = 0; e->values[i]; i++) {
            if (strlen(e->values[i]) == len && !memcmp(e->values[i], text, len)) {
                memcpy(field, &i, sizeof i);
                return 0;
            }
        }
        char names[256] = "";
        for (size_t i = 0; e->values[i]; i++)
            snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s", i ? ", " : "",
                     e->values[i]);
        return s_bad(ctx, node, e->key, text, len, "must be one of %s", names);
    case COHORT_CONFIG_TYPE_LIST:
    case COHORT_CONFIG_TYPE_PATHLIST:
        break;
    }
    abort(); /* lists never reach here: a programmer error */
}

/* Stores a LIST or PATHLIST from a sequence, a single scalar (one item) or a
 * null (no items). */
static int s_store_list(s_ctx_t *ctx, const cohort_config_key_t *e, const yaml_node_t *node)
{
    int rc = -1;
    yaml_node_item_t single = 0;
    const yaml_node_item_t *first = &single, *last = &single;
    if (node->type == YAML_SEQUENCE_NODE) {
        first = node->data.sequence.items.start;
        last = node->data.sequence.items.top;
    } else if (node->type != YAML_SCALAR_NODE) {
        return cohort_yaml_fail(&ctx->y, node, ctx->err, "%s: expected a list, got %s", e->key,
                                cohort_yaml_kind(node));
    } else if (!cohort_yaml_is_null(node)) {
        last = first + 1;
    }
    size_t count = (size_t)(last - first);
    char **items = cohort_calloc(count + 1, sizeof *items);
    size_t stored = 0;
    if (count < e->min || count > e->max) {
        char range[64];
        cohort_yaml_fail(&ctx->y, node, ctx->err, "%s: must have %s items, got %zu", e->key,
                         s_format_range(e, range, sizeof range), count);
        goto out;
    }
    for (const yaml_node_item_t *it = first; it < last; it++) {
        const yaml_node_t *item =
            node->type == YAML_SEQUENCE_NODE ? cohort_yaml_at(&ctx->y, *it) : node;
        if (!item || item->type != YAML_SCALAR_NODE) {
            cohort_yaml_fail(&ctx->y, item, ctx->err, "%s: expected a list of scalars, got %s",
                             e->key, cohort_yaml_kind(item));
            goto out;
        }
        items[stored] = s_text_value(ctx, e, (const char *)item->data.scalar.value,
                                     item->data.scalar.length, item);
        if (!items[stored])
            goto out;
        stored++;
    }
    char **old_items;
    size_t old_count;
    memcpy(&old_items, s_field(ctx->cfg, e), sizeof old_items);
    memcpy(&old_count, (char *)ctx->cfg + e->count_offset, sizeof old_count);
    s_free_list(old_items, old_count);
    memcpy(s_field(ctx->cfg, e), &items, sizeof items);
    memcpy((char *)ctx->cfg + e->count_offset, &stored, sizeof stored);
    items = NULL;
    rc = 0;
out:
    if (items)
        s_free_list(items, stored);
    return rc;
}

/* Stores the value node the file gave for entry idx. */
static int s_store_node(s_ctx_t *ctx, size_t idx, const yaml_node_t *node)
{
    const cohort_config_key_t *e = &s_keys[idx];
    if (e->type == COHORT_CONFIG_TYPE_LIST || e->type == COHORT_CONFIG_TYPE_PATHLIST)
        return s_store_list(ctx, e, node);
    if (node->type != YAML_SCALAR_NODE)
        return cohort_yaml_fail(&ctx->y, node, ctx->err, "%s: expected a scalar, got %s", e->key,
                                cohort_yaml_kind(node));
    return s_store_scalar(ctx, e, (const char *)node->data.scalar.value, node->data.scalar.length,
                          node);
}

/* ---- the document walk ---- */

static int s_walk_section(s_ctx_t *ctx, int first, const yaml_node_t *section)
{
    const char *sname = s_keys[first].key;
    int slen = (int)s_section_len(sname);
    char known[256], quoted[S_QUOTE];
    for (yaml_node_pair_t *p = section->data.mapping.pairs.start;
         p < section->data.mapping.pairs.top; p++) {
        const yaml_node_t *key = cohort_yaml_at(&ctx->y, p->key);
        const yaml_node_t *value = cohort_yaml_at(&ctx->y, p->value);
        if (!key || !value || key->type != YAML_SCALAR_NODE)
            return cohort_yaml_fail(&ctx->y, key, ctx->err, "%.*s: expected a key name, got %s",
                                    slen, sname, cohort_yaml_kind(key));
        int idx = s_find_key((size_t)first, (const char *)key->data.scalar.value,
                             key->data.scalar.length);
        if (idx < 0)
            return cohort_yaml_fail(&ctx->y, key, ctx->err, "%.*s: unknown key (known: %s), got %s",
                                    slen, sname, s_known(known, sizeof known, first),
                                    cohort_yaml_quote(key, quoted, sizeof quoted));
        if (ctx->key_at[idx])
            return cohort_yaml_fail(&ctx->y, key, ctx->err, "%s: duplicate key, first at line %zu",
                                    s_keys[idx].key, ctx->key_at[idx]->start_mark.line + 1);
        ctx->key_at[idx] = key;
        ctx->value_at[idx] = value;
        ctx->cfg->set_mask |= 1ULL << idx;
        if (s_store_node(ctx, (size_t)idx, value) < 0)
            return -1;
    }
    return 0;
}

static int s_walk(s_ctx_t *ctx)
{
    const yaml_node_t *root = cohort_yaml_root(&ctx->y);
    char known[256], quoted[S_QUOTE];
    if (!root || cohort_yaml_is_null(root))
        return cohort_err_set(ctx->err, "%s: expected a mapping of sections, got an empty document",
                              ctx->y.name);
    if (root->type != YAML_MAPPING_NODE)
        return cohort_yaml_fail(&ctx->y, root, ctx->err, "expected a mapping of sections, got %s",
                                cohort_yaml_kind(root));
    for (yaml_node_pair_t *p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top;
         p++) {
        const yaml_node_t *key = cohort_yaml_at(&ctx->y, p->key);
        const yaml_node_t *value = cohort_yaml_at(&ctx->y, p->value);
        if (!key || !value || key->type != YAML_SCALAR_NODE)
            return cohort_yaml_fail(&ctx->y, key, ctx->err, "expected a section name, got %s",
                                    cohort_yaml_kind(key));
        int first = s_find_section((const char *)key->data.scalar.value, key->data.scalar.length);
        if (first < 0)
            return cohort_yaml_fail(&ctx->y, key, ctx->err, "unknown section (known: %s), got %s",
                                    s_known(known, sizeof known, -1),
                                    cohort_yaml_quote(key, quoted, sizeof quoted));
        const char *sname = s_keys[first].key;
        int slen = (int)s_section_len(sname);
        if (ctx->section_at[first])
            return cohort_yaml_fail(&ctx->y, key, ctx->err,
                                    "%.*s: duplicate section, first at line %zu", slen, sname,
                                    ctx->section_at[first]->start_mark.line + 1);
        ctx->section_at[first] = key;
        /* A section whose keys are all commented out is an empty one. */
        if (cohort_yaml_is_null(value))
            continue;
        if (value->type != YAML_MAPPING_NODE)
            return cohort_yaml_fail(&ctx->y, value, ctx->err, "%.*s: expected a mapping, got %s",
                                    slen, sname, cohort_yaml_kind(value));
        if (s_walk_section(ctx, first, value) < 0)
            return -1;
    }
    return 0;
}

/* Fails unless a derived value fits; blames the key it was derived from. */
static int s_check_derived(s_ctx_t *ctx, size_t key, size_t from, const char *value)
{
    if (strlen(value) <= COHORT_CONFIG_MAX_VALUE)
        return 0;
    const yaml_node_t *node = ctx->value_at[from];
    const char *text;
    memcpy(&text, s_field(ctx->cfg, &s_keys[from]), sizeof text);
    return s_bad(ctx, node, s_keys[key].key, text, strlen(text),
                 "derived from %s, would be longer than %d bytes; set it explicitly",
                 s_keys[from].key, COHORT_CONFIG_MAX_VALUE);
}

/* Defaults, required keys, derived values and cross-key rules. */
static int s_finish(s_ctx_t *ctx)
{
    cohort_config_t *cfg = ctx->cfg;
    for (size_t i = 0; i < S_KEY_COUNT; i++) {
        const cohort_config_key_t *e = &s_keys[i];
        if (ctx->key_at[i])
            continue;
        if (e->required)
            return cohort_err_set(ctx->err, "%s: %s: required key is missing", ctx->y.name, e->key);
        /* List defaults are all empty: nothing to store. */
        if (e->type != COHORT_CONFIG_TYPE_LIST && e->type != COHORT_CONFIG_TYPE_PATHLIST &&
            s_store_scalar(ctx, e, e->default_text, strlen(e->default_text), NULL) < 0)
            return -1;
    }
    size_t state_dir = s_index("node.state_dir"), roster = s_index("trust.roster");
    size_t roster_sig = s_index("trust.roster_signature"), api = s_index("api.endpoint");
    size_t port = s_index("listen.port"), punch = s_index("listen.punch_port");
    if (!cfg->roster_sig[0]) {
        free(cfg->roster_sig);
        cfg->roster_sig = cohort_sprintf("%s.sig", cfg->roster);
        if (s_check_derived(ctx, roster_sig, roster, cfg->roster_sig) < 0)
            return -1;
    }
    if (!cfg->api_endpoint[0]) {
        free(cfg->api_endpoint);
        cfg->api_endpoint = cohort_sprintf("ipc://%s/api.sock", cfg->state_dir);
        if (s_check_derived(ctx, api, state_dir, cfg->api_endpoint) < 0)
            return -1;
    } else if (!strncmp(cfg->api_endpoint, "ipc://", 6) && cfg->api_endpoint[6] != '/' &&
               cfg->api_endpoint[6] != '@' && ctx->base_dir && ctx->base_dir[0]) {
        /* A relative socket path is relative to the config, like every path;
         * "@name" is Linux's abstract namespace and has no directory. */
        char *path = cohort_fs_resolve(ctx->base_dir, cfg->api_endpoint + 6);
        char *resolved = cohort_sprintf("ipc://%s", path);
        free(path);
        if (strlen(resolved) > COHORT_CONFIG_MAX_VALUE) {
            free(resolved);
            return s_bad(ctx, ctx->value_at[api], s_keys[api].key, cfg->api_endpoint,
                         strlen(cfg->api_endpoint), "must be at most %d bytes once resolved",
                         COHORT_CONFIG_MAX_VALUE);
        }
        free(cfg->api_endpoint);
        cfg->api_endpoint = resolved;
    }
    if (cfg->punch_port && cfg->punch_port == cfg->listen_port) {
        char text[16];
        snprintf(text, sizeof text, "%u", (unsigned)cfg->punch_port);
        if (ctx->value_at[punch])
            return s_bad(ctx, ctx->value_at[punch], s_keys[punch].key, text, strlen(text),
                         "must differ from listen.port (0 turns punching off)");
        return s_bad(ctx, ctx->value_at[port], s_keys[port].key, text, strlen(text),
                     "must differ from listen.punch_port (default %s)", s_keys[punch].default_text);
    }
    return 0;
}

/* ---- public API ---- */

int cohort_config_parse(const char *name, const char *base_dir, const char *buf, size_t len,
                        cohort_config_t **out, cohort_err_t *err)
{
    assert(name && (buf || !len) && out);
    int rc = -1;
    s_ctx_t ctx = {.base_dir = base_dir, .err = err};
    ctx.cfg = cohort_calloc(1, sizeof *ctx.cfg);
    if (len > COHORT_CONFIG_MAX_FILE) {
        cohort_err_set(err, "%s: config is %zu bytes, larger than the limit of %d", name, len,
                       COHORT_CONFIG_MAX_FILE);
        goto out;
    }
    if (cohort_yaml_load(&ctx.y, name, buf ? buf : "", len, err) < 0)
        goto out;
    if (s_walk(&ctx) < 0 || s_finish(&ctx) < 0)
        goto out;
    *out = ctx.cfg;
    ctx.cfg = NULL;
    rc = 0;
out:
    cohort_yaml_fini(&ctx.y);
    cohort_config_destroy(&ctx.cfg);
    return rc;
}

int cohort_config_load(const char *path, cohort_config_t **out, cohort_err_t *err)
{
    assert(path && out);
    int rc = -1;
    char *buf = NULL, *dir = NULL, *real = NULL;
    size_t len = 0;
    cohort_config_t *cfg = NULL;
    if (cohort_fs_read(path, COHORT_CONFIG_MAX_FILE, &buf, &len, err) < 0)
        goto out;
    dir = cohort_fs_dirname(path);
    real = realpath(dir, NULL);
    if (!real) {
        cohort_err_set(err, "%s: cannot resolve its directory: %s", path, strerror(errno));
        goto out;
    }
    if (cohort_config_parse(path, real, buf, len, &cfg, err) < 0)
        goto out;
    const char *slash = strrchr(path, '/');
    cfg->path = cohort_sprintf("%s/%s", strcmp(real, "/") ? real : "", slash ? slash + 1 : path);
    *out = cfg;
    cfg = NULL;
    rc = 0;
out:
    cohort_config_destroy(&cfg);
    free(real);
    free(dir);
    free(buf);
    return rc;
}

void cohort_config_destroy(cohort_config_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    cohort_config_t *self = *self_p;
    for (size_t i = 0; i < S_KEY_COUNT; i++) {
        const cohort_config_key_t *e = &s_keys[i];
        void *field = s_field(self, e);
        if (e->type == COHORT_CONFIG_TYPE_STRING || e->type == COHORT_CONFIG_TYPE_PATH) {
            char *value;
            memcpy(&value, field, sizeof value);
            free(value);
        } else if (e->type == COHORT_CONFIG_TYPE_LIST || e->type == COHORT_CONFIG_TYPE_PATHLIST) {
            char **items;
            size_t count;
            memcpy(&items, field, sizeof items);
            memcpy(&count, (char *)self + e->count_offset, sizeof count);
            s_free_list(items, count);
        }
    }
    free(self->path);
    free(self);
    *self_p = NULL;
}

static void s_emit_value(cohort_yemit_t *em, const cohort_config_t *cfg,
                         const cohort_config_key_t *e)
{
    const void *field = s_cfield(cfg, e);
    char text[64];
    uint32_t v32;
    uint64_t v64;
    switch (e->type) {
    case COHORT_CONFIG_TYPE_STRING:
    case COHORT_CONFIG_TYPE_PATH: {
        const char *value;
        memcpy(&value, field, sizeof value);
        assert(value);
        cohort_yemit_str(em, value);
        return;
    }
    case COHORT_CONFIG_TYPE_UINT:
        memcpy(&v32, field, sizeof v32);
        snprintf(text, sizeof text, "%u", (unsigned)v32);
        cohort_yemit_plain(em, text);
        return;
    case COHORT_CONFIG_TYPE_DURATION:
        memcpy(&v32, field, sizeof v32);
        cohort_yemit_plain(em, s_format_duration(v32, text, sizeof text));
        return;
    case COHORT_CONFIG_TYPE_SIZE:
        memcpy(&v64, field, sizeof v64);
        cohort_yemit_plain(em, s_format_size(v64, text, sizeof text));
        return;
    case COHORT_CONFIG_TYPE_BOOL: {
        bool yes;
        memcpy(&yes, field, sizeof yes);
        cohort_yemit_plain(em, yes ? "true" : "false");
        return;
    }
    case COHORT_CONFIG_TYPE_ENUM: {
        int v;
        memcpy(&v, field, sizeof v);
        size_t n = 0;
        while (e->values[n])
            n++;
        assert(v >= 0 && (size_t)v < n);
        cohort_yemit_str(em, e->values[v]);
        return;
    }
    case COHORT_CONFIG_TYPE_LIST:
    case COHORT_CONFIG_TYPE_PATHLIST: {
        char **items;
        size_t count;
        memcpy(&items, field, sizeof items);
        memcpy(&count, (const char *)cfg + e->count_offset, sizeof count);
        cohort_yemit_seq_start(em, count == 0);
        for (size_t i = 0; i < count; i++)
            cohort_yemit_str(em, items[i]);
        cohort_yemit_seq_end(em);
        return;
    }
    }
}

int cohort_config_emit(const cohort_config_t *cfg, char **out, size_t *len, cohort_err_t *err)
{
    assert(cfg && out && len);
    cohort_yemit_t *em = cohort_yemit_new();
    cohort_yemit_map_start(em);
    for (size_t i = 0; i < S_KEY_COUNT; i++) {
        const char *key = s_keys[i].key;
        size_t slen = s_section_len(key);
        if (i == 0 || !s_same_section(s_keys[i - 1].key, key)) {
            char section[64];
            if (i > 0)
                cohort_yemit_map_end(em);
            snprintf(section, sizeof section, "%.*s", (int)slen, key);
            cohort_yemit_str(em, section);
            cohort_yemit_map_start(em);
        }
        cohort_yemit_str(em, key + slen + 1);
        s_emit_value(em, cfg, &s_keys[i]);
    }
    cohort_yemit_map_end(em);
    cohort_yemit_map_end(em);
    int rc = cohort_yemit_finish(em, out, len, err);
    cohort_yemit_destroy(&em);
    return rc;
}

const cohort_config_key_t *cohort_config_keys(size_t *count)
{
    assert(count);
    *count = S_KEY_COUNT;
    return s_keys;
}

bool cohort_config_was_set(const cohort_config_t *cfg, const char *key)
{
    assert(cfg && key);
    int idx = s_find(key);
    return idx >= 0 && (cfg->set_mask >> idx) & 1;
}

bool cohort_config_key_reloadable(const char *key)
{
    assert(key);
    int idx = s_find(key);
    return idx >= 0 && s_keys[idx].reloadable;
}

bool cohort_config_same(const cohort_config_t *a, const cohort_config_t *b, const char *key)
{
    assert(a && b && key);
    int idx = s_find(key);
    if (idx < 0)
        return false;
    const cohort_config_key_t *e = &s_keys[idx];
    const void *fa = s_cfield(a, e), *fb = s_cfield(b, e);
    switch (e->type) {
    case COHORT_CONFIG_TYPE_STRING:
    case COHORT_CONFIG_TYPE_PATH: {
        const char *va, *vb;
        memcpy(&va, fa, sizeof va);
        memcpy(&vb, fb, sizeof vb);
        return !strcmp(va, vb);
    }
    case COHORT_CONFIG_TYPE_UINT:
    case COHORT_CONFIG_TYPE_DURATION:
        return !memcmp(fa, fb, sizeof(uint32_t));
    case COHORT_CONFIG_TYPE_SIZE:
        return !memcmp(fa, fb, sizeof(uint64_t));
    case COHORT_CONFIG_TYPE_BOOL:
        return !memcmp(fa, fb, sizeof(bool));
    case COHORT_CONFIG_TYPE_ENUM:
        return !memcmp(fa, fb, sizeof(int));
    case COHORT_CONFIG_TYPE_LIST:
    case COHORT_CONFIG_TYPE_PATHLIST: {
        char **ia, **ib;
        size_t na, nb;
        memcpy(&ia, fa, sizeof ia);
        memcpy(&ib, fb, sizeof ib);
        memcpy(&na, (const char *)a + e->count_offset, sizeof na);
        memcpy(&nb, (const char *)b + e->count_offset, sizeof nb);
        if (na != nb)
            return false;
        for (size_t i = 0; i < na; i++)
            if (strcmp(ia[i], ib[i]))
                return false;
        return true;
    }
    }
    return false;
}

/* Appends key to the comma-separated list at out (cap bytes, may be 0);
 * a key that does not fit whole is left out and "..." ends the list. */
static void s_list_add(char *out, size_t cap, const char *key)
{
    if (!cap)
        return;
    size_t len = strlen(out);
    size_t need = (len ? 1 : 0) + strlen(key);
    if (len + need < cap) {
        snprintf(out + len, cap - len, "%s%s", len ? "," : "", key);
    } else if (len + 4 < cap && (len < 3 || strcmp(out + len - 3, "..."))) {
        snprintf(out + len, cap - len, "%s...", len ? "," : "");
    }
}

/* Replaces dst's value of key e with a copy of src's. */
static void s_copy_value(cohort_config_t *dst, const cohort_config_t *src,
                         const cohort_config_key_t *e)
{
    void *to = s_field(dst, e);
    const void *from = s_cfield(src, e);
    switch (e->type) {
    case COHORT_CONFIG_TYPE_STRING:
    case COHORT_CONFIG_TYPE_PATH: {
        char *old, *value;
        memcpy(&old, to, sizeof old);
        memcpy(&value, from, sizeof value);
        value = cohort_strdup(value);
        memcpy(to, &value, sizeof value);
        free(old);
        return;
    }
    case COHORT_CONFIG_TYPE_UINT:
    case COHORT_CONFIG_TYPE_DURATION:
        memcpy(to, from, sizeof(uint32_t));
        return;
    case COHORT_CONFIG_TYPE_SIZE:
        memcpy(to, from, sizeof(uint64_t));
        return;
    case COHORT_CONFIG_TYPE_BOOL:
        memcpy(to, from, sizeof(bool));
        return;
    case COHORT_CONFIG_TYPE_ENUM:
        memcpy(to, from, sizeof(int));
        return;
    case COHORT_CONFIG_TYPE_LIST:
    case COHORT_CONFIG_TYPE_PATHLIST: {
        char **old, **items, **copy = NULL;
        size_t old_count, count;
        memcpy(&old, to, sizeof old);
        memcpy(&old_count, (char *)dst + e->count_offset, sizeof old_count);
        memcpy(&items, from, sizeof items);
        memcpy(&count, (const char *)src + e->count_offset, sizeof count);
        if (count) {
            copy = cohort_calloc(count, sizeof *copy);
            for (size_t i = 0; i < count; i++)
                copy[i] = cohort_strdup(items[i]);
        }
        memcpy(to, &copy, sizeof copy);
        memcpy((char *)dst + e->count_offset, &count, sizeof count);
        s_free_list(old, old_count);
        return;
    }
    }
}

size_t cohort_config_apply_reloadable(cohort_config_t *dst, const cohort_config_t *src,
                                      char *applied, size_t cap)
{
    assert(dst && src && (applied || !cap));
    if (cap)
        applied[0] = '\0';
    size_t changed = 0;
    for (size_t i = 0; i < S_KEY_COUNT; i++) {
        const cohort_config_key_t *e = &s_keys[i];
        if (!e->reloadable)
            continue;
        uint64_t bit = 1ULL << i;
        dst->set_mask = (dst->set_mask & ~bit) | (src->set_mask & bit);
        if (cohort_config_same(dst, src, e->key))
            continue;
        s_copy_value(dst, src, e);
        s_list_add(applied, cap, e->key);
        changed++;
    }
    return changed;
}

size_t cohort_config_restart_needed(const cohort_config_t *running, const cohort_config_t *fresh,
                                    char *keys, size_t cap)
{
    assert(running && fresh && (keys || !cap));
    if (cap)
        keys[0] = '\0';
    size_t changed = 0;
    for (size_t i = 0; i < S_KEY_COUNT; i++) {
        const cohort_config_key_t *e = &s_keys[i];
        if (e->reloadable || cohort_config_same(running, fresh, e->key))
            continue;
        s_list_add(keys, cap, e->key);
        changed++;
    }
    return changed;
}
