// Logs with a floor per cell, read with the floor as zero (floored_logs.hpp).
#include <celltyper/error.hpp>
#include <celltyper/floored_logs.hpp>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>
#include <utility>
#include <vector>

namespace celltyper {
namespace {

/// A row's floor: its smallest stored value, or 0 when the row leaves some value unstored (or
/// stores none).
template <typename Value>
double row_floor(const CsrRows<Value>& block, std::int64_t row) {
  const auto begin = static_cast<std::size_t>(block.indptr[static_cast<std::size_t>(row)]);
  const auto end = static_cast<std::size_t>(block.indptr[static_cast<std::size_t>(row) + 1]);
  if (begin == end || static_cast<std::int64_t>(end - begin) < block.n_cols) return 0.0;
  double smallest = block.values[begin];
  for (std::size_t k = begin + 1; k < end; ++k) smallest = std::min<double>(smallest, block.values[k]);
  return smallest;
}

/// Whether `value` is its row's `floor` (stored logs of one zero count are one value, rounding aside).
bool at_floor(double value, double floor) { return value - floor <= 1e-6 * std::max(1.0, std::abs(floor)); }

/// Subtract each row's floor, dropping the values it leaves at (about) 0: stored logs of one
/// zero count are one value, rounding aside.
template <typename Value>
void remove_floors(CsrRows<Value>& block) {
  std::vector<double> floors(static_cast<std::size_t>(block.n_rows));
  for (std::int64_t row = 0; row < block.n_rows; ++row) floors[static_cast<std::size_t>(row)] = row_floor(block, row);
  std::size_t written = 0;
  std::size_t begin = 0;
  for (std::int64_t row = 0; row < block.n_rows; ++row) {
    const auto end = static_cast<std::size_t>(block.indptr[static_cast<std::size_t>(row) + 1]);
    const double floor = floors[static_cast<std::size_t>(row)];
    for (std::size_t k = begin; k < end; ++k) {
      if (floor != 0.0 && at_floor(block.values[k], floor)) continue;
      block.indices[written] = block.indices[k];
      block.values[written] = static_cast<Value>(static_cast<double>(block.values[k]) - floor);
      ++written;
    }
    block.indptr[static_cast<std::size_t>(row) + 1] = static_cast<std::int64_t>(written);
    begin = end;
  }
  block.indices.resize(written);
  block.values.resize(written);
}

class FloorRemovedReader final : public MatrixReader {
 public:
  explicit FloorRemovedReader(std::unique_ptr<MatrixReader> base) : base_(std::move(base)) {}
  [[nodiscard]] const MatrixInfo& info() const override { return base_->info(); }
  void expect_reads(const std::vector<RowRange>& blocks) override { base_->expect_reads(blocks); }
  void read_rows(std::int64_t first, std::int64_t count, CsrBlock& out) override {
    base_->read_rows(first, count, out);
    remove_floors(out);
  }
  void read_rows(std::int64_t first, std::int64_t count, CsrBlockF64& out) override {
    base_->read_rows(first, count, out);
    remove_floors(out);
  }
  [[nodiscard]] std::vector<std::int64_t> row_nnz() override {
    // (the values left once the floors are gone: a pass over the matrix, dense and so small)
    std::vector<std::int64_t> counts;
    counts.reserve(static_cast<std::size_t>(n_rows()));
    CsrBlock block;
    constexpr std::int64_t kRows = 256;
    for (std::int64_t first = 0; first < n_rows(); first += kRows) {
      read_rows(first, std::min(kRows, n_rows() - first), block);
      for (std::int64_t row = 0; row < block.n_rows; ++row) {
        counts.push_back(block.indptr[static_cast<std::size_t>(row) + 1] - block.indptr[static_cast<std::size_t>(row)]);
      }
    }
    return counts;
  }
  [[nodiscard]] std::vector<RowRange> plan_blocks(std::size_t memory_limit_bytes) override { return base_->plan_blocks(memory_limit_bytes); }
  [[nodiscard]] std::size_t bytes_per_value() const override { return base_->bytes_per_value(); }

