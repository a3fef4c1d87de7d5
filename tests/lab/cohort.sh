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

# ---- links, services and message streams (scenarios 2 to 5) ----

# lab_peer_json NODE PEER: PEER's object from `cohortctl peers --json` on
# NODE, on one line; fails if NODE does not list PEER.
lab_peer_json() {
    ctl "$1" peers --json | tr -d '\n' | sed 's/}[[:space:]]*,[[:space:]]*{/}\n{/g' |
        grep -E "\"name\"[[:space:]]*:[[:space:]]*\"$2\"([^A-Za-z0-9._-]|$)"
}

# lab_peer_get NODE PEER FIELD: one string field (state, link, via, reason,
# roles, ...) of PEER as NODE sees it; empty when the field is empty.
lab_peer_get() {
    local obj
    obj=$(lab_peer_json "$1" "$2") || return 1
    sed -n "s/.*\"$3\"[[:space:]]*:[[:space:]]*\"\([^\"]*\)\".*/\1/p" <<<"$obj"
}

# lab_link NODE PEER: "STATE LINK" or "STATE relayed via RELAY", e.g.
# "up punched", as NODE sees PEER.
lab_link() {
    local obj state link via
    obj=$(lab_peer_json "$1" "$2") || return 1
    state=$(sed -n 's/.*"state"[[:space:]]*:[[:space:]]*"\([^"]*\)".*/\1/p' <<<"$obj")
    link=$(sed -n 's/.*"link"[[:space:]]*:[[:space:]]*"\([^"]*\)".*/\1/p' <<<"$obj")
    via=$(sed -n 's/.*"via"[[:space:]]*:[[:space:]]*"\([^"]*\)".*/\1/p' <<<"$obj")
    echo "$state $link${via:+ via $via}"
}

# lab_link_is NODE PEER LINK: NODE shows PEER up over LINK ("direct",
# "punched", "relayed via r1"; "relayed" alone matches any relay).
lab_link_is() {
    local got
    got=$(lab_link "$1" "$2") || return 1
    [[ $got == "up $3" || ($3 == relayed && $got == "up relayed via "*) ]]
}

# lab_links_are A B LINK: both A and B show each other up over LINK.
lab_links_are() {
    lab_link_is "$1" "$2" "$3" && lab_link_is "$2" "$1" "$3"
}

# lab_link_report A B: both sides' view of the pair, with the reason, for
# failure messages.
lab_link_report() {
    local x y
    for x in "$1" "$2"; do
        [[ $x == "$1" ]] && y=$2 || y=$1
        echo "  $x sees $y: $(lab_link "$x" "$y" 2>&1) (why-not-higher: $(lab_peer_get "$x" "$y" reason 2>&1))"
    done
}

# lab_netcheck_field NODE WHAT: a line of `cohortctl netcheck` on NODE
# without its label, e.g. WHAT "nat" gives the verdict.
lab_netcheck_field() {
    ctl "$1" netcheck | sed -n "s/^$2:[[:space:]]*//p"
}

# lab_relayed_frames NODE: how many frames NODE relayed for others.
lab_relayed_frames() {
    ctl "$1" netcheck | sed -n 's/^relayed for others: \([0-9]*\) frames.*/\1/p'
}

# lab_counter NODE NAME: one counter of `cohortctl status --json` on NODE
# (resent, duplicates_dropped, ...).
lab_counter() {
    ctl "$1" status --json | sed -n "s/.*\"$2\"[[:space:]]*:[[:space:]]*\([0-9]*\).*/\1/p"
}

# lab_serve_echo NODE SERVICE: `cohortctl serve SERVICE --echo` on NODE, in
# the background until the case ends.
lab_serve_echo() {
    lab_spawn "$(lab_node_ns "$1")" "serve-$1-$2" timeout 300 "$COHORTCTL" serve "$2" --echo \
        -c "$LAB_DIR/nodes/$1/node.yaml"
}

# lab_echoed NODE SERVICE PAYLOAD: a request from NODE to SERVICE gets
# PAYLOAD back. Sets LAB_REQ_OUT.
lab_echoed() {
    LAB_REQ_OUT=$(ctl "$1" req "$2" "$3" 2>&1) && [[ $LAB_REQ_OUT == "$3" ]]
}

# lab_request_case FROM TO: TO serves echo-TO; a request from FROM gets its
# echo (retried up to 15 s while the service becomes known), then a second
# one at once.
lab_request_case() {
    local from=$1 to=$2 payload="ping from $1 to $2"
    lab_serve_echo "$to" "echo-$to"
    lab_wait_for 15 lab_echoed "$from" "echo-$to" "$payload" || lab_echoed "$from" "echo-$to" "$payload" ||
        fail "$from -> service echo-$to on $to: no echo within 15 s; last attempt: $LAB_REQ_OUT"
    echo "figure: $from -> $to request answered $LAB_WAITED s after the server started"
    lab_echoed "$from" "echo-$to" "$payload, again" ||
        fail "$from -> service echo-$to: the second request failed: $LAB_REQ_OUT"
}

