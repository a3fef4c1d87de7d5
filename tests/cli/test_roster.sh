#!/usr/bin/env bash
# cohortctl roster init|add|remove|revoke|set-role|set-site|set-endpoints|
# show|sign|verify, run as a CA admin would, with hand edits where an admin
# (or an attacker) would make them.
set -euo pipefail
# shellcheck source=tests/cli/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require_programs "$COHORTCTL"

CTL=$COHORTCTL

# Shared, read-only fixtures: the cluster CA with three nodes, an unrelated
# CA with one node, and an expired certificate of the cluster CA.
CA=$CLI_TMP/ca
OTHER_CA=$CLI_TMP/other-ca
N=$CLI_TMP/nodes
new_ca "$CA" testcluster
new_ca "$OTHER_CA" othercluster
for n in n1 n2 n3; do
    new_node "$CA" "$n" "$N/$n"
done
new_node "$OTHER_CA" x1 "$N/x1"
"$COHORTCTL" keygen --out "$N/old" >/dev/null
make_expired_cert "$CA" old "$N/old/node.pub" "$N/old/node.crt"

# base_roster FILE: n1 (relay+rendezvous, site s1, one endpoint) and n2
# (site s2), at serial 3, unsigned.
base_roster() {
    "$CTL" roster init --cluster testcluster "$1" >/dev/null
    "$CTL" roster add "$1" --name n1 --cert "$N/n1/node.crt" --roles relay,rendezvous --site s1 \
        --endpoint tcp://10.0.0.1:7000 >/dev/null
    "$CTL" roster add "$1" --name n2 --cert "$N/n2/node.crt" --site s2 >/dev/null
}

# signed_roster FILE: base_roster, signed by the cluster CA.
signed_roster() {
    base_roster "$1"
    "$CTL" roster sign "$1" --ca "$CA" >/dev/null
}

# serial_of FILE: the serial line of a roster file.
serial_of() {
    sed -n 's/^serial: //p' "$1"
}

# sign_with_openssl FILE KEY OUT: a signature file in cohort's format, made
# with the openssl CLI alone over FILE's exact bytes, by the key KEY (the
# signer line is informational).
sign_with_openssl() {
    {
        echo "algorithm: ed25519"
        echo "signature: $(openssl pkeyutl -sign -rawin -inkey "$2" -in "$1" | base64 -w0)"
    } >"$3"
}

# dup_member FILE NAME: copies member NAME's block to the end of members.
dup_member() {
    awk -v want="- name: $2" '
        $0 == want { grab = 1 }
        grab && /^(- name: |[a-z])/ && $0 != want { grab = 0 }
        grab { block = block $0 "\n" }
        /^revoked:/ { printf "%s", block }
        { print }' "$1" >"$1.new"
    mv "$1.new" "$1"
}

# revoke_in_place FILE CERT: lists CERT's fingerprint as revoked without
# removing its member (cohortctl revoke would remove it).
revoke_in_place() {
    sed -i "s/^revoked: \[\]$/revoked:\n- fingerprint: $(cert_fp "$2")\n  reason: lost laptop/" "$1"
}

# ---- refusals and failures ----

init_refusals() {
    base_roster r.yaml
    cp r.yaml before.yaml
    expect_fail 1 "roster init: r\.yaml: already exists; refusing to replace a roster" \
        -- "$CTL" roster init --cluster testcluster r.yaml
    assert_same_file r.yaml before.yaml
    expect_fail 1 "roster init: .*cluster: must be 1\.\.63 characters of A-Z a-z 0-9 \. _ - starting with a letter or digit, got 'bad name'" \
        -- "$CTL" roster init --cluster "bad name" new.yaml
    assert_no_file new.yaml
    expect_fail 2 "usage: cohortctl roster init --cluster NAME FILE" -- "$CTL" roster init new.yaml
    expect_fail 2 "usage: cohortctl roster init --cluster NAME FILE" -- "$CTL" roster init --cluster c
    assert_no_file new.yaml
}

