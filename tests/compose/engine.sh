# shellcheck shell=bash
# shellcheck disable=SC2034 # ENGINE_* variables are read by run.sh
#
# engine.sh: a private Docker engine on this machine, for tests/compose/run.sh
# (sourced). Everything it starts lives in a sandbox the caller entered with
#   unshare --mount --pid --fork --kill-child --mount-proc
# so that a killed run leaves nothing behind: the processes die with the PID
# namespace, the mounts (overlay2, tmpfs) with the mount namespace, the
# network namespace with its last user, and the veth with it.
#
#   engine_sandbox          private mounts: /run/netns, /run/docker,
#                           /run/containerd, /run/runc, /etc/docker,
#                           $ENGINE_RUN
#   engine_network          network namespace $ENGINE_NS, one veth pair to
#                           the host: $ENGINE_HOST_IP (host) and
#                           $ENGINE_DOCK_IP (docker side); no route out
#   engine_proxy            apt-cacher-ng on $ENGINE_HOST_IP:3142 in the host
#                           namespace, its backend the host's own mirror
#   engine_dockerd          dockerd in $ENGINE_NS (nsenter --net), its own
#                           data-root, exec-root and socket (DOCKER_HOST)
#   engine_base_image       debian:bookworm-slim, made with debootstrap
#   engine_stop             stops what the others started, by PID
#
# Facts of this machine (../shared/DESIGN.md, "Docker"): dockerd must enter
# its namespace with nsenter, not `ip netns exec` (which remounts /sys and
# hides the cgroup mounts); bridge-nf-call-iptables must be 0 there (bridged
# frames would go through the FORWARD chain, where Docker's rules for
# internal networks drop a NAT router's traffic); no image can be pulled;
# BuildKit works through Debian's /usr/bin/docker only.
#
# The host's own network configuration and apt settings are not changed:
# the only thing added to the host namespace is the host end of the veth
# (with its /30 address), removed at the end. iptables rules exist only in
# the docker namespace and in containers.

ENGINE_NS=cohort-docker
ENGINE_VETH_HOST=cohort-dk0      # in the host namespace
ENGINE_VETH_DOCK=eth0            # in $ENGINE_NS
# RFC 2544 benchmarking range: routed nowhere, unlikely to be in use.
ENGINE_HOST_IP=198.18.77.1
ENGINE_DOCK_IP=198.18.77.2
ENGINE_PROXY_PORT=3142
ENGINE_RUN=/run/cohort-compose   # tmpfs: sockets, pid files, configs
ENGINE_CACHE=${COHORT_COMPOSE_CACHE:-/var/tmp/cohort-compose}
ENGINE_LOG=${ENGINE_LOG:-/tmp}
ENGINE_DOCKER=/usr/bin/docker
ENGINE_BASE_TAG=debian:bookworm-slim
ENGINE_BASE_HOW=""              # how engine_base_image got the base image
ENGINE_DOCKERD_PID=""
ENGINE_PROXY_PID=""
ENGINE_MOUNTS=()
# cgroups (one hierarchy for the whole machine: not namespaced here): the
# containers' parent, removed at the end, and BuildKit's "docker" parent
# when this run made it.
ENGINE_CGROUP_PARENT=cohort-compose
ENGINE_CGROUPS_BEFORE=""

engine_die() {
    echo "compose: error: $*" >&2
    exit 1
}

engine_secs() {
    local ds=$((($1 + 50000000) / 100000000))
    echo "$((ds / 10)).$((ds % 10))"
}

engine_now() {
    date +%s%N
}

# dk ARGS...: Debian's docker client against our engine.
dk() {
    DOCKER_HOST=$DOCKER_HOST "$ENGINE_DOCKER" "$@"
}

# ---- the sandbox ----

_engine_tmpfs() {
    mkdir -p "$1"
    mount -t tmpfs -o "size=$2,mode=0755" cohort-compose "$1" ||
        engine_die "cannot mount a tmpfs on $1"
    ENGINE_MOUNTS+=("$1")
}

engine_sandbox() {
    mount --make-rprivate / || engine_die "cannot make the mounts private (not in a mount namespace?)"
    # iproute2's netns directory (/var/run is a symlink to /run on Debian).
    _engine_tmpfs /run/netns 1m
    if [[ $(readlink -f /var/run/netns) != /run/netns ]]; then
        _engine_tmpfs /var/run/netns 1m
    fi
    # dockerd's default places, hidden: a containerd or dockerd of the host
    # (none here, but there could be) is not seen, and neither dockerd's
    # key.json nor BuildKit's runc state (/run/runc) lands on the host.
    _engine_tmpfs /run/docker 64m
    _engine_tmpfs /run/containerd 1m
    _engine_tmpfs /run/runc 16m
    _engine_tmpfs /etc/docker 1m
    _engine_tmpfs "$ENGINE_RUN" 256m
    mkdir -p "$ENGINE_CACHE" || engine_die "cannot create the cache directory $ENGINE_CACHE"
    export DOCKER_HOST=unix://$ENGINE_RUN/docker.sock
    ENGINE_CGROUPS_BEFORE=$(_engine_cgroups)
}

