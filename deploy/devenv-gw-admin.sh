#!/bin/sh
# Installed as /usr/local/bin/devenv-gw on the host: runs a devenv-gw admin command
# (adduser, deluser, users, keys, ps, ...) inside the running gateway container, so it uses
# the gateway's registry, config and journal. The audit trail records the container's
# root; the host user who ran the command through sudo is recorded too.
#   sudo devenv-gw adduser alice --key 'ssh-ed25519 AAAA... alice@laptop'
#   sudo devenv-gw adduser bob --key-file - < bob.pub
exec docker exec -i ${SUDO_USER:+--env SUDO_USER="$SUDO_USER"} "${DEVENV_GW_CONTAINER:-devenv-gw}" devenv-gw "$@"
