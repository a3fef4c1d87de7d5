# shellcheck shell=bash
#
# lib.sh: what the CLI tests share. Source it from a test_*.sh script that
# runs with `set -euo pipefail`, define each case as a function, then:
#
#     run_case name_of_function     # one line per case, refusals first
#     ...
#     finish                        # prints "N passed, M failed"; exit 1 if M > 0
#
# Each case runs in its own subshell with `set -e` in force, inside a fresh
# empty directory ($PWD) under one throwaway root ($CLI_TMP) that is removed
# on exit. A failed assertion prints what was run, what was expected and what
# came out, then fails the case; the other cases still run.
#
# Environment (ctest sets these; the defaults suit a build in ./build):
#   COHORTCTL, COHORTD  the programs under test
#   COHORT_SRC          the source tree
#   CLI_ONLY            optional grep -E pattern: run only matching cases
#   CLI_KEEP=1          keep the throwaway directory for a post-mortem

CLI_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
COHORT_SRC=${COHORT_SRC:-$(cd "$CLI_LIB_DIR/../.." && pwd)}
COHORTCTL=${COHORTCTL:-$COHORT_SRC/build/ci/cohortctl}
COHORTD=${COHORTD:-$COHORT_SRC/build/ci/cohortd}
export COHORTCTL COHORTD COHORT_SRC

CLI_TMP=$(mktemp -d "${TMPDIR:-/tmp}/cohort-cli.XXXXXX")
if [[ ${CLI_KEEP:-0} == 1 ]]; then
    trap 'echo "kept $CLI_TMP"' EXIT
else
    trap 'rm -rf "$CLI_TMP"' EXIT
fi

CLI_PASSED=0
CLI_FAILED=0
CLI_FAILED_NAMES=()
CLI_CASE=""

# Output of the last `run`: exit code, stdout, stderr, and both together.
RC=0
OUT=""
ERR=""
ALL=""

# ---- running commands ----

# run CMD...: runs CMD with stdin from /dev/null and records RC, OUT, ERR and
# ALL (stdout then stderr). Never fails by itself.
run() {
    local o="$CLI_TMP/.run.out.$BASHPID" e="$CLI_TMP/.run.err.$BASHPID"
    RC=0
    "$@" </dev/null >"$o" 2>"$e" || RC=$?
    OUT=$(cat "$o")
    ERR=$(cat "$e")
    ALL=$(cat "$o" "$e")
    rm -f "$o" "$e"
}

# fail MESSAGE...: reports a failed assertion of the current case.
fail() {
    {
        echo "FAIL: $CLI_CASE: $*"
        if [[ -n ${CLI_LAST_CMD:-} ]]; then
            echo "  command: $CLI_LAST_CMD"
            echo "  exit code: $RC"
            echo "  stdout:"
            printf '%s\n' "$OUT" | sed 's/^/    | /'
            echo "  stderr:"
            printf '%s\n' "$ERR" | sed 's/^/    | /'
        fi
    } >&2
    return 1
}

# Quoted rendering of a command line, for messages.
_cmdline() {
    local s="" a
    for a in "$@"; do
        s+="${s:+ }$(printf '%q' "$a")"
    done
    printf '%s' "$s"
}

# expect_fail CODE PATTERN -- CMD...: CMD must exit with exactly CODE and its
# stdout+stderr must match the grep -E PATTERN.
expect_fail() {
    local code=$1 pattern=$2
    [[ $3 == -- ]] || { echo "expect_fail: usage: CODE PATTERN -- CMD..." >&2; return 1; }
    shift 3
    CLI_LAST_CMD=$(_cmdline "$@")
    run "$@"
    [[ $RC == "$code" ]] || fail "expected exit code $code, got $RC"
    grep -Eq -- "$pattern" <<<"$ALL" || fail "output does not match /$pattern/"
}

# expect_ok [PATTERN] -- CMD...: CMD must exit 0 and, when PATTERN is given,
# its stdout+stderr must match it.
expect_ok() {
    local pattern=""
    if [[ $1 != -- ]]; then
        pattern=$1
        shift
    fi
    [[ $1 == -- ]] || { echo "expect_ok: usage: [PATTERN] -- CMD..." >&2; return 1; }
    shift
    CLI_LAST_CMD=$(_cmdline "$@")
    run "$@"
    [[ $RC == 0 ]] || fail "expected success, got exit code $RC"
    [[ -z $pattern ]] || grep -Eq -- "$pattern" <<<"$ALL" || fail "output does not match /$pattern/"
}

