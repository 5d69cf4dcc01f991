#!/usr/bin/env bash
# The deployment demo: installs the packages, builds sluice and its plugins,
# then runs examples/fashion-mnist/deploy.yaml twice on a fresh store. The
# first run trains a model and makes service `fashion` with it (nothing to
# compare with); the second trains another (another seed, one more epoch)
# and canaries it against the one serving, with analysis, while test images
# flow through the gateway. The service is left running: curl it, or
#   ./build/sluice services; ./build/sluice services history fashion
#   ./build/sluice gateway stop
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
./scripts/build.sh --target sluice data sluice-torch
export SLUICE_HOME="${SLUICE_HOME:-$PWD/.sluice-deploy}"
rm -rf "$SLUICE_HOME"
./build/sluice gateway stop >/dev/null 2>&1 || true
spec=examples/fashion-mnist/deploy.yaml
./build/sluice validate "$spec"
echo "== run 1: the first model makes the service"
./build/sluice run "$spec" -p seed=1 "$@"
echo "== run 2: a second model, canaried against the first"
./build/sluice run "$spec" -p seed=2 -p epochs=3 "$@"
./build/sluice show latest
./build/sluice services
./build/sluice services history fashion
url=$(python3 -c 'import sqlite3,sys; r = sqlite3.connect(sys.argv[1]).execute("SELECT listen, port FROM gateway").fetchone(); print(f"http://{r[0]}:{r[1]}" if r else "")' "$SLUICE_HOME/sluice.db")
if [ -n "$url" ]; then python3 examples/fashion-mnist/infer.py "$url" fashion 4; fi
echo "the service keeps running (SLUICE_HOME=$SLUICE_HOME): ./build/sluice services; stop it with"
echo "  SLUICE_HOME=$SLUICE_HOME ./build/sluice gateway stop"
