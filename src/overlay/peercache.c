/*
 * peercache: the bootstrap cache file (see peercache.h).
 */
#include "overlay/peercache.h"

#include "util/fs.h"
#include "util/mem.h"
#include "util/yamldoc.h"

#include <stdlib.h>
#include <string.h>

void cohort_peercache_init(cohort_peercache_t *pc, const char *cluster)
{
    memset(pc, 0, sizeof *pc);
    pc->cluster = cohort_strdup(cluster ? cluster : "");
}

static void s_entry_fini(cohort_peercache_entry_t *e)
{
    free(e->name);
    for (size_t i = 0; i < e->endpoint_count; i++)
        free(e->endpoints[i]);
    memset(e, 0, sizeof *e);
}

void cohort_peercache_fini(cohort_peercache_t *pc)
{
    for (size_t i = 0; i < pc->count; i++)
        s_entry_fini(&pc->peers[i]);
    free(pc->peers);
    free(pc->cluster);
    memset(pc, 0, sizeof *pc);
}

bool cohort_peercache_endpoint_ok(const char *text)
{
    if (!text || strncmp(text, "tcp://", 6) || strlen(text) > COHORT_PEERCACHE_ENDPOINT_MAX)
        return false;
    const char *host = text + 6, *colon = strrchr(host, ':');
    if (!colon || colon == host)
        return false;
    for (const char *c = host; c < colon; c++)
        if (*c <= ' ' || *c == '/' || *c == 0x7f)
            return false;
    char *end = NULL;
    long port = strtol(colon + 1, &end, 10);
    return colon[1] >= '0' && colon[1] <= '9' && end && !*end && port >= 1 && port <= 65535;
}

static cohort_peercache_entry_t *s_find(const cohort_peercache_t *pc, const char *name)
{
    for (size_t i = 0; i < pc->count; i++)
        if (!strcmp(pc->peers[i].name, name))
            return &pc->peers[i];
    return NULL;
}

const cohort_peercache_entry_t *cohort_peercache_get(const cohort_peercache_t *pc, const char *name)
{
    return s_find(pc, name);
}

size_t cohort_peercache_put(cohort_peercache_t *pc, const char *name, const char *const *endpoints,
                            size_t count)
{
    cohort_peercache_entry_t *e = s_find(pc, name);
    if (e) {
        for (size_t i = 0; i < e->endpoint_count; i++)
            free(e->endpoints[i]);
        e->endpoint_count = 0;
    } else {
        if (pc->count == COHORT_PEERCACHE_MAX_PEERS)
            return 0;
        pc->peers = cohort_realloc(pc->peers, (pc->count + 1) * sizeof *pc->peers);
        e = &pc->peers[pc->count++];
        memset(e, 0, sizeof *e);
        e->name = cohort_strdup(name);
    }
    for (size_t i = 0; i < count && e->endpoint_count < COHORT_PEERCACHE_MAX_ENDPOINTS; i++) {
        if (!cohort_peercache_endpoint_ok(endpoints[i]))
            continue;
        bool dup = false;
        for (size_t k = 0; k < e->endpoint_count && !dup; k++)
            dup = !strcmp(e->endpoints[k], endpoints[i]);
        if (!dup)
            e->endpoints[e->endpoint_count++] = cohort_strdup(endpoints[i]);
    }
    return e->endpoint_count;
}

/* One `- name: ..., endpoints: [...]` item. */
static int s_load_peer(cohort_yaml_t *y, yaml_node_t *item, cohort_peercache_t *pc,
                       cohort_err_t *err)
{
    if (item->type != YAML_MAPPING_NODE)
        return cohort_yaml_fail(y, item, err, "peers: each item must be a mapping, got %s",
                                cohort_yaml_kind(item));
    const char *name = NULL;
    yaml_node_t *eps = NULL;
    for (yaml_node_pair_t *pr = item->data.mapping.pairs.start; pr < item->data.mapping.pairs.top;
         pr++) {
        yaml_node_t *k = cohort_yaml_at(y, pr->key), *v = cohort_yaml_at(y, pr->value);
        const char *key = cohort_yaml_scalar(k);
        if (key && !strcmp(key, "name")) {
            name = cohort_yaml_scalar(v);
            if (!name || !*name || strlen(name) > 63)
                return cohort_yaml_fail(y, v, err, "peers.name: must be a member name");
        } else if (key && !strcmp(key, "endpoints")) {
            if (v->type != YAML_SEQUENCE_NODE)
                return cohort_yaml_fail(y, v, err, "peers.endpoints: must be a list, got %s",
                                        cohort_yaml_kind(v));
            eps = v;
        } else {
            char q[80];
            return cohort_yaml_fail(y, k, err, "peers: unknown key %s",
                                    cohort_yaml_quote(k, q, sizeof q));
        }
    }
    if (!name)
        return cohort_yaml_fail(y, item, err, "peers: an item has no name");
    if (cohort_peercache_get(pc, name))
        return cohort_yaml_fail(y, item, err, "peers: '%s' is listed twice", name);
    const char *list[COHORT_PEERCACHE_MAX_ENDPOINTS];
    size_t n = 0;
    if (eps) {
        for (yaml_node_item_t *it = eps->data.sequence.items.start;
             it < eps->data.sequence.items.top; it++) {
            yaml_node_t *v = cohort_yaml_at(y, *it);
            const char *ep = cohort_yaml_scalar(v);
            if (!cohort_peercache_endpoint_ok(ep)) {
                char q[300];
                return cohort_yaml_fail(y, v, err,
                                        "peers.endpoints: must be tcp://HOST:PORT, got %s",
                                        cohort_yaml_quote(v, q, sizeof q));
            }
            if (n == COHORT_PEERCACHE_MAX_ENDPOINTS)
                return cohort_yaml_fail(y, v, err, "peers.endpoints: more than %d",
                                        COHORT_PEERCACHE_MAX_ENDPOINTS);
            list[n++] = ep;
        }
    }
    if (pc->count == COHORT_PEERCACHE_MAX_PEERS)
        return cohort_yaml_fail(y, item, err, "peers: more than %d", COHORT_PEERCACHE_MAX_PEERS);
    cohort_peercache_put(pc, name, list, n);
    return 0;
}

