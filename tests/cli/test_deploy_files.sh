#!/usr/bin/env bash
# deploy/: the systemd unit and the Kubernetes manifests, checked offline.
#
# - yamllint (.yamllint) on every deploy/**/*.yaml;
# - the manifests against the part of the Kubernetes API they use
#   (tests/cli/python/check_deploy.py: no kubeconform/kubeval in Debian 12,
#   and nothing can be fetched offline), and the checker against broken
#   copies, so it is known to catch what it claims;
# - the node configs of the ConfigMap through `cohortd --check-config`, with
#   a real CA, certificates and a signed roster for the members they name;
# - the systemd unit: its hardening, `systemd-analyze verify` and the
#   exposure score of `systemd-analyze security --offline` when
#   systemd-analyze is installed (it runs without systemd as PID 1), and
#   systemd-sysusers --dry-run on the sysusers file.
set -euo pipefail
# shellcheck source=tests/cli/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require_programs "$COHORTCTL" "$COHORTD"

PY=${COHORT_PYTHON:-/usr/bin/python3}
export PYTHONDONTWRITEBYTECODE=1
CHECK=$COHORT_SRC/tests/cli/python/check_deploy.py
DEPLOY=$COHORT_SRC/deploy
UNIT=$DEPLOY/systemd/cohortd.service

