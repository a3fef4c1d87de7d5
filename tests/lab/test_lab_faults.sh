#!/usr/bin/env bash
# Faults on the network while a reliable stream runs (issue 8). Each fault
# gets its own paced stream (numbered reliable unicasts, lab_stream_start),
# checked afterwards on the receiver: every number sent delivered exactly
# once, in order (lab_stream_check). Figures: how long deliveries stalled,
# when they caught up with the sender again, messages sent and received,
# resends (sender's `resent`) and duplicates dropped (receiver's
# `duplicates_dropped`) during that stream.
#
#   r     203.0.113.10            public: roles rendezvous,relay, advertised
#   rtr-a 203.0.113.20            cone NAT
#   a     10.1.0.2 behind rtr-a
#   rtr-b 203.0.113.30            cone NAT
#   b     10.2.0.2 behind rtr-b   a <-> b: punched
#   rtr-c 203.0.113.40            symmetric NAT (MASQUERADE --random-fully)
#   c     10.3.0.2 behind rtr-c   c <-> a: relayed via r (cannot punch)
#
# Cases (after the setup ones):
#   conntrack_flush   `conntrack -F` on every router while a -> b (punched)
#                     and c -> a (relayed) stream. The cone NATs map the
#                     ports again as they were (port-preserving) once the
#                     inside speaks; the symmetric one maps c's connection to
#                     r to a new random port that r knows nothing of, so the
#                     connection breaks and c reconnects. Asserts: both pairs
#                     up again (any rung), both streams intact.
#   loss              a's link (a/eth0) loses 5% of its packets and delays
#                     what leaves 100 ms (lab_impair: sch_netem, or where the
#                     kernel lacks it iptables drops and nfq_delay) for 5 s
#                     of an a -> b stream. Asserts: a's round trip to b is
#                     over 90 ms (the delay is real), the stream intact and
#                     caught up after the impairment; figures: throughput
#                     during it, resends. Then 5000 messages unpaced under
#                     the same impairment.
#   heavy_loss        the same with 30% loss for 4 s: TCP backs off, the
#                     pair may move down the ladder; stream intact.
#   rendezvous_killed kill -9 of r while a and b are punched: the rendezvous
#                     only sets a punch up, so the punched link must stay up
#                     and carry the stream on, intact.
# (kill -9 of the relay in use: test_lab_relay_failover.sh.)
set -euo pipefail
# shellcheck source=tests/lab/lab.sh
source "$(dirname "${BASH_SOURCE[0]}")/lab.sh"
# shellcheck source=tests/lab/cohort.sh
source "$(dirname "${BASH_SOURCE[0]}")/cohort.sh"
lab_cohort_enter "$@"

# Daemons and links live across cases: no conntrack flush between them.
LAB_CASE_FLUSH=0
LINK_UP_LIMIT=30
RECOVER_LIMIT=20
RATE=1000

lab_internet 203.0.113.0/24
lab_public_host r 203.0.113.10
lab_nat rtr-a cone 203.0.113.20 10.1.0.0/24
lab_private_host a rtr-a 10.1.0.2
lab_nat rtr-b cone 203.0.113.30 10.2.0.0/24
lab_private_host b rtr-b 10.2.0.2
lab_nat rtr-c symmetric 203.0.113.40 10.3.0.0/24
lab_private_host c rtr-c 10.3.0.2

lab_cluster_init labcluster
lab_member r --endpoint tcp://203.0.113.10:7700 --roles rendezvous,relay
lab_member a
lab_member b
lab_member c
lab_roster_sign
lab_node_config r 203.0.113.10 "listen.advertise=[tcp://203.0.113.10:7700]"
# upgrade_interval 5s: a pair that fell back to the relay (loss can make
# probes time out) goes back up to punched within seconds.
lab_node_config a 10.1.0.2 links.upgrade_interval=5s
lab_node_config b 10.2.0.2 links.upgrade_interval=5s
lab_node_config c 10.3.0.2 links.upgrade_interval=5s

T0=$(lab_now)
lab_node_start r r
lab_node_start a a
lab_node_start b b
lab_node_start c c

