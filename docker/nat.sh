#!/bin/sh
# cohort-nat: the network pieces of the Compose test cluster
# (docker/compose.yml), in the image's "nat" target. Two roles:
#
#   cohort-nat router cone|symmetric WAN_IP
#       a NAT router between a site network and the "internet" network; the
#       container has one interface on each (WAN_IP is its address on the
#       internet side; the other interface is the site's). Needs NET_ADMIN
#       and net.ipv4.ip_forward=1 (compose: cap_add, sysctls).
#   cohort-nat route GATEWAY
#       a default route via GATEWAY (the site's router) in this network
#       namespace: run as the sidecar whose namespace a node container
#       shares (network_mode: service:...), so the node image needs no
#       privilege and no tools. Needs NET_ADMIN.
#
# Both then stay up (a node's namespace lives as long as its sidecar) and
# report ready through /run/cohort-nat.ready, which the healthcheck tests.
#
# The routers are the NAT lab's (tests/lab/lab.sh): "cone" is MASQUERADE,
# which keeps the source port when it is free (port-preserving, what TCP
# hole punching needs); "symmetric" is MASQUERADE --random-fully, a fresh
# port per connection, which no punch crosses. Both DROP unsolicited inbound
# traffic, forwarded or addressed to the router: a router answering with a
# RST or an ICMP error would break the port preservation punching relies on.
set -eu

die() {
    echo "cohort-nat: $*" >&2
    exit 1
}

# iface_with IP: the interface holding IPv4 address IP.
iface_with() {
    ip -o -4 addr show | awk -v ip="$1" '{ split($4, a, "/"); if (a[1] == ip) print $2 }'
}

stay_up() {
    touch /run/cohort-nat.ready
    trap 'exit 0' TERM INT
    while :; do
        sleep 3600 &
        wait $! || true
    done
}

router() {
    type=$1 wan_ip=$2
    case $type in
        cone) masq="MASQUERADE" ;;
        symmetric) masq="MASQUERADE --random-fully" ;;
        *) die "router: TYPE must be cone or symmetric, got '$type'" ;;
    esac
    wan=$(iface_with "$wan_ip")
    [ -n "$wan" ] || die "router: no interface holds the WAN address $wan_ip: $(ip -o -4 addr show)"
    # Docker names interfaces in an order of its own: the site side is the
    # other interface with an IPv4 address.
    lan=$(ip -o -4 addr show | awk -v w="$wan" '$2 != "lo" && $2 != w { print $2; exit }')
    [ -n "$lan" ] || die "router: no site interface besides $wan: $(ip -o -4 addr show)"
    [ "$(cat /proc/sys/net/ipv4/ip_forward)" = 1 ] ||
        die "router: net.ipv4.ip_forward is 0 (compose: sysctls net.ipv4.ip_forward=1)"
    # shellcheck disable=SC2086 # $masq is two words on purpose
    iptables -t nat -A POSTROUTING -o "$wan" -j $masq
    iptables -P FORWARD DROP
    iptables -A FORWARD -i "$lan" -o "$wan" -j ACCEPT
    iptables -A FORWARD -i "$wan" -o "$lan" -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
    iptables -P INPUT DROP
    iptables -A INPUT -i lo -j ACCEPT
    iptables -A INPUT -i "$lan" -j ACCEPT
    iptables -A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
    echo "cohort-nat: $type NAT router: site $lan -> internet $wan ($wan_ip), $masq"
    stay_up
}

route() {
    gw=$1
    ip route replace default via "$gw" || die "route: cannot set the default route via $gw"
    echo "cohort-nat: default route via $gw"
    stay_up
}

case ${1:-} in
    router)
        [ $# -eq 3 ] || die "usage: cohort-nat router cone|symmetric WAN_IP"
        router "$2" "$3"
        ;;
    route)
        [ $# -eq 2 ] || die "usage: cohort-nat route GATEWAY"
        route "$2"
        ;;
    *) die "usage: cohort-nat router cone|symmetric WAN_IP | cohort-nat route GATEWAY" ;;
esac
