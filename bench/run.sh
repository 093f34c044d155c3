#!/usr/bin/env bash
# Benchmarks the gateway against OpenSSH straight to the same workspace's sshd, in one
# run on one machine, and prints figures and ratios. Not a test: it asserts nothing.
#   bench/run.sh [--size-mb N] [--rounds N]
set -euo pipefail
cd "$(dirname "$0")/.."
size_mb=1024
rounds=10
while [ $# -gt 0 ]; do
  case "$1" in
    --size-mb) size_mb=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    *) echo "usage: bench/run.sh [--size-mb N] [--rounds N]" >&2; exit 2 ;;
  esac
done

bash scripts/setup.sh >/dev/null
swift build -c release >/dev/null
bin=$(swift build -c release --show-bin-path)/devenv-gw

work=$(mktemp -d /tmp/devenv-bench.XXXXXX)
prefix=bench$$
port=$((20000 + RANDOM % 20000))
user=bencher
export DEVENV_GW_STATE_DIR=$work/state DEVENV_GW_PREFIX=$prefix
gateway_pid=
cleanup() {
  [ -n "$gateway_pid" ] && kill "$gateway_pid" 2>/dev/null && wait "$gateway_pid" 2>/dev/null
  docker rm -f "$prefix-$user" >/dev/null 2>&1 || true
  docker volume rm "$prefix-$user-home" >/dev/null 2>&1 || true
  docker network rm "$prefix" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

ssh-keygen -q -t ed25519 -N '' -f "$work/id"
"$bin" adduser "$user" --key-file "$work/id.pub" >/dev/null
"$bin" serve --listen "127.0.0.1:$port" --hostkeys "$work/hostkeys" >"$work/gateway.log" 2>&1 &
gateway_pid=$!
for _ in $(seq 100); do ssh-keyscan -p "$port" 127.0.0.1 >/dev/null 2>&1 && break; sleep 0.1; done

common=(-F /dev/null -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR)
via_gateway() { ssh "${common[@]}" -i "$work/id" -p "$port" "$user@127.0.0.1" "$@"; }
# Direct: the same sshd, reached with the gateway's upstream key (the only key it accepts).
via_direct() { ssh "${common[@]}" -i "$DEVENV_GW_STATE_DIR/upstream_ed25519_key" "$user@$address" "$@"; }

now() { date +%s.%N; }
seconds() { local start=$1; shift; "$@"; echo "$(now) - $start" | bc; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
time_of() { local s; s=$(now); "$@" >/dev/null; echo "$(now) - $s" | bc; }

# Cold connect: no container yet (it is created and started during the login).
cold=()
for _ in 1 2 3; do
  docker rm -f "$prefix-$user" >/dev/null 2>&1 || true
  cold+=("$(time_of via_gateway true)")
done
address=$(docker inspect -f "{{(index .NetworkSettings.Networks \"$prefix\").IPAddress}}" "$prefix-$user")

warm_gw=$(for _ in $(seq "$rounds"); do time_of via_gateway true; done | median)
warm_direct=$(for _ in $(seq "$rounds"); do time_of via_direct true; done | median)

download() { "$1" "head -c ${size_mb}M /dev/zero" | cat >/dev/null; }
upload() { head -c "${size_mb}M" /dev/zero | "$1" 'cat >/dev/null'; }
dl_gw=$(time_of download via_gateway); dl_direct=$(time_of download via_direct)
ul_gw=$(time_of upload via_gateway); ul_direct=$(time_of upload via_direct)

rate() { echo "scale=1; $size_mb / $1" | bc; }
ratio() { echo "scale=2; $1 / $2" | bc; }
printf '%-28s %12s %12s %8s\n' "measure" "gateway" "direct" "ratio"
printf '%-28s %11.3fs %12s %8s\n' "cold connect (median of 3)" "$(printf '%s\n' "${cold[@]}" | median)" "-" "-"
printf '%-28s %11.3fs %11.3fs %8s\n' "warm connect (median of $rounds)" "$warm_gw" "$warm_direct" "$(ratio "$warm_gw" "$warm_direct")"
printf '%-28s %9s MB/s %7s MB/s %8s\n' "download ${size_mb} MB" "$(rate "$dl_gw")" "$(rate "$dl_direct")" "$(ratio "$dl_direct" "$dl_gw")"
printf '%-28s %9s MB/s %7s MB/s %8s\n' "upload ${size_mb} MB" "$(rate "$ul_gw")" "$(rate "$ul_direct")" "$(ratio "$ul_direct" "$ul_gw")"
echo "(ratios: connect = gateway/direct, lower is better; throughput = gateway/direct, higher is better)"
