#!/usr/bin/env bash
# Scenario 2, rung `punched`: two nodes behind two different cone NATs,
# neither with an endpoint anyone can dial, reach each other through a hole
# punched with the help of a public rendezvous node.
#
#   r     203.0.113.10            public host: cohortd with roles
#                                 rendezvous,relay, advertised
#                                 tcp://203.0.113.10:7700
#   rtr-a 203.0.113.20            cone NAT (MASQUERADE: keeps the source port)
#   a     10.1.0.2 behind rtr-a   nothing advertised
#   rtr-b 203.0.113.30            cone NAT
#   b     10.2.0.2 behind rtr-b   nothing advertised
#
# a and b dial r from their punch port 7701, so r sees each one's NAT
# mapping of that port (203.0.113.20:7701, 203.0.113.30:7701); the one with
# the smaller public key asks r to introduce them; both connect to the
# other's mapping from 7701 at once (TCP simultaneous open). Until that
# link answers its probes they talk through r (relayed).
set -euo pipefail
# shellcheck source=tests/lab/lab.sh
source "$(dirname "${BASH_SOURCE[0]}")/lab.sh"
# shellcheck source=tests/lab/cohort.sh
source "$(dirname "${BASH_SOURCE[0]}")/cohort.sh"
lab_cohort_enter "$@"

# Daemons run across cases: no conntrack flush between them (it would cut
# the live links, the punched one included).
LAB_CASE_FLUSH=0
LINK_UP_LIMIT=30

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
lab_node_config a 10.1.0.2
lab_node_config b 10.2.0.2

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

punched_both_ways() {
    # Polled until both sides are on punched, noting when a first showed
    # each rung (the relayed one carries the pair while the punch is made).
    local now seen="" link
    while :; do
        now=$(lab_now)
        link=$(lab_link a b 2>/dev/null) || link=""
        if [[ -n $link && $seen != *"[$link]"* ]]; then
            seen+="[$link]"
            echo "figure: a sees b $link $(lab_secs $((now - T0))) s after the daemons were started"
        fi
        lab_links_are a b punched && break
        if ((now - T0 > LINK_UP_LIMIT * 1000000000)); then
            lab_link_report a b >&2
            fail "within $LINK_UP_LIMIT s, a and b did not both show each other up over link punched"
        fi
        sleep 0.1
    done
    echo "figure: punched link a <-> b up (both sides) $(lab_secs $(($(lab_now) - T0))) s after the daemons were started"
}

punched_connection_between_the_nats() {
    # The link is one TCP connection from a's punch port to b's NAT mapping
    # of b's punch port, and the other way round on b: not through r.
    local on_a on_b
    on_a=$(lab_exec a ss -Htn state established "( sport = :7701 and dst 203.0.113.30 )")
    on_b=$(lab_exec b ss -Htn state established "( sport = :7701 and dst 203.0.113.20 )")
    [[ $(grep -c . <<<"$on_a") == 1 && $on_a == *203.0.113.30:7701* ]] ||
        fail "a: expected one connection from port 7701 to 203.0.113.30:7701, got:
$on_a"
    [[ $(grep -c . <<<"$on_b") == 1 && $on_b == *203.0.113.20:7701* ]] ||
        fail "b: expected one connection from port 7701 to 203.0.113.20:7701, got:
$on_b"
}

netcheck_port_preserving() {
    local v
    v=$(lab_netcheck_field a nat)
    echo "figure: netcheck on a: nat: $v"
    [[ $v == port-preserving* ]] || fail "netcheck on a: expected nat: port-preserving..., got:
$(ctl a netcheck 2>&1)"
    ctl a netcheck | grep -q '^observed: *tcp://203.0.113.20:7701 (by rendezvous r)' ||
        fail "netcheck on a: r should have observed tcp://203.0.113.20:7701:
$(ctl a netcheck 2>&1)"
}

request_a_to_b() {
    lab_request_case a b
}

request_b_to_a() {
    lab_request_case b a
}

unicast_both_ways() {
    lab_stream_start a b 3000 0
    lab_stream_check a b 30 punched
    lab_stream_start b a 3000 0
    lab_stream_check b a 30 punched
}

still_punched_after_traffic() {
    lab_links_are a b punched || {
        lab_link_report a b >&2
        fail "a and b are no longer both on punched"
    }
}

run_case punched_both_ways
if ((LAB_FAILED)); then
    show_logs
    echo "the other cases need the punched link: not run"
    finish
fi
for c in punched_connection_between_the_nats netcheck_port_preserving request_a_to_b \
    request_b_to_a unicast_both_ways still_punched_after_traffic; do
    run_case "$c"
    ((LAB_FAILED == 0)) || show_logs
done
finish
