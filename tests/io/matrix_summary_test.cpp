// What `inspect` and `--layer auto` / `--normalize auto` read a matrix as: counts, log1p or
// log2(1 + x) of normalised counts, normalised counts, scaled values; down to a single cell.
#include <celltyper/matrix_summary.hpp>
#include <celltyper/memory_dataset.hpp>

#include <gtest/gtest.h>

#include <algorithm>

#include <cmath>
#include <random>
#include <string>
#include <vector>

namespace celltyper {
namespace {

constexpr int kGenes = 60;

enum class Transform {
  kCounts,
  kCp10k,
  kLog1pCp10k,
  kLog2Cp10k,
  kLog10Cp10k,
  kLog1pCounts,      ///< log1p of the counts, not normalised
  kLog1pHalfCounts,  ///< log1p of counts x a per-cell factor (normalize_total to the median library size)
  kLog2Counts,       ///< log2(1 + counts)
  kLog1pGeneScaled,  ///< log1p of counts x a per-gene factor (TPM-like: gene lengths), not proportional to counts
  kEmCounts,         ///< counts with a fraction on every tenth gene (EM-quantified multi-mapping reads)
  kSqrtCounts,       ///< square roots of the counts
  kAsinhCounts,      ///< asinh of the counts
  kSqrtDeepCounts,   ///< square roots of 100 x the counts (values above 30: not log-like)
};

/// `n_cells` cells of Poisson counts (rates 0.2 .. 12 over the genes), then `transform` (of the
/// cells from `transformed_from` on: the earlier ones keep their counts).
MemoryDataset make_cells(int n_cells, Transform transform, unsigned seed = 7, int transformed_from = 0) {
  std::mt19937 rng(seed);
  DataFrame obs;
  DataFrame var;
  for (int g = 0; g < kGenes; ++g) var.index.push_back("G" + std::to_string(g + 1));
  CsrBlockF64 matrix;
  matrix.reset(0, 0, kGenes);
  for (int i = 0; i < n_cells; ++i) {
    std::vector<std::pair<int, double>> row;
    double total = 0;
    for (int g = 0; g < kGenes; ++g) {
      std::poisson_distribution<int> counts(0.2 + 0.2 * g * (1.0 + 0.5 * (i % 3)));
      const int value = counts(rng);
      if (value == 0) continue;
      row.emplace_back(g, value);
      total += value;
    }
    const double cell_factor = 0.5 + 0.37 * (i % 5);
    for (const auto& [g, value] : row) {
      const double cp10k = value / total * 1e4;
      double stored = value;
      if (i < transformed_from) {
        matrix.indices.push_back(g);
        matrix.values.push_back(stored);
        continue;
      }
      if (transform == Transform::kCp10k) stored = cp10k;
      if (transform == Transform::kLog1pCp10k) stored = std::log1p(cp10k);
      if (transform == Transform::kLog2Cp10k) stored = std::log2(1.0 + cp10k);
      if (transform == Transform::kLog10Cp10k) stored = std::log10(1.0 + cp10k);
      if (transform == Transform::kLog1pCounts) stored = std::log1p(value);
      if (transform == Transform::kLog1pHalfCounts) stored = std::log1p(value * cell_factor);
      if (transform == Transform::kLog2Counts) stored = std::log2(1.0 + value);
      if (transform == Transform::kLog1pGeneScaled) stored = std::log1p(value * (1.0 + 0.731 * g));
      if (transform == Transform::kEmCounts && g % 10 == 0) stored = value + 0.5;
      if (transform == Transform::kSqrtCounts) stored = std::sqrt(value);
      if (transform == Transform::kAsinhCounts) stored = std::asinh(value);
      if (transform == Transform::kSqrtDeepCounts) stored = std::sqrt(100.0 * value);
      matrix.indices.push_back(g);
      matrix.values.push_back(stored);
    }
    matrix.indptr.push_back(static_cast<std::int64_t>(matrix.indices.size()));
    ++matrix.n_rows;
    obs.index.push_back("cell" + std::to_string(i));
  }
  return MemoryDataset("generated cells", std::move(obs), std::move(var), std::move(matrix));
}

ValueScale scale_of(int n_cells, Transform transform) {
  const MemoryDataset cells = make_cells(n_cells, transform);
  const auto reader = cells.open_matrix("X");
  return summarize_matrix(*reader).scale;
}

TEST(MatrixSummary, EachLayoutIsReadForWhatItHolds) {
  for (const int n : {200, 3}) {
    SCOPED_TRACE(n);
    EXPECT_EQ(scale_of(n, Transform::kCounts), ValueScale::kRawCounts);
    EXPECT_EQ(scale_of(n, Transform::kCp10k), ValueScale::kNormalized);
    EXPECT_EQ(scale_of(n, Transform::kLog1pCp10k), ValueScale::kLogNormalized);
    EXPECT_EQ(scale_of(n, Transform::kLog2Cp10k), ValueScale::kLog2Normalized);
    EXPECT_EQ(scale_of(n, Transform::kLog10Cp10k), ValueScale::kLog10Normalized);
  }
}

// Log of counts that are not normalised to equal totals (scanpy's log1p without normalize_total,
// normalize_total to the median library size, SCTransform's log1p of corrected counts) are whole
// multiples of each cell's smallest value in their base; log of values not proportional to
// counts (TPM: per-gene lengths) are not, and stay "log-transformed".
TEST(MatrixSummary, LogOfCountsScaledPerCellIsReadInItsBase) {
  EXPECT_EQ(scale_of(200, Transform::kLog1pCounts), ValueScale::kLogNormalized);
  EXPECT_EQ(scale_of(200, Transform::kLog1pHalfCounts), ValueScale::kLogNormalized);
  EXPECT_EQ(scale_of(200, Transform::kLog2Counts), ValueScale::kLog2Normalized);
  EXPECT_EQ(scale_of(200, Transform::kLog1pGeneScaled), ValueScale::kLogTransformed);
}

// Square roots and asinh of counts look logged (non-integer, small, totals unequal in every
// base): their whole squares (sinh) say what they are, so that they are read back as the counts
// they came from; logs of counts are neither.
TEST(MatrixSummary, SquareRootsAndAsinhOfCountsAreNamed) {
  const auto summary_of = [](Transform transform) {
    const MemoryDataset cells = make_cells(200, transform);
    return summarize_matrix(*cells.open_matrix("X"));
  };
  const MatrixSummary roots = summary_of(Transform::kSqrtCounts);
  EXPECT_EQ(roots.scale, ValueScale::kSqrtCounts) << roots.scale_reason;
  EXPECT_STREQ(to_string(roots.scale), "sqrt-counts");
  EXPECT_NE(roots.scale_reason.find("100% of the"), std::string::npos) << roots.scale_reason;
  EXPECT_NE(roots.scale_reason.find("values checked square to whole numbers: square roots of counts"), std::string::npos) << roots.scale_reason;
  const MatrixSummary asinh = summary_of(Transform::kAsinhCounts);
  EXPECT_EQ(asinh.scale, ValueScale::kAsinhCounts) << asinh.scale_reason;
  EXPECT_NE(asinh.scale_reason.find("values checked have a whole sinh: asinh of counts"), std::string::npos) << asinh.scale_reason;
  const MatrixSummary other = summary_of(Transform::kLog1pGeneScaled);
  EXPECT_EQ(other.scale, ValueScale::kLogTransformed) << other.scale_reason;
  EXPECT_EQ(other.scale_reason.find("square"), std::string::npos) << other.scale_reason;
  EXPECT_EQ(other.scale_reason.find("sinh"), std::string::npos) << other.scale_reason;
  // Square roots of deep counts (above 30: not log-like) are told too; counts with a few
  // fractions (EM-quantified) are not square roots, though their whole values square to whole ones.
  EXPECT_EQ(summary_of(Transform::kSqrtDeepCounts).scale, ValueScale::kSqrtCounts);
  const MatrixSummary em = summary_of(Transform::kEmCounts);
  EXPECT_NE(em.scale, ValueScale::kSqrtCounts);
  EXPECT_EQ(em.scale_reason.find("square"), std::string::npos) << em.scale_reason;
}

// One cell has equal totals in both bases (there is nothing to compare it with): the base whose
// total is a power of ten (the scale factor) is the one that was used.
TEST(MatrixSummary, OrdMagTellsCellsFromEmptyDroplets) {
  // Cell Ranger 2's rule: a tenth of the 99th percentile of the largest values (up to 3,000).
  std::vector<double> barcodes(20000, 12.0);  // empty droplets
  for (int i = 0; i < 1300; ++i) barcodes.push_back(1000 + i);  // cells: 1,000-2,299 counts
  const double floor = ordmag_floor(barcodes);
  EXPECT_NEAR(floor, 226.9, 1e-9);  // (the 31st of the 3,000 largest, 2,269: index 3,000 / 100)
  EXPECT_EQ(std::count_if(barcodes.begin(), barcodes.end(), [floor](double v) { return v >= floor; }), 1300);
  EXPECT_DOUBLE_EQ(ordmag_floor({}), 1.0);
  EXPECT_DOUBLE_EQ(ordmag_floor({3.0, 5.0}), 1.0);  // (never below 1)
  EXPECT_DOUBLE_EQ(ordmag_floor(std::vector<double>(50, 400.0)), 40.0);  // a filtered matrix keeps every cell
}

TEST(MatrixSummary, ASingleCellIsReadInTheBaseThatGivesARoundTotal) {
  EXPECT_EQ(scale_of(1, Transform::kLog1pCp10k), ValueScale::kLogNormalized);
  EXPECT_EQ(scale_of(1, Transform::kLog2Cp10k), ValueScale::kLog2Normalized);
  EXPECT_EQ(scale_of(1, Transform::kLog10Cp10k), ValueScale::kLog10Normalized);
}

// A file joined from counts and log-normalised cells (sc.concat of differently processed
// samples) suits no one normalisation: it is reported as mixed wherever the two parts sit, since
// a scan of 2,000 cells reads 8 runs spread over the matrix, not its first cells.
TEST(MatrixSummary, CountsJoinedToLogNormalisedCellsAreReportedAsMixed) {
  SummarizeOptions scan;
  scan.max_rows = 2000;
  const MemoryDataset joined = make_cells(6000, Transform::kLog1pCp10k, 7, 5000);  // the last sixth log-normalised
  const MatrixSummary summary = summarize_matrix(*joined.open_matrix("X"), scan);
  EXPECT_EQ(summary.rows_scanned, 2000);
  EXPECT_TRUE(summary.mixed_scales);
  EXPECT_EQ(summary.scale, ValueScale::kUnknown);
  EXPECT_NEAR(static_cast<double>(summary.log_like_rows), 2000.0 / 6, 2000.0 / 8 + 1);
  EXPECT_NE(summary.scale_reason.find("differently processed"), std::string::npos) << summary.scale_reason;
  // the runs reach both ends: a last 5% is seen too
  const MemoryDataset tail = make_cells(20000, Transform::kLog1pCp10k, 7, 19000);
  const MatrixSummary tail_summary = summarize_matrix(*tail.open_matrix("X"), scan);
  EXPECT_EQ(tail_summary.rows_scanned, 2000);
  EXPECT_EQ(tail_summary.log_like_rows, 250);
  EXPECT_TRUE(tail_summary.mixed_scales);
  // up to twice the cells asked for, every cell is read
  const MemoryDataset small = make_cells(3000, Transform::kLog1pCp10k, 7, 2500);
  const MatrixSummary all = summarize_matrix(*small.open_matrix("X"), scan);
  EXPECT_EQ(all.rows_scanned, 3000);
  EXPECT_EQ(all.log_like_rows, 500);
  EXPECT_TRUE(all.mixed_scales);
  // one part alone, or a few stray cells of the other kind, is no mixture
  const MemoryDataset counts = make_cells(6000, Transform::kLog1pCp10k, 7, 6000);
  EXPECT_EQ(summarize_matrix(*counts.open_matrix("X"), scan).scale, ValueScale::kRawCounts);
  const MemoryDataset stray = make_cells(400, Transform::kLog1pCp10k, 7, 10);
  EXPECT_FALSE(summarize_matrix(*stray.open_matrix("X")).mixed_scales);
  // EM-quantified counts (a few fractions per cell) beside whole-number cells are counts too
  EXPECT_FALSE(summarize_matrix(*make_cells(400, Transform::kEmCounts, 7, 200).open_matrix("X")).mixed_scales);
  for (const Transform transform : {Transform::kCp10k, Transform::kLog1pCounts, Transform::kLog2Cp10k, Transform::kLog1pGeneScaled}) {
    EXPECT_FALSE(summarize_matrix(*make_cells(200, transform).open_matrix("X")).mixed_scales);
  }
}

}  // namespace
}  // namespace celltyper
