# shellcheck shell=bash
#
# cohort.sh: cohort clusters in the NAT lab. Sourced by scenario scripts
# after lab.sh and lab_enter:
#
#     lab_cluster_init                       # throwaway CA and empty roster
#     lab_member p --endpoint tcp://203.0.113.10:7700 --roles relay
#     lab_member a                           # no advertised endpoint
#     lab_roster_sign
#     lab_node_config p 203.0.113.10 advertise=tcp://203.0.113.10:7700
#     lab_node_config a 10.1.0.2
#     lab_node_start p pub                   # cohortd -c in namespace "pub"
#     ctl p peers                            # cohortctl against p's local API
#
# Each node lives in $LAB_DIR/nodes/NAME: node.key, node.crt, ca.crt, the
# roster and its signature, node.yaml, state/ (which holds the API socket);
# its log is $LAB_DIR/log/NAME.log.

LAB_CA=""
LAB_NODE_NS=()   # "NAME NS" for every started node

# lab_cluster_init [CLUSTER]: a throwaway CA and an empty roster.
lab_cluster_init() {
    local cluster=${1:-labcluster}
    LAB_CA=$LAB_DIR/ca
    "$COHORTCTL" ca init --name "$cluster" --out "$LAB_CA" >/dev/null
    "$COHORTCTL" roster init --cluster "$cluster" "$LAB_DIR/roster.yaml" >/dev/null
    mkdir -p "$LAB_DIR/nodes"
}

# lab_member NAME [roster add options...]: a key pair and certificate for
# NAME, admitted to the roster (e.g. --endpoint E, --roles R, --site S).
lab_member() {
    local name=$1
    shift
    "$COHORTCTL" cert issue --ca "$LAB_CA" --name "$name" --out "$LAB_DIR/nodes/$name" >/dev/null
    "$COHORTCTL" roster add "$LAB_DIR/roster.yaml" --name "$name" \
        --cert "$LAB_DIR/nodes/$name/node.crt" --site "${LAB_SITE:-lab}" "$@" >/dev/null
}

# lab_roster_sign: signs the roster and gives every member a copy.
lab_roster_sign() {
    "$COHORTCTL" roster sign "$LAB_DIR/roster.yaml" --ca "$LAB_CA" >/dev/null
    local d
    for d in "$LAB_DIR"/nodes/*/; do
        cp "$LAB_DIR/roster.yaml" "$LAB_DIR/roster.yaml.sig" "$LAB_CA/ca.crt" "$d"
    done
}

# lab_node_config NAME LISTEN_IP [advertise=E,...] [SECTION.KEY=VALUE...]:
# writes NAME's node.yaml: listening on LISTEN_IP port 7700 (punch port
# 7701), the API on ipc in its state directory, debug logs. Extra
# SECTION.KEY=VALUE items are added as they are.
lab_node_config() {
    local name=$1 ip=$2 dir=$LAB_DIR/nodes/$1 adv="[]" kv
    shift 2
    local -A extra=()
    local order=()
    for kv in "$@"; do
        if [[ $kv == advertise=* ]]; then
            adv="[${kv#advertise=}]"
        else
            extra[${kv%%=*}]=${kv#*=}
            order+=("${kv%%=*}")
        fi
    done
    mkdir -p "$dir/state"
    {
        printf 'node:\n  name: %s\n  state_dir: state\n' "$name"
        printf 'identity:\n  key: node.key\n  cert: node.crt\n'
        printf 'trust:\n  ca: ca.crt\n  roster: roster.yaml\n'
        printf 'listen:\n  address: "%s"\n  port: 7700\n  punch_port: 7701\n  advertise: %s\n' \
            "$ip" "$adv"
        printf 'log:\n  level: debug\n'
        local section="" k
        for k in "${order[@]}"; do
            if [[ ${k%%.*} != "$section" ]]; then
                section=${k%%.*}
                printf '%s:\n' "$section"
            fi
            printf '  %s: %s\n' "${k#*.}" "${extra[$k]}"
        done
    } >"$dir/node.yaml"
    "$COHORTD" --check-config -c "$dir/node.yaml" >/dev/null 2>"$LAB_DIR/log/$name.check" || {
        cat "$LAB_DIR/log/$name.check" >&2
        lab_die "node.yaml of $name does not load"
    }
}

# lab_node_start NAME NS: starts cohortd for NAME in namespace NS and waits
# (up to 10 s) until its local API answers. Sets LAB_PID.
lab_node_start() {
    local name=$1 ns=$2
    lab_spawn "$ns" "$name" "$COHORTD" -c "$LAB_DIR/nodes/$name/node.yaml"
    LAB_NODE_NS+=("$name $ns")
    local pid=$LAB_PID
    if ! lab_wait_for 10 ctl "$name" status; then
        kill -0 "$pid" 2>/dev/null || lab_node_logs "$name" >&2
        lab_die "cohortd $name: the local API did not answer within 10 s"
    fi
    LAB_PID=$pid
}

# lab_node_ns NAME: the namespace node NAME runs in.
lab_node_ns() {
    local e
    for e in "${LAB_NODE_NS[@]}"; do
        [[ ${e%% *} == "$1" ]] && { echo "${e#* }"; return 0; }
    done
    lab_die "no started node named '$1'"
}

# ctl NAME ARGS...: cohortctl ARGS against NAME's local API, run in NAME's
# namespace, bounded to 20 s.
ctl() {
    local name=$1 ns
    shift
    ns=$(lab_node_ns "$name")
    ip netns exec "$ns" timeout 20 "$COHORTCTL" "$@" -c "$LAB_DIR/nodes/$name/node.yaml"
}

# lab_node_logs NAME: the tail of NAME's log, for failure reports.
lab_node_logs() {
    echo "---- last 60 lines of $1's log ($LAB_DIR/log/$1.log)"
    tail -n 60 "$LAB_DIR/log/$1.log" 2>/dev/null | sed 's/^/  | /'
}
