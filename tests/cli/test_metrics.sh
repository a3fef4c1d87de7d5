#!/usr/bin/env bash
# cohortd's Prometheus endpoint (metrics.address): a throwaway 3-node
# cluster on 127.0.0.1 with free ports, /metrics and /healthz served on each
# node, scraped with curl as Prometheus would. Checks the exposition format
# and that the numbers follow the cluster: members alive = cluster size,
# messages out grow after a send, a killed peer shows up as failed.
# Refusals first; the kill last, as it takes gamma away.
set -euo pipefail
# shellcheck source=tests/cli/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require_programs "$COHORTCTL" "$COHORTD"
command -v curl >/dev/null || { echo "FAIL: curl is not installed (deploy/deps.sh test)" >&2; exit 1; }

D=$COHORTD
NAMES=(alpha beta gamma)
declare -A MPORT
NODE_DAYS=90
# shellcheck source=tests/cli/nodes.sh
source "$(dirname "${BASH_SOURCE[0]}")/nodes.sh"

# scrape NODE [PATH]: the body of http://127.0.0.1:MPORT/PATH (default
# metrics) on stdout; fails on anything but 200.
scrape() {
    curl -fsS --max-time 5 "http://127.0.0.1:${MPORT[$1]}/${2:-metrics}"
}

# sample NODE SERIES: the value of one series (name with its labels, as
# written), or nothing when the node does not export it.
sample() {
    scrape "$1" | awk -v s="$2" '$1 == s && !found { print $2; found = 1 }'
}

# wait_sample NODE SERIES AWK-CONDITION-ON-v [SECONDS]: until the value
# satisfies the condition (e.g. 'v == 3'); fails with the last scrape.
wait_sample() {
    local n=$1 series=$2 cond=$3 end=$((SECONDS + ${4:-10})) v=""
    while :; do
        v=$(sample "$n" "$series" || true)
        if [[ -n $v ]] && awk -v v="$v" "BEGIN { exit !($cond) }"; then return 0; fi
        if ((SECONDS >= end)); then
            CLI_LAST_CMD="" fail "$n: $series = '$v', wanted $cond within ${4:-10} s:
$(scrape "$n" 2>&1 | grep -v '^#' || true)"
            return 1
        fi
        sleep 0.2
    done
}

# ---- the cluster ----

# Fast failure detection, so a killed peer is failed within seconds.
node_extra_yaml() {
    free_port "MPORT[$1]"
    cat <<EOF
membership:
  probe_interval: 200ms
  probe_timeout: 100ms
  suspicion_timeout: 1s
metrics:
  address: 127.0.0.1:${MPORT[$1]}
EOF
}
nodes_make
nodes_start_all
nodes_wait_up || exit 1

# ---- refusals and failures ----

bad_metrics_address_is_refused_at_check_config() {
    local bad
    for bad in localhost:9464 127.0.0.1 127.0.0.1:0 '::1:9464' '*:9464'; do
        sed "s#^  address: 127\.0\.0\.1:${MPORT[alpha]}\$#  address: \"$bad\"#" \
            "${DIR[alpha]}/node.yaml" >"${DIR[alpha]}/bad.yaml"
        local line
        line=$(grep -n '^metrics:$' "${DIR[alpha]}/bad.yaml" | cut -d: -f1)
        line=$((line + 1))
        expect_fail 1 "^cohortd: $(re "${DIR[alpha]}")/bad\.yaml:$line:12: metrics\.address: must be empty or IP:PORT with an IPv4 literal or \[IPv6\] and PORT 1\.\.65535, got '$(re "$bad")'$" \
            -- "$D" --check-config -c "${DIR[alpha]}/bad.yaml"
        [[ -z $OUT ]] || fail "a failed check printed a config on stdout"
    done
    rm -f "${DIR[alpha]}/bad.yaml"
    # and what is right passes, echoed in the effective config
    expect_ok "ok: node 'alpha'" -- "$D" --check-config -c "${DIR[alpha]}/node.yaml"
    grep -qx "  address: \"\?127\.0\.0\.1:${MPORT[alpha]}\"\?" <<<"$OUT" ||
        fail "metrics.address is not in the effective config"
}

metrics_port_in_use_is_refused_at_start() {
    # alpha's identity in another state_dir (so another API socket), on the
    # metrics port alpha already holds: refused before the node starts.
    mkdir state
    sed -e "s#^  state_dir: state\$#  state_dir: $PWD/state#" \
        -e "s#^  key: node\.key\$#  key: ${DIR[alpha]}/node.key#" \
        -e "s#^  cert: node\.crt\$#  cert: ${DIR[alpha]}/node.crt#" \
        -e "s#^  ca: \.\./ca\.crt\$#  ca: $CL/ca.crt#" \
        -e "s#^  roster: \.\./roster\.yaml\$#  roster: $CL/roster.yaml#" \
        "${DIR[alpha]}/node.yaml" >node.yaml
    expect_fail 1 "^cohortd: node\.yaml: metrics\.address: cannot listen on 127\.0\.0\.1:${MPORT[alpha]}: Address already in use$" \
        -- timeout 10 "$D" -c node.yaml
    out_lacks "node alpha up"
    # alpha is unharmed
    [[ $(scrape alpha healthz) == ok ]] || fail "alpha's /healthz is not ok"
}

