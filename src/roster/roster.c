/*
 * roster: parsing, checking, editing and signing the cluster allowlist.
 * See roster.h.
 */
#include "roster/roster.h"
#include "util/fs.h"
#include "util/mem.h"
#include "util/yamldoc.h"

#include <arpa/inet.h>
#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct cohort_roster {
    char *name; /* file name for messages ("" for a new roster) */
    char *cluster;
    uint64_t serial;
    cohort_member_t *members;
    size_t member_count;
    cohort_revoked_t *revoked;
    size_t revoked_count;
    cohort_site_t *sites;
    size_t site_count;
    cohort_policy_t *policies;
    size_t policy_count;
    bool checked;
};

/* ---- small helpers ---- */

static const char *const s_role_names[] = {"relay", "rendezvous"};
#define S_ROLE_COUNT (sizeof s_role_names / sizeof s_role_names[0])

static int s_role_bit(const char *text)
{
    for (size_t i = 0; i < S_ROLE_COUNT; i++)
        if (!strcmp(text, s_role_names[i]))
            return (int)(1u << i);
    return 0;
}

int cohort_roles_parse(const char *text, unsigned *roles, cohort_err_t *err)
{
    *roles = 0;
    if (!*text || !strcmp(text, "none"))
        return 0;
    char *copy = cohort_strdup(text), *save = NULL;
    int rc = 0;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        int bit = s_role_bit(tok);
        if (!bit) {
            char q[96];
            rc = cohort_err_set(err, "unknown role %s; known roles: relay, rendezvous",
                                cohort_err_quote(q, sizeof q, tok, strlen(tok)));
            break;
        }
        *roles |= (unsigned)bit;
    }
    free(copy);
    return rc;
}

const char *cohort_roles_text(unsigned roles, char *out, size_t cap)
{
    size_t o = 0;
    out[0] = '\0';
    for (size_t i = 0; i < S_ROLE_COUNT; i++)
        if (roles & (1u << i))
            o += (size_t)snprintf(out + o, o < cap ? cap - o : 0, "%s%s", o ? "," : "",
                                  s_role_names[i]);
    if (!o)
        snprintf(out, cap, "none");
    return out;
}

bool cohort_endpoint_valid(const char *endpoint)
{
    if (strncmp(endpoint, "tcp://", 6) != 0)
        return false;
    const char *host = endpoint + 6;
    const char *colon = strrchr(host, ':');
    if (!colon || colon == host)
        return false;
    size_t host_len = (size_t)(colon - host);
    if (host[0] == '[') { /* [v6]:port */
        if (host_len < 3 || host[host_len - 1] != ']')
            return false;
        char v6[64];
        if (host_len - 2 >= sizeof v6)
            return false;
        memcpy(v6, host + 1, host_len - 2);
        v6[host_len - 2] = '\0';
        struct in6_addr a;
        if (inet_pton(AF_INET6, v6, &a) != 1)
            return false;
    } else {
        for (size_t i = 0; i < host_len; i++) {
            unsigned char c = (unsigned char)host[i];
            if (!isalnum(c) && c != '.' && c != '-' && c != '_')
                return false;
        }
    }
    const char *port = colon + 1;
    if (!*port || strlen(port) > 5 || strspn(port, "0123456789") != strlen(port))
        return false;
    long p = strtol(port, NULL, 10);
    return p >= 1 && p <= 65535;
}

