#!/usr/bin/env bash
# Runs every libFuzzer harness for a fixed time and reports executions and
# crashes. Needs a fuzz build:
#   cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DCOHORT_FUZZ=ON
#   cmake --build build-fuzz
# usage: tests/fuzz/run.sh BUILD_DIR [SECONDS]
# New interesting inputs go to a scratch dir, not the repo corpus; a crash
# reproducer is left in the current directory as crash-* to be added to
# tests/fuzz/corpus/NAME/ once fixed.
set -uo pipefail
build=${1:?usage: run.sh BUILD_DIR [SECONDS]}
secs=${2:-60}
here=$(cd "$(dirname "$0")" && pwd)
status=0
for bin in "$build"/tests/fuzz/fuzz_*; do
  [ -x "$bin" ] || continue
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
