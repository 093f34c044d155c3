#!/usr/bin/env bash
# Runs every test against real components: sets up the machine (packages, dockerd,
# journald, images), builds, then runs the whole suite. Usage: scripts/test.sh [swift test args]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
swift build --build-tests
# Tests share one Docker engine and many processes: run them one at a time.
swift test --skip-build "$@"
