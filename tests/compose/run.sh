#!/usr/bin/env bash
# shellcheck disable=SC2317 # the checks are functions run by name (check NAME)
# tests/compose/run.sh: builds the real docker/Dockerfile and runs the
# multi-site cluster of docker/compose.yml on this machine, then checks that
# it works: every node healthy, every pair of nodes on the rung its sites
# allow (direct, punched, relayed via rv), a request across every pair, the
# NAT types as the nodes see them, /metrics, an idempotent setup and a clean
# leave. As root, from a clean clone:
#
#     bash tests/compose/run.sh
#
# What it starts (tests/compose/engine.sh): a network namespace of its own
# with a veth to the host, apt-cacher-ng on the host end of it (the image
# build's only way to Debian's packages: the host's own mirror), and a
# dockerd inside that namespace with its own data-root, socket and iptables.
# All of it runs in a private mount and PID namespace and is stopped by PID
# at the end; a killed run takes everything with it. The host's iptables,
# routes and apt settings are not touched.
#
# Kept between runs, so a rerun is fast: $COHORT_COMPOSE_CACHE (default
# /var/tmp/cohort-compose): the base image's tarball, the engine's data-root
# (images, BuildKit cache) and the proxy's package cache. Remove it to start
# cold. Logs of the last run: build/compose/.
#
# Environment:
#   COHORT_COMPOSE_CACHE   the cache directory (above)
#   COMPOSE_KEEP=1         leave the cluster up after the checks (passed or
#                          failed) until Ctrl-C, and print how to enter the
#                          sandbox to look around
set -euo pipefail

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
LOG=$SRC/build/compose

if [[ ${COHORT_COMPOSE_INSIDE:-} != 1 ]]; then
    if [[ $(id -u) != 0 ]]; then
        echo "tests/compose/run.sh: needs root (network namespace, dockerd, debootstrap)" >&2
        exit 1
    fi
    T_START=$(date +%s%N)
    bash "$SRC/deploy/deps.sh" compose
    # One run at a time on this machine: the veth name and address, the
    # cache and the engine's data-root are shared.
    mkdir -p /run/lock
    exec 9>/run/lock/cohort-compose.lock
    if ! flock -n 9; then
        echo "compose: waiting for another tests/compose/run.sh to finish (lock /run/lock/cohort-compose.lock)" >&2
        flock -w 1200 9 || { echo "compose: error: still locked after 20 min" >&2; exit 1; }
    fi
    export COHORT_COMPOSE_INSIDE=1 T_START
    # The mount points the sandbox makes on the host (empty outside it) are
    # removed afterwards when a run of this script made them; the list is
    # kept in a file so that the next run removes them after a killed one.
    made_list=/run/lock/cohort-compose.made
    remove_made() {
        local d
        [[ -f $made_list ]] || return 0
        while read -r d; do
            [[ -z $d ]] || rmdir "$d" 2>/dev/null || true
        done <"$made_list"
        rm -f "$made_list"
    }
    remove_made
    for d in /run/netns /run/docker /run/containerd /run/runc /run/cohort-compose; do
        [[ -e $d ]] || echo "$d" >>"$made_list"
    done
    unshare --mount --pid --fork --kill-child --mount-proc bash "$0" "$@" &
    sandbox=$!
    if [[ ${COMPOSE_KEEP:-0} == 1 ]]; then
        sleep 0.5
        echo "compose: COMPOSE_KEEP=1: enter the sandbox from another shell with:"
        echo "  nsenter -t $(pgrep -P "$sandbox") -m -p env DOCKER_HOST=unix:///run/cohort-compose/docker.sock bash"
        echo "  (then e.g. /usr/bin/docker exec cohortci_b_1 cohortctl peers; nsenter --net=/run/netns/cohort-docker curl ...)"
    fi
    # unshare ignores SIGINT and SIGTERM while it waits: hand them to the
    # script inside (PID 1 of the sandbox), which stops what it started.
    trap 'pkill -TERM -P "$sandbox" 2>/dev/null || true' INT TERM
    rc=0
    while :; do
        wait "$sandbox" && rc=0 || rc=$?
        kill -0 "$sandbox" 2>/dev/null || break
    done
    remove_made
    exit "$rc"
