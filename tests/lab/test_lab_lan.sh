#!/usr/bin/env bash
# LAN discovery: two private nodes on one LAN, behind one NAT router, find
# each other by UDP beacon (discovery.lan) and link directly over the LAN.
#
#   p     203.0.113.10            public host, roster endpoint
#                                 tcp://203.0.113.10:7700 (no roles)
#   rtr-a 203.0.113.20            cone NAT, LAN 10.1.0.0/24
#   a1    10.1.0.2 behind rtr-a   discovery.lan on, beacons to 10.1.0.255
#   a2    10.1.0.3 behind rtr-a   discovery.lan on, beacons to 10.1.0.255
#   a3    10.1.0.4 behind rtr-a   discovery.lan off (the control)
#   x     10.1.0.9 behind rtr-a   no cohortd: sends forged beacons
#
# a1, a2 and a3 listen on 0.0.0.0 and advertise nothing, so no member knows
# an endpoint of theirs (not the roster, not a hello, not SWIM gossip, which
# carries only advertised or concrete listen addresses), and nobody has the
# rendezvous or relay role: all three reach p, and without discovery none of
# them can reach another. The beacon (source address of the datagram, port
# in it) is the only way a1 and a2 can learn where the other is.
#
# x sends forged beacons on the LAN: a random key with the right cluster tag
# and a member's key with a wrong tag must both be ignored; a member's key
# with the right tag is dialled (a beacon proves nothing; the CURVE
# handshake is what admits) and serves as the marker that the nodes have
# read the forged datagrams sent before it.
set -euo pipefail
# shellcheck source=tests/lab/lab.sh
source "$(dirname "${BASH_SOURCE[0]}")/lab.sh"
# shellcheck source=tests/lab/cohort.sh
source "$(dirname "${BASH_SOURCE[0]}")/cohort.sh"
lab_cohort_enter "$@"

# Daemons run across cases: no conntrack flush between them.
LAB_CASE_FLUSH=0
LINK_UP_LIMIT=15
LAN_BCAST=10.1.0.255
# Overlay ports the forged beacons announce (x listens on them).
PORT_RANDOM_KEY=7798 # a key no roster has, right cluster tag
PORT_WRONG_TAG=7797  # a member's key, another cluster's tag
PORT_MARKER=7799     # a member's key (a3), right tag: dialled

lab_internet 203.0.113.0/24
lab_public_host p 203.0.113.10
lab_nat rtr-a cone 203.0.113.20 10.1.0.0/24
lab_private_host a1 rtr-a 10.1.0.2
lab_private_host a2 rtr-a 10.1.0.3
lab_private_host a3 rtr-a 10.1.0.4
lab_private_host x rtr-a 10.1.0.9

lab_cluster_init labcluster
lab_member p --endpoint tcp://203.0.113.10:7700
lab_member a1
lab_member a2
lab_member a3
lab_roster_sign
DISCOVERY=(discovery.lan=true "discovery.address=\"$LAN_BCAST\"" discovery.interval=1s)
lab_node_config p 203.0.113.10 "listen.advertise=[tcp://203.0.113.10:7700]"
lab_node_config a1 0.0.0.0 "${DISCOVERY[@]}"
lab_node_config a2 0.0.0.0 "${DISCOVERY[@]}"
lab_node_config a3 0.0.0.0 discovery.lan=false

T0=$(lab_now)
lab_node_start p p
lab_node_start a1 a1
lab_node_start a2 a2
lab_node_start a3 a3

LOGS_SHOWN=0
show_logs() {
    ((LOGS_SHOWN)) && return 0
    LOGS_SHOWN=1
    {
        lab_link_report a1 a2
        local n
        for n in p a1 a2 a3; do
            lab_node_logs "$n"
            echo "---- $n: ss -tan"
            lab_exec "$n" ss -tan | sed 's/^/  | /'
        done
        echo "---- x: ss -tan"
        lab_exec x ss -tan | sed 's/^/  | /'
        [[ ${LAB_KEEP:-0} == 1 ]] || echo "(run with LAB_KEEP=1 to keep configs and logs)"
    } >&2
}

# log_has NODE ERE: NODE's log has a line matching ERE.
log_has() {
    grep -Eq -- "$2" "$LAB_DIR/log/$1.log"
}

discovered_direct() {
    # Polled until both sides show each other up over direct, noting when
    # a1 first showed each state of a2.
    local now seen="" link
    while :; do
        now=$(lab_now)
        link=$(lab_link a1 a2 2>/dev/null) || link=""
        if [[ -n $link && $seen != *"[$link]"* ]]; then
            seen+="[$link]"
            echo "figure: a1 sees a2 $link $(lab_secs $((now - T0))) s after the daemons were started"
        fi
        lab_links_are a1 a2 direct && break
        if ((now - T0 > LINK_UP_LIMIT * 1000000000)); then
            lab_link_report a1 a2 >&2
            fail "within $LINK_UP_LIMIT s, a1 and a2 did not both show each other up over link direct"
        fi
        sleep 0.1
    done
    echo "figure: a1 <-> a2 direct (both sides) $(lab_secs $(($(lab_now) - T0))) s after the daemons were started"
}

found_by_beacon() {
    # The dial came from a beacon: at least one side dialled the other's
    # LAN address with source=lan-beacon, and neither learned it otherwise.
    log_has a1 'peer\.dial node=a2 endpoint=tcp://10\.1\.0\.3:7700 source=lan-beacon' ||
        log_has a2 'peer\.dial node=a1 endpoint=tcp://10\.1\.0\.2:7700 source=lan-beacon' ||
        fail "neither a1 nor a2 logged a peer.dial with source=lan-beacon for the other"
    local n
    for n in a1 a2; do
        ! grep -E 'peer\.dial node=a[12] ' "$LAB_DIR/log/$n.log" | grep -v 'source=lan-beacon' >&2 ||
            fail "$n dialled a LAN peer from another source than the beacon (above)"
        log_has "$n" "discovery\.on port=7702 address=$LAN_BCAST" ||
            fail "$n: no discovery.on line in its log"
    done
}

