#!/usr/bin/env bash
# Membership with real cohortd processes: a 5-node cluster on 127.0.0.1
# (tests/bench/cluster.sh) with fast SWIM timings. Every node converges on
# every member alive; a node frozen for a moment (SIGSTOP) is suspected and
# refutes, never failed; kill -9 is seen as failed everywhere, SIGTERM as
# left; a restarted node rejoins; a node that was down while the roster
# changed catches up from a peer when it comes back.
set -euo pipefail
# shellcheck source=tests/cli/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require_programs "$COHORTCTL" "$COHORTD"
CL_DIR=$CLI_TMP/cluster
CL_NO_TRAP=1
mkdir -p "$CL_DIR"
# shellcheck source=tests/bench/cluster.sh
source "$COHORT_SRC/tests/bench/cluster.sh"
trap 'cl_cleanup; rm -rf "$CLI_TMP"' EXIT

# Probes every 200 ms, so each node probes each other member about once a
# second; a suspect has 3 s to refute.
CL_EXTRA_CONFIG='membership:
  probe_interval: 200ms
  probe_timeout: 100ms
  suspicion_timeout: 3s
log:
  level: info'
cl_init 5
cl_start_all

# events_start NAME FILE: `cohortctl events` on NAME into FILE until the
# case ends (or 60 s).
events_start() {
    ctl "$1" events --timeout 60 >"$2" 2>"$2.err" &
    EVENTS_PID=$!
    wait_for_line "$2.err" "listening" 5
}

events_stop() {
    kill "$EVENTS_PID" 2>/dev/null || true
    wait "$EVENTS_PID" 2>/dev/null || true
}

wait_for_line() { # FILE PATTERN SECONDS
    local end=$((SECONDS + $3))
    until grep -Eq -- "$2" "$1" 2>/dev/null; do
        ((SECONDS < end)) || fail "$1: no line matching /$2/ within $3 s:
$(cat "$1" 2>/dev/null)"
        sleep 0.05
    done
}

# incarnation NAME MEMBER: MEMBER's incarnation in NAME's view.
incarnation() {
    ctl "$1" members --json | grep -o "\"name\":\"$2\",\"state\":\"[a-z]*\",\"site\":\"[^\"]*\",\"incarnation\":[0-9]*" |
        sed 's/.*"incarnation"://'
}

converges() {
    cl_wait 20 cl_converged || fail "not every node sees 5 alive after 20 s:
$(for n in "${CL_NAMES[@]}"; do echo "$n: $(cl_member_states "$n" | tr '\n' ' ')"; done)"
    echo "figure: 5 nodes all alive everywhere $CL_WAITED s after the check began"
}

members_lists_everyone() {
    expect_ok "^NAME +SITE +STATE +INCARNATION +SINCE +ENDPOINTS" -- ctl n01 members
    assert_eq "alive rows" 5 "$(grep -c ' alive ' <<<"$OUT")"
    grep -Eq "^n02 +site2 +alive +[0-9]+ +[0-9hms]+ +tcp://127\.0\.0\.1:${CL_PORT[n02]}$" <<<"$OUT" ||
        fail "no row for n02 with its site, state and endpoint"
    expect_ok -- ctl n01 members --json
    assert_eq "json members" 5 "$(grep -o '"state":"alive"' <<<"$OUT" | wc -l)"
}

frozen_node_is_suspected_and_refutes() {
    local before after
    before=$(incarnation n01 n03)
    events_start n01 ev.txt
    kill -STOP "$(cl_pid n03)"
    if ! cl_wait 5 grep -q "^member.suspect n03 " ev.txt; then
        kill -CONT "$(cl_pid n03)"
        fail "n01 did not suspect n03 within 5 s of SIGSTOP: $(cat ev.txt)"
    fi
    echo "figure: n03 frozen: suspected by n01 after $CL_WAITED s"
    kill -CONT "$(cl_pid n03)"
    cl_wait 10 cl_all_see n03 alive || fail "n03 not alive everywhere 10 s after SIGCONT"
    echo "figure: n03 thawed: alive everywhere again after $CL_WAITED s"
    after=$(incarnation n01 n03)
    ((after > before)) || fail "n03's incarnation did not grow ($before -> $after)"
    sleep 0.5
    events_stop
    ! grep -q "^member.failed n03" ev.txt || fail "n03 was declared failed: $(cat ev.txt)"
    grep -q "^member.up n03 reason=refuted" ev.txt || fail "no refutation event: $(cat ev.txt)"
}

