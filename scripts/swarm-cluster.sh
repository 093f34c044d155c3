#!/usr/bin/env bash
# A three-node Docker Swarm on this one machine, for the swarm backend's tests:
# three Docker engines in privileged containers of the host's dockerd, on a bridge
# network of their own, joined into one swarm (one manager, two workers), each with
# the workspace image loaded.
#
#   scripts/swarm-cluster.sh up       create or repair the cluster; idempotent
#   scripts/swarm-cluster.sh status   nodes, engines and images
#   scripts/swarm-cluster.sh down     remove the nodes, their volumes, the network and routes
#   scripts/swarm-cluster.sh down --all   also the node image (the next `up` rebuilds it
#                                     with apt, about a minute)
#   scripts/swarm-cluster.sh env      print DOCKER_HOST for the manager
#
# The host's own dockerd never joins a swarm: everything swarm lives inside the node
# containers. Each node's engine also listens on a unix socket in a host directory,
# $DEVENV_SWARM_RUN/<node>/docker.sock, so the gateway reaches the manager (and a
# node's archive API) without a TCP port; and on tcp://<address>:2376 with TLS client
# certificates only, for the tests of the production layout (SwarmTLSTests).
set -euo pipefail
cd "$(dirname "$0")/.."

readonly network=devenv-swarm
readonly subnet=10.213.0.0/24
# The host's address on that network: where the gateway's connections to workspaces come from.
readonly gateway_address=10.213.0.1
readonly nodes=(devenv-swarm-node1 devenv-swarm-node2 devenv-swarm-node3)
readonly addresses=(10.213.0.11 10.213.0.12 10.213.0.13)
readonly node_image=devenv-swarm-node
readonly workspace_image=${DEVENV_GW_IMAGE:-devenv-workspace:latest}
# The workspace network: on each node a bridge with inter-container traffic off, with a
# subnet of its own (10.214.N.0/24), joined as one swarm-scoped network that services use.
readonly workspace_network=devenv-ws
readonly run_dir=${DEVENV_SWARM_RUN:-/run/devenv-swarm}
# Each engine also listens on tcp://<address>:2376 with TLS client certificates, as
# production nodes would: a test CA, a server certificate per node and the gateway's
# client certificate live here (docker-tls-dir = $tls_dir/client).
readonly tls_dir=$run_dir/tls
# Everything `up` creates on the host's engine carries this label; `down` removes by it.
readonly label=devenv-swarm.cluster=test

log() { printf 'swarm-cluster: %s\n' "$*" >&2; }
node_docker() { local node=$1; shift; docker -H "unix://$run_dir/$node/docker.sock" "$@"; }

build_node_image() {
  docker image inspect debian:bookworm-slim >/dev/null 2>&1 || bash scripts/setup.sh --no-image
  # The layer cache makes this a no-op after the first build.
  local out
  out=$(docker build -q --label "$label" -t "$node_image" scripts/swarm-node 2>&1) || { printf '%s\n' "$out" >&2; exit 1; }
}

ensure_network() {
  docker network inspect "$network" >/dev/null 2>&1 && return
  log "creating network $network ($subnet)"
  docker network create --driver bridge --subnet "$subnet" --gateway "$gateway_address" --label "$label" \
    "$network" >/dev/null
}

# Each node's bridge config (`--config-only`), then the swarm network made from them,
# and a host route to each node's workspace subnet through that node.
ensure_workspace_network() {
  local i node manager=${nodes[0]}
  for i in "${!nodes[@]}"; do
    node=${nodes[$i]}
    node_docker "$node" network inspect "$workspace_network-config" >/dev/null 2>&1 \
      || node_docker "$node" network create --config-only --subnet "10.214.$((i + 1)).0/24" \
           -o com.docker.network.bridge.enable_icc=false -o "com.docker.network.bridge.name=$workspace_network" \
           "$workspace_network-config" >/dev/null
    ip route replace "10.214.$((i + 1)).0/24" via "${addresses[$i]}"
  done
  node_docker "$manager" network inspect "$workspace_network" >/dev/null 2>&1 \
    || node_docker "$manager" network create --driver bridge --scope swarm --config-from "$workspace_network-config" \
         "$workspace_network" >/dev/null
}

