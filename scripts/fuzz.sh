#!/usr/bin/env bash
# Fuzz the parsers celltyper owns (issue #19) with libFuzzer: build the targets of fuzz/ in
# build-fuzz with clang (AddressSanitizer + UBSan, the library instrumented for coverage), replay
# the kept findings (fuzz/regressions/<target>/*: each must now pass), then run each target for a
# bounded time from its seed corpus (fuzz/corpus/<target>), new inputs kept in
# build-fuzz/corpus/<target>. A crash, a sanitizer report, a leak, an exception other than
# celltyper's own errors, or an input taking over 10 s fails the run; the input is saved as
# build-fuzz/findings/<target>-*.
#   scripts/fuzz.sh                   30 s per target (what scripts/test.sh runs)
#   scripts/fuzz.sh --seconds 600     longer runs
#   scripts/fuzz.sh fuzz_obo          some targets only
set -euo pipefail
cd "$(dirname "$0")/.."
PER_TARGET=30
TARGETS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) PER_TARGET="$2"; shift 2 ;;
    *) TARGETS+=("$1"); shift ;;
  esac
done
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(fuzz_obo fuzz_cl_json fuzz_gene_tsv fuzz_label_map fuzz_mtx fuzz_batch_output fuzz_h5ad fuzz_model fuzz_use_lite_tokenizer fuzz_gene_table_indexes fuzz_text_matrix fuzz_loom fuzz_zarr)
# clang and its sanitizer runtime (libclang_rt.asan/ubsan/fuzzer: a recommendation of clang that
# --no-install-recommends leaves out on a fresh machine).
bash scripts/install_packages.sh clang libclang-rt-14-dev
bash scripts/fetch_duckdb.sh >/dev/null

cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_FLAGS="-fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" \
  -DCELLTYPER_FUZZ=ON -DCELLTYPER_WERROR=OFF -DCELLTYPER_PYTHON=OFF -DBUILD_TESTING=OFF >/dev/null
# A failed build must fail the run (an old binary left in build-fuzz would otherwise be fuzzed).
if ! cmake --build build-fuzz -j "$(nproc)" --target "${TARGETS[@]}" >build-fuzz/build.log 2>&1; then
  grep -E "error|Error" build-fuzz/build.log | head -20
  echo "fuzz: the fuzz targets did not build (build-fuzz/build.log)"
  exit 1
fi
# The targets write their inputs to scratch files under $TMPDIR (fuzz/fuzz_support.hpp): a folder of
# this run, removed at the end, so no run leaves files in /tmp.
scratch="$(mktemp -d "${TMPDIR:-/tmp}/celltyper-fuzz.XXXXXX")"
trap 'rm -rf "$scratch"' EXIT
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
mkdir -p build-fuzz/findings
status=0
for target in "${TARGETS[@]}"; do
  binary="build-fuzz/fuzz/$target"
  [ -x "$binary" ] || { echo "fuzz: $binary was not built"; exit 1; }
  if [ -d "fuzz/regressions/$target" ] && [ -n "$(ls -A "fuzz/regressions/$target")" ]; then
    TMPDIR="$scratch" "$binary" -runs=0 fuzz/regressions/"$target"/* >/dev/null 2>"build-fuzz/$target.regressions.log" \
      || { echo "fuzz: $target fails a kept finding (build-fuzz/$target.regressions.log)"; status=1; continue; }
  fi
  mkdir -p "build-fuzz/corpus/$target"
  if TMPDIR="$scratch" "$binary" -max_total_time="$PER_TARGET" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
       -artifact_prefix="build-fuzz/findings/$target-" "build-fuzz/corpus/$target" "fuzz/corpus/$target" \
       >"build-fuzz/$target.log" 2>&1; then
    echo "fuzz: $target: $(grep -E '^stat::number_of_executed_units' "build-fuzz/$target.log" | awk '{print $2}') inputs in ${PER_TARGET} s, no finding"
  else
    echo "fuzz: $target: FINDING (build-fuzz/$target.log, input in build-fuzz/findings/)"
    tail -30 "build-fuzz/$target.log"
    status=1
  fi
done
exit $status
