#!/usr/bin/env bash
# Live roster changes on a running cluster: `cohortctl roster push` and
# SIGHUP. Four real cohortd processes (alpha, beta, gamma, delta) on
# 127.0.0.1 with a throwaway CA and a signed roster, as in test_node_cli.sh.
# Refusals first (each leaves every node as it was); then a revocation of
# delta pushed to one node reaches all; then SIGHUP picks up a newer
# trust.roster file.
set -euo pipefail
# shellcheck source=tests/cli/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require_programs "$COHORTCTL" "$COHORTD"

CTL=$COHORTCTL
NAMES=(alpha beta gamma delta)
declare -A SITE=([alpha]=hq [beta]=hq [gamma]=hq [delta]=hq)
# shellcheck source=tests/cli/nodes.sh
source "$(dirname "${BASH_SOURCE[0]}")/nodes.sh"

# serial NODE: the roster serial NODE holds.
serial() {
    ctl "$1" status | awk '/^roster serial/ { print $3 }'
}

# wait_serial NODE SERIAL [SECONDS]
wait_serial() {
    local end=$((SECONDS + ${3:-5})) s=""
    while :; do
        s=$(serial "$1" || true)
        [[ $s == "$2" ]] && return 0
        if ((SECONDS >= end)); then
            CLI_LAST_CMD="" fail "$1 holds serial '$s', not $2, after ${3:-5} s"
            return 1
        fi
        sleep 0.05
    done
}

# ---- the cluster ----

nodes_make
cp "$CL/roster.yaml" "$CL/start.yaml"
cp "$CL/roster.yaml.sig" "$CL/start.yaml.sig"
S0=$(awk '/^serial:/ { print $2 }' "$CL/roster.yaml")

# each node holds the roster it started with a moment after start
node_ready() {
    [[ -s ${DIR[$1]}/state/roster.yaml && ! -e ${DIR[$1]}/state/roster.yaml.next ]]
}
nodes_start_all
nodes_wait_up || exit 1

bg_cleanup() {
    local j
    for j in $(jobs -p); do kill "$j" 2>/dev/null || true; done
}

# every node still holds S0 and the roster it started with
nothing_changed() {
    local n
    for n in "${NAMES[@]}"; do
        assert_eq "$n's serial" "$S0" "$(serial "$n")"
        assert_same_file "${DIR[$n]}/state/roster.yaml" "$CL/start.yaml"
    done
}

# revoked NAME OUT: a copy of the starting roster with NAME revoked, signed.
revoked() {
    cp "$CL/start.yaml" "$2"
    "$CTL" roster revoke "$2" --name "$1" --reason test >/dev/null
    "$CTL" roster sign "$2" --ca "$CL/ca" >/dev/null
}

# ---- refusals ----

push_usage_and_unreadable_files() {
    expect_fail 2 "usage: cohortctl roster push FILE \[--signature FILE\.sig\] \[--api ENDPOINT \| -c node\.yaml\]" \
        -- "$CTL" roster push
    expect_fail 2 "usage: cohortctl roster push" -- "$CTL" roster push a.yaml b.yaml --api "${API[alpha]}"
    expect_fail 1 "^cohortctl: roster push: none\.yaml: cannot open" -- ctl alpha roster push none.yaml
    cp "$CL/start.yaml" unsigned.yaml
    expect_fail 1 "^cohortctl: roster push: unsigned\.yaml: not signed: no unsigned\.yaml\.sig; run \`cohortctl roster sign unsigned\.yaml --ca CA_DIR\`$" \
        -- ctl alpha roster push unsigned.yaml
    expect_fail 1 "cannot reach the node at ipc://$(re "$PWD")/none\.sock" \
        -- "$CTL" roster push "$CL/start.yaml" --api "ipc://$PWD/none.sock"
    expect_fail 2 "which node\?" -- env -u COHORT_API "$CTL" roster push "$CL/start.yaml"
    nothing_changed
}

push_tampered_roster_is_refused() {
    trap bg_cleanup EXIT
    ctl alpha events --timeout 20 >events.out 2>events.err &
    wait_for events.err "listening"
    revoked delta rev.yaml
    echo "# added after signing" >>rev.yaml
    expect_fail 1 "^cohortctl: roster push: rev\.yaml: refused \(bad-signature\): pushed roster signature: signer [0-9a-f]{64}: signature does not verify against any of the 1 trusted CA\(s\)$" \
        -- ctl alpha roster push rev.yaml
    wait_for events.out "^roster\.rejected alpha reason=bad-signature$"
    grep -Eq "roster\.rejected source=push from=alpha serial=0 held=$S0 reason=bad-signature" \
        "${DIR[alpha]}/log" || fail "no roster.rejected line in alpha's log"
    # a signature file other than FILE.sig, of other bytes
    revoked delta good.yaml
    revoked gamma other.yaml
    expect_fail 1 "refused \(bad-signature\)" \
        -- ctl alpha roster push good.yaml --signature other.yaml.sig
    # an empty signature file
    : >empty.sig
    expect_fail 1 "refused \(unsigned\)" -- ctl alpha roster push good.yaml --signature empty.sig
    nothing_changed
}

push_signed_by_another_ca_is_refused() {
    new_ca other othercluster
    revoked delta rev.yaml
    # `roster sign` refuses members that do not chain to its CA: sign the
    # exact bytes with the other CA's Ed25519 key by hand, in the same format
    local b64
    b64=$(openssl pkeyutl -sign -rawin -inkey other/ca.key -in rev.yaml | base64 -w0)
    printf 'algorithm: ed25519\nsigner: %s\nsignature: %s\n' "$(cert_fp other/ca.crt)" "$b64" >other.sig
    expect_fail 1 "^cohortctl: roster push: rev\.yaml: refused \(unknown-signer\): " \
        -- ctl beta roster push rev.yaml --signature other.sig
    nothing_changed
}

