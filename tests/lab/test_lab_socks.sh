#!/usr/bin/env bash
# Scenario 7, rung `direct` through a SOCKS5 proxy: a node in a site whose
# only way out is a SOCKS5 proxy joins through it (node.yaml proxy.socks5).
# The site's router forwards nothing at all (no NAT, FORWARD DROP); it runs
# Debian's dante-server (danted) on its LAN address, going out of its WAN
# side. The proxied node dials the public node through the proxy, and
# messages flow both ways over that one connection; without proxy.socks5 it
# cannot reach anyone. When the proxy stops and comes back, s redials through
# it: after a short outage and after one long enough for both members to
# give each other up.
#
#   p     203.0.113.10           public host, cohortd listening there,
#                                advertised tcp://203.0.113.10:7700
#   rtr-s 203.0.113.30           router that forwards nothing; danted at
#                                10.7.0.1:1080 (internal), wan0 (external)
#   s     10.7.0.2 behind rtr-s  cohortd listening on 10.7.0.2, nothing
#                                advertised; proxy.socks5: 10.7.0.1:1080
set -euo pipefail
# shellcheck source=tests/lab/lab.sh
source "$(dirname "${BASH_SOURCE[0]}")/lab.sh"
# shellcheck source=tests/lab/cohort.sh
source "$(dirname "${BASH_SOURCE[0]}")/cohort.sh"
lab_cohort_enter "$@"
if ! command -v danted >/dev/null 2>&1; then
    echo "lab: error: missing danted (install with: deploy/deps.sh test)" >&2
    exit 1
fi

# Daemons run across cases: no conntrack flush between them.
LAB_CASE_FLUSH=0
LINK_UP_LIMIT=20
P_IP=203.0.113.10
RTR_IP=203.0.113.30
PROXY_IP=10.7.0.1
PROXY_PORT=1080
S_IP=10.7.0.2

lab_internet 203.0.113.0/24
lab_public_host p "$P_IP"
# A lab router, then stripped of everything that lets a packet through: no
# source NAT, no forwarding rule (policy DROP), no forwarding at all. Its own
# INPUT still accepts the LAN and replies, so the proxy on it can serve the
# LAN and get its answers from the internet.
lab_nat rtr-s cone "$RTR_IP" 10.7.0.0/24
lab_exec rtr-s iptables -t nat -F POSTROUTING
lab_exec rtr-s iptables -F FORWARD
lab_exec rtr-s iptables -P FORWARD DROP
lab_exec rtr-s sysctl -qw net.ipv4.ip_forward=0
lab_private_host s rtr-s "$S_IP"

lab_cluster_init labcluster
lab_member p --endpoint "tcp://$P_IP:7700"
lab_member s
lab_roster_sign
lab_node_config p "$P_IP" "listen.advertise=[tcp://$P_IP:7700]"

# danted 1.4 (bookworm): no authentication, LAN clients may CONNECT anywhere.
# It stays in the foreground (no -D); -p writes its PID file.
DANTED_CONF=$LAB_DIR/danted.conf
cat >"$DANTED_CONF" <<EOF
logoutput: $LAB_DIR/log/danted-own.log
internal: $PROXY_IP port = $PROXY_PORT
external: wan0
socksmethod: none
clientmethod: none
user.privileged: root
user.unprivileged: nobody
client pass {
    from: 10.7.0.0/24 to: 0.0.0.0/0
    log: error connect disconnect
}
socks pass {
    from: 10.7.0.0/24 to: 0.0.0.0/0
    command: connect
    log: error connect disconnect
}
EOF

