#!/usr/bin/env bash
# cohort demo: builds cohort, then sets up a throwaway three-node cluster in a
# temp dir exactly as an admin would: a cluster CA, node keys generated on the
# nodes, certificates issued by the CA, a signed roster with roles and sites,
# and one validated config per node. It ends by showing two refusals: a
# tampered roster and a node whose key is readable by others.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

bash deploy/deps.sh build
echo "building cohort..."
cmake -S . -B build/demo -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build/demo -j"$(nproc 2>/dev/null || echo 2)" >/dev/null
ctl=$root/build/demo/cohortctl
cohortd=$root/build/demo/cohortd

work=$(mktemp -d /tmp/cohort-demo.XXXXXX)
cd "$work"
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*" >&2; "$@"; }

step "1. the cluster CA (Ed25519; its key stays with the admin)"
run "$ctl" ca init --name demo --out ca

step "2. three nodes: each makes its own X25519 key, the CA certifies the public half"
nodes=(hq-1 hq-2 plant-1)
for n in "${nodes[@]}"; do
  run "$ctl" keygen --out "$n" >/dev/null
  run "$ctl" cert issue --ca ca --name "$n" --pub "$n/node.pub" --out "$n" | sed -n 1p
done
run openssl verify -CAfile ca/ca.crt hq-1/node.crt hq-2/node.crt plant-1/node.crt
run "$ctl" cert show hq-1/node.crt

step "3. the roster: who belongs, with which roles, at which site (signed by the CA)"
run "$ctl" roster init --cluster demo roster.yaml
port=7700
for n in "${nodes[@]}"; do
  site=${n%-*}
  roles=none
  [ "$n" = hq-1 ] && roles=relay,rendezvous
  run "$ctl" roster add roster.yaml --name "$n" --cert "$n/node.crt" --site "$site" \
    --roles "$roles" --endpoint "tcp://127.0.0.1:$port" | sed -n 1p
  port=$((port + 10))
done
run "$ctl" roster sign roster.yaml --ca ca
run "$ctl" roster verify roster.yaml --ca ca/ca.crt
run "$ctl" roster show roster.yaml

step "4. one config per node, each checked the way the daemon loads it"
port=7700
for n in "${nodes[@]}"; do
  cat >"$n/node.yaml" <<YAML
node:
  name: $n
  state_dir: state
identity:
  key: node.key
  cert: node.crt
trust:
  ca: [../ca/ca.crt]
  roster: ../roster.yaml
listen:
  address: 127.0.0.1
  port: $port
  punch_port: $((port + 1))
  advertise: ["tcp://127.0.0.1:$port"]
api:
  endpoint: ipc://$work/$n/api.sock
YAML
  mkdir -p "$n/state"
  run "$cohortd" --check-config -c "$n/node.yaml" >"$n/effective.yaml"
  port=$((port + 10))
done
echo "effective config of hq-1 (every key, defaults filled in):"
sed 's/^/    /' hq-1/effective.yaml

step "5. refusals"
cp roster.yaml tampered.yaml
cp roster.yaml.sig tampered.yaml.sig
sed -i 's/site: plant/site: hq/' tampered.yaml
printf '$ cohortctl roster verify tampered.yaml ...   (one site changed after signing)\n'
if "$ctl" roster verify tampered.yaml --ca ca/ca.crt; then
  echo "demo: a tampered roster was accepted" >&2
  exit 1
fi
chmod 644 plant-1/node.key
printf '$ cohortd --check-config -c plant-1/node.yaml   (key made world-readable)\n'
if "$cohortd" --check-config -c plant-1/node.yaml >/dev/null; then
  echo "demo: a world-readable key was accepted" >&2
  exit 1
fi
chmod 600 plant-1/node.key

step "done"
echo "everything is in $work:"
find . -maxdepth 2 -type f | sort | sed 's/^/    /'
echo "remove it with: rm -rf $work"
