#!/bin/bash
# Where a request/reply round trip's time goes, thread by thread: records
# the scheduler's switches (perf, tracepoint sched:sched_switch) during one
# `cohortctl bench --only reqrep-64` round and prints, for the cohort side
# and the raw libzmq side (which take turns in 50 ms blocks), each busy
# thread's CPU time per round trip, how often it ran (segments) and how
# often it was preempted, and the sum.
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
# System-wide (-a): a switch is recorded in the context of the thread that
# leaves the CPU, so recording only the process misses every switch from an
# idle CPU to one of its threads and pairs the wrong ends into runs.
perf record -q -a -m 8M -e sched:sched_switch -o "$dir/perf.data" -- \
    "$ctl" bench --only reqrep-64 --rounds 1 --time "$ms" >"$dir/table.txt" 2>"$dir/progress.txt"
grep '^round' "$dir/progress.txt" || { cat "$dir/progress.txt" >&2; exit 1; }
perf script -i "$dir/perf.data" -F cpu,time,trace >"$dir/switches.txt" 2>/dev/null

python3 - "$dir/switches.txt" "$dir/progress.txt" "$(basename "$ctl" | cut -c1-15)" <<'PY'
import collections, re, sys

switches, progress, prog = sys.argv[1], sys.argv[2], sys.argv[3]
rts, secs = {}, {}
for side, t, n in re.findall(r'reqrep-64\s+(cohort|raw)\s.*?\(([\d.]+) s, (\d+) msgs',
                             open(progress).read()):
    rts[side], secs[side] = int(n), float(t)
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
# Each side's activity is that of its own two libzmq I/O threads
# (ZMQbg/IO/0; the cohort side's start first). The sample takes turns,
# cohort and raw, in 50 ms blocks after an unmeasured warm-up of each: the
# trace is cut into 2 ms bins, each bin belongs to the side whose I/O
# threads switched most in it (an idle side's node timers are a few switches
# a second), the runs of bins of one side are its blocks, and the first two
# (the start and the warm-ups) are left out. A thread's switch counts for the side of
# the bin it started in (the client thread serves both sides).
io = sorted((tid for tid, s in segs.items()
             if comm.get(tid, '').startswith('ZMQbg') and len(s) > 1000),
            key=lambda tid: segs[tid][0][0])
if len(io) < 4 or set(rts) != {'cohort', 'raw'}:
    sys.exit('reqrep_sched: could not tell the two sides apart in the trace')
side_of_io = {tid: 'cohort' for tid in io[:2]}
side_of_io.update({tid: 'raw' for tid in io[-2:]})
BIN = 0.002
votes = collections.defaultdict(collections.Counter)
for tid, side in side_of_io.items():
    for s in segs[tid]:
        votes[int(s[0] / BIN)][side] += 1
owner, side, blocks = {}, None, []
for b in range(min(votes), max(votes) + 1):
    if votes[b]:
        best = votes[b].most_common(1)[0][0]
        if best != side:
            side = best
            blocks.append([side, b, b])
    if side:
        owner[b] = len(blocks) - 1
        blocks[-1][2] = b
measured = set(range(2, len(blocks)))
if not measured:
    sys.exit('reqrep_sched: no measured block in the trace')
total = {}
for side in ('cohort', 'raw'):
    n = rts[side]
    print(f'{side}: {n} round trips in {secs[side]:.2f} s, wall {1e6 * secs[side] / n:.1f} us each')
    print(f'  {"thread":<16} {"CPU us/RT":>9} {"runs/RT":>8} {"preempted/RT":>13}')
    total[side] = 0.0
    for tid, ss in sorted(segs.items()):
        w = [x for x in ss if owner.get(int(x[0] / BIN)) in measured
             and blocks[owner[int(x[0] / BIN)]][0] == side]
        run = sum(x[1] - x[0] for x in w)
        ours = comm.get(tid) == prog or comm.get(tid, '').startswith('ZMQbg')
        if not ours or 1e6 * run / n < 1.0:
            continue
        pre = sum(1 for x in w if x[2].startswith('R'))
        total[side] += run
        name = 'I/O thread' if tid in side_of_io else comm[tid]
        print(f'  {name:<16} {1e6 * run / n:9.1f} {len(w) / n:8.2f} {pre / n:13.2f}')
    total[side] = 1e6 * total[side] / n
    print(f'  {"all":<16} {total[side]:9.1f}')
print(f'CPU per round trip, cohort/raw: {total["cohort"] / total["raw"]:.2f}')
PY
