#!/usr/bin/env bash
# Prepares this machine for building, running and testing devenv-gw:
# system packages, dockerd, journald, the base image and the workspace image.
# Idempotent: a second run only checks and returns in a few seconds.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf 'setup: %s\n' "$*" >&2; }

packages=(
  docker.io libssh-dev libcurl4-openssl-dev libsqlite3-dev pkg-config
  debootstrap openssh-client rsync git tmux python3 curl ca-certificates
  systemd putty-tools dropbear-bin socat bc python3-paramiko python3-asyncssh python3-yaml
  python3-prometheus-client prometheus
  iptables iproute2
)

install_packages() {
  local missing=()
  for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return
  log "installing ${missing[*]}"
  # Third-party lists on some machines are unreachable; Debian's own are enough.
  apt-get update -qq || log "apt-get update reported errors; continuing with the lists it got"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

start_dockerd() {
  if docker version >/dev/null 2>&1; then return; fi
  log "starting dockerd"
  nohup dockerd >/var/log/dockerd.log 2>&1 &
  for _ in $(seq 1 60); do
    docker version >/dev/null 2>&1 && return
    sleep 0.5
  done
  log "dockerd did not start; see /var/log/dockerd.log"; exit 1
}

start_journald() {
  [ -S /run/systemd/journal/socket ] && pgrep -x systemd-journal >/dev/null && return
  log "starting systemd-journald"
  mkdir -p /run/systemd/journal /var/log/journal
  nohup /lib/systemd/systemd-journald >/dev/null 2>&1 &
  for _ in $(seq 1 40); do
    [ -S /run/systemd/journal/socket ] && return
    sleep 0.25
  done
  log "journald did not start"; exit 1
}

debian_mirror() {
  # Only live entries ("deb URL" or "URIs: URL"), never commented ones.
  grep -hE '^(deb |URIs:)' /etc/apt/sources.list /etc/apt/sources.list.d/* 2>/dev/null \
    | grep -oE 'https?://[^ ]+/debian/?' | grep -v security | head -n1
}

ensure_base_image() {
  local image=debian:bookworm-slim
  docker image inspect "$image" >/dev/null 2>&1 && return
  log "obtaining $image"
  if timeout 60 docker pull -q "$image" >/dev/null 2>&1; then return; fi
  log "no registry answered; bootstrapping $image with debootstrap"
  local dir; dir=$(mktemp -d /tmp/devenv-rootfs.XXXXXX)
  debootstrap --variant=minbase bookworm "$dir" "$(debian_mirror)" >/tmp/devenv-debootstrap.log 2>&1 \
    || { log "debootstrap failed; see /tmp/devenv-debootstrap.log"; exit 1; }
  tar -C "$dir" -c . | docker import - "$image" >/dev/null
  rm -rf "$dir"
}

build_workspace_image() {
  local image=${DEVENV_GW_IMAGE:-devenv-workspace:latest}
  # Rebuilds only when workspace/ changed: the layer cache makes a no-op fast.
  log "building $image"
  docker build -q -t "$image" workspace >/dev/null
}

install_packages
start_dockerd
start_journald
ensure_base_image
[ "${1:-}" = "--no-image" ] || build_workspace_image
log "ready"
