#!/usr/bin/env bash
# Faults on a node while a reliable stream runs (issue 8): a peer killed
# (SIGKILL) mid-stream and restarted, and a state directory that cannot be
# written (read-only, then full) when a new roster arrives.
#
#   a     203.0.113.10            public, advertised: sends the streams
#   b     203.0.113.11            public, advertised: killed and restarted
#   c     203.0.113.12            public, advertised; node.state_dir is a
#                                 tmpfs of its own (made read-only, then
#                                 filled up)
#
# What the session layer promises across a receiver restart (session.h,
# node.c s_handle_epoch): delivery is node to node. The receiving node acks
# what it handed to its local API; the sender keeps every unacked message.
# A restarted node announces a new epoch in its handshake; the sender then
# renumbers its unacked messages as a new stream starting at seq 1
# (cohort_session_peer_restarted) and resends them, so everything the dead
# incarnation had not acknowledged - in particular all that was sent while
# it was down - reaches the new incarnation exactly once, in order. Not
# promised, because no layer acks what the application has consumed: the
# few messages in flight between the dead node and its subscriber at the
# moment of SIGKILL, which may be lost (acked, not yet read by the
# subscriber) or delivered twice (read by the old subscriber, ack not yet
# out: resent). What the restarted node receives before its application has
# subscribed again (peers resend within milliseconds of the handshake) is
# kept by its API server for the first subscriber (api: early unicasts),
# so nothing sent while b was down is lost. HOLD=1 holds a's traffic to b
# (iptables on b) from the kill until the new subscriber is in place, to
# take that path out of the picture.
#
# The check, from the sender's count N: the old subscriber's log is 1..L in
# order, the new one's F..N in order, and the crash window - duplicates
# across the two logs (F <= L) or numbers in neither (F > L + 1) - is at
# most CRASH_WINDOW messages.
set -euo pipefail
# shellcheck source=tests/lab/lab.sh
source "$(dirname "${BASH_SOURCE[0]}")/lab.sh"
# shellcheck source=tests/lab/cohort.sh
source "$(dirname "${BASH_SOURCE[0]}")/cohort.sh"
lab_cohort_enter "$@"

LAB_CASE_FLUSH=0
LINK_UP_LIMIT=20
RECOVER_LIMIT=20
RATE=${RATE:-500}
CRASH_WINDOW=${CRASH_WINDOW:-50}
A_IP=203.0.113.10

lab_internet 203.0.113.0/24
lab_public_host a 203.0.113.10
lab_public_host b 203.0.113.11
lab_public_host c 203.0.113.12

lab_cluster_init labcluster
lab_member a --endpoint tcp://203.0.113.10:7700
lab_member b --endpoint tcp://203.0.113.11:7700
lab_member c --endpoint tcp://203.0.113.12:7700
lab_roster_sign
lab_node_config a 203.0.113.10 "listen.advertise=[tcp://203.0.113.10:7700]"
lab_node_config b 203.0.113.11 "listen.advertise=[tcp://203.0.113.11:7700]"
lab_node_config c 203.0.113.12 "listen.advertise=[tcp://203.0.113.12:7700]"
# c's state directory on a filesystem of its own (in the lab's mount
# namespace), small enough to fill.
C_STATE=$LAB_DIR/nodes/c/state
mount -t tmpfs -o size=512k,mode=0700 lab-state-c "$C_STATE" || lab_die "cannot mount a tmpfs on $C_STATE"
# unmounted (lazily: c may still run) before lab_cleanup removes $LAB_DIR
_cleanup() {
    local rc=$?
    umount -l "$C_STATE" 2>/dev/null || true
    (exit "$rc")
    lab_cleanup
}
trap _cleanup EXIT

T0=$(lab_now)
lab_node_start a a
lab_node_start b b
lab_node_start c c

LOGS_SHOWN=0
show_logs() {
    ((LOGS_SHOWN)) && return 0
    LOGS_SHOWN=1
    {
        lab_link_report a b
        lab_link_report a c
        local n
        for n in a b c; do
            lab_node_logs "$n"
        done
        echo "---- c's state directory"
        find "$C_STATE" -maxdepth 1 -printf '%M %s %f\n' | sed 's/^/  | /'
        [[ ${LAB_KEEP:-0} == 1 ]] || echo "(run with LAB_KEEP=1 to keep configs and logs)"
    } >&2
}

