#!/usr/bin/env bash
# The whole test suite, from a fresh Debian 12 machine: installs what it
# needs, checks formatting, builds with warnings as errors, runs every test
# under ASan+UBSan, then runs every test on the normal build, and last builds
# the Docker image and runs the Compose multi-site cluster's smoke test
# (tests/compose/run.sh, as root). The output ends with that smoke test's
# summary line ("compose: N passed, M failed").
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc 2>/dev/null || echo 2)

bash deploy/deps.sh test

echo "== format (clang-format 14, .clang-format)"
mapfile -t sources < <(find src tests -name '*.[ch]' | sort)
clang-format --dry-run --Werror "${sources[@]}"

echo "== ASan + UBSan build and tests"
cmake -S . -B build/asan -DCOHORT_WERROR=ON -DCOHORT_SANITIZE=ON \
  -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build build/asan -j"$jobs" >/dev/null
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --test-dir build/asan --output-on-failure -j"$jobs" >build/asan/ctest.log 2>&1 || {
  cat build/asan/ctest.log
  echo "ASan/UBSan run failed" >&2
  exit 1
}
tail -n 3 build/asan/ctest.log

echo "== release build and tests"
cmake -S . -B build/ci -DCOHORT_WERROR=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build/ci -j"$jobs" >/dev/null
ctest --test-dir build/ci --output-on-failure -j"$jobs"

echo "== compose cluster (docker/Dockerfile, docker/compose.yml; logs in build/compose/)"
bash tests/compose/run.sh