# ---- assertions on the last output and on files ----

# out_has PATTERN: stdout+stderr of the last run matches grep -E PATTERN.
out_has() {
    grep -Eq -- "$1" <<<"$ALL" || fail "output does not match /$1/"
}

# out_lacks PATTERN: stdout+stderr of the last run does not match PATTERN.
out_lacks() {
    ! grep -Eq -- "$1" <<<"$ALL" || fail "output unexpectedly matches /$1/"
}

# count_lines PATTERN: how many lines of the last output match PATTERN.
count_lines() {
    grep -Ec -- "$1" <<<"$ALL" || true
}

# assert_eq WHAT EXPECTED ACTUAL
assert_eq() {
    [[ $2 == "$3" ]] || CLI_LAST_CMD="" fail "$1: expected '$2', got '$3'"
}

# assert_mode FILE MODE: FILE's permission bits are exactly MODE (e.g. 600).
assert_mode() {
    local m
    m=$(stat -c %a "$1") || CLI_LAST_CMD="" fail "$1: cannot stat"
    [[ $m == "$2" ]] || CLI_LAST_CMD="" fail "$1: expected mode $2, got $m"
}

assert_file() {
    [[ -f $1 ]] || CLI_LAST_CMD="" fail "$1: expected a file, found none"
}

assert_no_file() {
    [[ ! -e $1 ]] || CLI_LAST_CMD="" fail "$1: expected no such file, but it exists"
}

# assert_same_file A B: A and B hold the same bytes.
assert_same_file() {
    cmp -s "$1" "$2" || CLI_LAST_CMD="" fail "$1 and $2 differ"
}

# re PATH: PATH with grep -E metacharacters escaped, for use in patterns.
re() {
    printf '%s\n' "$1" | sed 's/[][\\.*^$+?(){}|]/\\&/g'
}

# ---- cases ----

# run_case FUNCTION: runs one case in a subshell in a fresh directory.
run_case() {
    local name=$1 rc=0
    if [[ -n ${CLI_ONLY:-} ]] && ! grep -Eq -- "$CLI_ONLY" <<<"$name"; then
        return 0
    fi
    mkdir -p "$CLI_TMP/$name"
    set +e
    (
        set -euo pipefail
        CLI_CASE=$name
        CLI_LAST_CMD=""
        cd "$CLI_TMP/$name"
        "$name"
    )
    rc=$?
    set -e
    if [[ $rc == 0 ]]; then
        CLI_PASSED=$((CLI_PASSED + 1))
        echo "ok   $name"
    else
        CLI_FAILED=$((CLI_FAILED + 1))
        CLI_FAILED_NAMES+=("$name")
        echo "FAIL $name"
    fi
}

# finish: prints the summary line and exits 1 if any case failed.
finish() {
    if ((CLI_FAILED)); then
        echo "failed: ${CLI_FAILED_NAMES[*]}"
    fi
    echo "$CLI_PASSED passed, $CLI_FAILED failed"
    ((CLI_FAILED == 0))
}

# require_programs PROG...: the programs under test must exist.
require_programs() {
    local p
    for p in "$@"; do
        if [[ ! -x $p ]]; then
            echo "FAIL: $p: not built (set COHORTCTL / COHORTD or build first)" >&2
            exit 1
        fi
    done
}

# ---- fixtures ----

# sha256 of a certificate's DER, as openssl computes it.
cert_fp() {
    openssl x509 -in "$1" -outform DER | sha256sum | cut -d' ' -f1
}

# new_ca DIR [NAME]: a cluster CA in DIR (quietly).
new_ca() {
    "$COHORTCTL" ca init --name "${2:-testcluster}" --out "$1" >/dev/null
}

# new_node CA_DIR NAME DIR [DAYS]: key pair and certificate for NAME in DIR.
new_node() {
    "$COHORTCTL" cert issue --ca "$1" --name "$2" --out "$3" --days "${4:-365}" >/dev/null
}