add_refusals() {
    signed_roster r.yaml
    cp r.yaml before.yaml
    expect_fail 1 "roster add: unknown role 'foo'; known roles: relay, rendezvous" \
        -- "$CTL" roster add r.yaml --name n3 --cert "$N/n3/node.crt" --roles foo
    expect_fail 1 "roster add: unknown role 'bogus'" \
        -- "$CTL" roster add r.yaml --name n3 --cert "$N/n3/node.crt" --roles relay,bogus
    expect_fail 1 "roster add: certificate is for 'n3' \(its CN\), not 'n4'" \
        -- "$CTL" roster add r.yaml --name n4 --cert "$N/n3/node.crt"
    expect_fail 1 "roster add: member 'n1' already exists" \
        -- "$CTL" roster add r.yaml --name n1 --cert "$N/n1/node.crt"
    # A second certificate for n1's key under another name.
    openssl pkey -in "$N/n1/node.key" -pubout -out n1.pub
    "$CTL" cert issue --ca "$CA" --name n1b --pub n1.pub >n1b.crt
    expect_fail 1 "roster add: member 'n1' already has this public key" \
        -- "$CTL" roster add r.yaml --name n1b --cert n1b.crt
    expect_fail 1 "roster add: endpoint: must be tcp://HOST:PORT, got 'udp://h:1'" \
        -- "$CTL" roster add r.yaml --name n3 --cert "$N/n3/node.crt" --endpoint udp://h:1
    expect_fail 1 "roster add: site: must be 1\.\.63 characters of A-Z a-z 0-9 \. _ -, got 'my site'" \
        -- "$CTL" roster add r.yaml --name n3 --cert "$N/n3/node.crt" --site "my site"
    expect_fail 1 "roster add: $N/n3/node\.key: expected a CERTIFICATE, got a PEM 'PRIVATE KEY' block" \
        -- "$CTL" roster add r.yaml --name n3 --cert "$N/n3/node.key"
    expect_fail 1 "roster add: nope\.yaml: cannot open: No such file or directory" \
        -- "$CTL" roster add nope.yaml --name n3 --cert "$N/n3/node.crt"
    expect_fail 2 "roster add: --name and --cert are required" -- "$CTL" roster add r.yaml --name n3
    expect_fail 2 "usage: cohortctl roster add FILE --name NODE --cert CERT" \
        -- "$CTL" roster add --name n3 --cert "$N/n3/node.crt"
    # Nothing was written and the signature still stands.
    assert_same_file r.yaml before.yaml
    expect_ok ": ok: " -- "$CTL" roster verify r.yaml --ca "$CA/ca.crt"
}

edit_refusals() {
    signed_roster r.yaml
    cp r.yaml before.yaml
    expect_fail 1 "roster remove: no member named 'ghost' in cluster 'testcluster'" \
        -- "$CTL" roster remove r.yaml --name ghost
    expect_fail 1 "roster set-role: unknown role 'foo'; known roles: relay, rendezvous" \
        -- "$CTL" roster set-role r.yaml --name n1 --roles foo
    expect_fail 1 "roster set-role: no member named 'ghost'" \
        -- "$CTL" roster set-role r.yaml --name ghost --roles relay
    expect_fail 1 "roster set-site: site: must be 1\.\.63 characters of A-Z a-z 0-9 \. _ -, got 'bad site'" \
        -- "$CTL" roster set-site r.yaml --name n1 --site "bad site"
    expect_fail 1 "roster set-endpoints: endpoint: must be tcp://HOST:PORT, got 'tcp://h:70000'" \
        -- "$CTL" roster set-endpoints r.yaml --name n1 --endpoint tcp://h:70000
    expect_fail 1 "roster set-endpoints: endpoint: must be tcp://HOST:PORT, got 'http://h:80'" \
        -- "$CTL" roster set-endpoints r.yaml --name n1 --endpoint http://h:80
    expect_fail 1 "roster revoke: 'ghost' is neither a member name nor a SHA-256 fingerprint" \
        -- "$CTL" roster revoke r.yaml --name ghost
    expect_fail 1 "roster revoke: 'abc' is neither a member name nor a SHA-256 fingerprint" \
        -- "$CTL" roster revoke r.yaml --fingerprint abc
    expect_fail 2 "usage: cohortctl roster set-role FILE --name NODE --roles" \
        -- "$CTL" roster set-role r.yaml --name n1
    expect_fail 2 "usage: cohortctl roster set-site FILE --name NODE --site SITE" \
        -- "$CTL" roster set-site r.yaml --name n1
    expect_fail 2 "usage: cohortctl roster remove FILE --name NODE" -- "$CTL" roster remove r.yaml
    expect_fail 2 "usage: cohortctl roster revoke FILE \(--name NODE \| --fingerprint SHA256\)" \
        -- "$CTL" roster revoke r.yaml
    assert_same_file r.yaml before.yaml
    assert_file r.yaml.sig
    # Revoking the same certificate twice.
    "$CTL" roster revoke r.yaml --fingerprint "$(cert_fp "$N/n3/node.crt")" >/dev/null
    cp r.yaml before.yaml
    expect_fail 1 "roster revoke: certificate is already revoked" \
        -- "$CTL" roster revoke r.yaml --fingerprint "sha256:$(cert_fp "$N/n3/node.crt")"
    assert_same_file r.yaml before.yaml
    # And a revoked certificate cannot come back.
    expect_fail 1 "roster add: certificate $(cert_fp "$N/n3/node.crt") is revoked; issue a new one" \
        -- "$CTL" roster add r.yaml --name n3 --cert "$N/n3/node.crt"
}

