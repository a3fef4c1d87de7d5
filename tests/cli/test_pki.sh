#!/usr/bin/env bash
# cohortctl ca init / keygen / cert issue|show|verify, run as an admin would,
# cross-checked with the openssl CLI.
set -euo pipefail
# shellcheck source=tests/cli/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require_programs "$COHORTCTL"

CTL=$COHORTCTL
NAME_RULE='must be 1\.\.63 characters of A-Z a-z 0-9 \. _ - starting with a letter or digit'

# Shared, read-only fixtures: the cluster CA and a second, unrelated CA.
CA=$CLI_TMP/ca
OTHER_CA=$CLI_TMP/other-ca
new_ca "$CA" testcluster
new_ca "$OTHER_CA" othercluster

# ---- refusals and failures ----

ca_init_refuses_to_replace_a_ca() {
    expect_ok -- "$CTL" ca init --name c1 --out ca
    cp ca/ca.key key.before
    cp ca/ca.crt crt.before
    expect_fail 1 "cohortctl: ca init: ca/ca\.key: already exists; refusing to replace a CA key" \
        -- "$CTL" ca init --name c2 --out ca
    assert_same_file ca/ca.key key.before
    assert_same_file ca/ca.crt crt.before
}

ca_init_usage_errors() {
    expect_fail 2 "usage: cohortctl ca init --name CLUSTER --out DIR" -- "$CTL" ca init --out ca
    expect_fail 2 "usage: cohortctl ca init --name CLUSTER --out DIR" -- "$CTL" ca init --name c
    expect_fail 2 "ca init: --days: must be 1\.\.36600, got '0'" \
        -- "$CTL" ca init --name c --out ca --days 0
    expect_fail 2 "ca init: --days: must be 1\.\.36600, got 'ten'" \
        -- "$CTL" ca init --name c --out ca --days ten
    assert_no_file ca/ca.key
    expect_fail 1 "ca init: CA name: $NAME_RULE, got 'bad name'" \
        -- "$CTL" ca init --name "bad name" --out ca
    assert_no_file ca/ca.key
}

keygen_refuses_to_overwrite_a_key() {
    expect_ok -- "$CTL" keygen --out n
    cp n/node.key key.before
    expect_fail 1 "keygen: n/node\.key: already exists; refusing to overwrite a key" \
        -- "$CTL" keygen --out n
    assert_same_file n/node.key key.before
    expect_fail 2 "usage: cohortctl keygen --out DIR" -- "$CTL" keygen
}

cert_issue_days_usage_errors() {
    local d
    for d in 0 abc -5 36601 99999999999999999999 ""; do
        expect_fail 2 "cert issue: --days: must be 1\.\.36600, got '$d'" \
            -- "$CTL" cert issue --ca "$CA" --name n1 --out n --days "$d"
    done
    # A refused command line touches nothing.
    assert_no_file n
}

cert_issue_usage_errors() {
    local usage='usage: cohortctl cert issue --ca DIR --name NODE \(--pub FILE \| --out DIR\)'
    expect_fail 2 "$usage" -- "$CTL" cert issue --name n1 --out n
    expect_fail 2 "$usage" -- "$CTL" cert issue --ca "$CA" --out n
    expect_fail 2 "$usage" -- "$CTL" cert issue --ca "$CA" --name n1
    expect_fail 2 "$usage" -- "$CTL" cert issue --ca "$CA" --name n1 --out n extra
    expect_fail 2 "unknown command 'cert frobnicate'" -- "$CTL" cert frobnicate
}

