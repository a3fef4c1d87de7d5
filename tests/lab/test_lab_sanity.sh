#!/usr/bin/env bash
# The NAT lab itself, checked with plain tools (bash /dev/tcp, nc, ss,
# conntrack) before any cohort scenario relies on it: NAT routers translate
# outbound connections, drop unsolicited inbound ones silently, a cone NAT
# keeps the source port and a symmetric one does not, TCP simultaneous open
# crosses two cone NATs and not a symmetric one, lab_cut cuts a path.
set -euo pipefail
# shellcheck source=tests/lab/lab.sh
source "$(dirname "${BASH_SOURCE[0]}")/lab.sh"
lab_enter "$@"

# Topology:
#   pub   203.0.113.10    public host      pub2  203.0.113.11   public host
#   rtr-a 203.0.113.20    cone NAT         a     10.1.0.2       behind rtr-a
#   rtr-c 203.0.113.30    cone NAT         c     10.3.0.2       behind rtr-c
#   rtr-s 203.0.113.40    symmetric NAT    s     10.4.0.2       behind rtr-s
lab_internet 203.0.113.0/24
lab_public_host pub 203.0.113.10
lab_public_host pub2 203.0.113.11
lab_nat rtr-a cone 203.0.113.20 10.1.0.0/24
lab_private_host a rtr-a 10.1.0.2
lab_nat rtr-c cone 203.0.113.30 10.3.0.0/24
lab_private_host c rtr-c 10.3.0.2
lab_nat rtr-s symmetric 203.0.113.40 10.4.0.0/24
lab_private_host s rtr-s 10.4.0.2

# expect_connect_rc WHAT WANT NS IP PORT: one TCP connect, and what came of it
# (0 connected, 124 timed out, 1 refused/unreachable).
expect_connect_rc() {
    local what=$1 want=$2 rc=0
    shift 2
    lab_tcp_connect "$@" || rc=$?
    local -A meaning=([0]="connected" [124]="timed out (dropped silently)" [1]="refused or unreachable (RST or ICMP)")
    [[ $rc == "$want" ]] ||
        fail "$what: expected ${meaning[$want]}, got exit $rc: ${meaning[$rc]:-unexpected}"
}

public_hosts_reach_each_other() {
    lab_listen pub2 203.0.113.11 8000 pub2-nc
    expect_connect_rc "pub -> pub2:8000" 0 pub 203.0.113.11 8000
}

private_host_reaches_public_host() {
    lab_listen pub 203.0.113.10 8000 pub-nc
    expect_connect_rc "a (behind rtr-a) -> pub:8000" 0 a 203.0.113.10 8000
    expect_connect_rc "s (behind rtr-s) -> pub:8000" 0 s 203.0.113.10 8000
}

public_host_sees_router_address() {
    local seen
    seen=$(lab_observed_source a pub 203.0.113.10 8000) ||
        fail "no connection from a showed up on pub"
    [[ ${seen%:*} == 203.0.113.20 ]] ||
        fail "pub saw the connection from a come from ${seen%:*}, expected rtr-a's public address 203.0.113.20"
    seen=$(lab_observed_source s pub 203.0.113.10 8000) ||
        fail "no connection from s showed up on pub"
    [[ ${seen%:*} == 203.0.113.40 ]] ||
        fail "pub saw the connection from s come from ${seen%:*}, expected rtr-s's public address 203.0.113.40"
}

unsolicited_inbound_to_router_is_dropped() {
    # a listens; nothing maps rtr-a's port 9000 to it. A SYN to the router's
    # public address must go unanswered: neither forwarded nor refused.
    lab_listen a 10.1.0.2 9000 a-nc
    expect_connect_rc "pub -> rtr-a:9000 (a listens on 9000 behind it)" 124 pub 203.0.113.20 9000
    expect_connect_rc "pub -> rtr-a:22 (nothing listens)" 124 pub 203.0.113.20 22
    expect_connect_rc "pub -> rtr-s:9000" 124 pub 203.0.113.40 9000
}

unsolicited_inbound_to_lan_is_dropped() {
    # Even a sender that routes the LAN range to the router (a neighbour on
    # the same segment can) gets nothing through, and no answer.
    lab_listen a 10.1.0.2 9000 a-nc
    lab_exec pub ip route add 10.1.0.0/24 via 203.0.113.20
    local rc=0
    lab_tcp_connect pub 10.1.0.2 9000 || rc=$?
    lab_exec pub ip route del 10.1.0.0/24 via 203.0.113.20
    [[ $rc == 124 ]] ||
        fail "pub -> 10.1.0.2:9000 routed via rtr-a: expected a silent drop (timeout), got exit $rc"
    # From inside the LAN the listener is there: the drop is the router's.
    expect_connect_rc "rtr-a -> a:9000 on the LAN" 0 rtr-a 10.1.0.2 9000
}

cone_nat_keeps_source_port() {
    local seen
    seen=$(lab_observed_source a pub 203.0.113.10 8000 40000) ||
        fail "no connection from a:40000 showed up on pub"
    [[ $seen == 203.0.113.20:40000 ]] ||
        fail "cone NAT: a connected from port 40000, pub saw $seen, expected 203.0.113.20:40000"
}