verify_refuses_tampered_roster() {
    signed_roster r.yaml
    # Flip one byte: the 't' of "cluster: testcluster" becomes 'T'.
    local off
    off=$(grep -bo "^cluster: t" r.yaml | cut -d: -f1)
    printf 'T' | dd of=r.yaml bs=1 seek=$((off + 9)) conv=notrunc status=none
    grep -q "^cluster: Testcluster$" r.yaml || fail "the tampering did not take"
    expect_fail 1 "^error: r\.yaml\.sig: signer $(cert_fp "$CA/ca.crt"): signature does not verify against any of the 1 trusted CA\(s\)$" \
        -- "$CTL" roster verify r.yaml --ca "$CA/ca.crt"
    out_has "^r\.yaml: 1 problem\(s\)$"
    out_lacks ": ok: "
    # An added comment is a change of bytes too.
    signed_roster r2.yaml
    echo "# harmless?" >>r2.yaml
    expect_fail 1 "r2\.yaml\.sig: .*signature does not verify" -- "$CTL" roster verify r2.yaml --ca "$CA/ca.crt"
}

verify_refuses_signature_from_another_ca() {
    signed_roster r.yaml
    sign_with_openssl r.yaml "$OTHER_CA/ca.key" other.sig
    expect_fail 1 "^error: other\.sig: signature does not verify against any of the 1 trusted CA\(s\)$" \
        -- "$CTL" roster verify r.yaml --ca "$CA/ca.crt" --sig other.sig
    out_has "^r\.yaml: 1 problem\(s\)$"
    # A roster the other CA signed with cohortctl: signature and member fail.
    "$CTL" roster init --cluster othercluster o.yaml >/dev/null
    "$CTL" roster add o.yaml --name x1 --cert "$N/x1/node.crt" >/dev/null
    expect_ok "serial 2 signed" -- "$CTL" roster sign o.yaml --ca "$OTHER_CA"
    expect_fail 1 "^error: o\.yaml\.sig: signer $(cert_fp "$OTHER_CA/ca.crt"): signature does not verify" \
        -- "$CTL" roster verify o.yaml --ca "$CA/ca.crt"
    out_has "^error: o\.yaml:[0-9]+:[0-9]+: member 'x1': certificate 'x1' \(issuer 'othercluster'\) does not chain to a trusted CA"
    out_has "^o\.yaml: 2 problem\(s\)$"
}

verify_refuses_missing_or_garbage_signature() {
    base_roster r.yaml
    expect_fail 1 "^error: r\.yaml\.sig: cannot open: No such file or directory$" \
        -- "$CTL" roster verify r.yaml --ca "$CA/ca.crt"
    out_has "^r\.yaml: 1 problem\(s\)$"
    echo "garbage" >r.yaml.sig
    expect_fail 1 "^error: r\.yaml\.sig:1:1: signature file: expected a mapping, got 'garbage'$" \
        -- "$CTL" roster verify r.yaml --ca "$CA/ca.crt"
    printf 'algorithm: ed25519\nsignature: AAAA\n' >short.sig
    expect_fail 1 "^error: short\.sig: signature: expected 88 base64 characters, got 4$" \
        -- "$CTL" roster verify r.yaml --ca "$CA/ca.crt" --sig short.sig
    printf 'algorithm: rsa\nsignature: AAAA\n' >rsa.sig
    expect_fail 1 "^error: rsa\.sig: algorithm: only 'ed25519' is supported, got 'rsa'$" \
        -- "$CTL" roster verify r.yaml --ca "$CA/ca.crt" --sig rsa.sig
    printf 'algorithm: ed25519\n' >nosig.sig
    expect_fail 1 "^error: nosig\.sig:1:1: signature file: required key 'signature' is missing$" \
        -- "$CTL" roster verify r.yaml --ca "$CA/ca.crt" --sig nosig.sig
    printf 'algorithm: ed25519\nsignature: %088d\n' 0 >notb64.sig
    expect_fail 1 "^error: notb64\.sig: signature: not valid base64$" \
        -- "$CTL" roster verify r.yaml --ca "$CA/ca.crt" --sig notb64.sig
    : >empty.sig
    expect_fail 1 "^error: empty\.sig: signature file is empty$" \
        -- "$CTL" roster verify r.yaml --ca "$CA/ca.crt" --sig empty.sig
    head -c 5000 /dev/zero | tr '\0' '#' >huge.sig
    expect_fail 1 "^error: huge\.sig: file is 5000 bytes, larger than the limit of 4096$" \
        -- "$CTL" roster verify r.yaml --ca "$CA/ca.crt" --sig huge.sig
}

verify_reports_duplicate_member() {
    base_roster r.yaml
    dup_member r.yaml n1
    [[ $(grep -c "^- name: n1$" r.yaml) == 2 ]] || fail "dup_member did not duplicate n1"
    local first second
    first=$(grep -n "^- name: n1$" r.yaml | head -1 | cut -d: -f1)
    second=$(grep -n "^- name: n1$" r.yaml | tail -1 | cut -d: -f1)
    expect_fail 1 "roster sign: r\.yaml: not signed: 3 error\(s\)" -- "$CTL" roster sign r.yaml --ca "$CA"
    assert_no_file r.yaml.sig
    expect_fail 1 "^error: r\.yaml:$second:3: member 'n1': duplicate name; member 'n1' at line $first has the same$" \
        -- "$CTL" roster verify r.yaml --ca "$CA/ca.crt"
    out_has "^error: r\.yaml:$second:3: member 'n1': duplicate public key; member 'n1' at line $first has the same$"
    out_has "^error: r\.yaml:$second:3: member 'n1': duplicate certificate; member 'n1' at line $first has the same$"
    out_has "^r\.yaml: 4 problem\(s\)$"
}