cert_issue_bad_node_names() {
    "$CTL" keygen --out k >/dev/null
    local long name
    long=$(printf 'a%.0s' {1..70})
    for name in "bad name" "-x" "$long" "" ".dot-first" "a/b" "é"; do
        expect_fail 1 "cert issue: node name: $NAME_RULE, got '$name'" \
            -- "$CTL" cert issue --ca "$CA" --name "$name" --pub k/node.pub
        out_lacks "BEGIN CERTIFICATE"
    done
    # A refused name leaves nothing behind, not even a fresh key.
    expect_fail 1 "cert issue: node name: $NAME_RULE, got 'bad name'" \
        -- "$CTL" cert issue --ca "$CA" --name "bad name" --out fresh
    [ ! -e fresh ] || { echo "cert issue left fresh/ behind: $(ls fresh)"; return 1; }
    # 63 characters is the longest name.
    expect_ok "BEGIN CERTIFICATE" -- "$CTL" cert issue --ca "$CA" --name "${long:0:63}" --pub k/node.pub
}

cert_issue_refuses_world_readable_node_key() {
    "$CTL" keygen --out n >/dev/null
    chmod 644 n/node.key
    expect_fail 1 "cert issue: n/node\.key: private key is accessible by group or others \(mode 0644\); run chmod 600 on it" \
        -- "$CTL" cert issue --ca "$CA" --name n1 --out n
    assert_no_file n/node.crt
    chmod 640 n/node.key
    expect_fail 1 "n/node\.key: private key is accessible by group or others \(mode 0640\)" \
        -- "$CTL" cert issue --ca "$CA" --name n1 --out n
}

cert_issue_refuses_world_readable_ca_key() {
    cp -a "$CA" ca
    chmod 604 ca/ca.key
    expect_fail 1 "cert issue: ca/ca\.key: private key is accessible by group or others \(mode 0604\)" \
        -- "$CTL" cert issue --ca ca --name n1 --out n
    assert_no_file n/node.crt
}

cert_issue_refuses_bad_ca_dir() {
    expect_fail 1 "cert issue: nowhere/ca\.key: cannot stat: No such file or directory" \
        -- "$CTL" cert issue --ca nowhere --name n1 --out n
    # A CA directory whose key and certificate do not belong together.
    mkdir mixed
    cp -p "$CA/ca.key" mixed/ca.key
    cp "$OTHER_CA/ca.crt" mixed/ca.crt
    expect_fail 1 "cert issue: mixed/ca\.key: does not match mixed/ca\.crt" \
        -- "$CTL" cert issue --ca mixed --name n1 --out n
    assert_no_file n/node.crt
    # A node key where the CA key should be.
    "$CTL" keygen --out k >/dev/null
    mkdir swapped
    cp -p k/node.key swapped/ca.key
    cp "$CA/ca.crt" swapped/ca.crt
    expect_fail 1 "cert issue: swapped/ca\.key: expected an Ed25519 private key, got X25519" \
        -- "$CTL" cert issue --ca swapped --name n1 --out n
}

cert_issue_refuses_wrong_public_keys() {
    openssl genpkey -algorithm ed25519 -out ed.key 2>/dev/null
    openssl pkey -in ed.key -pubout -out ed.pub
    expect_fail 1 "cert issue: ed\.pub: expected an X25519 public key, got ED25519" \
        -- "$CTL" cert issue --ca "$CA" --name n1 --pub ed.pub
    expect_fail 1 "cert issue: $CA/ca\.crt: not a PEM public key" \
        -- "$CTL" cert issue --ca "$CA" --name n1 --pub "$CA/ca.crt"
    : >empty.pub
    expect_fail 1 "cert issue: empty\.pub: not a PEM public key" \
        -- "$CTL" cert issue --ca "$CA" --name n1 --pub empty.pub
    expect_fail 1 "cert issue: missing\.pub: cannot open: No such file or directory" \
        -- "$CTL" cert issue --ca "$CA" --name n1 --pub missing.pub
}

cert_show_refuses_truncated_pem() {
    new_node "$CA" n1 n
    head -c 200 n/node.crt >cut-mid.crt
    expect_fail 1 "cert show: cut-mid\.crt: PEM block 1 is truncated or corrupt" \
        -- "$CTL" cert show cut-mid.crt
    head -n 3 n/node.crt >cut-lines.crt
    expect_fail 1 "cert show: cut-lines\.crt: PEM block 1 is truncated or corrupt" \
        -- "$CTL" cert show cut-lines.crt
    # Base64 that decodes, but not to a certificate.
    sed '2s/^..../AAAA/' n/node.crt >bad-der.crt
    expect_fail 1 "cert show: bad-der\.crt: certificate 1 is not valid DER X\.509" \
        -- "$CTL" cert show bad-der.crt
}

