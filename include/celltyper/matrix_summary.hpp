/// @file matrix_summary.hpp
/// One streaming pass over a matrix: sparsity, value range, invalid values, per-cell totals,
/// and a guess of what the values are (raw counts, normalised, log-normalised, scaled), so
/// that users and later steps (normalisation in `embed`) can catch a wrong matrix early.
#pragma once

#include <celltyper/dataset.hpp>
#include <celltyper/gene_table.hpp>

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace celltyper {

/// What the values of a matrix look like.
enum class ValueScale {
  kEmpty,            ///< no stored values
  kRawCounts,        ///< non-negative integers (UMI or read counts)
  kNormalized,       ///< non-negative, non-integer, equal per-cell totals (CP10k / CPM), not logged
  kLogNormalized,    ///< non-negative, small range, expm1 totals equal per cell (scanpy's log1p(CP10k))
  kLog2Normalized,   ///< non-negative, small range, 2^x - 1 totals equal per cell (log2(CP10k + 1), log2(TPM + 1))
  kLog10Normalized,  ///< the same with 10^x - 1 totals (log10(CP10k + 1))
  kLogTransformed,   ///< non-negative, small range, non-integer; totals unequal (log of TPM, ...)
  kSqrtCounts,       ///< non-integer values whose squares are whole: square roots of counts
  kAsinhCounts,      ///< non-integer values whose sinh is whole: asinh of counts
  kScaled,           ///< negative values present (z-scores after sc.pp.scale)
  kUnknown,          ///< none of the above (e.g. non-integer with a large range)
};
const char* to_string(ValueScale scale);

/// Five-number summary.
struct Quantiles {
  double min = 0, q25 = 0, median = 0, q75 = 0, max = 0;
};
Quantiles quantiles(std::vector<double> values);

/// Cell Ranger 2's cell calling (OrdMag) on per-barcode values (counts, or detected genes): a
/// tenth of the 99th percentile of the largest of them (up to 3,000, the cells a run expects),
/// at least 1: barcodes at or above it hold a cell, the others are empty droplets. 1 for none.
double ordmag_floor(std::vector<double> values);

/// Options of `summarize_matrix`.
struct SummarizeOptions {
  /// Scan about this many cells (-1 = all): every cell of a matrix of at most twice as many,
  /// else 8 runs of cells spread over the matrix, so that a file joined from differently
  /// processed parts is seen whole (the first cells of a CSC matrix, whose rows are read by
  /// scanning every column).
  std::int64_t max_rows = -1;
  std::size_t memory_limit_bytes = std::size_t{32} << 20;  ///< cap for blocks in flight
  bool count_columns = false;  ///< fill MatrixSummary::column_cells
};

/// Result of `summarize_matrix`.
struct MatrixSummary {
  MatrixInfo info;
  std::int64_t rows_scanned = 0;
  std::int64_t stored_values = 0;      ///< stored (non-zero for dense) values in scanned rows
  double density = 0;                  ///< stored_values / (rows_scanned * n_cols)
  double min_value = 0;                ///< over stored values
  double max_value = 0;
  std::int64_t n_nan = 0;
  std::int64_t n_inf = 0;
  std::int64_t n_negative = 0;
  std::int64_t n_non_integer = 0;
  std::int64_t n_explicit_zeros = 0;   ///< zeros stored in a sparse matrix
  std::int64_t empty_rows = 0;         ///< cells with no stored value
  std::int64_t rows_without_counts = 0;  ///< cells with no finite non-zero value (stored zeros, NaN or none)
  /// Per column, scanned cells with a finite non-zero value (SummarizeOptions::count_columns).
  std::vector<std::int64_t> column_cells;
  /// Scanned cells at or above the OrdMag floor of their totals (ordmag_floor): far fewer than
  /// the cells scanned in an unfiltered droplet matrix. -1 when not counted (fewer than 10,000
  /// columns: an imaging panel's shallow cells are cells).
  std::int64_t ordmag_cells = -1;
  Quantiles row_totals;                ///< per-cell sum of values
  Quantiles genes_per_row;             ///< per-cell stored values
  Quantiles expm1_row_totals;          ///< per-cell sum of expm1(value) (for log1p detection)
  Quantiles exp2m1_row_totals;         ///< per-cell sum of 2^value - 1 (for log2(1 + x) detection)
  Quantiles exp10m1_row_totals;        ///< per-cell sum of 10^value - 1 (for log10(1 + x) detection)
  /// Log of counts scaled per cell (log1p without normalize_total, to the median library size,
  /// SCTransform's corrected counts): each cell's expm1 (or 2^x - 1) values are whole multiples
  /// of its smallest one. Per base, of the stored values checked (rows with non-integer values;
  /// ratio to the cell's smallest value at most kMaxWholeRatio, the smallest itself excluded),
  /// how many are within 0.01 of a whole number.
  std::int64_t expm1_ratios_checked = 0;
  std::int64_t expm1_whole_ratios = 0;
  std::int64_t exp2m1_ratios_checked = 0;
  std::int64_t exp2m1_whole_ratios = 0;
  std::int64_t exp10m1_ratios_checked = 0;
  std::int64_t exp10m1_whole_ratios = 0;
  static constexpr double kMaxWholeRatio = 64;
  /// Other transforms of counts, told apart from logs (the non-integer values of rows with
  /// non-integer values): of those up to kMaxSquared, how many square to a whole number (square
  /// roots of counts: kSqrtCounts); of those up to kMaxSinh, how many have a whole sinh (asinh of
  /// counts: kAsinhCounts); within 0.01, which float32 values keep up to those bounds. 90% or more
  /// of 50 or more checked decide (values of other kinds square to whole numbers ~2% of the time).
  std::int64_t squares_checked = 0;
  std::int64_t whole_squares = 0;
  std::int64_t sinh_checked = 0;
  std::int64_t whole_sinh = 0;
  static constexpr double kMaxSquared = 64;
  static constexpr double kMaxSinh = 8;
  /// Cells of whole numbers only (counts) and cells whose values are mostly non-integer and all
  /// below kLogLikeMax (log-normalised): a matrix holding many of both joins differently
  /// processed data, and no one normalisation suits every cell (`mixed_scales`).
  std::int64_t integer_rows = 0;
  std::int64_t log_like_rows = 0;
  static constexpr double kLogLikeMax = 20;
  bool mixed_scales = false;
  ValueScale scale = ValueScale::kUnknown;
  std::string scale_reason;            ///< why `scale` was chosen, in words
  std::vector<std::string> warnings;   ///< NaN / Inf / negative values, empty cells, ...

  [[nodiscard]] nlohmann::json to_json() const;
};

/// The cells a scan of `max_rows` reads: every cell when max_rows < 0 or the matrix has at most
/// twice as many; else 8 runs spread evenly over the matrix, whatever its layout (a CSC matrix
/// gathers them in one pass over its columns: MatrixReader::expect_reads).
std::vector<RowRange> scan_ranges(const MatrixReader& reader, std::int64_t max_rows);

/// Stream the matrix once (or `max_rows` of its cells: scan_ranges) and summarise it.
MatrixSummary summarize_matrix(MatrixReader& reader, const SummarizeOptions& options = {});

/// raw/X is read first when it measures at least this many times as many genes as X (X cut to
/// the highly variable genes after `adata.raw = adata`) and does not hold scaled values.
inline constexpr std::int64_t kRawGeneSupersetRatio = 2;

/// The matrix read when the user names none (`--layer auto`, the default of train, annotate, cv,
/// tune, embed and extract): raw/X when X is a gene subset of it (kRawGeneSupersetRatio) and it
/// is not scaled; else X when 2,000 of its cells hold raw counts (or no values); else
/// the first of layers/counts and raw/X whose cells hold counts (CELLxGENE files keep
/// normalised values in X and the counts in raw/X; scanpy users keep them in a counts layer),
/// since celltyper normalises counts itself and thins them for depth augmentation; else, when X
/// holds scaled values (sc.pp.scale), the first of those two that holds unscaled values (scanpy
/// keeps log1p(CP10k) in raw before scaling X); else X (the first source when there is no X).
/// When the choice is not X, `why` (when given) gets a sentence naming both matrices; a dataset
/// with one matrix gives its reading_note() there.
std::string choose_counts_matrix(const Dataset& dataset, std::string* why = nullptr);

/// `resolve_genes` on the vars of matrix `source` of `dataset`; when vars name a gene twice, a
/// scan of 2,000 of its cells (scan_ranges; once per dataset and matrix, Dataset::var_scan)
/// tells which vars hold counts (in 1% of the cells scanned, 10 at least), and a gene is read
/// from one that does before one that does not, when it holds counts in 4 times the cells the
/// other does (GeneResolveOptions::var_cells; the var another
/// name column vouches for first), with a warning when that changes a gene's var (an outer join
/// of files annotated with different gene symbols: ATP5F1B padded with zeros beside ATP5B's
/// counts).
GeneResolveResult resolve_dataset_genes(const GeneTable& table, const Dataset& dataset, const std::string& source,
                                        const GeneResolveOptions& options = {});

}  // namespace celltyper
