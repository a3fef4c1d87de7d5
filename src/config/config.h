/*
 * config: the node configuration file, loaded strictly into a plain struct.
 *
 * A node config is one YAML file: a mapping of sections, each a mapping of
 * keys. Every key is described once, in a static table (type, range, default,
 * reloadable, one-line doc); the loader, the emitter, the docs test and
 * `--check-config` all read that table. Loading is strict: unknown sections
 * and keys, duplicates, wrong types and out-of-range values are errors of
 * the form `FILE:LINE:COL: KEY: what, got 'VALUE'`. Relative paths are
 * resolved against the config file's directory, and derived defaults
 * (trust.roster_signature, api.endpoint) are filled in, so the struct always
 * holds the effective values.
 *
 * This module does not open the files the config names (keys, certificates,
 * roster), does not check that node.name matches the certificate, and does
 * not make a reload take effect: it copies the reloadable keys from a fresh
 * config into the running one, and the node and the daemon act on them.
 */
#ifndef COHORT_CONFIG_CONFIG_H
#define COHORT_CONFIG_CONFIG_H

#include "util/err.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Largest config file accepted, in bytes. */
#define COHORT_CONFIG_MAX_FILE (1024 * 1024)
/* Longest value (after path resolution and derivation), in bytes. Keeps an
 * emitted config well under COHORT_CONFIG_MAX_FILE, so it always reloads. */
#define COHORT_CONFIG_MAX_VALUE 4095
/* Longest node.name. */
#define COHORT_CONFIG_MAX_NAME 63
/* Most items in trust.ca and in listen.advertise. */
#define COHORT_CONFIG_MAX_LIST 16
/* Room for every key name, comma-separated, with its NUL: enough for the
 * lists cohort_config_apply_reloadable and cohort_config_restart_needed
 * write. */
#define COHORT_CONFIG_KEY_LIST_MAX 1024

typedef enum {
    COHORT_CONFIG_LOG_DEBUG,
    COHORT_CONFIG_LOG_INFO,
    COHORT_CONFIG_LOG_WARN,
    COHORT_CONFIG_LOG_ERROR
} cohort_config_log_level_t;

typedef enum { COHORT_CONFIG_LOG_TEXT, COHORT_CONFIG_LOG_JSON } cohort_config_log_format_t;

/* The effective node configuration. Every string and array is owned by the
 * struct and freed by cohort_config_destroy. After a successful parse or
 * load, every field holds a value (defaults filled in), paths are absolute
 * (unless parsed with a NULL base_dir), and no string is NULL. */
typedef struct cohort_config {
    char *path;                            /* absolute path of the file; NULL after parse */
    char *node_name;                       /* node.name */
    char *state_dir;                       /* node.state_dir */
    char *identity_key;                    /* identity.key */
    char *identity_cert;                   /* identity.cert */
    char **trust_ca;                       /* trust.ca, trust_ca_count items (1..16) */
    size_t trust_ca_count;                 /*   */
    char *roster;                          /* trust.roster */
    char *roster_sig;                      /* trust.roster_signature, resolved */
    char *listen_address;                  /* listen.address: IP literal or "*" */
    uint32_t listen_port;                  /* listen.port */
    uint32_t punch_port;                   /* listen.punch_port, 0 = off */
    char **advertise;                      /* listen.advertise, advertise_count items */
    size_t advertise_count;                /*   */
    char *api_endpoint;                    /* api.endpoint, resolved */
    cohort_config_log_level_t log_level;   /* log.level */
    cohort_config_log_format_t log_format; /* log.format */
    uint64_t max_message_size;             /* limits.max_message_size, bytes */
    uint32_t send_queue;                   /* limits.send_queue, messages */
    uint32_t send_timeout_ms;              /* limits.send_timeout, milliseconds */
    uint32_t receive_queue;                /* limits.receive_queue, messages */
    uint64_t receive_bytes;                /* limits.receive_bytes, bytes */
    uint32_t peer_receive_queue;           /* limits.peer_receive_queue, messages */
    uint32_t direct_timeout_ms;            /* links.direct_timeout */
    uint32_t punch_timeout_ms;             /* links.punch_timeout */
    uint32_t upgrade_interval_ms;          /* links.upgrade_interval */
    uint32_t probe_timeout_ms;             /* links.probe_timeout */
    char *socks5_proxy;                    /* proxy.socks5, "" = none */
    uint64_t relay_pair_bytes;             /* relay.pair_bytes_per_second */
    uint32_t relay_pair_msgs;              /* relay.pair_messages_per_second */
    uint32_t swim_probe_interval_ms;       /* membership.probe_interval */
    uint32_t swim_probe_timeout_ms;        /* membership.probe_timeout */
    uint32_t swim_suspicion_timeout_ms;    /* membership.suspicion_timeout */
    uint32_t swim_indirect;                /* membership.indirect_probes */
    bool lan_discovery;                    /* discovery.lan */
    uint32_t lan_port;                     /* discovery.port */
    char *lan_address;                     /* discovery.address */
    uint32_t lan_interval_ms;              /* discovery.interval */
    char *metrics_address;                 /* metrics.address: IP:PORT, "" = off */
    /* Bit i is set when the file set table entry i. Read it through
     * cohort_config_was_set. */
    uint64_t set_mask;
} cohort_config_t;