# _engine_cgroups: the cgroup directories a dockerd makes at the top of each
# hierarchy.
_engine_cgroups() {
    find /sys/fs/cgroup -mindepth 1 -maxdepth 2 -type d \
        \( -name docker -o -name "$ENGINE_CGROUP_PARENT" \) 2>/dev/null | sort
}

# ---- the network namespace and the veth ----

engine_network() {
    # A veth left by a run that was killed: its namespace is gone with the
    # run, so the pair is normally gone too; but be sure (we hold the lock).
    ip link del "$ENGINE_VETH_HOST" 2>/dev/null || true
    ip netns add "$ENGINE_NS" || engine_die "cannot create network namespace $ENGINE_NS"
    ip -n "$ENGINE_NS" link set lo up
    ip link add "$ENGINE_VETH_HOST" type veth peer name "$ENGINE_VETH_DOCK" netns "$ENGINE_NS" ||
        engine_die "cannot create the veth $ENGINE_VETH_HOST"
    # No IPv6 on the host end (no router solicitations from it).
    sysctl -qw "net.ipv6.conf.$ENGINE_VETH_HOST.disable_ipv6=1" 2>/dev/null || true
    ip addr add "$ENGINE_HOST_IP/30" dev "$ENGINE_VETH_HOST"
    ip link set "$ENGINE_VETH_HOST" up
    ip -n "$ENGINE_NS" addr add "$ENGINE_DOCK_IP/30" dev "$ENGINE_VETH_DOCK"
    ip -n "$ENGINE_NS" link set "$ENGINE_VETH_DOCK" up
    # Bridged frames bypass iptables in the docker namespace (br_netfilter
    # is on by default in every new namespace on this kernel; without the
    # module they bypass it anyway).
    if [[ -e /proc/sys/net/bridge/bridge-nf-call-iptables ]]; then
        ip netns exec "$ENGINE_NS" sysctl -qw net.bridge.bridge-nf-call-iptables=0 \
            net.bridge.bridge-nf-call-ip6tables=0 net.bridge.bridge-nf-call-arptables=0 ||
            engine_die "cannot set bridge-nf-call-iptables=0 in $ENGINE_NS"
    fi
}

# engine_in_ns CMD...: CMD in the docker namespace (only for plain tools:
# dockerd itself is started with nsenter).
engine_in_ns() {
    nsenter --net="/run/netns/$ENGINE_NS" "$@"
}

# ---- the host's Debian mirror ----

# _engine_host_uris: every http(s) URI of the host's apt sources, enabled ones.
_engine_host_uris() {
    local f
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [[ -f $f ]] || continue
        awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^https?:\/\//) { print $i; break } }' "$f"
    done
    for f in /etc/apt/sources.list.d/*.sources; do
        [[ -f $f ]] || continue
        # deb822: stanzas separated by blank lines; skip "Enabled: no".
        awk 'BEGIN { RS = ""; FS = "\n" }
             { en = 1; u = ""
               for (i = 1; i <= NF; i++) {
                 if ($i ~ /^Enabled:[ \t]*no/) en = 0
                 if ($i ~ /^URIs:/) { u = $i; sub(/^URIs:[ \t]*/, "", u) }
               }
               if (en && u != "") { n = split(u, a, /[ \t]+/); for (j = 1; j <= n; j++) print a[j] } }' "$f"
    done
}

