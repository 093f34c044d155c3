#!/bin/sh
# Runs dockerd. Besides its usual socket it listens on /run/devenv-swarm/docker.sock,
# a directory the host bind-mounts, so the host (the gateway) reaches this engine
# without any TCP port.
#
# The workspace bridge's firewall (only the gateway may connect in; egress-deny) is not
# set up here: the gateway runs its node guard on each node (docs/scale-out.md).
set -eu
mkdir -p /run/devenv-swarm
rm -f /run/devenv-swarm/docker.sock /var/run/docker.pid
dockerd -H unix:///var/run/docker.sock -H unix:///run/devenv-swarm/docker.sock "$@" &
pid=$!
trap 'kill -TERM $pid' TERM INT
wait $pid
