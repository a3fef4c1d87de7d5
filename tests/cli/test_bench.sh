#!/usr/bin/env bash
# cohortctl bench: the harness runs every case, cohort and raw libzmq, and
# reports every figure. A short run (--quick) on a shared machine: this
# checks that each case measures something, never how fast it is.
set -euo pipefail
# shellcheck source=tests/cli/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require_programs "$COHORTCTL"

CTL=$COHORTCTL

bench_refuses_an_unknown_case() {
    expect_fail 2 "no case or test called 'nope'" -- "$CTL" bench --only nope
}

bench_refuses_zero_rounds() {
    expect_fail 2 "--rounds: must be 1..100, got '0'" -- "$CTL" bench --rounds 0
}

bench_refuses_a_stray_argument() {
    expect_fail 2 "unexpected argument 'extra'" -- "$CTL" bench extra
}

bench_lists_its_cases() {
    expect_ok "direct-1k" -- "$CTL" bench --list
    out_has "relay-1k"
    out_has "reqrep-64"
    out_has "pubsub-4-1k"
    out_has "overload-1k"
}

# The metrics object of case $1 in the JSON document $2 (up to the case's
# per-round samples, which follow it).
metrics_of() {
    local rest=${2#*\{\"name\":\"$1\",}
    [[ $rest != "$2" ]] || return 1
    printf '%s\n' "${rest%%\"cohort\":\[*}"
}

# positive NUMBER [ALLOW_ZERO]: NUMBER is a JSON number > 0 (>= 0 with 1).
positive() {
    [[ $1 =~ ^[0-9.eE+-]+$ ]] || return 1
    awk -v v="$1" -v z="${2:-0}" 'BEGIN { exit !((z && v >= 0) || v > 0) }'
}

bench_quick_json_has_every_case_with_figures() {
    local cases json c m metrics n value
    cases=$("$CTL" bench --list | awk '{ print $1 }')
    [[ -n $cases ]] || fail "bench --list printed no case"
    expect_ok -- "$CTL" bench --quick --json
    json=$OUT
    [[ $json == \{*\} ]] || fail "stdout is not one JSON object: ${json:0:200}"
    [[ $json == *'"rounds":1'* ]] || fail "--quick should run one round"
    for c in $cases; do
        metrics=$(metrics_of "$c" "$json") || fail "case $c missing from the JSON"
        [[ $metrics != *'"error"'* ]] || fail "case $c failed: $metrics"
        n=0
        for m in $(grep -o '"[a-z0-9_]*":{"unit"' <<<"$metrics" | cut -d'"' -f2); do
            n=$((n + 1))
            for impl in cohort raw; do
                value=$(grep -o "\"$m\":{[^}]*}" <<<"$metrics" | grep -o "\"$impl\":[^,}]*" | cut -d: -f2)
                # memory growth may be zero: the heap can reuse pages a
                # previous round freed
                positive "$value" "$([[ $m == rss_growth_mib ]] && echo 1 || echo 0)" ||
                    fail "case $c: $m: $impl is '$value', expected a positive number"
            done
        done
        ((n > 0)) || fail "case $c: no metrics in $metrics"
    done
    # the progress lines went to stderr, the document alone to stdout
    grep -q "^round 1/1: direct-1k" <<<"$ERR" || fail "no progress line on stderr"
}

bench_table_has_a_ratio_column() {
    expect_ok -- "$CTL" bench --quick --only direct-64
    grep -Eq '^test +size +metric +cohort +raw +ratio$' <<<"$OUT" || fail "no table header"
    grep -Eq '^direct +64B +msg/s +[0-9]+ +[0-9]+ +[0-9.]+$' <<<"$OUT" || fail "no direct 64B row"
}

run_case bench_refuses_an_unknown_case
run_case bench_refuses_zero_rounds
run_case bench_refuses_a_stray_argument
run_case bench_lists_its_cases
run_case bench_quick_json_has_every_case_with_figures
run_case bench_table_has_a_ratio_column
finish
