#!/usr/bin/env bash
# Benchmarks the gateway against OpenSSH straight to the same workspace's sshd, in one
# run on one machine, and prints figures and ratios. It asserts one thing: every timed
# transfer moves seeded pseudo-random data and checks the SHA-256 of what arrived; a
# transfer whose data differs prints no figure, and the script then exits 1.
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
  bash scripts/remove-egress-rules.sh "$prefix"
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

# The data: the AES-128-CTR keystream of a fixed passphrase (OpenSSL makes the same bytes
# here and in the workspace image), never /dev/zero. What arrives is hashed inside the
# timed pipeline, on the receiving end: downloads on the client side of the pipe, uploads
# by the workspace. The direct OpenSSH runs do exactly the same, so both pay the generator
# and the hash and the ratios stay fair. openssl dgst hashes SHA-256 about 4x faster than
# coreutils' sha256sum here (SHA-NI), so it does not dominate the timing.
generator="openssl enc -aes-128-ctr -pass pass:devenv-bench -nosalt -pbkdf2 </dev/zero 2>/dev/null | head -c ${size_mb}M"
generate() { (set +o pipefail; eval "$generator"); }  # openssl ends on SIGPIPE when head is done
hash_stdin='openssl dgst -sha256 -r'
sent=$(generate | $hash_stdin | cut -d' ' -f1)

download() { "$1" "$generator" | $hash_stdin; }
upload() { generate | "$1" "$hash_stdin"; }
# Prints the seconds a transfer took, or nothing (with the reason on stderr) when the
# client failed or what arrived is not what was sent.
timed_transfer() {
  local start arrived
  start=$(now)
  if ! arrived=$("$1" "$2"); then
    echo "bench: $1 via ${2#via_}: the client failed" >&2; return 0
  fi
  local seconds; seconds=$(echo "$(now) - $start" | bc)
  if [ "${arrived%% *}" != "$sent" ]; then
    echo "bench: $1 via ${2#via_}: SHA-256 of what arrived (${arrived%% *}) differs from what was sent ($sent)" >&2
    return 0
  fi
  echo "$seconds"
}
dl_gw=$(timed_transfer download via_gateway); dl_direct=$(timed_transfer download via_direct)
ul_gw=$(timed_transfer upload via_gateway); ul_direct=$(timed_transfer upload via_direct)

# CPU per GiB through the gateway, from /proc: the gateway's threads (all of them, and the
# busiest one) against the workspace's sshd processes, for the same transfer. It goes over
# a ControlMaster connection so that the gateway's connection thread and sshd's session
# process are still alive when their times are read.
ticks_per_second=$(getconf CLK_TCK)
thread_ticks() {  # "TID TICKS" for every thread of process $1
  local task
  for task in /proc/"$1"/task/*; do
    [ -r "$task/stat" ] && awk -v tid="${task##*/}" '{sub(/^.*\) /, ""); print tid, $12 + $13}' "$task/stat"
  done
}
sshd_ticks() {  # total CPU ticks of the workspace's sshd processes
  docker top "$prefix-$user" -eo pid,comm 2>/dev/null | awk '$2 == "sshd" {print $1}' \
    | while read -r pid; do awk '{sub(/^.*\) /, ""); print $12 + $13}' "/proc/$pid/stat" 2>/dev/null; done \
    | awk '{t += $1} END {print t + 0}'
}
cpu_per_gib() {  # $1: download | upload; prints "gateway-total busiest-thread sshd" in s/GiB
  local control="$work/cpu.sock" before_threads after_threads sshd_before arrived
  ssh "${common[@]}" -i "$work/id" -p "$port" -M -S "$control" -N -f "$user@127.0.0.1"
  via_mux() { ssh "${common[@]}" -S "$control" -p "$port" "$user@127.0.0.1" "$@"; }
  via_mux true
  before_threads=$(thread_ticks "$gateway_pid"); sshd_before=$(sshd_ticks)
  arrived=$("$1" via_mux) || { echo "bench: CPU $1 via the gateway: the client failed" >&2; arrived=; }
  after_threads=$(thread_ticks "$gateway_pid"); local sshd_after; sshd_after=$(sshd_ticks)
  ssh "${common[@]}" -S "$control" -O exit "$user@127.0.0.1" 2>/dev/null || true
  if [ "${arrived%% *}" != "$sent" ]; then
    echo "bench: CPU $1 via the gateway: what arrived is not what was sent" >&2; return 0
  fi
  awk -v gib="$(echo "scale=6; $size_mb / 1024" | bc)" -v hz="$ticks_per_second" \
      -v sshd="$((sshd_after - sshd_before))" '
    FNR == NR { before[$1] = $2; next }
    { d = $2 - before[$1]; total += d; if (d > busiest) busiest = d }
    END { printf "%.2f %.2f %.2f\n", total / hz / gib, busiest / hz / gib, sshd / hz / gib }' \
    <(echo "$before_threads") <(echo "$after_threads")
}
cpu_dl=$(cpu_per_gib download); cpu_ul=$(cpu_per_gib upload)

rate() { if [ -n "$1" ]; then echo "$(echo "scale=1; $size_mb / $1" | bc) MB/s"; else echo FAILED; fi; }
ratio() { if [ -n "$1" ] && [ -n "$2" ]; then echo "scale=2; $1 / $2" | bc; else echo -; fi; }
printf '%-28s %12s %12s %8s\n' "measure" "gateway" "direct" "ratio"
printf '%-28s %11.3fs %12s %8s\n' "cold connect (median of 3)" "$(printf '%s\n' "${cold[@]}" | median)" "-" "-"
printf '%-28s %11.3fs %11.3fs %8s\n' "warm connect (median of $rounds)" "$warm_gw" "$warm_direct" "$(ratio "$warm_gw" "$warm_direct")"
printf '%-28s %14s %12s %8s\n' "download ${size_mb} MB" "$(rate "$dl_gw")" "$(rate "$dl_direct")" "$(ratio "$dl_direct" "$dl_gw")"
printf '%-28s %14s %12s %8s\n' "upload ${size_mb} MB" "$(rate "$ul_gw")" "$(rate "$ul_direct")" "$(ratio "$ul_direct" "$ul_gw")"
echo "(ratios: connect = gateway/direct, lower is better; throughput = gateway/direct, higher is better)"
echo "(each transfer: seeded data, SHA-256 of what arrived checked, the same way for gateway and direct)"
echo
printf '%-28s %12s %14s %12s %8s %8s\n' "CPU-s per GiB" "gateway" "busiest thread" "sshd" "ratio" "busiest"
for direction in download upload; do
  figures=$([ "$direction" = download ] && echo "$cpu_dl" || echo "$cpu_ul")
  if [ -z "$figures" ]; then printf '%-28s %12s\n' "$direction" FAILED; continue; fi
  read -r total busiest sshd <<<"$figures"
  printf '%-28s %12s %14s %12s %8s %8s\n' "$direction" "$total" "$busiest" "$sshd" \
    "$(ratio "$total" "$sshd")" "$(ratio "$busiest" "$sshd")"
done
echo "(CPU: the gateway's threads and the workspace sshd's processes during one transfer through the"
echo " gateway, from /proc; ratio = gateway total / sshd, busiest = the busiest gateway thread / sshd)"
if [ -z "$dl_gw" ] || [ -z "$dl_direct" ] || [ -z "$ul_gw" ] || [ -z "$ul_direct" ] || [ -z "$cpu_dl" ] || [ -z "$cpu_ul" ]; then
  echo "bench: a transfer did not deliver exactly what was sent; see above" >&2
  exit 1
fi