kill9_is_failed_everywhere() {
    events_start n01 ev.txt
    cl_stop n05 KILL
    cl_wait 20 cl_all_see n05 failed || fail "n05 not failed everywhere 20 s after kill -9:
$(for n in n01 n02 n03 n04; do echo "$n: $(cl_member_states "$n" | tr '\n' ' ')"; done)"
    echo "figure: kill -9 n05: failed on every node after $CL_WAITED s"
    events_stop
    grep -Eq "^member.suspect n05 reason=(probe-timeout|suspected-by-gossip)" ev.txt ||
        fail "no suspect event before failed: $(cat ev.txt)"
    grep -Eq "^member.failed n05 reason=(suspicion-timeout|failed-by-gossip)" ev.txt ||
        fail "no failed event: $(cat ev.txt)"
}

sigterm_is_left_not_failed() {
    events_start n01 ev.txt
    cl_stop n04 TERM
    assert_eq "n04 exit code" 0 "$(cat "$CL_DIR/n04/exit")"
    cl_wait 5 cl_all_see n04 left || fail "n04 not left everywhere 5 s after SIGTERM"
    echo "figure: SIGTERM n04: left on every node after $CL_WAITED s"
    sleep 4 # longer than the suspicion timeout: no late 'failed'
    events_stop
    grep -q "^member.left n04 reason=left" ev.txt || fail "no left event: $(cat ev.txt)"
    ! grep -Eq "^member.(suspect|failed) n04" ev.txt || fail "n04 suspected or failed: $(cat ev.txt)"
}

restarted_node_rejoins() {
    events_start n01 ev.txt
    cl_start n05
    cl_wait 15 cl_all_see n05 alive || fail "restarted n05 not alive everywhere after 15 s"
    echo "figure: n05 restarted: alive everywhere after $CL_WAITED s"
    events_stop
    grep -q "^member.rejoined n05 reason=rejoined" ev.txt || fail "no rejoined event: $(cat ev.txt)"
}

node_down_during_a_roster_change_catches_up() {
    local serial
    cl_stop n02 TERM
    cp "$CL_DIR/roster.yaml" "$CL_DIR/roster2.yaml"
    "$COHORTCTL" roster set-site "$CL_DIR/roster2.yaml" --name n03 --site moved >/dev/null
    "$COHORTCTL" roster sign "$CL_DIR/roster2.yaml" --ca "$CL_DIR/ca" >/dev/null
    serial=$(sed -n 's/^serial: //p' "$CL_DIR/roster2.yaml")
    expect_ok "serial $serial applied" -- ctl n01 roster push "$CL_DIR/roster2.yaml"
    cl_start n02 # with its old trust.roster file
    cl_wait 15 _holds_serial n02 "$serial" || fail "n02 still at serial $(_serial n02) after 15 s"
    echo "figure: n02 restarted with the old roster: caught up with serial $serial after $CL_WAITED s"
    expect_ok -- ctl n02 members
    grep -Eq "^n03 +moved +alive" <<<"$OUT" || fail "n02 does not show n03 at its new site"
}

_serial() {
    ctl "$1" status --json | grep -o '"roster_serial":[0-9]*' | sed 's/.*://'
}

_holds_serial() {
    [[ $(_serial "$1") == "$2" ]]
}

run_case converges
run_case members_lists_everyone
run_case frozen_node_is_suspected_and_refutes
run_case kill9_is_failed_everywhere
run_case sigterm_is_left_not_failed
run_case restarted_node_rejoins
run_case node_down_during_a_roster_change_catches_up
finish