verify_reports_unknown_role_with_position() {
    base_roster r.yaml
    sed -i 's/^  roles: \[\]$/  roles: [relay, bogus]/' r.yaml
    local line
    line=$(grep -n "roles: \[relay, bogus\]" r.yaml | cut -d: -f1)
    [[ -n $line ]] || fail "the hand edit did not take"
    expect_fail 1 "^error: r\.yaml:$line:18: members\[1\]\.roles: unknown role 'bogus' \(known roles: relay, rendezvous\)$" \
        -- "$CTL" roster verify r.yaml --ca "$CA/ca.crt"
    expect_fail 1 "roster sign: r\.yaml:$line:18: members\[1\]\.roles: unknown role 'bogus'" \
        -- "$CTL" roster sign r.yaml --ca "$CA"
    expect_fail 1 "roster show: r\.yaml:$line:18: members\[1\]\.roles: unknown role 'bogus'" \
        -- "$CTL" roster show r.yaml
}

member_from_another_ca_is_refused() {
    base_roster r.yaml
    # roster add has no CA to check against; sign does.
    expect_ok "member 'x1' added; serial is now 4" -- "$CTL" roster add r.yaml --name x1 --cert "$N/x1/node.crt"
    local line
    line=$(grep -n "^- name: x1$" r.yaml | cut -d: -f1)
    expect_fail 1 "cohortctl: roster sign: r\.yaml: not signed: 1 error\(s\)" -- "$CTL" roster sign r.yaml --ca "$CA"
    out_has "^error: r\.yaml:$line:3: member 'x1': certificate 'x1' \(issuer 'othercluster'\) does not chain to a trusted CA"
    assert_no_file r.yaml.sig
    # verify: one line per problem (no signature, untrusted member).
    expect_fail 1 "^error: r\.yaml\.sig: cannot open" -- "$CTL" roster verify r.yaml --ca "$CA/ca.crt"
    out_has "^error: r\.yaml:$line:3: member 'x1': certificate 'x1' \(issuer 'othercluster'\) does not chain to a trusted CA: unable to get local issuer certificate$"
    out_has "^r\.yaml: 2 problem\(s\)$"
    assert_eq "problem lines" 2 "$(count_lines "^(error|warning): ")"
}

revoked_member_is_flagged() {
    base_roster r.yaml
    revoke_in_place r.yaml "$N/n2/node.crt"
    local line
    line=$(grep -n "^- name: n2$" r.yaml | cut -d: -f1)
    # A warning, not an error: sign goes ahead (the member is simply not admitted).
    expect_ok "serial 3 signed" -- "$CTL" roster sign r.yaml --ca "$CA"
    out_has "^warning: r\.yaml:$line:3: member 'n2': certificate $(cert_fp "$N/n2/node.crt") is revoked; the member will not be admitted$"
    expect_fail 1 "^warning: r\.yaml:$line:3: member 'n2': certificate $(cert_fp "$N/n2/node.crt") is revoked; the member will not be admitted$" \
        -- "$CTL" roster verify r.yaml --ca "$CA/ca.crt"
    out_has "^r\.yaml: 1 problem\(s\)$"
    expect_ok "^revoked $(cert_fp "$N/n2/node.crt"): lost laptop$" -- "$CTL" roster show r.yaml
}

expired_member_is_flagged() {
    base_roster r.yaml
    expect_ok "member 'old' added; serial is now 4" -- "$CTL" roster add r.yaml --name old --cert "$N/old/node.crt"
    local line
    line=$(grep -n "^- name: old$" r.yaml | cut -d: -f1)
    expect_ok "serial 4 signed" -- "$CTL" roster sign r.yaml --ca "$CA"
    out_has "^warning: r\.yaml:$line:3: member 'old': certificate expired at 2020-02-01T00:00:00Z; the member will not be admitted$"
    expect_fail 1 "^warning: r\.yaml:$line:3: member 'old': certificate expired at 2020-02-01T00:00:00Z; the member will not be admitted$" \
        -- "$CTL" roster verify r.yaml --ca "$CA/ca.crt"
    out_has "^r\.yaml: 1 problem\(s\)$"
    expect_ok "^old +- +none +[0-9a-f]{16}\.\.\. 2020-02-01$" -- "$CTL" roster show r.yaml
}