# A stream of numbered reliable unicasts (`cohortctl stream`: one API
# connection, thousands of messages), checked on the receiver for loss,
# duplicates and order:
#
#     lab_stream_start a b        # b subscribes to subject "seq"; a sends 1, 2, ...
#     ...                         # cut links, kill relays
#     lab_stream_stop a           # a stops sending (between two sends)
#     lab_stream_check a b 30     # b got each of them exactly once, in order
#
# lab_stream_start FROM TO [COUNT [RATE]] stops by itself after COUNT
# messages (0: until lab_stream_stop). RATE is messages per second (default
# LAB_STREAM_RATE, 400); 0 sends as fast as the node takes them, and then
# lab_stream_check prints messages per second. Started outside a case, the
# stream runs across cases. lab_stream_start fails if TO's subscription does
# not show.

# lab_stream_start FROM TO [COUNT [RATE]]
lab_stream_start() {
    local from=$1 to=$2 n=${3:-0} rate=${4:-${LAB_STREAM_RATE:-400}}
    local args=(--subject seq -c "$LAB_DIR/nodes/$from/node.yaml")
    ((n == 0)) || args+=(--count "$n")
    ((rate == 0)) || args+=(--rate "$rate")
    rm -f "$LAB_DIR/log/stream-sub-$to.log" "$LAB_DIR/log/stream-send-$from.log"
    lab_spawn "$(lab_node_ns "$to")" "stream-sub-$to" timeout 300 "$COHORTCTL" sub seq \
        -c "$LAB_DIR/nodes/$to/node.yaml"
    # The subscription must be in place before the first message arrives.
    if ! lab_wait_for 5 grep -q "subscribed to 'seq'" "$LAB_DIR/log/stream-sub-$to.log"; then
        echo "cohortctl sub on $to did not subscribe within 5 s:" >&2
        cat "$LAB_DIR/log/stream-sub-$to.log" >&2
        return 1
    fi
    echo "$rate $(lab_now)" >"$LAB_DIR/stream-$from"
    lab_spawn "$(lab_node_ns "$from")" "stream-send-$from" timeout 300 "$COHORTCTL" stream "$to" \
        "${args[@]}"
}

# lab_stream_stop FROM: the sender stops after the send in progress.
lab_stream_stop() {
    local pid
    pid=$(cat "$LAB_DIR/log/stream-send-$1.pid" 2>/dev/null) && kill -INT "$pid" 2>/dev/null
    return 0
}

# lab_stream_sent FROM: how many messages the sender has handed to its node
# (empty until it has finished).
lab_stream_sent() {
    local log=$LAB_DIR/log/stream-send-$1.log
    [[ -f $log ]] && sed -n 's/^sent \([0-9]*\) .*/\1/p' "$log"
}

# lab_stream_received FROM TO: how many stream messages TO has delivered.
lab_stream_received() {
    grep -c "^seq $1: " "$LAB_DIR/log/stream-sub-$2.log" || true
}

# lab_stream_check FROM TO SECONDS [RUNG]: waits up to SECONDS for the sender
# to finish and TO to have received all it sent, then checks that each of
# 1..SENT arrived exactly once and in order. Prints the figures (messages
# per second on RUNG when the stream was unpaced).
lab_stream_check() {
    local from=$1 to=$2 secs=$3 rung=${4:-} log n got dups missing disorder rate t0 t1
    log=$LAB_DIR/log/stream-sub-$to.log
    lab_wait_for "$secs" _lab_stream_done "$from" "$to" || true
    t1=$(lab_now)
    read -r rate t0 <"$LAB_DIR/stream-$from"
    n=$(lab_stream_sent "$from")
    got=$(lab_stream_received "$from" "$to")
    [[ -n $n ]] || fail "stream $from -> $to: the sender has not finished after $secs s"
    echo "figure: stream $from -> $to: $n sent, $got received"
    if ((rate == 0 && got == n && n > 0)); then
        echo "figure: stream $from -> $to${rung:+ ($rung)}: $(awk -v n="$n" -v ns=$((t1 - t0)) \
            'BEGIN { printf "%.0f msg/s (%d in %.2f s, send to last delivery)", n / (ns / 1e9), n, ns / 1e9 }')"
    fi
    ! grep "cohortctl: stream: message" "$LAB_DIR/log/stream-send-$from.log" | head -n 5 >&2 ||
        fail "stream $from -> $to: cohortctl stream failed on $from (above)"
    dups=$(sed -n "s/^seq $from: //p" "$log" | sort -n | uniq -d | head -n 10 | tr '\n' ' ')
    missing=$(comm -23 <(seq 1 "$n" | sort) <(sed -n "s/^seq $from: //p" "$log" | sort -u) |
        sort -n | head -n 10 | tr '\n' ' ')
    disorder=$(sed -n "s/^seq $from: //p" "$log" |
        awk '$1 <= last { print last " then " $1; n++ } { last = $1 } n == 3 { exit }' | tr '\n' ' ')
    if [[ -n $dups || -n $missing || -n $disorder ]]; then
        {
            echo "  $from: $(ctl "$from" status --json 2>&1)"
            echo "  $to: $(ctl "$to" status --json 2>&1)"
            lab_link_report "$from" "$to"
        } >&2
    fi
    [[ -z $dups ]] || fail "stream $from -> $to: duplicates delivered, e.g. $dups"
    [[ -z $missing ]] || fail "stream $from -> $to: messages lost, e.g. $missing"
    [[ -z $disorder ]] || fail "stream $from -> $to: delivered out of order: $disorder"
    ((got == n)) || fail "stream $from -> $to: $got deliveries for $n messages"
}

