#!/usr/bin/env bash
# The main demo: installs the packages, builds sluice and its plugins, runs
# the Fashion-MNIST libtorch pipeline end to end (ingest, validate, split,
# train, evaluate with an accuracy gate, export TorchScript + int8, register),
# then serves the registered model through the serving gateway and
# classifies a few test images over HTTP. Extra arguments go to `sluice run` (for example -p epochs=2).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
./scripts/build.sh --target sluice data sluice-torch
spec=examples/fashion-mnist/pipeline.yaml
./build/sluice validate "$spec"
./build/sluice plan "$spec" "$@"
./build/sluice run "$spec" "$@"
./build/sluice show latest
./build/sluice models fashion

# Serve the newest registered version through the serving gateway (two
# replicas of the model server, started and supervised by it) on a free
# loopback port, ask it about eight test images, and stop it.
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
./build/sluice services apply examples/fashion-mnist/service.yaml --port "$port"
trap './build/sluice gateway stop >/dev/null 2>&1 || true' EXIT
for _ in $(seq 600); do
  python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/v2/models/fashion/ready')" 2>/dev/null && break
  sleep 0.1
done
python3 examples/fashion-mnist/infer.py "http://127.0.0.1:$port" fashion 8
./build/sluice services
./build/sluice gateway stop
trap - EXIT
echo "serve it yourself: ./build/sluice services apply examples/fashion-mnist/service.yaml (specs/services.md),"
echo "or one model server in the foreground: ./build/sluice serve-model fashion@latest --port 8081"
