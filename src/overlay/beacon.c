/*
 * beacon: LAN discovery datagrams (see beacon.h).
 */
#include "overlay/beacon.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static const uint8_t s_magic[4] = {'C', 'H', 'B', '1'};

uint64_t cohort_beacon_cluster_tag(const char *cluster)
{
    uint8_t md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    EVP_Digest(cluster, strlen(cluster), md, &mdlen, EVP_sha256(), NULL);
    uint64_t tag = 0;
    for (int i = 0; i < 8; i++)
        tag = tag << 8 | md[i];
    return tag;
}

void cohort_beacon_encode(const uint8_t key[COHORT_BEACON_KEY_LEN], uint16_t port, uint64_t tag,
                          uint8_t out[COHORT_BEACON_LEN])
{
    memcpy(out, s_magic, 4);
    out[4] = 1;
    out[5] = 0;
    out[6] = (uint8_t)(port >> 8);
    out[7] = (uint8_t)port;
    memcpy(out + 8, key, COHORT_BEACON_KEY_LEN);
    for (int i = 0; i < 8; i++)
        out[40 + i] = (uint8_t)(tag >> (56 - 8 * i));
}

int cohort_beacon_decode(const uint8_t *buf, size_t len, uint64_t tag,
                         uint8_t key[COHORT_BEACON_KEY_LEN], uint16_t *port)
{
    if (len != COHORT_BEACON_LEN || memcmp(buf, s_magic, 4) || buf[4] != 1)
        return -1;
    uint64_t got = 0;
    for (int i = 0; i < 8; i++)
        got = got << 8 | buf[40 + i];
    uint16_t p = (uint16_t)(buf[6] << 8 | buf[7]);
    if (got != tag || p == 0)
        return -1;
    memcpy(key, buf + 8, COHORT_BEACON_KEY_LEN);
    *port = p;
    return 0;
}

static int s_addr(const char *text, uint16_t port, struct sockaddr_in *sa, cohort_err_t *err)
{
    memset(sa, 0, sizeof *sa);
    sa->sin_family = AF_INET;
    sa->sin_port = htons(port);
    if (inet_pton(AF_INET, text, &sa->sin_addr) != 1)
        return cohort_err_set(err, "beacon: '%s' is not an IPv4 address", text);
    return 0;
}

int cohort_beacon_open(const char *bind_addr, uint16_t port, cohort_err_t *err)
{
    struct sockaddr_in sa;
    if (s_addr(bind_addr, port, &sa, err) < 0)
        return -1;
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return cohort_err_set(err, "beacon: socket: %s", strerror(errno));
    int on = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_BROADCAST, &on, sizeof on) < 0 ||
        bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        int e = errno;
        close(fd);
        return cohort_err_set(err, "beacon: %s:%u: %s", bind_addr, port, strerror(e));
    }
    return fd;
}

int cohort_beacon_send(int fd, const char *addr, uint16_t port, const uint8_t *buf, size_t len,
                       cohort_err_t *err)
{
    struct sockaddr_in sa;
    if (s_addr(addr, port, &sa, err) < 0)
        return -1;
    if (sendto(fd, buf, len, 0, (struct sockaddr *)&sa, sizeof sa) < 0)
        return cohort_err_set(err, "beacon: send to %s:%u: %s", addr, port, strerror(errno));
    return 0;
}

int cohort_beacon_recv(int fd, uint8_t *buf, size_t cap, char *src, size_t srccap)
{
    struct sockaddr_in sa;
    socklen_t salen = sizeof sa;
    ssize_t n = recvfrom(fd, buf, cap, MSG_TRUNC, (struct sockaddr *)&sa, &salen);
    if (n < 0)
        return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? 0 : -1;
    if (sa.sin_family != AF_INET || !inet_ntop(AF_INET, &sa.sin_addr, src, (socklen_t)srccap))
        src[0] = '\0';
    return n > 0x7fffffff ? 0x7fffffff : (int)n;
}
