// Counts read back from log-normalised values (recovered_counts.hpp).
#include <celltyper/matrix_summary.hpp>
#include <celltyper/recovered_counts.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <cmath>
#include <limits>

namespace celltyper {
namespace {

/// A cell's smallest value is a count of 1 in all but the deepest cells of a gene subset; these
/// multiples of it are tried in turn when the ratios are not whole (smallest count 2, 3, ...).
constexpr int kMaxSmallestCount = 16;

/// How far from a whole number a count read back may lie, given the rounding of the stored logs:
/// float32 gives ~1e-6 of the count, files written with 3 decimals (GEO tables, scanpy's
/// pbmc68k_reduced) ~1e-3.
double tolerance(double count) { return 0.01 + 1e-3 * count; }

/// A tolerance this wide says nothing of the value (it would pass any): the value is not tested.
constexpr double kUninformativeTolerance = 0.45;

/// The value of one count is refined over the cell's values of up to this many counts: the
/// smallest value alone carries its own rounding into every ratio (3 decimals: ~0.1% of each).
constexpr double kUnitCounts = 20;

/// The whole number nearest a non-negative `x` (std::round is a library call here; floor is one
/// instruction, and this runs for every stored value of every read).
inline double nearest(double x) { return std::floor(x + 0.5); }

/// u(x) of stored values, memoised: the values of one count in a cell repeat (every gene seen
/// once shares one value), and expm1 costs more than a look-up. Direct-mapped on the value's bits.
class UnlogCache {
 public:
  explicit UnlogCache(Normalization logged) : logged_(logged) { keys_.fill(kEmpty); }
  double operator()(double value) {
    std::uint64_t bits = 0;
    std::memcpy(&bits, &value, sizeof bits);
    const std::size_t slot = (bits * 0x9E3779B97F4A7C15ULL) >> (64 - kBits);
    if (keys_[slot] != bits) {
      keys_[slot] = bits;
      values_[slot] = unlogged(value, logged_);
    }
    return values_[slot];
  }

 private:
  static constexpr int kBits = 10;
  static constexpr std::uint64_t kEmpty = ~std::uint64_t{0};  // a NaN's bits: never a stored positive value
  Normalization logged_;
  std::array<std::uint64_t, std::size_t{1} << kBits> keys_{};
  std::array<double, std::size_t{1} << kBits> values_{};
};

/// A cell with fewer positive values says little whether they are counts (kept out of the share).
constexpr std::size_t kMinJudgedValues = 10;

/// The counts of one cell, in `counts`, from its unlogged positive values `unlogged` with the
/// smallest `smallest` taken as `multiple` counts. False when a value is not whole within its
/// tolerance, or none could be tested.
bool counts_at(const std::vector<double>& unlogged, double smallest, int multiple, std::vector<double>& counts) {
  double unit = smallest / multiple;
  double sum_values = 0;
  double sum_counts = 0;
  for (const double value : unlogged) {
    const double count = nearest(value / unit);
    if (count >= 1 && count <= kUnitCounts) {
      sum_values += value;
      sum_counts += count;
    }
  }
  if (sum_counts > 0) unit = sum_values / sum_counts;
  counts.clear();
  bool tested = false;
  bool whole = true;
  for (const double value : unlogged) {
    const double count = value / unit;
    counts.push_back(count);
    const double allowed = tolerance(count);
    if (allowed >= kUninformativeTolerance) continue;
    tested = true;
    if (std::abs(count - nearest(count)) > allowed) whole = false;
  }
  return tested && whole;
}

/// What reading found so far: cells judged (kMinJudgedValues or more values) and those that read
/// back whole for some smallest count.
struct RecoveryTally {
  std::int64_t judged = 0;
  std::int64_t whole = 0;
};

/// Each row of `block` back on the count scale (RecoveredCountsDataset); `unlogged` and `counts`
/// are scratch.
template <typename Value>
void recover_block(CsrRows<Value>& block, UnlogCache& unlog, std::vector<double>& unlogged, std::vector<double>& counts,
                   RecoveryTally& tally) {
  for (std::int64_t i = 0; i < block.n_rows; ++i) {
    const auto begin = static_cast<std::size_t>(block.indptr[static_cast<std::size_t>(i)]);
    const auto end = static_cast<std::size_t>(block.indptr[static_cast<std::size_t>(i) + 1]);
    unlogged.clear();
    double smallest = std::numeric_limits<double>::infinity();
    for (std::size_t k = begin; k < end; ++k) {
      const double value = static_cast<double>(block.values[k]);
      if (!(value > 0)) continue;
      unlogged.push_back(unlog(value));
      smallest = std::min(smallest, unlogged.back());
    }
    if (!(smallest > 0) || !std::isfinite(smallest)) continue;
    // The smallest count: the first multiple whose counts are whole. A cell none suits keeps its
    // values over its smallest, unrounded (in proportion to whatever they were, as relog1p-cp10k
    // reads them; thinning scales such values by the keep fraction).
    bool whole = false;
    for (int m = 1; m <= kMaxSmallestCount && !whole; ++m) whole = counts_at(unlogged, smallest, m, counts);
    if (unlogged.size() >= kMinJudgedValues) {
      ++tally.judged;
      if (whole) ++tally.whole;
    }
    std::size_t next = 0;
    for (std::size_t k = begin; k < end; ++k) {
      if (!(static_cast<double>(block.values[k]) > 0)) continue;
      block.values[k] = static_cast<Value>(whole ? std::max(1.0, nearest(counts[next])) : unlogged[next] / smallest);
      ++next;
    }
  }
}

class RecoveredCountsReader final : public MatrixReader {
 public:
  RecoveredCountsReader(std::unique_ptr<MatrixReader> base, Normalization logged) : base_(std::move(base)), unlog_(logged) {}
  [[nodiscard]] const MatrixInfo& info() const override { return base_->info(); }
  void expect_reads(const std::vector<RowRange>& blocks) override { base_->expect_reads(blocks); }
  void read_rows(std::int64_t first, std::int64_t count, CsrBlock& out) override {
    base_->read_rows(first, count, out);
    recover_block(out, unlog_, unlogged_, counts_, tally_);
  }
  void read_rows(std::int64_t first, std::int64_t count, CsrBlockF64& out) override {
    base_->read_rows(first, count, out);
    recover_block(out, unlog_, unlogged_, counts_, tally_);
  }
  [[nodiscard]] std::vector<std::int64_t> row_nnz() override { return base_->row_nnz(); }
  [[nodiscard]] std::vector<RowRange> plan_blocks(std::size_t memory_limit_bytes) override { return base_->plan_blocks(memory_limit_bytes); }
  [[nodiscard]] std::size_t bytes_per_value() const override { return base_->bytes_per_value(); }
  [[nodiscard]] const RecoveryTally& tally() const { return tally_; }

