// Binomial thinning of a dataset's counts (thinned_dataset.hpp).
#include <celltyper/error.hpp>
#include <celltyper/thinned_dataset.hpp>

#include "splitmix64.hpp"

#include <fmt/format.h>

#include <cmath>
#include <cstring>
#include <random>

namespace celltyper {
namespace {

using detail::SplitMix64;

std::uint64_t mix(std::uint64_t a, std::uint64_t b) { return SplitMix64{a ^ (b * 0xD1B54A32D192ED03ULL)}.next(); }

/// Counts above this are drawn by the standard library's binomial (seeded from the same key).
constexpr double kBernoulliCounts = 32;
/// Counts above this (no molecule count is: values of another kind) keep their share p, as
/// non-integer values do; libstdc++'s binomial does not return for counts near 2^63.
constexpr double kBinomialCounts = 1e12;

/// Keys of a matrix's columns: the given gene keys (offset so that they never equal an index
/// key), else the column index.
class ColumnKeys {
 public:
  ColumnKeys(const std::vector<std::int64_t>& keys, std::int64_t n_cols) : keys_(static_cast<std::int64_t>(keys.size()) == n_cols ? &keys : nullptr) {}
  /// The column's key and whether it identifies the cell: a gene key does; without gene keys
  /// every column does (by position).
  [[nodiscard]] std::pair<std::uint64_t, bool> of(std::int32_t column) const {
    if (keys_ == nullptr) return {static_cast<std::uint64_t>(column), true};
    if ((*keys_)[static_cast<std::size_t>(column)] >= 0) {
      return {static_cast<std::uint64_t>((*keys_)[static_cast<std::size_t>(column)]) ^ 0x5A5A000000000000ULL, true};
    }
    return {static_cast<std::uint64_t>(column), false};
  }

 private:
  const std::vector<std::int64_t>* keys_;
};

std::uint64_t value_bits(double value) {
  std::uint64_t bits = 0;
  std::memcpy(&bits, &value, sizeof bits);
  return bits;
}

/// The key of the cell in row i of `block`: an order-independent sum over its keyed columns.
template <typename Value>
std::uint64_t cell_key(const CsrRows<Value>& block, std::int64_t i, const ColumnKeys& keys, std::uint64_t seed) {
  std::uint64_t sum = seed;
  for (std::int64_t k = block.indptr[static_cast<std::size_t>(i)]; k < block.indptr[static_cast<std::size_t>(i) + 1]; ++k) {
    const auto [key, identifies] = keys.of(block.indices[static_cast<std::size_t>(k)]);
    if (identifies) sum += mix(key, value_bits(static_cast<double>(block.values[static_cast<std::size_t>(k)])));
  }
  return mix(sum, seed);
}

double keep_fraction(std::uint64_t cell, double low, double high) { return low + (high - low) * SplitMix64{cell}.uniform(); }

/// Thin rows [first, first + block.n_rows) in place; a row outside `rows` (when not empty) is
/// left without values.
template <typename Value>
void thin_block(CsrRows<Value>& block, std::int64_t first, const std::vector<std::uint8_t>& rows, const ColumnKeys& keys, std::uint64_t seed,
                double low, double high) {
  std::int64_t out = 0;
  for (std::int64_t i = 0; i < block.n_rows; ++i) {
    const std::int64_t begin = block.indptr[static_cast<std::size_t>(i)];
    const std::int64_t end = block.indptr[static_cast<std::size_t>(i) + 1];
    if (!rows.empty() && rows[static_cast<std::size_t>(first + i)] == 0) {
      block.indptr[static_cast<std::size_t>(i)] = out;
      continue;
    }
    const std::uint64_t cell = cell_key(block, i, keys, seed);  // (reads row i's offsets: before they move)
    const double p = keep_fraction(cell, low, high);
    block.indptr[static_cast<std::size_t>(i)] = out;
    for (std::int64_t k = begin; k < end; ++k) {
      const double value = static_cast<double>(block.values[static_cast<std::size_t>(k)]);
      const std::int32_t column = block.indices[static_cast<std::size_t>(k)];
      SplitMix64 rng{mix(cell, keys.of(column).first)};
      double kept = 0;
      if (!(value > 0)) {
        kept = value;  // zeros and negative values (not counts) stay as they are
      } else if (value != std::floor(value) || value > kBinomialCounts) {
        kept = value * p;
      } else if (value <= kBernoulliCounts) {
        for (int molecule = 0; molecule < static_cast<int>(value); ++molecule) kept += rng.uniform() < p ? 1 : 0;
      } else {
        std::mt19937_64 engine(rng.next());
        kept = static_cast<double>(std::binomial_distribution<std::int64_t>(static_cast<std::int64_t>(value), p)(engine));
      }
      if (kept == 0) continue;
      block.indices[static_cast<std::size_t>(out)] = column;
      block.values[static_cast<std::size_t>(out)] = static_cast<Value>(kept);
      ++out;
    }
  }
  block.indptr[static_cast<std::size_t>(block.n_rows)] = out;
  block.indices.resize(static_cast<std::size_t>(out));
  block.values.resize(static_cast<std::size_t>(out));
}

class ThinnedReader final : public MatrixReader {
 public:
  ThinnedReader(std::unique_ptr<MatrixReader> base, const std::vector<std::int64_t>& column_keys, const std::vector<std::uint8_t>& rows,
                std::uint64_t seed, double low, double high)
      : base_(std::move(base)), keys_(column_keys, base_->n_cols()), rows_(rows), seed_(seed), low_(low), high_(high) {
    if (!rows_.empty() && static_cast<std::int64_t>(rows_.size()) != base_->n_rows()) {
      throw InputError(fmt::format("depth augmentation: a row mask of {} rows for a matrix of {}", rows_.size(), base_->n_rows()));
    }
  }
  [[nodiscard]] const MatrixInfo& info() const override { return base_->info(); }
  void expect_reads(const std::vector<RowRange>& blocks) override { base_->expect_reads(blocks); }
  void read_rows(std::int64_t first, std::int64_t count, CsrBlock& out) override {
    base_->read_rows(first, count, out);
    thin_block(out, first, rows_, keys_, seed_, low_, high_);
  }
  void read_rows(std::int64_t first, std::int64_t count, CsrBlockF64& out) override {
    base_->read_rows(first, count, out);
    thin_block(out, first, rows_, keys_, seed_, low_, high_);
  }
  /// Values left per row after thinning (one streaming pass).
  [[nodiscard]] std::vector<std::int64_t> row_nnz() override {
    std::vector<std::int64_t> counts;
    counts.reserve(static_cast<std::size_t>(n_rows()));
    for_each_block(*this, BlockStreamOptions{}, [&counts](const CsrBlock& block) {
      for (std::int64_t i = 0; i < block.n_rows; ++i) {
        counts.push_back(block.indptr[static_cast<std::size_t>(i) + 1] - block.indptr[static_cast<std::size_t>(i)]);
      }
    });
    return counts;
  }
  [[nodiscard]] std::vector<RowRange> plan_blocks(std::size_t memory_limit_bytes) override { return base_->plan_blocks(memory_limit_bytes); }
  [[nodiscard]] std::size_t bytes_per_value() const override { return base_->bytes_per_value(); }

