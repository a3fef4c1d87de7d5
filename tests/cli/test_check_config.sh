#!/usr/bin/env bash
# cohortd --check-config: a full node directory built with cohortctl (CA,
# node key and certificate, signed roster, node.yaml), then broken one piece
# at a time, as an operator would break it.
set -euo pipefail
# shellcheck source=tests/cli/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require_programs "$COHORTCTL" "$COHORTD"

CTL=$COHORTCTL
D=$COHORTD

# Shared, read-only fixtures.
#   $CA, $OTHER_CA          the cluster CA and an unrelated one
#   $NODES/node-2, node-3   other nodes of the cluster CA (node-3 is in no roster)
#   $NODES/impostor         a node-1 certificate and key from the other CA
#   $TPL                    a complete, valid node directory for node-1:
#                           ca.crt node.key node.crt roster.yaml(.sig) node.yaml state/
CA=$CLI_TMP/ca
OTHER_CA=$CLI_TMP/other-ca
NODES=$CLI_TMP/nodes
TPL=$CLI_TMP/template
new_ca "$CA" testcluster
new_ca "$OTHER_CA" othercluster
new_node "$CA" node-2 "$NODES/node-2"
new_node "$CA" node-3 "$NODES/node-3"
new_node "$OTHER_CA" node-1 "$NODES/impostor"
new_node "$CA" node-1 "$TPL"
cp "$CA/ca.crt" "$TPL/ca.crt"
mkdir "$TPL/state"
"$CTL" roster init --cluster testcluster "$TPL/roster.yaml" >/dev/null
"$CTL" roster add "$TPL/roster.yaml" --name node-1 --cert "$TPL/node.crt" --roles relay --site s1 >/dev/null
"$CTL" roster add "$TPL/roster.yaml" --name node-2 --cert "$NODES/node-2/node.crt" --site s1 >/dev/null
"$CTL" roster sign "$TPL/roster.yaml" --ca "$CA" >/dev/null
cat >"$TPL/node.yaml" <<'EOF'
node:
  name: node-1
  state_dir: state
identity:
  key: node.key
  cert: node.crt
trust:
  ca: ca.crt
  roster: roster.yaml
EOF

# node_dir: a private copy of the template in ./node; sets ABS to its real
# absolute path as a grep -E pattern (cohortd names files by resolved path).
node_dir() {
    cp -a "$TPL" node
    ABS=$(re "$(cd node && pwd -P)")
}

