#!/usr/bin/env bash
# Run celltyper's whole test suite: unit tests and end-to-end CLI tests on ../shared/data
# (those skip with a message when the data is absent).
#   scripts/test.sh              build (incremental) and run every test
#   scripts/test.sh --sanitize   the same in build-asan/ with AddressSanitizer + UBSan
#   scripts/test.sh -R Pattern   pass extra arguments to ctest
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD_DIR=build
CMAKE_ARGS=()
if [ "${1:-}" = "--sanitize" ]; then
  shift
  BUILD_DIR=build-asan
  CMAKE_ARGS+=(-DCELLTYPER_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug)
  # Full (slow) unwinding on malloc, so that leaks inside third-party libraries (HDF5 on a failed
  # open, OpenMPI's components) are matched by scripts/lsan.supp; celltyper's own are reported.
  export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:fast_unwind_on_malloc=0"
  export LSAN_OPTIONS="suppressions=$PWD/scripts/lsan.supp:print_suppressions=0"
  export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
fi

cmake -S . -B "$BUILD_DIR" "${CMAKE_ARGS[@]}" >/dev/null
cmake --build "$BUILD_DIR" -j "$(nproc)"
cd "$BUILD_DIR"
ctest --output-on-failure -j "$(nproc)" "$@"
