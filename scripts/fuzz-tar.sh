#!/bin/sh
# Fuzzes the tar reader (Sources/Tar) with libFuzzer for SECONDS (default 180).
#
#   scripts/fuzz-tar.sh [SECONDS]
#
# Builds scripts/fuzz/TarFuzzTarget.swift with the Tar sources into one executable with
# -sanitize=fuzzer,address, seeds a corpus with archives GNU tar writes (ustar, PAX, GNU long
# names, links, fractional and negative times), and runs it on one core. Work files go to
# .build-fuzz/ (FUZZ_DIR to change): the corpus grows there across runs, and a crash leaves
# its input in .build-fuzz/artifacts/ (replay it: .build-fuzz/fuzz-tar FILE). Exits non-zero
# when the fuzzer found a crash.
set -eu
cd "$(dirname "$0")/.."
seconds=${1:-180}
work=${FUZZ_DIR:-.build-fuzz}
mkdir -p "$work/corpus" "$work/artifacts" "$work/seed-src"

echo "building $work/fuzz-tar"
swiftc -O -sanitize=fuzzer,address -parse-as-library -module-name TarFuzz \
    Sources/Tar/*.swift scripts/fuzz/TarFuzzTarget.swift -o "$work/fuzz-tar"

# Seeds: small archives of every kind the reader accepts.
src="$work/seed-src"
rm -rf "$src/h" && mkdir -p "$src/h/sub"
printf 'hello\n' > "$src/h/file"
ln -s file "$src/h/link"
ln "$src/h/file" "$src/h/hard"
mkfifo "$src/h/pipe"
long=$(printf 'd%.0s' $(seq 1 120))
mkdir -p "$src/h/$long" && printf x > "$src/h/$long/$long"
touch -d '1969-12-31 23:59:58.5' "$src/h/sub"
for format in ustar posix gnu oldgnu v7; do
    tar --format=$format -C "$src" -cf "$work/corpus/seed-$format.tar" h 2>/dev/null || true
done
tar --format=posix --pax-option='atime:=1.5,ctime:=-3.25' -C "$src" -cf "$work/corpus/seed-times.tar" h/file

echo "fuzzing for $seconds s"
"$work/fuzz-tar" -max_total_time="$seconds" -max_len=16384 -dict=scripts/fuzz/tar.dict -timeout=10 -rss_limit_mb=1024 \
    -artifact_prefix="$work/artifacts/" -print_final_stats=1 "$work/corpus"