_lab_stream_done() {
    local n
    n=$(lab_stream_sent "$1")
    [[ -n $n ]] && (($(lab_stream_received "$1" "$2") >= n))
}

# lab_now: nanoseconds, for figures (lab_secs turns a difference into s).
lab_now() {
    date +%s%N
}

# Enters the lab sandbox (see lab_enter) and checks that the programs under
# test are built: the common start of every cohort scenario.
lab_cohort_enter() {
    lab_enter "$@"
    local prog
    for prog in "$COHORTCTL" "$COHORTD"; do
        [[ -x $prog ]] || lab_die "$prog: not built (set COHORTCTL / COHORTD or build first)"
    done
}

# ---- LAN discovery beacons (overlay/beacon.h) ----

# lab_cluster_name: the cluster name of the lab roster.
lab_cluster_name() {
    sed -n 's/^cluster:[[:space:]]*//p' "$LAB_DIR/roster.yaml"
}

# lab_node_key_hex NAME: NAME's X25519 public key, 64 hex digits (the last
# 32 bytes of the SubjectPublicKeyInfo in node.pub).
lab_node_key_hex() {
    sed '/^-----/d' "$LAB_DIR/nodes/$1/node.pub" | base64 -d | tail -c 32 | od -An -v -tx1 |
        tr -d ' \n'
}

# lab_random_key_hex: 32 random bytes as 64 hex digits (a key no roster has).
lab_random_key_hex() {
    head -c 32 /dev/urandom | od -An -v -tx1 | tr -d ' \n'
}