# A test CA, each node's server certificate (for its address) and the gateway's client
# certificate, made once (EC P-256, ten years).
ensure_tls() {
  [ -f "$tls_dir/client/key.pem" ] && return
  log "making the test swarm's TLS certificates in $tls_dir"
  local i node work
  work=$(mktemp -d)
  mkdir -p "$tls_dir/client"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3650 \
    -subj /CN=devenv-swarm-test-ca -keyout "$work/ca-key.pem" -out "$tls_dir/ca.pem" 2>/dev/null
  issue() {  # DIR SUBJECT EXTENSIONS
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "$2" \
      -keyout "$1/key.pem" -out "$work/req.pem" 2>/dev/null
    printf '%s\n' "$3" >"$work/ext.cnf"
    openssl x509 -req -in "$work/req.pem" -CA "$tls_dir/ca.pem" -CAkey "$work/ca-key.pem" -CAcreateserial \
      -days 3650 -extfile "$work/ext.cnf" -out "$1/cert.pem" 2>/dev/null
    cp "$tls_dir/ca.pem" "$1/ca.pem"
    chmod 600 "$1/key.pem"
  }
  for i in "${!nodes[@]}"; do
    node=${nodes[$i]}
    mkdir -p "$tls_dir/$node"
    issue "$tls_dir/$node" "/CN=$node" "subjectAltName=IP:${addresses[$i]}
extendedKeyUsage=serverAuth"
  done
  issue "$tls_dir/client" /CN=devenv-gw "extendedKeyUsage=clientAuth"
  rm -rf "$work"
}

start_nodes() {
  local i node state
  for i in "${!nodes[@]}"; do
    node=${nodes[$i]}
    state=$(docker container inspect -f '{{.State.Status}}' "$node" 2>/dev/null) || state=absent
    # A node made from an older node image is made again; its engine's data (swarm
    # membership, images, volumes) is on its volume and stays.
    # So is one made before its engine listened with TLS.
    if [ "$state" != absent ] && { [ "$(docker container inspect -f '{{.Image}}' "$node")" != "$(docker image inspect -f '{{.Id}}' "$node_image")" ] \
         || ! docker container inspect -f '{{.Args}}' "$node" | grep -q -- --tlsverify; }; then
      log "recreating $node from the current $node_image"
      # Stopped, not killed: see node-entrypoint.sh.
      docker stop -t 60 "$node" >/dev/null
      docker rm "$node" >/dev/null
      state=absent
    fi
    case $state in
      running) ;;
      absent)
        log "starting $node at ${addresses[$i]}"
        mkdir -p "$run_dir/$node"
        # What --privileged would give, which this host's engine cannot (its own bounding
        # set lacks CAP_SYS_RESOURCE, and --privileged asks for every capability):
        # all other capabilities, no seccomp or AppArmor profile, writable /proc/sys, and
        # the host's cgroup v1 tree (each node's containers under a parent of its own).
        # Its data lives on a volume: overlay2 cannot stack on the container's own root.
        docker run -d --name "$node" --hostname "$node" --label "$label" \
          --cap-add ALL --cap-drop SYS_RESOURCE --security-opt seccomp=unconfined \
          --security-opt apparmor=unconfined --security-opt systempaths=unconfined \
          --volume /sys/fs/cgroup:/sys/fs/cgroup:rw --tmpfs /run \
          --network "$network" --ip "${addresses[$i]}" --env "DEVENV_WS_SUBNET=10.214.$((i + 1)).0/24" \
          --volume "$node-data:/var/lib/docker" --volume "$run_dir/$node:/run/devenv-swarm" \
          --volume "$tls_dir/$node:/etc/devenv-tls:ro" \
          "$node_image" --cgroup-parent "/$node" --tlsverify --tlscacert /etc/devenv-tls/ca.pem \
          --tlscert /etc/devenv-tls/cert.pem --tlskey /etc/devenv-tls/key.pem -H tcp://0.0.0.0:2376 >/dev/null ;;
      *)
        log "restarting $node ($state)"
        docker start "$node" >/dev/null ;;
    esac
  done
  for node in "${nodes[@]}"; do
    for _ in $(seq 1 120); do
      node_docker "$node" version >/dev/null 2>&1 && continue 2
      sleep 0.25
    done
    log "the engine in $node did not answer; docker logs $node:"; docker logs --tail 20 "$node" >&2; exit 1
  done
}