connection_on_the_lan() {
    # The link is a TCP connection between 10.1.0.2 and 10.1.0.3 on port
    # 7700 (one each way at most: both sides may have dialled).
    local c
    c=$(lab_exec a1 ss -Htn state established "dst 10.1.0.3")
    [[ -n $c ]] || fail "a1: no established connection with a2 over the LAN"
    awk '$3 !~ /:7700$/ && $4 !~ /:7700$/ { bad = 1 } END { exit bad }' <<<"$c" ||
        fail "a1: a connection with a2 not on port 7700: $c"
    echo "figure: a1 <-> a2 connections over the LAN: $(grep -c . <<<"$c")"
}

request_a1_to_a2() {
    lab_request_case a1 a2
}

request_a2_to_a1() {
    lab_request_case a2 a1
}

unicast_both_ways() {
    lab_stream_start a1 a2 3000 0
    lab_stream_check a1 a2 20 direct
    lab_stream_start a2 a1 3000 0
    lab_stream_check a2 a1 20 direct
}

a3_not_discovered() {
    # a3 does not announce itself and knows no endpoint of a1 or a2: it is
    # up with p only. (By now a1 and a2 have sent several beacons each.)
    lab_wait_for 10 lab_link_is a3 p direct || fail "a3 does not show p up over direct"
    local n s
    for n in a1 a2; do
        s=$(lab_peer_get "$n" a3 state) || fail "$n does not list a3"
        [[ $s != up ]] || fail "$n shows a3 up: $(lab_link "$n" a3)"
        ! log_has "$n" 'peer\.dial node=a3 ' || fail "$n dialled a3: $(grep 'peer\.dial node=a3 ' \
            "$LAB_DIR/log/$n.log")"
    done
    s=$(lab_peer_get a3 a1 state) || fail "a3 does not list a1"
    [[ $s != up ]] || fail "a3 shows a1 up: $(lab_link a3 a1)"
}

# connections_to PORT: x saw a TCP connection (any state) on PORT.
connections_to() {
    lab_exec x ss -Htan "sport = :$1" | grep -v LISTEN || true
}

dialled_by_both() {
    local c
    c=$(connections_to "$1")
    [[ $c == *10.1.0.2:* && $c == *10.1.0.3:* ]]
}

dialled_by_any() {
    [[ -n $(connections_to "$1") ]]
}

forged_beacons_ignored() {
    local p
    for p in $PORT_RANDOM_KEY $PORT_WRONG_TAG $PORT_MARKER; do
        lab_listen x 10.1.0.9 "$p" "x-listen-$p"
    done
    # The forged ones first, then the marker: each node reads its beacon
    # socket in order, so once both have dialled the marker they have read
    # (and must have ignored) the others.
    local t0
    t0=$(lab_now)
    lab_beacon_send x "$LAN_BCAST" "$(lab_random_key_hex)" "$PORT_RANDOM_KEY"
    lab_beacon_send x "$LAN_BCAST" "$(lab_node_key_hex a3)" "$PORT_WRONG_TAG" othercluster
    lab_beacon_send x "$LAN_BCAST" "$(lab_node_key_hex a3)" "$PORT_MARKER"
    local marker=0 tm
    lab_wait_for 5 dialled_by_both "$PORT_MARKER" && marker=1
    tm=$(lab_now)
    # A dial of the others would have been started no later than the
    # marker's: a short window for its SYN all the same.
    if lab_wait_for $((marker ? 2 : 0)) dialled_by_any "$PORT_RANDOM_KEY"; then
        fail "a beacon with a key not in the roster was dialled: $(connections_to "$PORT_RANDOM_KEY")"
    fi
    ! dialled_by_any "$PORT_WRONG_TAG" ||
        fail "a beacon with another cluster's tag was dialled: $(connections_to "$PORT_WRONG_TAG")"
    ((marker)) ||
        fail "the marker beacon (a3's key, port $PORT_MARKER) was not dialled by both a1 and a2 within 5 s: '$(connections_to "$PORT_MARKER")'"
    echo "figure: forged member beacon dialled by a1 and a2 $(lab_secs $((tm - t0))) s after the first forged send"
    log_has a1 "peer\.dial node=a3 endpoint=tcp://10\.1\.0\.9:$PORT_MARKER source=lan-beacon" ||
        fail "a1: no peer.dial of a3 at the marker's endpoint"
    local n
    for n in a1 a2; do
        ! grep -E "10\.1\.0\.9:($PORT_RANDOM_KEY|$PORT_WRONG_TAG)" "$LAB_DIR/log/$n.log" >&2 ||
            fail "$n logged the endpoint of an ignored beacon (above)"
    done
}

still_direct() {
    lab_links_are a1 a2 direct || {
        lab_link_report a1 a2 >&2
        fail "a1 and a2 are no longer both on direct"
    }
}

run_case discovered_direct
if ((LAB_FAILED)); then
    show_logs
    echo "the other cases need the discovered link: not run"
    finish
fi
for c in found_by_beacon connection_on_the_lan request_a1_to_a2 request_a2_to_a1 \
    unicast_both_ways a3_not_discovered forged_beacons_ignored still_direct; do
    run_case "$c"
    ((LAB_FAILED == 0)) || show_logs
done
echo "figure: whole scenario $(lab_secs $(($(lab_now) - T0))) s after the daemons were started"
finish
