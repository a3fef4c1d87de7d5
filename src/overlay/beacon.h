/*
 * beacon: LAN discovery. A node may announce itself on its site's LAN with a
 * small UDP datagram carrying only its public key and overlay port, so that
 * nodes of one site find each other without a rendezvous node.
 *
 * Datagram (48 bytes): "CHB1" | version 1 | 0 | overlay port (big-endian
 * u16) | X25519 public key (32) | cluster tag (8: the first bytes of
 * SHA-256 of the cluster name, so neighbouring clusters ignore each other).
 *
 * A beacon proves nothing: what it tells is only where to dial. Whatever is
 * found still has to pass the CURVE handshake with the key the roster names,
 * and a beacon whose key is not in the roster is ignored by the node. This
 * module encodes, decodes and moves datagrams; the node decides what to do
 * with them. Off unless the node config turns it on.
 */
#ifndef COHORT_OVERLAY_BEACON_H
#define COHORT_OVERLAY_BEACON_H

#include "util/err.h"

#include <stddef.h>
#include <stdint.h>

#define COHORT_BEACON_LEN 48
#define COHORT_BEACON_KEY_LEN 32

/* The 8-byte tag of a cluster name. */
uint64_t cohort_beacon_cluster_tag(const char *cluster);

void cohort_beacon_encode(const uint8_t key[COHORT_BEACON_KEY_LEN], uint16_t port, uint64_t tag,
                          uint8_t out[COHORT_BEACON_LEN]);

/* Decodes buf; returns 0 and sets key and port if it is a beacon of the
 * cluster with this tag, -1 for anything else (wrong length, magic,
 * version, cluster, port 0). Never reads past len. */
int cohort_beacon_decode(const uint8_t *buf, size_t len, uint64_t tag,
                         uint8_t key[COHORT_BEACON_KEY_LEN], uint16_t *port);

/* A non-blocking UDP socket bound to bind_addr:port (IPv4 dotted quad,
 * "0.0.0.0" for all) with SO_REUSEADDR (several nodes of one host share the
 * port) and SO_BROADCAST. Returns the fd, or -1 with err set. */
int cohort_beacon_open(const char *bind_addr, uint16_t port, cohort_err_t *err);

/* Sends one datagram to addr:port (IPv4, e.g. a broadcast address).
 * Returns 0, or -1 with err set. */
int cohort_beacon_send(int fd, const char *addr, uint16_t port, const uint8_t *buf, size_t len,
                       cohort_err_t *err);

/* Reads one datagram if one waits: returns its length (up to cap bytes
 * kept) and the sender's IPv4 address as text in src (at least 16 bytes),
 * 0 when none waits, -1 on a socket error. */
int cohort_beacon_recv(int fd, uint8_t *buf, size_t cap, char *src, size_t srccap);

#endif
