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
/// in base e, 2 or 10; `per_gene` multiplies each gene by a non-integer factor first (TPM-like).
CsrBlockF64 logged(const CsrBlockF64& counts, double base, double target = 1e4, bool per_gene = false) {
  CsrBlockF64 out = counts;
  for (std::int64_t i = 0; i < out.n_rows; ++i) {
    const auto begin = static_cast<std::size_t>(out.indptr[static_cast<std::size_t>(i)]);
    const auto end = static_cast<std::size_t>(out.indptr[static_cast<std::size_t>(i) + 1]);
    double total = 0;
    for (std::size_t k = begin; k < end; ++k) total += out.values[k];
    for (std::size_t k = begin; k < end; ++k) {
      const double gene_factor = per_gene ? 1000.0 / (500.0 + 13.7 * out.indices[k]) : 1.0;
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
      std::string note;
      const auto recovered = recover_counts(logs, "X", std::size_t{32} << 20, note);
      ASSERT_NE(recovered, nullptr);
      EXPECT_NE(note.find("log-normalised counts"), std::string::npos) << note;
      EXPECT_EQ(recovered->path(), logs.path());
      EXPECT_EQ(recovered->n_obs(), logs.n_obs());
      const CsrBlockF64 back = read_all(*recovered);
      EXPECT_EQ(back.indptr, counts.indptr);
      EXPECT_EQ(back.indices, counts.indices);
      EXPECT_EQ(back.values, counts.values);
    }
  }
}

TEST(RecoveredCounts, ACellWhoseSmallestCountIsTwoKeepsItsCounts) {
  CsrBlockF64 counts = make_counts(300, 5);
  // The last cell: every count doubled but one gene at 3, so its smallest (2) is a count of 2.
  const auto begin = static_cast<std::size_t>(counts.indptr[static_cast<std::size_t>(counts.n_rows) - 1]);
  for (std::size_t k = begin; k < counts.values.size(); ++k) counts.values[k] *= 2;
  counts.values.back() = 3;
  const MemoryDataset logs = dataset_of(logged(counts, std::exp(1.0)));
  std::string note;
  const auto recovered = recover_counts(logs, "X", std::size_t{32} << 20, note);
  ASSERT_NE(recovered, nullptr);
  const CsrBlockF64 back = read_all(*recovered);
  EXPECT_EQ(back.values, counts.values);
}

TEST(RecoveredCounts, LogsOfOtherValuesAndCountsThemselvesAreLeftAlone) {
  const CsrBlockF64 counts = make_counts(400, 7);
  std::string note;
  const MemoryDataset tpm = dataset_of(logged(counts, std::exp(1.0), 1e6, true));
  EXPECT_EQ(recover_counts(tpm, "X", std::size_t{32} << 20, note), nullptr) << "log1p(TPM): not counts times a per-cell factor";
  const MemoryDataset plain = dataset_of(counts);
  EXPECT_EQ(recover_counts(plain, "X", std::size_t{32} << 20, note), nullptr) << "counts already";
  EXPECT_TRUE(note.empty());
}

}  // namespace
}  // namespace celltyper
