#!/bin/sh
# Runs dockerd. Besides its usual socket it listens on /run/devenv-swarm/docker.sock,
# a directory the host bind-mounts, so the host (the gateway) reaches this engine
# without a TCP port; the TCP listener with TLS, if any, comes in the arguments.
#
# The workspace bridge's firewall (only the gateway may connect in; egress-deny) is not
# set up here: the gateway runs its node guard on each node (docs/scale-out.md).
#
# The engine's local network store is cleared at every start: an engine that was away
# long enough for the manager to mark its node down (or was killed) keeps the swarm-scoped
# workspace network there and then rejects every task on it ("network ... exists",
# moby#37087). The swarm gives the node its swarm networks again; the workspace bridge's
# config-only network (DEVENV_WS_SUBNET) is made again here.
set -eu
mkdir -p /run/devenv-swarm
rm -f /run/devenv-swarm/docker.sock /var/run/docker.pid /var/lib/docker/network/files/local-kv.db
dockerd -H unix:///var/run/docker.sock -H unix:///run/devenv-swarm/docker.sock "$@" &
pid=$!
if [ -n "${DEVENV_WS_SUBNET:-}" ]; then
    i=0
    until docker version >/dev/null 2>&1 || [ $i -ge 200 ]; do sleep 0.1; i=$((i + 1)); done
    docker network create --config-only --subnet "$DEVENV_WS_SUBNET" -o com.docker.network.bridge.enable_icc=false \
        -o com.docker.network.bridge.name=devenv-ws devenv-ws-config >/dev/null || true
fi
# The trap waits for dockerd to finish: the container ending first would kill it, and an
# engine killed with swarm tasks on the workspace bridge cannot start them again
# ("network ... exists", moby#37087; docs/scale-out.md, "A node that goes away").
trap 'kill -TERM $pid; wait $pid' TERM INT
wait $pid
