#!/usr/bin/env bash
# The whole test suite: installs the packages, builds everything and runs
# every test with ctest (two at a time). ctest's summary is the last output.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
./scripts/build.sh
# The libFuzzer targets, each for a bounded time (tests/fuzz; about 3 minutes).
FUZZ_SECONDS="${FUZZ_SECONDS:-30}" ./scripts/fuzz.sh
ctest --test-dir build -j2 --output-on-failure --timeout 300
