# shellcheck shell=bash
#
# nodes.sh: a throwaway cluster of real cohortd processes on 127.0.0.1 for
# the CLI tests. Source it after lib.sh, set NAMES (and, optionally,
# SITE[NAME], NODE_DAYS for certificate validity, and a function
# node_extra_yaml NAME printing extra sections of NAME's node.yaml), then:
#
#     nodes_make              # CA, certificates, a signed roster, node.yaml each
#     nodes_start_all         # every cohortd (start_node NAME for one)
#     nodes_wait_up || exit 1 # every node sees every other up
#
# Each node has PORT[NAME], DIR[NAME] (node.yaml, keys, state/, log, pid,
# exit) and API[NAME]; its pid is in PID[NAME] and DIR/pid (a case that
# restarts a node updates only the file, which is what cleanup reads).

declare -A PORT DIR PID API SITE # SITE: set by the test, or left empty
USED_PORTS=" "
CL=$CLI_TMP/cluster

# Every daemon goes when the test does, however it ends.
nodes_cleanup() {
    local n end=$((SECONDS + 4))
    for n in "${NAMES[@]}"; do
        if [[ -s ${DIR[$n]:-/nonexistent}/pid ]]; then PID[$n]=$(cat "${DIR[$n]}/pid"); fi
        if [[ -n ${PID[$n]:-} ]]; then kill -TERM "${PID[$n]}" 2>/dev/null || true; fi
    done
    for n in "${NAMES[@]}"; do
        while [[ -n ${PID[$n]:-} ]] && kill -0 "${PID[$n]}" 2>/dev/null && ((SECONDS < end)); do
            sleep 0.05
        done
        if [[ -n ${PID[$n]:-} ]]; then kill -KILL "${PID[$n]}" 2>/dev/null || true; fi
    done
    wait 2>/dev/null || true
    free_ports_release
    if [[ ${CLI_KEEP:-0} == 1 ]]; then echo "kept $CLI_TMP"; else rm -rf "$CLI_TMP"; fi
}
trap nodes_cleanup EXIT

# free_port VAR: a TCP port nothing on this machine uses, not handed out yet
# to this test nor to another one running beside it (ctest -j). The port is
# below the kernel's ephemeral range, so no outgoing connection and no
# bind to port 0 (the unit tests' clusters) can take it before cohortd
# listens on it; tests share the rest through a lock directory per port
# (mkdir is atomic), whose owner's pid says when it is stale.
PORT_LOCKS=${TMPDIR:-/tmp}/cohort-test-ports
free_port() {
    local p owner low=32768
    read -r low _ </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || low=32768
    ((low > 21000)) || low=32768
    mkdir -p "$PORT_LOCKS"
    while :; do
        p=$((20000 + RANDOM % (low - 20000)))
        [[ $USED_PORTS == *" $p "* ]] && continue
        if ! mkdir "$PORT_LOCKS/$p" 2>/dev/null; then
            owner=$(cat "$PORT_LOCKS/$p/pid" 2>/dev/null || true)
            # no pid yet: its owner is between mkdir and echo; leave it
            [[ -n $owner ]] && ! kill -0 "$owner" 2>/dev/null && rm -rf "${PORT_LOCKS:?}/$p"
            continue
        fi
        echo $$ >"$PORT_LOCKS/$p/pid"
        USED_PORTS+="$p "
        if ss -Htan | awk '{print $4}' | grep -Eq "[:.]$p\$"; then
            continue # in use outside the tests: keep the lock, pick again
        fi
        printf -v "$1" '%s' "$p"
        return 0
    done
}

# The locks of this test's ports go with it.
free_ports_release() {
    local p
    for p in $USED_PORTS; do
        [[ $(cat "$PORT_LOCKS/$p/pid" 2>/dev/null) == "$$" ]] && rm -rf "${PORT_LOCKS:?}/$p"
    done
    return 0
}