# show_logs: logs and sockets, once, after the first failed case.
LOGS_SHOWN=0
show_logs() {
    ((LOGS_SHOWN)) && return 0
    LOGS_SHOWN=1
    {
        lab_node_logs p
        lab_node_logs s
        echo "---- danted's log"
        tail -n 30 "$LAB_DIR/log/danted-own.log" "$LAB_DIR/log/danted.log" 2>&1 |
            sed 's/^/  | /' || true
        local ns
        for ns in p rtr-s s; do
            echo "---- $ns: ss -tn"
            lab_exec "$ns" ss -tn | sed 's/^/  | /'
        done
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

peer_is() {
    [[ $(peer_field "$1" "$2" STATE) == "$3" && $(peer_field "$1" "$2" LINK) == "$4" ]]
}

not_up() {
    [[ $(peer_field "$1" "$2" STATE) != up ]]
}

# peer_reason NODE PEER: why PEER's link on NODE is not higher (the
# WHY-NOT-HIGHER column; "-" when there is no reason).
peer_reason() {
    peer_field "$1" "$2" WHY-NOT-HIGHER
}

# established NS FILTER: established TCP connections in NS matching FILTER.
established() {
    lab_exec "$1" ss -Htn state established "$2"
}

count() {
    grep -c . <<<"$1" || true
}

# ---- cases ----

the_proxy_is_the_only_way_out() {
    local rc=0
    lab_tcp_connect s "$P_IP" 7700 2 || rc=$?
    [[ $rc == 124 ]] || fail "s -> p:7700 directly: expected a timeout (124, dropped), got $rc"
    lab_tcp_connect rtr-s "$P_IP" 7700 2 ||
        fail "the router itself cannot reach p:7700 (the proxy could not either)"
    lab_tcp_connect s "$PROXY_IP" "$PROXY_PORT" 2 ||
        fail "s cannot reach the proxy at $PROXY_IP:$PROXY_PORT"
}

# Without proxy.socks5, s dials p directly: the router drops the SYN, the
# link never comes up and s says why.
without_the_proxy_no_link() {
    lab_node_config s "$S_IP"
    lab_node_start s s
    local t0 reason link
    t0=$(date +%s%N)
    # direct_timeout is 2 s: by 4 s the reason is no longer "starting".
    lab_wait_for 5 reason_settled s p ||
        fail "s gives no reason for p's missing link within 5 s:
$(peer_row s p)"
    # And it stays down: watched until 6 s after the start.
    while (($(date +%s%N) - t0 < 6000000000)); do
        not_up s p || fail "s shows p up without a proxy:
$(peer_row s p)"
        not_up p s || fail "p shows s up although s has no way out:
$(peer_row p s)"
        sleep 0.5
    done
    link=$(peer_field s p LINK) || fail "s has no row for p"
    [[ $link == none ]] || fail "s: p's link is '$link', expected none:
$(peer_row s p)"
    reason=$(peer_reason s p)
    echo "figure: without the proxy, s shows p: link $link, reason '$reason'"
    peer_row s p | sed 's/^/    /'
    [[ -z $(established p "sport = :7700") ]] ||
        fail "p has an overlay connection although s has no way out:
$(established p "sport = :7700")"
    lab_node_stop s || fail "s: no graceful exit on SIGTERM"
    # p may have learnt nothing of s; whatever it holds must not be up.
    not_up p s || fail "p shows s up after the unproxied run"
}

reason_settled() {
    local r
    r=$(peer_reason "$1" "$2")
    [[ -n $r && $r != - && $r != starting ]]
}

link_up_both_ways() {
    if ! lab_wait_for "$LINK_UP_LIMIT" peer_is p s up direct ||
        ! lab_wait_for 5 peer_is s p up direct; then
        echo "  p's peers:" >&2
        peer_row p s | sed 's/^/    /' >&2
        echo "  s's peers:" >&2
        peer_row s p | sed 's/^/    /' >&2
        fail "within ${LINK_UP_LIMIT} s, p and s did not both show each other up over link direct"
    fi
    echo "figure: link up through the proxy $(lab_secs $(($(date +%s%N) - T0))) s after s was started"
    peer_row s p | sed 's/^/    /'
}

# s's one connection goes to the proxy; p's one overlay connection comes
# from the proxy (the router's WAN address), to p's listen port.
one_connection_through_the_proxy() {
    local on_s on_p on_s_to_p on_rtr
    on_s=$(established s "dst $PROXY_IP:$PROXY_PORT")
    on_s_to_p=$(established s "dst $P_IP")
    on_p=$(established p "sport = :7700")
    on_rtr=$(established rtr-s "dst $P_IP:7700")
    [[ $(count "$on_s") == 1 ]] || fail "expected one connection from s to the proxy; s has:
$(established s all)"
    [[ -z $on_s_to_p ]] || fail "s has a connection straight to p: $on_s_to_p"
    [[ $(count "$on_p") == 1 ]] || fail "expected one overlay connection on p; p has:
$on_p"
    awk -v r="$RTR_IP" '{ split($4, a, ":"); exit !(a[1] == r) }' <<<"$on_p" ||
        fail "p's overlay connection is not from the proxy's address $RTR_IP: $on_p"
    [[ $(count "$on_rtr") == 1 ]] || fail "expected one connection from the proxy to p; rtr-s has:
$on_rtr"
    grep -q "$P_IP" "$LAB_DIR/log/danted-own.log" ||
        fail "danted logged no connection to $P_IP"
}

serve_echo() {
    local ns
    ns=$(lab_node_ns "$1")
    lab_spawn "$ns" "serve-$1-$2" timeout 60 "$COHORTCTL" serve "$2" --echo \
        -c "$LAB_DIR/nodes/$1/node.yaml"
}

request_echoed() {
    local t0
    t0=$(date +%s%N)
    REQ_RC=0
    REQ_OUT=$(ctl "$1" req "$2" "$3" 2>&1) || REQ_RC=$?
    REQ_MS=$((($(date +%s%N) - t0) / 1000000))
    [[ $REQ_RC == 0 && $REQ_OUT == "$3" ]]
}

request_case() {
    local from=$1 to=$2 payload="ping from $1 to $2 through the proxy"
    serve_echo "$to" "echo-$to"
    if ! lab_wait_for 10 request_echoed "$from" "echo-$to" "$payload"; then
        request_echoed "$from" "echo-$to" "$payload" ||
            fail "$from -> service echo-$to on $to: no echo within 10 s; last attempt: exit $REQ_RC, output:
$REQ_OUT"
    fi
    echo "figure: $from -> $to request answered $LAB_WAITED s after the server started"
    request_echoed "$from" "echo-$to" "$payload again" ||
        fail "$from -> service echo-$to: a second request failed: exit $REQ_RC: $REQ_OUT"
    echo "figure: $from -> $to request round trip $REQ_MS ms (cohortctl start included)"
}

request_p_to_s() {
    request_case p s
}

request_s_to_p() {
    request_case s p
}

still_one_connection_after_traffic() {
    peer_is p s up direct || fail "p: s is no longer up over direct:
$(peer_row p s)"
    peer_is s p up direct || fail "s: p is no longer up over direct:
$(peer_row s p)"
    one_connection_through_the_proxy
}

# overlay_port_on_p: the source port of the one overlay connection on p
# (the proxy's side of it).
overlay_port_on_p() {
    established p "sport = :7700" | awk '{ n = split($4, a, ":"); print a[n]; exit }'
}

# A short proxy outage: danted stops (all of it, so the session it relayed
# closes) and comes back at once; s redials through it.
proxy_blip_stops() {
    overlay_port_on_p >"$LAB_DIR/port-before-blip"
    stop_danted || fail "danted did not exit within 5 s of SIGTERM (killed)"
}

new_overlay_connection() {
    local port
    port=$(overlay_port_on_p)
    [[ -n $port && $port != "$(<"$LAB_DIR/port-before-blip")" ]]
}

link_back_after_a_short_outage() {
    lab_wait_for 10 new_overlay_connection ||
        fail "no new connection through the proxy on p within 10 s of its restart:
$(established p "sport = :7700")"
    echo "figure: s redialled through the proxy $LAB_WAITED s after its restart"
    lab_wait_for 10 peer_is s p up direct || fail "s: p not back up over direct within 10 s:
$(peer_row s p)"
    lab_wait_for 5 peer_is p s up direct || fail "p: s not back up over direct:
$(peer_row p s)"
    request_case s p
    request_case p s
    one_connection_through_the_proxy
}

# A long proxy outage: both sides give the other up (member down after 5 s
# of silence) before the proxy returns.
proxy_down_long() {
    stop_danted || fail "danted did not exit within 5 s of SIGTERM (killed)"
    lab_wait_for 12 not_up s p || fail "s still shows p up 12 s after the proxy stopped:
$(peer_row s p)"
    echo "figure: s gave p up $LAB_WAITED s after the proxy stopped"
    lab_wait_for 5 not_up p s || fail "p still shows s up:
$(peer_row p s)"
    echo "  s's peers:"
    peer_row s p | sed 's/^/    /'
    echo "  p's peers:"
    peer_row p s | sed 's/^/    /'
}

# When the proxy is back, s's redial must bring the members back up on both
# sides, not only the link: s must be able to send to p again.
link_back_after_a_long_outage() {
    local ok=1
    lab_wait_for 10 peer_is p s up direct || {
        ok=0
        echo "  p's peers, 10 s after the proxy restarted:" >&2
        peer_row p s | sed 's/^/    /' >&2
    }
    lab_wait_for 5 peer_is s p up direct || {
        ok=0
        echo "  s's peers, 10 s after the proxy restarted:" >&2
        peer_row s p | sed 's/^/    /' >&2
    }
    ((ok)) || fail "after a proxy outage longer than the member timeout, p and s do not both
show each other up over direct again (the connection is back: see LINK)"
    request_case s p
    request_case p s
}

daemons_leave_gracefully() {
    lab_node_stop s || fail "s: no graceful exit on SIGTERM (log: $LAB_DIR/log/s.log)"
    echo "figure: s exited ${LAB_STOP_MS} ms after SIGTERM"
    lab_wait_for 5 not_up p s || fail "p still shows s up 5 s after s left:
$(peer_row p s)"
    lab_node_stop p || fail "p: no graceful exit on SIGTERM (log: $LAB_DIR/log/p.log)"
}

# ---- run ----

# stop_danted: stops danted and its children, by PID. Its I/O children
# outlive the main process and keep relaying the sessions they hold, so the
# whole tree is collected first (children by parent PID) and each signalled.
# Fails if one had to be killed.
stop_danted() {
    local pids=("$DANTED_PID") i=0 c pid rc=0
    while ((i < ${#pids[@]})); do
        for c in $(pgrep -P "${pids[$i]}" 2>/dev/null); do
            pids+=("$c")
        done
        i=$((i + 1))
    done
    for pid in "${pids[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        lab_stop "$pid" || rc=1
    done
    return "$rc"
}

# start_danted: danted in rtr-s, in the foreground (no -D); waits up to 5 s
# for it to listen. Sets DANTED_PID (its main process, "mother").
start_danted() {
    lab_spawn rtr-s danted danted -f "$DANTED_CONF" -p "$LAB_DIR/danted.pid"
    DANTED_PID=$LAB_PID
    if ! lab_wait_for 5 _lab_is_listening rtr-s "$PROXY_PORT"; then
        tail -n 20 "$LAB_DIR/log/danted.log" "$LAB_DIR/log/danted-own.log" >&2 2>/dev/null || true
        lab_die "danted did not listen on $PROXY_IP:$PROXY_PORT within 5 s"
    fi
}

# The proxy runs from the start: without proxy.socks5, s has it at hand and
# still cannot get out.
start_danted
lab_node_start p p

run_case the_proxy_is_the_only_way_out
run_case without_the_proxy_no_link
((LAB_FAILED == 0)) || show_logs

lab_node_config s "$S_IP" "proxy.socks5=\"$PROXY_IP:$PROXY_PORT\""
T0=$(date +%s%N)
lab_node_start s s

FAILED_BEFORE=$LAB_FAILED
run_case link_up_both_ways
if ((LAB_FAILED > FAILED_BEFORE)); then
    show_logs
    echo "the other cases need the link: not run"
    finish
fi
for c in one_connection_through_the_proxy request_p_to_s request_s_to_p \
    still_one_connection_after_traffic proxy_blip_stops; do
    run_case "$c"
    ((LAB_FAILED == 0)) || show_logs
done
# The proxy restarts between cases: what a case starts, its end stops.
start_danted
run_case link_back_after_a_short_outage
((LAB_FAILED == 0)) || show_logs
run_case proxy_down_long
((LAB_FAILED == 0)) || show_logs
start_danted
run_case link_back_after_a_long_outage
((LAB_FAILED == 0)) || show_logs
run_case daemons_leave_gracefully
((LAB_FAILED == 0)) || show_logs
stop_danted || echo "danted did not exit within 5 s of SIGTERM (killed)" >&2
finish
