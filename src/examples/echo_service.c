/*
 * echo_service: the smallest useful program on libcohort (cohort.h only).
 *
 * It starts a node from its config file, serves the "echo" service and
 * answers every request with the request's own payload and headers,
 * printing what it answers. Any node of the cluster can then ask it:
 *
 *     cohort_example_echo node.yaml
 *     cohortctl req echo hello -c other-node.yaml
 *
 * SIGINT or SIGTERM makes it leave the cluster gracefully. It is an example:
 * one thread, one loop, no options.
 */
#include "cohort.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>

static volatile sig_atomic_t s_stop;

static void s_on_signal(int sig)
{
    (void)sig;
    s_stop = 1;
}

/* At most 60 bytes of payload as text; other bytes as '.'. */
static void s_print_payload(const unsigned char *p, size_t len)
{
    for (size_t i = 0; i < len && i < 60; i++)
        putchar(p[i] >= 0x20 && p[i] < 0x7f ? p[i] : '.');
    if (len > 60)
        printf("... (%zu bytes)", len);
}

static void s_answer(cohort_t *node, const cohort_msg_t *request)
{
    size_t len = 0;
    const unsigned char *payload = cohort_msg_payload(request, &len);
    cohort_msg_t *reply = cohort_msg_new(cohort_msg_subject(request), payload, len);
    for (size_t i = 0; i < cohort_msg_header_count(request); i++) {
        const char *value = NULL;
        const char *key = cohort_msg_header_at(request, i, &value);
        cohort_msg_set_header(reply, key, value);
    }
    cohort_status_t st = cohort_reply(node, request, &reply);
    printf("echo to %s: ", cohort_msg_sender(request));
    s_print_payload(payload, len);
    printf(st == COHORT_OK ? "\n" : " (not sent: %s)\n", cohort_status_name(st));
    fflush(stdout);
}

int main(int argc, char **argv)
{
    if (argc != 2 || argv[1][0] == '-') {
        fprintf(stderr, "usage: cohort_example_echo node.yaml\n");
        return 2;
    }
    cohort_t *node = NULL;
    char why[1024];
    if (cohort_open(argv[1], &node, why, sizeof why) < 0) {
        fprintf(stderr, "echo_service: %s\n", why);
        return 1;
    }
    /* After cohort_open: the handlers replace any its runtime installed.
     * No SA_RESTART, so a signal also cuts a waiting cohort_recv short. */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = s_on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    cohort_status_t st = cohort_serve(node, "echo");
    if (st != COHORT_OK) {
        fprintf(stderr, "echo_service: cannot serve 'echo': %s\n", cohort_status_name(st));
        cohort_close(&node);
        return 1;
    }
    printf("echo_service: serving 'echo'; Ctrl-C to stop\n");
    fflush(stdout);
    while (!s_stop) {
        cohort_msg_t *msg = cohort_recv(node, 500);
        if (!msg)
            continue;
        if (cohort_msg_kind(msg) == COHORT_MSG_REQUEST)
            s_answer(node, msg);
        else if (cohort_msg_kind(msg) == COHORT_MSG_EVENT)
            printf("event: %s %s (%s)\n", cohort_msg_subject(msg), cohort_msg_sender(msg),
                   cohort_msg_error(msg));
        fflush(stdout);
        cohort_msg_destroy(&msg);
    }
    printf("echo_service: leaving\n");
    cohort_close(&node);
    return 0;
}
