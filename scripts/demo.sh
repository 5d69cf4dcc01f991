#!/usr/bin/env bash
# The main demo: installs the packages, builds sluice and runs the
# Fashion-MNIST pipeline end to end. Extra arguments go to `sluice run`
# (for example -p epochs=10).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
./scripts/build.sh --target sluice data
spec=examples/fashion-softmax/pipeline.yaml
./build/sluice validate "$spec"
./build/sluice plan "$spec" "$@"
./build/sluice run "$spec" "$@"
./build/sluice show latest