verify_refuses_lower_or_equal_serial() {
    signed_roster old.yaml
    cp old.yaml new.yaml
    "$CTL" roster set-role new.yaml --name n2 --roles relay >/dev/null
    "$CTL" roster sign new.yaml --ca "$CA" >/dev/null
    assert_eq "serials" "3 4" "$(serial_of old.yaml) $(serial_of new.yaml)"
    expect_fail 1 "^error: old\.yaml: serial 3 is not higher than the held roster's serial 4 \(new\.yaml\); nodes holding it will refuse this roster$" \
        -- "$CTL" roster verify old.yaml --ca "$CA/ca.crt" --held new.yaml
    out_has "^old\.yaml: 1 problem\(s\)$"
    expect_fail 1 "serial 3 is not higher than the held roster's serial 3 \(old\.yaml\)" \
        -- "$CTL" roster verify old.yaml --ca "$CA/ca.crt" --held old.yaml
    expect_fail 1 "^error: missing\.yaml: cannot open: No such file or directory$" \
        -- "$CTL" roster verify new.yaml --ca "$CA/ca.crt" --held missing.yaml
    expect_ok "^new\.yaml: ok: cluster testcluster, serial 4, 2 member\(s\), signature valid$" \
        -- "$CTL" roster verify new.yaml --ca "$CA/ca.crt" --held old.yaml
}

malformed_yaml_is_refused_with_position() {
    base_roster r.yaml
    sed -i 's/^  site: s2$/  site: [s2/' r.yaml
    expect_fail 1 "^error: r\.yaml:[0-9]+:[0-9]+: invalid YAML: did not find expected ',' or ']'" \
        -- "$CTL" roster verify r.yaml --ca "$CA/ca.crt"
    expect_fail 1 "roster show: r\.yaml:[0-9]+:[0-9]+: invalid YAML" -- "$CTL" roster show r.yaml
    expect_fail 1 "roster add: r\.yaml:[0-9]+:[0-9]+: invalid YAML" \
        -- "$CTL" roster add r.yaml --name n3 --cert "$N/n3/node.crt"
    # Other shapes of wrong.
    printf 'cluster: c\nserial: -4\n' >neg.yaml
    expect_fail 1 "roster show: neg\.yaml:2:9: serial: must be a whole number from 1 to 18446744073709551615, got '-4'" \
        -- "$CTL" roster show neg.yaml
    printf 'cluster: c\n' >noserial.yaml
    expect_fail 1 "roster show: noserial\.yaml:1:1: roster: required key 'serial' is missing" \
        -- "$CTL" roster show noserial.yaml
    printf -- '- just\n- a list\n' >list.yaml
    expect_fail 1 "roster show: list\.yaml:1:1: roster: expected a mapping, got a list" \
        -- "$CTL" roster show list.yaml
    printf 'cluster: c\nserial: 1\n---\ncluster: d\nserial: 2\n' >two.yaml
    expect_fail 1 "roster show: two\.yaml:[0-9]+:[0-9]+: only one YAML document is allowed" \
        -- "$CTL" roster show two.yaml
    printf 'cluster: &c c\nserial: 1\nmembers: *c\n' >alias.yaml
    # (The position given is the anchor's, 1:10, not the alias's, 3:10.)
    expect_fail 1 "roster show: alias\.yaml:[0-9]+:[0-9]+: aliases \(\*name\) are not supported" \
        -- "$CTL" roster show alias.yaml
    : >empty.yaml
    expect_fail 1 "roster show: empty\.yaml: roster is empty" -- "$CTL" roster show empty.yaml
}

unknown_key_is_named() {
    base_roster r.yaml
    sed -i 's/^revoked: \[\]$/revoked: []\ncolour: blue/' r.yaml
    local line
    line=$(grep -n "^colour: blue$" r.yaml | cut -d: -f1)
    expect_fail 1 "^error: r\.yaml:$line:1: roster: unknown key 'colour' \(known: cluster, serial, members, revoked, topology\)$" \
        -- "$CTL" roster verify r.yaml --ca "$CA/ca.crt"
    # Inside a member, the member is named by its index.
    base_roster m.yaml
    sed -i '0,/^  site: s1$/s//  site: s1\n  colour: blue/' m.yaml
    line=$(grep -n "^  colour: blue$" m.yaml | cut -d: -f1)
    expect_fail 1 "^error: m\.yaml:$line:3: members\[0\]: unknown key 'colour' \(known: name, certificate, roles, site, endpoints\)$" \
        -- "$CTL" roster verify m.yaml --ca "$CA/ca.crt"
}

