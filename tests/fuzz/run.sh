#!/usr/bin/env bash
# Runs every libFuzzer harness for a fixed time and reports executions and
# crashes. Needs a fuzz build:
#   cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DCOHORT_FUZZ=ON
#   cmake --build build-fuzz
# usage: tests/fuzz/run.sh BUILD_DIR [SECONDS [NAME...]]
# NAMEs pick harnesses (e.g. envelope api); default: all of them, one at a
# time: envelope (overlay envelopes and what the node does with their
# parts), seal (relayed frames), api (local API requests), roster, cert,
# config, peercache (bootstrap cache), beacon (LAN datagrams).
# New interesting inputs go to a scratch dir, not the repo corpus; a crash
# reproducer is left in the current directory as crash-* to be added to
# tests/fuzz/corpus/NAME/ once fixed.
set -uo pipefail
build=${1:?usage: run.sh BUILD_DIR [SECONDS [NAME...]]}
secs=${2:-60}
shift $(($# < 2 ? $# : 2))
here=$(cd "$(dirname "$0")" && pwd)
bins=()
if [ $# -gt 0 ]; then
  for n in "$@"; do bins+=("$build/tests/fuzz/fuzz_$n"); done
else
  bins=("$build"/tests/fuzz/fuzz_*)
fi
status=0
for bin in "${bins[@]}"; do
  [ -x "$bin" ] || { echo "fuzz: no harness $bin"; status=1; continue; }
  name=$(basename "$bin"); name=${name#fuzz_}
  scratch=$(mktemp -d)
  log=$(mktemp)
  "$bin" -max_total_time="$secs" -print_final_stats=1 "$scratch" "$here/corpus/$name" >"$log" 2>&1
  rc=$?
  execs=$(grep -m1 'stat::number_of_executed_units' "$log" | awk '{print $2}')
  if [ $rc -eq 0 ]; then
    echo "fuzz $name: ${execs:-?} executions in ${secs}s, no crash"
  else
    echo "fuzz $name: FAILED (exit $rc) after ${execs:-?} executions:"
    grep -E 'ERROR|SUMMARY|crash-|Test unit written' "$log" | head -5
    status=1
  fi
  rm -rf "$scratch" "$log"
done
exit $status
