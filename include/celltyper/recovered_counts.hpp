/// @file recovered_counts.hpp
/// Counts read back from log-normalised values. A matrix of log1p(CP10k) (scanpy's
/// normalize_total + log1p, Seurat's LogNormalize, a CELLxGENE X without its raw) holds
/// log(1 + f * n) for each count n of a cell, f the cell's factor (10^4 / its library size): expm1
/// of its values divided by that of its smallest is n, the smallest being a count of 1 (a cell of a
/// few hundred molecules has many genes seen once). Training recovers them so that a reference
/// stored only as log values is thinned for depth augmentation (TrainOptions::augment_depth) and
/// the unlike-reference check is calibrated by depth (reference_similarity.hpp), as its counts
/// would be; the features are the same either way (log1p(CP10k) of counts or of counts times f).
/// Square roots and asinh of counts (ValueScale::kSqrtCounts, kAsinhCounts) are read back the same
/// way, with the square and sinh in place of expm1.
#pragma once

#include <celltyper/cell_embedder.hpp>
#include <celltyper/dataset.hpp>

#include <cstddef>
#include <memory>
#include <string>

namespace celltyper {

struct MatrixSummary;  // matrix_summary.hpp

/// Share of the scanned cells (with 10 values or more) whose values must read back as whole
/// counts for a matrix's counts to be recovered: log of counts gives every one; log of TPM or of
/// corrected values hardly any.
inline constexpr double kRecoverableCellShare = 0.95;

/// `base` (not owned; must outlive this) with the log values of matrix `source` read as the counts
/// they came from: in each cell every stored value v becomes u(v) / w, u the inverse of its log
/// (`logged`: kRelog1pCp10k -> expm1, kRelog2Cp10k -> 2^x - 1, kRelog10Cp10k -> 10^x - 1,
/// kSquareCp10k -> x^2, kSinhCp10k -> sinh) and w
/// the value of one count: u(s) / m, s the cell's smallest positive value and m the smallest count
/// (1 to 16) for which every count is whole within 0.01 + 10^-3 of itself (the rounding of the
/// stored logs; values whose tolerance would reach 0.45 are not tested), w refined as the sum of
/// the cell's values of 1-20 counts over their counts; rounded. A cell no m suits keeps
/// u(v) / u(s) unrounded (proportional to its values, as relog1p-cp10k reads them). Zero and
/// negative values stay as they are. obs, var, the other matrices and path() are base's.
class RecoveredCountsDataset final : public Dataset {
 public:
  RecoveredCountsDataset(const Dataset& base, std::string source, Normalization logged);

  [[nodiscard]] const std::string& path() const override { return base_.path(); }
  [[nodiscard]] std::string format() const override { return base_.format(); }
  [[nodiscard]] std::int64_t n_obs() const override { return base_.n_obs(); }
  [[nodiscard]] std::int64_t n_vars() const override { return base_.n_vars(); }
  [[nodiscard]] DataFrame read_obs() const override { return base_.read_obs(); }
  [[nodiscard]] DataFrame read_obs_columns(const std::vector<std::string>& names) const override { return base_.read_obs_columns(names); }
  [[nodiscard]] std::vector<std::string> obs_column_names() const override { return base_.obs_column_names(); }
  [[nodiscard]] DataFrame read_var() const override { return base_.read_var(); }
  [[nodiscard]] std::vector<std::string> matrix_sources() const override { return base_.matrix_sources(); }
  [[nodiscard]] DataFrame read_var_of(const std::string& source) const override { return base_.read_var_of(source); }
  [[nodiscard]] MatrixInfo matrix_info(const std::string& source) const override { return base_.matrix_info(source); }
  [[nodiscard]] std::unique_ptr<MatrixReader> open_matrix(const std::string& source) const override;
  [[nodiscard]] const H5adFile* h5ad_file() const override { return base_.h5ad_file(); }
  [[nodiscard]] std::string reading_note() const override { return base_.reading_note(); }

 private:
  const Dataset& base_;
  std::string source_;
  Normalization logged_;
};

/// What recover_counts found.
struct CountsRecovery {
  std::unique_ptr<Dataset> dataset;  ///< the dataset with its counts read back, or null
  std::string note;  ///< when read back: "SOURCE holds log-normalised counts, read back per cell (how; N of M cells checked read back whole)"
  /// Log-normalised values whose counts cannot be read back, or read back with 1% or more of the
  /// scanned cells not whole: a sentence naming `source`; else "".
  std::string warning;
};

/// When matrix `source` of `dataset` holds log-normalised counts (log1p, log2(1 + x) or
/// log10(1 + x) of counts times a per-cell factor: its 2,000 cells scanned as `choose_normalization`
/// scans them read as log-normalised), square roots or asinh of counts, and kRecoverableCellShare of those with 10 values or more
/// read back whole), the dataset with them read back. `scanned`: the matrix's summary when the
/// caller has one (inspect), else it is scanned here.
CountsRecovery recover_counts(const Dataset& dataset, const std::string& source, std::size_t memory_limit_bytes,
                              const MatrixSummary* scanned = nullptr);

}  // namespace celltyper