other_paths_and_methods_are_refused() {
    local code
    code=$(curl -s -o body -w '%{http_code}' "http://127.0.0.1:${MPORT[alpha]}/")
    assert_eq "GET / status" 404 "$code"
    code=$(curl -s -o body -w '%{http_code}' "http://127.0.0.1:${MPORT[alpha]}/metrics/x")
    assert_eq "GET /metrics/x status" 404 "$code"
    code=$(curl -s -o body -D headers -w '%{http_code}' -X POST --data x \
        "http://127.0.0.1:${MPORT[alpha]}/metrics")
    assert_eq "POST /metrics status" 405 "$code"
    grep -qi '^Allow: GET, HEAD' headers || fail "405 without Allow: $(cat headers)"
}

# ---- what works ----

healthz_is_ok() {
    local code
    code=$(curl -s -o body -w '%{http_code}' "http://127.0.0.1:${MPORT[beta]}/healthz")
    assert_eq "GET /healthz status" 200 "$code"
    assert_eq "GET /healthz body" ok "$(cat body)"
    code=$(curl -s -I -o /dev/null -w '%{http_code}' "http://127.0.0.1:${MPORT[beta]}/healthz")
    assert_eq "HEAD /healthz status" 200 "$code"
}

metrics_follow_the_text_format() {
    curl -fsS -D headers -o metrics "http://127.0.0.1:${MPORT[alpha]}/metrics" ||
        fail "GET /metrics failed"
    grep -qi '^Content-Type: text/plain; version=0\.0\.4' headers ||
        fail "wrong Content-Type: $(cat headers)"
    # Every sample belongs to a family announced by HELP then TYPE; every
    # value is a number; no series twice; every family has a sample; all
    # names are cohort_*.
    local problems
    problems=$(awk '
        function bad(msg) { print NR ": " msg ": " $0; nbad++ }
        /^# HELP / { help[$3] = 1; if ($3 in typed) bad("HELP after TYPE"); next }
        /^# TYPE / {
            if (!($3 in help)) bad("TYPE without HELP")
            if ($4 != "counter" && $4 != "gauge") bad("unexpected type")
            if ($3 in typed) bad("family announced twice")
            typed[$3] = $4; samples[$3] = 0; next
        }
        /^#/ { bad("stray comment"); next }
        /^$/ { bad("empty line"); next }
        {
            if (NF != 2) { bad("not NAME VALUE"); next }
            name = $1; sub(/\{.*/, "", name)
            if (name !~ /^cohort_[a-z0-9_]+$/) bad("name not cohort_*")
            if (!(name in typed)) bad("sample without TYPE")
            else samples[name]++
            if (typed[name] == "counter" && name !~ /_total$/) bad("counter without _total")
            if ($1 ~ /\{/ && $1 !~ /^[a-z0-9_]+\{([a-z_]+="[^"]*",)*[a-z_]+="[^"]*"\}$/) bad("labels")
            if ($2 !~ /^-?[0-9]+(\.[0-9]+)?$/) bad("value not numeric")
            if ($1 in seen) bad("series twice")
            seen[$1] = 1
        }
        END {
            for (f in typed) if (!samples[f]) print "family " f " has no sample"
            exit 0
        }' metrics)
    [[ -z $problems ]] || CLI_LAST_CMD="" fail "bad exposition:
$problems
$(cat metrics)"
    local f
    for f in cohort_up cohort_uptime_seconds cohort_roster_serial cohort_members cohort_peers \
        cohort_links cohort_punch_attempts_total cohort_punch_ok_total cohort_punch_failed_total \
        cohort_rung_switches_total cohort_relay_frames_total cohort_relay_bytes_total \
        cohort_relay_dropped_total cohort_seal_rejected_total cohort_session_resent_total \
        cohort_session_duplicates_dropped_total cohort_queue_drops_total \
        cohort_messages_in_total cohort_messages_out_total cohort_bytes_in_total \
        cohort_bytes_out_total cohort_cert_days_to_expiry cohort_ca_days_to_expiry \
        cohort_delivery_queued_total cohort_receive_queued cohort_peer_throttled_total; do
        grep -q "^# TYPE $f " metrics || fail "no family $f"
    done
    local r
    for r in queue_full delivery_dropped delivery_deferred client_dropped oversized garbage; do
        grep -q "^cohort_queue_drops_total{reason=\"$r\"} [0-9]" metrics || fail "no queue drops for $r"
    done
    for r in direct punched relayed none; do
        grep -q "^cohort_links{rung=\"$r\"} [0-9]" metrics || fail "no links for rung $r"
    done
    for r in beta gamma; do
        grep -q "^cohort_peer_throttled_total{peer=\"$r\"} 0$" metrics || fail "no throttled count for $r"
    done
}

values_describe_the_cluster() {
    # Wait for the cluster to settle: SWIM has heard from every member, both
    # links are up (hello or ping) and on the direct rung. Under load these
    # come in any order, and one scrape is one moment.
    wait_sample alpha 'cohort_members{state="alive"}' 'v == 3' 10
    wait_sample alpha 'cohort_peers{state="up"}' 'v == 2' 10
    wait_sample alpha 'cohort_links{rung="direct"}' 'v == 2' 10
    scrape alpha >metrics
    local v
    v() { awk -v s="$1" '$1 == s { print $2 }' metrics; }
    assert_eq cohort_up 1 "$(v cohort_up)"
    assert_eq 'members alive' 3 "$(v 'cohort_members{state="alive"}')"
    assert_eq 'members failed' 0 "$(v 'cohort_members{state="failed"}')"
    assert_eq 'peers up' 2 "$(v 'cohort_peers{state="up"}')"
    assert_eq 'direct links' 2 "$(v 'cohort_links{rung="direct"}')"
    assert_eq 'no links' 0 "$(v 'cohort_links{rung="none"}')"
    local serial
    serial=$(ctl alpha status --json | grep -Eo '"roster_serial":[0-9]+' | cut -d: -f2)
    assert_eq 'roster serial' "$serial" "$(v cohort_roster_serial)"
    # certificates issued for 90 days; the CA lives longer
    awk -v d="$(v cohort_cert_days_to_expiry)" 'BEGIN { exit !(d > 89 && d <= 90) }' ||
        fail "cert days to expiry: $(v cohort_cert_days_to_expiry)"
    local fp
    fp=$(cert_fp "$CL/ca.crt")
    grep -Eq "^cohort_ca_days_to_expiry\{ca=\"testcluster\",fingerprint=\"$fp\"\} [0-9]+\.[0-9]+$" metrics ||
        fail "no CA expiry for $fp: $(grep ca_days metrics)"
    awk -v u="$(v cohort_uptime_seconds)" 'BEGIN { exit !(u > 0) }' || fail "uptime is not > 0"
}

messages_out_grows_after_send() {
    local before
    before=$(sample alpha cohort_messages_out_total)
    [[ -n $before ]] || fail "no cohort_messages_out_total"
    local bytes_before
    bytes_before=$(sample alpha cohort_bytes_out_total)
    local i
    for i in 1 2 3 4 5; do
        expect_ok "^queued for beta" -- ctl alpha send beta --subject metrics.test "m$i"
    done
    wait_sample alpha cohort_messages_out_total "v >= $before + 5" 5
    wait_sample alpha cohort_bytes_out_total "v > $bytes_before" 5
    wait_sample beta cohort_messages_in_total "v >= 5" 5
}

sighup_keeps_serving() {
    kill -HUP "${PID[beta]}"
    for _ in $(seq 1 50); do
        grep -q "config.reload" "${DIR[beta]}/log" && break
        sleep 0.1
    done
    grep -q "config.reload" "${DIR[beta]}/log" || fail "beta did not reload"
    [[ $(scrape beta healthz) == ok ]] || fail "beta's /healthz is not ok after SIGHUP"
    [[ -n $(sample beta cohort_cert_days_to_expiry) ]] || fail "cert expiry gone after SIGHUP"
}

killed_peer_shows_up_as_failed() {
    kill -KILL "${PID[gamma]}"
    wait_sample alpha 'cohort_members{state="failed"}' 'v == 1' 15
    wait_sample alpha 'cohort_members{state="alive"}' 'v == 2' 5
    wait_sample beta 'cohort_members{state="failed"}' 'v == 1' 15
    wait_sample alpha 'cohort_peers{state="up"}' 'v == 1' 10
    [[ $(scrape alpha healthz) == ok ]] || fail "alpha's /healthz is not ok"
    # gamma's endpoint went with it
    if curl -s --max-time 2 -o /dev/null "http://127.0.0.1:${MPORT[gamma]}/healthz"; then
        fail "gamma's metrics port still answers"
    fi
}

run_case bad_metrics_address_is_refused_at_check_config
run_case metrics_port_in_use_is_refused_at_start
run_case other_paths_and_methods_are_refused
run_case healthz_is_ok
run_case metrics_follow_the_text_format
run_case values_describe_the_cluster
run_case messages_out_grows_after_send
run_case sighup_keeps_serving
run_case killed_peer_shows_up_as_failed
finish