cert_show_refuses_wrong_pem_type() {
    new_node "$CA" n1 n
    expect_fail 1 "cert show: n/node\.key: expected a CERTIFICATE, got a PEM 'PRIVATE KEY' block" \
        -- "$CTL" cert show n/node.key
    "$CTL" keygen --out k >/dev/null
    expect_fail 1 "cert show: k/node\.pub: expected a CERTIFICATE, got a PEM 'PUBLIC KEY' block" \
        -- "$CTL" cert show k/node.pub
    cat n/node.crt "$CA/ca.crt" >two.crt
    expect_fail 1 "cert show: two\.crt: holds more than one certificate; expected exactly one" \
        -- "$CTL" cert show two.crt
}

cert_show_refuses_empty_huge_and_odd_files() {
    : >empty.crt
    expect_fail 1 "cert show: empty\.crt: no PEM certificate found" -- "$CTL" cert show empty.crt
    echo "just some text" >text.crt
    expect_fail 1 "cert show: text\.crt: no PEM certificate found" -- "$CTL" cert show text.crt
    head -c $((10 * 1024 * 1024)) /dev/zero >huge.crt
    expect_fail 1 "cert show: huge\.crt: file is 10485760 bytes, larger than the limit of 262144" \
        -- "$CTL" cert show huge.crt
    mkdir adir
    expect_fail 1 "cert show: adir: not a regular file" -- "$CTL" cert show adir
    expect_fail 1 "cert show: missing\.crt: cannot open: No such file or directory" \
        -- "$CTL" cert show missing.crt
    expect_fail 2 "usage: cohortctl cert show FILE" -- "$CTL" cert show
    expect_fail 2 "usage: cohortctl cert show FILE" -- "$CTL" cert show a b
}

cert_verify_refuses_cert_from_another_ca() {
    new_node "$OTHER_CA" x1 x
    expect_fail 1 "cert verify: x/node\.crt: untrusted: certificate 'x1' \(issuer 'othercluster'\) does not chain to a trusted CA" \
        -- "$CTL" cert verify --ca "$CA/ca.crt" x/node.crt
    # Same CA name, different key: the name alone must not make it chain.
    new_ca impostor testcluster
    new_node impostor n1 fake
    expect_fail 1 "cert verify: fake/node\.crt: untrusted: certificate 'n1' \(issuer 'testcluster'\) does not chain to a trusted CA" \
        -- "$CTL" cert verify --ca "$CA/ca.crt" fake/node.crt
    # openssl agrees on both.
    run openssl verify -CAfile "$CA/ca.crt" fake/node.crt
    [[ $RC != 0 ]] || fail "openssl verify accepted a certificate of an impostor CA"
}

cert_verify_refuses_expired_and_not_yet_valid() {
    "$CTL" keygen --out k >/dev/null
    make_expired_cert "$CA" old k/node.pub old.crt
    # The fixture is a proper certificate of this CA, only out of date.
    expect_ok ": OK" -- openssl verify -no_check_time -CAfile "$CA/ca.crt" old.crt
    expect_fail 2 "certificate has expired" -- openssl verify -CAfile "$CA/ca.crt" old.crt
    expect_fail 1 "cert verify: old\.crt: expired: certificate 'old' \(or its CA\) expired at 2020-02-01T00:00:00Z" \
        -- "$CTL" cert verify --ca "$CA/ca.crt" old.crt
    make_cert "$CA" future k/node.pub 400101000000Z 400201000000Z future.crt
    expect_fail 1 "cert verify: future\.crt: not-yet-valid: certificate 'future' is not valid before 2040-01-01T00:00:00Z" \
        -- "$CTL" cert verify --ca "$CA/ca.crt" future.crt
}