# wait_for FILE PATTERN [SECONDS]: until FILE has a line matching PATTERN.
wait_for() {
    local file=$1 pattern=$2 end=$((SECONDS + ${3:-10}))
    until grep -Eq -- "$pattern" "$file" 2>/dev/null; do
        if ((SECONDS >= end)); then
            CLI_LAST_CMD="" fail "$file: no line matching /$pattern/ within ${3:-10} s:
$(tail -20 "$file" 2>/dev/null)"
            return 1
        fi
        sleep 0.05
    done
}

ctl() { # ctl NODE ARGS...: cohortctl against NODE's API
    local n=$1
    shift
    "$COHORTCTL" "$@" --api "${API[$n]}"
}

nodes_make() {
    local n
    local -a site
    new_ca "$CL/ca" testcluster
    cp "$CL/ca/ca.crt" "$CL/ca.crt"
    "$COHORTCTL" roster init --cluster testcluster "$CL/roster.yaml" >/dev/null
    for n in "${NAMES[@]}"; do
        free_port "PORT[$n]"
        DIR[$n]=$CL/$n
        API[$n]=ipc://${DIR[$n]}/state/api.sock
        new_node "$CL/ca" "$n" "${DIR[$n]}" "${NODE_DAYS:-365}"
        mkdir "${DIR[$n]}/state"
        site=()
        [[ -n ${SITE[$n]:-} ]] && site=(--site "${SITE[$n]}")
        "$COHORTCTL" roster add "$CL/roster.yaml" --name "$n" --cert "${DIR[$n]}/node.crt" \
            "${site[@]}" --endpoint "tcp://127.0.0.1:${PORT[$n]}" >/dev/null
        cat >"${DIR[$n]}/node.yaml" <<YAML
node:
  name: $n
  state_dir: state
identity:
  key: node.key
  cert: node.crt
trust:
  ca: ../ca.crt
  roster: ../roster.yaml
listen:
  address: 127.0.0.1
  port: ${PORT[$n]}
  punch_port: 0
YAML
        if declare -F node_extra_yaml >/dev/null; then
            node_extra_yaml "$n" >>"${DIR[$n]}/node.yaml"
        fi
    done
    "$COHORTCTL" roster sign "$CL/roster.yaml" --ca "$CL/ca" >/dev/null
}

# start_node NAME: cohortd in the background; its pid lands in PID[NAME] and
# DIR/pid and, when it ends, its exit code in DIR/exit (cases run in
# subshells, which cannot `wait` for it).
start_node() {
    local n=$1
    rm -f "${DIR[$n]}/pid" "${DIR[$n]}/exit"
    (
        "$COHORTD" -c "${DIR[$n]}/node.yaml" 2>>"${DIR[$n]}/log" &
        echo $! >"${DIR[$n]}/pid"
        rc=0
        wait $! || rc=$?
        echo "$rc" >"${DIR[$n]}/exit"
    ) &
    until [[ -s ${DIR[$n]}/pid ]]; do sleep 0.01; done
    PID[$n]=$(cat "${DIR[$n]}/pid")
}

nodes_start_all() {
    local n
    for n in "${NAMES[@]}"; do start_node "$n"; done
}

# nodes_wait_up: up to 15 s for every node to show every other one up (and
# pass node_ready NAME, when the test defines it); otherwise prints their
# logs and fails.
nodes_wait_up() {
    local n up ready=0 want=$((${#NAMES[@]} - 1))
    for _ in $(seq 1 150); do
        ready=1
        for n in "${NAMES[@]}"; do
            up=$(ctl "$n" peers --json 2>/dev/null | grep -o '"state":"up"' | wc -l || true)
            [[ $up == "$want" ]] || ready=0
            if declare -F node_ready >/dev/null && ! node_ready "$n"; then ready=0; fi
        done
        ((ready)) && return 0
        sleep 0.1
    done
    for n in "${NAMES[@]}"; do echo "== $n log" >&2 && cat "${DIR[$n]}/log" >&2; done
    echo "FAIL: the cluster never came up" >&2
    return 1
}