_serial() {
    ctl "$1" status --json | grep -o '"roster_serial":[0-9]*' | sed 's/.*://'
}

_holds_serial() {
    [[ $(_serial "$1") == "$2" ]]
}

_expected_at_least() {
    (($(lab_stream_expected "$1") >= $2))
}

setup_links() {
    local x y
    for x in a b c; do
        for y in a b c; do
            [[ $x == "$y" ]] && continue
            lab_wait_for "$LINK_UP_LIMIT" lab_link_is "$x" "$y" direct || {
                lab_link_report "$x" "$y" >&2
                fail "$x does not see $y up direct within $LINK_UP_LIMIT s"
            }
        done
    done
    echo "figure: a, b, c all up direct $(lab_secs $(($(lab_now) - T0))) s after the daemons were started"
}

# ---- kill -9 of the receiver, and its restart ----

# _last LOG: the last number in LOG.
_last() {
    sed -n 's/^seq a: //p' "$1" | tail -n 1
}

# _new_log_caught_up LOG: LOG's last number is within a quarter second
# (plus 50) of what a's stream should have sent by now.
_new_log_caught_up() {
    local last
    last=$(_last "$1")
    ((${last:-0} + RATE / 4 + 50 >= $(lab_stream_expected a)))
}

# _new_log_done LOG: the sender has finished and LOG ends at its count.
_new_log_done() {
    local n
    n=$(lab_stream_sent a)
    [[ -n $n && $(sed -n 's/^seq a: //p' "$1" | tail -n 1) == "$n" ]]
}

