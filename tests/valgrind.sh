#!/usr/bin/env bash
# Run every cmocka unit test under valgrind memcheck (not run by CI).
#
# How to run:
#   cmake -S . -B build/vg -DCMAKE_BUILD_TYPE=Debug   # plain build, NO sanitizer
#   cmake --build build/vg -j2
#   tests/valgrind.sh build/vg [test_name ...]        # default: all tests/unit/test_*.c
#   Env: VG_TIMEOUT (seconds per test, default 180), VG_LOGDIR (default build dir/valgrind).
#
# What counts as an error (test verdict FAIL):
#   - invalid reads/writes, use of uninitialised values, invalid/mismatched frees
#     (any memcheck error, reported via --error-exitcode=99);
#   - "definitely lost" leaks (--errors-for-leak-kinds=definite).
#   "still reachable" and "possibly lost" blocks (libzmq/czmq/OpenSSL globals and
#   threads alive at exit) are NOT errors. A test that fails on its own (non-99
#   exit) is reported as TESTFAIL; one exceeding VG_TIMEOUT as TIMEOUT.
#
# Expected duration: about 4 minutes for all 23 tests on a shared 2-core box
# (most take 0-3 s; test_seal ~12 s, test_reconnect ~17 s, test_swim ~24 s,
# test_relay/test_roster_sync ~30 s, test_api ~80-100 s). VG_TIMEOUT bounds each.
#
# No suppressions file is needed today (libzmq/czmq/OpenSSL/protobuf-c leave
# nothing "definitely lost"); tests/valgrind.supp is picked up if it exists.
#
# Valgrind runs tests 20-50x slower: COHORT_TEST_WAIT_MS (exported below,
# 20000) is what a test's standard 3 s wait becomes, and test_ms()
# (tests/unit/testutil.h) stretches every other wait and time bound in
# proportion; tests that use it (test_api, test_backpressure) run clean here.
# A test whose assertion fails longjmps past its cleanup, so its clients then
# show up as definite leaks: look at the first failure, not at them.
set -u
export COHORT_TEST_WAIT_MS=${COHORT_TEST_WAIT_MS:-20000}
BUILD=${1:-build/vg}
shift || true
HERE=$(cd "$(dirname "$0")" && pwd)
TIMEOUT=${VG_TIMEOUT:-180}
LOGDIR=${VG_LOGDIR:-$BUILD/valgrind}
mkdir -p "$LOGDIR"
SUPP=()
[ -f "$HERE/valgrind.supp" ] && SUPP=(--suppressions="$HERE/valgrind.supp")

if [ $# -gt 0 ]; then tests=("$@"); else
  tests=(); for f in "$HERE"/unit/test_*.c; do tests+=("$(basename "$f" .c)"); done
fi

fails=0
for t in "${tests[@]}"; do
  bin="$BUILD/tests/$t"
  if [ ! -x "$bin" ]; then printf '%-22s MISSING\n' "$t"; fails=$((fails+1)); continue; fi
  start=$(date +%s)
  timeout -k 10 "$TIMEOUT" valgrind --error-exitcode=99 --leak-check=full \
    --errors-for-leak-kinds=definite --track-origins=no "${SUPP[@]}" \
    --log-file="$LOGDIR/$t.log" "$bin" > "$LOGDIR/$t.out" 2>&1
  rc=$?
  dur=$(( $(date +%s) - start ))
  errs=$(grep -Eo 'ERROR SUMMARY: [0-9]+' "$LOGDIR/$t.log" | tail -1 | grep -Eo '[0-9]+$')
  case $rc in
    0)   verdict=PASS ;;
    99)  verdict=FAIL  # valgrind's code hides the test's own: say if it failed too
         grep -q 'FAILED TEST' "$LOGDIR/$t.out" && verdict=FAIL+TESTFAIL ;;
    124|137) verdict=TIMEOUT ;;
    *)   verdict="TESTFAIL(rc=$rc)" ;;
  esac
  [ "$verdict" = PASS ] || fails=$((fails+1))
  printf '%-22s %-16s %4ss  errors=%s  log=%s\n' "$t" "$verdict" "$dur" "${errs:-?}" "$LOGDIR/$t.log"
done
echo "valgrind: ${#tests[@]} tests, $fails not passing"
[ $fails -eq 0 ]
