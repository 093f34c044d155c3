#!/usr/bin/env bash
# Cold, started and warm login times through the engine backend (the host's dockerd) and
# the swarm backend (scripts/swarm-cluster.sh), with the real ssh client, N users each; then
# a 1 GiB upload through each gateway (swarm: to u2, placed on node2, not the manager's node).
# The upload is seeded data whose SHA-256 is checked in the workspace; a mismatch prints
# FAILED instead of a figure and the script exits 1.
#   bench/swarm/login_timings.sh [N] [BIN]
# cold: the login creates the workspace; started: it was stopped (engine: container
# stopped; swarm: service at 0 replicas); warm: it runs. Prints median and max per kind.
set -euo pipefail
cd "$(dirname "$0")/../.."
n=${1:-5}
bin=${2:-.build/debug/devenv-gw}
work=$(mktemp -d /tmp/devenv-login-timings.XXXXXX)
status=0
run=/run/devenv-swarm
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  docker ps -aq --filter label=devenv.instance=lteng | xargs -r docker rm -f >/dev/null
  docker volume ls -q --filter label=devenv.instance=lteng | xargs -r docker volume rm >/dev/null
  docker network rm lteng >/dev/null 2>&1 || true
  python3 - <<'PY' || true
import sys; sys.path.insert(0, 'bench/swarm'); from engine_api import *
st, ss, _ = api('GET', '/services?filters=' + json.dumps({'label': ['devenv.instance=ltswarm']}))
for s in ss: api('DELETE', '/services/' + s['ID'])
PY
  sleep 5
  for node in devenv-swarm-node1 devenv-swarm-node2 devenv-swarm-node3; do
    docker -H "unix://$run/$node/docker.sock" volume ls -q --filter label=devenv.instance=ltswarm \
      | xargs -r docker -H "unix://$run/$node/docker.sock" volume rm >/dev/null 2>&1 || true
  done
  rm -rf "$work"
}
trap cleanup EXIT
# A key per user: a key belongs to one user only.
for i in $(seq 1 "$n"); do ssh-keygen -q -t ed25519 -N '' -f "$work/id_u$i"; done
cat >"$work/engine.toml" <<TOML
state-dir = "$work/engine"
prefix = "lteng"
listen = ["127.0.0.1:2391"]
egress-deny = []
audit = "stderr"
TOML
cat >"$work/swarm.toml" <<TOML
state-dir = "$work/swarm"
prefix = "ltswarm"
listen = ["127.0.0.1:2392"]
egress-deny = []
audit = "stderr"
backend = "swarm"
# Timing only: no node guard (it would need the gateway image on every node).
swarm-node-guard = "none"
swarm-manager = "unix://$run/devenv-swarm-node1/docker.sock"
swarm-node-engines = ["devenv-swarm-node1=unix://$run/devenv-swarm-node1/docker.sock", "devenv-swarm-node2=unix://$run/devenv-swarm-node2/docker.sock", "devenv-swarm-node3=unix://$run/devenv-swarm-node3/docker.sock"]
TOML
login() {  # port user -> seconds
  local t0 t1
  t0=$(date +%s.%N)
  ssh -F /dev/null -p "$1" -i "$work/id_$2" -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=no \
    -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR "$2@127.0.0.1" true
  t1=$(date +%s.%N)
  echo "$t1 - $t0" | bc
}
stats() { sort -n | awk '{a[NR]=$1} END {printf "median %.2f s, max %.2f s (n=%d)\n", a[int((NR+1)/2)], a[NR], NR}'; }
for backend in engine swarm; do
  config=$work/$backend.toml
  port=$([ "$backend" = engine ] && echo 2391 || echo 2392)
  for i in $(seq 1 "$n"); do "$bin" adduser "u$i" --key-file "$work/id_u$i.pub" --config "$config" >/dev/null 2>&1; done
  "$bin" serve --config "$config" >"$work/$backend.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 100); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
  for i in $(seq 1 "$n"); do login "$port" "u$i"; done >"$work/$backend.cold"
  for i in $(seq 1 "$n"); do login "$port" "u$i"; done >"$work/$backend.warm"
  # Stopped the way an idle stop does it, through the admin command's backend.
  for i in $(seq 1 "$n"); do
    if [ "$backend" = engine ]; then docker stop -t 2 "lteng-u$i" >/dev/null
    else python3 -c "
import sys; sys.path.insert(0, 'bench/swarm'); from engine_api import *
st, s, _ = api('GET', '/services/ltswarm-u$i'); sp = s['Spec']; sp['Mode']['Replicated']['Replicas'] = 0
api('POST', '/services/ltswarm-u$i/update?version=%d' % s['Version']['Index'], sp)"
    fi
  done
  sleep 15
  for i in $(seq 1 "$n"); do login "$port" "u$i"; done >"$work/$backend.started"
  for kind in cold started warm; do printf '%-6s %-8s %s\n' "$backend" "$kind" "$(stats <"$work/$backend.$kind")"; done
  user=$([ "$backend" = engine ] && echo u1 || echo u2)
  # Seeded pseudo-random data (as bench/run.sh), hashed on both ends: the figure is printed
  # only when what arrived is what was sent.
  t0=$(date +%s.%N)
  arrived=$( (set +o pipefail; openssl enc -aes-128-ctr -pass pass:devenv-bench -nosalt -pbkdf2 </dev/zero 2>/dev/null \
      | head -c 1073741824) | tee >(openssl dgst -sha256 -r | cut -c1-64 >"$work/sent.sha256") \
    | ssh -F /dev/null -p "$port" -i "$work/id_$user" -o IdentitiesOnly=yes -o BatchMode=yes \
      -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR "$user@127.0.0.1" \
      'sha256sum | cut -c1-64')
  t1=$(date +%s.%N)
  sleep 1  # the tee'd hash finishes writing
  if [ "$arrived" != "$(cat "$work/sent.sha256")" ]; then
    printf '%-6s 1 GiB upload to %s: FAILED (SHA-256 of what arrived differs)\n' "$backend" "$user"
    status=1
    continue
  fi
  printf '%-6s 1 GiB upload to %s: %.1f s, %.0f MB/s (SHA-256 checked)\n' "$backend" "$user" "$(echo "$t1 - $t0" | bc)" \
    "$(echo "1073.741824 / ($t1 - $t0)" | bc -l)"
done
exit "$status"
