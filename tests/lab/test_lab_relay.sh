#!/usr/bin/env bash
# Scenario 3, rung `relayed`: hole punching cannot cross a symmetric NAT, so
# a pair with a node behind one talks through a relay.
#
#   r1    203.0.113.10            public: roles rendezvous,relay, advertised
#   r2    203.0.113.11            public: role rendezvous, advertised (started
#                                 in the second half only)
#   rtr-a 203.0.113.20            symmetric NAT (MASQUERADE --random-fully)
#   a     10.1.0.2 behind rtr-a
#   rtr-b 203.0.113.30            cone NAT (MASQUERADE)
#   b     10.2.0.2 behind rtr-b
#   rtr-c 203.0.113.40            symmetric NAT
#   c     10.3.0.2 behind rtr-c   (started in the second half only)
#
# First half: r1, a and b. a (symmetric) and b (cone) end up relayed via
# r1; with one rendezvous node a's netcheck sees its port rewritten but
# cannot tell whether the NAT is symmetric. Second half: r2 and c start.
# a and c, both behind symmetric NATs, are relayed via r1; a and c are now
# observed by two rendezvous nodes, at two different ports: symmetric.
set -euo pipefail
# shellcheck source=tests/lab/lab.sh
source "$(dirname "${BASH_SOURCE[0]}")/lab.sh"
# shellcheck source=tests/lab/cohort.sh
source "$(dirname "${BASH_SOURCE[0]}")/cohort.sh"
lab_cohort_enter "$@"

LAB_CASE_FLUSH=0
LINK_UP_LIMIT=30

lab_internet 203.0.113.0/24
lab_public_host r1 203.0.113.10
lab_public_host r2 203.0.113.11
lab_nat rtr-a symmetric 203.0.113.20 10.1.0.0/24
lab_private_host a rtr-a 10.1.0.2
lab_nat rtr-b cone 203.0.113.30 10.2.0.0/24
lab_private_host b rtr-b 10.2.0.2
lab_nat rtr-c symmetric 203.0.113.40 10.3.0.0/24
lab_private_host c rtr-c 10.3.0.2

lab_cluster_init labcluster
lab_member r1 --endpoint tcp://203.0.113.10:7700 --roles rendezvous,relay
lab_member r2 --endpoint tcp://203.0.113.11:7700 --roles rendezvous
lab_member a
lab_member b
lab_member c
lab_roster_sign
lab_node_config r1 203.0.113.10 "listen.advertise=[tcp://203.0.113.10:7700]"
lab_node_config r2 203.0.113.11 "listen.advertise=[tcp://203.0.113.11:7700]"
# links.upgrade_interval 5s (default 30s; UPGRADE_INTERVAL overrides): a
# node that asked for a punch while its peer was still down (a for c: c
# starts late) gets "cannot introduce" from the rendezvous and asks again
# only an upgrade interval later; 5 s keeps that wait short.
UPGRADE=links.upgrade_interval=${UPGRADE_INTERVAL:-5s}
lab_node_config a 10.1.0.2 "$UPGRADE"
lab_node_config b 10.2.0.2 "$UPGRADE"
lab_node_config c 10.3.0.2 "$UPGRADE"

LOGS_SHOWN=0
show_logs() {
    ((LOGS_SHOWN)) && return 0
    LOGS_SHOWN=1
    {
        local n
        for n in "${LAB_NODE_NS[@]}"; do
            n=${n%% *}
            lab_node_logs "$n"
            echo "---- $n: ss -tn"
            lab_exec "$(lab_node_ns "$n")" ss -tn | sed 's/^/  | /'
        done
        [[ ${LAB_KEEP:-0} == 1 ]] || echo "(run with LAB_KEEP=1 to keep configs and logs)"
    } >&2
}

# relayed_pair X Y: waits until X and Y both show each other up relayed via
# r1, and prints when that happened. T0 is when their daemons started.
relayed_pair() {
    lab_wait_for "$LINK_UP_LIMIT" lab_links_are "$1" "$2" "relayed via r1" || {
        lab_link_report "$1" "$2" >&2
        fail "within $LINK_UP_LIMIT s, $1 and $2 did not both show each other up relayed via r1"
    }
    echo "figure: $1 <-> $2 relayed via r1 $(lab_secs $(($(lab_now) - T0))) s after the daemons were started"
}

