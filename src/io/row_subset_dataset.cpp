#include <celltyper/row_subset_dataset.hpp>

#include <celltyper/error.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <utility>

namespace celltyper {

namespace {

template <typename T>
std::vector<T> take(const std::vector<T>& values, const std::vector<std::int64_t>& rows) {
  if (values.empty()) return {};
  std::vector<T> out;
  out.reserve(rows.size());
  for (const std::int64_t row : rows) out.push_back(values[static_cast<std::size_t>(row)]);
  return out;
}

MatrixInfo subset_info(MatrixInfo info, std::int64_t n_rows) {
  // nnz scaled to the rows kept (an estimate for memory planning; blocks are planned from the
  // rows' own counts)
  if (info.n_rows > 0) info.nnz = static_cast<std::int64_t>(static_cast<double>(info.nnz) * static_cast<double>(n_rows) / static_cast<double>(info.n_rows));
  info.n_rows = n_rows;
  return info;
}

class RowSubsetReader final : public MatrixReader {
 public:
  RowSubsetReader(std::unique_ptr<MatrixReader> base, std::vector<std::int64_t> rows)
      : base_(std::move(base)), rows_(std::move(rows)), info_(subset_info(base_->info(), static_cast<std::int64_t>(rows_.size()))) {}
  [[nodiscard]] const MatrixInfo& info() const override { return info_; }
  void read_rows(std::int64_t first, std::int64_t count, CsrBlock& out) override { gather(first, count, out, scratch_); }
  void read_rows(std::int64_t first, std::int64_t count, CsrBlockF64& out) override { gather(first, count, out, scratch64_); }
  [[nodiscard]] std::vector<std::int64_t> row_nnz() override { return take(base_->row_nnz(), rows_); }
  [[nodiscard]] std::size_t bytes_per_value() const override { return base_->bytes_per_value(); }
  /// The base's runs that reading `blocks` reads, in order.
  void expect_reads(const std::vector<RowRange>& blocks) override {
    std::vector<RowRange> runs;
    for (const RowRange& block : blocks) {
      if (block.begin < 0 || block.end > static_cast<std::int64_t>(rows_.size())) {  // (read_rows says what is wrong)
        base_->expect_reads({});
        return;
      }
      for_each_run(block.begin, block.size(), [&runs](std::int64_t, std::int64_t, std::int64_t first, std::int64_t end) {
        runs.push_back({first, end});
      });
    }
    base_->expect_reads(runs);
  }

 private:
  /// Rows [first, first + count) of the subset as runs of base rows: `run(i, j, begin, end)` for
  /// subset rows [i, j), read as base rows [begin, end), a run spanning rows at most kMaxGap
  /// apart (one read of the span, its other rows skipped: a chunked or banded file reads a few
  /// close rows faster together than one by one).
  template <typename Run>
  void for_each_run(std::int64_t first, std::int64_t count, Run run) const {
    constexpr std::int64_t kMaxGap = 16;
    const auto row = [this](std::int64_t i) { return rows_[static_cast<std::size_t>(i)]; };
    for (std::int64_t i = first; i < first + count;) {
      std::int64_t j = i + 1;
      while (j < first + count && row(j) - row(j - 1) <= kMaxGap) ++j;
      run(i, j, row(i), row(j - 1) + 1);
      i = j;
    }
  }

  /// Rows [first, first + count) of the subset, read in runs (for_each_run).
  template <typename Block>
  void gather(std::int64_t first, std::int64_t count, Block& out, Block& scratch) {
    const auto n = static_cast<std::int64_t>(rows_.size());
    if (first < 0 || count < 0 || first + count > n) {
      throw InputError(fmt::format("{}: rows {}..{} requested from a subset of {} rows", info_.source, first, first + count, n));
    }
    out.reset(first, count, base_->n_cols());
    for_each_run(first, count, [&](std::int64_t i, std::int64_t j, std::int64_t begin, std::int64_t end) {
      base_->read_rows(begin, end - begin, scratch);
      for (std::int64_t k = i; k < j; ++k) {
        const auto local = static_cast<std::size_t>(rows_[static_cast<std::size_t>(k)] - begin);
        const auto from = static_cast<std::ptrdiff_t>(scratch.indptr[local]);
        const auto to = static_cast<std::ptrdiff_t>(scratch.indptr[local + 1]);
        out.indices.insert(out.indices.end(), scratch.indices.begin() + from, scratch.indices.begin() + to);
        out.values.insert(out.values.end(), scratch.values.begin() + from, scratch.values.begin() + to);
        out.indptr.push_back(static_cast<std::int64_t>(out.indices.size()));
      }
    });
  }

  std::unique_ptr<MatrixReader> base_;
  std::vector<std::int64_t> rows_;
  MatrixInfo info_;
  CsrBlock scratch_;
  CsrBlockF64 scratch64_;
};

}  // namespace

DataFrame take_rows(const DataFrame& frame, const std::vector<std::int64_t>& rows) {
  DataFrame out;
  out.index_name = frame.index_name;
  out.origin = frame.origin;
  out.index = take(frame.index, rows);
  for (const Column& column : frame.columns) {
    Column taken;
    taken.name = column.name;
    taken.kind = column.kind;
    taken.dtype = column.dtype;
    taken.strings = take(column.strings, rows);
    taken.codes = take(column.codes, rows);
    taken.categories = column.categories;
    taken.categories_dtype = column.categories_dtype;
    taken.ordered = column.ordered;
    taken.numbers = take(column.numbers, rows);
    taken.integers = take(column.integers, rows);
    taken.booleans = take(column.booleans, rows);
    taken.mask = take(column.mask, rows);
    out.columns.push_back(std::move(taken));
  }
  return out;
}

RowSubsetDataset::RowSubsetDataset(const Dataset& base, std::vector<std::int64_t> rows, std::string name)
    : base_(base), rows_(std::move(rows)), name_(std::move(name)) {
  for (std::size_t i = 0; i < rows_.size(); ++i) {
    if (rows_[i] < 0 || rows_[i] >= base.n_obs() || (i > 0 && rows_[i] <= rows_[i - 1])) {
      throw InputError(fmt::format("{}: row {} of a subset is not an ascending row of its {} cells", name_, rows_[i], base.n_obs()));
    }
  }
}

DataFrame RowSubsetDataset::read_obs() const { return take_rows(base_.read_obs(), rows_); }

DataFrame RowSubsetDataset::read_obs_columns(const std::vector<std::string>& names) const {
  return take_rows(base_.read_obs_columns(names), rows_);
}

MatrixInfo RowSubsetDataset::matrix_info(const std::string& source) const {
  return subset_info(base_.matrix_info(source), n_obs());
}

std::unique_ptr<MatrixReader> RowSubsetDataset::open_matrix(const std::string& source) const {
  return std::make_unique<RowSubsetReader>(base_.open_matrix(source), rows_);
}

}  // namespace celltyper
