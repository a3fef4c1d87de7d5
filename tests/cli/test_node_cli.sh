#!/usr/bin/env bash
# cohortd run mode and the cohortctl node commands: a throwaway 3-node
# cluster (alpha and beta at site hq, gamma at plant) on 127.0.0.1 with free
# ports, a CA, certificates and a signed roster made with cohortctl, three
# real cohortd processes, and cohortctl talking to them through their local
# API sockets, as an operator would. Refusals first; the SIGTERM case last,
# as it stops gamma.
set -euo pipefail
# shellcheck source=tests/cli/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require_programs "$COHORTCTL" "$COHORTD"

CTL=$COHORTCTL
D=$COHORTD
NAMES=(alpha beta gamma)
declare -A SITE=([alpha]=hq [beta]=hq [gamma]=plant)
# shellcheck source=tests/cli/nodes.sh
source "$(dirname "${BASH_SOURCE[0]}")/nodes.sh"

# ---- the cluster ----

nodes_make
nodes_start_all
nodes_wait_up || exit 1

# Background cohortctl runs of a case end with the case.
bg_cleanup() {
    local j
    for j in $(jobs -p); do kill "$j" 2>/dev/null || true; done
}

# ---- refusals and failures ----

unreachable_node_is_reported() {
    expect_fail 1 "^cohortctl: status: cannot reach the node at ipc://$(re "$PWD")/none\.sock: is cohortd running\?" \
        -- "$CTL" status --api "ipc://$PWD/none.sock"
    # a socket file nobody serves any more
    expect_fail 1 "cannot reach the node at tcp://127\.0\.0\.1:1: is cohortd running\?" \
        -- "$CTL" peers --api tcp://127.0.0.1:1
    expect_fail 2 "which node\? give --api ENDPOINT" -- env -u COHORT_API "$CTL" status
    # -c finds the endpoint in the node's config
    expect_ok "^node +alpha$" -- "$CTL" status -c "${DIR[alpha]}/node.yaml"
    expect_ok "^node +beta$" -- env COHORT_API="${API[beta]}" "$CTL" status
}

cohortd_refuses_a_missing_api_directory() {
    cat >node.yaml <<EOF
node:
  name: alpha
  state_dir: $PWD
identity:
  key: ${DIR[alpha]}/node.key
  cert: ${DIR[alpha]}/node.crt
trust:
  ca: $CL/ca.crt
  roster: $CL/roster.yaml
api:
  endpoint: ipc://$PWD/no/such/dir/api.sock
EOF
    expect_fail 1 "^cohortd: node\.yaml: api\.endpoint: ipc://$(re "$PWD")/no/such/dir/api\.sock: directory '$(re "$PWD")/no/such/dir' does not exist$" \
        -- "$D" -c node.yaml
}

# alpha's config, with the key and certificate files given, in $PWD.
alpha_yaml_with() {
    cat >node.yaml <<EOF
node:
  name: alpha
  state_dir: $PWD/state
identity:
  key: $1
  cert: $2
trust:
  ca: $CL/ca.crt
  roster: $CL/roster.yaml
listen:
  port: 1
api:
  endpoint: ipc://$PWD/state/api.sock
EOF
    mkdir -p state
}

# Not only --check-config: the daemon itself refuses to start, before it
# listens anywhere.
cohortd_refuses_an_open_key_and_a_key_of_another_certificate() {
    cp -p "${DIR[alpha]}/node.key" open.key
    chmod 644 open.key
    alpha_yaml_with "$PWD/open.key" "${DIR[alpha]}/node.crt"
    expect_fail 1 "^cohortd: $(re "$PWD")/open\.key: private key is accessible by group or others \(mode 0644\); run chmod 600 on it$" \
        -- "$D" -c node.yaml
    chmod 604 open.key
    expect_fail 1 "open\.key: private key is accessible by group or others \(mode 0604\)" \
        -- "$D" -c node.yaml
    assert_no_file state/api.sock
    alpha_yaml_with "${DIR[beta]}/node.key" "${DIR[alpha]}/node.crt"
    expect_fail 1 "^cohortd: $(re "${DIR[alpha]}")/node\.crt: certificate does not match the private key $(re "${DIR[beta]}")/node\.key$" \
        -- "$D" -c node.yaml
    assert_no_file state/api.sock
}

second_cohortd_on_the_same_node_is_refused() {
    expect_fail 1 "another process \(a running cohortd\?\) serves it; refusing to take it over" \
        -- "$D" -c "${DIR[alpha]}/node.yaml"
    expect_ok "^peers +2/2 up$" -- ctl alpha status
}

