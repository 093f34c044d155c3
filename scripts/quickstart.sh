#!/usr/bin/env bash
# Sets up this machine, builds devenv-gw, registers you with your SSH key and runs the
# gateway on port 2222 in the foreground. Afterwards: ssh -p 2222 YOU@localhost
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
swift build -c release --product devenv-gw
bin=$(swift build -c release --product devenv-gw --show-bin-path)/devenv-gw

state=${DEVENV_GW_STATE_DIR:-$PWD/state}
export DEVENV_GW_STATE_DIR=$state

user=${DEVENV_GW_USER:-${SUDO_USER:-${USER:-$(id -un)}}}
# Names of system accounts in the workspace image cannot be workspace users.
case "$user" in root|daemon|bin|sys|sync|games|man|lp|mail|news|uucp|proxy|www-data|backup|list|irc|nobody|sshd|_apt) user=dev ;; esac

key=${DEVENV_GW_KEY:-$HOME/.ssh/id_ed25519.pub}
if [ ! -f "$key" ]; then
  mkdir -p "$HOME/.ssh" && chmod 700 "$HOME/.ssh"
  ssh-keygen -q -t ed25519 -N '' -f "${key%.pub}"
fi
if ! "$bin" keys "$user" >/dev/null 2>&1; then
  "$bin" adduser "$user" --key-file "$key"
fi

echo "devenv-gw: listening on port 2222; in another terminal: ssh -p 2222 $user@localhost" >&2
exec "$bin" serve --listen 0.0.0.0:2222 --hostkeys hostkeys
