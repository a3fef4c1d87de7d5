# shellcheck shell=bash
#
# cluster.sh: an N-node cohort cluster of real cohortd processes on
# 127.0.0.1, for the membership tests and the scale benchmarks. Source it,
# then:
#
#     cl_init 20                 # CA, keys, certificates, signed roster, configs for n01..n20
#     cl_start_all               # every cohortd, in the background
#     cl_wait_converged 60       # until every node sees every member alive
#     ctl n03 members            # cohortctl against one node's API
#     cl_stop n05 KILL           # signal one node (default TERM) and wait for it
#     cl_cleanup                 # (an EXIT trap does it anyway)
#
# Node names are n01..nNN; ports are consecutive from a free base; each
# node's files live in $CL_DIR/NAME (node.yaml, node.key, state/, log).
# Environment: COHORTCTL, COHORTD (default: the build in ./build/ci), CL_DIR
# (default: a fresh temporary directory, removed on exit unless CL_KEEP=1),
# CL_EXTRA_CONFIG (YAML lines appended to every node.yaml).

CL_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
COHORT_SRC=${COHORT_SRC:-$(cd "$CL_LIB_DIR/../.." && pwd)}
COHORTCTL=${COHORTCTL:-$COHORT_SRC/build/ci/cohortctl}
COHORTD=${COHORTD:-$COHORT_SRC/build/ci/cohortd}
CL_NAMES=()
declare -A CL_PORT CL_PID

cl_die() {
    echo "cluster.sh: $*" >&2
    exit 1
}

# cl_name I: the name of node I (1-based).
cl_name() {
    printf 'n%02d' "$1"
}

# A base port with COUNT free ports after it.
_cl_base_port() {
    local count=$1 base p used
    used=$(ss -Htan | awk '{ n = split($4, a, ":"); print a[n] }' | sort -u)
    for _ in $(seq 1 50); do
        base=$((20000 + (RANDOM % 800) * 50))
        for ((p = base; p < base + count; p++)); do
            grep -qx "$p" <<<"$used" && continue 2
        done
        echo "$base"
        return 0
    done
    cl_die "no $count free consecutive ports"
}