 private:
  std::unique_ptr<MatrixReader> base_;
  ColumnKeys keys_;
  const std::vector<std::uint8_t>& rows_;
  std::uint64_t seed_;
  double low_;
  double high_;
};

}  // namespace

ThinnedDataset::ThinnedDataset(const Dataset& base, double low, double high, std::uint64_t seed, std::vector<std::int64_t> column_keys,
                               std::vector<std::uint8_t> rows, std::string name)
    : base_(base),
      low_(low),
      high_(high),
      seed_(seed),
      column_keys_(std::move(column_keys)),
      rows_(std::move(rows)),
      name_(name.empty() ? fmt::format("{} (thinned to {:g}-{:g} of its counts)", base.path(), low, high) : std::move(name)) {
  if (!(low > 0 && low <= high && high <= 1)) throw InputError(fmt::format("depth augmentation: keep fractions [{}, {}] are not within (0, 1]", low, high));
}

std::vector<double> ThinnedDataset::keep_fractions(const std::string& source) const {
  auto reader = base_.open_matrix(source);
  const ColumnKeys keys(column_keys_, reader->n_cols());
  std::vector<double> fractions;
  fractions.reserve(static_cast<std::size_t>(reader->n_rows()));
  for_each_block(*reader, BlockStreamOptions{}, [&](const CsrBlock& block) {
    for (std::int64_t i = 0; i < block.n_rows; ++i) fractions.push_back(keep_fraction(cell_key(block, i, keys, seed_), low_, high_));
  });
  return fractions;
}

std::unique_ptr<MatrixReader> ThinnedDataset::open_matrix(const std::string& source) const {
  return std::make_unique<ThinnedReader>(base_.open_matrix(source), column_keys_, rows_, seed_, low_, high_);
}

}  // namespace celltyper