# lab_beacon_send NS ADDR KEY_HEX PORT [CLUSTER [BEACON_PORT]]: sends one
# beacon datagram from namespace NS to ADDR:BEACON_PORT (default 7702; ADDR
# may be a broadcast address) announcing KEY_HEX (64 hex digits) with overlay
# port PORT, tagged for CLUSTER (default: the lab roster's cluster). The
# 48 bytes: "CHB1" | 1 | 0 | PORT (big-endian u16) | key (32) | the first 8
# bytes of SHA-256(CLUSTER). Sent with nc -u -b (openbsd netcat; -q 0, the
# Debian option to quit at the end of input, else -w 1).
lab_beacon_send() {
    local ns=$1 addr=$2 key=$3 port=$4 cluster=${5:-} bport=${6:-7702} tag hex esc="" i f
    [[ -n $cluster ]] || cluster=$(lab_cluster_name)
    [[ $key =~ ^[0-9a-fA-F]{64}$ ]] || lab_die "lab_beacon_send: KEY_HEX must be 64 hex digits"
    tag=$(printf '%s' "$cluster" | sha256sum | cut -c1-16)
    hex=$(printf '43484231''0100''%04x%s%s' "$port" "$key" "$tag")
    f=$(mktemp "$LAB_DIR/beacon.XXXXXX")
    for ((i = 0; i < ${#hex}; i += 2)); do
        esc+="\\x${hex:i:2}"
    done
    printf '%b' "$esc" >"$f"
    [[ $(stat -c %s "$f") == 48 ]] || lab_die "lab_beacon_send: datagram is not 48 bytes"
    ip netns exec "$ns" timeout 5 nc -u -b -n -q 0 "$addr" "$bport" <"$f" >/dev/null 2>&1 ||
        ip netns exec "$ns" timeout 5 nc -u -b -n -w 1 "$addr" "$bport" <"$f" >/dev/null 2>&1 ||
        lab_die "lab_beacon_send: nc could not send to $addr:$bport from $ns"
    rm -f "$f"
}

# ---- faults during a stream (test_lab_faults*.sh) ----

# lab_stream_expected FROM: how many messages FROM's paced stream should
# have handed to its node by now, by its schedule (rate x time since start).
lab_stream_expected() {
    local rate t0
    read -r rate t0 <"$LAB_DIR/stream-$1"
    echo $((rate * ($(lab_now) - t0) / 1000000000))
}

# lab_stream_caught_up FROM TO [SLACK]: TO has received all but SLACK
# (default a quarter second's worth plus 50) of what FROM's paced stream
# should have sent by now.
lab_stream_caught_up() {
    local rate t0 slack
    read -r rate t0 <"$LAB_DIR/stream-$1"
    slack=${3:-$((rate / 4 + 50))}
    (($(lab_stream_received "$1" "$2") + slack >= $(lab_stream_expected "$1")))
}

# lab_stream_watch FROM TO MIN MAX: watches a paced stream's deliveries on
# TO from now (the moment of a fault): every 0.1 s until at least MIN
# seconds have passed, deliveries are flowing (the last one less than 0.5 s
# ago) and TO has caught up with the sender's schedule since the longest
# stall ended; fails after MAX seconds. A stall is 0.5 s or more without a
# new delivery (shorter pauses are the 0.1 s polling). Sets LAB_STALL (the
# longest time without a new delivery, s), LAB_RESUMED (when deliveries
# resumed after the longest stall, s after the fault; 0.0 when there was no
# stall) and LAB_CAUGHT_UP (when TO had caught up after it, s after the
# fault).
lab_stream_watch() {
    local from=$1 to=$2 min=$3 max=$4 t0 now n last_n last_progress gap stall=0 stall_end caught=""
    t0=$(lab_now)
    last_progress=$t0
    stall_end=$t0
    last_n=$(lab_stream_received "$from" "$to")
    while :; do
        now=$(lab_now)
        n=$(lab_stream_received "$from" "$to")
        if ((n > last_n)); then
            gap=$((now - last_progress))
            if ((gap > stall)); then
                stall=$gap
                # a stall: deliveries paused for at least 0.5 s (shorter
                # pauses are the polling itself)
                if ((gap >= 500000000)); then
                    stall_end=$now
                    caught=""
                fi
            fi
            last_progress=$now
            last_n=$n
        fi
        [[ -n $caught ]] || ! lab_stream_caught_up "$from" "$to" || caught=$now
        if ((now - t0 >= min * 1000000000)) && [[ -n $caught ]] &&
            ((now - last_progress < 500000000)); then
            break
        fi
        if ((now - t0 > max * 1000000000)); then
            LAB_STALL=$(lab_secs "$stall") LAB_RESUMED=$(lab_secs $((stall_end - t0)))
            LAB_CAUGHT_UP=never
            return 1
        fi
        sleep 0.1
    done
    # shellcheck disable=SC2034 # read by scenario scripts
    LAB_STALL=$(lab_secs "$stall") LAB_RESUMED=$(lab_secs $((stall_end - t0)))
    # shellcheck disable=SC2034
    LAB_CAUGHT_UP=$(lab_secs $((caught - t0)))
}

# lab_stream_counters FROM TO: "RESENT DUPS" now, FROM's resent and TO's
# duplicates_dropped counters (to subtract around a fault).
lab_stream_counters() {
    echo "$(lab_counter "$1" resent) $(lab_counter "$2" duplicates_dropped)"
}

# lab_stream_counters_figure FROM TO BEFORE WHAT: prints FROM's resends and
# TO's duplicates dropped since BEFORE (lab_stream_counters) as a figure.
lab_stream_counters_figure() {
    local r0 d0 r1 d1
    read -r r0 d0 <<<"$3"
    read -r r1 d1 <<<"$(lab_stream_counters "$1" "$2")"
    echo "figure: $4: $1 resent $((r1 - r0)) messages, $2 dropped $((d1 - d0)) duplicates"
}

# lab_stream_received_at_least FROM TO N: TO has delivered N of FROM's.
lab_stream_received_at_least() {
    (($(lab_stream_received "$1" "$2") >= $3))
}

# lab_stream_flowing FROM TO: the stream delivers (20 more within 10 s),
# else the case fails.
lab_stream_flowing() {
    local n
    n=$(lab_stream_received "$1" "$2")
    lab_wait_for 10 lab_stream_received_at_least "$1" "$2" $((n + 20)) ||
        fail "stream $1 -> $2: $(($(lab_stream_received "$1" "$2") - n)) deliveries in 10 s"
}
