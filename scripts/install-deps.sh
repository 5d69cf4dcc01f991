#!/usr/bin/env bash
# Installs the Debian 12 packages Sluice builds, tests, benchmarks and demos with.
set -euo pipefail
packages=(
  g++ cmake ninja-build ccache pkg-config make
  libyaml-dev zlib1g-dev libsqlite3-dev sqlite3 nlohmann-json3-dev libcli11-dev libssl-dev libgtest-dev
  python3 python3-numpy python3-jsonschema python3-yaml dataset-fashion-mnist
  libtorch-dev libcpp-httplib-dev libopenblas0-pthread
)
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo=sudo; fi
$sudo apt-get update -q
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${packages[@]}"
