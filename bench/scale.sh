#!/usr/bin/env bash
# The scale benchmark (issue 10): N users log in through one gateway from stopped
# workspaces, C at a time, each holding one interactive pty session; then typing at a set
# total rate with every keystroke timed until its echo. Prints the gateway's RSS, threads
# and descriptors (idle, all sessions open, after close and 10 s later), login wall time
# and p50/p99 next to `docker start` alone for the same stopped containers at the same
# concurrency, and echo p50/p99, through the gateway and straight to each workspace's sshd
# (same client, same rate, the two taking turns each second), as a table and as JSON.
#
#   bench/scale.sh [--users N] [--concurrency C] [--rate KEYS_PER_S] [--duration S]
#                  [--json FILE] [--no-build] [--bin PATH]
#
# Defaults: 500 users (about 4-5 GB of RAM for the workspaces), 20 at a time, 1,000 keys/s
# for 30 s. It checks what it measured (every login succeeded, every echo came back and
# matched, every connection thread ended) and exits 1 if not; timings are never asserted.
# Everything it made (containers, volumes, network, state) is removed on exit, even on failure.
# --bin runs another devenv-gw binary (to compare two builds; implies --no-build). Extra
# environment for the gateway (e.g. MALLOC_ARENA_MAX=2) passes through.
set -euo pipefail
cd "$(dirname "$0")/.."
users=500 concurrency=20 rate=1000 duration=30 json= build=1 bin=
usage() {
  echo "usage: bench/scale.sh [--users N] [--concurrency C] [--rate KEYS_PER_S] [--duration S] [--json FILE] [--no-build] [--bin PATH]" >&2
  exit 2
}
while [ $# -gt 0 ]; do
  case "$1" in
    --users) users=$2; shift 2 ;;
    --concurrency) concurrency=$2; shift 2 ;;
    --rate) rate=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --json) json=$2; shift 2 ;;
    --no-build) build=; shift ;;
    --bin) bin=$2; build=; shift 2 ;;
    *) usage ;;
  esac
done
[[ $users =~ ^[1-9][0-9]*$ && $users -le 9999 && $concurrency =~ ^[1-9][0-9]*$ ]] || usage

if [ -n "$build" ]; then
  bash scripts/setup.sh >/dev/null
  swift build -c release >/dev/null
fi
[ -n "$bin" ] || bin=$(swift build -c release --show-bin-path)/devenv-gw
[ -x "$bin" ] || { echo "bench: no devenv-gw binary at $bin (run without --no-build)" >&2; exit 1; }
python=/usr/bin/python3  # Debian's, with python3-asyncssh

work=$(mktemp -d /tmp/devenv-scale.XXXXXX)
prefix=scale$$
export DEVENV_GW_STATE_DIR=$work/state DEVENV_GW_PREFIX=$prefix DEVENV_GW_AUDIT=stderr
gateway_pid=
cleanup() {
  local status=$?
  if [ -n "$gateway_pid" ]; then
    kill "$gateway_pid" 2>/dev/null || true
    wait "$gateway_pid" 2>/dev/null || true
  fi
  # Only what this run made: the containers and volumes labelled with its prefix, its network
  # and the egress rules its gateway installed.
  bash scripts/remove-egress-rules.sh "$prefix"
  docker ps -aq --filter "label=devenv.instance=$prefix" | xargs -r docker rm -f >/dev/null 2>&1 || true
  docker volume ls -q --filter "label=devenv.instance=$prefix" | xargs -r docker volume rm -f >/dev/null 2>&1 || true
  # The engine sometimes keeps a stale endpoint of a removed container for a while.
  local try
  for try in 1 2 3 4 5; do
    if ! docker network inspect "$prefix" >/dev/null 2>&1 || docker network rm "$prefix" >/dev/null 2>&1; then break; fi
    [ "$try" = 5 ] && echo "bench: the engine would not remove network $prefix (stale endpoints); docker network rm it later" >&2
    sleep 2
  done
  if [ "$status" -ne 0 ] && [ -f "$work/gateway.log" ]; then
    echo "bench: failed; the gateway's last log lines:" >&2
    tail -n 20 "$work/gateway.log" >&2
  fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "bench: $users users, $concurrency at a time, $rate keys/s for $duration s (prefix $prefix)" >&2
"$python" bench/scale_client.py keys "$work/keys" "$users"
for i in $(seq 1 "$users"); do
  user=$(printf 'u%04d' "$i")
  "$bin" adduser "$user" --key-file "$work/keys/$user.pub" >/dev/null 2>>"$work/adduser.log" \
    || { cat "$work/adduser.log" >&2; exit 1; }
done

port=$("$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# Idle stopping off: the benchmark stops and starts the workspaces itself.
"$bin" serve --listen "127.0.0.1:$port" --hostkeys "$work/hostkeys" --idle-timeout 0 \
  --max-connections $((users + 100)) >"$work/gateway.log" 2>&1 &
gateway_pid=$!
for _ in $(seq 100); do ssh-keyscan -p "$port" 127.0.0.1 >/dev/null 2>&1 && break; sleep 0.1; done
kill -0 "$gateway_pid" 2>/dev/null || { echo "bench: the gateway did not start" >&2; exit 1; }
sleep 1  # let the keyscan connections end before the idle figures

# The direct comparison logs in with the gateway's upstream key; asyncssh cannot parse the
# OpenSSH-format file libssh writes, so it gets a copy that ssh-keygen has written again.
install -m 600 "$DEVENV_GW_STATE_DIR/upstream_ed25519_key" "$work/upstream_key"
ssh-keygen -q -p -P '' -N '' -f "$work/upstream_key" >/dev/null

client_args=(run --port "$port" --users "$users" --keys "$work/keys" --prefix "$prefix"
             --gateway-pid "$gateway_pid" --concurrency "$concurrency" --rate "$rate" --duration "$duration"
             --upstream-key "$work/upstream_key")
[ -n "$json" ] && client_args+=(--json "$json")
status=0
"$python" bench/scale_client.py "${client_args[@]}" || status=$?
# Where a login from a stopped workspace spent its time, from the gateway's "workspace
# ready" lines (seconds from TCP accept; auth is what total leaves over).
"$python" - "$work/gateway.log" <<'PY'
import re, sys
rows = [dict(re.findall(r"(\w+)=(\S+)", line)) for line in open(sys.argv[1]) if "workspace ready" in line]
rows = [r for r in rows if r.get("workspace") == "started"]
if rows:
    keys = ["total_s", "lock_wait_s", "engine_s", "sshd_wait_s", "upstream_s"]
    def p(values, q):
        values = sorted(values)
        return values[min(len(values) - 1, int(q * len(values)))]
    print("logins from stopped workspaces (%d), seconds:  %s" % (len(rows), "  ".join("%s p50 %.3f p99 %.3f" % (
        k[:-2], p([float(r[k]) for r in rows], 0.5), p([float(r[k]) for r in rows], 0.99)) for k in keys)))
PY
exit $status