# not_punched_after_trying X Y: both X and Y say punch-failed as the
# reason they are not on a higher rung (the punch was tried and failed), and
# the pair is still relayed.
not_punched_after_trying() {
    local x=$1 y=$2
    lab_wait_for 15 _reasons_are "$x" "$y" punch-failed || {
        lab_link_report "$x" "$y" >&2
        fail "$x and $y do not both give punch-failed as why-not-higher within 15 s"
    }
    echo "figure: $x and $y say punch-failed $(lab_secs $(($(lab_now) - T0))) s after the daemons were started"
    lab_links_are "$x" "$y" "relayed via r1" || {
        lab_link_report "$x" "$y" >&2
        fail "$x and $y left the relay after the failed punch"
    }
}

_reasons_are() {
    [[ $(lab_peer_get "$1" "$2" reason) == "$3" && $(lab_peer_get "$2" "$1" reason) == "$3" ]]
}

# ---- first half: r1, a (symmetric), b (cone) ----

T0=$(lab_now)
lab_node_start r1 r1
lab_node_start a a
lab_node_start b b

sym_cone_relayed() {
    relayed_pair a b
}

sym_cone_punch_fails() {
    not_punched_after_trying a b
}

sym_cone_messages_both_ways() {
    lab_request_case a b
    lab_request_case b a
    lab_stream_start a b 3000 0
    lab_stream_check a b 30 relayed
    lab_stream_start b a 3000 0
    lab_stream_check b a 30 relayed
}

netcheck_one_rendezvous_cannot_tell() {
    local v
    v=$(lab_netcheck_field a nat)
    echo "figure: netcheck on a (symmetric NAT, one rendezvous): nat: $v"
    [[ $v == "rewrites the port (one view only"* ]] ||
        fail "netcheck on a: expected 'rewrites the port (one view only...', got:
$(ctl a netcheck 2>&1)"
    v=$(lab_netcheck_field b nat)
    echo "figure: netcheck on b (cone NAT): nat: $v"
    [[ $v == port-preserving* ]] || fail "netcheck on b: expected port-preserving, got:
$(ctl b netcheck 2>&1)"
}

# ---- second half: r2 (rendezvous) and c (symmetric) join ----

start_r2_and_c() {
    # Started in the main shell below, not here: a case's processes are
    # stopped when it ends. This case only checks they came up.
    ctl r2 status >/dev/null || fail "r2 does not answer"
    ctl c status >/dev/null || fail "c does not answer"
}

sym_sym_relayed() {
    relayed_pair a c
}

sym_sym_punch_fails() {
    not_punched_after_trying a c
}

sym_sym_messages_both_ways() {
    lab_request_case a c
    lab_request_case c a
    lab_stream_start a c 3000 0
    lab_stream_check a c 30 relayed
    lab_stream_start c a 3000 0
    lab_stream_check c a 30 relayed
}

netcheck_two_rendezvous_symmetric() {
    local n v
    for n in a c; do
        # r2 started with c: a needs a moment to dial it and be observed.
        lab_wait_for 15 _observed_twice "$n" || fail "netcheck on $n: not observed by r1 and r2 within 15 s:
$(ctl "$n" netcheck 2>&1)"
        v=$(lab_netcheck_field "$n" nat)
        echo "figure: netcheck on $n (symmetric NAT, two rendezvous): nat: $v"
        ctl "$n" netcheck | grep '^observed:' | sed 's/^/  /'
        [[ $v == symmetric* ]] || fail "netcheck on $n: expected nat: symmetric..., got:
$(ctl "$n" netcheck 2>&1)"
    done
}

_observed_twice() {
    [[ $(ctl "$1" netcheck | grep -c '^observed: *tcp://') == 2 ]]
}

relay_counts_relayed_frames() {
    local f1 f2
    f1=$(lab_relayed_frames r1)
    f2=$(lab_relayed_frames r2)
    echo "figure: r1 relayed $f1 frames for others; r2 (no relay role) $f2"
    [[ $f1 =~ ^[0-9]+$ && $f1 -gt 0 ]] || fail "netcheck on r1: relayed frames '$f1', expected > 0"
    [[ $f2 == 0 ]] || fail "netcheck on r2 (not a relay): relayed frames '$f2', expected 0"
}

