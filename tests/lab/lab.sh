# shellcheck shell=bash
#
# lab.sh: the NAT lab. Linux network namespaces joined by veth pairs, a bridge
# as the internet and NAT routers made of iptables rules, all inside a private
# mount and PID namespace so that nothing outlives the test: not a namespace,
# not a veth, not a process, even when the test is killed.
#
# A scenario script starts like this:
#
#     #!/usr/bin/env bash
#     set -euo pipefail
#     # shellcheck source=tests/lab/lab.sh
#     source "$(dirname "${BASH_SOURCE[0]}")/lab.sh"
#     lab_enter "$@"        # re-executes the script inside the sandbox
#
# then builds a topology, for example:
#
#     lab_internet                                    # "inet": the bridge
#     lab_public_host pub 203.0.113.10                # a host on the internet
#     lab_nat rtr-a cone 203.0.113.20 10.1.0.0/24     # a NAT router, LAN 10.1.0.0/24
#     lab_private_host a rtr-a 10.1.0.2               # a host behind it
#     lab_exec a some-command ...                     # runs in that namespace
#
# Addresses: the internet is TEST-NET-3 (203.0.113.0/24) or TEST-NET-2
# (198.51.100.0/24), documentation ranges that are never routed; LANs are
# 10.x. They exist only inside namespaces the lab made: the machine's own
# network namespace is never touched (every veth is created directly inside
# lab namespaces).
#
# Routers: TYPE "cone" is MASQUERADE, which keeps the source port when it is
# free (port-preserving, endpoint-independent in practice); TYPE "symmetric"
# is MASQUERADE --random-fully, a fresh random port per connection. Both DROP
# unsolicited inbound traffic, forwarded or addressed to the router itself:
# a router that answered with a RST or an ICMP error would break the port
# preservation hole punching relies on.
#
# Environment:
#   LAB_KEEP=1   keep the work directory ($LAB_DIR: configs, logs) in $TMPDIR
#                and print its path
#   LAB_DEBUG=1  trace the lab's own commands
#   COHORTD, COHORTCTL, NFQ_DELAY  the programs (ctest sets them; by
#                default those of build/ci, which tests/run.sh builds)

LAB_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
COHORT_SRC=${COHORT_SRC:-$(cd "$LAB_LIB_DIR/../.." && pwd)}
COHORTCTL=${COHORTCTL:-$COHORT_SRC/build/ci/cohortctl}
COHORTD=${COHORTD:-$COHORT_SRC/build/ci/cohortd}
NFQ_DELAY=${NFQ_DELAY:-$COHORT_SRC/build/ci/tests/lab/nfq_delay}
export COHORTCTL COHORTD COHORT_SRC NFQ_DELAY

# Exit code ctest reads as "skipped" (SKIP_RETURN_CODE in CMakeLists.txt).
LAB_SKIP=77

LAB_INET=inet          # namespace of the internet bridge
LAB_INET_BR=br0        # the bridge
LAB_INET_CIDR=""       # set by lab_internet
LAB_PIDS=()            # background processes started by lab_spawn
LAB_WATCHERS=()        # their watcher subshells
LAB_ROUTERS=()         # router namespaces, for lab_flush_conntrack
LAB_NAMESPACES=()

lab_log() {
    echo "lab: $*" >&2
}

lab_die() {
    echo "lab: error: $*" >&2
    exit 1
}

# ---- the sandbox ----

