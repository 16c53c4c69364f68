#!/usr/bin/env bash
# Install every dependency of celltyper from Debian 12 packages, build into build/ and run a
# short smoke job. Idempotent: packages already present are not reinstalled; the build is
# incremental. Run as root (or with sudo available) on a fresh Debian 12 machine.
#   scripts/setup.sh            install + build (+ smoke run)
#   BUILD_TYPE=Debug scripts/setup.sh
set -euo pipefail
cd "$(dirname "$0")/.."

# Build tools, libraries, and the reference tools tests/benchmarks compare against.
PACKAGES=(
  build-essential cmake pkg-config git
  libhdf5-dev zlib1g-dev libdeflate-dev libsqlite3-dev libcurl4-openssl-dev libssl-dev
  npm nginx
  libcli11-dev nlohmann-json3-dev libfmt-dev libspdlog-dev libeigen3-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libtorch-dev libopenblas0-pthread libxgboost-dev python3-xgboost
  r-bioc-org.hs.eg.db r-bioc-go.db r-bioc-singler r-cran-seurat chromium
  python3-anndata python3-h5py python3-numpy python3-scipy python3-pandas python3-sklearn python3-torch
  time
  coinor-libcbc-dev libopenmpi-dev openmpi-bin
)

missing=()
for package in "${PACKAGES[@]}"; do
  # An npm that is already there (e.g. bundled with a NodeSource nodejs, which Debian's npm
  # package conflicts with) is enough: npm only fetches DuckDB.
  [ "$package" = npm ] && command -v npm >/dev/null && continue
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${#missing[@]} Debian packages: ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "setup: all ${#PACKAGES[@]} Debian packages present"
fi

# libtorch (MLP training) calls the BLAS behind libblas.so.3: it should be OpenBLAS (pthread, from
# libopenblas0-pthread, which takes the alternative by priority), not reference BLAS (~10x slower).
BLAS="$(readlink -f "/usr/lib/$(gcc -print-multiarch)/libblas.so.3" || true)"
case "$BLAS" in
  *openblas*) echo "setup: BLAS is $BLAS" ;;
  *) echo "setup: warning: libblas.so.3 is ${BLAS:-missing}, not OpenBLAS: MLP training will be slow" \
       "(fix: sudo update-alternatives --config libblas.so.3-$(gcc -print-multiarch))" ;;
esac

# DuckDB (metadata catalogue) is not in Debian 12: pinned libduckdb.so + duckdb.h from npm.
bash scripts/fetch_duckdb.sh

BUILD_TYPE="${BUILD_TYPE:-RelWithDebInfo}"
cmake -S . -B build -DCMAKE_BUILD_TYPE="$BUILD_TYPE" >/dev/null
cmake --build build -j "$(nproc)"
echo "setup: built build/celltyper ($(build/celltyper --version))"

# The default gene embeddings (offline LSA over gene texts from the Debian annotation packages,
# plus RefSeq summaries from ../shared/data when present): build/share/celltyper/gene_embeddings.h5
bash scripts/build_default_gene_store.sh

# Smoke run of the main job: train on one labelled dataset, annotate another, print the labels.
DATA="../shared/data"
REFERENCE="$DATA/pbmc3k-seurat-labels/pbmc3k_seurat_annotated.h5ad"
QUERY="$DATA/pbmc68k_reduced/pbmc68k_reduced_with_counts.h5ad"
if [ -f "$REFERENCE" ] && [ -f "$QUERY" ]; then
  DEMO="build/demo"
  mkdir -p "$DEMO"
  echo "setup: smoke run: train on pbmc3k, annotate pbmc68k_reduced (counts layer)"
  build/celltyper train --reference "$REFERENCE" --label obs:celltype --label-map "$DATA/label_map_to_cell_ontology.tsv" \
    --out "$DEMO/pbmc3k_model.h5"
  build/celltyper annotate --model "$DEMO/pbmc3k_model.h5" --input "$QUERY" --layer counts --out "$DEMO/pbmc68k_annotated.h5ad"
else
  echo "setup: ../shared/data not found; skipping the smoke run"
fi