topology_with_unknown_member_is_refused() {
    base_roster r.yaml
    sed -i 's/^  sites: \[\]$/  sites:\n  - name: s1\n    relays: [ghost]\n    rendezvous: [n2]\n  - name: s2/' r.yaml
    expect_fail 1 "roster sign: r\.yaml: not signed: 2 error\(s\)" -- "$CTL" roster sign r.yaml --ca "$CA"
    assert_no_file r.yaml.sig
    out_has "^error: r\.yaml: topology site 's1': relay 'ghost' is not a member$"
    out_has "^error: r\.yaml: topology site 's1': member 'n2' is listed as rendezvous but lacks that role$"
    expect_fail 1 "^error: r\.yaml: topology site 's1': relay 'ghost' is not a member$" \
        -- "$CTL" roster verify r.yaml --ca "$CA/ca.crt"
    out_has "^r\.yaml: 3 problem\(s\)$"
    # A site typo, and a policy naming a site nobody has.
    base_roster t.yaml
    sed -i 's/^  sites: \[\]$/  sites:\n  - name: s1\n  - name: s3/; s/^  policies: \[\]$/  policies:\n  - never_relay_between: [s1, mars]/' t.yaml
    expect_fail 1 "^error: t\.yaml:[0-9]+:3: member 'n2': site 's2' is not in topology\.sites$" \
        -- "$CTL" roster verify t.yaml --ca "$CA/ca.crt"
    out_has "^error: t\.yaml: topology\.policies\[0\]: never_relay_between names unknown site 'mars'$"
}

roster_over_16_mib_is_refused() {
    base_roster big.yaml
    head -c $((16 * 1024 * 1024)) /dev/zero | tr '\0' '#' >>big.yaml
    local size
    size=$(stat -c %s big.yaml)
    expect_fail 1 "roster verify: big\.yaml: file is $size bytes, larger than the limit of 16777216" \
        -- "$CTL" roster verify big.yaml --ca "$CA/ca.crt"
    expect_fail 1 "roster sign: big\.yaml: file is $size bytes, larger than the limit of 16777216" \
        -- "$CTL" roster sign big.yaml --ca "$CA"
    expect_fail 1 "roster show: big\.yaml: file is $size bytes, larger than the limit of 16777216" \
        -- "$CTL" roster show big.yaml
    assert_no_file big.yaml.sig
}

roster_that_is_a_directory_is_refused() {
    mkdir r.yaml
    expect_fail 1 "roster verify: r\.yaml: not a regular file" -- "$CTL" roster verify r.yaml --ca "$CA/ca.crt"
    expect_fail 1 "roster sign: r\.yaml: not a regular file" -- "$CTL" roster sign r.yaml --ca "$CA"
    expect_fail 1 "roster show: r\.yaml: not a regular file" -- "$CTL" roster show r.yaml
    expect_fail 1 "roster add: r\.yaml: not a regular file" \
        -- "$CTL" roster add r.yaml --name n1 --cert "$N/n1/node.crt"
    expect_fail 1 "roster init: r\.yaml: already exists; refusing to replace a roster" \
        -- "$CTL" roster init --cluster c r.yaml
}

sign_and_verify_usage_errors() {
    base_roster r.yaml
    expect_fail 2 "usage: cohortctl roster sign FILE --ca CA_DIR" -- "$CTL" roster sign r.yaml
    expect_fail 2 "usage: cohortctl roster verify FILE --ca CA\.crt" -- "$CTL" roster verify r.yaml
    expect_fail 2 "usage: cohortctl roster verify FILE --ca CA\.crt" \
        -- "$CTL" roster verify --ca "$CA/ca.crt"
    expect_fail 1 "roster sign: nowhere/ca\.key: cannot stat: No such file or directory" \
        -- "$CTL" roster sign r.yaml --ca nowhere
    expect_fail 1 "roster verify: $N/n1/node\.crt: not a CA certificate" \
        -- "$CTL" roster verify r.yaml --ca "$N/n1/node.crt"
    assert_no_file r.yaml.sig
}

several_problems_are_all_listed() {
    base_roster r.yaml
    "$CTL" roster add r.yaml --name n3 --cert "$N/n3/node.crt" --site s1 >/dev/null
    "$CTL" roster add r.yaml --name old --cert "$N/old/node.crt" >/dev/null
    "$CTL" roster add r.yaml --name x1 --cert "$N/x1/node.crt" >/dev/null
    revoke_in_place r.yaml "$N/n3/node.crt"
    sed -i 's/^  sites: \[\]$/  sites:\n  - name: s1\n    relays: [ghost]\n  - name: s2/; s/^  policies: \[\]$/  policies:\n  - never_relay_between: [s1, mars]/' r.yaml
    dup_member r.yaml n2
    expect_fail 1 "^r\.yaml: 9 problem\(s\)$" -- "$CTL" roster verify r.yaml --ca "$CA/ca.crt"
    out_has "^error: r\.yaml\.sig: cannot open"
    out_has "^warning: r\.yaml:[0-9]+:3: member 'n3': certificate [0-9a-f]{64} is revoked"
    out_has "^warning: r\.yaml:[0-9]+:3: member 'old': certificate expired at 2020-02-01T00:00:00Z"
    out_has "^error: r\.yaml:[0-9]+:3: member 'x1': certificate 'x1' \(issuer 'othercluster'\) does not chain"
    out_has "^error: r\.yaml:[0-9]+:3: member 'n2': duplicate name"
    out_has "^error: r\.yaml:[0-9]+:3: member 'n2': duplicate public key"
    out_has "^error: r\.yaml:[0-9]+:3: member 'n2': duplicate certificate"
    out_has "^error: r\.yaml: topology site 's1': relay 'ghost' is not a member$"
    out_has "^error: r\.yaml: topology\.policies\[0\]: never_relay_between names unknown site 'mars'$"
    # One line per problem, nothing else on stdout but the summary.
    assert_eq "problem lines" 9 "$(grep -Ec "^(error|warning): " <<<"$OUT")"
    assert_eq "stdout lines" 10 "$(wc -l <<<"$OUT")"
}

