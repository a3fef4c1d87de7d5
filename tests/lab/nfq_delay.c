/*
 * nfq_delay: holds every packet of one netfilter queue for a fixed time,
 * then lets it go: link delay for the NAT lab on kernels without sch_netem
 * (lab.sh lab_impair). A packet iptables sends to NFQUEUE --queue-num Q
 * comes here (libnetfilter_queue) and is accepted DELAY_MS after it
 * arrived, in arrival order, so the link gets DELAY_MS more latency and
 * keeps its bandwidth (up to S_HELD packets in flight).
 *
 *     nfq_delay QUEUE DELAY_MS
 *
 * Runs until SIGTERM or SIGINT. Not a tool for anything but the lab: one
 * queue, IPv4 and IPv6 alike, no reordering, no loss (the lab drops with
 * iptables -m statistic).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <libnetfilter_queue/libnetfilter_queue.h>
#include <linux/netfilter.h> /* NF_ACCEPT */

#define S_HELD 65536 /* packets held at once; past it, the newest go at once */

typedef struct {
    uint32_t id;
    int64_t due_ms;
} s_held_t;

static s_held_t s_ring[S_HELD];
static size_t s_head, s_count;
static int64_t s_delay_ms;
static volatile sig_atomic_t s_stop;

static int64_t s_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int s_on_packet(struct nfq_q_handle *qh, struct nfgenmsg *msg, struct nfq_data *nfa,
                       void *data)
{
    (void)msg;
    (void)data;
    struct nfqnl_msg_packet_hdr *ph = nfq_get_msg_packet_hdr(nfa);
    if (!ph)
        return 0;
    uint32_t id = ntohl(ph->packet_id);
    if (s_count == S_HELD)
        return nfq_set_verdict(qh, id, NF_ACCEPT, 0, NULL);
    s_ring[(s_head + s_count) % S_HELD] = (s_held_t){id, s_now_ms() + s_delay_ms};
    s_count++;
    return 0;
}

static void s_release_due(struct nfq_q_handle *qh)
{
    int64_t now = s_now_ms();
    while (s_count && s_ring[s_head].due_ms <= now) {
        nfq_set_verdict(qh, s_ring[s_head].id, NF_ACCEPT, 0, NULL);
        s_head = (s_head + 1) % S_HELD;
        s_count--;
    }
}

static void s_on_signal(int sig)
{
    (void)sig;
    s_stop = 1;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: nfq_delay QUEUE DELAY_MS\n");
        return 2;
    }
    char *end = NULL;
    unsigned long queue = strtoul(argv[1], &end, 10);
    if (!*argv[1] || *end || queue > 65535) {
        fprintf(stderr, "nfq_delay: QUEUE must be 0..65535, got '%s'\n", argv[1]);
        return 2;
    }
    s_delay_ms = strtol(argv[2], &end, 10);
    if (!*argv[2] || *end || s_delay_ms < 0 || s_delay_ms > 60000) {
        fprintf(stderr, "nfq_delay: DELAY_MS must be 0..60000, got '%s'\n", argv[2]);
        return 2;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = s_on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    struct nfq_handle *h = nfq_open();
    if (!h) {
        fprintf(stderr, "nfq_delay: nfq_open: %s\n", strerror(errno));
        return 1;
    }
    struct nfq_q_handle *qh = nfq_create_queue(h, (uint16_t)queue, s_on_packet, NULL);
    if (!qh) {
        fprintf(stderr, "nfq_delay: queue %lu: %s\n", queue, strerror(errno));
        nfq_close(h);
        return 1;
    }
    /* only the packet id is needed: copy no payload to user space */
    if (nfq_set_mode(qh, NFQNL_COPY_META, 0) < 0 || nfq_set_queue_maxlen(qh, S_HELD) < 0) {
        fprintf(stderr, "nfq_delay: queue %lu: cannot set its mode: %s\n", queue, strerror(errno));
        nfq_destroy_queue(qh);
        nfq_close(h);
        return 1;
    }
    int fd = nfq_fd(h);
    char buf[8192];
    fprintf(stderr, "nfq_delay: queue %lu, %lld ms\n", queue, (long long)s_delay_ms);
    while (!s_stop) {
        int timeout = -1;
        if (s_count) {
            int64_t wait = s_ring[s_head].due_ms - s_now_ms();
            timeout = wait > 0 ? (int)wait : 0;
        }
        struct pollfd pfd = {fd, POLLIN, 0};
        int rc = poll(&pfd, 1, timeout);
        if (rc < 0 && errno != EINTR)
            break;
        if (rc > 0) {
            ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
            if (n > 0)
                nfq_handle_packet(h, buf, (int)n);
        }
        s_release_due(qh);
    }
    /* let everything held go before leaving */
    while (s_count) {
        nfq_set_verdict(qh, s_ring[s_head].id, NF_ACCEPT, 0, NULL);
        s_head = (s_head + 1) % S_HELD;
        s_count--;
    }
    nfq_destroy_queue(qh);
    nfq_close(h);
    return 0;
}
