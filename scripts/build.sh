#!/usr/bin/env bash
# Configures and builds a Release tree in build/ (ccache is used when present).
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build build "$@"