yamllint_passes_on_deploy_yaml() {
    command -v yamllint >/dev/null || fail "yamllint is not installed: run deploy/deps.sh test"
    local files
    mapfile -t files < <(find "$DEPLOY" -name '*.yaml' -o -name '*.yml' | sort)
    ((${#files[@]} >= 4)) || fail "found only ${#files[@]} YAML files under deploy/"
    expect_ok -- yamllint -c "$COHORT_SRC/.yamllint" -s "${files[@]}"
    # the configuration is in force: a long line is refused
    cp "$DEPLOY/k8s/service.yaml" long.yaml
    printf '# %s\n' "$(printf 'word %.0s' {1..30})" >>long.yaml
    expect_fail 1 "line too long" -- yamllint -c "$COHORT_SRC/.yamllint" -s long.yaml
}

k8s_manifests_have_what_kubernetes_needs() {
    expect_ok -- "$PY" "$CHECK" k8s "$DEPLOY/k8s"
    [[ -z $OUT ]] || fail "problems reported"
    # a template, never a key: no PEM private key anywhere under deploy/
    if grep -rlE -- "-----BEGIN [A-Z ]*PRIVATE KEY-----" "$DEPLOY"; then
        fail "a private key under deploy/"
    fi
    assert_file "$DEPLOY/k8s/README.md"
    grep -q "cohortctl roster push" "$DEPLOY/k8s/README.md" || fail "README.md: no roster push"
    grep -q "SIGHUP\|kill -HUP" "$DEPLOY/k8s/README.md" || fail "README.md: no SIGHUP"
}

# break FILE SED_EXPR: a copy of deploy/k8s in ./k8s with SED_EXPR applied to FILE.
break_k8s() {
    rm -rf k8s
    cp -r "$DEPLOY/k8s" k8s
    sed -i "$2" "k8s/$1"
    cmp -s "k8s/$1" "$DEPLOY/k8s/$1" && fail "sed '$2' changed nothing in $1"
    return 0
}

the_checker_catches_broken_manifests() {
    break_k8s statefulset.yaml '0,/secretName: cohort-1-identity/s//secretName: cohort-2-identity/'
    expect_fail 1 "must mount only its own Secret cohort-1-identity" -- "$PY" "$CHECK" k8s k8s
    break_k8s statefulset.yaml '0,/^  replicas: 1/s//  replicas: 3/'
    expect_fail 1 "replicas must be 1" -- "$PY" "$CHECK" k8s k8s
    break_k8s statefulset.yaml '0,/apiVersion: apps\/v1/s//apiVersion: apps\/v1beta2/'
    expect_fail 1 "StatefulSet has apiVersion 'apps/v1beta2', want 'apps/v1'" -- "$PY" "$CHECK" k8s k8s
    break_k8s statefulset.yaml '0,/mountPath: \/var\/lib\/cohort/s//mountPath: \/var\/lib\/other/'
    expect_fail 1 "node.state_dir /var/lib/cohort is not the StatefulSet's volume" -- "$PY" "$CHECK" k8s k8s
    break_k8s statefulset.yaml '0,/cohortctl, status/s//cohortctl, peers/'
    expect_fail 1 "readinessProbe must run .cohortctl status." -- "$PY" "$CHECK" k8s k8s
    break_k8s statefulset.yaml '0,/app.kubernetes.io\/instance: cohort-1$/s//app.kubernetes.io\/instance: cohort-9/'
    expect_fail 1 "runs member 'cohort-1' but it is labelled 'cohort-9'" -- "$PY" "$CHECK" k8s k8s
    break_k8s service.yaml 's/clusterIP: None/clusterIP: 10.0.0.7/'
    expect_fail 1 "must be headless" -- "$PY" "$CHECK" k8s k8s
    break_k8s secret.example.yaml '0,/node.key: "REPLACE[^"]*"/s//node.key: "-----BEGIN PRIVATE KEY-----"/'
    expect_fail 1 "must be a REPLACE placeholder" -- "$PY" "$CHECK" k8s k8s
    break_k8s configmap.yaml 's/advertise: \[tcp:\/\/cohort-2-0.cohort:7700\]/advertise: []/'
    expect_fail 1 "listen.advertise \[\], want \[tcp://cohort-2-0.cohort:7700\]" -- "$PY" "$CHECK" k8s k8s
    break_k8s configmap.yaml 's/^  roster.yaml.sig:/  roster.sig:/'
    expect_fail 1 "is not in the ConfigMap beside" -- "$PY" "$CHECK" k8s k8s
}

# The ConfigMap's node configs, with the paths moved under $PWD, pass
# cohortd's own check against a CA, certificates and a signed roster made
# here for the members they name (with the endpoints the README gives).
k8s_node_configs_pass_cohortd_check_config() {
    expect_ok -- "$PY" "$CHECK" node-configs "$DEPLOY/k8s" configs
    local names n
    mapfile -t names <<<"${OUT//.yaml/}"
    assert_eq "members" "cohort-1 cohort-2 cohort-3" "${names[*]}"
    mkdir -p etc/cohort/cluster
    new_ca ca k8scluster
    cp ca/ca.crt etc/cohort/cluster/ca.crt
    "$COHORTCTL" roster init --cluster k8scluster etc/cohort/cluster/roster.yaml >/dev/null
    for n in "${names[@]}"; do
        new_node ca "$n" "$n/identity"
        mkdir -p "$n/state"
        "$COHORTCTL" roster add etc/cohort/cluster/roster.yaml --name "$n" \
            --cert "$n/identity/node.crt" --endpoint "tcp://$n-0.cohort:7700" >/dev/null
    done
    "$COHORTCTL" roster sign etc/cohort/cluster/roster.yaml --ca ca >/dev/null
    for n in "${names[@]}"; do
        sed -e "s|/etc/cohort/cluster/|$PWD/etc/cohort/cluster/|g" \
            -e "s|/run/cohort/identity/|$PWD/$n/identity/|g" \
            -e "s|/var/lib/cohort|$PWD/$n/state|g" "configs/$n.yaml" >"$n.yaml"
        grep -q "$PWD" "$n.yaml" || fail "$n.yaml: no path moved"
        expect_ok -- "$COHORTD" --check-config -c "$n.yaml"
    done
}

systemd_unit_has_the_hardening() {
    expect_ok -- "$PY" "$CHECK" unit "$UNIT"
    [[ -z $OUT ]] || fail "problems reported"
    sed '/^NoNewPrivileges=/d; s/^ProtectSystem=strict/ProtectSystem=full/' "$UNIT" >weak.service
    expect_fail 1 "NoNewPrivileges= missing" -- "$PY" "$CHECK" unit weak.service
    out_has "ProtectSystem=full, want 'strict'"
    assert_file "$DEPLOY/systemd/cohort.sysusers.conf"
    grep -Eq '^u cohort ' "$DEPLOY/systemd/cohort.sysusers.conf" || fail "no user cohort in sysusers file"
}

# systemd-analyze verify checks every key and value against this systemd
# (252 on Debian 12) and that ExecStart's program exists: the unit is
# checked with ExecStart pointing at the cohortd just built.
systemd_analyze_accepts_the_unit() {
    if ! command -v systemd-analyze >/dev/null; then
        echo "note: systemd-analyze is not installed; only the parser check ran" >&2
        return 0
    fi
    sed "s|^ExecStart=/usr/local/bin/cohortd |ExecStart=$COHORTD |" "$UNIT" >cohortd.service
    grep -q "^ExecStart=$COHORTD " cohortd.service || fail "ExecStart not rewritten"
    expect_ok -- systemd-analyze verify --man=no ./cohortd.service
    [[ -z $ALL ]] || fail "systemd-analyze verify warned"
    # a typo is caught (as a warning, so the check above wants no output)
    sed 's/^ProtectHome=yes/ProtectHome=yse/' cohortd.service >typo.service
    run systemd-analyze verify --man=no ./typo.service
    out_has "Failed to parse protect home value"
    # the exposure score: 1.6 today; fail when it gets worse than "OK"
    expect_ok -- systemd-analyze security --offline=yes --no-pager ./cohortd.service
    local score
    score=$(grep -Eo "Overall exposure level for cohortd\.service: [0-9.]+" <<<"$ALL" | awk '{print $NF}')
    [[ -n $score ]] || fail "no exposure level"
    awk -v s="$score" 'BEGIN { exit !(s <= 2.0) }' || fail "exposure level $score > 2.0"
    if command -v systemd-sysusers >/dev/null; then
        expect_ok -- systemd-sysusers --dry-run "$DEPLOY/systemd/cohort.sysusers.conf"
    fi
}

run_case yamllint_passes_on_deploy_yaml
run_case k8s_manifests_have_what_kubernetes_needs
run_case the_checker_catches_broken_manifests
run_case k8s_node_configs_pass_cohortd_check_config
run_case systemd_unit_has_the_hardening
run_case systemd_analyze_accepts_the_unit
finish