 private:
  std::unique_ptr<MatrixReader> base_;
  UnlogCache unlog_;
  std::vector<double> unlogged_;
  std::vector<double> counts_;
  RecoveryTally tally_;
};

}  // namespace

RecoveredCountsDataset::RecoveredCountsDataset(const Dataset& base, std::string source, Normalization logged)
    : base_(base), source_(std::move(source)), logged_(logged) {}

std::unique_ptr<MatrixReader> RecoveredCountsDataset::open_matrix(const std::string& source) const {
  auto reader = base_.open_matrix(source);
  if (source != source_) return reader;
  return std::make_unique<RecoveredCountsReader>(std::move(reader), logged_);
}

CountsRecovery recover_counts(const Dataset& dataset, const std::string& source, std::size_t memory_limit_bytes, const MatrixSummary* scanned) {
  constexpr std::int64_t kScanRows = 2000;
  MatrixSummary own;
  if (scanned == nullptr) {
    SummarizeOptions scan;
    scan.max_rows = kScanRows;
    scan.memory_limit_bytes = memory_limit_bytes;
    own = summarize_matrix(*dataset.open_matrix(source), scan);
    scanned = &own;
  }
  Normalization logged = Normalization::kNone;
  const char* unlog = "";
  const char* held = "log-normalised counts";  // what the matrix holds, when read back
  const char* values = "log-normalised values";  // ... and when not
  switch (scanned->scale) {
    case ValueScale::kLogNormalized: logged = Normalization::kRelog1pCp10k, unlog = "expm1"; break;
    case ValueScale::kLog2Normalized: logged = Normalization::kRelog2Cp10k, unlog = "2^x - 1"; break;
    case ValueScale::kLog10Normalized: logged = Normalization::kRelog10Cp10k, unlog = "10^x - 1"; break;
    case ValueScale::kSqrtCounts: logged = Normalization::kSquareCp10k, unlog = "the square", held = values = "square roots of counts"; break;
    case ValueScale::kAsinhCounts: logged = Normalization::kSinhCp10k, unlog = "sinh", held = values = "asinh of counts"; break;
    default: return {};
  }
  // The same cells read back as the summary scanned them: most must come out whole.
  RecoveredCountsReader reader(dataset.open_matrix(source), logged);
  BlockStreamOptions stream;
  stream.memory_limit_bytes = memory_limit_bytes;
  stream.rows = scan_ranges(reader, kScanRows);
  stream.refuse_non_finite = false;
  for_each_block(reader, stream, [](const CsrBlock&) {});
  const RecoveryTally& tally = reader.tally();
  CountsRecovery recovery;
  const std::string how = fmt::format("{} of each value over that of one count", unlog);
  if (tally.judged < 10 || static_cast<double>(tally.whole) < kRecoverableCellShare * static_cast<double>(tally.judged)) {
    recovery.warning = fmt::format("{} holds {} whose counts cannot be read back ({}: {} of {} cells checked read back "
                                   "whole; float16 values, or values other than counts?): trained without depth augmentation; a matrix "
                                   "of the counts (--layer NAME) would give it",
                                   source, values, how, tally.whole, tally.judged);
    return recovery;
  }
  recovery.note = fmt::format("{} holds {}, read back per cell ({}; {} of {} cells checked read back whole)", source, held, how,
                              tally.whole, tally.judged);
  if (tally.whole < tally.judged && static_cast<double>(tally.judged - tally.whole) >= 0.01 * static_cast<double>(tally.judged)) {
    recovery.warning = fmt::format("{} holds {}, read back per cell, but {} of {} cells checked do not read back whole "
                                   "(processed otherwise?): they keep their values' proportions",
                                   source, held, tally.judged - tally.whole, tally.judged);
  }
  recovery.dataset = std::make_unique<RecoveredCountsDataset>(dataset, source, logged);
  return recovery;
}

}  // namespace celltyper