static int s_load_doc(cohort_yaml_t *y, const char *cluster, cohort_peercache_t *pc,
                      cohort_err_t *err)
{
    yaml_node_t *root = cohort_yaml_root(y);
    if (!root)
        return 0; /* empty file: empty cache */
    if (root->type != YAML_MAPPING_NODE)
        return cohort_yaml_fail(y, root, err, "must be a mapping, got %s", cohort_yaml_kind(root));
    for (yaml_node_pair_t *pr = root->data.mapping.pairs.start; pr < root->data.mapping.pairs.top;
         pr++) {
        yaml_node_t *k = cohort_yaml_at(y, pr->key), *v = cohort_yaml_at(y, pr->value);
        const char *key = cohort_yaml_scalar(k);
        if (key && !strcmp(key, "cluster")) {
            const char *c = cohort_yaml_scalar(v);
            if (!c || strcmp(c, cluster))
                return cohort_yaml_fail(y, v, err,
                                        "cluster: the cache is of cluster '%s', not '%s'",
                                        c ? c : "?", cluster);
        } else if (key && !strcmp(key, "peers")) {
            if (cohort_yaml_is_null(v))
                continue;
            if (v->type != YAML_SEQUENCE_NODE)
                return cohort_yaml_fail(y, v, err, "peers: must be a list, got %s",
                                        cohort_yaml_kind(v));
            for (yaml_node_item_t *it = v->data.sequence.items.start;
                 it < v->data.sequence.items.top; it++)
                if (s_load_peer(y, cohort_yaml_at(y, *it), pc, err) < 0)
                    return -1;
        } else {
            char q[80];
            return cohort_yaml_fail(y, k, err, "unknown key %s", cohort_yaml_quote(k, q, sizeof q));
        }
    }
    return 0;
}

int cohort_peercache_parse(const char *name, const char *buf, size_t len, const char *cluster,
                           cohort_peercache_t *pc, cohort_err_t *err)
{
    cohort_peercache_init(pc, cluster);
    cohort_yaml_t y;
    int rc = cohort_yaml_load(&y, name, buf, len, err);
    if (rc == 0)
        rc = s_load_doc(&y, cluster, pc, err);
    cohort_yaml_fini(&y);
    if (rc < 0) {
        cohort_peercache_fini(pc);
        cohort_peercache_init(pc, cluster);
    }
    return rc;
}

int cohort_peercache_load(const char *path, const char *cluster, cohort_peercache_t *pc,
                          bool *missing, cohort_err_t *err)
{
    cohort_peercache_init(pc, cluster);
    if (missing)
        *missing = false;
    if (!cohort_fs_exists(path)) {
        if (missing)
            *missing = true;
        return 0;
    }
    char *buf = NULL;
    size_t len = 0;
    if (cohort_fs_read(path, COHORT_PEERCACHE_MAX_BYTES, &buf, &len, err) < 0)
        return -1;
    cohort_peercache_fini(pc);
    int rc = cohort_peercache_parse(path, buf, len, cluster, pc, err);
    free(buf);
    return rc;
}

int cohort_peercache_emit(const cohort_peercache_t *pc, char **out, size_t *len, cohort_err_t *err)
{
    cohort_yemit_t *e = cohort_yemit_new();
    cohort_yemit_map_start(e);
    cohort_yemit_kv(e, "cluster", pc->cluster);
    cohort_yemit_str(e, "peers");
    cohort_yemit_seq_start(e, false);
    for (size_t i = 0; i < pc->count; i++) {
        const cohort_peercache_entry_t *p = &pc->peers[i];
        cohort_yemit_map_start(e);
        cohort_yemit_kv(e, "name", p->name);
        cohort_yemit_str(e, "endpoints");
        cohort_yemit_seq_start(e, true);
        for (size_t k = 0; k < p->endpoint_count; k++)
            cohort_yemit_str(e, p->endpoints[k]);
        cohort_yemit_seq_end(e);
        cohort_yemit_map_end(e);
    }
    cohort_yemit_seq_end(e);
    cohort_yemit_map_end(e);
    char *text = NULL;
    size_t text_len = 0;
    int rc = cohort_yemit_finish(e, &text, &text_len, err);
    cohort_yemit_destroy(&e);
    if (rc < 0)
        return -1;
    static const char head[] = "# cohortd bootstrap cache: last known endpoints of peers. "
                               "Rewritten by cohortd; safe to delete.\n";
    char *all = cohort_malloc(sizeof head + text_len);
    memcpy(all, head, sizeof head - 1);
    memcpy(all + sizeof head - 1, text, text_len);
    all[sizeof head - 1 + text_len] = '\0';
    free(text);
    *out = all;
    *len = sizeof head - 1 + text_len;
    return 0;
}

int cohort_peercache_save(const char *path, const cohort_peercache_t *pc, cohort_err_t *err)
{
    char *text = NULL;
    size_t len = 0;
    if (cohort_peercache_emit(pc, &text, &len, err) < 0)
        return -1;
    int rc = cohort_fs_write_atomic(path, text, len, 0644, err);
    free(text);
    return rc;
}