typedef enum {
    COHORT_CONFIG_TYPE_STRING,
    COHORT_CONFIG_TYPE_PATH,     /* resolved against the config file's directory */
    COHORT_CONFIG_TYPE_UINT,     /* decimal digits only */
    COHORT_CONFIG_TYPE_BOOL,     /* true | false */
    COHORT_CONFIG_TYPE_ENUM,     /* one of values[] */
    COHORT_CONFIG_TYPE_SIZE,     /* bytes: N, NB, NKiB, NMiB, NGiB */
    COHORT_CONFIG_TYPE_DURATION, /* milliseconds: Nms, Ns, Nm, Nh */
    COHORT_CONFIG_TYPE_LIST,     /* YAML list of strings; a scalar is one item, a null none */
    COHORT_CONFIG_TYPE_PATHLIST  /* LIST whose items are PATHs */
} cohort_config_type_t;

/* One entry of the key table. The loader is driven entirely by these. */
typedef struct cohort_config_key {
    const char *key; /* "section.name" */
    cohort_config_type_t type;
    const char *type_name;            /* "string", "path", "uint", ... for docs */
    bool required;                    /* no default: the file must set it */
    const char *default_text;         /* as written in a file; NULL when required */
    uint64_t min, max;                /* UINT/SIZE/DURATION: value range (bytes, ms);
                                         LIST/PATHLIST: item count */
    bool reloadable;                  /* applied on SIGHUP without a restart */
    size_t offset;                    /* offsetof the field in cohort_config_t */
    size_t count_offset;              /* LIST/PATHLIST: offsetof the item count */
    const char *const *values;        /* ENUM: NULL-terminated names in enum order */
    bool (*valid)(const char *value); /* STRING/LIST item rule, or NULL */
    const char *rule;                 /* what valid() demands, for error texts */
    const char *doc;                  /* one line */
} cohort_config_key_t;

/* Parses len bytes of YAML at buf into a fresh config. name is used only in
 * error texts (usually the path as the user gave it). Relative paths are
 * resolved against base_dir; NULL leaves them relative. On success *out is
 * set (caller owns; cohort_config_destroy). On failure returns -1, *out is
 * untouched and err holds `NAME:LINE:COL: KEY: what, got 'VALUE'`. */
int cohort_config_parse(const char *name, const char *base_dir, const char *buf, size_t len,
                        cohort_config_t **out, cohort_err_t *err);

/* Reads the file at path (at most COHORT_CONFIG_MAX_FILE bytes) and parses
 * it with the real directory of path as base_dir; cfg->path is set to the
 * absolute path of the file. Error texts use path as given. On success *out
 * is set (caller owns; cohort_config_destroy). */
int cohort_config_load(const char *path, cohort_config_t **out, cohort_err_t *err);

/* Frees the config and everything it holds; accepts NULL and *self_p ==
 * NULL; sets *self_p to NULL. */
void cohort_config_destroy(cohort_config_t **self_p);

/* Writes the effective config as YAML: every key in table order, defaults
 * filled in, paths and derived values as resolved. Parsing the output gives
 * the same emission again. *out (caller owns; free()) is NUL-terminated and
 * *len excludes the NUL. Fails only if a value is not valid UTF-8 (possible
 * only when base_dir was not). */
int cohort_config_emit(const cohort_config_t *cfg, char **out, size_t *len, cohort_err_t *err);

/* The key table, *count entries. Borrowed; static. */
const cohort_config_key_t *cohort_config_keys(size_t *count);

/* True if the file set key ("section.name") explicitly, even to its default
 * value. False for unknown keys and for configs not made by parse/load. */
bool cohort_config_was_set(const cohort_config_t *cfg, const char *key);

/* True if key ("section.name") takes effect on SIGHUP without a restart;
 * false for unknown keys. */
bool cohort_config_key_reloadable(const char *key);

/* True if a and b hold the same effective value for key ("section.name");
 * false for unknown keys. What a reload uses to tell what changed. */
bool cohort_config_same(const cohort_config_t *a, const cohort_config_t *b, const char *key);

/* A reload: for every reloadable key whose value differs, replaces dst's
 * value with a copy of src's (strings and lists duplicated, dst's old ones
 * freed); also takes src's "set by the file" bit of every reloadable key.
 * Non-reloadable keys and dst->path are not touched. Writes the changed
 * keys into applied (cap bytes, may be 0 with applied NULL) in table order,
 * comma-separated, "" when none; a list longer than cap ends in "..."
 * (COHORT_CONFIG_KEY_LIST_MAX always fits). Returns how many changed. */
size_t cohort_config_apply_reloadable(cohort_config_t *dst, const cohort_config_t *src,
                                      char *applied, size_t cap);

/* The non-reloadable keys whose value differs between running and fresh,
 * written into keys as cohort_config_apply_reloadable writes applied.
 * Returns how many. */
size_t cohort_config_restart_needed(const cohort_config_t *running, const cohort_config_t *fresh,
                                    char *keys, size_t cap);

#endif