# ---- what works ----

init_creates_empty_roster() {
    expect_ok "^r\.yaml: roster for cluster 'c1' created at serial 1$" -- "$CTL" roster init --cluster c1 r.yaml
    assert_eq "serial" 1 "$(serial_of r.yaml)"
    grep -q "^cluster: c1$" r.yaml || fail "r.yaml does not name cluster c1"
    assert_mode r.yaml 644
    expect_ok "^cluster c1, serial 1, 0 member\(s\), 0 revoked$" -- "$CTL" roster show r.yaml
    # An empty roster signs and verifies.
    expect_ok "serial 1 signed" -- "$CTL" roster sign r.yaml --ca "$CA"
    expect_ok "^r\.yaml: ok: cluster c1, serial 1, 0 member\(s\), signature valid$" \
        -- "$CTL" roster verify r.yaml --ca "$CA/ca.crt"
}

every_edit_bumps_serial_by_one() {
    "$CTL" roster init --cluster testcluster r.yaml >/dev/null
    local want=1 fp3
    fp3=$(cert_fp "$N/n3/node.crt")
    step() {
        want=$((want + 1))
        expect_ok "serial is now $want$" -- "$CTL" roster "$@"
        assert_eq "serial in file after '$1'" "$want" "$(serial_of r.yaml)"
    }
    step add r.yaml --name n1 --cert "$N/n1/node.crt" --roles relay --site s1
    step add r.yaml --name n2 --cert "$N/n2/node.crt"
    step add r.yaml --name n3 --cert "$N/n3/node.crt"
    step set-role r.yaml --name n2 --roles relay,rendezvous
    step set-role r.yaml --name n2 --roles none
    step set-site r.yaml --name n2 --site s2
    step set-endpoints r.yaml --name n1 --endpoint tcp://a.example:7000 --endpoint "tcp://[::1]:7001"
    step set-endpoints r.yaml --name n1
    # revoke removes the member and lists the fingerprint: one change, one bump.
    step revoke r.yaml --name n3 --reason "key leaked"
    step remove r.yaml --name n2
    step revoke r.yaml --fingerprint "$(cert_fp "$N/n2/node.crt")"
    expect_ok -- "$CTL" roster show r.yaml
    out_has "^cluster testcluster, serial 12, 1 member\(s\), 2 revoked$"
    out_has "^revoked $fp3 \(n3\): key leaked$"
    out_has "^revoked $(cert_fp "$N/n2/node.crt")$"
    out_lacks "^n2 |^n3 "
}

edit_removes_stale_signature() {
    signed_roster r.yaml
    expect_ok "^r\.yaml: ok: " -- "$CTL" roster verify r.yaml --ca "$CA/ca.crt"
    expect_ok "^r\.yaml: old signature removed; not signed: run \`cohortctl roster sign r\.yaml --ca CA_DIR\`$" \
        -- "$CTL" roster set-site r.yaml --name n2 --site s3
    assert_no_file r.yaml.sig
    expect_fail 1 "^error: r\.yaml\.sig: cannot open" -- "$CTL" roster verify r.yaml --ca "$CA/ca.crt"
    # Without a signature to remove, the message says only that it is unsigned.
    expect_ok "^r\.yaml: not signed: run " -- "$CTL" roster set-site r.yaml --name n2 --site s2
    out_lacks "old signature removed"
    expect_ok "serial 5 signed -> r\.yaml\.sig" -- "$CTL" roster sign r.yaml --ca "$CA"
    expect_ok "^r\.yaml: ok: cluster testcluster, serial 5, 2 member\(s\), signature valid$" \
        -- "$CTL" roster verify r.yaml --ca "$CA/ca.crt"
}