peer_killed_and_restarted() {
    local ab t_kill t_release sent_at_kill log1 log2 n l1 f2 bad dup lost old_sub left
    log1=$LAB_DIR/log/stream-sub-b.1.log
    log2=$LAB_DIR/log/stream-sub-b.log
    lab_stream_start a b 0 "$RATE"
    lab_wait_for 10 lab_stream_received_at_least a b 500 || fail "b received $(lab_stream_received a b) stream messages in 10 s"
    ab=$(lab_stream_counters a b)
    t_kill=$(lab_now)
    kill -KILL "${LAB_NODE_PID[b]}"
    sent_at_kill=$(lab_stream_expected a)
    # HOLD=1: hold a's traffic to b until b's application is back (see the top).
    [[ ${HOLD:-0} == 0 ]] || lab_exec b iptables -I INPUT -s "$A_IP" -j DROP
    echo "figure: kill -9 of b; a's stream at about $sent_at_kill sent, $(lab_stream_received a b) received"
    # The old subscriber keeps running: it declares its node lost after 15 s
    # without a heartbeat (cohortctl S_LOST_MS); checked at the end. Its log
    # is renamed (it keeps writing to it).
    old_sub=$(cat "$LAB_DIR/log/stream-sub-b.pid")
    mv "$log2" "$log1"
    # b stays down for 2 s worth of the stream.
    lab_wait_for 10 _expected_at_least a $((sent_at_kill + RATE * 2)) || true
    lab_node_start b b
    lab_spawn b stream-sub-b timeout 300 "$COHORTCTL" sub seq -c "$LAB_DIR/nodes/b/node.yaml"
    lab_wait_for 5 grep -q "subscribed to 'seq'" "$log2" || fail "the new subscriber on b did not subscribe: $(cat "$log2")"
    t_release=$(lab_now)
    [[ ${HOLD:-0} == 0 ]] || lab_exec b iptables -D INPUT -s "$A_IP" -j DROP
    echo "figure: b restarted and resubscribed $(lab_secs $((t_release - t_kill))) s after the kill; a's traffic let through"
    lab_wait_for "$RECOVER_LIMIT" grep -q "^seq a: " "$log2" ||
        fail "nothing delivered to the new subscriber within $RECOVER_LIMIT s: $(lab_link_report a b)"
    echo "figure: first delivery to the restarted b $LAB_WAITED s after the release ($(lab_secs $(($(lab_now) - t_kill))) s after the kill)"
    lab_wait_for "$RECOVER_LIMIT" _new_log_caught_up "$log2" ||
        fail "a -> b: the new subscriber is at $(_last "$log2"), not caught up with a's $(lab_stream_expected a), within $RECOVER_LIMIT s"
    echo "figure: b caught up with a's stream $(lab_secs $(($(lab_now) - t_kill))) s after the kill"
    grep -q "peer.restarted node=b" "$LAB_DIR/log/a.log" || fail "a did not log peer.restarted node=b"
    # The stream goes on until the old subscriber has noticed its node is
    # gone (it must not stay attached to the new incarnation).
    left=$((20 - ($(lab_now) - t_kill) / 1000000000))
    ((left > 0)) || left=1
    lab_wait_for "$left" _gone "$old_sub" ||
        fail "the old subscriber on b still runs $(lab_secs $(($(lab_now) - t_kill))) s after its node was killed"
    grep -q "lost the node" "$log1" || fail "the old subscriber ended without saying it lost its node: $(tail -n 1 "$log1")"
    echo "figure: the old subscriber on b ended by itself ($(lab_secs $(($(lab_now) - t_kill))) s after the kill or earlier): $(tail -n 1 "$log1")"
    lab_stream_stop a
    lab_wait_for 30 _new_log_done "$log2" || true
    n=$(lab_stream_sent a)
    [[ -n $n ]] || fail "the sender did not finish"
    ! grep "cohortctl: stream: message" "$LAB_DIR/log/stream-send-a.log" >&2 || fail "cohortctl stream failed on a"
    l1=$(sed -n 's/^seq a: //p' "$log1" | tail -n 1)
    f2=$(grep -m 1 '^seq a: ' "$log2" | sed 's/^seq a: //')
    echo "figure: stream a -> b: $n sent; old subscriber 1..$l1 ($(grep -c '^seq a: ' "$log1") lines), new one $f2..$(sed -n 's/^seq a: //p' "$log2" | tail -n 1) ($(grep -c '^seq a: ' "$log2") lines)"
    # Each log: consecutive numbers, the old one from 1, the new one up to N.
    bad=$(sed -n 's/^seq a: //p' "$log1" | awk 'NR == 1 && $1 != 1 || NR > 1 && $1 != last + 1 { print NR ": " last " then " $1; exit } { last = $1 }')
    [[ -z $bad ]] || fail "old subscriber's log not 1, 2, 3...: line $bad"
    bad=$(sed -n 's/^seq a: //p' "$log2" | awk 'NR > 1 && $1 != last + 1 { print NR ": " last " then " $1; exit } { last = $1 } END { if (last != n) print "ends at " last ", not " n }' n="$n")
    [[ -z $bad ]] || fail "new subscriber's log not consecutive up to $n: $bad"
    dup=$((f2 <= l1 ? l1 - f2 + 1 : 0))
    lost=$((f2 > l1 + 1 ? f2 - l1 - 1 : 0))
    echo "figure: kill -9 of the receiver: crash window: $dup delivered twice (old and new subscriber), $lost lost (acked by the dead node, not read by its subscriber); sent while b was down or held: about $((RATE * (t_release - t_kill) / 1000000000)), all delivered once"
    ((dup <= CRASH_WINDOW && lost <= CRASH_WINDOW)) ||
        fail "crash window larger than $CRASH_WINDOW messages: $dup duplicates, $lost lost"
    ((f2 <= sent_at_kill)) ||
        fail "the new subscriber's log starts at $f2, after the about $sent_at_kill messages a had sent when b was killed"
    lab_stream_counters_figure a b "$ab" "peer restart"
}

_gone() {
    ! kill -0 "$1" 2>/dev/null
}

# ---- a state directory that cannot be written when a roster arrives ----

