/*
 * run: cohortd's run mode. See run.h.
 *
 * Signals are blocked in every thread and read from a signalfd on the main
 * loop, so no handler runs in signal context and CZMQ never sees them
 * (zsys_handler_set(NULL) keeps it from installing its own, which would
 * make zloop stop on SIGINT by itself).
 */
#include "daemon/run.h"
#include "api/server.h"
#include "cohort.h"
#include "config/config.h"
#include "daemon/metrics.h"
#include "roster/roster.h"
#include "util/fs.h"
#include "util/log.h"
#include "util/logline.h"
#include "util/mem.h"

#include <czmq.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

typedef struct {
    const char *path;
    cohort_config_t *cfg; /* the running config (reloadable keys updated on reload) */
    cohort_t *node;
    cohort_api_server_t *api;
    cohort_metrics_t *metrics; /* NULL when metrics.address is empty */
    int stop_signal;           /* set when the loop ends for SIGTERM / SIGINT */
} s_daemon_t;

/* ---- the log sink ---- */

static atomic_int s_log_format = COHORT_LOGLINE_TEXT;

/* Any cohort thread may call this: one write(2) per line keeps lines whole. */
static void s_sink(void *arg, cohort_log_level_t level, const char *line)
{
    (void)arg;
    char buf[COHORT_LOGLINE_MAX];
    size_t n =
        cohort_logline_format(buf, sizeof buf, (cohort_logline_format_t)atomic_load(&s_log_format),
                              zclock_time(), level, line);
    ssize_t w = write(STDERR_FILENO, buf, n);
    (void)w; /* nowhere to report a failing stderr */
}

/* First call installs the sink; later ones (reload) only change the
 * format and level, both atomics, while other threads may be logging. */
static void s_apply_log(const cohort_config_t *cfg, bool first)
{
    atomic_store(&s_log_format, cfg->log_format == COHORT_CONFIG_LOG_JSON ? COHORT_LOGLINE_JSON
                                                                          : COHORT_LOGLINE_TEXT);
    if (first)
        cohort_log_set_sink(s_sink, NULL, (cohort_log_level_t)cfg->log_level);
    else
        cohort_log_set_level((cohort_log_level_t)cfg->log_level);
}

/* ---- reload ---- */

/* Re-reads the roster file cfg names and hands it to the node, which
 * applies it only when its serial is higher than the one held (a file not
 * newer is no news; an invalid one leaves the node as it was). */
static void s_reload_roster(s_daemon_t *d, const cohort_config_t *cfg)
{
    cohort_err_t err;
    cohort_err_clear(&err);
    char *roster = NULL, *sig = NULL;
    size_t len = 0, sig_len = 0;
    cohort_roster_result_t res;
    memset(&res, 0, sizeof res);
    if (cohort_fs_read(cfg->roster, COHORT_ROSTER_FILE_MAX, &roster, &len, &err) < 0 ||
        cohort_fs_read(cfg->roster_sig, COHORT_ROSTER_SIG_FILE_MAX, &sig, &sig_len, &err) < 0) {
        COHORT_LOG(COHORT_LOG_ERROR,
                   "roster.reload.failed reason=unreadable error=\"%s\" kept=held",
                   cohort_err_text(&err));
        goto out;
    }
    cohort_status_t st =
        cohort_roster_push(d->node, COHORT_ROSTER_FILE, roster, len, sig, sig_len, &res);
    if (st == COHORT_OK)
        COHORT_LOG(COHORT_LOG_INFO, "roster.reload outcome=applied serial=%" PRIu64 " file=%s",
                   res.serial, cfg->roster);
    else if (!strcmp(res.reason, "same-serial") || !strcmp(res.reason, "older-serial"))
        COHORT_LOG(COHORT_LOG_INFO,
                   "roster.reload outcome=unchanged serial=%" PRIu64 " reason=%s file=%s",
                   res.serial, res.reason, cfg->roster);
    else
        COHORT_LOG(COHORT_LOG_ERROR,
                   "roster.reload.failed reason=%s serial=%" PRIu64 " kept=held error=\"%s\"",
                   res.reason, res.serial, res.error);
out:
    free(roster);
    free(sig);
}