swarm_state() { node_docker "$1" info --format '{{.Swarm.LocalNodeState}}' 2>/dev/null; }

form_swarm() {
  local manager=${nodes[0]} token i
  if [ "$(swarm_state "$manager")" != active ]; then
    log "initialising the swarm on $manager"
    node_docker "$manager" swarm init --advertise-addr "${addresses[0]}" --listen-addr "${addresses[0]}:2377" >/dev/null
  fi
  token=$(node_docker "$manager" swarm join-token -q worker)
  for i in 1 2; do
    [ "$(swarm_state "${nodes[$i]}")" = active ] && continue
    log "joining ${nodes[$i]} as a worker"
    node_docker "${nodes[$i]}" swarm join --token "$token" --advertise-addr "${addresses[$i]}" "${addresses[0]}:2377" >/dev/null
  done
}

load_images() {
  local wanted node
  wanted=$(docker image inspect -f '{{.Id}}' "$workspace_image")
  for node in "${nodes[@]}"; do
    [ "$(node_docker "$node" image inspect -f '{{.Id}}' "$workspace_image" 2>/dev/null || true)" = "$wanted" ] && continue
    log "loading $workspace_image into $node"
    docker save "$workspace_image" | docker exec -i "$node" docker load -q >/dev/null
  done
}

up() {
  local begun=$SECONDS
  docker image inspect "$workspace_image" >/dev/null 2>&1 || bash scripts/setup.sh
  build_node_image
  ensure_network
  ensure_tls
  start_nodes
  form_swarm
  ensure_workspace_network
  load_images
  log "up in $((SECONDS - begun)) s; manager: DOCKER_HOST=unix://$run_dir/${nodes[0]}/docker.sock"
}

status() {
  local node
  for node in "${nodes[@]}"; do
    printf '%s: %s, engine %s, swarm %s, %s %s\n' "$node" \
      "$(docker container inspect -f '{{.State.Status}}' "$node" 2>/dev/null || echo absent)" \
      "$(node_docker "$node" version --format '{{.Server.Version}}' 2>/dev/null || echo unreachable)" \
      "$(swarm_state "$node" || echo unknown)" "$workspace_image" \
      "$(node_docker "$node" image inspect -f '{{.Id}}' "$workspace_image" 2>/dev/null | cut -c8-19 || echo missing)"
  done
  node_docker "${nodes[0]}" node ls 2>/dev/null || true
}

down() {
  local i node
  for i in "${!nodes[@]}"; do
    node=${nodes[$i]}
    # Only the routes `up` made: to a workspace subnet through this node.
    if ip route show "10.214.$((i + 1)).0/24" | grep -q "via ${addresses[$i]} "; then
      ip route del "10.214.$((i + 1)).0/24"
    fi
    if docker inspect "$node" >/dev/null 2>&1; then
      [ "$(docker inspect -f '{{index .Config.Labels "devenv-swarm.cluster"}}' "$node")" = test ] \
        || { log "$node exists but was not made by this script; leaving it"; continue; }
      log "removing $node"
      docker rm -f "$node" >/dev/null
    fi
    docker volume rm "$node-data" >/dev/null 2>&1 || true
    rm -rf "${run_dir:?}/$node"
  done
  rm -rf "${tls_dir:?}"
  rmdir "$run_dir" 2>/dev/null || true
  if [ "$(docker network inspect -f '{{index .Labels "devenv-swarm.cluster"}}' "$network" 2>/dev/null)" = test ]; then
    docker network rm "$network" >/dev/null
  fi
  if [ "${1:-}" = --all ] && [ "$(docker image inspect -f '{{index .Config.Labels "devenv-swarm.cluster"}}' "$node_image" 2>/dev/null)" = test ]; then
    docker rmi "$node_image" >/dev/null
  fi
  log "down"
}

case ${1:-} in
  up) up ;;
  down) down "${2:-}" ;;
  status) status ;;
  env) echo "DOCKER_HOST=unix://$run_dir/${nodes[0]}/docker.sock" ;;
  *) echo "usage: $0 up|down|status|env" >&2; exit 2 ;;
esac
