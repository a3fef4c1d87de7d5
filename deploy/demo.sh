#!/usr/bin/env bash
# cohort demo: builds cohort, then sets up a throwaway three-node cluster in a
# temp dir exactly as an admin would (a cluster CA, node keys generated on the
# nodes, certificates issued by the CA, a signed roster with roles and sites,
# one validated config per node), starts the three daemons on 127.0.0.1,
# shows every link up, makes a request to a service on another node,
# publishes to a topic another node prints, shows two refusals, and shuts the
# cluster down cleanly.
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

step "5. start the cluster: one cohortd per node"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT
for n in "${nodes[@]}"; do
  "$cohortd" -c "$n/node.yaml" 2>"$n/cohortd.log" &
  pids+=($!)
  echo "started cohortd for $n (pid $!, log $n/cohortd.log)"
done
ctl() { local n=$1 cmd=$2; shift 2; "$ctl" "$cmd" -c "$n/node.yaml" "$@"; }
printf 'waiting until every link is up on the direct rung'
for _ in $(seq 1 100); do
  up=0
  for n in "${nodes[@]}"; do
    c=$(ctl "$n" peers --json 2>/dev/null | grep -o '"link": *"direct"' | wc -l || true)
    up=$((up + c))
  done
  [ "$up" -ge 6 ] && break
  printf .; sleep 0.2
done
echo
run "$ctl" peers -c hq-1/node.yaml
if [ "$up" -lt 6 ]; then
  echo "demo: not every link came up" >&2
  tail -n 20 ./*/cohortd.log >&2
  exit 1
fi
echo "and the cluster as plant-1 sees it (SWIM gossip: alive, suspect, failed, left):"
run "$ctl" members -c plant-1/node.yaml

step "6. a service on plant-1, a request from hq-1"
ctl plant-1 serve greet --exec 'printf "hello from plant-1, you said: "; cat' &
server=$!
sleep 1
run "$ctl" req -c hq-1/node.yaml greet "hi there" --timeout 3000
kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true
printf '$ cohortctl req -c hq-1/node.yaml no.such.service x    (nobody serves it)\n' >&2
"$ctl" req -c hq-1/node.yaml no.such.service x || true

step "7. publish on hq-2, print on plant-1"
ctl plant-1 sub 'orders.>' --count 1 --timeout 10 >sub.out &
sub=$!
sleep 1
run "$ctl" pub -c hq-2/node.yaml orders.eu.new '{"id": 42, "item": "bolts"}'
wait "$sub" || true
echo "plant-1 printed:"
sed 's/^/    /' sub.out

step "8. refusals"
cp roster.yaml tampered.yaml
cp roster.yaml.sig tampered.yaml.sig
sed -i 's/site: plant/site: hq/' tampered.yaml
printf '$ cohortctl roster verify tampered.yaml ...   (one site changed after signing)\n'
if "$ctl" roster verify tampered.yaml --ca ca/ca.crt; then
  echo "demo: a tampered roster was accepted" >&2
  exit 1
fi
mkdir -p stranger && cp hq-2/node.yaml stranger/node.yaml
"$ctl" ca init --name evil --out evilca >/dev/null
"$ctl" cert issue --ca evilca --name hq-2 --out stranger >/dev/null
printf '$ cohortd --check-config   (hq-2 with a certificate from another CA)\n'
if "$cohortd" --check-config -c stranger/node.yaml >/dev/null; then
  echo "demo: a foreign certificate was accepted" >&2
  exit 1
fi

step "9. shut down: SIGTERM, each node says goodbye"
for i in "${!pids[@]}"; do
  kill -TERM "${pids[$i]}"
  wait "${pids[$i]}" && echo "${nodes[$i]} exited cleanly"
done
pids=()
echo "plant-1, the last to go, saw the others leave (not fail):"
grep -h "member.left" plant-1/cohortd.log | sed 's/^/    /' || true

step "done"
echo "everything is in $work:"
find . -maxdepth 2 -type f | sort | sed 's/^/    /'
echo "remove it with: rm -rf $work"