# ENGINE_MIRROR, ENGINE_SECURITY: the host's Debian archive and security
# archive, as its apt sources name them.
engine_host_mirrors() {
    local uris
    uris=$(_engine_host_uris)
    ENGINE_MIRROR=$(grep -E '/debian/?$' <<<"$uris" | head -n 1 || true)
    ENGINE_SECURITY=$(grep -E '/debian-security/?$' <<<"$uris" | head -n 1 || true)
    [[ -n $ENGINE_MIRROR ]] ||
        engine_die "no Debian archive (an URI ending in /debian) in the host's apt sources (/etc/apt/sources.list*)"
    [[ $ENGINE_MIRROR == http://* ]] ||
        engine_die "the host's Debian mirror $ENGINE_MIRROR is not plain http: apt-cacher-ng cannot cache it for the image build"
    ENGINE_MIRROR=${ENGINE_MIRROR%/}
    ENGINE_SECURITY=${ENGINE_SECURITY%/}
}

# ---- apt-cacher-ng ----

engine_proxy() {
    local conf=$ENGINE_RUN/acng i
    mkdir -p "$conf" "$ENGINE_CACHE/acng" "$ENGINE_LOG/acng"
    # Our own configuration, not /etc/apt-cacher-ng: the packaged backend
    # list for Debian is empty. No remapping at all: the image's apt sources
    # are the host's own mirrors (engine_base_image), and the proxy fetches
    # exactly the URLs apt asks for, from the host namespace.
    cat >"$conf/acng.conf" <<EOF
CacheDir: $ENGINE_CACHE/acng
LogDir: $ENGINE_LOG/acng
SupportDir: /usr/lib/apt-cacher-ng
Port: $ENGINE_PROXY_PORT
BindAddress: $ENGINE_HOST_IP
PidFile: $ENGINE_RUN/acng.pid
SocketPath: $ENGINE_RUN/acng.sock
ForeGround: 1
ExThreshold: 4
ReportPage: acng-report.html
EOF
    apt-cacher-ng -c "$conf" >"$ENGINE_LOG/acng/stdout.log" 2>&1 &
    ENGINE_PROXY_PID=$!
    for ((i = 0; i < 100; i++)); do
        (exec 3<>"/dev/tcp/$ENGINE_HOST_IP/$ENGINE_PROXY_PORT") 2>/dev/null && return 0
        kill -0 "$ENGINE_PROXY_PID" 2>/dev/null ||
            engine_die "apt-cacher-ng exited at start; see $ENGINE_LOG/acng/"
        sleep 0.1
    done
    engine_die "apt-cacher-ng does not listen on $ENGINE_HOST_IP:$ENGINE_PROXY_PORT after 10 s; see $ENGINE_LOG/acng/"
}

# ---- dockerd ----

engine_dockerd() {
    local i
    # BuildKit's cache is kept (warm reruns), but bounded.
    cat >/etc/docker/daemon.json <<'EOF'
{
  "features": {"buildkit": true},
  "builder": {"gc": {"enabled": true, "defaultKeepStorage": "3GB"}}
}
EOF
    nsenter --net="/run/netns/$ENGINE_NS" dockerd \
        --config-file /etc/docker/daemon.json \
        --data-root "$ENGINE_CACHE/docker" \
        --exec-root /run/docker \
        --pidfile "$ENGINE_RUN/dockerd.pid" \
        --host "$DOCKER_HOST" \
        --storage-driver overlay2 \
        --cgroup-parent "/$ENGINE_CGROUP_PARENT" \
        --log-level warn \
        >"$ENGINE_LOG/dockerd.log" 2>&1 &
    ENGINE_DOCKERD_PID=$!
    for ((i = 0; i < 300; i++)); do
        dk version >/dev/null 2>&1 && break
        kill -0 "$ENGINE_DOCKERD_PID" 2>/dev/null || {
            tail -n 30 "$ENGINE_LOG/dockerd.log" >&2
            engine_die "dockerd exited at start (log: $ENGINE_LOG/dockerd.log)"
        }
        sleep 0.1
    done
    dk version >/dev/null 2>&1 || {
        tail -n 30 "$ENGINE_LOG/dockerd.log" >&2
        engine_die "dockerd does not answer on $DOCKER_HOST after 30 s (log: $ENGINE_LOG/dockerd.log)"
    }
}

# engine_bridge_nf_off: asserts bridged frames still bypass iptables in the
# docker namespace (dockerd may turn br_netfilter on for some networks).
engine_bridge_nf_off() {
    local v
    v=$(engine_in_ns cat /proc/sys/net/bridge/bridge-nf-call-iptables 2>/dev/null || echo 0)
    if [[ $v != 0 ]]; then
        echo "compose: note: dockerd turned bridge-nf-call-iptables on in $ENGINE_NS; turned off again" >&2
        engine_in_ns sysctl -qw net.bridge.bridge-nf-call-iptables=0
    fi
}

# ---- debian:bookworm-slim ----

# engine_base_image: imports debian:bookworm-slim unless the engine has it;
# the root file system is made once with debootstrap and kept as a tarball
# in the cache. Sets ENGINE_BASE_HOW (how it came).
engine_base_image() {
    local tar=$ENGINE_CACHE/base/bookworm-slim.tar root=$ENGINE_CACHE/base/rootfs
    if dk image inspect "$ENGINE_BASE_TAG" >/dev/null 2>&1; then
        ENGINE_BASE_HOW="in the engine already"
        return 0
    fi
    if [[ ! -s $tar ]]; then
        engine_host_mirrors
        mkdir -p "$ENGINE_CACHE/base"
        rm -rf "$root"
        # --variant=minbase: essential packages and apt only.
        timeout 900 debootstrap --variant=minbase bookworm "$root" "$ENGINE_MIRROR" \
            >"$ENGINE_LOG/debootstrap.log" 2>&1 || {
            tail -n 30 "$ENGINE_LOG/debootstrap.log" >&2
            rm -rf "$root"
            engine_die "debootstrap bookworm from $ENGINE_MIRROR failed (log: $ENGINE_LOG/debootstrap.log)"
        }
        _engine_slim "$root"
        tar --numeric-owner -C "$root" -cf "$tar.tmp" . || engine_die "cannot write $tar.tmp"
        mv "$tar.tmp" "$tar"
        rm -rf "$root"
        ENGINE_BASE_HOW="made with debootstrap from $ENGINE_MIRROR and imported"
    else
        ENGINE_BASE_HOW="imported from $tar"
    fi
    dk import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'CMD ["bash"]' \
        "$tar" "$ENGINE_BASE_TAG" >/dev/null || engine_die "docker import of $tar failed"
}

# _engine_slim ROOT: what Debian's official slim images do: no manuals,
# documentation (but copyrights) or translations, now and in what apt-get
# installs later; apt keeps no lists or packages in the image.
_engine_slim() {
    local r=$1
    cat >"$r/etc/dpkg/dpkg.cfg.d/docker-slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
EOF
    cat >"$r/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
    echo 'Acquire::Languages "none";' >"$r/etc/apt/apt.conf.d/docker-no-languages"
    echo 'Acquire::GzipIndexes "true";' >"$r/etc/apt/apt.conf.d/docker-gzip-indexes"
    echo 'Apt::AutoRemove::SuggestsImportant "false";' >"$r/etc/apt/apt.conf.d/docker-autoremove-suggests"
    # The host's mirrors, as the official image's debian.sources names
    # deb.debian.org.
    rm -f "$r/etc/apt/sources.list"
    {
        printf 'Types: deb\nURIs: %s\nSuites: bookworm bookworm-updates\nComponents: main\n' "$ENGINE_MIRROR"
        printf 'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n'
        if [[ -n $ENGINE_SECURITY ]]; then
            printf '\nTypes: deb\nURIs: %s\nSuites: bookworm-security\nComponents: main\n' "$ENGINE_SECURITY"
            printf 'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n'
        fi
    } >"$r/etc/apt/sources.list.d/debian.sources"
    find "$r/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete 2>/dev/null || true
    find "$r/usr/share/doc" -mindepth 1 -type d -empty -delete 2>/dev/null || true
    rm -rf "$r"/usr/share/man/* "$r"/usr/share/info/* "$r"/usr/share/groff/* \
        "$r"/usr/share/lintian/* "$r"/usr/share/locale/* \
        "$r"/var/lib/apt/lists/* "$r"/var/cache/apt/* "$r"/var/cache/debconf/*-old \
        "$r"/var/log/*.log "$r"/var/log/apt/* "$r"/root/.bash_history
    # debootstrap's own resolv.conf and hostname are the host's: Docker
    # provides both at run time.
    : >"$r/etc/resolv.conf"
    : >"$r/etc/hostname"
}

# ---- stopping ----

# _engine_stop_pid PID NAME SECONDS: SIGTERM, then SIGKILL after SECONDS.
_engine_stop_pid() {
    local pid=$1 name=$2 secs=$3 i
    [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || return 0
    for ((i = 0; i < secs * 10; i++)); do
        kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
        sleep 0.1
    done
    echo "compose: $name (pid $pid) did not stop within $secs s of SIGTERM: killed" >&2
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

engine_stop() {
    local m i
    _engine_stop_pid "$ENGINE_DOCKERD_PID" dockerd 30
    _engine_stop_pid "$ENGINE_PROXY_PID" apt-cacher-ng 10
    ENGINE_DOCKERD_PID="" ENGINE_PROXY_PID=""
    # Empty cgroups left by this engine (deepest first): ours, and a
    # "docker" one that was not there before this run.
    _engine_cgroups | while read -r m; do
        if [[ ${m##*/} == "$ENGINE_CGROUP_PARENT" ]] || ! grep -qxF "$m" <<<"$ENGINE_CGROUPS_BEFORE"; then
            find "$m" -depth -type d -exec rmdir {} \; 2>/dev/null || true
        fi
    done
    ip link del "$ENGINE_VETH_HOST" 2>/dev/null || true
    ip netns del "$ENGINE_NS" 2>/dev/null || true
    for ((i = ${#ENGINE_MOUNTS[@]} - 1; i >= 0; i--)); do
        m=${ENGINE_MOUNTS[$i]}
        umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
    done
    ENGINE_MOUNTS=()
}
