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
swarm_tests_log=$(mktemp)
trap 'docker rmi --force "$image" >/dev/null 2>&1 || true; rm -f "$swarm_tests_log"' EXIT
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
# The three-node test swarm for SwarmTests (scripts/swarm-cluster.sh; idempotent, about
# 1 s when it is up; it stays up for the next run, `down` removes it).
if [ $# -gt 0 ]; then
  bash scripts/swarm-cluster.sh up
  # Tests share one Docker engine and many processes: run them one at a time.
  exec swift test --skip-build "$@"
fi
# The swarm tests use the swarm's own three engines and mostly wait on them (services
# scaling, tasks starting), so the swarm comes up and its tests run beside the rest of the
# suite, which runs one test at a time on the host's engine. SwiftPM lets one `swift test`
# at a time use .build, so the test bundle runs them directly, every class of the
# SwarmTests module by name (a new class is picked up by itself).
bundle=$(swift build --show-bin-path)/devenv-gwPackageTests.xctest
swarm_classes=$("$bundle" --list-tests | sed -n 's|^\(SwarmTests\.[A-Za-z0-9_]*\)/.*|\1|p' | sort -u | paste -sd, -)
[ -n "$swarm_classes" ] || { echo "test: the test bundle lists no SwarmTests" >&2; exit 1; }
{ bash scripts/swarm-cluster.sh up && "$bundle" "$swarm_classes"; } >"$swarm_tests_log" 2>&1 &
swarm_tests=$!
status=0
swift test --skip-build --skip SwarmTests || status=$?
swarm_status=0
wait "$swarm_tests" || swarm_status=$?
echo "=== The test swarm and SwarmTests (run beside the suite above) ==="
cat "$swarm_tests_log"
if [ "$status" -ne 0 ] || [ "$swarm_status" -ne 0 ]; then
  echo "test: FAILED (suite exit $status, swarm and SwarmTests exit $swarm_status)" >&2
  exit 1
fi