static void s_strv_free(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static void s_member_fini(cohort_member_t *m)
{
    free(m->name);
    free(m->site);
    s_strv_free(m->endpoints, m->endpoint_count);
    free(m->cert_pem);
    X509_free(m->cert);
    memset(m, 0, sizeof *m);
}

void cohort_problems_fini(cohort_problems_t *problems)
{
    for (size_t i = 0; i < problems->count; i++)
        free(problems->items[i].text);
    free(problems->items);
    memset(problems, 0, sizeof *problems);
}

static void s_problem(cohort_problems_t *problems, bool fatal, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void s_problem(cohort_problems_t *problems, bool fatal, const char *fmt, ...)
{
    char text[COHORT_ERR_TEXT_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    problems->items =
        cohort_realloc(problems->items, (problems->count + 1) * sizeof *problems->items);
    problems->items[problems->count].fatal = fatal;
    problems->items[problems->count].text = cohort_strdup(text);
    problems->count++;
    if (fatal)
        problems->fatal_count++;
}

cohort_roster_t *cohort_roster_new(const char *cluster)
{
    cohort_roster_t *self = cohort_calloc(1, sizeof *self);
    self->name = cohort_strdup("roster");
    self->cluster = cohort_strdup(cluster);
    self->serial = 1;
    return self;
}

void cohort_roster_destroy(cohort_roster_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    cohort_roster_t *self = *self_p;
    for (size_t i = 0; i < self->member_count; i++)
        s_member_fini(&self->members[i]);
    free(self->members);
    for (size_t i = 0; i < self->revoked_count; i++) {
        free(self->revoked[i].name);
        free(self->revoked[i].reason);
    }
    free(self->revoked);
    for (size_t i = 0; i < self->site_count; i++) {
        free(self->sites[i].name);
        s_strv_free(self->sites[i].relays, self->sites[i].relay_count);
        s_strv_free(self->sites[i].rendezvous, self->sites[i].rendezvous_count);
    }
    free(self->sites);
    for (size_t i = 0; i < self->policy_count; i++) {
        free(self->policies[i].never_relay_a);
        free(self->policies[i].never_relay_b);
    }
    free(self->policies);
    free(self->cluster);
    free(self->name);
    free(self);
    *self_p = NULL;
}

/* ---- parsing ---- */

typedef struct {
    cohort_yaml_t y;
    cohort_err_t *err;
} s_parser_t;

/* Fails unless node is of the wanted type; `what` names the key path. */
static int s_want(s_parser_t *p, yaml_node_t *node, yaml_node_type_t type, const char *what)
{
    if (node && node->type == type)
        return 0;
    const char *want = type == YAML_MAPPING_NODE    ? "a mapping"
                       : type == YAML_SEQUENCE_NODE ? "a list"
                                                    : "a scalar";
    char q[96];
    return cohort_yaml_fail(&p->y, node, p->err, "%s: expected %s, got %s", what, want,
                            node && node->type == YAML_SCALAR_NODE
                                ? cohort_yaml_quote(node, q, sizeof q)
                                : cohort_yaml_kind(node));
}

/* A non-empty string scalar. *out: caller owns. */
static int s_string(s_parser_t *p, yaml_node_t *node, const char *what, char **out)
{
    if (s_want(p, node, YAML_SCALAR_NODE, what) < 0)
        return -1;
    if (cohort_yaml_is_null(node))
        return cohort_yaml_fail(&p->y, node, p->err, "%s: must not be empty", what);
    if (strlen((const char *)node->data.scalar.value) != node->data.scalar.length)
        return cohort_yaml_fail(&p->y, node, p->err, "%s: contains a NUL byte", what);
    *out = cohort_strdup(cohort_yaml_scalar(node));
    return 0;
}

static int s_name(s_parser_t *p, yaml_node_t *node, const char *what, char **out)
{
    if (s_string(p, node, what, out) < 0)
        return -1;
    if (cohort_cert_name_valid(*out))
        return 0;
    char q[96];
    cohort_yaml_fail(&p->y, node, p->err,
                     "%s: must be 1..63 characters of A-Z a-z 0-9 . _ - starting with a letter "
                     "or digit, got %s",
                     what, cohort_yaml_quote(node, q, sizeof q));
    free(*out);
    *out = NULL;
    return -1;
}

/* A list of strings, each checked by `check` (may be NULL). */
static int s_strlist(s_parser_t *p, yaml_node_t *node, const char *what, size_t max,
                     bool (*check)(const char *), const char *check_text, char ***out,
                     size_t *count)
{
    if (s_want(p, node, YAML_SEQUENCE_NODE, what) < 0)
        return -1;
    size_t n = (size_t)(node->data.sequence.items.top - node->data.sequence.items.start);
    if (n > max)
        return cohort_yaml_fail(&p->y, node, p->err, "%s: at most %zu entries, got %zu", what, max,
                                n);
    char **v = cohort_calloc(n + 1, sizeof *v);
    for (size_t i = 0; i < n; i++) {
        yaml_node_t *item = cohort_yaml_at(&p->y, node->data.sequence.items.start[i]);
        char sub[256];
        snprintf(sub, sizeof sub, "%s[%zu]", what, i);
        if (s_string(p, item, sub, &v[i]) < 0) {
            s_strv_free(v, i);
            return -1;
        }
        if (check && !check(v[i])) {
            char q[96];
            cohort_yaml_fail(&p->y, item, p->err, "%s: %s, got %s", sub, check_text,
                             cohort_yaml_quote(item, q, sizeof q));
            s_strv_free(v, i + 1);
            return -1;
        }
    }
    *out = v;
    *count = n;
    return 0;
}

/* Walks a mapping, refusing duplicate and unknown keys. For each known key,
 * calls handle(p, ctx, index of key in `keys`, value node). Missing required
 * keys (marked with a leading '!') are reported at the mapping. */
typedef int (*s_handler_t)(s_parser_t *p, void *ctx, int key, yaml_node_t *value);

static int s_mapping(s_parser_t *p, yaml_node_t *node, const char *what, const char *const *keys,
                     int key_count, s_handler_t handle, void *ctx)
{
    if (s_want(p, node, YAML_MAPPING_NODE, what) < 0)
        return -1;
    unsigned seen = 0;
    assert(key_count < 32);
    for (yaml_node_pair_t *pair = node->data.mapping.pairs.start;
         pair < node->data.mapping.pairs.top; pair++) {
        yaml_node_t *k = cohort_yaml_at(&p->y, pair->key);
        const char *ks = cohort_yaml_scalar(k);
        char q[96];
        if (!ks)
            return cohort_yaml_fail(&p->y, k, p->err, "%s: keys must be scalars", what);
        int idx = -1;
        for (int i = 0; i < key_count; i++) {
            const char *name = keys[i][0] == '!' ? keys[i] + 1 : keys[i];
            if (!strcmp(ks, name))
                idx = i;
        }
        if (idx < 0) {
            char known[256];
            size_t o = 0;
            known[0] = '\0';
            for (int i = 0; i < key_count && o < sizeof known; i++)
                o += (size_t)snprintf(known + o, sizeof known - o, "%s%s", i ? ", " : "",
                                      keys[i][0] == '!' ? keys[i] + 1 : keys[i]);
            return cohort_yaml_fail(&p->y, k, p->err, "%s: unknown key %s (known: %s)", what,
                                    cohort_yaml_quote(k, q, sizeof q), known);
        }
        if (seen & (1u << idx))
            return cohort_yaml_fail(&p->y, k, p->err, "%s: duplicate key %s", what,
                                    cohort_yaml_quote(k, q, sizeof q));
        seen |= 1u << idx;
        if (handle(p, ctx, idx, cohort_yaml_at(&p->y, pair->value)) < 0)
            return -1;
    }
    for (int i = 0; i < key_count; i++)
        if (keys[i][0] == '!' && !(seen & (1u << i)))
            return cohort_yaml_fail(&p->y, node, p->err, "%s: required key '%s' is missing", what,
                                    keys[i] + 1);
    return 0;
}

typedef struct {
    cohort_member_t *m;
    char what[96];
} s_member_ctx_t;

static int s_member_key(s_parser_t *p, void *vctx, int key, yaml_node_t *value)
{
    s_member_ctx_t *ctx = vctx;
    cohort_member_t *m = ctx->m;
    char what[160];
    static const char *const names[] = {"name", "certificate", "roles", "site", "endpoints"};
    snprintf(what, sizeof what, "%s.%s", ctx->what, names[key]);
    switch (key) {
    case 0:
        return s_name(p, value, what, &m->name);
    case 1: {
        if (s_string(p, value, what, &m->cert_pem) < 0)
            return -1;
        char where[512], full[700];
        snprintf(full, sizeof full, "%s: %s", cohort_yaml_where(&p->y, value, where, sizeof where),
                 what);
        if (cohort_cert_parse_pem(full, m->cert_pem, strlen(m->cert_pem), &m->cert, p->err) < 0)
            return -1;
        cohort_cert_describe(m->cert, &m->info);
        return 0;
    }
    case 2: {
        char **roles = NULL;
        size_t n = 0;
        if (s_strlist(p, value, what, 8, NULL, NULL, &roles, &n) < 0)
            return -1;
        int rc = 0;
        for (size_t i = 0; i < n && rc == 0; i++) {
            int bit = s_role_bit(roles[i]);
            if (!bit) {
                char q[96];
                yaml_node_t *item = cohort_yaml_at(&p->y, value->data.sequence.items.start[i]);
                rc = cohort_yaml_fail(&p->y, item, p->err,
                                      "%s: unknown role %s (known roles: relay, rendezvous)", what,
                                      cohort_yaml_quote(item, q, sizeof q));
            }
            m->roles |= (unsigned)bit;
        }
        s_strv_free(roles, n);
        return rc;
    }
    case 3:
        free(m->site);
        m->site = NULL;
        return s_name(p, value, what, &m->site);
    case 4:
        return s_strlist(p, value, what, COHORT_ROSTER_MAX_ENDPOINTS, cohort_endpoint_valid,
                         "must be tcp://HOST:PORT", &m->endpoints, &m->endpoint_count);
    }
    return 0;
}

static int s_members(s_parser_t *p, cohort_roster_t *r, yaml_node_t *node)
{
    if (s_want(p, node, YAML_SEQUENCE_NODE, "members") < 0)
        return -1;
    size_t n = (size_t)(node->data.sequence.items.top - node->data.sequence.items.start);
    if (n > COHORT_ROSTER_MAX_MEMBERS)
        return cohort_yaml_fail(&p->y, node, p->err, "members: at most %d members, got %zu",
                                COHORT_ROSTER_MAX_MEMBERS, n);
    r->members = cohort_calloc(n + 1, sizeof *r->members);
    static const char *const keys[] = {"!name", "!certificate", "roles", "site", "endpoints"};
    for (size_t i = 0; i < n; i++) {
        yaml_node_t *item = cohort_yaml_at(&p->y, node->data.sequence.items.start[i]);
        cohort_member_t *m = &r->members[i];
        r->member_count = i + 1; /* so a failure frees what was parsed */
        m->site = cohort_strdup("");
        s_member_ctx_t ctx = {.m = m};
        snprintf(ctx.what, sizeof ctx.what, "members[%zu]", i);
        if (s_mapping(p, item, ctx.what, keys, 5, s_member_key, &ctx) < 0)
            return -1;
        m->line = item->start_mark.line + 1;
        m->column = item->start_mark.column + 1;
    }
    return 0;
}

typedef struct {
    cohort_revoked_t *rv;
    char what[64];
} s_revoked_ctx_t;

static int s_revoked_key(s_parser_t *p, void *vctx, int key, yaml_node_t *value)
{
    s_revoked_ctx_t *ctx = vctx;
    char what[128];
    static const char *const names[] = {"fingerprint", "name", "reason"};
    snprintf(what, sizeof what, "%s.%s", ctx->what, names[key]);
    char *text = NULL;
    if (s_string(p, value, what, &text) < 0)
        return -1;
    if (key == 0) {
        bool ok = cohort_cert_fp_parse(text, ctx->rv->fingerprint);
        free(text);
        if (ok)
            return 0;
        char q[96];
        return cohort_yaml_fail(&p->y, value, p->err,
                                "%s: must be a SHA-256 fingerprint (64 hex digits), got %s", what,
                                cohort_yaml_quote(value, q, sizeof q));
    }
    char **slot = key == 1 ? &ctx->rv->name : &ctx->rv->reason;
    free(*slot);
    *slot = text;
    return 0;
}

static int s_revoked(s_parser_t *p, cohort_roster_t *r, yaml_node_t *node)
{
    if (s_want(p, node, YAML_SEQUENCE_NODE, "revoked") < 0)
        return -1;
    size_t n = (size_t)(node->data.sequence.items.top - node->data.sequence.items.start);
    if (n > 10 * COHORT_ROSTER_MAX_MEMBERS)
        return cohort_yaml_fail(&p->y, node, p->err, "revoked: too many entries (%zu)", n);
    r->revoked = cohort_calloc(n + 1, sizeof *r->revoked);
    static const char *const keys[] = {"!fingerprint", "name", "reason"};
    for (size_t i = 0; i < n; i++) {
        yaml_node_t *item = cohort_yaml_at(&p->y, node->data.sequence.items.start[i]);
        cohort_revoked_t *rv = &r->revoked[i];
        r->revoked_count = i + 1;
        rv->name = cohort_strdup("");
        rv->reason = cohort_strdup("");
        s_revoked_ctx_t ctx = {.rv = rv};
        snprintf(ctx.what, sizeof ctx.what, "revoked[%zu]", i);
        if (item && item->type == YAML_SCALAR_NODE) {
            /* The short form: just the fingerprint. */
            if (s_revoked_key(p, &ctx, 0, item) < 0)
                return -1;
            continue;
        }
        if (s_mapping(p, item, ctx.what, keys, 3, s_revoked_key, &ctx) < 0)
            return -1;
    }
    return 0;
}

typedef struct {
    cohort_site_t *site;
    char what[64];
} s_site_ctx_t;

static bool s_name_check(const char *s)
{
    return cohort_cert_name_valid(s);
}

static int s_site_key(s_parser_t *p, void *vctx, int key, yaml_node_t *value)
{
    s_site_ctx_t *ctx = vctx;
    static const char *const names[] = {"name", "relays", "rendezvous"};
    char what[128];
    snprintf(what, sizeof what, "%s.%s", ctx->what, names[key]);
    if (key == 0)
        return s_name(p, value, what, &ctx->site->name);
    if (key == 1)
        return s_strlist(p, value, what, 64, s_name_check, "must be a member name",
                         &ctx->site->relays, &ctx->site->relay_count);
    return s_strlist(p, value, what, 64, s_name_check, "must be a member name",
                     &ctx->site->rendezvous, &ctx->site->rendezvous_count);
}

typedef struct {
    cohort_policy_t *policy;
    char what[64];
} s_policy_ctx_t;

static int s_policy_key(s_parser_t *p, void *vctx, int key, yaml_node_t *value)
{
    (void)key;
    s_policy_ctx_t *ctx = vctx;
    char what[128];
    snprintf(what, sizeof what, "%s.never_relay_between", ctx->what);
    char **pair = NULL;
    size_t n = 0;
    if (s_strlist(p, value, what, 2, s_name_check, "must be a site name", &pair, &n) < 0)
        return -1;
    if (n != 2) {
        s_strv_free(pair, n);
        return cohort_yaml_fail(&p->y, value, p->err, "%s: must name exactly two sites, got %zu",
                                what, n);
    }
    ctx->policy->never_relay_a = pair[0];
    ctx->policy->never_relay_b = pair[1];
    free(pair);
    return 0;
}

static int s_topology_key(s_parser_t *p, void *vctx, int key, yaml_node_t *value)
{
    cohort_roster_t *r = vctx;
    const char *what = key == 0 ? "topology.sites" : "topology.policies";
    if (s_want(p, value, YAML_SEQUENCE_NODE, what) < 0)
        return -1;
    size_t n = (size_t)(value->data.sequence.items.top - value->data.sequence.items.start);
    if (n > 4096)
        return cohort_yaml_fail(&p->y, value, p->err, "%s: too many entries (%zu)", what, n);
    if (key == 0) {
        static const char *const keys[] = {"!name", "relays", "rendezvous"};
        r->sites = cohort_calloc(n + 1, sizeof *r->sites);
        for (size_t i = 0; i < n; i++) {
            yaml_node_t *item = cohort_yaml_at(&p->y, value->data.sequence.items.start[i]);
            r->site_count = i + 1;
            s_site_ctx_t ctx = {.site = &r->sites[i]};
            snprintf(ctx.what, sizeof ctx.what, "%s[%zu]", what, i);
            if (s_mapping(p, item, ctx.what, keys, 3, s_site_key, &ctx) < 0)
                return -1;
        }
        return 0;
    }
    static const char *const keys[] = {"!never_relay_between"};
    r->policies = cohort_calloc(n + 1, sizeof *r->policies);
    for (size_t i = 0; i < n; i++) {
        yaml_node_t *item = cohort_yaml_at(&p->y, value->data.sequence.items.start[i]);
        r->policy_count = i + 1;
        s_policy_ctx_t ctx = {.policy = &r->policies[i]};
        snprintf(ctx.what, sizeof ctx.what, "%s[%zu]", what, i);
        if (s_mapping(p, item, ctx.what, keys, 1, s_policy_key, &ctx) < 0)
            return -1;
    }
    return 0;
}

static int s_root_key(s_parser_t *p, void *vctx, int key, yaml_node_t *value)
{
    cohort_roster_t *r = vctx;
    switch (key) {
    case 0:
        free(r->cluster);
        r->cluster = NULL;
        return s_name(p, value, "cluster", &r->cluster);
    case 1: {
        if (s_want(p, value, YAML_SCALAR_NODE, "serial") < 0)
            return -1;
        const char *s = cohort_yaml_scalar(value);
        char *end = NULL;
        errno = 0;
        unsigned long long v = strtoull(s, &end, 10);
        if (!isdigit((unsigned char)s[0]) || *end || errno || v == 0) {
            char q[96];
            return cohort_yaml_fail(&p->y, value, p->err,
                                    "serial: must be a whole number from 1 to "
                                    "18446744073709551615, got %s",
                                    cohort_yaml_quote(value, q, sizeof q));
        }
        r->serial = v;
        return 0;
    }
    case 2:
        return s_members(p, r, value);
    case 3:
        return s_revoked(p, r, value);
    case 4: {
        static const char *const keys[] = {"sites", "policies"};
        return s_mapping(p, value, "topology", keys, 2, s_topology_key, r);
    }
    }
    return 0;
}

int cohort_roster_parse(const char *name, const char *buf, size_t len, cohort_roster_t **out,
                        cohort_err_t *err)
{
    if (len > COHORT_ROSTER_FILE_MAX)
        return cohort_err_set(err, "%s: roster is %zu bytes, larger than the limit of %d", name,
                              len, COHORT_ROSTER_FILE_MAX);
    s_parser_t p = {.err = err};
    cohort_roster_t *r = cohort_calloc(1, sizeof *r);
    r->name = cohort_strdup(name);
    int rc = -1;
    if (cohort_yaml_load(&p.y, r->name, buf, len, err) < 0)
        goto out;
    yaml_node_t *root = cohort_yaml_root(&p.y);
    if (!root) {
        cohort_err_set(err, "%s: roster is empty", name);
        goto out;
    }
    static const char *const keys[] = {"!cluster", "!serial", "members", "revoked", "topology"};
    if (s_mapping(&p, root, "roster", keys, 5, s_root_key, r) < 0)
        goto out;
    *out = r;
    r = NULL;
    rc = 0;
out:
    cohort_yaml_fini(&p.y);
    cohort_roster_destroy(&r);
    return rc;
}

int cohort_roster_load(const char *path, cohort_roster_t **out, cohort_err_t *err)
{
    char *buf = NULL;
    size_t len = 0;
    if (cohort_fs_read(path, COHORT_ROSTER_FILE_MAX, &buf, &len, err) < 0)
        return -1;
    int rc = cohort_roster_parse(path, buf, len, out, err);
    free(buf);
    return rc;
}

/* ---- emitting ---- */

static void s_emit_strv(cohort_yemit_t *e, const char *key, char **v, size_t n)
{
    cohort_yemit_str(e, key);
    cohort_yemit_seq_start(e, true);
    for (size_t i = 0; i < n; i++)
        cohort_yemit_str(e, v[i]);
    cohort_yemit_seq_end(e);
}

int cohort_roster_emit(const cohort_roster_t *self, char **out, size_t *len, cohort_err_t *err)
{
    cohort_yemit_t *e = cohort_yemit_new();
    char num[32];
    cohort_yemit_map_start(e);
    cohort_yemit_kv(e, "cluster", self->cluster);
    cohort_yemit_str(e, "serial");
    snprintf(num, sizeof num, "%llu", (unsigned long long)self->serial);
    cohort_yemit_plain(e, num);

    cohort_yemit_str(e, "members");
    cohort_yemit_seq_start(e, false);
    for (size_t i = 0; i < self->member_count; i++) {
        const cohort_member_t *m = &self->members[i];
        cohort_yemit_map_start(e);
        cohort_yemit_kv(e, "name", m->name);
        if (*m->site)
            cohort_yemit_kv(e, "site", m->site);
        cohort_yemit_str(e, "roles");
        cohort_yemit_seq_start(e, true);
        for (size_t r = 0; r < S_ROLE_COUNT; r++)
            if (m->roles & (1u << r))
                cohort_yemit_str(e, s_role_names[r]);
        cohort_yemit_seq_end(e);
        if (m->endpoint_count)
            s_emit_strv(e, "endpoints", m->endpoints, m->endpoint_count);
        cohort_yemit_str(e, "certificate");
        cohort_yemit_literal(e, m->cert_pem);
        cohort_yemit_map_end(e);
    }
    cohort_yemit_seq_end(e);

    cohort_yemit_str(e, "revoked");
    cohort_yemit_seq_start(e, false);
    for (size_t i = 0; i < self->revoked_count; i++) {
        const cohort_revoked_t *rv = &self->revoked[i];
        char hex[COHORT_CERT_FP_HEX_LEN + 1];
        cohort_cert_fp_hex(rv->fingerprint, hex);
        cohort_yemit_map_start(e);
        cohort_yemit_kv(e, "fingerprint", hex);
        if (*rv->name)
            cohort_yemit_kv(e, "name", rv->name);
        if (*rv->reason)
            cohort_yemit_kv(e, "reason", rv->reason);
        cohort_yemit_map_end(e);
    }
    cohort_yemit_seq_end(e);

    cohort_yemit_str(e, "topology");
    cohort_yemit_map_start(e);
    cohort_yemit_str(e, "sites");
    cohort_yemit_seq_start(e, false);
    for (size_t i = 0; i < self->site_count; i++) {
        const cohort_site_t *s = &self->sites[i];
        cohort_yemit_map_start(e);
        cohort_yemit_kv(e, "name", s->name);
        s_emit_strv(e, "relays", s->relays, s->relay_count);
        s_emit_strv(e, "rendezvous", s->rendezvous, s->rendezvous_count);
        cohort_yemit_map_end(e);
    }
    cohort_yemit_seq_end(e);
    cohort_yemit_str(e, "policies");
    cohort_yemit_seq_start(e, false);
    for (size_t i = 0; i < self->policy_count; i++) {
        char *pair[2] = {self->policies[i].never_relay_a, self->policies[i].never_relay_b};
        cohort_yemit_map_start(e);
        s_emit_strv(e, "never_relay_between", pair, 2);
        cohort_yemit_map_end(e);
    }
    cohort_yemit_seq_end(e);
    cohort_yemit_map_end(e);
    cohort_yemit_map_end(e);
    int rc = cohort_yemit_finish(e, out, len, err);
    cohort_yemit_destroy(&e);
    return rc;
}

int cohort_roster_save(const cohort_roster_t *self, const char *path, cohort_err_t *err)
{
    char *buf = NULL;
    size_t len = 0;
    if (cohort_roster_emit(self, &buf, &len, err) < 0)
        return cohort_err_prefix(err, "%s", path);
    int rc = cohort_fs_write_atomic(path, buf, len, 0644, err);
    free(buf);
    return rc;
}

/* ---- checking ---- */

static int s_cmp_name(const void *a, const void *b)
{
    const cohort_member_t *const *x = a, *const *y = b;
    return strcmp((*x)->name, (*y)->name);
}

static int s_cmp_key(const void *a, const void *b)
{
    const cohort_member_t *const *x = a, *const *y = b;
    return memcmp((*x)->info.public_key, (*y)->info.public_key, COHORT_KEY_LEN);
}

static int s_cmp_fp(const void *a, const void *b)
{
    const cohort_member_t *const *x = a, *const *y = b;
    return memcmp((*x)->info.fingerprint, (*y)->info.fingerprint, COHORT_CERT_FP_LEN);
}

/* Sorted neighbours share a name/key/fingerprint: O(n log n) even for
 * thousands of members. */
static void s_check_duplicates(cohort_roster_t *self, cohort_problems_t *problems)
{
    size_t n = self->member_count;
    if (n < 2)
        return;
    const cohort_member_t **v = cohort_calloc(n, sizeof *v);
    struct {
        int (*cmp)(const void *, const void *);
        const char *what;
    } checks[] = {{s_cmp_name, "name"}, {s_cmp_key, "public key"}, {s_cmp_fp, "certificate"}};
    for (size_t c = 0; c < sizeof checks / sizeof checks[0]; c++) {
        for (size_t i = 0; i < n; i++)
            v[i] = &self->members[i];
        qsort(v, n, sizeof *v, checks[c].cmp);
        for (size_t i = 1; i < n; i++) {
            if (checks[c].cmp(&v[i - 1], &v[i]) != 0)
                continue;
            const cohort_member_t *a = v[i - 1] < v[i] ? v[i - 1] : v[i];
            const cohort_member_t *b = v[i - 1] < v[i] ? v[i] : v[i - 1];
            s_problem(problems, true,
                      "%s:%zu:%zu: member '%s': duplicate %s; member '%s' at line %zu has the "
                      "same",
                      self->name, b->line, b->column, b->name, checks[c].what, a->name, a->line);
        }
    }
    free(v);
}

static const cohort_site_t *s_find_site(const cohort_roster_t *self, const char *name)
{
    for (size_t i = 0; i < self->site_count; i++)
        if (!strcmp(self->sites[i].name, name))
            return &self->sites[i];
    return NULL;
}

static bool s_site_known(const cohort_roster_t *self, const char *name)
{
    if (s_find_site(self, name))
        return true;
    for (size_t i = 0; i < self->member_count; i++)
        if (!strcmp(self->members[i].site, name))
            return true;
    return false;
}

static void s_check_servers(cohort_roster_t *self, const cohort_site_t *site, char **names,
                            size_t count, unsigned role, cohort_problems_t *problems)
{
    char roles[64];
    cohort_roles_text(role, roles, sizeof roles);
    for (size_t i = 0; i < count; i++) {
        const cohort_member_t *m = cohort_roster_find(self, names[i]);
        if (!m)
            s_problem(problems, true, "%s: topology site '%s': %s '%s' is not a member", self->name,
                      site->name, roles, names[i]);
        else if (!(m->roles & role))
            s_problem(problems, true,
                      "%s: topology site '%s': member '%s' is listed as %s but lacks that role",
                      self->name, site->name, names[i], roles);
    }
}

static void s_check_topology(cohort_roster_t *self, cohort_problems_t *problems)
{
    for (size_t i = 0; i < self->site_count; i++) {
        const cohort_site_t *s = &self->sites[i];
        for (size_t j = 0; j < i; j++)
            if (!strcmp(self->sites[j].name, s->name))
                s_problem(problems, true, "%s: topology: site '%s' is listed twice", self->name,
                          s->name);
        s_check_servers(self, s, s->relays, s->relay_count, COHORT_ROLE_RELAY, problems);
        s_check_servers(self, s, s->rendezvous, s->rendezvous_count, COHORT_ROLE_RENDEZVOUS,
                        problems);
    }
    /* Once sites are declared, a typo in a member's site must not silently
     * create a new one. */
    if (self->site_count)
        for (size_t i = 0; i < self->member_count; i++) {
            const cohort_member_t *m = &self->members[i];
            if (*m->site && !s_find_site(self, m->site))
                s_problem(problems, true,
                          "%s:%zu:%zu: member '%s': site '%s' is not in topology.sites", self->name,
                          m->line, m->column, m->name, m->site);
        }
    for (size_t i = 0; i < self->policy_count; i++) {
        const cohort_policy_t *pol = &self->policies[i];
        const char *sites[2] = {pol->never_relay_a, pol->never_relay_b};
        for (int k = 0; k < 2; k++)
            if (!s_site_known(self, sites[k]))
                s_problem(problems, true,
                          "%s: topology.policies[%zu]: never_relay_between names unknown site "
                          "'%s'",
                          self->name, i, sites[k]);
    }
}

int cohort_roster_check(cohort_roster_t *self, const cohort_trust_t *trust, time_t now,
                        cohort_problems_t *problems)
{
    self->checked = false;
    size_t fatal_before = problems->fatal_count;
    for (size_t i = 0; i < self->member_count; i++) {
        cohort_member_t *m = &self->members[i];
        cohort_err_t err;
        cohort_err_clear(&err);
        m->trusted = cohort_trust_check_chain(trust, m->cert, &m->not_before, &m->not_after,
                                              &err) == COHORT_TRUST_OK;
        m->revoked = cohort_roster_is_revoked(self, m->info.fingerprint);
        if (!m->trusted) {
            s_problem(problems, true, "%s:%zu:%zu: member '%s': %s", self->name, m->line, m->column,
                      m->name, cohort_err_text(&err));
            continue;
        }
        if (strcmp(m->info.name, m->name) != 0)
            s_problem(problems, true,
                      "%s:%zu:%zu: member '%s': certificate is for '%s' (its CN); the names "
                      "must match",
                      self->name, m->line, m->column, m->name, m->info.name);
        char when[32];
        if (m->revoked)
            s_problem(problems, false,
                      "%s:%zu:%zu: member '%s': certificate %s is revoked; the member will "
                      "not be admitted",
                      self->name, m->line, m->column, m->name, m->info.fingerprint_hex);
        else if (now > m->not_after)
            s_problem(problems, false,
                      "%s:%zu:%zu: member '%s': certificate expired at %s; the member will not "
                      "be admitted",
                      self->name, m->line, m->column, m->name,
                      cohort_cert_time_text(m->not_after, when));
        else if (now < m->not_before)
            s_problem(problems, false,
                      "%s:%zu:%zu: member '%s': certificate is not valid before %s", self->name,
                      m->line, m->column, m->name, cohort_cert_time_text(m->not_before, when));
    }
    s_check_duplicates(self, problems);
    s_check_topology(self, problems);
    if (problems->fatal_count > fatal_before)
        return -1;
    self->checked = true;
    return 0;
}

/* ---- signatures ---- */

int cohort_roster_sign(const char *buf, size_t len, EVP_PKEY *ca_key, X509 *ca_cert, char **out,
                       cohort_err_t *err)
{
    uint8_t sig[COHORT_SIG_LEN];
    if (cohort_trust_sign(ca_key, buf, len, sig, err) < 0)
        return -1;
    if (X509_check_private_key(ca_cert, ca_key) != 1) {
        ERR_clear_error();
        return cohort_err_set(err, "CA key does not match the CA certificate");
    }
    cohort_cert_info_t info;
    cohort_cert_describe(ca_cert, &info);
    unsigned char b64[4 * ((COHORT_SIG_LEN + 2) / 3) + 1];
    EVP_EncodeBlock(b64, sig, COHORT_SIG_LEN);
    *out = cohort_sprintf("# detached signature of the roster file's exact bytes\n"
                          "algorithm: ed25519\nsigner: %s\nsignature: %s\n",
                          info.fingerprint_hex, (char *)b64);
    return 0;
}

typedef struct {
    char *algorithm, *signer, *signature;
} s_sig_t;

static int s_sig_key(s_parser_t *p, void *vctx, int key, yaml_node_t *value)
{
    s_sig_t *s = vctx;
    static const char *const names[] = {"algorithm", "signer", "signature"};
    char **slot = key == 0 ? &s->algorithm : key == 1 ? &s->signer : &s->signature;
    return s_string(p, value, names[key], slot);
}

/* True if signer (the hint a signature file carries) names one of the
 * trusted CAs by fingerprint. */
static bool s_signer_trusted(const char *signer, const cohort_trust_t *trust)
{
    for (size_t i = 0; signer && i < cohort_trust_count(trust); i++) {
        cohort_cert_info_t info;
        cohort_cert_describe(cohort_trust_get(trust, i), &info);
        if (!strcmp(info.fingerprint_hex, signer))
            return true;
    }
    return false;
}

static int s_verify_sig(const char *buf, size_t len, const char *sig_name, const char *sig_text,
                        size_t sig_len, const cohort_trust_t *trust,
                        cohort_roster_verdict_t *verdict, cohort_err_t *err)
{
    s_parser_t p = {.err = err};
    s_sig_t s = {0};
    int rc = -1;
    if (sig_len > COHORT_ROSTER_SIG_FILE_MAX) {
        cohort_err_set(err, "%s: signature file is %zu bytes, over the limit of %d", sig_name,
                       sig_len, COHORT_ROSTER_SIG_FILE_MAX);
        goto out;
    }
    if (cohort_yaml_load(&p.y, sig_name, sig_text, sig_len, err) < 0)
        goto out;
    static const char *const keys[] = {"!algorithm", "signer", "!signature"};
    yaml_node_t *root = cohort_yaml_root(&p.y);
    if (!root) {
        cohort_err_set(err, "%s: signature file is empty", sig_name);
        goto out;
    }
    if (s_mapping(&p, root, "signature file", keys, 3, s_sig_key, &s) < 0)
        goto out;
    if (strcmp(s.algorithm, "ed25519") != 0) {
        cohort_err_set(err, "%s: algorithm: only 'ed25519' is supported, got '%.40s'", sig_name,
                       s.algorithm);
        goto out;
    }
    size_t b64_len = strlen(s.signature);
    unsigned char raw[96];
    if (b64_len != 4 * ((COHORT_SIG_LEN + 2) / 3)) {
        cohort_err_set(err, "%s: signature: expected %d base64 characters, got %zu", sig_name,
                       4 * ((COHORT_SIG_LEN + 2) / 3), b64_len);
        goto out;
    }
    int n = EVP_DecodeBlock(raw, (const unsigned char *)s.signature, (int)b64_len);
    /* DecodeBlock counts the padding as data; 64 bytes end in "==". */
    if (n < 0 || s.signature[b64_len - 1] != '=' || s.signature[b64_len - 2] != '=') {
        cohort_err_set(err, "%s: signature: not valid base64", sig_name);
        goto out;
    }
    if (cohort_trust_verify_sig(trust, buf, len, raw, COHORT_SIG_LEN, err) < 0) {
        /* A signer we do not know explains the failure better than
         * tampering does; the hint decides only which reason is given. */
        if (!s_signer_trusted(s.signer, trust))
            *verdict = COHORT_ROSTER_UNKNOWN_SIGNER;
        if (s.signer)
            cohort_err_prefix(err, "%s: signer %.64s", sig_name, s.signer);
        else
            cohort_err_prefix(err, "%s", sig_name);
        goto out;
    }
    rc = 0;
    *verdict = COHORT_ROSTER_ACCEPTED;
out:
    cohort_yaml_fini(&p.y);
    free(s.algorithm);
    free(s.signer);
    free(s.signature);
    return rc;
}

int cohort_roster_verify_sig(const char *buf, size_t len, const char *sig_name,
                             const char *sig_text, size_t sig_len, const cohort_trust_t *trust,
                             cohort_err_t *err)
{
    cohort_roster_verdict_t verdict = COHORT_ROSTER_BAD_SIGNATURE;
    return s_verify_sig(buf, len, sig_name, sig_text, sig_len, trust, &verdict, err);
}

const char *cohort_roster_verdict_name(cohort_roster_verdict_t verdict)
{
    switch (verdict) {
    case COHORT_ROSTER_ACCEPTED:
        return "accepted";
    case COHORT_ROSTER_TOO_LARGE:
        return "too-large";
    case COHORT_ROSTER_UNSIGNED:
        return "unsigned";
    case COHORT_ROSTER_BAD_SIGNATURE:
        return "bad-signature";
    case COHORT_ROSTER_UNKNOWN_SIGNER:
        return "unknown-signer";
    case COHORT_ROSTER_MALFORMED:
        return "malformed";
    case COHORT_ROSTER_INVALID:
        return "invalid";
    }
    return "unknown";
}

int cohort_roster_accept(const char *name, const char *buf, size_t len, const char *sig_name,
                         const char *sig, size_t sig_len, const cohort_trust_t *trust, time_t now,
                         cohort_roster_t **out, cohort_problems_t *warnings,
                         cohort_roster_verdict_t *verdict, cohort_err_t *err)
{
    cohort_roster_verdict_t why = COHORT_ROSTER_BAD_SIGNATURE;
    cohort_roster_t *r = NULL;
    cohort_problems_t problems = {0};
    int rc = -1;
    if (len > COHORT_ROSTER_FILE_MAX) {
        why = COHORT_ROSTER_TOO_LARGE;
        cohort_err_set(err, "%s: roster is %zu bytes, over the limit of %d", name, len,
                       COHORT_ROSTER_FILE_MAX);
        goto out;
    }
    if (!sig || sig_len == 0) {
        why = COHORT_ROSTER_UNSIGNED;
        cohort_err_set(err, "%s: no signature given; sign it with `cohortctl roster sign`",
                       sig_name);
        goto out;
    }
    /* Signature first: nothing of an unsigned file is trusted, not even its
     * structure. */
    if (s_verify_sig(buf, len, sig_name, sig, sig_len, trust, &why, err) < 0)
        goto out;
    why = COHORT_ROSTER_MALFORMED;
    if (cohort_roster_parse(name, buf, len, &r, err) < 0)
        goto out;
    why = COHORT_ROSTER_INVALID;
    if (cohort_roster_check(r, trust, now, &problems) < 0) {
        for (size_t i = 0; i < problems.count; i++)
            if (problems.items[i].fatal) {
                cohort_err_set(err, "%s", problems.items[i].text);
                break;
            }
        goto out;
    }
    if (warnings) {
        *warnings = problems;
        memset(&problems, 0, sizeof problems);
    }
    why = COHORT_ROSTER_ACCEPTED;
    *out = r;
    r = NULL;
    rc = 0;
out:
    if (verdict)
        *verdict = why;
    cohort_problems_fini(&problems);
    cohort_roster_destroy(&r);
    return rc;
}

int cohort_roster_load_signed(const char *path, const char *sig_path, const cohort_trust_t *trust,
                              time_t now, cohort_roster_t **out, cohort_problems_t *warnings,
                              cohort_err_t *err)
{
    char *buf = NULL, *sig = NULL;
    size_t len = 0, sig_len = 0;
    int rc = -1;
    if (cohort_fs_read(path, COHORT_ROSTER_FILE_MAX, &buf, &len, err) < 0)
        goto out;
    if (cohort_fs_read(sig_path, COHORT_ROSTER_SIG_FILE_MAX, &sig, &sig_len, err) < 0) {
        cohort_err_prefix(err, "roster signature");
        goto out;
    }
    if (sig_len == 0) {
        /* the signature file's parser explains an empty file best */
        cohort_roster_verify_sig(buf, len, sig_path, sig, sig_len, trust, err);
        goto out;
    }
    rc = cohort_roster_accept(path, buf, len, sig_path, sig, sig_len, trust, now, out, warnings,
                              NULL, err);
out:
    free(buf);
    free(sig);
    return rc;
}

/* ---- accessors ---- */

const char *cohort_roster_cluster(const cohort_roster_t *self)
{
    return self->cluster;
}

uint64_t cohort_roster_serial(const cohort_roster_t *self)
{
    return self->serial;
}

size_t cohort_roster_member_count(const cohort_roster_t *self)
{
    return self->member_count;
}

const cohort_member_t *cohort_roster_member(const cohort_roster_t *self, size_t index)
{
    assert(index < self->member_count);
    return &self->members[index];
}

const cohort_member_t *cohort_roster_find(const cohort_roster_t *self, const char *name)
{
    for (size_t i = 0; i < self->member_count; i++)
        if (!strcmp(self->members[i].name, name))
            return &self->members[i];
    return NULL;
}

size_t cohort_roster_revoked_count(const cohort_roster_t *self)
{
    return self->revoked_count;
}

const cohort_revoked_t *cohort_roster_revoked(const cohort_roster_t *self, size_t index)
{
    assert(index < self->revoked_count);
    return &self->revoked[index];
}

bool cohort_roster_is_revoked(const cohort_roster_t *self, const uint8_t fp[COHORT_CERT_FP_LEN])
{
    for (size_t i = 0; i < self->revoked_count; i++)
        if (!memcmp(self->revoked[i].fingerprint, fp, COHORT_CERT_FP_LEN))
            return true;
    return false;
}

size_t cohort_roster_site_count(const cohort_roster_t *self)
{
    return self->site_count;
}

const cohort_site_t *cohort_roster_site(const cohort_roster_t *self, size_t index)
{
    assert(index < self->site_count);
    return &self->sites[index];
}

size_t cohort_roster_policy_count(const cohort_roster_t *self)
{
    return self->policy_count;
}

const cohort_policy_t *cohort_roster_policy(const cohort_roster_t *self, size_t index)
{
    assert(index < self->policy_count);
    return &self->policies[index];
}

bool cohort_roster_is_checked(const cohort_roster_t *self)
{
    return self->checked;
}

/* ---- admission ---- */

const char *cohort_admit_name(cohort_admit_t result)
{
    switch (result) {
    case COHORT_ADMIT_OK:
        return "ok";
    case COHORT_ADMIT_UNKNOWN:
        return "unknown-key";
    case COHORT_ADMIT_REVOKED:
        return "revoked";
    case COHORT_ADMIT_EXPIRED:
        return "expired";
    case COHORT_ADMIT_NOT_YET_VALID:
        return "not-yet-valid";
    case COHORT_ADMIT_UNTRUSTED:
        return "untrusted";
    }
    return "unknown";
}

cohort_admit_t cohort_roster_member_admit(const cohort_member_t *m, time_t now)
{
    if (!m->trusted)
        return COHORT_ADMIT_UNTRUSTED;
    if (m->revoked)
        return COHORT_ADMIT_REVOKED;
    if (now < m->not_before)
        return COHORT_ADMIT_NOT_YET_VALID;
    if (now > m->not_after)
        return COHORT_ADMIT_EXPIRED;
    return COHORT_ADMIT_OK;
}

cohort_admit_t cohort_roster_admit(const cohort_roster_t *self, const uint8_t key[COHORT_KEY_LEN],
                                   time_t now, const cohort_member_t **member)
{
    assert(self->checked);
    if (member)
        *member = NULL;
    for (size_t i = 0; i < self->member_count; i++) {
        const cohort_member_t *m = &self->members[i];
        if (memcmp(m->info.public_key, key, COHORT_KEY_LEN) != 0)
            continue;
        if (member)
            *member = m;
        return cohort_roster_member_admit(m, now);
    }
    return COHORT_ADMIT_UNKNOWN;
}

/* ---- editing ---- */

static void s_changed(cohort_roster_t *self)
{
    self->serial++;
    self->checked = false;
}

static cohort_member_t *s_find_mut(cohort_roster_t *self, const char *name, cohort_err_t *err)
{
    for (size_t i = 0; i < self->member_count; i++)
        if (!strcmp(self->members[i].name, name))
            return &self->members[i];
    cohort_err_set(err, "no member named '%.64s' in cluster '%s'", name, self->cluster);
    return NULL;
}

static int s_check_endpoints(const char *const *endpoints, size_t count, cohort_err_t *err)
{
    if (count > COHORT_ROSTER_MAX_ENDPOINTS)
        return cohort_err_set(err, "endpoints: at most %d, got %zu", COHORT_ROSTER_MAX_ENDPOINTS,
                              count);
    for (size_t i = 0; i < count; i++)
        if (!cohort_endpoint_valid(endpoints[i])) {
            char q[160];
            return cohort_err_set(
                err, "endpoint: must be tcp://HOST:PORT, got %s",
                cohort_err_quote(q, sizeof q, endpoints[i], strlen(endpoints[i])));
        }
    return 0;
}

static char **s_strv_dup(const char *const *v, size_t n)
{
    char **out = cohort_calloc(n + 1, sizeof *out);
    for (size_t i = 0; i < n; i++)
        out[i] = cohort_strdup(v[i]);
    return out;
}

int cohort_roster_add(cohort_roster_t *self, const char *name, X509 *cert, unsigned roles,
                      const char *site, const char *const *endpoints, size_t endpoint_count,
                      cohort_err_t *err)
{
    if (!cohort_cert_name_valid(name))
        return cohort_err_set(err,
                              "name: must be 1..63 characters of A-Z a-z 0-9 . _ - "
                              "starting with a letter or digit, got '%.80s'",
                              name);
    if (site && *site && !cohort_cert_name_valid(site))
        return cohort_err_set(err,
                              "site: must be 1..63 characters of A-Z a-z 0-9 . _ -, got "
                              "'%.80s'",
                              site);
    if (s_check_endpoints(endpoints, endpoint_count, err) < 0)
        return -1;
    if (self->member_count >= COHORT_ROSTER_MAX_MEMBERS)
        return cohort_err_set(err, "roster already has %d members", COHORT_ROSTER_MAX_MEMBERS);
    cohort_cert_info_t info;
    cohort_cert_describe(cert, &info);
    if (strcmp(info.name, name) != 0)
        return cohort_err_set(err, "certificate is for '%s' (its CN), not '%s'", info.name, name);
    if (!info.key_is_x25519)
        return cohort_err_set(err, "certificate holds a key of type %s; node keys must be X25519",
                              info.key_type);
    if (cohort_roster_is_revoked(self, info.fingerprint))
        return cohort_err_set(err, "certificate %s is revoked; issue a new one",
                              info.fingerprint_hex);
    for (size_t i = 0; i < self->member_count; i++) {
        const cohort_member_t *m = &self->members[i];
        if (!strcmp(m->name, name))
            return cohort_err_set(err, "member '%s' already exists", name);
        if (!memcmp(m->info.public_key, info.public_key, COHORT_KEY_LEN))
            return cohort_err_set(err, "member '%s' already has this public key", m->name);
    }
    self->members = cohort_realloc(self->members, (self->member_count + 1) * sizeof *self->members);
    cohort_member_t *m = &self->members[self->member_count++];
    memset(m, 0, sizeof *m);
    m->name = cohort_strdup(name);
    m->site = cohort_strdup(site ? site : "");
    m->roles = roles;
    m->endpoints = s_strv_dup(endpoints, endpoint_count);
    m->endpoint_count = endpoint_count;
    X509_up_ref(cert);
    m->cert = cert;
    m->cert_pem = cohort_cert_to_pem(cert);
    m->info = info;
    s_changed(self);
    return 0;
}

int cohort_roster_remove(cohort_roster_t *self, const char *name, cohort_err_t *err)
{
    cohort_member_t *m = s_find_mut(self, name, err);
    if (!m)
        return -1;
    size_t i = (size_t)(m - self->members);
    s_member_fini(m);
    memmove(m, m + 1, (self->member_count - i - 1) * sizeof *m);
    self->member_count--;
    s_changed(self);
    return 0;
}

int cohort_roster_revoke(cohort_roster_t *self, const char *name_or_fp, const char *reason,
                         cohort_err_t *err)
{
    uint8_t fp[COHORT_CERT_FP_LEN];
    const char *name = "";
    const cohort_member_t *m = cohort_roster_find(self, name_or_fp);
    if (m) {
        memcpy(fp, m->info.fingerprint, sizeof fp);
        name = m->name;
    } else if (!cohort_cert_fp_parse(name_or_fp, fp)) {
        return cohort_err_set(err, "'%.80s' is neither a member name nor a SHA-256 fingerprint",
                              name_or_fp);
    } else {
        for (size_t i = 0; i < self->member_count; i++)
            if (!memcmp(self->members[i].info.fingerprint, fp, sizeof fp))
                m = &self->members[i];
        if (m)
            name = m->name;
    }
    if (cohort_roster_is_revoked(self, fp))
        return cohort_err_set(err, "certificate is already revoked");
    self->revoked =
        cohort_realloc(self->revoked, (self->revoked_count + 1) * sizeof *self->revoked);
    cohort_revoked_t *rv = &self->revoked[self->revoked_count++];
    memcpy(rv->fingerprint, fp, sizeof fp);
    rv->name = cohort_strdup(name);
    rv->reason = cohort_strdup(reason ? reason : "");
    if (m) {
        /* remove() bumps the serial; the revocation is part of the same change. */
        char *copy = cohort_strdup(m->name);
        cohort_roster_remove(self, copy, NULL);
        free(copy);
        self->serial--;
    }
    s_changed(self);
    return 0;
}

int cohort_roster_set_roles(cohort_roster_t *self, const char *name, unsigned roles,
                            cohort_err_t *err)
{
    cohort_member_t *m = s_find_mut(self, name, err);
    if (!m)
        return -1;
    m->roles = roles;
    s_changed(self);
    return 0;
}

int cohort_roster_set_site(cohort_roster_t *self, const char *name, const char *site,
                           cohort_err_t *err)
{
    if (*site && !cohort_cert_name_valid(site))
        return cohort_err_set(err,
                              "site: must be 1..63 characters of A-Z a-z 0-9 . _ -, got "
                              "'%.80s'",
                              site);
    cohort_member_t *m = s_find_mut(self, name, err);
    if (!m)
        return -1;
    free(m->site);
    m->site = cohort_strdup(site);
    s_changed(self);
    return 0;
}

int cohort_roster_set_endpoints(cohort_roster_t *self, const char *name,
                                const char *const *endpoints, size_t count, cohort_err_t *err)
{
    if (s_check_endpoints(endpoints, count, err) < 0)
        return -1;
    cohort_member_t *m = s_find_mut(self, name, err);
    if (!m)
        return -1;
    s_strv_free(m->endpoints, m->endpoint_count);
    m->endpoints = s_strv_dup(endpoints, count);
    m->endpoint_count = count;
    s_changed(self);
    return 0;
}
