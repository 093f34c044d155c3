#!/usr/bin/env bash
# Runs every test against real components: sets up the machine (packages, dockerd,
# journald, images), builds, then runs the whole suite. Usage: scripts/test.sh [swift test args]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
swift build --build-tests
# The gateway image once per run (a release build of its own and Docker's layer cache),
# tagged for this checkout alone since checkouts may share the engine; GatewayImageTests
# use it rather than building it again, and it is removed at the end.
image="devenv-gw:test-$(pwd -P | sha256sum | cut -c1-12)"
trap 'docker rmi --force "$image" >/dev/null 2>&1 || true' EXIT
bash scripts/build-gateway-image.sh "$image"
export DEVENV_GW_TEST_GATEWAY_IMAGE=$image
# The scale benchmark as a smoke test: every login, session and echo works with 50 users at
# once (no timing is asserted), on the release binary the image build just made. It runs
# before the suite so that the suite's summary closes the run, and is left out when the
# suite was narrowed with arguments.
if [ $# -eq 0 ]; then
  gateway_bin=$(swift build -c release --static-swift-stdlib --product devenv-gw --scratch-path .build-gateway \
    --show-bin-path)/devenv-gw
  bash bench/scale.sh --users 50 --duration 5 --bin "$gateway_bin"
fi
# The three-node test swarm for SwarmTests (idempotent: about 1 s when it is up; it stays
# up for the next run, scripts/swarm-cluster.sh down removes it).
bash scripts/swarm-cluster.sh up
# Tests share one Docker engine and many processes: run them one at a time.
swift test --skip-build "$@"