cone_nat_same_port_for_every_destination() {
    # The rendezvous sees the port the peer will be punched at.
    local s1 s2
    s1=$(lab_observed_source a pub 203.0.113.10 8000 40010) || fail "a:40010 -> pub: no connection"
    s2=$(lab_observed_source a pub2 203.0.113.11 8001 40010) || fail "a:40010 -> pub2: no connection"
    [[ $s1 == 203.0.113.20:40010 && $s2 == 203.0.113.20:40010 ]] ||
        fail "cone NAT: from a:40010, pub saw $s1 and pub2 saw $s2, expected 203.0.113.20:40010 for both"
}

symmetric_nat_changes_source_port() {
    local s1 s2
    s1=$(lab_observed_source s pub 203.0.113.10 8000 40000) || fail "s:40000 -> pub: no connection"
    s2=$(lab_observed_source s pub 203.0.113.10 8000 40001) || fail "s:40001 -> pub: no connection"
    [[ ${s1%:*} == 203.0.113.40 && ${s2%:*} == 203.0.113.40 ]] ||
        fail "symmetric NAT: pub saw $s1 and $s2, expected rtr-s's address 203.0.113.40"
    # A random port may equal the local one by chance (1 in ~64k); twice, not.
    [[ ${s1##*:} != 40000 || ${s2##*:} != 40001 ]] ||
        fail "symmetric NAT kept the source port: s:40000 -> $s1, s:40001 -> $s2"
}

# punch NS1 PEER1_PUBLIC NS2 PEER2_PUBLIC PORT: both sides connect to the
# other's public address at the same moment, each from local port PORT (the
# same port on both, as a port-preserving NAT maps it). Returns 0 if both
# connected within 3 s.
punch() {
    local n1=$1 ip1=$2 n2=$3 ip2=$4 port=$5 p1 p2 r1=0 r2=0
    lab_exec "$n1" timeout 8 nc -n -z -w 3 -p "$port" "$ip2" "$port" </dev/null >/dev/null 2>&1 &
    p1=$!
    lab_exec "$n2" timeout 8 nc -n -z -w 3 -p "$port" "$ip1" "$port" </dev/null >/dev/null 2>&1 &
    p2=$!
    wait "$p1" || r1=$?
    wait "$p2" || r2=$?
    [[ $r1 == 0 && $r2 == 0 ]]
}

tcp_simultaneous_open_crosses_two_cone_nats() {
    punch a 203.0.113.20 c 203.0.113.30 41000 ||
        fail "a (cone) and c (cone) connecting to each other's public ip:41000 at once did not both connect"
}

tcp_simultaneous_open_fails_through_symmetric_nat() {
    local rc=0
    punch a 203.0.113.20 s 203.0.113.40 41001 || rc=$?
    [[ $rc != 0 ]] ||
        fail "a (cone) and s (symmetric) connected by simultaneous open: the symmetric NAT kept its port"
}

flush_conntrack_forgets_mappings() {
    lab_observed_source a pub 203.0.113.10 8000 40020 >/dev/null || fail "a:40020 -> pub: no connection"
    [[ -n $(lab_exec rtr-a conntrack -L -p tcp --orig-port-src 40020 2>/dev/null) ]] ||
        fail "rtr-a tracks no connection from port 40020 after a connected from it"
    lab_flush_conntrack
    [[ -z $(lab_exec rtr-a conntrack -L -p tcp --orig-port-src 40020 2>/dev/null) ]] ||
        fail "rtr-a still tracks the connection from port 40020 after lab_flush_conntrack"
}

cut_and_uncut_a_path() {
    lab_listen pub 203.0.113.10 8000 pub-nc
    lab_cut rtr-a pub
    local rc=0
    lab_tcp_connect a 203.0.113.10 8000 || rc=$?
    lab_tcp_connect c 203.0.113.10 8000 ||
        { lab_uncut rtr-a pub; fail "with rtr-a <-> pub cut, c (behind rtr-c) could not reach pub"; }
    lab_uncut rtr-a pub
    [[ $rc == 124 ]] || fail "with rtr-a <-> pub cut, a -> pub:8000: expected a silent drop (timeout), got exit $rc"
    lab_flush_conntrack
    expect_connect_rc "after lab_uncut rtr-a pub: a -> pub:8000" 0 a 203.0.113.10 8000
}

run_case public_hosts_reach_each_other
run_case private_host_reaches_public_host
run_case public_host_sees_router_address
run_case unsolicited_inbound_to_router_is_dropped
run_case unsolicited_inbound_to_lan_is_dropped
run_case cone_nat_keeps_source_port
run_case cone_nat_same_port_for_every_destination
run_case symmetric_nat_changes_source_port
run_case tcp_simultaneous_open_crosses_two_cone_nats
run_case tcp_simultaneous_open_fails_through_symmetric_nat
run_case flush_conntrack_forgets_mappings
run_case cut_and_uncut_a_path
finish