send_to_an_unknown_node_fails() {
    expect_fail 1 "^cohortctl: send: unknown node 'zeta': not a member of the roster$" \
        -- ctl alpha send zeta hello
    expect_fail 2 "usage: cohortctl send NODE" -- ctl alpha send
    expect_fail 2 "--header: must be KEY=VALUE" -- ctl alpha send beta --header novalue x
}

req_without_responders_fails_fast() {
    local t0=$SECONDS
    expect_fail 1 "^cohortctl: req: no responders for 'nobody\.home'$" -- ctl alpha req nobody.home hi
    ((SECONDS - t0 <= 2)) || fail "no responders took $((SECONDS - t0)) s"
    expect_fail 1 "INVALID|must be dot-separated" -- ctl alpha req 'bad service' hi
}

pub_without_subscribers() {
    expect_ok "^published to 0 nodes: no subscribers$" -- ctl alpha pub nobody.listens hello
    expect_fail 1 "topic 'bad topic' must be dot-separated" -- ctl alpha pub 'bad topic' hello
}

# Sum of beta's garbage_dropped and handshakes_refused.
bad_input_count() {
    ctl beta status --json | grep -Eo '"(garbage_dropped|handshakes_refused)":[0-9]+' |
        awk -F: '{ s += $2 } END { print s + 0 }'
}

garbage_on_the_overlay_port_is_counted() {
    # Random bytes first: libzmq drops the connection at the greeting, and
    # the node must go on serving.
    head -c 4096 /dev/urandom >"/dev/tcp/127.0.0.1/${PORT[beta]}" 2>/dev/null || true
    expect_ok "^peers +2/2 up$" -- ctl beta status
    # A ZMTP 3.0 greeting asking for the NULL mechanism where CURVE is
    # required: a failed handshake the node sees and counts.
    local before after
    before=$(bad_input_count)
    {
        printf '\xff\x00\x00\x00\x00\x00\x00\x00\x01\x7f\x03\x00NULL'
        head -c 48 /dev/zero
        head -c 4096 /dev/urandom
        sleep 0.3
    } >"/dev/tcp/127.0.0.1/${PORT[beta]}" 2>/dev/null || true
    for _ in $(seq 1 50); do
        after=$(bad_input_count)
        ((after > before)) && break
        sleep 0.1
    done
    ((after > before)) || fail "garbage and handshake counters stayed at $before"
    expect_ok "^peers +2/2 up$" -- ctl beta status
    expect_ok "^published to" -- ctl beta pub after.garbage x
}

# ---- what works ----

status_and_peers_describe_the_cluster() {
    expect_ok -- ctl alpha status
    out_has "^node +alpha$"
    out_has "^cluster +testcluster$"
    out_has "^site +hq$"
    out_has "^roster serial +[0-9]+$"
    out_has "^uptime +[0-9]+"
    out_has "^peers +2/2 up$"
    local c
    for c in "garbage dropped" "oversized dropped" "handshakes refused" "duplicates dropped" \
        resent "queue full" "delivery dropped" "delivery deferred" "delivery queued"; do
        out_has "^  $c +[0-9]+$"
    done
    expect_ok -- ctl alpha status --json
    out_has '^\{"node":"alpha","cluster":"testcluster","site":"hq",'
    out_has '"counters":\{"garbage_dropped":[0-9]+,'
    expect_ok -- ctl alpha peers
    out_has "^NAME +SITE +STATE +LINK +WHY-NOT-HIGHER +RTT +LAST-SEEN +MSGS-IN +MSGS-OUT +BYTES-IN +BYTES-OUT +UNACKED +THROTTLED +FINGERPRINT$"
    local fp
    fp=$(cert_fp "${DIR[gamma]}/node.crt")
    out_has "^beta +hq +up +direct +- +[0-9.]+ms +[0-9.]+s ago( +[0-9]+){6} +[0-9a-f]{16}$"
    out_has "^gamma +plant +up +direct .* ${fp:0:16}$"
    expect_ok -- ctl alpha peers --json
    out_has "\"name\":\"gamma\",\"site\":\"plant\",\"state\":\"up\",.*\"fingerprint\":\"$fp\""
}

api_socket_is_0660() {
    assert_mode "${DIR[alpha]}/state/api.sock" 660
    [[ -S ${DIR[alpha]}/state/api.sock ]] || fail "not a socket"
}

