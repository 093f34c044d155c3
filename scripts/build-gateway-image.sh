#!/usr/bin/env bash
# Builds the gateway image offline: a release build of devenv-gw with the Swift runtime
# linked statically, packaged by the top-level Dockerfile on debian:bookworm-slim.
# Usage: scripts/build-gateway-image.sh [TAG]   (default devenv-gw:latest)
# Needs what scripts/setup.sh prepares (toolchain, system libraries, dockerd, base image).
set -euo pipefail
cd "$(dirname "$0")/.."
tag=${1:-devenv-gw:latest}

# Its own build directory: `swift test` holds the lock on .build while the image test runs.
build=(swift build -c release --static-swift-stdlib --product devenv-gw --scratch-path .build-gateway)
"${build[@]}"
binary=$("${build[@]}" --show-bin-path)/devenv-gw

# The context holds only the binary: the repository's .build is gigabytes.
context=$(mktemp -d /tmp/devenv-gw-image.XXXXXX)
trap 'rm -rf "$context"' EXIT
cp "$binary" "$context/devenv-gw"
docker build -q -t "$tag" -f Dockerfile "$context" >/dev/null
echo "built $tag" >&2
