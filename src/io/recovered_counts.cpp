// Counts read back from log-normalised values (recovered_counts.hpp).
#include <celltyper/matrix_summary.hpp>
#include <celltyper/recovered_counts.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>

namespace celltyper {
namespace {

/// A cell's smallest value is a count of 1 in all but the deepest cells of a gene subset; these
/// multiples of it are tried in turn when the ratios are not whole (smallest count 2, 3, ...).
constexpr int kMaxSmallestCount = 16;

/// Whether `ratio` (times the smallest count) is a whole number, up to the rounding of the stored
/// logs: float32 gives ~1e-6 of the ratio, files written with fewer digits ~1e-4 (scanpy's
/// pbmc68k_reduced); a ratio of 500 still rounds to the right count.
bool is_whole(double ratio) { return std::abs(ratio - std::round(ratio)) <= 0.01 + 1e-3 * ratio; }

/// A cell with fewer positive values says little whether they are counts (kept out of the share).
constexpr std::size_t kMinJudgedValues = 10;

/// What reading found so far: cells judged (kMinJudgedValues or more values) and those whose
/// ratios were whole for some smallest count.
struct RecoveryTally {
  std::int64_t judged = 0;
  std::int64_t whole = 0;
};

/// Each row of `block` back on the count scale (RecoveredCountsDataset); `ratios` is scratch.
template <typename Value>
void recover_block(CsrRows<Value>& block, Normalization logged, std::vector<double>& ratios, RecoveryTally& tally) {
  for (std::int64_t i = 0; i < block.n_rows; ++i) {
    const auto begin = static_cast<std::size_t>(block.indptr[static_cast<std::size_t>(i)]);
    const auto end = static_cast<std::size_t>(block.indptr[static_cast<std::size_t>(i) + 1]);
    double smallest = std::numeric_limits<double>::infinity();
    for (std::size_t k = begin; k < end; ++k) {
      const double value = static_cast<double>(block.values[k]);
      if (value > 0) smallest = std::min(smallest, value);
    }
    if (!std::isfinite(smallest)) continue;
    const double unit = unlogged(smallest, logged);
    if (!(unit > 0)) continue;
    ratios.clear();
    for (std::size_t k = begin; k < end; ++k) {
      const double value = static_cast<double>(block.values[k]);
      if (value > 0) ratios.push_back(unlogged(value, logged) / unit);
    }
    // The smallest count: the first multiple making every ratio whole (else 1, and the ratios
    // rounded: the cell stays on the count scale beside the others).
    int multiple = 0;
    for (int m = 1; m <= kMaxSmallestCount && multiple == 0; ++m) {
      if (std::all_of(ratios.begin(), ratios.end(), [m](double ratio) { return is_whole(ratio * m); })) multiple = m;
    }
    if (ratios.size() >= kMinJudgedValues) {
      ++tally.judged;
      if (multiple > 0) ++tally.whole;
    }
    std::size_t next = 0;
    for (std::size_t k = begin; k < end; ++k) {
      if (!(static_cast<double>(block.values[k]) > 0)) continue;
      block.values[k] = static_cast<Value>(std::max(1.0, std::round(ratios[next++] * std::max(multiple, 1))));
    }
  }
}

class RecoveredCountsReader final : public MatrixReader {
 public:
  RecoveredCountsReader(std::unique_ptr<MatrixReader> base, Normalization logged) : base_(std::move(base)), logged_(logged) {}
  [[nodiscard]] const MatrixInfo& info() const override { return base_->info(); }
  void read_rows(std::int64_t first, std::int64_t count, CsrBlock& out) override {
    base_->read_rows(first, count, out);
    recover_block(out, logged_, ratios_, tally_);
  }
  void read_rows(std::int64_t first, std::int64_t count, CsrBlockF64& out) override {
    base_->read_rows(first, count, out);
    recover_block(out, logged_, ratios_, tally_);
  }
  [[nodiscard]] std::vector<std::int64_t> row_nnz() override { return base_->row_nnz(); }
  [[nodiscard]] std::vector<RowRange> plan_blocks(std::size_t memory_limit_bytes) override { return base_->plan_blocks(memory_limit_bytes); }
  [[nodiscard]] std::size_t bytes_per_value() const override { return base_->bytes_per_value(); }
  [[nodiscard]] const RecoveryTally& tally() const { return tally_; }

 private:
  std::unique_ptr<MatrixReader> base_;
  Normalization logged_;
  std::vector<double> ratios_;
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

std::unique_ptr<Dataset> recover_counts(const Dataset& dataset, const std::string& source, std::size_t memory_limit_bytes, std::string& note) {
  SummarizeOptions scan;
  scan.max_rows = 2000;
  scan.memory_limit_bytes = memory_limit_bytes;
  const MatrixSummary summary = summarize_matrix(*dataset.open_matrix(source), scan);
  Normalization logged = Normalization::kNone;
  const char* unlog = "";
  switch (summary.scale) {
    case ValueScale::kLogNormalized: logged = Normalization::kRelog1pCp10k, unlog = "expm1"; break;
    case ValueScale::kLog2Normalized: logged = Normalization::kRelog2Cp10k, unlog = "2^x - 1"; break;
    case ValueScale::kLog10Normalized: logged = Normalization::kRelog10Cp10k, unlog = "10^x - 1"; break;
    default: return nullptr;
  }
  // The same cells read back as the summary scanned them: most must come out whole.
  RecoveredCountsReader reader(dataset.open_matrix(source), logged);
  BlockStreamOptions stream;
  stream.memory_limit_bytes = memory_limit_bytes;
  stream.rows = scan_ranges(reader, scan.max_rows);
  stream.refuse_non_finite = false;
  for_each_block(reader, stream, [](const CsrBlock&) {});
  const RecoveryTally& tally = reader.tally();
  if (tally.judged < 10 || static_cast<double>(tally.whole) < kRecoverableCellShare * static_cast<double>(tally.judged)) return nullptr;
  note = fmt::format("{} holds log-normalised counts ({} of {} cells checked: {} of their values are whole multiples of their smallest): "
                     "the counts read back per cell",
                     source, tally.whole, tally.judged, unlog);
  return std::make_unique<RecoveredCountsDataset>(dataset, source, logged);
}

}  // namespace celltyper
