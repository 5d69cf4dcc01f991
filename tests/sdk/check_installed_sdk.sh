#!/usr/bin/env bash
# An out-of-tree plugin built against the installed SDK, then used by the
# installed sluice: the path a plugin author takes.
#   check_installed_sdk.sh <build dir of sluice> <this folder>
set -euo pipefail
build=$1
here=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cmake --install "$build" --prefix "$tmp/prefix" > "$tmp/install.log"
cmake -S "$here/acme" -B "$tmp/acme-build" -G Ninja -DCMAKE_PREFIX_PATH="$tmp/prefix" -DCMAKE_BUILD_TYPE=Release > "$tmp/configure.log"
cmake --build "$tmp/acme-build" > "$tmp/build.log"
exported=$(nm -D --defined-only "$tmp/acme-build/libacme.so" | awk '{print $3}')
if [ "$exported" != "sluice_plugin_entry" ]; then
  echo "libacme.so exports more than sluice_plugin_entry: $exported"; exit 1
fi
# sluice_plugin_descriptor(): described by the installed sluice after the build.
grep -q '"name": "acme"' "$tmp/acme-build/libacme.so.json" || { echo "libacme.so.json was not written"; exit 1; }
mkdir -p "$tmp/work/plugins"
cp "$tmp/acme-build/libacme.so" "$tmp/acme-build/libacme.so.json" "$tmp/work/plugins/"
cat > "$tmp/work/pipeline.yaml" <<'YAML'
name: acme-demo
steps:
  clean:
    uses: acme/clean
    with: {threshold: 0.42}
  report:
    needs: [clean]
    run: echo "kept ${{ steps.clean.outputs.kept }}" > report.txt
YAML
cd "$tmp/work"
export SLUICE_HOME="$tmp/work/.sluice"
"$tmp/prefix/bin/sluice" plugins | grep -q "acme 1.2.0"
"$tmp/prefix/bin/sluice" plugins | grep -q "^data 0.1.0"   # installed first-party plugins are found from the binary
# The installed torch plugin's descriptor names the installed copy (none refused).
test -f "$tmp/prefix/lib/sluice/plugins/libsluice-torch.so.json" || { echo "no installed torch descriptor"; exit 1; }
if "$tmp/prefix/bin/sluice" plugins | grep -q "^refused"; then "$tmp/prefix/bin/sluice" plugins | grep "^refused"; exit 1; fi
"$tmp/prefix/bin/sluice" run pipeline.yaml > run.log
test "$(cat report.txt)" = "kept 42" || { echo "report.txt: $(cat report.txt)"; exit 1; }
"$tmp/prefix/bin/sluice" show latest | grep -q "metric kept = 42"
echo "out-of-tree plugin built against the installed SDK and run: ok"
