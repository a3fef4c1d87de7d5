/*
 * LAN beacon tests: a beacon decodes to what was encoded, anything else
 * (other cluster, truncated, padded, wrong magic or version, port 0) is
 * ignored, and a real datagram crosses a real UDP socket with its source.
 */
#include "testutil.h"

#include "overlay/beacon.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void test_encode_decode_and_refusals(void **state)
{
    (void)state;
    uint8_t key[COHORT_BEACON_KEY_LEN], got[COHORT_BEACON_KEY_LEN], b[COHORT_BEACON_LEN + 1];
    for (int i = 0; i < COHORT_BEACON_KEY_LEN; i++)
        key[i] = (uint8_t)(i * 7 + 1);
    uint64_t tag = cohort_beacon_cluster_tag("prod");
    assert_true(tag != cohort_beacon_cluster_tag("prod2"));
    cohort_beacon_encode(key, 7700, tag, b);
    uint16_t port = 0;
    assert_int_equal(cohort_beacon_decode(b, COHORT_BEACON_LEN, tag, got, &port), 0);
    assert_int_equal(port, 7700);
    assert_memory_equal(got, key, sizeof key);
    /* another cluster, truncated, padded */
    assert_int_equal(cohort_beacon_decode(b, COHORT_BEACON_LEN, tag ^ 1, got, &port), -1);
    assert_int_equal(cohort_beacon_decode(b, COHORT_BEACON_LEN - 1, tag, got, &port), -1);
    assert_int_equal(cohort_beacon_decode(b, COHORT_BEACON_LEN + 1, tag, got, &port), -1);
    assert_int_equal(cohort_beacon_decode(b, 0, tag, got, &port), -1);
    /* every byte of the header and tag matters */
    static const int fields[] = {0, 1, 2, 3, 4, 40, 47};
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        uint8_t c[COHORT_BEACON_LEN];
        memcpy(c, b, sizeof c);
        c[fields[i]] ^= 0x40;
        assert_int_equal(cohort_beacon_decode(c, sizeof c, tag, got, &port), -1);
    }
    cohort_beacon_encode(key, 0, tag, b);
    assert_int_equal(cohort_beacon_decode(b, COHORT_BEACON_LEN, tag, got, &port), -1);
}

static uint16_t s_bound_port(int fd)
{
    struct sockaddr_in sa;
    socklen_t len = sizeof sa;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    return ntohs(sa.sin_port);
}

static void test_a_datagram_crosses_a_real_socket(void **state)
{
    (void)state;
    cohort_err_t err;
    int rx = cohort_beacon_open("127.0.0.1", 0, &err);
    assert_true(rx >= 0);
    uint16_t port = s_bound_port(rx);
    int tx = cohort_beacon_open("127.0.0.1", 0, &err);
    assert_true(tx >= 0);
    uint8_t key[COHORT_BEACON_KEY_LEN] = {9}, b[COHORT_BEACON_LEN], in[128];
    uint64_t tag = cohort_beacon_cluster_tag("lab");
    cohort_beacon_encode(key, 7711, tag, b);
    char src[64];
    assert_int_equal(cohort_beacon_recv(rx, in, sizeof in, src, sizeof src), 0); /* none yet */
    assert_int_equal(cohort_beacon_send(tx, "127.0.0.1", port, b, sizeof b, &err), 0);
    struct pollfd pfd = {.fd = rx, .events = POLLIN};
    assert_int_equal(poll(&pfd, 1, 2000), 1);
    int n = cohort_beacon_recv(rx, in, sizeof in, src, sizeof src);
    assert_int_equal(n, COHORT_BEACON_LEN);
    assert_string_equal(src, "127.0.0.1");
    uint8_t got[COHORT_BEACON_KEY_LEN];
    uint16_t p = 0;
    assert_int_equal(cohort_beacon_decode(in, (size_t)n, tag, got, &p), 0);
    assert_int_equal(p, 7711);
    /* an oversized datagram reports its real length, so it is refused */
    uint8_t big[600] = {0};
    assert_int_equal(cohort_beacon_send(tx, "127.0.0.1", port, big, sizeof big, &err), 0);
    assert_int_equal(poll(&pfd, 1, 2000), 1);
    n = cohort_beacon_recv(rx, in, sizeof in, src, sizeof src);
    assert_int_equal(n, 600);
    assert_int_equal(cohort_beacon_decode(in, (size_t)n, tag, got, &p), -1);
    /* bad addresses are errors with the address */
    assert_int_equal(cohort_beacon_send(tx, "not-an-ip", port, b, sizeof b, &err), -1);
    assert_non_null(strstr(cohort_err_text(&err), "'not-an-ip'"));
    assert_int_equal(cohort_beacon_open("300.1.1.1", 0, &err), -1);
    close(rx);
    close(tx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_encode_decode_and_refusals),
        cmocka_unit_test(test_a_datagram_crosses_a_real_socket),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
