#!/usr/bin/env bash
# Scenario 1, rung `direct`: a private node behind a cone NAT reaches a
# public node. The private node has no endpoint anyone can dial, so the
# public node cannot dial it: the private node dials, and messages flow both
# ways over that one connection.
#
#   p    203.0.113.10            public host, cohortd listening there,
#                                advertised tcp://203.0.113.10:7700
#   rtr-a 203.0.113.20           cone NAT (MASQUERADE), drops unsolicited inbound
#   a    10.1.0.2 behind rtr-a   cohortd listening on 10.1.0.2, nothing advertised
set -euo pipefail
# shellcheck source=tests/lab/lab.sh
source "$(dirname "${BASH_SOURCE[0]}")/lab.sh"
# shellcheck source=tests/lab/cohort.sh
source "$(dirname "${BASH_SOURCE[0]}")/cohort.sh"
lab_cohort_enter "$@"

# Daemons run across cases: no conntrack flush between them (it would drop
# p's half of the live connection until a speaks again).
LAB_CASE_FLUSH=0
LINK_UP_LIMIT=30

lab_internet 203.0.113.0/24
lab_public_host p 203.0.113.10
lab_nat rtr-a cone 203.0.113.20 10.1.0.0/24
lab_private_host a rtr-a 10.1.0.2

lab_cluster_init labcluster
lab_member p --endpoint tcp://203.0.113.10:7700
lab_member a
lab_roster_sign
lab_node_config p 203.0.113.10 "listen.advertise=[tcp://203.0.113.10:7700]"
lab_node_config a 10.1.0.2

T0=$(date +%s%N)
lab_node_start p p
lab_node_start a a

# show_logs: the nodes' logs and sockets, once, after the first failed case.
LOGS_SHOWN=0
show_logs() {
    ((LOGS_SHOWN)) && return 0
    LOGS_SHOWN=1
    {
        lab_node_logs p
        lab_node_logs a
        echo "---- p: ss -tn"
        lab_exec p ss -tn | sed 's/^/  | /'
        echo "---- a: ss -tn"
        lab_exec a ss -tn | sed 's/^/  | /'
        [[ ${LAB_KEEP:-0} == 1 ]] || echo "(run with LAB_KEEP=1 to keep configs and logs)"
    } >&2
}

# peer_field NODE PEER COLUMN: one column (by its header: STATE, LINK, ...)
# of PEER's row in `cohortctl peers` on NODE; fails if there is no such row.
peer_field() {
    ctl "$1" peers | awk -v p="$2" -v c="$3" '
        NR == 1 { for (i = 1; i <= NF; i++) if ($i == c) col = i; next }
        col && $1 == p { print $col; found = 1; exit }
        END { exit !found }'
}

# peer_row NODE PEER: PEER's row with the header, for messages.
peer_row() {
    ctl "$1" peers 2>&1 | awk -v p="$2" 'NR == 1 || $1 == p' || true
}

# peer_is NODE PEER STATE LINK: NODE shows PEER in STATE over LINK.
peer_is() {
    [[ $(peer_field "$1" "$2" STATE) == "$3" && $(peer_field "$1" "$2" LINK) == "$4" ]]
}

link_up_both_ways() {
    if ! lab_wait_for "$LINK_UP_LIMIT" peer_is p a up direct ||
        ! lab_wait_for 5 peer_is a p up direct; then
        echo "  p's peers:" >&2
        peer_row p a | sed 's/^/    /' >&2
        echo "  a's peers:" >&2
        peer_row a p | sed 's/^/    /' >&2
        fail "within ${LINK_UP_LIMIT} s, p and a did not both show each other up over link direct"
    fi
    echo "figure: link up $(lab_secs $(($(date +%s%N) - T0))) s after the daemons were started"
}