sign_and_verify() {
    base_roster r.yaml
    cp r.yaml before.yaml
    expect_ok "^r\.yaml: serial 3 signed -> r\.yaml\.sig$" -- "$CTL" roster sign r.yaml --ca "$CA"
    # Signing does not touch the roster.
    assert_same_file r.yaml before.yaml
    grep -q "^algorithm: ed25519$" r.yaml.sig || fail "r.yaml.sig lacks 'algorithm: ed25519'"
    grep -q "^signer: $(cert_fp "$CA/ca.crt")$" r.yaml.sig || fail "r.yaml.sig does not name the CA as signer"
    expect_ok "^r\.yaml: ok: cluster testcluster, serial 3, 2 member\(s\), signature valid$" \
        -- "$CTL" roster verify r.yaml --ca "$CA/ca.crt"
    # The signature is a plain Ed25519 signature over the file's exact bytes:
    # openssl checks cohortctl's, and cohortctl checks openssl's.
    sed -n 's/^signature: //p' r.yaml.sig | base64 -d >sig.bin
    openssl pkey -in "$CA/ca.key" -pubout -out ca.pub
    expect_ok "Signature Verified Successfully" \
        -- openssl pkeyutl -verify -rawin -pubin -inkey ca.pub -in r.yaml -sigfile sig.bin
    sign_with_openssl r.yaml "$CA/ca.key" openssl.sig
    expect_ok ": ok: " -- "$CTL" roster verify r.yaml --ca "$CA/ca.crt" --sig openssl.sig
    # --out puts the signature elsewhere; several trusted CAs (rotation).
    expect_ok "signed -> elsewhere\.sig$" -- "$CTL" roster sign r.yaml --ca "$CA" --out elsewhere.sig
    expect_ok ": ok: " -- "$CTL" roster verify r.yaml --ca "$OTHER_CA/ca.crt" --ca "$CA/ca.crt" --sig elsewhere.sig
}

show_lists_members_revocations_topology() {
    base_roster r.yaml
    "$CTL" roster add r.yaml --name n3 --cert "$N/n3/node.crt" --roles relay --site s2 >/dev/null
    "$CTL" roster revoke r.yaml --name n3 --reason "decommissioned" >/dev/null
    sed -i 's/^  sites: \[\]$/  sites:\n  - name: s1\n    relays: [n1]\n    rendezvous: [n1]\n  - name: s2/; s/^  policies: \[\]$/  policies:\n  - never_relay_between: [s1, s2]/' r.yaml
    expect_ok -- "$CTL" roster show r.yaml
    out_has "^cluster testcluster, serial 5, 2 member\(s\), 1 revoked$"
    out_has "^NAME +SITE +ROLES +FINGERPRINT +EXPIRES$"
    out_has "^n1 +s1 +relay,rendezvous +$(cert_fp "$N/n1/node.crt" | cut -c1-16)\.\.\. 20[0-9]{2}-[0-9]{2}-[0-9]{2}$"
    out_has "^ +endpoint tcp://10\.0\.0\.1:7000$"
    out_has "^n2 +s2 +none +$(cert_fp "$N/n2/node.crt" | cut -c1-16)\.\.\. "
    out_has "^revoked $(cert_fp "$N/n3/node.crt") \(n3\): decommissioned$"
    out_has "^site s1: 1 relay\(s\), 1 rendezvous$"
    out_has "^site s2: 0 relay\(s\), 0 rendezvous$"
    out_has "^policy: never relay between s1 and s2$"
    # A hand-written topology survives cohortctl edits, and the result signs.
    expect_ok "serial is now 6" -- "$CTL" roster set-role r.yaml --name n2 --roles rendezvous
    expect_ok -- "$CTL" roster show r.yaml
    out_has "^site s1: 1 relay\(s\), 1 rendezvous$"
    out_has "^policy: never relay between s1 and s2$"
    expect_ok "serial 6 signed" -- "$CTL" roster sign r.yaml --ca "$CA"
    expect_ok ": ok: cluster testcluster, serial 6, 2 member\(s\)" -- "$CTL" roster verify r.yaml --ca "$CA/ca.crt"
}

example_roster_is_valid_but_unsigned() {
    # config/roster.example.yaml documents the format; its CA key was thrown
    # away, so it can only ever lack a signature.
    local ex=$COHORT_SRC/config/roster.example.yaml
    expect_ok "^cluster example, serial 5, 4 member\(s\), 1 revoked$" -- "$CTL" roster show "$ex"
    out_has "^policy: never relay between plant and cloud$"
    expect_fail 1 "^error: $(re "$ex").sig: cannot open: No such file or directory$" \
        -- "$CTL" roster verify "$ex" --ca "$COHORT_SRC/config/roster.example.ca.crt"
    out_has "^$(re "$ex"): 1 problem\(s\)$"
}

run_case init_refusals
run_case add_refusals
run_case edit_refusals
run_case verify_refuses_tampered_roster
run_case verify_refuses_signature_from_another_ca
run_case verify_refuses_missing_or_garbage_signature
run_case verify_reports_duplicate_member
run_case verify_reports_unknown_role_with_position
run_case member_from_another_ca_is_refused
run_case revoked_member_is_flagged
run_case expired_member_is_flagged
run_case verify_refuses_lower_or_equal_serial
run_case malformed_yaml_is_refused_with_position
run_case unknown_key_is_named
run_case topology_with_unknown_member_is_refused
run_case roster_over_16_mib_is_refused
run_case roster_that_is_a_directory_is_refused
run_case sign_and_verify_usage_errors
run_case several_problems_are_all_listed
run_case init_creates_empty_roster
run_case every_edit_bumps_serial_by_one
run_case edit_removes_stale_signature
run_case sign_and_verify
run_case show_lists_members_revocations_topology
run_case example_roster_is_valid_but_unsigned
finish
