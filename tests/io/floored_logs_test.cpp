// Logs with a floor per cell (floored_logs.hpp): which matrices are floored, and how each cell's
// floor is read as 0.
#include <celltyper/floored_logs.hpp>
#include <celltyper/memory_dataset.hpp>

#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

namespace celltyper {
namespace {

/// A dataset of `rows` stored as given (an entry of NaN is left unstored).
MemoryDataset dataset_of(const std::vector<std::vector<double>>& rows) {
  CsrBlockF64 matrix;
  matrix.reset(0, static_cast<std::int64_t>(rows.size()), static_cast<std::int64_t>(rows.front().size()));
  for (const auto& row : rows) {
    for (std::size_t j = 0; j < row.size(); ++j) {
      if (std::isnan(row[j])) continue;
      matrix.indices.push_back(static_cast<std::int32_t>(j));
      matrix.values.push_back(row[j]);
    }
    matrix.indptr.push_back(static_cast<std::int64_t>(matrix.values.size()));
  }
  DataFrame obs;
  DataFrame var;
  for (std::size_t i = 0; i < rows.size(); ++i) obs.index.push_back("c" + std::to_string(i));
  for (std::size_t j = 0; j < rows.front().size(); ++j) var.index.push_back("g" + std::to_string(j));
  return MemoryDataset("cells", std::move(obs), std::move(var), std::move(matrix));
}

TEST(FlooredLogs, EachCellsFloorIsReadAsZeroAndItsGenesAreNoLongerStored) {
  // log2 of (count + prior) per cell: the floor differs per cell (9.5, -0.3), held by most genes.
  const MemoryDataset floored = dataset_of({{9.5, 9.5, 11.5, 9.5, 9.5}, {-0.3, 2.7, -0.3, -0.3, 0.7}});
  auto reader = floored.open_matrix("X");
  const FloorScan scan = scan_floor(*reader);
  EXPECT_EQ(scan.cells, 2);
  EXPECT_EQ(scan.floored_cells, 2);
  EXPECT_TRUE(scan.floored());
  EXPECT_NEAR(scan.median_share, 0.8, 1e-12);  // (the upper median of 0.8 and 0.6)

  auto removed = floor_removed(floored.open_matrix("X"));
  CsrBlockF64 block;
  removed->read_rows(0, 2, block);
  ASSERT_EQ(block.indptr[1], 1);
  EXPECT_EQ(block.indices[0], 2);
  EXPECT_DOUBLE_EQ(block.values[0], 2.0);
  ASSERT_EQ(block.indptr[2], 3);
  EXPECT_EQ(block.indices[1], 1);
  EXPECT_NEAR(block.values[1], 3.0, 1e-12);
  EXPECT_EQ(block.indices[2], 4);
  EXPECT_NEAR(block.values[2], 1.0, 1e-12);
  EXPECT_EQ(removed->row_nnz(), (std::vector<std::int64_t>{1, 2}));

  // A row leaving values unstored has 0 for its floor: read as it is.
  const MemoryDataset sparse = dataset_of({{NAN, 2.0, 2.0, 2.0, 3.0}, {1.0, 1.0, 1.0, 1.0, NAN}});
  auto sparse_reader = sparse.open_matrix("X");
  EXPECT_FALSE(scan_floor(*sparse_reader).floored());
  auto kept = floor_removed(sparse.open_matrix("X"));
  kept->read_rows(0, 2, block);
  EXPECT_EQ(block.nnz(), 8);
  EXPECT_DOUBLE_EQ(block.values[0], 2.0);
}

TEST(FlooredLogs, CentredLogsAndDenseCountsAreNotFloored) {
  // z-scores: a gene's zero count has its own value; dense counts and logs: a floor of 0.
  const MemoryDataset centred = dataset_of({{-0.4, -1.1, 2.0, -0.2, 0.3}, {-0.4, 1.5, -0.7, -0.2, -0.1}});
  auto reader = centred.open_matrix("X");
  EXPECT_FALSE(scan_floor(*reader).floored());
  const MemoryDataset dense = dataset_of({{0, 0, 3, 0, 1}, {0, 2, 0, 0, 0}});
  auto dense_reader = dense.open_matrix("X");
  EXPECT_FALSE(scan_floor(*dense_reader).floored());
  // The dataset wrapper leaves such datasets as they are, and says which matrix it reads so.
  std::unique_ptr<Dataset> same = with_floors_removed(std::make_unique<MemoryDataset>(dense));
  EXPECT_EQ(same->reading_note(), "");
  std::unique_ptr<Dataset> wrapped = with_floors_removed(std::make_unique<MemoryDataset>(dataset_of({{5, 5, 6, 5}, {4, 4, 4, 7}})));
  EXPECT_NE(wrapped->reading_note().find("X (2 of the 2 cells scanned: smallest value 5 in the median, held by 75% of the genes) holds logs with "
                                         "a floor per cell"),
            std::string::npos)
      << wrapped->reading_note();
}

}  // namespace
}  // namespace celltyper
