// A dataset's cells seen as a dataset of their own (annotate reads a padded sample of a joined
// file this way): every block of the subset holds base's rows, in any block size and any runs.
#include <celltyper/error.hpp>
#include <celltyper/memory_dataset.hpp>
#include <celltyper/row_subset_dataset.hpp>

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

namespace celltyper {
namespace {

/// `n` cells x 7 genes of random sparse values; obs with a categorical and a float column.
MemoryDataset random_cells(int n) {
  std::mt19937 rng(3);
  DataFrame obs;
  std::vector<std::string> samples;
  std::vector<double> depth;
  for (int i = 0; i < n; ++i) {
    obs.index.push_back("cell" + std::to_string(i));
    samples.push_back(i < n / 2 ? "a" : "b");
    depth.push_back(i * 1.5);
  }
  obs.columns.push_back(Column::categorical("sample", samples));
  obs.columns.push_back(Column::from_floats("depth", depth));
  DataFrame var;
  for (int g = 0; g < 7; ++g) var.index.push_back("G" + std::to_string(g));
  CsrBlockF64 matrix;
  matrix.reset(0, n, 7);
  std::uniform_int_distribution<int> value(0, 3);
  for (int i = 0; i < n; ++i) {
    for (int g = 0; g < 7; ++g) {
      if (const int v = value(rng); v != 0) {
        matrix.indices.push_back(g);
        matrix.values.push_back(v + 0.25 * i);
      }
    }
    matrix.indptr.push_back(static_cast<std::int64_t>(matrix.indices.size()));
  }
  return MemoryDataset("cells", obs, var, matrix);
}

/// Row `row` of `block` as (column, value) pairs.
std::vector<std::pair<int, float>> row_of(const CsrBlock& block, std::int64_t row) {
  std::vector<std::pair<int, float>> out;
  for (auto k = block.indptr[static_cast<std::size_t>(row)]; k < block.indptr[static_cast<std::size_t>(row) + 1]; ++k) {
    out.emplace_back(block.indices[static_cast<std::size_t>(k)], block.values[static_cast<std::size_t>(k)]);
  }
  return out;
}

TEST(RowSubsetDataset, ReadsBasesRowsInAnyBlocks) {
  const MemoryDataset base = random_cells(40);
  const std::vector<std::int64_t> rows = {0, 1, 2, 5, 9, 10, 11, 12, 30, 39};  // runs and single rows
  const RowSubsetDataset subset(base, rows, "cells [sample=x]");
  EXPECT_EQ(subset.path(), "cells [sample=x]");
  EXPECT_EQ(subset.n_obs(), 10);
  EXPECT_EQ(subset.n_vars(), 7);
  EXPECT_EQ(subset.matrix_info("X").n_rows, 10);

  CsrBlock all;
  base.open_matrix("X")->read_rows(0, 40, all);
  const auto reader = subset.open_matrix("X");
  for (std::int64_t size : {1, 3, 10}) {
    for (std::int64_t first = 0; first < 10; first += size) {
      const std::int64_t count = std::min<std::int64_t>(size, 10 - first);
      CsrBlock block;
      reader->read_rows(first, count, block);
      ASSERT_EQ(block.first_row, first);
      ASSERT_EQ(block.n_rows, count);
      ASSERT_EQ(block.n_cols, 7);
      for (std::int64_t i = 0; i < count; ++i) EXPECT_EQ(row_of(block, i), row_of(all, rows[static_cast<std::size_t>(first + i)]));
    }
  }
  std::vector<std::int64_t> expected_nnz;
  const std::vector<std::int64_t> base_nnz = base.open_matrix("X")->row_nnz();
  for (const std::int64_t row : rows) expected_nnz.push_back(base_nnz[static_cast<std::size_t>(row)]);
  EXPECT_EQ(reader->row_nnz(), expected_nnz);
  // Streaming the whole subset gives its rows in order.
  std::int64_t streamed = 0;
  for_each_block(*reader, BlockStreamOptions{}, [&](const CsrBlock& block) {
    for (std::int64_t i = 0; i < block.n_rows; ++i) {
      EXPECT_EQ(row_of(block, i), row_of(all, rows[static_cast<std::size_t>(block.first_row + i)]));
      ++streamed;
    }
  });
  EXPECT_EQ(streamed, 10);
  CsrBlock block;
  EXPECT_THROW(reader->read_rows(8, 3, block), InputError);

  // obs holds the rows' names and values.
  const DataFrame obs = subset.read_obs();
  ASSERT_EQ(obs.n_rows(), 10u);
  EXPECT_EQ(obs.index[3], "cell5");
  EXPECT_EQ(obs.at("sample", "obs").value_as_string(8), "b");
  EXPECT_EQ(obs.at("depth", "obs").numbers[9], 39 * 1.5);
  EXPECT_EQ(subset.read_obs_columns({"sample"}).columns.size(), 1u);
}

TEST(RowSubsetDataset, RefusesRowsOutOfOrderOrRange) {
  const MemoryDataset base = random_cells(5);
  EXPECT_THROW(RowSubsetDataset(base, {2, 1}, "x"), InputError);
  EXPECT_THROW(RowSubsetDataset(base, {1, 1}, "x"), InputError);
  EXPECT_THROW(RowSubsetDataset(base, {0, 5}, "x"), InputError);
  EXPECT_NO_THROW(RowSubsetDataset(base, {}, "x"));
}

}  // namespace
}  // namespace celltyper