trace_shows_the_relay() {
    local out
    out=$(ctl a trace c) || fail "cohortctl trace c on a failed: $out"
    # shellcheck disable=SC2001 # indents every line
    sed 's/^/  /' <<<"$out"
    grep -q "^c: up, link relayed via r1" <<<"$out" || fail "trace c on a: expected 'c: up, link relayed via r1'"
    grep -q "hop 2: r1 -> c" <<<"$out" || fail "trace c on a: expected a second hop r1 -> c"
}

# What r1 forwards holds no plaintext: a unique marker sent a -> c (relayed
# via r1) must not appear in what crosses r1's interface. It could not
# anyway: every overlay connection is CURVE-encrypted on the wire, and
# inside that the relayed payload is sealed end to end between a and c, so
# r1 itself never holds the plaintext (checked in its debug log too).
relay_sees_no_plaintext() {
    command -v tcpdump >/dev/null || { echo "skipped: tcpdump not installed (deploy/deps.sh test)"; return 0; }
    local marker pcap packets
    marker="cohort-lab-plaintext-marker-$RANDOM$RANDOM$RANDOM"
    pcap=$LAB_DIR/r1.pcap
    lab_links_are a c "relayed via r1" || fail "a and c are not relayed via r1"
    lab_spawn r1 tcpdump-r1 timeout 60 tcpdump -i eth0 -n -U --immediate-mode -s 0 -w "$pcap" tcp port 7700
    local tcpdump_pid=$LAB_PID
    lab_wait_for 5 grep -q "listening on eth0" "$LAB_DIR/log/tcpdump-r1.log" ||
        fail "tcpdump on r1 did not start: $(cat "$LAB_DIR/log/tcpdump-r1.log")"
    lab_spawn c sub-marker timeout 60 "$COHORTCTL" sub marker -c "$LAB_DIR/nodes/c/node.yaml"
    lab_wait_for 5 grep -q "subscribed to 'marker'" "$LAB_DIR/log/sub-marker.log" ||
        fail "cohortctl sub on c did not subscribe"
    ctl a send c --subject marker "$marker $marker $marker" >/dev/null || fail "send a -> c failed"
    lab_wait_for 10 grep -q "$marker" "$LAB_DIR/log/sub-marker.log" ||
        fail "c did not receive the marker message within 10 s"
    lab_links_are a c "relayed via r1" || fail "a and c are no longer relayed via r1"
    sleep 0.5
    lab_stop "$tcpdump_pid" INT || true
    lab_exit_status tcpdump-r1 >/dev/null || true
    packets=$(sed -n 's/^\([0-9]*\) packets captured.*/\1/p' "$LAB_DIR/log/tcpdump-r1.log")
    echo "figure: tcpdump on r1's eth0: ${packets:-?} packets, $(stat -c %s "$pcap") bytes captured"
    # The capture saw the path: traffic from a's NAT and to c's NAT.
    [[ -n $(tcpdump -r "$pcap" -n src host 203.0.113.20 2>/dev/null) ]] ||
        fail "tcpdump on r1 captured nothing from a's NAT (203.0.113.20)"
    [[ -n $(tcpdump -r "$pcap" -n dst host 203.0.113.40 2>/dev/null) ]] ||
        fail "tcpdump on r1 captured nothing to c's NAT (203.0.113.40)"
    [[ $packets =~ ^[0-9]+$ && $packets -gt 0 ]] || fail "tcpdump on r1 captured no packets:
$(cat "$LAB_DIR/log/tcpdump-r1.log")"
    if grep -aqF "$marker" "$pcap"; then
        fail "the marker crossed r1's interface in plaintext"
    fi
    if grep -qF "$marker" "$LAB_DIR/log/r1.log"; then
        fail "the marker appears in r1's log"
    fi
}

run_case sym_cone_relayed
run_case sym_cone_punch_fails
run_case sym_cone_messages_both_ways
run_case netcheck_one_rendezvous_cannot_tell
((LAB_FAILED == 0)) || show_logs

T0=$(lab_now)
lab_node_start r2 r2
lab_node_start c c
run_case start_r2_and_c
run_case sym_sym_relayed
run_case sym_sym_punch_fails
run_case sym_sym_messages_both_ways
run_case netcheck_two_rendezvous_symmetric
run_case relay_counts_relayed_frames
run_case trace_shows_the_relay
run_case relay_sees_no_plaintext
((LAB_FAILED == 0)) || show_logs
finish