LOGS_SHOWN=0
show_logs() {
    ((LOGS_SHOWN)) && return 0
    LOGS_SHOWN=1
    {
        lab_link_report a b
        lab_link_report c a
        local n
        for n in r a b c; do
            lab_node_logs "$n"
            echo "---- $n: ss -tn"
            lab_exec "$n" ss -tn | sed 's/^/  | /'
        done
        for n in rtr-a rtr-b rtr-c; do
            echo "---- $n: conntrack -L -p tcp"
            lab_exec "$n" conntrack -L -p tcp 2>/dev/null | sed 's/^/  | /'
        done
        [[ ${LAB_KEEP:-0} == 1 ]] || echo "(run with LAB_KEEP=1 to keep configs and logs)"
    } >&2
}

_up_any() {
    [[ $(lab_link "$1" "$2") == "up "* && $(lab_link "$2" "$1") == "up "* ]]
}

# _c_mapping: the public ports rtr-c maps c's live connections to r:7700 to.
_c_mapping() {
    lab_exec rtr-c conntrack -L -p tcp 2>/dev/null |
        awk '/ESTABLISHED/ && /src=10.3.0.2 dst=203.0.113.10 / && /dport=7700 / {
            sub(/.*dport=/, ""); sub(/ .*/, ""); printf "%s ", $0 }'
}

setup_links() {
    lab_wait_for "$LINK_UP_LIMIT" lab_links_are a b punched || {
        lab_link_report a b >&2
        fail "within $LINK_UP_LIMIT s, a and b did not both show each other up over link punched"
    }
    lab_wait_for 10 lab_links_are c a relayed || {
        lab_link_report c a >&2
        fail "c and a are not both up relayed"
    }
    echo "figure: a <-> b punched, c <-> a relayed $(lab_secs $(($(lab_now) - T0))) s after the daemons were started"
}

conntrack_flush() {
    local ab ca t0 ports_before ports_after
    lab_stream_start a b 0 "$RATE"
    lab_stream_start c a 0 $((RATE / 2)) # relayed: slower (sanitizer builds too)
    lab_stream_flowing a b
    lab_stream_flowing c a
    ab=$(lab_stream_counters a b)
    ca=$(lab_stream_counters c a)
    ports_before=$(_c_mapping)
    t0=$(lab_now)
    lab_flush_conntrack
    echo "figure: conntrack -F on rtr-a, rtr-b, rtr-c; a -> b stream at $(lab_stream_received a b), c -> a at $(lab_stream_received c a)"
    # Both streams watched at once, c -> a in a subshell.
    (
        rc=0
        lab_stream_watch c a 3 "$RECOVER_LIMIT" || rc=1
        echo "$rc $LAB_STALL $LAB_RESUMED $LAB_CAUGHT_UP" >"$LAB_DIR/watch-c-a"
    ) &
    local watcher=$! rc stall resumed caught
    lab_stream_watch a b 3 "$RECOVER_LIMIT" || {
        lab_link_report a b >&2
        fail "a -> b: deliveries did not catch up within $RECOVER_LIMIT s of the flush (longest stall $LAB_STALL s)"
    }
    echo "figure: flush, a -> b ($(lab_link a b)): longest delivery pause $LAB_STALL s, deliveries resumed $LAB_RESUMED s and caught up with the sender $LAB_CAUGHT_UP s after the flush"
    wait "$watcher" || true
    read -r rc stall resumed caught <"$LAB_DIR/watch-c-a"
    ((rc == 0)) || {
        lab_link_report c a >&2
        fail "c -> a: deliveries did not catch up within $RECOVER_LIMIT s of the flush (longest stall $stall s)"
    }
    echo "figure: flush, c -> a ($(lab_link c a)): longest delivery pause $stall s, deliveries resumed $resumed s and caught up with the sender $caught s after the flush"
    lab_wait_for "$RECOVER_LIMIT" _up_any a b || fail "a and b not both up after the flush: $(lab_link_report a b)"
    lab_wait_for "$RECOVER_LIMIT" _up_any c a || fail "c and a not both up after the flush: $(lab_link_report c a)"
    ports_after=$(_c_mapping)
    echo "figure: rtr-c (symmetric) maps c's connections to r:7700 to ports: ${ports_before:-none} before the flush, ${ports_after:-none} after"
    echo "figure: recovered: a -> b $(lab_link a b), c -> a $(lab_link c a) ($(lab_secs $(($(lab_now) - t0))) s after the flush)"
    lab_stream_stop a
    lab_stream_stop c
    lab_stream_check a b 30
    lab_stream_check c a 30
    lab_stream_counters_figure a b "$ab" "flush, a -> b"
    lab_stream_counters_figure c a "$ca" "flush, c -> a"
}

