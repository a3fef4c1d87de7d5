#!/usr/bin/env bash
# Installs the Debian 12 packages cohort needs, and nothing when they are
# already there (so repeated runs cost no apt time).
#   deploy/deps.sh build   - compiler, CMake and the libraries
#   deploy/deps.sh test    - build + what the test suite uses
#   deploy/deps.sh compose - what tests/compose/run.sh uses (Docker engine,
#                            docker-compose, debootstrap, apt-cacher-ng); the
#                            image build compiles cohort, not the host
set -euo pipefail

build_pkgs=(build-essential cmake pkg-config libzmq3-dev libczmq-dev libssl-dev openssl
            libyaml-dev libprotobuf-c-dev protobuf-c-compiler libcmocka-dev libmicrohttpd-dev)
# python3-*, protobuf-compiler: the Python client's test (protoc 3.21 matches
# python3-protobuf 4.21); yamllint, systemd: the deploy/ files' test
# (systemd-analyze verify / security --offline); libnetfilter-queue-dev:
# the NAT lab's link delay (tests/lab/nfq_delay.c).
test_pkgs=(clang-format iproute2 iptables conntrack netcat-openbsd dante-server tcpdump valgrind curl
           python3 python3-zmq python3-protobuf python3-yaml protobuf-compiler yamllint systemd
           libnetfilter-queue-dev)

# Docker from Debian (dockerd 20.10, docker-compose 1.29.2; /usr/bin/docker
# is the client whose BuildKit works here), debootstrap for the base image
# (nothing can be pulled) and apt-cacher-ng, the build's way to Debian's
# packages; iproute2 (veth, netns) and curl (the /metrics scrape).
compose_pkgs=(docker.io docker-compose debootstrap apt-cacher-ng iproute2 curl)

case "${1:-build}" in
  build) want=("${build_pkgs[@]}") ;;
  test) want=("${build_pkgs[@]}" "${test_pkgs[@]}") ;;
  compose) want=("${compose_pkgs[@]}") ;;
  *) echo "deps.sh: unknown group '$1' (build, test or compose)" >&2; exit 2 ;;
esac

missing=()
for p in "${want[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "deps.sh: run as root to install: ${missing[*]}" >&2; exit 1; }
  SUDO=sudo
fi
echo "deps.sh: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# docker.io and apt-cacher-ng start their services when installed: on a
# machine without systemd that would be a dockerd in the host's own network
# namespace, rewriting its iptables. A policy-rc.d that refuses every start
# (exit 101) prevents it; one already there is left as it is.
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\n# deps.sh: no service starts while installing\nexit 101\n' |
    $SUDO tee /usr/sbin/policy-rc.d >/dev/null
  $SUDO chmod 0755 /usr/sbin/policy-rc.d
  trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
fi
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
