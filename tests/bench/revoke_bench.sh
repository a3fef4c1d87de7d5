#!/usr/bin/env bash
# revoke_bench.sh: how long a revocation takes to cut a member off on every
# node of an N-node cluster of real cohortd processes on 127.0.0.1.
#
#     COHORTD=build/ci/cohortd COHORTCTL=build/ci/cohortctl tests/bench/revoke_bench.sh [N]
#
# N defaults to 20. The last node is revoked in a new signed roster that is
# pushed (`cohortctl roster push`) to the first node only; the others get it
# from their peers. Each node logs `member.cut node=VICTIM` once it has
# closed every link to the victim; the figure is the time from just before
# the push until the last of those lines (log timestamps, milliseconds,
# same clock). A figure, not a test: it prints, it asserts only that every
# node got there within 30 s. Goal: 2 s for 20 nodes.
set -euo pipefail
# shellcheck source=tests/bench/cluster.sh
source "$(dirname "${BASH_SOURCE[0]}")/cluster.sh"

N=${1:-20}
((N >= 3)) || cl_die "need at least 3 nodes"

# every running node has every other one up
all_up() {
    local name up
    for name in "${CL_NAMES[@]}"; do
        up=$(ctl "$name" peers --json 2>/dev/null | grep -o '"state":"up"' | wc -l || true)
        ((up == N - 1)) || return 1
    done
}

# every node but the victim has logged that it cut the victim off
all_cut() {
    local name
    for name in "${CL_NAMES[@]}"; do
        [[ $name == "$VICTIM" ]] && continue
        grep -q "member\.cut node=$VICTIM " "$CL_DIR/$name/log" || return 1
    done
}

# ms since the epoch of a log line's timestamp (2026-11-24T04:01:30.123Z ...)
line_ms() {
    local ts=${1%% *} frac
    frac=${ts##*.}
    echo $(($(date -d "${ts%.*}Z" +%s) * 1000 + 10#${frac%Z}))
}

cl_init "$N"
cl_start_all
echo "cluster: $N cohortd on 127.0.0.1 ($CL_DIR)"
cl_wait 120 all_up || cl_die "the cluster did not come up in 120 s"
echo "up: every node sees $((N - 1)) peers up after ${CL_WAITED} s"

VICTIM=$(cl_name "$N")
FIRST=$(cl_name 1)
cp "$CL_DIR/roster.yaml" "$CL_DIR/revoke.yaml"
"$COHORTCTL" roster revoke "$CL_DIR/revoke.yaml" --name "$VICTIM" --reason bench >/dev/null
"$COHORTCTL" roster sign "$CL_DIR/revoke.yaml" --ca "$CL_DIR/ca" >/dev/null

t0=$(($(date +%s%N) / 1000000))
ctl "$FIRST" roster push "$CL_DIR/revoke.yaml"
t_pushed=$(($(date +%s%N) / 1000000))
cl_wait 30 all_cut || cl_die "not every node cut $VICTIM off within 30 s"

worst=0 worst_name="" list=""
for name in "${CL_NAMES[@]}"; do
    [[ $name == "$VICTIM" ]] && continue
    ms=$(($(line_ms "$(grep -m1 "member\.cut node=$VICTIM " "$CL_DIR/$name/log")") - t0))
    list+="$ms "
    if ((ms > worst)); then
        worst=$ms
        worst_name=$name
    fi
done
median=$(tr ' ' '\n' <<<"$list" | grep . | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }')
refused=0
for name in "${CL_NAMES[@]}"; do
    [[ $name == "$VICTIM" ]] && continue
    r=$(ctl "$name" status --json | grep -Eo '"handshakes_refused":[0-9]+' | cut -d: -f2)
    refused=$((refused + r))
done
echo "push answered in $((t_pushed - t0)) ms (the node verified, kept and applied it)"
echo "revocation of $VICTIM: links closed on all $((N - 1)) other nodes ${worst} ms after the push" \
    "(median ${median} ms, last: $worst_name); goal 2000 ms"
echo "handshakes refused since (mostly $VICTIM redialling): $refused"