push_of_the_held_roster_or_of_another_cluster_is_refused() {
    expect_fail 1 "refused \(same-serial\): pushed roster: serial $S0 is the serial this node already holds" \
        -- ctl alpha roster push "$CL/start.yaml"
    "$CTL" roster init --cluster othercluster other.yaml >/dev/null
    "$CTL" roster add other.yaml --name alpha --cert "${DIR[alpha]}/node.crt" >/dev/null
    for _ in $(seq 1 "$S0"); do "$CTL" roster set-site other.yaml --name alpha --site x >/dev/null; done
    "$CTL" roster sign other.yaml --ca "$CL/ca" >/dev/null
    expect_fail 1 "refused \(other-cluster\): pushed roster: roster of cluster 'othercluster', but this node is in cluster 'testcluster'$" \
        -- ctl alpha roster push other.yaml
    nothing_changed
}

push_that_throws_out_the_node_itself_is_refused() {
    revoked alpha rev.yaml
    expect_fail 1 "refused \(self-not-admitted\): pushed roster: serial $((S0 + 1)) does not admit this node \('alpha': revoked\)" \
        -- ctl alpha roster push rev.yaml
    nothing_changed
}

# ---- what works ----

push_of_a_revocation_reaches_every_node() {
    revoked delta rev.yaml
    local before
    before=$(ctl gamma status --json | grep -Eo '"handshakes_refused":[0-9]+' | cut -d: -f2)
    expect_ok "^rev\.yaml: serial $((S0 + 1)) applied; the node spreads it to its peers$" \
        -- "$CTL" roster push rev.yaml -c "${DIR[beta]}/node.yaml"
    local n
    for n in alpha beta gamma; do
        wait_serial "$n" $((S0 + 1))
        run ctl "$n" peers
        out_lacks "^delta "
        assert_same_file "${DIR[$n]}/state/roster.yaml" rev.yaml
        assert_same_file "${DIR[$n]}/state/roster.yaml.sig" rev.yaml.sig
        wait_for "${DIR[$n]}/log" "member\.revoked node=delta reason=revoked"
        grep -Eq "member\.cut node=delta reason=revoked dealer_closed=yes .*inbound_closed=1" \
            "${DIR[$n]}/log" || fail "$n did not close delta's links: $(grep member.cut "${DIR[$n]}/log")"
    done
    # delta keeps the old one, says why, and is refused wherever it knocks
    assert_eq "delta's serial" "$S0" "$(serial delta)"
    local after=$before end=$((SECONDS + 5))
    while ((after <= before && SECONDS < end)); do
        sleep 0.2
        after=$(ctl gamma status --json | grep -Eo '"handshakes_refused":[0-9]+' | cut -d: -f2)
    done
    ((after > before)) || fail "gamma refused no handshake of delta's ($before -> $after)"
    expect_fail 1 "unknown node 'delta'" -- ctl alpha send delta hello
    # the older roster is refused now
    expect_fail 1 "refused \(older-serial\): pushed roster: serial $S0 is lower than serial $((S0 + 1)) held by this node" \
        -- ctl gamma roster push "$CL/start.yaml"
    # a restart keeps the held roster even though trust.roster is older
    kill -TERM "${PID[gamma]}"
    wait_for "${DIR[gamma]}/exit" "." 5
    start_node gamma
    wait_for "${DIR[gamma]}/log" "roster\.held_newer serial=$((S0 + 1)) configured=$S0"
    wait_serial gamma $((S0 + 1))
}

sighup_picks_up_a_newer_roster_file() {
    local log=${DIR[alpha]}/log n
    # trust.roster (shared by all four) now holds the next change
    cp "${DIR[alpha]}/state/roster.yaml" "$CL/roster.yaml"
    "$CTL" roster set-site "$CL/roster.yaml" --name gamma --site plant >/dev/null
    "$CTL" roster sign "$CL/roster.yaml" --ca "$CL/ca" >/dev/null
    kill -HUP "${PID[alpha]}"
    wait_for "$log" "roster\.reload outcome=applied serial=$((S0 + 2)) file=.*/roster\.yaml$"
    for n in alpha beta gamma; do wait_serial "$n" $((S0 + 2)); done
    expect_ok "^gamma +plant " -- ctl beta peers
    # the same file again: no news
    kill -HUP "${PID[alpha]}"
    wait_for "$log" "roster\.reload outcome=unchanged serial=$((S0 + 2)) reason=same-serial"
    # a file spoiled after signing: said clearly, and the node keeps its roster
    echo "# spoiled" >>"$CL/roster.yaml"
    kill -HUP "${PID[beta]}"
    wait_for "${DIR[beta]}/log" "roster\.reload\.failed reason=bad-signature serial=$((S0 + 2)) kept=held error=\".*signature does not verify"
    for n in alpha beta gamma; do assert_eq "$n's serial" $((S0 + 2)) "$(serial "$n")"; done
}

run_case push_usage_and_unreadable_files
run_case push_tampered_roster_is_refused
run_case push_signed_by_another_ca_is_refused
run_case push_of_the_held_roster_or_of_another_cluster_is_refused
run_case push_that_throws_out_the_node_itself_is_refused
run_case push_of_a_revocation_reaches_every_node
run_case sighup_picks_up_a_newer_roster_file
finish