# _rtt_ms A B: A's last measured round trip to B in ms (-1: none).
_rtt_ms() {
    ctl "$1" peers --json | python3 -c '
import json, sys
for p in json.load(sys.stdin):
    if p.get("name") == sys.argv[1]:
        print(int(p.get("rtt_us", -1000)) // 1000)
' "$2"
}

_rtt_at_least() {
    local ms
    ms=$(_rtt_ms "$1" "$2")
    [[ -n $ms ]] && ((ms >= $3))
}

loss() {
    local ab n0 n1 t0 t1 rate=$((RATE / 2)) impaired=5
    # back on punched first, if the flush moved them
    lab_wait_for "$LINK_UP_LIMIT" lab_links_are a b punched || {
        lab_link_report a b >&2
        fail "a and b not back on punched within $LINK_UP_LIMIT s"
    }
    lab_stream_start a b 0 "$rate"
    lab_stream_flowing a b
    ab=$(lab_stream_counters a b)
    t0=$(lab_now)
    n0=$(lab_stream_received a b)
    lab_impair a eth0 5 100
    echo "figure: impairment: $LAB_IMPAIR, $impaired s of an a -> b stream at $rate msg/s"
    # The delay is real: a's probes to b come back 100 ms later (netem or
    # nfq_delay; this suite installs what nfq_delay needs).
    lab_wait_for "$impaired" _rtt_at_least a b 90 ||
        fail "a -> b round trip $(_rtt_ms a b) ms under a 100 ms delay"
    echo "figure: loss: a -> b round trip $(_rtt_ms a b) ms under the impairment"
    # Deliveries go on under loss (bounded poll; the impairment lasts
    # $impaired s whatever happens).
    lab_wait_for "$impaired" lab_stream_received_at_least a b $((n0 + rate * impaired * 2)) || true
    t1=$(lab_now)
    n1=$(lab_stream_received a b)
    lab_unimpair a eth0
    echo "figure: loss: $((n1 - n0)) delivered in $(lab_secs $((t1 - t0))) s under impairment ($(awk -v n=$((n1 - n0)) -v ns=$((t1 - t0)) 'BEGIN { printf "%.0f", n / (ns / 1e9) }') msg/s, sender's pace $rate msg/s); link now $(lab_link a b)"
    ((n1 > n0)) || fail "no delivery at all in $impaired s under 5% loss"
    lab_stream_watch a b 1 "$RECOVER_LIMIT" || fail "a -> b: not caught up within $RECOVER_LIMIT s of the end of the impairment"
    echo "figure: loss: caught up with the sender $LAB_CAUGHT_UP s after the impairment ended"
    lab_stream_stop a
    lab_stream_check a b 30
    lab_stream_counters_figure a b "$ab" "loss"
    # As fast as the node takes them, under the same impairment.
    ab=$(lab_stream_counters a b)
    lab_impair a eth0 5 100
    lab_stream_start a b 5000 0
    lab_stream_check a b 30 "punched, 5% loss"
    lab_unimpair a eth0
    lab_stream_counters_figure a b "$ab" "loss, unpaced"
}

# Heavy loss: 30% of a's packets for 4 s. TCP backs off for seconds, the
# link's probes may time out and the pair move down the ladder and back:
# the session's resends carry the stream through, intact.
heavy_loss() {
    local ab t0 rungs="" l rate=$((RATE / 2)) impaired=4 watcher rc stall resumed caught
    lab_stream_start a b 0 "$rate"
    lab_stream_flowing a b
    ab=$(lab_stream_counters a b)
    t0=$(lab_now)
    lab_impair a eth0 30 100
    echo "figure: heavy loss: $LAB_IMPAIR, $impaired s of an a -> b stream at $rate msg/s"
    # deliveries watched from the start of the impairment (in a subshell)
    (
        rc=0
        lab_stream_watch a b $((impaired + 1)) "$RECOVER_LIMIT" || rc=1
        echo "$rc $LAB_STALL $LAB_RESUMED $LAB_CAUGHT_UP" >"$LAB_DIR/watch-a-b"
    ) &
    watcher=$!
    # the impairment lasts $impaired s; the rungs a shows meanwhile noted
    while (($(lab_now) - t0 < impaired * 1000000000)); do
        l=$(lab_link a b 2>/dev/null) || l="?"
        [[ $rungs == *"[$l]"* ]] || rungs+="[$l]"
        sleep 0.2
    done
    lab_unimpair a eth0
    echo "figure: heavy loss: a saw b as $rungs during it; $(lab_link a b) now"
    wait "$watcher" || true
    read -r rc stall resumed caught <"$LAB_DIR/watch-a-b"
    ((rc == 0)) || fail "a -> b: not caught up within $RECOVER_LIMIT s of the start of the heavy loss (longest pause $stall s)"
    echo "figure: heavy loss: longest delivery pause $stall s (deliveries resumed $resumed s after the impairment began); caught up with the sender $caught s after it began ($impaired s impairment)"
    lab_wait_for "$RECOVER_LIMIT" _up_any a b || fail "a and b not both up after the heavy loss: $(lab_link_report a b)"
    lab_stream_stop a
    lab_stream_check a b 30
    lab_stream_counters_figure a b "$ab" "heavy loss"
}

rendezvous_killed() {
    local ab n t0 watcher rc stall resumed caught
    lab_wait_for "$LINK_UP_LIMIT" lab_links_are a b punched || {
        lab_link_report a b >&2
        fail "a and b not on punched within $LINK_UP_LIMIT s"
    }
    lab_stream_start a b 0 "$RATE"
    lab_stream_flowing a b
    ab=$(lab_stream_counters a b)
    t0=$(lab_now)
    kill -KILL "${LAB_NODE_PID[r]}"
    n=$(lab_stream_received a b)
    echo "figure: kill -9 of rendezvous r; a -> b stream at $n"
    # The punched link carries the stream on: deliveries watched for 4 s
    # (in a subshell), the link on punched at every poll meanwhile.
    (
        rc=0
        lab_stream_watch a b 4 "$RECOVER_LIMIT" || rc=1
        echo "$rc $LAB_STALL $LAB_RESUMED $LAB_CAUGHT_UP" >"$LAB_DIR/watch-a-b"
    ) &
    watcher=$!
    while kill -0 "$watcher" 2>/dev/null; do
        lab_links_are a b punched || {
            lab_link_report a b >&2
            fail "the punched link went away $(lab_secs $(($(lab_now) - t0))) s after r was killed"
        }
        sleep 0.1
    done
    wait "$watcher" || true
    read -r rc stall resumed caught <"$LAB_DIR/watch-a-b"
    ((rc == 0)) || fail "a -> b: deliveries not keeping up after r was killed (longest pause $stall s)"
    (($(lab_stream_received a b) - n >= RATE * 3)) ||
        fail "only $(($(lab_stream_received a b) - n)) deliveries in $(lab_secs $(($(lab_now) - t0))) s after r was killed"
    echo "figure: rendezvous killed: a <-> b $(lab_link a b) $(lab_secs $(($(lab_now) - t0))) s after the kill, $(($(lab_stream_received a b) - n)) deliveries since; longest delivery pause $stall s"
    lab_stream_stop a
    lab_stream_check a b 30
    lab_stream_counters_figure a b "$ab" "rendezvous killed"
}

run_case setup_links
if ((LAB_FAILED)); then
    show_logs
    echo "the other cases need the links: not run"
    finish
fi
for c in conntrack_flush loss heavy_loss rendezvous_killed; do
    run_case "$c"
    ((LAB_FAILED == 0)) || show_logs
done
finish