# make_cert CA_DIR NAME PUB NOT_BEFORE NOT_AFTER OUT
#
# A node certificate (X25519 key from PUB, CN=NAME) signed by the CA in CA_DIR
# with any validity window, built with the openssl CLI alone. cohortctl only
# issues certificates valid from now for >= 1 day, and OpenSSL 3.0's CLI
# cannot both set dates and sign a key that cannot sign its own request:
# `openssl ca` has -startdate/-enddate but no -force_pubkey and needs a
# self-signed CSR (X25519 cannot sign one); `openssl x509 -force_pubkey`
# replaces the key before its self-signature check, so -preserve_dates on a
# re-signed certificate fails; there is no -not_before/-not_after before 3.4.
# So the TBSCertificate is written with `openssl asn1parse -genconf`, signed
# with `openssl pkeyutl -sign -rawin` (Ed25519 signs the raw bytes), and the
# Certificate is encoded the same way around the same TBS sections (DER is
# deterministic, so the signed bytes are the encoded bytes).
# NOT_BEFORE / NOT_AFTER: UTCTime, YYMMDDHHMMSSZ.
make_cert() {
    local ca=$1 name=$2 pub=$3 nb=$4 na=$5 out=$6 w cn pubhex
    w=$(mktemp -d "$CLI_TMP/.mkcert.XXXXXX")
    cn=$(openssl x509 -in "$ca/ca.crt" -noout -subject -nameopt RFC2253)
    cn=${cn#subject=CN=}
    pubhex=$(openssl pkey -pubin -in "$pub" -outform DER | tail -c 32 | od -An -v -tx1 | tr -d ' \n')
    cat >"$w/tbs.cnf" <<EOF
asn1 = SEQUENCE:tbs
[tbs]
version = EXPLICIT:0,INTEGER:2
serial = INTEGER:0x$(openssl rand -hex 12)
sigalg = SEQUENCE:sigalg
issuer = SEQUENCE:issuer
validity = SEQUENCE:validity
subject = SEQUENCE:subject
spki = SEQUENCE:spki
exts = EXPLICIT:3,SEQUENCE:exts
[sigalg]
oid = OID:1.3.101.112
[issuer]
rdn = SET:issuer_rdn
[issuer_rdn]
cn = SEQUENCE:issuer_cn
[issuer_cn]
oid = OID:commonName
value = UTF8String:$cn
[subject]
rdn = SET:subject_rdn
[subject_rdn]
cn = SEQUENCE:subject_cn
[subject_cn]
oid = OID:commonName
value = UTF8String:$name
[validity]
nb = UTCTIME:$nb
na = UTCTIME:$na
[spki]
alg = SEQUENCE:x25519
key = FORMAT:HEX,BITSTRING:$pubhex
[x25519]
oid = OID:1.3.101.110
[exts]
bc = SEQUENCE:ext_bc
ku = SEQUENCE:ext_ku
[ext_bc]
oid = OID:basicConstraints
critical = BOOLEAN:TRUE
value = OCTWRAP,SEQUENCE:bc
[bc]
[ext_ku]
oid = OID:keyUsage
critical = BOOLEAN:TRUE
value = OCTWRAP,FORMAT:BITLIST,BITSTRING:4
EOF
    openssl asn1parse -genconf "$w/tbs.cnf" -out "$w/tbs.der" -noout >/dev/null
    openssl pkeyutl -sign -rawin -inkey "$ca/ca.key" -in "$w/tbs.der" -out "$w/sig.bin"
    {
        echo "asn1 = SEQUENCE:cert"
        tail -n +2 "$w/tbs.cnf"
        echo "[cert]"
        echo "tbs = SEQUENCE:tbs"
        echo "alg = SEQUENCE:sigalg"
        echo "sig = FORMAT:HEX,BITSTRING:$(od -An -v -tx1 "$w/sig.bin" | tr -d ' \n')"
    } >"$w/cert.cnf"
    openssl asn1parse -genconf "$w/cert.cnf" -out "$w/cert.der" -noout >/dev/null
    openssl x509 -inform DER -in "$w/cert.der" -out "$out"
    rm -rf "$w"
}

# make_expired_cert CA_DIR NAME PUB OUT: valid only in January 2020.
make_expired_cert() {
    make_cert "$1" "$2" "$3" 200101000000Z 200201000000Z "$4"
}
