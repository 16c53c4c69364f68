#include <celltyper/cell_embedder.hpp>
#include <celltyper/error.hpp>
#include <celltyper/parallel.hpp>

#include <fmt/format.h>

#include <sys/mman.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <array>
#include <cmath>
#include <numeric>

namespace celltyper {

const char* to_string(Normalization normalization) {
  switch (normalization) {
    case Normalization::kNone: return "none";
    case Normalization::kCp10k: return "cp10k";
    case Normalization::kLog1pCp10k: return "log1p-cp10k";
    case Normalization::kRelog1pCp10k: return "relog1p-cp10k";
    case Normalization::kRelog2Cp10k: return "relog2-cp10k";
    case Normalization::kRelog10Cp10k: return "relog10-cp10k";
    case Normalization::kSquareCp10k: return "square-cp10k";
    case Normalization::kSinhCp10k: return "sinh-cp10k";
  }
  return "unknown";
}

Normalization parse_normalization(const std::string& text) {
  if (text == "none") return Normalization::kNone;
  if (text == "cp10k") return Normalization::kCp10k;
  if (text == "log1p-cp10k" || text == "log1p_cp10k") return Normalization::kLog1pCp10k;
  if (text == "relog1p-cp10k") return Normalization::kRelog1pCp10k;
  if (text == "relog2-cp10k") return Normalization::kRelog2Cp10k;
  if (text == "relog10-cp10k") return Normalization::kRelog10Cp10k;
  if (text == "square-cp10k") return Normalization::kSquareCp10k;
  if (text == "sinh-cp10k") return Normalization::kSinhCp10k;
  throw InputError(fmt::format("unknown normalisation '{}' (expected none, cp10k, log1p-cp10k, relog1p-cp10k, relog2-cp10k, relog10-cp10k, "
                               "square-cp10k or sinh-cp10k)", text));
}

std::int64_t AlignedGeneVectors::n_matched_vars() const {
  return std::count_if(var_to_row.begin(), var_to_row.end(), [](std::int32_t row) { return row >= 0; });
}

void AlignedGeneVectors::order_rows_by_use(const CsrBlock& block) {
  const std::int64_t rows = n_rows();
  std::vector<std::int64_t> uses(static_cast<std::size_t>(rows), 0);
  for (const std::int32_t column : block.indices) {
    if (column >= 0 && static_cast<std::size_t>(column) < var_to_row.size() && var_to_row[static_cast<std::size_t>(column)] >= 0) {
      ++uses[static_cast<std::size_t>(var_to_row[static_cast<std::size_t>(column)])];
    }
  }
  std::vector<std::int32_t> order(static_cast<std::size_t>(rows));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](std::int32_t a, std::int32_t b) {
    return uses[static_cast<std::size_t>(a)] > uses[static_cast<std::size_t>(b)];
  });
  std::vector<std::int32_t> new_row(static_cast<std::size_t>(rows));
  std::vector<float> reordered(matrix.size());
  for (std::size_t position = 0; position < order.size(); ++position) {
    const auto old_row = static_cast<std::size_t>(order[position]);
    new_row[old_row] = static_cast<std::int32_t>(position);
    std::copy_n(matrix.begin() + static_cast<std::ptrdiff_t>(old_row) * dims, dims,
                reordered.begin() + static_cast<std::ptrdiff_t>(position) * dims);
  }
  for (auto& row : var_to_row) {
    if (row >= 0) row = new_row[static_cast<std::size_t>(row)];
  }
  matrix = std::move(reordered);
}

CellEmbedder::CellEmbedder(AlignedGeneVectors genes, CellEmbedderOptions options)
    : genes_(std::move(genes)), options_(options) {
  if (genes_.dims <= 0) throw InputError("gene vectors have no dimensions");
  if (genes_.matrix.size() % static_cast<std::size_t>(genes_.dims) != 0) {
    throw InputError(fmt::format("gene matrix holds {} values, not a multiple of {} dims", genes_.matrix.size(), genes_.dims));
  }
  const std::int64_t rows = genes_.n_rows();
  for (const std::int32_t row : genes_.var_to_row) {
    if (row >= rows) throw InputError(fmt::format("gene row {} is outside the {}-row gene matrix", row, rows));
  }
  constexpr std::size_t kHugePage = std::size_t{2} << 20;
  const std::size_t bytes = std::max<std::size_t>(genes_.matrix.size() * sizeof(float), 1);
  const std::size_t padded = (bytes + kHugePage - 1) / kHugePage * kHugePage;
  void* memory = std::aligned_alloc(kHugePage, padded);
  if (memory == nullptr) throw std::bad_alloc();
  madvise(memory, padded, MADV_HUGEPAGE);  // a hint: ignored where transparent huge pages are off
  std::memcpy(memory, genes_.matrix.data(), genes_.matrix.size() * sizeof(float));
  matrix_ = std::shared_ptr<float>(static_cast<float*>(memory), [](float* p) { std::free(p); });
}

namespace {

/// Rows of a block are processed in chunks of this many cells per work item.
constexpr std::int64_t kCellsPerItem = 64;

/// Integer counts below this get their log1p weight from a per-cell table (exactly the same
/// value as computing it; UMI counts are mostly 1..a few, so this saves most log1p calls).
constexpr int kLogTableSize = 32;

struct Scratch {
  std::array<double, kLogTableSize> log_table{};
  std::vector<std::int32_t> rows;
  std::vector<float> weights;
  std::vector<std::pair<std::int32_t, float>> sorted;  // only for rows whose columns are unsorted
};

}  // namespace

