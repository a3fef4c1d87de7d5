/*
 * cluster: a throwaway cluster for tests: a CA, node keys and certificates,
 * a signed roster and node configs in a temp dir, nodes started in-process
 * through libcohort. Extra roster members can be made that no node runs:
 * an admitted "rogue" whose key the test holds (to play a hostile peer with
 * a real CURVE socket), an expired one and a revoked one. A member may get
 * extra node config sections, and the roster a topology (sites, policies).
 */
#ifndef COHORT_TEST_CLUSTER_H
#define COHORT_TEST_CLUSTER_H

#include "api.pb-c.h"
#include "cohort.h"
#include "pki/cert.h"
#include "pki/key.h"

#include <stdbool.h>
#include <stdint.h>

#define CLUSTER_MAX 8
/* endpoint_port value: a port the cluster holds for its whole life and
 * nobody listens on, so the member's roster endpoint is unreachable. */
#define CLUSTER_DEAD_PORT (-1)

typedef struct {
    const char *name;
    const char *site;
    bool run;           /* start a node for it */
    bool expired;       /* its certificate expired an hour ago */
    bool revoked;       /* listed, but its fingerprint is revoked */
    int endpoint_port;  /* roster endpoint port; 0: its listen port */
    unsigned roles;     /* cohort_role_t bits */
    const char *config; /* extra YAML sections for its node config, or NULL */
} cluster_member_t;

typedef struct {
    char *dir;
    int count;
    cluster_member_t members[CLUSTER_MAX];
    int ports[CLUSTER_MAX];
    uint8_t pub[CLUSTER_MAX][COHORT_KEY_LEN];
    uint8_t sec[CLUSTER_MAX][COHORT_KEY_LEN];
    cohort_t *nodes[CLUSTER_MAX];
    int reserved[2 * CLUSTER_MAX]; /* sockets holding the ports above */
    int reserved_count;
} cluster_t;

/* A free TCP port on 127.0.0.1 (bound and released). */
int cluster_free_port(void);
/* Writes everything and starts the members with run = true; ports[i] is the
 * listen port of member i. The cluster holds its ports until destroyed (a
 * bound socket that does not listen), so no outgoing connection takes one
 * as its source port before the node that owns it is listening. Fails the
 * test on any error. Caller frees with cluster_destroy. */
cluster_t *cluster_new(const cluster_member_t *members, int count);
/* The same, with the roster's topology section replaced by topology (YAML
 * text starting with "topology:", e.g. policies naming the members' sites);
 * NULL keeps the empty one. The CA signs the result as usual. */
cluster_t *cluster_new_with_topology(const cluster_member_t *members, int count,
                                     const char *topology);
void cluster_destroy(cluster_t **self_p);
/* Waits until every running node saw every other running node up. */
void cluster_wait_up(cluster_t *c, int timeout_ms);
/* The next non-event message on node i, or NULL after ms. */
cohort_msg_t *cluster_next(cluster_t *c, int i, int ms);
/* Z85 text of member i's keys, for hand-made CURVE sockets. */
void cluster_z85(const cluster_t *c, int i, char pub[41], char sec[41]);
/* Installs a debug log sink if COHORT_TEST_LOG is set. */
void cluster_log_from_env(void);
/* node's answer to cohort_info(node, what), decoded; the caller frees it
 * with cohort__api__response__free_unpacked. Fails the test if it fails. */
Cohort__Api__Response *cluster_info(cohort_t *node, const char *what);
/* node's counters (from its status); the caller frees them with
 * cohort__api__counters__free_unpacked. Fails the test if status fails. */
Cohort__Api__Counters *cluster_counters(cohort_t *node);

/* Roster changes. The CA key is kept in the cluster's directory (ca.key). */
/* The roster cluster_new wrote (roster.yaml). Caller frees. */
char *cluster_roster_text(const cluster_t *c, size_t *len);
/* The cluster CA's signature file text over text. Caller frees. */
char *cluster_sign(const cluster_t *c, const char *text, size_t len);
/* Member i's certificate. Caller frees (X509_free). */
X509 *cluster_cert(const cluster_t *c, int i);
/* A new member no node runs yet and no roster lists: key, certificate
 * from the cluster CA, a free port, and a node config whose trust.roster is
 * roster_file (relative to the cluster's directory). Returns its index. */
int cluster_add_member(cluster_t *c, const cluster_member_t *m, const char *roster_file);
/* Starts member i's node (not running); stops it (it leaves gracefully). */
void cluster_start(cluster_t *c, int i);
void cluster_stop(cluster_t *c, int i);

#endif