cert_verify_refuses_non_node_certs() {
    expect_fail 1 "cert verify: $CA/ca\.crt: not-leaf: certificate 'testcluster' is a CA certificate, not a node certificate" \
        -- "$CTL" cert verify --ca "$CA/ca.crt" "$CA/ca.crt"
    # A CA-signed certificate for an Ed25519 key (openssl signs it happily).
    openssl genpkey -algorithm ed25519 -out ed.key 2>/dev/null
    openssl req -new -key ed.key -subj /CN=edge -out ed.csr 2>/dev/null
    openssl x509 -req -in ed.csr -CA "$CA/ca.crt" -CAkey "$CA/ca.key" -days 5 -out ed.crt 2>/dev/null
    expect_fail 1 "cert verify: ed\.crt: bad-key: certificate 'edge' holds a key of type ED25519; node keys must be X25519" \
        -- "$CTL" cert verify --ca "$CA/ca.crt" ed.crt
}

cert_verify_refuses_bad_trust_arguments() {
    new_node "$CA" n1 n
    expect_fail 2 "usage: cohortctl cert verify --ca CA\.crt \[--ca \.\.\.\] CERT" \
        -- "$CTL" cert verify n/node.crt
    expect_fail 2 "usage: cohortctl cert verify" -- "$CTL" cert verify --ca "$CA/ca.crt"
    expect_fail 1 "cert verify: n/node\.crt: not a CA certificate \(basicConstraints CA:TRUE missing\)" \
        -- "$CTL" cert verify --ca n/node.crt n/node.crt
    expect_fail 1 "cert verify: nope\.crt: cannot open: No such file or directory" \
        -- "$CTL" cert verify --ca nope.crt n/node.crt
    head -c 100 "$CA/ca.crt" >cut-ca.crt
    expect_fail 1 "cert verify: cut-ca\.crt: PEM block 1 is truncated or corrupt" \
        -- "$CTL" cert verify --ca cut-ca.crt n/node.crt
}

# ---- what works ----

ca_init_creates_key_and_cert() {
    expect_ok "CA 'mycluster' created" -- "$CTL" ca init --name mycluster --out newca --days 30
    assert_mode newca/ca.key 600
    assert_mode newca/ca.crt 644
    assert_mode newca 700
    out_has "fingerprint: $(cert_fp newca/ca.crt)"
    out_has "key: +newca/ca\.key \(keep it offline; mode 0600\)"
    # What openssl sees: Ed25519, self-signed, CA:TRUE, CN = cluster name.
    openssl pkey -in newca/ca.key -noout -text | grep -q "ED25519 Private-Key" ||
        fail "ca.key is not an Ed25519 key"
    local text
    text=$(openssl x509 -in newca/ca.crt -noout -text)
    grep -q "Subject: CN = mycluster" <<<"$text" || fail "ca.crt subject is not CN = mycluster"
    grep -q "Issuer: CN = mycluster" <<<"$text" || fail "ca.crt issuer is not CN = mycluster"
    grep -q "CA:TRUE" <<<"$text" || fail "ca.crt lacks CA:TRUE"
    grep -q "Certificate Sign" <<<"$text" || fail "ca.crt lacks keyCertSign"
    expect_ok ": OK" -- openssl verify -CAfile newca/ca.crt newca/ca.crt
    # 30 days from now, give or take the test's own run time.
    local until want
    until=$(date -u -d "$(openssl x509 -in newca/ca.crt -noout -enddate | cut -d= -f2)" +%s)
    want=$(($(date -u +%s) + 30 * 86400))
    ((until > want - 120 && until <= want)) || fail "ca.crt notAfter $until is not 30 days from now ($want)"
}