void CellEmbedder::embed(const CsrBlock& block, float* out, CellEmbedStats* stats) const {
  const int dims = genes_.dims;
  const auto n_vars = static_cast<std::int64_t>(genes_.var_to_row.size());
  if (block.n_cols != n_vars) {
    throw InputError(fmt::format("the matrix has {} genes but the gene vectors were aligned to {}", block.n_cols, n_vars));
  }
  if (stats != nullptr) {
    stats->total.assign(static_cast<std::size_t>(block.n_rows), 0.0);
    stats->covered_fraction.assign(static_cast<std::size_t>(block.n_rows), 0.0);
    stats->empty.assign(static_cast<std::size_t>(block.n_rows), 0);
  }
  const std::int64_t n_items = (block.n_rows + kCellsPerItem - 1) / kCellsPerItem;
  const int workers = resolve_threads(options_.num_threads);
  std::vector<Scratch> scratch(static_cast<std::size_t>(workers));
  const Normalization normalization = options_.normalization;
  const std::int32_t* var_to_row = genes_.var_to_row.data();
  const float* matrix = matrix_.get();

  parallel_for_workers(n_items, options_.num_threads, [&](std::int64_t item, int worker) {
    Scratch& s = scratch[static_cast<std::size_t>(worker)];
    const std::int64_t first = item * kCellsPerItem;
    const std::int64_t last = std::min(block.n_rows, first + kCellsPerItem);
    for (std::int64_t r = first; r < last; ++r) {
      const auto begin = static_cast<std::size_t>(block.indptr[static_cast<std::size_t>(r)]);
      const auto end = static_cast<std::size_t>(block.indptr[static_cast<std::size_t>(r) + 1]);
      const std::int32_t* columns = block.indices.data() + begin;
      const float* values = block.values.data() + begin;
      const std::size_t n = end - begin;
      // Totals over all genes (CP10k uses every gene of the cell, as scanpy does), not over
      // features other than gene expression (antibody tags, guides, peaks).
      double total = 0;
      double covered = 0;
      for (std::size_t k = 0; k < n; ++k) {
        const float value = values[k];
        if (!std::isfinite(value)) {
          throw InputError(fmt::format("cell {} has a non-finite value ({}) at gene column {}: fix or filter the matrix first",
                                       block.first_row + r, value, columns[k]));
        }
        if (value < 0 && normalization != Normalization::kNone) {
          throw InputError(fmt::format("cell {} has a negative value ({}) at gene column {}: {} needs counts; use --normalize none for "
                                       "already-normalised data, or pick the counts layer",
                                       block.first_row + r, value, columns[k], to_string(normalization)));
        }
        const std::int32_t row = var_to_row[columns[k]];
        if (row == AlignedGeneVectors::kOtherFeature) continue;
        const double linear = unlogged(value, normalization);
        total += linear;
        if (row >= 0) covered += linear;
      }
      const double scale = total > 0 ? 1e4 / total : 0.0;
      if (normalization == Normalization::kLog1pCp10k) {
        for (int count = 1; count < kLogTableSize; ++count) s.log_table[static_cast<std::size_t>(count)] = std::log1p(count * scale);
      }
      s.rows.clear();
      s.weights.clear();
      const bool sorted = std::is_sorted(columns, columns + n);
      auto push = [&](std::int32_t column, float value) {
        const std::int32_t row = var_to_row[column];
        if (row < 0 || value == 0.0f) return;
        double weight = value;
        if (normalization == Normalization::kCp10k) weight = value * scale;
        if (is_relog(normalization)) weight = std::log1p(unlogged(value, normalization) * scale);
        if (normalization == Normalization::kLog1pCp10k) {
          const auto count = static_cast<int>(value);
          weight = (count < kLogTableSize && static_cast<float>(count) == value) ? s.log_table[static_cast<std::size_t>(count)]
                                                                                 : std::log1p(value * scale);
        }
        s.rows.push_back(row);
        s.weights.push_back(static_cast<float>(weight));
      };
      if (sorted) {
        for (std::size_t k = 0; k < n; ++k) push(columns[k], values[k]);
      } else {  // same summation order as a sorted source: ascending column
        s.sorted.clear();
        for (std::size_t k = 0; k < n; ++k) s.sorted.emplace_back(columns[k], values[k]);
        std::stable_sort(s.sorted.begin(), s.sorted.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
        for (const auto& [column, value] : s.sorted) push(column, value);
      }
      float* target = out + r * dims;
      detail::weighted_row_sum(matrix, dims, s.rows.data(), s.weights.data(), static_cast<std::int64_t>(s.rows.size()), target);
      double norm = 0;
      for (int d = 0; d < dims; ++d) norm += static_cast<double>(target[d]) * target[d];
      const bool empty = norm == 0;
      if (!empty) {
        const float inverse = static_cast<float>(1.0 / std::sqrt(norm));
        for (int d = 0; d < dims; ++d) target[d] *= inverse;
      }
      if (stats != nullptr) {
        stats->total[static_cast<std::size_t>(r)] = total;
        stats->covered_fraction[static_cast<std::size_t>(r)] = total > 0 ? covered / total : 0.0;
        stats->empty[static_cast<std::size_t>(r)] = empty ? 1 : 0;
      }
    }
  });
}

}  // namespace celltyper