# _roster_fault HOW: with a stream a -> c running, makes c's state
# directory unwritable (HOW: readonly | full), adds a member to the roster
# and pushes it to a: a and b apply it, c refuses it (persist-failed),
# keeps its serial and goes on working; once the directory is fixed, c
# gets the roster again from a peer and applies it.
_roster_fault() {
    local how=$1 ac s0 s1 name t0 held
    s0=$(_serial c)
    lab_stream_start a c 0 "$RATE"
    lab_stream_flowing a c
    ac=$(lab_stream_counters a c)
    case $how in
        readonly) mount -o remount,ro "$C_STATE" ;;
        full)
            dd if=/dev/zero of="$C_STATE/filler" bs=4k 2>/dev/null || true
            ! (echo x >"$C_STATE/probe") 2>/dev/null || fail "c's state directory is not full"
            ;;
    esac
    echo "figure: c's state directory: $how ($(df -h --output=used,avail "$C_STATE" | tail -n 1 | tr -s ' '))"
    name=d$how
    lab_member "$name"
    "$COHORTCTL" roster sign "$LAB_DIR/roster.yaml" --ca "$LAB_CA" >/dev/null
    s1=$(sed -n 's/^serial: //p' "$LAB_DIR/roster.yaml")
    ((s1 > s0)) || fail "the new roster's serial $s1 is not above $s0"
    t0=$(lab_now)
    ctl a roster push "$LAB_DIR/roster.yaml" >/dev/null || fail "a refused the push of serial $s1"
    lab_wait_for 10 _holds_serial b "$s1" || fail "b holds serial $(_serial b), not $s1, 10 s after the push"
    echo "figure: $how: b applied serial $s1 $(lab_secs $(($(lab_now) - t0))) s after the push to a"
    lab_wait_for 10 grep -Eq "roster\.rejected source=gossip from=[ab] serial=$s1 held=$s0 reason=persist-failed" \
        "$LAB_DIR/log/c.log" || fail "c did not log roster.rejected ... reason=persist-failed for serial $s1"
    grep -m 1 -E "roster\.rejected .*serial=$s1 .*persist-failed" "$LAB_DIR/log/c.log" | sed 's/^/  | /'
    _holds_serial c "$s0" || fail "c holds serial $(_serial c), expected it to keep $s0"
    held=$(sed -n 's/^serial: //p' "$C_STATE/roster.yaml")
    [[ $held == "$s0" ]] || fail "c's held roster (state/roster.yaml) is at serial '$held', expected $s0"
    [[ -z $(find "$C_STATE" -maxdepth 1 \( -name '*.tmp.*' -o -name '*.next*' \)) ]] ||
        fail "the refusal left files in c's state directory: $(find "$C_STATE" -maxdepth 1 -name '*.tmp.*' -o -name '*.next*')"
    # still working: links up, the stream flowing
    { lab_link_is c a direct && lab_link_is c b direct; } || fail "c lost its links: $(lab_link c a), $(lab_link c b)"
    lab_stream_flowing a c
    # Fixed: c catches up from a peer (a peer resends a roster at most once
    # per NODE_ROSTER_RESEND_MS, 3 s, when c's probes show an older serial).
    t0=$(lab_now)
    case $how in
        readonly) mount -o remount,rw "$C_STATE" ;;
        full) rm -f "$C_STATE/filler" "$C_STATE/probe" ;;
    esac
    lab_wait_for 15 _holds_serial c "$s1" || fail "c holds serial $(_serial c), not $s1, 15 s after its state directory was fixed"
    echo "figure: $how: c applied serial $s1 $LAB_WAITED s after its state directory was fixed"
    held=$(sed -n 's/^serial: //p' "$C_STATE/roster.yaml")
    [[ $held == "$s1" ]] || fail "c's held roster is at serial '$held' after catching up, expected $s1"
    [[ -z $(find "$C_STATE" -maxdepth 1 \( -name '*.tmp.*' -o -name '*.next*' \)) ]] ||
        fail "leftover files in c's state directory: $(find "$C_STATE" -maxdepth 1 -name '*.tmp.*' -o -name '*.next*')"
    lab_stream_stop a
    lab_stream_check a c 30
    lab_stream_counters_figure a c "$ac" "state dir $how"
}

roster_state_dir_readonly() {
    _roster_fault readonly
}

roster_state_dir_full() {
    _roster_fault full
}

run_case setup_links
if ((LAB_FAILED)); then
    show_logs
    echo "the other cases need the links: not run"
    finish
fi
# peer_killed_and_restarted last: the b it restarts is stopped with its case.
for c in roster_state_dir_readonly roster_state_dir_full peer_killed_and_restarted; do
    run_case "$c"
    ((LAB_FAILED == 0)) || show_logs
done
finish
