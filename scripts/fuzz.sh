#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz) with clang, ASan and UBSan in
# build-fuzz/, then runs each for a bounded time from its seed corpus
# (tests/fuzz/corpus/<target>/). Fails on the first crash, leak, timeout or
# sanitizer report; the input that did it is left in build-fuzz/artifacts/.
#
#   FUZZ_SECONDS=60   seconds per target (default 60)
#   FUZZ_TARGETS="spec_loader_fuzz expr_fuzz"   a subset (default: all five)
#   FUZZ_JOBS=2       ninja's parallelism for the build (default 2)
#
# New inputs the fuzzer finds go to build-fuzz/corpus/<target>/, not into the
# repository; copy the interesting ones into tests/fuzz/corpus/ by hand.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${FUZZ_SECONDS:-60}"
targets="${FUZZ_TARGETS:-spec_loader_fuzz expr_fuzz http_request_fuzz model_json_fuzz upstream_response_fuzz}"
jobs="${FUZZ_JOBS:-2}"
build=build-fuzz

if [ ! -f "$build/build.ninja" ]; then
  CC=clang CXX=clang++ cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DSLUICE_FUZZ=ON -DBUILD_TESTING=OFF >/dev/null
fi
# shellcheck disable=SC2086
nice ninja -C "$build" -j "$jobs" $targets

mkdir -p "$build/artifacts"
status=0
for t in $targets; do
  mkdir -p "$build/corpus/$t"
  echo "== $t: ${seconds}s"
  # -max_len keeps inputs small enough to mutate well; each input must finish
  # in 10 s and 2 GB (a spec that takes longer is a denial of service).
  if ! "$build/tests/fuzz/$t" -max_total_time="$seconds" -max_len=8192 -timeout=10 -rss_limit_mb=2048 \
       -print_final_stats=1 -artifact_prefix="$build/artifacts/$t-" \
       "$build/corpus/$t" "tests/fuzz/corpus/$t" 2>"$build/$t.log"; then
    echo "FAIL $t (log: $build/$t.log; input: $build/artifacts/$t-*)"
    grep -E "ERROR|SUMMARY|==[0-9]+==|abort|not FILE" "$build/$t.log" | head -20 || true
    status=1
  else
    grep -E "^stat::number_of_executed_units|^#[0-9]+.*DONE" "$build/$t.log" | tail -2 || true
  fi
done
if [ "$status" -eq 0 ]; then echo "fuzz: no crash in $targets"; fi
exit "$status"
