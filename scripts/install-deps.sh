#!/usr/bin/env bash
# Installs the Debian 12 packages Sluice builds, tests, benchmarks and demos with.
set -euo pipefail
packages=(
  g++ cmake ninja-build ccache pkg-config make
  libyaml-dev zlib1g-dev libsqlite3-dev sqlite3 nlohmann-json3-dev libcli11-dev libssl-dev libgtest-dev
  python3 python3-numpy python3-jsonschema python3-yaml dataset-fashion-mnist
  libtorch-dev libcpp-httplib-dev libopenblas0-pthread
  libboost-dev chromium fonts-liberation nginx-light wrk
  slurm-wlm munge
  prometheus  # promtool checks the gateway's /metrics text
  clang libclang-rt-14-dev  # scripts/fuzz.sh: clang with its libFuzzer and sanitizer runtimes
)
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo=sudo; fi
$sudo apt-get update -q
# Node.js for the browser test: Debian's, unless a Node.js is there already.
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then packages+=(nodejs npm); fi
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${packages[@]}"
# playwright-core (no browser download: the test drives Debian's chromium), at the version package-lock.json pins.
(cd "$(dirname "$0")/../tests/browser" && npm ci --no-audit --no-fund --loglevel=error)
