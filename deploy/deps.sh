#!/usr/bin/env bash
# Installs the Debian 12 packages cohort needs, and nothing when they are
# already there (so repeated runs cost no apt time).
#   deploy/deps.sh build   - compiler, CMake and the libraries
#   deploy/deps.sh test    - build + what the test suite uses
set -euo pipefail

build_pkgs=(build-essential cmake pkg-config libzmq3-dev libczmq-dev libssl-dev openssl
            libyaml-dev libprotobuf-c-dev protobuf-c-compiler libcmocka-dev libmicrohttpd-dev)
# python3-*, protobuf-compiler: the Python client's test (protoc 3.21 matches
# python3-protobuf 4.21); yamllint, systemd: the deploy/ files' test
# (systemd-analyze verify / security --offline).
test_pkgs=(clang-format iproute2 iptables conntrack netcat-openbsd dante-server tcpdump valgrind curl
           python3 python3-zmq python3-protobuf python3-yaml protobuf-compiler yamllint systemd)

want=("${build_pkgs[@]}")
if [ "${1:-build}" = test ]; then
  want+=("${test_pkgs[@]}")
fi

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
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