# lab_enter "$@": called at the top of a scenario script. Outside the sandbox
# it checks the prerequisites and re-executes the script under
#   unshare --mount --pid --fork --kill-child --mount-proc
# (COHORT_LAB_INSIDE marks the second run). Inside, it mounts a tmpfs on
# /run/netns (and /var/run/netns when that is a different directory) so every
# `ip netns add` lands in a directory that vanishes with the mount namespace,
# and makes the work directory $LAB_DIR (a tmpfs too unless LAB_KEEP=1). On
# the host only the empty mount points /run/netns and /run/cohort-lab remain.
# --kill-child gives the sandbox's init SIGKILL when unshare dies, whatever
# kills it, and the kernel then kills every process in the PID namespace; the
# network namespaces die with their last reference (process or bind mount),
# and their veths and bridges with them.
lab_enter() {
    if [[ ${COHORT_LAB_INSIDE:-} != 1 ]]; then
        if [[ $(id -u) != 0 ]]; then
            echo "skipped: the NAT lab needs root (network namespaces, iptables)"
            exit "$LAB_SKIP"
        fi
        local p missing=()
        for p in unshare ip iptables ebtables conntrack nc ss timeout; do
            command -v "$p" >/dev/null 2>&1 || missing+=("$p")
        done
        if ((${#missing[@]})); then
            echo "lab: error: missing ${missing[*]} (install with: deploy/deps.sh test)" >&2
            exit 1
        fi
        export COHORT_LAB_INSIDE=1
        exec unshare --mount --pid --fork --kill-child --mount-proc \
            bash "$0" "$@"
    fi
    [[ ${LAB_DEBUG:-0} == 1 ]] && set -x
    # Private propagation (unshare's default), asserted: nothing mounted here
    # may appear on the host.
    mount --make-rprivate / 2>/dev/null || true
    mkdir -p /run/netns
    mount -t tmpfs -o size=1m,mode=0755 lab-netns /run/netns ||
        lab_die "cannot mount a tmpfs on /run/netns"
    # iproute2 uses /var/run/netns, a symlink to /run on Debian; mount there
    # too when it is a directory of its own.
    if [[ $(readlink -f /var/run/netns 2>/dev/null) != /run/netns ]]; then
        mkdir -p /var/run/netns
        mount -t tmpfs -o size=1m,mode=0755 lab-netns /var/run/netns ||
            lab_die "cannot mount a tmpfs on /var/run/netns"
    fi
    # The work directory: a tmpfs on /run/cohort-lab, private to this mount
    # namespace (parallel runs each see their own), gone with it. Kept
    # runs write to a directory in $TMPDIR instead.
    if [[ ${LAB_KEEP:-0} == 1 ]]; then
        LAB_DIR=$(mktemp -d "${TMPDIR:-/tmp}/cohort-lab.XXXXXX")
    else
        mkdir -p /run/cohort-lab
        mount -t tmpfs -o size=256m,mode=0700 lab-work /run/cohort-lab ||
            lab_die "cannot mount a tmpfs on /run/cohort-lab"
        LAB_DIR=/run/cohort-lab/work
        mkdir "$LAB_DIR"
    fi
    export LAB_DIR
    mkdir -p "$LAB_DIR/hosts" "$LAB_DIR/log"
    trap lab_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}

# lab_cleanup: stops what lab_spawn started (TERM, then KILL after 3 s) and
# removes the work directory. Runs on exit; the PID namespace would kill any
# straggler anyway when the script's shell (its init) exits.
lab_cleanup() {
    local rc=$? pid i alive
    set +e
    for pid in "${LAB_PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null
    done
    for ((i = 0; i < 30; i++)); do
        alive=0
        for pid in "${LAB_PIDS[@]}"; do
            kill -0 "$pid" 2>/dev/null && alive=1
        done
        ((alive)) || break
        sleep 0.1
    done
    for pid in "${LAB_PIDS[@]}"; do
        kill -KILL "$pid" 2>/dev/null
    done
    # The watchers of lab_spawn write their exit status files: let them
    # (bounded: 2 s).
    for ((i = 0; i < 20; i++)); do
        alive=0
        for pid in "${LAB_WATCHERS[@]}"; do
            kill -0 "$pid" 2>/dev/null && alive=1
        done
        ((alive)) || break
        sleep 0.1
    done
    if [[ ${LAB_KEEP:-0} == 1 ]]; then
        echo "lab: kept $LAB_DIR" >&2
    else
        rm -rf "$LAB_DIR"
        umount /run/cohort-lab 2>/dev/null
    fi
    return "$rc"
}

# ---- addresses ----

lab_ip2int() {
    local a b c d
    IFS=. read -r a b c d <<<"$1"
    echo $(((a << 24) | (b << 16) | (c << 8) | d))
}

lab_int2ip() {
    local n=$1
    echo "$(((n >> 24) & 255)).$(((n >> 16) & 255)).$(((n >> 8) & 255)).$((n & 255))"
}

# lab_cidr_host CIDR N: the N-th host address of CIDR (network + N).
lab_cidr_host() {
    local net=${1%/*} len=${1#*/} mask
    mask=$(((0xffffffff << (32 - len)) & 0xffffffff))
    lab_int2ip $((($(lab_ip2int "$net") & mask) + $2))
}

# lab_ip NAME: the address NAME is reached at from where it lives: a public
# host's or a router's public address, a private host's LAN address. An IP
# literal is returned as is.
lab_ip() {
    if [[ $1 =~ ^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$ ]]; then
        echo "$1"
        return
    fi
    [[ -f $LAB_DIR/hosts/$1 ]] || lab_die "no lab host named '$1'"
    sed -n 's/^ip=//p' "$LAB_DIR/hosts/$1"
}

# ---- namespaces ----

lab_netns() {
    local ns=$1
    ip netns add "$ns" || lab_die "cannot create network namespace $ns"
    ip -n "$ns" link set lo up
    # No bridged frame goes through iptables (br_netfilter is on by default
    # in every new namespace on this kernel): a bridge is a wire here.
    if [[ -e /proc/sys/net/bridge/bridge-nf-call-iptables ]]; then
        ip netns exec "$ns" sysctl -qw net.bridge.bridge-nf-call-iptables=0 \
            net.bridge.bridge-nf-call-ip6tables=0 net.bridge.bridge-nf-call-arptables=0
    fi
    # No IPv6 chatter (router solicitations, DAD) on lab links.
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 \
        net.ipv6.conf.default.disable_ipv6=1 2>/dev/null || true
    LAB_NAMESPACES+=("$ns")
}

# lab_exec NS CMD...: runs CMD in network namespace NS.
lab_exec() {
    local ns=$1
    shift
    ip netns exec "$ns" "$@"
}

# lab_spawn NS NAME CMD...: starts CMD in NS in the background, output to
# $LAB_DIR/log/NAME.log; sets LAB_PID to CMD's own PID (signals reach CMD
# itself). When CMD exits, its exit status is written to
# $LAB_DIR/log/NAME.rc (see lab_exit_status). Stopped by lab_cleanup, by the
# end of the case that started it, or by lab_stop.
lab_spawn() {
    local ns=$1 name=$2 i
    shift 2
    local log=$LAB_DIR/log/$name
    rm -f "$log.rc" "$log.pid"
    # A watcher subshell starts CMD as its own child, so that it can wait
    # for it and keep its status whoever (a case subshell) stops it.
    {
        ip netns exec "$ns" "$@" </dev/null >>"$log.log" 2>&1 &
        echo "$!" >"$log.pid.tmp" && mv "$log.pid.tmp" "$log.pid"
        rc=0
        wait "$!" 2>/dev/null || rc=$? # no "Killed" notice from bash
        echo "$rc" >"$log.rc.tmp" && mv "$log.rc.tmp" "$log.rc"
    } &
    LAB_WATCHERS+=("$!")
    for ((i = 0; i < 100; i++)); do
        [[ -s $log.pid ]] && break
        sleep 0.01
    done
    [[ -s $log.pid ]] || lab_die "lab_spawn $name: no PID after 1 s"
    LAB_PID=$(<"$log.pid")
    LAB_PIDS+=("$LAB_PID")
}

# lab_stop PID [SIGNAL]: signals PID (default TERM) and waits up to 5 s for
# it to exit, then kills it. Returns 1 if it had to be killed.
lab_stop() {
    local pid=$1 sig=${2:-TERM} i
    kill -"$sig" "$pid" 2>/dev/null || return 0
    for ((i = 0; i < 50; i++)); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    return 1
}

# lab_exit_status NAME [SECONDS]: the exit status of what lab_spawn started
# as NAME, waiting up to SECONDS (default 5) for it to exit; fails (and
# prints nothing) if it is still running.
lab_exit_status() {
    local f=$LAB_DIR/log/$1.rc i
    for ((i = 0; i < ${2:-5} * 10; i++)); do
        [[ -s $f ]] && break
        sleep 0.1
    done
    [[ -s $f ]] || return 1
    cat "$f"
}

# lab_wait_for SECONDS CMD...: runs CMD every 0.1 s until it succeeds;
# fails after SECONDS. Sets LAB_WAITED to the seconds it took (0.1 s steps).
lab_wait_for() {
    local limit=$1 start rc
    shift
    start=$(date +%s%N)
    while :; do
        if "$@" >/dev/null 2>&1; then
            rc=0
            break
        fi
        if (($(date +%s%N) - start > limit * 1000000000)); then
            rc=1
            break
        fi
        sleep 0.1
    done
    # shellcheck disable=SC2034 # read by scenario scripts
    LAB_WAITED=$(lab_secs $(($(date +%s%N) - start)))
    return "$rc"
}

# lab_secs NANOSECONDS: seconds with one decimal.
lab_secs() {
    local ds=$((($1 + 50000000) / 100000000))
    echo "$((ds / 10)).$((ds % 10))"
}

# ---- topology ----

# lab_internet [CIDR]: the internet: namespace "inet" with bridge br0.
# CIDR (default 203.0.113.0/24) is recorded for the hosts' prefix length;
# the bridge itself has no address.
lab_internet() {
    LAB_INET_CIDR=${1:-203.0.113.0/24}
    lab_netns "$LAB_INET"
    ip -n "$LAB_INET" link add "$LAB_INET_BR" type bridge
    # Forward at once: no STP listening/learning delay on new ports.
    ip -n "$LAB_INET" link set "$LAB_INET_BR" type bridge forward_delay 0 stp_state 0
    ip -n "$LAB_INET" link set "$LAB_INET_BR" up
}

# _lab_plug NS IFNAME IP: a veth from NS (named IFNAME there) into the
# internet bridge, with IP on it.
_lab_plug() {
    local ns=$1 ifname=$2 ip=$3 len=${LAB_INET_CIDR#*/} port
    [[ -n $LAB_INET_CIDR ]] || lab_die "call lab_internet first"
    port="i-$ns"
    port=${port:0:15}
    ip -n "$LAB_INET" link add "$port" type veth peer name "$ifname" netns "$ns" ||
        lab_die "cannot create the veth $port/$ifname"
    ip -n "$LAB_INET" link set "$port" master "$LAB_INET_BR" up
    ip -n "$ns" addr add "$ip/$len" dev "$ifname"
    ip -n "$ns" link set "$ifname" up
}

# lab_public_host NAME IP: a host on the internet at IP.
lab_public_host() {
    local name=$1 ip=$2
    lab_netns "$name"
    _lab_plug "$name" eth0 "$ip"
    printf 'kind=public\nip=%s\n' "$ip" >"$LAB_DIR/hosts/$name"
}

# lab_nat ROUTER TYPE PUBLIC_IP LAN_CIDR: a NAT router. wan0 at PUBLIC_IP on
# the internet; bridge lan0 holding the first host address of LAN_CIDR (the
# private hosts' gateway). TYPE: cone | symmetric.
lab_nat() {
    local r=$1 type=$2 pub=$3 lan=$4 gw len=${4#*/} masq
    case $type in
        cone) masq=(-j MASQUERADE) ;;
        symmetric) masq=(-j MASQUERADE --random-fully) ;;
        *) lab_die "lab_nat: TYPE must be cone or symmetric, got '$type'" ;;
    esac
    gw=$(lab_cidr_host "$lan" 1)
    lab_netns "$r"
    _lab_plug "$r" wan0 "$pub"
    ip -n "$r" link add lan0 type bridge
    ip -n "$r" link set lan0 type bridge forward_delay 0 stp_state 0
    ip -n "$r" addr add "$gw/$len" dev lan0
    ip -n "$r" link set lan0 up
    ip netns exec "$r" sysctl -qw net.ipv4.ip_forward=1
    # Source NAT on the way out.
    ip netns exec "$r" iptables -t nat -A POSTROUTING -o wan0 "${masq[@]}"
    # Forwarding: LAN to WAN freely, WAN to LAN only replies (conntrack).
    # Everything else is dropped silently: DROP, never REJECT.
    ip netns exec "$r" iptables -P FORWARD DROP
    ip netns exec "$r" iptables -A FORWARD -i lan0 -o wan0 -j ACCEPT
    ip netns exec "$r" iptables -A FORWARD -i wan0 -o lan0 \
        -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
    # The router itself: a SYN to its public address that matches no
    # mapping must not be answered with a RST either.
    ip netns exec "$r" iptables -P INPUT DROP
    ip netns exec "$r" iptables -A INPUT -i lo -j ACCEPT
    ip netns exec "$r" iptables -A INPUT -i lan0 -j ACCEPT
    ip netns exec "$r" iptables -A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
    printf 'kind=router\nip=%s\ntype=%s\nlan=%s\ngw=%s\n' "$pub" "$type" "$lan" "$gw" \
        >"$LAB_DIR/hosts/$r"
    LAB_ROUTERS+=("$r")
}

# lab_private_host NAME ROUTER IP: a host at IP on ROUTER's LAN, default
# route via the router.
lab_private_host() {
    local name=$1 r=$2 ip=$3 lan gw port
    if [[ ! -f $LAB_DIR/hosts/$r ]] || ! grep -q '^kind=router$' "$LAB_DIR/hosts/$r"; then
        lab_die "lab_private_host: '$r' is not a lab router"
    fi
    lan=$(sed -n 's/^lan=//p' "$LAB_DIR/hosts/$r")
    gw=$(sed -n 's/^gw=//p' "$LAB_DIR/hosts/$r")
    lab_netns "$name"
    port="l-$name"
    port=${port:0:15}
    ip -n "$r" link add "$port" type veth peer name eth0 netns "$name" ||
        lab_die "cannot create the veth $port/eth0"
    ip -n "$r" link set "$port" master lan0 up
    ip -n "$name" addr add "$ip/${lan#*/}" dev eth0
    ip -n "$name" link set eth0 up
    ip -n "$name" route add default via "$gw"
    printf 'kind=private\nip=%s\nrouter=%s\n' "$ip" "$r" >"$LAB_DIR/hosts/$name"
}

# lab_cut A B / lab_uncut A B: cut (or restore) the internet path between
# two public addresses (router or public host names, or IP literals), both
# ways. The bridge drops their IPv4 packets silently (ebtables, bridge
# family): established TCP connections stall as on a real broken path, no
# RST, no ICMP. ARP still passes.
lab_cut() {
    _lab_cut_rules -A "$@"
}

lab_uncut() {
    _lab_cut_rules -D "$@"
}

_lab_cut_rules() {
    local op=$1 a b
    a=$(lab_ip "$2")
    b=$(lab_ip "$3")
    ip netns exec "$LAB_INET" ebtables "$op" FORWARD -p IPv4 --ip-src "$a" --ip-dst "$b" -j DROP
    ip netns exec "$LAB_INET" ebtables "$op" FORWARD -p IPv4 --ip-src "$b" --ip-dst "$a" -j DROP
}

# lab_flush_conntrack: forgets every NAT mapping and tracked connection in
# every router.
lab_flush_conntrack() {
    local r
    for r in "${LAB_ROUTERS[@]}"; do
        ip netns exec "$r" conntrack -F >/dev/null 2>&1 || true
    done
}

# ---- probes with plain tools ----

# lab_tcp_connect NS IP PORT [SECONDS]: tries one TCP connection from NS
# (bash /dev/tcp). Returns 0 when it connects, 124 when it times out
# (SECONDS, default 2: the SYN went unanswered), 1 when it is refused or
# unreachable (a RST or an ICMP error came back).
lab_tcp_connect() {
    local ns=$1 ip=$2 port=$3 secs=${4:-2}
    # shellcheck disable=SC2016 # $0 and $1 are the inner shell's
    ip netns exec "$ns" timeout "$secs" bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$ip" "$port" \
        2>/dev/null
}

# lab_listen NS IP PORT NAME: a TCP listener (nc) in NS; sets LAB_PID.
# Waits (up to 3 s) until it is listening.
lab_listen() {
    local ns=$1 ip=$2 port=$3 name=$4
    lab_spawn "$ns" "$name" timeout 60 nc -l -k -n -d "$ip" "$port"
    lab_wait_for 3 _lab_is_listening "$ns" "$port" ||
        lab_die "nc did not listen on $ip:$port in $ns (see $LAB_DIR/log/$name.log)"
}

_lab_is_listening() {
    [[ -n $(ip netns exec "$1" ss -Htln "sport = :$2") ]]
}

# lab_observed_source CLIENT_NS SERVER_NS SERVER_IP PORT [SRC_PORT]: starts a
# one-connection listener (nc) at SERVER_IP:PORT in SERVER_NS, connects to it
# from CLIENT_NS (from local port SRC_PORT when given) and prints the source
# address the server sees, IP:PORT. Fails if no connection shows up in 3 s.
# The server closes first, so the client's port is not left in TIME_WAIT
# (nc cannot bind a port in TIME_WAIT) and can be used again at once.
lab_observed_source() {
    local cns=$1 sns=$2 ip=$3 port=$4 src=${5:-} spid cpid peer="" opt=() i
    [[ -n $src ]] && opt=(-p "$src")
    ip netns exec "$sns" timeout 10 nc -l -n -d "$ip" "$port" </dev/null >/dev/null 2>&1 &
    spid=$!
    if ! lab_wait_for 3 _lab_is_listening "$sns" "$port"; then
        kill "$spid" 2>/dev/null || true
        wait "$spid" 2>/dev/null || true
        return 1
    fi
    ip netns exec "$cns" timeout 10 nc -n -d "${opt[@]}" "$ip" "$port" </dev/null >/dev/null 2>&1 &
    cpid=$!
    for ((i = 0; i < 30; i++)); do
        peer=$(ip netns exec "$sns" ss -Htn state established "sport = :$port" |
            awk '{ print $NF; exit }')
        [[ -n $peer ]] && break
        sleep 0.1
    done
    kill "$spid" 2>/dev/null || true
    wait "$spid" 2>/dev/null || true
    # The client sees the server's FIN and exits; bounded all the same.
    for ((i = 0; i < 20; i++)); do
        kill -0 "$cpid" 2>/dev/null || break
        sleep 0.1
    done
    kill "$cpid" 2>/dev/null || true
    wait "$cpid" 2>/dev/null || true
    [[ -n $peer ]] || return 1
    echo "$peer"
}

# ---- cases ----
#
#     run_case name_of_function   # runs it in a subshell, prints ok/FAIL
#
# Call run_case as a plain command, never in a condition (`run_case x ||
# ...`, `if run_case x`): bash ignores set -e inside anything called there,
# so a failed check would not end the case.
#     finish                      # prints "N passed, M failed"; exit 1 if M > 0
#
# Before each case every router forgets its mappings (lab_flush_conntrack),
# unless LAB_CASE_FLUSH=0: a scenario whose daemons keep connections open
# across cases sets that, since a flushed router drops the inbound half of a
# live connection until the inside speaks again. What a case starts with
# lab_spawn is stopped when the case ends. A failed check calls
# `fail MESSAGE`, which prints it and fails the case.

LAB_PASSED=0
LAB_FAILED=0
LAB_FAILED_NAMES=()
LAB_CASE=""

fail() {
    echo "FAIL: $LAB_CASE: $*" >&2
    return 1
}

_lab_case_cleanup() {
    local rc=$? pid
    for pid in "${LAB_PIDS[@]:$LAB_CASE_FIRST_PID}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${LAB_PIDS[@]:$LAB_CASE_FIRST_PID}"; do
        lab_stop "$pid" >/dev/null 2>&1 || true
    done
    return "$rc"
}

run_case() {
    local name=$1 rc=0 t0
    if [[ -n ${LAB_ONLY:-} ]] && ! grep -Eq -- "$LAB_ONLY" <<<"$name"; then
        return 0
    fi
    [[ ${LAB_CASE_FLUSH:-1} == 0 ]] || lab_flush_conntrack
    t0=$(date +%s%N)
    set +e
    (
        set -euo pipefail
        LAB_CASE=$name
        LAB_CASE_FIRST_PID=${#LAB_PIDS[@]}
        trap _lab_case_cleanup EXIT
        "$name"
    )
    rc=$?
    set -e
    if [[ $rc == 0 ]]; then
        LAB_PASSED=$((LAB_PASSED + 1))
        echo "ok   $name ($(lab_secs $(($(date +%s%N) - t0))) s)"
    else
        LAB_FAILED=$((LAB_FAILED + 1))
        LAB_FAILED_NAMES+=("$name")
        echo "FAIL $name"
    fi
}

finish() {
    if ((LAB_FAILED)); then
        echo "failed: ${LAB_FAILED_NAMES[*]}"
    fi
    echo "$LAB_PASSED passed, $LAB_FAILED failed"
    ((LAB_FAILED == 0))
}

# ---- impairments ----

# lab_impair NS IFNAME LOSS_PCT DELAY_MS: packet loss and delay on IFNAME in
# NS. With sch_netem in the kernel: `tc qdisc ... netem loss LOSS_PCT%
# delay DELAY_MS ms` on IFNAME's egress (one direction). Without it (netem
# is often left out of container and CI kernels), LOSS_PCT% of the packets
# are dropped both ways with iptables -m statistic (mangle PREROUTING -i,
# POSTROUTING -o), and what leaves on IFNAME is held DELAY_MS by nfq_delay
# (tests/lab/nfq_delay.c, $NFQ_DELAY) through an NFQUEUE rule after the
# drop: the same delay, one direction, as netem would add. Sets LAB_IMPAIR
# to what was applied, for figures. lab_unimpair NS IFNAME undoes it.
LAB_NFQ_NUM=40
declare -A LAB_NFQ_PID=() # "NS IFNAME" -> PID of its nfq_delay
lab_impair() {
    local ns=$1 ifname=$2 loss=$3 delay=$4 p
    if ip netns exec "$ns" tc qdisc add dev "$ifname" root netem loss "$loss%" delay "${delay}ms" \
        2>/dev/null; then
        # shellcheck disable=SC2034 # read by scenario scripts
        LAB_IMPAIR="netem on $ns/$ifname egress: loss $loss%, delay $delay ms"
        return 0
    fi
    local what="loss $loss% both ways"
    if ((delay > 0)) && [[ -n ${NFQ_DELAY:-} && -x ${NFQ_DELAY:-} ]]; then
        local q=$((LAB_NFQ_NUM++))
        ip netns exec "$ns" "$NFQ_DELAY" "$q" "$delay" 2>>"$LAB_DIR/log/nfq_delay.log" &
        LAB_NFQ_PID["$ns $ifname"]=$!
        LAB_PIDS+=("$!")
        sleep 0.2 # bound to its queue before packets go there
        # --queue-bypass: were nfq_delay gone, packets would pass, not drop
        ip netns exec "$ns" iptables -t mangle -A POSTROUTING -o "$ifname" \
            -j NFQUEUE --queue-num "$q" --queue-bypass
        what+=", delay $delay ms egress (nfq_delay)"
    elif ((delay > 0)); then
        what+=" (no sch_netem and no nfq_delay: no delay)"
    fi
    p=$(awk -v l="$loss" 'BEGIN { printf "%.4f", l / 100 }')
    ip netns exec "$ns" iptables -t mangle -I PREROUTING -i "$ifname" \
        -m statistic --mode random --probability "$p" -j DROP
    ip netns exec "$ns" iptables -t mangle -I POSTROUTING -o "$ifname" \
        -m statistic --mode random --probability "$p" -j DROP
    # shellcheck disable=SC2034
    LAB_IMPAIR="iptables on $ns/$ifname: $what"
}

lab_unimpair() {
    local ns=$1 ifname=$2 rule
    if ip netns exec "$ns" tc qdisc show dev "$ifname" root 2>/dev/null | grep -q netem; then
        ip netns exec "$ns" tc qdisc del dev "$ifname" root
    fi
    while read -r rule; do
        [[ -n $rule ]] || continue
        # shellcheck disable=SC2086 # the rule's words, as iptables -S prints them
        ip netns exec "$ns" iptables -t mangle ${rule/#-A /-D }
    done < <(ip netns exec "$ns" iptables -t mangle -S |
        grep -E -- "^-A (PREROUTING -i|POSTROUTING -o) $ifname .*(statistic|NFQUEUE)")
    local pid=${LAB_NFQ_PID["$ns $ifname"]:-}
    if [[ -n $pid ]]; then
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
        unset 'LAB_NFQ_PID[$ns $ifname]'
    fi
}