fi

# ---- inside the sandbox ----

export PATH=/usr/sbin:/usr/bin:/sbin:/bin:$PATH
T_START=${T_START:-$(date +%s%N)}
rm -rf "$LOG"
mkdir -p "$LOG"
ENGINE_LOG=$LOG
# shellcheck source=tests/compose/engine.sh
source "$SRC/tests/compose/engine.sh"

PROJECT=cohortci
COMPOSE_FILE=$SRC/docker/compose.yml
NODES=(rv a b c d)
PROXY_URL=http://$ENGINE_HOST_IP:$ENGINE_PROXY_PORT
# Deadlines (s); the image builds are bounded to 30 min, debootstrap to 15
# and docker-compose up to 5.
HEALTHY_LIMIT=60
RUNGS_LIMIT=90
REQUEST_LIMIT=30
# The rung each pair must end on, both sides agreeing (docker/compose.yml).
declare -A WANT=(
    ["rv a"]=direct ["rv b"]=direct ["rv c"]=direct ["rv d"]=direct
    ["a b"]=direct ["a c"]=direct ["a d"]=direct
    ["b d"]=punched
    ["b c"]="relayed via rv" ["c d"]="relayed via rv"
)
PAIRS=("rv a" "rv b" "rv c" "rv d" "a b" "a c" "a d" "b d" "b c" "c d")

PASSED=0
FAILED=0
COMPOSE_STARTED=0

say() {
    echo "compose: $*"
}

# dc ARGS...: docker-compose on the test cluster.
dc() {
    COMPOSE_INTERACTIVE_NO_CLI=1 docker-compose -p "$PROJECT" -f "$COMPOSE_FILE" "$@"
}

ctr() {
    echo "${PROJECT}_$1_1"
}

# ctl NODE ARGS...: cohortctl in NODE's container (the image's COHORT_API
# finds the node), bounded to 20 s.
ctl() {
    local n=$1
    shift
    timeout 20 "$ENGINE_DOCKER" exec "$(ctr "$n")" cohortctl "$@"
}

since() {
    engine_secs $(($(engine_now) - $1))
}

# ---- diagnostics ----

DIAG_SHOWN=0
diagnostics() {
    ((DIAG_SHOWN)) && return 0
    DIAG_SHOWN=1
    ((COMPOSE_STARTED)) || return 0
    local n f="$LOG/diagnostics.txt"
    {
        echo "---- docker-compose ps"
        dc ps 2>&1
        for n in "${NODES[@]}"; do
            echo "---- $n: cohortctl peers"
            ctl "$n" peers 2>&1
            echo "---- $n: cohortctl netcheck"
            ctl "$n" netcheck 2>&1
        done
        for n in nat-b nat-c nat-d; do
            echo "---- $n: iptables -t nat -L POSTROUTING -v -n; conntrack -L -p tcp"
            dk exec "$(ctr "$n")" iptables -t nat -L POSTROUTING -v -n 2>&1
            dk exec "$(ctr "$n")" conntrack -L -p tcp 2>&1 | head -n 40
        done
    } >"$f" 2>&1
    dc logs --no-color --timestamps >"$LOG/compose.log" 2>&1 || true
    {
        cat "$f"
        for n in setup "${NODES[@]}"; do
            echo "---- last 40 lines of $n's log"
            dc logs --no-color "$n" 2>&1 | tail -n 40
        done
        echo "---- full logs: $LOG (compose.log, diagnostics.txt, dockerd.log, build-*.log)"
    } | sed 's/^/  | /' >&2
}