/* Re-reads the config; when it loads, hands it to the node, which checks
 * it again and puts every reloadable key in force, then applies what the
 * daemon itself holds (log keys, the API's limits) and re-reads the roster
 * file. Changed keys that need a restart are named, not pretended. A file
 * that does not load changes nothing, but the roster file the running
 * config names is still re-read. */
static void s_reload(s_daemon_t *d)
{
    cohort_err_t err;
    cohort_err_clear(&err);
    cohort_config_t *fresh = NULL;
    cohort_reload_result_t res;
    memset(&res, 0, sizeof res);
    if (cohort_config_load(d->path, &fresh, &err) < 0) {
        COHORT_LOG(COHORT_LOG_ERROR, "config.reload.failed error=\"%s\" running=previous",
                   cohort_err_text(&err));
        s_reload_roster(d, d->cfg);
        return;
    }
    if (cohort_reload(d->node, d->path, &res) != COHORT_OK) {
        /* Only if the file changed again between the two reads. */
        COHORT_LOG(COHORT_LOG_ERROR, "config.reload.failed error=\"%s\" running=previous",
                   res.error);
        cohort_config_destroy(&fresh);
        s_reload_roster(d, d->cfg);
        return;
    }
    cohort_config_apply_reloadable(d->cfg, fresh, NULL, 0);
    s_apply_log(d->cfg, false);
    cohort_api_server_set_limits(d->api, d->cfg);
    if (!res.applied[0] && !res.restart_needed[0])
        COHORT_LOG(COHORT_LOG_INFO, "config.reload changed=none");
    if (res.applied[0])
        COHORT_LOG(COHORT_LOG_INFO, "config.reload applied=%s", res.applied);
    if (res.restart_needed[0])
        COHORT_LOG(COHORT_LOG_WARN, "config.reload.restart_needed keys=%s", res.restart_needed);
    cohort_config_destroy(&fresh);
    s_reload_roster(d, d->cfg);
}

/* ---- the loop ---- */

static int s_on_signal(zloop_t *loop, zmq_pollitem_t *item, void *arg)
{
    (void)loop;
    s_daemon_t *d = arg;
    struct signalfd_siginfo si;
    while (read(item->fd, &si, sizeof si) == (ssize_t)sizeof si) {
        if (si.ssi_signo == SIGHUP) {
            COHORT_LOG(COHORT_LOG_INFO, "signal.received signal=SIGHUP action=reload");
            s_reload(d);
            /* Certificate files may have been replaced: days to expiry
             * follow them (the keys naming them need a restart). */
            if (d->metrics)
                cohort_metrics_reload(d->metrics, d->cfg);
        } else if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) {
            d->stop_signal = (int)si.ssi_signo;
            return -1; /* ends the loop */
        }
    }
    return 0;
}

/* Unacknowledged messages across all peers, for the leaving log line. */
static uint64_t s_unacked(cohort_t *node, uint32_t *up)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    uint64_t total = 0;
    *up = 0;
    if (cohort_info(node, "peers", &buf, &len) != COHORT_OK)
        return 0;
    Cohort__Api__Response *resp = cohort__api__response__unpack(NULL, len, buf);
    free(buf);
    if (!resp)
        return 0;
    for (size_t i = 0; i < resp->n_peers; i++) {
        total += resp->peers[i]->unacked;
        *up += !strcmp(resp->peers[i]->state, "up");
    }
    cohort__api__response__free_unpacked(resp, NULL);
    return total;
}

