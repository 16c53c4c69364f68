// Binomial thinning of a dataset's counts (thinned_dataset.hpp).
#include <celltyper/error.hpp>
#include <celltyper/thinned_dataset.hpp>

#include <fmt/format.h>

#include <cmath>
#include <random>

namespace celltyper {
namespace {

/// SplitMix64 (Steele, Lea & Flood 2014): a fast generator whose stream depends on the state
/// alone, seeded per cell.
struct SplitMix64 {
  std::uint64_t state;
  std::uint64_t next() {
    std::uint64_t z = (state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
  }
  /// Uniform in [0, 1) with 53 random bits.
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
};

SplitMix64 row_generator(std::uint64_t seed, std::int64_t row) {
  SplitMix64 mixer{seed ^ (static_cast<std::uint64_t>(row) * 0xD1B54A32D192ED03ULL)};
  return SplitMix64{mixer.next()};
}

/// Counts above this are drawn by the standard library's binomial (same stream per cell).
constexpr double kBernoulliCounts = 32;

template <typename Value>
void thin_block(CsrRows<Value>& block, const ThinnedDataset& dataset, std::uint64_t seed) {
  std::int64_t out = 0;
  for (std::int64_t i = 0; i < block.n_rows; ++i) {
    const std::int64_t row = block.first_row + i;
    SplitMix64 rng = row_generator(seed, row);
    const double p = dataset.keep_fraction(row);
    rng.next();  // the first draw made p
    const std::int64_t begin = block.indptr[static_cast<std::size_t>(i)];
    const std::int64_t end = block.indptr[static_cast<std::size_t>(i) + 1];
    block.indptr[static_cast<std::size_t>(i)] = out;
    for (std::int64_t k = begin; k < end; ++k) {
      const double value = static_cast<double>(block.values[static_cast<std::size_t>(k)]);
      double kept = 0;
      if (!(value > 0)) {
        kept = value;  // zeros and negative values (not counts) stay as they are
      } else if (value != std::floor(value)) {
        kept = value * p;
      } else if (value <= kBernoulliCounts) {
        for (int molecule = 0; molecule < static_cast<int>(value); ++molecule) kept += rng.uniform() < p ? 1 : 0;
      } else {
        std::mt19937_64 engine(rng.next());
        kept = static_cast<double>(std::binomial_distribution<std::int64_t>(static_cast<std::int64_t>(value), p)(engine));
      }
      if (kept == 0) continue;
      block.indices[static_cast<std::size_t>(out)] = block.indices[static_cast<std::size_t>(k)];
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
  ThinnedReader(std::unique_ptr<MatrixReader> base, const ThinnedDataset& dataset, std::uint64_t seed)
      : base_(std::move(base)), dataset_(dataset), seed_(seed) {}
  [[nodiscard]] const MatrixInfo& info() const override { return base_->info(); }
  void read_rows(std::int64_t first, std::int64_t count, CsrBlock& out) override {
    base_->read_rows(first, count, out);
    thin_block(out, dataset_, seed_);
  }
  void read_rows(std::int64_t first, std::int64_t count, CsrBlockF64& out) override {
    base_->read_rows(first, count, out);
    thin_block(out, dataset_, seed_);
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
  const ThinnedDataset& dataset_;
  std::uint64_t seed_;
};

}  // namespace

ThinnedDataset::ThinnedDataset(const Dataset& base, double low, double high, std::uint64_t seed)
    : base_(base), low_(low), high_(high), seed_(seed), name_(fmt::format("{} (thinned to {:g}-{:g} of its counts)", base.path(), low, high)) {
  if (!(low > 0 && low <= high && high <= 1)) throw InputError(fmt::format("depth augmentation: keep fractions [{}, {}] are not within (0, 1]", low, high));
}

double ThinnedDataset::keep_fraction(std::int64_t row) const {
  SplitMix64 rng = row_generator(seed_, row);
  return low_ + (high_ - low_) * rng.uniform();
}

std::unique_ptr<MatrixReader> ThinnedDataset::open_matrix(const std::string& source) const {
  return std::make_unique<ThinnedReader>(base_.open_matrix(source), *this, seed_);
}

}  // namespace celltyper