# check NAME: runs the function NAME as one check of the smoke test.
check() {
    local t0 rc=0
    t0=$(engine_now)
    "$1" || rc=$?
    if ((rc == 0)); then
        PASSED=$((PASSED + 1))
        return 0
    fi
    FAILED=$((FAILED + 1))
    echo "compose: FAIL: $1 (after $(since "$t0") s)" >&2
    diagnostics
    finish
}

finish() {
    keep_if_asked
    say "$PASSED passed, $FAILED failed"
    ((FAILED == 0)) || exit 1
    exit 0
}

# COMPOSE_KEEP=1: the cluster stays up for a look around until this script
# is interrupted (the outer script printed how to enter the sandbox).
keep_if_asked() {
    [[ ${COMPOSE_KEEP:-0} == 1 ]] || return 0
    say "COMPOSE_KEEP=1: the cluster stays up until Ctrl-C (or SIGTERM) to this script"
    while :; do
        sleep 1 &
        wait $! || true
    done
}

cleanup() {
    local rc=$?
    set +e
    trap - EXIT INT TERM
    if ((rc != 0)) && ((FAILED == 0)) && [[ ${COMPOSE_KEEP:-0} != 1 ]]; then
        # Stopped or failed outside a check: still show what there is.
        diagnostics
    fi
    if ((COMPOSE_STARTED)); then
        dc down --volumes --remove-orphans --timeout 5 >>"$LOG/compose-down.log" 2>&1 ||
            echo "compose: docker-compose down failed (log: $LOG/compose-down.log)" >&2
    fi
    if [[ -n $ENGINE_DOCKERD_PID ]]; then
        # What a newer build left unnamed (the BuildKit cache is kept).
        dk image prune --force >/dev/null 2>&1
    fi
    engine_stop
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- the engine ----

T0=$(engine_now)
engine_sandbox
engine_network
engine_proxy
engine_dockerd
say "dockerd and apt-cacher-ng up in their namespace ($(since "$T0") s)"

T0=$(engine_now)
engine_base_image
say "base image $ENGINE_BASE_TAG $ENGINE_BASE_HOW ($(since "$T0") s)"

# ---- the images ----

# build TARGET TAG LOG: docker/Dockerfile with BuildKit through Debian's
# client; apt-get reaches Debian through the proxy.
build() {
    local target=$1 tag=$2 log=$3
    DOCKER_BUILDKIT=1 timeout 1800 "$ENGINE_DOCKER" build --progress=plain --file "$SRC/docker/Dockerfile" \
        --build-arg "http_proxy=$PROXY_URL" ${target:+--target "$target"} \
        --tag "$tag" "$SRC" >"$log" 2>&1
}

T0=$(engine_now)
# The NAT image and the node image at once: one mostly waits for packages,
# the other compiles.
build nat cohort-nat:latest "$LOG/build-nat.log" &
nat_build=$!
build_rc=0
build "" cohort:latest "$LOG/build-cohort.log" || build_rc=$?
nat_rc=0
wait "$nat_build" || nat_rc=$?
if ((build_rc != 0)); then
    tail -n 40 "$LOG/build-cohort.log" >&2
    engine_die "docker build of docker/Dockerfile (cohort:latest) failed (log: $LOG/build-cohort.log)"
fi
if ((nat_rc != 0)); then
    tail -n 40 "$LOG/build-nat.log" >&2
    engine_die "docker build of docker/Dockerfile --target nat (cohort-nat:latest) failed (log: $LOG/build-nat.log)"
fi
say "images built: cohort:latest $(dk image inspect -f '{{.Size}}' cohort:latest | awk '{ printf "%.0f MB", $1 / 1e6 }'), cohort-nat:latest ($(since "$T0") s)"

# ---- the cluster ----

T0=$(engine_now)
COMPOSE_STARTED=1
# Whatever a killed run left in the data-root.
dc down --volumes --remove-orphans --timeout 1 >"$LOG/compose-down.log" 2>&1 || true
if ! timeout 300 docker-compose -p "$PROJECT" -f "$COMPOSE_FILE" up -d --no-build >"$LOG/compose-up.log" 2>&1; then
    cat "$LOG/compose-up.log" >&2
    engine_die "docker-compose up failed (log: $LOG/compose-up.log)"
fi
T_UP=$T0
engine_bridge_nf_off
say "docker-compose up -d: $(grep -c . <<<"$(dc ps -q)") containers ($(since "$T0") s)"

# ---- the smoke test ----

health() {
    dk inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}' "$(ctr "$1")" 2>/dev/null
}

