/*
 * cohortd: the node daemon. main() parses arguments and wires modules
 * together; everything else lives in the core library and in run.c.
 *
 * `cohortd -c FILE` runs the node with its local API until SIGTERM
 * (daemon/run.h). `cohortd --check-config -c FILE` loads the node config
 * and the whole identity (key, certificate, trust, roster), prints the
 * effective config as YAML that cohortd reads back, and exits non-zero
 * naming the first problem.
 */
#include "config/config.h"
#include "daemon/run.h"
#include "node/identity.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static void s_usage(FILE *out)
{
    fprintf(out, "usage: cohortd -c node.yaml\n"
                 "       cohortd --check-config -c node.yaml\n");
}

static int s_check_config(const char *path)
{
    cohort_err_t err;
    cohort_err_clear(&err);
    cohort_config_t *cfg = NULL;
    cohort_identity_t *id = NULL;
    char *yaml = NULL;
    size_t len = 0;
    int rc = 1;
    if (cohort_config_load(path, &cfg, &err) < 0 ||
        cohort_identity_open(cfg, time(NULL), &id, &err) < 0 ||
        cohort_config_emit(cfg, &yaml, &len, &err) < 0) {
        fprintf(stderr, "cohortd: %s\n", cohort_err_text(&err));
        goto out;
    }
    for (size_t i = 0; i < id->warnings.count; i++)
        fprintf(stderr, "cohortd: warning: %s\n", id->warnings.items[i].text);
    if (id->configured_serial < cohort_roster_serial(id->roster))
        fprintf(stderr,
                "cohortd: note: %s: serial %llu is older than the roster held in %s (serial "
                "%llu), which the node uses; a node never goes back to an older roster\n",
                cfg->roster, (unsigned long long)id->configured_serial, id->roster_path,
                (unsigned long long)cohort_roster_serial(id->roster));
    fwrite(yaml, 1, len, stdout);
    fprintf(stderr,
            "cohortd: %s: ok: node '%s' is an admitted member of cluster '%s' (roster serial "
            "%llu, %zu member(s))\n",
            path, cfg->node_name, cohort_roster_cluster(id->roster),
            (unsigned long long)cohort_roster_serial(id->roster),
            cohort_roster_member_count(id->roster));
    rc = 0;
out:
    free(yaml);
    cohort_identity_destroy(&id);
    cohort_config_destroy(&cfg);
    return rc;
}

int main(int argc, char **argv)
{
    const char *config = NULL;
    int check = 0;
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                         {"check-config", no_argument, NULL, 't'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "c:th", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            config = optarg;
            break;
        case 't':
            check = 1;
            break;
        case 'h':
            s_usage(stdout);
            return 0;
        default:
            s_usage(stderr);
            return 2;
        }
    }
    if (!config || optind != argc) {
        s_usage(stderr);
        return 2;
    }
    if (check)
        return s_check_config(config);
    return cohort_daemon_run(config);
}