static char *s_cluster_name(cohort_t *node)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    char *name = NULL;
    if (cohort_info(node, "status", &buf, &len) == COHORT_OK) {
        Cohort__Api__Response *resp = cohort__api__response__unpack(NULL, len, buf);
        if (resp && resp->status_info)
            name = cohort_strdup(resp->status_info->cluster);
        if (resp)
            cohort__api__response__free_unpacked(resp, NULL);
    }
    free(buf);
    return name ? name : cohort_strdup("?");
}

int cohort_daemon_run(const char *config_path)
{
    s_daemon_t d = {.path = config_path};
    cohort_err_t err;
    cohort_err_clear(&err);
    zloop_t *loop = NULL;
    int sfd = -1, rc = 1;
    char *cluster = NULL;

    zsys_handler_set(NULL);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    sfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (sfd < 0) {
        fprintf(stderr, "cohortd: signalfd: %s\n", strerror(errno));
        goto out;
    }
    if (cohort_config_load(config_path, &d.cfg, &err) < 0) {
        fprintf(stderr, "cohortd: %s\n", cohort_err_text(&err));
        goto out;
    }
    s_apply_log(d.cfg, true);
    /* The API first: a second cohortd on the same config must fail before
     * its node says hello to anyone. */
    if (cohort_api_server_open(d.cfg, NULL, &d.api, &err) < 0) {
        fprintf(stderr, "cohortd: %s: %s\n", config_path, cohort_err_text(&err));
        goto out;
    }
    if (d.cfg->metrics_address[0] && cohort_metrics_open(d.cfg, &d.metrics, &err) < 0) {
        fprintf(stderr, "cohortd: %s: %s\n", config_path, cohort_err_text(&err));
        goto out;
    }
    char why[1024];
    if (cohort_open(config_path, &d.node, why, sizeof why) < 0) {
        fprintf(stderr, "cohortd: %s\n", why);
        goto out;
    }
    loop = zloop_new();
    cohort_api_server_attach(d.api, d.node, loop);
    if (d.metrics)
        cohort_metrics_attach(d.metrics, d.node, d.api, loop);
    zmq_pollitem_t sig_item = {NULL, sfd, ZMQ_POLLIN, 0};
    zloop_poller(loop, &sig_item, s_on_signal, &d);
    cluster = s_cluster_name(d.node);
    fprintf(stderr, "cohortd: node %s up: cluster %s, listening on tcp://%s:%u, api at %s\n",
            d.cfg->node_name, cluster, d.cfg->listen_address, d.cfg->listen_port,
            cohort_api_server_endpoint(d.api));
    COHORT_LOG(COHORT_LOG_INFO, "daemon.started node=%s cluster=%s pid=%d api=%s", d.cfg->node_name,
               cluster, (int)getpid(), cohort_api_server_endpoint(d.api));
    zloop_start(loop);

    const char *sig = d.stop_signal == SIGINT ? "SIGINT" : "SIGTERM";
    COHORT_LOG(COHORT_LOG_INFO, "daemon.stopping signal=%s", sig);
    /* The snapshot reads the API server and the node: it goes first. */
    cohort_metrics_destroy(&d.metrics);
    /* Stop taking API work before leaving: clients' services go, so peers
     * stop sending requests here while the node flushes. */
    cohort_api_server_destroy(&d.api);
    uint32_t up = 0;
    uint64_t unacked = s_unacked(d.node, &up);
    COHORT_LOG(COHORT_LOG_INFO, "node.leaving peers_up=%" PRIu32 " unacked=%" PRIu64, up, unacked);
    cohort_close(&d.node);
    COHORT_LOG(COHORT_LOG_INFO, "daemon.stopped node=%s", d.cfg->node_name);
    rc = 0;
out:
    cohort_metrics_destroy(&d.metrics);
    cohort_api_server_destroy(&d.api);
    cohort_close(&d.node);
    zloop_destroy(&loop);
    free(cluster);
    if (sfd >= 0)
        close(sfd);
    cohort_config_destroy(&d.cfg);
    cohort_log_set_sink(NULL, NULL, COHORT_LOG_ERROR);
    return rc;
}