# The socket's mode is the access control: a user outside its group is
# refused, and told so at once; one in its group is served. (Root ignores
# file modes, so the case drops to nobody, which needs root.)
api_socket_admits_only_its_owner_and_group() {
    if [[ $(id -u) != 0 ]] || ! command -v setpriv >/dev/null; then
        echo "skipped: needs root and setpriv"
        return 0
    fi
    local sock=${DIR[alpha]}/state/api.sock d gid
    gid=$(stat -c %g "$sock")
    # Anyone may traverse the directories down to the socket (not list
    # them), so that only the socket's own mode decides.
    local -a dirs=()
    d=$(dirname "$sock")
    while [[ $d == "$CLI_TMP"* ]]; do
        dirs+=("$d:$(stat -c %a "$d")")
        chmod go+x "$d"
        d=$(dirname "$d")
    done
    local nobody=(setpriv --reuid=65534 --regid=65534)
    expect_fail 1 "^cohortctl: status: cannot reach the node at ipc://$(re "$sock"): permission denied" \
        -- "${nobody[@]}" --clear-groups "$CTL" status --api "${API[alpha]}"
    expect_ok "^node +alpha$" -- "${nobody[@]}" --groups="$gid" "$CTL" status --api "${API[alpha]}"
    local entry
    for entry in "${dirs[@]}"; do chmod "${entry##*:}" "${entry%:*}"; done
}

unicast_reaches_a_subscriber_of_its_subject() {
    trap bg_cleanup EXIT
    ctl beta sub 'jobs.>' --count 1 --timeout 10 >sub.out 2>sub.err &
    local sub=$!
    wait_for sub.err "subscribed to 'jobs\.>'"
    expect_ok "^queued for beta \(5 bytes\)$" -- ctl alpha send beta --subject jobs.resize --header k=v hello
    local rc=0
    wait "$sub" || rc=$?
    [[ $rc == 0 ]] || fail "sub exited $rc: $(cat sub.err)"
    assert_eq "sub output" "jobs.resize alpha: hello" "$(cat sub.out)"
    # a unicast whose subject nobody on beta wants is dropped and counted
    expect_ok -- ctl alpha send beta --subject nobody.wants it
}

stream_delivers_every_number_once_in_order() {
    trap bg_cleanup EXIT
    ctl beta sub seq --count 3000 --timeout 60 >sub.out 2>sub.err &
    local sub=$!
    wait_for sub.err "subscribed to 'seq'"
    expect_ok "^sent 3000 in [0-9.]+ s \([0-9]+ msg/s\)$" -- ctl alpha stream beta --subject seq --count 3000
    local rc=0
    wait "$sub" || rc=$?
    [[ $rc == 0 ]] || fail "sub exited $rc: $(cat sub.err)"
    assert_eq "deliveries in order" "$(seq 1 3000 | sed 's/^/seq alpha: /')" "$(cat sub.out)"
    # --size pads the number; --rate paces: 20 at 100/s take about 0.2 s
    local t0=$EPOCHREALTIME
    expect_ok "^sent 20 in" -- ctl alpha stream beta --subject pad --count 20 --rate 100 --size 64
    awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { exit !(b - a >= 0.18) }' ||
        fail "--rate 100 sent 20 messages in less than 0.18 s"
    expect_fail 1 "message 1 not sent: unknown node 'zeta'" -- ctl alpha stream zeta --count 1
    expect_fail 2 "--rate" -- ctl alpha stream beta --rate 0
    expect_fail 2 "usage: cohortctl stream NODE" -- ctl alpha stream
}

sub_receives_a_publish() {
    trap bg_cleanup EXIT
    ctl beta sub 'orders.>' --count 1 --timeout 10 >sub.out 2>sub.err &
    local sub=$!
    wait_for sub.err "subscribed to 'orders\.>'"
    # interest travels to alpha on its own; publish once it has
    for _ in $(seq 1 50); do
        run ctl alpha pub orders.eu.new "o1"
        grep -q "published to 1 node" <<<"$OUT" && break
        sleep 0.1
    done
    assert_eq "pub" "published to 1 node(s)" "$OUT"
    local rc=0
    wait "$sub" || rc=$?
    [[ $rc == 0 ]] || fail "sub exited $rc: $(cat sub.err)"
    assert_eq "sub output" "orders.eu.new alpha: o1" "$(cat sub.out)"
    expect_fail 1 "timeout: 0 of 1 message\(s\)" -- ctl beta sub 'quiet.>' --count 1 --timeout 300ms
}

