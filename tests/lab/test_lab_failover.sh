#!/usr/bin/env bash
# Scenario 4, moving down the ladder and back up: a punched pair whose path
# breaks falls back to the relay without losing or duplicating a message of
# a reliable stream, and returns to the punched link once the path is back.
#
#   r     203.0.113.10            public: roles rendezvous,relay, advertised
#   rtr-a 203.0.113.20            cone NAT
#   a     10.1.0.2 behind rtr-a   sends the stream
#   rtr-b 203.0.113.30            cone NAT
#   b     10.2.0.2 behind rtr-b   receives it
#
# The cut (lab_cut rtr-a rtr-b) drops every packet between the two NATs on
# the internet bridge, silently: the punched TCP connection stalls without a
# RST, as on a real broken path, while both still reach r. Probes on the
# punched link go unanswered and after links.probe_timeout (3 s) of silence
# the pair moves to the relay. links.upgrade_interval is 5s here (default
# 30s) so that the way back up does not wait half a minute.
set -euo pipefail
# shellcheck source=tests/lab/lab.sh
source "$(dirname "${BASH_SOURCE[0]}")/lab.sh"
# shellcheck source=tests/lab/cohort.sh
source "$(dirname "${BASH_SOURCE[0]}")/cohort.sh"
lab_cohort_enter "$@"

LAB_CASE_FLUSH=0
LINK_UP_LIMIT=30
FAILOVER_LIMIT=20
UPGRADE_LIMIT=30

lab_internet 203.0.113.0/24
lab_public_host r 203.0.113.10
lab_nat rtr-a cone 203.0.113.20 10.1.0.0/24
lab_private_host a rtr-a 10.1.0.2
lab_nat rtr-b cone 203.0.113.30 10.2.0.0/24
lab_private_host b rtr-b 10.2.0.2

lab_cluster_init labcluster
lab_member r --endpoint tcp://203.0.113.10:7700 --roles rendezvous,relay
lab_member a
lab_member b
lab_roster_sign
lab_node_config r 203.0.113.10 "listen.advertise=[tcp://203.0.113.10:7700]"
# PROBE_TIMEOUT (links.probe_timeout of a and b) and LAB_STREAM_GAP (seconds
# between two sends of the stream, default 0.02) may be set to stress the
# failover: everything sent in the window before the punched link is
# demoted arrives at b in one burst after the switch.
lab_node_config a 10.1.0.2 links.upgrade_interval=5s ${PROBE_TIMEOUT:+links.probe_timeout=$PROBE_TIMEOUT}
lab_node_config b 10.2.0.2 links.upgrade_interval=5s ${PROBE_TIMEOUT:+links.probe_timeout=$PROBE_TIMEOUT}

T0=$(lab_now)
lab_node_start r r
lab_node_start a a
lab_node_start b b

LOGS_SHOWN=0
show_logs() {
    ((LOGS_SHOWN)) && return 0
    LOGS_SHOWN=1
    {
        lab_link_report a b
        local n
        for n in r a b; do
            lab_node_logs "$n"
            echo "---- $n: ss -tn"
            lab_exec "$n" ss -tn | sed 's/^/  | /'
        done
        for n in rtr-a rtr-b; do
            echo "---- $n: conntrack -L -p tcp"
            lab_exec "$n" conntrack -L -p tcp 2>/dev/null | sed 's/^/  | /'
        done
        [[ ${LAB_KEEP:-0} == 1 ]] || echo "(run with LAB_KEEP=1 to keep configs and logs)"
    } >&2
}

punched() {
    lab_wait_for "$LINK_UP_LIMIT" lab_links_are a b punched || {
        lab_link_report a b >&2
        fail "within $LINK_UP_LIMIT s, a and b did not both show each other up over link punched"
    }
    echo "figure: punched link a <-> b up $(lab_secs $(($(lab_now) - T0))) s after the daemons were started"
}

# The stream flows before the cut.
stream_flows() {
    lab_wait_for 10 _received_at_least 20 || fail "b received $(lab_stream_received a b) stream messages in 10 s"
    echo "figure: stream a -> b: $(lab_stream_received a b) received before the cut"
}

_received_at_least() {
    (($(lab_stream_received a b) >= $1))
}

cut_moves_to_relay() {
    local t0 t1 mid
    t0=$(lab_now)
    lab_cut rtr-a rtr-b
    lab_wait_for "$FAILOVER_LIMIT" lab_links_are a b "relayed via r" || {
        lab_link_report a b >&2
        fail "within $FAILOVER_LIMIT s of the cut, a and b did not both move to relayed via r"
    }
    t1=$(lab_now)
    echo "figure: failover punched -> relayed via r $(lab_secs $((t1 - t0))) s after the cut (both sides)"
    # The stream goes on through the relay while the path is cut.
    mid=$(lab_stream_received a b)
    lab_wait_for 10 _received_at_least $((mid + 20)) ||
        fail "with the path cut and the pair relayed, b received $(($(lab_stream_received a b) - mid)) stream messages in 10 s"
    echo "figure: stream a -> b: $(($(lab_stream_received a b) - mid)) messages through the relay in $(lab_secs $(($(lab_now) - t1))) s"
    lab_links_are a b "relayed via r" || {
        lab_link_report a b >&2
        fail "a and b left the relay while the path is still cut"
    }
}

uncut_returns_to_punched() {
    local t0
    t0=$(lab_now)
    lab_uncut rtr-a rtr-b
    lab_wait_for "$UPGRADE_LIMIT" lab_links_are a b punched || {
        lab_link_report a b >&2
        fail "within $UPGRADE_LIMIT s of the uncut, a and b did not both return to punched"
    }
    echo "figure: upgrade relayed -> punched $(lab_secs $(($(lab_now) - t0))) s after the uncut (both sides; links.upgrade_interval 5s)"
}

stream_lost_and_duplicated_nothing() {
    # A few more seconds on the punched link, then the end of the stream.
    local before
    before=$(lab_stream_received a b)
    lab_wait_for 10 _received_at_least $((before + 20)) ||
        fail "back on punched, b received $(($(lab_stream_received a b) - before)) stream messages in 10 s"
    # thousands in all
    lab_wait_for 20 _received_at_least 5000 ||
        fail "b received only $(lab_stream_received a b) stream messages"
    lab_stream_stop a
    lab_stream_check a b 30
    echo "figure: a resent $(lab_counter a resent) messages; b dropped $(lab_counter b duplicates_dropped) duplicates"
}

run_case punched
if ((LAB_FAILED)); then
    show_logs
    echo "the other cases need the punched link: not run"
    finish
fi
# The stream runs across the next cases (started here, outside any case).
if ! lab_stream_start a b 0 1000; then
    show_logs
    echo "no stream: the other cases are not run"
    LAB_FAILED=$((LAB_FAILED + 1)) LAB_FAILED_NAMES+=(stream_start)
    finish
fi
run_case stream_flows
run_case cut_moves_to_relay
run_case uncut_returns_to_punched
lab_uncut rtr-a rtr-b 2>/dev/null || true
run_case stream_lost_and_duplicated_nothing
((LAB_FAILED == 0)) || show_logs
finish
