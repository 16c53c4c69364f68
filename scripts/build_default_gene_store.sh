#!/usr/bin/env bash
# Build the default gene store, the one every command uses when --genes is not given:
#   build/share/celltyper/gene_embeddings.h5   (= <dir of build/celltyper>/share/celltyper/...)
#
# Offline LSA embedding (celltyper genes embed --backend lsa) of one text per human gene:
#   genes, symbols, names, types   Debian r-bioc-org.hs.eg.db (org.Hs.eg.sqlite)
#   GO BP/MF/CC term names          org.Hs.eg.db gene->GO links + Debian r-bioc-go.db (GO.sqlite)
#   RefSeq summaries                ../shared/data/gene-annotations/human_genes.tsv, when present
#                                   (recorded in the store's provenance: extra.texts.summaries)
#
# Dimensions: DIMS (default 256, what users get: commands use every column of the store unless
# told --dims). LSA components are ordered by singular value, so the first k columns of a store
# are the rank-k embedding (`celltyper genes truncate`, or --dims on commands): a 256-d store
# also serves 64 and 128. Measured in bench/results/genes.md (77,614 genes), 1024 dims keep more
# (GO BP top-10 agreement 0.745 vs 0.701; median marker-pair rank 11 vs 29, geometric mean 18.8
# vs 19.0) for a 4x larger file (~320 MB vs ~80 MB), ~2x the build time (~22 s vs ~10 s on 2
# cores) and 4x the cost of every cell embedding; DIMS=1024 builds it (then pass --dims 256 to
# commands for the 256-d prefix).
#
# Idempotent: skipped when the store exists and its stamp (inputs' checksums, the celltyper
# version, the sources of the text recipe and of LSA, the options) is unchanged. FORCE=1 rebuilds.
#   scripts/build_default_gene_store.sh            (env: CELLTYPER=build/celltyper OUT=... DIMS=256 THREADS=0 FORCE=1)
set -euo pipefail
cd "$(dirname "$0")/.."

CELLTYPER="${CELLTYPER:-build/celltyper}"
OUT="${OUT:-$(dirname "$CELLTYPER")/share/celltyper/gene_embeddings.h5}"
DIMS="${DIMS:-256}"
SEED="${SEED:-42}"
THREADS="${THREADS:-0}"
SUMMARIES="${SUMMARIES:-../shared/data/gene-annotations/human_genes.tsv}"

find_r_file() {
  for root in /usr/lib/R/site-library /usr/local/lib/R/site-library; do
    if [ -f "$root/$1" ]; then echo "$root/$1"; return 0; fi
  done
  return 1
}
ORG_DB="$(find_r_file org.Hs.eg.db/extdata/org.Hs.eg.sqlite)" || { echo "build_default_gene_store: org.Hs.eg.db not found (apt-get install r-bioc-org.hs.eg.db)" >&2; exit 1; }
GO_DB="$(find_r_file GO.db/extdata/GO.sqlite)" || { echo "build_default_gene_store: GO.db not found (apt-get install r-bioc-go.db)" >&2; exit 1; }
[ -x "$CELLTYPER" ] || { echo "build_default_gene_store: $CELLTYPER not built (run scripts/setup.sh)" >&2; exit 1; }

args=(genes embed --backend lsa --gene-table "$ORG_DB" --org-db "$ORG_DB" --go-db "$GO_DB"
      --dims "$DIMS" --seed "$SEED" --threads "$THREADS" --out "$OUT")
inputs=("$ORG_DB" "$GO_DB")
if [ -f "$SUMMARIES" ]; then
  args+=(--summaries "$SUMMARIES")
  inputs+=("$SUMMARIES")
else
  echo "build_default_gene_store: $SUMMARIES absent: texts without RefSeq summaries"
fi

stamp="$( {
  "$CELLTYPER" --version
  echo "dims=$DIMS seed=$SEED summaries=$([ -f "$SUMMARIES" ] && echo yes || echo no)"
  sha256sum "${inputs[@]}" | cut -d' ' -f1
  cat src/genes/gene_text*.cpp src/genes/lsa*.cpp include/celltyper/gene_text.hpp include/celltyper/gene_embedding.hpp | sha256sum | cut -d' ' -f1
} | sha256sum | cut -d' ' -f1 )"
if [ -z "${FORCE:-}" ] && [ -f "$OUT" ] && [ -f "$OUT.stamp" ] && [ "$(cat "$OUT.stamp")" = "$stamp" ]; then
  echo "build_default_gene_store: $OUT is up to date"
  exit 0
fi

mkdir -p "$(dirname "$OUT")"
echo "build_default_gene_store: building $OUT ($DIMS dims)"
"$CELLTYPER" "${args[@]}"
printf '%s\n' "$stamp" > "$OUT.stamp.tmp" && mv "$OUT.stamp.tmp" "$OUT.stamp"
"$CELLTYPER" genes info "$OUT"
