# shellcheck shell=bash
#
# cohort.sh: cohort clusters in the NAT lab. Sourced by scenario scripts
# after lab.sh and lab_enter:
#
#     lab_cluster_init                       # throwaway CA and empty roster
#     lab_member p --endpoint tcp://203.0.113.10:7700 --roles relay
#     lab_member a                           # no advertised endpoint
#     lab_roster_sign
#     lab_node_config p 203.0.113.10 "listen.advertise=[tcp://203.0.113.10:7700]"
#     lab_node_config a 10.1.0.2
#     lab_node_start p pub                   # cohortd -c in namespace "pub"
#     ctl p peers                            # cohortctl against p's local API
#
# Each node lives in $LAB_DIR/nodes/NAME: node.key, node.crt, ca.crt, the
# roster and its signature, node.yaml, state/ (which holds the API socket);
# its log is $LAB_DIR/log/NAME.log.

LAB_CA=""
LAB_NODE_NS=()   # "NAME NS" for every started node
declare -A LAB_NODE_PID=()  # NAME -> PID of its cohortd

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

# lab_node_config NAME LISTEN_IP [SECTION.KEY=VALUE...]: writes NAME's
# node.yaml and checks it with `cohortd --check-config`. By default the node
# listens on LISTEN_IP port 7700 (punch port 7701), advertises nothing, has
# its API on ipc in its state directory and logs at debug level; each
# SECTION.KEY=VALUE sets or overrides one key, written as is (YAML), e.g.
# "listen.advertise=[tcp://203.0.113.10:7700]" or links.direct_timeout=2s.
lab_node_config() {
    local name=$1 ip=$2 dir=$LAB_DIR/nodes/$1 kv k
    shift 2
    local keys=(node.name node.state_dir identity.key identity.cert trust.ca trust.roster
        listen.address listen.port listen.punch_port listen.advertise log.level)
    local -A val=([node.name]=$name [node.state_dir]=state [identity.key]=node.key
        [identity.cert]=node.crt [trust.ca]=ca.crt [trust.roster]=roster.yaml
        [listen.address]="\"$ip\"" [listen.port]=7700 [listen.punch_port]=7701
        [listen.advertise]="[]" [log.level]=debug)
    for kv in "$@"; do
        k=${kv%%=*}
        [[ $k == *.* && $kv == *=* ]] || lab_die "lab_node_config: expected SECTION.KEY=VALUE, got '$kv'"
        [[ -v "val[$k]" ]] || keys+=("$k")
        val[$k]=${kv#*=}
    done
    mkdir -p "$dir/state"
    # Grouped by section, in the order sections first appear.
    local sections=() s
    for k in "${keys[@]}"; do
        s=${k%%.*}
        [[ " ${sections[*]} " == *" $s "* ]] || sections+=("$s")
    done
    {
        for s in "${sections[@]}"; do
            printf '%s:\n' "$s"
            for k in "${keys[@]}"; do
                [[ ${k%%.*} == "$s" ]] && printf '  %s: %s\n' "${k#*.}" "${val[$k]}"
            done
        done
    } >"$dir/node.yaml"
    "$COHORTD" --check-config -c "$dir/node.yaml" >/dev/null 2>"$LAB_DIR/log/$name.check" || {
        cat "$LAB_DIR/log/$name.check" >&2
        lab_die "node.yaml of $name does not load"
    }
}

# lab_node_start NAME NS: starts cohortd for NAME in namespace NS and waits
# (up to 10 s) until its local API answers. Sets LAB_PID and
# LAB_NODE_PID[NAME]; lab_exit_status NAME gives its exit status later.
lab_node_start() {
    local name=$1 ns=$2
    lab_spawn "$ns" "$name" "$COHORTD" -c "$LAB_DIR/nodes/$name/node.yaml"
    LAB_NODE_NS+=("$name $ns")
    LAB_NODE_PID[$name]=$LAB_PID
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

# lab_node_stop NAME: SIGTERM to NAME's cohortd (a graceful leave); fails
# unless it exits with status 0 within 5 s. Sets LAB_STOP_MS.
lab_node_stop() {
    local name=$1 rc t0
    t0=$(date +%s%N)
    if ! lab_stop "${LAB_NODE_PID[$name]}"; then
        echo "cohortd $name did not exit within 5 s of SIGTERM (killed)" >&2
        return 1
    fi
    # shellcheck disable=SC2034 # read by scenario scripts
    LAB_STOP_MS=$((($(date +%s%N) - t0) / 1000000))
    rc=$(lab_exit_status "$name") || rc="unknown"
    if [[ $rc != 0 ]]; then
        echo "cohortd $name exited with status $rc after SIGTERM" >&2
        return 1
    fi
}
