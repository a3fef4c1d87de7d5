#!/usr/bin/env bash
# scale_bench.sh: membership at scale with real cohortd processes on
# 127.0.0.1 (distinct ports, one machine).
#
#     COHORTD=build/ci/cohortd COHORTCTL=build/ci/cohortctl tests/bench/scale_bench.sh [N]
#
# N defaults to 50. Prints, as "figure:" lines:
#   - time from starting every daemon until every node sees all N alive;
#   - idle resident memory per node, median and max, after the cluster has
#     been idle for a while: VmRSS (counts every shared library page the
#     process maps: about 10 MiB of libcrypto, libc, libstdc++, libzmq that
#     all nodes of a machine share), RssAnon (private memory) and Pss (what
#     the node really costs: private pages plus its share of shared ones);
#   - idle CPU per node over 10 s (percent of one core), median and max;
#   - time from kill -9 of one node until every other node sees it failed
#     (default SWIM timings: probe every 1 s, 4 s suspicion scaled by log n).
# A benchmark, not a test: it asserts only that each stage finishes within
# its limit. Goals (issue 5): RSS 8 MiB or less per node.
set -euo pipefail
# shellcheck source=tests/bench/cluster.sh
source "$(dirname "${BASH_SOURCE[0]}")/cluster.sh"

N=${1:-50}
IDLE=${SCALE_IDLE:-10}
cl_init "$N"
t0=$(date +%s%N)
cl_start_all
echo "started $N cohortd on 127.0.0.1:${CL_PORT[n01]}.." >&2
cl_wait 180 cl_converged || cl_die "not converged after 180 s"
echo "figure: $N nodes: every node sees all $N alive $(_cl_secs $(($(date +%s%N) - t0))) s after start"

median_max() { # numbers on stdin -> "median M, max X"
    sort -n | awk '{ v[NR] = $1 } END { printf "median %s, max %s", v[int((NR + 1) / 2)], v[NR] }'
}

sleep 5
# every daemon must still be running
for name in "${CL_NAMES[@]}"; do
    cl_running "$name" ||
        cl_die "$name exited (code $(cat "$CL_DIR/$name/exit")): $(tail -n 5 "$CL_DIR/$name/log")"
done
ticks=$(getconf CLK_TCK)
declare -A cpu0
for name in "${CL_NAMES[@]}"; do
    pid=$(cl_pid "$name")
    cpu0[$name]=$(awk '{ print $14 + $15 }' "/proc/$pid/stat")
done
sleep "$IDLE"
rss=() anon=() pss=() cpu=()
for name in "${CL_NAMES[@]}"; do
    pid=$(cl_pid "$name")
    rss+=("$(awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status")")
    anon+=("$(awk '/^RssAnon:/ { print $2 }' "/proc/$pid/status")")
    pss+=("$(awk '/^Pss:/ { print $2 }' "/proc/$pid/smaps_rollup")")
    now=$(awk '{ print $14 + $15 }' "/proc/$pid/stat")
    cpu+=("$(awk -v a="${cpu0[$name]}" -v b="$now" -v t="$ticks" -v s="$IDLE" \
        'BEGIN { printf "%.2f", (b - a) / t / s * 100 }')")
done
echo "figure: idle VmRSS per node (KiB): $(printf '%s\n' "${rss[@]}" | median_max)"
echo "figure: of which private (RssAnon, KiB): $(printf '%s\n' "${anon[@]}" | median_max)"
echo "figure: proportional share (Pss: shared library pages split among the $N, KiB): $(printf '%s\n' "${pss[@]}" | median_max)"
echo "figure: idle CPU per node over ${IDLE} s (% of one core): $(printf '%s\n' "${cpu[@]}" | median_max)"

victim=${CL_NAMES[$((N - 1))]}
t1=$(date +%s%N)
cl_stop "$victim" KILL
cl_wait 120 cl_all_see "$victim" failed || cl_die "$victim not failed everywhere after 120 s"
echo "figure: kill -9 $victim: failed on all $((N - 1)) others after $(_cl_secs $(($(date +%s%N) - t1))) s"
