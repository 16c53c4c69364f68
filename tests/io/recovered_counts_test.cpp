// Counts read back from log-normalised values (recovered_counts.hpp).
#include <celltyper/memory_dataset.hpp>
#include <celltyper/recovered_counts.hpp>

#include <gtest/gtest.h>

#include <cmath>
#include <random>

namespace celltyper {
namespace {

constexpr int kGenes = 300;

/// Poisson counts of `n_cells` cells (each at its own depth, a few deep genes), every cell's
/// smallest count 1.
CsrBlockF64 make_counts(int n_cells, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> depth(0.2, 3.0);
  CsrBlockF64 matrix;
  matrix.reset(0, 0, kGenes);
  for (int i = 0; i < n_cells; ++i) {
    const double scale = depth(rng);
    matrix.indices.push_back(0);
    matrix.values.push_back(1);  // every cell has a gene seen once
    for (int g = 1; g < kGenes; ++g) {
      std::poisson_distribution<int> draw(scale * (g % 17 == 0 ? 40.0 : g % 3 == 0 ? 2.0 : 0.3));
      const int value = draw(rng);
      if (value == 0) continue;
      matrix.indices.push_back(g);
      matrix.values.push_back(value);
    }
    matrix.indptr.push_back(static_cast<std::int64_t>(matrix.indices.size()));
    ++matrix.n_rows;
  }
  return matrix;
}

/// `counts` stored as `log(1 + factor * n)` in float32 precision (factor per cell: target / total),
/// in base e, 2 or 10; `per_gene` multiplies each gene by a non-integer factor first and totals
/// those (TPM: values per gene length, summing to the target).
CsrBlockF64 logged(const CsrBlockF64& counts, double base, double target = 1e4, bool per_gene = false) {
  CsrBlockF64 out = counts;
  for (std::int64_t i = 0; i < out.n_rows; ++i) {
    const auto begin = static_cast<std::size_t>(out.indptr[static_cast<std::size_t>(i)]);
    const auto end = static_cast<std::size_t>(out.indptr[static_cast<std::size_t>(i) + 1]);
    double total = 0;
    const auto gene_factor_of = [&](std::size_t k) { return per_gene ? 1000.0 / (500.0 + 13.7 * out.indices[k]) : 1.0; };
    for (std::size_t k = begin; k < end; ++k) total += out.values[k] * gene_factor_of(k);
    for (std::size_t k = begin; k < end; ++k) {
      const double gene_factor = gene_factor_of(k);
      const double value = std::log1p(out.values[k] * gene_factor * target / total) / std::log(base);
      out.values[k] = static_cast<float>(value);
    }
  }
  return out;
}

MemoryDataset dataset_of(CsrBlockF64 matrix) {
  DataFrame obs;
  for (std::int64_t i = 0; i < matrix.n_rows; ++i) obs.index.push_back("cell" + std::to_string(i));
  DataFrame var;
  for (int g = 0; g < kGenes; ++g) var.index.push_back("G" + std::to_string(g));
  return MemoryDataset("generated", std::move(obs), std::move(var), std::move(matrix));
}

CsrBlockF64 read_all(const Dataset& dataset) {
  auto reader = dataset.open_matrix("X");
  CsrBlockF64 all;
  reader->read_rows(0, reader->n_rows(), all);
  return all;
}

TEST(RecoveredCounts, LogNormalisedCountsReadBackExactlyInEachBase) {
  const CsrBlockF64 counts = make_counts(400, 3);
  for (const double base : {std::exp(1.0), 2.0, 10.0}) {
    SCOPED_TRACE(base);
    for (const double target : {1e4, 1e6, 2345.0}) {  // CP10k, CPM, scanpy's median total
      SCOPED_TRACE(target);
      const MemoryDataset logs = dataset_of(logged(counts, base, target));
      const CountsRecovery recovery = recover_counts(logs, "X", std::size_t{32} << 20);
      const auto& recovered = recovery.dataset;
      ASSERT_NE(recovered, nullptr);
      EXPECT_NE(recovery.note.find("400 of 400 cells checked read back whole"), std::string::npos) << recovery.note;
      EXPECT_TRUE(recovery.warning.empty()) << recovery.warning;
      EXPECT_EQ(recovered->path(), logs.path());
      EXPECT_EQ(recovered->n_obs(), logs.n_obs());
      const CsrBlockF64 back = read_all(*recovered);
      EXPECT_EQ(back.indptr, counts.indptr);
      EXPECT_EQ(back.indices, counts.indices);
      EXPECT_EQ(back.values, counts.values);
    }
  }
}

// Square roots and asinh of counts (float32) read back as the counts, as logs of counts do.
TEST(RecoveredCounts, SquareRootsAndAsinhOfCountsReadBackExactly) {
  const CsrBlockF64 counts = make_counts(400, 5);
  for (const bool square : {true, false}) {
    SCOPED_TRACE(square ? "sqrt" : "asinh");
    CsrBlockF64 values = counts;
    for (double& value : values.values) value = static_cast<float>(square ? std::sqrt(value) : std::asinh(value));
    const MemoryDataset transformed = dataset_of(std::move(values));
    const CountsRecovery recovery = recover_counts(transformed, "X", std::size_t{32} << 20);
    ASSERT_NE(recovery.dataset, nullptr) << recovery.warning;
    EXPECT_NE(recovery.note.find(square ? "X holds square roots of counts, read back per cell (the square of each value"
                                        : "X holds asinh of counts, read back per cell (sinh of each value"),
              std::string::npos)
        << recovery.note;
    EXPECT_TRUE(recovery.warning.empty()) << recovery.warning;
    const CsrBlockF64 back = read_all(*recovery.dataset);
    EXPECT_EQ(back.indices, counts.indices);
    EXPECT_EQ(back.values, counts.values);
  }
}

TEST(RecoveredCounts, ACellWhoseSmallestCountIsTwoKeepsItsCounts) {
  CsrBlockF64 counts = make_counts(300, 5);
  // The last cell: every count doubled but one gene at 3, so its smallest (2) is a count of 2.
  const auto begin = static_cast<std::size_t>(counts.indptr[static_cast<std::size_t>(counts.n_rows) - 1]);
  for (std::size_t k = begin; k < counts.values.size(); ++k) counts.values[k] *= 2;
  counts.values.back() = 3;
  const MemoryDataset logs = dataset_of(logged(counts, std::exp(1.0)));
  const auto recovered = recover_counts(logs, "X", std::size_t{32} << 20).dataset;
  ASSERT_NE(recovered, nullptr);
  const CsrBlockF64 back = read_all(*recovered);
  EXPECT_EQ(back.values, counts.values);
}

TEST(RecoveredCounts, LogsWrittenWithThreeDecimalsReadBackAndNoCellTakesAWrongMultiple) {
  // (GEO tables and scanpy's pbmc68k_reduced keep 3 decimals: a count of 40 then reads back as
  // 39.97 or so; no cell may read back as 4 or 10 times its counts because a larger multiple
  // widened the tolerance past use.)
  const CsrBlockF64 counts = make_counts(400, 11);
  CsrBlockF64 rounded = logged(counts, std::exp(1.0));
  for (double& value : rounded.values) value = std::round(value * 1000.0) / 1000.0;
  const MemoryDataset logs = dataset_of(rounded);  // (the recovered dataset reads it: it must outlive it)
  const CountsRecovery recovery = recover_counts(logs, "X", std::size_t{32} << 20);
  ASSERT_NE(recovery.dataset, nullptr) << recovery.warning;
  const CsrBlockF64 back = read_all(*recovery.dataset);
  ASSERT_EQ(back.values.size(), counts.values.size());
  std::size_t exact = 0;
  for (std::int64_t i = 0; i < counts.n_rows; ++i) {
    double total = 0;
    double back_total = 0;
    for (std::int64_t k = counts.indptr[static_cast<std::size_t>(i)]; k < counts.indptr[static_cast<std::size_t>(i) + 1]; ++k) {
      total += counts.values[static_cast<std::size_t>(k)];
      back_total += back.values[static_cast<std::size_t>(k)];
      if (back.values[static_cast<std::size_t>(k)] == counts.values[static_cast<std::size_t>(k)]) ++exact;
    }
    EXPECT_NEAR(back_total / total, 1.0, 0.01) << "cell " << i;  // never a multiple of the counts
  }
  EXPECT_GT(static_cast<double>(exact), 0.99 * static_cast<double>(counts.values.size()));
}

TEST(RecoveredCounts, CellsThatDoNotReadBackWholeKeepTheirProportionsAndAreCounted) {
  // 5 of 200 cells scaled gene by gene (another processing): the others read back as counts, these
  // keep their values' ratios (not rounded into counts they never had), and a warning counts them.
  CsrBlockF64 counts = make_counts(200, 13);
  CsrBlockF64 logs = logged(counts, std::exp(1.0));
  const CsrBlockF64 other = logged(counts, std::exp(1.0), 1e4, true);  // (the same cells, per-gene factors)
  for (std::int64_t i = 0; i < 5; ++i) {
    for (std::int64_t k = logs.indptr[static_cast<std::size_t>(i)]; k < logs.indptr[static_cast<std::size_t>(i) + 1]; ++k) {
      logs.values[static_cast<std::size_t>(k)] = other.values[static_cast<std::size_t>(k)];
    }
  }
  const MemoryDataset mixed = dataset_of(logs);
  const CountsRecovery recovery = recover_counts(mixed, "X", std::size_t{32} << 20);
  ASSERT_NE(recovery.dataset, nullptr);
  EXPECT_NE(recovery.warning.find("5 of 200 cells checked do not read back whole"), std::string::npos) << recovery.warning;
  const CsrBlockF64 back = read_all(*recovery.dataset);
  for (std::int64_t i = 0; i < back.n_rows; ++i) {
    const auto begin = static_cast<std::size_t>(back.indptr[static_cast<std::size_t>(i)]);
    const auto end = static_cast<std::size_t>(back.indptr[static_cast<std::size_t>(i) + 1]);
    double smallest = 1e300;
    for (std::size_t k = begin; k < end; ++k) smallest = std::min(smallest, std::expm1(static_cast<double>(logs.values[k])));
    for (std::size_t k = begin; k < end; ++k) {
      if (i < 5) {
        EXPECT_NEAR(back.values[k], std::expm1(static_cast<double>(logs.values[k])) / smallest, 1e-9 * back.values[k]) << "cell " << i;
      } else {
        EXPECT_EQ(back.values[k], counts.values[k]) << "cell " << i;
      }
    }
  }
}

TEST(RecoveredCounts, LogsOfOtherValuesAndCountsThemselvesAreLeftAlone) {
  const CsrBlockF64 counts = make_counts(400, 7);
  const MemoryDataset tpm = dataset_of(logged(counts, std::exp(1.0), 1e6, true));
  const CountsRecovery from_tpm = recover_counts(tpm, "X", std::size_t{32} << 20);
  EXPECT_EQ(from_tpm.dataset, nullptr) << "log1p(TPM): not counts times a per-cell factor";
  EXPECT_NE(from_tpm.warning.find("X holds log-normalised values whose counts cannot be read back"), std::string::npos) << from_tpm.warning;
  const MemoryDataset plain = dataset_of(counts);
  const CountsRecovery from_counts = recover_counts(plain, "X", std::size_t{32} << 20);
  EXPECT_EQ(from_counts.dataset, nullptr) << "counts already";
  EXPECT_TRUE(from_counts.note.empty());
  EXPECT_TRUE(from_counts.warning.empty());
}

}  // namespace
}  // namespace celltyper