req_is_answered_by_serve() {
    trap bg_cleanup EXIT
    ctl gamma serve echo --echo >echo.out 2>echo.err &
    wait_for echo.err "serving 'echo'"
    ctl gamma serve upper --exec 'tr a-z A-Z' >upper.out 2>upper.err &
    wait_for upper.err "serving 'upper'"
    ctl gamma serve broken --exec 'echo oops >&2; exit 3' >broken.out 2>broken.err &
    wait_for broken.err "serving 'broken'"
    for _ in $(seq 1 50); do # until gamma's interest reached alpha
        run ctl alpha req echo "hi there"
        [[ $RC == 0 ]] && break
        sleep 0.1
    done
    assert_eq "req echo" "hi there" "$OUT"
    wait_for echo.out "^echo alpha: hi there$"
    expect_ok "^HELLO$" -- ctl alpha req upper hello
    expect_fail 1 "^cohortctl: req: 'broken' on gamma answered error: command exited with status 3: oops$" \
        -- ctl alpha req broken x
    # stdin as the payload
    OUT=$(printf 'from stdin' | ctl beta req upper -) || CLI_LAST_CMD="" fail "req upper - failed"
    assert_eq "req from stdin" "FROM STDIN" "$OUT"
}

sighup_applies_reloadable_keys() {
    local log=${DIR[alpha]}/log cfg=${DIR[alpha]}/node.yaml big
    cp "$cfg" node.yaml.orig
    big=$(head -c 2048 /dev/zero | tr '\0' x)
    expect_ok "^queued for beta \(2048 bytes\)$" -- ctl alpha send beta "$big"
    # refusals first: a file that does not load changes nothing, all of it
    { cat node.yaml.orig && printf 'limits:\n  max_message_size: 1KiB\n  send_queue: [\n'; } >"$cfg"
    kill -HUP "${PID[alpha]}"
    wait_for "$log" "config\.reload\.failed error=\"$(re "$cfg"):17:1: invalid YAML: .*\" running=previous$"
    expect_ok "^queued for beta \(2048 bytes\)$" -- ctl alpha send beta "$big"
    { cat node.yaml.orig && printf 'limits:\n  max_message_size: 1KiB\n  send_queue: 5\n'; } >"$cfg"
    kill -HUP "${PID[alpha]}"
    wait_for "$log" "config\.reload\.failed error=\"$(re "$cfg"):16:15: limits\.send_queue: must be 16\.\.1000000, got '5'\" running=previous$"
    expect_ok "^queued for beta \(2048 bytes\)$" -- ctl alpha send beta "$big"
    # every reloadable key at once; listen.port is named, not applied
    { sed "s/^  port: .*/  port: 1/" node.yaml.orig &&
        printf 'log:\n  level: debug\nlimits:\n  max_message_size: 1KiB\n  send_queue: 500\n'; } >"$cfg"
    kill -HUP "${PID[alpha]}"
    wait_for "$log" "config\.reload applied=log\.level,limits\.max_message_size,limits\.send_queue$"
    wait_for "$log" "config\.reload\.restart_needed keys=listen\.port$"
    expect_fail 1 "^cohortctl: send: message larger than limits\.max_message_size$" -- ctl alpha send beta "$big"
    expect_ok "^queued for beta \(1000 bytes\)$" -- ctl alpha send beta "${big:0:1000}"
    expect_ok "^peers +2/2 up$" -- ctl alpha status
    # log.format applies at once: the line saying so is already JSON
    { cat node.yaml.orig && printf 'log:\n  format: json\n'; } >"$cfg"
    kill -HUP "${PID[alpha]}"
    wait_for "$log" '^\{"ts":"[0-9T:.-]+Z","level":"info","msg":"config\.reload applied=log\.level,log\.format,limits\.max_message_size,limits\.send_queue"\}$'
    expect_ok "^queued for beta \(2048 bytes\)$" -- ctl alpha send beta "$big"
    cp node.yaml.orig "$cfg"
    kill -HUP "${PID[alpha]}"
    wait_for "$log" "^[0-9T:.-]+Z info config\.reload applied=log\.format$"
    kill -HUP "${PID[alpha]}"
    wait_for "$log" "^[0-9T:.-]+Z info config\.reload changed=none$"
    expect_ok "^peers +2/2 up$" -- ctl alpha status
}

