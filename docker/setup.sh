#!/bin/sh
# The "setup" service of docker/compose.yml: makes a cluster, exactly as an
# admin would with cohortctl, into Docker volumes, once.
#
#   /ca           the cluster CA (its key never leaves this volume: only
#                 this service mounts it)
#   /out/NAME/    one volume per node, mounted read-only at /etc/cohort in
#                 that node alone: node.key (0600, owned by the image's user
#                 cohort), node.crt, ca.crt, the signed roster and its
#                 signature, node.yaml (checked with cohortd --check-config)
#
# The cluster comes from the environment:
#   COHORT_CLUSTER  cluster name
#   COHORT_NODES    one NAME:SITE:ROLES:PUBLIC_IP per node, space separated;
#                   ROLES a comma list or empty; PUBLIC_IP empty for a node
#                   nobody can dial (it is then neither in the roster's
#                   endpoints nor in its listen.advertise)
#   COHORT_NODE_CONFIG  YAML sections appended to every node.yaml
#
# Idempotent: when the volumes already hold a complete cluster made from the
# same environment, it changes nothing (keys are never made twice). A
# different environment is refused: the nodes hold the old roster in their
# state volumes, so start over with `docker-compose down -v`. A run that died
# half way left nothing any node used (nodes start only after this service
# completed successfully), so it is simply made again.
set -eu

die() {
    echo "setup: error: $*" >&2
    exit 1
}

: "${COHORT_CLUSTER:?setup: COHORT_CLUSTER is not set}"
: "${COHORT_NODES:?setup: COHORT_NODES is not set}"
COHORT_NODE_CONFIG=${COHORT_NODE_CONFIG:-}
COHORT_UID=${COHORT_UID:-10001}

spec=$(printf '%s\n%s\n%s\n' "$COHORT_CLUSTER" "$COHORT_NODES" "$COHORT_NODE_CONFIG" | sha256sum | cut -c1-64)

all_files_there() {
    [ -f /ca/done ] || return 1
    for n in $COHORT_NODES; do
        name=${n%%:*}
        for f in node.key node.crt ca.crt roster.yaml roster.yaml.sig node.yaml; do
            [ -s "/out/$name/$f" ] || return 1
        done
    done
}

if [ -f /ca/done ]; then
    if [ "$(cat /ca/done)" != "$spec" ]; then
        die "the volumes hold a cluster made from another COHORT_CLUSTER/COHORT_NODES/COHORT_NODE_CONFIG; start over with: docker-compose down -v"
    fi
    if all_files_there; then
        echo "setup: cluster '$COHORT_CLUSTER' already set up: nothing to do"
        exit 0
    fi
    die "/ca/done is there but a node's files are missing; start over with: docker-compose down -v"
fi

echo "setup: making cluster '$COHORT_CLUSTER'"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
rm -rf /ca/* 2>/dev/null || true
cohortctl ca init --name "$COHORT_CLUSTER" --out /ca >/dev/null
cohortctl roster init --cluster "$COHORT_CLUSTER" "$work/roster.yaml" >/dev/null

for n in $COHORT_NODES; do
    IFS=: read -r name site roles ip <<EOF
$n
EOF
    if [ -z "$name" ] || [ -z "$site" ]; then
        die "COHORT_NODES: '$n' is not NAME:SITE:ROLES:PUBLIC_IP"
    fi
    [ -d "/out/$name" ] || die "no volume mounted at /out/$name for node $name"
    rm -rf "/out/$name"/* 2>/dev/null || true
    cohortctl cert issue --ca /ca --name "$name" --out "$work/$name" >/dev/null
    set -- roster add "$work/roster.yaml" --name "$name" --cert "$work/$name/node.crt" --site "$site"
    [ -z "$roles" ] || set -- "$@" --roles "$roles"
    [ -z "$ip" ] || set -- "$@" --endpoint "tcp://$ip:7700"
    cohortctl "$@" >/dev/null
done
cohortctl roster sign "$work/roster.yaml" --ca /ca >/dev/null
cohortctl roster verify "$work/roster.yaml" --ca /ca/ca.crt >/dev/null

for n in $COHORT_NODES; do
    IFS=: read -r name site roles ip <<EOF
$n
EOF
    d=/out/$name
    advertise="[]"
    [ -z "$ip" ] || advertise="[tcp://$ip:7700]"
    cp "$work/$name/node.key" "$work/$name/node.crt" /ca/ca.crt \
        "$work/roster.yaml" "$work/roster.yaml.sig" "$d/"
    cat >"$d/node.yaml" <<EOF
# node $name, site $site; made by docker/setup.sh
node:
  name: $name
  state_dir: /var/lib/cohort
identity:
  key: node.key
  cert: node.crt
trust:
  ca: [ca.crt]
  roster: roster.yaml
listen:
  address: 0.0.0.0
  port: 7700
  punch_port: 7701
  advertise: $advertise
$COHORT_NODE_CONFIG
EOF
    chmod 0600 "$d/node.key"
    chmod 0644 "$d/node.crt" "$d/ca.crt" "$d/roster.yaml" "$d/roster.yaml.sig" "$d/node.yaml"
    # The config as the node will load it (relative paths: same directory);
    # checked before the files change owner (this service keeps no
    # capability to read other users' files).
    if ! out=$(cohortd --check-config -c "$d/node.yaml" 2>&1 >/dev/null); then
        die "node.yaml of $name does not load: $out"
    fi
    chown -R "$COHORT_UID:$COHORT_UID" "$d"
    echo "setup: node $name (site $site${roles:+, roles $roles}${ip:+, endpoint tcp://$ip:7700})"
done
echo "$spec" >/ca/done
echo "setup: done: $(cohortctl roster show "$work/roster.yaml" | head -n 1)"
