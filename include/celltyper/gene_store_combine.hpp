/// @file gene_store_combine.hpp
/// One gene store from several (`celltyper genes combine`): e.g. LSA of the gene texts + the
/// USE-lite transformer + imported vectors (OpenAI's). For the genes every source has, the
/// combined vector is the concatenation of the sources' unit rows, source s scaled by
/// sqrt(w_s / sum w), so that it is a unit vector and
///     cos_combined(g, h) = sum_s w_s cos_s(g, h) / sum_s w_s,
/// the weighted mean of the sources' cosines. The concatenation is then rotated onto its principal
/// axes (eigenvectors of X^T X, by decreasing eigenvalue; no centring): a rotation changes no
/// cosine, and it orders the dimensions most informative first, so a prefix of k columns is the
/// best rank-k approximation of the combined vectors (Matryoshka-like; `genes truncate`, --dims).
///
/// With `center`, each source's rows first lose the source's mean row (over all its genes) and
/// are re-normalised: transformer sentence embeddings share a large common direction (USE-lite's
/// mean gene vector has norm 0.86, so any two genes have cosine ~0.75), which centring removes
/// (as in Mu J. & Viswanath P., "All-but-the-top: simple and effective postprocessing for word
/// representations", ICLR 2018). One source is allowed then (centre, rotate, truncate).
#pragma once

#include <celltyper/gene_store.hpp>

#include <vector>

namespace celltyper {

/// Options of `combine_gene_stores`.
struct CombineOptions {
  std::vector<double> weights;  ///< per source, > 0; empty = all 1
  bool principal_axes = true;   ///< rotate onto the principal axes (else keep the concatenation's order)
  bool center = false;          ///< subtract each source's mean row first (rows re-normalised)
  int dims = 0;                 ///< keep the first dims columns after rotation (rows re-normalised); 0 = all
};

/// Counts of `combine_gene_stores`.
struct CombineResult {
  GeneStore store;                            ///< backend "combined"
  std::vector<std::int64_t> genes_per_source; ///< rows of each source
  std::int64_t n_common = 0;                  ///< genes in every source (the combined rows)
};

/// Combine `sources` (at least 2, or 1 with `center`) as the file comment says. InputError when a weight is not
/// positive, the weights do not match the sources, or no gene is in every source.
CombineResult combine_gene_stores(const std::vector<GeneStore>& sources, const CombineOptions& options = {});

}  // namespace celltyper