every_node_healthy() {
    local n h pending
    while :; do
        pending=()
        for n in "${NODES[@]}"; do
            h=$(health "$n") || h=missing
            [[ $h == healthy ]] || pending+=("$n:$h")
        done
        ((${#pending[@]} == 0)) && break
        if (($(engine_now) - T_UP > HEALTHY_LIMIT * 1000000000)); then
            echo "compose: not healthy $HEALTHY_LIMIT s after up: ${pending[*]}" >&2
            return 1
        fi
        sleep 0.5
    done
    T_HEALTHY=$(since "$T_UP")
    say "every node healthy (HEALTHCHECK cohortctl status) $T_HEALTHY s after up"
}

# link_of JSON PEER: "STATE LINK[ via RELAY]" for PEER in `peers --json`.
link_of() {
    local obj state link via
    obj=$(tr -d '\n' <<<"$1" | sed 's/}[[:space:]]*,[[:space:]]*{/}\n{/g' |
        grep -E "\"name\"[[:space:]]*:[[:space:]]*\"$2\"([^A-Za-z0-9._-]|$)") || {
        echo "absent"
        return 0
    }
    state=$(sed -n 's/.*"state"[[:space:]]*:[[:space:]]*"\([^"]*\)".*/\1/p' <<<"$obj")
    link=$(sed -n 's/.*"link"[[:space:]]*:[[:space:]]*"\([^"]*\)".*/\1/p' <<<"$obj")
    via=$(sed -n 's/.*"via"[[:space:]]*:[[:space:]]*"\([^"]*\)".*/\1/p' <<<"$obj")
    echo "$state $link${via:+ via $via}"
}

# rungs_now: fills GOT["X Y"] with how X sees Y, for both orders of every pair.
declare -A GOT=()
rungs_now() {
    local n p x y
    local -A json=()
    for n in "${NODES[@]}"; do
        json[$n]=$(ctl "$n" peers --json 2>/dev/null) || json[$n]=""
    done
    for p in "${PAIRS[@]}"; do
        read -r x y <<<"$p"
        GOT["$x $y"]=$(link_of "${json[$x]}" "$y")
        GOT["$y $x"]=$(link_of "${json[$y]}" "$x")
    done
}

pair_ok() {
    local x y
    read -r x y <<<"$1"
    [[ ${GOT["$x $y"]} == "up ${WANT[$1]}" && ${GOT["$y $x"]} == "up ${WANT[$1]}" ]]
}

rung_report() {
    local p x y mark
    for p in "${PAIRS[@]}"; do
        read -r x y <<<"$p"
        mark=ok
        pair_ok "$p" || mark=WRONG
        printf '  %-5s %-2s <-> %-2s want %-15s %s sees %s: %-18s %s sees %s: %s\n' "$mark" "$x" "$y" \
            "${WANT[$p]}" "$x" "$y" "${GOT["$x $y"]}" "$y" "$x" "${GOT["$y $x"]}"
    done
}

every_pair_on_its_rung() {
    local p all
    local -A first=()
    while :; do
        rungs_now
        all=1
        for p in "${PAIRS[@]}"; do
            if pair_ok "$p"; then
                [[ -v "first[$p]" ]] || first[$p]=$(since "$T_UP")
            else
                all=0
            fi
        done
        ((all)) && break
        if (($(engine_now) - T_UP > RUNGS_LIMIT * 1000000000)); then
            echo "compose: $RUNGS_LIMIT s after up, not every pair is on its rung:" >&2
            rung_report >&2
            return 1
        fi
        sleep 0.5
    done
    T_RUNGS=$(since "$T_UP")
    say "every pair on its rung $T_RUNGS s after up (punched b<->d at ${first["b d"]} s, relayed b<->c at ${first["b c"]} s, c<->d at ${first["c d"]} s):"
    rung_report
}

# netcheck_field NODE WHAT: a line of `cohortctl netcheck` without its label.
netcheck_field() {
    ctl "$1" netcheck | sed -n "s/^$2:[[:space:]]*//p"
}

nat_types_as_the_nodes_see_them() {
    local n v
    for n in b d; do
        v=$(netcheck_field "$n" nat)
        [[ $v == port-preserving* ]] || {
            echo "compose: netcheck on $n (behind a cone NAT): expected nat: port-preserving..., got: '$v'" >&2
            return 1
        }
    done
    v=$(netcheck_field c nat)
    [[ $v == "rewrites the port"* || $v == symmetric* ]] || {
        echo "compose: netcheck on c (behind a symmetric NAT): expected nat: rewrites the port..., got: '$v'" >&2
        return 1
    }
    say "netcheck: b and d see a port-preserving NAT, c one that rewrites the port"
}

# echoed FROM TO: a request from FROM to service echo-TO gets its echo.
echoed() {
    local payload="ping from $1 to $2 over ${3:-?}"
    REQ_OUT=$(ctl "$1" req "echo-$2" "$payload" --timeout 3000 2>&1) && [[ $REQ_OUT == "$payload" ]]
}

a_request_crosses_every_pair() {
    local n x y p t0 pending left
    for n in "${NODES[@]}"; do
        dk exec -d "$(ctr "$n")" cohortctl serve "echo-$n" --echo >/dev/null ||
            { echo "compose: cannot start cohortctl serve echo-$n in $(ctr "$n")" >&2; return 1; }
    done
    t0=$(engine_now)
    pending=()
    for p in "${PAIRS[@]}"; do
        read -r x y <<<"$p"
        pending+=("$x $y" "$y $x")
    done
    # Until every ordered pair got its echo once (a service is known across
    # the cluster a moment after it is served).
    while ((${#pending[@]})); do
        left=()
        for p in "${pending[@]}"; do
            read -r x y <<<"$p"
            echoed "$x" "$y" "${WANT["$x $y"]:-${WANT["$y $x"]}}" || left+=("$p")
        done
        pending=("${left[@]}")
        ((${#pending[@]})) || break
        if (($(engine_now) - t0 > REQUEST_LIMIT * 1000000000)); then
            echo "compose: after $REQUEST_LIMIT s, requests still unanswered: ${pending[*]/%/;}" >&2
            read -r x y <<<"${pending[0]}"
            echoed "$x" "$y" || true
            echo "compose: last answer to $x -> echo-$y: $REQ_OUT" >&2
            return 1
        fi
        sleep 0.5
    done
    say "a request crossed every pair both ways (${#PAIRS[@]} pairs, $((2 * ${#PAIRS[@]})) requests) within $(since "$t0") s"
    # The traffic moved no pair off its rung.
    rungs_now
    for p in "${PAIRS[@]}"; do
        pair_ok "$p" || {
            echo "compose: after the requests, a pair left its rung:" >&2
            rung_report >&2
            return 1
        }
    done
}

# metric TEXT NAME: the value of one sample line (NAME with its labels).
metric() {
    awk -v n="$2" '$1 == n { print $2; exit }' <<<"$1"
}

want_metric() {
    local node=$1 text=$2 name=$3 op=$4 want=$5 got
    got=$(metric "$text" "$name")
    if [[ -z $got ]] || ! awk -v g="$got" -v w="$want" -v op="$op" \
        'BEGIN { exit !((op == "==" && g == w) || (op == ">" && g > w)) }'; then
        echo "compose: /metrics of $node: $name is '${got:-missing}', want $op $want" >&2
        return 1
    fi
}

metrics_are_scraped() {
    local rv b code
    # From the Docker host (the docker namespace), as Prometheus would.
    rv=$(engine_in_ns curl -fsS --max-time 5 http://203.0.113.10:9464/metrics) ||
        { echo "compose: cannot scrape http://203.0.113.10:9464/metrics (rv)" >&2; return 1; }
    want_metric rv "$rv" cohort_up == 1 &&
        want_metric rv "$rv" 'cohort_peers{state="up"}' == 4 &&
        want_metric rv "$rv" 'cohort_links{rung="direct"}' == 4 &&
        want_metric rv "$rv" cohort_relay_frames_total ">" 0 &&
        want_metric rv "$rv" cohort_relay_bytes_total ">" 0 || return 1
    b=$(engine_in_ns curl -fsS --max-time 5 http://10.77.2.2:9464/metrics) ||
        { echo "compose: cannot scrape http://10.77.2.2:9464/metrics (b)" >&2; return 1; }
    want_metric b "$b" 'cohort_links{rung="direct"}' == 2 &&
        want_metric b "$b" 'cohort_links{rung="punched"}' == 1 &&
        want_metric b "$b" 'cohort_links{rung="relayed"}' == 1 &&
        want_metric b "$b" cohort_punch_ok_total ">" 0 || return 1
    code=$(engine_in_ns curl -sS -o /dev/null -w '%{http_code}' --max-time 5 http://203.0.113.10:9464/healthz)
    [[ $code == 200 ]] || { echo "compose: /healthz of rv answered $code, want 200" >&2; return 1; }
    say "/metrics: rv relayed $(metric "$rv" cohort_relay_frames_total) frames ($(metric "$rv" cohort_relay_bytes_total) bytes), 4 direct links; b: 2 direct, 1 punched, 1 relayed; /healthz 200"
}

setup_is_idempotent() {
    local before after out
    before=$(dk exec "$(ctr b)" sha256sum /etc/cohort/node.key /etc/cohort/node.crt /etc/cohort/roster.yaml)
    # The setup container compose made, started again as `up` would (docker
    # start -a attaches before it starts: no output is lost however fast it
    # exits, unlike docker-compose run).
    out=$(dk start --attach "$(ctr setup)" 2>&1) || {
        echo "compose: the setup service failed when run again:" >&2
        echo "$out" >&2
        return 1
    }
    grep -q "nothing to do" <<<"$out" || {
        echo "compose: the setup service, run again, did not say 'nothing to do':" >&2
        echo "$out" >&2
        return 1
    }
    after=$(dk exec "$(ctr b)" sha256sum /etc/cohort/node.key /etc/cohort/node.crt /etc/cohort/roster.yaml)
    [[ $before == "$after" ]] || { echo "compose: setup run again changed b's files" >&2; return 1; }
    say "setup run again: nothing to do, keys and roster unchanged"
}

nodes_leave_cleanly() {
    local n rc t0
    t0=$(engine_now)
    dc stop --timeout 10 "${NODES[@]}" >>"$LOG/compose-stop.log" 2>&1 ||
        { echo "compose: docker-compose stop failed (log: $LOG/compose-stop.log)" >&2; return 1; }
    for n in "${NODES[@]}"; do
        rc=$(dk inspect -f '{{.State.ExitCode}}' "$(ctr "$n")")
        [[ $rc == 0 ]] || {
            echo "compose: cohortd $n exited with status $rc after SIGTERM (want 0: a graceful leave)" >&2
            dc logs --no-color "$n" 2>&1 | tail -n 20 >&2
            return 1
        }
    done
    say "SIGTERM: every node left and exited 0 ($(since "$t0") s)"
}

check every_node_healthy
check every_pair_on_its_rung
check nat_types_as_the_nodes_see_them
check a_request_crosses_every_pair
check metrics_are_scraped
check setup_is_idempotent
check nodes_leave_cleanly
say "timings: healthy $T_HEALTHY s and every rung $T_RUNGS s after up; whole run $(since "$T_START") s"
finish