one_connection_from_a_to_p() {
    # a dialled p through its NAT; p never dialled a (it cannot).
    local on_p on_a
    on_a=$(lab_exec a ss -Htn state established "dst 203.0.113.10")
    on_p=$(lab_exec p ss -Htn state established "dst 203.0.113.20")
    [[ $(grep -c . <<<"$on_a") == 1 && $(grep -c . <<<"$on_p") == 1 ]] ||
        fail "expected exactly one TCP connection between a and p; a has:
$on_a
p has:
$on_p"
    awk '{ split($3, l, ":"); exit !(l[2] == 7700) }' <<<"$on_p" ||
        fail "the connection on p is not to its listen port 7700: $on_p"
}

# serve_echo NODE SERVICE: `cohortctl serve SERVICE --echo` on NODE, in the
# background until the case ends.
serve_echo() {
    local ns
    ns=$(lab_node_ns "$1")
    lab_spawn "$ns" "serve-$1-$2" timeout 120 "$COHORTCTL" serve "$2" --echo \
        -c "$LAB_DIR/nodes/$1/node.yaml"
}

# request_echoed NODE SERVICE PAYLOAD: a request from NODE to SERVICE gets
# PAYLOAD back, exactly. Sets REQ_OUT, REQ_RC and REQ_MS (the cohortctl
# round trip in milliseconds, process start included).
request_echoed() {
    local t0
    t0=$(date +%s%N)
    REQ_RC=0
    REQ_OUT=$(ctl "$1" req "$2" "$3" 2>&1) || REQ_RC=$?
    REQ_MS=$((($(date +%s%N) - t0) / 1000000))
    [[ $REQ_RC == 0 && $REQ_OUT == "$3" ]]
}

# request_case FROM TO: TO serves echo-TO; FROM's request gets its echo.
# Until TO's service is known on FROM, the request may find no responders:
# retried for up to 15 s.
request_case() {
    local from=$1 to=$2 payload="ping from $1 to $2 over the NAT"
    serve_echo "$to" "echo-$to"
    if ! lab_wait_for 15 request_echoed "$from" "echo-$to" "$payload"; then
        request_echoed "$from" "echo-$to" "$payload" ||
            fail "$from -> service echo-$to on $to: no echo within 15 s; last attempt: exit $REQ_RC, output:
$REQ_OUT"
    fi
    echo "figure: $from -> $to request answered $LAB_WAITED s after the server started"
    request_echoed "$from" "echo-$to" "$payload again" ||
        fail "$from -> service echo-$to: a second request failed: exit $REQ_RC: $REQ_OUT"
    echo "figure: $from -> $to request round trip $REQ_MS ms (cohortctl start included)"
}

request_p_to_a() {
    request_case p a
}

request_a_to_p() {
    request_case a p
}

unicast_both_ways() {
    lab_stream_start a p 3000 0
    lab_stream_check a p 30 direct
    lab_stream_start p a 3000 0
    lab_stream_check p a 30 direct
}

still_direct_after_traffic() {
    peer_is p a up direct || fail "p: a is no longer up over direct:
$(peer_row p a)"
    peer_is a p up direct || fail "a: p is no longer up over direct:
$(peer_row a p)"
}

daemons_leave_gracefully() {
    lab_node_stop a || fail "a: no graceful exit on SIGTERM (log: $LAB_DIR/log/a.log)"
    echo "figure: a exited ${LAB_STOP_MS} ms after SIGTERM"
    lab_wait_for 5 not_up p a || fail "p still shows a up 5 s after a left:
$(peer_row p a)"
    lab_node_stop p || fail "p: no graceful exit on SIGTERM (log: $LAB_DIR/log/p.log)"
}

not_up() {
    [[ $(peer_field "$1" "$2" STATE) != up ]]
}

run_case link_up_both_ways
if ((LAB_FAILED)); then
    show_logs
    echo "the other cases need the link: not run"
    finish
fi
for c in one_connection_from_a_to_p request_p_to_a request_a_to_p unicast_both_ways \
    still_direct_after_traffic \
    daemons_leave_gracefully; do
    run_case "$c"
    ((LAB_FAILED == 0)) || show_logs
done
finish
