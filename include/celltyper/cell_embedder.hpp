/// @file cell_embedder.hpp
/// GenePT-w cell embeddings: a cell's vector is the expression-weighted sum of its genes'
/// embedding vectors, L2-normalised (Chen & Zou, "GenePT: a simple but effective foundation
/// model for genes and cells built from ChatGPT", bioRxiv 2023; the "GenePT-w" variant).
///
///   e(cell) = normalise( sum_g  w(cell, g) * E[g, :k] ),   w = normalised expression
///
/// Conventions: cells x genes input; gene matrix E row-major float32 [n_genes x dims];
/// output row-major float32 [n_cells x k]. Sums are accumulated in float32 in the order of
/// the cell's column indices (ascending), so a cell's vector depends only on that cell: it is
/// bit-identical for any thread count, block size and input encoding (CSR, CSC, dense).
/// Error bound: with n matched genes per cell, |w| and |E| entries at most 1 in magnitude after
/// scaling, each component's absolute error before normalisation is at most n * 2^-24 * sum|w|
/// (standard bound for recursive summation); on real PBMC data the normalised vectors differ
/// from a float64 NumPy reference by < 1e-6 (see tests/embed).
#pragma once

#include <celltyper/sparse.hpp>

#include <cmath>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace celltyper {

/// How expression values become weights.
enum class Normalization {
  kNone,        ///< w = value (the matrix is already normalised, e.g. log1p(CP10k) in X)
  kCp10k,       ///< w = value * 1e4 / total(cell)
  kLog1pCp10k,  ///< w = log1p(value * 1e4 / total(cell))   (scanpy normalize_total + log1p)
  /// Log1p-normalised input, normalised again: w = log1p(expm1(value) * 1e4 / total(cell)) with
  /// total the sum of expm1(value) over the cell's library genes. On log1p(CP10k) data that is
  /// log1p-cp10k of the unknown counts over those genes (expm1 gives the counts times a per-cell
  /// factor that the new total removes); over every gene it gives the values back. The
  /// expression route uses it so that a log-normalised file's library sizes are summed over the
  /// genes both sides share, as counts' are.
  kRelog1pCp10k,
  /// The same for log2(1 + x) input (log2(CP10k + 1), log2(TPM + 1)): 2^value - 1 in place of
  /// expm1(value).
  kRelog2Cp10k,
  /// The same for log10(1 + x) input (log10(CP10k + 1)): 10^value - 1.
  kRelog10Cp10k,
  /// Square roots of counts (a variance-stabilising transform some pipelines store), squared back
  /// and normalised as counts are: w = log1p(value^2 * 1e4 / total(cell)), total the sum of value^2
  /// over the library genes.
  kSquareCp10k,
  /// asinh of counts, read back with sinh: w = log1p(sinh(value) * 1e4 / total(cell)).
  kSinhCp10k,
};
const char* to_string(Normalization normalization);
/// Parse "none", "cp10k", "log1p-cp10k", "relog1p-cp10k", "relog2-cp10k", "relog10-cp10k", "square-cp10k", "sinh-cp10k"
/// (throws InputError otherwise).
Normalization parse_normalization(const std::string& text);

/// kRelog1pCp10k, kRelog2Cp10k, kRelog10Cp10k, kSquareCp10k or kSinhCp10k: transformed input
/// read back on a linear scale (`unlogged`) and normalised again over the library genes.
inline bool is_relog(Normalization normalization) {
  return normalization == Normalization::kRelog1pCp10k || normalization == Normalization::kRelog2Cp10k ||
         normalization == Normalization::kRelog10Cp10k || normalization == Normalization::kSquareCp10k ||
         normalization == Normalization::kSinhCp10k;
}
/// A stored value back on the linear scale its normalisation reads: expm1 (relog1p-cp10k),
/// 2^x - 1 (relog2-cp10k), 10^x - 1 (relog10-cp10k), x^2 (square-cp10k), sinh (sinh-cp10k), else
/// the value.
inline double unlogged(double value, Normalization normalization) {
  switch (normalization) {
    case Normalization::kRelog1pCp10k: return std::expm1(value);
    case Normalization::kRelog2Cp10k: return std::exp2(value) - 1.0;
    case Normalization::kRelog10Cp10k: return std::pow(10.0, value) - 1.0;
    case Normalization::kSquareCp10k: return value * value;
    case Normalization::kSinhCp10k: return std::sinh(value);
    default: return value;
  }
}

/// Gene vectors aligned to the columns (vars) of one dataset: row `var_to_row[j]` of
/// `matrix` is the vector of var j (kNoVector: no vector, the var only counts towards library
/// sizes; kOtherFeature: not gene expression, e.g. an antibody tag, or a gene outside a model's
/// library genes (EmbedOptions::size_factor_genes), ignored altogether).
struct AlignedGeneVectors {
  static constexpr std::int32_t kNoVector = -1;
  static constexpr std::int32_t kOtherFeature = -2;
  int dims = 0;                          ///< k: dimensions used (a prefix of the store's)
  std::vector<std::int32_t> var_to_row;  ///< per var (column of the input), row in `matrix`, kNoVector or kOtherFeature
  std::vector<float> matrix;             ///< [n_rows x dims] row-major: only matched genes
  [[nodiscard]] std::int64_t n_rows() const { return dims == 0 ? 0 : static_cast<std::int64_t>(matrix.size()) / dims; }
  [[nodiscard]] std::int64_t n_matched_vars() const;
  /// Renumber the rows so that the genes stored most often in `block` come first (hot rows
  /// then share cache lines and pages; sums are unchanged because they run in column order).
  void order_rows_by_use(const CsrBlock& block);
};

/// Per-cell side results of embedding.
struct CellEmbedStats {
  std::vector<double> total;             ///< per cell: sum of all values (before normalisation)
  std::vector<double> covered_fraction;  ///< per cell: share of `total` on vars with a vector
  std::vector<std::uint8_t> empty;       ///< per cell: 1 when no matched gene had a value (zero vector)
};

/// Options of `CellEmbedder`.
struct CellEmbedderOptions {
  Normalization normalization = Normalization::kLog1pCp10k;
  int num_threads = 0;  ///< 0 = all hardware threads
};

/// Embeds blocks of cells. Thread-safe for concurrent `embed` calls on different blocks.
class CellEmbedder {
 public:
  CellEmbedder(AlignedGeneVectors genes, CellEmbedderOptions options = {});

  [[nodiscard]] int dims() const { return genes_.dims; }
  [[nodiscard]] const AlignedGeneVectors& genes() const { return genes_; }
  [[nodiscard]] const CellEmbedderOptions& options() const { return options_; }

  /// Embed every row of `block` into `out` (block.n_rows x dims, row-major). Values must be
  /// finite and, for the CP10k normalisations, non-negative: otherwise InputError naming the
  /// row (block.first_row + r). `stats`, when given, is resized and filled per row.
  void embed(const CsrBlock& block, float* out, CellEmbedStats* stats = nullptr) const;

 private:
  AlignedGeneVectors genes_;
  CellEmbedderOptions options_;
  /// genes_.matrix copied to 2 MiB-aligned memory with transparent huge pages requested: rows
  /// are read in random order, and 4 KiB pages would thrash the TLB.
  std::shared_ptr<float> matrix_;
};

namespace detail {
/// out[0..dims) = sum_j weights[j] * matrix[rows[j] * dims + 0..dims), in j order (float32).
void weighted_row_sum(const float* matrix, int dims, const std::int32_t* rows, const float* weights, std::int64_t n,
                      float* out);
}  // namespace detail

}  // namespace celltyper