# Messages sent to a node while it is down reach the application that
# subscribes after its restart, though peers resend them (and the node
# acknowledges them) before any application could subscribe.
restarted_node_keeps_what_came_before_its_first_subscriber() {
    trap bg_cleanup EXIT
    kill -TERM "${PID[beta]}"
    wait_for "${DIR[beta]}/exit" "." 5
    for i in $(seq 1 50); do
        ctl alpha send beta --subject early.n "$i" >/dev/null || fail "send $i while beta is down"
    done
    start_node beta
    # beta is up (alpha resends at once) before any subscriber exists
    local up=0
    for _ in $(seq 1 100); do
        ctl alpha peers --json 2>/dev/null | grep -q '"name":"beta",[^}]*"state":"up"' && up=1 && break
        sleep 0.1
    done
    ((up)) || fail "beta did not come back up"
    sleep 0.5
    ctl beta sub 'early.>' --count 50 --timeout 10 >sub.out 2>sub.err ||
        fail "sub on the restarted beta: $(cat sub.err)"
    assert_eq "deliveries in order" "$(seq 1 50 | sed 's/^/early.n alpha: /')" "$(cat sub.out)"
}

sigterm_leaves_gracefully() {
    trap bg_cleanup EXIT
    ctl alpha events --count 1 --timeout 10 >events.out 2>events.err &
    local ev=$!
    wait_for events.err "listening"
    ctl gamma sub 'x.>' --timeout 20 >sub.out 2>sub.err &
    local sub=$! t0=$SECONDS
    wait_for sub.err "subscribed"
    kill -TERM "${PID[gamma]}"
    wait_for "${DIR[gamma]}/exit" "." 5
    assert_eq "cohortd exit code after SIGTERM" 0 "$(cat "${DIR[gamma]}/exit")"
    wait "$ev" || fail "events exited non-zero: $(cat events.err)"
    assert_eq "event" "member.left gamma reason=left" "$(cat events.out)"
    grep -Eq "daemon\.stopping signal=SIGTERM" "${DIR[gamma]}/log" || fail "no daemon.stopping in gamma's log"
    grep -Eq "node\.leaving peers_up=2 unacked=[0-9]+" "${DIR[gamma]}/log" || fail "no node.leaving in gamma's log"
    grep -Eq "daemon\.stopped node=gamma" "${DIR[gamma]}/log" || fail "no daemon.stopped in gamma's log"
    assert_no_file "${DIR[gamma]}/state/api.sock"
    # gamma's own clients are told at once, not after missed heartbeats
    local rc=0
    wait "$sub" || rc=$?
    assert_eq "sub exit code" 1 "$rc"
    grep -q "^cohortctl: sub: the node at ${API[gamma]} closed its API (cohortd is stopping)$" sub.err ||
        fail "sub said: $(cat sub.err)"
    ((SECONDS - t0 < 10)) || fail "sub took $((SECONDS - t0)) s to notice"
    expect_ok "^peers +1/2 up$" -- ctl alpha status
}

example_echo_service_answers_as_gamma() {
    local example
    example=$(dirname "$COHORTD")/cohort_example_echo
    [[ -x $example ]] || fail "$example: not built"
    trap bg_cleanup EXIT
    "$example" "${DIR[gamma]}/node.yaml" >example.out 2>example.err &
    wait_for example.out "serving 'echo'"
    for _ in $(seq 1 50); do
        run ctl alpha req echo "via libcohort"
        [[ $RC == 0 ]] && break
        sleep 0.1
    done
    assert_eq "req echo" "via libcohort" "$OUT"
    wait_for example.out "^echo to alpha: via libcohort$"
}

startup_line_names_the_node() {
    grep -Eq "^cohortd: node beta up: cluster testcluster, listening on tcp://127\.0\.0\.1:${PORT[beta]}, api at ipc://.*/beta/state/api\.sock$" \
        "${DIR[beta]}/log" || fail "no startup line in beta's log: $(head -3 "${DIR[beta]}/log")"
}

run_case unreachable_node_is_reported
run_case cohortd_refuses_a_missing_api_directory
run_case cohortd_refuses_an_open_key_and_a_key_of_another_certificate
run_case second_cohortd_on_the_same_node_is_refused
run_case send_to_an_unknown_node_fails
run_case req_without_responders_fails_fast
run_case pub_without_subscribers
run_case garbage_on_the_overlay_port_is_counted
run_case startup_line_names_the_node
run_case status_and_peers_describe_the_cluster
run_case api_socket_is_0660
run_case api_socket_admits_only_its_owner_and_group
run_case unicast_reaches_a_subscriber_of_its_subject
run_case stream_delivers_every_number_once_in_order
run_case sub_receives_a_publish
run_case req_is_answered_by_serve
run_case sighup_applies_reloadable_keys
run_case restarted_node_keeps_what_came_before_its_first_subscriber
run_case sigterm_leaves_gracefully
run_case example_echo_service_answers_as_gamma
finish
