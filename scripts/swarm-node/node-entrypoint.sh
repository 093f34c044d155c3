#!/bin/sh
# Runs dockerd. Besides its usual socket it listens on /run/devenv-swarm/docker.sock,
# a directory the host bind-mounts, so the host (the gateway) reaches this engine
# without any TCP port.
#
# With DEVENV_SWARM_GATEWAY set (an address), only that address may open connections
# into the workspace bridge (devenv-ws): the engine has no switch for that across nodes.
# Without it, a workspace on another node would reach this node's workspaces through
# both nodes' routing (the bridge's enable_icc=false only covers one node).
set -eu
mkdir -p /run/devenv-swarm
rm -f /run/devenv-swarm/docker.sock /var/run/docker.pid
dockerd -H unix:///var/run/docker.sock -H unix:///run/devenv-swarm/docker.sock "$@" &
pid=$!
trap 'kill -TERM $pid' TERM INT
if [ -n "${DEVENV_SWARM_GATEWAY:-}" ]; then
    # dockerd creates DOCKER-USER at start and never flushes it.
    i=0
    until iptables -L DOCKER-USER -n >/dev/null 2>&1 || [ $i -ge 200 ]; do sleep 0.1; i=$((i + 1)); done
    rule="-o devenv-ws -m conntrack --ctstate NEW ! -s $DEVENV_SWARM_GATEWAY -j DROP"
    # shellcheck disable=SC2086
    iptables -C DOCKER-USER $rule 2>/dev/null || iptables -I DOCKER-USER $rule
fi
wait $pid