# cl_init N: the cluster's files. Every node advertises its endpoint in the
# roster unless CL_NO_ENDPOINTS names it (space-separated names).
cl_init() {
    local n=$1 i name base
    [[ -x $COHORTCTL && -x $COHORTD ]] || cl_die "build first: $COHORTCTL, $COHORTD"
    if [[ -z ${CL_DIR:-} ]]; then
        CL_DIR=$(mktemp -d "${TMPDIR:-/tmp}/cohort-cluster.XXXXXX")
        CL_OWN_DIR=1
    fi
    [[ ${CL_NO_TRAP:-0} == 1 ]] || trap cl_cleanup EXIT
    "$COHORTCTL" ca init --name benchcluster --out "$CL_DIR/ca" >/dev/null
    "$COHORTCTL" roster init --cluster benchcluster "$CL_DIR/roster.yaml" >/dev/null
    base=$(_cl_base_port "$n")
    for ((i = 1; i <= n; i++)); do
        name=$(cl_name "$i")
        CL_NAMES+=("$name")
        CL_PORT[$name]=$((base + i - 1))
        "$COHORTCTL" cert issue --ca "$CL_DIR/ca" --name "$name" --out "$CL_DIR/$name" >/dev/null
        mkdir -p "$CL_DIR/$name/state"
        local ep=(--endpoint "tcp://127.0.0.1:${CL_PORT[$name]}")
        [[ " ${CL_NO_ENDPOINTS:-} " == *" $name "* ]] && ep=()
        "$COHORTCTL" roster add "$CL_DIR/roster.yaml" --name "$name" \
            --cert "$CL_DIR/$name/node.crt" --site "site$(((i - 1) % 3 + 1))" "${ep[@]}" >/dev/null
        cat >"$CL_DIR/$name/node.yaml" <<YAML
node:
  name: $name
  state_dir: state
identity:
  key: node.key
  cert: node.crt
trust:
  ca: ../ca/ca.crt
  roster: ../roster.yaml
listen:
  address: 127.0.0.1
  port: ${CL_PORT[$name]}
  punch_port: 0
  advertise: [tcp://127.0.0.1:${CL_PORT[$name]}]
${CL_EXTRA_CONFIG:-}
YAML
    done
    "$COHORTCTL" roster sign "$CL_DIR/roster.yaml" --ca "$CL_DIR/ca" >/dev/null
}

# cl_start NAME: starts NAME's cohortd (log in $CL_DIR/NAME/log). A watcher
# subshell waits for it and writes its exit code to $CL_DIR/NAME/exit, so
# any subshell can stop it and see it gone (no zombie left to fool kill -0).
cl_start() {
    local name=$1 d=$CL_DIR/$1
    rm -f "$d/pid" "$d/exit"
    (
        "$COHORTD" -c "$d/node.yaml" >>"$d/log" 2>&1 &
        echo $! >"$d/pid.tmp" && mv "$d/pid.tmp" "$d/pid"
        rc=0
        wait $! 2>/dev/null || rc=$?
        echo "$rc" >"$d/exit"
    ) &
    until [[ -s $d/pid ]]; do sleep 0.01; done
    CL_PID[$name]=$(<"$d/pid")
}

cl_start_all() {
    local name
    for name in "${CL_NAMES[@]}"; do cl_start "$name"; done
}

# cl_running NAME: NAME's cohortd was started and has not exited.
cl_running() {
    [[ -s $CL_DIR/$1/pid && ! -e $CL_DIR/$1/exit ]]
}

# cl_pid NAME: the pid of NAME's cohortd.
cl_pid() {
    cat "$CL_DIR/$1/pid"
}

# cl_stop NAME [SIGNAL]: signals NAME (default TERM), waits up to 10 s for
# it to exit (then kills it). Prints nothing; the exit code is in
# $CL_DIR/NAME/exit.
cl_stop() {
    local name=$1 sig=${2:-TERM}
    cl_running "$name" || return 0
    kill "-$sig" "$(cl_pid "$name")" 2>/dev/null || true
    for _ in $(seq 1 200); do
        [[ -e $CL_DIR/$name/exit ]] && return 0
        sleep 0.05
    done
    kill -KILL "$(cl_pid "$name")" 2>/dev/null || true
    for _ in $(seq 1 40); do
        [[ -e $CL_DIR/$name/exit ]] && return 0
        sleep 0.05
    done
}

cl_cleanup() {
    local name
    for name in "${CL_NAMES[@]}"; do
        cl_running "$name" && kill -TERM "$(cl_pid "$name")" 2>/dev/null
    done
    sleep 0.5
    for name in "${CL_NAMES[@]}"; do
        cl_running "$name" && kill -KILL "$(cl_pid "$name")" 2>/dev/null
    done
    wait 2>/dev/null
    if [[ ${CL_OWN_DIR:-0} == 1 ]]; then
        if [[ ${CL_KEEP:-0} == 1 ]]; then echo "kept $CL_DIR" >&2; else rm -rf "$CL_DIR"; fi
    fi
    return 0
}

# ctl NAME ARGS...: cohortctl against NAME's local API.
ctl() {
    local name=$1
    shift
    "$COHORTCTL" "$@" --api "ipc://$CL_DIR/$name/state/api.sock"
}

# cl_member_states NAME: "member state" lines from NAME's membership view.
cl_member_states() {
    ctl "$1" members --json 2>/dev/null |
        grep -o '"name":"[^"]*","state":"[^"]*"' | sed 's/"name":"\([^"]*\)","state":"\([^"]*\)"/\1 \2/'
}

# cl_count_state NAME STATE: how many members NAME sees in STATE.
cl_count_state() {
    cl_member_states "$1" | awk -v s="$2" '$2 == s { n++ } END { print n + 0 }'
}

# cl_sees NAME MEMBER STATE: NAME's view has MEMBER in STATE.
cl_sees() {
    cl_member_states "$1" | grep -qx "$2 $3"
}

# cl_all_see MEMBER STATE [EXCEPT]: every running node (but EXCEPT) sees it.
cl_all_see() {
    local name
    for name in "${CL_NAMES[@]}"; do
        [[ $name == "${3:-}" ]] && continue
        cl_running "$name" || continue
        cl_sees "$name" "$1" "$2" || return 1
    done
}

# cl_converged: every running node sees every running node alive.
cl_converged() {
    local name want=0
    for name in "${CL_NAMES[@]}"; do cl_running "$name" && want=$((want + 1)); done
    for name in "${CL_NAMES[@]}"; do
        cl_running "$name" || continue
        (($(cl_count_state "$name" alive) >= want)) || return 1
    done
}

# cl_wait SECONDS CMD...: until CMD succeeds; sets CL_WAITED (seconds, 0.1
# resolution). Returns 1 at the limit.
cl_wait() {
    local limit=$1 t0
    shift
    t0=$(date +%s%N)
    until "$@"; do
        if (($(date +%s%N) - t0 > limit * 1000000000)); then
            CL_WAITED=$(_cl_secs $(($(date +%s%N) - t0)))
            return 1
        fi
        sleep 0.1
    done
    CL_WAITED=$(_cl_secs $(($(date +%s%N) - t0)))
}

_cl_secs() {
    awk -v ns="$1" 'BEGIN { printf "%.1f", ns / 1e9 }'
}