keygen_creates_key_pair() {
    expect_ok "key pair created" -- "$CTL" keygen --out deep/node/dir
    assert_mode deep/node/dir/node.key 600
    assert_mode deep/node/dir/node.pub 644
    openssl pkey -in deep/node/dir/node.key -noout -text | grep -q "X25519 Private-Key" ||
        fail "node.key is not an X25519 key"
    openssl pkey -in deep/node/dir/node.key -pubout | cmp -s - deep/node/dir/node.pub ||
        fail "node.pub is not the public half of node.key"
    local z85
    z85=$(sed -n 's/^ *curve: *//p' <<<"$OUT")
    assert_eq "curve key length" 40 "${#z85}"
}

cert_issue_out_generates_key() {
    expect_ok "certificate for 'n1' issued" -- "$CTL" cert issue --ca "$CA" --name n1 --out n1
    assert_mode n1/node.key 600
    assert_file n1/node.crt
    assert_file n1/node.pub
    out_has "fingerprint: $(cert_fp n1/node.crt)"
    # The real openssl accepts it: X25519 key, signed by the Ed25519 CA.
    expect_ok "n1/node\.crt: OK" -- openssl verify -CAfile "$CA/ca.crt" n1/node.crt
    local text
    text=$(openssl x509 -in n1/node.crt -noout -text)
    grep -q "Subject: CN = n1" <<<"$text" || fail "node.crt subject is not CN = n1"
    grep -q "Public Key Algorithm: X25519" <<<"$text" || fail "node.crt key is not X25519"
    grep -q "CA:FALSE" <<<"$text" || fail "node.crt lacks CA:FALSE"
    # The certified key is the one on disk.
    diff <(openssl x509 -in n1/node.crt -noout -pubkey) <(openssl pkey -in n1/node.key -pubout) >/dev/null ||
        fail "node.crt does not certify n1/node.key"
}

cert_issue_out_keeps_existing_key() {
    "$CTL" keygen --out n1 >/dev/null
    cp n1/node.key key.before
    expect_ok "using the existing key n1/node\.key" -- "$CTL" cert issue --ca "$CA" --name n1 --out n1
    assert_same_file n1/node.key key.before
    diff <(openssl x509 -in n1/node.crt -noout -pubkey) n1/node.pub >/dev/null ||
        fail "node.crt does not certify the existing key"
    # Renewal: a second certificate for the same key.
    cp n1/node.crt first.crt
    expect_ok "using the existing key" -- "$CTL" cert issue --ca "$CA" --name n1 --out n1
    if cmp -s first.crt n1/node.crt; then fail "renewal did not write a new certificate"; fi
    assert_same_file n1/node.key key.before
}

cert_issue_from_public_key() {
    "$CTL" keygen --out node >/dev/null
    # To stdout: the CA machine never sees the private key.
    expect_ok "^-----BEGIN CERTIFICATE-----" -- "$CTL" cert issue --ca "$CA" --name n2 --pub node/node.pub
    printf '%s\n' "$OUT" >stdout.crt
    expect_ok ": OK" -- openssl verify -CAfile "$CA/ca.crt" stdout.crt
    diff <(openssl x509 -in stdout.crt -noout -pubkey) node/node.pub >/dev/null ||
        fail "certificate on stdout does not certify node.pub"
    # Into a directory: only the certificate is written there.
    expect_ok "certificate for 'n2' issued" -- "$CTL" cert issue --ca "$CA" --name n2 --pub node/node.pub --out issued
    assert_file issued/node.crt
    assert_no_file issued/node.key
    expect_ok ": OK" -- openssl verify -CAfile "$CA/ca.crt" issued/node.crt
    # A private key file is accepted as --pub; only its public half is used.
    expect_ok "BEGIN CERTIFICATE" -- "$CTL" cert issue --ca "$CA" --name n2 --pub node/node.key
}

