#!/usr/bin/env bash
# The bootstrap cache with real cohortd processes: n01 is the only member
# with an endpoint in the roster; n02 and n03 advertise theirs only in their
# own config, so they learn each other's through gossip (via n01) and keep
# them in state/peers.yaml. With n01 down, restarted n02 and n03 find each
# other from their caches alone; without the caches they cannot.
set -euo pipefail
# shellcheck source=tests/cli/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require_programs "$COHORTCTL" "$COHORTD"
CL_DIR=$CLI_TMP/cluster
CL_NO_TRAP=1
mkdir -p "$CL_DIR"
# shellcheck source=tests/bench/cluster.sh
source "$COHORT_SRC/tests/bench/cluster.sh"
trap 'cl_cleanup; rm -rf "$CLI_TMP"' EXIT

CL_NO_ENDPOINTS="n02 n03"
CL_EXTRA_CONFIG='membership:
  probe_interval: 200ms
  probe_timeout: 100ms
log:
  level: info'
cl_init 3
cl_start_all

_both_alive() {
    cl_sees n02 n03 alive && cl_sees n03 n02 alive
}

_direct() {
    ctl "$1" peers --json | grep -q "\"name\":\"$2\",[^}]*\"state\":\"up\",\"link\":\"direct\""
}

_cached() { # NODE PEER: NODE's cache names PEER's endpoint
    grep -A1 -- "- name: $2\$" "$CL_DIR/$1/state/peers.yaml" 2>/dev/null |
        grep -q "tcp://127.0.0.1:${CL_PORT[$2]}"
}

members_learn_endpoints_by_gossip() {
    cl_wait 20 cl_converged || fail "the cluster did not converge in 20 s"
    cl_wait 15 _direct n02 n03 || fail "n02 has no direct link to n03: $(ctl n02 peers 2>&1)"
    echo "figure: n02 -> n03 direct (endpoint learned by gossip) $CL_WAITED s after convergence"
    # the first of the two to hear the other's endpoint by gossip dials it;
    # the other learns it from that one's hello
    grep -Eq "peer.dial node=n0[23] endpoint=tcp://127.0.0.1:[0-9]+ source=gossip" \
        "$CL_DIR/n02/log" "$CL_DIR/n03/log" || fail "neither n02 nor n03 dialled the other from gossip:
$(grep -h peer.dial "$CL_DIR/n02/log" "$CL_DIR/n03/log")"
}

caches_name_the_learned_endpoints() {
    cl_wait 10 _cached n02 n03 || fail "n02's cache lacks n03:
$(cat "$CL_DIR/n02/state/peers.yaml" 2>&1)"
    cl_wait 10 _cached n03 n02 || fail "n03's cache lacks n02"
    _cached n02 n01 || fail "n02's cache lacks n01"
    head -n 1 "$CL_DIR/n02/state/peers.yaml" | grep -q "^# cohortd bootstrap cache" ||
        fail "no header in the cache"
}

restart_with_the_rendezvous_down_uses_the_cache() {
    cl_stop n01 TERM
    cl_stop n02 TERM
    cl_stop n03 TERM
    cp "$CL_DIR/n02/state/peers.yaml" "$CL_DIR/n02.cache"
    cp "$CL_DIR/n03/state/peers.yaml" "$CL_DIR/n03.cache"
    cl_start n02
    cl_start n03
    cl_wait 15 _both_alive || fail "n02 and n03 did not find each other in 15 s with n01 down"
    echo "figure: n02 and n03 restarted, n01 down: alive to each other after $CL_WAITED s"
    grep -q "bootstrap.cache_loaded peers=2 dialled=1" "$CL_DIR/n02/log" ||
        fail "n02's log does not show the cache used: $(grep bootstrap "$CL_DIR/n02/log")"
}

without_the_cache_they_stay_apart() {
    cl_stop n02 TERM
    cl_stop n03 TERM
    rm -f "$CL_DIR/n02/state/peers.yaml" "$CL_DIR/n03/state/peers.yaml"
    cl_start n02
    cl_start n03
    sleep 5
    ! cl_sees n02 n03 alive || fail "n02 found n03 with no cache and n01 down (how?)"
    ! cl_sees n03 n02 alive || fail "n03 found n02 with no cache and n01 down (how?)"
}

a_damaged_cache_is_reported_and_ignored() {
    cl_stop n02 TERM
    printf 'cluster: benchcluster\npeers: {oops\n' >"$CL_DIR/n02/state/peers.yaml"
    cl_start n02
    cl_wait 10 grep -Eq "bootstrap.cache_ignored error=\".*peers.yaml:[0-9]+:[0-9]+: invalid YAML" "$CL_DIR/n02/log" ||
        fail "no cache_ignored line naming the place: $(grep bootstrap "$CL_DIR/n02/log")"
    expect_ok -- ctl n02 status
}

run_case members_learn_endpoints_by_gossip
run_case caches_name_the_learned_endpoints
run_case restart_with_the_rendezvous_down_uses_the_cache
run_case without_the_cache_they_stay_apart
run_case a_damaged_cache_is_reported_and_ignored
finish
