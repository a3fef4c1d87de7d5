#!/usr/bin/env bash
# Scenario 5, relay failover: two nodes that can only be relayed (both behind
# symmetric NATs, so punching fails) lose the relay they use (SIGKILL of its
# cohortd: no goodbye) and move to the other relay, and a reliable stream
# between them loses and duplicates nothing.
#
#   r1    203.0.113.10            public: roles relay,rendezvous, advertised
#   r2    203.0.113.11            public: roles relay,rendezvous, advertised
#   rtr-a 203.0.113.20            symmetric NAT (MASQUERADE --random-fully)
#   a     10.1.0.2 behind rtr-a   sends the stream
#   rtr-b 203.0.113.30            symmetric NAT
#   b     10.2.0.2 behind rtr-b   receives it
set -euo pipefail
# shellcheck source=tests/lab/lab.sh
source "$(dirname "${BASH_SOURCE[0]}")/lab.sh"
# shellcheck source=tests/lab/cohort.sh
source "$(dirname "${BASH_SOURCE[0]}")/cohort.sh"
lab_cohort_enter "$@"

LAB_CASE_FLUSH=0
LINK_UP_LIMIT=30
FAILOVER_LIMIT=20

lab_internet 203.0.113.0/24
lab_public_host r1 203.0.113.10
lab_public_host r2 203.0.113.11
lab_nat rtr-a symmetric 203.0.113.20 10.1.0.0/24
lab_private_host a rtr-a 10.1.0.2
lab_nat rtr-b symmetric 203.0.113.30 10.2.0.0/24
lab_private_host b rtr-b 10.2.0.2

lab_cluster_init labcluster
lab_member r1 --endpoint tcp://203.0.113.10:7700 --roles relay,rendezvous
lab_member r2 --endpoint tcp://203.0.113.11:7700 --roles relay,rendezvous
lab_member a
lab_member b
lab_roster_sign
lab_node_config r1 203.0.113.10 "listen.advertise=[tcp://203.0.113.10:7700]"
lab_node_config r2 203.0.113.11 "listen.advertise=[tcp://203.0.113.11:7700]"
lab_node_config a 10.1.0.2
lab_node_config b 10.2.0.2

T0=$(lab_now)
lab_node_start r1 r1
lab_node_start r2 r2
lab_node_start a a
lab_node_start b b

LOGS_SHOWN=0
show_logs() {
    ((LOGS_SHOWN)) && return 0
    LOGS_SHOWN=1
    {
        lab_link_report a b
        local n
        for n in r1 r2 a b; do
            lab_node_logs "$n"
            echo "---- $n: ss -tn"
            lab_exec "$n" ss -tn | sed 's/^/  | /'
        done
        [[ ${LAB_KEEP:-0} == 1 ]] || echo "(run with LAB_KEEP=1 to keep configs and logs)"
    } >&2
}

relayed() {
    lab_wait_for "$LINK_UP_LIMIT" lab_links_are a b relayed || {
        lab_link_report a b >&2
        fail "within $LINK_UP_LIMIT s, a and b did not both show each other up relayed"
    }
    echo "figure: a <-> b relayed $(lab_secs $(($(lab_now) - T0))) s after the daemons were started"
    lab_link_report a b
}

stream_flows() {
    lab_wait_for 10 _received_at_least 20 || fail "b received $(lab_stream_received a b) stream messages in 10 s"
    echo "figure: stream a -> b: $(lab_stream_received a b) received before the relay is killed"
}

_received_at_least() {
    (($(lab_stream_received a b) >= $1))
}

# The relay a sends through is killed; a and b must both end up relayed via
# the other one.
relay_killed_peers_move_to_the_other() {
    local via other t0 mid
    via=$(lab_peer_get a b via)
    [[ $via == r1 || $via == r2 ]] || fail "a is relayed to b via '$via', expected r1 or r2"
    [[ $via == r1 ]] && other=r2 || other=r1
    echo "figure: a sends to b via $via; b sends to a via $(lab_peer_get b a via); killing $via (SIGKILL)"
    t0=$(lab_now)
    kill -KILL "${LAB_NODE_PID[$via]}"
    lab_wait_for "$FAILOVER_LIMIT" lab_links_are a b "relayed via $other" || {
        lab_link_report a b >&2
        fail "within $FAILOVER_LIMIT s of killing $via, a and b did not both move to relayed via $other"
    }
    echo "figure: relay failover $via -> $other $(lab_secs $(($(lab_now) - t0))) s after SIGKILL (both sides)"
    mid=$(lab_stream_received a b)
    lab_wait_for 10 _received_at_least $((mid + 20)) ||
        fail "relayed via $other, b received $(($(lab_stream_received a b) - mid)) stream messages in 10 s"
}

stream_lost_and_duplicated_nothing() {
    # thousands in all: the stream keeps going a little on the new path
    lab_wait_for 20 _received_at_least 5000 ||
        fail "b received only $(lab_stream_received a b) stream messages"
    lab_stream_stop a
    lab_stream_check a b 30
    echo "figure: a resent $(lab_counter a resent) messages; b dropped $(lab_counter b duplicates_dropped) duplicates"
}

run_case relayed
if ((LAB_FAILED)); then
    show_logs
    echo "the other cases need the relayed link: not run"
    finish
fi
if ! lab_stream_start a b 0 1000; then
    show_logs
    echo "no stream: the other cases are not run"
    LAB_FAILED=$((LAB_FAILED + 1)) LAB_FAILED_NAMES+=(stream_start)
    finish
fi
run_case stream_flows
run_case relay_killed_peers_move_to_the_other
run_case stream_lost_and_duplicated_nothing
((LAB_FAILED == 0)) || show_logs
finish