cert_issue_never_outlives_ca() {
    "$CTL" ca init --name short --out shortca --days 10 >/dev/null
    expect_ok -- "$CTL" cert issue --ca shortca --name n1 --out n1 --days 365
    local node_end ca_end
    node_end=$(date -u -d "$(openssl x509 -in n1/node.crt -noout -enddate | cut -d= -f2)" +%s)
    ca_end=$(date -u -d "$(openssl x509 -in shortca/ca.crt -noout -enddate | cut -d= -f2)" +%s)
    ((node_end <= ca_end)) || fail "node certificate ends $node_end, after its CA ($ca_end)"
    ((node_end > ca_end - 120)) || fail "node certificate ends $node_end, well before its CA ($ca_end)"
}

cert_show_prints_identity() {
    local z85
    z85=$("$CTL" keygen --out n1 | sed -n 's/^ *curve: *//p')
    "$CTL" cert issue --ca "$CA" --name n1 --out n1 --days 30 >/dev/null 2>&1
    expect_ok -- "$CTL" cert show n1/node.crt
    out_has "^name: +n1$"
    out_has "^issuer: +testcluster$"
    out_has "^fingerprint: +sha256:$(cert_fp n1/node.crt)$"
    out_has "^key type: +X25519$"
    out_has "^ca: +no$"
    # The CURVE key is the Z85 form keygen printed for this very key.
    local shown
    shown=$(sed -n 's/^curve key: *//p' <<<"$OUT")
    assert_eq "curve key length" 40 "${#shown}"
    assert_eq "curve key" "$z85" "$shown"
    # Validity as openssl reads it; 30 days ahead.
    local nb na
    nb=$(date -u -d "$(openssl x509 -in n1/node.crt -noout -startdate | cut -d= -f2)" +%Y-%m-%dT%H:%M:%SZ)
    na=$(date -u -d "$(openssl x509 -in n1/node.crt -noout -enddate | cut -d= -f2)" +%Y-%m-%dT%H:%M:%SZ)
    out_has "^valid from: +$nb$"
    out_has "^valid until: +$na \((29|30) days left\)$"
    # The CA certificate shows as one.
    expect_ok "^ca: +yes$" -- "$CTL" cert show "$CA/ca.crt"
    out_has "^key type: +ED25519$"
    out_has "^curve key: +-$"
}

cert_verify_accepts_issued_cert() {
    new_node "$CA" n1 n1
    expect_ok "^n1/node\.crt: ok: 'n1' chains to a trusted CA, X25519 key, valid until 20[0-9-]+T" \
        -- "$CTL" cert verify --ca "$CA/ca.crt" n1/node.crt
    # Several trusted CAs (rotation with overlap): repeated --ca, or one bundle.
    expect_ok ": ok: 'n1'" -- "$CTL" cert verify --ca "$OTHER_CA/ca.crt" --ca "$CA/ca.crt" n1/node.crt
    cat "$OTHER_CA/ca.crt" "$CA/ca.crt" >bundle.crt
    expect_ok ": ok: 'n1'" -- "$CTL" cert verify --ca bundle.crt n1/node.crt
}

run_case ca_init_refuses_to_replace_a_ca
run_case ca_init_usage_errors
run_case keygen_refuses_to_overwrite_a_key
run_case cert_issue_days_usage_errors
run_case cert_issue_usage_errors
run_case cert_issue_bad_node_names
run_case cert_issue_refuses_world_readable_node_key
run_case cert_issue_refuses_world_readable_ca_key
run_case cert_issue_refuses_bad_ca_dir
run_case cert_issue_refuses_wrong_public_keys
run_case cert_show_refuses_truncated_pem
run_case cert_show_refuses_wrong_pem_type
run_case cert_show_refuses_empty_huge_and_odd_files
run_case cert_verify_refuses_cert_from_another_ca
run_case cert_verify_refuses_expired_and_not_yet_valid
run_case cert_verify_refuses_non_node_certs
run_case cert_verify_refuses_bad_trust_arguments
run_case ca_init_creates_key_and_cert
run_case keygen_creates_key_pair
run_case cert_issue_out_generates_key
run_case cert_issue_out_keeps_existing_key
run_case cert_issue_from_public_key
run_case cert_issue_never_outlives_ca
run_case cert_show_prints_identity
run_case cert_verify_accepts_issued_cert
finish
