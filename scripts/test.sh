#!/usr/bin/env bash
# Runs every test against real components: sets up the machine (packages, dockerd,
# journald, images), builds, then runs the whole suite. Usage: scripts/test.sh [swift test args]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
swift build --build-tests
# The gateway image once per run (a release build of its own and Docker's layer cache);
# GatewayImageTests use it rather than building it again.
bash scripts/build-gateway-image.sh devenv-gw:latest
export DEVENV_GW_TEST_GATEWAY_IMAGE=devenv-gw:latest
# Tests share one Docker engine and many processes: run them one at a time.
swift test --skip-build "$@"
