#!/bin/bash
# Where a request/reply round trip's time goes, thread by thread: records
# the scheduler's switches (perf, tracepoint sched:sched_switch) during one
# `cohortctl bench --only reqrep-64` round and prints, for the cohort side
# and the raw libzmq side, each busy thread's CPU time per round trip, how
# often it ran (segments) and how often it was preempted, and the sum.
#
#   tests/bench/reqrep_sched.sh [path/to/cohortctl] [ms per side, default 3000]
#
# Needs root, perf (Debian: linux-perf) and python3. The tracing itself
# slows both sides; compare the two sides of one run, not runs.
set -euo pipefail

ctl=${1:-build/ci/cohortctl}
ms=${2:-3000}
[[ -x $ctl ]] || { echo "reqrep_sched: no cohortctl at $ctl (build first, or pass its path)" >&2; exit 2; }
command -v perf >/dev/null || { echo "reqrep_sched: perf not found (apt-get install linux-perf)" >&2; exit 2; }
command -v python3 >/dev/null || { echo "reqrep_sched: python3 not found" >&2; exit 2; }

dir=$(mktemp -d "${TMPDIR:-/tmp}/reqrep-sched.XXXXXX")
trap 'rm -rf "$dir"' EXIT
perf record -q -e sched:sched_switch -o "$dir/perf.data" -- \
    "$ctl" bench --only reqrep-64 --rounds 1 --time "$ms" >"$dir/table.txt" 2>"$dir/progress.txt"
grep '^round' "$dir/progress.txt" || { cat "$dir/progress.txt" >&2; exit 1; }
perf script -i "$dir/perf.data" -F cpu,time,trace >"$dir/switches.txt" 2>/dev/null

python3 - "$dir/switches.txt" "$dir/progress.txt" "$ms" <<'PY'
import collections, re, sys

switches, progress, ms = sys.argv[1], sys.argv[2], float(sys.argv[3]) / 1000
rts = {side: int(n) for side, n in
       re.findall(r'reqrep-64\s+(cohort|raw)\s.*?(\d+) msgs', open(progress).read())}
pat = re.compile(r'\[(\d+)\]\s+([\d.]+):.*?prev_comm=(.*?) prev_pid=(\d+) prev_prio=\d+ '
                 r'prev_state=(\S+) ==> next_comm=(.*?) next_pid=(\d+)')
start, segs, comm = {}, collections.defaultdict(list), {}
for line in open(switches):
    m = pat.search(line)
    if not m:
        continue
    t, prev, state, nxt = float(m.group(2)), int(m.group(4)), m.group(5), int(m.group(7))
    if prev in start:
        segs[prev].append((start.pop(prev), t, state))
    start[nxt] = t
    comm[nxt] = m.group(6)
# Each side's round is the activity of its own two libzmq I/O threads
# (ZMQbg/IO/0): the cohort side's start first.
io = sorted((tid for tid, s in segs.items()
             if comm.get(tid, '').startswith('ZMQbg') and len(s) > 1000),
            key=lambda tid: segs[tid][0][0])
if len(io) < 4 or set(rts) != {'cohort', 'raw'}:
    sys.exit('reqrep_sched: could not tell the two sides apart in the trace')
sides = {'cohort': io[:2], 'raw': io[-2:]}
total = {}
for side, pair in sides.items():
    a = max(segs[t][len(segs[t]) // 10][0] for t in pair)
    b = min(segs[t][-len(segs[t]) // 10][1] for t in pair)
    n = rts[side] * (b - a) / ms  # round trips in the window
    print(f'{side}: {n:.0f} round trips in {b - a:.2f} s, wall {1e6 * (b - a) / n:.1f} us each')
    print(f'  {"thread":<16} {"CPU us/RT":>9} {"runs/RT":>8} {"preempted/RT":>13}')
    total[side] = 0.0
    for tid, s in sorted(segs.items()):
        w = [x for x in s if x[0] >= a and x[1] <= b]
        if tid == 0 or len(w) < 0.3 * n:
            continue
        run = sum(x[1] - x[0] for x in w)
        pre = sum(1 for x in w if x[2].startswith('R'))
        total[side] += run
        name = 'I/O thread' if tid in pair else comm[tid]
        print(f'  {name:<16} {1e6 * run / n:9.1f} {len(w) / n:8.2f} {pre / n:13.2f}')
    total[side] = 1e6 * total[side] / n
    print(f'  {"all":<16} {total[side]:9.1f}')
print(f'CPU per round trip, cohort/raw: {total["cohort"] / total["raw"]:.2f}')
PY
