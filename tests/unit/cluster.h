/*
 * cluster: a throwaway cluster for tests: a CA, node keys and certificates,
 * a signed roster and node configs in a temp dir, nodes started in-process
 * through libcohort. Extra roster members can be made that no node runs:
 * an admitted "rogue" whose key the test holds (to play a hostile peer with
 * a real CURVE socket), an expired one and a revoked one.
 */
#ifndef COHORT_TEST_CLUSTER_H
#define COHORT_TEST_CLUSTER_H

#include "cohort.h"
#include "pki/key.h"

#include <stdbool.h>
#include <stdint.h>

#define CLUSTER_MAX 8

typedef struct {
    const char *name;
    const char *site;
    bool run;          /* start a node for it */
    bool expired;      /* its certificate expired an hour ago */
    bool revoked;      /* listed, but its fingerprint is revoked */
    int endpoint_port; /* roster endpoint port; 0 = its listen port */
    unsigned roles;    /* cohort_role_t bits */
} cluster_member_t;

typedef struct {
    char *dir;
    int count;
    cluster_member_t members[CLUSTER_MAX];
    int ports[CLUSTER_MAX];
    uint8_t pub[CLUSTER_MAX][COHORT_KEY_LEN];
    uint8_t sec[CLUSTER_MAX][COHORT_KEY_LEN];
    cohort_t *nodes[CLUSTER_MAX];
} cluster_t;

/* A free TCP port on 127.0.0.1 (bound and released). */
int cluster_free_port(void);
/* Writes everything and starts the members with run = true; ports[i] is the
 * listen port of member i. Fails the test on any error. Caller frees with
 * cluster_destroy. */
cluster_t *cluster_new(const cluster_member_t *members, int count);
void cluster_destroy(cluster_t **self_p);
/* Waits until every running node saw every other running node up. */
void cluster_wait_up(cluster_t *c, int timeout_ms);
/* The next non-event message on node i, or NULL after ms. */
cohort_msg_t *cluster_next(cluster_t *c, int i, int ms);
/* Z85 text of member i's keys, for hand-made CURVE sockets. */
void cluster_z85(const cluster_t *c, int i, char pub[41], char sec[41]);
/* Installs a debug log sink if COHORT_TEST_LOG is set. */
void cluster_log_from_env(void);

#endif