 private:
  std::unique_ptr<MatrixReader> base_;
};

class FlooredLogsDataset final : public Dataset {
 public:
  FlooredLogsDataset(std::unique_ptr<Dataset> base, std::set<std::string> floored, std::string note)
      : base_(std::move(base)), floored_(std::move(floored)), note_(std::move(note)) {}
  [[nodiscard]] const std::string& path() const override { return base_->path(); }
  [[nodiscard]] std::string format() const override { return base_->format(); }
  [[nodiscard]] std::int64_t n_obs() const override { return base_->n_obs(); }
  [[nodiscard]] std::int64_t n_vars() const override { return base_->n_vars(); }
  [[nodiscard]] DataFrame read_obs() const override { return base_->read_obs(); }
  [[nodiscard]] DataFrame read_obs_columns(const std::vector<std::string>& names) const override { return base_->read_obs_columns(names); }
  [[nodiscard]] std::vector<std::string> obs_column_names() const override { return base_->obs_column_names(); }
  [[nodiscard]] DataFrame read_var() const override { return base_->read_var(); }
  [[nodiscard]] std::vector<std::string> matrix_sources() const override { return base_->matrix_sources(); }
  [[nodiscard]] DataFrame read_var_of(const std::string& source) const override { return base_->read_var_of(source); }
  [[nodiscard]] MatrixInfo matrix_info(const std::string& source) const override { return base_->matrix_info(source); }
  [[nodiscard]] std::unique_ptr<MatrixReader> open_matrix(const std::string& source) const override {
    std::unique_ptr<MatrixReader> reader = base_->open_matrix(source);
    return floored_.contains(source) ? floor_removed(std::move(reader)) : std::move(reader);
  }
  [[nodiscard]] const H5adFile* h5ad_file() const override { return base_->h5ad_file(); }
  [[nodiscard]] std::string reading_note() const override {
    const std::string base = base_->reading_note();
    return base.empty() ? note_ : base + "; " + note_;
  }

 private:
  std::unique_ptr<Dataset> base_;
  std::set<std::string> floored_;
  std::string note_;
};

double median_of(std::vector<double>& values) {
  if (values.empty()) return 0.0;
  const auto middle = values.begin() + static_cast<std::ptrdiff_t>(values.size() / 2);
  std::nth_element(values.begin(), middle, values.end());
  return *middle;
}

}  // namespace

FloorScan scan_floor(MatrixReader& reader) {
  FloorScan scan;
  const std::int64_t rows = std::min(kFloorScanRows, reader.n_rows());
  if (rows <= 0 || reader.n_cols() <= 0) return scan;
  CsrBlock block;
  reader.read_rows(0, rows, block);
  std::vector<double> floors;
  std::vector<double> shares;
  for (std::int64_t row = 0; row < block.n_rows; ++row) {
    const auto begin = static_cast<std::size_t>(block.indptr[static_cast<std::size_t>(row)]);
    const auto end = static_cast<std::size_t>(block.indptr[static_cast<std::size_t>(row) + 1]);
    if (begin == end) continue;
    ++scan.cells;
    const double floor = row_floor(block, row);
    if (floor == 0.0 || !std::isfinite(floor)) continue;
    const auto held = std::count_if(block.values.begin() + static_cast<std::ptrdiff_t>(begin), block.values.begin() + static_cast<std::ptrdiff_t>(end),
                                    [floor](float value) { return at_floor(value, floor); });
    const double share = static_cast<double>(held) / static_cast<double>(block.n_cols);
    if (share < kFloorGeneShare) continue;
    ++scan.floored_cells;
    floors.push_back(floor);
    shares.push_back(share);
  }
  scan.median_floor = median_of(floors);
  scan.median_share = median_of(shares);
  return scan;
}

std::unique_ptr<MatrixReader> floor_removed(std::unique_ptr<MatrixReader> base) { return std::make_unique<FloorRemovedReader>(std::move(base)); }

std::unique_ptr<Dataset> with_floors_removed(std::unique_ptr<Dataset> base) {
  std::set<std::string> floored;
  std::vector<std::string> said;
  for (const std::string& source : base->matrix_sources()) {
    FloorScan scan;
    try {
      const MatrixInfo info = base->matrix_info(source);
      // (a matrix leaving half its values unstored has 0 for a floor)
      if (info.n_rows <= 0 || info.n_cols <= 0 ||
          static_cast<double>(info.nnz) < 0.5 * static_cast<double>(info.n_rows) * static_cast<double>(info.n_cols)) {
        continue;
      }
      std::unique_ptr<MatrixReader> reader = base->open_matrix(source);
      scan = scan_floor(*reader);
    } catch (const Error&) {
      continue;  // (a matrix that cannot be read, a layer of booleans: said when a command reads it, not here)
    }
    if (!scan.floored()) continue;
    floored.insert(source);
    said.push_back(fmt::format("{} ({} of the {} cells scanned: smallest value {:.3g} in the median, held by {:.0f}% of the genes)", source,
                               scan.floored_cells, scan.cells, scan.median_floor, 100.0 * scan.median_share));
  }
  if (floored.empty()) return base;
  std::string note = fmt::format("{} hold{} logs with a floor per cell, every gene without a count at the cell's smallest value, not at 0 "
                                 "(edgeR's cpm(log = TRUE), or log(x + a pseudocount other than 1)): each cell's floor is read as 0",
                                 fmt::join(said, "; "), said.size() == 1 ? "s" : "");
  return std::make_unique<FlooredLogsDataset>(std::move(base), std::move(floored), std::move(note));
}

}  // namespace celltyper