# set_key FILE SECTION.KEY VALUE: sets one key in a config written in the
# template's layout (the section must exist, the key may).
set_key() {
    local file=$1 section=${2%%.*} key=${2#*.} value=$3
    awk -v s="$section:" -v k="  $key:" -v v="  $key: $value" '
        /^[^ #]/ { if (in_s && !done) { print v; done = 1 } in_s = ($0 == s) }
        in_s && index($0, k) == 1 { print v; done = 1; next }
        { print }
        END { if (in_s && !done) print v }' "$file" >"$file.new"
    mv "$file.new" "$file"
    grep -qF -- "  $key: $value" "$file" || fail "set_key: could not set $2 in $file"
}

check() {
    "$D" --check-config -c "$@"
}

# ---- refusals and failures ----

missing_config_file() {
    expect_fail 1 "^cohortd: nope\.yaml: cannot open: No such file or directory$" -- check nope.yaml
    [[ -z $OUT ]] || fail "a failed check printed a config on stdout"
    mkdir dir.yaml
    expect_fail 1 "^cohortd: dir\.yaml: not a regular file$" -- check dir.yaml
}

usage_errors() {
    node_dir
    expect_fail 2 "usage: cohortd -c node\.yaml" -- "$D" --check-config
    expect_fail 2 "usage: cohortd -c node\.yaml" -- "$D" --check-config -c node/node.yaml extra
    expect_fail 2 "usage: cohortd" -- "$D" --bogus -c node/node.yaml
}

malformed_yaml_config() {
    node_dir
    printf 'node:\n  name: [node-1\n' >node/bad.yaml
    expect_fail 1 "^cohortd: node/bad\.yaml:3:1: invalid YAML: did not find expected ',' or ']'" \
        -- check node/bad.yaml
    printf 'node:\n  name: node-1\n\tstate_dir: x\n' >node/tab.yaml
    expect_fail 1 "^cohortd: node/tab\.yaml:[0-9]+:[0-9]+: invalid YAML" -- check node/tab.yaml
    : >node/empty.yaml
    expect_fail 1 "^cohortd: node/empty\.yaml: expected a mapping of sections, got an empty document$" \
        -- check node/empty.yaml
    printf -- '- node\n' >node/list.yaml
    expect_fail 1 "^cohortd: node/list\.yaml:1:1: .*mapping" -- check node/list.yaml
}

config_of_2_mib() {
    node_dir
    # A valid config padded with comments: the size alone is the problem.
    cp node/node.yaml node/big.yaml
    head -c $((2 * 1024 * 1024)) /dev/zero | tr '\0' '#' >>node/big.yaml
    local size
    size=$(stat -c %s node/big.yaml)
    expect_fail 1 "^cohortd: node/big\.yaml: file is $size bytes, larger than the limit of 1048576$" \
        -- check node/big.yaml
}

unknown_key_or_section() {
    node_dir
    sed -i 's/^  cert: node\.crt$/  cert: node.crt\n  colour: red/' node/node.yaml
    local line
    line=$(grep -n "^  colour: red$" node/node.yaml | cut -d: -f1)
    expect_fail 1 "^cohortd: node/node\.yaml:$line:3: identity: unknown key \(known: key, cert\), got 'colour'$" \
        -- check node/node.yaml
    cp "$TPL/node.yaml" node/node.yaml
    printf 'extra:\n  foo: 1\n' >>node/node.yaml
    line=$(grep -n "^extra:$" node/node.yaml | cut -d: -f1)
    expect_fail 1 "^cohortd: node/node\.yaml:$line:1: unknown section \(known: node, identity, trust, listen, api, log, limits, links, proxy, relay, membership, discovery, metrics\), got 'extra'$" \
        -- check node/node.yaml
}

listen_port_out_of_range() {
    node_dir
    printf 'listen:\n  port: 70000\n' >>node/node.yaml
    local line
    line=$(grep -n "^  port: 70000$" node/node.yaml | cut -d: -f1)
    expect_fail 1 "^cohortd: node/node\.yaml:$line:9: listen\.port: must be 1\.\.65535, got '70000'$" \
        -- check node/node.yaml
    [[ -z $OUT ]] || fail "a failed check printed a config on stdout"
    set_key node/node.yaml listen.port 0
    expect_fail 1 "^cohortd: node/node\.yaml:$line:9: listen\.port: must be 1\.\.65535, got '0'$" \
        -- check node/node.yaml
}

other_bad_values_are_named() {
    node_dir
    cp node/node.yaml base.yaml
    set_key node/node.yaml node.name '"bad name"'
    expect_fail 1 "^cohortd: node/node\.yaml:2:9: node\.name: must be 1\.\.63 characters of A-Z a-z 0-9 \. _ - starting with a letter or digit, got 'bad name'$" \
        -- check node/node.yaml
    sed '/^  name: node-1$/d' base.yaml >node/node.yaml
    expect_fail 1 "^cohortd: node/node\.yaml: node\.name: required key is missing$" -- check node/node.yaml
    cp base.yaml node/node.yaml
    set_key node/node.yaml trust.ca '[]'
    expect_fail 1 "^cohortd: node/node\.yaml:[0-9]+:7: trust\.ca: must have 1\.\.16 items, got 0$" \
        -- check node/node.yaml
    cp base.yaml node/node.yaml
    printf 'listen:\n  port: 7700\n  punch_port: 7700\n' >>node/node.yaml
    expect_fail 1 "^cohortd: node/node\.yaml:[0-9]+:15: listen\.punch_port: must differ from listen\.port .*got '7700'$" \
        -- check node/node.yaml
    cp base.yaml node/node.yaml
    printf 'log:\n  level: loud\n' >>node/node.yaml
    expect_fail 1 "^cohortd: node/node\.yaml:[0-9]+:10: log\.level: must be one of debug, info, warn, error, got 'loud'$" \
        -- check node/node.yaml
    cp base.yaml node/node.yaml
    printf 'limits:\n  send_timeout: 5\n' >>node/node.yaml
    expect_fail 1 "^cohortd: node/node\.yaml:[0-9]+:17: limits\.send_timeout: needs a unit \(ms, s, m, h\), got '5'$" \
        -- check node/node.yaml
    cp base.yaml node/node.yaml
    printf 'node:\n  name: again\n' >>node/node.yaml
    expect_fail 1 "^cohortd: node/node\.yaml:[0-9]+:1: node: duplicate section, first at line 1$" \
        -- check node/node.yaml
}

key_file_mode_0644() {
    node_dir
    chmod 644 node/node.key
    expect_fail 1 "^cohortd: $ABS/node\.key: private key is accessible by group or others \(mode 0644\); run chmod 600 on it$" \
        -- check node/node.yaml
    [[ -z $OUT ]] || fail "a failed check printed a config on stdout"
}

key_not_matching_cert() {
    node_dir
    cp -p "$NODES/node-2/node.key" node/other.key
    set_key node/node.yaml identity.key other.key
    expect_fail 1 "^cohortd: $ABS/node\.crt: certificate does not match the private key $ABS/other\.key$" \
        -- check node/node.yaml
}

cert_cn_differs_from_node_name() {
    node_dir
    set_key node/node.yaml node.name node-2
    expect_fail 1 "^cohortd: $ABS/node\.crt: certificate is for 'node-1', but node\.name is 'node-2'$" \
        -- check node/node.yaml
}

cert_from_another_ca() {
    node_dir
    cp -p "$NODES/impostor/node.key" node/node.key
    cp "$NODES/impostor/node.crt" node/node.crt
    expect_fail 1 "^cohortd: $ABS/node\.crt: untrusted: certificate 'node-1' \(issuer 'othercluster'\) does not chain to a trusted CA: unable to get local issuer certificate$" \
        -- check node/node.yaml
}

cert_expired() {
    node_dir
    openssl pkey -in node/node.key -pubout -out node.pub
    make_expired_cert "$CA" node-1 node.pub node/node.crt
    expect_fail 1 "^cohortd: $ABS/node\.crt: expired: certificate 'node-1' \(or its CA\) expired at 2020-02-01T00:00:00Z$" \
        -- check node/node.yaml
}

trust_ca_not_a_ca() {
    node_dir
    set_key node/node.yaml trust.ca node.crt
    expect_fail 1 "^cohortd: $ABS/node\.crt: not a CA certificate \(basicConstraints CA:TRUE missing\)$" \
        -- check node/node.yaml
    set_key node/node.yaml trust.ca missing-ca.crt
    expect_fail 1 "^cohortd: $ABS/missing-ca\.crt: cannot open: No such file or directory$" \
        -- check node/node.yaml
}

node_not_in_roster() {
    node_dir
    cp -p "$NODES/node-3/node.key" node/node.key
    cp "$NODES/node-3/node.crt" node/node.crt
    set_key node/node.yaml node.name node-3
    expect_fail 1 "^cohortd: $ABS/roster\.yaml: this node \('node-3', certificate sha256:$(cert_fp node/node.crt)\) is not a member of cluster 'testcluster'$" \
        -- check node/node.yaml
}

node_revoked() {
    node_dir
    # The usual way: revoke removes the member too.
    "$CTL" roster revoke node/roster.yaml --name node-1 --reason "lost" >/dev/null
    "$CTL" roster sign node/roster.yaml --ca "$CA" >/dev/null
    expect_fail 1 "^cohortd: $ABS/roster\.yaml: this node's certificate \(sha256:$(cert_fp node/node.crt)\) has been revoked$" \
        -- check node/node.yaml
    # Revoked but still listed: a warning for the member, and refused.
    cp "$TPL/roster.yaml" node/roster.yaml
    sed -i "s/^revoked: \[\]$/revoked:\n- $(cert_fp node/node.crt)/" node/roster.yaml
    "$CTL" roster sign node/roster.yaml --ca "$CA" >/dev/null 2>&1
    expect_fail 1 "^cohortd: $ABS/roster\.yaml: this node \('node-1'\) is listed but not admitted: revoked$" \
        -- check node/node.yaml
}

roster_bad_signature() {
    node_dir
    echo "# appended after signing" >>node/roster.yaml
    expect_fail 1 "^cohortd: $ABS/roster\.yaml\.sig: signer $(cert_fp "$CA/ca.crt"): signature does not verify against any of the 1 trusted CA\(s\)$" \
        -- check node/node.yaml
    # Signed by another CA (cohort's format, made with openssl).
    cp "$TPL/roster.yaml" node/roster.yaml
    {
        echo "algorithm: ed25519"
        echo "signature: $(openssl pkeyutl -sign -rawin -inkey "$OTHER_CA/ca.key" -in node/roster.yaml | base64 -w0)"
    } >node/roster.yaml.sig
    expect_fail 1 "^cohortd: $ABS/roster\.yaml\.sig: signature does not verify against any of the 1 trusted CA\(s\)$" \
        -- check node/node.yaml
}

roster_unsigned() {
    node_dir
    rm node/roster.yaml.sig
    expect_fail 1 "^cohortd: roster signature: $ABS/roster\.yaml\.sig: cannot open: No such file or directory$" \
        -- check node/node.yaml
    # trust.roster_signature points elsewhere: that file is the one needed.
    cp "$TPL/roster.yaml.sig" node/elsewhere.sig
    set_key node/node.yaml trust.roster_signature elsewhere.sig
    expect_ok "ok: node 'node-1'" -- check node/node.yaml
    out_has "^  roster_signature: $ABS/elsewhere\.sig$"
}

held_roster_newer_than_the_configured_one_is_used() {
    node_dir
    # A newer roster (serial 4) was accepted earlier and is held in state_dir:
    # the node uses it, never going back to the older configured one.
    cp node/roster.yaml newer.yaml
    "$CTL" roster set-role newer.yaml --name node-2 --roles relay >/dev/null
    "$CTL" roster sign newer.yaml --ca "$CA" >/dev/null
    cp newer.yaml node/state/roster.yaml
    cp newer.yaml.sig node/state/roster.yaml.sig
    expect_ok "roster serial 4, 2 member\(s\)" -- check node/node.yaml
    out_has "^cohortd: note: $ABS/roster\.yaml: serial 3 is older than the roster held in $ABS/state/roster\.yaml \(serial 4\), which the node uses; a node never goes back to an older roster$"
    # A held roster that no longer verifies is ignored.
    echo "# edited" >>node/state/roster.yaml
    expect_ok "roster serial 3, 2 member\(s\)" -- check node/node.yaml
    # The config pointing at that same newer roster is fine.
    cp newer.yaml node/roster.yaml
    cp newer.yaml.sig node/roster.yaml.sig
    expect_ok "roster serial 4, 2 member\(s\)" -- check node/node.yaml
}

roster_same_serial_other_contents_is_refused() {
    node_dir
    # Held: serial 4 with node-2 revoked. Configured: another serial 4 that
    # still lists node-2. Accepting it would undo the revocation.
    cp node/roster.yaml held.yaml
    "$CTL" roster revoke held.yaml --name node-2 >/dev/null
    "$CTL" roster sign held.yaml --ca "$CA" >/dev/null
    cp held.yaml node/state/roster.yaml
    cp held.yaml.sig node/state/roster.yaml.sig
    "$CTL" roster set-role node/roster.yaml --name node-2 --roles relay >/dev/null
    "$CTL" roster sign node/roster.yaml --ca "$CA" >/dev/null
    expect_fail 1 "^cohortd: $ABS/roster\.yaml: serial 4 equals the serial held in $ABS/state/roster\.yaml but the contents differ; a changed roster needs a higher serial$" \
        -- check node/node.yaml
}

# ---- what works ----

check_config_prints_effective_config() {
    node_dir
    expect_ok -- check node/node.yaml
    assert_eq "stderr" "cohortd: node/node.yaml: ok: node 'node-1' is an admitted member of cluster 'testcluster' (roster serial 3, 2 member(s))" "$ERR"
    local abs
    abs=$(cd node && pwd -P)
    # Every key, defaults filled in, paths absolute, derived values resolved.
    local want
    want=$(
        cat <<EOF
node:
  name: node-1
  state_dir: $abs/state
identity:
  key: $abs/node.key
  cert: $abs/node.crt
trust:
  ca:
  - $abs/ca.crt
  roster: $abs/roster.yaml
  roster_signature: $abs/roster.yaml.sig
listen:
  address: "0.0.0.0"
  port: 7700
  punch_port: 7701
  advertise: []
api:
  endpoint: ipc://$abs/state/api.sock
log:
  level: info
  format: text
limits:
  max_message_size: 1MiB
  send_queue: 10000
  receive_queue: 100000
  receive_bytes: 64MiB
  peer_receive_queue: 1000
  send_timeout: 0ms
links:
  direct_timeout: 2s
  punch_timeout: 3s
  upgrade_interval: 30s
  probe_timeout: 3s
proxy:
  socks5: ""
relay:
  pair_bytes_per_second: 16MiB
  pair_messages_per_second: 100000
membership:
  probe_interval: 1s
  probe_timeout: 500ms
  suspicion_timeout: 4s
  indirect_probes: 3
discovery:
  lan: false
  port: 7702
  address: "255.255.255.255"
  interval: 5s
metrics:
  address: ""
EOF
    )
    [[ $OUT == "$want" ]] || fail "effective config differs:
$(diff <(echo "$want") <(echo "$OUT") || true)"
}

effective_config_round_trips() {
    node_dir
    check node/node.yaml >first.yaml 2>/dev/null
    # Fed back as a config file (from another directory), it reads the same.
    mkdir elsewhere
    cp first.yaml elsewhere/effective.yaml
    expect_ok "^cohortd: elsewhere/effective\.yaml: ok: node 'node-1'" -- check elsewhere/effective.yaml
    printf '%s\n' "$OUT" >second.yaml
    assert_same_file first.yaml second.yaml
    # The same for a config that sets every key to a non-default value.
    cat >node/full.yaml <<'EOF'
node:
  name: node-1
  state_dir: state
identity:
  key: node.key
  cert: node.crt
trust:
  ca: [ca.crt, ca.crt]
  roster: roster.yaml
  roster_signature: roster.yaml.sig
listen:
  address: "::"
  port: 9000
  punch_port: 0
  advertise: [tcp://203.0.113.7:9000, "tcp://[2001:db8::7]:9000"]
api:
  endpoint: tcp://127.0.0.1:9100
log:
  level: debug
  format: json
limits:
  max_message_size: 64KiB
  send_queue: 16
  send_timeout: 2s
EOF
    check node/full.yaml >full1.yaml 2>/dev/null || fail "node/full.yaml does not load"
    grep -q "^  port: 9000$" full1.yaml || fail "listen.port 9000 is not in the effective config"
    grep -q "^  level: debug$" full1.yaml || fail "log.level debug is not in the effective config"
    cp full1.yaml elsewhere/full.yaml
    check elsewhere/full.yaml >full2.yaml 2>/dev/null || fail "the effective config does not load"
    assert_same_file full1.yaml full2.yaml
}

reference_config_loads() {
    node_dir
    # config/node.yaml, the documented reference, as is apart from the state
    # directory (kept inside the test). Its node.name is node-1 and its files
    # are the template's names, next to it.
    sed 's#^  state_dir: /var/lib/cohort$#  state_dir: state#' \
        "$COHORT_SRC/config/node.yaml" >node/reference.yaml
    grep -q "^  state_dir: state$" node/reference.yaml || fail "config/node.yaml has no state_dir line to adapt"
    expect_ok "ok: node 'node-1' is an admitted member" -- check node/reference.yaml
    printf '%s\n' "$OUT" >ref1.yaml
    check node/node.yaml >minimal.yaml 2>/dev/null
    # The reference sets every key to its default: same effective config as
    # the minimal file.
    assert_same_file ref1.yaml minimal.yaml
}

warnings_do_not_fail_the_check() {
    node_dir
    "$CTL" keygen --out old >/dev/null
    make_expired_cert "$CA" old old/node.pub old/node.crt
    "$CTL" roster add node/roster.yaml --name old --cert old/node.crt >/dev/null
    "$CTL" roster sign node/roster.yaml --ca "$CA" >/dev/null 2>&1
    expect_ok "^cohortd: warning: .*member 'old': certificate expired at 2020-02-01T00:00:00Z; the member will not be admitted$" \
        -- check node/node.yaml
    out_has "ok: node 'node-1' is an admitted member of cluster 'testcluster' \(roster serial 4, 3 member\(s\)\)"
    grep -q "^node:$" <<<"$OUT" || fail "no effective config on stdout"
    if grep -Eq "^cohortd:|warning:" <<<"$OUT"; then fail "a message went to stdout, into the config"; fi
}

run_case missing_config_file
run_case usage_errors
run_case malformed_yaml_config
run_case config_of_2_mib
run_case unknown_key_or_section
run_case listen_port_out_of_range
run_case other_bad_values_are_named
run_case key_file_mode_0644
run_case key_not_matching_cert
run_case cert_cn_differs_from_node_name
run_case cert_from_another_ca
run_case cert_expired
run_case trust_ca_not_a_ca
run_case node_not_in_roster
run_case node_revoked
run_case roster_bad_signature
run_case roster_unsigned
run_case held_roster_newer_than_the_configured_one_is_used
run_case roster_same_serial_other_contents_is_refused
run_case check_config_prints_effective_config
run_case effective_config_round_trips
run_case reference_config_loads
run_case warnings_do_not_fail_the_check
finish
